/* Unit tests for dials/dial.c: bucketing vectors, request keys, decisions, labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <murmurhash.h>

#include "common/cut_err.h"
#include "dials/dial.h"
#include "dials/dial_int.h"
#include "test_dial_fixture.h"

/* The test vectors of docs/dials.md ("Test vectors"), computed there by an
 * independent Python implementation. Keep both tables identical. */
struct vec {
  const char *salt;
  const char *key;
  uint32_t h;
  uint32_t bucket;
};

static const struct vec vectors[] = {
    {"checkout-v2", "3f2b8c1e-6d4a-4f7e-9b1c-2a5d8e0f7c61", 3758427488u, 884274},
    {"checkout-v2", "", 47623597u, 976235},
    {"checkout-v2", "device-1", 1912501212u, 125012},
    {"checkout-v2", "device-2", 2318026545u, 450265},
    {"search", "device-1", 4057900319u, 199003},
    {"", "device-1", 1985031438u, 380314},
    {"", "", 723937430u, 309374},
    {"checkout-v2", "caf\xc3\xa9", 2351451098u, 984510},
    {"checkout-v2", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 1219471034u, 344710},
    {"\xc3\xbcn\xc3\xaf" "code-salt", "\xf0\x9f\x9a\x80", 4018939362u, 629393},
    {"checkout-v2", "a b c", 3283484552u, 524845},
    {"canary-eu", "00000000-0000-0000-0000-000000000000", 2937701957u, 577019},
};

static void test_dial_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    const struct vec *v = &vectors[i];
    uint32_t h = dial_hash3(v->salt, strlen(v->salt), ":", 1, v->key, strlen(v->key));
    assert_int_equal(h, v->h);
    assert_int_equal(dial_bucket_of_hash(h), v->bucket);
    assert_int_equal(dial_bucket(v->salt, strlen(v->salt), v->key, strlen(v->key)), v->bucket);
  }
}

/* The 600-byte key of the vector table exercises the streaming path. */
static void test_dial_vectors_long_key(void **state) {
  (void)state;
  char key[601];
  memset(key, 'a', 600);
  key[600] = '\0';
  assert_int_equal(dial_hash3("checkout-v2", 11, ":", 1, key, 600), 1496316671u);
  assert_int_equal(dial_bucket("checkout-v2", 11, key, 600), 713166);
}

/* The streaming implementation agrees with libmurmurhash at every length and split. */
static void test_dial_stream_matches_library(void **state) {
  (void)state;
  char buf[700];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)(i * 131 + 7);
  for (size_t n = 0; n < sizeof buf; n += 13) {
    uint32_t want[1];
    lmmh_x86_32(buf, (unsigned)n, 0, want);
    size_t a = n / 3, b = n / 2;
    const char *parts[3] = {buf, buf + a, buf + b};
    size_t lens[3] = {a, b - a, n - b};
    assert_int_equal(dial_murmur3_stream(parts, lens, 3), want[0]);
    assert_int_equal(dial_hash3(buf, a, buf + a, b - a, buf + b, n - b), want[0]);
  }
}

/* For integer p, bucket < p*10000 exactly when Unleash's h % 100 + 1 <= p. */
static void test_dial_unleash_equivalence(void **state) {
  (void)state;
  char key[32];
  for (int i = 0; i < 20000; i++) {
    int n = snprintf(key, sizeof key, "user-%d", i);
    uint32_t h = dial_hash3("flag", 4, ":", 1, key, (size_t)n);
    uint32_t b = dial_bucket_of_hash(h);
    assert_true(b < DIAL_BUCKETS);
    for (uint32_t p = 0; p <= 100; p += 7)
      assert_int_equal(dial_in(b, p * 10000), h % 100 + 1 <= p);
  }
}

static void test_dial_key_header(void **state) {
  (void)state;
  struct fx_req r;
  fx_req_init(&r, "/");
  fx_req_add(&r, "X-Device-ID", "  dev 1\t");
  struct cfg_key k = fx_key(CFG_KEY_HEADER, "x-device-id");
  struct dial_slice v;
  assert_int_equal(dial_request_key(&r.req, &k, &v), 1);
  assert_int_equal(v.len, 5);
  assert_memory_equal(v.p, "dev 1", 5);
  struct cfg_key other = fx_key(CFG_KEY_HEADER, "x-other");
  assert_int_equal(dial_request_key(&r.req, &other, &v), 0);
  fx_req_init(&r, "/");
  fx_req_add(&r, "x-device-id", "   ");
  assert_int_equal(dial_request_key(&r.req, &k, &v), 0);
  struct cfg_key rnd = {CFG_KEY_RANDOM, NULL, "random"};
  assert_int_equal(dial_request_key(&r.req, &rnd, &v), 0);
}

