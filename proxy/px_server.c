/* px_server: worker threads, each with its own event_base, SO_REUSEPORT
 * listeners and upstream pools; start, graceful stop and teardown. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <http_parser.h>
#include <openssl/ssl.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "proxy/px_health.h"
#include "proxy/px_limits.h"
#include "proxy/px_metrics.h"
#include "proxy/px_alog.h"
#include "proxy/px_server_int.h"
#include "replay/rec_avro.h"
#include "proxy/px_check.h"
#include "proxy/px_tls.h"

/* What an accept callback needs: which worker, which listener. */
struct accept_ctx {
  struct px_worker *w;
  const struct px_listener_rt *l;
};

/* Per-worker extras kept beside struct px_worker (the control pipe, accept contexts,
 * the pre-bound listening sockets). */
struct worker_ext {
  int ctl_pipe[2];
  struct accept_ctx *actx;
  int *fds; /* one bound, listening socket per listener; -1 once handed to libevent */
};

/* A worker reads the clock once per loop iteration (as libevent does for its
 * timers), not for every request, read and metric: tl_now_ns holds that
 * reading until worker_main starts the next iteration. */
static _Thread_local uint64_t tl_now_ns;
static _Thread_local int tl_now_cached; /* this thread runs worker_main's loop */

uint64_t px_now_ns(void) {
  if (tl_now_ns)
    return tl_now_ns;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  if (tl_now_cached)
    tl_now_ns = now;
  return now;
}

static struct worker_ext *ext_of(struct px_server *s, size_t i);

struct px_pool *px_gen_pool(const struct px_gen *g, size_t backend_index) {
  if (!g || !g->pools || backend_index >= g->cfg->nbackends)
    return NULL;
  return g->pools[backend_index];
}

/* Adds what the generation's pools counted since the last time to the metrics. */
static void pool_metrics(struct px_worker *w, struct px_gen *g) {
  if (!w->srv->ops.stats)
    return;
  for (size_t b = 0; g->pools && b < g->cfg->nbackends; b++) {
    if (!g->pools[b])
      continue;
    struct px_pool_stats now, *seen = &g->pool_seen[b];
    w->srv->ops.stats(g->pools[b], &now);
    struct px_pool_stats d = {
        .connects = now.connects - seen->connects,
        .connect_failures = now.connect_failures - seen->connect_failures,
        .retries = now.retries - seen->retries,
        .pipelined = now.pipelined - seen->pipelined,
        .timeouts = now.timeouts - seen->timeouts,
        .resets = now.resets - seen->resets,
    };
    px_metrics_pool(g->metrics, (unsigned)w->idx, b, &d);
    *seen = now;
  }
}

static void gen_free(struct px_server *s, struct px_gen *g) {
  if (!g)
    return;
  size_t nb = g->cfg->nbackends;
  for (size_t b = 0; g->pools && b < nb; b++)
    if (g->pools[b])
      s->ops.pool_free(g->pools[b]);
  for (size_t b = 0; g->outliers && b < nb; b++)
    px_outlier_free(g->outliers[b]);
  free(g->pools);
  free(g->outliers);
  free(g->group_down);
  free(g->pool_seen);
  free(g);
}

/* Builds this worker's pools and outlier state for a snapshot. */
static int gen_new(struct px_worker *w, struct px_gen **out, uint64_t id, const struct cfg *cfg,
                   struct px_metrics *metrics, struct px_health_board *board, char *err,
                   size_t errlen) {
  struct px_server *s = w->srv;
  struct px_gen *g = calloc(1, sizeof *g);
  if (!g)
    return CUT_ERR_NOMEM;
  g->id = id;
  g->cfg = cfg;
  g->metrics = metrics;
  g->board = board;
  size_t nb = cfg->nbackends ? cfg->nbackends : 1;
  g->pools = calloc(nb, sizeof *g->pools);
  g->outliers = calloc(nb, sizeof *g->outliers);
  g->group_down = calloc(nb, 1);
  g->pool_seen = calloc(nb, sizeof *g->pool_seen);
  int rc = CUT_ERR_NOMEM;
  if (!g->pools || !g->outliers || !g->group_down || !g->pool_seen)
    goto fail;
  for (size_t b = 0; b < cfg->nbackends; b++)
    if (cfg->backends[b].nhosts &&
        px_outlier_new(&g->outliers[b], &cfg->backends[b].outlier, cfg->backends[b].nhosts) < 0)
      goto fail;
  for (size_t b = 0; b < cfg->nbackends; b++) {
    /* tls NULL: a TLS backend's pool builds its client context from the config */
    struct px_pool_opts po = {.tls = NULL, .dns = w->dns, .body_watermark = 64 * 1024};
    if ((rc = s->ops.pool_new(&g->pools[b], w->base, &cfg->backends[b], &po, err, errlen)) < 0)
      goto fail;
  }
  *out = g;
  return 0;
fail:
  gen_free(s, g);
  return rc;
}

