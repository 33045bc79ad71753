/* rec_pair: building a recorded pair: redaction, body caps, checksums, lineage; its arena. */
/* The low-level SHA256_* functions keep their state in a plain struct, so a
 * body's running digest needs no allocation (EVP_MD_CTX_new + a provider
 * context per body cost a worker more than the hashing of a small body).
 * They are deprecated in OpenSSL 3 but kept; they compute the same digest. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <assert.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "common/cut_err.h"
#include "replay/rec_mem.h"
#include "replay/rec_pair.h"
#include "replay/rec_pair_int.h"

/* SHA-256 of zero bytes (a constant: the one-shot SHA256() looks the digest up
 * in OpenSSL's provider table on every call). */
static const char EMPTY_SHA256[65] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static const char *const default_redact[] = {"authorization", "cookie", "set-cookie"};

static_assert(sizeof(SHA256_CTX) <= sizeof(((struct rec_body *)0)->md),
              "rec_body.md must hold a SHA256_CTX");
static_assert(alignof(SHA256_CTX) <= alignof(uint64_t), "rec_body.md alignment");

/* ---- the arena ---- */

struct rec_blk {
  struct rec_blk *next;
  size_t size; /* REC_MEM_BLOCK for cache-sized blocks */
};

#define BLK_HDR ((sizeof(struct rec_blk) + 15) & ~(size_t)15)
#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

static void arena_init(struct rec_arena *a, struct rec_mem *mem) {
  memset(a, 0, sizeof *a);
  a->mem = mem;
}

/* A new cache-sized block becomes the current one (the rest of the old is left). */
static int arena_next_block(struct rec_arena *a) {
  struct rec_blk *b = a->mem ? rec_mem_get(a->mem) : malloc(REC_MEM_BLOCK);
  if (!b)
    return CUT_ERR_NOMEM;
  b->size = REC_MEM_BLOCK;
  b->next = a->blocks;
  a->blocks = b;
  a->bytes += REC_MEM_BLOCK;
  a->cur = (char *)b + BLK_HDR;
  a->left = REC_MEM_BLOCK - BLK_HDR;
  return 0;
}

#define BIG ((REC_MEM_BLOCK - BLK_HDR) / 2)

/* n bytes, 8-byte aligned, not zeroed. More than BIG bytes always get a
 * block of their own (body_room relies on it to grow them with realloc). */
static void *arena_get(struct rec_arena *a, size_t n) {
  n = ALIGN8(n ? n : 1);
  if (n > BIG) {
    struct rec_blk *b = malloc(BLK_HDR + n);
    if (!b)
      return NULL;
    b->size = BLK_HDR + n;
    if (b->size == REC_MEM_BLOCK)
      b->size++; /* never mistaken for a cache-sized block */
    if (a->blocks) { /* behind the current block, which keeps taking small things */
      b->next = a->blocks->next;
      a->blocks->next = b;
    } else {
      b->next = NULL;
      a->blocks = b;
    }
    a->bytes += b->size;
    return (char *)b + BLK_HDR;
  }
  if (n > a->left && arena_next_block(a))
    return NULL;
  void *p = a->cur;
  a->cur += n;
  a->left -= n;
  return p;
}

static void *arena_zget(struct rec_arena *a, size_t n) {
  void *p = arena_get(a, n);
  if (p)
    memset(p, 0, n);
  return p;
}

/* Grows the allocation at p (old bytes, the newest small one) in place when
 * it is the last thing taken from the current block and the block has room. */
static int arena_extend(struct rec_arena *a, void *p, size_t old, size_t want) {
  old = ALIGN8(old);
  want = ALIGN8(want);
  if ((char *)p + old != a->cur || want - old > a->left)
    return 0;
  a->cur += want - old;
  a->left -= want - old;
  return 1;
}

/* Gives every block back. The arena itself may live in one of them: read
 * everything first. */
