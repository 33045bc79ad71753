/* px_msg: header lists and message heads. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cut_err.h"
#include "proxy/px_msg.h"

/* One block: the lower-cased name, NUL, the value, NUL. */
static int field_fill(struct px_header *f, const char *name, size_t namelen, const char *value,
                      size_t valuelen) {
  char *d = malloc(namelen + valuelen + 2);
  if (!d)
    return CUT_ERR_NOMEM;
  for (size_t i = 0; i < namelen; i++) {
    char c = name[i];
    d[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
  }
  d[namelen] = '\0';
  char *v = d + namelen + 1;
  if (valuelen)
    memcpy(v, value, valuelen);
  v[valuelen] = '\0';
  f->name = d;
  f->namelen = namelen;
  f->value = v;
  f->valuelen = valuelen;
  return 0;
}

void px_header_release(struct px_header *f) {
  free(f->name);
  f->name = f->value = NULL;
}

int px_headers_add(struct px_headers *h, const char *name, size_t namelen, const char *value,
                   size_t valuelen) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 16;
    struct px_header *v = realloc(h->v, cap * sizeof *v);
    if (!v)
      return CUT_ERR_NOMEM;
    h->v = v;
    h->cap = cap;
  }
  if (field_fill(&h->v[h->n], name, namelen, value, valuelen) < 0)
    return CUT_ERR_NOMEM;
  h->n++;
  h->bytes += namelen + valuelen + 32;
  return 0;
}

int px_headers_set_value(struct px_headers *h, size_t i, const char *value, size_t valuelen) {
  struct px_header *f = &h->v[i], nf;
  if (field_fill(&nf, f->name, f->namelen, value, valuelen) < 0)
    return CUT_ERR_NOMEM;
  h->bytes = h->bytes - f->valuelen + valuelen;
  px_header_release(f);
  *f = nf;
  return 0;
}

const struct px_header *px_headers_get(const struct px_headers *h, const char *name) {
  for (size_t i = 0; i < h->n; i++)
    if (strcmp(h->v[i].name, name) == 0)
      return &h->v[i];
  return NULL;
}

size_t px_headers_del(struct px_headers *h, const char *name) {
  size_t w = 0, removed = 0;
  for (size_t i = 0; i < h->n; i++) {
    if (strcmp(h->v[i].name, name) == 0) {
      h->bytes -= h->v[i].namelen + h->v[i].valuelen + 32;
      px_header_release(&h->v[i]);
      removed++;
    } else {
      h->v[w++] = h->v[i];
    }
  }
  h->n = w;
  return removed;
}

void px_headers_clear(struct px_headers *h) {
  if (!h)
    return;
  for (size_t i = 0; i < h->n; i++)
    px_header_release(&h->v[i]);
  free(h->v);
  memset(h, 0, sizeof *h);
}

int px_header_is_hop(const char *name, size_t namelen) {
  switch (namelen) { /* called for every field of every message: length first */
  case 7:
    return strncasecmp(name, "upgrade", 7) == 0;
  case 10:
    return strncasecmp(name, "connection", 10) == 0 || strncasecmp(name, "keep-alive", 10) == 0;
  case 14:
    return strncasecmp(name, "http2-settings", 14) == 0;
  case 16:
    return strncasecmp(name, "proxy-connection", 16) == 0;
  case 17:
    return strncasecmp(name, "transfer-encoding", 17) == 0;
  default:
    return 0;
  }
}

void px_request_head_clear(struct px_request_head *r) {
  if (!r)
    return;
  free(r->method);
  free(r->scheme);
  free(r->authority);
  free(r->path);
  px_headers_clear(&r->headers);
  memset(r, 0, sizeof *r);
}

void px_response_head_clear(struct px_response_head *r) {
  if (!r)
    return;
  px_headers_clear(&r->headers);
  memset(r, 0, sizeof *r);
}

static int copy_str(char **dst, const char *src) {
  *dst = NULL;
  if (!src)
    return 0;
  *dst = strdup(src);
  return *dst ? 0 : CUT_ERR_NOMEM;
}

int px_request_head_copy(struct px_request_head *dst, const struct px_request_head *src) {
  memset(dst, 0, sizeof *dst);
  if (copy_str(&dst->method, src->method) || copy_str(&dst->scheme, src->scheme) ||
      copy_str(&dst->authority, src->authority) || copy_str(&dst->path, src->path))
    goto err;
  for (size_t i = 0; i < src->headers.n; i++) {
    const struct px_header *f = &src->headers.v[i];
    if (px_headers_add(&dst->headers, f->name, f->namelen, f->value, f->valuelen))
      goto err;
  }
  dst->content_length = src->content_length;
  return 0;
err:
  px_request_head_clear(dst);
  return CUT_ERR_NOMEM;
}

int px_method_idempotent(const char *m) {
  static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
  for (size_t i = 0; i < sizeof idem / sizeof idem[0]; i++)
    if (strcmp(m, idem[i]) == 0)
      return 1;
  return 0;
}
