/* rec_mirror: one request's mirroring to shadow backends and its recorded pair. */
#ifndef CUT_REC_MIRROR_H
#define CUT_REC_MIRROR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "dials/dial.h"
#include "proxy/px_msg.h"
#include "proxy/px_upstream.h"
#include "replay/rec_pair.h"
#include "replay/rec_sink.h"

struct event_base;
struct rec_mem;

/*
 * The proxy creates a rec_mirror for each request of a route that mirrors or
 * records. The mirror copies the request to the sampled shadow backends
 * (same method, path, query, headers and body; Host rewritten when
 * configured; `x-cutover-shadow: 1`; the same request id), builds the pair
 * as the primary and the shadows answer, and submits it to the sink once the
 * primary side is finished and every shadow is done. Shadow results never
 * reach the client, and nothing here waits for a shadow.
 *
 * Everything runs on the worker's event loop; a rec_mirror_env belongs to
 * one worker. Request body bytes are passed on to each shadow as they come;
 * a shadow that cannot keep up (more than `overflow_bytes` queued beyond its
 * watermark, or the worker's shadows together more than `overflow_total`) is
 * cancelled and recorded with error "overflow", so memory stays bounded
 * whatever the body size.
 */

/* The upstream functions a mirror needs (the proxy passes its px_upstream ops).
 * start copies what it keeps of head: the head it gets is a view that lives
 * only during the call. */
struct rec_mirror_ops {
  int (*start)(struct px_pool *p, const struct px_request_head *head, int has_body,
               const struct px_exchange_cbs *cbs, void *user_data, struct px_exchange **out);
  int (*send_body)(struct px_exchange *x, const uint8_t *data, size_t len);
  int (*end_body)(struct px_exchange *x, const struct px_headers *trailers);
  void (*cancel)(struct px_exchange *x);
  const char *(*host)(const struct px_exchange *x);
};

/* Why a sampled shadow was not sent. */
enum rec_shadow_skip {
  REC_SHADOW_SKIP_INFLIGHT = 0, /* the worker's in-flight bound was reached */
  REC_SHADOW_SKIP_NO_BACKEND,   /* the shadow's backend group is not available */
  REC_SHADOW_SKIP_NOMEM,        /* out of memory */
  REC_SHADOW_SKIP_N
};

/* "inflight", "no_backend", "nomem". */
const char *rec_shadow_skip_name(enum rec_shadow_skip s);

/* Counters shared by every worker (atomics). */
struct rec_mirror_stats {
  _Atomic uint64_t sent;      /* shadow exchanges started */
  _Atomic uint64_t skipped;   /* not started (any reason) */
  _Atomic uint64_t skipped_by[REC_SHADOW_SKIP_N];
  _Atomic uint64_t failed;    /* ended without a complete response (incl. overflow, cancel) */
  _Atomic uint64_t recorded;  /* pairs handed to the sink */
};

/* The proxy exposes these counters in /metrics as cutover_shadow_* (rec_metrics.h). */

/* One per worker. All pointers are borrowed and must outlive the env. */
struct rec_mirror_env {
  const struct rec_mirror_ops *ops;
  struct rec_sink *sink;          /* NULL = mirror without recording */
  struct rec_comparer *comparer;  /* live comparison (rec_compare.h); NULL = none */
  struct rec_codec *codec;        /* the worker's codec (needed when sink is set) */
  const struct rec_opts *opts;    /* body cap, redaction, lineage */
  struct rec_mirror_stats *stats; /* shared */
  uint32_t max_inflight;          /* shadow exchanges in flight on this worker; 0 = 1024 */
  struct event_base *base;        /* the worker's loop, for shadow_timeout_ms; NULL = no timer */
  uint64_t shadow_timeout_ms;     /* whole shadow exchange; 0 = only the backend's timeouts */
  size_t overflow_bytes;          /* per shadow, queued past its watermark; 0 = 4 MiB */
  size_t overflow_total;          /* all shadows of the worker together; 0 = 64 MiB */
  /* worker-private state */
  uint32_t inflight;
  size_t over_total;              /* bytes queued past the watermarks, all shadows */
  struct rec_mirror *live;        /* mirrors not finished yet (for shutdown) */
  const struct timeval *shadow_tv; /* common timeout for shadow_timeout_ms, set on first use */
  struct rec_mem *mem;            /* block cache of this worker's pairs, made on first use and
                                     released by rec_mirror_env_shutdown (rec_mem.h) */
};