static void arena_release(struct rec_arena *a) {
  struct rec_blk *b = a->blocks;
  struct rec_mem *mem = a->mem;
  while (b) {
    struct rec_blk *next = b->next;
    if (mem && b->size == REC_MEM_BLOCK)
      rec_mem_put(mem, b);
    else
      free(b);
    b = next;
  }
  rec_mem_unref(mem);
}

static char *arena_strndup(struct rec_arena *a, const char *s, size_t n) {
  char *d = arena_get(a, n + 1);
  if (!d)
    return NULL;
  if (n)
    memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

static char *dup_n(struct rec_pair *p, const char *s, size_t n) {
  return arena_strndup(&p->arena, s, n);
}

static char *dup_s(struct rec_pair *p, const char *s) {
  return dup_n(p, s ? s : "", s ? strlen(s) : 0);
}

static void hex(char *out, const uint8_t *in, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

const char *rec_kvs_get(const struct rec_kvs *l, const char *key) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i].key, key) == 0)
      return l->v[i].value;
  return NULL;
}

/* One allocation per entry: "key\0value\0"; key points at it, value into it. */
static char *kv_block(struct rec_arena *a, const char *k, size_t klen, const char *v, size_t vlen,
                      int lower, char **value) {
  char *b = a ? arena_get(a, klen + vlen + 2) : malloc(klen + vlen + 2);
  if (!b)
    return NULL;
  if (klen)
    memcpy(b, k, klen);
  if (lower)
    for (size_t i = 0; i < klen; i++)
      if (b[i] >= 'A' && b[i] <= 'Z')
        b[i] = (char)(b[i] + 32);
  b[klen] = '\0';
  *value = b + klen + 1;
  if (vlen)
    memcpy(*value, v, vlen);
  (*value)[vlen] = '\0';
  return b;
}

static int kvs_grow(struct rec_kvs *l) {
  size_t cap = l->cap ? l->cap * 2 : 8;
  struct rec_kv *nv;
  if (l->arena) {
    if (l->v && arena_extend(l->arena, l->v, l->cap * sizeof *nv, cap * sizeof *nv)) {
      l->cap = cap;
      return 0;
    }
    nv = arena_get(l->arena, cap * sizeof *nv); /* the old array stays in the arena */
    if (nv && l->n)
      memcpy(nv, l->v, l->n * sizeof *nv);
  } else {
    nv = realloc(l->v, cap * sizeof *nv);
  }
  if (!nv)
    return CUT_ERR_NOMEM;
  l->v = nv;
  l->cap = cap;
  return 0;
}

static int kvs_put(struct rec_kvs *l, const char *k, size_t klen, const char *v, size_t vlen,
                   int lower) {
  if (l->n == l->cap && kvs_grow(l))
    return CUT_ERR_NOMEM;
  struct rec_kv *e = &l->v[l->n];
  if (!(e->key = kv_block(l->arena, k, klen, v, vlen, lower, &e->value)))
    return CUT_ERR_NOMEM;
  e->klen = klen;
  e->vlen = vlen;
  l->n++;
  return 0;
}

int rec_kvs_append(struct rec_kvs *l, const char *k, size_t klen, const char *v, size_t vlen) {
  return kvs_put(l, k, klen, v, vlen, 0);
}

int rec_kvs_set(struct rec_kvs *l, const char *k, size_t klen, const char *v, size_t vlen) {
  for (size_t i = 0; i < l->n; i++) {
    if (l->v[i].klen == klen && memcmp(l->v[i].key, k, klen) == 0) {
      char *value;
      char *b = kv_block(l->arena, k, klen, v, vlen, 0, &value);
      if (!b)
        return CUT_ERR_NOMEM;
      if (!l->arena)
        free(l->v[i].key);
      l->v[i].key = b;
      l->v[i].value = value;
      l->v[i].vlen = vlen;
      return 0;
    }
  }
  return rec_kvs_append(l, k, klen, v, vlen);
}

void rec_kvs_clear(struct rec_kvs *l) {
  struct rec_arena *a = l->arena;
  if (!a) {
    for (size_t i = 0; i < l->n; i++)
      free(l->v[i].key); /* the value shares the key's block */
    free(l->v);
  }
  memset(l, 0, sizeof *l);
  l->arena = a;
}

