/* Unit tests for the pure parts of the proxy: route matching, header rewriting,
 * request ids, failure statuses, JSON escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "proxy/px_alog.h"
#include "proxy/px_forward.h"
#include "proxy/px_route.h"
#include "proxy/px_tls.h"

static void head_init(struct px_request_head *h, const char *method, const char *authority,
                      const char *path) {
  memset(h, 0, sizeof *h);
  h->method = strdup(method);
  h->authority = authority ? strdup(authority) : NULL;
  h->path = strdup(path);
  h->scheme = strdup("http");
  h->content_length = -1;
}

static void add(struct px_request_head *h, const char *n, const char *v) {
  assert_int_equal(px_headers_add(&h->headers, n, strlen(n), v, strlen(v)), 0);
}

static void test_px_route_match_order(void **state) {
  (void)state;
  char *get[] = {"GET"};
  struct cfg_header_match hm[] = {{"x-beta", "1"}};
  struct cfg_route routes[4] = {
      {.name = "beta", .path_prefix = "/api/", .headers = hm, .nheaders = 1},
      {.name = "exact", .path = "/api/health"},
      {.name = "api-get", .host = "api.example.com", .path_prefix = "/api/",
       .methods = {get, 1}},
      {.name = "default"},
  };
  struct cfg cfg = {.routes = routes, .nroutes = 4};
  struct px_request_head h;

  head_init(&h, "GET", "API.example.com:8443", "/api/users?id=1");
  assert_string_equal(px_route_find(&cfg, &h)->name, "api-get");
  add(&h, "X-Beta", "1");
  assert_string_equal(px_route_find(&cfg, &h)->name, "beta"); /* first match wins */
  px_request_head_clear(&h);

  head_init(&h, "GET", "other", "/api/health?verbose");
  assert_string_equal(px_route_find(&cfg, &h)->name, "exact"); /* query ignored for exact */
  px_request_head_clear(&h);

  head_init(&h, "GET", "other", "/api/healthz");
  assert_string_equal(px_route_find(&cfg, &h)->name, "default");
  px_request_head_clear(&h);

  head_init(&h, "POST", "api.example.com.", "/api/x");
  assert_string_equal(px_route_find(&cfg, &h)->name, "default"); /* method mismatch */
  px_request_head_clear(&h);

  head_init(&h, "GET", "[::1]:80", "/api/x");
  add(&h, "x-beta", "2");
  assert_string_equal(px_route_find(&cfg, &h)->name, "default"); /* header value mismatch */
  add(&h, "x-beta", "1");
  assert_string_equal(px_route_find(&cfg, &h)->name, "default"); /* the first field decides */
  px_request_head_clear(&h);

  cfg.nroutes = 3;
  head_init(&h, "GET", "nope", "/");
  assert_null(px_route_find(&cfg, &h));
  px_request_head_clear(&h);
}

static void test_px_route_host_forms(void **state) {
  (void)state;
  struct cfg_route r = {.name = "v6", .host = "::1"};
  struct px_request_head h;
  head_init(&h, "GET", "[::1]:8080", "/");
  assert_true(px_route_matches(&r, &h));
  px_request_head_clear(&h);
  head_init(&h, "GET", NULL, "/");
  assert_false(px_route_matches(&r, &h));
  px_request_head_clear(&h);
  struct cfg_header_match present[] = {{"x-device-id", NULL}};
  struct cfg_route r2 = {.name = "dev", .headers = present, .nheaders = 1};
  head_init(&h, "GET", "a", "/");
  assert_false(px_route_matches(&r2, &h));
  add(&h, "x-device-id", "");
  assert_true(px_route_matches(&r2, &h));
  px_request_head_clear(&h);
}

