/* px_upstream_int: the pool's internal types, shared by the pool, the HTTP/1.1 and HTTP/2 clients and tests. */
#ifndef CUT_PX_UPSTREAM_INT_H
#define CUT_PX_UPSTREAM_INT_H

#include <errno.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <http_parser.h>
#include <nghttp2/nghttp2.h>

#include "proxy/px_upstream.h"

/*
 * Object graph (all on one worker thread):
 *
 *   px_pool ──< px_host ──< px_conn ──< px_exchange (h1: one, or up to backend.pipeline
 *                                       in response order; h2: one per stream)
 *                  └── waitq: exchanges that picked this host while every
 *                      connection slot was busy (bounded)
 *
 * An exchange is in exactly one of these places: the host's wait queue, a
 * connecting connection's `waiters`, a ready connection (h1: conn->x; h2: a
 * stream), or nowhere (finished, between retries).
 */

#define PX_WAITQ_MAX 1024u /* per host: exchanges waiting for a connection slot */
#define PX_H2_WINDOW (256u * 1024u) /* per-stream receive window we advertise */
#define PX_OUT_HIGH (64u * 1024u)   /* stop producing into a connection's output above this */

enum px_conn_state { CONN_CONNECTING, CONN_READY, CONN_DEAD };

struct px_exchange;
TAILQ_HEAD(px_xq, px_exchange);
struct px_conn;
TAILQ_HEAD(px_connq, px_conn);

struct px_host {
  struct px_pool *pool;
  const struct cfg_addr *addr;        /* borrowed from the backend config */
  char name[300];                     /* "host:port" */
  struct sockaddr_storage sa;         /* for IP literals */
  int salen;                          /* 0 when the host is a DNS name */
  uint32_t active;                    /* exchanges assigned to this host (least request) */
  uint32_t nconns;                    /* open or connecting connections */
  struct px_connq conns;              /* every connection */
  struct px_connq idle;               /* h1: connections with no exchange, newest first */
  struct px_xq waitq;
  uint32_t nwait;
  /* Health and outlier hooks: the picker skips a host that is not healthy or
   * whose ejection lasts; the counters are kept here for the outlier detector. */
  int healthy;                        /* 1 unless an active health check says otherwise */
  uint64_t ejected_until_ms;          /* px_now_ms clock; 0 = not ejected */
  uint32_t consecutive_5xx;
  uint32_t consecutive_connect_failures;
  /* h1 pipelining (backend.pipeline > 1): the connection that took a request
   * in this pass of the event loop and collects the pass's other pipelinable
   * requests; they are written together when its kick runs, at the end of
   * the pass. NULL when none. */
  struct px_conn *batch;
  /* h1 pipelining: the connection opened for a pipelinable request in this
   * pass of the event loop, which the pass's next ones wait for (up to the
   * depth) instead of each opening its own. NULL after the pass (its kick),
   * once it is open, or gone. */
  struct px_conn *joinable;
};

