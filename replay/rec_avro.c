/* rec_avro: Parsing Canonical Form, CRC-64-AVRO, and pair <-> Avro single-object records. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "common/cut_err.h"
#include "common/sbuf.h"
#include "replay/rec_avro.h"
#include "replay/rec_pair_int.h"
#include "replay/rec_avro_int.h"
#include "replay/rec_schema_text.h"

const char *rec_schema_text_get(size_t *len) {
  if (len)
    *len = REC_SCHEMA_TEXT_LEN;
  return (const char *)rec_schema_text;
}

/* ---- Parsing Canonical Form ---- */

/* A JSON string literal; names and symbols are plain ASCII, but escape anyway. */
static void json_str(struct sbuf *b, const char *s) { sb_json(b, s, strlen(s)); }

static int is_primitive(const char *t) {
  static const char *const prims[] = {"null", "boolean", "int", "long", "float",
                                      "double", "bytes", "string"};
  for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++)
    if (strcmp(t, prims[i]) == 0)
      return 1;
  return 0;
}

struct canon {
  struct sbuf out;
  json_t *seen; /* object used as a set of defined full names */
  char *err;
  size_t errlen;
  int failed;
};

static void canon_fail(struct canon *c, const char *msg) {
  if (!c->failed)
    cut_errf(c->err, c->errlen, CUT_ERR_PARSE, "schema: %s", msg);
  c->failed = 1;
}

/* fullname of `name` in namespace `ns` ("" = none), into a malloc'ed string. */
static char *fullname(const char *name, const char *ns) {
  size_t n = strlen(name) + strlen(ns) + 2;
  char *f = malloc(n);
  if (!f)
    return NULL;
  if (strchr(name, '.') || !*ns)
    snprintf(f, n, "%s", name);
  else
    snprintf(f, n, "%s.%s", ns, name);
  return f;
}

static void canon_node(struct canon *c, json_t *node, const char *ns);

static void canon_named(struct canon *c, json_t *node, const char *type, const char *ns) {
  const char *name = json_string_value(json_object_get(node, "name"));
  if (!name) {
    canon_fail(c, "named type without a name");
    return;
  }
  const char *nsattr = json_string_value(json_object_get(node, "namespace"));
  char *full = fullname(name, strchr(name, '.') ? "" : (nsattr ? nsattr : ns));
  if (!full) {
    c->out.oom = 1;
    return;
  }
  if (json_object_get(c->seen, full)) {
    /* Defined earlier: canonical form refers to it by name. */
    json_str(&c->out, full);
    free(full);
    return;
  }
  json_object_set_new(c->seen, full, json_true());
  /* Names inside take the namespace of this type's full name. */
  char *inner = strdup(full);
  if (!inner) {
    c->out.oom = 1;
    free(full);
    return;
  }
  char *dot = strrchr(inner, '.');
  if (dot)
    *dot = '\0';
  else
    inner[0] = '\0';
  sb_puts(&c->out, "{\"name\":");
  json_str(&c->out, full);
  sb_puts(&c->out, ",\"type\":");
  json_str(&c->out, type);
  if (!strcmp(type, "record") || !strcmp(type, "error")) {
    json_t *fields = json_object_get(node, "fields");
    if (!json_is_array(fields)) {
      canon_fail(c, "record without fields");
    } else {
      sb_puts(&c->out, ",\"fields\":[");
      for (size_t i = 0; i < json_array_size(fields); i++) {
        json_t *f = json_array_get(fields, i);
        const char *fname = json_string_value(json_object_get(f, "name"));
        json_t *ftype = json_object_get(f, "type");
        if (!fname || !ftype) {
          canon_fail(c, "field without name or type");
          break;
        }
        if (i)
          sb_puts(&c->out, ",");
        sb_puts(&c->out, "{\"name\":");
        json_str(&c->out, fname);
        sb_puts(&c->out, ",\"type\":");
        canon_node(c, ftype, inner);
        sb_puts(&c->out, "}");
      }
      sb_puts(&c->out, "]");
    }
  } else if (!strcmp(type, "enum")) {
    json_t *syms = json_object_get(node, "symbols");
    sb_puts(&c->out, ",\"symbols\":[");
    for (size_t i = 0; i < json_array_size(syms); i++) {
      const char *s = json_string_value(json_array_get(syms, i));
      if (!s) {
        canon_fail(c, "enum symbol is not a string");
        break;
      }
      if (i)
        sb_puts(&c->out, ",");
      json_str(&c->out, s);
    }
    sb_puts(&c->out, "]");
  } else { /* fixed */
    json_t *size = json_object_get(node, "size");
    if (!json_is_integer(size)) {
      canon_fail(c, "fixed without an integer size");
    } else {
      char num[32];
      snprintf(num, sizeof num, ",\"size\":%lld", (long long)json_integer_value(size));
      sb_puts(&c->out, num);
    }
  }
  sb_puts(&c->out, "}");
  free(inner);
  free(full);
}

