/* Placeholder for `cutover analyze`: the issue that builds it replaces this file. */
#include <stdio.h>

#include "common/cli.h"

int an_cmd(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "cutover analyze: not built yet\n");
  return 2;
}
