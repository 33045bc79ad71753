/* an_run: glue between decoded records, the join, the comparer, the summary and the outputs. */
#include "analyzer/an_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyzer/an_compare.h"
#include "common/cut_fs.h"
#include "analyzer/an_join.h"
#include "analyzer/an_out.h"
#include "analyzer/an_report.h"
#include "analyzer/an_summary.h"
#include "common/cut_err.h"

#define CANDIDATES ".candidates.jsonl"

struct an_run {
  struct an_run_opts o;
  char *dir;
  struct an_summary *summary;
  struct an_join *join;
  struct an_result res;
  FILE *candidates;
  char *cand_path; /* removed when the run ends, finished or not */
  uint64_t records;
  int io_failed;
};

static int ensure_dir(const char *dir, char *err, size_t errlen) {
  return cut_mkdir_p(dir, 0777, err, errlen);
}

static int on_pair(struct an_record *rec, void *user_data) {
  struct an_run *r = user_data;
  struct an_pair_view pv;
  an_record_view(rec, rec, &pv);
  int rc = an_compare(r->o.rules, &pv, AN_COMPARE_KEEP_NORMALIZED, &r->res);
  if (rc != 0) return rc;
  if ((rc = an_summary_add_pair(r->summary, &pv, &r->res)) != 0) return rc;
  if (r->res.outcome == AN_MISMATCH) {
    json_t *line = an_out_mismatch_json(&pv, &r->res);
    if (line == NULL) return CUT_ERR_NOMEM;
    rc = an_out_write_line(r->candidates, line);
    json_decref(line);
  }
  return rc;
}

static int on_unjoined(struct an_record *rec, enum an_side_id side, void *user_data) {
  struct an_run *r = user_data;
  return an_summary_add_unjoined(r->summary, rec->route, side);
}

static int on_duplicate(struct an_record *rec, void *user_data) {
  struct an_run *r = user_data;
  return an_summary_add_duplicate(r->summary, rec->route);
}

void an_run_free(struct an_run *r) {
  if (r == NULL) return;
  if (r->candidates != NULL) fclose(r->candidates);
  if (r->cand_path != NULL) unlink(r->cand_path);
  free(r->cand_path);
  an_join_free(r->join);
  an_summary_free(r->summary);
  an_result_clear(&r->res);
  free(r->dir);
  free(r);
}

int an_run_new(struct an_run **out, const struct an_run_opts *o, char *err, size_t errlen) {
  struct an_run *r = calloc(1, sizeof *r);
  int rc;
  if (r == NULL) return CUT_ERR_NOMEM;
  r->o = *o;
  an_result_init(&r->res);
  if ((rc = ensure_dir(o->out_dir, err, errlen)) != 0) goto fail;
  rc = CUT_ERR_NOMEM;
  if ((r->dir = strdup(o->out_dir)) == NULL) goto fail;
  if (an_summary_new(&r->summary) != 0) goto fail;
  if ((rc = an_join_new(&r->join, o->join_count, o->join_window_us, on_pair, on_unjoined,
                        on_duplicate, r)) != 0)
    goto fail;
  if (asprintf(&r->cand_path, "%s/%s", o->out_dir, CANDIDATES) < 0) {
    r->cand_path = NULL;
    goto fail;
  }
  if ((r->candidates = fopen(r->cand_path, "w+")) == NULL) {
    rc = cut_errf(err, errlen, CUT_ERR_IO, "%s: %s", r->cand_path, strerror(errno));
    free(r->cand_path);
    r->cand_path = NULL;
    goto fail;
  }
  *out = r;
  return 0;
fail:
  an_run_free(r);
  return rc;
}

uint64_t an_run_records(const struct an_run *r) { return r->records; }

int an_run_add(struct an_run *r, struct an_record *rec) {
  int rc;
  r->records++;
  if (rec->kind != AN_KIND_SHADOW && (rc = an_summary_add_record(r->summary, rec->route, AN_PRIMARY)) != 0)
    goto fail;
  if ((rec->kind == AN_KIND_SHADOW || rec->shadow.present) &&
      (rc = an_summary_add_record(r->summary, rec->route, AN_SHADOW)) != 0)
    goto fail;
  return an_join_add(r->join, rec);
fail:
  an_record_free(rec);
  return rc;
}

