/* Unit tests for analyzer/an_rules (loading, validation) and analyzer/an_compare. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analyzer/an_compare.h"
#include "analyzer/an_rules.h"
#include "common/cut_err.h"

static struct an_rules *rules_from(const char *yaml) {
  struct an_rules *r = NULL;
  char err[512] = "";
  int rc = an_rules_load_string(&r, yaml, strlen(yaml), "rules.yaml", err, sizeof err);
  if (rc != 0) fprintf(stderr, "rules error: %s\n", err);
  assert_int_equal(rc, 0);
  return r;
}

static const struct an_kv json_ct[] = {{"Content-Type", "application/json"}};

static void side(struct an_side *s, int status, const char *body) {
  memset(s, 0, sizeof *s);
  s->present = 1;
  s->status = status;
  s->headers = json_ct;
  s->nheaders = 1;
  s->body = (const unsigned char *)body;
  s->body_len = strlen(body);
}

/* Compares two JSON bodies for route "catalog" and returns the diff size. */
static size_t cmp(struct an_rules *r, const char *a, const char *b, struct an_result *res) {
  struct an_pair_view pv = {.correlation_id = "c1", .route = "catalog", .method = "GET",
                            .path = "/api/catalog/1"};
  side(&pv.primary, 200, a);
  side(&pv.shadow, 200, b);
  assert_int_equal(an_compare(r, &pv, AN_COMPARE_KEEP_NORMALIZED, res), 0);
  return res->diff.n;
}

static int has_path(const struct an_result *res, const char *path) {
  for (size_t i = 0; i < res->diff.n; i++)
    if (strcmp(res->diff.v[i].path, path) == 0) return 1;
  return 0;
}

static void test_an_compare_rule_kinds(void **state) {
  (void)state;
  struct an_rules *r = rules_from(
      "rules:\n"
      "  - match: { route: catalog }\n"
      "    ignore: [\"$.meta.generatedAt\", \"$.items[*].updatedAt\"]\n"
      "    sort: [ { path: \"$.items\", by: id }, { path: \"$.tags\" } ]\n"
      "    tolerance: [ { path: \"$.price\", absolute: 0.01 }, { path: \"$.ratio\", relative: 1% } ]\n"
      "    replace: [ { path: \"$..requestId\", regex: \"[0-9a-f-]{36}\", with: \"<uuid>\" } ]\n"
      "  - match: { path_prefix: /other }\n"
      "    ignore: [\"$.price\"]\n");
  struct an_result res;
  an_result_init(&res);
  /* ignore with a wildcard */
  assert_int_equal(cmp(r, "{\"meta\":{\"generatedAt\":1},\"items\":[{\"id\":1,\"updatedAt\":5}]}",
                       "{\"meta\":{\"generatedAt\":2},\"items\":[{\"id\":1,\"updatedAt\":6}]}", &res),
                   0);
  assert_int_equal(res.outcome, AN_MATCH);
  /* sort by member and by value */
  assert_int_equal(cmp(r, "{\"items\":[{\"id\":2},{\"id\":1}],\"tags\":[\"b\",\"a\"]}",
                       "{\"items\":[{\"id\":1},{\"id\":2}],\"tags\":[\"a\",\"b\"]}", &res),
                   0);
  /* tolerance absolute, relative */
  assert_int_equal(cmp(r, "{\"price\":10.00,\"ratio\":100}", "{\"price\":10.005,\"ratio\":100.5}",
                       &res),
                   0);
  assert_int_equal(cmp(r, "{\"price\":10.00,\"ratio\":100}", "{\"price\":10.02,\"ratio\":102}", &res),
                   2);
  assert_true(has_path(&res, "$.price"));
  /* regex replace under recursive descent */
  assert_int_equal(cmp(r, "{\"a\":{\"requestId\":\"req 0b8e2a3c-1111-2222-3333-444455556666\"}}",
                       "{\"a\":{\"requestId\":\"req 9f8e2a3c-1111-2222-3333-444455556666\"}}", &res),
                   0);
  /* a real difference remains */
  assert_int_equal(cmp(r, "{\"items\":[{\"id\":1,\"name\":\"x\"}]}",
                       "{\"items\":[{\"id\":1,\"name\":\"y\"}]}", &res),
                   1);
  assert_true(has_path(&res, "$.items[0].name"));
  assert_string_equal(res.diff.v[0].field, "$.items[*].name");
  assert_int_equal(res.outcome, AN_MISMATCH);
  assert_non_null(res.norm_primary);
  /* the second rule does not apply to route catalog's path */
  assert_int_equal(cmp(r, "{\"price\":1}", "{\"price\":3}", &res), 1);
  an_result_clear(&res);
  an_rules_free(r);
}