static void publish_oldest(struct px_worker *w) {
  uint64_t oldest = w->gen ? w->gen->id : 0;
  for (struct px_gen *g = w->old_gens; g; g = g->next)
    if (g->id < oldest)
      oldest = g->id;
  atomic_store(&w->oldest_gen, oldest);
}

void px_gen_release(struct px_gen *g) {
  if (g->refs)
    g->refs--;
}

/* Frees retired generations that no request uses any more (once a second). */
static void reap_gens(struct px_worker *w, uint64_t now_ns) {
  int freed = 0;
  for (struct px_gen **pp = &w->old_gens; *pp;) {
    struct px_gen *g = *pp;
    if (g->refs == 0 && now_ns >= g->free_after_ns) {
      *pp = g->next;
      log_info("proxy", "worker %zu: config generation %llu ended; its pools are closed", w->idx,
               (unsigned long long)g->id);
      pool_metrics(w, g); /* what its pools counted since the last tick */
      gen_free(w->srv, g);
      freed = 1;
    } else {
      if (g->refs)
        g->free_after_ns = now_ns + (w->menv.shadow_timeout_ms + 1000) * 1000000ull;
      pp = &g->next;
    }
  }
  if (freed)
    publish_oldest(w);
}

static int host_is_literal(const char *h);

/* Takes the snapshot px_server_reload() published, if newer than ours. */
static void take_next(struct px_worker *w) {
  struct px_server *s = w->srv;
  if (atomic_load(&s->next_id) <= (w->gen ? w->gen->id : 0))
    return;
  pthread_mutex_lock(&s->next_mu);
  struct px_snapshot_msg m = s->next;
  pthread_mutex_unlock(&s->next_mu);
  if (!m.cfg || (w->gen && m.id <= w->gen->id))
    return;
  int need_dns = 0;
  for (size_t b = 0; b < m.cfg->nbackends; b++)
    for (size_t h = 0; h < m.cfg->backends[b].nhosts; h++)
      need_dns |= !host_is_literal(m.cfg->backends[b].hosts[h].host);
  if (need_dns && !w->dns)
    w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
  struct px_gen *g = NULL;
  char err[256] = "";
  if (gen_new(w, &g, m.id, m.cfg, m.metrics, m.board, err, sizeof err) < 0) {
    log_error("proxy", "worker %zu: reload: %s; keeping the previous config", w->idx,
              err[0] ? err : "out of memory");
    return;
  }
  struct px_gen *old = w->gen;
  old->retired = 1;
  old->free_after_ns = px_now_ns() + (w->menv.shadow_timeout_ms + 1000) * 1000000ull;
  old->next = w->old_gens;
  w->old_gens = old;
  w->gen = g;
  w->cfg = g->cfg;
  publish_oldest(w);
  reap_gens(w, px_now_ns());
}

void px_worker_conn_gone(struct px_worker *w) {
  if (w->draining && w->nconns == 0)
    event_base_loopbreak(w->base);
}

