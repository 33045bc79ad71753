/* Unit tests for replay/rec_kafka and rec_drain against librdkafka's mock cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "replay/rec_avro.h"
#include "replay/rec_avrofile.h"
#include "replay/rec_drain.h"
#include "replay/rec_kafka.h"
#include "rec_fixture.h"

#define MAXN 1000

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void submit_range(struct rec_sink *s, struct rec_codec *c, int from, int to, int expect_rc) {
  for (int i = from; i < to; i++) {
    char id[32];
    snprintf(id, sizeof id, "k-%05d", i);
    struct rec_pair *p;
    assert_int_equal(rec_pair_new(&p, NULL, id, i, "route"), 0);
    assert_int_equal(rec_pair_set_request(p, "GET", "example.com", "/x"), 0);
    int rc = rec_sink_submit_pair(s, c, p);
    if (expect_rc >= 0)
      assert_int_equal(rc, expect_rc);
    rec_pair_free(p);
  }
}

/* Reads the topic from the beginning until `want` distinct records (k-00000..)
 * were seen or 15 s passed. Returns the number of distinct ids; every record
 * must decode and carry its correlation id as the key. */
static int consume_distinct(const char *bootstrap, const char *topic, int partitions, int want,
                            struct rec_codec *c) {
  char errstr[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr), 0);
  assert_int_equal(rd_kafka_conf_set(conf, "group.id", "test", errstr, sizeof errstr), 0);
  assert_int_equal(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr), 0);
  rec_kafka_conf_logging(conf);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  assert_non_null(rk);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++)
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  /* assign(), not subscribe(): no group join, so no 3 s wait. */
  assert_int_equal(rd_kafka_assign(rk, l), 0);
  rd_kafka_topic_partition_list_destroy(l);
  static unsigned char seen[MAXN];
  memset(seen, 0, sizeof seen);
  int distinct = 0;
  int64_t deadline = now_ms() + 15000;
  while (distinct < want && now_ms() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m)
      continue;
    if (!m->err) {
      struct rec_pair *p;
      assert_int_equal(rec_codec_decode(c, m->payload, m->len, &p), 0);
      assert_int_equal(m->key_len, strlen(p->correlation_id));
      assert_memory_equal(m->key, p->correlation_id, m->key_len);
      int idx = atoi(p->correlation_id + 2);
      assert_true(idx >= 0 && idx < MAXN);
      if (!seen[idx]++)
        distinct++;
      rec_pair_free(p);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return distinct;
}

/* Reads the whole topic from the beginning: returns the number of records,
 * stopping 1 s after `want` were seen (so extra copies are counted) or after
 * 15 s; `seen[i]` counts the copies of k-<i>. */
