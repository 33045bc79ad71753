/* an_diff: structural JSON diff and positional line diff. */
#include "analyzer/an_diff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"
#include "common/sbuf.h"

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

/* The path buffer (an sbuf) grows by one segment per level and is truncated back after it. */
static int pb_push(struct sbuf *b, const char *key, size_t idx) {
  if (key == NULL) {
    sb_fmt(b, "[%zu]", idx);
    return b->oom ? CUT_ERR_NOMEM : 0;
  }
  /* Keys that would not parse back as .name are quoted. */
  int plain = key[0] != '\0';
  for (const char *c = key; *c; c++)
    if (*c == '.' || *c == '[' || *c == ']' || *c == '\'' || *c == ' ' || *c == '"') plain = 0;
  size_t klen = strlen(key);
  sb_puts(b, plain ? "." : "['");
  size_t at = b->len;
  sb_put(b, key, klen);
  if (b->oom) return CUT_ERR_NOMEM;
  if (!an_json_utf8_valid(key, klen)) /* paths must be JSON text too */
    for (size_t i = 0; i < klen; i++)
      if ((unsigned char)b->p[at + i] >= 0x80) b->p[at + i] = '?';
  if (!plain) sb_puts(b, "']");
  return b->oom ? CUT_ERR_NOMEM : 0;
}

/* Adds an entry whose values are converted from the trees. */
static int add_jv(struct an_diff *d, enum an_diff_kind kind, const char *path,
                  const struct an_jv *a, const struct an_jv *b) {
  json_t *ja = a ? an_json_to_jansson(a) : NULL, *jb = b ? an_json_to_jansson(b) : NULL;
  int rc = (a && !ja) || (b && !jb) ? CUT_ERR_NOMEM : an_diff_add(d, kind, path, ja, jb);
  json_decref(ja);
  json_decref(jb);
  return rc == 0 ? 1 : rc;
}

static int diff_rec(struct an_diff *d, struct sbuf *pb, const struct an_jv *a,
                    const struct an_jv *b) {
  int rc, count = 0;
  if (a->type == AN_J_OBJECT && b->type == AN_J_OBJECT) {
    size_t keep = pb->len;
    for (size_t i = 0; i < a->n; i++) {
      const struct an_jmember *m = &a->u.members[i];
      /* Same position first: both sides usually list members in one order. */
      const struct an_jv *vb =
          i < b->n && b->u.members[i].keylen == m->keylen &&
                  memcmp(b->u.members[i].key, m->key, m->keylen) == 0
              ? b->u.members[i].v
              : an_json_get(b, m->key, m->keylen);
      if (vb != NULL && an_json_equal(m->v, vb)) continue;
      if ((rc = pb_push(pb, m->key, 0)) != 0) return rc;
      rc = vb == NULL ? add_jv(d, AN_DIFF_MISSING, pb->p, m->v, NULL) : diff_rec(d, pb, m->v, vb);
      if (rc < 0) return rc;
      count += rc;
      sb_truncate(pb, keep);
    }
    for (size_t i = 0; i < b->n; i++) {
      const struct an_jmember *m = &b->u.members[i];
      if (i < a->n && a->u.members[i].keylen == m->keylen &&
          memcmp(a->u.members[i].key, m->key, m->keylen) == 0)
        continue;
      if (an_json_find(a, m->key, m->keylen) >= 0) continue;
      if ((rc = pb_push(pb, m->key, 0)) != 0) return rc;
      if ((rc = add_jv(d, AN_DIFF_ADDED, pb->p, NULL, m->v)) < 0) return rc;
      count++;
      sb_truncate(pb, keep);
    }
    return count;
  }
  if (a->type == AN_J_ARRAY && b->type == AN_J_ARRAY) {
    size_t keep = pb->len, n = a->n > b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++) {
      if (i < a->n && i < b->n && an_json_equal(a->u.items[i], b->u.items[i])) continue;
      if ((rc = pb_push(pb, NULL, i)) != 0) return rc;
      if (i >= b->n)
        rc = add_jv(d, AN_DIFF_MISSING, pb->p, a->u.items[i], NULL);
      else if (i >= a->n)
        rc = add_jv(d, AN_DIFF_ADDED, pb->p, NULL, b->u.items[i]);
      else
        rc = diff_rec(d, pb, a->u.items[i], b->u.items[i]);
      if (rc < 0) return rc;
      count += rc;
      sb_truncate(pb, keep);
    }
    return count;
  }
  if (an_json_equal(a, b)) return 0;
  return add_jv(d, AN_DIFF_CHANGED, pb->p, a, b);
}

int an_diff_json(struct an_diff *d, const char *prefix, const struct an_jv *primary,
                 const struct an_jv *shadow) {
  if (primary == NULL && shadow == NULL) return 0;
  if (primary != NULL && shadow != NULL && an_json_equal(primary, shadow)) return 0;
  struct sbuf pb;
  sb_init(&pb);
  sb_puts(&pb, prefix);
  if (pb.oom) return CUT_ERR_NOMEM;
  int rc;
  if (primary == NULL)
    rc = add_jv(d, AN_DIFF_ADDED, pb.p, NULL, shadow);
  else if (shadow == NULL)
    rc = add_jv(d, AN_DIFF_MISSING, pb.p, primary, NULL);
  else
    rc = diff_rec(d, &pb, primary, shadow);
  sb_clear(&pb);
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
