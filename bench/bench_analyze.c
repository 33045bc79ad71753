/* bench_analyze: pairs per second through an_compare (+ an_summary_add_pair) on one core.
 * Run from the build tree: bench/bench_analyze [PAIRS_A [PAIRS_B]]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analyzer/an_compare.h"
#include "analyzer/an_rules.h"
#include "analyzer/an_summary.h"

static const char rules_yaml[] =
    "rules:\n"
    "  - match: { route: catalog }\n"
    "    ignore: [\"$.generatedAt\"]\n"
    "    sort: [ { path: \"$.tags\" }, { path: \"$.items\", by: id } ]\n";

/* A ~1 KB JSON body; `ts` and `reverse` make the normalization case. */
static size_t make_body(char *buf, size_t cap, long ts, int reverse) {
  size_t n = (size_t)snprintf(buf, cap,
                              "{\"id\":12345,\"name\":\"Product name for the benchmark\","
                              "\"generatedAt\":%ld,\"price\":19.99,\"currency\":\"EUR\",\"tags\":[",
                              ts);
  for (int i = 0; i < 12; i++) {
    int k = reverse ? 11 - i : i;
    n += (size_t)snprintf(buf + n, cap - n, "%s\"tag-%02d\"", i ? "," : "", k);
  }
  n += (size_t)snprintf(buf + n, cap - n, "],\"items\":[");
  for (int i = 0; i < 8; i++) {
    n += (size_t)snprintf(buf + n, cap - n,
                          "%s{\"id\":%d,\"sku\":\"SKU-%06d\",\"qty\":%d,\"available\":true,\"w\":1}",
                          i ? "," : "", i, i * 7919, i + 1);
  }
  n += (size_t)snprintf(buf + n, cap - n,
                        "],\"meta\":{\"source\":\"catalog-service\",\"version\":\"2.14.1\","
                        "\"region\":\"eu-west-1\",\"owner\":\"team-catalog@example.com\",\"build\":\"2026-11-21T10:00:00Z\",\"notes\":\"padding padding padding padding padding padding padding padding padding padding padding padding padding padding padding "
                        "padding padding padding padding padding padding\"}}");
  return n;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static const struct an_kv hdrs[] = {{"content-type", "application/json"}, {"date", "x"}};

static double run(struct an_rules *r, struct an_summary *s, struct an_pair_view *pv, long n,
                  int expect_body_kind) {
  struct an_result res;
  an_result_init(&res);
  double t0 = now();
  for (long i = 0; i < n; i++) {
    if (an_compare(r, pv, 0, &res) != 0 || res.outcome != AN_MATCH ||
        (int)res.body_kind != expect_body_kind) {
      fprintf(stderr, "unexpected result at %ld (outcome %d, kind %d)\n", i, res.outcome,
              res.body_kind);
      exit(1);
    }
    if (s != NULL && an_summary_add_pair(s, pv, &res) != 0) exit(1);
  }
  double el = now() - t0;
  an_result_clear(&res);
  return (double)n / el;
}

int main(int argc, char **argv) {
  long n_a = argc > 1 ? atol(argv[1]) : 3000000, n_b = argc > 2 ? atol(argv[2]) : 300000;
  struct an_rules *rules = NULL;
  char err[256];
  if (an_rules_load_string(&rules, rules_yaml, sizeof rules_yaml - 1, "bench", err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  static char a[2048], b[2048];
  size_t la = make_body(a, sizeof a, 1000, 0), lb = make_body(b, sizeof b, 1000, 0);
  struct an_pair_view pv = {.correlation_id = "bench-1", .route = "catalog", .method = "GET",
                            .path = "/api/catalog/1", .time_us = 1795255200000000};
  pv.primary = (struct an_side){1, 200, NULL, hdrs, 2, (unsigned char *)a, la, NULL, 0};
  pv.shadow = (struct an_side){1, 200, NULL, hdrs, 2, (unsigned char *)b, lb, NULL, 0};
  printf("body size: %zu bytes\n", la);

  struct an_summary *s = NULL;
  an_summary_new(&s);
  double ra = run(rules, NULL, &pv, n_a, AN_BODY_IDENTICAL);
  double ra_s = run(rules, s, &pv, n_a, AN_BODY_IDENTICAL);
  printf("(a) byte-identical:        %10.0f pairs/s compare, %10.0f pairs/s compare+summary "
         "(goal >= 1000000)\n", ra, ra_s);

  lb = make_body(b, sizeof b, 2000, 1); /* other timestamp, reversed list */
  pv.shadow.body_len = lb;
  double rb = run(rules, NULL, &pv, n_b, AN_BODY_JSON);
  double rb_s = run(rules, s, &pv, n_b, AN_BODY_JSON);
  printf("(b) needs normalization:   %10.0f pairs/s compare, %10.0f pairs/s compare+summary "
         "(goal >= 100000)\n", rb, rb_s);
  an_summary_free(s);
  an_rules_free(rules);
  return 0;
}
