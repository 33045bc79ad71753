/* Unit tests for analyzer/an_summary (noise rule, examples, exact merge), an_join and an_out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include <avro.h>

#include "analyzer/an_join.h"
#include "analyzer/an_out.h"
#include "analyzer/an_rules.h"
#include "analyzer/an_summary.h"
#include "common/cut_err.h"

/* Adds one pair with the given differing fields (P vs S) and noise fields (P vs R). */
static void add(struct an_summary *s, const char *route, const char *id, int64_t t_us,
                const char *diff_fields, const char *noise_fields, int has_repeat) {
  struct an_pair_view pv = {.correlation_id = id, .route = route, .time_us = t_us};
  pv.primary.present = pv.shadow.present = 1;
  pv.primary.status = pv.shadow.status = 200;
  struct an_result res;
  an_result_init(&res);
  res.has_repeat = has_repeat;
  char buf[256];
  const char *lists[2] = {diff_fields, noise_fields};
  struct an_diff *diffs[2] = {&res.diff, &res.noise};
  for (int k = 0; k < 2; k++) {
    if (lists[k] == NULL) continue;
    snprintf(buf, sizeof buf, "%s", lists[k]);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
      assert_int_equal(an_diff_add(diffs[k], AN_DIFF_CHANGED, tok, NULL, NULL), 0);
  }
  res.outcome = res.diff.n ? AN_MISMATCH : AN_MATCH;
  assert_int_equal(an_summary_add_pair(s, &pv, &res), 0);
  an_result_clear(&res);
}

