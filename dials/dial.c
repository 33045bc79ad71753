/* dial: bucketing, request keys, and the experiment -> allocation -> dial -> default decision. */
#include "dials/dial.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <murmurhash.h>

#include "common/cut_err.h"
#include "dials/alloc.h"
#include "dials/dial_int.h"
#include "dials/dial_store_int.h"
#include "dials/exp.h"

/* ---- hashing ---------------------------------------------------------- */

static inline uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

static inline uint32_t mix_block(uint32_t h, uint32_t k) {
  k *= 0xcc9e2d51u;
  k = rotl32(k, 15);
  k *= 0x1b873593u;
  h ^= k;
  h = rotl32(h, 13);
  return h * 5u + 0xe6546b64u;
}

/* Streaming MurmurHash3_x86_32 with seed 0. Only used for inputs longer than
 * the stack buffer of dial_hash3, so the hot path stays on libmurmurhash; the
 * unit tests check that both agree. Blocks are read little-endian, as the
 * reference implementation does on x86. */
uint32_t dial_murmur3_stream(const char *const *parts, const size_t *lens, size_t nparts) {
  uint32_t h = 0, pend = 0;
  unsigned npend = 0;
  size_t total = 0;
  for (size_t i = 0; i < nparts; i++) {
    const unsigned char *p = (const unsigned char *)parts[i];
    for (size_t j = 0; j < lens[i]; j++) {
      pend |= (uint32_t)p[j] << (8 * npend);
      if (++npend == 4) {
        h = mix_block(h, pend);
        pend = 0;
        npend = 0;
      }
    }
    total += lens[i];
  }
  if (npend) {
    uint32_t k = pend * 0xcc9e2d51u;
    k = rotl32(k, 15);
    k *= 0x1b873593u;
    h ^= k;
  }
  h ^= (uint32_t)total;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

#define HASH_STACK 512

uint32_t dial_hash3(const char *a, size_t alen, const char *b, size_t blen, const char *c,
                    size_t clen) {
  if (alen + blen + clen <= HASH_STACK) {
    char buf[HASH_STACK];
    if (alen) memcpy(buf, a, alen);
    if (blen) memcpy(buf + alen, b, blen);
    if (clen) memcpy(buf + alen + blen, c, clen);
    uint32_t h[1];
    lmmh_x86_32(buf, (unsigned)(alen + blen + clen), 0, h);
    return h[0];
  }
  const char *parts[3] = {a, b, c};
  size_t lens[3] = {alen, blen, clen};
  return dial_murmur3_stream(parts, lens, 3);
}

uint32_t dial_bucket(const char *salt, size_t salt_len, const char *key, size_t key_len) {
  return dial_bucket_of_hash(dial_hash3(salt, salt_len, ":", 1, key, key_len));
}

/* splitmix64 per thread, seeded from the clock and the thread's address
 * space; `random` keys need unpredictability only in the statistical sense. */
static _Thread_local uint64_t rng_state;

uint32_t dial_random_bucket(void) {
  if (rng_state == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    rng_state = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^
                (uint64_t)(uintptr_t)&rng_state;
    if (rng_state == 0) rng_state = 1;
  }
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (uint32_t)(z % DIAL_BUCKETS);
}

/* ---- request keys ----------------------------------------------------- */

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static struct dial_slice trim(const char *p, size_t n) {
  while (n && is_ows(*p)) p++, n--;
  while (n && is_ows(p[n - 1])) n--;
  return (struct dial_slice){p, n};
}

static inline unsigned char lower(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Header names arrive lower-case over HTTP/2, so memcmp decides most
 * comparisons; HTTP/1.1 names may have any case. */
static int name_eq_ci(struct dial_slice a, const char *b, size_t n) {
  if (a.len != n) return 0;
  if (memcmp(a.p, b, n) == 0) return 1;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)a.p[i]) != lower((unsigned char)b[i])) return 0;
  return 1;
}

static int find_header(const struct dial_request *req, const char *name, struct dial_slice *out) {
  size_t n = strlen(name);
  for (size_t i = 0; i < req->nheaders; i++) {
    if (!name_eq_ci(req->headers[i].name, name, n)) continue;
    struct dial_slice v = trim(req->headers[i].value.p, req->headers[i].value.len);
    if (v.len == 0) return 0; /* present but empty counts as missing */
    *out = v;
    return 1;
  }
  return 0;
}

/* Cookie pairs are "name=value" separated by ';' (RFC 6265 §4.2.1), over any
 * number of `cookie` headers (HTTP/2 may split them). Names are compared
 * exactly; a value wrapped in double quotes loses the quotes. */
