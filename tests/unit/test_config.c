/* Unit tests for config/: the positioned YAML document, the loader, validation,
 * substitution, references, refcounts and the snapshot holder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "config/yaml_doc.h"

/* ---- yaml_doc ---------------------------------------------------------- */

/* Parses text into *doc; returns the rc and stores the error text (or "") in errs_out. */
static int parse_text(const char *text, int flags, struct cfg_yaml_doc **doc, char **errs_out) {
  struct cfg_yaml_errs *e;
  assert_int_equal(cfg_yaml_errs_new(&e, "t.yaml"), 0);
  int rc = cfg_yaml_parse(doc, text, strlen(text), flags, e);
  char *t = cfg_yaml_errs_text(e);
  *errs_out = t ? t : strdup("");
  cfg_yaml_errs_free(e);
  return rc;
}

static void test_config_yaml_positions(void **state) {
  (void)state;
  const char *text = "a: 1\n"
                     "b:\n"
                     "  - x\n"
                     "  - { k: \"v\" }\n"
                     "c: ~\n";
  struct cfg_yaml_doc *d = NULL;
  char *errs;
  assert_int_equal(parse_text(text, 0, &d, &errs), 0);
  assert_string_equal(errs, "");
  free(errs);
  const struct cfg_yaml_node *root = cfg_yaml_root(d);
  assert_int_equal(root->type, CFG_YAML_MAP);
  assert_int_equal(root->npairs, 3);
  const struct cfg_yaml_pair *a = cfg_yaml_get_pair(root, "a");
  assert_int_equal(a->key->line, 1);
  assert_int_equal(a->key->col, 1);
  assert_int_equal(a->value->line, 1);
  assert_int_equal(a->value->col, 4);
  const struct cfg_yaml_node *b = cfg_yaml_get(root, "b");
  assert_int_equal(b->type, CFG_YAML_SEQ);
  assert_int_equal(b->nitems, 2);
  assert_int_equal(b->items[0]->line, 3);
  assert_int_equal(b->items[0]->col, 5);
  const struct cfg_yaml_node *k = cfg_yaml_get(b->items[1], "k");
  assert_string_equal(k->str, "v");
  assert_true(k->quoted);
  assert_int_equal(k->line, 4);
  assert_int_equal(k->col, 10);
  assert_true(cfg_yaml_get(root, "c")->is_null);
  assert_null(cfg_yaml_get(root, "zzz"));
  cfg_yaml_doc_free(d);
}

static void test_config_yaml_rejects(void **state) {
  (void)state;
  struct cfg_yaml_doc *d = NULL;
  char *errs;
  assert_int_equal(parse_text("a: 1\nb: 2\na: 3\n", 0, &d, &errs), CUT_ERR_PARSE);
  assert_string_equal(errs, "t.yaml:3:1: duplicate key \"a\" (first given at line 1)\n");
  free(errs);
  assert_int_equal(parse_text("a: &x 1\nb: *x\n", 0, &d, &errs), CUT_ERR_PARSE);
  assert_string_equal(errs, "t.yaml:2:4: aliases (*x) are not supported; repeat the value instead\n");
  free(errs);
  assert_int_equal(parse_text("a: [1, 2\n", 0, &d, &errs), CUT_ERR_PARSE);
  assert_non_null(strstr(errs, "t.yaml:2:1: YAML syntax: "));
  free(errs);
  assert_int_equal(parse_text("a: 1\n---\nb: 2\n", 0, &d, &errs), CUT_ERR_PARSE);
  assert_string_equal(errs, "t.yaml:2:1: only one YAML document is allowed in a file\n");
  free(errs);
  assert_int_equal(parse_text("? [a]\n: 1\n", 0, &d, &errs), CUT_ERR_PARSE);
  assert_string_equal(errs, "t.yaml:1:3: mapping keys must be plain scalars\n");
  free(errs);
  /* empty document: no root */
  assert_int_equal(parse_text("# nothing\n", 0, &d, &errs), 0);
  assert_null(cfg_yaml_root(d));
  free(errs);
  cfg_yaml_doc_free(d);
}

