/* cli.h: the tsdp program's subcommands. Each takes argc/argv after the subcommand name and
 * returns the process exit status; the error line is printed by main. */
#ifndef TS_CLI_H
#define TS_CLI_H

int ts_cmd_bench(int argc, char **argv);
int ts_cmd_data(int argc, char **argv);
int ts_cmd_sim(int argc, char **argv);

/* Helpers shared by subcommands. */
double ts_now(void);                                         /* monotonic seconds */
int ts_has_flag(int argc, char **argv, const char *flag);    /* --json style */
const char *ts_opt(int argc, char **argv, const char *name); /* value after --name, or NULL */

#endif
