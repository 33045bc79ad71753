/* Unit tests for replay/rec_avro: canonical form, fingerprint, single-object round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "replay/rec_avro.h"
#include "replay/rec_avro_int.h"

/* Computed independently (tests/e2e/test_rec_kafka.py checks it against python3-avro). */
#define PAIR_FINGERPRINT 0x2a31ba373a3065b2ULL

static void canon_is(const char *schema, const char *want) {
  char *got = NULL;
  char err[128] = "";
  int rc = rec_schema_canonical(schema, strlen(schema), &got, err, sizeof err);
  if (rc)
    fail_msg("canonical(%s): %s", schema, err);
  assert_string_equal(got, want);
  free(got);
}

static void test_rec_avro_canonical_form(void **state) {
  (void)state;
  canon_is("\"int\"", "\"int\"");
  canon_is("{\"type\": \"long\", \"logicalType\": \"timestamp-micros\"}", "\"long\"");
  canon_is("[\"null\", {\"type\":\"string\"}]", "[\"null\",\"string\"]");
  canon_is("{\"type\":\"fixed\",\"size\":16,\"name\":\"md5\",\"namespace\":\"x.y\",\"doc\":\"d\"}",
           "{\"name\":\"x.y.md5\",\"type\":\"fixed\",\"size\":16}");
  canon_is("{\"type\":\"enum\",\"name\":\"a.b.E\",\"namespace\":\"ignored\",\"symbols\":[\"A\",\"B\"],"
           "\"aliases\":[\"F\"],\"default\":\"A\"}",
           "{\"name\":\"a.b.E\",\"type\":\"enum\",\"symbols\":[\"A\",\"B\"]}");
  /* Nested names inherit the enclosing namespace; a second use is a reference. */
  canon_is("{\"fields\":[{\"name\":\"f\",\"type\":{\"type\":\"record\",\"name\":\"In\",\"fields\":[]},"
           "\"default\":{}},{\"name\":\"g\",\"type\":{\"type\":\"array\",\"items\":\"In\"}},"
           "{\"name\":\"h\",\"type\":{\"type\":\"map\",\"values\":\"bytes\"}}],"
           "\"name\":\"R\",\"namespace\":\"n\",\"type\":\"record\"}",
           "{\"name\":\"n.R\",\"type\":\"record\",\"fields\":[{\"name\":\"f\",\"type\":{\"name\":\"n.In\","
           "\"type\":\"record\",\"fields\":[]}},{\"name\":\"g\",\"type\":{\"type\":\"array\",\"items\":"
           "\"n.In\"}},{\"name\":\"h\",\"type\":{\"type\":\"map\",\"values\":\"bytes\"}}]}");
  char *out = NULL;
  assert_int_equal(rec_schema_canonical("{\"type\":", 8, &out, NULL, 0), CUT_ERR_PARSE);
  assert_int_equal(rec_schema_canonical("{\"type\":\"record\"}", 17, &out, NULL, 0), CUT_ERR_PARSE);
  assert_null(out);
}

static void test_rec_avro_fingerprint(void **state) {
  (void)state;
  /* Test vectors of the Avro specification's CRC-64-AVRO. */
  assert_true(rec_rabin64("\"int\"", 5) == 0x7275d51a3f395c8fULL);
  assert_true(rec_rabin64("\"null\"", 6) == 0x63dd24e7cc258f8aULL);
  assert_true(rec_schema_fingerprint() == PAIR_FINGERPRINT);
  uint8_t h[REC_SOE_HEADER_LEN];
  rec_soe_header(h);
  const uint8_t want[REC_SOE_HEADER_LEN] = {0xC3, 0x01, 0xb2, 0x65, 0x30, 0x3a, 0x37, 0xba, 0x31, 0x2a};
  assert_memory_equal(h, want, sizeof want);
  size_t len;
  const char *text = rec_schema_text_get(&len);
  assert_true(len > 100);
  assert_int_equal(strlen(text), len);
  assert_non_null(strstr(text, "timestamp-micros")); /* the exact shipped text, doc and all */
}

