/* cfg_schema: the config schema: defaults, types, ranges and cross-references. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cut_err.h"
#include "config/cfg_int.h"
#include "config/units.h"
#include "config/yaml_doc.h"

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_WORKERS 1024u
#define MAX_NAME 64

typedef const struct cfg_yaml_node ynode;

/* ---- small helpers ----------------------------------------------------- */

static char *sdup(struct cfg_ld *ld, const char *s) {
  if (!s)
    return NULL;
  char *p = cfg_arena_strdup(ld->a, s);
  if (!p)
    ld->nomem = 1;
  return p;
}

static void *alloc_array(struct cfg_ld *ld, size_t n, size_t sz) {
  void *p = cfg_arena_calloc(ld->a, n ? n : 1, sz);
  if (!p)
    ld->nomem = 1;
  return p;
}

static int absent(ynode *n) { return !n || (n->type == CFG_YAML_SCALAR && n->is_null); }

static struct cfg_pos pos_of(struct cfg_ld *ld, ynode *n) {
  struct cfg_pos p = {ld->c->path, n ? n->line : 0, n ? n->col : 0};
  return p;
}

#define PATH(buf, parent, key) cfg_yaml_path_key(buf, sizeof buf, parent, key)

/* Reports a missing required key at the position of the map that lacks it. */
static void missing(struct cfg_ld *ld, ynode *map, const char *path, const char *key) {
  char p[CFG_YAML_PATH_MAX];
  cfg_yaml_errs_add(ld->e, map ? map->line : 1, map ? map->col : 1, PATH(p, path, key),
                    "missing required key \"%s\"", key);
}

/* Optional string field: an arena copy in *out when present. */
static int get_str(struct cfg_ld *ld, ynode *map, const char *path, const char *key, char **out) {
  char p[CFG_YAML_PATH_MAX];
  const char *s;
  int rc = cfg_yaml_read_str(ld->e, cfg_yaml_get(map, key), PATH(p, path, key), &s);
  if (rc == 0)
    *out = sdup(ld, s);
  return rc;
}

/* Required non-empty string field. */
static int need_str(struct cfg_ld *ld, ynode *map, const char *path, const char *key,
                    char **out) {
  int rc = get_str(ld, map, path, key, out);
  if (rc == 1) {
    missing(ld, map, path, key);
    return CUT_ERR_INVALID;
  }
  if (rc == 0 && !**out) {
    char p[CFG_YAML_PATH_MAX];
    ynode *n = cfg_yaml_get(map, key);
    cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, key), "must not be empty");
    return CUT_ERR_INVALID;
  }
  return rc;
}

static void get_bool(struct cfg_ld *ld, ynode *map, const char *path, const char *key, int *out) {
  char p[CFG_YAML_PATH_MAX];
  cfg_yaml_read_bool(ld->e, cfg_yaml_get(map, key), PATH(p, path, key), out);
}

static void get_u32(struct cfg_ld *ld, ynode *map, const char *path, const char *key,
                    uint32_t min, uint32_t max, uint32_t *out) {
  char p[CFG_YAML_PATH_MAX];
  cfg_yaml_read_u32(ld->e, cfg_yaml_get(map, key), PATH(p, path, key), min, max, out);
}

static void get_double(struct cfg_ld *ld, ynode *map, const char *path, const char *key,
                       double min, double max, double *out) {
  char p[CFG_YAML_PATH_MAX];
  cfg_yaml_read_double(ld->e, cfg_yaml_get(map, key), PATH(p, path, key), min, max, out);
}

/* Duration field; `nonzero` rejects 0 (timeouts that must exist). */
static void get_duration(struct cfg_ld *ld, ynode *map, const char *path, const char *key,
                         int nonzero, uint64_t *out) {
  char p[CFG_YAML_PATH_MAX];
  ynode *n = cfg_yaml_get(map, key);
  uint64_t v;
  if (cfg_yaml_read_duration(ld->e, n, PATH(p, path, key), &v) != 0)
    return;
  if (nonzero && v == 0) {
    cfg_yaml_errs_add(ld->e, n->line, n->col, p, "must be greater than 0");
    return;
  }
  *out = v;
}

static void get_size(struct cfg_ld *ld, ynode *map, const char *path, const char *key,
                     uint64_t max, uint64_t *out) {
  char p[CFG_YAML_PATH_MAX];
  ynode *n = cfg_yaml_get(map, key);
  uint64_t v;
  if (cfg_yaml_read_size(ld->e, n, PATH(p, path, key), &v) != 0)
    return;
  if (max && v > max) {
    cfg_yaml_errs_add(ld->e, n->line, n->col, p, "%s is too large (at most %llu bytes)", n->str,
                      (unsigned long long)max);
    return;
  }
  *out = v;
}

static void get_size32(struct cfg_ld *ld, ynode *map, const char *path, const char *key,
                       uint32_t *out) {
  uint64_t v = *out;
  get_size(ld, map, path, key, UINT32_MAX, &v);
  *out = (uint32_t)v;
}

static int get_percent(struct cfg_ld *ld, ynode *map, const char *path, const char *key,
                       uint32_t *out) {
  char p[CFG_YAML_PATH_MAX];
  return cfg_yaml_read_percent(ld->e, cfg_yaml_get(map, key), PATH(p, path, key), out);
}

static void get_enum(struct cfg_ld *ld, ynode *map, const char *path, const char *key,
                     const char *const *words, size_t n, int *out) {
  char p[CFG_YAML_PATH_MAX];
  cfg_yaml_read_enum(ld->e, cfg_yaml_get(map, key), PATH(p, path, key), words, n, out);
}

/* A map node for `path`, or NULL (absent, or not a map: reported). */
static ynode *as_map(struct cfg_ld *ld, ynode *n, const char *path) {
  return cfg_yaml_expect_map(ld->e, n, path) == 0 ? n : NULL;
}

static ynode *as_seq(struct cfg_ld *ld, ynode *n, const char *path) {
  return cfg_yaml_expect_seq(ld->e, n, path) == 0 ? n : NULL;
}

/* A units parser (config/units.h) behind one signature, for parsed(). */
typedef int (*units_parser)(const char *s, void *out, char *err, size_t errlen);

static int addr_parser(const char *s, void *out, char *err, size_t errlen) {
  return cfg_parse_addr(s, out, err, errlen);
}

static int key_parser(const char *s, void *out, char *err, size_t errlen) {
  return cfg_parse_key(s, out, err, errlen);
}

static int time_parser(const char *s, void *out, char *err, size_t errlen) {
  return cfg_parse_time(s, out, err, errlen);
}

/*
 * Reads scalar `n` and runs `parse` over it into *out, reporting the
 * parser's sentence at the node. Returns 0, 1 when absent, or a negative
 * code (reported; out-of-memory sets ld->nomem instead).
 */
static int parsed(struct cfg_ld *ld, ynode *n, const char *path, units_parser parse, void *out) {
  const char *s;
  int rc = cfg_yaml_read_str(ld->e, n, path, &s);
  if (rc)
    return rc;
  char err[256];
  rc = parse(s, out, err, sizeof err);
  if (rc == CUT_ERR_NOMEM)
    ld->nomem = 1;
  else if (rc)
    cfg_yaml_errs_add(ld->e, n->line, n->col, path, "%s", err);
  return rc;
}

static int addr_from(struct cfg_ld *ld, ynode *n, const char *path, struct cfg_addr *out) {
  struct cfg_addr a;
  int rc = parsed(ld, n, path, addr_parser, &a);
  if (rc)
    return rc;
  out->host = sdup(ld, a.host);
  out->port = a.port;
  out->is_ipv6 = a.is_ipv6;
  free(a.host);
  return 0;
}

static int key_from(struct cfg_ld *ld, ynode *n, const char *path, struct cfg_key *out) {
  struct cfg_key k;
  int rc = parsed(ld, n, path, key_parser, &k);
  if (rc)
    return rc;
  out->kind = k.kind;
  out->name = sdup(ld, k.name);
  out->spec = sdup(ld, k.spec);
  free(k.name);
  free(k.spec);
  return 0;
}

static void set_key(struct cfg_ld *ld, struct cfg_key *k, const char *spec) {
  struct cfg_key t;
  if (cfg_parse_key(spec, &t, NULL, 0) != 0) {
    ld->nomem = 1;
    return;
  }
  k->kind = t.kind;
  k->name = sdup(ld, t.name);
  k->spec = sdup(ld, t.spec);
  free(t.name);
  free(t.spec);
}

static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_NAME)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
      return 0;
  return 1;
}

