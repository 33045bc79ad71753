/* px_check: `cutover config check` beyond the YAML: the files read at start. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/ssl.h>

#include "common/cli.h"
#include "common/sbuf.h"
#include "config/config.h"
#include "proxy/px_check.h"
#include "proxy/px_tls.h"
#include "proxy/px_tls_client.h"

void px_err_at(char *err, size_t errlen, const struct cfg_pos *at, const char *kind,
               const char *name) {
  if (!err || !errlen)
    return;
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", err);
  int n;
  if (at && at->file)
    n = snprintf(err, errlen, "%s:%d:%d: %s %s: %s", at->file, at->line, at->col, kind,
                 name ? name : "?", msg);
  else
    n = snprintf(err, errlen, "%s %s: %s", kind, name ? name : "?", msg);
  if (n >= (int)errlen && errlen > 4) /* too long: say so rather than cut silently */
    memcpy(err + errlen - 4, "...", 4);
}

/* One problem: its line in `out`, positioned like the proxy's own start-up errors. */
static void add(struct sbuf *out, const struct cfg_pos *at, const char *kind, const char *name,
                char *err, size_t errlen) {
  px_err_at(err, errlen, at, kind, name);
  sb_fmt(out, "%s\n", err);
}

int px_check_resources(const struct cfg *c, char **errs) {
  struct sbuf out;
  sb_init(&out);
  int problems = 0;
  char err[1024];
  for (size_t i = 0; i < c->nlisteners; i++) {
    const struct cfg_listener *l = &c->listeners[i];
    if (!l->has_tls)
      continue;
    SSL_CTX *ctx = NULL;
    err[0] = '\0';
    if (px_tls_server_ctx(&ctx, &l->tls, err, sizeof err) < 0) {
      add(&out, &l->where, "listener", l->name, err, sizeof err);
      problems++;
    }
    SSL_CTX_free(ctx);
  }
  for (size_t i = 0; i < c->nbackends; i++) {
    const struct cfg_backend *b = &c->backends[i];
    if (!b->has_tls && b->protocol != CFG_PROTO_H2)
      continue;
    SSL_CTX *ctx = NULL;
    err[0] = '\0';
    if (px_tls_client_ctx_new(&ctx, &b->tls, b->protocol != CFG_PROTO_HTTP1, err, sizeof err) <
        0) {
      add(&out, &b->where, "backend", b->name, err, sizeof err);
      problems++;
    }
    SSL_CTX_free(ctx);
  }
  const char *tok = c->admin.enabled ? c->admin.token_file : NULL;
  struct stat st;
  if (tok && stat(tok, &st) == 0) { /* a missing one is created at start */
    FILE *f = fopen(tok, "r");
    if (!f) {
      snprintf(err, sizeof err, "token file %s: %s", tok, strerror(errno));
      add(&out, NULL, "admin", "token_file", err, sizeof err);
      problems++;
    } else {
      fclose(f);
    }
  }
  *errs = problems ? sb_take(&out, NULL) : NULL;
  if (!problems)
    sb_clear(&out);
  return problems;
}

int px_config_cmd(int argc, char **argv) {
  return cfg_cmd_run(argc, argv, px_check_resources);
}
