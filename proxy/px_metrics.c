/* px_metrics: the proxy's metric families and per-config series tables. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"
#include "common/metrics.h"
#include "proxy/px_metrics.h"
#include "proxy/px_upstream.h"

#define NCLASSES 6 /* none, 1xx .. 5xx */

static const char *const class_names[NCLASSES] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const proto_names[] = {"http1", "h2c", "h2"};
#define NPROTOS 3

/* One way a request of a route can be decided: a label tuple and its series per status class. */
struct slot {
  enum dial_via via;
  int other;                 /* the catch-all slot for decisions this table did not foresee */
  char *arm;                 /* copied: "new", "old", "canary", "baseline", a cell name, "" */
  struct met_series *by_class[NCLASSES];
};

struct route_m {
  struct slot *slots;
  size_t nslots;
  struct met_series **latency; /* per backend index; NULL when the route cannot reach it */
  struct met_series *bytes_in, *bytes_out;
};

/* A backend's pool counters, summed over the workers' pools. */
struct pool_m {
  struct met_series *connects, *retries, *pipelined, *timeouts, *resets;
};

struct px_metrics {
  struct met_registry *reg;
  size_t nroutes, nbackends, ndials, nexps;
  struct route_m *routes;
  struct met_series **failovers, **ejections, **connect_failures; /* per backend */
  struct pool_m *pools;                                           /* per backend */
  struct met_series **dial_ratio;                                 /* per dial */
  struct met_series **exp_running;                                /* per experiment */
  struct met_series *conns[NPROTOS], *conns_total[NPROTOS];
  struct met_series *streams;
  struct met_series *reload_ok, *reload_bad;
};

struct families {
  struct met_family *requests, *latency, *bytes_in, *bytes_out, *failovers, *ejections,
      *connect_failures, *dial_ratio, *exp_running, *conns, *conns_total, *streams, *reloads,
      *up_connects, *up_retries, *up_pipelined, *up_timeouts, *up_resets;
};

static int reg(struct met_registry *r, struct met_family **f, const char *name, const char *help,
               enum met_type type, const char *const *labels, size_t nlabels, size_t max_series,
               double divisor, char *err, size_t errlen) {
  struct met_family_def d = {.name = name, .help = help, .type = type, .labels = labels,
                             .nlabels = nlabels, .max_series = max_series, .divisor = divisor};
  if (type == MET_HISTOGRAM) {
    d.buckets = met_latency_buckets_us;
    d.nbuckets = met_latency_nbuckets;
    d.divisor = 1e6;
  }
  return met_family_register(r, &d, f, err, errlen);
}