static void canon_node(struct canon *c, json_t *node, const char *ns) {
  if (c->failed || c->out.oom)
    return;
  if (json_is_string(node)) {
    const char *s = json_string_value(node);
    if (is_primitive(s)) {
      json_str(&c->out, s);
    } else {
      char *full = fullname(s, ns);
      if (!full) {
        c->out.oom = 1;
        return;
      }
      json_str(&c->out, full);
      free(full);
    }
    return;
  }
  if (json_is_array(node)) { /* union */
    sb_puts(&c->out, "[");
    for (size_t i = 0; i < json_array_size(node); i++) {
      if (i)
        sb_puts(&c->out, ",");
      canon_node(c, json_array_get(node, i), ns);
    }
    sb_puts(&c->out, "]");
    return;
  }
  if (!json_is_object(node)) {
    canon_fail(c, "a type must be a string, an array or an object");
    return;
  }
  json_t *t = json_object_get(node, "type");
  if (!json_is_string(t)) {
    if (t) /* {"type": {...}} or {"type": [...]}: the inner type is the type */
      canon_node(c, t, ns);
    else
      canon_fail(c, "object without a type");
    return;
  }
  const char *type = json_string_value(t);
  if (is_primitive(type)) {
    json_str(&c->out, type); /* drops logicalType and every other attribute */
  } else if (!strcmp(type, "record") || !strcmp(type, "error") || !strcmp(type, "enum") ||
             !strcmp(type, "fixed")) {
    canon_named(c, node, type, ns);
  } else if (!strcmp(type, "array")) {
    sb_puts(&c->out, "{\"type\":\"array\",\"items\":");
    canon_node(c, json_object_get(node, "items"), ns);
    sb_puts(&c->out, "}");
  } else if (!strcmp(type, "map")) {
    sb_puts(&c->out, "{\"type\":\"map\",\"values\":");
    canon_node(c, json_object_get(node, "values"), ns);
    sb_puts(&c->out, "}");
  } else {
    canon_node(c, t, ns); /* a reference to a named type */
  }
}

int rec_schema_canonical(const char *json, size_t len, char **out, char *err, size_t errlen) {
  json_error_t jerr;
  json_t *root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
  if (!root)
    return cut_errf(err, errlen, CUT_ERR_PARSE, "schema: line %d: %s", jerr.line, jerr.text);
  struct canon c = {.seen = json_object(), .err = err, .errlen = errlen};
  if (!c.seen) {
    json_decref(root);
    return CUT_ERR_NOMEM;
  }
  canon_node(&c, root, "");
  json_decref(root);
  json_decref(c.seen);
  if (c.failed) {
    sb_clear(&c.out);
    return CUT_ERR_PARSE;
  }
  char *text = sb_take(&c.out, NULL);
  if (!text)
    return CUT_ERR_NOMEM;
  *out = text;
  return 0;
}

/* ---- CRC-64-AVRO ---- */

#define REC_RABIN_EMPTY 0xc15d213aa4d7a795ULL

static uint64_t rabin_table[256];
static pthread_once_t rabin_once = PTHREAD_ONCE_INIT;

static void rabin_init(void) {
  for (int i = 0; i < 256; i++) {
    uint64_t fp = (uint64_t)i;
    for (int j = 0; j < 8; j++)
      fp = (fp >> 1) ^ (REC_RABIN_EMPTY & (0 - (fp & 1)));
    rabin_table[i] = fp;
  }
}

uint64_t rec_rabin64(const void *data, size_t len) {
  pthread_once(&rabin_once, rabin_init);
  const uint8_t *p = data;
  uint64_t fp = REC_RABIN_EMPTY;
  for (size_t i = 0; i < len; i++)
    fp = (fp >> 8) ^ rabin_table[(fp ^ p[i]) & 0xff];
  return fp;
}

static uint64_t schema_fp;
static pthread_once_t schema_fp_once = PTHREAD_ONCE_INIT;

static void schema_fp_init(void) {
  char *canon = NULL;
  size_t len;
  const char *text = rec_schema_text_get(&len);
  /* The shipped schema is checked by the unit tests; this cannot fail short of OOM. */
  if (rec_schema_canonical(text, len, &canon, NULL, 0) == 0)
    schema_fp = rec_rabin64(canon, strlen(canon));
  free(canon);
}

