/* dial_cmd: `cutover dial bucket|eval|get|set|step|rollback`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "dials/dial.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: cutover dial bucket [--salt S] [KEY...]\n"
          "       cutover dial eval -c FILE [--header NAME=VALUE]... [--path P] [--method M]\n"
          "                         [--route NAME] [--now EPOCH]\n"
          "       cutover dial get|set|step|rollback ...   (through the admin API)\n"
          "\n"
          "bucket  prints KEY<TAB>BUCKET for each KEY (from stdin, one per line, when no\n"
          "        KEY is given). The salt is normally the dial's name; default empty.\n"
          "eval    prints the decision the config makes for the described request.\n");
}

static void print_bucket(const char *salt, const char *key, size_t len) {
  uint32_t b = dial_bucket(salt, strlen(salt), key, len);
  fwrite(key, 1, len, stdout);
  printf("\t%u\n", (unsigned)b);
}

static int bucket_cmd(int argc, char **argv) {
  const char *salt = "";
  int i = 1;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--salt") && i + 1 < argc) {
      salt = argv[++i];
    } else if (!strncmp(argv[i], "--salt=", 7)) {
      salt = argv[i] + 7;
    } else if (!strcmp(argv[i], "--")) {
      i++;
      break;
    } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      fprintf(stderr, "cutover dial bucket: unknown option %s\n", argv[i]);
      return 2;
    } else {
      break;
    }
  }
  if (i < argc) {
    for (; i < argc; i++) print_bucket(salt, argv[i], strlen(argv[i]));
    return 0;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, stdin)) >= 0) {
    if (n && line[n - 1] == '\n') n--;
    if (n && line[n - 1] == '\r') n--;
    print_bucket(salt, line, (size_t)n);
  }
  free(line);
  return 0;
}

static int eval_cmd(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "cutover dial eval: needs the config loader, which is not built yet\n");
  return 1;
}

int dial_cmd(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *sub = argv[1];
  if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(sub, "bucket")) return bucket_cmd(argc - 1, argv + 1);
  if (!strcmp(sub, "eval")) return eval_cmd(argc - 1, argv + 1);
  if (!strcmp(sub, "get") || !strcmp(sub, "set") || !strcmp(sub, "step") ||
      !strcmp(sub, "rollback")) {
    fprintf(stderr, "cutover dial %s: needs the admin API, which is not built yet\n", sub);
    return 1;
  }
  fprintf(stderr, "cutover dial: unknown subcommand \"%s\"\n", sub);
  usage(stderr);
  return 2;
}
