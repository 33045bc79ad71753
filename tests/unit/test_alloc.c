/* Unit tests for dials/alloc.c: restrictions, app versions, allocation share, weighted cells. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "config/units.h"
#include "dials/alloc.h"
#include "dials/dial.h"
#include "test_dial_fixture.h"

static void ab_req(struct fx_req *r, const char *dev, const char *region, const char *platform,
                   const char *version) {
  fx_req_init(r, "/");
  if (dev) fx_req_add(r, "x-device-id", dev);
  if (region) fx_req_add(r, "x-region", region);
  if (platform) fx_req_add(r, "x-platform", platform);
  if (version) fx_req_add(r, "x-app-version", version);
}

static void test_alloc_version_parse(void **state) {
  (void)state;
  uint32_t v[3];
  assert_int_equal(alloc_version_parse("8.2.13", 6, v), 0);
  assert_int_equal(v[0], 8);
  assert_int_equal(v[1], 2);
  assert_int_equal(v[2], 13);
  assert_int_equal(alloc_version_parse("9", 1, v), 0);
  assert_int_equal(v[0], 9);
  assert_int_equal(v[1], 0);
  assert_int_equal(alloc_version_parse("8.3.0-beta.1", 12, v), 0);
  assert_int_equal(v[1], 3);
  assert_int_equal(alloc_version_parse("8.3+build7", 10, v), 0);
  static const char *bad[] = {"", "8.", ".8", "v8", "8.2.1.4", "8.x", "8..1", " 8.2",
                              "8.2 ", "4294967296", "8.2-", "-1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = alloc_version_parse(bad[i], strlen(bad[i]), v);
    /* "8.2-" has an empty suffix: still a version; everything else is malformed */
    if (!strcmp(bad[i], "8.2-"))
      assert_int_equal(rc, 0);
    else
      assert_int_equal(rc, CUT_ERR_INVALID);
  }
}

/* Request versions follow the config's own version syntax (config/units.h). */
static void test_alloc_version_like_config(void **state) {
  (void)state;
  static const char *cases[] = {"8", "8.2", "8.2.13", "8.3.0-beta.1", "8+b", "0008.01",
                                "4294967295.0.1", "4294967296", "", "8.", ".8", "v8",
                                "8.2.1.4", "8.x", "8..1", " 8", "8 ", "8-", "8.2-rc"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint32_t a[3] = {0}, b[3] = {0};
    int ra = alloc_version_parse(cases[i], strlen(cases[i]), a);
    int rb = cfg_parse_version(cases[i], b);
    if ((ra == 0) != (rb == 0)) fail_msg("\"%s\": alloc %d, config %d", cases[i], ra, rb);
    if (ra == 0) assert_memory_equal(a, b, sizeof a);
  }
}

static void test_alloc_version_range(void **state) {
  (void)state;
  struct cfg_version_cmp r[2] = {{CFG_CMP_GE, {8, 2, 0}}, {CFG_CMP_LT, {9, 0, 0}}};
  uint32_t a[3] = {8, 2, 0}, b[3] = {8, 1, 99}, c[3] = {8, 99, 0}, d[3] = {9, 0, 0};
  assert_true(alloc_version_in(a, r, 2));
  assert_false(alloc_version_in(b, r, 2));
  assert_true(alloc_version_in(c, r, 2));
  assert_false(alloc_version_in(d, r, 2));
  assert_true(alloc_version_in(d, r, 0));
  struct cfg_version_cmp eq = {CFG_CMP_EQ, {9, 0, 0}}, le = {CFG_CMP_LE, {8, 2, 0}},
                         gt = {CFG_CMP_GT, {8, 2, 0}};
  assert_true(alloc_version_in(d, &eq, 1));
  assert_true(alloc_version_in(a, &le, 1));
  assert_false(alloc_version_in(a, &gt, 1));
  assert_true(alloc_version_in(c, &gt, 1));
}

static void test_alloc_restrictions(void **state) {
  (void)state;
  struct fixture f;
  fx_init(&f);
  struct cfg_allocation *a = &f.allocs[0];
  struct fx_req r;
  ab_req(&r, "d", "eu", "ios", "8.2.0");
  assert_int_equal(alloc_eligible(&f.cfg, a, &r.req), ALLOC_ELIGIBLE);
  ab_req(&r, "d", "EU", "Android", "8.9.1-rc1");
  assert_int_equal(alloc_eligible(&f.cfg, a, &r.req), ALLOC_ELIGIBLE);
  ab_req(&r, "d", "apac", "ios", "8.2.0");
  assert_int_equal(alloc_eligible(&f.cfg, a, &r.req), ALLOC_REGION);
  ab_req(&r, "d", "eu", "web", "8.2.0");
  assert_int_equal(alloc_eligible(&f.cfg, a, &r.req), ALLOC_PLATFORM);
  ab_req(&r, "d", "eu", "ios", "9.0");
  assert_int_equal(alloc_eligible(&f.cfg, a, &r.req), ALLOC_VERSION_RANGE);
  ab_req(&r, "d", "eu", "ios", "8.1.9");
  assert_int_equal(alloc_eligible(&f.cfg, a, &r.req), ALLOC_VERSION_RANGE);
  ab_req(&r, "d", "eu", "ios", "eight");
  assert_int_equal(alloc_eligible(&f.cfg, a, &r.req), ALLOC_VERSION_MALFORMED);
  ab_req(&r, "d", "eu", NULL, "8.2.0");
  assert_int_equal(alloc_eligible(&f.cfg, a, &r.req), ALLOC_MISSING_ATTRIBUTE);
  /* without restrictions everyone is eligible */
  a->regions.n = a->platforms.n = a->napp_version = 0;
  ab_req(&r, "d", NULL, NULL, "garbage");
  assert_int_equal(alloc_eligible(&f.cfg, a, &r.req), ALLOC_ELIGIBLE);
  /* attributes come from where cfg->attributes says */
  a->regions.n = 2;
  f.cfg.attributes.region = fx_key(CFG_KEY_COOKIE, "region");
  ab_req(&r, "d", "eu", NULL, NULL);
  assert_int_equal(alloc_eligible(&f.cfg, a, &r.req), ALLOC_MISSING_ATTRIBUTE);
  fx_req_add(&r, "cookie", "region=us");
  assert_int_equal(alloc_eligible(&f.cfg, a, &r.req), ALLOC_ELIGIBLE);
  assert_string_equal(alloc_verdict_name(ALLOC_VERSION_MALFORMED), "version-malformed");
}

