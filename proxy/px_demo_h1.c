/* px_demo_h1: the demo backend's HTTP/1.1 keep-alive connection over http-parser. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <http_parser.h>

#include "common/cut_err.h"
#include "proxy/px_demo_int.h"

/*
 * One request at a time: the parser pauses at the end of each request and
 * resumes once its response is fully queued, so pipelined requests are
 * answered in order and wait, unparsed, in the input buffer (which stops
 * filling at DEMO_IN_HIGH). Bodies are counted as they are parsed and dropped.
 */
struct demo_h1 {
  struct demo_link link; /* first: the worker's list holds &link */
  struct demo_worker *w;
  struct bufferevent *bev;
  http_parser parser;
  struct demo_req req;
  struct demo_resp resp;
  struct event *timer;   /* delay, then drip pauses */
  int in_value;          /* the last header callback was a value */
  int keepalive;
  int responding;        /* a request is complete and its response not fully queued */
  int waiting;           /* the timer is armed */
  int head_sent;
  int closing;           /* close once the output has drained */
  int too_big;           /* target or headers over their bound */
};

static const http_parser_settings settings;

static void h1_free(struct demo_h1 *c) {
  demo_link_del(&c->link);
  if (c->timer) event_free(c->timer);
  if (c->bev) bufferevent_free(c->bev);
  demo_req_clear(&c->req);
  demo_resp_free(&c->resp);
  free(c);
}

static void h1_link_free(struct demo_link *l) { h1_free((struct demo_h1 *)l); }

/* Stops reading and closes once everything queued has been written. */
static void h1_close_when_flushed(struct demo_h1 *c) {
  c->closing = 1;
  bufferevent_disable(c->bev, EV_READ);
  bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
}

static int on_message_begin_cb(http_parser *p) {
  struct demo_h1 *c = p->data;
  demo_req_reset(&c->req);
  c->in_value = 0;
  return 0;
}

static int on_url_cb(http_parser *p, const char *at, size_t len) {
  struct demo_h1 *c = p->data;
  if (c->req.target.len + len > DEMO_MAX_TARGET) {
    c->too_big = 1;
    return -1;
  }
  return demo_buf_add(&c->req.target, at, len) ? -1 : 0;
}

/* Header names and values may arrive in several pieces: pieces are appended
 * to the pair under construction in req.hdrs ("name\0value\0"). */
static int on_header_field_cb(http_parser *p, const char *at, size_t len) {
  struct demo_h1 *c = p->data;
  struct demo_req *r = &c->req;
  if (c->in_value || r->nhdrs == 0) {
    c->in_value = 0;
    return demo_req_header(r, at, len, "", 0) ? -1 : 0;
  }
  /* continuation of the name: drop the "\0\0" terminators, append, restore */
  if (r->hdrs.len + len > DEMO_MAX_HEADERS) return -1;
  r->hdrs.len -= 2;
  size_t at0 = r->hdrs.len;
  if (demo_buf_add(&r->hdrs, at, len) || demo_buf_add(&r->hdrs, "\0\0", 2)) return -1;
  for (size_t i = at0; i < at0 + len; i++)
    if (r->hdrs.p[i] >= 'A' && r->hdrs.p[i] <= 'Z') r->hdrs.p[i] = (char)(r->hdrs.p[i] + 32);
  return 0;
}

static int on_header_value_cb(http_parser *p, const char *at, size_t len) {
  struct demo_h1 *c = p->data;
  struct demo_req *r = &c->req;
  if (r->hdrs.len + len > DEMO_MAX_HEADERS) return -1;
  c->in_value = 1;
  r->hdrs.len -= 1; /* the value's terminator */
  return demo_buf_add(&r->hdrs, at, len) || demo_buf_add(&r->hdrs, "", 1) ? -1 : 0;
}

