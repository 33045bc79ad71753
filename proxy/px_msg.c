/* px_msg: header lists and message heads. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cut_err.h"
#include "proxy/px_mem.h"
#include "proxy/px_msg.h"

/*
 * Field blocks (a class byte, the name, the value) and 16-field arrays come
 * from the per-thread block cache of px_mem: a worker has hundreds of
 * messages in flight and each gains and loses a dozen fields.
 */
#define V_CAP 16 /* the first field array: 16 * 32 = 512 bytes, one cache class */

static void *block_get(size_t n, unsigned char *cls) { return px_mem_block_get(n, cls); }
static void block_put(void *b, unsigned char cls) { px_mem_block_put(b, cls); }

/* One block: its class byte, the lower-cased name, NUL, the value, NUL.
 * `lower`: the name is known to be lower-case already. */
static int field_fill(struct px_header *f, const char *name, size_t namelen, const char *value,
                      size_t valuelen, int lower) {
  unsigned char cls;
  char *d = block_get(namelen + valuelen + 3, &cls);
  if (!d)
    return CUT_ERR_NOMEM;
  *d++ = (char)cls;
  if (lower) {
    memcpy(d, name, namelen);
  } else {
    for (size_t i = 0; i < namelen; i++) {
      char c = name[i];
      d[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
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

/* A V_CAP array is a 512-byte block: px_mem's class 3 (or a plain malloc
 * block when the cache is off, which px_mem_block_put then frees). */
#define V_CLS 3
_Static_assert(V_CAP * sizeof(struct px_header) == 512, "V_CAP arrays are 512-byte blocks");

static void v_put(struct px_header *v, size_t cap) {
  if (cap == V_CAP)
    block_put(v, V_CLS);
  else
    free(v);
}

void px_header_release(struct px_header *f) {
  if (f->name)
    block_put(f->name - 1, (unsigned char)f->name[-1]);
  f->name = f->value = NULL;
}

static int headers_add(struct px_headers *h, const char *name, size_t namelen, const char *value,
                       size_t valuelen, int lower) {
  if (h->n == h->cap) {
    struct px_header *v;
    if (!h->cap) {
      unsigned char cls;
      v = block_get(V_CAP * sizeof *v, &cls);
      if (!v)
        return CUT_ERR_NOMEM;
      h->cap = V_CAP;
    } else if (h->cap == V_CAP) { /* leaves the cache's block */
      v = malloc(2 * V_CAP * sizeof *v);
      if (!v)
        return CUT_ERR_NOMEM;
      memcpy(v, h->v, h->n * sizeof *v);
      v_put(h->v, h->cap);
      h->cap = 2 * V_CAP;
    } else {
      v = realloc(h->v, 2 * h->cap * sizeof *v);
      if (!v)
        return CUT_ERR_NOMEM;
      h->cap *= 2;
    }
    h->v = v;
  }
  if (field_fill(&h->v[h->n], name, namelen, value, valuelen, lower) < 0)
    return CUT_ERR_NOMEM;
  h->n++;
  h->bytes += namelen + valuelen + 32;
  return 0;
}

int px_headers_add(struct px_headers *h, const char *name, size_t namelen, const char *value,
                   size_t valuelen) {
  return headers_add(h, name, namelen, value, valuelen, 0);
}

int px_headers_add_lc(struct px_headers *h, const char *name, size_t namelen, const char *value,
                      size_t valuelen) {
  return headers_add(h, name, namelen, value, valuelen, 1);
}

int px_headers_set_value(struct px_headers *h, size_t i, const char *value, size_t valuelen) {
  struct px_header *f = &h->v[i], nf;
  if (field_fill(&nf, f->name, f->namelen, value, valuelen, 1) < 0)
    return CUT_ERR_NOMEM;
  h->bytes = h->bytes - f->valuelen + valuelen;
  px_header_release(f);
  *f = nf;
  return 0;
}

/* Names in a list are lower-case and NUL-free: equal length and bytes is equality. */
static inline int name_is(const struct px_header *f, const char *name, size_t len) {
  return f->namelen == len && memcmp(f->name, name, len) == 0;
}

const struct px_header *px_headers_get(const struct px_headers *h, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < h->n; i++)
    if (name_is(&h->v[i], name, len))
      return &h->v[i];
  return NULL;
}

size_t px_headers_del(struct px_headers *h, const char *name) {
  size_t len = strlen(name), w = 0, removed = 0;
  for (size_t i = 0; i < h->n; i++) {
    if (name_is(&h->v[i], name, len)) {
      h->bytes -= h->v[i].namelen + h->v[i].valuelen + 32;
      px_header_release(&h->v[i]);
      removed++;
    } else {
      if (w != i)
        h->v[w] = h->v[i];
      w++;
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
  if (h->v)
    v_put(h->v, h->cap);
  memset(h, 0, sizeof *h);
}

/* Whether name (any case) equals lit (lower-case), both n bytes long. */
static inline int lc_eq(const char *name, const char *lit, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c >= 'A' && c <= 'Z')
      c = (unsigned char)(c + 32);
    if (c != (unsigned char)lit[i])
      return 0;
  }
  return 1;
}

int px_header_is_hop(const char *name, size_t namelen) {
  switch (namelen) { /* called for every field of every message: length first */
  case 7:
    return lc_eq(name, "upgrade", 7);
  case 10:
    return lc_eq(name, "connection", 10) || lc_eq(name, "keep-alive", 10);
  case 14:
    return lc_eq(name, "http2-settings", 14);
  case 16:
    return lc_eq(name, "proxy-connection", 16);
  case 17:
    return lc_eq(name, "transfer-encoding", 17);
  default:
    return 0;
  }
}

void px_request_head_clear(struct px_request_head *r) {
  if (!r)
    return;
  if (!(r->borrowed & PX_HEAD_METHOD))
    free(r->method);
  if (!(r->borrowed & PX_HEAD_SCHEME))
    free(r->scheme);
  if (!(r->borrowed & PX_HEAD_AUTHORITY))
    free(r->authority);
  if (!(r->borrowed & PX_HEAD_PATH))
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
  switch (m[0]) { /* every request asks: first letter, then the whole word */
  case 'G':
    return strcmp(m, "GET") == 0;
  case 'H':
    return strcmp(m, "HEAD") == 0;
  case 'O':
    return strcmp(m, "OPTIONS") == 0;
  case 'T':
    return strcmp(m, "TRACE") == 0;
  case 'P':
    return strcmp(m, "PUT") == 0;
  case 'D':
    return strcmp(m, "DELETE") == 0;
  default:
    return 0;
  }
}
