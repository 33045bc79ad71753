/* px_server: the proxy's listeners and worker threads. */
#ifndef CUT_PX_SERVER_H
#define CUT_PX_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "dials/dial.h"
#include "proxy/px_upstream.h"

struct px_alog;
struct px_metrics;
struct px_limit_counters;
struct px_health_board;
struct rec_sink;
struct rec_mirror_stats;
struct rec_comparer;

/*
 * The upstream side as a table of functions with exactly the signatures of
 * px_upstream.h. The proxy command passes the real pools (px_pool_new and
 * friends); tests pass an in-memory backend. One indirect call per operation
 * keeps the frontends independent of how exchanges are carried.
 */
struct px_upstream_ops {
  int (*pool_new)(struct px_pool **out, struct event_base *base, const struct cfg_backend *backend,
                  const struct px_pool_opts *opts, char *err, size_t errlen);
  void (*pool_free)(struct px_pool *p);
  int (*start)(struct px_pool *p, const struct px_request_head *head, int has_body,
               const struct px_exchange_cbs *cbs, void *user_data, struct px_exchange **out);
  int (*send_body)(struct px_exchange *x, const uint8_t *data, size_t len);
  int (*end_body)(struct px_exchange *x, const struct px_headers *trailers);
  void (*resume)(struct px_exchange *x);
  void (*cancel)(struct px_exchange *x);
  const char *(*host)(const struct px_exchange *x);
  /* The pool's counters, for metrics; NULL: none (test doubles). */
  void (*stats)(const struct px_pool *p, struct px_pool_stats *out);
};

/* The decision engine, likewise (dial_decide and dial_decision_format). */
struct px_decider {
  int (*decide)(const struct cfg *cfg, const struct dial_store *store,
                const struct cfg_route *route, const struct dial_request *req, int64_t now,
                struct dial_decision *out);
  size_t (*format)(const struct dial_decision *d, char *buf, size_t buflen);
  const struct dial_store *store; /* borrowed; NULL = the config's dial values */
};

struct px_server_opts {
  struct cfg *cfg;                    /* borrowed; kept alive by the caller until px_server_free */
  const struct px_upstream_ops *ops;  /* borrowed, required */
  const struct px_decider *decider;   /* borrowed, required */
  struct px_alog *alog;               /* borrowed; NULL = no access log */
  struct px_metrics *metrics;         /* borrowed; NULL = no request metrics */
  const struct px_limit_counters *limits; /* borrowed; NULL = protections not counted */
  struct px_health_board *health;     /* borrowed; active-check verdicts; NULL = none */
  uint32_t workers;                   /* 0 = cfg->workers (0 there = online CPUs) */
  struct rec_sink *rec_sink;          /* borrowed; where recorded pairs go; NULL = none */
  struct rec_mirror_stats *mirror_stats; /* borrowed; NULL = the server keeps its own */
  struct rec_comparer *comparer;      /* borrowed; live comparison; NULL = none */
};

struct px_server;

/*
 * Creates the server: binds one SO_REUSEPORT socket per listener per worker
 * (so bind errors are reported here, before any thread starts), builds the
 * TLS contexts and each worker's event_base and upstream pools. Returns 0 or
 * CUT_ERR_NET / CUT_ERR_TLS / CUT_ERR_NOMEM / CUT_ERR_INVALID with err text.
 */
int px_server_new(struct px_server **out, const struct px_server_opts *opts, char *err,
                  size_t errlen);

/* Starts the worker threads. Returns 0 or CUT_ERR_IO. */
int px_server_start(struct px_server *s);

/*
 * Asks every worker to stop: listeners close at once, HTTP/2 connections get
 * GOAWAY, idle HTTP/1.1 connections close, in-flight requests may finish
 * until `drain_ms` has passed (0 = close everything now). Thread-safe and
 * async-signal-unsafe; returns at once. px_server_wait() joins.
 */
void px_server_stop(struct px_server *s, uint64_t drain_ms);

/* Number of worker threads still running (0 once all have ended). */
size_t px_server_running(const struct px_server *s);

/* Waits until every worker thread has ended. */
void px_server_wait(struct px_server *s);

/* Stops (without drain) and waits if still running, then frees. NULL is ok. */
void px_server_free(struct px_server *s);

/*
 * Hands every worker a new config snapshot: from their next loop iteration
 * new connections and requests use its routes, backends (new pools per
 * worker), limits, metric set and health board; requests in flight finish on
 * the snapshot and pools they started with. Listeners cannot change: a
 * snapshot whose listeners (address, TLS files) differ is refused with
 * CUT_ERR_INVALID and err text, and nothing changes. `cfg`, `metrics` and
 * `board` are borrowed: the caller keeps each snapshot's objects alive until
 * px_server_oldest_gen() is above the id stored in *id_out. Thread-safe.
 */
int px_server_reload(struct px_server *s, const struct cfg *cfg, struct px_metrics *metrics,
                     struct px_health_board *board, uint64_t *id_out, char *err, size_t errlen);

/* Only the check of px_server_reload(): 0, or CUT_ERR_INVALID with err text
 * when the snapshot's listeners differ from the running ones. */
int px_server_reload_check(const struct px_server *s, const struct cfg *cfg, char *err,
                           size_t errlen);

/* The id of the oldest snapshot some worker still uses (0 = the one the
 * server was created with). Thread-safe. */
uint64_t px_server_oldest_gen(const struct px_server *s);

/* Number of listeners, and the bound address of listener i ("127.0.0.1:8080";
 * the real port when the config said 0). */
size_t px_server_nlisteners(const struct px_server *s);
const char *px_server_listener_addr(const struct px_server *s, size_t i);
int px_server_listener_tls(const struct px_server *s, size_t i);

/* Totals over all workers (relaxed reads). */
struct px_server_stats {
  uint64_t connections, active_connections, requests, responses_5xx, log_dropped;
};
void px_server_stats(const struct px_server *s, struct px_server_stats *out);

#endif
