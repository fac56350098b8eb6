/* tsdp pipeline (cli/pipeline.c), run as the binary ($TSDP_BIN) on the two-episode fixture zarr
 * with tiny stage configs: every stage end to end, a second run skipping every stage, a changed
 * scheduler key re-running that stage and the stages reading its output only, a tampered output
 * re-run alone, the report's rows and values, and bad pipeline configs refused in one line.
 * The PyTorch reference stage is off in the tiny config (its column n/a, the stage not run);
 * it is then turned on with $TSDP_PYTHON (the stage's interpreter, a test hook) pointing at a
 * missing file and at stubs (not available: one line, the run goes on; a failing script: an
 * error naming the stage), and last with /usr/bin/python3, skipped when its torch is missing. */
#include "tests.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ppath(const char *name) {
  static _Thread_local char buf[8][600];
  static _Thread_local int k = 0;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/pipe/%s", tmp_dir(), name);
  return buf[k];
}

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "%s: missing", path);
  char *b = calloc(1, 1 << 20);
  ck_assert_ptr_nonnull(b);
  size_t n = fread(b, 1, (1 << 20) - 1, f);
  b[n] = 0;
  fclose(f);
  return b;
}

/* Tiny stage configs and a pipeline config on the fixture zarr; returns the pipeline config. */
static const char *setup(void) {
  static char cfg[600];
  if (cfg[0]) return cfg;
  char cmd[800];
  snprintf(cmd, sizeof cmd, "mkdir -p %s/pipe", tmp_dir());
  ck_assert_int_eq(system(cmd), 0);
  make_pusht_zarr(ppath("tiny.zarr"), 0);
  put(ppath("base.ini"), "[model]\ndown_dims = 8, 16\nstep_embed_dim = 16\n[data]\nval_ratio = 0\n"
                         "[train]\nbatch_size = 4\nwarmup_steps = 2\nmax_steps = 30\ncheckpoint_every = 15\n"
                         "log_every = 15\nlr = 1e-3\nthreads = 1\n");
  put(ppath("drafter.ini"), "[model]\ntype = transformer\nn_emb = 32\nn_head = 4\nn_layer = 1\np_drop_attn = 0\n"
                            "[train]\nbatch_size = 16\nlr = 3e-3\nwarmup_steps = 5\nmax_steps = 20\ncheckpoint_every = 10\n"
                            "log_every = 10\nthreads = 1\n[distill]\nchains = 4\nbuffer_chains = 8\nrefresh_every = 10\n"
                            "heldout_chains = 2\n");
  put(ppath("sched.ini"), "[rl]\nblocks = 1, 2, 4, 8\nhidden = 8\nlayers = 1\nchains_per_update = 2\nupdates = 4\n"
                          "minibatch = 16\naccept_chains = 2\naccept_block = 8\ncheckpoint_every = 2\n");
  snprintf(cfg, sizeof cfg, "%s", ppath("tiny.ini"));
  char text[4096];
  snprintf(text, sizeof text,
           "[pipeline]\ndata = %s\nout = %s\nbase_config = %s\ndrafter_config = %s\nscheduler_config = %s\n"
           "rollout_episodes = 2\nrollout_sampler = ddim\nrollout_steps = 4\ncost_reps = 3\neval_episodes = 2\n"
           "ddim_steps = 4\nspec_blocks = 2, 4\nbench_windows = 2\ngif_count = 1\nthreads = 1\ntorch_reference = false\n",
           ppath("tiny.zarr"), ppath("run"), ppath("base.ini"), ppath("drafter.ini"), ppath("sched.ini"));
  put(cfg, text);
  return cfg;
}

/* `tsdp pipeline ARGS` under timeout 300; stdout into *out (malloc'd), the first stderr line
 * into line and the count of stderr lines into *nerr; returns the exit code. */
