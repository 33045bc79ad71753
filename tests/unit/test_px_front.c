/* Unit tests for the client side of the proxy, in memory: a worker's event_base,
 * bufferevent pairs for client connections, an nghttp2 client session (or raw
 * HTTP/1.1 bytes) on one end, and a fake upstream behind the ops table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "common/cut_err.h"
#include "proxy/px_server.h"
#include "proxy/px_server_int.h"

/* ---- a fake upstream: answers from the event loop, honouring PX_PAUSE ---- */

struct px_pool {
  struct event_base *base;
  const char *backend; /* the backend's name */
};

struct px_exchange {
  struct px_pool *pool;
  struct px_request_head head;
  struct px_exchange_cbs cbs;
  void *ud;
  struct evbuffer *reqbody;
  size_t resp_left;      /* /big: body bytes still to send */
  int paused;
  int ended;
  int responded;
  int full;              /* /sink: send_body said FULL, a drain is scheduled */
  size_t sunk;           /* /sink: bytes drained so far */
  struct event *ev;
  struct event *drain_ev;
};

static struct px_request_head g_last_head; /* the last head an exchange received */
static const char *g_last_backend;         /* ... and the backend of its pool */
static int g_cancelled;
static int g_live;

static int fake_pool_new(struct px_pool **out, struct event_base *base,
                         const struct cfg_backend *b, const struct px_pool_opts *o, char *err,
                         size_t errlen) {
  *out = calloc(1, sizeof **out);
  (*out)->base = base;
  (*out)->backend = b->name;
  return 0;
}
static void fake_pool_free(struct px_pool *p) { free(p); }

static void x_free(struct px_exchange *x) {
  px_request_head_clear(&x->head);
  evbuffer_free(x->reqbody);
  event_free(x->ev);
  event_free(x->drain_ev);
  free(x);
  g_live--;
}

static void x_step(evutil_socket_t fd, short what, void *arg) {
  struct px_exchange *x = arg;
  const char *path = x->head.path;
  if (strcmp(path, "/hang") == 0)
    return; /* never answers: the exchange stays open until cancelled */
  if (strcmp(path, "/fail") == 0) {
    x->cbs.on_done(x, CUT_ERR_NET, PX_FAIL_CONNECT, "connect refused by 127.0.0.1:1", 0, x->ud);
    x_free(x);
    return;
  }
  if (!x->responded) {
    x->responded = 1;
    struct px_response_head h = {.status = 200, .content_length = -1};
    px_headers_add(&h.headers, "x-echo-path", 11, path, strlen(path));
    px_headers_add(&h.headers, "connection", 10, "keep-alive", 10);
    char n[32];
    int k = snprintf(n, sizeof n, "%zu", evbuffer_get_length(x->reqbody) + x->sunk);
    px_headers_add(&h.headers, "x-request-bytes", 15, n, (size_t)k);
    int rc = x->cbs.on_response(x, &h, x->ud);
    px_headers_clear(&h.headers);
    assert_int_equal(rc, 0);
    if (strcmp(path, "/big") == 0)
      x->resp_left = 1 << 20;
  }
  if (strcmp(path, "/big") == 0) {
    static uint8_t chunk[16384];
    while (x->resp_left && !x->paused) {
      size_t n = x->resp_left < sizeof chunk ? x->resp_left : sizeof chunk;
      memset(chunk, 'a' + (int)(x->resp_left % 26), n);
      x->resp_left -= n;
      if (x->cbs.on_body(x, chunk, n, x->ud) == PX_PAUSE)
        x->paused = 1;
    }
    if (x->resp_left)
      return; /* resumed later */
  } else {
    /* echo the request body */
    static uint8_t buf[65536];
    int n;
    while ((n = evbuffer_remove(x->reqbody, buf, sizeof buf)) > 0)
      x->cbs.on_body(x, buf, (size_t)n, x->ud);
  }
  if (strcmp(path, "/trailers") == 0) {
    struct px_headers t = {0};
    px_headers_add(&t, "grpc-status", 11, "0", 1);
    x->cbs.on_trailers(x, &t, x->ud);
    px_headers_clear(&t);
  }
  x->cbs.on_done(x, 0, PX_FAIL_NONE, NULL, 1, x->ud);
  x_free(x);
}

/* /sink: the backend takes the queued body slowly, one event at a time */
static void x_drain(evutil_socket_t fd, short what, void *arg) {
  struct px_exchange *x = arg;
  x->sunk += evbuffer_get_length(x->reqbody);
  evbuffer_drain(x->reqbody, evbuffer_get_length(x->reqbody));
  x->full = 0;
  x->cbs.on_request_drain(x, x->ud);
}

static void x_schedule(struct px_exchange *x) {
  struct timeval tv = {0, 0};
  event_add(x->ev, &tv);
}