static void test_dial_key_cookie(void **state) {
  (void)state;
  struct fx_req r;
  struct dial_slice v;
  struct cfg_key k = fx_key(CFG_KEY_COOKIE, "did");
  fx_req_init(&r, "/");
  fx_req_add(&r, "cookie", "a=1; b=2");
  fx_req_add(&r, "x-device-id", "z");
  fx_req_add(&r, "cookie", "xdid=no;did=\"abc-1\" ; c=3");
  assert_int_equal(dial_request_key(&r.req, &k, &v), 1);
  assert_int_equal(v.len, 5);
  assert_memory_equal(v.p, "abc-1", 5);
  struct cfg_key b = fx_key(CFG_KEY_COOKIE, "b");
  assert_int_equal(dial_request_key(&r.req, &b, &v), 1);
  assert_memory_equal(v.p, "2", 1);
  assert_int_equal(v.len, 1);
  /* names are case-sensitive; valueless pairs and empty values are absent */
  struct cfg_key up = fx_key(CFG_KEY_COOKIE, "DID");
  assert_int_equal(dial_request_key(&r.req, &up, &v), 0);
  fx_req_init(&r, "/");
  fx_req_add(&r, "cookie", "did; did=; x=1");
  assert_int_equal(dial_request_key(&r.req, &k, &v), 0);
}

static void test_dial_key_query(void **state) {
  (void)state;
  struct fx_req r;
  struct dial_slice v;
  struct cfg_key k = fx_key(CFG_KEY_QUERY, "device");
  fx_req_init(&r, "/a?x=1&device=abc&device=second");
  assert_int_equal(dial_request_key(&r.req, &k, &v), 1);
  assert_int_equal(v.len, 3);
  assert_memory_equal(v.p, "abc", 3);
  fx_req_init(&r, "/a?dev%69ce=caf%C3%A9+x%zz%4#frag&device=no");
  assert_int_equal(dial_request_key(&r.req, &k, &v), 1);
  assert_int_equal(v.len, 12);
  assert_memory_equal(v.p, "caf\xc3\xa9 x%zz%4", 12);
  fx_req_init(&r, "/a#?device=1");
  assert_int_equal(dial_request_key(&r.req, &k, &v), 0);
  fx_req_init(&r, "/a?device&device=");
  assert_int_equal(dial_request_key(&r.req, &k, &v), 0);
  /* a value that does not fit the caller's buffer counts as absent */
  char small[4];
  fx_req_init(&r, "/a?device=%41%41%41%41%41");
  assert_int_equal(dial_request_key_buf(&r.req, &k, small, sizeof small, &v), 0);
  char ok[5];
  assert_int_equal(dial_request_key_buf(&r.req, &k, ok, sizeof ok, &v), 1);
  assert_int_equal(v.len, 5);
  assert_memory_equal(v.p, "AAAAA", 5);
}

/* Random bytes in paths and cookies never crash or read out of bounds (ASan
 * builds check the latter); a found value always lies inside its source or
 * the caller's buffer. */
static void test_dial_key_garbage(void **state) {
  (void)state;
  static const char alphabet[] = "ab=&;%+?#\" 2fA\t\xc3";
  uint64_t x = 12345;
  char *path = malloc(64), *cookie = malloc(64);
  char buf[16];
  struct cfg_key q = fx_key(CFG_KEY_QUERY, "a"), c = fx_key(CFG_KEY_COOKIE, "a");
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)(i % 64);
    for (size_t j = 0; j < n; j++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      path[j] = alphabet[(x >> 33) % (sizeof alphabet - 1)];
      cookie[j] = alphabet[(x >> 40) % (sizeof alphabet - 1)];
    }
    struct fx_req r;
    fx_req_init(&r, "/");
    r.req.path = (struct dial_slice){path, n};
    r.h[0].name = fx_s("cookie");
    r.h[0].value = (struct dial_slice){cookie, n};
    r.req.nheaders = 1;
    struct dial_slice v;
    if (dial_request_key_buf(&r.req, &q, buf, sizeof buf, &v)) {
      assert_true(v.len > 0);
      assert_true((v.p >= path && v.p + v.len <= path + n) ||
                  (v.p >= buf && v.p + v.len <= buf + sizeof buf));
    }
    if (dial_request_key(&r.req, &c, &v)) {
      assert_true(v.len > 0);
      assert_true(v.p >= cookie && v.p + v.len <= cookie + n);
    }
  }
  free(path);
  free(cookie);
}

static void decide(struct fixture *f, size_t route, struct fx_req *r, struct dial_decision *d) {
  assert_int_equal(dial_decide(&f->cfg, NULL, &f->routes[route], &r->req, 1000, d), 0);
}