/* Names show up in metrics labels, log lines and admin URLs: keep them plain. */
static int check_name(struct cfg_ld *ld, ynode *n, const char *path, const char *name) {
  if (valid_name(name))
    return 0;
  cfg_yaml_errs_add(ld->e, n->line, n->col, path,
                    "invalid name \"%s\" (use 1-%d letters, digits, '-', '_' or '.')", name,
                    MAX_NAME);
  return CUT_ERR_INVALID;
}

/* List of strings; `check` validates each (NULL = any non-empty string). */
static void get_strlist(struct cfg_ld *ld, ynode *map, const char *path, const char *key,
                        int (*check)(struct cfg_ld *, ynode *, const char *, const char *),
                        int lower, struct cfg_strlist *out) {
  char p[CFG_YAML_PATH_MAX], ip[CFG_YAML_PATH_MAX];
  ynode *seq = as_seq(ld, cfg_yaml_get(map, key), PATH(p, path, key));
  if (!seq)
    return;
  char **v = alloc_array(ld, seq->nitems, sizeof *v);
  if (!v)
    return;
  size_t k = 0;
  for (size_t i = 0; i < seq->nitems; i++) {
    cfg_yaml_path_index(ip, sizeof ip, p, i);
    const char *s;
    int rc = cfg_yaml_read_str(ld->e, seq->items[i], ip, &s);
    if (rc == 1)
      cfg_yaml_errs_add(ld->e, seq->items[i]->line, seq->items[i]->col, ip,
                        "expected a string, got null");
    if (rc != 0)
      continue;
    if (!*s) {
      cfg_yaml_errs_add(ld->e, seq->items[i]->line, seq->items[i]->col, ip, "must not be empty");
      continue;
    }
    if (check && check(ld, seq->items[i], ip, s) != 0)
      continue;
    char *d = sdup(ld, s);
    if (!d)
      return;
    if (lower)
      for (char *q = d; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    v[k++] = d;
  }
  out->v = v;
  out->n = k;
}

static int check_token(struct cfg_ld *ld, ynode *n, const char *path, const char *s) {
  for (const char *q = s; *q; q++) {
    if (!isalnum((unsigned char)*q) && !strchr("!#$%&'*+-.^_`|~", *q)) {
      cfg_yaml_errs_add(ld->e, n->line, n->col, path, "\"%s\" is not a valid header name", s);
      return CUT_ERR_INVALID;
    }
  }
  return 0;
}

static int check_method(struct cfg_ld *ld, ynode *n, const char *path, const char *s) {
  for (const char *q = s; *q; q++) {
    if (!isupper((unsigned char)*q)) {
      cfg_yaml_errs_add(ld->e, n->line, n->col, path,
                        "\"%s\" is not an HTTP method (methods are upper-case, e.g. GET)", s);
      return CUT_ERR_INVALID;
    }
  }
  return 0;
}

static void set_strlist(struct cfg_ld *ld, struct cfg_strlist *l, const char *const *v, size_t n) {
  l->v = alloc_array(ld, n, sizeof *l->v);
  if (!l->v)
    return;
  for (size_t i = 0; i < n; i++)
    l->v[i] = sdup(ld, v[i]);
  l->n = n;
}

/*
 * Resolves a reference to a named object; reports `no KIND named "X" (did
 * you mean "Y"?)` at the node. Returns the index or SIZE_MAX.
 */
struct names {
  const char **v;
  size_t n;
};

static size_t resolve(struct cfg_ld *ld, ynode *n, const char *path, const char *kind,
                      const struct names *names, const char *name) {
  if (!name)
    return SIZE_MAX;
  for (size_t i = 0; i < names->n; i++)
    if (names->v[i] && !strcmp(names->v[i], name))
      return i;
  const char *s = cfg_yaml_suggest(name, names->v, names->n);
  if (s)
    cfg_yaml_errs_add(ld->e, n->line, n->col, path, "no %s named \"%s\" (did you mean \"%s\"?)",
                      kind, name, s);
  else if (names->n == 0)
    cfg_yaml_errs_add(ld->e, n->line, n->col, path, "no %s named \"%s\" (no %ss are defined)",
                      kind, name, kind);
  else
    cfg_yaml_errs_add(ld->e, n->line, n->col, path, "no %s named \"%s\"", kind, name);
  return SIZE_MAX;
}

/* Reads a reference field `key` of `map` and resolves it. */
static void get_ref(struct cfg_ld *ld, ynode *map, const char *path, const char *key, int required,
                    const char *kind, const struct names *names, char **name, size_t *index) {
  char p[CFG_YAML_PATH_MAX];
  *index = SIZE_MAX;
  int rc = required ? need_str(ld, map, path, key, name) : get_str(ld, map, path, key, name);
  if (rc != 0)
    return;
  *index = resolve(ld, cfg_yaml_get(map, key), PATH(p, path, key), kind, names, *name);
}

static struct names names_of(struct cfg_ld *ld, size_t n, const char *(*get)(struct cfg *, size_t)) {
  struct names r = {alloc_array(ld, n, sizeof(char *)), 0};
  if (r.v) {
    for (size_t i = 0; i < n; i++)
      r.v[i] = get(ld->c, i);
    r.n = n;
  }
  return r;
}

/* Named objects are maps of name -> definition; returns the map or NULL. */
static ynode *named_map(struct cfg_ld *ld, ynode *root, const char *key) {
  return as_map(ld, cfg_yaml_get(root, key), key);
}

/*
 * Opens the definition of an object: 0 when `m` is a map. Otherwise reports
 * it (a wrong type as such; a null one as "expected <shape>", which tells the
 * reader what to write) and returns -1.
 */
static int open_map(struct cfg_ld *ld, ynode *m, const char *path, const char *shape) {
  if (cfg_yaml_expect_map(ld->e, m, path) == 0 && !absent(m))
    return 0;
  if (absent(m))
    cfg_yaml_errs_add(ld->e, m->line, m->col, path, "expected %s", shape);
  return -1;
}

/*
 * The bucketing fields that dials, experiments, allocations and mirrors
 * share, read in one place so they stay alike: `key` (required or not),
 * `salt` (when `salt` is not NULL; the caller has set its default, the
 * object's name) and the percentage under `pct_key` (required or not).
 * Values that are absent and not required keep the caller's defaults.
 */
static void read_bucketing(struct cfg_ld *ld, ynode *m, const char *path, int key_required,
                           struct cfg_key *key, char **salt, const char *pct_key,
                           int pct_required, uint32_t *ppm) {
  char p[CFG_YAML_PATH_MAX];
  ynode *kn = cfg_yaml_get(m, "key");
  if (key_required && absent(kn))
    missing(ld, m, path, "key");
  else
    key_from(ld, kn, PATH(p, path, "key"), key);
  if (salt)
    get_str(ld, m, path, "salt", salt);
  if (pct_required && absent(cfg_yaml_get(m, pct_key)))
    missing(ld, m, path, pct_key);
  else
    get_percent(ld, m, path, pct_key, ppm);
}

/*
 * The sections of named objects (`backends:`, `dials:`, `experiments:`,
 * `allocations:`): a map of name -> definition. `place` stores the array and
 * its length in the config; `read` fills one object whose name and position
 * are already set.
 */
typedef void (*read_obj_fn)(struct cfg_ld *ld, ynode *m, const char *path, void *obj,
                            const struct names *backends);

struct named_section {
  const char *key;       /* the top-level key, also the path prefix */
  const char *what;      /* for "at least one %s is required"; NULL: may be empty */
  size_t size;           /* sizeof one object */
  size_t name_off;       /* offsetof its `char *name` */
  size_t where_off;      /* offsetof its `struct cfg_pos where` */
  void (*place)(struct cfg *c, void *array, size_t n);
  read_obj_fn read;
};

static void read_named(struct cfg_ld *ld, ynode *root, const struct named_section *s,
                       const struct names *backends) {
  ynode *m = named_map(ld, root, s->key);
  if (!m || (s->what && m->npairs == 0)) {
    if (s->what && (absent(cfg_yaml_get(root, s->key)) || m))
      cfg_yaml_errs_add(ld->e, m ? m->line : root ? root->line : 1,
                        m ? m->col : root ? root->col : 1, s->key,
                        "at least one %s is required", s->what);
    return;
  }
  char *array = alloc_array(ld, m->npairs, s->size);
  if (!array)
    return;
  s->place(ld->c, array, m->npairs);
  for (size_t i = 0; i < m->npairs; i++) {
    char path[CFG_YAML_PATH_MAX];
    ynode *k = m->pairs[i].key;
    char *obj = array + i * s->size;
    PATH(path, s->key, k->str);
    *(char **)(obj + s->name_off) = sdup(ld, k->str);
    *(struct cfg_pos *)(obj + s->where_off) = pos_of(ld, k);
    check_name(ld, k, path, k->str);
    s->read(ld, m->pairs[i].value, path, obj, backends);
  }
}

static const char *backend_name(struct cfg *c, size_t i) { return c->backends[i].name; }
static const char *dial_name(struct cfg *c, size_t i) { return c->dials[i].name; }
static const char *experiment_name(struct cfg *c, size_t i) { return c->experiments[i].name; }
static const char *allocation_name(struct cfg *c, size_t i) { return c->allocations[i].name; }

/* ---- top level scalars ------------------------------------------------- */

static void read_workers(struct cfg_ld *ld, ynode *root) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  uint32_t autov = ncpu < 1 ? 1 : ncpu > (long)MAX_WORKERS ? MAX_WORKERS : (uint32_t)ncpu;
  ld->c->workers = autov;
  ynode *n = cfg_yaml_get(root, "workers");
  if (absent(n) || n->invalid || (n->type == CFG_YAML_SCALAR && !strcmp(n->str, "auto")))
    return;
  if (n->type == CFG_YAML_SCALAR && n->str[0] && !isdigit((unsigned char)n->str[0])) {
    cfg_yaml_errs_add(ld->e, n->line, n->col, "workers",
                      "expected \"auto\" or a number of threads, got \"%s\"", n->str);
    return;
  }
  cfg_yaml_read_u32(ld->e, n, "workers", 1, MAX_WORKERS, &ld->c->workers);
}