static struct rec_pair *sample_pair(const struct rec_opts *o) {
  struct rec_pair *p;
  struct rec_response *r;
  assert_int_equal(rec_pair_new(&p, o, "req-1", 1700000000123456LL, "api"), 0);
  assert_int_equal(rec_pair_set_request(p, "POST", "example.com", "/v1/items?id=7"), 0);
  assert_int_equal(rec_pair_request_header(p, "content-type", 12, "application/json", 16), 0);
  assert_int_equal(rec_pair_request_header(p, "authorization", 13, "Bearer s3cret", 13), 0);
  assert_int_equal(rec_pair_request_body(p, (const uint8_t *)"{\"a\":1}", 7), 0);
  assert_int_equal(rec_pair_decision_set(p, "via", "dial"), 0);
  assert_int_equal(rec_pair_decision_set(p, "bucket", "4711"), 0);
  assert_int_equal(rec_pair_set_device_key(p, "dev-9", 5), 0);
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_PRIMARY, "old", &r), 0);
  assert_int_equal(rec_response_set_status(p, r, 200, "127.0.0.1:9001"), 0);
  assert_int_equal(rec_response_header(p, r, "x-lineage", 9, "catalog=v812;streams=9f3a0c", 27), 0);
  assert_int_equal(rec_response_body(p, r, (const uint8_t *)"hello world", 11), 0);
  assert_int_equal(rec_response_finish(p, r, 1500, NULL), 0);
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_SHADOW, "new", &r), 0);
  assert_int_equal(rec_response_set_status(p, r, 0, NULL), 0);
  assert_int_equal(rec_response_finish(p, r, 5000000, "timeout"), 0);
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_SHADOW, "newer", &r), 0);
  assert_int_equal(rec_response_set_status(p, r, 503, "[::1]:9003"), 0);
  assert_int_equal(rec_response_body(p, r, (const uint8_t *)"unavailable", 11), 0);
  assert_int_equal(rec_response_finish(p, r, 900, NULL), 0);
  return p;
}

static void test_rec_avro_round_trip(void **state) {
  (void)state;
  char *lin[] = {"x-lineage"};
  struct cfg_strlist lineage = {lin, 1};
  struct rec_opts o = {.max_body = 5, .lineage = &lineage};
  struct rec_codec *c;
  char err[256];
  assert_int_equal(rec_codec_new(&c, err, sizeof err), 0);
  struct rec_pair *p = sample_pair(&o);
  uint8_t *buf;
  size_t len;
  assert_int_equal(rec_codec_encode(c, p, &buf, &len), 0);
  assert_true(len > REC_SOE_HEADER_LEN);
  assert_int_equal(buf[0], 0xC3);
  assert_int_equal(buf[1], 0x01);
  const char *id;
  size_t idlen;
  assert_int_equal(rec_binary_correlation_id(buf + 10, len - 10, &id, &idlen), 0);
  assert_int_equal(idlen, 5);
  assert_memory_equal(id, "req-1", 5);

  struct rec_pair *q;
  assert_int_equal(rec_codec_decode(c, buf, len, &q), 0);
  assert_string_equal(q->correlation_id, "req-1");
  assert_true(q->time_us == 1700000000123456LL);
  assert_int_equal(q->kind, REC_KIND_PAIR);
  assert_string_equal(q->source, "proxy");
  assert_string_equal(q->route, "api");
  assert_string_equal(rec_kvs_get(&q->decision, "bucket"), "4711");
  assert_string_equal(q->device_key, "dev-9");
  assert_string_equal(q->request.method, "POST");
  assert_string_equal(q->request.path, "/v1/items");
  assert_string_equal(q->request.query, "id=7");
  assert_int_equal(q->request.headers.n, 2);
  assert_string_equal(q->request.headers.v[1].value, REC_REDACTED);
  assert_int_equal(q->request.body.len, 5);
  assert_memory_equal(q->request.body.data, "{\"a\":", 5);
  assert_true(q->request.body.truncated);
  assert_int_equal(q->request.body.size, 7);
  assert_non_null(q->primary);
  assert_int_equal(q->primary->status, 200);
  assert_string_equal(q->primary->host, "127.0.0.1:9001");
  assert_string_equal(q->primary->body.sha256, p->primary->body.sha256);
  assert_int_equal(q->primary->body.size, 11);
  assert_string_equal(rec_kvs_get(&q->primary->lineage, "streams"), "9f3a0c");
  assert_null(q->primary->error);
  assert_int_equal(q->nshadows, 2);
  assert_string_equal(q->shadows[0]->error, "timeout");
  assert_int_equal(q->shadows[0]->status, 0);
  assert_int_equal(q->shadows[0]->latency_us, 5000000);
  assert_int_equal(q->shadows[0]->body.len, 0);
  assert_string_equal(q->shadows[1]->backend, "newer");
  assert_int_equal(q->shadows[1]->status, 503);
  assert_null(q->primary_repeat);

  /* Re-encoding the decoded pair gives the same bytes; the codec's value is reset. */
  uint8_t *buf2;
  size_t len2;
  assert_int_equal(rec_codec_encode(c, q, &buf2, &len2), 0);
  assert_int_equal(len2, len);
  assert_memory_equal(buf2, buf, len);
  free(buf2);

  /* Wrong magic, wrong fingerprint, truncated body. */
  buf[1] = 0x02;
  struct rec_pair *bad = NULL;
  assert_int_equal(rec_codec_decode(c, buf, len, &bad), CUT_ERR_PARSE);
  buf[1] = 0x01;
  buf[5] ^= 1;
  assert_int_equal(rec_codec_decode(c, buf, len, &bad), CUT_ERR_UNSUPPORTED);
  buf[5] ^= 1;
  /* Every truncation is rejected before avro-c reads it (no leak, no crash). */
  for (size_t cut = REC_SOE_HEADER_LEN; cut < len; cut++)
    assert_int_equal(rec_codec_decode(c, buf, cut, &bad), CUT_ERR_AVRO);
  assert_null(bad);
  /* A corrupt length (huge string) is rejected too. */
  uint8_t *evil = malloc(len);
  memcpy(evil, buf, len);
  evil[REC_SOE_HEADER_LEN] = 0xfe; /* correlation_id length: a huge varint */
  evil[REC_SOE_HEADER_LEN + 1] = 0xff;
  assert_int_equal(rec_codec_decode(c, evil, len, &bad), CUT_ERR_AVRO);
  free(evil);
  free(buf);
  rec_pair_free(q);
  rec_pair_free(p);
  rec_codec_free(c);
}

