/* px_upstream: per-worker connection pools to a backend group, and exchanges over them. */
#ifndef CUT_PX_UPSTREAM_H
#define CUT_PX_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "proxy/px_msg.h"

struct event_base;
struct evdns_base;
typedef struct ssl_ctx_st SSL_CTX;

/*
 * A px_pool belongs to one worker thread and one backend group: it keeps
 * HTTP/1.1 keep-alive connections (one exchange at a time each, or with
 * backend.pipeline > 1 up to that many bodiless GET / HEAD / OPTIONS exchanges
 * started in the same pass of the loop, answered in order) or HTTP/2
 * connections (h2c or h2 over TLS, many streams each) to the group's hosts,
 * picks a host (round robin or least request), and enforces the backend's
 * timeouts. Everything here runs on the worker's event_base; nothing is
 * thread-safe and nothing blocks.
 *
 * A px_exchange is one request/response to the group. The caller (a client
 * stream of a frontend, or a shadow) drives it:
 *
 *   px_exchange_start()       -> head is queued; connecting or reusing
 *   px_exchange_send_body()*  -> request body bytes (copied)
 *   px_exchange_end_body()    -> end of request (optionally with trailers)
 *   ... callbacks: on_response, on_body*, on_trailers?, then exactly one on_done
 *
 * Flow control both ways, so memory stays bounded whatever the body size:
 *  - request: px_exchange_send_body() returns CUT_ERR_FULL when the bytes were
 *    taken but the exchange's buffered request data is over its watermark;
 *    the caller stops reading from its client until on_request_drain fires.
 *  - response: on_body may return PX_PAUSE; the exchange then stops reading
 *    from the backend (HTTP/1.1: read disabled; HTTP/2: the stream's data is
 *    not consumed, so the backend's flow-control window closes) until the
 *    caller calls px_exchange_resume().
 *
 * Retries: an idempotent request whose connection failed before any request
 * byte was written is retried on another host up to backend.retries times;
 * never after bytes were sent. (HTTP/2: a stream the server refused, by
 * GOAWAY or REFUSED_STREAM, counts as never sent.) A pipelined HTTP/1.1
 * exchange that got no byte of its response when its connection ended is
 * sent again, unless its timeout has passed (RFC 9112 section 9.3.2; see
 * px_x_resend).
 *
 * Details of the contract that the prototypes alone do not say:
 *  - Every failure after px_exchange_start() returned 0 (no host, pool full,
 *    connect, timeout...) is reported through on_done, from the event loop,
 *    never from inside px_exchange_start() itself.
 *  - on_response, on_body and on_trailers returning -1 is the same as calling
 *    px_exchange_cancel(): no further callback, on_done included.
 *    px_exchange_cancel() may also be called from inside any callback of the
 *    exchange (and from on_done it is a no-op).
 *  - After on_body returned PX_PAUSE no on_body comes until px_exchange_resume().
 *    Responses to HEAD, and 204 / 304 responses, have no body callbacks.
 *  - 1xx interim responses are dropped; on_response sees the final head.
 *    Response heads carry no hop-by-hop headers.
 *  - `cause` in on_done is valid for the duration of the call only.
 *  - backend.timeout_ms runs from px_exchange_start() to the response head
 *    (waiting for a connection slot and connecting included; restarted by
 *    each px_exchange_send_body(), so a slow upload is not a slow backend),
 *    and then between response bytes while the caller is not paused (a
 *    stalled body ends in PX_FAIL_TIMEOUT with got_response = 1);
 *    total_timeout_ms runs from start to the end of the response.
 *  - px_pool_free() must not be called from inside a callback of that pool.
 */

#define PX_PAUSE 1 /* returned by on_body: stop delivering until px_exchange_resume() */

struct px_pool;
struct px_exchange;

/* Why an exchange ended without a full response (on_done's err is then < 0). */
enum px_fail {
  PX_FAIL_NONE = 0,
  PX_FAIL_CONNECT,       /* no connection could be made (502) */
  PX_FAIL_TLS,           /* TLS handshake or verification failed (502) */
  PX_FAIL_NO_HOST,       /* every host is ejected/unhealthy or the pool is full (503) */
  PX_FAIL_TIMEOUT,       /* first-byte or total timeout (504) */
  PX_FAIL_RESET,         /* the backend closed or reset mid-exchange (502) */
  PX_FAIL_PROTOCOL,      /* the backend broke HTTP (502) */
  PX_FAIL_CANCELLED,     /* px_exchange_cancel() was called (no callback is made for this) */
};

