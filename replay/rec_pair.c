/* rec_pair: building a recorded pair: redaction, body caps, checksums, lineage. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/cut_err.h"
#include "replay/rec_pair.h"

static const char *const default_redact[] = {"authorization", "cookie", "set-cookie"};

/* OpenSSL 3 looks EVP_sha256() up in its provider table on every init, under
 * a lock; fetch it once for the process instead (a few hundred ns per body). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

static const EVP_MD *sha256(void) {
  pthread_once(&sha256_once, sha256_fetch);
  return sha256_md ? sha256_md : EVP_sha256();
}

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d)
    return NULL;
  if (n)
    memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

static char *dup_s(const char *s) { return dup_n(s ? s : "", s ? strlen(s) : 0); }

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
static char *kv_block(const char *k, size_t klen, const char *v, size_t vlen, int lower,
                      char **value) {
  char *b = malloc(klen + vlen + 2);
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

static int kvs_put(struct rec_kvs *l, const char *k, size_t klen, const char *v, size_t vlen,
                   int lower) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    struct rec_kv *nv = realloc(l->v, cap * sizeof *nv);
    if (!nv)
      return CUT_ERR_NOMEM;
    l->v = nv;
    l->cap = cap;
  }
  struct rec_kv *e = &l->v[l->n];
  if (!(e->key = kv_block(k, klen, v, vlen, lower, &e->value)))
    return CUT_ERR_NOMEM;
  l->n++;
  return 0;
}

int rec_kvs_append(struct rec_kvs *l, const char *k, size_t klen, const char *v, size_t vlen) {
  return kvs_put(l, k, klen, v, vlen, 0);
}

int rec_kvs_set(struct rec_kvs *l, const char *k, size_t klen, const char *v, size_t vlen) {
  for (size_t i = 0; i < l->n; i++) {
    if (strlen(l->v[i].key) == klen && memcmp(l->v[i].key, k, klen) == 0) {
      char *value;
      char *b = kv_block(k, klen, v, vlen, 0, &value);
      if (!b)
        return CUT_ERR_NOMEM;
      free(l->v[i].key);
      l->v[i].key = b;
      l->v[i].value = value;
      return 0;
    }
  }
  return rec_kvs_append(l, k, klen, v, vlen);
}

void rec_kvs_clear(struct rec_kvs *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i].key); /* the value shares the key's block */
  free(l->v);
  memset(l, 0, sizeof *l);
}

/* ---- bodies ---- */

static int body_md_start(struct rec_body *b) {
  if (b->md || b->sha256[0])
    return 0;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (!md)
    return CUT_ERR_NOMEM;
  if (EVP_DigestInit_ex(md, sha256(), NULL) != 1) {
    EVP_MD_CTX_free(md);
    return CUT_ERR_NOMEM;
  }
  b->md = md;
  return 0;
}

int rec_body_append(struct rec_body *b, uint64_t cap, const uint8_t *data, size_t len) {
  if (b->sha256[0])
    return CUT_ERR_STATE; /* finished */
  int rc = body_md_start(b);
  if (rc)
    return rc;
  if (len == 0)
    return 0;
  if (b->len < cap) {
    size_t take = (size_t)((cap - b->len) < len ? (cap - b->len) : len);
    uint8_t *nd = realloc(b->data, b->len + take);
    if (!nd)
      return CUT_ERR_NOMEM;
    memcpy(nd + b->len, data, take);
    b->data = nd;
    b->len += take;
  }
  EVP_DigestUpdate(b->md, data, len);
  b->size += len;
  b->truncated = b->size > b->len;
  return 0;
}

void rec_body_finish(struct rec_body *b) {
  if (b->sha256[0])
    return;
  uint8_t d[32];
  unsigned int dl = 0;
  if (b->md) {
    EVP_DigestFinal_ex(b->md, d, &dl);
    EVP_MD_CTX_free(b->md);
    b->md = NULL;
  } else {
    /* Never streamed: the digest of the empty body. */
    EVP_Digest("", 0, d, &dl, sha256(), NULL);
  }
  hex(b->sha256, d, 32);
}

void rec_body_clear(struct rec_body *b) {
  free(b->data);
  if (b->md)
    EVP_MD_CTX_free(b->md);
  memset(b, 0, sizeof *b);
}

/* ---- lists ---- */

int rec_redact_match(const struct cfg_strlist *list, const char *name, size_t namelen) {
  if (!list) {
    for (size_t i = 0; i < sizeof default_redact / sizeof default_redact[0]; i++)
      if (strlen(default_redact[i]) == namelen && strncasecmp(default_redact[i], name, namelen) == 0)
        return 1;
    return 0;
  }
  for (size_t i = 0; i < list->n; i++)
    if (strlen(list->v[i]) == namelen && strncasecmp(list->v[i], name, namelen) == 0)
      return 1;
  return 0;
}

