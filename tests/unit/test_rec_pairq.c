/* Unit tests for replay/rec_pairq: the recording thread, its bound, flush and shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "common/cut_err.h"
#include "replay/rec_avro.h"
#include "replay/rec_pairq.h"
#include "replay/rec_sink.h"

/* A sink that counts records, can hold its caller at a gate, and checks that
 * each record decodes to the pair that was queued. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int gate_closed, waiting, submitted;
static char last_key[64];

static void gate(void) {
  pthread_mutex_lock(&mu);
  waiting = 1;
  pthread_cond_broadcast(&cv);
  while (gate_closed)
    pthread_cond_wait(&cv, &mu);
  waiting = 0;
  pthread_mutex_unlock(&mu);
}

static int count_submit(struct rec_sink *s, const char *key, size_t keylen, const uint8_t *rec,
                        size_t len) {
  (void)s;
  assert_true(len > REC_SOE_HEADER_LEN && rec[0] == 0xC3);
  gate();
  pthread_mutex_lock(&mu);
  submitted++;
  snprintf(last_key, sizeof last_key, "%.*s", (int)keylen, key);
  pthread_mutex_unlock(&mu);
  return 0;
}

static const struct rec_sink_ops count_ops = {.name = "count", .submit = count_submit};

static void reset(void) {
  pthread_mutex_lock(&mu);
  gate_closed = waiting = submitted = 0;
  last_key[0] = '\0';
  pthread_mutex_unlock(&mu);
}

static struct rec_pair *pair(int i) {
  static const struct rec_opts o = {.max_body = 16};
  char id[32];
  snprintf(id, sizeof id, "id-%d", i);
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, id, i, "r"), 0);
  assert_int_equal(rec_pair_set_request(p, "GET", "a", "/x"), 0);
  return p;
}

static void test_rec_pairq_records_everything(void **state) {
  (void)state;
  reset();
  struct rec_sink sink = {.ops = &count_ops};
  char err[128] = "";
  assert_int_equal(rec_sink_start_thread(&sink, NULL, err, sizeof err), 0);
  assert_int_equal(rec_sink_start_thread(&sink, NULL, err, sizeof err), CUT_ERR_STATE);
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(rec_sink_record_pair(&sink, c, pair(i)), 0);
  rec_sink_flush(&sink, 0);
  assert_int_equal(submitted, 1000);
  assert_string_equal(last_key, "id-999"); /* in order */
  struct rec_stats_view v;
  rec_sink_stats(&sink, &v);
  assert_int_equal(v.pair_queue_depth, 0);
  assert_int_equal(v.pair_queue_full, 0);
  rec_pairq_free(sink.pairq);
  rec_codec_free(c);
}

static void test_rec_pairq_full_records_inline(void **state) {
  (void)state;
  reset();
  struct rec_sink sink = {.ops = &count_ops};
  struct rec_pairq_opts o = {.max_pairs = 4};
  assert_int_equal(rec_pairq_new(&sink.pairq, &sink, &o, NULL, 0), 0);
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  /* hold the thread inside the sink with its first pair */
  pthread_mutex_lock(&mu);
  gate_closed = 1;
  pthread_mutex_unlock(&mu);
  assert_int_equal(rec_sink_record_pair(&sink, c, pair(0)), 0);
  pthread_mutex_lock(&mu);
  while (!waiting)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  for (int i = 1; i <= 3; i++) /* fills the queue: pair 0 counts until it is recorded */
    assert_int_equal(rec_pairq_push(sink.pairq, pair(i)), 0);
  struct rec_pair *p = pair(4);
  assert_int_equal(rec_pairq_push(sink.pairq, p), CUT_ERR_FULL); /* still ours */
  rec_pair_free(p);
  struct rec_stats_view v;
  rec_sink_stats(&sink, &v);
  assert_int_equal(v.pair_queue_depth, 3); /* waiting; pair 0 is being recorded */
  assert_int_equal(v.pair_queue_full, 1);
  /* record_pair falls back to this thread: let the sink go for it */
  pthread_mutex_lock(&mu);
  gate_closed = 0;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  rec_pairq_free(sink.pairq); /* records what is queued before it stops */
  sink.pairq = NULL;
  assert_int_equal(submitted, 4);
  rec_sink_stats(&sink, &v);
  assert_int_equal(v.pair_queue_depth, 0);
  /* without a thread, record_pair encodes on the caller's thread */
  assert_int_equal(rec_sink_record_pair(&sink, c, pair(6)), 0);
  assert_int_equal(submitted, 5);
  rec_codec_free(c);
}

/* The byte bound: a pair counts until its memory is given back; one pair
 * always fits into an empty queue, whatever its size. */
static void test_rec_pairq_byte_bound(void **state) {
  (void)state;
  reset();
  struct rec_sink sink = {.ops = &count_ops};
  struct rec_pairq_opts o = {.max_pairs = 100, .max_bytes = 1};
  assert_int_equal(rec_pairq_new(&sink.pairq, &sink, &o, NULL, 0), 0);
  pthread_mutex_lock(&mu);
  gate_closed = 1;
  pthread_mutex_unlock(&mu);
  assert_int_equal(rec_pairq_push(sink.pairq, pair(0)), 0);
  pthread_mutex_lock(&mu);
  while (!waiting)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  struct rec_pair *p = pair(1);
  assert_int_equal(rec_pairq_push(sink.pairq, p), CUT_ERR_FULL); /* pair 0 is being recorded */
  rec_pair_free(p);
  pthread_mutex_lock(&mu);
  gate_closed = 0;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  rec_pairq_flush(sink.pairq);
  assert_int_equal(rec_pairq_push(sink.pairq, pair(2)), 0);
  rec_pairq_free(sink.pairq);
  assert_int_equal(submitted, 2);
  struct rec_stats_view v;
  rec_sink_stats(&sink, &v);
  assert_int_equal(v.pair_queue_full, 1);
}

/* Several producers at once: every pair is recorded exactly once. */
struct producer {
  struct rec_sink *sink;
  int base;
};

static void *produce_main(void *arg) {
  struct producer *pr = arg;
  struct rec_codec *c;
  if (rec_codec_new(&c, NULL, 0))
    return NULL;
  for (int i = 0; i < 500; i++)
    rec_sink_record_pair(pr->sink, c, pair(pr->base + i));
  rec_codec_free(c);
  return NULL;
}

static void test_rec_pairq_many_producers(void **state) {
  (void)state;
  reset();
  struct rec_sink sink = {.ops = &count_ops};
  struct rec_pairq_opts o = {.max_pairs = 64};
  assert_int_equal(rec_pairq_new(&sink.pairq, &sink, &o, NULL, 0), 0);
  pthread_t t[4];
  struct producer pr[4];
  for (int i = 0; i < 4; i++) {
    pr[i] = (struct producer){&sink, i * 1000};
    assert_int_equal(pthread_create(&t[i], NULL, produce_main, &pr[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  rec_sink_flush(&sink, 0);
  assert_int_equal(submitted, 2000);
  struct rec_stats_view v;
  rec_sink_stats(&sink, &v);
  assert_int_equal(v.pair_queue_depth, 0);
  rec_pairq_free(sink.pairq);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rec_pairq_records_everything),
      cmocka_unit_test(test_rec_pairq_full_records_inline),
      cmocka_unit_test(test_rec_pairq_byte_bound),
      cmocka_unit_test(test_rec_pairq_many_producers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
