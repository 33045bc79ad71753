/* px_demo_req: the demo backend's protocol-independent request and response model. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/cut_err.h"
#include "proxy/px_demo_int.h"

int demo_buf_add(struct sbuf *b, const void *d, size_t n) {
  sb_put(b, d, n);
  return b->oom ? CUT_ERR_NOMEM : 0;
}

int demo_buf_add_json(struct sbuf *b, const char *s, size_t n) {
  sb_json(b, s, n);
  return b->oom ? CUT_ERR_NOMEM : 0;
}

struct timeval demo_ms_tv(uint64_t ms) {
  struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
  return tv;
}

/* Splits a knob value v[n] into its leading decimal number and the unit
 * after it (copied into tmp). Returns 0, or -1 when there is no number. */
static int split_number(const char *v, size_t n, char tmp[32], unsigned long long *x,
                        const char **unit) {
  if (n == 0 || n >= 32) return -1;
  memcpy(tmp, v, n);
  tmp[n] = '\0';
  char *end;
  *x = strtoull(tmp, &end, 10);
  if (end == tmp || tmp[0] == '-') return -1;
  *unit = end;
  return 0;
}

/* "500ms", "2s", "500" (milliseconds). */
static int parse_ms(const char *v, size_t n, uint64_t *out) {
  char tmp[32];
  unsigned long long x;
  const char *end;
  if (split_number(v, n, tmp, &x, &end)) return -1;
  uint64_t mul = 1;
  if (!strcmp(end, "s")) mul = 1000;
  else if (*end && strcmp(end, "ms")) return -1;
  if (x > UINT64_C(86400000) / mul) return -1;
  *out = x * mul;
  return 0;
}

/* "1000", "64KiB", "50MiB", "1k", "2M". */
static int parse_size(const char *v, size_t n, int64_t *out) {
  char tmp[32];
  unsigned long long x;
  const char *end;
  if (split_number(v, n, tmp, &x, &end)) return -1;
  uint64_t mul = 1;
  if (!strcmp(end, "KiB") || !strcmp(end, "k") || !strcmp(end, "K")) mul = 1024;
  else if (!strcmp(end, "MiB") || !strcmp(end, "M")) mul = 1024 * 1024;
  else if (!strcmp(end, "GiB") || !strcmp(end, "G")) mul = UINT64_C(1024) * 1024 * 1024;
  else if (*end) return -1;
  if (x > (UINT64_C(1) << 40) / mul) return -1;
  *out = (int64_t)(x * mul);
  return 0;
}

static int is_on(const char *v, size_t n) {
  return !(n == 0 || (n == 1 && v[0] == '0') || (n == 5 && !memcmp(v, "false", 5)));
}

int demo_knobs_parse(const char *target, size_t len, struct demo_knobs *k, char *err,
                     size_t errlen) {
  memset(k, 0, sizeof *k);
  k->size = -1;
  const char *q = memchr(target, '?', len);
  if (!q) return 0;
  const char *p = q + 1, *end = target + len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *pe = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(pe - p));
    const char *key = p, *val = eq ? eq + 1 : pe;
    size_t klen = (size_t)((eq ? eq : pe) - p), vlen = (size_t)(pe - val);
    int bad = 0;
#define KEY(s) (klen == sizeof(s) - 1 && !memcmp(key, s, klen))
    if (KEY("delay")) {
      bad = parse_ms(val, vlen, &k->delay_ms);
    } else if (KEY("drip")) {
      bad = parse_ms(val, vlen, &k->drip_ms);
    } else if (KEY("size")) {
      bad = parse_size(val, vlen, &k->size);
    } else if (KEY("status")) {
      char tmp[8];
      if (vlen == 0 || vlen >= sizeof tmp) {
        bad = 1;
      } else {
        memcpy(tmp, val, vlen);
        tmp[vlen] = '\0';
        char *e;
        long s = strtol(tmp, &e, 10);
        bad = *e || s < 200 || s > 599;
        k->status = (int)s;
      }
    } else if (KEY("chunked")) {
      k->chunked = is_on(val, vlen);
    } else if (KEY("close")) {
      k->close_mid = vlen == 3 && !memcmp(val, "mid", 3);
      k->close_start = vlen == 5 && !memcmp(val, "start", 5);
      bad = !k->close_mid && !k->close_start;
    } else if (KEY("echo")) {
      k->echo = is_on(val, vlen);
    } else if (KEY("trailers")) {
      k->trailers = is_on(val, vlen);
    }
#undef KEY
    if (bad)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "bad value for knob %.*s: \"%.*s\"",
                      (int)(klen > 32 ? 32 : klen), key, (int)(vlen > 32 ? 32 : vlen), val);
    p = pe + 1;
  }
  return 0;
}

