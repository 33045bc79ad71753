/* Scratch directories for the replay unit tests (spill, file sink, Kafka, recorder). */
#ifndef TEST_REC_FIXTURE_H
#define TEST_REC_FIXTURE_H

/* Include after <cmocka.h>: the helpers fail the running test on error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Creates /tmp/cutover-test-<tag>-XXXXXX and returns its path; the caller
 * removes and frees it with rec_fixture_remove_dir(). */
__attribute__((unused)) static char *rec_fixture_make_dir(const char *tag) {
  char tmpl[256];
  snprintf(tmpl, sizeof tmpl, "/tmp/cutover-test-%s-XXXXXX", tag);
  char *d = strdup(tmpl);
  assert_non_null(d);
  assert_non_null(mkdtemp(d));
  return d;
}

/* Removes the directory tree `d` and frees the string (takes ownership). */
__attribute__((unused)) static void rec_fixture_remove_dir(char *d) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  assert_int_equal(system(cmd), 0);
  free(d);
}

#endif
