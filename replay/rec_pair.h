/* rec_pair: one recorded exchange held in memory, built incrementally while it is proxied. */
#ifndef CUT_REC_PAIR_H
#define CUT_REC_PAIR_H

#include <stddef.h>
#include <stdint.h>

#include "common/cut_lfstack.h"
#include "config/config.h"

/*
 * A rec_pair mirrors the `Pair` record of replay/schemas/pair.avsc. The proxy
 * builds it while the request is proxied: head first, then body bytes as they
 * stream (only the first `max_body` bytes are kept, the full size is counted
 * and the SHA-256 is updated over every byte), then one response per side.
 * The decoder (rec_avro.h) fills the same struct from a record.
 *
 * The fields are public and read-only: readers (encoder, analyzer, tests)
 * look at them directly; writers use the functions below, which apply the
 * redaction list, the body cap and the lineage parsing. A pair belongs to one
 * thread at a time; nothing here is thread-safe.
 */

#define REC_REDACTED "<redacted>"

struct rec_mem;

/*
 * The memory of a pair: its strings, lists, responses and small bodies come
 * from a chain of blocks that rec_pair_free gives back at once (to the
 * pair's rec_mem block cache when it has one, else to free()). Bigger
 * allocations get a block of their own in the chain. Nothing in a pair is
 * freed on its own.
 */
struct rec_blk;
struct rec_arena {
  struct rec_blk *blocks; /* newest first */
  char *cur;              /* free space of the newest cache-sized block */
  size_t left;
  size_t bytes;           /* every block's size together */
  struct rec_mem *mem;    /* block cache (one reference held); NULL = malloc */
};

/* Ordered list of name/value strings: headers (duplicates kept, in order) or a
 * map (unique keys; a repeated key replaces the value). An entry's key and
 * value share one allocation (the key's), from `arena` when set (a pair's
 * lists; freed with the pair) or from malloc (a list of its own, `{0}`;
 * freed by rec_kvs_clear). Change entries only through rec_kvs_append /
 * rec_kvs_set / rec_kvs_clear. */
struct rec_kv {
  char *key;
  char *value;
  size_t klen, vlen;       /* strlen of key and value (kept: the encoder needs them) */
};
struct rec_kvs {
  struct rec_kv *v;
  size_t n;
  size_t cap;
  struct rec_arena *arena; /* borrowed; NULL = malloc */
};

/* Returns the value of the first entry named `key` (exact match), or NULL. */
const char *rec_kvs_get(const struct rec_kvs *l, const char *key);

/* A body as recorded: the first bytes, the full size and a running SHA-256. */
struct rec_body {
  uint8_t *data;          /* the kept bytes (in the pair's arena); NULL when len is 0 */
  size_t len;             /* bytes kept, <= the cap */
  size_t room;            /* bytes allocated at data */
  int big;                /* data is a block of its own in the arena (grows by realloc) */
  uint64_t size;          /* every byte seen, also past the cap */
  int truncated;          /* 1 when size > len */
  char sha256[65];        /* lower-case hex of the whole body; "" until rec_body_finish */
  int ended;              /* no more bytes (rec_response_finish, rec_body_finish) */
  int md_on;              /* 1 while the digest below runs (a body longer than its cap) */
  uint64_t md[14];        /* SHA-256 state while streaming (no allocation) */
  struct rec_arena *arena; /* where data comes from (the pair's) */
};

enum rec_kind { REC_KIND_PAIR = 0, REC_KIND_PRIMARY = 1, REC_KIND_SHADOW = 2 };

struct rec_response {
  char *backend;          /* backend group name */
  char *host;             /* host:port that answered; "" when none did */
  int status;             /* 0 when there was no response */
  struct rec_kvs headers; /* lower-case names, redacted values */
  struct rec_body body;
  int64_t latency_us;
  char *error;            /* NULL, or why the response is incomplete */
  struct rec_kvs lineage; /* dependency name -> checksum */
};

struct rec_request {
  char *method;
  char *authority;
  char *path;             /* without the query */
  char *query;            /* without '?'; "" when none */
  struct rec_kvs headers;
  struct rec_body body;
};

/* What a pair needs from the recording config while it is built. */
struct rec_opts {
  uint64_t max_body;                  /* bytes kept per body; 0 = keep nothing */
  const struct cfg_strlist *redact;   /* header names to redact; NULL = the default list
                                         (authorization, cookie, set-cookie); empty = none */
  const struct cfg_strlist *lineage;  /* response headers carrying lineage; NULL = none */
  int hash_device_key;                /* store the SHA-256 (hex) of the device key */
  const char *source;                 /* "proxy" (default when NULL), "replay", "client" */
};

/* Fills `o` from a recording config (borrowed: `rc` must outlive every pair
 * built with `o`). */
void rec_opts_from_cfg(struct rec_opts *o, const struct cfg_recording *rc);

struct rec_pair {
  char *correlation_id;
  int64_t time_us;
  enum rec_kind kind;
  char *source;
  char *route;
  struct rec_kvs decision;            /* map */
  char *device_key;                   /* NULL when absent */
  struct rec_request request;
  struct rec_response *primary;       /* NULL when absent */
  struct rec_response **shadows;      /* array of nshadows owned responses */
  size_t nshadows;
  struct rec_response *primary_repeat;/* NULL when absent */
  const struct rec_opts *opts;        /* borrowed; NULL in decoded pairs */
  struct cut_lfs_node qlink;          /* link while a queue owns the pair (rec_pairq.h) */
  struct rec_arena arena;             /* everything above lives here */
};

