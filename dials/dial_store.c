/* dial_store: live dial values and experiment states: lock-free reads, persisted audited writes. */
#include "dials/dial_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "config/units.h"
#include "dials/dial_store_int.h"

/*
 * Readers reach entries through a `view`: arrays indexed like the config
 * snapshot's dials/experiments/allocations, pointing at entries. A reload
 * builds a new view and swaps the pointer. Entries and old views are only
 * freed by dial_store_free, so a reader that loaded a pointer can always
 * dereference it; a reload costs a few bytes of retained view, which is
 * nothing next to the snapshot it describes.
 *
 * Fields other than the atomics in `live` belong to the writer and are only
 * touched under `mu`.
 */

struct dc_val {
  char *dc;
  uint32_t ppm;
};

struct dc_list {
  struct dc_val *v;
  size_t n;
};

struct dial_entry {
  struct dial_live live;
  char *name;
  int in_config;
  uint32_t ppm;           /* mirror of live.ppm */
  uint32_t cfg_ppm;       /* the config's percent when last applied */
  struct dc_list dcs;     /* live per-DC values */
  struct dc_list cfg_dcs; /* the config's per-DC values when last applied */
  uint32_t *steps;
  size_t nsteps;
};

struct exp_entry {
  struct exp_live live;
  char *name;
  int in_config;
  enum exp_state state;   /* stored state (mirror of live.state) */
  int64_t started_at, stopped_at;
  char *reason;
  int64_t cfg_start, cfg_end;
  int cfg_autostart;
};

struct alloc_entry {
  struct alloc_live live;
  char *name;
};

struct view {
  const struct cfg *cfg; /* identity only; never dereferenced */
  size_t ndials, nexps, nallocs;
  struct dial_entry **dials;
  struct exp_entry **exps;
  struct alloc_entry **allocs;
  struct view *next_retired;
};

struct dial_store {
  pthread_mutex_t mu;
  _Atomic(struct view *) view;
  struct view *retired;
  struct dial_entry **dials;
  size_t ndials, capdials;
  struct exp_entry **exps;
  size_t nexps, capexps;
  struct alloc_entry **allocs;
  size_t nallocs, capallocs;
  char *datacenter;
  struct dial_store_backend be;
  _Atomic uint64_t audit_failures;
};

/* ---- small helpers ---------------------------------------------------- */

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 8;
  while (nc < need) nc *= 2;
  void *na = realloc(*arr, nc * elem);
  if (!na) return CUT_ERR_NOMEM;
  *arr = na;
  *cap = nc;
  return 0;
}

static void dcs_clear(struct dc_list *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i].dc);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static struct dc_val *dcs_find(const struct dc_list *l, const char *dc) {
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->v[i].dc, dc)) return &l->v[i];
  return NULL;
}

static int dcs_set(struct dc_list *l, const char *dc, uint32_t ppm) {
  struct dc_val *v = dcs_find(l, dc);
  if (v) {
    v->ppm = ppm;
    return 0;
  }
  struct dc_val *nv = realloc(l->v, (l->n + 1) * sizeof *nv);
  if (!nv) return CUT_ERR_NOMEM;
  l->v = nv;
  char *d = strdup(dc);
  if (!d) return CUT_ERR_NOMEM;
  l->v[l->n++] = (struct dc_val){d, ppm};
  return 0;
}

static void dcs_remove(struct dc_list *l, const char *dc) {
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->v[i].dc, dc)) {
      free(l->v[i].dc);
      l->v[i] = l->v[--l->n];
      return;
    }
}

static int dcs_copy(struct dc_list *dst, const struct dc_list *src) {
  struct dc_list t = {0};
  for (size_t i = 0; i < src->n; i++)
    if (dcs_set(&t, src->v[i].dc, src->v[i].ppm)) {
      dcs_clear(&t);
      return CUT_ERR_NOMEM;
    }
  dcs_clear(dst);
  *dst = t;
  return 0;
}

/* The config's own format, so logs, audit records and `config print` agree. */
void dial_format_percent(uint32_t ppm, char *buf, size_t buflen) {
  cfg_format_percent(ppm, buf, buflen);
}

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* ---- entries ---------------------------------------------------------- */

static struct dial_entry *find_dial(const struct dial_store *s, const char *name) {
  for (size_t i = 0; i < s->ndials; i++)
    if (!strcmp(s->dials[i]->name, name)) return s->dials[i];
  return NULL;
}

static struct exp_entry *find_exp(const struct dial_store *s, const char *name) {
  for (size_t i = 0; i < s->nexps; i++)
    if (!strcmp(s->exps[i]->name, name)) return s->exps[i];
  return NULL;
}

static struct alloc_entry *find_alloc(const struct dial_store *s, const char *name) {
  for (size_t i = 0; i < s->nallocs; i++)
    if (!strcmp(s->allocs[i]->name, name)) return s->allocs[i];
  return NULL;
}

