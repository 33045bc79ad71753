/* Unit tests for proxy/px_upstream: real exchanges over loopback against in-process backends
 * (libevent's evhttp, a scripted raw TCP server, and a small nghttp2 server, cleartext or TLS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <unistd.h>

#include "common/cut_err.h"
#include "proxy/px_upstream.h"
#include "proxy/px_upstream_int.h"

/* ------------------------------------------------------------------ harness */

static struct event_base *g_base;
static int g_outstanding;

/* Out-of-memory and refusal injection: this test is linked with
 * -Wl,--wrap for both (tests/CMakeLists.txt), so the core library's calls
 * come here and fail while the counter lasts. */
static int g_fail_reserve, g_fail_submit, g_fail_send, g_fail_add, g_fail_calloc;
void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size) {
  if (g_fail_calloc > 0) {
    g_fail_calloc--;
    return NULL;
  }
  return __real_calloc(n, size);
}
int __real_evbuffer_add(struct evbuffer *buf, const void *data, size_t len);
int __wrap_evbuffer_add(struct evbuffer *buf, const void *data, size_t len);
int __wrap_evbuffer_add(struct evbuffer *buf, const void *data, size_t len) {
  if (g_fail_add > 0) {
    g_fail_add--;
    return -1;
  }
  return __real_evbuffer_add(buf, data, len);
}
int __real_evbuffer_reserve_space(struct evbuffer *buf, ev_ssize_t size,
                                  struct evbuffer_iovec *vec, int n_vec);
int __wrap_evbuffer_reserve_space(struct evbuffer *buf, ev_ssize_t size,
                                  struct evbuffer_iovec *vec, int n_vec);
int __wrap_evbuffer_reserve_space(struct evbuffer *buf, ev_ssize_t size,
                                  struct evbuffer_iovec *vec, int n_vec) {
  if (g_fail_reserve > 0) {
    g_fail_reserve--;
    return -1;
  }
  return __real_evbuffer_reserve_space(buf, size, vec, n_vec);
}
int32_t __real_nghttp2_submit_request(nghttp2_session *s, const nghttp2_priority_spec *pri,
                                      const nghttp2_nv *nva, size_t nvlen,
                                      const nghttp2_data_provider *prd, void *ud);
int32_t __wrap_nghttp2_submit_request(nghttp2_session *s, const nghttp2_priority_spec *pri,
                                      const nghttp2_nv *nva, size_t nvlen,
                                      const nghttp2_data_provider *prd, void *ud);
int32_t __wrap_nghttp2_submit_request(nghttp2_session *s, const nghttp2_priority_spec *pri,
                                      const nghttp2_nv *nva, size_t nvlen,
                                      const nghttp2_data_provider *prd, void *ud) {
  if (g_fail_submit > 0) {
    g_fail_submit--;
    return NGHTTP2_ERR_NOMEM;
  }
  return __real_nghttp2_submit_request(s, pri, nva, nvlen, prd, ud);
}
ssize_t __real_nghttp2_session_mem_send(nghttp2_session *s, const uint8_t **data);
ssize_t __wrap_nghttp2_session_mem_send(nghttp2_session *s, const uint8_t **data);
ssize_t __wrap_nghttp2_session_mem_send(nghttp2_session *s, const uint8_t **data) {
  if (g_fail_send > 0) {
    g_fail_send--;
    return NGHTTP2_ERR_NOMEM;
  }
  return __real_nghttp2_session_mem_send(s, data);
}

struct res {
  int done, err, got_response, status;
  enum px_fail fail;
  char cause[256];
  size_t body_len;
  int pause_on_first;   /* on_body returns PX_PAUSE the first time */
  int fail_keep;        /* ... and the next evbuffer_add (keeping the rest) fails */
  int paused;
  int ntrailers;
  char trailer[64];
  char body[256];       /* first bytes of the body */
  struct px_exchange *x;
};

static int on_response_cb(struct px_exchange *x, const struct px_response_head *head,
                          void *user_data) {
  struct res *r = user_data;
  r->status = head->status;
  return 0;
}

static int on_body_cb(struct px_exchange *x, const uint8_t *data, size_t len, void *user_data) {
  struct res *r = user_data;
  if (r->body_len < sizeof r->body - 1) {
    size_t n = len < sizeof r->body - 1 - r->body_len ? len : sizeof r->body - 1 - r->body_len;
    memcpy(r->body + r->body_len, data, n);
  }
  r->body_len += len;
  if (r->pause_on_first && !r->paused) {
    r->paused = 1;
    if (r->fail_keep)
      g_fail_add = 1;
    return PX_PAUSE;
  }
  return 0;
}

static int on_trailers_cb(struct px_exchange *x, const struct px_headers *t, void *user_data) {
  struct res *r = user_data;
  r->ntrailers = (int)t->n;
  if (t->n)
    snprintf(r->trailer, sizeof r->trailer, "%s=%s", t->v[0].name, t->v[0].value);
  return 0;
}

static void on_done_cb(struct px_exchange *x, int err, enum px_fail fail, const char *cause,
                       int got_response, void *user_data) {
  struct res *r = user_data;
  r->done = 1;
  r->err = err;
  r->fail = fail;
  r->got_response = got_response;
  r->x = NULL;
  snprintf(r->cause, sizeof r->cause, "%s", cause ? cause : "");
  if (--g_outstanding <= 0)
    event_base_loopbreak(g_base);
}

static const struct px_exchange_cbs g_cbs = {on_response_cb, on_body_cb, on_trailers_cb,
                                             on_done_cb, NULL, 0};

static void safety_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what, (void)arg;
  event_base_loopbreak(g_base);
}

/* Runs the loop until every started exchange is done (or 5 s passed). */
static void run_all(int n) {
  g_outstanding = n;
  struct event *t = evtimer_new(g_base, safety_cb, NULL);
  struct timeval tv = {5, 0};
  evtimer_add(t, &tv);
  event_base_dispatch(g_base);
  event_free(t);
  assert_true(g_outstanding <= 0);
}

static void run_for_ms(int ms) {
  struct event *t = evtimer_new(g_base, safety_cb, NULL);
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(t, &tv);
  event_base_dispatch(g_base);
  event_free(t);
}

static struct cfg_addr g_addrs[4];
static struct cfg_backend g_be;

static void backend_init(enum cfg_protocol proto, int nports, const int *ports) {
  memset(&g_be, 0, sizeof g_be);
  memset(g_addrs, 0, sizeof g_addrs);
  for (int i = 0; i < nports; i++) {
    g_addrs[i].host = "127.0.0.1";
    g_addrs[i].port = (uint16_t)ports[i];
  }
  g_be.name = "test";
  g_be.hosts = g_addrs;
  g_be.nhosts = (size_t)nports;
  g_be.protocol = proto;
  g_be.connect_timeout_ms = 1000;
  g_be.timeout_ms = 3000;
  g_be.idle_timeout_ms = 60000;
  g_be.max_connections = 8;
  g_be.max_streams = 100;
  g_be.retries = 1;
  g_be.tls.verify = 1;
}

static struct px_pool *pool_new(void) {
  struct px_pool *p = NULL;
  char err[256] = "";
  struct px_pool_opts o = {.body_watermark = 64 * 1024};
  int rv = px_pool_new(&p, g_base, &g_be, &o, err, sizeof err);
  if (rv)
    fprintf(stderr, "px_pool_new: %s\n", err);
  assert_int_equal(rv, 0);
  return p;
}

static void req_init(struct px_request_head *h, const char *method, const char *path) {
  memset(h, 0, sizeof *h);
  h->method = (char *)method;
  h->scheme = "http";
  h->authority = "backend.test";
  h->path = (char *)path;
  h->content_length = -1;
}

static struct px_exchange *start(struct px_pool *p, const char *method, const char *path,
                                 int has_body, struct res *r) {
  struct px_request_head h;
  req_init(&h, method, path);
  struct px_exchange *x = NULL;
  assert_int_equal(px_exchange_start(p, &h, has_body, &g_cbs, r, &x), 0);
  r->x = x;
  return x;
}

static int bound_port(evutil_socket_t fd) {
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  getsockname(fd, (struct sockaddr *)&sin, &len);
  return ntohs(sin.sin_port);
}

/* A port where nothing listens: bound then closed. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(fd, (struct sockaddr *)&sin, sizeof sin);
  int port = bound_port(fd);
  close(fd);
  return port;
}

/* A port where connecting hangs: a listener with a backlog of 0 that never
 * accepts, its one queue slot taken by fds[1]. The kernel drops further SYNs,
 * so a connect stays pending (for about a second before the first retry).
 * The caller closes fds[0] and fds[1]. */
static int stuck_port(int fds[2]) {
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fds[0], (struct sockaddr *)&sin, sizeof sin), 0);
  assert_int_equal(listen(fds[0], 0), 0);
  int port = bound_port(fds[0]);
  sin.sin_port = htons((uint16_t)port);
  fds[1] = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(connect(fds[1], (struct sockaddr *)&sin, sizeof sin), 0);
  return port;
}

/* ------------------------------------------------------------------ evhttp backend */

struct h1srv {
  struct evhttp *http;
  int port;
  int requests;
  struct evhttp_connection *conns[64];
  int nconns;
  size_t body_bytes;
  struct evhttp_request *held;
};
static struct h1srv g_h1;

static void h1_gencb(struct evhttp_request *req, void *arg) {
  struct h1srv *s = arg;
  s->requests++;
  struct evhttp_connection *ec = evhttp_request_get_connection(req);
  int seen = 0;
  for (int i = 0; i < s->nconns; i++)
    seen |= s->conns[i] == ec;
  if (!seen && s->nconns < 64)
    s->conns[s->nconns++] = ec;
  const char *uri = evhttp_request_get_uri(req);
  struct evbuffer *out = evbuffer_new();
  if (strcmp(uri, "/hello") == 0) {
    evbuffer_add_printf(out, "hello from h1");
    evhttp_send_reply(req, 200, "OK", out);
  } else if (strcmp(uri, "/chunked") == 0) {
    evhttp_send_reply_start(req, 200, "OK");
    for (int i = 0; i < 3; i++) {
      evbuffer_add_printf(out, "part%d;", i);
      evhttp_send_reply_chunk(req, out);
    }
    evhttp_send_reply_end(req);
  } else if (strcmp(uri, "/big") == 0) {
    static char blk[64 * 1024];
    memset(blk, 'b', sizeof blk);
    for (int i = 0; i < 128; i++) /* 8 MiB */
      evbuffer_add(out, blk, sizeof blk);
    evhttp_send_reply(req, 200, "OK", out);
  } else if (strcmp(uri, "/echo") == 0) {
    size_t n = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    s->body_bytes = n;
    evbuffer_add_printf(out, "%zu", n);
    evhttp_send_reply(req, 200, "OK", out);
  } else if (strcmp(uri, "/slow") == 0) {
    s->held = req; /* never answered */
  } else {
    evhttp_send_reply(req, 404, "Not Found", out);
  }
  evbuffer_free(out);
}

static void h1srv_start(void) {
  memset(&g_h1, 0, sizeof g_h1);
  g_h1.http = evhttp_new(g_base);
  evhttp_set_max_body_size(g_h1.http, 64 * 1024 * 1024);
  evhttp_set_gencb(g_h1.http, h1_gencb, &g_h1);
  struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(g_h1.http, "127.0.0.1", 0);
  assert_non_null(bs);
  g_h1.port = bound_port(evhttp_bound_socket_get_fd(bs));
}

static void h1srv_stop(void) {
  evhttp_free(g_h1.http);
  g_h1.http = NULL;
}

