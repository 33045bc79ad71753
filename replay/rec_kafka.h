/* rec_kafka: the Kafka sink (one shared idempotent producer, spill on failure) and the embedded broker. */
#ifndef CUT_REC_KAFKA_H
#define CUT_REC_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "replay/rec_sink.h"

/*
 * The Kafka sink owns one librdkafka producer shared by every worker thread
 * (`enable.idempotence=true`, `acks=all`), keyed by correlation id so both
 * sides of a pair land in one partition. Workers only call rd_kafka_produce()
 * (non-blocking); delivery reports are served by a dedicated poll thread.
 *
 * A record goes to the spill (rec_avrofile.h, prefix "spill") when:
 *  - the producer queue is full (RD_KAFKA_RESP_ERR__QUEUE_FULL) or produce
 *    fails otherwise;
 *  - its delivery report carries an error (broker unreachable past
 *    message.timeout.ms, default here 30 s; topic errors; ...);
 *  - the producer hit a fatal error;
 *  - it is still queued at shutdown after the shutdown timeout (purged).
 * When the spill is full too, the record is dropped and counted.
 */

struct rec_kafka_opts {
  const char *brokers;            /* bootstrap list (never "embedded": pass the broker's bootstrap) */
  const char *topic;              /* default cutover.pairs */
  const char *compression;        /* none|gzip|snappy|lz4|zstd; NULL = lz4 */
  uint64_t linger_ms;             /* default 5 when 0 */
  uint32_t queue_max_messages;    /* default 100000 when 0 */
  const struct cfg_kv *props;     /* extra librdkafka properties, applied before the fixed ones */
  size_t nprops;
  const char *spill_dir;          /* NULL = no spill: failures are dropped (REC_DROP_NO_SPILL) */
  uint64_t spill_max_bytes;       /* 0 = no cap */
  uint64_t spill_segment_bytes;   /* 0 = 64 MiB */
  int shutdown_timeout_ms;        /* how long rec_sink_free waits for deliveries; 0 = 5000 */
};

/* Fills `o` from a recording config; `brokers` overrides rc->brokers (the
 * embedded broker's bootstrap when rc->brokers is "embedded"). Borrows rc. */
void rec_kafka_opts_from_cfg(struct rec_kafka_opts *o, const struct cfg_recording *rc,
                             const char *brokers);

/* Creates the sink, its producer, poll thread and spill. Returns 0 or
 * CUT_ERR_CONFIG (bad property), CUT_ERR_KAFKA, CUT_ERR_IO, CUT_ERR_NOMEM with
 * err text. Caller frees with rec_sink_free(). */
int rec_sink_kafka_new(struct rec_sink **out, const struct rec_kafka_opts *o, char *err,
                       size_t errlen);

/*
 * Embedded broker: librdkafka's mock cluster running inside this process, for
 * development and demos. It listens on 127.0.0.1 only, on ephemeral ports,
 * and keeps only about 5 MiB per partition (older messages are dropped).
 */
struct rec_broker;

/* Starts `nbrokers` mock brokers and creates `topic` with `partitions`
 * partitions. Returns 0 or CUT_ERR_KAFKA / CUT_ERR_NOMEM with err text.
 * Caller frees with rec_broker_free(). */
int rec_broker_new(struct rec_broker **out, int nbrokers, const char *topic, int partitions,
                   char *err, size_t errlen);

/* The bootstrap list ("127.0.0.1:PORT,..."), owned by the broker. */
const char *rec_broker_bootstrap(const struct rec_broker *b);

/* Creates another topic. Returns 0 or CUT_ERR_KAFKA. */
int rec_broker_topic_create(struct rec_broker *b, const char *topic, int partitions);

/* Takes broker `id` (1-based) down or up again, for tests. Returns 0 or CUT_ERR_KAFKA. */
int rec_broker_set_down(struct rec_broker *b, int id);
int rec_broker_set_up(struct rec_broker *b, int id);

/* For tests: the next `n` requests of Kafka API `api_key` (e.g. 8, OffsetCommit) fail with
 * error `err` (an rd_kafka_resp_err_t); n == 0 clears what is still queued for that API. */
void rec_broker_fail_requests(struct rec_broker *b, int16_t api_key, size_t n, int err);

/* Stops the mock cluster. NULL is ok. */
void rec_broker_free(struct rec_broker *b);

/* Routes librdkafka's log lines to common/log (module "kafka"); `conf` is an rd_kafka_conf_t. */
void rec_kafka_conf_logging(void *conf);

/* Sets one property on `conf` (an rd_kafka_conf_t, borrowed). Returns 0, or
 * CUT_ERR_CONFIG with "kafka property KEY=VALUE: reason" in err. */
int rec_kafka_conf_set(void *conf, const char *key, const char *value, char *err, size_t errlen);

/* Applies what every cutover producer sets after its own defaults: the user's
 * `props` (borrowed, in order), then `brokers` as bootstrap.servers, then the
 * delivery guarantees (enable.idempotence=true, acks=all), which the user
 * cannot override. Stops at the first rejected property. Returns 0, or
 * CUT_ERR_CONFIG with the rejected property in err (only the key for a
 * property marked secret); `conf` stays owned by the
 * caller either way. */
int rec_kafka_conf_producer(void *conf, const struct cfg_kv *props, size_t nprops,
                            const char *brokers, char *err, size_t errlen);

#endif
