/* exp_cmd: `cutover experiment list|start|stop`: operations go through the admin API. */
#include "common/cli.h"
#include "dials/dial_admin_cmd.h"

int exp_cmd(int argc, char **argv) { return exp_admin_cmd(argc - 1, argv + 1); }
