/* dial_store: live dial values (placeholder read side until the store lands). */
#include "dials/dial_store_int.h"

struct dial_live *dial_store_dial_live(const struct dial_store *s, const struct cfg *cfg, size_t i) {
  (void)s; (void)cfg; (void)i;
  return NULL;
}
struct exp_live *dial_store_exp_live(const struct dial_store *s, const struct cfg *cfg, size_t i) {
  (void)s; (void)cfg; (void)i;
  return NULL;
}
struct alloc_live *dial_store_alloc_live(const struct dial_store *s, const struct cfg *cfg,
                                         size_t i) {
  (void)s; (void)cfg; (void)i;
  return NULL;
}
