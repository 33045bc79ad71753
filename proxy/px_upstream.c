/* px_upstream: per-worker pools of backend connections, host picking, timeouts and retries. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/cut_err.h"
#include "proxy/px_tls_client.h"
#include "proxy/px_upstream_int.h"

/* Sanitizer builds free every exchange at once, so use-after-free is caught. */
#if defined(__SANITIZE_ADDRESS__)
#define PX_NO_FREELIST 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PX_NO_FREELIST 1
#endif
#endif
#ifndef PX_NO_FREELIST
#define PX_NO_FREELIST 0
#endif
#define PX_XFREE_MAX 512u

uint64_t px_now_ms(struct px_pool *p) {
  struct timeval tv;
  event_base_gettimeofday_cached(p->base, &tv);
  return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static void set_timer(struct event *ev, uint64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000u), (suseconds_t)((ms % 1000u) * 1000u)};
  evtimer_add(ev, &tv);
}

/* The idle timeout of connections and the first deadline of exchanges are
 * the same for every timer of a pool: they go to libevent's common-timeout
 * queues (constant-time add and delete) instead of its heap. */
static const struct timeval *common_timeout(struct event_base *base, uint64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000u), (suseconds_t)((ms % 1000u) * 1000u)};
  return event_base_init_common_timeout(base, &tv);
}

static void pool_timer(struct px_pool *p, struct event *ev, uint64_t ms) {
  if (ms == p->idle_ms && p->idle_ctv)
    evtimer_add(ev, p->idle_ctv);
  else if (ms == p->first_ms && p->first_ctv)
    evtimer_add(ev, p->first_ctv);
  else
    set_timer(ev, ms);
}

static int fail_code(enum px_fail f) {
  switch (f) {
  case PX_FAIL_CONNECT:
    return CUT_ERR_NET;
  case PX_FAIL_TLS:
    return CUT_ERR_TLS;
  case PX_FAIL_NO_HOST:
    return CUT_ERR_AGAIN;
  case PX_FAIL_TIMEOUT:
    return CUT_ERR_TIMEOUT;
  case PX_FAIL_RESET:
    return CUT_ERR_CLOSED;
  case PX_FAIL_PROTOCOL:
    return CUT_ERR_PROTO;
  default:
    return CUT_ERR_STATE;
  }
}

/* ---------------------------------------------------------------- pool */

int px_pool_new(struct px_pool **out, struct event_base *base, const struct cfg_backend *be,
                const struct px_pool_opts *opts, char *err, size_t errlen) {
  *out = NULL;
  if (!base || !be || be->nhosts == 0)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "backend %s has no hosts",
                    be && be->name ? be->name : "?");
  struct px_pool *p = calloc(1, sizeof *p);
  if (!p)
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
  p->base = base;
  p->be = be;
  TAILQ_INIT(&p->all);
  if (opts)
    p->opts = *opts;
  p->watermark = p->opts.body_watermark ? p->opts.body_watermark : 64u * 1024u;
  p->idle_ms = be->idle_timeout_ms ? be->idle_timeout_ms : 60000;
  p->idle_ctv = common_timeout(base, p->idle_ms);
  p->first_ms = be->timeout_ms;
  if (be->total_timeout_ms && (!p->first_ms || be->total_timeout_ms < p->first_ms))
    p->first_ms = be->total_timeout_ms;
  p->first_ctv = p->first_ms ? common_timeout(base, p->first_ms) : NULL;
  p->hosts = calloc(be->nhosts, sizeof *p->hosts);
  if (!p->hosts) {
    free(p);
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
  }
  p->nhosts = be->nhosts;
  for (size_t i = 0; i < be->nhosts; i++) {
    struct px_host *h = &p->hosts[i];
    const struct cfg_addr *a = &be->hosts[i];
    h->pool = p;
    h->addr = a;
    h->healthy = 1;
    TAILQ_INIT(&h->conns);
    TAILQ_INIT(&h->idle);
    TAILQ_INIT(&h->waitq);
    if (a->is_ipv6)
      snprintf(h->name, sizeof h->name, "[%s]:%u", a->host, a->port);
    else
      snprintf(h->name, sizeof h->name, "%s:%u", a->host, a->port);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&h->sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->sa;
    if (evutil_inet_pton(AF_INET, a->host, &s4->sin_addr) == 1) {
      s4->sin_family = AF_INET;
      s4->sin_port = htons(a->port);
      h->salen = sizeof *s4;
    } else if (evutil_inet_pton(AF_INET6, a->host, &s6->sin6_addr) == 1) {
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons(a->port);
      h->salen = sizeof *s6;
    } else if (!p->opts.dns) {
      px_pool_free(p);
      return cut_errf(err, errlen, CUT_ERR_INVALID,
                      "backend %s: host %s is not an IP address and no resolver was given",
                      be->name ? be->name : "?", a->host);
    }
  }
  if ((be->protocol == CFG_PROTO_H2 || be->has_tls) && !p->opts.tls) {
    int rv = px_tls_client_ctx_new(&p->own_tls, &be->tls, be->protocol != CFG_PROTO_HTTP1, err,
                                   errlen);
    if (rv < 0) {
      px_pool_free(p);
      return rv;
    }
    p->opts.tls = p->own_tls;
  }
  *out = p;
  return 0;
}

static void x_free(struct px_exchange *x);
static void x_unlink(struct px_exchange *x);

void px_pool_free(struct px_pool *p) {
  if (!p)
    return;
  struct px_conn *c;
  struct px_exchange *x;
  for (size_t i = 0; p->hosts && i < p->nhosts; i++)
    TAILQ_FOREACH(c, &p->hosts[i].conns, link)
    c->in_io++; /* closes requested by detaching exchanges wait for the loop below */
  TAILQ_FOREACH(x, &p->all, alink)
  x->cancelled = 1; /* none is sent again (px_x_resend) while the others go */
  while ((x = TAILQ_FIRST(&p->all))) {
    x->cancelled = 1;
    x_unlink(x);
    x_free(x);
  }
  for (size_t i = 0; p->hosts && i < p->nhosts; i++) {
    while ((c = TAILQ_FIRST(&p->hosts[i].conns))) {
      c->in_io = 0;
      px_conn_close(c);
    }
  }
  while ((x = p->xfree)) {
    p->xfree = x->next_free;
    free(x->head_mem);
    free(x);
  }
  free(p->hosts);
  SSL_CTX_free(p->own_tls);
  free(p);
}

void px_pool_stats(const struct px_pool *p, struct px_pool_stats *out) {
  *out = p->stats;
  out->idle_connections = 0;
  for (size_t i = 0; i < p->nhosts; i++) {
    const struct px_conn *c;
    TAILQ_FOREACH(c, &p->hosts[i].idle, idle_link)
    out->idle_connections++;
  }
}

size_t px_pool_nhosts(const struct px_pool *p) {
  return p->nhosts;
}

