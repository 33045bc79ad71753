/* metrics: a sharded, lock-free-on-the-hot-path metrics registry with Prometheus exposition. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/sbuf.h"

#define CACHE_LINE 64
#define CELLS_PER_LINE (CACHE_LINE / sizeof(_Atomic uint64_t))
#define DEFAULT_MAX_SERIES 256

const uint64_t met_latency_buckets_us[] = {1000,   2500,   5000,    10000,   25000,  50000,
                                           100000, 250000, 500000,  1000000, 2500000, 5000000,
                                           10000000};
const size_t met_latency_nbuckets = sizeof met_latency_buckets_us / sizeof met_latency_buckets_us[0];

struct met_series {
  struct met_family *family;
  char **values;             /* nlabels copies */
  size_t cell;               /* first cell index in every shard block */
  _Atomic int64_t set_value; /* gauges: value stored by met_gauge_set */
  struct met_series *next;
};

struct met_family {
  struct met_registry *reg;
  char *name;
  char *help;
  enum met_type type;
  char *labels[MET_MAX_LABELS];
  size_t nlabels;
  size_t max_series;
  double divisor;
  uint64_t buckets[MET_MAX_BUCKETS];
  size_t nbuckets;
  size_t ncells;             /* cells per series */
  struct met_series *series, **series_tail;
  size_t nseries;            /* not counting the fold series */
  struct met_series *fold;   /* made at registration for labelled families */
  int fold_used;             /* rendered once handed out */
  struct met_family *next;
};

struct met_registry {
  pthread_mutex_t mu;        /* registration and rendering only */
  unsigned nshards;
  size_t cells_per_shard;
  size_t next_cell;
  _Atomic uint64_t **shards; /* nshards blocks of cells_per_shard cells, each line-aligned */
  struct met_family *families, **families_tail;
  pthread_mutex_t cmu;       /* the collectors: added, removed, run */
  struct {
    void (*fn)(void *);
    void *ud;
  } collectors[MET_MAX_COLLECTORS];
  size_t ncollectors;
};

int met_registry_new(struct met_registry **out, unsigned nshards, size_t cells_per_shard) {
  if (!out || nshards == 0 || cells_per_shard == 0)
    return CUT_ERR_INVALID;
  struct met_registry *r = calloc(1, sizeof *r);
  if (!r)
    return CUT_ERR_NOMEM;
  /* Round each block up to whole cache lines so two shards never share one. */
  cells_per_shard = (cells_per_shard + CELLS_PER_LINE - 1) / CELLS_PER_LINE * CELLS_PER_LINE;
  r->nshards = nshards;
  r->cells_per_shard = cells_per_shard;
  r->families_tail = &r->families;
  r->shards = calloc(nshards, sizeof *r->shards);
  if (!r->shards)
    goto fail_shards;
  for (unsigned i = 0; i < nshards; i++) {
    r->shards[i] = aligned_alloc(CACHE_LINE, cells_per_shard * sizeof(_Atomic uint64_t));
    if (!r->shards[i])
      goto fail_blocks;
    for (size_t c = 0; c < cells_per_shard; c++)
      atomic_init(&r->shards[i][c], 0);
  }
  pthread_mutex_init(&r->mu, NULL);
  pthread_mutex_init(&r->cmu, NULL);
  *out = r;
  return 0;

fail_blocks:
  for (unsigned i = 0; i < nshards; i++)
    free(r->shards[i]);
  free(r->shards);
fail_shards:
  free(r);
  return CUT_ERR_NOMEM;
}

static void series_free(struct met_series *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->family->nlabels; i++)
    free(s->values[i]);
  free(s->values);
  free(s);
}

static void family_free(struct met_family *f) {
  struct met_series *s = f->series;
  while (s) {
    struct met_series *n = s->next;
    series_free(s);
    s = n;
  }
  series_free(f->fold);
  for (size_t i = 0; i < f->nlabels; i++)
    free(f->labels[i]);
  free(f->name);
  free(f->help);
  free(f);
}