/* ---- admin ------------------------------------------------------------- */

static void read_admin(struct cfg_ld *ld, ynode *root) {
  static const char *const keys[] = {"enabled", "listen", "token_file"};
  struct cfg_admin *a = &ld->c->admin;
  a->listen.host = sdup(ld, "127.0.0.1");
  a->listen.port = 9901;
  a->token_file = sdup(ld, "run/admin.token");
  a->enabled = 0;
  ynode *m = as_map(ld, cfg_yaml_get(root, "admin"), "admin");
  if (!m)
    return;
  a->enabled = 1;
  cfg_yaml_check_keys(ld->e, m, "admin", keys, NKEYS(keys));
  get_bool(ld, m, "admin", "enabled", &a->enabled);
  addr_from(ld, cfg_yaml_get(m, "listen"), "admin.listen", &a->listen);
  need_str(ld, m, "admin", "token_file", &a->token_file);
}

/* ---- TLS --------------------------------------------------------------- */

static void read_tls(struct cfg_ld *ld, ynode *m, const char *path, int backend,
                     struct cfg_tls *t) {
  static const char *const lkeys[] = {"cert", "key"};
  static const char *const bkeys[] = {"ca", "cert", "key", "sni", "verify"};
  if (backend)
    cfg_yaml_check_keys(ld->e, m, path, bkeys, NKEYS(bkeys));
  else
    cfg_yaml_check_keys(ld->e, m, path, lkeys, NKEYS(lkeys));
  t->verify = 1;
  if (!backend) {
    need_str(ld, m, path, "cert", &t->cert);
    need_str(ld, m, path, "key", &t->key);
    return;
  }
  get_str(ld, m, path, "ca", &t->ca);
  get_str(ld, m, path, "cert", &t->cert);
  get_str(ld, m, path, "key", &t->key);
  get_str(ld, m, path, "sni", &t->sni);
  get_bool(ld, m, path, "verify", &t->verify);
  if (!t->cert != !t->key) {
    const char *given = t->cert ? "cert" : "key", *other = t->cert ? "key" : "cert";
    ynode *n = cfg_yaml_get(m, given);
    char p[CFG_YAML_PATH_MAX];
    cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, given),
                      "a client certificate needs both cert and key (\"%s\" is missing)", other);
  }
}

/* ---- listeners --------------------------------------------------------- */

static void read_listeners(struct cfg_ld *ld, ynode *root) {
  static const char *const keys[] = {"h2c_upgrade", "listen", "name", "tls"};
  struct cfg *c = ld->c;
  ynode *seq = as_seq(ld, cfg_yaml_get(root, "listeners"), "listeners");
  if (!seq || seq->nitems == 0) {
    if (absent(cfg_yaml_get(root, "listeners")) || (seq && seq->nitems == 0))
      cfg_yaml_errs_add(ld->e, seq ? seq->line : root ? root->line : 1,
                        seq ? seq->col : root ? root->col : 1, "listeners",
                        "at least one listener is required");
    return;
  }
  c->listeners = alloc_array(ld, seq->nitems, sizeof *c->listeners);
  if (!c->listeners)
    return;
  c->nlisteners = seq->nitems;
  for (size_t i = 0; i < seq->nitems; i++) {
    char path[CFG_YAML_PATH_MAX], p[CFG_YAML_PATH_MAX];
    cfg_yaml_path_index(path, sizeof path, "listeners", i);
    struct cfg_listener *l = &c->listeners[i];
    ynode *m = seq->items[i];
    l->where = pos_of(ld, m);
    if (cfg_yaml_expect_map(ld->e, m, path) != 0) {
      if (absent(m))
        cfg_yaml_errs_add(ld->e, m->line, m->col, path, "expected a map, got null");
      continue;
    }
    cfg_yaml_check_keys(ld->e, m, path, keys, NKEYS(keys));
    if (need_str(ld, m, path, "name", &l->name) == 0)
      check_name(ld, cfg_yaml_get(m, "name"), PATH(p, path, "name"), l->name);
    ynode *ln = cfg_yaml_get(m, "listen");
    if (absent(ln))
      missing(ld, m, path, "listen");
    else
      addr_from(ld, ln, PATH(p, path, "listen"), &l->listen);
    ynode *tls = as_map(ld, cfg_yaml_get(m, "tls"), PATH(p, path, "tls"));
    if (tls) {
      l->has_tls = 1;
      read_tls(ld, tls, p, 0, &l->tls);
    }
    l->h2c_upgrade = 1;
    get_bool(ld, m, path, "h2c_upgrade", &l->h2c_upgrade);
    for (size_t j = 0; j < i; j++) {
      struct cfg_listener *o = &c->listeners[j];
      if (l->name && o->name && !strcmp(l->name, o->name)) {
        ynode *n = cfg_yaml_get(m, "name");
        cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, "name"),
                          "duplicate listener name \"%s\" (also listeners[%zu])", l->name, j);
      }
      if (l->listen.host && o->listen.host && l->listen.port == o->listen.port &&
          !strcmp(l->listen.host, o->listen.host)) {
        cfg_yaml_errs_add(ld->e, ln->line, ln->col, PATH(p, path, "listen"),
                          "address %s:%u is already used by listeners[%zu]", l->listen.host,
                          l->listen.port, j);
      }
    }
  }
}

/* ---- backends ---------------------------------------------------------- */

static const char *const protocols[] = {"http1", "h2c", "h2"};
static const char *const lbs[] = {"round_robin", "least_request"};
static const char *const unhealthy[] = {"fail_open", "fail"};

static void read_health(struct cfg_ld *ld, ynode *bm, const char *bpath, struct cfg_health *h) {
  static const char *const keys[] = {"enabled",  "healthy_threshold", "interval",
                                     "path",     "timeout",           "unhealthy_threshold"};
  char path[CFG_YAML_PATH_MAX];
  PATH(path, bpath, "health");
  h->enabled = 0;
  h->path = sdup(ld, "/healthz");
  h->interval_ms = 5000;
  h->timeout_ms = 1000;
  h->healthy_threshold = 2;
  h->unhealthy_threshold = 3;
  ynode *m = as_map(ld, cfg_yaml_get(bm, "health"), path);
  if (!m)
    return;
  h->enabled = 1;
  cfg_yaml_check_keys(ld->e, m, path, keys, NKEYS(keys));
  get_bool(ld, m, path, "enabled", &h->enabled);
  if (get_str(ld, m, path, "path", &h->path) == 0 && h->path[0] != '/') {
    ynode *n = cfg_yaml_get(m, "path");
    char p[CFG_YAML_PATH_MAX];
    cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, "path"), "must start with '/'");
  }
  get_duration(ld, m, path, "interval", 1, &h->interval_ms);
  get_duration(ld, m, path, "timeout", 1, &h->timeout_ms);
  get_u32(ld, m, path, "healthy_threshold", 1, 100, &h->healthy_threshold);
  get_u32(ld, m, path, "unhealthy_threshold", 1, 100, &h->unhealthy_threshold);
  if (h->timeout_ms > h->interval_ms) {
    ynode *n = cfg_yaml_get(m, "timeout");
    char p[CFG_YAML_PATH_MAX];
    cfg_yaml_errs_add(ld->e, n ? n->line : m->line, n ? n->col : m->col, PATH(p, path, "timeout"),
                      "must not be longer than the interval");
  }
}

