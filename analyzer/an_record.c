/* an_record: decode Pair records from avro-c generic values into owned analyzer records. */
#include "analyzer/an_record.h"

#include <stdlib.h>
#include <string.h>

#include "common/cut_err.h"

static void resp_clear(struct an_resp *r) {
  for (size_t i = 0; i < r->nheaders; i++) {
    free((char *)r->headers[i].name);
    free((char *)r->headers[i].value);
  }
  for (size_t i = 0; i < r->nlineage; i++) {
    free((char *)r->lineage[i].name);
    free((char *)r->lineage[i].value);
  }
  free(r->headers);
  free(r->lineage);
  free(r->body);
  free(r->error);
  memset(r, 0, sizeof *r);
}

void an_record_free(struct an_record *r) {
  if (r == NULL) return;
  free(r->correlation_id);
  free(r->route);
  free(r->method);
  free(r->path);
  resp_clear(&r->primary);
  resp_clear(&r->shadow);
  resp_clear(&r->repeat);
  free(r);
}

#define FAIL(what) cut_errf(err, errlen, CUT_ERR_AVRO, "pair record: %s", what)

static int get_field(avro_value_t *rec, const char *name, avro_value_t *out) {
  return avro_value_get_by_name(rec, name, out, NULL);
}

static int dup_string(avro_value_t *v, char **out) {
  const char *s = NULL;
  size_t size = 0;
  if (avro_value_get_string(v, &s, &size) != 0) return CUT_ERR_AVRO;
  /* avro-c counts the trailing NUL in size. */
  size_t len = size > 0 ? size - 1 : 0;
  *out = strndup(s ? s : "", len);
  return *out == NULL ? CUT_ERR_NOMEM : 0;
}

static int string_field(avro_value_t *rec, const char *name, char **out) {
  avro_value_t f;
  if (get_field(rec, name, &f) != 0) return CUT_ERR_AVRO;
  return dup_string(&f, out);
}

/* Unwraps ["null", X]: *present = 0 for null, else *out = the X branch. */
static int unwrap_optional(avro_value_t *u, avro_value_t *out, int *present) {
  if (avro_value_get_type(u) != AVRO_UNION) {
    *out = *u;
    *present = avro_value_get_type(u) != AVRO_NULL;
    return 0;
  }
  if (avro_value_get_current_branch(u, out) != 0) return CUT_ERR_AVRO;
  *present = avro_value_get_type(out) != AVRO_NULL;
  return 0;
}

static int headers_from(avro_value_t *arr, struct an_kv **out, size_t *n) {
  size_t count = 0;
  if (avro_value_get_size(arr, &count) != 0) return CUT_ERR_AVRO;
  *out = calloc(count ? count : 1, sizeof **out);
  if (*out == NULL) return CUT_ERR_NOMEM;
  for (size_t i = 0; i < count; i++) {
    avro_value_t h;
    char *name = NULL, *value = NULL;
    if (avro_value_get_by_index(arr, i, &h, NULL) != 0) return CUT_ERR_AVRO;
    int rc = string_field(&h, "name", &name);
    if (rc == 0) rc = string_field(&h, "value", &value);
    if (rc != 0) {
      free(name);
      free(value);
      return rc;
    }
    (*out)[i].name = name;
    (*out)[i].value = value;
    *n = i + 1;
  }
  return 0;
}

static int map_from(avro_value_t *map, struct an_kv **out, size_t *n) {
  size_t count = 0;
  if (avro_value_get_size(map, &count) != 0) return CUT_ERR_AVRO;
  *out = calloc(count ? count : 1, sizeof **out);
  if (*out == NULL) return CUT_ERR_NOMEM;
  for (size_t i = 0; i < count; i++) {
    avro_value_t v;
    const char *key = NULL;
    char *value = NULL;
    if (avro_value_get_by_index(map, i, &v, &key) != 0) return CUT_ERR_AVRO;
    int rc = dup_string(&v, &value);
    if (rc != 0) return rc;
    char *k = strdup(key ? key : "");
    if (k == NULL) {
      free(value);
      return CUT_ERR_NOMEM;
    }
    (*out)[i].name = k;
    (*out)[i].value = value;
    *n = i + 1;
  }
  return 0;
}

