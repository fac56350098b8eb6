/* Data parallelism (core/dist.h, train/parallel.h): gradient shards in one process, the split
 * sampler rows, and, when the build has MPI and mpirun is installed, 2-rank jobs against
 * one-process runs: training, drafter distillation and the scheduler's PPO to the same bits,
 * evaluation to the same episodes, resume with another rank count, a bad shard count, and a
 * killed rank ending the job. */
#include "tests.h"
#include "core/config.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/timer.h"
#include "infer/blocks.h"
#include "infer/policy.h"
#include "train/parallel.h"
#include "train/train.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Compares the datasets under `groups` of two checkpoints: *max_abs the largest difference,
 * returns the number of datasets that are not bit-identical. */
static int groups_diff(const char *a, const char *b, const char *const *groups, int ng, double *max_abs) {
  int differ = 0, total = 0;
  *max_abs = 0;
  ts_h5 *f = ts_h5_open(a);
  ck_assert_msg(f, "%s", ts_error());
  for (int g = 0; g < ng; g++) {
    int n = 0;
    char **names = ts_h5_list(f, groups[g], &n);
    ck_assert_msg(n > 0, "%s: nothing under %s", a, groups[g]);
    for (int k = 0; k < n; k++) {
      char name[512];
      snprintf(name, sizeof name, "%s/%s", groups[g], names[k]);
      int64_t na, nb;
      float *x = fix_read_all(a, name, &na), *y = fix_read_all(b, name, &nb);
      ck_assert_int_eq(na, nb);
      differ += memcmp(x, y, (size_t)na * sizeof(float)) != 0;
      for (int64_t i = 0; i < na; i++) *max_abs = fmax(*max_abs, fabs((double)x[i] - y[i]));
      total++;
      free(x);
      free(y);
    }
    ts_h5_free_names(names, n);
  }
  ts_h5_close(f);
  ck_assert_int_gt(total, 10);
  return differ;
}

/* The model/ and ema/ tensors and the AdamW moments. */
static int ckpt_diff(const char *a, const char *b, double *max_abs) {
  static const char *const groups[] = {"model", "ema", "optim/m/model", "optim/v/model"};
  return groups_diff(a, b, groups, 4, max_abs);
}

START_TEST(test_split_and_shards) {
  /* blocks cover 0..n once, in rank order, sizes differing by at most one */
  for (int64_t n = 0; n < 40; n++)
    for (int size = 1; size <= 7; size++) {
      int64_t next = 0;
      for (int r = 0; r < size; r++) {
        int64_t lo, hi;
        ts_dist_split(n, r, size, &lo, &hi);
        ck_assert_int_eq(lo, next);
        ck_assert(hi - lo == n / size || hi - lo == n / size + 1);
        next = hi;
      }
      ck_assert_int_eq(next, n);
    }
  /* a one-process job: rank 0 of 1, collectives leave the data alone */
  ck_assert_int_eq(ts_dist_rank(), 0);
  ck_assert_int_eq(ts_dist_size(), 1);
  float v[3] = {1, 2, 3};
  ts_dist_allreduce_sum(v, 3);
  ck_assert(v[0] == 1 && v[1] == 2 && v[2] == 3);
  ck_assert_int_eq(ts_dist_allreduce_max_i(-4), -4);
  /* shards: 0 means one per rank; the shard rows of a batch of 5 over 2 shards */
  ts_tensor *w = ts_param_new(1, (int[]){3});
  ts_dp dp;
  ck_assert_int_eq(ts_dp_init(&dp, 0, &w, 1), 0);
  ck_assert(dp.shards == 1 && ts_dp_legacy(&dp) && !dp.acc);
  ts_dp_free(&dp);
  ck_assert_int_eq(ts_dp_init(&dp, 2, &w, 1), 0);
  int lo, hi;
  ts_dp_rows(&dp, 0, 5, &lo, &hi);
  ck_assert(lo == 0 && hi == 3);
  ts_dp_rows(&dp, 1, 5, &lo, &hi);
  ck_assert(lo == 3 && hi == 5);
  ts_dp_my_rows(&dp, 5, &lo, &hi);
  ck_assert(lo == 0 && hi == 5);
  ck_assert(ts_dp_weight(5, 5) == 1.0f && ts_dp_weight(2, 4) == 0.5f);
  /* two shards' gradients and losses add in order */
  ts_dp_begin(&dp);
  w->grad[0] = 1, w->grad[1] = 2, w->grad[2] = 3;
  ts_dp_add(&dp, 0.25);
  w->grad[0] = 10, w->grad[1] = 20, w->grad[2] = 30;
  ts_dp_add(&dp, 0.5);
  double loss = ts_dp_reduce(&dp);
  ck_assert(loss == 0.75 && w->grad[0] == 11 && w->grad[1] == 22 && w->grad[2] == 33);
  ts_dp_free(&dp);
  ts_param_free(w);
}
END_TEST

