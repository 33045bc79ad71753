/* cut_err: descriptions of the project-wide error codes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "common/cut_err.h"

const char *cut_strerror(int code) {
  switch (code) {
  case CUT_OK: return "success";
  case CUT_ERR_NOMEM: return "out of memory";
  case CUT_ERR_INVALID: return "invalid argument";
  case CUT_ERR_IO: return "I/O error";
  case CUT_ERR_PARSE: return "malformed input";
  case CUT_ERR_NOT_FOUND: return "not found";
  case CUT_ERR_EXISTS: return "already exists";
  case CUT_ERR_RANGE: return "value out of range";
  case CUT_ERR_FULL: return "queue or buffer full";
  case CUT_ERR_TIMEOUT: return "timed out";
  case CUT_ERR_PROTO: return "protocol error";
  case CUT_ERR_TLS: return "TLS error";
  case CUT_ERR_KAFKA: return "Kafka error";
  case CUT_ERR_AVRO: return "Avro error";
  case CUT_ERR_UNSUPPORTED: return "not supported";
  case CUT_ERR_STATE: return "invalid state";
  case CUT_ERR_AGAIN: return "try again";
  case CUT_ERR_CLOSED: return "closed";
  case CUT_ERR_CONFIG: return "configuration rejected";
  case CUT_ERR_NET: return "network error";
  default: return "unknown error";
  }
}

int cut_errf(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}
