/* px_h1_client: HTTP/1.1 exchanges on a keep-alive upstream connection (http-parser for responses). */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/cut_err.h"
#include "proxy/px_upstream_int.h"

#define H1_MAX_HEADER_BYTES (64u * 1024u)

static int on_message_begin_cb(http_parser *hp);
static int on_header_field_cb(http_parser *hp, const char *at, size_t len);
static int on_header_value_cb(http_parser *hp, const char *at, size_t len);
static int on_headers_complete_cb(http_parser *hp);
static int on_body_cb(http_parser *hp, const char *at, size_t len);
static int on_message_complete_cb(http_parser *hp);

static const http_parser_settings h1_settings = {
    .on_message_begin = on_message_begin_cb,
    .on_header_field = on_header_field_cb,
    .on_header_value = on_header_value_cb,
    .on_headers_complete = on_headers_complete_cb,
    .on_body = on_body_cb,
    .on_message_complete = on_message_complete_cb,
};

void px_h1_init(struct px_conn *c) {
  http_parser_init(&c->parser, HTTP_RESPONSE);
  c->parser.data = c;
}

/* ---------------------------------------------------------------- request */

static int skip_request_header(const struct px_header *f) {
  switch (f->namelen) { /* names are lower-case */
  case 2:
    return memcmp(f->name, "te", 2) == 0;
  case 4:
    return memcmp(f->name, "host", 4) == 0;
  case 14:
    return memcmp(f->name, "content-length", 14) == 0 || px_header_is_hop(f->name, 14);
  default:
    return px_header_is_hop(f->name, f->namelen);
  }
}

static int method_wants_length(const char *m) {
  return m[0] == 'P' && (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0);
}

/* Serializes the head into the output in one reservation (no intermediate copies). */
static int write_head(struct px_conn *c, struct px_exchange *x) {
  const struct px_request_head *h = &x->head;
  const struct cfg_backend *be = c->pool->be;
  const char *host = be->host_header ? be->host_header
                     : h->authority  ? h->authority
                                     : c->host->name;
  char framing[64];
  int flen = 0;
  x->chunked = 0;
  if (x->has_body && h->content_length >= 0)
    flen = snprintf(framing, sizeof framing, "content-length: %lld\r\n",
                    (long long)h->content_length);
  else if (x->has_body) {
    flen = snprintf(framing, sizeof framing, "transfer-encoding: chunked\r\n");
    x->chunked = 1;
  } else if (method_wants_length(h->method))
    flen = snprintf(framing, sizeof framing, "content-length: 0\r\n");
  size_t ml = strlen(h->method), pl = strlen(h->path), hl = strlen(host);
  size_t total = ml + 1 + pl + 11 + 6 + hl + 2 + (size_t)flen + 2;
  for (size_t i = 0; i < h->headers.n; i++)
    if (!skip_request_header(&h->headers.v[i]))
      total += h->headers.v[i].namelen + 2 + h->headers.v[i].valuelen + 2;
  /* Raw connections: built on the stack and sent at once, usually whole;
   * a pipelining batch is held in the output until the kick writes it. */
  char stack[2048];
  int direct = c->raw && total <= sizeof stack && !c->batch_open;
  struct evbuffer *out = px_conn_out(c);
  struct evbuffer_iovec v = {stack, sizeof stack};
  if (!direct && evbuffer_reserve_space(out, (ev_ssize_t)total, &v, 1) < 1)
    return CUT_ERR_NOMEM;
  char *p = v.iov_base;
#define PUT(s, n)                                                                                  \
  do {                                                                                             \
    memcpy(p, (s), (n));                                                                           \
    p += (n);                                                                                      \
  } while (0)
  PUT(h->method, ml);
  *p++ = ' ';
  PUT(h->path, pl);
  PUT(" HTTP/1.1\r\nhost: ", 17);
  PUT(host, hl);
  PUT("\r\n", 2);
  for (size_t i = 0; i < h->headers.n; i++) {
    const struct px_header *f = &h->headers.v[i];
    if (skip_request_header(f))
      continue;
    PUT(f->name, f->namelen);
    PUT(": ", 2);
    PUT(f->value, f->valuelen);
    PUT("\r\n", 2);
  }
  PUT(framing, (size_t)flen);
  PUT("\r\n", 2);
#undef PUT
  if (direct)
    return px_conn_write(c, stack, total);
  v.iov_len = total;
  return evbuffer_commit_space(out, &v, 1);
}