struct rec_mirror;
struct rec_comparer;

/* What a mirror does with its pair (rec_mirror_new). */
enum rec_mirror_mode {
  REC_MIRROR_NONE = 0,    /* mirror only */
  REC_MIRROR_RECORD = 1,  /* record every pair (needs env->sink) */
  REC_MIRROR_COMPARE = 2, /* hand every pair to env->comparer, which records the mismatches */
};

/*
 * Returns 1 when `m` should mirror this request: the method is in m->methods
 * (default GET, HEAD, OPTIONS) and the request is sampled: m->ppm of the
 * requests, by the dial bucket of the sampling key (sticky per key; salt =
 * the mirror's backend name) or, for `random` or a missing key, by `rnd`.
 */
int rec_mirror_wanted(const struct cfg_mirror *m, const char *method,
                      const struct dial_request *req, uint64_t rnd);

/*
 * Starts the recording context of one request. `head` (borrowed) is the
 * request as forwarded to the primary (request id set); `id` its request id;
 * `dec` (may be NULL) its decision; `primary_backend` the primary's group
 * name. `mode` says what happens to the pair: with REC_MIRROR_RECORD it is
 * recorded when env->sink is set; with REC_MIRROR_COMPARE it goes to
 * env->comparer (or, when its queue is full, straight to env->sink).
 * Returns 0 and *out, or CUT_ERR_NOMEM. The caller (the primary side) ends
 * its part with rec_mirror_primary_done() and rec_mirror_release().
 */
int rec_mirror_new(struct rec_mirror **out, struct rec_mirror_env *env, const char *id,
                   int64_t time_us, const char *route, const struct px_request_head *head,
                   const struct dial_decision *dec, const char *primary_backend,
                   enum rec_mirror_mode mode);

/*
 * Sends a copy of `head` (borrowed: the request as forwarded to the primary)
 * to `pool` (the shadow's backend group, borrowed)
 * following mirror `mc` (borrowed from the config snapshot, which must
 * outlive the mirror). Past the worker's in-flight bound the shadow is
 * skipped (recorded with error "skipped"). Never fails the request: returns
 * 1 when a shadow was started, 0 when skipped or refused.
 */
int rec_mirror_add_shadow(struct rec_mirror *m, struct px_pool *pool, const struct cfg_mirror *mc,
                          const struct px_request_head *head, int has_body);

/* Records the request's device key (the dial key value; hashed when
 * recording.hash_device_key is on). Borrowed. */
void rec_mirror_device_key(struct rec_mirror *m, const char *key, size_t len);

/* Request body bytes (borrowed), as they are sent to the primary. */
void rec_mirror_request_body(struct rec_mirror *m, const uint8_t *data, size_t len);

/* End of the request body (trailers borrowed; may be NULL). */
void rec_mirror_request_end(struct rec_mirror *m, const struct px_headers *trailers);

/* The primary's response head (borrowed) and the host that answered. */
void rec_mirror_primary_head(struct rec_mirror *m, const struct px_response_head *h,
                             const char *host);

/* Primary response body bytes (borrowed). */
void rec_mirror_primary_body(struct rec_mirror *m, const uint8_t *data, size_t len);

/* The primary exchange ended; `error` NULL when complete (static text otherwise). */
void rec_mirror_primary_done(struct rec_mirror *m, int64_t latency_us, const char *error);

/* The primary side lets go: the pair is submitted once every shadow is done.
 * `m` must not be used afterwards. NULL is ok. */
void rec_mirror_release(struct rec_mirror *m);

/*
 * Calls fn(arg) once, on the worker's thread, when the mirror is freed: after
 * the primary side released it and its last shadow finished or was cancelled
 * (also at rec_mirror_env_shutdown). The proxy holds the configuration
 * generation whose pools the shadows use until then. Set it before adding
 * shadows; a later call replaces the earlier one.
 */
void rec_mirror_on_free(struct rec_mirror *m, void (*fn)(void *arg), void *arg);

/* Worker shutdown: cancels every shadow still in flight (recorded as
 * "cancelled") and submits their pairs. Call before freeing the pools. */
void rec_mirror_env_shutdown(struct rec_mirror_env *env);

#endif
