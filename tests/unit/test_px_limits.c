/* Unit tests for proxy/px_limits: limit counters and the HTTP/2 flood detectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/metrics.h"
#include "config/config.h"
#include "proxy/px_limits.h"

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Appends one frame (header + `len` zero bytes of payload) to buf; returns the new length. */
static size_t frame(uint8_t *buf, size_t at, uint8_t type, uint8_t flags, uint32_t sid,
                    uint32_t len) {
  uint8_t *p = buf + at;
  p[0] = (uint8_t)(len >> 16);
  p[1] = (uint8_t)(len >> 8);
  p[2] = (uint8_t)len;
  p[3] = type;
  p[4] = flags;
  p[5] = (uint8_t)(sid >> 24);
  p[6] = (uint8_t)(sid >> 16);
  p[7] = (uint8_t)(sid >> 8);
  p[8] = (uint8_t)sid;
  memset(p + 9, 0, len);
  return at + 9 + len;
}

static void test_px_limits_rapid_reset_burst(void **state) {
  (void)state;
  struct px_flood f;
  struct px_flood_limits l = {.max_resets = 100, .reset_window_ms = 1000};
  px_flood_init(&f, &l, 1);
  assert_int_equal(px_flood_feed(&f, preface, 24, 0), PX_FLOOD_NONE);
  uint8_t *buf = malloc(64 * 1024);
  size_t n = 0;
  /* 100 streams opened and reset at once: at the limit, still fine. */
  for (uint32_t i = 0; i < 100; i++) {
    n = frame(buf, n, 0x1, 0x5, 2 * i + 1, 10); /* HEADERS END_STREAM|END_HEADERS */
    n = frame(buf, n, 0x3, 0, 2 * i + 1, 4);    /* RST_STREAM */
  }
  assert_int_equal(px_flood_feed(&f, buf, n, 5), PX_FLOOD_NONE);
  n = frame(buf, 0, 0x1, 0x5, 201, 10);
  n = frame(buf, n, 0x3, 0, 201, 4);
  assert_int_equal(px_flood_feed(&f, buf, n, 6), PX_FLOOD_RAPID_RESET);
  /* Sticky, whatever comes next. */
  assert_int_equal(px_flood_feed(&f, buf, 9, 100000), PX_FLOOD_RAPID_RESET);
  assert_int_equal(px_flood_goaway_code(PX_FLOOD_RAPID_RESET), 0xb);
  assert_int_equal(px_flood_limit(PX_FLOOD_RAPID_RESET), PX_LIMIT_RAPID_RESET);
  assert_non_null(strstr(px_flood_reason_text(PX_FLOOD_RAPID_RESET), "rapid reset"));
  free(buf);
}

static void test_px_limits_rapid_reset_straddling_window(void **state) {
  (void)state;
  struct px_flood f;
  struct px_flood_limits l = {.max_resets = 100, .reset_window_ms = 1000};
  px_flood_init(&f, &l, 0);
  /* 80 resets at the end of one window and 80 at the start of the next: a
   * fixed window would see 80 + 80 and miss it; the sliding estimate does not. */
  assert_int_equal(px_flood_on_frame(&f, 0x3, 0, 1, 4, 0), PX_FLOOD_NONE); /* window [0,1000) */
  for (int i = 0; i < 79; i++)
    assert_int_equal(px_flood_on_frame(&f, 0x3, 0, 1, 4, 900), PX_FLOOD_NONE);
  enum px_flood_reason r = PX_FLOOD_NONE;
  int sent = 0;
  for (; sent < 80 && r == PX_FLOOD_NONE; sent++)
    r = px_flood_on_frame(&f, 0x3, 0, 1, 4, 1050);
  assert_int_equal(r, PX_FLOOD_RAPID_RESET);
  /* 80 * 0.95 + 21 > 100: caught after about twenty more. */
  assert_true(sent > 20 && sent < 30);
}

static void test_px_limits_slow_resets_pass(void **state) {
  (void)state;
  struct px_flood f;
  px_flood_init(&f, NULL, 0); /* 200 per 10 s */
  /* One reset every 100 ms for five minutes: 100 per 10 s, half the limit. */
  for (uint64_t t = 0; t < 300000; t += 100)
    assert_int_equal(px_flood_on_frame(&f, 0x3, 0, 1, 4, t), PX_FLOOD_NONE);
}

