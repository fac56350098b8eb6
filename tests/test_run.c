/* train/run: the shared training-run machinery on its own (generic columns, the writer and
 * eval hooks, resume and the recipe check, older logs), and the hostile-input fixes around
 * it: --fresh keeps the old checkpoint until the first new one, stale temporaries of dead
 * processes are swept. */
#include "tests.h"
#include "core/config.h"
#include "core/error.h"
#include "core/h5io.h"
#include "data/dataset.h"
#include "train/run.h"
#include "train/train.h"
#include <hdf5.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void touch(const char *path) {
  FILE *f = fopen(path, "w");
  ck_assert_msg(f, "%s", path);
  fputs("x", f);
  fclose(f);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  ck_assert_msg(f, "%s", path);
  static char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  return buf;
}

/* A toy trainer: one parameter vector under AdamW, its EMA-like copy, an RNG stream. */
typedef struct {
  ts_tensor *w, *shadow;
  ts_adamw *opt;
  ts_rng rng;
  ts_named named[2];
  int extra_calls, eval_calls;
  long kill_at; /* toy_eval SIGKILLs the process while evaluating this step */
} toy;

static void toy_new(toy *t) {
  memset(t, 0, sizeof *t);
  t->w = ts_param_new(1, (int[]){5});
  t->shadow = ts_param_new(1, (int[]){5});
  for (int i = 0; i < 5; i++) t->w->data[i] = (float)i;
  t->opt = ts_adamw_new(&t->w, 1, 1e-2f, 0.9f, 0.999f, 1e-8f, 0);
  ts_rng_init_stream(&t->rng, 7, 2);
  t->named[0] = (ts_named){"model/w", t->w};
  t->named[1] = (ts_named){"ema/w", t->shadow};
}

static void toy_step(toy *t) {
  for (int i = 0; i < 5; i++) t->w->grad[i] = t->w->data[i] - ts_rng_uniform(&t->rng);
  ts_adamw_step(t->opt);
  for (int i = 0; i < 5; i++) t->shadow->data[i] = 0.5f * (t->shadow->data[i] + t->w->data[i]);
}

static void toy_free(toy *t) {
  ts_adamw_free(t->opt);
  ts_param_free(t->w);
  ts_param_free(t->shadow);
}

static int toy_writer(ts_h5 *f, void *user) {
  toy *t = user;
  t->extra_calls++;
  float v[2] = {1, 2};
  return ts_h5_write_f32(f, "extra/v", v, 1, (int64_t[]){2});
}

static int toy_eval(void *user, const char *path, long step, double *score) {
  toy *t = user;
  ck_assert(exists(path)); /* the checkpoint is committed before the hook runs */
  t->eval_calls++;
  if (step == t->kill_at) raise(SIGKILL);
  *score = (double)step / 100;
  return 0;
}

static const ts_run_col toy_cols[] = {
  {"loss", NULL, "loss %.4f", 2, 0, 0},
  {"acceptance", "%.3f", "acc %.2f", 1, 0, 1},
  {"samples_per_s", "%.0f", NULL, 0, 1, 0},
  {"score", "%.2f", NULL, 1, 0, 1},
};
static const char *const toy_may_change[] = {"train.max_steps", "eval.*", NULL};

static ts_run_spec toy_spec(toy *t, const char *out, const char *ini, int ncols) {
  ts_run_spec s = {.out = out, .config = ini, .may_change = toy_may_change, .tensors = t->named, .n_tensors = 2,
                   .rng = &t->rng, .opt = t->opt, .cols = toy_cols, .n_cols = ncols, .total_steps = 20,
                   .eval_every = 10, .eval = toy_eval, .eval_user = t, .eval_col = "score", .quiet = 1};
  if (ncols < 4) s.eval = NULL;
  return s;
}

/* Runs the toy from its resume point to `to`, logging every 5 steps, checkpointing every 10. */
static long toy_run(toy *t, const char *out, const char *ini, int ncols, long to) {
  ts_run_spec s = toy_spec(t, out, ini, ncols);
  ts_run *run;
  ck_assert_msg(ts_run_open(&run, &s) == 0, "%s", ts_error());
  long step = ts_run_resume(run), from = step;
  ck_assert_msg(step >= 0, "%s", ts_error());
  for (; step < to; step++) {
    toy_step(t);
    if ((step + 1) % 5 == 0) {
      double v[4] = {1.0 / (double)(step + 1), 0.5, 20, NAN};
      ck_assert_int_eq(ts_run_log(run, step + 1, v), 0);
    }
    if ((step + 1) % 10 == 0) ck_assert_msg(ts_run_checkpoint(run, step + 1, toy_writer, t) == 0, "%s", ts_error());
  }
  ck_assert_int_eq(ts_run_rows(run), (int)(to / 5));
  ts_run_close(run);
  return from;
}

