/* an_rules: load and validate the normalization rules file (YAML via libyaml). */
#include "analyzer/an_rules.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#include "analyzer/an_rules_int.h"
#include "common/cut_err.h"
#include "config/yaml_doc.h"

#define MAX_RULES 64 /* an_compare applies at most this many rules per pair */

void an_names_clear(struct an_names *n) {
  for (size_t i = 0; i < n->n; i++) free(n->v[i]);
  free(n->v);
  n->v = NULL;
  n->n = 0;
}

int an_names_add(struct an_names *n, const char *name) {
  char **v = realloc(n->v, (n->n + 1) * sizeof *v);
  if (v == NULL) return CUT_ERR_NOMEM;
  n->v = v;
  char *c = strdup(name);
  if (c == NULL) return CUT_ERR_NOMEM;
  for (char *p = c; *p; p++) *p = (char)tolower((unsigned char)*p);
  n->v[n->n++] = c;
  return 0;
}

int an_names_has(const struct an_names *n, const char *name) {
  for (size_t i = 0; i < n->n; i++)
    if (strcasecmp(n->v[i], name) == 0) return 1;
  return 0;
}

void an_op_clear(struct an_op *op) {
  an_path_free(op->path);
  an_path_free(op->to);
  free(op->by);
  free(op->key);
  free(op->value);
  free(op->with);
  if (op->has_re) regfree(&op->re);
  memset(op, 0, sizeof *op);
}

void an_ops_clear(struct an_ops *ops) {
  for (size_t i = 0; i < ops->n; i++) an_op_clear(&ops->v[i]);
  free(ops->v);
  ops->v = NULL;
  ops->n = 0;
}

static void rule_clear(struct an_rule *r) {
  free(r->route);
  free(r->path_prefix);
  free(r->method);
  an_ops_clear(&r->common);
  an_ops_clear(&r->primary);
  an_ops_clear(&r->shadow);
  an_names_clear(&r->ignore_headers);
  an_names_clear(&r->compare_headers);
}

void an_rules_free(struct an_rules *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->n; i++) rule_clear(&r->v[i]);
  free(r->v);
  an_names_clear(&r->ignore_headers);
  an_names_clear(&r->compare_headers);
  free(r);
}

static int set_defaults(struct an_rules *r) {
  static const char *ignore[] = {"date", "server", "x-request-id"};
  for (size_t i = 0; i < sizeof ignore / sizeof *ignore; i++)
    if (an_names_add(&r->ignore_headers, ignore[i]) != 0) return CUT_ERR_NOMEM;
  return an_names_add(&r->compare_headers, "content-type");
}

int an_rules_new(struct an_rules **out) {
  struct an_rules *r = calloc(1, sizeof *r);
  if (r == NULL) return CUT_ERR_NOMEM;
  if (set_defaults(r) != 0) {
    an_rules_free(r);
    return CUT_ERR_NOMEM;
  }
  *out = r;
  return 0;
}

/* ---- the loader: walk config/yaml_doc's positioned tree ---- */

typedef struct cfg_yaml_node ynode;

struct loader {
  struct cfg_yaml_errs *errs;
};

/* Reports a problem at node's position (FILE:LINE:COL: keypath: message)
 * and returns CUT_ERR_CONFIG, so a failure path is one statement. */
static int fail_at(struct loader *L, const ynode *node, const char *keypath, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(struct loader *L, const ynode *node, const char *keypath, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cfg_yaml_errs_vadd(L->errs, node ? node->line : 1, node ? node->col : 1, keypath, fmt, ap);
  va_end(ap);
  return CUT_ERR_CONFIG;
}

static const char *scalar(const ynode *n) {
  return n && n->type == CFG_YAML_SCALAR ? n->str : NULL;
}

/* Formats a key path; a path longer than the buffer is cut (only messages use it). */
static void kpf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void kpf(char *buf, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, n, fmt, ap);
  va_end(ap);
}

