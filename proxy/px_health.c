/* px_health: active check and outlier state machines, the shared board, and the probe scheduler. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "proxy/px_health.h"

#define MOD "health"

/* ---------- active: one host ---------- */

void px_hc_init(struct px_hc *h) { memset(h, 0, sizeof *h); }

enum px_hc_event px_hc_result(struct px_hc *h, const struct cfg_health *cfg, int ok) {
  uint32_t healthy_n = cfg && cfg->healthy_threshold ? cfg->healthy_threshold : 1;
  uint32_t unhealthy_n = cfg && cfg->unhealthy_threshold ? cfg->unhealthy_threshold : 1;
  h->checks++;
  if (!ok)
    h->failures++;
  if (ok) {
    h->fail_streak = 0;
    h->ok_streak++;
  } else {
    h->ok_streak = 0;
    h->fail_streak++;
  }
  switch (h->state) {
  case PX_HC_UNKNOWN:
    h->state = ok ? PX_HC_HEALTHY : PX_HC_UNHEALTHY;
    return ok ? PX_HC_BECAME_HEALTHY : PX_HC_BECAME_UNHEALTHY;
  case PX_HC_HEALTHY:
    if (!ok && h->fail_streak >= unhealthy_n) {
      h->state = PX_HC_UNHEALTHY;
      return PX_HC_BECAME_UNHEALTHY;
    }
    return PX_HC_NO_CHANGE;
  case PX_HC_UNHEALTHY:
    if (ok && h->ok_streak >= healthy_n) {
      h->state = PX_HC_HEALTHY;
      return PX_HC_BECAME_HEALTHY;
    }
    return PX_HC_NO_CHANGE;
  }
  return PX_HC_NO_CHANGE;
}

/* ---------- passive: one group ---------- */

struct outlier_host {
  uint32_t c5xx, cconn;
  uint32_t seen_5xx, seen_conn;   /* px_outlier_observe: the counters at the last call */
  int ejected;
  uint64_t until_ms;
  uint32_t ejections;
  uint64_t returned_ms;   /* when it last came back; 0 = never ejected */
  uint64_t total;
};

struct px_outlier {
  struct cfg_outlier cfg;
  size_t n, nejected, cap;
  struct outlier_host *h;
};

int px_outlier_new(struct px_outlier **out, const struct cfg_outlier *cfg, size_t nhosts) {
  if (!out || !cfg || nhosts == 0)
    return CUT_ERR_INVALID;
  struct px_outlier *o = calloc(1, sizeof *o);
  if (!o)
    return CUT_ERR_NOMEM;
  o->h = calloc(nhosts, sizeof *o->h);
  if (!o->h) {
    free(o);
    return CUT_ERR_NOMEM;
  }
  o->cfg = *cfg;
  o->n = nhosts;
  if (cfg->max_ejected_ppm == 0) {
    o->cap = 0;
  } else {
    o->cap = (size_t)((uint64_t)nhosts * cfg->max_ejected_ppm / CFG_PPM_MAX);
    if (o->cap == 0)
      o->cap = 1;
  }
  *out = o;
  return 0;
}

void px_outlier_free(struct px_outlier *o) {
  if (!o)
    return;
  free(o->h);
  free(o);
}

static uint64_t ejection_ms(const struct cfg_outlier *c, uint32_t k) {
  uint64_t d = c->base_ejection_ms;
  for (uint32_t i = 1; i < k && d < c->max_ejection_ms; i++)
    d *= 2;
  if (c->max_ejection_ms && d > c->max_ejection_ms)
    d = c->max_ejection_ms;
  return d;
}

