/* px_admin_client: blocking HTTP/1.1 requests to the admin API for the CLI. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/cut_err.h"
#include "proxy/px_admin_client.h"

#define MAX_RESPONSE (64u << 20)

void px_admin_reply_clear(struct px_admin_reply *r) {
  if (!r)
    return;
  free(r->body);
  memset(r, 0, sizeof *r);
}

static int dial_host(const struct px_admin_target *t, int timeout_ms, char *err, size_t errlen) {
  char port[8];
  snprintf(port, sizeof port, "%u", (unsigned)t->port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
  struct addrinfo *res;
  int g = getaddrinfo(t->host, port, &hints, &res);
  if (g != 0)
    return cut_errf(err, errlen, CUT_ERR_NET, "cannot resolve %s: %s", t->host, gai_strerror(g));
  int fd = -1, saved = 0;
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
      continue;
    /* On Linux SO_SNDTIMEO bounds connect() too. */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    saved = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0)
    return cut_errf(err, errlen, saved == EINPROGRESS || saved == EAGAIN ? CUT_ERR_TIMEOUT
                                                                         : CUT_ERR_NET,
                    "cannot connect to the admin API at %s:%u: %s (is the proxy running?)",
                    t->host, (unsigned)t->port, strerror(saved));
  return fd;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int px_admin_request(const struct px_admin_target *t, const char *method, const char *path,
                     const char *body, struct px_admin_reply *out, char *err, size_t errlen) {
  if (!t || !t->host || !method || !path || !out)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "px_admin_request: NULL argument");
  memset(out, 0, sizeof *out);
  int timeout_ms = t->timeout_ms > 0 ? t->timeout_ms : 10000;
  int fd = dial_host(t, timeout_ms, err, errlen);
  if (fd < 0)
    return fd;

  size_t blen = body ? strlen(body) : 0;
  int is_v6 = strchr(t->host, ':') != NULL;
  size_t cap = 512 + strlen(path) + (t->token ? strlen(t->token) : 0) +
               (t->actor ? strlen(t->actor) : 0) + strlen(t->host);
  char *head = malloc(cap);
  if (!head) {
    close(fd);
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
  }
  int hn = snprintf(head, cap,
                    "%s %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nConnection: close\r\n"
                    "Accept: application/json\r\n%s%s%s%s%s%s",
                    method, path, is_v6 ? "[" : "", t->host, is_v6 ? "]" : "", (unsigned)t->port,
                    t->token ? "Authorization: Bearer " : "", t->token ? t->token : "",
                    t->token ? "\r\n" : "", t->actor ? "X-Cutover-Actor: " : "",
                    t->actor ? t->actor : "", t->actor ? "\r\n" : "");
  if (body)
    hn += snprintf(head + hn, cap - (size_t)hn,
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
  hn += snprintf(head + hn, cap - (size_t)hn, "\r\n");
  int bad = send_all(fd, head, (size_t)hn) || (blen && send_all(fd, body, blen));
  free(head);
  if (bad) {
    int saved = errno;
    close(fd);
    return cut_errf(err, errlen, saved == EAGAIN ? CUT_ERR_TIMEOUT : CUT_ERR_NET,
                    "cannot send to the admin API: %s", strerror(saved));
  }

  /* Read to EOF (Connection: close), bounded. */
  size_t len = 0, rcap = 16384;
  char *buf = malloc(rcap);
  int rc = 0;
  while (buf) {
    if (len + 1 >= rcap) {
      if (rcap >= MAX_RESPONSE) {
        rc = cut_errf(err, errlen, CUT_ERR_PROTO, "admin response larger than %u bytes",
                      MAX_RESPONSE);
        break;
      }
      char *nb = realloc(buf, rcap * 2);
      if (!nb) {
        rc = cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
        break;
      }
      buf = nb;
      rcap *= 2;
    }
    ssize_t r = recv(fd, buf + len, rcap - len - 1, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = cut_errf(err, errlen, errno == EAGAIN ? CUT_ERR_TIMEOUT : CUT_ERR_NET,
                    "no answer from the admin API: %s", strerror(errno));
      break;
    }
    if (r == 0)
      break;
    len += (size_t)r;
  }
  close(fd);
  if (!buf)
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
  if (rc) {
    free(buf);
    return rc;
  }
  buf[len] = '\0';

  int status = 0;
  char *hdr_end = strstr(buf, "\r\n\r\n");
  if (sscanf(buf, "HTTP/1.%*1d %3d", &status) != 1 || status < 100 || !hdr_end) {
    free(buf);
    return cut_errf(err, errlen, CUT_ERR_PROTO, "the admin API sent a malformed response");
  }
  *hdr_end = '\0';
  char *b = hdr_end + 4;
  size_t blen_in = len - (size_t)(b - buf);
  /* Honour Content-Length when present; chunked answers are not produced by the server. */
  for (char *line = strstr(buf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, "Content-Length:", 15) == 0) {
      size_t cl = strtoul(line + 17, NULL, 10);
      if (cl < blen_in)
        blen_in = cl;
    }
    if (strncasecmp(line + 2, "Transfer-Encoding:", 18) == 0) {
      free(buf);
      return cut_errf(err, errlen, CUT_ERR_PROTO, "unexpected Transfer-Encoding from the admin API");
    }
  }
  out->body = malloc(blen_in + 1);
  if (!out->body) {
    free(buf);
    return cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
  }
  memcpy(out->body, b, blen_in);
  out->body[blen_in] = '\0';
  out->len = blen_in;
  out->status = status;
  free(buf);
  return 0;
}
