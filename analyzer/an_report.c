/* an_report: terminal summary table and the self-contained HTML report. */
#include "analyzer/an_report.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cut_err.h"

static json_int_t I(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }
static json_int_t I2(json_t *o, const char *a, const char *b) { return I(json_object_get(o, a), b); }

static void fmt_rate(char *buf, size_t n, json_t *r) {
  if (json_is_number(r))
    snprintf(buf, n, "%.2f%%", json_number_value(r) * 100.0);
  else
    snprintf(buf, n, "-");
}

static void term_row(FILE *f, const char *name, json_t *b) {
  char rate[32];
  fmt_rate(rate, sizeof rate, json_object_get(b, "match_rate"));
  fprintf(f, "%-24.24s %9lld %9lld %9lld %9lld %9lld %8lld %8lld %9s %6lld/%-6lld %6lld/%-6lld\n",
          name, (long long)I2(b, "records", "primary"), (long long)I2(b, "records", "shadow"),
          (long long)I(b, "joined"), (long long)I(b, "matches"), (long long)I(b, "mismatches"),
          (long long)I(b, "lineage_discarded"),
          (long long)(I2(b, "unjoined", "primary") + I2(b, "unjoined", "shadow")), rate,
          (long long)I2(json_object_get(b, "pass_fail"), "primary", "pass"),
          (long long)I2(json_object_get(b, "pass_fail"), "primary", "fail"),
          (long long)I2(json_object_get(b, "pass_fail"), "shadow", "pass"),
          (long long)I2(json_object_get(b, "pass_fail"), "shadow", "fail"));
}

void an_report_terminal(FILE *f, json_t *s) {
  fprintf(f, "%-24s %9s %9s %9s %9s %9s %8s %8s %9s %13s %13s\n", "route", "primary", "shadow",
          "joined", "matches", "mismatch", "lineage", "unjoined", "match", "primary p/f",
          "shadow p/f");
  const char *name;
  json_t *b;
  json_object_foreach(json_object_get(s, "routes"), name, b) term_row(f, name, b);
  term_row(f, "TOTAL", s);
  json_t *fields = json_object_get(s, "fields");
  if (json_array_size(fields) > 0) {
    fprintf(f, "\ntop differing fields:\n");
    size_t i;
    json_t *x;
    json_array_foreach(fields, i, x) {
      if (i >= 10) break;
      fprintf(f, "  %8lld  %s  %s\n", (long long)I(x, "count"),
              json_string_value(json_object_get(x, "route")),
              json_string_value(json_object_get(x, "field")));
    }
  }
  json_t *noise = json_object_get(json_object_get(s, "noise"), "fields");
  if (json_array_size(noise) > 0)
    fprintf(f, "noise: %zu field(s) differ as often between two primaries (see summary.json)\n",
            json_array_size(noise));
}

/* ---- HTML ---- */

static void esc(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&#39;", f); break;
    default: fputc(*s, f);
    }
  }
}

/* A JSON value as escaped text, cut to `max` characters. */
static void esc_json(FILE *f, json_t *v, size_t max) {
  if (v == NULL) {
    fputs("<span class=none>(absent)</span>", f);
    return;
  }
  char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (t == NULL) return;
  if (strlen(t) > max) strcpy(t + max - 3, "...");
  esc(f, t);
  free(t);
}

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#222}"
    "header{background:#1f2937;color:#fff;padding:16px 24px}h1{margin:0;font-size:20px}"
    "main{padding:16px 24px}section{background:#fff;border:1px solid #ddd;border-radius:6px;"
    "padding:12px 16px;margin:0 0 16px}h2{font-size:16px;margin:0 0 8px}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #ddd;"
    "border-radius:6px;padding:10px 14px;min-width:120px}.card b{display:block;font-size:22px}"
    ".grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:3px 6px;"
    "text-align:left;vertical-align:top}th{background:#fafafa}"
    ".bad{color:#b91c1c}.good{color:#15803d}.none{color:#999}"
    "details{border-bottom:1px solid #eee;padding:4px 0}summary{cursor:pointer}"
    "pre{background:#f3f4f6;padding:6px;overflow:auto;max-height:240px;white-space:pre-wrap;"
    "word-break:break-all}code{font-size:12px}.k-changed{color:#b45309}.k-missing{color:#b91c1c}"
    ".k-added{color:#15803d}svg.chart{width:100%;height:auto;display:block}#filter{width:320px;padding:4px;margin-bottom:8px}";