static int setup(void **state) {
  /* none left over from a failed test */
  g_fail_reserve = g_fail_submit = g_fail_send = g_fail_add = g_fail_calloc = 0;
  g_base = event_base_new();
  return g_base ? 0 : -1;
}

static int teardown(void **state) {
  /* libevent finalizes freed bufferevents from the loop: let it run once. */
  event_base_loop(g_base, EVLOOP_NONBLOCK);
  event_base_free(g_base);
  g_base = NULL;
  return 0;
}

/* ------------------------------------------------------------------ raw scripted backend */

struct rawsrv {
  struct evconnlistener *l;
  int port;
  const char *reply;      /* written once a request head arrived */
  int close_after;        /* close the connection after writing */
  int accepted;
  struct bufferevent *bevs[16];
};
static struct rawsrv g_raw;

static void raw_forget(struct bufferevent *bev) {
  for (int i = 0; i < 16; i++)
    if (g_raw.bevs[i] == bev)
      g_raw.bevs[i] = NULL;
  bufferevent_free(bev);
}

static void raw_write_cb(struct bufferevent *bev, void *arg);
static void raw_event_cb(struct bufferevent *bev, short what, void *arg);

static void raw_read_cb(struct bufferevent *bev, void *arg) {
  struct evbuffer *in = bufferevent_get_input(bev);
  struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
  if (p.pos < 0)
    return;
  evbuffer_drain(in, evbuffer_get_length(in));
  bufferevent_write(bev, g_raw.reply, strlen(g_raw.reply));
  if (g_raw.close_after) {
    bufferevent_disable(bev, EV_READ);
    bufferevent_setcb(bev, NULL, raw_write_cb, raw_event_cb, NULL);
  }
}

static void raw_write_cb(struct bufferevent *bev, void *arg) {
  if (g_raw.close_after && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
    raw_forget(bev);
}

static void raw_event_cb(struct bufferevent *bev, short what, void *arg) {
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
    raw_forget(bev);
}

static void raw_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg) {
  g_raw.accepted++;
  struct bufferevent *bev = bufferevent_socket_new(g_base, fd, BEV_OPT_CLOSE_ON_FREE);
  for (int i = 0; i < 16; i++)
    if (!g_raw.bevs[i]) {
      g_raw.bevs[i] = bev;
      break;
    }
  bufferevent_setcb(bev, raw_read_cb, NULL, raw_event_cb, NULL);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void rawsrv_start(const char *reply, int close_after) {
  memset(&g_raw, 0, sizeof g_raw);
  g_raw.reply = reply;
  g_raw.close_after = close_after;
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  g_raw.l = evconnlistener_new_bind(g_base, raw_accept_cb, NULL,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                    (struct sockaddr *)&sin, sizeof sin);
  assert_non_null(g_raw.l);
  g_raw.port = bound_port(evconnlistener_get_fd(g_raw.l));
}

static void rawsrv_stop(void) {
  for (int i = 0; i < 16; i++)
    if (g_raw.bevs[i])
      raw_forget(g_raw.bevs[i]);
  evconnlistener_free(g_raw.l);
}

/* ------------------------------------------------------------------ HTTP/1.1 tests */

static void test_px_upstream_h1_success(void **state) {
  h1srv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "GET", "/hello", 0, &r);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "hello from h1");
  px_pool_free(p);
  h1srv_stop();
}

static void test_px_upstream_h1_keepalive_reuse(void **state) {
  h1srv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  struct px_pool *p = pool_new();
  for (int i = 0; i < 10; i++) {
    struct res r = {0};
    start(p, "GET", "/hello", 0, &r);
    run_all(1);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
  }
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 1);
  assert_int_equal(st.reused, 9);
  assert_int_equal(st.idle_connections, 1);
  assert_int_equal(st.active_exchanges, 0);
  assert_int_equal(g_h1.nconns, 1);
  assert_int_equal(g_h1.requests, 10);
  px_pool_free(p);
  h1srv_stop();
}

/* An idle connection closes idle_timeout after its last exchange, not after
 * its first idle period began, however often it was used in between. */
static void test_px_upstream_h1_idle_timeout(void **state) {
  h1srv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  g_be.idle_timeout_ms = 300;
  struct px_pool *p = pool_new();
  struct px_pool_stats st;
  for (int i = 0; i < 3; i++) { /* used again at about 0, 150 and 300 ms */
    struct res r = {0};
    start(p, "GET", "/hello", 0, &r);
    run_all(1);
    assert_int_equal(r.err, 0);
    run_for_ms(150);
  }
  /* 150 ms after the last use, 450 ms after the first: still open */
  px_pool_stats(p, &st);
  assert_int_equal(st.idle_connections, 1);
  assert_int_equal(st.connects, 1);
  run_for_ms(300); /* 450 ms after the last use: closed */
  px_pool_stats(p, &st);
  assert_int_equal(st.idle_connections, 0);
  px_pool_free(p);
  h1srv_stop();
}

static void test_px_upstream_h1_chunked(void **state) {
  h1srv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "GET", "/chunked", 0, &r);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_string_equal(r.body, "part0;part1;part2;");
  px_pool_free(p);
  h1srv_stop();
}

static void test_px_upstream_h1_trailers_and_100(void **state) {
  rawsrv_start("HTTP/1.1 100 Continue\r\n\r\n"
               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n",
               0);
  backend_init(CFG_PROTO_HTTP1, 1, &g_raw.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "GET", "/", 0, &r);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "hello");
  assert_int_equal(r.ntrailers, 1);
  assert_string_equal(r.trailer, "x-checksum=abc");
  px_pool_free(p);
  rawsrv_stop();
}

static void test_px_upstream_h1_close_delimited(void **state) {
  rawsrv_start("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", 1);
  backend_init(CFG_PROTO_HTTP1, 1, &g_raw.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "GET", "/", 0, &r);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_string_equal(r.body, "until the end");
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.idle_connections, 0); /* not reusable */
  px_pool_free(p);
  rawsrv_stop();
}

static void test_px_upstream_h1_head_no_body(void **state) {
  rawsrv_start("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 0);
  backend_init(CFG_PROTO_HTTP1, 1, &g_raw.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "HEAD", "/", 0, &r);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.body_len, 0);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.idle_connections, 1); /* well framed: kept */
  px_pool_free(p);
  rawsrv_stop();
}

static void test_px_upstream_h1_reset_mid_response(void **state) {
  rawsrv_start("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a part", 1);
  backend_init(CFG_PROTO_HTTP1, 1, &g_raw.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "GET", "/", 0, &r);
  run_all(1);
  assert_int_equal(r.err, CUT_ERR_CLOSED);
  assert_int_equal(r.fail, PX_FAIL_RESET);
  assert_int_equal(r.got_response, 1);
  assert_int_equal(r.body_len, 11);
  assert_non_null(strstr(r.cause, "mid-response"));
  px_pool_free(p);
  rawsrv_stop();
}

static void test_px_upstream_h1_bad_response(void **state) {
  rawsrv_start("HTTP/1.1 2x0 OK\r\n\r\n", 0);
  backend_init(CFG_PROTO_HTTP1, 1, &g_raw.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "GET", "/", 0, &r);
  run_all(1);
  assert_int_equal(r.fail, PX_FAIL_PROTOCOL);
  px_pool_free(p);
  rawsrv_stop();
}

static void test_px_upstream_connect_refused_post_no_retry(void **state) {
  h1srv_start();
  int ports[2] = {closed_port(), g_h1.port};
  backend_init(CFG_PROTO_HTTP1, 2, ports);
  struct px_pool *p = pool_new();
  struct res r = {0};
  struct px_exchange *x = start(p, "POST", "/echo", 1, &r);
  assert_int_equal(px_exchange_send_body(x, (const uint8_t *)"abc", 3), 0);
  assert_int_equal(px_exchange_end_body(x, NULL), 0);
  run_all(1);
  assert_int_equal(r.fail, PX_FAIL_CONNECT);
  assert_int_equal(r.err, CUT_ERR_NET);
  assert_int_equal(r.got_response, 0);
  assert_non_null(strstr(r.cause, "refused"));
  assert_int_equal(g_h1.requests, 0);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.retries, 0);
  assert_int_equal(st.connect_failures, 1);
  assert_int_equal(p->hosts[0].consecutive_connect_failures, 1);
  px_pool_free(p);
  h1srv_stop();
}

static void test_px_upstream_connect_refused_get_retried(void **state) {
  h1srv_start();
  int ports[2] = {closed_port(), g_h1.port};
  backend_init(CFG_PROTO_HTTP1, 2, ports);
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "GET", "/hello", 0, &r);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.status, 200);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.retries, 1);
  assert_int_equal(g_h1.requests, 1);
  px_pool_free(p);
  h1srv_stop();
}

static void test_px_upstream_first_byte_timeout(void **state) {
  h1srv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  g_be.timeout_ms = 100;
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "GET", "/slow", 0, &r);
  run_all(1);
  assert_int_equal(r.err, CUT_ERR_TIMEOUT);
  assert_int_equal(r.fail, PX_FAIL_TIMEOUT);
  assert_int_equal(r.got_response, 0);
  px_pool_free(p);
  h1srv_stop();
}

static void test_px_upstream_stalled_body_timeout(void **state) {
  rawsrv_start("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", 0);
  backend_init(CFG_PROTO_HTTP1, 1, &g_raw.port);
  g_be.timeout_ms = 150;
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "GET", "/", 0, &r);
  run_all(1);
  assert_int_equal(r.fail, PX_FAIL_TIMEOUT);
  assert_int_equal(r.got_response, 1);
  assert_int_equal(r.body_len, 3);
  assert_non_null(strstr(r.cause, "stalled"));
  px_pool_free(p);
  rawsrv_stop();
}

static void test_px_upstream_no_host_when_ejected(void **state) {
  h1srv_start();
  int ports[2] = {g_h1.port, g_h1.port};
  backend_init(CFG_PROTO_HTTP1, 2, ports);
  g_be.on_unhealthy = CFG_UNHEALTHY_FAIL;
  struct px_pool *p = pool_new();
  assert_int_equal(px_pool_nhosts(p), 2);
  assert_int_equal(px_pool_host_set_healthy(p, 0, 0), 0);
  assert_int_equal(px_pool_host_eject(p, 1, px_pool_now_ms(p) + 60000), 0);
  assert_int_equal(px_pool_host_eject(p, 2, 0), CUT_ERR_RANGE);
  struct res r = {0};
  start(p, "GET", "/hello", 0, &r);
  run_all(1);
  assert_int_equal(r.fail, PX_FAIL_NO_HOST);
  assert_int_equal(r.err, CUT_ERR_AGAIN);

  /* An expired ejection no longer counts; the unhealthy host stays skipped. */
  px_pool_host_eject(p, 1, px_pool_now_ms(p) - 1);
  for (int i = 0; i < 3; i++) {
    struct res r2 = {0};
    start(p, "GET", "/hello", 0, &r2);
    run_all(1);
    assert_int_equal(r2.err, 0);
  }
  struct px_host_stats hs;
  assert_int_equal(px_pool_host_stats(p, 0, &hs), 0);
  assert_int_equal(hs.connections, 0);
  assert_int_equal(hs.healthy, 0);
  assert_int_equal(px_pool_host_stats(p, 1, &hs), 0);
  assert_int_equal(hs.connections, 1);
  px_pool_free(p);

  /* fail_open: with every host out, traffic still goes somewhere. */
  g_be.on_unhealthy = CFG_UNHEALTHY_FAIL_OPEN;
  p = pool_new();
  px_pool_host_set_healthy(p, 0, 0);
  px_pool_host_set_healthy(p, 1, 0);
  struct res r3 = {0};
  start(p, "GET", "/hello", 0, &r3);
  run_all(1);
  assert_int_equal(r3.err, 0);
  px_pool_free(p);
  h1srv_stop();
}

