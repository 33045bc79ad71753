/* px_route: choosing the configured route for a request (pure, no I/O). */
#ifndef CUT_PX_ROUTE_H
#define CUT_PX_ROUTE_H

#include <stddef.h>

#include "config/config.h"
#include "proxy/px_msg.h"

/*
 * Routes are tried in the order they appear in the config; the first route
 * whose every condition holds wins:
 *  - host: equal to the request's authority without its port, compared
 *    case-insensitively (a trailing dot on the request's host is ignored);
 *  - path: the request path without its query equals `path` exactly;
 *  - path_prefix: the request path starts with `path_prefix` (byte-wise);
 *  - methods: the request method is one of them (case-sensitive, RFC 9110);
 *  - headers: every listed header is present (and, when a value is given,
 *    one field of that name has exactly that value).
 * An absent condition matches anything.
 */

/* Returns 1 when `route` matches `req` (both borrowed), else 0. */
int px_route_matches(const struct cfg_route *route, const struct px_request_head *req);

/* Returns the first matching route of `cfg` (borrowed from cfg) or NULL. */
const struct cfg_route *px_route_find(const struct cfg *cfg, const struct px_request_head *req);

#endif
