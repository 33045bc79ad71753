/* an_summary: accumulate per-route counts in a mergeable state and derive the report. */
#include "analyzer/an_summary.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"

/*
 * Everything is kept in one jansson tree, "state", whose leaves are counters
 * or sorted example lists. Merging partial summaries is then a recursive sum
 * (example lists: union, keep the AN_EXAMPLES smallest ids), which gives
 * exactly the state one process over the whole input would have built.
 * Matches and mismatches are not counted directly: each pair adds one to the
 * counter of its "signature" (the sorted set of fields that differed) under
 * its route and minute. Which fields are noise is known only at the end, so
 * the report derives matches and mismatches from the signatures then.
 */
struct an_summary {
  json_t *state;  /* {"version":1, "routes": {...}} */
  json_t *routes; /* borrowed from state */
  json_t *noise;  /* after report: route -> {field: true} */
  /* Cache of the last route block: pairs usually come in runs. */
  char *last_route;
  json_t *last_block;
};

int an_summary_new(struct an_summary **out) {
  struct an_summary *s = calloc(1, sizeof *s);
  if (s == NULL) return CUT_ERR_NOMEM;
  s->state = json_pack("{s:i, s:{}}", "version", 1, "routes");
  if (s->state == NULL) {
    free(s);
    return CUT_ERR_NOMEM;
  }
  s->routes = json_object_get(s->state, "routes");
  *out = s;
  return 0;
}

void an_summary_free(struct an_summary *s) {
  if (s == NULL) return;
  json_decref(s->state);
  json_decref(s->noise);
  free(s->last_route);
  free(s);
}

static json_t *child(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  if (v == NULL) {
    v = json_object();
    if (v == NULL || json_object_set_new(obj, key, v) != 0) return NULL;
  }
  return v;
}

static int inc(json_t *obj, const char *key, json_int_t by) {
  if (obj == NULL) return CUT_ERR_NOMEM;
  json_t *v = json_object_get(obj, key);
  if (v != NULL && json_is_integer(v)) return json_integer_set(v, json_integer_value(v) + by);
  return json_object_set_new(obj, key, json_integer(by)) == 0 ? 0 : CUT_ERR_NOMEM;
}

static json_int_t get_int(json_t *obj, const char *key) {
  return json_integer_value(json_object_get(obj, key));
}

static const char *route_name(const char *route) {
  return route != NULL && route[0] != '\0' ? route : "-";
}

static json_t *route_block(struct an_summary *s, const char *route) {
  route = route_name(route);
  if (s->last_route != NULL && strcmp(s->last_route, route) == 0) return s->last_block;
  json_t *b = child(s->routes, route);
  if (b == NULL) return NULL;
  char *copy = strdup(route);
  if (copy == NULL) return NULL;
  free(s->last_route);
  s->last_route = copy;
  s->last_block = b;
  return b;
}

static const char *side_name(enum an_side_id side) { return side == AN_PRIMARY ? "primary" : "shadow"; }

int an_summary_add_record(struct an_summary *s, const char *route, enum an_side_id side) {
  json_t *b = route_block(s, route);
  return b == NULL ? CUT_ERR_NOMEM : inc(child(b, "records"), side_name(side), 1);
}

int an_summary_add_unjoined(struct an_summary *s, const char *route, enum an_side_id side) {
  json_t *b = route_block(s, route);
  return b == NULL ? CUT_ERR_NOMEM : inc(child(b, "unjoined"), side_name(side), 1);
}

int an_summary_add_duplicate(struct an_summary *s, const char *route) {
  json_t *b = route_block(s, route);
  return b == NULL ? CUT_ERR_NOMEM : inc(b, "duplicates", 1);
}

/* Inserts id into a sorted list of at most AN_EXAMPLES smallest ids. */
static int add_example(json_t *list, const char *id) {
  size_t n = json_array_size(list), pos = n;
  for (size_t i = 0; i < n; i++) {
    int c = strcmp(id, json_string_value(json_array_get(list, i)));
    if (c == 0) return 0;
    if (c < 0) {
      pos = i;
      break;
    }
  }
  if (pos >= AN_EXAMPLES) return 0;
  if (json_array_insert_new(list, pos, json_string(id)) != 0) return CUT_ERR_NOMEM;
  if (json_array_size(list) > AN_EXAMPLES) json_array_remove(list, AN_EXAMPLES);
  return 0;
}

