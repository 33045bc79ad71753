/* an_norm: the normalization operations of the rules file, over an_json trees. */
#include "analyzer/an_norm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"

static int type_rank(const struct an_jv *v) {
  switch (v->type) {
  case AN_J_NULL: return 0;
  case AN_J_FALSE: return 1;
  case AN_J_TRUE: return 2;
  case AN_J_INT:
  case AN_J_REAL: return 3;
  case AN_J_STRING: return 4;
  case AN_J_ARRAY: return 5;
  case AN_J_OBJECT: return 6;
  }
  return 7;
}

static int bytes_cmp(const char *a, size_t la, const char *b, size_t lb) {
  int c = memcmp(a, b, la < lb ? la : lb);
  return c != 0 ? (c < 0 ? -1 : 1) : (la < lb ? -1 : la > lb);
}

static int member_cmp(const void *x, const void *y) {
  const struct an_jmember *a = *(const struct an_jmember *const *)x;
  const struct an_jmember *b = *(const struct an_jmember *const *)y;
  return bytes_cmp(a->key, a->keylen, b->key, b->keylen);
}

/* Objects compare by their members in key order; rare in sort keys, so the
 * temporary index is simply malloc'ed. */
static int object_cmp(const struct an_jv *a, const struct an_jv *b) {
  const struct an_jmember **ia = malloc((a->n + 1) * sizeof *ia);
  const struct an_jmember **ib = malloc((b->n + 1) * sizeof *ib);
  int c = 0;
  if (ia == NULL || ib == NULL) goto out;
  for (size_t i = 0; i < a->n; i++) ia[i] = &a->u.members[i];
  for (size_t i = 0; i < b->n; i++) ib[i] = &b->u.members[i];
  qsort(ia, a->n, sizeof *ia, member_cmp);
  qsort(ib, b->n, sizeof *ib, member_cmp);
  for (size_t i = 0; i < a->n && i < b->n && c == 0; i++) {
    c = bytes_cmp(ia[i]->key, ia[i]->keylen, ib[i]->key, ib[i]->keylen);
    if (c == 0) c = an_norm_cmp(ia[i]->v, ib[i]->v);
  }
  if (c == 0) c = a->n < b->n ? -1 : a->n > b->n;
out:
  free(ia);
  free(ib);
  return c;
}

int an_norm_cmp(const struct an_jv *a, const struct an_jv *b) {
  if (a == NULL || b == NULL) return a == b ? 0 : (a == NULL ? 1 : -1);
  int ra = type_rank(a), rb = type_rank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  switch (ra) {
  case 3:
    if (a->type == AN_J_INT && b->type == AN_J_INT) return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    return an_json_number(a) < an_json_number(b) ? -1 : an_json_number(a) > an_json_number(b);
  case 4: return bytes_cmp(a->u.s, a->n, b->u.s, b->n);
  case 5:
    for (size_t i = 0; i < a->n && i < b->n; i++) {
      int c = an_norm_cmp(a->u.items[i], b->u.items[i]);
      if (c != 0) return c;
    }
    return a->n < b->n ? -1 : a->n > b->n;
  case 6: return object_cmp(a, b);
  }
  return 0;
}

struct sort_item {
  struct an_jv *v;
  const struct an_jv *k; /* sort key, NULL = missing: sorts last */
  size_t pos;
};

static int sort_item_cmp(const void *x, const void *y) {
  const struct sort_item *a = x, *b = y;
  int c;
  if (a->k == NULL || b->k == NULL)
    c = (a->k == NULL) - (b->k == NULL);
  else
    c = an_norm_cmp(a->k, b->k);
  if (c != 0) return c;
  return a->pos < b->pos ? -1 : a->pos > b->pos; /* stable */
}

