/* tsdp: one program, one subcommand per pipeline stage. */
#include "cli.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/sizes.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int listed(const char *const *list, const char *s) {
  for (int i = 0; list && list[i]; i++)
    if (!strcmp(list[i], s)) return 1;
  return 0;
}

int ts_cli_check(int argc, char **argv, const ts_cli_args *a) {
  int npos = 0;
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i];
    for (int j = 0; j < i; j++) /* repeated options: which one counts would be a guess */
      if (s[0] == '-' && s[1] == '-' && !strcmp(argv[j], s) && (listed(a->values, s) || listed(a->flags, s)))
        return ts_fail("option %s given twice; usage: %s", s, a->usage);
    if (listed(a->values, s)) {
      if (i + 1 >= argc || (argv[i + 1][0] == '-' && argv[i + 1][1] == '-'))
        return ts_fail("option %s needs a value; usage: %s", s, a->usage);
      i++;
    } else if (listed(a->flags, s)) {
      continue;
    } else if (s[0] == '-') {
      return ts_fail("unknown option '%s'; usage: %s", s, a->usage);
    } else if (a->overrides && strchr(s, '=')) {
      continue;
    } else if (npos < a->positionals) {
      npos++;
    } else {
      return ts_fail("unexpected argument '%s'; usage: %s", s, a->usage);
    }
  }
  return 0;
}

int ts_has_flag(int argc, char **argv, const char *flag) {
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], flag) == 0) return 1;
  return 0;
}

