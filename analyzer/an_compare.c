/* an_compare: lineage filter, fast path, and status/header/body comparison of one pair. */
#include "analyzer/an_compare.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "analyzer/an_norm.h"
#include "analyzer/an_rules_int.h"
#include "common/cut_err.h"

void an_result_init(struct an_result *r) {
  memset(r, 0, sizeof *r);
  an_diff_init(&r->diff);
  an_diff_init(&r->noise);
  an_arena_init(&r->arena);
}

void an_result_reset(struct an_result *r) {
  an_diff_reset(&r->diff);
  an_diff_reset(&r->noise);
  for (size_t i = 0; i < r->nlineage; i++) free(r->lineage[i]);
  r->nlineage = 0;
  json_decref(r->norm_primary);
  json_decref(r->norm_shadow);
  r->norm_primary = r->norm_shadow = NULL;
  r->outcome = AN_MATCH;
  r->body_kind = AN_BODY_IDENTICAL;
  r->has_repeat = 0;
  an_arena_reset(&r->arena);
}

void an_result_clear(struct an_result *r) {
  an_result_reset(r);
  an_diff_clear(&r->diff);
  an_diff_clear(&r->noise);
  free(r->lineage);
  r->lineage = NULL;
  r->lineage_cap = 0;
  an_arena_clear(&r->arena);
}

int an_side_pass(const struct an_side *s) {
  return s->present && s->error == NULL && s->status > 0 && s->status < 500;
}

static int rule_matches(const struct an_rule *rule, const struct an_pair_view *pv) {
  if (rule->route != NULL && (pv->route == NULL || strcmp(rule->route, pv->route) != 0))
    return 0;
  if (rule->path_prefix != NULL &&
      (pv->path == NULL || strncmp(pv->path, rule->path_prefix, strlen(rule->path_prefix)) != 0))
    return 0;
  if (rule->method != NULL && (pv->method == NULL || strcasecmp(rule->method, pv->method) != 0))
    return 0;
  return 1;
}

/* The rules that apply to this pair, in file order (bounded: extra rules
 * beyond the cap are ignored, the loader refuses files with more). */
#define MAX_MATCHED 64
struct matched {
  const struct an_rule *v[MAX_MATCHED];
  size_t n;
};

static void match_rules(const struct an_rules *rules, const struct an_pair_view *pv,
                        struct matched *m) {
  m->n = 0;
  for (size_t i = 0; i < rules->n && m->n < MAX_MATCHED; i++)
    if (rule_matches(&rules->v[i], pv)) m->v[m->n++] = &rules->v[i];
}

static int header_ignored(const struct an_rules *rules, const struct matched *m,
                          const char *name) {
  if (an_names_has(&rules->ignore_headers, name)) return 1;
  for (size_t i = 0; i < m->n; i++)
    if (an_names_has(&m->v[i]->ignore_headers, name)) return 1;
  return 0;
}

static int header_compared(const struct an_rules *rules, const struct matched *m,
                           const char *name) {
  if (header_ignored(rules, m, name)) return 0;
  if (an_names_has(&rules->compare_headers, "*") || an_names_has(&rules->compare_headers, name))
    return 1;
  for (size_t i = 0; i < m->n; i++)
    if (an_names_has(&m->v[i]->compare_headers, "*") ||
        an_names_has(&m->v[i]->compare_headers, name))
      return 1;
  return 0;
}

/* All values of header `name` joined with ", " (as HTTP folds them), as a
 * new JSON string; NULL when absent. */
