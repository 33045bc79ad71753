/* rec_sink: where encoded pair records go (Kafka with spill, or container files). */
#ifndef CUT_REC_SINK_H
#define CUT_REC_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "replay/rec_pair.h"
#include "replay/rec_stats.h"

struct rec_codec;
struct rec_pairq;
struct rec_pairq_opts;

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
  struct rec_pairq *pairq; /* the recording thread (rec_sink_start_thread); NULL = none */
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

/* Encodes `p` (borrowed) with `codec` (the calling thread's) and submits it,
 * keyed by the correlation id. Encoding failures are counted as
 * REC_DROP_ENCODE. */
int rec_sink_submit_pair(struct rec_sink *s, struct rec_codec *codec, struct rec_pair *p);

/*
 * Starts the sink's recording thread (rec_pairq.h; `o` may be NULL for the
 * defaults): from then on rec_sink_record_pair() hands pairs to it. Call
 * once, before the sink is shared. Returns 0 or a negative CUT_ERR_* with
 * err text.
 */
int rec_sink_start_thread(struct rec_sink *s, const struct rec_pairq_opts *o, char *err,
                          size_t errlen);

/*
 * Records a finished pair: takes ownership of `p` in every case. With a
 * recording thread the pair is queued for it; without one, or when its queue
 * is full (counted in stats.pair_queue_full), it is encoded with `codec` (the
 * calling thread's) and submitted here, then freed. Returns 0 when queued or
 * submitted, else what rec_sink_submit_pair returns (counted).
 */
int rec_sink_record_pair(struct rec_sink *s, struct rec_codec *codec, struct rec_pair *p);

/* Waits until the recording thread has submitted every queued pair, then up
 * to timeout_ms for queued records to be delivered or written (blocks: for
 * shutdown and tests, never on a loop thread). */
void rec_sink_flush(struct rec_sink *s, int timeout_ms);

/* Counters. */
void rec_sink_stats(const struct rec_sink *s, struct rec_stats_view *out);

/* Stops the recording thread after it submitted every queued pair, then
 * delivers or spills what is queued (within the sink's shutdown timeout),
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