uint64_t rec_schema_fingerprint(void) {
  pthread_once(&schema_fp_once, schema_fp_init);
  return schema_fp;
}

void rec_soe_header(uint8_t out[REC_SOE_HEADER_LEN]) {
  uint64_t fp = rec_schema_fingerprint();
  out[0] = 0xC3;
  out[1] = 0x01;
  for (int i = 0; i < 8; i++)
    out[2 + i] = (uint8_t)(fp >> (8 * i));
}

/* ---- codec ---- */

struct rec_codec {
  avro_schema_t schema;
  avro_value_iface_t *iface;
  avro_value_t value;
  int has_value;
  uint8_t *buf; /* rec_codec_encode_reuse's */
  size_t bufcap;
};

int rec_codec_new(struct rec_codec **out, char *err, size_t errlen) {
  struct rec_codec *c = calloc(1, sizeof *c);
  if (!c)
    return CUT_ERR_NOMEM;
  size_t len;
  const char *text = rec_schema_text_get(&len);
  if (avro_schema_from_json_length(text, len, &c->schema)) {
    cut_errf(err, errlen, CUT_ERR_AVRO, "pair schema: %s", avro_strerror());
    goto fail;
  }
  c->iface = avro_generic_class_from_schema(c->schema);
  if (!c->iface) {
    cut_errf(err, errlen, CUT_ERR_AVRO, "pair schema: %s", avro_strerror());
    goto fail;
  }
  if (avro_generic_value_new(c->iface, &c->value)) {
    cut_errf(err, errlen, CUT_ERR_AVRO, "pair value: %s", avro_strerror());
    goto fail;
  }
  c->has_value = 1;
  *out = c;
  return 0;
fail:
  rec_codec_free(c);
  return CUT_ERR_AVRO;
}

void rec_codec_free(struct rec_codec *c) {
  if (!c)
    return;
  if (c->has_value)
    avro_value_decref(&c->value);
  if (c->iface)
    avro_value_iface_decref(c->iface);
  if (c->schema)
    avro_schema_decref(c->schema);
  free(c->buf);
  free(c);
}

void *rec_codec_schema(struct rec_codec *c) { return c->schema; }

/* Setters: each returns nonzero on failure; chains stop at the first. */
static int set_str(avro_value_t *rec, const char *field, const char *s) {
  avro_value_t v;
  if (avro_value_get_by_name(rec, field, &v, NULL))
    return -1;
  s = s ? s : "";
  return avro_value_set_string_len(&v, s, strlen(s) + 1); /* the length counts the NUL */
}

static int set_long(avro_value_t *rec, const char *field, int64_t n) {
  avro_value_t v;
  return avro_value_get_by_name(rec, field, &v, NULL) || avro_value_set_long(&v, n);
}

static int set_headers(avro_value_t *rec, const char *field, const struct rec_kvs *h) {
  avro_value_t arr, item;
  if (avro_value_get_by_name(rec, field, &arr, NULL))
    return -1;
  for (size_t i = 0; i < h->n; i++) {
    if (avro_value_append(&arr, &item, NULL) || set_str(&item, "name", h->v[i].key) ||
        set_str(&item, "value", h->v[i].value))
      return -1;
  }
  return 0;
}

static int set_map(avro_value_t *rec, const char *field, const struct rec_kvs *m) {
  avro_value_t map, item;
  if (avro_value_get_by_name(rec, field, &map, NULL))
    return -1;
  for (size_t i = 0; i < m->n; i++) {
    const char *v = m->v[i].value ? m->v[i].value : "";
    if (avro_value_add(&map, m->v[i].key, &item, NULL, NULL) ||
        avro_value_set_string_len(&item, v, strlen(v) + 1))
      return -1;
  }
  return 0;
}

static int set_body(avro_value_t *rec, const struct rec_body *b) {
  avro_value_t v;
  if (avro_value_get_by_name(rec, "body", &v, NULL) ||
      avro_value_set_bytes(&v, b->data ? (void *)b->data : (void *)"", b->len))
    return -1;
  if (avro_value_get_by_name(rec, "body_truncated", &v, NULL) ||
      avro_value_set_boolean(&v, b->truncated))
    return -1;
  return set_long(rec, "body_size", (int64_t)b->size);
}