static int on_headers_complete_cb(http_parser *p) {
  struct demo_h1 *c = p->data;
  struct demo_req *r = &c->req;
  snprintf(r->method, sizeof r->method, "%s", http_method_str((enum http_method)p->method));
  /* the authority is the Host header */
  const char *h = r->hdrs.p, *end = r->hdrs.p + r->hdrs.len;
  int expect = 0;
  while (h && h < end) {
    size_t nl = strlen(h);
    const char *v = h + nl + 1;
    size_t vl = strlen(v);
    if (!strcmp(h, "host") && !r->authority.len && demo_buf_add(&r->authority, v, vl)) return -1;
    if (!strcmp(h, "expect") && vl == 12 && !strncasecmp(v, "100-continue", 12)) expect = 1;
    h = v + vl + 1;
  }
  demo_req_head_done(r);
  if (expect && p->http_minor >= 1)
    evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
  return 0;
}

static int on_body_cb(http_parser *p, const char *at, size_t len) {
  struct demo_h1 *c = p->data;
  demo_req_body(&c->req, at, len);
  return 0;
}

static int on_message_complete_cb(http_parser *p) {
  struct demo_h1 *c = p->data;
  c->keepalive = http_should_keep_alive(p) && !p->upgrade;
  if (demo_resp_build(&c->resp, c->w->opts, &c->req)) return -1;
  c->responding = 1;
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin_cb,
    .on_url = on_url_cb,
    .on_header_field = on_header_field_cb,
    .on_header_value = on_header_value_cb,
    .on_headers_complete = on_headers_complete_cb,
    .on_body = on_body_cb,
    .on_message_complete = on_message_complete_cb,
};

static void send_head(struct demo_h1 *c) {
  const struct px_demo_opts *o = c->w->opts;
  struct demo_resp *r = &c->resp;
  char head[1024];
  const char *reason = http_status_str((enum http_status)r->status);
  int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\ncontent-type: %s\r\n", r->status,
                   reason ? reason : "Unknown", r->content_type);
  if (r->chunked)
    n += snprintf(head + n, sizeof head - (size_t)n, "transfer-encoding: chunked\r\n");
  else
    n += snprintf(head + n, sizeof head - (size_t)n, "content-length: %" PRIu64 "\r\n", r->total);
  n += snprintf(head + n, sizeof head - (size_t)n, "x-backend: %.200s\r\n", o->name);
  if (o->lineage)
    n += snprintf(head + n, sizeof head - (size_t)n, "x-lineage: %.400s\r\n", o->lineage);
  if (!c->keepalive) n += snprintf(head + n, sizeof head - (size_t)n, "connection: close\r\n");
  n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
  evbuffer_add(bufferevent_get_output(c->bev), head, (size_t)n);
  c->head_sent = 1;
}

/* Queues body bytes until the output is full, a drip wait, the end or the cut.
 * Returns 1 when the response is complete. */
static int pump(struct demo_h1 *c) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  struct demo_resp *r = &c->resp;
  uint8_t buf[DEMO_CHUNK];
  while (evbuffer_get_length(out) < DEMO_OUT_HIGH) {
    switch (demo_resp_state(r)) {
      case DEMO_BODY_MORE: {
        size_t n = demo_resp_read(r, buf, sizeof buf);
        if (r->chunked) evbuffer_add_printf(out, "%zx\r\n", n);
        evbuffer_add(out, buf, n);
        if (r->chunked) evbuffer_add(out, "\r\n", 2);
        break;
      }
      case DEMO_BODY_WAIT: {
        struct timeval tv = demo_ms_tv(r->drip_ms);
        c->waiting = 1;
        evtimer_add(c->timer, &tv);
        return 0;
      }
      case DEMO_BODY_DONE:
        if (r->chunked && !r->head_only)
          evbuffer_add_printf(out, "0\r\n%s\r\n", r->trailers ? "x-demo-trailer: done\r\n" : "");
        c->responding = 0;
        c->head_sent = 0;
        if (!c->keepalive)
          h1_close_when_flushed(c);
        else
          http_parser_pause(&c->parser, 0);
        return 1;
      case DEMO_BODY_CUT:
        c->responding = 0;
        h1_close_when_flushed(c);
        return 1;
    }
  }
  return 0;
}

/* Starts (or continues) the response to the complete request. Returns 1 when
 * it is fully queued. */
