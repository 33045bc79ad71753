/* px_admin: the admin HTTP API on its own thread (libevent evhttp), bearer-token protected. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "common/cut_err.h"
#include "common/cut_fs.h"
#include "common/log.h"
#include "common/metrics.h"
#include "proxy/px_admin.h"

#define MOD "admin"
#define TOKEN_BYTES 32
#define MAX_NAME 128
#define MAX_ACTOR 64
#define ERR_LEN 4096

struct px_admin {
  struct event_base *base;
  struct evhttp *http;
  struct event *stop_ev;     /* activated from px_admin_free's thread */
  pthread_t thread;
  int thread_started;
  uint16_t port;
  unsigned char token_digest[SHA256_DIGEST_LENGTH];
  struct px_admin_ops ops;
  struct met_registry *metrics;
  struct met_series *auth_failures;
  struct met_series *by_class[6]; /* 1xx..5xx, index = status / 100 */
  time_t started;
};

/* ---------- token ---------- */

static int read_token(const char *path, char **out, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot open token file %s: %s", path,
                    strerror(errno));
  struct stat st;
  if (fstat(fd, &st) == 0 && (st.st_mode & 077))
    log_warn(MOD, "token file %s is readable by other users (mode %03o); use chmod 600", path,
             (unsigned)(st.st_mode & 0777));
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  int saved = errno;
  close(fd);
  if (n < 0)
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot read token file %s: %s", path,
                    strerror(saved));
  buf[n] = '\0';
  char *p = buf;
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
    p++;
  size_t len = strlen(p);
  while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r' ||
                 p[len - 1] == '\n'))
    p[--len] = '\0';
  if (len == 0)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "token file %s is empty", path);
  *out = strdup(p);
  return *out ? 0 : CUT_ERR_NOMEM;
}

static int create_token(const char *path, char *err, size_t errlen) {
  /* Create the parent directories so a fresh run/ works out of the box. */
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    int rc = cut_mkdir_p(dir, 0700, err, errlen);
    if (rc != 0) return rc;
  }
  unsigned char raw[TOKEN_BYTES];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return cut_errf(err, errlen, CUT_ERR_IO, "no randomness for the admin token");
  char hex[TOKEN_BYTES * 2 + 2];
  for (size_t i = 0; i < TOKEN_BYTES; i++)
    snprintf(hex + 2 * i, 3, "%02x", raw[i]);
  OPENSSL_cleanse(raw, sizeof raw);
  hex[TOKEN_BYTES * 2] = '\n';
  hex[TOKEN_BYTES * 2 + 1] = '\0';
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST)
      return 0; /* someone else made it first: read theirs */
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot create token file %s: %s", path,
                    strerror(errno));
  }
  size_t len = strlen(hex);
  ssize_t w = write(fd, hex, len);
  int ok = w == (ssize_t)len && fsync(fd) == 0;
  int saved = errno;
  close(fd);
  OPENSSL_cleanse(hex, sizeof hex);
  if (!ok) {
    unlink(path);
    return cut_errf(err, errlen, CUT_ERR_IO, "cannot write token file %s: %s", path,
                    strerror(saved));
  }
  log_info(MOD, "generated a new admin token in %s", path);
  return 0;
}

int px_admin_token_load(const char *path, int create, char **out, char *err, size_t errlen) {
  if (!path || !*path || !out)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "no admin token file configured");
  if (create && access(path, F_OK) != 0 && errno == ENOENT) {
    int rc = create_token(path, err, errlen);
    if (rc)
      return rc;
  }
  return read_token(path, out, err, errlen);
}

/* ---------- helpers for ops implementations ---------- */

