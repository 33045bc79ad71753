/* Unit tests for replay/rec_mirror: shadows driven through a fake upstream, pairs captured by a fake sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cut_err.h"
#include "replay/rec_avro.h"
#include "replay/rec_compare.h"
#include "replay/rec_mirror.h"

/* ---- a fake upstream: exchanges the test drives by hand ---- */

struct fake_x {
  struct px_exchange_cbs cbs;
  void *ud;
  struct px_request_head head;
  int has_body, ended, cancelled, finished;
  size_t body;
  size_t full_after; /* send_body says FULL once more than this was sent; 0 = never */
};

static struct fake_x *xs[16];
static int nx;

#define POOL(n) ((struct px_pool *)(intptr_t)(n))

static int f_start(struct px_pool *p, const struct px_request_head *head, int has_body,
                   const struct px_exchange_cbs *cbs, void *ud, struct px_exchange **out) {
  if (p == POOL(2))
    return CUT_ERR_FULL; /* the pool refuses */
  struct fake_x *x = calloc(1, sizeof *x);
  assert_non_null(x);
  assert_int_equal(px_request_head_copy(&x->head, head), 0);
  x->cbs = *cbs;
  x->ud = ud;
  x->has_body = has_body;
  xs[nx++] = x;
  *out = (struct px_exchange *)x;
  if (p == POOL(3)) { /* fails at once, inside start */
    x->finished = 1;
    cbs->on_done(*out, CUT_ERR_NET, PX_FAIL_CONNECT, "refused", 0, ud);
  }
  return 0;
}

static int f_send_body(struct px_exchange *ex, const uint8_t *d, size_t n) {
  struct fake_x *x = (struct fake_x *)ex;
  (void)d;
  assert_false(x->finished);
  x->body += n;
  return x->full_after && x->body > x->full_after ? CUT_ERR_FULL : 0;
}

static int f_end_body(struct px_exchange *ex, const struct px_headers *t) {
  (void)t;
  ((struct fake_x *)ex)->ended = 1;
  return 0;
}

static void f_cancel(struct px_exchange *ex) {
  struct fake_x *x = (struct fake_x *)ex;
  assert_false(x->finished);
  x->cancelled = x->finished = 1;
}

static const char *f_host(const struct px_exchange *ex) {
  (void)ex;
  return "10.0.0.2:80";
}

static const struct rec_mirror_ops fake_ops = {f_start, f_send_body, f_end_body, f_cancel, f_host};

static void respond(struct fake_x *x, int status, const char *body, int err, enum px_fail fail) {
  struct px_exchange *ex = (struct px_exchange *)x;
  if (status) {
    struct px_response_head h = {.status = status, .content_length = -1};
    assert_int_equal(px_headers_add(&h.headers, "x-lineage", 9, "catalog=v9", 10), 0);
    assert_int_equal(x->cbs.on_response(ex, &h, x->ud), 0);
    px_response_head_clear(&h);
  }
  if (body)
    assert_int_equal(x->cbs.on_body(ex, (const uint8_t *)body, strlen(body), x->ud), 0);
  x->finished = 1;
  x->cbs.on_done(ex, err, fail, NULL, status != 0, x->ud);
}

static void free_fakes(void) {
  for (int i = 0; i < nx; i++) {
    px_request_head_clear(&xs[i]->head);
    free(xs[i]);
  }
  nx = 0;
}

/* ---- a sink that keeps what it gets ---- */

struct cap_sink {
  struct rec_sink base;
  uint8_t *rec[8];
  size_t len[8];
  int n;
};

static int cap_submit(struct rec_sink *s, const char *key, size_t keylen, const uint8_t *rec,
                      size_t len) {
  struct cap_sink *c = (struct cap_sink *)s;
  (void)key;
  (void)keylen;
  assert_true(c->n < 8);
  c->rec[c->n] = malloc(len);
  memcpy(c->rec[c->n], rec, len);
  c->len[c->n++] = len;
  return 0;
}

static void cap_free(struct rec_sink *s) {
  struct cap_sink *c = (struct cap_sink *)s;
  for (int i = 0; i < c->n; i++)
    free(c->rec[i]);
  c->n = 0;
}

static const struct rec_sink_ops cap_ops = {.name = "capture", .submit = cap_submit, .free = cap_free};

