/* an_report: the human-facing reports: a terminal table and a self-contained HTML page. */
#ifndef AN_REPORT_H
#define AN_REPORT_H

#include <stdio.h>

#include <jansson.h>

/* Writes the summary (an_summary_report's document, borrowed) as a table:
 * one line per route and a total line, then the top differing fields. */
void an_report_terminal(FILE *f, json_t *summary);

/*
 * Writes one HTML file that needs nothing else (inline CSS, SVG charts and
 * a little JavaScript, no network): the summary, charts of match rate per
 * route, top differing fields, the status matrix primary x shadow and the
 * match rate over time, the noise table, and a browsable, filterable list
 * of `mismatches` (JSON array of mismatch lines, borrowed) with their diffs.
 * Returns 0 or CUT_ERR_IO.
 */
int an_report_html(FILE *f, json_t *summary, json_t *mismatches, size_t total_mismatches);

#endif