static int find_cookie(const struct dial_request *req, const char *name, struct dial_slice *out) {
  size_t nlen = strlen(name);
  for (size_t i = 0; i < req->nheaders; i++) {
    if (!name_eq_ci(req->headers[i].name, "cookie", 6)) continue;
    const char *p = req->headers[i].value.p, *end = p + req->headers[i].value.len;
    while (p < end) {
      const char *semi = memchr(p, ';', (size_t)(end - p));
      const char *pe = semi ? semi : end;
      const char *eq = memchr(p, '=', (size_t)(pe - p));
      if (eq) {
        struct dial_slice k = trim(p, (size_t)(eq - p));
        if (k.len == nlen && memcmp(k.p, name, nlen) == 0) {
          struct dial_slice v = trim(eq + 1, (size_t)(pe - eq - 1));
          if (v.len >= 2 && v.p[0] == '"' && v.p[v.len - 1] == '"') {
            v.p++;
            v.len -= 2;
          }
          if (v.len == 0) return 0;
          *out = v;
          return 1;
        }
      }
      p = semi ? semi + 1 : end;
    }
  }
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes one form-urlencoded component: "+" is a space, "%XX" (two hex
 * digits) a byte; a '%' not followed by two hex digits stays as it is.
 * Writes at most `cap` bytes to dst (dst may be NULL to only measure) and
 * returns the decoded length. */
static size_t form_decode(const char *s, size_t n, char *dst, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    }
    if (dst && o < cap) dst[o] = c;
    o++;
  }
  return o;
}

static int needs_decoding(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '%' || s[i] == '+') return 1;
  return 0;
}

static int find_query(const struct dial_request *req, const char *name, char *buf, size_t buflen,
                      struct dial_slice *out) {
  const char *p = req->path.p, *end = p + req->path.len;
  if (!p) return 0;
  const char *hash = memchr(p, '#', req->path.len);
  if (hash) end = hash;
  const char *q = memchr(p, '?', (size_t)(end - p));
  if (!q) return 0;
  p = q + 1;
  size_t nlen = strlen(name);
  char nbuf[256];
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *pe = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(pe - p));
    const char *ne = eq ? eq : pe;
    size_t raw = (size_t)(ne - p);
    int match;
    if (!needs_decoding(p, raw)) {
      match = raw == nlen && memcmp(p, name, nlen) == 0;
    } else {
      size_t dl = form_decode(p, raw, nbuf, sizeof nbuf);
      match = dl == nlen && dl <= sizeof nbuf && memcmp(nbuf, name, nlen) == 0;
    }
    if (match) {
      if (!eq) return 0;
      const char *v = eq + 1;
      size_t vlen = (size_t)(pe - v);
      if (vlen == 0) return 0;
      if (!needs_decoding(v, vlen)) {
        *out = (struct dial_slice){v, vlen};
        return 1;
      }
      size_t dl = form_decode(v, vlen, NULL, 0);
      if (dl > buflen || !buf) return 0; /* too long to decode: treated as missing */
      form_decode(v, vlen, buf, buflen);
      if (dl == 0) return 0;
      *out = (struct dial_slice){buf, dl};
      return 1;
    }
    p = amp ? amp + 1 : end;
  }
  return 0;
}

int dial_request_key_buf(const struct dial_request *req, const struct cfg_key *key, char *buf,
                         size_t buflen, struct dial_slice *out) {
  if (!req || !key || !out || !key->name) return 0;
  switch (key->kind) {
  case CFG_KEY_HEADER:
    return find_header(req, key->name, out);
  case CFG_KEY_COOKIE:
    return find_cookie(req, key->name, out);
  case CFG_KEY_QUERY:
    return find_query(req, key->name, buf, buflen, out);
  case CFG_KEY_RANDOM:
  default:
    return 0;
  }
}

static _Thread_local char key_tls[DIAL_KEY_MAX];

int dial_request_key(const struct dial_request *req, const struct cfg_key *key,
                     struct dial_slice *out) {
  return dial_request_key_buf(req, key, key_tls, sizeof key_tls, out);
}

/* ---- decision --------------------------------------------------------- */

/* Computes the bucket of the request for (key, salt). Returns 0 when the
 * request has no such key; `random` keys always have one. */
static int request_bucket(const struct dial_request *req, const struct cfg_key *key,
                          const char *salt, char *buf, size_t buflen, uint32_t *bucket,
                          struct dial_slice *kv) {
  if (key->kind == CFG_KEY_RANDOM) {
    *bucket = dial_random_bucket();
    kv->p = NULL;
    kv->len = 0;
    return 1;
  }
  if (!dial_request_key_buf(req, key, buf, buflen, kv)) return 0;
  *bucket = dial_bucket(salt, strlen(salt), kv->p, kv->len);
  return 1;
}

