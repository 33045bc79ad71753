/* px_client: one client connection: socket or TLS bufferevent, protocol detection,
 * deferred sends and the single teardown path. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "common/cut_err.h"
#include "common/log.h"
#include "proxy/px_limits.h"
#include "proxy/px_metrics.h"
#include "proxy/px_server_int.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24

static void client_read_cb(struct bufferevent *bev, void *user_data);
static void client_write_cb(struct bufferevent *bev, void *user_data);
static void client_event_cb(struct bufferevent *bev, short what, void *user_data);
static void linger_step(struct px_client *c);

static int front_busy(const struct px_client *c) {
  if (c->proto == PX_PROTO_H2)
    return px_front_h2_busy(c);
  if (c->proto == PX_PROTO_H1)
    return px_front_h1_busy(c);
  return 0;
}

void px_client_free(struct px_client *c) {
  if (!c)
    return;
  if (c->proto == PX_PROTO_H2)
    px_front_h2_free(c);
  else if (c->proto == PX_PROTO_H1)
    px_front_h1_free(c);
  c->front = NULL;
  if (c->mproto >= 0)
    px_metrics_conn_close(px_worker_metrics(c->w), (unsigned)c->w->idx,
                          (enum px_metrics_proto)c->mproto);
  if (c->flush_ev)
    event_free(c->flush_ev);
  if (c->bev)
    bufferevent_free(c->bev); /* closes the socket (and frees the SSL) */
  struct px_worker *w = c->w;
  if (c->prev)
    c->prev->next = c->next;
  else
    w->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  w->nconns--;
  atomic_fetch_sub_explicit(&w->n_active, 1, memory_order_relaxed);
  free(c);
  px_worker_conn_gone(w);
}

