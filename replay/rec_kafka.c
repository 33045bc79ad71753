/* rec_kafka: Kafka sink with a delivery-report thread and spill, and the embedded mock broker. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "replay/rec_avro.h"
#include "replay/rec_avrofile.h"
#include "replay/rec_kafka.h"

static void on_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  (void)rk;
  /* syslog levels: 0..3 are errors, 4 warnings; the rest is debug chatter. */
  if (level <= 4)
    log_msg(LOG_WARN, "kafka", "%s: %s", fac, buf);
  else
    log_debug("kafka", "%s: %s", fac, buf);
}

void rec_kafka_conf_logging(void *conf) { rd_kafka_conf_set_log_cb(conf, on_log_cb); }

void rec_kafka_opts_from_cfg(struct rec_kafka_opts *o, const struct cfg_recording *rc,
                             const char *brokers) {
  memset(o, 0, sizeof *o);
  o->brokers = brokers ? brokers : rc->brokers;
  o->topic = rc->topic;
  o->compression = rc->compression;
  o->linger_ms = rc->linger_ms;
  o->queue_max_messages = rc->queue_max_messages;
  o->props = rc->kafka_props;
  o->nprops = rc->nkafka_props;
  o->spill_dir = rc->spill_dir;
  o->spill_max_bytes = rc->spill_max_bytes;
  o->spill_segment_bytes = rc->spill_segment_bytes;
}

struct kafka_sink {
  struct rec_sink base; /* first: the sink pointer is this struct's */
  rd_kafka_t *rk;
  rd_kafka_topic_t *rkt;
  struct rec_avrofile *spill;
  pthread_t poller;
  int poller_started;
  _Atomic int stop;
  _Atomic int fatal;
  int shutdown_timeout_ms;
};

/* Hands a single-object record to the spill (without its header). */
static int to_spill(struct kafka_sink *ks, const uint8_t *rec, size_t len) {
  if (!ks->spill || len < REC_SOE_HEADER_LEN) {
    rec_stat_add(&ks->base.stats, dropped[REC_DROP_NO_SPILL], 1);
    return CUT_ERR_FULL;
  }
  return rec_avrofile_push(ks->spill, rec + REC_SOE_HEADER_LEN, len - REC_SOE_HEADER_LEN)
             ? CUT_ERR_FULL
             : 0;
}

/* Runs on the poll thread (or in rec_sink_free), never on a worker. */
static void on_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  struct kafka_sink *ks = opaque;
  atomic_fetch_sub_explicit(&ks->base.stats.queue_depth, 1, memory_order_relaxed);
  if (m->err) {
    rec_stat_add(&ks->base.stats, failed, 1);
    log_debug("rec", "delivery failed: %s", rd_kafka_err2str(m->err));
    if (m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
      rec_stat_add(&ks->base.stats, dropped[REC_DROP_TOO_LARGE], 1);
    else
      to_spill(ks, m->payload, m->len);
  } else {
    rec_stat_add(&ks->base.stats, delivered, 1);
  }
}

static void on_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  struct kafka_sink *ks = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[256];
    rd_kafka_fatal_error(rk, buf, sizeof buf);
    atomic_store(&ks->fatal, 1);
    log_error("rec", "Kafka producer failed for good (%s): records go to the spill", buf);
    return;
  }
  log_warn("rec", "Kafka: %s: %s", rd_kafka_err2name(err), reason);
}

static void *poll_main(void *arg) {
  struct kafka_sink *ks = arg;
  while (!atomic_load(&ks->stop))
    rd_kafka_poll(ks->rk, 100);
  return NULL;
}

static int kafka_submit(struct rec_sink *s, const char *key, size_t keylen, const uint8_t *rec,
                        size_t len) {
  struct kafka_sink *ks = (struct kafka_sink *)s;
  if (atomic_load_explicit(&ks->fatal, memory_order_relaxed))
    return to_spill(ks, rec, len);
  /* Counted before producing: the report may arrive before produce returns. */
  atomic_fetch_add_explicit(&s->stats.queue_depth, 1, memory_order_relaxed);
  if (rd_kafka_produce(ks->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)rec, len, key,
                       keylen, NULL) == -1) {
    atomic_fetch_sub_explicit(&s->stats.queue_depth, 1, memory_order_relaxed);
    if (rd_kafka_last_error() == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
      rec_stat_add(&s->stats, dropped[REC_DROP_TOO_LARGE], 1);
      return CUT_ERR_FULL;
    }
    /* QUEUE_FULL is the usual case; any other refusal spills as well. */
    return to_spill(ks, rec, len);
  }
  rec_stat_add(&s->stats, produced, 1);
  return 0;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void kafka_flush(struct rec_sink *s, int timeout_ms) {
  struct kafka_sink *ks = (struct kafka_sink *)s;
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    if (atomic_load(&s->stats.queue_depth) <= 0)
      break;
    sleep_ms(10);
  }
  if (ks->spill)
    rec_avrofile_flush(ks->spill);
}

