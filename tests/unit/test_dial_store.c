/* Unit tests for dials/dial_store.c: live values, persistence, reloads, operations, audit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/cut_err.h"
#include "dials/dial.h"
#include "dials/dial_store.h"
#include "test_dial_fixture.h"

struct env {
  char dir[64];
  char state[128];
  char audit[128];
  struct fixture f;
};

static int setup(void **state) {
  struct env *e = calloc(1, sizeof *e);
  snprintf(e->dir, sizeof e->dir, "/tmp/cutover-dialstore-XXXXXX");
  if (!mkdtemp(e->dir)) return -1;
  snprintf(e->state, sizeof e->state, "%s/run/dials.state.json", e->dir);
  snprintf(e->audit, sizeof e->audit, "%s/run/dials.audit.log", e->dir);
  fx_init(&e->f);
  *state = e;
  return 0;
}

static int teardown(void **state) {
  struct env *e = *state;
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
  if (system(cmd) != 0) return -1;
  free(e);
  return 0;
}

static struct dial_store *open_store(struct env *e, const struct cfg *cfg) {
  struct dial_store_backend be;
  char err[256] = "";
  assert_int_equal(dial_store_file_backend(&be, e->state, e->audit, err, sizeof err), 0);
  struct dial_store *s = NULL;
  int rc = dial_store_open(&s, cfg, be, err, sizeof err);
  if (rc) {
    be.ops->close(be.ctx);
    fail_msg("open: %s", err);
  }
  return s;
}

static uint32_t pct(const struct dial_store *s, const char *dial, const char *dc) {
  uint32_t v = 0;
  assert_int_equal(dial_store_get_percent(s, dial, dc, &v), 0);
  return v;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  static char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static struct dial_decision decide(struct env *e, const struct dial_store *s, size_t route,
                                   const char *dev) {
  struct fx_req r;
  fx_req_init(&r, "/");
  if (dev) fx_req_add(&r, "x-device-id", dev);
  struct dial_decision d;
  assert_int_equal(dial_decide(&e->f.cfg, s, &e->f.routes[route], &r.req, time(NULL), &d), 0);
  return d;
}

static void test_dial_store_set_restart(void **state) {
  struct env *e = *state;
  char err[256];
  struct dial_store *s = open_store(e, &e->f.cfg);
  assert_int_equal(pct(s, "checkout-v2", NULL), 50000);
  /* device-1 is bucket 125012 */
  assert_int_equal(decide(e, s, 0, "device-1").backend_index, B_OLD);
  assert_int_equal(dial_store_set_percent(s, "checkout-v2", NULL, 125013, "test", "widen", err,
                                          sizeof err), 0);
  assert_int_equal(decide(e, s, 0, "device-1").backend_index, B_NEW);
  assert_int_equal(dial_effective_ppm(&e->f.cfg, s, 0), 125013);
  dial_store_free(s);
  s = open_store(e, &e->f.cfg);
  assert_int_equal(pct(s, "checkout-v2", NULL), 125013);
  assert_int_equal(decide(e, s, 0, "device-1").backend_index, B_NEW);
  dial_store_free(s);
  /* audit: one JSON line with time, actor, object, old, new, reason */
  char *log = slurp(e->audit);
  assert_non_null(log);
  json_error_t je;
  json_t *rec = json_loads(log, JSON_DISABLE_EOF_CHECK, &je);
  assert_non_null(rec);
  assert_string_equal(json_string_value(json_object_get(rec, "actor")), "test");
  assert_string_equal(json_string_value(json_object_get(rec, "object")), "dial/checkout-v2");
  assert_string_equal(json_string_value(json_object_get(rec, "old")), "5%");
  assert_string_equal(json_string_value(json_object_get(rec, "new")), "12.5013%");
  assert_string_equal(json_string_value(json_object_get(rec, "reason")), "set: widen");
  assert_non_null(json_string_value(json_object_get(rec, "time")));
  json_decref(rec);
}

