/* Unit tests for common/cut_lfstack: order, intrusive links, and many pushing threads against one taker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sched.h>

#include "common/cut_lfstack.h"

/* The node is deliberately not the first member, so CUT_LFS_ENTRY must do
 * real work. */
struct item {
  unsigned producer;
  unsigned seq;
  struct cut_lfs_node link;
  unsigned taken; /* how many times the consumer saw it */
};

static struct item *item_of(struct cut_lfs_node *n) { return CUT_LFS_ENTRY(n, struct item, link); }

static void test_cut_lfstack_empty(void **state) {
  (void)state;
  struct cut_lfs s;
  cut_lfs_init(&s);
  assert_true(cut_lfs_empty(&s, memory_order_seq_cst));
  assert_null(cut_lfs_take_all(&s, memory_order_acquire));
  assert_null(cut_lfs_take_fifo(&s, memory_order_seq_cst));
  assert_null(cut_lfs_reverse(NULL));
  struct cut_lfs z = {0}; /* a zeroed stack is empty too */
  assert_true(cut_lfs_empty(&z, memory_order_relaxed));
}

static void test_cut_lfstack_lifo_and_fifo(void **state) {
  (void)state;
  struct item it[5];
  struct cut_lfs s;
  cut_lfs_init(&s);
  for (unsigned i = 0; i < 5; i++) {
    it[i] = (struct item){.seq = i};
    cut_lfs_push(&s, &it[i].link, memory_order_release);
    assert_false(cut_lfs_empty(&s, memory_order_relaxed));
  }
  /* take_all: newest first */
  struct cut_lfs_node *l = cut_lfs_take_all(&s, memory_order_acquire);
  assert_true(cut_lfs_empty(&s, memory_order_relaxed));
  unsigned want = 5;
  for (struct cut_lfs_node *n = l; n; n = n->next)
    assert_int_equal(item_of(n)->seq, --want);
  assert_int_equal(want, 0);

  /* the same nodes again, through take_fifo: oldest first */
  for (unsigned i = 0; i < 5; i++)
    cut_lfs_push(&s, &it[i].link, memory_order_seq_cst);
  l = cut_lfs_take_fifo(&s, memory_order_seq_cst);
  for (struct cut_lfs_node *n = l; n; n = n->next)
    assert_int_equal(item_of(n)->seq, want++);
  assert_int_equal(want, 5);
  assert_null(cut_lfs_take_all(&s, memory_order_acquire));

  /* reverse of a single node */
  it[0].link.next = NULL;
  assert_ptr_equal(cut_lfs_reverse(&it[0].link), &it[0].link);
  assert_null(it[0].link.next);
}

/* Malloc'ed blocks with the node at their start, as the block caches keep
 * them: cut_lfs_free_list frees them all (LeakSanitizer checks in the
 * sanitizer build). */
static void test_cut_lfstack_free_list(void **state) {
  (void)state;
  cut_lfs_free_list(NULL);
  struct cut_lfs s = {0};
  for (int i = 0; i < 10; i++) {
    struct cut_lfs_node *b = malloc(256);
    assert_non_null(b);
    cut_lfs_push(&s, b, memory_order_release);
  }
  cut_lfs_free_list(cut_lfs_take_all(&s, memory_order_acquire));
  assert_true(cut_lfs_empty(&s, memory_order_relaxed));
}

/* Several producers push their items while the consumer takes the stack over
 * and over. Every item must come out exactly once, and each producer's items
 * in the order it pushed them (take_fifo keeps a thread's own order). */
enum { PRODUCERS = 4, PER_PRODUCER = 20000 };

struct producer {
  struct cut_lfs *s;
  struct item *items; /* PER_PRODUCER of them */
  _Atomic int *go, *done;
};

static void *produce_main(void *arg) {
  struct producer *p = arg;
  while (!atomic_load(p->go)) /* start together: pushes race with each other and with takes */
    sched_yield();
  for (unsigned i = 0; i < PER_PRODUCER; i++)
    cut_lfs_push(p->s, &p->items[i].link, memory_order_release);
  atomic_fetch_add(p->done, 1);
  return NULL;
}

/* Consumes a FIFO list; returns how many items it held. */
static size_t consume(struct cut_lfs_node *l, unsigned next_seq[PRODUCERS]) {
  size_t k = 0;
  while (l) {
    struct item *it = item_of(l);
    l = l->next;
    assert_true(it->producer < PRODUCERS);
    assert_int_equal(it->taken, 0); /* never twice */
    it->taken++;
    assert_int_equal(it->seq, next_seq[it->producer]); /* per-producer order */
    next_seq[it->producer]++;
    k++;
  }
  return k;
}

static void test_cut_lfstack_threads(void **state) {
  (void)state;
  struct item *items = calloc((size_t)PRODUCERS * PER_PRODUCER, sizeof *items);
  assert_non_null(items);
  for (unsigned p = 0; p < PRODUCERS; p++)
    for (unsigned i = 0; i < PER_PRODUCER; i++)
      items[p * PER_PRODUCER + i] = (struct item){.producer = p, .seq = i};
  struct cut_lfs s;
  cut_lfs_init(&s);
  _Atomic int go = 0, done = 0;
  struct producer prod[PRODUCERS];
  pthread_t t[PRODUCERS];
  for (unsigned p = 0; p < PRODUCERS; p++) {
    prod[p] = (struct producer){&s, &items[p * PER_PRODUCER], &go, &done};
    assert_int_equal(pthread_create(&t[p], NULL, produce_main, &prod[p]), 0);
  }
  unsigned next_seq[PRODUCERS] = {0};
  size_t total = 0;
  atomic_store(&go, 1);
  while (atomic_load(&done) < PRODUCERS)
    total += consume(cut_lfs_take_fifo(&s, memory_order_acquire), next_seq);
  for (unsigned p = 0; p < PRODUCERS; p++)
    pthread_join(t[p], NULL);
  total += consume(cut_lfs_take_fifo(&s, memory_order_acquire), next_seq); /* the rest */
  assert_true(cut_lfs_empty(&s, memory_order_acquire));
  assert_int_equal(total, (size_t)PRODUCERS * PER_PRODUCER);
  for (unsigned p = 0; p < PRODUCERS; p++)
    assert_int_equal(next_seq[p], PER_PRODUCER);
  for (size_t i = 0; i < (size_t)PRODUCERS * PER_PRODUCER; i++)
    assert_int_equal(items[i].taken, 1);
  free(items);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cut_lfstack_empty),
      cmocka_unit_test(test_cut_lfstack_lifo_and_fifo),
      cmocka_unit_test(test_cut_lfstack_free_list),
      cmocka_unit_test(test_cut_lfstack_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