START_TEST(test_run_generic_columns_and_resume) {
  char out[512];
  snprintf(out, sizeof out, "%s/toy.h5", tmp_dir());
  ts_config c;
  ts_config_defaults(&c);
  char *ini = ts_config_to_ini(&c);
  toy a, b;
  toy_new(&a);
  ck_assert_int_eq(toy_run(&a, out, ini, 4, 20), 0);
  ck_assert_int_eq(a.eval_calls, 2);
  ck_assert_int_eq(a.extra_calls, 4); /* each eval writes the checkpoint again */
  /* The layout: tensors, moments, the writer's objects, one log vector per column. */
  ts_h5 *f = ts_h5_open(out);
  ck_assert_msg(f, "%s", ts_error());
  const char *names[] = {"model/w", "ema/w", "optim/m/model/w", "optim/v/model/w", "extra/v", "log/step", "log/loss",
                         "log/acceptance", "log/samples_per_s", "log/score"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) ck_assert_msg(ts_h5_exists(f, names[i]), "%s", names[i]);
  ck_assert(!ts_h5_exists(f, "optim/m/ema/w"));
  int64_t step;
  ck_assert_int_eq(ts_h5_get_attr_i64(f, "/", "step", &step), 0);
  ck_assert_int_eq(step, 20);
  int64_t n;
  float *score = fix_floats(f, "log/score", &n), *sps = fix_floats(f, "log/samples_per_s", NULL);
  ck_assert_int_eq(n, 4);
  ck_assert(isnan(score[0]) && score[1] == 0.1f && isnan(score[2]) && score[3] == 0.2f);
  ck_assert(sps[0] > 0 && isfinite(sps[0])); /* a count turned into a rate */
  free(score);
  free(sps);
  ts_h5_close(f);
  /* CSV: header from the column names, formats per column, NaN as an empty cell. */
  char p[600];
  snprintf(p, sizeof p, "%s.csv", out);
  char *csv = slurp(p);
  ck_assert_msg(!strncmp(csv, "step,loss,acceptance,samples_per_s,score\n5,0.2,0.500,", 53), "%s", csv);
  ck_assert_msg(strstr(csv, "\n10,0.1,0.500,") && strstr(csv, ",0.10\n") && strstr(csv, ",0.20\n"), "%s", csv);
  ck_assert_msg(strstr(csv, "\n15,") && strstr(strstr(csv, "\n15,"), ",\n20,"), "%s", csv);
  /* The plotted columns (loss, acceptance, score) are three panels side by side in <out>.png;
   * there is no PNG per column. */
  snprintf(p, sizeof p, "%s.png", out);
  int pw, ph;
  unsigned char *png = fix_png(p, &pw, &ph);
  ck_assert_msg(pw == 3 * 560 && ph == 380 + 40, "%s is %dx%d", p, pw, ph);
  free(png);
  snprintf(p, sizeof p, "%s.acceptance.png", out);
  ck_assert(!exists(p));
  snprintf(p, sizeof p, "%s.score.png", out);
  ck_assert(!exists(p));

  /* A half run resumed continues exactly where the straight one went. */
  char half[512];
  snprintf(half, sizeof half, "%s/toy_half.h5", tmp_dir());
  toy_new(&b);
  ck_assert_int_eq(toy_run(&b, half, ini, 4, 10), 0);
  toy_free(&b);
  toy_new(&b);
  ck_assert_int_eq(toy_run(&b, half, ini, 4, 20), 10);
  ck_assert_mem_eq(a.w->data, b.w->data, 5 * sizeof(float));
  ck_assert_mem_eq(a.shadow->data, b.shadow->data, 5 * sizeof(float));
  ck_assert_mem_eq(a.opt->m[0], b.opt->m[0], 5 * sizeof(float));
  ck_assert(a.rng.counter == b.rng.counter && a.opt->step == b.opt->step);
  toy_free(&b);

  /* A different recipe is refused naming section, key and both values; may_change keys pass. */
  ts_config c2 = c;
  ck_assert_int_eq(ts_config_override(&c2, "train.batch_size=3"), 0);
  char *ini2 = ts_config_to_ini(&c2);
  toy_new(&b);
  ts_run_spec s = toy_spec(&b, out, ini2, 4);
  ts_run *run;
  ck_assert_int_eq(ts_run_open(&run, &s), 0);
  ck_assert_int_eq(ts_run_resume(run), -1);
  ck_assert_msg(strstr(ts_error(), "cannot resume from") && strstr(ts_error(), "[train]: 'batch_size = 256' in the checkpoint, 'batch_size = 3' now") &&
                    strstr(ts_error(), "pass --fresh to start over"),
                "%s", ts_error());
  ts_run_close(run);
  free(ini2);
  c2 = c;
  ck_assert_int_eq(ts_config_override(&c2, "train.max_steps=99"), 0);
  ck_assert_int_eq(ts_config_override(&c2, "eval.episodes=3"), 0);
  ini2 = ts_config_to_ini(&c2);
  s = toy_spec(&b, out, ini2, 4);
  ck_assert_int_eq(ts_run_open(&run, &s), 0);
  ck_assert_msg(ts_run_resume(run) == 20, "%s", ts_error());
  ck_assert_int_eq(ts_run_rows(run), 4);
  ck_assert(ts_run_row(run, 3)[0] == 20 && ts_run_row(run, 3)[4] == 0.2f && ts_run_row(run, 4) == NULL);
  ck_assert_int_eq(ts_run_col_index(run, "acceptance"), 1);
  ts_run_close(run);
  free(ini2);
  /* fresh: nothing is read, the old file stays until the first checkpoint replaces it. */
  s = toy_spec(&b, out, ini, 4);
  s.fresh = 1;
  ck_assert_int_eq(ts_run_open(&run, &s), 0);
  ck_assert_int_eq(ts_run_resume(run), 0);
  ck_assert_int_eq(ts_run_rows(run), 0);
  ck_assert(exists(out));
  ts_run_close(run);
  toy_free(&b);
  toy_free(&a);
  free(ini);
}
END_TEST

