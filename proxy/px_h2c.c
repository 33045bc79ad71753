/* px_h2c: recognizing an HTTP/1.1 `Upgrade: h2c` request and decoding its HTTP2-Settings. */
#include <string.h>
#include <strings.h>

#include "common/cut_err.h"
#include "proxy/px_h2c.h"

/* 1 when the comma-separated list v[0..n) holds `token` (case-insensitive, OWS trimmed). */
static int list_has(const char *v, size_t n, const char *token) {
  size_t tl = strlen(token);
  size_t i = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
      i++;
    size_t b = i;
    while (i < n && v[i] != ',')
      i++;
    size_t e = i;
    while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
      e--;
    if (e - b == tl && strncasecmp(v + b, token, tl) == 0)
      return 1;
  }
  return 0;
}

/* 1 when some field named `name` lists `token`. */
static int fields_have(const struct px_headers *h, const char *name, const char *token) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < h->n; i++) {
    const struct px_header *f = &h->v[i];
    if (f->namelen == nl && memcmp(f->name, name, nl) == 0 &&
        list_has(f->value, f->valuelen, token))
      return 1;
  }
  return 0;
}

int px_h2c_requested(const struct px_headers *h) {
  return fields_have(h, "upgrade", "h2c") && fields_have(h, "connection", "upgrade") &&
         fields_have(h, "connection", "http2-settings");
}

static int b64url_value(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z')
    return ch - 'A';
  if (ch >= 'a' && ch <= 'z')
    return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9')
    return ch - '0' + 52;
  if (ch == '-')
    return 62;
  if (ch == '_')
    return 63;
  return -1;
}

/* Checks one setting's value against its range; 0 when acceptable (unknown ids are ignored). */
static int setting_ok(uint16_t id, uint32_t v) {
  switch (id) {
  case 0x2: /* ENABLE_PUSH */
  case 0x8: /* ENABLE_CONNECT_PROTOCOL */
  case 0x9: /* NO_RFC7540_PRIORITIES */
    return v <= 1 ? 0 : -1;
  case 0x4: /* INITIAL_WINDOW_SIZE */
    return v <= 0x7fffffffu ? 0 : -1;
  case 0x5: /* MAX_FRAME_SIZE */
    return v >= 16384 && v <= 16777215 ? 0 : -1;
  default:
    return 0;
  }
}

int px_h2c_settings(const struct px_headers *h, uint8_t *out, size_t cap, const char **why) {
  const struct px_header *field = NULL;
  *why = NULL;
  for (size_t i = 0; i < h->n; i++) {
    if (h->v[i].namelen == 14 && memcmp(h->v[i].name, "http2-settings", 14) == 0) {
      if (field) {
        *why = "malformed HTTP2-Settings header: sent more than once";
        return CUT_ERR_PARSE;
      }
      field = &h->v[i];
    }
  }
  if (!field) {
    *why = "no HTTP2-Settings header";
    return CUT_ERR_NOT_FOUND;
  }
  const char *v = field->value;
  size_t n = field->valuelen;
  while (n && v[n - 1] == '=' && field->valuelen - n < 2)
    n--;
  if (cap > PX_H2C_SETTINGS_MAX)
    cap = PX_H2C_SETTINGS_MAX;
  if (n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap) {
    *why = "malformed HTTP2-Settings header: too large";
    return CUT_ERR_RANGE;
  }
  if (n % 4 == 1) {
    *why = "malformed HTTP2-Settings header: not base64url";
    return CUT_ERR_PARSE;
  }
  size_t len = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int d = b64url_value((unsigned char)v[i]);
    if (d < 0) {
      *why = "malformed HTTP2-Settings header: not base64url";
      return CUT_ERR_PARSE;
    }
    acc = acc << 6 | (uint32_t)d;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[len++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) { /* non-canonical: the unused low bits must be zero */
    *why = "malformed HTTP2-Settings header: not base64url";
    return CUT_ERR_PARSE;
  }
  if (len % 6 != 0) {
    *why = "malformed HTTP2-Settings header: not a whole number of settings";
    return CUT_ERR_PARSE;
  }
  for (size_t i = 0; i < len; i += 6) {
    uint16_t id = (uint16_t)(out[i] << 8 | out[i + 1]);
    uint32_t val = (uint32_t)out[i + 2] << 24 | (uint32_t)out[i + 3] << 16 |
                   (uint32_t)out[i + 4] << 8 | out[i + 5];
    if (setting_ok(id, val) < 0) {
      *why = "malformed HTTP2-Settings header: a setting is out of range";
      return CUT_ERR_RANGE;
    }
  }
  return (int)len;
}
