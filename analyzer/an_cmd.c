/* an_cmd: the `cutover analyze` command line (inputs, options, progress, exit status). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analyzer/an_report.h"
#include "analyzer/an_rules.h"
#include "analyzer/an_run.h"
#include "analyzer/an_src.h"
#include "analyzer/an_summary.h"
#include "common/cli.h"
#include "common/cut_err.h"

#define EXIT_BELOW_MIN 3
#define JOIN_HARD_CAP 1000000 /* records waiting, with a time --join-window */

static const char usage[] =
    "usage: cutover analyze --out DIR [--rules FILE] [--join-window N|DURATION]\n"
    "                       [--min-match-rate R] [--html-mismatches N] [--quiet]\n"
    "                       (--input FILE... | --kafka BOOTSTRAP --topic T [--group G]\n"
    "                        [--from earliest|latest|TIME] [--until TIME] [--follow]\n"
    "                        [--property KEY=VALUE]...)\n"
    "       cutover analyze merge --out DIR [--min-match-rate R] [--html-mismatches N]\n"
    "                             [--quiet] DIR...\n"
    "       cutover analyze check-rules FILE\n"
    "TIME is RFC 3339 (2026-11-21T10:00:00Z) or milliseconds since the epoch;\n"
    "DURATION is 500ms, 30s, 5m or 1h; R is 0.99 or 99%.\n"
    "Exit status: 0 ok, 1 failure, 2 usage, 3 match rate below --min-match-rate.\n";

static volatile int stop_flag;
static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "cutover analyze: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n%s", usage);
  return 2;
}

/* "500ms", "30s", "5m", "1h" -> microseconds; a bare number is a count. */
static int parse_window(const char *s, size_t *count, int64_t *us) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || v < 0 || errno != 0) return -1;
  if (*end == '\0') {
    if (v < 1 || v != (double)(size_t)v) return -1;
    *count = (size_t)v;
    *us = 0;
    return 0;
  }
  double mul = strcmp(end, "ms") == 0 ? 1e3 : strcmp(end, "s") == 0 ? 1e6
             : strcmp(end, "m") == 0 ? 60e6 : strcmp(end, "h") == 0 ? 3600e6 : -1;
  if (mul < 0 || v <= 0) return -1;
  *us = (int64_t)(v * mul);
  /* A time window still has a count bound, so a burst cannot exhaust memory. */
  *count = JOIN_HARD_CAP;
  return 0;
}

/* RFC 3339 UTC ("...Z" or "+hh:mm") or epoch milliseconds. */
static int parse_time_ms(const char *s, int64_t *ms) {
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  if (end != s && *end == '\0') {
    *ms = v;
    return 0;
  }
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (p == NULL) return -1;
  double frac = 0;
  if (*p == '.') {
    char *fe;
    frac = strtod(p, &fe);
    p = fe;
  }
  long off = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int hh, mm;
    if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return -1;
    off = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
    p += 6;
  } else {
    return -1;
  }
  if (*p != '\0') return -1;
  *ms = ((int64_t)timegm(&tm) - off) * 1000 + (int64_t)(frac * 1000);
  return 0;
}

static int parse_rate(const char *s, double *r) {
  char *end = NULL;
  double v = strtod(s, &end);
  if (end == s) return -1;
  if (*end == '%' && end[1] == '\0') v /= 100.0;
  else if (*end != '\0') return -1;
  if (v < 0 || v > 1) return -1;
  *r = v;
  return 0;
}

struct progress {
  struct an_run *run;
  int tty;
  struct timespec start, last;
  uint64_t count;
};

static double since(const struct timespec *a, const struct timespec *b) {
  return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void draw(struct progress *p, int final) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (!final && since(&p->last, &now) < 0.2) return;
  p->last = now;
  double el = since(&p->start, &now);
  fprintf(stderr, "\r\033[Kanalyze: %llu records  %.0f records/s  elapsed %.1fs%s",
          (unsigned long long)p->count, el > 0 ? (double)p->count / el : 0.0, el,
          final ? "\n" : "");
}

static int on_record(struct an_record *rec, void *user_data) {
  struct progress *p = user_data;
  p->count++;
  if (p->tty && (p->count & 1023) == 0) draw(p, 0);
  if (stop_flag) {
    an_record_free(rec);
    return CUT_ERR_CLOSED;
  }
  return an_run_add(p->run, rec);
}

