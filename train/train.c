#include "train.h"
#include "core/checkpoint.h"
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
#include <unistd.h>


typedef struct {
  double *step, *loss, *lr, *sps, *score; /* score: eval mean score at that step, or NaN */
  int n, cap;
} history;

static void hist_add(history *h, double step, double loss, double lr, double sps) {
  if (h->n == h->cap) {
    h->cap = h->cap ? 2 * h->cap : 256;
    h->step = realloc(h->step, (size_t)h->cap * sizeof(double));
    h->loss = realloc(h->loss, (size_t)h->cap * sizeof(double));
    h->lr = realloc(h->lr, (size_t)h->cap * sizeof(double));
    h->sps = realloc(h->sps, (size_t)h->cap * sizeof(double));
    h->score = realloc(h->score, (size_t)h->cap * sizeof(double));
    if (!h->step || !h->loss || !h->lr || !h->sps || !h->score) abort();
  }
  h->step[h->n] = step;
  h->loss[h->n] = loss;
  h->lr[h->n] = lr;
  h->score[h->n] = NAN;
  h->sps[h->n++] = sps;
}

static void hist_free(history *h) {
  free(h->step);
  free(h->loss);
  free(h->lr);
  free(h->sps);
  free(h->score);
  memset(h, 0, sizeof *h);
}

/* Everything a run carries. */
typedef struct {
  const ts_config *cfg;
  ts_dataset d;
  ts_normalizer nobs, nact;
  ts_windows win;
  ts_model net;
  ts_adamw *opt;
  ts_ema *ema;
  ts_rng rng;
  ts_ddpm sched;
  history hist;
  char *cfg_text;
  int n_train;
  ts_named *named; /* model/<name> then ema/<name>: what a checkpoint holds (AdamW moments
                      follow the first half) */
} run;

static int save(run *r, const char *out, long step) {
  int n = r->net.params->n, rc;
  ts_ckpt_state st = {r->cfg_text, step, &r->rng, r->opt};
  ts_h5 *f = ts_h5_create(out);
  rc = f ? 0 : -1;
  if (f) ts_h5_set_deflate(f, 0);
  /* AdamW moments are matched to the first opt->n tensors: the model group. */
  if (!rc) rc = ts_ckpt_write(f, r->named, 2 * n, &st);
  if (!rc) rc = ts_norm_save(f, "normalizer/obs", &r->nobs);
  if (!rc) rc = ts_norm_save(f, "normalizer/action", &r->nact);
  if (!rc && r->hist.n) {
    int64_t d[1] = {r->hist.n};
    float *tmp = malloc((size_t)r->hist.n * sizeof(float));
    if (!tmp) abort();
    double *cols[5] = {r->hist.step, r->hist.loss, r->hist.lr, r->hist.sps, r->hist.score};
    const char *names[5] = {"log/step", "log/loss", "log/lr", "log/samples_per_s", "log/eval_score"};
    for (int k = 0; k < 5 && !rc; k++) {
      for (int i = 0; i < r->hist.n; i++) tmp[i] = (float)cols[k][i];
      rc = ts_h5_write_f32(f, names[k], tmp, 1, d);
    }
    free(tmp);
  }
  if (f) {
    if (rc) ts_h5_close(f);
    else rc = ts_h5_commit(f);
  }
  return rc;
}

/* Keys a resumed run may change: how long it trains, how often it logs, checkpoints and
 * evaluates, how many threads. Any other difference from the checkpoint's config would make
 * the continuation a different run than the one that was started. */
static int may_change(const char *line) {
  static const char *ok[] = {"max_steps =", "epochs =", "checkpoint_every =", "log_every =", "eval_every =",
                             "eval_episodes =", "threads ="};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (strncmp(line, ok[i], strlen(ok[i])) == 0) return 1;
  return 0;
}

/* 0 when the config the checkpoint was trained with (as INI text) equals cur_ini except in
 * may_change keys and the [eval] section. */