/* Rejects keys of mapping `n` not in `allowed` (NULL-terminated), with a
 * suggestion when one is close. */
static int check_keys(struct loader *L, const ynode *n, const char *path, const char *const *allowed) {
  size_t count = 0;
  while (allowed[count]) count++;
  return cfg_yaml_check_keys(L->errs, n, path, allowed, count) > 0 ? CUT_ERR_CONFIG : 0;
}

static const ynode *get(struct loader *L, const ynode *map, const char *key) {
  (void)L;
  const ynode *v = cfg_yaml_get(map, key);
  return v != NULL && v->type == CFG_YAML_SCALAR && v->is_null && !v->quoted ? NULL : v;
}

static int want_type(struct loader *L, const ynode *n, enum cfg_yaml_type t, const char *path) {
  static const char *names[] = {"a string", "a mapping", "a list"};
  if (n->invalid) return CUT_ERR_CONFIG; /* already reported */
  if (n->type != t) return fail_at(L, n, path, "must be %s", names[t]);
  return 0;
}

static int dup_scalar(struct loader *L, const ynode *n, const char *path, char **out) {
  if (want_type(L, n, CFG_YAML_SCALAR, path) != 0) return CUT_ERR_CONFIG;
  if ((*out = strdup(scalar(n))) == NULL) return CUT_ERR_NOMEM;
  return 0;
}

static int load_names(struct loader *L, const ynode *n, const char *path, struct an_names *out) {
  if (want_type(L, n, CFG_YAML_SEQ, path) != 0) return CUT_ERR_CONFIG;
  for (size_t i = 0; i < n->nitems; i++) {
    char ip[300];
    kpf(ip, sizeof ip, "%s[%zu]", path, i);
    const ynode *item = n->items[i];
    if (want_type(L, item, CFG_YAML_SCALAR, ip) != 0) return CUT_ERR_CONFIG;
    if (scalar(item)[0] == '\0') return fail_at(L, item, ip, "empty header name");
    if (an_names_add(out, scalar(item)) != 0) return CUT_ERR_NOMEM;
  }
  return 0;
}

static int load_path(struct loader *L, const ynode *n, const char *path, struct an_path **out) {
  char perr[256];
  if (want_type(L, n, CFG_YAML_SCALAR, path) != 0) return CUT_ERR_CONFIG;
  int rc = an_path_parse(scalar(n), out, perr, sizeof perr);
  if (rc == CUT_ERR_NOMEM) return rc;
  if (rc != 0) return fail_at(L, n, path, "%s", perr);
  return 0;
}

static int load_number(struct loader *L, const ynode *n, const char *path, double *out) {
  if (want_type(L, n, CFG_YAML_SCALAR, path) != 0) return CUT_ERR_CONFIG;
  const char *s = scalar(n);
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  int pct = end != NULL && *end == '%' && end[1] == '\0';
  if (end == s || (*end != '\0' && !pct) || errno != 0 || v < 0)
    return fail_at(L, n, path, "must be a non-negative number (\"%s\")", s);
  *out = pct ? v / 100.0 : v;
  return 0;
}

static struct an_op *new_op(struct an_ops *ops, enum an_op_kind kind, const ynode *n) {
  struct an_op *v = realloc(ops->v, (ops->n + 1) * sizeof *v);
  if (v == NULL) return NULL;
  ops->v = v;
  struct an_op *op = &ops->v[ops->n++];
  memset(op, 0, sizeof *op);
  op->kind = kind;
  op->line = n->line;
  op->absolute = op->relative = -1;
  return op;
}

#define FOR_ITEMS(L, n, item, ip, path)                                                     \
  for (size_t idx_ = 0;                                                                     \
       idx_ < (n)->nitems &&                                                                \
       ((item) = (n)->items[idx_], kpf(ip, sizeof ip, "%s[%zu]", path, idx_), 1);           \
       idx_++)

