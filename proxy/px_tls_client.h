/* px_tls_client: client-side TLS contexts and per-connection SSL objects for upstream connections. */
#ifndef CUT_PX_TLS_CLIENT_H
#define CUT_PX_TLS_CLIENT_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "config/config.h"

/*
 * Builds a client SSL_CTX from a backend's `tls` block: TLS 1.2 or newer,
 * peer verification on unless tls->verify is 0 (CA bundle tls->ca, else the
 * system store), an optional client certificate (tls->cert + tls->key), ALPN
 * "h2" when `h2` is set (else "http/1.1"), and unexpected EOF tolerated.
 * An SSL_CTX is reference-counted and may be shared by every worker.
 * On success stores it in *out (caller frees with SSL_CTX_free) and returns 0;
 * otherwise returns CUT_ERR_TLS / CUT_ERR_NOMEM with a sentence in err.
 * Loads files: call it at startup or reload, never on the request path.
 */
int px_tls_client_ctx_new(SSL_CTX **out, const struct cfg_tls *tls, int h2, char *err,
                          size_t errlen);

/*
 * A new SSL for one connection to `host` (an IP literal or a name): SNI is
 * `sni` when given, else `host` unless it is an IP literal; when `verify` is
 * set the certificate must match `sni`, else `host` (name or IP).
 * Returns the SSL (caller frees with SSL_free, or hands it to a bufferevent
 * that frees it) or NULL when out of memory.
 */
SSL *px_tls_client_ssl_new(SSL_CTX *ctx, const char *host, const char *sni, int verify);

#endif
