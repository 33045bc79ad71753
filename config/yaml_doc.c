/* yaml_doc: a whole YAML document as a tree of positioned nodes, an error collector,
 * and typed field readers with unknown-key detection. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "common/cut_err.h"
#include "common/sbuf.h"
#include "config/cfg_arena.h"
#include "config/units.h"
#include "config/yaml_doc.h"

/* Deeper nesting than this is no schema of ours; the limit keeps recursive
 * walkers (printers, fuzzers' inputs) safe. */
#define MAX_DEPTH 64

/* ---- errors ------------------------------------------------------------ */

struct err_line {
  int line, col;
  size_t seq;
  char *text;
};

struct cfg_yaml_errs {
  char *file;
  struct err_line *v;
  size_t n, cap;
  size_t total;
};

int cfg_yaml_errs_new(struct cfg_yaml_errs **out, const char *file) {
  struct cfg_yaml_errs *e = calloc(1, sizeof *e);
  if (!e)
    return CUT_ERR_NOMEM;
  e->file = strdup(file ? file : "<config>");
  if (!e->file) {
    free(e);
    return CUT_ERR_NOMEM;
  }
  *out = e;
  return 0;
}

void cfg_yaml_errs_free(struct cfg_yaml_errs *e) {
  if (!e)
    return;
  for (size_t i = 0; i < e->n; i++)
    free(e->v[i].text);
  free(e->v);
  free(e->file);
  free(e);
}

const char *cfg_yaml_errs_file(const struct cfg_yaml_errs *e) { return e->file; }

size_t cfg_yaml_errs_count(const struct cfg_yaml_errs *e) { return e ? e->total : 0; }

void cfg_yaml_errs_vadd(struct cfg_yaml_errs *e, int line, int col, const char *path,
                        const char *fmt, va_list ap) {
  if (!e)
    return;
  e->total++;
  if (e->n >= CFG_YAML_MAX_ERRORS)
    return;
  if (e->n == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 8;
    struct err_line *v = realloc(e->v, cap * sizeof *v);
    if (!v)
      return;
    e->v = v;
    e->cap = cap;
  }
  char msg[512], pos[32] = "";
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (line > 0)
    snprintf(pos, sizeof pos, ":%d:%d", line, col);
  int has_path = path && *path;
  size_t need = strlen(e->file) + strlen(pos) + (has_path ? strlen(path) + 2 : 0) + strlen(msg) + 3;
  char *text = malloc(need);
  if (!text)
    return;
  snprintf(text, need, "%s%s: %s%s%s", e->file, pos, has_path ? path : "", has_path ? ": " : "",
           msg);
  /* One error, one line: control characters from odd keys or values would
   * break that (and could fake extra error lines in a terminal). */
  for (char *q = text; *q; q++)
    if ((unsigned char)*q < 0x20 || *q == 0x7f)
      *q = '?';
  e->v[e->n].line = line;
  e->v[e->n].col = col;
  e->v[e->n].seq = e->total;
  e->v[e->n].text = text;
  e->n++;
}

void cfg_yaml_errs_add(struct cfg_yaml_errs *e, int line, int col, const char *path,
                       const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cfg_yaml_errs_vadd(e, line, col, path, fmt, ap);
  va_end(ap);
}

