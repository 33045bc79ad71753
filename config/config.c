/* config: loading a YAML file into an immutable, reference-counted snapshot, and
 * the holder that publishes the current snapshot to worker threads. */
#include <openssl/evp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"
#include "config/cfg_int.h"
#include "config/config.h"
#include "config/yaml_doc.h"

static char *errs_or_nomem(struct cfg_yaml_errs *e, int rc) {
  char *t = cfg_yaml_errs_text(e);
  if (!t && rc == CUT_ERR_NOMEM)
    t = strdup("out of memory while loading the config\n");
  return t;
}

static int load(const char *name, const char *data, size_t len, struct cfg **out,
                char **errs_out) {
  struct cfg_yaml_errs *e = NULL;
  struct cfg_yaml_doc *doc = NULL;
  struct cfg_snap *s = NULL;
  struct cfg_arena *a = NULL;
  int rc;
  if (errs_out)
    *errs_out = NULL;
  if ((rc = cfg_yaml_errs_new(&e, name)) != 0)
    return rc;
  rc = cfg_yaml_parse(&doc, data, len, CFG_YAML_SUBST_ENV, e);
  if (rc)
    goto fail;
  if ((rc = cfg_arena_new(&a)) != 0)
    goto fail;
  s = calloc(1, sizeof *s);
  if (!s) {
    rc = CUT_ERR_NOMEM;
    goto fail;
  }
  s->arena = a;
  struct cfg *c = &s->pub;
  c->path = cfg_arena_strdup(a, name);
  if (!c->path || !EVP_Digest(data, len, c->digest, NULL, EVP_sha256(), NULL)) {
    rc = CUT_ERR_NOMEM;
    goto fail;
  }
  struct cfg_ld ld = {.a = a, .e = e, .c = c};
  cfg_schema_build(&ld, cfg_yaml_root(doc));
  if (ld.nomem) {
    rc = CUT_ERR_NOMEM;
    goto fail;
  }
  if (cfg_yaml_errs_count(e)) {
    rc = CUT_ERR_CONFIG;
    goto fail;
  }
  atomic_init(&s->refs, 1);
  cfg_yaml_doc_free(doc);
  cfg_yaml_errs_free(e);
  *out = c;
  return 0;
fail:
  if (rc == CUT_ERR_PARSE)
    rc = CUT_ERR_CONFIG;
  if (errs_out)
    *errs_out = errs_or_nomem(e, rc);
  free(s);
  cfg_arena_free(a);
  cfg_yaml_doc_free(doc);
  cfg_yaml_errs_free(e);
  return rc;
}

int cfg_load_buffer(const char *name, const char *data, size_t len, struct cfg **out,
                    char **errs) {
  if (!out || (!data && len))
    return CUT_ERR_INVALID;
  return load(name ? name : "<config>", data ? data : "", len, out, errs);
}

int cfg_load(const char *path, struct cfg **out, char **errs) {
  if (errs)
    *errs = NULL;
  if (!path || !out)
    return CUT_ERR_INVALID;
  char *buf, err[300];
  size_t len;
  int rc = cfg_yaml_read_file(path, &buf, &len, err, sizeof err);
  if (rc == CUT_ERR_IO && errs) {
    size_t n = strlen(path) + strlen(err) + 4;
    if ((*errs = malloc(n)) != NULL)
      snprintf(*errs, n, "%s: %s\n", path, err);
  }
  if (rc)
    return rc;
  rc = cfg_load_buffer(path, buf, len, out, errs);
  free(buf);
  return rc;
}

struct cfg *cfg_ref(struct cfg *c) {
  if (c)
    atomic_fetch_add_explicit(&((struct cfg_snap *)c)->refs, 1, memory_order_relaxed);
  return c;
}

void cfg_unref(struct cfg *c) {
  if (!c)
    return;
  struct cfg_snap *s = (struct cfg_snap *)c;
  /* acq_rel: the last owner must see every other owner's reads completed. */
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
    return;
  cfg_arena_free(s->arena);
  free(s);
}