static int run_pipe(const char *args, char **out, char *line, size_t cap, int *nerr) {
  char cmd[4096], of[600], ef[600];
  snprintf(of, sizeof of, "%s", ppath("stdout.txt"));
  snprintf(ef, sizeof ef, "%s", ppath("stderr.txt"));
  snprintf(cmd, sizeof cmd, "timeout 300 %s pipeline %s >%s 2>%s </dev/null", getenv("TSDP_BIN"), args, of, ef);
  int st = system(cmd);
  *out = slurp(of);
  FILE *e = fopen(ef, "r");
  char buf[4096];
  *nerr = 0;
  line[0] = 0;
  while (e && fgets(buf, sizeof buf, e))
    if (!(*nerr)++) snprintf(line, cap, "%s", buf);
  if (e) fclose(e);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count(const char *s, const char *pat) {
  int n = 0;
  for (const char *p = strstr(s, pat); p; p = strstr(p + 1, pat)) n++;
  return n;
}

/* The progress line of stage NAME says WHAT ("running", "skipped"). */
static int stage_says(const char *out, const char *name, const char *what) {
  char pat[128];
  snprintf(pat, sizeof pat, "] %s: %s", name, what);
  return strstr(out, pat) != NULL;
}

static double jval(const char *text, const char *key) {
  char pat[80];
  snprintf(pat, sizeof pat, "\"%s\": ", key);
  const char *p = strstr(text, pat);
  return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static const char *const STAGES[] = {"import", "train base", "distill drafter", "record rollouts", "bench cost",
                                     "rl train scheduler", "bench spec", "eval ddpm-100", "eval ddim-4", "eval spec-L2",
                                     "eval spec-L4", "eval spec-static", "eval tsdp"};
enum { NSTAGES = 13 };

START_TEST(test_pipeline_runs_skips_reruns) {
  const char *cfg = setup();
  char args[1200], line[4096], *out;
  int nerr;
  snprintf(args, sizeof args, "--config %s", cfg);
  /* 1. everything runs */
  int rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0, "first run exited %d: %s\n%s", rc, line, out);
  if (getenv("TSDP_PIPELINE_SHOW")) fprintf(stderr, "---- tsdp pipeline %s\n%s----\n", args, out);
  for (int i = 0; i < NSTAGES; i++) ck_assert_msg(stage_says(out, STAGES[i], "running"), "%s did not run:\n%s", STAGES[i], out);
  ck_assert_int_eq(count(out, ": done in "), NSTAGES);
  /* outputs, sidecars, figures */
  const char *files[] = {"run/data.h5", "run/base.h5", "run/base.h5.png", "run/drafter.h5", "run/rollouts.h5", "run/cost.ini",
                         "run/sched.h5", "run/bench_spec.json", "run/bench_spec.png", "run/eval/tsdp.json",
                         "run/gifs/ddpm-100/seed_100000.gif", "run/gifs/tsdp/seed_100000.gif", "run/report.md",
                         "run/report.json", "run/base.h5.stage", "run/eval/tsdp.json.stage"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    ck_assert_msg(access(ppath(files[i]), F_OK) == 0, "%s missing", files[i]);
  char *side = slurp(ppath("run/sched.h5.stage"));
  ck_assert_msg(strstr(side, "status = done") && strstr(side, "input cost ") && strstr(side, "updates = 4"), "%s", side);
  free(side);
  /* the report: every row, the links, the commit line; the stdout table */
  char *md = slurp(ppath("run/report.md"));
  const char *rows[] = {"| DDPM-100 |", "| DDIM-4 |", "| spec, drafter, fixed L = 2 |", "| spec, drafter, fixed L = 4 |",
                        "| spec, drafter, static DP schedule |", "| TS-DP (drafter + RL scheduler) |"};
  for (int i = 0; i < 6; i++) {
    ck_assert_msg(strstr(md, rows[i]), "report.md lacks %s:\n%s", rows[i], md);
    ck_assert_msg(strstr(out, rows[i]), "stdout lacks %s", rows[i]);
  }
  ck_assert_msg(strstr(md, "- commit: ") && strstr(md, "(base.h5.png)") && strstr(md, "(bench_spec.png)") &&
                    strstr(md, "(gifs/tsdp/seed_100000.gif)") && strstr(md, "speedup vs DDPM-100"), "%s", md);
  ck_assert(strstr(md, "| DDPM-100 | ") && strstr(strstr(md, "| DDPM-100 | "), "| 100.0 | - | 1.00x | n/a |"));
  /* torch_reference = false: the vs-PyTorch column is n/a, the stage did not run */
  ck_assert_msg(strstr(md, "| speedup vs PyTorch DDPM-100 (batch 1) |") &&
                    strstr(md, "Speedup vs PyTorch: n/a, the PyTorch reference is off ([pipeline] torch_reference = false)."),
                "%s", md);
  ck_assert_int_eq(count(md, " | n/a |\n"), 6);
  ck_assert_msg(!strstr(out, "torch reference") && access(ppath("run/torch_ref.json"), F_OK) != 0, "%s", out);
  free(md);
  /* values: scores in [0, 1], DDPM's 100 and DDIM's 4 calls, the spec rows' acceptance and calls */
  char *j = slurp(ppath("run/eval/ddpm-100.json"));
  double m = jval(j, "mean_score"), calls = jval(j, "target_calls_per_chunk");
  ck_assert_msg(m >= 0 && m <= 1 && calls == 100 && jval(j, "episodes") == 2 && jval(j, "ms_per_chunk") > 0, "%s", j);
  free(j);
  j = slurp(ppath("run/eval/ddim-4.json"));
  ck_assert_msg(jval(j, "target_calls_per_chunk") == 4, "%s", j);
  free(j);
  j = slurp(ppath("run/eval/tsdp.json"));
  double acc = jval(j, "acceptance"), tc = jval(j, "target_calls_per_chunk");
  ck_assert_msg(acc > 0 && acc <= 1 && tc >= 1 && tc <= 100 && jval(j, "drafter_calls_per_chunk") > 0, "%s", j);
  free(j);
  j = slurp(ppath("run/report.json"));
  ck_assert_int_eq(count(j, "\"name\": "), 6);
  ck_assert_int_eq(count(j, "\"speedup_vs_pytorch\": null"), 6);
  ck_assert_msg(strstr(j, "\"pytorch_reference\": {\"status\": \"off\"}"), "%s", j);
  ck_assert_int_eq(count(j, "\"status\": \"ran\""), NSTAGES);
  free(j);
  free(out);

  /* 2. a second run skips every stage */
  rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0, "second run exited %d: %s", rc, line);
  if (getenv("TSDP_PIPELINE_SHOW")) fprintf(stderr, "---- again\n%s----\n", out);
  for (int i = 0; i < NSTAGES; i++) ck_assert_msg(stage_says(out, STAGES[i], "skipped"), "%s not skipped:\n%s", STAGES[i], out);
  ck_assert_int_eq(count(out, ": running"), 0);
  free(out);

  /* 3. a scheduler key changed: the scheduler and what reads it (bench spec, the two scheduled
   * rows) run again, nothing else */
  snprintf(args, sizeof args, "--config %s pipeline.rl_updates=3", cfg);
  rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0, "third run exited %d: %s", rc, line);
  if (getenv("TSDP_PIPELINE_SHOW")) fprintf(stderr, "---- %s\n%s----\n", args, out);
  const char *again[] = {"rl train scheduler", "bench spec", "eval spec-static", "eval tsdp"};
  for (int i = 0; i < 4; i++) ck_assert_msg(stage_says(out, again[i], "running (its config or inputs changed)"), "%s:\n%s", again[i], out);
  ck_assert_int_eq(count(out, ": running"), 4);
  ck_assert_int_eq(count(out, ": skipped"), NSTAGES - 4);
  free(out);
  side = slurp(ppath("run/sched.h5.stage"));
  ck_assert_msg(strstr(side, "updates = 3"), "%s", side);
  free(side);
  /* 3b. pipeline.x0_block adds one row, the training-free x0 drafter (no drafter file): its
   * evaluation alone runs, and the report has it with fewer target calls than DDPM's */
  snprintf(args, sizeof args, "--config %s pipeline.rl_updates=3 pipeline.x0_block=2", cfg);
  rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0, "x0 run exited %d: %s", rc, line);
  ck_assert_msg(stage_says(out, "eval spec-x0-L2", "running"), "%s", out);
  ck_assert_int_eq(count(out, ": running"), 1);
  free(out);
  md = slurp(ppath("run/report.md"));
  const char *xr = strstr(md, "| spec, x0 drafter (training-free), L = 2 |");
  ck_assert_msg(xr, "%s", md);
  double xcalls = -1;
  { /* the row's target calls: the cell after its 6th bar */
    const char *c = xr;
    for (int k = 0; k < 5 && c; k++) c = strchr(c + 1, '|');
    if (c) xcalls = strtod(c + 1, NULL);
  }
  ck_assert_msg(xcalls > 0 && xcalls < 100, "x0 row's target calls %g:\n%s", xcalls, md);
  free(md);

  /* 4. an output changed behind the pipeline's back runs again, alone */
  FILE *f = fopen(ppath("run/eval/ddim-4.json"), "a");
  ck_assert_ptr_nonnull(f);
  fputs(" ", f);
  fclose(f);
  rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0, "fourth run exited %d: %s", rc, line);
  ck_assert_msg(stage_says(out, "eval ddim-4", "running (output changed"), "%s", out);
  ck_assert_int_eq(count(out, ": running"), 1);
  free(out);

  /* 5. a stage killed after it began (its sidecar still says running) resumes from its checkpoint */
  char *sd = slurp(ppath("run/base.h5.stage"));
  char *st = strstr(sd, "status = done");
  ck_assert_ptr_nonnull(st);
  char fixed[1 << 16];
  snprintf(fixed, sizeof fixed, "%.*sstatus = running\n%s", (int)(st - sd), sd, strchr(st, '\n') + 1);
  put(ppath("run/base.h5.stage"), fixed);
  free(sd);
  rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0, "resume run exited %d: %s", rc, line);
  ck_assert_msg(stage_says(out, "train base", "running (resuming a run that did not finish)") &&
                    strstr(out, "trained to step 30 (resumed from 30)"), "%s", out);
  free(out);

  /* 6. --json: one JSON object on stdout, progress on stderr */
  snprintf(args, sizeof args, "--config %s pipeline.rl_updates=3 --json", cfg);
  rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0 && out[0] == '{' && count(out, "\n") == 1 && strstr(out, "\"rows\": [") && nerr > NSTAGES, "%s", out);
  free(out);

  /* 7. torch_reference = true with no interpreter: one line says why, the column stays n/a,
   * the run succeeds (every other stage skipped) */
  snprintf(args, sizeof args, "--config %s pipeline.rl_updates=3 pipeline.torch_reference=true", cfg);
  setenv("TSDP_PYTHON", ppath("no-such-python3"), 1);
  rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0 && nerr == 0, "no-python run exited %d: %s\n%s", rc, line, out);
  ck_assert_msg(stage_says(out, "torch reference", "not available (") && strstr(out, "no-such-python3: No such file"), "%s", out);
  ck_assert_int_eq(count(out, "] torch reference: "), 1);
  ck_assert_int_eq(count(out, ": running"), 0);
  md = slurp(ppath("run/report.md"));
  ck_assert_int_eq(count(md, "Speedup vs PyTorch: n/a, the PyTorch reference was not available ("), 1);
  ck_assert_msg(strstr(md, "no-such-python3: No such file") && count(md, " | n/a |\n") == 6 &&
                    strstr(md, "| torch reference | [torch_ref.json](torch_ref.json) | not available |"), "%s", md);
  free(md);
  j = slurp(ppath("run/report.json"));
  ck_assert_msg(strstr(j, "\"pytorch_reference\": {\"status\": \"not available\", \"reason\": \"") &&
                    count(j, "\"speedup_vs_pytorch\": null") == 6, "%s", j);
  free(j);
  free(out);
  /* an interpreter without torch (a stub failing the import probe): not available, with its message */
  put(ppath("notorch.sh"), "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n");
  ck_assert_int_eq(chmod(ppath("notorch.sh"), 0755), 0);
  setenv("TSDP_PYTHON", ppath("notorch.sh"), 1);
  rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0 && nerr == 0, "no-torch run exited %d: %s\n%s", rc, line, out);
  ck_assert_msg(strstr(out, "] torch reference: not available (") && strstr(out, "cannot import torch, h5py and numpy: "
                                                                              "ModuleNotFoundError: No module named 'torch')"), "%s", out);
  free(out);
  /* an interpreter that imports but whose script fails: an error naming the stage, in one line */
  put(ppath("failpy.sh"), "#!/bin/sh\n[ \"$1\" = -c ] && exit 0\necho 'RuntimeError: boom' >&2\nexit 3\n");
  ck_assert_int_eq(chmod(ppath("failpy.sh"), 0755), 0);
  setenv("TSDP_PYTHON", ppath("failpy.sh"), 1);
  rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 1 && nerr == 1 && strstr(line, "torch reference: ") && strstr(line, "exited 3") &&
                    strstr(line, "RuntimeError: boom"), "failing script: rc %d, %d stderr lines: %s", rc, nerr, line);
  free(out);
  unsetenv("TSDP_PYTHON");

  /* 8. with PyTorch: the stage runs scripts/bench_torch.py --quick on the tiny base, the column
   * holds numbers, and a second run skips it */
  SKIP_IF(system("/usr/bin/python3 -c 'import torch, h5py, numpy' >/dev/null 2>&1") != 0,
          "the PyTorch reference stage needs /usr/bin/python3 with torch, h5py and numpy (scripts/deps.sh --dev)");
  rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0, "torch run exited %d: %s\n%s", rc, line, out);
  if (getenv("TSDP_PIPELINE_SHOW")) fprintf(stderr, "---- %s\n%s----\n", args, out);
  ck_assert_msg(stage_says(out, "torch reference", "running") && strstr(out, "] torch reference: done in ") &&
                    count(out, ": running") == 1, "%s", out);
  j = slurp(ppath("run/torch_ref.json"));
  ck_assert_msg(jval(j, "torch_ddpm_chunk_ms") > 0 && jval(j, "tsdp_ddpm_chunk_ms") > 0 && jval(j, "ddpm_steps") == 100 &&
                    jval(j, "agreement_error") < 1e-3 && strstr(j, "\"torch_version\": \"") && strstr(j, "\"ckpt\": \"/"),
                "%s", j);
  double tms = jval(j, "torch_ddpm_chunk_ms");
  free(j);
  md = slurp(ppath("run/report.md"));
  ck_assert_msg(count(md, " | n/a |") == 0 && strstr(md, "Speedup vs PyTorch: ") && strstr(md, "Reproduce: `/usr/bin/python3 ") &&
                    strstr(md, "scripts/bench_torch.py --ckpt ") && strstr(md, "--quick`"), "%s", md);
  free(md);
  j = slurp(ppath("run/report.json"));
  ck_assert_int_eq(count(j, "\"speedup_vs_pytorch\": null"), 0);
  ck_assert_msg(strstr(j, "\"pytorch_reference\": {\"status\": \"measured\"") && fabs(jval(j, "torch_ddpm_chunk_ms") - tms) <= 1e-5 * tms, "%s", j);
  /* the DDPM row: PyTorch's chunk / its ms per chunk */
  const char *r0 = strstr(j, "\"name\": \"ddpm-100\"");
  ck_assert_ptr_nonnull(r0);
  double v = jval(r0, "speedup_vs_pytorch"), ms = jval(r0, "ms_per_chunk");
  ck_assert_msg(fabs(v - tms / ms) <= 1e-4 * v, "%g vs %g / %g", v, tms, ms);
  free(j);
  free(out);
  rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0 && stage_says(out, "torch reference", "skipped") && count(out, ": running") == 0, "%s", out);
  free(out);
}
END_TEST

