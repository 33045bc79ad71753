/* px_limits: protection counters and the per-connection HTTP/2 flood detectors. */
#include <string.h>

#include "common/cut_err.h"
#include "common/metrics.h"
#include "config/config.h"
#include "proxy/px_limits.h"

#define H2_PREFACE_LEN 24
#define H2_HEADERS 0x1
#define H2_RST_STREAM 0x3
#define H2_SETTINGS 0x4
#define H2_PUSH_PROMISE 0x5
#define H2_PING 0x6
#define H2_WINDOW_UPDATE 0x8
#define H2_CONTINUATION 0x9
#define H2_FLAG_ACK 0x1
#define H2_FLAG_END_HEADERS 0x4
#define H2_ENHANCE_YOUR_CALM 0xbu

static const char *const limit_names[PX_LIMIT_COUNT] = {
    [PX_LIMIT_CONNECTIONS] = "max_connections",
    [PX_LIMIT_STREAMS] = "max_concurrent_streams",
    [PX_LIMIT_HEADER_LIST] = "max_header_list_bytes",
    [PX_LIMIT_HEADER_COUNT] = "max_headers",
    [PX_LIMIT_REQUEST_BODY] = "max_request_body_bytes",
    [PX_LIMIT_HEADER_TIMEOUT] = "header_timeout",
    [PX_LIMIT_IDLE_TIMEOUT] = "idle_timeout",
    [PX_LIMIT_RAPID_RESET] = "rapid_reset",
    [PX_LIMIT_SETTINGS_FLOOD] = "settings_flood",
    [PX_LIMIT_PING_FLOOD] = "ping_flood",
    [PX_LIMIT_CONTINUATION_FLOOD] = "continuation_flood",
    [PX_LIMIT_HEADER_BLOCK] = "header_block_bytes",
    [PX_LIMIT_ZERO_WINDOW] = "zero_window_stall",
};

const char *px_limit_name(enum px_limit l) {
  return (unsigned)l < PX_LIMIT_COUNT ? limit_names[l] : "unknown";
}

int px_limit_counters_init(struct px_limit_counters *c, struct met_registry *reg, char *err,
                           size_t errlen) {
  if (!c || !reg)
    return cut_errf(err, errlen, CUT_ERR_INVALID, "px_limit_counters_init: NULL argument");
  static const char *const labels[] = {"limit"};
  struct met_family_def d = {.name = "cutover_limit_hits_total",
                             .help = "Times a protection limit fired, by limit name.",
                             .type = MET_COUNTER, .labels = labels, .nlabels = 1,
                             .max_series = PX_LIMIT_COUNT};
  struct met_family *f;
  int rc = met_family_register(reg, &d, &f, err, errlen);
  if (rc)
    return rc;
  for (int i = 0; i < PX_LIMIT_COUNT; i++) {
    c->hits[i] = met_series_get(f, (const char *const[]){limit_names[i]});
    if (!c->hits[i])
      return cut_errf(err, errlen, CUT_ERR_FULL, "metrics registry out of cells");
  }
  return 0;
}

void px_limit_hit(const struct px_limit_counters *c, enum px_limit l, unsigned shard) {
  if (c && (unsigned)l < PX_LIMIT_COUNT)
    met_counter_add(c->hits[l], shard, 1);
}

void px_flood_limits_default(struct px_flood_limits *l) {
  *l = (struct px_flood_limits){
      .max_resets = 200,
      .reset_window_ms = 10000,
      .max_settings = 50,
      .settings_window_ms = 10000,
      .max_pings = 100,
      .ping_window_ms = 10000,
      .max_continuations = 32,
      .max_header_block_bytes = 128 * 1024,
      .zero_window_ms = 30000,
  };
}

void px_flood_limits_from_cfg(struct px_flood_limits *l, const struct cfg_h2_floods *h) {
  *l = (struct px_flood_limits){
      .max_resets = h->max_resets,
      .reset_window_ms = h->rate_window_ms,
      .max_settings = h->max_settings,
      .settings_window_ms = h->rate_window_ms,
      .max_pings = h->max_pings,
      .ping_window_ms = h->rate_window_ms,
      .max_continuations = h->max_continuations,
      .max_header_block_bytes = h->max_header_block_bytes,
      .zero_window_ms = h->zero_window_stall_ms,
  };
}