/* How close runs that differ only in float summation order can be: AdamW moves a weight by
 * about lr per step whatever the gradient's size, so a gradient near zero whose rounding flips
 * its sign moves the weight the other way: after k steps two such runs can differ by up to
 * ~2 lr k in a few weights, while the losses agree closely. The tests bound the largest
 * difference by lr k / 2 and the logged losses to 1e-3 relative. */
static void same_losses(const char *a, const char *b) {
  int64_t na, nb;
  float *x = fix_read_all(a, "log/loss", &na), *y = fix_read_all(b, "log/loss", &nb);
  ck_assert_int_eq(na, nb);
  for (int64_t i = 0; i < na; i++) ck_assert_msg(fabs(x[i] - y[i]) <= 1e-3 * fabs(y[i]), "loss row %d: %g vs %g", (int)i, x[i], y[i]);
  free(x);
  free(y);
}

/* One process: two gradient shards train to the weights of one within float-summation
 * tolerance, and to the same bits twice. */
START_TEST(test_grad_shards_in_process) {
  ts_config c;
  infer_tiny_cfg(&c);
  ck_assert_int_eq(ts_config_override(&c, "train.eval_every=0"), 0);
  char a[512], b[512], d[512];
  snprintf(a, sizeof a, "%s/shards1.h5", tmp_dir());
  snprintf(b, sizeof b, "%s/shards2.h5", tmp_dir());
  snprintf(d, sizeof d, "%s/shards2b.h5", tmp_dir());
  ts_train_result r;
  ts_train_opts o = {infer_tiny_data(), a, 1, 1, 0};
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
  double loss1 = r.final_loss;
  ck_assert_int_eq(ts_config_override(&c, "train.grad_shards=2"), 0);
  o.out = b;
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
  ck_assert_double_eq_tol(r.final_loss, loss1, 1e-4 * loss1);
  o.out = d;
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
  double mx;
  ck_assert_int_eq(ckpt_diff(b, d, &mx), 0);
  ckpt_diff(a, b, &mx);
  fprintf(stderr, "grad shards: 1 vs 2 shards after 60 steps, largest weight/moment difference %.3g\n", mx);
  ck_assert_msg(mx < 0.5 * 1e-3 * 60, "1 vs 2 shards differ by %g", mx);
  same_losses(a, b);
}
END_TEST

/* A split batch (rows [0, 2) and [2, 5) of 5, and an empty part) samples what the whole batch
 * does, and leaves the stream where the whole batch would. */