static void refused(const char *args, const char *want) {
  char line[4096], *out;
  int nerr, rc = run_pipe(args, &out, line, sizeof line, &nerr);
  free(out);
  ck_assert_msg(rc != 0 && rc != 124, "'%s' exited %d", args, rc);
  ck_assert_msg(nerr == 1, "'%s': %d stderr lines (%s)", args, nerr, line);
  ck_assert_msg(strstr(line, want), "'%s': %s (want '%s')", args, line, want);
}

START_TEST(test_pipeline_refusals) {
  const char *cfg = setup();
  char a[1500];
  snprintf(a, sizeof a, "--config %s pipeline.nope=1", cfg);
  refused(a, "unknown key 'nope' in [pipeline]");
  snprintf(a, sizeof a, "--config %s train.lr=0.1", cfg);
  refused(a, "[pipeline] keys only");
  snprintf(a, sizeof a, "--config %s pipeline.data=%s", cfg, ppath("absent.zarr"));
  refused(a, "no such file or folder");
  snprintf(a, sizeof a, "--config %s pipeline.base_config=%s", cfg, ppath("absent.ini"));
  refused(a, "base_config");
  snprintf(a, sizeof a, "--config %s pipeline.drafter_set=train.lr=-1", cfg);
  refused(a, "drafter_set");
  snprintf(a, sizeof a, "--config %s pipeline.rollout_sampler=spec", cfg);
  refused(a, "rollout_sampler");
  snprintf(a, sizeof a, "--config %s --sweep %s", cfg, tmp_dir());
  refused(a, "one of --config or --sweep");
  snprintf(a, sizeof a, "--config %s pipeline.torch_reference=maybe", cfg);
  refused(a, "torch_reference");
  snprintf(a, sizeof a, "--config %s --max-steps 3", cfg);
  refused(a, "unknown option '--max-steps'");
  /* a config whose include is missing */
  put(ppath("inc.ini"), "[pipeline]\ninclude = absent_parent.ini\n");
  snprintf(a, sizeof a, "--config %s", ppath("inc.ini"));
  refused(a, "include");
  /* the committed configs parse (their data may be absent here: that is the only refusal) */
  const char *committed[] = {"configs/pusht_tsdp.ini", "configs/demo_tsdp.ini"};
  for (int i = 0; i < 2; i++) {
    snprintf(a, sizeof a, "--config %s pipeline.data=%s --out %s", committed[i], ppath("absent.h5"), ppath("never"));
    refused(a, "absent.h5: no such file or folder");
  }
}
END_TEST

