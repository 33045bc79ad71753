/* Unit tests for replay/rec_avrofile and the file sink: rotation, size cap, drops, read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "replay/rec_avro.h"
#include "replay/rec_avrofile.h"
#include "replay/rec_sink.h"
#include "rec_fixture.h"

/* A real pair record with `body` incompressible bytes; returns the single-object buffer. */
static uint8_t *make_record(struct rec_codec *c, int i, size_t body, size_t *len) {
  char id[32];
  snprintf(id, sizeof id, "r-%05d", i);
  struct rec_pair *p;
  assert_int_equal(rec_pair_new(&p, NULL, id, i, "spill"), 0);
  uint8_t *b = malloc(body + 1);
  uint32_t x = 2463534242u + (uint32_t)i;
  for (size_t k = 0; k < body; k++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b[k] = (uint8_t)x;
  }
  assert_int_equal(rec_pair_request_body(p, b, body), 0);
  free(b);
  uint8_t *out;
  assert_int_equal(rec_codec_encode(c, p, &out, len), 0);
  rec_pair_free(p);
  return out;
}

struct readback {
  struct rec_codec *codec;
  int next;      /* expected index of the next record */
  int count;
};

static int check_cb(const uint8_t *rec, size_t len, void *ud) {
  struct readback *rb = ud;
  struct rec_pair *p;
  if (rec_codec_decode_binary(rb->codec, rec, len, &p))
    return -100;
  char want[32];
  snprintf(want, sizeof want, "r-%05d", rb->next);
  int ok = strcmp(p->correlation_id, want) == 0;
  rec_pair_free(p);
  if (!ok)
    return -101;
  rb->next++;
  rb->count++;
  return 0;
}

/* Reads every finished file of dir in order; returns the record count. */
static int read_all(const char *dir, const char *prefix, struct rec_codec *c, long *nfiles,
                    uint64_t *bytes) {
  char **list;
  long n = rec_avrofile_list(dir, prefix, &list);
  assert_true(n >= 0);
  struct readback rb = {.codec = c};
  *bytes = 0;
  for (long i = 0; i < n; i++) {
    char err[256] = "";
    long got = rec_avrofile_each(list[i], check_cb, &rb, err, sizeof err);
    if (got < 0)
      fail_msg("%s: %ld %s", list[i], got, err);
    struct stat st;
    assert_int_equal(stat(list[i], &st), 0);
    *bytes += (uint64_t)st.st_size;
  }
  rec_avrofile_list_free(list);
  *nfiles = n;
  return rb.count;
}

static void test_rec_spill_rotation(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("spill");
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_stats st = {0};
  struct rec_avrofile *f;
  struct rec_avrofile_opts o = {.dir = dir, .prefix = "spill", .segment_bytes = 8192};
  assert_int_equal(rec_avrofile_new(&f, &o, &st, &st.spilled, NULL, 0), 0);
  for (int i = 0; i < 40; i++) {
    size_t len;
    uint8_t *r = make_record(c, i, 1000, &len);
    assert_int_equal(rec_avrofile_push(f, r + REC_SOE_HEADER_LEN, len - REC_SOE_HEADER_LEN), 0);
    free(r);
    if (i == 19)
      rec_avrofile_flush(f);
  }
  rec_avrofile_free(f);
  struct rec_stats_view v;
  rec_stats_read(&st, &v);
  assert_int_equal(v.spilled, 40);
  assert_int_equal(v.dropped_total, 0);
  long nfiles;
  uint64_t bytes;
  assert_int_equal(read_all(dir, "spill", c, &nfiles, &bytes), 40);
  /* ~40 KB of incompressible records in 8 KiB segments. */
  assert_true(nfiles >= 4);
  /* No .part file is left behind. */
  char cmd[300];
  snprintf(cmd, sizeof cmd, "ls '%s' | grep -q part", dir);
  assert_int_not_equal(system(cmd), 0);
  rec_codec_free(c);
  rec_fixture_remove_dir(dir);
}

static void test_rec_spill_size_cap(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("spill");
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_stats st = {0};
  struct rec_avrofile *f;
  struct rec_avrofile_opts o = {
      .dir = dir, .prefix = "spill", .segment_bytes = 8192, .max_bytes = 30000};
  assert_int_equal(rec_avrofile_new(&f, &o, &st, &st.spilled, NULL, 0), 0);
  for (int i = 0; i < 60; i++) {
    size_t len;
    uint8_t *r = make_record(c, i, 1000, &len);
    assert_int_equal(rec_avrofile_push(f, r + REC_SOE_HEADER_LEN, len - REC_SOE_HEADER_LEN), 0);
    free(r);
    rec_avrofile_flush(f); /* one at a time, so the order of drops is deterministic */
  }
  rec_avrofile_free(f);
  struct rec_stats_view v;
  rec_stats_read(&st, &v);
  assert_true(v.spilled > 10);
  assert_true(v.dropped[REC_DROP_SPILL_FULL] > 10);
  assert_int_equal(v.spilled + v.dropped[REC_DROP_SPILL_FULL], 60);
  long nfiles;
  uint64_t bytes;
  /* What was kept is a prefix of what was pushed, and the cap holds on disk. */
  assert_int_equal(read_all(dir, "spill", c, &nfiles, &bytes), (int)v.spilled);
  assert_true(bytes <= 30000);
  rec_codec_free(c);
  rec_fixture_remove_dir(dir);
}