/* Moves buffered body bytes (and the end of the body) onto the connection. */
void px_h1_send_body(struct px_exchange *x) {
  struct px_conn *c = x->conn;
  if (!c || x->body_flushed || c->closing) /* closing: no more bytes for this connection */
    return;
  size_t n = x->reqbuf ? evbuffer_get_length(x->reqbuf) : 0;
  if (!n && !x->body_ended)
    return;
  if (!n && !x->chunked) { /* nothing to add: the end of a body without framing */
    x->body_flushed = 1;
    return;
  }
  struct evbuffer *out = px_conn_out(c);
  int bad = 0; /* a failed add leaves the framing out of step */
  if (n) {
    x->body_consumed = 1;
    if (x->chunked)
      bad |= evbuffer_add_printf(out, "%zx\r\n", n) < 0;
    bad |= evbuffer_add_buffer(out, x->reqbuf) < 0;
    if (x->chunked)
      bad |= evbuffer_add(out, "\r\n", 2) < 0;
  }
  if (x->body_ended && !bad) {
    if (x->chunked) {
      bad |= evbuffer_add(out, "0\r\n", 3) < 0;
      for (size_t i = 0; i < x->req_trailers.n; i++) {
        const struct px_header *f = &x->req_trailers.v[i];
        bad |= evbuffer_add(out, f->name, f->namelen) < 0;
        bad |= evbuffer_add(out, ": ", 2) < 0;
        bad |= evbuffer_add(out, f->value, f->valuelen) < 0;
        bad |= evbuffer_add(out, "\r\n", 2) < 0;
      }
      bad |= evbuffer_add(out, "\r\n", 2) < 0;
    }
    x->body_flushed = !bad;
  }
  if (bad) { /* closed from the loop: this may run inside the caller's send_body */
    c->closing = 1;
    c->close_why = "out of memory writing a request body";
    px_conn_kick(c, NULL, 0, 0);
    return;
  }
  if (c->raw && x->state == XS_ACTIVE && !c->batch_open)
    px_conn_flush(c);
}

/* x becomes the exchange whose response is read next. */
static void h1_begin(struct px_conn *c, struct px_exchange *x) {
  c->x = x;
  http_parser_init(&c->parser, HTTP_RESPONSE);
  c->parser.data = c;
  c->h1_paused = c->h1_msg_done = c->h1_skip = c->h1_in_trailers = c->h1_eof = 0;
  c->h1_hdr_state = 0;
  if (x->placeholder)
    px_x_placeholder_turn(x);
}

/* Takes x out of c's exchanges (x is then nowhere). */
static void h1_remove(struct px_conn *c, struct px_exchange *x) {
  TAILQ_REMOVE(&c->active, x, clink);
  if (x->in_kickq) {
    TAILQ_REMOVE(&c->kickq, x, klink);
    x->in_kickq = 0;
  }
  c->depth--;
  if (c->x == x)
    c->x = NULL;
  x->conn = NULL;
  x->state = XS_NEW;
}

/* The connection ends while exchanges pipelined behind the current one have
 * had no byte of their response: each is sent again (px_x_resend). The
 * connection stops taking new exchanges first, so none comes back to it. */
static void h1_resend_queued(struct px_conn *c, int announced, const char *cause) {
  struct px_exchange *y;
  c->closing = 1;
  if (c->host->batch == c)
    c->host->batch = NULL;
  c->batch_open = 0;
  while ((y = TAILQ_FIRST(&c->active)) && y != c->x) {
    h1_remove(c, y);
    px_x_resend(y, announced, cause);
  }
  while (c->x && (y = TAILQ_NEXT(c->x, clink))) {
    h1_remove(c, y);
    px_x_resend(y, announced, cause);
  }
}

/* The connection ends while x (or none) is being answered: x leaves it, those
 * queued behind are sent again, and it closes. The caller then ends x. */
static void h1_close_around(struct px_conn *c, struct px_exchange *x, const char *cause) {
  if (x)
    h1_remove(c, x);
  if (c->depth)
    h1_resend_queued(c, 0, cause);
  px_conn_close(c);
}

static int h1_write(struct px_conn *c, struct px_exchange *x) {
  x->conn = c;
  x->state = XS_ACTIVE;
  TAILQ_INSERT_TAIL(&c->active, x, clink);
  c->depth++;
  if (write_head(c, x) < 0) {
    h1_remove(c, x);
    x->bytes_sent = 0;
    /* not px_x_conn_failed: this may run inside px_exchange_start */
    px_x_fail_soon(x, PX_FAIL_PROTOCOL, "out of memory writing the request");
    if (c->depth == 0)
      px_conn_kick(c, NULL, 0, 0); /* nothing else on it: idle again, from the loop */
    return CUT_ERR_NOMEM;
  }
  x->bytes_sent = 1;
  px_h1_send_body(x);
  return 0;
}

