/* px_server_int: the types shared by the server, connections, frontends and requests.
 * Private to proxy/ (and to tests that drive a frontend in memory). */
#ifndef CUT_PX_SERVER_INT_H
#define CUT_PX_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "dials/dial.h"
#include "proxy/px_forward.h"
#include "proxy/px_msg.h"
#include "proxy/px_server.h"
#include "proxy/px_upstream.h"
#include "replay/rec_mirror.h"

struct sockaddr;
struct bufferevent;
struct event;
struct event_base;
struct evdns_base;
struct evconnlistener;
typedef struct ssl_ctx_st SSL_CTX;

/* Output to one client is kept below these (write watermarks). */
#define PX_OUT_HIGH (128 * 1024) /* stop producing for the client above this */
#define PX_OUT_LOW (32 * 1024)   /* resume when the output drained below this */
#define PX_STREAM_HIGH (64 * 1024) /* response bytes buffered per HTTP/2 stream */

struct px_req;
struct px_client;
struct px_health_board;

/*
 * One worker's view of one config snapshot: the snapshot (borrowed from the
 * server's owner until px_server_oldest_gen() passes it), its metric set and
 * health board, and this worker's upstream pools and outlier state for its
 * backends. A reload gives each worker a new generation; requests hold the
 * one they started on (refs), and a retired generation's pools are freed once
 * its last request ended and its shadows had time to end (grace).
 */
struct px_gen {
  uint64_t id;                      /* 0 for the config the server started with */
  const struct cfg *cfg;
  struct px_metrics *metrics;       /* may be NULL */
  struct px_health_board *board;    /* may be NULL */
  struct px_pool **pools;           /* one per cfg backend */
  struct px_outlier **outliers;     /* one per cfg backend: passive ejection as this worker sees it */
  struct px_pool_stats *pool_seen;  /* one per cfg backend: counters already sent to metrics */
  unsigned char *group_down;        /* one per cfg backend: no usable host at the last tick */
  size_t refs;                      /* requests running on it (worker thread only) */
  int retired;
  uint64_t free_after_ns;           /* retired: earliest time to free once refs == 0 */
  struct px_gen *next;              /* the worker's retired generations */
};

/* What a request asks of its frontend (HTTP/1.1 or HTTP/2) to answer the client. */
struct px_front_ops {
  /* The response head; `end` = no body follows. Returns 0 or <0 (the request is then aborted). */
  int (*respond)(struct px_req *r, const struct px_response_head *h, int end);
  /* Response body bytes (borrowed). Returns 0, or PX_PAUSE when over the
   * watermark: the frontend calls px_req_resume_response() once it drained. */
  int (*body)(struct px_req *r, const uint8_t *p, size_t n);
  /* Ends the response; trailers may be NULL (borrowed). */
  void (*end)(struct px_req *r, const struct px_headers *trailers);
  /* The response cannot complete (upstream failed mid-body): reset / close. */
  void (*abort)(struct px_req *r);
  /* `n` request body bytes were taken by the upstream (HTTP/2: consume them). */
  void (*consumed)(struct px_req *r, size_t n);
  /* The upstream drained after px_req_body() said CUT_ERR_FULL: read the client again. */
  void (*request_resume)(struct px_req *r);
};

/*
 * One proxied request. Embedded in the frontend's stream object; the
 * frontend fills `head` (and `h2`), calls px_req_begin(), feeds the body, and
 * calls px_req_finish() exactly once when it is done with the request.
 */
struct px_req {
  struct px_client *conn;
  const struct px_front_ops *front;
  const struct cfg *cfg;            /* the snapshot this request runs on */
  struct px_gen *gen;               /* ... and its pools (a reference, until px_req_finish) */
  struct px_request_head head;
  struct px_exchange *x;            /* NULL when none is active */
  const struct cfg_route *route;
  struct px_headers *resp_trailers; /* upstream trailers, until on_done */
  struct dial_decision dec;
  struct rec_mirror *mirror;        /* mirroring / recording of this request; NULL when none */
  uint64_t t_up_ns;                 /* when the primary exchange started */
  char decision[192];               /* formatted labels (px_req.c formats them on first use) */
  char reqid[72];
  char upstream[72];
  const char *error;                /* static cause word when the proxy answered itself */
  uint64_t t_start_ns;
  uint64_t bytes_in, bytes_out;
  int status;
  unsigned begun : 1, responded : 1, ended : 1, resp_paused : 1, body_full : 1,
      req_ended : 1, finished : 1, xdone : 1, decided : 1;
};

