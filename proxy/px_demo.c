/* px_demo: `cutover demo-backend`: options, workers, listeners, TLS, protocol sniffing, stop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/cli.h"
#include "common/cut_err.h"
#include "proxy/px_demo_int.h"

#define DEMO_MAX_THREADS 256

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

void demo_link_add(struct demo_worker *w, struct demo_link *l) {
  l->next = w->conns.next;
  l->prev = &w->conns;
  l->next->prev = l;
  w->conns.next = l;
}

void demo_link_del(struct demo_link *l) {
  if (!l->next) return;
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->next = l->prev = NULL;
}

/* A new connection waits here until its protocol is known: for TLS, the
 * protocol agreed by ALPN once the handshake is done; for cleartext with
 * --protocol auto, the first bytes (HTTP/2's preface or a request line). */
struct demo_sniff {
  struct demo_link link;
  struct demo_worker *w;
  struct bufferevent *bev;
};

static void sniff_free(struct demo_sniff *s) {
  demo_link_del(&s->link);
  if (s->bev) bufferevent_free(s->bev);
  free(s);
}

static void sniff_link_free(struct demo_link *l) { sniff_free((struct demo_sniff *)l); }

static void sniff_read_cb(struct bufferevent *bev, void *user_data) {
  struct demo_sniff *s = user_data;
  struct evbuffer *in = bufferevent_get_input(bev);
  char head[sizeof h2_preface - 1];
  ev_ssize_t n = evbuffer_copyout(in, head, sizeof head);
  if (n <= 0) return;
  int is_h2 = !memcmp(head, h2_preface, (size_t)n);
  if (is_h2 && (size_t)n < sizeof head) return; /* wait for the whole preface */
  struct demo_worker *w = s->w;
  s->bev = NULL;
  sniff_free(s);
  if (is_h2)
    demo_h2_new(w, bev);
  else
    demo_h1_new(w, bev);
}

static void sniff_event_cb(struct bufferevent *bev, short what, void *user_data) {
  struct demo_sniff *s = user_data;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
    sniff_free(s);
    return;
  }
  if (!(what & BEV_EVENT_CONNECTED)) return;
  /* TLS handshake done: ALPN decides; without ALPN, the configured protocol */
  const unsigned char *alpn = NULL;
  unsigned int alpnlen = 0;
  SSL_get0_alpn_selected(bufferevent_openssl_get_ssl(bev), &alpn, &alpnlen);
  int is_h2 = alpnlen ? (alpnlen == 2 && !memcmp(alpn, "h2", 2))
                      : s->w->opts->protocol == PX_DEMO_H2C;
  struct demo_worker *w = s->w;
  s->bev = NULL;
  sniff_free(s);
  bufferevent_set_timeouts(bev, NULL, NULL);
  if (is_h2)
    demo_h2_new(w, bev);
  else
    demo_h1_new(w, bev);
}

static int on_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                             const unsigned char *in, unsigned int inlen, void *arg) {
  const struct px_demo_opts *o = arg;
  static const unsigned char both[] = "\x02h2\x08http/1.1", h1[] = "\x08http/1.1";
  const unsigned char *ours = o->protocol == PX_DEMO_HTTP1 ? h1 : both;
  unsigned int ourslen = o->protocol == PX_DEMO_HTTP1 ? sizeof h1 - 1
                         : o->protocol == PX_DEMO_H2C ? 3 /* "\x02h2" only */
                                                      : sizeof both - 1;
  if (SSL_select_next_proto((unsigned char **)out, outlen, ours, ourslen, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  return SSL_TLSEXT_ERR_OK;
}

/* Loads the certificate and key into a server context; NULL and a sentence in err on failure. */
static SSL_CTX *tls_ctx_new(const struct px_demo_opts *o, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) goto fail;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1)
    goto fail;
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn_select_cb, (void *)o);
  return ctx;
fail:;
  const char *why = ERR_reason_error_string(ERR_peek_last_error());
  cut_errf(err, errlen, CUT_ERR_TLS, "cannot use certificate %s with key %s: %s", o->tls_cert,
           o->tls_key, why ? why : "unknown error");
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return NULL;
}