int px_h1_dispatch(struct px_conn *c, struct px_exchange *x) {
  /* an idle timer still armed stays: it finds the connection busy (see idle_since_ms) */
  h1_begin(c, x);
  int rc = h1_write(c, x);
  if (rc == 0 && !c->batch_open)
    px_conn_flush(c);
  return rc;
}

int px_h1_pipeline(struct px_conn *c, struct px_exchange *x) {
  x->pipelined = 1;
  return h1_write(c, x);
}

/* Called by x_unlink: the exchange leaves a connection that is mid-exchange,
 * so the connection cannot carry another one; exchanges pipelined behind it
 * are sent again elsewhere. */
void px_h1_detach(struct px_exchange *x) {
  struct px_conn *c = x->conn;
  struct px_exchange *ph;
  if (c->x && c->x != x && !c->closing && (ph = px_x_placeholder(x))) {
    /* Still queued: its response is read and dropped when its turn comes, and
     * the exchanges around it carry on. */
    TAILQ_INSERT_AFTER(&c->active, x, ph, clink);
    TAILQ_REMOVE(&c->active, x, clink);
    ph->conn = c;
    ph->state = XS_ACTIVE;
    x->conn = NULL;
    return;
  }
  TAILQ_REMOVE(&c->active, x, clink);
  c->depth--;
  if (c->x == x)
    c->x = NULL;
  x->conn = NULL;
  if (c->depth) {
    char cause[400];
    snprintf(cause, sizeof cause, "%s: an earlier pipelined request was abandoned",
             c->host->name);
    /* x was queued but no placeholder could take its place (out of memory,
     * or the connection is closing): the one being answered leaves too,
     * sent again or failed from the loop like the others. */
    struct px_exchange *head = c->x;
    h1_resend_queued(c, 0, cause);
    if (head) {
      h1_remove(c, head);
      px_x_resend(head, 0, cause);
    }
  }
  px_conn_close(c);
}

/* The connection closes with exchanges still on it (px_conn_close): it got
 * out of step (out of memory) while they waited. The one being answered fails
 * with a reset from the loop, unless it was pipelined and got nothing yet;
 * those behind it are sent again (px_x_resend). */
void px_h1_close_busy(struct px_conn *c) {
  char cause[400];
  snprintf(cause, sizeof cause, "%s: the connection closed mid-exchange (%s)", c->host->name,
           c->close_why ? c->close_why : "out of step");
  struct px_exchange *x = c->x;
  h1_close_around(c, x, cause);
  if (!x)
    return;
  if (x->pipelined && !x->got_response)
    px_x_resend(x, 0, cause);
  else
    px_x_fail_soon(x, PX_FAIL_RESET, cause);
}

/* ---------------------------------------------------------------- response */

static int hbuf_append(struct px_conn *c, const char *at, size_t len) {
  size_t used = c->hname_len + c->hval_len;
  if (used + len > H1_MAX_HEADER_BYTES)
    return -1;
  if (used + len + 1 > c->hcap) {
    size_t cap = c->hcap ? c->hcap : 256;
    while (cap < used + len + 1)
      cap *= 2;
    char *b = realloc(c->hbuf, cap);
    if (!b)
      return -1;
    c->hbuf = b;
    c->hcap = cap;
  }
  memcpy(c->hbuf + used, at, len);
  return 0;
}

static int commit_header(struct px_conn *c) {
  struct px_exchange *x = c->x;
  if (c->h1_hdr_state != 2)
    return 0;
  c->h1_hdr_state = 0;
  const char *name = c->hbuf, *value = c->hbuf + c->hname_len;
  size_t nl = c->hname_len, vl = c->hval_len;
  c->hname_len = c->hval_len = 0;
  if (c->h1_skip)
    return 0;
  struct px_headers *dst = c->h1_in_trailers ? &x->resp_trailers : &x->resp.headers;
  if (!c->h1_in_trailers && px_header_is_hop(name, nl))
    return 0;
  if (dst->bytes + nl + vl > H1_MAX_HEADER_BYTES)
    return -1;
  return px_headers_add(dst, name, nl, value, vl) < 0 ? -1 : 0;
}

static int on_message_begin_cb(http_parser *hp) {
  struct px_conn *c = hp->data;
  c->h1_hdr_state = 0;
  c->hname_len = c->hval_len = 0;
  c->h1_in_trailers = 0;
  return 0;
}

