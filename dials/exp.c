/* exp: sticky canary experiment rules: state names, effective state, and the KPI guard. */
#include "dials/exp.h"

#include <stdio.h>
#include <string.h>

#include "common/cut_err.h"

static const char *const state_names[] = {"pending", "running", "stopped", "completed"};

const char *exp_state_name(enum exp_state s) {
  if ((unsigned)s < sizeof state_names / sizeof state_names[0]) return state_names[s];
  return "unknown";
}

int exp_state_parse(const char *s, enum exp_state *out) {
  if (!s || !out) return CUT_ERR_INVALID;
  for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++)
    if (!strcmp(s, state_names[i])) {
      *out = (enum exp_state)i;
      return 0;
    }
  return CUT_ERR_INVALID;
}

int exp_can_transition(enum exp_state from, enum exp_state to) {
  switch (from) {
  case EXP_PENDING: return to == EXP_RUNNING || to == EXP_STOPPED;
  case EXP_RUNNING: return to == EXP_STOPPED || to == EXP_COMPLETED;
  default: return 0;
  }
}

const char *exp_arm_name(enum exp_arm a) { return a == EXP_ARM_CANARY ? "canary" : "baseline"; }

enum exp_state exp_effective_state(enum exp_state stored, int64_t start, int64_t end,
                                   int64_t now) {
  if (stored != EXP_RUNNING) return stored;
  if (end && now >= end) return EXP_COMPLETED;
  if (start && now < start) return EXP_PENDING;
  return EXP_RUNNING;
}

static double rate(const struct exp_kpi_arm *a) {
  return a->requests ? (double)a->errors / (double)a->requests : 0.0;
}

enum exp_kpi_verdict exp_kpi(const struct cfg_kpi *kpi, struct exp_kpi_state *st,
                             const struct exp_kpi_window *w, char *reason, size_t reasonlen) {
  char dummy[1];
  if (!reason || reasonlen == 0) {
    reason = dummy;
    reasonlen = sizeof dummy;
  }
  reason[0] = '\0';
  if (!kpi || !st || !w) return EXP_KPI_CONTINUE;
  if (w->canary.requests < kpi->min_requests || w->baseline.requests < kpi->min_requests ||
      w->canary.requests == 0 || w->baseline.requests == 0) {
    st->skipped++;
    snprintf(reason, reasonlen, "too few requests (canary %llu, baseline %llu, need %u)",
             (unsigned long long)w->canary.requests, (unsigned long long)w->baseline.requests,
             kpi->min_requests);
    return EXP_KPI_CONTINUE;
  }
  st->windows++;
  double rc = rate(&w->canary), rb = rate(&w->baseline);
  int bad_err = rc - rb > kpi->max_error_rate_delta;
  int bad_lat = w->canary.p99_ms > 0 && w->baseline.p99_ms > 0 &&
                w->canary.p99_ms > w->baseline.p99_ms * kpi->max_latency_ratio;
  if (!bad_err && !bad_lat) {
    st->bad_streak = 0;
    snprintf(reason, reasonlen, "ok");
    return EXP_KPI_CONTINUE;
  }
  st->bad_streak++;
  uint32_t need = kpi->consecutive_windows ? kpi->consecutive_windows : 1;
  if (bad_err)
    snprintf(reason, reasonlen, "error rate %.2f%% vs %.2f%% (max delta %.2f%%) for %u window%s",
             rc * 100.0, rb * 100.0, kpi->max_error_rate_delta * 100.0, st->bad_streak,
             st->bad_streak == 1 ? "" : "s");
  else
    snprintf(reason, reasonlen, "p99 %.1fms vs %.1fms (max ratio %.2f) for %u window%s",
             w->canary.p99_ms, w->baseline.p99_ms, kpi->max_latency_ratio, st->bad_streak,
             st->bad_streak == 1 ? "" : "s");
  return st->bad_streak >= need ? EXP_KPI_STOP : EXP_KPI_CONTINUE;
}
