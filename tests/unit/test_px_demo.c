/* Unit tests for the demo backend's request and response model (proxy/px_demo_req.c): no I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "proxy/px_demo_int.h"

static const struct px_demo_opts opts = {.name = "legacy", .host = "127.0.0.1"};

static int knobs(const char *target, struct demo_knobs *k) {
  char err[128];
  return demo_knobs_parse(target, strlen(target), k, err, sizeof err);
}

static void test_px_demo_knobs(void **state) {
  (void)state;
  struct demo_knobs k;
  assert_int_equal(knobs("/api/checkout", &k), 0);
  assert_int_equal(k.size, -1);
  assert_int_equal(k.status, 0);
  assert_int_equal(knobs("/x?delay=500ms&status=503&size=50MiB&chunked=1&close=mid&drip=20"
                         "&echo=1&trailers=1&other=zz",
                         &k),
                   0);
  assert_int_equal(k.delay_ms, 500);
  assert_int_equal(k.status, 503);
  assert_int_equal(k.size, 50 * 1024 * 1024);
  assert_true(k.chunked && k.close_mid && k.echo && k.trailers);
  assert_int_equal(k.drip_ms, 20);
  assert_int_equal(knobs("/?delay=2s&size=64KiB&chunked=0", &k), 0);
  assert_int_equal(k.delay_ms, 2000);
  assert_int_equal(k.size, 65536);
  assert_false(k.chunked);
  assert_int_equal(knobs("/?delay=750", &k), 0);
  assert_int_equal(k.delay_ms, 750);
  char err[128] = "";
  const char *bad = "/?delay=soon";
  assert_int_equal(demo_knobs_parse(bad, strlen(bad), &k, err, sizeof err), CUT_ERR_INVALID);
  assert_non_null(strstr(err, "delay"));
  assert_int_equal(knobs("/?status=99", &k), CUT_ERR_INVALID);
  assert_int_equal(knobs("/?status=600", &k), CUT_ERR_INVALID);
  assert_int_equal(knobs("/?size=-1", &k), CUT_ERR_INVALID);
  assert_int_equal(knobs("/?size=10XB", &k), CUT_ERR_INVALID);
  assert_int_equal(knobs("/?close=end", &k), CUT_ERR_INVALID);
  assert_int_equal(knobs("/?close=start", &k), 0);
  assert_true(k.close_start && !k.close_mid);
  assert_int_equal(knobs("/?delay=99999999999s", &k), CUT_ERR_INVALID);
}

static void test_px_demo_json_escape(void **state) {
  (void)state;
  struct sbuf b = {0};
  const char s[] = "a\"b\\c\n\x01z";
  assert_int_equal(demo_buf_add_json(&b, s, sizeof s - 1), 0);
  assert_string_equal(b.p, "\"a\\\"b\\\\c\\u000a\\u0001z\"");
  sb_clear(&b);
  assert_null(b.p);
}

/* A GET with headers, as a frontend would fill it in. */
static void fill_req(struct demo_req *r, const char *target) {
  demo_req_reset(r);
  strcpy(r->method, "GET");
  assert_int_equal(demo_buf_add(&r->target, target, strlen(target)), 0);
  assert_int_equal(demo_req_header(r, "X-Device-Id", 11, "dev-1", 5), 0);
  assert_int_equal(demo_req_header(r, "x-request-id", 12, "r\"1", 3), 0);
  demo_req_head_done(r);
}

static void test_px_demo_default_json(void **state) {
  (void)state;
  struct demo_req r = {0};
  struct demo_resp resp = {0};
  fill_req(&r, "/api/checkout?a=1");
  assert_int_equal(demo_resp_build(&resp, &opts, &r), 0);
  assert_int_equal(resp.status, 200);
  assert_string_equal(resp.content_type, "application/json");
  assert_string_equal(resp.body.p,
                      "{\"backend\":\"legacy\",\"method\":\"GET\",\"path\":\"/api/checkout\","
                      "\"query\":\"a=1\",\"device\":\"dev-1\",\"request_id\":\"r\\\"1\"}\n");
  assert_int_equal(resp.total, resp.body.len);
  uint8_t out[512];
  size_t n = demo_resp_read(&resp, out, sizeof out);
  assert_int_equal(n, resp.total);
  assert_memory_equal(out, resp.body.p, n);
  assert_int_equal(demo_resp_state(&resp), DEMO_BODY_DONE);

  /* a bad knob answers 400 naming it */
  fill_req(&r, "/x?status=abc");
  assert_int_equal(demo_resp_build(&resp, &opts, &r), 0);
  assert_int_equal(resp.status, 400);
  assert_non_null(strstr(resp.body.p, "\"error\":\"bad value for knob status"));
  demo_req_clear(&r);
  demo_resp_free(&resp);
}