enum px_outlier_event px_outlier_record(struct px_outlier *o, size_t host, enum px_outcome r,
                                        uint64_t now_ms) {
  if (!o || host >= o->n)
    return PX_OUTLIER_NONE;
  px_outlier_tick(o, now_ms);
  struct outlier_host *h = &o->h[host];
  if (h->ejected)
    return PX_OUTLIER_NONE;
  int trip = 0;
  switch (r) {
  case PX_OUTCOME_OK:
    h->c5xx = 0;
    h->cconn = 0;
    return PX_OUTLIER_NONE;
  case PX_OUTCOME_5XX:
    h->cconn = 0; /* it connected */
    h->c5xx++;
    trip = o->cfg.consecutive_5xx && h->c5xx >= o->cfg.consecutive_5xx;
    break;
  case PX_OUTCOME_CONNECT_FAIL:
    h->cconn++;
    trip = o->cfg.consecutive_connect_failures && h->cconn >= o->cfg.consecutive_connect_failures;
    break;
  }
  if (!trip)
    return PX_OUTLIER_NONE;
  if (o->nejected >= o->cap)
    return PX_OUTLIER_CAPPED; /* counters stay high: it is ejected as soon as room frees up */
  if (h->returned_ms && now_ms - h->returned_ms >= o->cfg.max_ejection_ms)
    h->ejections = 0;
  h->ejections++;
  h->total++;
  h->ejected = 1;
  h->until_ms = now_ms + ejection_ms(&o->cfg, h->ejections);
  h->c5xx = 0;
  h->cconn = 0;
  o->nejected++;
  return PX_OUTLIER_EJECTED;
}

/* Growth of an external consecutive counter since the last look (a drop means
 * a success reset it, and the new value is all new failures). */
static uint32_t grown(uint32_t now, uint32_t *seen) {
  uint32_t d = now >= *seen ? now - *seen : now;
  *seen = now;
  return d;
}

enum px_outlier_event px_outlier_observe(struct px_outlier *o, size_t host, uint32_t c5xx,
                                         uint32_t cconn, uint64_t now_ms) {
  if (!o || host >= o->n)
    return PX_OUTLIER_NONE;
  struct outlier_host *h = &o->h[host];
  int reset_5xx = c5xx < h->seen_5xx, reset_conn = cconn < h->seen_conn;
  uint32_t d5 = grown(c5xx, &h->seen_5xx), dc = grown(cconn, &h->seen_conn);
  /* Past the thresholds more outcomes change nothing: bound the loops. */
  if (d5 > 1024)
    d5 = 1024;
  if (dc > 1024)
    dc = 1024;
  px_outlier_tick(o, now_ms);
  if (h->ejected)
    return PX_OUTLIER_NONE;
  /* A drop means a success came in between: the run restarts. */
  if (reset_5xx)
    h->c5xx = 0;
  if (reset_conn)
    h->cconn = 0;
  enum px_outlier_event ev = PX_OUTLIER_NONE;
  for (uint32_t i = 0; i < dc && ev == PX_OUTLIER_NONE; i++) {
    uint32_t keep5 = h->c5xx; /* connect failures do not reset the 5xx run */
    ev = px_outlier_record(o, host, PX_OUTCOME_CONNECT_FAIL, now_ms);
    if (!h->ejected)
      h->c5xx = keep5;
  }
  for (uint32_t i = 0; i < d5 && ev == PX_OUTLIER_NONE; i++) {
    uint32_t keepc = h->cconn; /* counted separately by the pool */
    ev = px_outlier_record(o, host, PX_OUTCOME_5XX, now_ms);
    if (!h->ejected)
      h->cconn = keepc;
  }
  return ev;
}

size_t px_outlier_tick(struct px_outlier *o, uint64_t now_ms) {
  if (!o || o->nejected == 0)
    return 0;
  size_t back = 0;
  for (size_t i = 0; i < o->n; i++) {
    struct outlier_host *h = &o->h[i];
    if (h->ejected && now_ms >= h->until_ms) {
      h->ejected = 0;
      h->returned_ms = now_ms ? now_ms : 1;
      o->nejected--;
      back++;
    }
  }
  return back;
}

int px_outlier_ejected(const struct px_outlier *o, size_t host, uint64_t now_ms) {
  if (!o || host >= o->n)
    return 0;
  return o->h[host].ejected && now_ms < o->h[host].until_ms;
}