static void read_outlier(struct cfg_ld *ld, ynode *bm, const char *bpath, struct cfg_outlier *o) {
  static const char *const keys[] = {"base_ejection", "consecutive_5xx",
                                     "consecutive_connect_failures", "max_ejected",
                                     "max_ejection"};
  char path[CFG_YAML_PATH_MAX];
  PATH(path, bpath, "outlier");
  o->consecutive_5xx = 5;
  o->consecutive_connect_failures = 3;
  o->base_ejection_ms = 30000;
  o->max_ejection_ms = 300000;
  o->max_ejected_ppm = 500000;
  ynode *m = as_map(ld, cfg_yaml_get(bm, "outlier"), path);
  if (!m)
    return;
  cfg_yaml_check_keys(ld->e, m, path, keys, NKEYS(keys));
  get_u32(ld, m, path, "consecutive_5xx", 0, 1000, &o->consecutive_5xx);
  get_u32(ld, m, path, "consecutive_connect_failures", 0, 1000, &o->consecutive_connect_failures);
  get_duration(ld, m, path, "base_ejection", 1, &o->base_ejection_ms);
  get_duration(ld, m, path, "max_ejection", 1, &o->max_ejection_ms);
  get_percent(ld, m, path, "max_ejected", &o->max_ejected_ppm);
  if (o->max_ejection_ms < o->base_ejection_ms) {
    char p[CFG_YAML_PATH_MAX];
    cfg_yaml_errs_add(ld->e, m->line, m->col, PATH(p, path, "max_ejection"),
                      "must not be shorter than base_ejection");
  }
}

static void read_backend(struct cfg_ld *ld, ynode *m, const char *path, void *obj,
                         const struct names *backends) {
  struct cfg_backend *b = obj;
  static const char *const keys[] = {
      "connect_timeout", "health",        "host_header",     "hosts",        "idle_timeout",
      "lb",              "max_connections", "max_streams",   "on_unhealthy", "outlier",
      "pipeline",        "protocol",      "retries",         "timeout",      "tls",
      "total_timeout"};
  char p[CFG_YAML_PATH_MAX], ip[CFG_YAML_PATH_MAX];
  b->protocol = CFG_PROTO_HTTP1;
  b->lb = CFG_LB_ROUND_ROBIN;
  b->connect_timeout_ms = 1000;
  b->timeout_ms = 15000;
  b->total_timeout_ms = 0;
  b->idle_timeout_ms = 60000;
  b->max_connections = 64;
  b->max_streams = 100;
  b->retries = 1;
  b->pipeline = 1;
  b->on_unhealthy = CFG_UNHEALTHY_FAIL_OPEN;
  b->tls.verify = 1;
  read_health(ld, m, path, &b->health);
  read_outlier(ld, m, path, &b->outlier);
  if (open_map(ld, m, path, "a map with at least \"hosts\"") != 0)
    return;
  cfg_yaml_check_keys(ld->e, m, path, keys, NKEYS(keys));
  ynode *hn = cfg_yaml_get(m, "hosts");
  ynode *hosts = as_seq(ld, hn, PATH(p, path, "hosts"));
  if (absent(hn)) {
    missing(ld, m, path, "hosts");
  } else if (hosts && hosts->nitems == 0) {
    cfg_yaml_errs_add(ld->e, hosts->line, hosts->col, p, "at least one host is required");
  } else if (hosts) {
    b->hosts = alloc_array(ld, hosts->nitems, sizeof *b->hosts);
    if (!b->hosts)
      return;
    for (size_t i = 0; i < hosts->nitems; i++) {
      cfg_yaml_path_index(ip, sizeof ip, p, i);
      int rc = addr_from(ld, hosts->items[i], ip, &b->hosts[b->nhosts]);
      if (rc == 1)
        cfg_yaml_errs_add(ld->e, hosts->items[i]->line, hosts->items[i]->col, ip,
                          "expected host:port, got null");
      if (rc == 0)
        b->nhosts++;
    }
  }
  int v = (int)b->protocol;
  get_enum(ld, m, path, "protocol", protocols, NKEYS(protocols), &v);
  b->protocol = (enum cfg_protocol)v;
  v = (int)b->lb;
  get_enum(ld, m, path, "lb", lbs, NKEYS(lbs), &v);
  b->lb = (enum cfg_lb)v;
  v = (int)b->on_unhealthy;
  get_enum(ld, m, path, "on_unhealthy", unhealthy, NKEYS(unhealthy), &v);
  b->on_unhealthy = (enum cfg_unhealthy_policy)v;
  get_duration(ld, m, path, "connect_timeout", 1, &b->connect_timeout_ms);
  get_duration(ld, m, path, "timeout", 1, &b->timeout_ms);
  get_duration(ld, m, path, "total_timeout", 0, &b->total_timeout_ms);
  get_duration(ld, m, path, "idle_timeout", 1, &b->idle_timeout_ms);
  get_u32(ld, m, path, "max_connections", 1, 100000, &b->max_connections);
  get_u32(ld, m, path, "max_streams", 1, 10000, &b->max_streams);
  get_u32(ld, m, path, "retries", 0, 10, &b->retries);
  get_u32(ld, m, path, "pipeline", 1, 64, &b->pipeline);
  if (b->pipeline > 1 && b->protocol != CFG_PROTO_HTTP1) {
    ynode *n = cfg_yaml_get(m, "pipeline");
    cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, "pipeline"),
                      "pipelining is for protocol http1; HTTP/2 multiplexes streams instead");
  }
  get_str(ld, m, path, "host_header", &b->host_header);
  ynode *tn = cfg_yaml_get(m, "tls");
  ynode *tls = as_map(ld, tn, PATH(p, path, "tls"));
  if (tls) {
    read_tls(ld, tls, p, 1, &b->tls);
    if (b->protocol == CFG_PROTO_H2C)
      cfg_yaml_errs_add(ld->e, tls->line, tls->col, p,
                        "protocol h2c is cleartext HTTP/2; use protocol h2 for HTTP/2 over TLS");
  }
  b->has_tls = tls != NULL || b->protocol == CFG_PROTO_H2;
  if (b->total_timeout_ms && b->total_timeout_ms < b->timeout_ms) {
    ynode *n = cfg_yaml_get(m, "total_timeout");
    cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, "total_timeout"),
                      "must not be shorter than timeout");
  }
}


/* ---- dials ------------------------------------------------------------- */

static void read_dial(struct cfg_ld *ld, ynode *m, const char *path, void *obj,
                      const struct names *backends) {
  struct cfg_dial *d = obj;
  static const char *const keys[] = {"key", "per_datacenter", "percent", "salt", "steps", "to"};
  char p[CFG_YAML_PATH_MAX], ip[CFG_YAML_PATH_MAX];
  d->salt = sdup(ld, d->name);
  d->to_index = SIZE_MAX;
  if (open_map(ld, m, path, "a map with key, percent and to") != 0)
    return;
  cfg_yaml_check_keys(ld->e, m, path, keys, NKEYS(keys));
  read_bucketing(ld, m, path, 1, &d->key, &d->salt, "percent", 1, &d->ppm);
  get_ref(ld, m, path, "to", 1, "backend", backends, &d->to, &d->to_index);

  ynode *pdc = as_map(ld, cfg_yaml_get(m, "per_datacenter"), PATH(p, path, "per_datacenter"));
  if (pdc) {
    d->per_dc = alloc_array(ld, pdc->npairs, sizeof *d->per_dc);
    if (!d->per_dc)
      return;
    for (size_t i = 0; i < pdc->npairs; i++) {
      ynode *k = pdc->pairs[i].key;
      PATH(ip, p, k->str);
      uint32_t v;
      if (absent(pdc->pairs[i].value)) {
        cfg_yaml_errs_add(ld->e, k->line, k->col, ip, "expected a percentage");
        continue;
      }
      if (cfg_yaml_read_percent(ld->e, pdc->pairs[i].value, ip, &v) != 0)
        continue;
      d->per_dc[d->nper_dc].datacenter = sdup(ld, k->str);
      d->per_dc[d->nper_dc].ppm = v;
      d->nper_dc++;
    }
  }
  ynode *steps = as_seq(ld, cfg_yaml_get(m, "steps"), PATH(p, path, "steps"));
  if (steps) {
    d->steps = alloc_array(ld, steps->nitems, sizeof *d->steps);
    if (!d->steps)
      return;
    for (size_t i = 0; i < steps->nitems; i++) {
      cfg_yaml_path_index(ip, sizeof ip, p, i);
      uint32_t v;
      ynode *sn = steps->items[i];
      if (absent(sn)) {
        cfg_yaml_errs_add(ld->e, sn->line, sn->col, ip, "expected a percentage");
        continue;
      }
      if (cfg_yaml_read_percent(ld->e, sn, ip, &v) != 0)
        continue;
      if (d->nsteps && v <= d->steps[d->nsteps - 1]) {
        char a[16], b[16];
        cfg_format_percent(v, a, sizeof a);
        cfg_format_percent(d->steps[d->nsteps - 1], b, sizeof b);
        cfg_yaml_errs_add(ld->e, sn->line, sn->col, ip,
                          "steps must be in ascending order (%s follows %s)", a, b);
        continue;
      }
      d->steps[d->nsteps++] = v;
    }
  }
}


