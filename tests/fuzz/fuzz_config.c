/* Fuzz target for the config loader: any bytes through cfg_load_buffer, and a
 * loaded config through cfg_print and a second load of the printed text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct cfg *c = NULL;
  char *errs = NULL;
  if (cfg_load_buffer("fuzz.yaml", (const char *)data, size, &c, &errs) != 0) {
    /* a failed load always explains itself */
    if (!errs || !*errs)
      abort();
    free(errs);
    return 0;
  }
  if (errs)
    abort();
  /* The printed effective config must load again: it is what operators copy. */
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (f) {
    if (cfg_print(c, f) != 0)
      abort();
    fclose(f);
    struct cfg *again = NULL;
    char *errs2 = NULL;
    if (cfg_load_buffer("printed.yaml", out, len, &again, &errs2) != 0) {
      fprintf(stderr, "printed config does not load:\n%s\n%s", errs2 ? errs2 : "", out);
      abort();
    }
    cfg_unref(again);
    free(out);
  }
  cfg_unref(c);
  return 0;
}