static int sort_array(struct an_jv *arr, const char *by) {
  size_t n = arr->n;
  if (n < 2) return 0;
  struct sort_item stack[64], *items = n <= 64 ? stack : malloc(n * sizeof *items);
  if (items == NULL) return CUT_ERR_NOMEM;
  size_t bylen = by ? strlen(by) : 0;
  int sorted = 1;
  for (size_t i = 0; i < n; i++) {
    struct an_jv *v = arr->u.items[i];
    items[i].v = v;
    items[i].pos = i;
    items[i].k = by == NULL ? v : an_json_get(v, by, bylen);
    if (i > 0 && sorted && sort_item_cmp(&items[i - 1], &items[i]) > 0) sorted = 0;
  }
  if (!sorted) {
    qsort(items, n, sizeof *items, sort_item_cmp);
    for (size_t i = 0; i < n; i++) arr->u.items[i] = items[i].v;
  }
  if (items != stack) free(items);
  return 0;
}

/* Replaces every match of re in s by `with`; returns a new string in the
 * arena, or NULL when nothing matched (or on ENOMEM: the rule is skipped). */
static struct an_jv *regex_replace(struct an_arena *a, const regex_t *re, const char *s,
                                   const char *with) {
  size_t wlen = strlen(with), cap = strlen(s) + 16, len = 0;
  char *out = NULL;
  const char *p = s;
  regmatch_t m;
  int eflags = 0, any = 0;
  while (regexec(re, p, 1, &m, eflags) == 0) {
    size_t pre = (size_t)m.rm_so, mlen = (size_t)(m.rm_eo - m.rm_so);
    if (out == NULL || len + pre + wlen + 2 > cap) {
      cap = (len + pre + wlen + 2) * 2;
      char *o = realloc(out, cap);
      if (o == NULL) {
        free(out);
        return NULL;
      }
      out = o;
    }
    memcpy(out + len, p, pre);
    len += pre;
    memcpy(out + len, with, wlen);
    len += wlen;
    any = 1;
    if (mlen == 0) {
      /* An empty match: copy one character and move on. */
      if (p[pre] == '\0') {
        p += pre;
        break;
      }
      out[len++] = p[pre];
      p += pre + 1;
    } else {
      p += m.rm_eo;
    }
    eflags = REG_NOTBOL;
  }
  if (!any) return NULL;
  size_t rest = strlen(p);
  char *o = realloc(out, len + rest + 1);
  if (o == NULL) {
    free(out);
    return NULL;
  }
  memcpy(o + len, p, rest + 1);
  struct an_jv *v = an_json_string(a, o, len + rest);
  free(o);
  return v;
}

static void set_match(const struct an_match *m, struct an_jv **doc, struct an_jv *v) {
  if (m->parent == NULL)
    *doc = v;
  else if (m->parent->type == AN_J_ARRAY)
    m->parent->u.items[m->index] = v;
  else
    m->parent->u.members[m->index].v = v;
}

static struct an_jv *list_to_map(struct an_arena *a, struct an_jv *arr, const char *key,
                                 const char *value) {
  struct an_jv *map = an_json_new(a, AN_J_OBJECT);
  size_t klen = strlen(key), vlen = value ? strlen(value) : 0;
  if (map == NULL) return NULL;
  for (size_t i = 0; i < arr->n; i++) {
    struct an_jv *el = arr->u.items[i], *k = an_json_get(el, key, klen);
    char num[32];
    const char *ks;
    size_t kl;
    if (k != NULL && k->type == AN_J_STRING) {
      ks = k->u.s;
      kl = k->n;
    } else if (k != NULL && k->type == AN_J_INT) {
      kl = (size_t)snprintf(num, sizeof num, "%lld", (long long)k->u.i);
      ks = num;
    } else {
      return NULL; /* not a list of keyed objects: leave it alone */
    }
    struct an_jv *v;
    if (value != NULL) {
      v = an_json_get(el, value, vlen);
      if (v == NULL) v = an_json_new(a, AN_J_NULL);
    } else {
      /* The element without its key member. */
      v = an_json_new(a, AN_J_OBJECT);
      for (size_t j = 0; v != NULL && j < el->n; j++) {
        const struct an_jmember *mb = &el->u.members[j];
        if (mb->keylen == klen && memcmp(mb->key, key, klen) == 0) continue;
        if (an_json_set(a, v, mb->key, mb->keylen, mb->v) != 0) v = NULL;
      }
    }
    if (v == NULL || an_json_set(a, map, ks, kl, v) != 0) return NULL;
  }
  return map;
}