struct fixture {
  struct cap_sink sink;
  struct rec_codec *codec;
  struct rec_mirror_stats stats;
  struct rec_opts opts;
  struct cfg_strlist lineage;
  char *lin[1];
  struct rec_mirror_env env;
  struct px_request_head head;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  f->sink.base.ops = &cap_ops;
  assert_int_equal(rec_codec_new(&f->codec, NULL, 0), 0);
  f->lin[0] = "x-lineage";
  f->lineage = (struct cfg_strlist){f->lin, 1};
  f->opts = (struct rec_opts){.max_body = 16, .lineage = &f->lineage};
  f->env = (struct rec_mirror_env){.ops = &fake_ops, .sink = &f->sink.base, .codec = f->codec,
                                   .opts = &f->opts, .stats = &f->stats};
  f->head = (struct px_request_head){.content_length = -1};
  f->head.method = strdup("GET");
  f->head.scheme = strdup("http");
  f->head.authority = strdup("shop.example");
  f->head.path = strdup("/cart?id=1");
  px_headers_add(&f->head.headers, "host", 4, "shop.example", 12);
  px_headers_add(&f->head.headers, "authorization", 13, "Bearer x", 8);
  px_headers_add(&f->head.headers, "x-request-id", 12, "req-7", 5);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  rec_mirror_env_shutdown(&f->env); /* as a worker does when it stops: releases its block cache */
  cap_free(&f->sink.base);
  rec_codec_free(f->codec);
  px_request_head_clear(&f->head);
  free_fakes();
  free(f);
  return 0;
}

static struct rec_pair *decode_only(struct fixture *f) {
  assert_int_equal(f->sink.n, 1);
  struct rec_pair *p;
  assert_int_equal(rec_codec_decode(f->codec, f->sink.rec[0], f->sink.len[0], &p), 0);
  return p;
}

static void test_rec_mirror_pair_after_last_side(void **state) {
  struct fixture *f = *state;
  struct cfg_mirror a = {.backend = "new", .ppm = CFG_PPM_MAX, .host = "new.internal"};
  struct cfg_mirror b = {.backend = "newer", .ppm = CFG_PPM_MAX};
  struct dial_decision dec = {.via = DIAL_VIA_DIAL, .name = "cart", .arm = "old", .bucket = 7,
                              .reason = "out-of-dial"};
  struct rec_mirror *m;
  assert_int_equal(rec_mirror_new(&m, &f->env, "req-7", 1234, "cart", &f->head, &dec, "old", 1), 0);
  rec_mirror_device_key(m, "dev-42", 6);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 1), 1);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &b, &f->head, 1), 1);
  assert_int_equal(f->env.inflight, 2);
  /* The shadows got the same request, marked, Host rewritten for the first. */
  assert_string_equal(xs[0]->head.authority, "new.internal");
  assert_string_equal(px_headers_get(&xs[0]->head.headers, "host")->value, "new.internal");
  assert_string_equal(px_headers_get(&xs[0]->head.headers, "x-cutover-shadow")->value, "1");
  assert_string_equal(px_headers_get(&xs[0]->head.headers, "x-request-id")->value, "req-7");
  assert_string_equal(px_headers_get(&xs[0]->head.headers, "authorization")->value, "Bearer x");
  assert_string_equal(xs[1]->head.authority, "shop.example");
  assert_string_equal(xs[1]->head.path, "/cart?id=1");
  assert_true(xs[0]->has_body);

  rec_mirror_request_body(m, (const uint8_t *)"0123456789", 10);
  rec_mirror_request_end(m, NULL);
  assert_int_equal(xs[0]->body, 10);
  assert_true(xs[1]->ended);

  struct px_response_head ph = {.status = 200, .content_length = -1};
  rec_mirror_primary_head(m, &ph, "10.0.0.1:80");
  rec_mirror_primary_body(m, (const uint8_t *)"{\"n\":1}", 7);
  rec_mirror_primary_done(m, 900, NULL);
  rec_mirror_release(m); /* the primary is done first: nothing recorded yet */
  assert_int_equal(f->sink.n, 0);
  respond(xs[0], 200, "a shadow body longer than the cap", 0, PX_FAIL_NONE);
  assert_int_equal(f->sink.n, 0);
  respond(xs[1], 0, NULL, CUT_ERR_TIMEOUT, PX_FAIL_TIMEOUT);
  assert_int_equal(f->env.inflight, 0);
  assert_null(f->env.live);

  struct rec_pair *p = decode_only(f);
  assert_string_equal(p->correlation_id, "req-7");
  assert_string_equal(p->device_key, "dev-42");
  assert_string_equal(p->route, "cart");
  assert_string_equal(rec_kvs_get(&p->decision, "name"), "cart");
  assert_string_equal(p->request.path, "/cart");
  assert_string_equal(rec_kvs_get(&p->request.headers, "authorization"), REC_REDACTED);
  assert_int_equal(p->request.body.size, 10);
  assert_string_equal(p->primary->backend, "old");
  assert_int_equal(p->primary->status, 200);
  assert_string_equal(p->primary->host, "10.0.0.1:80");
  assert_int_equal(p->primary->latency_us, 900);
  assert_int_equal(p->nshadows, 2);
  assert_string_equal(p->shadows[0]->backend, "new");
  assert_int_equal(p->shadows[0]->status, 200);
  assert_string_equal(p->shadows[0]->host, "10.0.0.2:80");
  assert_true(p->shadows[0]->body.truncated);
  assert_int_equal(p->shadows[0]->body.len, 16);
  assert_int_equal(p->shadows[0]->body.size, 33);
  assert_string_equal(rec_kvs_get(&p->shadows[0]->lineage, "catalog"), "v9");
  assert_null(p->shadows[0]->error);
  assert_string_equal(p->shadows[1]->backend, "newer");
  assert_string_equal(p->shadows[1]->error, "timeout");
  assert_int_equal(p->shadows[1]->status, 0);
  rec_pair_free(p);
  assert_int_equal(atomic_load(&f->stats.sent), 2);
  assert_int_equal(atomic_load(&f->stats.failed), 1);
  assert_int_equal(atomic_load(&f->stats.recorded), 1);
}

