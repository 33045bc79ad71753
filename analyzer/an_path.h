/* an_path: a small JSONPath subset to select nodes of an an_json tree. */
#ifndef AN_PATH_H
#define AN_PATH_H

#include <stddef.h>

#include "analyzer/an_json.h"

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

/* Frees p and everything it owns; NULL is ok. */
void an_path_free(struct an_path *p);

/* The original expression (borrowed from p). */
const char *an_path_expr(const struct an_path *p);

/* Nonzero when the path has no wildcard and no recursive descent, so it
 * names at most one node (required for rename/move destinations). */
int an_path_is_simple(const struct an_path *p);

/* Nonzero when the path is just "$". */
int an_path_is_root(const struct an_path *p);

/*
 * One selected node: its parent (NULL for the root), where it sits in the
 * parent (item index for arrays, member index for objects) and the node.
 * Pointers are borrowed from the tree and stay valid until it is modified.
 */
struct an_match {
  struct an_jv *parent;
  size_t index;
  struct an_jv *value;
};

/* Matches collected by an_path_select; reuse one across calls. */
struct an_matches {
  struct an_match *v;
  size_t n, cap;
};

void an_matches_clear(struct an_matches *m); /* frees the storage */

/* Replaces m's contents with every node `p` selects in `root`, in document
 * (pre-)order, so a descendant always comes after its ancestors and, within
 * one parent, a higher index after a lower one: modifying (even removing)
 * the matches in reverse order is safe. Returns the count or CUT_ERR_NOMEM. */
int an_path_select(const struct an_path *p, struct an_jv *root, struct an_matches *m);

/* Walks `p` over two trees in lockstep: calls fn for every pair of nodes
 * found at the same concrete location in both (same member names, same
 * array positions), with each node's parent and index in that parent. Used
 * by tolerance rules. fn returning nonzero stops the walk and is returned. */
typedef int (*an_path_pair_fn)(struct an_jv *a_parent, size_t a_index, struct an_jv *b_parent,
                               size_t b_index, void *user_data);
int an_path_walk_pair(const struct an_path *p, struct an_jv *a, struct an_jv *b,
                      an_path_pair_fn fn, void *user_data);

/* Looks up a simple path (see an_path_is_simple). Returns the node
 * (borrowed) or NULL. */
struct an_jv *an_path_get(const struct an_path *p, struct an_jv *root);

/* Removes the node a simple path names from its parent and returns it, or
 * NULL when absent. */
struct an_jv *an_path_take(const struct an_path *p, struct an_jv *root);

/* Stores `value` at a simple path, creating intermediate objects in arena
 * `a`. Returns 0, CUT_ERR_INVALID when a parent on the way is not an object
 * (or an index is out of range) or the path is the root, or CUT_ERR_NOMEM. */
int an_path_put(const struct an_path *p, struct an_arena *a, struct an_jv *root,
                struct an_jv *value);

#endif
