/* Unit tests for proxy/px_admin over loopback, with a fake ops table, using px_admin_client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "proxy/px_admin.h"
#include "proxy/px_admin_client.h"

/* A fake dial store: two dials with steps, one experiment. */
struct fake {
  const char *names[2];
  uint32_t ppm[2];
  char last_reason[128];
  char last_actor[160];
  char last_dc[32];
  int reload_fails;
  int running;
};

static int find(struct fake *f, const char *name, char *err, size_t errlen) {
  for (int i = 0; i < 2; i++)
    if (strcmp(f->names[i], name) == 0)
      return i;
  return px_admin_unknown(err, errlen, "dial", name, f->names, 2);
}

static json_t *dial_json(struct fake *f, int i) {
  return json_pack("{s:s, s:f}", "name", f->names[i], "percent", f->ppm[i] / 10000.0);
}

static int fake_list(void *ud, json_t **out, char *err, size_t errlen) {
  struct fake *f = ud;
  *out = json_array();
  for (int i = 0; i < 2; i++)
    json_array_append_new(*out, dial_json(f, i));
  return 0;
}

static int fake_get(void *ud, const char *name, json_t **out, char *err, size_t errlen) {
  struct fake *f = ud;
  int i = find(f, name, err, errlen);
  if (i < 0)
    return i;
  *out = dial_json(f, i);
  return 0;
}

static int fake_set(void *ud, const char *name, const struct px_admin_change *c, json_t **out,
                    char *err, size_t errlen) {
  struct fake *f = ud;
  int i = find(f, name, err, errlen);
  if (i < 0)
    return i;
  f->ppm[i] = c->ppm;
  snprintf(f->last_reason, sizeof f->last_reason, "%s", c->reason);
  snprintf(f->last_actor, sizeof f->last_actor, "%s", c->actor);
  snprintf(f->last_dc, sizeof f->last_dc, "%s", c->datacenter ? c->datacenter : "");
  *out = dial_json(f, i);
  return 0;
}

static int fake_step(void *ud, const char *name, const struct px_admin_change *c, json_t **out,
                     char *err, size_t errlen) {
  struct fake *f = ud;
  int i = find(f, name, err, errlen);
  if (i < 0)
    return i;
  if (f->ppm[i] >= 1000000)
    return cut_errf(err, errlen, CUT_ERR_STATE, "dial %s is already at the last step", name);
  f->ppm[i] = f->ppm[i] ? f->ppm[i] * 2 : 10000;
  *out = dial_json(f, i);
  return 0;
}

static int fake_rollback(void *ud, const char *name, const struct px_admin_change *c,
                         json_t **out, char *err, size_t errlen) {
  struct fake *f = ud;
  int i = find(f, name, err, errlen);
  if (i < 0)
    return i;
  f->ppm[i] = 0;
  snprintf(f->last_reason, sizeof f->last_reason, "%s", c->reason);
  *out = dial_json(f, i);
  return 0;
}

static int fake_status(void *ud, json_t **out, char *err, size_t errlen) {
  *out = json_pack("{s:i}", "workers", 2);
  return 0;
}

static int fake_reload(void *ud, json_t **out, char *err, size_t errlen) {
  struct fake *f = ud;
  if (f->reload_fails)
    return cut_errf(err, errlen, CUT_ERR_CONFIG,
                    "x.yaml:3:5: dials.a.percent: out of range\nx.yaml:9:1: routes: missing");
  *out = json_pack("{s:s}", "status", "reloaded");
  return 0;
}

static int fake_ready(void *ud) { return ((struct fake *)ud)->running; }

struct env {
  char dir[64];
  char token_file[128];
  char *token;
  struct fake fake;
  struct met_registry *met;
  struct px_admin *admin;
  struct px_admin_target target;
};

