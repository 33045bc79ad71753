/* cfg_int: internals of the config module shared by its .c files and tests. */
#ifndef CUT_CFG_INT_H
#define CUT_CFG_INT_H

#include <stdatomic.h>

#include "config/cfg_arena.h"
#include "config/config.h"
#include "config/yaml_doc.h"

/* A snapshot: the public struct first, so a struct cfg * is a struct cfg_snap *. */
struct cfg_snap {
  struct cfg pub;
  atomic_uint refs;
  struct cfg_arena *arena;   /* every string and array of pub */
};

/* State of one load: where to allocate and where to report. */
struct cfg_ld {
  struct cfg_arena *a;
  struct cfg_yaml_errs *e;
  struct cfg *c;
  int nomem;
};

/*
 * Fills ld->c from the document root (NULL for an empty file): defaults,
 * types, ranges, cross-references. Reports every problem to ld->e; sets
 * ld->nomem on allocation failure.
 */
void cfg_schema_build(struct cfg_ld *ld, const struct cfg_yaml_node *root);

/* Nonzero when a Kafka property name looks like it holds a secret. */
int cfg_is_secret_name(const char *name);

#endif
