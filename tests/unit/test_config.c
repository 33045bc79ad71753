/* Unit tests for config/: the positioned YAML document, the loader, validation,
 * substitution, references, refcounts and the snapshot holder. */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cli.h"
#include "common/cut_err.h"
#include "config/config.h"
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
  /* recoverable: the tree is returned, the errors are in the collector */
  assert_int_equal(parse_text("a: 1\nb: 2\na: 3\n", 0, &d, &errs), 0);
  assert_string_equal(errs, "t.yaml:3:1: duplicate key \"a\" (first given at line 1)\n");
  assert_string_equal(cfg_yaml_get(cfg_yaml_root(d), "a")->str, "1");
  free(errs);
  cfg_yaml_doc_free(d);
  assert_int_equal(parse_text("a: &x 1\nb: *x\n", 0, &d, &errs), 0);
  assert_string_equal(errs, "t.yaml:2:4: aliases (*x) are not supported; repeat the value instead\n");
  assert_true(cfg_yaml_get(cfg_yaml_root(d), "b")->invalid);
  free(errs);
  cfg_yaml_doc_free(d);
  assert_int_equal(parse_text("a: [1, 2\n", 0, &d, &errs), CUT_ERR_PARSE);
  assert_non_null(strstr(errs, "t.yaml:2:1: YAML syntax: "));
  free(errs);
  assert_int_equal(parse_text("a: 1\n---\nb: 2\n", 0, &d, &errs), CUT_ERR_PARSE);
  assert_string_equal(errs, "t.yaml:2:1: only one YAML document is allowed in a file\n");
  free(errs);
  assert_int_equal(parse_text("? [a]\n: 1\n", 0, &d, &errs), 0);
  assert_string_equal(errs, "t.yaml:1:3: mapping keys must be plain scalars\n");
  free(errs);
  cfg_yaml_doc_free(d);
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
                   0);
  assert_true(cfg_yaml_get(cfg_yaml_root(d), "b")->invalid);
  assert_false(cfg_yaml_get(cfg_yaml_root(d), "a")->invalid);
  cfg_yaml_doc_free(d);
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


static void test_config_yaml_file(void **state) {
  (void)state;
  char path[] = "/tmp/cutover-test-yaml-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "rules:\n  - x\n", 13), 13);
  close(fd);
  struct cfg_yaml_errs *e;
  assert_int_equal(cfg_yaml_errs_new(&e, path), 0);
  struct cfg_yaml_doc *d = NULL;
  assert_int_equal(cfg_yaml_parse_file(&d, path, 0, e), 0);
  assert_int_equal(cfg_yaml_errs_count(e), 0);
  const struct cfg_yaml_node *rules = cfg_yaml_get(cfg_yaml_root(d), "rules");
  assert_int_equal(rules->nitems, 1);
  assert_int_equal(rules->items[0]->line, 2);
  cfg_yaml_doc_free(d);
  unlink(path);
  assert_int_equal(cfg_yaml_parse_file(&d, path, 0, e), CUT_ERR_IO);
  char *t = cfg_yaml_errs_text(e);
  char want[128];
  snprintf(want, sizeof want, "%s: cannot open: No such file or directory\n", path);
  assert_string_equal(t, want);
  free(t);
  cfg_yaml_errs_free(e);
}

static void test_config_yaml_errs_oneline(void **state) {
  (void)state;
  struct cfg_yaml_doc *d = NULL;
  char *errs;
  assert_int_equal(parse_text("\"a\\nb\": \"x\\ty\"\n", 0, &d, &errs), 0);
  free(errs);
  struct cfg_yaml_errs *e;
  assert_int_equal(cfg_yaml_errs_new(&e, "t.yaml"), 0);
  static const char *const keys[] = {"ab"};
  cfg_yaml_check_keys(e, cfg_yaml_root(d), "", keys, 1);
  int b;
  cfg_yaml_read_bool(e, cfg_yaml_root(d)->pairs[0].value, "v", &b);
  char *t = cfg_yaml_errs_text(e);
  assert_string_equal(t, "t.yaml:1:1: a?b: unknown key \"a?b\" (did you mean \"ab\"?)\n"
                         "t.yaml:1:9: v: expected true or false, got \"x?y\"\n");
  free(t);
  cfg_yaml_errs_free(e);
  cfg_yaml_doc_free(d);
}

/* ---- the loader -------------------------------------------------------- */

#define MINIMAL                                              \
  "listeners: [ { name: p, listen: \"127.0.0.1:8080\" } ]\n" \
  "backends:\n"                                              \
  "  a: { hosts: [\"127.0.0.1:9001\"] }\n"                   \
  "  b: { hosts: [\"127.0.0.1:9002\"], protocol: h2c }\n"    \
  "routes: [ { name: r, backend: a } ]\n"

#define MINIMAL_SHA256 "234200002ebfc68b11f54c565a22d6307c3762adc651812c8561b3c80fba784e"

static struct cfg *load_ok(const char *text) {
  struct cfg *c = NULL;
  char *errs = NULL;
  int rc = cfg_load_buffer("t.yaml", text, strlen(text), &c, &errs);
  if (rc != 0)
    fprintf(stderr, "unexpected errors:\n%s", errs ? errs : "(none)");
  assert_int_equal(rc, 0);
  assert_null(errs);
  assert_non_null(c);
  return c;
}

