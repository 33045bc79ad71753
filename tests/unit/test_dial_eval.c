/* Unit tests for dials/dial_eval.c and the `cutover dial` command. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cli.h"
#include "common/cut_err.h"
#include "dials/dial_eval.h"
#include "test_dial_fixture.h"

static char *read_all(FILE *f) {
  static char buf[4096];
  rewind(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  return buf;
}

static void test_dial_eval_route_match(void **state) {
  (void)state;
  struct fixture f;
  fx_init(&f);
  f.routes[0].host = "shop.example";
  f.routes[0].path_prefix = "/checkout";
  f.routes[1].path = "/exp";
  char *methods[] = {"POST"};
  f.routes[1].methods = (struct cfg_strlist){methods, 1};
  struct cfg_header_match hm = {"x-ab", NULL};
  f.routes[2].headers = &hm;
  f.routes[2].nheaders = 1;
  struct fx_req r;
  fx_req_init(&r, "/checkout/pay?x=1");
  fx_req_add(&r, "host", "Shop.Example:8443");
  assert_int_equal(dial_route_match(&f.cfg, &r.req), 0);
  fx_req_init(&r, "/checkout");
  fx_req_add(&r, ":authority", "other.example");
  assert_int_equal(dial_route_match(&f.cfg, &r.req), 3);
  fx_req_init(&r, "/exp?y");
  assert_int_equal(dial_route_match(&f.cfg, &r.req), 3); /* GET, route 1 wants POST */
  r.req.method = fx_s("POST");
  assert_int_equal(dial_route_match(&f.cfg, &r.req), 1);
  fx_req_init(&r, "/exp/2");
  fx_req_add(&r, "x-ab", "1");
  assert_int_equal(dial_route_match(&f.cfg, &r.req), 2);
  f.cfg.nroutes = 3;
  fx_req_init(&r, "/nothing");
  assert_int_equal(dial_route_match(&f.cfg, &r.req), SIZE_MAX);
}

static void test_dial_eval_report(void **state) {
  (void)state;
  struct fixture f;
  fx_init(&f);
  f.dials[0].ppm = 200000;
  struct fx_req r;
  fx_req_init(&r, "/");
  fx_req_add(&r, "x-device-id", "device-1");
  FILE *out = tmpfile();
  assert_non_null(out);
  assert_int_equal(dial_eval(&f.cfg, NULL, 0, &r.req, 0, out), 0);
  assert_string_equal(read_all(out), "route     dial\n"
                                     "backend   new\n"
                                     "via       dial\n"
                                     "decision  dial=checkout-v2;arm=new;bucket=125012;"
                                     "reason=in-dial\n");
  fclose(out);
  out = tmpfile();
  f.cfg.nroutes = 0;
  assert_int_equal(dial_eval(&f.cfg, NULL, SIZE_MAX, &r.req, 0, out), CUT_ERR_NOT_FOUND);
  assert_string_equal(read_all(out), "no route matches this request\n");
  fclose(out);
}

/* Runs `cutover ARGS` with stdout captured. */
static int run_cli(char **argv, int argc, char *buf, size_t buflen) {
  fflush(stdout);
  FILE *tmp = tmpfile();
  int saved = dup(1);
  dup2(fileno(tmp), 1);
  int rc = cut_main(argc, argv);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  rewind(tmp);
  size_t n = fread(buf, 1, buflen - 1, tmp);
  buf[n] = '\0';
  fclose(tmp);
  return rc;
}

static void test_dial_eval_cli_bucket(void **state) {
  (void)state;
  char out[512];
  char *argv[] = {"cutover", "dial", "bucket", "--salt", "checkout-v2", "device-1", "a b c",
                  "", "caf\xc3\xa9", NULL};
  assert_int_equal(run_cli(argv, 9, out, sizeof out), 0);
  assert_string_equal(out, "device-1\t125012\na b c\t524845\n\t976235\ncaf\xc3\xa9\t984510\n");
  char *nosalt[] = {"cutover", "dial", "bucket", "device-1", NULL};
  assert_int_equal(run_cli(nosalt, 4, out, sizeof out), 0);
  assert_string_equal(out, "device-1\t380314\n");
  char *bad[] = {"cutover", "dial", "bucket", "--bogus", "x", NULL};
  assert_int_equal(run_cli(bad, 5, out, sizeof out), 2);
  /* the admin verbs are dispatched: a set without a percentage is a usage error */
  char *set[] = {"cutover", "dial", "set", "x", NULL};
  assert_int_equal(run_cli(set, 4, out, sizeof out), 2);
}