struct px_listener_rt {
  char addr[80];                    /* bound "host:port" */
  int tls;
  int h2c_upgrade;                  /* cleartext: honour "Upgrade: h2c" */
  SSL_CTX *ssl;                     /* shared by every worker (owned by the server) */
};

struct px_worker {
  struct px_server *srv;
  size_t idx;
  const struct cfg *cfg;            /* = gen->cfg: what new connections and requests use */
  struct px_gen *gen;               /* the current generation */
  struct px_gen *old_gens;          /* retired generations still in use */
  _Atomic uint64_t oldest_gen;      /* id of the oldest generation still alive */
  struct event_base *base;
  struct evdns_base *dns;
  struct evconnlistener **ls;       /* one per listener */
  struct event *ctl_ev;             /* activated from other threads: check stop_req */
  struct event *drain_ev;           /* drain deadline */
  struct event *tick_ev;            /* once a second: refresh the cached time */
  _Atomic int stop_req;
  _Atomic uint64_t stop_drain_ms;
  int draining;
  struct px_client *conns;            /* every open client connection */
  size_t nconns;
  struct px_rng rng;
  struct rec_codec *codec;          /* this worker's pair encoder; NULL without a sink */
  struct rec_opts ropts;            /* body cap, redaction, lineage (from cfg->recording) */
  struct rec_mirror_ops mops;       /* the upstream ops, as rec_mirror wants them */
  struct rec_mirror_env menv;       /* shadows in flight on this worker */
  char now_iso[32];                 /* cached RFC 3339 UTC time (seconds) */
  pthread_t thread;
  int thread_started;
  _Atomic uint64_t n_conns, n_active, n_reqs, n_5xx;
};

enum px_proto { PX_PROTO_DETECT = 0, PX_PROTO_H1, PX_PROTO_H2 };

struct px_client {
  struct px_worker *w;
  struct px_client *prev, *next;
  struct bufferevent *bev;
  struct event *flush_ev;           /* deferred send + deferred teardown */
  const struct px_listener_rt *l;
  int tls;
  enum px_proto proto;
  char peer[64];                    /* client IP as text */
  void *front;                      /* struct h1_front or struct h2_front */
  uint64_t linger_until_ns;         /* lingering close: the hard deadline */
  uint64_t linger_bytes;            /* lingering close: bytes discarded so far */
  int mproto;                       /* enum px_metrics_proto counted as open; -1 = none */
  unsigned flush_pending : 1, closing : 1, dead : 1, read_eof : 1, had_request : 1,
      lingering : 1, wr_shut : 1;
};

struct px_server {
  struct cfg *cfg;                  /* the config the server started with */
  pthread_mutex_t next_mu;          /* guards next: the snapshot workers are to take */
  struct px_snapshot_msg {
    const struct cfg *cfg;
    struct px_metrics *metrics;
    struct px_health_board *board;
    uint64_t id;
  } next;
  _Atomic uint64_t next_id;
  struct px_upstream_ops ops;
  struct px_decider decider;
  struct px_alog *alog;
  struct px_metrics *metrics;               /* may be NULL */
  const struct px_limit_counters *limits;   /* may be NULL */
  struct px_health_board *health;           /* may be NULL */
  struct rec_sink *rec_sink;        /* borrowed */
  struct rec_mirror_stats *mirror_stats;
  struct rec_comparer *comparer;    /* borrowed */
  struct rec_mirror_stats own_mirror_stats;
  struct px_listener_rt *listeners;
  size_t nlisteners;
  struct px_worker *workers;
  struct worker_ext *ext;           /* per worker: control pipe, listening sockets (px_server.c) */
  size_t nworkers;
  int started;
  int joined;
  _Atomic size_t running;           /* worker threads not yet ended */
};

/* The metric set new connections and streams are counted in (the current
 * generation's; every generation's set shares the registry's series, so a
 * gauge raised on one generation may be lowered on a later one). May be NULL. */
static inline struct px_metrics *px_worker_metrics(const struct px_worker *w) {
  return w->gen ? w->gen->metrics : w->srv ? w->srv->metrics : NULL;
}

/* px_client.c */
/* Wraps an accepted socket (takes ownership of fd, also on failure). */
int px_client_accept(struct px_worker *w, const struct px_listener_rt *l, int fd,
                   const struct sockaddr *sa, int salen);
/* Wraps an existing bufferevent (tests: one end of a bufferevent pair; takes ownership). */
int px_client_attach(struct px_worker *w, struct bufferevent *bev, int tls, const char *peer,
                   struct px_client **out);