static int list_match(const struct cfg_strlist *list, const char *name, size_t namelen) {
  if (!list)
    return 0;
  for (size_t i = 0; i < list->n; i++)
    if (strlen(list->v[i]) == namelen && strncasecmp(list->v[i], name, namelen) == 0)
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

int rec_pair_new(struct rec_pair **out, const struct rec_opts *opts, const char *correlation_id,
                 int64_t time_us, const char *route) {
  if (!out || !correlation_id)
    return CUT_ERR_INVALID;
  struct rec_pair *p = calloc(1, sizeof *p);
  if (!p)
    return CUT_ERR_NOMEM;
  p->opts = opts;
  p->kind = REC_KIND_PAIR;
  p->time_us = time_us;
  p->correlation_id = dup_s(correlation_id);
  p->source = dup_s(opts && opts->source ? opts->source : "proxy");
  p->route = dup_s(route);
  p->request.method = dup_s("");
  p->request.authority = dup_s("");
  p->request.path = dup_s("");
  p->request.query = dup_s("");
  if (!p->correlation_id || !p->source || !p->route || !p->request.method ||
      !p->request.authority || !p->request.path || !p->request.query) {
    rec_pair_free(p);
    return CUT_ERR_NOMEM;
  }
  *out = p;
  return 0;
}

void rec_response_free(struct rec_response *r) {
  if (!r)
    return;
  free(r->backend);
  free(r->host);
  rec_kvs_clear(&r->headers);
  rec_body_clear(&r->body);
  free(r->error);
  rec_kvs_clear(&r->lineage);
  free(r);
}

void rec_pair_free(struct rec_pair *p) {
  if (!p)
    return;
  free(p->correlation_id);
  free(p->source);
  free(p->route);
  rec_kvs_clear(&p->decision);
  free(p->device_key);
  free(p->request.method);
  free(p->request.authority);
  free(p->request.path);
  free(p->request.query);
  rec_kvs_clear(&p->request.headers);
  rec_body_clear(&p->request.body);
  rec_response_free(p->primary);
  for (size_t i = 0; i < p->nshadows; i++)
    rec_response_free(p->shadows[i]);
  free(p->shadows);
  rec_response_free(p->primary_repeat);
  free(p);
}

static size_t response_size(const struct rec_response *r) {
  return r ? sizeof *r + r->body.len + (r->headers.n + r->lineage.n) * 64 : 0;
}

size_t rec_pair_mem_size(const struct rec_pair *p) {
  size_t n = sizeof *p + p->request.body.len + (p->request.headers.n + p->decision.n) * 64;
  n += response_size(p->primary) + response_size(p->primary_repeat);
  for (size_t i = 0; i < p->nshadows; i++)
    n += response_size(p->shadows[i]);
  return n;
}

int rec_pair_decision_set(struct rec_pair *p, const char *key, const char *value) {
  return rec_kvs_set(&p->decision, key, strlen(key), value ? value : "", value ? strlen(value) : 0);
}

int rec_pair_set_device_key(struct rec_pair *p, const char *key, size_t len) {
  char *v;
  if (p->opts && p->opts->hash_device_key) {
    uint8_t d[32];
    unsigned int dl = 0;
    if (EVP_Digest(key, len, d, &dl, sha256(), NULL) != 1)
      return CUT_ERR_NOMEM;
    v = malloc(65);
    if (v)
      hex(v, d, 32);
  } else {
    v = dup_n(key, len);
  }
  if (!v)
    return CUT_ERR_NOMEM;
  free(p->device_key);
  p->device_key = v;
  return 0;
}

static int replace(char **slot, const char *s, size_t n) {
  char *d = dup_n(s, n);
  if (!d)
    return CUT_ERR_NOMEM;
  free(*slot);
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
  if (replace(&p->request.method, method, strlen(method)) ||
      replace(&p->request.authority, authority, strlen(authority)) ||
      replace(&p->request.path, path, plen) || replace(&p->request.query, query, strlen(query)))
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
  struct rec_response *r = calloc(1, sizeof *r);
  if (!r)
    return CUT_ERR_NOMEM;
  r->backend = dup_s(backend);
  r->host = dup_s("");
  if (!r->backend || !r->host) {
    rec_response_free(r);
    return CUT_ERR_NOMEM;
  }
  switch (side) {
  case REC_SIDE_PRIMARY:
    p->primary = r;
    break;
  case REC_SIDE_PRIMARY_REPEAT:
    p->primary_repeat = r;
    break;
  case REC_SIDE_SHADOW: {
    struct rec_response **ns = realloc(p->shadows, (p->nshadows + 1) * sizeof *ns);
    if (!ns) {
      rec_response_free(r);
      return CUT_ERR_NOMEM;
    }
    p->shadows = ns;
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
  (void)p;
  r->status = status;
  if (host)
    return replace(&r->host, host, strlen(host));
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
  (void)p;
  r->latency_us = latency_us;
  if (error && replace(&r->error, error, strlen(error)))
    return CUT_ERR_NOMEM;
  rec_body_finish(&r->body);
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
