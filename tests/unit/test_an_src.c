/* Unit tests for analyzer/an_src_file: directories, damaged and foreign Avro files. */
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

#include "analyzer/an_src.h"
#include "common/cut_err.h"
#include "replay/rec_avro.h"
#include "replay/rec_avrofile.h"
#include "replay/rec_stats.h"
#include "rec_fixture.h"

static int count_cb(struct an_record *rec, void *user_data) {
  (*(int *)user_data)++;
  an_record_free(rec);
  return 0;
}

/* Writes `n` pairs into one finished file of `dir` (a flush after every 10,
 * so there are several blocks) and returns its path (caller frees). */
static char *write_pairs(const char *dir, int n) {
  struct rec_codec *c;
  assert_int_equal(rec_codec_new(&c, NULL, 0), 0);
  struct rec_stats st = {0};
  struct rec_avrofile *f;
  struct rec_avrofile_opts o = {.dir = dir, .prefix = "pairs"};
  assert_int_equal(rec_avrofile_new(&f, &o, &st, &st.spilled, NULL, 0), 0);
  for (int i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "p-%04d", i);
    struct rec_pair *p;
    assert_int_equal(rec_pair_new(&p, NULL, id, i, "r"), 0);
    assert_int_equal(rec_pair_set_request(p, "GET", "h", "/x"), 0);
    uint8_t *buf;
    size_t len;
    assert_int_equal(rec_codec_encode(c, p, &buf, &len), 0);
    rec_pair_free(p);
    assert_int_equal(rec_avrofile_push(f, buf + REC_SOE_HEADER_LEN, len - REC_SOE_HEADER_LEN), 0);
    free(buf);
    if (i % 10 == 9)
      rec_avrofile_flush(f);
  }
  rec_avrofile_free(f);
  rec_codec_free(c);
  char **list;
  assert_int_equal(rec_avrofile_list(dir, "pairs", &list), 1);
  char *path = strdup(list[0]);
  rec_avrofile_list_free(list);
  return path;
}

static void test_an_src_empty_directory(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("an-src");
  int n = 0;
  char err[256] = "";
  assert_int_equal(an_src_file(dir, count_cb, &n, err, sizeof err), 0);
  assert_int_equal(n, 0);
  rec_fixture_remove_dir(dir);
}

static void test_an_src_reads_directory(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("an-src");
  char *path = write_pairs(dir, 30);
  int n = 0;
  char err[256] = "";
  assert_int_equal(an_src_file(dir, count_cb, &n, err, sizeof err), 0);
  assert_int_equal(n, 30);
  free(path);
  rec_fixture_remove_dir(dir);
}

/* A file cut short is an error naming the file and the record, after the
 * records before the damage. */
static void test_an_src_truncated_file(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("an-src");
  char *path = write_pairs(dir, 30);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(truncate(path, st.st_size - 20), 0);
  int n = 0;
  char err[512] = "";
  assert_int_equal(an_src_file(path, count_cb, &n, err, sizeof err), CUT_ERR_AVRO);
  assert_non_null(strstr(err, path));
  /* Where blocks end depends on the writer thread: the records handed over
   * are those before the one named. */
  const char *at = strstr(err, ": record ");
  assert_non_null(at);
  assert_int_equal(atoi(at + 9), n + 1);
  assert_true(n >= 10 && n < 30);
  free(path);
  rec_fixture_remove_dir(dir);
}

/* Files that are not Avro containers at all. */
static void test_an_src_not_avro(void **state) {
  (void)state;
  char *dir = rec_fixture_make_dir("an-src");
  char path[4200];
  snprintf(path, sizeof path, "%s/x.avro", dir);
  /* (avro-c leaks when it fails to open the ones past the magic bytes.) */
  static const char *const contents[] = {"", "Obj", "Obj\x01", "Obj\x01\x02\x02xx",
                                         "{\"json\": true}"};
  for (size_t i = 0; i < sizeof contents / sizeof contents[0]; i++) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fwrite(contents[i], 1, strlen(contents[i]), fp);
    fclose(fp);
    int n = 0;
    char err[512] = "";
    int rc = an_src_file(path, count_cb, &n, err, sizeof err);
    assert_true(rc == CUT_ERR_AVRO || rc == CUT_ERR_PARSE);
    assert_non_null(strstr(err, path));
    assert_int_equal(n, 0);
  }
  rec_fixture_remove_dir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_an_src_empty_directory),
      cmocka_unit_test(test_an_src_reads_directory),
      cmocka_unit_test(test_an_src_truncated_file),
      cmocka_unit_test(test_an_src_not_avro),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
