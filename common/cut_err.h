/* cut_err: the one error-code space of cutover. */
#ifndef CUT_ERR_H
#define CUT_ERR_H

/*
 * Functions return 0 (or a count) on success and one of these negative codes
 * on failure. Where a person needs more detail, functions also take
 * `char *err, size_t errlen` and write a sentence there.
 * Append new codes at the end of their group; never renumber.
 */
enum cut_err {
  CUT_OK = 0,
  CUT_ERR_NOMEM = -1,       /* out of memory */
  CUT_ERR_INVALID = -2,     /* invalid argument or input */
  CUT_ERR_IO = -3,          /* system I/O error (errno is meaningful) */
  CUT_ERR_PARSE = -4,       /* malformed input (YAML, JSON, HTTP, Avro...) */
  CUT_ERR_NOT_FOUND = -5,   /* no such name */
  CUT_ERR_EXISTS = -6,      /* already exists */
  CUT_ERR_RANGE = -7,       /* value out of range */
  CUT_ERR_FULL = -8,        /* a bounded queue or buffer is full */
  CUT_ERR_TIMEOUT = -9,     /* deadline passed */
  CUT_ERR_PROTO = -10,      /* protocol violation by a peer */
  CUT_ERR_TLS = -11,        /* TLS setup or handshake failure */
  CUT_ERR_KAFKA = -12,      /* Kafka client error */
  CUT_ERR_AVRO = -13,       /* Avro encode/decode error */
  CUT_ERR_UNSUPPORTED = -14,/* not supported (yet) */
  CUT_ERR_STATE = -15,      /* operation not valid in the current state */
  CUT_ERR_AGAIN = -16,      /* try again later */
  CUT_ERR_CLOSED = -17,     /* peer or object closed */
  CUT_ERR_CONFIG = -18,     /* configuration rejected (details in err text) */
  CUT_ERR_NET = -19,        /* network error (connect, resolve, listen) */
};

/* Returns a static, human-readable description of `code` (never NULL). */
const char *cut_strerror(int code);

/* Copies a formatted message into err[errlen] when err is not NULL and
 * returns `code`, so a failure path can be one statement:
 *   return cut_errf(err, errlen, CUT_ERR_INVALID, "bad port %d", p); */
int cut_errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