static int set_opt_str(avro_value_t *rec, const char *field, const char *s) {
  avro_value_t u, br;
  if (avro_value_get_by_name(rec, field, &u, NULL))
    return -1;
  if (!s)
    return avro_value_set_branch(&u, 0, &br) || avro_value_set_null(&br);
  return avro_value_set_branch(&u, 1, &br) || avro_value_set_string_len(&br, s, strlen(s) + 1);
}

static int set_response(avro_value_t *r, const struct rec_response *x) {
  avro_value_t v;
  if (set_str(r, "backend", x->backend) || set_str(r, "host", x->host))
    return -1;
  if (avro_value_get_by_name(r, "status", &v, NULL) || avro_value_set_int(&v, x->status))
    return -1;
  if (set_headers(r, "headers", &x->headers) || set_body(r, &x->body) ||
      set_str(r, "body_sha256", x->body.sha256) || set_long(r, "latency_us", x->latency_us) ||
      set_opt_str(r, "error", x->error) || set_map(r, "lineage", &x->lineage))
    return -1;
  return 0;
}

static int set_opt_response(avro_value_t *rec, const char *field, const struct rec_response *x) {
  avro_value_t u, br;
  if (avro_value_get_by_name(rec, field, &u, NULL))
    return -1;
  if (!x)
    return avro_value_set_branch(&u, 0, &br) || avro_value_set_null(&br);
  return avro_value_set_branch(&u, 1, &br) || set_response(&br, x);
}

static int fill(avro_value_t *rec, const struct rec_pair *p) {
  avro_value_t v, req, arr, item;
  if (set_str(rec, "correlation_id", p->correlation_id) || set_long(rec, "time_us", p->time_us))
    return -1;
  if (avro_value_get_by_name(rec, "kind", &v, NULL) || avro_value_set_enum(&v, (int)p->kind))
    return -1;
  if (set_str(rec, "source", p->source) || set_str(rec, "route", p->route) ||
      set_map(rec, "decision", &p->decision) || set_opt_str(rec, "device_key", p->device_key))
    return -1;
  if (avro_value_get_by_name(rec, "request", &req, NULL) ||
      set_str(&req, "method", p->request.method) ||
      set_str(&req, "authority", p->request.authority) || set_str(&req, "path", p->request.path) ||
      set_str(&req, "query", p->request.query) ||
      set_headers(&req, "headers", &p->request.headers) || set_body(&req, &p->request.body))
    return -1;
  if (set_opt_response(rec, "primary", p->primary))
    return -1;
  if (avro_value_get_by_name(rec, "shadows", &arr, NULL))
    return -1;
  for (size_t i = 0; i < p->nshadows; i++)
    if (avro_value_append(&arr, &item, NULL) || set_response(&item, p->shadows[i]))
      return -1;
  return set_opt_response(rec, "primary_repeat", p->primary_repeat);
}

/*
 * The direct encoder. It writes the Avro binary encoding of a Pair field by
 * field, in schema order, without avro-c's generic values (which copy every
 * string into a value tree and walk it twice: about 5 us per pair against
 * well under 1 us here). The schema-driven encoder below stays as the
 * reference: the unit tests check that both produce the same bytes, and
 * that avro-c decodes them with the embedded schema.
 */
struct wbuf {
  uint8_t *p;
  size_t len, cap;
  int oom;
};

static void w_reserve(struct wbuf *w, size_t n) {
  if (w->oom || w->len + n <= w->cap)
    return;
  size_t cap = w->cap ? w->cap : 256;
  while (cap < w->len + n)
    cap *= 2;
  uint8_t *np = realloc(w->p, cap);
  if (!np) {
    w->oom = 1;
    return;
  }
  w->p = np;
  w->cap = cap;
}

static void w_long(struct wbuf *w, int64_t v) {
  uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zigzag */
  w_reserve(w, 10);
  if (w->oom)
    return;
  do {
    uint8_t b = u & 0x7f;
    u >>= 7;
    w->p[w->len++] = (uint8_t)(b | (u ? 0x80 : 0));
  } while (u);
}

static void w_raw(struct wbuf *w, const void *d, size_t n) {
  w_reserve(w, n);
  if (w->oom || n == 0)
    return;
  memcpy(w->p + w->len, d, n);
  w->len += n;
}

static void w_bytes(struct wbuf *w, const void *d, size_t n) {
  w_long(w, (int64_t)n);
  w_raw(w, d, n);
}

static void w_str(struct wbuf *w, const char *s) {
  s = s ? s : "";
  w_bytes(w, s, strlen(s));
}

static void w_bool(struct wbuf *w, int b) {
  uint8_t v = b ? 1 : 0;
  w_raw(w, &v, 1);
}