/* ---- experiments ------------------------------------------------------- */

static void read_time(struct cfg_ld *ld, ynode *m, const char *path, const char *key,
                      int64_t *out) {
  char p[CFG_YAML_PATH_MAX];
  parsed(ld, cfg_yaml_get(m, key), PATH(p, path, key), time_parser, out);
}

static void read_experiment(struct cfg_ld *ld, ynode *m, const char *path, void *obj,
                            const struct names *backends) {
  struct cfg_experiment *x = obj;
  static const char *const keys[] = {"baseline", "canary", "end",  "key",
                                     "kpi",      "pool",   "salt", "start", "state"};
  static const char *const kkeys[] = {"consecutive_windows", "max_error_rate_delta",
                                      "max_latency_ratio", "min_requests", "window"};
  static const char *const states[] = {"pending", "running"};
  char p[CFG_YAML_PATH_MAX];
  x->salt = sdup(ld, x->name);
  x->canary_index = x->baseline_index = SIZE_MAX;
  x->kpi.max_error_rate_delta = 0.02;
  x->kpi.max_latency_ratio = 1.5;
  x->kpi.window_ms = 60000;
  x->kpi.min_requests = 100;
  x->kpi.consecutive_windows = 3;
  if (open_map(ld, m, path, "a map with key, pool, canary and baseline") != 0)
    return;
  cfg_yaml_check_keys(ld->e, m, path, keys, NKEYS(keys));
  read_bucketing(ld, m, path, 1, &x->key, &x->salt, "pool", 1, &x->pool_ppm);
  get_ref(ld, m, path, "canary", 1, "backend", backends, &x->canary, &x->canary_index);
  get_ref(ld, m, path, "baseline", 1, "backend", backends, &x->baseline, &x->baseline_index);
  if (x->canary_index != SIZE_MAX && x->canary_index == x->baseline_index) {
    ynode *n = cfg_yaml_get(m, "baseline");
    cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, "baseline"),
                      "canary and baseline must be different backends");
  }
  read_time(ld, m, path, "start", &x->start);
  read_time(ld, m, path, "end", &x->end);
  if (x->start && x->end && x->end <= x->start) {
    ynode *n = cfg_yaml_get(m, "end");
    cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, "end"), "must be after start");
  }
  int st = 0;
  get_enum(ld, m, path, "state", states, NKEYS(states), &st);
  x->autostart = st == 1;
  ynode *km = as_map(ld, cfg_yaml_get(m, "kpi"), PATH(p, path, "kpi"));
  if (km) {
    char kp[CFG_YAML_PATH_MAX];
    snprintf(kp, sizeof kp, "%s", p);
    cfg_yaml_check_keys(ld->e, km, kp, kkeys, NKEYS(kkeys));
    get_double(ld, km, kp, "max_error_rate_delta", 0, 1, &x->kpi.max_error_rate_delta);
    get_double(ld, km, kp, "max_latency_ratio", 1, 1000, &x->kpi.max_latency_ratio);
    get_duration(ld, km, kp, "window", 1, &x->kpi.window_ms);
    get_u32(ld, km, kp, "min_requests", 1, 100000000, &x->kpi.min_requests);
    get_u32(ld, km, kp, "consecutive_windows", 1, 1000, &x->kpi.consecutive_windows);
  }
}


/* ---- allocations ------------------------------------------------------- */

static void read_allocation(struct cfg_ld *ld, ynode *m, const char *path, void *obj,
                            const struct names *backends) {
  struct cfg_allocation *al = obj;
  static const char *const keys[] = {"app_version", "cells", "key",    "percent",
                                     "platforms",   "regions", "salt"};
  static const char *const ckeys[] = {"backend", "name", "weight"};
  char p[CFG_YAML_PATH_MAX], cp[CFG_YAML_PATH_MAX], fp[CFG_YAML_PATH_MAX];
  al->salt = sdup(ld, al->name);
  al->ppm = CFG_PPM_MAX;
  if (open_map(ld, m, path, "a map with key and cells") != 0)
    return;
  cfg_yaml_check_keys(ld->e, m, path, keys, NKEYS(keys));
  read_bucketing(ld, m, path, 1, &al->key, &al->salt, "percent", 0, &al->ppm);
  get_strlist(ld, m, path, "regions", NULL, 0, &al->regions);
  get_strlist(ld, m, path, "platforms", NULL, 0, &al->platforms);
  if (get_str(ld, m, path, "app_version", &al->app_version_text) == 0) {
    char err[200];
    struct cfg_version_cmp *v;
    size_t n;
    ynode *an = cfg_yaml_get(m, "app_version");
    int rc = cfg_parse_version_range(al->app_version_text, &v, &n, err, sizeof err);
    if (rc == CUT_ERR_NOMEM) {
      ld->nomem = 1;
    } else if (rc) {
      cfg_yaml_errs_add(ld->e, an->line, an->col, PATH(p, path, "app_version"), "%s", err);
    } else {
      al->app_version = alloc_array(ld, n, sizeof *v);
      if (al->app_version) {
        memcpy(al->app_version, v, n * sizeof *v);
        al->napp_version = n;
      }
      free(v);
    }
  }
  ynode *cn = cfg_yaml_get(m, "cells");
  ynode *cells = as_seq(ld, cn, PATH(p, path, "cells"));
  if (absent(cn)) {
    missing(ld, m, path, "cells");
    return;
  }
  if (!cells)
    return;
  if (cells->nitems == 0) {
    cfg_yaml_errs_add(ld->e, cells->line, cells->col, p, "at least one cell is required");
    return;
  }
  al->cells = alloc_array(ld, cells->nitems, sizeof *al->cells);
  if (!al->cells)
    return;
  al->ncells = cells->nitems;
  for (size_t i = 0; i < cells->nitems; i++) {
    struct cfg_cell *cell = &al->cells[i];
    ynode *c = cells->items[i];
    cfg_yaml_path_index(cp, sizeof cp, p, i);
    cell->backend_index = SIZE_MAX;
    if (open_map(ld, c, cp, "a map with name, weight, backend") != 0)
      continue;
    cfg_yaml_check_keys(ld->e, c, cp, ckeys, NKEYS(ckeys));
    if (need_str(ld, c, cp, "name", &cell->name) == 0) {
      check_name(ld, cfg_yaml_get(c, "name"), PATH(fp, cp, "name"), cell->name);
      for (size_t j = 0; j < i; j++) {
        if (al->cells[j].name && !strcmp(al->cells[j].name, cell->name)) {
          ynode *n = cfg_yaml_get(c, "name");
          cfg_yaml_errs_add(ld->e, n->line, n->col, fp, "duplicate cell name \"%s\"", cell->name);
        }
      }
    }
    if (absent(cfg_yaml_get(c, "weight")))
      missing(ld, c, cp, "weight");
    else
      get_u32(ld, c, cp, "weight", 1, 1000000, &cell->weight);
    get_ref(ld, c, cp, "backend", 1, "backend", backends, &cell->backend, &cell->backend_index);
  }
}