static int apply_op(const struct an_op *op, struct an_arena *a, struct an_jv **doc,
                    struct an_matches *m) {
  if (op->kind == AN_OP_TOLERANCE) return 0;
  if (op->kind == AN_OP_RENAME) {
    struct an_jv *v = an_path_take(op->path, *doc);
    if (v == NULL) return 0;
    int rc = an_path_put(op->to, a, *doc, v);
    return rc == CUT_ERR_INVALID ? 0 : rc;
  }
  int n = an_path_select(op->path, *doc, m);
  if (n < 0) return n;
  for (size_t i = m->n; i-- > 0;) {
    const struct an_match *mt = &m->v[i];
    struct an_jv *v = mt->value;
    switch (op->kind) {
    case AN_OP_IGNORE:
    case AN_OP_REMOVE:
      if (mt->parent != NULL) an_json_remove_at(mt->parent, mt->index);
      break;
    case AN_OP_SORT:
      if (v->type == AN_J_ARRAY && sort_array(v, op->by) != 0) return CUT_ERR_NOMEM;
      break;
    case AN_OP_REPLACE:
      if (v->type == AN_J_STRING) {
        struct an_jv *nv = regex_replace(a, &op->re, v->u.s, op->with);
        if (nv != NULL) set_match(mt, doc, nv);
      }
      break;
    case AN_OP_LIST_TO_MAP:
      if (v->type == AN_J_ARRAY) {
        struct an_jv *map = list_to_map(a, v, op->key, op->value);
        if (map != NULL) set_match(mt, doc, map);
      }
      break;
    default:
      break;
    }
  }
  return 0;
}

int an_norm_apply(const struct an_ops *ops, struct an_arena *a, struct an_jv **doc) {
  struct an_matches m = {0};
  int rc = 0;
  for (size_t i = 0; i < ops->n && rc == 0; i++) rc = apply_op(&ops->v[i], a, doc, &m);
  an_matches_clear(&m);
  return rc;
}

static struct an_jv *slot(struct an_jv *parent, size_t i) {
  return parent->type == AN_J_ARRAY ? parent->u.items[i] : parent->u.members[i].v;
}

static int tol_cb(struct an_jv *ap, size_t ai, struct an_jv *bp, size_t bi, void *user_data) {
  const struct an_op *op = user_data;
  struct an_jv *a = slot(ap, ai), *b = slot(bp, bi);
  int na = a->type == AN_J_INT || a->type == AN_J_REAL, nb = b->type == AN_J_INT || b->type == AN_J_REAL;
  if (!na || !nb) return 0;
  double x = an_json_number(a), y = an_json_number(b), d = fabs(x - y);
  int within = 0;
  if (op->absolute >= 0 && d <= op->absolute) within = 1;
  double mag = fabs(x) > fabs(y) ? fabs(x) : fabs(y);
  if (op->relative >= 0 && d <= op->relative * mag) within = 1;
  if (!within || d == 0) return 0;
  /* The primary's node stands in for the shadow's: both trees are
   * read-only from here on, so sharing it is safe. */
  if (bp->type == AN_J_ARRAY)
    bp->u.items[bi] = a;
  else
    bp->u.members[bi].v = a;
  return 0;
}

int an_norm_tolerance(const struct an_ops *ops, struct an_jv *primary, struct an_jv *shadow) {
  for (size_t i = 0; i < ops->n; i++) {
    if (ops->v[i].kind != AN_OP_TOLERANCE) continue;
    int rc = an_path_walk_pair(ops->v[i].path, primary, shadow, tol_cb, (void *)&ops->v[i]);
    if (rc != 0) return rc;
  }
  return 0;
}