static int cmp_err(const void *a, const void *b) {
  const struct err_line *x = a, *y = b;
  if (x->line != y->line)
    return x->line < y->line ? -1 : 1;
  if (x->col != y->col)
    return x->col < y->col ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

char *cfg_yaml_errs_text(const struct cfg_yaml_errs *e) {
  if (!e || e->total == 0)
    return NULL;
  struct err_line *v = malloc((e->n ? e->n : 1) * sizeof *v);
  if (!v)
    return NULL;
  memcpy(v, e->v, e->n * sizeof *v);
  qsort(v, e->n, sizeof *v, cmp_err);
  size_t len = 1;
  for (size_t i = 0; i < e->n; i++)
    len += strlen(v[i].text) + 1;
  char more[300] = "";
  if (e->total > e->n)
    snprintf(more, sizeof more, "%s: %zu more errors not shown\n", e->file, e->total - e->n);
  len += strlen(more);
  char *out = malloc(len), *p = out;
  if (out) {
    for (size_t i = 0; i < e->n; i++) {
      size_t l = strlen(v[i].text);
      memcpy(p, v[i].text, l);
      p += l;
      *p++ = '\n';
    }
    strcpy(p, more);
  }
  free(v);
  return out;
}

/* ---- parsing ----------------------------------------------------------- */

struct cfg_yaml_doc {
  struct cfg_arena *arena;
  struct cfg_yaml_node *root;
};

/* A mapping or sequence under construction: its children grow in a heap vector
 * and move into the arena when the collection ends. */
struct frame {
  struct cfg_yaml_node *node;
  struct cfg_yaml_node **kids;
  size_t n, cap;
};

struct builder {
  struct cfg_arena *arena;
  struct cfg_yaml_errs *errs;
  int flags;
  int failed;   /* a recoverable error was reported (alias, duplicate, substitution);
                 * the tree is still returned */
  int nomem;
  struct frame stack[MAX_DEPTH];
  size_t depth;
  struct cfg_yaml_node *root;
};

static struct cfg_yaml_node *new_node(struct builder *b, enum cfg_yaml_type t, yaml_mark_t m) {
  struct cfg_yaml_node *n = cfg_arena_alloc(b->arena, sizeof *n);
  if (!n) {
    b->nomem = 1;
    return NULL;
  }
  n->type = t;
  n->line = (int)m.line + 1;
  n->col = (int)m.column + 1;
  return n;
}

static int push_child(struct builder *b, struct cfg_yaml_node *n) {
  if (b->depth == 0) {
    b->root = n;
    return 0;
  }
  struct frame *f = &b->stack[b->depth - 1];
  if (f->node->type == CFG_YAML_MAP && f->n % 2 == 0 && n->type != CFG_YAML_SCALAR) {
    cfg_yaml_errs_add(b->errs, n->line, n->col, NULL, "mapping keys must be plain scalars");
    b->failed = 1;
  }
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 8;
    struct cfg_yaml_node **k = realloc(f->kids, cap * sizeof *k);
    if (!k) {
      b->nomem = 1;
      return CUT_ERR_NOMEM;
    }
    f->kids = k;
    f->cap = cap;
  }
  f->kids[f->n++] = n;
  return 0;
}

static int cmp_pair_key(const void *a, const void *b) {
  const struct cfg_yaml_pair *x = *(const struct cfg_yaml_pair *const *)a;
  const struct cfg_yaml_pair *y = *(const struct cfg_yaml_pair *const *)b;
  int c = strcmp(x->key->str ? x->key->str : "", y->key->str ? y->key->str : "");
  if (c)
    return c;
  if (x->key->line != y->key->line)
    return x->key->line < y->key->line ? -1 : 1;
  return x->key->col < y->key->col ? -1 : x->key->col > y->key->col;
}

/* Duplicate keys are found by sorting pointers, so a huge map costs n log n. */
static void check_duplicates(struct builder *b, struct cfg_yaml_node *map) {
  if (map->npairs < 2)
    return;
  struct cfg_yaml_pair **v = malloc(map->npairs * sizeof *v);
  if (!v) {
    b->nomem = 1;
    return;
  }
  for (size_t i = 0; i < map->npairs; i++)
    v[i] = &map->pairs[i];
  qsort(v, map->npairs, sizeof *v, cmp_pair_key);
  for (size_t i = 1; i < map->npairs; i++) {
    if (v[i]->key->type != CFG_YAML_SCALAR || v[i - 1]->key->type != CFG_YAML_SCALAR)
      continue;
    if (strcmp(v[i]->key->str, v[i - 1]->key->str))
      continue;
    cfg_yaml_errs_add(b->errs, v[i]->key->line, v[i]->key->col, NULL,
                      "duplicate key \"%s\" (first given at line %d)", v[i]->key->str,
                      v[i - 1]->key->line);
    b->failed = 1;
  }
  free(v);
}