static void test_px_upstream_wait_queue(void **state) {
  h1srv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  g_be.max_connections = 2;
  struct px_pool *p = pool_new();
  struct res r[6] = {0};
  for (int i = 0; i < 6; i++)
    start(p, "GET", "/hello", 0, &r[i]);
  assert_int_equal(p->hosts[0].nwait, 4);
  run_all(6);
  for (int i = 0; i < 6; i++)
    assert_int_equal(r[i].err, 0);
  assert_true(g_h1.nconns <= 2);
  px_pool_free(p);
  h1srv_stop();
}

/* Queued exchanges send the head they were started with, whether they copied
 * it (the caller's strings are freed at once) or borrowed it (the caller keeps
 * it until the end). */
static void test_px_upstream_wait_queue_heads(void **state) {
  h1srv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  g_be.max_connections = 1;
  struct px_pool *p = pool_new();
  static const char *const paths[] = {"/hello", "/chunked", "/nope", "/echo", "/hello", "/nope"};
  enum { N = 6 };
  struct res r[N] = {0};
  struct px_request_head kept[N];
  for (int i = 0; i < N; i++) {
    struct px_exchange_cbs cbs = g_cbs;
    cbs.borrow_head = i % 2;
    struct px_request_head *h = &kept[i];
    req_init(h, "GET", paths[i]);
    h->method = strdup("GET");
    h->path = strdup(paths[i]);
    assert_int_equal(px_headers_add(&h->headers, "x-n", 3, paths[i], strlen(paths[i])), 0);
    assert_int_equal(px_exchange_start(p, h, 0, &cbs, &r[i], &r[i].x), 0);
    if (!cbs.borrow_head) { /* scribble over, then free, what the exchange copied */
      memset(h->path, 'z', strlen(h->path));
      memset(h->headers.v[0].value, 'z', h->headers.v[0].valuelen);
      px_headers_clear(&h->headers);
      free(h->method);
      free(h->path);
    }
  }
  assert_int_equal(p->hosts[0].nwait, N - 1);
  run_all(N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(r[i].err, 0);
    if (strcmp(paths[i], "/hello") == 0)
      assert_string_equal(r[i].body, "hello from h1");
    else if (strcmp(paths[i], "/chunked") == 0)
      assert_string_equal(r[i].body, "part0;part1;part2;");
    else if (strcmp(paths[i], "/echo") == 0)
      assert_string_equal(r[i].body, "0");
    else
      assert_int_equal(r[i].status, 404);
    if (i % 2) {
      px_headers_clear(&kept[i].headers);
      free(kept[i].method);
      free(kept[i].path);
    }
  }
  px_pool_free(p);
  h1srv_stop();
}

struct bp {
  struct res r;
  size_t max_buffered;
};

static void check_buffered_cb(evutil_socket_t fd, short what, void *arg) {
  event_base_loopbreak(g_base);
}

static void test_px_upstream_h1_response_backpressure(void **state) {
  h1srv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  r.pause_on_first = 1;
  struct px_exchange *x = start(p, "GET", "/big", 0, &r);
  (void)check_buffered_cb;
  run_for_ms(300);
  assert_int_equal(r.done, 0);
  assert_true(r.paused);
  size_t got = r.body_len;
  struct px_conn *c = p->hosts[0].conns.tqh_first;
  assert_non_null(c);
  size_t buffered = evbuffer_get_length(px_conn_in(c));
  assert_true(buffered <= 2 * 64 * 1024);
  assert_true(got <= 2 * 64 * 1024);
  run_for_ms(100);
  assert_int_equal(r.body_len, got); /* nothing delivered while paused */
  px_exchange_resume(x);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.body_len, 8u * 1024 * 1024);
  px_pool_free(p);
  h1srv_stop();
}

struct streamer {
  struct px_exchange *x;
  size_t sent, total;
  int fulls;
  const struct px_headers *trailers;
};

static void stream_more(struct streamer *s) {
  static uint8_t blk[16 * 1024];
  while (s->sent < s->total) {
    int rv = px_exchange_send_body(s->x, blk, sizeof blk);
    s->sent += sizeof blk;
    if (rv == CUT_ERR_FULL) {
      s->fulls++;
      return;
    }
    assert_int_equal(rv, 0);
  }
  assert_int_equal(px_exchange_end_body(s->x, s->trailers), 0);
}

static void on_drain_cb(struct px_exchange *x, void *user_data) {
  (void)user_data;
}

static struct streamer *g_streamer;
static void streamer_drain_cb(struct px_exchange *x, void *user_data) {
  stream_more(g_streamer);
}

static void test_px_upstream_h1_request_body_streaming(void **state) {
  h1srv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  struct px_exchange_cbs cbs = g_cbs;
  cbs.on_request_drain = streamer_drain_cb;
  (void)on_drain_cb;
  struct px_request_head h;
  req_init(&h, "POST", "/echo");
  struct streamer s = {.total = 4u * 1024 * 1024};
  g_streamer = &s;
  assert_int_equal(px_exchange_start(p, &h, 1, &cbs, &r, &s.x), 0);
  stream_more(&s);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_int_equal(g_h1.body_bytes, 4u * 1024 * 1024);
  assert_string_equal(r.body, "4194304");
  assert_true(s.fulls > 0);
  px_pool_free(p);
  h1srv_stop();
}

static void test_px_upstream_least_request(void **state) {
  h1srv_start();
  int ports[2] = {g_h1.port, g_h1.port};
  backend_init(CFG_PROTO_HTTP1, 2, ports);
  g_be.lb = CFG_LB_LEAST_REQUEST;
  struct px_pool *p = pool_new();
  struct res r[4] = {0};
  for (int i = 0; i < 4; i++)
    start(p, "GET", "/hello", 0, &r[i]);
  assert_int_equal(p->hosts[0].active, 2);
  assert_int_equal(p->hosts[1].active, 2);
  run_all(4);
  px_pool_free(p);
  h1srv_stop();
}

static void test_px_upstream_cancel(void **state) {
  h1srv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  struct px_exchange *x = start(p, "GET", "/slow", 0, &r);
  run_for_ms(50);
  px_exchange_cancel(x);
  run_for_ms(20);
  assert_int_equal(r.done, 0);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.active_exchanges, 0);
  px_pool_free(p);
  h1srv_stop();
}


/* ------------------------------------------------------------------ pipelining */

/* A scripted HTTP/1.1 server that answers requests in order however many
 * arrive at once, by path: "/close" answers with Connection: close and
 * closes, "/drop" closes without answering, "/hold" is answered only when
 * pipesrv_release() is called, "/head" sends a content-length with no body
 * (the tests send it as HEAD), "/304" and "/204" answer with those statuses
 * (a 304 with a content-length), "/100" sends an interim 100 first; anything else answers 200 with the path as
 * body. It notes the most requests it found in one read. */
struct pipeconn {
  struct bufferevent *bev;
  int holding;             /* a /hold is waiting: later requests wait behind it */
};
struct pipesrv {
  struct evconnlistener *l;
  int port;
  int accepted;
  int requests;
  int max_per_read;
  struct pipeconn conns[16];
};
static struct pipesrv g_pipe;

static void pipe_forget(struct pipeconn *pc) {
  if (pc->bev)
    bufferevent_free(pc->bev);
  pc->bev = NULL;
  pc->holding = 0;
}

static void pipe_answer(struct pipeconn *pc, const char *path) {
  char out[512];
  if (strcmp(path, "/head") == 0)
    snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
  else if (strcmp(path, "/304") == 0)
    snprintf(out, sizeof out, "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n");
  else if (strcmp(path, "/204") == 0)
    snprintf(out, sizeof out, "HTTP/1.1 204 No Content\r\n\r\n");
  else if (strcmp(path, "/100") == 0)
    snprintf(out, sizeof out,
             "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n/100");
  else if (strcmp(path, "/close") == 0)
    snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: %zu\r\n\r\n%s",
             strlen(path), path);
  else
    snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\ncontent-length: %zu\r\n\r\n%s", strlen(path),
             path);
  bufferevent_write(pc->bev, out, strlen(out));
}

static void pipe_write_cb(struct bufferevent *bev, void *arg) {
  struct pipeconn *pc = arg;
  if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
    pipe_forget(pc);
}

/* Answers what can be answered; returns the requests it consumed. */
static int pipe_serve(struct pipeconn *pc) {
  struct evbuffer *in = bufferevent_get_input(pc->bev);
  int n = 0;
  while (!pc->holding) {
    struct evbuffer_ptr e = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (e.pos < 0)
      break;
    char head[1024] = "", path[256] = "";
    size_t hl = (size_t)e.pos + 4;
    evbuffer_remove(in, head, hl < sizeof head - 1 ? hl : sizeof head - 1);
    if (hl >= sizeof head - 1)
      evbuffer_drain(in, hl - (sizeof head - 1));
    sscanf(head, "%*s %255s", path);
    n++;
    g_pipe.requests++;
    if (strcmp(path, "/drop") == 0) { /* close once the earlier answers are out */
      bufferevent_disable(pc->bev, EV_READ);
      if (evbuffer_get_length(bufferevent_get_output(pc->bev)) == 0)
        pipe_forget(pc);
      else
        bufferevent_setcb(pc->bev, NULL, pipe_write_cb, NULL, pc);
      return n;
    }
    if (strcmp(path, "/hold") == 0) {
      pc->holding = 1;
      break;
    }
    pipe_answer(pc, path);
    if (strcmp(path, "/close") == 0) {
      bufferevent_disable(pc->bev, EV_READ);
      bufferevent_setcb(pc->bev, NULL, pipe_write_cb, NULL, pc);
      return n;
    }
  }
  return n;
}

static void pipe_read_cb(struct bufferevent *bev, void *arg) {
  struct pipeconn *pc = arg;
  /* Count the heads in this read before serving (a /hold stops serving). */
  struct evbuffer *in = bufferevent_get_input(bev);
  int heads = 0;
  struct evbuffer_ptr at = evbuffer_search(in, "\r\n\r\n", 4, NULL);
  while (at.pos >= 0) {
    heads++;
    evbuffer_ptr_set(in, &at, 4, EVBUFFER_PTR_ADD);
    at = evbuffer_search(in, "\r\n\r\n", 4, &at);
  }
  if (heads > g_pipe.max_per_read)
    g_pipe.max_per_read = heads;
  pipe_serve(pc);
}

static void pipe_event_cb(struct bufferevent *bev, short what, void *arg) {
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
    pipe_forget(arg);
}

static void pipe_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                           int salen, void *arg) {
  g_pipe.accepted++;
  for (int i = 0; i < 16; i++)
    if (!g_pipe.conns[i].bev) {
      struct pipeconn *pc = &g_pipe.conns[i];
      pc->bev = bufferevent_socket_new(g_base, fd, BEV_OPT_CLOSE_ON_FREE);
      bufferevent_setcb(pc->bev, pipe_read_cb, NULL, pipe_event_cb, pc);
      bufferevent_enable(pc->bev, EV_READ | EV_WRITE);
      return;
    }
  evutil_closesocket(fd);
}

static void pipesrv_start(void) {
  memset(&g_pipe, 0, sizeof g_pipe);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  g_pipe.l = evconnlistener_new_bind(g_base, pipe_accept_cb, NULL,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                     (struct sockaddr *)&sin, sizeof sin);
  assert_non_null(g_pipe.l);
  g_pipe.port = bound_port(evconnlistener_get_fd(g_pipe.l));
}

