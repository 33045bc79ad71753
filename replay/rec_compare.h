/* rec_compare: live comparison of primary and shadow off the client's path; only mismatches are recorded. */
#ifndef CUT_REC_COMPARE_H
#define CUT_REC_COMPARE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "analyzer/an_compare.h"
#include "config/config.h"
#include "replay/rec_pair.h"
#include "replay/rec_sink.h"

/*
 * A route with `compare: live` hands each complete pair (the primary and
 * every shadow done) to the process's comparer instead of recording it. The
 * comparer's thread compares the primary with each shadow with the
 * analyzer's comparison (an_compare: status, the content-type header, JSON
 * bodies structurally after deleting the route's `compare_ignore` paths,
 * other bodies by text or bytes), counts a match or a mismatch, and records
 * only the mismatching pairs. The queue between the workers and that thread
 * is bounded: when it is full the pair is recorded without comparison and
 * counted as skipped ("queue_full"), so nothing is lost and no worker waits.
 */

enum rec_compare_outcome {
  REC_CMP_MATCH = 0,     /* every shadow that answered matches the primary */
  REC_CMP_MISMATCH = 1,  /* at least one shadow differs */
  REC_CMP_NO_SHADOW = 2, /* no shadow was sent (skipped, not sampled): nothing to compare */
  REC_CMP_LINEAGE = 3,   /* the sides were built from different data (lineage): not comparable */
};

/* Why a pair was not compared (metric label). */
enum rec_compare_skip {
  REC_CMP_SKIP_QUEUE_FULL = 0, /* the comparison queue was full: recorded uncompared */
  REC_CMP_SKIP_NO_SHADOW,      /* no shadow answered */
  REC_CMP_SKIP_LINEAGE,        /* lineage differs */
  REC_CMP_SKIP_ERROR,          /* out of memory while comparing: recorded uncompared */
  REC_CMP_SKIP_N
};

/* "queue_full", "no_shadow", "lineage", "error". */
const char *rec_compare_skip_name(enum rec_compare_skip s);

/* Counters, updated with relaxed atomics. */
struct rec_compare_stats {
  _Atomic uint64_t matches;
  _Atomic uint64_t mismatches;
  _Atomic uint64_t skipped[REC_CMP_SKIP_N];
  _Atomic uint64_t recorded;     /* pairs handed to the sink (mismatches and uncompared) */
  _Atomic int64_t queue_depth;   /* pairs waiting for the comparison thread */
};

/*
 * Builds the comparison rules of every `compare: live` route of `cfg`
 * (borrowed): the analyzer's default rules plus, per route, its
 * compare_ignore paths. Returns 0, CUT_ERR_NOMEM, or CUT_ERR_CONFIG with
 * "routes.NAME.compare_ignore: ..." in err. Caller frees with an_rules_free().
 */
int rec_compare_rules_new(struct an_rules **out, const struct cfg *cfg, char *err, size_t errlen);

/*
 * Compares the primary of `p` with each of its shadows under `rules`
 * (borrowed), reusing `res` (an_result_init'ed by the caller). Finishes the
 * pair's body checksums first. Shadows that were never sent (error
 * "skipped") are left out; a shadow that failed (timeout, reset...) differs
 * from a primary that answered. When a side's body was cut at the recording
 * cap, bodies with different checksums are a mismatch without parsing.
 * Pure: no I/O. Returns an enum rec_compare_outcome (>= 0) or CUT_ERR_NOMEM.
 */
int rec_compare_pair(const struct an_rules *rules, struct rec_pair *p, struct an_result *res);

struct rec_comparer;

/*
 * Starts a comparer with its thread. Takes ownership of `rules` on success
 * only. `sink` (borrowed; may be NULL: count only) receives the mismatching
 * pairs; `stats` (borrowed; must outlive the comparer) is where it counts.
 * queue_cap bounds the pairs waiting (0 = 4096). Returns 0, CUT_ERR_NOMEM,
 * CUT_ERR_AVRO or CUT_ERR_STATE (no thread) with err text.
 * Caller frees with rec_comparer_free().
 */
int rec_comparer_new(struct rec_comparer **out, struct an_rules *rules, struct rec_sink *sink,
                     struct rec_compare_stats *stats, size_t queue_cap, char *err, size_t errlen);

/*
 * Hands over a complete pair from any thread: takes ownership on success
 * only (the pair's build options are dropped: it is not built any further).
 * Never blocks on the comparison. Returns 0, or CUT_ERR_FULL when the queue
 * is full (counted as skipped "queue_full"; the caller still owns the pair
 * and should record it).
 */
int rec_comparer_submit(struct rec_comparer *c, struct rec_pair *p);

/*
 * Replaces the comparison rules (a config reload): takes ownership of
 * `rules`. Pairs taken by the thread from now on are compared under them;
 * the old rules are freed by the thread. Any thread; never blocks on a
 * comparison.
 */
void rec_comparer_set_rules(struct rec_comparer *c, struct an_rules *rules);

/* Waits until every pair submitted so far is compared (blocks: tests and
 * shutdown only). */
void rec_comparer_flush(struct rec_comparer *c);

/* Compares what is queued, stops the thread and frees. NULL is ok. */
void rec_comparer_free(struct rec_comparer *c);

#endif