/* ---- bodies ---- */

/* Room for at least `want` kept bytes: doubles, in place when it can. */
/* Grows a standalone (big) block of the arena that starts at p with realloc:
 * finds it in the chain to relink it. Returns the new start or NULL. */
static void *arena_big_regrow(struct rec_arena *a, void *p, size_t want) {
  want = ALIGN8(want);
  for (struct rec_blk **link = &a->blocks; *link; link = &(*link)->next) {
    struct rec_blk *b = *link;
    if ((char *)b + BLK_HDR != (char *)p)
      continue;
    size_t old = b->size;
    struct rec_blk *nb = realloc(b, BLK_HDR + want);
    if (!nb)
      return NULL;
    nb->size = BLK_HDR + want;
    if (nb->size == REC_MEM_BLOCK)
      nb->size++;
    *link = nb;
    a->bytes += nb->size - old;
    return (char *)nb + BLK_HDR;
  }
  return NULL;
}

/* Room for at least `want` kept bytes: doubles; small bodies stay in the
 * current block (in place when they can), big ones get a block of their own
 * that grows with realloc, so a big body costs about its size. */
static int body_room(struct rec_body *b, size_t want, uint64_t cap) {
  if (!b->arena)
    return CUT_ERR_INVALID;
  size_t room = b->room ? b->room * 2 : 256;
  if (room > cap) /* never more than the body can keep */
    room = (size_t)cap;
  if (room < want)
    room = want;
  uint8_t *nd;
  if (b->big) {
    if (!(nd = arena_big_regrow(b->arena, b->data, room)))
      return CUT_ERR_NOMEM;
    b->data = nd;
    b->room = room;
    return 0;
  }
  if (b->data && arena_extend(b->arena, b->data, b->room, room)) {
    b->room = room;
    return 0;
  }
  if (!(nd = arena_get(b->arena, room))) /* the old bytes stay in the arena */
    return CUT_ERR_NOMEM;
  b->big = ALIGN8(room) > BIG; /* arena_get gave it a block of its own */
  if (b->len)
    memcpy(nd, b->data, b->len);
  b->data = nd;
  b->room = room;
  return 0;
}

/*
 * The checksum is computed lazily: while every byte seen is also kept, there
 * is nothing to stream, and rec_body_finish hashes the kept bytes once, on
 * the thread that encodes the pair rather than on the worker that builds it.
 * Only a body that outgrows the cap starts a running digest (over what was
 * kept so far, then every byte that follows).
 */
int rec_body_append(struct rec_body *b, uint64_t cap, const uint8_t *data, size_t len) {
  if (b->ended || b->sha256[0])
    return CUT_ERR_STATE; /* finished */
  if (len == 0)
    return 0;
  size_t take = 0;
  if (b->len < cap) {
    take = (size_t)((cap - b->len) < len ? (cap - b->len) : len);
    if (b->len + take > b->room) {
      int rc = body_room(b, b->len + take, cap);
      if (rc)
        return rc;
    }
  }
  SHA256_CTX *md = (SHA256_CTX *)(void *)b->md;
  if (!b->md_on && take < len) { /* bytes are about to be lost: hash from here on */
    SHA256_Init(md);
    SHA256_Update(md, b->data, b->len);
    b->md_on = 1;
  }
  if (take) {
    memcpy(b->data + b->len, data, take);
    b->len += take;
  }
  if (b->md_on)
    SHA256_Update(md, data, len);
  b->size += len;
  b->truncated = b->size > b->len;
  return 0;
}

void rec_body_finish(struct rec_body *b) {
  b->ended = 1;
  if (b->sha256[0])
    return;
  if (!b->md_on && b->len == 0) {
    memcpy(b->sha256, EMPTY_SHA256, sizeof b->sha256);
    return;
  }
  SHA256_CTX *md = (SHA256_CTX *)(void *)b->md;
  if (!b->md_on) { /* every byte was kept: hash them now */
    SHA256_Init(md);
    SHA256_Update(md, b->data, b->len);
  }
  uint8_t d[SHA256_DIGEST_LENGTH];
  SHA256_Final(d, md);
  b->md_on = 0;
  hex(b->sha256, d, 32);
}

