/* an_path: compile and evaluate the JSONPath subset used by analyzer rules. */
#include "analyzer/an_path.h"

#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"

enum seg_kind { SEG_KEY, SEG_INDEX, SEG_WILD, SEG_DESCEND };

struct seg {
  enum seg_kind kind;
  char *key;  /* SEG_KEY, SEG_DESCEND */
  size_t keylen;
  long index; /* SEG_INDEX */
};

struct an_path {
  char *expr;
  struct seg *segs;
  size_t n;
  int simple;
};

void an_path_free(struct an_path *p) {
  if (p == NULL) return;
  for (size_t i = 0; i < p->n; i++) free(p->segs[i].key);
  free(p->segs);
  free(p->expr);
  free(p);
}

const char *an_path_expr(const struct an_path *p) { return p->expr; }
int an_path_is_simple(const struct an_path *p) { return p->simple; }
int an_path_is_root(const struct an_path *p) { return p->n == 0; }

static int push_seg(struct an_path *p, enum seg_kind kind, const char *key, size_t keylen,
                    long index) {
  struct seg *s = realloc(p->segs, (p->n + 1) * sizeof *s);
  if (s == NULL) return CUT_ERR_NOMEM;
  p->segs = s;
  s = &p->segs[p->n];
  s->kind = kind;
  s->index = index;
  s->key = NULL;
  s->keylen = keylen;
  if (key != NULL) {
    s->key = strndup(key, keylen);
    if (s->key == NULL) return CUT_ERR_NOMEM;
  }
  p->n++;
  if (kind == SEG_WILD || kind == SEG_DESCEND) p->simple = 0;
  return 0;
}

static int is_name_char(char c) {
  return c != '\0' && c != '.' && c != '[' && c != ']' && c != '\'' && c != '"' && c != ' ';
}

int an_path_parse(const char *expr, struct an_path **out, char *err, size_t errlen) {
  struct an_path *p = calloc(1, sizeof *p);
  int rc;
  if (p == NULL) return CUT_ERR_NOMEM;
  p->simple = 1;
  p->expr = strdup(expr);
  if (p->expr == NULL) {
    rc = CUT_ERR_NOMEM;
    goto fail;
  }
  const char *s = expr;
  if (*s != '$') {
    rc = cut_errf(err, errlen, CUT_ERR_PARSE, "path \"%s\" must start with '$'", expr);
    goto fail;
  }
  s++;
  while (*s != '\0') {
    if (s[0] == '.' && s[1] == '.') {
      s += 2;
      size_t len = 0;
      while (is_name_char(s[len])) len++;
      if (len == 0) {
        rc = cut_errf(err, errlen, CUT_ERR_PARSE, "path \"%s\": '..' needs a member name",
                      expr);
        goto fail;
      }
      if ((rc = push_seg(p, SEG_DESCEND, s, len, 0)) != 0) goto fail;
      s += len;
    } else if (s[0] == '.') {
      s++;
      if (*s == '*') {
        if ((rc = push_seg(p, SEG_WILD, NULL, 0, 0)) != 0) goto fail;
        s++;
        continue;
      }
      size_t len = 0;
      while (is_name_char(s[len])) len++;
      if (len == 0) {
        rc = cut_errf(err, errlen, CUT_ERR_PARSE, "path \"%s\": '.' needs a member name",
                      expr);
        goto fail;
      }
      if ((rc = push_seg(p, SEG_KEY, s, len, 0)) != 0) goto fail;
      s += len;
    } else if (s[0] == '[') {
      s++;
      if (s[0] == '*' && s[1] == ']') {
        if ((rc = push_seg(p, SEG_WILD, NULL, 0, 0)) != 0) goto fail;
        s += 2;
      } else if (s[0] == '\'' || s[0] == '"') {
        char q = s[0];
        const char *end = strchr(s + 1, q);
        if (end == NULL || end[1] != ']') {
          rc = cut_errf(err, errlen, CUT_ERR_PARSE, "path \"%s\": unterminated quoted name",
                        expr);
          goto fail;
        }
        if ((rc = push_seg(p, SEG_KEY, s + 1, (size_t)(end - s - 1), 0)) != 0) goto fail;
        s = end + 2;
      } else {
        char *end = NULL;
        long idx = strtol(s, &end, 10);
        if (end == s || *end != ']') {
          rc = cut_errf(err, errlen, CUT_ERR_PARSE,
                        "path \"%s\": expected [N], [*] or ['name'] at offset %zu", expr,
                        (size_t)(s - expr - 1));
          goto fail;
        }
        if ((rc = push_seg(p, SEG_INDEX, NULL, 0, idx)) != 0) goto fail;
        s = end + 1;
      }
    } else {
      rc = cut_errf(err, errlen, CUT_ERR_PARSE, "path \"%s\": unexpected '%c' at offset %zu",
                    expr, *s, (size_t)(s - expr));
      goto fail;
    }
  }
  *out = p;
  return 0;
fail:
  an_path_free(p);
  return rc;
}

