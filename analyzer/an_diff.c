/* an_diff: structural JSON diff and positional line diff. */
#include "analyzer/an_diff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"

void an_diff_init(struct an_diff *d) { memset(d, 0, sizeof *d); }

void an_diff_reset(struct an_diff *d) {
  for (size_t i = 0; i < d->n; i++) {
    free(d->v[i].path);
    free(d->v[i].field);
    json_decref(d->v[i].primary);
    json_decref(d->v[i].shadow);
  }
  d->n = 0;
}

void an_diff_clear(struct an_diff *d) {
  an_diff_reset(d);
  free(d->v);
  an_diff_init(d);
}

size_t an_diff_field_of(const char *path, char *out, size_t outlen) {
  size_t o = 0;
  for (const char *s = path; *s != '\0'; s++) {
    const char *piece = NULL;
    size_t plen = 1;
    if (*s == '[' && s[1] >= '0' && s[1] <= '9') {
      const char *e = s + 1;
      while (*e >= '0' && *e <= '9') e++;
      if (*e == ']') {
        piece = "[*]";
        plen = 3;
        s = e;
      }
    }
    if (piece == NULL) piece = s;
    for (size_t i = 0; i < plen; i++, o++)
      if (o + 1 < outlen) out[o] = piece[i];
  }
  if (outlen > 0) out[o < outlen ? o : outlen - 1] = '\0';
  return o;
}

int an_diff_add(struct an_diff *d, enum an_diff_kind kind, const char *path, json_t *primary,
                json_t *shadow) {
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 16;
    struct an_diff_entry *v = realloc(d->v, cap * sizeof *v);
    if (v == NULL) return CUT_ERR_NOMEM;
    d->v = v;
    d->cap = cap;
  }
  struct an_diff_entry *e = &d->v[d->n];
  size_t flen = an_diff_field_of(path, NULL, 0);
  e->path = strdup(path);
  e->field = malloc(flen + 1);
  if (e->path == NULL || e->field == NULL) {
    free(e->path);
    free(e->field);
    return CUT_ERR_NOMEM;
  }
  an_diff_field_of(path, e->field, flen + 1);
  e->kind = kind;
  e->primary = json_incref(primary);
  e->shadow = json_incref(shadow);
  d->n++;
  return 0;
}

/* A growable path buffer: each level appends and later truncates. */
struct pbuf {
  char *s;
  size_t len, cap;
};

static int pb_push(struct pbuf *b, const char *key, size_t idx) {
  char tmp[32];
  const char *piece;
  size_t plen;
  if (key != NULL) {
    /* Keys that would not parse back as .name are quoted. */
    int plain = key[0] != '\0';
    for (const char *c = key; *c; c++)
      if (*c == '.' || *c == '[' || *c == ']' || *c == '\'' || *c == ' ' || *c == '"') plain = 0;
    size_t klen = strlen(key);
    if (b->len + klen + 8 > b->cap) {
      size_t cap = (b->len + klen + 8) * 2;
      char *s = realloc(b->s, cap);
      if (s == NULL) return CUT_ERR_NOMEM;
      b->s = s;
      b->cap = cap;
    }
    if (plain) {
      b->s[b->len++] = '.';
    } else {
      b->s[b->len++] = '[';
      b->s[b->len++] = '\'';
    }
    memcpy(b->s + b->len, key, klen);
    b->len += klen;
    if (!plain) {
      b->s[b->len++] = '\'';
      b->s[b->len++] = ']';
    }
    b->s[b->len] = '\0';
    return 0;
  }
  plen = (size_t)snprintf(tmp, sizeof tmp, "[%zu]", idx);
  piece = tmp;
  if (b->len + plen + 1 > b->cap) {
    size_t cap = (b->len + plen + 1) * 2;
    char *s = realloc(b->s, cap);
    if (s == NULL) return CUT_ERR_NOMEM;
    b->s = s;
    b->cap = cap;
  }
  memcpy(b->s + b->len, piece, plen + 1);
  b->len += plen;
  return 0;
}

static int scalar_equal(json_t *a, json_t *b) {
  if (json_is_number(a) && json_is_number(b)) {
    if (json_is_integer(a) && json_is_integer(b))
      return json_integer_value(a) == json_integer_value(b);
    return json_number_value(a) == json_number_value(b);
  }
  return json_equal(a, b);
}