/* Answers the /hold requests and whatever waited behind them. */
static void pipesrv_release(void) {
  for (int i = 0; i < 16; i++) {
    struct pipeconn *pc = &g_pipe.conns[i];
    if (pc->bev && pc->holding) {
      pc->holding = 0;
      pipe_answer(pc, "/hold");
      pipe_serve(pc);
    }
  }
}

static void pipesrv_stop(void) {
  for (int i = 0; i < 16; i++)
    pipe_forget(&g_pipe.conns[i]);
  evconnlistener_free(g_pipe.l);
}

/* A pool with backend.pipeline = depth and one idle connection to the
 * scripted server, as a busy proxy has. */
static struct px_pool *pipe_pool(uint32_t depth) {
  pipesrv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_pipe.port);
  g_be.pipeline = depth;
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "GET", "/warm", 0, &r);
  run_all(1);
  assert_int_equal(r.err, 0);
  g_pipe.max_per_read = 0;
  return p;
}

/* Requests started from inside one pass of the loop, as a proxy starts them:
 * they share the loop's cached time, so their deadlines are equal. Started
 * from outside the loop, each would read the clock itself and straddle a
 * millisecond now and then. */
struct pass_starts {
  struct px_pool *p;
  int n;
  const char **paths;
  struct res *r;
};

static void pass_starts_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  struct pass_starts *ps = arg;
  for (int i = 0; i < ps->n; i++)
    start(ps->p, "GET", ps->paths[i], 0, &ps->r[i]);
}

static void start_in_one_pass(struct pass_starts *ps) {
  struct timeval now = {0, 0};
  assert_int_equal(event_base_once(g_base, -1, EV_TIMEOUT, pass_starts_cb, ps, &now), 0);
}

static void assert_ok_body(const struct res *r, const char *body) {
  if (r->err)
    fprintf(stderr, "exchange failed: %s\n", r->cause);
  assert_int_equal(r->done, 1);
  assert_int_equal(r->err, 0);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->body, body);
}

/* Requests started in one pass of the loop go out together on the idle
 * connection, up to the depth, and each gets its own response. */
static void test_px_upstream_h1_pipeline_batches(void **state) {
  struct px_pool *p = pipe_pool(4);
  struct res r[4] = {{0}};
  const char *paths[4] = {"/p0", "/p1", "/p2", "/p3"};
  for (int i = 0; i < 4; i++)
    start(p, "GET", paths[i], 0, &r[i]);
  run_all(4);
  for (int i = 0; i < 4; i++)
    assert_ok_body(&r[i], paths[i]);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 1);
  assert_int_equal(st.pipelined, 3);
  assert_int_equal(st.retries, 0);
  assert_int_equal(g_pipe.max_per_read, 4);
  assert_int_equal(st.idle_connections, 1);
  assert_int_equal(st.active_exchanges, 0);
  /* A fifth in the same pass exceeds the depth: it takes another connection. */
  struct res r5[5] = {{0}};
  for (int i = 0; i < 5; i++)
    start(p, "GET", paths[i % 4], 0, &r5[i]);
  run_all(5);
  for (int i = 0; i < 5; i++)
    assert_ok_body(&r5[i], paths[i % 4]);
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 2);
  assert_int_equal(st.pipelined, 6);
  px_pool_free(p);
  pipesrv_stop();
}

/* At the connection limit, requests wait; when the connection is free again
 * the waiting ones go out together as one batch, in their order. */
static void test_px_upstream_h1_pipeline_wait_queue(void **state) {
  struct px_pool *p = pipe_pool(4);
  g_be.max_connections = 1;
  struct res r[7] = {{0}};
  char paths[7][16];
  for (int i = 0; i < 7; i++) {
    snprintf(paths[i], sizeof paths[i], "/w%d", i);
    start(p, "GET", paths[i], 0, &r[i]);
  }
  run_all(7);
  for (int i = 0; i < 7; i++)
    assert_ok_body(&r[i], paths[i]);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 1);
  assert_int_equal(st.pipelined, 3 + 2); /* the first batch of 4, then the 3 that waited */
  assert_int_equal(g_pipe.max_per_read, 4);
  px_pool_free(p);
  pipesrv_stop();
}

/* At the connection limit, the first waiter's head cannot be written when
 * the connection frees up (out of memory): it fails, and the others still go
 * out, in order, on that connection. */
static void test_px_upstream_h1_pipeline_wait_queue_nomem(void **state) {
  struct px_pool *p = pipe_pool(4);
  g_be.max_connections = 1;
  g_be.retries = 0;
  struct res hold = {0}, r[3] = {{0}};
  start(p, "GET", "/hold", 0, &hold);
  const char *paths[3] = {"/q0", "/q1", "/q2"};
  run_for_ms(100); /* /hold is on the connection; the next three wait for it */
  for (int i = 0; i < 3; i++)
    start(p, "GET", paths[i], 0, &r[i]);
  run_for_ms(50);
  assert_int_equal(r[0].done + r[1].done + r[2].done, 0);
  g_fail_reserve = 1; /* the first waiter's head, when the connection takes the queue */
  pipesrv_release();
  run_all(4);
  assert_int_equal(g_fail_reserve, 0);
  assert_ok_body(&hold, "/hold");
  assert_int_equal(r[0].fail, PX_FAIL_PROTOCOL);
  assert_non_null(strstr(r[0].cause, "out of memory writing the request"));
  assert_ok_body(&r[1], "/q1");
  assert_ok_body(&r[2], "/q2");
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 1);
  assert_int_equal(st.active_exchanges, 0);
  assert_int_equal(st.idle_connections, 1);
  px_pool_free(p);
  pipesrv_stop();
}

/* Without `pipeline` (depth 1) nothing is pipelined: the same burst opens a
 * connection per request. */
static void test_px_upstream_h1_pipeline_off_by_default(void **state) {
  struct px_pool *p = pipe_pool(1);
  struct res r[3] = {{0}};
  for (int i = 0; i < 3; i++)
    start(p, "GET", "/q", 0, &r[i]);
  run_all(3);
  for (int i = 0; i < 3; i++)
    assert_ok_body(&r[i], "/q");
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.pipelined, 0);
  assert_int_equal(st.connects, 3);
  assert_int_equal(g_pipe.max_per_read, 1);
  px_pool_free(p);
  pipesrv_stop();
}

/* No connection yet (a cold start, or a burst after the idle ones closed):
 * pipelinable requests wait for the connection being opened, up to the
 * depth, instead of each opening its own; when it is open they go out
 * together, the first one and the others pipelined behind it. */
static void test_px_upstream_h1_pipeline_cold_burst(void **state) {
  pipesrv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_pipe.port);
  g_be.pipeline = 4;
  struct px_pool *p = pool_new();
  struct res r[6] = {{0}};
  char paths[6][8];
  for (int i = 0; i < 6; i++) {
    snprintf(paths[i], sizeof paths[i], "/c%d", i);
    start(p, "GET", paths[i], 0, &r[i]);
  }
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 2); /* 4 wait for the first, 2 for the second */
  run_all(6);
  for (int i = 0; i < 6; i++)
    assert_ok_body(&r[i], paths[i]);
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 2);
  assert_int_equal(st.pipelined, 4); /* 3 behind the first, 1 behind the second */
  assert_int_equal(g_pipe.accepted, 2);
  assert_int_equal(g_pipe.max_per_read, 4); /* the first connection's 4 went out together */
  run_for_ms(20);
  px_pool_stats(p, &st);
  assert_int_equal(st.idle_connections, 2);
  assert_int_equal(st.active_exchanges, 0);
  px_pool_free(p);
  pipesrv_stop();
}

/* A request with a body never waits for a connection opened for others, nor
 * do others wait for its own; a request cancelled while it waits leaves the
 * others alone. */
static void test_px_upstream_h1_pipeline_cold_mixed(void **state) {
  pipesrv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_pipe.port);
  g_be.pipeline = 4;
  struct px_pool *p = pool_new();
  struct res post = {0}, a = {0}, b = {0}, c = {0};
  struct px_exchange *xpost = start(p, "POST", "/post", 1, &post);
  start(p, "GET", "/a", 0, &a);
  struct px_exchange *xb = start(p, "GET", "/b", 0, &b);
  start(p, "GET", "/c", 0, &c);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 2); /* the POST's own, and one for the three GETs */
  px_exchange_cancel(xb);
  assert_int_equal(px_exchange_end_body(xpost, NULL), 0);
  run_all(3);
  assert_ok_body(&post, "/post");
  assert_ok_body(&a, "/a");
  assert_ok_body(&c, "/c");
  assert_int_equal(b.done, 0);
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 2);
  assert_int_equal(st.pipelined, 1); /* /c behind /a */
  px_pool_free(p);
  pipesrv_stop();
}

/* The connection the requests wait for is refused: each is tried again as
 * before (it was not sent), and again they wait together for one new
 * connection rather than open one each. */
static void test_px_upstream_h1_pipeline_cold_refused(void **state) {
  int port = closed_port();
  backend_init(CFG_PROTO_HTTP1, 1, &port);
  g_be.pipeline = 4;
  g_be.retries = 1;
  struct px_pool *p = pool_new();
  struct res r[4] = {{0}};
  for (int i = 0; i < 4; i++)
    start(p, "GET", "/x", 0, &r[i]);
  run_all(4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(r[i].fail, PX_FAIL_CONNECT);
    assert_int_equal(r[i].got_response, 0);
  }
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 2); /* the first attempt and the retry, for all four */
  assert_int_equal(st.retries, 4);
  assert_int_equal(st.active_exchanges, 0);
  px_pool_free(p);
}

/* Only the requests of the same pass of the loop wait together for a new
 * connection: one arriving in a later pass while it is still connecting
 * opens its own, so it never waits behind a response it did not arrive with
 * (as with idle connections). */
static void test_px_upstream_h1_pipeline_cold_later_pass(void **state) {
  int fds[2];
  int port = stuck_port(fds);
  backend_init(CFG_PROTO_HTTP1, 1, &port);
  g_be.pipeline = 4;
  struct px_pool *p = pool_new();
  struct res c = {0};
  const char *paths[2] = {"/a", "/b"};
  struct res ab[2] = {{0}};
  struct pass_starts ps = {p, 2, paths, ab};
  start_in_one_pass(&ps);
  run_for_ms(50); /* that pass, and its end, are over; the connect hangs */
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 1); /* /b waits with /a */
  start(p, "GET", "/c", 0, &c);
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 2); /* /c does not */
  px_pool_free(p);
  close(fds[1]);
  close(fds[0]);
}

/* Requests with a body or an unsafe method are never pipelined; HEAD is, and
 * the bodiless HEAD response keeps the connection in step. */
static void test_px_upstream_h1_pipeline_methods(void **state) {
  struct px_pool *p = pipe_pool(8);
  struct res a = {0}, h = {0}, post = {0}, del = {0}, c = {0};
  start(p, "GET", "/a", 0, &a);
  start(p, "HEAD", "/head", 0, &h);
  start(p, "POST", "/post", 0, &post);
  start(p, "DELETE", "/del", 0, &del);
  start(p, "GET", "/c", 0, &c);
  run_all(5);
  assert_ok_body(&a, "/a");
  assert_int_equal(h.err, 0);
  assert_int_equal(h.status, 200);
  assert_int_equal(h.body_len, 0);
  assert_ok_body(&post, "/post");
  assert_ok_body(&del, "/del");
  assert_ok_body(&c, "/c");
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.pipelined, 2); /* HEAD and the last GET behind the first GET */
  assert_int_equal(st.connects, 3);  /* POST and DELETE each on a connection of their own */
  px_pool_free(p);
  pipesrv_stop();
}