static int end_collection(struct builder *b) {
  struct frame *f = &b->stack[--b->depth];
  struct cfg_yaml_node *n = f->node;
  if (n->type == CFG_YAML_MAP) {
    n->npairs = f->n / 2;
    n->pairs = cfg_arena_calloc(b->arena, n->npairs ? n->npairs : 1, sizeof *n->pairs);
    if (!n->pairs)
      goto nomem;
    size_t k = 0;
    for (size_t i = 0; i < f->n / 2; i++) {
      /* A pair with a non-scalar key was reported in push_child; dropping
       * it here lets every consumer rely on keys being strings. */
      if (f->kids[2 * i]->type != CFG_YAML_SCALAR)
        continue;
      n->pairs[k].key = f->kids[2 * i];
      n->pairs[k].value = f->kids[2 * i + 1];
      k++;
    }
    n->npairs = k;
    check_duplicates(b, n);
  } else {
    n->nitems = f->n;
    n->items = cfg_arena_calloc(b->arena, n->nitems ? n->nitems : 1, sizeof *n->items);
    if (!n->items)
      goto nomem;
    if (f->n)
      memcpy(n->items, f->kids, f->n * sizeof *n->items);
  }
  free(f->kids);
  f->kids = NULL;
  return push_child(b, n);
nomem:
  free(f->kids);
  f->kids = NULL;
  b->nomem = 1;
  return CUT_ERR_NOMEM;
}

static int valid_var_name(const char *p, size_t n) {
  if (n == 0 || isdigit((unsigned char)p[0]))
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)p[i]) && p[i] != '_')
      return 0;
  return 1;
}

/* Rewrites ${VAR} and ${VAR:-default} in node->str; errors at the node's position. */
static void substitute(struct builder *b, struct cfg_yaml_node *node) {
  const char *s = node->str;
  if (!memchr(s, '$', node->len))
    return;
  struct sbuf out = {0};
  size_t i = 0;
  int changed = 0, bad = 0;
  while (i < node->len) {
    if (s[i] == '$' && i + 2 < node->len && s[i + 1] == '$' && s[i + 2] == '{') {
      sb_put(&out, "${", 2);
      i += 3;
      changed = 1;
      continue;
    }
    if (s[i] != '$' || i + 1 >= node->len || s[i + 1] != '{') {
      sb_put(&out, s + i, 1);
      i++;
      continue;
    }
    const char *start = s + i + 2;
    const char *close = memchr(start, '}', node->len - (i + 2));
    if (!close) {
      cfg_yaml_errs_add(b->errs, node->line, node->col, NULL,
                        "unterminated \"${\" in \"%s\" (write $${ for a literal ${)", s);
      bad = 1;
      break;
    }
    size_t inner = (size_t)(close - start);
    const char *dflt = NULL;
    size_t namelen = inner, dlen = 0;
    for (size_t k = 0; k + 1 < inner; k++) {
      if (start[k] == ':' && start[k + 1] == '-') {
        namelen = k;
        dflt = start + k + 2;
        dlen = inner - k - 2;
        break;
      }
    }
    char name[128];
    if (!valid_var_name(start, namelen) || namelen >= sizeof name) {
      cfg_yaml_errs_add(b->errs, node->line, node->col, NULL,
                        "bad variable reference \"${%.*s}\" (use ${NAME} or ${NAME:-default})",
                        (int)(inner > 100 ? 100 : inner), start);
      bad = 1;
      break;
    }
    memcpy(name, start, namelen);
    name[namelen] = '\0';
    const char *val = getenv(name);
    if (val && *val) {
      sb_put(&out, val, strlen(val));
    } else if (dflt) {
      sb_put(&out, dflt, dlen);
    } else if (val) {
      /* set but empty: substitute the empty string */
    } else {
      cfg_yaml_errs_add(b->errs, node->line, node->col, NULL,
                        "environment variable %s is not set (give a default with ${%s:-VALUE})",
                        name, name);
      bad = 1;
    }
    changed = 1;
    i = (size_t)(close - s) + 1;
  }
  if (out.oom) {
    b->nomem = 1;
  } else if (bad) {
    b->failed = 1;
    node->invalid = 1;
  } else if (changed) {
    char *p = cfg_arena_strndup(b->arena, out.p ? out.p : "", out.len);
    if (!p) {
      b->nomem = 1;
    } else {
      node->str = p;
      node->len = out.len;
      node->substituted = 1;
      node->is_null = 0;
    }
  }
  sb_clear(&out);
}

static int is_null_plain(const char *s) {
  return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
         !strcmp(s, "NULL");
}