/* Loads text that must fail and compares the whole error text. */
static void expect_errors(const char *text, const char *want) {
  struct cfg *c = NULL;
  char *errs = NULL;
  assert_int_equal(cfg_load_buffer("t.yaml", text, strlen(text), &c, &errs), CUT_ERR_CONFIG);
  assert_null(c);
  assert_non_null(errs);
  if (strcmp(errs, want))
    fprintf(stderr, "got:\n%swant:\n%s", errs, want);
  assert_string_equal(errs, want);
  free(errs);
}

static char *print_to_string(const struct cfg *c) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  assert_int_equal(cfg_print(c, f), 0);
  fclose(f);
  return buf;
}

static void test_config_example(void **state) {
  (void)state;
  const char *src = getenv("CUTOVER_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/config/example.yaml", src ? src : CUTOVER_SOURCE_DIR);
  unsetenv("CUTOVER_DC");
  struct cfg *c = NULL;
  char *errs = NULL;
  int rc = cfg_load(path, &c, &errs);
  if (rc)
    fprintf(stderr, "%s", errs ? errs : "");
  assert_int_equal(rc, 0);
  assert_true(c->workers >= 1);
  assert_string_equal(c->datacenter, "local");
  assert_true(c->admin.enabled);
  assert_int_equal(c->admin.listen.port, 9901);
  assert_string_equal(c->admin.token_file, "run/admin.token");
  assert_int_equal(c->nlisteners, 2);
  assert_false(c->listeners[0].has_tls);
  assert_int_equal(c->listeners[0].listen.port, 8080);
  assert_true(c->listeners[1].has_tls);
  assert_string_equal(c->listeners[1].tls.cert, "run/cert.pem");
  assert_string_equal(c->listeners[1].tls.key, "run/key.pem");
  size_t legacy = cfg_backend_find(c, "legacy"), modern = cfg_backend_find(c, "modern");
  assert_int_not_equal(legacy, SIZE_MAX);
  assert_int_equal(c->backends[legacy].protocol, CFG_PROTO_HTTP1);
  assert_int_equal(c->backends[legacy].timeout_ms, 2000);
  assert_int_equal(c->backends[legacy].hosts[0].port, 9001);
  assert_int_equal(c->backends[modern].protocol, CFG_PROTO_H2C);
  assert_int_equal(c->backends[modern].timeout_ms, 15000);
  size_t d = cfg_dial_find(c, "checkout-v2");
  assert_int_not_equal(d, SIZE_MAX);
  assert_int_equal(c->dials[d].ppm, 50000);
  assert_int_equal(c->dials[d].key.kind, CFG_KEY_HEADER);
  assert_string_equal(c->dials[d].key.name, "x-device-id");
  assert_int_equal(c->dials[d].to_index, modern);
  assert_int_equal(c->dials[d].nsteps, 5);
  assert_int_equal(c->dials[d].steps[4], 1000000);
  assert_string_equal(c->dials[d].salt, "checkout-v2");
  assert_int_not_equal(cfg_experiment_find(c, "search-canary"), SIZE_MAX);
  assert_int_not_equal(cfg_allocation_find(c, "profile-ab"), SIZE_MAX);
  assert_int_equal(cfg_dial_find(c, "nope"), SIZE_MAX);
  const struct cfg_route *r = &c->routes[0];
  assert_string_equal(r->path_prefix, "/api/checkout");
  assert_int_equal(r->backend_index, legacy);
  assert_int_equal(r->dial_index, d);
  assert_int_equal(r->experiment_index, SIZE_MAX);
  assert_int_equal(r->nmirrors, 1);
  assert_int_equal(r->mirrors[0].backend_index, modern);
  assert_int_equal(r->mirrors[0].ppm, 1000000);
  assert_true(r->record);
  assert_int_equal(c->recording.sink, CFG_SINK_KAFKA);
  assert_string_equal(c->recording.brokers, "embedded");
  assert_string_equal(c->recording.topic, "cutover.pairs");
  assert_int_equal(c->recording.lineage_headers.n, 1);
  /* the embedded broker is on loopback: no compression unless asked for */
  assert_string_equal(c->recording.compression, "none");
  assert_int_equal(c->recording.nice, 10);
  assert_string_equal(c->routes[c->nroutes - 1].name, "default");
  assert_null(c->routes[c->nroutes - 1].path_prefix);
  cfg_unref(c);
}