const char *ts_opt(int argc, char **argv, const char *name) {
  for (int i = 0; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return NULL;
}

int ts_int_opt(int argc, char **argv, const char *name, long dflt, long lo, long hi, long *out) {
  const char *s = ts_opt(argc, argv, name);
  *out = dflt;
  if (!s) return 0;
  char *e;
  errno = 0;
  long v = strtol(s, &e, 10);
  if (e == s || *e || errno == ERANGE || v < lo || v > hi) return ts_fail("%s: '%s' is not an integer in %ld..%ld", name, s, lo, hi);
  *out = v;
  return 0;
}

int ts_int_list(const char *name, const char *s, long lo, long hi, int *out, int cap) {
  int n = 0;
  const char *p = s;
  for (;;) {
    char *e;
    errno = 0;
    long v = strtol(p, &e, 10);
    if (e == p || errno == ERANGE || v < lo || v > hi || n >= cap || (*e && *e != ','))
      return ts_fail("%s: expected 1 to %d comma-separated integers in %ld..%ld, got '%s'", name, cap, lo, hi, s);
    out[n++] = (int)v;
    if (!*e) return n;
    p = e + 1;
  }
}

int ts_cli_files(const ts_cli_file *ins, const ts_cli_file *outs) {
  for (int i = 0; outs && outs[i].opt; i++) {
    const char *out = outs[i].path;
    if (!out) continue;
    if (!*out) return ts_fail("%s: the path is empty", outs[i].opt);
    int reg = ts_regular_file(out);
    if (reg < 0) return -1; /* a folder, FIFO or device is never replaced */
    struct stat so, si;
    if (reg == 0 && stat(out, &so) == 0)
      for (int j = 0; ins && ins[j].opt; j++)
        if (ins[j].path && stat(ins[j].path, &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
          return ts_fail("%s: is also the input %s; refusing to overwrite it", out, ins[j].opt);
    /* the folder takes a file: fail now, not after the work */
    char probe[1200];
    if (strlen(out) > 1000) return ts_fail("%.60s...: output path too long", out);
    snprintf(probe, sizeof probe, "%s.tmp-%ld", out, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
      int e = errno;
      if (e == ENOENT) return ts_fail("%s: cannot write here (the folder does not exist)", out);
      return ts_fail("%s: cannot write here (%s)", out, strerror(e));
    }
    close(fd);
    remove(probe);
  }
  return 0;
}

int ts_cli_run_files(const ts_cli_file *ins, const char *opt, const char *out, const char *const *extra) {
  if (!out) return 0;
  static const char *const side[] = {".csv", ".png"};
  char paths[16][1100];
  ts_cli_file outs[17];
  int n = 0;
  outs[n++] = (ts_cli_file){opt, out};
  if (strlen(out) > 1000) return ts_fail("%.60s...: output path too long", out);
  for (int k = 0; k < 2 + 14; k++) {
    const char *suf = k < 2 ? side[k] : extra ? extra[k - 2] : NULL;
    if (!suf) break;
    snprintf(paths[n - 1], sizeof paths[n - 1], "%s%s", out, suf);
    outs[n] = (ts_cli_file){opt, paths[n - 1]};
    n++;
  }
  outs[n] = (ts_cli_file){NULL, NULL};
  return ts_cli_files(ins, outs);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: tsdp <command> [options]\n"
          "  data import --zarr PATH --out FILE.h5   convert Diffusion Policy's zarr to tsdp HDF5\n"
          "  data info FILE.h5 [--json]              episodes, steps, keys, ranges\n"
          "  sim reset --seed S --legacy [--png F] [--json]  Push-T legacy reset state\n"
          "  sim replay --data FILE.h5 [--episode N] [--gif OUT.gif] [--json]\n"
          "  train --config C.ini --data D.h5 --out CKPT.h5 [--max-steps N] [--fresh] [section.key=value ...]\n"
          "  distill --config C.ini --base BASE.h5 --data D.h5 --out DRAFTER.h5 [--max-steps N] [--fresh] [section.key=value ...]\n"
          "  eval --ckpt CKPT.h5 [--episodes 50] [--sampler ddpm|ddim|spec] [--steps N | --block L] [--seed-start S]\n"
          "       [--drafter DRAFTER.h5|frozen|x0] [--scheduler SCHED.h5] [--overlap] [--gif DIR] [--json]\n"
          "  sample --ckpt C --data D.h5 --index I --n N --sampler ddpm|ddim|spec [--steps K | --block L]\n"
          "       [--drafter DRAFTER.h5|frozen|x0] [--overlap] --seed S --out OUT.h5 [--json]\n"
          "  forward --ckpt C --in IN.h5 --out OUT.h5     one batched eps forward (x, t, cond -> eps)\n"
          "    (eval, sample, forward: --threads T, default all CPUs)\n"
          "  under mpirun -np N: train and distill split each batch, rl train each update's chains, and eval its\n"
          "    episodes over the N ranks\n"
          "  bench gemm [--dims 64,128,256] [--batch B] [--json]\n"
          "  bench step --ckpt C [--batch 1,2,4,8,16] [--threads T] [--json]\n"
           "  bench spec --ckpt C (--data D.h5 | --rollouts R.h5) [--drafter DRAFTER.h5|frozen|x0] [--blocks 2,4]\n"
           "       [--windows 20] [--scheduler SCHED.h5] [--threads 1,2] [--plot PREFIX] [--overlap] [--json]\n"
           "  bench cost --ckpt C [--drafter DRAFTER.h5] --out COST.ini [--max-batch 17]   the scheduler's cost model\n"
           "  bench allreduce [--floats 262144,...] [--reps R] [--json]   (under mpirun -np N: the gradient all-reduce)\n"
           "  rl record --ckpt BASE.h5 --episodes N --out R.h5 [--seed-start S] [--sampler ddpm|ddim] [--steps K]\n"
           "  rl train --config C.ini --ckpt BASE.h5 [--drafter D.h5|frozen] --rollouts R.h5 --out SCHED.h5 [--cost COST.ini]\n"
           "       [--updates N] [--stop-after N] [--fresh] [--json] [section.key=value ...]\n"
          "  pipeline --config P.ini [--out DIR] [--json] [section.key=value ...]   every stage, resumable, and a report\n"
          "  pipeline --sweep FOLDER [--out DIR] [--json]   each *.ini of FOLDER into DIR/NAME/, one table DIR/sweep.md\n"
          "  (spec: exact speculative DDPM, L drafted steps per round; the frozen-target drafter by default;\n"
          "   --drafter x0: training-free, drafts from the target's latest clean-chunk estimate (no drafter calls);\n"
          "   --drafter MAIN.h5+x0[@LO-HI]: MAIN drafts t < LO and t >= HI (default T/10, 4T/5), x0 the rest;\n"
          "   --drafter MAIN.h5+LATE.h5 (or x0+LATE.h5): a late-step specialist (distill.t_max) drafts t < t_max;\n"
          "   --overlap: a learned drafter drafts the next round on a second thread during verification)\n");
}

#ifndef TSDP_VERSION
#define TSDP_VERSION "0.1"
#endif

int main(int argc, char **argv) {
  /* the usage goes to stdout when asked for; a bad command is one line on stderr */
  if (argc < 2) {
    usage(stdout);
    fprintf(stderr, "tsdp: no command given (tsdp help lists them)\n");
    return 2;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    if (argc > 2) {
      fprintf(stderr, "tsdp help: takes no arguments\n");
      return 2;
    }
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
    printf("tsdp %s\n", TSDP_VERSION);
    return 0;
  }
  const char *cmd = argv[1];
  int rc;
  if (ts_dist_init(&argc, &argv)) { /* under mpirun: one rank of the job (core/dist.h) */
    fprintf(stderr, "tsdp: %s\n", ts_error());
    return 1;
  }
  if (strcmp(cmd, "bench") == 0) rc = ts_cmd_bench(argc - 2, argv + 2);
  else if (strcmp(cmd, "data") == 0) rc = ts_cmd_data(argc - 2, argv + 2);
  else if (strcmp(cmd, "sim") == 0) rc = ts_cmd_sim(argc - 2, argv + 2);
  else if (strcmp(cmd, "train") == 0) rc = ts_cmd_train(argc - 2, argv + 2);
  else if (strcmp(cmd, "eval") == 0) rc = ts_cmd_eval(argc - 2, argv + 2);
  else if (strcmp(cmd, "sample") == 0) rc = ts_cmd_sample(argc - 2, argv + 2);
  else if (strcmp(cmd, "forward") == 0) rc = ts_cmd_forward(argc - 2, argv + 2);
  else if (strcmp(cmd, "distill") == 0) rc = ts_cmd_distill(argc - 2, argv + 2);
  else if (!strcmp(cmd, "rl")) rc = ts_cmd_rl(argc - 2, argv + 2);
  else if (!strcmp(cmd, "pipeline")) rc = ts_cmd_pipeline(argc - 2, argv + 2);
  else {
    ts_fail("unknown command '%s' (tsdp help lists them)", cmd); /* ts_fail escapes control characters */
    fprintf(stderr, "tsdp: %s\n", ts_error());
    return 2;
  }
  if (rc != 0 && ts_dist_size() > 1) ts_dist_fail(cmd); /* ends every rank; does not return */
  if (rc != 0 && ts_error()[0]) fprintf(stderr, "tsdp %s: %s\n", cmd, ts_error());
  ts_dist_finalize();
  return rc ? 1 : 0; /* subcommands return -1 or 1 on failure; the process exits 1 */
}