static void bar_chart(FILE *f, const char *id, const char *title, json_t *labels, json_t *values,
                      int is_rate) {
  size_t n = json_array_size(labels);
  int h = 24 * (int)(n ? n : 1) + 10;
  double max = is_rate ? 1.0 : 0;
  for (size_t i = 0; i < n && !is_rate; i++) {
    double v = json_number_value(json_array_get(values, i));
    if (v > max) max = v;
  }
  if (max <= 0) max = 1;
  fprintf(f, "<section><h2>");
  esc(f, title);
  fprintf(f, "</h2><svg id=\"%s\" class=chart viewBox=\"0 0 600 %d\" "
             "xmlns=\"http://www.w3.org/2000/svg\" role=img>",
          id, h);
  if (n == 0) fprintf(f, "<text x=\"4\" y=\"20\" fill=\"#999\">no data</text>");
  for (size_t i = 0; i < n; i++) {
    double v = json_number_value(json_array_get(values, i));
    int w = (int)(360.0 * v / max);
    int y = 5 + 24 * (int)i;
    const char *color = is_rate ? (v >= 0.99 ? "#16a34a" : v >= 0.9 ? "#d97706" : "#dc2626") : "#2563eb";
    fprintf(f, "<text x=\"0\" y=\"%d\" font-size=\"12\">", y + 14);
    const char *l = json_string_value(json_array_get(labels, i));
    char cut[34];
    snprintf(cut, sizeof cut, "%s", l ? l : "");
    esc(f, cut);
    fprintf(f, "</text><rect x=\"200\" y=\"%d\" width=\"%d\" height=\"18\" fill=\"%s\"/>", y,
            w > 0 ? w : 1, color);
    if (is_rate)
      fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\">%.1f%%</text>", 206 + w, y + 14, v * 100);
    else
      fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\">%.0f</text>", 206 + w, y + 14, v);
  }
  fprintf(f, "</svg></section>\n");
}

static void status_matrix(FILE *f, json_t *m) {
  /* Collect the status codes of both axes. */
  int ps[32], ss[32];
  size_t np = 0, ns = 0;
  const char *pk, *sk;
  json_t *row, *c;
  json_object_foreach(m, pk, row) {
    if (np < 32) ps[np++] = atoi(pk);
    json_object_foreach(row, sk, c) {
      int v = atoi(sk), seen = 0;
      for (size_t i = 0; i < ns; i++) seen |= ss[i] == v;
      if (!seen && ns < 32) ss[ns++] = v;
    }
  }
  for (size_t i = 1; i < np; i++) for (size_t j = i; j > 0 && ps[j - 1] > ps[j]; j--) { int t = ps[j]; ps[j] = ps[j - 1]; ps[j - 1] = t; }
  for (size_t i = 1; i < ns; i++) for (size_t j = i; j > 0 && ss[j - 1] > ss[j]; j--) { int t = ss[j]; ss[j] = ss[j - 1]; ss[j - 1] = t; }
  json_int_t max = 1;
  json_object_foreach(m, pk, row) json_object_foreach(row, sk, c) if (json_integer_value(c) > max) max = json_integer_value(c);
  int cw = 70, chh = 28, w = 90 + cw * (int)(ns ? ns : 1), h = 40 + chh * (int)(np ? np : 1);
  fprintf(f, "<section><h2>Status codes: primary (rows) &times; shadow (columns)</h2>"
             "<svg id=\"chart-status\" class=chart viewBox=\"0 0 %d %d\" style=\"max-width:%dpx\" "
             "xmlns=\"http://www.w3.org/2000/svg\" role=img>",
          w, h, w);
  for (size_t j = 0; j < ns; j++)
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"12\" text-anchor=\"middle\">%d</text>",
            90 + cw * (int)j + cw / 2, ss[j]);
  for (size_t i = 0; i < np; i++) {
    int y = 32 + chh * (int)i;
    fprintf(f, "<text x=\"4\" y=\"%d\" font-size=\"12\">%d</text>", y + 18, ps[i]);
    char key[16];
    snprintf(key, sizeof key, "%d", ps[i]);
    json_t *r = json_object_get(m, key);
    for (size_t j = 0; j < ns; j++) {
      char k2[16];
      snprintf(k2, sizeof k2, "%d", ss[j]);
      json_int_t v = json_integer_value(json_object_get(r, k2));
      double a = v > 0 ? 0.15 + 0.85 * (double)v / (double)max : 0.03;
      const char *rgb = ps[i] == ss[j] ? "22,163,74" : "220,38,38";
      fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgba(%s,%.2f)\" "
                 "stroke=\"#fff\"/><text x=\"%d\" y=\"%d\" font-size=\"12\" "
                 "text-anchor=\"middle\">%lld</text>",
              90 + cw * (int)j, y, cw, chh, rgb, a, 90 + cw * (int)j + cw / 2, y + 18, (long long)v);
    }
  }
  fprintf(f, "</svg></section>\n");
}

