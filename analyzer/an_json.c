/* an_json: arena, parser, mutators and jansson conversion of the comparer's JSON trees. */
#include "analyzer/an_json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct an_chunk {
  struct an_chunk *next;
  size_t size;
  max_align_t data[];
};

#define CHUNK_MIN (32 * 1024)

void an_arena_init(struct an_arena *a) { memset(a, 0, sizeof *a); }

void an_arena_clear(struct an_arena *a) {
  struct an_chunk *c = a->head;
  while (c != NULL) {
    struct an_chunk *n = c->next;
    free(c);
    c = n;
  }
  an_arena_init(a);
}

void an_arena_reset(struct an_arena *a) {
  if (a->head == NULL) return;
  /* Keep the newest chunk (the largest one); it alone serves the next use. */
  struct an_chunk *keep = a->head, *c = keep->next;
  while (c != NULL) {
    struct an_chunk *n = c->next;
    free(c);
    c = n;
  }
  keep->next = NULL;
  a->used = 0;
  a->size = keep->size;
}

void *an_arena_alloc(struct an_arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (a->head == NULL || a->used + n > a->size) {
    size_t size = CHUNK_MIN;
    if (a->head != NULL && a->head->size * 2 > size) size = a->head->size * 2;
    if (n > size) size = n;
    struct an_chunk *c = malloc(sizeof *c + size);
    if (c == NULL) return NULL;
    c->next = a->head;
    c->size = size;
    a->head = c;
    a->used = 0;
    a->size = size;
  }
  void *p = (char *)a->head->data + a->used;
  a->used += n;
  return p;
}

struct an_jv *an_json_new(struct an_arena *a, enum an_jtype type) {
  struct an_jv *v = an_arena_alloc(a, sizeof *v);
  if (v == NULL) return NULL;
  memset(v, 0, sizeof *v);
  v->type = type;
  return v;
}

struct an_jv *an_json_string(struct an_arena *a, const char *s, size_t len) {
  struct an_jv *v = an_json_new(a, AN_J_STRING);
  char *c = an_arena_alloc(a, len + 1);
  if (v == NULL || c == NULL) return NULL;
  memcpy(c, s, len);
  c[len] = '\0';
  v->u.s = c;
  v->n = len;
  return v;
}

static int grow(struct an_arena *a, struct an_jv *c, size_t elem) {
  size_t cap = c->cap ? c->cap * 2 : 4;
  void *p = an_arena_alloc(a, cap * elem);
  if (p == NULL) return -1;
  void *old = c->type == AN_J_ARRAY ? (void *)c->u.items : (void *)c->u.members;
  if (c->n > 0) memcpy(p, old, c->n * elem);
  if (c->type == AN_J_ARRAY)
    c->u.items = p;
  else
    c->u.members = p;
  c->cap = cap;
  return 0;
}

int an_json_append(struct an_arena *a, struct an_jv *arr, struct an_jv *v) {
  if (arr->n == arr->cap && grow(a, arr, sizeof(struct an_jv *)) != 0) return -1;
  arr->u.items[arr->n++] = v;
  return 0;
}

long an_json_find(const struct an_jv *obj, const char *key, size_t keylen) {
  if (obj == NULL || obj->type != AN_J_OBJECT) return -1;
  for (size_t i = 0; i < obj->n; i++) {
    const struct an_jmember *m = &obj->u.members[i];
    if (m->keylen == keylen && memcmp(m->key, key, keylen) == 0) return (long)i;
  }
  return -1;
}

struct an_jv *an_json_get(const struct an_jv *obj, const char *key, size_t keylen) {
  long i = an_json_find(obj, key, keylen);
  return i < 0 ? NULL : obj->u.members[i].v;
}