START_TEST(test_split_sampler_rows) {
  ts_config c;
  infer_tiny_cfg(&c);
  ck_assert_int_eq(ts_config_override(&c, "train.eval_every=0"), 0);
  ck_assert_int_eq(ts_config_override(&c, "train.max_steps=5"), 0);
  char ck[512];
  snprintf(ck, sizeof ck, "%s/rows.h5", tmp_dir());
  ts_train_result tr;
  ts_train_opts o = {infer_tiny_data(), ck, 1, 1, 0};
  ck_assert_msg(ts_train(&c, &o, &tr) == 0, "%s", ts_error());
  ts_policy p;
  ck_assert_msg(ts_policy_load(&p, ck, "ema") == 0, "%s", ts_error());
  enum { B = 5 };
  int per = p.cfg.data.n_obs_steps * p.obs_dim, na = p.horizon * p.act_dim;
  float obs[B * 64], whole[B * 64], part[B * 64];
  ck_assert_int_le(per, 64);
  ck_assert_int_le(na, 64);
  for (int i = 0; i < B * per; i++) obs[i] = (float)(i % 17) * 10.0f;
  for (int kind = 0; kind < 2; kind++) {
    ts_sampler s = {.kind = kind ? TS_SAMPLER_DDPM : TS_SAMPLER_DDIM, .steps = 4};
    ts_rng r0, r1, r2, r3;
    ts_rng_init(&r0, 5);
    r1 = r2 = r3 = r0;
    ck_assert_int_eq(ts_policy_sample(&p, obs, B, &s, &r0, whole), 0);
    s.batch_rows = B;
    s.batch_row0 = 0;
    ck_assert_int_eq(ts_policy_sample(&p, obs, 2, &s, &r1, part), 0);
    s.batch_row0 = 2;
    ck_assert_int_eq(ts_policy_sample(&p, obs + 2 * per, 3, &s, &r2, part + 2 * na), 0);
    ck_assert_msg(memcmp(whole, part, sizeof(float) * B * na) == 0, "%s: split rows differ", kind ? "ddpm" : "ddim");
    s.batch_row0 = 5;
    ck_assert_int_eq(ts_policy_sample(&p, obs, 0, &s, &r3, part), 0);
    ck_assert(r1.counter == r0.counter && r2.counter == r0.counter && r3.counter == r0.counter);
    ck_assert(r1.avail == r0.avail && r3.avail == r0.avail);
    s.batch_row0 = 4;
    ck_assert_int_ne(ts_policy_sample(&p, obs, 3, &s, &r3, part), 0); /* rows 4..7 of 5 */
  }
  ts_policy_free(&p);
}
END_TEST

/* ---- jobs of two ranks under mpirun ---- */

static const char *const tiny_args =
    "model.down_dims=8,16 model.step_embed_dim=16 train.batch_size=4 train.warmup_steps=2 train.max_steps=40 "
    "train.checkpoint_every=20 train.log_every=10 data.val_ratio=0 train.lr=1e-3 train.threads=1";

static int have_mpirun(void) {
  if (!getenv("TSDP_BIN")) return 0;
  if (!ts_dist_have_mpi() || system("command -v mpirun >/dev/null 2>&1") != 0) {
    fprintf(stderr, "mpi tests skipped: %s\n", ts_dist_have_mpi() ? "no mpirun" : "this build has no MPI");
    return 0;
  }
  return 1;
}

/* Runs `tsdp <args>` with np ranks (0: no mpirun), stdout to out (when non-NULL), stderr to err.
 * Returns the exit status. */
static int tsdp(int np, const char *out, const char *err, const char *fmt, ...) {
  char args[2048], cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  char mpi[256] = "";
  if (np)
    snprintf(mpi, sizeof mpi, "ASAN_OPTIONS=detect_leaks=0 timeout 300 mpirun --allow-run-as-root --oversubscribe -np %d ", np);
  snprintf(cmd, sizeof cmd, "%s%s %s >%s 2>%s", mpi, getenv("TSDP_BIN"), args, out ? out : "/dev/null", err);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f, "%s missing", path);
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  return strdup(buf);
}

