/* an_norm: apply normalization operations to an_json trees (pure, in memory). */
#ifndef AN_NORM_H
#define AN_NORM_H

#include "analyzer/an_json.h"
#include "analyzer/an_rules_int.h"

/* Applies the one-document operations of `ops` (ignore, sort, replace,
 * rename, list_to_map, remove; tolerance is skipped) in order to *doc, which
 * may be replaced by a new root. New nodes come from arena `a`. Returns 0 or
 * CUT_ERR_NOMEM. */
int an_norm_apply(const struct an_ops *ops, struct an_arena *a, struct an_jv **doc);

/* Applies the tolerance operations of `ops`: where both documents hold
 * numbers at the same place within the tolerance, the shadow's number is
 * set to the primary's. Returns 0 or CUT_ERR_NOMEM. */
int an_norm_tolerance(const struct an_ops *ops, struct an_jv *primary, struct an_jv *shadow);

/* A total order over JSON values (null < false < true < numbers < strings
 * < arrays < objects; numbers by value, strings bytewise, objects by their
 * members sorted by key). */
int an_norm_cmp(const struct an_jv *a, const struct an_jv *b);

#endif
