/* Unit tests for config/units: durations, sizes, percentages, addresses, keys, versions, times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "config/units.h"

static void test_units_duration(void **state) {
  (void)state;
  uint64_t ms = 7;
  char err[128];
  assert_int_equal(cfg_parse_duration("250ms", &ms, err, sizeof err), 0);
  assert_int_equal(ms, 250);
  assert_int_equal(cfg_parse_duration("2s", &ms, err, sizeof err), 0);
  assert_int_equal(ms, 2000);
  assert_int_equal(cfg_parse_duration("1m", &ms, err, sizeof err), 0);
  assert_int_equal(ms, 60000);
  assert_int_equal(cfg_parse_duration("1h", &ms, err, sizeof err), 0);
  assert_int_equal(ms, 3600000);
  assert_int_equal(cfg_parse_duration("1.5s", &ms, err, sizeof err), 0);
  assert_int_equal(ms, 1500);
  assert_int_equal(cfg_parse_duration("0", &ms, err, sizeof err), 0);
  assert_int_equal(ms, 0);

  ms = 42;
  assert_int_equal(cfg_parse_duration("5", &ms, err, sizeof err), CUT_ERR_INVALID);
  assert_string_equal(err, "duration \"5\" needs a unit (ms, s, m, h)");
  assert_int_equal(cfg_parse_duration("5sec", &ms, err, sizeof err), CUT_ERR_INVALID);
  assert_string_equal(err, "unknown unit \"sec\" (use ms, s, m, h)");
  assert_int_equal(cfg_parse_duration("0.5ms", &ms, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_duration("-1s", &ms, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_duration("", &ms, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_duration("1.s", &ms, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_duration("999999999999999999h", &ms, err, sizeof err), CUT_ERR_RANGE);
  assert_int_equal(ms, 42); /* untouched on failure */
}