static void test_rec_spill_queue_full(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("spill");
  struct rec_stats st = {0};
  struct rec_avrofile *f;
  struct rec_avrofile_opts o = {.dir = dir, .prefix = "spill", .queue_bytes = 50};
  assert_int_equal(rec_avrofile_new(&f, &o, &st, &st.spilled, NULL, 0), 0);
  uint8_t big[100] = {0};
  assert_int_equal(rec_avrofile_push(f, big, sizeof big), CUT_ERR_FULL);
  assert_int_equal(rec_avrofile_push(f, big, sizeof big), CUT_ERR_FULL);
  rec_avrofile_free(f);
  struct rec_stats_view v;
  rec_stats_read(&st, &v);
  assert_int_equal(v.dropped[REC_DROP_QUEUE_FULL], 2);
  assert_int_equal(v.spilled, 0);
  assert_string_equal(rec_drop_reason_name(REC_DROP_QUEUE_FULL), "queue_full");
  assert_string_equal(rec_drop_reason_name(REC_DROP_SPILL_FULL), "spill_full");
  /* Nothing written: no file at all (empty containers are removed). */
  char **list;
  assert_int_equal(rec_avrofile_list(dir, "spill", &list), 0);
  rec_avrofile_list_free(list);
  rec_fixture_remove_dir(dir);
}

static void test_rec_spill_file_sink(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("spill");
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_sink *s;
  char err[256], sub[300];
  snprintf(sub, sizeof sub, "%s/a/b", dir); /* missing parents are created */
  assert_int_equal(rec_sink_file_new(&s, sub, 0, err, sizeof err), 0);
  for (int i = 0; i < 25; i++) {
    size_t len;
    uint8_t *r = make_record(c, i, 100, &len);
    assert_int_equal(rec_sink_submit(s, "k", 1, r, len), 0);
    free(r);
  }
  assert_int_equal(rec_sink_submit(s, "k", 1, (const uint8_t *)"xx", 2), CUT_ERR_INVALID);
  rec_sink_flush(s, 1000);
  struct rec_stats_view v;
  rec_sink_stats(s, &v);
  assert_int_equal(v.produced, 25);
  assert_int_equal(v.delivered, 25);
  rec_sink_free(s);
  long nfiles;
  uint64_t bytes;
  assert_int_equal(read_all(sub, "pairs", c, &nfiles, &bytes), 25);
  assert_int_equal(nfiles, 1);
  rec_codec_free(c);
  rec_fixture_remove_dir(dir);
}

static void test_rec_spill_large_record(void **state) {
  (void)state;
  /* A record larger than the default block still fits (the file gets a larger block). */
  char *dir = rec_fixture_make_dir("spill");
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_stats st = {0};
  struct rec_avrofile *f;
  struct rec_avrofile_opts o = {.dir = dir, .prefix = "spill"};
  assert_int_equal(rec_avrofile_new(&f, &o, &st, &st.spilled, NULL, 0), 0);
  for (int i = 0; i < 3; i++) {
    size_t len;
    uint8_t *r = make_record(c, i, i == 1 ? (3u << 20) : 10, &len);
    assert_int_equal(rec_avrofile_push(f, r + REC_SOE_HEADER_LEN, len - REC_SOE_HEADER_LEN), 0);
    free(r);
  }
  rec_avrofile_free(f);
  long nfiles;
  uint64_t bytes;
  assert_int_equal(read_all(dir, "spill", c, &nfiles, &bytes), 3);
  rec_codec_free(c);
  rec_fixture_remove_dir(dir);
}