/* An array of Header records, or a map of strings: one block, then 0. */
static void w_kvs(struct wbuf *w, const struct rec_kvs *l) {
  if (l->n) {
    w_long(w, (int64_t)l->n);
    for (size_t i = 0; i < l->n; i++) {
      w_bytes(w, l->v[i].key, l->v[i].klen);
      w_bytes(w, l->v[i].value, l->v[i].vlen);
    }
  }
  w_long(w, 0);
}

static void w_body(struct wbuf *w, const struct rec_body *b) {
  w_bytes(w, b->data, b->len);
  w_bool(w, b->truncated);
  w_long(w, (int64_t)b->size);
}

static void w_response(struct wbuf *w, const struct rec_response *r) {
  w_str(w, r->backend);
  w_str(w, r->host);
  w_long(w, r->status);
  w_kvs(w, &r->headers);
  w_body(w, &r->body);
  w_str(w, r->body.sha256);
  w_long(w, r->latency_us);
  if (r->error) {
    w_long(w, 1);
    w_str(w, r->error);
  } else {
    w_long(w, 0);
  }
  w_kvs(w, &r->lineage);
}

static void w_opt_response(struct wbuf *w, const struct rec_response *r) {
  w_long(w, r ? 1 : 0);
  if (r)
    w_response(w, r);
}

static void w_pair(struct wbuf *w, const struct rec_pair *p) {
  w_str(w, p->correlation_id);
  w_long(w, p->time_us);
  w_long(w, (int64_t)p->kind);
  w_str(w, p->source);
  w_str(w, p->route);
  w_kvs(w, &p->decision);
  w_long(w, p->device_key ? 1 : 0);
  if (p->device_key)
    w_str(w, p->device_key);
  w_str(w, p->request.method);
  w_str(w, p->request.authority);
  w_str(w, p->request.path);
  w_str(w, p->request.query);
  w_kvs(w, &p->request.headers);
  w_body(w, &p->request.body);
  w_opt_response(w, p->primary);
  if (p->nshadows) {
    w_long(w, (int64_t)p->nshadows);
    for (size_t i = 0; i < p->nshadows; i++)
      w_response(w, p->shadows[i]);
  }
  w_long(w, 0);
  w_opt_response(w, p->primary_repeat);
}

/* Encodes into w (which keeps its memory). */
static int encode_into(struct wbuf *w, struct rec_pair *p) {
  rec_pair_finish(p);
  size_t guess = 512 + p->request.body.len;
  if (p->primary)
    guess += p->primary->body.len;
  for (size_t i = 0; i < p->nshadows; i++)
    guess += p->shadows[i]->body.len + 256;
  w->len = 0;
  w->oom = 0;
  w_reserve(w, guess);
  uint8_t h[REC_SOE_HEADER_LEN];
  rec_soe_header(h);
  w_raw(w, h, sizeof h);
  w_pair(w, p);
  return w->oom ? CUT_ERR_NOMEM : 0;
}

int rec_codec_encode(struct rec_codec *c, struct rec_pair *p, uint8_t **out, size_t *outlen) {
  (void)c;
  struct wbuf w = {0};
  if (encode_into(&w, p)) {
    free(w.p);
    return CUT_ERR_NOMEM;
  }
  *out = w.p;
  *outlen = w.len;
  return 0;
}

/* The codec's buffer is reused from record to record: no allocation per
 * record once it has grown to the largest one (it is trimmed back when a
 * rare big record left it much larger than needed). */
#define KEEP_BUF (256u << 10)

int rec_codec_encode_reuse(struct rec_codec *c, struct rec_pair *p, const uint8_t **out,
                           size_t *outlen) {
  if (c->bufcap > KEEP_BUF) { /* a rare big record: do not keep its buffer */
    free(c->buf);
    c->buf = NULL;
    c->bufcap = 0;
  }
  struct wbuf w = {c->buf, 0, c->bufcap, 0};
  int rc = encode_into(&w, p);
  c->buf = w.p;
  c->bufcap = w.cap;
  if (rc)
    return rc;
  *out = w.p;
  *outlen = w.len;
  return 0;
}