static int setup(void **state) {
  struct env *e = calloc(1, sizeof *e);
  snprintf(e->dir, sizeof e->dir, "/tmp/cutover-admin-XXXXXX");
  assert_non_null(mkdtemp(e->dir));
  /* A subdirectory that does not exist yet: the server creates it. */
  snprintf(e->token_file, sizeof e->token_file, "%s/run/admin.token", e->dir);
  e->fake = (struct fake){.names = {"checkout-v2", "search"}, .ppm = {50000, 0}, .running = 1};
  assert_int_equal(met_registry_new(&e->met, 2, 256), 0);
  struct px_admin_opts o = {
      .host = "127.0.0.1",
      .port = 0,
      .token_file = e->token_file,
      .metrics = e->met,
      .ops = {.dials_list = fake_list, .dial_get = fake_get, .dial_set = fake_set,
              .dial_step = fake_step, .dial_rollback = fake_rollback, .status = fake_status,
              .reload = fake_reload, .ready = fake_ready, .user_data = &e->fake},
  };
  log_setup(LOG_ERROR, LOG_TEXT);
  char err[256];
  assert_int_equal(px_admin_start(&e->admin, &o, err, sizeof err), 0);
  assert_int_equal(px_admin_token_load(e->token_file, 0, &e->token, err, sizeof err), 0);
  e->target = (struct px_admin_target){.host = "127.0.0.1", .port = px_admin_port(e->admin),
                                       .token = e->token, .actor = "alice", .timeout_ms = 5000};
  *state = e;
  return 0;
}

static int teardown(void **state) {
  struct env *e = *state;
  px_admin_free(e->admin);
  met_registry_free(e->met);
  unlink(e->token_file);
  char sub[128];
  snprintf(sub, sizeof sub, "%s/run", e->dir);
  rmdir(sub);
  rmdir(e->dir);
  free(e->token);
  free(e);
  return 0;
}

/* Sends a request and returns the parsed JSON body (or NULL when not JSON). */
static json_t *call(struct env *e, const struct px_admin_target *t, const char *method,
                    const char *path, const char *body, int want_status) {
  struct px_admin_reply r;
  char err[256];
  int rc = px_admin_request(t, method, path, body, &r, err, sizeof err);
  if (rc)
    fail_msg("request failed: %s", err);
  if (r.status != want_status)
    fail_msg("%s %s: status %d, want %d; body %s", method, path, r.status, want_status, r.body);
  json_t *j = json_loads(r.body, 0, NULL);
  px_admin_reply_clear(&r);
  return j;
}

static const char *jstr(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  assert_non_null(v);
  return json_string_value(v);
}

