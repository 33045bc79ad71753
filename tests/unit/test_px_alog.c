/* Unit tests for the access log: lines reach the file whole and in order per
 * worker, and what cannot be queued is counted, never blocked on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "proxy/px_alog.h"

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
  s[n] = '\0';
  fclose(f);
  return s;
}

static void test_px_alog_lines_and_drops(void **state) {
  (void)state;
  char path[] = "/tmp/test_px_alog_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  struct px_alog *a = NULL;
  char err[128];
  assert_int_equal(px_alog_new(&a, path, 2, 8, err, sizeof err), 0);
  int total = 2000, queued = 0;
  for (int i = 0; i < total; i++) {
    char line[64];
    int n = snprintf(line, sizeof line, "{\"ring\":%d,\"i\":%d}", i % 2, i);
    if (px_alog_write(a, (size_t)(i % 2), line, (size_t)n) == 0)
      queued++;
  }
  static char huge[PX_ALOG_LINE_MAX + 1];
  memset(huge, 'x', sizeof huge);
  assert_int_equal(px_alog_write(a, 0, huge, sizeof huge), CUT_ERR_FULL);
  px_alog_free(a); /* writes what is queued */
  char *s = slurp(path);
  int lines = 0, last[2] = {-1, -1};
  for (char *p = s, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
    int ring, i;
    assert_int_equal(sscanf(p, "{\"ring\":%d,\"i\":%d}", &ring, &i), 2);
    assert_true(i > last[ring]); /* in order per ring */
    last[ring] = i;
    lines++;
  }
  assert_int_equal(lines, queued);
  assert_true(queued >= 16); /* at least both rings' worth */
  free(s);
  unlink(path);
}

static void test_px_alog_stats_and_errors(void **state) {
  (void)state;
  struct px_alog *a = NULL;
  char err[256] = "";
  assert_int_equal(px_alog_new(&a, "/nonexistent-dir/x.log", 1, 4, err, sizeof err), CUT_ERR_IO);
  assert_null(a);
  assert_non_null(strstr(err, "/nonexistent-dir/x.log"));
  char path[] = "/tmp/test_px_alog_XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  assert_int_equal(px_alog_new(&a, path, 1, 1, err, sizeof err), 0);
  /* one slot: the second line before the writer wakes is dropped and counted */
  int ok = 0;
  for (int i = 0; i < 100; i++)
    ok += px_alog_write(a, 0, "x", 1) == 0;
  assert_int_equal(px_alog_dropped(a), (uint64_t)(100 - ok));
  px_alog_free(a);
  px_alog_free(NULL);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_px_alog_lines_and_drops),
      cmocka_unit_test(test_px_alog_stats_and_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