int px_admin_percent_from_json(const json_t *v, uint32_t *ppm, char *err, size_t errlen) {
  double p;
  if (json_is_number(v)) {
    p = json_number_value(v);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    p = strtod(s, &end);
    if (end == s || errno)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "percent \"%s\" is not a number", s);
    if (*end == '%')
      end++;
    if (*end)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "percent \"%s\" is not a number", s);
  } else {
    return cut_errf(err, errlen, CUT_ERR_INVALID, "percent must be a number such as 12.5");
  }
  if (!isfinite(p) || p < 0 || p > 100)
    return cut_errf(err, errlen, CUT_ERR_RANGE, "percent %g is out of range (0 to 100)", p);
  double scaled = p * 10000.0;
  double r = nearbyint(scaled);
  if (fabs(scaled - r) > 1e-6)
    return cut_errf(err, errlen, CUT_ERR_RANGE,
                    "percent %.10g has more than 4 decimals (the finest step is 0.0001)", p);
  *ppm = (uint32_t)r;
  return 0;
}

static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > MAX_NAME || lb > MAX_NAME)
    return SIZE_MAX;
  size_t row[MAX_NAME + 1];
  for (size_t j = 0; j <= lb; j++)
    row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best)
        best = up + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

int px_admin_unknown(char *err, size_t errlen, const char *noun, const char *name,
                     const char *const *names, size_t nnames) {
  const char *best = NULL;
  size_t best_d = SIZE_MAX, limit = strlen(name) / 3 + 1;
  for (size_t i = 0; i < nnames; i++) {
    size_t d = edit_distance(name, names[i]);
    if (d <= limit && d < best_d) {
      best = names[i];
      best_d = d;
    }
  }
  if (best)
    return cut_errf(err, errlen, CUT_ERR_NOT_FOUND, "unknown %s \"%s\" (did you mean \"%s\"?)",
                    noun, name, best);
  return cut_errf(err, errlen, CUT_ERR_NOT_FOUND, "unknown %s \"%s\"", noun, name);
}

/* ---------- responses ---------- */

static int http_status_of(int rc) {
  switch (rc) {
  case CUT_ERR_NOT_FOUND: return 404;
  case CUT_ERR_INVALID:
  case CUT_ERR_RANGE:
  case CUT_ERR_PARSE:
  case CUT_ERR_CONFIG: return 400;
  case CUT_ERR_STATE:
  case CUT_ERR_EXISTS: return 409;
  case CUT_ERR_UNSUPPORTED: return 501;
  case CUT_ERR_AGAIN: return 503;
  default: return 500;
  }
}

static const char *reason_of(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  default: return "Internal Server Error";
  }
}

static void count_status(struct px_admin *a, int status) {
  int cls = status / 100;
  if (cls >= 1 && cls <= 5)
    met_counter_add(a->by_class[cls], UINT_MAX, 1);
}

/* Sends `body` (taken) as JSON with `status`. */
static int reply_json(struct px_admin *a, struct evhttp_request *req, int status, json_t *body) {
  char *text = body ? json_dumps(body, JSON_INDENT(2) | JSON_ENSURE_ASCII) : NULL;
  json_decref(body);
  struct evbuffer *buf = evbuffer_new();
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", "application/json");
  evhttp_add_header(h, "Cache-Control", "no-store");
  if (buf) {
    evbuffer_add_printf(buf, "%s\n", text ? text : "{\"error\": \"out of memory\"}");
    evhttp_send_reply(req, text ? status : 500, reason_of(text ? status : 500), buf);
    evbuffer_free(buf);
  } else {
    evhttp_send_error(req, 500, NULL);
  }
  free(text);
  count_status(a, status);
  return 0;
}

static int reply_error(struct px_admin *a, struct evhttp_request *req, int status,
                        const char *msg) {
  json_t *o = json_pack("{s:s, s:i}", "error", msg, "status", status);
  reply_json(a, req, status, o);
  return 0;
}