static void test_rec_avro_minimal_pair(void **state) {
  (void)state;
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_pair *p, *q;
  assert_int_equal(rec_pair_new(&p, NULL, "x", 0, NULL), 0);
  uint8_t *buf;
  size_t len;
  assert_int_equal(rec_codec_encode(c, p, &buf, &len), 0);
  assert_int_equal(rec_codec_decode(c, buf, len, &q), 0);
  assert_string_equal(q->correlation_id, "x");
  assert_null(q->primary);
  assert_null(q->device_key);
  assert_int_equal(q->nshadows, 0);
  assert_int_equal(q->request.body.len, 0);
  free(buf);
  rec_pair_free(q);
  rec_pair_free(p);
  rec_codec_free(c);
  rec_codec_free(NULL);
}

/* The worked example of docs/recording.md, byte for byte (python3-avro encodes the same). */
static void test_rec_avro_worked_example(void **state) {
  (void)state;
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, NULL, "c1", 1, "r"), 0);
  assert_int_equal(rec_pair_set_request(p, "GET", "a", "/"), 0);
  uint8_t *buf;
  size_t len;
  assert_int_equal(rec_codec_encode(c, p, &buf, &len), 0);
  const uint8_t want[] = {0xC3, 0x01, 0xB2, 0x65, 0x30, 0x3A, 0x37, 0xBA, 0x31, 0x2A, 0x04,
                          0x63, 0x31, 0x02, 0x00, 0x0A, 0x70, 0x72, 0x6F, 0x78, 0x79, 0x02,
                          0x72, 0x00, 0x00, 0x06, 0x47, 0x45, 0x54, 0x02, 0x61, 0x02, 0x2F,
                          0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  assert_int_equal(len, sizeof want);
  assert_memory_equal(buf, want, sizeof want);
  free(buf);
  rec_pair_free(p);
  rec_codec_free(c);
}

