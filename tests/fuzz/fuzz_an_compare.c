/* Fuzz target: analyzer JSON parsing, normalization and diff on untrusted bodies.
 * The input is split at the first NUL byte into a primary and a shadow body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/an_compare.h"
#include "analyzer/an_rules.h"

static const char rules_yaml[] =
    "rules:\n"
    "  - match: {}\n"
    "    ignore: [\"$.a\", \"$..ts\", \"$.items[*].x\"]\n"
    "    sort: [ { path: \"$.items\", by: id }, { path: \"$..tags\" } ]\n"
    "    tolerance: [ { path: \"$..p\", absolute: 0.5 }, { path: \"$.r[*]\", relative: 10% } ]\n"
    "    replace: [ { path: \"$..s\", regex: \"[0-9]+\", with: \"N\" } ]\n"
    "    transform:\n"
    "      primary:\n"
    "        - { rename: { from: \"$.old\", to: \"$.new.deep\" } }\n"
    "        - { list_to_map: { path: \"$..attrs\", key: k, value: v } }\n"
    "        - { list_to_map: { path: \"$.m\", key: k } }\n"
    "        - { remove: \"$.gone[0]\" }\n";

static const struct an_kv json_ct[] = {{"content-type", "application/json"}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct an_rules *rules;
  if (rules == NULL &&
      an_rules_load_string(&rules, rules_yaml, sizeof rules_yaml - 1, "fuzz", NULL, 0) != 0)
    abort();
  const uint8_t *nul = memchr(data, 0, size);
  size_t la = nul ? (size_t)(nul - data) : size;
  struct an_pair_view pv = {.correlation_id = "f", .route = "r"};
  pv.primary = (struct an_side){1, 200, NULL, json_ct, 1, data, la, NULL, 0};
  pv.shadow = (struct an_side){1, 200, NULL, json_ct, 1, nul ? nul + 1 : data,
                               nul ? size - la - 1 : size, NULL, 0};
  pv.repeat = pv.shadow;
  struct an_result res;
  an_result_init(&res);
  if (an_compare(rules, &pv, AN_COMPARE_KEEP_NORMALIZED, &res) != 0) abort();
  /* Comparing a body with itself must always match. */
  pv.shadow = pv.primary;
  pv.repeat.present = 0;
  struct an_rules *plain = NULL;
  if (an_rules_new(&plain) != 0 || an_compare(plain, &pv, 0, &res) != 0 || res.outcome != AN_MATCH)
    abort();
  an_rules_free(plain);
  an_result_clear(&res);
  return 0;
}