static void test_config_defaults(void **state) {
  (void)state;
  struct cfg *c = load_ok(MINIMAL);
  assert_false(c->admin.enabled);
  assert_null(c->datacenter);
  assert_string_equal(c->request_id_header, "x-request-id");
  const struct cfg_backend *a = &c->backends[0];
  assert_int_equal(a->protocol, CFG_PROTO_HTTP1);
  assert_int_equal(a->lb, CFG_LB_ROUND_ROBIN);
  assert_int_equal(a->connect_timeout_ms, 1000);
  assert_int_equal(a->timeout_ms, 15000);
  assert_int_equal(a->idle_timeout_ms, 60000);
  assert_int_equal(a->max_connections, 64);
  assert_int_equal(a->max_streams, 100);
  assert_int_equal(a->retries, 1);
  assert_int_equal(a->pipeline, 1);
  assert_int_equal(c->listeners[0].h2c_upgrade, 1);
  assert_false(a->has_tls);
  assert_false(a->health.enabled);
  assert_string_equal(a->health.path, "/healthz");
  assert_int_equal(a->outlier.max_ejected_ppm, 500000);
  assert_int_equal(c->routes[0].dial_index, SIZE_MAX);
  assert_int_equal(c->recording.sink, CFG_SINK_NONE);
  assert_int_equal(c->recording.max_body_bytes, 65536);
  assert_int_equal(c->recording.redact_headers.n, 3);
  assert_int_equal(c->recording.nice, 10);
  assert_int_equal(c->limits.max_header_list_bytes, 65536);
  assert_int_equal(c->limits.drain_timeout_ms, 30000);
  assert_string_equal(c->logging.level, "info");
  assert_string_equal(c->state.dial_state_file, "run/dials.state.json");
  assert_string_equal(c->attributes.region.name, "x-region");
  assert_string_equal(c->path, "t.yaml");
  /* sha256 of the MINIMAL text, as computed by sha256sum */
  char hex[65];
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", c->digest[i]);
  assert_string_equal(hex, MINIMAL_SHA256);
  cfg_unref(c);

  c = load_ok("workers: 3\nbackends: { a: { hosts: [\"h:1\"], protocol: h2 } }\n"
              "listeners: [ { name: p, listen: \"[::1]:80\" } ]\nroutes: [ { name: r, backend: a } ]\n");
  assert_int_equal(c->workers, 3);
  assert_true(c->backends[0].has_tls); /* h2 implies TLS */
  assert_true(c->backends[0].tls.verify);
  assert_true(c->listeners[0].listen.is_ipv6);
  cfg_unref(c);
}

static void test_config_h2_floods(void **state) {
  (void)state;
  struct cfg *c = load_ok(MINIMAL);
  const struct cfg_h2_floods *h = &c->limits.h2_floods;
  assert_int_equal(h->max_resets, 200);
  assert_int_equal(h->max_settings, 50);
  assert_int_equal(h->max_pings, 100);
  assert_int_equal(h->rate_window_ms, 10000);
  assert_int_equal(h->max_continuations, 32);
  assert_int_equal(h->max_header_block_bytes, 128 << 10);
  assert_int_equal(h->zero_window_stall_ms, 30000);
  cfg_unref(c);
  c = load_ok(MINIMAL "limits:\n  h2_floods: { max_resets: 10, max_settings: 5, max_pings: 7,"
                      " rate_window: 2s, max_continuations: 4, max_header_block: 16KiB,"
                      " zero_window_stall: 1500ms }\n");
  h = &c->limits.h2_floods;
  assert_int_equal(h->max_resets, 10);
  assert_int_equal(h->max_settings, 5);
  assert_int_equal(h->max_pings, 7);
  assert_int_equal(h->rate_window_ms, 2000);
  assert_int_equal(h->max_continuations, 4);
  assert_int_equal(h->max_header_block_bytes, 16 << 10);
  assert_int_equal(h->zero_window_stall_ms, 1500);
  assert_int_equal(c->limits.max_headers, 100); /* the rest of limits keeps its defaults */
  char *text = print_to_string(c);
  assert_non_null(strstr(text, "  h2_floods:\n    max_resets: 10\n"));
  assert_non_null(strstr(text, "    zero_window_stall: 1500ms\n"));
  free(text);
  cfg_unref(c);
  expect_errors(MINIMAL "limits:\n  h2_floods:\n    max_resets: 0\n    zero_window_stall: 0s\n"
                        "    max_header_block: 100B\n    max_ping: 3\n",
                "t.yaml:8:17: limits.h2_floods.max_resets: 0 is out of range (1-1000000)\n"
                "t.yaml:9:24: limits.h2_floods.zero_window_stall: must be greater than 0\n"
                "t.yaml:10:23: limits.h2_floods.max_header_block: must be at least 1KiB\n"
                "t.yaml:11:5: limits.h2_floods.max_ping: unknown key \"max_ping\" (did you mean "
                "\"max_pings\"?)\n");
  expect_errors(MINIMAL "limits: { h2_floods: 3 }\n",
                "t.yaml:6:22: limits.h2_floods: expected a map, got a scalar\n");
}

static void test_config_error_unknown_key(void **state) {
  (void)state;
  expect_errors(MINIMAL "recording:\n  sink: file\n  lineage_header: [x-lineage]\n",
                "t.yaml:8:3: recording.lineage_header: unknown key \"lineage_header\" (did you "
                "mean \"lineage_headers\"?)\n");
  expect_errors(MINIMAL "listners: []\n",
                "t.yaml:6:1: listners: unknown key \"listners\" (did you mean \"listeners\"?)\n");
  expect_errors(MINIMAL "zzz: 1\n", "t.yaml:6:1: zzz: unknown key \"zzz\"\n");
}

static void test_config_error_type(void **state) {
  (void)state;
  expect_errors(MINIMAL "admin: [127.0.0.1:9901]\n",
                "t.yaml:6:8: admin: expected a map, got a list\n");
  expect_errors("listeners: [ { name: p, listen: \"127.0.0.1:8080\" } ]\n"
                "backends:\n"
                "  a: { hosts: \"127.0.0.1:9001\", max_connections: many }\n"
                "routes: [ { name: r, backend: a, record: maybe } ]\n",
                "t.yaml:3:15: backends.a.hosts: expected a list, got a scalar\n"
                "t.yaml:3:50: backends.a.max_connections: expected a whole number, got \"many\"\n"
                "t.yaml:4:42: routes[0].record: expected true or false, got \"maybe\"\n");
}

