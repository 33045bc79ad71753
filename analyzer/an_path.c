/* an_path: compile and evaluate the JSONPath subset used by analyzer rules. */
#include "analyzer/an_path.h"

#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"

enum seg_kind { SEG_KEY, SEG_INDEX, SEG_WILD, SEG_DESCEND };

struct seg {
  enum seg_kind kind;
  char *key;  /* SEG_KEY, SEG_DESCEND */
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

static int add_match(struct an_matches *m, json_t *parent, const char *key, size_t index,
                     json_t *value) {
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 8;
    struct an_match *v = realloc(m->v, cap * sizeof *v);
    if (v == NULL) return CUT_ERR_NOMEM;
    m->v = v;
    m->cap = cap;
  }
  m->v[m->n++] = (struct an_match){parent, key, index, value};
  return 0;
}

static int array_index(json_t *arr, long idx, size_t *out) {
  long n = (long)json_array_size(arr);
  if (idx < 0) idx += n;
  if (idx < 0 || idx >= n) return 0;
  *out = (size_t)idx;
  return 1;
}

static int select_rec(const struct an_path *p, size_t i, json_t *parent, const char *key,
                      size_t index, json_t *node, struct an_matches *m);

/* Every node below `node` (pre-order) that is an object member named `name`:
 * continue the path from there. */
static int descend(const struct an_path *p, size_t i, json_t *node, struct an_matches *m) {
  const char *name = p->segs[i].key;
  int rc;
  if (json_is_object(node)) {
    const char *k;
    json_t *v;
    json_object_foreach(node, k, v) {
      if (strcmp(k, name) == 0) {
        if ((rc = select_rec(p, i + 1, node, k, 0, v, m)) < 0) return rc;
      }
      if ((rc = descend(p, i, v, m)) < 0) return rc;
    }
  } else if (json_is_array(node)) {
    size_t j;
    json_t *v;
    json_array_foreach(node, j, v) {
      if ((rc = descend(p, i, v, m)) < 0) return rc;
    }
  }
  return 0;
}

static int select_rec(const struct an_path *p, size_t i, json_t *parent, const char *key,
                      size_t index, json_t *node, struct an_matches *m) {
  if (i == p->n) return add_match(m, parent, key, index, node);
  const struct seg *s = &p->segs[i];
  int rc;
  switch (s->kind) {
  case SEG_KEY: {
    json_t *v = json_is_object(node) ? json_object_get(node, s->key) : NULL;
    if (v == NULL) return 0;
    /* Point at the key stored in the object, which outlives our segment. */
    const char *k = json_object_iter_key(json_object_iter_at(node, s->key));
    return select_rec(p, i + 1, node, k, 0, v, m);
  }
  case SEG_INDEX: {
    size_t j;
    if (!json_is_array(node) || !array_index(node, s->index, &j)) return 0;
    return select_rec(p, i + 1, node, NULL, j, json_array_get(node, j), m);
  }
  case SEG_WILD:
    if (json_is_array(node)) {
      size_t j;
      json_t *v;
      json_array_foreach(node, j, v) {
        if ((rc = select_rec(p, i + 1, node, NULL, j, v, m)) < 0) return rc;
      }
    } else if (json_is_object(node)) {
      const char *k;
      json_t *v;
      json_object_foreach(node, k, v) {
        if ((rc = select_rec(p, i + 1, node, k, 0, v, m)) < 0) return rc;
      }
    }
    return 0;
  case SEG_DESCEND:
    return descend(p, i, node, m);
  }
  return 0;
}

int an_path_select(const struct an_path *p, json_t *root, struct an_matches *m) {
  m->n = 0;
  if (root == NULL) return 0;
  int rc = select_rec(p, 0, NULL, NULL, 0, root, m);
  return rc < 0 ? rc : (int)m->n;
}

static int walk_rec(const struct an_path *p, size_t i, json_t *ap, json_t *bp, const char *key,
                    size_t index, json_t *a, json_t *b, an_path_pair_fn fn, void *ud);

static int walk_descend(const struct an_path *p, size_t i, json_t *a, json_t *b,
                        an_path_pair_fn fn, void *ud) {
  const char *name = p->segs[i].key;
  int rc;
  if (json_is_object(a) && json_is_object(b)) {
    const char *k;
    json_t *va;
    json_object_foreach(a, k, va) {
      json_t *vb = json_object_get(b, k);
      if (vb == NULL) continue;
      if (strcmp(k, name) == 0) {
        if ((rc = walk_rec(p, i + 1, a, b, k, 0, va, vb, fn, ud)) != 0) return rc;
        /* The callback may have replaced the member. */
        va = json_object_get(a, k);
        vb = json_object_get(b, k);
        if (va == NULL || vb == NULL) continue;
      }
      if ((rc = walk_descend(p, i, va, vb, fn, ud)) != 0) return rc;
    }
  } else if (json_is_array(a) && json_is_array(b)) {
    size_t n = json_array_size(a) < json_array_size(b) ? json_array_size(a) : json_array_size(b);
    for (size_t j = 0; j < n; j++) {
      rc = walk_descend(p, i, json_array_get(a, j), json_array_get(b, j), fn, ud);
      if (rc != 0) return rc;
    }
  }
  return 0;
}