static void timeline_chart(FILE *f, json_t *tl) {
  size_t n = json_array_size(tl);
  int w = 600, h = 200;
  fprintf(f, "<section><h2>Match rate over time (per minute)</h2>"
             "<svg id=\"chart-timeline\" class=chart viewBox=\"0 0 %d %d\" "
             "xmlns=\"http://www.w3.org/2000/svg\" role=img>"
             "<line x1=\"40\" y1=\"10\" x2=\"40\" y2=\"170\" stroke=\"#999\"/>"
             "<line x1=\"40\" y1=\"170\" x2=\"590\" y2=\"170\" stroke=\"#999\"/>"
             "<text x=\"0\" y=\"14\" font-size=\"11\">100%%</text>"
             "<text x=\"8\" y=\"172\" font-size=\"11\">0%%</text>",
          w, h);
  if (n == 0) fprintf(f, "<text x=\"60\" y=\"90\" fill=\"#999\">no data</text>");
  fprintf(f, "<polyline fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2\" points=\"");
  for (size_t i = 0; i < n; i++) {
    json_t *r = json_object_get(json_array_get(tl, i), "match_rate");
    double v = json_is_number(r) ? json_number_value(r) : 1.0;
    double x = 40 + (n > 1 ? 550.0 * (double)i / (double)(n - 1) : 275.0);
    fprintf(f, "%.1f,%.1f ", x, 170 - 160 * v);
  }
  fprintf(f, "\"/>");
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(tl, i), *r = json_object_get(e, "match_rate");
    double v = json_is_number(r) ? json_number_value(r) : 1.0;
    double x = 40 + (n > 1 ? 550.0 * (double)i / (double)(n - 1) : 275.0);
    time_t t = (time_t)I(e, "minute");
    struct tm tm;
    char ts[32];
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M", &tm);
    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#2563eb\"><title>%s UTC: %.2f%% "
               "(%lld/%lld)</title></circle>",
            x, 170 - 160 * v, ts, v * 100, (long long)I(e, "matches"),
            (long long)(I(e, "matches") + I(e, "mismatches")));
    if (i == 0 || i == n - 1)
      fprintf(f, "<text x=\"%.1f\" y=\"190\" font-size=\"11\" text-anchor=\"%s\">%s</text>", x,
              i == 0 ? "start" : "end", ts);
  }
  fprintf(f, "</svg></section>\n");
}

static void card(FILE *f, const char *label, const char *value, const char *cls) {
  fprintf(f, "<div class=card>");
  esc(f, label);
  fprintf(f, "<b class=\"%s\">", cls);
  esc(f, value);
  fprintf(f, "</b></div>");
}

/* Is `field` listed in the route's noise list of the summary? */
static int is_noise_field(json_t *summary, const char *route, const char *field) {
  json_t *list = json_object_get(json_object_get(json_object_get(summary, "routes"), route), "noise");
  size_t i;
  json_t *x;
  json_array_foreach(list, i, x) {
    const char *fl = json_string_value(json_object_get(x, "field"));
    if (fl != NULL && field != NULL && strcmp(fl, field) == 0) return 1;
  }
  return 0;
}

