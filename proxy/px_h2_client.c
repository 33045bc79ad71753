/* px_h2_client: HTTP/2 upstream connections (h2c or h2 over TLS): one nghttp2 client session, many streams. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"
#include "proxy/px_upstream_int.h"

#define H2_MAX_HEADER_BYTES (64u * 1024u)
#define H2_CONN_WINDOW (4u * 1024u * 1024u)
#define H2_NV_STACK 48

/* Closes the stream's tie to x without touching the session (the stream is gone). */
static void h2_release(struct px_exchange *x) {
  struct px_conn *c = x->conn;
  TAILQ_REMOVE(&c->active, x, clink);
  if (x->in_kickq) {
    TAILQ_REMOVE(&c->kickq, x, klink);
    x->in_kickq = 0;
  }
  x->conn = NULL;
  x->state = XS_NEW;
}

static void h2_consume(struct px_conn *c, int32_t sid, size_t n, int stream_gone) {
  if (!n || !c->h2)
    return;
  if (stream_gone || nghttp2_session_consume(c->h2, sid, n) != 0)
    nghttp2_session_consume_connection(c->h2, n);
}

static void h2_maybe_idle(struct px_conn *c) {
  if (c->nstreams == 0 && c->state == CONN_READY) {
    if (c->goaway) {
      px_conn_close(c);
      return;
    }
    uint64_t idle = c->pool->be->idle_timeout_ms ? c->pool->be->idle_timeout_ms : 60000;
    struct timeval tv = {(time_t)(idle / 1000u), (suseconds_t)((idle % 1000u) * 1000u)};
    evtimer_add(c->timer, &tv);
  }
}

/* ---------------------------------------------------------------- callbacks */

static int on_header_cb(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user_data) {
  struct px_conn *c = user_data;
  (void)c;
  if (frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  struct px_exchange *x = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
  if (!x)
    return 0;
  if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
    int st = 0;
    for (size_t i = 0; i < valuelen && i < 3; i++)
      st = st * 10 + (value[i] - '0');
    x->resp.status = st;
    return 0;
  }
  if (namelen && name[0] == ':')
    return 0;
  struct px_headers *dst = x->got_response ? &x->resp_trailers : &x->resp.headers;
  if (dst->bytes + namelen + valuelen > H2_MAX_HEADER_BYTES)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (px_headers_add(dst, (const char *)name, namelen, (const char *)value, valuelen) < 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

/* END_STREAM from the backend: if our request is still going, stop it. */
static void remote_end(struct px_conn *c, struct px_exchange *x) {
  x->h2_remote_end = 1;
  if (!x->body_flushed)
    nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, x->stream_id, NGHTTP2_NO_ERROR);
}

static int on_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *frame, void *user_data) {
  struct px_conn *c = user_data;
  struct px_exchange *x;
  switch (frame->hd.type) {
  case NGHTTP2_HEADERS:
    x = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (!x)
      return 0;
    if (!x->got_response) {
      if (x->resp.status < 200) { /* interim response */
        px_headers_clear(&x->resp.headers);
        x->resp.status = 0;
        return 0;
      }
      const struct px_header *cl = px_headers_get(&x->resp.headers, "content-length");
      x->resp.content_length = cl ? strtoll(cl->value, NULL, 10) : -1;
      if (px_x_response(x) < 0)
        return 0; /* cancelled: the stream is being reset */
    } else if (px_x_trailers(x, &x->resp_trailers) < 0) {
      return 0;
    }
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
      remote_end(c, x);
    return 0;
  case NGHTTP2_DATA:
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
      x = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
      if (x)
        remote_end(c, x);
    }
    return 0;
  case NGHTTP2_SETTINGS:
    c->peer_max_streams =
        nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    px_host_slot_free(c->host);
    return 0;
  case NGHTTP2_GOAWAY:
    /* No new streams here; in-flight ones finish, refused ones are retried
     * from on_stream_close (error REFUSED_STREAM). */
    c->goaway = 1;
    c->goaway_last_id = frame->goaway.last_stream_id;
    return 0;
  default:
    return 0;
  }
}