int rec_codec_encode_generic(struct rec_codec *c, struct rec_pair *p, uint8_t **out,
                             size_t *outlen) {
  rec_pair_finish(p);
  avro_value_reset(&c->value);
  if (fill(&c->value, p))
    return CUT_ERR_AVRO;
  size_t size = 0;
  if (avro_value_sizeof(&c->value, &size))
    return CUT_ERR_AVRO;
  uint8_t *buf = malloc(REC_SOE_HEADER_LEN + size);
  if (!buf)
    return CUT_ERR_NOMEM;
  rec_soe_header(buf);
  avro_writer_t w = avro_writer_memory((const char *)buf + REC_SOE_HEADER_LEN, (int64_t)size);
  if (!w) {
    free(buf);
    return CUT_ERR_NOMEM;
  }
  int rc = avro_value_write(w, &c->value);
  avro_writer_free(w);
  if (rc) {
    free(buf);
    return CUT_ERR_AVRO;
  }
  *out = buf;
  *outlen = REC_SOE_HEADER_LEN + size;
  return 0;
}

/* ---- decoding ---- */

/* Decoded strings, lists and bodies go into the new pair's arena. */
static char *get_str(struct rec_pair *p, avro_value_t *rec, const char *field) {
  avro_value_t v;
  const char *s = NULL;
  size_t n = 0;
  if (avro_value_get_by_name(rec, field, &v, NULL) || avro_value_get_string(&v, &s, &n))
    return NULL;
  return rec_pair_strndup(p, s ? s : "", n ? n - 1 : 0);
}

static int get_long(avro_value_t *rec, const char *field, int64_t *out) {
  avro_value_t v;
  return avro_value_get_by_name(rec, field, &v, NULL) || avro_value_get_long(&v, out);
}

static int get_headers(avro_value_t *rec, const char *field, struct rec_kvs *h) {
  avro_value_t arr, item, nv, vv;
  size_t n;
  if (avro_value_get_by_name(rec, field, &arr, NULL) || avro_value_get_size(&arr, &n))
    return -1;
  for (size_t i = 0; i < n; i++) {
    const char *name, *value;
    size_t nl, vl;
    if (avro_value_get_by_index(&arr, i, &item, NULL) ||
        avro_value_get_by_name(&item, "name", &nv, NULL) ||
        avro_value_get_by_name(&item, "value", &vv, NULL) ||
        avro_value_get_string(&nv, &name, &nl) || avro_value_get_string(&vv, &value, &vl) ||
        rec_kvs_append(h, name, nl ? nl - 1 : 0, value, vl ? vl - 1 : 0))
      return -1;
  }
  return 0;
}

static int get_map(avro_value_t *rec, const char *field, struct rec_kvs *m) {
  avro_value_t map, item;
  size_t n;
  if (avro_value_get_by_name(rec, field, &map, NULL) || avro_value_get_size(&map, &n))
    return -1;
  for (size_t i = 0; i < n; i++) {
    const char *key, *value;
    size_t vl;
    if (avro_value_get_by_index(&map, i, &item, &key) || avro_value_get_string(&item, &value, &vl) ||
        rec_kvs_append(m, key, strlen(key), value, vl ? vl - 1 : 0))
      return -1;
  }
  return 0;
}

static int get_body(struct rec_pair *p, avro_value_t *rec, struct rec_body *b) {
  avro_value_t v;
  const void *data;
  size_t len;
  int trunc;
  int64_t size;
  if (avro_value_get_by_name(rec, "body", &v, NULL) || avro_value_get_bytes(&v, &data, &len))
    return -1;
  if (len) {
    b->data = rec_pair_alloc(p, len);
    if (!b->data)
      return -1;
    memcpy(b->data, data, len);
    b->len = b->room = len;
  }
  if (avro_value_get_by_name(rec, "body_truncated", &v, NULL) ||
      avro_value_get_boolean(&v, &trunc) || get_long(rec, "body_size", &size))
    return -1;
  b->truncated = trunc;
  b->size = (uint64_t)size;
  return 0;
}

/* Returns 1 and the branch when the optional union holds a value, 0 for null, -1 on error. */
static int get_opt(avro_value_t *rec, const char *field, avro_value_t *branch) {
  avro_value_t u;
  int d;
  if (avro_value_get_by_name(rec, field, &u, NULL) || avro_value_get_discriminant(&u, &d) ||
      avro_value_get_current_branch(&u, branch))
    return -1;
  return d == 1;
}

static int get_opt_str(struct rec_pair *p, avro_value_t *rec, const char *field, char **out) {
  avro_value_t br;
  const char *s;
  size_t n;
  int has = get_opt(rec, field, &br);
  if (has <= 0)
    return has;
  if (avro_value_get_string(&br, &s, &n))
    return -1;
  *out = rec_pair_strndup(p, s, n ? n - 1 : 0);
  return *out ? 0 : -1;
}

