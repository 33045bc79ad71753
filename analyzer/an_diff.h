/* an_diff: the differences between two values, each with its path and both sides. */
#ifndef AN_DIFF_H
#define AN_DIFF_H

#include <stddef.h>

#include <jansson.h>

#include "analyzer/an_json.h"

enum an_diff_kind {
  AN_DIFF_CHANGED = 0, /* present on both sides with different values */
  AN_DIFF_MISSING = 1, /* present on the primary side only */
  AN_DIFF_ADDED = 2,   /* present on the shadow side only */
};

/* One difference. `path` is concrete ("$.items[3].price", "status",
 * "header.content-type", "body.line[12]"); `field` is the same path with every
 * array index replaced by [*], the unit that summaries count. */
struct an_diff_entry {
  enum an_diff_kind kind;
  char *path;
  char *field;
  json_t *primary; /* owned reference, NULL when MISSING on that side */
  json_t *shadow;  /* owned reference, NULL when absent */
};

/* A list of differences. Embed it and an_diff_init/an_diff_clear it; reuse
 * it across pairs with an_diff_reset (keeps the storage). */
struct an_diff {
  struct an_diff_entry *v;
  size_t n, cap;
  int numeric_exact; /* reserved */
};

/* An embedded list of differences: an_diff_init before use, an_diff_clear at the end. */
void an_diff_init(struct an_diff *d);
void an_diff_reset(struct an_diff *d); /* drops the entries, keeps the storage */
void an_diff_clear(struct an_diff *d); /* frees everything */

/* Appends one entry. Borrows path; takes a new reference to primary and
 * shadow (either may be NULL). Returns 0 or CUT_ERR_NOMEM. */
int an_diff_add(struct an_diff *d, enum an_diff_kind kind, const char *path, json_t *primary,
                json_t *shadow);

/*
 * Structural comparison of two JSON trees (borrowed): object member order
 * never matters, arrays compare element by element, integers and reals
 * compare by numeric value. Every differing leaf (or a node whose type
 * differs, or a member or element present on one side only) becomes one
 * entry whose path starts with `prefix` (e.g. "$"); its values are jansson
 * copies. Returns the number of entries added, or CUT_ERR_NOMEM.
 */
int an_diff_json(struct an_diff *d, const char *prefix, const struct an_jv *primary,
                 const struct an_jv *shadow);

/* Compares two texts line by line (positionally); lines are separated by
 * "\n" (a trailing "\r" is ignored). Paths are "<prefix>.line[N]" (1-based).
 * Returns the number of entries added, or CUT_ERR_NOMEM. */
int an_diff_text(struct an_diff *d, const char *prefix, const char *a, size_t alen,
                 const char *b, size_t blen);

/* Turns a concrete path into its field form (indices -> [*]). Writes at
 * most outlen bytes including the NUL; returns the full length. */
size_t an_diff_field_of(const char *path, char *out, size_t outlen);

/* Serializes the diff as a JSON array of {path, field, kind, primary,
 * shadow}. Returns a new reference (caller decrefs) or NULL on ENOMEM. */
json_t *an_diff_to_json(const struct an_diff *d);

/* The name of a kind: "changed", "missing", "added". */
const char *an_diff_kind_name(enum an_diff_kind k);

#endif