struct px_conn {
  struct px_pool *pool;
  struct px_host *host;
  struct bufferevent *bev;            /* NULL once a plain HTTP/1.1 connection went raw */
  /* Plain (no TLS) HTTP/1.1 connections drop their bufferevent once connected
   * and drive the socket directly: one persistent read event that stays on
   * (off only while the response is paused), reads straight into a stack
   * buffer that is parsed in place, and writes made at once, with a write
   * event only while the kernel refuses bytes. That is one read and one write
   * per exchange, with no FIONREAD and no epoll_ctl churn. */
  int raw;
  evutil_socket_t fd;                 /* raw: the socket (owned) */
  struct event rev, wev;              /* raw: read (persistent), write (while output waits) */
  int rev_on, wev_on;
  int werr;                           /* raw: a write failed; reported from wev */
  struct evbuffer *rin;               /* raw: bytes read but not parsed (paused response) */
  struct evbuffer *rout;              /* raw: bytes not yet written */
  /* raw: 0 when rin / rout are known to be empty, so the hot path need not
   * touch them (two cache misses per exchange). */
  int rin_used, rout_used;
  enum px_conn_state state;
  int is_h2;
  int in_io;                          /* inside our own read/event processing */
  int closing;                        /* teardown requested while in_io */
  const char *close_why;              /* static text: why it closes with exchanges on it */
  TAILQ_ENTRY(px_conn) link;          /* host->conns */
  TAILQ_ENTRY(px_conn) idle_link;     /* host->idle */
  int in_idle;
  /* h1: when the connection last became idle. Its idle timer is armed when
   * it goes idle and not disarmed when it is used again: a timer that fires
   * early or on a busy connection is armed again or ignored, which costs
   * less than an add and a delete per exchange. */
  uint64_t idle_since_ms;
  struct event *timer;                /* connect, then idle */
  struct event *kick;                 /* deferred re-processing (resume, drain) */
  struct px_xq waiters;               /* exchanges waiting for the connect */
  uint32_t nwaiters;
  struct px_xq active;                /* exchanges on this connection (x->clink) */
  struct px_xq kickq;                 /* exchanges with deferred work (x->klink) */
  uint64_t served;                    /* exchanges completed on this connection */
  /* HTTP/1.1 */
  http_parser parser;
  struct px_exchange *x;              /* the exchange being answered: the first of `active` */
  uint32_t depth;                     /* exchanges in `active` (more than 1 only when pipelining) */
  int batch_open;                     /* host->batch: output is held until the kick flushes it */
  int h1_paused;                      /* parser paused by backpressure */
  int h1_msg_done;                    /* on_message_complete seen for x */
  int h1_in_trailers;
  int h1_hdr_state;                   /* 0 none, 1 in field, 2 in value */
  int h1_skip;                        /* skipping a 1xx head */
  int h1_eof;                         /* EOF seen while the parser was paused */
  size_t h1_left;                     /* input bytes after what the parser consumed */
  char *hbuf;                         /* header name then value being accumulated */
  size_t hname_len, hval_len, hcap;
  /* HTTP/2 */
  nghttp2_session *h2;
  uint32_t nstreams;                  /* open streams */
  uint32_t peer_max_streams;          /* SETTINGS_MAX_CONCURRENT_STREAMS */
  int goaway;                         /* no new streams */
  int32_t goaway_last_id;
};

enum px_xstate {
  XS_NEW,         /* not yet placed */
  XS_WAITQ,       /* in host->waitq */
  XS_CONNECTING,  /* in conn->waiters */
  XS_ACTIVE,      /* on a connection */
  XS_DRAINING,    /* h2: response complete, connection gone, paused caller still has data */
  XS_DONE,
};