int px_pool_host_stats(const struct px_pool *p, size_t i, struct px_host_stats *out) {
  if (i >= p->nhosts)
    return CUT_ERR_RANGE;
  const struct px_host *h = &p->hosts[i];
  *out = (struct px_host_stats){h->active,
                                h->nconns,
                                h->nwait,
                                h->consecutive_5xx,
                                h->consecutive_connect_failures,
                                h->healthy,
                                h->ejected_until_ms};
  return 0;
}

int px_pool_host_set_healthy(struct px_pool *p, size_t i, int healthy) {
  if (i >= p->nhosts)
    return CUT_ERR_RANGE;
  p->hosts[i].healthy = healthy != 0;
  return 0;
}

int px_pool_host_eject(struct px_pool *p, size_t i, uint64_t until_ms) {
  if (i >= p->nhosts)
    return CUT_ERR_RANGE;
  p->hosts[i].ejected_until_ms = until_ms;
  return 0;
}

uint64_t px_pool_now_ms(struct px_pool *p) {
  return px_now_ms(p);
}

/* ---------------------------------------------------------------- host picking */

static int host_usable(struct px_pool *p, struct px_host *h, uint64_t now) {
  return h->healthy && (h->ejected_until_ms == 0 || h->ejected_until_ms <= now);
}

/* Round robin or least request over usable hosts, avoiding `avoid` when
 * another usable host exists. With every host unusable, fail_open picks among
 * all of them; fail returns NULL. */
static struct px_host *pick_host(struct px_pool *p, struct px_host *avoid) {
  uint64_t now = px_now_ms(p);
  for (int pass = 0; pass < 3; pass++) {
    int ignore_health = pass == 2;
    if (ignore_health && p->be->on_unhealthy != CFG_UNHEALTHY_FAIL_OPEN)
      return NULL;
    struct px_host *best = NULL;
    for (size_t k = 0; k < p->nhosts; k++) {
      size_t i = (p->rr + k) % p->nhosts;
      struct px_host *h = &p->hosts[i];
      if (pass == 0 && h == avoid && p->nhosts > 1)
        continue;
      if (!ignore_health && !host_usable(p, h, now))
        continue;
      if (p->be->lb == CFG_LB_ROUND_ROBIN) {
        best = h;
        break;
      }
      if (!best || h->active < best->active)
        best = h;
    }
    if (best) {
      p->rr = (size_t)(best - p->hosts) + 1;
      return best;
    }
  }
  return NULL;
}

/* ---------------------------------------------------------------- connections */

static void conn_read_cb(struct bufferevent *bev, void *user_data);
static void conn_write_cb(struct bufferevent *bev, void *user_data);
static void conn_event_cb(struct bufferevent *bev, short what, void *user_data);
static void conn_timer_cb(evutil_socket_t fd, short what, void *user_data);
static void conn_kick_cb(evutil_socket_t fd, short what, void *user_data);
static void conn_orphan_drained(struct px_conn *c);
static int conn_go_raw(struct px_conn *c);

/* x waits for c's connect: in c->waiters, counted in c->nwaiters. */
static void conn_wait(struct px_conn *c, struct px_exchange *x) {
  x->conn = c;
  x->state = XS_CONNECTING;
  TAILQ_INSERT_TAIL(&c->waiters, x, link);
  c->nwaiters++;
}

/* Takes x off c's waiters: it is then nowhere (XS_NEW). */
static void conn_unwait(struct px_conn *c, struct px_exchange *x) {
  TAILQ_REMOVE(&c->waiters, x, link);
  c->nwaiters--;
  x->conn = NULL;
  x->state = XS_NEW;
}

static struct px_conn *conn_open(struct px_host *h) {
  struct px_pool *p = h->pool;
  struct px_conn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->pool = p;
  c->host = h;
  c->is_h2 = p->be->protocol != CFG_PROTO_HTTP1;
  c->state = CONN_CONNECTING;
  c->peer_max_streams = 100;
  TAILQ_INIT(&c->waiters);
  TAILQ_INIT(&c->active);
  TAILQ_INIT(&c->kickq);
  c->timer = evtimer_new(p->base, conn_timer_cb, c);
  c->kick = event_new(p->base, -1, 0, conn_kick_cb, c);
  if (!c->timer || !c->kick)
    goto fail;
  if (p->opts.tls) {
    SSL *ssl = px_tls_client_ssl_new(p->opts.tls, h->addr->host, p->be->tls.sni,
                                     p->be->tls.verify);
    if (!ssl)
      goto fail;
    c->bev = bufferevent_openssl_socket_new(p->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
      SSL_free(ssl);
      goto fail;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
  } else {
    c->bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev)
      goto fail;
  }
  bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
  bufferevent_setwatermark(c->bev, EV_READ, 0, c->is_h2 ? 0 : p->watermark);
  bufferevent_setwatermark(c->bev, EV_WRITE, c->is_h2 ? PX_OUT_HIGH / 2 : p->watermark / 2, 0);
  TAILQ_INSERT_TAIL(&h->conns, c, link);
  h->nconns++;
  p->stats.connects++;
  int rv;
  if (h->salen)
    rv = bufferevent_socket_connect(c->bev, (struct sockaddr *)&h->sa, h->salen);
  else
    rv = bufferevent_socket_connect_hostname(c->bev, p->opts.dns, AF_UNSPEC, h->addr->host,
                                             h->addr->port);
  if (rv < 0) {
    /* Reported from the timer, never from inside the caller's stack. */
    c->state = CONN_DEAD;
    set_timer(c->timer, 0);
    return c;
  }
  evutil_socket_t fd = bufferevent_getfd(c->bev);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  set_timer(c->timer, p->be->connect_timeout_ms ? p->be->connect_timeout_ms : 1000);
  bufferevent_enable(c->bev, EV_READ | EV_WRITE);
  return c;
fail:
  if (c->timer)
    event_free(c->timer);
  if (c->kick)
    event_free(c->kick);
  free(c);
  return NULL;
}

void px_conn_close(struct px_conn *c) {
  if (c->in_io) {
    c->closing = 1;
    return;
  }
  if (!c->is_h2 && c->depth) { /* exchanges still on it: they leave first */
    px_h1_close_busy(c);
    return;
  }
  struct px_host *h = c->host;
  if (c->in_idle) {
    TAILQ_REMOVE(&h->idle, c, idle_link);
    c->in_idle = 0;
  }
  if (h->batch == c)
    h->batch = NULL;
  if (h->joinable == c)
    h->joinable = NULL;
  conn_orphan_drained(c);
  TAILQ_REMOVE(&h->conns, c, link);
  h->nconns--;
  c->state = CONN_DEAD;
  struct px_exchange *x;
  while ((x = TAILQ_FIRST(&c->kickq))) {
    TAILQ_REMOVE(&c->kickq, x, klink);
    x->in_kickq = 0;
  }
  if (c->is_h2)
    px_h2_free(c);
  if (c->bev)
    bufferevent_free(c->bev);
  if (c->raw) {
    event_del(&c->rev);
    event_del(&c->wev);
    evutil_closesocket(c->fd);
  }
  if (c->rin)
    evbuffer_free(c->rin);
  if (c->rout)
    evbuffer_free(c->rout);
  event_free(c->timer);
  event_free(c->kick);
  free(c->hbuf);
  free(c);
  px_host_slot_free(h);
}

