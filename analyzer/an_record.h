/* an_record: one recorded Pair record as the analyzer keeps it (owned copies of what it compares). */
#ifndef AN_RECORD_H
#define AN_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

#include "analyzer/an_compare.h"

enum an_record_kind { AN_KIND_PAIR = 0, AN_KIND_PRIMARY = 1, AN_KIND_SHADOW = 2 };

/* One response, owned. */
struct an_resp {
  int present;
  int status;
  char *error;
  struct an_kv *headers; /* name and value strings owned */
  size_t nheaders;
  unsigned char *body;
  size_t body_len;
  struct an_kv *lineage;
  size_t nlineage;
};

struct an_record {
  enum an_record_kind kind;
  char *correlation_id;
  char *route;
  char *method;
  char *path;
  int64_t time_us;
  struct an_resp primary; /* PAIR, PRIMARY */
  struct an_resp shadow;  /* PAIR (the first of `shadows`), SHADOW */
  struct an_resp repeat;  /* primary_repeat, when recorded */
};

/* Decodes a generic avro-c value of the Pair schema (borrowed) into a new
 * record (caller frees with an_record_free). Fields are found by name, so
 * any writer schema with the same field names works. Returns 0,
 * CUT_ERR_NOMEM, or CUT_ERR_AVRO (a field is missing or has another type). */
int an_record_from_avro(avro_value_t *v, struct an_record **out, char *err, size_t errlen);

/* Frees r and every string and body it owns; NULL is ok. */
void an_record_free(struct an_record *r);

/* Fills `pv` with views into `p` and `s` (either may be the same record):
 * request and primary (and repeat) from p, shadow from s. */
void an_record_view(const struct an_record *p, const struct an_record *s, struct an_pair_view *pv);

/* Moves the shadow side of `from` into `to` (used when joining). */
void an_record_take_shadow(struct an_record *to, struct an_record *from);

#endif
