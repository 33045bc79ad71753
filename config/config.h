/* config: YAML configuration loaded into an immutable, reference-counted snapshot. */
#ifndef CUT_CONFIG_H
#define CUT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/*
 * A `struct cfg` is built once by cfg_load() and never changes afterwards,
 * so every thread may read it without locks. Its fields are public and
 * read-only: a config is a large tree of plain data that every module reads,
 * and getters for each field would add nothing. Holders take a reference
 * with cfg_ref() and drop it with cfg_unref(); the last unref frees it.
 * A reload builds a new snapshot and swaps a pointer (see cfg_holder below);
 * requests in flight keep the snapshot they started with.
 *
 * Units, once parsed:
 *   durations  -> uint64_t milliseconds (`*_ms`)
 *   sizes      -> uint64_t bytes
 *   percentages-> uint32_t parts per million of the whole (`*_ppm`):
 *                 p% is stored as p * 10000, so 5% = 50000, 0.0001% = 1,
 *                 100% = 1000000. This is exactly the dials' bucket scale.
 *   times      -> int64_t seconds since the epoch (0 = unset)
 *
 * Every named object keeps the position of its definition (`where`) so later
 * checks (and runtime messages) can point back to file:line.
 */

#define CFG_PPM_MAX 1000000u

struct cfg_pos {
  const char *file; /* borrowed from the snapshot's string pool */
  int line;         /* 1-based */
  int col;          /* 1-based */
};

/* host:port; host is an IPv4/IPv6 literal or a DNS name; IPv6 is given as [::1]:80. */
struct cfg_addr {
  char *host;       /* without brackets */
  uint16_t port;
  int is_ipv6;
};

struct cfg_strlist {
  char **v;
  size_t n;
};

/* A request attribute that a dial or experiment keys on. */
enum cfg_key_kind { CFG_KEY_HEADER, CFG_KEY_COOKIE, CFG_KEY_QUERY, CFG_KEY_RANDOM };
struct cfg_key {
  enum cfg_key_kind kind;
  char *name;       /* lower-cased header name, cookie or query parameter; NULL for random */
  char *spec;       /* the text as written: "header:x-device-id" */
};

struct cfg_tls {
  char *cert;       /* PEM certificate chain file (listeners) or client cert (backends) */
  char *key;        /* PEM private key file */
  char *ca;         /* CA bundle for verifying peers; NULL = system default */
  int verify;       /* backends: verify the server certificate (default 1) */
  char *sni;        /* backends: server name to send and verify; NULL = host */
};

struct cfg_admin {
  struct cfg_addr listen;   /* default 127.0.0.1:9901 */
  char *token_file;         /* default run/admin.token */
  int enabled;              /* 0 when the `admin` block is absent and defaults are off */
};

struct cfg_listener {
  char *name;
  struct cfg_addr listen;
  int has_tls;
  struct cfg_tls tls;       /* cert and key required when has_tls */
  int h2c_upgrade;          /* cleartext: honour "Upgrade: h2c" (RFC 9113 3.2); default 1 */
  struct cfg_pos where;
};

enum cfg_protocol { CFG_PROTO_HTTP1, CFG_PROTO_H2C, CFG_PROTO_H2 };
enum cfg_lb { CFG_LB_ROUND_ROBIN, CFG_LB_LEAST_REQUEST };
enum cfg_unhealthy_policy { CFG_UNHEALTHY_FAIL_OPEN, CFG_UNHEALTHY_FAIL };

struct cfg_health {
  int enabled;              /* active checks on when `health` is given */
  char *path;               /* default /healthz */
  uint64_t interval_ms;     /* default 5s */
  uint64_t timeout_ms;      /* default 1s */
  uint32_t healthy_threshold;   /* default 2 */
  uint32_t unhealthy_threshold; /* default 3 */
};

struct cfg_outlier {
  uint32_t consecutive_5xx;           /* default 5; 0 = off */
  uint32_t consecutive_connect_failures; /* default 3; 0 = off */
  uint64_t base_ejection_ms;          /* default 30s; doubles with each repeat */
  uint64_t max_ejection_ms;           /* default 5m */
  uint32_t max_ejected_ppm;           /* default 50% */
};