static int consume_count(const char *bootstrap, const char *topic, int partitions, int want,
                         unsigned char *seen, struct rec_codec *c) {
  char errstr[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr), 0);
  assert_int_equal(rd_kafka_conf_set(conf, "group.id", "count", errstr, sizeof errstr), 0);
  rec_kafka_conf_logging(conf);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  assert_non_null(rk);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++)
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  assert_int_equal(rd_kafka_assign(rk, l), 0);
  rd_kafka_topic_partition_list_destroy(l);
  memset(seen, 0, MAXN);
  int total = 0;
  int64_t deadline = now_ms() + 15000;
  while (now_ms() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (total >= want && deadline > now_ms() + 1000)
      deadline = now_ms() + 1000;
    if (!m)
      continue;
    if (!m->err) {
      struct rec_pair *p;
      assert_int_equal(rec_codec_decode(c, m->payload, m->len, &p), 0);
      int idx = atoi(p->correlation_id + 2);
      assert_true(idx >= 0 && idx < MAXN);
      seen[idx]++;
      total++;
      rec_pair_free(p);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return total;
}

static struct cfg_kv fast_timeout[] = {{.key = "message.timeout.ms", .value = "1500"}};

static void test_rec_kafka_produce_and_read_back(void **state) {
  (void)state;
  struct rec_broker *b;
  char err[512];
  assert_int_equal(rec_broker_new(&b, 1, "pairs", 3, err, sizeof err), 0);
  assert_non_null(strstr(rec_broker_bootstrap(b), "127.0.0.1:"));
  char *dir = rec_fixture_make_dir("kafka");
  struct rec_kafka_opts o = {.brokers = rec_broker_bootstrap(b), .topic = "pairs", .spill_dir = dir};
  struct rec_sink *s;
  assert_int_equal(rec_sink_kafka_new(&s, &o, err, sizeof err), 0);
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  submit_range(s, c, 0, 200, 0);
  rec_sink_flush(s, 10000);
  struct rec_stats_view v;
  rec_sink_stats(s, &v);
  assert_int_equal(v.produced, 200);
  assert_int_equal(v.delivered, 200);
  assert_int_equal(v.failed, 0);
  assert_int_equal(v.spilled, 0);
  assert_int_equal(v.queue_depth, 0);
  rec_sink_free(s);
  assert_int_equal(consume_distinct(rec_broker_bootstrap(b), "pairs", 3, 200, c), 200);
  rec_codec_free(c);
  rec_broker_free(b);
  rec_fixture_remove_dir(dir);
}

static void test_rec_kafka_bad_config(void **state) {
  (void)state;
  struct rec_sink *s = NULL;
  char err[512] = "";
  struct cfg_kv bad[] = {{.key = "no.such.property", .value = "1"}};
  struct rec_kafka_opts o = {.brokers = "127.0.0.1:1", .props = bad, .nprops = 1};
  assert_int_equal(rec_sink_kafka_new(&s, &o, err, sizeof err), CUT_ERR_CONFIG);
  assert_non_null(strstr(err, "no.such.property"));
  /* Records Kafka would refuse for their size are dropped, not spilled (they would block the drain). */
  struct cfg_kv small[] = {{.key = "message.max.bytes", .value = "1000"}};
  char *dir = rec_fixture_make_dir("kafka");
  struct rec_kafka_opts t = {.brokers = "127.0.0.1:1", .props = small, .nprops = 1,
                             .spill_dir = dir, .shutdown_timeout_ms = 100};
  assert_int_equal(rec_sink_kafka_new(&s, &t, err, sizeof err), 0);
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, NULL, "big", 1, "r"), 0);
  static uint8_t body[5000];
  assert_int_equal(rec_pair_request_body(p, body, sizeof body), 0);
  assert_int_equal(rec_sink_submit_pair(s, c, p), CUT_ERR_FULL);
  struct rec_stats_view v;
  rec_sink_stats(s, &v);
  assert_int_equal(v.dropped[REC_DROP_TOO_LARGE], 1);
  assert_int_equal(v.spilled, 0);
  rec_pair_free(p);
  rec_codec_free(c);
  rec_sink_free(s);
  s = NULL;
  rec_fixture_remove_dir(dir);
  struct rec_kafka_opts e = {.brokers = "embedded"};
  assert_int_equal(rec_sink_kafka_new(&s, &e, err, sizeof err), CUT_ERR_INVALID);
  assert_null(s);
}

