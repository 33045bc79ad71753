/* dial_store: live dial values and experiment states, persisted and audited, read lock-free. */
#ifndef CUT_DIAL_STORE_H
#define CUT_DIAL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "dials/exp.h"

/*
 * The store holds what operators change at run time: each dial's global
 * percentage, per-data-center percentages, and each experiment's state.
 * These override the config. dial_decide() reads them through atomics (no
 * locks on the read path). Writes are serialized by a mutex and follow one
 * order: validate, persist the whole state through the backend (durable
 * before the call returns), publish to readers, append an audit record.
 * When persisting fails nothing changes and the error is returned.
 *
 * Persistence goes through a small backend interface so a fleet-wide backend
 * (a Kafka compacted topic) can replace the local file without touching the
 * decision code. See docs/dials.md ("The dial store").
 *
 * Thread safety: every function may be called from any thread. Write
 * functions block on file I/O: never call them on an event-loop thread.
 */

struct dial_store;

/* ---- backend interface ------------------------------------------------ */

struct dial_store_backend_ops {
  const char *name; /* "file" */
  /* Loads the persisted state as JSON text: stores a string in *json that
   * the caller frees with free(), or NULL when nothing was persisted yet.
   * Returns 0 or a negative CUT_ERR_*. */
  int (*load)(void *ctx, char **json, char *err, size_t errlen);
  /* Replaces the persisted state with json[len]; returns only when the new
   * state is durable (or an error, leaving the previous state in place). */
  int (*save)(void *ctx, const char *json, size_t len, char *err, size_t errlen);
  /* Appends one audit record (one JSON object, no newline). */
  int (*audit)(void *ctx, const char *line, size_t len, char *err, size_t errlen);
  /* Releases ctx. */
  void (*close)(void *ctx);
};

struct dial_store_backend {
  const struct dial_store_backend_ops *ops;
  void *ctx;
};

/*
 * The file backend: the state in `state_path` (replaced by writing
 * state_path.tmp, fsync, rename, fsync of the directory), the audit log
 * appended to `audit_path` (JSON lines, fsync after each). Creates the
 * parent directories' last level when missing. Copies both paths.
 * Returns 0, CUT_ERR_INVALID or CUT_ERR_NOMEM.
 */
int dial_store_file_backend(struct dial_store_backend *out, const char *state_path,
                            const char *audit_path, char *err, size_t errlen);

/* ---- lifecycle -------------------------------------------------------- */

/*
 * Opens a store for `cfg` (borrowed; the store copies what it needs):
 * loads the backend's persisted state, then applies `cfg` as
 * dial_store_apply_config does. Takes ownership of `backend` on success
 * only. Returns 0, CUT_ERR_PARSE (unreadable state: the store refuses to
 * start rather than forget live values), CUT_ERR_IO or CUT_ERR_NOMEM, with a
 * sentence in err.
 */
int dial_store_open(struct dial_store **out, const struct cfg *cfg,
                    struct dial_store_backend backend, char *err, size_t errlen);

/* Same with the file backend at cfg->state.dial_state_file and cfg->state.audit_log
 * (defaults run/dials.state.json and run/dials.audit.log when unset). */
int dial_store_open_files(struct dial_store **out, const struct cfg *cfg, char *err,
                          size_t errlen);

/* Frees the store and closes its backend. NULL is ok. No decision may be
 * running on it any more. */
void dial_store_free(struct dial_store *s);

/*
 * Switches to a new config snapshot (a reload). For each dial, the live
 * percentage is kept unless the config's own percentage changed since the
 * previous config (then the new config value applies); the same per data
 * center. Experiments keep their state; new ones start pending (running with
 * `state: running`). Objects gone from the config are forgotten (no longer
 * persisted). Persists the result, with the config values later reloads
 * compare against, before readers see it. Decisions on the old snapshot
 * keep working. Returns 0, CUT_ERR_NOMEM or an error from the backend; when
 * the result cannot be persisted, the store is left exactly as it was (so
 * the same reload can be retried).
 */
