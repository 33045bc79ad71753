/* cfg_arena: a bump allocator whose memory is released all at once. */
#ifndef CUT_CFG_ARENA_H
#define CUT_CFG_ARENA_H

#include <stddef.h>

/*
 * A parsed document or config snapshot is thousands of small strings and
 * arrays that live and die together; an arena makes building it simple
 * (no per-field frees on error paths) and freeing it one loop.
 */
struct cfg_arena;

/* Returns 0 or CUT_ERR_NOMEM. */
int cfg_arena_new(struct cfg_arena **out);
/* Frees every allocation of the arena. NULL is ok. */
void cfg_arena_free(struct cfg_arena *a);

/* Zeroed memory for n bytes, aligned for any type; NULL on out-of-memory.
 * Owned by the arena. */
void *cfg_arena_alloc(struct cfg_arena *a, size_t n);
/* Zeroed array of n elements of size sz (overflow-checked). */
void *cfg_arena_calloc(struct cfg_arena *a, size_t n, size_t sz);
/* Copies of strings; NULL in, NULL out (and NULL on out-of-memory). */
char *cfg_arena_strdup(struct cfg_arena *a, const char *s);
char *cfg_arena_strndup(struct cfg_arena *a, const char *s, size_t n);

#endif
