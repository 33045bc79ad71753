/* px_front_h2: the HTTP/2 server side of a client connection (nghttp2). */
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <nghttp2/nghttp2.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "proxy/px_limits.h"
#include "proxy/px_mem.h"
#include "proxy/px_metrics.h"
#include "proxy/px_server_int.h"

#define H2_STREAM_WINDOW (256 * 1024)
#define H2_CONN_WINDOW (4 * 1024 * 1024)
#define H2_INLINE_BODY 512
#define H2_PSEUDO_INLINE 256

struct h2_stream {
  struct px_req req; /* first: a px_req* is an h2_stream* */
  struct h2_front *f;
  struct h2_stream *prev, *next;
  int32_t id;
  struct evbuffer *body;        /* response bytes not yet framed, after those in ibuf */
  /* A small response body waits here, not in an evbuffer chain allocated and
   * freed for each response; every byte in ibuf precedes those in body. */
  uint16_t ibeg, iend;
  struct px_headers trailers;   /* request trailers */
  struct px_headers *resp_trailers; /* borrowed from req until sent */
  size_t unconsumed;            /* request bytes held while the upstream is full */
  size_t hdr_bytes;
  size_t nhdr;
  unsigned resp_submitted : 1, resp_eof : 1, deferred : 1, too_big : 1, closed : 1,
      want_resume : 1, body_over : 1;
  uint16_t pused;               /* bytes of pbuf in use */
  /* last: a reused stream does not clear these */
  uint8_t ibuf[H2_INLINE_BODY];
  /* The pseudo-header strings of the request head (borrowed by req.head)
   * live here when they fit, instead of four mallocs per request. */
  char pbuf[H2_PSEUDO_INLINE];
};

struct h2_front {
  struct px_client *c;
  nghttp2_session *s;
  struct h2_stream *streams;
  size_t nstreams;
  int in_recv;         /* inside nghttp2_session_mem_recv */
  int want_resume;     /* some stream wants px_req_resume_response after sending */
  int goaway;
  int goaway_error;      /* a GOAWAY with an error code was sent or queued */
  struct px_flood flood; /* flood detector fed every byte the client sends */
  size_t fed_ahead;      /* bytes at the head of the input already fed to it */
  uint32_t max_streams;  /* SETTINGS_MAX_CONCURRENT_STREAMS we advertise */
  struct h2_stream *spare; /* closed streams kept for reuse (linked by next) */
  unsigned nspare;
};

#define H2_SPARE_MAX 16u /* about 20 KiB at most kept per connection */

/* Streams come and go by the hundred per loop iteration, more than malloc's
 * per-thread caches hold: closed ones are kept (with their emptied body
 * buffer) for the next. Sanitizer builds free them, to catch use after free. */
#if defined(__SANITIZE_ADDRESS__)
#define H2_KEEP_SPARES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define H2_KEEP_SPARES 0
#endif
#endif
#ifndef H2_KEEP_SPARES
#define H2_KEEP_SPARES 1
#endif

static struct h2_stream *stream_alloc(struct h2_front *f) {
  struct h2_stream *st = f->spare;
  if (!st)
    return calloc(1, sizeof *st);
  f->spare = st->next;
  f->nspare--;
  struct evbuffer *body = st->body;
  memset(st, 0, offsetof(struct h2_stream, ibuf));
  st->body = body;
  return st;
}

/* The stream is finished (px_req_finish) and unlinked. */
static void stream_release(struct h2_front *f, struct h2_stream *st) {
  px_headers_clear(&st->trailers);
  if (H2_KEEP_SPARES && f->nspare < H2_SPARE_MAX) {
    if (st->body)
      evbuffer_drain(st->body, evbuffer_get_length(st->body));
    st->next = f->spare;
    f->spare = st;
    f->nspare++;
    return;
  }
  if (st->body)
    evbuffer_free(st->body);
  free(st);
}

static const struct px_front_ops h2_ops;