static int load_ignore(struct loader *L, const ynode *n, const char *path, struct an_ops *ops) {
  const ynode *item;
  char ip[300];
  int rc;
  if (want_type(L, n, CFG_YAML_SEQ, path) != 0) return CUT_ERR_CONFIG;
  FOR_ITEMS(L, n, item, ip, path) {
    struct an_op *op = new_op(ops, AN_OP_IGNORE, item);
    if (op == NULL) return CUT_ERR_NOMEM;
    if ((rc = load_path(L, item, ip, &op->path)) != 0) return rc;
    if (an_path_is_root(op->path)) return fail_at(L, item, ip, "cannot ignore the whole body");
  }
  return 0;
}

static int load_sort(struct loader *L, const ynode *n, const char *path, struct an_ops *ops) {
  static const char *const keys[] = {"path", "by", NULL};
  const ynode *item;
  char ip[300], kp[320];
  int rc;
  if (want_type(L, n, CFG_YAML_SEQ, path) != 0) return CUT_ERR_CONFIG;
  FOR_ITEMS(L, n, item, ip, path) {
    struct an_op *op = new_op(ops, AN_OP_SORT, item);
    if (op == NULL) return CUT_ERR_NOMEM;
    if (item->type == CFG_YAML_SCALAR) { /* shorthand: "- $.tags" */
      if ((rc = load_path(L, item, ip, &op->path)) != 0) return rc;
      continue;
    }
    if (want_type(L, item, CFG_YAML_MAP, ip) != 0) return CUT_ERR_CONFIG;
    if ((rc = check_keys(L, item, ip, keys)) != 0) return rc;
    const ynode *p = get(L, item, "path"), *by = get(L, item, "by");
    kpf(kp, sizeof kp, "%s.path", ip);
    if (p == NULL) return fail_at(L, item, kp, "is required");
    if ((rc = load_path(L, p, kp, &op->path)) != 0) return rc;
    kpf(kp, sizeof kp, "%s.by", ip);
    if (by != NULL && (rc = dup_scalar(L, by, kp, &op->by)) != 0) return rc;
  }
  return 0;
}

static int load_tolerance(struct loader *L, const ynode *n, const char *path, struct an_ops *ops) {
  static const char *const keys[] = {"path", "absolute", "relative", NULL};
  const ynode *item;
  char ip[300], kp[320];
  int rc;
  if (want_type(L, n, CFG_YAML_SEQ, path) != 0) return CUT_ERR_CONFIG;
  FOR_ITEMS(L, n, item, ip, path) {
    struct an_op *op = new_op(ops, AN_OP_TOLERANCE, item);
    if (op == NULL) return CUT_ERR_NOMEM;
    if (want_type(L, item, CFG_YAML_MAP, ip) != 0) return CUT_ERR_CONFIG;
    if ((rc = check_keys(L, item, ip, keys)) != 0) return rc;
    const ynode *p = get(L, item, "path"), *a = get(L, item, "absolute"),
                *r = get(L, item, "relative");
    kpf(kp, sizeof kp, "%s.path", ip);
    if (p == NULL) return fail_at(L, item, kp, "is required");
    if ((rc = load_path(L, p, kp, &op->path)) != 0) return rc;
    if (a == NULL && r == NULL) return fail_at(L, item, ip, "needs absolute or relative");
    kpf(kp, sizeof kp, "%s.absolute", ip);
    if (a != NULL && (rc = load_number(L, a, kp, &op->absolute)) != 0) return rc;
    kpf(kp, sizeof kp, "%s.relative", ip);
    if (r != NULL && (rc = load_number(L, r, kp, &op->relative)) != 0) return rc;
  }
  return 0;
}

