/* px_cmd: `cutover proxy -c FILE`: load the config, run the server, stop on a signal. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "common/cli.h"
#include "common/cut_err.h"
#include "common/cut_thread.h"
#include "common/log.h"
#include "common/metrics.h"
#include "config/config.h"
#include "dials/dial.h"
#include "dials/dial_store.h"
#include "proxy/px_admin.h"
#include "proxy/px_admin_dials.h"
#include "proxy/px_alog.h"
#include "proxy/px_health.h"
#include "proxy/px_limits.h"
#include "proxy/px_metrics.h"
#include "proxy/px_server.h"
#include "replay/rec_compare.h"
#include "replay/rec_metrics.h"
#include "replay/rec_mirror.h"
#include "replay/rec_recorder.h"
#include "proxy/px_upstream.h"

/* Cells per metrics shard: room for thousands of series (8 bytes each). */
#define METRIC_CELLS (1u << 16)

/* Active health checks run on their own thread and event loop; verdicts reach
 * the workers through the board (atomics), which each worker reads on its tick. */
struct health_rt {
  struct event_base *base;
  struct evdns_base *dns;
  struct px_health_checker *checker;
  struct event *stop_ev;
  pthread_t thread;
  int started;
};

/* What the admin API and SIGHUP need from the running proxy. */
/* One config snapshot, with the metric set and health board built for it;
 * kept until no worker runs on it (px_server_oldest_gen). */
struct snap {
  uint64_t id;
  struct cfg *cfg;                /* a reference */
  struct px_metrics *pm;
  struct px_health_board *board;
  struct snap *next;              /* older snapshots */
};

struct ops_ctx {
  const char *path;
  struct met_registry *reg;
  struct health_rt *health;
  struct snap *snaps;             /* newest (the current one) first */
  struct cfg_holder *holder;
  struct dial_store *store;
  struct px_server *srv;
  struct px_metrics *pm;
  struct px_health_board *board;
  const struct cfg *cfg;      /* the current snapshot (= snaps->cfg) */
  struct rec_recorder *rec;   /* recording sink and embedded broker (borrowed); may be NULL */
  struct rec_comparer *comparer; /* live comparison (borrowed); a reload gives it new rules */
  pthread_mutex_t reload_mu;  /* SIGHUP (main thread) and POST /reload (admin thread) */
  _Atomic int draining;
};

static int health_start(struct health_rt *h, const struct cfg *cfg, struct px_health_board *board,
                        struct met_registry *reg, char *err, size_t errlen);
static void health_stop(struct health_rt *h);

static void snap_free(struct snap *sn) {
  if (!sn)
    return;
  px_metrics_free(sn->pm);
  px_health_board_free(sn->board);
  cfg_unref(sn->cfg);
  free(sn);
}

/* Frees the snapshots no worker runs on any more (never the current one). */
static void snaps_reap(struct ops_ctx *x) {
  if (!x->srv || !x->snaps)
    return;
  uint64_t oldest = px_server_oldest_gen(x->srv);
  for (struct snap **pp = &x->snaps->next; *pp;) {
    struct snap *sn = *pp;
    if (sn->id < oldest) {
      *pp = sn->next;
      snap_free(sn);
    } else {
      pp = &sn->next;
    }
  }
}

/*
 * Validates the file into a new snapshot and swaps it in as a whole: the dial
 * store takes its dials and experiments (live values are kept unless the file
 * changed them), the workers its routes, backends, limits, metric set and
 * health board (requests in flight finish on the old one), the health checker
 * restarts on its backends, and the holder publishes it for the admin API.
 * Listener changes are refused: they need a restart.
 */
