/* rec_px: the bridge from proxy messages to recorded pairs. */
#include <stdio.h>

#include "common/cut_err.h"
#include "replay/rec_px.h"

int rec_pair_request_head(struct rec_pair *p, const struct px_request_head *h) {
  int rc = rec_pair_set_request(p, h->method, h->authority, h->path);
  for (size_t i = 0; !rc && i < h->headers.n; i++) {
    const struct px_header *f = &h->headers.v[i];
    rc = rec_pair_request_header(p, f->name, f->namelen, f->value, f->valuelen);
  }
  return rc;
}

int rec_response_head(struct rec_pair *p, struct rec_response *r,
                      const struct px_response_head *h, const char *host) {
  int rc = rec_response_set_status(p, r, h->status, host);
  for (size_t i = 0; !rc && i < h->headers.n; i++) {
    const struct px_header *f = &h->headers.v[i];
    rc = rec_response_header(p, r, f->name, f->namelen, f->value, f->valuelen);
  }
  return rc;
}

/* Recorded pairs call the default path "route" (the route's own backend). */
static const char *via_name(enum dial_via v) {
  return v == DIAL_VIA_DEFAULT ? "route" : dial_via_name(v);
}

int rec_pair_decision(struct rec_pair *p, const struct dial_decision *d) {
  int rc = rec_pair_decision_set(p, "via", via_name(d->via));
  if (!rc && d->name)
    rc = rec_pair_decision_set(p, "name", d->name);
  if (!rc && d->arm)
    rc = rec_pair_decision_set(p, "arm", d->arm);
  if (!rc && d->name) { /* a bucket only means something with a dial or an experiment */
    char bucket[16];
    snprintf(bucket, sizeof bucket, "%u", d->bucket);
    rc = rec_pair_decision_set(p, "bucket", bucket);
  }
  if (!rc && d->reason)
    rc = rec_pair_decision_set(p, "reason", d->reason);
  return rc;
}

const char *rec_px_fail_name(enum px_fail f) {
  switch (f) {
  case PX_FAIL_NONE: return NULL;
  case PX_FAIL_CONNECT: return "connect";
  case PX_FAIL_TLS: return "tls";
  case PX_FAIL_NO_HOST: return "no_host";
  case PX_FAIL_TIMEOUT: return "timeout";
  case PX_FAIL_RESET: return "reset";
  case PX_FAIL_PROTOCOL: return "protocol";
  case PX_FAIL_CANCELLED: return "cancelled";
  }
  return "error";
}
