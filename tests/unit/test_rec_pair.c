/* Unit tests for replay/rec_pair: redaction, body caps and checksums, lineage parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "common/cut_err.h"
#include "replay/rec_avro.h"
#include "replay/rec_mem.h"
#include "replay/rec_pair.h"

/* SHA-256 of "" and of "abc" (FIPS 180-2 test vectors). */
#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_rec_pair_redaction_default(void **state) {
  (void)state;
  struct rec_opts o = {.max_body = 16};
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, "c1", 1, "r"), 0);
  assert_int_equal(rec_pair_request_header(p, "Authorization", 13, "Bearer x", 8), 0);
  assert_int_equal(rec_pair_request_header(p, "Cookie", 6, "a=b", 3), 0);
  assert_int_equal(rec_pair_request_header(p, "X-Other", 7, "keep", 4), 0);
  assert_int_equal(p->request.headers.n, 3);
  assert_string_equal(p->request.headers.v[0].key, "authorization");
  assert_string_equal(p->request.headers.v[0].value, REC_REDACTED);
  assert_string_equal(p->request.headers.v[1].value, REC_REDACTED);
  assert_string_equal(p->request.headers.v[2].key, "x-other");
  assert_string_equal(p->request.headers.v[2].value, "keep");
  struct rec_response *r;
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_PRIMARY, "old", &r), 0);
  assert_int_equal(rec_response_header(p, r, "SET-COOKIE", 10, "s=1", 3), 0);
  assert_string_equal(r->headers.v[0].value, REC_REDACTED);
  rec_pair_free(p);
}

static void test_rec_pair_redaction_configured(void **state) {
  (void)state;
  char *names[] = {"x-api-key"};
  struct cfg_strlist redact = {names, 1};
  struct rec_opts o = {.max_body = 16, .redact = &redact};
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, "c1", 1, "r"), 0);
  assert_int_equal(rec_pair_request_header(p, "X-API-Key", 9, "secret", 6), 0);
  assert_int_equal(rec_pair_request_header(p, "authorization", 13, "visible", 7), 0);
  assert_string_equal(p->request.headers.v[0].value, REC_REDACTED);
  assert_string_equal(p->request.headers.v[1].value, "visible");
  assert_true(rec_redact_match(NULL, "Cookie", 6));
  assert_false(rec_redact_match(NULL, "Cookies", 7));
  assert_true(rec_redact_match(NULL, "SET-COOKIE", 10));
  assert_false(rec_redact_match(NULL, "Cooki", 5));                /* a prefix only */
  assert_false(rec_redact_match(NULL, "Cookie: x", 6 + 3));        /* longer than the name */
  assert_true(rec_redact_match(NULL, "cookieXYZ", 6));             /* only namelen bytes count */
  const char *odd[] = {"x@y"};
  struct cfg_strlist ol = {(char **)odd, 1};
  assert_true(rec_redact_match(&ol, "X@Y", 3));
  assert_false(rec_redact_match(&ol, "x`y", 3)); /* '@' and '`' differ by 0x20, not letters */
  const char *odd1[] = {"@b", "cookie"}; /* the same, as the first character */
  struct cfg_strlist ol1 = {(char **)odd1, 2};
  assert_true(rec_redact_match(&ol1, "@B", 2));
  assert_false(rec_redact_match(&ol1, "`b", 2));
  assert_true(rec_redact_match(&ol1, "COOKIE", 6)); /* after a first character that differs */
  assert_false(rec_redact_match(&ol1, "", 0));
  struct cfg_strlist none = {NULL, 0}; /* `redact_headers: []` turns redaction off */
  assert_false(rec_redact_match(&none, "authorization", 13));
  rec_pair_free(p);
}

