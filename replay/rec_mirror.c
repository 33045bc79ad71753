/* rec_mirror: shadow exchanges beside the primary, and the pair they make up. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "replay/rec_avro.h"
#include "replay/rec_compare.h"
#include "replay/rec_mem.h"
#include "replay/rec_mirror.h"
#include "replay/rec_px.h"

#define DEFAULT_MAX_INFLIGHT 1024
#define DEFAULT_OVERFLOW (4u << 20)
#define DEFAULT_OVERFLOW_TOTAL (64u << 20)

struct shadow {
  struct rec_mirror *m;
  struct px_exchange *x;       /* NULL once done or cancelled */
  struct rec_response *resp;   /* in the pair; NULL when not recording */
  uint64_t t0_us;
  size_t over;                 /* bytes sent since send_body said FULL */
  int full;
  int done;
  struct event *timer;         /* &timer_ev while armed; NULL when none */
  struct event timer_ev;
};

#define INLINE_SHADOWS 2

struct rec_mirror {
  struct rec_mirror_env *env;
  struct rec_mirror *prev, *next; /* env->live */
  struct rec_pair *pair;          /* NULL when not recording */
  struct rec_response *primary;
  struct shadow **shadows;        /* inl_ptrs, or malloc'ed past INLINE_SHADOWS */
  size_t nshadows;
  struct shadow *inl_ptrs[INLINE_SHADOWS];
  struct shadow inl[INLINE_SHADOWS]; /* the first shadows live here: no allocation */
  int refs;                       /* the primary side + shadows in flight */
  void (*on_free)(void *arg);     /* rec_mirror_on_free: told when the mirror is gone */
  void *on_free_arg;
  int primary_done;
  int compare;                    /* REC_MIRROR_COMPARE */
  char primary_backend[];
};

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static size_t max_inflight(const struct rec_mirror_env *e) {
  return e->max_inflight ? e->max_inflight : DEFAULT_MAX_INFLIGHT;
}

/* ---- sampling ---- */

static int method_listed(const struct cfg_strlist *l, const char *method) {
  static const char *const defaults[] = {"GET", "HEAD", "OPTIONS"};
  if (!l || l->n == 0) {
    for (size_t i = 0; i < 3; i++)
      if (!strcmp(defaults[i], method))
        return 1;
    return 0;
  }
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->v[i], method))
      return 1;
  return 0;
}

int rec_mirror_wanted(const struct cfg_mirror *m, const char *method,
                      const struct dial_request *req, uint64_t rnd) {
  if (!method || !method_listed(&m->methods, method))
    return 0;
  if (m->ppm >= CFG_PPM_MAX)
    return 1;
  if (m->ppm == 0)
    return 0;
  struct dial_slice key;
  char buf[256];
  if (m->key.kind != CFG_KEY_RANDOM && req &&
      dial_request_key_buf(req, &m->key, buf, sizeof buf, &key) == 1) {
    const char *salt = m->backend ? m->backend : "";
    return dial_in(dial_bucket(salt, strlen(salt), key.p, key.len), m->ppm);
  }
  return (uint32_t)(rnd % CFG_PPM_MAX) < m->ppm;
}

/* ---- lifecycle ---- */

static void unlink_live(struct rec_mirror *m) {
  if (m->prev)
    m->prev->next = m->next;
  else if (m->env->live == m)
    m->env->live = m->next;
  if (m->next)
    m->next->prev = m->prev;
  m->prev = m->next = NULL;
}

static void finish(struct rec_mirror *m) {
  struct rec_mirror_env *e = m->env;
  unlink_live(m);
  if (m->pair && !m->primary_done && m->primary)
    rec_response_finish(m->pair, m->primary, 0, "cancelled");
  /* Live comparison happens on the comparer's thread; a full queue records the pair as is. */
  if (m->pair && m->compare && e->comparer && rec_comparer_submit(e->comparer, m->pair) == 0)
    m->pair = NULL;
  if (m->pair && e->sink) {
    /* queued for the recording thread (or, when its queue is full, recorded here) */
    if (rec_sink_record_pair(e->sink, e->codec, m->pair) == 0)
      atomic_fetch_add_explicit(&e->stats->recorded, 1, memory_order_relaxed);
    m->pair = NULL;
  }
  for (size_t i = INLINE_SHADOWS; i < m->nshadows; i++)
    free(m->shadows[i]);
  if (m->shadows != m->inl_ptrs)
    free(m->shadows);
  rec_pair_free(m->pair);
  void (*on_free)(void *) = m->on_free;
  void *arg = m->on_free_arg;
  free(m);
  if (on_free)
    on_free(arg); /* last: what it releases may be what the shadows used */
}

