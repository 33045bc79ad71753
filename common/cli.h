/* cli: the `cutover` command line: subcommand dispatch over the core library. */
#ifndef CUT_CLI_H
#define CUT_CLI_H

/* Runs `cutover ARGS...` and returns the process exit status (0 ok, 1 the
 * command failed, 2 usage error). Never exits; main() does. */
int cut_main(int argc, char **argv);

/*
 * Subcommands. Each gets argv with argv[0] = the subcommand name and returns
 * an exit status. Each lives in its module (file named beside it).
 */
int cfg_cmd(int argc, char **argv);        /* config/cfg_cmd.c: config check|print (the file only) */
int px_config_cmd(int argc, char **argv);  /* proxy/px_check.c: config check (+ the files it names)|print */
int dial_cmd(int argc, char **argv);       /* dials/dial_cmd.c: dial bucket|eval|get|set|step|rollback */
int exp_cmd(int argc, char **argv);        /* dials/exp_cmd.c: experiment list|start|stop */
int px_cmd(int argc, char **argv);         /* proxy/px_cmd.c: proxy -c FILE */
int replay_cmd(int argc, char **argv);     /* replay/replay_cmd.c: replay ... */
int rec_spill_cmd(int argc, char **argv);  /* replay/rec_spill_cmd.c: spill drain DIR */
int an_cmd(int argc, char **argv);         /* analyzer/an_cmd.c: analyze ... */
int px_demo_cmd(int argc, char **argv);    /* proxy/px_demo.c: demo-backend --name N --listen A */

#endif