static void test_rec_pair_body_cap(void **state) {
  (void)state;
  struct rec_opts o = {.max_body = 4};
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, "c1", 1, "r"), 0);
  assert_int_equal(rec_pair_request_body(p, (const uint8_t *)"ab", 2), 0);
  assert_int_equal(rec_pair_request_body(p, (const uint8_t *)"c", 1), 0);
  assert_false(p->request.body.truncated);
  struct rec_response *r;
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_SHADOW, "new", &r), 0);
  /* 3 + 3 bytes streamed, 4 kept; the checksum covers all six. */
  assert_int_equal(rec_response_body(p, r, (const uint8_t *)"abc", 3), 0);
  assert_int_equal(rec_response_body(p, r, (const uint8_t *)"abc", 3), 0);
  assert_int_equal(rec_response_finish(p, r, 1234, NULL), 0);
  assert_int_equal(r->body.len, 4);
  assert_int_equal(r->body.size, 6);
  assert_true(r->body.truncated);
  assert_memory_equal(r->body.data, "abca", 4);
  assert_string_equal(r->body.sha256, ""); /* computed by rec_pair_finish, off the worker */
  /* Finished bodies take no more bytes. */
  assert_int_equal(rec_response_body(p, r, (const uint8_t *)"x", 1), CUT_ERR_STATE);
  rec_pair_finish(p);
  assert_string_equal(r->body.sha256,
                      "bbb59da3af939f7af5f360f2ceb80a496e3bae1cd87dde426db0ae40677e1c2c");
  assert_int_equal(r->latency_us, 1234);
  assert_null(r->error);
  assert_string_equal(p->request.body.sha256, SHA_ABC);
  assert_int_equal(p->request.body.size, 3);
  rec_pair_free(p);
}

/* The checksum is lazy while every byte is kept, and starts streaming at the
 * first byte past the cap: both ways give the digest of the whole body. */
static void test_rec_pair_body_lazy_checksum(void **state) {
  (void)state;
  struct rec_opts o = {.max_body = 4};
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, "c1", 1, "r"), 0);
  struct rec_response *whole, *over;
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_PRIMARY, "old", &whole), 0);
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_SHADOW, "new", &over), 0);
  assert_int_equal(rec_response_body(p, whole, (const uint8_t *)"ab", 2), 0);
  assert_int_equal(rec_response_body(p, whole, (const uint8_t *)"cd", 2), 0); /* exactly the cap */
  assert_int_equal(rec_response_body(p, over, (const uint8_t *)"abcd", 4), 0);
  assert_int_equal(rec_response_body(p, over, (const uint8_t *)"e", 1), 0); /* one past it */
  assert_int_equal(rec_response_finish(p, whole, 1, NULL), 0);
  assert_int_equal(rec_response_finish(p, over, 1, NULL), 0);
  rec_pair_finish(p);
  assert_false(whole->body.truncated);
  assert_string_equal(whole->body.sha256, "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589");
  assert_true(over->body.truncated);
  assert_int_equal(over->body.len, 4);
  assert_string_equal(over->body.sha256, "36bbe50ed96841d10443bcb670d6554f0a34b761be67ec9c4a8ad2c0c44ca42c");
  rec_pair_free(p);
}

static void test_rec_pair_body_empty_and_zero_cap(void **state) {
  (void)state;
  struct rec_opts o = {.max_body = 0};
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, "c1", 1, "r"), 0);
  struct rec_response *r;
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_PRIMARY, "old", &r), 0);
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_PRIMARY, "old", NULL), CUT_ERR_EXISTS);
  assert_int_equal(rec_response_finish(p, r, 1, "timeout"), 0);
  rec_body_finish(&r->body);
  assert_string_equal(r->body.sha256, SHA_EMPTY);
  assert_string_equal(r->error, "timeout");
  assert_int_equal(rec_pair_request_body(p, (const uint8_t *)"abc", 3), 0);
  assert_int_equal(p->request.body.len, 0);
  assert_true(p->request.body.truncated);
  rec_pair_free(p);
}