START_TEST(test_mpi_train_matches_one_process) {
  if (!have_mpirun()) return;
  const char *data = infer_tiny_data(), *t = tmp_dir();
  char two[512], one[512], plain[512], half[512], err[512];
  snprintf(two, sizeof two, "%s/np2.h5", t);
  snprintf(one, sizeof one, "%s/np1_shards2.h5", t);
  snprintf(plain, sizeof plain, "%s/np1.h5", t);
  snprintf(half, sizeof half, "%s/np2_then_np1.h5", t);
  snprintf(err, sizeof err, "%s/mpi.err", t);
  /* 2 ranks (with a closed-loop evaluation on rank 0 at step 20 while rank 1 waits) */
  int rc = tsdp(2, NULL, err, "train --config configs/pusht_lowdim.ini --data %s --out %s --fresh %s train.eval_every=20 train.eval_episodes=2", data, two,
                tiny_args);
  ck_assert_msg(rc == 0, "mpirun -np 2 train: exit %d: %s", rc, slurp(err));
  rc = tsdp(0, NULL, err, "train --config configs/pusht_lowdim.ini --data %s --out %s --fresh %s train.eval_every=20 train.eval_episodes=2 train.grad_shards=2",
            data, one, tiny_args);
  ck_assert_msg(rc == 0, "train: %s", slurp(err));
  ck_assert_int_eq(tsdp(0, NULL, err, "train --config configs/pusht_lowdim.ini --data %s --out %s --fresh %s", data, plain, tiny_args), 0);
  double mx;
  int differ = ckpt_diff(two, one, &mx);
  ck_assert_msg(differ == 0, "2 ranks vs 1 process with 2 shards: %d tensors differ (by up to %g)", differ, mx);
  ckpt_diff(two, plain, &mx);
  fprintf(stderr, "mpi: 2 ranks = 1 process with 2 shards bit for bit; vs 1 shard, largest difference %.3g\n", mx);
  ck_assert_msg(mx < 0.5 * 1e-3 * 40, "2 ranks vs 1 process differ by %g", mx);
  same_losses(two, plain);
  /* the checkpoint's history: one row per log (rank 0 alone logs), the eval score on rank 0 */
  int64_t n;
  float *steps = fix_read_all(two, "log/step", &n), *score = fix_read_all(two, "log/eval_score", &n);
  ck_assert_int_eq(n, 4);
  ck_assert(steps[3] == 40 && isfinite(score[1]) && score[1] >= 0);
  free(steps);
  free(score);
  /* killed after 20 steps on 2 ranks, resumed on 1 (same global batch, 2 shards): the same bits */
  rc = tsdp(2, NULL, err, "train --config configs/pusht_lowdim.ini --data %s --out %s --fresh --stop-after 20 %s", data, half, tiny_args);
  ck_assert_msg(rc == 0, "%s", slurp(err));
  rc = tsdp(0, NULL, err, "train --config configs/pusht_lowdim.ini --data %s --out %s %s train.grad_shards=2", data, half, tiny_args);
  ck_assert_msg(rc == 0, "resume on 1 rank: %s", slurp(err));
  differ = ckpt_diff(half, one, &mx);
  ck_assert_msg(differ == 0, "2 ranks then 1: %d tensors differ from 1 process (by up to %g)", differ, mx);
  /* a shard count the ranks cannot share: one line naming the key, a non-zero exit, no hang */
  rc = tsdp(2, NULL, err, "train --config configs/pusht_lowdim.ini --data %s --out %s/bad.h5 --fresh %s train.grad_shards=3", data, t, tiny_args);
  char *e = slurp(err);
  ck_assert_msg(rc != 0 && strstr(e, "grad_shards = 3 is not a multiple of the 2 ranks"), "exit %d: %s", rc, e);
  int lines = 0;
  for (const char *q = e; (q = strstr(q, "tsdp train:")); q++) lines++;
  ck_assert_msg(lines == 1, "%d error lines: %s", lines, e);
  free(e);
}
END_TEST