static void test_config_error_percent(void **state) {
  (void)state;
  expect_errors(MINIMAL "dials:\n  d1: { key: random, percent: 100.5%, to: b }\n"
                        "  d2: { key: random, percent: 0.00001%, to: b }\n",
                "t.yaml:7:31: dials.d1.percent: percentage \"100.5%\" is out of range (0-100%)\n"
                "t.yaml:8:31: dials.d2.percent: percentage \"0.00001%\" has more than 4 decimals\n");
}

static void test_config_error_unit(void **state) {
  (void)state;
  expect_errors("listeners: [ { name: p, listen: \"127.0.0.1:8080\" } ]\n"
                "backends:\n"
                "  a:\n"
                "    hosts: [\"127.0.0.1:9001\"]\n"
                "    timeout: 2sec\n"
                "    connect_timeout: 5\n"
                "routes: [ { name: r, backend: a } ]\n"
                "recording: { sink: file, max_body: 4mb }\n",
                "t.yaml:5:14: backends.a.timeout: unknown unit \"sec\" (use ms, s, m, h)\n"
                "t.yaml:6:22: backends.a.connect_timeout: duration \"5\" needs a unit (ms, s, m, h)\n"
                "t.yaml:8:36: recording.max_body: unknown unit \"mb\" (use B, KiB, MiB, GiB, TiB, "
                "KB, MB, GB, TB)\n");
}

static void test_config_error_recording_nice(void **state) {
  (void)state;
  expect_errors(MINIMAL "recording:\n  sink: file\n  nice: 20\n",
                "t.yaml:8:9: recording.nice: 20 is out of range (0-19)\n");
}

static void test_config_error_address(void **state) {
  (void)state;
  expect_errors("listeners:\n"
                "  - { name: p, listen: \"127.0.0.1\" }\n"
                "  - { name: q, listen: \"::1:80\" }\n"
                "  - { name: s, listen: \"300.0.0.1:80\" }\n"
                "backends: { a: { hosts: [\"127.0.0.1:70000\"] } }\n"
                "routes: [ { name: r, backend: a } ]\n",
                "t.yaml:2:24: listeners[0].listen: \"127.0.0.1\" has no port (use host:port, e.g. "
                "127.0.0.1:8080)\n"
                "t.yaml:3:24: listeners[1].listen: \"::1:80\": write IPv6 addresses in brackets, "
                "e.g. [::1]:8080\n"
                "t.yaml:4:24: listeners[2].listen: \"300.0.0.1:80\": \"300.0.0.1\" is not an "
                "IPv4 address\n"
                "t.yaml:5:26: backends.a.hosts[0]: \"127.0.0.1:70000\": port 70000 is out of "
                "range (1-65535)\n");
}

static void test_config_backend_pipeline(void **state) {
  (void)state;
  struct cfg *c = load_ok("listeners: [ { name: p, listen: \"127.0.0.1:8080\" } ]\n"
                          "backends:\n"
                          "  a: { hosts: [\"127.0.0.1:9001\"], pipeline: 16 }\n"
                          "routes: [ { name: r, backend: a } ]\n");
  assert_int_equal(c->backends[0].pipeline, 16);
  cfg_unref(c);
  expect_errors("listeners: [ { name: p, listen: \"127.0.0.1:8080\" } ]\n"
                "backends:\n"
                "  a: { hosts: [\"127.0.0.1:9001\"], protocol: h2c, pipeline: 4 }\n"
                "  b: { hosts: [\"127.0.0.1:9002\"], pipeline: 65 }\n"
                "routes: [ { name: r, backend: a } ]\n",
                "t.yaml:3:60: backends.a.pipeline: pipelining is for protocol http1; HTTP/2 "
                "multiplexes streams instead\n"
                "t.yaml:4:45: backends.b.pipeline: 65 is out of range (1-64)\n");
}

static void test_config_error_reference(void **state) {
  (void)state;
  expect_errors("listeners: [ { name: p, listen: \"127.0.0.1:8080\" } ]\n"
                "backends:\n"
                "  legacy: { hosts: [\"127.0.0.1:9001\"] }\n"
                "  modern: { hosts: [\"127.0.0.1:9002\"] }\n"
                "dials:\n"
                "  checkout-v2: { key: random, percent: 5%, to: moderne }\n"
                "experiments:\n"
                "  exp1: { key: random, pool: 1%, canary: modern, baseline: legcy }\n"
                "allocations:\n"
                "  ab1: { key: random, cells: [ { name: a, weight: 1, backend: zzz } ] }\n"
                "routes:\n"
                "  - name: checkout\n"
                "    backend: legacy\n"
                "    dial: checkout-v3\n"
                "    mirror: [ moderm ]\n"
                "  - { name: s, backend: legacy, experiment: exp2 }\n"
                "  - { name: t, backend: legacy, allocation: ab2 }\n",
                "t.yaml:6:48: dials.checkout-v2.to: no backend named \"moderne\" (did you mean "
                "\"modern\"?)\n"
                "t.yaml:8:60: experiments.exp1.baseline: no backend named \"legcy\" (did you mean "
                "\"legacy\"?)\n"
                "t.yaml:10:63: allocations.ab1.cells[0].backend: no backend named \"zzz\"\n"
                "t.yaml:14:11: routes[0].dial: no dial named \"checkout-v3\" (did you mean "
                "\"checkout-v2\"?)\n"
                "t.yaml:15:15: routes[0].mirror[0]: no backend named \"moderm\" (did you mean "
                "\"modern\"?)\n"
                "t.yaml:16:45: routes[1].experiment: no experiment named \"exp2\" (did you mean "
                "\"exp1\"?)\n"
                "t.yaml:17:45: routes[2].allocation: no allocation named \"ab2\" (did you mean "
                "\"ab1\"?)\n");
  cfg_unref(load_ok(MINIMAL "dials: {}\n" "experiments:\n  x: { key: random, pool: 1%, canary: a, baseline: b }\n"
                "allocations:\n  y: { key: random, cells: [ { name: c, weight: 1, backend: a } ] }\n"
                "  z: { key: random, cells: [ { name: c, weight: 1, backend: b } ] }\n"
                "state: { dir: x }\n"));
}