static int same_recipe(const char *out, const char *saved, const char *cur_ini) {
  ts_config sc;
  ts_config_defaults(&sc);
  if (ts_config_parse_string(&sc, saved, out)) return -1;
  char *a = ts_config_to_ini(&sc);
  const char *p = a, *q = cur_ini;
  char sec[64] = "";
  int rc = 0;
  while (*p && *q && !rc) {
    size_t lp = strcspn(p, "\n"), lq = strcspn(q, "\n");
    if (*p == '[') snprintf(sec, sizeof sec, "%.*s", (int)(lp < 60 ? lp : 60), p);
    if ((lp != lq || strncmp(p, q, lp)) && strcmp(sec, "[eval]") && !may_change(p))
      rc = ts_fail("%s %s: '%.*s' in the checkpoint, '%.*s' now", out, sec, (int)lp, p, (int)lq, q);
    p += lp + (p[lp] == '\n');
    q += lq + (q[lq] == '\n');
  }
  free(a);
  return rc;
}

/* Resume: returns the step to continue from (0 when there is no checkpoint), -1 on error. */
static long try_resume(run *r, const char *out) {
  if (access(out, F_OK) != 0) return 0;
  int n = r->net.params->n;
  ts_ckpt_state st = {NULL, 0, &r->rng, r->opt};
  ts_h5 *f = ts_h5_open(out);
  int rc = 0;
  if (f) {
    char *saved = ts_h5_get_attr_str(f, "/", "config");
    rc = saved ? same_recipe(out, saved, r->cfg_text) : ts_fail("%s: no config attribute", out);
    free(saved);
  }
  if (!rc) rc = f ? ts_ckpt_read(f, r->named, 2 * n, &st, NULL) : -1;
  if (!rc && r->hist.n == 0 && ts_h5_exists(f, "log/step")) {
    const char *names[5] = {"log/step", "log/loss", "log/lr", "log/samples_per_s", "log/eval_score"};
    float *cols[5] = {0};
    int nd;
    int64_t dims[TS_MAXDIM];
    int64_t rows = 0;
    for (int k = 0; k < 5 && !rc; k++) {
      if (k == 4 && !ts_h5_exists(f, names[k])) break; /* older checkpoints have no eval column */
      if (!(cols[k] = ts_h5_read_f32(f, names[k], &nd, dims))) rc = -1;
      else if (k == 0) rows = dims[0];
      else if (dims[0] != rows) rc = ts_fail("%s: %s has %lld rows, log/step %lld", out, names[k], (long long)dims[0], (long long)rows);
    }
    for (int64_t i = 0; !rc && i < rows; i++) {
      hist_add(&r->hist, cols[0][i], cols[1][i], cols[2][i], cols[3][i]);
      if (cols[4]) r->hist.score[i] = cols[4][i];
    }
    for (int k = 0; k < 5; k++) free(cols[k]);
  }
  if (f) ts_h5_close(f);
  if (rc) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ts_error());
    ts_fail("cannot resume from %s (%s); pass --fresh to start over", out, msg);
    return -1;
  }
  return (long)st.step;
}

static int write_csv_png(const run *r, const char *out) {
  char path[1100], tmp[1200];
  snprintf(path, sizeof path, "%s.csv", out);
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) return ts_fail("%s: cannot write log", path);
  fprintf(f, "step,loss,lr,samples_per_s,eval_score\n");
  for (int i = 0; i < r->hist.n; i++) {
    fprintf(f, "%.0f,%.6g,%.6g,%.1f,", r->hist.step[i], r->hist.loss[i], r->hist.lr[i], r->hist.sps[i]);
    if (isnan(r->hist.score[i])) fprintf(f, "\n");
    else fprintf(f, "%.4f\n", r->hist.score[i]);
  }
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    remove(tmp);
    return ts_fail("%s: cannot write log", path);
  }
  if (r->hist.n < 2) return 0;
  snprintf(path, sizeof path, "%s.png", out);
  return ts_plot_png(path, r->hist.step, r->hist.loss, r->hist.n, 1);
}

/* Closed-loop evaluation of the just-saved EMA weights (DDIM-10 on the first
 * eval_episodes test seeds); the score lands in the latest history row. */
