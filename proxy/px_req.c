/* px_req: one request's life between a frontend and an upstream exchange. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "proxy/px_alog.h"
#include "proxy/px_health.h"
#include "proxy/px_metrics.h"
#include "proxy/px_route.h"
#include "proxy/px_server_int.h"

#define MAX_STACK_HEADERS 64

static const struct px_upstream_ops *ops_of(const struct px_req *r) {
  return &r->conn->w->srv->ops;
}

void px_req_init(struct px_req *r, struct px_client *c, const struct px_front_ops *front) {
  memset(r, 0, sizeof *r);
  r->conn = c;
  r->front = front;
  r->gen = c->w->gen;
  r->cfg = r->gen ? r->gen->cfg : c->w->cfg;
  if (r->gen)
    r->gen->refs++;
  r->head.content_length = -1;
  r->t_start_ns = px_now_ns();
}

/* Copies the exchange's host:port (hot path: no printf). */
static void copy_host(struct px_req *r, struct px_exchange *x) {
  const char *h = ops_of(r)->host(x);
  size_t n = h ? strnlen(h, sizeof r->upstream - 1) : 0;
  if (n)
    memcpy(r->upstream, h, n);
  r->upstream[n] = '\0';
}

/* The decision labels, formatted on first use: most requests are neither
 * logged nor answered with them. "" before a decision was made. */
static const char *decision_text(struct px_req *r) {
  if (r->decided && !r->decision[0]) {
    const struct px_decider *d = &r->conn->w->srv->decider;
    if (d->format)
      d->format(&r->dec, r->decision, sizeof r->decision);
  }
  return r->decision;
}

static void add_decision_header(struct px_req *r, struct px_response_head *h) {
  if (r->route && r->route->decision_header && decision_text(r)[0])
    px_headers_add(&h->headers, "x-cutover-decision", 18, r->decision, strlen(r->decision));
}

void px_req_respond_error(struct px_req *r, int status, const char *cause) {
  if (r->responded)
    return;
  if (r->x) {
    /* the proxy answers instead of the upstream: no upstream response may follow */
    struct px_exchange *x = r->x;
    r->x = NULL;
    r->xdone = 1;
    ops_of(r)->cancel(x);
  }
  char body[256];
  const char *reason = status == 404   ? "not found"
                       : status == 400 ? "bad request"
                       : status == 431 ? "request header fields too large"
                       : status == 413 ? "content too large"
                       : status == 503 ? "service unavailable"
                       : status == 504 ? "gateway timeout"
                       : status == 502 ? "bad gateway"
                                       : "error";
  int n = snprintf(body, sizeof body, "%d %s: %s\n", status, reason, cause ? cause : "");
  if (n < 0)
    n = 0;
  if ((size_t)n >= sizeof body)
    n = (int)sizeof body - 1;
  struct px_response_head h = {0};
  h.status = status;
  h.content_length = n;
  char cl[24];
  int cln = snprintf(cl, sizeof cl, "%d", n);
  px_headers_add(&h.headers, "content-type", 12, "text/plain; charset=utf-8", 25);
  px_headers_add(&h.headers, "content-length", 14, cl, (size_t)cln);
  add_decision_header(r, &h);
  if (!r->error)
    r->error = cause;
  r->status = status;
  r->responded = 1;
  if (status >= 500)
    atomic_fetch_add_explicit(&r->conn->w->n_5xx, 1, memory_order_relaxed);
  int rc = r->front->respond(r, &h, 0);
  px_headers_clear(&h.headers);
  if (rc < 0)
    return;
  int is_head = r->head.method && strcmp(r->head.method, "HEAD") == 0;
  if (!is_head) {
    r->front->body(r, (const uint8_t *)body, (size_t)n);
    r->bytes_out += (size_t)n;
  }
  r->ended = 1;
  r->front->end(r, NULL);
}

/* ---- exchange callbacks ---- */