static int load_replace(struct loader *L, const ynode *n, const char *path, struct an_ops *ops) {
  static const char *const keys[] = {"path", "regex", "with", NULL};
  const ynode *item;
  char ip[300], kp[320];
  int rc;
  if (want_type(L, n, CFG_YAML_SEQ, path) != 0) return CUT_ERR_CONFIG;
  FOR_ITEMS(L, n, item, ip, path) {
    struct an_op *op = new_op(ops, AN_OP_REPLACE, item);
    if (op == NULL) return CUT_ERR_NOMEM;
    if (want_type(L, item, CFG_YAML_MAP, ip) != 0) return CUT_ERR_CONFIG;
    if ((rc = check_keys(L, item, ip, keys)) != 0) return rc;
    const ynode *p = get(L, item, "path"), *re = get(L, item, "regex"), *w = get(L, item, "with");
    kpf(kp, sizeof kp, "%s.path", ip);
    if (p == NULL) return fail_at(L, item, kp, "is required");
    if ((rc = load_path(L, p, kp, &op->path)) != 0) return rc;
    kpf(kp, sizeof kp, "%s.regex", ip);
    if (re == NULL) return fail_at(L, item, kp, "is required");
    if (want_type(L, re, CFG_YAML_SCALAR, kp) != 0) return CUT_ERR_CONFIG;
    int rerc = regcomp(&op->re, scalar(re), REG_EXTENDED);
    if (rerc != 0) {
      char msg[200];
      regerror(rerc, &op->re, msg, sizeof msg);
      return fail_at(L, re, kp, "invalid regular expression: %s", msg);
    }
    op->has_re = 1;
    kpf(kp, sizeof kp, "%s.with", ip);
    if (w == NULL) {
      if ((op->with = strdup("")) == NULL) return CUT_ERR_NOMEM;
    } else if ((rc = dup_scalar(L, w, kp, &op->with)) != 0) {
      return rc;
    }
  }
  return 0;
}

static int load_transforms(struct loader *L, const ynode *n, const char *path, struct an_ops *ops) {
  const ynode *item;
  char ip[300], kp[340];
  int rc;
  if (want_type(L, n, CFG_YAML_SEQ, path) != 0) return CUT_ERR_CONFIG;
  FOR_ITEMS(L, n, item, ip, path) {
    static const char *const kinds[] = {"rename", "move", "list_to_map", "remove", NULL};
    if (want_type(L, item, CFG_YAML_MAP, ip) != 0) return CUT_ERR_CONFIG;
    if ((rc = check_keys(L, item, ip, kinds)) != 0) return rc;
    if (item->npairs != 1)
      return fail_at(L, item, ip, "each transform has exactly one of rename, list_to_map, remove");
    const struct cfg_yaml_pair *pair = &item->pairs[0];
    const char *kind = scalar(pair->key);
    const ynode *body = pair->value;
    kpf(kp, sizeof kp, "%s.%s", ip, kind);
    if (strcmp(kind, "rename") == 0 || strcmp(kind, "move") == 0) {
      static const char *const keys[] = {"from", "to", NULL};
      struct an_op *op = new_op(ops, AN_OP_RENAME, item);
      if (op == NULL) return CUT_ERR_NOMEM;
      if (want_type(L, body, CFG_YAML_MAP, kp) != 0) return CUT_ERR_CONFIG;
      if ((rc = check_keys(L, body, kp, keys)) != 0) return rc;
      const ynode *f = get(L, body, "from"), *t = get(L, body, "to");
      char fp[360];
      kpf(fp, sizeof fp, "%s.from", kp);
      if (f == NULL) return fail_at(L, body, fp, "is required");
      if ((rc = load_path(L, f, fp, &op->path)) != 0) return rc;
      if (!an_path_is_simple(op->path) || an_path_is_root(op->path))
        return fail_at(L, f, fp, "must name one node (no wildcards, not $)");
      kpf(fp, sizeof fp, "%s.to", kp);
      if (t == NULL) return fail_at(L, body, fp, "is required");
      if ((rc = load_path(L, t, fp, &op->to)) != 0) return rc;
      if (!an_path_is_simple(op->to) || an_path_is_root(op->to))
        return fail_at(L, t, fp, "must name one node (no wildcards, not $)");
    } else if (strcmp(kind, "list_to_map") == 0) {
      static const char *const keys[] = {"path", "key", "value", NULL};
      struct an_op *op = new_op(ops, AN_OP_LIST_TO_MAP, item);
      if (op == NULL) return CUT_ERR_NOMEM;
      if (want_type(L, body, CFG_YAML_MAP, kp) != 0) return CUT_ERR_CONFIG;
      if ((rc = check_keys(L, body, kp, keys)) != 0) return rc;
      const ynode *p = get(L, body, "path"), *k = get(L, body, "key"), *v = get(L, body, "value");
      char fp[360];
      kpf(fp, sizeof fp, "%s.path", kp);
      if (p == NULL) return fail_at(L, body, fp, "is required");
      if ((rc = load_path(L, p, fp, &op->path)) != 0) return rc;
      kpf(fp, sizeof fp, "%s.key", kp);
      if (k == NULL) return fail_at(L, body, fp, "is required");
      if ((rc = dup_scalar(L, k, fp, &op->key)) != 0) return rc;
      kpf(fp, sizeof fp, "%s.value", kp);
      if (v != NULL && (rc = dup_scalar(L, v, fp, &op->value)) != 0) return rc;
    } else { /* remove: "$.path" */
      struct an_op *op = new_op(ops, AN_OP_REMOVE, item);
      if (op == NULL) return CUT_ERR_NOMEM;
      if ((rc = load_path(L, body, kp, &op->path)) != 0) return rc;
      if (an_path_is_root(op->path)) return fail_at(L, body, kp, "cannot remove the whole body");
    }
  }
  return 0;
}

