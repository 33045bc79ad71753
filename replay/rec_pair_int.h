/* rec_pair_int: allocation inside a pair's arena, for code that fills a pair field by field (the decoder). */
#ifndef CUT_REC_PAIR_INT_H
#define CUT_REC_PAIR_INT_H

#include <stddef.h>

#include "replay/rec_pair.h"

/* A pair with no strings set (every field zero/NULL, kind PAIR, no opts):
 * the decoder fills it. Returns 0 or CUT_ERR_NOMEM; free with rec_pair_free. */
int rec_pair_new_blank(struct rec_pair **out);

/* n zeroed bytes in the pair's arena (8-byte aligned), or NULL. */
void *rec_pair_alloc(struct rec_pair *p, size_t n);

/* A NUL-terminated copy of s[0..n) in the pair's arena, or NULL. */
char *rec_pair_strndup(struct rec_pair *p, const char *s, size_t n);

/* A zeroed response whose lists and body use the pair's arena (not linked
 * into the pair), or NULL. */
struct rec_response *rec_pair_response_alloc(struct rec_pair *p);

#endif