static int upstream_response_cb(struct px_exchange *x, const struct px_response_head *head,
                                void *user_data) {
  struct px_req *r = user_data;
  r->status = head->status;
  r->responded = 1;
  copy_host(r, x);
  if (r->mirror)
    rec_mirror_primary_head(r->mirror, head, r->upstream);
  if (head->status >= 500)
    atomic_fetch_add_explicit(&r->conn->w->n_5xx, 1, memory_order_relaxed);
  int rc;
  if (r->route && r->route->decision_header && decision_text(r)[0]) {
    /* the head is borrowed: add our header to a shallow copy with one more slot */
    struct px_response_head h = *head;
    size_t n = head->headers.n;
    struct px_header stackv[MAX_STACK_HEADERS + 1];
    struct px_header *v = n < MAX_STACK_HEADERS ? stackv : malloc((n + 1) * sizeof *v);
    if (!v)
      return -1;
    memcpy(v, head->headers.v, n * sizeof *v);
    v[n].name = (char *)"x-cutover-decision";
    v[n].namelen = 18;
    v[n].value = r->decision;
    v[n].valuelen = strlen(r->decision);
    h.headers.v = v;
    h.headers.n = n + 1;
    h.headers.cap = n + 1;
    rc = r->front->respond(r, &h, 0);
    if (v != stackv)
      free(v);
  } else {
    rc = r->front->respond(r, head, 0);
  }
  return rc < 0 ? -1 : 0;
}

static int upstream_body_cb(struct px_exchange *x, const uint8_t *data, size_t len,
                            void *user_data) {
  struct px_req *r = user_data;
  r->bytes_out += len;
  if (r->mirror)
    rec_mirror_primary_body(r->mirror, data, len);
  int rc = r->front->body(r, data, len);
  if (rc == PX_PAUSE) {
    r->resp_paused = 1;
    return PX_PAUSE;
  }
  return 0;
}

static int upstream_trailers_cb(struct px_exchange *x, const struct px_headers *t,
                                void *user_data) {
  struct px_req *r = user_data;
  if (!r->resp_trailers) {
    r->resp_trailers = calloc(1, sizeof *r->resp_trailers);
    if (!r->resp_trailers)
      return 0;
  }
  for (size_t i = 0; i < t->n; i++)
    px_headers_add(r->resp_trailers, t->v[i].name, t->v[i].namelen, t->v[i].value,
                   t->v[i].valuelen);
  return 0;
}

static void upstream_done_cb(struct px_exchange *x, int err, enum px_fail fail, const char *cause,
                             int got_response, void *user_data) {
  struct px_req *r = user_data;
  if (!r->upstream[0])
    copy_host(r, x);
  r->x = NULL;
  r->xdone = 1;
  if (r->mirror)
    rec_mirror_primary_done(r->mirror, (int64_t)((px_now_ns() - r->t_up_ns) / 1000),
                            err == 0 ? NULL : px_fail_name(fail));
  if (err == 0) {
    r->ended = 1;
    r->front->end(r, r->resp_trailers);
  } else if (!got_response && !r->responded) {
    r->error = px_fail_name(fail);
    char msg[200];
    snprintf(msg, sizeof msg, "upstream %s%s%s", px_fail_name(fail), cause ? ": " : "",
             cause ? cause : "");
    px_req_respond_error(r, px_fail_status(fail), msg);
  } else {
    r->error = px_fail_name(fail);
    r->front->abort(r);
  }
  if (r->body_full) {
    r->body_full = 0;
    r->front->request_resume(r);
  }
}

static void upstream_request_drain_cb(struct px_exchange *x, void *user_data) {
  struct px_req *r = user_data;
  if (!r->body_full)
    return;
  r->body_full = 0;
  r->front->request_resume(r);
}

static const struct px_exchange_cbs exchange_cbs = {
    .on_response = upstream_response_cb,
    .on_body = upstream_body_cb,
    .on_trailers = upstream_trailers_cb,
    .on_done = upstream_done_cb,
    .on_request_drain = upstream_request_drain_cb,
    /* r->head is neither changed nor freed before the exchange ends:
     * px_req_finish cancels it before clearing the head */
    .borrow_head = 1,
};

/* ---- request side ---- */