static size_t count_named(const struct px_headers *h, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < h->n; i++)
    n += strcmp(h->v[i].name, name) == 0;
  return n;
}

/* More shadows than the mirror keeps inline, a client that sends its own
 * x-cutover-shadow, and a head bigger than the stack view: every shadow gets
 * one Host and one mark, the primary's head is left as it was. */
static void test_rec_mirror_many_shadows_and_fields(void **state) {
  struct fixture *f = *state;
  px_headers_add(&f->head.headers, "x-cutover-shadow", 16, "0", 1);
  char name[32];
  for (int i = 0; i < 60; i++) {
    int n = snprintf(name, sizeof name, "x-extra-%d", i);
    px_headers_add(&f->head.headers, name, (size_t)n, "v", 1);
  }
  size_t nfields = f->head.headers.n, bytes = f->head.headers.bytes;
  struct cfg_mirror host = {.backend = "a", .ppm = CFG_PPM_MAX, .host = "a.internal"};
  struct cfg_mirror plain = {.backend = "b", .ppm = CFG_PPM_MAX};
  struct rec_mirror *m;
  assert_int_equal(rec_mirror_new(&m, &f->env, "req-8", 1, "cart", &f->head, NULL, "old", 1), 0);
  for (int i = 0; i < 5; i++)
    assert_int_equal(rec_mirror_add_shadow(m, POOL(1), i % 2 ? &plain : &host, &f->head, 0), 1);
  assert_int_equal(nx, 5);
  for (int i = 0; i < 5; i++) {
    const struct px_request_head *h = &xs[i]->head;
    assert_int_equal(h->headers.n, nfields); /* one mark replaces the client's */
    assert_int_equal(count_named(&h->headers, "host"), 1);
    assert_int_equal(count_named(&h->headers, "x-cutover-shadow"), 1);
    assert_string_equal(px_headers_get(&h->headers, "x-cutover-shadow")->value, "1");
    assert_string_equal(px_headers_get(&h->headers, "x-extra-59")->value, "v");
    const char *want = i % 2 ? "shop.example" : "a.internal";
    assert_string_equal(h->authority, want);
    assert_string_equal(px_headers_get(&h->headers, "host")->value, want);
    assert_string_equal(h->path, "/cart?id=1");
  }
  assert_int_equal(xs[1]->head.headers.bytes, bytes); /* "0" -> "1": same size */
  assert_int_equal(f->head.headers.n, nfields);
  assert_string_equal(px_headers_get(&f->head.headers, "x-cutover-shadow")->value, "0");
  assert_string_equal(f->head.authority, "shop.example");
  rec_mirror_primary_done(m, 1, NULL);
  rec_mirror_release(m);
  for (int i = 0; i < 5; i++)
    respond(xs[i], 200, "ok", 0, PX_FAIL_NONE);
  assert_int_equal(f->env.inflight, 0);
  struct rec_pair *p = decode_only(f);
  assert_int_equal(p->nshadows, 5);
  assert_string_equal(p->shadows[4]->backend, "a");
  assert_int_equal(p->shadows[4]->status, 200);
  assert_string_equal(rec_kvs_get(&p->request.headers, "x-extra-59"), "v");
  rec_pair_free(p);
}