static struct rec_response *get_response(struct rec_pair *p, avro_value_t *r) {
  struct rec_response *x = rec_pair_response_alloc(p);
  avro_value_t v;
  int32_t status;
  if (!x)
    return NULL;
  x->backend = get_str(p, r, "backend");
  x->host = get_str(p, r, "host");
  char *sha = get_str(p, r, "body_sha256");
  if (!x->backend || !x->host || !sha)
    return NULL;
  snprintf(x->body.sha256, sizeof x->body.sha256, "%s", sha);
  x->body.ended = 1;
  if (avro_value_get_by_name(r, "status", &v, NULL) || avro_value_get_int(&v, &status))
    return NULL;
  x->status = status;
  if (get_headers(r, "headers", &x->headers) || get_body(p, r, &x->body) ||
      get_long(r, "latency_us", &x->latency_us) || get_opt_str(p, r, "error", &x->error) < 0 ||
      get_map(r, "lineage", &x->lineage))
    return NULL;
  return x;
}

static int get_opt_response(struct rec_pair *p, avro_value_t *rec, const char *field,
                            struct rec_response **out) {
  avro_value_t br;
  int has = get_opt(rec, field, &br);
  if (has <= 0)
    return has;
  *out = get_response(p, &br);
  return *out ? 0 : -1;
}

static int extract(avro_value_t *rec, struct rec_pair *p) {
  avro_value_t v, req, arr, item;
  int kind;
  size_t n;
  if (!(p->correlation_id = get_str(p, rec, "correlation_id")) ||
      get_long(rec, "time_us", &p->time_us))
    return -1;
  if (avro_value_get_by_name(rec, "kind", &v, NULL) || avro_value_get_enum(&v, &kind))
    return -1;
  p->kind = (enum rec_kind)kind;
  if (!(p->source = get_str(p, rec, "source")) || !(p->route = get_str(p, rec, "route")) ||
      get_map(rec, "decision", &p->decision) ||
      get_opt_str(p, rec, "device_key", &p->device_key) < 0)
    return -1;
  if (avro_value_get_by_name(rec, "request", &req, NULL) ||
      !(p->request.method = get_str(p, &req, "method")) ||
      !(p->request.authority = get_str(p, &req, "authority")) ||
      !(p->request.path = get_str(p, &req, "path")) ||
      !(p->request.query = get_str(p, &req, "query")) ||
      get_headers(&req, "headers", &p->request.headers) || get_body(p, &req, &p->request.body))
    return -1;
  if (get_opt_response(p, rec, "primary", &p->primary) < 0)
    return -1;
  if (avro_value_get_by_name(rec, "shadows", &arr, NULL) || avro_value_get_size(&arr, &n))
    return -1;
  if (n) {
    size_t cap = 1; /* a power of two, as rec_pair_add_response grows it */
    while (cap < n)
      cap *= 2;
    p->shadows = rec_pair_alloc(p, cap * sizeof *p->shadows);
    if (!p->shadows)
      return -1;
    for (size_t i = 0; i < n; i++) {
      if (avro_value_get_by_index(&arr, i, &item, NULL) ||
          !(p->shadows[i] = get_response(p, &item)))
        return -1;
      p->nshadows++;
    }
  }
  return get_opt_response(p, rec, "primary_repeat", &p->primary_repeat) < 0 ? -1 : 0;
}

/*
 * Checks that buf[*pos..len) holds one well-formed datum of `s` before
 * avro-c reads it: avro-c leaks the buffer of a string cut short and
 * allocates whatever length a corrupt record claims. Returns 0 or -1.
 */
static int read_varint(const uint8_t *buf, size_t len, size_t *pos, int64_t *out) {
  uint64_t u = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= len)
      return -1;
    uint8_t b = buf[(*pos)++];
    u |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
      return 0;
    }
  }
  return -1;
}

