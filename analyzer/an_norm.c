/* an_norm: the normalization operations of the rules file, over jansson trees. */
#include "analyzer/an_norm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"

static int type_rank(json_t *v) {
  switch (json_typeof(v)) {
  case JSON_NULL: return 0;
  case JSON_FALSE: return 1;
  case JSON_TRUE: return 2;
  case JSON_INTEGER:
  case JSON_REAL: return 3;
  case JSON_STRING: return 4;
  case JSON_ARRAY: return 5;
  case JSON_OBJECT: return 6;
  }
  return 7;
}

int an_norm_cmp(json_t *a, json_t *b) {
  if (a == NULL || b == NULL) return a == b ? 0 : (a == NULL ? 1 : -1);
  int ra = type_rank(a), rb = type_rank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  switch (ra) {
  case 3: {
    if (json_is_integer(a) && json_is_integer(b)) {
      json_int_t x = json_integer_value(a), y = json_integer_value(b);
      return x < y ? -1 : x > y;
    }
    double x = json_number_value(a), y = json_number_value(b);
    return x < y ? -1 : x > y;
  }
  case 4: {
    size_t la = json_string_length(a), lb = json_string_length(b);
    int c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
    return c != 0 ? (c < 0 ? -1 : 1) : (la < lb ? -1 : la > lb);
  }
  case 5: {
    size_t na = json_array_size(a), nb = json_array_size(b);
    for (size_t i = 0; i < na && i < nb; i++) {
      int c = an_norm_cmp(json_array_get(a, i), json_array_get(b, i));
      if (c != 0) return c;
    }
    return na < nb ? -1 : na > nb;
  }
  case 6: {
    /* Canonical text (sorted keys) gives a stable order for objects. */
    char *sa = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
    char *sb = json_dumps(b, JSON_SORT_KEYS | JSON_COMPACT);
    int c = (sa && sb) ? strcmp(sa, sb) : 0;
    free(sa);
    free(sb);
    return c < 0 ? -1 : c > 0;
  }
  }
  return 0;
}

struct sort_item {
  json_t *v;
  json_t *k; /* sort key (borrowed), NULL = missing: sorts last */
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

static int sort_array(json_t *arr, const char *by) {
  size_t n = json_array_size(arr);
  if (n < 2) return 0;
  struct sort_item stack[64], *items = n <= 64 ? stack : malloc(n * sizeof *items);
  if (items == NULL) return CUT_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(arr, i);
    items[i].v = json_incref(v);
    items[i].pos = i;
    items[i].k = by == NULL ? v : (json_is_object(v) ? json_object_get(v, by) : NULL);
  }
  qsort(items, n, sizeof *items, sort_item_cmp);
  json_array_clear(arr);
  int rc = 0;
  for (size_t i = 0; i < n; i++)
    if (json_array_append_new(arr, items[i].v) != 0) rc = CUT_ERR_NOMEM;
  if (items != stack) free(items);
  return rc;
}

/* Replaces every match of re in s by `with`; returns a new string or NULL
 * when nothing matched (or on ENOMEM, which then just skips the rule). */