static int fake_start(struct px_pool *p, const struct px_request_head *head, int has_body,
                      const struct px_exchange_cbs *cbs, void *ud, struct px_exchange **out) {
  struct px_exchange *x = calloc(1, sizeof *x);
  x->pool = p;
  px_request_head_copy(&x->head, head);
  px_request_head_clear(&g_last_head);
  px_request_head_copy(&g_last_head, head);
  g_last_backend = p->backend;
  x->cbs = *cbs;
  x->ud = ud;
  x->reqbody = evbuffer_new();
  x->ev = event_new(p->base, -1, 0, x_step, x);
  x->drain_ev = event_new(p->base, -1, 0, x_drain, x);
  g_live++;
  if (!has_body) {
    x->ended = 1;
    x_schedule(x);
  }
  *out = x;
  return 0;
}

static int fake_send_body(struct px_exchange *x, const uint8_t *d, size_t n) {
  evbuffer_add(x->reqbody, d, n);
  if (strcmp(x->head.path, "/sink") == 0 && evbuffer_get_length(x->reqbody) > 65536) {
    if (!x->full) {
      x->full = 1;
      struct timeval tv = {0, 0};
      event_add(x->drain_ev, &tv);
    }
    return CUT_ERR_FULL;
  }
  return 0;
}

static int fake_end_body(struct px_exchange *x, const struct px_headers *t) {
  if (t && t->n)
    evbuffer_add_printf(x->reqbody, "[%s=%s]", t->v[0].name, t->v[0].value);
  x->ended = 1;
  x_schedule(x);
  return 0;
}

static void fake_resume(struct px_exchange *x) {
  x->paused = 0;
  x_schedule(x);
}

static void fake_cancel(struct px_exchange *x) {
  g_cancelled++;
  x_free(x);
}

static const char *fake_host(const struct px_exchange *x) { return "127.0.0.1:9"; }

static const struct px_upstream_ops fake_ops = {
    fake_pool_new, fake_pool_free, fake_start, fake_send_body,
    fake_end_body, fake_resume,    fake_cancel, fake_host, NULL,
};

static int fake_decide(const struct cfg *cfg, const struct dial_store *store,
                       const struct cfg_route *route, const struct dial_request *req, int64_t now,
                       struct dial_decision *out) {
  memset(out, 0, sizeof *out);
  out->backend_index = route->backend_index;
  out->reason = "default";
  return 0;
}

static size_t fake_format(const struct dial_decision *d, char *buf, size_t len) {
  return (size_t)snprintf(buf, len, "reason=%s", d->reason);
}

static const struct px_decider fake_decider = {fake_decide, fake_format, NULL};

/* ---- fixture: one worker, no listeners ---- */

static struct cfg_backend g_backends[1] = {{.name = "app"}};
static struct cfg_route g_routes[1] = {{.name = "api", .path_prefix = "/", .backend = "app",
                                        .decision_header = 1}};
static struct cfg g_cfg;

struct fx {
  struct px_server *srv;
  struct px_worker *w;
  struct bufferevent *client; /* our end of the pair */
  struct px_client *conn;
};

static int setup(void **state) {
  memset(&g_cfg, 0, sizeof g_cfg);
  g_cfg.backends = g_backends;
  g_cfg.nbackends = 1;
  g_cfg.routes = g_routes;
  g_cfg.nroutes = 1;
  g_cfg.request_id_header = "x-request-id";
  g_cfg.limits.max_concurrent_streams = 100;
  g_cfg.limits.max_header_list_bytes = 8192;
  g_cfg.limits.max_headers = 100;
  g_cfg.limits.idle_timeout_ms = 60000;
  struct fx *f = calloc(1, sizeof *f);
  struct px_server_opts o = {.cfg = &g_cfg, .ops = &fake_ops, .decider = &fake_decider,
                             .workers = 1};
  char err[256] = "";
  assert_int_equal(px_server_new(&f->srv, &o, err, sizeof err), 0);
  f->w = &f->srv->workers[0];
  struct bufferevent *pair[2];
  assert_int_equal(bufferevent_pair_new(f->w->base, 0, pair), 0);
  assert_int_equal(px_client_attach(f->w, pair[0], 0, "127.0.0.1", &f->conn), 0);
  f->client = pair[1];
  bufferevent_enable(f->client, EV_READ | EV_WRITE);
  g_cancelled = 0;
  g_live = 0;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  if (f->client)
    bufferevent_free(f->client);
  px_server_free(f->srv);
  px_request_head_clear(&g_last_head);
  assert_int_equal(g_live, 0);
  free(f);
  return 0;
}

static void spin(struct fx *f, int rounds) {
  for (int i = 0; i < rounds; i++)
    event_base_loop(f->w->base, EVLOOP_NONBLOCK);
}

/* ---- an nghttp2 client on the other end ---- */