static void test_config_error_duplicate(void **state) {
  (void)state;
  expect_errors("listeners:\n"
                "  - { name: p, listen: \"127.0.0.1:8080\" }\n"
                "  - { name: p, listen: \"127.0.0.1:8080\" }\n"
                "backends:\n"
                "  a: { hosts: [\"127.0.0.1:9001\"] }\n"
                "  a: { hosts: [\"127.0.0.1:9002\"] }\n"
                "routes: [ { name: r, backend: a }, { name: r, backend: a } ]\n",
                "t.yaml:3:13: listeners[1].name: duplicate listener name \"p\" (also "
                "listeners[0])\n"
                "t.yaml:3:24: listeners[1].listen: address 127.0.0.1:8080 is already used by "
                "listeners[0]\n"
                "t.yaml:6:3: duplicate key \"a\" (first given at line 5)\n"
                "t.yaml:7:44: routes[1].name: duplicate route name \"r\" (also routes[0])\n");
}

static void test_config_error_rules(void **state) {
  (void)state;
  expect_errors("listeners:\n"
                "  - { name: t, listen: \"127.0.0.1:8443\", tls: { cert: c.pem } }\n"
                "backends:\n"
                "  a: { hosts: [\"127.0.0.1:9001\"], protocol: h2c, tls: { ca: ca.pem } }\n"
                "  b: { hosts: [\"127.0.0.1:9002\"] }\n"
                "dials:\n"
                "  d: { key: random, percent: 5%, to: b, steps: [1%, 10%, 5%] }\n"
                "experiments:\n"
                "  x: { key: random, pool: 1%, canary: a, baseline: b,\n"
                "       start: \"2026-02-01T00:00:00Z\", end: \"2026-01-01T00:00:00Z\" }\n"
                "allocations:\n"
                "  y: { key: random, cells: [ { name: c, weight: 0, backend: a } ] }\n"
                "routes:\n"
                "  - { name: r, backend: a, dial: d, allocation: y, compare: live }\n",
                "t.yaml:2:47: listeners[0].tls.key: missing required key \"key\"\n"
                "t.yaml:4:55: backends.a.tls: protocol h2c is cleartext HTTP/2; use protocol h2 "
                "for HTTP/2 over TLS\n"
                "t.yaml:7:58: dials.d.steps[2]: steps must be in ascending order (5% follows "
                "10%)\n"
                "t.yaml:10:44: experiments.x.end: must be after start\n"
                "t.yaml:12:49: allocations.y.cells[0].weight: 0 is out of range (1-1000000)\n"
                "t.yaml:14:61: routes[0].compare: live comparison needs a mirror to compare "
                "with\n");
}

static void test_config_error_missing(void **state) {
  (void)state;
  expect_errors("", "t.yaml:1:1: listeners: at least one listener is required\n"
                    "t.yaml:1:1: backends: at least one backend is required\n"
                    "t.yaml:1:1: routes: at least one route is required\n");
  expect_errors("listeners: [ { name: p } ]\n"
                "backends: { a: { protocol: h2c } }\n"
                "routes: [ { backend: a } ]\n",
                "t.yaml:1:14: listeners[0].listen: missing required key \"listen\"\n"
                "t.yaml:2:16: backends.a.hosts: missing required key \"hosts\"\n"
                "t.yaml:3:11: routes[0].name: missing required key \"name\"\n");
}

static void test_config_error_null_items(void **state) {
  (void)state;
  expect_errors("listeners: [ { name: p, listen: \"127.0.0.1:8080\" } ]\n"
                "backends: { a: { hosts: [ ~ ] } }\n"
                "routes: [ { name: r, backend: a, match: { methods: [GET, ~] } } ]\n",
                "t.yaml:2:27: backends.a.hosts[0]: expected host:port, got null\n"
                "t.yaml:3:58: routes[0].match.methods[1]: expected a string, got null\n");
}

static void test_config_error_many(void **state) {
  (void)state;
  /* Every error of the file is reported, in file order, not only the first. */
  struct cfg *c = NULL;
  char *errs = NULL;
  const char *text = "workers: lots\n"
                     "listeners: [ { name: p, listen: \"127.0.0.1:99999\" } ]\n"
                     "backends: { a: { hosts: [\"h:1\"], protocl: h2c, timeout: 2 } }\n"
                     "routes: [ { name: r, backend: b } ]\n"
                     "logging: { level: loud }\n";
  assert_int_equal(cfg_load_buffer("t.yaml", text, strlen(text), &c, &errs), CUT_ERR_CONFIG);
  assert_string_equal(errs,
                      "t.yaml:1:10: workers: expected \"auto\" or a number of threads, got "
                      "\"lots\"\n"
                      "t.yaml:2:33: listeners[0].listen: \"127.0.0.1:99999\": port 99999 is out "
                      "of range (1-65535)\n"
                      "t.yaml:3:34: backends.a.protocl: unknown key \"protocl\" (did you mean "
                      "\"protocol\"?)\n"
                      "t.yaml:3:57: backends.a.timeout: duration \"2\" needs a unit (ms, s, m, "
                      "h)\n"
                      "t.yaml:4:31: routes[0].backend: no backend named \"b\"\n"
                      "t.yaml:5:19: logging.level: unknown value \"loud\" (use one of: debug, "
                      "info, warn, error, off)\n");
  free(errs);
  /* errs may be NULL */
  assert_int_equal(cfg_load_buffer("t.yaml", text, strlen(text), &c, NULL), CUT_ERR_CONFIG);
}