static int load_rule(struct loader *L, const ynode *n, const char *path, struct an_rule *rule) {
  static const char *const keys[] = {"match", "ignore", "sort", "tolerance", "replace",
                                     "transform", "ignore_headers", "compare_headers", NULL};
  static const char *const match_keys[] = {"route", "path_prefix", "method", NULL};
  static const char *const tr_keys[] = {"primary", "shadow", NULL};
  char kp[340];
  int rc;
  rule->line = n->line;
  if (want_type(L, n, CFG_YAML_MAP, path) != 0) return CUT_ERR_CONFIG;
  if ((rc = check_keys(L, n, path, keys)) != 0) return rc;
  const ynode *m = get(L, n, "match"), *v;
  kpf(kp, sizeof kp, "%s.match", path);
  if (m == NULL) return fail_at(L, n, kp, "is required (use {} to match every pair)");
  if (want_type(L, m, CFG_YAML_MAP, kp) != 0) return CUT_ERR_CONFIG;
  if ((rc = check_keys(L, m, kp, match_keys)) != 0) return rc;
  char mp[360];
  kpf(mp, sizeof mp, "%s.route", kp);
  if ((v = get(L, m, "route")) && (rc = dup_scalar(L, v, mp, &rule->route)) != 0) return rc;
  kpf(mp, sizeof mp, "%s.path_prefix", kp);
  if ((v = get(L, m, "path_prefix")) && (rc = dup_scalar(L, v, mp, &rule->path_prefix)) != 0)
    return rc;
  if (rule->path_prefix != NULL && rule->path_prefix[0] != '/')
    return fail_at(L, v, mp, "must start with '/'");
  kpf(mp, sizeof mp, "%s.method", kp);
  if ((v = get(L, m, "method")) && (rc = dup_scalar(L, v, mp, &rule->method)) != 0) return rc;

  kpf(kp, sizeof kp, "%s.ignore", path);
  if ((v = get(L, n, "ignore")) && (rc = load_ignore(L, v, kp, &rule->common)) != 0) return rc;
  kpf(kp, sizeof kp, "%s.replace", path);
  if ((v = get(L, n, "replace")) && (rc = load_replace(L, v, kp, &rule->common)) != 0) return rc;
  kpf(kp, sizeof kp, "%s.sort", path);
  if ((v = get(L, n, "sort")) && (rc = load_sort(L, v, kp, &rule->common)) != 0) return rc;
  kpf(kp, sizeof kp, "%s.tolerance", path);
  if ((v = get(L, n, "tolerance")) && (rc = load_tolerance(L, v, kp, &rule->common)) != 0)
    return rc;
  kpf(kp, sizeof kp, "%s.ignore_headers", path);
  if ((v = get(L, n, "ignore_headers")) && (rc = load_names(L, v, kp, &rule->ignore_headers)) != 0)
    return rc;
  kpf(kp, sizeof kp, "%s.compare_headers", path);
  if ((v = get(L, n, "compare_headers")) &&
      (rc = load_names(L, v, kp, &rule->compare_headers)) != 0)
    return rc;
  if ((v = get(L, n, "transform")) != NULL) {
    const ynode *side;
    kpf(kp, sizeof kp, "%s.transform", path);
    if (want_type(L, v, CFG_YAML_MAP, kp) != 0) return CUT_ERR_CONFIG;
    if ((rc = check_keys(L, v, kp, tr_keys)) != 0) return rc;
    kpf(mp, sizeof mp, "%s.primary", kp);
    if ((side = get(L, v, "primary")) && (rc = load_transforms(L, side, mp, &rule->primary)) != 0)
      return rc;
    kpf(mp, sizeof mp, "%s.shadow", kp);
    if ((side = get(L, v, "shadow")) && (rc = load_transforms(L, side, mp, &rule->shadow)) != 0)
      return rc;
  }
  return 0;
}