/* A checkpoint whose log predates a column: optional columns read as NaN, others refuse. */
START_TEST(test_run_older_log_columns) {
  char out[512];
  snprintf(out, sizeof out, "%s/toy_old.h5", tmp_dir());
  ts_config c;
  ts_config_defaults(&c);
  char *ini = ts_config_to_ini(&c);
  toy t;
  toy_new(&t);
  ck_assert_int_eq(toy_run(&t, out, ini, 1, 10), 0); /* loss only */
  toy_free(&t);
  toy_new(&t);
  ck_assert_int_eq(toy_run(&t, out, ini, 2, 20), 10); /* + acceptance, optional */
  ts_h5 *f = ts_h5_open(out);
  int64_t n;
  float *acc = fix_floats(f, "log/acceptance", &n);
  ck_assert_int_eq(n, 4);
  ck_assert(isnan(acc[0]) && isnan(acc[1]) && acc[2] == 0.5f);
  free(acc);
  ts_h5_close(f);
  toy_free(&t);
  /* samples_per_s is not optional: a log without it is refused, naming the dataset. */
  snprintf(out, sizeof out, "%s/toy_old2.h5", tmp_dir());
  toy_new(&t);
  ck_assert_int_eq(toy_run(&t, out, ini, 2, 10), 0);
  toy_free(&t);
  toy_new(&t);
  ts_run_spec s = toy_spec(&t, out, ini, 3);
  ts_run *run;
  ck_assert_int_eq(ts_run_open(&run, &s), 0);
  ck_assert_int_eq(ts_run_resume(run), -1);
  ck_assert_msg(strstr(ts_error(), "samples_per_s") && strstr(ts_error(), "--fresh"), "%s", ts_error());
  ts_run_close(run);
  toy_free(&t);
  free(ini);
}
END_TEST