static const char *salt_of(const char *salt, const char *name) {
  return salt && *salt ? salt : (name ? name : "");
}

/* Sets the labels of a stage that did not take the request, unless an
 * earlier stage already explained the outcome. */
static void note(struct dial_decision *out, enum dial_via kind, const char *name, uint32_t bucket,
                 const char *reason) {
  if (out->name) return;
  out->name = name;
  out->name_kind = kind;
  out->bucket = bucket;
  out->reason = reason;
}

static inline void count(_Atomic uint64_t *c) {
  atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

uint32_t dial_effective_ppm(const struct cfg *cfg, const struct dial_store *store, size_t i) {
  const struct cfg_dial *d = &cfg->dials[i];
  if (store) {
    struct dial_live *lv = dial_store_dial_live(store, cfg, i);
    if (lv) {
      uint32_t local = atomic_load_explicit(&lv->local_ppm, memory_order_acquire);
      if (local != DIAL_PPM_NONE) return local;
      return atomic_load_explicit(&lv->ppm, memory_order_acquire);
    }
  }
  if (cfg->datacenter)
    for (size_t k = 0; k < d->nper_dc; k++)
      if (d->per_dc[k].datacenter && !strcmp(d->per_dc[k].datacenter, cfg->datacenter))
        return d->per_dc[k].ppm;
  return d->ppm;
}

/* Returns 1 when the experiment routed the request. */
static int decide_experiment(const struct cfg *cfg, const struct dial_store *store, size_t i,
                             const struct dial_request *req, int64_t now, char *buf,
                             size_t buflen, struct dial_decision *out) {
  const struct cfg_experiment *e = &cfg->experiments[i];
  struct exp_live *lv = store ? dial_store_exp_live(store, cfg, i) : NULL;
  enum exp_state st;
  int64_t start, end;
  if (lv) {
    st = (enum exp_state)atomic_load_explicit(&lv->state, memory_order_acquire);
    start = atomic_load_explicit(&lv->start, memory_order_acquire);
    end = atomic_load_explicit(&lv->end, memory_order_acquire);
  } else {
    st = e->autostart ? EXP_RUNNING : EXP_PENDING;
    start = e->start;
    end = e->end;
  }
  st = exp_effective_state(st, start, end, now);
  if (st != EXP_RUNNING) {
    note(out, DIAL_VIA_EXPERIMENT, e->name, 0,
         st == EXP_STOPPED     ? "experiment-stopped"
         : st == EXP_COMPLETED ? "experiment-completed"
                               : "experiment-pending");
    return 0;
  }
  uint32_t b;
  struct dial_slice kv;
  if (!request_bucket(req, &e->key, salt_of(e->salt, e->name), buf, buflen, &b, &kv)) {
    if (lv) count(&lv->no_key);
    note(out, DIAL_VIA_EXPERIMENT, e->name, 0, "no-key");
    return 0;
  }
  if (!dial_in(b, e->pool_ppm)) {
    note(out, DIAL_VIA_EXPERIMENT, e->name, b, "out-of-pool");
    return 0;
  }
  enum exp_arm arm = exp_arm_of(b);
  out->backend_index = arm == EXP_ARM_CANARY ? e->canary_index : e->baseline_index;
  out->via = out->name_kind = DIAL_VIA_EXPERIMENT;
  out->name = e->name;
  out->arm = exp_arm_name(arm);
  out->bucket = b;
  out->reason = "in-pool";
  return 1;
}

static int decide_allocation(const struct cfg *cfg, const struct dial_store *store, size_t i,
                             const struct dial_request *req, char *buf, size_t buflen,
                             struct dial_decision *out) {
  const struct cfg_allocation *a = &cfg->allocations[i];
  struct alloc_live *lv = store ? dial_store_alloc_live(store, cfg, i) : NULL;
  enum alloc_verdict v = alloc_eligible(cfg, a, req);
  if (v != ALLOC_ELIGIBLE) {
    if (lv) {
      count(&lv->not_eligible);
      if (v == ALLOC_VERSION_MALFORMED) count(&lv->malformed_version);
    }
    note(out, DIAL_VIA_ALLOCATION, a->name, 0,
         v == ALLOC_VERSION_MALFORMED ? "malformed-version" : "not-eligible");
    return 0;
  }
  const char *salt = salt_of(a->salt, a->name);
  uint32_t b;
  struct dial_slice kv;
  if (!request_bucket(req, &a->key, salt, buf, buflen, &b, &kv)) {
    if (lv) count(&lv->no_key);
    note(out, DIAL_VIA_ALLOCATION, a->name, 0, "no-key");
    return 0;
  }
  if (!dial_in(b, a->ppm)) {
    note(out, DIAL_VIA_ALLOCATION, a->name, b, "out-of-allocation");
    return 0;
  }
  /* For `random` keys the cell is drawn independently too. */
  uint32_t cb = kv.p ? alloc_cell_bucket(salt, strlen(salt), kv.p, kv.len) : dial_random_bucket();
  size_t c = alloc_cell_of(a, cb);
  if (c == SIZE_MAX) {
    note(out, DIAL_VIA_ALLOCATION, a->name, b, "no-cell");
    return 0;
  }
  if (lv) count(&lv->allocated);
  out->backend_index = a->cells[c].backend_index;
  out->via = out->name_kind = DIAL_VIA_ALLOCATION;
  out->name = a->name;
  out->arm = a->cells[c].name;
  out->bucket = b;
  out->reason = "allocated";
  return 1;
}

static int decide_dial(const struct cfg *cfg, const struct dial_store *store, size_t i,
                       const struct dial_request *req, char *buf, size_t buflen,
                       struct dial_decision *out) {
  const struct cfg_dial *d = &cfg->dials[i];
  uint32_t b;
  struct dial_slice kv;
  if (!request_bucket(req, &d->key, salt_of(d->salt, d->name), buf, buflen, &b, &kv)) {
    if (store) {
      struct dial_live *lv = dial_store_dial_live(store, cfg, i);
      if (lv) count(&lv->no_key);
    }
    /* The missing key explains the default path better than anything an
     * earlier stage noted. */
    out->name = d->name;
    out->name_kind = DIAL_VIA_DIAL;
    out->bucket = 0;
    out->reason = "no-key";
    return 0;
  }
  uint32_t ppm = dial_effective_ppm(cfg, store, i);
  out->via = out->name_kind = DIAL_VIA_DIAL;
  out->name = d->name;
  out->bucket = b;
  if (dial_in(b, ppm)) {
    out->backend_index = d->to_index;
    out->arm = "new";
    out->reason = "in-dial";
  } else {
    out->arm = "old";
    out->reason = "out-of-dial";
  }
  return 1;
}

int dial_decide(const struct cfg *cfg, const struct dial_store *store,
                const struct cfg_route *route, const struct dial_request *req, int64_t now,
                struct dial_decision *out) {
  if (!cfg || !route || !req || !out) return CUT_ERR_INVALID;
  *out = (struct dial_decision){.backend_index = route->backend_index,
                                .via = DIAL_VIA_DEFAULT,
                                .name_kind = DIAL_VIA_DEFAULT,
                                .reason = "default"};
  char buf[DIAL_KEY_MAX];
  if (route->experiment && route->experiment_index < cfg->nexperiments &&
      decide_experiment(cfg, store, route->experiment_index, req, now, buf, sizeof buf, out))
    return 0;
  if (route->allocation && route->allocation_index < cfg->nallocations &&
      decide_allocation(cfg, store, route->allocation_index, req, buf, sizeof buf, out))
    return 0;
  if (route->dial && route->dial_index < cfg->ndials)
    decide_dial(cfg, store, route->dial_index, req, buf, sizeof buf, out);
  return 0;
}

/* ---- labels ----------------------------------------------------------- */

static const char *kind_word(enum dial_via v) {
  switch (v) {
  case DIAL_VIA_DIAL: return "dial";
  case DIAL_VIA_EXPERIMENT: return "experiment";
  case DIAL_VIA_ALLOCATION: return "allocation";
  case DIAL_VIA_DEFAULT:
  default: return "default";
  }
}

static void put(char *buf, size_t buflen, size_t *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t buflen, size_t *o, const char *fmt, ...) {
  if (*o >= buflen) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *o, buflen - *o, fmt, ap);
  va_end(ap);
  if (n > 0) *o += (size_t)n;
}

size_t dial_decision_format(const struct dial_decision *d, char *buf, size_t buflen) {
  if (!buf || buflen == 0) return 0;
  buf[0] = '\0';
  if (!d) return 0;
  size_t o = 0;
  if (d->name) {
    put(buf, buflen, &o, "%s=%s;", kind_word(d->name_kind), d->name);
    if (d->arm) put(buf, buflen, &o, "arm=%s;", d->arm);
    if (d->via != DIAL_VIA_DEFAULT || d->bucket) put(buf, buflen, &o, "bucket=%u;", (unsigned)d->bucket);
  }
  put(buf, buflen, &o, "reason=%s", d->reason ? d->reason : "default");
  return o < buflen ? o : buflen - 1;
}

const char *dial_via_name(enum dial_via v) { return kind_word(v); }
