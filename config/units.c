/* units: parsing of the config's value syntaxes (durations, sizes, percentages, addresses). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cut_err.h"
#include "config/units.h"

/*
 * A decimal number "123" or "12.345" split into an integer mantissa and the
 * count of digits after the point. Integer arithmetic keeps "12.5%" exact,
 * which floating point would not guarantee. Returns the number of characters
 * consumed, or 0 when there is no number or it is too long to be sensible.
 */
static size_t parse_decimal(const char *s, uint64_t *mant, unsigned *decimals) {
  const char *p = s;
  uint64_t m = 0;
  unsigned digits = 0, dec = 0;
  while (isdigit((unsigned char)*p)) {
    if (++digits > 18)
      return 0;
    m = m * 10 + (uint64_t)(*p - '0');
    p++;
  }
  if (digits == 0)
    return 0;
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p))
      return 0;
    while (isdigit((unsigned char)*p)) {
      if (++digits > 18)
        return 0;
      m = m * 10 + (uint64_t)(*p - '0');
      dec++;
      p++;
    }
  }
  *mant = m;
  *decimals = dec;
  return (size_t)(p - s);
}

static uint64_t pow10u(unsigned n) {
  uint64_t r = 1;
  while (n--)
    r *= 10;
  return r;
}

/* mant / 10^dec * factor, exactly; CUT_ERR_RANGE when not a whole number or too large. */
static int scale_exact(uint64_t mant, unsigned dec, uint64_t factor, uint64_t *out) {
  uint64_t div = pow10u(dec);
  if (factor && mant > UINT64_MAX / factor)
    return CUT_ERR_RANGE;
  uint64_t v = mant * factor;
  if (v % div)
    return CUT_ERR_INVALID;
  *out = v / div;
  return 0;
}

int cfg_parse_duration(const char *s, uint64_t *ms, char *err, size_t errlen) {
  if (!s || !*s)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "empty duration (use e.g. 250ms, 2s, 1m)");
  if (!strcmp(s, "0")) {
    *ms = 0;
    return 0;
  }
  uint64_t mant;
  unsigned dec;
  size_t n = parse_decimal(s, &mant, &dec);
  if (!n)
    return cut_errf(err, errlen, CUT_ERR_INVALID,
                    "\"%s\" is not a duration (use e.g. 250ms, 2s, 1m, 1h)", s);
  const char *u = s + n;
  uint64_t factor;
  if (!*u)
    return cut_errf(err, errlen, CUT_ERR_INVALID,
                    "duration \"%s\" needs a unit (ms, s, m, h)", s);
  if (!strcmp(u, "ms"))
    factor = 1;
  else if (!strcmp(u, "s"))
    factor = 1000;
  else if (!strcmp(u, "m"))
    factor = 60 * 1000;
  else if (!strcmp(u, "h"))
    factor = 3600 * 1000;
  else
    return cut_errf(err, errlen, CUT_ERR_INVALID, "unknown unit \"%s\" (use ms, s, m, h)", u);
  int rc = scale_exact(mant, dec, factor, ms);
  if (rc == CUT_ERR_RANGE)
    return cut_errf(err, errlen, rc, "duration \"%s\" is too large", s);
  if (rc)
    return cut_errf(err, errlen, rc, "duration \"%s\" is not a whole number of milliseconds", s);
  return 0;
}

int cfg_parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen) {
  static const struct {
    const char *name;
    uint64_t factor;
  } units[] = {
      {"", 1},
      {"B", 1},
      {"KiB", 1ull << 10},
      {"MiB", 1ull << 20},
      {"GiB", 1ull << 30},
      {"TiB", 1ull << 40},
      {"KB", 1000ull},
      {"MB", 1000000ull},
      {"GB", 1000000000ull},
      {"TB", 1000000000000ull},
  };
  if (!s || !*s)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "empty size (use e.g. 512, 64KiB, 4MiB)");
  uint64_t mant;
  unsigned dec;
  size_t n = parse_decimal(s, &mant, &dec);
  if (!n)
    return cut_errf(err, errlen, CUT_ERR_INVALID,
                    "\"%s\" is not a size (use e.g. 512, 64KiB, 4MiB, 1GiB)", s);
  const char *u = s + n;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(u, units[i].name))
      continue;
    int rc = scale_exact(mant, dec, units[i].factor, bytes);
    if (rc == CUT_ERR_RANGE)
      return cut_errf(err, errlen, rc, "size \"%s\" is too large", s);
    if (rc)
      return cut_errf(err, errlen, rc, "size \"%s\" is not a whole number of bytes", s);
    return 0;
  }
  return cut_errf(err, errlen, CUT_ERR_INVALID,
                  "unknown unit \"%s\" (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)", u);
}