START_TEST(test_run_refuses_bad_specs) {
  toy t;
  toy_new(&t);
  ts_run *run = (ts_run *)&t;
  char out[512];
  snprintf(out, sizeof out, "%s/no/such/folder/x.h5", tmp_dir());
  ts_run_spec s = toy_spec(&t, out, "", 4);
  ck_assert_int_ne(ts_run_open(&run, &s), 0);
  ck_assert_ptr_null(run);
  ck_assert_msg(strstr(ts_error(), "cannot write here"), "%s", ts_error());
  snprintf(out, sizeof out, "%s/y.h5", tmp_dir());
  s = toy_spec(&t, out, "", 4);
  s.eval_col = "nope";
  ck_assert_int_ne(ts_run_open(&run, &s), 0);
  s = toy_spec(&t, out, "", 4);
  const ts_run_col bad[] = {{"log/x", NULL, NULL, 0, 0, 0}};
  s.cols = bad;
  s.n_cols = 1;
  s.eval = NULL;
  ck_assert_int_ne(ts_run_open(&run, &s), 0);
  s = toy_spec(&t, NULL, "", 4);
  ck_assert_int_ne(ts_run_open(&run, &s), 0);
  toy_free(&t);
}
END_TEST

/* A pid that is certainly not running: a child that has exited and been reaped. */
static long dead_pid(void) {
  pid_t p = fork();
  if (p == 0) _exit(0);
  ck_assert(p > 0);
  waitpid(p, NULL, 0);
  return (long)p;
}

START_TEST(test_run_sweeps_stale_temporaries) {
  char dir[512], out[600], p[800];
  snprintf(dir, sizeof dir, "%s/sweep", tmp_dir());
  mkdir(dir, 0755);
  snprintf(out, sizeof out, "%s/ck.h5", dir);
  long dead = dead_pid(), alive = (long)getppid();
  const char *stale[] = {"ck.h5.tmp-%ld", "ck.h5.csv.tmp-%ld", "ck.h5.png.tmp-%ld", "ck.h5.acceptance.png.tmp-%ld"};
  const char *kept_dead[] = {"other.h5.tmp-%ld", "ck.h5x.tmp-%ld", "ck.h5.gif.tmp-%ld", "ck.h5.tmp-%ldz"};
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s/", dir);
    snprintf(p + strlen(p), sizeof p - strlen(p), stale[i], dead);
    touch(p);
    snprintf(p, sizeof p, "%s/", dir);
    snprintf(p + strlen(p), sizeof p - strlen(p), stale[i], alive);
    touch(p);
    snprintf(p, sizeof p, "%s/", dir);
    snprintf(p + strlen(p), sizeof p - strlen(p), kept_dead[i], dead);
    touch(p);
  }
  toy t;
  toy_new(&t);
  ts_run_spec s = toy_spec(&t, out, "", 4);
  ts_run *run;
  ck_assert_msg(ts_run_open(&run, &s) == 0, "%s", ts_error());
  ts_run_close(run);
  toy_free(&t);
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s/", dir);
    snprintf(p + strlen(p), sizeof p - strlen(p), stale[i], dead);
    ck_assert_msg(!exists(p), "%s survived", p);
    snprintf(p, sizeof p, "%s/", dir);
    snprintf(p + strlen(p), sizeof p - strlen(p), stale[i], alive);
    ck_assert_msg(exists(p), "%s (a live process's) was removed", p);
    snprintf(p, sizeof p, "%s/", dir);
    snprintf(p + strlen(p), sizeof p - strlen(p), kept_dead[i], dead);
    ck_assert_msg(exists(p), "%s (not this run's) was removed", p);
  }
}
END_TEST

/* The two-episode fixture as a tsdp dataset, and a tiny U-Net recipe on it. */
static const char *tiny_data(void) { return infer_tiny_data(); }

static void tiny_cfg(ts_config *c) {
  ts_config_defaults(c);
  const char *ov[] = {"model.down_dims=8,16", "model.step_embed_dim=16", "train.batch_size=4", "train.warmup_steps=2",
                      "train.max_steps=20", "train.checkpoint_every=10", "train.log_every=5", "data.val_ratio=0"};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) ck_assert_msg(ts_config_override(c, ov[i]) == 0, "%s", ts_error());
}

static int64_t ckpt_step(const char *path) {
  ts_h5 *f = ts_h5_open(path);
  ck_assert_msg(f, "%s", ts_error());
  int64_t s = -1;
  ts_h5_get_attr_i64(f, "/", "step", &s);
  ts_h5_close(f);
  return s;
}

/* Regression: --fresh deleted --out before anything was validated, so a bad --data or
 * config left nothing. Now the old checkpoint stays until the first new one replaces it. */