static int on_event(struct builder *b, yaml_event_t *ev) {
  struct cfg_yaml_node *n;
  switch (ev->type) {
  case YAML_SCALAR_EVENT: {
    n = new_node(b, CFG_YAML_SCALAR, ev->start_mark);
    if (!n)
      return CUT_ERR_NOMEM;
    n->len = ev->data.scalar.length;
    n->str = cfg_arena_strndup(b->arena, (const char *)ev->data.scalar.value, n->len);
    if (!n->str) {
      b->nomem = 1;
      return CUT_ERR_NOMEM;
    }
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    n->is_null = !n->quoted && is_null_plain(n->str);
    int is_key = b->depth > 0 && b->stack[b->depth - 1].node->type == CFG_YAML_MAP &&
                 b->stack[b->depth - 1].n % 2 == 0;
    if ((b->flags & CFG_YAML_SUBST_ENV) && !is_key)
      substitute(b, n);
    return push_child(b, n);
  }
  case YAML_ALIAS_EVENT:
    cfg_yaml_errs_add(b->errs, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                      NULL, "aliases (*%s) are not supported; repeat the value instead",
                      (const char *)ev->data.alias.anchor);
    b->failed = 1;
    n = new_node(b, CFG_YAML_SCALAR, ev->start_mark);
    if (!n || !(n->str = cfg_arena_strdup(b->arena, ""))) {
      b->nomem = 1;
      return CUT_ERR_NOMEM;
    }
    n->invalid = 1;
    return push_child(b, n);
  case YAML_MAPPING_START_EVENT:
  case YAML_SEQUENCE_START_EVENT:
    if (b->depth >= MAX_DEPTH) {
      cfg_yaml_errs_add(b->errs, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                        NULL, "nesting deeper than %d levels", MAX_DEPTH);
      return CUT_ERR_PARSE;
    }
    n = new_node(b, ev->type == YAML_MAPPING_START_EVENT ? CFG_YAML_MAP : CFG_YAML_SEQ,
                 ev->start_mark);
    if (!n)
      return CUT_ERR_NOMEM;
    b->stack[b->depth].node = n;
    b->stack[b->depth].kids = NULL;
    b->stack[b->depth].n = b->stack[b->depth].cap = 0;
    b->depth++;
    return 0;
  case YAML_MAPPING_END_EVENT:
  case YAML_SEQUENCE_END_EVENT:
    return b->depth ? end_collection(b) : CUT_ERR_PARSE;
  default:
    return 0;
  }
}

int cfg_yaml_parse(struct cfg_yaml_doc **out, const char *data, size_t len, int flags,
                   struct cfg_yaml_errs *errs) {
  struct builder b = {0};
  b.errs = errs;
  b.flags = flags;
  if (cfg_arena_new(&b.arena))
    return CUT_ERR_NOMEM;
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    cfg_arena_free(b.arena);
    return CUT_ERR_NOMEM;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
  int rc = 0, docs = 0, done = 0;
  while (!done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      if (parser.error == YAML_MEMORY_ERROR) {
        rc = CUT_ERR_NOMEM;
      } else {
        yaml_mark_t m = parser.problem_mark;
        if (parser.context)
          cfg_yaml_errs_add(errs, (int)m.line + 1, (int)m.column + 1, NULL, "YAML syntax: %s %s",
                            parser.problem ? parser.problem : "error", parser.context);
        else
          cfg_yaml_errs_add(errs, (int)m.line + 1, (int)m.column + 1, NULL, "YAML syntax: %s",
                            parser.problem ? parser.problem : "error");
        rc = CUT_ERR_PARSE;
      }
      break;
    }
    if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
      cfg_yaml_errs_add(errs, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, NULL,
                        "only one YAML document is allowed in a file");
      rc = CUT_ERR_PARSE;
    } else if (ev.type == YAML_STREAM_END_EVENT) {
      done = 1;
    } else {
      rc = on_event(&b, &ev);
    }
    yaml_event_delete(&ev);
    if (b.nomem)
      rc = CUT_ERR_NOMEM;
    if (rc)
      break;
  }
  yaml_parser_delete(&parser);
  for (size_t i = 0; i < b.depth; i++)
    free(b.stack[i].kids);
  /* Recoverable problems (b.failed) keep the tree, so schema checks can
   * still report everything else in the same run. */
  if (rc) {
    cfg_arena_free(b.arena);
    return rc;
  }
  struct cfg_yaml_doc *d = cfg_arena_alloc(b.arena, sizeof *d);
  if (!d) {
    cfg_arena_free(b.arena);
    return CUT_ERR_NOMEM;
  }
  d->arena = b.arena;
  d->root = b.root;
  *out = d;
  return 0;
}

