/* px_demo_h2: the demo backend's HTTP/2 connection over an nghttp2 server session. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include "common/cut_err.h"
#include "proxy/px_demo_int.h"

/*
 * The session never touches the socket: input is fed with mem_recv, output
 * taken with mem_send while the bufferevent's output is under DEMO_OUT_HIGH.
 * Request bodies are consumed as they arrive (nghttp2's automatic
 * WINDOW_UPDATE), so a client may send any amount with bounded memory.
 */
struct demo_h2;

struct demo_stream {
  struct demo_stream *prev, *next;
  struct demo_h2 *c;
  int32_t id;
  struct demo_req req;
  struct demo_resp resp;
  struct event *timer; /* delay, then drip pauses */
  int submitted;       /* the response head was submitted */
};

struct demo_h2 {
  struct demo_link link; /* first: the worker's list holds &link */
  struct demo_worker *w;
  struct bufferevent *bev;
  nghttp2_session *session;
  struct demo_stream streams; /* list sentinel */
};

static void stream_free(struct demo_stream *s) {
  s->prev->next = s->next;
  s->next->prev = s->prev;
  if (s->timer) event_free(s->timer);
  demo_req_clear(&s->req);
  demo_resp_free(&s->resp);
  free(s);
}

static void h2_free(struct demo_h2 *c) {
  demo_link_del(&c->link);
  /* nghttp2_session_del calls no stream-close callbacks: free what is left */
  nghttp2_session_del(c->session);
  c->session = NULL;
  while (c->streams.next != &c->streams) stream_free(c->streams.next);
  if (c->bev) bufferevent_free(c->bev);
  free(c);
}

static void h2_link_free(struct demo_link *l) { h2_free((struct demo_h2 *)l); }

/* Moves frames from the session to the socket while there is room; closes
 * when neither side wants more. Returns -1 if c was freed. */
static int h2_flush(struct demo_h2 *c) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  while (evbuffer_get_length(out) < DEMO_OUT_HIGH) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->session, &data);
    if (n < 0) {
      h2_free(c);
      return -1;
    }
    if (n == 0) break;
    evbuffer_add(out, data, (size_t)n);
  }
  if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session) &&
      evbuffer_get_length(out) == 0) {
    h2_free(c);
    return -1;
  }
  return 0;
}

static ssize_t body_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                            void *user_data) {
  struct demo_stream *s = source->ptr;
  struct demo_resp *r = &s->resp;
  switch (demo_resp_state(r)) {
    case DEMO_BODY_CUT:
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM(INTERNAL_ERROR) */
    case DEMO_BODY_WAIT: {
      struct timeval tv = demo_ms_tv(r->drip_ms);
      evtimer_add(s->timer, &tv);
      return NGHTTP2_ERR_DEFERRED;
    }
    case DEMO_BODY_MORE:
    case DEMO_BODY_DONE:
      break;
  }
  size_t n = demo_resp_read(r, buf, length);
  if (demo_resp_state(r) == DEMO_BODY_DONE) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (r->trailers) {
      nghttp2_nv t = {(uint8_t *)"x-demo-trailer", (uint8_t *)"done", 14, 4,
                      NGHTTP2_NV_FLAG_NONE};
      if (nghttp2_submit_trailer(session, stream_id, &t, 1) == 0)
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }
  return (ssize_t)n;
}

#define NV(n, v, vl) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE}

static int submit(struct demo_stream *s) {
  const struct px_demo_opts *o = s->c->w->opts;
  struct demo_resp *r = &s->resp;
  s->submitted = 1;
  if (r->close_start)
    return nghttp2_submit_rst_stream(s->c->session, NGHTTP2_FLAG_NONE, s->id,
                                     NGHTTP2_INTERNAL_ERROR);
  char status[8], clen[24];
  snprintf(status, sizeof status, "%d", r->status);
  snprintf(clen, sizeof clen, "%" PRIu64, r->total);
  nghttp2_nv nva[5] = {
      NV(":status", status, strlen(status)),
      NV("content-type", r->content_type, strlen(r->content_type)),
      NV("x-backend", o->name, strlen(o->name)),
  };
  size_t n = 3;
  if (!r->chunked) nva[n++] = (nghttp2_nv)NV("content-length", clen, strlen(clen));
  if (o->lineage) nva[n++] = (nghttp2_nv)NV("x-lineage", o->lineage, strlen(o->lineage));
  if (r->head_only || (r->total == 0 && !r->trailers))
    return nghttp2_submit_response(s->c->session, s->id, nva, n, NULL);
  nghttp2_data_provider prd = {.source = {.ptr = s}, .read_callback = body_read_cb};
  return nghttp2_submit_response(s->c->session, s->id, nva, n, &prd);
}

static void on_timer_cb(evutil_socket_t fd, short what, void *user_data) {
  struct demo_stream *s = user_data;
  struct demo_h2 *c = s->c;
  if (!s->submitted) {
    if (submit(s) != 0)
      nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
  } else {
    demo_resp_next_piece(&s->resp);
    nghttp2_session_resume_data(c->session, s->id);
  }
  h2_flush(c);
}

