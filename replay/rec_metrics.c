/* rec_metrics: the recording, mirroring and live-comparison counters in the metrics registry. */
#include "replay/rec_metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"
#include "common/metrics.h"

/* One counter copied from an atomic: what was published last, so each
 * collection adds only the growth (counters only go up). */
struct copied {
  struct met_series *s;
  const _Atomic uint64_t *src;
  uint64_t last;
};

struct gauge {
  struct met_series *s;
  const _Atomic int64_t *src;
};

#define MAX_COPIED 32
#define MAX_GAUGES 4

struct rec_metrics {
  struct met_registry *reg;
  unsigned shard;
  pthread_mutex_t mu;
  struct copied c[MAX_COPIED];
  size_t nc;
  struct gauge g[MAX_GAUGES];
  size_t ng;
};

static int fam(struct rec_metrics *m, enum met_type t, const char *name, const char *help,
               const char *label, struct met_family **out, char *err, size_t errlen) {
  const char *labels[1] = {label};
  struct met_family_def d = {.name = name, .help = help, .type = t,
                             .labels = label ? labels : NULL, .nlabels = label ? 1 : 0,
                             .max_series = 16};
  return met_family_register(m->reg, &d, out, err, errlen);
}

/* A counter series (label value `value`, or none) fed from `src` (may be NULL: stays 0). */
static int counter(struct rec_metrics *m, const char *name, const char *help, const char *label,
                   const char *value, const _Atomic uint64_t *src, char *err, size_t errlen) {
  struct met_family *f;
  int rc = fam(m, MET_COUNTER, name, help, label, &f, err, errlen);
  if (rc < 0)
    return rc;
  const char *values[1] = {value};
  struct met_series *s = met_series_get(f, label ? values : NULL);
  if (!s || m->nc == MAX_COPIED)
    return cut_errf(err, errlen, CUT_ERR_FULL, "%s: no room for the series", name);
  if (src)
    m->c[m->nc++] = (struct copied){s, src, 0};
  return 0;
}

static int gauge(struct rec_metrics *m, const char *name, const char *help,
                 const _Atomic int64_t *src, char *err, size_t errlen) {
  struct met_family *f;
  int rc = fam(m, MET_GAUGE, name, help, NULL, &f, err, errlen);
  if (rc < 0)
    return rc;
  struct met_series *s = met_series_get(f, NULL);
  if (!s || m->ng == MAX_GAUGES)
    return cut_errf(err, errlen, CUT_ERR_FULL, "%s: no room for the series", name);
  if (src)
    m->g[m->ng++] = (struct gauge){s, src};
  return 0;
}

