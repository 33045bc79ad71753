/* dial_eval: route matching and a printable decision for the CLI. */
#include "dials/dial_eval.h"

#include <string.h>
#include <strings.h>

#include "common/cut_err.h"

static int header(const struct dial_request *req, const char *name, struct dial_slice *out) {
  size_t n = strlen(name);
  for (size_t i = 0; i < req->nheaders; i++)
    if (req->headers[i].name.len == n && !strncasecmp(req->headers[i].name.p, name, n)) {
      *out = req->headers[i].value;
      return 1;
    }
  return 0;
}

static int route_matches(const struct cfg_route *r, const struct dial_request *req) {
  const char *path = req->path.p ? req->path.p : "";
  size_t plen = req->path.len;
  const char *q = memchr(path, '?', plen);
  if (q) plen = (size_t)(q - path);
  if (r->host) {
    struct dial_slice h;
    if (!header(req, ":authority", &h) && !header(req, "host", &h)) return 0;
    size_t hl = h.len;
    const char *colon = memchr(h.p, ':', h.len);
    if (colon && h.p[0] != '[') hl = (size_t)(colon - h.p);
    if (hl != strlen(r->host) || strncasecmp(h.p, r->host, hl)) return 0;
  }
  if (r->path && (plen != strlen(r->path) || memcmp(path, r->path, plen))) return 0;
  if (r->path_prefix) {
    size_t n = strlen(r->path_prefix);
    if (plen < n || memcmp(path, r->path_prefix, n)) return 0;
  }
  if (r->methods.n) {
    int ok = 0;
    for (size_t i = 0; i < r->methods.n && !ok; i++)
      ok = strlen(r->methods.v[i]) == req->method.len &&
           !memcmp(r->methods.v[i], req->method.p, req->method.len);
    if (!ok) return 0;
  }
  for (size_t i = 0; i < r->nheaders; i++) {
    struct dial_slice v;
    if (!header(req, r->headers[i].name, &v)) return 0;
    if (r->headers[i].value &&
        (v.len != strlen(r->headers[i].value) || memcmp(v.p, r->headers[i].value, v.len)))
      return 0;
  }
  return 1;
}

size_t dial_route_match(const struct cfg *cfg, const struct dial_request *req) {
  for (size_t i = 0; i < cfg->nroutes; i++)
    if (route_matches(&cfg->routes[i], req)) return i;
  return SIZE_MAX;
}

int dial_eval(const struct cfg *cfg, const struct dial_store *store, size_t route_index,
              const struct dial_request *req, int64_t now, FILE *out) {
  if (!cfg || !req || !out) return CUT_ERR_INVALID;
  if (route_index == SIZE_MAX) route_index = dial_route_match(cfg, req);
  if (route_index >= cfg->nroutes) {
    fprintf(out, "no route matches this request\n");
    return CUT_ERR_NOT_FOUND;
  }
  const struct cfg_route *r = &cfg->routes[route_index];
  struct dial_decision d;
  int rc = dial_decide(cfg, store, r, req, now, &d);
  if (rc) return rc;
  char labels[512];
  dial_decision_format(&d, labels, sizeof labels);
  const char *backend =
      d.backend_index < cfg->nbackends ? cfg->backends[d.backend_index].name : "?";
  fprintf(out, "route     %s\nbackend   %s\nvia       %s\ndecision  %s\n",
          r->name ? r->name : "?", backend ? backend : "?", dial_via_name(d.via), labels);
  return 0;
}
