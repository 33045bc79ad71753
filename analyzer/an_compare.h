/* an_compare: compare one recorded pair (status, chosen headers, normalized body). */
#ifndef AN_COMPARE_H
#define AN_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "analyzer/an_diff.h"
#include "analyzer/an_json.h"
#include "analyzer/an_rules.h"

/* A name/value pair: a header or a lineage entry. Borrowed strings. */
struct an_kv {
  const char *name;
  const char *value;
};

/* One side of a pair, as views into memory the caller owns. */
struct an_side {
  int present;               /* 0: this side is absent */
  int status;                /* HTTP status, 0 when there was no response */
  const char *error;         /* NULL when the response is complete */
  const struct an_kv *headers;
  size_t nheaders;
  const unsigned char *body;
  size_t body_len;
  const struct an_kv *lineage; /* dependency name -> checksum */
  size_t nlineage;
};

/* A pair to compare. Every pointer is borrowed for the duration of the call. */
struct an_pair_view {
  const char *correlation_id;
  const char *route;
  const char *method;
  const char *path;
  int64_t time_us;
  struct an_side primary;
  struct an_side shadow;
  struct an_side repeat; /* the primary's second response; present = 0 when none */
};

enum an_outcome {
  AN_MATCH = 0,
  AN_MISMATCH = 1,
  AN_LINEAGE_DISCARDED = 2,
};

enum an_body_kind {
  AN_BODY_IDENTICAL = 0, /* fast path: not parsed */
  AN_BODY_JSON = 1,
  AN_BODY_TEXT = 2,
  AN_BODY_BINARY = 3,
};

/* What an_compare found. Embed, an_result_init once, reuse across pairs
 * (an_compare resets it), an_result_clear at the end. */
struct an_result {
  enum an_outcome outcome;
  enum an_body_kind body_kind;
  struct an_diff diff;  /* primary vs shadow */
  int has_repeat;
  struct an_diff noise; /* primary vs repeat (noise candidates) */
  char **lineage;       /* names of dependencies whose checksums differ */
  size_t nlineage, lineage_cap;
  json_t *norm_primary; /* normalized JSON bodies of a mismatch (AN_COMPARE_KEEP_NORMALIZED) */
  json_t *norm_shadow;
  struct an_arena arena; /* the parsed bodies of the last pair */
};

void an_result_init(struct an_result *r);
void an_result_reset(struct an_result *r);
void an_result_clear(struct an_result *r);

/* Flags for an_compare. */
#define AN_COMPARE_KEEP_NORMALIZED 0x1u /* keep norm_primary/norm_shadow */

/*
 * Compares the primary and shadow sides of `pv` under `rules` (borrowed).
 * Pure: no I/O, no global state. Rules are read-only here and may be shared
 * by threads; each thread uses its own an_result.
 *
 *  1. lineage: a dependency present on both sides with different checksums
 *     makes the outcome AN_LINEAGE_DISCARDED (names in r->lineage), no diff;
 *  2. fast path: equal statuses, byte-identical bodies, equal compared
 *     headers and no one-sided transform in the matching rules: AN_MATCH
 *     without parsing;
 *  3. otherwise status, the compared headers and the body (JSON
 *     structurally after the matching rules' normalization, text by lines,
 *     anything else by bytes) are diffed into r->diff.
 * When pv->repeat is present the same comparison of primary vs repeat fills
 * r->noise. The outcome is AN_MISMATCH when r->diff is not empty; deciding
 * which differences are noise is the summary's job (an_summary).
 * Returns 0 or CUT_ERR_NOMEM.
 */
int an_compare(const struct an_rules *rules, const struct an_pair_view *pv, unsigned flags,
               struct an_result *r);

/* Nonzero when the side passes: a response with status < 500 and no error. */
int an_side_pass(const struct an_side *s);

#endif