static int register_families(struct met_registry *r, const struct cfg *cfg, struct families *F,
                             char *err, size_t errlen) {
  static const char *const req_l[] = {"route", "via", "decision", "arm", "status_class"};
  static const char *const lat_l[] = {"route", "backend"};
  static const char *const route_l[] = {"route"};
  static const char *const be_l[] = {"backend"};
  static const char *const dial_l[] = {"dial"};
  static const char *const exp_l[] = {"experiment"};
  static const char *const proto_l[] = {"protocol"};
  static const char *const result_l[] = {"result"};
  /* Generous bounds: the tables below know the exact label sets; the bounds only
   * stop a pathological config from eating the registry. */
  size_t nr = cfg->nroutes + 1, nb = cfg->nbackends + 1;
  int rc = 0;
  rc = rc ? rc : reg(r, &F->requests, "cutover_requests_total",
                     "Client requests by route, decision and response status class.", MET_COUNTER,
                     req_l, 5, 4096 + nr * 64 * NCLASSES, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->latency, "cutover_request_duration_seconds",
                     "Time from the request head to the end of the response, by route and "
                     "serving backend.", MET_HISTOGRAM, lat_l, 2, 1024 + nr * nb, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->bytes_in, "cutover_received_bytes_total",
                     "Request body bytes received from clients, by route.", MET_COUNTER, route_l,
                     1, 256 + nr, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->bytes_out, "cutover_sent_bytes_total",
                     "Response body bytes sent to clients, by route.", MET_COUNTER, route_l, 1,
                     256 + nr, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->failovers, "cutover_upstream_failovers_total",
                     "Requests sent to the route's own backend because the chosen backend had "
                     "no usable host (on_unhealthy: fail_open).", MET_COUNTER, be_l, 1, 256 + nb,
                     0, err, errlen);
  rc = rc ? rc : reg(r, &F->ejections, "cutover_upstream_ejections_total",
                     "Hosts ejected by passive outlier detection, by backend.", MET_COUNTER, be_l,
                     1, 256 + nb, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->connect_failures, "cutover_upstream_connect_failures_total",
                     "Failed connection attempts to backend hosts.", MET_COUNTER, be_l, 1,
                     256 + nb, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->up_connects, "cutover_upstream_connects_total",
                     "Connections opened to backend hosts.", MET_COUNTER, be_l, 1, 256 + nb, 0,
                     err, errlen);
  rc = rc ? rc : reg(r, &F->up_retries, "cutover_upstream_retries_total",
                     "Requests sent again: after a failed connect, or pipelined requests a "
                     "backend closed the connection on before answering.",
                     MET_COUNTER, be_l, 1, 256 + nb, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->up_pipelined, "cutover_upstream_pipelined_total",
                     "HTTP/1.1 requests sent behind another on a backend connection (pipeline).",
                     MET_COUNTER, be_l, 1, 256 + nb, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->up_timeouts, "cutover_upstream_timeouts_total",
                     "Exchanges with a backend that timed out (timeout or total_timeout).",
                     MET_COUNTER, be_l, 1, 256 + nb, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->up_resets, "cutover_upstream_resets_total",
                     "Exchanges a backend closed or reset before the response was complete.",
                     MET_COUNTER, be_l, 1, 256 + nb, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->dial_ratio, "cutover_dial_ratio",
                     "Live value of each dial on this proxy, as a ratio (0.125 = 12.5%).",
                     MET_GAUGE, dial_l, 1, 256 + cfg->ndials, 1e6, err, errlen);
  rc = rc ? rc : reg(r, &F->exp_running, "cutover_experiment_running",
                     "1 while the experiment routes its pool, else 0.", MET_GAUGE, exp_l, 1,
                     256 + cfg->nexperiments, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->conns, "cutover_client_connections",
                     "Open client connections by protocol.", MET_GAUGE, proto_l, 1, NPROTOS, 0,
                     err, errlen);
  rc = rc ? rc : reg(r, &F->conns_total, "cutover_client_connections_total",
                     "Accepted client connections by protocol.", MET_COUNTER, proto_l, 1, NPROTOS,
                     0, err, errlen);
  rc = rc ? rc : reg(r, &F->streams, "cutover_client_streams",
                     "Client requests (HTTP/2 streams or HTTP/1.1 exchanges) in progress.",
                     MET_GAUGE, NULL, 0, 1, 0, err, errlen);
  rc = rc ? rc : reg(r, &F->reloads, "cutover_config_reloads_total",
                     "Config reload attempts by result (ok, rejected).", MET_COUNTER, result_l, 1,
                     2, 0, err, errlen);
  return rc;
}

static int add_slot(struct route_m *rm, size_t cap, struct met_family *f, const char *route,
                    enum dial_via via, const char *decision, const char *arm, int other) {
  if (rm->nslots >= cap)
    return CUT_ERR_INVALID;
  struct slot *s = &rm->slots[rm->nslots];
  s->via = via;
  s->other = other;
  s->arm = strdup(arm);
  if (!s->arm)
    return CUT_ERR_NOMEM;
  rm->nslots++;
  for (int c = 0; c < NCLASSES; c++) {
    const char *v[] = {route, other ? "other" : dial_via_name(via), decision, arm, class_names[c]};
    s->by_class[c] = met_series_get(f, v);
  }
  return 0;
}

