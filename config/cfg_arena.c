/* cfg_arena: a bump allocator whose memory is released all at once. */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"
#include "config/cfg_arena.h"

#define CHUNK_MIN 8192

struct chunk {
  struct chunk *next;
  size_t used, cap;
  alignas(max_align_t) unsigned char data[];
};

struct cfg_arena {
  struct chunk *head;
};

int cfg_arena_new(struct cfg_arena **out) {
  struct cfg_arena *a = calloc(1, sizeof *a);
  if (!a)
    return CUT_ERR_NOMEM;
  *out = a;
  return 0;
}

void cfg_arena_free(struct cfg_arena *a) {
  if (!a)
    return;
  struct chunk *c = a->head;
  while (c) {
    struct chunk *next = c->next;
    free(c);
    c = next;
  }
  free(a);
}

void *cfg_arena_alloc(struct cfg_arena *a, size_t n) {
  const size_t align = alignof(max_align_t);
  if (n > SIZE_MAX / 2)
    return NULL;
  n = (n + align - 1) & ~(align - 1);
  if (n == 0)
    n = align;
  struct chunk *c = a->head;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
    c = malloc(sizeof *c + cap);
    if (!c)
      return NULL;
    c->used = 0;
    c->cap = cap;
    /* A big block gets its own chunk behind the head, so the head's free
     * space stays usable for the small allocations that follow. */
    if (a->head && n > CHUNK_MIN) {
      c->next = a->head->next;
      a->head->next = c;
    } else {
      c->next = a->head;
      a->head = c;
    }
  }
  void *p = c->data + c->used;
  c->used += n;
  memset(p, 0, n);
  return p;
}

void *cfg_arena_calloc(struct cfg_arena *a, size_t n, size_t sz) {
  if (sz && n > SIZE_MAX / 2 / sz)
    return NULL;
  return cfg_arena_alloc(a, n * sz);
}

char *cfg_arena_strndup(struct cfg_arena *a, const char *s, size_t n) {
  if (!s)
    return NULL;
  char *p = cfg_arena_alloc(a, n + 1);
  if (!p)
    return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *cfg_arena_strdup(struct cfg_arena *a, const char *s) {
  return s ? cfg_arena_strndup(a, s, strlen(s)) : NULL;
}