START_TEST(test_train_fresh_validates_before_replacing) {
  ts_config c;
  tiny_cfg(&c);
  char out[512];
  snprintf(out, sizeof out, "%s/fresh.h5", tmp_dir());
  ts_train_result r;
  ts_train_opts o = {tiny_data(), out, 1, 1, 0};
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(ckpt_step(out), 20);
  /* A bad dataset: refused, the checkpoint untouched. */
  ts_train_opts bad = {"/nonexistent/data.h5", out, 1, 1, 0};
  ck_assert_int_ne(ts_train(&c, &bad, &r), 0);
  ck_assert_msg(strstr(ts_error(), "nonexistent"), "%s", ts_error());
  ck_assert_int_eq(ckpt_step(out), 20);
  /* A bad config handed to the library directly (no override parser in the way). */
  ts_config cb = c;
  cb.train.log_every = 0;
  ck_assert_int_ne(ts_train(&cb, &o, &r), 0);
  ck_assert_msg(strstr(ts_error(), "log_every"), "%s", ts_error());
  cb = c;
  cb.data.horizon = 3; /* too short for n_obs_steps - 1 + n_action_steps */
  ck_assert_int_ne(ts_train(&cb, &o, &r), 0);
  ck_assert_int_eq(ckpt_step(out), 20);
  /* An unwritable output path next to it: also refused before anything is removed. */
  char nodir[600];
  snprintf(nodir, sizeof nodir, "%s/missing/fresh.h5", tmp_dir());
  ts_train_opts nd = {tiny_data(), nodir, 1, 1, 0};
  ck_assert_int_ne(ts_train(&c, &nd, &r), 0);
  /* The old run still resumes (here: is already complete). */
  ts_train_opts again = {tiny_data(), out, 1, 0, 0};
  ck_assert_msg(ts_train(&c, &again, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.resumed_from, 20);
  /* A valid fresh run replaces it with its own checkpoints. */
  ck_assert_int_eq(ts_config_override(&c, "train.max_steps=10"), 0);
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.resumed_from, 0);
  ck_assert_int_eq(ckpt_step(out), 10);
}
END_TEST

/* Regression: a kill mid-write left <out>.tmp-PID files that piled up; the next run sweeps
 * the ones whose process is gone. */
START_TEST(test_train_sweeps_stale_temporaries) {
  ts_config c;
  tiny_cfg(&c);
  ck_assert_int_eq(ts_config_override(&c, "train.max_steps=5"), 0);
  char out[512], p[700];
  snprintf(out, sizeof out, "%s/stale.h5", tmp_dir());
  long dead = dead_pid();
  snprintf(p, sizeof p, "%s.tmp-%ld", out, dead);
  touch(p);
  ts_train_result r;
  ts_train_opts o = {tiny_data(), out, 1, 1, 0};
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
  ck_assert_msg(!exists(p), "%s survived", p);
}
END_TEST

/* Checkpoints written before the eval column existed still resume: the column reads NaN. */
START_TEST(test_train_resumes_log_without_eval_column) {
  ts_config c;
  tiny_cfg(&c);
  char out[512];
  snprintf(out, sizeof out, "%s/noeval.h5", tmp_dir());
  ts_train_result r;
  ts_train_opts o = {tiny_data(), out, 1, 1, 10};
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
  hid_t f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
  ck_assert(f >= 0);
  ck_assert(H5Ldelete(f, "log/eval_score", H5P_DEFAULT) >= 0);
  H5Fclose(f);
  o.fresh = 0;
  o.stop_after = 0;
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.resumed_from, 10);
  ts_h5 *h = ts_h5_open(out);
  int64_t n;
  float *score = fix_floats(h, "log/eval_score", &n), *loss = fix_floats(h, "log/loss", NULL);
  ck_assert_int_eq(n, 4);
  for (int i = 0; i < 4; i++) ck_assert(isnan(score[i]) && loss[i] > 0);
  free(score);
  free(loss);
  ts_h5_close(h);
}
END_TEST

static int same_file(const char *a, const char *b) {
  FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
  int same = f && g;
  while (same) {
    int x = fgetc(f), y = fgetc(g);
    if (x != y) same = 0;
    if (x == EOF || y == EOF) break;
  }
  if (f) fclose(f);
  if (g) fclose(g);
  return same;
}