void px_flood_init(struct px_flood *f, const struct px_flood_limits *limits, int expect_preface) {
  memset(f, 0, sizeof *f);
  struct px_flood_limits d;
  px_flood_limits_default(&d);
  f->lim = d;
  if (limits) {
#define TAKE(field) if (limits->field) f->lim.field = limits->field
    TAKE(max_resets);
    TAKE(reset_window_ms);
    TAKE(max_settings);
    TAKE(settings_window_ms);
    TAKE(max_pings);
    TAKE(ping_window_ms);
    TAKE(max_continuations);
    TAKE(max_header_block_bytes);
    TAKE(zero_window_ms);
#undef TAKE
  }
  f->preface_left = expect_preface ? H2_PREFACE_LEN : 0;
}

/* Counts one event; returns 1 when the weighted count over the sliding window exceeds max. */
static int rate_exceeded(struct px_flood_rate *r, uint64_t now, uint64_t win, uint32_t max) {
  if (r->cur == 0 && r->prev == 0) {
    r->start_ms = now;
  } else if (now >= r->start_ms + 2 * win) {
    r->prev = 0;
    r->cur = 0;
    r->start_ms = now;
  } else if (now >= r->start_ms + win) {
    r->prev = r->cur;
    r->cur = 0;
    r->start_ms += win;
  }
  r->cur++;
  uint64_t elapsed = now > r->start_ms ? now - r->start_ms : 0;
  /* prev * (win - elapsed) / win + cur > max, in integers. */
  uint64_t weighted = (uint64_t)r->prev * (win - elapsed) + (uint64_t)r->cur * win;
  return weighted > (uint64_t)max * win;
}

static enum px_flood_reason trip(struct px_flood *f, enum px_flood_reason r) {
  if (f->verdict == PX_FLOOD_NONE)
    f->verdict = r;
  return f->verdict;
}

enum px_flood_reason px_flood_on_frame(struct px_flood *f, uint8_t type, uint8_t flags,
                                       uint32_t stream_id, uint32_t length, uint64_t now_ms) {
  (void)stream_id;
  if (f->verdict)
    return f->verdict;
  f->frames++;
  switch (type) {
  case H2_HEADERS:
  case H2_PUSH_PROMISE:
    f->in_block = !(flags & H2_FLAG_END_HEADERS);
    f->block_continuations = 0;
    f->block_bytes = length;
    if (f->block_bytes > f->lim.max_header_block_bytes)
      return trip(f, PX_FLOOD_HEADER_BLOCK);
    break;
  case H2_CONTINUATION:
    /* A stray CONTINUATION is nghttp2's protocol error to report; count only real blocks. */
    if (!f->in_block)
      break;
    f->block_continuations++;
    f->block_bytes += length;
    if (f->block_continuations > f->lim.max_continuations)
      return trip(f, PX_FLOOD_CONTINUATION);
    if (f->block_bytes > f->lim.max_header_block_bytes)
      return trip(f, PX_FLOOD_HEADER_BLOCK);
    if (flags & H2_FLAG_END_HEADERS)
      f->in_block = 0;
    break;
  case H2_RST_STREAM:
    if (rate_exceeded(&f->resets, now_ms, f->lim.reset_window_ms, f->lim.max_resets))
      return trip(f, PX_FLOOD_RAPID_RESET);
    break;
  case H2_SETTINGS:
    if (!(flags & H2_FLAG_ACK) &&
        rate_exceeded(&f->settings, now_ms, f->lim.settings_window_ms, f->lim.max_settings))
      return trip(f, PX_FLOOD_SETTINGS);
    break;
  case H2_WINDOW_UPDATE:
    /* The peer opened a window: progress, so a stall starts over. */
    f->stalled = 0;
    break;
  case H2_PING:
    if (!(flags & H2_FLAG_ACK) &&
        rate_exceeded(&f->pings, now_ms, f->lim.ping_window_ms, f->lim.max_pings))
      return trip(f, PX_FLOOD_PING);
    break;
  default:
    break;
  }
  return PX_FLOOD_NONE;
}

