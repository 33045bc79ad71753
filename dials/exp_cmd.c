/* Placeholder for `cutover experiment`: the issue that builds it replaces this file. */
#include <stdio.h>

#include "common/cli.h"

int exp_cmd(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "cutover experiment: not built yet\n");
  return 2;
}