static size_t body_len(const struct h2_stream *st) {
  return (size_t)(st->iend - st->ibeg) + (st->body ? evbuffer_get_length(st->body) : 0);
}

static struct h2_stream *stream_of(struct px_req *r) { return (struct h2_stream *)r; }

/* ---- response side (px_front_ops) ---- */

static ssize_t data_source_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                                   uint32_t *flags, nghttp2_data_source *src, void *user_data) {
  struct h2_front *f = user_data;
  struct h2_stream *st = src->ptr;
  if (evbuffer_get_length(bufferevent_get_output(f->c->bev)) >= PX_OUT_HIGH)
    return NGHTTP2_ERR_WOULDBLOCK;
  size_t have = body_len(st);
  if (have == 0 && !st->resp_eof) {
    st->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = 0;
  if (st->iend > st->ibeg) {
    n = (size_t)(st->iend - st->ibeg) < length ? (size_t)(st->iend - st->ibeg) : length;
    memcpy(buf, st->ibuf + st->ibeg, n);
    st->ibeg = (uint16_t)(st->ibeg + n);
    if (st->ibeg == st->iend)
      st->ibeg = st->iend = 0;
  }
  if (n < length && st->body && evbuffer_get_length(st->body)) {
    int m = evbuffer_remove(st->body, buf + n, length - n);
    if (m < 0)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    n += (size_t)m;
  }
  if (st->resp_eof && body_len(st) == 0) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->resp_trailers && st->resp_trailers->n) {
      struct px_headers *t = st->resp_trailers;
      nghttp2_nv nv[t->n];
      size_t k = 0;
      for (size_t i = 0; i < t->n; i++) {
        if (px_header_is_hop(t->v[i].name, t->v[i].namelen))
          continue;
        nv[k++] = (nghttp2_nv){(uint8_t *)t->v[i].name, (uint8_t *)t->v[i].value,
                               t->v[i].namelen, t->v[i].valuelen, NGHTTP2_NV_FLAG_NONE};
      }
      if (k && nghttp2_submit_trailer(s, id, nv, k) == 0)
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }
  if (st->req.resp_paused && body_len(st) < PX_STREAM_HIGH / 2) {
    st->want_resume = 1;
    f->want_resume = 1;
  }
  return (ssize_t)n;
}

static int h2_respond(struct px_req *r, const struct px_response_head *h, int end) {
  struct h2_stream *st = stream_of(r);
  struct h2_front *f = st->f;
  if (st->closed || st->resp_submitted)
    return CUT_ERR_STATE;
  size_t n = h->headers.n;
  nghttp2_nv stack[64];
  nghttp2_nv *nv = n + 1 <= 64 ? stack : malloc((n + 1) * sizeof *nv);
  if (!nv)
    return CUT_ERR_NOMEM;
  char status[4];
  int code = h->status >= 100 && h->status <= 999 ? h->status : 502;
  status[0] = (char)('0' + code / 100);
  status[1] = (char)('0' + code / 10 % 10);
  status[2] = (char)('0' + code % 10);
  status[3] = '\0';
  int sl = 3;
  size_t k = 0;
  nv[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, (size_t)sl,
                         NGHTTP2_NV_FLAG_NONE};
  for (size_t i = 0; i < n; i++) {
    const struct px_header *hf = &h->headers.v[i];
    if (px_header_is_hop(hf->name, hf->namelen) || !hf->namelen || hf->name[0] == ':')
      continue;
    if (hf->namelen == 2 && memcmp(hf->name, "te", 2) == 0)
      continue;
    nv[k++] = (nghttp2_nv){(uint8_t *)hf->name, (uint8_t *)hf->value, hf->namelen, hf->valuelen,
                           NGHTTP2_NV_FLAG_NONE};
  }
  nghttp2_data_provider dp = {.source.ptr = st, .read_callback = data_source_read_cb};
  int rv = nghttp2_submit_response(f->s, st->id, nv, k, end ? NULL : &dp);
  if (nv != stack)
    free(nv);
  if (rv != 0)
    return CUT_ERR_PROTO;
  st->resp_submitted = 1;
  if (end)
    st->resp_eof = 1;
  px_client_schedule_flush(f->c);
  return 0;
}

