/* rec_mem: the block cache of recorded pairs: a private list for the owner, a lock-free return list for everyone. */
#include <stdatomic.h>
#include <stdlib.h>

#include "common/cut_err.h"
#include "common/cut_lfstack.h"
#include "replay/rec_mem.h"

#define DEFAULT_MAX_BLOCKS 1024

/* A cached block holds its stack link in its first bytes. */
struct rec_mem {
  _Atomic size_t refs;
  _Atomic size_t cached;                /* blocks on both lists */
  size_t max_blocks;
  struct cut_lfs_node *local;           /* the owner's; no other thread touches it */
  struct cut_lfs returned;              /* pushed by anyone, taken whole by the owner */
};

int rec_mem_new(struct rec_mem **out, size_t max_blocks) {
  struct rec_mem *m = calloc(1, sizeof *m);
  if (!m)
    return CUT_ERR_NOMEM;
  atomic_init(&m->refs, 1);
  m->max_blocks = max_blocks ? max_blocks : DEFAULT_MAX_BLOCKS;
  *out = m;
  return 0;
}

struct rec_mem *rec_mem_ref(struct rec_mem *m) {
  atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
  return m;
}

void rec_mem_unref(struct rec_mem *m) {
  if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
    return;
  cut_lfs_free_list(m->local);
  cut_lfs_free_list(cut_lfs_take_all(&m->returned, memory_order_acquire));
  free(m);
}

void *rec_mem_get(struct rec_mem *m) {
  if (!m->local) /* take everything the other threads gave back, in one go */
    m->local = cut_lfs_take_all(&m->returned, memory_order_acquire);
  struct cut_lfs_node *b = m->local;
  if (!b)
    return malloc(REC_MEM_BLOCK);
  m->local = b->next;
  atomic_fetch_sub_explicit(&m->cached, 1, memory_order_relaxed);
  return b;
}

void rec_mem_put(struct rec_mem *m, void *block) {
  if (!block)
    return;
  if (atomic_fetch_add_explicit(&m->cached, 1, memory_order_relaxed) >= m->max_blocks) {
    atomic_fetch_sub_explicit(&m->cached, 1, memory_order_relaxed);
    free(block);
    return;
  }
  /* release: the owner that takes the block sees it as this thread left it */
  cut_lfs_push(&m->returned, block, memory_order_release);
}

size_t rec_mem_cached(const struct rec_mem *m) {
  return atomic_load_explicit(&m->cached, memory_order_relaxed);
}