static void add_latency(struct px_metrics *m, struct route_m *rm, const struct families *F,
                        const struct cfg *cfg, const struct cfg_route *r, size_t b) {
  if (b < m->nbackends && !rm->latency[b])
    rm->latency[b] =
        met_series_get(F->latency, (const char *const[]){r->name, cfg->backends[b].name});
}

static int build_route(struct px_metrics *m, const struct cfg *cfg, size_t ri,
                       const struct families *F) {
  const struct cfg_route *r = &cfg->routes[ri];
  struct route_m *rm = &m->routes[ri];
  const struct cfg_allocation *al =
      r->allocation_index < cfg->nallocations ? &cfg->allocations[r->allocation_index] : NULL;
  const struct cfg_experiment *ex =
      r->experiment_index < cfg->nexperiments ? &cfg->experiments[r->experiment_index] : NULL;
  const struct cfg_dial *di = r->dial_index < cfg->ndials ? &cfg->dials[r->dial_index] : NULL;
  size_t cap = 2 + (di ? 2 : 0) + (ex ? 2 : 0) + (al ? al->ncells : 0);
  rm->slots = calloc(cap, sizeof *rm->slots);
  rm->latency = calloc(m->nbackends ? m->nbackends : 1, sizeof *rm->latency);
  if (!rm->slots || !rm->latency)
    return CUT_ERR_NOMEM;
  int rc = add_slot(rm, cap, F->requests, r->name, DIAL_VIA_DEFAULT, "", "", 0);
  if (!rc && di) {
    rc = add_slot(rm, cap, F->requests, r->name, DIAL_VIA_DIAL, di->name, "new", 0);
    rc = rc ? rc : add_slot(rm, cap, F->requests, r->name, DIAL_VIA_DIAL, di->name, "old", 0);
  }
  if (!rc && ex) {
    rc = add_slot(rm, cap, F->requests, r->name, DIAL_VIA_EXPERIMENT, ex->name, "canary", 0);
    rc = rc ? rc
            : add_slot(rm, cap, F->requests, r->name, DIAL_VIA_EXPERIMENT, ex->name, "baseline",
                       0);
  }
  for (size_t c = 0; !rc && al && c < al->ncells; c++)
    rc = add_slot(rm, cap, F->requests, r->name, DIAL_VIA_ALLOCATION, al->name,
                  al->cells[c].name, 0);
  if (!rc)
    rc = add_slot(rm, cap, F->requests, r->name, DIAL_VIA_DEFAULT, "", "", 1);
  if (rc)
    return rc;

  /* Latency series only for the backends this route can reach. */
  add_latency(m, rm, F, cfg, r, r->backend_index);
  if (di)
    add_latency(m, rm, F, cfg, r, di->to_index);
  if (ex) {
    add_latency(m, rm, F, cfg, r, ex->canary_index);
    add_latency(m, rm, F, cfg, r, ex->baseline_index);
  }
  for (size_t c = 0; al && c < al->ncells; c++)
    add_latency(m, rm, F, cfg, r, al->cells[c].backend_index);
  rm->bytes_in = met_series_get(F->bytes_in, (const char *const[]){r->name});
  rm->bytes_out = met_series_get(F->bytes_out, (const char *const[]){r->name});
  return 0;
}