enum px_flood_reason px_flood_feed(struct px_flood *f, const uint8_t *data, size_t len,
                                   uint64_t now_ms) {
  size_t i = 0;
  while (i < len && !f->verdict) {
    if (f->preface_left) {
      size_t n = len - i < f->preface_left ? len - i : f->preface_left;
      f->preface_left -= (uint32_t)n;
      i += n;
    } else if (f->payload_left) {
      uint64_t n = len - i < f->payload_left ? len - i : f->payload_left;
      f->payload_left -= n;
      i += (size_t)n;
    } else {
      const uint8_t *h;
      if (f->hdr_have == 0 && len - i >= sizeof f->hdr) {
        h = data + i; /* a whole frame header in place: no byte-wise copy */
        i += sizeof f->hdr;
      } else {
        f->hdr[f->hdr_have++] = data[i++];
        if (f->hdr_have < sizeof f->hdr)
          continue;
        f->hdr_have = 0;
        h = f->hdr;
      }
      uint32_t length = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
      uint32_t sid =
          ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) & 0x7fffffffu;
      f->payload_left = length;
      px_flood_on_frame(f, h[3], h[4], sid, length, now_ms);
    }
  }
  return f->verdict;
}

enum px_flood_reason px_flood_on_window(struct px_flood *f, int stalled, uint64_t now_ms) {
  if (f->verdict)
    return f->verdict;
  if (!stalled) {
    f->stalled = 0;
    return PX_FLOOD_NONE;
  }
  if (!f->stalled) {
    f->stalled = 1;
    f->stalled_since_ms = now_ms;
  }
  return px_flood_check(f, now_ms);
}

enum px_flood_reason px_flood_check(struct px_flood *f, uint64_t now_ms) {
  if (f->verdict)
    return f->verdict;
  if (f->stalled && now_ms >= f->stalled_since_ms &&
      now_ms - f->stalled_since_ms >= f->lim.zero_window_ms)
    return trip(f, PX_FLOOD_ZERO_WINDOW);
  return PX_FLOOD_NONE;
}

uint32_t px_flood_goaway_code(enum px_flood_reason r) {
  return r == PX_FLOOD_NONE ? 0 : H2_ENHANCE_YOUR_CALM;
}

const char *px_flood_reason_text(enum px_flood_reason r) {
  switch (r) {
  case PX_FLOOD_NONE: return "no flood";
  case PX_FLOOD_RAPID_RESET: return "rapid reset: too many streams reset by the client";
  case PX_FLOOD_SETTINGS: return "SETTINGS flood";
  case PX_FLOOD_PING: return "PING flood";
  case PX_FLOOD_CONTINUATION: return "CONTINUATION flood: too many frames in one header block";
  case PX_FLOOD_HEADER_BLOCK: return "header block too large";
  case PX_FLOOD_ZERO_WINDOW: return "flow-control window kept at zero too long";
  }
  return "unknown";
}

enum px_limit px_flood_limit(enum px_flood_reason r) {
  switch (r) {
  case PX_FLOOD_RAPID_RESET: return PX_LIMIT_RAPID_RESET;
  case PX_FLOOD_SETTINGS: return PX_LIMIT_SETTINGS_FLOOD;
  case PX_FLOOD_PING: return PX_LIMIT_PING_FLOOD;
  case PX_FLOOD_CONTINUATION: return PX_LIMIT_CONTINUATION_FLOOD;
  case PX_FLOOD_HEADER_BLOCK: return PX_LIMIT_HEADER_BLOCK;
  case PX_FLOOD_ZERO_WINDOW: return PX_LIMIT_ZERO_WINDOW;
  case PX_FLOOD_NONE: break;
  }
  return PX_LIMIT_COUNT;
}