static int on_data_chunk_recv_cb(nghttp2_session *s, uint8_t flags, int32_t sid,
                                 const uint8_t *data, size_t len, void *user_data) {
  struct px_conn *c = user_data;
  struct px_exchange *x = nghttp2_session_get_stream_user_data(s, sid);
  if (!x) {
    h2_consume(c, sid, len, 0);
    return 0;
  }
  if (x->paused || (x->h2_pending && evbuffer_get_length(x->h2_pending))) {
    /* Bounded by the stream window: these bytes are not consumed until delivered. */
    if (!x->h2_pending && !(x->h2_pending = evbuffer_new()))
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (evbuffer_add(x->h2_pending, data, len) < 0)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    x->h2_unconsumed += len;
    return 0;
  }
  x->h2_unconsumed += len;
  int rv = px_x_body(x, data, len);
  if (rv < 0)
    return 0; /* cancelled; detach gave the window back */
  x->h2_unconsumed -= len;
  h2_consume(c, sid, len, 0);
  return 0;
}

static int on_stream_close_cb(nghttp2_session *s, int32_t sid, uint32_t error_code,
                              void *user_data) {
  struct px_conn *c = user_data;
  struct px_exchange *x = nghttp2_session_get_stream_user_data(s, sid);
  if (c->nstreams)
    c->nstreams--;
  c->served++;
  if (x) {
    char cause[400];
    if (x->h2_remote_end) { /* the whole response arrived */
      if (x->h2_pending && evbuffer_get_length(x->h2_pending)) {
        /* Finish once the paused caller took the rest. The connection window
         * stays closed by the held bytes until then. */
        x->h2_closed = 1;
        nghttp2_session_set_stream_user_data(s, sid, NULL);
      } else {
        h2_release(x);
        px_x_finish(x, 0, PX_FAIL_NONE, NULL);
      }
    } else if (error_code == NGHTTP2_REFUSED_STREAM && !x->got_response) {
      snprintf(cause, sizeof cause, "%s refused the stream", c->host->name);
      h2_release(x);
      x->bytes_sent = 0; /* the server says it never processed it */
      px_x_conn_failed(x, PX_FAIL_RESET, cause);
    } else {
      snprintf(cause, sizeof cause, "%s reset the stream (%s)", c->host->name,
               nghttp2_http2_strerror(error_code));
      h2_release(x);
      h2_consume(c, sid, x->h2_unconsumed, 1);
      x->h2_unconsumed = 0;
      px_x_finish(x, CUT_ERR_CLOSED,
                  error_code == NGHTTP2_PROTOCOL_ERROR ? PX_FAIL_PROTOCOL : PX_FAIL_RESET, cause);
    }
  }
  h2_maybe_idle(c);
  if (!c->goaway)
    px_host_slot_free(c->host);
  return 0;
}

static ssize_t data_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                            uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
  struct px_conn *c = user_data;
  struct px_exchange *x = nghttp2_session_get_stream_user_data(s, sid);
  if (!x)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  int n = evbuffer_remove(x->reqbuf, buf, length);
  if (n < 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (n > 0)
    x->body_consumed = 1;
  size_t left = evbuffer_get_length(x->reqbuf);
  if (left == 0 && x->body_ended) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    x->body_flushed = 1;
    if (x->req_trailers.n) {
      nghttp2_nv nv[H2_NV_STACK];
      size_t k = 0;
      for (size_t i = 0; i < x->req_trailers.n && k < H2_NV_STACK; i++) {
        const struct px_header *f = &x->req_trailers.v[i];
        nv[k++] = (nghttp2_nv){(uint8_t *)f->name, (uint8_t *)f->value, f->namelen, f->valuelen,
                               NGHTTP2_NV_FLAG_NONE};
      }
      if (nghttp2_submit_trailer(s, sid, nv, k) == 0)
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  } else if (n == 0) {
    return NGHTTP2_ERR_DEFERRED;
  }
  if (x->want_drain && left <= c->pool->watermark / 2)
    px_conn_kick(c, x, 0, 1);
  return n;
}

/* ---------------------------------------------------------------- session */

int px_h2_init(struct px_conn *c) {
  nghttp2_session_callbacks *cbs = NULL;
  nghttp2_option *opt = NULL;
  int rv = CUT_ERR_NOMEM;
  if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
    goto out;
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv_cb);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv_cb);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close_cb);
  /* Windows open only as the caller takes the data: a paused client closes them. */
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
  nghttp2_option_set_no_closed_streams(opt, 1);
  if (nghttp2_session_client_new2(&c->h2, cbs, c, opt) != 0)
    goto out;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, PX_H2_WINDOW},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
      nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0)
    goto out;
  rv = 0;