/* The server answers one request with Connection: close: the requests
 * pipelined behind it were never processed and are sent again. */
static void test_px_upstream_h1_pipeline_close_resends(void **state) {
  struct px_pool *p = pipe_pool(4);
  struct res r[4] = {{0}};
  const char *paths[4] = {"/p0", "/close", "/p2", "/p3"};
  for (int i = 0; i < 4; i++)
    start(p, "GET", paths[i], 0, &r[i]);
  run_all(4);
  for (int i = 0; i < 4; i++)
    assert_ok_body(&r[i], paths[i]);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.retries, 2);
  /* warm-up, the batch up to /close (the server reads no further), the two sent again */
  assert_int_equal(g_pipe.requests, 1 + 2 + 2);
  px_pool_free(p);
  pipesrv_stop();
}

/* The server closes without answering a pipelined request: the ones behind
 * the answered request are sent again once; one that fails again ends in a
 * reset, and the others still succeed. */
static void test_px_upstream_h1_pipeline_abrupt_close(void **state) {
  struct px_pool *p = pipe_pool(4);
  struct res a = {0}, drop = {0}, c = {0};
  start(p, "GET", "/a", 0, &a);
  start(p, "GET", "/drop", 0, &drop);
  start(p, "GET", "/c", 0, &c);
  run_all(3);
  assert_ok_body(&a, "/a");
  assert_ok_body(&c, "/c");
  assert_int_equal(drop.err, CUT_ERR_CLOSED);
  assert_int_equal(drop.fail, PX_FAIL_RESET);
  assert_int_equal(drop.got_response, 0);
  assert_non_null(strstr(drop.cause, "before responding"));
  px_pool_free(p);
  pipesrv_stop();
}

/* A queued request is cancelled: its response is read and dropped when its
 * turn comes, and the requests around it carry on on the same connection. */
static void test_px_upstream_h1_pipeline_cancel_queued(void **state) {
  struct px_pool *p = pipe_pool(4);
  struct res hold = {0}, b = {0}, c = {0};
  start(p, "GET", "/hold", 0, &hold);
  struct px_exchange *xb = start(p, "GET", "/b", 0, &b);
  start(p, "GET", "/c", 0, &c);
  run_for_ms(50);
  assert_int_equal(g_pipe.max_per_read, 3);
  px_exchange_cancel(xb);
  pipesrv_release();
  run_all(2);
  assert_ok_body(&hold, "/hold");
  assert_ok_body(&c, "/c");
  assert_int_equal(b.done, 0);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 1);
  assert_int_equal(st.retries, 0);
  assert_int_equal(st.active_exchanges, 0);
  assert_int_equal(st.idle_connections, 1);
  px_pool_free(p);
  pipesrv_stop();
}

/* on_response of the first request cancels the one queued behind it when no
 * placeholder can take its place (out of memory). */
static struct px_exchange *g_cancel_queued;
static int cancel_queued_on_response_cb(struct px_exchange *x, const struct px_response_head *head,
                                        void *user_data) {
  g_fail_calloc = 1; /* the placeholder */
  px_exchange_cancel(g_cancel_queued);
  return on_response_cb(x, head, user_data);
}

/* A queued request is cancelled from the callback of the response being read,
 * and no placeholder can take its place: the connection is out of step and
 * the response in progress leaves it (it fails with a reset from the loop).
 * The parser must stop there, not go on to deliver the body to nobody. */
static void test_px_upstream_h1_pipeline_cancel_queued_nomem(void **state) {
  struct px_pool *p = pipe_pool(4);
  struct res a = {0}, b = {0};
  struct px_exchange_cbs cbs = g_cbs;
  cbs.on_response = cancel_queued_on_response_cb;
  struct px_request_head h;
  req_init(&h, "GET", "/a");
  assert_int_equal(px_exchange_start(p, &h, 0, &cbs, &a, &a.x), 0);
  g_cancel_queued = start(p, "GET", "/b", 0, &b);
  run_all(1);
  assert_int_equal(g_fail_calloc, 0); /* the placeholder was tried and failed */
  assert_int_equal(a.done, 1);
  assert_int_equal(a.fail, PX_FAIL_RESET);
  assert_int_equal(a.got_response, 1);
  assert_int_equal(a.body_len, 0);
  assert_non_null(strstr(a.cause, "abandoned"));
  run_for_ms(50);
  assert_int_equal(b.done, 0);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.active_exchanges, 0);
  assert_int_equal(st.idle_connections, 0); /* the connection was out of step: closed */
  px_pool_free(p);
  pipesrv_stop();
}

/* The first request is abandoned mid-way: the connection is out of step, so
 * it closes and the requests queued behind are sent again on another one. */
/* Writing the end of a chunked request body runs out of memory: the framing
 * on the wire would be out of step, so the connection closes from the loop
 * (not inside px_exchange_end_body) and the request fails with a reset; the
 * next request gets a new connection. */
static void test_px_upstream_h1_body_write_nomem(void **state) {
  h1srv_start();
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  g_be.retries = 0;
  struct px_pool *p = pool_new();
  struct res r = {0};
  struct px_exchange *x = start(p, "POST", "/upload", 1, &r); /* no length: chunked */
  run_for_ms(50); /* connected, the head is out */
  assert_int_equal(r.done, 0);
  g_fail_add = 1; /* the last chunk */
  assert_int_equal(px_exchange_end_body(x, NULL), 0);
  assert_int_equal(g_fail_add, 0);
  assert_int_equal(r.done, 0);
  run_all(1);
  assert_int_equal(r.fail, PX_FAIL_RESET);
  assert_non_null(strstr(r.cause, "out of memory writing a request body"));
  struct res r2 = {0};
  start(p, "GET", "/hello", 0, &r2);
  run_all(1);
  assert_int_equal(r2.err, 0);
  assert_int_equal(r2.status, 200);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 2);
  assert_int_equal(st.active_exchanges, 0);
  px_pool_free(p);
  h1srv_stop();
}

/* The request cannot be written (out of memory) while px_exchange_start
 * places it: the caller gets a live exchange and no callback inside the
 * call; the failure comes from the loop, and the connection is idle again. */
static void test_px_upstream_h1_write_nomem_fails_later(void **state) {
  struct px_pool *p = pipe_pool(4);
  g_be.retries = 0;
  g_fail_reserve = 1; /* the batch's head is reserved in the output: that fails */
  struct res r = {0}, r2 = {0};
  struct px_exchange *x = start(p, "GET", "/p0", 0, &r);
  assert_non_null(x);
  assert_int_equal(r.done, 0);
  start(p, "GET", "/p1", 0, &r2); /* the same pass: the failed one's connection is not used */
  assert_int_equal(r2.done, 0);
  run_all(2);
  assert_int_equal(g_fail_reserve, 0);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.fail, PX_FAIL_PROTOCOL);
  assert_non_null(strstr(r.cause, "out of memory writing the request"));
  assert_ok_body(&r2, "/p1");
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.active_exchanges, 0);
  assert_int_equal(st.idle_connections, 2); /* the first one came back to the pool */
  /* and it serves again */
  struct res r3[2] = {{0}};
  start(p, "GET", "/p2", 0, &r3[0]);
  start(p, "GET", "/p3", 0, &r3[1]);
  run_all(2);
  assert_ok_body(&r3[0], "/p2");
  assert_ok_body(&r3[1], "/p3");
  px_pool_free(p);
  pipesrv_stop();
}

static void test_px_upstream_h1_pipeline_head_cancelled(void **state) {
  struct px_pool *p = pipe_pool(4);
  struct res hold = {0}, b = {0};
  struct px_exchange *xh = start(p, "GET", "/hold", 0, &hold);
  start(p, "GET", "/b", 0, &b);
  run_for_ms(50);
  assert_int_equal(b.done, 0);
  px_exchange_cancel(xh);
  run_all(1);
  assert_int_equal(hold.done, 0);
  assert_ok_body(&b, "/b");
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.retries, 1);
  px_pool_free(p);
  pipesrv_stop();
}

/* A queued request times out while the response ahead of it is still being
 * delivered (here paused by the caller): its placeholder must not inherit the
 * expired deadline, or placeholders replace each other on every pass of the
 * loop. */
static void test_px_upstream_h1_pipeline_queued_timeout(void **state) {
  struct px_pool *p = pipe_pool(4);
  g_be.timeout_ms = 100;
  struct res a = {0}, hold = {0};
  a.pause_on_first = 1;
  struct px_exchange *xa = start(p, "GET", "/a", 0, &a);
  start(p, "GET", "/hold", 0, &hold);
  run_all(1); /* the queued /hold times out; /a is paused */
  assert_int_equal(hold.err, CUT_ERR_TIMEOUT);
  assert_true(a.paused);
  assert_int_equal(a.done, 0);
  run_for_ms(300);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.timeouts, 1);
  /* /a resumes within its own timeout; the dropped /hold answer comes in
   * behind it and the connection is reused. */
  g_be.timeout_ms = 3000;
  px_exchange_resume(xa);
  pipesrv_release();
  run_all(1);
  assert_ok_body(&a, "/a");
  run_for_ms(50);
  px_pool_stats(p, &st);
  assert_int_equal(st.timeouts, 1);
  assert_int_equal(st.active_exchanges, 0);
  assert_int_equal(st.idle_connections, 1);
  assert_int_equal(st.connects, 1);
  px_pool_free(p);
  pipesrv_stop();
}

/* Freeing the pool with requests pipelined on a connection frees them; it
 * does not send the queued ones again on a new connection. */
static void test_px_upstream_h1_pipeline_pool_free(void **state) {
  struct px_pool *p = pipe_pool(4);
  struct res hold = {0}, b = {0}, c = {0}, d = {0};
  start(p, "GET", "/hold", 0, &hold);
  start(p, "GET", "/b", 0, &b);
  struct px_exchange *xc = start(p, "GET", "/c", 0, &c);
  start(p, "GET", "/d", 0, &d);
  run_for_ms(50);
  assert_int_equal(g_pipe.max_per_read, 4);
  px_exchange_cancel(xc); /* a placeholder takes its place */
  px_pool_free(p);
  run_for_ms(50);
  assert_int_equal(g_pipe.accepted, 1);
  assert_int_equal(hold.done + b.done + c.done + d.done, 0);
  pipesrv_stop();
}

/* The first response is paused by the caller while the responses behind it,
 * and the server's close, have arrived: each is delivered to its own request
 * once the first resumes. */
static void test_px_upstream_h1_pipeline_paused_then_close(void **state) {
  struct px_pool *p = pipe_pool(4);
  struct res a = {0}, b = {0}, cl = {0};
  a.pause_on_first = 1;
  struct px_exchange *xa = start(p, "GET", "/a", 0, &a);
  start(p, "GET", "/b", 0, &b);
  start(p, "GET", "/close", 0, &cl);
  run_for_ms(100);
  assert_true(a.paused);
  assert_int_equal(a.done + b.done + cl.done, 0);
  px_exchange_resume(xa);
  run_all(3);
  assert_ok_body(&a, "/a");
  assert_ok_body(&b, "/b");
  assert_ok_body(&cl, "/close");
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.retries, 0);
  assert_int_equal(st.resets, 0);
  assert_int_equal(st.active_exchanges, 0);
  px_pool_free(p);
  pipesrv_stop();
}

/* A request abandoned behind one answered with Connection: close has nothing
 * to send again: the dropped placeholder is no reset. */