static void update_time(struct px_worker *w) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(w->now_iso, sizeof w->now_iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Once a second: push active-check verdicts into this worker's pools, run
 * outlier ejection over the pools' consecutive-failure counters, and add the
 * pools' counters to the metrics. */
static void health_tick(struct px_worker *w) {
  struct px_gen *g = w->gen;
  if (!g)
    return;
  const struct cfg *cfg = g->cfg;
  for (struct px_gen *old = w->old_gens; old; old = old->next)
    pool_metrics(w, old); /* shadows and slow requests still finishing there */
  pool_metrics(w, g);
  for (size_t b = 0; b < cfg->nbackends; b++) {
    struct px_pool *p = g->pools ? g->pools[b] : NULL;
    if (!p)
      continue;
    uint64_t now = px_pool_now_ms(p);
    const struct cfg_backend *be = &cfg->backends[b];
    for (size_t h = 0; h < be->nhosts; h++) {
      if (g->board)
        px_pool_host_set_healthy(p, h, px_health_board_usable(g->board, b, h));
      struct px_host_stats hs;
      if (!g->outliers || !g->outliers[b] || px_pool_host_stats(p, h, &hs) < 0)
        continue;
      if (px_outlier_observe(g->outliers[b], h, hs.consecutive_5xx,
                             hs.consecutive_connect_failures, now) == PX_OUTLIER_EJECTED) {
        struct px_outlier_host_info info;
        px_outlier_host_info(g->outliers[b], h, &info);
        px_pool_host_eject(p, h, info.until_ms);
        px_metrics_ejection(g->metrics, (unsigned)w->idx, b);
        log_warn("proxy", "worker %zu: backend %s host %s:%u ejected for %llu ms (%u in a row)",
                 w->idx, be->name, be->hosts[h].host, (unsigned)be->hosts[h].port,
                 (unsigned long long)(info.until_ms - now),
                 hs.consecutive_connect_failures >= hs.consecutive_5xx
                     ? hs.consecutive_connect_failures
                     : hs.consecutive_5xx);
      }
    }
    int down = !px_health_group_usable(g->board, b, g->outliers ? g->outliers[b] : NULL, now);
    if (g->group_down && down != g->group_down[b]) {
      g->group_down[b] = (unsigned char)down;
      if (down)
        log_warn("proxy", "worker %zu: backend %s has no usable host; %s", w->idx, be->name,
                 be->on_unhealthy == CFG_UNHEALTHY_FAIL_OPEN
                     ? "requests decided for it go to their route's backend"
                     : "requests decided for it fail with 503");
      else
        log_info("proxy", "worker %zu: backend %s has usable hosts again", w->idx, be->name);
    }
  }
}

static void tick_cb(evutil_socket_t fd, short what, void *user_data) {
  struct px_worker *w = user_data;
  update_time(w);
  health_tick(w);
  if (w->old_gens)
    reap_gens(w, px_now_ns());
  /* Killed connections stay on the list until their flush event frees them. */
  uint64_t now_ms = px_now_ns() / 1000000;
  for (struct px_client *c = w->conns; c; c = c->next)
    if (c->proto == PX_PROTO_H2 && !c->dead)
      px_front_h2_tick(c, now_ms);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *user_data) {
  struct accept_ctx *a = user_data;
  struct px_worker *w = a->w;
  uint32_t maxc = w->cfg->limits.max_connections;
  if (w->draining || (maxc && w->nconns >= maxc)) {
    if (!w->draining)
      px_limit_hit(w->srv->limits, PX_LIMIT_CONNECTIONS, (unsigned)w->idx);
    close(fd);
    return;
  }
  int rc = px_client_accept(w, a->l, fd, sa, salen);
  if (rc < 0)
    log_warn("proxy", "accept: %s", cut_strerror(rc));
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *user_data) {
  struct px_worker *w = user_data;
  log_info("proxy", "worker %zu: drain deadline passed with %zu connection(s) open", w->idx,
           w->nconns);
  event_base_loopbreak(w->base);
}

static void begin_stop(struct px_worker *w) {
  uint64_t drain_ms = atomic_load(&w->stop_drain_ms);
  if (!w->draining) {
    w->draining = 1;
    for (size_t i = 0; i < w->srv->nlisteners; i++) {
      if (w->ls[i]) {
        evconnlistener_free(w->ls[i]);
        w->ls[i] = NULL;
      }
    }
  }
  if (drain_ms == 0 || w->nconns == 0) {
    event_base_loopbreak(w->base);
    return;
  }
  for (struct px_client *c = w->conns, *next; c; c = next) {
    next = c->next;
    px_client_drain(c);
  }
  struct timeval tv = {(time_t)(drain_ms / 1000), (suseconds_t)((drain_ms % 1000) * 1000)};
  event_add(w->drain_ev, &tv);
}

static void ctl_cb(evutil_socket_t fd, short what, void *user_data) {
  struct px_worker *w = user_data;
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  take_next(w);
  if (atomic_load(&w->stop_req))
    begin_stop(w);
}

static void *worker_main(void *arg) {
  struct px_worker *w = arg;
  /* event_base_dispatch, one iteration at a time, forgetting the cached
   * clock reading between iterations */
  tl_now_cached = 1;
  for (;;) {
    tl_now_ns = 0;
    int rc = event_base_loop(w->base, EVLOOP_ONCE);
    if (rc != 0 || event_base_got_break(w->base) || event_base_got_exit(w->base))
      break;
  }
  tl_now_cached = 0;
  tl_now_ns = 0;
  /* whatever is still open is closed now, on this thread */
  while (w->conns)
    px_client_free(w->conns);
  /* shadows still in flight are cancelled and their pairs recorded */
  rec_mirror_env_shutdown(&w->menv);
  atomic_fetch_sub(&w->srv->running, 1);
  return NULL;
}

/* Binds a listening socket with SO_REUSEPORT (reuseport = 1) or without it (a
 * probe: fails when any other socket holds the port, so two proxies never share
 * one by accident). `port` overrides the config's (0 = as configured). */
static int bind_listener(const struct cfg_addr *a, uint16_t port, int reuseport, int *fd_out,
                         uint16_t *bound, char *err, size_t errlen) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char ps[8];
  snprintf(ps, sizeof ps, "%u", port ? port : a->port);
  int gai = getaddrinfo(a->host, ps, &hints, &res);
  if (gai != 0)
    return cut_errf(err, errlen, CUT_ERR_NET, "listen %s:%u: %s", a->host, a->port,
                    gai_strerror(gai));
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return cut_errf(err, errlen, CUT_ERR_NET, "socket: %s", strerror(errno));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport)
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
    int e = errno;
    freeaddrinfo(res);
    close(fd);
    return cut_errf(err, errlen, CUT_ERR_NET, "listen %s:%u: %s", a->host, a->port, strerror(e));
  }
  freeaddrinfo(res);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
  *fd_out = fd;
  return 0;
}

