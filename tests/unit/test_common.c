/* Unit tests for common/: error codes, logger, CLI dispatch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "common/cli.h"
#include "common/cut_err.h"
#include "common/cut_fs.h"
#include "common/cut_thread.h"
#include "common/log.h"

static void test_common_strerror(void **state) {
  (void)state;
  assert_string_equal(cut_strerror(CUT_OK), "success");
  assert_string_equal(cut_strerror(CUT_ERR_NOMEM), "out of memory");
  assert_string_equal(cut_strerror(CUT_ERR_CONFIG), "configuration rejected");
  assert_string_equal(cut_strerror(-9999), "unknown error");
}

static void test_common_errf(void **state) {
  (void)state;
  char buf[32];
  assert_int_equal(cut_errf(buf, sizeof buf, CUT_ERR_RANGE, "port %d", 70000), CUT_ERR_RANGE);
  assert_string_equal(buf, "port 70000");
  assert_int_equal(cut_errf(NULL, 0, CUT_ERR_IO, "x"), CUT_ERR_IO);
}

static void test_common_log_level(void **state) {
  (void)state;
  enum log_level l;
  assert_int_equal(log_level_parse("WARN", &l), 0);
  assert_int_equal(l, LOG_WARN);
  assert_int_equal(log_level_parse("verbose", &l), CUT_ERR_INVALID);
  log_setup(LOG_WARN, LOG_JSON);
  assert_false(log_enabled(LOG_INFO));
  assert_true(log_enabled(LOG_ERROR));
  log_setup(LOG_INFO, LOG_TEXT);
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* cut_mkdir_p creates every missing level, accepts existing ones and trailing or doubled
 * slashes, and names the path that is in the way. */
static void test_common_mkdir_p(void **state) {
  (void)state;
  char root[] = "/tmp/cut-fs-XXXXXX";
  assert_non_null(mkdtemp(root));
  char deep[256], err[256] = "";
  snprintf(deep, sizeof deep, "%s/a//b/c/", root);
  assert_int_equal(cut_mkdir_p(deep, 0755, err, sizeof err), 0);
  snprintf(deep, sizeof deep, "%s/a/b/c", root);
  assert_true(is_dir(deep));
  assert_int_equal(cut_mkdir_p(deep, 0755, err, sizeof err), 0); /* exists: fine */

  char file[256];
  snprintf(file, sizeof file, "%s/a/f", root);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(deep, sizeof deep, "%s/a/f/x", root);
  assert_int_equal(cut_mkdir_p(deep, 0755, err, sizeof err), CUT_ERR_IO);
  assert_non_null(strstr(err, file));
  assert_int_equal(cut_mkdir_p("", 0755, err, sizeof err), CUT_ERR_INVALID);

  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  assert_int_equal(system(cmd), 0);
}

/* What a set-up function saw: its thread, its nice value, and that of a thread it started. */
struct niced_seen {
  pthread_t self;
  int nice;
  int child_nice;
};

static void *child_main(void *arg) {
  *(int *)arg = cut_thread_nice();
  return NULL;
}

static int seen_cb(void *arg) {
  struct niced_seen *s = arg;
  s->self = pthread_self();
  s->nice = cut_thread_nice();
  pthread_t t;
  if (pthread_create(&t, NULL, child_main, &s->child_nice) != 0)
    return -99;
  pthread_join(t, NULL);
  return 42;
}

static void test_common_thread_niced(void **state) {
  (void)state;
  int base = cut_thread_nice();
  struct niced_seen s = {0};
  int lowered = -1;
  /* runs on another thread, lowered by 5; what it starts inherits that */
  assert_int_equal(cut_thread_run_niced(5, seen_cb, &s, &lowered), 42);
  assert_int_equal(lowered, 1);
  assert_false(pthread_equal(s.self, pthread_self()));
  int want = base + 5 > 19 ? 19 : base + 5;
  assert_int_equal(s.nice, want);
  assert_int_equal(s.child_nice, want);
  /* the caller's own priority is untouched */
  assert_int_equal(cut_thread_nice(), base);
  /* capped at 19 */
  assert_int_equal(cut_thread_run_niced(40, seen_cb, &s, NULL), 42);
  assert_int_equal(s.nice, 19);
  /* 0: on the calling thread, nothing changed */
  assert_int_equal(cut_thread_run_niced(0, seen_cb, &s, &lowered), 42);
  assert_int_equal(lowered, 0);
  assert_true(pthread_equal(s.self, pthread_self()));
  assert_int_equal(s.nice, base);
}

static void test_common_cli_usage(void **state) {
  (void)state;
  char *none[] = {"cutover", NULL};
  assert_int_equal(cut_main(1, none), 2);
  char *bad[] = {"cutover", "frobnicate", NULL};
  assert_int_equal(cut_main(2, bad), 2);
  char *ver[] = {"cutover", "version", NULL};
  assert_int_equal(cut_main(2, ver), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_common_strerror),
      cmocka_unit_test(test_common_errf),
      cmocka_unit_test(test_common_log_level),
      cmocka_unit_test(test_common_cli_usage),
      cmocka_unit_test(test_common_mkdir_p),
      cmocka_unit_test(test_common_thread_niced),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
