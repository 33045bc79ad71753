/* px_health: active health checks and passive outlier ejection of backend hosts. */
#ifndef CUT_PX_HEALTH_H
#define CUT_PX_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct event_base;
struct evdns_base;
struct met_registry;

/*
 * Three pieces:
 *
 * 1. Pure state machines, fed results, no I/O and no clock of their own:
 *    - px_hc: the active-check state of one host (healthy/unhealthy with
 *      thresholds of consecutive results, from struct cfg_health);
 *    - px_outlier: passive outlier ejection for one backend group as seen by
 *      one worker (consecutive 5xx / connect failures eject a host for a time
 *      that doubles with each repeat, capped, never more than a share of the
 *      group at once, from struct cfg_outlier).
 *
 * 2. px_health_board: the active-check verdicts of every host of every
 *    backend, written by the checker and read by every worker with relaxed
 *    atomics (no locks on the request path).
 *
 * 3. px_health_checker: sends the GET probes on an event_base (one worker's)
 *    on each backend's interval and posts the results to the board.
 *
 * A host is usable when the board says healthy and the worker's outlier state
 * does not eject it. A backend group with no usable host is unhealthy; then
 * px_health_route() applies the backend's `on_unhealthy` policy.
 */

/* ---------- active checks: one host ---------- */

enum px_hc_state {
  PX_HC_UNKNOWN = 0,  /* not checked yet: usable */
  PX_HC_HEALTHY,
  PX_HC_UNHEALTHY,
};

enum px_hc_event {
  PX_HC_NO_CHANGE = 0,
  PX_HC_BECAME_HEALTHY,   /* from unknown (first success) or unhealthy (healthy_threshold successes) */
  PX_HC_BECAME_UNHEALTHY, /* from unknown (first failure) or healthy (unhealthy_threshold failures) */
};

struct px_hc {
  enum px_hc_state state;
  uint32_t ok_streak, fail_streak;
  uint64_t checks, failures;
};

void px_hc_init(struct px_hc *h);

/* Applies one check result (ok = 2xx in time). A host that has never passed a
 * check is marked unhealthy by its first failure: a new backend that is down
 * at start must not take traffic for unhealthy_threshold intervals.
 * Returns the transition, if any. */
enum px_hc_event px_hc_result(struct px_hc *h, const struct cfg_health *cfg, int ok);

/* 1 unless the host is known unhealthy. */
static inline int px_hc_usable(const struct px_hc *h) { return h->state != PX_HC_UNHEALTHY; }

/* ---------- passive outlier ejection: one group, one worker ---------- */

enum px_outcome {
  PX_OUTCOME_OK = 0,         /* a response below 500 */
  PX_OUTCOME_5XX,            /* a 5xx response, or a timeout / reset after connecting */
  PX_OUTCOME_CONNECT_FAIL,   /* no connection (refused, connect timeout, TLS failure) */
};

enum px_outlier_event {
  PX_OUTLIER_NONE = 0,
  PX_OUTLIER_EJECTED,        /* the host is now ejected until px_outlier_host_info().until_ms */
  PX_OUTLIER_CAPPED,         /* the host qualified but max_ejected_ppm of the group is out */
};

struct px_outlier;

/* Creates the state for a group of `nhosts` hosts; `cfg` is copied. Returns 0
 * or CUT_ERR_NOMEM / CUT_ERR_INVALID. Caller frees with px_outlier_free. */
int px_outlier_new(struct px_outlier **out, const struct cfg_outlier *cfg, size_t nhosts);
void px_outlier_free(struct px_outlier *o);

/*
 * Records the outcome of one exchange with `host` at `now_ms` (a monotonic
 * clock). Results for a host that is ejected are ignored (exchanges that were
 * in flight when it was ejected). A host is ejected after consecutive_5xx 5xx
 * outcomes in a row, or consecutive_connect_failures connect failures in a
 * row (0 turns either off), for base_ejection_ms * 2^(k-1) where k counts its
 * ejections, capped at max_ejection_ms; k starts again from 1 when the host
 * had stayed in service for max_ejection_ms since it last returned. At most
 * max(1, floor(nhosts * max_ejected_ppm / 10^6)) hosts are ejected at once
 * (none when max_ejected_ppm is 0), so a one-host group can be ejected and
 * its traffic fail over per the backend's on_unhealthy policy.
 */
enum px_outlier_event px_outlier_record(struct px_outlier *o, size_t host, enum px_outcome r,
                                        uint64_t now_ms);