static void test_units_size(void **state) {
  (void)state;
  uint64_t b = 0;
  char err[128];
  assert_int_equal(cfg_parse_size("512", &b, err, sizeof err), 0);
  assert_int_equal(b, 512);
  assert_int_equal(cfg_parse_size("64KiB", &b, err, sizeof err), 0);
  assert_int_equal(b, 65536);
  assert_int_equal(cfg_parse_size("4MiB", &b, err, sizeof err), 0);
  assert_int_equal(b, 4u << 20);
  assert_int_equal(cfg_parse_size("1GiB", &b, err, sizeof err), 0);
  assert_int_equal(b, 1u << 30);
  assert_int_equal(cfg_parse_size("2KB", &b, err, sizeof err), 0);
  assert_int_equal(b, 2000);
  assert_int_equal(cfg_parse_size("1.5KiB", &b, err, sizeof err), 0);
  assert_int_equal(b, 1536);
  assert_int_equal(cfg_parse_size("4mb", &b, err, sizeof err), CUT_ERR_INVALID);
  assert_string_equal(err, "unknown unit \"mb\" (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)");
  assert_int_equal(cfg_parse_size("0.1B", &b, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_size("99999999999999999TiB", &b, err, sizeof err), CUT_ERR_RANGE);
}

static void test_units_percent(void **state) {
  (void)state;
  uint32_t p = 0;
  char err[128];
  assert_int_equal(cfg_parse_percent("5", &p, err, sizeof err), 0);
  assert_int_equal(p, 50000);
  assert_int_equal(cfg_parse_percent("5%", &p, err, sizeof err), 0);
  assert_int_equal(p, 50000);
  assert_int_equal(cfg_parse_percent("12.5%", &p, err, sizeof err), 0);
  assert_int_equal(p, 125000);
  assert_int_equal(cfg_parse_percent("0.0001%", &p, err, sizeof err), 0);
  assert_int_equal(p, 1);
  assert_int_equal(cfg_parse_percent("100%", &p, err, sizeof err), 0);
  assert_int_equal(p, 1000000);
  assert_int_equal(cfg_parse_percent("100.0000", &p, err, sizeof err), 0);
  assert_int_equal(p, 1000000);
  assert_int_equal(cfg_parse_percent("0", &p, err, sizeof err), 0);
  assert_int_equal(p, 0);

  assert_int_equal(cfg_parse_percent("100.0001%", &p, err, sizeof err), CUT_ERR_RANGE);
  assert_string_equal(err, "percentage \"100.0001%\" is out of range (0-100%)");
  assert_int_equal(cfg_parse_percent("150%", &p, err, sizeof err), CUT_ERR_RANGE);
  assert_int_equal(cfg_parse_percent("0.00001%", &p, err, sizeof err), CUT_ERR_INVALID);
  assert_string_equal(err, "percentage \"0.00001%\" has more than 4 decimals");
  assert_int_equal(cfg_parse_percent("-5%", &p, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_percent("5%%", &p, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_percent("five", &p, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_percent("999999999999999999", &p, err, sizeof err), CUT_ERR_RANGE);
}

static void test_units_format_percent(void **state) {
  (void)state;
  char buf[16];
  static const struct {
    uint32_t ppm;
    const char *text;
  } v[] = {{0, "0%"}, {1, "0.0001%"}, {50000, "5%"}, {125000, "12.5%"}, {1000000, "100%"},
           {123456, "12.3456%"}, {100, "0.01%"}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    cfg_format_percent(v[i].ppm, buf, sizeof buf);
    assert_string_equal(buf, v[i].text);
    uint32_t back;
    assert_int_equal(cfg_parse_percent(buf, &back, NULL, 0), 0);
    assert_int_equal(back, v[i].ppm);
  }
}

static void test_units_addr(void **state) {
  (void)state;
  struct cfg_addr a;
  char err[128];
  assert_int_equal(cfg_parse_addr("127.0.0.1:8080", &a, err, sizeof err), 0);
  assert_string_equal(a.host, "127.0.0.1");
  assert_int_equal(a.port, 8080);
  assert_false(a.is_ipv6);
  free(a.host);
  assert_int_equal(cfg_parse_addr("[::1]:8443", &a, err, sizeof err), 0);
  assert_string_equal(a.host, "::1");
  assert_int_equal(a.port, 8443);
  assert_true(a.is_ipv6);
  free(a.host);
  assert_int_equal(cfg_parse_addr("backend.internal:80", &a, err, sizeof err), 0);
  assert_string_equal(a.host, "backend.internal");
  free(a.host);

  assert_int_equal(cfg_parse_addr("127.0.0.1", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_string_equal(err, "\"127.0.0.1\" has no port (use host:port, e.g. 127.0.0.1:8080)");
  assert_int_equal(cfg_parse_addr("127.0.0.1:99999", &a, err, sizeof err), CUT_ERR_RANGE);
  assert_int_equal(cfg_parse_addr("127.0.0.1:0", &a, err, sizeof err), CUT_ERR_RANGE);
  assert_int_equal(cfg_parse_addr("256.1.1.1:80", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_string_equal(err, "\"256.1.1.1:80\": \"256.1.1.1\" is not an IPv4 address");
  assert_int_equal(cfg_parse_addr("::1:80", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_addr("[::g]:80", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_addr("[::1]80", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_addr("bad host:80", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_addr(":80", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_addr("h:8x", &a, err, sizeof err), CUT_ERR_INVALID);
}

static void test_units_key(void **state) {
  (void)state;
  struct cfg_key k;
  char err[128];
  assert_int_equal(cfg_parse_key("header:X-Device-Id", &k, err, sizeof err), 0);
  assert_int_equal(k.kind, CFG_KEY_HEADER);
  assert_string_equal(k.name, "x-device-id");
  assert_string_equal(k.spec, "header:X-Device-Id");
  free(k.name);
  free(k.spec);
  assert_int_equal(cfg_parse_key("cookie:Did", &k, err, sizeof err), 0);
  assert_int_equal(k.kind, CFG_KEY_COOKIE);
  assert_string_equal(k.name, "Did");
  free(k.name);
  free(k.spec);
  assert_int_equal(cfg_parse_key("random", &k, err, sizeof err), 0);
  assert_int_equal(k.kind, CFG_KEY_RANDOM);
  assert_null(k.name);
  free(k.spec);
  assert_int_equal(cfg_parse_key("head:x", &k, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_key("header:", &k, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_key("header:a b", &k, err, sizeof err), CUT_ERR_INVALID);
}

static void test_units_version(void **state) {
  (void)state;
  uint32_t v[3];
  assert_int_equal(cfg_parse_version("8.2.13", v), 0);
  assert_int_equal(v[0], 8);
  assert_int_equal(v[1], 2);
  assert_int_equal(v[2], 13);
  assert_int_equal(cfg_parse_version("9", v), 0);
  assert_int_equal(v[0], 9);
  assert_int_equal(v[1], 0);
  assert_int_equal(cfg_parse_version("1.2.3-beta", v), 0);
  assert_int_equal(cfg_parse_version("1.2.3.4", v), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_version("x", v), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_version("1..2", v), CUT_ERR_INVALID);

  struct cfg_version_cmp *c;
  size_t n;
  char err[128];
  assert_int_equal(cfg_parse_version_range(">=8.2.0 <9", &c, &n, err, sizeof err), 0);
  assert_int_equal(n, 2);
  assert_int_equal(c[0].op, CFG_CMP_GE);
  assert_int_equal(c[0].v[1], 2);
  assert_int_equal(c[1].op, CFG_CMP_LT);
  assert_int_equal(c[1].v[0], 9);
  free(c);
  assert_int_equal(cfg_parse_version_range("=1.0 <=2 >0.5", &c, &n, err, sizeof err), 0);
  assert_int_equal(n, 3);
  assert_int_equal(c[0].op, CFG_CMP_EQ);
  assert_int_equal(c[1].op, CFG_CMP_LE);
  assert_int_equal(c[2].op, CFG_CMP_GT);
  free(c);
  assert_int_equal(cfg_parse_version_range(">=x", &c, &n, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_version_range("  ", &c, &n, err, sizeof err), CUT_ERR_INVALID);
}

static void test_units_time(void **state) {
  (void)state;
  int64_t t;
  char err[128];
  assert_int_equal(cfg_parse_time("1970-01-01T00:00:00Z", &t, err, sizeof err), 0);
  assert_int_equal(t, 0);
  assert_int_equal(cfg_parse_time("2026-11-21T10:00:00Z", &t, err, sizeof err), 0);
  assert_int_equal(t, 1795255200);
  assert_int_equal(cfg_parse_time("2026-11-21T12:00:00+02:00", &t, err, sizeof err), 0);
  assert_int_equal(t, 1795255200);
  assert_int_equal(cfg_parse_time("2024-02-29T00:00:00.5Z", &t, err, sizeof err), 0);
  assert_int_equal(cfg_parse_time("2023-02-29T00:00:00Z", &t, err, sizeof err), CUT_ERR_RANGE);
  assert_int_equal(cfg_parse_time("2026-11-21", &t, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_time("2026-11-21T10:00:00", &t, err, sizeof err), CUT_ERR_INVALID);
}

/* Percent syntax at its edges: what the issue allows (0-100, at most 4 decimals,
 * optional '%') and the near misses a hand-edited file produces. */
static void test_units_percent_edges(void **state) {
  (void)state;
  static const struct {
    const char *in;
    uint32_t ppm;
  } ok[] = {{"100.00%", 1000000}, {"0.1000%", 1000}, {"12.50", 125000}, {"00005%", 50000},
            {"0.0%", 0},          {"99.9999%", 999999}, {"0.0001", 1}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint32_t p = 7;
    char err[128] = "";
    assert_int_equal(cfg_parse_percent(ok[i].in, &p, err, sizeof err), 0);
    assert_int_equal(p, ok[i].ppm);
  }
  static const char *const bad[] = {"5.", ".5%", " 5%", "5 %", "5% ", "+5%", "5e1",
                                    "1e-4%", "0x10", "%", "5,5%", "100%%", "\xc2\xa0" "5%"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint32_t p = 7;
    char err[128] = "";
    assert_int_equal(cfg_parse_percent(bad[i], &p, err, sizeof err), CUT_ERR_INVALID);
    assert_int_equal(p, 7); /* untouched on error */
    assert_non_null(strstr(err, "is not a percentage"));
  }
  uint32_t p = 7;
  char err[128];
  assert_int_equal(cfg_parse_percent("", &p, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_percent(NULL, &p, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_percent("100.00001", &p, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_percent("100.0000001%", &p, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_percent("1000", &p, err, sizeof err), CUT_ERR_RANGE);
  assert_int_equal(p, 7);
}

/* IPv6 in brackets, and the mistakes around them. */
static void test_units_addr_ipv6(void **state) {
  (void)state;
  struct cfg_addr a;
  char err[128];
  assert_int_equal(cfg_parse_addr("[2001:db8::1]:443", &a, err, sizeof err), 0);
  assert_string_equal(a.host, "2001:db8::1");
  assert_int_equal(a.port, 443);
  assert_true(a.is_ipv6);
  free(a.host);
  assert_int_equal(cfg_parse_addr("[::ffff:127.0.0.1]:80", &a, err, sizeof err), 0);
  assert_string_equal(a.host, "::ffff:127.0.0.1");
  assert_true(a.is_ipv6);
  free(a.host);
  assert_int_equal(cfg_parse_addr("[::]:65535", &a, err, sizeof err), 0);
  assert_int_equal(a.port, 65535);
  free(a.host);

  assert_int_equal(cfg_parse_addr("[::1]:", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_string_equal(err, "\"[::1]:\" has no port");
  assert_int_equal(cfg_parse_addr("[::1", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_addr("[]:80", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_addr("[::1]:65536", &a, err, sizeof err), CUT_ERR_RANGE);
  assert_int_equal(cfg_parse_addr("[::1]:80:81", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_int_equal(cfg_parse_addr("[127.0.0.1]:80", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_string_equal(err, "\"[127.0.0.1]:80\": \"127.0.0.1\" is not an IPv6 address");
  assert_int_equal(cfg_parse_addr("2001:db8::1:443", &a, err, sizeof err), CUT_ERR_INVALID);
  assert_string_equal(err,
                      "\"2001:db8::1:443\": write IPv6 addresses in brackets, e.g. [::1]:8080");
  assert_int_equal(cfg_parse_addr("[::1]:99999999999999999999", &a, err, sizeof err),
                   CUT_ERR_INVALID);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_units_duration),   cmocka_unit_test(test_units_size),
      cmocka_unit_test(test_units_percent),    cmocka_unit_test(test_units_format_percent),
      cmocka_unit_test(test_units_addr),       cmocka_unit_test(test_units_key),
      cmocka_unit_test(test_units_version),    cmocka_unit_test(test_units_time),
      cmocka_unit_test(test_units_percent_edges), cmocka_unit_test(test_units_addr_ipv6),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