static json_int_t I(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

static void test_an_summary_noise_rule(void **state) {
  (void)state;
  struct an_summary *s = NULL;
  assert_int_equal(an_summary_new(&s), 0);
  /* 100 pairs with a repeat: $.ts differs P/S and P/R in all (noise);
   * $.x differs P/S in 10 and P/R in 5 (10% - 5% >= 3 points, 10% >= 6%: real);
   * $.y differs P/S in 6 and P/R in 5 (6% < 5% * 1.2: noise). */
  for (int i = 0; i < 100; i++) {
    char id[16], d[64] = "$.ts", n[64] = "$.ts";
    snprintf(id, sizeof id, "id-%03d", 99 - i);
    if (i < 10) strcat(d, ",$.x");
    if (i < 5) strcat(n, ",$.x");
    if (i >= 50 && i < 56) strcat(d, ",$.y");
    if (i >= 50 && i < 55) strcat(n, ",$.y");
    add(s, "r", id, (int64_t)i * 1000000, d, n, 1);
  }
  json_t *rep = an_summary_report(s);
  assert_non_null(rep);
  assert_int_equal(I(rep, "joined"), 100);
  assert_int_equal(I(rep, "mismatches"), 10); /* only the pairs with $.x */
  assert_int_equal(I(rep, "matches"), 90);
  json_t *fields = json_object_get(rep, "fields");
  assert_int_equal(json_array_size(fields), 1);
  json_t *x = json_array_get(fields, 0);
  assert_string_equal(json_string_value(json_object_get(x, "field")), "$.x");
  /* examples: the five smallest ids, sorted */
  json_t *ex = json_object_get(x, "examples");
  assert_int_equal(json_array_size(ex), AN_EXAMPLES);
  assert_string_equal(json_string_value(json_array_get(ex, 0)), "id-090");
  assert_string_equal(json_string_value(json_array_get(ex, 4)), "id-094");
  json_t *noise = json_object_get(json_object_get(rep, "noise"), "fields");
  assert_int_equal(json_array_size(noise), 2);
  json_t *fl = json_pack("[s]", "$.y");
  assert_false(an_summary_is_mismatch(s, "r", fl));
  json_decref(fl);
  fl = json_pack("[s,s]", "$.y", "$.x");
  assert_true(an_summary_is_mismatch(s, "r", fl));
  json_decref(fl);
  /* one timeline bucket per minute: 100 s -> 2 minutes */
  assert_int_equal(json_array_size(json_object_get(rep, "timeline")), 2);
  json_decref(rep);
  an_summary_free(s);
}

static void test_an_summary_merge_exact(void **state) {
  (void)state;
  struct an_summary *all = NULL, *a = NULL, *b = NULL, *m = NULL;
  assert_int_equal(an_summary_new(&all), 0);
  assert_int_equal(an_summary_new(&a), 0);
  assert_int_equal(an_summary_new(&b), 0);
  assert_int_equal(an_summary_new(&m), 0);
  for (int i = 0; i < 60; i++) {
    char id[16];
    snprintf(id, sizeof id, "c%02d", (i * 37) % 60);
    const char *route = i % 3 ? "one" : "two";
    const char *d = i % 4 == 0 ? "$.a,$.b[*]" : i % 5 == 0 ? "$.b[*]" : NULL;
    const char *n = i % 2 ? "$.b[*]" : NULL;
    add(all, route, id, (int64_t)i * 7000000, d, n, 1);
    add(i % 2 ? a : b, route, id, (int64_t)i * 7000000, d, n, 1);
    assert_int_equal(an_summary_add_record(all, route, AN_PRIMARY), 0);
    assert_int_equal(an_summary_add_record(i % 2 ? a : b, route, AN_PRIMARY), 0);
  }
  assert_int_equal(an_summary_add_unjoined(all, "one", AN_SHADOW), 0);
  assert_int_equal(an_summary_add_unjoined(b, "one", AN_SHADOW), 0);
  json_t *ra = an_summary_report(a), *rb = an_summary_report(b), *rall = an_summary_report(all);
  char err[256];
  /* Through text, as the merge command reads partial summary.json files. */
  char *ta = json_dumps(json_object_get(ra, "state"), 0), *tb = json_dumps(json_object_get(rb, "state"), 0);
  json_t *sa = json_loads(ta, 0, NULL), *sb = json_loads(tb, 0, NULL);
  assert_int_equal(an_summary_merge_state(m, sa, err, sizeof err), 0);
  assert_int_equal(an_summary_merge_state(m, sb, err, sizeof err), 0);
  json_t *rm = an_summary_report(m);
  if (!json_equal(rm, rall)) {
    char *x = json_dumps(rm, JSON_SORT_KEYS), *y = json_dumps(rall, JSON_SORT_KEYS);
    fail_msg("merged:\n%s\nsingle:\n%s", x, y);
  }
  /* a malformed state is refused */
  json_t *bad = json_pack("{s:i, s:{s:{s:s}}}", "version", 1, "routes", "r", "joined", "x");
  assert_int_equal(an_summary_merge_state(m, bad, err, sizeof err), CUT_ERR_PARSE);
  json_decref(bad);
  free(ta);
  free(tb);
  json_decref(sa);
  json_decref(sb);
  json_decref(ra);
  json_decref(rb);
  json_decref(rall);
  json_decref(rm);
  an_summary_free(all);
  an_summary_free(a);
  an_summary_free(b);
  an_summary_free(m);
}

/* ---- join ---- */

struct seen {
  int pairs, unjoined[2], dups;
  char last[32];
};

static int on_pair(struct an_record *rec, void *ud) {
  struct seen *s = ud;
  assert_true(rec->primary.present && rec->shadow.present);
  s->pairs++;
  snprintf(s->last, sizeof s->last, "%s", rec->correlation_id);
  return 0;
}

static int on_unjoined(struct an_record *rec, enum an_side_id side, void *ud) {
  struct seen *s = ud;
  (void)rec;
  s->unjoined[side]++;
  return 0;
}

static int on_dup(struct an_record *rec, void *ud) {
  struct seen *s = ud;
  (void)rec;
  s->dups++;
  return 0;
}

static struct an_record *rec(enum an_record_kind kind, const char *id, int64_t t) {
  struct an_record *r = calloc(1, sizeof *r);
  r->kind = kind;
  r->correlation_id = strdup(id);
  r->route = strdup("r");
  r->time_us = t;
  if (kind != AN_KIND_SHADOW) r->primary.present = 1;
  if (kind != AN_KIND_PRIMARY) r->shadow.present = 1;
  return r;
}

static void test_an_join_windows(void **state) {
  (void)state;
  struct seen s = {0};
  struct an_join *j = NULL;
  /* count window of 2 */
  assert_int_equal(an_join_new(&j, 2, 0, on_pair, on_unjoined, on_dup, &s), 0);
  assert_int_equal(an_join_add(j, rec(AN_KIND_PRIMARY, "a", 1)), 0);
  assert_int_equal(an_join_add(j, rec(AN_KIND_PRIMARY, "b", 2)), 0);
  assert_int_equal(an_join_add(j, rec(AN_KIND_SHADOW, "a", 3)), 0);
  assert_int_equal(s.pairs, 1);
  assert_string_equal(s.last, "a");
  assert_int_equal(an_join_add(j, rec(AN_KIND_PRIMARY, "c", 4)), 0);
  assert_int_equal(an_join_add(j, rec(AN_KIND_PRIMARY, "d", 5)), 0); /* evicts b */
  assert_int_equal(s.unjoined[AN_PRIMARY], 1);
  assert_int_equal(an_join_add(j, rec(AN_KIND_SHADOW, "b", 6)), 0); /* too late; evicts c */
  assert_int_equal(s.pairs, 1);
  assert_int_equal(an_join_add(j, rec(AN_KIND_PAIR, "e", 7)), 0);
  assert_int_equal(s.pairs, 2);
  struct an_record *lonely = rec(AN_KIND_PAIR, "f", 8);
  lonely->shadow.present = 0;
  assert_int_equal(an_join_add(j, lonely), 0);
  assert_int_equal(an_join_pending(j), 2);
  /* duplicates: a joined id again (PAIR or one side), a waiting side again */
  assert_int_equal(an_join_add(j, rec(AN_KIND_PAIR, "e", 9)), 0);
  assert_int_equal(an_join_add(j, rec(AN_KIND_SHADOW, "a", 9)), 0);
  assert_int_equal(an_join_add(j, rec(AN_KIND_PRIMARY, "d", 9)), 0);
  assert_int_equal(s.dups, 3);
  assert_int_equal(s.pairs, 2);
  assert_int_equal(an_join_pending(j), 2);
  assert_int_equal(an_join_flush(j), 0);
  assert_int_equal(s.unjoined[AN_PRIMARY], 4); /* b, c, f, d */
  assert_int_equal(s.unjoined[AN_SHADOW], 1);  /* b's shadow */
  an_join_free(j);

  /* time window of 10 us; many pending records force the table to grow */
  memset(&s, 0, sizeof s);
  assert_int_equal(an_join_new(&j, 0, 10, on_pair, on_unjoined, on_dup, &s), 0);
  for (int i = 0; i < 3000; i++) {
    char id[16];
    snprintf(id, sizeof id, "p%d", i);
    assert_int_equal(an_join_add(j, rec(AN_KIND_PRIMARY, id, 100)), 0);
  }
  assert_int_equal(an_join_add(j, rec(AN_KIND_SHADOW, "p1234", 105)), 0);
  assert_int_equal(s.pairs, 1);
  assert_int_equal(an_join_add(j, rec(AN_KIND_SHADOW, "zz", 200)), 0); /* everything at 100 expires */
  assert_int_equal(s.unjoined[AN_PRIMARY], 2999);
  assert_int_equal(an_join_pending(j), 1);
  an_join_free(j); /* frees the waiting record without callbacks */
  assert_int_equal(an_join_new(&j, 0, 0, on_pair, on_unjoined, on_dup, &s), CUT_ERR_INVALID);
}

/* The embedded mismatch schema is the shipped .avsc without its docs. */
static void strip_docs(json_t *v) {
  if (json_is_object(v)) {
    json_object_del(v, "doc");
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) strip_docs(x);
  } else if (json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) strip_docs(x);
  }
}

