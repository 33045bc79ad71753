/* Unit tests for proxy/px_admin_dials: the admin API over a real dial store and config, end to end over loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "config/config.h"
#include "dials/dial_store.h"
#include "proxy/px_admin.h"
#include "proxy/px_admin_client.h"
#include "proxy/px_admin_dials.h"
#include "proxy/px_metrics.h"

static const char yaml_fmt[] =
    "workers: 1\n"
    "datacenter: eu-1\n"
    "admin: { listen: 127.0.0.1:1, token_file: %s/admin.token }\n"
    "state: { dir: %s }\n"
    "listeners: [ { name: plain, listen: 127.0.0.1:1 } ]\n"
    "backends:\n"
    "  old: { hosts: [\"127.0.0.1:9\"] }\n"
    "  new: { hosts: [\"127.0.0.1:9\"] }\n"
    "dials:\n"
    "  checkout-v2: { key: \"header:x-device-id\", percent: 5%%, to: new, steps: [1%%, 5%%, 25%%] }\n"
    "experiments:\n"
    "  search-canary: { key: \"cookie:d\", pool: 2%%, canary: new, baseline: old }\n"
    "routes:\n"
    "  - { name: checkout, match: { path_prefix: /c }, backend: old, dial: checkout-v2 }\n"
    "  - { name: search, match: { path_prefix: /s }, backend: old, experiment: search-canary }\n";

struct env {
  char dir[64];
  struct cfg_holder *holder;
  struct dial_store *store;
  struct met_registry *reg;
  struct px_metrics *pm;
  struct px_admin_dials *ad;
  struct px_admin *admin;
  char *token;
  struct px_admin_target t;
  int reloads;
};

static int fake_reload(void *ud, json_t **out, char *err, size_t errlen) {
  struct env *e = ud;
  e->reloads++;
  return cut_errf(err, errlen, CUT_ERR_CONFIG, "cutover.yaml:1:1: workers: not a number");
}

static int fake_status(void *ud, json_t *s, char *err, size_t errlen) {
  json_object_set_new(s, "upstreams", json_pack("{s:b}", "new", 1));
  return 0;
}

static int setup(void **state) {
  struct env *e = calloc(1, sizeof *e);
  snprintf(e->dir, sizeof e->dir, "/tmp/cutover-adial-XXXXXX");
  assert_non_null(mkdtemp(e->dir));
  char yaml[4096];
  int n = snprintf(yaml, sizeof yaml, yaml_fmt, e->dir, e->dir);
  struct cfg *c;
  char *errs = NULL;
  if (cfg_load_buffer("test.yaml", yaml, (size_t)n, &c, &errs) != 0)
    fail_msg("config: %s", errs);
  char err[512];
  if (dial_store_open_files(&e->store, c, err, sizeof err) != 0)
    fail_msg("store: %s", err);
  assert_int_equal(met_registry_new(&e->reg, 2, 8192), 0);
  assert_int_equal(px_metrics_new(&e->pm, e->reg, c, err, sizeof err), 0);
  assert_int_equal(cfg_holder_new(&e->holder, c), 0);
  struct px_admin_dials_opts o = {.store = e->store, .holder = e->holder, .metrics = e->reg,
                                  .reload = fake_reload, .status = fake_status, .user_data = e};
  assert_int_equal(px_admin_dials_new(&e->ad, &o), 0);
  char tok[160];
  snprintf(tok, sizeof tok, "%s/admin.token", e->dir);
  struct px_admin_opts ao = {.token_file = tok, .metrics = e->reg};
  px_admin_dials_ops(e->ad, &ao.ops);
  log_setup(LOG_OFF, LOG_TEXT);
  assert_int_equal(px_admin_start(&e->admin, &ao, err, sizeof err), 0);
  assert_int_equal(px_admin_token_load(tok, 0, &e->token, err, sizeof err), 0);
  e->t = (struct px_admin_target){.host = "127.0.0.1", .port = px_admin_port(e->admin),
                                  .token = e->token, .actor = "tester"};
  *state = e;
  return 0;
}

static int teardown(void **state) {
  struct env *e = *state;
  px_admin_free(e->admin);
  px_admin_dials_free(e->ad);
  px_metrics_free(e->pm);
  dial_store_free(e->store);
  cfg_holder_free(e->holder);
  met_registry_free(e->reg);
  free(e->token);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
  assert_int_equal(system(cmd), 0);
  free(e);
  return 0;
}

static json_t *call(struct env *e, const char *m, const char *path, const char *body, int want) {
  struct px_admin_reply r;
  char err[256];
  if (px_admin_request(&e->t, m, path, body, &r, err, sizeof err) != 0)
    fail_msg("%s", err);
  if (r.status != want)
    fail_msg("%s %s: %d (want %d): %s", m, path, r.status, want, r.body);
  json_t *j = json_loads(r.body, 0, NULL);
  assert_non_null(j);
  px_admin_reply_clear(&r);
  return j;
}

static double num(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static void test_px_admin_dials_set_step_rollback(void **state) {
  struct env *e = *state;
  json_t *j = call(e, "GET", "/dials/checkout-v2", NULL, 200);
  assert_true(num(j, "percent") == 5.0);
  assert_string_equal(json_string_value(json_object_get(j, "to")), "new");
  assert_int_equal(json_array_size(json_object_get(j, "steps")), 3);
  json_decref(j);

  j = call(e, "PUT", "/dials/checkout-v2", "{\"percent\": 12.5, \"reason\": \"ramp\"}", 200);
  assert_true(num(j, "percent") == 12.5);
  assert_true(num(j, "previous_percent") == 5.0);
  json_decref(j);
  uint32_t ppm;
  assert_int_equal(dial_store_get_percent(e->store, "checkout-v2", NULL, &ppm), 0);
  assert_int_equal(ppm, 125000);

  j = call(e, "POST", "/dials/checkout-v2/step", NULL, 200);
  assert_true(num(j, "percent") == 25.0);
  json_decref(j);
  j = call(e, "POST", "/dials/checkout-v2/step", NULL, 409);
  assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "last step"));
  json_decref(j);

  /* A per-data-center value for this proxy's own DC is what takes effect here. */
  j = call(e, "PUT", "/dials/checkout-v2", "{\"percent\": 1, \"datacenter\": \"eu-1\"}", 200);
  assert_true(num(j, "effective_percent") == 1.0);
  assert_true(num(json_object_get(j, "datacenters"), "eu-1") == 1.0);
  json_decref(j);

  j = call(e, "POST", "/dials/checkout-v2/rollback", "{\"reason\": \"errors\"}", 200);
  assert_true(num(j, "percent") == 0);
  assert_true(num(j, "effective_percent") == 0);
  json_decref(j);

  j = call(e, "GET", "/dials/checkout-v3", NULL, 404);
  assert_string_equal(json_string_value(json_object_get(j, "error")),
                      "unknown dial \"checkout-v3\" (did you mean \"checkout-v2\"?)");
  json_decref(j);

  /* The change is on disk (persisted before acknowledged) and in the audit log. */
  char path[160], buf[8192];
  snprintf(path, sizeof path, "%s/dials.audit.log", e->dir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  assert_non_null(strstr(buf, "tester"));
  assert_non_null(strstr(buf, "ramp"));
}