static int on_header_field_cb(http_parser *hp, const char *at, size_t len) {
  struct px_conn *c = hp->data;
  if (c->h1_hdr_state == 2 && commit_header(c) < 0)
    return -1;
  c->h1_hdr_state = 1;
  if (hbuf_append(c, at, len) < 0)
    return -1;
  c->hname_len += len;
  return 0;
}

static int on_header_value_cb(http_parser *hp, const char *at, size_t len) {
  struct px_conn *c = hp->data;
  c->h1_hdr_state = 2;
  if (hbuf_append(c, at, len) < 0)
    return -1;
  c->hval_len += len;
  return 0;
}

static int on_headers_complete_cb(http_parser *hp) {
  struct px_conn *c = hp->data;
  struct px_exchange *x = c->x;
  if (commit_header(c) < 0)
    return -1;
  int status = (int)hp->status_code;
  if (status >= 100 && status < 200) {
    if (status == 101)
      return -1; /* we never ask for an upgrade */
    c->h1_skip = 1; /* interim response: dropped, the final one follows */
    return 0;
  }
  c->h1_in_trailers = 1; /* any header after this point is a trailer */
  x->resp.status = status;
  if (hp->flags & F_CHUNKED)
    x->resp.content_length = -1;
  else if (hp->content_length != ULLONG_MAX)
    x->resp.content_length = (int64_t)hp->content_length;
  else
    x->resp.content_length = -1;
  if (x->is_head || status == 204 || status == 304)
    x->resp.content_length = x->is_head ? x->resp.content_length : 0;
  /* After a callback x may have left c (px_h1_detach of a request queued
   * behind it found no placeholder): the parser stops, it reads for nobody. */
  if (px_x_response(x) < 0 || c->x != x)
    return -1;
  /* No body after HEAD, 204 or 304, whatever the framing headers say. */
  return x->is_head || status == 204 || status == 304 ? 1 : 0;
}

static int on_body_cb(http_parser *hp, const char *at, size_t len) {
  struct px_conn *c = hp->data;
  struct px_exchange *x = c->x;
  int rv = px_x_body(x, (const uint8_t *)at, len);
  if (rv < 0 || c->x != x)
    return -1; /* see on_headers_complete_cb */
  if (rv == PX_PAUSE)
    http_parser_pause(hp, 1);
  return 0;
}

static int on_message_complete_cb(http_parser *hp) {
  struct px_conn *c = hp->data;
  struct px_exchange *x = c->x;
  if (c->h1_skip) {
    c->h1_skip = 0;
    px_headers_clear(&x->resp.headers);
    return 0;
  }
  if (commit_header(c) < 0)
    return -1;
  if (x->resp_trailers.n && (px_x_trailers(x, &x->resp_trailers) < 0 || c->x != x))
    return -1; /* see on_headers_complete_cb */
  c->h1_msg_done = 1;
  http_parser_pause(hp, 1); /* stop exactly at the end of this response */
  return 0;
}

/* The response is complete: reuse the connection when the exchange was well
 * framed both ways, then report. */
static void h1_complete(struct px_conn *c) {
  struct px_exchange *x = c->x;
  struct px_exchange *next = TAILQ_NEXT(x, clink);
  int alive = http_should_keep_alive(&c->parser) && x->body_flushed && !c->closing;
  /* Bytes after the response belong to the next pipelined exchange, if any;
   * an EOF seen while paused still lets the buffered responses be read. */
  int keep = alive && c->h1_left == 0 && !c->h1_eof;
  h1_remove(c, x);
  c->served++;
  c->h1_msg_done = 0; /* the parser is set up again at the next dispatch */
  if (next && alive) {
    int eof = c->h1_eof; /* reported after the buffered bytes are parsed */
    h1_begin(c, next);
    c->h1_eof = eof;
  } else if (next) {
    char cause[400];
    snprintf(cause, sizeof cause, "%s closed the connection after an earlier response",
             c->host->name);
    h1_resend_queued(c, !http_should_keep_alive(&c->parser), cause);
    px_conn_close(c);
  } else if (keep) {
    px_conn_idle(c);
  } else {
    px_conn_close(c);
  }
  px_x_finish(x, 0, PX_FAIL_NONE, NULL);
}

static void h1_protocol_error(struct px_conn *c, const char *what) {
  struct px_exchange *x = c->x;
  char cause[400];
  snprintf(cause, sizeof cause, "%s sent a bad HTTP/1.1 response: %s", c->host->name, what);
  h1_close_around(c, x, cause);
  px_x_finish(x, CUT_ERR_PROTO, PX_FAIL_PROTOCOL, cause);
}

/* Parses n bytes in place, `extra` more waiting behind them; returns how many
 * were consumed. Stops early on backpressure (h1_paused), a protocol error, a
 * connection being closed, or the exchange being gone. */
