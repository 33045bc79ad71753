/* Unit tests for replay/rec_mem: the block cache of recorded pairs, across threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "replay/rec_mem.h"

static void test_rec_mem_reuses_blocks(void **state) {
  (void)state;
  struct rec_mem *m = NULL;
  assert_int_equal(rec_mem_new(&m, 4), 0);
  void *a = rec_mem_get(m), *b = rec_mem_get(m);
  assert_non_null(a);
  assert_non_null(b);
  memset(a, 0xab, REC_MEM_BLOCK); /* the whole block is usable */
  assert_int_equal(rec_mem_cached(m), 0);
  rec_mem_put(m, a);
  rec_mem_put(m, b);
  assert_int_equal(rec_mem_cached(m), 2);
  /* the owner gets the returned blocks back, not new ones */
  void *c = rec_mem_get(m), *d = rec_mem_get(m);
  assert_true((c == a && d == b) || (c == b && d == a));
  assert_int_equal(rec_mem_cached(m), 0);
  rec_mem_put(m, c);
  rec_mem_put(m, d);
  rec_mem_unref(m); /* frees the cached blocks (LeakSanitizer checks) */
  rec_mem_unref(NULL);
}

static void test_rec_mem_bounded(void **state) {
  (void)state;
  struct rec_mem *m = NULL;
  assert_int_equal(rec_mem_new(&m, 2), 0);
  void *v[5];
  for (int i = 0; i < 5; i++)
    assert_non_null(v[i] = rec_mem_get(m));
  for (int i = 0; i < 5; i++)
    rec_mem_put(m, v[i]); /* past the bound they are freed */
  assert_int_equal(rec_mem_cached(m), 2);
  rec_mem_unref(m);
}

/* Blocks given back by another thread, while the owner keeps taking. */
struct returner {
  struct rec_mem *m;
  void **blocks;
  int n;
};

static void *return_main(void *arg) {
  struct returner *r = arg;
  for (int i = 0; i < r->n; i++)
    rec_mem_put(r->m, r->blocks[i]);
  rec_mem_unref(r->m); /* the last reference may be this thread's */
  return NULL;
}

static void test_rec_mem_other_thread_returns(void **state) {
  (void)state;
  enum { N = 2000 };
  static void *blocks[N];
  struct rec_mem *m = NULL;
  assert_int_equal(rec_mem_new(&m, N), 0);
  for (int i = 0; i < N; i++)
    assert_non_null(blocks[i] = rec_mem_get(m));
  struct returner r = {rec_mem_ref(m), blocks, N};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, return_main, &r), 0);
  /* the owner takes blocks while the other thread returns them */
  void *mine[64];
  for (int i = 0; i < 64; i++) {
    assert_non_null(mine[i] = rec_mem_get(m));
    memset(mine[i], i, 64);
  }
  pthread_join(t, NULL);
  for (int i = 0; i < 64; i++)
    rec_mem_put(m, mine[i]);
  assert_true(rec_mem_cached(m) <= N);
  rec_mem_unref(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rec_mem_reuses_blocks),
      cmocka_unit_test(test_rec_mem_bounded),
      cmocka_unit_test(test_rec_mem_other_thread_returns),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