static struct dial_entry *add_dial(struct dial_store *s, const char *name) {
  if (grow((void **)&s->dials, &s->capdials, s->ndials + 1, sizeof *s->dials)) return NULL;
  struct dial_entry *e = calloc(1, sizeof *e);
  if (!e || !(e->name = strdup(name))) {
    free(e);
    return NULL;
  }
  atomic_init(&e->live.ppm, 0);
  atomic_init(&e->live.local_ppm, DIAL_PPM_NONE);
  atomic_init(&e->live.no_key, 0);
  e->cfg_ppm = DIAL_PPM_NONE;
  s->dials[s->ndials++] = e;
  return e;
}

static struct exp_entry *add_exp(struct dial_store *s, const char *name) {
  if (grow((void **)&s->exps, &s->capexps, s->nexps + 1, sizeof *s->exps)) return NULL;
  struct exp_entry *e = calloc(1, sizeof *e);
  if (!e || !(e->name = strdup(name))) {
    free(e);
    return NULL;
  }
  atomic_init(&e->live.state, EXP_PENDING);
  atomic_init(&e->live.start, 0);
  atomic_init(&e->live.end, 0);
  atomic_init(&e->live.no_key, 0);
  e->cfg_autostart = -1; /* unknown: first config decides */
  s->exps[s->nexps++] = e;
  return e;
}

static struct alloc_entry *add_alloc(struct dial_store *s, const char *name) {
  if (grow((void **)&s->allocs, &s->capallocs, s->nallocs + 1, sizeof *s->allocs)) return NULL;
  struct alloc_entry *e = calloc(1, sizeof *e);
  if (!e || !(e->name = strdup(name))) {
    free(e);
    return NULL;
  }
  s->allocs[s->nallocs++] = e;
  return e;
}

/* Publishes a dial's writer-side values to readers. */
static void publish_dial(const struct dial_store *s, struct dial_entry *e) {
  uint32_t local = DIAL_PPM_NONE;
  if (s->datacenter) {
    struct dc_val *v = dcs_find(&e->dcs, s->datacenter);
    if (v) local = v->ppm;
  }
  atomic_store_explicit(&e->live.ppm, e->ppm, memory_order_release);
  atomic_store_explicit(&e->live.local_ppm, local, memory_order_release);
}

static void publish_exp(struct exp_entry *e) {
  atomic_store_explicit(&e->live.start, e->cfg_start, memory_order_release);
  atomic_store_explicit(&e->live.end, e->cfg_end, memory_order_release);
  atomic_store_explicit(&e->live.state, (int)e->state, memory_order_release);
}

/* ---- read side (lock-free) -------------------------------------------- */

static struct view *load_view(const struct dial_store *s) {
  return atomic_load_explicit(&((struct dial_store *)s)->view, memory_order_acquire);
}

struct dial_live *dial_store_dial_live(const struct dial_store *s, const struct cfg *cfg,
                                       size_t i) {
  struct view *v = load_view(s);
  if (!v || i >= cfg->ndials) return NULL;
  const char *name = cfg->dials[i].name;
  if (v->cfg == cfg && i < v->ndials && !strcmp(v->dials[i]->name, name))
    return &v->dials[i]->live;
  for (size_t k = 0; k < v->ndials; k++)
    if (!strcmp(v->dials[k]->name, name)) return &v->dials[k]->live;
  return NULL;
}

struct exp_live *dial_store_exp_live(const struct dial_store *s, const struct cfg *cfg, size_t i) {
  struct view *v = load_view(s);
  if (!v || i >= cfg->nexperiments) return NULL;
  const char *name = cfg->experiments[i].name;
  if (v->cfg == cfg && i < v->nexps && !strcmp(v->exps[i]->name, name)) return &v->exps[i]->live;
  for (size_t k = 0; k < v->nexps; k++)
    if (!strcmp(v->exps[k]->name, name)) return &v->exps[k]->live;
  return NULL;
}

struct alloc_live *dial_store_alloc_live(const struct dial_store *s, const struct cfg *cfg,
                                         size_t i) {
  struct view *v = load_view(s);
  if (!v || i >= cfg->nallocations) return NULL;
  const char *name = cfg->allocations[i].name;
  if (v->cfg == cfg && i < v->nallocs && !strcmp(v->allocs[i]->name, name))
    return &v->allocs[i]->live;
  for (size_t k = 0; k < v->nallocs; k++)
    if (!strcmp(v->allocs[k]->name, name)) return &v->allocs[k]->live;
  return NULL;
}

/* ---- serialization ---------------------------------------------------- */

static json_t *dcs_json(const struct dc_list *l) {
  json_t *o = json_object();
  for (size_t i = 0; o && i < l->n; i++)
    json_object_set_new(o, l->v[i].dc, json_integer(l->v[i].ppm));
  return o;
}

