/* exp_cmd: `cutover experiment list|start|stop`: operations go through the admin API. */
#include <stdio.h>
#include <string.h>

#include "common/cli.h"

static void usage(FILE *out) {
  fprintf(out, "usage: cutover experiment list|start NAME|stop NAME --reason TEXT\n"
               "Experiments change state through the running proxy's admin API.\n");
}

int exp_cmd(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *sub = argv[1];
  if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(sub, "list") || !strcmp(sub, "start") || !strcmp(sub, "stop")) {
    fprintf(stderr, "cutover experiment %s: needs the admin API, which is not built yet\n", sub);
    return 1;
  }
  fprintf(stderr, "cutover experiment: unknown subcommand \"%s\"\n", sub);
  usage(stderr);
  return 2;
}
