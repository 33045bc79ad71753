/* px_msg: the HTTP message model shared by the frontends (client side) and the upstream pools. */
#ifndef CUT_PX_MSG_H
#define CUT_PX_MSG_H

#include <stddef.h>
#include <stdint.h>

/*
 * One request or response head, independent of HTTP/1.1 or HTTP/2. Header
 * names are stored lower-case (HTTP/2 form); pseudo-headers are not in the
 * list but in their own fields; hop-by-hop headers (connection, keep-alive,
 * proxy-connection, transfer-encoding, upgrade, te except "trailers") are
 * dropped by the frontends before a head reaches an upstream.
 * All strings are owned by the struct they are in and NUL-terminated.
 */

struct px_header {
  char *name;
  size_t namelen;
  char *value;
  size_t valuelen;
};

struct px_headers {
  struct px_header *v;
  size_t n;
  size_t cap;
  size_t bytes; /* sum of name + value lengths + 32 per field (the HTTP/2 accounting) */
};

/* A field's name and value live in one allocation (the name's): free or
 * replace them only through px_header_release and px_headers_set_value. */

/* Appends a copy of name (lower-cased) and value. Returns 0 or CUT_ERR_NOMEM. */
int px_headers_add(struct px_headers *h, const char *name, size_t namelen, const char *value,
                   size_t valuelen);
/* The same for a name known to be lower-case already (HTTP/2 field names, literals). */
int px_headers_add_lc(struct px_headers *h, const char *name, size_t namelen, const char *value,
                      size_t valuelen);
/* Returns the first header named `name` (lower-case), or NULL. */
const struct px_header *px_headers_get(const struct px_headers *h, const char *name);
/* Removes every header named `name`; returns how many were removed. */
size_t px_headers_del(struct px_headers *h, const char *name);
/* Replaces the value of field i with a copy of value. Returns 0 or
 * CUT_ERR_NOMEM (the field is then unchanged). */
int px_headers_set_value(struct px_headers *h, size_t i, const char *value, size_t valuelen);
/* Frees one field's strings (the caller removes it from its list). */
void px_header_release(struct px_header *f);
/* Releases all fields; the struct is left empty and reusable. */
void px_headers_clear(struct px_headers *h);
/* 1 for the hop-by-hop names a proxy must not forward. */
int px_header_is_hop(const char *name, size_t namelen);

struct px_request_head {
  char *method;      /* "GET" */
  char *scheme;      /* "http" or "https" */
  char *authority;   /* host[:port] from :authority or Host */
  char *path;        /* path with query, as sent */
  struct px_headers headers;
  int64_t content_length; /* -1 when unknown (chunked / h2 without content-length) */
  /* PX_HEAD_* bits of the four strings above that point into memory their
   * producer keeps (px_request_head_clear does not free those); 0 = all are
   * owned (malloc'd), as in every copy. */
  unsigned borrowed;
};

#define PX_HEAD_METHOD 1u
#define PX_HEAD_SCHEME 2u
#define PX_HEAD_AUTHORITY 4u
#define PX_HEAD_PATH 8u

struct px_response_head {
  int status;
  struct px_headers headers;
  int64_t content_length; /* -1 when unknown */
};

/* Releases the strings (except the borrowed ones) and headers; the struct is
 * zeroed. NULL is ok. */
void px_request_head_clear(struct px_request_head *r);
void px_response_head_clear(struct px_response_head *r);
/* Deep copy; returns 0 or CUT_ERR_NOMEM (dst is cleared on failure). */
int px_request_head_copy(struct px_request_head *dst, const struct px_request_head *src);

/* 1 for methods that are idempotent by RFC 9110 (GET HEAD OPTIONS TRACE PUT DELETE). */
int px_method_idempotent(const char *method);

#endif
