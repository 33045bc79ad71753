/* rec_pairq: the recording thread: finished pairs are encoded and handed to the sink off the workers. */
#ifndef CUT_REC_PAIRQ_H
#define CUT_REC_PAIRQ_H

#include <stddef.h>
#include <stdint.h>

#include "replay/rec_pair.h"

struct rec_sink;

/*
 * Building a pair costs the worker little; encoding it (Avro) and handing it
 * to Kafka (rd_kafka_produce, which copies, locks and wakes librdkafka's
 * threads) costs more. A rec_pairq moves that second part to a thread of its
 * own: workers push finished pairs onto a lock-free list (one
 * compare-and-swap; no lock, no encoding, no syscall in the common case) and
 * the recording thread takes the whole list at once, encodes the pairs with
 * its own codec and submits them to the sink, which queues them for Kafka or
 * the spill as before.
 *
 * The queue is bounded by pairs and by the bytes the pairs hold
 * (rec_pair_mem_size). A pair that finds it full is not dropped: the caller
 * records it itself, as if there were no queue (rec_sink_record_pair does
 * exactly that), and it is counted (rec_stats.pair_queue_full). Stopping
 * the queue records every pair still queued, so nothing is lost at shutdown.
 *
 * To keep wake-ups rare, a worker wakes the thread only when it sleeps for
 * want of pairs; once awake it lets a batch gather for `batch_wait_ms`
 * (Kafka lingers longer than that anyway) before it takes the list again.
 */
struct rec_pairq;

struct rec_pairq_opts {
  size_t max_pairs;   /* 0 = 8192 */
  size_t max_bytes;   /* 0 = 64 MiB */
  unsigned batch_wait_ms; /* 0 = 2 */
};

/*
 * Starts the queue and its thread for `sink` (borrowed: it must outlive the
 * queue; its stats count what the queue does). Returns 0, CUT_ERR_NOMEM,
 * CUT_ERR_AVRO (codec) or CUT_ERR_STATE (no thread) with err text.
 * Caller frees with rec_pairq_free().
 */
int rec_pairq_new(struct rec_pairq **out, struct rec_sink *sink, const struct rec_pairq_opts *o,
                  char *err, size_t errlen);

/*
 * Queues a finished pair from any thread. Takes ownership on success only.
 * Never blocks on encoding or I/O. Returns 0, or CUT_ERR_FULL when the queue
 * is full or stopping (counted; the caller still owns `p` and records it
 * itself).
 */
int rec_pairq_push(struct rec_pairq *q, struct rec_pair *p);

/* Waits until every pair pushed so far has been submitted to the sink
 * (blocks: shutdown and tests only). */
void rec_pairq_flush(struct rec_pairq *q);

/* Records what is queued, stops the thread and frees. Call once no thread
 * pushes any more (the workers and the comparer have stopped). NULL is ok. */
void rec_pairq_free(struct rec_pairq *q);

#endif
