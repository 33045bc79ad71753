/* Placeholder for `cutover replay`: the issue that builds it replaces this file. */
#include <stdio.h>

#include "common/cli.h"

int replay_cmd(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "cutover replay: not built yet\n");
  return 2;
}