static void test_an_compare_transforms(void **state) {
  (void)state;
  struct an_rules *r = rules_from(
      "rules:\n"
      "  - match: { route: catalog }\n"
      "    transform:\n"
      "      primary:\n"
      "        - { rename: { from: \"$.artworkUrl\", to: \"$.artwork.url\" } }\n"
      "        - { list_to_map: { path: \"$.attributes\", key: name, value: value } }\n"
      "        - { remove: \"$.legacy\" }\n");
  struct an_result res;
  an_result_init(&res);
  const char *old = "{\"artworkUrl\":\"u\",\"attributes\":[{\"name\":\"c\",\"value\":\"red\"}],"
                    "\"legacy\":1}";
  const char *new = "{\"artwork\":{\"url\":\"u\"},\"attributes\":{\"c\":\"red\"}}";
  assert_int_equal(cmp(r, old, new, &res), 0);
  assert_int_equal(res.body_kind, AN_BODY_JSON);
  /* a one-sided transform disables the byte-identical fast path */
  assert_int_equal(cmp(r, "{\"legacy\":1}", "{\"legacy\":1}", &res), 1);
  assert_int_equal(res.diff.v[0].kind, AN_DIFF_ADDED);
  an_result_clear(&res);
  an_rules_free(r);
}

static void test_an_compare_fast_path_status_headers(void **state) {
  (void)state;
  struct an_rules *r = NULL;
  assert_int_equal(an_rules_new(&r), 0);
  struct an_result res;
  an_result_init(&res);
  struct an_pair_view pv = {.correlation_id = "c", .route = "r"};
  side(&pv.primary, 200, "{\"a\":1}");
  side(&pv.shadow, 200, "{\"a\":1}");
  assert_int_equal(an_compare(r, &pv, 0, &res), 0);
  assert_int_equal(res.outcome, AN_MATCH);
  assert_int_equal(res.body_kind, AN_BODY_IDENTICAL);
  /* status differs, headers differ (content-type compared, date ignored) */
  static const struct an_kv h1[] = {{"content-type", "application/json"}, {"date", "x"}};
  static const struct an_kv h2[] = {{"Content-Type", "text/plain"}, {"Date", "y"}};
  pv.primary.headers = h1;
  pv.primary.nheaders = 2;
  pv.shadow.headers = h2;
  pv.shadow.nheaders = 2;
  pv.shadow.status = 503;
  assert_int_equal(an_compare(r, &pv, 0, &res), 0);
  assert_int_equal(res.diff.n, 2);
  assert_string_equal(res.diff.v[0].path, "status");
  assert_string_equal(res.diff.v[1].path, "header.content-type");
  assert_false(an_side_pass(&pv.shadow));
  assert_true(an_side_pass(&pv.primary));
  /* text bodies by lines */
  static const struct an_kv th[] = {{"content-type", "text/plain"}};
  pv.primary.headers = pv.shadow.headers = th;
  pv.primary.nheaders = pv.shadow.nheaders = 1;
  pv.shadow.status = 200;
  pv.primary.body = (const unsigned char *)"a\nb\n";
  pv.primary.body_len = 4;
  pv.shadow.body = (const unsigned char *)"a\nc\n";
  pv.shadow.body_len = 4;
  assert_int_equal(an_compare(r, &pv, 0, &res), 0);
  assert_int_equal(res.diff.n, 1);
  assert_string_equal(res.diff.v[0].path, "body.line[2]");
  /* binary by checksum */
  static const struct an_kv bh[] = {{"content-type", "image/png"}};
  pv.primary.headers = pv.shadow.headers = bh;
  assert_int_equal(an_compare(r, &pv, 0, &res), 0);
  assert_int_equal(res.diff.n, 1);
  assert_string_equal(res.diff.v[0].path, "body");
  assert_int_equal(res.body_kind, AN_BODY_BINARY);
  an_result_clear(&res);
  an_rules_free(r);
}

