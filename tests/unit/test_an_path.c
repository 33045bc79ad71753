/* Unit tests for analyzer/an_path and analyzer/an_diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analyzer/an_diff.h"
#include "analyzer/an_path.h"
#include "common/cut_err.h"

static json_t *J(const char *s) {
  json_error_t e;
  json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
  assert_non_null(v);
  return v;
}

static int count(const char *expr, const char *doc) {
  struct an_path *p = NULL;
  struct an_matches m = {0};
  char err[128];
  assert_int_equal(an_path_parse(expr, &p, err, sizeof err), 0);
  json_t *d = J(doc);
  int n = an_path_select(p, d, &m);
  an_matches_clear(&m);
  json_decref(d);
  an_path_free(p);
  return n;
}

static void test_an_path_select(void **state) {
  (void)state;
  const char *doc = "{\"a\":{\"b\":1},\"items\":[{\"x\":1,\"id\":{\"requestId\":3}},{\"x\":2}],"
                    "\"requestId\":\"r\",\"odd.key\":[5,6]}";
  assert_int_equal(count("$", doc), 1);
  assert_int_equal(count("$.a.b", doc), 1);
  assert_int_equal(count("$.a.c", doc), 0);
  assert_int_equal(count("$.items[*].x", doc), 2);
  assert_int_equal(count("$.items[1].x", doc), 1);
  assert_int_equal(count("$.items[-1].x", doc), 1);
  assert_int_equal(count("$.items[5].x", doc), 0);
  assert_int_equal(count("$..requestId", doc), 2);
  assert_int_equal(count("$.*", doc), 4);
  assert_int_equal(count("$['odd.key'][1]", doc), 1);
}

static void test_an_path_malformed(void **state) {
  (void)state;
  const char *bad[] = {"a.b", "$.", "$[x]", "$..", "$['a]", "$.a b"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct an_path *p = NULL;
    char err[128] = "";
    assert_int_equal(an_path_parse(bad[i], &p, err, sizeof err), CUT_ERR_PARSE);
    assert_null(p);
    assert_non_null(strstr(err, "path"));
  }
}

static void test_an_path_put_take(void **state) {
  (void)state;
  struct an_path *from = NULL, *to = NULL;
  assert_int_equal(an_path_parse("$.artworkUrl", &from, NULL, 0), 0);
  assert_int_equal(an_path_parse("$.artwork.url", &to, NULL, 0), 0);
  json_t *d = J("{\"artworkUrl\":\"u\"}");
  json_t *v = an_path_take(from, d);
  assert_non_null(v);
  assert_int_equal(an_path_put(to, d, v), 0);
  json_t *want = J("{\"artwork\":{\"url\":\"u\"}}");
  assert_true(json_equal(d, want));
  json_decref(want);
  json_decref(d);
  an_path_free(from);
  an_path_free(to);
}

static void test_an_diff_structural(void **state) {
  (void)state;
  struct an_diff d;
  an_diff_init(&d);
  json_t *a = J("{\"a\":1,\"b\":[1,2,3],\"c\":{\"x\":\"y\"},\"n\":1.0,\"gone\":true}");
  json_t *b = J("{\"c\":{\"x\":\"z\"},\"b\":[1,2],\"a\":1,\"n\":1,\"new\":null}");
  assert_int_equal(an_diff_json(&d, "$", a, b), 4);
  int seen = 0;
  for (size_t i = 0; i < d.n; i++) {
    if (strcmp(d.v[i].path, "$.b[2]") == 0) {
      assert_int_equal(d.v[i].kind, AN_DIFF_MISSING);
      assert_string_equal(d.v[i].field, "$.b[*]");
      seen |= 1;
    } else if (strcmp(d.v[i].path, "$.c.x") == 0) {
      assert_int_equal(d.v[i].kind, AN_DIFF_CHANGED);
      assert_string_equal(json_string_value(d.v[i].primary), "y");
      assert_string_equal(json_string_value(d.v[i].shadow), "z");
      seen |= 2;
    } else if (strcmp(d.v[i].path, "$.gone") == 0) {
      seen |= 4;
    } else if (strcmp(d.v[i].path, "$.new") == 0) {
      assert_int_equal(d.v[i].kind, AN_DIFF_ADDED);
      seen |= 8;
    }
  }
  assert_int_equal(seen, 15);
  /* Key order never matters. */
  an_diff_reset(&d);
  json_t *c = J("{\"x\":1,\"y\":[{\"p\":1,\"q\":2}]}"), *e = J("{\"y\":[{\"q\":2,\"p\":1}],\"x\":1}");
  assert_int_equal(an_diff_json(&d, "$", c, e), 0);
  an_diff_clear(&d);
  json_decref(a);
  json_decref(b);
  json_decref(c);
  json_decref(e);
}

static void test_an_diff_text(void **state) {
  (void)state;
  struct an_diff d;
  an_diff_init(&d);
  const char *a = "one\ntwo\r\nthree\n", *b = "one\ntwo\nTHREE\nfour\n";
  assert_int_equal(an_diff_text(&d, "body", a, strlen(a), b, strlen(b)), 2);
  assert_string_equal(d.v[0].path, "body.line[3]");
  assert_string_equal(d.v[0].field, "body.line[*]");
  assert_int_equal(d.v[1].kind, AN_DIFF_ADDED);
  json_t *j = an_diff_to_json(&d);
  assert_int_equal(json_array_size(j), 2);
  json_decref(j);
  an_diff_clear(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_an_path_select),     cmocka_unit_test(test_an_path_malformed),
      cmocka_unit_test(test_an_path_put_take),   cmocka_unit_test(test_an_diff_structural),
      cmocka_unit_test(test_an_diff_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