static json_t *state_json(const struct dial_store *s) {
  json_t *root = json_object(), *dials = json_object(), *exps = json_object();
  if (!root || !dials || !exps) {
    json_decref(root);
    json_decref(dials);
    json_decref(exps);
    return NULL;
  }
  if (json_object_set_new(root, "version", json_integer(1))) goto nomem;
  for (size_t i = 0; i < s->ndials; i++) {
    struct dial_entry *e = s->dials[i];
    if (!e->in_config) continue;
    json_t *d = json_pack("{s:I, s:I, s:o, s:o}", "ppm", (json_int_t)e->ppm, "config_ppm",
                          (json_int_t)e->cfg_ppm, "per_dc", dcs_json(&e->dcs), "config_per_dc",
                          dcs_json(&e->cfg_dcs));
    if (!d || json_object_set_new(dials, e->name, d)) goto nomem;
  }
  for (size_t i = 0; i < s->nexps; i++) {
    struct exp_entry *e = s->exps[i];
    if (!e->in_config) continue;
    json_t *x = json_pack("{s:s, s:I, s:I, s:I, s:I, s:b}", "state", exp_state_name(e->state),
                          "started_at", (json_int_t)e->started_at, "stopped_at",
                          (json_int_t)e->stopped_at, "config_start", (json_int_t)e->cfg_start,
                          "config_end", (json_int_t)e->cfg_end, "config_autostart",
                          e->cfg_autostart > 0);
    if (x && e->reason && json_object_set_new(x, "reason", json_string(e->reason))) {
      json_decref(x);
      x = NULL;
    }
    if (!x || json_object_set_new(exps, e->name, x)) goto nomem;
  }
  if (json_object_set_new(root, "dials", dials)) {
    dials = NULL;
    goto nomem;
  }
  dials = NULL;
  if (json_object_set_new(root, "experiments", exps)) {
    exps = NULL;
    goto nomem;
  }
  return root;
nomem:
  /* A partial document must never be persisted: it would drop live values. */
  json_decref(dials);
  json_decref(exps);
  json_decref(root);
  return NULL;
}

static int persist(struct dial_store *s, char *err, size_t errlen) {
  json_t *root = state_json(s);
  if (!root) return CUT_ERR_NOMEM;
  char *text = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(2));
  json_decref(root);
  if (!text) return CUT_ERR_NOMEM;
  int rc = s->be.ops->save(s->be.ctx, text, strlen(text), err, errlen);
  free(text);
  return rc;
}

char *dial_store_json(const struct dial_store *s) {
  if (!s) return NULL;
  pthread_mutex_lock((pthread_mutex_t *)&s->mu);
  json_t *root = state_json(s);
  pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
  if (!root) return NULL;
  char *text = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(root);
  return text;
}

static int dcs_from_json(struct dc_list *l, json_t *o) {
  const char *k;
  json_t *v;
  if (!o) return 0;
  if (!json_is_object(o)) return CUT_ERR_PARSE;
  json_object_foreach(o, k, v) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > (json_int_t)CFG_PPM_MAX)
      return CUT_ERR_PARSE;
    if (dcs_set(l, k, (uint32_t)json_integer_value(v))) return CUT_ERR_NOMEM;
  }
  return 0;
}

static int ppm_field(json_t *o, const char *name, uint32_t *out) {
  json_t *v = json_object_get(o, name);
  if (!json_is_integer(v) || json_integer_value(v) < 0 ||
      json_integer_value(v) > (json_int_t)CFG_PPM_MAX)
    return CUT_ERR_PARSE;
  *out = (uint32_t)json_integer_value(v);
  return 0;
}

static int64_t int_field(json_t *o, const char *name) {
  json_t *v = json_object_get(o, name);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* Restores entries from the persisted document (before any config applies). */
static int restore(struct dial_store *s, const char *text, char *err, size_t errlen) {
  json_error_t je;
  json_t *root = json_loads(text, 0, &je);
  if (!root)
    return cut_errf(err, errlen, CUT_ERR_PARSE, "dial state: line %d: %s", je.line, je.text);
  int rc = 0;
  const char *name;
  json_t *o;
  json_t *dials = json_object_get(root, "dials"), *exps = json_object_get(root, "experiments");
  if (!json_is_object(root) || (dials && !json_is_object(dials)) ||
      (exps && !json_is_object(exps))) {
    rc = cut_errf(err, errlen, CUT_ERR_PARSE, "dial state: not a dial state document");
    goto out;
  }
  json_object_foreach(dials, name, o) {
    struct dial_entry *e = add_dial(s, name);
    if (!e) {
      rc = CUT_ERR_NOMEM;
      goto out;
    }
    if (!json_is_object(o) || ppm_field(o, "ppm", &e->ppm) ||
        ppm_field(o, "config_ppm", &e->cfg_ppm) ||
        dcs_from_json(&e->dcs, json_object_get(o, "per_dc")) ||
        dcs_from_json(&e->cfg_dcs, json_object_get(o, "config_per_dc"))) {
      rc = cut_errf(err, errlen, CUT_ERR_PARSE, "dial state: dial \"%s\" is malformed", name);
      goto out;
    }
  }
  json_object_foreach(exps, name, o) {
    struct exp_entry *e = add_exp(s, name);
    if (!e) {
      rc = CUT_ERR_NOMEM;
      goto out;
    }
    json_t *st = json_object_get(o, "state");
    if (!json_is_object(o) || !json_is_string(st) ||
        exp_state_parse(json_string_value(st), &e->state)) {
      rc = cut_errf(err, errlen, CUT_ERR_PARSE, "dial state: experiment \"%s\" is malformed",
                    name);
      goto out;
    }
    e->started_at = int_field(o, "started_at");
    e->stopped_at = int_field(o, "stopped_at");
    e->cfg_start = int_field(o, "config_start");
    e->cfg_end = int_field(o, "config_end");
    e->cfg_autostart = json_is_true(json_object_get(o, "config_autostart"));
    json_t *r = json_object_get(o, "reason");
    if (json_is_string(r) && !(e->reason = strdup(json_string_value(r)))) {
      rc = CUT_ERR_NOMEM;
      goto out;
    }
  }
out:
  json_decref(root);
  return rc;
}

/* ---- audit ------------------------------------------------------------ */

static void audit(struct dial_store *s, const char *actor, const char *object, json_t *old,
                  json_t *new, const char *reason) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char day[32], when[48];
  strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when, sizeof when, "%s.%03dZ", day, (int)(ts.tv_nsec / 1000000) % 1000);
  json_t *rec = json_pack("{s:s, s:s, s:s, s:o, s:o, s:s?}", "time", when, "actor",
                          actor ? actor : "unknown", "object", object, "old",
                          old ? old : json_null(), "new", new ? new : json_null(), "reason",
                          reason);
  char *line = rec ? json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(rec);
  char err[256] = "out of memory";
  int rc = line ? s->be.ops->audit(s->be.ctx, line, strlen(line), err, sizeof err)
                : CUT_ERR_NOMEM;
  free(line);
  if (rc) {
    atomic_fetch_add(&s->audit_failures, 1);
    log_error("dials", "audit record for %s not written: %s", object, err);
  }
}

