/* dial_int: internals of the decision engine shared inside dials/ and with tests. */
#ifndef CUT_DIAL_INT_H
#define CUT_DIAL_INT_H

#include <stddef.h>
#include <stdint.h>

/* MurmurHash3_x86_32 (seed 0) of the concatenation a || b || c, without
 * copying when the whole fits a small stack buffer, streaming otherwise. */
uint32_t dial_hash3(const char *a, size_t alen, const char *b, size_t blen, const char *c,
                    size_t clen);

/* The bucket of a 32-bit hash: (h mod 100) * 10000 + (floor(h / 100) mod 10000). */
static inline uint32_t dial_bucket_of_hash(uint32_t h) {
  return (h % 100u) * 10000u + (h / 100u) % 10000u;
}

/* Reference streaming implementation (used for long inputs; tests compare it
 * with libmurmurhash). */
uint32_t dial_murmur3_stream(const char *const *parts, const size_t *lens, size_t nparts);

/* A uniformly drawn bucket for `random` keys (thread-local generator). */
uint32_t dial_random_bucket(void);

#endif
