/* cfg_cmd: `cutover config check|print FILE`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/cut_err.h"
#include "config/config.h"

static void usage(FILE *out) {
  fprintf(out, "usage: cutover config check FILE   validate FILE; prints \"ok\" or every error\n"
               "       cutover config print FILE   print the effective config (defaults filled "
               "in, secrets redacted)\n");
}

int cfg_cmd(int argc, char **argv) { return cfg_cmd_run(argc, argv, NULL); }

int cfg_cmd_run(int argc, char **argv, int (*check)(const struct cfg *c, char **errs)) {
  if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    usage(stdout);
    return 0;
  }
  if (argc != 3 || (strcmp(argv[1], "check") && strcmp(argv[1], "print"))) {
    usage(stderr);
    return 2;
  }
  struct cfg *c = NULL;
  char *errs = NULL;
  int rc = cfg_load(argv[2], &c, &errs);
  if (rc != 0) {
    if (errs)
      fputs(errs, stderr);
    else
      fprintf(stderr, "%s: %s\n", argv[2], cut_strerror(rc));
    free(errs);
    return 1;
  }
  if (!strcmp(argv[1], "check")) {
    if (check && check(c, &errs) != 0) {
      if (errs)
        fputs(errs, stderr);
      free(errs);
      rc = 1;
    } else {
      puts("ok");
    }
  } else if (cfg_print(c, stdout) != 0 || fflush(stdout) != 0) {
    fprintf(stderr, "cutover config print: write error\n");
    rc = 1;
  }
  cfg_unref(c);
  return rc ? 1 : 0;
}