static void test_px_admin_dials_experiments_status_metrics(void **state) {
  struct env *e = *state;
  json_t *j = call(e, "GET", "/experiments", NULL, 200);
  assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "state")),
                      "pending");
  json_decref(j);
  j = call(e, "POST", "/experiments/search-canary/start", NULL, 200);
  assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
  json_decref(j);
  j = call(e, "POST", "/experiments/search-canary/stop", NULL, 400); /* reason required */
  json_decref(j);
  j = call(e, "POST", "/experiments/search-canary/stop", "{\"reason\": \"p99\"}", 200);
  assert_string_equal(json_string_value(json_object_get(j, "state")), "stopped");
  assert_string_equal(json_string_value(json_object_get(j, "reason")), "p99");
  json_decref(j);
  j = call(e, "POST", "/experiments/search-canary/start", NULL, 409); /* stopped is final */
  json_decref(j);

  json_decref(call(e, "PUT", "/dials/checkout-v2", "{\"percent\": 50}", 200));
  j = call(e, "GET", "/status", NULL, 200);
  assert_true(num(json_object_get(j, "dials"), "checkout-v2") == 50.0);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "experiments"),
                                                        "search-canary")),
                      "stopped");
  assert_int_equal(strlen(json_string_value(
                       json_object_get(json_object_get(j, "config"), "sha256"))),
                   64);
  assert_non_null(json_object_get(j, "upstreams"));
  json_decref(j);

  j = call(e, "POST", "/reload", NULL, 400);
  assert_int_equal(e->reloads, 1);
  assert_int_equal(json_array_size(json_object_get(j, "errors")), 1);
  json_decref(j);

  struct px_admin_reply r;
  assert_int_equal(px_admin_request(&e->t, "GET", "/metrics", NULL, &r, NULL, 0), 0);
  assert_non_null(strstr(r.body, "\ncutover_dial_ratio{dial=\"checkout-v2\"} 0.5\n"));
  assert_non_null(strstr(r.body, "\ncutover_experiment_running{experiment=\"search-canary\"} 0\n"));
  px_admin_reply_clear(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_px_admin_dials_set_step_rollback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_admin_dials_experiments_status_metrics, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