/* HTTP/2 responses that completed while their caller was paused outlive the
 * connection: they leave it and deliver what they hold from their own timer. */
static void conn_orphan_drained(struct px_conn *c) {
  struct px_exchange *x, *next;
  for (x = TAILQ_FIRST(&c->active); x; x = next) {
    next = TAILQ_NEXT(x, clink);
    if (!x->h2_closed)
      continue;
    TAILQ_REMOVE(&c->active, x, clink);
    if (x->in_kickq) {
      TAILQ_REMOVE(&c->kickq, x, klink);
      x->in_kickq = 0;
    }
    x->conn = NULL;
    x->state = XS_DRAINING;
    if (!x->paused) {
      x->drain_kick = 1;
      set_timer(x->timer, 0);
    }
  }
}

void px_conn_fail_all(struct px_conn *c, enum px_fail fail, const char *cause) {
  struct px_exchange *x;
  c->state = CONN_DEAD;
  conn_orphan_drained(c);
  while ((x = TAILQ_FIRST(&c->waiters)) || (x = TAILQ_FIRST(&c->active))) {
    x_unlink(x);
    px_x_conn_failed(x, fail, cause);
  }
}

static int x_pipelinable(const struct px_exchange *x);
static void x_place(struct px_exchange *x);

void px_conn_idle(struct px_conn *c) {
  struct px_host *h = c->host;
  struct px_exchange *x = TAILQ_FIRST(&h->waitq);
  if (x && c->state == CONN_READY && !c->closing) {
    struct px_pool *p = c->pool;
    TAILQ_REMOVE(&h->waitq, x, link);
    h->nwait--;
    p->stats.reused++;
    if (p->be->pipeline <= 1 || !x_pipelinable(x)) {
      px_h1_dispatch(c, x);
      return;
    }
    /* Pipelining: the waiting requests at the head of the queue go out
     * together (in queue order, up to the depth), written by the kick. */
    c->batch_open = 1;
    px_conn_kick(c, NULL, 0, 0);
    if (px_h1_dispatch(c, x) < 0)
      return; /* nothing is on c: the kick makes it idle again, and it takes the queue then */
    while (c->depth < p->be->pipeline && c->state == CONN_READY && !c->closing &&
           (x = TAILQ_FIRST(&h->waitq)) && x_pipelinable(x)) {
      TAILQ_REMOVE(&h->waitq, x, link);
      h->nwait--;
      p->stats.reused++;
      p->stats.pipelined++;
      px_h1_pipeline(c, x);
    }
    return;
  }
  if (c->closing || c->state != CONN_READY) {
    px_conn_close(c);
    return;
  }
  TAILQ_INSERT_HEAD(&h->idle, c, idle_link);
  c->in_idle = 1;
  px_conn_reading(c, 1);
  c->idle_since_ms = px_now_ms(c->pool);
  if (!evtimer_pending(c->timer, NULL)) /* else it fires early and is armed again */
    pool_timer(c->pool, c->timer, c->pool->idle_ms);
}

void px_conn_kick(struct px_conn *c, struct px_exchange *x, int resume, int drain) {
  if (x) {
    x->k_resume |= resume;
    x->k_drain |= drain;
    if (!x->in_kickq) {
      TAILQ_INSERT_TAIL(&c->kickq, x, klink);
      x->in_kickq = 1;
    }
  }
  event_active(c->kick, 0, 0);
}

static const char *sock_err_text(struct px_conn *c, char *buf, size_t len) {
  int e = EVUTIL_SOCKET_ERROR();
  unsigned long ossl = c->pool->opts.tls ? bufferevent_get_openssl_error(c->bev) : 0;
  if (ossl) {
    char eb[120];
    ERR_error_string_n(ossl, eb, sizeof eb);
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK)
      snprintf(buf, len, "TLS with %.200s failed: certificate %s", c->host->name,
               X509_verify_cert_error_string(vr));
    else
      snprintf(buf, len, "TLS with %.200s failed: %s", c->host->name, eb);
  } else if (e) {
    snprintf(buf, len, "connect to %.200s failed: %s", c->host->name, evutil_socket_error_to_string(e));
  } else {
    snprintf(buf, len, "connect to %s failed", c->host->name);
  }
  return buf;
}

static void conn_connected(struct px_conn *c) {
  struct px_pool *p = c->pool;
  if (p->opts.tls && c->is_h2) {
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    const unsigned char *alpn = NULL;
    unsigned alpnlen = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpnlen);
    if (alpnlen != 2 || memcmp(alpn, "h2", 2) != 0) {
      char cause[400];
      snprintf(cause, sizeof cause, "%s did not negotiate h2 with ALPN", c->host->name);
      p->stats.connect_failures++;
      c->host->consecutive_connect_failures++;
      c->in_io++;
      px_conn_fail_all(c, PX_FAIL_TLS, cause);
      c->in_io--;
      px_conn_close(c);
      return;
    }
  }
  evutil_socket_t fd = bufferevent_getfd(c->bev);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  evtimer_del(c->timer);
  c->state = CONN_READY;
  c->host->consecutive_connect_failures = 0;
  c->in_io++;
  if (c->is_h2) {
    if (px_h2_init(c) < 0) {
      px_conn_fail_all(c, PX_FAIL_PROTOCOL, "cannot start an HTTP/2 session");
      c->in_io--;
      px_conn_close(c);
      return;
    }
    struct px_exchange *x;
    while ((x = TAILQ_FIRST(&c->waiters))) {
      conn_unwait(c, x); /* first: a failed dispatch must not unlink it again */
      if (px_h2_dispatch(c, x) < 0)
        px_x_conn_failed(x, PX_FAIL_PROTOCOL, "cannot submit the HTTP/2 request");
    }
    c->in_io--;
    if (c->closing) {
      px_conn_close(c);
      return;
    }
    px_h2_write(c);
  } else {
    px_h1_init(c);
    if (!p->opts.tls && conn_go_raw(c) < 0) {
      px_conn_fail_all(c, PX_FAIL_CONNECT, "out of memory setting up the connection");
      c->in_io--;
      px_conn_close(c);
      return;
    }
    c->in_io--;
    struct px_exchange *x = TAILQ_FIRST(&c->waiters);
    if (!x) {
      px_conn_idle(c);
      return;
    }
    /* Requests that waited for the connection (pipelinable ones join one
     * that is connecting, see x_place_on) go out together, written by the
     * kick: the first one, then the others pipelined behind it. */
    if (TAILQ_NEXT(x, link)) {
      c->batch_open = 1;
      px_conn_kick(c, NULL, 0, 0);
    }
    int first = 1;
    while ((x = TAILQ_FIRST(&c->waiters))) {
      conn_unwait(c, x);
      if (first) {
        first = px_h1_dispatch(c, x) < 0; /* failed (from the loop): the next one is first */
      } else if (c->state == CONN_READY && !c->closing) {
        p->stats.pipelined++;
        px_h1_pipeline(c, x);
      } else {
        x_place(x); /* the connection went away meanwhile: elsewhere */
      }
    }
  }
}

