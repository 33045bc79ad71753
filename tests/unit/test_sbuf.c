/* Unit tests for common/sbuf: appends, long formatted text, truncation and hand-over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/sbuf.h"

static void test_sbuf_append_and_take(void **state) {
  (void)state;
  struct sbuf b;
  sb_init(&b);
  sb_puts(&b, "ab");
  sb_put(&b, "c\0d", 3);
  sb_fmt(&b, "-%d-", 42);
  assert_int_equal(b.oom, 0);
  assert_int_equal(b.len, 9);
  assert_memory_equal(b.p, "abc\0d-42-", 10);
  size_t len = 0;
  char *s = sb_take(&b, &len);
  assert_non_null(s);
  assert_int_equal(len, 9);
  assert_null(b.p);
  assert_int_equal(b.len, 0);
  free(s);
}

static void test_sbuf_empty_take_is_empty_string(void **state) {
  (void)state;
  struct sbuf b = {0};
  size_t len = 99;
  char *s = sb_take(&b, &len);
  assert_non_null(s);
  assert_string_equal(s, "");
  assert_int_equal(len, 0);
  free(s);
  sb_clear(NULL);
  sb_clear(&b);
}

static void test_sbuf_long_format_not_truncated(void **state) {
  (void)state;
  char big[1000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  struct sbuf b = {0};
  sb_fmt(&b, "<%s>", big);
  assert_int_equal(b.len, sizeof big + 1);
  assert_int_equal(b.p[0], '<');
  assert_int_equal(b.p[b.len - 1], '>');
  assert_int_equal(b.p[b.len], '\0');
  sb_clear(&b);
}

static void test_sbuf_truncate(void **state) {
  (void)state;
  struct sbuf b = {0};
  sb_puts(&b, "root");
  size_t keep = b.len;
  sb_puts(&b, ".child");
  sb_truncate(&b, keep);
  assert_string_equal(b.p, "root");
  sb_truncate(&b, 100); /* longer than the text: no effect */
  assert_string_equal(b.p, "root");
  sb_clear(&b);
}

static void test_sbuf_oom_sticks(void **state) {
  (void)state;
  struct sbuf b = {0};
  sb_puts(&b, "x");
  b.oom = 1; /* as after a failed realloc */
  sb_puts(&b, "y");
  sb_fmt(&b, "%d", 1);
  assert_int_equal(b.len, 1);
  assert_null(sb_take(&b, NULL));
  assert_null(b.p);

  sb_puts(&b, "x");
  b.oom = 1;
  sb_reset(&b); /* a reused buffer starts over */
  sb_puts(&b, "z");
  assert_int_equal(b.oom, 0);
  assert_string_equal(b.p, "z");
  sb_clear(&b);
}

static void test_sbuf_json(void **state) {
  (void)state;
  struct sbuf b = {0};
  sb_json(&b, "a\"b\\c\n\x01\0z", 9);
  assert_string_equal(b.p, "\"a\\\"b\\\\c\\u000a\\u0001\\u0000z\"");
  sb_clear(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sbuf_append_and_take),
      cmocka_unit_test(test_sbuf_empty_take_is_empty_string),
      cmocka_unit_test(test_sbuf_long_format_not_truncated),
      cmocka_unit_test(test_sbuf_truncate),
      cmocka_unit_test(test_sbuf_oom_sticks),
      cmocka_unit_test(test_sbuf_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
