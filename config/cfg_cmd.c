/* Placeholder for `cutover config`: the issue that builds it replaces this file. */
#include <stdio.h>

#include "common/cli.h"

int cfg_cmd(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "cutover config: not built yet\n");
  return 2;
}
