/* Fuzz target for request parsing on the decision path: key extraction (headers,
 * cookies, query parameters), route matching and dial_decide on any request. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "dials/dial.h"
#include "dials/dial_eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One route per decision source, keyed by a header, a cookie and a query parameter. */
static const char config_text[] =
    "listeners: [ { name: p, listen: \"127.0.0.1:8080\" } ]\n"
    "backends:\n"
    "  old: { hosts: [\"127.0.0.1:9001\"] }\n"
    "  new: { hosts: [\"127.0.0.1:9002\"] }\n"
    "  third: { hosts: [\"127.0.0.1:9003\"] }\n"
    "dials:\n"
    "  by-header: { key: \"header:x-device-id\", percent: 50%, to: new }\n"
    "  by-query: { key: \"query:device\", percent: 12.5%, to: new }\n"
    "experiments:\n"
    "  by-cookie: { key: \"cookie:did\", pool: 50%, canary: new, baseline: third,\n"
    "               state: running }\n"
    "allocations:\n"
    "  ab:\n"
    "    key: \"header:x-device-id\"\n"
    "    percent: 100%\n"
    "    cells: [ { name: a, weight: 1, backend: new }, { name: b, weight: 3, backend: third } ]\n"
    "    regions: [eu, us]\n"
    "    platforms: [ios]\n"
    "    app_version: \">=8.2.0 <9\"\n"
    "routes:\n"
    "  - { name: q, match: { path_prefix: /q }, backend: old, dial: by-query }\n"
    "  - { name: x, match: { path_prefix: /x }, backend: old, experiment: by-cookie }\n"
    "  - { name: a, match: { path_prefix: /a, host: example.com }, backend: old, allocation: ab }\n"
    "  - { name: h, backend: old, dial: by-header }\n";

static const struct cfg *config(void) {
  static struct cfg *c;
  if (!c) {
    char *errs = NULL;
    if (cfg_load_buffer("fuzz.yaml", config_text, sizeof config_text - 1, &c, &errs) != 0) {
      fprintf(stderr, "fuzz config does not load:\n%s", errs ? errs : "");
      abort();
    }
  }
  return c;
}

#define MAX_HEADERS 16

/* A slice must be non-empty and lie inside one of the given ranges. */
static void check_slice(struct dial_slice v, const char *a, size_t alen, const char *b,
                        size_t blen) {
  if (v.len == 0 || !v.p)
    abort();
  int in_a = a && v.p >= a && v.p + v.len <= a + alen;
  int in_b = b && v.p >= b && v.p + v.len <= b + blen;
  if (!in_a && !in_b)
    abort();
}

/*
 * Input: newline-separated lines. The first is the path (with its query
 * string); each further line is a header, "name:value" (a line without ':'
 * is a header with an empty value). Every piece is copied into its own heap
 * block of exactly its length, so reading past a slice is caught by ASan.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const struct cfg *c = config();
  const char *in = (const char *)data;
  struct dial_header h[MAX_HEADERS];
  char *blocks[1 + 2 * MAX_HEADERS];
  size_t nblocks = 0, nh = 0;
  struct dial_request req;
  memset(&req, 0, sizeof req);
  req.method.p = "GET";
  req.method.len = 3;

  size_t pos = 0;
  for (int line = 0; pos <= size && nh < MAX_HEADERS; line++) {
    const char *nl = memchr(in + pos, '\n', size - pos);
    size_t len = nl ? (size_t)(nl - (in + pos)) : size - pos;
    const char *l = in + pos;
    if (line == 0) {
      char *p = malloc(len ? len : 1);
      if (!p)
        abort();
      memcpy(p, l, len);
      blocks[nblocks++] = p;
      req.path = (struct dial_slice){p, len};
    } else {
      const char *colon = memchr(l, ':', len);
      size_t nlen = colon ? (size_t)(colon - l) : len;
      size_t vlen = colon ? len - nlen - 1 : 0;
      char *n = malloc(nlen ? nlen : 1), *v = malloc(vlen ? vlen : 1);
      if (!n || !v)
        abort();
      memcpy(n, l, nlen);
      if (vlen)
        memcpy(v, colon + 1, vlen);
      blocks[nblocks++] = n;
      blocks[nblocks++] = v;
      h[nh].name = (struct dial_slice){n, nlen};
      h[nh].value = (struct dial_slice){v, vlen};
      nh++;
    }
    if (!nl)
      break;
    pos += len + 1;
  }
  req.headers = h;
  req.nheaders = nh;

  /* Key extraction: a found value lies in the request or in the decode buffer. */
  static const struct {
    enum cfg_key_kind kind;
    const char *name;
  } keys[] = {{CFG_KEY_HEADER, "x-device-id"}, {CFG_KEY_COOKIE, "did"},
              {CFG_KEY_QUERY, "device"},       {CFG_KEY_QUERY, "a"},
              {CFG_KEY_COOKIE, "a"},           {CFG_KEY_RANDOM, NULL}};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    struct cfg_key k = {keys[i].kind, (char *)keys[i].name, (char *)keys[i].name};
    struct dial_slice v;
    char small[8];
    int found = dial_request_key_buf(&req, &k, small, sizeof small, &v);
    if (found) {
      int in_req = 0;
      if (v.p >= req.path.p && v.p + v.len <= req.path.p + req.path.len)
        in_req = 1;
      for (size_t j = 0; j < nh && !in_req; j++)
        if (v.p >= h[j].value.p && v.p + v.len <= h[j].value.p + h[j].value.len)
          in_req = 1;
      if (!in_req)
        check_slice(v, small, sizeof small, NULL, 0);
    }
    if (dial_request_key(&req, &k, &v) && v.len == 0)
      abort();
    if (k.kind == CFG_KEY_RANDOM && found)
      abort(); /* random keys are drawn by the caller, never found */
  }

  /* Route matching and a decision on every route: always a valid backend. */
  size_t ri = dial_route_match(c, &req);
  if (ri != SIZE_MAX && ri >= c->nroutes)
    abort();
  for (size_t i = 0; i < c->nroutes; i++) {
    struct dial_decision d;
    if (dial_decide(c, NULL, &c->routes[i], &req, 1700000000, &d) != 0)
      abort();
    if (d.backend_index >= c->nbackends || d.bucket >= DIAL_BUCKETS || !d.reason)
      abort();
    char buf[160];
    size_t n = dial_decision_format(&d, buf, sizeof buf);
    if (n >= sizeof buf || strlen(buf) != n)
      abort();
  }

  for (size_t i = 0; i < nblocks; i++)
    free(blocks[i]);
  return 0;
}