START_TEST(test_mpi_eval_matches_one_process) {
  if (!have_mpirun()) return;
  const char *t = tmp_dir();
  char ck[512], o1[512], o2[512], err[512];
  snprintf(ck, sizeof ck, "%s/eval_base.h5", t);
  snprintf(o1, sizeof o1, "%s/eval1.json", t);
  snprintf(o2, sizeof o2, "%s/eval2.json", t);
  snprintf(err, sizeof err, "%s/eval.err", t);
  ck_assert_int_eq(tsdp(0, NULL, err, "train --config configs/pusht_lowdim.ini --data %s --out %s --fresh %s", infer_tiny_data(), ck, tiny_args), 0);
  const char *samplers[] = {"--sampler ddim --steps 4", "--sampler ddpm"};
  for (int k = 0; k < 2; k++) {
    const char *ev = "eval --ckpt %s --episodes 5 --seed 3 --threads 1 --json %s";
    ck_assert_int_eq(tsdp(0, o1, err, ev, ck, samplers[k]), 0);
    int rc = tsdp(2, o2, err, ev, ck, samplers[k]);
    ck_assert_msg(rc == 0, "mpirun -np 2 eval: %s", slurp(err));
    char *a = slurp(o1), *b = slurp(o2);
    /* the same scores, mean, success and chunk count (timings differ) */
    const char *keys[] = {"\"mean_score\"", "\"success_rate\"", "\"scores\"", "\"chunks\":"};
    for (int i = 0; i < 4; i++) {
      const char *x = strstr(a, keys[i]), *y = strstr(b, keys[i]);
      ck_assert_msg(x && y, "%s missing: %s / %s", keys[i], a, b);
      size_t lx = strcspn(x, ",]"), ly = strcspn(y, ",]");
      if (i == 2) lx = strcspn(x, "]"), ly = strcspn(y, "]");
      ck_assert_msg(lx == ly && !strncmp(x, y, lx), "%s: 1 rank %.*s, 2 ranks %.*s", samplers[k], (int)lx, x, (int)ly, y);
    }
    ck_assert_msg(strchr(b, '\n') == strrchr(b, '\n'), "rank 1 printed too: %s", b);
    free(a);
    free(b);
  }
}
END_TEST

/* A rank killed mid-run ends the job (mpirun reports it; nothing hangs) and the last checkpoint
 * resumes. */
START_TEST(test_mpi_killed_rank_ends_the_job) {
  if (!have_mpirun()) return;
  const char *t = tmp_dir();
  char sh[4096], ck[512];
  snprintf(ck, sizeof ck, "%s/killed.h5", t);
  char *bin = realpath(getenv("TSDP_BIN"), NULL), *cfg = realpath("configs/pusht_lowdim.ini", NULL); /* the script runs in t */
  ck_assert(bin && cfg);
  snprintf(sh, sizeof sh,
           "cd %s || exit 1; (ASAN_OPTIONS=detect_leaks=0 timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 %s train "
           "--config %s --data %s --out %s --fresh %s train.max_steps=1000000 train.checkpoint_every=5 >/dev/null 2>killed.err & "
           "echo $! >killed.pid; wait $!; echo $? >killed.rc) & "
           "for i in $(seq 600); do [ -f %s ] && break; sleep 0.1; done; sleep 1; "
           "for m in $(pgrep -P $(cat killed.pid)); do for p in $(pgrep -P $m); do " /* timeout, mpirun, ranks */
           "tr '\\0' '\\n' </proc/$p/environ | grep -qx OMPI_COMM_WORLD_RANK=1 && kill -9 $p; done; done; "
           "for i in $(seq 300); do [ -f killed.rc ] && break; sleep 0.1; done; cat killed.rc",
           t, bin, cfg, infer_tiny_data(), ck, tiny_args, ck);
  free(bin);
  free(cfg);
  double t0 = ts_now();
  FILE *p = popen(sh, "r");
  char line[64] = "";
  ck_assert(fgets(line, sizeof line, p));
  pclose(p);
  double dt = ts_now() - t0;
  char err[512];
  snprintf(err, sizeof err, "%s/killed.err", t);
  char *e = slurp(err);
  ck_assert_msg(atoi(line) != 0 && atoi(line) != 124, "mpirun exit '%s' after a killed rank: %s", line, e);
  ck_assert_msg(strstr(e, "rank 1") && strstr(e, "signal 9"), "%s", e);
  fprintf(stderr, "mpi: rank 1 killed, job over in %.1f s (exit %d)\n", dt, atoi(line));
  free(e);
  /* the last checkpoint resumes, here on one rank */
  int rc = tsdp(0, NULL, err, "train --config configs/pusht_lowdim.ini --data %s --out %s --stop-after 2 %s train.max_steps=1000000 train.checkpoint_every=5",
                infer_tiny_data(), ck, tiny_args);
  ck_assert_msg(rc == 0, "resume after the kill: %s", slurp(err));
}
END_TEST