static void mismatch_item(FILE *f, json_t *summary, json_t *m, int open) {
  json_t *p = json_object_get(m, "primary"), *s = json_object_get(m, "shadow");
  fprintf(f, "<details class=mismatch%s><summary><code>", open ? " open" : "");
  esc(f, json_string_value(json_object_get(m, "correlation_id")));
  fprintf(f, "</code> &middot; ");
  esc(f, json_string_value(json_object_get(m, "route")));
  fprintf(f, " &middot; %lld &rarr; %lld &middot; ", (long long)I(p, "status"),
          (long long)I(s, "status"));
  size_t i;
  json_t *x;
  json_array_foreach(json_object_get(m, "fields"), i, x) {
    if (i > 0) fputs(", ", f);
    if (i >= 6) {
      fputs("...", f);
      break;
    }
    esc(f, json_string_value(x));
  }
  fprintf(f, "</summary><table><tr><th>path</th><th>kind</th><th>primary</th><th>shadow</th></tr>");
  json_array_foreach(json_object_get(m, "diff"), i, x) {
    if (i >= 50) {
      fprintf(f, "<tr><td colspan=4>... %zu more</td></tr>", json_array_size(json_object_get(m, "diff")) - 50);
      break;
    }
    const char *kind = json_string_value(json_object_get(x, "kind"));
    fprintf(f, "<tr><td><code>");
    esc(f, json_string_value(json_object_get(x, "path")));
    fprintf(f, "</code></td><td class=\"k-%s\">%s%s</td><td><code>", kind ? kind : "",
            kind ? kind : "",
            is_noise_field(summary, json_string_value(json_object_get(m, "route")),
                           json_string_value(json_object_get(x, "field")))
                ? " <span class=none>(noise)</span>"
                : "");
    esc_json(f, json_object_get(x, "primary"), 200);
    fprintf(f, "</code></td><td><code>");
    esc_json(f, json_object_get(x, "shadow"), 200);
    fprintf(f, "</code></td></tr>");
  }
  fprintf(f, "</table>");
  const char *sides[2] = {"primary", "shadow"};
  json_t *sv[2] = {p, s};
  for (int k = 0; k < 2; k++) {
    json_t *norm = json_object_get(sv[k], "normalized");
    fprintf(f, "<div><b>%s</b> raw body:<pre>", sides[k]);
    const char *body = json_string_value(json_object_get(sv[k], "body"));
    if (body != NULL) {
      char cut[2049];
      snprintf(cut, sizeof cut, "%s", body);
      esc(f, cut);
    } else {
      fputs("(binary)", f);
    }
    fprintf(f, "</pre>");
    if (norm != NULL && !json_is_null(norm)) {
      fprintf(f, "normalized:<pre>");
      esc_json(f, norm, 2048);
      fprintf(f, "</pre>");
    }
    fprintf(f, "</div>");
  }
  fprintf(f, "</details>\n");
}

