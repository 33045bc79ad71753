/* rec_mem: a cache of fixed-size memory blocks for recorded pairs, refilled from any thread. */
#ifndef CUT_REC_MEM_H
#define CUT_REC_MEM_H

#include <stddef.h>

/*
 * A pair's memory is a chain of blocks (rec_pair.h) that is given back all at
 * once, often on another thread than the one that built the pair (the
 * recording thread). Going through malloc for that costs the building thread
 * most: blocks freed on another thread never come back to its own caches.
 * A rec_mem keeps the blocks instead: one thread (the owner, a worker) takes
 * blocks, any thread puts them back; the owner picks up what others returned
 * with one atomic exchange. No lock anywhere.
 *
 * Every block is REC_MEM_BLOCK bytes. The cache keeps at most `max_blocks`
 * blocks; past that, put frees them. A rec_mem is reference-counted: the
 * owner and every pair built with it hold a reference, so it outlives the
 * pairs still queued elsewhere after the owner stopped.
 *
 * The returned blocks travel on a cut_lfs stack (common/cut_lfstack.h). The
 * proxy's request blocks use another cache, proxy/px_mem.h, which says why
 * the two are kept apart.
 */
#define REC_MEM_BLOCK 4096

struct rec_mem;

/* Returns 0 and a cache with one reference, or CUT_ERR_NOMEM.
 * max_blocks 0 = 1024. Release with rec_mem_unref(). */
int rec_mem_new(struct rec_mem **out, size_t max_blocks);

/* Takes another reference (any thread); returns m. */
struct rec_mem *rec_mem_ref(struct rec_mem *m);

/* Drops a reference (any thread); the last one frees the cache and its
 * blocks. NULL is ok. */
void rec_mem_unref(struct rec_mem *m);

/* One block of REC_MEM_BLOCK bytes (from the cache, or malloc'ed), or NULL.
 * Only the owner's thread calls this. Give it back with rec_mem_put(). */
void *rec_mem_get(struct rec_mem *m);

/* Gives back a block from rec_mem_get (any thread). Takes ownership. */
void rec_mem_put(struct rec_mem *m, void *block);

/* Blocks in the cache now (approximate while other threads put). */
size_t rec_mem_cached(const struct rec_mem *m);

#endif
