/* exp: sticky canary experiments: pool, arms, states, and the KPI guard. */
#ifndef CUT_EXP_H
#define CUT_EXP_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/*
 * A sticky canary experiment takes a pool of devices (bucket < pool_ppm,
 * with the experiment's salt) and splits it 50/50 into a canary arm and a
 * baseline arm. A device's arm is a function of its bucket alone (even
 * buckets are canary, odd ones baseline), so it never changes when the pool
 * grows or shrinks. Rules and vectors: docs/dials.md.
 */

enum exp_state {
  EXP_PENDING = 0,   /* defined, not started: nobody in either arm */
  EXP_RUNNING = 1,   /* routes its pool (inside its start/end window) */
  EXP_STOPPED = 2,   /* stopped by an operator or the KPI guard: nobody in either arm */
  EXP_COMPLETED = 3, /* its end time passed: nobody in either arm */
};

/* "pending", "running", "stopped", "completed"; "unknown" otherwise. */
const char *exp_state_name(enum exp_state s);

/* Parses a state name; returns 0 or CUT_ERR_INVALID. */
int exp_state_parse(const char *s, enum exp_state *out);

/* 1 when an operation may move an experiment from `from` to `to`:
 * pending -> running, pending -> stopped, running -> stopped,
 * running -> completed. Stopped and completed are final. */
int exp_can_transition(enum exp_state from, enum exp_state to);

enum exp_arm { EXP_ARM_CANARY = 0, EXP_ARM_BASELINE = 1 };

/* The arm of a device in the pool: canary when its bucket is even. */
static inline enum exp_arm exp_arm_of(uint32_t bucket) {
  return (bucket & 1u) ? EXP_ARM_BASELINE : EXP_ARM_CANARY;
}

/* "canary" / "baseline". */
const char *exp_arm_name(enum exp_arm a);

/*
 * The state in effect at `now` (epoch seconds): a running experiment whose
 * end time has passed is completed; one whose start time has not come yet is
 * reported as pending. `start`/`end` 0 mean unbounded.
 */
enum exp_state exp_effective_state(enum exp_state stored, int64_t start, int64_t end,
                                   int64_t now);

/* ---- KPI guard -------------------------------------------------------- */

/* One arm's counts over one evaluation window. */
struct exp_kpi_arm {
  uint64_t requests;
  uint64_t errors;       /* responses the proxy counts as errors (5xx, resets, timeouts) */
  double p99_ms;         /* 99th percentile latency of the window; <= 0 when unknown */
};

struct exp_kpi_window {
  struct exp_kpi_arm canary;
  struct exp_kpi_arm baseline;
};

/* The guard's memory between windows; zero-initialize it (or call exp_kpi_reset). */
struct exp_kpi_state {
  uint32_t bad_streak;   /* bad windows in a row so far */
  uint64_t windows;      /* windows judged (with enough requests) */
  uint64_t skipped;      /* windows with too few requests on an arm */
};

enum exp_kpi_verdict { EXP_KPI_CONTINUE = 0, EXP_KPI_STOP = 1 };

static inline void exp_kpi_reset(struct exp_kpi_state *st) {
  st->bad_streak = 0;
  st->windows = 0;
  st->skipped = 0;
}

/*
 * Feeds one finished window to the guard. A window is bad when the canary's
 * error rate exceeds the baseline's by more than kpi->max_error_rate_delta,
 * or when both p99s are known and canary p99 > baseline p99 *
 * kpi->max_latency_ratio. A good window resets the streak; a window where
 * either arm has fewer than kpi->min_requests requests is skipped (it
 * neither extends nor breaks the streak). Returns EXP_KPI_STOP when the
 * streak reaches kpi->consecutive_windows (at least 1), with a sentence in
 * reason[reasonlen] such as "error rate 7.10% vs 1.00% (max delta 2.00%)
 * for 3 windows"; EXP_KPI_CONTINUE otherwise (reason gets a short status).
 * Pure; the caller owns *st and serializes calls for one experiment.
 */
enum exp_kpi_verdict exp_kpi(const struct cfg_kpi *kpi, struct exp_kpi_state *st,
                             const struct exp_kpi_window *w, char *reason, size_t reasonlen);

#endif