size_t px_outlier_nejected(const struct px_outlier *o) { return o ? o->nejected : 0; }

int px_outlier_host_info(const struct px_outlier *o, size_t host,
                         struct px_outlier_host_info *out) {
  if (!o || host >= o->n || !out)
    return CUT_ERR_NOT_FOUND;
  const struct outlier_host *h = &o->h[host];
  *out = (struct px_outlier_host_info){.ejected = h->ejected,
                                       .until_ms = h->until_ms,
                                       .ejections = h->ejections,
                                       .total_ejections = h->total,
                                       .consecutive_5xx = h->c5xx,
                                       .consecutive_connect_failures = h->cconn};
  return 0;
}

/* ---------- board ---------- */

struct px_health_board {
  size_t nbackends;
  size_t *nhosts;
  _Atomic int **usable;
};

int px_health_board_new(struct px_health_board **out, const struct cfg *cfg) {
  if (!out || !cfg)
    return CUT_ERR_INVALID;
  struct px_health_board *b = calloc(1, sizeof *b);
  if (!b)
    return CUT_ERR_NOMEM;
  b->nbackends = cfg->nbackends;
  b->nhosts = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof *b->nhosts);
  b->usable = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof *b->usable);
  if (!b->nhosts || !b->usable)
    goto fail;
  for (size_t i = 0; i < cfg->nbackends; i++) {
    size_t n = cfg->backends[i].nhosts;
    b->usable[i] = calloc(n ? n : 1, sizeof *b->usable[i]);
    if (!b->usable[i])
      goto fail;
    b->nhosts[i] = n;
    for (size_t j = 0; j < n; j++)
      atomic_init(&b->usable[i][j], 1);
  }
  *out = b;
  return 0;
fail:
  px_health_board_free(b);
  return CUT_ERR_NOMEM;
}

void px_health_board_free(struct px_health_board *b) {
  if (!b)
    return;
  for (size_t i = 0; b->usable && i < b->nbackends; i++)
    free(b->usable[i]);
  free(b->usable);
  free(b->nhosts);
  free(b);
}

void px_health_board_set(struct px_health_board *b, size_t backend, size_t host, int usable) {
  if (b && backend < b->nbackends && host < b->nhosts[backend])
    atomic_store_explicit(&b->usable[backend][host], usable ? 1 : 0, memory_order_relaxed);
}

int px_health_board_usable(const struct px_health_board *b, size_t backend, size_t host) {
  if (!b || backend >= b->nbackends || host >= b->nhosts[backend])
    return 1;
  return atomic_load_explicit(&b->usable[backend][host], memory_order_relaxed);
}

int px_health_group_usable(const struct px_health_board *b, size_t backend,
                           const struct px_outlier *outlier, uint64_t now_ms) {
  if (!b || backend >= b->nbackends)
    return 1;
  for (size_t h = 0; h < b->nhosts[backend]; h++)
    if (px_health_board_usable(b, backend, h) && !px_outlier_ejected(outlier, h, now_ms))
      return 1;
  return 0;
}

size_t px_health_route(const struct cfg *cfg, size_t chosen, int chosen_usable, size_t fallback,
                       int *failed_over) {
  if (failed_over)
    *failed_over = 0;
  if (chosen_usable || !cfg || chosen >= cfg->nbackends || fallback >= cfg->nbackends ||
      chosen == fallback)
    return chosen;
  if (cfg->backends[chosen].on_unhealthy != CFG_UNHEALTHY_FAIL_OPEN)
    return chosen;
  if (failed_over)
    *failed_over = 1;
  return fallback;
}

/* ---------- checker ---------- */

struct probe {
  struct px_health_checker *c;
  size_t backend, host;
  const struct cfg_backend *be;
  struct px_hc hc;
  struct evhttp_connection *conn;
  struct evhttp_request *inflight;
  struct event *timer;
  char hostport[300];
  struct met_series *ok, *fail, *healthy;
};