static void test_rec_pair_lineage_parse(void **state) {
  (void)state;
  struct rec_kvs m = {0};
  const char *v = " catalog=v812; streams = 9f3a0c ;bad;=x;;catalog=v813,extra=1";
  assert_int_equal(rec_lineage_parse(&m, v, strlen(v)), 4);
  assert_int_equal(m.n, 3);
  assert_string_equal(rec_kvs_get(&m, "catalog"), "v813");
  assert_string_equal(rec_kvs_get(&m, "streams"), "9f3a0c");
  assert_string_equal(rec_kvs_get(&m, "extra"), "1");
  assert_null(rec_kvs_get(&m, "bad"));
  assert_int_equal(rec_lineage_parse(&m, "", 0), 0);
  rec_kvs_clear(&m);
}

static void test_rec_pair_lineage_headers(void **state) {
  (void)state;
  char *names[] = {"x-lineage", "x-data-version"};
  struct cfg_strlist lin = {names, 2};
  struct rec_opts o = {.max_body = 8, .lineage = &lin};
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, "c1", 1, "r"), 0);
  struct rec_response *r;
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_SHADOW, "new", &r), 0);
  const char *a = "catalog=v812;streams=9f3a0c", *b = "prices=77";
  assert_int_equal(rec_response_header(p, r, "X-Lineage", 9, a, strlen(a)), 0);
  assert_int_equal(rec_response_header(p, r, "x-data-version", 14, b, strlen(b)), 0);
  assert_int_equal(rec_response_header(p, r, "x-other", 7, "a=b", 3), 0);
  assert_int_equal(r->lineage.n, 3);
  assert_string_equal(rec_kvs_get(&r->lineage, "catalog"), "v812");
  assert_string_equal(rec_kvs_get(&r->lineage, "prices"), "77");
  assert_null(rec_kvs_get(&r->lineage, "a"));
  assert_int_equal(r->headers.n, 3);
  rec_pair_free(p);
}

static void test_rec_pair_request_and_device(void **state) {
  (void)state;
  struct rec_opts o = {.max_body = 8, .hash_device_key = 1, .source = "replay"};
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, "c1", 42, "api"), 0);
  assert_int_equal(rec_pair_set_request(p, "GET", "example.com", "/a/b?x=1&y=2"), 0);
  assert_string_equal(p->request.path, "/a/b");
  assert_string_equal(p->request.query, "x=1&y=2");
  assert_int_equal(rec_pair_set_request(p, "GET", "example.com", "/plain"), 0);
  assert_string_equal(p->request.query, "");
  assert_int_equal(rec_pair_set_device_key(p, "abc", 3), 0);
  assert_string_equal(p->device_key, SHA_ABC);
  assert_string_equal(p->source, "replay");
  assert_int_equal(rec_pair_decision_set(p, "via", "dial"), 0);
  assert_int_equal(rec_pair_decision_set(p, "via", "experiment"), 0);
  assert_int_equal(p->decision.n, 1);
  assert_string_equal(rec_kvs_get(&p->decision, "via"), "experiment");
  o.hash_device_key = 0;
  assert_int_equal(rec_pair_set_device_key(p, "dev-1", 5), 0);
  assert_string_equal(p->device_key, "dev-1");
  rec_pair_free(p);
  rec_pair_free(NULL);
}

/* Entries keep key and value in one block: setting a key again replaces the
 * value in place of the entry; header names are lower-cased, values kept. */
static void test_rec_pair_kvs_set_and_headers(void **state) {
  (void)state;
  struct rec_kvs l = {0};
  assert_int_equal(rec_kvs_append(&l, "a", 1, "1", 1), 0);
  assert_int_equal(rec_kvs_append(&l, "bb", 2, "", 0), 0);
  assert_int_equal(rec_kvs_set(&l, "a", 1, "a longer value", 14), 0);
  assert_int_equal(rec_kvs_set(&l, "c", 1, "3", 1), 0);
  assert_int_equal(l.n, 3);
  assert_string_equal(l.v[0].key, "a");
  assert_string_equal(rec_kvs_get(&l, "a"), "a longer value");
  assert_string_equal(rec_kvs_get(&l, "bb"), "");
  assert_string_equal(rec_kvs_get(&l, "c"), "3");
  rec_kvs_clear(&l);
  assert_int_equal(l.n, 0);

  struct rec_opts o = {.max_body = 16};
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, "id", 1, "r"), 0);
  assert_int_equal(rec_pair_request_header(p, "X-Mixed-Case", 12, "Value As Sent", 13), 0);
  assert_string_equal(p->request.headers.v[0].key, "x-mixed-case");
  assert_string_equal(rec_kvs_get(&p->request.headers, "x-mixed-case"), "Value As Sent");
  rec_pair_free(p);
}