static void test_px_route_forward_headers(void **state) {
  (void)state;
  struct px_rng rng;
  px_rng_seed(&rng);
  struct px_request_head h;
  head_init(&h, "GET", "a", "/");
  add(&h, "Connection", "keep-alive, X-Secret");
  add(&h, "x-secret", "1");
  add(&h, "keep-alive", "timeout=5");
  add(&h, "te", "gzip");
  add(&h, "expect", "100-continue");
  add(&h, "x-forwarded-for", "10.0.0.1");
  add(&h, "x-forwarded-proto", "gopher");
  struct px_forward_info fi = {.client_ip = "127.0.0.1", .tls = 1, .h2 = 1,
                               .request_id_header = "x-request-id"};
  char id[72];
  assert_int_equal(px_forward_request(&h, &fi, &rng, id, sizeof id), 0);
  assert_null(px_headers_get(&h.headers, "connection"));
  assert_null(px_headers_get(&h.headers, "x-secret"));
  assert_null(px_headers_get(&h.headers, "keep-alive"));
  assert_null(px_headers_get(&h.headers, "te"));
  assert_null(px_headers_get(&h.headers, "expect"));
  assert_string_equal(px_headers_get(&h.headers, "x-forwarded-for")->value,
                      "10.0.0.1, 127.0.0.1");
  assert_string_equal(px_headers_get(&h.headers, "x-forwarded-proto")->value, "https");
  assert_string_equal(px_headers_get(&h.headers, "via")->value, "2 cutover");
  const struct px_header *rid = px_headers_get(&h.headers, "x-request-id");
  assert_non_null(rid);
  assert_int_equal(rid->valuelen, 36);
  assert_string_equal(rid->value, id);
  assert_int_equal(rid->value[14], '4');
  assert_true(strchr("89ab", rid->value[19]) != NULL);
  px_request_head_clear(&h);

  /* the client's request id is kept; TE: trailers survives */
  head_init(&h, "GET", "a", "/");
  add(&h, "X-Request-Id", "abc-123");
  add(&h, "te", "trailers");
  add(&h, "via", "1.0 edge");
  fi.tls = 0;
  fi.h2 = 0;
  assert_int_equal(px_forward_request(&h, &fi, &rng, id, sizeof id), 0);
  assert_string_equal(id, "abc-123");
  assert_int_equal(px_headers_del(&h.headers, "x-request-id"), 1);
  assert_non_null(px_headers_get(&h.headers, "te"));
  assert_string_equal(px_headers_get(&h.headers, "via")->value, "1.0 edge, 1.1 cutover");
  assert_string_equal(px_headers_get(&h.headers, "x-forwarded-proto")->value, "http");
  px_request_head_clear(&h);

  /* an empty request id is replaced (every copy of it); the fields added
   * come last, in a fixed order */
  head_init(&h, "GET", "a", "/");
  add(&h, "x-request-id", "");
  add(&h, "accept", "*/*");
  add(&h, "x-request-id", "second");
  add(&h, "Transfer-Encoding", "chunked");
  add(&h, "UPGRADE", "h2c");
  assert_int_equal(px_forward_request(&h, &fi, &rng, id, sizeof id), 0);
  assert_int_equal(strlen(id), 36);
  static const char *const order[] = {"accept", "x-forwarded-for", "x-forwarded-proto", "via",
                                      "x-request-id"};
  assert_int_equal(h.headers.n, 5);
  for (size_t i = 0; i < 5; i++)
    assert_string_equal(h.headers.v[i].name, order[i]);
  assert_string_equal(h.headers.v[4].value, id);
  size_t bytes = 0;
  for (size_t i = 0; i < h.headers.n; i++)
    bytes += h.headers.v[i].namelen + h.headers.v[i].valuelen + 32;
  assert_int_equal(h.headers.bytes, bytes);
  px_request_head_clear(&h);

  /* no client address: no X-Forwarded-For; a long Via value still appends */
  head_init(&h, "GET", "a", "/");
  char longvia[700];
  memset(longvia, 'v', sizeof longvia - 1);
  longvia[sizeof longvia - 1] = '\0';
  add(&h, "via", longvia);
  fi.client_ip = NULL;
  assert_int_equal(px_forward_request(&h, &fi, &rng, id, 8), 0);
  assert_int_equal(strlen(id), 7); /* truncated to the buffer */
  assert_null(px_headers_get(&h.headers, "x-forwarded-for"));
  const struct px_header *via = px_headers_get(&h.headers, "via");
  assert_int_equal(via->valuelen, sizeof longvia - 1 + 2 + 11);
  assert_string_equal(via->value + sizeof longvia - 1, ", 1.1 cutover");
  px_request_head_clear(&h);
}

