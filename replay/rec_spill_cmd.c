/* `cutover spill drain|ls DIR`: publish spilled records to Kafka, or list them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cli.h"
#include "common/cut_err.h"
#include "config/config.h"
#include "replay/rec_avrofile.h"
#include "replay/rec_drain.h"

#define MAX_PROPS 64

static void usage(FILE *out) {
  fprintf(out,
          "usage: cutover spill drain [DIR] [-c FILE] [--brokers HOST:PORT[,...]] [--topic T]\n"
          "                         [--property KEY=VALUE]... [--timeout MS]\n"
          "\n"
          "Publishes the records of the spill files in DIR (spill-*.avro, oldest first)\n"
          "to Kafka, keyed by correlation id, and deletes each file once Kafka has\n"
          "acknowledged every record in it. Stops at the first file that is not fully\n"
          "acknowledged and keeps it; running the command again resumes there.\n"
          "Delivery is at least once: consumers deduplicate by correlation id.\n"
          "\n"
          "  -c FILE     take DIR (recording.spill.dir), brokers, topic and properties\n"
          "              from a config file; options given here win\n"
          "  --brokers   Kafka bootstrap servers (required without -c, and when the\n"
          "              config says `embedded`: that broker lived inside the proxy)\n"
          "  --topic     topic (default cutover.pairs)\n"
          "  --property  extra librdkafka producer property (repeatable)\n"
          "  --timeout   how long to wait for one file's acknowledgements (default 60000)\n"
          "\n"
          "usage: cutover spill ls DIR\n"
          "\n"
          "Lists the spill files in DIR, oldest first, with their sizes and records.\n");
}

static int count_cb(const uint8_t *rec, size_t len, void *ud) {
  (void)rec;
  (void)len;
  (void)ud;
  return 0;
}

/* `cutover spill ls DIR`: the finished spill files, oldest first, with their records. */
static int spill_ls(const char *dir) {
  char **files;
  long n = rec_avrofile_list(dir, "spill", &files);
  if (n < 0) {
    fprintf(stderr, "cutover spill ls: %s: %s\n", dir, strerror(errno));
    return 1;
  }
  long total = 0;
  int status = 0;
  for (long i = 0; i < n; i++) {
    struct stat st;
    char err[512] = "";
    long recs = rec_avrofile_each(files[i], count_cb, NULL, err, sizeof err);
    if (recs < 0) {
      fprintf(stderr, "cutover spill ls: %s\n", err);
      status = 1;
      continue;
    }
    total += recs;
    printf("%s\t%lld bytes\t%ld records\n", files[i],
           stat(files[i], &st) == 0 ? (long long)st.st_size : -1LL, recs);
  }
  printf("%ld files, %ld records\n", n, total);
  rec_avrofile_list_free(files);
  return status;
}

int rec_spill_cmd(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "ls")) {
    if (argc != 3) {
      usage(stderr);
      return 2;
    }
    return spill_ls(argv[2]);
  }
  if (strcmp(argv[1], "drain") != 0) {
    fprintf(stderr, "cutover spill: unknown subcommand \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
  }
  struct rec_drain_opts o = {0};
  const char *config = NULL;
  struct cfg *cfg = NULL;
  struct cfg_kv props[MAX_PROPS];
  char *owned[MAX_PROPS];
  size_t nprops = 0;
  int status = 2;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      status = 0;
      goto out;
    } else if (!strcmp(a, "-c") && val) {
      config = val;
      i++;
    } else if (!strcmp(a, "--brokers") && val) {
      o.brokers = val;
      i++;
    } else if (!strcmp(a, "--topic") && val) {
      o.topic = val;
      i++;
    } else if (!strcmp(a, "--timeout") && val) {
      o.file_timeout_ms = atoi(val);
      i++;
    } else if (!strcmp(a, "--property") && val) {
      char *eq = strchr(val, '=');
      if (!eq || eq == val || nprops == MAX_PROPS) {
        fprintf(stderr, "cutover spill drain: --property wants KEY=VALUE\n");
        goto out;
      }
      owned[nprops] = strdup(val);
      if (!owned[nprops])
        goto out;
      owned[nprops][eq - val] = '\0';
      props[nprops].key = owned[nprops];
      props[nprops].value = owned[nprops] + (eq - val) + 1;
      props[nprops].secret = 0;
      nprops++;
      i++;
    } else if (a[0] != '-' && !o.dir) {
      o.dir = a;
    } else {
      fprintf(stderr, "cutover spill drain: unexpected argument \"%s\"\n", a);
      usage(stderr);
      goto out;
    }
  }
  if (config) {
    char *errs = NULL;
    if (cfg_load(config, &cfg, &errs) != 0) {
      fprintf(stderr, "%s\n", errs ? errs : "cutover spill drain: cannot load the config");
      free(errs);
      status = 1;
      goto out;
    }
    const struct cfg_recording *rc = &cfg->recording;
    if (!o.dir)
      o.dir = rc->spill_dir;
    if (!o.brokers && rc->brokers && strcmp(rc->brokers, "embedded") != 0)
      o.brokers = rc->brokers;
    if (!o.topic)
      o.topic = rc->topic;
  }
  if (!o.dir || !o.brokers) {
    fprintf(stderr, "cutover spill drain: DIR and --brokers are required\n");
    usage(stderr);
    goto out;
  }
  /* The config's properties first, so that --property overrides them. */
  struct cfg_kv all[2 * MAX_PROPS];
  size_t nall = 0;
  for (size_t i = 0; cfg && i < cfg->recording.nkafka_props && nall < MAX_PROPS; i++)
    all[nall++] = cfg->recording.kafka_props[i];
  for (size_t i = 0; i < nprops; i++)
    all[nall++] = props[i];
  o.props = all;
  o.nprops = nall;
  struct rec_drain_result res;
  char err[1024] = "";
  int rc = rec_drain(&o, NULL, &res, err, sizeof err);
  printf("drained %llu records from %llu files; %llu files left; %llu damaged\n",
         (unsigned long long)res.records, (unsigned long long)res.files_done,
         (unsigned long long)res.files_left, (unsigned long long)res.files_damaged);
  if (rc) {
    fprintf(stderr, "cutover spill drain: %s\n", err[0] ? err : cut_strerror(rc));
    status = 1;
  } else {
    status = 0;
  }
out:
  for (size_t i = 0; i < nprops; i++)
    free(owned[i]);
  cfg_unref(cfg);
  return status;
}