/* Broker down while producing: records spill; drain after it is back; nothing lost. */
static void test_rec_kafka_broker_down_spill_drain(void **state) {
  (void)state;
  struct rec_broker *b;
  char err[512];
  assert_int_equal(rec_broker_new(&b, 1, "pairs", 3, err, sizeof err), 0);
  char *dir = rec_fixture_make_dir("kafka");
  struct rec_kafka_opts o = {.brokers = rec_broker_bootstrap(b),
                             .topic = "pairs",
                             .spill_dir = dir,
                             .props = fast_timeout,
                             .nprops = 1,
                             .shutdown_timeout_ms = 500};
  struct rec_sink *s;
  assert_int_equal(rec_sink_kafka_new(&s, &o, err, sizeof err), 0);
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  submit_range(s, c, 0, 50, 0);
  rec_sink_flush(s, 10000);

  assert_int_equal(rec_broker_set_down(b, 1), 0);
  submit_range(s, c, 50, 150, 0);
  struct rec_stats_view v;
  int64_t deadline = now_ms() + 15000;
  do {
    usleep(50000);
    rec_sink_stats(s, &v);
  } while (v.delivered + v.spilled < 150 && now_ms() < deadline);
  rec_sink_flush(s, 0);
  rec_sink_stats(s, &v);
  assert_int_equal(v.delivered, 50);
  assert_int_equal(v.failed, 100);
  assert_int_equal(v.spilled, 100);
  assert_int_equal(v.dropped_total, 0);
  rec_sink_free(s);

  /* A drain while the broker is still down keeps every file. */
  struct rec_drain_opts d = {.dir = dir, .brokers = rec_broker_bootstrap(b), .topic = "pairs",
                             .props = fast_timeout, .nprops = 1, .file_timeout_ms = 3000};
  struct rec_drain_result res;
  char **files;
  long nfiles = rec_avrofile_list(dir, "spill", &files);
  assert_true(nfiles >= 1);
  rec_avrofile_list_free(files);
  assert_int_equal(rec_drain(&d, NULL, &res, err, sizeof err), CUT_ERR_KAFKA);
  assert_int_equal(res.files_done, 0);
  assert_int_equal(rec_avrofile_list(dir, "spill", &files), nfiles);
  rec_avrofile_list_free(files);

  assert_int_equal(rec_broker_set_up(b, 1), 0);
  struct rec_stats st = {0};
  int rc = rec_drain(&d, &st, &res, err, sizeof err);
  if (rc)
    fail_msg("drain: %s", err);
  assert_int_equal(res.records, 100);
  assert_int_equal(res.files_left, 0);
  assert_int_equal(atomic_load(&st.drained), 100);
  assert_int_equal(rec_avrofile_list(dir, "spill", &files), 0);
  rec_avrofile_list_free(files);
  /* Sent 150, read back 150 distinct correlation ids. */
  assert_int_equal(consume_distinct(rec_broker_bootstrap(b), "pairs", 3, 150, c), 150);
  rec_codec_free(c);
  rec_broker_free(b);
  rec_fixture_remove_dir(dir);
}

static int count_one_cb(const uint8_t *rec, size_t len, void *ud) {
  (void)rec;
  (void)len;
  (*(long *)ud)++;
  return 0;
}

/* Writes spill file `k` of the damaged-drain test: records k*20..k*20+19 in
 * at least two blocks. */
static void write_spill_file(const char *dir, struct rec_codec *c, int k) {
  struct rec_stats st = {0};
  struct rec_avrofile *f;
  struct rec_avrofile_opts o = {.dir = dir, .prefix = "spill"};
  assert_int_equal(rec_avrofile_new(&f, &o, &st, &st.spilled, NULL, 0), 0);
  for (int i = k * 20; i < k * 20 + 20; i++) {
    char id[32];
    snprintf(id, sizeof id, "k-%05d", i);
    struct rec_pair *p;
    assert_int_equal(rec_pair_new(&p, NULL, id, i, "route"), 0);
    uint8_t *buf;
    size_t len;
    assert_int_equal(rec_codec_encode(c, p, &buf, &len), 0);
    assert_int_equal(rec_avrofile_push(f, buf + REC_SOE_HEADER_LEN, len - REC_SOE_HEADER_LEN), 0);
    free(buf);
    rec_pair_free(p);
    if (i == k * 20 + 9)
      rec_avrofile_flush(f);
  }
  rec_avrofile_free(f);
  usleep(2000); /* file names order by microsecond */
}

/* Three spill files, the middle one cut short: the drain publishes files 1
 * and 3 and the readable half of 2 exactly once, renames 2 to .damaged,
 * fails at the end, and a second drain publishes nothing more. */
