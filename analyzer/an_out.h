/* an_out: mismatch records as JSON lines and as an Avro container file. */
#ifndef AN_OUT_H
#define AN_OUT_H

#include <stddef.h>

#include <jansson.h>

#include "analyzer/an_compare.h"
#include "analyzer/an_summary.h"

/* Builds the JSON line for a pair with differences: correlation id, route,
 * time, statuses, fields, diff, raw and normalized bodies of both sides
 * (docs/analyzer.md). Both arguments borrowed. Returns a new reference or
 * NULL on ENOMEM. */
json_t *an_out_mismatch_json(const struct an_pair_view *pv, const struct an_result *res);

/* Appends `line` (borrowed) as one compact JSON line to f. Returns 0 or CUT_ERR_IO. */
int an_out_write_line(FILE *f, json_t *line);

/* The embedded text of analyzer/schemas/mismatch.avsc. */
const char *an_out_mismatch_schema(void);

/*
 * Splits candidate lines (files written with an_out_write_line, in order)
 * by the summary's final noise classification (an_summary_report must have
 * run): real mismatches go to DIR/mismatches.jsonl and DIR/mismatches.avro
 * (deflate codec), pairs whose every difference is noise to DIR/noise.jsonl.
 * The first `keep` mismatches are appended to *kept (a new array, caller
 * decrefs) for the HTML report. Returns the number of mismatches written,
 * CUT_ERR_IO / CUT_ERR_AVRO / CUT_ERR_PARSE (sentence in err) or CUT_ERR_NOMEM.
 */
long an_out_split(const struct an_summary *s, const char *const *inputs, size_t ninputs,
                  const char *dir, size_t keep, json_t **kept, char *err, size_t errlen);

#endif