static void unref(struct rec_mirror *m) {
  if (--m->refs == 0)
    finish(m);
}

int rec_mirror_new(struct rec_mirror **out, struct rec_mirror_env *env, const char *id,
                   int64_t time_us, const char *route, const struct px_request_head *head,
                   const struct dial_decision *dec, const char *primary_backend,
                   enum rec_mirror_mode mode) {
  if (!primary_backend)
    primary_backend = "";
  size_t blen = strlen(primary_backend);
  struct rec_mirror *m = calloc(1, sizeof *m + blen + 1);
  if (!m)
    return CUT_ERR_NOMEM;
  m->env = env;
  m->refs = 1;
  m->shadows = m->inl_ptrs;
  memcpy(m->primary_backend, primary_backend, blen + 1);
  m->compare = mode == REC_MIRROR_COMPARE && env->comparer;
  if ((mode == REC_MIRROR_RECORD && env->sink) || m->compare) {
    if (!env->mem && rec_mem_new(&env->mem, 0) < 0)
      env->mem = NULL; /* no cache: the pair's blocks come from malloc */
    if (rec_pair_new_in(&m->pair, env->mem, env->opts, id ? id : "", time_us, route) ||
        rec_pair_request_head(m->pair, head) || (dec && rec_pair_decision(m->pair, dec)) ||
        rec_pair_add_response(m->pair, REC_SIDE_PRIMARY, m->primary_backend, &m->primary))
      goto nomem;
  }
  m->next = env->live;
  if (env->live)
    env->live->prev = m;
  env->live = m;
  *out = m;
  return 0;
nomem:
  rec_pair_free(m->pair);
  free(m);
  return CUT_ERR_NOMEM;
}

void rec_mirror_release(struct rec_mirror *m) {
  if (m)
    unref(m);
}

void rec_mirror_on_free(struct rec_mirror *m, void (*fn)(void *arg), void *arg) {
  m->on_free = fn;
  m->on_free_arg = arg;
}

/* ---- shadow callbacks ---- */

static int on_shadow_response_cb(struct px_exchange *x, const struct px_response_head *head,
                                 void *user_data) {
  struct shadow *s = user_data;
  if (s->resp)
    rec_response_head(s->m->pair, s->resp, head, s->m->env->ops->host(x));
  return 0;
}

static int on_shadow_body_cb(struct px_exchange *x, const uint8_t *data, size_t len,
                             void *user_data) {
  struct shadow *s = user_data;
  (void)x;
  if (s->resp)
    rec_response_body(s->m->pair, s->resp, data, len); /* keeps the cap, hashes everything */
  return 0;
}

static void over_reset(struct shadow *s) {
  s->m->env->over_total -= s->over;
  s->over = 0;
  s->full = 0;
}

/* min_latency_us: the least latency to record (the timeout when the timer fired) */
static void shadow_end(struct shadow *s, const char *error, uint64_t min_latency_us) {
  struct rec_mirror *m = s->m;
  over_reset(s);
  s->x = NULL;
  s->done = 1;
  if (s->timer) {
    evtimer_del(s->timer);
    s->timer = NULL;
  }
  m->env->inflight--;
  if (error)
    atomic_fetch_add_explicit(&m->env->stats->failed, 1, memory_order_relaxed);
  if (s->resp) {
    uint64_t lat = now_us() - s->t0_us;
    rec_response_finish(m->pair, s->resp, (int64_t)(lat < min_latency_us ? min_latency_us : lat),
                        error);
  }
  unref(m);
}

static void on_shadow_done_cb(struct px_exchange *x, int err, enum px_fail fail, const char *cause,
                              int got_response, void *user_data) {
  struct shadow *s = user_data;
  (void)x;
  (void)cause;
  (void)got_response;
  shadow_end(s, err < 0 ? (rec_px_fail_name(fail) ? rec_px_fail_name(fail) : "error") : NULL, 0);
}

static void on_shadow_drain_cb(struct px_exchange *x, void *user_data) {
  struct shadow *s = user_data;
  (void)x;
  over_reset(s);
}

static void shadow_cancel(struct shadow *s, const char *why, uint64_t min_latency_us);

static void on_shadow_timeout_cb(evutil_socket_t fd, short what, void *user_data) {
  struct shadow *s = user_data;
  (void)fd;
  (void)what;
  /* libevent arms timers on its cached coarse clock (a tick of a few ms), so
   * the timer may fire slightly before the precise clock reaches the timeout:
   * a timed-out shadow is recorded as taking at least shadow_timeout. */
  shadow_cancel(s, "timeout", s->m->env->shadow_timeout_ms * 1000u);
}