static int host_is_literal(const char *h) {
  unsigned char buf[16];
  return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

static struct worker_ext *ext_of(struct px_server *s, size_t i) { return &s->ext[i]; }

static int worker_init(struct px_server *s, struct px_worker *w, struct worker_ext *x, char *err,
                       size_t errlen) {
  const struct cfg *cfg = s->cfg;
  w->srv = s;
  w->cfg = cfg;
  px_rng_seed(&w->rng);
  update_time(w);
  struct event_config *ec = event_config_new();
  if (!ec)
    return CUT_ERR_NOMEM;
  /* no other thread touches this base; coalesce epoll_ctl calls per loop iteration */
  event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
  event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  w->base = event_base_new_with_config(ec);
  event_config_free(ec);
  if (!w->base)
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "cannot create an event loop");
  int need_dns = 0;
  for (size_t b = 0; b < cfg->nbackends; b++)
    for (size_t h = 0; h < cfg->backends[b].nhosts; h++)
      need_dns |= !host_is_literal(cfg->backends[b].hosts[h].host);
  if (need_dns) {
    w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!w->dns)
      log_warn("proxy", "no DNS resolver configured; backend host names will fail");
  }
  if (pipe2(x->ctl_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
    return cut_errf(err, errlen, CUT_ERR_IO, "pipe: %s", strerror(errno));
  w->ctl_ev = event_new(w->base, x->ctl_pipe[0], EV_READ | EV_PERSIST, ctl_cb, w);
  w->drain_ev = event_new(w->base, -1, 0, drain_timeout_cb, w);
  w->tick_ev = event_new(w->base, -1, EV_PERSIST, tick_cb, w);
  if (!w->ctl_ev || !w->drain_ev || !w->tick_ev)
    return CUT_ERR_NOMEM;
  event_add(w->ctl_ev, NULL);
  struct timeval one = {1, 0};
  event_add(w->tick_ev, &one);
  w->ls = calloc(s->nlisteners ? s->nlisteners : 1, sizeof *w->ls);
  x->actx = calloc(s->nlisteners ? s->nlisteners : 1, sizeof *x->actx);
  if (!w->ls || !x->actx)
    return CUT_ERR_NOMEM;
  for (size_t i = 0; i < s->nlisteners; i++) {
    x->actx[i].w = w;
    x->actx[i].l = &s->listeners[i];
    w->ls[i] = evconnlistener_new(w->base, accept_cb, &x->actx[i], LEV_OPT_CLOSE_ON_FREE, 0,
                                  x->fds[i]);
    if (!w->ls[i])
      return cut_errf(err, errlen, CUT_ERR_NET, "cannot watch listener %s",
                      s->listeners[i].addr);
    x->fds[i] = -1;
  }
  /* mirroring and recording: the shadows of this worker, its encoder */
  rec_opts_from_cfg(&w->ropts, &cfg->recording);
  w->mops = (struct rec_mirror_ops){s->ops.start, s->ops.send_body, s->ops.end_body,
                                    s->ops.cancel, s->ops.host};
  if (s->rec_sink && rec_codec_new(&w->codec, err, errlen) < 0)
    return CUT_ERR_AVRO;
  w->menv = (struct rec_mirror_env){.ops = &w->mops,
                                    .sink = w->codec ? s->rec_sink : NULL,
                                    .comparer = s->comparer,
                                    .codec = w->codec,
                                    .opts = &w->ropts,
                                    .stats = s->mirror_stats,
                                    .max_inflight = cfg->recording.max_inflight_shadows,
                                    .base = w->base,
                                    .shadow_timeout_ms = cfg->recording.shadow_timeout_ms};
  return gen_new(w, &w->gen, 0, cfg, s->metrics, s->health, err, errlen);
}

static void worker_clear(struct px_server *s, struct px_worker *w, struct worker_ext *x) {
  while (w->conns)
    px_client_free(w->conns);
  if (w->menv.ops)
    rec_mirror_env_shutdown(&w->menv); /* before the pools: it cancels exchanges */
  if (w->ls)
    for (size_t i = 0; i < s->nlisteners; i++)
      if (w->ls[i])
        evconnlistener_free(w->ls[i]);
  free(w->ls);
  gen_free(s, w->gen);
  w->gen = NULL;
  while (w->old_gens) {
    struct px_gen *g = w->old_gens;
    w->old_gens = g->next;
    gen_free(s, g);
  }
  if (w->ctl_ev)
    event_free(w->ctl_ev);
  if (w->drain_ev)
    event_free(w->drain_ev);
  if (w->tick_ev)
    event_free(w->tick_ev);
  rec_codec_free(w->codec);
  w->codec = NULL;
  if (w->dns)
    evdns_base_free(w->dns, 0);
  if (w->base)
    event_base_free(w->base);
  if (x) {
    if (x->fds)
      for (size_t i = 0; i < s->nlisteners; i++)
        if (x->fds[i] >= 0)
          close(x->fds[i]);
    free(x->fds);
    free(x->actx);
    if (x->ctl_pipe[0] >= 0)
      close(x->ctl_pipe[0]);
    if (x->ctl_pipe[1] >= 0)
      close(x->ctl_pipe[1]);
  }
}

int px_server_new(struct px_server **out, const struct px_server_opts *o, char *err,
                  size_t errlen) {
  *out = NULL;
  if (!o || !o->cfg || !o->ops || !o->decider || !o->decider->decide)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "server options incomplete");
  struct px_server *s = calloc(1, sizeof *s);
  if (!s)
    return CUT_ERR_NOMEM;
  s->cfg = o->cfg;
  pthread_mutex_init(&s->next_mu, NULL);
  s->ops = *o->ops;
  s->decider = *o->decider;
  s->alog = o->alog;
  s->metrics = o->metrics;
  s->limits = o->limits;
  s->health = o->health;
  s->rec_sink = o->rec_sink;
  s->comparer = o->comparer;
  s->mirror_stats = o->mirror_stats ? o->mirror_stats : &s->own_mirror_stats;
  const struct cfg *cfg = o->cfg;
  int rc = 0;
  size_t nw = o->workers ? o->workers : cfg->workers;
  if (!nw) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    nw = n > 0 ? (size_t)n : 1;
  }
  uint32_t maxhdr = cfg->limits.max_header_list_bytes ? cfg->limits.max_header_list_bytes : 65536;
  http_parser_set_max_header_size(maxhdr + 1024);
  s->nlisteners = cfg->nlisteners;
  s->listeners = calloc(s->nlisteners ? s->nlisteners : 1, sizeof *s->listeners);
  s->workers = calloc(nw, sizeof *s->workers);
  struct worker_ext *ext = s->ext = calloc(nw, sizeof *ext);
  if (!s->listeners || !s->workers || !ext) {
    rc = CUT_ERR_NOMEM;
    goto fail;
  }
  s->nworkers = nw;
  for (size_t i = 0; i < nw; i++)
    ext[i].ctl_pipe[0] = ext[i].ctl_pipe[1] = -1;
  for (size_t i = 0; i < nw; i++) {
    ext[i].fds = malloc((s->nlisteners ? s->nlisteners : 1) * sizeof(int));
    if (!ext[i].fds) {
      rc = CUT_ERR_NOMEM;
      goto fail;
    }
    for (size_t l = 0; l < s->nlisteners; l++)
      ext[i].fds[l] = -1;
    s->workers[i].idx = i;
  }
  for (size_t l = 0; l < s->nlisteners; l++) {
    const struct cfg_listener *cl = &cfg->listeners[l];
    struct px_listener_rt *rt = &s->listeners[l];
    rt->tls = cl->has_tls;
    rt->h2c_upgrade = cl->h2c_upgrade;
    if (cl->has_tls && (rc = px_tls_server_ctx(&rt->ssl, &cl->tls, err, errlen)) < 0) {
      px_err_at(err, errlen, &cl->where, "listener", cl->name);
      goto fail;
    }
    uint16_t port = 0;
    if (cl->listen.port) {
      int probe = -1;
      uint16_t bound = 0;
      rc = bind_listener(&cl->listen, 0, 0, &probe, &bound, err, errlen);
      if (rc < 0)
        goto fail;
      close(probe);
    }
    for (size_t i = 0; i < nw; i++) {
      uint16_t bound = 0;
      rc = bind_listener(&cl->listen, port, 1, &ext[i].fds[l], &bound, err, errlen);
      if (rc < 0)
        goto fail;
      port = bound;
    }
    snprintf(rt->addr, sizeof rt->addr, cl->listen.is_ipv6 ? "[%s]:%u" : "%s:%u",
             cl->listen.host, port);
  }
  for (size_t i = 0; i < nw; i++)
    if ((rc = worker_init(s, &s->workers[i], &ext[i], err, errlen)) < 0)
      goto fail;
  *out = s;
  return 0;
