/* Unit tests for replay/rec_recorder: sink selection from config, embedded broker, metrics text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "replay/rec_avro.h"
#include "replay/rec_avrofile.h"
#include "replay/rec_recorder.h"
#include "rec_fixture.h"

static void submit_n(struct rec_recorder *r, int n) {
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  for (int i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "id-%d", i);
    struct rec_pair *p;
    assert_int_equal(rec_pair_new(&p, NULL, id, i, "r"), 0);
    assert_int_equal(rec_recorder_submit(r, c, p), 0);
    rec_pair_free(p);
  }
  rec_codec_free(c);
}

static void test_rec_recorder_embedded(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("recorder");
  struct cfg_recording rc = {.sink = CFG_SINK_KAFKA, .brokers = "embedded", .topic = "t",
                             .spill_dir = dir};
  struct rec_recorder *r;
  char err[256];
  assert_int_equal(rec_recorder_new(&r, &rc, err, sizeof err), 0);
  assert_true(rec_recorder_embedded(r));
  assert_non_null(strstr(rec_recorder_bootstrap(r), "127.0.0.1:"));
  submit_n(r, 10);
  rec_sink_flush(rec_recorder_sink(r), 10000);
  struct rec_stats_view v;
  rec_sink_stats(rec_recorder_sink(r), &v);
  assert_int_equal(v.delivered, 10);
  assert_int_equal(v.dropped_total, 0);
  assert_int_equal(v.queue_depth, 0);
  rec_recorder_free(r);
  rec_fixture_remove_dir(dir);
}

static void test_rec_recorder_none_and_file(void **state) {
  (void)state;
  struct cfg_recording off = {.sink = CFG_SINK_NONE};
  struct rec_recorder *r;
  assert_int_equal(rec_recorder_new(&r, &off, NULL, 0), 0);
  assert_null(rec_recorder_bootstrap(r));
  assert_null(rec_recorder_sink(r));
  submit_n(r, 3);
  rec_recorder_free(r);
  rec_recorder_free(NULL);

  char *dir = rec_fixture_make_dir("recorder");
  struct cfg_recording file = {.sink = CFG_SINK_FILE, .file_dir = dir};
  assert_int_equal(rec_recorder_new(&r, &file, NULL, 0), 0);
  assert_false(rec_recorder_embedded(r));
  submit_n(r, 7);
  rec_recorder_free(r);
  char **list;
  assert_int_equal(rec_avrofile_list(dir, "pairs", &list), 1);
  rec_avrofile_list_free(list);
  rec_fixture_remove_dir(dir);
}

int main(void) {
  log_setup(LOG_ERROR, LOG_TEXT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rec_recorder_embedded),
      cmocka_unit_test(test_rec_recorder_none_and_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
