/* alloc: A/B allocation rules: restrictions, app versions, weighted cells. */
#include "dials/alloc.h"

#include <string.h>
#include <strings.h>

#include "common/cut_err.h"
#include "dials/dial_int.h"

static const char *const verdict_names[] = {"eligible", "missing-attribute", "region",
                                            "platform", "version-malformed", "version-range"};

const char *alloc_verdict_name(enum alloc_verdict v) {
  if ((unsigned)v < sizeof verdict_names / sizeof verdict_names[0]) return verdict_names[v];
  return "unknown";
}

int alloc_version_parse(const char *s, size_t len, uint32_t v[3]) {
  if (!s || !v) return CUT_ERR_INVALID;
  v[0] = v[1] = v[2] = 0;
  size_t i = 0;
  for (int part = 0;; part++) {
    if (part == 3) return CUT_ERR_INVALID;
    size_t digits = 0;
    uint64_t x = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      x = x * 10u + (uint64_t)(s[i] - '0');
      if (x > UINT32_MAX) return CUT_ERR_INVALID;
      digits++;
      i++;
    }
    if (digits == 0) return CUT_ERR_INVALID;
    v[part] = (uint32_t)x;
    if (i == len || s[i] == '-' || s[i] == '+') return 0;
    if (s[i] != '.') return CUT_ERR_INVALID;
    i++;
  }
}

int alloc_version_cmp(const uint32_t a[3], const uint32_t b[3]) {
  for (int i = 0; i < 3; i++)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

int alloc_version_in(const uint32_t v[3], const struct cfg_version_cmp *range, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int c = alloc_version_cmp(v, range[i].v);
    int ok;
    switch (range[i].op) {
    case CFG_CMP_EQ: ok = c == 0; break;
    case CFG_CMP_LT: ok = c < 0; break;
    case CFG_CMP_LE: ok = c <= 0; break;
    case CFG_CMP_GT: ok = c > 0; break;
    case CFG_CMP_GE: ok = c >= 0; break;
    default: ok = 0; break;
    }
    if (!ok) return 0;
  }
  return 1;
}

/* Region and platform values compare case-insensitively (ASCII): "EU" = "eu". */
static int in_list(struct dial_slice v, const struct cfg_strlist *l) {
  for (size_t i = 0; i < l->n; i++) {
    const char *s = l->v[i];
    if (strlen(s) == v.len && strncasecmp(s, v.p, v.len) == 0) return 1;
  }
  return 0;
}

enum alloc_verdict alloc_eligible(const struct cfg *cfg, const struct cfg_allocation *a,
                                  const struct dial_request *req) {
  struct dial_slice v;
  char buf[256];
  if (a->regions.n) {
    if (!dial_request_key_buf(req, &cfg->attributes.region, buf, sizeof buf, &v))
      return ALLOC_MISSING_ATTRIBUTE;
    if (!in_list(v, &a->regions)) return ALLOC_REGION;
  }
  if (a->platforms.n) {
    if (!dial_request_key_buf(req, &cfg->attributes.platform, buf, sizeof buf, &v))
      return ALLOC_MISSING_ATTRIBUTE;
    if (!in_list(v, &a->platforms)) return ALLOC_PLATFORM;
  }
  if (a->napp_version) {
    if (!dial_request_key_buf(req, &cfg->attributes.app_version, buf, sizeof buf, &v))
      return ALLOC_MISSING_ATTRIBUTE;
    uint32_t ver[3];
    if (alloc_version_parse(v.p, v.len, ver) != 0) return ALLOC_VERSION_MALFORMED;
    if (!alloc_version_in(ver, a->app_version, a->napp_version)) return ALLOC_VERSION_RANGE;
  }
  return ALLOC_ELIGIBLE;
}

size_t alloc_cell_of(const struct cfg_allocation *a, uint32_t cell_bucket) {
  uint64_t total = 0;
  for (size_t i = 0; i < a->ncells; i++) total += a->cells[i].weight;
  if (total == 0) return SIZE_MAX;
  /* x is uniform over [0, total) when cell_bucket is uniform over the buckets. */
  uint64_t x = (uint64_t)cell_bucket * total / DIAL_BUCKETS;
  uint64_t cum = 0;
  for (size_t i = 0; i < a->ncells; i++) {
    cum += a->cells[i].weight;
    if (x < cum) return i;
  }
  return SIZE_MAX;
}

uint32_t alloc_cell_bucket(const char *salt, size_t salt_len, const char *key, size_t key_len) {
  return dial_bucket_of_hash(dial_hash3(salt, salt_len, ":cell:", 6, key, key_len));
}