static void test_dial_store_reload(void **state) {
  struct env *e = *state;
  char err[256];
  struct dial_store *s = open_store(e, &e->f.cfg);
  assert_int_equal(dial_store_set_percent(s, "checkout-v2", NULL, 300000, "t", NULL, err,
                                          sizeof err), 0);
  assert_int_equal(dial_store_set_percent(s, "search", NULL, 0, "t", NULL, err, sizeof err), 0);
  /* a reload with the same config values keeps the live values */
  struct fixture f2;
  fx_init(&f2);
  assert_int_equal(dial_store_apply_config(s, &f2.cfg, err, sizeof err), 0);
  assert_int_equal(pct(s, "checkout-v2", NULL), 300000);
  assert_int_equal(dial_effective_ppm(&f2.cfg, s, 0), 300000);
  /* the config's own value changed: it wins for that dial only */
  f2.dials[1].ppm = 700000;
  assert_int_equal(dial_store_apply_config(s, &f2.cfg, err, sizeof err), 0);
  assert_int_equal(pct(s, "checkout-v2", NULL), 300000);
  assert_int_equal(pct(s, "search", NULL), 700000);
  /* ... also across a restart: the state remembers the last config values */
  dial_store_free(s);
  s = open_store(e, &f2.cfg);
  assert_int_equal(pct(s, "checkout-v2", NULL), 300000);
  assert_int_equal(pct(s, "search", NULL), 700000);
  dial_store_free(s);
  struct fixture f3;
  fx_init(&f3);
  f3.dials[0].ppm = 10000;
  s = open_store(e, &f3.cfg);
  assert_int_equal(pct(s, "checkout-v2", NULL), 10000);
  /* decisions on the previous snapshot still read live values by name */
  assert_int_equal(dial_effective_ppm(&e->f.cfg, s, 0), 10000);
  /* a dial gone from the config is forgotten */
  f3.cfg.ndials = 1;
  assert_int_equal(dial_store_apply_config(s, &f3.cfg, err, sizeof err), 0);
  uint32_t v;
  assert_int_equal(dial_store_get_percent(s, "search", NULL, &v), CUT_ERR_NOT_FOUND);
  dial_store_free(s);
}

static void test_dial_store_datacenters(void **state) {
  struct env *e = *state;
  char err[256];
  e->f.cfg.datacenter = "eu-west";
  struct dial_store *s = open_store(e, &e->f.cfg);
  assert_int_equal(pct(s, "checkout-v2", "eu-west"), 20000);
  assert_int_equal(pct(s, "checkout-v2", "us-east"), DIAL_STORE_NONE);
  assert_int_equal(dial_effective_ppm(&e->f.cfg, s, 0), 20000);
  assert_int_equal(dial_store_set_percent(s, "checkout-v2", "us-east", 900000, "t", NULL, err,
                                          sizeof err), 0);
  assert_int_equal(dial_effective_ppm(&e->f.cfg, s, 0), 20000);
  assert_int_equal(dial_store_set_percent(s, "checkout-v2", "eu-west", 130000, "t", NULL, err,
                                          sizeof err), 0);
  assert_int_equal(dial_effective_ppm(&e->f.cfg, s, 0), 130000);
  assert_int_equal(decide(e, s, 0, "device-1").backend_index, B_NEW);
  /* a proxy in another DC of the same fleet reads its own value */
  dial_store_free(s);
  e->f.cfg.datacenter = "us-east";
  s = open_store(e, &e->f.cfg);
  assert_int_equal(dial_effective_ppm(&e->f.cfg, s, 0), 900000);
  /* rollback zeroes everything at once */
  assert_int_equal(dial_store_rollback(s, "checkout-v2", "t", "errors", err, sizeof err), 0);
  assert_int_equal(pct(s, "checkout-v2", NULL), 0);
  assert_int_equal(pct(s, "checkout-v2", "eu-west"), 0);
  assert_int_equal(dial_effective_ppm(&e->f.cfg, s, 0), 0);
  dial_store_free(s);
}