fail:
  s->joined = 1;
  px_server_free(s);
  return rc ? rc : CUT_ERR_NOMEM;
}

int px_server_start(struct px_server *s) {
  sigset_t all, old;
  sigfillset(&all);
  /* workers never take signals: the command's main thread waits for them */
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = 0;
  for (size_t i = 0; i < s->nworkers; i++) {
    struct px_worker *w = &s->workers[i];
    atomic_fetch_add(&s->running, 1);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
      atomic_fetch_sub(&s->running, 1);
      rc = CUT_ERR_IO;
      break;
    }
    w->thread_started = 1;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  s->started = 1;
  return rc;
}

void px_server_stop(struct px_server *s, uint64_t drain_ms) {
  for (size_t i = 0; i < s->nworkers; i++) {
    struct px_worker *w = &s->workers[i];
    atomic_store(&w->stop_drain_ms, drain_ms);
    atomic_store(&w->stop_req, 1);
    ssize_t n = write(ext_of(s, i)->ctl_pipe[1], "s", 1);
    (void)n;
  }
}

size_t px_server_running(const struct px_server *s) { return atomic_load(&s->running); }

void px_server_wait(struct px_server *s) {
  if (s->joined)
    return;
  for (size_t i = 0; i < s->nworkers; i++)
    if (s->workers[i].thread_started)
      pthread_join(s->workers[i].thread, NULL);
  s->joined = 1;
}

