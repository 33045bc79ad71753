/* an_rules_int: the compiled form of a rules file, shared by the loader and the comparer. */
#ifndef AN_RULES_INT_H
#define AN_RULES_INT_H

#include <regex.h>
#include <stddef.h>

#include "analyzer/an_path.h"

enum an_op_kind {
  AN_OP_IGNORE,      /* both sides: delete the selected nodes */
  AN_OP_SORT,        /* both sides: sort the selected arrays (by member `by`, or by value) */
  AN_OP_TOLERANCE,   /* numbers at the same place equal within absolute/relative */
  AN_OP_REPLACE,     /* both sides: regex replace in the selected strings */
  AN_OP_RENAME,      /* one side: move the node at `path` to `to` */
  AN_OP_LIST_TO_MAP, /* one side: [{key:k, value:v}...] -> {k: v...} */
  AN_OP_REMOVE,      /* one side: delete the selected nodes */
};

struct an_op {
  enum an_op_kind kind;
  int line;            /* where it was defined (for messages) */
  struct an_path *path;
  struct an_path *to;  /* RENAME */
  char *by;            /* SORT: member to sort by, NULL = by value */
  char *key, *value;   /* LIST_TO_MAP; value NULL = the element without `key` */
  double absolute, relative; /* TOLERANCE; < 0 when not set */
  regex_t re;          /* REPLACE */
  int has_re;
  char *with;          /* REPLACE */
};

struct an_ops {
  struct an_op *v;
  size_t n;
};

struct an_names {
  char **v; /* lower-case */
  size_t n;
};

struct an_rule {
  int line;
  char *route;       /* NULL = any */
  char *path_prefix; /* NULL = any */
  char *method;      /* NULL = any */
  struct an_ops common;
  struct an_ops primary, shadow; /* transforms */
  struct an_names ignore_headers, compare_headers;
};

struct an_rules {
  struct an_names ignore_headers;
  struct an_names compare_headers; /* "*" = every header */
  struct an_rule *v;
  size_t n;
};

void an_op_clear(struct an_op *op);
void an_ops_clear(struct an_ops *ops);
void an_names_clear(struct an_names *n);
/* Appends a lower-cased copy of name (borrowed). Returns 0 or CUT_ERR_NOMEM. */
int an_names_add(struct an_names *n, const char *name);
int an_names_has(const struct an_names *n, const char *name); /* case-insensitive */

#endif