struct px_health_checker {
  struct event_base *base;
  const struct cfg *cfg;
  struct px_health_board *board;
  struct px_health_checker_opts opts;
  struct probe *probes;
  size_t nprobes;
};

static void probe_result(struct probe *p, int ok, const char *why) {
  struct px_health_checker *c = p->c;
  met_counter_add(ok ? p->ok : p->fail, UINT32_MAX, 1);
  enum px_hc_event ev = px_hc_result(&p->hc, &p->be->health, ok);
  if (ev == PX_HC_NO_CHANGE)
    return;
  int usable = ev == PX_HC_BECAME_HEALTHY;
  px_health_board_set(c->board, p->backend, p->host, usable);
  met_gauge_set(p->healthy, usable);
  if (usable)
    log_info(MOD, "backend %s host %s is healthy", p->be->name, p->hostport);
  else
    log_warn(MOD, "backend %s host %s is unhealthy: %s", p->be->name, p->hostport, why);
  if (c->opts.on_change)
    c->opts.on_change(p->backend, p->host, ev, c->opts.user_data);
}

static void on_probe_done_cb(struct evhttp_request *req, void *user_data) {
  struct probe *p = user_data;
  p->inflight = NULL;
  int code = req ? evhttp_request_get_response_code(req) : 0;
  char why[64];
  if (code == 0)
    snprintf(why, sizeof why, "no response (refused, reset or timed out)");
  else
    snprintf(why, sizeof why, "status %d", code);
  probe_result(p, code >= 200 && code < 300, why);
}

static void on_probe_timer_cb(evutil_socket_t fd, short what, void *user_data) {
  struct probe *p = user_data;
  (void)fd;
  (void)what;
  struct timeval iv = {.tv_sec = (time_t)(p->be->health.interval_ms / 1000),
                       .tv_usec = (suseconds_t)(p->be->health.interval_ms % 1000) * 1000};
  evtimer_add(p->timer, &iv);
  if (p->inflight)
    return; /* the previous probe is still within its timeout */
  struct evhttp_request *req = evhttp_request_new(on_probe_done_cb, p);
  if (!req) {
    probe_result(p, 0, "out of memory");
    return;
  }
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Host", p->be->host_header ? p->be->host_header : p->hostport);
  evhttp_add_header(h, "User-Agent", "cutover-health/" CUTOVER_VERSION);
  evhttp_add_header(h, "Connection", "close");
  const char *path = p->be->health.path ? p->be->health.path : "/healthz";
  if (evhttp_make_request(p->conn, req, EVHTTP_REQ_GET, path) != 0) {
    /* evhttp_make_request frees the request on failure. */
    probe_result(p, 0, "cannot send the probe");
    return;
  }
  p->inflight = req;
}

