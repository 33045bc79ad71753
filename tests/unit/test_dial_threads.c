/* Concurrency: worker threads decide while a writer turns dials and reloads the config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "dials/dial.h"
#include "dials/dial_store.h"
#include "test_dial_fixture.h"

/* Every value the writer ever stores; a reader seeing anything else saw a torn write. */
static const uint32_t written[] = {50000, 0, 1, 123457, 500000, 999999, 1000000, 250000,
                                   654321, 7};
#define NWRITTEN (sizeof written / sizeof written[0])
#define WRITES 3000
#define READERS 3

/* An in-memory backend: the test is about readers, not disks. */
static int mem_load(void *c, char **json, char *err, size_t errlen) {
  (void)c, (void)err, (void)errlen;
  *json = NULL;
  return 0;
}
static int mem_save(void *c, const char *json, size_t len, char *err, size_t errlen) {
  (void)c, (void)json, (void)len, (void)err, (void)errlen;
  return 0;
}
static int mem_audit(void *c, const char *line, size_t len, char *err, size_t errlen) {
  (void)c, (void)line, (void)len, (void)err, (void)errlen;
  return 0;
}
static void mem_close(void *c) { (void)c; }
static const struct dial_store_backend_ops mem_ops = {"memory", mem_load, mem_save, mem_audit,
                                                      mem_close};

struct shared {
  struct fixture *f;
  struct dial_store *store;
  atomic_int done;
  atomic_long bad;
  atomic_long decisions;
};

static int was_written(uint32_t v) {
  for (size_t i = 0; i < NWRITTEN; i++)
    if (written[i] == v) return 1;
  return 0;
}

static void *reader(void *arg) {
  struct shared *sh = arg;
  char key[32];
  long n = 0, bad = 0;
  unsigned i = 0;
  while (!atomic_load(&sh->done) || n < 1000) {
    snprintf(key, sizeof key, "device-%u", i++ % 100000);
    struct fx_req r;
    fx_req_init(&r, "/");
    fx_req_add(&r, "x-device-id", key);
    struct dial_decision d;
    if (dial_decide(&sh->f->cfg, sh->store, &sh->f->routes[0], &r.req, 0, &d) != 0) bad++;
    uint32_t ppm = dial_effective_ppm(&sh->f->cfg, sh->store, 0);
    if (!was_written(ppm)) bad++;
    /* in-dial needs a bucket below some written value, out-of-dial one at or above */
    if (d.backend_index == B_NEW && d.bucket >= 1000000) bad++;
    if (d.backend_index == B_OLD && strcmp(d.reason, "out-of-dial")) bad++;
    n++;
  }
  atomic_fetch_add(&sh->bad, bad);
  atomic_fetch_add(&sh->decisions, n);
  return NULL;
}

static void test_dial_threads_no_torn_reads(void **state) {
  (void)state;
  struct fixture f, f2;
  fx_init(&f);
  fx_init(&f2);
  struct shared sh = {.f = &f};
  atomic_init(&sh.done, 0);
  atomic_init(&sh.bad, 0);
  atomic_init(&sh.decisions, 0);
  char err[256];
  assert_int_equal(dial_store_open(&sh.store, &f.cfg, (struct dial_store_backend){&mem_ops, NULL},
                                   err, sizeof err), 0);
  pthread_t t[READERS];
  for (int i = 0; i < READERS; i++) assert_int_equal(pthread_create(&t[i], NULL, reader, &sh), 0);
  for (int w = 0; w < WRITES; w++) {
    uint32_t v = written[(size_t)w % NWRITTEN];
    assert_int_equal(dial_store_set_percent(sh.store, "checkout-v2", NULL, v, "t", NULL, err,
                                            sizeof err), 0);
    /* reloads swap the view under the readers (alternating snapshots) */
    if (w % 100 == 0)
      assert_int_equal(dial_store_apply_config(sh.store, w % 200 ? &f.cfg : &f2.cfg, err,
                                               sizeof err), 0);
  }
  atomic_store(&sh.done, 1);
  for (int i = 0; i < READERS; i++) pthread_join(t[i], NULL);
  print_message("%ld decisions while %d writes\n", atomic_load(&sh.decisions), WRITES);
  assert_int_equal(atomic_load(&sh.bad), 0);
  assert_true(atomic_load(&sh.decisions) >= READERS * 1000);
  dial_store_free(sh.store);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dial_threads_no_torn_reads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