static int validate(avro_schema_t s, const uint8_t *buf, size_t len, size_t *pos, int depth) {
  int64_t n;
  if (depth > 32)
    return -1;
  switch (avro_typeof(s)) {
  case AVRO_NULL:
    return 0;
  case AVRO_BOOLEAN:
    if (*pos >= len || buf[*pos] > 1)
      return -1;
    (*pos)++;
    return 0;
  case AVRO_INT32:
  case AVRO_INT64:
    return read_varint(buf, len, pos, &n);
  case AVRO_FLOAT:
  case AVRO_DOUBLE: {
    size_t w = avro_typeof(s) == AVRO_FLOAT ? 4 : 8;
    if (len - *pos < w)
      return -1;
    *pos += w;
    return 0;
  }
  case AVRO_STRING:
  case AVRO_BYTES:
    if (read_varint(buf, len, pos, &n) || n < 0 || (uint64_t)n > len - *pos)
      return -1;
    *pos += (size_t)n;
    return 0;
  case AVRO_FIXED:
    n = avro_schema_fixed_size(s);
    if (n < 0 || (uint64_t)n > len - *pos)
      return -1;
    *pos += (size_t)n;
    return 0;
  case AVRO_ENUM:
    return read_varint(buf, len, pos, &n) || n < 0 ||
                   n >= avro_schema_enum_number_of_symbols(s)
               ? -1
               : 0;
  case AVRO_UNION:
    if (read_varint(buf, len, pos, &n) || n < 0 || (size_t)n >= avro_schema_union_size(s))
      return -1;
    return validate(avro_schema_union_branch(s, (int)n), buf, len, pos, depth + 1);
  case AVRO_RECORD:
    for (size_t i = 0; i < avro_schema_record_size(s); i++)
      if (validate(avro_schema_record_field_get_by_index(s, (int)i), buf, len, pos, depth + 1))
        return -1;
    return 0;
  case AVRO_LINK:
    return validate(avro_schema_link_target(s), buf, len, pos, depth + 1);
  case AVRO_ARRAY:
  case AVRO_MAP: {
    avro_schema_t item =
        avro_typeof(s) == AVRO_ARRAY ? avro_schema_array_items(s) : avro_schema_map_values(s);
    for (;;) {
      if (read_varint(buf, len, pos, &n))
        return -1;
      if (n == 0)
        return 0;
      if (n < 0) { /* a block with its byte size */
        int64_t bytes;
        if (n == INT64_MIN || read_varint(buf, len, pos, &bytes) || bytes < 0)
          return -1;
        n = -n;
      }
      /* Every item takes at least one byte (except null items, which are capped here). */
      if ((uint64_t)n > len - *pos + 1024)
        return -1;
      for (int64_t i = 0; i < n; i++) {
        if (avro_typeof(s) == AVRO_MAP) {
          int64_t kl;
          if (read_varint(buf, len, pos, &kl) || kl < 0 || (uint64_t)kl > len - *pos)
            return -1;
          *pos += (size_t)kl;
        }
        if (validate(item, buf, len, pos, depth + 1))
          return -1;
      }
    }
  }
  default:
    return -1;
  }
}

int rec_codec_decode_binary(struct rec_codec *c, const uint8_t *buf, size_t len,
                            struct rec_pair **out) {
  size_t pos = 0;
  if (validate(c->schema, buf, len, &pos, 0))
    return CUT_ERR_AVRO;
  avro_value_reset(&c->value);
  avro_reader_t r = avro_reader_memory((const char *)buf, (int64_t)len);
  if (!r)
    return CUT_ERR_NOMEM;
  int rc = avro_value_read(r, &c->value);
  avro_reader_free(r);
  if (rc)
    return CUT_ERR_AVRO;
  struct rec_pair *p;
  if (rec_pair_new_blank(&p))
    return CUT_ERR_NOMEM;
  if (extract(&c->value, p)) {
    rec_pair_free(p);
    return CUT_ERR_AVRO;
  }
  *out = p;
  return 0;
}

int rec_codec_decode(struct rec_codec *c, const uint8_t *buf, size_t len, struct rec_pair **out) {
  if (len < REC_SOE_HEADER_LEN || buf[0] != 0xC3 || buf[1] != 0x01)
    return CUT_ERR_PARSE;
  uint8_t want[REC_SOE_HEADER_LEN];
  rec_soe_header(want);
  if (memcmp(buf + 2, want + 2, 8) != 0)
    return CUT_ERR_UNSUPPORTED;
  return rec_codec_decode_binary(c, buf + REC_SOE_HEADER_LEN, len - REC_SOE_HEADER_LEN, out);
}

int rec_binary_correlation_id(const uint8_t *buf, size_t len, const char **id, size_t *idlen) {
  uint64_t u = 0;
  size_t i = 0;
  for (int shift = 0;; shift += 7) {
    if (i >= len || shift > 63)
      return CUT_ERR_PARSE;
    u |= (uint64_t)(buf[i] & 0x7f) << shift;
    if (!(buf[i++] & 0x80))
      break;
  }
  int64_t n = (int64_t)(u >> 1) ^ -(int64_t)(u & 1); /* zigzag */
  if (n < 0 || (uint64_t)n > len - i)
    return CUT_ERR_PARSE;
  *id = (const char *)buf + i;
  *idlen = (size_t)n;
  return 0;
}