static void kafka_free(struct rec_sink *s) {
  struct kafka_sink *ks = (struct kafka_sink *)s;
  if (ks->poller_started) {
    atomic_store(&ks->stop, 1);
    pthread_join(ks->poller, NULL);
  }
  if (ks->rk) {
    /* Deliver what we can in time; whatever is left is purged, and its
     * delivery reports (with a purge error) send it to the spill. */
    rd_kafka_flush(ks->rk, ks->shutdown_timeout_ms);
    if (rd_kafka_outq_len(ks->rk) > 0) {
      rd_kafka_purge(ks->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_flush(ks->rk, 1000);
    }
  }
  if (ks->rkt)
    rd_kafka_topic_destroy(ks->rkt);
  if (ks->rk)
    rd_kafka_destroy(ks->rk);
  rec_avrofile_free(ks->spill); /* writes the queue, fsyncs */
  free(ks);
}

static const struct rec_sink_ops kafka_ops = {"kafka", kafka_submit, kafka_flush, kafka_free};

int rec_kafka_conf_set(void *conf, const char *k, const char *v, char *err, size_t errlen) {
  char errstr[512];
  if (rd_kafka_conf_set(conf, k, v, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
    return cut_errf(err, errlen, CUT_ERR_CONFIG, "kafka property %s=%s: %s", k, v, errstr);
  return 0;
}

int rec_kafka_conf_producer(void *conf, const struct cfg_kv *props, size_t nprops,
                            const char *brokers, char *err, size_t errlen) {
  int rc = 0;
  for (size_t i = 0; !rc && i < nprops; i++) {
    if (!props[i].secret) {
      rc = rec_kafka_conf_set(conf, props[i].key, props[i].value, err, errlen);
      continue;
    }
    /* librdkafka's reason may quote the value: name only the key. */
    char errstr[512];
    if (rd_kafka_conf_set(conf, props[i].key, props[i].value, errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK)
      rc = cut_errf(err, errlen, CUT_ERR_CONFIG, "kafka property %s: value rejected (secret, not shown)",
                    props[i].key);
  }
  if (!rc)
    rc = rec_kafka_conf_set(conf, "bootstrap.servers", brokers, err, errlen);
  if (!rc)
    rc = rec_kafka_conf_set(conf, "enable.idempotence", "true", err, errlen);
  if (!rc)
    rc = rec_kafka_conf_set(conf, "acks", "all", err, errlen);
  return rc;
}

int rec_sink_kafka_new(struct rec_sink **out, const struct rec_kafka_opts *o, char *err,
                       size_t errlen) {
  if (!o->brokers || !*o->brokers || !strcmp(o->brokers, "embedded"))
    return cut_errf(err, errlen, CUT_ERR_INVALID, "kafka sink: no bootstrap brokers");
  struct kafka_sink *ks = calloc(1, sizeof *ks);
  if (!ks)
    return CUT_ERR_NOMEM;
  ks->base.ops = &kafka_ops;
  ks->shutdown_timeout_ms = o->shutdown_timeout_ms ? o->shutdown_timeout_ms : 5000;
  int rc;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (!conf) {
    free(ks);
    return CUT_ERR_NOMEM;
  }
  char num[32];
  /* Defaults first, the user's properties next, the guarantees last. */
  rc = rec_kafka_conf_set(conf, "client.id", "cutover", err, errlen);
  if (!rc)
    rc = rec_kafka_conf_set(conf, "message.timeout.ms", "30000", err, errlen);
  if (!rc)
    rc = rec_kafka_conf_set(conf, "compression.type", o->compression ? o->compression : "lz4", err,
                            errlen);
  snprintf(num, sizeof num, "%llu", (unsigned long long)(o->linger_ms ? o->linger_ms : 5));
  if (!rc)
    rc = rec_kafka_conf_set(conf, "linger.ms", num, err, errlen);
  snprintf(num, sizeof num, "%u", o->queue_max_messages ? o->queue_max_messages : 100000u);
  if (!rc)
    rc = rec_kafka_conf_set(conf, "queue.buffering.max.messages", num, err, errlen);
  if (!rc)
    rc = rec_kafka_conf_producer(conf, o->props, o->nprops, o->brokers, err, errlen);
  if (rc) {
    rd_kafka_conf_destroy(conf);
    free(ks);
    return rc;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery_cb);
  rd_kafka_conf_set_error_cb(conf, on_error_cb);
  rec_kafka_conf_logging(conf);
  rd_kafka_conf_set_opaque(conf, ks);

  if (o->spill_dir) {
    struct rec_avrofile_opts so = {.dir = o->spill_dir,
                                   .prefix = "spill",
                                   .segment_bytes = o->spill_segment_bytes,
                                   .max_bytes = o->spill_max_bytes};
    rc = rec_avrofile_new(&ks->spill, &so, &ks->base.stats, &ks->base.stats.spilled, err, errlen);
    if (rc) {
      rd_kafka_conf_destroy(conf);
      free(ks);
      return rc;
    }
  }
  char errstr[512];
  ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!ks->rk) {
    rd_kafka_conf_destroy(conf);
    kafka_free(&ks->base);
    return cut_errf(err, errlen, CUT_ERR_KAFKA, "kafka producer: %s", errstr);
  }
  ks->rkt = rd_kafka_topic_new(ks->rk, o->topic ? o->topic : "cutover.pairs", NULL);
  if (!ks->rkt) {
    kafka_free(&ks->base);
    return cut_errf(err, errlen, CUT_ERR_KAFKA, "kafka topic: %s",
                    rd_kafka_err2str(rd_kafka_last_error()));
  }
  if (pthread_create(&ks->poller, NULL, poll_main, ks) != 0) {
    kafka_free(&ks->base);
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "cannot start the Kafka poll thread");
  }
  ks->poller_started = 1;
  *out = &ks->base;
  return 0;
}

/* ---- embedded broker ---- */

struct rec_broker {
  rd_kafka_t *rk; /* the mock cluster lives inside this handle */
  rd_kafka_mock_cluster_t *mc;
  char *bootstrap;
};

int rec_broker_new(struct rec_broker **out, int nbrokers, const char *topic, int partitions,
                   char *err, size_t errlen) {
  struct rec_broker *b = calloc(1, sizeof *b);
  if (!b)
    return CUT_ERR_NOMEM;
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rec_kafka_conf_logging(conf);
  rd_kafka_conf_set(conf, "client.id", "cutover-embedded-broker", NULL, 0);
  b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!b->rk) {
    rd_kafka_conf_destroy(conf);
    free(b);
    return cut_errf(err, errlen, CUT_ERR_KAFKA, "embedded broker: %s", errstr);
  }
  b->mc = rd_kafka_mock_cluster_new(b->rk, nbrokers > 0 ? nbrokers : 1);
  if (!b->mc) {
    rec_broker_free(b);
    return cut_errf(err, errlen, CUT_ERR_KAFKA, "embedded broker: cannot start the mock cluster");
  }
  b->bootstrap = strdup(rd_kafka_mock_cluster_bootstraps(b->mc));
  if (!b->bootstrap) {
    rec_broker_free(b);
    return CUT_ERR_NOMEM;
  }
  if (topic && rec_broker_topic_create(b, topic, partitions)) {
    rec_broker_free(b);
    return cut_errf(err, errlen, CUT_ERR_KAFKA, "embedded broker: cannot create topic %s", topic);
  }
  *out = b;
  return 0;
}

const char *rec_broker_bootstrap(const struct rec_broker *b) { return b->bootstrap; }

int rec_broker_topic_create(struct rec_broker *b, const char *topic, int partitions) {
  return rd_kafka_mock_topic_create(b->mc, topic, partitions > 0 ? partitions : 4, 1)
             ? CUT_ERR_KAFKA
             : 0;
}

int rec_broker_set_down(struct rec_broker *b, int id) {
  return rd_kafka_mock_broker_set_down(b->mc, id) ? CUT_ERR_KAFKA : 0;
}

int rec_broker_set_up(struct rec_broker *b, int id) {
  return rd_kafka_mock_broker_set_up(b->mc, id) ? CUT_ERR_KAFKA : 0;
}

void rec_broker_fail_requests(struct rec_broker *b, int16_t api_key, size_t n, int err) {
  if (n == 0) {
    rd_kafka_mock_clear_request_errors(b->mc, api_key);
    return;
  }
  rd_kafka_resp_err_t *errs = malloc(n * sizeof *errs);
  if (!errs)
    return;
  for (size_t i = 0; i < n; i++)
    errs[i] = (rd_kafka_resp_err_t)err;
  rd_kafka_mock_push_request_errors_array(b->mc, api_key, n, errs);
  free(errs);
}

void rec_broker_free(struct rec_broker *b) {
  if (!b)
    return;
  if (b->mc)
    rd_kafka_mock_cluster_destroy(b->mc);
  if (b->rk)
    rd_kafka_destroy(b->rk);
  free(b->bootstrap);
  free(b);
}
