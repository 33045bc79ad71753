/* Unit tests for common/metrics: registration, sharded updates, Prometheus exposition. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "common/metrics.h"

/* Finds the sample line "NAME{LABELS} VALUE" (LABELS exactly as rendered, or
 * "" for none) in an exposition and returns its value; fails the test when
 * the line is absent. Also checks that every line is a comment or a sample. */
static double sample(const char *text, const char *name, const char *labels) {
  char want[512];
  snprintf(want, sizeof want, "%s%s%s%s ", name, *labels ? "{" : "", labels, *labels ? "}" : "");
  const char *line = text;
  while (*line) {
    const char *eol = strchr(line, '\n');
    assert_non_null(eol); /* every line ends in \n */
    if (strncmp(line, want, strlen(want)) == 0)
      return strtod(line + strlen(want), NULL);
    line = eol + 1;
  }
  fail_msg("no sample %s in:\n%s", want, text);
  return -1;
}

static void check_well_formed(const char *text) {
  const char *line = text;
  while (*line) {
    const char *eol = strchr(line, '\n');
    assert_non_null(eol);
    if (*line == '#') {
      assert_true(strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0);
    } else {
      const char *sp = memchr(line, ' ', (size_t)(eol - line));
      assert_non_null(sp);
      char *end;
      (void)strtod(sp + 1, &end);
      assert_ptr_equal(end, eol); /* the value runs to the end of the line */
    }
    line = eol + 1;
  }
}

static void test_metrics_counter_exposition(void **state) {
  (void)state;
  struct met_registry *r;
  assert_int_equal(met_registry_new(&r, 3, 1024), 0);
  static const char *const labels[] = {"route", "status_class"};
  struct met_family_def d = {.name = "cutover_requests_total",
                             .help = "Requests by route and status class.",
                             .type = MET_COUNTER,
                             .labels = labels,
                             .nlabels = 2};
  struct met_family *f;
  assert_int_equal(met_family_register(r, &d, &f, NULL, 0), 0);
  struct met_series *ok = met_series_get(f, (const char *const[]){"checkout", "2xx"});
  struct met_series *bad = met_series_get(f, (const char *const[]){"checkout", "5xx"});
  assert_non_null(ok);
  assert_ptr_equal(met_series_get(f, (const char *const[]){"checkout", "2xx"}), ok);
  met_counter_add(ok, 0, 3);
  met_counter_add(ok, 1, 4);
  met_counter_add(ok, 99, 5); /* out-of-range shard folds onto the last one */
  met_counter_add(bad, 2, 1);
  met_counter_add(NULL, 0, 1); /* no-op */
  assert_int_equal(met_series_value(ok), 12);

  char *text;
  size_t len;
  assert_int_equal(met_render(r, &text, &len), 0);
  assert_int_equal(strlen(text), len);
  check_well_formed(text);
  assert_non_null(strstr(text, "# HELP cutover_requests_total Requests by route and status class.\n"
                               "# TYPE cutover_requests_total counter\n"));
  assert_true(sample(text, "cutover_requests_total", "route=\"checkout\",status_class=\"2xx\"") ==
              12);
  assert_true(sample(text, "cutover_requests_total", "route=\"checkout\",status_class=\"5xx\"") ==
              1);
  free(text);
  met_registry_free(r);
}

static void test_metrics_gauge_divisor(void **state) {
  (void)state;
  struct met_registry *r;
  assert_int_equal(met_registry_new(&r, 2, 64), 0);
  static const char *const labels[] = {"dial"};
  struct met_family_def d = {.name = "cutover_dial_ratio", .help = "Dial value (0..1).",
                             .type = MET_GAUGE, .labels = labels, .nlabels = 1,
                             .divisor = 1e6};
  struct met_family *f;
  assert_int_equal(met_family_register(r, &d, &f, NULL, 0), 0);
  struct met_series *s = met_series_get(f, (const char *const[]){"checkout-v2"});
  met_gauge_set(s, 125000);
  struct met_series *conns = met_simple(r, MET_GAUGE, "cutover_client_connections", "Open.");
  met_gauge_add(conns, 0, 5);
  met_gauge_add(conns, 1, 2);
  met_gauge_add(conns, 0, -3);
  assert_int_equal(met_series_value(conns), 4);
  char *text;
  assert_int_equal(met_render(r, &text, NULL), 0);
  check_well_formed(text);
  assert_true(sample(text, "cutover_dial_ratio", "dial=\"checkout-v2\"") == 0.125);
  assert_true(sample(text, "cutover_client_connections", "") == 4);
  assert_non_null(strstr(text, "# TYPE cutover_dial_ratio gauge\n"));
  free(text);
  met_registry_free(r);
}

