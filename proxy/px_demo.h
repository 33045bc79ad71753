/* px_demo: `cutover demo-backend`, a small fast backend for the demo, tests and benchmark. */
#ifndef CUT_PX_DEMO_H
#define CUT_PX_DEMO_H

#include <stddef.h>
#include <stdint.h>

/*
 * The demo backend answers every request with a small JSON document naming
 * itself. Query parameters of the request ("knobs") provoke the behaviours
 * that end-to-end tests need from a backend:
 *
 *   delay=500ms  first byte of the response after 500 ms (also `2s`, or `500` = ms)
 *   status=503   response status
 *   size=N       a body of N bytes (also `64KiB`, `50MiB`), streamed in chunks
 *   chunked=1    HTTP/1.1: Transfer-Encoding: chunked; h2: no content-length
 *   close=mid    send half of the announced body, then close the connection
 *                (HTTP/1.1) or reset the stream (h2)
 *   close=start  send no response at all: close the connection or reset the stream
 *                (after `delay`, if given)
 *   drip=MS      send the body in 10 pieces, MS milliseconds apart
 *   echo=1       answer the request's method, path, headers, body size and
 *                body SHA-256 as JSON
 *   trailers=1   send a trailer field `x-demo-trailer: done` (h2; HTTP/1.1 with chunked=1)
 *
 * Request bodies of any size are read with bounded memory: counted (and
 * hashed when echo=1), never kept.
 */

enum px_demo_protocol {
  PX_DEMO_HTTP1 = 0, /* HTTP/1.1 only */
  PX_DEMO_H2C = 1,   /* HTTP/2 with prior knowledge only */
  PX_DEMO_AUTO = 2,  /* either, told apart by the HTTP/2 connection preface */
};

struct px_demo_opts {
  const char *name;     /* borrowed; appears in every response */
  const char *host;     /* borrowed; listen address (IPv4 or IPv6 literal) */
  uint16_t port;        /* 0 = any free port (printed at start) */
  enum px_demo_protocol protocol;
  int threads;          /* worker threads, each with its own listener (SO_REUSEPORT) */
  const char *lineage;  /* borrowed; value of the x-lineage response header, or NULL */
  const char *tls_cert; /* borrowed; PEM certificate chain to serve TLS, or NULL */
  const char *tls_key;  /* borrowed; PEM private key, with tls_cert */
};

/* Runs the backend until SIGTERM or SIGINT. Borrows opts. Writes a line
 * "demo-backend NAME listening on HOST:PORT (...)" to stderr once every
 * listener is bound. With tls_cert and tls_key the listener speaks TLS and
 * offers ALPN "http/1.1" (http1), "h2" (h2c) or both (auto).
 * Returns 0 after a clean stop, or CUT_ERR_NET (cannot listen), CUT_ERR_TLS
 * (certificate or key unusable), CUT_ERR_NOMEM, CUT_ERR_IO with a sentence in err. */
int px_demo_run(const struct px_demo_opts *opts, char *err, size_t errlen);

#endif
