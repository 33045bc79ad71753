/* Fuzz target: arbitrary client bytes into a proxy connection (HTTP/1.1 or
 * HTTP/2, chosen by the preface as on a cleartext listener), with an in-memory
 * upstream that answers every request. The frontends must neither crash nor
 * leak, whatever the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proxy/px_server.h"
#include "proxy/px_server_int.h"

struct px_pool {
  struct event_base *base;
};

struct px_exchange {
  struct px_exchange_cbs cbs;
  void *ud;
  struct event *ev;
  int step;
};

static int pool_new(struct px_pool **out, struct event_base *base, const struct cfg_backend *b,
                    const struct px_pool_opts *o, char *err, size_t errlen) {
  *out = calloc(1, sizeof **out);
  if (!*out)
    return -1;
  (*out)->base = base;
  return 0;
}

static void pool_free(struct px_pool *p) { free(p); }

static void x_free(struct px_exchange *x) {
  event_free(x->ev);
  free(x);
}

/* Answers in three steps (head, body, end) so responses interleave with input. */
static void x_step(evutil_socket_t fd, short what, void *arg) {
  struct px_exchange *x = arg;
  if (x->step == 0) {
    struct px_response_head h = {.status = 200, .content_length = -1};
    x->step++;
    if (x->cbs.on_response(x, &h, x->ud) < 0)
      return;
  } else if (x->step == 1) {
    static const uint8_t body[] = "{\"ok\":true}";
    x->step++;
    x->cbs.on_body(x, body, sizeof body - 1, x->ud);
  } else {
    x->cbs.on_done(x, 0, PX_FAIL_NONE, NULL, 1, x->ud);
    x_free(x);
    return;
  }
  struct timeval tv = {0, 0};
  event_add(x->ev, &tv);
}

static int x_start(struct px_pool *p, const struct px_request_head *head, int has_body,
                   const struct px_exchange_cbs *cbs, void *ud, struct px_exchange **out) {
  struct px_exchange *x = calloc(1, sizeof *x);
  if (!x)
    return -1;
  x->cbs = *cbs;
  x->ud = ud;
  x->ev = event_new(p->base, -1, 0, x_step, x);
  struct timeval tv = {0, 0};
  event_add(x->ev, &tv);
  *out = x;
  return 0;
}

static int x_send_body(struct px_exchange *x, const uint8_t *d, size_t n) { return 0; }
static int x_end_body(struct px_exchange *x, const struct px_headers *t) { return 0; }
static void x_resume(struct px_exchange *x) {}
static void x_cancel(struct px_exchange *x) { x_free(x); }
static const char *x_host(const struct px_exchange *x) { return "127.0.0.1:1"; }

static const struct px_upstream_ops ops = {pool_new, pool_free, x_start,  x_send_body,
                                           x_end_body, x_resume, x_cancel, x_host, NULL};

static int decide(const struct cfg *cfg, const struct dial_store *store,
                  const struct cfg_route *route, const struct dial_request *req, int64_t now,
                  struct dial_decision *out) {
  memset(out, 0, sizeof *out);
  out->backend_index = route->backend_index;
  out->reason = "default";
  return 0;
}

static const struct px_decider decider = {decide, NULL, NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct cfg_backend backends[1] = {{.name = "app"}};
  static struct cfg_route routes[1] = {{.name = "all", .backend = "app", .decision_header = 1}};
  static struct cfg cfg;
  cfg.backends = backends;
  cfg.nbackends = 1;
  cfg.routes = routes;
  cfg.nroutes = 1;
  cfg.request_id_header = "x-request-id";
  cfg.limits.max_concurrent_streams = 16;
  cfg.limits.max_header_list_bytes = 4096;
  cfg.limits.max_headers = 32;
  cfg.limits.max_request_body_bytes = 1 << 16;

  struct px_server *srv = NULL;
  struct px_server_opts o = {.cfg = &cfg, .ops = &ops, .decider = &decider, .workers = 1};
  if (px_server_new(&srv, &o, NULL, 0) < 0)
    return 0;
  struct px_worker *w = &srv->workers[0];
  struct bufferevent *pair[2];
  if (bufferevent_pair_new(w->base, 0, pair) < 0) {
    px_server_free(srv);
    return 0;
  }
  if (px_client_attach(w, pair[0], 0, "127.0.0.1", NULL) < 0) {
    bufferevent_free(pair[1]);
    px_server_free(srv);
    return 0;
  }
  bufferevent_enable(pair[1], EV_READ | EV_WRITE);
  /* feed in a few pieces so partial frames and heads are exercised too */
  size_t off = 0, piece = size / 3 + 1;
  while (off < size) {
    size_t n = size - off < piece ? size - off : piece;
    bufferevent_write(pair[1], data + off, n);
    off += n;
    for (int i = 0; i < 8; i++)
      event_base_loop(w->base, EVLOOP_NONBLOCK);
    struct evbuffer *in = bufferevent_get_input(pair[1]);
    evbuffer_drain(in, evbuffer_get_length(in)); /* the client reads everything */
  }
  for (int i = 0; i < 16; i++)
    event_base_loop(w->base, EVLOOP_NONBLOCK);
  bufferevent_free(pair[1]); /* the client goes away */
  for (int i = 0; i < 8; i++)
    event_base_loop(w->base, EVLOOP_NONBLOCK);
  px_server_free(srv);
  return 0;
}
