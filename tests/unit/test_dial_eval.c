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
  char *set[] = {"cutover", "dial", "set", "x", NULL};
  assert_int_equal(run_cli(set, 4, out, sizeof out), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dial_eval_route_match),
      cmocka_unit_test(test_dial_eval_report),
      cmocka_unit_test(test_dial_eval_cli_bucket),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