/* 50% of eligible devices are allocated, cells 50/50 (then 90/10), a device's
 * cell does not change when the allocation grows; ineligible ones fall
 * through to the default with their reason. */
static void test_alloc_decide(void **state) {
  (void)state;
  enum { N = 40000 };
  static int8_t cell[N];
  struct fixture f;
  fx_init(&f);
  f.allocs[0].ppm = 200000;
  struct fx_req r;
  struct dial_decision d;
  char key[32];
  int allocated = 0, treatment = 0;
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "dev-%d", i);
    ab_req(&r, key, "eu", "ios", "8.4");
    assert_int_equal(dial_decide(&f.cfg, NULL, &f.routes[2], &r.req, 0, &d), 0);
    cell[i] = -1;
    if (d.via == DIAL_VIA_ALLOCATION) {
      allocated++;
      assert_true(d.bucket < 200000);
      cell[i] = d.backend_index == B_TREATMENT;
      treatment += cell[i];
      assert_string_equal(d.arm, cell[i] ? "treatment" : "control");
    } else {
      assert_int_equal(d.backend_index, B_OLD);
      assert_string_equal(d.reason, "out-of-allocation");
    }
  }
  assert_in_range(allocated, 8000 - 400, 8000 + 400);
  assert_in_range(treatment, allocated / 2 - 230, allocated / 2 + 230);
  f.allocs[0].ppm = 600000;
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "dev-%d", i);
    ab_req(&r, key, "eu", "ios", "8.4");
    assert_int_equal(dial_decide(&f.cfg, NULL, &f.routes[2], &r.req, 0, &d), 0);
    if (cell[i] >= 0) {
      assert_int_equal(d.via, DIAL_VIA_ALLOCATION);
      assert_int_equal(d.backend_index == B_TREATMENT, cell[i]);
    }
  }
  /* weights 90/10 */
  f.cells[0].weight = 90;
  f.cells[1].weight = 10;
  treatment = allocated = 0;
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "dev-%d", i);
    ab_req(&r, key, "eu", "ios", "8.4");
    assert_int_equal(dial_decide(&f.cfg, NULL, &f.routes[2], &r.req, 0, &d), 0);
    if (d.via == DIAL_VIA_ALLOCATION) {
      allocated++;
      treatment += d.backend_index == B_TREATMENT;
    }
  }
  assert_in_range(treatment, allocated / 10 - 250, allocated / 10 + 250);
  /* not eligible and malformed */
  char buf[128];
  ab_req(&r, "dev-1", "eu", "ios", "8.x");
  assert_int_equal(dial_decide(&f.cfg, NULL, &f.routes[2], &r.req, 0, &d), 0);
  assert_int_equal(d.via, DIAL_VIA_DEFAULT);
  dial_decision_format(&d, buf, sizeof buf);
  assert_string_equal(buf, "allocation=ab-checkout;reason=malformed-version");
  ab_req(&r, "dev-1", "apac", "ios", "8.4");
  assert_int_equal(dial_decide(&f.cfg, NULL, &f.routes[2], &r.req, 0, &d), 0);
  assert_string_equal(d.reason, "not-eligible");
  assert_int_equal(d.backend_index, B_OLD);
}

static void test_alloc_cells(void **state) {
  (void)state;
  struct fixture f;
  fx_init(&f);
  struct cfg_allocation *a = &f.allocs[0];
  assert_int_equal(alloc_cell_of(a, 0), 0);
  assert_int_equal(alloc_cell_of(a, 499999), 0);
  assert_int_equal(alloc_cell_of(a, 500000), 1);
  assert_int_equal(alloc_cell_of(a, 999999), 1);
  f.cells[0].weight = 0;
  assert_int_equal(alloc_cell_of(a, 0), 1);
  f.cells[1].weight = 0;
  assert_int_equal(alloc_cell_of(a, 0), SIZE_MAX);
}

/* Cell-bucket vectors of docs/dials.md (computed by the Python reference there). */
static void test_alloc_cell_vectors(void **state) {
  (void)state;
  assert_int_equal(alloc_cell_bucket("checkout-v2", 11, "3f2b8c1e-6d4a-4f7e-9b1c-2a5d8e0f7c61", 36),
                   529650);
  assert_int_equal(alloc_cell_bucket("checkout-v2", 11, "", 0), 191130);
  assert_int_equal(alloc_cell_bucket("checkout-v2", 11, "device-1", 8), 938167);
  assert_int_equal(alloc_cell_bucket("checkout-v2", 11, "device-2", 8), 232633);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alloc_version_parse),
      cmocka_unit_test(test_alloc_version_like_config),
      cmocka_unit_test(test_alloc_version_range),
      cmocka_unit_test(test_alloc_restrictions),
      cmocka_unit_test(test_alloc_decide),
      cmocka_unit_test(test_alloc_cells),
      cmocka_unit_test(test_alloc_cell_vectors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