static int register_all(struct rec_metrics *m, const struct rec_metrics_src *src, char *err,
                        size_t errlen) {
  const struct rec_stats *rs = src->sink ? &src->sink->stats : NULL;
  const struct rec_mirror_stats *ms = src->mirror;
  const struct rec_compare_stats *cs = src->compare;
  int rc;
#define C(name, help, field)                                                             \
  if ((rc = counter(m, name, help, NULL, NULL, rs ? &rs->field : NULL, err, errlen)) < 0) \
    return rc;
  C("cutover_record_produced_total", "Records handed to Kafka (or to the file writer).", produced)
  C("cutover_record_delivered_total", "Records acknowledged by Kafka or written by the file sink.",
    delivered)
  C("cutover_record_failed_total", "Kafka delivery reports with an error (then spilled or dropped).",
    failed)
  C("cutover_record_spilled_total", "Records written to spill files.", spilled)
  C("cutover_record_drained_total", "Records published from spill files by this process.", drained)
#undef C
  for (int r = 0; r < REC_DROP_N; r++)
    if ((rc = counter(m, "cutover_record_dropped_total", "Records lost, by reason.", "reason",
                      rec_drop_reason_name((enum rec_drop_reason)r), rs ? &rs->dropped[r] : NULL,
                      err, errlen)) < 0)
      return rc;
  if ((rc = gauge(m, "cutover_record_queue_depth",
                  "Records in the Kafka producer queue, not yet acknowledged.",
                  rs ? &rs->queue_depth : NULL, err, errlen)) < 0 ||
      (rc = gauge(m, "cutover_record_spill_queue_depth",
                  "Records waiting for the spill (or file sink) writer.",
                  rs ? &rs->spill_queue_depth : NULL, err, errlen)) < 0 ||
      (rc = gauge(m, "cutover_record_pair_queue_depth",
                  "Finished pairs waiting for the recording thread.",
                  rs ? &rs->pair_queue_depth : NULL, err, errlen)) < 0 ||
      (rc = counter(m, "cutover_record_pair_queue_full_total",
                    "Pairs encoded on their worker because the recording thread's queue was full.",
                    NULL, NULL, rs ? &rs->pair_queue_full : NULL, err, errlen)) < 0)
    return rc;
  if ((rc = counter(m, "cutover_shadow_sent_total", "Shadow requests started.", NULL, NULL,
                    ms ? &ms->sent : NULL, err, errlen)) < 0)
    return rc;
  for (int r = 0; r < REC_SHADOW_SKIP_N; r++)
    if ((rc = counter(m, "cutover_shadow_skipped_total", "Sampled shadow requests not sent, by reason.",
                      "reason", rec_shadow_skip_name((enum rec_shadow_skip)r),
                      ms ? &ms->skipped_by[r] : NULL, err, errlen)) < 0)
      return rc;
  if ((rc = counter(m, "cutover_shadow_failed_total",
                    "Shadow requests that ended without a complete response.", NULL, NULL,
                    ms ? &ms->failed : NULL, err, errlen)) < 0 ||
      (rc = counter(m, "cutover_pairs_recorded_total", "Pairs handed to the recording sink.", NULL,
                    NULL, ms ? &ms->recorded : NULL, err, errlen)) < 0 ||
      (rc = counter(m, "cutover_compare_matches_total",
                    "Live comparisons where every shadow matched the primary.", NULL, NULL,
                    cs ? &cs->matches : NULL, err, errlen)) < 0 ||
      (rc = counter(m, "cutover_compare_mismatches_total",
                    "Live comparisons with a difference (these pairs are recorded).", NULL, NULL,
                    cs ? &cs->mismatches : NULL, err, errlen)) < 0)
    return rc;
  for (int r = 0; r < REC_CMP_SKIP_N; r++)
    if ((rc = counter(m, "cutover_compare_skipped_total", "Pairs of compare: live routes not compared, by reason.",
                      "reason", rec_compare_skip_name((enum rec_compare_skip)r),
                      cs ? &cs->skipped[r] : NULL, err, errlen)) < 0)
      return rc;
  return gauge(m, "cutover_compare_queue_depth", "Pairs waiting for the live comparison.",
               cs ? &cs->queue_depth : NULL, err, errlen);
}

void rec_metrics_collect(struct rec_metrics *m) {
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < m->nc; i++) {
    uint64_t v = atomic_load_explicit(m->c[i].src, memory_order_relaxed);
    if (v > m->c[i].last) {
      met_counter_add(m->c[i].s, m->shard, v - m->c[i].last);
      m->c[i].last = v;
    }
  }
  for (size_t i = 0; i < m->ng; i++)
    met_gauge_set(m->g[i].s, atomic_load_explicit(m->g[i].src, memory_order_relaxed));
  pthread_mutex_unlock(&m->mu);
}

static void collect_cb(void *user_data) {
  struct rec_metrics *m = user_data;
  rec_metrics_collect(m);
}

int rec_metrics_new(struct rec_metrics **out, struct met_registry *reg,
                    const struct rec_metrics_src *src, char *err, size_t errlen) {
  struct rec_metrics *m = calloc(1, sizeof *m);
  if (!m)
    return CUT_ERR_NOMEM;
  m->reg = reg;
  m->shard = met_registry_shards(reg) - 1; /* the shard of threads that are not workers */
  pthread_mutex_init(&m->mu, NULL);
  int rc = register_all(m, src, err, errlen);
  if (rc == 0 && (rc = met_registry_add_collector(reg, collect_cb, m)) < 0)
    cut_errf(err, errlen, rc, "no room for another metrics collector");
  if (rc < 0) {
    pthread_mutex_destroy(&m->mu);
    free(m);
    return rc;
  }
  *out = m;
  return 0;
}

void rec_metrics_free(struct rec_metrics *m) {
  if (!m)
    return;
  met_registry_remove_collector(m->reg, collect_cb, m);
  pthread_mutex_destroy(&m->mu);
  free(m);
}