static void test_dial_store_steps(void **state) {
  struct env *e = *state;
  char err[256];
  struct dial_store *s = open_store(e, &e->f.cfg);
  uint32_t v = 0;
  /* plan 1, 5, 25, 50, 100; at 5% */
  assert_int_equal(dial_store_step(s, "checkout-v2", NULL, "t", NULL, &v, err, sizeof err), 0);
  assert_int_equal(v, 250000);
  assert_int_equal(dial_store_set_percent(s, "checkout-v2", NULL, 300000, "t", NULL, err,
                                          sizeof err), 0);
  assert_int_equal(dial_store_step(s, "checkout-v2", NULL, "t", NULL, &v, err, sizeof err), 0);
  assert_int_equal(v, 500000);
  assert_int_equal(dial_store_step(s, "checkout-v2", NULL, "t", NULL, &v, err, sizeof err), 0);
  assert_int_equal(v, 1000000);
  assert_int_equal(dial_store_step(s, "checkout-v2", NULL, "t", NULL, &v, err, sizeof err),
                   CUT_ERR_RANGE);
  assert_string_equal(err, "dial \"checkout-v2\" is at 100%, past its last step");
  assert_int_equal(dial_store_step(s, "search", NULL, "t", NULL, &v, err, sizeof err),
                   CUT_ERR_STATE);
  assert_int_equal(dial_store_set_percent(s, "nope", NULL, 1, "t", NULL, err, sizeof err),
                   CUT_ERR_NOT_FOUND);
  assert_int_equal(dial_store_set_percent(s, "search", NULL, 1000001, "t", NULL, err, sizeof err),
                   CUT_ERR_RANGE);
  /* per-DC step starts from the DC's own value */
  assert_int_equal(dial_store_step(s, "checkout-v2", "eu-west", "t", NULL, &v, err, sizeof err),
                   0);
  assert_int_equal(v, 50000);
  dial_store_free(s);
}

static void test_dial_store_experiments(void **state) {
  struct env *e = *state;
  char err[256];
  e->f.exps[0].autostart = 0;
  e->f.exps[0].pool_ppm = 1000000;
  e->f.dials[0].ppm = 0;
  struct dial_store *s = open_store(e, &e->f.cfg);
  struct dial_store_exp_info info;
  assert_int_equal(dial_store_exp_get(s, "canary-eu", time(NULL), &info), 0);
  assert_int_equal(info.state, EXP_PENDING);
  assert_int_equal(decide(e, s, 1, "device-1").via, DIAL_VIA_DIAL);
  assert_int_equal(dial_store_exp_stop(s, "canary-eu", "t", "", err, sizeof err),
                   CUT_ERR_INVALID);
  assert_int_equal(dial_store_exp_start(s, "canary-eu", "t", "go", err, sizeof err), 0);
  assert_int_equal(dial_store_exp_start(s, "canary-eu", "t", "go", err, sizeof err),
                   CUT_ERR_STATE);
  struct dial_decision d = decide(e, s, 1, "device-1");
  assert_int_equal(d.via, DIAL_VIA_EXPERIMENT);
  assert_string_equal(d.reason, "in-pool");
  assert_int_equal(dial_store_exp_stop(s, "canary-eu", "kpi-guard", "error rate", err,
                                       sizeof err), 0);
  /* stopped: nobody in either arm; the dial (at 0%) decides */
  for (int i = 0; i < 200; i++) {
    char key[16];
    snprintf(key, sizeof key, "d%d", i);
    d = decide(e, s, 1, key);
    assert_int_equal(d.backend_index, B_OLD);
    assert_int_not_equal(d.via, DIAL_VIA_EXPERIMENT);
  }
  dial_store_free(s);
  s = open_store(e, &e->f.cfg);
  assert_int_equal(dial_store_exp_get(s, "canary-eu", time(NULL), &info), 0);
  assert_int_equal(info.state, EXP_STOPPED);
  assert_string_equal(info.reason, "error rate");
  assert_true(info.started_at > 0 && info.stopped_at >= info.started_at);
  assert_int_equal(dial_store_exp_start(s, "canary-eu", "t", "again", err, sizeof err),
                   CUT_ERR_STATE);
  assert_int_equal(dial_store_exp_start(s, "nope", "t", NULL, err, sizeof err),
                   CUT_ERR_NOT_FOUND);
  /* past its end time it reports completed */
  e->f.exps[0].end = 1000;
  assert_int_equal(dial_store_apply_config(s, &e->f.cfg, err, sizeof err), 0);
  assert_int_equal(dial_store_exp_get(s, "canary-eu", 2000, &info), 0);
  assert_int_equal(info.state, EXP_STOPPED); /* stopped stays stopped */
  dial_store_free(s);
}

