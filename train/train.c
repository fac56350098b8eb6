#include "train.h"
#include "run.h"
#include "parallel.h"
#include "core/checkpoint.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "infer/policy.h"
#include "infer/rollout.h"
#include "infer/scheduler.h"
#include "nn/model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Everything base training carries besides the run machinery. */
typedef struct {
  const ts_config *cfg;
  const ts_train_opts *o;
  ts_dataset d;
  ts_normalizer nobs, nact;
  ts_windows win;
  ts_model net;
  ts_adamw *opt;
  ts_ema *ema;
  ts_rng rng;
  ts_ddpm sched;
  char *cfg_text;
  int n_train;
  ts_named *named; /* model/<name> then ema/<name>: what a checkpoint holds (AdamW moments
                      follow the first half) */
} trainer;

/* The history base training logs (log/<name> in the checkpoint, columns of <out>.csv). */
enum { COL_LOSS, COL_LR, COL_SPS, COL_EVAL, NCOLS };
static const ts_run_col cols[NCOLS] = {
  {"loss", "%.6g", "loss %.5f", 2, 0, 0},
  {"lr", "%.6g", "lr %.2e", 0, 0, 0},
  {"samples_per_s", "%.1f", "| %.0f samples/s", 0, 1, 0},
  {"eval_score", "%.4f", NULL, 3, 0, 1}, /* older checkpoints have no eval column */
};

/* Keys a resumed run may change: how long it trains, how often it logs, checkpoints and
 * evaluates, how many threads, and the [eval] and [distill] sections (the latter is unused here). Any other difference from the
 * checkpoint's config would make the continuation a different run than the one started. */
static const char *const may_change[] = {"train.max_steps", "train.epochs", "train.checkpoint_every", "train.log_every",
                                         "train.eval_every", "train.eval_episodes", "train.threads", "train.grad_shards", "eval.*",
                                         "distill.*", NULL};

/* Checkpoint extras: the normalisers the policy needs at inference, and the network's
 * non-parameter state_dict entries (the Transformer's masks) so PyTorch loads it strictly. */
static int write_normalizers(ts_h5 *f, void *user) {
  trainer *r = user;
  if (ts_norm_save(f, "normalizer/obs", &r->nobs)) return -1;
  if (ts_norm_save(f, "normalizer/action", &r->nact)) return -1;
  return ts_model_write_buffers(f, &r->net);
}

/* Closed-loop evaluation of the just-saved EMA weights (DDIM-10 on the first eval_episodes
 * test seeds). */
static int eval_ckpt(void *user, const char *path, long step, double *score) {
  trainer *r = user;
  ts_policy p;
  if (ts_policy_load(&p, path, "ema")) return -1;
  ts_policy_set_threads(&p, ts_cpu_count());
  ts_eval_opts eo = {.episodes = r->cfg->train.eval_episodes, .seed_start = r->cfg->eval.seed_start, .quiet = 1};
  const ts_sampler ddim10 = {.kind = TS_SAMPLER_DDIM, .steps = 10};
  ts_eval_result er;
  int rc = ts_eval_pusht(&p, &ddim10, &eo, &er);
  ts_policy_free(&p);
  if (rc) return -1;
  *score = er.mean_score;
  if (!r->o->quiet)
    fprintf(stderr, "eval at step %ld: DDIM-10 mean score %.3f, success %.2f over %d seeds\n", step, er.mean_score,
            er.success_rate, er.episodes);
  return 0;
}