/* Every Connection field counts, also when an earlier one removed a field
 * that came before it (the list of fields shifts under the scan). */
static void test_px_route_connection_fields(void **state) {
  (void)state;
  struct px_rng rng;
  px_rng_seed(&rng);
  struct px_request_head h;
  head_init(&h, "GET", "a", "/");
  add(&h, "x-first", "1");
  add(&h, "Connection", "x-first");
  add(&h, "Connection", "x-second");
  add(&h, "x-second", "2");
  add(&h, "accept", "*/*");
  struct px_forward_info fi = {.client_ip = "127.0.0.1", .request_id_header = "x-request-id"};
  char id[72];
  assert_int_equal(px_forward_request(&h, &fi, &rng, id, sizeof id), 0);
  assert_null(px_headers_get(&h.headers, "connection"));
  assert_null(px_headers_get(&h.headers, "x-first"));
  assert_null(px_headers_get(&h.headers, "x-second"));
  assert_non_null(px_headers_get(&h.headers, "accept"));
  px_request_head_clear(&h);

  /* a Connection field naming several earlier fields, then another one */
  head_init(&h, "GET", "a", "/");
  add(&h, "x-a", "1");
  add(&h, "x-b", "1");
  add(&h, "connection", "x-a, x-b");
  add(&h, "accept", "*/*");
  add(&h, "connection", "x-c");
  add(&h, "x-c", "1");
  assert_int_equal(px_forward_request(&h, &fi, &rng, id, sizeof id), 0);
  assert_null(px_headers_get(&h.headers, "x-a"));
  assert_null(px_headers_get(&h.headers, "x-b"));
  assert_null(px_headers_get(&h.headers, "x-c"));
  assert_non_null(px_headers_get(&h.headers, "accept"));
  px_request_head_clear(&h);
}

/* Hop-by-hop names match in any case, and only whole names. */
static void test_px_route_hop_names(void **state) {
  (void)state;
  static const char *const hop[] = {"connection", "Keep-Alive", "UPGRADE", "http2-settings",
                                    "Proxy-Connection", "transfer-ENCODING"};
  static const char *const not_hop[] = {"connectio", "connections", "keep-alivf", "te",
                                        "transfer-encodinh", "x-upgrade", ""};
  for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
    assert_true(px_header_is_hop(hop[i], strlen(hop[i])));
  for (size_t i = 0; i < sizeof not_hop / sizeof not_hop[0]; i++)
    assert_false(px_header_is_hop(not_hop[i], strlen(not_hop[i])));
}

/* Strings a producer marked as borrowed are left alone by the clear; the
 * others are freed (LeakSanitizer and ASan check both). */
static void test_px_route_head_borrowed(void **state) {
  (void)state;
  static char method[] = "GET", path[] = "/p";
  struct px_request_head h = {0};
  h.method = method;
  h.path = path;
  h.scheme = strdup("http");
  h.authority = strdup("example.com");
  h.borrowed = PX_HEAD_METHOD | PX_HEAD_PATH;
  add(&h, "accept", "*/*");
  struct px_request_head copy;
  assert_int_equal(px_request_head_copy(&copy, &h), 0);
  assert_int_equal(copy.borrowed, 0);
  assert_string_equal(copy.method, "GET");
  assert_ptr_not_equal(copy.method, method);
  px_request_head_clear(&h);
  assert_null(h.method);
  assert_int_equal(h.borrowed, 0);
  assert_string_equal(method, "GET");
  px_request_head_clear(&copy);
}

/* Fields keep name and value in one block: replacing a value, deleting and
 * clearing keep the list and its byte count right (ASan checks the frees). */
