/* sbuf: a growable, always NUL-terminated string builder that remembers an allocation failure. */
#ifndef CUT_SBUF_H
#define CUT_SBUF_H

#include <stddef.h>

/*
 * A small value struct meant to be embedded or put on the stack:
 *
 *   struct sbuf b;
 *   sb_init(&b);
 *   sb_puts(&b, "a");
 *   sb_fmt(&b, "%d", 42);
 *   if (b.oom) { sb_clear(&b); return CUT_ERR_NOMEM; }
 *   char *s = sb_take(&b, &len);   // caller frees s with free()
 *
 * Appends never fail loudly: the first allocation failure sets `oom`, later
 * appends do nothing, and the caller checks `oom` once at the end. While
 * `oom` is 0 and at least one append happened, `p[len] == '\0'`.
 * A zeroed struct (`struct sbuf b = {0};`) is the same as one after sb_init.
 */
struct sbuf {
  char *p;    /* the bytes; owned by the sbuf; NULL before the first append */
  size_t len; /* bytes used, not counting the terminating NUL */
  size_t cap; /* bytes allocated */
  int oom;    /* 1 once an allocation has failed */
};

/* Makes `b` empty without allocating. */
void sb_init(struct sbuf *b);

/* Frees the bytes of `b` (accepts NULL and an empty or failed sbuf) and
 * leaves it empty, ready for reuse. */
void sb_clear(struct sbuf *b);

/* Appends n bytes of s (borrowed; may contain NUL bytes). n == 0 still
 * allocates so that `p` is a valid empty string afterwards. */
void sb_put(struct sbuf *b, const char *s, size_t n);

/* Appends the NUL-terminated string s (borrowed). */
void sb_puts(struct sbuf *b, const char *s);

/* Appends printf-style formatted text, of any length. */
void sb_fmt(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s[n] (borrowed) as a JSON string literal, quotes included:
 * '"' and '\\' are escaped with a backslash and bytes below 0x20 as \u00XX;
 * other bytes are copied unchanged. */
void sb_json(struct sbuf *b, const char *s, size_t n);

/* Shortens the text to its first `len` bytes (no effect when len >= b->len
 * or after an allocation failure); keeps the allocation. */
void sb_truncate(struct sbuf *b, size_t len);

/* Empties b for reuse, keeping its allocation, and forgets an earlier
 * allocation failure. */
void sb_reset(struct sbuf *b);

/* Hands the bytes over: returns the NUL-terminated string (an empty string
 * when nothing was appended) and stores its length in *len when len is not
 * NULL; the caller frees it with free(). Returns NULL when an append ran out
 * of memory (or the final allocation fails); the bytes are then freed.
 * Either way `b` is left empty. */
char *sb_take(struct sbuf *b, size_t *len);

#endif