static void test_dial_decide_dial(void **state) {
  (void)state;
  struct fixture f;
  fx_init(&f);
  struct fx_req r;
  struct dial_decision d;
  char buf[128];
  /* device-1 is bucket 125012: out at 5%, in at 12.5013% */
  fx_req_init(&r, "/");
  fx_req_add(&r, "x-device-id", "device-1");
  decide(&f, 0, &r, &d);
  assert_int_equal(d.backend_index, B_OLD);
  assert_int_equal(d.via, DIAL_VIA_DIAL);
  assert_string_equal(d.arm, "old");
  assert_string_equal(d.reason, "out-of-dial");
  assert_int_equal(d.bucket, 125012);
  dial_decision_format(&d, buf, sizeof buf);
  assert_string_equal(buf, "dial=checkout-v2;arm=old;bucket=125012;reason=out-of-dial");
  f.dials[0].ppm = 125013;
  decide(&f, 0, &r, &d);
  assert_int_equal(d.backend_index, B_NEW);
  assert_string_equal(d.arm, "new");
  assert_string_equal(d.reason, "in-dial");
  f.dials[0].ppm = 125012;
  decide(&f, 0, &r, &d);
  assert_int_equal(d.backend_index, B_OLD);
  /* the data center's own percentage wins over the global one */
  f.dials[0].ppm = 1000000;
  f.cfg.datacenter = "eu-west";
  decide(&f, 0, &r, &d);
  assert_int_equal(d.backend_index, B_OLD);
  assert_int_equal(dial_effective_ppm(&f.cfg, NULL, 0), 20000);
  f.cfg.datacenter = "us-east";
  decide(&f, 0, &r, &d);
  assert_int_equal(d.backend_index, B_NEW);
}

static void test_dial_decide_no_key(void **state) {
  (void)state;
  struct fixture f;
  fx_init(&f);
  f.dials[0].ppm = 1000000;
  struct fx_req r;
  struct dial_decision d;
  char buf[128];
  fx_req_init(&r, "/");
  fx_req_add(&r, "x-other", "device-1");
  decide(&f, 0, &r, &d);
  assert_int_equal(d.backend_index, B_OLD);
  assert_int_equal(d.via, DIAL_VIA_DEFAULT);
  assert_string_equal(d.reason, "no-key");
  assert_string_equal(d.name, "checkout-v2");
  dial_decision_format(&d, buf, sizeof buf);
  assert_string_equal(buf, "dial=checkout-v2;reason=no-key");
  /* plain route */
  decide(&f, 3, &r, &d);
  assert_int_equal(d.backend_index, B_OLD);
  assert_null(d.name);
  dial_decision_format(&d, buf, sizeof buf);
  assert_string_equal(buf, "reason=default");
  /* a random key always has a bucket */
  f.dials[0].key = (struct cfg_key){CFG_KEY_RANDOM, NULL, "random"};
  decide(&f, 0, &r, &d);
  assert_int_equal(d.backend_index, B_NEW);
  assert_string_equal(d.reason, "in-dial");
  assert_int_equal(dial_decide(NULL, NULL, &f.routes[0], &r.req, 0, &d), CUT_ERR_INVALID);
}

static void test_dial_decide_salt(void **state) {
  (void)state;
  struct fixture f;
  fx_init(&f);
  struct fx_req r;
  struct dial_decision d;
  f.routes[0].dial_index = 1; /* "search", cookie did, salt "search-salt" */
  f.routes[0].dial = "search";
  fx_req_init(&r, "/");
  fx_req_add(&r, "cookie", "did=device-1");
  decide(&f, 0, &r, &d);
  assert_int_equal(d.bucket, dial_bucket("search-salt", 11, "device-1", 8));
}

static void test_dial_format_truncates(void **state) {
  (void)state;
  struct dial_decision d = {.via = DIAL_VIA_DIAL, .name_kind = DIAL_VIA_DIAL, .name = "checkout",
                            .arm = "new", .bucket = 7, .reason = "in-dial"};
  char buf[12];
  size_t n = dial_decision_format(&d, buf, sizeof buf);
  assert_int_equal(n, 11);
  assert_string_equal(buf, "dial=checko");
  assert_int_equal(dial_decision_format(&d, buf, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dial_vectors),
      cmocka_unit_test(test_dial_vectors_long_key),
      cmocka_unit_test(test_dial_stream_matches_library),
      cmocka_unit_test(test_dial_unleash_equivalence),
      cmocka_unit_test(test_dial_key_header),
      cmocka_unit_test(test_dial_key_cookie),
      cmocka_unit_test(test_dial_key_query),
      cmocka_unit_test(test_dial_key_garbage),
      cmocka_unit_test(test_dial_decide_dial),
      cmocka_unit_test(test_dial_decide_no_key),
      cmocka_unit_test(test_dial_decide_salt),
      cmocka_unit_test(test_dial_format_truncates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