void demo_req_reset(struct demo_req *r) {
  r->method[0] = '\0';
  sb_reset(&r->target);
  sb_reset(&r->authority);
  sb_reset(&r->hdrs);
  r->nhdrs = 0;
  r->body_bytes = 0;
  r->hashing = 0;
  memset(&r->knobs, 0, sizeof r->knobs);
  r->knobs.size = -1;
  r->knob_err[0] = '\0';
}

void demo_req_clear(struct demo_req *r) {
  sb_clear(&r->target);
  sb_clear(&r->authority);
  sb_clear(&r->hdrs);
  EVP_MD_CTX_free(r->sha);
  r->sha = NULL;
}

int demo_req_header(struct demo_req *r, const char *name, size_t namelen, const char *value,
                    size_t valuelen) {
  if (r->hdrs.len + namelen + valuelen + 2 > DEMO_MAX_HEADERS) return CUT_ERR_FULL;
  size_t at = r->hdrs.len;
  int rv = demo_buf_add(&r->hdrs, name, namelen);
  if (rv == 0) rv = demo_buf_add(&r->hdrs, "", 1);
  if (rv == 0) rv = demo_buf_add(&r->hdrs, value, valuelen);
  if (rv == 0) rv = demo_buf_add(&r->hdrs, "", 1);
  if (rv) {
    r->hdrs.len = at;
    return rv;
  }
  for (size_t i = 0; i < namelen; i++)
    r->hdrs.p[at + i] = (char)tolower((unsigned char)r->hdrs.p[at + i]);
  r->nhdrs++;
  return 0;
}

void demo_req_head_done(struct demo_req *r) {
  if (demo_knobs_parse(r->target.p ? r->target.p : "", r->target.len, &r->knobs, r->knob_err,
                       sizeof r->knob_err) != 0 &&
      !r->knob_err[0])
    snprintf(r->knob_err, sizeof r->knob_err, "bad knob");
  r->hashing = r->knobs.echo;
  if (r->hashing) {
    if (!r->sha) r->sha = EVP_MD_CTX_new();
    if (!r->sha || !EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL)) r->hashing = 0;
  }
}

void demo_req_body(struct demo_req *r, const void *d, size_t n) {
  r->body_bytes += n;
  if (r->hashing) EVP_DigestUpdate(r->sha, d, n);
}

/* Returns the value of the first header `name` (lower-case), or NULL. */
static const char *req_get(const struct demo_req *r, const char *name, size_t *vlen) {
  const char *p = r->hdrs.p, *end = r->hdrs.p + r->hdrs.len;
  while (p && p < end) {
    size_t nl = strlen(p);
    const char *v = p + nl + 1;
    size_t vl = strlen(v);
    if (!strcmp(p, name)) {
      *vlen = vl;
      return v;
    }
    p = v + vl + 1;
  }
  return NULL;
}

static int add_str_or_null(struct sbuf *b, const char *v, size_t n) {
  return v ? demo_buf_add_json(b, v, n) : demo_buf_add(b, "null", 4);
}

#define ADD(s) demo_buf_add(b, s, sizeof(s) - 1)

/* {"backend":..,"method":..,"path":..,"query":..,"device":..,"request_id":..} and, for
 * echo, the authority, headers, body size and SHA-256. */