/*
 * The same rules fed from counters kept elsewhere: `c5xx` and `cconn` are a
 * host's current consecutive-5xx and consecutive-connect-failure counts as an
 * upstream pool keeps them (they only grow, or drop back when a success
 * resets them). Call it periodically (e.g. each second per host); the growth
 * since the previous call counts as that many outcomes, so a host needs a
 * full run of failures again after it returns from an ejection. Returns like
 * px_outlier_record.
 */
enum px_outlier_event px_outlier_observe(struct px_outlier *o, size_t host, uint32_t c5xx,
                                         uint32_t cconn, uint64_t now_ms);

/* Returns hosts whose ejection time has passed to service; returns how many. */
size_t px_outlier_tick(struct px_outlier *o, uint64_t now_ms);

/* 1 when `host` is ejected at now_ms (time is checked too, so a missed tick
 * never keeps a host out longer than its ejection). */
int px_outlier_ejected(const struct px_outlier *o, size_t host, uint64_t now_ms);

/* Number of hosts ejected (as of the last record/tick). */
size_t px_outlier_nejected(const struct px_outlier *o);

struct px_outlier_host_info {
  int ejected;
  uint64_t until_ms;         /* when ejected */
  uint32_t ejections;        /* k, the current multiplier exponent + 1 */
  uint64_t total_ejections;
  uint32_t consecutive_5xx, consecutive_connect_failures;
};
int px_outlier_host_info(const struct px_outlier *o, size_t host, struct px_outlier_host_info *out);

/* ---------- the board: active verdicts shared by all workers ---------- */

struct px_health_board;

/* Creates a board for every host of every backend of `cfg` (borrowed only
 * during the call), all usable. Returns 0 or CUT_ERR_NOMEM. Caller frees. */
int px_health_board_new(struct px_health_board **out, const struct cfg *cfg);
void px_health_board_free(struct px_health_board *b);

/* Writer: the checker. Readers: any thread. Out-of-range indexes are ignored / usable. */
void px_health_board_set(struct px_health_board *b, size_t backend, size_t host, int usable);
int px_health_board_usable(const struct px_health_board *b, size_t backend, size_t host);

/* 1 when at least one host of `backend` is usable on the board and (when
 * `outlier` is not NULL) not ejected by this worker's outlier state. */
int px_health_group_usable(const struct px_health_board *b, size_t backend,
                           const struct px_outlier *outlier, uint64_t now_ms);

/*
 * Applies the on_unhealthy policy: when `chosen` (the backend a decision
 * picked) is not usable and its policy is fail_open, returns `fallback` (the
 * route's own backend) and sets *failed_over = 1; otherwise returns `chosen`
 * (with policy `fail`, the request then fails with 503). Pure.
 */
size_t px_health_route(const struct cfg *cfg, size_t chosen, int chosen_usable, size_t fallback,
                       int *failed_over);

/* ---------- the checker ---------- */

struct px_health_checker;

struct px_health_checker_opts {
  struct met_registry *metrics;   /* borrowed, may be NULL */
  struct evdns_base *dns;         /* for host names (borrowed); NULL = hosts must be IP literals */
  /* Called on every transition, on the checker's thread; may be NULL.
   * `event` is PX_HC_BECAME_HEALTHY or PX_HC_BECAME_UNHEALTHY. */
  void (*on_change)(size_t backend, size_t host, enum px_hc_event event, void *user_data);
  void *user_data;
};

/*
 * Starts active checks on `base` for every backend of `cfg` with health
 * enabled: each host gets an HTTP/1.1 `GET path` every interval_ms (the first
 * one soon after start, spread over the interval), answered 2xx within
 * timeout_ms = success. Results go through px_hc and onto `board`. Backends
 * with TLS are not probed yet (logged once; their hosts stay usable).
 * `cfg` and `board` are borrowed and must outlive the checker. Returns 0 or
 * CUT_ERR_NOMEM. Caller frees with px_health_checker_free (on base's thread).
 */
int px_health_checker_new(struct px_health_checker **out, struct event_base *base,
                          const struct cfg *cfg, struct px_health_board *board,
                          const struct px_health_checker_opts *opts, char *err, size_t errlen);

/* Cancels probes in flight and timers; frees. NULL is ok. */
void px_health_checker_free(struct px_health_checker *c);

/* Current state of one host (for /status). Returns CUT_ERR_NOT_FOUND when the
 * host is not checked. */
int px_health_checker_host(const struct px_health_checker *c, size_t backend, size_t host,
                           struct px_hc *out);

#endif
