/* dial_eval: explain the decision for a described request (the `cutover dial eval` core). */
#ifndef CUT_DIAL_EVAL_H
#define CUT_DIAL_EVAL_H

#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "dials/dial.h"

/*
 * Picks the first route of cfg whose match holds for req: host (from the
 * `host` or `:authority` header, port removed, compared case-insensitively),
 * exact path or path prefix (on the path without its query), methods, and
 * required headers. Returns the route's index or SIZE_MAX when none
 * matches. Pure.
 */
size_t dial_route_match(const struct cfg *cfg, const struct dial_request *req);

/*
 * Decides req on route `route_index` (SIZE_MAX: match one with
 * dial_route_match) and writes a small report to out:
 *   route     NAME
 *   backend   NAME
 *   via       dial|experiment|allocation|default
 *   decision  dial=...;arm=...;bucket=...;reason=...
 * `store` may be NULL (config values). Returns 0, or CUT_ERR_NOT_FOUND when
 * no route matches (a line saying so is written).
 */
int dial_eval(const struct cfg *cfg, const struct dial_store *store, size_t route_index,
              const struct dial_request *req, int64_t now, FILE *out);

#endif