struct cfg_backend {
  char *name;
  struct cfg_addr *hosts;
  size_t nhosts;
  enum cfg_protocol protocol;   /* default http1 */
  enum cfg_lb lb;               /* default round_robin */
  uint64_t connect_timeout_ms;  /* default 1s */
  uint64_t timeout_ms;          /* first byte of the response; default 15s (`timeout`) */
  uint64_t total_timeout_ms;    /* whole exchange; default 0 = none */
  uint64_t idle_timeout_ms;     /* pooled connection idle; default 60s */
  uint32_t max_connections;     /* per host per worker; default 64 */
  uint32_t max_streams;         /* h2: concurrent streams per connection; default 100 */
  uint32_t retries;             /* idempotent requests, connect failures only; default 1 */
  uint32_t pipeline;            /* http1: requests in flight per connection; default 1 (off) */
  char *host_header;            /* rewrite Host/:authority; NULL = keep the client's */
  int has_tls;                  /* protocol h2 implies TLS */
  struct cfg_tls tls;
  struct cfg_health health;
  struct cfg_outlier outlier;
  enum cfg_unhealthy_policy on_unhealthy; /* default fail_open */
  struct cfg_pos where;
};

struct cfg_dc_percent {
  char *datacenter;
  uint32_t ppm;
};

struct cfg_dial {
  char *name;
  struct cfg_key key;
  char *salt;                   /* default: the dial's name */
  uint32_t ppm;                 /* `percent` */
  char *to;                     /* target backend group name */
  size_t to_index;              /* index into cfg.backends */
  struct cfg_dc_percent *per_dc;/* optional per-data-center percentages */
  size_t nper_dc;
  uint32_t *steps;              /* optional step plan, ascending ppm */
  size_t nsteps;
  struct cfg_pos where;
};

/* KPI guard of a sticky canary: stop when the canary deviates persistently. */
struct cfg_kpi {
  double max_error_rate_delta;  /* canary - baseline error rate, 0..1; default 0.02 */
  double max_latency_ratio;     /* canary p99 / baseline p99; default 1.5 */
  uint64_t window_ms;           /* evaluation window; default 60s */
  uint32_t min_requests;        /* per arm per window before judging; default 100 */
  uint32_t consecutive_windows; /* bad windows in a row to stop; default 3 */
};

struct cfg_experiment {
  char *name;
  struct cfg_key key;
  char *salt;                   /* default: the experiment's name */
  uint32_t pool_ppm;            /* `pool` */
  char *canary;                 /* backend group names and their indexes */
  size_t canary_index;
  char *baseline;
  size_t baseline_index;
  int64_t start;                /* RFC 3339 in the file; 0 = when started */
  int64_t end;                  /* 0 = open-ended */
  int autostart;                /* `state: running` in the file (default pending) */
  struct cfg_kpi kpi;
  struct cfg_pos where;
};

struct cfg_cell {
  char *name;
  uint32_t weight;
  char *backend;
  size_t backend_index;
};

/* App version range: a list of comparators that all must hold, e.g. ">=8.2.0 <9". */
enum cfg_cmp { CFG_CMP_EQ, CFG_CMP_LT, CFG_CMP_LE, CFG_CMP_GT, CFG_CMP_GE };
struct cfg_version_cmp {
  enum cfg_cmp op;
  uint32_t v[3];                /* major.minor.patch; missing parts are 0 */
};

struct cfg_allocation {
  char *name;
  struct cfg_key key;
  char *salt;                   /* default: the allocation's name */
  uint32_t ppm;                 /* share of eligible traffic that is allocated */
  struct cfg_cell *cells;
  size_t ncells;
  struct cfg_strlist regions;   /* restrictions; empty = any */
  struct cfg_strlist platforms;
  struct cfg_version_cmp *app_version;
  size_t napp_version;
  char *app_version_text;       /* as written, for messages */
  struct cfg_pos where;
};

/* Where the request attributes used by allocation restrictions come from. */
struct cfg_attributes {
  struct cfg_key region;        /* default header:x-region */
  struct cfg_key platform;      /* default header:x-platform */
  struct cfg_key app_version;   /* default header:x-app-version */
};

struct cfg_header_match {
  char *name;                   /* lower-cased */
  char *value;                  /* exact value; NULL = present */
};

struct cfg_mirror {
  char *backend;
  size_t backend_index;
  uint32_t ppm;                 /* sample percentage, default 100% */
  struct cfg_key key;           /* sampling key; default random */
  struct cfg_strlist methods;   /* default GET, HEAD, OPTIONS */
  char *host;                   /* Host rewrite for the shadow; NULL = keep */
};