out:
  nghttp2_session_callbacks_del(cbs);
  nghttp2_option_del(opt);
  return rv;
}

void px_h2_free(struct px_conn *c) {
  nghttp2_session_del(c->h2);
  c->h2 = NULL;
}

int px_h2_can_take(const struct px_conn *c) {
  uint32_t maxs = c->pool->be->max_streams ? c->pool->be->max_streams : 100;
  if (c->peer_max_streams < maxs)
    maxs = c->peer_max_streams;
  return c->state == CONN_READY && !c->goaway && !c->closing && c->h2 && c->nstreams < maxs;
}

static int skip_h2_header(const struct px_header *f) {
  if (px_header_is_hop(f->name, f->namelen) || strcmp(f->name, "host") == 0)
    return 1;
  if (strcmp(f->name, "te") == 0)
    return strcmp(f->value, "trailers") != 0;
  return 0;
}

#define NV(n, nl, v, vl)                                                                           \
  ((nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), (nl), (vl), NGHTTP2_NV_FLAG_NONE})

int px_h2_dispatch(struct px_conn *c, struct px_exchange *x) {
  const struct px_request_head *h = &x->head;
  const struct cfg_backend *be = c->pool->be;
  const char *auth = be->host_header ? be->host_header
                     : h->authority  ? h->authority
                                     : c->host->name;
  const char *scheme = c->pool->opts.tls ? "https" : "http";
  size_t cap = h->headers.n + 5;
  nghttp2_nv stack[H2_NV_STACK], *nv = cap <= H2_NV_STACK ? stack : malloc(cap * sizeof *nv);
  if (!nv)
    return CUT_ERR_NOMEM;
  size_t n = 0;
  nv[n++] = NV(":method", 7, h->method, strlen(h->method));
  nv[n++] = NV(":scheme", 7, scheme, strlen(scheme));
  nv[n++] = NV(":authority", 10, auth, strlen(auth));
  nv[n++] = NV(":path", 5, h->path, strlen(h->path));
  int have_cl = 0;
  for (size_t i = 0; i < h->headers.n; i++) {
    const struct px_header *f = &h->headers.v[i];
    if (skip_h2_header(f))
      continue;
    if (strcmp(f->name, "content-length") == 0)
      have_cl = 1;
    nv[n++] = NV(f->name, f->namelen, f->value, f->valuelen);
  }
  char clbuf[24];
  if (x->has_body && h->content_length >= 0 && !have_cl) {
    int l = snprintf(clbuf, sizeof clbuf, "%lld", (long long)h->content_length);
    nv[n++] = NV("content-length", 14, clbuf, (size_t)l);
  }
  nghttp2_data_provider prd = {.source = {.ptr = NULL}, .read_callback = data_read_cb};
  int32_t sid = nghttp2_submit_request(c->h2, NULL, nv, n, x->has_body ? &prd : NULL, x);
  if (nv != stack)
    free(nv);
  if (sid < 0) {
    if (sid == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE)
      c->goaway = 1; /* it can open no stream any more: new requests go elsewhere */
    return CUT_ERR_PROTO;
  }
  evtimer_del(c->timer);
  x->stream_id = sid;
  x->conn = c;
  x->state = XS_ACTIVE;
  x->bytes_sent = 1;
  if (!x->has_body)
    x->body_flushed = 1;
  TAILQ_INSERT_TAIL(&c->active, x, clink);
  c->nstreams++;
  /* Written by the kick at the end of this pass (with the other streams
   * started in it): never here, where a failing session would finish x
   * inside px_exchange_start. */
  px_conn_kick(c, NULL, 0, 0);
  return 0;
}

void px_h2_send_body(struct px_exchange *x) {
  struct px_conn *c = x->conn;
  if (!c || !c->h2 || x->h2_closed)
    return;
  nghttp2_session_resume_data(c->h2, x->stream_id);
  /* Written by the kick, never here: a failing session would finish x (and
   * free it) inside the caller's px_exchange_send_body or end_body. */
  px_conn_kick(c, NULL, 0, 0);
}

