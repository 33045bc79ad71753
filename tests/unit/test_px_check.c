/* px_check: `config check` loads the TLS files a config names and reports each problem with
 * the file:line:col of the object that names it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cut_err.h"
#include "config/config.h"
#include "proxy/px_check.h"

#ifndef CUTOVER_SOURCE_DIR
#define CUTOVER_SOURCE_DIR "."
#endif

static const char *src_dir(void) {
  const char *s = getenv("CUTOVER_SOURCE_DIR");
  return s ? s : CUTOVER_SOURCE_DIR;
}

static struct cfg *load(const char *cert, const char *key, const char *backend_ca) {
  char text[4096];
  snprintf(text, sizeof text,
           "listeners:\n"
           "  - name: plain\n"
           "    listen: 127.0.0.1:8080\n"
           "  - name: secure\n"
           "    listen: 127.0.0.1:8443\n"
           "    tls: { cert: \"%s\", key: \"%s\" }\n"
           "backends:\n"
           "  old:\n"
           "    hosts: [\"127.0.0.1:1\"]\n"
           "  new:\n"
           "    hosts: [\"127.0.0.1:2\"]\n"
           "    protocol: h2\n"
           "    tls: { ca: \"%s\" }\n"
           "routes:\n"
           "  - name: all\n"
           "    backend: old\n",
           cert, key, backend_ca);
  struct cfg *c = NULL;
  char *errs = NULL;
  int rc = cfg_load_buffer("t.yaml", text, strlen(text), &c, &errs);
  if (rc != 0)
    fprintf(stderr, "%s", errs ? errs : "?");
  free(errs);
  assert_int_equal(rc, 0);
  return c;
}

static void test_px_check_good_files(void **state) {
  (void)state;
  char cert[512], key[512];
  snprintf(cert, sizeof cert, "%s/tests/unit/data/px_upstream_cert.pem", src_dir());
  snprintf(key, sizeof key, "%s/tests/unit/data/px_upstream_key.pem", src_dir());
  struct cfg *c = load(cert, key, cert);
  char *errs = NULL;
  assert_int_equal(px_check_resources(c, &errs), 0);
  assert_null(errs);
  cfg_unref(c);
}

static void test_px_check_missing_and_mismatched(void **state) {
  (void)state;
  char cert[512], key[512];
  snprintf(cert, sizeof cert, "%s/tests/unit/data/px_upstream_cert.pem", src_dir());
  snprintf(key, sizeof key, "%s/tests/unit/data/px_upstream_key.pem", src_dir());
  /* the listener's key is missing; the backend's CA bundle is not a certificate */
  struct cfg *c = load(cert, "/nonexistent/key.pem", "/dev/null");
  char *errs = NULL;
  assert_int_equal(px_check_resources(c, &errs), 2);
  assert_non_null(errs);
  assert_non_null(strstr(errs, "t.yaml:4:5: listener secure: private key /nonexistent/key.pem: "
                               "No such file or directory"));
  assert_non_null(strstr(errs, "t.yaml:10:3: backend new: cannot load CA bundle /dev/null"));
  free(errs);
  cfg_unref(c);

  /* a key that is no PEM key at all */
  c = load(cert, cert, cert);
  assert_int_equal(px_check_resources(c, &errs), 1);
  assert_non_null(strstr(errs, "listener secure: private key"));
  free(errs);
  cfg_unref(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_px_check_good_files),
      cmocka_unit_test(test_px_check_missing_and_mismatched),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
