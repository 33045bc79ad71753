/* bench_dial: nanoseconds per decision with 36-character device ids. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dials/dial.h"
#include "dials/dial_store.h"
#include "test_dial_fixture.h"

#define NKEYS 4096

static char keys[NKEYS][37];
static volatile uint64_t sink;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void make_keys(void) {
  uint64_t s = 42;
  for (int i = 0; i < NKEYS; i++) {
    for (int j = 0; j < 36; j++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      keys[i][j] = "0123456789abcdef"[(s >> 33) & 15];
    }
    keys[i][8] = keys[i][13] = keys[i][18] = keys[i][23] = '-';
    keys[i][36] = '\0';
  }
}

/* A request as a proxy sees it: a handful of headers, the device id among them. */
struct breq {
  struct dial_request req;
  struct dial_header h[7];
};

static void breq_init(struct breq *b) {
  memset(b, 0, sizeof *b);
  static const char *n[7] = {":authority", "user-agent", "accept", "x-region", "x-platform",
                             "x-device-id", "x-app-version"};
  static const char *v[7] = {"shop.example", "app/8.4 (ios)", "*/*", "eu", "ios", "", "8.4.1"};
  for (int i = 0; i < 7; i++) {
    b->h[i].name = (struct dial_slice){n[i], strlen(n[i])};
    b->h[i].value = (struct dial_slice){v[i], strlen(v[i])};
  }
  b->req.method = (struct dial_slice){"GET", 3};
  b->req.path = (struct dial_slice){"/checkout", 9};
  b->req.headers = b->h;
  b->req.nheaders = 7;
}

static double run_decide(struct fixture *f, const struct dial_store *s, size_t route, long n) {
  struct breq b;
  breq_init(&b);
  struct dial_decision d;
  uint64_t acc = 0;
  double t0 = now_ns();
  for (long i = 0; i < n; i++) {
    b.h[5].value = (struct dial_slice){keys[i & (NKEYS - 1)], 36};
    dial_decide(&f->cfg, s, &f->routes[route], &b.req, 1000, &d);
    acc += d.backend_index + d.bucket;
  }
  double t1 = now_ns();
  sink = acc;
  return (t1 - t0) / (double)n;
}

static double run_bucket(long n) {
  uint64_t acc = 0;
  double t0 = now_ns();
  for (long i = 0; i < n; i++) acc += dial_bucket("checkout-v2", 11, keys[i & (NKEYS - 1)], 36);
  double t1 = now_ns();
  sink = acc;
  return (t1 - t0) / (double)n;
}

/* In-memory backend: the benchmark measures decisions, not disks. */
static int m_load(void *c, char **j, char *e, size_t l) { (void)c, (void)e, (void)l; *j = NULL; return 0; }
static int m_save(void *c, const char *j, size_t n, char *e, size_t l) { (void)c, (void)j, (void)n, (void)e, (void)l; return 0; }
static int m_audit(void *c, const char *j, size_t n, char *e, size_t l) { (void)c, (void)j, (void)n, (void)e, (void)l; return 0; }
static void m_close(void *c) { (void)c; }
static const struct dial_store_backend_ops m_ops = {"memory", m_load, m_save, m_audit, m_close};

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 2000000;
  if (n <= 0) n = 2000000;
  make_keys();
  struct fixture f;
  fx_init(&f);
  f.dials[0].ppm = 500000;
  f.exps[0].pool_ppm = 20000;
  struct dial_store *s = NULL;
  char err[256];
  if (dial_store_open(&s, &f.cfg, (struct dial_store_backend){&m_ops, NULL}, err, sizeof err)) {
    fprintf(stderr, "bench_dial: %s\n", err);
    return 1;
  }
  run_decide(&f, s, 0, n / 10); /* warm up */
  printf("%-44s %10s\n", "case (36-character device id)", "ns/op");
  printf("%-44s %10.1f\n", "dial_bucket", run_bucket(n));
  printf("%-44s %10.1f\n", "dial_decide: dial, config values", run_decide(&f, NULL, 0, n));
  printf("%-44s %10.1f\n", "dial_decide: dial, live store", run_decide(&f, s, 0, n));
  printf("%-44s %10.1f\n", "dial_decide: experiment then dial, store", run_decide(&f, s, 1, n));
  printf("%-44s %10.1f\n", "dial_decide: A/B allocation (restrictions)", run_decide(&f, s, 2, n));
  printf("%-44s %10.1f\n", "dial_decide: no dial (default)", run_decide(&f, s, 3, n));
  dial_store_free(s);
  return 0;
}