static int reload_cb(void *ud, json_t **out, char *err, size_t errlen) {
  struct ops_ctx *x = ud;
  pthread_mutex_lock(&x->reload_mu);
  struct cfg *next = NULL;
  struct snap *sn = NULL;
  struct an_rules *rules = NULL;
  char *errs = NULL;
  int rc = cfg_load(x->path, &next, &errs);
  if (rc < 0) {
    rc = cut_errf(err, errlen, CUT_ERR_CONFIG, "%s", errs && *errs ? errs : cut_strerror(rc));
    free(errs);
    goto done;
  }
  free(errs);
  char why[512] = "";
  if (x->srv && px_server_reload_check(x->srv, next, why, sizeof why) < 0) {
    rc = cut_errf(err, errlen, CUT_ERR_CONFIG, "%s: %s", x->path, why);
    goto fail;
  }
  /* The live comparison's rules (compare_ignore of the compare: live routes). */
  if (x->comparer && (rc = rec_compare_rules_new(&rules, next, why, sizeof why)) < 0) {
    rc = cut_errf(err, errlen, rc, "%s: %s", x->path, why[0] ? why : cut_strerror(rc));
    goto fail;
  }
  if (!(sn = calloc(1, sizeof *sn))) {
    rc = cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
    goto fail;
  }
  sn->cfg = cfg_ref(next);
  if ((rc = px_metrics_new(&sn->pm, x->reg, next, why, sizeof why)) < 0 ||
      (rc = px_health_board_new(&sn->board, next)) < 0) {
    rc = cut_errf(err, errlen, rc, "reload: %s", why[0] ? why : cut_strerror(rc));
    goto fail;
  }
  if ((rc = dial_store_apply_config(x->store, next, err, errlen)) < 0)
    goto fail;
  if (x->srv && (rc = px_server_reload(x->srv, next, sn->pm, sn->board, &sn->id, err, errlen)) < 0)
    goto fail;
  /* active checks now probe the new backend set into the new board */
  if (x->health) {
    health_stop(x->health);
    memset(x->health, 0, sizeof *x->health);
    if (health_start(x->health, next, sn->board, x->reg, why, sizeof why) < 0)
      log_error("proxy", "reload: health checks not running: %s", why);
  }
  if (x->comparer) {
    rec_comparer_set_rules(x->comparer, rules);
    rules = NULL;
  }
  sn->next = x->snaps;
  x->snaps = sn;
  x->cfg = next;
  x->pm = sn->pm;
  x->board = sn->board;
  char digest[65];
  for (int i = 0; i < 32; i++)
    snprintf(digest + 2 * i, 3, "%02x", next->digest[i]);
  cfg_holder_swap(x->holder, next);
  next = NULL;
  snaps_reap(x);
  if (out)
    *out = json_pack("{s:s, s:s, s:s}", "status", "reloaded", "sha256", digest, "applied",
                     "dials, experiments, routes, backends, limits, live comparison and "
                     "health checks now; workers, admin, recording sink and logging at the next "
                     "restart");
  log_info("proxy", "config reloaded from %s (sha256 %.12s...)", x->path, digest);
  goto done;
fail:
  an_rules_free(rules);
  snap_free(sn);
  cfg_unref(next);
done:
  px_metrics_reload(x->pm, rc == 0);
  pthread_mutex_unlock(&x->reload_mu);
  return rc;
}

static int status_cb(void *ud, json_t *s, char *err, size_t errlen) {
  struct ops_ctx *x = ud;
  pthread_mutex_lock(&x->reload_mu); /* x->cfg and x->board change on reload */
  struct px_server_stats st;
  px_server_stats(x->srv, &st);
  json_object_set_new(s, "draining", json_boolean(atomic_load(&x->draining)));
  json_object_set_new(s, "worker_threads", json_integer((json_int_t)px_server_running(x->srv)));
  json_object_set_new(s, "requests", json_integer((json_int_t)st.requests));
  json_object_set_new(s, "responses_5xx", json_integer((json_int_t)st.responses_5xx));
  json_object_set_new(s, "connections", json_integer((json_int_t)st.connections));
  json_object_set_new(s, "active_connections", json_integer((json_int_t)st.active_connections));
  /* Active-check verdicts per host (passive ejections are per worker: see the metrics). */
  json_t *ups = json_object();
  for (size_t b = 0; x->cfg && b < x->cfg->nbackends; b++) {
    const struct cfg_backend *be = &x->cfg->backends[b];
    json_t *hosts = json_array();
    for (size_t h = 0; h < be->nhosts; h++) {
      char addr[300];
      snprintf(addr, sizeof addr, "%s%s%s:%u", be->hosts[h].is_ipv6 ? "[" : "",
               be->hosts[h].host, be->hosts[h].is_ipv6 ? "]" : "", (unsigned)be->hosts[h].port);
      json_array_append_new(hosts, json_pack("{s:s, s:b}", "host", addr, "healthy",
                                             px_health_board_usable(x->board, b, h)));
    }
    json_object_set_new(ups, be->name,
                        json_pack("{s:b, s:o}", "checked", be->health.enabled, "hosts", hosts));
  }
  json_object_set_new(s, "upstreams", ups);
  pthread_mutex_unlock(&x->reload_mu);
  if (x->rec && rec_recorder_bootstrap(x->rec))
    json_object_set_new(s, "kafka", json_pack("{s:s, s:b}", "bootstrap", rec_recorder_bootstrap(x->rec),
                                              "embedded", rec_recorder_embedded(x->rec)));
  return 0;
}

