/* rec_compare: live comparison of primary and shadow off the client's path; only mismatches are recorded. */
#include "replay/rec_compare.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/an_rules.h"
#include "common/cut_err.h"
#include "common/log.h"
#include "replay/rec_avro.h"

#define DEFAULT_QUEUE 4096

const char *rec_compare_skip_name(enum rec_compare_skip s) {
  switch (s) {
  case REC_CMP_SKIP_QUEUE_FULL: return "queue_full";
  case REC_CMP_SKIP_NO_SHADOW: return "no_shadow";
  case REC_CMP_SKIP_LINEAGE: return "lineage";
  case REC_CMP_SKIP_ERROR: return "error";
  default: return "unknown";
  }
}

int rec_compare_rules_new(struct an_rules **out, const struct cfg *cfg, char *err, size_t errlen) {
  struct an_rules *rules = NULL;
  int rc = an_rules_new(&rules);
  if (rc < 0)
    return rc;
  for (size_t i = 0; i < cfg->nroutes; i++) {
    const struct cfg_route *rt = &cfg->routes[i];
    if (rt->compare != CFG_COMPARE_LIVE || rt->compare_ignore.n == 0)
      continue;
    char e[256] = "";
    rc = an_rules_add_ignore(rules, rt->name, (const char *const *)rt->compare_ignore.v,
                             rt->compare_ignore.n, e, sizeof e);
    if (rc < 0) {
      an_rules_free(rules);
      if (rc == CUT_ERR_NOMEM)
        return rc;
      return cut_errf(err, errlen, rc, "routes.%s.compare_ignore: %s", rt->name, e);
    }
  }
  *out = rules;
  return 0;
}

/* ---- one pair ---- */

/* A side's header and lineage lists as the analyzer's views (kv arrays the
 * caller frees). */
struct side_buf {
  struct an_kv *kv;
};

static int side_view(const struct rec_response *r, struct an_side *s, struct side_buf *b) {
  memset(s, 0, sizeof *s);
  b->kv = NULL;
  if (!r)
    return 0;
  size_t n = r->headers.n + r->lineage.n;
  if (n && !(b->kv = malloc(n * sizeof *b->kv)))
    return CUT_ERR_NOMEM;
  for (size_t i = 0; i < r->headers.n; i++)
    b->kv[i] = (struct an_kv){r->headers.v[i].key, r->headers.v[i].value};
  for (size_t i = 0; i < r->lineage.n; i++)
    b->kv[r->headers.n + i] = (struct an_kv){r->lineage.v[i].key, r->lineage.v[i].value};
  s->present = 1;
  s->status = r->status;
  s->error = r->error;
  s->headers = b->kv;
  s->nheaders = r->headers.n;
  s->lineage = b->kv ? b->kv + r->headers.n : NULL;
  s->nlineage = r->lineage.n;
  s->body = r->body.data;
  s->body_len = r->body.len;
  return 0;
}

static int never_sent(const struct rec_response *r) {
  return r->error && !strcmp(r->error, "skipped");
}

/* Bodies cut at the cap cannot be compared structurally: their checksums decide. */
static int truncated_differ(const struct rec_response *a, const struct rec_response *b) {
  return (a->body.truncated || b->body.truncated) && strcmp(a->body.sha256, b->body.sha256) != 0;
}

int rec_compare_pair(const struct an_rules *rules, struct rec_pair *p, struct an_result *res) {
  rec_pair_finish(p);
  int compared = 0, mismatch = 0, lineage = 0;
  for (size_t i = 0; i < p->nshadows && !mismatch; i++) {
    const struct rec_response *sh = p->shadows[i];
    if (never_sent(sh))
      continue;
    compared++;
    if (!p->primary || truncated_differ(p->primary, sh)) {
      mismatch = 1;
      break;
    }
    struct an_pair_view pv;
    memset(&pv, 0, sizeof pv);
    pv.correlation_id = p->correlation_id;
    pv.route = p->route;
    pv.method = p->request.method;
    pv.path = p->request.path;
    pv.time_us = p->time_us;
    struct side_buf bp, bs;
    int rc = side_view(p->primary, &pv.primary, &bp);
    if (rc == 0 && (rc = side_view(sh, &pv.shadow, &bs)) != 0)
      free(bp.kv);
    if (rc == 0) {
      rc = an_compare(rules, &pv, 0, res);
      free(bp.kv);
      free(bs.kv);
    }
    if (rc < 0)
      return rc;
    if (res->outcome == AN_MISMATCH)
      mismatch = 1;
    else if (res->outcome == AN_LINEAGE_DISCARDED)
      lineage = 1;
  }
  if (mismatch)
    return REC_CMP_MISMATCH;
  if (compared == 0)
    return REC_CMP_NO_SHADOW;
  return lineage ? REC_CMP_LINEAGE : REC_CMP_MATCH;
}

/* ---- the comparison thread ---- */

struct rec_comparer {
  struct an_rules *rules;      /* the thread's */
  struct an_rules *next_rules; /* set by rec_comparer_set_rules; the thread takes it over */
  struct rec_sink *sink;
  struct rec_codec *codec;
  struct rec_compare_stats *stats;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t more, idle;
  struct rec_pair **ring;
  size_t cap, head, n;
  int busy, stop;
};

