/* px_forward: header rewriting, request ids and failure statuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "common/cut_err.h"
#include "proxy/px_forward.h"

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void px_rng_seed(struct px_rng *r) {
  if (getrandom(r->s, sizeof r->s, GRND_NONBLOCK) == (ssize_t)sizeof r->s &&
      (r->s[0] | r->s[1] | r->s[2] | r->s[3]))
    return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)r;
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix(&x);
}

/* xoshiro256** */
uint64_t px_rng_next(struct px_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

void px_uuid4(struct px_rng *r, char out[37]) {
  static const char hex[] = "0123456789abcdef";
  uint8_t b[16];
  uint64_t a = px_rng_next(r), c = px_rng_next(r);
  memcpy(b, &a, 8);
  memcpy(b + 8, &c, 8);
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
  size_t o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out[o++] = '-';
    out[o++] = hex[b[i] >> 4];
    out[o++] = hex[b[i] & 15];
  }
  out[o] = '\0';
}

/* Names in a list are lower-case: equal length and bytes is equality. */
static inline int name_is(const struct px_header *f, const char *name, size_t len) {
  return f->namelen == len && memcmp(f->name, name, len) == 0;
}

/* Removes every field named in the comma-separated Connection values. */
static void drop_connection_tokens(struct px_headers *h) {
  for (size_t i = 0; i < h->n; i++) {
    if (!name_is(&h->v[i], "connection", 10))
      continue;
    const char *value = h->v[i].value, *p = value;
    while (*p) {
      while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
      size_t n = strcspn(p, ", \t");
      if (n && n < 64) {
        char tok[64];
        for (size_t k = 0; k < n; k++) {
          char ch = p[k];
          tok[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        }
        tok[n] = '\0';
        /* never let Connection remove the end-to-end fields we rely on */
        if (strcmp(tok, "connection") != 0 && strcmp(tok, "host") != 0)
          px_headers_del(h, tok);
      }
      p += n;
    }
    /* Fields deleted before this one moved it down the list: go on right
     * after it, or the field that took its place would be skipped (another
     * Connection field, say). It is never deleted itself ("connection"). */
    while (i >= h->n || h->v[i].value != value)
      i--;
  }
}

/* Fields a proxy drops from every message: hop-by-hop, and TE other than "trailers". */
static int is_dropped_hop(const struct px_header *f) {
  if (px_header_is_hop(f->name, f->namelen))
    return 1;
  return f->namelen == 2 && memcmp(f->name, "te", 2) == 0 &&
         strcasecmp(f->value, "trailers") != 0;
}

static void drop_hop(struct px_headers *h) {
  drop_connection_tokens(h);
  size_t w = 0;
  for (size_t i = 0; i < h->n; i++) {
    struct px_header *f = &h->v[i];
    if (is_dropped_hop(f)) {
      h->bytes -= f->namelen + f->valuelen + 32;
      px_header_release(f);
    } else {
      h->v[w++] = *f;
    }
  }
  h->n = w;
}

/* Field i's value becomes "<old>, <add>". */
static int append_to(struct px_headers *h, size_t i, const char *add, size_t al) {
  struct px_header *f = &h->v[i];
  size_t vl = f->valuelen + 2 + al;
  char stack[512];
  char *v = vl <= sizeof stack ? stack : malloc(vl);
  if (!v)
    return CUT_ERR_NOMEM;
  memcpy(v, f->value, f->valuelen);
  memcpy(v + f->valuelen, ", ", 2);
  memcpy(v + f->valuelen + 2, add, al);
  int rv = px_headers_set_value(h, i, v, vl);
  if (v != stack)
    free(v);
  return rv;
}

/* Copies src (NUL-terminated) into id[idlen], truncated. */
static void copy_id(char *id, size_t idlen, const char *src, size_t n) {
  if (!idlen)
    return;
  if (n > idlen - 1)
    n = idlen - 1;
  memcpy(id, src, n);
  id[n] = '\0';
}

int px_forward_request(struct px_request_head *r, const struct px_forward_info *fi,
                       struct px_rng *rng, char *id, size_t idlen) {
  struct px_headers *h = &r->headers;
  drop_connection_tokens(h);
  /* One pass: drop the hop-by-hop fields, Expect and X-Forwarded-Proto (set
   * again below), and note where the first X-Forwarded-For and Via are. */
  size_t w = 0, xff = SIZE_MAX, via = SIZE_MAX;
  for (size_t i = 0; i < h->n; i++) {
    struct px_header *f = &h->v[i];
    if (is_dropped_hop(f) || name_is(f, "expect", 6) || name_is(f, "x-forwarded-proto", 17)) {
      h->bytes -= f->namelen + f->valuelen + 32;
      px_header_release(f);
      continue;
    }
    if (xff == SIZE_MAX && name_is(f, "x-forwarded-for", 15))
      xff = w;
    else if (via == SIZE_MAX && name_is(f, "via", 3))
      via = w;
    if (w != i)
      h->v[w] = *f;
    w++;
  }
  h->n = w;
  if (fi->client_ip && fi->client_ip[0]) {
    size_t il = strlen(fi->client_ip);
    if (xff != SIZE_MAX ? append_to(h, xff, fi->client_ip, il)
                        : px_headers_add_lc(h, "x-forwarded-for", 15, fi->client_ip, il))
      return CUT_ERR_NOMEM;
  }
  if (fi->tls ? px_headers_add_lc(h, "x-forwarded-proto", 17, "https", 5)
              : px_headers_add_lc(h, "x-forwarded-proto", 17, "http", 4))
    return CUT_ERR_NOMEM;
  const char *vv = fi->h2 ? "2 cutover" : "1.1 cutover";
  size_t vvl = fi->h2 ? 9 : 11;
  if (via != SIZE_MAX ? append_to(h, via, vv, vvl) : px_headers_add_lc(h, "via", 3, vv, vvl))
    return CUT_ERR_NOMEM;
  const char *idh = fi->request_id_header ? fi->request_id_header : "x-request-id";
  const struct px_header *have = px_headers_get(h, idh);
  if (have && have->valuelen) {
    copy_id(id, idlen, have->value, strlen(have->value));
  } else {
    char u[37];
    px_uuid4(rng, u);
    if (have)
      px_headers_del(h, idh);
    if (px_headers_add(h, idh, strlen(idh), u, 36))
      return CUT_ERR_NOMEM;
    copy_id(id, idlen, u, 36);
  }
  return 0;
}

void px_forward_response(struct px_headers *h) { drop_hop(h); }

int px_fail_status(enum px_fail f) {
  switch (f) {
  case PX_FAIL_NO_HOST:
    return 503;
  case PX_FAIL_TIMEOUT:
    return 504;
  default:
    return 502;
  }
}

const char *px_fail_name(enum px_fail f) {
  switch (f) {
  case PX_FAIL_NONE: return "none";
  case PX_FAIL_CONNECT: return "connect";
  case PX_FAIL_TLS: return "tls";
  case PX_FAIL_NO_HOST: return "no-host";
  case PX_FAIL_TIMEOUT: return "timeout";
  case PX_FAIL_RESET: return "reset";
  case PX_FAIL_PROTOCOL: return "protocol";
  case PX_FAIL_CANCELLED: return "cancelled";
  }
  return "unknown";
}