int an_json_set(struct an_arena *a, struct an_jv *obj, const char *key, size_t keylen,
                struct an_jv *v) {
  long i = an_json_find(obj, key, keylen);
  if (i >= 0) {
    obj->u.members[i].v = v;
    return 0;
  }
  if (obj->n == obj->cap && grow(a, obj, sizeof(struct an_jmember)) != 0) return -1;
  char *k = an_arena_alloc(a, keylen + 1);
  if (k == NULL) return -1;
  memcpy(k, key, keylen);
  k[keylen] = '\0';
  obj->u.members[obj->n++] = (struct an_jmember){k, keylen, v};
  return 0;
}

void an_json_remove_at(struct an_jv *c, size_t i) {
  if (i >= c->n) return;
  if (c->type == AN_J_ARRAY)
    memmove(&c->u.items[i], &c->u.items[i + 1], (c->n - i - 1) * sizeof *c->u.items);
  else if (c->type == AN_J_OBJECT)
    memmove(&c->u.members[i], &c->u.members[i + 1], (c->n - i - 1) * sizeof *c->u.members);
  else
    return;
  c->n--;
}

double an_json_number(const struct an_jv *v) {
  return v->type == AN_J_INT ? (double)v->u.i : v->type == AN_J_REAL ? v->u.d : 0.0;
}

/* ---- parser ---- */

struct parser {
  const char *p, *end;
  struct an_arena *a;
  int depth;
};

