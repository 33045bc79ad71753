/* log: levelled text/JSON-lines logging to stderr. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/cut_err.h"
#include "common/log.h"

static _Atomic int g_level = LOG_INFO;
static _Atomic int g_format = LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void log_setup(enum log_level level, enum log_format format) {
  atomic_store(&g_level, (int)level);
  atomic_store(&g_format, (int)format);
}

int log_level_parse(const char *s, enum log_level *out) {
  for (int i = 0; i <= LOG_OFF; i++) {
    if (strcasecmp(s, level_names[i]) == 0) {
      *out = (enum log_level)i;
      return 0;
    }
  }
  return CUT_ERR_INVALID;
}

int log_enabled(enum log_level level) { return (int)level >= atomic_load(&g_level); }

/* Appends s to buf as the inside of a JSON string; returns the new length. */
static size_t json_escape(char *buf, size_t len, size_t cap, const char *s) {
  for (; *s && len + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[len++] = '\\';
      buf[len++] = (char)c;
    } else if (c < 0x20) {
      len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", c);
    } else {
      buf[len++] = (char)c;
    }
  }
  return len;
}

void log_msg(enum log_level level, const char *mod, const char *fmt, ...) {
  if (!log_enabled(level) || level >= LOG_OFF)
    return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[40];
  size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);

  char line[4608];
  size_t len;
  if (atomic_load(&g_format) == LOG_JSON) {
    len = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"mod\":\"", when,
                           level_names[level]);
    len = json_escape(line, len, sizeof line, mod);
    len += (size_t)snprintf(line + len, sizeof line - len, "\",\"msg\":\"");
    len = json_escape(line, len, sizeof line, msg);
    len += (size_t)snprintf(line + len, sizeof line - len, "\"}\n");
  } else {
    len = (size_t)snprintf(line, sizeof line, "%s %-5s %s: %s\n", when, level_names[level], mod, msg);
  }
  if (len >= sizeof line) {
    len = sizeof line - 1;
    line[len - 1] = '\n';
  }
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