static void read_attributes(struct cfg_ld *ld, ynode *root) {
  static const char *const keys[] = {"app_version", "platform", "region"};
  struct cfg_attributes *at = &ld->c->attributes;
  set_key(ld, &at->region, "header:x-region");
  set_key(ld, &at->platform, "header:x-platform");
  set_key(ld, &at->app_version, "header:x-app-version");
  ynode *m = as_map(ld, cfg_yaml_get(root, "attributes"), "attributes");
  if (!m)
    return;
  cfg_yaml_check_keys(ld->e, m, "attributes", keys, NKEYS(keys));
  key_from(ld, cfg_yaml_get(m, "region"), "attributes.region", &at->region);
  key_from(ld, cfg_yaml_get(m, "platform"), "attributes.platform", &at->platform);
  key_from(ld, cfg_yaml_get(m, "app_version"), "attributes.app_version", &at->app_version);
}

/* ---- routes ------------------------------------------------------------ */

static const char *const compares[] = {"off", "live"};

static void read_mirror(struct cfg_ld *ld, ynode *n, const char *path, struct cfg_mirror *mi,
                        const struct names *backends) {
  static const char *const keys[] = {"backend", "host", "key", "methods", "percent"};
  static const char *const safe[] = {"GET", "HEAD", "OPTIONS"};
  mi->ppm = CFG_PPM_MAX;
  mi->backend_index = SIZE_MAX;
  set_key(ld, &mi->key, "random");
  set_strlist(ld, &mi->methods, safe, NKEYS(safe));
  if (n->invalid)
    return;
  if (n->type == CFG_YAML_SCALAR && !n->is_null) {
    /* shorthand: `mirror: [modern]` */
    mi->backend = sdup(ld, n->str);
    mi->backend_index = resolve(ld, n, path, "backend", backends, mi->backend);
    return;
  }
  if (open_map(ld, n, path, "a backend name or a map") != 0)
    return;
  cfg_yaml_check_keys(ld->e, n, path, keys, NKEYS(keys));
  get_ref(ld, n, path, "backend", 1, "backend", backends, &mi->backend, &mi->backend_index);
  read_bucketing(ld, n, path, 0, &mi->key, NULL, "percent", 0, &mi->ppm);
  get_strlist(ld, n, path, "methods", check_method, 0, &mi->methods);
  get_str(ld, n, path, "host", &mi->host);
}

static void read_match(struct cfg_ld *ld, ynode *rm, const char *rpath, struct cfg_route *r) {
  static const char *const keys[] = {"headers", "host", "methods", "path", "path_prefix"};
  char path[CFG_YAML_PATH_MAX], p[CFG_YAML_PATH_MAX];
  PATH(path, rpath, "match");
  ynode *m = as_map(ld, cfg_yaml_get(rm, "match"), path);
  if (!m)
    return;
  cfg_yaml_check_keys(ld->e, m, path, keys, NKEYS(keys));
  if (get_str(ld, m, path, "host", &r->host) == 0)
    for (char *q = r->host; *q; q++)
      *q = (char)tolower((unsigned char)*q);
  static const char *const pk[] = {"path_prefix", "path"};
  char **pv[] = {&r->path_prefix, &r->path};
  for (size_t i = 0; i < 2; i++) {
    if (get_str(ld, m, path, pk[i], pv[i]) == 0 && (*pv[i])[0] != '/') {
      ynode *n = cfg_yaml_get(m, pk[i]);
      cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, pk[i]), "must start with '/'");
    }
  }
  if (r->path && r->path_prefix) {
    ynode *n = cfg_yaml_get(m, "path");
    cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, "path"),
                      "give either path or path_prefix, not both");
  }
  get_strlist(ld, m, path, "methods", check_method, 0, &r->methods);
  ynode *hm = as_map(ld, cfg_yaml_get(m, "headers"), PATH(p, path, "headers"));
  if (hm) {
    r->headers = alloc_array(ld, hm->npairs, sizeof *r->headers);
    if (!r->headers)
      return;
    for (size_t i = 0; i < hm->npairs; i++) {
      char hp[CFG_YAML_PATH_MAX];
      ynode *k = hm->pairs[i].key;
      PATH(hp, p, k->str);
      if (check_token(ld, k, hp, k->str) != 0)
        continue;
      struct cfg_header_match *h = &r->headers[r->nheaders];
      const char *v = NULL;
      if (cfg_yaml_read_str(ld->e, hm->pairs[i].value, hp, &v) < 0)
        continue;
      h->name = sdup(ld, k->str);
      if (h->name)
        for (char *q = h->name; *q; q++)
          *q = (char)tolower((unsigned char)*q);
      h->value = v ? sdup(ld, v) : NULL;
      r->nheaders++;
    }
  }
}

static void read_route(struct cfg_ld *ld, ynode *m, const char *path, struct cfg_route *r,
                       const struct names *nm) {
  static const char *const keys[] = {
      "allocation", "backend", "compare", "compare_ignore", "decision_header", "dial",
      "experiment", "match",   "mirror",  "name",           "record"};
  char p[CFG_YAML_PATH_MAX], ip[CFG_YAML_PATH_MAX];
  r->backend_index = r->dial_index = r->experiment_index = r->allocation_index = SIZE_MAX;
  r->compare = CFG_COMPARE_OFF;
  if (open_map(ld, m, path, "a map with name and backend") != 0)
    return;
  cfg_yaml_check_keys(ld->e, m, path, keys, NKEYS(keys));
  if (need_str(ld, m, path, "name", &r->name) == 0)
    check_name(ld, cfg_yaml_get(m, "name"), PATH(p, path, "name"), r->name);
  read_match(ld, m, path, r);
  get_ref(ld, m, path, "backend", 1, "backend", &nm[0], &r->backend, &r->backend_index);
  get_ref(ld, m, path, "dial", 0, "dial", &nm[1], &r->dial, &r->dial_index);
  get_ref(ld, m, path, "experiment", 0, "experiment", &nm[2], &r->experiment,
          &r->experiment_index);
  get_ref(ld, m, path, "allocation", 0, "allocation", &nm[3], &r->allocation,
          &r->allocation_index);
  /* A route may name one experiment, one allocation and one dial together:
   * dial_decide tries them in that order (docs/dials.md). */
  ynode *mn = cfg_yaml_get(m, "mirror");
  ynode *mirrors = as_seq(ld, mn, PATH(p, path, "mirror"));
  if (mirrors) {
    r->mirrors = alloc_array(ld, mirrors->nitems, sizeof *r->mirrors);
    if (!r->mirrors)
      return;
    r->nmirrors = mirrors->nitems;
    for (size_t i = 0; i < mirrors->nitems; i++) {
      cfg_yaml_path_index(ip, sizeof ip, p, i);
      read_mirror(ld, mirrors->items[i], ip, &r->mirrors[i], &nm[0]);
      if (r->mirrors[i].backend_index != SIZE_MAX &&
          r->mirrors[i].backend_index == r->backend_index)
        cfg_yaml_errs_add(ld->e, mirrors->items[i]->line, mirrors->items[i]->col, ip,
                          "mirroring to the route's own backend \"%s\" would send it every "
                          "request twice",
                          r->backend);
      for (size_t j = 0; j < i; j++)
        if (r->mirrors[j].backend_index != SIZE_MAX &&
            r->mirrors[j].backend_index == r->mirrors[i].backend_index)
          cfg_yaml_errs_add(ld->e, mirrors->items[i]->line, mirrors->items[i]->col, ip,
                            "backend \"%s\" is already mirrored by %s[%zu]", r->mirrors[i].backend,
                            p, j);
    }
  }
  get_bool(ld, m, path, "record", &r->record);
  if (r->record && ld->c->recording.sink == CFG_SINK_NONE) { /* recording is read first */
    ynode *n = cfg_yaml_get(m, "record");
    cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, "record"),
                      "recording is off (set recording.sink to kafka or file)");
  }
  int cmp = 0;
  get_enum(ld, m, path, "compare", compares, NKEYS(compares), &cmp);
  r->compare = (enum cfg_compare)cmp;
  if (r->compare == CFG_COMPARE_LIVE && r->nmirrors == 0) {
    ynode *n = cfg_yaml_get(m, "compare");
    cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, "compare"),
                      "live comparison needs a mirror to compare with");
  }
  get_strlist(ld, m, path, "compare_ignore", NULL, 0, &r->compare_ignore);
  get_bool(ld, m, path, "decision_header", &r->decision_header);
}