static void test_an_compare_lineage_and_repeat(void **state) {
  (void)state;
  struct an_rules *r = NULL;
  assert_int_equal(an_rules_new(&r), 0);
  struct an_result res;
  an_result_init(&res);
  struct an_pair_view pv = {.correlation_id = "c", .route = "r"};
  side(&pv.primary, 200, "{\"a\":1,\"ts\":1}");
  side(&pv.shadow, 200, "{\"a\":2,\"ts\":3}");
  side(&pv.repeat, 200, "{\"a\":1,\"ts\":2}");
  static const struct an_kv l1[] = {{"catalog-db", "v1"}, {"prices", "p1"}};
  static const struct an_kv l2[] = {{"catalog-db", "v2"}, {"prices", "p1"}, {"only", "x"}};
  pv.primary.lineage = l1;
  pv.primary.nlineage = 2;
  pv.shadow.lineage = l2;
  pv.shadow.nlineage = 3;
  assert_int_equal(an_compare(r, &pv, 0, &res), 0);
  assert_int_equal(res.outcome, AN_LINEAGE_DISCARDED);
  assert_int_equal(res.nlineage, 1);
  assert_string_equal(res.lineage[0], "catalog-db");
  assert_int_equal(res.diff.n, 0);
  pv.shadow.lineage = l1;
  pv.shadow.nlineage = 2;
  assert_int_equal(an_compare(r, &pv, 0, &res), 0);
  assert_int_equal(res.outcome, AN_MISMATCH);
  assert_int_equal(res.diff.n, 2);
  assert_true(res.has_repeat);
  assert_int_equal(res.noise.n, 1);
  assert_string_equal(res.noise.v[0].path, "$.ts");
  an_result_clear(&res);
  an_rules_free(r);
}

/* Malformed rules: each error names file:line:col and the key path. */
static void expect_error(const char *yaml, const char *where, const char *what) {
  struct an_rules *r = NULL;
  char err[512] = "";
  int rc = an_rules_load_string(&r, yaml, strlen(yaml), "rules.yaml", err, sizeof err);
  assert_true(rc == CUT_ERR_CONFIG || rc == CUT_ERR_PARSE);
  assert_null(r);
  if (strstr(err, where) == NULL || strstr(err, what) == NULL)
    fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", err, where, what);
}

static void test_an_rules_malformed(void **state) {
  (void)state;
  expect_error("rulez: []\n", "rules.yaml:1:1: rulez", "did you mean \"rules\"");
  expect_error("rules:\n  - match: { route: a }\n    ignore: [\"items\"]\n",
               "rules.yaml:3:14: rules[0].ignore[0]", "must start with '$'");
  expect_error("rules:\n  - match: { route: a }\n    sort: [ { path: \"$.a\", bye: id } ]\n",
               "rules.yaml:3:28: rules[0].sort[0].bye", "did you mean \"by\"");
  expect_error("rules:\n  - match: { route: a }\n    tolerance: [ { path: \"$.a\" } ]\n",
               "rules.yaml:3:18: rules[0].tolerance[0]", "absolute or relative");
  expect_error("rules:\n  - match: { route: a }\n    tolerance: [ { path: \"$.a\", absolute: x } ]\n",
               "rules.yaml:3:43: rules[0].tolerance[0].absolute", "non-negative number");
  expect_error("rules:\n  - match: { route: a }\n    replace: [ { path: \"$.a\", regex: \"(\" } ]\n",
               "rules.yaml:3:38: rules[0].replace[0].regex", "invalid regular expression");
  expect_error("rules:\n  - ignore: [\"$.a\"]\n", "rules.yaml:2:5: rules[0].match", "is required");
  expect_error("rules:\n  - match: {}\n    transform:\n      primary:\n"
               "        - { rename: { from: \"$.a[*]\", to: \"$.b\" } }\n",
               "rules.yaml:5:29: rules[0].transform.primary[0].rename.from", "must name one node");
  expect_error("rules: [\n", "rules.yaml:2:1", "");
  expect_error("defaults:\n  compare_headers: content-type\n",
               "rules.yaml:2:20: defaults.compare_headers", "must be a list");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_an_compare_rule_kinds),
      cmocka_unit_test(test_an_compare_transforms),
      cmocka_unit_test(test_an_compare_fast_path_status_headers),
      cmocka_unit_test(test_an_compare_lineage_and_repeat),
      cmocka_unit_test(test_an_rules_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