static int build_json(struct sbuf *b, const struct px_demo_opts *opts, struct demo_req *req,
                      int status) {
  const char *t = req->target.p ? req->target.p : "";
  size_t tlen = req->target.len;
  const char *q = memchr(t, '?', tlen);
  size_t plen = q ? (size_t)(q - t) : tlen;
  size_t dlen = 0, ilen = 0;
  const char *dev = req_get(req, "x-device-id", &dlen);
  const char *rid = req_get(req, "x-request-id", &ilen);
  int rv = ADD("{\"backend\":");
  if (!rv) rv = demo_buf_add_json(b, opts->name, strlen(opts->name));
  if (!rv && status != 200) {
    char s[32];
    int n = snprintf(s, sizeof s, ",\"status\":%d", status);
    rv = demo_buf_add(b, s, (size_t)n);
  }
  if (!rv) rv = ADD(",\"method\":");
  if (!rv) rv = demo_buf_add_json(b, req->method, strlen(req->method));
  if (!rv) rv = ADD(",\"path\":");
  if (!rv) rv = demo_buf_add_json(b, t, plen);
  if (!rv && q) {
    rv = ADD(",\"query\":");
    if (!rv) rv = demo_buf_add_json(b, q + 1, tlen - plen - 1);
  }
  if (!rv) rv = ADD(",\"device\":");
  if (!rv) rv = add_str_or_null(b, dev, dlen);
  if (!rv) rv = ADD(",\"request_id\":");
  if (!rv) rv = add_str_or_null(b, rid, ilen);
  if (!rv && req->knob_err[0]) {
    rv = ADD(",\"error\":");
    if (!rv) rv = demo_buf_add_json(b, req->knob_err, strlen(req->knob_err));
  }
  if (!rv && req->knobs.echo && !req->knob_err[0]) {
    rv = ADD(",\"authority\":");
    if (!rv) rv = add_str_or_null(b, req->authority.len ? req->authority.p : NULL,
                                  req->authority.len);
    if (!rv) rv = ADD(",\"headers\":[");
    const char *p = req->hdrs.p, *end = req->hdrs.p + req->hdrs.len;
    for (int first = 1; !rv && p && p < end; first = 0) {
      size_t nl = strlen(p);
      const char *v = p + nl + 1;
      size_t vl = strlen(v);
      rv = first ? ADD("[") : ADD(",[");
      if (!rv) rv = demo_buf_add_json(b, p, nl);
      if (!rv) rv = ADD(",");
      if (!rv) rv = demo_buf_add_json(b, v, vl);
      if (!rv) rv = ADD("]");
      p = v + vl + 1;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
    if (req->hashing && EVP_DigestFinal_ex(req->sha, md, &mdlen))
      for (unsigned int i = 0; i < mdlen; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    char tail[64 + 2 * EVP_MAX_MD_SIZE];
    int n = snprintf(tail, sizeof tail, "],\"body_size\":%" PRIu64 ",\"body_sha256\":\"%s\"",
                     req->body_bytes, hex);
    if (!rv) rv = demo_buf_add(b, tail, (size_t)n);
  }
  if (!rv) rv = ADD("}\n");
  return rv;
}

int demo_resp_build(struct demo_resp *resp, const struct px_demo_opts *opts,
                    struct demo_req *req) {
  const struct demo_knobs *k = &req->knobs;
  struct sbuf keep = resp->body;
  memset(resp, 0, sizeof *resp);
  resp->body = keep;
  resp->body.len = 0;
  resp->content_type = "application/json";
  if (req->knob_err[0]) {
    resp->status = 400;
  } else {
    resp->status = k->status ? k->status : 200;
    resp->delay_ms = k->delay_ms;
    resp->drip_ms = k->drip_ms;
    resp->chunked = k->chunked;
    resp->close_mid = k->close_mid;
    resp->close_start = k->close_start;
    resp->trailers = k->trailers;
  }
  if (!req->knob_err[0] && k->size >= 0 && !k->echo) {
    resp->generated = 1;
    resp->total = (uint64_t)k->size;
    resp->content_type = "application/octet-stream";
  } else {
    int rv = build_json(&resp->body, opts, req, resp->status);
    if (rv) return rv;
    resp->total = resp->body.len;
  }
  resp->head_only = !strcmp(req->method, "HEAD");
  if (resp->drip_ms) {
    resp->piece = (resp->total + DEMO_DRIP_PIECES - 1) / DEMO_DRIP_PIECES;
    if (resp->piece == 0) resp->piece = 1;
  } else {
    resp->piece = resp->total;
  }
  resp->piece_left = resp->piece;
  return 0;
}

enum demo_body_state demo_resp_state(const struct demo_resp *resp) {
  if (resp->head_only) return DEMO_BODY_DONE;
  if (resp->close_mid && resp->sent >= resp->total / 2) return DEMO_BODY_CUT;
  if (resp->sent >= resp->total) return DEMO_BODY_DONE;
  return resp->piece_left ? DEMO_BODY_MORE : DEMO_BODY_WAIT;
}

/* 64 printable bytes repeated: easy to recognise in a capture. */
static const char pattern[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-\n";

size_t demo_resp_read(struct demo_resp *resp, uint8_t *dst, size_t max) {
  if (demo_resp_state(resp) != DEMO_BODY_MORE) return 0;
  uint64_t limit = resp->close_mid ? resp->total / 2 : resp->total;
  uint64_t n = limit - resp->sent;
  if (n > resp->piece_left) n = resp->piece_left;
  if (n > max) n = max;
  if (resp->generated) {
    size_t off = (size_t)(resp->sent % 64), done = 0;
    while (done < n) {
      size_t c = 64 - off;
      if (c > n - done) c = (size_t)(n - done);
      memcpy(dst + done, pattern + off, c);
      done += c;
      off = 0;
    }
  } else {
    memcpy(dst, resp->body.p + resp->sent, (size_t)n);
  }
  resp->sent += n;
  resp->piece_left -= n;
  return (size_t)n;
}

void demo_resp_next_piece(struct demo_resp *resp) { resp->piece_left = resp->piece; }

void demo_resp_free(struct demo_resp *resp) { sb_clear(&resp->body); }