static int write_json_file(const char *dir, const char *name, json_t *v, char *err, size_t errlen) {
  char path[4096], tmp[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (json_dump_file(v, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) != 0 || rename(tmp, path) != 0)
    return cut_errf(err, errlen, CUT_ERR_IO, "%s: cannot write", path);
  return 0;
}

/* Writes every output from a finished summary and candidate line files. */
static int write_outputs(struct an_summary *s, const char *dir, const char *const *cands,
                         size_t ncands, size_t html_n, json_t **report, char *err, size_t errlen) {
  json_t *rep = an_summary_report(s), *kept = NULL;
  if (rep == NULL) return CUT_ERR_NOMEM;
  long n = an_out_split(s, cands, ncands, dir, html_n, &kept, err, errlen);
  if (n < 0) {
    json_decref(rep);
    return (int)n;
  }
  int rc = write_json_file(dir, "summary.json", rep, err, errlen);
  if (rc == 0) {
    char path[4096];
    snprintf(path, sizeof path, "%s/report.html", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
      rc = cut_errf(err, errlen, CUT_ERR_IO, "%s: %s", path, strerror(errno));
    } else {
      rc = an_report_html(f, rep, kept, (size_t)n);
      if (fclose(f) != 0 || rc != 0) rc = cut_errf(err, errlen, CUT_ERR_IO, "%s: write failed", path);
    }
  }
  json_decref(kept);
  if (rc != 0) {
    json_decref(rep);
    return rc;
  }
  *report = rep;
  return 0;
}

int an_run_finish(struct an_run *r, json_t **report, char *err, size_t errlen) {
  int rc = an_join_flush(r->join);
  if (rc != 0) return cut_errf(err, errlen, rc, "join: %s", cut_strerror(rc));
  if (fflush(r->candidates) != 0)
    return cut_errf(err, errlen, CUT_ERR_IO, "%s/%s: write failed", r->dir, CANDIDATES);
  const char *cands[1] = {r->cand_path};
  rc = write_outputs(r->summary, r->dir, cands, 1, r->o.html_mismatches, report, err, errlen);
  fclose(r->candidates);
  r->candidates = NULL;
  return rc;
}

static json_t *load_json(const char *path, char *err, size_t errlen, int *rc) {
  json_error_t je;
  json_t *v = json_load_file(path, 0, &je);
  if (v == NULL) *rc = cut_errf(err, errlen, CUT_ERR_PARSE, "%s:%d: %s", path, je.line, je.text);
  return v;
}

int an_merge(const char *out_dir, const char *const *dirs, size_t ndirs, size_t html_mismatches,
             json_t **report, char *err, size_t errlen) {
  struct an_summary *s = NULL;
  int rc = ensure_dir(out_dir, err, errlen);
  if (rc != 0) return rc;
  if ((rc = an_summary_new(&s)) != 0) return rc;
  char **cands = calloc(2 * ndirs + 1, sizeof *cands);
  if (cands == NULL) {
    an_summary_free(s);
    return CUT_ERR_NOMEM;
  }
  for (size_t i = 0; i < ndirs && rc == 0; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/summary.json", dirs[i]);
    json_t *doc = load_json(path, err, errlen, &rc);
    if (doc == NULL) break;
    char inner[512];
    rc = an_summary_merge_state(s, json_object_get(doc, "state"), inner, sizeof inner);
    if (rc != 0) cut_errf(err, errlen, rc, "%s: %s", path, inner);
    json_decref(doc);
    if (asprintf(&cands[2 * i], "%s/mismatches.jsonl", dirs[i]) < 0 ||
        asprintf(&cands[2 * i + 1], "%s/noise.jsonl", dirs[i]) < 0)
      rc = CUT_ERR_NOMEM;
  }
  if (rc == 0)
    rc = write_outputs(s, out_dir, (const char *const *)cands, 2 * ndirs, html_mismatches, report,
                       err, errlen);
  for (size_t i = 0; i < 2 * ndirs; i++) free(cands[i]);
  free(cands);
  an_summary_free(s);
  return rc;
}