static json_t *header_value(const struct an_side *s, const char *name) {
  size_t total = 0, count = 0;
  for (size_t i = 0; i < s->nheaders; i++)
    if (strcasecmp(s->headers[i].name, name) == 0) {
      total += strlen(s->headers[i].value) + 2;
      count++;
    }
  if (count == 0) return NULL;
  char *buf = malloc(total + 1);
  if (buf == NULL) return NULL;
  size_t len = 0;
  for (size_t i = 0; i < s->nheaders; i++)
    if (strcasecmp(s->headers[i].name, name) == 0) {
      size_t vl = strlen(s->headers[i].value);
      if (len > 0) {
        memcpy(buf + len, ", ", 2);
        len += 2;
      }
      memcpy(buf + len, s->headers[i].value, vl);
      len += vl;
    }
  json_t *v = json_stringn(buf, len);
  free(buf);
  return v != NULL ? v : json_string("<not UTF-8>");
}

static int compare_one_header(struct an_diff *d, const struct an_side *a, const struct an_side *b,
                              const char *name) {
  json_t *va = header_value(a, name), *vb = header_value(b, name);
  int rc = 0;
  if (va != NULL || vb != NULL) {
    if (va == NULL || vb == NULL || !json_equal(va, vb)) {
      char path[300], lower[256];
      size_t i;
      for (i = 0; name[i] && i + 1 < sizeof lower; i++)
        lower[i] = (unsigned char)name[i] < 0x80 ? (char)tolower((unsigned char)name[i]) : '?';
      lower[i] = '\0';
      snprintf(path, sizeof path, "header.%s", lower);
      enum an_diff_kind k = va == NULL ? AN_DIFF_ADDED : vb == NULL ? AN_DIFF_MISSING : AN_DIFF_CHANGED;
      rc = an_diff_add(d, k, path, va, vb);
    }
  }
  json_decref(va);
  json_decref(vb);
  return rc;
}

/* Has `name` already been seen among the first `upto` headers of s (or in
 * all of `other`)? Used to compare every distinct name once. */
static int seen_before(const struct an_side *s, size_t upto, const char *name) {
  for (size_t i = 0; i < upto; i++)
    if (strcasecmp(s->headers[i].name, name) == 0) return 1;
  return 0;
}

static int compare_headers(const struct an_rules *rules, const struct matched *m,
                           struct an_diff *d, const struct an_side *a, const struct an_side *b) {
  int all = an_names_has(&rules->compare_headers, "*");
  for (size_t i = 0; i < m->n && !all; i++) all = an_names_has(&m->v[i]->compare_headers, "*");
  int rc;
  if (all) {
    for (size_t i = 0; i < a->nheaders; i++) {
      const char *n = a->headers[i].name;
      if (seen_before(a, i, n) || header_ignored(rules, m, n)) continue;
      if ((rc = compare_one_header(d, a, b, n)) != 0) return rc;
    }
    for (size_t i = 0; i < b->nheaders; i++) {
      const char *n = b->headers[i].name;
      if (seen_before(b, i, n) || seen_before(a, a->nheaders, n) || header_ignored(rules, m, n))
        continue;
      if ((rc = compare_one_header(d, a, b, n)) != 0) return rc;
    }
    return 0;
  }
  const struct an_names *lists[MAX_MATCHED + 1];
  size_t nl = 0;
  lists[nl++] = &rules->compare_headers;
  for (size_t i = 0; i < m->n; i++) lists[nl++] = &m->v[i]->compare_headers;
  for (size_t l = 0; l < nl; l++)
    for (size_t j = 0; j < lists[l]->n; j++) {
      const char *n = lists[l]->v[j];
      int dup = 0;
      /* A name listed twice is compared once. */
      for (size_t l2 = 0; l2 <= l && !dup; l2++)
        for (size_t j2 = 0; j2 < (l2 == l ? j : lists[l2]->n) && !dup; j2++)
          dup = strcmp(lists[l2]->v[j2], n) == 0;
      if (dup || !header_compared(rules, m, n)) continue;
      if ((rc = compare_one_header(d, a, b, n)) != 0) return rc;
    }
  return 0;
}