static int h2_body(struct px_req *r, const uint8_t *p, size_t n) {
  struct h2_stream *st = stream_of(r);
  if (st->closed)
    return 0;
  int body_empty = !st->body || evbuffer_get_length(st->body) == 0;
  if (body_empty && n <= (size_t)H2_INLINE_BODY - st->iend) {
    memcpy(st->ibuf + st->iend, p, n);
    st->iend = (uint16_t)(st->iend + n);
  } else {
    if (!st->body) {
      st->body = evbuffer_new();
      if (!st->body)
        return 0;
    }
    evbuffer_add(st->body, p, n);
  }
  if (st->deferred) {
    st->deferred = 0;
    nghttp2_session_resume_data(st->f->s, st->id);
  }
  px_client_schedule_flush(st->f->c);
  return body_len(st) >= PX_STREAM_HIGH ? PX_PAUSE : 0;
}

static void h2_end(struct px_req *r, const struct px_headers *trailers) {
  struct h2_stream *st = stream_of(r);
  if (st->closed)
    return;
  st->resp_eof = 1;
  st->resp_trailers = (struct px_headers *)trailers;
  if (st->deferred) {
    st->deferred = 0;
    nghttp2_session_resume_data(st->f->s, st->id);
  }
  px_client_schedule_flush(st->f->c);
}

