/* Unit tests for proxy/px_health: check and ejection state machines, board, routing, checker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "proxy/px_health.h"

static const struct cfg_health hcfg = {.enabled = 1, .path = "/healthz", .interval_ms = 20,
                                       .timeout_ms = 200, .healthy_threshold = 2,
                                       .unhealthy_threshold = 3};

static void test_px_health_active_thresholds(void **state) {
  (void)state;
  struct px_hc h;
  px_hc_init(&h);
  assert_true(px_hc_usable(&h)); /* unknown counts as usable */
  assert_int_equal(px_hc_result(&h, &hcfg, 1), PX_HC_BECAME_HEALTHY);
  assert_int_equal(px_hc_result(&h, &hcfg, 0), PX_HC_NO_CHANGE);
  assert_int_equal(px_hc_result(&h, &hcfg, 0), PX_HC_NO_CHANGE);
  assert_int_equal(px_hc_result(&h, &hcfg, 1), PX_HC_NO_CHANGE); /* streak broken */
  assert_int_equal(px_hc_result(&h, &hcfg, 0), PX_HC_NO_CHANGE);
  assert_int_equal(px_hc_result(&h, &hcfg, 0), PX_HC_NO_CHANGE);
  assert_true(px_hc_usable(&h));
  assert_int_equal(px_hc_result(&h, &hcfg, 0), PX_HC_BECAME_UNHEALTHY);
  assert_false(px_hc_usable(&h));
  assert_int_equal(px_hc_result(&h, &hcfg, 1), PX_HC_NO_CHANGE);
  assert_int_equal(px_hc_result(&h, &hcfg, 0), PX_HC_NO_CHANGE);
  assert_int_equal(px_hc_result(&h, &hcfg, 1), PX_HC_NO_CHANGE);
  assert_int_equal(px_hc_result(&h, &hcfg, 1), PX_HC_BECAME_HEALTHY);
  assert_int_equal(h.checks, 11);
  assert_int_equal(h.failures, 6);
}

static void test_px_health_active_first_failure(void **state) {
  (void)state;
  struct px_hc h;
  px_hc_init(&h);
  assert_int_equal(px_hc_result(&h, &hcfg, 0), PX_HC_BECAME_UNHEALTHY);
  assert_false(px_hc_usable(&h));
}

static const struct cfg_outlier ocfg = {.consecutive_5xx = 3,
                                        .consecutive_connect_failures = 2,
                                        .base_ejection_ms = 1000,
                                        .max_ejection_ms = 5000,
                                        .max_ejected_ppm = 500000};

static void test_px_health_outlier_5xx_and_doubling(void **state) {
  (void)state;
  struct px_outlier *o;
  assert_int_equal(px_outlier_new(&o, &ocfg, 4), 0);
  struct px_outlier_host_info info;
  /* Two 5xx, an OK, two 5xx: not consecutive enough. */
  px_outlier_record(o, 0, PX_OUTCOME_5XX, 0);
  px_outlier_record(o, 0, PX_OUTCOME_5XX, 0);
  px_outlier_record(o, 0, PX_OUTCOME_OK, 0);
  px_outlier_record(o, 0, PX_OUTCOME_5XX, 0);
  assert_int_equal(px_outlier_record(o, 0, PX_OUTCOME_5XX, 0), PX_OUTLIER_NONE);
  assert_int_equal(px_outlier_record(o, 0, PX_OUTCOME_5XX, 100), PX_OUTLIER_EJECTED);
  assert_true(px_outlier_ejected(o, 0, 100));
  assert_int_equal(px_outlier_host_info(o, 0, &info), 0);
  assert_int_equal(info.until_ms, 1100);
  /* Results of in-flight exchanges while ejected are ignored. */
  assert_int_equal(px_outlier_record(o, 0, PX_OUTCOME_5XX, 200), PX_OUTLIER_NONE);
  assert_int_equal(px_outlier_tick(o, 1099), 0);
  assert_true(px_outlier_ejected(o, 0, 1099));
  assert_int_equal(px_outlier_tick(o, 1100), 1);
  assert_false(px_outlier_ejected(o, 0, 1100));
  /* Second ejection soon after: 2 s; third: 4 s; fourth: capped at 5 s. */
  uint64_t t = 1200, want[] = {2000, 4000, 5000, 5000};
  for (int k = 0; k < 4; k++) {
    for (int i = 0; i < 2; i++)
      assert_int_equal(px_outlier_record(o, 0, PX_OUTCOME_5XX, t), PX_OUTLIER_NONE);
    assert_int_equal(px_outlier_record(o, 0, PX_OUTCOME_5XX, t), PX_OUTLIER_EJECTED);
    px_outlier_host_info(o, 0, &info);
    assert_int_equal(info.until_ms - t, want[k]);
    t = info.until_ms;
    assert_int_equal(px_outlier_tick(o, t), 1);
  }
  assert_int_equal(info.total_ejections, 5);
  /* A host that stayed in for max_ejection_ms starts over at the base time. */
  t += 5000;
  for (int i = 0; i < 3; i++)
    px_outlier_record(o, 0, PX_OUTCOME_5XX, t);
  px_outlier_host_info(o, 0, &info);
  assert_int_equal(info.until_ms - t, 1000);
  px_outlier_free(o);
}

