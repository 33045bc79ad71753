/* dial: the decision engine: which backend group a request goes to, and why. */
#ifndef CUT_DIAL_H
#define CUT_DIAL_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/*
 * Pure code: no I/O, no locks, no allocation on the decision path. A
 * decision reads the config snapshot (immutable) and the live values of the
 * dial store (atomics), so any number of worker threads may decide at once.
 * The rules (bucketing, canary arms, A/B cells, order) are specified in
 * docs/dials.md, with test vectors.
 */

#define DIAL_BUCKETS 1000000u /* buckets are in [0, DIAL_BUCKETS) */
#define DIAL_KEY_MAX 1024u    /* longest percent-decoded query value used as a key */

/* A byte range borrowed from the caller. */
struct dial_slice {
  const char *p;
  size_t len;
};

struct dial_header {
  struct dial_slice name;  /* lower-case, as HTTP/2 requires */
  struct dial_slice value;
};

/* What the engine may look at in a request; everything is borrowed. */
struct dial_request {
  struct dial_slice method;
  struct dial_slice path;          /* path with the query string, as sent */
  const struct dial_header *headers;
  size_t nheaders;                 /* cookies are read from the `cookie` header(s) */
};

enum dial_via {
  DIAL_VIA_DEFAULT = 0,   /* the route's backend */
  DIAL_VIA_DIAL,
  DIAL_VIA_EXPERIMENT,
  DIAL_VIA_ALLOCATION,
};

/* A decision: a small value. Strings are borrowed from the config snapshot
 * (or are static), valid while the caller holds that snapshot. */
struct dial_decision {
  size_t backend_index;    /* into cfg->backends */
  enum dial_via via;
  const char *name;        /* dial / experiment / allocation name; NULL for default */
  const char *arm;         /* "new"/"old" for dials, "canary"/"baseline", or the A/B cell name */
  uint32_t bucket;         /* the request's bucket for `name`; 0 when no key */
  const char *reason;      /* static text: "in-dial", "out-of-dial", "no-key", "in-pool",
                              "not-eligible", "experiment-stopped", ... */
  enum dial_via name_kind; /* what `name` names: with via == DIAL_VIA_DEFAULT, `name` is
                              the stage that explains why the default path was taken
                              (e.g. the dial whose key was missing) */
};

/* Bucket of a key under a salt: MurmurHash3_x86_32(salt ":" key, seed 0), mapped
 * as in docs/dials.md. Pure; the same on every machine. */
uint32_t dial_bucket(const char *salt, size_t salt_len, const char *key, size_t key_len);

/* 1 if `bucket` is inside a dial set to `ppm` (bucket < ppm), else 0. */
static inline int dial_in(uint32_t bucket, uint32_t ppm) { return bucket < ppm; }

struct dial_store; /* live values: see dials/dial_store.h */

/*
 * Decides `route` (an element of cfg->routes) for `req`, in the order
 * experiment -> allocation -> dial -> default, reading live values from
 * `store` (borrowed; may be NULL to use the config's values). `now` is epoch
 * seconds (experiment windows). Writes *out and returns 0; never fails for a
 * well-formed snapshot (returns CUT_ERR_INVALID for a NULL argument).
 * With a store, bumps its per-object counters (relaxed atomics) for missing
 * keys, ineligible requests and allocations; nothing else is written.
 */
int dial_decide(const struct cfg *cfg, const struct dial_store *store,
                const struct cfg_route *route, const struct dial_request *req, int64_t now,
                struct dial_decision *out);

/* Finds the value of the request attribute `key` (header, cookie or query
 * parameter). Returns 1 and sets *out when present, 0 when absent. For
 * CFG_KEY_RANDOM returns 0 (the caller draws a random value).
 * Extraction rules (docs/dials.md): header names case-insensitive, value
 * trimmed of blanks; cookies from every `cookie` header, "a=1; b=2" pairs,
 * exact names, surrounding double quotes removed; query parameters from the
 * path after '?', form-decoded ('+' = space, %XX = byte). An empty value
 * counts as absent. *out borrows from req, except for a query value that
 * needed decoding: that one lives in a thread-local buffer valid until the
 * next call on the same thread (use dial_request_key_buf to own it). */
int dial_request_key(const struct dial_request *req, const struct cfg_key *key,
                     struct dial_slice *out);

/* Same, decoding query values into buf[buflen] (borrowed; at least
 * DIAL_KEY_MAX recommended). A query value whose decoded form is longer than
 * buflen counts as absent. */
int dial_request_key_buf(const struct dial_request *req, const struct cfg_key *key, char *buf,
                         size_t buflen, struct dial_slice *out);

/* The percentage (ppm) in effect for cfg->dials[i]: the store's live value
 * for this data center, else its global live value, else the config's value
 * for cfg->datacenter, else the config's percent. Lock-free. */
uint32_t dial_effective_ppm(const struct cfg *cfg, const struct dial_store *store, size_t i);

/* "dial", "experiment", "allocation", "default". */
const char *dial_via_name(enum dial_via v);

/* Formats the labels of a decision as "dial=checkout-v2;arm=new;bucket=41234;reason=in-dial"
 * into buf (for the x-cutover-decision header and logs). Fields: KIND=NAME
 * (when a name is set), arm=ARM (when set), bucket=N (when a bucket was
 * computed), reason=REASON; a plain default is "reason=default". Always
 * NUL-terminates (truncating); returns the length written, without the NUL. */
size_t dial_decision_format(const struct dial_decision *d, char *buf, size_t buflen);

#endif
