/* rec_drain: publishes spill files to Kafka and deletes each file once all of it is acknowledged. */
#ifndef CUT_REC_DRAIN_H
#define CUT_REC_DRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "replay/rec_stats.h"

/*
 * Drain reads the finished spill files (`spill-*.avro`) of a directory in the
 * order they were written, publishes every record (key = correlation id,
 * value = single-object encoding) with an idempotent, acks=all producer, and
 * deletes a file only after Kafka acknowledged every record in it. It stops
 * at the first file that is not fully acknowledged and keeps that file and
 * every later one, so a re-run resumes there. Delivery is at least once: a
 * re-run may publish again records of a file that was partly acknowledged;
 * consumers deduplicate by correlation id. A lock file (`.drain.lock`) keeps
 * two drains off the same directory. A damaged file (cut short or corrupt)
 * has its readable records published; once all of them are acknowledged it
 * is renamed to `NAME.damaged` (kept, never listed again) and the drain goes
 * on with the next file. Blocking: for the command line.
 */
struct rec_drain_opts {
  const char *dir;
  const char *brokers;
  const char *topic;            /* default cutover.pairs */
  const struct cfg_kv *props;   /* extra librdkafka properties */
  size_t nprops;
  int file_timeout_ms;          /* wait for one file's acknowledgements; 0 = 60000 */
};

struct rec_drain_result {
  uint64_t files_done;          /* published and deleted */
  uint64_t records;             /* acknowledged records of deleted files */
  uint64_t files_left;          /* still in the directory */
  uint64_t files_damaged;       /* renamed to NAME.damaged (also counted in files_done) */
};

/* Returns 0 when every file was drained, else CUT_ERR_KAFKA (a file was not
 * fully acknowledged), CUT_ERR_PARSE (every file was handled but some were
 * damaged; err names the first and its first unreadable record), CUT_ERR_IO, CUT_ERR_AVRO, CUT_ERR_STATE (another
 * drain holds the lock), CUT_ERR_CONFIG, with err text. `stats` (may be
 * NULL) gets `drained` added. */
int rec_drain(const struct rec_drain_opts *o, struct rec_stats *stats,
              struct rec_drain_result *res, char *err, size_t errlen);

#endif