static int ready_cb(void *ud) { return !atomic_load(&((struct ops_ctx *)ud)->draining); }

static void on_health_stop_cb(evutil_socket_t fd, short what, void *user_data) {
  event_base_loopbreak(user_data);
}

static void *health_thread(void *arg) {
  event_base_dispatch(((struct health_rt *)arg)->base);
  return NULL;
}

static int health_start(struct health_rt *h, const struct cfg *cfg, struct px_health_board *board,
                        struct met_registry *reg, char *err, size_t errlen) {
  int any = 0;
  for (size_t i = 0; i < cfg->nbackends; i++)
    any |= cfg->backends[i].health.enabled;
  if (!any)
    return 0;
  evthread_use_pthreads();
  if (!(h->base = event_base_new()) ||
      !(h->stop_ev = event_new(h->base, -1, 0, on_health_stop_cb, h->base)))
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "health checks: out of memory");
  h->dns = evdns_base_new(h->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
  struct px_health_checker_opts o = {.metrics = reg, .dns = h->dns};
  int rc = px_health_checker_new(&h->checker, h->base, cfg, board, &o, err, errlen);
  if (rc < 0)
    return rc;
  if (pthread_create(&h->thread, NULL, health_thread, h) != 0)
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot start the health check thread");
  h->started = 1;
  return 0;
}

static void health_stop(struct health_rt *h) {
  if (h->started) {
    event_active(h->stop_ev, EV_READ, 0);
    pthread_join(h->thread, NULL);
  }
  px_health_checker_free(h->checker);
  if (h->stop_ev)
    event_free(h->stop_ev);
  if (h->dns)
    evdns_base_free(h->dns, 0);
  if (h->base)
    event_base_free(h->base);
}

/* Delivers (or spills) what the recorder still holds, says so, and frees it. */
static void recorder_close(struct rec_recorder *rec) {
  if (!rec)
    return;
  struct rec_stats_view rv = {0};
  if (rec_recorder_sink(rec)) {
    rec_sink_flush(rec_recorder_sink(rec), 5000);
    rec_sink_stats(rec_recorder_sink(rec), &rv);
  }
  rec_recorder_free(rec);
  log_info("proxy", "recording: %llu delivered, %llu spilled, %llu dropped",
           (unsigned long long)rv.delivered, (unsigned long long)rv.spilled,
           (unsigned long long)rv.dropped_total);
}

/* Mirroring, live comparison and recording counters, as the workers and /metrics share them. */
struct rec_rt {
  struct rec_mirror_stats mirror;
  struct rec_compare_stats compare;
  struct rec_comparer *comparer; /* NULL when no route compares live */
  struct rec_metrics *metrics;
};

struct comparer_args {
  struct rec_rt *rt;
  struct an_rules *rules;
  struct rec_sink *sink;
  char *err;
  size_t errlen;
};

static int comparer_new_cb(void *arg) {
  struct comparer_args *a = arg;
  return rec_comparer_new(&a->rt->comparer, a->rules, a->sink, &a->rt->compare, 0, a->err,
                          a->errlen);
}

/* The comparer runs even when no route compares live yet: a reload may add one. */
static int rec_rt_start(struct rec_rt *rt, const struct cfg *cfg, struct rec_recorder *rec,
                        struct met_registry *reg, char *err, size_t errlen) {
  int rc;
  struct an_rules *rules = NULL;
  if ((rc = rec_compare_rules_new(&rules, cfg, err, errlen)) < 0)
    return rc;
  /* off the client's path like the recording threads, and at their priority */
  struct comparer_args a = {rt, rules, rec ? rec_recorder_sink(rec) : NULL, err, errlen};
  if ((rc = cut_thread_run_niced((int)cfg->recording.nice, comparer_new_cb, &a, NULL)) < 0) {
    if (!err[0])
      snprintf(err, errlen, "cannot start the comparison thread: %s", cut_strerror(rc));
    an_rules_free(rules);
    return rc;
  }
  struct rec_metrics_src src = {.sink = rec ? rec_recorder_sink(rec) : NULL,
                                .mirror = &rt->mirror, .compare = &rt->compare};
  return rec_metrics_new(&rt->metrics, reg, &src, err, errlen);
}

/* After the workers stopped: compares (and records) what is queued. */
static void rec_rt_stop(struct rec_rt *rt) {
  rec_comparer_free(rt->comparer);
  rt->comparer = NULL;
}

