/* Placeholder for `cutover dial`: the issue that builds it replaces this file. */
#include <stdio.h>

#include "common/cli.h"

int dial_cmd(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "cutover dial: not built yet\n");
  return 2;
}