static enum an_body_kind body_kind_of(const struct an_side *a, const struct an_side *b) {
  const char *ct = NULL;
  for (size_t i = 0; i < a->nheaders && ct == NULL; i++)
    if (strcasecmp(a->headers[i].name, "content-type") == 0) ct = a->headers[i].value;
  for (size_t i = 0; i < b->nheaders && ct == NULL; i++)
    if (strcasecmp(b->headers[i].name, "content-type") == 0) ct = b->headers[i].value;
  if (ct != NULL) {
    if (strcasestr(ct, "json") != NULL) return AN_BODY_JSON;
    if (strncasecmp(ct, "text/", 5) == 0 || strcasestr(ct, "xml") != NULL ||
        strcasestr(ct, "javascript") != NULL || strcasestr(ct, "urlencoded") != NULL)
      return AN_BODY_TEXT;
    return AN_BODY_BINARY;
  }
  /* No content type: sniff the first byte of the primary body. */
  const unsigned char *p = a->body_len > 0 ? a->body : b->body;
  size_t len = a->body_len > 0 ? a->body_len : b->body_len;
  while (len > 0 && isspace(*p)) {
    p++;
    len--;
  }
  if (len > 0 && (*p == '{' || *p == '[')) return AN_BODY_JSON;
  return AN_BODY_BINARY;
}

static struct an_jv *parse_json(struct an_arena *a, const struct an_side *s) {
  if (s->body_len == 0) return an_json_new(a, AN_J_NULL);
  return an_json_parse(a, (const char *)s->body, s->body_len);
}

static int has_transforms(const struct matched *m) {
  for (size_t i = 0; i < m->n; i++)
    if (m->v[i]->primary.n > 0 || m->v[i]->shadow.n > 0) return 1;
  return 0;
}

static json_t *digest_value(const struct an_side *s) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < s->body_len; i++) {
    h ^= s->body[i];
    h *= 1099511628211ull;
  }
  char buf[80];
  snprintf(buf, sizeof buf, "%zu bytes, fnv1a64 %016llx", s->body_len, (unsigned long long)h);
  return json_string(buf);
}

/* Compares side a against side b. `b_shadow` selects the transforms for b:
 * the shadow's (primary vs shadow) or the primary's (primary vs repeat). */
static int compare_sides(const struct an_rules *rules, const struct matched *m,
                         const struct an_side *a, const struct an_side *b, int b_shadow,
                         struct an_diff *d, struct an_arena *arena, json_t **keep_a,
                         json_t **keep_b, enum an_body_kind *kind_out) {
  int rc;
  if (a->status != b->status) {
    json_t *sa = json_integer(a->status), *sb = json_integer(b->status);
    rc = an_diff_add(d, AN_DIFF_CHANGED, "status", sa, sb);
    json_decref(sa);
    json_decref(sb);
    if (rc != 0) return rc;
  }
  if ((a->error == NULL) != (b->error == NULL) ||
      (a->error != NULL && strcmp(a->error, b->error) != 0)) {
    json_t *ea = a->error ? json_string(a->error) : NULL;
    json_t *eb = b->error ? json_string(b->error) : NULL;
    rc = an_diff_add(d, ea == NULL ? AN_DIFF_ADDED : eb == NULL ? AN_DIFF_MISSING : AN_DIFF_CHANGED,
                     "error", ea, eb);
    json_decref(ea);
    json_decref(eb);
    if (rc != 0) return rc;
  }
  if ((rc = compare_headers(rules, m, d, a, b)) != 0) return rc;

  int same_bytes = a->body_len == b->body_len && memcmp(a->body, b->body, a->body_len) == 0;
  if (same_bytes && (!b_shadow || !has_transforms(m))) {
    *kind_out = AN_BODY_IDENTICAL;
    return 0;
  }
  enum an_body_kind kind = body_kind_of(a, b);
  if (kind == AN_BODY_JSON) {
    struct an_jv *ja = parse_json(arena, a), *jb = parse_json(arena, b);
    if (ja != NULL && jb != NULL) {
      rc = 0;
      for (size_t i = 0; i < m->n && rc == 0; i++) {
        rc = an_norm_apply(&m->v[i]->primary, arena, &ja);
        if (rc == 0)
          rc = an_norm_apply(b_shadow ? &m->v[i]->shadow : &m->v[i]->primary, arena, &jb);
      }
      for (size_t i = 0; i < m->n && rc == 0; i++) {
        rc = an_norm_apply(&m->v[i]->common, arena, &ja);
        if (rc == 0) rc = an_norm_apply(&m->v[i]->common, arena, &jb);
      }
      for (size_t i = 0; i < m->n && rc == 0; i++) rc = an_norm_tolerance(&m->v[i]->common, ja, jb);
      size_t before = d->n;
      if (rc == 0) rc = an_diff_json(d, "$", ja, jb);
      /* Normalized bodies are kept (as jansson) only for pairs that differ. */
      if (keep_a != NULL && rc > 0 && d->n > before) {
        *keep_a = an_json_to_jansson(ja);
        *keep_b = an_json_to_jansson(jb);
      }
      *kind_out = AN_BODY_JSON;
      return rc < 0 ? rc : 0;
    }
    kind = AN_BODY_TEXT; /* not JSON after all: compare the lines */
  }
  *kind_out = kind;
  if (same_bytes) return 0;
  if (kind == AN_BODY_TEXT) {
    rc = an_diff_text(d, "body", (const char *)a->body, a->body_len, (const char *)b->body,
                      b->body_len);
    return rc < 0 ? rc : 0;
  }
  json_t *da = digest_value(a), *db = digest_value(b);
  rc = an_diff_add(d, AN_DIFF_CHANGED, "body", da, db);
  json_decref(da);
  json_decref(db);
  return rc;
}