static void test_px_health_outlier_connect_failures(void **state) {
  (void)state;
  struct px_outlier *o;
  assert_int_equal(px_outlier_new(&o, &ocfg, 4), 0);
  assert_int_equal(px_outlier_record(o, 1, PX_OUTCOME_CONNECT_FAIL, 0), PX_OUTLIER_NONE);
  /* A 5xx proves it connected: the connect-failure streak resets. */
  assert_int_equal(px_outlier_record(o, 1, PX_OUTCOME_5XX, 0), PX_OUTLIER_NONE);
  assert_int_equal(px_outlier_record(o, 1, PX_OUTCOME_CONNECT_FAIL, 0), PX_OUTLIER_NONE);
  assert_int_equal(px_outlier_record(o, 1, PX_OUTCOME_CONNECT_FAIL, 0), PX_OUTLIER_EJECTED);
  assert_int_equal(px_outlier_nejected(o), 1);
  px_outlier_free(o);
}

static void test_px_health_outlier_cap(void **state) {
  (void)state;
  struct px_outlier *o;
  assert_int_equal(px_outlier_new(&o, &ocfg, 4), 0); /* 50% of 4 = 2 */
  for (size_t h = 0; h < 3; h++) {
    px_outlier_record(o, h, PX_OUTCOME_CONNECT_FAIL, 0);
    enum px_outlier_event e = px_outlier_record(o, h, PX_OUTCOME_CONNECT_FAIL, 0);
    assert_int_equal(e, h < 2 ? PX_OUTLIER_EJECTED : PX_OUTLIER_CAPPED);
  }
  assert_int_equal(px_outlier_nejected(o), 2);
  assert_false(px_outlier_ejected(o, 2, 0));
  /* When room frees up, the next failure of the capped host ejects it. */
  px_outlier_tick(o, 1000);
  assert_int_equal(px_outlier_nejected(o), 0);
  assert_int_equal(px_outlier_record(o, 2, PX_OUTCOME_CONNECT_FAIL, 1000), PX_OUTLIER_EJECTED);
  px_outlier_free(o);

  /* One host: it may be ejected (at least one host always may). */
  assert_int_equal(px_outlier_new(&o, &ocfg, 1), 0);
  px_outlier_record(o, 0, PX_OUTCOME_CONNECT_FAIL, 0);
  assert_int_equal(px_outlier_record(o, 0, PX_OUTCOME_CONNECT_FAIL, 0), PX_OUTLIER_EJECTED);
  px_outlier_free(o);

  /* max_ejected 0%: never. */
  struct cfg_outlier off = ocfg;
  off.max_ejected_ppm = 0;
  assert_int_equal(px_outlier_new(&o, &off, 3), 0);
  px_outlier_record(o, 0, PX_OUTCOME_CONNECT_FAIL, 0);
  assert_int_equal(px_outlier_record(o, 0, PX_OUTCOME_CONNECT_FAIL, 0), PX_OUTLIER_CAPPED);
  px_outlier_free(o);
  px_outlier_free(NULL);
}

static void test_px_health_outlier_observe_counters(void **state) {
  (void)state;
  struct px_outlier *o;
  assert_int_equal(px_outlier_new(&o, &ocfg, 4), 0); /* 3 x 5xx or 2 connect failures */
  /* Counters from a pool: 2 failures seen, then a success reset, then 2 more. */
  assert_int_equal(px_outlier_observe(o, 0, 2, 0, 0), PX_OUTLIER_NONE);
  assert_int_equal(px_outlier_observe(o, 0, 2, 0, 10), PX_OUTLIER_NONE); /* no growth */
  assert_int_equal(px_outlier_observe(o, 0, 1, 0, 20), PX_OUTLIER_NONE); /* reset, then 1 */
  assert_int_equal(px_outlier_observe(o, 0, 2, 0, 30), PX_OUTLIER_NONE);
  assert_int_equal(px_outlier_observe(o, 0, 3, 0, 40), PX_OUTLIER_EJECTED);
  assert_true(px_outlier_ejected(o, 0, 41));
  /* While ejected, the pool's counter does not move; after return it needs a full run again. */
  assert_int_equal(px_outlier_observe(o, 0, 3, 0, 1040), PX_OUTLIER_NONE);
  assert_false(px_outlier_ejected(o, 0, 1040));
  assert_int_equal(px_outlier_observe(o, 0, 5, 0, 1050), PX_OUTLIER_NONE);
  assert_int_equal(px_outlier_observe(o, 0, 6, 0, 1060), PX_OUTLIER_EJECTED);
  struct px_outlier_host_info info;
  px_outlier_host_info(o, 0, &info);
  assert_int_equal(info.until_ms - 1060, 2000); /* second ejection: doubled */
  /* Connect failures jump by several at once. */
  assert_int_equal(px_outlier_observe(o, 1, 0, 5, 0), PX_OUTLIER_EJECTED);
  assert_int_equal(px_outlier_nejected(o), 2);
  /* The cap (2 of 4) holds. */
  assert_int_equal(px_outlier_observe(o, 2, 0, 2, 0), PX_OUTLIER_CAPPED);
  assert_int_equal(px_outlier_observe(o, 9, 0, 2, 0), PX_OUTLIER_NONE);
  px_outlier_free(o);
}