static void test_rec_mirror_skip_refuse_sync_fail(void **state) {
  struct fixture *f = *state;
  f->env.max_inflight = 1;
  struct cfg_mirror a = {.backend = "a", .ppm = CFG_PPM_MAX};
  struct rec_mirror *m;
  assert_int_equal(rec_mirror_new(&m, &f->env, "id", 1, "r", &f->head, NULL, "old", 1), 0);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 0), 1);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 0), 0); /* over the bound */
  respond(xs[0], 204, NULL, 0, PX_FAIL_NONE);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(2), &a, &f->head, 0), 0); /* refused */
  assert_int_equal(rec_mirror_add_shadow(m, POOL(3), &a, &f->head, 0), 1); /* fails inside start */
  assert_int_equal(f->env.inflight, 0);
  rec_mirror_primary_done(m, 5, "reset");
  rec_mirror_release(m);
  struct rec_pair *p = decode_only(f);
  assert_int_equal(p->nshadows, 4);
  assert_int_equal(p->shadows[0]->status, 204);
  assert_string_equal(p->shadows[1]->error, "skipped");
  assert_string_equal(p->shadows[2]->error, "start");
  assert_string_equal(p->shadows[3]->error, "connect");
  assert_string_equal(p->primary->error, "reset");
  rec_pair_free(p);
  assert_int_equal(atomic_load(&f->stats.skipped), 1);
  assert_int_equal(atomic_load(&f->stats.skipped_by[REC_SHADOW_SKIP_INFLIGHT]), 1);
  assert_int_equal(atomic_load(&f->stats.sent), 2);
  assert_int_equal(atomic_load(&f->stats.failed), 2);
}

/* compare: live: the pair goes to the comparer, which records only a mismatch. */
static void compare_one(struct fixture *f, const char *primary_body, const char *shadow_body) {
  struct cfg_mirror a = {.backend = "new", .ppm = CFG_PPM_MAX};
  struct rec_mirror *m;
  assert_int_equal(rec_mirror_new(&m, &f->env, "id", 1, "r", &f->head, NULL, "old",
                                  REC_MIRROR_COMPARE), 0);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 0), 1);
  struct px_response_head ph = {.status = 200, .content_length = -1};
  rec_mirror_primary_head(m, &ph, "10.0.0.1:80");
  rec_mirror_primary_body(m, (const uint8_t *)primary_body, strlen(primary_body));
  rec_mirror_primary_done(m, 5, NULL);
  rec_mirror_release(m);
  respond(xs[nx - 1], 200, shadow_body, 0, PX_FAIL_NONE);
}

static void test_rec_mirror_compare_live(void **state) {
  struct fixture *f = *state;
  struct cfg_route rt = {.name = "r", .compare = CFG_COMPARE_LIVE};
  struct cfg cfg = {.routes = &rt, .nroutes = 1};
  struct an_rules *rules = NULL;
  assert_int_equal(rec_compare_rules_new(&rules, &cfg, NULL, 0), 0);
  struct rec_compare_stats cs;
  memset(&cs, 0, sizeof cs);
  struct rec_comparer *c = NULL;
  assert_int_equal(rec_comparer_new(&c, rules, &f->sink.base, &cs, 4, NULL, 0), 0);
  f->env.comparer = c;
  compare_one(f, "{\"a\":1}", "{\"a\":1}");
  compare_one(f, "{\"a\":1}", "{\"a\":2}");
  rec_comparer_flush(c);
  assert_int_equal(atomic_load(&cs.matches), 1);
  assert_int_equal(atomic_load(&cs.mismatches), 1);
  assert_int_equal(atomic_load(&f->stats.recorded), 0); /* the workers recorded nothing */
  struct rec_pair *p = decode_only(f);
  assert_int_equal(p->nshadows, 1);
  assert_memory_equal(p->shadows[0]->body.data, "{\"a\":2}", 7);
  rec_pair_free(p);
  rec_comparer_free(c);
}

static void test_rec_mirror_overflow(void **state) {
  struct fixture *f = *state;
  f->env.overflow_bytes = 100;
  struct cfg_mirror a = {.backend = "slow", .ppm = CFG_PPM_MAX, .methods = {0}};
  struct rec_mirror *m;
  assert_int_equal(rec_mirror_new(&m, &f->env, "id", 1, "r", &f->head, NULL, "old", 1), 0);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 1), 1);
  xs[0]->full_after = 10;
  uint8_t chunk[50] = {0};
  rec_mirror_request_body(m, chunk, 50); /* FULL: 50 queued past the watermark */
  rec_mirror_request_body(m, chunk, 40); /* 90 */
  assert_false(xs[0]->cancelled);
  rec_mirror_request_body(m, chunk, 20); /* 110 > 100: given up */
  assert_true(xs[0]->cancelled);
  assert_int_equal(xs[0]->body, 90);
  rec_mirror_request_body(m, chunk, 50); /* nothing more goes to it */
  assert_int_equal(xs[0]->body, 90);
  assert_int_equal(f->env.over_total, 0); /* released with the shadow */
  rec_mirror_primary_done(m, 1, NULL);
  rec_mirror_release(m);
  struct rec_pair *p = decode_only(f);
  assert_string_equal(p->shadows[0]->error, "overflow");
  assert_int_equal(p->request.body.size, 160); /* the pair still saw the whole body */
  rec_pair_free(p);
}