static int load_root(struct loader *L, const ynode *root, struct an_rules *r) {
  static const char *const keys[] = {"defaults", "rules", NULL};
  static const char *const dkeys[] = {"ignore_headers", "compare_headers", NULL};
  int rc;
  if (root == NULL) return 0; /* an empty file: the defaults */
  if (root->type == CFG_YAML_SCALAR && root->is_null) return 0;
  if (want_type(L, root, CFG_YAML_MAP, "") != 0) return CUT_ERR_CONFIG;
  if ((rc = check_keys(L, root, "", keys)) != 0) return rc;
  const ynode *d = get(L, root, "defaults"), *v;
  if (d != NULL) {
    if (want_type(L, d, CFG_YAML_MAP, "defaults") != 0) return CUT_ERR_CONFIG;
    if ((rc = check_keys(L, d, "defaults", dkeys)) != 0) return rc;
    /* A list given in the file replaces the built-in default list. */
    if ((v = get(L, d, "ignore_headers")) != NULL) {
      an_names_clear(&r->ignore_headers);
      if ((rc = load_names(L, v, "defaults.ignore_headers", &r->ignore_headers)) != 0) return rc;
    }
    if ((v = get(L, d, "compare_headers")) != NULL) {
      an_names_clear(&r->compare_headers);
      if ((rc = load_names(L, v, "defaults.compare_headers", &r->compare_headers)) != 0) return rc;
    }
  }
  const ynode *rules = get(L, root, "rules");
  if (rules == NULL) return 0;
  if (want_type(L, rules, CFG_YAML_SEQ, "rules") != 0) return CUT_ERR_CONFIG;
  size_t n = rules->nitems;
  if (n > MAX_RULES) return fail_at(L, rules, "rules", "at most %d rules are supported", MAX_RULES);
  r->v = calloc(n ? n : 1, sizeof *r->v);
  if (r->v == NULL) return CUT_ERR_NOMEM;
  const ynode *item;
  char ip[300];
  FOR_ITEMS(L, rules, item, ip, "rules") {
    r->n++;
    if ((rc = load_rule(L, item, ip, &r->v[r->n - 1])) != 0) return rc;
  }
  return 0;
}