/* A config with two backends: "old" (one host) and "new" (two hosts). */
struct fixture {
  struct cfg cfg;
  struct cfg_backend be[2];
  struct cfg_addr old_hosts[1], new_hosts[2];
};

static void fixture_init(struct fixture *f, uint16_t p0, uint16_t p1, uint16_t p2) {
  memset(f, 0, sizeof *f);
  f->old_hosts[0] = (struct cfg_addr){.host = "127.0.0.1", .port = p0};
  f->new_hosts[0] = (struct cfg_addr){.host = "127.0.0.1", .port = p1};
  f->new_hosts[1] = (struct cfg_addr){.host = "127.0.0.1", .port = p2};
  f->be[0] = (struct cfg_backend){.name = "old", .hosts = f->old_hosts, .nhosts = 1,
                                  .on_unhealthy = CFG_UNHEALTHY_FAIL_OPEN};
  f->be[1] = (struct cfg_backend){.name = "new", .hosts = f->new_hosts, .nhosts = 2,
                                  .health = hcfg, .outlier = ocfg,
                                  .on_unhealthy = CFG_UNHEALTHY_FAIL_OPEN};
  f->cfg.backends = f->be;
  f->cfg.nbackends = 2;
}

static void test_px_health_board_and_route(void **state) {
  (void)state;
  struct fixture f;
  fixture_init(&f, 1, 2, 3);
  struct px_health_board *b;
  assert_int_equal(px_health_board_new(&b, &f.cfg), 0);
  assert_true(px_health_group_usable(b, 1, NULL, 0));
  px_health_board_set(b, 1, 0, 0);
  assert_true(px_health_group_usable(b, 1, NULL, 0));
  struct px_outlier *o;
  assert_int_equal(px_outlier_new(&o, &ocfg, 2), 0);
  px_outlier_record(o, 1, PX_OUTCOME_CONNECT_FAIL, 0);
  px_outlier_record(o, 1, PX_OUTCOME_CONNECT_FAIL, 0);
  /* Host 0 failed its checks, host 1 is ejected: the group is down. */
  assert_false(px_health_group_usable(b, 1, o, 10));
  assert_true(px_health_group_usable(b, 1, o, 1000)); /* ejection over */
  int over;
  assert_int_equal(px_health_route(&f.cfg, 1, 0, 0, &over), 0);
  assert_true(over);
  assert_int_equal(px_health_route(&f.cfg, 1, 1, 0, &over), 1);
  assert_false(over);
  f.be[1].on_unhealthy = CFG_UNHEALTHY_FAIL;
  assert_int_equal(px_health_route(&f.cfg, 1, 0, 0, &over), 1);
  assert_false(over);
  assert_true(px_health_board_usable(b, 9, 9)); /* out of range: usable */
  px_outlier_free(o);
  px_health_board_free(b);
}

/* A tiny backend for the checker: answers /healthz with `status`. */
struct backend {
  struct evhttp *http;
  uint16_t port;
  int status;
  int hits;
};

static void on_backend_cb(struct evhttp_request *req, void *arg) {
  struct backend *b = arg;
  b->hits++;
  const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  evhttp_send_reply(req, strcmp(path, "/healthz") == 0 ? b->status : 404, "x", NULL);
}

static void backend_start(struct backend *b, struct event_base *base, int status) {
  memset(b, 0, sizeof *b); /* hits counts from 0 */
  b->status = status;
  b->http = evhttp_new(base);
  evhttp_set_gencb(b->http, on_backend_cb, b);
  struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(b->http, "127.0.0.1", 0);
  assert_non_null(s);
  struct sockaddr_in sin;
  socklen_t sl = sizeof sin;
  getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &sl);
  b->port = ntohs(sin.sin_port);
}