static void test_px_upstream_h1_pipeline_cancelled_behind_close(void **state) {
  struct px_pool *p = pipe_pool(4);
  struct res hold = {0}, cl = {0}, c = {0};
  start(p, "GET", "/hold", 0, &hold);
  start(p, "GET", "/close", 0, &cl);
  struct px_exchange *xc = start(p, "GET", "/c", 0, &c);
  run_for_ms(50);
  px_exchange_cancel(xc);
  pipesrv_release();
  run_all(2);
  assert_ok_body(&hold, "/hold");
  assert_ok_body(&cl, "/close");
  run_for_ms(50);
  assert_int_equal(c.done, 0);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.resets, 0);
  assert_int_equal(st.retries, 0);
  assert_int_equal(st.active_exchanges, 0);
  px_pool_free(p);
  pipesrv_stop();
}

/* Bodiless statuses and interim responses inside a pipeline: each response
 * still reaches its own request. */
static void test_px_upstream_h1_pipeline_bodiless_statuses(void **state) {
  struct px_pool *p = pipe_pool(8);
  struct res r[6] = {{0}};
  const char *paths[6] = {"/304", "/p1", "/204", "/100", "/head", "/p5"};
  for (int i = 0; i < 6; i++)
    start(p, i == 4 ? "HEAD" : "GET", paths[i], 0, &r[i]);
  run_all(6);
  for (int i = 0; i < 6; i++)
    assert_int_equal(r[i].err, 0);
  assert_int_equal(r[0].status, 304);
  assert_int_equal(r[0].body_len, 0);
  assert_ok_body(&r[1], "/p1");
  assert_int_equal(r[2].status, 204);
  assert_int_equal(r[2].body_len, 0);
  assert_ok_body(&r[3], "/100");
  assert_int_equal(r[4].status, 200);
  assert_int_equal(r[4].body_len, 0);
  assert_ok_body(&r[5], "/p5");
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.pipelined, 5);
  assert_int_equal(st.connects, 1);
  assert_int_equal(st.idle_connections, 1);
  px_pool_free(p);
  pipesrv_stop();
}

/* The backend does not answer a pipeline in time: every request of it times
 * out together. None is sent again past its deadline, so the other idle
 * connection is left alone and each request reports a timeout. */
static void test_px_upstream_h1_pipeline_all_time_out(void **state) {
  struct px_pool *p = pipe_pool(1);
  struct res w1 = {0}, w2 = {0};
  start(p, "GET", "/w1", 0, &w1);
  start(p, "GET", "/w2", 0, &w2);
  run_all(2);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.idle_connections, 2);
  g_be.pipeline = 4;
  g_be.timeout_ms = 100;
  struct res r[3] = {{0}};
  const char *paths[3] = {"/hold", "/b", "/c"};
  struct pass_starts ps = {p, 3, paths, r};
  start_in_one_pass(&ps);
  run_all(3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r[i].err, CUT_ERR_TIMEOUT);
    assert_int_equal(r[i].fail, PX_FAIL_TIMEOUT);
  }
  run_for_ms(50);
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 2);
  assert_int_equal(st.retries, 0);
  assert_int_equal(st.idle_connections, 1);
  assert_int_equal(st.active_exchanges, 0);
  px_pool_free(p);
  pipesrv_stop();
}

/* The caller pauses a response while the rest of the read (here the next
 * pipelined response) has to be kept for the resume, and keeping it runs out
 * of memory. Those bytes are gone, so the connection is out of sync: it is
 * closed, the paused response fails with a reset, and the request behind it,
 * which got nothing yet, is sent again on a new connection. */
static void test_px_upstream_h1_pipeline_paused_keep_nomem(void **state) {
  struct px_pool *p = pipe_pool(4);
  struct res a = {0}, b = {0};
  a.pause_on_first = 1;
  a.fail_keep = 1;
  start(p, "GET", "/a", 0, &a);
  start(p, "GET", "/b", 0, &b);
  run_all(2);
  assert_int_equal(g_fail_add, 0); /* the keep was tried and failed */
  assert_true(a.paused);
  assert_int_equal(a.done, 1);
  assert_int_not_equal(a.err, 0);
  assert_int_equal(a.fail, PX_FAIL_RESET);
  assert_non_null(strstr(a.cause, "out of memory keeping a paused response"));
  assert_ok_body(&b, "/b");
  run_for_ms(50);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.retries, 1);
  assert_int_equal(st.connects, 2);
  assert_int_equal(st.active_exchanges, 0);
  assert_int_equal(st.idle_connections, 1);
  assert_int_equal(g_pipe.accepted, 2);
  px_pool_free(p);
  pipesrv_stop();
}

/* ------------------------------------------------------------------ nghttp2 backend */

struct h2sess {
  nghttp2_session *s;
  struct bufferevent *bev;
  int live;
};

struct h2srv {
  struct evconnlistener *l;
  SSL_CTX *ssl;
  int port;
  int accepted;
  int hold;          /* answer only once this many requests are waiting */
  int nheld;
  struct {
    struct h2sess *ss;
    int32_t sid;
  } held[64];
  int max_open;      /* most requests waiting at once */
  int goaway_after_first;
  struct h2sess sess[16];
  int nsess;
};
static struct h2srv g_h2;

static void h2s_flush(struct h2sess *hs) {
  const uint8_t *d;
  ssize_t n;
  while ((n = nghttp2_session_mem_send(hs->s, &d)) > 0)
    bufferevent_write(hs->bev, d, (size_t)n);
}

/* Per-stream state of the test server. */
struct h2strm {
  char path[32];
  size_t remaining;   /* body bytes still to send */
  size_t received;    /* request body bytes */
  int req_trailers;   /* trailer fields received */
  int header_blocks;
  int sent_head;
};

static ssize_t h2s_body_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                           uint32_t *flags, nghttp2_data_source *src, void *ud) {
  struct h2strm *st = nghttp2_session_get_stream_user_data(s, sid);
  if (!st)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (strcmp(st->path, "/big") == 0 || strcmp(st->path, "/medium") == 0) {
    size_t n = st->remaining < len ? st->remaining : len;
    memset(buf, 'z', n);
    st->remaining -= n;
    if (st->remaining == 0)
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
  }
  int n;
  if (strcmp(st->path, "/echo") == 0)
    n = snprintf((char *)buf, len, "%zu %d", st->received, st->req_trailers);
  else
    n = snprintf((char *)buf, len, "hello h2 %d", sid);
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  if (strcmp(st->path, "/trailers") == 0) {
    nghttp2_nv t[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, 0}};
    nghttp2_submit_trailer(s, sid, t, 1);
    *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  }
  return n;
}

static void h2s_respond(struct h2sess *hs, int32_t sid) {
  nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0}};
  nghttp2_data_provider prd = {.read_callback = h2s_body_cb};
  nghttp2_submit_response(hs->s, sid, nv, 1, &prd);
}

static int h2s_begin_headers_cb(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    struct h2strm *st = calloc(1, sizeof *st);
    st->remaining = 2u * 1024 * 1024;
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
  }
  return 0;
}

static int h2s_header_cb(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                         void *ud) {
  struct h2strm *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
  if (!st)
    return 0;
  if (f->headers.cat == NGHTTP2_HCAT_HEADERS)
    st->req_trailers++;
  else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
    snprintf(st->path, sizeof st->path, "%.*s", (int)valuelen, value);
    if (strcmp(st->path, "/medium") == 0)
      st->remaining = 100000;
  }
  return 0;
}

static int h2s_data_cb(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *d,
                       size_t len, void *ud) {
  struct h2strm *st = nghttp2_session_get_stream_user_data(s, sid);
  if (st)
    st->received += len;
  return 0;
}

static int h2s_close_cb(nghttp2_session *s, int32_t sid, uint32_t code, void *ud) {
  free(nghttp2_session_get_stream_user_data(s, sid));
  return 0;
}

static int h2s_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  struct h2sess *hs = ud;
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    if (g_h2.hold) {
      g_h2.held[g_h2.nheld].ss = hs;
      g_h2.held[g_h2.nheld++].sid = f->hd.stream_id;
      if (g_h2.nheld > g_h2.max_open)
        g_h2.max_open = g_h2.nheld;
      if (g_h2.nheld >= g_h2.hold) {
        if (g_h2.goaway_after_first) {
          /* Only the first stream was processed; the others are refused. */
          nghttp2_submit_goaway(hs->s, NGHTTP2_FLAG_NONE, g_h2.held[0].sid, NGHTTP2_NO_ERROR,
                                NULL, 0);
          h2s_respond(g_h2.held[0].ss, g_h2.held[0].sid);
          g_h2.goaway_after_first = 0;
          g_h2.hold = 0;
        } else {
          for (int i = 0; i < g_h2.nheld; i++)
            h2s_respond(g_h2.held[i].ss, g_h2.held[i].sid);
        }
        g_h2.nheld = 0;
      }
    } else {
      h2s_respond(hs, f->hd.stream_id);
    }
  }
  return 0;
}

static void h2s_free(struct h2sess *hs) {
  if (!hs->live)
    return;
  /* Streams still open (the client went away mid-request) get no close callback. */
  int32_t last = nghttp2_session_get_last_proc_stream_id(hs->s);
  for (int32_t sid = 1; sid <= last; sid += 2)
    free(nghttp2_session_get_stream_user_data(hs->s, sid));
  nghttp2_session_del(hs->s);
  bufferevent_free(hs->bev);
  hs->live = 0;
}

static void h2s_read_cb(struct bufferevent *bev, void *arg) {
  struct h2sess *hs = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  size_t n = evbuffer_get_length(in);
  const uint8_t *d = evbuffer_pullup(in, -1);
  if (nghttp2_session_mem_recv(hs->s, d, n) < 0) {
    h2s_free(hs);
    return;
  }
  evbuffer_drain(in, n);
  h2s_flush(hs);
}

static void h2s_event_cb(struct bufferevent *bev, short what, void *arg) {
  struct h2sess *hs = arg;
  if (what & BEV_EVENT_CONNECTED)
    return;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
    h2s_free(hs);
}

static void h2s_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg) {
  g_h2.accepted++;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (g_h2.nsess == 16) {
    close(fd);
    return;
  }
  struct h2sess *hs = &g_h2.sess[g_h2.nsess++];
  if (g_h2.ssl)
    hs->bev = bufferevent_openssl_socket_new(g_base, fd, SSL_new(g_h2.ssl),
                                             BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
  else
    hs->bev = bufferevent_socket_new(g_base, fd, BEV_OPT_CLOSE_ON_FREE);
  nghttp2_session_callbacks *cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2s_frame_recv_cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, h2s_begin_headers_cb);
  nghttp2_session_callbacks_set_on_header_callback(cbs, h2s_header_cb);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2s_data_cb);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2s_close_cb);
  nghttp2_session_server_new(&hs->s, cbs, hs);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
  nghttp2_submit_settings(hs->s, NGHTTP2_FLAG_NONE, iv, 1);
  hs->live = 1;
  bufferevent_setcb(hs->bev, h2s_read_cb, NULL, h2s_event_cb, hs);
  bufferevent_enable(hs->bev, EV_READ | EV_WRITE);
  h2s_flush(hs);
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg) {
  return nghttp2_select_next_protocol((unsigned char **)out, outlen, in, inlen) == 1
             ? SSL_TLSEXT_ERR_OK
             : SSL_TLSEXT_ERR_NOACK;
}

static char g_cert[512], g_key[512];