static size_t h1_parse(struct px_conn *c, const char *data, size_t n, size_t extra) {
  size_t off = 0;
  while (off < n && !c->closing && c->x && !c->h1_paused) {
    off += http_parser_execute(&c->parser, &h1_settings, data + off, n - off);
    c->h1_left = n - off + extra;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->closing || !c->x)
      break; /* the caller cancelled the exchange from a callback */
    if (e == HPE_PAUSED) {
      if (c->h1_msg_done) {
        http_parser_pause(&c->parser, 0);
        h1_complete(c);
        continue;
      }
      c->h1_paused = 1;
      px_conn_reading(c, 0);
      break;
    }
    if (e != HPE_OK) {
      h1_protocol_error(c, http_errno_description(e));
      break;
    }
  }
  return off;
}

/* After parsing: close on bytes nobody asked for, on a requested close, and
 * deliver an EOF that waited for a paused response. */
static void h1_after_parse(struct px_conn *c, size_t left) {
  if (!c->closing && !c->x && c->state == CONN_READY && left > 0)
    c->closing = 1; /* bytes nobody asked for: the connection is out of sync */
  c->in_io--;
  if (c->closing) {
    px_conn_close(c);
    return;
  }
  if (c->h1_eof && !c->h1_paused)
    px_h1_eof(c, 0);
}

/* Parses what the connection's input buffer holds. */
void px_h1_read(struct px_conn *c) {
  struct evbuffer *in = px_conn_in(c);
  c->in_io++;
  while (!c->closing && c->x && !c->h1_paused) {
    size_t total = evbuffer_get_length(in);
    size_t n = evbuffer_get_contiguous_space(in);
    if (n == 0)
      break;
    const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    size_t parsed = h1_parse(c, data, n, total - n);
    evbuffer_drain(in, parsed);
    if (parsed < n)
      break;
  }
  h1_after_parse(c, evbuffer_get_length(in));
}

#define H1_READ_CHUNK (16u * 1024u)

void px_h1_raw_read(struct px_conn *c) {
  if (c->rin_used) {
    if (evbuffer_get_length(c->rin)) { /* parse what was kept first */
      px_h1_read(c);
      return;
    }
    c->rin_used = 0;
  }
  char buf[H1_READ_CHUNK];
  ssize_t n = recv(c->fd, buf, sizeof buf, 0);
  if (n < 0) {
    if (PX_IO_RETRIABLE(errno))
      return;
    px_h1_eof(c, 1);
    return;
  }
  if (n == 0) {
    px_h1_eof(c, 0);
    return;
  }
  c->in_io++;
  size_t used = h1_parse(c, buf, (size_t)n, 0);
  size_t left = (size_t)n - used;
  if (left && c->x && c->h1_paused && !c->closing) {
    /* Backpressure: keep the rest for the resume. */
    if (evbuffer_add(c->rin, buf + used, left) < 0) {
      c->closing = 1; /* those bytes are lost: the connection is out of step */
      c->close_why = "out of memory keeping a paused response";
    }
    c->rin_used = 1;
    left = 0;
  }
  h1_after_parse(c, left);
}

void px_h1_eof(struct px_conn *c, int error) {
  struct px_exchange *x = c->x;
  if (!x) {
    px_conn_close(c);
    return;
  }
  if (c->h1_paused && !error) {
    c->h1_eof = 1; /* deliver what is buffered first */
    return;
  }
  c->h1_eof = 1;
  if (!error && x->got_response && evbuffer_get_length(px_conn_in(c)) == 0) {
    /* A close-delimited body ends here; anything else ends in an error. */
    c->in_io++;
    http_parser_execute(&c->parser, &h1_settings, NULL, 0);
    c->in_io--;
    if (c->x && c->h1_msg_done) {
      http_parser_pause(&c->parser, 0);
      h1_complete(c);
      return;
    }
    if (!c->x) { /* cancelled from a callback */
      px_conn_close(c);
      return;
    }
  }
  char cause[400];
  snprintf(cause, sizeof cause, "%s closed the connection %s", c->host->name,
           x->got_response ? "mid-response" : "before responding");
  h1_close_around(c, x, cause);
  /* A stale keep-alive connection gives no answer; the request went out, so
   * it is not retried (the rule is: never after bytes were sent), unless it
   * was pipelined behind an answered one (RFC 9112 section 9.3.2). */
  if (x->pipelined && !x->got_response)
    px_x_resend(x, 0, cause);
  else
    px_x_finish(x, CUT_ERR_CLOSED, PX_FAIL_RESET, cause);
}