/* Drafter distillation on 2 ranks (the buffer's chains split 2 + 1 over the ranks, batch rows
 * 5 + 4) equals one process with train.grad_shards=2 bit for bit: weights, EMA, AdamW moments,
 * the buffer and the log; a run stopped on 2 ranks resumes on 1 to the same bits. */
/* (each override is validated with the others: buffer_chains goes through 192, a multiple of
 * the file's chains = 64 and of 3) */
static const char *const distill_args =
    "--config configs/pusht_drafter.ini model.n_emb=32 train.batch_size=9 train.threads=1 train.warmup_steps=5 "
    "train.max_steps=20 train.checkpoint_every=10 train.log_every=5 distill.buffer_chains=192 distill.chains=3 distill.buffer_chains=6 "
    "distill.refresh_every=5 distill.heldout_chains=2 distill.unroll=3";

START_TEST(test_mpi_distill_matches_one_process) {
  if (!have_mpirun()) return;
  const char *data = infer_tiny_data(), *t = tmp_dir();
  char base[512], two[512], one[512], plain[512], half[512], err[512], png[600];
  snprintf(base, sizeof base, "%s/dist_base.h5", t);
  snprintf(two, sizeof two, "%s/distill_np2.h5", t);
  snprintf(one, sizeof one, "%s/distill_np1_shards2.h5", t);
  snprintf(plain, sizeof plain, "%s/distill_np1.h5", t);
  snprintf(half, sizeof half, "%s/distill_np2_then_np1.h5", t);
  snprintf(err, sizeof err, "%s/distill.err", t);
  int rc = tsdp(0, NULL, err, "train --config configs/pusht_lowdim.ini --data %s --out %s --fresh %s train.max_steps=10", data,
                base, tiny_args);
  ck_assert_msg(rc == 0, "train: %s", slurp(err));
  rc = tsdp(2, NULL, err, "distill %s --base %s --data %s --out %s --fresh", distill_args, base, data, two);
  ck_assert_msg(rc == 0, "mpirun -np 2 distill: exit %d: %s", rc, slurp(err));
  rc = tsdp(0, NULL, err, "distill %s --base %s --data %s --out %s --fresh train.grad_shards=2", distill_args, base, data, one);
  ck_assert_msg(rc == 0, "distill: %s", slurp(err));
  ck_assert_int_eq(tsdp(0, NULL, err, "distill %s --base %s --data %s --out %s --fresh", distill_args, base, data, plain), 0);
  static const char *const groups[] = {"model", "ema", "optim/m/model", "optim/v/model", "distill"};
  static const char *const logs[] = {"log/step", "log/loss", "log/accept", "log/lr"}; /* not samples_per_s, a timing */
  double mx;
  int differ = groups_diff(two, one, groups, 5, &mx);
  ck_assert_msg(differ == 0, "distill, 2 ranks vs 1 process with 2 shards: %d datasets differ (by up to %g)", differ, mx);
  fix_same_datasets(two, one, logs, 4);
  ckpt_diff(two, plain, &mx);
  fprintf(stderr, "mpi distill: 2 ranks = 1 process with 2 shards bit for bit; vs 1 shard, largest difference %.3g\n", mx);
  snprintf(png, sizeof png, "%s.accept.png", two); /* rank 0's held-out evaluation */
  ck_assert_msg(access(png, F_OK) == 0, "%s missing", png);
  int64_t n;
  float *loss = fix_read_all(two, "log/loss", &n);
  ck_assert_int_eq(n, 4); /* one row per log: rank 0 alone logs */
  free(loss);
  /* stopped after 10 steps on 2 ranks, resumed on 1 with 2 shards */
  rc = tsdp(2, NULL, err, "distill %s --base %s --data %s --out %s --fresh --stop-after 10", distill_args, base, data, half);
  ck_assert_msg(rc == 0, "%s", slurp(err));
  rc = tsdp(0, NULL, err, "distill %s --base %s --data %s --out %s train.grad_shards=2", distill_args, base, data, half);
  ck_assert_msg(rc == 0, "resume on 1 rank: %s", slurp(err));
  differ = groups_diff(half, one, groups, 5, &mx);
  ck_assert_msg(differ == 0, "distill 2 ranks then 1: %d datasets differ from 1 process (by up to %g)", differ, mx);
  fix_same_datasets(half, one, logs, 4);
}
END_TEST

