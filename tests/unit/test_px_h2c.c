/* Unit tests for px_h2c: recognizing `Upgrade: h2c` and decoding HTTP2-Settings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "proxy/px_h2c.h"

static void add(struct px_headers *h, const char *name, const char *value) {
  assert_int_equal(px_headers_add(h, name, strlen(name), value, strlen(value)), 0);
}

static void test_px_h2c_requested(void **state) {
  struct px_headers h = {0};
  add(&h, "Upgrade", "h2c");
  assert_int_equal(px_h2c_requested(&h), 0); /* Connection does not name it */
  add(&h, "Connection", "keep-alive , UPGRADE");
  assert_int_equal(px_h2c_requested(&h), 0); /* nor HTTP2-Settings */
  add(&h, "connection", "http2-settings");   /* a second field counts too */
  assert_int_equal(px_h2c_requested(&h), 1);
  px_headers_clear(&h);
  add(&h, "upgrade", "websocket");
  add(&h, "connection", "Upgrade, HTTP2-Settings");
  assert_int_equal(px_h2c_requested(&h), 0);
  px_headers_clear(&h);
  add(&h, "upgrade", "websocket, h2c");
  add(&h, "connection", "Upgrade,HTTP2-Settings");
  assert_int_equal(px_h2c_requested(&h), 1);
  px_headers_clear(&h);
  add(&h, "upgrade", "h2c2");
  add(&h, "connection", "Upgrade, HTTP2-Settings");
  assert_int_equal(px_h2c_requested(&h), 0);
  px_headers_clear(&h);
}

static int decode(const char *value, uint8_t *out, const char **why) {
  struct px_headers h = {0};
  if (value)
    add(&h, "http2-settings", value);
  int n = px_h2c_settings(&h, out, PX_H2C_SETTINGS_MAX, why);
  px_headers_clear(&h);
  return n;
}

static void test_px_h2c_settings(void **state) {
  uint8_t out[PX_H2C_SETTINGS_MAX];
  const char *why = NULL;
  /* MAX_CONCURRENT_STREAMS=100, INITIAL_WINDOW_SIZE=1073741824 (what curl sends) */
  assert_int_equal(decode("AAMAAABkAARAAAAAAAIAAAAA", out, &why), 18);
  static const uint8_t want[18] = {0, 3, 0, 0, 0, 100, 0, 4, 0x40, 0, 0, 0, 0, 2, 0, 0, 0, 0};
  assert_memory_equal(out, want, sizeof want);
  assert_int_equal(decode("AAMAAABkAARAAAAAAAIAAAAA", out, &why), 18);
  assert_int_equal(decode("AAMAAABk", out, &why), 6);
  assert_int_equal(decode("", out, &why), 0);           /* no settings at all */
  assert_int_equal(decode("AAUAAEAA", out, &why), 6);   /* MAX_FRAME_SIZE = 16384 */
  assert_int_equal(decode("AAMAAABkAA==", out, &why), CUT_ERR_PARSE); /* 8 bytes */
  assert_non_null(strstr(why, "whole number"));
  assert_int_equal(decode(NULL, out, &why), CUT_ERR_NOT_FOUND);
  assert_int_equal(decode("AAMA+ABk", out, &why), CUT_ERR_PARSE); /* base64, not base64url */
  assert_non_null(strstr(why, "base64url"));
  assert_int_equal(decode("AAMAAABkA", out, &why), CUT_ERR_PARSE);  /* 9 characters */
  assert_int_equal(decode("AAMAAABl", out, &why), 6);
  assert_int_equal(decode("AAMAAABkAB", out, &why), CUT_ERR_PARSE); /* stray low bits */
  assert_int_equal(decode("AAIAAAAC", out, &why), CUT_ERR_RANGE);  /* ENABLE_PUSH = 2 */
  assert_non_null(strstr(why, "out of range"));
  assert_int_equal(decode("AAUAAD__", out, &why), CUT_ERR_RANGE);  /* MAX_FRAME_SIZE too small */
  assert_int_equal(decode("AASAAAAA", out, &why), CUT_ERR_RANGE);  /* window 2^31 */
  assert_int_equal(decode("AP8AAAAC", out, &why), 6);              /* unknown id: ignored */
  char big[400];
  memset(big, 'A', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(decode(big, out, &why), CUT_ERR_RANGE);
  assert_non_null(strstr(why, "too large"));
  /* twice */
  struct px_headers h = {0};
  add(&h, "http2-settings", "AAMAAABk");
  add(&h, "http2-settings", "AAMAAABk");
  assert_int_equal(px_h2c_settings(&h, out, sizeof out, &why), CUT_ERR_PARSE);
  assert_non_null(strstr(why, "more than once"));
  px_headers_clear(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_px_h2c_requested),
      cmocka_unit_test(test_px_h2c_settings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