static int respond(struct demo_h1 *c) {
  if (!c->head_sent) {
    if (c->waiting) return 0;
    if (c->resp.delay_ms) {
      struct timeval tv = demo_ms_tv(c->resp.delay_ms);
      c->resp.delay_ms = 0;
      c->waiting = 1;
      evtimer_add(c->timer, &tv);
      return 0;
    }
    if (c->resp.close_start) {
      c->responding = 0;
      h1_close_when_flushed(c);
      return 1;
    }
    send_head(c);
  }
  return pump(c);
}

static void bad_request(struct demo_h1 *c, int status) {
  char msg[160];
  int n = snprintf(msg, sizeof msg,
                   "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: 12\r\n"
                   "connection: close\r\n\r\nbad request\n",
                   status, status == 431 ? "Request Header Fields Too Large" : "Bad Request");
  evbuffer_add(bufferevent_get_output(c->bev), msg, (size_t)n);
  h1_close_when_flushed(c);
}

/* Parses buffered input and answers complete requests, in order, until the
 * input is used up or a response has to wait. Returns -1 if c was freed. */
static int process(struct demo_h1 *c) {
  struct evbuffer *in = bufferevent_get_input(c->bev);
  while (!c->closing) {
    if (c->responding) {
      if (!respond(c)) break;
      continue;
    }
    struct evbuffer_iovec v[8];
    int n = evbuffer_peek(in, -1, NULL, v, 8);
    if (n <= 0) break;
    if (n > 8) n = 8;
    size_t used = 0;
    enum http_errno e = HPE_OK;
    int stalled = 0; /* the parser stopped short without pausing (an upgrade) */
    for (int i = 0; i < n && e == HPE_OK && !stalled; i++) {
      size_t k = http_parser_execute(&c->parser, &settings, v[i].iov_base, v[i].iov_len);
      used += k;
      e = HTTP_PARSER_ERRNO(&c->parser);
      stalled = e == HPE_OK && k < v[i].iov_len;
    }
    evbuffer_drain(in, used);
    if ((e != HPE_OK && e != HPE_PAUSED) || (stalled && !c->responding)) {
      bad_request(c, c->too_big || e == HPE_HEADER_OVERFLOW ? 431 : 400);
      break;
    }
    if (!c->responding && used == 0) break;
  }
  if (c->closing && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
    h1_free(c);
    return -1;
  }
  return 0;
}

static void on_timer_cb(evutil_socket_t fd, short what, void *user_data) {
  struct demo_h1 *c = user_data;
  c->waiting = 0;
  if (c->head_sent) demo_resp_next_piece(&c->resp);
  process(c);
}

static void client_read_cb(struct bufferevent *bev, void *user_data) {
  struct demo_h1 *c = user_data;
  if (!c->responding) process(c);
}

static void client_write_cb(struct bufferevent *bev, void *user_data) {
  struct demo_h1 *c = user_data;
  if (c->closing) {
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
      h1_free(c);
      return;
    }
    return;
  }
  if (c->responding && !c->waiting) process(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *user_data) {
  struct demo_h1 *c = user_data;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    h1_free(c);
    return;
  }
}

int demo_h1_new(struct demo_worker *w, struct bufferevent *bev) {
  struct demo_h1 *c = calloc(1, sizeof *c);
  if (!c) goto fail;
  c->timer = evtimer_new(w->base, on_timer_cb, c);
  if (!c->timer) goto fail_conn;
  c->w = w;
  c->bev = bev;
  c->link.free_fn = h1_link_free;
  demo_req_reset(&c->req);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  demo_link_add(w, &c->link);
  bufferevent_setcb(bev, client_read_cb, client_write_cb, client_event_cb, c);
  bufferevent_setwatermark(bev, EV_READ, 0, DEMO_IN_HIGH);
  bufferevent_setwatermark(bev, EV_WRITE, DEMO_OUT_LOW, 0);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  process(c);
  return 0;
fail_conn:
  free(c);
fail:
  bufferevent_free(bev);
  return CUT_ERR_NOMEM;
}