int dial_store_apply_config(struct dial_store *s, const struct cfg *cfg, char *err,
                            size_t errlen);

/* ---- operations (persisted, then audited) ------------------------------ */

/* Every operation takes `actor` (who: "admin-api", "cli", "kpi-guard"...)
 * and `reason` (free text, may be NULL) for the audit record. Returns 0,
 * CUT_ERR_NOT_FOUND (no such dial/experiment), CUT_ERR_RANGE (ppm above
 * 1000000, no further step), CUT_ERR_STATE (no step plan, forbidden
 * experiment transition) or a backend error; err gets a sentence. */

/* Sets a dial's global percentage (dc == NULL) or the percentage of data
 * center `dc`. */
int dial_store_set_percent(struct dial_store *s, const char *dial, const char *dc, uint32_t ppm,
                           const char *actor, const char *reason, char *err, size_t errlen);

/* Moves to the first planned step above the current value (of `dc`, or the
 * global one); stores the new value in *ppm_out when not NULL. */
int dial_store_step(struct dial_store *s, const char *dial, const char *dc, const char *actor,
                    const char *reason, uint32_t *ppm_out, char *err, size_t errlen);

/* Sets the global and every data center's percentage of `dial` to 0 at once. */
int dial_store_rollback(struct dial_store *s, const char *dial, const char *actor,
                        const char *reason, char *err, size_t errlen);

/* pending -> running. */
int dial_store_exp_start(struct dial_store *s, const char *name, const char *actor,
                         const char *reason, char *err, size_t errlen);

/* pending|running -> stopped, keeping `reason` (required, non-empty). */
int dial_store_exp_stop(struct dial_store *s, const char *name, const char *actor,
                        const char *reason, char *err, size_t errlen);

/* ---- reads ------------------------------------------------------------- */

/* A dial's live global percentage (dc == NULL) or that of `dc`
 * (DIAL_STORE_NONE when the data center has no value of its own).
 * Returns 0 or CUT_ERR_NOT_FOUND. */
#define DIAL_STORE_NONE UINT32_MAX
int dial_store_get_percent(const struct dial_store *s, const char *dial, const char *dc,
                           uint32_t *ppm);

struct dial_store_exp_info {
  enum exp_state state;   /* effective at `now` (a running one past its end is completed) */
  int64_t start, end;     /* window from the config; 0 = unbounded */
  int64_t started_at;     /* when an operator started it; 0 = never */
  int64_t stopped_at;
  char reason[256];       /* why it stopped; "" otherwise */
};

/* Returns 0 or CUT_ERR_NOT_FOUND. */
int dial_store_exp_get(const struct dial_store *s, const char *name, int64_t now,
                       struct dial_store_exp_info *out);

/* Counters kept by dial_decide for one object ("dial", "experiment" or
 * "allocation"): decisions without the key, not eligible, malformed app
 * versions (a subset of not eligible), allocated. */
struct dial_store_counts {
  uint64_t no_key;
  uint64_t not_eligible;
  uint64_t malformed_version;
  uint64_t allocated;
};
/* Returns 0, CUT_ERR_NOT_FOUND (no such object) or CUT_ERR_INVALID (a NULL
 * argument); with CUT_ERR_NOT_FOUND, *out is all zeros. */
int dial_store_counts(const struct dial_store *s, const char *kind, const char *name,
                      struct dial_store_counts *out);

/* Audit records that could not be written (the changes themselves were persisted). */
uint64_t dial_store_audit_failures(const struct dial_store *s);

/* The live state as a JSON object (the same document the backend persists);
 * caller frees with free(). NULL when out of memory. */
char *dial_store_json(const struct dial_store *s);

/* Formats ppm as the shortest percentage ("12.5%", "0.0001%", "100%"). */
void dial_format_percent(uint32_t ppm, char *buf, size_t buflen);

#endif
