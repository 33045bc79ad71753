/* Unit tests for the admin CLI verbs (dials/dial_admin_cmd.c) against a live px_admin with fake ops. */
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
#include "dials/dial_admin_cmd.h"
#include "proxy/px_admin.h"

struct fake {
  uint32_t ppm;
  char reason[64];
  char actor[128];
  int exp_running;
};

static int fake_set(void *ud, const char *name, const struct px_admin_change *c, json_t **out,
                    char *err, size_t errlen) {
  struct fake *f = ud;
  static const char *const names[] = {"checkout"};
  if (strcmp(name, "checkout") != 0)
    return px_admin_unknown(err, errlen, "dial", name, names, 1);
  uint32_t prev = f->ppm;
  f->ppm = c->ppm;
  snprintf(f->reason, sizeof f->reason, "%s", c->reason);
  snprintf(f->actor, sizeof f->actor, "%s", c->actor);
  *out = json_pack("{s:s, s:f, s:f}", "name", name, "percent", f->ppm / 1e4, "previous_percent",
                   prev / 1e4);
  return 0;
}

static int fake_rollback(void *ud, const char *name, const struct px_admin_change *c,
                         json_t **out, char *err, size_t errlen) {
  struct px_admin_change z = *c;
  z.ppm = 0;
  return fake_set(ud, name, &z, out, err, errlen);
}

static int fake_get(void *ud, const char *name, json_t **out, char *err, size_t errlen) {
  struct fake *f = ud;
  *out = json_pack("{s:s, s:f}", "name", name, "percent", f->ppm / 1e4);
  return 0;
}

static int fake_exp(void *ud, const char *name, const struct px_admin_change *c, json_t **out,
                    char *err, size_t errlen) {
  struct fake *f = ud;
  f->exp_running = !f->exp_running;
  snprintf(f->reason, sizeof f->reason, "%s", c->reason);
  *out = json_pack("{s:s, s:s}", "name", name, "state", f->exp_running ? "running" : "stopped");
  return 0;
}

struct env {
  char dir[64], token_file[128], addr[32];
  struct fake fake;
  struct px_admin *admin;
};

static int setup(void **state) {
  struct env *e = calloc(1, sizeof *e);
  snprintf(e->dir, sizeof e->dir, "/tmp/cutover-cli-XXXXXX");
  assert_non_null(mkdtemp(e->dir));
  snprintf(e->token_file, sizeof e->token_file, "%s/admin.token", e->dir);
  struct px_admin_opts o = {.token_file = e->token_file,
                            .ops = {.dial_set = fake_set, .dial_get = fake_get,
                                    .dial_rollback = fake_rollback,
                                    .experiment_start = fake_exp, .experiment_stop = fake_exp,
                                    .user_data = &e->fake}};
  log_setup(LOG_OFF, LOG_TEXT);
  assert_int_equal(px_admin_start(&e->admin, &o, NULL, 0), 0);
  snprintf(e->addr, sizeof e->addr, "127.0.0.1:%u", (unsigned)px_admin_port(e->admin));
  /* Keep the CLI's output out of the test log. */
  assert_non_null(freopen("/dev/null", "w", stdout));
  *state = e;
  return 0;
}

static int teardown(void **state) {
  struct env *e = *state;
  px_admin_free(e->admin);
  unlink(e->token_file);
  rmdir(e->dir);
  free(e);
  return 0;
}

static int cli(struct env *e, int (*cmd)(int, char **), const char *a0, const char *a1,
               const char *a2, const char *a3, const char *a4) {
  char *argv[16];
  int argc = 0;
  const char *in[] = {a0, a1, a2, a3, a4};
  for (int i = 0; i < 5 && in[i]; i++)
    argv[argc++] = (char *)in[i];
  argv[argc++] = "--admin";
  argv[argc++] = e->addr;
  argv[argc++] = "--token-file";
  argv[argc++] = e->token_file;
  argv[argc] = NULL;
  return cmd(argc, argv);
}

static void test_px_admin_cli_dial_verbs(void **state) {
  struct env *e = *state;
  assert_int_equal(cli(e, dial_admin_cmd, "set", "checkout", "12.5%", "--reason", "ramp"), 0);
  assert_int_equal(e->fake.ppm, 125000);
  assert_string_equal(e->fake.reason, "ramp");
  assert_non_null(strstr(e->fake.actor, " cli:"));
  assert_int_equal(cli(e, dial_admin_cmd, "get", "checkout", NULL, NULL, NULL), 0);
  assert_int_equal(cli(e, dial_admin_cmd, "rollback", "checkout", NULL, NULL, NULL), 0);
  assert_int_equal(e->fake.ppm, 0);
  /* Refusals exit 1. */
  assert_int_equal(cli(e, dial_admin_cmd, "set", "checkot", "5", NULL, NULL), 1);
  assert_int_equal(cli(e, dial_admin_cmd, "set", "checkout", "500", NULL, NULL), 1);
  assert_int_equal(e->fake.ppm, 0);
  assert_int_equal(cli(e, dial_admin_cmd, "step", "checkout", NULL, NULL, NULL), 1); /* 501 */
  /* Usage errors exit 2 and send nothing. */
  assert_int_equal(cli(e, dial_admin_cmd, "set", "checkout", NULL, NULL, NULL), 2);
  assert_int_equal(cli(e, dial_admin_cmd, "set", "a/b", "5", NULL, NULL), 2);
  assert_int_equal(cli(e, dial_admin_cmd, "frobnicate", NULL, NULL, NULL, NULL), 2);
  assert_int_equal(cli(e, dial_admin_cmd, "set", "checkout", "5", "--bogus", NULL), 2);
}

static void test_px_admin_cli_auth_and_unreachable(void **state) {
  struct env *e = *state;
  char other[160];
  snprintf(other, sizeof other, "%s/other.token", e->dir);
  FILE *f = fopen(other, "w");
  fputs("not-the-token\n", f);
  fclose(f);
  char *argv[] = {"set", "checkout", "5", "--admin", e->addr, "--token-file", other, NULL};
  assert_int_equal(dial_admin_cmd(7, argv), 1);
  assert_int_equal(e->fake.ppm, 0);
  unlink(other);
  char *argv2[] = {"get", "--admin", "127.0.0.1:1", "--token-file", e->token_file, NULL};
  assert_int_equal(dial_admin_cmd(5, argv2), 1);
  char *argv3[] = {"get", "--admin", "nonsense", "--token-file", e->token_file, NULL};
  assert_int_equal(dial_admin_cmd(5, argv3), 1);
}

static void test_px_admin_cli_experiments(void **state) {
  struct env *e = *state;
  assert_int_equal(cli(e, exp_admin_cmd, "start", "canary-1", NULL, NULL, NULL), 0);
  assert_true(e->fake.exp_running);
  /* stop needs a reason. */
  assert_int_equal(cli(e, exp_admin_cmd, "stop", "canary-1", NULL, NULL, NULL), 2);
  assert_true(e->fake.exp_running);
  assert_int_equal(cli(e, exp_admin_cmd, "stop", "canary-1", "--reason", "p99 up", NULL), 0);
  assert_false(e->fake.exp_running);
  assert_string_equal(e->fake.reason, "p99 up");
  assert_int_equal(cli(e, exp_admin_cmd, "list", NULL, NULL, NULL, NULL), 1); /* 501 */
  char *none[] = {NULL};
  assert_int_equal(exp_admin_cmd(0, none), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_px_admin_cli_dial_verbs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_admin_cli_auth_and_unreachable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_admin_cli_experiments, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