/* ---- lists ---- */

/* s (NUL-terminated) is name[0..namelen) ignoring case: one pass, no strlen
 * (this runs for every recorded header against every listed name). */
static int name_is(const char *s, const char *name, size_t namelen) {
  for (size_t i = 0; i < namelen; i++) {
    unsigned char a = (unsigned char)s[i], b = (unsigned char)name[i];
    if (!a)
      return 0; /* s is shorter */
    if (a != b && (a | 0x20) != (b | 0x20)) /* ASCII case folding; names are tokens */
      return 0;
    if (a != b && !((a | 0x20) >= 'a' && (a | 0x20) <= 'z'))
      return 0; /* differ by 0x20 but are not letters ('@' vs '`') */
  }
  return s[namelen] == '\0';
}

int rec_redact_match(const struct cfg_strlist *list, const char *name, size_t namelen) {
  if (!list) {
    for (size_t i = 0; i < sizeof default_redact / sizeof default_redact[0]; i++)
      if (name_is(default_redact[i], name, namelen))
        return 1;
    return 0;
  }
  for (size_t i = 0; i < list->n; i++)
    if (name_is(list->v[i], name, namelen))
      return 1;
  return 0;
}

static int list_match(const struct cfg_strlist *list, const char *name, size_t namelen) {
  if (!list)
    return 0;
  for (size_t i = 0; i < list->n; i++)
    if (name_is(list->v[i], name, namelen))
      return 1;
  return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

int rec_lineage_parse(struct rec_kvs *map, const char *value, size_t len) {
  int count = 0;
  size_t i = 0;
  while (i < len) {
    size_t start = i;
    while (i < len && value[i] != ';' && value[i] != ',')
      i++;
    size_t end = i;
    i++; /* skip the separator */
    const char *eq = memchr(value + start, '=', end - start);
    if (!eq)
      continue;
    size_t ks = start, ke = (size_t)(eq - value), vs = ke + 1, ve = end;
    while (ks < ke && is_space(value[ks]))
      ks++;
    while (ke > ks && is_space(value[ke - 1]))
      ke--;
    while (vs < ve && is_space(value[vs]))
      vs++;
    while (ve > vs && is_space(value[ve - 1]))
      ve--;
    if (ke == ks)
      continue;
    if (rec_kvs_set(map, value + ks, ke - ks, value + vs, ve - vs))
      return CUT_ERR_NOMEM;
    count++;
  }
  return count;
}

void rec_opts_from_cfg(struct rec_opts *o, const struct cfg_recording *rc) {
  memset(o, 0, sizeof *o);
  o->max_body = rc->max_body_bytes;
  o->redact = &rc->redact_headers;
  o->lineage = &rc->lineage_headers;
  o->hash_device_key = rc->hash_device_key;
  o->source = "proxy";
}

/* ---- pairs ---- */

static void pair_lists(struct rec_pair *p) {
  p->decision.arena = &p->arena;
  p->request.headers.arena = &p->arena;
  p->request.body.arena = &p->arena;
}

static int pair_blank(struct rec_pair **out, struct rec_mem *mem) {
  struct rec_arena a;
  arena_init(&a, mem ? rec_mem_ref(mem) : NULL);
  struct rec_pair *p = arena_zget(&a, sizeof *p); /* the pair lives in its first block */
  if (!p) {
    arena_release(&a);
    return CUT_ERR_NOMEM;
  }
  p->arena = a;
  p->kind = REC_KIND_PAIR;
  pair_lists(p);
  *out = p;
  return 0;
}

int rec_pair_new_blank(struct rec_pair **out) { return pair_blank(out, NULL); }

int rec_pair_new_in(struct rec_pair **out, struct rec_mem *mem, const struct rec_opts *opts,
                    const char *correlation_id, int64_t time_us, const char *route) {
  if (!out || !correlation_id)
    return CUT_ERR_INVALID;
  struct rec_pair *p;
  if (pair_blank(&p, mem))
    return CUT_ERR_NOMEM;
  p->opts = opts;
  p->time_us = time_us;
  p->correlation_id = dup_s(p, correlation_id);
  p->source = dup_s(p, opts && opts->source ? opts->source : "proxy");
  p->route = dup_s(p, route);
  p->request.method = p->request.authority = p->request.path = p->request.query = dup_s(p, "");
  if (!p->correlation_id || !p->source || !p->route || !p->request.method) {
    rec_pair_free(p);
    return CUT_ERR_NOMEM;
  }
  *out = p;
  return 0;
}

int rec_pair_new(struct rec_pair **out, const struct rec_opts *opts, const char *correlation_id,
                 int64_t time_us, const char *route) {
  return rec_pair_new_in(out, NULL, opts, correlation_id, time_us, route);
}

void rec_pair_free(struct rec_pair *p) {
  if (!p)
    return;
  struct rec_arena a = p->arena; /* p itself is in the arena */
  arena_release(&a);
}

void *rec_pair_alloc(struct rec_pair *p, size_t n) { return arena_zget(&p->arena, n); }

char *rec_pair_strndup(struct rec_pair *p, const char *s, size_t n) { return dup_n(p, s, n); }

struct rec_response *rec_pair_response_alloc(struct rec_pair *p) {
  struct rec_response *r = arena_zget(&p->arena, sizeof *r);
  if (!r)
    return NULL;
  r->headers.arena = &p->arena;
  r->lineage.arena = &p->arena;
  r->body.arena = &p->arena;
  return r;
}

size_t rec_pair_mem_size(const struct rec_pair *p) { return p->arena.bytes; }

#define PREFETCH_MAX 4096 /* per block: a body of its own is read once anyway */

void rec_pair_prefetch(const struct rec_pair *p) {
  const struct rec_arena *a = &p->arena;
  int n = 0;
  for (const struct rec_blk *b = a->blocks; b && n < 4; b = b->next, n++) {
    const char *s = (const char *)b, *e = s + b->size;
    if (s < a->cur && a->cur <= e)
      e = a->cur; /* the newest block: only what is used */
    if (e - s > PREFETCH_MAX)
      e = s + PREFETCH_MAX;
    for (; s < e; s += 64)
      __builtin_prefetch(s, 0, 3);
  }
}

int rec_pair_decision_set(struct rec_pair *p, const char *key, const char *value) {
  return rec_kvs_set(&p->decision, key, strlen(key), value ? value : "", value ? strlen(value) : 0);
}

int rec_pair_set_device_key(struct rec_pair *p, const char *key, size_t len) {
  char *v;
  if (p->opts && p->opts->hash_device_key) {
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, key, len);
    SHA256_Final(d, &c);
    v = arena_get(&p->arena, 65);
    if (v)
      hex(v, d, 32);
  } else {
    v = dup_n(p, key, len);
  }
  if (!v)
    return CUT_ERR_NOMEM;
  p->device_key = v;
  return 0;
}