void met_registry_free(struct met_registry *r) {
  if (!r)
    return;
  struct met_family *f = r->families;
  while (f) {
    struct met_family *n = f->next;
    family_free(f);
    f = n;
  }
  for (unsigned i = 0; i < r->nshards; i++)
    free(r->shards[i]);
  free(r->shards);
  pthread_mutex_destroy(&r->cmu);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

unsigned met_registry_shards(const struct met_registry *r) { return r ? r->nshards : 0; }

static int valid_name(const char *s, int allow_colon) {
  if (!s || !*s)
    return 0;
  for (const char *p = s; *p; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             (allow_colon && c == ':') || (p != s && c >= '0' && c <= '9');
    if (!ok)
      return 0;
  }
  return 1;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int same_shape(const struct met_family *f, const struct met_family_def *d) {
  if (f->type != d->type || f->nlabels != d->nlabels)
    return 0;
  for (size_t i = 0; i < f->nlabels; i++)
    if (strcmp(f->labels[i], d->labels[i]) != 0)
      return 0;
  return 1;
}

static struct met_family *find_locked(struct met_registry *r, const char *name) {
  for (struct met_family *f = r->families; f; f = f->next)
    if (strcmp(f->name, name) == 0)
      return f;
  return NULL;
}

static struct met_series *series_make_locked(struct met_family *f, const char *const *values);

static int check_def(const struct met_family_def *d, char *err, size_t errlen) {
  if (!valid_name(d->name, 1))
    return cut_errf(err, errlen, CUT_ERR_INVALID, "invalid metric name \"%s\"",
                    d->name ? d->name : "(null)");
  if (d->type == MET_COUNTER && !ends_with(d->name, "_total"))
    return cut_errf(err, errlen, CUT_ERR_INVALID, "counter \"%s\" must end in _total", d->name);
  if (d->type != MET_COUNTER && ends_with(d->name, "_total"))
    return cut_errf(err, errlen, CUT_ERR_INVALID, "only counters end in _total: \"%s\"", d->name);
  if (d->nlabels > MET_MAX_LABELS || (d->nlabels && !d->labels))
    return cut_errf(err, errlen, CUT_ERR_INVALID, "%s: too many labels (max %d)", d->name,
                    MET_MAX_LABELS);
  for (size_t i = 0; i < d->nlabels; i++) {
    const char *l = d->labels[i];
    if (!valid_name(l, 0) || strncmp(l, "__", 2) == 0)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "%s: invalid label name \"%s\"", d->name,
                      l ? l : "(null)");
    if (d->type == MET_HISTOGRAM && strcmp(l, "le") == 0)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "%s: histograms reserve the label \"le\"",
                      d->name);
    for (size_t j = 0; j < i; j++)
      if (strcmp(l, d->labels[j]) == 0)
        return cut_errf(err, errlen, CUT_ERR_INVALID, "%s: duplicate label \"%s\"", d->name, l);
  }
  if (d->type == MET_HISTOGRAM) {
    if (!d->buckets || d->nbuckets == 0 || d->nbuckets > MET_MAX_BUCKETS)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "%s: histograms need 1..%d buckets", d->name,
                      MET_MAX_BUCKETS);
    for (size_t i = 1; i < d->nbuckets; i++)
      if (d->buckets[i] <= d->buckets[i - 1])
        return cut_errf(err, errlen, CUT_ERR_INVALID, "%s: buckets must be ascending", d->name);
  }
  if (d->divisor < 0)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "%s: negative divisor", d->name);
  return 0;
}

