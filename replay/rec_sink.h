/* rec_sink: where encoded pair records go (Kafka with spill, or container files). */
#ifndef CUT_REC_SINK_H
#define CUT_REC_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "replay/rec_pair.h"
#include "replay/rec_stats.h"

struct rec_codec;

/*
 * A sink takes single-object records (rec_avro.h) from any thread. Submitting
 * never blocks on the network or the disk: the record is copied into a
 * bounded queue (Kafka's producer queue, or a writer thread's handoff queue)
 * or, when every bound is reached, dropped and counted with its reason.
 * One sink is shared by every worker thread.
 */
struct rec_sink;

struct rec_sink_ops {
  const char *name; /* "kafka", "file" */
  int (*submit)(struct rec_sink *s, const char *key, size_t keylen, const uint8_t *rec, size_t len);
  void (*flush)(struct rec_sink *s, int timeout_ms);
  void (*free)(struct rec_sink *s);
};

/* The common head of every sink implementation. */
struct rec_sink {
  const struct rec_sink_ops *ops;
  struct rec_stats stats;
};

/*
 * Submits one single-object record (borrowed; copied). `key` (the
 * correlation id) is borrowed. Thread-safe. Returns 0 when the record was
 * queued for Kafka or for the spill/file writer, CUT_ERR_FULL when it was
 * dropped (counted in stats), CUT_ERR_INVALID for a record without the
 * single-object header.
 */
int rec_sink_submit(struct rec_sink *s, const char *key, size_t keylen, const uint8_t *rec,
                    size_t len);

/* Encodes `p` with `codec` (the calling thread's) and submits it, keyed by
 * the correlation id. Encoding failures are counted as REC_DROP_ENCODE. */
int rec_sink_submit_pair(struct rec_sink *s, struct rec_codec *codec, struct rec_pair *p);

/* Waits up to timeout_ms for queued records to be delivered or written
 * (blocks: for shutdown and tests, never on a loop thread). */
void rec_sink_flush(struct rec_sink *s, int timeout_ms);

/* Counters. */
void rec_sink_stats(const struct rec_sink *s, struct rec_stats_view *out);

/* Delivers or spills what is queued (within the sink's shutdown timeout),
 * closes files with fsync, frees. NULL is ok. */
void rec_sink_free(struct rec_sink *s);

/*
 * File sink: records go to Avro container files `pairs-*.avro` in `dir`,
 * rotated at segment_bytes, written by a thread of their own.
 * Returns 0 or CUT_ERR_IO / CUT_ERR_NOMEM / CUT_ERR_AVRO with err text.
 */
int rec_sink_file_new(struct rec_sink **out, const char *dir, uint64_t segment_bytes,
                      char *err, size_t errlen);

#endif