static void test_config_error_yaml_and_schema(void **state) {
  (void)state;
  /* A duplicate key, an alias and an unset variable do not hide the schema's
   * errors, and the affected values are not reported a second time. */
  unsetenv("CUT_T_NOPE");
  expect_errors("listeners: [ { name: p, listen: \"127.0.0.1:${CUT_T_NOPE}\" } ]\n"
                "backends:\n"
                "  a: &h { hosts: [\"h:1\"] }\n"
                "  b: *h\n"
                "routes: [ { name: r, backend: a, mirror: [ *h ] } ]\n"
                "routes: []\n"
                "workers: 0\n",
                "t.yaml:1:33: environment variable CUT_T_NOPE is not set (give a default with "
                "${CUT_T_NOPE:-VALUE})\n"
                "t.yaml:4:6: aliases (*h) are not supported; repeat the value instead\n"
                "t.yaml:5:44: aliases (*h) are not supported; repeat the value instead\n"
                "t.yaml:6:1: duplicate key \"routes\" (first given at line 5)\n"
                "t.yaml:7:10: workers: 0 is out of range (1-1024)\n");
}

static void test_config_subst(void **state) {
  (void)state;
  setenv("CUT_T_DC", "eu-west-1", 1);
  setenv("CUT_T_PW", "hunter2", 1);
  unsetenv("CUT_T_NOPE");
  struct cfg *c = load_ok(MINIMAL "datacenter: ${CUT_T_DC}\n"
                                  "admin: { listen: \"127.0.0.1:${CUT_T_NOPE:-9911}\", "
                                  "token_file: run/t }\n"
                                  "recording:\n"
                                  "  kafka:\n"
                                  "    brokers: \"k1:9092\"\n"
                                  "    properties:\n"
                                  "      sasl.password: plain-secret\n"
                                  "      sasl.username: \"${CUT_T_PW}\"\n"
                                  "      client.id: cutover\n");
  assert_string_equal(c->datacenter, "eu-west-1");
  assert_int_equal(c->admin.listen.port, 9911);
  assert_int_equal(c->recording.sink, CFG_SINK_KAFKA);
  assert_int_equal(c->recording.nkafka_props, 3);
  assert_string_equal(c->recording.kafka_props[1].value, "hunter2");
  assert_string_equal(c->recording.compression, "lz4"); /* a real cluster: lz4 by default */
  char *out = print_to_string(c);
  assert_null(strstr(out, "plain-secret"));
  assert_null(strstr(out, "hunter2"));
  assert_non_null(strstr(out, "sasl.password: \"<redacted>\""));
  assert_non_null(strstr(out, "sasl.username: \"<redacted>\""));
  assert_non_null(strstr(out, "client.id: cutover"));
  assert_non_null(strstr(out, "datacenter: eu-west-1"));
  free(out);
  cfg_unref(c);
  expect_errors(MINIMAL "datacenter: ${CUT_T_NOPE}\n",
                "t.yaml:6:13: environment variable CUT_T_NOPE is not set (give a default with "
                "${CUT_T_NOPE:-VALUE})\n");
}

static void test_config_print_roundtrip(void **state) {
  (void)state;
  const char *src = getenv("CUTOVER_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/config/example.yaml", src ? src : CUTOVER_SOURCE_DIR);
  struct cfg *c = NULL;
  assert_int_equal(cfg_load(path, &c, NULL), 0);
  char *one = print_to_string(c);
  cfg_unref(c);
  c = load_ok(one);
  char *two = print_to_string(c);
  cfg_unref(c);
  /* identical after the first line, which names the file and its digest */
  assert_string_equal(strchr(one, '\n'), strchr(two, '\n'));
  free(one);
  free(two);

  c = load_ok(MINIMAL "datacenter: \"a b: $${x}\\\"\"\n"
                      "dials: { d: { key: \"query:v\", percent: 0.0001%, to: b,"
                      " per_datacenter: { eu: 12.5% } } }\n"
                      "experiments: { x: { key: random, pool: 1%, canary: a, baseline: b,"
                      " start: \"2026-11-21T12:00:00+02:00\" } }\n");
  one = print_to_string(c);
  assert_string_equal(c->datacenter, "a b: ${x}\"");
  assert_non_null(strstr(one, "datacenter: \"a b: $${x}\\\"\"\n"));
  assert_non_null(strstr(one, "start: \"2026-11-21T10:00:00Z\"\n"));
  cfg_unref(c);
  c = load_ok(one);
  assert_string_equal(c->datacenter, "a b: ${x}\"");
  assert_int_equal(c->dials[0].ppm, 1);
  assert_int_equal(c->dials[0].per_dc[0].ppm, 125000);
  assert_int_equal(c->experiments[0].start, 1795255200);
  two = print_to_string(c);
  assert_string_equal(strchr(one, '\n'), strchr(two, '\n'));
  free(one);
  free(two);
  cfg_unref(c);
}

