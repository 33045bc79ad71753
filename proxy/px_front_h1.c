/* px_front_h1: the HTTP/1.1 server side of a client connection (http-parser).
 *
 * One request at a time: when a request's head is parsed the request is
 * forwarded; the parser pauses at the end of each request (and whenever the
 * upstream cannot take more body), so pipelined requests wait in the input
 * buffer and are answered strictly in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <http_parser.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "proxy/px_h2c.h"
#include "proxy/px_limits.h"
#include "proxy/px_metrics.h"
#include "proxy/px_server_int.h"

struct h1_front {
  struct px_req req; /* first: the current request */
  struct px_client *c;
  http_parser p;
  /* head being parsed */
  char *url;
  size_t urllen, urlcap;
  char *field, *value;
  size_t fieldlen, fieldcap, valuelen, valuecap;
  int last_was_value;
  size_t head_bytes;
  struct px_headers trailers;
  int in_trailers;
  /* state of the current request */
  int active;       /* a request is being handled (head parsed, response not done) */
  int msg_done;     /* its request has been read completely */
  int resp_done;    /* its response was written completely */
  int keepalive;    /* the connection may carry another request after this one */
  int http10;
  int has_body;     /* the request announced a body */
  int head_method;
  int chunked_out;  /* the response is sent chunked */
  int no_body;      /* HEAD, 1xx, 204, 304 */
  int body_full;    /* the upstream is over its watermark: stop parsing */
  int out_paused;   /* the response is paused on our output watermark */
  int parse_error;
  int too_many;     /* the head had more than max_headers fields */
  int draining;
  int in_parse;
  int counted;      /* the current request is counted in cutover_client_streams */
  int h2c;          /* the current request upgrades the connection to h2c */
  const char *h2c_bad; /* its HTTP2-Settings is malformed: why (static) */
};

/* An HTTP/1.1 request counts as one stream from its first byte (or the proxy's
 * own error answer) until its response is written or the connection ends. */
static void stream_open(struct h1_front *f) {
  if (f->counted)
    return;
  f->counted = 1;
  px_metrics_stream_open(px_worker_metrics(f->c->w), (unsigned)f->c->w->idx);
}

static void stream_close(struct h1_front *f) {
  if (!f->counted)
    return;
  f->counted = 0;
  px_metrics_stream_close(px_worker_metrics(f->c->w), (unsigned)f->c->w->idx);
}

static const struct px_front_ops h1_ops;

static int grow_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t nc = *cap ? *cap : 64;
    while (nc < *len + n + 1)
      nc *= 2;
    char *b = realloc(*buf, nc);
    if (!b)
      return -1;
    *buf = b;
    *cap = nc;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = '\0';
  return 0;
}

static uint64_t max_head(const struct h1_front *f) {
  uint64_t m = f->c->w->cfg->limits.max_header_list_bytes;
  return m ? m : 65536;
}

/* ---- parser callbacks ---- */

static int on_message_begin(http_parser *p) {
  struct h1_front *f = p->data;
  px_req_init(&f->req, f->c, &h1_ops);
  f->urllen = f->fieldlen = f->valuelen = 0;
  f->last_was_value = 0;
  f->head_bytes = 0;
  f->in_trailers = 0;
  px_headers_clear(&f->trailers);
  f->active = 1;
  stream_open(f);
  f->msg_done = f->resp_done = 0;
  f->chunked_out = f->no_body = f->body_full = f->out_paused = 0;
  f->h2c = 0;
  f->h2c_bad = NULL;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  struct h1_front *f = p->data;
  f->head_bytes += n;
  if (f->head_bytes > max_head(f))
    return -1;
  return grow_append(&f->url, &f->urllen, &f->urlcap, at, n);
}