int cfg_parse_percent(const char *s, uint32_t *ppm, char *err, size_t errlen) {
  if (!s || !*s)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "empty percentage (use e.g. 5%%, 12.5%%)");
  uint64_t mant;
  unsigned dec;
  size_t n = parse_decimal(s, &mant, &dec);
  const char *rest = s + n;
  if (!n || (*rest && strcmp(rest, "%")))
    return cut_errf(err, errlen, CUT_ERR_INVALID,
                    "\"%s\" is not a percentage (use e.g. 5%%, 12.5%%, 0.0001%%)", s);
  if (dec > 4)
    return cut_errf(err, errlen, CUT_ERR_INVALID,
                    "percentage \"%s\" has more than 4 decimals", s);
  if (mant > 100 * pow10u(dec))
    return cut_errf(err, errlen, CUT_ERR_RANGE, "percentage \"%s\" is out of range (0-100%%)", s);
  *ppm = (uint32_t)(mant * pow10u(4 - dec)); /* <= 1000000 after the check above */
  return 0;
}

void cfg_format_percent(uint32_t ppm, char *buf, size_t buflen) {
  if (!buf || !buflen)
    return;
  unsigned whole = ppm / 10000, frac = ppm % 10000;
  if (!frac) {
    snprintf(buf, buflen, "%u%%", whole);
    return;
  }
  char f[8];
  snprintf(f, sizeof f, "%04u", frac);
  for (int i = 3; i > 0 && f[i] == '0'; i--)
    f[i] = '\0';
  snprintf(buf, buflen, "%u.%s%%", whole, f);
}

/* RFC 1123 host name: labels of letters, digits and '-', separated by dots. */
static int valid_dns_name(const char *h) {
  size_t len = strlen(h), label = 0;
  if (!len || len > 253)
    return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)h[i];
    if (c == '.') {
      if (!label || h[i - 1] == '-')
        return 0;
      label = 0;
      continue;
    }
    if (!(isalnum(c) || c == '-' || c == '_'))
      return 0;
    if (c == '-' && label == 0)
      return 0;
    if (++label > 63)
      return 0;
  }
  return label > 0 || h[len - 1] == '.';
}

static int all_digits_and_dots(const char *h) {
  for (; *h; h++)
    if (!isdigit((unsigned char)*h) && *h != '.')
      return 0;
  return 1;
}