static void h2_abort(struct px_req *r) {
  struct h2_stream *st = stream_of(r);
  if (st->closed)
    return;
  nghttp2_submit_rst_stream(st->f->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
  px_client_schedule_flush(st->f->c);
}

static void h2_consumed(struct px_req *r, size_t n) {
  struct h2_stream *st = stream_of(r);
  if (st->closed || !n)
    return;
  nghttp2_session_consume(st->f->s, st->id, n);
  if (!st->f->in_recv)
    px_client_schedule_flush(st->f->c);
}

static void h2_request_resume(struct px_req *r) {
  struct h2_stream *st = stream_of(r);
  if (st->closed || !st->unconsumed)
    return;
  size_t n = st->unconsumed;
  st->unconsumed = 0;
  nghttp2_session_consume(st->f->s, st->id, n);
  if (!st->f->in_recv)
    px_client_schedule_flush(st->f->c);
}

static const struct px_front_ops h2_ops = {
    .respond = h2_respond,
    .body = h2_body,
    .end = h2_end,
    .abort = h2_abort,
    .consumed = h2_consumed,
    .request_resume = h2_request_resume,
};

/* ---- nghttp2 callbacks (request side) ---- */

static int on_begin_headers_cb(nghttp2_session *s, const nghttp2_frame *frame, void *user_data) {
  struct h2_front *f = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  struct h2_stream *st = stream_alloc(f);
  if (!st)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  px_req_init(&st->req, f->c, &h2_ops);
  st->f = f;
  st->id = frame->hd.stream_id;
  st->next = f->streams;
  if (f->streams)
    f->streams->prev = st;
  f->streams = st;
  f->nstreams++;
  px_metrics_stream_open(px_worker_metrics(f->c->w), (unsigned)f->c->w->idx);
  nghttp2_session_set_stream_user_data(s, st->id, st);
  return 0;
}

/* Stores a pseudo-header (or Host) value in the stream's inline buffer, or
 * in a malloc'd string when it does not fit there. */
static int set_str(struct h2_stream *st, char **dst, unsigned bit, const uint8_t *v, size_t n) {
  if (*dst)
    return -1; /* a repeated pseudo-header */
  if (n < sizeof st->pbuf - st->pused) {
    *dst = st->pbuf + st->pused;
    st->pused = (uint16_t)(st->pused + n + 1);
    st->req.head.borrowed |= bit;
  } else if (!(*dst = malloc(n + 1))) {
    return -1;
  }
  memcpy(*dst, v, n);
  (*dst)[n] = '\0';
  return 0;
}

static int on_header_cb(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user_data) {
  struct h2_front *f = user_data;
  struct h2_stream *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
  if (!st || frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  const struct cfg_limits *lim = &f->c->w->cfg->limits;
  st->hdr_bytes += namelen + valuelen + 32;
  st->nhdr++;
  if ((lim->max_header_list_bytes && st->hdr_bytes > lim->max_header_list_bytes) ||
      (lim->max_headers && st->nhdr > lim->max_headers + 8)) {
    st->too_big = 1;
    px_limit_hit(f->c->w->srv->limits,
                 st->nhdr > lim->max_headers + 8 && lim->max_headers ? PX_LIMIT_HEADER_COUNT
                                                                    : PX_LIMIT_HEADER_LIST,
                 (unsigned)f->c->w->idx);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
  }
  struct px_request_head *h = &st->req.head;
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (namelen && name[0] == ':') {
      char **dst = NULL;
      unsigned bit = 0;
      if (namelen == 7 && memcmp(name, ":method", 7) == 0)
        dst = &h->method, bit = PX_HEAD_METHOD;
      else if (namelen == 5 && memcmp(name, ":path", 5) == 0)
        dst = &h->path, bit = PX_HEAD_PATH;
      else if (namelen == 7 && memcmp(name, ":scheme", 7) == 0)
        dst = &h->scheme, bit = PX_HEAD_SCHEME;
      else if (namelen == 10 && memcmp(name, ":authority", 10) == 0)
        dst = &h->authority, bit = PX_HEAD_AUTHORITY;
      if (!dst || set_str(st, dst, bit, value, valuelen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      return 0;
    }
    if (namelen == 4 && memcmp(name, "host", 4) == 0 && !h->authority)
      set_str(st, &h->authority, PX_HEAD_AUTHORITY, value, valuelen);
    if (namelen == 14 && memcmp(name, "content-length", 14) == 0) {
      char tmp[24];
      size_t l = valuelen < sizeof tmp - 1 ? valuelen : sizeof tmp - 1;
      memcpy(tmp, value, l);
      tmp[l] = '\0';
      h->content_length = strtoll(tmp, NULL, 10);
    }
    /* nghttp2 lets only lower-case field names through */
    if (px_headers_add_lc(&h->headers, (const char *)name, namelen, (const char *)value,
                          valuelen))
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  } else {
    /* trailers */
    if (namelen && name[0] == ':')
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (px_headers_add(&st->trailers, (const char *)name, namelen, (const char *)value, valuelen))
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  return 0;
}

static int on_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *frame, void *user_data) {
  struct h2_front *f = user_data;
  struct h2_stream *st;
  switch (frame->hd.type) {
  case NGHTTP2_HEADERS:
    st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (!st || st->closed)
      return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (f->goaway) {
        /* draining: refuse late streams so the client may retry elsewhere */
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
        return 0;
      }
      px_req_begin(&st->req, !end);
      if (end)
        px_req_end_body(&st->req, NULL);
    } else if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
      px_req_end_body(&st->req, st->trailers.n ? &st->trailers : NULL);
    }
    break;
  case NGHTTP2_DATA:
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
      st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
      if (st && !st->closed && st->req.begun)
        px_req_end_body(&st->req, NULL);
    }
    break;
  default:
    break;
  }
  return 0;
}

static int on_data_chunk_recv_cb(nghttp2_session *s, uint8_t flags, int32_t id,
                                 const uint8_t *data, size_t len, void *user_data) {
  struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
  if (!st || st->closed || !st->req.begun) {
    nghttp2_session_consume(s, id, len);
    return 0;
  }
  uint64_t maxbody = st->f->c->w->cfg->limits.max_request_body_bytes;
  if (maxbody && st->req.bytes_in + len > maxbody) {
    nghttp2_session_consume(s, id, len);
    if (!st->body_over) {
      st->body_over = 1;
      px_limit_hit(st->f->c->w->srv->limits, PX_LIMIT_REQUEST_BODY, (unsigned)st->f->c->w->idx);
    }
    if (!st->req.responded)
      px_req_respond_error(&st->req, 413, "request body too large");
    else if (!st->req.ended)
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    return 0;
  }
  if (px_req_body(&st->req, data, len) == CUT_ERR_FULL)
    st->unconsumed += len;
  return 0;
}