/* The request is complete: answer now or after its delay. */
static int respond(struct demo_stream *s) {
  if (demo_resp_build(&s->resp, s->c->w->opts, &s->req)) return -1;
  if (s->resp.delay_ms) {
    struct timeval tv = demo_ms_tv(s->resp.delay_ms);
    evtimer_add(s->timer, &tv);
    return 0;
  }
  return submit(s) ? -1 : 0;
}

static int on_begin_headers_cb(nghttp2_session *session, const nghttp2_frame *frame,
                               void *user_data) {
  struct demo_h2 *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  struct demo_stream *s = calloc(1, sizeof *s);
  if (!s) return NGHTTP2_ERR_CALLBACK_FAILURE;
  s->timer = evtimer_new(c->w->base, on_timer_cb, s);
  if (!s->timer) {
    free(s);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  s->c = c;
  s->id = frame->hd.stream_id;
  demo_req_reset(&s->req);
  s->next = c->streams.next;
  s->prev = &c->streams;
  s->next->prev = s;
  c->streams.next = s;
  nghttp2_session_set_stream_user_data(session, s->id, s);
  return 0;
}

static int on_header_cb(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user_data) {
  struct demo_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!s || frame->hd.type != NGHTTP2_HEADERS) return 0; /* trailers: ignored */
  struct demo_req *r = &s->req;
  const char *n = (const char *)name, *v = (const char *)value;
  if (namelen && n[0] == ':') {
    int rv = 0;
    if (namelen == 7 && !memcmp(n, ":method", 7))
      snprintf(r->method, sizeof r->method, "%.*s", (int)valuelen, v);
    else if (namelen == 5 && !memcmp(n, ":path", 5))
      rv = valuelen > DEMO_MAX_TARGET ? -1 : demo_buf_add(&r->target, v, valuelen);
    else if (namelen == 10 && !memcmp(n, ":authority", 10))
      rv = valuelen > DEMO_MAX_TARGET ? -1 : demo_buf_add(&r->authority, v, valuelen);
    return rv ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
  }
  if (demo_req_header(r, n, namelen, v, valuelen)) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (namelen == 4 && !memcmp(n, "host", 4) && !r->authority.len &&
      demo_buf_add(&r->authority, v, valuelen))
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

static int on_frame_recv_cb(nghttp2_session *session, const nghttp2_frame *frame,
                            void *user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  struct demo_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!s) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
    demo_req_head_done(&s->req);
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !s->submitted && respond(s))
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
  return 0;
}

static int on_data_chunk_recv_cb(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                                 const uint8_t *data, size_t len, void *user_data) {
  struct demo_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
  if (s) demo_req_body(&s->req, data, len);
  return 0;
}

static int on_stream_close_cb(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                              void *user_data) {
  struct demo_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
  if (s) {
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    stream_free(s);
  }
  return 0;
}

/* Feeds buffered input to the session, then flushes. */
static void process(struct demo_h2 *c) {
  struct evbuffer *in = bufferevent_get_input(c->bev);
  while (evbuffer_get_length(in) > 0) {
    struct evbuffer_iovec v[8];
    int n = evbuffer_peek(in, -1, NULL, v, 8);
    if (n > 8) n = 8;
    size_t used = 0;
    for (int i = 0; i < n; i++) {
      ssize_t k = nghttp2_session_mem_recv(c->session, v[i].iov_base, v[i].iov_len);
      if (k < 0) {
        /* bad preface or a connection error: say GOAWAY if possible, then close */
        evbuffer_drain(in, evbuffer_get_length(in));
        bufferevent_disable(c->bev, EV_READ);
        h2_flush(c);
        return;
      }
      used += (size_t)k;
    }
    evbuffer_drain(in, used);
  }
  h2_flush(c);
}

static void client_read_cb(struct bufferevent *bev, void *user_data) {
  process((struct demo_h2 *)user_data);
}

static void client_write_cb(struct bufferevent *bev, void *user_data) {
  h2_flush((struct demo_h2 *)user_data);
}

static void client_event_cb(struct bufferevent *bev, short what, void *user_data) {
  struct demo_h2 *c = user_data;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    h2_free(c);
    return;
  }
}

int demo_h2_new(struct demo_worker *w, struct bufferevent *bev) {
  nghttp2_session_callbacks *cbs = NULL;
  struct demo_h2 *c = calloc(1, sizeof *c);
  if (!c) goto fail;
  c->w = w;
  c->streams.next = c->streams.prev = &c->streams;
  if (nghttp2_session_callbacks_new(&cbs)) goto fail_conn;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers_cb);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv_cb);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv_cb);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close_cb);
  int rv = nghttp2_session_server_new(&c->session, cbs, c);
  nghttp2_session_callbacks_del(cbs);
  if (rv) goto fail_conn;
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000},
                                 {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
  if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 2)) goto fail_session;
  nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, 1 << 24);
  c->bev = bev;
  c->link.free_fn = h2_link_free;
  demo_link_add(w, &c->link);
  bufferevent_setcb(bev, client_read_cb, client_write_cb, client_event_cb, c);
  bufferevent_setwatermark(bev, EV_WRITE, DEMO_OUT_LOW, 0);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  process(c);
  return 0;
fail_session:
  nghttp2_session_del(c->session);
fail_conn:
  free(c);
fail:
  bufferevent_free(bev);
  return CUT_ERR_NOMEM;
}
