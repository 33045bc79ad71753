/* yaml_doc: a whole YAML document as a tree of positioned nodes, an error collector,
 * and typed field readers with unknown-key detection. */
#ifndef CUT_YAML_DOC_H
#define CUT_YAML_DOC_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Any file format of cutover written in YAML (the config, the analyzer's rules)
 * reads it in two steps: cfg_yaml_parse() turns the bytes into a tree where
 * every node knows its line and column, then schema code walks the tree with
 * the cfg_yaml_read_* helpers, which report every problem into a
 * struct cfg_yaml_errs as "FILE:LINE:COL: key.path: message" and go on, so a
 * user sees all the mistakes of a file at once.
 *
 * What the parser accepts: one document; block and flow mappings and
 * sequences; plain, quoted and block scalars; tags are ignored. Aliases
 * (`*name`) are rejected with a clear error (anchors alone are harmless):
 * schemas here are small, and expanding aliases would let a tiny file grow
 * into a huge tree. A key given twice in one mapping is an error. Mapping
 * keys must be scalars.
 *
 * Optional environment substitution (CFG_YAML_SUBST_ENV) rewrites scalar
 * values (not keys): `${VAR}` is replaced by the variable's value, `${VAR:-text}`
 * by the value or `text` when VAR is unset or empty, and `$${` stands for a
 * literal `${`. An unset variable without a default is an error at that
 * scalar's position.
 */

/* ---- errors ------------------------------------------------------------ */

/* Collects error lines; never fails (on out-of-memory it keeps a count). */
struct cfg_yaml_errs;

/* Creates a collector for messages about `file` (copied). Returns 0 or CUT_ERR_NOMEM. */
int cfg_yaml_errs_new(struct cfg_yaml_errs **out, const char *file);
/* Frees the collector and its lines. NULL is ok. */
void cfg_yaml_errs_free(struct cfg_yaml_errs *e);

/*
 * Adds "FILE:LINE:COL: PATH: message". `path` may be NULL or "" (then the
 * "PATH: " part is left out); line 0 leaves out ":LINE:COL". At most
 * CFG_YAML_MAX_ERRORS lines are kept; later ones are only counted.
 */
