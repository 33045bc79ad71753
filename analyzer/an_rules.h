/* an_rules: normalization rules for comparing recorded pairs, loaded from YAML. */
#ifndef AN_RULES_H
#define AN_RULES_H

#include <stddef.h>

struct an_rules;

/* Creates the default rules: no body rules, compare the content-type header,
 * ignore date, server and x-request-id. Caller frees with an_rules_free.
 * Returns 0 or CUT_ERR_NOMEM. */
int an_rules_new(struct an_rules **out);

/*
 * Loads and strictly validates rules from YAML text (docs/analyzer.md
 * describes the shape). `name` is the file name used in messages. On
 * failure err holds "NAME:LINE:COL: key.path: message" for the first problem.
 * Returns 0, CUT_ERR_NOMEM, CUT_ERR_PARSE (not YAML) or CUT_ERR_CONFIG
 * (invalid rules).
 */
int an_rules_load_string(struct an_rules **out, const char *text, size_t len, const char *name,
                         char *err, size_t errlen);

/* The same, reading the file at `path` (CUT_ERR_IO when unreadable). */
int an_rules_load_file(struct an_rules **out, const char *path, char *err, size_t errlen);

/*
 * Appends one rule that deletes the JSON nodes at `paths` (n expressions in
 * the analyzer's path syntax, e.g. "$.meta.time", borrowed) from both bodies
 * of the pairs of `route` (NULL = every route). It is how the proxy's live
 * comparison turns a route's `compare_ignore` list into rules, without YAML.
 * On failure the rules are unchanged. Returns 0, CUT_ERR_NOMEM, or
 * CUT_ERR_CONFIG with "PATH: message" in err for a bad path or the root
 * path "$" (a whole body cannot be ignored).
 */
int an_rules_add_ignore(struct an_rules *r, const char *route, const char *const *paths, size_t n,
                        char *err, size_t errlen);

/* Frees the rule set and everything it owns; NULL is ok. */
void an_rules_free(struct an_rules *r);

#endif