/* The scheduler's PPO on 2 ranks (3 chains per update split 2 + 1) equals one process with
 * rl.chain_shards=2, and with 3 (a chain's result does not depend on where it ran), bit for
 * bit; stopped on 2 ranks, resumed on 1. */
static const char *const rl_args =
    "rl.blocks=1,2,4,8 rl.hidden=8 rl.layers=1 rl.chains_per_update=3 rl.updates=4 rl.minibatch=16 rl.accept_chains=2 "
    "rl.accept_block=8 rl.checkpoint_every=2";

START_TEST(test_mpi_rl_train_matches_one_process) {
  if (!have_mpirun()) return;
  const char *data = infer_tiny_data(), *t = tmp_dir();
  char base[512], ro[512], cost[512], two[512], one[512], three[512], half[512], err[512];
  snprintf(base, sizeof base, "%s/rl_base.h5", t);
  snprintf(ro, sizeof ro, "%s/rl_rollouts.h5", t);
  snprintf(cost, sizeof cost, "%s/rl_cost.ini", t);
  snprintf(two, sizeof two, "%s/rl_np2.h5", t);
  snprintf(one, sizeof one, "%s/rl_np1_shards2.h5", t);
  snprintf(three, sizeof three, "%s/rl_np1_shards3.h5", t);
  snprintf(half, sizeof half, "%s/rl_np2_then_np1.h5", t);
  snprintf(err, sizeof err, "%s/rl.err", t);
  int rc = tsdp(0, NULL, err, "train --config configs/pusht_lowdim.ini --data %s --out %s --fresh %s train.max_steps=10", data,
                base, tiny_args);
  ck_assert_msg(rc == 0, "train: %s", slurp(err));
  rc = tsdp(0, NULL, err, "rl record --ckpt %s --episodes 2 --out %s --sampler ddim --steps 4 --threads 1", base, ro);
  ck_assert_msg(rc == 0, "rl record: %s", slurp(err));
  ts_cost_model cm = {.n = 9, .drafter_ms = 0.25, .threads = 1}; /* rl.blocks up to 8: batches 1..9 */
  for (int b = 1; b <= 9; b++) cm.target_ms[b] = 1.0 + 0.5 * (b - 1);
  ck_assert_int_eq(ts_cost_save(&cm, cost), 0);
  const char *cmd = "rl train --ckpt %s --rollouts %s --cost %s --out %s --fresh %s %s";
  rc = tsdp(2, NULL, err, cmd, base, ro, cost, two, rl_args, "");
  ck_assert_msg(rc == 0, "mpirun -np 2 rl train: exit %d: %s", rc, slurp(err));
  rc = tsdp(0, NULL, err, cmd, base, ro, cost, one, rl_args, "rl.chain_shards=2");
  ck_assert_msg(rc == 0, "rl train: %s", slurp(err));
  rc = tsdp(0, NULL, err, cmd, base, ro, cost, three, rl_args, "rl.chain_shards=3");
  ck_assert_msg(rc == 0, "rl train: %s", slurp(err));
  static const char *const groups[] = {"ppo", "optim/m/ppo", "optim/v/ppo", "sched"};
  static const char *const logs[] = {"log/step",   "log/cost_ms", "log/return",  "log/entropy",
                                     "log/mean_L", "log/accept",  "log/pg_loss", "log/v_loss", "log/approx_kl"};
  double mx;
  int differ = groups_diff(two, one, groups, 4, &mx);
  ck_assert_msg(differ == 0, "rl train, 2 ranks vs 1 process with 2 chain shards: %d datasets differ (by up to %g)", differ, mx);
  fix_same_datasets(two, one, logs, 9);
  differ = groups_diff(three, one, groups, 4, &mx);
  ck_assert_msg(differ == 0, "rl train, 3 vs 2 chain shards: %d datasets differ (by up to %g)", differ, mx);
  fix_same_datasets(three, one, logs, 9);
  int64_t n;
  float *cst = fix_read_all(two, "log/cost_ms", &n);
  ck_assert_int_eq(n, 4);
  ck_assert(cst[3] > 0);
  free(cst);
  /* stopped after 2 updates on 2 ranks, resumed on 1 with 2 chain shards */
  rc = tsdp(2, NULL, err, "rl train --ckpt %s --rollouts %s --cost %s --out %s --fresh --stop-after 2 %s", base, ro, cost, half,
            rl_args);
  ck_assert_msg(rc == 0, "%s", slurp(err));
  rc = tsdp(0, NULL, err, "rl train --ckpt %s --rollouts %s --cost %s --out %s %s rl.chain_shards=2", base, ro, cost, half,
            rl_args);
  ck_assert_msg(rc == 0, "resume on 1 rank: %s", slurp(err));
  differ = groups_diff(half, one, groups, 4, &mx);
  ck_assert_msg(differ == 0, "rl train 2 ranks then 1: %d datasets differ from 1 process (by up to %g)", differ, mx);
  fix_same_datasets(half, one, logs, 9);
  /* a chain shard count the ranks cannot share: one line naming the key */
  rc = tsdp(2, NULL, err, cmd, base, ro, cost, half, rl_args, "rl.chain_shards=3");
  char *e = slurp(err);
  ck_assert_msg(rc != 0 && strstr(e, "rl.chain_shards = 3 is not a multiple of the 2 ranks"), "exit %d: %s", rc, e);
  free(e);
}
END_TEST

Suite *suite_dist(void) {
  Suite *s = suite_create("dist");
  TCase *tc = tcase_create("shards");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_split_and_shards);
  tcase_add_test(tc, test_grad_shards_in_process);
  tcase_add_test(tc, test_split_sampler_rows);
  suite_add_tcase(s, tc);
  TCase *tm = tcase_create("mpirun");
  tcase_set_timeout(tm, 1500); /* a starved shared machine ran a 40-step job at 2 samples/s */
  tcase_add_test(tm, test_mpi_train_matches_one_process);
  tcase_add_test(tm, test_mpi_eval_matches_one_process);
  tcase_add_test(tm, test_mpi_killed_rank_ends_the_job);
  suite_add_tcase(s, tm);
  TCase *tt = tcase_create("mpirun-trainers"); /* distill and rl train over ranks */
  tcase_set_timeout(tt, 1500);
  tcase_add_test(tt, test_mpi_distill_matches_one_process);
  tcase_add_test(tt, test_mpi_rl_train_matches_one_process);
  suite_add_tcase(s, tt);
  return s;
}