int an_report_html(FILE *f, json_t *s, json_t *mismatches, size_t total_mismatches) {
  char buf[64];
  fprintf(f, "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
             "<title>cutover analyze report</title><style>%s</style></head><body>"
             "<header><h1>cutover analyze: shadow comparison report</h1></header><main>",
          css);
  fprintf(f, "<section id=summary><h2>Summary</h2><div class=cards>");
  json_t *rate = json_object_get(s, "match_rate");
  fmt_rate(buf, sizeof buf, rate);
  card(f, "match rate", buf,
       json_is_number(rate) && json_number_value(rate) >= 0.99 ? "good" : "bad");
  snprintf(buf, sizeof buf, "%lld", (long long)I(s, "joined"));
  card(f, "joined pairs", buf, "");
  snprintf(buf, sizeof buf, "%lld", (long long)I(s, "matches"));
  card(f, "matches", buf, "good");
  snprintf(buf, sizeof buf, "%lld", (long long)I(s, "mismatches"));
  card(f, "mismatches", buf, I(s, "mismatches") ? "bad" : "");
  snprintf(buf, sizeof buf, "%lld", (long long)I(s, "lineage_discarded"));
  card(f, "lineage discarded", buf, "");
  snprintf(buf, sizeof buf, "%lld / %lld", (long long)I2(s, "unjoined", "primary"),
           (long long)I2(s, "unjoined", "shadow"));
  card(f, "unjoined primary / shadow", buf, "");
  snprintf(buf, sizeof buf, "%lld", (long long)I(s, "duplicates"));
  card(f, "duplicates", buf, "");
  snprintf(buf, sizeof buf, "%lld / %lld", (long long)I2(json_object_get(s, "pass_fail"), "primary", "fail"),
           (long long)I2(json_object_get(s, "pass_fail"), "shadow", "fail"));
  card(f, "failed primary / shadow", buf, "");
  fprintf(f, "</div></section>\n");

  /* Per-route table and chart. */
  json_t *labels = json_array(), *values = json_array();
  const char *name;
  json_t *b;
  fprintf(f, "<section id=routes><h2>Routes</h2><table><tr><th>route</th><th>joined</th>"
             "<th>matches</th><th>mismatches</th><th>match rate</th><th>lineage discarded</th>"
             "<th>unjoined p/s</th><th>fail p/s</th></tr>");
  json_object_foreach(json_object_get(s, "routes"), name, b) {
    fmt_rate(buf, sizeof buf, json_object_get(b, "match_rate"));
    fprintf(f, "<tr><td>");
    esc(f, name);
    fprintf(f, "</td><td>%lld</td><td>%lld</td><td>%lld</td><td>%s</td><td>%lld</td>"
               "<td>%lld / %lld</td><td>%lld / %lld</td></tr>",
            (long long)I(b, "joined"), (long long)I(b, "matches"), (long long)I(b, "mismatches"),
            buf, (long long)I(b, "lineage_discarded"), (long long)I2(b, "unjoined", "primary"),
            (long long)I2(b, "unjoined", "shadow"),
            (long long)I2(json_object_get(b, "pass_fail"), "primary", "fail"),
            (long long)I2(json_object_get(b, "pass_fail"), "shadow", "fail"));
    json_t *r = json_object_get(b, "match_rate");
    if (json_is_number(r)) {
      json_array_append_new(labels, json_string(name));
      json_array_append_new(values, json_real(json_number_value(r)));
    }
  }
  fprintf(f, "</table></section>\n<div class=grid>");
  bar_chart(f, "chart-route-rate", "Match rate per route", labels, values, 1);
  json_array_clear(labels);
  json_array_clear(values);
  size_t i;
  json_t *x;
  json_array_foreach(json_object_get(s, "fields"), i, x) {
    if (i >= 15) break;
    char l[512];
    snprintf(l, sizeof l, "%s %s", json_string_value(json_object_get(x, "route")),
             json_string_value(json_object_get(x, "field")));
    json_array_append_new(labels, json_string(l));
    json_array_append_new(values, json_integer(I(x, "count")));
  }
  bar_chart(f, "chart-fields", "Top differing fields (pairs)", labels, values, 0);
  json_decref(labels);
  json_decref(values);
  status_matrix(f, json_object_get(s, "status_matrix"));
  timeline_chart(f, json_object_get(s, "timeline"));
  fprintf(f, "</div>\n");

  json_t *noise = json_object_get(json_object_get(s, "noise"), "fields");
  fprintf(f, "<section id=noise><h2>Noise (fields that differ between two primary responses "
             "about as often as between primary and shadow)</h2>");
  if (json_array_size(noise) == 0) fprintf(f, "<p class=none>none</p>");
  else {
    fprintf(f, "<table><tr><th>route</th><th>field</th><th>primary vs shadow</th>"
               "<th>primary vs primary</th><th>pairs with repeat</th></tr>");
    json_array_foreach(noise, i, x) {
      fprintf(f, "<tr><td>");
      esc(f, json_string_value(json_object_get(x, "route")));
      fprintf(f, "</td><td><code>");
      esc(f, json_string_value(json_object_get(x, "field")));
      fprintf(f, "</code></td><td>%lld</td><td>%lld</td><td>%lld</td></tr>", (long long)I(x, "count"),
              (long long)I(x, "noise_count"), (long long)I(x, "with_repeat"));
    }
    fprintf(f, "</table>");
  }
  fprintf(f, "</section>\n");

  fprintf(f, "<section><h2>Mismatches (%zu of %zu shown)</h2>"
             "<input id=filter placeholder=\"filter by id, route or field\">"
             "<div id=mismatch-list>",
          json_array_size(mismatches), total_mismatches);
  if (json_array_size(mismatches) == 0) fprintf(f, "<p class=none>no mismatches</p>");
  json_array_foreach(mismatches, i, x) mismatch_item(f, s, x, i == 0); /* the first one open */
  fprintf(f, "</div></section></main><script>"
             "document.getElementById('filter').addEventListener('input',function(e){"
             "var q=e.target.value.toLowerCase();"
             "document.querySelectorAll('#mismatch-list details').forEach(function(d){"
             "d.style.display=d.querySelector('summary').textContent.toLowerCase()"
             ".indexOf(q)>=0?'':'none';});});"
             "</script></body></html>\n");
  return ferror(f) ? CUT_ERR_IO : 0;
}