static int eval_now(run *r, const ts_train_opts *o, long step) {
  ts_policy p;
  if (ts_policy_load(&p, o->out, "ema")) return -1;
  ts_policy_set_threads(&p, ts_cpu_count());
  ts_eval_opts eo = {r->cfg->train.eval_episodes, r->cfg->eval.seed_start, "ddim", 10, 0, NULL, 0, 1};
  ts_eval_result er;
  int rc = ts_eval_pusht(&p, &eo, &er);
  ts_policy_free(&p);
  if (rc) return -1;
  r->hist.score[r->hist.n - 1] = er.mean_score;
  if (!o->quiet)
    fprintf(stderr, "eval at step %ld: DDIM-10 mean score %.3f, success %.2f over %d seeds\n", step, er.mean_score,
            er.success_rate, er.episodes);
  /* Save again so the checkpoint's log carries the score. */
  return save(r, o->out, step);
}

static void fmt_time(double s, char *buf, size_t n) {
  if (s < 0 || s > 1e8) snprintf(buf, n, "?");
  else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
  else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static int setup(run *r, const ts_config *cfg, const char *data) {
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
  if (ts_model_new(&r->net, cfg, r->d.act_dim, r->d.obs_dim)) return -1;
  ts_params *P = r->net.params;
  ts_rng init;
  ts_rng_init_stream(&init, (uint64_t)cfg->train.seed, 1);
  ts_model_init(&r->net, &init);
  ts_rng_init_stream(&r->rng, (uint64_t)cfg->train.seed, 2);
  r->opt = ts_adamw_new(P->t, P->n, (float)cfg->train.lr, (float)cfg->train.beta1, (float)cfg->train.beta2,
                        (float)cfg->train.eps, (float)cfg->train.weight_decay);
  unsigned char *decay = malloc((size_t)P->n);
  if (!decay) abort();
  ts_model_decay_mask(&r->net, decay);
  ts_adamw_set_decay(r->opt, decay);
  free(decay);
  r->ema = ts_ema_new(P->t, P->n, (float)cfg->train.ema_power, (float)cfg->train.ema_max_decay);
  ts_ddpm_init(&r->sched, cfg->diffusion.num_train_timesteps, cfg->diffusion.clip_sample);
  r->cfg_text = ts_config_to_ini(cfg);
  int n = P->n;
  ts_named *m = ts_params_named(P, "model/", NULL), *e = ts_params_named(P, "ema/", r->ema->shadow);
  r->named = calloc((size_t)(2 * n), sizeof *r->named);
  if (!r->named) abort();
  memcpy(r->named, m, (size_t)n * sizeof *m);
  memcpy(r->named + n, e, (size_t)n * sizeof *e);
  free(m); /* the names now belong to r->named */
  free(e);
  return 0;
}

static void teardown(run *r) {
  ts_dataset_free(&r->d);
  ts_windows_free(&r->win);
  if (r->named) ts_named_free(r->named, 2 * r->net.params->n);
  ts_model_free(&r->net);
  ts_adamw_free(r->opt);
  ts_ema_free(r->ema);
  hist_free(&r->hist);
  free(r->cfg_text);
}

int ts_train(const ts_config *cfg, const ts_train_opts *o, ts_train_result *res) {
  run r;
  memset(&r, 0, sizeof r);
  memset(res, 0, sizeof *res);
  ts_set_threads(cfg->train.threads > 0 ? cfg->train.threads : ts_cpu_count());
  if (o->fresh) remove(o->out);
  { /* fail now, not after the first checkpoint interval, if the output folder is not writable */
    char probe[1100];
    snprintf(probe, sizeof probe, "%s.tmp-%ld", o->out, (long)getpid());
    FILE *pf = fopen(probe, "w");
    if (!pf) return ts_fail("%s: cannot write here (does the folder exist?)", o->out);
    fclose(pf);
    remove(probe);
  }
  if (setup(&r, cfg, o->data)) {
    teardown(&r);
    return -1;
  }
  const int B = cfg->train.batch_size, H = cfg->data.horizon, A = r.d.act_dim, Od = r.d.obs_dim;
  const int No = cfg->data.n_obs_steps, T = r.sched.T;
  const long spe = (r.win.n + B - 1) / B;
  const long total = cfg->train.max_steps > 0 ? cfg->train.max_steps : (long)cfg->train.epochs * spe;
  long step = try_resume(&r, o->out);
  if (step < 0) {
    teardown(&r);
    return -1;
  }
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
  double t0 = ts_now(), tlog = t0, loss_acc = 0, io = 0; /* io: checkpoint, eval, log writing */
  long log_n = 0, log_samples = 0, start_step = step;
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
    int bs = (int)((k + 1) * B <= r.win.n ? B : r.win.n - k * B);
    for (int b = 0; b < bs; b++) {
      ts_windows_get(&r.d, &r.win, perm[k * B + b], ob, x0 + (size_t)b * H * A);
      memcpy(cond + (size_t)b * No * Od, ob, (size_t)No * Od * sizeof(float));
    }
    ts_rng_fill_normal(&r.rng, eps, (int64_t)bs * H * A);
    for (int b = 0; b < bs; b++) {
      int t = (int)ts_rng_below(&r.rng, (uint32_t)T);
      tt[b] = (float)t;
      ts_ddpm_add_noise(&r.sched, t, x0 + (size_t)b * H * A, eps + (size_t)b * H * A, xt + (size_t)b * H * A, H * A);
    }
    ts_ctx_reset(c);
    ts_zero_grad(r.net.params->t, r.net.params->n);
    ts_tensor *X = ts_wrap(c, xt, 3, (int[]){bs, H, A}), *Tt = ts_wrap(c, tt, 1, &bs);
    ts_tensor *C = ts_wrap(c, cond, 2, (int[]){bs, No * Od}), *E = ts_wrap(c, eps, 3, (int[]){bs, H, A});
    ts_tensor *loss = ts_mse(c, ts_model_forward(c, &r.net, X, Tt, C, &r.rng), E);
    if (!isfinite(loss->data[0])) {
      rc = ts_fail("training diverged at step %ld (loss %g)", step, loss->data[0]);
      break;
    }
    ts_backward(c, loss);
    r.opt->lr = ts_lr_cosine((float)cfg->train.lr, step, cfg->train.warmup_steps, total);
    ts_adamw_step(r.opt);
    ts_ema_update(r.ema, r.net.params->t, step);
    loss_acc += loss->data[0];
    log_n++;
    log_samples += bs;
    int last = step + 1 == stop_at;
    if ((step + 1) % cfg->train.log_every == 0 || last) {
      double tn = ts_now(), sps = log_samples / (tn - tlog), eta = (total - step - 1) * (tn - t0) / (step + 1 - start_step);
      hist_add(&r.hist, (double)(step + 1), loss_acc / log_n, r.opt->lr, sps);
      if (!o->quiet) {
        char eb[32];
        fmt_time(eta, eb, sizeof eb);
        fprintf(stderr, "step %ld/%ld epoch %ld loss %.5f lr %.2e | %.0f samples/s | ETA %s\n", step + 1, total, epoch,
                loss_acc / log_n, r.opt->lr, sps, eb);
      }
      res->final_loss = loss_acc / log_n;
      loss_acc = 0;
      log_n = log_samples = 0;
      tlog = tn;
    }
    int do_eval = cfg->train.eval_every > 0 && (step + 1) % cfg->train.eval_every == 0;
    if ((step + 1) % cfg->train.checkpoint_every == 0 || last || do_eval) {
      double ts = ts_now();
      rc = save(&r, o->out, step + 1);
      if (!rc && do_eval && r.hist.n) rc = eval_now(&r, o, step + 1);
      if (!rc) rc = write_csv_png(&r, o->out);
      io += ts_now() - ts;
    }
  }
  res->steps = step;
  res->seconds = ts_now() - t0;
  res->samples_per_s = (double)(step - start_step) * B / (res->seconds > 0 ? res->seconds : 1);
  res->io_seconds = io;
  res->step_samples_per_s = (double)(step - start_step) * B / (res->seconds - io > 0 ? res->seconds - io : 1);
  free(perm);
  free(x0);
  free(ob);
  free(eps);
  free(xt);
  free(cond);
  free(tt);
  ts_ctx_free(c);
  teardown(&r);
  return rc ? -1 : 0;
}