static void test_rec_spill_recover(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("spill"), *dir2 = rec_fixture_make_dir("spill");
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_stats st = {0};
  struct rec_avrofile *f;
  struct rec_avrofile_opts o = {.dir = dir, .prefix = "spill"};
  assert_int_equal(rec_avrofile_new(&f, &o, &st, &st.spilled, NULL, 0), 0);
  for (int i = 0; i < 5; i++) {
    size_t len;
    uint8_t *r = make_record(c, i, 50, &len);
    assert_int_equal(rec_avrofile_push(f, r + REC_SOE_HEADER_LEN, len - REC_SOE_HEADER_LEN), 0);
    free(r);
  }
  rec_avrofile_flush(f);
  /* The live writer's file is locked: recovery leaves it alone. */
  assert_int_equal(rec_avrofile_recover(dir, "spill"), 0);
  /* A copy of it stands for a file left by a crashed process; add two broken ones. */
  char cmd[600];
  snprintf(cmd, sizeof cmd,
           "cp %s/*.avro.part %s/spill-1-1.avro.part && printf 'Obj\\001xx' > %s/spill-2-2.avro.part"
           " && : > %s/spill-3-3.avro.part",
           dir, dir2, dir2, dir2);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(rec_avrofile_recover(dir2, "spill"), 1);
  long nfiles;
  uint64_t bytes;
  assert_int_equal(read_all(dir2, "spill", c, &nfiles, &bytes), 5);
  snprintf(cmd, sizeof cmd, "ls %s | grep -q part", dir2);
  assert_int_not_equal(system(cmd), 0); /* the broken ones are gone */
  rec_avrofile_free(f);
  assert_int_equal(read_all(dir, "spill", c, &nfiles, &bytes), 5);
  rec_codec_free(c);
  rec_fixture_remove_dir(dir);
  rec_fixture_remove_dir(dir2);
}

/* Writes 2 x 10 records (two flushes, so at least two blocks) into one finished file. */
static char *two_block_file(const char *dir, struct rec_codec *c) {
  struct rec_stats st = {0};
  struct rec_avrofile *f;
  struct rec_avrofile_opts o = {.dir = dir, .prefix = "spill"};
  assert_int_equal(rec_avrofile_new(&f, &o, &st, &st.spilled, NULL, 0), 0);
  for (int i = 0; i < 20; i++) {
    size_t len;
    uint8_t *r = make_record(c, i, 200, &len);
    assert_int_equal(rec_avrofile_push(f, r + REC_SOE_HEADER_LEN, len - REC_SOE_HEADER_LEN), 0);
    free(r);
    if (i == 9)
      rec_avrofile_flush(f);
  }
  rec_avrofile_free(f);
  char **list;
  assert_int_equal(rec_avrofile_list(dir, "spill", &list), 1);
  char *path = strdup(list[0]);
  rec_avrofile_list_free(list);
  return path;
}

/* A finished file cut short is damage, not a clean end: reading reports it
 * (so a drain keeps the file) after handing over the records before it. */
static void test_rec_spill_truncated_file_is_an_error(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("spill");
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  char *path = two_block_file(dir, c);
  struct readback rb = {.codec = c};
  char err[512] = "";
  assert_int_equal(rec_avrofile_each(path, check_cb, &rb, err, sizeof err), 20);

  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(truncate(path, st.st_size - 30), 0);
  rb = (struct readback){.codec = c};
  err[0] = '\0';
  assert_int_equal(rec_avrofile_each(path, check_cb, &rb, err, sizeof err), CUT_ERR_PARSE);
  assert_non_null(strstr(err, path));
  /* Where blocks end depends on the writer thread: the records handed over
   * are those before the one named. */
  const char *at = strstr(err, ": record ");
  assert_non_null(at);
  assert_int_equal(atoi(at + 9), rb.count + 1);
  assert_true(rb.count >= 10 && rb.count < 20);
  free(path);
  rec_codec_free(c);
  rec_fixture_remove_dir(dir);
}

/* A crash leaves a half-written last block: recovery keeps the complete
 * blocks and cuts the torn one off, so the file then reads without error. */
static void test_rec_spill_recover_torn_block(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("spill");
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  char *path = two_block_file(dir, c);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(truncate(path, st.st_size - 30), 0);
  char part[4200];
  snprintf(part, sizeof part, "%s.part", path);
  assert_int_equal(rename(path, part), 0);
  assert_int_equal(rec_avrofile_recover(dir, "spill"), 1);
  struct readback rb = {.codec = c};
  char err[512] = "";
  long n = rec_avrofile_each(path, check_cb, &rb, err, sizeof err);
  if (n < 0)
    fail_msg("%ld %s", n, err);
  assert_true(n >= 10 && n < 20); /* the complete blocks */
  free(path);
  rec_codec_free(c);
  rec_fixture_remove_dir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rec_spill_rotation),
      cmocka_unit_test(test_rec_spill_size_cap),
      cmocka_unit_test(test_rec_spill_queue_full),
      cmocka_unit_test(test_rec_spill_file_sink),
      cmocka_unit_test(test_rec_spill_large_record),
      cmocka_unit_test(test_rec_spill_recover),
      cmocka_unit_test(test_rec_spill_truncated_file_is_an_error),
      cmocka_unit_test(test_rec_spill_recover_torn_block),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