static void on_accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *user_data) {
  struct demo_worker *w = user_data;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct bufferevent *bev;
  SSL *ssl = NULL;
  if (w->ssl_ctx) {
    ssl = SSL_new(w->ssl_ctx);
    bev = ssl ? bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                               BEV_OPT_CLOSE_ON_FREE)
              : NULL;
    if (!bev) SSL_free(ssl);
  } else {
    bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
  }
  if (!bev) {
    evutil_closesocket(fd);
    return;
  }
  if (ssl) bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  switch (ssl ? PX_DEMO_AUTO : w->opts->protocol) {
    case PX_DEMO_HTTP1:
      demo_h1_new(w, bev);
      return;
    case PX_DEMO_H2C:
      demo_h2_new(w, bev);
      return;
    case PX_DEMO_AUTO:
      break;
  }
  struct demo_sniff *s = calloc(1, sizeof *s);
  if (!s) {
    bufferevent_free(bev);
    return;
  }
  s->w = w;
  s->bev = bev;
  s->link.free_fn = sniff_link_free;
  demo_link_add(w, &s->link);
  bufferevent_setcb(bev, ssl ? NULL : sniff_read_cb, NULL, sniff_event_cb, s);
  if (ssl) {
    struct timeval tv = {.tv_sec = 10};
    bufferevent_set_timeouts(bev, &tv, NULL); /* a handshake that never ends */
  }
  bufferevent_enable(bev, EV_READ);
}

struct demo_thread {
  struct demo_worker w;
  struct evconnlistener *lis;
  pthread_t th;
  int started;
};

static void *worker_main(void *arg) {
  struct demo_thread *t = arg;
  event_base_loop(t->w.base, EVLOOP_NO_EXIT_ON_EMPTY);
  return NULL;
}

static void on_signal_cb(evutil_socket_t sig, short what, void *user_data) {
  event_base_loopbreak(user_data);
}

/* Binds one SO_REUSEPORT listener of a worker to ss; the first one fixes the port. */
static int listen_one(struct demo_thread *t, struct sockaddr_storage *ss, socklen_t sslen,
                      int shared, char *err, size_t errlen) {
  unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
  if (shared) flags |= LEV_OPT_REUSEABLE_PORT;
  t->lis = evconnlistener_new_bind(t->w.base, on_accept_cb, &t->w, flags, 1024,
                                   (struct sockaddr *)ss, (int)sslen);
  if (!t->lis) return cut_errf(err, errlen, CUT_ERR_NET, "cannot listen: %s", strerror(errno));
  return getsockname(evconnlistener_get_fd(t->lis), (struct sockaddr *)ss, &sslen) ? CUT_ERR_NET
                                                                                    : 0;
}

int px_demo_run(const struct px_demo_opts *opts, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sslen;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
  struct addrinfo *ai = NULL;
  if (getaddrinfo(opts->host, NULL, &hints, &ai) || !ai)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "not an IP address: \"%s\"", opts->host);
  memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
  sslen = ai->ai_addrlen;
  freeaddrinfo(ai);
  if (ss.ss_family == AF_INET)
    ((struct sockaddr_in *)&ss)->sin_port = htons(opts->port);
  else
    ((struct sockaddr_in6 *)&ss)->sin6_port = htons(opts->port);

  if (evthread_use_pthreads())
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "cannot set up libevent threading");
  int rv = 0, nthreads = opts->threads > 0 ? opts->threads : 1;
  SSL_CTX *ssl_ctx = NULL;
  if (opts->tls_cert && !(ssl_ctx = tls_ctx_new(opts, err, errlen))) return CUT_ERR_TLS;
  struct event_base *main_base = event_base_new();
  struct demo_thread *ts = calloc((size_t)nthreads, sizeof *ts);
  struct event *sigs[2] = {NULL, NULL};
  if (!main_base || !ts) {
    rv = cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < nthreads && rv == 0; i++) {
    struct demo_thread *t = &ts[i];
    t->w.opts = opts;
    t->w.ssl_ctx = ssl_ctx;
    t->w.conns.next = t->w.conns.prev = &t->w.conns;
    t->w.base = event_base_new();
    if (!t->w.base) rv = cut_errf(err, errlen, CUT_ERR_NOMEM, "cannot create an event base");
    if (rv == 0) rv = listen_one(t, &ss, sslen, nthreads > 1, err, errlen);
  }
  if (rv) goto out;
  sigs[0] = evsignal_new(main_base, SIGTERM, on_signal_cb, main_base);
  sigs[1] = evsignal_new(main_base, SIGINT, on_signal_cb, main_base);
  if (!sigs[0] || !sigs[1] || evsignal_add(sigs[0], NULL) || evsignal_add(sigs[1], NULL)) {
    rv = cut_errf(err, errlen, CUT_ERR_IO, "cannot handle signals");
    goto out;
  }
  for (int i = 0; i < nthreads; i++) {
    if (pthread_create(&ts[i].th, NULL, worker_main, &ts[i])) {
      rv = cut_errf(err, errlen, CUT_ERR_IO, "cannot start a thread");
      goto out;
    }
    ts[i].started = 1;
  }
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port;
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  } else {
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
    port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  static const char *const pnames[] = {"http1", "h2c", "auto"};
  fprintf(stderr, "demo-backend %s listening on %s%s%s:%u (%s%s, %d thread%s)\n", opts->name,
          ss.ss_family == AF_INET6 ? "[" : "", host, ss.ss_family == AF_INET6 ? "]" : "",
          (unsigned)port, pnames[opts->protocol], ssl_ctx ? " over TLS" : "", nthreads,
          nthreads == 1 ? "" : "s");
  fflush(stderr);
  event_base_dispatch(main_base);
out:
  for (int i = 0; ts && i < nthreads; i++)
    if (ts[i].started) event_base_loopexit(ts[i].w.base, NULL);
  for (int i = 0; ts && i < nthreads; i++) {
    struct demo_thread *t = &ts[i];
    if (t->started) pthread_join(t->th, NULL);
    if (t->lis) evconnlistener_free(t->lis);
    while (t->w.base && t->w.conns.next != &t->w.conns) t->w.conns.next->free_fn(t->w.conns.next);
    if (t->w.base) event_base_free(t->w.base);
  }
  free(ts);
  for (int i = 0; i < 2; i++)
    if (sigs[i]) event_free(sigs[i]);
  if (main_base) event_base_free(main_base);
  SSL_CTX_free(ssl_ctx);
  return rv;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: cutover demo-backend --name NAME --listen HOST:PORT [--protocol http1|h2c|auto]\n"
          "                            [--threads N] [--lineage TEXT]\n"
          "                            [--tls-cert FILE --tls-key FILE]\n\n"
          "A small backend for the demo, tests and benchmarks: answers JSON naming itself.\n"
          "Query parameters change a response: delay=500ms status=503 size=50MiB chunked=1\n"
          "close=mid drip=MS echo=1 trailers=1 (see docs/demo.md).\n");
}