static json_t *field_entry(json_t *fields, const char *field) {
  json_t *f = json_object_get(fields, field);
  if (f == NULL) {
    f = json_pack("{s:i, s:i, s:i, s:[], s:[]}", "count", 0, "with_repeat", 0, "noise", 0,
                  "examples", "noise_examples");
    if (f == NULL || json_object_set_new(fields, field, f) != 0) return NULL;
  }
  return f;
}

/* Calls fn once per distinct field of a diff. Diffs are small, so the
 * quadratic de-duplication is cheaper than hashing. */
static int seen_field(const struct an_diff *d, size_t upto, const char *field) {
  for (size_t i = 0; i < upto; i++)
    if (strcmp(d->v[i].field, field) == 0) return 1;
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The signature: distinct fields sorted, joined by '\n'. Caller frees. */
static char *signature(const struct an_diff *d) {
  if (d->n == 0) return strdup("");
  const char **f = malloc(d->n * sizeof *f);
  if (f == NULL) return NULL;
  size_t n = 0, len = 1;
  for (size_t i = 0; i < d->n; i++) {
    if (seen_field(d, i, d->v[i].field)) continue;
    f[n++] = d->v[i].field;
    len += strlen(d->v[i].field) + 1;
  }
  qsort(f, n, sizeof *f, cmp_str);
  char *sig = malloc(len), *p = sig;
  if (sig != NULL) {
    for (size_t i = 0; i < n; i++) {
      size_t l = strlen(f[i]);
      if (i > 0) *p++ = '\n';
      memcpy(p, f[i], l);
      p += l;
    }
    *p = '\0';
  }
  free(f);
  return sig;
}

int an_summary_add_pair(struct an_summary *s, const struct an_pair_view *pv,
                        const struct an_result *res) {
  json_t *b = route_block(s, pv->route);
  int rc = 0;
  if (b == NULL) return CUT_ERR_NOMEM;
  if (inc(b, "joined", 1) != 0) return CUT_ERR_NOMEM;
  json_t *pf = child(b, "pass_fail");
  if (pf == NULL) return CUT_ERR_NOMEM;
  rc |= inc(child(pf, "primary"), an_side_pass(&pv->primary) ? "pass" : "fail", 1);
  rc |= inc(child(pf, "shadow"), an_side_pass(&pv->shadow) ? "pass" : "fail", 1);
  char ps[16], ss[16];
  snprintf(ps, sizeof ps, "%d", pv->primary.status);
  snprintf(ss, sizeof ss, "%d", pv->shadow.status);
  rc |= inc(child(child(b, "status"), ps), ss, 1);
  if (rc != 0) return CUT_ERR_NOMEM;

  if (res->outcome == AN_LINEAGE_DISCARDED) {
    if (inc(b, "lineage_discarded", 1) != 0) return CUT_ERR_NOMEM;
    json_t *deps = child(b, "lineage");
    for (size_t i = 0; i < res->nlineage; i++)
      if (inc(deps, res->lineage[i], 1) != 0) return CUT_ERR_NOMEM;
    return 0;
  }
  if (res->has_repeat && inc(b, "with_repeat", 1) != 0) return CUT_ERR_NOMEM;
  if (res->diff.n > 0 || res->noise.n > 0) {
    json_t *fields = child(b, "fields");
    if (fields == NULL) return CUT_ERR_NOMEM;
    for (size_t i = 0; i < res->diff.n; i++) {
      const char *fname = res->diff.v[i].field;
      if (seen_field(&res->diff, i, fname)) continue;
      json_t *f = field_entry(fields, fname);
      if (f == NULL || inc(f, "count", 1) != 0) return CUT_ERR_NOMEM;
      if (res->has_repeat && inc(f, "with_repeat", 1) != 0) return CUT_ERR_NOMEM;
      if (pv->correlation_id && add_example(json_object_get(f, "examples"), pv->correlation_id) != 0)
        return CUT_ERR_NOMEM;
    }
    for (size_t i = 0; i < res->noise.n; i++) {
      const char *fname = res->noise.v[i].field;
      if (seen_field(&res->noise, i, fname)) continue;
      json_t *f = field_entry(fields, fname);
      if (f == NULL || inc(f, "noise", 1) != 0) return CUT_ERR_NOMEM;
      if (pv->correlation_id &&
          add_example(json_object_get(f, "noise_examples"), pv->correlation_id) != 0)
        return CUT_ERR_NOMEM;
    }
  }
  char minute[32];
  long long sec = pv->time_us >= 0 ? pv->time_us / 1000000 : 0;
  snprintf(minute, sizeof minute, "%lld", sec - sec % 60);
  json_t *sigs = child(child(b, "signatures"), minute);
  if (sigs == NULL) return CUT_ERR_NOMEM;
  if (res->diff.n == 0) return inc(sigs, "", 1);
  char *sig = signature(&res->diff);
  if (sig == NULL) return CUT_ERR_NOMEM;
  rc = inc(sigs, sig, 1);
  free(sig);
  return rc;
}

/* ---- merge ---- */

static int merge_examples(json_t *dst, json_t *src) {
  size_t i;
  json_t *v;
  json_array_foreach(src, i, v) {
    if (!json_is_string(v)) return CUT_ERR_PARSE;
    if (add_example(dst, json_string_value(v)) != 0) return CUT_ERR_NOMEM;
  }
  return 0;
}

static int merge_obj(json_t *dst, json_t *src, const char *where, char *err, size_t errlen) {
  const char *k;
  json_t *v;
  json_object_foreach(src, k, v) {
    json_t *d = json_object_get(dst, k);
    int rc;
    if (json_is_integer(v)) {
      if (d != NULL && !json_is_integer(d))
        return cut_errf(err, errlen, CUT_ERR_PARSE, "state: %s.%s: type mismatch", where, k);
      if (inc(dst, k, json_integer_value(v)) != 0) return CUT_ERR_NOMEM;
    } else if (json_is_array(v)) {
      if (d == NULL) {
        d = json_array();
        if (d == NULL || json_object_set_new(dst, k, d) != 0) return CUT_ERR_NOMEM;
      }
      if (!json_is_array(d) || (rc = merge_examples(d, v)) == CUT_ERR_PARSE)
        return cut_errf(err, errlen, CUT_ERR_PARSE, "state: %s.%s: bad example list", where, k);
      if (rc != 0) return rc;
    } else if (json_is_object(v)) {
      if (d == NULL) d = child(dst, k);
      if (d == NULL) return CUT_ERR_NOMEM;
      if (!json_is_object(d))
        return cut_errf(err, errlen, CUT_ERR_PARSE, "state: %s.%s: type mismatch", where, k);
      if ((rc = merge_obj(d, v, k, err, errlen)) != 0) return rc;
    } else {
      return cut_errf(err, errlen, CUT_ERR_PARSE, "state: %s.%s: unexpected value", where, k);
    }
  }
  return 0;
}

int an_summary_merge_state(struct an_summary *s, json_t *state, char *err, size_t errlen) {
  if (!json_is_object(state) || get_int(state, "version") != 1 ||
      !json_is_object(json_object_get(state, "routes")))
    return cut_errf(err, errlen, CUT_ERR_PARSE, "state: not a version 1 analyzer state");
  free(s->last_route);
  s->last_route = NULL;
  s->last_block = NULL;
  return merge_obj(s->routes, json_object_get(state, "routes"), "routes", err, errlen);
}

/* ---- report ---- */

static int is_noise(json_int_t with_repeat_pairs, json_t *f) {
  json_int_t n_pp = get_int(f, "noise"), n_ps = get_int(f, "with_repeat");
  if (n_pp == 0 || with_repeat_pairs == 0) return 0;
  double r_pp = (double)n_pp / (double)with_repeat_pairs;
  double r_ps = (double)n_ps / (double)with_repeat_pairs;
  int real = r_ps - r_pp >= AN_NOISE_ABSOLUTE && r_ps >= r_pp * (1.0 + AN_NOISE_RELATIVE);
  return !real;
}

int an_summary_is_mismatch(const struct an_summary *s, const char *route, json_t *fields) {
  json_t *noise = s->noise ? json_object_get(s->noise, route_name(route)) : NULL;
  size_t i;
  json_t *f;
  json_array_foreach(fields, i, f) {
    if (noise == NULL || json_object_get(noise, json_string_value(f)) == NULL) return 1;
  }
  return 0;
}

static int sig_is_mismatch(json_t *noise, const char *sig) {
  if (sig[0] == '\0') return 0;
  char buf[4096];
  const char *p = sig;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (len >= sizeof buf) return 1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (noise == NULL || json_object_get(noise, buf) == NULL) return 1;
    p += len + (nl ? 1 : 0);
  }
  return 0;
}