static int diff_rec(struct an_diff *d, struct pbuf *pb, json_t *a, json_t *b) {
  int rc, count = 0;
  if (json_is_object(a) && json_is_object(b)) {
    size_t keep = pb->len;
    const char *k;
    json_t *va;
    json_object_foreach(a, k, va) {
      json_t *vb = json_object_get(b, k);
      if ((rc = pb_push(pb, k, 0)) != 0) return rc;
      if (vb == NULL)
        rc = an_diff_add(d, AN_DIFF_MISSING, pb->s, va, NULL) == 0 ? 1 : CUT_ERR_NOMEM;
      else
        rc = diff_rec(d, pb, va, vb);
      if (rc < 0) return rc;
      count += rc;
      pb->len = keep;
      pb->s[keep] = '\0';
    }
    json_t *vb;
    json_object_foreach(b, k, vb) {
      if (json_object_get(a, k) != NULL) continue;
      if ((rc = pb_push(pb, k, 0)) != 0) return rc;
      if (an_diff_add(d, AN_DIFF_ADDED, pb->s, NULL, vb) != 0) return CUT_ERR_NOMEM;
      count++;
      pb->len = keep;
      pb->s[keep] = '\0';
    }
    return count;
  }
  if (json_is_array(a) && json_is_array(b)) {
    size_t keep = pb->len, na = json_array_size(a), nb = json_array_size(b);
    size_t n = na > nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
      if ((rc = pb_push(pb, NULL, i)) != 0) return rc;
      if (i >= nb)
        rc = an_diff_add(d, AN_DIFF_MISSING, pb->s, json_array_get(a, i), NULL) == 0
                 ? 1
                 : CUT_ERR_NOMEM;
      else if (i >= na)
        rc = an_diff_add(d, AN_DIFF_ADDED, pb->s, NULL, json_array_get(b, i)) == 0
                 ? 1
                 : CUT_ERR_NOMEM;
      else
        rc = diff_rec(d, pb, json_array_get(a, i), json_array_get(b, i));
      if (rc < 0) return rc;
      count += rc;
      pb->len = keep;
      pb->s[keep] = '\0';
    }
    return count;
  }
  if (scalar_equal(a, b)) return 0;
  return an_diff_add(d, AN_DIFF_CHANGED, pb->s, a, b) == 0 ? 1 : CUT_ERR_NOMEM;
}

int an_diff_json(struct an_diff *d, const char *prefix, json_t *primary, json_t *shadow) {
  struct pbuf pb = {0};
  size_t plen = strlen(prefix);
  pb.cap = plen + 64;
  pb.s = malloc(pb.cap);
  if (pb.s == NULL) return CUT_ERR_NOMEM;
  memcpy(pb.s, prefix, plen + 1);
  pb.len = plen;
  int rc;
  if (primary == NULL && shadow == NULL)
    rc = 0;
  else if (primary == NULL)
    rc = an_diff_add(d, AN_DIFF_ADDED, pb.s, NULL, shadow) == 0 ? 1 : CUT_ERR_NOMEM;
  else if (shadow == NULL)
    rc = an_diff_add(d, AN_DIFF_MISSING, pb.s, primary, NULL) == 0 ? 1 : CUT_ERR_NOMEM;
  else
    rc = diff_rec(d, &pb, primary, shadow);
  free(pb.s);
  return rc;
}

static const char *next_line(const char *s, const char *end, size_t *len) {
  const char *nl = memchr(s, '\n', (size_t)(end - s));
  const char *stop = nl ? nl : end;
  *len = (size_t)(stop - s);
  if (*len > 0 && s[*len - 1] == '\r') (*len)--;
  return nl ? nl + 1 : end;
}

/* A line as a JSON string; bytes that are not UTF-8 cannot be JSON text. */
static json_t *text_value(const char *s, size_t len) {
  json_t *v = json_stringn(s, len);
  return v != NULL ? v : json_string("<not UTF-8>");
}

int an_diff_text(struct an_diff *d, const char *prefix, const char *a, size_t alen,
                 const char *b, size_t blen) {
  const char *pa = a, *ea = a + alen, *pb = b, *eb = b + blen;
  char path[256];
  int count = 0;
  for (size_t line = 1; pa < ea || pb < eb; line++) {
    size_t la = 0, lb = 0;
    const char *sa = pa, *sb = pb;
    int has_a = pa < ea, has_b = pb < eb;
    if (has_a) pa = next_line(pa, ea, &la);
    if (has_b) pb = next_line(pb, eb, &lb);
    if (has_a && has_b && la == lb && memcmp(sa, sb, la) == 0) continue;
    snprintf(path, sizeof path, "%s.line[%zu]", prefix, line);
    json_t *ja = has_a ? text_value(sa, la) : NULL;
    json_t *jb = has_b ? text_value(sb, lb) : NULL;
    enum an_diff_kind kind = has_a && has_b ? AN_DIFF_CHANGED : has_a ? AN_DIFF_MISSING : AN_DIFF_ADDED;
    int rc = an_diff_add(d, kind, path, ja, jb);
    json_decref(ja);
    json_decref(jb);
    if (rc != 0) return rc;
    count++;
  }
  return count;
}

const char *an_diff_kind_name(enum an_diff_kind k) {
  switch (k) {
  case AN_DIFF_CHANGED: return "changed";
  case AN_DIFF_MISSING: return "missing";
  case AN_DIFF_ADDED: return "added";
  }
  return "?";
}

json_t *an_diff_to_json(const struct an_diff *d) {
  json_t *arr = json_array();
  if (arr == NULL) return NULL;
  for (size_t i = 0; i < d->n; i++) {
    const struct an_diff_entry *e = &d->v[i];
    json_t *o = json_pack("{s:s, s:s, s:s, s:O?, s:O?}", "path", e->path, "field", e->field,
                          "kind", an_diff_kind_name(e->kind), "primary", e->primary, "shadow",
                          e->shadow);
    if (o == NULL || json_array_append_new(arr, o) != 0) {
      json_decref(arr);
      return NULL;
    }
  }
  return arr;
}