static int reply_rc(struct px_admin *a, struct evhttp_request *req, int rc, const char *err) {
  int status = http_status_of(rc);
  if (rc == CUT_ERR_CONFIG) {
    /* A rejected reload lists every error of the file. */
    json_t *lines = json_array();
    const char *p = err;
    while (p && *p) {
      const char *nl = strchr(p, '\n');
      size_t n = nl ? (size_t)(nl - p) : strlen(p);
      if (n)
        json_array_append_new(lines, json_stringn(p, n));
      p = nl ? nl + 1 : NULL;
    }
    json_t *o = json_pack("{s:s, s:i, s:o}", "error", "config rejected; the old config keeps serving",
                          "status", status, "errors", lines);
    return reply_json(a, req, status, o);
  }
  return reply_error(a, req, status, *err ? err : cut_strerror(rc));
}

/* ---------- request parsing ---------- */

static int valid_name(const char *s, size_t n) {
  if (n == 0 || n > MAX_NAME)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

static int authorized(struct px_admin *a, struct evhttp_request *req) {
  const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
  if (!h || strncasecmp(h, "Bearer ", 7) != 0)
    return 0;
  const char *tok = h + 7;
  while (*tok == ' ')
    tok++;
  /* Comparing digests keeps the time independent of the token's length and content. */
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)tok, strlen(tok), d);
  return CRYPTO_memcmp(d, a->token_digest, sizeof d) == 0;
}

static void actor_of(struct evhttp_request *req, char *buf, size_t len) {
  char *host = NULL;
  ev_uint16_t port = 0;
  struct evhttp_connection *c = evhttp_request_get_connection(req);
  if (c)
    evhttp_connection_get_peer(c, &host, &port);
  const char *who = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Cutover-Actor");
  char clean[MAX_ACTOR + 1] = "";
  if (who) {
    size_t j = 0;
    for (size_t i = 0; who[i] && j < MAX_ACTOR; i++)
      if (who[i] > ' ' && who[i] < 0x7f && who[i] != '"' && who[i] != '\\')
        clean[j++] = who[i];
    clean[j] = '\0';
  }
  snprintf(buf, len, "admin %s:%u%s%s", host ? host : "?", (unsigned)port, *clean ? " " : "",
           clean);
}

/* Parses the request body as a JSON object (an empty body is an empty object
 * when `optional`). Checks that every key is one of `allowed`. */
static int body_object(struct evhttp_request *req, int optional, const char *const *allowed,
                       json_t **out, char *err, size_t errlen) {
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  size_t n = evbuffer_get_length(in);
  if (n == 0) {
    if (!optional)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "request body required: a JSON object");
    *out = json_object();
    return *out ? 0 : CUT_ERR_NOMEM;
  }
  char *text = malloc(n);
  if (!text)
    return CUT_ERR_NOMEM;
  evbuffer_copyout(in, text, n);
  json_error_t je;
  json_t *o = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
  free(text);
  if (!o)
    return cut_errf(err, errlen, CUT_ERR_PARSE, "malformed JSON at line %d column %d: %s",
                    je.line, je.column, je.text);
  if (!json_is_object(o)) {
    json_decref(o);
    return cut_errf(err, errlen, CUT_ERR_INVALID, "request body must be a JSON object");
  }
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    int ok = 0;
    for (size_t i = 0; allowed[i]; i++)
      ok |= strcmp(key, allowed[i]) == 0;
    if (!ok) {
      char list[256] = "";
      for (size_t i = 0; allowed[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, allowed[i], sizeof list - strlen(list) - 1);
      }
      int rc = cut_errf(err, errlen, CUT_ERR_INVALID, "unknown field \"%s\" (expected: %s)", key,
                        list);
      json_decref(o);
      return rc;
    }
  }
  *out = o;
  return 0;
}

static int string_field(json_t *o, const char *key, const char **out, char *err, size_t errlen) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_string(v))
    return cut_errf(err, errlen, CUT_ERR_INVALID, "\"%s\" must be a string", key);
  *out = json_string_value(v);
  return 0;
}

