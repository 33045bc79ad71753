/* px_limits: names and counters of every protection, and pure HTTP/2 flood detectors per connection. */
#ifndef CUT_PX_LIMITS_H
#define CUT_PX_LIMITS_H

#include <stddef.h>
#include <stdint.h>

struct met_registry;
struct met_series;
struct cfg_h2_floods;

/*
 * Every protection has a name, and each time it fires the frontend counts it
 * in cutover_limit_hits_total{limit="NAME"}. The label set is fixed here, so
 * the metric's cardinality is known before any traffic.
 */
enum px_limit {
  PX_LIMIT_CONNECTIONS = 0,   /* max client connections per worker reached */
  PX_LIMIT_STREAMS,           /* concurrent streams per connection exceeded */
  PX_LIMIT_HEADER_LIST,       /* header list larger than max_header_list_bytes */
  PX_LIMIT_HEADER_COUNT,      /* more than max_headers fields */
  PX_LIMIT_REQUEST_BODY,      /* request body larger than max_request_body_bytes */
  PX_LIMIT_HEADER_TIMEOUT,    /* request head not complete in time (slowloris) */
  PX_LIMIT_IDLE_TIMEOUT,      /* client connection idle too long */
  PX_LIMIT_RAPID_RESET,       /* HTTP/2 flood detectors, below */
  PX_LIMIT_SETTINGS_FLOOD,
  PX_LIMIT_PING_FLOOD,
  PX_LIMIT_CONTINUATION_FLOOD,
  PX_LIMIT_HEADER_BLOCK,
  PX_LIMIT_ZERO_WINDOW,
  PX_LIMIT_COUNT
};

/* The metric label value of a limit ("rapid_reset"); "unknown" when out of range. */
const char *px_limit_name(enum px_limit l);

/* One counter series per limit, registered in one go. */
struct px_limit_counters {
  struct met_series *hits[PX_LIMIT_COUNT];
};

/* Registers cutover_limit_hits_total{limit} with every limit's series.
 * Returns 0 or a negative CUT_ERR_* with err text. `reg` is borrowed. */
int px_limit_counters_init(struct px_limit_counters *c, struct met_registry *reg, char *err,
                           size_t errlen);

/* Counts one hit of `l` on worker `shard`. */
void px_limit_hit(const struct px_limit_counters *c, enum px_limit l, unsigned shard);

/*
 * HTTP/2 flood detection. A px_flood is a pure state machine per client
 * connection: it is fed what the peer sends and the current time, and says
 * when the connection must be closed. The frontend feeds it one of two ways:
 *
 *  - px_flood_feed(): the raw bytes read from the client, before handing them
 *    to nghttp2_session_mem_recv(). The detector parses only the 9-byte frame
 *    headers (after the 24-byte client preface when `expect_preface`), so it
 *    sees every frame, including each CONTINUATION, before nghttp2 buffers
 *    anything. This is the recommended way.
 *  - px_flood_on_frame(): one call per frame header, for frontends that
 *    already parse frames.
 *
 * and, for zero-window stalls, px_flood_on_window() whenever it learns
 * whether the connection is blocked on the peer's flow-control window (for
 * example from a once-a-second timer). Any WINDOW_UPDATE the peer sends
 * counts as progress and restarts the stall clock, so a slow but reading
 * client is never cut off; px_flood_check() re-evaluates without new input.
 *
 * A verdict other than PX_FLOOD_NONE is sticky: the frontend submits GOAWAY
 * with px_flood_goaway_code() and px_flood_reason_text() as debug data,
 * counts px_flood_limit() and closes the connection once GOAWAY is written.
 *
 * Windows are approximate sliding windows (the previous fixed window's count
 * is weighted by how much of it still overlaps), so a burst straddling a
 * window boundary is still caught, in O(1) memory per connection.
 */