struct px_exchange_cbs {
  /* The response head; borrowed for the call. Return 0, or -1 to cancel. */
  int (*on_response)(struct px_exchange *x, const struct px_response_head *head, void *user_data);
  /* Response body bytes; borrowed for the call. Return 0, PX_PAUSE, or -1 to cancel. */
  int (*on_body)(struct px_exchange *x, const uint8_t *data, size_t len, void *user_data);
  /* Response trailers (HTTP/2 or chunked HTTP/1.1); may be NULL. */
  int (*on_trailers)(struct px_exchange *x, const struct px_headers *trailers, void *user_data);
  /* Exactly once, last: err 0 = complete response, else a negative CUT_ERR_*
   * with `fail` the reason and `cause` a short static text ("connect refused
   * by 127.0.0.1:9002"). `got_response` tells whether on_response was called.
   * After on_done the exchange is freed: drop the pointer. */
  void (*on_done)(struct px_exchange *x, int err, enum px_fail fail, const char *cause,
                  int got_response, void *user_data);
  /* The request side drained below its watermark after send_body said FULL. May be NULL. */
  void (*on_request_drain)(struct px_exchange *x, void *user_data);
  /* 1: the caller keeps the head given to px_exchange_start (and all it
   * points to) alive and unchanged until on_done or px_exchange_cancel, so
   * the exchange reads it in place; 0: the exchange copies it when needed. */
  int borrow_head;
};

struct px_pool_opts {
  /* Client TLS context for protocol h2, or http1 with a tls block (borrowed);
   * build it once with px_tls_client_ctx_new() (proxy/px_tls_client.h) and
   * share it between workers. When NULL and the backend needs TLS, the pool
   * builds (and owns) one from backend->tls. */
  SSL_CTX *tls;
  struct evdns_base *dns;     /* for host names (borrowed); NULL = hosts must be IP literals */
  size_t body_watermark;      /* per exchange, request and response side; default 64 KiB */
};

/* Creates a pool for `backend` (borrowed: the caller keeps the config
 * snapshot alive for the pool's lifetime). Returns 0 or CUT_ERR_NOMEM /
 * CUT_ERR_INVALID with err text. */
int px_pool_new(struct px_pool **out, struct event_base *base, const struct cfg_backend *backend,
                const struct px_pool_opts *opts, char *err, size_t errlen);

/* Cancels every exchange (no callbacks), closes connections, frees. NULL is ok. */
void px_pool_free(struct px_pool *p);

/* Starts an exchange. `head` is copied, or borrowed (cbs->borrow_head). Returns 0 and *out (valid until
 * on_done or px_exchange_cancel), or a negative error (no callback is made). */
int px_exchange_start(struct px_pool *p, const struct px_request_head *head, int has_body,
                      const struct px_exchange_cbs *cbs, void *user_data,
                      struct px_exchange **out);

/* Queues request body bytes (copied). Returns 0, or CUT_ERR_FULL (bytes taken,
 * over the watermark: wait for on_request_drain), or CUT_ERR_STATE after end. */
int px_exchange_send_body(struct px_exchange *x, const uint8_t *data, size_t len);

/* Ends the request body; trailers may be NULL (copied). */
int px_exchange_end_body(struct px_exchange *x, const struct px_headers *trailers);

/* Resumes response delivery after on_body returned PX_PAUSE. */
void px_exchange_resume(struct px_exchange *x);

/* Abandons the exchange: no more callbacks; the connection is closed (or the
 * HTTP/2 stream reset) unless it can be reused safely. */
void px_exchange_cancel(struct px_exchange *x);

/* The host:port the exchange was sent to ("" before a host was picked). */
const char *px_exchange_host(const struct px_exchange *x);

/* Counters of one pool, for metrics. */
struct px_pool_stats {
  uint64_t connects, connect_failures, reused, active_exchanges, idle_connections;
  uint64_t timeouts, resets, retries;
  uint64_t pipelined;  /* HTTP/1.1 requests sent behind another on a connection */
};
void px_pool_stats(const struct px_pool *p, struct px_pool_stats *out);

/*
 * Per-host state, for health checks and outlier detection. Hosts are indexed
 * like backend->hosts. The picker skips a host that is not healthy or whose
 * ejection has not expired; when every host is skipped, backend.on_unhealthy
 * decides: fail_open picks among all hosts, fail gives PX_FAIL_NO_HOST.
 * Times are milliseconds of the pool's clock (px_pool_now_ms).
 */
struct px_host_stats {
  uint32_t active;                       /* exchanges assigned to the host */
  uint32_t connections;                  /* open or connecting */
  uint32_t waiting;                      /* exchanges waiting for a connection slot */
  uint32_t consecutive_5xx;              /* responses >= 500 in a row */
  uint32_t consecutive_connect_failures; /* failed connects in a row */
  int healthy;
  uint64_t ejected_until_ms;             /* 0 = not ejected */
};
size_t px_pool_nhosts(const struct px_pool *p);
/* Returns 0, or CUT_ERR_RANGE for a bad index. */
int px_pool_host_stats(const struct px_pool *p, size_t i, struct px_host_stats *out);
int px_pool_host_set_healthy(struct px_pool *p, size_t i, int healthy);
int px_pool_host_eject(struct px_pool *p, size_t i, uint64_t until_ms);
/* The pool's clock: wall-clock ms as cached by the event loop. */
uint64_t px_pool_now_ms(struct px_pool *p);

#endif