/* ---- the arena ---- */

/* A pair much bigger than one block: many headers, big bodies streamed in
 * pieces, several shadows; everything reads back intact. */
static void build_big(struct rec_pair *p, size_t body) {
  char name[32], value[64];
  for (int i = 0; i < 300; i++) {
    snprintf(name, sizeof name, "X-H-%d", i);
    snprintf(value, sizeof value, "value-%d-%s", i, "abcdefghijklmnopqrstuvwxyz");
    assert_int_equal(rec_pair_request_header(p, name, strlen(name), value, strlen(value)), 0);
  }
  uint8_t chunk[1000];
  for (size_t off = 0; off < body; off += sizeof chunk) {
    for (size_t j = 0; j < sizeof chunk; j++)
      chunk[j] = (uint8_t)((off + j) % 251);
    size_t n = body - off < sizeof chunk ? body - off : sizeof chunk;
    assert_int_equal(rec_pair_request_body(p, chunk, n), 0);
  }
  for (int s = 0; s < 5; s++) {
    struct rec_response *r;
    assert_int_equal(rec_pair_add_response(p, REC_SIDE_SHADOW, "new", &r), 0);
    assert_int_equal(rec_response_set_status(p, r, 200 + s, "h:1"), 0);
    assert_int_equal(rec_response_body(p, r, (const uint8_t *)"abc", 3), 0);
    assert_int_equal(rec_response_finish(p, r, s, NULL), 0);
  }
}

static void check_big(struct rec_pair *p, size_t kept) {
  rec_pair_finish(p);
  assert_int_equal(p->request.headers.n, 300);
  assert_string_equal(p->request.headers.v[0].key, "x-h-0");
  assert_string_equal(p->request.headers.v[299].key, "x-h-299");
  assert_string_equal(p->request.headers.v[299].value, "value-299-abcdefghijklmnopqrstuvwxyz");
  assert_int_equal(p->request.body.len, kept);
  for (size_t j = 0; j < kept; j++)
    if (p->request.body.data[j] != (uint8_t)(j % 251))
      fail_msg("body byte %zu differs", j);
  assert_int_equal(p->nshadows, 5);
  for (int s = 0; s < 5; s++) {
    assert_int_equal(p->shadows[s]->status, 200 + s);
    assert_string_equal(p->shadows[s]->body.sha256, SHA_ABC);
  }
}

static void test_rec_pair_arena_big_pair(void **state) {
  (void)state;
  struct rec_opts o = {.max_body = 70000};
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, "c1", 1, "r"), 0);
  build_big(p, 100000);
  check_big(p, 70000);
  assert_int_equal(p->request.body.size, 100000);
  assert_true(p->request.body.truncated);
  /* the memory the pair holds is what queues count: a big body grows in a
   * block of its own up to the cap, so about the kept bytes plus the headers */
  assert_true(rec_pair_mem_size(p) > 70000);
  assert_true(rec_pair_mem_size(p) < 70000 + 64 * 1024);
  rec_pair_free(p);
}

/* A decoded pair is built in its own arena too, and can still grow. */
static void test_rec_pair_arena_decoded(void **state) {
  (void)state;
  struct rec_opts o = {.max_body = 5000};
  struct rec_pair *p, *q;
  assert_int_equal(rec_pair_new(&p, &o, "c1", 1, "r"), 0);
  build_big(p, 5000);
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  uint8_t *buf;
  size_t len;
  assert_int_equal(rec_codec_encode(c, p, &buf, &len), 0);
  assert_int_equal(rec_codec_decode(c, buf, len, &q), 0);
  free(buf);
  check_big(q, 5000);
  struct rec_response *r;
  for (int i = 0; i < 4; i++) /* past the decoded array: it grows */
    assert_int_equal(rec_pair_add_response(q, REC_SIDE_SHADOW, "more", &r), 0);
  assert_int_equal(q->nshadows, 9);
  assert_string_equal(q->shadows[8]->backend, "more");
  assert_string_equal(q->shadows[4]->body.sha256, SHA_ABC);
  rec_pair_free(q);
  rec_pair_free(p);
  rec_codec_free(c);
}