/* The dial_request view of the request head (headers on the stack, at most `max`). */
static void dial_view(const struct px_req *r, struct dial_header *dh, size_t max,
                      struct dial_request *dr) {
  const struct px_headers *hs = &r->head.headers;
  size_t nh = hs->n <= max ? hs->n : max;
  for (size_t i = 0; i < nh; i++) {
    dh[i].name = (struct dial_slice){hs->v[i].name, hs->v[i].namelen};
    dh[i].value = (struct dial_slice){hs->v[i].value, hs->v[i].valuelen};
  }
  *dr = (struct dial_request){
      .method = {r->head.method, strlen(r->head.method)},
      .path = {r->head.path, strlen(r->head.path)},
      .headers = dh,
      .nheaders = nh,
  };
}

/* The key the route's decision was made on (its dial, experiment or allocation). */
static const struct cfg_key *decision_key(const struct px_req *r) {
  const struct cfg *c = r->cfg;
  const struct cfg_route *rt = r->route;
  if (r->dec.via == DIAL_VIA_EXPERIMENT && rt->experiment_index < c->nexperiments)
    return &c->experiments[rt->experiment_index].key;
  if (r->dec.via == DIAL_VIA_ALLOCATION && rt->allocation_index < c->nallocations)
    return &c->allocations[rt->allocation_index].key;
  if (rt->dial_index < c->ndials)
    return &c->dials[rt->dial_index].key;
  return NULL;
}

static void gen_unhold(void *arg) { px_gen_release(arg); }

/* Starts mirroring / recording for routes that ask for it (before the primary
 * exchange starts, so that a synchronous primary failure is recorded too). */
static void mirror_begin(struct px_req *r) {
  const struct cfg_route *rt = r->route;
  struct px_worker *w = r->conn->w;
  if (rt->nmirrors == 0 && !(rt->record && w->menv.sink))
    return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
  const char *backend = r->dec.backend_index < r->cfg->nbackends
                            ? r->cfg->backends[r->dec.backend_index].name
                            : "";
  if (rec_mirror_new(&r->mirror, &w->menv, r->reqid, now_us, rt->name, &r->head, &r->dec,
                     backend,
                     rt->compare == CFG_COMPARE_LIVE ? REC_MIRROR_COMPARE
                     : rt->record                    ? REC_MIRROR_RECORD
                                                     : REC_MIRROR_NONE) < 0) {
    r->mirror = NULL; /* out of memory: the request goes on without it */
    return;
  }
  /* Shadows use this generation's pools and config: it stays until the last one is done,
   * whatever a reload does meanwhile (the request's own hold ends with the request). */
  if (r->gen) {
    r->gen->refs++;
    rec_mirror_on_free(r->mirror, gen_unhold, r->gen);
  }
  const struct cfg_key *key = decision_key(r);
  if (key && key->kind != CFG_KEY_RANDOM) {
    struct dial_header dh[MAX_STACK_HEADERS];
    struct dial_request dr;
    struct dial_slice v;
    char buf[256];
    dial_view(r, dh, MAX_STACK_HEADERS, &dr);
    if (dial_request_key_buf(&dr, key, buf, sizeof buf, &v) == 1)
      rec_mirror_device_key(r->mirror, v.p, v.len);
  }
}

/* Sends the sampled shadows (after the primary started: it goes first). */
static void mirror_shadows(struct px_req *r, int has_body) {
  const struct cfg_route *rt = r->route;
  struct px_worker *w = r->conn->w;
  if (!r->mirror || rt->nmirrors == 0)
    return;
  struct dial_header dh[MAX_STACK_HEADERS];
  struct dial_request dr;
  dial_view(r, dh, MAX_STACK_HEADERS, &dr);
  for (size_t i = 0; i < rt->nmirrors; i++) {
    const struct cfg_mirror *mc = &rt->mirrors[i];
    if (!rec_mirror_wanted(mc, r->head.method, &dr, px_rng_next(&w->rng)))
      continue;
    rec_mirror_add_shadow(r->mirror, px_gen_pool(r->gen, mc->backend_index), mc, &r->head,
                          has_body);
  }
}