static void test_config_yaml_subst(void **state) {
  (void)state;
  setenv("CUT_T_SET", "hello", 1);
  setenv("CUT_T_EMPTY", "", 1);
  unsetenv("CUT_T_UNSET");
  struct cfg_yaml_doc *d = NULL;
  char *errs;
  const char *text = "a: ${CUT_T_SET}\n"
                     "b: x-${CUT_T_UNSET:-dflt}-${CUT_T_SET}\n"
                     "c: ${CUT_T_EMPTY:-e}\n"
                     "d: $${CUT_T_SET} $5\n"
                     "${CUT_T_SET}: keys-are-kept\n";
  assert_int_equal(parse_text(text, CFG_YAML_SUBST_ENV, &d, &errs), 0);
  free(errs);
  const struct cfg_yaml_node *r = cfg_yaml_root(d);
  assert_string_equal(cfg_yaml_get(r, "a")->str, "hello");
  assert_true(cfg_yaml_get(r, "a")->substituted);
  assert_string_equal(cfg_yaml_get(r, "b")->str, "x-dflt-hello");
  assert_string_equal(cfg_yaml_get(r, "c")->str, "e");
  assert_string_equal(cfg_yaml_get(r, "d")->str, "${CUT_T_SET} $5");
  assert_non_null(cfg_yaml_get(r, "${CUT_T_SET}"));
  cfg_yaml_doc_free(d);

  /* without the flag nothing changes */
  assert_int_equal(parse_text("a: ${CUT_T_SET}\n", 0, &d, &errs), 0);
  assert_string_equal(cfg_yaml_get(cfg_yaml_root(d), "a")->str, "${CUT_T_SET}");
  free(errs);
  cfg_yaml_doc_free(d);

  assert_int_equal(parse_text("a: 1\nb:   ${CUT_T_UNSET}\nc: ${1x}\nd: ${OPEN\n",
                              CFG_YAML_SUBST_ENV, &d, &errs),
                   CUT_ERR_PARSE);
  assert_string_equal(errs,
                      "t.yaml:2:6: environment variable CUT_T_UNSET is not set (give a default "
                      "with ${CUT_T_UNSET:-VALUE})\n"
                      "t.yaml:3:4: bad variable reference \"${1x}\" (use ${NAME} or "
                      "${NAME:-default})\n"
                      "t.yaml:4:4: unterminated \"${\" in \"${OPEN\" (write $${ for a literal ${)\n");
  free(errs);
}

static void test_config_yaml_suggest(void **state) {
  (void)state;
  static const char *const words[] = {"backend", "dial", "experiment", "mirror"};
  assert_int_equal(cfg_yaml_edit_distance("kitten", "sitting"), 3);
  assert_int_equal(cfg_yaml_edit_distance("", "abc"), 3);
  assert_string_equal(cfg_yaml_suggest("backnd", words, 4), "backend");
  assert_string_equal(cfg_yaml_suggest("dail", words, 4), "dial");
  assert_string_equal(cfg_yaml_suggest("experimnet", words, 4), "experiment");
  assert_null(cfg_yaml_suggest("zzzzzz", words, 4));
  assert_null(cfg_yaml_suggest("x", words, 4));
}

