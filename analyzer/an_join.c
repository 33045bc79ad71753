/* an_join: a hash of waiting one-sided records plus an arrival-order list for eviction. */
#include "analyzer/an_join.h"

#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"

struct entry {
  struct an_record *rec;
  struct entry *hnext;             /* hash chain */
  struct entry *prev, *next;       /* arrival order */
};

/* The ids of recently completed pairs: a ring (oldest forgotten first)
 * indexed by a chained hash. */
struct seen {
  char *id;
  struct seen *hnext;
};

struct an_join {
  struct seen **ring;  /* cap entries, oldest at ring_head */
  struct seen **sbuckets;
  size_t ring_cap, ring_head, ring_n, nsbuckets;
  an_join_duplicate_fn on_duplicate;
  struct entry **buckets;
  size_t nbuckets, count, max_pending;
  int64_t window_us, newest_us;
  struct entry *head, *tail;
  an_join_pair_fn on_pair;
  an_join_unjoined_fn on_unjoined;
  void *ud;
};

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

int an_join_new(struct an_join **out, size_t max_pending, int64_t window_us, an_join_pair_fn on_pair,
                an_join_unjoined_fn on_unjoined, an_join_duplicate_fn on_duplicate,
                void *user_data) {
  if (max_pending == 0 && window_us <= 0) return CUT_ERR_INVALID;
  struct an_join *j = calloc(1, sizeof *j);
  if (j == NULL) return CUT_ERR_NOMEM;
  j->nbuckets = 1024;
  j->buckets = calloc(j->nbuckets, sizeof *j->buckets);
  j->ring_cap = max_pending > 100000 ? max_pending : 100000;
  j->nsbuckets = 1;
  while (j->nsbuckets < j->ring_cap) j->nsbuckets <<= 1;
  j->ring = calloc(j->ring_cap, sizeof *j->ring);
  j->sbuckets = calloc(j->nsbuckets, sizeof *j->sbuckets);
  if (j->buckets == NULL || j->ring == NULL || j->sbuckets == NULL) {
    free(j->buckets);
    free(j->ring);
    free(j->sbuckets);
    free(j);
    return CUT_ERR_NOMEM;
  }
  j->on_duplicate = on_duplicate;
  j->max_pending = max_pending;
  j->window_us = window_us;
  j->newest_us = INT64_MIN;
  j->on_pair = on_pair;
  j->on_unjoined = on_unjoined;
  j->ud = user_data;
  *out = j;
  return 0;
}

void an_join_free(struct an_join *j) {
  if (j == NULL) return;
  struct entry *e = j->head;
  while (e != NULL) {
    struct entry *n = e->next;
    an_record_free(e->rec);
    free(e);
    e = n;
  }
  for (size_t i = 0; i < j->ring_n; i++) {
    struct seen *sn = j->ring[(j->ring_head + i) % j->ring_cap];
    free(sn->id);
    free(sn);
  }
  free(j->ring);
  free(j->sbuckets);
  free(j->buckets);
  free(j);
}

size_t an_join_pending(const struct an_join *j) { return j->count; }

static int grow(struct an_join *j) {
  size_t nb = j->nbuckets * 2;
  struct entry **b = calloc(nb, sizeof *b);
  if (b == NULL) return CUT_ERR_NOMEM;
  for (struct entry *e = j->head; e != NULL; e = e->next) {
    size_t i = hash_str(e->rec->correlation_id) & (nb - 1);
    e->hnext = b[i];
    b[i] = e;
  }
  free(j->buckets);
  j->buckets = b;
  j->nbuckets = nb;
  return 0;
}

/* Unlinks e from both structures; the caller owns e and its record. */
static void unlink_entry(struct an_join *j, struct entry *e) {
  struct entry **pp = &j->buckets[hash_str(e->rec->correlation_id) & (j->nbuckets - 1)];
  while (*pp != e) pp = &(*pp)->hnext;
  *pp = e->hnext;
  if (e->prev) e->prev->next = e->next; else j->head = e->next;
  if (e->next) e->next->prev = e->prev; else j->tail = e->prev;
  j->count--;
}

static int seen_has(const struct an_join *j, const char *id) {
  for (struct seen *sn = j->sbuckets[hash_str(id) & (j->nsbuckets - 1)]; sn; sn = sn->hnext)
    if (strcmp(sn->id, id) == 0) return 1;
  return 0;
}