int cfg_yaml_read_file(const char *path, char **data, size_t *len, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot open: %s", strerror(errno));
  struct stat st;
  int rc = 0;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
    rc = cut_errf(err, errlen, CUT_ERR_IO, "not a regular file");
  else if ((uint64_t)st.st_size > CFG_YAML_MAX_FILE)
    rc = cut_errf(err, errlen, CUT_ERR_IO, "file is larger than %u bytes", CFG_YAML_MAX_FILE);
  if (rc) {
    fclose(f);
    return rc;
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n + 1);
  if (!buf) {
    fclose(f);
    return CUT_ERR_NOMEM;
  }
  size_t got = fread(buf, 1, n, f);
  int bad = ferror(f) || got != n;
  fclose(f);
  if (bad) {
    free(buf);
    return cut_errf(err, errlen, CUT_ERR_IO, "read error");
  }
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return 0;
}

int cfg_yaml_parse_file(struct cfg_yaml_doc **out, const char *path, int flags,
                        struct cfg_yaml_errs *errs) {
  char *buf, err[300];
  size_t len;
  int rc = cfg_yaml_read_file(path, &buf, &len, err, sizeof err);
  if (rc == CUT_ERR_IO)
    cfg_yaml_errs_add(errs, 0, 0, NULL, "%s", err);
  if (rc)
    return rc;
  rc = cfg_yaml_parse(out, buf, len, flags, errs);
  free(buf);
  return rc;
}

void cfg_yaml_doc_free(struct cfg_yaml_doc *d) {
  if (d)
    cfg_arena_free(d->arena); /* d itself lives in the arena */
}

const struct cfg_yaml_node *cfg_yaml_root(const struct cfg_yaml_doc *d) {
  return d ? d->root : NULL;
}

const struct cfg_yaml_pair *cfg_yaml_get_pair(const struct cfg_yaml_node *map, const char *key) {
  if (!map || map->type != CFG_YAML_MAP)
    return NULL;
  for (size_t i = 0; i < map->npairs; i++)
    if (map->pairs[i].key->type == CFG_YAML_SCALAR && !strcmp(map->pairs[i].key->str, key))
      return &map->pairs[i];
  return NULL;
}

const struct cfg_yaml_node *cfg_yaml_get(const struct cfg_yaml_node *map, const char *key) {
  const struct cfg_yaml_pair *p = cfg_yaml_get_pair(map, key);
  return p ? p->value : NULL;
}

const char *cfg_yaml_type_name(const struct cfg_yaml_node *n) {
  if (!n)
    return "nothing";
  switch (n->type) {
  case CFG_YAML_MAP: return "a map";
  case CFG_YAML_SEQ: return "a list";
  default: return n->is_null ? "null" : "a scalar";
  }
}

/* ---- suggestions ------------------------------------------------------- */

size_t cfg_yaml_edit_distance(const char *a, const char *b) {
  /* Optimal string alignment: Levenshtein plus adjacent transpositions, the
   * most common typo ("dail" for "dial"). */
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) /* names are short; bound the work for odd input */
    return la > lb ? la : lb;
  unsigned char d[65][65];
  for (size_t i = 0; i <= la; i++)
    d[i][0] = (unsigned char)i;
  for (size_t j = 0; j <= lb; j++)
    d[0][j] = (unsigned char)j;
  for (size_t i = 1; i <= la; i++) {
    for (size_t j = 1; j <= lb; j++) {
      unsigned best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1u < best)
        best = d[i - 1][j] + 1u;
      if (d[i][j - 1] + 1u < best)
        best = d[i][j - 1] + 1u;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1u < best)
        best = d[i - 2][j - 2] + 1u;
      d[i][j] = (unsigned char)best;
    }
  }
  return d[la][lb];
}

const char *cfg_yaml_suggest(const char *word, const char *const *candidates, size_t n) {
  if (!word)
    return NULL;
  size_t wl = strlen(word);
  size_t limit = wl >= 9 ? 3 : wl >= 5 ? 2 : 1;
  const char *best = NULL;
  size_t bestd = (size_t)-1;
  for (size_t i = 0; i < n; i++) {
    if (!candidates[i])
      continue;
    size_t d = cfg_yaml_edit_distance(word, candidates[i]);
    if (d < bestd) {
      bestd = d;
      best = candidates[i];
    }
  }
  if (!best || bestd > limit || bestd >= wl)
    return NULL;
  return best;
}