int cfg_parse_addr(const char *s, struct cfg_addr *a, char *err, size_t errlen) {
  if (!s || !*s)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "empty address (use host:port)");
  char host[256];
  const char *portp;
  int v6 = 0;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close || close[1] != ':')
      return cut_errf(err, errlen, CUT_ERR_INVALID,
                      "\"%s\" is not an address (use [IPv6]:port, e.g. [::1]:8443)", s);
    size_t hl = (size_t)(close - s - 1);
    if (hl == 0 || hl >= sizeof host)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "\"%s\": bad IPv6 address", s);
    memcpy(host, s + 1, hl);
    host[hl] = '\0';
    struct in6_addr in6;
    if (inet_pton(AF_INET6, host, &in6) != 1)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "\"%s\": \"%s\" is not an IPv6 address", s,
                      host);
    v6 = 1;
    portp = close + 2;
  } else {
    const char *colon = strrchr(s, ':');
    if (!colon)
      return cut_errf(err, errlen, CUT_ERR_INVALID,
                      "\"%s\" has no port (use host:port, e.g. 127.0.0.1:8080)", s);
    if (strchr(s, ':') != colon)
      return cut_errf(err, errlen, CUT_ERR_INVALID,
                      "\"%s\": write IPv6 addresses in brackets, e.g. [::1]:8080", s);
    size_t hl = (size_t)(colon - s);
    if (hl == 0 || hl >= sizeof host)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "\"%s\" has no host (use host:port)", s);
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (all_digits_and_dots(host)) {
      struct in_addr in4;
      if (inet_pton(AF_INET, host, &in4) != 1)
        return cut_errf(err, errlen, CUT_ERR_INVALID, "\"%s\": \"%s\" is not an IPv4 address",
                        s, host);
    } else if (!valid_dns_name(host)) {
      return cut_errf(err, errlen, CUT_ERR_INVALID, "\"%s\": \"%s\" is not a valid host name", s,
                      host);
    }
    portp = colon + 1;
  }
  if (!*portp)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "\"%s\" has no port", s);
  unsigned long port = 0;
  for (const char *p = portp; *p; p++) {
    if (!isdigit((unsigned char)*p) || p - portp > 5)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "\"%s\": bad port \"%s\"", s, portp);
    port = port * 10 + (unsigned long)(*p - '0');
  }
  if (port < 1 || port > 65535)
    return cut_errf(err, errlen, CUT_ERR_RANGE, "\"%s\": port %lu is out of range (1-65535)", s,
                    port);
  char *h = strdup(host);
  if (!h)
    return CUT_ERR_NOMEM;
  a->host = h;
  a->port = (uint16_t)port;
  a->is_ipv6 = v6;
  return 0;
}

/* RFC 9110 token characters: what a header, cookie or parameter name may hold. */
static int is_tchar(unsigned char c) {
  return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

int cfg_parse_key(const char *s, struct cfg_key *k, char *err, size_t errlen) {
  static const struct {
    const char *prefix;
    enum cfg_key_kind kind;
    int lower;
  } kinds[] = {
      {"header:", CFG_KEY_HEADER, 1},
      {"cookie:", CFG_KEY_COOKIE, 0},
      {"query:", CFG_KEY_QUERY, 0},
  };
  if (!s)
    s = "";
  if (!strcmp(s, "random")) {
    char *spec = strdup(s);
    if (!spec)
      return CUT_ERR_NOMEM;
    k->kind = CFG_KEY_RANDOM;
    k->name = NULL;
    k->spec = spec;
    return 0;
  }
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    size_t pl = strlen(kinds[i].prefix);
    if (strncmp(s, kinds[i].prefix, pl))
      continue;
    const char *name = s + pl;
    if (!*name)
      return cut_errf(err, errlen, CUT_ERR_INVALID, "key \"%s\" has no name after \"%s\"", s,
                      kinds[i].prefix);
    for (const char *p = name; *p; p++)
      if (!is_tchar((unsigned char)*p))
        return cut_errf(err, errlen, CUT_ERR_INVALID,
                        "key \"%s\": invalid character in name \"%s\"", s, name);
    char *n = strdup(name), *spec = strdup(s);
    if (!n || !spec) {
      free(n);
      free(spec);
      return CUT_ERR_NOMEM;
    }
    if (kinds[i].lower)
      for (char *p = n; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    k->kind = kinds[i].kind;
    k->name = n;
    k->spec = spec;
    return 0;
  }
  return cut_errf(err, errlen, CUT_ERR_INVALID,
                  "\"%s\" is not a key (use header:NAME, cookie:NAME, query:NAME or random)", s);
}

int cfg_parse_version(const char *s, uint32_t v[3]) {
  if (!s || !isdigit((unsigned char)*s))
    return CUT_ERR_INVALID;
  v[0] = v[1] = v[2] = 0;
  const char *p = s;
  for (int i = 0; i < 3; i++) {
    if (!isdigit((unsigned char)*p))
      return CUT_ERR_INVALID;
    uint64_t n = 0;
    while (isdigit((unsigned char)*p)) {
      n = n * 10 + (uint64_t)(*p - '0');
      if (n > UINT32_MAX)
        return CUT_ERR_INVALID;
      p++;
    }
    v[i] = (uint32_t)n;
    if (*p != '.')
      break;
    if (i == 2)
      return CUT_ERR_INVALID;
    p++;
  }
  if (*p && *p != '-' && *p != '+')
    return CUT_ERR_INVALID;
  return 0;
}

int cfg_parse_version_range(const char *s, struct cfg_version_cmp **out, size_t *n, char *err,
                            size_t errlen) {
  if (!s)
    s = "";
  size_t cap = 0;
  for (const char *p = s; *p; p++)
    if (*p != ' ' && (p == s || p[-1] == ' '))
      cap++;
  if (!cap)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "empty version range (use e.g. \">=8.2.0 <9\")");
  struct cfg_version_cmp *v = calloc(cap, sizeof *v);
  if (!v)
    return CUT_ERR_NOMEM;
  size_t k = 0;
  const char *p = s;
  while (*p) {
    while (*p == ' ')
      p++;
    if (!*p)
      break;
    const char *end = strchr(p, ' ');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char tok[64];
    if (len >= sizeof tok) {
      free(v);
      return cut_errf(err, errlen, CUT_ERR_INVALID, "version comparator too long in \"%s\"", s);
    }
    memcpy(tok, p, len);
    tok[len] = '\0';
    const char *num = tok;
    enum cfg_cmp op = CFG_CMP_EQ;
    if (!strncmp(tok, ">=", 2)) {
      op = CFG_CMP_GE;
      num += 2;
    } else if (!strncmp(tok, "<=", 2)) {
      op = CFG_CMP_LE;
      num += 2;
    } else if (tok[0] == '>') {
      op = CFG_CMP_GT;
      num++;
    } else if (tok[0] == '<') {
      op = CFG_CMP_LT;
      num++;
    } else if (tok[0] == '=') {
      num++;
    }
    if (cfg_parse_version(num, v[k].v) != 0) {
      free(v);
      return cut_errf(err, errlen, CUT_ERR_INVALID,
                      "\"%s\" in \"%s\" is not a version comparator (use e.g. >=8.2.0)", tok, s);
    }
    v[k].op = op;
    k++;
    p += len;
  }
  *out = v;
  *n = k;
  return 0;
}