static void test_an_out_schema_in_sync(void **state) {
  (void)state;
  const char *src = getenv("CUTOVER_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/analyzer/schemas/mismatch.avsc", src ? src : CUTOVER_SOURCE_DIR);
  json_t *file = json_load_file(path, 0, NULL), *emb = json_loads(an_out_mismatch_schema(), 0, NULL);
  assert_non_null(file);
  assert_non_null(emb);
  strip_docs(file);
  assert_true(json_equal(file, emb));
  json_decref(file);
  json_decref(emb);
}

/* A binary body survives JSON lines (base64) into the Avro file byte for byte. */
static void test_an_out_binary_roundtrip(void **state) {
  (void)state;
  static const unsigned char bin[] = {0x00, 0xff, 0xfe, 0x41, 0x80, 0x0a};
  static const struct an_kv ct[] = {{"content-type", "image/png"}};
  struct an_pair_view pv = {.correlation_id = "bin-1", .route = "img", .time_us = 5};
  pv.primary = (struct an_side){1, 200, NULL, ct, 1, bin, sizeof bin, NULL, 0};
  pv.shadow = (struct an_side){1, 200, NULL, ct, 1, bin, 3, NULL, 0};
  struct an_rules *rules = NULL;
  struct an_summary *s = NULL;
  struct an_result res;
  an_result_init(&res);
  assert_int_equal(an_rules_new(&rules), 0);
  assert_int_equal(an_summary_new(&s), 0);
  assert_int_equal(an_compare(rules, &pv, AN_COMPARE_KEEP_NORMALIZED, &res), 0);
  assert_int_equal(res.outcome, AN_MISMATCH);
  assert_int_equal(an_summary_add_pair(s, &pv, &res), 0);
  json_t *line = an_out_mismatch_json(&pv, &res);
  assert_non_null(line);
  assert_non_null(json_object_get(json_object_get(line, "primary"), "body_base64"));

  char dir[] = "/tmp/an-out-XXXXXX", cand[600], avro_path[600];
  assert_non_null(mkdtemp(dir));
  snprintf(cand, sizeof cand, "%s/cand.jsonl", dir);
  FILE *f = fopen(cand, "w");
  assert_int_equal(an_out_write_line(f, line), 0);
  fclose(f);
  json_t *rep = an_summary_report(s), *kept = NULL;
  const char *inputs[] = {cand};
  char err[256];
  assert_int_equal(an_out_split(s, inputs, 1, dir, 10, &kept, err, sizeof err), 1);
  assert_int_equal(json_array_size(kept), 1);

  snprintf(avro_path, sizeof avro_path, "%s/mismatches.avro", dir);
  avro_file_reader_t r;
  assert_int_equal(avro_file_reader(avro_path, &r), 0);
  avro_schema_t schema = avro_file_reader_get_writer_schema(r);
  avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
  avro_value_t v, fld;
  assert_int_equal(avro_generic_value_new(iface, &v), 0);
  assert_int_equal(avro_file_reader_read_value(r, &v), 0);
  const void *buf;
  size_t size;
  assert_int_equal(avro_value_get_by_name(&v, "primary_body", &fld, NULL), 0);
  assert_int_equal(avro_value_get_bytes(&fld, &buf, &size), 0);
  assert_int_equal(size, sizeof bin);
  assert_memory_equal(buf, bin, sizeof bin);
  assert_int_equal(avro_value_get_by_name(&v, "shadow_body", &fld, NULL), 0);
  assert_int_equal(avro_value_get_bytes(&fld, &buf, &size), 0);
  assert_int_equal(size, 3);
  avro_value_decref(&v);
  avro_value_iface_decref(iface);
  avro_schema_decref(schema);
  avro_file_reader_close(r);

  const char *names[] = {"cand.jsonl", "mismatches.jsonl", "mismatches.avro", "noise.jsonl"};
  for (size_t i = 0; i < 4; i++) {
    snprintf(cand, sizeof cand, "%s/%s", dir, names[i]);
    unlink(cand);
  }
  rmdir(dir);
  json_decref(kept);
  json_decref(rep);
  json_decref(line);
  an_result_clear(&res);
  an_summary_free(s);
  an_rules_free(rules);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_an_summary_noise_rule),
      cmocka_unit_test(test_an_summary_merge_exact),
      cmocka_unit_test(test_an_join_windows),
      cmocka_unit_test(test_an_out_schema_in_sync),
      cmocka_unit_test(test_an_out_binary_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
