/* alloc: A/B allocations: eligibility (region, platform, app version), share and weighted cells. */
#ifndef CUT_ALLOC_H
#define CUT_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "dials/dial.h"

/*
 * An allocation takes the eligible requests (every restriction holds), puts
 * those with bucket < ppm (allocation salt) into the experiment, and gives
 * each allocated device one cell by weight, from a second bucket computed
 * over "SALT:cell:KEY", so a device's cell does not change when the
 * allocation percentage changes. Rules: docs/dials.md.
 */

/* Why a request is not eligible. */
enum alloc_verdict {
  ALLOC_ELIGIBLE = 0,
  ALLOC_MISSING_ATTRIBUTE,  /* a restricted attribute is absent from the request */
  ALLOC_REGION,             /* region not in the list */
  ALLOC_PLATFORM,           /* platform not in the list */
  ALLOC_VERSION_MALFORMED,  /* app version present but not a dotted version */
  ALLOC_VERSION_RANGE,      /* app version outside the range */
};

/* A short static name: "eligible", "missing-attribute", "region", ... */
const char *alloc_verdict_name(enum alloc_verdict v);

/*
 * Parses an app version "8.2.13" from a request attribute (not
 * NUL-terminated, hence not cfg_parse_version, whose syntax it follows): one
 * to three dot-separated decimal numbers (each at most 4294967295),
 * optionally followed by a suffix that starts with '-' or '+' (ignored).
 * Missing parts are 0. Surrounding blanks are not allowed. Returns 0 or
 * CUT_ERR_INVALID ("", "8.", "v8", "8.2.1.4", "8.x").
 */
int alloc_version_parse(const char *s, size_t len, uint32_t v[3]);

/* Compares two versions: <0, 0 or >0. */
int alloc_version_cmp(const uint32_t a[3], const uint32_t b[3]);

/* 1 when `v` satisfies every comparator of the range (an empty range holds), else 0. */
int alloc_version_in(const uint32_t v[3], const struct cfg_version_cmp *range, size_t n);

/* Checks the restrictions of `a` on `req`, reading the attributes named by
 * cfg->attributes. Pure. */
enum alloc_verdict alloc_eligible(const struct cfg *cfg, const struct cfg_allocation *a,
                                  const struct dial_request *req);

/* The cell (index into a->cells) of a device whose cell bucket is `cell_bucket`;
 * SIZE_MAX when the allocation has no cell with a positive weight. */
size_t alloc_cell_of(const struct cfg_allocation *a, uint32_t cell_bucket);

/* The cell bucket of `key`: dial's bucket formula over "SALT:cell:KEY". */
uint32_t alloc_cell_bucket(const char *salt, size_t salt_len, const char *key, size_t key_len);

#endif
