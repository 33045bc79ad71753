/* an_join: pair PRIMARY and SHADOW records by correlation id within a bounded window. */
#ifndef AN_JOIN_H
#define AN_JOIN_H

#include <stddef.h>
#include <stdint.h>

#include "analyzer/an_record.h"
#include "analyzer/an_summary.h"

/* Called with a complete pair: `rec` holds the request, primary (and
 * repeat) and shadow sides; borrowed for the call. */
typedef int (*an_join_pair_fn)(struct an_record *rec, void *user_data);
/* Called with a record that found no partner (evicted or left at the end). */
typedef int (*an_join_unjoined_fn)(struct an_record *rec, enum an_side_id side, void *user_data);

/* Called with a record dropped as a duplicate (an id already joined or
 * already waiting with the same side). */
typedef int (*an_join_duplicate_fn)(struct an_record *rec, void *user_data);

struct an_join;

/*
 * Creates a join. At most `max_pending` one-sided records wait for their
 * partner (0 = no count limit); when `window_us` > 0, a waiting record is
 * also given up once a record more than window_us newer (by time_us) has
 * been added. At least one bound must be set.
 * Recording delivers at least once, so the same record can arrive twice:
 * the ids of the last max(`max_pending`, 100000) completed pairs are
 * remembered, and a record with such an id, or a second record of a side
 * already waiting, goes to on_duplicate (may be NULL) instead.
 * Caller frees with an_join_free. Returns 0, CUT_ERR_INVALID or CUT_ERR_NOMEM.
 */
int an_join_new(struct an_join **out, size_t max_pending, int64_t window_us, an_join_pair_fn on_pair,
                an_join_unjoined_fn on_unjoined, an_join_duplicate_fn on_duplicate,
                void *user_data);

/* Frees the join and any record still waiting (without callbacks). */
void an_join_free(struct an_join *j);

/*
 * Adds a record (takes ownership, also on failure). PAIR records are passed
 * straight to on_pair (or on_unjoined for the primary side when they hold no
 * shadow). Returns 0, CUT_ERR_NOMEM, or the first nonzero callback result.
 */
int an_join_add(struct an_join *j, struct an_record *rec);

/* Reports every waiting record as unjoined (in arrival order). */
int an_join_flush(struct an_join *j);

/* Records waiting now. */
size_t an_join_pending(const struct an_join *j);

#endif