static json_t *pct_json(uint32_t ppm) {
  if (ppm == DIAL_PPM_NONE) return json_null();
  char b[32];
  dial_format_percent(ppm, b, sizeof b);
  return json_string(b);
}

/* ---- config ----------------------------------------------------------- */

static int build_view(struct dial_store *s, const struct cfg *cfg) {
  struct view *v = calloc(1, sizeof *v);
  if (!v) return CUT_ERR_NOMEM;
  v->cfg = cfg;
  v->dials = calloc(cfg->ndials + 1, sizeof *v->dials);
  v->exps = calloc(cfg->nexperiments + 1, sizeof *v->exps);
  v->allocs = calloc(cfg->nallocations + 1, sizeof *v->allocs);
  if (!v->dials || !v->exps || !v->allocs) goto fail;
  for (size_t i = 0; i < cfg->ndials; i++)
    if (!(v->dials[i] = find_dial(s, cfg->dials[i].name))) goto fail;
  for (size_t i = 0; i < cfg->nexperiments; i++)
    if (!(v->exps[i] = find_exp(s, cfg->experiments[i].name))) goto fail;
  for (size_t i = 0; i < cfg->nallocations; i++)
    if (!(v->allocs[i] = find_alloc(s, cfg->allocations[i].name))) goto fail;
  v->ndials = cfg->ndials;
  v->nexps = cfg->nexperiments;
  v->nallocs = cfg->nallocations;
  struct view *old = atomic_exchange_explicit(&s->view, v, memory_order_acq_rel);
  if (old) {
    old->next_retired = s->retired;
    s->retired = old;
  }
  return 0;
fail:
  free(v->dials);
  free(v->exps);
  free(v->allocs);
  free(v);
  return CUT_ERR_NOMEM;
}

static void config_dcs_of(const struct cfg_dial *d, struct dc_list *out, int *nomem) {
  for (size_t k = 0; k < d->nper_dc; k++)
    if (d->per_dc[k].datacenter && dcs_set(out, d->per_dc[k].datacenter, d->per_dc[k].ppm))
      *nomem = 1;
}

/* Applies cfg to the writer-side fields; returns 1 when anything persisted changed. */
static int merge_config(struct dial_store *s, const struct cfg *cfg, int *nomem) {
  int changed = 0;
  for (size_t i = 0; i < s->ndials; i++) s->dials[i]->in_config = 0;
  for (size_t i = 0; i < s->nexps; i++) s->exps[i]->in_config = 0;
  for (size_t i = 0; i < cfg->ndials; i++) {
    const struct cfg_dial *d = &cfg->dials[i];
    struct dial_entry *e = find_dial(s, d->name);
    if (!e && !(e = add_dial(s, d->name))) {
      *nomem = 1;
      continue;
    }
    e->in_config = 1;
    if (e->cfg_ppm != d->ppm) {
      e->ppm = d->ppm;
      e->cfg_ppm = d->ppm;
      changed = 1;
    }
    struct dc_list now = {0};
    config_dcs_of(d, &now, nomem);
    for (size_t k = 0; k < now.n; k++) {
      struct dc_val *was = dcs_find(&e->cfg_dcs, now.v[k].dc);
      if (!was || was->ppm != now.v[k].ppm) {
        if (dcs_set(&e->dcs, now.v[k].dc, now.v[k].ppm)) *nomem = 1;
        changed = 1;
      }
    }
    for (size_t k = 0; k < e->cfg_dcs.n; k++)
      if (!dcs_find(&now, e->cfg_dcs.v[k].dc)) {
        dcs_remove(&e->dcs, e->cfg_dcs.v[k].dc);
        changed = 1;
      }
    dcs_clear(&e->cfg_dcs);
    e->cfg_dcs = now;
    uint32_t *steps = d->nsteps ? malloc(d->nsteps * sizeof *steps) : NULL;
    if (d->nsteps && !steps) {
      *nomem = 1;
    } else {
      if (d->nsteps) memcpy(steps, d->steps, d->nsteps * sizeof *steps);
      free(e->steps);
      e->steps = steps;
      e->nsteps = d->nsteps;
    }
  }
  for (size_t i = 0; i < cfg->nexperiments; i++) {
    const struct cfg_experiment *x = &cfg->experiments[i];
    struct exp_entry *e = find_exp(s, x->name);
    int fresh = 0;
    if (!e) {
      if (!(e = add_exp(s, x->name))) {
        *nomem = 1;
        continue;
      }
      fresh = 1;
    }
    e->in_config = 1;
    if (fresh) {
      e->state = x->autostart ? EXP_RUNNING : EXP_PENDING;
      changed = 1;
    } else if (x->autostart && e->cfg_autostart == 0 && e->state == EXP_PENDING) {
      e->state = EXP_RUNNING; /* the config now says `state: running` */
      changed = 1;
    }
    if (fresh || e->cfg_start != x->start || e->cfg_end != x->end ||
        e->cfg_autostart != (x->autostart != 0))
      changed = 1;
    e->cfg_start = x->start;
    e->cfg_end = x->end;
    e->cfg_autostart = x->autostart != 0;
  }
  for (size_t i = 0; i < cfg->nallocations; i++)
    if (!find_alloc(s, cfg->allocations[i].name) && !add_alloc(s, cfg->allocations[i].name))
      *nomem = 1;
  /* Entries that dropped out of the config change the document too. */
  return changed;
}

