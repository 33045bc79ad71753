/* px_forward: the pure parts of forwarding a request: headers added and removed,
 * request ids, and how upstream failures map to client statuses. */
#ifndef CUT_PX_FORWARD_H
#define CUT_PX_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/px_msg.h"
#include "proxy/px_upstream.h"

/* A small, fast, non-cryptographic generator (xoshiro-style), one per worker. */
struct px_rng {
  uint64_t s[4];
};

/* Seeds from the kernel's random source; falls back to time and address. */
void px_rng_seed(struct px_rng *r);
uint64_t px_rng_next(struct px_rng *r);

/* Writes a random RFC 9562 version 4 UUID ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx")
 * and a NUL into out[37]. */
void px_uuid4(struct px_rng *r, char out[37]);

/* What px_forward_request() needs to know about the client side. */
struct px_forward_info {
  const char *client_ip;          /* textual peer address */
  int tls;                        /* the client connection is TLS: X-Forwarded-Proto https */
  int h2;                         /* the client spoke HTTP/2: "Via: 2 cutover" */
  const char *request_id_header;  /* lower-case name, e.g. "x-request-id" */
};

/*
 * Rewrites a client request head in place for the upstream: removes the
 * hop-by-hop fields (px_header_is_hop, every field named by Connection, TE
 * other than "trailers", Expect), appends the client to X-Forwarded-For, sets
 * X-Forwarded-Proto, appends to Via, and keeps the client's request id or adds
 * a new UUIDv4. The request id in effect is copied (NUL-terminated, truncated
 * to idlen-1) into id. Returns 0 or CUT_ERR_NOMEM.
 */
int px_forward_request(struct px_request_head *h, const struct px_forward_info *fi,
                       struct px_rng *rng, char *id, size_t idlen);

/* Removes the hop-by-hop fields of a response head in place (also every field
 * named by its Connection header). */
void px_forward_response(struct px_headers *h);

/* Status sent to the client for an upstream failure: 502, 503 or 504. */
int px_fail_status(enum px_fail f);

/* A short static word for the failure ("connect", "timeout", ...). */
const char *px_fail_name(enum px_fail f);

#endif
