/* Unit tests for replay/rec_metrics: atomics copied into the registry when /metrics is rendered. */
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
#include "replay/rec_metrics.h"

static char *render(struct met_registry *reg) {
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(met_render(reg, &text, &len), 0);
  return text;
}

static void has_line(const char *text, const char *line) {
  char want[256];
  snprintf(want, sizeof want, "\n%s\n", line);
  if (!strstr(text, want))
    fail_msg("missing line \"%s\" in:\n%s", line, text);
}

static void test_rec_metrics_exact_counts(void **state) {
  (void)state;
  struct met_registry *reg = NULL;
  assert_int_equal(met_registry_new(&reg, 3, 256), 0);
  struct rec_sink sink;
  memset(&sink, 0, sizeof sink);
  struct rec_mirror_stats ms;
  memset(&ms, 0, sizeof ms);
  struct rec_compare_stats cs;
  memset(&cs, 0, sizeof cs);
  struct rec_metrics_src src = {.sink = &sink, .mirror = &ms, .compare = &cs};
  struct rec_metrics *m = NULL;
  char err[256] = "";
  assert_int_equal(rec_metrics_new(&m, reg, &src, err, sizeof err), 0);

  char *t = render(reg); /* every series is there from the start */
  has_line(t, "cutover_record_produced_total 0");
  has_line(t, "cutover_record_dropped_total{reason=\"spill_full\"} 0");
  has_line(t, "cutover_shadow_skipped_total{reason=\"inflight\"} 0");
  has_line(t, "cutover_compare_skipped_total{reason=\"queue_full\"} 0");
  has_line(t, "cutover_compare_queue_depth 0");
  free(t);

  rec_stat_add(&sink.stats, produced, 7);
  rec_stat_add(&sink.stats, delivered, 5);
  rec_stat_add(&sink.stats, dropped[REC_DROP_TOO_LARGE], 2);
  rec_stat_add(&sink.stats, queue_depth, 2);
  atomic_store(&ms.sent, 9);
  atomic_store(&ms.skipped_by[REC_SHADOW_SKIP_INFLIGHT], 4);
  atomic_store(&ms.failed, 1);
  atomic_store(&cs.matches, 6);
  atomic_store(&cs.mismatches, 3);
  t = render(reg);
  has_line(t, "cutover_record_produced_total 7");
  has_line(t, "cutover_record_delivered_total 5");
  has_line(t, "cutover_record_dropped_total{reason=\"too_large\"} 2");
  has_line(t, "cutover_record_queue_depth 2");
  has_line(t, "cutover_shadow_sent_total 9");
  has_line(t, "cutover_shadow_skipped_total{reason=\"inflight\"} 4");
  has_line(t, "cutover_shadow_failed_total 1");
  has_line(t, "cutover_compare_matches_total 6");
  has_line(t, "cutover_compare_mismatches_total 3");
  free(t);

  /* a second render adds only what changed since */
  rec_stat_add(&sink.stats, produced, 1);
  rec_stat_add(&sink.stats, queue_depth, -2);
  t = render(reg);
  has_line(t, "cutover_record_produced_total 8");
  has_line(t, "cutover_record_delivered_total 5");
  has_line(t, "cutover_record_queue_depth 0");
  free(t);

  /* once freed, the collector no longer runs: the series keep their last value */
  rec_metrics_free(m);
  rec_stat_add(&sink.stats, produced, 100);
  t = render(reg);
  has_line(t, "cutover_record_produced_total 8");
  free(t);
  met_registry_free(reg);
}

static void test_rec_metrics_without_sources(void **state) {
  (void)state;
  struct met_registry *reg = NULL;
  assert_int_equal(met_registry_new(&reg, 2, 256), 0);
  struct rec_metrics_src src = {0};
  struct rec_metrics *m = NULL;
  char err[256] = "";
  assert_int_equal(rec_metrics_new(&m, reg, &src, err, sizeof err), 0);
  char *t = render(reg);
  has_line(t, "cutover_record_delivered_total 0");
  has_line(t, "cutover_compare_mismatches_total 0");
  free(t);
  rec_metrics_free(m);
  rec_metrics_free(NULL);
  met_registry_free(reg);
}

static void count_cb(void *ud) { (*(int *)ud)++; }

static void test_rec_metrics_collectors_bounded(void **state) {
  (void)state;
  struct met_registry *reg = NULL;
  assert_int_equal(met_registry_new(&reg, 1, 16), 0);
  int calls[MET_MAX_COLLECTORS + 1] = {0};
  for (int i = 0; i < MET_MAX_COLLECTORS; i++)
    assert_int_equal(met_registry_add_collector(reg, count_cb, &calls[i]), 0);
  assert_int_equal(met_registry_add_collector(reg, count_cb, &calls[MET_MAX_COLLECTORS]),
                   CUT_ERR_FULL);
  met_registry_remove_collector(reg, count_cb, &calls[0]);
  free(render(reg));
  assert_int_equal(calls[0], 0);
  assert_int_equal(calls[1], 1);
  assert_int_equal(calls[MET_MAX_COLLECTORS - 1], 1);
  met_registry_free(reg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rec_metrics_exact_counts),
      cmocka_unit_test(test_rec_metrics_without_sources),
      cmocka_unit_test(test_rec_metrics_collectors_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