/* The worker-wide budget cuts off shadows before each reaches its own cap. */
static void test_rec_mirror_overflow_total(void **state) {
  struct fixture *f = *state;
  f->env.overflow_bytes = 1000;
  f->env.overflow_total = 90;
  struct cfg_mirror a = {.backend = "slow", .ppm = CFG_PPM_MAX};
  struct rec_mirror *m;
  assert_int_equal(rec_mirror_new(&m, &f->env, "id", 1, "r", &f->head, NULL, "old", 1), 0);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 1), 1);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 1), 1);
  xs[0]->full_after = 1;
  xs[1]->full_after = 1;
  uint8_t chunk[50] = {0};
  rec_mirror_request_body(m, chunk, 50); /* both FULL: 100 queued in all */
  assert_int_equal(f->env.over_total, 100);
  /* the drain of the first gives its share back */
  xs[0]->cbs.on_request_drain((struct px_exchange *)xs[0], xs[0]->ud);
  assert_int_equal(f->env.over_total, 50);
  xs[0]->full_after = 0;
  rec_mirror_request_body(m, chunk, 50); /* first: not full; second: 50 queued + 50 > 90 */
  assert_false(xs[0]->cancelled);
  assert_true(xs[1]->cancelled);
  assert_int_equal(f->env.over_total, 0);
  respond(xs[0], 200, NULL, 0, PX_FAIL_NONE);
  rec_mirror_primary_done(m, 1, NULL);
  rec_mirror_release(m);
  struct rec_pair *p = decode_only(f);
  assert_null(p->shadows[0]->error);
  assert_string_equal(p->shadows[1]->error, "overflow");
  rec_pair_free(p);
}

static int freed_calls;
static int freed_recorded; /* pairs the sink held when on_free ran */
static struct fixture *freed_fixture;

static void count_free(void *arg) {
  assert_ptr_equal(arg, &freed_calls);
  freed_calls++;
  freed_recorded = freed_fixture->sink.n;
}

/* rec_mirror_on_free runs once, only after the primary side and the last
 * shadow are done (whichever comes last), and after the pair was handed on:
 * the proxy holds the config generation whose pools the shadows use until then. */
static void test_rec_mirror_on_free(void **state) {
  struct fixture *f = *state;
  struct cfg_mirror a = {.backend = "a", .ppm = CFG_PPM_MAX};
  struct cfg_mirror b = {.backend = "b", .ppm = CFG_PPM_MAX};
  struct rec_mirror *m;
  freed_calls = 0;
  freed_fixture = f;
  assert_int_equal(rec_mirror_new(&m, &f->env, "id", 1, "r", &f->head, NULL, "old", 1), 0);
  rec_mirror_on_free(m, count_free, &freed_calls);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 0), 1);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &b, &f->head, 0), 1);
  rec_mirror_primary_done(m, 1, NULL);
  rec_mirror_release(m); /* the primary side first */
  assert_int_equal(freed_calls, 0);
  respond(xs[0], 200, "x", 0, PX_FAIL_NONE);
  assert_int_equal(freed_calls, 0); /* one shadow still uses the pool */
  respond(xs[1], 200, "y", 0, PX_FAIL_NONE);
  assert_int_equal(freed_calls, 1);
  assert_int_equal(freed_recorded, 1);

  /* Shadows first, then the primary side. */
  assert_int_equal(rec_mirror_new(&m, &f->env, "id2", 1, "r", &f->head, NULL, "old", 1), 0);
  rec_mirror_on_free(m, count_free, &freed_calls);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 0), 1);
  respond(xs[2], 200, "x", 0, PX_FAIL_NONE);
  assert_int_equal(freed_calls, 1);
  rec_mirror_primary_done(m, 1, NULL);
  rec_mirror_release(m);
  assert_int_equal(freed_calls, 2);

  /* A worker stopping with a shadow in flight. */
  assert_int_equal(rec_mirror_new(&m, &f->env, "id3", 1, "r", &f->head, NULL, "old", 1), 0);
  rec_mirror_on_free(m, count_free, &freed_calls);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 0), 1);
  rec_mirror_primary_done(m, 1, NULL);
  rec_mirror_release(m);
  assert_int_equal(freed_calls, 2);
  rec_mirror_env_shutdown(&f->env);
  assert_int_equal(freed_calls, 3);
  assert_int_equal(f->sink.n, 3);
}

