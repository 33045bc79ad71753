/* px_metrics: the proxy's metric set, with every series resolved from the config ahead of traffic. */
#ifndef CUT_PX_METRICS_H
#define CUT_PX_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "dials/dial.h"

struct met_registry;
struct met_series;

/*
 * A px_metrics is built for one config snapshot: it registers the proxy's
 * families in the registry (idempotent, so a reload reuses them) and resolves
 * every series a request can touch from the routes, backends, dials,
 * experiments and allocations of the snapshot. The request path then only
 * indexes arrays and adds to its worker's shard: no lookups by name, no
 * locks, no allocation. Build a new one on reload and free the old one
 * after the workers moved to the new snapshot (series stay in the registry,
 * so counters keep counting across reloads).
 *
 * Families (all names in docs/operations.md):
 *   cutover_requests_total{route,via,decision,arm,status_class}
 *   cutover_request_duration_seconds{route,backend}        histogram
 *   cutover_received_bytes_total{route}, cutover_sent_bytes_total{route}
 *   cutover_upstream_failovers_total{backend}               unhealthy -> fallback
 *   cutover_upstream_ejections_total{backend}
 *   cutover_upstream_connect_failures_total{backend}
 *   cutover_client_connections{protocol}, cutover_client_connections_total{protocol}
 *   cutover_client_streams
 *   cutover_dial_ratio{dial}                                live value, 0..1
 *   cutover_experiment_running{experiment}                  0/1
 *   cutover_config_reloads_total{result}
 */

struct px_metrics;

/* Builds the set for `cfg` (borrowed during the call only; the set keeps no
 * pointer into it). `reg` is borrowed and must outlive the set. Returns 0 or
 * CUT_ERR_NOMEM / CUT_ERR_FULL / CUT_ERR_EXISTS with err text. */
int px_metrics_new(struct px_metrics **out, struct met_registry *reg, const struct cfg *cfg,
                   char *err, size_t errlen);
void px_metrics_free(struct px_metrics *m);

/* The registry the set writes to (for /metrics). */
struct met_registry *px_metrics_registry(const struct px_metrics *m);

/*
 * One finished client request: route index into cfg->routes, the decision
 * (NULL = the route's default), the backend index that served it (SIZE_MAX =
 * none), the status sent to the client (0 = none, e.g. reset), its duration
 * in microseconds and the body bytes each way. `shard` is the worker number.
 * Out-of-range indexes are ignored. NULL m is a no-op.
 */
void px_metrics_request(struct px_metrics *m, unsigned shard, size_t route,
                        const struct dial_decision *d, size_t backend, int status,
                        uint64_t duration_us, uint64_t bytes_in, uint64_t bytes_out);

enum px_metrics_proto { PX_METRICS_HTTP1 = 0, PX_METRICS_H2C, PX_METRICS_H2 };

void px_metrics_conn_open(struct px_metrics *m, unsigned shard, enum px_metrics_proto p);
void px_metrics_conn_close(struct px_metrics *m, unsigned shard, enum px_metrics_proto p);
void px_metrics_stream_open(struct px_metrics *m, unsigned shard);
void px_metrics_stream_close(struct px_metrics *m, unsigned shard);

void px_metrics_failover(struct px_metrics *m, unsigned shard, size_t backend);
void px_metrics_ejection(struct px_metrics *m, unsigned shard, size_t backend);
void px_metrics_connect_failure(struct px_metrics *m, unsigned shard, size_t backend);
/* Adds what a worker's pool for `backend` counted since the last call
 * (connects, connect failures, retries, pipelined, timeouts, resets). */
struct px_pool_stats;
void px_metrics_pool(struct px_metrics *m, unsigned shard, size_t backend,
                     const struct px_pool_stats *delta);

/* Publishes a dial's live value (ppm) / an experiment's running state. */
void px_metrics_dial(struct px_metrics *m, size_t dial, uint32_t ppm);
void px_metrics_experiment(struct px_metrics *m, size_t experiment, int running);

/* Counts a reload attempt (ok = 1 accepted, 0 rejected). */
void px_metrics_reload(struct px_metrics *m, int ok);

/* The status class label of a status: "1xx".."5xx", or "none" for 0 / out of range. */
const char *px_metrics_status_class(int status);

#endif