/* Regressions found by scripts/kill_test.sh: a resumed run's CSV and curves differed from an
 * uninterrupted run's (earlier rows came back from the float32 log, later ones were doubles:
 * the PNG's bytes differed), and a kill after the last checkpoint's rename, before its CSV or
 * PNG, left those a checkpoint behind for good (the resume had no step left to write them). */
START_TEST(test_run_resumed_logs_equal_straight) {
  char da[512], db[512], a[600], b[600], pa[700], pb[700];
  snprintf(da, sizeof da, "%s/logs_a", tmp_dir());
  snprintf(db, sizeof db, "%s/logs_b", tmp_dir());
  mkdir(da, 0755);
  mkdir(db, 0755);
  snprintf(a, sizeof a, "%s/toy.h5", da); /* one name: the figure's title is the file's */
  snprintf(b, sizeof b, "%s/toy.h5", db);
  ts_config c;
  ts_config_defaults(&c);
  char *ini = ts_config_to_ini(&c);
  toy t;
  toy_new(&t);
  ck_assert_int_eq(toy_run(&t, a, ini, 2, 20), 0); /* loss and acceptance: no wall-clock rate */
  toy_free(&t);
  toy_new(&t);
  ck_assert_int_eq(toy_run(&t, b, ini, 2, 10), 0);
  toy_free(&t);
  toy_new(&t);
  ck_assert_int_eq(toy_run(&t, b, ini, 2, 20), 10);
  toy_free(&t);
  const char *ext[] = {".csv", ".png"};
  for (int k = 0; k < 2; k++) {
    snprintf(pa, sizeof pa, "%s%s", a, ext[k]);
    snprintf(pb, sizeof pb, "%s%s", b, ext[k]);
    ck_assert_msg(same_file(pa, pb), "%s differs from %s", pb, pa);
  }
  /* rows are held as the checkpoint stores them (float32), so a CSV rewritten from a resumed
   * history (below) prints the digits the uninterrupted run printed (a PPO column differed in
   * its 6th digit before) */
  toy_new(&t);
  ts_run_spec s = toy_spec(&t, b, ini, 2);
  s.fresh = 1;
  ts_run *run;
  ck_assert_int_eq(ts_run_open(&run, &s), 0);
  ck_assert_int_eq(ts_run_resume(run), 0);
  ck_assert_int_eq(ts_run_log(run, 1, (double[]){0.1, 1.0 / 3}), 0);
  ck_assert(ts_run_row(run, 0)[1] == (double)0.1f && ts_run_row(run, 0)[2] == (double)(float)(1.0 / 3));
  ts_run_close(run);
  toy_free(&t);
  /* killed after the last checkpoint's rename: an old CSV, no PNG; the resume rewrites both */
  snprintf(pb, sizeof pb, "%s.csv", b);
  touch(pb);
  snprintf(pb, sizeof pb, "%s.png", b);
  ck_assert_int_eq(remove(pb), 0);
  toy_new(&t);
  ck_assert_int_eq(toy_run(&t, b, ini, 2, 20), 20);
  toy_free(&t);
  for (int k = 0; k < 2; k++) {
    snprintf(pa, sizeof pa, "%s%s", a, ext[k]);
    snprintf(pb, sizeof pb, "%s%s", b, ext[k]);
    ck_assert_msg(same_file(pa, pb), "%s differs from %s after the resume", pb, pa);
  }
  free(ini);
}
END_TEST

/* Regression (scripts/kill_test.sh): the checkpoint was renamed into place before its
 * evaluation, so a run killed while evaluating resumed after that step and its score stayed
 * NaN. Now the evaluation reads a copy and the step's checkpoint appears with its score; the
 * killed run's copy is swept. */