/* Prefetching a pair (small, in cache-sized blocks, with a big body of its
 * own) reads and changes nothing: the record is the same byte for byte. */
static void test_rec_pair_prefetch_changes_nothing(void **state) {
  (void)state;
  struct rec_mem *m;
  assert_int_equal(rec_mem_new(&m, 0), 0);
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_opts o = {.max_body = 70000};
  for (size_t body = 0; body <= 100000; body += 50000) {
    struct rec_pair *p;
    assert_int_equal(rec_pair_new_in(&p, m, &o, "c1", 1, "r"), 0);
    build_big(p, body);
    rec_pair_finish(p);
    uint8_t *before, *after;
    size_t blen, alen;
    assert_int_equal(rec_codec_encode(c, p, &before, &blen), 0);
    rec_pair_prefetch(p);
    assert_int_equal(rec_codec_encode(c, p, &after, &alen), 0);
    assert_int_equal(blen, alen);
    assert_memory_equal(before, after, blen);
    free(before);
    free(after);
    rec_pair_free(p);
  }
  rec_codec_free(c);
  rec_mem_unref(m);
}

static void *free_main(void *arg) {
  rec_pair_free(arg);
  return NULL;
}

/* Pairs built from a block cache and freed on another thread give their
 * blocks back to it; the cache outlives its owner's reference. */
static void test_rec_pair_arena_cache_other_thread(void **state) {
  (void)state;
  struct rec_mem *m;
  assert_int_equal(rec_mem_new(&m, 0), 0);
  struct rec_opts o = {.max_body = 64};
  struct rec_pair *p[8];
  for (int i = 0; i < 8; i++) {
    assert_int_equal(rec_pair_new_in(&p[i], m, &o, "c1", 1, "r"), 0);
    assert_int_equal(rec_pair_request_header(p[i], "a", 1, "b", 1), 0);
  }
  assert_int_equal(rec_mem_cached(m), 0);
  for (int i = 0; i < 4; i++) {
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_main, p[i]), 0);
    pthread_join(t, NULL);
  }
  assert_int_equal(rec_mem_cached(m), 4); /* one block each */
  struct rec_pair *again;
  assert_int_equal(rec_pair_new_in(&again, m, &o, "c2", 2, "r"), 0);
  assert_int_equal(rec_mem_cached(m), 3); /* taken from the cache */
  rec_pair_free(again);
  rec_mem_unref(m); /* the owner lets go first: the pairs still hold the cache */
  for (int i = 4; i < 8; i++) {
    assert_string_equal(p[i]->request.headers.v[0].value, "b");
    rec_pair_free(p[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rec_pair_redaction_default),
      cmocka_unit_test(test_rec_pair_arena_big_pair),
      cmocka_unit_test(test_rec_pair_prefetch_changes_nothing),
      cmocka_unit_test(test_rec_pair_arena_decoded),
      cmocka_unit_test(test_rec_pair_arena_cache_other_thread),
      cmocka_unit_test(test_rec_pair_kvs_set_and_headers),
      cmocka_unit_test(test_rec_pair_redaction_configured),
      cmocka_unit_test(test_rec_pair_body_cap),
      cmocka_unit_test(test_rec_pair_body_lazy_checksum),
      cmocka_unit_test(test_rec_pair_body_empty_and_zero_cap),
      cmocka_unit_test(test_rec_pair_lineage_parse),
      cmocka_unit_test(test_rec_pair_lineage_headers),
      cmocka_unit_test(test_rec_pair_request_and_device),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
