/* rec_stats: the recording counters (atomics), shared by the sinks, the spill and the drain. */
#ifndef CUT_REC_STATS_H
#define CUT_REC_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Every record handed to a sink ends up in exactly one of: delivered (Kafka
 * acknowledged it, or the file sink wrote it), spilled (written to a spill
 * file), dropped (with a reason), or still in flight (queue depths).
 * Updated with relaxed atomics from any thread; read with rec_stats_read().
 */
enum rec_drop_reason {
  REC_DROP_SPILL_FULL = 0,   /* the spill directory reached spill_max_bytes */
  REC_DROP_QUEUE_FULL,       /* the spill (or file sink) writer's handoff queue was full */
  REC_DROP_IO,               /* a spill or file-sink write failed (disk error) */
  REC_DROP_ENCODE,           /* the pair could not be encoded */
  REC_DROP_NO_SPILL,         /* Kafka refused the record and no spill is configured */
  REC_DROP_TOO_LARGE,        /* larger than Kafka accepts (message.max.bytes); spilling it would block the drain */
  REC_DROP_N
};

/* Metric label of a drop reason: "spill_full", "queue_full", "io", "encode", "no_spill", "too_large". */
const char *rec_drop_reason_name(enum rec_drop_reason r);

struct rec_stats {
  _Atomic uint64_t produced;       /* handed to Kafka (or to the file sink's writer) */
  _Atomic uint64_t delivered;      /* acknowledged by Kafka / written by the file sink */
  _Atomic uint64_t failed;         /* Kafka delivery reports with an error (then spilled or dropped) */
  _Atomic uint64_t spilled;        /* written to spill files */
  _Atomic uint64_t drained;        /* published from spill files by a drain */
  _Atomic uint64_t dropped[REC_DROP_N];
  _Atomic int64_t queue_depth;     /* records in Kafka's producer queue (produced, no report yet) */
  _Atomic int64_t spill_queue_depth; /* records waiting for the spill/file writer thread */
  _Atomic int64_t pair_queue_depth;  /* pairs waiting for the recording thread (rec_pairq.h) */
  _Atomic uint64_t pair_queue_full;  /* pairs recorded by their worker: the recording thread's queue was full */
};

/* A plain copy of the counters, for metrics and tests. */
struct rec_stats_view {
  uint64_t produced, delivered, failed, spilled, drained;
  uint64_t dropped[REC_DROP_N];
  uint64_t dropped_total;
  int64_t queue_depth, spill_queue_depth, pair_queue_depth;
  uint64_t pair_queue_full;
};

/* Copies the counters of s (borrowed) into *out; each is read atomically, the set is not a snapshot. */
void rec_stats_read(const struct rec_stats *s, struct rec_stats_view *out);

/* The proxy exposes these counters in /metrics as cutover_record_* (rec_metrics.h). */

#define rec_stat_add(s, field, n) atomic_fetch_add_explicit(&(s)->field, (n), memory_order_relaxed)

#endif