static void read_routes(struct cfg_ld *ld, ynode *root, const struct names *nm) {
  struct cfg *c = ld->c;
  ynode *seq = as_seq(ld, cfg_yaml_get(root, "routes"), "routes");
  if (!seq || seq->nitems == 0) {
    if (absent(cfg_yaml_get(root, "routes")) || seq)
      cfg_yaml_errs_add(ld->e, seq ? seq->line : root ? root->line : 1,
                        seq ? seq->col : root ? root->col : 1, "routes",
                        "at least one route is required");
    return;
  }
  c->routes = alloc_array(ld, seq->nitems, sizeof *c->routes);
  if (!c->routes)
    return;
  c->nroutes = seq->nitems;
  for (size_t i = 0; i < seq->nitems; i++) {
    char path[CFG_YAML_PATH_MAX], p[CFG_YAML_PATH_MAX];
    cfg_yaml_path_index(path, sizeof path, "routes", i);
    struct cfg_route *r = &c->routes[i];
    r->where = pos_of(ld, seq->items[i]);
    read_route(ld, seq->items[i], path, r, nm);
    for (size_t j = 0; r->name && j < i; j++) {
      if (c->routes[j].name && !strcmp(c->routes[j].name, r->name)) {
        ynode *n = cfg_yaml_get(seq->items[i], "name");
        cfg_yaml_errs_add(ld->e, n->line, n->col, PATH(p, path, "name"),
                          "duplicate route name \"%s\" (also routes[%zu])", r->name, j);
      }
    }
  }
}

/* ---- recording --------------------------------------------------------- */

static const char *const sinks[] = {"none", "kafka", "file"};
static const char *const compressions[] = {"none", "gzip", "snappy", "lz4", "zstd"};

int cfg_is_secret_name(const char *name) {
  static const char *const words[] = {"password", "secret", "token", "credential",
                                      "oauthbearer", "private"};
  char low[256];
  size_t n = 0;
  for (; name[n] && n + 1 < sizeof low; n++)
    low[n] = (char)tolower((unsigned char)name[n]);
  low[n] = '\0';
  for (size_t i = 0; i < NKEYS(words); i++)
    if (strstr(low, words[i]))
      return 1;
  return !strcmp(low, "ssl.key.pem") || !strcmp(low, "ssl.keystore.password");
}

static void read_recording(struct cfg_ld *ld, ynode *root) {
  static const char *const keys[] = {
      "file",          "hash_device_key", "kafka",          "lineage_headers", "max_body",
      "max_inflight_shadows", "nice", "redact_headers", "shadow_timeout", "sink", "spill"};
  static const char *const kkeys[] = {"brokers", "compression", "linger", "properties",
                                      "queue_max_messages", "topic"};
  static const char *const fkeys[] = {"dir"};
  static const char *const skeys[] = {"dir", "max_size", "segment_size"};
  static const char *const redact[] = {"authorization", "cookie", "set-cookie"};
  struct cfg_recording *r = &ld->c->recording;
  char p[CFG_YAML_PATH_MAX];
  r->sink = CFG_SINK_NONE;
  r->topic = sdup(ld, "cutover.pairs");
  r->compression = sdup(ld, "lz4");
  r->linger_ms = 5;
  r->queue_max_messages = 100000;
  r->file_dir = sdup(ld, "run/records");
  r->spill_dir = sdup(ld, "run/spill");
  r->spill_max_bytes = 1ull << 30;
  r->spill_segment_bytes = 64ull << 20;
  set_strlist(ld, &r->redact_headers, redact, NKEYS(redact));
  r->max_body_bytes = 64 << 10;
  r->hash_device_key = 0;
  r->max_inflight_shadows = 1024;
  r->shadow_timeout_ms = 5000;
  r->nice = 10;
  ynode *m = as_map(ld, cfg_yaml_get(root, "recording"), "recording");
  if (!m)
    return;
  cfg_yaml_check_keys(ld->e, m, "recording", keys, NKEYS(keys));
  ynode *km = as_map(ld, cfg_yaml_get(m, "kafka"), "recording.kafka");
  ynode *fm = as_map(ld, cfg_yaml_get(m, "file"), "recording.file");
  r->sink = km ? CFG_SINK_KAFKA : fm ? CFG_SINK_FILE : CFG_SINK_NONE;
  int sink = (int)r->sink;
  get_enum(ld, m, "recording", "sink", sinks, NKEYS(sinks), &sink);
  r->sink = (enum cfg_sink)sink;
  if (km) {
    const char *kp = "recording.kafka";
    cfg_yaml_check_keys(ld->e, km, kp, kkeys, NKEYS(kkeys));
    need_str(ld, km, kp, "brokers", &r->brokers);
    if (get_str(ld, km, kp, "topic", &r->topic) == 0 && !r->topic[0]) {
      ynode *n = cfg_yaml_get(km, "topic");
      cfg_yaml_errs_add(ld->e, n->line, n->col, "recording.kafka.topic", "must not be empty");
    }
    /* the embedded broker is on loopback and keeps records in memory:
     * compressing them would only cost CPU */
    int ci = r->brokers && !strcmp(r->brokers, "embedded") ? 0 : 3;
    get_enum(ld, km, kp, "compression", compressions, NKEYS(compressions), &ci);
    r->compression = sdup(ld, compressions[ci]);
    get_duration(ld, km, kp, "linger", 0, &r->linger_ms);
    get_u32(ld, km, kp, "queue_max_messages", 1, 10000000, &r->queue_max_messages);
    ynode *pm = as_map(ld, cfg_yaml_get(km, "properties"), "recording.kafka.properties");
    if (pm) {
      r->kafka_props = alloc_array(ld, pm->npairs, sizeof *r->kafka_props);
      if (!r->kafka_props)
        return;
      for (size_t i = 0; i < pm->npairs; i++) {
        ynode *k = pm->pairs[i].key, *v = pm->pairs[i].value;
        const char *s;
        PATH(p, "recording.kafka.properties", k->str);
        if (absent(v)) {
          cfg_yaml_errs_add(ld->e, k->line, k->col, p, "expected a value");
          continue;
        }
        if (cfg_yaml_read_str(ld->e, v, p, &s) != 0)
          continue;
        struct cfg_kv *kv = &r->kafka_props[r->nkafka_props++];
        kv->key = sdup(ld, k->str);
        kv->value = sdup(ld, s);
        kv->secret = v->substituted || cfg_is_secret_name(k->str);
      }
    }
  }
  if (r->sink == CFG_SINK_KAFKA && !km) {
    ynode *n = cfg_yaml_get(m, "sink");
    cfg_yaml_errs_add(ld->e, n->line, n->col, "recording.sink",
                      "sink kafka needs a recording.kafka block with brokers");
  }
  if (fm) {
    cfg_yaml_check_keys(ld->e, fm, "recording.file", fkeys, NKEYS(fkeys));
    get_str(ld, fm, "recording.file", "dir", &r->file_dir);
  }
  ynode *sm = as_map(ld, cfg_yaml_get(m, "spill"), "recording.spill");
  if (sm) {
    cfg_yaml_check_keys(ld->e, sm, "recording.spill", skeys, NKEYS(skeys));
    get_str(ld, sm, "recording.spill", "dir", &r->spill_dir);
    get_size(ld, sm, "recording.spill", "max_size", 0, &r->spill_max_bytes);
    get_size(ld, sm, "recording.spill", "segment_size", 0, &r->spill_segment_bytes);
    if (r->spill_segment_bytes == 0 || r->spill_segment_bytes > r->spill_max_bytes) {
      ynode *n = cfg_yaml_get(sm, "segment_size");
      cfg_yaml_errs_add(ld->e, n ? n->line : sm->line, n ? n->col : sm->col,
                        "recording.spill.segment_size",
                        "must be greater than 0 and at most max_size");
    }
  }
  get_strlist(ld, m, "recording", "lineage_headers", check_token, 1, &r->lineage_headers);
  if (cfg_yaml_get(m, "redact_headers"))
    memset(&r->redact_headers, 0, sizeof r->redact_headers);
  get_strlist(ld, m, "recording", "redact_headers", check_token, 1, &r->redact_headers);
  get_size(ld, m, "recording", "max_body", 1ull << 30, &r->max_body_bytes);
  get_bool(ld, m, "recording", "hash_device_key", &r->hash_device_key);
  get_u32(ld, m, "recording", "max_inflight_shadows", 1, 1000000, &r->max_inflight_shadows);
  get_duration(ld, m, "recording", "shadow_timeout", 1, &r->shadow_timeout_ms);
  get_u32(ld, m, "recording", "nice", 0, 19, &r->nice);
}

/* ---- limits, logging, state ------------------------------------------- */