int px_metrics_new(struct px_metrics **out, struct met_registry *r, const struct cfg *cfg,
                   char *err, size_t errlen) {
  if (!out || !r || !cfg)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "px_metrics_new: NULL argument");
  struct families F;
  int rc = register_families(r, cfg, &F, err, errlen);
  if (rc)
    return rc;
  struct px_metrics *m = calloc(1, sizeof *m);
  if (!m)
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
  m->reg = r;
  m->nroutes = cfg->nroutes;
  m->nbackends = cfg->nbackends;
  m->ndials = cfg->ndials;
  m->nexps = cfg->nexperiments;
  m->routes = calloc(m->nroutes ? m->nroutes : 1, sizeof *m->routes);
  m->failovers = calloc(m->nbackends ? m->nbackends : 1, sizeof *m->failovers);
  m->ejections = calloc(m->nbackends ? m->nbackends : 1, sizeof *m->ejections);
  m->connect_failures = calloc(m->nbackends ? m->nbackends : 1, sizeof *m->connect_failures);
  m->pools = calloc(m->nbackends ? m->nbackends : 1, sizeof *m->pools);
  m->dial_ratio = calloc(m->ndials ? m->ndials : 1, sizeof *m->dial_ratio);
  m->exp_running = calloc(m->nexps ? m->nexps : 1, sizeof *m->exp_running);
  if (!m->routes || !m->failovers || !m->ejections || !m->connect_failures || !m->pools ||
      !m->dial_ratio ||
      !m->exp_running) {
    rc = CUT_ERR_NOMEM;
    goto fail;
  }
  for (size_t i = 0; i < m->nroutes && !rc; i++)
    rc = build_route(m, cfg, i, &F);
  if (rc)
    goto fail;
  for (size_t b = 0; b < m->nbackends; b++) {
    const char *v[] = {cfg->backends[b].name};
    m->failovers[b] = met_series_get(F.failovers, v);
    m->ejections[b] = met_series_get(F.ejections, v);
    m->connect_failures[b] = met_series_get(F.connect_failures, v);
    m->pools[b].connects = met_series_get(F.up_connects, v);
    m->pools[b].retries = met_series_get(F.up_retries, v);
    m->pools[b].pipelined = met_series_get(F.up_pipelined, v);
    m->pools[b].timeouts = met_series_get(F.up_timeouts, v);
    m->pools[b].resets = met_series_get(F.up_resets, v);
  }
  for (size_t d = 0; d < m->ndials; d++) {
    m->dial_ratio[d] = met_series_get(F.dial_ratio, (const char *const[]){cfg->dials[d].name});
    met_gauge_set(m->dial_ratio[d], cfg->dials[d].ppm);
  }
  for (size_t e = 0; e < m->nexps; e++) {
    m->exp_running[e] =
        met_series_get(F.exp_running, (const char *const[]){cfg->experiments[e].name});
    met_gauge_set(m->exp_running[e], cfg->experiments[e].autostart);
  }
  for (int p = 0; p < NPROTOS; p++) {
    m->conns[p] = met_series_get(F.conns, (const char *const[]){proto_names[p]});
    m->conns_total[p] = met_series_get(F.conns_total, (const char *const[]){proto_names[p]});
  }
  m->streams = met_series_get(F.streams, NULL);
  m->reload_ok = met_series_get(F.reloads, (const char *const[]){"ok"});
  m->reload_bad = met_series_get(F.reloads, (const char *const[]){"rejected"});
  *out = m;
  return 0;
fail:
  px_metrics_free(m);
  return cut_errf(err, errlen, rc, "cannot build the proxy's metrics: %s", cut_strerror(rc));
}

void px_metrics_free(struct px_metrics *m) {
  if (!m)
    return;
  for (size_t i = 0; m->routes && i < m->nroutes; i++) {
    for (size_t s = 0; s < m->routes[i].nslots; s++)
      free(m->routes[i].slots[s].arm);
    free(m->routes[i].slots);
    free(m->routes[i].latency);
  }
  free(m->routes);
  free(m->failovers);
  free(m->ejections);
  free(m->connect_failures);
  free(m->pools);
  free(m->dial_ratio);
  free(m->exp_running);
  free(m);
}

struct met_registry *px_metrics_registry(const struct px_metrics *m) { return m ? m->reg : NULL; }

const char *px_metrics_status_class(int status) {
  return status >= 100 && status < 600 ? class_names[status / 100] : class_names[0];
}