/* Remembers a completed id, forgetting the oldest when the ring is full. */
static int seen_add(struct an_join *j, const char *id) {
  if (j->ring_n == j->ring_cap) {
    struct seen *old = j->ring[j->ring_head];
    struct seen **pp = &j->sbuckets[hash_str(old->id) & (j->nsbuckets - 1)];
    while (*pp != old) pp = &(*pp)->hnext;
    *pp = old->hnext;
    free(old->id);
    free(old);
    j->ring_head = (j->ring_head + 1) % j->ring_cap;
    j->ring_n--;
  }
  struct seen *sn = malloc(sizeof *sn);
  if (sn == NULL || (sn->id = strdup(id)) == NULL) {
    free(sn);
    return CUT_ERR_NOMEM;
  }
  size_t b = hash_str(id) & (j->nsbuckets - 1);
  sn->hnext = j->sbuckets[b];
  j->sbuckets[b] = sn;
  j->ring[(j->ring_head + j->ring_n) % j->ring_cap] = sn;
  j->ring_n++;
  return 0;
}

static int duplicate(struct an_join *j, struct an_record *rec) {
  int rc = j->on_duplicate ? j->on_duplicate(rec, j->ud) : 0;
  an_record_free(rec);
  return rc;
}

static enum an_side_id side_of(const struct an_record *r) {
  return r->kind == AN_KIND_SHADOW ? AN_SHADOW : AN_PRIMARY;
}

static int give_up(struct an_join *j, struct entry *e) {
  unlink_entry(j, e);
  int rc = j->on_unjoined(e->rec, side_of(e->rec), j->ud);
  an_record_free(e->rec);
  free(e);
  return rc;
}

static int evict(struct an_join *j) {
  int rc;
  while (j->head != NULL) {
    int over_count = j->max_pending > 0 && j->count > j->max_pending;
    int too_old = j->window_us > 0 && j->head->rec->time_us < j->newest_us - j->window_us;
    if (!over_count && !too_old) break;
    if ((rc = give_up(j, j->head)) != 0) return rc;
  }
  return 0;
}

int an_join_add(struct an_join *j, struct an_record *rec) {
  int rc;
  if (rec->time_us > j->newest_us) j->newest_us = rec->time_us;
  if (seen_has(j, rec->correlation_id)) return duplicate(j, rec);
  if (rec->kind == AN_KIND_PAIR) {
    if (rec->shadow.present)
      rc = j->on_pair(rec, j->ud);
    else
      rc = j->on_unjoined(rec, AN_PRIMARY, j->ud);
    if (rc == 0) rc = seen_add(j, rec->correlation_id);
    an_record_free(rec);
    return rc != 0 ? rc : evict(j);
  }
  size_t bi = hash_str(rec->correlation_id) & (j->nbuckets - 1);
  for (struct entry *e = j->buckets[bi]; e != NULL; e = e->hnext) {
    if (strcmp(e->rec->correlation_id, rec->correlation_id) != 0) continue;
    if (e->rec->kind == rec->kind) return duplicate(j, rec); /* the same side again */
    unlink_entry(j, e);
    struct an_record *primary = rec->kind == AN_KIND_PRIMARY ? rec : e->rec;
    struct an_record *shadow = rec->kind == AN_KIND_PRIMARY ? e->rec : rec;
    an_record_take_shadow(primary, shadow);
    rc = j->on_pair(primary, j->ud);
    if (rc == 0) rc = seen_add(j, primary->correlation_id);
    an_record_free(e->rec);
    an_record_free(rec);
    free(e);
    return rc != 0 ? rc : evict(j);
  }
  struct entry *e = calloc(1, sizeof *e);
  if (e == NULL) {
    an_record_free(rec);
    return CUT_ERR_NOMEM;
  }
  if (j->count + 1 > j->nbuckets && grow(j) != 0) {
    free(e);
    an_record_free(rec);
    return CUT_ERR_NOMEM;
  }
  bi = hash_str(rec->correlation_id) & (j->nbuckets - 1);
  e->rec = rec;
  e->hnext = j->buckets[bi];
  j->buckets[bi] = e;
  e->prev = j->tail;
  if (j->tail) j->tail->next = e; else j->head = e;
  j->tail = e;
  j->count++;
  return evict(j);
}

int an_join_flush(struct an_join *j) {
  int rc;
  while (j->head != NULL)
    if ((rc = give_up(j, j->head)) != 0) return rc;
  return 0;
}