#define CFG_YAML_MAX_ERRORS 100
void cfg_yaml_errs_add(struct cfg_yaml_errs *e, int line, int col, const char *path,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void cfg_yaml_errs_vadd(struct cfg_yaml_errs *e, int line, int col, const char *path,
                        const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

/* Number of errors added so far (including ones beyond the kept maximum). */
size_t cfg_yaml_errs_count(const struct cfg_yaml_errs *e);

/*
 * Returns every kept line, sorted by position (stable), newline-terminated,
 * plus "FILE: N more errors" when some were dropped. Caller frees with
 * free(); NULL on out-of-memory or when there are no errors.
 */
char *cfg_yaml_errs_text(const struct cfg_yaml_errs *e);

/* The file name given to cfg_yaml_errs_new (borrowed). */
const char *cfg_yaml_errs_file(const struct cfg_yaml_errs *e);

/* ---- the tree ---------------------------------------------------------- */

enum cfg_yaml_type { CFG_YAML_SCALAR, CFG_YAML_MAP, CFG_YAML_SEQ };

struct cfg_yaml_node;

struct cfg_yaml_pair {
  struct cfg_yaml_node *key;   /* always a scalar */
  struct cfg_yaml_node *value;
};

/* Nodes are owned by their document and read-only for users. */
struct cfg_yaml_node {
  enum cfg_yaml_type type;
  int line, col;               /* 1-based position where the node starts */
  /* scalar */
  char *str;                   /* NUL-terminated (after substitution) */
  size_t len;                  /* may contain NULs from escapes; str[len] == 0 */
  int quoted;                  /* written quoted or as a block scalar */
  int is_null;                 /* plain `~`, `null`, `Null`, `NULL` or empty */
  int substituted;             /* a ${VAR} was replaced in this scalar */
  int invalid;                 /* an error was already reported here (an alias, a failed
                                * substitution): readers fail without a second message */
  /* map */
  struct cfg_yaml_pair *pairs;
  size_t npairs;
  /* seq */
  struct cfg_yaml_node **items;
  size_t nitems;
};

struct cfg_yaml_doc;

enum { CFG_YAML_SUBST_ENV = 1 << 0 };

/*
 * Parses data[0..len) as one YAML document; messages go to `errs` (borrowed,
 * it names the file). When the text is well-formed YAML, returns 0 and stores
 * the document in *out (caller frees with cfg_yaml_doc_free) -- even when
 * recoverable problems were reported (aliases, duplicate keys, failed
 * substitutions), so that schema checks can report everything else in the
 * same run: check cfg_yaml_errs_count(errs) before trusting the result.
 * Affected nodes are marked `invalid`; a duplicate key keeps both pairs and
 * cfg_yaml_get finds the first; a pair whose key is not a scalar is dropped,
 * so every key in the tree is a scalar. On a syntax error returns CUT_ERR_PARSE (only
 * the first syntax error can be reported: the parser cannot resynchronize),
 * on allocation failure CUT_ERR_NOMEM; *out is untouched then.
 * An empty document gives a NULL root.
 */
int cfg_yaml_parse(struct cfg_yaml_doc **out, const char *data, size_t len, int flags,
                   struct cfg_yaml_errs *errs);
/* Frees the document and every node (borrowed pointers into it die). NULL is ok. */
void cfg_yaml_doc_free(struct cfg_yaml_doc *d);

/* Config files are small; anything bigger is a mistake (or an attack on the loader). */
#define CFG_YAML_MAX_FILE (16u << 20)

/*
 * Reads the whole regular file `path` (at most CFG_YAML_MAX_FILE bytes) into
 * *data, NUL-terminated (caller frees with free()), and its length into *len.
 * Returns 0, CUT_ERR_NOMEM, or CUT_ERR_IO with a reason in err: "cannot open:
 * REASON", "not a regular file", "file is larger than N bytes", "read error".
 */
int cfg_yaml_read_file(const char *path, char **data, size_t *len, char *err, size_t errlen);

/*
 * Reads the file `path` with cfg_yaml_read_file and parses it like
 * cfg_yaml_parse. A file that cannot be read is reported to `errs` as
 * "FILE: cannot open: reason" (or the other reasons above) and returns
 * CUT_ERR_IO.
 */
int cfg_yaml_parse_file(struct cfg_yaml_doc **out, const char *path, int flags,
                        struct cfg_yaml_errs *errs);

/* The document's root node (borrowed), or NULL for an empty document. */
const struct cfg_yaml_node *cfg_yaml_root(const struct cfg_yaml_doc *d);

/* Value of `key` in map node `map`, or NULL when absent (or map is not a map). */
const struct cfg_yaml_node *cfg_yaml_get(const struct cfg_yaml_node *map, const char *key);

/* The pair of `key` in `map` (to reach the key's position), or NULL. */
const struct cfg_yaml_pair *cfg_yaml_get_pair(const struct cfg_yaml_node *map, const char *key);

/* "map", "sequence" or "scalar" (or "null"), for messages. */
const char *cfg_yaml_type_name(const struct cfg_yaml_node *n);

/* ---- suggestions ------------------------------------------------------- */

/* Edit distance between a and b (bytes): insertions, deletions, substitutions and
 * swaps of adjacent letters each cost 1. */
size_t cfg_yaml_edit_distance(const char *a, const char *b);

/*
 * The candidate closest to `word` when it is close enough to be a likely
 * typo (distance <= 1 for short words, <= 2 for 5+ letters, <= 3 for 9+, and
 * less than the word's length), else NULL. Returns a pointer into candidates.
 */
const char *cfg_yaml_suggest(const char *word, const char *const *candidates, size_t n);

/* ---- typed readers ----------------------------------------------------- */

/*
 * Every reader takes the collector, the node and the key path of the node
 * (for messages, e.g. "routes[0].dial"), reports a problem itself, and
 * returns 0 when it stored a value, CUT_ERR_INVALID (or _RANGE) after
 * reporting an error. A NULL node or a null scalar is "absent": readers
 * return 1 and leave *out unchanged, so defaults set beforehand stay.
 */

/*
 * Reports every key of map `map` that is not in keys[0..n) as
 * `unknown key "K" (did you mean "X"?)` at the key's position, path
 * "<path>.K". Returns the number of unknown keys.
 */
size_t cfg_yaml_check_keys(struct cfg_yaml_errs *e, const struct cfg_yaml_node *map,
                           const char *path, const char *const *keys, size_t n);

/* Requires a map / a sequence: reports "expected a map, got a sequence" and
 * returns CUT_ERR_INVALID otherwise; 1 when absent. */
int cfg_yaml_expect_map(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path);
int cfg_yaml_expect_seq(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path);

/* A scalar as a string; *out is borrowed from the document. */
int cfg_yaml_read_str(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                      const char **out);
/* true/false/yes/no/on/off (any case). */
int cfg_yaml_read_bool(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                       int *out);
/* Decimal integer in [min, max]. */
int cfg_yaml_read_u64(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                      uint64_t min, uint64_t max, uint64_t *out);
int cfg_yaml_read_u32(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                      uint32_t min, uint32_t max, uint32_t *out);
/* Decimal number in [min, max]. */
int cfg_yaml_read_double(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                         double min, double max, double *out);
/* One of words[0..n); *out is the index. Suggests the nearest word on a miss. */
int cfg_yaml_read_enum(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                       const char *const *words, size_t nwords, int *out);

/* Units (config/units.h syntax); messages come from the units parser. */
int cfg_yaml_read_duration(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n,
                           const char *path, uint64_t *ms);
int cfg_yaml_read_size(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                       uint64_t *bytes);
int cfg_yaml_read_percent(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n,
                          const char *path, uint32_t *ppm);

/* Joins "parent" and "key" into buf as "parent.key" (or "key" at the top). */
const char *cfg_yaml_path_key(char *buf, size_t buflen, const char *parent, const char *key);
/* Joins "parent" and an index into buf as "parent[i]". */
const char *cfg_yaml_path_index(char *buf, size_t buflen, const char *parent, size_t i);

#define CFG_YAML_PATH_MAX 256

#endif
