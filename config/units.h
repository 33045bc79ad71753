/* units: parsing of the config's value syntaxes (durations, sizes, percentages, addresses). */
#ifndef CUT_UNITS_H
#define CUT_UNITS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/*
 * Pure functions over strings, shared by the config loader, the admin API and
 * the CLI. Each returns 0 on success or CUT_ERR_INVALID / CUT_ERR_RANGE and,
 * when err is not NULL, a short reason such as `unknown unit "sec" (use ms, s, m, h)`.
 */

/* "250ms", "2s", "1m", "1h", "1.5s"; a bare number is rejected (units are required),
 * except "0". Fractions must come to whole milliseconds. */
int cfg_parse_duration(const char *s, uint64_t *ms, char *err, size_t errlen);

/* "512", "64KiB", "4MiB", "1GiB" (also KB/MB/GB as powers of 1000). */
int cfg_parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen);

/* "5", "5%", "12.5%", "0.0001%": 0..100 with at most 4 decimals; stored as ppm (p * 10000). */
int cfg_parse_percent(const char *s, uint32_t *ppm, char *err, size_t errlen);

/* Formats ppm as the shortest percentage text ("12.5%", "0.0001%", "100%") into buf. */
void cfg_format_percent(uint32_t ppm, char *buf, size_t buflen);

/* "127.0.0.1:8080", "[::1]:8443", "backend.internal:80". Fills a->host (caller frees) and a->port. */
int cfg_parse_addr(const char *s, struct cfg_addr *a, char *err, size_t errlen);

/* "header:x-device-id", "cookie:did", "query:device", "random". Fills k (caller frees name, spec). */
int cfg_parse_key(const char *s, struct cfg_key *k, char *err, size_t errlen);

/* ">=8.2.0 <9": space-separated comparators (=, <, <=, >, >=) over dotted versions.
 * On success *out (caller frees) holds *n comparators. */
int cfg_parse_version_range(const char *s, struct cfg_version_cmp **out, size_t *n, char *err,
                            size_t errlen);

/* Parses a dotted version "8.2.13" (up to three numeric parts, an optional
 * suffix after '-' or '+' is ignored) into v[3]. Returns 0 or CUT_ERR_INVALID. */
int cfg_parse_version(const char *s, uint32_t v[3]);

/* RFC 3339 time "2026-11-21T10:00:00Z" (or with an offset) to epoch seconds. */
int cfg_parse_time(const char *s, int64_t *epoch, char *err, size_t errlen);

#endif