enum cfg_compare { CFG_COMPARE_OFF, CFG_COMPARE_LIVE };

struct cfg_route {
  char *name;
  /* match */
  char *host;                   /* exact, lower-cased; NULL = any */
  char *path_prefix;            /* NULL = any */
  char *path;                   /* exact path; NULL = any */
  struct cfg_strlist methods;   /* empty = any */
  struct cfg_header_match *headers;
  size_t nheaders;
  /* action */
  char *backend;
  size_t backend_index;
  char *dial;                   /* names and indexes; NULL / SIZE_MAX when absent */
  size_t dial_index;
  char *experiment;
  size_t experiment_index;
  char *allocation;
  size_t allocation_index;
  struct cfg_mirror *mirrors;
  size_t nmirrors;
  int record;
  enum cfg_compare compare;
  struct cfg_strlist compare_ignore; /* JSON paths ignored by live comparison */
  int decision_header;          /* add x-cutover-decision to responses; default 0 */
  struct cfg_pos where;
};

enum cfg_sink { CFG_SINK_NONE, CFG_SINK_KAFKA, CFG_SINK_FILE };

struct cfg_kv {
  char *key;
  char *value;
  int secret;                   /* redacted by cfg_print: a secret-looking key or a ${VAR} value */
};

struct cfg_recording {
  enum cfg_sink sink;           /* default none (kafka when `kafka` is given) */
  /* kafka */
  char *brokers;                /* "embedded" or a bootstrap list */
  char *topic;                  /* default cutover.pairs */
  char *compression;            /* none|gzip|snappy|lz4|zstd; default lz4 */
  uint64_t linger_ms;           /* default 5ms */
  uint32_t queue_max_messages;  /* default 100000 */
  struct cfg_kv *kafka_props;   /* extra librdkafka properties (`kafka.properties`) */
  size_t nkafka_props;
  /* file sink */
  char *file_dir;               /* default run/records */
  /* spill */
  char *spill_dir;              /* default run/spill */
  uint64_t spill_max_bytes;     /* default 1GiB */
  uint64_t spill_segment_bytes; /* default 64MiB */
  /* content */
  struct cfg_strlist lineage_headers;
  struct cfg_strlist redact_headers; /* default authorization, cookie, set-cookie */
  uint64_t max_body_bytes;      /* kept per body; default 64KiB */
  int hash_device_key;          /* default 0 */
  uint32_t max_inflight_shadows;/* per worker; default 1024 */
  uint64_t shadow_timeout_ms;   /* default 5s */
  uint32_t nice;                /* added to the recording threads' nice value; default 10 */
};

/* HTTP/2 flood detectors (px_limits), per client connection. */
struct cfg_h2_floods {
  uint32_t max_resets;          /* RST_STREAM from the client per rate_window; default 200 */
  uint32_t max_settings;        /* SETTINGS (non-ACK) per rate_window; default 50 */
  uint32_t max_pings;           /* PING (non-ACK) per rate_window; default 100 */
  uint64_t rate_window_ms;      /* default 10s */
  uint32_t max_continuations;   /* CONTINUATION frames per header block; default 32 */
  uint32_t max_header_block_bytes; /* compressed bytes per header block; default 128KiB */
  uint64_t zero_window_stall_ms;/* window kept at 0 with data pending; default 30s */
};

struct cfg_limits {
  uint32_t max_connections;     /* client connections per worker; default 10000 */
  uint32_t max_concurrent_streams; /* per h2 connection; default 100 */
  uint32_t max_header_list_bytes;  /* default 64KiB */
  uint32_t max_headers;         /* default 100 */
  uint64_t max_request_body_bytes; /* default 0 = unlimited */
  uint64_t header_timeout_ms;   /* default 10s */
  uint64_t idle_timeout_ms;     /* client idle; default 60s */
  uint64_t drain_timeout_ms;    /* SIGTERM grace; default 30s */
  struct cfg_h2_floods h2_floods;
};

enum cfg_log_format { CFG_LOG_TEXT, CFG_LOG_JSON };

struct cfg_logging {
  char *level;                  /* default info */
  enum cfg_log_format format;   /* default text */
  char *access_log;             /* JSON lines file; NULL = off, "-" = stdout */
};

struct cfg_state {
  char *dir;                    /* default run */
  char *dial_state_file;        /* default <dir>/dials.state.json */
  char *audit_log;              /* default <dir>/dials.audit.log */
};

