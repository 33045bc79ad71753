/* Statistical properties of the bucketing: uniformity, monotonicity, independence of salts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dials/dial.h"
#include "test_dial_fixture.h"

#define NKEYS 1000000

/* Fixed-seed generator of 36-character UUID-shaped device ids (splitmix64),
 * so every run tests the same keys and the thresholds are reproducible. */
struct gen {
  uint64_t s;
};

static uint64_t next64(struct gen *g) {
  uint64_t z = (g->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void next_key(struct gen *g, char key[37]) {
  static const char hex[] = "0123456789abcdef";
  uint64_t a = next64(g), b = next64(g);
  int k = 0;
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      key[i] = '-';
      continue;
    }
    uint64_t *w = k < 16 ? &a : &b;
    key[i] = hex[*w & 15];
    *w >>= 4;
    k++;
  }
  key[36] = '\0';
}

static double chi_square(const uint32_t *count, size_t bins, double n) {
  double e = n / (double)bins, x = 0;
  for (size_t i = 0; i < bins; i++) {
    double d = count[i] - e;
    x += d * d / e;
  }
  return x;
}

/*
 * Chi-square goodness of fit against the uniform distribution at
 * significance 0.001. Critical values (Wilson-Hilferty): 99 degrees of
 * freedom -> 148.2; 9999 -> 10441.7. A correct hash fails this once in a
 * thousand key sets; the key set is fixed, so the result is stable.
 */
static void test_dial_stats_uniformity(void **state) {
  (void)state;
  static uint32_t c100[100], c10k[10000];
  memset(c100, 0, sizeof c100);
  memset(c10k, 0, sizeof c10k);
  struct gen g = {20261121};
  char key[37];
  for (int i = 0; i < NKEYS; i++) {
    next_key(&g, key);
    uint32_t b = dial_bucket("checkout-v2", 11, key, 36);
    c100[b / 10000]++;
    c10k[b / 100]++;
  }
  double x100 = chi_square(c100, 100, NKEYS), x10k = chi_square(c10k, 10000, NKEYS);
  print_message("chi-square: 100 bins %.1f (crit 148.2), 10000 bins %.1f (crit 10441.7)\n", x100,
                x10k);
  assert_true(x100 < 148.2);
  assert_true(x10k < 10441.7);
  /* sanity of the statistic itself: a skewed distribution must fail */
  c100[0] += 2000;
  c100[1] -= 2000;
  assert_true(chi_square(c100, 100, NKEYS) > 148.2);
}

/* For random p < q, every key in the dial at p is in it at q (through dial_decide). */
static void test_dial_stats_monotonic(void **state) {
  (void)state;
  enum { KEYS = 5000, PAIRS = 40 };
  static char keys[KEYS][37];
  struct gen g = {7};
  for (int i = 0; i < KEYS; i++) next_key(&g, keys[i]);
  struct fixture f;
  fx_init(&f);
  for (int t = 0; t < PAIRS; t++) {
    uint32_t p = (uint32_t)(next64(&g) % (DIAL_BUCKETS + 1));
    uint32_t q = (uint32_t)(next64(&g) % (DIAL_BUCKETS + 1));
    if (p > q) {
      uint32_t x = p;
      p = q;
      q = x;
    }
    int in_p = 0, in_q = 0;
    for (int i = 0; i < KEYS; i++) {
      struct fx_req r;
      fx_req_init(&r, "/");
      fx_req_add(&r, "x-device-id", keys[i]);
      struct dial_decision d;
      f.dials[0].ppm = p;
      dial_decide(&f.cfg, NULL, &f.routes[0], &r.req, 0, &d);
      int a = d.backend_index == B_NEW;
      f.dials[0].ppm = q;
      dial_decide(&f.cfg, NULL, &f.routes[0], &r.req, 0, &d);
      int b = d.backend_index == B_NEW;
      if (a) assert_true(b);
      in_p += a;
      in_q += b;
    }
    assert_true(in_p <= in_q);
  }
}

/* Two dials with different salts at 10% each share about 1% of the keys. */
static void test_dial_stats_independence(void **state) {
  (void)state;
  struct gen g = {99};
  char key[37];
  int a = 0, b = 0, both = 0;
  for (int i = 0; i < NKEYS; i++) {
    next_key(&g, key);
    int x = dial_in(dial_bucket("checkout-v2", 11, key, 36), 100000);
    int y = dial_in(dial_bucket("search", 6, key, 36), 100000);
    a += x;
    b += y;
    both += x && y;
  }
  /* expected 10000 overlaps, sd ~ 99.5: allow 5 sd */
  print_message("independence: %d, %d, both %d\n", a, b, both);
  assert_in_range(a, 100000 - 1500, 100000 + 1500);
  assert_in_range(b, 100000 - 1500, 100000 + 1500);
  assert_in_range(both, 10000 - 500, 10000 + 500);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dial_stats_uniformity),
      cmocka_unit_test(test_dial_stats_monotonic),
      cmocka_unit_test(test_dial_stats_independence),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
