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

static struct an_arena arena;

static struct an_jv *J(const char *s) {
  struct an_jv *v = an_json_parse(&arena, s, strlen(s));
  assert_non_null(v);
  return v;
}

static int count(const char *expr, const char *doc) {
  struct an_path *p = NULL;
  struct an_matches m = {0};
  char err[128];
  assert_int_equal(an_path_parse(expr, &p, err, sizeof err), 0);
  struct an_jv *d = J(doc);
  int n = an_path_select(p, d, &m);
  an_matches_clear(&m);
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
  struct an_jv *d = J("{\"artworkUrl\":\"u\"}");
  struct an_jv *v = an_path_take(from, d);
  assert_non_null(v);
  assert_int_equal(an_path_put(to, &arena, d, v), 0);
  assert_true(an_json_equal(d, J("{\"artwork\":{\"url\":\"u\"}}")));
  assert_null(an_path_get(from, d));
  an_path_free(from);
  an_path_free(to);
}

static void test_an_diff_structural(void **state) {
  (void)state;
  struct an_diff d;
  an_diff_init(&d);
  struct an_jv *a = J("{\"a\":1,\"b\":[1,2,3],\"c\":{\"x\":\"y\"},\"n\":1.0,\"gone\":true}");
  struct an_jv *b = J("{\"c\":{\"x\":\"z\"},\"b\":[1,2],\"a\":1,\"n\":1,\"new\":null}");
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
  struct an_jv *c = J("{\"x\":1,\"y\":[{\"p\":1,\"q\":2}]}"),
               *e = J("{\"y\":[{\"q\":2,\"p\":1}],\"x\":1}");
  assert_int_equal(an_diff_json(&d, "$", c, e), 0);
  an_diff_clear(&d);
}

static void test_an_path_json_parser(void **state) {
  (void)state;
  const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "tru", "01x", "\"\\x\"", "1 2", "\"a\nb\""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_null(an_json_parse(&arena, bad[i], strlen(bad[i])));
  struct an_jv *v = J(" {\"s\":\"\\u00e9\\ud83d\\ude00\\n\",\"n\":-12,\"r\":1.5e2,\"b\":[true,false,null]} ");
  json_t *j = an_json_to_jansson(v);
  json_t *want = json_pack("{s:s, s:i, s:f, s:[b,b,n]}", "s", "\xc3\xa9\xf0\x9f\x98\x80\n", "n", -12,
                           "r", 150.0, "b", 1, 0);
  assert_true(json_equal(j, want));
  json_decref(j);
  json_decref(want);
  /* numbers compare by value; member order does not matter */
  assert_true(an_json_equal(J("{\"a\":1,\"b\":2.0}"), J("{\"b\":2,\"a\":1.0}")));
  assert_false(an_json_equal(J("[1,2]"), J("[2,1]")));
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
      cmocka_unit_test(test_an_diff_text),       cmocka_unit_test(test_an_path_json_parser),
  };
  an_arena_init(&arena);
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  an_arena_clear(&arena);
  return rc;
}
