/* Unit tests for px_mem: the per-thread block cache and its malloc-like calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/px_mem.h"

/* Blocks of every size up to the largest class and beyond are usable in full
 * and come back (the same block, when the cache is on) after a put. */
static void test_px_mem_blocks(void **state) {
  (void)state;
  static const size_t sizes[] = {1, 63, 64, 65, 128, 129, 500, 512, 1000, 2048, 2049, 70000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    unsigned char cls;
    uint8_t *b = px_mem_block_get(sizes[i], &cls);
    assert_non_null(b);
    memset(b, 0xa5, sizes[i]);
    if (sizes[i] > PX_MEM_CLASS_MAX)
      assert_int_equal(cls, PX_MEM_PLAIN);
    px_mem_block_put(b, cls);
    unsigned char cls2;
    uint8_t *c = px_mem_block_get(sizes[i], &cls2);
    assert_non_null(c);
    assert_int_equal(cls, cls2);
    memset(c, 0x5a, sizes[i]);
    px_mem_block_put(c, cls2);
  }
  px_mem_block_put(NULL, 0);
}

/* Many blocks at once: more than a class keeps, so some go back to malloc. */
static void test_px_mem_many(void **state) {
  (void)state;
  enum { N = 3000 };
  void **v = calloc(N, sizeof *v);
  unsigned char *cls = calloc(N, 1);
  assert_non_null(v);
  assert_non_null(cls);
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < N; i++) {
      v[i] = px_mem_block_get(100 + i % 300, &cls[i]);
      assert_non_null(v[i]);
      memset(v[i], (int)i, 100 + i % 300);
    }
    for (size_t i = 0; i < N; i++)
      px_mem_block_put(v[i], cls[i]);
  }
  free(v);
  free(cls);
}

static void test_px_mem_malloc_like(void **state) {
  (void)state;
  assert_null(px_mem_calloc(SIZE_MAX / 2, 4)); /* overflow */
  px_mem_free(NULL);
  uint8_t *p = px_mem_malloc(10);
  assert_non_null(p);
  assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
  memcpy(p, "0123456789", 10);
  /* grows within its block, then beyond it, then beyond every class */
  p = px_mem_realloc(p, 20);
  assert_non_null(p);
  assert_memory_equal(p, "0123456789", 10);
  p = px_mem_realloc(p, 1500);
  assert_non_null(p);
  assert_memory_equal(p, "0123456789", 10);
  memset(p + 10, 'x', 1490);
  p = px_mem_realloc(p, 100000);
  assert_non_null(p);
  assert_memory_equal(p, "0123456789", 10);
  assert_int_equal(p[1499], 'x');
  /* shrinks, keeping the first bytes */
  p = px_mem_realloc(p, 4);
  assert_non_null(p);
  assert_memory_equal(p, "0123", 4);
  assert_null(px_mem_realloc(p, 0)); /* frees */
  uint8_t *z = px_mem_calloc(30, 10);
  assert_non_null(z);
  for (size_t i = 0; i < 300; i++)
    assert_int_equal(z[i], 0);
  px_mem_free(z);
  void *q = px_mem_realloc(NULL, 33);
  assert_non_null(q);
  px_mem_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_px_mem_blocks),
      cmocka_unit_test(test_px_mem_many),
      cmocka_unit_test(test_px_mem_malloc_like),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