static int lineage_check(const struct an_pair_view *pv, struct an_result *r) {
  const struct an_side *a = &pv->primary, *b = &pv->shadow;
  for (size_t i = 0; i < a->nlineage; i++)
    for (size_t j = 0; j < b->nlineage; j++) {
      if (strcmp(a->lineage[i].name, b->lineage[j].name) != 0) continue;
      if (strcmp(a->lineage[i].value, b->lineage[j].value) == 0) continue;
      if (r->nlineage == r->lineage_cap) {
        size_t cap = r->lineage_cap ? r->lineage_cap * 2 : 4;
        char **v = realloc(r->lineage, cap * sizeof *v);
        if (v == NULL) return CUT_ERR_NOMEM;
        r->lineage = v;
        r->lineage_cap = cap;
      }
      if ((r->lineage[r->nlineage] = strdup(a->lineage[i].name)) == NULL) return CUT_ERR_NOMEM;
      r->nlineage++;
    }
  return 0;
}

int an_compare(const struct an_rules *rules, const struct an_pair_view *pv, unsigned flags,
               struct an_result *r) {
  struct matched m;
  int rc;
  an_result_reset(r);
  if ((rc = lineage_check(pv, r)) != 0) return rc;
  if (r->nlineage > 0) {
    r->outcome = AN_LINEAGE_DISCARDED;
    return 0;
  }
  match_rules(rules, pv, &m);
  int keep = (flags & AN_COMPARE_KEEP_NORMALIZED) != 0;
  rc = compare_sides(rules, &m, &pv->primary, &pv->shadow, 1, &r->diff, &r->arena,
                     keep ? &r->norm_primary : NULL, keep ? &r->norm_shadow : NULL,
                     &r->body_kind);
  if (rc != 0) return rc;
  if (pv->repeat.present) {
    enum an_body_kind k;
    r->has_repeat = 1;
    if ((rc = compare_sides(rules, &m, &pv->primary, &pv->repeat, 0, &r->noise, &r->arena, NULL,
                            NULL, &k)) != 0)
      return rc;
  }
  r->outcome = r->diff.n > 0 ? AN_MISMATCH : AN_MATCH;
  return 0;
}