static void test_px_limits_settings_and_ping(void **state) {
  (void)state;
  struct px_flood f;
  struct px_flood_limits l = {.max_settings = 10, .max_pings = 20};
  px_flood_init(&f, &l, 0);
  /* ACKs never count. */
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(px_flood_on_frame(&f, 0x4, 0x1, 0, 0, 0), PX_FLOOD_NONE);
    assert_int_equal(px_flood_on_frame(&f, 0x6, 0x1, 0, 8, 0), PX_FLOOD_NONE);
  }
  for (int i = 0; i < 10; i++)
    assert_int_equal(px_flood_on_frame(&f, 0x4, 0, 0, 6, 1), PX_FLOOD_NONE);
  assert_int_equal(px_flood_on_frame(&f, 0x4, 0, 0, 6, 1), PX_FLOOD_SETTINGS);

  px_flood_init(&f, &l, 0);
  for (int i = 0; i < 20; i++)
    assert_int_equal(px_flood_on_frame(&f, 0x6, 0, 0, 8, 1), PX_FLOOD_NONE);
  assert_int_equal(px_flood_on_frame(&f, 0x6, 0, 0, 8, 2), PX_FLOOD_PING);
  /* After two quiet windows the count starts again. */
  px_flood_init(&f, &l, 0);
  for (int i = 0; i < 20; i++)
    assert_int_equal(px_flood_on_frame(&f, 0x6, 0, 0, 8, 0), PX_FLOOD_NONE);
  for (int i = 0; i < 20; i++)
    assert_int_equal(px_flood_on_frame(&f, 0x6, 0, 0, 8, 20000), PX_FLOOD_NONE);
}

static void test_px_limits_continuation_flood(void **state) {
  (void)state;
  struct px_flood f;
  struct px_flood_limits l = {.max_continuations = 4, .max_header_block_bytes = 1000};
  px_flood_init(&f, &l, 1);
  uint8_t buf[4096];
  size_t n = 0;
  memcpy(buf, preface, 24);
  n = 24;
  /* A block of HEADERS + 4 CONTINUATIONs (the last ends it) is fine. */
  n = frame(buf, n, 0x1, 0x0, 1, 100);
  for (int i = 0; i < 4; i++)
    n = frame(buf, n, 0x9, i == 3 ? 0x4 : 0x0, 1, 100);
  assert_int_equal(px_flood_feed(&f, buf, n, 0), PX_FLOOD_NONE);
  /* A new block with 5 CONTINUATIONs (each small) trips. */
  n = frame(buf, 0, 0x1, 0x0, 3, 1);
  for (int i = 0; i < 5; i++)
    n = frame(buf, n, 0x9, 0x0, 3, 1);
  assert_int_equal(px_flood_feed(&f, buf, n, 0), PX_FLOOD_CONTINUATION);

  /* Few frames but too many bytes in one block. */
  px_flood_init(&f, &l, 0);
  n = frame(buf, 0, 0x1, 0x0, 1, 600);
  n = frame(buf, n, 0x9, 0x0, 1, 600);
  assert_int_equal(px_flood_feed(&f, buf, n, 0), PX_FLOOD_HEADER_BLOCK);
  /* A stray CONTINUATION outside a block is left to nghttp2. */
  px_flood_init(&f, &l, 0);
  for (int i = 0; i < 10; i++)
    assert_int_equal(px_flood_on_frame(&f, 0x9, 0, 1, 10, 0), PX_FLOOD_NONE);
}

static void test_px_limits_feed_split_anywhere(void **state) {
  (void)state;
  /* The same bytes fed whole or one byte at a time give the same verdict at the same frame. */
  struct px_flood_limits l = {.max_pings = 3};
  uint8_t buf[1024];
  memcpy(buf, preface, 24);
  size_t n = 24;
  n = frame(buf, n, 0x0, 0x0, 1, 300); /* DATA with a payload containing zeros */
  for (int i = 0; i < 5; i++)
    n = frame(buf, n, 0x6, 0, 0, 8);
  struct px_flood whole, bytes;
  px_flood_init(&whole, &l, 1);
  px_flood_init(&bytes, &l, 1);
  assert_int_equal(px_flood_feed(&whole, buf, n, 0), PX_FLOOD_PING);
  size_t i;
  for (i = 0; i < n; i++)
    if (px_flood_feed(&bytes, buf + i, 1, 0) != PX_FLOOD_NONE)
      break;
  assert_int_equal(bytes.verdict, PX_FLOOD_PING);
  assert_int_equal(bytes.frames, whole.frames);
  assert_int_equal(bytes.frames, 5); /* DATA + 4 PINGs, the 4th trips */
}