/* The direct encoder writes exactly what avro-c writes from the embedded schema. */
static void same_bytes(struct rec_codec *c, struct rec_pair *p) {
  uint8_t *a, *b;
  size_t al, bl;
  assert_int_equal(rec_codec_encode(c, p, &a, &al), 0);
  assert_int_equal(rec_codec_encode_generic(c, p, &b, &bl), 0);
  assert_int_equal(al, bl);
  assert_memory_equal(a, b, al);
  struct rec_pair *q;
  assert_int_equal(rec_codec_decode(c, a, al, &q), 0);
  assert_string_equal(q->correlation_id, p->correlation_id);
  rec_pair_free(q);
  free(a);
  free(b);
}

/* The reusing encoder gives the same bytes as the allocating one, keeps its
 * buffer across records, and gives back a buffer a big record left. */
static void test_rec_avro_encode_reuse(void **state) {
  (void)state;
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_opts o = {.max_body = 1 << 20};
  const uint8_t *r1, *r2;
  size_t l1, l2, la;
  uint8_t *a;
  struct rec_pair *p = sample_pair(&o);
  assert_int_equal(rec_codec_encode(c, p, &a, &la), 0);
  assert_int_equal(rec_codec_encode_reuse(c, p, &r1, &l1), 0);
  assert_int_equal(l1, la);
  assert_memory_equal(r1, a, la);
  assert_int_equal(rec_codec_encode_reuse(c, p, &r2, &l2), 0);
  assert_ptr_equal(r1, r2); /* the same buffer, no new allocation */
  assert_int_equal(l2, la);
  free(a);
  rec_pair_free(p);
  static uint8_t big[300000];
  assert_int_equal(rec_pair_new(&p, &o, "big", 1, "r"), 0);
  assert_int_equal(rec_pair_request_body(p, big, sizeof big), 0);
  assert_int_equal(rec_codec_encode_reuse(c, p, &r1, &l1), 0);
  assert_true(l1 > sizeof big);
  rec_pair_free(p);
  p = sample_pair(&o);
  assert_int_equal(rec_codec_encode_reuse(c, p, &r2, &l2), 0);
  assert_int_equal(l2, la); /* a fresh, small buffer after the big one */
  rec_pair_free(p);
  rec_codec_free(c);
}

static void test_rec_avro_direct_encoder(void **state) {
  (void)state;
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, NULL, "", 0, NULL), 0);
  same_bytes(c, p); /* everything empty */
  rec_pair_free(p);

  char *lin[] = {"x-lineage"};
  struct cfg_strlist lineage = {lin, 1};
  struct rec_opts o = {.max_body = 100000, .lineage = &lineage, .source = "client"};
  p = sample_pair(&o);
  same_bytes(c, p);
  rec_pair_free(p);
  p = sample_pair(&o);
  /* long strings and counts take multi-byte varints; negative numbers zigzag */
  char longv[300];
  memset(longv, 'v', sizeof longv - 1);
  longv[sizeof longv - 1] = '\0';
  for (int i = 0; i < 70; i++)
    assert_int_equal(rec_pair_request_header(p, "x-many", 6, longv, strlen(longv)), 0);
  static uint8_t big[70000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (uint8_t)(i * 7);
  assert_int_equal(rec_pair_request_body(p, big, sizeof big), 0);
  p->time_us = -1234567890123LL;
  p->kind = REC_KIND_SHADOW;
  assert_int_equal(rec_pair_decision_set(p, "reason", "caf\xc3\xa9 \xe2\x9c\x93"), 0);
  struct rec_response *r;
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_PRIMARY_REPEAT, "old", &r), 0);
  assert_int_equal(rec_response_set_status(p, r, 599, longv), 0);
  assert_int_equal(rec_response_finish(p, r, -5, "reset"), 0);
  same_bytes(c, p);
  rec_pair_free(p);
  rec_codec_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rec_avro_canonical_form),
      cmocka_unit_test(test_rec_avro_fingerprint),
      cmocka_unit_test(test_rec_avro_round_trip),
      cmocka_unit_test(test_rec_avro_encode_reuse),
      cmocka_unit_test(test_rec_avro_minimal_pair),
      cmocka_unit_test(test_rec_avro_worked_example),
      cmocka_unit_test(test_rec_avro_direct_encoder),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
