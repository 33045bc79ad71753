/* cut_lfstack: an intrusive lock-free stack: many threads push, one thread takes the whole list. */
#ifndef CUT_LFSTACK_H
#define CUT_LFSTACK_H

#include <stdatomic.h>
#include <stddef.h>

/*
 * A Treiber stack restricted to the one pattern that needs no ABA defence:
 * any number of threads push single nodes with a compare-and-swap, and a
 * single consumer takes the whole stack with one atomic exchange. No node is
 * ever popped on its own, so no thread ever reads the `next` of a node that
 * another thread may have taken and pushed again meanwhile. Pushing never
 * blocks and never allocates; there is no count and no bound (callers that
 * need one keep their own counter beside the stack).
 *
 * The stack is intrusive: the caller's struct embeds a `struct cut_lfs_node`
 * and gets back to itself with CUT_LFS_ENTRY (or casts, when the node is the
 * first member). The stack owns no memory: whoever pushed a node hands it to
 * the consumer, which owns every node it takes.
 *
 * Memory orders. Every call names the order of its atomic operation, because
 * the two kinds of user need different ones:
 *   - handing memory over (a block cache): push with memory_order_release and
 *     take with memory_order_acquire. Whatever the pusher wrote to the node
 *     (its `next` link included) is visible to the thread that takes it.
 *   - handing work to a thread that may sleep (a queue with a "sleeping"
 *     flag): push, take and cut_lfs_empty with memory_order_seq_cst, so that
 *     "push, then load the flag" on one side and "store the flag, then check
 *     cut_lfs_empty" on the other cannot both miss each other.
 * A failed compare-and-swap in push only reloads the top to retry, so its
 * failure order is always memory_order_relaxed.
 *
 * push, take_all and empty are inline: they sit on per-request and per-block
 * paths where a call would cost as much as the operation itself.
 */
struct cut_lfs_node {
  struct cut_lfs_node *next; /* the next older node; NULL at the bottom */
};

struct cut_lfs {
  _Atomic(struct cut_lfs_node *) top; /* the newest node, or NULL */
};

/* The struct of type `type` whose member `member` is the node `node`. */
#define CUT_LFS_ENTRY(node, type, member)                                                          \
  ((type *)(void *)((char *)(node) - offsetof(type, member)))

/* Makes `s` empty. A zeroed struct cut_lfs is empty too. */
static inline void cut_lfs_init(struct cut_lfs *s) { atomic_init(&s->top, NULL); }

/* Pushes `n` (any thread). The stack takes ownership of `n` until a consumer
 * takes it; `n->next` is overwritten. `order` is the order of the successful
 * compare-and-swap (memory_order_release or memory_order_seq_cst). */
static inline void cut_lfs_push(struct cut_lfs *s, struct cut_lfs_node *n, memory_order order) {
  struct cut_lfs_node *top = atomic_load_explicit(&s->top, memory_order_relaxed);
  do
    n->next = top;
  while (!atomic_compare_exchange_weak_explicit(&s->top, &top, n, order, memory_order_relaxed));
}

/* Takes every node at once (one consumer thread at a time) and leaves the
 * stack empty. Returns the list newest first, linked by `next` and ending in
 * NULL, or NULL when the stack was empty; the caller owns every node of it.
 * `order` is the order of the exchange (memory_order_acquire or
 * memory_order_seq_cst). */
static inline struct cut_lfs_node *cut_lfs_take_all(struct cut_lfs *s, memory_order order) {
  return atomic_exchange_explicit(&s->top, NULL, order);
}

/* Whether the stack is empty now (any thread; at once out of date while
 * others push). `order` is the order of the load. */
static inline int cut_lfs_empty(const struct cut_lfs *s, memory_order order) {
  return atomic_load_explicit(&s->top, order) == NULL;
}

/* Reverses a list taken with cut_lfs_take_all in place and returns its new
 * head: oldest first, the order in which the nodes were pushed (as far as
 * pushes from different threads have an order). NULL gives NULL. */
struct cut_lfs_node *cut_lfs_reverse(struct cut_lfs_node *list);

/* cut_lfs_take_all, then cut_lfs_reverse: every node, oldest first. */
struct cut_lfs_node *cut_lfs_take_fifo(struct cut_lfs *s, memory_order order);

/* Frees with free() every node of a list linked by `next` (taken from a stack,
 * or a thread's private free list of the same links) whose nodes each sit at
 * the start of a malloc'ed block: the block caches keep free blocks this way.
 * Takes ownership of the list. NULL is ok. */
void cut_lfs_free_list(struct cut_lfs_node *list);

#endif