static void test_px_limits_zero_window(void **state) {
  (void)state;
  struct px_flood f;
  struct px_flood_limits l = {.zero_window_ms = 5000};
  px_flood_init(&f, &l, 0);
  assert_int_equal(px_flood_check(&f, 100000), PX_FLOOD_NONE); /* never stalled */
  assert_int_equal(px_flood_on_window(&f, 1, 1000), PX_FLOOD_NONE);
  assert_int_equal(px_flood_on_window(&f, 1, 3000), PX_FLOOD_NONE); /* still since 1000 */
  assert_int_equal(px_flood_check(&f, 5999), PX_FLOOD_NONE);
  /* The peer opened its window: the clock restarts. */
  assert_int_equal(px_flood_on_window(&f, 0, 5000), PX_FLOOD_NONE);
  assert_int_equal(px_flood_check(&f, 7000), PX_FLOOD_NONE);
  assert_int_equal(px_flood_on_window(&f, 1, 7000), PX_FLOOD_NONE);
  assert_int_equal(px_flood_check(&f, 11999), PX_FLOOD_NONE);
  /* A WINDOW_UPDATE from the peer is progress: the clock restarts. */
  assert_int_equal(px_flood_on_frame(&f, 0x8, 0, 1, 4, 11000), PX_FLOOD_NONE);
  assert_int_equal(px_flood_on_window(&f, 1, 11500), PX_FLOOD_NONE);
  assert_int_equal(px_flood_check(&f, 16499), PX_FLOOD_NONE);
  assert_int_equal(px_flood_check(&f, 16500), PX_FLOOD_ZERO_WINDOW);
  assert_int_equal(px_flood_on_window(&f, 0, 16501), PX_FLOOD_ZERO_WINDOW);
}

static void test_px_limits_counters(void **state) {
  (void)state;
  struct met_registry *r;
  assert_int_equal(met_registry_new(&r, 2, 256), 0);
  struct px_limit_counters c;
  assert_int_equal(px_limit_counters_init(&c, r, NULL, 0), 0);
  px_limit_hit(&c, PX_LIMIT_RAPID_RESET, 0);
  px_limit_hit(&c, PX_LIMIT_RAPID_RESET, 1);
  px_limit_hit(&c, PX_LIMIT_CONNECTIONS, 1);
  px_limit_hit(&c, PX_LIMIT_COUNT, 1); /* ignored */
  char *text;
  assert_int_equal(met_render(r, &text, NULL), 0);
  assert_non_null(strstr(text, "cutover_limit_hits_total{limit=\"rapid_reset\"} 2\n"));
  assert_non_null(strstr(text, "cutover_limit_hits_total{limit=\"max_connections\"} 1\n"));
  assert_non_null(strstr(text, "cutover_limit_hits_total{limit=\"zero_window_stall\"} 0\n"));
  free(text);
  assert_string_equal(px_limit_name(PX_LIMIT_COUNT), "unknown");
  met_registry_free(r);
}

/* The config's thresholds reach the detector: 3 pings per 1 s fire on the 4th. */
static void test_px_limits_from_cfg(void **state) {
  (void)state;
  struct cfg_h2_floods h = {.max_resets = 5, .max_settings = 6, .max_pings = 3,
                            .rate_window_ms = 1000, .max_continuations = 2,
                            .max_header_block_bytes = 4096, .zero_window_stall_ms = 1500};
  struct px_flood_limits l;
  px_flood_limits_from_cfg(&l, &h);
  assert_int_equal(l.max_resets, 5);
  assert_int_equal(l.reset_window_ms, 1000);
  assert_int_equal(l.settings_window_ms, 1000);
  assert_int_equal(l.max_settings, 6);
  assert_int_equal(l.max_continuations, 2);
  assert_int_equal(l.max_header_block_bytes, 4096);
  assert_int_equal(l.zero_window_ms, 1500);
  struct px_flood f;
  px_flood_init(&f, &l, 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(px_flood_on_frame(&f, 0x6, 0, 0, 8, 100), PX_FLOOD_NONE);
  assert_int_equal(px_flood_on_frame(&f, 0x6, 0, 0, 8, 100), PX_FLOOD_PING);
  px_flood_init(&f, &l, 0);
  assert_int_equal(px_flood_on_window(&f, 1, 0), PX_FLOOD_NONE);
  assert_int_equal(px_flood_on_window(&f, 1, 1400), PX_FLOOD_NONE);
  assert_int_equal(px_flood_on_window(&f, 1, 1600), PX_FLOOD_ZERO_WINDOW);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_px_limits_rapid_reset_burst),
      cmocka_unit_test(test_px_limits_rapid_reset_straddling_window),
      cmocka_unit_test(test_px_limits_slow_resets_pass),
      cmocka_unit_test(test_px_limits_settings_and_ping),
      cmocka_unit_test(test_px_limits_continuation_flood),
      cmocka_unit_test(test_px_limits_feed_split_anywhere),
      cmocka_unit_test(test_px_limits_zero_window),
      cmocka_unit_test(test_px_limits_counters),
      cmocka_unit_test(test_px_limits_from_cfg),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
