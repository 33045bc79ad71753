/* an_run: one analysis: records in, join, compare, summarize, outputs written to a directory. */
#ifndef AN_RUN_H
#define AN_RUN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "analyzer/an_record.h"
#include "analyzer/an_rules.h"

struct an_run_opts {
  const char *out_dir;          /* created when missing */
  const struct an_rules *rules; /* borrowed; must outlive the run */
  size_t join_count;            /* max one-sided records waiting (0 = no count bound) */
  int64_t join_window_us;       /* or time bound (0 = none); at least one is set */
  size_t html_mismatches;       /* mismatches listed in report.html */
};

struct an_run;

/* Creates a run writing into o->out_dir (its candidate file is opened now).
 * Caller frees with an_run_free. Returns 0, CUT_ERR_IO or CUT_ERR_NOMEM. */
int an_run_new(struct an_run **out, const struct an_run_opts *o, char *err, size_t errlen);
void an_run_free(struct an_run *r);

/* Feeds one decoded record (takes ownership, also on failure). Returns 0 or
 * CUT_ERR_NOMEM / CUT_ERR_IO. */
int an_run_add(struct an_run *r, struct an_record *rec);

/* Records fed so far. */
uint64_t an_run_records(const struct an_run *r);

/*
 * Ends the input: reports waiting records as unjoined, then writes
 * summary.json, mismatches.jsonl, mismatches.avro, noise.jsonl and
 * report.html into the output directory. *report receives the summary
 * document (caller decrefs). Returns 0 or a negative CUT_ERR_* (err text).
 */
int an_run_finish(struct an_run *r, json_t **report, char *err, size_t errlen);

/*
 * Merges partial results: reads DIR/summary.json ("state") and the mismatch
 * and noise lines of each dir, and writes the same outputs into out_dir as
 * one run over all the input would have (counts exactly; the mismatch list
 * is re-split by the merged noise classification). Returns 0 or a negative
 * CUT_ERR_* (err text).
 */
int an_merge(const char *out_dir, const char *const *dirs, size_t ndirs, size_t html_mismatches,
             json_t **report, char *err, size_t errlen);

#endif