static int set_datacenter(struct dial_store *s, const struct cfg *cfg) {
  const char *dc = cfg->datacenter;
  if ((!dc && !s->datacenter) || (dc && s->datacenter && !strcmp(dc, s->datacenter))) return 0;
  char *copy = dc ? strdup(dc) : NULL;
  if (dc && !copy) return CUT_ERR_NOMEM;
  free(s->datacenter);
  s->datacenter = copy;
  return 0;
}

/*
 * What merge_config may change, saved so that a reload that cannot be
 * persisted changes nothing: otherwise the next successful write would
 * persist the half-applied reload (and its config values) while readers
 * still saw the old values.
 */
struct undo {
  char *datacenter;
  size_t ndials, nexps;
  struct dial_entry *dials; /* copies of the writer-side fields */
  struct exp_entry *exps;
};

static void undo_free(struct undo *u) {
  for (size_t i = 0; u->dials && i < u->ndials; i++) {
    dcs_clear(&u->dials[i].dcs);
    dcs_clear(&u->dials[i].cfg_dcs);
    free(u->dials[i].steps);
  }
  free(u->dials);
  free(u->exps);
  free(u->datacenter);
  memset(u, 0, sizeof *u);
}

static int undo_save(struct undo *u, const struct dial_store *s) {
  memset(u, 0, sizeof *u);
  if (s->datacenter && !(u->datacenter = strdup(s->datacenter))) return CUT_ERR_NOMEM;
  u->dials = calloc(s->ndials ? s->ndials : 1, sizeof *u->dials);
  u->exps = calloc(s->nexps ? s->nexps : 1, sizeof *u->exps);
  if (!u->dials || !u->exps) goto nomem;
  for (size_t i = 0; i < s->ndials; i++, u->ndials++) {
    const struct dial_entry *e = s->dials[i];
    struct dial_entry *c = &u->dials[i];
    c->in_config = e->in_config;
    c->ppm = e->ppm;
    c->cfg_ppm = e->cfg_ppm;
    c->nsteps = e->nsteps;
    if (dcs_copy(&c->dcs, &e->dcs) || dcs_copy(&c->cfg_dcs, &e->cfg_dcs)) goto nomem;
    if (e->nsteps) {
      if (!(c->steps = malloc(e->nsteps * sizeof *c->steps))) goto nomem;
      memcpy(c->steps, e->steps, e->nsteps * sizeof *c->steps);
    }
  }
  for (size_t i = 0; i < s->nexps; i++, u->nexps++) {
    const struct exp_entry *e = s->exps[i];
    struct exp_entry *c = &u->exps[i];
    c->in_config = e->in_config;
    c->state = e->state;
    c->cfg_start = e->cfg_start;
    c->cfg_end = e->cfg_end;
    c->cfg_autostart = e->cfg_autostart;
  }
  return 0;
nomem:
  u->ndials++; /* the entry being copied holds partial copies too */
  undo_free(u);
  return CUT_ERR_NOMEM;
}

/* Puts the saved fields back (moving the copies into the entries); entries
 * added since undo_save are dropped from the state again. */
