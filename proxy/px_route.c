/* px_route: first-match route selection over the config's route list. */
#include <string.h>
#include <strings.h>

#include "proxy/px_route.h"

/* Host part of an authority: strips ":port" (and the brackets of an IPv6 literal). */
static void authority_host(const char *a, const char **host, size_t *len) {
  *host = a;
  *len = 0;
  if (!a)
    return;
  size_t n = strlen(a);
  if (n && a[0] == '[') {
    const char *end = memchr(a, ']', n);
    if (end) {
      *host = a + 1;
      *len = (size_t)(end - a - 1);
      return;
    }
  }
  const char *colon = memchr(a, ':', n);
  *len = colon ? (size_t)(colon - a) : n;
}

/* The first field of that name decides, as in `cutover dial eval`. */
static int header_matches(const struct px_headers *h, const struct cfg_header_match *m) {
  size_t nlen = strlen(m->name);
  for (size_t i = 0; i < h->n; i++) {
    const struct px_header *f = &h->v[i];
    if (f->namelen != nlen || memcmp(f->name, m->name, nlen) != 0)
      continue;
    if (!m->value)
      return 1;
    return strlen(m->value) == f->valuelen && memcmp(f->value, m->value, f->valuelen) == 0;
  }
  return 0;
}

int px_route_matches(const struct cfg_route *r, const struct px_request_head *req) {
  if (r->host) {
    const char *h;
    size_t hl;
    authority_host(req->authority, &h, &hl);
    if (strlen(r->host) != hl || strncasecmp(r->host, h, hl) != 0)
      return 0;
  }
  /* both path conditions look at the path without its query string */
  const char *path = req->path ? req->path : "";
  size_t pl = strcspn(path, "?");
  if (r->path && (strlen(r->path) != pl || memcmp(r->path, path, pl) != 0))
    return 0;
  if (r->path_prefix) {
    size_t n = strlen(r->path_prefix);
    if (pl < n || memcmp(path, r->path_prefix, n) != 0)
      return 0;
  }
  if (r->methods.n) {
    int ok = 0;
    for (size_t i = 0; i < r->methods.n && !ok; i++)
      ok = req->method && strcmp(r->methods.v[i], req->method) == 0;
    if (!ok)
      return 0;
  }
  for (size_t i = 0; i < r->nheaders; i++)
    if (!header_matches(&req->headers, &r->headers[i]))
      return 0;
  return 1;
}

const struct cfg_route *px_route_find(const struct cfg *cfg, const struct px_request_head *req) {
  for (size_t i = 0; i < cfg->nroutes; i++)
    if (px_route_matches(&cfg->routes[i], req))
      return &cfg->routes[i];
  return NULL;
}