int met_family_register(struct met_registry *r, const struct met_family_def *def,
                        struct met_family **out, char *err, size_t errlen) {
  if (!r || !def || !out)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "met_family_register: NULL argument");
  int rc = check_def(def, err, errlen);
  if (rc)
    return rc;
  pthread_mutex_lock(&r->mu);
  struct met_family *f = find_locked(r, def->name);
  if (f) {
    pthread_mutex_unlock(&r->mu);
    if (!same_shape(f, def))
      return cut_errf(err, errlen, CUT_ERR_EXISTS,
                      "metric \"%s\" is already registered with another type or labels", def->name);
    *out = f;
    return 0;
  }
  f = calloc(1, sizeof *f);
  if (!f)
    goto fail;
  f->reg = r;
  f->type = def->type;
  f->max_series = def->max_series ? def->max_series : DEFAULT_MAX_SERIES;
  f->divisor = def->divisor > 0 ? def->divisor : 1.0;
  f->series_tail = &f->series;
  f->name = strdup(def->name);
  f->help = strdup(def->help ? def->help : "");
  if (!f->name || !f->help)
    goto fail_family;
  for (size_t i = 0; i < def->nlabels; i++) {
    f->labels[i] = strdup(def->labels[i]);
    if (!f->labels[i])
      goto fail_family;
    f->nlabels = i + 1;
  }
  if (def->type == MET_HISTOGRAM) {
    memcpy(f->buckets, def->buckets, def->nbuckets * sizeof *def->buckets);
    f->nbuckets = def->nbuckets;
    f->ncells = def->nbuckets + 3; /* buckets, +Inf, sum, count */
  } else {
    f->ncells = 1;
  }
  /* The fold series is made up front so overflow always has somewhere to go. */
  if (f->nlabels && !(f->fold = series_make_locked(f, NULL))) {
    family_free(f);
    pthread_mutex_unlock(&r->mu);
    return cut_errf(err, errlen, CUT_ERR_FULL, "metrics registry out of cells for %s",
                    def->name);
  }
  *r->families_tail = f;
  r->families_tail = &f->next;
  pthread_mutex_unlock(&r->mu);
  *out = f;
  return 0;

fail_family:
  family_free(f);
fail:
  pthread_mutex_unlock(&r->mu);
  return cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory registering %s", def->name);
}

struct met_family *met_family_find(struct met_registry *r, const char *name) {
  if (!r || !name)
    return NULL;
  pthread_mutex_lock(&r->mu);
  struct met_family *f = find_locked(r, name);
  pthread_mutex_unlock(&r->mu);
  return f;
}

static struct met_series *series_make_locked(struct met_family *f, const char *const *values) {
  struct met_registry *r = f->reg;
  if (r->next_cell + f->ncells > r->cells_per_shard)
    return NULL;
  struct met_series *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->family = f;
  s->values = calloc(f->nlabels ? f->nlabels : 1, sizeof *s->values);
  if (!s->values) {
    free(s);
    return NULL;
  }
  for (size_t i = 0; i < f->nlabels; i++) {
    s->values[i] = strdup(values ? values[i] : MET_OTHER);
    if (!s->values[i]) {
      series_free(s);
      return NULL;
    }
  }
  atomic_init(&s->set_value, 0);
  s->cell = r->next_cell;
  r->next_cell += f->ncells;
  return s;
}

struct met_series *met_series_get(struct met_family *f, const char *const *values) {
  if (!f || (f->nlabels && !values))
    return NULL;
  struct met_registry *r = f->reg;
  pthread_mutex_lock(&r->mu);
  struct met_series *s;
  for (s = f->series; s; s = s->next) {
    size_t i;
    for (i = 0; i < f->nlabels; i++)
      if (!values[i] || strcmp(s->values[i], values[i]) != 0)
        break;
    if (i == f->nlabels)
      goto out;
  }
  for (size_t i = 0; i < f->nlabels; i++)
    if (!values[i])
      goto fold;
  if (f->nseries < f->max_series && (s = series_make_locked(f, values)) != NULL) {
    *f->series_tail = s;
    f->series_tail = &s->next;
    f->nseries++;
    goto out;
  }
fold:
  if (f->fold && !f->fold_used) {
    f->fold_used = 1;
    log_warn("metrics", "%s: more than %zu label sets (or out of cells); folding new ones "
                        "into " MET_OTHER, f->name, f->max_series);
  }
  s = f->fold;
out:
  pthread_mutex_unlock(&r->mu);
  return s;
}

struct met_series *met_simple(struct met_registry *r, enum met_type type, const char *name,
                              const char *help) {
  struct met_family_def d = {.name = name, .help = help, .type = type};
  if (type == MET_HISTOGRAM) {
    d.buckets = met_latency_buckets_us;
    d.nbuckets = met_latency_nbuckets;
    d.divisor = 1e6;
  }
  struct met_family *f;
  char err[160];
  if (met_family_register(r, &d, &f, err, sizeof err) != 0) {
    log_error("metrics", "%s", err);
    return NULL;
  }
  return met_series_get(f, NULL);
}