struct cfg {
  char *path;                   /* the file this was loaded from */
  uint8_t digest[32];           /* SHA-256 of the file's bytes */
  uint32_t workers;             /* `auto` resolves to the number of online CPUs */
  char *datacenter;             /* NULL when unset */
  char *request_id_header;      /* default x-request-id */
  struct cfg_admin admin;
  struct cfg_listener *listeners;
  size_t nlisteners;
  struct cfg_backend *backends;
  size_t nbackends;
  struct cfg_dial *dials;
  size_t ndials;
  struct cfg_experiment *experiments;
  size_t nexperiments;
  struct cfg_allocation *allocations;
  size_t nallocations;
  struct cfg_attributes attributes;
  struct cfg_route *routes;
  size_t nroutes;
  struct cfg_recording recording;
  struct cfg_limits limits;
  struct cfg_logging logging;
  struct cfg_state state;
};

/*
 * Loads and validates `path`. On success stores a new snapshot with one
 * reference in *out (caller drops it with cfg_unref) and returns 0.
 * On failure returns CUT_ERR_CONFIG (or CUT_ERR_IO / CUT_ERR_NOMEM) and, when
 * `errs` is not NULL, stores every problem found as newline-separated lines
 * of the form "FILE:LINE:COL: key.path: message" in *errs (caller frees with
 * free()). All errors of a file are reported, not only the first.
 */
int cfg_load(const char *path, struct cfg **out, char **errs);

/* Same as cfg_load over a buffer; `name` is used as the file name in messages. */
int cfg_load_buffer(const char *name, const char *data, size_t len, struct cfg **out, char **errs);

/*
 * `cutover config check|print FILE` (argv[0] is "config"). For `check`, a loaded file is also
 * given to `check` when not NULL: it returns nonzero when something is wrong, with a message
 * in *errs (caller of check frees), and the command then prints it and fails. Returns the
 * exit status (0, 1, or 2 for a usage error). cfg_cmd() is this without `check`.
 */
int cfg_cmd_run(int argc, char **argv, int (*check)(const struct cfg *c, char **errs));

/* Takes one more reference; returns c. Thread-safe. */
struct cfg *cfg_ref(struct cfg *c);

/* Drops one reference; frees the snapshot when it was the last. NULL is ok. */
void cfg_unref(struct cfg *c);

/* Index lookups by name; return SIZE_MAX when absent. */
size_t cfg_backend_find(const struct cfg *c, const char *name);
size_t cfg_dial_find(const struct cfg *c, const char *name);
size_t cfg_experiment_find(const struct cfg *c, const char *name);
size_t cfg_allocation_find(const struct cfg *c, const char *name);

/*
 * Writes the effective config (every default filled in) as YAML to `out`,
 * with secrets redacted: Kafka properties named like a secret (password,
 * secret, token, credential, ...) or whose value came from ${VAR}. Paths,
 * including TLS key paths, are shown. The text loads back to the same config.
 * Returns 0, CUT_ERR_INVALID or CUT_ERR_IO.
 */
#include <stdio.h>
int cfg_print(const struct cfg *c, FILE *out);

/*
 * A cfg_holder publishes the current snapshot to many threads. Readers call
 * cfg_holder_get() (a reference they must unref); a reload calls
 * cfg_holder_swap(), which takes ownership of the new snapshot and drops the
 * holder's reference to the old one. Lock-free for readers: a get is three
 * atomic increments/decrements and never waits. Swaps are serialized by a
 * mutex and wait only for readers already inside get (see config.c for why
 * no reader can ever reference a freed snapshot). NULL `next` is ignored.
 */
struct cfg_holder;
/* Takes ownership of initial on success only. Returns 0, CUT_ERR_INVALID or CUT_ERR_NOMEM. */
int cfg_holder_new(struct cfg_holder **out, struct cfg *initial);
/* Drops the holder's reference to the current snapshot and frees the holder.
 * No get or swap may be running. NULL is ok. */
void cfg_holder_free(struct cfg_holder *h);
/* The current snapshot with one more reference; caller drops it with cfg_unref. */
struct cfg *cfg_holder_get(struct cfg_holder *h);
/* Publishes `next`, taking ownership of it, and drops the holder's reference
 * to the previous snapshot. Waits only for readers already inside
 * cfg_holder_get; never blocks them. NULL `next` is ignored (kept as before). */
void cfg_holder_swap(struct cfg_holder *h, struct cfg *next);

#endif
