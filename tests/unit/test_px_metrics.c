/* Unit tests for proxy/px_metrics: the proxy's series tables and their exposition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/metrics.h"
#include "proxy/px_metrics.h"
#include "proxy/px_upstream.h"

struct fixture {
  struct cfg cfg;
  struct cfg_backend be[3];
  struct cfg_dial dial;
  struct cfg_experiment exp;
  struct cfg_allocation alloc;
  struct cfg_cell cells[2];
  struct cfg_route routes[2];
};

static void fixture_init(struct fixture *f) {
  memset(f, 0, sizeof *f);
  f->be[0].name = "old";
  f->be[1].name = "new";
  f->be[2].name = "exp";
  f->dial = (struct cfg_dial){.name = "checkout-v2", .ppm = 50000, .to = "new", .to_index = 1};
  f->exp = (struct cfg_experiment){.name = "canary-1", .canary = "exp", .canary_index = 2,
                                   .baseline = "old", .baseline_index = 0, .autostart = 1};
  f->cells[0] = (struct cfg_cell){.name = "a", .backend = "old", .backend_index = 0};
  f->cells[1] = (struct cfg_cell){.name = "b", .backend = "new", .backend_index = 1};
  f->alloc = (struct cfg_allocation){.name = "ab", .cells = f->cells, .ncells = 2};
  f->routes[0] = (struct cfg_route){.name = "checkout", .backend_index = 0, .dial_index = 0,
                                    .experiment_index = 0, .allocation_index = SIZE_MAX};
  f->routes[1] = (struct cfg_route){.name = "search", .backend_index = 0,
                                    .dial_index = SIZE_MAX, .experiment_index = SIZE_MAX,
                                    .allocation_index = 0};
  f->cfg.backends = f->be;
  f->cfg.nbackends = 3;
  f->cfg.dials = &f->dial;
  f->cfg.ndials = 1;
  f->cfg.experiments = &f->exp;
  f->cfg.nexperiments = 1;
  f->cfg.allocations = &f->alloc;
  f->cfg.nallocations = 1;
  f->cfg.routes = f->routes;
  f->cfg.nroutes = 2;
}

static double sample(const char *text, const char *line_prefix) {
  /* Samples never start the text (a # HELP line does), so look for a line start. */
  char want[512];
  snprintf(want, sizeof want, "\n%s", line_prefix);
  const char *p = strstr(text, want);
  if (!p)
    fail_msg("no sample %s in:\n%s", line_prefix, text);
  return strtod(p + strlen(want), NULL);
}