void px_client_schedule_flush(struct px_client *c);
/* Marks the connection for teardown (deferred to the flush event; no callbacks run after). */
void px_client_kill(struct px_client *c);
/* Closes once everything queued for the client was written. */
void px_client_close_after_write(struct px_client *c);
/* Lingering close (after an error GOAWAY, or an HTTP/1.1 error answer):
 * input is no longer processed but still read and discarded, so the kernel
 * does not reset the connection over unread bytes and lose what we queued;
 * once the output drained the write side is shut down; the connection is
 * freed when the peer closes (and our output is written), or after
 * PX_LINGER_MS at most (1 s without any progress), or once PX_LINGER_BYTES
 * were discarded. Follow it with px_client_close_after_write(). */
#define PX_LINGER_MS 1000
#define PX_LINGER_BYTES (4u * 1024 * 1024)
void px_client_linger_close(struct px_client *c);
/* Starts a graceful shutdown of the connection (GOAWAY / close when idle). */
void px_client_drain(struct px_client *c);
/* HTTP/1.1 `Upgrade: h2c` accepted (the 101 is already queued): frees the
 * HTTP/1.1 frontend (the caller returns at once without touching it) and
 * attaches an HTTP/2 one whose stream 1 is the upgrade request, then handles
 * the input that followed it. `settings` (borrowed) is the decoded and checked
 * HTTP2-Settings payload; takes ownership of *head (left empty), also on
 * failure; `t_start_ns` is when the request began. Returns 0, or <0 when the
 * connection could not switch (it is then killed). */
int px_client_upgrade_h2(struct px_client *c, const uint8_t *settings, size_t len,
                         struct px_request_head *head, uint64_t t_start_ns);
/* A request began: from now on the idle timeout applies instead of the header timeout. */
void px_client_first_request(struct px_client *c);
/* Frees at once (worker teardown). */
void px_client_free(struct px_client *c);

/* px_front_h2.c */
int px_front_h2_attach(struct px_client *c);
/* Attaches after an h2c upgrade: stream 1 carries `head` (takes ownership,
 * also on failure; px_client_upgrade_h2 describes the arguments) and starts. */
int px_front_h2_attach_upgrade(struct px_client *c, const uint8_t *settings, size_t len,
                               struct px_request_head *head, uint64_t t_start_ns);
void px_front_h2_on_read(struct px_client *c);
void px_front_h2_on_write(struct px_client *c);
void px_front_h2_flush(struct px_client *c);
void px_front_h2_drain(struct px_client *c);
int px_front_h2_busy(const struct px_client *c);
/* Once a second: flow-control stall detection (px_limits). */
void px_front_h2_tick(struct px_client *c, uint64_t now_ms);
void px_front_h2_cancel(struct px_client *c); /* cancel exchanges, keep memory */
void px_front_h2_free(struct px_client *c);

/* px_front_h1.c */
int px_front_h1_attach(struct px_client *c);
void px_front_h1_on_read(struct px_client *c);
void px_front_h1_on_write(struct px_client *c);
void px_front_h1_flush(struct px_client *c);
void px_front_h1_drain(struct px_client *c);
int px_front_h1_busy(const struct px_client *c);
void px_front_h1_cancel(struct px_client *c);
void px_front_h1_free(struct px_client *c);

/* px_req.c */
void px_req_init(struct px_req *r, struct px_client *c, const struct px_front_ops *front);
/* The head is complete: route, decide, forward (or answer with an error). */
void px_req_begin(struct px_req *r, int has_body);
/* Request body bytes. Returns 0 or CUT_ERR_FULL (stop reading until front->request_resume). */
int px_req_body(struct px_req *r, const uint8_t *p, size_t n);
/* End of the request body; trailers may be NULL (borrowed). */
void px_req_end_body(struct px_req *r, const struct px_headers *trailers);
/* The frontend drained what PX_PAUSE held back. */
void px_req_resume_response(struct px_req *r);
/* Answers with `status` and a one-line text body naming `cause`. */
void px_req_respond_error(struct px_req *r, int status, const char *cause);
/* The frontend is done with the request: cancel what is pending, log, release. */
void px_req_finish(struct px_req *r);

/* px_worker helpers (px_server.c) */
/* CLOCK_MONOTONIC in ns; on a worker thread, read once per loop iteration. */
uint64_t px_now_ns(void);
/* The pool of a backend of generation g (NULL when out of range). */
struct px_pool *px_gen_pool(const struct px_gen *g, size_t backend_index);
/* A request ended on g: drop its reference. */
void px_gen_release(struct px_gen *g);
void px_worker_conn_gone(struct px_worker *w);

#endif
