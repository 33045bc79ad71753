/* px_admin_client: a small blocking HTTP/1.1 client for the admin API (CLI and tests only). */
#ifndef CUT_PX_ADMIN_CLIENT_H
#define CUT_PX_ADMIN_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Blocking by design: the CLI sends one request and waits. Never call this
 * from an event loop thread.
 */

struct px_admin_reply {
  int status;     /* HTTP status code */
  char *body;     /* NUL-terminated response body (caller frees with px_admin_reply_clear) */
  size_t len;
};

struct px_admin_target {
  const char *host;   /* IP literal or name, without brackets */
  uint16_t port;
  const char *token;  /* bearer token; NULL sends none */
  const char *actor;  /* X-Cutover-Actor header (for the audit log); NULL sends none */
  int timeout_ms;     /* connect, send and each read; 0 = 10 s */
};

/*
 * Sends METHOD PATH with an optional JSON `body` (NULL = none) and reads the
 * whole response (at most 64 MiB). Returns 0 with *out filled for any HTTP
 * status, or CUT_ERR_NET / CUT_ERR_TIMEOUT / CUT_ERR_PROTO / CUT_ERR_NOMEM
 * with a sentence in err when no HTTP answer was received.
 */
int px_admin_request(const struct px_admin_target *t, const char *method, const char *path,
                     const char *body, struct px_admin_reply *out, char *err, size_t errlen);

/* Frees the body and zeroes the reply. NULL is ok. */
void px_admin_reply_clear(struct px_admin_reply *r);

#endif