/* A config as users write it, through the real loader. */
static const char yaml[] =
    "datacenter: eu-west-1\n"
    "listeners:\n"
    "  - { name: plain, listen: \"127.0.0.1:8080\" }\n"
    "backends:\n"
    "  legacy: { hosts: [\"127.0.0.1:9001\"] }\n"
    "  modern: { hosts: [\"127.0.0.1:9002\"] }\n"
    "dials:\n"
    "  checkout-v2:\n"
    "    key: \"header:x-device-id\"\n"
    "    percent: 5%\n"
    "    to: modern\n"
    "    steps: [1%, 5%, 25%, 50%, 100%]\n"
    "    per_datacenter: { us-east-1: 100% }\n"
    "experiments:\n"
    "  search-canary:\n"
    "    key: \"cookie:device_id\"\n"
    "    pool: 2%\n"
    "    canary: modern\n"
    "    baseline: legacy\n"
    "    state: running\n"
    "allocations:\n"
    "  profile-ab:\n"
    "    key: \"query:device\"\n"
    "    percent: 100%\n"
    "    cells:\n"
    "      - { name: a, weight: 50, backend: legacy }\n"
    "      - { name: b, weight: 50, backend: modern }\n"
    "    platforms: [ios, android]\n"
    "    app_version: \">=8.2.0 <9\"\n"
    "routes:\n"
    "  - { name: checkout, match: { path_prefix: /api/checkout }, backend: legacy, dial: checkout-v2 }\n"
    "  - { name: search, match: { path_prefix: /api/search }, backend: legacy, experiment: search-canary }\n"
    "  - { name: profile, match: { path_prefix: /api/profile }, backend: legacy, allocation: profile-ab }\n"
    "  - { name: default, backend: legacy }\n";

static const char *eval_line(const struct cfg *cfg, const char *path, const char *hname,
                             const char *hval, const char *h2name, const char *h2val) {
  struct dial_header h[2] = {{fx_s(hname), fx_s(hval)}, {fx_s(h2name), fx_s(h2val)}};
  struct dial_request req = {fx_s("GET"), fx_s(path), h, hname ? (h2name ? 2u : 1u) : 0u};
  FILE *out = tmpfile();
  assert_int_equal(dial_eval(cfg, NULL, SIZE_MAX, &req, 0, out), 0);
  char *all = read_all(out);
  fclose(out);
  char *d = strstr(all, "decision  ");
  assert_non_null(d);
  d += 10;
  d[strcspn(d, "\n")] = '\0';
  return d;
}

static void test_dial_eval_loaded_config(void **state) {
  (void)state;
  struct cfg *cfg = NULL;
  char *errs = NULL;
  int rc = cfg_load_buffer("dials.yaml", yaml, sizeof yaml - 1, &cfg, &errs);
  if (rc) fail_msg("config: %s", errs ? errs : "?");
  free(errs);
  /* dev-33: bucket 18012 < 5% */
  assert_string_equal(eval_line(cfg, "/api/checkout/pay", "x-device-id", "dev-33", NULL, NULL),
                      "dial=checkout-v2;arm=new;bucket=18012;reason=in-dial");
  assert_string_equal(eval_line(cfg, "/api/checkout/pay", "x-device-id", "device-1", NULL, NULL),
                      "dial=checkout-v2;arm=old;bucket=125012;reason=out-of-dial");
  /* search-canary pool 2%: dev-259 bucket 9270 (even: canary), dev-40 16697 (odd: baseline) */
  assert_string_equal(eval_line(cfg, "/api/search", "cookie", "x=1; device_id=dev-259", NULL, NULL),
                      "experiment=search-canary;arm=canary;bucket=9270;reason=in-pool");
  assert_string_equal(eval_line(cfg, "/api/search", "cookie", "device_id=dev-40", NULL, NULL),
                      "experiment=search-canary;arm=baseline;bucket=16697;reason=in-pool");
  assert_string_equal(eval_line(cfg, "/api/search", "cookie", "device_id=device-1", NULL, NULL),
                      "experiment=search-canary;bucket=333838;reason=out-of-pool");
  /* profile-ab: "dev 1" (sent as dev+1) has bucket 76924 and cell bucket 779041 -> b */
  assert_string_equal(eval_line(cfg, "/api/profile?device=dev+1", "x-platform", "ios",
                                "x-app-version", "8.4"),
                      "allocation=profile-ab;arm=b;bucket=76924;reason=allocated");
  assert_string_equal(eval_line(cfg, "/api/profile?device=dev+1", "x-platform", "web",
                                "x-app-version", "8.4"),
                      "allocation=profile-ab;reason=not-eligible");
  assert_string_equal(eval_line(cfg, "/api/profile?device=dev+1", "x-platform", "ios",
                                "x-app-version", "8.4.x"),
                      "allocation=profile-ab;reason=malformed-version");
  assert_string_equal(eval_line(cfg, "/other", NULL, NULL, NULL, NULL), "reason=default");
  /* the data center's own percentage applies: a store opened on this config agrees */
  assert_int_equal(dial_effective_ppm(cfg, NULL, 0), 50000);
  cfg_unref(cfg);
}

