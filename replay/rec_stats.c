/* rec_stats: counter names and snapshots. */
#include <stdarg.h>
#include <stdio.h>

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
}

struct out {
  char *buf;
  size_t len, need;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = o->need < o->len ? o->len - o->need : 0;
  int n = vsnprintf(room ? o->buf + o->need : NULL, room, fmt, ap);
  va_end(ap);
  if (n > 0)
    o->need += (size_t)n;
}

static void counter(struct out *o, const char *name, const char *help, uint64_t v) {
  put(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
      (unsigned long long)v);
}

static void gauge(struct out *o, const char *name, const char *help, int64_t v) {
  put(o, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, (long long)v);
}

size_t rec_stats_prometheus(const struct rec_stats_view *v, char *buf, size_t len) {
  struct out o = {buf, len, 0};
  if (len)
    buf[0] = '\0';
  counter(&o, "cutover_records_produced_total", "Records handed to Kafka or the file sink.",
          v->produced);
  counter(&o, "cutover_records_delivered_total",
          "Records acknowledged by Kafka or written by the file sink.", v->delivered);
  counter(&o, "cutover_records_failed_total",
          "Kafka delivery reports with an error (the record was then spilled or dropped).",
          v->failed);
  counter(&o, "cutover_records_spilled_total", "Records written to spill files.", v->spilled);
  counter(&o, "cutover_records_drained_total", "Records published from spill files.",
          v->drained);
  put(&o, "# HELP cutover_records_dropped_total Records lost, by reason.\n"
          "# TYPE cutover_records_dropped_total counter\n");
  for (int i = 0; i < REC_DROP_N; i++)
    put(&o, "cutover_records_dropped_total{reason=\"%s\"} %llu\n",
        rec_drop_reason_name((enum rec_drop_reason)i), (unsigned long long)v->dropped[i]);
  gauge(&o, "cutover_records_queue_depth", "Records in the Kafka producer queue.",
        v->queue_depth);
  gauge(&o, "cutover_records_spill_queue_depth",
        "Records waiting for the spill or file writer thread.", v->spill_queue_depth);
  return o.need;
}