/* ---------------------------------------------------------------- raw I/O */

static void conn_raw_read_cb(evutil_socket_t fd, short what, void *user_data);
static void conn_raw_write_cb(evutil_socket_t fd, short what, void *user_data);

/* Takes the connected socket out of its bufferevent (see struct px_conn). */
static int conn_go_raw(struct px_conn *c) {
  struct event_base *base = c->pool->base;
  c->rin = evbuffer_new();
  c->rout = evbuffer_new();
  if (!c->rin || !c->rout)
    return CUT_ERR_NOMEM;
  evutil_socket_t fd = bufferevent_getfd(c->bev);
  if (fd < 0)
    return CUT_ERR_STATE;
  bufferevent_disable(c->bev, EV_READ | EV_WRITE);
  evbuffer_add_buffer(c->rin, bufferevent_get_input(c->bev));
  evbuffer_add_buffer(c->rout, bufferevent_get_output(c->bev));
  c->rin_used = c->rout_used = 1;
  bufferevent_setfd(c->bev, -1); /* the bufferevent no longer closes it */
  bufferevent_free(c->bev);
  c->bev = NULL;
  c->fd = fd;
  c->raw = 1;
  event_assign(&c->rev, base, fd, EV_READ | EV_PERSIST, conn_raw_read_cb, c);
  event_assign(&c->wev, base, fd, EV_WRITE | EV_PERSIST, conn_raw_write_cb, c);
  px_conn_reading(c, 1);
  return 0;
}

struct evbuffer *px_conn_out(struct px_conn *c) {
  if (!c->raw)
    return bufferevent_get_output(c->bev);
  c->rout_used = 1; /* the caller may add to it */
  return c->rout;
}

struct evbuffer *px_conn_in(struct px_conn *c) {
  if (!c->raw)
    return bufferevent_get_input(c->bev);
  c->rin_used = 1;
  return c->rin;
}

void px_conn_reading(struct px_conn *c, int on) {
  if (!c->raw) {
    if (on)
      bufferevent_enable(c->bev, EV_READ);
    else
      bufferevent_disable(c->bev, EV_READ);
    return;
  }
  if (on == c->rev_on)
    return;
  c->rev_on = on;
  if (on)
    event_add(&c->rev, NULL);
  else
    event_del(&c->rev);
}

static void raw_want_write(struct px_conn *c, int on) {
  if (on == c->wev_on)
    return;
  c->wev_on = on;
  if (on)
    event_add(&c->wev, NULL);
  else
    event_del(&c->wev);
}

/* One write attempt; what the kernel refuses waits for the write event. */
static void raw_write(struct px_conn *c) {
  if (!c->rout_used || evbuffer_get_length(c->rout) == 0) {
    c->rout_used = 0;
    raw_want_write(c, 0);
    return;
  }
  int n = evbuffer_write(c->rout, c->fd);
  if (n < 0) {
    int e = EVUTIL_SOCKET_ERROR();
    if (!PX_IO_RETRIABLE(e)) {
      /* Reported from the write event, never from inside the caller's stack. */
      c->werr = e ? e : EPIPE;
      evbuffer_drain(c->rout, evbuffer_get_length(c->rout));
      raw_want_write(c, 0);
      event_active(&c->wev, EV_WRITE, 1);
      return;
    }
  }
  c->rout_used = evbuffer_get_length(c->rout) > 0;
  raw_want_write(c, c->rout_used);
}

int px_conn_write(struct px_conn *c, const void *data, size_t len) {
  if (!c->raw || c->wev_on || c->werr || (c->rout_used && evbuffer_get_length(c->rout)))
    return evbuffer_add(px_conn_out(c), data, len) < 0 ? CUT_ERR_NOMEM : 0;
  ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
  if (n < 0) {
    int e = errno;
    if (!PX_IO_RETRIABLE(e)) {
      c->werr = e ? e : EPIPE; /* reported from the write event */
      event_active(&c->wev, EV_WRITE, 1);
      return 0;
    }
    n = 0;
  }
  if ((size_t)n < len) {
    if (evbuffer_add(c->rout, (const char *)data + n, len - (size_t)n) < 0) {
      if (n > 0) { /* part of it is on the wire: the connection is out of step */
        c->closing = 1;
        c->close_why = "out of memory writing a request";
        px_conn_kick(c, NULL, 0, 0);
      }
      return CUT_ERR_NOMEM;
    }
    c->rout_used = 1;
    raw_want_write(c, 1);
  }
  return 0;
}

void px_conn_flush(struct px_conn *c) {
  if (!c->raw) {
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return;
  }
  if (c->wev_on || c->werr)
    return; /* the write event is already waiting */
  raw_write(c);
  struct px_exchange *x = c->x;
  if (x && x->want_drain && !c->werr &&
      (!c->rout_used || evbuffer_get_length(c->rout) <= c->pool->watermark / 2))
    px_conn_kick(c, x, 0, 1); /* the caller hears of it from the loop */
}

static void conn_raw_read_cb(evutil_socket_t fd, short what, void *user_data) {
  struct px_conn *c = user_data;
  px_h1_raw_read(c);
}

static void conn_raw_write_cb(evutil_socket_t fd, short what, void *user_data) {
  struct px_conn *c = user_data;
  if (!c->werr)
    raw_write(c);
  if (c->werr) {
    EVUTIL_SET_SOCKET_ERROR(c->werr);
    raw_want_write(c, 0);
    px_h1_eof(c, 1);
    return;
  }
  struct px_exchange *x = c->x;
  if (x && x->want_drain && evbuffer_get_length(c->rout) <= c->pool->watermark / 2)
    px_x_request_drained(x);
}

/* ---------------------------------------------------------------- bufferevent I/O */

