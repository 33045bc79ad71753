/* px_route: choosing the configured route for a request (pure, no I/O). */
#ifndef CUT_PX_ROUTE_H
#define CUT_PX_ROUTE_H

#include <stddef.h>

#include "config/config.h"
#include "proxy/px_msg.h"

/*
 * Routes are tried in the order they appear in the config; the first route
 * whose every condition holds wins:
 *  - host: equal to the request's authority (HTTP/1.1: Host) without its
 *    port, compared case-insensitively;
 *  - path: the request path without its query equals `path` exactly;
 *  - path_prefix: the request path without its query starts with
 *    `path_prefix` (byte-wise);
 *  - methods: the request method is one of them (case-sensitive, RFC 9110);
 *  - headers: every listed header is present (and, when a value is given,
 *    the first field of that name has exactly that value).
 * These are the rules of dial_route_match() (`cutover dial eval`), over a
 * px_request_head instead of a dial_request.
 * An absent condition matches anything.
 */

/* Returns 1 when `route` matches `req` (both borrowed), else 0. */
int px_route_matches(const struct cfg_route *route, const struct px_request_head *req);

/* Returns the first matching route of `cfg` (borrowed from cfg) or NULL. */
const struct cfg_route *px_route_find(const struct cfg *cfg, const struct px_request_head *req);

#endif
