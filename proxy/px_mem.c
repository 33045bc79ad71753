/* px_mem: per-thread free lists of small blocks (see px_mem.h). */
#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_lfstack.h"
#include "proxy/px_mem.h"

#if defined(__SANITIZE_ADDRESS__)
#define MEM_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_CACHE 0
#endif
#endif
#ifndef MEM_CACHE
#define MEM_CACHE 1
#endif

#define NCLASSES 6 /* 64 ... 2048 bytes */

/* How many blocks a class keeps per thread: about 64 KiB to 256 KiB each. */
static const unsigned class_keep[NCLASSES] = {1024, 1024, 1024, 512, 128, 64};

/* A cached block holds its link in its first bytes; the lists are the
 * thread's own, so they are plain lists, not cut_lfs stacks. */
struct mem_cache {
  struct cut_lfs_node *head[NCLASSES];
  unsigned n[NCLASSES];
};

static _Thread_local struct mem_cache *tl_cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_key_ok;

static void cache_destroy(void *arg) {
  struct mem_cache *c = arg;
  tl_cache = NULL;
  for (int k = 0; k < NCLASSES; k++)
    cut_lfs_free_list(c->head[k]);
  free(c);
}

static void cache_key_init(void) { cache_key_ok = pthread_key_create(&cache_key, cache_destroy) == 0; }

static struct mem_cache *cache_get(void) {
  if (!MEM_CACHE)
    return NULL;
  if (tl_cache)
    return tl_cache;
  pthread_once(&cache_once, cache_key_init);
  if (!cache_key_ok)
    return NULL;
  struct mem_cache *c = calloc(1, sizeof *c);
  if (c && pthread_setspecific(cache_key, c) != 0) {
    free(c);
    c = NULL;
  }
  tl_cache = c;
  return c;
}

static int size_class(size_t n) {
  if (n <= 64)
    return 0;
  if (n > PX_MEM_CLASS_MAX)
    return -1;
  /* the smallest k with 64 << k >= n */
  return (int)(sizeof(unsigned long) * 8 - (size_t)__builtin_clzl((unsigned long)(n - 1))) - 6;
}

void *px_mem_block_get(size_t n, unsigned char *cls) {
  int k = size_class(n);
  struct mem_cache *c = k >= 0 ? cache_get() : NULL;
  if (!c) {
    *cls = PX_MEM_PLAIN;
    return malloc(n);
  }
  *cls = (unsigned char)k;
  struct cut_lfs_node *b = c->head[k];
  if (b) {
    c->head[k] = b->next;
    c->n[k]--;
    return b;
  }
  return malloc((size_t)64 << k);
}

void px_mem_block_put(void *b, unsigned char cls) {
  if (!b)
    return;
  struct mem_cache *c = cls < NCLASSES ? tl_cache : NULL;
  if (!c || c->n[cls] >= class_keep[cls]) {
    free(b);
    return;
  }
  struct cut_lfs_node *n = b;
  n->next = c->head[cls];
  c->head[cls] = n;
  c->n[cls]++;
}

/* The prefix of a px_mem_malloc block: its class and the size asked for,
 * padded so that the caller's part keeps malloc's alignment. */
struct mem_hdr {
  size_t size;
  unsigned char cls;
};
#define HDR_SIZE                                                                                   \
  ((sizeof(struct mem_hdr) + alignof(max_align_t) - 1) / alignof(max_align_t) *                    \
   alignof(max_align_t))

void *px_mem_malloc(size_t n) {
  if (n > SIZE_MAX - HDR_SIZE)
    return NULL;
  unsigned char cls;
  char *b = px_mem_block_get(n + HDR_SIZE, &cls);
  if (!b)
    return NULL;
  struct mem_hdr *h = (struct mem_hdr *)b;
  h->size = n;
  h->cls = cls;
  return b + HDR_SIZE;
}

void px_mem_free(void *p) {
  if (!p)
    return;
  char *b = (char *)p - HDR_SIZE;
  px_mem_block_put(b, ((struct mem_hdr *)b)->cls);
}

void *px_mem_calloc(size_t nmemb, size_t size) {
  if (size && nmemb > SIZE_MAX / size)
    return NULL;
  void *p = px_mem_malloc(nmemb * size);
  if (p)
    memset(p, 0, nmemb * size);
  return p;
}

void *px_mem_realloc(void *p, size_t n) {
  if (!p)
    return px_mem_malloc(n);
  if (n == 0) {
    px_mem_free(p);
    return NULL;
  }
  struct mem_hdr *h = (struct mem_hdr *)((char *)p - HDR_SIZE);
  if (h->cls < NCLASSES && n + HDR_SIZE <= (size_t)64 << h->cls) {
    h->size = n; /* still fits its block */
    return p;
  }
  void *q = px_mem_malloc(n);
  if (!q)
    return NULL;
  memcpy(q, p, h->size < n ? h->size : n);
  px_mem_free(p);
  return q;
}