/* ---------- endpoints ---------- */

typedef int (*named_op)(void *ud, const char *name, const struct px_admin_change *c,
                        json_t **out, char *err, size_t errlen);

static int do_list(struct px_admin *a, struct evhttp_request *req,
                    int (*op)(void *, json_t **, char *, size_t)) {
  char err[ERR_LEN] = "";
  json_t *out = NULL;
  if (!op)
    return reply_error(a, req, 501, "not available in this process");
  int rc = op(a->ops.user_data, &out, err, sizeof err);
  if (rc)
    return reply_rc(a, req, rc, err);
  reply_json(a, req, 200, out);
  return 0;
}

/* POST endpoints whose body carries only an optional reason. */
static int do_named(struct px_admin *a, struct evhttp_request *req, const char *name,
                     named_op op, const char *what) {
  static const char *const allowed[] = {"reason", NULL};
  char err[ERR_LEN] = "", actor[160];
  json_t *body = NULL, *out = NULL;
  if (!op)
    return reply_error(a, req, 501, "not available in this process");
  int rc = body_object(req, 1, allowed, &body, err, sizeof err);
  struct px_admin_change c = {.reason = ""};
  if (!rc)
    rc = string_field(body, "reason", &c.reason, err, sizeof err);
  if (rc) {
    json_decref(body);
    return reply_rc(a, req, rc, err);
  }
  actor_of(req, actor, sizeof actor);
  c.actor = actor;
  rc = op(a->ops.user_data, name, &c, &out, err, sizeof err);
  if (rc) {
    log_warn(MOD, "%s %s by %s refused: %s", what, name, actor, err);
    json_decref(body);
    return reply_rc(a, req, rc, err);
  }
  log_info(MOD, "%s %s by %s (reason: %s)", what, name, actor, *c.reason ? c.reason : "none");
  json_decref(body);
  reply_json(a, req, 200, out);
  return 0;
}

static int do_dial_put(struct px_admin *a, struct evhttp_request *req, const char *name) {
  static const char *const allowed[] = {"percent", "reason", "datacenter", NULL};
  char err[ERR_LEN] = "", actor[160], pct[32];
  json_t *body = NULL, *out = NULL;
  if (!a->ops.dial_set)
    return reply_error(a, req, 501, "not available in this process");
  int rc = body_object(req, 0, allowed, &body, err, sizeof err);
  struct px_admin_change c = {.reason = ""};
  if (!rc) {
    json_t *p = json_object_get(body, "percent");
    if (!p)
      rc = cut_errf(err, sizeof err, CUT_ERR_INVALID, "missing field \"percent\"");
    else
      rc = px_admin_percent_from_json(p, &c.ppm, err, sizeof err);
  }
  if (!rc)
    rc = string_field(body, "reason", &c.reason, err, sizeof err);
  if (!rc)
    rc = string_field(body, "datacenter", &c.datacenter, err, sizeof err);
  if (rc) {
    json_decref(body);
    return reply_rc(a, req, rc, err);
  }
  actor_of(req, actor, sizeof actor);
  c.actor = actor;
  snprintf(pct, sizeof pct, "%.4f", c.ppm / 10000.0);
  rc = a->ops.dial_set(a->ops.user_data, name, &c, &out, err, sizeof err);
  if (rc) {
    log_warn(MOD, "set dial %s to %s%% by %s refused: %s", name, pct, actor, err);
    json_decref(body);
    return reply_rc(a, req, rc, err);
  }
  log_info(MOD, "set dial %s%s%s to %s%% by %s (reason: %s)", name,
           c.datacenter ? " in " : "", c.datacenter ? c.datacenter : "", pct, actor,
           *c.reason ? c.reason : "none");
  json_decref(body);
  reply_json(a, req, 200, out);
  return 0;
}