static void test_metrics_histogram(void **state) {
  (void)state;
  struct met_registry *r;
  assert_int_equal(met_registry_new(&r, 2, 256), 0);
  static const uint64_t b[] = {1000, 10000, 100000};
  static const char *const labels[] = {"backend"};
  struct met_family_def d = {.name = "cutover_upstream_latency_seconds", .help = "Latency.",
                             .type = MET_HISTOGRAM, .labels = labels, .nlabels = 1,
                             .divisor = 1e6, .buckets = b, .nbuckets = 3};
  struct met_family *f;
  assert_int_equal(met_family_register(r, &d, &f, NULL, 0), 0);
  struct met_series *s = met_series_get(f, (const char *const[]){"new"});
  met_hist_observe(s, 0, 500);     /* <= 1ms */
  met_hist_observe(s, 1, 1000);    /* == bound: in the 1ms bucket */
  met_hist_observe(s, 0, 5000);    /* <= 10ms */
  met_hist_observe(s, 1, 2000000); /* +Inf */
  char *text;
  assert_int_equal(met_render(r, &text, NULL), 0);
  check_well_formed(text);
  const char *n = "cutover_upstream_latency_seconds_bucket";
  assert_true(sample(text, n, "backend=\"new\",le=\"0.001\"") == 2);
  assert_true(sample(text, n, "backend=\"new\",le=\"0.01\"") == 3);
  assert_true(sample(text, n, "backend=\"new\",le=\"0.1\"") == 3);
  assert_true(sample(text, n, "backend=\"new\",le=\"+Inf\"") == 4);
  assert_true(sample(text, "cutover_upstream_latency_seconds_count", "backend=\"new\"") == 4);
  double sum = sample(text, "cutover_upstream_latency_seconds_sum", "backend=\"new\"");
  assert_true(sum > 2.0064 && sum < 2.0066);
  assert_non_null(strstr(text, "# TYPE cutover_upstream_latency_seconds histogram\n"));
  free(text);
  met_registry_free(r);
}

static void test_metrics_cardinality_fold(void **state) {
  (void)state;
  struct met_registry *r;
  assert_int_equal(met_registry_new(&r, 1, 64), 0);
  static const char *const labels[] = {"route"};
  struct met_family_def d = {.name = "cutover_x_total", .help = "X.", .type = MET_COUNTER,
                             .labels = labels, .nlabels = 1, .max_series = 2};
  struct met_family *f;
  assert_int_equal(met_family_register(r, &d, &f, NULL, 0), 0);
  struct met_series *a = met_series_get(f, (const char *const[]){"a"});
  struct met_series *b = met_series_get(f, (const char *const[]){"b"});
  struct met_series *c = met_series_get(f, (const char *const[]){"c"});
  struct met_series *e = met_series_get(f, (const char *const[]){"e"});
  assert_non_null(c);
  assert_ptr_not_equal(a, b);
  assert_ptr_equal(c, e); /* both folded */
  met_counter_add(c, 0, 1);
  met_counter_add(e, 0, 1);
  char *text;
  assert_int_equal(met_render(r, &text, NULL), 0);
  assert_true(sample(text, "cutover_x_total", "route=\"_other\"") == 2);
  assert_null(strstr(text, "route=\"c\""));
  free(text);
  met_registry_free(r);
}

static void test_metrics_escaping(void **state) {
  (void)state;
  struct met_registry *r;
  assert_int_equal(met_registry_new(&r, 1, 16), 0);
  static const char *const labels[] = {"path"};
  struct met_family_def d = {.name = "cutover_y_total", .help = "Back\\slash\nnewline.",
                             .type = MET_COUNTER, .labels = labels, .nlabels = 1};
  struct met_family *f;
  assert_int_equal(met_family_register(r, &d, &f, NULL, 0), 0);
  met_counter_add(met_series_get(f, (const char *const[]){"a\"b\\c\nd"}), 0, 7);
  char *text;
  assert_int_equal(met_render(r, &text, NULL), 0);
  assert_non_null(strstr(text, "# HELP cutover_y_total Back\\\\slash\\nnewline.\n"));
  assert_true(sample(text, "cutover_y_total", "path=\"a\\\"b\\\\c\\nd\"") == 7);
  free(text);
  met_registry_free(r);
}