START_TEST(test_run_killed_while_evaluating) {
  char dir[512], out[600];
  snprintf(dir, sizeof dir, "%s/evalkill", tmp_dir());
  mkdir(dir, 0755);
  snprintf(out, sizeof out, "%s/toy.h5", dir);
  ts_config c;
  ts_config_defaults(&c);
  char *ini = ts_config_to_ini(&c);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    toy t;
    toy_new(&t);
    t.kill_at = 20;
    toy_run(&t, out, ini, 4, 20);
    _exit(3); /* not reached */
  }
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %d", st);
  char copy[700];
  snprintf(copy, sizeof copy, "%s.eval.tmp-%ld", out, (long)pid);
  ck_assert_msg(exists(copy), "%s: the evaluated copy is not there", copy);
  ck_assert_int_eq(ckpt_step(out), 10);
  char copy_tmp[800]; /* what a kill while writing the copy leaves */
  snprintf(copy_tmp, sizeof copy_tmp, "%s.tmp-%ld", copy, (long)pid);
  touch(copy_tmp);
  toy t;
  toy_new(&t);
  ck_assert_int_eq(toy_run(&t, out, ini, 4, 20), 10);
  ck_assert_int_eq(t.eval_calls, 1);
  toy_free(&t);
  ck_assert(!exists(copy) && !exists(copy_tmp));
  ts_h5 *f = ts_h5_open(out);
  ck_assert_msg(f, "%s", ts_error());
  int64_t n;
  float *score = fix_floats(f, "log/score", &n);
  ck_assert_int_eq(n, 4);
  ck_assert(score[1] == 0.1f && score[3] == 0.2f);
  free(score);
  ts_h5_close(f);
  /* nothing but the checkpoint, its CSV and its figure */
  DIR *d = opendir(dir);
  struct dirent *e;
  int files = 0;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') {
      files++;
      ck_assert_msg(!strcmp(e->d_name, "toy.h5") || !strcmp(e->d_name, "toy.h5.csv") || !strcmp(e->d_name, "toy.h5.png"),
                    "stray file %s", e->d_name);
    }
  closedir(d);
  ck_assert_int_eq(files, 3);
  free(ini);
}
END_TEST

/* Regression (probe, kill test): with checkpoint_every not a multiple of log_every, the log
 * interval's sums were not in the checkpoint, so a run killed after the checkpoint at 7 (log
 * every 5) logged a different row 10 after its resume. They are checkpointed now (spec.partial):
 * the toy's loop stops right after that checkpoint (a kill) and resumes to the same bits. */
static long toy_run_partial(toy *t, const char *out, const char *ini, long to, long kill_after) {
  double part[2] = {0, 0}; /* loss sum, steps */
  ts_run_spec s = toy_spec(t, out, ini, 2);
  s.partial = part, s.n_partial = 2;
  ts_run *run;
  ck_assert_msg(ts_run_open(&run, &s) == 0, "%s", ts_error());
  long step = ts_run_resume(run), from = step;
  ck_assert_msg(step >= 0, "%s", ts_error());
  for (; step < to; step++) {
    toy_step(t);
    part[0] += t->w->data[0] / 3.0, part[1] += 1;
    if ((step + 1) % 5 == 0) {
      ck_assert_int_eq(ts_run_log(run, step + 1, (double[]){part[0] / part[1], 0.5}), 0);
      part[0] = part[1] = 0;
    }
    if ((step + 1) % 7 == 0) ck_assert_msg(ts_run_checkpoint(run, step + 1, NULL, NULL) == 0, "%s", ts_error());
    if (step + 1 == kill_after) break;
  }
  ts_run_close(run);
  return from;
}

