/* px_admin: the admin HTTP API (dials, experiments, status, reload, health, metrics) on its own thread. */
#ifndef CUT_PX_ADMIN_H
#define CUT_PX_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct met_registry;

/*
 * The admin server runs on its own thread with its own event_base (libevent
 * evhttp; the request rate is low), so nothing it does can delay a worker.
 * Every request needs `Authorization: Bearer <token>`; the token is read from
 * a file (generated when absent) and compared in constant time.
 *
 * The server knows nothing about proxy internals: every operation goes
 * through a table of callbacks (struct px_admin_ops). The proxy fills it
 * over the dial store, the experiments and the config holder; tests fill it
 * with fakes. Callbacks run on the admin thread, one at a time.
 *
 * Endpoints (all answers are JSON except /metrics):
 *   GET  /dials                      ops->dials_list
 *   GET  /dials/NAME                 ops->dial_get
 *   PUT  /dials/NAME                 ops->dial_set  {"percent": 12.5, "reason": "...", "datacenter": "..."}
 *   POST /dials/NAME/step            ops->dial_step     {"reason": "..."} (body optional)
 *   POST /dials/NAME/rollback        ops->dial_rollback {"reason": "..."} (body optional)
 *   GET  /experiments                ops->experiments_list
 *   POST /experiments/NAME/start     ops->experiment_start
 *   POST /experiments/NAME/stop      ops->experiment_stop
 *   GET  /status                     ops->status, plus version and uptime
 *   POST /reload                     ops->reload
 *   GET  /healthz                    200 {"status":"ok"}, 503 when ops->ready says no
 *   GET  /metrics                    Prometheus text of the registry
 */

/* Who asked, for the audit log: "admin 127.0.0.1:51234", plus the value of the
 * X-Cutover-Actor header when the client sent one ("admin 127.0.0.1:51234 alice"). */
struct px_admin_change {
  uint32_t ppm;             /* dial_set: new value in parts per million */
  const char *datacenter;   /* dial_set: per-data-center value; NULL = the dial's value */
  const char *reason;       /* "" when not given */
  const char *actor;
};

/*
 * Every callback returns 0 and stores a JSON value in *out (the server takes
 * ownership), or a negative CUT_ERR_* with a sentence in err, mapped to HTTP:
 *   CUT_ERR_NOT_FOUND -> 404, CUT_ERR_INVALID / CUT_ERR_RANGE / CUT_ERR_PARSE /
 *   CUT_ERR_CONFIG -> 400, CUT_ERR_STATE / CUT_ERR_EXISTS -> 409,
 *   CUT_ERR_UNSUPPORTED -> 501, CUT_ERR_AGAIN -> 503, anything else -> 500.
 * A NULL callback answers 501. `name` is already checked to be a plausible
 * identifier ([A-Za-z0-9._-], 1..128 bytes).
 */
struct px_admin_ops {
  int (*dials_list)(void *ud, json_t **out, char *err, size_t errlen);
  int (*dial_get)(void *ud, const char *name, json_t **out, char *err, size_t errlen);
  int (*dial_set)(void *ud, const char *name, const struct px_admin_change *c, json_t **out,
                  char *err, size_t errlen);
  int (*dial_step)(void *ud, const char *name, const struct px_admin_change *c, json_t **out,
                   char *err, size_t errlen);
  int (*dial_rollback)(void *ud, const char *name, const struct px_admin_change *c,
                       json_t **out, char *err, size_t errlen);
  int (*experiments_list)(void *ud, json_t **out, char *err, size_t errlen);
  int (*experiment_start)(void *ud, const char *name, const struct px_admin_change *c,
                          json_t **out, char *err, size_t errlen);
  int (*experiment_stop)(void *ud, const char *name, const struct px_admin_change *c,
                         json_t **out, char *err, size_t errlen);
  /* An object; the server adds "version" and "uptime_seconds". */
  int (*status)(void *ud, json_t **out, char *err, size_t errlen);
  /* Validates and swaps the config; on a bad file returns CUT_ERR_CONFIG with
   * every error in err (newline-separated) and keeps the old config. */
  int (*reload)(void *ud, json_t **out, char *err, size_t errlen);
  /* 1 when serving, 0 when draining or not ready (/healthz answers 503). May be NULL. */
  int (*ready)(void *ud);
  void *user_data;
};

struct px_admin_opts {
  const char *host;          /* listen address (IP literal); NULL = 127.0.0.1 */
  uint16_t port;             /* 0 = pick a free port (see px_admin_port) */
  const char *token_file;    /* required; created with a random token (0600) when absent */
  struct px_admin_ops ops;   /* copied */
  struct met_registry *metrics; /* borrowed, may be NULL (/metrics is then empty) */
  size_t max_body_bytes;     /* 0 = 64 KiB */
};

struct px_admin;

/*
 * Loads (or creates) the token, binds the listener and starts the admin
 * thread. Returns 0 and *out (caller stops and frees with px_admin_free), or
 * CUT_ERR_IO (token file), CUT_ERR_NET (bind), CUT_ERR_NOMEM, CUT_ERR_INVALID
 * with a sentence in err. The proxy calls this once after its config is
 * loaded, with cfg->admin.listen and cfg->admin.token_file.
 */
int px_admin_start(struct px_admin **out, const struct px_admin_opts *opts, char *err,
                   size_t errlen);

/* The port actually bound (useful with port 0). */
uint16_t px_admin_port(const struct px_admin *a);

/* Stops the thread (answers in progress are dropped), closes the listener,
 * frees. NULL is ok. */
void px_admin_free(struct px_admin *a);

/*
 * Reads the bearer token from `path`, or creates the file (mode 0600, parent
 * directory created with 0700 when missing) with 32 random bytes in hex when
 * it does not exist. Stores the token (caller frees) in *out. Returns 0 or
 * CUT_ERR_IO / CUT_ERR_INVALID (empty file) with a sentence in err.
 * The CLI uses it too, to read the token.
 */
int px_admin_token_load(const char *path, int create, char **out, char *err, size_t errlen);

/*
 * Parses a percentage given as a JSON number (12.5) or string ("12.5" or
 * "12.5%") into ppm: 0..100 with at most four decimals. Returns 0 or
 * CUT_ERR_RANGE / CUT_ERR_INVALID with a sentence in err.
 */
int px_admin_percent_from_json(const json_t *v, uint32_t *ppm, char *err, size_t errlen);

/*
 * Writes "unknown NOUN \"name\"" plus ` (did you mean "x"?)` when one of
 * `names` is within a small edit distance into err, and returns
 * CUT_ERR_NOT_FOUND. For ops implementations.
 */
int px_admin_unknown(char *err, size_t errlen, const char *noun, const char *name,
                     const char *const *names, size_t nnames);

#endif