static void read_h2_floods(struct cfg_ld *ld, ynode *lm, struct cfg_h2_floods *h) {
  static const char *const keys[] = {"max_continuations", "max_header_block", "max_pings",
                                     "max_resets",        "max_settings",     "rate_window",
                                     "zero_window_stall"};
  const char *p = "limits.h2_floods";
  h->max_resets = 200;
  h->max_settings = 50;
  h->max_pings = 100;
  h->rate_window_ms = 10000;
  h->max_continuations = 32;
  h->max_header_block_bytes = 128 << 10;
  h->zero_window_stall_ms = 30000;
  ynode *m = lm ? as_map(ld, cfg_yaml_get(lm, "h2_floods"), p) : NULL;
  if (!m)
    return;
  cfg_yaml_check_keys(ld->e, m, p, keys, NKEYS(keys));
  get_u32(ld, m, p, "max_resets", 1, 1000000, &h->max_resets);
  get_u32(ld, m, p, "max_settings", 1, 1000000, &h->max_settings);
  get_u32(ld, m, p, "max_pings", 1, 1000000, &h->max_pings);
  get_duration(ld, m, p, "rate_window", 1, &h->rate_window_ms);
  get_u32(ld, m, p, "max_continuations", 1, 100000, &h->max_continuations);
  uint32_t hb = h->max_header_block_bytes;
  get_size32(ld, m, p, "max_header_block", &hb);
  ynode *hn = cfg_yaml_get(m, "max_header_block");
  if (hn && hb < 1024)
    cfg_yaml_errs_add(ld->e, hn->line, hn->col, "limits.h2_floods.max_header_block",
                      "must be at least 1KiB");
  else
    h->max_header_block_bytes = hb;
  get_duration(ld, m, p, "zero_window_stall", 1, &h->zero_window_stall_ms);
}

static void read_limits(struct cfg_ld *ld, ynode *root) {
  static const char *const keys[] = {"drain_timeout",   "h2_floods",      "header_timeout",
                                     "idle_timeout",    "max_concurrent_streams",
                                     "max_connections", "max_header_list",
                                     "max_headers",     "max_request_body"};
  struct cfg_limits *l = &ld->c->limits;
  l->max_connections = 10000;
  l->max_concurrent_streams = 100;
  l->max_header_list_bytes = 64 << 10;
  l->max_headers = 100;
  l->max_request_body_bytes = 0;
  l->header_timeout_ms = 10000;
  l->idle_timeout_ms = 60000;
  l->drain_timeout_ms = 30000;
  ynode *m = as_map(ld, cfg_yaml_get(root, "limits"), "limits");
  read_h2_floods(ld, m, &l->h2_floods);
  if (!m)
    return;
  const char *p = "limits";
  cfg_yaml_check_keys(ld->e, m, p, keys, NKEYS(keys));
  get_u32(ld, m, p, "max_connections", 1, 10000000, &l->max_connections);
  get_u32(ld, m, p, "max_concurrent_streams", 1, 100000, &l->max_concurrent_streams);
  get_size32(ld, m, p, "max_header_list", &l->max_header_list_bytes);
  get_u32(ld, m, p, "max_headers", 1, 10000, &l->max_headers);
  get_size(ld, m, p, "max_request_body", 0, &l->max_request_body_bytes);
  get_duration(ld, m, p, "header_timeout", 1, &l->header_timeout_ms);
  get_duration(ld, m, p, "idle_timeout", 1, &l->idle_timeout_ms);
  get_duration(ld, m, p, "drain_timeout", 0, &l->drain_timeout_ms);
}

static void read_logging(struct cfg_ld *ld, ynode *root) {
  static const char *const keys[] = {"access_log", "format", "level"};
  static const char *const levels[] = {"debug", "info", "warn", "error", "off"};
  static const char *const formats[] = {"text", "json"};
  struct cfg_logging *l = &ld->c->logging;
  l->level = sdup(ld, "info");
  l->format = CFG_LOG_TEXT;
  ynode *m = as_map(ld, cfg_yaml_get(root, "logging"), "logging");
  if (!m)
    return;
  cfg_yaml_check_keys(ld->e, m, "logging", keys, NKEYS(keys));
  int lv = 1, f = 0;
  get_enum(ld, m, "logging", "level", levels, NKEYS(levels), &lv);
  l->level = sdup(ld, levels[lv]);
  get_enum(ld, m, "logging", "format", formats, NKEYS(formats), &f);
  l->format = (enum cfg_log_format)f;
  get_str(ld, m, "logging", "access_log", &l->access_log);
}

static char *join_path(struct cfg_ld *ld, const char *dir, const char *file) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s/%s", dir, file);
  return sdup(ld, buf);
}

static void read_state(struct cfg_ld *ld, ynode *root) {
  static const char *const keys[] = {"audit_log", "dial_state_file", "dir"};
  struct cfg_state *s = &ld->c->state;
  s->dir = sdup(ld, "run");
  ynode *m = as_map(ld, cfg_yaml_get(root, "state"), "state");
  if (m) {
    cfg_yaml_check_keys(ld->e, m, "state", keys, NKEYS(keys));
    need_str(ld, m, "state", "dir", &s->dir);
    get_str(ld, m, "state", "dial_state_file", &s->dial_state_file);
    get_str(ld, m, "state", "audit_log", &s->audit_log);
  }
  if (!s->dir)
    s->dir = sdup(ld, "run");
  if (!s->dial_state_file)
    s->dial_state_file = join_path(ld, s->dir, "dials.state.json");
  if (!s->audit_log)
    s->audit_log = join_path(ld, s->dir, "dials.audit.log");
}

static void place_backends(struct cfg *c, void *v, size_t n) {
  c->backends = v;
  c->nbackends = n;
}
static void place_dials(struct cfg *c, void *v, size_t n) {
  c->dials = v;
  c->ndials = n;
}
static void place_experiments(struct cfg *c, void *v, size_t n) {
  c->experiments = v;
  c->nexperiments = n;
}
static void place_allocations(struct cfg *c, void *v, size_t n) {
  c->allocations = v;
  c->nallocations = n;
}

#define NAMED(key, what, type, place, read)                                                  \
  {key, what, sizeof(type), offsetof(type, name), offsetof(type, where), place, read}
static const struct named_section backends_section =
    NAMED("backends", "backend", struct cfg_backend, place_backends, read_backend);
static const struct named_section dials_section =
    NAMED("dials", NULL, struct cfg_dial, place_dials, read_dial);
static const struct named_section experiments_section =
    NAMED("experiments", NULL, struct cfg_experiment, place_experiments, read_experiment);
static const struct named_section allocations_section =
    NAMED("allocations", NULL, struct cfg_allocation, place_allocations, read_allocation);

/* ---- the whole file ---------------------------------------------------- */

void cfg_schema_build(struct cfg_ld *ld, const struct cfg_yaml_node *root) {
  static const char *const keys[] = {
      "admin",   "allocations", "attributes", "backends",          "datacenter", "dials",
      "experiments", "limits",  "listeners",  "logging",           "recording",  "request_id_header",
      "routes",  "state",       "workers"};
  struct cfg *c = ld->c;
  if (root && cfg_yaml_expect_map(ld->e, root, "") != 0)
    root = NULL;
  if (root && root->type != CFG_YAML_MAP)
    root = NULL; /* a bare null document */
  cfg_yaml_check_keys(ld->e, root, "", keys, NKEYS(keys));

  read_workers(ld, root);
  get_str(ld, root, "", "datacenter", &c->datacenter);
  c->request_id_header = sdup(ld, "x-request-id");
  ynode *rid = cfg_yaml_get(root, "request_id_header");
  if (get_str(ld, root, "", "request_id_header", &c->request_id_header) == 0 &&
      check_token(ld, rid, "request_id_header", c->request_id_header) == 0)
    for (char *q = c->request_id_header; *q; q++)
      *q = (char)tolower((unsigned char)*q);
  read_admin(ld, root);
  read_listeners(ld, root);
  read_named(ld, root, &backends_section, NULL);
  if (ld->nomem)
    return;
  struct names nm[4];
  nm[0] = names_of(ld, c->nbackends, backend_name);
  read_named(ld, root, &dials_section, &nm[0]);
  read_named(ld, root, &experiments_section, &nm[0]);
  read_named(ld, root, &allocations_section, &nm[0]);
  read_attributes(ld, root);
  if (ld->nomem)
    return;
  nm[1] = names_of(ld, c->ndials, dial_name);
  nm[2] = names_of(ld, c->nexperiments, experiment_name);
  nm[3] = names_of(ld, c->nallocations, allocation_name);
  read_recording(ld, root);
  read_routes(ld, root, nm);
  read_limits(ld, root);
  read_logging(ld, root);
  read_state(ld, root);
}