static int do_status(struct px_admin *a, struct evhttp_request *req) {
  char err[ERR_LEN] = "";
  json_t *out = NULL;
  if (a->ops.status) {
    int rc = a->ops.status(a->ops.user_data, &out, err, sizeof err);
    if (rc)
      return reply_rc(a, req, rc, err);
  }
  if (!json_is_object(out)) {
    json_decref(out);
    out = json_object();
  }
  json_object_set_new(out, "version", json_string(CUTOVER_VERSION));
  json_object_set_new(out, "uptime_seconds", json_integer((json_int_t)(time(NULL) - a->started)));
  reply_json(a, req, 200, out);
  return 0;
}

static int do_reload(struct px_admin *a, struct evhttp_request *req) {
  char err[ERR_LEN] = "";
  json_t *out = NULL;
  if (!a->ops.reload)
    return reply_error(a, req, 501, "not available in this process");
  int rc = a->ops.reload(a->ops.user_data, &out, err, sizeof err);
  if (rc) {
    /* One log line: the errors separated by "; " (the answer lists them one by one). */
    char flat[ERR_LEN];
    size_t j = 0;
    for (size_t i = 0; err[i] && j + 3 < sizeof flat; i++) {
      if (err[i] == '\n') {
        if (err[i + 1]) {
          flat[j++] = ';';
          flat[j++] = ' ';
        }
      } else {
        flat[j++] = err[i];
      }
    }
    flat[j] = '\0';
    log_error(MOD, "reload rejected, the old config keeps serving: %s", flat);
    return reply_rc(a, req, rc, err);
  }
  log_info(MOD, "config reloaded");
  reply_json(a, req, 200, out ? out : json_pack("{s:s}", "status", "reloaded"));
  return 0;
}

static int do_metrics(struct px_admin *a, struct evhttp_request *req) {
  char *text = NULL;
  size_t len = 0;
  if (a->metrics && met_render(a->metrics, &text, &len) != 0)
    return reply_error(a, req, 500, "out of memory rendering metrics");
  struct evbuffer *buf = evbuffer_new();
  if (!buf) {
    free(text);
    {
    evhttp_send_error(req, 500, NULL);
    return 0;
  }
  }
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "text/plain; version=0.0.4; charset=utf-8");
  if (text)
    evbuffer_add(buf, text, len);
  free(text);
  evhttp_send_reply(req, 200, "OK", buf);
  evbuffer_free(buf);
  count_status(a, 200);
  return 0;
}

static int method_not_allowed(struct px_admin *a, struct evhttp_request *req, const char *allow) {
  evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
  char msg[96];
  snprintf(msg, sizeof msg, "method not allowed here (allowed: %s)", allow);
  reply_error(a, req, 405, msg);
  return 0;
}

