/* dial_cmd: `cutover dial bucket|eval|get|set|step|rollback`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/cut_err.h"
#include "config/config.h"
#include "dials/dial.h"
#include "dials/dial_admin_cmd.h"
#include "dials/dial_eval.h"

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

/* Parsed `dial eval` arguments; header names and values point into argv. */
struct eval_args {
  const char *config;
  const char *route;
  const char *path;
  const char *method;
  int64_t now;
  struct dial_header *headers;
  size_t nheaders;
};

static int add_header(struct eval_args *a, const char *spec) {
  const char *eq = strchr(spec, '=');
  if (!eq || eq == spec) {
    fprintf(stderr, "cutover dial eval: --header wants NAME=VALUE, got \"%s\"\n", spec);
    return 2;
  }
  struct dial_header *h = realloc(a->headers, (a->nheaders + 1) * sizeof *h);
  if (!h) return 1;
  a->headers = h;
  /* Names keep their case: header lookups compare names case-insensitively. */
  h[a->nheaders].name = (struct dial_slice){spec, (size_t)(eq - spec)};
  h[a->nheaders].value = (struct dial_slice){eq + 1, strlen(eq + 1)};
  a->nheaders++;
  return 0;
}

static int parse_eval(struct eval_args *a, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
      usage(stdout);
      return -1;
    }
    if (!v) {
      fprintf(stderr, "cutover dial eval: %s needs a value\n", o);
      return 2;
    }
    if (!strcmp(o, "-c") || !strcmp(o, "--config")) {
      a->config = v;
    } else if (!strcmp(o, "--header") || !strcmp(o, "-H")) {
      int rc = add_header(a, argv[i + 1]);
      if (rc) return rc;
    } else if (!strcmp(o, "--path")) {
      a->path = v;
    } else if (!strcmp(o, "--method")) {
      a->method = v;
    } else if (!strcmp(o, "--route")) {
      a->route = v;
    } else if (!strcmp(o, "--now")) {
      char *end;
      a->now = strtoll(v, &end, 10);
      if (*end || !*v) {
        fprintf(stderr, "cutover dial eval: --now wants epoch seconds, got \"%s\"\n", v);
        return 2;
      }
    } else {
      fprintf(stderr, "cutover dial eval: unknown option %s\n", o);
      return 2;
    }
    i++;
  }
  if (!a->config) {
    fprintf(stderr, "cutover dial eval: -c FILE is required\n");
    return 2;
  }
  return 0;
}

static int eval_cmd(int argc, char **argv) {
  struct eval_args a = {.path = "/", .method = "GET", .now = (int64_t)time(NULL)};
  int rc = parse_eval(&a, argc, argv);
  if (rc) {
    free(a.headers);
    return rc < 0 ? 0 : rc;
  }
  struct cfg *cfg = NULL;
  char *errs = NULL;
  rc = cfg_load(a.config, &cfg, &errs);
  if (rc) {
    fprintf(stderr, "%s", errs ? errs : cut_strerror(rc));
    if (errs && *errs && errs[strlen(errs) - 1] != '\n') fputc('\n', stderr);
    free(errs);
    free(a.headers);
    return 1;
  }
  free(errs);
  size_t route = SIZE_MAX;
  if (a.route) {
    for (size_t i = 0; i < cfg->nroutes; i++)
      if (cfg->routes[i].name && !strcmp(cfg->routes[i].name, a.route)) route = i;
    if (route == SIZE_MAX) {
      fprintf(stderr, "cutover dial eval: no route named \"%s\"\n", a.route);
      cfg_unref(cfg);
      free(a.headers);
      return 1;
    }
  }
  struct dial_request req = {
      .method = {a.method, strlen(a.method)},
      .path = {a.path, strlen(a.path)},
      .headers = a.headers,
      .nheaders = a.nheaders,
  };
  rc = dial_eval(cfg, NULL, route, &req, a.now, stdout);
  cfg_unref(cfg);
  free(a.headers);
  return rc ? 1 : 0;
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
      !strcmp(sub, "rollback"))
    return dial_admin_cmd(argc - 1, argv + 1);
  fprintf(stderr, "cutover dial: unknown subcommand \"%s\"\n", sub);
  usage(stderr);
  return 2;
}