static int on_stream_close_cb(nghttp2_session *s, int32_t id, uint32_t error_code,
                              void *user_data) {
  struct h2_front *f = user_data;
  struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
  if (!st)
    return 0;
  st->closed = 1;
  if (st->unconsumed) {
    /* give the connection window back: those bytes will never be consumed per stream */
    nghttp2_session_consume_connection(s, st->unconsumed);
    st->unconsumed = 0;
  }
  if (!st->req.status && st->too_big)
    st->req.status = 431;
  px_req_finish(&st->req);
  nghttp2_session_set_stream_user_data(s, id, NULL);
  if (st->prev)
    st->prev->next = st->next;
  else
    f->streams = st->next;
  if (st->next)
    st->next->prev = st->prev;
  f->nstreams--;
  px_metrics_stream_close(px_worker_metrics(f->c->w), (unsigned)f->c->w->idx);
  stream_release(f, st);
  return 0;
}

/* A GOAWAY with an error code (nghttp2's own, on a protocol error) means the
 * connection ends while the peer may still be sending: close it lingering. */
static int on_frame_send_cb(nghttp2_session *s, const nghttp2_frame *frame, void *user_data) {
  struct h2_front *f = user_data;
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)
    f->goaway_error = 1;
  return 0;
}

/* nghttp2 refuses a stream beyond SETTINGS_MAX_CONCURRENT_STREAMS itself; count it. */
static int on_invalid_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *frame,
                                    int lib_error_code, void *user_data) {
  struct h2_front *f = user_data;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
      (lib_error_code == NGHTTP2_ERR_REFUSED_STREAM || f->nstreams >= f->max_streams))
    px_limit_hit(f->c->w->srv->limits, PX_LIMIT_STREAMS, (unsigned)f->c->w->idx);
  return 0;
}

/* ---- session plumbing ---- */

/* nghttp2 allocates a few blocks for every stream (its stream state, header
 * strings, queued frames): they come from the worker's block cache. */
static void *mem_malloc_cb(size_t size, void *mem_user_data) { return px_mem_malloc(size); }
static void mem_free_cb(void *ptr, void *mem_user_data) { px_mem_free(ptr); }
static void *mem_calloc_cb(size_t nmemb, size_t size, void *mem_user_data) {
  return px_mem_calloc(nmemb, size);
}
static void *mem_realloc_cb(void *ptr, size_t size, void *mem_user_data) {
  return px_mem_realloc(ptr, size);
}
static nghttp2_mem h2_mem = {NULL, mem_malloc_cb, mem_free_cb, mem_calloc_cb, mem_realloc_cb};