static void flush_cb(evutil_socket_t fd, short what, void *user_data) {
  struct px_client *c = user_data;
  c->flush_pending = 0;
  if (c->dead) {
    px_client_free(c);
    return;
  }
  if (c->proto == PX_PROTO_H2)
    px_front_h2_flush(c);
  else if (c->proto == PX_PROTO_H1)
    px_front_h1_flush(c);
  if (c->dead) {
    px_client_free(c);
    return;
  }
  if (c->lingering)
    linger_step(c);
  if (c->closing && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
    px_client_free(c);
}

void px_client_schedule_flush(struct px_client *c) {
  if (c->flush_pending)
    return;
  c->flush_pending = 1;
  event_active(c->flush_ev, EV_WRITE, 0);
}

void px_client_kill(struct px_client *c) {
  if (c->dead)
    return;
  c->dead = 1;
  bufferevent_disable(c->bev, EV_READ | EV_WRITE);
  /* cancel every exchange now so no upstream callback reaches a dying
   * connection; the memory goes later, in flush_cb, since the caller may be a
   * frontend function still on the stack */
  if (c->proto == PX_PROTO_H2)
    px_front_h2_cancel(c);
  else if (c->proto == PX_PROTO_H1)
    px_front_h1_cancel(c);
  px_client_schedule_flush(c);
}

/* Lingering close: shut the write side once everything queued was written
 * (and close at once when the peer already ended its side). */
static void linger_step(struct px_client *c) {
  if (c->wr_shut || evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
    return;
  if (c->read_eof) {
    px_client_kill(c);
    return;
  }
  c->wr_shut = 1;
  int fd = (int)bufferevent_getfd(c->bev);
  if (fd >= 0)
    shutdown(fd, SHUT_WR);
}

void px_client_linger_close(struct px_client *c) {
  if (c->dead || c->lingering)
    return;
  c->lingering = 1;
  c->linger_until_ns = px_now_ns() + (uint64_t)PX_LINGER_MS * 1000000u;
  struct timeval tv = {PX_LINGER_MS / 1000, (PX_LINGER_MS % 1000) * 1000};
  bufferevent_set_timeouts(c->bev, &tv, &tv);
  bufferevent_enable(c->bev, EV_READ | EV_WRITE);
  struct evbuffer *in = bufferevent_get_input(c->bev);
  evbuffer_drain(in, evbuffer_get_length(in));
  /* the write side is shut by px_client_close_after_write(), once what the
   * caller queues next (the GOAWAY) was written */
}

void px_client_close_after_write(struct px_client *c) {
  if (c->lingering) {
    linger_step(c);
    return;
  }
  c->closing = 1;
  bufferevent_disable(c->bev, EV_READ);
  if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
    px_client_kill(c);
}

int px_client_upgrade_h2(struct px_client *c, const uint8_t *settings, size_t len,
                         struct px_request_head *head, uint64_t t_start_ns) {
  px_front_h1_free(c);
  c->proto = PX_PROTO_H2;
  int rc = px_front_h2_attach_upgrade(c, settings, len, head, t_start_ns);
  if (rc < 0) {
    if (!c->front)
      c->proto = PX_PROTO_DETECT;
    px_client_kill(c);
    return rc;
  }
  struct px_metrics *m = px_worker_metrics(c->w);
  if (c->mproto >= 0)
    px_metrics_conn_close(m, (unsigned)c->w->idx, (enum px_metrics_proto)c->mproto);
  c->mproto = PX_METRICS_H2C;
  px_metrics_conn_open(m, (unsigned)c->w->idx, PX_METRICS_H2C);
  bufferevent_enable(c->bev, EV_READ);
  /* the client may have sent its preface (and more) right after the request */
  if (evbuffer_get_length(bufferevent_get_input(c->bev)) != 0)
    px_front_h2_on_read(c);
  else
    px_client_schedule_flush(c);
  return 0;
}

void px_client_drain(struct px_client *c) {
  if (c->dead)
    return;
  if (c->proto == PX_PROTO_H2)
    px_front_h2_drain(c);
  else if (c->proto == PX_PROTO_H1)
    px_front_h1_drain(c);
  else
    px_client_kill(c);
}

static int conn_setup(struct px_worker *w, struct bufferevent *bev, int tls, const char *peer,
                      const struct px_listener_rt *l, struct px_client **out) {
  struct px_client *c = calloc(1, sizeof *c);
  if (!c) {
    bufferevent_free(bev);
    return CUT_ERR_NOMEM;
  }
  c->w = w;
  c->mproto = -1;
  c->bev = bev;
  c->tls = tls;
  c->l = l;
  snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "");
  c->flush_ev = event_new(w->base, -1, 0, flush_cb, c);
  if (!c->flush_ev) {
    bufferevent_free(bev);
    free(c);
    return CUT_ERR_NOMEM;
  }
  c->next = w->conns;
  if (w->conns)
    w->conns->prev = c;
  w->conns = c;
  w->nconns++;
  atomic_fetch_add_explicit(&w->n_conns, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&w->n_active, 1, memory_order_relaxed);
  bufferevent_setcb(bev, client_read_cb, client_write_cb, client_event_cb, c);
  bufferevent_setwatermark(bev, EV_WRITE, PX_OUT_LOW, 0);
  uint64_t idle = w->cfg->limits.idle_timeout_ms;
  uint64_t hdr = w->cfg->limits.header_timeout_ms;
  uint64_t first = hdr && (hdr < idle || !idle) ? hdr : idle;
  if (first) {
    struct timeval tv = {(time_t)(first / 1000), (suseconds_t)((first % 1000) * 1000)};
    bufferevent_set_timeouts(bev, &tv, NULL);
  }
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  if (out)
    *out = c;
  return 0;
}

void px_client_first_request(struct px_client *c) {
  if (c->had_request)
    return;
  c->had_request = 1;
  uint64_t idle = c->w->cfg->limits.idle_timeout_ms;
  if (idle == c->w->cfg->limits.header_timeout_ms)
    return;
  struct timeval tv = {(time_t)(idle / 1000), (suseconds_t)((idle % 1000) * 1000)};
  bufferevent_set_timeouts(c->bev, idle ? &tv : NULL, NULL);
}

int px_client_attach(struct px_worker *w, struct bufferevent *bev, int tls, const char *peer,
                   struct px_client **out) {
  return conn_setup(w, bev, tls, peer, NULL, out);
}

int px_client_accept(struct px_worker *w, const struct px_listener_rt *l, int fd,
                   const struct sockaddr *sa, int salen) {
  char peer[64] = "";
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, peer, sizeof peer);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, peer, sizeof peer);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct bufferevent *bev;
  if (l->tls) {
    SSL *ssl = SSL_new(l->ssl);
    if (!ssl) {
      close(fd);
      return CUT_ERR_TLS;
    }
    bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
      SSL_free(ssl);
      close(fd);
      return CUT_ERR_NOMEM;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  } else {
    bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
      close(fd);
      return CUT_ERR_NOMEM;
    }
  }
  struct px_client *c = NULL;
  int rc = conn_setup(w, bev, l->tls, peer, l, &c);
  if (rc == 0 && w->draining)
    px_client_kill(c);
  return rc;
}