static json_t *rate(json_int_t m, json_int_t mm) {
  return m + mm > 0 ? json_real((double)m / (double)(m + mm)) : json_null();
}

static int cmp_field_items(const void *x, const void *y) {
  json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
  json_int_t ca = get_int(a, "count"), cb = get_int(b, "count");
  if (ca != cb) return ca > cb ? -1 : 1;
  int c = strcmp(json_string_value(json_object_get(a, "route")),
                 json_string_value(json_object_get(b, "route")));
  if (c != 0) return c;
  return strcmp(json_string_value(json_object_get(a, "field")),
                json_string_value(json_object_get(b, "field")));
}

/* Sorts a JSON array of field items: most frequent first, then by name. */
static void sort_items(json_t *arr) {
  size_t n = json_array_size(arr);
  if (n < 2) return;
  json_t **v = malloc(n * sizeof *v);
  if (v == NULL) return;
  for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(arr, i));
  qsort(v, n, sizeof *v, cmp_field_items);
  json_array_clear(arr);
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, v[i]);
  free(v);
}

static void add_to(json_t *dst, const char *key, json_int_t by) { inc(dst, key, by); }

/* Adds every integer leaf of src into dst (same shape). */
static void sum_into(json_t *dst, json_t *src) { merge_obj(dst, src, "", NULL, 0); }