#define FIND(fn, arr, n)                                    \
  size_t fn(const struct cfg *c, const char *name) {        \
    if (!c || !name)                                        \
      return SIZE_MAX;                                      \
    for (size_t i = 0; i < c->n; i++)                       \
      if (c->arr[i].name && !strcmp(c->arr[i].name, name))  \
        return i;                                           \
    return SIZE_MAX;                                        \
  }

FIND(cfg_backend_find, backends, nbackends)
FIND(cfg_dial_find, dials, ndials)
FIND(cfg_experiment_find, experiments, nexperiments)
FIND(cfg_allocation_find, allocations, nallocations)

/*
 * The holder. A reader must never take a reference to a snapshot whose count
 * already reached zero, and a plain "load pointer, then increment" races with
 * a swap that drops the last reference in between. We close the race with
 * two reader indicators and a version index (the "left-right" technique):
 *
 *   reader:  v = version; readers[v]++; p = current; ref(p); readers[v]--;
 *   swapper: (one at a time, under a mutex)
 *            old = exchange(current, next);
 *            wait until readers[!version] == 0; version = !version;
 *            wait until readers[!version] == 0;   (the old version's slot)
 *            unref(old)
 *
 * Why it is safe (all operations are sequentially consistent): a reader that
 * got `old` loaded `current` before the exchange, so its increment of
 * readers[v] also came before the exchange, and its decrement comes after its
 * ref(old). If v was the version at the time of the swap, the second wait
 * sees that reader's increment and waits for its decrement. If v was the
 * other slot (the reader read `version` before an earlier swap flipped it),
 * the first wait covers it. So when the swapper unrefs `old`, every reader
 * that saw `old` already holds its own reference. Each wait only drains
 * readers already inside the short critical section: new readers go to the
 * other slot, so a swap cannot be starved by steady traffic. Readers never
 * block and never wait on the swapper.
 */
struct cfg_holder {
  _Atomic(struct cfg *) current;
  atomic_uint version;
  atomic_uint readers[2];
  pthread_mutex_t swap_lock;
};

int cfg_holder_new(struct cfg_holder **out, struct cfg *initial) {
  if (!out || !initial)
    return CUT_ERR_INVALID;
  struct cfg_holder *h = calloc(1, sizeof *h);
  if (!h)
    return CUT_ERR_NOMEM;
  if (pthread_mutex_init(&h->swap_lock, NULL) != 0) {
    free(h);
    return CUT_ERR_NOMEM;
  }
  atomic_init(&h->current, initial);
  atomic_init(&h->version, 0);
  atomic_init(&h->readers[0], 0);
  atomic_init(&h->readers[1], 0);
  *out = h;
  return 0;
}

void cfg_holder_free(struct cfg_holder *h) {
  if (!h)
    return;
  cfg_unref(atomic_load(&h->current));
  pthread_mutex_destroy(&h->swap_lock);
  free(h);
}

struct cfg *cfg_holder_get(struct cfg_holder *h) {
  unsigned v = atomic_load(&h->version) & 1u;
  atomic_fetch_add(&h->readers[v], 1);
  struct cfg *c = cfg_ref(atomic_load(&h->current));
  atomic_fetch_sub(&h->readers[v], 1);
  return c;
}

static void wait_drained(atomic_uint *n) {
  while (atomic_load(n) != 0)
    sched_yield();
}

void cfg_holder_swap(struct cfg_holder *h, struct cfg *next) {
  if (!next)
    return;
  pthread_mutex_lock(&h->swap_lock);
  struct cfg *old = atomic_exchange(&h->current, next);
  unsigned prev = atomic_load(&h->version) & 1u;
  wait_drained(&h->readers[prev ^ 1u]);
  atomic_store(&h->version, prev ^ 1u);
  wait_drained(&h->readers[prev]);
  pthread_mutex_unlock(&h->swap_lock);
  cfg_unref(old);
}
