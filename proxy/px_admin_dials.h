/* px_admin_dials: the admin API's operations over the dial store and the current config. */
#ifndef CUT_PX_ADMIN_DIALS_H
#define CUT_PX_ADMIN_DIALS_H

#include <stddef.h>

#include <jansson.h>

#include "proxy/px_admin.h"

struct dial_store;
struct cfg_holder;
struct met_registry;

/*
 * Fills a struct px_admin_ops whose dial and experiment operations go to the
 * dial store (persisted before they return, audited) and read names, targets
 * and step plans from the current config snapshot. Status, reload and
 * readiness belong to the proxy, which passes them as hooks here.
 *
 * After every change (and on px_admin_dials_publish) the live values are
 * published as the gauges cutover_dial_ratio{dial} (the value in effect in
 * this proxy's data center) and cutover_experiment_running{experiment}, when
 * those families exist in `metrics` (px_metrics registers them).
 */

struct px_admin_dials_opts {
  struct dial_store *store;     /* borrowed, required */
  struct cfg_holder *holder;    /* borrowed, required */
  struct met_registry *metrics; /* borrowed, may be NULL */
  /* Proxy hooks, each may be NULL (reload then answers 501). */
  int (*reload)(void *ud, json_t **out, char *err, size_t errlen);
  /* Adds the proxy's fields (workers, upstream health, ...) to `status`. */
  int (*status)(void *ud, json_t *status, char *err, size_t errlen);
  int (*ready)(void *ud);
  void *user_data;
};

struct px_admin_dials;

/* Returns 0 or CUT_ERR_NOMEM / CUT_ERR_INVALID. Caller frees with
 * px_admin_dials_free after the admin server that uses it is freed. */
int px_admin_dials_new(struct px_admin_dials **out, const struct px_admin_dials_opts *opts);
void px_admin_dials_free(struct px_admin_dials *d);

/* Fills `ops` (user_data = d). */
void px_admin_dials_ops(struct px_admin_dials *d, struct px_admin_ops *ops);

/* Sets the dial and experiment gauges from the store's live values. */
void px_admin_dials_publish(struct px_admin_dials *d);

#endif