void px_server_free(struct px_server *s) {
  if (!s)
    return;
  if (s->started && !s->joined) {
    px_server_stop(s, 0);
    px_server_wait(s);
  }
  struct worker_ext *ext = s->ext;
  for (size_t i = 0; s->workers && i < s->nworkers; i++)
    worker_clear(s, &s->workers[i], ext ? &ext[i] : NULL);
  free(ext);
  free(s->workers);
  if (s->listeners)
    for (size_t l = 0; l < s->nlisteners; l++)
      if (s->listeners[l].ssl)
        SSL_CTX_free(s->listeners[l].ssl);
  free(s->listeners);
  pthread_mutex_destroy(&s->next_mu);
  free(s);
}

int px_server_reload_check(const struct px_server *s, const struct cfg *cfg, char *err,
                           size_t errlen) {
  if (cfg->nlisteners != s->cfg->nlisteners)
    return cut_errf(err, errlen, CUT_ERR_INVALID,
                    "listeners changed (%zu instead of %zu): restart the proxy to apply that",
                    cfg->nlisteners, s->cfg->nlisteners);
  for (size_t l = 0; l < cfg->nlisteners; l++) {
    const struct cfg_listener *a = &s->cfg->listeners[l], *b = &cfg->listeners[l];
    if (strcmp(a->listen.host, b->listen.host) != 0 || a->listen.port != b->listen.port ||
        a->has_tls != b->has_tls || a->h2c_upgrade != b->h2c_upgrade ||
        (a->has_tls && (strcmp(a->tls.cert ? a->tls.cert : "", b->tls.cert ? b->tls.cert : "") ||
                        strcmp(a->tls.key ? a->tls.key : "", b->tls.key ? b->tls.key : ""))))
      return cut_errf(err, errlen, CUT_ERR_INVALID,
                      "listener %s changed its address, TLS files or h2c_upgrade: restart the "
                      "proxy to apply that", b->name ? b->name : "?");
  }
  return 0;
}