static void test_rec_kafka_drain_damaged_file(void **state) {
  (void)state;
  struct rec_broker *b;
  char err[1024];
  assert_int_equal(rec_broker_new(&b, 1, "pairs", 3, err, sizeof err), 0);
  char *dir = rec_fixture_make_dir("kafka");
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  for (int k = 0; k < 3; k++)
    write_spill_file(dir, c, k);
  char **files;
  assert_int_equal(rec_avrofile_list(dir, "spill", &files), 3);
  struct stat sb;
  assert_int_equal(stat(files[1], &sb), 0);
  assert_int_equal(truncate(files[1], sb.st_size - 20), 0);
  /* How many records stay readable depends on where the writer cut blocks. */
  long readable = 0;
  assert_int_equal(rec_avrofile_each(files[1], count_one_cb, &readable, err, sizeof err),
                   CUT_ERR_PARSE);
  assert_true(readable >= 10 && readable < 20);
  char damaged[4200];
  snprintf(damaged, sizeof damaged, "%s.damaged", files[1]);
  rec_avrofile_list_free(files);

  struct rec_drain_opts d = {.dir = dir, .brokers = rec_broker_bootstrap(b), .topic = "pairs"};
  struct rec_drain_result res;
  err[0] = 0;
  assert_int_equal(rec_drain(&d, NULL, &res, err, sizeof err), CUT_ERR_PARSE);
  assert_non_null(strstr(err, "damaged"));
  assert_non_null(strstr(err, "spill-"));
  assert_int_equal(res.files_done, 3);
  assert_int_equal(res.files_damaged, 1);
  assert_int_equal(res.files_left, 0);
  assert_int_equal(res.records, 40 + readable);
  assert_int_equal(stat(damaged, &sb), 0);
  assert_int_equal(rec_avrofile_list(dir, "spill", &files), 0);
  rec_avrofile_list_free(files);

  static unsigned char seen[MAXN];
  assert_int_equal(consume_count(rec_broker_bootstrap(b), "pairs", 3, 40 + readable, seen, c),
                   40 + readable);
  for (int i = 0; i < 60; i++)
    assert_int_equal(seen[i], i >= 20 + readable && i < 40 ? 0 : 1);

  /* A second drain finds nothing to do and keeps the damaged file. */
  assert_int_equal(rec_drain(&d, NULL, &res, err, sizeof err), 0);
  assert_int_equal(res.files_done, 0);
  assert_int_equal(res.records, 0);
  assert_int_equal(stat(damaged, &sb), 0);
  assert_int_equal(consume_count(rec_broker_bootstrap(b), "pairs", 3, 40 + readable, seen, c),
                   40 + readable);
  rec_codec_free(c);
  rec_broker_free(b);
  rec_fixture_remove_dir(dir);
}

static int count_cb(const uint8_t *rec, size_t len, void *ud) {
  (void)rec;
  (void)len;
  (void)ud;
  return 0;
}

/* A full producer queue spills at once; what is queued at shutdown is purged into the spill. */
static void test_rec_kafka_queue_full(void **state) {
  (void)state;
  struct rec_broker *b;
  char err[512];
  assert_int_equal(rec_broker_new(&b, 1, "pairs", 1, err, sizeof err), 0);
  assert_int_equal(rec_broker_set_down(b, 1), 0);
  char *dir = rec_fixture_make_dir("kafka");
  struct rec_kafka_opts o = {.brokers = rec_broker_bootstrap(b),
                             .topic = "pairs",
                             .queue_max_messages = 5,
                             .spill_dir = dir,
                             .shutdown_timeout_ms = 200};
  struct rec_sink *s;
  assert_int_equal(rec_sink_kafka_new(&s, &o, err, sizeof err), 0);
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  submit_range(s, c, 0, 20, 0);
  rec_sink_flush(s, 0);
  struct rec_stats_view v;
  rec_sink_stats(s, &v);
  assert_int_equal(v.produced, 5);
  assert_int_equal(v.spilled, 15);
  assert_int_equal(v.queue_depth, 5);
  rec_sink_free(s);
  s = NULL;
  /* The 5 queued ones were purged at shutdown and spilled: 20 records on disk. */
  char **files;
  long n = rec_avrofile_list(dir, "spill", &files);
  assert_true(n >= 1);
  long total = 0;
  for (long i = 0; i < n; i++) {
    long got = rec_avrofile_each(files[i], count_cb, NULL, NULL, 0);
    assert_true(got > 0);
    total += got;
  }
  rec_avrofile_list_free(files);
  assert_int_equal(total, 20);
  rec_codec_free(c);
  rec_broker_free(b);
  rec_fixture_remove_dir(dir);
}

struct worker_arg {
  struct rec_sink *sink;
  int from, to;
};

static void *worker_main(void *arg) {
  struct worker_arg *w = arg;
  struct rec_codec *c; /* one codec per thread, as in the proxy */
  if (rec_codec_new(&c, NULL, 0))
    return NULL;
  for (int i = w->from; i < w->to; i++) {
    char id[32];
    snprintf(id, sizeof id, "k-%05d", i);
    struct rec_pair *p;
    if (rec_pair_new(&p, NULL, id, i, "route"))
      break;
    rec_sink_submit_pair(w->sink, c, p);
    rec_pair_free(p);
  }
  rec_codec_free(c);
  return NULL;
}

