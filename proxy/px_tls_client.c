/* px_tls_client: client-side TLS contexts and per-connection SSL objects for upstream connections. */
#include <arpa/inet.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/cut_err.h"
#include "proxy/px_tls.h"
#include "proxy/px_tls_client.h"

static int tls_fail(SSL_CTX *ctx, char *err, size_t errlen, const char *what, const char *file) {
  SSL_CTX_free(ctx);
  return px_tls_error(err, errlen, what, file);
}

int px_tls_client_ctx_new(SSL_CTX **out, const struct cfg_tls *tls, int h2, char *err,
                          size_t errlen) {
  *out = NULL;
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx)
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "cannot create a TLS context");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
                               SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  int verify = tls ? tls->verify : 1;
  if (verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (tls && tls->ca) {
      if (SSL_CTX_load_verify_locations(ctx, tls->ca, NULL) != 1)
        return tls_fail(ctx, err, errlen, "cannot load CA bundle", tls->ca);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return tls_fail(ctx, err, errlen, "cannot load the system CA store", NULL);
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }
  if (tls && tls->cert) {
    if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert) != 1)
      return tls_fail(ctx, err, errlen, "cannot load client certificate", tls->cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, tls->key ? tls->key : tls->cert, SSL_FILETYPE_PEM) != 1)
      return tls_fail(ctx, err, errlen, "cannot load client key", tls->key ? tls->key : tls->cert);
  }
  static const unsigned char alpn_h2[] = "\x02h2";
  static const unsigned char alpn_h1[] = "\x08http/1.1";
  if (h2)
    SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof alpn_h2 - 1);
  else
    SSL_CTX_set_alpn_protos(ctx, alpn_h1, sizeof alpn_h1 - 1);
  *out = ctx;
  return 0;
}

static int is_ip(const char *s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

SSL *px_tls_client_ssl_new(SSL_CTX *ctx, const char *host, const char *sni, int verify) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl)
    return NULL;
  const char *name = sni ? sni : host;
  if (!is_ip(name))
    SSL_set_tlsext_host_name(ssl, name);
  if (verify) {
    if (is_ip(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    } else if (SSL_set1_host(ssl, name) != 1) {
      SSL_free(ssl);
      return NULL;
    }
  }
  return ssl;
}
