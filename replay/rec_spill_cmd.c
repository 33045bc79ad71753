/* Placeholder for `cutover spill`: the issue that builds it replaces this file. */
#include <stdio.h>

#include "common/cli.h"

int rec_spill_cmd(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "cutover spill: not built yet\n");
  return 2;
}