void an_matches_clear(struct an_matches *m) {
  free(m->v);
  m->v = NULL;
  m->n = m->cap = 0;
}

static int add_match(struct an_matches *m, struct an_jv *parent, size_t index, struct an_jv *value) {
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 8;
    struct an_match *v = realloc(m->v, cap * sizeof *v);
    if (v == NULL) return CUT_ERR_NOMEM;
    m->v = v;
    m->cap = cap;
  }
  m->v[m->n++] = (struct an_match){parent, index, value};
  return 0;
}

static int array_index(const struct an_jv *arr, long idx, size_t *out) {
  long n = (long)arr->n;
  if (idx < 0) idx += n;
  if (idx < 0 || idx >= n) return 0;
  *out = (size_t)idx;
  return 1;
}

static struct an_jv *child_at(struct an_jv *c, size_t i) {
  return c->type == AN_J_ARRAY ? c->u.items[i] : c->u.members[i].v;
}

static int select_rec(const struct an_path *p, size_t i, struct an_jv *parent, size_t index,
                      struct an_jv *node, struct an_matches *m);

/* Every node below `node` (pre-order) that is an object member named like
 * segment i: continue the path from there. */
static int descend(const struct an_path *p, size_t i, struct an_jv *node, struct an_matches *m) {
  const struct seg *s = &p->segs[i];
  int rc;
  if (node->type == AN_J_OBJECT) {
    for (size_t j = 0; j < node->n; j++) {
      const struct an_jmember *mb = &node->u.members[j];
      if (mb->keylen == s->keylen && memcmp(mb->key, s->key, s->keylen) == 0 &&
          (rc = select_rec(p, i + 1, node, j, mb->v, m)) < 0)
        return rc;
      if ((rc = descend(p, i, mb->v, m)) < 0) return rc;
    }
  } else if (node->type == AN_J_ARRAY) {
    for (size_t j = 0; j < node->n; j++)
      if ((rc = descend(p, i, node->u.items[j], m)) < 0) return rc;
  }
  return 0;
}

static int select_rec(const struct an_path *p, size_t i, struct an_jv *parent, size_t index,
                      struct an_jv *node, struct an_matches *m) {
  if (i == p->n) return add_match(m, parent, index, node);
  const struct seg *s = &p->segs[i];
  int rc;
  switch (s->kind) {
  case SEG_KEY: {
    long j = an_json_find(node, s->key, s->keylen);
    if (j < 0) return 0;
    return select_rec(p, i + 1, node, (size_t)j, node->u.members[j].v, m);
  }
  case SEG_INDEX: {
    size_t j;
    if (node->type != AN_J_ARRAY || !array_index(node, s->index, &j)) return 0;
    return select_rec(p, i + 1, node, j, node->u.items[j], m);
  }
  case SEG_WILD:
    if (node->type == AN_J_ARRAY || node->type == AN_J_OBJECT)
      for (size_t j = 0; j < node->n; j++)
        if ((rc = select_rec(p, i + 1, node, j, child_at(node, j), m)) < 0) return rc;
    return 0;
  case SEG_DESCEND:
    return descend(p, i, node, m);
  }
  return 0;
}