static const struct px_exchange_cbs shadow_cbs = {
    .on_response = on_shadow_response_cb,
    .on_body = on_shadow_body_cb,
    .on_done = on_shadow_done_cb,
    .on_request_drain = on_shadow_drain_cb,
};

static void shadow_cancel(struct shadow *s, const char *why, uint64_t min_latency_us) {
  if (!s->x)
    return;
  s->m->env->ops->cancel(s->x); /* no callback follows a cancel */
  shadow_end(s, why, min_latency_us);
}

const char *rec_shadow_skip_name(enum rec_shadow_skip s) {
  switch (s) {
  case REC_SHADOW_SKIP_INFLIGHT: return "inflight";
  case REC_SHADOW_SKIP_NO_BACKEND: return "no_backend";
  case REC_SHADOW_SKIP_NOMEM: return "nomem";
  default: return "unknown";
  }
}

static void count_skip(struct rec_mirror_env *e, enum rec_shadow_skip why) {
  atomic_fetch_add_explicit(&e->stats->skipped, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&e->stats->skipped_by[why], 1, memory_order_relaxed);
}

#define SHADOW_STACK_FIELDS 48

static void view_add(struct px_headers *h, const char *name, size_t namelen, const char *value,
                     size_t valuelen) {
  struct px_header *f = &h->v[h->n++];
  f->name = (char *)(uintptr_t)name; /* read only: start copies the head */
  f->namelen = namelen;
  f->value = (char *)(uintptr_t)value;
  f->valuelen = valuelen;
  h->bytes += namelen + valuelen + 32;
}

/* *sh = a view on head for a shadow: Host replaced by host (when not NULL),
 * x-cutover-shadow: 1 added. Its fields use stack (SHADOW_STACK_FIELDS) or, for
 * bigger heads, a malloc'ed array the caller frees when sh->headers.v != stack.
 * Nothing else is allocated: the strings are head's. */
static int shadow_head_view(struct px_request_head *sh, struct px_header *stack,
                            const struct px_request_head *head, const char *host) {
  const struct px_headers *hs = &head->headers;
  *sh = *head;
  size_t cap = hs->n + 2;
  struct px_header *v = cap <= SHADOW_STACK_FIELDS ? stack : malloc(cap * sizeof *v);
  sh->headers = (struct px_headers){v, 0, cap, 0};
  if (!v)
    return CUT_ERR_NOMEM;
  for (size_t i = 0; i < hs->n; i++) {
    const struct px_header *f = &hs->v[i];
    if ((host && strcmp(f->name, "host") == 0) || strcmp(f->name, "x-cutover-shadow") == 0)
      continue;
    view_add(&sh->headers, f->name, f->namelen, f->value, f->valuelen);
  }
  if (host) {
    sh->authority = (char *)(uintptr_t)host;
    view_add(&sh->headers, "host", 4, host, strlen(host));
  }
  view_add(&sh->headers, "x-cutover-shadow", 16, "1", 1);
  return 0;
}

int rec_mirror_add_shadow(struct rec_mirror *m, struct px_pool *pool, const struct cfg_mirror *mc,
                          const struct px_request_head *head, int has_body) {
  struct rec_mirror_env *e = m->env;
  struct shadow *s;
  if (m->nshadows < INLINE_SHADOWS) {
    s = &m->inl[m->nshadows];
  } else {
    s = calloc(1, sizeof *s);
    struct shadow **ns =
        s ? malloc((m->nshadows + 1) * sizeof *ns) : NULL; /* grows by one: rare, small */
    if (!ns) {
      free(s);
      count_skip(e, REC_SHADOW_SKIP_NOMEM);
      return 0;
    }
    memcpy(ns, m->shadows, m->nshadows * sizeof *ns);
    if (m->shadows != m->inl_ptrs)
      free(m->shadows);
    m->shadows = ns;
  }
  m->shadows[m->nshadows++] = s;
  s->m = m;
  if (m->pair &&
      rec_pair_add_response(m->pair, REC_SIDE_SHADOW, mc->backend ? mc->backend : "", &s->resp))
    s->resp = NULL;
  if (e->inflight >= max_inflight(e) || !pool) {
    count_skip(e, pool ? REC_SHADOW_SKIP_INFLIGHT : REC_SHADOW_SKIP_NO_BACKEND);
    if (s->resp)
      rec_response_finish(m->pair, s->resp, 0, "skipped");
    return 0;
  }
  /* The shadow's head: the forwarded request, Host rewritten when asked, marked.
   * A view on the primary's head: start copies what it keeps. */
  struct px_header stackf[SHADOW_STACK_FIELDS];
  struct px_request_head sh;
  int rc = shadow_head_view(&sh, stackf, head, mc->host);
  if (!rc) {
    s->t0_us = now_us();
    m->refs++;
    e->inflight++;
    struct px_exchange *x = NULL;
    rc = e->ops->start(pool, &sh, has_body, &shadow_cbs, s, &x);
    if (rc < 0) {
      /* no callback was made */
      e->inflight--;
      m->refs--;
    } else if (!s->done) {
      s->x = x; /* on_done may already have run inside start (synchronous failure) */
      if (e->base && e->shadow_timeout_ms) {
        /* one common timeout for every shadow of the worker: O(1) add and delete */
        if (!e->shadow_tv)
          e->shadow_tv = event_base_init_common_timeout(
              e->base, &(struct timeval){(time_t)(e->shadow_timeout_ms / 1000),
                                         (suseconds_t)(e->shadow_timeout_ms % 1000) * 1000});
        evtimer_assign(&s->timer_ev, e->base, on_shadow_timeout_cb, s);
        s->timer = &s->timer_ev;
        struct timeval tv = {(time_t)(e->shadow_timeout_ms / 1000),
                             (suseconds_t)(e->shadow_timeout_ms % 1000) * 1000};
        evtimer_add(s->timer, e->shadow_tv ? e->shadow_tv : &tv);
      }
    }
  }
  if (sh.headers.v != stackf)
    free(sh.headers.v);
  if (rc < 0) {
    atomic_fetch_add_explicit(&e->stats->failed, 1, memory_order_relaxed);
    if (s->resp)
      rec_response_finish(m->pair, s->resp, 0, "start");
    return 0;
  }
  atomic_fetch_add_explicit(&e->stats->sent, 1, memory_order_relaxed);
  return 1;
}