static int finish_report(json_t *report, double min_rate, int quiet) {
  if (!quiet) an_report_terminal(stdout, report);
  double rate = an_summary_match_rate(report);
  json_decref(report);
  if (min_rate >= 0 && rate < min_rate) {
    if (rate < 0)
      fprintf(stderr, "cutover analyze: no pair was compared (--min-match-rate %.4f)\n", min_rate);
    else
      fprintf(stderr, "cutover analyze: match rate %.4f is below --min-match-rate %.4f\n", rate,
              min_rate);
    return EXIT_BELOW_MIN;
  }
  return 0;
}

static int cmd_check_rules(int argc, char **argv) {
  if (argc != 2) return usage_error("check-rules needs one FILE");
  struct an_rules *r = NULL;
  char err[1024];
  if (an_rules_load_file(&r, argv[1], err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  an_rules_free(r);
  printf("%s: ok\n", argv[1]);
  return 0;
}

static int cmd_merge(int argc, char **argv) {
  const char *out = NULL;
  double min_rate = -1;
  int quiet = 0;
  size_t html_n = 200;
  const char **dirs = calloc((size_t)argc, sizeof *dirs);
  size_t nd = 0;
  if (dirs == NULL) return 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else if (strcmp(argv[i], "--min-match-rate") == 0 && i + 1 < argc) {
      if (parse_rate(argv[++i], &min_rate) != 0) {
        free(dirs);
        return usage_error("bad --min-match-rate \"%s\"", argv[i]);
      }
    } else if (strcmp(argv[i], "--html-mismatches") == 0 && i + 1 < argc) {
      char *end;
      long n = strtol(argv[++i], &end, 10);
      if (*end != '\0' || n < 0) {
        free(dirs);
        return usage_error("bad --html-mismatches \"%s\"", argv[i]);
      }
      html_n = (size_t)n;
    } else if (strcmp(argv[i], "--quiet") == 0) {
      quiet = 1;
    } else if (argv[i][0] == '-') {
      free(dirs);
      return usage_error("unknown option \"%s\"", argv[i]);
    } else {
      dirs[nd++] = argv[i];
    }
  }
  if (out == NULL || nd == 0) {
    free(dirs);
    return usage_error("merge needs --out DIR and at least one partial DIR");
  }
  for (size_t i = 0; i < nd; i++)
    if (strcmp(dirs[i], out) == 0) {
      free(dirs);
      return usage_error("--out \"%s\" must differ from the partial directories", out);
    }
  json_t *report = NULL;
  char err[1024];
  int rc = an_merge(out, dirs, nd, html_n, &report, err, sizeof err);
  free(dirs);
  if (rc != 0) {
    fprintf(stderr, "cutover analyze merge: %s\n", err);
    return 1;
  }
  return finish_report(report, min_rate, quiet);
}

int an_cmd(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "merge") == 0) return cmd_merge(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "check-rules") == 0) return cmd_check_rules(argc - 1, argv + 1);
  if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    fputs(usage, stdout);
    return 0;
  }
  const char *out = NULL, *rules_path = NULL;
  const char **inputs = calloc((size_t)argc, sizeof *inputs);
  const char **props = calloc((size_t)argc, sizeof *props);
  size_t ninputs = 0, nprops = 0;
  struct an_kafka_opts ko;
  memset(&ko, 0, sizeof ko);
  double min_rate = -1;
  size_t join_count = 100000, html_n = 200;
  int64_t join_us = 0;
  int quiet = 0, rc = 2;
  if (inputs == NULL || props == NULL) {
    free(inputs);
    free(props);
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--input") == 0) {
      while (i + 1 < argc && argv[i + 1][0] != '-') inputs[ninputs++] = argv[++i];
      if (ninputs == 0) {
        rc = usage_error("--input needs at least one FILE");
        goto done;
      }
      continue;
    }
    if (strcmp(a, "--follow") == 0) {
      ko.follow = 1;
      continue;
    }
    if (strcmp(a, "--quiet") == 0) {
      quiet = 1;
      continue;
    }
    if (v == NULL) {
      rc = usage_error("unknown option or missing value: \"%s\"", a);
      goto done;
    }
    i++;
    if (strcmp(a, "--out") == 0) out = v;
    else if (strcmp(a, "--rules") == 0) rules_path = v;
    else if (strcmp(a, "--kafka") == 0) ko.bootstrap = v;
    else if (strcmp(a, "--topic") == 0) ko.topic = v;
    else if (strcmp(a, "--group") == 0) ko.group = v;
    else if (strcmp(a, "--property") == 0) props[nprops++] = v;
    else if (strcmp(a, "--from") == 0) {
      if (strcmp(v, "earliest") == 0) ko.from = AN_FROM_EARLIEST;
      else if (strcmp(v, "latest") == 0) ko.from = AN_FROM_LATEST;
      else if (parse_time_ms(v, &ko.from_ms) == 0) ko.from = AN_FROM_TIME;
      else {
        rc = usage_error("bad --from \"%s\" (earliest, latest or a time)", v);
        goto done;
      }
    } else if (strcmp(a, "--until") == 0) {
      if (parse_time_ms(v, &ko.until_ms) != 0) {
        rc = usage_error("bad --until \"%s\"", v);
        goto done;
      }
    } else if (strcmp(a, "--join-window") == 0) {
      if (parse_window(v, &join_count, &join_us) != 0) {
        rc = usage_error("bad --join-window \"%s\" (a count, or 500ms/30s/5m/1h)", v);
        goto done;
      }
    } else if (strcmp(a, "--min-match-rate") == 0) {
      if (parse_rate(v, &min_rate) != 0) {
        rc = usage_error("bad --min-match-rate \"%s\" (0..1 or 0%%..100%%)", v);
        goto done;
      }
    } else if (strcmp(a, "--html-mismatches") == 0) {
      char *end;
      long n = strtol(v, &end, 10);
      if (*end != '\0' || n < 0) {
        rc = usage_error("bad --html-mismatches \"%s\"", v);
        goto done;
      }
      html_n = (size_t)n;
    } else {
      rc = usage_error("unknown option \"%s\"", a);
      goto done;
    }
  }
  if (out == NULL) {
    rc = usage_error("--out DIR is required");
    goto done;
  }
  if ((ninputs > 0) == (ko.bootstrap != NULL)) {
    rc = usage_error("give either --input FILE... or --kafka BOOTSTRAP --topic T");
    goto done;
  }
  if (ko.bootstrap != NULL && ko.topic == NULL) {
    rc = usage_error("--kafka needs --topic");
    goto done;
  }

  char err[1024] = "";
  struct an_rules *rules = NULL;
  rc = rules_path ? an_rules_load_file(&rules, rules_path, err, sizeof err) : an_rules_new(&rules);
  if (rc != 0) {
    fprintf(stderr, "cutover analyze: %s\n", rules_path ? err : cut_strerror(rc));
    rc = 1;
    goto done;
  }
  struct an_run_opts ro = {out, rules, join_count, join_us, html_n};
  struct progress pg;
  memset(&pg, 0, sizeof pg);
  if (an_run_new(&pg.run, &ro, err, sizeof err) != 0) {
    fprintf(stderr, "cutover analyze: %s\n", err);
    an_rules_free(rules);
    rc = 1;
    goto done;
  }
  pg.tty = isatty(STDERR_FILENO);
  clock_gettime(CLOCK_MONOTONIC, &pg.start);
  pg.last = pg.start;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  ko.stop = &stop_flag;
  ko.properties = props;
  ko.nproperties = nprops;
  rc = 0;
  for (size_t i = 0; i < ninputs && rc == 0; i++) rc = an_src_file(inputs[i], on_record, &pg, err, sizeof err);
  if (ko.bootstrap != NULL) {
    uint64_t skipped = 0;
    rc = an_src_kafka(&ko, on_record, &pg, &skipped, err, sizeof err);
    if (skipped > 0)
      fprintf(stderr, "cutover analyze: skipped %llu message(s) that are not Pair records\n",
              (unsigned long long)skipped);
  }
  if (rc == CUT_ERR_CLOSED) rc = 0; /* stopped by a signal: report what was read */
  if (pg.tty) draw(&pg, 1);
  json_t *report = NULL;
  if (rc == 0) rc = an_run_finish(pg.run, &report, err, sizeof err);
  an_run_free(pg.run);
  an_rules_free(rules);
  if (rc != 0) {
    fprintf(stderr, "cutover analyze: %s\n", err[0] ? err : cut_strerror(rc));
    rc = 1;
    goto done;
  }
  rc = finish_report(report, min_rate, quiet);
done:
  free(inputs);
  free(props);
  return rc;
}