static void test_rec_mirror_shutdown(void **state) {
  struct fixture *f = *state;
  struct cfg_mirror a = {.backend = "a", .ppm = CFG_PPM_MAX};
  struct rec_mirror *m;
  assert_int_equal(rec_mirror_new(&m, &f->env, "id", 1, "r", &f->head, NULL, "old", 1), 0);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 0), 1);
  rec_mirror_primary_done(m, 1, NULL);
  rec_mirror_release(m);
  assert_int_equal(f->sink.n, 0);
  rec_mirror_env_shutdown(&f->env); /* the worker stops with the shadow in flight */
  assert_true(xs[0]->cancelled);
  assert_null(f->env.live);
  struct rec_pair *p = decode_only(f);
  assert_string_equal(p->shadows[0]->error, "cancelled");
  rec_pair_free(p);
  /* A mirror whose primary side still runs is only unlinked; it records on release. */
  assert_int_equal(rec_mirror_new(&m, &f->env, "id2", 1, "r", &f->head, NULL, "old", 1), 0);
  rec_mirror_env_shutdown(&f->env);
  assert_null(f->env.live);
  rec_mirror_release(m);
  assert_int_equal(f->sink.n, 2);
  assert_int_equal(atomic_load(&f->stats.failed), 1);
  assert_int_equal(atomic_load(&f->stats.recorded), 2);
}

static void test_rec_mirror_without_sink(void **state) {
  struct fixture *f = *state;
  f->env.sink = NULL; /* mirror only */
  struct cfg_mirror a = {.backend = "a", .ppm = CFG_PPM_MAX};
  struct rec_mirror *m;
  assert_int_equal(rec_mirror_new(&m, &f->env, "id", 1, "r", &f->head, NULL, "old", 1), 0);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 1), 1);
  rec_mirror_request_body(m, (const uint8_t *)"abc", 3);
  rec_mirror_primary_done(m, 1, NULL);
  rec_mirror_release(m);
  respond(xs[0], 200, "x", 0, PX_FAIL_NONE);
  assert_int_equal(f->sink.n, 0);
  assert_int_equal(xs[0]->body, 3);
  assert_null(f->env.live);
  /* A route that mirrors without `record` records nothing either. */
  f->env.sink = &f->sink.base;
  assert_int_equal(rec_mirror_new(&m, &f->env, "id", 1, "r", &f->head, NULL, "old", 0), 0);
  rec_mirror_primary_done(m, 1, NULL);
  rec_mirror_release(m);
  assert_int_equal(f->sink.n, 0);
}

static void test_rec_mirror_shadow_timeout(void **state) {
  struct fixture *f = *state;
  /* The default base, as the workers use: its timers run on the coarse clock
   * and may fire up to a tick before the precise clock reaches 20 ms. */
  struct event_base *base = event_base_new();
  assert_non_null(base);
  f->env.base = base;
  f->env.shadow_timeout_ms = 20;
  struct cfg_mirror a = {.backend = "slow", .ppm = CFG_PPM_MAX};
  struct cfg_mirror b = {.backend = "fast", .ppm = CFG_PPM_MAX};
  struct rec_mirror *m;
  assert_int_equal(rec_mirror_new(&m, &f->env, "id", 1, "r", &f->head, NULL, "old", 1), 0);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &a, &f->head, 0), 1);
  assert_int_equal(rec_mirror_add_shadow(m, POOL(1), &b, &f->head, 0), 1);
  respond(xs[1], 200, "ok", 0, PX_FAIL_NONE); /* in time: its timer goes away */
  rec_mirror_primary_done(m, 1, NULL);
  rec_mirror_release(m);
  assert_int_equal(f->sink.n, 0);
  event_base_dispatch(base); /* returns once no timer is left */
  assert_true(xs[0]->cancelled);
  struct rec_pair *p = decode_only(f);
  assert_string_equal(p->shadows[0]->error, "timeout");
  assert_true(p->shadows[0]->latency_us >= 20000);
  assert_null(p->shadows[1]->error);
  rec_pair_free(p);
  event_base_free(base);
}

/* ---- with the real upstream pools against evhttp backends ---- */

static struct event_base *g_base;