/* Splits "HOST:PORT" or "[V6]:PORT" into host (in buf) and port. */
static int parse_listen(const char *s, char *buf, size_t buflen, uint16_t *port) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s) return -1;
  const char *h = s;
  size_t hlen = (size_t)(colon - s);
  if (h[0] == '[') {
    if (hlen < 2 || h[hlen - 1] != ']') return -1;
    h++;
    hlen -= 2;
  }
  if (hlen == 0 || hlen >= buflen) return -1;
  memcpy(buf, h, hlen);
  buf[hlen] = '\0';
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || p < 0 || p > 65535) return -1;
  *port = (uint16_t)p;
  return 0;
}

int px_demo_cmd(int argc, char **argv) {
  struct px_demo_opts o = {.name = NULL, .protocol = PX_DEMO_HTTP1, .threads = 1};
  char host[256];
  const char *listen = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "cutover demo-backend: unknown option or missing value: %s\n\n", a);
      usage(stderr);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--name")) {
      o.name = v;
    } else if (!strcmp(a, "--listen")) {
      listen = v;
    } else if (!strcmp(a, "--lineage")) {
      o.lineage = v;
    } else if (!strcmp(a, "--tls-cert")) {
      o.tls_cert = v;
    } else if (!strcmp(a, "--tls-key")) {
      o.tls_key = v;
    } else if (!strcmp(a, "--threads")) {
      char *end;
      long n = strtol(v, &end, 10);
      if (*end || n < 1 || n > DEMO_MAX_THREADS) {
        fprintf(stderr, "cutover demo-backend: --threads wants 1..%d, not \"%s\"\n",
                DEMO_MAX_THREADS, v);
        return 2;
      }
      o.threads = (int)n;
    } else if (!strcmp(a, "--protocol")) {
      if (!strcmp(v, "http1")) o.protocol = PX_DEMO_HTTP1;
      else if (!strcmp(v, "h2c")) o.protocol = PX_DEMO_H2C;
      else if (!strcmp(v, "auto")) o.protocol = PX_DEMO_AUTO;
      else {
        fprintf(stderr, "cutover demo-backend: --protocol wants http1, h2c or auto, not \"%s\"\n",
                v);
        return 2;
      }
    } else {
      fprintf(stderr, "cutover demo-backend: unknown option %s\n\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!o.name || !listen) {
    fprintf(stderr, "cutover demo-backend: --name and --listen are required\n\n");
    usage(stderr);
    return 2;
  }
  if (parse_listen(listen, host, sizeof host, &o.port)) {
    fprintf(stderr, "cutover demo-backend: --listen wants HOST:PORT, not \"%s\"\n", listen);
    return 2;
  }
  if (!o.tls_cert != !o.tls_key) {
    fprintf(stderr, "cutover demo-backend: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if (o.lineage && strpbrk(o.lineage, "\r\n")) {
    fprintf(stderr, "cutover demo-backend: --lineage must be one line\n");
    return 2;
  }
  o.host = host;
  signal(SIGPIPE, SIG_IGN);
  char err[256] = "";
  int rv = px_demo_run(&o, err, sizeof err);
  libevent_global_shutdown();
  if (rv) {
    fprintf(stderr, "cutover demo-backend: %s\n", err[0] ? err : cut_strerror(rv));
    return 1;
  }
  return 0;
}
