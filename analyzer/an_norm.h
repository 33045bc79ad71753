/* an_norm: apply normalization operations to JSON documents (pure, in memory). */
#ifndef AN_NORM_H
#define AN_NORM_H

#include <jansson.h>

#include "analyzer/an_rules_int.h"

/* Applies the one-document operations of `ops` (ignore, sort, replace,
 * rename, list_to_map, remove; tolerance is skipped) in order to *doc, which
 * may be replaced (the function then decrefs the old root). Returns 0 or
 * CUT_ERR_NOMEM. */
int an_norm_apply(const struct an_ops *ops, json_t **doc);

/* Applies the tolerance operations of `ops`: where both documents hold
 * numbers at the same place within the tolerance, the shadow's number is
 * set to the primary's. Returns 0 or CUT_ERR_NOMEM. */
int an_norm_tolerance(const struct an_ops *ops, json_t *primary, json_t *shadow);

/* A total order over JSON values (null < false < true < numbers < strings
 * < arrays < objects; numbers by value, strings bytewise). */
int an_norm_cmp(json_t *a, json_t *b);

#endif