/* The old string stays in the arena until the pair is freed. */
static int replace(struct rec_pair *p, char **slot, const char *s, size_t n) {
  char *d = dup_n(p, s, n);
  if (!d)
    return CUT_ERR_NOMEM;
  *slot = d;
  return 0;
}

int rec_pair_set_request(struct rec_pair *p, const char *method, const char *authority,
                         const char *path) {
  method = method ? method : "";
  authority = authority ? authority : "";
  path = path ? path : "";
  const char *q = strchr(path, '?');
  size_t plen = q ? (size_t)(q - path) : strlen(path);
  const char *query = q ? q + 1 : "";
  if (replace(p, &p->request.method, method, strlen(method)) ||
      replace(p, &p->request.authority, authority, strlen(authority)) ||
      replace(p, &p->request.path, path, plen) ||
      replace(p, &p->request.query, query, strlen(query)))
    return CUT_ERR_NOMEM;
  return 0;
}

static int header_add(const struct rec_pair *p, struct rec_kvs *l, const char *name,
                      size_t namelen, const char *value, size_t valuelen) {
  /* the name is lower-cased in place of the copy: one allocation per field */
  if (rec_redact_match(p->opts ? p->opts->redact : NULL, name, namelen))
    return kvs_put(l, name, namelen, REC_REDACTED, strlen(REC_REDACTED), 1);
  return kvs_put(l, name, namelen, value, valuelen, 1);
}