static void skip_ws(struct parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
    ps->p++;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static size_t utf8_put(char *o, unsigned cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Parses a string at ps->p (on the opening quote); stores it in the arena. */
static const char *parse_str(struct parser *ps, size_t *len) {
  const char *s = ++ps->p;
  const char *q = s;
  int escapes = 0;
  while (q < ps->end && *q != '"') {
    if ((unsigned char)*q < 0x20) return NULL;
    if (*q == '\\') {
      escapes = 1;
      q++;
    }
    q++;
  }
  if (q >= ps->end) return NULL;
  size_t raw = (size_t)(q - s);
  char *out = an_arena_alloc(ps->a, raw + 1);
  if (out == NULL) return NULL;
  if (!escapes) {
    memcpy(out, s, raw);
    out[raw] = '\0';
    *len = raw;
    ps->p = q + 1;
    return out;
  }
  size_t o = 0;
  for (const char *c = s; c < q; c++) {
    if (*c != '\\') {
      out[o++] = *c;
      continue;
    }
    c++;
    switch (*c) {
    case '"': out[o++] = '"'; break;
    case '\\': out[o++] = '\\'; break;
    case '/': out[o++] = '/'; break;
    case 'b': out[o++] = '\b'; break;
    case 'f': out[o++] = '\f'; break;
    case 'n': out[o++] = '\n'; break;
    case 'r': out[o++] = '\r'; break;
    case 't': out[o++] = '\t'; break;
    case 'u': {
      unsigned cp, lo;
      if (q - c < 5 || hex4(c + 1, &cp) != 0) return NULL;
      c += 4;
      if (cp >= 0xD800 && cp < 0xDC00) {
        if (q - c < 7 || c[1] != '\\' || c[2] != 'u' || hex4(c + 3, &lo) != 0 || lo < 0xDC00 ||
            lo > 0xDFFF)
          return NULL;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        c += 6;
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return NULL;
      }
      /* \uXXXX takes 6 bytes of input and at most 4 of output; a pair 12 and 4. */
      o += utf8_put(out + o, cp);
      break;
    }
    default: return NULL;
    }
  }
  out[o] = '\0';
  *len = o;
  ps->p = q + 1;
  return out;
}

static struct an_jv *parse_value(struct parser *ps);

static struct an_jv *parse_number(struct parser *ps) {
  const char *s = ps->p;
  const char *c = s;
  int is_real = 0;
  if (c < ps->end && *c == '-') c++;
  if (c >= ps->end || *c < '0' || *c > '9') return NULL;
  if (*c == '0') c++;
  else while (c < ps->end && *c >= '0' && *c <= '9') c++;
  if (c < ps->end && *c == '.') {
    is_real = 1;
    c++;
    if (c >= ps->end || *c < '0' || *c > '9') return NULL;
    while (c < ps->end && *c >= '0' && *c <= '9') c++;
  }
  if (c < ps->end && (*c == 'e' || *c == 'E')) {
    is_real = 1;
    c++;
    if (c < ps->end && (*c == '+' || *c == '-')) c++;
    if (c >= ps->end || *c < '0' || *c > '9') return NULL;
    while (c < ps->end && *c >= '0' && *c <= '9') c++;
  }
  size_t len = (size_t)(c - s);
  ps->p = c;
  if (!is_real && len <= 18) {
    int64_t v = 0;
    const char *d = s + (*s == '-');
    for (; d < c; d++) v = v * 10 + (*d - '0');
    struct an_jv *n = an_json_new(ps->a, AN_J_INT);
    if (n != NULL) n->u.i = *s == '-' ? -v : v;
    return n;
  }
  char buf[64], *heap = NULL, *t = buf;
  if (len >= sizeof buf) {
    heap = malloc(len + 1);
    if (heap == NULL) return NULL;
    t = heap;
  }
  memcpy(t, s, len);
  t[len] = '\0';
  struct an_jv *n = an_json_new(ps->a, AN_J_REAL);
  if (n != NULL) n->u.d = strtod(t, NULL);
  free(heap);
  return n;
}

static int lit(struct parser *ps, const char *word, size_t n) {
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return 0;
  ps->p += n;
  return 1;
}

static struct an_jv *parse_value(struct parser *ps) {
  skip_ws(ps);
  if (ps->p >= ps->end) return NULL;
  switch (*ps->p) {
  case '{': {
    if (++ps->depth > 512) return NULL;
    struct an_jv *o = an_json_new(ps->a, AN_J_OBJECT);
    if (o == NULL) return NULL;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
      ps->p++;
      ps->depth--;
      return o;
    }
    for (;;) {
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != '"') return NULL;
      size_t klen;
      const char *k = parse_str(ps, &klen);
      if (k == NULL) return NULL;
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':') return NULL;
      ps->p++;
      struct an_jv *v = parse_value(ps);
      if (v == NULL) return NULL;
      if (o->n == o->cap && grow(ps->a, o, sizeof(struct an_jmember)) != 0) return NULL;
      o->u.members[o->n++] = (struct an_jmember){k, klen, v};
      skip_ws(ps);
      if (ps->p < ps->end && *ps->p == ',') {
        ps->p++;
        continue;
      }
      if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        ps->depth--;
        return o;
      }
      return NULL;
    }
  }
  case '[': {
    if (++ps->depth > 512) return NULL;
    struct an_jv *arr = an_json_new(ps->a, AN_J_ARRAY);
    if (arr == NULL) return NULL;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
      ps->p++;
      ps->depth--;
      return arr;
    }
    for (;;) {
      struct an_jv *v = parse_value(ps);
      if (v == NULL || an_json_append(ps->a, arr, v) != 0) return NULL;
      skip_ws(ps);
      if (ps->p < ps->end && *ps->p == ',') {
        ps->p++;
        continue;
      }
      if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        ps->depth--;
        return arr;
      }
      return NULL;
    }
  }
  case '"': {
    size_t len;
    const char *s = parse_str(ps, &len);
    if (s == NULL) return NULL;
    struct an_jv *v = an_json_new(ps->a, AN_J_STRING);
    if (v != NULL) {
      v->u.s = s;
      v->n = len;
    }
    return v;
  }
  case 't': return lit(ps, "true", 4) ? an_json_new(ps->a, AN_J_TRUE) : NULL;
  case 'f': return lit(ps, "false", 5) ? an_json_new(ps->a, AN_J_FALSE) : NULL;
  case 'n': return lit(ps, "null", 4) ? an_json_new(ps->a, AN_J_NULL) : NULL;
  default: return parse_number(ps);
  }
}

struct an_jv *an_json_parse(struct an_arena *a, const char *text, size_t len) {
  struct parser ps = {text, text + len, a, 0};
  struct an_jv *v = parse_value(&ps);
  if (v == NULL) return NULL;
  skip_ws(&ps);
  return ps.p == ps.end ? v : NULL;
}

