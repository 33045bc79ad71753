/* px_cmd: `cutover proxy -c FILE`: load the config, run the server, stop on a signal. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/cut_err.h"
#include "common/log.h"
#include "config/config.h"
#include "dials/dial.h"
#include "proxy/px_alog.h"
#include "proxy/px_server.h"
#include "replay/rec_recorder.h"
#include "proxy/px_upstream.h"

static const struct px_upstream_ops pool_ops = {
    .pool_new = px_pool_new,
    .pool_free = px_pool_free,
    .start = px_exchange_start,
    .send_body = px_exchange_send_body,
    .end_body = px_exchange_end_body,
    .resume = px_exchange_resume,
    .cancel = px_exchange_cancel,
    .host = px_exchange_host,
};

static void usage(FILE *out) {
  fprintf(out, "usage: cutover proxy -c FILE [--log-level debug|info|warn|error] [--workers N]\n"
               "\n"
               "Runs the edge proxy on the config FILE until SIGINT or SIGTERM, then stops\n"
               "accepting, lets requests in flight finish (limits.drain_timeout) and exits 0.\n"
               "A second signal stops at once.\n");
}

int px_cmd(int argc, char **argv) {
  const char *path = NULL, *level = NULL;
  long workers = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
      path = argv[++i];
    } else if (!strcmp(a, "--log-level") && i + 1 < argc) {
      level = argv[++i];
    } else if (!strcmp(a, "--workers") && i + 1 < argc) {
      workers = strtol(argv[++i], NULL, 10);
      if (workers < 1 || workers > 1024) {
        fprintf(stderr, "cutover proxy: --workers wants 1..1024\n");
        return 2;
      }
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "cutover proxy: unexpected argument \"%s\"\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!path) {
    usage(stderr);
    return 2;
  }
  struct cfg *cfg = NULL;
  char *errs = NULL;
  int rc = cfg_load(path, &cfg, &errs);
  if (rc < 0) {
    if (errs && *errs)
      fprintf(stderr, "%s%s", errs, errs[strlen(errs) - 1] == '\n' ? "" : "\n");
    else
      fprintf(stderr, "cutover proxy: %s: %s\n", path, cut_strerror(rc));
    free(errs);
    return 1;
  }
  free(errs);
  enum log_level lvl = LOG_INFO;
  const char *lvl_text = level ? level : cfg->logging.level;
  if (lvl_text && log_level_parse(lvl_text, &lvl) < 0) {
    fprintf(stderr, "cutover proxy: unknown log level \"%s\"\n", lvl_text);
    cfg_unref(cfg);
    return 2;
  }
  log_setup(lvl, cfg->logging.format == CFG_LOG_JSON ? LOG_JSON : LOG_TEXT);

  /* signals are taken by this thread only, with sigwait; workers block them all */
  signal(SIGPIPE, SIG_IGN);
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  char err[512] = "";
  uint32_t nw = workers ? (uint32_t)workers : cfg->workers;
  if (!nw) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    nw = n > 0 ? (uint32_t)n : 1;
  }
  struct px_alog *alog = NULL;
  if (cfg->logging.access_log &&
      (rc = px_alog_new(&alog, cfg->logging.access_log, nw, 4096, err, sizeof err)) < 0) {
    fprintf(stderr, "cutover proxy: %s\n", err);
    cfg_unref(cfg);
    return 1;
  }
  /* Recording: the sink (and the embedded broker) live as long as the server. */
  struct rec_recorder *rec = NULL;
  if (cfg->recording.sink != CFG_SINK_NONE &&
      (rc = rec_recorder_new(&rec, &cfg->recording, err, sizeof err)) < 0) {
    fprintf(stderr, "cutover proxy: recording: %s\n", err[0] ? err : cut_strerror(rc));
    px_alog_free(alog);
    cfg_unref(cfg);
    return 1;
  }
  if (rec && rec_recorder_bootstrap(rec)) {
    /* one line on stdout that scripts and tests can read */
    printf("kafka bootstrap: %s%s\n", rec_recorder_bootstrap(rec),
           rec_recorder_embedded(rec) ? " (embedded)" : "");
    fflush(stdout);
  }
  struct px_decider decider = {.decide = dial_decide, .format = dial_decision_format, .store = NULL};
  struct px_server_opts opts = {.cfg = cfg,
                                .ops = &pool_ops,
                                .decider = &decider,
                                .alog = alog,
                                .workers = nw,
                                .rec_sink = rec ? rec_recorder_sink(rec) : NULL};
  struct px_server *srv = NULL;
  if ((rc = px_server_new(&srv, &opts, err, sizeof err)) < 0) {
    fprintf(stderr, "cutover proxy: %s\n", err[0] ? err : cut_strerror(rc));
    rec_recorder_free(rec);
    px_alog_free(alog);
    cfg_unref(cfg);
    return 1;
  }
  if ((rc = px_server_start(srv)) < 0) {
    fprintf(stderr, "cutover proxy: cannot start worker threads\n");
    px_server_free(srv);
    rec_recorder_free(rec);
    px_alog_free(alog);
    cfg_unref(cfg);
    return 1;
  }
  for (size_t i = 0; i < px_server_nlisteners(srv); i++)
    log_info("proxy", "listening on %s (%s)", px_server_listener_addr(srv, i),
             px_server_listener_tls(srv, i) ? "TLS: h2, http/1.1" : "h2c, http/1.1");
  log_info("proxy", "%u worker(s), %zu route(s), %zu backend group(s)", nw, cfg->nroutes,
           cfg->nbackends);

  int sig = 0;
  sigwait(&sigs, &sig);
  uint64_t drain = cfg->limits.drain_timeout_ms;
  log_info("proxy", "%s: stopping (drain up to %llu ms; a second signal stops at once)",
           sig == SIGINT ? "SIGINT" : "SIGTERM", (unsigned long long)drain);
  px_server_stop(srv, drain);
  while (px_server_running(srv)) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    if (sigtimedwait(&sigs, NULL, &ts) > 0) {
      log_info("proxy", "second signal: stopping now");
      px_server_stop(srv, 0);
    }
  }
  px_server_wait(srv);
  struct px_server_stats st;
  px_server_stats(srv, &st);
  px_server_free(srv);
  if (rec) {
    struct rec_stats_view rv = {0};
    if (rec_recorder_sink(rec)) {
      rec_sink_flush(rec_recorder_sink(rec), 5000);
      rec_sink_stats(rec_recorder_sink(rec), &rv);
    }
    rec_recorder_free(rec); /* delivers or spills what is queued */
    log_info("proxy", "recording: %llu delivered, %llu spilled, %llu dropped",
             (unsigned long long)rv.delivered, (unsigned long long)rv.spilled,
             (unsigned long long)rv.dropped_total);
  }
  px_alog_free(alog);
  log_info("proxy", "stopped after %llu request(s) on %llu connection(s)%s",
           (unsigned long long)st.requests, (unsigned long long)st.connections, "");
  if (st.log_dropped)
    log_warn("proxy", "%llu access log line(s) dropped", (unsigned long long)st.log_dropped);
  cfg_unref(cfg);
  return 0;
}
