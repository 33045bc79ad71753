/* px_alog: the JSON-lines access log, written off the event loops. */
#ifndef CUT_PX_ALOG_H
#define CUT_PX_ALOG_H

#include <stddef.h>
#include <stdint.h>

/*
 * Each worker thread owns one ring (single producer, single consumer, no
 * locks) of fixed-size line slots; one writer thread drains every ring into
 * the file with few large write(2) calls. A worker never waits: when its ring
 * is full the line is dropped and counted.
 */

#define PX_ALOG_LINE_MAX 2048 /* longer lines are dropped (counted) */

struct px_alog;

/* Opens `path` for appending ("-" = standard output) and starts the writer
 * thread with `nrings` rings of `slots` lines each (slots rounded up to a
 * power of two). Returns 0 or CUT_ERR_IO / CUT_ERR_NOMEM with err text. */
int px_alog_new(struct px_alog **out, const char *path, size_t nrings, size_t slots, char *err,
                size_t errlen);

/* Writes what is queued, stops the writer and closes the file. NULL is ok. */
void px_alog_free(struct px_alog *a);

/* Queues one line (without its newline; borrowed) on ring `ring`; called only
 * by that ring's thread. Returns 0, or CUT_ERR_FULL when it was dropped. */
int px_alog_write(struct px_alog *a, size_t ring, const char *line, size_t len);

/* Lines dropped so far (ring full or too long). Thread-safe. */
uint64_t px_alog_dropped(const struct px_alog *a);
/* Lines written so far. Thread-safe. */
uint64_t px_alog_written(const struct px_alog *a);

/* Appends s as a JSON string body (without quotes) to buf[*off..cap), escaping
 * as needed; stops silently when full. Pure helper for the line builders. */
void px_json_str(char *buf, size_t cap, size_t *off, const char *s, size_t len);

#endif