static void conn_event_cb(struct bufferevent *bev, short what, void *user_data) {
  struct px_conn *c = user_data;
  struct px_pool *p = c->pool;
  if (what & BEV_EVENT_CONNECTED) {
    conn_connected(c);
    return;
  }
  if (c->state == CONN_CONNECTING) {
    char cause[400];
    enum px_fail f = PX_FAIL_CONNECT;
    if (p->opts.tls && bufferevent_get_openssl_error(bev))
      f = PX_FAIL_TLS;
    if (what & BEV_EVENT_ERROR && bufferevent_socket_get_dns_error(bev))
      snprintf(cause, sizeof cause, "cannot resolve %s: %s", c->host->name,
               evutil_gai_strerror(bufferevent_socket_get_dns_error(bev)));
    else
      sock_err_text(c, cause, sizeof cause);
    p->stats.connect_failures++;
    c->host->consecutive_connect_failures++;
    c->in_io++;
    px_conn_fail_all(c, f, cause);
    c->in_io--;
    px_conn_close(c);
    return;
  }
  if (c->is_h2) {
    char cause[400];
    snprintf(cause, sizeof cause, "%s closed the HTTP/2 connection", c->host->name);
    c->in_io++;
    /* Frames still in the input (a GOAWAY, the last DATA) first. */
    px_h2_read(c);
    px_conn_fail_all(c, PX_FAIL_RESET, cause);
    c->in_io--;
    px_conn_close(c);
    return;
  }
  px_h1_eof(c, (what & BEV_EVENT_ERROR) != 0);
}

static void conn_read_cb(struct bufferevent *bev, void *user_data) {
  struct px_conn *c = user_data;
  if (c->is_h2)
    px_h2_read(c);
  else
    px_h1_read(c);
}

static void conn_write_cb(struct bufferevent *bev, void *user_data) {
  struct px_conn *c = user_data;
  if (c->is_h2) {
    px_h2_write(c);
    return;
  }
  struct px_exchange *x = c->x;
  if (x && x->want_drain)
    px_x_request_drained(x);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *user_data) {
  struct px_conn *c = user_data;
  struct px_pool *p = c->pool;
  char cause[400];
  if (c->state == CONN_READY) { /* idle timeout */
    if (!c->is_h2) {
      if (!c->in_idle)
        return; /* busy again since it was armed: px_conn_idle arms it anew */
      uint64_t now = px_now_ms(p);
      uint64_t idle = now > c->idle_since_ms ? now - c->idle_since_ms : 0;
      if (idle < p->idle_ms) {
        set_timer(c->timer, p->idle_ms - idle);
        return;
      }
    }
    px_conn_close(c);
    return;
  }
  if (c->state == CONN_DEAD) /* connect() failed synchronously */
    sock_err_text(c, cause, sizeof cause);
  else
    snprintf(cause, sizeof cause, "connect to %s timed out", c->host->name);
  p->stats.connect_failures++;
  c->host->consecutive_connect_failures++;
  c->in_io++;
  px_conn_fail_all(c, PX_FAIL_CONNECT, cause);
  c->in_io--;
  px_conn_close(c);
}

static void conn_kick_cb(evutil_socket_t fd, short what, void *user_data) {
  struct px_conn *c = user_data;
  struct px_exchange *x;
  if (c->host->joinable == c)
    c->host->joinable = NULL; /* requests of a later pass do not wait behind this one's */
  if (c->batch_open) { /* the end of the pass that filled the batch: write it */
    c->batch_open = 0;
    if (c->host->batch == c)
      c->host->batch = NULL;
    px_conn_flush(c);
  }
  c->in_io++;
  while ((x = TAILQ_FIRST(&c->kickq)) && !c->closing) {
    TAILQ_REMOVE(&c->kickq, x, klink);
    x->in_kickq = 0;
    int resume = x->k_resume, drain = x->k_drain;
    x->k_resume = x->k_drain = 0;
    if (resume && c->is_h2) {
      px_h2_resume(x); /* may finish x */
      continue;
    }
    if (drain)
      px_x_request_drained(x);
  }
  c->in_io--;
  if (c->closing) {
    px_conn_close(c);
    return;
  }
  if (c->is_h2) {
    px_h2_write(c);
  } else if (c->x && !c->x->paused && c->h1_paused) {
    c->h1_paused = 0;
    http_parser_pause(&c->parser, 0);
    px_conn_reading(c, 1);
    px_h1_read(c);
  } else if (!c->x && c->depth == 0 && !c->in_idle && c->state == CONN_READY) {
    px_conn_idle(c); /* its only exchange could not be written (px_h1_dispatch) */
  }
}

/* ---------------------------------------------------------------- exchanges */

static void x_timer_cb(evutil_socket_t fd, short what, void *user_data);
static void x_arm_timer(struct px_exchange *x);

static void x_free(struct px_exchange *x) {
  TAILQ_REMOVE(&x->pool->all, x, alink);
  px_response_head_clear(&x->resp);
  px_headers_clear(&x->req_trailers);
  px_headers_clear(&x->resp_trailers);
  if (x->reqbuf)
    evbuffer_free(x->reqbuf);
  if (x->h2_pending)
    evbuffer_free(x->h2_pending);
  if (x->timer)
    event_del(x->timer);
#if !PX_NO_FREELIST
  struct px_pool *p = x->pool;
  if (p->nxfree < PX_XFREE_MAX && x->head_cap <= 4096) { /* keeps head_mem */
    x->next_free = p->xfree;
    p->xfree = x;
    p->nxfree++;
    return;
  }
#endif
  free(x->head_mem);
  free(x);
}

/* Takes x out of wherever it is queued or running; it is then nowhere. */
static void x_unlink(struct px_exchange *x) {
  struct px_conn *c = x->conn;
  if (x->state == XS_WAITQ) {
    TAILQ_REMOVE(&x->host->waitq, x, link);
    x->host->nwait--;
  } else if (x->state == XS_CONNECTING) {
    conn_unwait(c, x);
  } else if (x->state == XS_ACTIVE) {
    if (c->is_h2)
      px_h2_detach(x);
    else
      px_h1_detach(x);
  }
  if (c && x->in_kickq) {
    TAILQ_REMOVE(&c->kickq, x, klink);
    x->in_kickq = 0;
  }
  x->conn = NULL;
  if (x->counted_active) {
    x->host->active--;
    x->pool->stats.active_exchanges--;
    x->counted_active = 0;
  }
  x->state = XS_NEW;
}

static void x_fail_later(struct px_exchange *x, enum px_fail f, const char *cause) {
  x->deferred_fail = 1;
  x->dfail = f;
  snprintf(x->cause, sizeof x->cause, "%s", cause);
  set_timer(x->timer, 0);
}

void px_x_fail_soon(struct px_exchange *x, enum px_fail f, const char *cause) {
  x_unlink(x);
  x_fail_later(x, f, cause);
}

/* Places x on host h: an idle or shared connection, a new one, or the wait
 * queue. Returns 1 when placed, 0 when the host has no room at all, -1 when
 * out of memory. */
static int x_own_head(struct px_exchange *x);

/* Pipelined requests are bodiless and safe (RFC 9110 section 9.2.1), so one
 * the server never answered can be sent again. */
static int x_pipelinable(const struct px_exchange *x) {
  const char *m = x->head.method;
  return !x->has_body && (strcmp(m, "GET") == 0 || x->is_head || strcmp(m, "OPTIONS") == 0);
}