static void test_metrics_rejects_bad_definitions(void **state) {
  (void)state;
  struct met_registry *r;
  assert_int_equal(met_registry_new(&r, 1, 16), 0);
  struct met_family *f;
  char err[128];
  struct met_family_def d = {.name = "cutover_requests", .help = "", .type = MET_COUNTER};
  assert_int_equal(met_family_register(r, &d, &f, err, sizeof err), CUT_ERR_INVALID);
  assert_non_null(strstr(err, "_total"));
  d.name = "9bad_total";
  assert_int_equal(met_family_register(r, &d, &f, err, sizeof err), CUT_ERR_INVALID);
  static const char *const le[] = {"le"};
  static const uint64_t b[] = {2, 1};
  struct met_family_def h = {.name = "h_seconds", .type = MET_HISTOGRAM, .labels = le,
                             .nlabels = 1, .buckets = b, .nbuckets = 2};
  assert_int_equal(met_family_register(r, &h, &f, err, sizeof err), CUT_ERR_INVALID);
  h.nlabels = 0;
  assert_int_equal(met_family_register(r, &h, &f, err, sizeof err), CUT_ERR_INVALID);
  assert_non_null(strstr(err, "ascending"));
  /* Same name twice: same shape is idempotent, another shape is refused. */
  struct met_family_def g = {.name = "g", .type = MET_GAUGE};
  struct met_family *g1, *g2;
  assert_int_equal(met_family_register(r, &g, &g1, NULL, 0), 0);
  assert_int_equal(met_family_register(r, &g, &g2, NULL, 0), 0);
  assert_ptr_equal(g1, g2);
  assert_ptr_equal(met_family_find(r, "g"), g1);
  g.type = MET_HISTOGRAM;
  g.buckets = b + 1;
  g.nbuckets = 1;
  assert_int_equal(met_family_register(r, &g, &g2, err, sizeof err), CUT_ERR_EXISTS);
  met_registry_free(r);
  met_registry_free(NULL);
}

static void test_metrics_out_of_cells(void **state) {
  (void)state;
  struct met_registry *r;
  assert_int_equal(met_registry_new(&r, 1, 8), 0); /* rounded up to one line: 8 cells */
  static const char *const labels[] = {"k"};
  struct met_family_def d = {.name = "z_total", .type = MET_COUNTER, .labels = labels,
                             .nlabels = 1};
  struct met_family *f;
  assert_int_equal(met_family_register(r, &d, &f, NULL, 0), 0);
  char name[8];
  struct met_series *last = NULL;
  /* The fold series took cell 0; v0..v6 take the other seven. */
  for (int i = 0; i < 7; i++) {
    snprintf(name, sizeof name, "v%d", i);
    last = met_series_get(f, (const char *const[]){name});
  }
  assert_non_null(last);
  struct met_series *fold = met_series_get(f, (const char *const[]){"v7"});
  assert_non_null(fold);
  assert_ptr_not_equal(fold, last);
  assert_ptr_equal(met_series_get(f, (const char *const[]){"v8"}), fold);
  struct met_family_def d2 = {.name = "w_total", .type = MET_COUNTER};
  assert_int_equal(met_family_register(r, &d2, &f, NULL, 0), 0);
  assert_null(met_series_get(f, NULL));
  met_registry_free(r);
}

struct adder {
  struct met_series *s;
  unsigned shard;
};

static void *add_many(void *arg) {
  struct adder *a = arg;
  for (int i = 0; i < 200000; i++)
    met_counter_add(a->s, a->shard, 1);
  return NULL;
}

static void test_metrics_threads(void **state) {
  (void)state;
  struct met_registry *r;
  assert_int_equal(met_registry_new(&r, 3, 16), 0);
  struct met_series *s = met_simple(r, MET_COUNTER, "t_total", "T.");
  /* Four threads on three shards: two share the last shard, which must still be exact. */
  pthread_t t[4];
  struct adder a[4];
  for (unsigned i = 0; i < 4; i++) {
    a[i] = (struct adder){s, i};
    assert_int_equal(pthread_create(&t[i], NULL, add_many, &a[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(met_series_value(s), 800000);
  met_registry_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_metrics_counter_exposition),
      cmocka_unit_test(test_metrics_gauge_divisor),
      cmocka_unit_test(test_metrics_histogram),
      cmocka_unit_test(test_metrics_cardinality_fold),
      cmocka_unit_test(test_metrics_escaping),
      cmocka_unit_test(test_metrics_rejects_bad_definitions),
      cmocka_unit_test(test_metrics_out_of_cells),
      cmocka_unit_test(test_metrics_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