int px_front_h2_attach(struct px_client *c) {
  struct h2_front *f = calloc(1, sizeof *f);
  if (!f)
    return CUT_ERR_NOMEM;
  f->c = c;
  struct px_flood_limits fl;
  px_flood_limits_from_cfg(&fl, &c->w->cfg->limits.h2_floods);
  px_flood_init(&f->flood, &fl, 1);
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    free(f);
    return CUT_ERR_NOMEM;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers_cb);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv_cb);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv_cb);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close_cb);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame_recv_cb);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send_cb);
  nghttp2_option *opt;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    free(f);
    return CUT_ERR_NOMEM;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  const struct cfg_limits *lim = &c->w->cfg->limits;
  uint32_t maxstreams = lim->max_concurrent_streams ? lim->max_concurrent_streams : 100;
  f->max_streams = maxstreams;
  uint32_t maxhdr = lim->max_header_list_bytes ? lim->max_header_list_bytes : 65536;
  /* streams the client opens beyond the limit are refused by nghttp2 itself */
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  /* We schedule nothing by RFC 7540 priority: without the priority tree
   * nghttp2 keeps no closed streams and schedules streams in plain order. */
  nghttp2_option_set_no_closed_streams(opt, 1);
  nghttp2_option_set_server_fallback_rfc7540_priorities(opt, 0);
  int rv = nghttp2_session_server_new3(&f->s, cbs, f, opt, &h2_mem);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    free(f);
    return CUT_ERR_NOMEM;
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, maxstreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, maxhdr},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  nghttp2_submit_settings(f->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
  nghttp2_session_set_local_window_size(f->s, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
  c->front = f;
  return 0;
}

/* Frames are gathered here and handed on once per batch. For a plaintext
 * client whose output buffer is empty they go out with one send(): no
 * evbuffer chain, and no write event for the bufferevent to add and remove.
 * Otherwise (TLS, or bytes already waiting) the batch is added to the output
 * buffer in one piece, so a TLS client gets it in one SSL_write and one
 * record instead of one per small nghttp2 chunk. What the kernel does not
 * take goes through the output buffer as usual. */
#define H2_STAGE (16 * 1024)

struct stage {
  evutil_socket_t fd; /* -1: no direct sending (TLS, no socket, bytes waiting) */
  size_t n;
  uint8_t buf[H2_STAGE];
};

static void stage_spill(struct stage *sg, struct evbuffer *out) {
  if (sg->n)
    evbuffer_add(out, sg->buf, sg->n);
  sg->n = 0;
  sg->fd = -1; /* the output holds bytes now: everything after them follows */
}

static void stage_put(struct stage *sg, struct evbuffer *out, const uint8_t *data, size_t n) {
  if (n > sizeof sg->buf - sg->n) {
    stage_spill(sg, out);
    if (n > sizeof sg->buf) {
      evbuffer_add(out, data, n);
      return;
    }
  }
  memcpy(sg->buf + sg->n, data, n);
  sg->n += n;
}

static void stage_send(struct stage *sg, struct evbuffer *out) {
  if (!sg->n)
    return;
  if (sg->fd < 0) {
    stage_spill(sg, out);
    return;
  }
  ssize_t w = send(sg->fd, sg->buf, sg->n, MSG_NOSIGNAL);
  /* On an error the bufferevent meets it again on its next write and reports it. */
  size_t done = w > 0 ? (size_t)w : 0;
  if (done < sg->n)
    evbuffer_add(out, sg->buf + done, sg->n - done);
  sg->n = 0;
}

/* Sends what nghttp2 has, up to the output watermark. Never called from an nghttp2 callback. */
static void h2_send(struct px_client *c) {
  struct h2_front *f = c->front;
  struct evbuffer *out = bufferevent_get_output(c->bev);
  struct stage sg;
  sg.n = 0;
  sg.fd = !c->tls && evbuffer_get_length(out) == 0 ? bufferevent_getfd(c->bev) : -1;
  for (;;) {
    while (evbuffer_get_length(out) + sg.n < PX_OUT_HIGH) {
      const uint8_t *data;
      ssize_t n = nghttp2_session_mem_send(f->s, &data);
      if (n < 0) {
        px_client_kill(c);
        return;
      }
      if (n == 0)
        break;
      stage_put(&sg, out, data, (size_t)n);
    }
    if (!f->want_resume)
      break;
    /* resume upstreams whose streams drained; they may add more body at once */
    f->want_resume = 0;
    for (struct h2_stream *st = f->streams; st; st = st->next) {
      if (!st->want_resume)
        continue;
      st->want_resume = 0;
      px_req_resume_response(&st->req);
      if (c->dead)
        return;
    }
    if (evbuffer_get_length(out) + sg.n >= PX_OUT_HIGH)
      break;
  }
  stage_send(&sg, out);
  if (!nghttp2_session_want_read(f->s) && !nghttp2_session_want_write(f->s)) {
    if (f->goaway_error)
      px_client_linger_close(c); /* the peer may still be sending: keep the GOAWAY */
    px_client_close_after_write(c);
  }
}

/* A flood detector fired: GOAWAY with the reason, count it, close once written. */
static void flood_close(struct px_client *c, enum px_flood_reason fr) {
  struct h2_front *f = c->front;
  const char *why = px_flood_reason_text(fr);
  log_warn("proxy", "h2 client %s: %s; closing with GOAWAY", c->peer, why);
  px_limit_hit(c->w->srv->limits, px_flood_limit(fr), (unsigned)c->w->idx);
  f->goaway = 1;
  f->goaway_error = 1;
  nghttp2_submit_goaway(f->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(f->s),
                        px_flood_goaway_code(fr), (const uint8_t *)why, strlen(why));
  /* stop processing input but keep reading it, so the GOAWAY is not lost to a reset */
  px_client_linger_close(c);
  h2_send(c);
  if (c->dead)
    return;
  px_front_h2_cancel(c); /* nothing more for this client: release the upstream exchanges */
  px_client_close_after_write(c);
}

void px_front_h2_on_read(struct px_client *c) {
  struct h2_front *f = c->front;
  struct evbuffer *in = bufferevent_get_input(c->bev);
  f->in_recv = 1;
  while (evbuffer_get_length(in)) {
    struct evbuffer_iovec v;
    if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
      break;
    /* The detector sees the bytes before nghttp2 does, so a flood is caught
     * before nghttp2 buffers it (or gives up on the connection by itself);
     * fed_ahead keeps bytes nghttp2 left in the buffer from counting twice. */
    if (v.iov_len > f->fed_ahead) {
      enum px_flood_reason fr = px_flood_feed(&f->flood, (const uint8_t *)v.iov_base + f->fed_ahead,
                                              v.iov_len - f->fed_ahead, px_now_ns() / 1000000);
      f->fed_ahead = v.iov_len;
      if (fr != PX_FLOOD_NONE) {
        f->in_recv = 0;
        flood_close(c, fr);
        return;
      }
    }
    ssize_t n = nghttp2_session_mem_recv(f->s, v.iov_base, v.iov_len);
    if (n < 0) {
      log_debug("proxy", "h2 client %s: %s", c->peer, nghttp2_strerror((int)n));
      f->in_recv = 0;
      if (n == NGHTTP2_ERR_FLOODED || n == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
        /* the session is intact: say why in a GOAWAY, then close lingering */
        nghttp2_session_terminate_session(f->s, n == NGHTTP2_ERR_FLOODED
                                                    ? NGHTTP2_ENHANCE_YOUR_CALM
                                                    : NGHTTP2_PROTOCOL_ERROR);
        f->goaway_error = 1;
        px_client_linger_close(c);
        h2_send(c);
        if (!c->dead)
          px_client_close_after_write(c);
        return;
      }
      px_client_kill(c);
      return;
    }
    f->fed_ahead -= (size_t)n < f->fed_ahead ? (size_t)n : f->fed_ahead;
    evbuffer_drain(in, (size_t)n);
    if (c->dead)
      break;
  }
  f->in_recv = 0;
  if (c->dead)
    return;
  h2_send(c);
}

void px_front_h2_on_write(struct px_client *c) { h2_send(c); }
void px_front_h2_flush(struct px_client *c) { h2_send(c); }

void px_front_h2_drain(struct px_client *c) {
  struct h2_front *f = c->front;
  if (f->goaway)
    return;
  f->goaway = 1;
  nghttp2_submit_goaway(f->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(f->s),
                        NGHTTP2_NO_ERROR, NULL, 0);
  if (!f->nstreams) {
    h2_send(c);
    if (!c->dead)
      px_client_close_after_write(c);
    return;
  }
  px_client_schedule_flush(c);
}

/* Whether response bytes wait for the client to open its flow-control window. */
static int window_stalled(struct h2_front *f) {
  int conn_closed = nghttp2_session_get_remote_window_size(f->s) <= 0;
  for (struct h2_stream *st = f->streams; st; st = st->next)
    if (!st->closed && body_len(st) > 0 &&
        (conn_closed || nghttp2_session_get_stream_remote_window_size(f->s, st->id) <= 0))
      return 1;
  return 0;
}

void px_front_h2_tick(struct px_client *c, uint64_t now_ms) {
  struct h2_front *f = c->front;
  if (!f || c->dead || f->in_recv)
    return;
  enum px_flood_reason fr = px_flood_on_window(&f->flood, window_stalled(f), now_ms);
  if (fr != PX_FLOOD_NONE && !f->goaway)
    flood_close(c, fr);
}

/* Busy = some request was forwarded and its stream is open; streams still
 * receiving their header block do not count, so they meet the timeouts. */
int px_front_h2_busy(const struct px_client *c) {
  const struct h2_front *f = c->front;
  if (!f)
    return 0;
  for (const struct h2_stream *st = f->streams; st; st = st->next)
    if (st->req.begun)
      return 1;
  return 0;
}

void px_front_h2_cancel(struct px_client *c) {
  struct h2_front *f = c->front;
  if (!f)
    return;
  for (struct h2_stream *st = f->streams; st; st = st->next) {
    st->closed = 1;
    px_req_finish(&st->req);
  }
}

void px_front_h2_free(struct px_client *c) {
  struct h2_front *f = c->front;
  if (!f)
    return;
  /* nghttp2_session_del does not report stream closes: finish our streams first */
  struct h2_stream *st = f->streams;
  while (st) {
    struct h2_stream *next = st->next;
    st->closed = 1;
    px_req_finish(&st->req);
    px_metrics_stream_close(px_worker_metrics(c->w), (unsigned)c->w->idx);
    if (st->body)
      evbuffer_free(st->body);
    px_headers_clear(&st->trailers);
    free(st);
    st = next;
  }
  f->streams = NULL;
  while ((st = f->spare)) {
    f->spare = st->next;
    if (st->body)
      evbuffer_free(st->body);
    free(st);
  }
  nghttp2_session_del(f->s);
  free(f);
  c->front = NULL;
}

/* ---- h2c upgrade (RFC 7540 section 3.2) ---- */

int px_front_h2_attach_upgrade(struct px_client *c, const uint8_t *settings, size_t len,
                               struct px_request_head *head, uint64_t t_start_ns) {
  int rc = px_front_h2_attach(c);
  if (rc < 0) {
    px_request_head_clear(head);
    return rc;
  }
  struct h2_front *f = c->front;
  struct h2_stream *st = stream_alloc(f);
  if (!st) {
    px_request_head_clear(head);
    return CUT_ERR_NOMEM; /* the caller kills the connection: px_front_h2_free runs */
  }
  px_req_init(&st->req, c, &h2_ops);
  st->req.head = *head;
  memset(head, 0, sizeof *head);
  st->req.t_start_ns = t_start_ns;
  st->f = f;
  st->id = 1;
  st->next = f->streams;
  if (f->streams)
    f->streams->prev = st;
  f->streams = st;
  f->nstreams++;
  px_metrics_stream_open(px_worker_metrics(c->w), (unsigned)c->w->idx);
  /* stream 1 is created half-closed (remote): the request has no body */
  int head_request = st->req.head.method && strcmp(st->req.head.method, "HEAD") == 0;
  if (nghttp2_session_upgrade2(f->s, settings, len, head_request, st) != 0)
    return CUT_ERR_PROTO; /* the settings were checked: not expected */
  /* a server session may not attach stream_user_data itself (older nghttp2) */
  nghttp2_session_set_stream_user_data(f->s, 1, st);
  px_req_begin(&st->req, 0);
  if (!st->closed)
    px_req_end_body(&st->req, NULL);
  return 0;
}