void rec_mirror_request_body(struct rec_mirror *m, const uint8_t *data, size_t len) {
  struct rec_mirror_env *e = m->env;
  size_t cap = e->overflow_bytes ? e->overflow_bytes : DEFAULT_OVERFLOW;
  size_t total = e->overflow_total ? e->overflow_total : DEFAULT_OVERFLOW_TOTAL;
  if (m->pair)
    rec_pair_request_body(m->pair, data, len);
  for (size_t i = 0; i < m->nshadows; i++) {
    struct shadow *s = m->shadows[i];
    if (!s->x)
      continue;
    if (s->full && (s->over + len > cap || e->over_total + len > total)) {
      /* The shadow cannot keep up: give it up rather than buffer the body. */
      shadow_cancel(s, "overflow", 0);
      continue;
    }
    int rc = e->ops->send_body(s->x, data, len);
    if (rc < 0 && rc != CUT_ERR_FULL) {
      shadow_cancel(s, "reset", 0);
      continue;
    }
    if (rc == CUT_ERR_FULL)
      s->full = 1;
    if (s->full) { /* queued past the watermark until on_request_drain */
      s->over += len;
      e->over_total += len;
    }
  }
}

void rec_mirror_device_key(struct rec_mirror *m, const char *key, size_t len) {
  if (m->pair && key)
    rec_pair_set_device_key(m->pair, key, len);
}

void rec_mirror_request_end(struct rec_mirror *m, const struct px_headers *trailers) {
  for (size_t i = 0; i < m->nshadows; i++) {
    struct shadow *s = m->shadows[i];
    if (s->x && m->env->ops->end_body(s->x, trailers) < 0)
      shadow_cancel(s, "reset", 0);
  }
}

/* ---- primary side ---- */

void rec_mirror_primary_head(struct rec_mirror *m, const struct px_response_head *h,
                             const char *host) {
  if (m->primary)
    rec_response_head(m->pair, m->primary, h, host);
}

void rec_mirror_primary_body(struct rec_mirror *m, const uint8_t *data, size_t len) {
  if (m->primary)
    rec_response_body(m->pair, m->primary, data, len);
}

void rec_mirror_primary_done(struct rec_mirror *m, int64_t latency_us, const char *error) {
  if (m->primary_done)
    return;
  m->primary_done = 1;
  if (m->primary)
    rec_response_finish(m->pair, m->primary, latency_us, error);
}

void rec_mirror_env_shutdown(struct rec_mirror_env *env) {
  while (env->live) {
    struct rec_mirror *m = env->live;
    /* Hold the mirror while its shadows are cancelled one by one. */
    m->refs++;
    for (size_t i = 0; i < m->nshadows; i++)
      shadow_cancel(m->shadows[i], "cancelled", 0);
    unlink_live(m); /* the primary side still holds its reference */
    m->refs--;
    if (m->refs == 0)
      finish(m);
  }
  /* Pairs still queued elsewhere hold their own references to the cache. */
  rec_mem_unref(env->mem);
  env->mem = NULL;
}