static void on_stop_cb(evutil_socket_t fd, short what, void *arg) {
  event_base_loopbreak(arg);
}

static void run_for(struct event_base *base, int ms) {
  struct timeval tv = {0, ms * 1000};
  struct event *ev = evtimer_new(base, on_stop_cb, base);
  evtimer_add(ev, &tv);
  event_base_dispatch(base);
  event_free(ev);
}

struct changes {
  int healthy, unhealthy;
};

/* Runs the loop in 10 ms slices until done(ud) holds, at most about 10 s: the
 * probes run every 20 ms of wall time, which a loaded machine stretches, so
 * the test waits for the states it checks rather than for a fixed time. */
static void run_until(struct event_base *base, int (*done)(void *), void *ud) {
  for (int i = 0; i < 1000 && !done(ud); i++)
    run_for(base, 10);
}

struct phase {
  struct px_health_board *b;
  struct backend *good;
  struct changes *ch;
};

static int first_verdicts(void *ud) {
  struct phase *p = ud;
  return p->good->hits >= 3 && px_health_board_usable(p->b, 1, 0) &&
         !px_health_board_usable(p->b, 1, 1);
}

static int swapped_verdicts(void *ud) {
  struct phase *p = ud;
  return px_health_board_usable(p->b, 1, 1) && !px_health_board_usable(p->b, 1, 0) &&
         p->ch->healthy >= 2 && p->ch->unhealthy >= 2;
}

static void on_change(size_t backend, size_t host, enum px_hc_event e, void *ud) {
  struct changes *c = ud;
  if (e == PX_HC_BECAME_HEALTHY)
    c->healthy++;
  else
    c->unhealthy++;
}

static void test_px_health_checker(void **state) {
  (void)state;
  log_setup(LOG_ERROR, LOG_TEXT);
  struct event_base *base = event_base_new();
  struct backend good, bad;
  backend_start(&good, base, 200);
  backend_start(&bad, base, 503);
  struct fixture f;
  fixture_init(&f, 1, good.port, bad.port);
  struct px_health_board *b;
  assert_int_equal(px_health_board_new(&b, &f.cfg), 0);
  struct met_registry *m;
  assert_int_equal(met_registry_new(&m, 1, 256), 0);
  struct changes ch = {0};
  struct px_health_checker_opts o = {.metrics = m, .on_change = on_change, .user_data = &ch};
  struct px_health_checker *c;
  char err[128];
  assert_int_equal(px_health_checker_new(&c, base, &f.cfg, b, &o, err, sizeof err), 0);
  struct phase ph = {b, &good, &ch};
  run_until(base, first_verdicts, &ph); /* about 7 probes per host in 150 ms when idle */
  assert_true(px_health_board_usable(b, 1, 0));
  assert_false(px_health_board_usable(b, 1, 1));
  assert_true(px_health_board_usable(b, 0, 0)); /* "old" has no checks */
  assert_true(good.hits >= 3);
  struct px_hc hc;
  assert_int_equal(px_health_checker_host(c, 1, 1, &hc), 0);
  assert_int_equal(hc.state, PX_HC_UNHEALTHY);
  assert_int_equal(px_health_checker_host(c, 0, 0, &hc), CUT_ERR_NOT_FOUND);
  /* The bad host recovers after healthy_threshold good probes; the good one dies. */
  bad.status = 200;
  evhttp_free(good.http);
  run_until(base, swapped_verdicts, &ph);
  assert_true(px_health_board_usable(b, 1, 1));
  assert_false(px_health_board_usable(b, 1, 0));
  assert_true(ch.healthy >= 2 && ch.unhealthy >= 2);
  char *text;
  assert_int_equal(met_render(m, &text, NULL), 0);
  assert_non_null(strstr(text, "cutover_health_checks_total{backend=\"new\",result=\"fail\"} "));
  char want[96];
  snprintf(want, sizeof want, "cutover_upstream_healthy{backend=\"new\",host=\"127.0.0.1:%u\"} 0",
           (unsigned)good.port);
  assert_non_null(strstr(text, want));
  free(text);
  px_health_checker_free(c);
  px_health_board_free(b);
  met_registry_free(m);
  evhttp_free(bad.http);
  event_base_free(base);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_px_health_active_thresholds),
      cmocka_unit_test(test_px_health_active_first_failure),
      cmocka_unit_test(test_px_health_outlier_5xx_and_doubling),
      cmocka_unit_test(test_px_health_outlier_connect_failures),
      cmocka_unit_test(test_px_health_outlier_cap),
      cmocka_unit_test(test_px_health_outlier_observe_counters),
      cmocka_unit_test(test_px_health_board_and_route),
      cmocka_unit_test(test_px_health_checker),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