json_t *an_summary_report(struct an_summary *s) {
  json_t *out = json_object(), *routes_out = json_object(), *fields_all = json_array(),
         *noise_all = json_array(), *timeline = json_object(), *noise = json_object();
  json_t *tot = json_pack("{s:{s:i,s:i}, s:i, s:{s:i,s:i}, s:i, s:i, s:i, s:{}, s:{s:{s:i,s:i},s:{s:i,s:i}}, s:{}}",
                          "records", "primary", 0, "shadow", 0, "joined", 0, "unjoined", "primary",
                          0, "shadow", 0, "matches", 0, "mismatches", 0, "lineage_discarded", 0,
                          "lineage", "pass_fail", "primary", "pass", 0, "fail", 0, "shadow", "pass",
                          0, "fail", 0, "status_matrix");
  if (tot != NULL) json_object_set_new(tot, "duplicates", json_integer(0));
  json_int_t with_repeat_total = 0;
  if (!out || !routes_out || !fields_all || !noise_all || !timeline || !noise || !tot) goto nomem;

  const char *rname;
  json_t *b;
  json_object_foreach(s->routes, rname, b) {
    json_t *rn = child(noise, rname);
    json_int_t wr = get_int(b, "with_repeat");
    with_repeat_total += wr;
    json_t *rfields = json_array(), *rnoise = json_array();
    if (rn == NULL || rfields == NULL || rnoise == NULL) {
      json_decref(rfields);
      json_decref(rnoise);
      goto nomem;
    }
    const char *fname;
    json_t *f;
    json_object_foreach(json_object_get(b, "fields"), fname, f) {
      int noisy = is_noise(wr, f);
      if (noisy) json_object_set_new(rn, fname, json_true());
      json_t *item;
      if (noisy)
        item = json_pack("{s:s, s:s, s:I, s:I, s:I, s:O, s:O}", "route", rname, "field", fname,
                         "count", get_int(f, "count"), "noise_count", get_int(f, "noise"),
                         "with_repeat", get_int(f, "with_repeat"), "examples",
                         json_object_get(f, "noise_examples"), "shadow_examples",
                         json_object_get(f, "examples"));
      else if (get_int(f, "count") > 0)
        item = json_pack("{s:s, s:s, s:I, s:I, s:O}", "route", rname, "field", fname, "count",
                         get_int(f, "count"), "noise_count", get_int(f, "noise"), "examples",
                         json_object_get(f, "examples"));
      else
        continue;
      if (item == NULL) goto nomem;
      json_array_append(noisy ? noise_all : fields_all, item);
      json_array_append_new(noisy ? rnoise : rfields, item);
    }
    json_int_t matches = 0, mismatches = 0;
    const char *minute;
    json_t *sigs;
    json_object_foreach(json_object_get(b, "signatures"), minute, sigs) {
      const char *sig;
      json_t *cnt;
      json_t *tl = child(timeline, minute);
      json_object_foreach(sigs, sig, cnt) {
        json_int_t c = json_integer_value(cnt);
        int mm = sig_is_mismatch(rn, sig);
        if (mm)
          mismatches += c;
        else
          matches += c;
        add_to(tl, mm ? "mismatches" : "matches", c);
      }
    }
    sort_items(rfields);
    sort_items(rnoise);
    json_t *rb = json_pack(
        "{s:{s:I,s:I}, s:I, s:{s:I,s:I}, s:I, s:I, s:I, s:o, s:O?, s:{s:{s:I,s:I},s:{s:I,s:I}}, "
        "s:O?, s:I, s:o, s:o, s:I}",
        "records", "primary", get_int(json_object_get(b, "records"), "primary"), "shadow",
        get_int(json_object_get(b, "records"), "shadow"), "joined", get_int(b, "joined"),
        "unjoined", "primary", get_int(json_object_get(b, "unjoined"), "primary"), "shadow",
        get_int(json_object_get(b, "unjoined"), "shadow"), "matches", matches, "mismatches",
        mismatches, "lineage_discarded", get_int(b, "lineage_discarded"), "match_rate",
        rate(matches, mismatches), "lineage", json_object_get(b, "lineage"), "pass_fail",
        "primary", "pass", get_int(json_object_get(json_object_get(b, "pass_fail"), "primary"), "pass"),
        "fail", get_int(json_object_get(json_object_get(b, "pass_fail"), "primary"), "fail"),
        "shadow", "pass", get_int(json_object_get(json_object_get(b, "pass_fail"), "shadow"), "pass"),
        "fail", get_int(json_object_get(json_object_get(b, "pass_fail"), "shadow"), "fail"),
        "status_matrix", json_object_get(b, "status"), "pairs_with_repeat", wr, "fields", rfields,
        "noise", rnoise, "duplicates", get_int(b, "duplicates"));
    if (rb == NULL) goto nomem;
    if (json_object_get(rb, "lineage") == NULL || json_is_null(json_object_get(rb, "lineage")))
      json_object_set_new(rb, "lineage", json_object());
    if (json_is_null(json_object_get(rb, "status_matrix")))
      json_object_set_new(rb, "status_matrix", json_object());
    json_object_set_new(routes_out, rname, rb);
    /* Totals: the sum of the route blocks' counters. */
    json_t *counts = json_deep_copy(rb);
    if (counts == NULL) goto nomem;
    json_object_del(counts, "match_rate");
    json_object_del(counts, "fields");
    json_object_del(counts, "noise");
    json_object_del(counts, "pairs_with_repeat");
    sum_into(tot, counts);
    json_decref(counts);
  }
  sort_items(fields_all);
  sort_items(noise_all);

  json_t *tl_arr = json_array();
  if (tl_arr == NULL) goto nomem;
  /* Minutes as numbers, ascending. */
  size_t nmin = json_object_size(timeline), k = 0;
  long long *mins = malloc((nmin ? nmin : 1) * sizeof *mins);
  if (mins == NULL) {
    json_decref(tl_arr);
    goto nomem;
  }
  const char *minute;
  json_t *tv;
  json_object_foreach(timeline, minute, tv) mins[k++] = atoll(minute);
  for (size_t i = 1; i < nmin; i++)
    for (size_t j = i; j > 0 && mins[j - 1] > mins[j]; j--) {
      long long t = mins[j];
      mins[j] = mins[j - 1];
      mins[j - 1] = t;
    }
  for (size_t i = 0; i < nmin; i++) {
    char key[32];
    snprintf(key, sizeof key, "%lld", mins[i]);
    json_t *e = json_object_get(timeline, key);
    json_int_t m = get_int(e, "matches"), mm = get_int(e, "mismatches");
    json_array_append_new(tl_arr, json_pack("{s:I, s:I, s:I, s:o}", "minute", (json_int_t)mins[i],
                                            "matches", m, "mismatches", mm, "match_rate",
                                            rate(m, mm)));
  }
  free(mins);

  json_object_update(out, tot);
  json_object_set_new(out, "match_rate",
                      rate(get_int(tot, "matches"), get_int(tot, "mismatches")));
  json_object_set_new(out, "pairs_with_repeat", json_integer(with_repeat_total));
  json_object_set_new(out, "fields", fields_all);
  json_object_set_new(out, "noise",
                      json_pack("{s:{s:f, s:f}, s:o}", "rule", "relative", AN_NOISE_RELATIVE,
                                "absolute", AN_NOISE_ABSOLUTE, "fields", noise_all));
  json_object_set_new(out, "timeline", tl_arr);
  json_object_set_new(out, "routes", routes_out);
  json_object_set(out, "state", s->state);
  json_decref(tot);
  json_decref(timeline);
  json_decref(s->noise);
  s->noise = noise;
  return out;
nomem:
  json_decref(out);
  json_decref(routes_out);
  json_decref(fields_all);
  json_decref(noise_all);
  json_decref(timeline);
  json_decref(noise);
  json_decref(tot);
  return NULL;
}

double an_summary_match_rate(json_t *report) {
  json_t *r = json_object_get(report, "match_rate");
  return json_is_number(r) ? json_number_value(r) : -1.0;
}