static int route(struct px_admin *a, struct evhttp_request *req) {
  enum evhttp_cmd_type m = evhttp_request_get_command(req);
  if (!authorized(a, req)) {
    char actor[160];
    actor_of(req, actor, sizeof actor);
    log_warn(MOD, "refused a request without a valid token from %s", actor);
    met_counter_add(a->auth_failures, UINT_MAX, 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"cutover\"");
    return reply_error(a, req, 401, "missing or invalid bearer token");
  }
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
  if (!path || *path != '/')
    return reply_error(a, req, 400, "bad request path");

  /* Split into at most three segments: /collection/NAME/action. */
  const char *seg[4];
  size_t seglen[4], nseg = 0;
  const char *p = path + 1;
  while (*p) {
    const char *e = strchr(p, '/');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (nseg == 4)
      return reply_error(a, req, 404, "no such endpoint");
    seg[nseg] = p;
    seglen[nseg++] = n;
    p += n;
    if (*p == '/')
      p++;
  }
#define SEG_IS(i, s) (seglen[i] == strlen(s) && memcmp(seg[i], s, seglen[i]) == 0)
  char name[MAX_NAME + 1] = "";
  if (nseg >= 2) {
    if (!valid_name(seg[1], seglen[1]))
      return reply_error(a, req, 400, "invalid name: use letters, digits, '.', '_' or '-'");
    memcpy(name, seg[1], seglen[1]);
    name[seglen[1]] = '\0';
  }
  if (nseg == 1 && SEG_IS(0, "dials")) {
    if (m != EVHTTP_REQ_GET)
      return method_not_allowed(a, req, "GET");
    return do_list(a, req, a->ops.dials_list);
  }
  if (nseg == 2 && SEG_IS(0, "dials")) {
    if (m == EVHTTP_REQ_GET) {
      char err[ERR_LEN] = "";
      json_t *out = NULL;
      if (!a->ops.dial_get)
        return reply_error(a, req, 501, "not available in this process");
      int rc = a->ops.dial_get(a->ops.user_data, name, &out, err, sizeof err);
      return rc ? reply_rc(a, req, rc, err) : reply_json(a, req, 200, out);
    }
    if (m == EVHTTP_REQ_PUT)
      return do_dial_put(a, req, name);
    return method_not_allowed(a, req, "GET, PUT");
  }
  if (nseg == 3 && SEG_IS(0, "dials") && (SEG_IS(2, "step") || SEG_IS(2, "rollback"))) {
    if (m != EVHTTP_REQ_POST)
      return method_not_allowed(a, req, "POST");
    if (SEG_IS(2, "step"))
      return do_named(a, req, name, a->ops.dial_step, "step dial");
    return do_named(a, req, name, a->ops.dial_rollback, "roll back dial");
  }
  if (nseg == 1 && SEG_IS(0, "experiments")) {
    if (m != EVHTTP_REQ_GET)
      return method_not_allowed(a, req, "GET");
    return do_list(a, req, a->ops.experiments_list);
  }
  if (nseg == 3 && SEG_IS(0, "experiments") && (SEG_IS(2, "start") || SEG_IS(2, "stop"))) {
    if (m != EVHTTP_REQ_POST)
      return method_not_allowed(a, req, "POST");
    if (SEG_IS(2, "start"))
      return do_named(a, req, name, a->ops.experiment_start, "start experiment");
    return do_named(a, req, name, a->ops.experiment_stop, "stop experiment");
  }
  if (nseg == 1 && SEG_IS(0, "status"))
    return m == EVHTTP_REQ_GET ? do_status(a, req) : method_not_allowed(a, req, "GET");
  if (nseg == 1 && SEG_IS(0, "reload"))
    return m == EVHTTP_REQ_POST ? do_reload(a, req) : method_not_allowed(a, req, "POST");
  if (nseg == 1 && SEG_IS(0, "metrics"))
    return m == EVHTTP_REQ_GET ? do_metrics(a, req) : method_not_allowed(a, req, "GET");
  if (nseg == 1 && SEG_IS(0, "healthz")) {
    if (m != EVHTTP_REQ_GET)
      return method_not_allowed(a, req, "GET");
    if (a->ops.ready && !a->ops.ready(a->ops.user_data))
      return reply_json(a, req, 503, json_pack("{s:s}", "status", "draining"));
    return reply_json(a, req, 200, json_pack("{s:s}", "status", "ok"));
  }
#undef SEG_IS
  return reply_error(a, req, 404, "no such endpoint (see GET /status, /dials, /experiments, /metrics)");
}

static void on_request_cb(struct evhttp_request *req, void *user_data) {
  struct px_admin *a = user_data;
  (void)route(a, req);
}

/* ---------- lifecycle ---------- */

static void on_stop_cb(evutil_socket_t fd, short what, void *user_data) {
  struct px_admin *a = user_data;
  event_base_loopbreak(a->base);
}

static void *admin_thread(void *arg) {
  struct px_admin *a = arg;
  event_base_dispatch(a->base);
  return NULL;
}

