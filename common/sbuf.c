/* sbuf: a growable string builder shared by every module that renders text. */
#include "common/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(struct sbuf *b) {
  b->p = NULL;
  b->len = 0;
  b->cap = 0;
  b->oom = 0;
}

void sb_clear(struct sbuf *b) {
  if (b == NULL)
    return;
  free(b->p);
  sb_init(b);
}

/* Makes room for `n` more bytes plus the NUL; 0 on success, -1 (and oom set) on failure. */
static int reserve(struct sbuf *b, size_t n) {
  if (b->oom)
    return -1;
  if (n > (size_t)-1 - b->len - 1) {
    b->oom = 1;
    return -1;
  }
  size_t need = b->len + n + 1;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > (size_t)-1 / 2 ? need : cap * 2;
  char *p = realloc(b->p, cap);
  if (p == NULL) {
    b->oom = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

void sb_put(struct sbuf *b, const char *s, size_t n) {
  if (reserve(b, n) != 0)
    return;
  if (n > 0)
    memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void sb_puts(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

void sb_fmt(struct sbuf *b, const char *fmt, ...) {
  if (b->oom)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if (reserve(b, (size_t)n) != 0)
    return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void sb_json(struct sbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  sb_put(b, "\"", 1);
  size_t run = 0; /* bytes that need no escaping, copied in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') {
      run++;
      continue;
    }
    sb_put(b, s + i - run, run);
    run = 0;
    if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      sb_put(b, esc, sizeof esc);
    } else {
      char esc[2] = {'\\', (char)c};
      sb_put(b, esc, sizeof esc);
    }
  }
  sb_put(b, s + n - run, run);
  sb_put(b, "\"", 1);
}

void sb_truncate(struct sbuf *b, size_t len) {
  if (b->oom || b->p == NULL || len >= b->len)
    return;
  b->len = len;
  b->p[len] = '\0';
}

void sb_reset(struct sbuf *b) {
  b->len = 0;
  b->oom = 0;
  if (b->p)
    b->p[0] = '\0';
}

char *sb_take(struct sbuf *b, size_t *len) {
  if (!b->oom && b->p == NULL)
    sb_put(b, "", 0);
  if (b->oom) {
    sb_clear(b);
    return NULL;
  }
  char *p = b->p;
  if (len)
    *len = b->len;
  sb_init(b);
  return p;
}
