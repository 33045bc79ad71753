/* an_out: write mismatches (JSON lines, Avro container) and split candidates by noise. */
#include "analyzer/an_out.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "common/cut_err.h"

/* Keep in sync with analyzer/schemas/mismatch.avsc (a unit test compares them). */
static const char mismatch_schema[] =
    "{\"type\":\"record\",\"name\":\"Mismatch\",\"namespace\":\"io.cutover.analyzer\",\"fields\":["
    "{\"name\":\"correlation_id\",\"type\":\"string\"},"
    "{\"name\":\"route\",\"type\":\"string\"},"
    "{\"name\":\"time_us\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}},"
    "{\"name\":\"primary_status\",\"type\":\"int\"},"
    "{\"name\":\"shadow_status\",\"type\":\"int\"},"
    "{\"name\":\"primary_body\",\"type\":\"bytes\"},"
    "{\"name\":\"shadow_body\",\"type\":\"bytes\"},"
    "{\"name\":\"primary_normalized\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"shadow_normalized\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"fields\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"diff\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\","
    "\"name\":\"Difference\",\"fields\":["
    "{\"name\":\"path\",\"type\":\"string\"},"
    "{\"name\":\"kind\",\"type\":{\"type\":\"enum\",\"name\":\"DiffKind\","
    "\"symbols\":[\"CHANGED\",\"MISSING\",\"ADDED\"]}},"
    "{\"name\":\"primary\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"shadow\",\"type\":[\"null\",\"string\"],\"default\":null}]}}}]}";

const char *an_out_mismatch_schema(void) { return mismatch_schema; }

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64(const unsigned char *p, size_t n) {
  char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
  if (out == NULL) return NULL;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                 (i + 2 < n ? p[i + 2] : 0);
    *o++ = b64[(v >> 18) & 63];
    *o++ = b64[(v >> 12) & 63];
    *o++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
    *o++ = i + 2 < n ? b64[v & 63] : '=';
  }
  *o = '\0';
  return out;
}

static unsigned char *unbase64(const char *s, size_t *len) {
  size_t n = strlen(s);
  unsigned char *out = malloc(n / 4 * 3 + 3);
  if (out == NULL) return NULL;
  size_t o = 0;
  unsigned v = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    const char *c = strchr(b64, s[i]);
    if (s[i] == '=' || c == NULL) continue;
    v = (v << 6) | (unsigned)(c - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)((v >> bits) & 0xff);
    }
  }
  *len = o;
  return out;
}

static json_t *side_json(const struct an_side *s, json_t *normalized) {
  json_t *o = json_object();
  if (o == NULL) return NULL;
  json_object_set_new(o, "status", json_integer(s->status));
  if (s->error) json_object_set_new(o, "error", json_string(s->error));
  json_t *body = json_stringn((const char *)s->body, s->body_len);
  if (body != NULL) {
    json_object_set_new(o, "body", body);
  } else {
    char *enc = base64(s->body, s->body_len);
    json_object_set_new(o, "body_base64", enc ? json_string(enc) : json_null());
    free(enc);
  }
  json_object_set(o, "normalized", normalized ? normalized : json_null());
  return o;
}

json_t *an_out_mismatch_json(const struct an_pair_view *pv, const struct an_result *res) {
  json_t *fields = json_array(), *diff = an_diff_to_json(&res->diff);
  if (fields == NULL || diff == NULL) {
    json_decref(fields);
    json_decref(diff);
    return NULL;
  }
  for (size_t i = 0; i < res->diff.n; i++) {
    int dup = 0;
    for (size_t k = 0; k < i && !dup; k++) dup = strcmp(res->diff.v[k].field, res->diff.v[i].field) == 0;
    if (!dup) json_array_append_new(fields, json_string(res->diff.v[i].field));
  }
  return json_pack("{s:s, s:s, s:I, s:s?, s:s?, s:o, s:o, s:o, s:o}", "correlation_id",
                   pv->correlation_id ? pv->correlation_id : "", "route",
                   pv->route ? pv->route : "", "time_us", (json_int_t)pv->time_us, "method",
                   pv->method, "path", pv->path, "fields", fields, "diff", diff, "primary",
                   side_json(&pv->primary, res->norm_primary), "shadow",
                   side_json(&pv->shadow, res->norm_shadow));
}

int an_out_write_line(FILE *f, json_t *line) {
  if (json_dumpf(line, f, JSON_COMPACT | JSON_ENSURE_ASCII) != 0 || fputc('\n', f) == EOF)
    return CUT_ERR_IO;
  return 0;
}