/* One sink shared by four threads while the broker goes down and up: every
 * record is delivered or spilled, and after a drain all are in Kafka. */
static void test_rec_kafka_threads(void **state) {
  (void)state;
  struct rec_broker *b;
  char err[512];
  assert_int_equal(rec_broker_new(&b, 1, "pairs", 3, err, sizeof err), 0);
  char *dir = rec_fixture_make_dir("kafka");
  struct rec_kafka_opts o = {.brokers = rec_broker_bootstrap(b), .topic = "pairs", .spill_dir = dir,
                             .queue_max_messages = 100, .props = fast_timeout, .nprops = 1,
                             .shutdown_timeout_ms = 500};
  struct rec_sink *s;
  assert_int_equal(rec_sink_kafka_new(&s, &o, err, sizeof err), 0);
  pthread_t t[4];
  struct worker_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (struct worker_arg){s, i * 200, (i + 1) * 200};
    assert_int_equal(pthread_create(&t[i], NULL, worker_main, &args[i]), 0);
    if (i == 1)
      assert_int_equal(rec_broker_set_down(b, 1), 0);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(rec_broker_set_up(b, 1), 0);
  rec_sink_flush(s, 10000);
  struct rec_stats_view v;
  rec_sink_stats(s, &v);
  rec_sink_free(s);
  assert_int_equal(v.dropped_total, 0);
  struct rec_drain_opts d = {.dir = dir, .brokers = rec_broker_bootstrap(b), .topic = "pairs"};
  struct rec_drain_result res;
  int rc = rec_drain(&d, NULL, &res, err, sizeof err);
  if (rc)
    fail_msg("drain: %s", err);
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  assert_int_equal(consume_distinct(rec_broker_bootstrap(b), "pairs", 3, 800, c), 800);
  rec_codec_free(c);
  rec_broker_free(b);
  rec_fixture_remove_dir(dir);
}

/* The user's properties apply, but never over the delivery guarantees. */
static void test_rec_kafka_conf_producer_guarantees_win(void **state) {
  (void)state;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const struct cfg_kv props[] = {{"acks", "1", 0}, {"linger.ms", "7", 0}};
  char err[256] = "";
  assert_int_equal(rec_kafka_conf_producer(conf, props, 2, "127.0.0.1:9", err, sizeof err), 0);
  char v[64];
  size_t n = sizeof v;
  assert_int_equal(rd_kafka_conf_get(conf, "acks", v, &n), RD_KAFKA_CONF_OK);
  assert_true(strcmp(v, "all") == 0 || strcmp(v, "-1") == 0);
  n = sizeof v;
  assert_int_equal(rd_kafka_conf_get(conf, "linger.ms", v, &n), RD_KAFKA_CONF_OK);
  assert_string_equal(v, "7");
  n = sizeof v;
  assert_int_equal(rd_kafka_conf_get(conf, "bootstrap.servers", v, &n), RD_KAFKA_CONF_OK);
  assert_string_equal(v, "127.0.0.1:9");

  const struct cfg_kv bad[] = {{"no.such.property", "1", 0}};
  assert_int_equal(rec_kafka_conf_producer(conf, bad, 1, "127.0.0.1:9", err, sizeof err),
                   CUT_ERR_CONFIG);
  assert_non_null(strstr(err, "no.such.property"));

  /* A secret value (sasl.password, ${VAR}) never reaches the error text. */
  const struct cfg_kv secret[] = {{"acks", "hunter2", 1}};
  assert_int_equal(rec_kafka_conf_producer(conf, secret, 1, "127.0.0.1:9", err, sizeof err),
                   CUT_ERR_CONFIG);
  assert_non_null(strstr(err, "acks"));
  assert_null(strstr(err, "hunter2"));
  rd_kafka_conf_destroy(conf);
}

int main(void) {
  log_setup(LOG_ERROR, LOG_TEXT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rec_kafka_bad_config),
      cmocka_unit_test(test_rec_kafka_conf_producer_guarantees_win),
      cmocka_unit_test(test_rec_kafka_produce_and_read_back),
      cmocka_unit_test(test_rec_kafka_broker_down_spill_drain),
      cmocka_unit_test(test_rec_kafka_drain_damaged_file),
      cmocka_unit_test(test_rec_kafka_queue_full),
      cmocka_unit_test(test_rec_kafka_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
