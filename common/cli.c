/* cli: `cutover <subcommand>` dispatch. */
#include <stdio.h>
#include <string.h>

#include "common/cli.h"

struct subcommand {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
};

static const struct subcommand subcommands[] = {
    {"proxy", px_cmd, "run the edge proxy (cutover proxy -c FILE)"},
    {"config", px_config_cmd, "check or print a config file (cutover config check|print FILE)"},
    {"dial", dial_cmd, "compute buckets, evaluate decisions, turn live dials"},
    {"experiment", exp_cmd, "list, start or stop sticky-canary experiments"},
    {"replay", replay_cmd, "re-send recorded traffic to a target at a controlled rate"},
    {"analyze", an_cmd, "normalize, diff and report on recorded pairs"},
    {"spill", rec_spill_cmd, "publish spilled records to Kafka (cutover spill drain DIR)"},
    {"demo-backend", px_demo_cmd, "run a small JSON backend for demos, tests and benchmarks"},
};

static void usage(FILE *out) {
  fprintf(out, "usage: cutover <command> [args...]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
    fprintf(out, "  %-11s %s\n", subcommands[i].name, subcommands[i].summary);
  fprintf(out, "\n  version     print the version\n"
               "\nRun `cutover <command> --help` for a command's options.\n");
}

int cut_main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
    printf("cutover %s\n", CUTOVER_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
    if (!strcmp(cmd, subcommands[i].name))
      return subcommands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "cutover: unknown command \"%s\"\n\n", cmd);
  usage(stderr);
  return 2;
}