int an_path_select(const struct an_path *p, struct an_jv *root, struct an_matches *m) {
  m->n = 0;
  if (root == NULL) return 0;
  int rc = select_rec(p, 0, NULL, 0, root, m);
  return rc < 0 ? rc : (int)m->n;
}

static int walk_rec(const struct an_path *p, size_t i, struct an_jv *ap, size_t ai,
                    struct an_jv *bp, size_t bi, struct an_jv *a, struct an_jv *b,
                    an_path_pair_fn fn, void *ud);

static int walk_descend(const struct an_path *p, size_t i, struct an_jv *a, struct an_jv *b,
                        an_path_pair_fn fn, void *ud) {
  const struct seg *s = &p->segs[i];
  int rc;
  if (a->type == AN_J_OBJECT && b->type == AN_J_OBJECT) {
    for (size_t j = 0; j < a->n; j++) {
      const struct an_jmember *mb = &a->u.members[j];
      long k = an_json_find(b, mb->key, mb->keylen);
      if (k < 0) continue;
      if (mb->keylen == s->keylen && memcmp(mb->key, s->key, s->keylen) == 0 &&
          (rc = walk_rec(p, i + 1, a, j, b, (size_t)k, mb->v, b->u.members[k].v, fn, ud)) != 0)
        return rc;
      /* Re-read: the callback may have replaced either member. */
      if ((rc = walk_descend(p, i, a->u.members[j].v, b->u.members[k].v, fn, ud)) != 0) return rc;
    }
  } else if (a->type == AN_J_ARRAY && b->type == AN_J_ARRAY) {
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t j = 0; j < n; j++)
      if ((rc = walk_descend(p, i, a->u.items[j], b->u.items[j], fn, ud)) != 0) return rc;
  }
  return 0;
}

static int walk_rec(const struct an_path *p, size_t i, struct an_jv *ap, size_t ai,
                    struct an_jv *bp, size_t bi, struct an_jv *a, struct an_jv *b,
                    an_path_pair_fn fn, void *ud) {
  if (i == p->n) return fn(ap, ai, bp, bi, ud);
  const struct seg *s = &p->segs[i];
  int rc;
  switch (s->kind) {
  case SEG_KEY: {
    long ja = an_json_find(a, s->key, s->keylen), jb = an_json_find(b, s->key, s->keylen);
    if (ja < 0 || jb < 0) return 0;
    return walk_rec(p, i + 1, a, (size_t)ja, b, (size_t)jb, a->u.members[ja].v,
                    b->u.members[jb].v, fn, ud);
  }
  case SEG_INDEX: {
    size_t ja, jb;
    if (a->type != AN_J_ARRAY || b->type != AN_J_ARRAY) return 0;
    if (!array_index(a, s->index, &ja) || !array_index(b, s->index, &jb)) return 0;
    return walk_rec(p, i + 1, a, ja, b, jb, a->u.items[ja], b->u.items[jb], fn, ud);
  }
  case SEG_WILD:
    if (a->type == AN_J_ARRAY && b->type == AN_J_ARRAY) {
      size_t n = a->n < b->n ? a->n : b->n;
      for (size_t j = 0; j < n; j++)
        if ((rc = walk_rec(p, i + 1, a, j, b, j, a->u.items[j], b->u.items[j], fn, ud)) != 0)
          return rc;
    } else if (a->type == AN_J_OBJECT && b->type == AN_J_OBJECT) {
      for (size_t j = 0; j < a->n; j++) {
        const struct an_jmember *mb = &a->u.members[j];
        long k = an_json_find(b, mb->key, mb->keylen);
        if (k >= 0 &&
            (rc = walk_rec(p, i + 1, a, j, b, (size_t)k, mb->v, b->u.members[k].v, fn, ud)) != 0)
          return rc;
      }
    }
    return 0;
  case SEG_DESCEND:
    return walk_descend(p, i, a, b, fn, ud);
  }
  return 0;
}