static int setup(trainer *r, const ts_config *cfg, const char *data) {
  r->cfg = cfg;
  const char *keys[TS_CFG_MAXKEYS];
  for (int i = 0; i < cfg->data.n_obs_keys; i++) keys[i] = cfg->data.obs_keys[i];
  if (ts_dataset_load(data, keys, cfg->data.n_obs_keys, &r->d)) return -1;
  int E = r->d.n_episodes;
  uint8_t *tr = malloc((size_t)E), *va = malloc((size_t)E);
  if (!tr || !va) abort();
  ts_episode_split(E, cfg->data.val_ratio, cfg->data.max_train_episodes, (uint64_t)cfg->data.seed, tr, va);
  for (int e = 0; e < E; e++) r->n_train += tr[e];
  int rc = ts_norm_fit(&r->nobs, &r->d, 1, tr) || ts_norm_fit(&r->nact, &r->d, 0, tr);
  if (!rc) {
    ts_norm_apply(&r->nobs, r->d.obs, r->d.n_steps);
    ts_norm_apply(&r->nact, r->d.actions, r->d.n_steps);
    rc = ts_windows_build(&r->d, tr, cfg->data.horizon, cfg->data.pad_before, cfg->data.pad_after, &r->win);
  }
  free(tr);
  free(va);
  if (rc) return -1;
  /* values, gradients, AdamW m and v, the EMA copy (and the shard accumulator when sharded) */
  const int sharded = cfg->train.grad_shards > 1;
  if (ts_model_check_size(cfg, r->d.act_dim, r->d.obs_dim, "config", 5 + sharded,
                          sharded ? "values, gradients, AdamW m and v, EMA, shard sums" : "values, gradients, AdamW m and v, EMA"))
    return -1;
  if (ts_model_new(&r->net, cfg, r->d.act_dim, r->d.obs_dim)) return -1;
  ts_params *P = r->net.params;
  ts_rng init;
  ts_rng_init_stream(&init, (uint64_t)cfg->train.seed, 1);
  ts_model_init(&r->net, &init);
  ts_rng_init_stream(&r->rng, (uint64_t)cfg->train.seed, 2);
  r->opt = ts_model_optimizer(&r->net, cfg);
  r->ema = ts_ema_new(P->t, P->n, (float)cfg->train.ema_power, (float)cfg->train.ema_max_decay);
  ts_ddpm_init(&r->sched, cfg->diffusion.num_train_timesteps, cfg->diffusion.clip_sample);
  r->cfg_text = ts_config_to_ini(cfg);
  r->named = ts_run_model_tensors(P, r->ema->shadow, 0);
  return 0;
}

static void teardown(trainer *r) {
  ts_dataset_free(&r->d);
  ts_windows_free(&r->win);
  if (r->named) ts_named_free(r->named, 2 * r->net.params->n);
  ts_model_free(&r->net);
  ts_adamw_free(r->opt);
  ts_ema_free(r->ema);
  free(r->cfg_text);
}

static int fail_free(trainer *r, ts_run *run) {
  ts_run_close(run);
  teardown(r);
  return -1;
}

/* The gradient of one batch of bs rows (noised actions xt, timesteps tt, conds, noise eps) into
 * the parameters' grads on every rank: this rank's shards one by one, then their sum over the
 * ranks (train/parallel.h; with one shard and one rank, the plain step). Returns the loss. */
static double batch_grads(trainer *r, ts_dp *dp, ts_ctx *c, long step, int bs, float *xt, float *tt, float *cond,
                          float *eps) {
  const int H = r->cfg->data.horizon, A = r->d.act_dim, NoOd = r->cfg->data.n_obs_steps * r->d.obs_dim;
  ts_dp_begin(dp);
  for (int s = dp->first; s < dp->first + dp->count; s++) {
    int lo, hi;
    ts_dp_rows(dp, s, bs, &lo, &hi);
    int ns = hi - lo;
    ts_ctx_reset(c);
    ts_zero_grad(r->net.params->t, r->net.params->n);
    if (!ns) {
      ts_dp_add(dp, 0);
      continue;
    }
    ts_rng shard_rng, *drop = &r->rng;
    if (!ts_dp_legacy(dp)) ts_dp_shard_rng(drop = &shard_rng, (uint64_t)r->cfg->train.seed, step, s);
    ts_tensor *X = ts_wrap(c, xt + (size_t)lo * H * A, 3, (int[]){ns, H, A}), *Tt = ts_wrap(c, tt + lo, 1, &ns);
    ts_tensor *C = ts_wrap(c, cond + (size_t)lo * NoOd, 2, (int[]){ns, NoOd});
    ts_tensor *E = ts_wrap(c, eps + (size_t)lo * H * A, 3, (int[]){ns, H, A});
    ts_tensor *loss = ts_mse(c, ts_model_forward(c, &r->net, X, Tt, C, drop), E);
    if (ns != bs) loss = ts_scale(c, loss, ts_dp_weight(ns, bs));
    if (isfinite(loss->data[0])) ts_backward(c, loss);
    ts_dp_add(dp, loss->data[0]);
  }
  return ts_dp_reduce(dp);
}

