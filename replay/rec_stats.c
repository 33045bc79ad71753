/* rec_stats: counter names and snapshots. */

#include "replay/rec_stats.h"

const char *rec_drop_reason_name(enum rec_drop_reason r) {
  switch (r) {
  case REC_DROP_SPILL_FULL: return "spill_full";
  case REC_DROP_QUEUE_FULL: return "queue_full";
  case REC_DROP_IO: return "io";
  case REC_DROP_ENCODE: return "encode";
  case REC_DROP_NO_SPILL: return "no_spill";
  case REC_DROP_TOO_LARGE: return "too_large";
  default: return "unknown";
  }
}

#define LOAD(x) atomic_load_explicit(&s->x, memory_order_relaxed)

void rec_stats_read(const struct rec_stats *s, struct rec_stats_view *out) {
  out->produced = LOAD(produced);
  out->delivered = LOAD(delivered);
  out->failed = LOAD(failed);
  out->spilled = LOAD(spilled);
  out->drained = LOAD(drained);
  out->dropped_total = 0;
  for (int i = 0; i < REC_DROP_N; i++) {
    out->dropped[i] = LOAD(dropped[i]);
    out->dropped_total += out->dropped[i];
  }
  out->queue_depth = LOAD(queue_depth);
  out->spill_queue_depth = LOAD(spill_queue_depth);
  out->pair_queue_depth = LOAD(pair_queue_depth);
  out->pair_queue_full = LOAD(pair_queue_full);
}