START_TEST(test_run_resume_between_log_rows) {
  char a[512], b[512], pa[600], pb[600];
  snprintf(a, sizeof a, "%s/partial_a.h5", tmp_dir());
  snprintf(b, sizeof b, "%s/partial_b.h5", tmp_dir());
  ts_config c;
  ts_config_defaults(&c);
  char *ini = ts_config_to_ini(&c);
  toy t;
  toy_new(&t);
  ck_assert_int_eq(toy_run_partial(&t, a, ini, 21, 0), 0);
  toy_free(&t);
  toy_new(&t);
  ck_assert_int_eq(toy_run_partial(&t, b, ini, 21, 7), 0); /* killed after the checkpoint at 7 */
  toy_free(&t);
  toy_new(&t);
  ck_assert_int_eq(toy_run_partial(&t, b, ini, 21, 16), 7); /* and after the one at 14, two steps on */
  toy_free(&t);
  toy_new(&t);
  ck_assert_int_eq(toy_run_partial(&t, b, ini, 21, 0), 14);
  toy_free(&t);
  const char *names[] = {"log/loss", "log/step", "model/w"};
  fix_same_datasets(a, b, names, 3);
  snprintf(pa, sizeof pa, "%s.csv", a);
  snprintf(pb, sizeof pb, "%s.csv", b);
  char ca[8192];
  snprintf(ca, sizeof ca, "%s", slurp(pa));
  ck_assert_str_eq(slurp(pb), ca);
  /* a checkpoint's sums are checked: another count is refused in one line */
  hid_t f = H5Fopen(b, H5F_ACC_RDWR, H5P_DEFAULT);
  ck_assert(f >= 0);
  hid_t sp = H5Screate(H5S_SCALAR), at = H5Aopen(f, "log_partial_n", H5P_DEFAULT);
  int64_t three = 3;
  ck_assert(H5Awrite(at, H5T_NATIVE_INT64, &three) >= 0);
  H5Aclose(at), H5Sclose(sp), H5Fclose(f);
  toy_new(&t);
  double part[2];
  ts_run_spec s = toy_spec(&t, b, ini, 2);
  s.partial = part, s.n_partial = 2;
  ts_run *run;
  ck_assert_int_eq(ts_run_open(&run, &s), 0);
  ck_assert_int_eq(ts_run_resume(run), -1);
  ck_assert_msg(strstr(ts_error(), "log_partial_n = 3, this trainer keeps 2 log sums"), "%s", ts_error());
  ts_run_close(run);
  /* fewer sums (a trainer that keeps more now, e.g. rl train's LOSSY columns): the stored ones
   * are read, the others start at 0 */
  f = H5Fopen(b, H5F_ACC_RDWR, H5P_DEFAULT);
  at = H5Aopen(f, "log_partial_n", H5P_DEFAULT);
  int64_t one = 1;
  ck_assert(H5Awrite(at, H5T_NATIVE_INT64, &one) >= 0);
  H5Aclose(at), H5Fclose(f);
  part[0] = part[1] = 99;
  ck_assert_int_eq(ts_run_open(&run, &s), 0);
  long got = ts_run_resume(run);
  ck_assert_msg(got == 21, "resumed at %ld: %s", got, ts_error());
  ck_assert(isfinite(part[0]) && part[1] == 0);
  ts_run_close(run);
  toy_free(&t);
  free(ini);
}
END_TEST

/* The same through ts_train: checkpoint_every 7, log_every 5, a slice stopped at step 7 (between
 * two log rows) resumes to the log, weights and moments of an uninterrupted run. */
START_TEST(test_train_resume_between_log_rows) {
  ts_config c;
  tiny_cfg(&c);
  ck_assert_int_eq(ts_config_override(&c, "train.checkpoint_every=7"), 0);
  ck_assert_int_eq(ts_config_override(&c, "train.max_steps=17"), 0);
  char a[512], b[512];
  snprintf(a, sizeof a, "%s/between_a.h5", tmp_dir());
  snprintf(b, sizeof b, "%s/between_b.h5", tmp_dir());
  ts_train_result r;
  ts_train_opts oa = {tiny_data(), a, 1, 1, 0};
  ck_assert_msg(ts_train(&c, &oa, &r) == 0, "%s", ts_error());
  ts_train_opts ob = {tiny_data(), b, 1, 1, 7};
  ck_assert_msg(ts_train(&c, &ob, &r) == 0, "%s", ts_error());
  ob.fresh = 0, ob.stop_after = 0;
  ck_assert_msg(ts_train(&c, &ob, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.resumed_from, 7);
  const char *names[] = {"log/step", "log/loss", "log/lr", "model/final_conv.1.weight"};
  fix_same_datasets(a, b, names, 4);
}
END_TEST

Suite *suite_run(void) {
  Suite *s = suite_create("run");
  TCase *tc = tcase_create("run");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_run_generic_columns_and_resume);
  tcase_add_test(tc, test_run_older_log_columns);
  tcase_add_test(tc, test_run_refuses_bad_specs);
  tcase_add_test(tc, test_run_sweeps_stale_temporaries);
  tcase_add_test(tc, test_train_fresh_validates_before_replacing);
  tcase_add_test(tc, test_train_sweeps_stale_temporaries);
  tcase_add_test(tc, test_train_resumes_log_without_eval_column);
  tcase_add_test(tc, test_run_resumed_logs_equal_straight);
  tcase_add_test(tc, test_run_killed_while_evaluating);
  tcase_add_test(tc, test_run_resume_between_log_rows);
  tcase_add_test(tc, test_train_resume_between_log_rows);
  suite_add_tcase(s, tc);
  return s;
}