static void register_metrics(struct px_admin *a) {
  if (!a->metrics)
    return;
  a->auth_failures = met_simple(a->metrics, MET_COUNTER, "cutover_admin_auth_failures_total",
                                "Admin API requests refused for a missing or wrong token.");
  static const char *const labels[] = {"status_class"};
  struct met_family_def d = {.name = "cutover_admin_requests_total",
                             .help = "Admin API requests by response status class.",
                             .type = MET_COUNTER, .labels = labels, .nlabels = 1,
                             .max_series = 5};
  struct met_family *f;
  char err[160];
  if (met_family_register(a->metrics, &d, &f, err, sizeof err) != 0) {
    log_error(MOD, "%s", err);
    return;
  }
  static const char *const classes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int i = 1; i <= 5; i++)
    a->by_class[i] = met_series_get(f, (const char *const[]){classes[i]});
}

int px_admin_start(struct px_admin **out, const struct px_admin_opts *opts, char *err,
                   size_t errlen) {
  if (!out || !opts)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "px_admin_start: NULL argument");
  char *token = NULL;
  int rc = px_admin_token_load(opts->token_file, 1, &token, err, errlen);
  if (rc)
    return rc;
  struct px_admin *a = calloc(1, sizeof *a);
  if (!a) {
    rc = cut_errf(err, errlen, CUT_ERR_NOMEM, "out of memory");
    goto fail_alloc;
  }
  SHA256((const unsigned char *)token, strlen(token), a->token_digest);
  a->ops = opts->ops;
  a->metrics = opts->metrics;
  a->started = time(NULL);
  register_metrics(a);

  /* The base is stopped from another thread in px_admin_free. */
  evthread_use_pthreads();
  a->base = event_base_new();
  if (!a->base || !(a->http = evhttp_new(a->base)) ||
      !(a->stop_ev = event_new(a->base, -1, 0, on_stop_cb, a))) {
    rc = cut_errf(err, errlen, CUT_ERR_NOMEM, "cannot create the admin event loop");
    goto fail_http;
  }
  evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH);
  evhttp_set_max_body_size(a->http, opts->max_body_bytes ? opts->max_body_bytes : 64 * 1024);
  evhttp_set_max_headers_size(a->http, 16 * 1024);
  evhttp_set_timeout(a->http, 10);
  evhttp_set_gencb(a->http, on_request_cb, a);
  const char *host = opts->host && *opts->host ? opts->host : "127.0.0.1";
  struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(a->http, host, opts->port);
  if (!bs) {
    rc = cut_errf(err, errlen, CUT_ERR_NET, "admin: cannot listen on %s:%u: %s", host,
                  (unsigned)opts->port, strerror(errno));
    goto fail_http;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
    a->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
  if (pthread_create(&a->thread, NULL, admin_thread, a) != 0) {
    rc = cut_errf(err, errlen, CUT_ERR_NOMEM, "cannot start the admin thread");
    goto fail_http;
  }
  a->thread_started = 1;
  OPENSSL_cleanse(token, strlen(token));
  free(token);
  log_info(MOD, "admin API listening on %s:%u", host, (unsigned)a->port);
  *out = a;
  return 0;

fail_http:
  px_admin_free(a);
fail_alloc:
  OPENSSL_cleanse(token, strlen(token));
  free(token);
  return rc;
}

uint16_t px_admin_port(const struct px_admin *a) { return a ? a->port : 0; }

void px_admin_free(struct px_admin *a) {
  if (!a)
    return;
  if (a->thread_started) {
    /* Not event_base_loopbreak: a break requested before the thread enters
     * its loop is forgotten, while an activated event waits for the loop. */
    event_active(a->stop_ev, EV_READ, 0);
    pthread_join(a->thread, NULL);
  }
  if (a->stop_ev)
    event_free(a->stop_ev);
  if (a->http)
    evhttp_free(a->http);
  if (a->base)
    event_base_free(a->base);
  free(a);
}