static void test_px_admin_token_file_created(void **state) {
  struct env *e = *state;
  struct stat st;
  assert_int_equal(stat(e->token_file, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(strlen(e->token), 64);
  assert_int_equal(strspn(e->token, "0123456789abcdef"), 64);
  /* Loading again keeps the same token. */
  char *again;
  assert_int_equal(px_admin_token_load(e->token_file, 1, &again, NULL, 0), 0);
  assert_string_equal(again, e->token);
  free(again);
  char err[128];
  assert_int_equal(px_admin_token_load("/nonexistent/x/y", 0, &again, err, sizeof err),
                   CUT_ERR_IO);
}

static void test_px_admin_unauthorized(void **state) {
  struct env *e = *state;
  struct px_admin_target none = e->target;
  none.token = NULL;
  json_t *j = call(e, &none, "GET", "/dials", NULL, 401);
  assert_non_null(j);
  assert_non_null(strstr(jstr(j, "error"), "token"));
  json_decref(j);
  struct px_admin_target wrong = e->target;
  char bad[65];
  memcpy(bad, e->token, 65);
  bad[0] = bad[0] == 'a' ? 'b' : 'a';
  wrong.token = bad;
  json_decref(call(e, &wrong, "GET", "/dials", NULL, 401));
  wrong.token = "short";
  json_decref(call(e, &wrong, "PUT", "/dials/search", "{\"percent\": 100}", 401));
  assert_int_equal(e->fake.ppm[1], 0); /* nothing changed */
  /* Even /healthz and /metrics need the token. */
  json_decref(call(e, &none, "GET", "/metrics", NULL, 401));
}

static void test_px_admin_dials(void **state) {
  struct env *e = *state;
  json_t *j = call(e, &e->target, "GET", "/dials", NULL, 200);
  assert_true(json_is_array(j));
  assert_int_equal(json_array_size(j), 2);
  assert_string_equal(jstr(json_array_get(j, 0), "name"), "checkout-v2");
  json_decref(j);
  j = call(e, &e->target, "GET", "/dials/checkout-v2", NULL, 200);
  assert_true(json_real_value(json_object_get(j, "percent")) == 5.0);
  json_decref(j);

  j = call(e, &e->target, "PUT", "/dials/checkout-v2",
           "{\"percent\": 12.5, \"reason\": \"ramp\", \"datacenter\": \"eu-1\"}", 200);
  assert_true(json_real_value(json_object_get(j, "percent")) == 12.5);
  json_decref(j);
  assert_int_equal(e->fake.ppm[0], 125000);
  assert_string_equal(e->fake.last_reason, "ramp");
  assert_string_equal(e->fake.last_dc, "eu-1");
  assert_non_null(strstr(e->fake.last_actor, "127.0.0.1:"));
  assert_non_null(strstr(e->fake.last_actor, "alice"));

  /* Strings with % are accepted too. */
  json_decref(call(e, &e->target, "PUT", "/dials/search", "{\"percent\": \"0.0001%\"}", 200));
  assert_int_equal(e->fake.ppm[1], 1);

  json_decref(call(e, &e->target, "POST", "/dials/search/step", NULL, 200));
  assert_int_equal(e->fake.ppm[1], 2);
  json_decref(call(e, &e->target, "POST", "/dials/checkout-v2/rollback",
                   "{\"reason\": \"errors up\"}", 200));
  assert_int_equal(e->fake.ppm[0], 0);
  assert_string_equal(e->fake.last_reason, "errors up");
}

static void test_px_admin_json_errors(void **state) {
  struct env *e = *state;
  json_t *j = call(e, &e->target, "PUT", "/dials/checkout-v2", "{\"percent\": 150}", 400);
  assert_non_null(strstr(jstr(j, "error"), "out of range"));
  assert_int_equal(json_integer_value(json_object_get(j, "status")), 400);
  json_decref(j);
  j = call(e, &e->target, "PUT", "/dials/checkout-v2", "{\"percent\": 12.5", 400);
  assert_non_null(strstr(jstr(j, "error"), "malformed JSON"));
  json_decref(j);
  j = call(e, &e->target, "PUT", "/dials/checkout-v2", "{\"percnet\": 12.5}", 400);
  assert_non_null(strstr(jstr(j, "error"), "unknown field \"percnet\""));
  json_decref(j);
  j = call(e, &e->target, "PUT", "/dials/checkout-v2", "{\"percent\": 1.23456}", 400);
  assert_non_null(strstr(jstr(j, "error"), "4 decimals"));
  json_decref(j);
  j = call(e, &e->target, "PUT", "/dials/checkout-v2", "{\"reason\": \"x\"}", 400);
  assert_non_null(strstr(jstr(j, "error"), "missing field \"percent\""));
  json_decref(j);
  j = call(e, &e->target, "PUT", "/dials/checkout-v2", "[1]", 400);
  assert_non_null(strstr(jstr(j, "error"), "JSON object"));
  json_decref(j);
  j = call(e, &e->target, "GET", "/dials/checkout-v3", NULL, 404);
  assert_string_equal(jstr(j, "error"),
                      "unknown dial \"checkout-v3\" (did you mean \"checkout-v2\"?)");
  json_decref(j);
  j = call(e, &e->target, "POST", "/dials/zzz/step", NULL, 404);
  assert_string_equal(jstr(j, "error"), "unknown dial \"zzz\"");
  json_decref(j);
  j = call(e, &e->target, "GET", "/dials/bad%20name", NULL, 400);
  json_decref(j);
  j = call(e, &e->target, "DELETE", "/dials/search", NULL, 405);
  assert_non_null(strstr(jstr(j, "error"), "GET, PUT"));
  json_decref(j);
  json_decref(call(e, &e->target, "GET", "/nope", NULL, 404));
  /* Not provided by this ops table. */
  json_decref(call(e, &e->target, "POST", "/experiments/x/start", NULL, 501));
  /* A state conflict from the store. */
  e->fake.ppm[1] = 1000000;
  j = call(e, &e->target, "POST", "/dials/search/step", NULL, 409);
  assert_non_null(strstr(jstr(j, "error"), "last step"));
  json_decref(j);
}

static void test_px_admin_status_reload_health_metrics(void **state) {
  struct env *e = *state;
  json_t *j = call(e, &e->target, "GET", "/status", NULL, 200);
  assert_string_equal(jstr(j, "version"), CUTOVER_VERSION);
  assert_int_equal(json_integer_value(json_object_get(j, "workers")), 2);
  assert_non_null(json_object_get(j, "uptime_seconds"));
  json_decref(j);

  json_decref(call(e, &e->target, "POST", "/reload", NULL, 200));
  e->fake.reload_fails = 1;
  j = call(e, &e->target, "POST", "/reload", NULL, 400);
  json_t *errs = json_object_get(j, "errors");
  assert_int_equal(json_array_size(errs), 2);
  assert_string_equal(json_string_value(json_array_get(errs, 0)),
                      "x.yaml:3:5: dials.a.percent: out of range");
  json_decref(j);

  j = call(e, &e->target, "GET", "/healthz", NULL, 200);
  assert_string_equal(jstr(j, "status"), "ok");
  json_decref(j);
  e->fake.running = 0;
  json_decref(call(e, &e->target, "GET", "/healthz", NULL, 503));

  struct px_admin_target none = e->target;
  none.token = NULL;
  json_decref(call(e, &none, "GET", "/status", NULL, 401));
  struct px_admin_reply r;
  assert_int_equal(px_admin_request(&e->target, "GET", "/metrics", NULL, &r, NULL, 0), 0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "# TYPE cutover_admin_auth_failures_total counter\n"));
  assert_non_null(strstr(r.body, "cutover_admin_auth_failures_total 1\n"));
  assert_non_null(strstr(r.body, "cutover_admin_requests_total{status_class=\"2xx\"} "));
  px_admin_reply_clear(&r);
}

static void test_px_admin_percent_parse(void **state) {
  (void)state;
  uint32_t ppm;
  json_t *v = json_real(12.5);
  assert_int_equal(px_admin_percent_from_json(v, &ppm, NULL, 0), 0);
  assert_int_equal(ppm, 125000);
  json_decref(v);
  v = json_integer(100);
  assert_int_equal(px_admin_percent_from_json(v, &ppm, NULL, 0), 0);
  assert_int_equal(ppm, 1000000);
  json_decref(v);
  v = json_real(0.1); /* not exact in binary, still 1000 ppm */
  assert_int_equal(px_admin_percent_from_json(v, &ppm, NULL, 0), 0);
  assert_int_equal(ppm, 1000);
  json_decref(v);
  v = json_real(-1);
  assert_int_equal(px_admin_percent_from_json(v, &ppm, NULL, 0), CUT_ERR_RANGE);
  json_decref(v);
  v = json_string("12x");
  assert_int_equal(px_admin_percent_from_json(v, &ppm, NULL, 0), CUT_ERR_INVALID);
  json_decref(v);
  v = json_true();
  assert_int_equal(px_admin_percent_from_json(v, &ppm, NULL, 0), CUT_ERR_INVALID);
  json_decref(v);
}

static void test_px_admin_bind_failure(void **state) {
  struct env *e = *state;
  struct px_admin_opts o = {.host = "127.0.0.1", .port = px_admin_port(e->admin),
                            .token_file = e->token_file};
  struct px_admin *a = NULL;
  char err[256];
  assert_int_equal(px_admin_start(&a, &o, err, sizeof err), CUT_ERR_NET);
  assert_null(a);
  assert_non_null(strstr(err, "cannot listen"));
  px_admin_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_px_admin_token_file_created, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_admin_unauthorized, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_admin_dials, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_admin_json_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_admin_status_reload_health_metrics, setup,
                                      teardown),
      cmocka_unit_test(test_px_admin_percent_parse),
      cmocka_unit_test_setup_teardown(test_px_admin_bind_failure, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