static int parse_fixed(const char **pp, int digits, int *out) {
  int v = 0;
  for (int i = 0; i < digits; i++) {
    if (!isdigit((unsigned char)(*pp)[i]))
      return -1;
    v = v * 10 + ((*pp)[i] - '0');
  }
  *pp += digits;
  *out = v;
  return 0;
}

static int days_in_month(int y, int m) {
  static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 29;
  return d[m - 1];
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian), without timegm's TZ games. */
static int64_t days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int cfg_parse_time(const char *s, int64_t *epoch, char *err, size_t errlen) {
  const char *p = s ? s : "";
  int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
  if (parse_fixed(&p, 4, &y) || *p++ != '-' || parse_fixed(&p, 2, &mo) || *p++ != '-' ||
      parse_fixed(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ') || !*p++ ||
      parse_fixed(&p, 2, &h) || *p++ != ':' || parse_fixed(&p, 2, &mi) || *p++ != ':' ||
      parse_fixed(&p, 2, &se))
    goto bad;
  if (*p == '.') { /* fractional seconds are accepted and dropped */
    p++;
    if (!isdigit((unsigned char)*p))
      goto bad;
    while (isdigit((unsigned char)*p))
      p++;
  }
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    sign = *p == '-' ? -1 : 1;
    p++;
    if (parse_fixed(&p, 2, &oh) || *p++ != ':' || parse_fixed(&p, 2, &om))
      goto bad;
  } else {
    goto bad;
  }
  if (*p)
    goto bad;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60 ||
      oh > 23 || om > 59)
    return cut_errf(err, errlen, CUT_ERR_RANGE, "\"%s\" is not a valid date and time", s);
  int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
  t -= (int64_t)sign * (oh * 3600 + om * 60);
  *epoch = t;
  return 0;
bad:
  return cut_errf(err, errlen, CUT_ERR_INVALID,
                  "\"%s\" is not an RFC 3339 time (use e.g. 2026-11-21T10:00:00Z)", s ? s : "");
}