static int decide(struct px_req *r) {
  const struct px_decider *d = &r->conn->w->srv->decider;
  struct px_headers *hs = &r->head.headers;
  struct dial_header stackh[MAX_STACK_HEADERS];
  struct dial_header *dh = hs->n <= MAX_STACK_HEADERS ? stackh : malloc(hs->n * sizeof *dh);
  if (!dh)
    return CUT_ERR_NOMEM;
  for (size_t i = 0; i < hs->n; i++) {
    dh[i].name.p = hs->v[i].name;
    dh[i].name.len = hs->v[i].namelen;
    dh[i].value.p = hs->v[i].value;
    dh[i].value.len = hs->v[i].valuelen;
  }
  struct dial_request dr = {
      .method = {r->head.method, strlen(r->head.method)},
      .path = {r->head.path, strlen(r->head.path)},
      .headers = dh,
      .nheaders = hs->n,
  };
  int rc = d->decide(r->cfg, d->store, r->route, &dr, (int64_t)time(NULL), &r->dec);
  if (dh != stackh)
    free(dh);
  if (rc < 0)
    return rc;
  /* A dial (experiment, allocation) chose a group with no usable host: with
   * on_unhealthy fail_open its traffic goes back to the route's own backend. */
  struct px_worker *w = r->conn->w;
  size_t chosen = r->dec.backend_index;
  const unsigned char *down = r->gen ? r->gen->group_down : NULL;
  if (chosen != r->route->backend_index && down && chosen < r->cfg->nbackends && down[chosen]) {
    int over = 0;
    r->dec.backend_index = px_health_route(r->cfg, chosen, 0, r->route->backend_index, &over);
    if (over) {
      r->dec.reason = "failover-unhealthy";
      px_metrics_failover(r->gen->metrics, (unsigned)w->idx, chosen);
    }
  }
  r->decided = 1; /* labels are formatted when needed (decision_text) */
  return 0;
}

void px_req_begin(struct px_req *r, int has_body) {
  struct px_worker *w = r->conn->w;
  r->begun = 1;
  r->req_ended = !has_body;
  px_client_first_request(r->conn);
  atomic_fetch_add_explicit(&w->n_reqs, 1, memory_order_relaxed);
  if (!r->head.method || !r->head.path || !r->head.path[0]) {
    px_req_respond_error(r, 400, "incomplete request head");
    return;
  }
  if (!r->head.scheme)
    r->head.scheme = strdup(r->conn->tls ? "https" : "http");
  struct px_forward_info fi = {
      .client_ip = r->conn->peer,
      .tls = r->conn->tls,
      .h2 = r->conn->proto == PX_PROTO_H2,
      .request_id_header = r->cfg->request_id_header,
  };
  if (!r->head.scheme ||
      px_forward_request(&r->head, &fi, &w->rng, r->reqid, sizeof r->reqid) < 0) {
    px_req_respond_error(r, 500, "out of memory");
    return;
  }
  r->route = px_route_find(r->cfg, &r->head);
  if (!r->route) {
    r->error = "no-route";
    px_req_respond_error(r, 404, "no route matches this request");
    return;
  }
  if (decide(r) < 0) {
    px_req_respond_error(r, 500, "routing decision failed");
    return;
  }
  struct px_pool *pool = px_gen_pool(r->gen, r->dec.backend_index);
  if (!pool) {
    r->error = "no-pool";
    px_req_respond_error(r, 503, "backend group unavailable");
    return;
  }
  mirror_begin(r);
  struct px_exchange *x = NULL;
  r->t_up_ns = px_now_ns();
  int rc = ops_of(r)->start(pool, &r->head, has_body, &exchange_cbs, r, &x);
  if (rc < 0) {
    r->error = "start";
    px_req_respond_error(r, rc == CUT_ERR_FULL ? 503 : 502, "cannot start upstream exchange");
    return;
  }
  /* on_done may already have run inside start (a synchronous failure) */
  if (!r->xdone)
    r->x = x;
  mirror_shadows(r, has_body);
}

int px_req_body(struct px_req *r, const uint8_t *p, size_t n) {
  r->bytes_in += n;
  if (r->mirror)
    rec_mirror_request_body(r->mirror, p, n);
  if (!r->x) {
    /* nobody wants the body any more (error answered): discard it */
    r->front->consumed(r, n);
    return 0;
  }
  int rc = ops_of(r)->send_body(r->x, p, n);
  if (rc == 0) {
    r->front->consumed(r, n);
    return 0;
  }
  if (rc == CUT_ERR_FULL && r->x) {
    /* taken but over the watermark: the frontend holds these bytes unconsumed */
    r->body_full = 1;
    return CUT_ERR_FULL;
  }
  r->front->consumed(r, n);
  return 0;
}