/* ---- conversion and equality ---- */

int an_json_utf8_valid(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end) {
    unsigned c = *p;
    size_t n;
    unsigned cp;
    if (c < 0x80) {
      p++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
    else return 0;
    if ((size_t)(end - p) <= n) return 0;
    for (size_t i = 1; i <= n; i++) {
      if ((p[i] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return 0;
    p += n + 1;
  }
  return 1;
}

/* A copy of a key that jansson accepts: bytes of invalid UTF-8 become '?'. */
static char *clean_key(const char *k, size_t len) {
  char *c = malloc(len + 1);
  if (c == NULL) return NULL;
  for (size_t i = 0; i < len; i++) c[i] = (unsigned char)k[i] < 0x80 && k[i] != '\0' ? k[i] : '?';
  c[len] = '\0';
  return c;
}

json_t *an_json_to_jansson(const struct an_jv *v) {
  switch (v->type) {
  case AN_J_NULL: return json_null();
  case AN_J_FALSE: return json_false();
  case AN_J_TRUE: return json_true();
  case AN_J_INT: return json_integer((json_int_t)v->u.i);
  case AN_J_REAL:
    /* JSON has no infinities (1e400 parses to one): show them as text. */
    if (!isfinite(v->u.d)) return json_string(isnan(v->u.d) ? "NaN" : v->u.d > 0 ? "Infinity" : "-Infinity");
    return json_real(v->u.d);
  case AN_J_STRING:
    return an_json_utf8_valid(v->u.s, v->n) ? json_stringn(v->u.s, v->n) : json_string("<not UTF-8>");
  case AN_J_ARRAY: {
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < v->n; i++) {
      json_t *x = an_json_to_jansson(v->u.items[i]);
      if (x == NULL || json_array_append_new(arr, x) != 0) {
        json_decref(arr);
        return NULL;
      }
    }
    return arr;
  }
  case AN_J_OBJECT: {
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < v->n; i++) {
      const struct an_jmember *m = &v->u.members[i];
      json_t *x = an_json_to_jansson(m->v);
      if (x == NULL) {
        json_decref(o);
        return NULL;
      }
      int rc;
      if (an_json_utf8_valid(m->key, m->keylen)) {
        rc = json_object_setn_new(o, m->key, m->keylen, x); /* takes x, also on failure */
      } else {
        char *k = clean_key(m->key, m->keylen);
        rc = k ? json_object_setn_new(o, k, m->keylen, x) : (json_decref(x), -1);
        free(k);
      }
      if (rc != 0) {
        json_decref(o);
        return NULL;
      }
    }
    return o;
  }
  }
  return NULL;
}

int an_json_equal(const struct an_jv *a, const struct an_jv *b) {
  int na = a->type == AN_J_INT || a->type == AN_J_REAL, nb = b->type == AN_J_INT || b->type == AN_J_REAL;
  if (na && nb) {
    if (a->type == AN_J_INT && b->type == AN_J_INT) return a->u.i == b->u.i;
    return an_json_number(a) == an_json_number(b);
  }
  if (a->type != b->type) return 0;
  switch (a->type) {
  case AN_J_STRING: return a->n == b->n && memcmp(a->u.s, b->u.s, a->n) == 0;
  case AN_J_ARRAY:
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
      if (!an_json_equal(a->u.items[i], b->u.items[i])) return 0;
    return 1;
  case AN_J_OBJECT:
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++) {
      const struct an_jmember *m = &a->u.members[i];
      /* Same position first: members usually come in the same order. */
      const struct an_jv *o = i < b->n && b->u.members[i].keylen == m->keylen &&
                                      memcmp(b->u.members[i].key, m->key, m->keylen) == 0
                                  ? b->u.members[i].v
                                  : an_json_get(b, m->key, m->keylen);
      if (o == NULL || !an_json_equal(m->v, o)) return 0;
    }
    return 1;
  default: return 1;
  }
}