static int setup_probe(struct px_health_checker *c, struct probe *p, size_t bi, size_t hi,
                       size_t spread_index, char *err, size_t errlen) {
  const struct cfg_backend *be = &c->cfg->backends[bi];
  const struct cfg_addr *a = &be->hosts[hi];
  p->c = c;
  p->backend = bi;
  p->host = hi;
  p->be = be;
  px_hc_init(&p->hc);
  snprintf(p->hostport, sizeof p->hostport, "%s%s%s:%u", a->is_ipv6 ? "[" : "", a->host,
           a->is_ipv6 ? "]" : "", (unsigned)a->port);
  p->conn = evhttp_connection_base_new(c->base, c->opts.dns, a->host, a->port);
  p->timer = evtimer_new(c->base, on_probe_timer_cb, p);
  if (!p->conn || !p->timer)
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory for health checks");
  uint64_t to = be->health.timeout_ms ? be->health.timeout_ms : 1000;
  struct timeval tv = {.tv_sec = (time_t)(to / 1000), .tv_usec = (suseconds_t)(to % 1000) * 1000};
  evhttp_connection_set_timeout_tv(p->conn, &tv);
  evhttp_connection_set_retries(p->conn, 0);
  if (c->opts.metrics) {
    static const char *const labels[] = {"backend", "result"};
    static const char *const hlabels[] = {"backend", "host"};
    struct met_family_def d = {.name = "cutover_health_checks_total",
                               .help = "Active health check probes by backend and result.",
                               .type = MET_COUNTER, .labels = labels, .nlabels = 2};
    struct met_family_def g = {.name = "cutover_upstream_healthy",
                               .help = "1 when the host passes active health checks, else 0.",
                               .type = MET_GAUGE, .labels = hlabels, .nlabels = 2,
                               .max_series = 1024};
    struct met_family *f, *gf;
    if (met_family_register(c->opts.metrics, &d, &f, err, errlen) != 0 ||
        met_family_register(c->opts.metrics, &g, &gf, err, errlen) != 0)
      return CUT_ERR_INVALID;
    p->ok = met_series_get(f, (const char *const[]){be->name, "ok"});
    p->fail = met_series_get(f, (const char *const[]){be->name, "fail"});
    p->healthy = met_series_get(gf, (const char *const[]){be->name, p->hostport});
    met_gauge_set(p->healthy, 1);
  }
  /* Spread the first probes over the interval so hosts are not checked in lockstep. */
  uint64_t iv = be->health.interval_ms ? be->health.interval_ms : 5000;
  uint64_t first = (spread_index * 97) % (iv / 4 + 1);
  struct timeval ftv = {.tv_sec = (time_t)(first / 1000),
                        .tv_usec = (suseconds_t)(first % 1000) * 1000};
  evtimer_add(p->timer, &ftv);
  return 0;
}

int px_health_checker_new(struct px_health_checker **out, struct event_base *base,
                          const struct cfg *cfg, struct px_health_board *board,
                          const struct px_health_checker_opts *opts, char *err, size_t errlen) {
  if (!out || !base || !cfg || !board)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "px_health_checker_new: NULL argument");
  struct px_health_checker *c = calloc(1, sizeof *c);
  if (!c)
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
  c->base = base;
  c->cfg = cfg;
  c->board = board;
  if (opts)
    c->opts = *opts;
  size_t n = 0;
  for (size_t i = 0; i < cfg->nbackends; i++)
    if (cfg->backends[i].health.enabled && !cfg->backends[i].has_tls)
      n += cfg->backends[i].nhosts;
  c->probes = calloc(n ? n : 1, sizeof *c->probes);
  if (!c->probes) {
    free(c);
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
  }
  int rc = 0;
  for (size_t i = 0; i < cfg->nbackends && !rc; i++) {
    const struct cfg_backend *be = &cfg->backends[i];
    if (!be->health.enabled)
      continue;
    if (be->has_tls) {
      log_warn(MOD, "backend %s: active checks over TLS are not supported yet; its hosts count "
                    "as healthy (passive ejection still applies)", be->name);
      continue;
    }
    for (size_t h = 0; h < be->nhosts && !rc; h++) {
      rc = setup_probe(c, &c->probes[c->nprobes], i, h, c->nprobes, err, errlen);
      c->nprobes++;
    }
  }
  if (rc) {
    px_health_checker_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void px_health_checker_free(struct px_health_checker *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nprobes; i++) {
    struct probe *p = &c->probes[i];
    if (p->timer)
      event_free(p->timer);
    /* Freeing the connection cancels a probe in flight without calling back. */
    if (p->conn)
      evhttp_connection_free(p->conn);
  }
  free(c->probes);
  free(c);
}

int px_health_checker_host(const struct px_health_checker *c, size_t backend, size_t host,
                           struct px_hc *out) {
  if (!c || !out)
    return CUT_ERR_INVALID;
  for (size_t i = 0; i < c->nprobes; i++)
    if (c->probes[i].backend == backend && c->probes[i].host == host) {
      *out = c->probes[i].hc;
      return 0;
    }
  return CUT_ERR_NOT_FOUND;
}