struct cstream {
  int32_t id;
  int status;
  char path_echo[128];
  char decision[128];
  char trailer[128];
  size_t body_len;
  size_t req_bytes;
  char body_head[128];
  int closed;
  uint32_t error_code;
  const uint8_t *upload;
  size_t upload_len, upload_off;
};

struct client {
  nghttp2_session *s;
  struct bufferevent *bev;
  struct cstream st[16];
  int n;
};

static struct cstream *cs_find(struct client *c, int32_t id) {
  for (int i = 0; i < c->n; i++)
    if (c->st[i].id == id)
      return &c->st[i];
  return NULL;
}

static int c_on_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *name,
                       size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud) {
  struct cstream *cs = cs_find(ud, fr->hd.stream_id);
  if (!cs)
    return 0;
  char v[128];
  snprintf(v, sizeof v, "%.*s", (int)vl, value);
  if (nl == 7 && !memcmp(name, ":status", 7))
    cs->status = atoi(v);
  else if (nl == 11 && !memcmp(name, "x-echo-path", 11))
    snprintf(cs->path_echo, sizeof cs->path_echo, "%s", v);
  else if (nl == 18 && !memcmp(name, "x-cutover-decision", 18))
    snprintf(cs->decision, sizeof cs->decision, "%s", v);
  else if (nl == 15 && !memcmp(name, "x-request-bytes", 15))
    cs->req_bytes = (size_t)atol(v);
  else if (nl == 11 && !memcmp(name, "grpc-status", 11))
    snprintf(cs->trailer, sizeof cs->trailer, "%s", v);
  else if (nl == 10 && !memcmp(name, "connection", 10))
    fail_msg("hop-by-hop header forwarded to an HTTP/2 client");
  return 0;
}

static int c_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
                     void *ud) {
  struct cstream *cs = cs_find(ud, id);
  if (cs) {
    if (cs->body_len < sizeof cs->body_head - 1) {
      size_t k = n < sizeof cs->body_head - 1 - cs->body_len ? n
                                                             : sizeof cs->body_head - 1 - cs->body_len;
      memcpy(cs->body_head + cs->body_len, d, k);
    }
    cs->body_len += n;
  }
  return 0;
}

static int c_on_close(nghttp2_session *s, int32_t id, uint32_t ec, void *ud) {
  struct cstream *cs = cs_find(ud, id);
  if (cs) {
    cs->closed = 1;
    cs->error_code = ec;
  }
  return 0;
}

static ssize_t c_upload(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud) {
  struct cstream *cs = src->ptr;
  size_t n = cs->upload_len - cs->upload_off;
  if (n > len)
    n = len;
  memcpy(buf, cs->upload + cs->upload_off, n);
  cs->upload_off += n;
  if (cs->upload_off == cs->upload_len)
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static void client_init(struct client *c, struct bufferevent *bev) {
  memset(c, 0, sizeof *c);
  c->bev = bev;
  nghttp2_session_callbacks *cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, c_on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_on_close);
  nghttp2_session_client_new(&c->s, cb, c);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, NULL, 0);
}

static void client_io(struct client *c) {
  const uint8_t *d;
  ssize_t n;
  while ((n = nghttp2_session_mem_send(c->s, &d)) > 0)
    bufferevent_write(c->bev, d, (size_t)n);
  struct evbuffer *in = bufferevent_get_input(c->bev);
  size_t len = evbuffer_get_length(in);
  if (len) {
    uint8_t *p = evbuffer_pullup(in, -1);
    ssize_t r = nghttp2_session_mem_recv(c->s, p, len);
    assert_true(r >= 0);
    evbuffer_drain(in, len);
  }
  while ((n = nghttp2_session_mem_send(c->s, &d)) > 0)
    bufferevent_write(c->bev, d, (size_t)n);
}

