/* an_path: a small JSONPath subset to select nodes of a jansson document. */
#ifndef AN_PATH_H
#define AN_PATH_H

#include <stddef.h>

#include <jansson.h>

/*
 * Grammar (a subset of JSONPath, enough for normalization rules):
 *   $                 the whole document
 *   .name  ['name']   an object member
 *   [N]               an array element (N >= 0, or negative from the end)
 *   [*]  .*           every element of an array or every member of an object
 *   ..name            `name` at any depth below (recursive descent)
 * Example: "$.items[*].updatedAt", "$..requestId", "$.a['odd.key'][0]".
 */
struct an_path;

/* Compiles `expr`. On success *out is a new path (caller frees with
 * an_path_free). Returns 0, or CUT_ERR_NOMEM, or CUT_ERR_PARSE with a
 * sentence in err. */
int an_path_parse(const char *expr, struct an_path **out, char *err, size_t errlen);

void an_path_free(struct an_path *p);

/* The original expression (borrowed from p). */
const char *an_path_expr(const struct an_path *p);

/* Nonzero when the path has no wildcard and no recursive descent, so it
 * names at most one node (required for rename/move destinations). */
int an_path_is_simple(const struct an_path *p);

/* Nonzero when the path is just "$". */
int an_path_is_root(const struct an_path *p);

/*
 * One selected node: its parent (NULL for the root) and where it sits in the
 * parent (key for objects, index for arrays). All pointers are borrowed from
 * the document and stay valid until the document is modified.
 */
struct an_match {
  json_t *parent;
  const char *key; /* NULL when parent is an array */
  size_t index;
  json_t *value;
};

/* Matches collected by an_path_select; reuse one across calls. */
struct an_matches {
  struct an_match *v;
  size_t n, cap;
};

void an_matches_clear(struct an_matches *m); /* frees the storage */

/* Replaces m's contents with every node `p` selects in `root`, in document
 * (pre-)order, so a descendant always comes after its ancestors. Modifying
 * the matches in reverse order is safe. Returns the count or CUT_ERR_NOMEM. */
int an_path_select(const struct an_path *p, json_t *root, struct an_matches *m);

/* Walks `p` over two documents in lockstep: calls fn for every pair of nodes
 * found at the same concrete location in both. Used by tolerance rules and
 * per-side comparisons. fn returning nonzero stops the walk and is returned. */
typedef int (*an_path_pair_fn)(json_t *a_parent, json_t *b_parent, const char *key,
                               size_t index, json_t *a, json_t *b, void *user_data);
int an_path_walk_pair(const struct an_path *p, json_t *a, json_t *b, an_path_pair_fn fn,
                      void *user_data);

/* Looks up a simple path (see an_path_is_simple). Returns the node
 * (borrowed) or NULL. */
json_t *an_path_get(const struct an_path *p, json_t *root);

/* Removes the node a simple path names and returns it (caller owns the
 * reference), or NULL when absent. */
json_t *an_path_take(const struct an_path *p, json_t *root);

/* Stores `value` (takes ownership, also on failure) at a simple path,
 * creating intermediate objects. Returns 0, CUT_ERR_INVALID when a parent on
 * the way is not an object (or an index is out of range) or the path is the
 * root, or CUT_ERR_NOMEM. */
int an_path_put(const struct an_path *p, json_t *root, json_t *value);

#endif