static inline _Atomic uint64_t *cell(const struct met_series *s, unsigned shard, size_t off) {
  const struct met_registry *r = s->family->reg;
  if (shard >= r->nshards)
    shard = r->nshards - 1;
  return &r->shards[shard][s->cell + off];
}

void met_counter_add(struct met_series *s, unsigned shard, uint64_t n) {
  if (s)
    atomic_fetch_add_explicit(cell(s, shard, 0), n, memory_order_relaxed);
}

void met_gauge_add(struct met_series *s, unsigned shard, int64_t delta) {
  /* Two's complement wrap-around makes unsigned adds of negative deltas exact. */
  if (s)
    atomic_fetch_add_explicit(cell(s, shard, 0), (uint64_t)delta, memory_order_relaxed);
}

void met_gauge_set(struct met_series *s, int64_t value) {
  if (s)
    atomic_store_explicit(&s->set_value, value, memory_order_relaxed);
}

void met_hist_observe(struct met_series *s, unsigned shard, uint64_t value) {
  if (!s)
    return;
  const struct met_family *f = s->family;
  /* Binary search for the first bucket whose bound is >= value. */
  size_t lo = 0, hi = f->nbuckets;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (value <= f->buckets[mid])
      hi = mid;
    else
      lo = mid + 1;
  }
  atomic_fetch_add_explicit(cell(s, shard, lo), 1, memory_order_relaxed);
  atomic_fetch_add_explicit(cell(s, shard, f->nbuckets + 1), value, memory_order_relaxed);
  atomic_fetch_add_explicit(cell(s, shard, f->nbuckets + 2), 1, memory_order_relaxed);
}

static uint64_t sum_cell(const struct met_series *s, size_t off) {
  const struct met_registry *r = s->family->reg;
  uint64_t v = 0;
  for (unsigned i = 0; i < r->nshards; i++)
    v += atomic_load_explicit(&r->shards[i][s->cell + off], memory_order_relaxed);
  return v;
}

int64_t met_series_value(const struct met_series *s) {
  if (!s)
    return 0;
  switch (s->family->type) {
  case MET_COUNTER: return (int64_t)sum_cell(s, 0);
  case MET_GAUGE:
    return atomic_load_explicit(&s->set_value, memory_order_relaxed) + (int64_t)sum_cell(s, 0);
  case MET_HISTOGRAM: return (int64_t)sum_cell(s, s->family->nbuckets + 2);
  }
  return 0;
}

/* Escapes for label values (quote too) or HELP text (backslash and newline only). */
static void sb_escaped(struct sbuf *b, const char *s, int quote) {
  for (; *s; s++) {
    if (*s == '\\')
      sb_puts(b, "\\\\");
    else if (*s == '\n')
      sb_puts(b, "\\n");
    else if (quote && *s == '"')
      sb_puts(b, "\\\"");
    else
      sb_put(b, s, 1);
  }
}

/* Writes `{a="x",b="y"` plus an optional extra label, and the closing brace. */
static void sb_labels(struct sbuf *b, const struct met_series *s, const char *extra_name,
                      const char *extra_value) {
  const struct met_family *f = s->family;
  if (f->nlabels == 0 && !extra_name)
    return;
  sb_puts(b, "{");
  for (size_t i = 0; i < f->nlabels; i++) {
    if (i)
      sb_puts(b, ",");
    sb_puts(b, f->labels[i]);
    sb_puts(b, "=\"");
    sb_escaped(b, s->values[i], 1);
    sb_puts(b, "\"");
  }
  if (extra_name) {
    if (f->nlabels)
      sb_puts(b, ",");
    sb_puts(b, extra_name);
    sb_puts(b, "=\"");
    sb_puts(b, extra_value);
    sb_puts(b, "\"");
  }
  sb_puts(b, "}");
}

static void sb_double(struct sbuf *b, double v) { sb_fmt(b, "%.10g", v); }