void px_req_end_body(struct px_req *r, const struct px_headers *trailers) {
  r->req_ended = 1;
  if (r->mirror)
    rec_mirror_request_end(r->mirror, trailers);
  if (r->x)
    ops_of(r)->end_body(r->x, trailers);
}

void px_req_resume_response(struct px_req *r) {
  if (!r->resp_paused)
    return;
  r->resp_paused = 0;
  if (r->x)
    ops_of(r)->resume(r->x);
}

/* Counts the finished request in the proxy's metrics (lock-free, per worker shard). */
static void count_request(struct px_req *r) {
  struct px_worker *w = r->conn->w;
  struct px_metrics *m = r->gen ? r->gen->metrics : w->srv->metrics;
  if (!m || !r->route || !r->cfg)
    return;
  size_t route = (size_t)(r->route - r->cfg->routes);
  size_t backend = r->upstream[0] ? r->dec.backend_index : SIZE_MAX;
  uint64_t us = (px_now_ns() - r->t_start_ns) / 1000;
  px_metrics_request(m, (unsigned)w->idx, route, &r->dec, backend,
                     r->status, us, r->bytes_in, r->bytes_out);
}

static void access_log(struct px_req *r) {
  struct px_alog *a = r->conn->w->srv->alog;
  if (!a)
    return;
  char line[PX_ALOG_LINE_MAX];
  size_t cap = sizeof line, o = 0;
  double ms = (double)(px_now_ns() - r->t_start_ns) / 1e6;
#define LIT(s)                                                                                     \
  do {                                                                                             \
    size_t l_ = strlen(s);                                                                         \
    if (o + l_ < cap) {                                                                            \
      memcpy(line + o, s, l_);                                                                     \
      o += l_;                                                                                     \
    }                                                                                              \
  } while (0)
#define STR(k, v)                                                                                  \
  do {                                                                                             \
    LIT(",\"" k "\":\"");                                                                          \
    const char *v_ = (v) ? (v) : "";                                                               \
    px_json_str(line, cap - 2, &o, v_, strlen(v_));                                                \
    LIT("\"");                                                                                     \
  } while (0)
  LIT("{\"time\":\"");
  LIT(r->conn->w->now_iso);
  LIT("\"");
  STR("request_id", r->reqid);
  STR("method", r->head.method);
  STR("authority", r->head.authority);
  STR("path", r->head.path);
  STR("proto", r->conn->proto == PX_PROTO_H2 ? "h2" : "http/1.1");
  STR("route", r->route ? r->route->name : NULL);
  STR("decision", decision_text(r));
  STR("upstream", r->upstream);
  if (r->error)
    STR("error", r->error);
  char num[160];
  snprintf(num, sizeof num, ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"latency_ms\":%.3f}",
           r->status, (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out, ms);
  LIT(num);
#undef STR
#undef LIT
  px_alog_write(a, r->conn->w->idx, line, o);
}

void px_req_finish(struct px_req *r) {
  if (r->finished)
    return;
  r->finished = 1;
  if (r->x) {
    struct px_exchange *x = r->x;
    r->x = NULL;
    ops_of(r)->cancel(x);
    if (!r->error)
      r->error = "client-gone";
  }
  if (r->mirror) {
    /* no-op when the primary exchange already reported its end */
    rec_mirror_primary_done(r->mirror, (int64_t)((px_now_ns() - r->t_start_ns) / 1000),
                            r->error ? r->error : "client-gone");
    rec_mirror_release(r->mirror); /* recorded once the last shadow is done */
    r->mirror = NULL;
  }
  if (r->begun) {
    access_log(r);
    count_request(r);
  }
  px_request_head_clear(&r->head);
  if (r->resp_trailers) {
    px_headers_clear(r->resp_trailers);
    free(r->resp_trailers);
    r->resp_trailers = NULL;
  }
  if (r->gen) {
    px_gen_release(r->gen);
    r->gen = NULL;
  }
}