static int x_place_on(struct px_exchange *x, struct px_host *h) {
  struct px_pool *p = x->pool;
  const struct cfg_backend *be = p->be;
  uint32_t maxc = be->max_connections ? be->max_connections : 64;
  struct px_conn *c;
  x->host = h;
  if (!x->counted_active) {
    h->active++;
    p->stats.active_exchanges++;
    x->counted_active = 1;
  }
  if (be->protocol == CFG_PROTO_HTTP1) {
    int pipe = be->pipeline > 1 && x_pipelinable(x);
    if (pipe && (c = h->batch) && c->depth < be->pipeline && c->state == CONN_READY &&
        !c->closing && !TAILQ_EMPTY(&c->active) &&
        TAILQ_LAST(&c->active, px_xq)->body_flushed) {
      /* behind others on this connection: may have to be sent again later */
      if (x_own_head(x) < 0)
        return -1;
      p->stats.reused++;
      p->stats.pipelined++;
      px_h1_pipeline(c, x);
      return 1;
    }
    if ((c = TAILQ_FIRST(&h->idle))) {
      TAILQ_REMOVE(&h->idle, c, idle_link);
      c->in_idle = 0;
      p->stats.reused++;
      if (pipe) { /* opens this pass's batch: written when the kick runs */
        c->batch_open = 1;
        h->batch = c;
        px_conn_kick(c, NULL, 0, 0);
      }
      px_h1_dispatch(c, x);
      return 1;
    }
  }
  /* from here on x waits, or is sent in frames that may be sent again */
  if (x_own_head(x) < 0)
    return -1;
  int join = be->protocol == CFG_PROTO_HTTP1 && be->pipeline > 1 && x_pipelinable(x);
  if (join && (c = h->joinable) && c->state == CONN_CONNECTING && c->nwaiters < be->pipeline) {
    /* No idle connection: rather than open one per request (a burst after
     * a quiet spell would open max_connections), wait for the one opened
     * for pipelinable requests in this pass of the loop, up to the depth. */
    conn_wait(c, x);
    return 1;
  }
  if (be->protocol != CFG_PROTO_HTTP1) {
    uint32_t maxs = be->max_streams ? be->max_streams : 100;
    TAILQ_FOREACH(c, &h->conns, link) {
      if (c->state == CONN_READY && px_h2_can_take(c)) {
        int reused = c->nstreams > 0 || c->served > 0; /* the dispatch may close c */
        if (px_h2_dispatch(c, x) < 0)
          continue; /* this session took no stream (out of memory, or it is ending) */
        if (reused)
          p->stats.reused++;
        return 1;
      }
      if (c->state == CONN_CONNECTING && c->nwaiters < maxs) {
        conn_wait(c, x);
        return 1;
      }
    }
  }
  if (h->nconns < maxc && (c = conn_open(h))) {
    conn_wait(c, x);
    if (join) {
      h->joinable = c;
      px_conn_kick(c, NULL, 0, 0); /* the end of the pass ends the joining */
    }
    return 1;
  }
  if (h->nwait < PX_WAITQ_MAX) {
    x->state = XS_WAITQ;
    TAILQ_INSERT_TAIL(&h->waitq, x, link);
    h->nwait++;
    return 1;
  }
  return 0;
}

static void x_place(struct px_exchange *x) {
  struct px_pool *p = x->pool;
  struct px_host *h = pick_host(p, x->failed_host);
  char cause[400];
  if (!h) {
    snprintf(cause, sizeof cause, "no healthy host in backend %s",
             p->be->name ? p->be->name : "?");
    x_fail_later(x, PX_FAIL_NO_HOST, cause);
    return;
  }
  int placed = x_place_on(x, h);
  if (placed < 0) {
    x_unlink(x);
    x_fail_later(x, PX_FAIL_PROTOCOL, "out of memory queueing the request");
  } else if (!placed) {
    x_unlink(x);
    snprintf(cause, sizeof cause, "backend %s is at its connection limit",
             p->be->name ? p->be->name : "?");
    x_fail_later(x, PX_FAIL_NO_HOST, cause);
  }
}

void px_host_slot_free(struct px_host *h) {
  struct px_exchange *x;
  while ((x = TAILQ_FIRST(&h->waitq))) {
    TAILQ_REMOVE(&h->waitq, x, link);
    h->nwait--;
    x->state = XS_NEW;
    /* x_place_on re-queues it at the tail when there is still no room;
     * put it back at the head instead and stop. */
    uint32_t before = h->nwait;
    int placed = x_place_on(x, h); /* its head is owned already: no -1 */
    if (placed <= 0) {
      x_unlink(x);
      x_fail_later(x, PX_FAIL_NO_HOST, "backend is at its connection limit");
      continue;
    }
    if (x->state == XS_WAITQ && h->nwait == before + 1) {
      TAILQ_REMOVE(&h->waitq, x, link);
      TAILQ_INSERT_HEAD(&h->waitq, x, link);
      break;
    }
  }
}

/* Milliseconds left before `timeout` expires, UINT64_MAX when it does not
 * apply. Before the response head it counts from the start, or from the last
 * request body bytes while the client is still uploading (a slow upload is
 * not a slow backend); after the head, from the last response bytes, and not
 * at all while the caller is paused. */
static uint64_t x_idle_left(const struct px_exchange *x, uint64_t now) {
  uint64_t to = x->pool->be->timeout_ms;
  if (!to || (x->got_response && x->paused))
    return UINT64_MAX;
  uint64_t since = x->got_response ? x->last_rx_ms : x->start_ms;
  if (!x->got_response && x->last_tx_ms > since)
    since = x->last_tx_ms;
  uint64_t el = now > since ? now - since : 0;
  return to > el ? to - el : 0;
}

static uint64_t x_total_left(const struct px_exchange *x, uint64_t now) {
  uint64_t to = x->pool->be->total_timeout_ms;
  if (!to)
    return UINT64_MAX;
  uint64_t el = now > x->start_ms ? now - x->start_ms : 0;
  return to > el ? to - el : 0;
}

/* Arms the exchange's one timer for its nearest deadline. Bytes moving do not
 * re-arm it; when it fires early, x_timer_cb arms it again. */
static void x_arm_timer(struct px_exchange *x) {
  uint64_t now = px_now_ms(x->pool);
  uint64_t left = x_idle_left(x, now), t = x_total_left(x, now);
  if (t < left)
    left = t;
  x->timer_due = left == UINT64_MAX ? UINT64_MAX : now + left;
  if (left == UINT64_MAX)
    evtimer_del(x->timer);
  else
    pool_timer(x->pool, x->timer, left);
}

void px_x_got_first_byte(struct px_exchange *x) {
  uint64_t now = px_now_ms(x->pool);
  x->last_rx_ms = now;
  uint64_t left = x_idle_left(x, now), t = x_total_left(x, now);
  if (t < left)
    left = t;
  /* A timer already due no later is left alone: firing early, it re-arms. */
  if (left != UINT64_MAX && x->timer_due <= now + left && evtimer_pending(x->timer, NULL))
    return;
  x_arm_timer(x);
}