/* Delivers DATA held while the caller was paused, then gives the window back. */
int px_h2_resume(struct px_exchange *x) {
  struct px_conn *c = x->conn;
  while (x->h2_pending && !x->paused) {
    size_t n = evbuffer_get_contiguous_space(x->h2_pending);
    if (n == 0)
      break;
    const uint8_t *d = evbuffer_pullup(x->h2_pending, (ev_ssize_t)n);
    int rv = px_x_body(x, d, n);
    if (rv < 0)
      return -1;
    evbuffer_drain(x->h2_pending, n);
    x->h2_unconsumed -= n;
    if (c)
      h2_consume(c, x->stream_id, n, x->h2_closed);
  }
  if (x->h2_closed && !x->paused && (!x->h2_pending || !evbuffer_get_length(x->h2_pending))) {
    if (x->conn)
      h2_release(x);
    px_x_finish(x, 0, PX_FAIL_NONE, NULL);
    return -1;
  }
  return 0;
}

/* The frames this queues (WINDOW_UPDATE, RST_STREAM) are written by the kick,
 * never here: x is half taken off c (inside x_unlink), and a failing session
 * would end the other exchanges of c, whose on_done may cancel x, inside the
 * caller (px_exchange_cancel, a timeout). */
void px_h2_detach(struct px_exchange *x) {
  struct px_conn *c = x->conn;
  TAILQ_REMOVE(&c->active, x, clink);
  x->conn = NULL;
  if (!c->h2 || c->state == CONN_DEAD || x->stream_id < 0)
    return;
  if (x->h2_closed) { /* the stream is gone; give back what it held */
    h2_consume(c, x->stream_id, x->h2_unconsumed, 1);
    x->h2_unconsumed = 0;
    px_conn_kick(c, NULL, 0, 0);
    return;
  }
  nghttp2_session_set_stream_user_data(c->h2, x->stream_id, NULL);
  nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, x->stream_id, NGHTTP2_CANCEL);
  h2_consume(c, x->stream_id, x->h2_unconsumed, 0);
  x->h2_unconsumed = 0;
  px_conn_kick(c, NULL, 0, 0);
}

void px_h2_read(struct px_conn *c) {
  if (!c->h2)
    return;
  struct evbuffer *in = bufferevent_get_input(c->bev);
  c->in_io++;
  size_t n;
  while (!c->closing && (n = evbuffer_get_contiguous_space(in)) > 0) {
    const uint8_t *d = evbuffer_pullup(in, (ev_ssize_t)n);
    ssize_t rv = nghttp2_session_mem_recv(c->h2, d, n);
    if (rv < 0) {
      char cause[400];
      snprintf(cause, sizeof cause, "%s broke HTTP/2: %s", c->host->name,
               nghttp2_strerror((int)rv));
      px_conn_fail_all(c, PX_FAIL_PROTOCOL, cause);
      c->closing = 1;
      break;
    }
    evbuffer_drain(in, n);
  }
  c->in_io--;
  if (c->closing) {
    px_conn_close(c);
    return;
  }
  px_h2_write(c);
}

void px_h2_write(struct px_conn *c) {
  if (c->in_io || c->state != CONN_READY || c->closing || !c->h2)
    return;
  struct evbuffer *out = bufferevent_get_output(c->bev);
  c->in_io++;
  while (evbuffer_get_length(out) < PX_OUT_HIGH && !c->closing) {
    const uint8_t *d;
    ssize_t n = nghttp2_session_mem_send(c->h2, &d);
    if (n < 0) {
      char cause[400];
      snprintf(cause, sizeof cause, "HTTP/2 session with %s failed: %s", c->host->name,
               nghttp2_strerror((int)n));
      px_conn_fail_all(c, PX_FAIL_PROTOCOL, cause);
      c->closing = 1;
      break;
    }
    if (n == 0)
      break;
    if (evbuffer_add(out, d, (size_t)n) < 0) { /* those frames are lost: out of step */
      char cause[400];
      snprintf(cause, sizeof cause, "HTTP/2 session with %s failed: out of memory writing",
               c->host->name);
      px_conn_fail_all(c, PX_FAIL_PROTOCOL, cause);
      c->closing = 1;
      break;
    }
  }
  c->in_io--;
  if (!c->closing && !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
      evbuffer_get_length(out) == 0) {
    px_conn_fail_all(c, PX_FAIL_RESET, "HTTP/2 session ended");
    c->closing = 1;
  }
  if (c->closing)
    px_conn_close(c);
}