int an_path_walk_pair(const struct an_path *p, struct an_jv *a, struct an_jv *b,
                      an_path_pair_fn fn, void *user_data) {
  if (a == NULL || b == NULL || p->n == 0) return 0; /* the root has no parent to set */
  return walk_rec(p, 0, NULL, 0, NULL, 0, a, b, fn, user_data);
}

static struct an_jv *get_n(const struct an_path *p, size_t n, struct an_jv *root) {
  struct an_jv *node = root;
  for (size_t i = 0; i < n && node != NULL; i++) {
    const struct seg *s = &p->segs[i];
    size_t j;
    if (s->kind == SEG_KEY)
      node = an_json_get(node, s->key, s->keylen);
    else if (s->kind == SEG_INDEX)
      node = node->type == AN_J_ARRAY && array_index(node, s->index, &j) ? node->u.items[j] : NULL;
    else
      return NULL;
  }
  return node;
}

struct an_jv *an_path_get(const struct an_path *p, struct an_jv *root) {
  return root == NULL ? NULL : get_n(p, p->n, root);
}

struct an_jv *an_path_take(const struct an_path *p, struct an_jv *root) {
  if (p->n == 0 || !p->simple || root == NULL) return NULL;
  struct an_jv *par = get_n(p, p->n - 1, root), *v = NULL;
  const struct seg *s = &p->segs[p->n - 1];
  if (par == NULL) return NULL;
  if (s->kind == SEG_KEY) {
    long j = an_json_find(par, s->key, s->keylen);
    if (j >= 0) {
      v = par->u.members[j].v;
      an_json_remove_at(par, (size_t)j);
    }
  } else if (s->kind == SEG_INDEX && par->type == AN_J_ARRAY) {
    size_t j;
    if (array_index(par, s->index, &j)) {
      v = par->u.items[j];
      an_json_remove_at(par, j);
    }
  }
  return v;
}

int an_path_put(const struct an_path *p, struct an_arena *a, struct an_jv *root,
                struct an_jv *value) {
  if (p->n == 0 || !p->simple || root == NULL) return CUT_ERR_INVALID;
  struct an_jv *node = root;
  for (size_t i = 0; i + 1 < p->n; i++) {
    const struct seg *s = &p->segs[i];
    struct an_jv *next;
    size_t j;
    if (s->kind == SEG_KEY) {
      if (node->type != AN_J_OBJECT) return CUT_ERR_INVALID;
      next = an_json_get(node, s->key, s->keylen);
      if (next == NULL) {
        next = an_json_new(a, AN_J_OBJECT);
        if (next == NULL || an_json_set(a, node, s->key, s->keylen, next) != 0)
          return CUT_ERR_NOMEM;
      }
    } else {
      if (node->type != AN_J_ARRAY || !array_index(node, s->index, &j)) return CUT_ERR_INVALID;
      next = node->u.items[j];
    }
    node = next;
  }
  const struct seg *last = &p->segs[p->n - 1];
  size_t j;
  if (last->kind == SEG_KEY && node->type == AN_J_OBJECT)
    return an_json_set(a, node, last->key, last->keylen, value) == 0 ? 0 : CUT_ERR_NOMEM;
  if (last->kind == SEG_INDEX && node->type == AN_J_ARRAY && array_index(node, last->index, &j)) {
    node->u.items[j] = value;
    return 0;
  }
  return CUT_ERR_INVALID;
}