static void test_px_route_header_storage(void **state) {
  (void)state;
  struct px_headers h = {0};
  assert_int_equal(px_headers_add(&h, "X-One", 5, "a", 1), 0);
  assert_int_equal(px_headers_add(&h, "x-two", 5, "", 0), 0);
  assert_int_equal(px_headers_add(&h, "X-One", 5, "b", 1), 0);
  assert_string_equal(h.v[0].name, "x-one");
  assert_string_equal(h.v[1].value, "");
  assert_int_equal(h.bytes, 5 + 1 + 32 + 5 + 0 + 32 + 5 + 1 + 32);
  assert_int_equal(px_headers_set_value(&h, 1, "longer value", 12), 0);
  assert_string_equal(h.v[1].name, "x-two");
  assert_string_equal(h.v[1].value, "longer value");
  assert_int_equal(h.v[1].valuelen, 12);
  assert_int_equal(h.bytes, 5 + 1 + 32 + 5 + 12 + 32 + 5 + 1 + 32);
  assert_int_equal(px_headers_del(&h, "x-one"), 2);
  assert_int_equal(h.n, 1);
  assert_int_equal(h.bytes, 5 + 12 + 32);
  assert_string_equal(px_headers_get(&h, "x-two")->value, "longer value");
  px_headers_clear(&h);
  assert_int_equal(h.n, 0);
  assert_null(h.v);
}

static void test_px_route_uuid_unique(void **state) {
  (void)state;
  struct px_rng rng;
  px_rng_seed(&rng);
  char a[37], b[37];
  px_uuid4(&rng, a);
  px_uuid4(&rng, b);
  assert_int_equal(strlen(a), 36);
  assert_string_not_equal(a, b);
  assert_int_equal(a[8], '-');
  assert_int_equal(a[23], '-');
}

static void test_px_route_fail_status(void **state) {
  (void)state;
  assert_int_equal(px_fail_status(PX_FAIL_CONNECT), 502);
  assert_int_equal(px_fail_status(PX_FAIL_TLS), 502);
  assert_int_equal(px_fail_status(PX_FAIL_RESET), 502);
  assert_int_equal(px_fail_status(PX_FAIL_PROTOCOL), 502);
  assert_int_equal(px_fail_status(PX_FAIL_NO_HOST), 503);
  assert_int_equal(px_fail_status(PX_FAIL_TIMEOUT), 504);
  assert_string_equal(px_fail_name(PX_FAIL_TIMEOUT), "timeout");
}

static void test_px_route_json_escape(void **state) {
  (void)state;
  char buf[64];
  size_t o = 0;
  px_json_str(buf, sizeof buf, &o, "a\"b\\c\n\x01", 7);
  buf[o] = '\0';
  assert_string_equal(buf, "a\\\"b\\\\c\\u000a\\u0001");
  char small[4];
  o = 0;
  px_json_str(small, sizeof small, &o, "\n", 1); /* does not fit: nothing written */
  assert_int_equal(o, 0);
}

static void test_px_route_alpn(void **state) {
  (void)state;
  const unsigned char *out;
  unsigned char outlen;
  static const unsigned char both[] = "\x08http/1.1\x02h2";
  assert_int_equal(px_tls_alpn_pick(both, sizeof both - 1, &out, &outlen), 0);
  assert_int_equal(outlen, 2);
  assert_memory_equal(out, "h2", 2);
  static const unsigned char h1[] = "\x08http/1.1";
  assert_int_equal(px_tls_alpn_pick(h1, sizeof h1 - 1, &out, &outlen), 0);
  assert_int_equal(outlen, 8);
  static const unsigned char bad[] = "\x05spdy/";
  assert_int_equal(px_tls_alpn_pick(bad, sizeof bad - 1, &out, &outlen), -1);
  static const unsigned char trunc[] = "\x09h2";
  assert_int_equal(px_tls_alpn_pick(trunc, sizeof trunc - 1, &out, &outlen), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_px_route_match_order),
      cmocka_unit_test(test_px_route_host_forms),
      cmocka_unit_test(test_px_route_forward_headers),
      cmocka_unit_test(test_px_route_connection_fields),
      cmocka_unit_test(test_px_route_header_storage),
      cmocka_unit_test(test_px_route_hop_names),
      cmocka_unit_test(test_px_route_head_borrowed),
      cmocka_unit_test(test_px_route_uuid_unique),
      cmocka_unit_test(test_px_route_fail_status),
      cmocka_unit_test(test_px_route_json_escape),
      cmocka_unit_test(test_px_route_alpn),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
