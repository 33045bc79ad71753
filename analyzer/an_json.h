/* an_json: a compact JSON tree in an arena, built for comparing many small documents fast. */
#ifndef AN_JSON_H
#define AN_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/*
 * The comparer parses two bodies per pair and throws both trees away right
 * after: a general-purpose DOM (one malloc per value, a hash table per
 * object) costs more than the whole comparison. Here every node, string and
 * child array of one pair lives in one arena that is reset, not freed,
 * between pairs. Objects are member arrays (key order as in the text; lookup
 * is linear, objects in API bodies are small). Trees convert to jansson only
 * for output (diff values, normalized bodies of mismatches).
 */

enum an_jtype {
  AN_J_NULL,
  AN_J_FALSE,
  AN_J_TRUE,
  AN_J_INT,
  AN_J_REAL,
  AN_J_STRING,
  AN_J_ARRAY,
  AN_J_OBJECT,
};

struct an_jv;

struct an_jmember {
  const char *key; /* NUL-terminated, in the arena */
  size_t keylen;
  struct an_jv *v;
};

struct an_jv {
  enum an_jtype type;
  size_t n;   /* string length, or number of items / members */
  size_t cap; /* allocated items / members */
  union {
    int64_t i;
    double d;
    const char *s; /* NUL-terminated (may contain NULs from \u0000) */
    struct an_jv **items;
    struct an_jmember *members;
  } u;
};

/* A bump allocator. Embed, an_arena_init, an_arena_reset between uses,
 * an_arena_clear at the end. */
struct an_arena {
  struct an_chunk *head;
  size_t used, size;
};

void an_arena_init(struct an_arena *a);
void an_arena_reset(struct an_arena *a); /* keeps the first chunk */
void an_arena_clear(struct an_arena *a);
void *an_arena_alloc(struct an_arena *a, size_t n); /* NULL on ENOMEM */

/* Parses text[0..len) (any JSON value, surrounding white space allowed).
 * Returns the root (in the arena) or NULL when the text is not JSON or
 * memory ran out. Nesting deeper than 512 levels is refused. */
struct an_jv *an_json_parse(struct an_arena *a, const char *text, size_t len);

/* Node constructors and mutators (all memory from the arena). NULL / nonzero
 * on ENOMEM. */
struct an_jv *an_json_new(struct an_arena *a, enum an_jtype type);
struct an_jv *an_json_string(struct an_arena *a, const char *s, size_t len);
int an_json_append(struct an_arena *a, struct an_jv *arr, struct an_jv *v);
int an_json_set(struct an_arena *a, struct an_jv *obj, const char *key, size_t keylen,
                struct an_jv *v); /* replaces an existing member */
struct an_jv *an_json_get(const struct an_jv *obj, const char *key, size_t keylen);
long an_json_find(const struct an_jv *obj, const char *key, size_t keylen); /* index or -1 */
void an_json_remove_at(struct an_jv *container, size_t i); /* item or member i */

/* Numeric value of an INT or REAL node. */
double an_json_number(const struct an_jv *v);

/* A deep copy as a new jansson value (caller decrefs), or NULL on ENOMEM.
 * Strings that are not UTF-8 become "<not UTF-8>". */
json_t *an_json_to_jansson(const struct an_jv *v);

/* Nonzero when s[0..len) is valid UTF-8 (JSON text must be). */
int an_json_utf8_valid(const char *s, size_t len);

/* Structural equality (numbers by value, object member order ignored). */
int an_json_equal(const struct an_jv *a, const struct an_jv *b);

#endif