static int resp_from(avro_value_t *v, struct an_resp *r) {
  avro_value_t f, b;
  int rc, present;
  int32_t status = 0;
  r->present = 1;
  if (get_field(v, "status", &f) != 0 || avro_value_get_int(&f, &status) != 0) return CUT_ERR_AVRO;
  r->status = status;
  if (get_field(v, "headers", &f) != 0) return CUT_ERR_AVRO;
  if ((rc = headers_from(&f, &r->headers, &r->nheaders)) != 0) return rc;
  const void *buf = NULL;
  size_t size = 0;
  if (get_field(v, "body", &f) != 0 || avro_value_get_bytes(&f, &buf, &size) != 0)
    return CUT_ERR_AVRO;
  r->body = malloc(size ? size : 1);
  if (r->body == NULL) return CUT_ERR_NOMEM;
  if (size > 0) memcpy(r->body, buf, size);
  r->body_len = size;
  if (get_field(v, "error", &f) == 0) {
    if (unwrap_optional(&f, &b, &present) != 0) return CUT_ERR_AVRO;
    if (present && (rc = dup_string(&b, &r->error)) != 0) return rc;
  }
  if (get_field(v, "lineage", &f) == 0 && (rc = map_from(&f, &r->lineage, &r->nlineage)) != 0)
    return rc;
  return 0;
}

int an_record_from_avro(avro_value_t *v, struct an_record **out, char *err, size_t errlen) {
  struct an_record *r = calloc(1, sizeof *r);
  avro_value_t f, req, b;
  int rc, present, kind = 0;
  int64_t t = 0;
  if (r == NULL) return CUT_ERR_NOMEM;
  if ((rc = string_field(v, "correlation_id", &r->correlation_id)) != 0) {
    if (rc != CUT_ERR_NOMEM) FAIL("correlation_id");
    goto fail;
  }
  if ((rc = string_field(v, "route", &r->route)) != 0) {
    if (rc != CUT_ERR_NOMEM) FAIL("route");
    goto fail;
  }
  if (get_field(v, "time_us", &f) != 0 || avro_value_get_long(&f, &t) != 0) {
    rc = FAIL("time_us");
    goto fail;
  }
  r->time_us = t;
  if (get_field(v, "kind", &f) != 0 || avro_value_get_enum(&f, &kind) != 0 || kind < 0 ||
      kind > 2) {
    rc = FAIL("kind");
    goto fail;
  }
  r->kind = (enum an_record_kind)kind;
  if (get_field(v, "request", &req) != 0 || (rc = string_field(&req, "method", &r->method)) != 0 ||
      (rc = string_field(&req, "path", &r->path)) != 0) {
    rc = rc == CUT_ERR_NOMEM ? rc : FAIL("request");
    goto fail;
  }
  if (get_field(v, "primary", &f) != 0 || unwrap_optional(&f, &b, &present) != 0) {
    rc = FAIL("primary");
    goto fail;
  }
  if (present && (rc = resp_from(&b, &r->primary)) != 0) {
    rc = rc == CUT_ERR_NOMEM ? rc : FAIL("primary");
    goto fail;
  }
  size_t ns = 0;
  if (get_field(v, "shadows", &f) != 0 || avro_value_get_size(&f, &ns) != 0) {
    rc = FAIL("shadows");
    goto fail;
  }
  if (ns > 0) {
    if (avro_value_get_by_index(&f, 0, &b, NULL) != 0) {
      rc = FAIL("shadows");
      goto fail;
    }
    if ((rc = resp_from(&b, &r->shadow)) != 0) {
      rc = rc == CUT_ERR_NOMEM ? rc : FAIL("shadows[0]");
      goto fail;
    }
  }
  if (get_field(v, "primary_repeat", &f) == 0) {
    if (unwrap_optional(&f, &b, &present) != 0) {
      rc = FAIL("primary_repeat");
      goto fail;
    }
    if (present && (rc = resp_from(&b, &r->repeat)) != 0) {
      rc = rc == CUT_ERR_NOMEM ? rc : FAIL("primary_repeat");
      goto fail;
    }
  }
  *out = r;
  return 0;
fail:
  an_record_free(r);
  return rc;
}

static void side_view(const struct an_resp *r, struct an_side *s) {
  s->present = r->present;
  s->status = r->status;
  s->error = r->error;
  s->headers = r->headers;
  s->nheaders = r->nheaders;
  s->body = r->body;
  s->body_len = r->body_len;
  s->lineage = r->lineage;
  s->nlineage = r->nlineage;
}

void an_record_view(const struct an_record *p, const struct an_record *s, struct an_pair_view *pv) {
  memset(pv, 0, sizeof *pv);
  pv->correlation_id = p->correlation_id;
  pv->route = p->route;
  pv->method = p->method;
  pv->path = p->path;
  pv->time_us = p->time_us;
  side_view(&p->primary, &pv->primary);
  side_view(&s->shadow, &pv->shadow);
  side_view(&p->repeat, &pv->repeat);
}

void an_record_take_shadow(struct an_record *to, struct an_record *from) {
  resp_clear(&to->shadow);
  to->shadow = from->shadow;
  memset(&from->shadow, 0, sizeof from->shadow);
}