/* A crash before the rename leaves a temp file behind: the old state stays. */
static void test_dial_store_interrupted_write(void **state) {
  struct env *e = *state;
  char err[256];
  struct dial_store *s = open_store(e, &e->f.cfg);
  assert_int_equal(dial_store_set_percent(s, "checkout-v2", NULL, 70000, "t", NULL, err,
                                          sizeof err), 0);
  dial_store_free(s);
  char tmp[160];
  snprintf(tmp, sizeof tmp, "%s.tmp", e->state);
  write_file(tmp, "{\"version\":1,\"dials\":{\"checkout-v2\":{\"ppm\":99");
  s = open_store(e, &e->f.cfg);
  assert_int_equal(pct(s, "checkout-v2", NULL), 70000);
  /* and the next write still works over the leftover */
  assert_int_equal(dial_store_set_percent(s, "checkout-v2", NULL, 80000, "t", NULL, err,
                                          sizeof err), 0);
  dial_store_free(s);
  assert_int_equal(access(tmp, F_OK), -1);
  s = open_store(e, &e->f.cfg);
  assert_int_equal(pct(s, "checkout-v2", NULL), 80000);
  dial_store_free(s);
  /* a damaged state file stops the store from starting instead of forgetting values */
  write_file(e->state, "{\"version\":1,\"dials\":{\"checkout-v2\":{\"ppm\":\"x\"");
  struct dial_store_backend be;
  assert_int_equal(dial_store_file_backend(&be, e->state, e->audit, err, sizeof err), 0);
  assert_int_equal(dial_store_open(&s, &e->f.cfg, be, err, sizeof err), CUT_ERR_PARSE);
  be.ops->close(be.ctx);
}

/* A backend whose saves fail on demand: the change must not become visible. */
struct flaky {
  int fail;
  int saves;
};
static int flaky_load(void *c, char **json, char *err, size_t errlen) {
  (void)c, (void)err, (void)errlen;
  *json = NULL;
  return 0;
}
static int flaky_save(void *c, const char *json, size_t len, char *err, size_t errlen) {
  struct flaky *f = c;
  (void)json, (void)len;
  if (f->fail) return cut_errf(err, errlen, CUT_ERR_IO, "disk full");
  f->saves++;
  return 0;
}
static int flaky_audit(void *c, const char *line, size_t len, char *err, size_t errlen) {
  (void)c, (void)line, (void)len;
  return cut_errf(err, errlen, CUT_ERR_IO, "audit disk full");
}
static void flaky_close(void *c) { (void)c; }
static const struct dial_store_backend_ops flaky_ops = {"flaky", flaky_load, flaky_save,
                                                        flaky_audit, flaky_close};

static void test_dial_store_save_failure(void **state) {
  struct env *e = *state;
  struct flaky fl = {0, 0};
  struct dial_store *s = NULL;
  char err[256];
  assert_int_equal(dial_store_open(&s, &e->f.cfg, (struct dial_store_backend){&flaky_ops, &fl},
                                   err, sizeof err), 0);
  fl.fail = 1;
  assert_int_equal(dial_store_set_percent(s, "checkout-v2", NULL, 900000, "t", NULL, err,
                                          sizeof err), CUT_ERR_IO);
  assert_string_equal(err, "disk full");
  assert_int_equal(pct(s, "checkout-v2", NULL), 50000);
  assert_int_equal(dial_effective_ppm(&e->f.cfg, s, 0), 50000);
  assert_int_equal(dial_store_rollback(s, "checkout-v2", "t", NULL, err, sizeof err), CUT_ERR_IO);
  assert_int_equal(pct(s, "checkout-v2", "eu-west"), 20000);
  assert_int_equal(dial_store_set_percent(s, "checkout-v2", "ap", 1, "t", NULL, err, sizeof err),
                   CUT_ERR_IO);
  assert_int_equal(pct(s, "checkout-v2", "ap"), DIAL_STORE_NONE);
  assert_int_equal(dial_store_exp_stop(s, "canary-eu", "t", "why", err, sizeof err), CUT_ERR_IO);
  struct dial_store_exp_info info;
  assert_int_equal(dial_store_exp_get(s, "canary-eu", time(NULL), &info), 0);
  assert_int_equal(info.state, EXP_RUNNING);
  /* a failed audit does not undo a persisted change, but is counted */
  fl.fail = 0;
  assert_int_equal(dial_store_set_percent(s, "checkout-v2", NULL, 900000, "t", NULL, err,
                                          sizeof err), 0);
  assert_int_equal(dial_store_audit_failures(s), 1);
  dial_store_free(s);
}

