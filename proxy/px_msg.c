/* px_msg: header lists and message heads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cut_err.h"
#include "proxy/px_msg.h"

/*
 * Block cache. A worker has hundreds of messages in flight and each gains and
 * loses a dozen fields; that many same-sized blocks overflow malloc's small
 * per-thread caches and send it down its slow paths. Field blocks (64 to 512
 * bytes) and 16-field arrays are therefore kept per thread in free lists,
 * handed back to malloc when the thread ends. Every cached block is a plain
 * malloc block of its class's size. Sanitizer builds bypass the cache so
 * use-after-free and leaks stay visible.
 */
#if defined(__SANITIZE_ADDRESS__)
#define MSG_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MSG_CACHE 0
#endif
#endif
#ifndef MSG_CACHE
#define MSG_CACHE 1
#endif

#define MSG_CLASSES 4         /* 64, 128, 256, 512 bytes */
#define MSG_CLASS_MAX 1024u   /* cached blocks per class and thread */
#define MSG_PLAIN 0xff        /* class byte of a block malloc'd outside the classes */
#define V_CAP 16              /* the first field array: 16 * 32 = 512 bytes, class 3 */

struct msg_cache {
  void *head[MSG_CLASSES];
  unsigned n[MSG_CLASSES];
};

static _Thread_local struct msg_cache *tl_cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_key_ok;

static void cache_destroy(void *arg) {
  struct msg_cache *c = arg;
  for (int k = 0; k < MSG_CLASSES; k++) {
    while (c->head[k]) {
      void *b = c->head[k];
      c->head[k] = *(void **)b;
      free(b);
    }
  }
  free(c);
  tl_cache = NULL;
}

static void cache_key_init(void) { cache_key_ok = pthread_key_create(&cache_key, cache_destroy) == 0; }

static struct msg_cache *cache_get(void) {
  if (!MSG_CACHE)
    return NULL;
  if (tl_cache)
    return tl_cache;
  pthread_once(&cache_once, cache_key_init);
  if (!cache_key_ok)
    return NULL;
  struct msg_cache *c = calloc(1, sizeof *c);
  if (c && pthread_setspecific(cache_key, c) != 0) {
    free(c);
    c = NULL;
  }
  tl_cache = c;
  return c;
}

static int size_class(size_t n) {
  return n <= 64 ? 0 : n <= 128 ? 1 : n <= 256 ? 2 : n <= 512 ? 3 : -1;
}

/* A block of at least n bytes; *cls gets its class (or MSG_PLAIN). */
static void *block_get(size_t n, unsigned char *cls) {
  int k = size_class(n);
  struct msg_cache *c = k >= 0 ? cache_get() : NULL;
  if (!c) {
    *cls = MSG_PLAIN;
    return malloc(n);
  }
  *cls = (unsigned char)k;
  void *b = c->head[k];
  if (b) {
    c->head[k] = *(void **)b;
    c->n[k]--;
    return b;
  }
  return malloc((size_t)64 << k);
}

static void block_put(void *b, unsigned char cls) {
  struct msg_cache *c = cls < MSG_CLASSES ? tl_cache : NULL;
  if (!c || c->n[cls] >= MSG_CLASS_MAX) {
    free(b);
    return;
  }
  *(void **)b = c->head[cls];
  c->head[cls] = b;
  c->n[cls]++;
}

/* One block: its class byte, the lower-cased name, NUL, the value, NUL. */
static int field_fill(struct px_header *f, const char *name, size_t namelen, const char *value,
                      size_t valuelen) {
  unsigned char cls;
  char *d = block_get(namelen + valuelen + 3, &cls);
  if (!d)
    return CUT_ERR_NOMEM;
  *d++ = (char)cls;
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

/* Field arrays of V_CAP come from the cache's 512-byte class; others from malloc. */
static void v_put(struct px_header *v, size_t cap) {
  if (cap == V_CAP && size_class(V_CAP * sizeof *v) == 3)
    block_put(v, 3);
  else
    free(v);
}

void px_header_release(struct px_header *f) {
  if (f->name)
    block_put(f->name - 1, (unsigned char)f->name[-1]);
  f->name = f->value = NULL;
}

int px_headers_add(struct px_headers *h, const char *name, size_t namelen, const char *value,
                   size_t valuelen) {
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
  if (h->v)
    v_put(h->v, h->cap);
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
