/* Unit tests for dials/exp.c: pool, arms, states and the KPI guard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "dials/dial.h"
#include "dials/exp.h"
#include "test_dial_fixture.h"

#define NKEYS 200000

static int key_of(int i, char *buf, size_t n) { return snprintf(buf, n, "dev-%08d", i); }

static void decide_key(struct fixture *f, const char *key, int64_t now, struct dial_decision *d) {
  struct fx_req r;
  fx_req_init(&r, "/");
  fx_req_add(&r, "x-device-id", key);
  assert_int_equal(dial_decide(&f->cfg, NULL, &f->routes[1], &r.req, now, d), 0);
}

/* Pool at 2%: about 2% of devices are in, split 50/50; growing the pool to 4%
 * keeps every member in and in the same arm. */
static void test_exp_split_and_growth(void **state) {
  (void)state;
  static uint8_t arm2[NKEYS]; /* 0 = out, 1 = canary, 2 = baseline */
  struct fixture f;
  fx_init(&f);
  f.dials[0].ppm = 0;
  char key[32];
  struct dial_decision d;
  int in = 0, canary = 0;
  for (int i = 0; i < NKEYS; i++) {
    key_of(i, key, sizeof key);
    decide_key(&f, key, 1000, &d);
    arm2[i] = 0;
    if (d.via == DIAL_VIA_EXPERIMENT) {
      assert_string_equal(d.reason, "in-pool");
      assert_true(d.bucket < 20000);
      in++;
      if (d.backend_index == B_CANARY) {
        assert_string_equal(d.arm, "canary");
        canary++;
        arm2[i] = 1;
      } else {
        assert_int_equal(d.backend_index, B_BASELINE);
        assert_string_equal(d.arm, "baseline");
        arm2[i] = 2;
      }
    } else {
      assert_int_equal(d.backend_index, B_OLD); /* the dial at 0% */
    }
  }
  /* 2% of 200000 = 4000, sd ~ 63: allow 5 sd; split 50% +- 5 sd of 2000 (~ 32) */
  assert_in_range(in, 4000 - 315, 4000 + 315);
  assert_in_range(canary, in / 2 - 160, in / 2 + 160);
  f.exps[0].pool_ppm = 40000;
  int in4 = 0;
  for (int i = 0; i < NKEYS; i++) {
    key_of(i, key, sizeof key);
    decide_key(&f, key, 1000, &d);
    if (d.via == DIAL_VIA_EXPERIMENT) {
      in4++;
      int a = d.backend_index == B_CANARY ? 1 : 2;
      if (arm2[i]) assert_int_equal(a, arm2[i]);
    } else {
      assert_int_equal(arm2[i], 0);
    }
  }
  assert_in_range(in4, 8000 - 445, 8000 + 445);
}

static void test_exp_states(void **state) {
  (void)state;
  struct fixture f;
  fx_init(&f);
  f.exps[0].pool_ppm = 1000000;
  struct dial_decision d;
  char buf[128];
  decide_key(&f, "device-1", 1000, &d);
  assert_int_equal(d.via, DIAL_VIA_EXPERIMENT);
  /* pending (no autostart): nobody in either arm, the dial decides */
  f.exps[0].autostart = 0;
  decide_key(&f, "device-1", 1000, &d);
  assert_int_equal(d.via, DIAL_VIA_DIAL);
  assert_true(d.backend_index == B_OLD || d.backend_index == B_NEW);
  /* window: before start and after end nobody is routed */
  f.exps[0].autostart = 1;
  f.exps[0].start = 2000;
  f.exps[0].end = 3000;
  decide_key(&f, "device-1", 1999, &d);
  assert_int_not_equal(d.via, DIAL_VIA_EXPERIMENT);
  decide_key(&f, "device-1", 2000, &d);
  assert_int_equal(d.via, DIAL_VIA_EXPERIMENT);
  decide_key(&f, "device-1", 3000, &d);
  assert_int_not_equal(d.via, DIAL_VIA_EXPERIMENT);
  /* without a dial on the route, the experiment explains the default */
  f.routes[1].dial = NULL;
  f.routes[1].dial_index = SIZE_MAX;
  decide_key(&f, "device-1", 3000, &d);
  assert_int_equal(d.via, DIAL_VIA_DEFAULT);
  assert_int_equal(d.backend_index, B_OLD);
  dial_decision_format(&d, buf, sizeof buf);
  assert_string_equal(buf, "experiment=canary-eu;reason=experiment-completed");

  assert_int_equal(exp_effective_state(EXP_STOPPED, 0, 0, 5), EXP_STOPPED);
  assert_int_equal(exp_effective_state(EXP_RUNNING, 0, 0, 5), EXP_RUNNING);
  assert_int_equal(exp_effective_state(EXP_RUNNING, 10, 0, 5), EXP_PENDING);
  assert_int_equal(exp_effective_state(EXP_RUNNING, 0, 5, 5), EXP_COMPLETED);
  assert_true(exp_can_transition(EXP_PENDING, EXP_RUNNING));
  assert_true(exp_can_transition(EXP_RUNNING, EXP_STOPPED));
  assert_true(exp_can_transition(EXP_PENDING, EXP_STOPPED));
  assert_false(exp_can_transition(EXP_STOPPED, EXP_RUNNING));
  assert_false(exp_can_transition(EXP_COMPLETED, EXP_RUNNING));
  enum exp_state s;
  assert_int_equal(exp_state_parse("stopped", &s), 0);
  assert_int_equal(s, EXP_STOPPED);
  assert_int_equal(exp_state_parse("paused", &s), CUT_ERR_INVALID);
  assert_string_equal(exp_state_name(EXP_COMPLETED), "completed");
}