static int walk_rec(const struct an_path *p, size_t i, json_t *ap, json_t *bp, const char *key,
                    size_t index, json_t *a, json_t *b, an_path_pair_fn fn, void *ud) {
  if (i == p->n) return fn(ap, bp, key, index, a, b, ud);
  const struct seg *s = &p->segs[i];
  int rc;
  switch (s->kind) {
  case SEG_KEY: {
    if (!json_is_object(a) || !json_is_object(b)) return 0;
    json_t *va = json_object_get(a, s->key), *vb = json_object_get(b, s->key);
    if (va == NULL || vb == NULL) return 0;
    return walk_rec(p, i + 1, a, b, s->key, 0, va, vb, fn, ud);
  }
  case SEG_INDEX: {
    size_t ja, jb;
    if (!json_is_array(a) || !json_is_array(b)) return 0;
    if (!array_index(a, s->index, &ja) || !array_index(b, s->index, &jb)) return 0;
    return walk_rec(p, i + 1, a, b, NULL, ja, json_array_get(a, ja), json_array_get(b, jb), fn,
                    ud);
  }
  case SEG_WILD:
    if (json_is_array(a) && json_is_array(b)) {
      size_t n =
          json_array_size(a) < json_array_size(b) ? json_array_size(a) : json_array_size(b);
      for (size_t j = 0; j < n; j++) {
        rc = walk_rec(p, i + 1, a, b, NULL, j, json_array_get(a, j), json_array_get(b, j), fn,
                      ud);
        if (rc != 0) return rc;
      }
    } else if (json_is_object(a) && json_is_object(b)) {
      const char *k;
      json_t *va;
      json_object_foreach(a, k, va) {
        json_t *vb = json_object_get(b, k);
        if (vb != NULL && (rc = walk_rec(p, i + 1, a, b, k, 0, va, vb, fn, ud)) != 0) return rc;
      }
    }
    return 0;
  case SEG_DESCEND:
    return walk_descend(p, i, a, b, fn, ud);
  }
  return 0;
}

int an_path_walk_pair(const struct an_path *p, json_t *a, json_t *b, an_path_pair_fn fn,
                      void *user_data) {
  if (a == NULL || b == NULL) return 0;
  return walk_rec(p, 0, NULL, NULL, NULL, 0, a, b, fn, user_data);
}

json_t *an_path_get(const struct an_path *p, json_t *root) {
  json_t *node = root;
  for (size_t i = 0; i < p->n && node != NULL; i++) {
    const struct seg *s = &p->segs[i];
    size_t j;
    if (s->kind == SEG_KEY)
      node = json_is_object(node) ? json_object_get(node, s->key) : NULL;
    else if (s->kind == SEG_INDEX)
      node = json_is_array(node) && array_index(node, s->index, &j) ? json_array_get(node, j)
                                                                      : NULL;
    else
      return NULL;
  }
  return node;
}

json_t *an_path_take(const struct an_path *p, json_t *root) {
  if (p->n == 0 || !p->simple) return NULL;
  struct an_path parent = *p;
  parent.n = p->n - 1;
  json_t *par = an_path_get(&parent, root);
  const struct seg *s = &p->segs[p->n - 1];
  json_t *v = NULL;
  if (s->kind == SEG_KEY && json_is_object(par)) {
    v = json_object_get(par, s->key);
    if (v != NULL) {
      json_incref(v);
      json_object_del(par, s->key);
    }
  } else if (s->kind == SEG_INDEX && json_is_array(par)) {
    size_t j;
    if (array_index(par, s->index, &j)) {
      v = json_incref(json_array_get(par, j));
      json_array_remove(par, j);
    }
  }
  return v;
}

int an_path_put(const struct an_path *p, json_t *root, json_t *value) {
  if (p->n == 0 || !p->simple) {
    json_decref(value);
    return CUT_ERR_INVALID;
  }
  json_t *node = root;
  for (size_t i = 0; i + 1 < p->n; i++) {
    const struct seg *s = &p->segs[i];
    json_t *next = NULL;
    size_t j;
    if (s->kind == SEG_KEY) {
      if (!json_is_object(node)) goto invalid;
      next = json_object_get(node, s->key);
      if (next == NULL) {
        next = json_object();
        if (next == NULL || json_object_set_new(node, s->key, next) != 0) {
          json_decref(value);
          return CUT_ERR_NOMEM;
        }
      }
    } else {
      if (!json_is_array(node) || !array_index(node, s->index, &j)) goto invalid;
      next = json_array_get(node, j);
    }
    node = next;
  }
  const struct seg *last = &p->segs[p->n - 1];
  size_t j;
  if (last->kind == SEG_KEY && json_is_object(node)) {
    return json_object_set_new(node, last->key, value) == 0 ? 0 : CUT_ERR_NOMEM;
  }
  if (last->kind == SEG_INDEX && json_is_array(node) && array_index(node, last->index, &j)) {
    return json_array_set_new(node, j, value) == 0 ? 0 : CUT_ERR_NOMEM;
  }
invalid:
  json_decref(value);
  return CUT_ERR_INVALID;
}
