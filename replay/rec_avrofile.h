/* rec_avrofile: rotated, size-capped Avro container files written off the caller's thread. */
#ifndef CUT_REC_AVROFILE_H
#define CUT_REC_AVROFILE_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "replay/rec_stats.h"

/*
 * A rec_avrofile owns a writer thread and a bounded handoff queue. Any thread
 * pushes bare binary pair records (no single-object header); push never
 * blocks on I/O: it copies the record into the queue or, when the queue is
 * full, drops it and counts REC_DROP_QUEUE_FULL.
 *
 * The writer thread appends records to `<dir>/<prefix>-<usec>-<seq>.avro.part`
 * (Avro object container file, pair schema, deflate codec), flushes after
 * each batch, and rotates when the file reaches segment_bytes: the finished
 * file is fsync'ed and renamed to `.avro` (readers only look at `.avro`
 * files, so they never see a half-written one), then the directory is
 * fsync'ed. When max_bytes is set and the `.avro` files already in the
 * directory plus the current file would exceed it, records are dropped with
 * REC_DROP_SPILL_FULL. File names sort in write order.
 */

struct rec_avrofile;

struct rec_avrofile_opts {
  const char *dir;           /* created if missing (with its parents) */
  const char *prefix;        /* "spill" or "pairs" */
  uint64_t segment_bytes;    /* rotate at this size; 0 = 64 MiB */
  uint64_t max_bytes;        /* cap of the directory's files; 0 = none */
  size_t queue_records;      /* handoff queue bound in records; 0 = 65536 */
  uint64_t queue_bytes;      /* handoff queue bound in bytes; 0 = 64 MiB */
};

/*
 * Creates the directory if needed and starts the writer thread. `stats` is
 * borrowed (must outlive the file); written records add to `*written`
 * (a counter inside stats, e.g. &stats->spilled), drops to stats->dropped.
 * Returns 0 or CUT_ERR_IO / CUT_ERR_NOMEM / CUT_ERR_AVRO with err text.
 * Caller frees with rec_avrofile_free().
 */
int rec_avrofile_new(struct rec_avrofile **out, const struct rec_avrofile_opts *o,
                     struct rec_stats *stats, _Atomic uint64_t *written, char *err,
                     size_t errlen);

/* Queues a copy of one bare binary record. Thread-safe, never blocks on I/O.
 * Returns 0, or CUT_ERR_FULL (dropped and counted) / CUT_ERR_NOMEM. */
int rec_avrofile_push(struct rec_avrofile *f, const uint8_t *rec, size_t len);

/* Waits until every record pushed so far is written and flushed (not
 * fsync'ed). For tests and orderly shutdown; blocks. */
void rec_avrofile_flush(struct rec_avrofile *f);

/* Finishes the current file now (fsync, rename), even when small. Blocks. */
void rec_avrofile_rotate(struct rec_avrofile *f);

/* Writes what is queued, closes and fsyncs the current file, stops the
 * thread, frees. NULL is ok. */
void rec_avrofile_free(struct rec_avrofile *f);

/*
 * Checks that `fp` (borrowed, open for reading at its start) holds an Avro
 * container header followed by either nothing or a complete first block,
 * and rewinds it. Call it before avro-c's file reader: avro-c 1.11 leaks
 * memory when opening a damaged file fails. Returns 0, or -1 when the file
 * is not such a container.
 */
int rec_avrofile_check(FILE *fp);

/*
 * Calls `cb` for each bare binary record of one container file, in order.
 * The record bytes are borrowed for the call. `cb` returns 0 to go on, or a
 * negative value to stop (returned as is). Returns the number of records
 * read, CUT_ERR_IO when the file cannot be opened, CUT_ERR_PARSE when it is
 * not a container with at least one complete block or is damaged or cut
 * short after it (err names the file and the first unreadable record; `cb`
 * has seen the records before it), CUT_ERR_AVRO when its schema is not the
 * pair schema.
 */
long rec_avrofile_each(const char *path, int (*cb)(const uint8_t *rec, size_t len, void *ud),
                       void *ud, char *err, size_t errlen);

/*
 * Recovers the `.avro.part` files of `dir` left by a process that stopped
 * without finishing them (a crash): a file no writer holds (each writer
 * keeps an flock on its current file) is renamed to `.avro` when it holds
 * readable records, else removed. A block that was not completely written
 * is cut off the file (its records are lost), so the file reads cleanly. Returns the number of files recovered, or CUT_ERR_IO.
 */
long rec_avrofile_recover(const char *dir, const char *prefix);

/*
 * Lists the finished files (`<prefix>-*.avro`) of `dir` in write order.
 * On success stores a NULL-terminated array of full paths in *out (caller
 * frees with rec_avrofile_list_free) and returns the count; CUT_ERR_IO.
 */
long rec_avrofile_list(const char *dir, const char *prefix, char ***out);
void rec_avrofile_list_free(char **list);

#endif