/* ---- Avro ---- */

struct avro_out {
  avro_schema_t schema;
  avro_value_iface_t *iface;
  avro_value_t value;
  avro_file_writer_t writer;
  int has_value, has_writer;
};

static void avro_out_close(struct avro_out *a) {
  if (a->has_writer) avro_file_writer_close(a->writer);
  if (a->has_value) avro_value_decref(&a->value);
  if (a->iface) avro_value_iface_decref(a->iface);
  if (a->schema) avro_schema_decref(a->schema);
  memset(a, 0, sizeof *a);
}

static int avro_out_open(struct avro_out *a, const char *path, char *err, size_t errlen) {
  memset(a, 0, sizeof *a);
  if (avro_schema_from_json_length(mismatch_schema, sizeof mismatch_schema - 1, &a->schema) != 0)
    return cut_errf(err, errlen, CUT_ERR_AVRO, "mismatch schema: %s", avro_strerror());
  a->iface = avro_generic_class_from_schema(a->schema);
  if (a->iface == NULL || avro_generic_value_new(a->iface, &a->value) != 0) {
    avro_out_close(a);
    return cut_errf(err, errlen, CUT_ERR_AVRO, "mismatch value: %s", avro_strerror());
  }
  a->has_value = 1;
  remove(path);
  if (avro_file_writer_create_with_codec(path, a->schema, &a->writer, "deflate", 0) != 0) {
    avro_out_close(a);
    return cut_errf(err, errlen, CUT_ERR_AVRO, "%s: %s", path, avro_strerror());
  }
  a->has_writer = 1;
  return 0;
}

static int set_str(avro_value_t *rec, const char *name, const char *s) {
  avro_value_t f;
  if (avro_value_get_by_name(rec, name, &f, NULL) != 0) return -1;
  return avro_value_set_string(&f, s ? s : "");
}

static int set_opt_json(avro_value_t *rec, const char *name, json_t *v) {
  avro_value_t f, br;
  if (avro_value_get_by_name(rec, name, &f, NULL) != 0) return -1;
  if (v == NULL || json_is_null(v)) {
    if (avro_value_set_branch(&f, 0, &br) != 0) return -1;
    return avro_value_set_null(&br);
  }
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (text == NULL) return -1;
  int rc = avro_value_set_branch(&f, 1, &br);
  if (rc == 0) rc = avro_value_set_string(&br, text);
  free(text);
  return rc;
}

static int set_body(avro_value_t *rec, const char *name, json_t *side) {
  avro_value_t f;
  if (avro_value_get_by_name(rec, name, &f, NULL) != 0) return -1;
  json_t *b = json_object_get(side, "body");
  if (json_is_string(b))
    return avro_value_set_bytes(&f, (void *)json_string_value(b), json_string_length(b));
  const char *enc = json_string_value(json_object_get(side, "body_base64"));
  size_t len = 0;
  unsigned char *raw = unbase64(enc ? enc : "", &len);
  if (raw == NULL) return -1;
  int rc = avro_value_set_bytes(&f, raw, len);
  free(raw);
  return rc;
}