/* The order on one route: a canary's pool first, everyone else follows the dial. */
static void test_dial_eval_stacked_route(void **state) {
  (void)state;
  static const char stacked[] =
      "listeners: [ { name: plain, listen: \"127.0.0.1:8080\" } ]\n"
      "backends:\n"
      "  legacy: { hosts: [\"127.0.0.1:9001\"] }\n"
      "  modern: { hosts: [\"127.0.0.1:9002\"] }\n"
      "  canary: { hosts: [\"127.0.0.1:9003\"] }\n"
      "dials:\n"
      "  checkout-v2: { key: \"header:x-device-id\", percent: 5%, to: modern }\n"
      "experiments:\n"
      "  search-canary: { key: \"cookie:device_id\", pool: 2%, canary: canary,\n"
      "                   baseline: legacy, state: running }\n"
      "routes:\n"
      "  - { name: both, backend: legacy, experiment: search-canary, dial: checkout-v2 }\n";
  struct cfg *cfg = NULL;
  char *errs = NULL;
  int rc = cfg_load_buffer("stacked.yaml", stacked, sizeof stacked - 1, &cfg, &errs);
  if (rc) fail_msg("config: %s", errs ? errs : "?");
  free(errs);
  assert_int_equal(cfg->routes[0].experiment_index, 0);
  assert_int_equal(cfg->routes[0].dial_index, 0);
  /* in the pool (dev-259: bucket 9270): the experiment decides */
  assert_string_equal(eval_line(cfg, "/", "cookie", "device_id=dev-259", "x-device-id", "dev-33"),
                      "experiment=search-canary;arm=canary;bucket=9270;reason=in-pool");
  /* outside the pool (device-1: 333838): the dial decides (dev-33: 18012 < 5%) */
  assert_string_equal(eval_line(cfg, "/", "cookie", "device_id=device-1", "x-device-id", "dev-33"),
                      "dial=checkout-v2;arm=new;bucket=18012;reason=in-dial");
  assert_string_equal(eval_line(cfg, "/", "cookie", "device_id=device-1", "x-device-id",
                                "device-1"),
                      "dial=checkout-v2;arm=old;bucket=125012;reason=out-of-dial");
  cfg_unref(cfg);
}

static void test_dial_eval_cli_eval(void **state) {
  (void)state;
  char path[] = "/tmp/cutover-dialeval-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, yaml, sizeof yaml - 1), (ssize_t)(sizeof yaml - 1));
  close(fd);
  char out[1024];
  char *argv[] = {"cutover", "dial", "eval", "-c", path, "--header", "X-Device-ID=dev-33",
                  "--path", "/api/checkout/pay", "--method", "POST", NULL};
  assert_int_equal(run_cli(argv, 11, out, sizeof out), 0);
  assert_string_equal(out, "route     checkout\nbackend   modern\nvia       dial\n"
                           "decision  dial=checkout-v2;arm=new;bucket=18012;reason=in-dial\n");
  char *forced[] = {"cutover", "dial", "eval", "-c", path, "--route", "default", "--header",
                    "x-device-id=dev-33", "--path", "/api/checkout", NULL};
  assert_int_equal(run_cli(forced, 11, out, sizeof out), 0);
  assert_non_null(strstr(out, "route     default\n"));
  char *noroute[] = {"cutover", "dial", "eval", "-c", path, "--route", "nope", NULL};
  assert_int_equal(run_cli(noroute, 7, out, sizeof out), 1);
  char *badhdr[] = {"cutover", "dial", "eval", "-c", path, "--header", "novalue", NULL};
  assert_int_equal(run_cli(badhdr, 7, out, sizeof out), 2);
  char *noconf[] = {"cutover", "dial", "eval", "--path", "/", NULL};
  assert_int_equal(run_cli(noconf, 5, out, sizeof out), 2);
  char *missing[] = {"cutover", "dial", "eval", "-c", "/nonexistent/cutover.yaml", NULL};
  assert_int_equal(run_cli(missing, 5, out, sizeof out), 1);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dial_eval_route_match),
      cmocka_unit_test(test_dial_eval_report),
      cmocka_unit_test(test_dial_eval_cli_bucket),
      cmocka_unit_test(test_dial_eval_loaded_config),
      cmocka_unit_test(test_dial_eval_stacked_route),
      cmocka_unit_test(test_dial_eval_cli_eval),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