static char *regex_replace(const regex_t *re, const char *s, const char *with) {
  size_t wlen = strlen(with), cap = strlen(s) + 16, len = 0;
  char *out = NULL;
  const char *p = s;
  regmatch_t m;
  int eflags = 0, any = 0;
  while (regexec(re, p, 1, &m, eflags) == 0) {
    size_t pre = (size_t)m.rm_so, mlen = (size_t)(m.rm_eo - m.rm_so);
    if (out == NULL || len + pre + wlen + 1 > cap) {
      cap = (len + pre + wlen + 1) * 2;
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
  return o;
}

static int remove_match(const struct an_match *m) {
  if (m->parent == NULL) return 0; /* the root cannot be removed */
  /* Failure here only means "already gone". */
  if (m->key != NULL)
    (void)json_object_del(m->parent, m->key);
  else
    (void)json_array_remove(m->parent, m->index);
  return 0;
}

static int set_match(const struct an_match *m, json_t **doc, json_t *v) {
  if (m->parent == NULL) {
    json_decref(*doc);
    *doc = v;
    return 0;
  }
  if (m->key != NULL) return json_object_set_new(m->parent, m->key, v) == 0 ? 0 : CUT_ERR_NOMEM;
  return json_array_set_new(m->parent, m->index, v) == 0 ? 0 : CUT_ERR_NOMEM;
}

static json_t *list_to_map(json_t *arr, const char *key, const char *value) {
  json_t *map = json_object();
  if (map == NULL) return NULL;
  size_t i;
  json_t *el;
  json_array_foreach(arr, i, el) {
    json_t *k = json_is_object(el) ? json_object_get(el, key) : NULL;
    char num[64];
    const char *ks;
    if (json_is_string(k)) {
      ks = json_string_value(k);
    } else if (json_is_integer(k)) {
      snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(k));
      ks = num;
    } else {
      json_decref(map);
      return NULL; /* not a list of keyed objects: leave it alone */
    }
    json_t *v;
    if (value != NULL) {
      v = json_object_get(el, value);
      v = v != NULL ? json_incref(v) : json_null();
    } else {
      v = json_copy(el);
      if (v != NULL) json_object_del(v, key);
    }
    if (v == NULL || json_object_set_new(map, ks, v) != 0) {
      json_decref(map);
      return NULL;
    }
  }
  return map;
}

static int apply_op(const struct an_op *op, json_t **doc, struct an_matches *m) {
  int rc = 0;
  if (op->kind == AN_OP_TOLERANCE) return 0;
  if (op->kind == AN_OP_RENAME) {
    json_t *v = an_path_take(op->path, *doc);
    if (v == NULL) return 0;
    rc = an_path_put(op->to, *doc, v);
    return rc == CUT_ERR_INVALID ? 0 : rc;
  }
  int n = an_path_select(op->path, *doc, m);
  if (n < 0) return n;
  for (size_t i = m->n; i-- > 0 && rc == 0;) {
    const struct an_match *mt = &m->v[i];
    switch (op->kind) {
    case AN_OP_IGNORE:
    case AN_OP_REMOVE:
      rc = remove_match(mt);
      break;
    case AN_OP_SORT:
      if (json_is_array(mt->value)) rc = sort_array(mt->value, op->by);
      break;
    case AN_OP_REPLACE:
      if (json_is_string(mt->value)) {
        char *s = regex_replace(&op->re, json_string_value(mt->value), op->with);
        if (s != NULL) {
          json_t *nv = json_string(s);
          free(s);
          if (nv != NULL) rc = set_match(mt, doc, nv);
        }
      }
      break;
    case AN_OP_LIST_TO_MAP:
      if (json_is_array(mt->value)) {
        json_t *map = list_to_map(mt->value, op->key, op->value);
        if (map != NULL) rc = set_match(mt, doc, map);
      }
      break;
    default:
      break;
    }
  }
  return rc;
}

int an_norm_apply(const struct an_ops *ops, json_t **doc) {
  struct an_matches m = {0};
  int rc = 0;
  for (size_t i = 0; i < ops->n && rc == 0; i++) rc = apply_op(&ops->v[i], doc, &m);
  an_matches_clear(&m);
  return rc;
}

static int tol_cb(json_t *ap, json_t *bp, const char *key, size_t index, json_t *a, json_t *b,
                  void *user_data) {
  const struct an_op *op = user_data;
  (void)ap;
  if (bp == NULL || !json_is_number(a) || !json_is_number(b)) return 0;
  double x = json_number_value(a), y = json_number_value(b), d = fabs(x - y);
  int within = 0;
  if (op->absolute >= 0 && d <= op->absolute) within = 1;
  double mag = fabs(x) > fabs(y) ? fabs(x) : fabs(y);
  if (op->relative >= 0 && d <= op->relative * mag) within = 1;
  if (!within || d == 0) return 0;
  json_t *copy = json_copy(a);
  if (copy == NULL) return CUT_ERR_NOMEM;
  if (key != NULL) return json_object_set_new(bp, key, copy) == 0 ? 0 : CUT_ERR_NOMEM;
  return json_array_set_new(bp, index, copy) == 0 ? 0 : CUT_ERR_NOMEM;
}

int an_norm_tolerance(const struct an_ops *ops, json_t *primary, json_t *shadow) {
  for (size_t i = 0; i < ops->n; i++) {
    if (ops->v[i].kind != AN_OP_TOLERANCE) continue;
    int rc = an_path_walk_pair(ops->v[i].path, primary, shadow, tol_cb, (void *)&ops->v[i]);
    if (rc != 0) return rc;
  }
  return 0;
}