/*
 * Creates an empty pair of kind PAIR. `opts` is borrowed and must outlive the
 * pair (it may be NULL: no cap on bodies, default redaction, no lineage).
 * Strings are copied. Returns 0 or CUT_ERR_NOMEM / CUT_ERR_INVALID.
 * Caller frees with rec_pair_free() (on any thread).
 */
int rec_pair_new(struct rec_pair **out, const struct rec_opts *opts, const char *correlation_id,
                 int64_t time_us, const char *route);

/* The same, with the pair's memory taken from `mem` (a block cache owned by
 * the calling thread; the pair takes a reference, so the cache lives until
 * the pair is freed, on any thread). mem NULL = rec_pair_new. */
int rec_pair_new_in(struct rec_pair **out, struct rec_mem *mem, const struct rec_opts *opts,
                    const char *correlation_id, int64_t time_us, const char *route);

/* Gives back all the memory of the pair at once. NULL is ok. */
void rec_pair_free(struct rec_pair *p);

/* About how many bytes of memory `p` holds (for queue bounds). */
size_t rec_pair_mem_size(const struct rec_pair *p);

/* Asks the CPU to start loading the memory of p (which another thread built)
 * so that it arrives while the caller is still busy with the pair before it.
 * Reads p's own first bytes; changes nothing. */
void rec_pair_prefetch(const struct rec_pair *p);

/* Adds a decision label (e.g. "via" -> "dial"). Returns 0 or CUT_ERR_NOMEM. */
int rec_pair_decision_set(struct rec_pair *p, const char *key, const char *value);

/* Sets the device key; hashed (SHA-256 hex) when opts->hash_device_key. */
int rec_pair_set_device_key(struct rec_pair *p, const char *key, size_t len);

/* Sets the request line. `path` may carry a query ("/a?b=1"): it is split at
 * the first '?'. Strings are copied. Returns 0 or CUT_ERR_NOMEM. */
int rec_pair_set_request(struct rec_pair *p, const char *method, const char *authority,
                         const char *path);

/* Appends a request header (name lower-cased, value redacted when listed). */
int rec_pair_request_header(struct rec_pair *p, const char *name, size_t namelen,
                            const char *value, size_t valuelen);

/* Request body bytes as they stream (borrowed; the first max_body are copied). */
int rec_pair_request_body(struct rec_pair *p, const uint8_t *data, size_t len);

/* Which response of the pair. */
enum rec_side { REC_SIDE_PRIMARY, REC_SIDE_SHADOW, REC_SIDE_PRIMARY_REPEAT };

/*
 * Adds a response for `side` and returns it in *out (owned by the pair; valid
 * until rec_pair_free). A pair has at most one primary and one repeat;
 * shadows are appended in order. Returns 0, CUT_ERR_EXISTS or CUT_ERR_NOMEM.
 */
int rec_pair_add_response(struct rec_pair *p, enum rec_side side, const char *backend,
                          struct rec_response **out);

/* Sets status and the host that answered (NULL = ""). */
int rec_response_set_status(struct rec_pair *p, struct rec_response *r, int status,
                            const char *host);

/* Appends a response header: redacted when listed; when the name is a lineage
 * header its value is also parsed into r->lineage. */
int rec_response_header(struct rec_pair *p, struct rec_response *r, const char *name,
                        size_t namelen, const char *value, size_t valuelen);

/* Response body bytes as they stream (borrowed). */
int rec_response_body(struct rec_pair *p, struct rec_response *r, const uint8_t *data, size_t len);

/* Ends the response: latency, and error (NULL when complete; copied). The
 * body takes no more bytes; its checksum is computed by rec_pair_finish (the
 * encoder and the comparer call it), so that a worker need not hash a body
 * it kept whole. Returns 0 or CUT_ERR_NOMEM. */
int rec_response_finish(struct rec_pair *p, struct rec_response *r, int64_t latency_us,
                        const char *error);

/* Ends every body and computes the checksums not computed yet (the encoder
 * and the comparer call it; the pair is read-only afterwards). */
void rec_pair_finish(struct rec_pair *p);

/*
 * Parses one lineage header value ("catalog=v812;streams=9f3a0c") into `map`:
 * entries separated by ';' or ',', name and checksum separated by '=',
 * whitespace around each trimmed, entries without '=' or with an empty name
 * skipped, a repeated name replaces the earlier checksum.
 * Returns the number of entries added or replaced, or CUT_ERR_NOMEM.
 */
int rec_lineage_parse(struct rec_kvs *map, const char *value, size_t len);

/* 1 when `name` (any case) is on the redaction list (NULL = the default list). */
int rec_redact_match(const struct cfg_strlist *list, const char *name, size_t namelen);

/* Appends to a header list / sets in a map (copies). Return 0 or CUT_ERR_NOMEM. */
int rec_kvs_append(struct rec_kvs *l, const char *k, size_t klen, const char *v, size_t vlen);
int rec_kvs_set(struct rec_kvs *l, const char *k, size_t klen, const char *v, size_t vlen);
void rec_kvs_clear(struct rec_kvs *l);

/* Body helpers. rec_body_append keeps at most `cap` bytes in total (the
 * checksum still covers every byte); rec_body_finish ends the body and
 * computes the hex digest (idempotent). */
int rec_body_append(struct rec_body *b, uint64_t cap, const uint8_t *data, size_t len);
void rec_body_finish(struct rec_body *b);

#endif