/* ${VAR:-default} at its edges: empty values and defaults, defaults holding ':'
 * or ":-", several references in one scalar, no second round of substitution. */
static void test_config_yaml_subst_edges(void **state) {
  (void)state;
  setenv("CUT_T_SET", "hello", 1);
  setenv("CUT_T_EMPTY", "", 1);
  setenv("CUT_T_NEST", "${CUT_T_SET}", 1);
  unsetenv("CUT_T_UNSET");
  struct cfg_yaml_doc *d = NULL;
  char *errs;
  const char *text = "a: ${CUT_T_EMPTY}\n"
                     "b: ${CUT_T_UNSET:-}\n"
                     "c: ${CUT_T_UNSET:-a:-b}\n"
                     "d: ${CUT_T_UNSET:-host:80}\n"
                     "e: ${CUT_T_SET:-x}\n"
                     "f: ${CUT_T_UNSET:-x}${CUT_T_SET}$\n"
                     "g: \"${CUT_T_SET}\"\n"
                     "h: ${CUT_T_NEST}\n"
                     "i: ${CUT_T_UNSET:-~}\n";
  assert_int_equal(parse_text(text, CFG_YAML_SUBST_ENV, &d, &errs), 0);
  assert_string_equal(errs, "");
  free(errs);
  const struct cfg_yaml_node *r = cfg_yaml_root(d);
  assert_string_equal(cfg_yaml_get(r, "a")->str, "");
  assert_false(cfg_yaml_get(r, "a")->is_null); /* an empty value, not a missing one */
  assert_string_equal(cfg_yaml_get(r, "b")->str, "");
  assert_string_equal(cfg_yaml_get(r, "c")->str, "a:-b");
  assert_string_equal(cfg_yaml_get(r, "d")->str, "host:80");
  assert_string_equal(cfg_yaml_get(r, "e")->str, "hello");
  assert_string_equal(cfg_yaml_get(r, "f")->str, "xhello$");
  assert_string_equal(cfg_yaml_get(r, "g")->str, "hello");
  assert_string_equal(cfg_yaml_get(r, "h")->str, "${CUT_T_SET}");
  assert_string_equal(cfg_yaml_get(r, "i")->str, "~");
  assert_false(cfg_yaml_get(r, "i")->is_null);
  cfg_yaml_doc_free(d);

  assert_int_equal(parse_text("a: ${CUT_T_SET:x}\nb: ${}\nc: x\n  ${CUT_T_UNSET}\n",
                              CFG_YAML_SUBST_ENV, &d, &errs),
                   0);
  cfg_yaml_doc_free(d);
  assert_string_equal(errs,
                      "t.yaml:1:4: bad variable reference \"${CUT_T_SET:x}\" (use ${NAME} or "
                      "${NAME:-default})\n"
                      "t.yaml:2:4: bad variable reference \"${}\" (use ${NAME} or "
                      "${NAME:-default})\n"
                      "t.yaml:3:4: environment variable CUT_T_UNSET is not set (give a default "
                      "with ${CUT_T_UNSET:-VALUE})\n");
  free(errs);

  /* through the schema: a substituted percentage is parsed like a written one */
  setenv("CUT_T_PCT", "12.5%", 1);
  struct cfg *c = load_ok(MINIMAL "dials: { d: { key: random, percent: \"${CUT_T_PCT}\", to: b } "
                                  "}\n");
  assert_int_equal(c->dials[0].ppm, 125000);
  cfg_unref(c);
  unsetenv("CUT_T_PCT");
}

/* A plain scalar that ends with ':' would read back as a map key: print quotes it. */
static void test_config_print_trailing_colon(void **state) {
  (void)state;
  struct cfg *c = load_ok(MINIMAL "datacenter: \"dc:\"\n");
  assert_string_equal(c->datacenter, "dc:");
  char *out = print_to_string(c);
  assert_non_null(strstr(out, "datacenter: \"dc:\"\n"));
  struct cfg *again = load_ok(out);
  assert_string_equal(again->datacenter, "dc:");
  cfg_unref(again);
  free(out);
  cfg_unref(c);
}

static void test_config_load_io(void **state) {
  (void)state;
  struct cfg *c = NULL;
  char *errs = NULL;
  assert_int_equal(cfg_load("/nonexistent/x.yaml", &c, &errs), CUT_ERR_IO);
  assert_string_equal(errs, "/nonexistent/x.yaml: cannot open: No such file or directory\n");
  free(errs);
  assert_int_equal(cfg_load("/", &c, &errs), CUT_ERR_IO);
  free(errs);
  assert_int_equal(cfg_load_buffer("t.yaml", "a: [", 4, &c, &errs), CUT_ERR_CONFIG);
  assert_non_null(strstr(errs, "t.yaml:2:1: YAML syntax: did not find expected node content"));
  free(errs);
}