struct px_exchange {
  struct px_pool *pool;
  struct px_request_head head;
  struct px_exchange_cbs cbs;
  void *ud;
  enum px_xstate state;
  struct px_host *host;
  struct px_conn *conn;
  TAILQ_ENTRY(px_exchange) link;      /* waitq or conn->waiters */
  TAILQ_ENTRY(px_exchange) clink;     /* conn->active */
  TAILQ_ENTRY(px_exchange) klink;     /* conn->kickq */
  TAILQ_ENTRY(px_exchange) alink;     /* pool->all */
  int in_kickq, k_resume, k_drain;
  int deferred_fail;                  /* timer fires to report a failure found at start */
  enum px_fail dfail;
  int32_t stream_id;
  int has_body;
  int body_ended;                     /* px_exchange_end_body called */
  int body_flushed;                   /* end of request written to the connection */
  int chunked;                        /* h1 request body framed as chunked */
  struct px_headers req_trailers;
  struct evbuffer *reqbuf;            /* request body not yet on a connection (has_body only) */
  int want_drain;                     /* send_body said FULL */
  int bytes_sent;                     /* a request byte reached a connection */
  int got_response;
  int paused;                         /* on_body said PX_PAUSE */
  int is_head;
  int idempotent;
  int pipelined;                      /* h1: sent behind another exchange on its connection */
  int placeholder;                    /* h1: px_x_placeholder, reads and drops a response */
  uint32_t resent;                    /* times sent again after its connection ended unanswered */
  uint32_t attempts;
  struct px_host *failed_host;        /* avoid on retry */
  int in_cb;                          /* inside a user callback */
  int cancelled;
  int counted_active;
  struct event *timer;                /* = &timer_ev */
  struct event timer_ev;              /* embedded: no allocation per exchange */
  uint64_t timer_due;                 /* when the timer fires (px_now_ms), UINT64_MAX if off */
  /* x->head borrows the caller's head until the exchange has to wait or may
   * be sent again (queued, connecting, HTTP/2): then it is copied into
   * head_mem (x_own_head), unless the caller keeps it for the exchange's
   * life (cbs.borrow_head). An HTTP/1.1 exchange placed on an idle
   * connection writes its head at once and never needs the copy. */
  int head_owned;                     /* x->head stays valid as long as x */
  char *head_mem;                     /* one block holding head's strings and fields */
  size_t head_cap;                    /* its size (kept when the exchange is reused) */
  uint64_t start_ms;
  uint64_t last_rx_ms;                /* last response byte handed to the caller */
  uint64_t last_tx_ms;                /* last request body bytes from the caller */
  struct px_response_head resp;
  struct evbuffer *h2_pending;        /* h2: DATA received while paused */
  size_t h2_unconsumed;               /* h2: bytes not yet given back to the window */
  int h2_closed;                      /* h2: stream closed, waiting to deliver pending data */
  uint32_t h2_error_code;
  struct px_headers resp_trailers;
  int body_consumed;                  /* some request body left reqbuf for a connection */
  int h2_remote_end;                  /* h2: END_STREAM received */
  int drain_kick;                     /* XS_DRAINING: deliver pending data from the timer */
  struct px_exchange *next_free;      /* pool->xfree */
  char cause[400];                    /* last (a reused exchange clears only what precedes) */
};

struct px_pool {
  struct event_base *base;
  const struct cfg_backend *be;
  struct px_pool_opts opts;
  SSL_CTX *own_tls;                   /* built from be->tls when opts.tls is NULL */
  struct px_host *hosts;
  size_t nhosts;
  size_t rr;
  struct px_pool_stats stats;
  size_t watermark;
  uint64_t idle_ms, first_ms;         /* idle timeout; an exchange's first deadline (0: none) */
  const struct timeval *idle_ctv, *first_ctv; /* their common timeouts (NULL: use the heap) */
  struct px_xq all;                   /* every live exchange */
  /* Finished exchanges kept for reuse: hundreds in flight at once overflow
   * malloc's per-thread caches, and an exchange is just above their size. */
  struct px_exchange *xfree;
  uint32_t nxfree;
};

/* --- pool (px_upstream.c), used by the clients --- */
uint64_t px_now_ms(struct px_pool *p);
/* A user callback wrapper set: each returns 0 to continue, PX_PAUSE, or -1 when
 * the exchange is gone (cancelled by the caller); then touch x no more. */
int px_x_response(struct px_exchange *x);
int px_x_body(struct px_exchange *x, const uint8_t *data, size_t len);
int px_x_trailers(struct px_exchange *x, const struct px_headers *t);
void px_x_request_drained(struct px_exchange *x);
/* Ends the exchange: on_done and free (or retry when allowed). */
void px_x_finish(struct px_exchange *x, int err, enum px_fail fail, const char *cause);
/* The connection failed before (or while) serving x: retry or finish. */
void px_x_conn_failed(struct px_exchange *x, enum px_fail fail, const char *cause);
/* Takes x off its connection or queue and fails it from the loop, never
 * inside the caller: for failures while x is being placed, which may be
 * inside px_exchange_start (its caller must get a live exchange and no
 * callback before it returns). */