static void shadow_backend_cb(struct evhttp_request *req, void *arg) {
  (void)arg;
  if (!strcmp(evhttp_request_get_uri(req), "/hang"))
    return; /* never answers */
  struct evkeyvalq *in = evhttp_request_get_input_headers(req);
  const char *mark = evhttp_find_header(in, "x-cutover-shadow");
  const char *host = evhttp_find_header(in, "host");
  struct evbuffer *out = evbuffer_new();
  evbuffer_add_printf(out, "shadow saw %zu bytes",
                      evbuffer_get_length(evhttp_request_get_input_buffer(req)));
  evhttp_add_header(evhttp_request_get_output_headers(req), "x-saw-shadow", mark ? mark : "-");
  evhttp_add_header(evhttp_request_get_output_headers(req), "x-saw-host", host ? host : "-");
  evhttp_add_header(evhttp_request_get_output_headers(req), "x-lineage", "catalog=v813");
  evhttp_send_reply(req, 200, "OK", out);
  evbuffer_free(out);
}

static int cap_submit_break(struct rec_sink *s, const char *key, size_t keylen, const uint8_t *rec,
                            size_t len) {
  int rc = cap_submit(s, key, keylen, rec, len);
  event_base_loopbreak(g_base);
  return rc;
}

static const struct rec_sink_ops cap_break_ops = {
    .name = "capture", .submit = cap_submit_break, .free = cap_free};

static int real_start(struct px_pool *p, const struct px_request_head *h, int has_body,
                      const struct px_exchange_cbs *cbs, void *ud, struct px_exchange **out) {
  return px_exchange_start(p, h, has_body, cbs, ud, out);
}

static const struct rec_mirror_ops real_ops = {real_start, px_exchange_send_body,
                                               px_exchange_end_body, px_exchange_cancel,
                                               px_exchange_host};

static struct px_pool *pool_to(struct cfg_backend *be, struct cfg_addr *addr, int port) {
  memset(be, 0, sizeof *be);
  addr->host = "127.0.0.1";
  addr->port = (uint16_t)port;
  be->name = "shadow";
  be->hosts = addr;
  be->nhosts = 1;
  be->protocol = CFG_PROTO_HTTP1;
  be->connect_timeout_ms = 1000;
  be->timeout_ms = 3000;
  be->idle_timeout_ms = 60000;
  be->max_connections = 4;
  be->max_streams = 100;
  struct px_pool *p = NULL;
  struct px_pool_opts o = {.body_watermark = 64 * 1024};
  assert_int_equal(px_pool_new(&p, g_base, be, &o, NULL, 0), 0);
  return p;
}

static void test_rec_mirror_real_upstream(void **state) {
  struct fixture *f = *state;
  g_base = event_base_new();
  struct evhttp *http = evhttp_new(g_base);
  struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
  assert_non_null(bs);
  struct sockaddr_in sin;
  socklen_t sl = sizeof sin;
  getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &sl);
  evhttp_set_gencb(http, shadow_backend_cb, NULL);
  int closed = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in cs = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(closed, (struct sockaddr *)&cs, sizeof cs);
  socklen_t csl = sizeof cs;
  getsockname(closed, (struct sockaddr *)&cs, &csl);
  close(closed); /* nothing listens there now */

  struct cfg_backend be_ok, be_down;
  struct cfg_addr a_ok, a_down;
  struct px_pool *ok = pool_to(&be_ok, &a_ok, ntohs(sin.sin_port));
  struct px_pool *down = pool_to(&be_down, &a_down, ntohs(cs.sin_port));
  f->sink.base.ops = &cap_break_ops;
  f->env.ops = &real_ops;
  f->env.base = g_base;
  f->env.shadow_timeout_ms = 300;

  /* A 100 KB POST mirrored to a live shadow and to one that is down. */
  char *meths[] = {"POST"};
  struct cfg_mirror live = {.backend = "new", .ppm = CFG_PPM_MAX, .host = "new.internal",
                            .methods = {meths, 1}};
  struct cfg_mirror dead = {.backend = "down", .ppm = CFG_PPM_MAX, .methods = {meths, 1}};
  free(f->head.method);
  f->head.method = strdup("POST");
  f->head.path[0] = '/';
  struct rec_mirror *m;
  assert_int_equal(rec_mirror_new(&m, &f->env, "req-7", 1, "cart", &f->head, NULL, "old", 1), 0);
  assert_int_equal(rec_mirror_add_shadow(m, ok, &live, &f->head, 1), 1);
  assert_int_equal(rec_mirror_add_shadow(m, down, &dead, &f->head, 1), 1);
  static uint8_t body[100 * 1024];
  for (size_t off = 0; off < sizeof body; off += 16384)
    rec_mirror_request_body(m, body + off, 16384 < sizeof body - off ? 16384 : sizeof body - off);
  rec_mirror_request_end(m, NULL);
  rec_mirror_primary_done(m, 10, NULL);
  rec_mirror_release(m);
  event_base_dispatch(g_base); /* until the pair is submitted */
  struct rec_pair *p = decode_only(f);
  assert_int_equal(p->nshadows, 2);
  struct rec_response *s0 = p->shadows[0], *s1 = p->shadows[1];
  assert_int_equal(s0->status, 200);
  assert_string_equal(rec_kvs_get(&s0->headers, "x-saw-shadow"), "1");
  assert_string_equal(rec_kvs_get(&s0->headers, "x-saw-host"), "new.internal");
  assert_string_equal(rec_kvs_get(&s0->lineage, "catalog"), "v813");
  assert_int_equal(s0->body.size, strlen("shadow saw 102400 bytes"));
  assert_null(s0->error);
  assert_string_equal(s1->error, "connect");
  assert_int_equal(p->request.body.size, sizeof body);
  rec_pair_free(p);
  cap_free(&f->sink.base);

  /* A shadow that never answers is cut off by shadow_timeout. */
  free(f->head.path);
  f->head.path = strdup("/hang");
  assert_int_equal(rec_mirror_new(&m, &f->env, "req-8", 1, "cart", &f->head, NULL, "old", 1), 0);
  assert_int_equal(rec_mirror_add_shadow(m, ok, &live, &f->head, 0), 1);
  rec_mirror_primary_done(m, 10, NULL);
  rec_mirror_release(m);
  event_base_dispatch(g_base);
  p = decode_only(f);
  assert_string_equal(p->shadows[0]->error, "timeout");
  rec_pair_free(p);
  assert_int_equal(f->env.inflight, 0);

  px_pool_free(ok);
  px_pool_free(down);
  evhttp_free(http);
  event_base_free(g_base);
  g_base = NULL;
}