#define ADD(field, k) atomic_fetch_add_explicit(&c->stats->field, (k), memory_order_relaxed)

static void record(struct rec_comparer *c, struct rec_pair *p) {
  if (c->sink && rec_sink_submit_pair(c->sink, c->codec, p) == 0)
    ADD(recorded, 1);
}

static void handle(struct rec_comparer *c, struct an_result *res, struct rec_pair *p) {
  int rc = rec_compare_pair(c->rules, p, res);
  switch (rc) {
  case REC_CMP_MATCH: ADD(matches, 1); break;
  case REC_CMP_MISMATCH:
    ADD(mismatches, 1);
    record(c, p);
    break;
  case REC_CMP_NO_SHADOW: ADD(skipped[REC_CMP_SKIP_NO_SHADOW], 1); break;
  case REC_CMP_LINEAGE: ADD(skipped[REC_CMP_SKIP_LINEAGE], 1); break;
  default:
    ADD(skipped[REC_CMP_SKIP_ERROR], 1);
    record(c, p);
    break;
  }
  rec_pair_free(p);
}

static void *compare_main(void *arg) {
  struct rec_comparer *c = arg;
  struct an_result res;
  an_result_init(&res);
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (c->n == 0 && !c->stop)
      pthread_cond_wait(&c->more, &c->mu);
    if (c->n == 0)
      break; /* stopping, and everything queued is done */
    struct rec_pair *p = c->ring[c->head];
    c->head = (c->head + 1) % c->cap;
    c->n--;
    c->busy = 1;
    struct an_rules *old = NULL;
    if (c->next_rules) { /* a reload: only this thread uses the rules */
      old = c->rules;
      c->rules = c->next_rules;
      c->next_rules = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    an_rules_free(old);
    ADD(queue_depth, -1);
    handle(c, &res, p);
    an_result_reset(&res); /* drop the parsed bodies before waiting */
    pthread_mutex_lock(&c->mu);
    c->busy = 0;
    if (c->n == 0)
      pthread_cond_broadcast(&c->idle);
  }
  pthread_mutex_unlock(&c->mu);
  an_result_clear(&res);
  return NULL;
}

int rec_comparer_new(struct rec_comparer **out, struct an_rules *rules, struct rec_sink *sink,
                     struct rec_compare_stats *stats, size_t queue_cap, char *err, size_t errlen) {
  struct rec_comparer *c = calloc(1, sizeof *c);
  if (!c)
    return CUT_ERR_NOMEM;
  c->cap = queue_cap ? queue_cap : DEFAULT_QUEUE;
  if (!(c->ring = calloc(c->cap, sizeof *c->ring))) {
    free(c);
    return CUT_ERR_NOMEM;
  }
  int rc = rec_codec_new(&c->codec, err, errlen);
  if (rc < 0)
    goto fail_ring;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->more, NULL);
  pthread_cond_init(&c->idle, NULL);
  c->rules = rules;
  c->sink = sink;
  c->stats = stats;
  if (pthread_create(&c->thread, NULL, compare_main, c) != 0) {
    rc = cut_errf(err, errlen, CUT_ERR_STATE, "cannot start the comparison thread");
    goto fail_sync;
  }
  *out = c;
  return 0;
fail_sync:
  pthread_cond_destroy(&c->idle);
  pthread_cond_destroy(&c->more);
  pthread_mutex_destroy(&c->mu);
  rec_codec_free(c->codec);
fail_ring:
  free(c->ring);
  free(c);
  return rc;
}

int rec_comparer_submit(struct rec_comparer *c, struct rec_pair *p) {
  pthread_mutex_lock(&c->mu);
  if (c->n == c->cap || c->stop) {
    pthread_mutex_unlock(&c->mu);
    ADD(skipped[REC_CMP_SKIP_QUEUE_FULL], 1);
    return CUT_ERR_FULL;
  }
  p->opts = NULL; /* built: the worker's options may go away before the comparison */
  c->ring[(c->head + c->n) % c->cap] = p;
  c->n++;
  ADD(queue_depth, 1);
  pthread_cond_signal(&c->more);
  pthread_mutex_unlock(&c->mu);
  return 0;
}

void rec_comparer_flush(struct rec_comparer *c) {
  pthread_mutex_lock(&c->mu);
  while (c->n > 0 || c->busy)
    pthread_cond_wait(&c->idle, &c->mu);
  pthread_mutex_unlock(&c->mu);
}

void rec_comparer_free(struct rec_comparer *c) {
  if (!c)
    return;
  pthread_mutex_lock(&c->mu);
  c->stop = 1;
  pthread_cond_signal(&c->more);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->thread, NULL);
  pthread_cond_destroy(&c->idle);
  pthread_cond_destroy(&c->more);
  pthread_mutex_destroy(&c->mu);
  rec_codec_free(c->codec);
  an_rules_free(c->rules);
  an_rules_free(c->next_rules);
  free(c->ring);
  free(c);
}

void rec_comparer_set_rules(struct rec_comparer *c, struct an_rules *rules) {
  pthread_mutex_lock(&c->mu);
  struct an_rules *unused = c->next_rules; /* never taken: replaced before the next pair */
  c->next_rules = rules;
  pthread_mutex_unlock(&c->mu);
  an_rules_free(unused);
}