/* A reload that cannot be persisted changes nothing: not the live values,
 * not the remembered config values that later reloads and writes carry. */
static void test_dial_store_reload_save_failure(void **state) {
  struct env *e = *state;
  struct flaky fl = {0, 0};
  struct dial_store *s = NULL;
  char err[256];
  assert_int_equal(dial_store_open(&s, &e->f.cfg, (struct dial_store_backend){&flaky_ops, &fl},
                                   err, sizeof err), 0);
  struct fixture f2;
  fx_init(&f2);
  f2.dials[0].ppm = 10000;                 /* the config's own value changes */
  f2.per_dc[0].ppm = 30000;                /* and its eu-west value */
  f2.exps[0].autostart = 0;
  f2.cfg.datacenter = "eu-west";
  fl.fail = 1;
  assert_int_equal(dial_store_apply_config(s, &f2.cfg, err, sizeof err), CUT_ERR_IO);
  assert_int_equal(pct(s, "checkout-v2", NULL), 50000);
  assert_int_equal(pct(s, "checkout-v2", "eu-west"), 20000);
  assert_int_equal(dial_effective_ppm(&e->f.cfg, s, 0), 50000);
  /* the next write persists the old state, not the half-applied reload */
  fl.fail = 0;
  char *before = dial_store_json(s);
  assert_non_null(before);
  assert_int_equal(dial_store_set_percent(s, "search", NULL, 1, "t", NULL, err, sizeof err), 0);
  assert_int_equal(pct(s, "checkout-v2", NULL), 50000);
  char *after = dial_store_json(s);
  assert_non_null(strstr(after, "\"config_ppm\":50000"));
  assert_null(strstr(after, ":10000,"));
  assert_null(strstr(after, ":10000}"));
  free(before);
  free(after);
  /* retried with a working backend, the reload applies as usual */
  assert_int_equal(dial_store_apply_config(s, &f2.cfg, err, sizeof err), 0);
  assert_int_equal(pct(s, "checkout-v2", NULL), 10000);
  assert_int_equal(pct(s, "checkout-v2", "eu-west"), 30000);
  assert_int_equal(dial_effective_ppm(&f2.cfg, s, 0), 30000);
  dial_store_free(s);
}

/*
 * A backend that watches the order of a write: when save() runs, readers
 * must still see the old value (nothing is acknowledged or visible before it
 * is durable); when audit() runs, the new value must be saved and visible.
 */
struct watcher {
  const struct cfg *cfg;
  struct dial_store *s;       /* NULL while the store opens */
  uint32_t seen_in_save;      /* what a reader saw during the last save */
  int saved_new;              /* the last saved document held the new value */
  uint32_t seen_in_audit;
  int saves_before_audit;
  int saves;
};
static int watch_load(void *c, char **json, char *err, size_t errlen) {
  (void)c, (void)err, (void)errlen;
  *json = NULL;
  return 0;
}
static int watch_save(void *c, const char *json, size_t len, char *err, size_t errlen) {
  struct watcher *w = c;
  (void)len, (void)err, (void)errlen;
  w->saves++;
  if (w->s) {
    w->seen_in_save = dial_effective_ppm(w->cfg, w->s, 0);
    w->saved_new = strstr(json, "\"ppm\": 777777") != NULL;
  }
  return 0;
}
static int watch_audit(void *c, const char *line, size_t len, char *err, size_t errlen) {
  struct watcher *w = c;
  (void)line, (void)len, (void)err, (void)errlen;
  if (w->s) {
    w->seen_in_audit = dial_effective_ppm(w->cfg, w->s, 0);
    w->saves_before_audit = w->saves;
  }
  return 0;
}
static void watch_close(void *c) { (void)c; }
static const struct dial_store_backend_ops watch_ops = {"watch", watch_load, watch_save,
                                                        watch_audit, watch_close};

