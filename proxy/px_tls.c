/* px_tls: server SSL_CTX construction. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/cut_err.h"
#include "proxy/px_tls.h"

static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* Every reason on OpenSSL's error queue, earliest first ("unsupported; PEM lib"). */
static void ssl_reasons(char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  unsigned long e;
  while ((e = ERR_get_error()) != 0 && n + 2 < len) {
    const char *r = ERR_reason_error_string(e);
    char code[32];
    if (!r) {
      snprintf(code, sizeof code, "error %lx", e);
      r = code;
    }
    if (strstr(buf, r))
      continue; /* the same reason twice says nothing more */
    int w = snprintf(buf + n, len - n, "%s%s", n ? "; " : "", r);
    if (w < 0)
      break;
    n += (size_t)w < len - n ? (size_t)w : len - n - 1;
  }
  if (!buf[0])
    snprintf(buf, len, "unknown error");
}

int px_tls_error(char *err, size_t errlen, const char *what, const char *file) {
  char buf[256];
  FILE *f = file ? fopen(file, "r") : NULL;
  if (file && !f) {
    /* OpenSSL would only say "system lib": name the system's reason */
    snprintf(buf, sizeof buf, "%s", strerror(errno));
    ERR_clear_error();
  } else {
    ssl_reasons(buf, sizeof buf);
  }
  if (f)
    fclose(f);
  return cut_errf(err, errlen, CUT_ERR_TLS, "%s%s%s: %s", what, file ? " " : "", file ? file : "",
                  buf);
}

int px_tls_alpn_pick(const unsigned char *in, unsigned int inlen, const unsigned char **out,
                     unsigned char *outlen) {
  static const char *const prefs[] = {"h2", "http/1.1"};
  for (size_t k = 0; k < 2; k++) {
    size_t pl = strlen(prefs[k]);
    for (unsigned int i = 0; i < inlen;) {
      unsigned int l = in[i];
      if (i + 1 + l > inlen)
        break;
      if (l == pl && memcmp(in + i + 1, prefs[k], pl) == 0) {
        *out = in + i + 1;
        *outlen = (unsigned char)l;
        return 0;
      }
      i += 1 + l;
    }
  }
  return -1;
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg) {
  return px_tls_alpn_pick(in, inlen, out, outlen) == 0 ? SSL_TLSEXT_ERR_OK
                                                       : SSL_TLSEXT_ERR_NOACK;
}

int px_tls_server_ctx(SSL_CTX **out, const struct cfg_tls *tls, char *err, size_t errlen) {
  *out = NULL;
  if (!tls->cert || !tls->key)
    return cut_errf(err, errlen, CUT_ERR_TLS, "a TLS listener needs cert and key");
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx)
    return px_tls_error(err, errlen, "SSL_CTX_new", NULL);
  int rc;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
                               SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
    rc = px_tls_error(err, errlen, "cipher list", NULL);
    goto fail;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert) != 1) {
    rc = px_tls_error(err, errlen, "certificate", tls->cert);
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, tls->key, SSL_FILETYPE_PEM) != 1) {
    rc = px_tls_error(err, errlen, "private key", tls->key);
    goto fail;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    rc = px_tls_error(err, errlen, "key does not match certificate", tls->cert);
    goto fail;
  }
  /* stateless tickets (OpenSSL keeps the ticket key); a small server-side cache too */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"cutover", 7);
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
  *out = ctx;
  return 0;
fail:
  SSL_CTX_free(ctx);
  return rc;
}
