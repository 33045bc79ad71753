/* Unit tests for replay/rec_compare: one pair compared under a route's ignore list, and the comparison thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "analyzer/an_rules.h"
#include "common/cut_err.h"
#include "replay/rec_compare.h"

/* A config with one live route "api" ignoring `ignore` (NULL = nothing). */
struct fixture {
  struct cfg cfg;
  struct cfg_route route;
  char *paths[2];
};

static void fixture_init(struct fixture *f, const char *ignore) {
  memset(f, 0, sizeof *f);
  f->route.name = "api";
  f->route.compare = CFG_COMPARE_LIVE;
  if (ignore) {
    f->paths[0] = (char *)ignore;
    f->route.compare_ignore.v = f->paths;
    f->route.compare_ignore.n = 1;
  }
  f->cfg.routes = &f->route;
  f->cfg.nroutes = 1;
}

static void add_side(struct rec_pair *p, enum rec_side side, int status, const char *body,
                     const char *error) {
  struct rec_response *r;
  assert_int_equal(rec_pair_add_response(p, side, side == REC_SIDE_PRIMARY ? "old" : "new", &r), 0);
  assert_int_equal(rec_response_set_status(p, r, status, "h:1"), 0);
  assert_int_equal(rec_response_header(p, r, "content-type", 12, "application/json", 16), 0);
  if (body)
    assert_int_equal(rec_response_body(p, r, (const uint8_t *)body, strlen(body)), 0);
  assert_int_equal(rec_response_finish(p, r, 1000, error), 0);
}

static struct rec_pair *make_pair(const char *route, int s1, const char *b1, int s2,
                                  const char *b2, const char *shadow_error) {
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, NULL, "id-1", 1, route), 0);
  assert_int_equal(rec_pair_set_request(p, "GET", "example", "/a?b=1"), 0);
  add_side(p, REC_SIDE_PRIMARY, s1, b1, NULL);
  add_side(p, REC_SIDE_SHADOW, s2, b2, shadow_error);
  return p;
}

static int compare(const char *ignore, const char *route, struct rec_pair *p) {
  struct fixture f;
  fixture_init(&f, ignore);
  struct an_rules *rules = NULL;
  char err[256] = "";
  assert_int_equal(rec_compare_rules_new(&rules, &f.cfg, err, sizeof err), 0);
  struct an_result res;
  an_result_init(&res);
  int rc = rec_compare_pair(rules, p, &res);
  an_result_clear(&res);
  an_rules_free(rules);
  rec_pair_free(p);
  return rc;
}

static void test_rec_compare_ignored_field_matches(void **state) {
  (void)state;
  const char *a = "{\"name\":\"x\",\"meta\":{\"time\":1,\"v\":2}}";
  const char *b = "{\"meta\":{\"v\":2,\"time\":9},\"name\":\"x\"}";
  assert_int_equal(compare("$.meta.time", "api", make_pair("api", 200, a, 200, b, NULL)),
                   REC_CMP_MATCH);
  /* the same bodies without the ignore list, or on another route, differ */
  assert_int_equal(compare(NULL, "api", make_pair("api", 200, a, 200, b, NULL)), REC_CMP_MISMATCH);
  assert_int_equal(compare("$.meta.time", "api", make_pair("other", 200, a, 200, b, NULL)),
                   REC_CMP_MISMATCH);
}

static void test_rec_compare_status_and_errors(void **state) {
  (void)state;
  const char *a = "{\"a\":1}";
  assert_int_equal(compare(NULL, "api", make_pair("api", 200, a, 200, a, NULL)), REC_CMP_MATCH);
  assert_int_equal(compare(NULL, "api", make_pair("api", 200, a, 503, a, NULL)), REC_CMP_MISMATCH);
  /* a shadow that timed out differs; one that was never sent is not compared */
  assert_int_equal(compare(NULL, "api", make_pair("api", 200, a, 0, NULL, "timeout")),
                   REC_CMP_MISMATCH);
  assert_int_equal(compare(NULL, "api", make_pair("api", 200, a, 0, NULL, "skipped")),
                   REC_CMP_NO_SHADOW);
}

static void test_rec_compare_truncated_bodies(void **state) {
  (void)state;
  struct rec_opts o = {.max_body = 4};
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, "id", 1, "api"), 0);
  add_side(p, REC_SIDE_PRIMARY, 200, "{\"a\":1,\"b\":2}", NULL);
  add_side(p, REC_SIDE_SHADOW, 200, "{\"a\":1,\"b\":3}", NULL);
  /* the kept prefixes are equal: only the checksums tell the bodies apart */
  assert_int_equal(compare(NULL, "api", p), REC_CMP_MISMATCH);
}

static void test_rec_compare_bad_path(void **state) {
  (void)state;
  struct fixture f;
  fixture_init(&f, "$");
  struct an_rules *rules = NULL;
  char err[256] = "";
  assert_int_equal(rec_compare_rules_new(&rules, &f.cfg, err, sizeof err), CUT_ERR_CONFIG);
  assert_non_null(strstr(err, "routes.api.compare_ignore"));
  assert_null(rules);
  fixture_init(&f, "$.a[");
  assert_int_equal(rec_compare_rules_new(&rules, &f.cfg, err, sizeof err), CUT_ERR_CONFIG);
}