static void render_series(struct sbuf *b, const struct met_series *s) {
  const struct met_family *f = s->family;
  switch (f->type) {
  case MET_COUNTER:
    sb_puts(b, f->name);
    sb_labels(b, s, NULL, NULL);
    sb_fmt(b, " %llu\n", (unsigned long long)sum_cell(s, 0));
    break;
  case MET_GAUGE: {
    int64_t v = met_series_value(s);
    sb_puts(b, f->name);
    sb_labels(b, s, NULL, NULL);
    sb_puts(b, " ");
    if (f->divisor == 1.0)
      sb_fmt(b, "%lld", (long long)v);
    else
      sb_double(b, (double)v / f->divisor);
    sb_puts(b, "\n");
    break;
  }
  case MET_HISTOGRAM: {
    uint64_t cum = 0;
    char le[48];
    for (size_t i = 0; i <= f->nbuckets; i++) {
      cum += sum_cell(s, i);
      if (i < f->nbuckets)
        snprintf(le, sizeof le, "%.10g", (double)f->buckets[i] / f->divisor);
      else
        snprintf(le, sizeof le, "+Inf");
      sb_puts(b, f->name);
      sb_puts(b, "_bucket");
      sb_labels(b, s, "le", le);
      sb_fmt(b, " %llu\n", (unsigned long long)cum);
    }
    sb_puts(b, f->name);
    sb_puts(b, "_sum");
    sb_labels(b, s, NULL, NULL);
    sb_puts(b, " ");
    sb_double(b, (double)sum_cell(s, f->nbuckets + 1) / f->divisor);
    sb_puts(b, "\n");
    sb_puts(b, f->name);
    sb_puts(b, "_count");
    sb_labels(b, s, NULL, NULL);
    /* The count is read last, so it may include observations whose bucket was
     * read before they landed; scrapes tolerate that skew. */
    sb_fmt(b, " %llu\n", (unsigned long long)sum_cell(s, f->nbuckets + 2));
    break;
  }
  }
}

int met_render(struct met_registry *r, char **out, size_t *len) {
  if (!r || !out)
    return CUT_ERR_INVALID;
  static const char *const type_names[] = {"counter", "gauge", "histogram"};
  /* Collectors copy counters kept elsewhere into their series first. */
  pthread_mutex_lock(&r->cmu);
  for (size_t i = 0; i < r->ncollectors; i++)
    r->collectors[i].fn(r->collectors[i].ud);
  pthread_mutex_unlock(&r->cmu);
  struct sbuf b = {0};
  sb_put(&b, "", 0);
  pthread_mutex_lock(&r->mu);
  for (const struct met_family *f = r->families; f; f = f->next) {
    sb_puts(&b, "# HELP ");
    sb_puts(&b, f->name);
    sb_puts(&b, " ");
    sb_escaped(&b, f->help, 0);
    sb_puts(&b, "\n# TYPE ");
    sb_puts(&b, f->name);
    sb_puts(&b, " ");
    sb_puts(&b, type_names[f->type]);
    sb_puts(&b, "\n");
    for (const struct met_series *s = f->series; s; s = s->next)
      render_series(&b, s);
    if (f->fold_used)
      render_series(&b, f->fold);
  }
  pthread_mutex_unlock(&r->mu);
  char *text = sb_take(&b, len);
  if (!text)
    return CUT_ERR_NOMEM;
  *out = text;
  return 0;
}

int met_registry_add_collector(struct met_registry *r, void (*fn)(void *), void *ud) {
  if (!r || !fn)
    return CUT_ERR_INVALID;
  pthread_mutex_lock(&r->cmu);
  int rc = CUT_ERR_FULL;
  if (r->ncollectors < MET_MAX_COLLECTORS) {
    r->collectors[r->ncollectors].fn = fn;
    r->collectors[r->ncollectors].ud = ud;
    r->ncollectors++;
    rc = 0;
  }
  pthread_mutex_unlock(&r->cmu);
  return rc;
}

void met_registry_remove_collector(struct met_registry *r, void (*fn)(void *), void *ud) {
  if (!r)
    return;
  pthread_mutex_lock(&r->cmu);
  for (size_t i = 0; i < r->ncollectors; i++) {
    if (r->collectors[i].fn == fn && r->collectors[i].ud == ud) {
      memmove(&r->collectors[i], &r->collectors[i + 1],
              (r->ncollectors - i - 1) * sizeof r->collectors[0]);
      r->ncollectors--;
      break;
    }
  }
  pthread_mutex_unlock(&r->cmu);
}
