/* Unit tests for replay/rec_px: pairs filled from proxy message heads and decisions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "replay/rec_px.h"

static void test_rec_px_heads(void **state) {
  (void)state;
  char *lin[] = {"x-lineage"};
  struct cfg_strlist lineage = {lin, 1};
  struct rec_opts o = {.max_body = 8, .lineage = &lineage};
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, &o, "id", 1, "r"), 0);
  struct px_request_head req = {.method = "POST", .scheme = "http", .authority = "example.com",
                                .path = "/a?b=c", .content_length = -1};
  assert_int_equal(px_headers_add(&req.headers, "Cookie", 6, "sid=1", 5), 0);
  assert_int_equal(px_headers_add(&req.headers, "accept", 6, "*/*", 3), 0);
  assert_int_equal(rec_pair_request_head(p, &req), 0);
  assert_string_equal(p->request.method, "POST");
  assert_string_equal(p->request.path, "/a");
  assert_string_equal(p->request.query, "b=c");
  assert_int_equal(p->request.headers.n, 2);
  assert_string_equal(p->request.headers.v[0].key, "cookie");
  assert_string_equal(p->request.headers.v[0].value, REC_REDACTED);
  px_headers_clear(&req.headers);

  struct px_response_head resp = {.status = 201, .content_length = -1};
  assert_int_equal(px_headers_add(&resp.headers, "x-lineage", 9, "a=1;b=2", 7), 0);
  struct rec_response *r;
  assert_int_equal(rec_pair_add_response(p, REC_SIDE_SHADOW, "new", &r), 0);
  assert_int_equal(rec_response_head(p, r, &resp, "10.0.0.1:80"), 0);
  assert_int_equal(r->status, 201);
  assert_string_equal(r->host, "10.0.0.1:80");
  assert_string_equal(rec_kvs_get(&r->lineage, "b"), "2");
  px_headers_clear(&resp.headers);
  rec_pair_free(p);
}

static void test_rec_px_decision_and_fail(void **state) {
  (void)state;
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, NULL, "id", 1, "r"), 0);
  struct dial_decision d = {.via = DIAL_VIA_DIAL, .name = "checkout-v2", .arm = "new",
                            .bucket = 41234, .reason = "in-dial"};
  assert_int_equal(rec_pair_decision(p, &d), 0);
  assert_string_equal(rec_kvs_get(&p->decision, "via"), "dial");
  assert_string_equal(rec_kvs_get(&p->decision, "name"), "checkout-v2");
  assert_string_equal(rec_kvs_get(&p->decision, "arm"), "new");
  assert_string_equal(rec_kvs_get(&p->decision, "bucket"), "41234");
  assert_string_equal(rec_kvs_get(&p->decision, "reason"), "in-dial");
  rec_pair_free(p);
  assert_int_equal(rec_pair_new(&p, NULL, "id", 1, "r"), 0);
  struct dial_decision def = {.via = DIAL_VIA_DEFAULT};
  assert_int_equal(rec_pair_decision(p, &def), 0);
  assert_int_equal(p->decision.n, 1);
  assert_string_equal(rec_kvs_get(&p->decision, "via"), "route");
  rec_pair_free(p);
  assert_null(rec_px_fail_name(PX_FAIL_NONE));
  assert_string_equal(rec_px_fail_name(PX_FAIL_TIMEOUT), "timeout");
  assert_string_equal(rec_px_fail_name(PX_FAIL_CONNECT), "connect");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rec_px_heads),
      cmocka_unit_test(test_rec_px_decision_and_fail),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
