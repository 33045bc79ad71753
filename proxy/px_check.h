/* px_check: what `cutover config check` verifies beyond the config file itself: the files
 * the proxy will read at start (TLS certificates, keys and CA bundles, the admin token). */
#ifndef CUT_PX_CHECK_H
#define CUT_PX_CHECK_H

#include "config/config.h"

/* Puts `file:line:col: KIND NAME: ` (no position when `at` is NULL or has no file) in front
 * of the message in err, an error about the config object KIND NAME defined at `at`. The
 * proxy's start-up errors and `config check` name objects this same way. */
void px_err_at(char *err, size_t errlen, const struct cfg_pos *at, const char *kind,
               const char *name);

/*
 * Loads every TLS context the proxy would build from `c` (listeners, and backends with TLS)
 * and reads the admin token file when it exists, exactly as `cutover proxy` does at start.
 * Returns the number of problems found (0: all good); when there are any, *errs (caller
 * frees) holds one line per problem, `file:line:col: where: what`. Reads files: not for an
 * event loop thread.
 */
int px_check_resources(const struct cfg *c, char **errs);

/* `cutover config check|print FILE`: the config file, then (check) the resources above. */
int px_config_cmd(int argc, char **argv);

#endif