static void undo_apply(struct undo *u, struct dial_store *s) {
  free(s->datacenter);
  s->datacenter = u->datacenter;
  u->datacenter = NULL;
  for (size_t i = 0; i < s->ndials; i++) {
    struct dial_entry *e = s->dials[i];
    if (i >= u->ndials) {
      e->in_config = 0;
      continue;
    }
    struct dial_entry *c = &u->dials[i];
    e->in_config = c->in_config;
    e->ppm = c->ppm;
    e->cfg_ppm = c->cfg_ppm;
    dcs_clear(&e->dcs);
    dcs_clear(&e->cfg_dcs);
    free(e->steps);
    e->dcs = c->dcs;
    e->cfg_dcs = c->cfg_dcs;
    e->steps = c->steps;
    e->nsteps = c->nsteps;
    memset(c, 0, sizeof *c);
  }
  for (size_t i = 0; i < s->nexps; i++) {
    struct exp_entry *e = s->exps[i];
    if (i >= u->nexps) {
      e->in_config = 0;
      continue;
    }
    const struct exp_entry *c = &u->exps[i];
    e->in_config = c->in_config;
    e->state = c->state;
    e->cfg_start = c->cfg_start;
    e->cfg_end = c->cfg_end;
    e->cfg_autostart = c->cfg_autostart;
  }
  undo_free(u);
}