static void test_config_cmd(void **state) {
  (void)state;
  const char *src = getenv("CUTOVER_SOURCE_DIR");
  char example[1024], bad[] = "/tmp/cutover-test-config-XXXXXX";
  snprintf(example, sizeof example, "%s/config/example.yaml", src ? src : CUTOVER_SOURCE_DIR);
  int fd = mkstemp(bad);
  assert_true(fd >= 0);
  const char *text = "listners: []\n";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  char *ok_argv[] = {"config", "check", example, NULL};
  assert_int_equal(cfg_cmd(3, ok_argv), 0);
  char *bad_argv[] = {"config", "check", bad, NULL};
  assert_int_equal(cfg_cmd(3, bad_argv), 1);
  char *missing_argv[] = {"config", "check", "/nonexistent.yaml", NULL};
  assert_int_equal(cfg_cmd(3, missing_argv), 1);
  char *usage_argv[] = {"config", "frobnicate", example, NULL};
  assert_int_equal(cfg_cmd(3, usage_argv), 2);
  char *short_argv[] = {"config", NULL};
  assert_int_equal(cfg_cmd(1, short_argv), 2);
  unlink(bad);
}

/* ---- refcount and holder ----------------------------------------------- */

static void test_config_refcount(void **state) {
  (void)state;
  struct cfg *c = load_ok(MINIMAL);
  assert_ptr_equal(cfg_ref(c), c);
  cfg_unref(c);
  assert_string_equal(c->routes[0].name, "r"); /* still alive: one reference left */
  cfg_unref(c);
  cfg_unref(NULL);
  assert_null(cfg_ref(NULL));
}

struct reader_arg {
  struct cfg_holder *h;
  atomic_int *stop;
  atomic_ulong reads;
  int bad;
};

static void *reader(void *p) {
  struct reader_arg *a = p;
  while (!atomic_load(a->stop)) {
    struct cfg *c = cfg_holder_get(a->h);
    /* every snapshot we can see is complete and alive */
    if (c->nroutes != 1 || strcmp(c->routes[0].name, "r") || c->workers < 1 || c->workers > 4)
      a->bad++;
    cfg_unref(c);
    atomic_fetch_add(&a->reads, 1);
  }
  return NULL;
}

static struct cfg *load_workers(int n) {
  char text[512];
  snprintf(text, sizeof text, "workers: %d\n" MINIMAL, n);
  return load_ok(text);
}

static void test_config_holder(void **state) {
  (void)state;
  struct cfg *first = load_workers(1);
  struct cfg_holder *h;
  assert_int_equal(cfg_holder_new(&h, first), 0);
  struct cfg *got = cfg_holder_get(h);
  assert_ptr_equal(got, first);
  cfg_unref(got);

  atomic_int stop;
  atomic_init(&stop, 0);
  enum { NREADERS = 3 };
  pthread_t th[NREADERS];
  struct reader_arg args[NREADERS];
  for (int i = 0; i < NREADERS; i++) {
    args[i].h = h;
    args[i].stop = &stop;
    args[i].bad = 0;
    atomic_init(&args[i].reads, 0);
    assert_int_equal(pthread_create(&th[i], NULL, reader, &args[i]), 0);
  }
  /* Each swapped-in snapshot is referenced by the holder only, so the swap
   * that replaces it drops what may be its last reference: a reader that
   * touched it after that would be a use-after-free that ASan reports. */
  int swaps = 0;
  struct cfg *last = NULL;
  for (;;) {
    last = load_workers(swaps % 4 + 1);
    cfg_holder_swap(h, last);
    swaps++;
    int busy = 1;
    for (int i = 0; i < NREADERS; i++)
      busy = busy && atomic_load(&args[i].reads) >= 1000;
    if (busy && swaps >= 500)
      break;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < NREADERS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].bad, 0);
    assert_true(atomic_load(&args[i].reads) >= 1000);
  }
  got = cfg_holder_get(h);
  assert_ptr_equal(got, last);
  cfg_unref(got);
  cfg_holder_swap(h, NULL); /* ignored */
  cfg_holder_free(h);
  cfg_holder_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_yaml_positions), cmocka_unit_test(test_config_yaml_rejects),
      cmocka_unit_test(test_config_yaml_subst),     cmocka_unit_test(test_config_yaml_suggest),
      cmocka_unit_test(test_config_yaml_readers),   cmocka_unit_test(test_config_yaml_errs_cap),
      cmocka_unit_test(test_config_yaml_errs_oneline), cmocka_unit_test(test_config_yaml_file),
      cmocka_unit_test(test_config_example),        cmocka_unit_test(test_config_defaults),
      cmocka_unit_test(test_config_error_unknown_key), cmocka_unit_test(test_config_error_type),
      cmocka_unit_test(test_config_error_percent),  cmocka_unit_test(test_config_error_unit),
      cmocka_unit_test(test_config_error_recording_nice),
      cmocka_unit_test(test_config_h2_floods),
      cmocka_unit_test(test_config_error_address),  cmocka_unit_test(test_config_error_reference),
      cmocka_unit_test(test_config_backend_pipeline),
      cmocka_unit_test(test_config_error_duplicate), cmocka_unit_test(test_config_error_rules),
      cmocka_unit_test(test_config_error_missing),  cmocka_unit_test(test_config_error_null_items),  cmocka_unit_test(test_config_error_many),
      cmocka_unit_test(test_config_error_yaml_and_schema),
      cmocka_unit_test(test_config_subst),          cmocka_unit_test(test_config_print_roundtrip),
      cmocka_unit_test(test_config_load_io),        cmocka_unit_test(test_config_cmd),        cmocka_unit_test(test_config_refcount),
      cmocka_unit_test(test_config_holder),
      cmocka_unit_test(test_config_yaml_subst_edges),
      cmocka_unit_test(test_config_print_trailing_colon),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