int px_server_reload(struct px_server *s, const struct cfg *cfg, struct px_metrics *metrics,
                     struct px_health_board *board, uint64_t *id_out, char *err, size_t errlen) {
  int rc = px_server_reload_check(s, cfg, err, errlen);
  if (rc < 0)
    return rc;
  pthread_mutex_lock(&s->next_mu);
  uint64_t id = atomic_load(&s->next_id) + 1;
  s->next = (struct px_snapshot_msg){.cfg = cfg, .metrics = metrics, .board = board, .id = id};
  atomic_store(&s->next_id, id);
  pthread_mutex_unlock(&s->next_mu);
  for (size_t i = 0; i < s->nworkers; i++) {
    ssize_t n = write(ext_of(s, i)->ctl_pipe[1], "r", 1);
    (void)n;
  }
  if (id_out)
    *id_out = id;
  return 0;
}

uint64_t px_server_oldest_gen(const struct px_server *s) {
  uint64_t oldest = atomic_load(&s->next_id);
  for (size_t i = 0; i < s->nworkers; i++) {
    uint64_t o = atomic_load(&s->workers[i].oldest_gen);
    if (o < oldest)
      oldest = o;
  }
  return oldest;
}

size_t px_server_nlisteners(const struct px_server *s) { return s->nlisteners; }
const char *px_server_listener_addr(const struct px_server *s, size_t i) {
  return i < s->nlisteners ? s->listeners[i].addr : "";
}
int px_server_listener_tls(const struct px_server *s, size_t i) {
  return i < s->nlisteners && s->listeners[i].tls;
}

void px_server_stats(const struct px_server *s, struct px_server_stats *out) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < s->nworkers; i++) {
    const struct px_worker *w = &s->workers[i];
    out->connections += atomic_load_explicit(&w->n_conns, memory_order_relaxed);
    out->active_connections += atomic_load_explicit(&w->n_active, memory_order_relaxed);
    out->requests += atomic_load_explicit(&w->n_reqs, memory_order_relaxed);
    out->responses_5xx += atomic_load_explicit(&w->n_5xx, memory_order_relaxed);
  }
  if (s->alog)
    out->log_dropped = px_alog_dropped(s->alog);
}