int dial_store_apply_config(struct dial_store *s, const struct cfg *cfg, char *err,
                            size_t errlen) {
  if (!s || !cfg) return CUT_ERR_INVALID;
  pthread_mutex_lock(&s->mu);
  int nomem = 0;
  struct undo u;
  int rc = undo_save(&u, s);
  if (!rc) rc = set_datacenter(s, cfg);
  if (!rc) {
    merge_config(s, cfg, &nomem);
    /* Always persist: besides values, the document records the last config
     * values that later reloads compare against. */
    rc = nomem ? CUT_ERR_NOMEM : persist(s, err, errlen);
    if (rc)
      undo_apply(&u, s);
    else
      undo_free(&u);
  } else {
    undo_free(&u);
  }
  if (!rc) rc = build_view(s, cfg);
  if (!rc) {
    for (size_t i = 0; i < s->ndials; i++) publish_dial(s, s->dials[i]);
    for (size_t i = 0; i < s->nexps; i++) publish_exp(s->exps[i]);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* ---- lifecycle -------------------------------------------------------- */

static void free_entries(struct dial_store *s) {
  for (size_t i = 0; i < s->ndials; i++) {
    struct dial_entry *e = s->dials[i];
    free(e->name);
    dcs_clear(&e->dcs);
    dcs_clear(&e->cfg_dcs);
    free(e->steps);
    free(e);
  }
  free(s->dials);
  for (size_t i = 0; i < s->nexps; i++) {
    free(s->exps[i]->name);
    free(s->exps[i]->reason);
    free(s->exps[i]);
  }
  free(s->exps);
  for (size_t i = 0; i < s->nallocs; i++) {
    free(s->allocs[i]->name);
    free(s->allocs[i]);
  }
  free(s->allocs);
}

static void free_view(struct view *v) {
  if (!v) return;
  free(v->dials);
  free(v->exps);
  free(v->allocs);
  free(v);
}

void dial_store_free(struct dial_store *s) {
  if (!s) return;
  free_view(atomic_load(&s->view));
  for (struct view *v = s->retired, *n; v; v = n) {
    n = v->next_retired;
    free_view(v);
  }
  free_entries(s);
  free(s->datacenter);
  if (s->be.ops && s->be.ops->close) s->be.ops->close(s->be.ctx);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

int dial_store_open(struct dial_store **out, const struct cfg *cfg,
                    struct dial_store_backend backend, char *err, size_t errlen) {
  if (!out || !cfg || !backend.ops) return CUT_ERR_INVALID;
  *out = NULL;
  struct dial_store *s = calloc(1, sizeof *s);
  if (!s) return CUT_ERR_NOMEM;
  pthread_mutex_init(&s->mu, NULL);
  atomic_init(&s->view, NULL);
  atomic_init(&s->audit_failures, 0);
  s->be = backend;
  char *text = NULL;
  int rc = backend.ops->load(backend.ctx, &text, err, errlen);
  if (!rc && text) rc = restore(s, text, err, errlen);
  free(text);
  if (!rc) rc = dial_store_apply_config(s, cfg, err, errlen);
  if (rc) {
    s->be.ops = NULL; /* ownership stays with the caller on failure */
    dial_store_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int dial_store_open_files(struct dial_store **out, const struct cfg *cfg, char *err,
                          size_t errlen) {
  if (!cfg) return CUT_ERR_INVALID;
  const char *dir = cfg->state.dir ? cfg->state.dir : "run";
  char st[4096], au[4096];
  snprintf(st, sizeof st, "%s/dials.state.json", dir);
  snprintf(au, sizeof au, "%s/dials.audit.log", dir);
  struct dial_store_backend be;
  int rc = dial_store_file_backend(&be, cfg->state.dial_state_file ? cfg->state.dial_state_file : st,
                                   cfg->state.audit_log ? cfg->state.audit_log : au, err, errlen);
  if (rc) return rc;
  rc = dial_store_open(out, cfg, be, err, errlen);
  if (rc) be.ops->close(be.ctx);
  return rc;
}

/* ---- operations ------------------------------------------------------- */

static struct dial_entry *live_dial(struct dial_store *s, const char *name, char *err,
                                    size_t errlen, int *rc) {
  struct dial_entry *e = name ? find_dial(s, name) : NULL;
  if (!e || !e->in_config) {
    *rc = cut_errf(err, errlen, CUT_ERR_NOT_FOUND, "no dial named \"%s\"", name ? name : "");
    return NULL;
  }
  return e;
}

/* Sets (dc == NULL: global) value, persists, publishes, audits. Under mu. */
static int change_dial(struct dial_store *s, struct dial_entry *e, const char *dc, uint32_t ppm,
                       const char *actor, const char *reason, const char *what, char *err,
                       size_t errlen) {
  if (ppm > CFG_PPM_MAX)
    return cut_errf(err, errlen, CUT_ERR_RANGE, "percentage above 100%% (%u ppm)", ppm);
  uint32_t old;
  int rc;
  if (dc) {
    struct dc_val *v = dcs_find(&e->dcs, dc);
    old = v ? v->ppm : DIAL_PPM_NONE;
    if ((rc = dcs_set(&e->dcs, dc, ppm))) return rc;
  } else {
    old = e->ppm;
    e->ppm = ppm;
  }
  rc = persist(s, err, errlen);
  if (rc) { /* undo: readers never saw the new value */
    if (!dc)
      e->ppm = old;
    else if (old == DIAL_PPM_NONE)
      dcs_remove(&e->dcs, dc);
    else
      dcs_set(&e->dcs, dc, old);
    return rc;
  }
  publish_dial(s, e);
  char object[512];
  snprintf(object, sizeof object, "dial/%s%s%s", e->name, dc ? "@" : "", dc ? dc : "");
  char why[512];
  snprintf(why, sizeof why, "%s%s%s", what, reason ? ": " : "", reason ? reason : "");
  audit(s, actor, object, pct_json(old), pct_json(ppm), why);
  return 0;
}

int dial_store_set_percent(struct dial_store *s, const char *dial, const char *dc, uint32_t ppm,
                           const char *actor, const char *reason, char *err, size_t errlen) {
  if (!s) return CUT_ERR_INVALID;
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  struct dial_entry *e = live_dial(s, dial, err, errlen, &rc);
  if (e) rc = change_dial(s, e, dc, ppm, actor, reason, "set", err, errlen);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int dial_store_step(struct dial_store *s, const char *dial, const char *dc, const char *actor,
                    const char *reason, uint32_t *ppm_out, char *err, size_t errlen) {
  if (!s) return CUT_ERR_INVALID;
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  struct dial_entry *e = live_dial(s, dial, err, errlen, &rc);
  if (e) {
    uint32_t cur = e->ppm;
    if (dc) {
      struct dc_val *v = dcs_find(&e->dcs, dc);
      if (v) cur = v->ppm;
    }
    if (!e->nsteps) {
      rc = cut_errf(err, errlen, CUT_ERR_STATE, "dial \"%s\" has no step plan", e->name);
    } else {
      size_t k = 0;
      while (k < e->nsteps && e->steps[k] <= cur) k++;
      if (k == e->nsteps) {
        char b[32];
        dial_format_percent(cur, b, sizeof b);
        rc = cut_errf(err, errlen, CUT_ERR_RANGE, "dial \"%s\" is at %s, past its last step",
                      e->name, b);
      } else {
        rc = change_dial(s, e, dc, e->steps[k], actor, reason, "step", err, errlen);
        if (!rc && ppm_out) *ppm_out = e->steps[k];
      }
    }
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int dial_store_rollback(struct dial_store *s, const char *dial, const char *actor,
                        const char *reason, char *err, size_t errlen) {
  if (!s) return CUT_ERR_INVALID;
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  struct dial_entry *e = live_dial(s, dial, err, errlen, &rc);
  if (e) {
    uint32_t old = e->ppm;
    struct dc_list saved = {0};
    rc = dcs_copy(&saved, &e->dcs);
    if (!rc) {
      e->ppm = 0;
      for (size_t k = 0; k < e->dcs.n; k++) e->dcs.v[k].ppm = 0;
      rc = persist(s, err, errlen);
      if (rc) {
        e->ppm = old;
        dcs_clear(&e->dcs);
        e->dcs = saved;
        saved = (struct dc_list){0};
      } else {
        publish_dial(s, e);
        char object[512];
        snprintf(object, sizeof object, "dial/%s", e->name);
        json_t *o = json_pack("{s:o, s:o}", "percent", pct_json(old), "per_dc", json_object());
        for (size_t k = 0; o && k < saved.n; k++)
          json_object_set_new(json_object_get(o, "per_dc"), saved.v[k].dc,
                              pct_json(saved.v[k].ppm));
        char why[512];
        snprintf(why, sizeof why, "rollback%s%s", reason ? ": " : "", reason ? reason : "");
        audit(s, actor, object, o, pct_json(0), why);
      }
    }
    dcs_clear(&saved);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int exp_change(struct dial_store *s, const char *name, enum exp_state to,
                      const char *actor, const char *reason, char *err, size_t errlen) {
  if (!s) return CUT_ERR_INVALID;
  if (to == EXP_STOPPED && (!reason || !*reason))
    return cut_errf(err, errlen, CUT_ERR_INVALID, "stopping an experiment needs a reason");
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  struct exp_entry *e = name ? find_exp(s, name) : NULL;
  if (!e || !e->in_config) {
    rc = cut_errf(err, errlen, CUT_ERR_NOT_FOUND, "no experiment named \"%s\"",
                  name ? name : "");
    goto out;
  }
  int64_t now = now_s();
  enum exp_state from = exp_effective_state(e->state, 0, e->cfg_end, now);
  if (!exp_can_transition(from, to)) {
    rc = cut_errf(err, errlen, CUT_ERR_STATE, "experiment \"%s\" is %s: cannot become %s",
                  e->name, exp_state_name(from), exp_state_name(to));
    goto out;
  }
  char *nr = NULL;
  if (to == EXP_STOPPED && !(nr = strdup(reason))) {
    rc = CUT_ERR_NOMEM;
    goto out;
  }
  enum exp_state old_state = e->state;
  int64_t old_started = e->started_at, old_stopped = e->stopped_at;
  char *old_reason = e->reason;
  e->state = to;
  if (to == EXP_RUNNING) e->started_at = now;
  if (to == EXP_STOPPED) {
    e->stopped_at = now;
    e->reason = nr;
  }
  rc = persist(s, err, errlen);
  if (rc) {
    e->state = old_state;
    e->started_at = old_started;
    e->stopped_at = old_stopped;
    e->reason = old_reason;
    free(nr);
    goto out;
  }
  if (nr) free(old_reason);
  publish_exp(e);
  char object[512];
  snprintf(object, sizeof object, "experiment/%s", e->name);
  audit(s, actor, object, json_string(exp_state_name(from)), json_string(exp_state_name(to)),
        reason);
out:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int dial_store_exp_start(struct dial_store *s, const char *name, const char *actor,
                         const char *reason, char *err, size_t errlen) {
  return exp_change(s, name, EXP_RUNNING, actor, reason, err, errlen);
}

int dial_store_exp_stop(struct dial_store *s, const char *name, const char *actor,
                        const char *reason, char *err, size_t errlen) {
  return exp_change(s, name, EXP_STOPPED, actor, reason, err, errlen);
}

/* ---- reads ------------------------------------------------------------ */

int dial_store_get_percent(const struct dial_store *s, const char *dial, const char *dc,
                           uint32_t *ppm) {
  if (!s || !dial || !ppm) return CUT_ERR_INVALID;
  pthread_mutex_t *mu = (pthread_mutex_t *)&s->mu;
  pthread_mutex_lock(mu);
  int rc = 0;
  struct dial_entry *e = find_dial(s, dial);
  if (!e || !e->in_config) {
    rc = CUT_ERR_NOT_FOUND;
  } else if (dc) {
    struct dc_val *v = dcs_find(&e->dcs, dc);
    *ppm = v ? v->ppm : DIAL_STORE_NONE;
  } else {
    *ppm = e->ppm;
  }
  pthread_mutex_unlock(mu);
  return rc;
}

int dial_store_exp_get(const struct dial_store *s, const char *name, int64_t now,
                       struct dial_store_exp_info *out) {
  if (!s || !name || !out) return CUT_ERR_INVALID;
  pthread_mutex_t *mu = (pthread_mutex_t *)&s->mu;
  pthread_mutex_lock(mu);
  int rc = 0;
  struct exp_entry *e = find_exp(s, name);
  if (!e || !e->in_config) {
    rc = CUT_ERR_NOT_FOUND;
  } else {
    memset(out, 0, sizeof *out);
    out->state = exp_effective_state(e->state, e->cfg_start, e->cfg_end, now);
    out->start = e->cfg_start;
    out->end = e->cfg_end;
    out->started_at = e->started_at;
    out->stopped_at = e->stopped_at;
    snprintf(out->reason, sizeof out->reason, "%s", e->reason ? e->reason : "");
  }
  pthread_mutex_unlock(mu);
  return rc;
}

int dial_store_counts(const struct dial_store *s, const char *kind, const char *name,
                      struct dial_store_counts *out) {
  if (!s || !kind || !name || !out) return CUT_ERR_INVALID;
  memset(out, 0, sizeof *out);
  pthread_mutex_t *mu = (pthread_mutex_t *)&s->mu;
  pthread_mutex_lock(mu);
  int rc = CUT_ERR_NOT_FOUND;
  if (!strcmp(kind, "dial")) {
    struct dial_entry *e = find_dial(s, name);
    if (e) {
      out->no_key = atomic_load(&e->live.no_key);
      rc = 0;
    }
  } else if (!strcmp(kind, "experiment")) {
    struct exp_entry *e = find_exp(s, name);
    if (e) {
      out->no_key = atomic_load(&e->live.no_key);
      rc = 0;
    }
  } else if (!strcmp(kind, "allocation")) {
    struct alloc_entry *e = find_alloc(s, name);
    if (e) {
      out->no_key = atomic_load(&e->live.no_key);
      out->not_eligible = atomic_load(&e->live.not_eligible);
      out->malformed_version = atomic_load(&e->live.malformed_version);
      out->allocated = atomic_load(&e->live.allocated);
      rc = 0;
    }
  } else {
    rc = CUT_ERR_INVALID;
  }
  pthread_mutex_unlock(mu);
  return rc;
}

uint64_t dial_store_audit_failures(const struct dial_store *s) {
  return s ? atomic_load(&((struct dial_store *)s)->audit_failures) : 0;
}