static void test_px_metrics_requests_by_decision(void **state) {
  (void)state;
  struct fixture f;
  fixture_init(&f);
  struct met_registry *r;
  assert_int_equal(met_registry_new(&r, 2, 16384), 0);
  struct px_metrics *m;
  char err[256];
  assert_int_equal(px_metrics_new(&m, r, &f.cfg, err, sizeof err), 0);
  struct dial_decision dn = {.backend_index = 1, .via = DIAL_VIA_DIAL, .name = "checkout-v2",
                             .arm = "new"};
  struct dial_decision dold = {.backend_index = 0, .via = DIAL_VIA_DIAL, .name = "checkout-v2",
                               .arm = "old"};
  struct dial_decision odd = {.backend_index = 0, .via = DIAL_VIA_ALLOCATION, .name = "zz",
                              .arm = "zz"};
  struct dial_decision cell_b = {.backend_index = 1, .via = DIAL_VIA_ALLOCATION, .name = "ab",
                                 .arm = "b"};
  px_metrics_request(m, 0, 0, &dn, 1, 200, 2000, 10, 100);
  px_metrics_request(m, 1, 0, &dn, 1, 503, 40000, 0, 5);
  px_metrics_request(m, 1, 0, &dold, 0, 204, 500, 0, 0);
  px_metrics_request(m, 0, 0, NULL, 0, 0, 100, 0, 0);    /* reset before any response */
  px_metrics_request(m, 0, 0, &odd, 0, 200, 100, 0, 0);  /* not foreseen: "other" */
  px_metrics_request(m, 0, 1, &cell_b, 1, 404, 100, 0, 0);
  px_metrics_request(m, 0, 7, &dn, 1, 200, 100, 0, 0);   /* unknown route: ignored */
  px_metrics_dial(m, 0, 125000);
  px_metrics_experiment(m, 0, 0);
  px_metrics_conn_open(m, 0, PX_METRICS_H2);
  px_metrics_conn_open(m, 1, PX_METRICS_H2);
  px_metrics_conn_close(m, 0, PX_METRICS_H2);
  px_metrics_stream_open(m, 0);
  px_metrics_failover(m, 0, 1);
  px_metrics_ejection(m, 0, 1);
  px_metrics_connect_failure(m, 1, 1);
  struct px_pool_stats d = {.connects = 3, .connect_failures = 2, .retries = 4, .pipelined = 5,
                            .timeouts = 6, .resets = 7};
  px_metrics_pool(m, 0, 1, &d);
  px_metrics_pool(m, 1, 1, &d);
  px_metrics_pool(m, 0, 9, &d); /* unknown backend: ignored */
  px_metrics_reload(m, 0);

  char *t;
  assert_int_equal(met_render(r, &t, NULL), 0);
  const char *q = "cutover_requests_total{route=\"checkout\",";
  char line[256];
  snprintf(line, sizeof line, "%svia=\"dial\",decision=\"checkout-v2\",arm=\"new\",status_class=\"2xx\"} ", q);
  assert_true(sample(t, line) == 1);
  snprintf(line, sizeof line, "%svia=\"dial\",decision=\"checkout-v2\",arm=\"new\",status_class=\"5xx\"} ", q);
  assert_true(sample(t, line) == 1);
  snprintf(line, sizeof line, "%svia=\"dial\",decision=\"checkout-v2\",arm=\"old\",status_class=\"2xx\"} ", q);
  assert_true(sample(t, line) == 1);
  snprintf(line, sizeof line, "%svia=\"default\",decision=\"\",arm=\"\",status_class=\"none\"} ", q);
  assert_true(sample(t, line) == 1);
  snprintf(line, sizeof line, "%svia=\"other\",decision=\"\",arm=\"\",status_class=\"2xx\"} ", q);
  assert_true(sample(t, line) == 1);
  assert_true(sample(t, "cutover_requests_total{route=\"search\",via=\"allocation\",decision=\"ab\","
                        "arm=\"b\",status_class=\"4xx\"} ") == 1);
  /* Experiment arms exist (at zero) before any traffic. */
  assert_true(sample(t, "cutover_requests_total{route=\"checkout\",via=\"experiment\","
                        "decision=\"canary-1\",arm=\"baseline\",status_class=\"5xx\"} ") == 0);
  assert_true(sample(t, "cutover_request_duration_seconds_count{route=\"checkout\",backend=\"new\"} ") == 2);
  assert_true(sample(t, "cutover_request_duration_seconds_bucket{route=\"checkout\",backend=\"new\",le=\"0.0025\"} ") == 1);
  /* The route "search" cannot reach "exp": no series for it. */
  assert_null(strstr(t, "route=\"search\",backend=\"exp\""));
  assert_true(sample(t, "cutover_received_bytes_total{route=\"checkout\"} ") == 10);
  assert_true(sample(t, "cutover_sent_bytes_total{route=\"checkout\"} ") == 105);
  assert_true(sample(t, "cutover_dial_ratio{dial=\"checkout-v2\"} ") == 0.125);
  assert_true(sample(t, "cutover_experiment_running{experiment=\"canary-1\"} ") == 0);
  assert_true(sample(t, "cutover_client_connections{protocol=\"h2\"} ") == 1);
  assert_true(sample(t, "cutover_client_connections_total{protocol=\"h2\"} ") == 2);
  assert_true(sample(t, "cutover_client_streams ") == 1);
  assert_true(sample(t, "cutover_upstream_failovers_total{backend=\"new\"} ") == 1);
  assert_true(sample(t, "cutover_upstream_ejections_total{backend=\"new\"} ") == 1);
  assert_true(sample(t, "cutover_upstream_connect_failures_total{backend=\"new\"} ") == 1 + 4);
  assert_true(sample(t, "cutover_upstream_connects_total{backend=\"new\"} ") == 6);
  assert_true(sample(t, "cutover_upstream_retries_total{backend=\"new\"} ") == 8);
  assert_true(sample(t, "cutover_upstream_pipelined_total{backend=\"new\"} ") == 10);
  assert_true(sample(t, "cutover_upstream_timeouts_total{backend=\"new\"} ") == 12);
  assert_true(sample(t, "cutover_upstream_resets_total{backend=\"new\"} ") == 14);
  assert_true(sample(t, "cutover_config_reloads_total{result=\"rejected\"} ") == 1);
  free(t);

  /* A reload builds a new set over the same registry: counters carry on. */
  struct px_metrics *m2;
  assert_int_equal(px_metrics_new(&m2, r, &f.cfg, err, sizeof err), 0);
  px_metrics_free(m);
  px_metrics_request(m2, 0, 0, &dn, 1, 200, 2000, 0, 0);
  assert_int_equal(met_render(r, &t, NULL), 0);
  snprintf(line, sizeof line, "%svia=\"dial\",decision=\"checkout-v2\",arm=\"new\",status_class=\"2xx\"} ", q);
  assert_true(sample(t, line) == 2);
  free(t);
  px_metrics_free(m2);
  px_metrics_free(NULL);
  met_registry_free(r);
  assert_string_equal(px_metrics_status_class(302), "3xx");
  assert_string_equal(px_metrics_status_class(0), "none");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_px_metrics_requests_by_decision),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