/* Copies the collector's text (every problem, one per line) into err. */
static int errs_out(struct cfg_yaml_errs *errs, int rc, char *err, size_t errlen) {
  char *text = cfg_yaml_errs_text(errs);
  if (text != NULL) {
    size_t l = strlen(text);
    while (l > 0 && text[l - 1] == '\n') text[--l] = '\0';
  }
  cut_errf(err, errlen, rc, "%s", text ? text : "invalid rules");
  free(text);
  return rc;
}

/* Parses with `parse` (text or file), then loads the rules from the tree. */
static int load(struct an_rules **out, const char *text, size_t len, const char *name,
                int from_file, char *err, size_t errlen) {
  struct cfg_yaml_errs *errs = NULL;
  struct cfg_yaml_doc *doc = NULL;
  struct an_rules *r = NULL;
  int rc = an_rules_new(&r);
  if (rc != 0) return rc;
  if ((rc = cfg_yaml_errs_new(&errs, name)) != 0) {
    an_rules_free(r);
    return rc;
  }
  rc = from_file ? cfg_yaml_parse_file(&doc, name, 0, errs) : cfg_yaml_parse(&doc, text, len, 0, errs);
  if (rc == 0) {
    struct loader L = {errs};
    rc = load_root(&L, cfg_yaml_root(doc), r);
    /* Problems the parser could recover from (duplicate keys, aliases). */
    if (rc == 0 && cfg_yaml_errs_count(errs) > 0) rc = CUT_ERR_CONFIG;
  }
  if (rc != 0 && rc != CUT_ERR_NOMEM) errs_out(errs, rc, err, errlen);
  cfg_yaml_doc_free(doc);
  cfg_yaml_errs_free(errs);
  if (rc != 0) {
    an_rules_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

int an_rules_load_string(struct an_rules **out, const char *text, size_t len, const char *name,
                         char *err, size_t errlen) {
  return load(out, text, len, name, 0, err, errlen);
}

int an_rules_load_file(struct an_rules **out, const char *path, char *err, size_t errlen) {
  return load(out, NULL, 0, path, 1, err, errlen);
}

/* ---- rules built in code (the proxy's live comparison) ---- */

int an_rules_add_ignore(struct an_rules *r, const char *route, const char *const *paths, size_t n,
                        char *err, size_t errlen) {
  struct an_rule rule;
  memset(&rule, 0, sizeof rule);
  int rc = CUT_ERR_NOMEM;
  if (route != NULL && (rule.route = strdup(route)) == NULL) goto fail;
  if (n > 0 && (rule.common.v = calloc(n, sizeof *rule.common.v)) == NULL) goto fail;
  for (size_t i = 0; i < n; i++) {
    struct an_op *op = &rule.common.v[rule.common.n++];
    op->kind = AN_OP_IGNORE;
    op->absolute = op->relative = -1;
    char perr[256];
    rc = an_path_parse(paths[i], &op->path, perr, sizeof perr);
    if (rc == CUT_ERR_NOMEM) goto fail;
    if (rc != 0) {
      rc = cut_errf(err, errlen, CUT_ERR_CONFIG, "%s: %s", paths[i], perr);
      goto fail;
    }
    if (an_path_is_root(op->path)) {
      rc = cut_errf(err, errlen, CUT_ERR_CONFIG, "%s: cannot ignore the whole body", paths[i]);
      goto fail;
    }
  }
  struct an_rule *v = realloc(r->v, (r->n + 1) * sizeof *v);
  if (v == NULL) {
    rc = CUT_ERR_NOMEM;
    goto fail;
  }
  r->v = v;
  r->v[r->n++] = rule;
  return 0;
fail:
  rule_clear(&rule);
  return rc;
}