/* ---- the thread, with a sink that counts what it is given ---- */

static int submitted;

static int count_submit(struct rec_sink *s, const char *key, size_t keylen, const uint8_t *rec,
                        size_t len) {
  (void)s;
  (void)rec;
  (void)len;
  assert_memory_equal(key, "id-1", keylen);
  submitted++;
  return 0;
}

static const struct rec_sink_ops count_ops = {.name = "count", .submit = count_submit};

static void test_rec_compare_thread_records_mismatches(void **state) {
  (void)state;
  struct fixture f;
  fixture_init(&f, "$.t");
  struct an_rules *rules = NULL;
  char err[256] = "";
  assert_int_equal(rec_compare_rules_new(&rules, &f.cfg, err, sizeof err), 0);
  struct rec_sink sink = {.ops = &count_ops};
  struct rec_compare_stats st;
  memset(&st, 0, sizeof st);
  struct rec_comparer *c = NULL;
  assert_int_equal(rec_comparer_new(&c, rules, &sink, &st, 8, err, sizeof err), 0);
  submitted = 0;
  for (int i = 0; i < 5; i++) {
    /* i = 1 and 3 differ in a field that counts */
    char b[64];
    snprintf(b, sizeof b, "{\"v\":%d,\"t\":%d}", i % 2 ? 2 : 1, i);
    assert_int_equal(rec_comparer_submit(c, make_pair("api", 200, "{\"v\":1,\"t\":0}", 200, b, NULL)),
                     0);
  }
  assert_int_equal(rec_comparer_submit(c, make_pair("api", 200, "{}", 0, NULL, "skipped")), 0);
  rec_comparer_flush(c);
  assert_int_equal(atomic_load(&st.matches), 3);
  assert_int_equal(atomic_load(&st.mismatches), 2);
  assert_int_equal(atomic_load(&st.skipped[REC_CMP_SKIP_NO_SHADOW]), 1);
  assert_int_equal(atomic_load(&st.recorded), 2);
  assert_int_equal(atomic_load(&st.queue_depth), 0);
  assert_int_equal(submitted, 2);
  rec_comparer_free(c);
}

/* A sink that holds the comparison thread until the test lets it go. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_waiting;

static int gate_submit(struct rec_sink *s, const char *key, size_t keylen, const uint8_t *rec,
                       size_t len) {
  (void)s, (void)key, (void)keylen, (void)rec, (void)len;
  pthread_mutex_lock(&gate_mu);
  gate_waiting = 1;
  pthread_cond_broadcast(&gate_cv);
  while (!gate_open)
    pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
  return 0;
}

static const struct rec_sink_ops gate_ops = {.name = "gate", .submit = gate_submit};

static void test_rec_compare_thread_queue_full(void **state) {
  (void)state;
  struct fixture f;
  fixture_init(&f, NULL);
  struct an_rules *rules = NULL;
  char err[256] = "";
  assert_int_equal(rec_compare_rules_new(&rules, &f.cfg, err, sizeof err), 0);
  struct rec_sink sink = {.ops = &gate_ops};
  struct rec_compare_stats st;
  memset(&st, 0, sizeof st);
  struct rec_comparer *c = NULL;
  assert_int_equal(rec_comparer_new(&c, rules, &sink, &st, 2, err, sizeof err), 0);
  /* the first mismatch holds the thread inside the sink */
  assert_int_equal(rec_comparer_submit(c, make_pair("api", 200, "{\"a\":1}", 200, "{\"a\":2}", NULL)), 0);
  pthread_mutex_lock(&gate_mu);
  while (!gate_waiting)
    pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
  int rcs[4];
  for (int i = 0; i < 4; i++) {
    struct rec_pair *p = make_pair("api", 200, "{\"a\":1}", 200, "{\"a\":1}", NULL);
    rcs[i] = rec_comparer_submit(c, p);
    if (rcs[i] != 0)
      rec_pair_free(p); /* still the caller's */
  }
  assert_int_equal(rcs[0], 0);
  assert_int_equal(rcs[1], 0);
  assert_int_equal(rcs[2], CUT_ERR_FULL);
  assert_int_equal(rcs[3], CUT_ERR_FULL);
  assert_int_equal(atomic_load(&st.queue_depth), 2);
  pthread_mutex_lock(&gate_mu);
  gate_open = 1;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
  rec_comparer_flush(c);
  assert_int_equal(atomic_load(&st.skipped[REC_CMP_SKIP_QUEUE_FULL]), 2);
  assert_int_equal(atomic_load(&st.mismatches), 1);
  assert_int_equal(atomic_load(&st.matches), 2);
  rec_comparer_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rec_compare_ignored_field_matches),
      cmocka_unit_test(test_rec_compare_status_and_errors),
      cmocka_unit_test(test_rec_compare_truncated_bodies),
      cmocka_unit_test(test_rec_compare_bad_path),
      cmocka_unit_test(test_rec_compare_thread_records_mismatches),
      cmocka_unit_test(test_rec_compare_thread_queue_full),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