static const struct slot *find_slot(const struct route_m *rm, const struct dial_decision *d) {
  if (!d || d->via == DIAL_VIA_DEFAULT)
    return &rm->slots[0];
  for (size_t i = 1; i + 1 < rm->nslots; i++) {
    const struct slot *s = &rm->slots[i];
    if (s->via == d->via && d->arm && strcmp(s->arm, d->arm) == 0)
      return s;
  }
  return &rm->slots[rm->nslots - 1];
}

void px_metrics_request(struct px_metrics *m, unsigned shard, size_t route,
                        const struct dial_decision *d, size_t backend, int status,
                        uint64_t duration_us, uint64_t bytes_in, uint64_t bytes_out) {
  if (!m || route >= m->nroutes)
    return;
  const struct route_m *rm = &m->routes[route];
  int cls = status >= 100 && status < 600 ? status / 100 : 0;
  met_counter_add(find_slot(rm, d)->by_class[cls], shard, 1);
  if (backend < m->nbackends)
    met_hist_observe(rm->latency[backend], shard, duration_us);
  if (bytes_in)
    met_counter_add(rm->bytes_in, shard, bytes_in);
  if (bytes_out)
    met_counter_add(rm->bytes_out, shard, bytes_out);
}

void px_metrics_conn_open(struct px_metrics *m, unsigned shard, enum px_metrics_proto p) {
  if (m && (unsigned)p < NPROTOS) {
    met_gauge_add(m->conns[p], shard, 1);
    met_counter_add(m->conns_total[p], shard, 1);
  }
}

void px_metrics_conn_close(struct px_metrics *m, unsigned shard, enum px_metrics_proto p) {
  if (m && (unsigned)p < NPROTOS)
    met_gauge_add(m->conns[p], shard, -1);
}

void px_metrics_stream_open(struct px_metrics *m, unsigned shard) {
  if (m)
    met_gauge_add(m->streams, shard, 1);
}

void px_metrics_stream_close(struct px_metrics *m, unsigned shard) {
  if (m)
    met_gauge_add(m->streams, shard, -1);
}

void px_metrics_failover(struct px_metrics *m, unsigned shard, size_t backend) {
  if (m && backend < m->nbackends)
    met_counter_add(m->failovers[backend], shard, 1);
}

void px_metrics_ejection(struct px_metrics *m, unsigned shard, size_t backend) {
  if (m && backend < m->nbackends)
    met_counter_add(m->ejections[backend], shard, 1);
}

void px_metrics_connect_failure(struct px_metrics *m, unsigned shard, size_t backend) {
  if (m && backend < m->nbackends)
    met_counter_add(m->connect_failures[backend], shard, 1);
}

void px_metrics_pool(struct px_metrics *m, unsigned shard, size_t backend,
                     const struct px_pool_stats *d) {
  if (!m || backend >= m->nbackends || !d)
    return;
  const struct pool_m *p = &m->pools[backend];
  if (d->connects)
    met_counter_add(p->connects, shard, d->connects);
  if (d->connect_failures)
    met_counter_add(m->connect_failures[backend], shard, d->connect_failures);
  if (d->retries)
    met_counter_add(p->retries, shard, d->retries);
  if (d->pipelined)
    met_counter_add(p->pipelined, shard, d->pipelined);
  if (d->timeouts)
    met_counter_add(p->timeouts, shard, d->timeouts);
  if (d->resets)
    met_counter_add(p->resets, shard, d->resets);
}

void px_metrics_dial(struct px_metrics *m, size_t dial, uint32_t ppm) {
  if (m && dial < m->ndials)
    met_gauge_set(m->dial_ratio[dial], ppm);
}

void px_metrics_experiment(struct px_metrics *m, size_t experiment, int running) {
  if (m && experiment < m->nexps)
    met_gauge_set(m->exp_running[experiment], running ? 1 : 0);
}

void px_metrics_reload(struct px_metrics *m, int ok) {
  if (m)
    met_counter_add(ok ? m->reload_ok : m->reload_bad, UINT32_MAX, 1);
}