/* ---- typed readers ----------------------------------------------------- */

const char *cfg_yaml_path_key(char *buf, size_t buflen, const char *parent, const char *key) {
  if (parent && *parent)
    snprintf(buf, buflen, "%s.%s", parent, key);
  else
    snprintf(buf, buflen, "%s", key);
  return buf;
}

const char *cfg_yaml_path_index(char *buf, size_t buflen, const char *parent, size_t i) {
  snprintf(buf, buflen, "%s[%zu]", parent ? parent : "", i);
  return buf;
}

size_t cfg_yaml_check_keys(struct cfg_yaml_errs *e, const struct cfg_yaml_node *map,
                           const char *path, const char *const *keys, size_t n) {
  if (!map || map->type != CFG_YAML_MAP)
    return 0;
  size_t unknown = 0;
  for (size_t i = 0; i < map->npairs; i++) {
    const struct cfg_yaml_node *k = map->pairs[i].key;
    if (k->type != CFG_YAML_SCALAR)
      continue;
    size_t j;
    for (j = 0; j < n; j++)
      if (!strcmp(k->str, keys[j]))
        break;
    if (j < n)
      continue;
    unknown++;
    char p[CFG_YAML_PATH_MAX];
    cfg_yaml_path_key(p, sizeof p, path, k->str);
    const char *s = cfg_yaml_suggest(k->str, keys, n);
    if (s)
      cfg_yaml_errs_add(e, k->line, k->col, p, "unknown key \"%s\" (did you mean \"%s\"?)", k->str,
                        s);
    else
      cfg_yaml_errs_add(e, k->line, k->col, p, "unknown key \"%s\"", k->str);
  }
  return unknown;
}

static int absent(const struct cfg_yaml_node *n) {
  return !n || (n->type == CFG_YAML_SCALAR && n->is_null);
}

static int expect_type(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                       enum cfg_yaml_type t, const char *want) {
  if (n && n->invalid)
    return CUT_ERR_INVALID; /* already reported */
  if (absent(n))
    return 1;
  if (n->type == t)
    return 0;
  cfg_yaml_errs_add(e, n->line, n->col, path, "expected %s, got %s", want, cfg_yaml_type_name(n));
  return CUT_ERR_INVALID;
}

int cfg_yaml_expect_map(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path) {
  return expect_type(e, n, path, CFG_YAML_MAP, "a map");
}

int cfg_yaml_expect_seq(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path) {
  return expect_type(e, n, path, CFG_YAML_SEQ, "a list");
}

int cfg_yaml_read_str(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                      const char **out) {
  int rc = expect_type(e, n, path, CFG_YAML_SCALAR, "a string");
  if (rc)
    return rc;
  if (strlen(n->str) != n->len) {
    cfg_yaml_errs_add(e, n->line, n->col, path, "string contains a NUL character");
    return CUT_ERR_INVALID;
  }
  *out = n->str;
  return 0;
}

int cfg_yaml_read_bool(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                       int *out) {
  static const char *const t[] = {"true", "yes", "on"}, *const f[] = {"false", "no", "off"};
  int rc = expect_type(e, n, path, CFG_YAML_SCALAR, "true or false");
  if (rc)
    return rc;
  for (size_t i = 0; i < 3; i++) {
    if (!strcasecmp(n->str, t[i])) {
      *out = 1;
      return 0;
    }
    if (!strcasecmp(n->str, f[i])) {
      *out = 0;
      return 0;
    }
  }
  cfg_yaml_errs_add(e, n->line, n->col, path, "expected true or false, got \"%s\"", n->str);
  return CUT_ERR_INVALID;
}