static int avro_out_append(struct avro_out *a, json_t *m) {
  avro_value_t *v = &a->value, f, el;
  json_t *p = json_object_get(m, "primary"), *s = json_object_get(m, "shadow");
  avro_value_reset(v);
  int rc = 0;
  rc |= set_str(v, "correlation_id", json_string_value(json_object_get(m, "correlation_id")));
  rc |= set_str(v, "route", json_string_value(json_object_get(m, "route")));
  rc |= avro_value_get_by_name(v, "time_us", &f, NULL) ||
        avro_value_set_long(&f, json_integer_value(json_object_get(m, "time_us")));
  rc |= avro_value_get_by_name(v, "primary_status", &f, NULL) ||
        avro_value_set_int(&f, (int32_t)json_integer_value(json_object_get(p, "status")));
  rc |= avro_value_get_by_name(v, "shadow_status", &f, NULL) ||
        avro_value_set_int(&f, (int32_t)json_integer_value(json_object_get(s, "status")));
  rc |= set_body(v, "primary_body", p);
  rc |= set_body(v, "shadow_body", s);
  rc |= set_opt_json(v, "primary_normalized", json_object_get(p, "normalized"));
  rc |= set_opt_json(v, "shadow_normalized", json_object_get(s, "normalized"));
  if (rc != 0) return CUT_ERR_AVRO;
  size_t i;
  json_t *x;
  if (avro_value_get_by_name(v, "fields", &f, NULL) != 0) return CUT_ERR_AVRO;
  json_array_foreach(json_object_get(m, "fields"), i, x) {
    if (avro_value_append(&f, &el, NULL) != 0 || avro_value_set_string(&el, json_string_value(x)) != 0)
      return CUT_ERR_AVRO;
  }
  if (avro_value_get_by_name(v, "diff", &f, NULL) != 0) return CUT_ERR_AVRO;
  json_array_foreach(json_object_get(m, "diff"), i, x) {
    avro_value_t k;
    const char *kind = json_string_value(json_object_get(x, "kind"));
    int ki = kind && strcmp(kind, "missing") == 0 ? 1 : kind && strcmp(kind, "added") == 0 ? 2 : 0;
    if (avro_value_append(&f, &el, NULL) != 0 ||
        set_str(&el, "path", json_string_value(json_object_get(x, "path"))) != 0 ||
        avro_value_get_by_name(&el, "kind", &k, NULL) != 0 || avro_value_set_enum(&k, ki) != 0 ||
        set_opt_json(&el, "primary", json_object_get(x, "primary")) != 0 ||
        set_opt_json(&el, "shadow", json_object_get(x, "shadow")) != 0)
      return CUT_ERR_AVRO;
  }
  return avro_file_writer_append_value(a->writer, v) == 0 ? 0 : CUT_ERR_AVRO;
}

long an_out_split(const struct an_summary *s, const char *const *inputs, size_t ninputs,
                  const char *dir, size_t keep, json_t **kept, char *err, size_t errlen) {
  char path[4096];
  FILE *mm = NULL, *nz = NULL, *in = NULL;
  struct avro_out av;
  long count = 0;
  int rc = 0;
  char *line = NULL;
  size_t cap = 0;
  memset(&av, 0, sizeof av);
  *kept = json_array();
  if (*kept == NULL) return CUT_ERR_NOMEM;
  snprintf(path, sizeof path, "%s/mismatches.jsonl", dir);
  mm = fopen(path, "w");
  snprintf(path, sizeof path, "%s/noise.jsonl", dir);
  nz = fopen(path, "w");
  if (mm == NULL || nz == NULL) {
    rc = cut_errf(err, errlen, CUT_ERR_IO, "%s: %s", path, strerror(errno));
    goto out;
  }
  snprintf(path, sizeof path, "%s/mismatches.avro", dir);
  if ((rc = avro_out_open(&av, path, err, errlen)) != 0) goto out;
  for (size_t i = 0; i < ninputs && rc == 0; i++) {
    in = fopen(inputs[i], "r");
    if (in == NULL) {
      if (errno == ENOENT) continue; /* a partial without that file */
      rc = cut_errf(err, errlen, CUT_ERR_IO, "%s: %s", inputs[i], strerror(errno));
      break;
    }
    ssize_t n;
    long lineno = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
      lineno++;
      json_error_t je;
      json_t *m = json_loadb(line, (size_t)n, 0, &je);
      if (m == NULL) {
        rc = cut_errf(err, errlen, CUT_ERR_PARSE, "%s:%ld: %s", inputs[i], lineno, je.text);
        break;
      }
      int real = an_summary_is_mismatch(s, json_string_value(json_object_get(m, "route")),
                                        json_object_get(m, "fields"));
      if (an_out_write_line(real ? mm : nz, m) != 0) {
        rc = cut_errf(err, errlen, CUT_ERR_IO, "%s: write failed", dir);
      } else if (real) {
        count++;
        if ((rc = avro_out_append(&av, m)) != 0)
          cut_errf(err, errlen, rc, "mismatches.avro: %s", avro_strerror());
        else if (json_array_size(*kept) < keep)
          json_array_append(*kept, m);
      }
      json_decref(m);
      if (rc != 0) break;
    }
    fclose(in);
    in = NULL;
  }
out:
  free(line);
  avro_out_close(&av);
  if (mm != NULL && fclose(mm) != 0 && rc == 0) rc = cut_errf(err, errlen, CUT_ERR_IO, "mismatches.jsonl: write failed");
  if (nz != NULL && fclose(nz) != 0 && rc == 0) rc = cut_errf(err, errlen, CUT_ERR_IO, "noise.jsonl: write failed");
  if (rc != 0) {
    json_decref(*kept);
    *kept = NULL;
    return rc;
  }
  return count;
}
