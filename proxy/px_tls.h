/* px_tls: the OpenSSL context of TLS listeners (backends: px_tls_client.h). */
#ifndef CUT_PX_TLS_H
#define CUT_PX_TLS_H

#include <stddef.h>

#include "config/config.h"

typedef struct ssl_ctx_st SSL_CTX;

/*
 * Builds a server context from a listener's certificate chain and key:
 * TLS 1.2 and 1.3 only, forward-secret AEAD ciphers, ALPN "h2" then
 * "http/1.1", stateless session tickets, SSL_OP_IGNORE_UNEXPECTED_EOF.
 * Reads files: call at startup or reload, never on a loop thread.
 * On success *out is the context (caller frees with SSL_CTX_free) and 0 is
 * returned; otherwise CUT_ERR_TLS with err text naming the file.
 */
int px_tls_server_ctx(SSL_CTX **out, const struct cfg_tls *tls, char *err, size_t errlen);

/*
 * The error of a failed OpenSSL call as CUT_ERR_TLS with "WHAT FILE: REASON" in err (file may be
 * NULL): the system's reason when the file cannot be opened (OpenSSL would only say "system
 * lib"), else every reason on OpenSSL's error queue, earliest first. Empties the queue. For the
 * server (this file) and client (px_tls_client.c) contexts alike.
 */
int px_tls_error(char *err, size_t errlen, const char *what, const char *file);

/* ALPN selection for a server context: prefers "h2", then "http/1.1". Exposed for tests. */
int px_tls_alpn_pick(const unsigned char *in, unsigned int inlen, const unsigned char **out,
                     unsigned char *outlen);

#endif
