/* dial_admin_cmd: the CLI verbs that change a running proxy through its admin API. */
#ifndef CUT_DIAL_ADMIN_CMD_H
#define CUT_DIAL_ADMIN_CMD_H

/*
 * `cutover dial get|set|step|rollback ...`: dial_cmd() hands these verbs
 * over with argv[0] = the verb ("get", "set", "step" or "rollback").
 * Returns the exit status: 0 done, 1 refused or unreachable, 2 usage error.
 */
int dial_admin_cmd(int argc, char **argv);

/* `cutover experiment list|start|stop ...` (exp_cmd() in dials/exp_cmd.c),
 * with argv[0] = the verb. Same exit statuses. */
int exp_admin_cmd(int argc, char **argv);

#endif
