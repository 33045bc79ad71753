/* metrics: counters, gauges and histograms with labels, rendered in the Prometheus text format. */
#ifndef CUT_METRICS_H
#define CUT_METRICS_H

#include <stddef.h>
#include <stdint.h>

/*
 * A met_registry holds metric families (a name, a help text, a type and a
 * fixed list of label names) and their series (one tuple of label values
 * each). Every module registers its families and series when a config
 * snapshot is applied, where label values are known (routes, backends, dials
 * and limits all come from the config), and keeps the returned series
 * pointers. The hot path then only adds to a series:
 *
 *   met_counter_add(s, shard, 1);
 *
 * which is one relaxed atomic add into a cell that belongs to `shard` (a
 * worker number). Each shard owns a separate, cache-line aligned block of
 * cells, so workers never write the same cache line and never lock. The
 * exposition sums the shards.
 *
 * Cardinality is bounded twice: each family accepts at most `max_series`
 * series (label tuples beyond it fold into one series whose label values are
 * all "_other", reserved when the family is registered), and the registry has
 * a fixed number of cells per shard.
 *
 * Registration and exposition take a mutex (they are rare); adding,
 * observing and setting never do.
 *
 * Values:
 *  - counters are uint64 and only go up; names must end in `_total`.
 *  - gauges are int64; met_gauge_set() stores a value (last writer wins),
 *    met_gauge_add() adds to the caller's shard; the exposed value is the
 *    stored value plus the sum of the shards, divided by the family's
 *    `divisor` (so dial values kept in ppm are exposed as a 0..1 ratio with
 *    divisor 1e6).
 *  - histograms count integer observations (e.g. microseconds) into fixed
 *    buckets; the exposition divides bucket bounds and the sum by the
 *    family's `divisor` (1e6 turns microseconds into the base unit seconds).
 */

enum met_type { MET_COUNTER, MET_GAUGE, MET_HISTOGRAM };

#define MET_MAX_LABELS 8
#define MET_MAX_BUCKETS 32
#define MET_OTHER "_other" /* label value of the fold series */

struct met_registry;
struct met_family;
struct met_series;

/* Creates a registry with `nshards` shards (workers + 1 for other threads is
 * a good choice) of `cells_per_shard` cells each (one per counter or gauge
 * series, nbuckets + 3 per histogram series). Returns 0 or CUT_ERR_NOMEM /
 * CUT_ERR_INVALID. Caller frees with met_registry_free(). */
int met_registry_new(struct met_registry **out, unsigned nshards, size_t cells_per_shard);

/* Frees the registry and every family and series in it. NULL is ok. */
void met_registry_free(struct met_registry *r);

/* Number of shards; shard numbers passed to the add functions should be
 * below it (larger numbers are folded onto the last shard). */
unsigned met_registry_shards(const struct met_registry *r);

/* What a family looks like. Strings are copied. */
struct met_family_def {
  const char *name;          /* [a-zA-Z_:][a-zA-Z0-9_:]*; counters end in _total */
  const char *help;          /* one line */
  enum met_type type;
  const char *const *labels; /* label names, [a-zA-Z_][a-zA-Z0-9_]*, not "le", no "__" prefix */
  size_t nlabels;            /* <= MET_MAX_LABELS */
  size_t max_series;         /* 0 = 256 */
  double divisor;            /* gauges and histograms; 0 = 1 */
  const uint64_t *buckets;   /* histograms: ascending upper bounds in observation units */
  size_t nbuckets;           /* 1..MET_MAX_BUCKETS (+Inf is implicit) */
};

/* Registers a family, or returns the existing one when a family of the same
 * name, type and labels exists (so re-applying a config is idempotent).
 * *out is borrowed from the registry. Returns 0, or CUT_ERR_INVALID (bad
 * name, labels or buckets) / CUT_ERR_EXISTS (same name, different shape) /
 * CUT_ERR_NOMEM, with a reason in err. */
int met_family_register(struct met_registry *r, const struct met_family_def *def,
                        struct met_family **out, char *err, size_t errlen);

/* Finds a family by name; NULL when absent. Borrowed. */
struct met_family *met_family_find(struct met_registry *r, const char *name);

/*
 * Returns the series of `family` with these label values (exactly as many as
 * the family has labels; copied), creating it when new. When the family is at
 * max_series or the registry is out of cells, returns the family's fold
 * series (all values "_other") instead. Returns NULL only for a label-less
 * family whose one series cannot be made (out of memory or cells). Borrowed from the registry;
 * valid until met_registry_free(). Takes the registry mutex: call it when a
 * config is applied, not per request.
 */
struct met_series *met_series_get(struct met_family *f, const char *const *values);

/* Convenience: registers a label-less family and returns its only series
 * (NULL on error, with a reason logged). */
struct met_series *met_simple(struct met_registry *r, enum met_type type, const char *name,
                              const char *help);

/* Hot path. `s` may be NULL (a no-op), so optional metrics cost one branch. */
void met_counter_add(struct met_series *s, unsigned shard, uint64_t n);
void met_gauge_add(struct met_series *s, unsigned shard, int64_t delta);
void met_gauge_set(struct met_series *s, int64_t value);
void met_hist_observe(struct met_series *s, unsigned shard, uint64_t value);

/* Reads a series' current value (sum over shards; counters and gauges, raw,
 * before the divisor; histograms: the count). For tests and /status. */
int64_t met_series_value(const struct met_series *s);

/*
 * Renders every family in the Prometheus text exposition format 0.0.4
 * (# HELP, # TYPE, one line per series; histograms as _bucket{le=..},
 * _sum and _count). Families appear in registration order. Stores a
 * NUL-terminated string in *out (caller frees with free()) and its length in
 * *len. Returns 0 or CUT_ERR_NOMEM.
 */
int met_render(struct met_registry *r, char **out, size_t *len);

/*
 * Collectors: `fn(ud)` runs at the start of every met_render(), so that a
 * module whose counters live elsewhere (e.g. atomics updated by threads that
 * have no shard) can copy them into its series just before they are read.
 * At most MET_MAX_COLLECTORS. Returns 0, CUT_ERR_INVALID or CUT_ERR_FULL.
 * Remove a collector before `ud` goes away: once
 * met_registry_remove_collector() returns, `fn` is not running and will not
 * run again.
 */
#define MET_MAX_COLLECTORS 8
int met_registry_add_collector(struct met_registry *r, void (*fn)(void *), void *ud);
void met_registry_remove_collector(struct met_registry *r, void (*fn)(void *), void *ud);

/* Default latency buckets in microseconds: 1ms .. 10s. */
extern const uint64_t met_latency_buckets_us[];
extern const size_t met_latency_nbuckets;

#endif