static void test_config_yaml_readers(void **state) {
  (void)state;
  const char *text = "m:\n"
                     "  good: 1\n"
                     "  backnd: 2\n"
                     "  odd: 3\n"
                     "n: 70000\n"
                     "b: maybe\n"
                     "p: 150%\n"
                     "e: h3\n"
                     "s: [1]\n"
                     "t: 250ms\n";
  struct cfg_yaml_doc *d = NULL;
  char *errs;
  assert_int_equal(parse_text(text, 0, &d, &errs), 0);
  free(errs);
  const struct cfg_yaml_node *r = cfg_yaml_root(d);
  struct cfg_yaml_errs *e;
  assert_int_equal(cfg_yaml_errs_new(&e, "t.yaml"), 0);
  static const char *const keys[] = {"good", "backend"};
  assert_int_equal(cfg_yaml_check_keys(e, cfg_yaml_get(r, "m"), "top.m", keys, 2), 2);
  uint32_t u = 9;
  assert_int_equal(cfg_yaml_read_u32(e, cfg_yaml_get(r, "n"), "n", 1, 65535, &u), CUT_ERR_RANGE);
  assert_int_equal(u, 9);
  assert_int_equal(cfg_yaml_read_u32(e, cfg_yaml_get(r, "absent"), "absent", 1, 2, &u), 1);
  int bv;
  assert_int_equal(cfg_yaml_read_bool(e, cfg_yaml_get(r, "b"), "b", &bv), CUT_ERR_INVALID);
  uint32_t ppm;
  assert_int_equal(cfg_yaml_read_percent(e, cfg_yaml_get(r, "p"), "p", &ppm), CUT_ERR_RANGE);
  static const char *const protos[] = {"http1", "h2c", "h2"};
  int pi;
  assert_int_equal(cfg_yaml_read_enum(e, cfg_yaml_get(r, "e"), "e", protos, 3, &pi),
                   CUT_ERR_INVALID);
  const char *str;
  assert_int_equal(cfg_yaml_read_str(e, cfg_yaml_get(r, "s"), "s", &str), CUT_ERR_INVALID);
  uint64_t ms;
  assert_int_equal(cfg_yaml_read_duration(e, cfg_yaml_get(r, "t"), "t", &ms), 0);
  assert_int_equal(ms, 250);
  assert_int_equal(cfg_yaml_errs_count(e), 7);
  char *t = cfg_yaml_errs_text(e);
  assert_string_equal(t, "t.yaml:3:3: top.m.backnd: unknown key \"backnd\" (did you mean "
                         "\"backend\"?)\n"
                         "t.yaml:4:3: top.m.odd: unknown key \"odd\"\n"
                         "t.yaml:5:4: n: 70000 is out of range (1-65535)\n"
                         "t.yaml:6:4: b: expected true or false, got \"maybe\"\n"
                         "t.yaml:7:4: p: percentage \"150%\" is out of range (0-100%)\n"
                         "t.yaml:8:4: e: unknown value \"h3\" (did you mean \"h2\"?)\n"
                         "t.yaml:9:4: s: expected a string, got a list\n");
  free(t);
  cfg_yaml_errs_free(e);
  cfg_yaml_doc_free(d);
}

static void test_config_yaml_errs_cap(void **state) {
  (void)state;
  struct cfg_yaml_errs *e;
  assert_int_equal(cfg_yaml_errs_new(&e, "f"), 0);
  assert_null(cfg_yaml_errs_text(e));
  for (int i = 0; i < CFG_YAML_MAX_ERRORS + 5; i++)
    cfg_yaml_errs_add(e, CFG_YAML_MAX_ERRORS + 5 - i, 1, "p", "m%d", i);
  cfg_yaml_errs_add(e, 0, 0, NULL, "whole file");
  assert_int_equal(cfg_yaml_errs_count(e), CFG_YAML_MAX_ERRORS + 6);
  char *t = cfg_yaml_errs_text(e);
  assert_non_null(strstr(t, "f: 6 more errors not shown\n"));
  assert_int_equal(strncmp(t, "f:6:1: p: m99\n", 14), 0);
  free(t);
  cfg_yaml_errs_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_yaml_positions), cmocka_unit_test(test_config_yaml_rejects),
      cmocka_unit_test(test_config_yaml_subst),     cmocka_unit_test(test_config_yaml_suggest),
      cmocka_unit_test(test_config_yaml_readers),   cmocka_unit_test(test_config_yaml_errs_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
