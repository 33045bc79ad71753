/* rec_px: filling a recorded pair from the proxy's message heads, decisions and failures. */
#ifndef CUT_REC_PX_H
#define CUT_REC_PX_H

#include "dials/dial.h"
#include "proxy/px_msg.h"
#include "proxy/px_upstream.h"
#include "replay/rec_pair.h"

/* Copies method, authority, path (split at '?') and headers of `h`
 * (borrowed) into the pair's request, redacting as configured.
 * Returns 0 or CUT_ERR_NOMEM. */
int rec_pair_request_head(struct rec_pair *p, const struct px_request_head *h);

/* Copies status and headers of `h` (borrowed) into response `r`, with the
 * host that answered (may be NULL); redacts and parses lineage.
 * Returns 0 or CUT_ERR_NOMEM. */
int rec_response_head(struct rec_pair *p, struct rec_response *r,
                      const struct px_response_head *h, const char *host);

/* Records the labels of a decision: via, name, arm, bucket, reason (absent
 * ones are left out). Returns 0 or CUT_ERR_NOMEM. */
int rec_pair_decision(struct rec_pair *p, const struct dial_decision *d);

/* The `error` text of a response for an exchange failure: "connect", "tls",
 * "no_host", "timeout", "reset", "protocol", "cancelled"; NULL for PX_FAIL_NONE. */
const char *rec_px_fail_name(enum px_fail f);

#endif
