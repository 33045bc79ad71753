/* rec_metrics: the recording, mirroring and live-comparison counters in the metrics registry. */
#ifndef CUT_REC_METRICS_H
#define CUT_REC_METRICS_H

#include <stddef.h>

#include "replay/rec_compare.h"
#include "replay/rec_mirror.h"
#include "replay/rec_sink.h"

struct met_registry;

/*
 * The recording subsystem counts with plain atomics (its sinks, spill writer
 * and comparison threads are not workers and have no metrics shard). A
 * rec_metrics registers the families below and, as a collector of the
 * registry, copies those atomics into them each time /metrics is rendered:
 *
 *   cutover_record_produced_total, cutover_record_delivered_total,
 *   cutover_record_failed_total, cutover_record_spilled_total,
 *   cutover_record_drained_total, cutover_record_dropped_total{reason},
 *   cutover_record_queue_depth (gauge), cutover_record_spill_queue_depth (gauge),
 *   cutover_shadow_sent_total, cutover_shadow_skipped_total{reason},
 *   cutover_shadow_failed_total, cutover_pairs_recorded_total,
 *   cutover_compare_matches_total, cutover_compare_mismatches_total,
 *   cutover_compare_skipped_total{reason}, cutover_compare_queue_depth (gauge)
 *
 * Every reason label value is registered up front, so every series is
 * present (at 0) from the start.
 */
struct rec_metrics;

/* Where the counters are; each may be NULL (its families stay at 0). */
struct rec_metrics_src {
  const struct rec_sink *sink;
  const struct rec_mirror_stats *mirror;
  const struct rec_compare_stats *compare;
};

/* Registers the families in `reg` and the collector. `reg` and the sources
 * are borrowed and must outlive the rec_metrics. Returns 0, CUT_ERR_NOMEM,
 * CUT_ERR_EXISTS or CUT_ERR_FULL with err text. Caller frees with
 * rec_metrics_free() (which removes the collector; the series stay). */
int rec_metrics_new(struct rec_metrics **out, struct met_registry *reg,
                    const struct rec_metrics_src *src, char *err, size_t errlen);

/* Copies the current counter values into the registry (the collector does
 * this before each render). Thread-safe. */
void rec_metrics_collect(struct rec_metrics *m);

void rec_metrics_free(struct rec_metrics *m);

#endif
