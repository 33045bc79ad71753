/* px_demo_int: internals of the demo backend shared by its model and its connections. */
#ifndef CUT_PX_DEMO_INT_H
#define CUT_PX_DEMO_INT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "common/sbuf.h"
#include "proxy/px_demo.h"

/* Bounds: whatever a client sends, one request never holds more than this. */
#define DEMO_MAX_TARGET (16 * 1024)       /* request target (path and query) */
#define DEMO_MAX_HEADERS (256 * 1024)     /* request header names and values, together */
#define DEMO_OUT_HIGH (256 * 1024)        /* stop producing output above this many queued bytes */
#define DEMO_OUT_LOW (64 * 1024)          /* resume producing when output drains to this */
#define DEMO_IN_HIGH (256 * 1024)         /* stop reading while this much input waits */
#define DEMO_CHUNK (16 * 1024)            /* body bytes produced per step */
#define DEMO_DRIP_PIECES 10               /* drip=MS sends the body in this many pieces */

/* Request buffers are sbufs (embedded, start zeroed; free with sb_clear). */
/* Appends n bytes, keeping a NUL after them. Returns 0 or CUT_ERR_NOMEM. */
int demo_buf_add(struct sbuf *b, const void *d, size_t n);
/* Appends a JSON string literal (quotes included) for s[n]. Returns 0 or CUT_ERR_NOMEM. */
int demo_buf_add_json(struct sbuf *b, const char *s, size_t n);

/* The behaviours a request asks for in its query string. */
struct demo_knobs {
  int status;         /* 0 = 200 */
  uint64_t delay_ms;
  int64_t size;       /* -1 = the JSON document */
  int chunked;
  int close_mid;
  int close_start;
  uint64_t drip_ms;
  int echo;
  int trailers;
};

/* Parses the knobs from a request target ("/p?delay=5ms&size=10"). Unknown
 * parameters are ignored. Returns 0, or CUT_ERR_INVALID with a sentence in err. */
int demo_knobs_parse(const char *target, size_t len, struct demo_knobs *k, char *err,
                     size_t errlen);

/* One request as the backend sees it, for either protocol; reused across the
 * requests of an HTTP/1.1 connection (demo_req_reset keeps the allocations). */
struct demo_req {
  char method[24];
  struct sbuf target;    /* path and query */
  struct sbuf authority; /* :authority or Host */
  struct sbuf hdrs;      /* pairs "name\0value\0", names lower-case */
  size_t nhdrs;
  uint64_t body_bytes;
  int hashing;               /* echo=1: hash the body */
  EVP_MD_CTX *sha;           /* created on first use */
  struct demo_knobs knobs;
  char knob_err[128];        /* non-empty: answer 400 with this text */
};

/* Makes r ready for the next request on the same connection (keeps the buffers). */
void demo_req_reset(struct demo_req *r);
/* Frees what the embedded r owns; r stays usable as a zeroed request. */
void demo_req_clear(struct demo_req *r);
/* Copies a header (name lower-cased). Returns 0, CUT_ERR_FULL over
 * DEMO_MAX_HEADERS, or CUT_ERR_NOMEM. */
int demo_req_header(struct demo_req *r, const char *name, size_t namelen, const char *value,
                    size_t valuelen);
/* Parses the target's knobs; call once the head is complete. */
void demo_req_head_done(struct demo_req *r);
/* Counts (and hashes when echo=1) a piece of the request body, then forgets it. */
void demo_req_body(struct demo_req *r, const void *d, size_t n);

/* The response being produced for one request. */
enum demo_body_state {
  DEMO_BODY_MORE, /* bytes can be read now */
  DEMO_BODY_WAIT, /* drip: wait resp.drip_ms, then demo_resp_next_piece() */
  DEMO_BODY_DONE, /* every byte was read */
  DEMO_BODY_CUT,  /* close=mid: stop here and break the connection or stream */
};

struct demo_resp {
  int status;
  const char *content_type; /* static string */
  struct sbuf body;     /* the JSON document (when !generated) */
  int generated;            /* size=N: bytes from a pattern */
  uint64_t total;           /* announced body length */
  uint64_t sent;            /* bytes read so far */
  uint64_t piece;           /* drip: bytes per piece */
  uint64_t piece_left;      /* bytes readable before the next drip wait */
  uint64_t delay_ms;
  uint64_t drip_ms;
  int chunked;
  int close_mid;
  int close_start;          /* close=start: no response at all, close or reset */
  int trailers;
  int head_only;            /* HEAD: head with content-length, no body */
};

/* Plans the response to req (the JSON document, echo or knob error) into
 * resp, reusing resp's buffers. Borrows both. Returns 0 or CUT_ERR_NOMEM. */
int demo_resp_build(struct demo_resp *resp, const struct px_demo_opts *opts,
                    struct demo_req *req);
enum demo_body_state demo_resp_state(const struct demo_resp *resp);
/* Copies up to max body bytes into dst; returns how many (0 unless MORE). */
size_t demo_resp_read(struct demo_resp *resp, uint8_t *dst, size_t max);
/* Opens the next drip piece after a DEMO_BODY_WAIT. */
void demo_resp_next_piece(struct demo_resp *resp);
void demo_resp_free(struct demo_resp *resp);

/*
 * Connections: every connection object of a worker is on the worker's list so
 * a stop can free them all. `free_fn` is the object's one teardown function.
 */
struct demo_link {
  struct demo_link *prev;
  struct demo_link *next;
  void (*free_fn)(struct demo_link *l);
};

struct demo_worker {
  struct event_base *base;
  const struct px_demo_opts *opts; /* borrowed from px_demo_run's caller */
  SSL_CTX *ssl_ctx;                /* borrowed, shared by the workers; NULL = cleartext */
  struct demo_link conns;          /* list sentinel */
};

void demo_link_add(struct demo_worker *w, struct demo_link *l);
void demo_link_del(struct demo_link *l);

/* Take ownership of bev (input may already hold bytes) and serve it; on
 * failure free bev. Return 0 or CUT_ERR_NOMEM. */
int demo_h1_new(struct demo_worker *w, struct bufferevent *bev);
int demo_h2_new(struct demo_worker *w, struct bufferevent *bev);

/* Converts a millisecond count to a struct timeval. */
struct timeval demo_ms_tv(uint64_t ms);

#endif
