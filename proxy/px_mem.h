/* px_mem: per-thread caches of small memory blocks for the request path. */
#ifndef CUT_PX_MEM_H
#define CUT_PX_MEM_H

#include <stddef.h>

/*
 * A worker has hundreds of requests in flight, and each one takes and gives
 * back a few dozen small blocks (header fields, HTTP/2 stream state, frames
 * waiting to be sent). That many same-sized blocks overflow malloc's small
 * per-thread caches and send it down its slow paths. Blocks of up to
 * PX_MEM_CLASS_MAX bytes are therefore kept per thread in free lists by size
 * class (64, 128, ... bytes), and handed back to malloc when the thread ends
 * or a list is full. Every cached block is a plain malloc block, so a block
 * freed on another thread simply joins that thread's cache.
 *
 * Sanitizer builds bypass the caches (every call goes to malloc and free) so
 * that use after free and leaks stay visible.
 *
 * replay/rec_mem.h is the other block cache, and it stays separate on
 * purpose: a recorded pair is built on a worker but freed on the recording
 * thread, so rec_mem is an object owned by one worker to which any thread
 * returns blocks (one atomic push each), where a block given back here simply
 * stays with the thread that frees it. Taking rec_mem's design here would put
 * an atomic operation (or an owner lookup) on every put of the request path,
 * whose blocks are nearly always freed on the thread that took them; taking
 * this one there would leave the pairs' blocks piling up on the recording
 * thread. What the two share is the shape of a free block (a cut_lfs_node at
 * its start, common/cut_lfstack.h) and the function that frees such a list.
 */

#define PX_MEM_CLASS_MAX 2048u
#define PX_MEM_PLAIN 0xffu /* the class of a block that came from malloc directly */

/* A block of at least n bytes (n > 0); *cls receives its class, to give back
 * to px_mem_block_put. Returns NULL when out of memory. The caller frees
 * with px_mem_block_put(b, *cls). */
void *px_mem_block_get(size_t n, unsigned char *cls);
/* Gives back a block from px_mem_block_get. NULL is ok. */
void px_mem_block_put(void *b, unsigned char cls);

/* malloc, calloc, realloc and free over the same caches, for code that frees
 * without a size (a library's allocator hooks). Blocks are aligned like
 * malloc's; they must be freed with px_mem_free (NULL is ok), never free(). */
void *px_mem_malloc(size_t n);
void *px_mem_calloc(size_t nmemb, size_t size);
void *px_mem_realloc(void *p, size_t n);
void px_mem_free(void *p);

#endif
