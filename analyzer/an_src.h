/* an_src: where recorded pairs come from: Avro container files and Kafka topics. */
#ifndef AN_SRC_H
#define AN_SRC_H

#include <stddef.h>
#include <stdint.h>

#include "analyzer/an_record.h"

/* Receives each decoded record (takes ownership). Nonzero stops the source
 * and is returned by it. */
typedef int (*an_src_record_fn)(struct an_record *rec, void *user_data);

/* Reads every record of an Avro container file of Pair records (any codec
 * avro-c reads: null, deflate); when `path` is a directory, every *.avro
 * file in it, in name order (none is fine). Returns 0, the callback's
 * error, CUT_ERR_IO (cannot open) or CUT_ERR_AVRO (malformed, truncated,
 * or not Pair records; err names the file and the record number). */
int an_src_file(const char *path, an_src_record_fn fn, void *user_data, char *err, size_t errlen);

struct an_kafka_opts {
  const char *bootstrap;
  const char *topic;
  const char *group;    /* NULL: assign every partition; else subscribe in this group
                           (a record reaches `fn` only once its offset is committed) */
  int from;             /* AN_FROM_EARLIEST, AN_FROM_LATEST or AN_FROM_TIME */
  int64_t from_ms;      /* AN_FROM_TIME: message timestamp, ms since the epoch */
  int64_t until_ms;     /* stop at messages newer than this (0 = no limit) */
  int follow;           /* keep waiting at the end of the partitions */
  volatile int *stop;   /* set to nonzero (e.g. from a signal handler) to stop */
  const char *const *properties; /* librdkafka "KEY=VALUE" settings, applied last */
  size_t nproperties;
  /* Group mode: records read but not yet committed. Past this many (0 =
   * 100000) the member pauses its partitions until a commit goes through,
   * so a coordinator that refuses commits for long cannot make it hold
   * every record of the topic in memory. */
  size_t max_pending;
  struct an_kafka_stats *stats; /* optional: filled in as the consumer runs */
};

/* What a group member did about commits (see an_kafka_opts.stats). */
struct an_kafka_stats {
  uint64_t commits;          /* offset commits tried */
  uint64_t commits_refused;  /* of which the coordinator refused or failed */
  uint64_t holds;            /* times the partitions were paused for max_pending */
  uint64_t pending_peak;     /* most records read but not yet committed at once */
};
#define AN_FROM_EARLIEST 0
#define AN_FROM_LATEST 1
#define AN_FROM_TIME 2

/*
 * Consumes Pair records in Avro single-object encoding (C3 01, the 8-byte
 * CRC-64-AVRO fingerprint of pair.avsc, the record) from a topic, until
 * every partition's end (unless follow) or `until_ms`. Messages with
 * another header or fingerprint are counted in *skipped and otherwise
 * ignored. Returns 0, the callback's error, or CUT_ERR_KAFKA (err text).
 */
int an_src_kafka(const struct an_kafka_opts *o, an_src_record_fn fn, void *user_data,
                 uint64_t *skipped, char *err, size_t errlen);

#endif