void px_x_fail_soon(struct px_exchange *x, enum px_fail fail, const char *cause);
/* x was pipelined (x->pipelined) and its connection ended before any byte of
 * its response: it is unlinked from its connection already. It is bodiless
 * with a safe method, so it is sent again: up to PX_RESEND_ANNOUNCED times
 * (its timeouts still run) when the server had announced the close
 * (Connection: close on an earlier response: it must not have processed x),
 * else once. Past that it fails from the loop with PX_FAIL_RESET; past its
 * deadline, with its timeout. A placeholder is freed instead (no one waits
 * for it). */
#define PX_RESEND_ANNOUNCED 64u
void px_x_resend(struct px_exchange *x, int announced, const char *cause);
/* An exchange that takes the place of `like` (pipelined, cancelled) on its
 * connection and reads and drops its response; NULL when out of memory. */
struct px_exchange *px_x_placeholder(const struct px_exchange *like);
/* The placeholder x's response is read next: its timeout starts now. */
void px_x_placeholder_turn(struct px_exchange *x);
/* A connection is ready or a slot freed: hand waiting exchanges to it. */
void px_host_slot_free(struct px_host *h);
/* Connection lifecycle. */
void px_conn_close(struct px_conn *c);
void px_conn_fail_all(struct px_conn *c, enum px_fail fail, const char *cause);
void px_conn_idle(struct px_conn *c);
void px_conn_kick(struct px_conn *c, struct px_exchange *x, int resume, int drain);
void px_x_got_first_byte(struct px_exchange *x);
/* A read or write error that only means "try again later". */
#define PX_IO_RETRIABLE(e) ((e) == EAGAIN || (e) == EWOULDBLOCK || (e) == EINTR)
/* Connection I/O, the same for bufferevent and raw connections. */
struct evbuffer *px_conn_out(struct px_conn *c);
struct evbuffer *px_conn_in(struct px_conn *c);
/* Raw connections: writes what the output holds now (a write event takes over
 * what the kernel refuses). Bufferevent connections: enables writing. */
void px_conn_flush(struct px_conn *c);
/* Writes len bytes at once when nothing is queued before them (raw
 * connections), else queues them. Returns 0 or CUT_ERR_NOMEM. */
int px_conn_write(struct px_conn *c, const void *data, size_t len);
/* Turns reading on or off (backpressure). */
void px_conn_reading(struct px_conn *c, int on);

/* --- HTTP/1.1 client (px_h1_client.c) --- */
void px_h1_init(struct px_conn *c);
/* Writes x's head (and buffered body) to the ready connection c. */
int px_h1_dispatch(struct px_conn *c, struct px_exchange *x);
/* Queues x behind the exchanges on c (pipelining; c->batch_open): its head
 * joins the output the kick writes. */
int px_h1_pipeline(struct px_conn *c, struct px_exchange *x);
void px_h1_read(struct px_conn *c);
/* Raw connections: the socket is readable. */
void px_h1_raw_read(struct px_conn *c);
void px_h1_send_body(struct px_exchange *x);
void px_h1_detach(struct px_exchange *x);
void px_h1_close_busy(struct px_conn *c);
void px_h1_eof(struct px_conn *c, int error);

/* --- HTTP/2 client (px_h2_client.c) --- */
int px_h2_init(struct px_conn *c);
int px_h2_dispatch(struct px_conn *c, struct px_exchange *x);
void px_h2_read(struct px_conn *c);
void px_h2_write(struct px_conn *c);
void px_h2_send_body(struct px_exchange *x);
/* Returns -1 when x is gone (finished or cancelled), else 0. */
int px_h2_resume(struct px_exchange *x);
void px_h2_detach(struct px_exchange *x);
int px_h2_can_take(const struct px_conn *c);
void px_h2_free(struct px_conn *c);

#endif