static size_t str_size(const char *s) {
  return s ? strlen(s) + 1 : 0;
}

static char *str_put(char **at, const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *d = memcpy(*at, s, n);
  *at += n;
  return d;
}

/* Copies the borrowed head into one allocation (reused with the exchange):
 * x->head's pointers then all point into x->head_mem. */
static int x_own_head(struct px_exchange *x) {
  if (x->head_owned)
    return 0;
  const struct px_request_head borrowed = x->head;
  const struct px_request_head *src = &borrowed;
  const struct px_headers *hs = &src->headers;
  const char *path = src->path ? src->path : "/";
  size_t size = hs->n * sizeof(struct px_header) + str_size(src->method) +
                str_size(src->scheme) + str_size(src->authority) + str_size(path);
  for (size_t i = 0; i < hs->n; i++)
    size += hs->v[i].namelen + hs->v[i].valuelen + 2;
  char *mem = x->head_mem; /* a reused exchange brings its block */
  if (!mem || x->head_cap < size) {
    size_t cap = size < 1024 ? 1024 : size;
    free(mem);
    x->head_mem = NULL;
    x->head_cap = 0;
    if (!(mem = malloc(cap)))
      return CUT_ERR_NOMEM;
    x->head_cap = cap;
  }
  struct px_header *v = (struct px_header *)mem;
  char *at = mem + hs->n * sizeof(struct px_header);
  struct px_request_head *h = &x->head;
  h->method = str_put(&at, src->method);
  h->scheme = str_put(&at, src->scheme);
  h->authority = str_put(&at, src->authority);
  h->path = str_put(&at, path);
  for (size_t i = 0; i < hs->n; i++) {
    const struct px_header *f = &hs->v[i];
    v[i].name = at;
    memcpy(at, f->name, f->namelen);
    at[f->namelen] = '\0';
    at += f->namelen + 1;
    v[i].value = at;
    memcpy(at, f->value, f->valuelen);
    at[f->valuelen] = '\0';
    at += f->valuelen + 1;
    v[i].namelen = f->namelen;
    v[i].valuelen = f->valuelen;
  }
  h->headers = (struct px_headers){hs->n ? v : NULL, hs->n, hs->n, hs->bytes};
  h->content_length = src->content_length;
  h->borrowed = 0;
  x->head_mem = mem;
  x->head_owned = 1;
  return 0;
}

/* A zeroed exchange of pool p (from its free list when it has one), in p->all. */
static struct px_exchange *x_alloc(struct px_pool *p) {
  struct px_exchange *x = p->xfree;
  if (x) {
    p->xfree = x->next_free;
    p->nxfree--;
    char *head_mem = x->head_mem;
    size_t head_cap = x->head_cap;
    memset(x, 0, offsetof(struct px_exchange, cause)); /* cause is last: a string */
    x->cause[0] = '\0';
    x->head_mem = head_mem;
    x->head_cap = head_cap;
  } else if (!(x = calloc(1, sizeof *x))) {
    return NULL;
  }
  x->pool = p;
  TAILQ_INSERT_TAIL(&p->all, x, alink);
  x->timer = &x->timer_ev;
  evtimer_assign(x->timer, p->base, x_timer_cb, x);
  return x;
}

static void placeholder_done(struct px_exchange *x, int err, enum px_fail fail, const char *cause,
                             int got_response, void *user_data) {
  (void)x, (void)err, (void)fail, (void)cause, (void)got_response, (void)user_data;
}

struct px_exchange *px_x_placeholder(const struct px_exchange *like) {
  struct px_exchange *x = x_alloc(like->pool);
  if (!x)
    return NULL;
  x->cbs.on_done = placeholder_done;
  x->head.method = like->is_head ? "HEAD" : "GET";
  x->head.path = (char *)"/";
  x->head_owned = 1;
  x->host = like->host;
  x->is_head = like->is_head;
  x->idempotent = 1;
  x->pipelined = 1;
  x->resent = PX_RESEND_ANNOUNCED; /* never sent again */
  x->bytes_sent = x->body_ended = x->body_flushed = 1;
  x->stream_id = -1;
  x->resp.content_length = -1;
  x->placeholder = 1;
  /* No deadline while queued (like's may have passed already): its timeout
   * runs from its turn, see px_x_placeholder_turn. */
  return x;
}

void px_x_placeholder_turn(struct px_exchange *x) {
  x->start_ms = px_now_ms(x->pool);
  x_arm_timer(x);
}

void px_x_resend(struct px_exchange *x, int announced, const char *cause) {
  x_unlink(x);
  if (x->placeholder) { /* nobody waits for its answer: nothing failed */
    x_free(x);
    return;
  }
  uint64_t now = px_now_ms(x->pool);
  if (!x->cancelled && (x_idle_left(x, now) == 0 || x_total_left(x, now) == 0)) {
    x_arm_timer(x); /* past its deadline (often that of the request ahead): it times out */
    return;
  }
  if (x->resent < (announced ? PX_RESEND_ANNOUNCED : 1u) && !x->cancelled && !x->got_response) {
    x->resent++;
    x->bytes_sent = 0;
    x->pipelined = 0;
    x->pool->stats.retries++;
    x_place(x);
    return;
  }
  x_fail_later(x, PX_FAIL_RESET, cause);
}

int px_exchange_start(struct px_pool *p, const struct px_request_head *head, int has_body,
                      const struct px_exchange_cbs *cbs, void *user_data,
                      struct px_exchange **out) {
  *out = NULL;
  if (!p || !head || !head->method || !cbs || !cbs->on_done)
    return CUT_ERR_INVALID;
  struct px_exchange *x = x_alloc(p);
  if (!x)
    return CUT_ERR_NOMEM;
  x->cbs = *cbs;
  x->ud = user_data;
  x->has_body = has_body;
  x->stream_id = -1;
  x->resp.content_length = -1;
  /* borrowed until x_place_on needs a copy (see head_owned) */
  x->head = *head;
  x->head.borrowed = 0;
  if (!x->head.path)
    x->head.path = (char *)"/";
  x->head_owned = cbs->borrow_head != 0;
  if (has_body && !(x->reqbuf = evbuffer_new()))
    goto nomem;
  x->idempotent = px_method_idempotent(x->head.method);
  x->is_head = x->head.method[0] == 'H' && strcmp(x->head.method, "HEAD") == 0;
  x->body_ended = !has_body;
  x->start_ms = px_now_ms(p);
  x_arm_timer(x);
  x_place(x);
  *out = x;
  return 0;
nomem:
  x_free(x);
  return CUT_ERR_NOMEM;
}