static struct cstream *client_request(struct client *c, const char *method, const char *path,
                                      const uint8_t *body, size_t blen, const char *xhdr) {
  nghttp2_nv nv[5] = {
      {(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
      {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
      {(uint8_t *)":authority", (uint8_t *)"example.com", 10, 11, 0},
      {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
      {(uint8_t *)"x-test", (uint8_t *)(xhdr ? xhdr : ""), 6, xhdr ? strlen(xhdr) : 0, 0},
  };
  struct cstream *cs = &c->st[c->n++];
  cs->upload = body;
  cs->upload_len = blen;
  nghttp2_data_provider dp = {.source.ptr = cs, .read_callback = c_upload};
  cs->id = nghttp2_submit_request(c->s, NULL, nv, 5, body ? &dp : NULL, NULL);
  assert_true(cs->id > 0);
  return cs;
}

static void run_until_closed(struct fx *f, struct client *c, struct cstream *cs) {
  for (int i = 0; i < 5000 && !cs->closed; i++) {
    client_io(c);
    spin(f, 2);
  }
  assert_true(cs->closed);
}

static void test_px_front_h2_get(void **state) {
  struct fx *f = *state;
  struct client c;
  client_init(&c, f->client);
  struct cstream *cs = client_request(&c, "GET", "/hello?x=1", NULL, 0, "keep");
  run_until_closed(f, &c, cs);
  assert_int_equal(cs->status, 200);
  assert_string_equal(cs->path_echo, "/hello?x=1");
  assert_string_equal(cs->decision, "reason=default");
  assert_int_equal(f->conn->proto, PX_PROTO_H2);
  /* what the upstream saw */
  assert_string_equal(g_last_head.authority, "example.com");
  assert_string_equal(px_headers_get(&g_last_head.headers, "x-forwarded-for")->value,
                      "127.0.0.1");
  assert_string_equal(px_headers_get(&g_last_head.headers, "via")->value, "2 cutover");
  assert_int_equal(px_headers_get(&g_last_head.headers, "x-request-id")->valuelen, 36);
  assert_string_equal(px_headers_get(&g_last_head.headers, "x-test")->value, "keep");
  nghttp2_session_del(c.s);
}

static void test_px_front_h2_upload_and_big_download(void **state) {
  struct fx *f = *state;
  struct client c;
  client_init(&c, f->client);
  /* larger than the stream window (256 KiB) and the connection window's first grant:
   * completes only when the proxy consumes what the upstream took */
  size_t n = 3 * 1024 * 1024 + 7;
  uint8_t *body = malloc(n);
  memset(body, 'z', n);
  struct cstream *up = client_request(&c, "POST", "/upload", body, n, NULL);
  struct cstream *big = client_request(&c, "GET", "/big", NULL, 0, NULL);
  struct cstream *tr = client_request(&c, "GET", "/trailers", NULL, 0, NULL);
  struct cstream *sk = client_request(&c, "POST", "/sink", body, n, NULL);
  run_until_closed(f, &c, up);
  run_until_closed(f, &c, big);
  run_until_closed(f, &c, tr);
  run_until_closed(f, &c, sk);
  assert_int_equal(sk->status, 200);
  assert_int_equal(sk->body_len, 0);
  assert_int_equal(sk->req_bytes, n); /* all of it, through FULL / drain / consume */
  assert_int_equal(up->status, 200);
  assert_int_equal(up->body_len, n);
  assert_int_equal(big->status, 200);
  assert_int_equal(big->body_len, 1 << 20);
  assert_int_equal(big->error_code, 0);
  assert_string_equal(tr->trailer, "0");
  free(body);
  nghttp2_session_del(c.s);
}

static void test_px_front_h2_errors(void **state) {
  struct fx *f = *state;
  struct client c;
  client_init(&c, f->client);
  struct cstream *fl = client_request(&c, "GET", "/fail", NULL, 0, NULL);
  run_until_closed(f, &c, fl);
  assert_int_equal(fl->status, 502);
  assert_non_null(strstr(fl->body_head, "connect refused by 127.0.0.1:1"));
  /* a header list over the limit resets only that stream */
  char *huge = malloc(9000);
  memset(huge, 'h', 8999);
  huge[8999] = '\0';
  struct cstream *hh = client_request(&c, "GET", "/x", NULL, 0, huge);
  run_until_closed(f, &c, hh);
  assert_int_equal(hh->status, 0);
  assert_int_not_equal(hh->error_code, 0);
  struct cstream *ok = client_request(&c, "GET", "/after", NULL, 0, NULL);
  run_until_closed(f, &c, ok);
  assert_int_equal(ok->status, 200);
  free(huge);
  nghttp2_session_del(c.s);
}

static void test_px_front_h2_client_reset(void **state) {
  struct fx *f = *state;
  struct client c;
  client_init(&c, f->client);
  /* a body that never ends: the exchange stays open until the client resets */
  static uint8_t one[1] = {'x'};
  struct cstream *cs = client_request(&c, "POST", "/slow", one, 1, NULL);
  cs->upload_len = 1;
  client_io(&c);
  spin(f, 5);
  nghttp2_submit_rst_stream(c.s, NGHTTP2_FLAG_NONE, cs->id, NGHTTP2_CANCEL);
  run_until_closed(f, &c, cs);
  spin(f, 5);
  assert_int_equal(g_live, 0);
  nghttp2_session_del(c.s);
}

static void test_px_front_h2_garbage_closes(void **state) {
  struct fx *f = *state;
  bufferevent_write(f->client, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
  /* a frame header announcing a DATA frame on stream 0: a connection error */
  static const uint8_t bad[] = {0, 0, 4, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  bufferevent_write(f->client, bad, sizeof bad);
  spin(f, 20);
  /* the GOAWAY (PROTOCOL_ERROR) was written; the connection lingers, reading
   * and discarding, so a peer still sending does not get it reset away */
  struct evbuffer *in = bufferevent_get_input(f->client);
  size_t len = evbuffer_get_length(in);
  uint8_t *p = evbuffer_pullup(in, -1);
  uint32_t goaway_code = 0xffffffff;
  for (size_t o = 0; o + 9 <= len;) {
    size_t flen = (size_t)p[o] << 16 | (size_t)p[o + 1] << 8 | p[o + 2];
    if (p[o + 3] == 7 && o + 9 + 8 <= len)
      goaway_code = (uint32_t)p[o + 13] << 24 | (uint32_t)p[o + 14] << 16 |
                    (uint32_t)p[o + 15] << 8 | p[o + 16];
    o += 9 + flen;
  }
  assert_int_equal(goaway_code, NGHTTP2_PROTOCOL_ERROR);
  assert_int_equal(f->w->nconns, 1);
  bufferevent_write(f->client, bad, sizeof bad); /* more input: read and dropped */
  spin(f, 20);
  assert_int_equal(f->w->nconns, 1);
  bufferevent_flush(f->client, EV_WRITE, BEV_FINISHED); /* the peer closes: the connection goes */
  spin(f, 20);
  assert_int_equal(f->w->nconns, 0);
}

static void test_px_front_h2_body_limit(void **state) {
  struct fx *f = *state;
  g_cfg.limits.max_request_body_bytes = 100000;
  struct client c;
  client_init(&c, f->client);
  size_t n = 300000;
  uint8_t *body = calloc(1, n);
  struct cstream *cs = client_request(&c, "POST", "/upload", body, n, NULL);
  run_until_closed(f, &c, cs);
  assert_int_equal(cs->status, 413);
  assert_non_null(strstr(cs->body_head, "too large"));
  struct cstream *ok = client_request(&c, "POST", "/upload", body, 1000, NULL);
  run_until_closed(f, &c, ok);
  assert_int_equal(ok->status, 200);
  assert_int_equal(ok->req_bytes, 1000);
  free(body);
  nghttp2_session_del(c.s);
  g_cfg.limits.max_request_body_bytes = 0;
}

/* ---- HTTP/1.1 ---- */

static char *read_all(struct fx *f, size_t want_min, const char *until) {
  struct evbuffer *in = bufferevent_get_input(f->client);
  for (int i = 0; i < 2000; i++) {
    spin(f, 1);
    size_t n = evbuffer_get_length(in);
    if (n >= want_min) {
      char *s = (char *)evbuffer_pullup(in, -1);
      if (!until || memmem(s, n, until, strlen(until)))
        break;
    }
  }
  size_t n = evbuffer_get_length(in);
  char *out = malloc(n + 1);
  evbuffer_remove(in, out, n);
  out[n] = '\0';
  return out;
}

static void test_px_front_h1_pipelined(void **state) {
  struct fx *f = *state;
  const char *req = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                    "POST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                    "GET /three HTTP/1.1\r\nHost: a\r\n\r\n";
  bufferevent_write(f->client, req, strlen(req));
  char *out = read_all(f, 1, "x-echo-path: /three");
  char *p1 = strstr(out, "x-echo-path: /one");
  char *p2 = strstr(out, "x-echo-path: /two");
  char *p3 = strstr(out, "x-echo-path: /three");
  assert_non_null(p1);
  assert_non_null(p2);
  assert_non_null(p3);
  assert_true(p1 < p2 && p2 < p3);
  assert_non_null(strstr(out, "x-request-bytes: 11"));
  assert_non_null(strstr(out, "hello world"));
  assert_null(strstr(out, "keep-alive")); /* hop-by-hop from the upstream removed */
  assert_non_null(strstr(out, "transfer-encoding: chunked"));
  assert_string_equal(px_headers_get(&g_last_head.headers, "via")->value, "1.1 cutover");
  assert_int_equal(f->conn->proto, PX_PROTO_H1);
  free(out);
}

static void test_px_front_h1_errors_and_close(void **state) {
  struct fx *f = *state;
  const char *req = "POST /fail HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                    "Expect: 100-continue\r\n\r\n";
  bufferevent_write(f->client, req, strlen(req));
  char *out = read_all(f, 1, "100 Continue");
  assert_non_null(strstr(out, "HTTP/1.1 100 Continue\r\n\r\n"));
  free(out);
  bufferevent_write(f->client, "abc", 3);
  out = read_all(f, 1, "connect refused");
  assert_non_null(strstr(out, "HTTP/1.1 502 Bad Gateway"));
  assert_non_null(strstr(out, "upstream connect: connect refused by 127.0.0.1:1"));
  free(out);
}

static void test_px_front_h1_http10_and_bad(void **state) {
  struct fx *f = *state;
  const char *req = "GET /old HTTP/1.0\r\n\r\n";
  bufferevent_write(f->client, req, strlen(req));
  char *out = read_all(f, 1, "/old");
  assert_non_null(strstr(out, "HTTP/1.0 200 OK"));
  assert_non_null(strstr(out, "connection: close"));
  assert_null(strstr(out, "chunked"));
  free(out);
  spin(f, 10);
  assert_int_equal(f->w->nconns, 0); /* closed after the close-delimited body */
}

static void test_px_front_h1_body_limit(void **state) {
  struct fx *f = *state;
  g_cfg.limits.max_request_body_bytes = 10;
  const char *req = "POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n"
                    "01234567890123456789";
  bufferevent_write(f->client, req, strlen(req));
  char *out = read_all(f, 1, "too large");
  assert_non_null(strstr(out, "HTTP/1.1 413 Content Too Large"));
  assert_non_null(strstr(out, "connection: close"));
  free(out);
  /* the connection lingers, discarding what the client still sends, until it closes */
  spin(f, 10);
  assert_int_equal(f->w->nconns, 1);
  assert_true(f->conn->lingering);
  bufferevent_write(f->client, "more body", 9);
  spin(f, 10);
  assert_int_equal(f->w->nconns, 1);
  assert_int_equal(evbuffer_get_length(bufferevent_get_input(f->client)), 0);
  bufferevent_flush(f->client, EV_WRITE, BEV_FINISHED);
  spin(f, 10);
  assert_int_equal(f->w->nconns, 0);
  g_cfg.limits.max_request_body_bytes = 0;
}

static void test_px_front_h1_bad_request(void **state) {
  struct fx *f = *state;
  const char *req = "GET / HTTP/1.1\r\nHost a\r\n\r\n";
  bufferevent_write(f->client, req, strlen(req));
  char *out = read_all(f, 1, "\r\n\r\n");
  assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request"));
  free(out);
  spin(f, 10);
  assert_int_equal(f->w->nconns, 1); /* lingering */
  /* a client that goes on sending is cut off after PX_LINGER_BYTES */
  static char junk[65536];
  memset(junk, 'j', sizeof junk);
  size_t sent = 0;
  while (f->w->nconns == 1 && sent < 2 * (size_t)PX_LINGER_BYTES) {
    bufferevent_write(f->client, junk, sizeof junk);
    sent += sizeof junk;
    spin(f, 2);
  }
  assert_int_equal(f->w->nconns, 0);
  assert_true(sent > PX_LINGER_BYTES);
}

/* ---- HTTP/1.1 Upgrade: h2c ---- */

static void b64url(const uint8_t *p, size_t n, char *out) {
  static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                 (i + 2 < n ? p[i + 2] : 0);
    out[o++] = a[v >> 18 & 63];
    out[o++] = a[v >> 12 & 63];
    if (i + 1 < n)
      out[o++] = a[v >> 6 & 63];
    if (i + 2 < n)
      out[o++] = a[v & 63];
  }
  out[o] = '\0';
}

static void test_px_front_h2c_upgrade(void **state) {
  struct fx *f = *state;
  struct client c;
  client_init(&c, f->client);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                                 {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
  uint8_t payload[32];
  ssize_t plen = nghttp2_pack_settings_payload(payload, sizeof payload, iv, 2);
  assert_true(plen == 12);
  char settings[32];
  b64url(payload, (size_t)plen, settings);
  assert_int_equal(nghttp2_session_upgrade2(c.s, payload, (size_t)plen, 0, NULL), 0);
  struct cstream *one = &c.st[c.n++];
  one->id = 1;
  char req[512];
  snprintf(req, sizeof req,
           "GET /up?x=1 HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           "Upgrade: h2c\r\nHTTP2-Settings: %s\r\nx-request-id: rid-7\r\n\r\n",
           settings);
  bufferevent_write(f->client, req, strlen(req));
  /* the 101 comes first, then HTTP/2 (left in the input for the client session) */
  const char *want = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
  struct evbuffer *in = bufferevent_get_input(f->client);
  for (int i = 0; i < 200 && evbuffer_get_length(in) < strlen(want); i++)
    spin(f, 1);
  assert_true(evbuffer_get_length(in) >= strlen(want));
  assert_memory_equal(evbuffer_pullup(in, (ssize_t)strlen(want)), want, strlen(want));
  evbuffer_drain(in, strlen(want));
  assert_int_equal(f->conn->proto, PX_PROTO_H2);
  run_until_closed(f, &c, one);
  assert_int_equal(one->status, 200);
  assert_string_equal(one->path_echo, "/up?x=1");
  assert_string_equal(px_headers_get(&g_last_head.headers, "x-request-id")->value, "rid-7");
  assert_string_equal(px_headers_get(&g_last_head.headers, "x-forwarded-for")->value,
                      "127.0.0.1");
  assert_null(px_headers_get(&g_last_head.headers, "upgrade"));
  assert_null(px_headers_get(&g_last_head.headers, "http2-settings"));
  assert_null(px_headers_get(&g_last_head.headers, "connection"));
  /* the connection goes on as HTTP/2 */
  struct cstream *three = client_request(&c, "GET", "/after", NULL, 0, NULL);
  assert_int_equal(three->id, 3);
  run_until_closed(f, &c, three);
  assert_int_equal(three->status, 200);
  assert_string_equal(three->path_echo, "/after");
  nghttp2_session_del(c.s);
}


static void test_px_front_header_timeout(void **state) {
  struct fx *f = *state;
  /* a connection that never sends a request is closed after header_timeout */
  struct px_client *c = NULL;
  struct bufferevent *pair[2];
  g_cfg.limits.header_timeout_ms = 50;
  assert_int_equal(bufferevent_pair_new(f->w->base, 0, pair), 0);
  assert_int_equal(px_client_attach(f->w, pair[0], 0, "127.0.0.1", &c), 0);
  assert_int_equal(f->w->nconns, 2);
  uint64_t t0 = px_now_ns();
  while (f->w->nconns == 2 && px_now_ns() - t0 < 2000000000ull)
    event_base_loop(f->w->base, EVLOOP_ONCE);
  assert_int_equal(f->w->nconns, 1);
  assert_true(px_now_ns() - t0 >= 40000000ull);
  bufferevent_free(pair[1]);
  g_cfg.limits.header_timeout_ms = 0;
}

static void test_px_front_h1_partial_head(void **state) {
  struct fx *f = *state;
  /* a partial head then silence: the header timeout still applies (no slowloris) */
  struct px_client *c = NULL;
  struct bufferevent *pair[2];
  g_cfg.limits.header_timeout_ms = 50;
  assert_int_equal(bufferevent_pair_new(f->w->base, 0, pair), 0);
  assert_int_equal(px_client_attach(f->w, pair[0], 0, "127.0.0.1", &c), 0);
  bufferevent_enable(pair[1], EV_READ | EV_WRITE);
  bufferevent_write(pair[1], "GET /x HTTP/1.1\r\nHo", 19);
  uint64_t t0 = px_now_ns();
  while (f->w->nconns == 2 && px_now_ns() - t0 < 2000000000ull)
    event_base_loop(f->w->base, EVLOOP_ONCE);
  assert_int_equal(f->w->nconns, 1);
  bufferevent_free(pair[1]);
  /* a partial head then EOF: closed at once */
  g_cfg.limits.header_timeout_ms = 0;
  struct px_client *c2 = NULL;
  assert_int_equal(bufferevent_pair_new(f->w->base, 0, pair), 0);
  assert_int_equal(px_client_attach(f->w, pair[0], 0, "127.0.0.1", &c2), 0);
  bufferevent_enable(pair[1], EV_READ | EV_WRITE);
  bufferevent_write(pair[1], "GET /x HTTP/1.1\r\nHo", 19);
  spin(f, 5);
  bufferevent_flush(pair[1], EV_WRITE, BEV_FINISHED); /* EOF to the proxy's end */
  spin(f, 5);
  assert_int_equal(f->w->nconns, 1);
  bufferevent_free(pair[1]);
}

/* Malformed HTTP2-Settings: 400 over HTTP/1.1, then a lingering close. */
static void test_px_front_h2c_bad_settings(void **state) {
  struct fx *f = *state;
  const char *req = "GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                    "Upgrade: h2c\r\nHTTP2-Settings: AAMAAA\r\n\r\n"
                    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  bufferevent_write(f->client, req, strlen(req));
  char *out = read_all(f, 1, "settings\n");
  assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request\r\n"));
  assert_non_null(strstr(out, "malformed HTTP2-Settings header: not a whole number of settings"));
  assert_null(strstr(out, "101"));
  free(out);
  spin(f, 5);
  assert_int_equal(f->conn->proto, PX_PROTO_H1);
  assert_true(f->conn->lingering);
  assert_null(g_last_head.method); /* nothing was forwarded */
}

/* No switch on TLS connections, for requests with a body, or for HTTP/1.0:
 * the request is answered over HTTP/1.1 as if no upgrade had been asked. */
static void test_px_front_h2c_declined(void **state) {
  struct fx *f = *state;
  const char *up = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                   "HTTP2-Settings: AAMAAABkAARAAAAA\r\n";
  char req[512];
  snprintf(req, sizeof req,
           "POST /body HTTP/1.1\r\nHost: a\r\n%sContent-Length: 3\r\n\r\nabc"
           "GET /old HTTP/1.0\r\n%s\r\n",
           up, up);
  bufferevent_write(f->client, req, strlen(req));
  char *out = read_all(f, 1, "x-echo-path: /old");
  assert_null(strstr(out, "101 Switching"));
  assert_non_null(strstr(out, "x-echo-path: /body"));
  assert_non_null(strstr(out, "x-request-bytes: 3"));
  free(out);
  spin(f, 5);
  assert_int_equal(f->w->nconns, 0); /* closed after the HTTP/1.0 response, never upgraded */
  /* a TLS connection (ALPN decides there) */
  struct px_client *t = NULL;
  struct bufferevent *pair[2];
  assert_int_equal(bufferevent_pair_new(f->w->base, 0, pair), 0);
  assert_int_equal(px_client_attach(f->w, pair[0], 1, "127.0.0.1", &t), 0);
  bufferevent_enable(pair[1], EV_READ | EV_WRITE);
  snprintf(req, sizeof req, "GET /tls HTTP/1.1\r\nHost: a\r\n%s\r\n", up);
  bufferevent_write(pair[1], req, strlen(req));
  struct evbuffer *in = bufferevent_get_input(pair[1]);
  for (int i = 0; i < 200 && evbuffer_search(in, "/tls", 4, NULL).pos < 0; i++)
    spin(f, 1);
  size_t n = evbuffer_get_length(in);
  char *p = (char *)evbuffer_pullup(in, -1);
  assert_true(n > 0);
  assert_non_null(memmem(p, n, "HTTP/1.1 200 OK", 15));
  assert_null(memmem(p, n, "101 Switching", 13));
  assert_int_equal(t->proto, PX_PROTO_H1);
  bufferevent_free(pair[1]);
  spin(f, 5);
}

/* A reload gives the worker a new generation at once; a request in flight
 * keeps the old one (and its pools) until it ends; the old one is freed on
 * a tick after that; a listener change is refused. */
static void test_px_front_reload_generations(void **state) {
  struct fx *f = *state;
  static struct cfg_backend be2[2] = {{.name = "app"}, {.name = "new"}};
  static struct cfg_route rt2[1] = {{.name = "api", .path_prefix = "/", .backend = "new",
                                     .backend_index = 1}};
  /* static: the worker's current generation still points at it in teardown */
  static struct cfg cfg2;
  cfg2 = g_cfg;
  cfg2.backends = be2;
  cfg2.nbackends = 2;
  cfg2.routes = rt2;
  /* grace after the last request: the shadow timeout (0 here) + 1 s */
  struct client c;
  client_init(&c, f->client);
  struct cstream *slow = client_request(&c, "GET", "/hang", NULL, 0, NULL);
  client_io(&c);
  spin(f, 5);
  assert_string_equal(g_last_backend, "app");
  uint64_t id = 0;
  char err[256] = "";
  assert_int_equal(px_server_reload(f->srv, &cfg2, NULL, NULL, &id, err, sizeof err), 0);
  assert_int_equal(id, 1);
  spin(f, 5);
  assert_int_equal(f->w->gen->id, 1);
  assert_ptr_equal(f->w->cfg, &cfg2);
  assert_non_null(f->w->old_gens);
  assert_int_equal(f->w->old_gens->refs, 1);
  assert_int_equal(px_server_oldest_gen(f->srv), 0);
  /* the next request takes the new route and backend */
  struct cstream *cs = client_request(&c, "GET", "/next", NULL, 0, NULL);
  run_until_closed(f, &c, cs);
  assert_int_equal(cs->status, 200);
  assert_string_equal(g_last_backend, "new");
  /* the old request ends: its generation goes after the grace, on a tick */
  nghttp2_submit_rst_stream(c.s, NGHTTP2_FLAG_NONE, slow->id, NGHTTP2_CANCEL);
  run_until_closed(f, &c, slow);
  assert_int_equal(f->w->old_gens->refs, 0);
  struct timeval t = {2, 300000};
  event_base_loopexit(f->w->base, &t);
  event_base_dispatch(f->w->base);
  assert_null(f->w->old_gens);
  assert_int_equal(px_server_oldest_gen(f->srv), 1);
  /* listeners cannot change on reload */
  struct cfg_listener l = {.name = "plain", .listen = {.host = "127.0.0.1", .port = 1}};
  struct cfg cfg3 = cfg2;
  cfg3.listeners = &l;
  cfg3.nlisteners = 1;
  assert_int_equal(px_server_reload(f->srv, &cfg3, NULL, NULL, NULL, err, sizeof err),
                   CUT_ERR_INVALID);
  assert_non_null(strstr(err, "restart"));
  nghttp2_session_del(c.s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_px_front_h2_get, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h2_upload_and_big_download, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h2_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h2_client_reset, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h2_garbage_closes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_reload_generations, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h1_pipelined, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h1_errors_and_close, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h1_http10_and_bad, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h1_bad_request, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h2_body_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h1_body_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_header_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h1_partial_head, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h2c_upgrade, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h2c_bad_settings, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_front_h2c_declined, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