/* --sweep: two configurations layered on the tiny one (include), the second with a temporal
 * drafter: the second links the stages they share from the first's folder (import, base,
 * rollouts, DDPM and DDIM rows), runs the rest, and sweep.md holds both tables. */
START_TEST(test_pipeline_sweep) {
  setup();
  char cmd[800];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", ppath("abl"));
  ck_assert_int_eq(system(cmd), 0);
  put(ppath("abl/a_ref.ini"), "; the reference\n[pipeline]\ninclude = ../tiny.ini\n");
  put(ppath("abl/b_temporal.ini"), "[pipeline]\ninclude = ../tiny.ini\ndrafter_set = distill.temporal=true\n");
  char args[1200], line[4096], *out;
  int nerr;
  snprintf(args, sizeof args, "--sweep %s --out %s", ppath("abl"), ppath("sweep"));
  int rc = run_pipe(args, &out, line, sizeof line, &nerr);
  ck_assert_msg(rc == 0, "sweep exited %d: %s\n%s", rc, line, out);
  if (getenv("TSDP_PIPELINE_SHOW")) fprintf(stderr, "---- tsdp pipeline %s\n%s----\n", args, out);
  const char *linked[] = {"import", "train base", "record rollouts", "eval ddpm-100", "eval ddim-4"};
  for (int i = 0; i < 5; i++) ck_assert_msg(stage_says(out, linked[i], "linked from "), "%s not linked:\n%s", linked[i], out);
  ck_assert_int_eq(count(out, ": linked from "), 5);
  ck_assert_int_eq(count(out, ": done in "), NSTAGES + NSTAGES - 5);
  char *side = slurp(ppath("sweep/b_temporal/drafter.h5.stage"));
  ck_assert_msg(strstr(side, "temporal = 1"), "%s", side);
  free(side);
  char *md = slurp(ppath("sweep/sweep.md"));
  ck_assert_int_eq(count(md, "| [a_ref](a_ref/report.md) | "), 6);
  ck_assert_int_eq(count(md, "| [b_temporal](b_temporal/report.md) | "), 6);
  ck_assert_msg(strstr(md, "| [b_temporal](b_temporal/report.md) | TS-DP (drafter + RL scheduler) |") &&
                    strstr(md, "| speedup vs PyTorch DDPM (batch 1) |") && count(md, " | n/a |\n") == 12, "%s", md);
  free(md);
  struct stat a, b;
  ck_assert(stat(ppath("sweep/a_ref/base.h5"), &a) == 0 && stat(ppath("sweep/b_temporal/base.h5"), &b) == 0);
  ck_assert_msg(a.st_ino == b.st_ino, "base.h5 not hard-linked");
  ck_assert_msg(access(ppath("sweep/b_temporal/gifs/ddpm-100/seed_100000.gif"), F_OK) == 0, "linked row's GIF missing");
  free(out);
}
END_TEST

Suite *suite_pipeline(void) {
  Suite *s = suite_create("pipeline");
  TCase *tc = tcase_create("pipeline");
  tcase_set_timeout(tc, 1500);
  tcase_add_test(tc, test_pipeline_refusals);
  tcase_add_test(tc, test_pipeline_runs_skips_reruns);
  tcase_add_test(tc, test_pipeline_sweep);
  suite_add_tcase(s, tc);
  return s;
}