static void test_exp_arm_rule(void **state) {
  (void)state;
  assert_int_equal(exp_arm_of(0), EXP_ARM_CANARY);
  assert_int_equal(exp_arm_of(1), EXP_ARM_BASELINE);
  assert_int_equal(exp_arm_of(577019), EXP_ARM_BASELINE);
  assert_int_equal(exp_arm_of(884274), EXP_ARM_CANARY);
}

static struct exp_kpi_window win(uint64_t cr, uint64_t ce, double cp, uint64_t br, uint64_t be,
                                 double bp) {
  struct exp_kpi_window w = {{cr, ce, cp}, {br, be, bp}};
  return w;
}

static void test_exp_kpi_errors(void **state) {
  (void)state;
  struct cfg_kpi kpi = {0.02, 1.5, 60000, 100, 3};
  struct exp_kpi_state st = {0};
  char why[160];
  struct exp_kpi_window bad = win(1000, 71, 100, 1000, 10, 100);
  struct exp_kpi_window good = win(1000, 25, 100, 1000, 10, 100); /* delta 1.5% */
  assert_int_equal(exp_kpi(&kpi, &st, &bad, why, sizeof why), EXP_KPI_CONTINUE);
  assert_int_equal(exp_kpi(&kpi, &st, &bad, why, sizeof why), EXP_KPI_CONTINUE);
  assert_int_equal(exp_kpi(&kpi, &st, &good, why, sizeof why), EXP_KPI_CONTINUE);
  assert_int_equal(st.bad_streak, 0);
  assert_int_equal(exp_kpi(&kpi, &st, &bad, why, sizeof why), EXP_KPI_CONTINUE);
  assert_int_equal(exp_kpi(&kpi, &st, &bad, why, sizeof why), EXP_KPI_CONTINUE);
  /* a thin window neither breaks nor extends the streak */
  struct exp_kpi_window thin = win(50, 40, 100, 1000, 0, 100);
  assert_int_equal(exp_kpi(&kpi, &st, &thin, why, sizeof why), EXP_KPI_CONTINUE);
  assert_int_equal(st.bad_streak, 2);
  assert_int_equal(st.skipped, 1);
  assert_int_equal(exp_kpi(&kpi, &st, &bad, why, sizeof why), EXP_KPI_STOP);
  assert_string_equal(why, "error rate 7.10% vs 1.00% (max delta 2.00%) for 3 windows");
}

static void test_exp_kpi_latency(void **state) {
  (void)state;
  struct cfg_kpi kpi = {0.02, 1.5, 60000, 100, 1};
  struct exp_kpi_state st = {0};
  char why[160];
  struct exp_kpi_window w = win(500, 0, 150, 500, 0, 100); /* exactly 1.5: fine */
  assert_int_equal(exp_kpi(&kpi, &st, &w, why, sizeof why), EXP_KPI_CONTINUE);
  w = win(500, 0, 0, 500, 0, 100); /* unknown p99 is not judged */
  assert_int_equal(exp_kpi(&kpi, &st, &w, why, sizeof why), EXP_KPI_CONTINUE);
  w = win(500, 0, 151, 500, 0, 100);
  assert_int_equal(exp_kpi(&kpi, &st, &w, why, sizeof why), EXP_KPI_STOP);
  assert_string_equal(why, "p99 151.0ms vs 100.0ms (max ratio 1.50) for 1 window");
  assert_int_equal(exp_kpi(NULL, &st, &w, why, sizeof why), EXP_KPI_CONTINUE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exp_split_and_growth),
      cmocka_unit_test(test_exp_states),
      cmocka_unit_test(test_exp_arm_rule),
      cmocka_unit_test(test_exp_kpi_errors),
      cmocka_unit_test(test_exp_kpi_latency),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