static void test_rec_mirror_wanted(void **state) {
  (void)state;
  struct cfg_mirror m = {.backend = "new", .ppm = CFG_PPM_MAX};
  assert_true(rec_mirror_wanted(&m, "GET", NULL, 0));
  assert_true(rec_mirror_wanted(&m, "OPTIONS", NULL, 0));
  assert_false(rec_mirror_wanted(&m, "POST", NULL, 0)); /* writes only when listed */
  char *meths[] = {"POST"};
  m.methods = (struct cfg_strlist){meths, 1};
  assert_true(rec_mirror_wanted(&m, "POST", NULL, 0));
  assert_false(rec_mirror_wanted(&m, "GET", NULL, 0));
  m.methods = (struct cfg_strlist){NULL, 0};
  m.ppm = 0;
  assert_false(rec_mirror_wanted(&m, "GET", NULL, 0));
  /* random sampling */
  m.ppm = 250000;
  assert_true(rec_mirror_wanted(&m, "GET", NULL, 249999));
  assert_false(rec_mirror_wanted(&m, "GET", NULL, 250000));
  /* sticky per device: the same key gives the same answer whatever the random draw */
  m.key = (struct cfg_key){.kind = CFG_KEY_HEADER, .name = "x-device-id"};
  int in = 0;
  for (int i = 0; i < 1000; i++) {
    char dev[32];
    snprintf(dev, sizeof dev, "device-%d", i);
    struct dial_header h = {{"x-device-id", 11}, {dev, strlen(dev)}};
    struct dial_request req = {.method = {"GET", 3}, .path = {"/", 1}, .headers = &h, .nheaders = 1};
    int first = rec_mirror_wanted(&m, "GET", &req, 0);
    assert_int_equal(rec_mirror_wanted(&m, "GET", &req, 999999), first);
    uint32_t b = dial_bucket("new", 3, dev, strlen(dev));
    assert_int_equal(first, b < 250000);
    in += first;
  }
  assert_true(in > 150 && in < 350);
  /* no key in the request: random */
  struct dial_request none = {.method = {"GET", 3}, .path = {"/", 1}};
  assert_true(rec_mirror_wanted(&m, "GET", &none, 1));
  assert_false(rec_mirror_wanted(&m, "GET", &none, 999999));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_rec_mirror_pair_after_last_side, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rec_mirror_many_shadows_and_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rec_mirror_skip_refuse_sync_fail, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rec_mirror_compare_live, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rec_mirror_overflow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rec_mirror_overflow_total, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rec_mirror_shutdown, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rec_mirror_on_free, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rec_mirror_without_sink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rec_mirror_shadow_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rec_mirror_real_upstream, setup, teardown),
      cmocka_unit_test(test_rec_mirror_wanted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
