/* Placeholder for `cutover proxy`: the issue that builds it replaces this file. */
#include <stdio.h>

#include "common/cli.h"

int px_cmd(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "cutover proxy: not built yet\n");
  return 2;
}
