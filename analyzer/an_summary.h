/* an_summary: counts over compared pairs, noise classification, and exact merge of partials. */
#ifndef AN_SUMMARY_H
#define AN_SUMMARY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "analyzer/an_compare.h"

/*
 * Noise rule (docs/analyzer.md): among the pairs of a route that carry a
 * second primary response, let r_ps be the fraction where a field differs
 * between primary and shadow and r_pp the fraction where it differs between
 * the two primaries. A field with r_pp > 0 is noise unless
 *   r_ps - r_pp >= AN_NOISE_ABSOLUTE  and  r_ps >= r_pp * (1 + AN_NOISE_RELATIVE).
 * A pair is a mismatch when at least one of its differing fields is not noise.
 */
#define AN_NOISE_RELATIVE 0.20
#define AN_NOISE_ABSOLUTE 0.03
#define AN_EXAMPLES 5 /* example correlation ids kept per field: the smallest ids */

enum an_side_id { AN_PRIMARY = 0, AN_SHADOW = 1 };

struct an_summary;

/* Creates an empty summary (caller frees with an_summary_free). Returns 0 or
 * CUT_ERR_NOMEM. */
int an_summary_new(struct an_summary **out);
void an_summary_free(struct an_summary *s);

/* Counts one record read for `side` of `route` (borrowed). */
int an_summary_add_record(struct an_summary *s, const char *route, enum an_side_id side);

/* Counts one record of `side` that found no partner within the join window. */
int an_summary_add_unjoined(struct an_summary *s, const char *route, enum an_side_id side);

/* Counts one record dropped as a duplicate (same id seen again). */
int an_summary_add_duplicate(struct an_summary *s, const char *route);

/* Counts one joined pair and what an_compare found for it (both borrowed).
 * Returns 0 or CUT_ERR_NOMEM. */
int an_summary_add_pair(struct an_summary *s, const struct an_pair_view *pv,
                        const struct an_result *res);

/* Adds a partial summary's "state" object (borrowed), as found in another
 * process's summary.json. Returns 0, CUT_ERR_NOMEM, or CUT_ERR_PARSE when
 * `state` has the wrong shape (sentence in err). */
int an_summary_merge_state(struct an_summary *s, json_t *state, char *err, size_t errlen);

/*
 * Builds the summary document: totals, match rate, per-route blocks, fields
 * (most frequent first), noise, timeline, and the mergeable "state". Also
 * fixes the noise classification used by an_summary_is_mismatch. Returns a
 * new reference (caller decrefs) or NULL on ENOMEM.
 */
json_t *an_summary_report(struct an_summary *s);

/* After an_summary_report: nonzero when a pair of `route` whose differing
 * fields are `fields` (a JSON array of field strings, borrowed) counts as a
 * mismatch, i.e. at least one field is not noise. */
int an_summary_is_mismatch(const struct an_summary *s, const char *route, json_t *fields);

/* The match rate of a report, or -1 when no pair was compared. */
double an_summary_match_rate(json_t *report);

#endif