int ts_train(const ts_config *cfg, const ts_train_opts *o, ts_train_result *res) {
  trainer r;
  memset(&r, 0, sizeof r);
  memset(res, 0, sizeof *res);
  ts_train_opts o_rank = *o; /* under MPI only rank 0 talks (train/parallel.h) */
  o_rank.quiet |= ts_dist_rank() > 0;
  o = &o_rank;
  r.o = o;
  /* Everything is checked before anything is written: an existing checkpoint at out (even
   * with --fresh) is replaced only when this run writes its first checkpoint. */
  if (!o->data || !o->out) return ts_fail("train: no --data or --out");
  if (ts_config_validate(cfg, "config")) return -1;
  ts_set_threads(cfg->train.threads > 0 ? cfg->train.threads : ts_dist_default_threads());
  if (setup(&r, cfg, o->data)) return fail_free(&r, NULL);
  ts_dp dp;
  if (ts_dp_init(&dp, cfg->train.grad_shards, r.net.params->t, r.net.params->n)) return fail_free(&r, NULL);
  const int B = cfg->train.batch_size, H = cfg->data.horizon, A = r.d.act_dim, Od = r.d.obs_dim;
  const int No = cfg->data.n_obs_steps, T = r.sched.T;
  const long spe = (r.win.n + B - 1) / B;
  const long total = cfg->train.max_steps > 0 ? cfg->train.max_steps : (long)cfg->train.epochs * spe;
  /* the current log interval's loss sum, steps and samples: checkpointed, so a resume between
   * two log rows logs the row an uninterrupted run logs */
  double part[3] = {0, 0, 0};
  ts_run_spec spec = {.out = o->out,
                      .partial = part,
                      .n_partial = 3,
                      .config = r.cfg_text,
                      .may_change = may_change,
                      .tensors = r.named,
                      .n_tensors = 2 * r.net.params->n,
                      .rng = &r.rng,
                      .opt = r.opt,
                      .cols = cols,
                      .n_cols = NCOLS,
                      .total_steps = total,
                      .steps_per_epoch = spe,
                      .eval_every = cfg->train.eval_every,
                      .eval = eval_ckpt,
                      .eval_user = &r,
                      .eval_col = "eval_score",
                      .fresh = o->fresh,
                      .quiet = o->quiet};
  ts_run *run = NULL; /* rank 0's; the other ranks get its state from ts_dp_sync_state */
  long step = 0;
  if (ts_dist_rank() == 0) step = ts_run_open(&run, &spec) ? -1 : ts_run_resume(run);
  if (ts_dp_agree(step < 0)) {
    ts_dp_free(&dp);
    return fail_free(&r, run);
  }
  ts_dp_sync_state(r.named, 2 * r.net.params->n, r.opt, &r.rng, &step);
  ts_dist_bcast(part, (int64_t)sizeof part, 0);
  res->resumed_from = (int)step;
  if (!o->quiet)
    fprintf(stderr, "train: %lld windows from %d training episodes (of %d), %ld steps/epoch, %ld steps, %.2f M parameters%s\n",
            (long long)r.win.n, r.n_train, r.d.n_episodes, spe, total, (double)ts_params_count(r.net.params) / 1e6,
            step ? " (resumed)" : "");
  ts_ctx *c = ts_ctx_new(64 << 20);
  int *perm = malloc((size_t)r.win.n * sizeof(int));
  float *x0 = malloc((size_t)B * H * A * sizeof(float)), *ob = malloc((size_t)H * Od * sizeof(float));
  float *eps = malloc((size_t)B * H * A * sizeof(float)), *xt = malloc((size_t)B * H * A * sizeof(float));
  float *cond = malloc((size_t)B * No * Od * sizeof(float)), *tt = malloc((size_t)B * sizeof(float));
  if (!perm || !x0 || !ob || !eps || !xt || !cond || !tt) abort();
  long perm_epoch = -1;
  double t0 = ts_now();
  double *loss_acc = &part[0], *log_n = &part[1], *log_samples = &part[2];
  long start_step = step;
  int rc = 0;
  long stop_at = o->stop_after > 0 && step + o->stop_after < total ? step + o->stop_after : total;
  for (; step < stop_at && !rc; step++) {
    long epoch = step / spe, k = step % spe;
    if (epoch != perm_epoch) { /* the epoch's shuffle depends only on (seed, epoch) */
      ts_rng pr;
      ts_rng_init_stream(&pr, (uint64_t)cfg->train.seed, 1000 + (uint64_t)epoch);
      for (int64_t i = 0; i < r.win.n; i++) perm[i] = (int)i;
      ts_rng_shuffle(&pr, perm, (int)r.win.n);
      perm_epoch = epoch;
    }
    int bs = (int)((k + 1) * B <= r.win.n ? B : r.win.n - k * B), lo, hi;
    ts_dp_my_rows(&dp, bs, &lo, &hi); /* the rows this rank's shards use: all of them in one process */
    for (int b = lo; b < hi; b++) {
      ts_windows_get(&r.d, &r.win, perm[k * B + b], ob, x0 + (size_t)b * H * A);
      memcpy(cond + (size_t)b * No * Od, ob, (size_t)No * Od * sizeof(float));
    }
    ts_rng_fill_normal(&r.rng, eps, (int64_t)bs * H * A);
    for (int b = 0; b < bs; b++) {
      int t = (int)ts_rng_below(&r.rng, (uint32_t)T);
      tt[b] = (float)t;
      if (b >= lo && b < hi) ts_ddpm_add_noise(&r.sched, t, x0 + (size_t)b * H * A, eps + (size_t)b * H * A, xt + (size_t)b * H * A, H * A);
    }
    double loss = batch_grads(&r, &dp, c, step, bs, xt, tt, cond, eps);
    if (!isfinite(loss)) {
      rc = ts_fail("training diverged at step %ld (loss %g)", step, loss);
      break;
    }
    r.opt->lr = ts_lr_cosine((float)cfg->train.lr, step, cfg->train.warmup_steps, total);
    ts_adamw_step(r.opt);
    ts_ema_update(r.ema, r.net.params->t, step);
    *loss_acc += loss;
    *log_n += 1;
    *log_samples += bs;
    long done = step + 1;
    int last = done == stop_at;
    /* a slice that stops (stop_after) between log rows keeps its sums in the checkpoint: the
     * resumed run logs the row an uninterrupted one does */
    if (done % cfg->train.log_every == 0 || done == total) {
      double row[NCOLS] = {*loss_acc / *log_n, r.opt->lr, *log_samples, NAN};
      if (run) ts_run_log(run, done, row);
      res->final_loss = *loss_acc / *log_n;
      *loss_acc = *log_n = *log_samples = 0;
    } else if (last) res->final_loss = *loss_acc / *log_n;
    int do_eval = cfg->train.eval_every > 0 && done % cfg->train.eval_every == 0;
    if (done % cfg->train.checkpoint_every == 0 || last || do_eval)
      rc = ts_dp_agree(run ? ts_run_checkpoint(run, done, write_normalizers, &r) : 0);
  }
  res->steps = step;
  res->seconds = ts_now() - t0;
  res->samples_per_s = (double)(step - start_step) * B / (res->seconds > 0 ? res->seconds : 1);
  res->io_seconds = run ? ts_run_io_seconds(run) : 0;
  res->step_samples_per_s =
      (double)(step - start_step) * B / (res->seconds - res->io_seconds > 0 ? res->seconds - res->io_seconds : 1);
  if (!o->quiet && !ts_dp_legacy(&dp)) {
    char line[256];
    ts_dp_report(&dp, res->seconds - res->io_seconds, step - start_step, line, sizeof line);
    fprintf(stderr, "%s\n", line);
  }
  free(perm);
  free(x0);
  free(ob);
  free(eps);
  free(xt);
  free(cond);
  free(tt);
  ts_ctx_free(c);
  ts_dp_free(&dp);
  ts_run_close(run);
  teardown(&r);
  return rc ? -1 : 0;
}