static void test_dial_store_persist_before_publish(void **state) {
  struct env *e = *state;
  struct watcher w = {.cfg = &e->f.cfg};
  struct dial_store *s = NULL;
  char err[256];
  assert_int_equal(dial_store_open(&s, &e->f.cfg, (struct dial_store_backend){&watch_ops, &w},
                                   err, sizeof err), 0);
  w.s = s;
  int saves = w.saves;
  assert_int_equal(dial_store_set_percent(s, "checkout-v2", NULL, 777777, "t", NULL, err,
                                          sizeof err), 0);
  assert_int_equal(w.saves, saves + 1);
  assert_true(w.saved_new);               /* the document written holds the change */
  assert_int_equal(w.seen_in_save, 50000); /* ... while readers still saw the old value */
  assert_int_equal(w.saves_before_audit, saves + 1); /* audited after it was saved */
  assert_int_equal(w.seen_in_audit, 777777);         /* ... and published */
  assert_int_equal(dial_effective_ppm(&e->f.cfg, s, 0), 777777);
  dial_store_free(s);
}

static void test_dial_store_counts(void **state) {
  struct env *e = *state;
  struct dial_store *s = NULL;
  struct flaky fl = {0, 0};
  char err[256];
  assert_int_equal(dial_store_open(&s, &e->f.cfg, (struct dial_store_backend){&flaky_ops, &fl},
                                   err, sizeof err), 0);
  struct fx_req r;
  struct dial_decision d;
  fx_req_init(&r, "/");
  fx_req_add(&r, "x-device-id", "dev-1");
  fx_req_add(&r, "x-region", "eu");
  fx_req_add(&r, "x-platform", "ios");
  fx_req_add(&r, "x-app-version", "8.two");
  assert_int_equal(dial_decide(&e->f.cfg, s, &e->f.routes[2], &r.req, 0, &d), 0);
  r.h[3].value = fx_s("7.0");
  assert_int_equal(dial_decide(&e->f.cfg, s, &e->f.routes[2], &r.req, 0, &d), 0);
  r.req.nheaders = 1;
  assert_int_equal(dial_decide(&e->f.cfg, s, &e->f.routes[0], &r.req, 0, &d), 0);
  fx_req_init(&r, "/");
  assert_int_equal(dial_decide(&e->f.cfg, s, &e->f.routes[0], &r.req, 0, &d), 0);
  struct dial_store_counts c;
  assert_int_equal(dial_store_counts(s, "allocation", "ab-checkout", &c), 0);
  assert_int_equal(c.not_eligible, 2);
  assert_int_equal(c.malformed_version, 1);
  assert_int_equal(dial_store_counts(s, "dial", "checkout-v2", &c), 0);
  assert_int_equal(c.no_key, 1);
  assert_int_equal(dial_store_counts(s, "dial", "zzz", &c), CUT_ERR_NOT_FOUND);
  char *json = dial_store_json(s);
  assert_non_null(json);
  assert_non_null(strstr(json, "\"checkout-v2\""));
  free(json);
  dial_store_free(s);
  dial_store_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_dial_store_set_restart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dial_store_reload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dial_store_datacenters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dial_store_steps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dial_store_experiments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dial_store_interrupted_write, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dial_store_save_failure, setup, teardown),
cmocka_unit_test_setup_teardown(test_dial_store_reload_save_failure, setup, teardown),
cmocka_unit_test_setup_teardown(test_dial_store_persist_before_publish, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dial_store_counts, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