/* Picks HTTP/2 or HTTP/1.1: ALPN on TLS, the connection preface in cleartext. */
static int detect(struct px_client *c) {
  if (c->tls) {
    const unsigned char *alpn = NULL;
    unsigned int alen = 0;
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    if (ssl)
      SSL_get0_alpn_selected(ssl, &alpn, &alen);
    c->proto = (alen == 2 && memcmp(alpn, "h2", 2) == 0) ? PX_PROTO_H2 : PX_PROTO_H1;
  } else {
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);
    unsigned char buf[H2_PREFACE_LEN];
    size_t k = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;
    evbuffer_copyout(in, buf, k);
    if (memcmp(buf, h2_preface, k) != 0)
      c->proto = PX_PROTO_H1;
    else if (k == H2_PREFACE_LEN)
      c->proto = PX_PROTO_H2;
    else
      return 0; /* a prefix of the preface: wait for more */
  }
  int rc = c->proto == PX_PROTO_H2 ? px_front_h2_attach(c) : px_front_h1_attach(c);
  if (rc < 0) {
    c->proto = PX_PROTO_DETECT;
    return rc;
  }
  /* counted once its protocol is known: from here until px_client_free */
  c->mproto = c->proto == PX_PROTO_H1 ? PX_METRICS_HTTP1 : c->tls ? PX_METRICS_H2 : PX_METRICS_H2C;
  px_metrics_conn_open(px_worker_metrics(c->w), (unsigned)c->w->idx,
                       (enum px_metrics_proto)c->mproto);
  return 1;
}

static void client_read_cb(struct bufferevent *bev, void *user_data) {
  struct px_client *c = user_data;
  if (c->dead)
    return;
  if (c->lingering) {
    struct evbuffer *in = bufferevent_get_input(bev);
    c->linger_bytes += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    if (px_now_ns() >= c->linger_until_ns || c->linger_bytes > PX_LINGER_BYTES)
      px_client_kill(c);
    return;
  }
  if (c->proto == PX_PROTO_DETECT) {
    int rc = detect(c);
    if (rc < 0) {
      px_client_kill(c);
      return;
    }
    if (rc == 0)
      return;
  }
  if (c->proto == PX_PROTO_H2)
    px_front_h2_on_read(c);
  else
    px_front_h1_on_read(c);
}

static void client_write_cb(struct bufferevent *bev, void *user_data) {
  struct px_client *c = user_data;
  if (c->dead)
    return;
  if (c->proto == PX_PROTO_H2)
    px_front_h2_on_write(c);
  else if (c->proto == PX_PROTO_H1)
    px_front_h1_on_write(c);
  if (!c->dead && c->lingering)
    linger_step(c);
  if (!c->dead && c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
    px_client_kill(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *user_data) {
  struct px_client *c = user_data;
  if (c->dead)
    return;
  if (what & BEV_EVENT_CONNECTED)
    return;
  if (c->lingering) { /* the peer closed, or the linger time is up */
    if ((what & BEV_EVENT_EOF) && !(what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) &&
        evbuffer_get_length(bufferevent_get_output(bev)) != 0) {
      /* a half-close: what we queued still goes out (bounded by the write timeout) */
      c->read_eof = 1;
      bufferevent_disable(bev, EV_READ);
      return;
    }
    px_client_kill(c);
    return;
  }
  if (what & BEV_EVENT_TIMEOUT) {
    /* an idle timeout only ends a connection with nothing in flight */
    if (front_busy(c)) {
      bufferevent_enable(bev, EV_READ);
      return;
    }
    log_debug("proxy", "client %s: %s timeout", c->peer, c->had_request ? "idle" : "header");
    px_limit_hit(c->w->srv->limits,
                 c->had_request ? PX_LIMIT_IDLE_TIMEOUT : PX_LIMIT_HEADER_TIMEOUT,
                 (unsigned)c->w->idx);
    px_client_kill(c);
    return;
  }
  if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && c->proto == PX_PROTO_H1 &&
      px_front_h1_busy(c)) {
    /* half-close after a request: answer it, then close */
    c->read_eof = 1;
    return;
  }
  px_client_kill(c);
}