static void test_px_demo_size_drip_cut(void **state) {
  (void)state;
  struct demo_req r = {0};
  struct demo_resp resp = {0};
  uint8_t out[DEMO_CHUNK];
  static const char pattern[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-\n";

  fill_req(&r, "/?size=100000");
  assert_int_equal(demo_resp_build(&resp, &opts, &r), 0);
  assert_string_equal(resp.content_type, "application/octet-stream");
  uint64_t got = 0;
  while (demo_resp_state(&resp) == DEMO_BODY_MORE) {
    size_t n = demo_resp_read(&resp, out, sizeof out);
    assert_true(n > 0 && n <= sizeof out);
    assert_int_equal(out[0], pattern[got % 64]);
    got += n;
  }
  assert_int_equal(got, 100000);
  assert_int_equal(demo_resp_state(&resp), DEMO_BODY_DONE);

  /* drip: 10 pieces of 100 bytes, a wait between each */
  fill_req(&r, "/?size=1000&drip=5");
  assert_int_equal(demo_resp_build(&resp, &opts, &r), 0);
  int waits = 0;
  got = 0;
  for (;;) {
    enum demo_body_state st = demo_resp_state(&resp);
    if (st == DEMO_BODY_DONE) break;
    if (st == DEMO_BODY_WAIT) {
      waits++;
      demo_resp_next_piece(&resp);
      continue;
    }
    assert_int_equal(st, DEMO_BODY_MORE);
    size_t n = demo_resp_read(&resp, out, sizeof out);
    assert_int_equal(n, 100);
    got += n;
  }
  assert_int_equal(got, 1000);
  assert_int_equal(waits, 9);

  /* close=mid: half the announced body, then CUT */
  fill_req(&r, "/?size=1000&close=mid");
  assert_int_equal(demo_resp_build(&resp, &opts, &r), 0);
  assert_int_equal(resp.total, 1000);
  assert_int_equal(demo_resp_read(&resp, out, sizeof out), 500);
  assert_int_equal(demo_resp_state(&resp), DEMO_BODY_CUT);
  assert_int_equal(demo_resp_read(&resp, out, sizeof out), 0);

  /* HEAD: the length of the JSON, no body */
  fill_req(&r, "/");
  strcpy(r.method, "HEAD");
  assert_int_equal(demo_resp_build(&resp, &opts, &r), 0);
  assert_true(resp.total > 0);
  assert_int_equal(demo_resp_state(&resp), DEMO_BODY_DONE);
  demo_req_clear(&r);
  demo_resp_free(&resp);
}

#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void test_px_demo_echo(void **state) {
  (void)state;
  struct demo_req r = {0};
  struct demo_resp resp = {0};
  fill_req(&r, "/e?echo=1");
  assert_int_equal(demo_buf_add(&r.authority, "h:1", 3), 0);
  demo_req_body(&r, "ab", 2);
  demo_req_body(&r, "c", 1);
  assert_int_equal(demo_resp_build(&resp, &opts, &r), 0);
  assert_non_null(strstr(resp.body.p, "\"authority\":\"h:1\""));
  assert_non_null(strstr(resp.body.p, "\"headers\":[[\"x-device-id\",\"dev-1\"],"
                                      "[\"x-request-id\",\"r\\\"1\"]]"));
  assert_non_null(strstr(resp.body.p, "\"body_size\":3,\"body_sha256\":\"" SHA256_ABC "\""));
  /* the request model is reused for the next request on a connection */
  fill_req(&r, "/e?echo=1");
  assert_int_equal(demo_resp_build(&resp, &opts, &r), 0);
  assert_non_null(strstr(resp.body.p, "\"body_size\":0,\"body_sha256\":\"" SHA256_EMPTY "\""));
  demo_req_clear(&r);
  demo_resp_free(&resp);
}

static void test_px_demo_header_bound(void **state) {
  (void)state;
  struct demo_req r = {0};
  demo_req_reset(&r);
  char *big = malloc(DEMO_MAX_HEADERS);
  assert_non_null(big);
  memset(big, 'v', DEMO_MAX_HEADERS);
  assert_int_equal(demo_req_header(&r, "x-big", 5, big, DEMO_MAX_HEADERS), CUT_ERR_FULL);
  assert_int_equal(r.nhdrs, 0);
  assert_int_equal(demo_req_header(&r, "x-ok", 4, big, 1000), 0);
  assert_int_equal(r.nhdrs, 1);
  free(big);
  demo_req_clear(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_px_demo_knobs),        cmocka_unit_test(test_px_demo_json_escape),
      cmocka_unit_test(test_px_demo_default_json), cmocka_unit_test(test_px_demo_size_drip_cut),
      cmocka_unit_test(test_px_demo_echo),         cmocka_unit_test(test_px_demo_header_bound),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