static void x_timer_cb(evutil_socket_t fd, short what, void *user_data) {
  struct px_exchange *x = user_data;
  struct px_pool *p = x->pool;
  if (x->drain_kick) {
    x->drain_kick = 0;
    if (px_h2_resume(x) == 0)
      x_arm_timer(x); /* paused again: the total timeout still holds */
    return;
  }
  if (x->deferred_fail) {
    char cause[sizeof x->cause];
    memcpy(cause, x->cause, sizeof cause);
    px_x_finish(x, fail_code(x->dfail), x->dfail, cause);
    return;
  }
  char cause[400];
  const char *hn = x->host ? x->host->name : "backend";
  uint64_t now = px_now_ms(p);
  int total = x_total_left(x, now) == 0;
  if (!total && x_idle_left(x, now) > 0) {
    x_arm_timer(x); /* bytes moved since this was armed, or the caller paused */
    return;
  }
  if (total)
    snprintf(cause, sizeof cause, "%s exceeded the total timeout of %llu ms", hn,
             (unsigned long long)p->be->total_timeout_ms);
  else if (x->got_response)
    snprintf(cause, sizeof cause, "%s stalled mid-response", hn);
  else if (x->state == XS_WAITQ)
    snprintf(cause, sizeof cause, "no free connection to %s in time", hn);
  else
    snprintf(cause, sizeof cause, "no response from %s in time", hn);
  p->stats.timeouts++;
  px_x_finish(x, CUT_ERR_TIMEOUT, PX_FAIL_TIMEOUT, cause);
}

void px_x_finish(struct px_exchange *x, int err, enum px_fail fail, const char *cause) {
  struct px_host *h = x->host;
  x_unlink(x);
  x->state = XS_DONE;
  if (h) {
    if (err == 0 && x->resp.status >= 500)
      h->consecutive_5xx++;
    else if (err == 0)
      h->consecutive_5xx = 0;
  }
  if (fail == PX_FAIL_RESET)
    x->pool->stats.resets++;
  if (!x->cancelled) {
    x->in_cb++;
    x->cbs.on_done(x, err, fail, err ? (cause ? cause : cut_strerror(err)) : NULL,
                   x->got_response, x->ud);
  }
  x_free(x);
}

void px_x_conn_failed(struct px_exchange *x, enum px_fail fail, const char *cause) {
  struct px_pool *p = x->pool;
  x_unlink(x);
  if (!x->bytes_sent && !x->body_consumed && x->idempotent && x->attempts < p->be->retries &&
      !x->cancelled) {
    x->attempts++;
    x->failed_host = x->host;
    p->stats.retries++;
    x_place(x);
    return;
  }
  px_x_finish(x, fail_code(fail), fail, cause);
}

static void x_cancel_now(struct px_exchange *x) {
  x_unlink(x);
  x_free(x);
}

/* After a user callback: 0 to go on, -1 when the caller cancelled x. */
static int x_after_cb(struct px_exchange *x, int rv) {
  x->in_cb--;
  if (rv < 0)
    x->cancelled = 1;
  if (x->cancelled) {
    x_cancel_now(x);
    return -1;
  }
  return rv == PX_PAUSE ? PX_PAUSE : 0;
}

int px_x_response(struct px_exchange *x) {
  x->got_response = 1;
  px_x_got_first_byte(x);
  x->in_cb++;
  int rv = x->cbs.on_response ? x->cbs.on_response(x, &x->resp, x->ud) : 0;
  return x_after_cb(x, rv < 0 ? -1 : 0);
}

int px_x_body(struct px_exchange *x, const uint8_t *data, size_t len) {
  if (!x->cbs.on_body || len == 0)
    return 0;
  x->last_rx_ms = px_now_ms(x->pool);
  x->in_cb++;
  int rv = x->cbs.on_body(x, data, len, x->ud);
  rv = x_after_cb(x, rv);
  if (rv == PX_PAUSE)
    x->paused = 1;
  return rv;
}

int px_x_trailers(struct px_exchange *x, const struct px_headers *t) {
  if (!x->cbs.on_trailers)
    return 0;
  x->in_cb++;
  int rv = x->cbs.on_trailers(x, t, x->ud);
  return x_after_cb(x, rv < 0 ? -1 : 0);
}

void px_x_request_drained(struct px_exchange *x) {
  x->want_drain = 0;
  if (!x->cbs.on_request_drain)
    return;
  x->in_cb++;
  x->cbs.on_request_drain(x, x->ud);
  x_after_cb(x, 0);
}

int px_exchange_send_body(struct px_exchange *x, const uint8_t *data, size_t len) {
  if (!x || x->body_ended || x->state == XS_DONE)
    return CUT_ERR_STATE;
  if (x->h2_remote_end)
    return 0; /* the response is complete: the rest of the request is not wanted */
  if (len && evbuffer_add(x->reqbuf, data, len) < 0)
    return CUT_ERR_NOMEM;
  x->last_tx_ms = px_now_ms(x->pool);
  size_t queued = evbuffer_get_length(x->reqbuf);
  if (x->state == XS_ACTIVE) {
    if (x->conn->is_h2) {
      px_h2_send_body(x);
    } else {
      px_h1_send_body(x);
      queued = evbuffer_get_length(px_conn_out(x->conn));
    }
  }
  if (queued > x->pool->watermark) {
    x->want_drain = 1;
    return CUT_ERR_FULL;
  }
  return 0;
}

int px_exchange_end_body(struct px_exchange *x, const struct px_headers *trailers) {
  if (!x || x->state == XS_DONE)
    return CUT_ERR_STATE;
  if (x->body_ended)
    return x->has_body ? CUT_ERR_STATE : 0;
  x->body_ended = 1;
  for (size_t i = 0; trailers && i < trailers->n; i++)
    if (px_headers_add(&x->req_trailers, trailers->v[i].name, trailers->v[i].namelen,
                       trailers->v[i].value, trailers->v[i].valuelen) < 0)
      return CUT_ERR_NOMEM;
  if (x->state == XS_ACTIVE) {
    if (x->conn->is_h2)
      px_h2_send_body(x);
    else
      px_h1_send_body(x);
  }
  return 0;
}

void px_exchange_resume(struct px_exchange *x) {
  if (!x || !x->paused)
    return;
  x->paused = 0;
  x->last_rx_ms = px_now_ms(x->pool);
  if (x->state == XS_ACTIVE && x->conn) {
    x_arm_timer(x);
    px_conn_kick(x->conn, x, 1, 0);
  } else if (x->state == XS_DRAINING) {
    x->drain_kick = 1;
    set_timer(x->timer, 0);
  }
}

void px_exchange_cancel(struct px_exchange *x) {
  if (!x)
    return;
  if (x->in_cb) {
    x->cancelled = 1;
    return;
  }
  x->cancelled = 1;
  x_cancel_now(x);
}

const char *px_exchange_host(const struct px_exchange *x) {
  return x && x->host ? x->host->name : "";
}