static int commit_field(struct h1_front *f) {
  if (!f->fieldlen)
    return 0;
  struct px_headers *dst = f->in_trailers ? &f->trailers : &f->req.head.headers;
  const struct cfg_limits *lim = &f->c->w->cfg->limits;
  if (lim->max_headers && dst->n >= lim->max_headers) {
    f->too_many = 1;
    return -1;
  }
  /* trim trailing whitespace of the value (http-parser keeps it) */
  while (f->valuelen && (f->value[f->valuelen - 1] == ' ' || f->value[f->valuelen - 1] == '\t'))
    f->valuelen--;
  int rc = px_headers_add(dst, f->field, f->fieldlen, f->value ? f->value : "", f->valuelen);
  f->fieldlen = f->valuelen = 0;
  return rc;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  struct h1_front *f = p->data;
  f->head_bytes += n;
  if (f->head_bytes > max_head(f))
    return -1;
  if (f->last_was_value) {
    if (commit_field(f) < 0)
      return -1;
    f->last_was_value = 0;
  }
  return grow_append(&f->field, &f->fieldlen, &f->fieldcap, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  struct h1_front *f = p->data;
  f->head_bytes += n;
  if (f->head_bytes > max_head(f))
    return -1;
  f->last_was_value = 1;
  return grow_append(&f->value, &f->valuelen, &f->valuecap, at, n);
}

static void write_continue(struct h1_front *f) {
  evbuffer_add(bufferevent_get_output(f->c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static int on_headers_complete(http_parser *p) {
  struct h1_front *f = p->data;
  if (f->last_was_value && commit_field(f) < 0)
    return -1;
  f->last_was_value = 0;
  f->in_trailers = 1;
  struct px_request_head *h = &f->req.head;
  h->method = strdup(http_method_str((enum http_method)p->method));
  h->path = malloc(f->urllen + 1);
  if (!h->method || !h->path)
    return -1;
  memcpy(h->path, f->url ? f->url : "", f->urllen);
  h->path[f->urllen] = '\0';
  const struct px_header *host = px_headers_get(&h->headers, "host");
  if (host)
    h->authority = strdup(host->value);
  int chunked = (p->flags & F_CHUNKED) != 0;
  if (p->flags & F_CONTENTLENGTH)
    h->content_length = (int64_t)p->content_length;
  else
    h->content_length = chunked ? -1 : 0;
  f->http10 = p->http_major == 1 && p->http_minor == 0;
  f->keepalive = http_should_keep_alive(p) && !f->draining;
  f->head_method = strcmp(h->method, "HEAD") == 0;
  int has_body = chunked || h->content_length > 0;
  f->has_body = has_body;
  const struct px_header *expect = px_headers_get(&h->headers, "expect");
  int want_continue =
      has_body && !f->http10 && expect && strcasecmp(expect->value, "100-continue") == 0;
  /* p->upgrade: http-parser saw Upgrade and Connection: upgrade (a cheap first test) */
  /* (a client attached without a listener, as in tests, may upgrade) */
  if (p->upgrade && !has_body && !f->http10 && !f->c->tls && (!f->c->l || f->c->l->h2c_upgrade) &&
      !f->draining &&
      px_h2c_requested(&h->headers)) {
    /* h2c upgrade: checked now, switched once the parser stopped after this
     * head (parse_input); without a usable HTTP2-Settings field the request
     * is served over HTTP/1.1 as if no upgrade had been asked */
    uint8_t settings[PX_H2C_SETTINGS_MAX];
    const char *why = NULL;
    int n = px_h2c_settings(&h->headers, settings, sizeof settings, &why);
    if (n >= 0) {
      f->h2c = 1;
      return 0;
    }
    if (n != CUT_ERR_NOT_FOUND) {
      f->h2c_bad = why;
      return -1; /* answered with 400 by parse_input */
    }
  }
  px_req_begin(&f->req, has_body);
  if (f->c->dead)
    return -1;
  if (want_continue && !f->req.responded)
    write_continue(f);
  if (!has_body) {
    /* the request is complete with its head */
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  struct h1_front *f = p->data;
  const struct cfg_limits *lim = &f->c->w->cfg->limits;
  if (lim->max_request_body_bytes && f->req.bytes_in + n > lim->max_request_body_bytes) {
    px_limit_hit(f->c->w->srv->limits, PX_LIMIT_REQUEST_BODY, (unsigned)f->c->w->idx);
    if (!f->req.responded)
      px_req_respond_error(&f->req, 413, "request body too large");
    else if (!f->req.error)
      f->req.error = "request body too large";
    f->keepalive = 0;
    return -1;
  }
  if (px_req_body(&f->req, (const uint8_t *)at, n) == CUT_ERR_FULL) {
    f->body_full = 1;
    http_parser_pause(p, 1);
  }
  return 0;
}

static int on_message_complete(http_parser *p) {
  struct h1_front *f = p->data;
  if (f->last_was_value && commit_field(f) < 0)
    return -1;
  f->last_was_value = 0;
  f->msg_done = 1;
  px_req_end_body(&f->req, f->trailers.n ? &f->trailers : NULL);
  /* answer this request before reading the next one */
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- response side (px_front_ops) ---- */

static const char *reason_phrase(int s) {
  switch (s) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Status";
  }
}

static int h1_respond(struct px_req *r, const struct px_response_head *h, int end) {
  struct h1_front *f = (struct h1_front *)r;
  struct evbuffer *out = bufferevent_get_output(f->c->bev);
  f->no_body = f->head_method || h->status == 204 || h->status == 304 ||
               (h->status >= 100 && h->status < 200);
  if (!f->msg_done && f->has_body)
    f->keepalive = 0; /* answered before the body was read: do not reuse */
  char line[64];
  int n = snprintf(line, sizeof line, "HTTP/1.%d %d %s\r\n", f->http10 ? 0 : 1, h->status,
                   reason_phrase(h->status));
  evbuffer_add(out, line, (size_t)n);
  int has_cl = 0;
  for (size_t i = 0; i < h->headers.n; i++) {
    const struct px_header *hf = &h->headers.v[i];
    if (px_header_is_hop(hf->name, hf->namelen) || !hf->namelen || hf->name[0] == ':')
      continue;
    if (hf->namelen == 14 && memcmp(hf->name, "content-length", 14) == 0)
      has_cl = 1;
    evbuffer_add(out, hf->name, hf->namelen);
    evbuffer_add(out, ": ", 2);
    evbuffer_add(out, hf->value, hf->valuelen);
    evbuffer_add(out, "\r\n", 2);
  }
  if (!has_cl && h->content_length >= 0 && !f->no_body) {
    n = snprintf(line, sizeof line, "content-length: %lld\r\n", (long long)h->content_length);
    evbuffer_add(out, line, (size_t)n);
    has_cl = 1;
  }
  if (!has_cl && !f->no_body) {
    if (f->http10)
      f->keepalive = 0; /* the body ends when the connection closes */
    else {
      f->chunked_out = 1;
      evbuffer_add(out, "transfer-encoding: chunked\r\n", 28);
    }
  }
  if (!f->keepalive)
    evbuffer_add(out, "connection: close\r\n", 19);
  else if (f->http10)
    evbuffer_add(out, "connection: keep-alive\r\n", 24);
  evbuffer_add(out, "\r\n", 2);
  if (end)
    h1_ops.end(r, NULL);
  return 0;
}

static int h1_body(struct px_req *r, const uint8_t *p, size_t n) {
  struct h1_front *f = (struct h1_front *)r;
  if (f->no_body || !n)
    return 0;
  struct evbuffer *out = bufferevent_get_output(f->c->bev);
  if (f->chunked_out) {
    char sz[24];
    int k = snprintf(sz, sizeof sz, "%zx\r\n", n);
    evbuffer_add(out, sz, (size_t)k);
    evbuffer_add(out, p, n);
    evbuffer_add(out, "\r\n", 2);
  } else {
    evbuffer_add(out, p, n);
  }
  if (evbuffer_get_length(out) >= PX_OUT_HIGH) {
    f->out_paused = 1;
    return PX_PAUSE;
  }
  return 0;
}

static void h1_end(struct px_req *r, const struct px_headers *trailers) {
  struct h1_front *f = (struct h1_front *)r;
  struct evbuffer *out = bufferevent_get_output(f->c->bev);
  if (f->chunked_out) {
    evbuffer_add(out, "0\r\n", 3);
    for (size_t i = 0; trailers && i < trailers->n; i++) {
      const struct px_header *hf = &trailers->v[i];
      evbuffer_add(out, hf->name, hf->namelen);
      evbuffer_add(out, ": ", 2);
      evbuffer_add(out, hf->value, hf->valuelen);
      evbuffer_add(out, "\r\n", 2);
    }
    evbuffer_add(out, "\r\n", 2);
  }
  f->resp_done = 1;
  /* continue (next pipelined request, or close) outside of the caller's stack */
  px_client_schedule_flush(f->c);
}

static void h1_abort(struct px_req *r) {
  struct h1_front *f = (struct h1_front *)r;
  /* a truncated response can only be signalled by closing the connection */
  f->keepalive = 0;
  f->resp_done = 1;
  f->req.status = f->req.status ? f->req.status : 502;
  px_client_close_after_write(f->c);
}

static void h1_consumed(struct px_req *r, size_t n) {}

static void h1_request_resume(struct px_req *r) {
  struct h1_front *f = (struct h1_front *)r;
  if (!f->body_full)
    return;
  f->body_full = 0;
  px_client_schedule_flush(f->c);
}

static const struct px_front_ops h1_ops = {
    .respond = h1_respond,
    .body = h1_body,
    .end = h1_end,
    .abort = h1_abort,
    .consumed = h1_consumed,
    .request_resume = h1_request_resume,
};

/* ---- connection plumbing ---- */

int px_front_h1_attach(struct px_client *c) {
  struct h1_front *f = calloc(1, sizeof *f);
  if (!f)
    return CUT_ERR_NOMEM;
  f->c = c;
  http_parser_init(&f->p, HTTP_REQUEST);
  f->p.data = f;
  c->front = f;
  return 0;
}

/* Closes after an error answer while the client may still be sending (the
 * rest of a body, pipelined requests): input is read and discarded for a
 * bounded time after the response went out, so unread bytes do not make the
 * kernel reset the connection and destroy the response (px_client_linger_close). */
static void close_lingering(struct px_client *c) {
  px_client_linger_close(c);
  px_client_close_after_write(c);
}

static void bad_request(struct h1_front *f, int status, const char *why) {
  struct px_client *c = f->c;
  log_debug("proxy", "http/1.1 client %s: %s", c->peer, why);
  if (!f->active || !f->req.responded) {
    if (!f->active) {
      px_req_init(&f->req, c, &h1_ops);
      f->active = 1;
      stream_open(f);
    }
    f->keepalive = 0;
    f->msg_done = 1;
    f->req.begun = 1;
    px_req_respond_error(&f->req, status, why);
  }
  f->keepalive = 0;
  close_lingering(c);
}

/* Finishes the current request once its response is written. Returns 1 when
 * the connection may go on parsing. */
static int finish_current(struct h1_front *f) {
  if (!f->active || !f->resp_done)
    return !f->active;
  px_req_finish(&f->req);
  f->active = 0;
  stream_close(f);
  if (!f->keepalive || !f->msg_done || f->draining || f->c->read_eof) {
    /* the request not read to its end, or more input waiting: linger */
    if (!f->c->read_eof &&
        (!f->msg_done || evbuffer_get_length(bufferevent_get_input(f->c->bev)) > 0))
      close_lingering(f->c);
    else
      px_client_close_after_write(f->c);
    return 0;
  }
  /* the next request starts afresh (also after an Upgrade we declined) */
  http_parser_init(&f->p, HTTP_REQUEST);
  f->p.data = f;
  return 1;
}

/* Switches the connection to HTTP/2: 101, then an HTTP/2 frontend whose
 * stream 1 is the current request (its head moves there). Frees f. */
static void upgrade_h2c(struct h1_front *f) {
  struct px_client *c = f->c;
  uint8_t settings[PX_H2C_SETTINGS_MAX];
  const char *why = NULL;
  int n = px_h2c_settings(&f->req.head.headers, settings, sizeof settings, &why);
  struct px_request_head head = f->req.head;
  memset(&f->req.head, 0, sizeof f->req.head);
  uint64_t t_start_ns = f->req.t_start_ns;
  px_req_finish(&f->req); /* never begun here: nothing logged; it goes on as stream 1 */
  f->active = 0;
  stream_close(f);
  evbuffer_add(bufferevent_get_output(c->bev), PX_H2C_101, sizeof PX_H2C_101 - 1);
  px_client_upgrade_h2(c, settings, n < 0 ? 0 : (size_t)n, &head, t_start_ns);
}

static void parse_input(struct h1_front *f) {
  struct px_client *c = f->c;
  struct evbuffer *in = bufferevent_get_input(c->bev);
  if (f->in_parse)
    return;
  f->in_parse = 1;
  for (;;) {
    if (c->dead || c->closing)
      break;
    if (f->active && f->resp_done && !finish_current(f))
      break;
    if (c->lingering) /* closing after an error: input is only discarded */
      break;
    if (f->body_full || (f->active && f->msg_done))
      break;
    size_t len = evbuffer_get_length(in);
    if (!len)
      break;
    struct evbuffer_iovec v;
    if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
      break;
    http_parser_pause(&f->p, 0);
    size_t n = http_parser_execute(&f->p, &parser_settings, v.iov_base, v.iov_len);
    enum http_errno e = HTTP_PARSER_ERRNO(&f->p);
    if (c->dead)
      break;
    if (e != HPE_OK && e != HPE_PAUSED) {
      f->in_parse = 0;
      if (f->h2c_bad) {
        bad_request(f, 400, f->h2c_bad);
      } else if (f->too_many && !f->in_trailers) {
        px_limit_hit(c->w->srv->limits, PX_LIMIT_HEADER_COUNT, (unsigned)c->w->idx);
        bad_request(f, 431, "too many header fields");
      } else if (e == HPE_HEADER_OVERFLOW || (f->head_bytes > max_head(f) && !f->in_trailers)) {
        px_limit_hit(c->w->srv->limits, PX_LIMIT_HEADER_LIST, (unsigned)c->w->idx);
        bad_request(f, 431, "request head too large");
      }
      else if (f->active && f->req.responded) {
        /* the response has begun (an upstream's, or our 413) and cannot carry
         * this error: finish the request and close once its output is written */
        if (!f->resp_done) {
          f->req.error = f->req.error ? f->req.error : http_errno_description(e);
          px_req_finish(&f->req);
        }
        close_lingering(c);
      } else
        bad_request(f, 400, http_errno_description(e));
      return;
    }
    evbuffer_drain(in, n);
    if (f->h2c) {
      /* the parser stopped right after the upgrade request's head: what
       * follows in the input is HTTP/2 */
      f->in_parse = 0;
      upgrade_h2c(f);
      return; /* f is gone */
    }
    if (n == 0 && e != HPE_PAUSED)
      break;
  }
  f->in_parse = 0;
  /* read more only when we are ready to parse it (bounded input buffer) */
  if (!c->dead && !c->closing && !c->lingering) {
    if (f->body_full || (f->active && f->msg_done))
      bufferevent_disable(c->bev, EV_READ);
    else
      bufferevent_enable(c->bev, EV_READ);
  }
}

void px_front_h1_on_read(struct px_client *c) { parse_input(c->front); }

void px_front_h1_on_write(struct px_client *c) {
  struct h1_front *f = c->front;
  if (f->out_paused && evbuffer_get_length(bufferevent_get_output(c->bev)) < PX_OUT_LOW) {
    f->out_paused = 0;
    px_req_resume_response(&f->req);
  }
}

void px_front_h1_flush(struct px_client *c) {
  struct h1_front *f = c->front;
  if (!f)
    return;
  parse_input(f);
}

void px_front_h1_drain(struct px_client *c) {
  struct h1_front *f = c->front;
  f->draining = 1;
  f->keepalive = 0;
  if (!f->active)
    px_client_close_after_write(c);
}

/* Busy = a request was forwarded and is not finished. A partial head is not
 * busy: a client that stops in the middle of one meets the timeouts. */
int px_front_h1_busy(const struct px_client *c) {
  const struct h1_front *f = c->front;
  return f && f->active && f->req.begun;
}

void px_front_h1_cancel(struct px_client *c) {
  struct h1_front *f = c->front;
  if (f && f->active)
    px_req_finish(&f->req);
}

void px_front_h1_free(struct px_client *c) {
  struct h1_front *f = c->front;
  if (!f)
    return;
  if (f->active)
    px_req_finish(&f->req);
  else
    px_request_head_clear(&f->req.head);
  stream_close(f);
  px_headers_clear(&f->trailers);
  free(f->url);
  free(f->field);
  free(f->value);
  free(f);
  c->front = NULL;
}