static const struct px_upstream_ops pool_ops = {
    .pool_new = px_pool_new,
    .pool_free = px_pool_free,
    .start = px_exchange_start,
    .send_body = px_exchange_send_body,
    .end_body = px_exchange_end_body,
    .resume = px_exchange_resume,
    .cancel = px_exchange_cancel,
    .host = px_exchange_host,
    .stats = px_pool_stats,
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
  sigaddset(&sigs, SIGHUP);
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
  /* Live dial values (persisted, audited) override the config's. */
  struct ops_ctx x = {.path = path};
  pthread_mutex_init(&x.reload_mu, NULL);
  struct met_registry *reg = NULL;
  struct px_limit_counters limits;
  struct px_admin_dials *adials = NULL;
  struct px_admin *admin = NULL;
  struct rec_recorder *rec = NULL;
  struct rec_rt recrt = {0};
  struct px_server *srv = NULL;
  struct px_health_board *board = NULL;
  struct health_rt health = {0};
  int exit_code = 1;
  if ((rc = dial_store_open_files(&x.store, cfg, err, sizeof err)) < 0) {
    fprintf(stderr, "cutover proxy: dial store: %s\n", err[0] ? err : cut_strerror(rc));
    goto out;
  }
  if ((rc = met_registry_new(&reg, nw + 2, METRIC_CELLS)) < 0 ||
      (rc = px_metrics_new(&x.pm, reg, cfg, err, sizeof err)) < 0 ||
      (rc = px_limit_counters_init(&limits, reg, err, sizeof err)) < 0) {
    fprintf(stderr, "cutover proxy: metrics: %s\n", err[0] ? err : cut_strerror(rc));
    goto out;
  }
  if ((rc = cfg_holder_new(&x.holder, cfg_ref(cfg))) < 0) {
    cfg_unref(cfg);
    fprintf(stderr, "cutover proxy: %s\n", cut_strerror(rc));
    goto out;
  }
  if ((rc = px_health_board_new(&board, cfg)) < 0) {
    fprintf(stderr, "cutover proxy: %s\n", cut_strerror(rc));
    goto out;
  }
  x.board = board;
  x.reg = reg;
  if (!(x.snaps = calloc(1, sizeof *x.snaps))) {
    fprintf(stderr, "cutover proxy: out of memory\n");
    goto out;
  }
  /* the first snapshot owns the metric set and board from now on */
  *x.snaps = (struct snap){.id = 0, .cfg = cfg_ref(cfg), .pm = x.pm, .board = board};
  board = NULL;
  /* Recording: the sink (and the embedded broker) live as long as the server. */
  if (cfg->recording.sink != CFG_SINK_NONE &&
      (rc = rec_recorder_new(&rec, &cfg->recording, err, sizeof err)) < 0) {
    fprintf(stderr, "cutover proxy: recording: %s\n", err[0] ? err : cut_strerror(rc));
    goto out;
  }
  if (rec && rec_recorder_bootstrap(rec)) {
    /* one line on stdout that scripts and tests can read */
    printf("kafka bootstrap: %s%s\n", rec_recorder_bootstrap(rec),
           rec_recorder_embedded(rec) ? " (embedded)" : "");
    fflush(stdout);
  }
  x.rec = rec;
  x.cfg = cfg;
  if ((rc = rec_rt_start(&recrt, cfg, rec, reg, err, sizeof err)) < 0) {
    fprintf(stderr, "cutover proxy: recording: %s\n", err[0] ? err : cut_strerror(rc));
    goto out;
  }
  x.comparer = recrt.comparer;
  struct px_decider decider = {
      .decide = dial_decide, .format = dial_decision_format, .store = x.store};
  struct px_server_opts opts = {.cfg = cfg, .ops = &pool_ops, .decider = &decider, .alog = alog,
                                .workers = nw, .metrics = x.pm, .limits = &limits,
                                .health = x.board,
                                .rec_sink = rec ? rec_recorder_sink(rec) : NULL,
                                .mirror_stats = &recrt.mirror, .comparer = recrt.comparer};
  if ((rc = px_server_new(&srv, &opts, err, sizeof err)) < 0) {
    fprintf(stderr, "cutover proxy: %s\n", err[0] ? err : cut_strerror(rc));
    goto out;
  }
  x.srv = srv;
  if (cfg->admin.enabled) {
    struct px_admin_dials_opts ao = {.store = x.store, .holder = x.holder, .metrics = reg,
                                     .reload = reload_cb, .status = status_cb, .ready = ready_cb,
                                     .user_data = &x};
    struct px_admin_opts o = {.host = cfg->admin.listen.host, .port = cfg->admin.listen.port,
                              .token_file = cfg->admin.token_file ? cfg->admin.token_file
                                                                  : "run/admin.token",
                              .metrics = reg};
    if ((rc = px_admin_dials_new(&adials, &ao)) < 0) {
      fprintf(stderr, "cutover proxy: %s\n", cut_strerror(rc));
      goto out;
    }
    px_admin_dials_ops(adials, &o.ops);
    if ((rc = px_admin_start(&admin, &o, err, sizeof err)) < 0) {
      fprintf(stderr, "cutover proxy: %s\n", err[0] ? err : cut_strerror(rc));
      goto out;
    }
  }
  if ((rc = health_start(&health, cfg, x.board, reg, err, sizeof err)) < 0) {
    fprintf(stderr, "cutover proxy: %s\n", err[0] ? err : cut_strerror(rc));
    goto out;
  }
  pthread_mutex_lock(&x.reload_mu);
  x.health = &health; /* from now on a reload restarts the checks */
  pthread_mutex_unlock(&x.reload_mu);
  if ((rc = px_server_start(srv)) < 0) {
    fprintf(stderr, "cutover proxy: cannot start worker threads\n");
    goto out;
  }
  for (size_t i = 0; i < px_server_nlisteners(srv); i++)
    log_info("proxy", "listening on %s (%s)", px_server_listener_addr(srv, i),
             px_server_listener_tls(srv, i) ? "TLS: h2, http/1.1" : "h2c, http/1.1");
  log_info("proxy", "%u worker(s), %zu route(s), %zu backend group(s)", nw, cfg->nroutes,
           cfg->nbackends);

  int sig = 0;
  for (;;) {
    struct timespec one = {1, 0};
    sig = sigtimedwait(&sigs, NULL, &one);
    if (sig < 0) { /* once a second: free snapshots the workers left */
      pthread_mutex_lock(&x.reload_mu);
      snaps_reap(&x);
      pthread_mutex_unlock(&x.reload_mu);
      continue;
    }
    if (sig != SIGHUP)
      break;
    char rerr[8192] = "";
    if (reload_cb(&x, NULL, rerr, sizeof rerr) < 0) {
      for (char *p = rerr; *p; p++)
        if (*p == '\n' && p[1])
          *p = ' ';
      rerr[strcspn(rerr, "\n")] = '\0';
      log_error("proxy", "SIGHUP: config rejected, the old config keeps serving: %s", rerr);
    } else {
      px_admin_dials_publish(adials); /* dial gauges follow values the file changed */
    }
  }
  atomic_store(&x.draining, 1);
  pthread_mutex_lock(&x.reload_mu);
  uint64_t drain = x.cfg->limits.drain_timeout_ms;
  pthread_mutex_unlock(&x.reload_mu);
  log_info("proxy", "%s: stopping (drain up to %llu ms; a second signal stops at once)",
           sig == SIGINT ? "SIGINT" : "SIGTERM", (unsigned long long)drain);
  px_server_stop(srv, drain);
  while (px_server_running(srv)) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    int s2 = sigtimedwait(&sigs, NULL, &ts);
    if (s2 > 0 && s2 != SIGHUP) { /* a reload request is no reason to cut the drain short */
      log_info("proxy", "second signal: stopping now");
      px_server_stop(srv, 0);
    }
  }
  px_server_wait(srv);
  struct px_server_stats st;
  px_server_stats(srv, &st);
  log_info("proxy", "stopped after %llu request(s) on %llu connection(s)%s",
           (unsigned long long)st.requests, (unsigned long long)st.connections, "");
  if (st.log_dropped)
    log_warn("proxy", "%llu access log line(s) dropped", (unsigned long long)st.log_dropped);
  exit_code = 0;
out:
  /* The admin thread goes first: its operations use everything below. */
  px_admin_free(admin);
  px_admin_dials_free(adials);
  health_stop(&health);
  rec_metrics_free(recrt.metrics); /* the admin thread, its only reader, is gone */
  px_server_free(srv); /* in-flight shadows hand their pairs to the sink first */
  rec_rt_stop(&recrt);
  recorder_close(rec);
  px_health_board_free(board); /* when the first snapshot was not made */
  if (x.snaps)
    x.pm = NULL; /* every metric set belongs to a snapshot */
  while (x.snaps) {
    struct snap *sn = x.snaps;
    x.snaps = sn->next;
    snap_free(sn);
  }
  px_alog_free(alog);
  px_metrics_free(x.pm); /* when the first snapshot was not made */
  met_registry_free(reg);
  dial_store_free(x.store);
  cfg_holder_free(x.holder);
  pthread_mutex_destroy(&x.reload_mu);
  cfg_unref(cfg);
  return exit_code;
}