static void h2srv_start(int tls) {
  memset(&g_h2, 0, sizeof g_h2);
  if (tls) {
    const char *src = getenv("CUTOVER_SOURCE_DIR");
    if (!src)
      src = CUTOVER_SOURCE_DIR;
    snprintf(g_cert, sizeof g_cert, "%s/tests/unit/data/px_upstream_cert.pem", src);
    snprintf(g_key, sizeof g_key, "%s/tests/unit/data/px_upstream_key.pem", src);
    g_h2.ssl = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate_chain_file(g_h2.ssl, g_cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(g_h2.ssl, g_key, SSL_FILETYPE_PEM), 1);
    SSL_CTX_set_alpn_select_cb(g_h2.ssl, alpn_select_cb, NULL);
  }
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  g_h2.l = evconnlistener_new_bind(g_base, h2s_accept_cb, NULL,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                   (struct sockaddr *)&sin, sizeof sin);
  assert_non_null(g_h2.l);
  g_h2.port = bound_port(evconnlistener_get_fd(g_h2.l));
}

static void h2srv_stop(void) {
  for (int i = 0; i < g_h2.nsess; i++)
    h2s_free(&g_h2.sess[i]);
  evconnlistener_free(g_h2.l);
  SSL_CTX_free(g_h2.ssl);
}

static void test_px_upstream_h2c_multiplexing(void **state) {
  h2srv_start(0);
  g_h2.hold = 10; /* answers only when all 10 are open at once: proves multiplexing */
  backend_init(CFG_PROTO_H2C, 1, &g_h2.port);
  struct px_pool *p = pool_new();
  struct res r[10] = {0};
  for (int i = 0; i < 10; i++)
    start(p, "GET", "/", 0, &r[i]);
  run_all(10);
  for (int i = 0; i < 10; i++) {
    assert_int_equal(r[i].err, 0);
    assert_int_equal(r[i].status, 200);
    assert_memory_equal(r[i].body, "hello h2", 8);
  }
  assert_int_equal(g_h2.accepted, 1);
  assert_int_equal(g_h2.max_open, 10);
  /* and the connection is reused afterwards */
  g_h2.hold = 0;
  struct res r2 = {0};
  start(p, "GET", "/", 0, &r2);
  run_all(1);
  assert_int_equal(r2.err, 0);
  assert_int_equal(g_h2.accepted, 1);
  px_pool_free(p);
  h2srv_stop();
}

static void test_px_upstream_h2c_max_streams(void **state) {
  h2srv_start(0);
  backend_init(CFG_PROTO_H2C, 1, &g_h2.port);
  g_be.max_streams = 2;
  struct px_pool *p = pool_new();
  struct res r[5] = {0};
  for (int i = 0; i < 5; i++)
    start(p, "GET", "/", 0, &r[i]);
  run_all(5);
  for (int i = 0; i < 5; i++)
    assert_int_equal(r[i].err, 0);
  assert_int_equal(g_h2.accepted, 3); /* 2 + 2 + 1 streams */
  px_pool_free(p);
  h2srv_stop();
}

/* An h2c pool with one connection open and one request served on it. */
static struct px_pool *h2c_warm_pool(void) {
  h2srv_start(0);
  backend_init(CFG_PROTO_H2C, 1, &g_h2.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  start(p, "GET", "/", 0, &r);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_int_equal(g_h2.accepted, 1);
  return p;
}

/* A session that refuses the stream (nghttp2_submit_request fails) does not
 * strand the request: it goes on another connection. */
static void test_px_upstream_h2c_submit_refused(void **state) {
  struct px_pool *p = h2c_warm_pool();
  g_fail_submit = 1;
  struct res r2 = {0};
  start(p, "GET", "/", 0, &r2);
  run_all(1);
  assert_int_equal(g_fail_submit, 0);
  assert_int_equal(r2.err, 0);
  assert_int_equal(r2.status, 200);
  assert_memory_equal(r2.body, "hello h2", 8);
  assert_int_equal(g_h2.accepted, 2);
  px_pool_free(p);
  h2srv_stop();
}

/* After the warm session failed: the next request opens a second one and is
 * answered. */
static void assert_next_on_new_session(struct px_pool *p) {
  struct res r = {0};
  start(p, "GET", "/", 0, &r);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.status, 200);
  assert_int_equal(g_h2.accepted, 2);
}

/* The session fails while sending a new request's frames: the request fails
 * from the loop (not inside px_exchange_start), and the next one gets a new
 * connection. */
static void test_px_upstream_h2c_send_fails(void **state) {
  struct px_pool *p = h2c_warm_pool();
  g_be.retries = 0;
  g_fail_send = 1;
  struct res r2 = {0};
  start(p, "GET", "/", 0, &r2);
  assert_int_equal(r2.done, 0);
  run_all(1);
  assert_int_equal(g_fail_send, 0);
  assert_int_equal(r2.fail, PX_FAIL_PROTOCOL);
  assert_next_on_new_session(p);
  px_pool_free(p);
  h2srv_stop();
}

/* The session's frames cannot be put in the output (out of memory): they are
 * lost, so the session is out of step. Its exchanges fail and it closes; the
 * next request opens a new one. */
static void test_px_upstream_h2c_write_nomem(void **state) {
  struct px_pool *p = h2c_warm_pool();
  g_be.retries = 0;
  struct res r = {0};
  g_fail_add = 1;
  start(p, "GET", "/", 0, &r);
  run_all(1);
  assert_int_equal(g_fail_add, 0);
  assert_int_equal(r.fail, PX_FAIL_PROTOCOL);
  assert_non_null(strstr(r.cause, "out of memory writing"));
  assert_next_on_new_session(p);
  px_pool_free(p);
  h2srv_stop();
}

/* The session fails while px_exchange_send_body hands it request body bytes:
 * the caller still holds a live exchange when the call returns, and the
 * failure comes from the loop (the session was written there, and the
 * exchange freed inside the call). */
static void test_px_upstream_h2c_send_body_fails(void **state) {
  struct px_pool *p = h2c_warm_pool();
  g_be.retries = 0;
  struct res r = {0};
  struct px_exchange *x = start(p, "POST", "/echo", 1, &r);
  run_for_ms(50); /* the stream is open and waits for its body */
  assert_int_equal(r.done, 0);
  g_fail_send = 1;
  assert_int_equal(px_exchange_send_body(x, (const uint8_t *)"abc", 3), 0);
  assert_int_equal(r.done, 0);
  run_all(1);
  assert_int_equal(g_fail_send, 0);
  assert_int_equal(r.fail, PX_FAIL_PROTOCOL);
  assert_non_null(strstr(r.cause, "HTTP/2 session"));
  assert_next_on_new_session(p);
  px_pool_free(p);
  h2srv_stop();
}

/* The session fails while the RST_STREAM of a cancelled exchange goes out:
 * the other exchange on the connection fails from the loop, not inside the
 * caller's px_exchange_cancel (whose caller may be tearing down what that
 * exchange's on_done uses). */
static void test_px_upstream_h2c_cancel_send_fails(void **state) {
  struct px_pool *p = h2c_warm_pool();
  g_be.retries = 0;
  g_h2.hold = 3; /* neither is answered */
  struct res a = {0}, b = {0};
  struct px_exchange *xa = start(p, "GET", "/", 0, &a);
  start(p, "GET", "/", 0, &b);
  run_for_ms(50);
  assert_int_equal(a.done + b.done, 0);
  g_fail_send = 1;
  px_exchange_cancel(xa);
  assert_int_equal(b.done, 0);
  run_all(1);
  assert_int_equal(g_fail_send, 0);
  assert_int_equal(a.done, 0);
  assert_int_equal(b.fail, PX_FAIL_PROTOCOL);
  assert_non_null(strstr(b.cause, "HTTP/2 session"));
  px_pool_free(p);
  h2srv_stop();
}

/* An on_done that cancels another exchange that has not ended yet, as a
 * caller tearing down both does. */
static struct px_exchange *g_cancel_x;
static struct res *g_cancel_res;
static void cancel_other_on_done_cb(struct px_exchange *x, int err, enum px_fail fail,
                                    const char *cause, int got_response, void *user_data) {
  on_done_cb(x, err, fail, cause, got_response, user_data);
  if (!g_cancel_res->done)
    px_exchange_cancel(g_cancel_x);
}

/* An exchange times out and the session fails while its RST_STREAM goes out:
 * the other exchange on the connection fails from the loop, after the first
 * one's on_done, not from inside its ending (where the first one, half taken
 * off the connection, may still be cancelled). */
static void test_px_upstream_h2c_timeout_send_fails(void **state) {
  struct px_pool *p = h2c_warm_pool();
  g_be.retries = 0;
  g_be.timeout_ms = 500; /* a times out well after b's stream is out, even on a slow machine */
  g_h2.hold = 3; /* neither is answered */
  struct res a = {0}, b = {0};
  struct px_exchange *xa = start(p, "GET", "/", 0, &a);
  run_for_ms(100);
  struct px_exchange_cbs cbs = g_cbs;
  cbs.on_done = cancel_other_on_done_cb;
  g_cancel_x = xa;
  g_cancel_res = &a;
  struct px_request_head h;
  req_init(&h, "GET", "/");
  assert_int_equal(px_exchange_start(p, &h, 0, &cbs, &b, &b.x), 0);
  run_for_ms(20); /* b's stream is out */
  g_fail_send = 1; /* sending a's RST_STREAM when it times out */
  run_all(2);
  assert_int_equal(g_fail_send, 0);
  assert_int_equal(a.fail, PX_FAIL_TIMEOUT);
  assert_int_equal(b.fail, PX_FAIL_PROTOCOL);
  assert_non_null(strstr(b.cause, "HTTP/2 session"));
  px_pool_free(p);
  h2srv_stop();
}

static void test_px_upstream_h2_tls_verify(void **state) {
  h2srv_start(1);
  backend_init(CFG_PROTO_H2, 1, &g_h2.port);
  g_be.has_tls = 1;
  g_be.tls.sni = "localhost";
  struct px_pool *p = pool_new(); /* system CAs: our self-signed cert is unknown */
  struct res r = {0};
  start(p, "GET", "/", 0, &r);
  run_all(1);
  assert_int_equal(r.fail, PX_FAIL_TLS);
  assert_int_equal(r.err, CUT_ERR_TLS);
  assert_non_null(strstr(r.cause, "certificate"));
  px_pool_free(p);

  g_be.tls.ca = g_cert;
  p = pool_new();
  struct res r2 = {0};
  start(p, "GET", "/", 0, &r2);
  run_all(1);
  assert_int_equal(r2.err, 0);
  assert_int_equal(r2.status, 200);
  assert_memory_equal(r2.body, "hello h2", 8);
  px_pool_free(p);

  g_be.tls.sni = "wrong.example"; /* right CA, wrong name */
  p = pool_new();
  struct res r3 = {0};
  start(p, "GET", "/", 0, &r3);
  run_all(1);
  assert_int_equal(r3.fail, PX_FAIL_TLS);
  px_pool_free(p);
  h2srv_stop();
}