enum px_flood_reason {
  PX_FLOOD_NONE = 0,
  PX_FLOOD_RAPID_RESET,   /* too many RST_STREAM from the client in the window */
  PX_FLOOD_SETTINGS,      /* too many SETTINGS (non-ACK) in the window */
  PX_FLOOD_PING,          /* too many PING (non-ACK) in the window */
  PX_FLOOD_CONTINUATION,  /* too many CONTINUATION frames in one header block */
  PX_FLOOD_HEADER_BLOCK,  /* one header block (HEADERS + CONTINUATIONs) too large */
  PX_FLOOD_ZERO_WINDOW,   /* peer kept its window at 0 while we had data, too long */
};

struct px_flood_limits {
  uint32_t max_resets;            /* default 200 ... */
  uint64_t reset_window_ms;       /* ... per 10 s */
  uint32_t max_settings;          /* default 50 ... */
  uint64_t settings_window_ms;    /* ... per 10 s */
  uint32_t max_pings;             /* default 100 ... */
  uint64_t ping_window_ms;        /* ... per 10 s */
  uint32_t max_continuations;     /* per header block; default 32 */
  uint32_t max_header_block_bytes;/* compressed bytes per block; default 128 KiB */
  uint64_t zero_window_ms;        /* default 30 s */
};

/* Fills `l` with the defaults above. A zero field in limits given to
 * px_flood_init() also means "default". */
void px_flood_limits_default(struct px_flood_limits *l);

/* Fills `l` from the config's limits.h2_floods (borrowed); one rate window
 * for resets, SETTINGS and PING. */
void px_flood_limits_from_cfg(struct px_flood_limits *l, const struct cfg_h2_floods *h);

/* Per-connection state; a small value embedded in the connection (no allocation). */
struct px_flood_rate {
  uint64_t start_ms;
  uint32_t cur, prev;
};

struct px_flood {
  struct px_flood_limits lim;
  /* frame-header scanner */
  uint32_t preface_left;
  uint8_t hdr[9];
  uint32_t hdr_have;
  uint64_t payload_left;
  /* header block in progress */
  int in_block;
  uint32_t block_continuations;
  uint64_t block_bytes;
  /* rates */
  struct px_flood_rate resets, settings, pings;
  /* zero-window stall */
  int stalled;
  uint64_t stalled_since_ms;
  enum px_flood_reason verdict;
  uint64_t frames;                /* frame headers seen */
};

/* Initializes `f` (no allocation; nothing to clear). `limits` may be NULL for
 * the defaults; it is copied. `expect_preface`: the byte feed starts with the
 * 24-byte client connection preface (clients send it after an h2c upgrade too). */
void px_flood_init(struct px_flood *f, const struct px_flood_limits *limits, int expect_preface);

/* Feeds bytes received from the client. Returns the verdict (sticky). */
enum px_flood_reason px_flood_feed(struct px_flood *f, const uint8_t *data, size_t len,
                                   uint64_t now_ms);

/* Feeds one frame header. `type` and `flags` as on the wire. Returns the verdict. */
enum px_flood_reason px_flood_on_frame(struct px_flood *f, uint8_t type, uint8_t flags,
                                       uint32_t stream_id, uint32_t length, uint64_t now_ms);

/* `stalled`: 1 when we have response data to send and the peer's window
 * (connection, or every stream that has data) is 0; 0 otherwise. */
enum px_flood_reason px_flood_on_window(struct px_flood *f, int stalled, uint64_t now_ms);

/* Re-evaluates time-based conditions (zero-window) at `now_ms`; for a timer. */
enum px_flood_reason px_flood_check(struct px_flood *f, uint64_t now_ms);

/* The HTTP/2 error code for GOAWAY: ENHANCE_YOUR_CALM (0xb) for every
 * verdict (stalls included), 0 (NO_ERROR) for PX_FLOOD_NONE. */
uint32_t px_flood_goaway_code(enum px_flood_reason r);

/* A short static sentence for GOAWAY debug data and logs ("rapid reset: ..."). */
const char *px_flood_reason_text(enum px_flood_reason r);

/* The limit to count for a verdict (PX_LIMIT_COUNT for PX_FLOOD_NONE). */
enum px_limit px_flood_limit(enum px_flood_reason r);

#endif