int rec_pair_request_header(struct rec_pair *p, const char *name, size_t namelen,
                            const char *value, size_t valuelen) {
  return header_add(p, &p->request.headers, name, namelen, value, valuelen);
}

static uint64_t body_cap(const struct rec_pair *p) {
  return p->opts ? p->opts->max_body : UINT64_MAX;
}

int rec_pair_request_body(struct rec_pair *p, const uint8_t *data, size_t len) {
  return rec_body_append(&p->request.body, body_cap(p), data, len);
}

int rec_pair_add_response(struct rec_pair *p, enum rec_side side, const char *backend,
                          struct rec_response **out) {
  if ((side == REC_SIDE_PRIMARY && p->primary) ||
      (side == REC_SIDE_PRIMARY_REPEAT && p->primary_repeat))
    return CUT_ERR_EXISTS;
  struct rec_response *r = rec_pair_response_alloc(p);
  if (!r)
    return CUT_ERR_NOMEM;
  r->backend = dup_s(p, backend);
  r->host = dup_s(p, "");
  if (!r->backend || !r->host)
    return CUT_ERR_NOMEM;
  switch (side) {
  case REC_SIDE_PRIMARY:
    p->primary = r;
    break;
  case REC_SIDE_PRIMARY_REPEAT:
    p->primary_repeat = r;
    break;
  case REC_SIDE_SHADOW: {
    /* the array doubles; an outgrown one stays in the arena */
    size_t n = p->nshadows;
    if ((n & (n - 1)) == 0) { /* 0, 1, 2, 4, ...: full */
      struct rec_response **ns = arena_get(&p->arena, (n ? 2 * n : 1) * sizeof *ns);
      if (!ns)
        return CUT_ERR_NOMEM;
      if (n)
        memcpy(ns, p->shadows, n * sizeof *ns);
      p->shadows = ns;
    }
    p->shadows[p->nshadows++] = r;
    break;
  }
  }
  if (out)
    *out = r;
  return 0;
}

int rec_response_set_status(struct rec_pair *p, struct rec_response *r, int status,
                            const char *host) {
  r->status = status;
  if (host)
    return replace(p, &r->host, host, strlen(host));
  return 0;
}

int rec_response_header(struct rec_pair *p, struct rec_response *r, const char *name,
                        size_t namelen, const char *value, size_t valuelen) {
  int rc = header_add(p, &r->headers, name, namelen, value, valuelen);
  if (rc)
    return rc;
  if (p->opts && list_match(p->opts->lineage, name, namelen) &&
      !rec_redact_match(p->opts->redact, name, namelen)) {
    rc = rec_lineage_parse(&r->lineage, value, valuelen);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int rec_response_body(struct rec_pair *p, struct rec_response *r, const uint8_t *data, size_t len) {
  return rec_body_append(&r->body, body_cap(p), data, len);
}

int rec_response_finish(struct rec_pair *p, struct rec_response *r, int64_t latency_us,
                        const char *error) {
  r->latency_us = latency_us;
  r->body.ended = 1; /* the checksum waits for rec_pair_finish, off the worker */
  if (error && replace(p, &r->error, error, strlen(error)))
    return CUT_ERR_NOMEM;
  return 0;
}

void rec_pair_finish(struct rec_pair *p) {
  rec_body_finish(&p->request.body);
  if (p->primary)
    rec_body_finish(&p->primary->body);
  for (size_t i = 0; i < p->nshadows; i++)
    rec_body_finish(&p->shadows[i]->body);
  if (p->primary_repeat)
    rec_body_finish(&p->primary_repeat->body);
}