static void test_px_upstream_h2c_response_backpressure(void **state) {
  h2srv_start(0);
  backend_init(CFG_PROTO_H2C, 1, &g_h2.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  r.pause_on_first = 1;
  struct px_exchange *x = start(p, "GET", "/big", 0, &r);
  run_for_ms(300);
  assert_int_equal(r.done, 0);
  assert_true(r.paused);
  size_t pending = x->h2_pending ? evbuffer_get_length(x->h2_pending) : 0;
  /* The server may send at most one stream window beyond what was delivered. */
  assert_true(r.body_len + pending <= PX_H2_WINDOW + 16384);
  assert_true(g_h2.sess[0].live);
  assert_int_equal(nghttp2_session_get_stream_remote_window_size(g_h2.sess[0].s, 1), 0);
  run_for_ms(100);
  size_t got = r.body_len;
  px_exchange_resume(x);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_true(got < 2u * 1024 * 1024);
  assert_int_equal(r.body_len, 2u * 1024 * 1024);
  px_pool_free(p);
  h2srv_stop();
}

/* The whole response arrives while the caller is paused, then the backend
 * goes away: the held data must still be delivered in full. */
static void test_px_upstream_h2c_paused_outlives_connection(void **state) {
  h2srv_start(0);
  backend_init(CFG_PROTO_H2C, 1, &g_h2.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  r.pause_on_first = 1;
  struct px_exchange *x = start(p, "GET", "/medium", 0, &r);
  run_for_ms(200);
  assert_int_equal(r.done, 0);
  assert_true(x->h2_closed);
  h2srv_stop(); /* closes the connection */
  run_for_ms(100);
  assert_int_equal(r.done, 0);
  assert_int_equal(x->state, XS_DRAINING);
  px_exchange_resume(x);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.body_len, 100000);
  px_pool_free(p);
}

static void test_px_upstream_h2c_request_body_and_trailers(void **state) {
  h2srv_start(0);
  backend_init(CFG_PROTO_H2C, 1, &g_h2.port);
  struct px_pool *p = pool_new();
  struct res r = {0};
  struct px_exchange_cbs cbs = g_cbs;
  cbs.on_request_drain = streamer_drain_cb;
  struct px_request_head h;
  req_init(&h, "POST", "/echo");
  struct streamer s = {.total = 3u * 1024 * 1024};
  g_streamer = &s;
  struct px_headers tr = {0};
  px_headers_add(&tr, "x-sum", 5, "42", 2);
  s.trailers = &tr;
  assert_int_equal(px_exchange_start(p, &h, 1, &cbs, &r, &s.x), 0);
  stream_more(&s);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_string_equal(r.body, "3145728 1");
  assert_true(s.fulls > 0);
  px_headers_clear(&tr);

  struct res r2 = {0};
  start(p, "GET", "/trailers", 0, &r2);
  run_all(1);
  assert_int_equal(r2.err, 0);
  assert_int_equal(r2.ntrailers, 1);
  assert_string_equal(r2.trailer, "grpc-status=0");
  px_pool_free(p);
  h2srv_stop();
}

static void test_px_upstream_h2c_goaway_retry(void **state) {
  h2srv_start(0);
  g_h2.hold = 3;
  g_h2.goaway_after_first = 1;
  backend_init(CFG_PROTO_H2C, 1, &g_h2.port);
  struct px_pool *p = pool_new();
  struct res r[3] = {0};
  for (int i = 0; i < 3; i++)
    start(p, "GET", "/", 0, &r[i]);
  run_all(3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(r[i].err, 0);
  assert_int_equal(g_h2.accepted, 2);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.retries, 2);
  px_pool_free(p);
  h2srv_stop();
}

static void test_px_upstream_h2c_goaway_post_not_retried(void **state) {
  h2srv_start(0);
  g_h2.hold = 2;
  g_h2.goaway_after_first = 1;
  backend_init(CFG_PROTO_H2C, 1, &g_h2.port);
  struct px_pool *p = pool_new();
  struct res r[2] = {0};
  start(p, "GET", "/", 0, &r[0]);
  start(p, "POST", "/", 0, &r[1]);
  run_all(2);
  assert_int_equal(r[0].err, 0);
  assert_int_equal(r[1].fail, PX_FAIL_RESET);
  assert_non_null(strstr(r[1].cause, "refused"));
  px_pool_free(p);
  h2srv_stop();
}

/* Cancelling an HTTP/2 exchange resets its stream only; the connection goes on. */
static void test_px_upstream_h2c_cancel_keeps_connection(void **state) {
  h2srv_start(0);
  backend_init(CFG_PROTO_H2C, 1, &g_h2.port);
  struct px_pool *p = pool_new();
  /* 20 paused streams of up to one stream window each, cancelled: more than
   * the 4 MiB connection window if their bytes were not given back. */
  for (int i = 0; i < 20; i++) {
    struct res r = {0};
    r.pause_on_first = 1;
    struct px_exchange *x = start(p, "GET", "/big", 0, &r);
    run_for_ms(40);
    assert_true(r.paused);
    assert_int_equal(r.done, 0);
    px_exchange_cancel(x);
  }
  struct res r2 = {0};
  start(p, "GET", "/big", 0, &r2);
  run_all(1);
  assert_int_equal(r2.err, 0);
  assert_int_equal(r2.body_len, 2u * 1024 * 1024);
  assert_int_equal(g_h2.accepted, 1);
  struct px_conn *c = p->hosts[0].conns.tqh_first;
  assert_non_null(c);
  assert_int_equal(c->nstreams, 0);
  px_pool_free(p);
  h2srv_stop();
}

static struct bufferevent *h1tls_bevcb(struct event_base *base, void *arg) {
  return bufferevent_openssl_socket_new(base, -1, SSL_new(arg), BUFFEREVENT_SSL_ACCEPTING,
                                        BEV_OPT_CLOSE_ON_FREE);
}

static void test_px_upstream_h1_tls_and_content_length(void **state) {
  h1srv_start();
  h2srv_start(1); /* for its certificate paths and server context */
  evhttp_set_bevcb(g_h1.http, h1tls_bevcb, g_h2.ssl);
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  g_be.has_tls = 1;
  g_be.tls.ca = g_cert;
  g_be.tls.sni = "localhost";
  struct px_pool *p = pool_new();
  struct px_request_head h;
  req_init(&h, "PUT", "/echo");
  h.content_length = 5;
  struct res r = {0};
  struct px_exchange *x = NULL;
  assert_int_equal(px_exchange_start(p, &h, 1, &g_cbs, &r, &x), 0);
  assert_int_equal(px_exchange_send_body(x, (const uint8_t *)"hello", 5), 0);
  assert_int_equal(px_exchange_end_body(x, NULL), 0);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_string_equal(r.body, "5");
  struct res r2 = {0};
  start(p, "GET", "/hello", 0, &r2);
  run_all(1);
  assert_int_equal(r2.err, 0);
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 1); /* the TLS connection was kept alive */
  px_pool_free(p);
  h2srv_stop();
  h1srv_stop();
}

/* Pipelining over TLS (bufferevent connections): a batch shares the one
 * connection and every response reaches its own exchange. */
static void test_px_upstream_h1_tls_pipeline(void **state) {
  h1srv_start();
  h2srv_start(1);
  evhttp_set_bevcb(g_h1.http, h1tls_bevcb, g_h2.ssl);
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  g_be.has_tls = 1;
  g_be.tls.ca = g_cert;
  g_be.tls.sni = "localhost";
  g_be.pipeline = 4;
  struct px_pool *p = pool_new();
  struct res w = {0};
  start(p, "GET", "/hello", 0, &w);
  run_all(1);
  assert_int_equal(w.err, 0);
  struct res r[4] = {{0}};
  const char *paths[4] = {"/hello", "/chunked", "/nope", "/hello"};
  for (int i = 0; i < 4; i++)
    start(p, "GET", paths[i], 0, &r[i]);
  run_all(4);
  for (int i = 0; i < 4; i++)
    assert_int_equal(r[i].err, 0);
  assert_string_equal(r[0].body, "hello from h1");
  assert_string_equal(r[1].body, "part0;part1;part2;");
  assert_int_equal(r[2].status, 404);
  assert_string_equal(r[3].body, "hello from h1");
  struct px_pool_stats st;
  px_pool_stats(p, &st);
  assert_int_equal(st.connects, 1);
  assert_int_equal(st.pipelined, 3);
  px_pool_free(p);
  h2srv_stop();
  h1srv_stop();
}

static void test_px_upstream_dns_name(void **state) {
  h1srv_start();
  char hosts[] = "/tmp/px_upstream_hostsXXXXXX";
  int fd = mkstemp(hosts);
  assert_true(fd >= 0);
  const char line[] = "127.0.0.1 backend.test\n";
  assert_int_equal(write(fd, line, sizeof line - 1), (ssize_t)(sizeof line - 1));
  close(fd);
  struct evdns_base *dns = evdns_base_new(g_base, 0);
  assert_int_equal(evdns_base_load_hosts(dns, hosts), 0);
  unlink(hosts);
  backend_init(CFG_PROTO_HTTP1, 1, &g_h1.port);
  g_addrs[0].host = "backend.test";
  struct px_pool *p = NULL;
  char err[256];
  assert_int_equal(px_pool_new(&p, g_base, &g_be, NULL, err, sizeof err), CUT_ERR_INVALID);
  assert_non_null(strstr(err, "resolver"));
  struct px_pool_opts o = {.dns = dns};
  assert_int_equal(px_pool_new(&p, g_base, &g_be, &o, err, sizeof err), 0);
  struct res r = {0};
  start(p, "GET", "/hello", 0, &r);
  run_all(1);
  assert_int_equal(r.err, 0);
  assert_string_equal(px_exchange_host(NULL), "");
  px_pool_free(p);
  evdns_base_free(dns, 0);
  h1srv_stop();
}

/* Backends as the config loader builds them (defaults filled in, TLS verified). */
static void test_px_upstream_from_config(void **state) {
  h1srv_start();
  h2srv_start(1);
  char yaml[1024];
  int n = snprintf(yaml, sizeof yaml,
                   "listeners:\n  - name: main\n    listen: 127.0.0.1:8080\n"
                   "backends:\n"
                   "  plain:\n    hosts: [\"127.0.0.1:%d\"]\n"
                   "  secure:\n    hosts: [\"127.0.0.1:%d\"]\n    protocol: h2\n"
                   "    tls:\n      ca: %s\n      sni: localhost\n"
                   "routes:\n  - name: r\n    backend: plain\n",
                   g_h1.port, g_h2.port, g_cert);
  struct cfg *c = NULL;
  char *errs = NULL;
  int rv = cfg_load_buffer("upstream-test.yaml", yaml, (size_t)n, &c, &errs);
  if (rv)
    fprintf(stderr, "%s\n", errs ? errs : "?");
  assert_int_equal(rv, 0);
  free(errs);
  for (size_t i = 0; i < c->nbackends; i++) {
    struct px_pool *p = NULL;
    char err[256];
    assert_int_equal(px_pool_new(&p, g_base, &c->backends[i], NULL, err, sizeof err), 0);
    struct res r = {0};
    start(p, "GET", "/hello", 0, &r);
    run_all(1);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    px_pool_free(p);
  }
  cfg_unref(c);
  h2srv_stop();
  h1srv_stop();
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_success, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_keepalive_reuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_chunked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_idle_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_trailers_and_100, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_close_delimited, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_head_no_body, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_reset_mid_response, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_bad_response, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_connect_refused_post_no_retry, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_connect_refused_get_retried, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_first_byte_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_stalled_body_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_no_host_when_ejected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_wait_queue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_wait_queue_heads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_response_backpressure, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_request_body_streaming, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_least_request, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_batches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_wait_queue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_off_by_default, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_cold_burst, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_cold_mixed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_cold_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_cold_later_pass, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_methods, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_close_resends, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_abrupt_close, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_cancel_queued, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_cancel_queued_nomem, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_head_cancelled, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_write_nomem_fails_later, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_body_write_nomem, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_wait_queue_nomem, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_queued_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_pool_free, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_paused_then_close, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_cancelled_behind_close, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_bodiless_statuses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_all_time_out, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_pipeline_paused_keep_nomem, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_multiplexing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_max_streams, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_submit_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_send_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_write_nomem, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_send_body_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_cancel_send_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_timeout_send_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2_tls_verify, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_from_config, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_cancel_keeps_connection, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_tls_and_content_length, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h1_tls_pipeline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_dns_name, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_response_backpressure, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_request_body_and_trailers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_goaway_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_paused_outlives_connection, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_px_upstream_h2c_goaway_post_not_retried, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
