/* cli.h: the tsdp program's subcommands. Each takes argc/argv after the subcommand name and
 * returns the process exit status; the error line is printed by main. */
#ifndef TS_CLI_H
#define TS_CLI_H

#include "core/timer.h"
#include "infer/policy.h"

int ts_cmd_bench(int argc, char **argv);
int ts_cmd_data(int argc, char **argv);
int ts_cmd_sim(int argc, char **argv);
int ts_cmd_train(int argc, char **argv);
int ts_cmd_eval(int argc, char **argv);
int ts_cmd_sample(int argc, char **argv);
int ts_cmd_forward(int argc, char **argv);

/* Config from --config plus section.key=value arguments (in cli/train.c). */
struct ts_config;
int ts_cli_config(int argc, char **argv, struct ts_config *cfg);
/* The training commands' value-less flags: sets *fresh and *json from --fresh / --json and
 * copies the other arguments (at most cap) to args; returns their count. */
int ts_cli_train_flags(int argc, char **argv, int *fresh, int *json, char **args, int cap);

/* Helpers shared by subcommands. */
/* --ckpt C [--threads T (default all CPUs)] [--raw-weights]: load the policy (EMA weights
 * unless --raw-weights) and set OpenBLAS's, the op pool's and the engine's threads. */
int ts_cli_load_policy(int argc, char **argv, ts_policy *p);
/* Raw observation history (n_obs_steps frames ending at dataset step idx, edge-padded at the
 * start of its episode) into out (n_obs_steps * obs_dim). */
long ts_cli_obs_history(const ts_dataset *d, const ts_policy *p, long idx, float *out);
/* --drafter DRAFTER.h5|frozen (default frozen) for the speculative sampler: a distilled drafter
 * is loaded into *dm for p (refused when distilled from another base) and s->drafter points at
 * it; dm must outlive the sampling and be freed with ts_drafter_model_free. */
struct ts_drafter_model;
int ts_cli_drafter(int argc, char **argv, const ts_policy *p, struct ts_drafter_model *dm, ts_sampler *s);
int ts_cmd_distill(int argc, char **argv);
int ts_bench_spec(int argc, char **argv); /* tsdp bench spec (cli/spec.c) */
int ts_bench_cost(int argc, char **argv); /* tsdp bench cost (cli/rl.c) */
int ts_cmd_rl(int argc, char **argv);     /* tsdp rl record | train (cli/rl.c) */
int ts_cmd_pipeline(int argc, char **argv); /* tsdp pipeline (cli/pipeline.c) */
/* --scheduler SCHED.h5 for the spec sampler: loads it into *sm for p and the drafter in dm (or
 * the frozen one when s->drafter is NULL), refusing one trained for another base or drafter;
 * s->blocks points at its learned scheduler and s->steps becomes its largest block. sm must
 * outlive the sampling and be freed with ts_sched_model_free (also after a failure). */
struct ts_sched_model;
int ts_cli_scheduler(int argc, char **argv, const ts_policy *p, const struct ts_drafter_model *dm, ts_sampler *s,
                     struct ts_sched_model *sm);
/* The arguments a subcommand knows: options taking a value and value-less flags
 * (NULL-terminated lists; either may be NULL), whether section.key=value overrides are allowed
 * and how many positional arguments. ts_cli_check refuses, in one line ending with the usage,
 * an unknown option (a typo such as --max-step), an option without its value (at the end, or
 * followed by another --option), an option given twice and an unexpected argument. Every
 * subcommand calls it before reading any option. */
typedef struct ts_cli_args {
  const char *const *values, *const *flags;
  int overrides, positionals;
  const char *usage;
} ts_cli_args;
int ts_cli_check(int argc, char **argv, const ts_cli_args *a);
int ts_has_flag(int argc, char **argv, const char *flag);    /* --json style */
const char *ts_opt(int argc, char **argv, const char *name); /* value after --name, or NULL */
/* Integer option: *out = dflt when absent; a non-integer or a value outside lo..hi fails
 * with a line naming the option. */
int ts_int_opt(int argc, char **argv, const char *name, long dflt, long lo, long hi, long *out);
/* A comma-separated list of 1..cap integers in lo..hi (--dims, --batch, --blocks); returns the
 * count, or -1 with a line naming the option and the text. */
int ts_int_list(const char *name, const char *s, long lo, long hi, int *out, int cap);
/* A subcommand's files, checked before any work (a refusal is one line, nothing is touched):
 * each output that exists must be a regular file (never a folder, FIFO or device) and must not
 * be one of the inputs (same device and inode: "OUT: is also the input --data; refusing to
 * overwrite it"), and its folder must take a file (OUT.tmp-PID is created and removed). Both
 * lists end with an entry whose opt is NULL; entries with a NULL path are skipped. */
typedef struct ts_cli_file {
  const char *opt, *path;
} ts_cli_file;
int ts_cli_files(const ts_cli_file *ins, const ts_cli_file *outs);
/* The files a training run writes beside OUT (OUT.csv, OUT.png and "OUT<suffix>" for each
 * NULL-terminated extra suffix) checked with ts_cli_files as outputs, with OUT itself. */
int ts_cli_run_files(const ts_cli_file *ins, const char *opt, const char *out, const char *const *extra);

#endif