int cfg_yaml_read_u64(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                      uint64_t min, uint64_t max, uint64_t *out) {
  int rc = expect_type(e, n, path, CFG_YAML_SCALAR, "a whole number");
  if (rc)
    return rc;
  const char *s = n->str;
  uint64_t v = 0;
  int overflow = 0;
  if (!*s)
    goto bad;
  for (const char *p = s; *p; p++) {
    if (!isdigit((unsigned char)*p))
      goto bad;
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      overflow = 1;
    else
      v = v * 10 + d;
  }
  if (overflow || v < min || v > max) {
    cfg_yaml_errs_add(e, n->line, n->col, path, "%s is out of range (%llu-%llu)", s,
                      (unsigned long long)min, (unsigned long long)max);
    return CUT_ERR_RANGE;
  }
  *out = v;
  return 0;
bad:
  cfg_yaml_errs_add(e, n->line, n->col, path, "expected a whole number, got \"%s\"", s);
  return CUT_ERR_INVALID;
}

int cfg_yaml_read_u32(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                      uint32_t min, uint32_t max, uint32_t *out) {
  uint64_t v;
  int rc = cfg_yaml_read_u64(e, n, path, min, max, &v);
  if (rc == 0)
    *out = (uint32_t)v;
  return rc;
}

int cfg_yaml_read_double(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                         double min, double max, double *out) {
  int rc = expect_type(e, n, path, CFG_YAML_SCALAR, "a number");
  if (rc)
    return rc;
  const char *s = n->str;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  int ok = *s && !isspace((unsigned char)*s) && !*end && errno == 0;
  for (const char *p = s; ok && *p; p++) /* no hex, inf or nan */
    if (!isdigit((unsigned char)*p) && !strchr(".-+eE", *p))
      ok = 0;
  if (!ok) {
    cfg_yaml_errs_add(e, n->line, n->col, path, "expected a number, got \"%s\"", s);
    return CUT_ERR_INVALID;
  }
  if (!(v >= min && v <= max)) {
    cfg_yaml_errs_add(e, n->line, n->col, path, "%s is out of range (%g-%g)", s, min, max);
    return CUT_ERR_RANGE;
  }
  *out = v;
  return 0;
}

int cfg_yaml_read_enum(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                       const char *const *words, size_t nwords, int *out) {
  int rc = expect_type(e, n, path, CFG_YAML_SCALAR, "a word");
  if (rc)
    return rc;
  for (size_t i = 0; i < nwords; i++) {
    if (!strcmp(n->str, words[i])) {
      *out = (int)i;
      return 0;
    }
  }
  char list[256] = "";
  size_t used = 0;
  for (size_t i = 0; i < nwords && used < sizeof list; i++) {
    int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", words[i]);
    if (w > 0)
      used += (size_t)w;
  }
  const char *s = cfg_yaml_suggest(n->str, words, nwords);
  if (s)
    cfg_yaml_errs_add(e, n->line, n->col, path, "unknown value \"%s\" (did you mean \"%s\"?)",
                      n->str, s);
  else
    cfg_yaml_errs_add(e, n->line, n->col, path, "unknown value \"%s\" (use one of: %s)", n->str,
                      list);
  return CUT_ERR_INVALID;
}

static int read_unit(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                     const char *what, int (*parse)(const char *, void *, char *, size_t),
                     void *out) {
  int rc = expect_type(e, n, path, CFG_YAML_SCALAR, what);
  if (rc)
    return rc;
  char err[256];
  rc = parse(n->str, out, err, sizeof err);
  if (rc == CUT_ERR_NOMEM)
    return rc;
  if (rc) {
    cfg_yaml_errs_add(e, n->line, n->col, path, "%s", err);
    return rc;
  }
  return 0;
}

static int parse_duration_v(const char *s, void *out, char *err, size_t errlen) {
  return cfg_parse_duration(s, out, err, errlen);
}
static int parse_size_v(const char *s, void *out, char *err, size_t errlen) {
  return cfg_parse_size(s, out, err, errlen);
}
static int parse_percent_v(const char *s, void *out, char *err, size_t errlen) {
  return cfg_parse_percent(s, out, err, errlen);
}

int cfg_yaml_read_duration(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n,
                           const char *path, uint64_t *ms) {
  return read_unit(e, n, path, "a duration", parse_duration_v, ms);
}

int cfg_yaml_read_size(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n, const char *path,
                       uint64_t *bytes) {
  return read_unit(e, n, path, "a size", parse_size_v, bytes);
}

int cfg_yaml_read_percent(struct cfg_yaml_errs *e, const struct cfg_yaml_node *n,
                          const char *path, uint32_t *ppm) {
  return read_unit(e, n, path, "a percentage", parse_percent_v, ppm);
}
