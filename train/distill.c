/* distill.c: drafter distillation (distill.h), data-parallel over the job's ranks.
 *
 * Under mpirun (train/parallel.h, the contract of base training): every rank draws the whole
 * batch's buffer rows from the one run stream and computes its gradient shards
 * (train.grad_shards, 0 = one per rank); the shards' gradients, and the logged objective and
 * acceptance sums, are added in shard order and then in rank order, and every rank takes the
 * same AdamW and EMA step. So N ranks with one shard each equal, bit for bit, one process with
 * train.grad_shards = N, and a checkpoint resumes on any rank count.
 *
 * The parts that are not per batch row:
 *  - the buffer refresh (base chains and the drafter's unrolls): its chains are cut into the
 *    same shards as a batch, a shard's chains making one batched call of each network (a
 *    network's output for a row may depend on the batch it is computed in: the autograd
 *    forward's GEMMs do), each rank drawing every chain's random numbers from the refresh's
 *    stream and running its shards only; then each rank's chains are broadcast, so every
 *    rank holds the same buffer, the one a single process with the same shards computes;
 *  - the held-out evaluation at the end: rank 0 alone (it writes <out>.accept.png);
 *  - the checkpoint, resume, log and the base pairing check: rank 0 alone, its verdict shared
 *    by ts_dp_agree and its resumed state (weights, AdamW, the buffer, the stream) sent to
 *    every rank by ts_dp_sync_state. */
#include "distill.h"
#include "parallel.h"
#include "plot.h"
#include "run.h"
#include "core/checkpoint.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "infer/denoisers.h"
#include "infer/drafter.h"
#include "infer/policy.h"
#include "nn/model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Everything distillation carries besides the run machinery. */
typedef struct {
  ts_config cfg; /* the drafter's: the given config with the base's [data] and [diffusion] */
  const ts_distill_opts *o;
  ts_policy base;
  char base_hash[17];
  ts_dataset d;
  ts_windows win;
  ts_model net;
  ts_adamw *opt;
  ts_ema *ema;
  ts_rng rng;
  char *cfg_text;
  ts_named *named; /* model/..., ema/..., then the buffer distill/{x,t,cond,eps} */
  int n_named;
  ts_tensor *bx, *bt, *bc, *be; /* the buffer: (N, H, A), (N), (N, cond_dim), (N, H, A) */
  int N, G;                     /* states, chain groups */
  float *cx, *ceps, *cmean, *cz, *ccond, *ob; /* chain work space (chains rows) */
  float *dcond;  /* the drafter's cond per chain: ccond, or with distill.temporal ccond plus control steps */
  int tmp, dcd;  /* distill.temporal: n_obs_steps (else 0); the drafter's cond width cond_dim + tmp */
  float *cy, *cyp, *cyq;                       /* the unrolled drafter chain: state, base and drafter eps */
  ts_denoiser tape;                            /* the drafter being trained, for the unrolls */
  int *ctb;
  double w[TS_MAX_T]; /* ts_ddpm_delta_weight per t */
} distiller;

enum { COL_LOSS, COL_ACCEPT, COL_LR, COL_SPS, NCOLS };
static const ts_run_col cols[NCOLS] = {
  {"loss", "%.6g", "loss %.5f", 2, 0, 0},
  {"accept", "%.4f", "accept %.3f", 3, 0, 0},
  {"lr", "%.6g", "lr %.2e", 0, 0, 0},
  {"samples_per_s", "%.1f", "| %.0f samples/s", 0, 1, 0},
};

static const char *const may_change[] = {"train.max_steps",  "train.checkpoint_every", "train.log_every",
                                         "train.threads",    "train.eval_every",       "train.eval_episodes",
                                         "train.grad_shards", "distill.heldout_chains", "eval.*", NULL};

static int write_extras(ts_h5 *f, void *user) {
  distiller *r = user;
  if (ts_norm_save(f, "normalizer/obs", &r->base.nobs) || ts_norm_save(f, "normalizer/action", &r->base.nact)) return -1;
  if (ts_h5_attr_str(f, "/", "base_hash", r->base_hash) || ts_h5_attr_str(f, "/", "base_path", r->o->base)) return -1;
  return ts_model_write_buffers(f, &r->net);
}

/* Predicted acceptance 2 Phi(-|Delta| / 2) of a draft from eps q at state x, step t >= 1, when
 * the target's eps is p: Delta = (m_p - m_q) / sigma_t from ts_ddpm_mean, clipping included.
 * m1, m2: n floats of work space. */
static double step_accept(const ts_ddpm *s, int t, const float *x, const float *p, const float *q, float *m1, float *m2,
                          int n) {
  float sig = ts_ddpm_mean(s, t, x, p, m1, n);
  ts_ddpm_mean(s, t, x, q, m2, n);
  double d2 = 0;
  for (int i = 0; i < n; i++) d2 += (double)(m1[i] - m2[i]) * (m1[i] - m2[i]);
  return erfc(sqrt(d2) / sig / (2 * M_SQRT2));
}

/* `chains` base DDPM chains from stream (seed, stream): each visited state goes to rows
 * slot0 + c * T + (T - 1 - t) of (x, t, cond, eps) when x is non-NULL; with a drafter q, the
 * predicted acceptance of each t >= 1 state is summed into acc[t] instead. Only chains
 * [lo, hi) are computed (the rest of the rows are left alone), but every chain's random
 * numbers are drawn, so a chain is the same whichever part of the chains is computed. */
static void run_chains(distiller *r, uint64_t stream, int nchains, int lo, int hi, float *x, float *tt, float *cond,
                       float *eps, int64_t slot0, ts_denoiser *q, double *acc) {
  ts_rng rng;
  ts_rng_init_stream(&rng, (uint64_t)r->cfg.train.seed, stream);
  const int H = r->cfg.data.horizon, A = r->base.act_dim, No = r->cfg.data.n_obs_steps, Od = r->base.obs_dim;
  const int n = H * A, cd = r->base.cond_dim, dcd = r->dcd, T = r->base.sched.T, K = x ? r->cfg.distill.unroll : 0;
  for (int c = 0; c < nchains; c++) {
    int64_t wi = (int64_t)ts_rng_below(&rng, (uint32_t)r->win.n);
    if (c < lo || c >= hi) continue;
    ts_windows_get(&r->d, &r->win, wi, r->ob, NULL);
    memcpy(r->ccond + (size_t)c * cd, r->ob, (size_t)No * Od * sizeof(float));
    if (r->tmp) /* the control step of the window's latest observation */
      ts_drafter_cond(r->ccond + (size_t)c * cd, cd, No, (long)ts_windows_step(&r->d, &r->win, wi, No - 1),
                      r->dcond + (size_t)c * dcd);
    else memcpy(r->dcond + (size_t)c * dcd, r->ccond + (size_t)c * cd, (size_t)cd * sizeof(float));
  }
  ts_rng_fill_normal(&rng, r->cx, (int64_t)nchains * n);
  const int m = hi - lo; /* the chains computed here: rows [lo, hi) of the work space */
  for (int t = T - 1; t >= 0; t--) {
    for (int c = 0; c < nchains; c++) r->ctb[c] = t;
    if (m > 0) ts_denoiser_eps(&r->base.target, r->cx + (size_t)lo * n, r->ctb, r->ccond + (size_t)lo * cd, m, r->ceps + (size_t)lo * n);
    if (x) {
      for (int c = lo; c < hi; c++) {
        int64_t s = slot0 + (int64_t)c * T + (T - 1 - t);
        memcpy(x + s * n, r->cx + (size_t)c * n, (size_t)n * sizeof(float));
        memcpy(eps + s * n, r->ceps + (size_t)c * n, (size_t)n * sizeof(float));
        memcpy(cond + s * dcd, r->dcond + (size_t)c * dcd, (size_t)dcd * sizeof(float));
        tt[s] = (float)t;
      }
      if (K > 0) { /* the drafter's chain: resynced to the base's every K steps, else its own step */
        size_t o = (size_t)lo * n;
        if ((T - 1 - t) % K == 0) {
          memcpy(r->cy + o, r->cx + o, (size_t)m * n * sizeof(float));
          memcpy(r->cyp + o, r->ceps + o, (size_t)m * n * sizeof(float));
        } else if (m > 0) {
          ts_denoiser_eps(&r->base.target, r->cy + o, r->ctb, r->ccond + (size_t)lo * cd, m, r->cyp + o);
        }
        if (m > 0) ts_denoiser_eps(&r->tape, r->cy + o, r->ctb, r->dcond + (size_t)lo * dcd, m, r->cyq + o);
        int64_t half = (int64_t)r->N / 2;
        for (int c = 0; c < nchains; c++) {
          if (c < lo || c >= hi) { /* another rank's chain: its noise only */
            if (t > 0) ts_rng_fill_normal(&rng, r->cyq + (size_t)c * n, n);
            continue;
          }
          int64_t s = half + slot0 + (int64_t)c * T + (T - 1 - t);
          memcpy(x + s * n, r->cy + (size_t)c * n, (size_t)n * sizeof(float));
          memcpy(eps + s * n, r->cyp + (size_t)c * n, (size_t)n * sizeof(float));
          memcpy(cond + s * dcd, r->dcond + (size_t)c * dcd, (size_t)dcd * sizeof(float));
          tt[s] = (float)t;
          float *yc = r->cy + (size_t)c * n, *mc = r->cz + (size_t)c * n; /* cz: the drafter's mean, then its z */
          float sigma = ts_ddpm_mean(&r->base.sched, t, yc, r->cyq + (size_t)c * n, mc, n);
          if (t > 0) {
            ts_rng_fill_normal(&rng, r->cyq + (size_t)c * n, n);
            for (int i = 0; i < n; i++) yc[i] = mc[i] + sigma * r->cyq[(size_t)c * n + i];
          }
        }
      }
    } else if (t > 0 && m > 0) {
      ts_denoiser_eps(q, r->cx + (size_t)lo * n, r->ctb, r->dcond + (size_t)lo * dcd, m, r->cmean + (size_t)lo * n); /* the drafter's eps */
      for (int c = lo; c < hi; c++)
        acc[t] += step_accept(&r->base.sched, t, r->cx + (size_t)c * n, r->ceps + (size_t)c * n, r->cmean + (size_t)c * n,
                              r->cz, r->cz + n, n);
    }
    for (int c = 0; c < nchains; c++) {
      if (c < lo || c >= hi) {
        if (t > 0) ts_rng_fill_normal(&rng, r->cz, n);
        continue;
      }
      float *xc = r->cx + (size_t)c * n, *mc = r->cmean + (size_t)c * n;
      float sigma = ts_ddpm_mean(&r->base.sched, t, xc, r->ceps + (size_t)c * n, mc, n);
      if (t > 0) {
        ts_rng_fill_normal(&rng, r->cz, n);
        for (int i = 0; i < n; i++) xc[i] = mc[i] + sigma * r->cz[i];
      } else {
        memcpy(xc, mc, (size_t)n * sizeof(float));
      }
    }
  }
}

/* Refresh number k (k < G: the initial fill of group k) replaces group k % G. Its chains are cut
 * like a batch into the gradient shards (dp), a shard's chains in one batched call of each
 * network, and each rank runs its shards; then every rank sends its chains to the others.
 * With one shard and one rank, all chains in one call (the single-process refresh). */
static void refresh(distiller *r, const ts_dp *dp, long k) {
  const int ch = r->cfg.distill.chains, T = r->base.sched.T, n = r->cfg.data.horizon * r->base.act_dim, dcd = r->dcd;
  const int64_t slot0 = (int64_t)(k % r->G) * ch * T;
  for (int s = dp->first; s < dp->first + dp->count; s++) {
    int lo, hi;
    ts_dp_rows(dp, s, ch, &lo, &hi);
    if (hi > lo)
      run_chains(r, 100 + (uint64_t)k, ch, lo, hi, r->bx->data, r->bt->data, r->bc->data, r->be->data, slot0, NULL, NULL);
  }
  if (dp->size <= 1) return;
  for (int q = 0; q < dp->size; q++) { /* rank q's chains [k0, k1): T rows each in every array */
    int k0, k1, a, e;
    ts_dp_rows(dp, q * dp->count, ch, &k0, &e);
    ts_dp_rows(dp, q * dp->count + dp->count - 1, ch, &a, &k1);
    int64_t rows = (int64_t)(k1 - k0) * T;
    if (rows <= 0) continue;
    for (int half = 0; half < (r->cfg.distill.unroll > 0 ? 2 : 1); half++) {
      int64_t s0 = half * (int64_t)r->N / 2 + slot0 + (int64_t)k0 * T;
      ts_dist_bcast(r->bx->data + s0 * n, rows * n * (int64_t)sizeof(float), q);
      ts_dist_bcast(r->be->data + s0 * n, rows * n * (int64_t)sizeof(float), q);
      ts_dist_bcast(r->bc->data + s0 * dcd, rows * dcd * (int64_t)sizeof(float), q);
      ts_dist_bcast(r->bt->data + s0, rows * (int64_t)sizeof(float), q);
    }
  }
}

/* distill.init: the EMA weights of the drafter checkpoint at path become the starting weights
 * (a resumed run then loads its own). The file must hold this config's [model] exactly. */
static int init_from(distiller *r, const char *path) {
  ts_h5 *f = ts_h5_open(path);
  if (!f) {
    char why[600];
    snprintf(why, sizeof why, "%s", ts_error());
    return ts_fail("distill.init: %s", why);
  }
  int rc = ts_model_check_ckpt(&r->cfg, r->base.act_dim, r->base.obs_dim + (r->tmp ? 1 : 0), f, "ema");
  ts_h5_close(f);
  if (rc) {
    char why[600];
    snprintf(why, sizeof why, "%s", ts_error());
    return ts_fail("distill.init %s: %s", path, why);
  }
  ts_params *P = r->net.params;
  ts_named *nm = ts_params_named(P, "ema/", NULL);
  rc = ts_ckpt_load(path, nm, P->n, NULL, NULL);
  ts_named_free(nm, P->n);
  return rc;
}

static int setup(distiller *r, const ts_config *cfg, const ts_distill_opts *o) {
  if (ts_policy_load(&r->base, o->base, "ema")) return -1;
  ts_hash_hex(ts_model_hash(&r->base.model), r->base_hash);
  r->cfg = *cfg;
  r->cfg.data = r->base.cfg.data;
  r->cfg.diffusion = r->base.cfg.diffusion;
  if (ts_config_validate(&r->cfg, "distill config")) return -1;
  if (r->cfg.train.max_steps <= 0) return ts_fail("distill: [train] max_steps must be set (> 0)");
  if (r->cfg.distill.t_max == 1)
    return ts_fail("distill config: distill.t_max 1 leaves only t = 0, which is never drafted; use 0 (every step) or >= 2");
  if (r->cfg.distill.t_max > r->base.sched.T)
    return ts_fail("distill config: distill.t_max %d is past the base's %d diffusion steps", r->cfg.distill.t_max,
                   r->base.sched.T);
  const ts_config *c = &r->cfg;
  const char *keys[TS_CFG_MAXKEYS];
  for (int i = 0; i < c->data.n_obs_keys; i++) keys[i] = c->data.obs_keys[i];
  if (ts_dataset_load(o->data, keys, c->data.n_obs_keys, &r->d)) return -1;
  if (r->d.obs_dim != r->base.obs_dim || r->d.act_dim != r->base.act_dim)
    return ts_fail("%s: obs / action widths %d / %d, the base %s expects %d / %d", o->data, r->d.obs_dim, r->d.act_dim,
                   o->base, r->base.obs_dim, r->base.act_dim);
  int E = r->d.n_episodes;
  uint8_t *tr = malloc((size_t)E), *va = malloc((size_t)E);
  if (!tr || !va) abort();
  ts_episode_split(E, c->data.val_ratio, c->data.max_train_episodes, (uint64_t)c->data.seed, tr, va);
  ts_norm_apply(&r->base.nobs, r->d.obs, r->d.n_steps); /* the base's normaliser, not a refit */
  int rc = ts_windows_build(&r->d, tr, c->data.horizon, c->data.pad_before, c->data.pad_after, &r->win);
  free(tr);
  free(va);
  if (rc) return -1;
  if (r->win.n < 1) return ts_fail("%s: no training windows", o->data);
  r->tmp = c->distill.temporal ? c->data.n_obs_steps : 0;
  r->dcd = r->base.cond_dim + r->tmp;
  /* the drafter's values, gradients, AdamW m and v, EMA copy, and the copy the held-out check builds */
  const int sharded = c->train.grad_shards > 1;
  if (ts_model_check_size(c, r->base.act_dim, r->base.obs_dim + (r->tmp ? 1 : 0), "distill config", 6 + sharded,
                          sharded ? "values, gradients, AdamW m and v, EMA, an evaluation copy, shard sums"
                                  : "values, gradients, AdamW m and v, EMA, an evaluation copy"))
    return -1;
  if (ts_model_new(&r->net, c, r->base.act_dim, r->base.obs_dim + (r->tmp ? 1 : 0))) return -1;
  ts_params *P = r->net.params;
  ts_rng init;
  ts_rng_init_stream(&init, (uint64_t)c->train.seed, 1);
  ts_model_init(&r->net, &init);
  /* a run that will resume loads its own weights, so it needs no init file any more */
  if (c->distill.init[0] && (o->fresh || access(o->out, F_OK) != 0) && init_from(r, c->distill.init)) return -1;
  ts_rng_init_stream(&r->rng, (uint64_t)c->train.seed, 2);
  r->opt = ts_model_optimizer(&r->net, c);
  r->ema = ts_ema_new(P->t, P->n, (float)c->train.ema_power, (float)c->train.ema_max_decay);
  r->cfg_text = ts_config_to_ini(c);
  const int T = r->base.sched.T, H = c->data.horizon, A = r->base.act_dim, cd = r->base.cond_dim;
  const int ch = c->distill.chains > c->distill.heldout_chains ? c->distill.chains : c->distill.heldout_chains;
  for (int t = 0; t < T; t++) r->w[t] = ts_ddpm_delta_weight(&r->base.sched, t);
  r->G = c->distill.buffer_chains / c->distill.chains;
  r->N = c->distill.buffer_chains * T * (c->distill.unroll > 0 ? 2 : 1); /* base states, then unrolled ones */
  r->bx = ts_param_new(3, (int[]){r->N, H, A});
  r->bt = ts_param_new(1, &r->N);
  r->bc = ts_param_new(2, (int[]){r->N, r->dcd}); /* the drafter's cond */
  r->be = ts_param_new(3, (int[]){r->N, H, A});
  int n = P->n;
  r->n_named = 2 * n + 4;
  r->named = ts_run_model_tensors(P, r->ema->shadow, 4);
  const char *bn[4] = {"distill/x", "distill/t", "distill/cond", "distill/eps"};
  ts_tensor *bt[4] = {r->bx, r->bt, r->bc, r->be};
  for (int k = 0; k < 4; k++) {
    r->named[2 * n + k].name = strdup(bn[k]);
    r->named[2 * n + k].t = bt[k];
  }
  size_t rows = (size_t)ch * H * A * sizeof(float);
  r->cx = malloc(rows);
  r->ceps = malloc(rows);
  r->cmean = malloc(rows);
  r->cz = malloc(2 * rows); /* noise; two means in the held-out evaluation */
  r->ccond = malloc((size_t)ch * cd * sizeof(float));
  r->dcond = malloc((size_t)ch * r->dcd * sizeof(float));
  r->ob = malloc((size_t)H * r->base.obs_dim * sizeof(float));
  r->ctb = malloc((size_t)ch * sizeof(int));
  r->cy = malloc(rows);
  r->cyp = malloc(rows);
  r->cyq = malloc(rows);
  if (!r->cy || !r->cyp || !r->cyq || ts_denoiser_tape(&r->tape, &r->net)) abort();
  if (!r->cx || !r->ceps || !r->cmean || !r->cz || !r->ccond || !r->dcond || !r->ob || !r->ctb) abort();
  ts_denoiser_reserve(&r->base.target, ch);
  return 0;
}

static void teardown(distiller *r) {
  if (r->named) ts_named_free(r->named, r->n_named);
  ts_param_free(r->bx);
  ts_param_free(r->bt);
  ts_param_free(r->bc);
  ts_param_free(r->be);
  ts_dataset_free(&r->d);
  ts_windows_free(&r->win);
  ts_model_free(&r->net);
  ts_adamw_free(r->opt);
  ts_ema_free(r->ema);
  ts_policy_free(&r->base);
  free(r->cfg_text);
  free(r->cx);
  free(r->ceps);
  free(r->cmean);
  free(r->cz);
  free(r->ccond);
  free(r->dcond);
  free(r->ob);
  free(r->ctb);
  free(r->cy);
  free(r->cyp);
  free(r->cyq);
  ts_denoiser_free(&r->tape);
}

/* An existing checkpoint at out must come from the same base (unless fresh). */
static int check_base(const distiller *r, const ts_distill_opts *o) {
  if (o->fresh || access(o->out, F_OK) != 0) return 0;
  ts_h5 *f = ts_h5_open(o->out);
  if (!f) return -1;
  char *h = ts_h5_get_attr_str(f, "/", "base_hash"), *bp = ts_h5_get_attr_str(f, "/", "base_path");
  ts_h5_close(f);
  int rc = 0;
  if (!h) rc = ts_fail("cannot resume from %s: it has no base_hash (not a drafter); pass --fresh to start over", o->out);
  else if (strcmp(h, r->base_hash))
    rc = ts_fail("cannot resume from %s: it was distilled from base %s (hash %s), not from %s (hash %s); pass --fresh to "
                 "start over", o->out, bp ? bp : "?", h, o->base, r->base_hash);
  free(h);
  free(bp);
  return rc;
}

/* The EMA drafter's predicted acceptance per t over held-out base chains; <out>.accept.png. */
static int heldout(distiller *r, ts_distill_result *res) {
  const int T = r->base.sched.T, hc = r->cfg.distill.heldout_chains;
  ts_model em;
  if (ts_model_new(&em, &r->cfg, r->base.act_dim, r->base.obs_dim + (r->tmp ? 1 : 0))) return -1;
  ts_params_copy(em.params, r->ema->shadow);
  ts_denoiser q;
  if (ts_denoiser_engine(&q, &em, T, 1)) {
    ts_model_free(&em);
    return -1;
  }
  ts_denoiser_reserve(&q, hc);
  memset(res->accept_t, 0, sizeof res->accept_t);
  run_chains(r, 99, hc, 0, hc, NULL, NULL, NULL, NULL, 0, &q, res->accept_t);
  ts_denoiser_free(&q);
  ts_model_free(&em);
  double tx[TS_MAX_T], sum = 0;
  const int tm = r->cfg.distill.t_max > 0 ? r->cfg.distill.t_max : T; /* a specialist: its own steps */
  for (int t = 1; t < T; t++) {
    res->accept_t[t] /= hc;
    if (t < tm) sum += res->accept_t[t];
    tx[t] = t;
  }
  res->heldout = 1;
  res->heldout_accept = tm > 1 ? sum / (tm - 1) : 0;
  char path[1024], title[1200], name[96];
  snprintf(path, sizeof path, "%s.accept.png", r->o->out);
  const char *base = strrchr(r->o->out, '/');
  snprintf(title, sizeof title, "%s: predicted acceptance per step (%d held-out chains)", base ? base + 1 : r->o->out, hc);
  if (tm < T) snprintf(name, sizeof name, "EMA specialist (mean %.3f over 1 <= t < %d)", res->heldout_accept, tm);
  else snprintf(name, sizeof name, "EMA drafter (mean %.3f over t >= 1)", res->heldout_accept);
  ts_fig *f = ts_fig_new(800, 480, 1, 1);
  if (!f) return -1;
  int rc = ts_fig_title(f, title);
  if (!rc) rc = ts_fig_axes(f, 0, NULL, "diffusion step t", "predicted acceptance", 0);
  if (!rc) rc = ts_fig_ylim(f, 0, 0, 1);
  if (!rc) rc = ts_fig_series(f, 0, name, tx + 1, res->accept_t + 1, NULL, T - 1, T <= 40 ? TS_LINE | TS_MARKERS : TS_LINE);
  if (!rc) rc = ts_fig_save(f, path);
  ts_fig_free(f);
  return rc;
}

static int fail_free(distiller *r, ts_run *run) {
  ts_run_close(run);
  teardown(r);
  return -1;
}

/* The batch's rows [lo, hi) of the buffer states (xb, pb: the base's eps, cb, tb) into the
 * parameters' grads, as one gradient shard of a batch of B (weighted (hi - lo) / B). sb holds
 * the rows' unclipped-x0 masks on entry; sb and eb are overwritten with the loss's scales and
 * targets. Adds the rows' objective sum, eps MSE sum, acceptance sum and count to m[0..3].
 * Returns the shard's weighted loss (its backward is skipped when it is not finite). */
static double shard_grads(distiller *r, ts_ctx *ctx, ts_rng *drop, int lo, int hi, int B, float *xb, float *pb, float *cb,
                          float *tb, float *sb, float *eb, float *m1, float *m2, double *m) {
  const ts_config *c = &r->cfg;
  const ts_ddpm *sch = &r->base.sched;
  const int H = c->data.horizon, A = r->base.act_dim, cd = r->dcd, n = H * A, ns = hi - lo;
  ts_ctx_reset(ctx);
  ts_zero_grad(r->net.params->t, r->net.params->n);
  ts_tensor *X = ts_wrap(ctx, xb + (size_t)lo * n, 3, (int[]){ns, H, A}), *Tt = ts_wrap(ctx, tb + lo, 1, &ns);
  ts_tensor *C = ts_wrap(ctx, cb + (size_t)lo * cd, 2, (int[]){ns, cd});
  ts_tensor *pred = ts_model_forward(ctx, &r->net, X, Tt, C, drop);
  /* Per row, |Delta| = w_t |u (eps_p - eps_q)| (no clipping) and the objective's weight lam on
   * |Delta|^2: delta2 1; reject phi(|Delta|/2) / (2 |Delta|), the derivative of the rejection
   * probability 1 - 2 Phi(-|Delta|/2) in |Delta|^2 at the current prediction, so the weighted
   * squared loss has the rejection's gradient; mse 0. Times late_weight at t < late_steps.
   * Then mean over the B n elements of (s d)^2, s^2 = lam w^2 n u + eps_weight, is
   * mean_b [lam |Delta_b|^2] + eps_weight mean d^2. */
  double obj = 0, mse = 0, acc = 0;
  int na = 0;
  for (int b = lo; b < hi; b++) {
    int t = (int)tb[b];
    const float *pr = pred->data + (size_t)(b - lo) * n;
    double d2 = 0, d2u = 0;
    for (int i = 0; i < n; i++) {
      double d = (double)pb[(size_t)b * n + i] - pr[i];
      d2 += d * d;
      d2u += sb[(size_t)b * n + i] * d * d;
    }
    double f = t < c->distill.late_steps ? c->distill.late_weight : 1.0, delta = r->w[t] * sqrt(d2u), lam = 0;
    if (c->distill.objective == TS_DISTILL_DELTA2) {
      lam = f;
      obj += f * delta * delta;
    } else if (c->distill.objective == TS_DISTILL_REJECT) {
      double dl = delta > 1e-2 ? delta : 1e-2;
      lam = f * exp(-dl * dl / 8) / sqrt(2 * M_PI) / (2 * dl);
      obj += f * erf(delta / (2 * M_SQRT2)); /* 1 - 2 Phi(-|Delta|/2) */
    }
    mse += d2 / n;
    double a2 = lam * r->w[t] * r->w[t] * n;
    for (int i = 0; i < n; i++) {
      size_t k = (size_t)b * n + i;
      sb[k] = (float)sqrt(sb[k] * a2 + c->distill.eps_weight);
      eb[k] = sb[k] * pb[k];
    }
    if (t >= 1) { /* the exact one-step acceptance of the drafter's eps */
      acc += step_accept(sch, t, xb + (size_t)b * n, pb + (size_t)b * n, pr, m1, m2, n);
      na++;
    }
  }
  ts_tensor *S = ts_wrap(ctx, sb + (size_t)lo * n, 3, (int[]){ns, H, A}), *E = ts_wrap(ctx, eb + (size_t)lo * n, 3, (int[]){ns, H, A});
  ts_tensor *loss = ts_mse(ctx, ts_mul(ctx, pred, S), E);
  if (ns != B) loss = ts_scale(ctx, loss, ts_dp_weight(ns, B));
  if (isfinite(loss->data[0]) && isfinite(obj)) ts_backward(ctx, loss);
  m[0] += obj;
  m[1] += mse;
  m[2] += acc;
  m[3] += na;
  return loss->data[0];
}

int ts_distill(const ts_config *cfg, const ts_distill_opts *o, ts_distill_result *res) {
  distiller r;
  memset(&r, 0, sizeof r);
  memset(res, 0, sizeof *res);
  ts_distill_opts o_rank = *o; /* under MPI only rank 0 talks */
  o_rank.quiet |= ts_dist_rank() > 0;
  o = &o_rank;
  r.o = o;
  const int rank0 = ts_dist_rank() == 0;
  if (!o->base || !o->data || !o->out) return ts_fail("distill: no --base, --data or --out");
  if (ts_config_validate(cfg, "config")) return -1;
  const int threads = cfg->train.threads > 0 ? cfg->train.threads : ts_dist_default_threads();
  ts_set_threads(threads);
  if (setup(&r, cfg, o)) return fail_free(&r, NULL);
  ts_policy_set_threads(&r.base, threads);
  const ts_config *c = &r.cfg;
  ts_dp dp;
  if (ts_dp_init(&dp, c->train.grad_shards, r.net.params->t, r.net.params->n)) return fail_free(&r, NULL);
  const int B = c->train.batch_size, H = c->data.horizon, A = r.base.act_dim, cd = r.dcd, n = H * A;
  const long total = c->train.max_steps;
  /* the current log interval's loss and acceptance sums, steps and samples (train/run.h) */
  double part[4] = {0, 0, 0, 0};
  ts_run_spec spec = {.out = o->out,
                      .partial = part,
                      .n_partial = 4,
                      .config = r.cfg_text,
                      .may_change = may_change,
                      .tensors = r.named,
                      .n_tensors = r.n_named,
                      .rng = &r.rng,
                      .opt = r.opt,
                      .cols = cols,
                      .n_cols = NCOLS,
                      .total_steps = total,
                      .fresh = o->fresh,
                      .quiet = o->quiet};
  ts_run *run = NULL; /* rank 0's */
  int bad = 0, fill = 0;
  if (rank0) {
    bad = check_base(&r, o) || ts_run_open(&run, &spec);
    fill = o->fresh || access(o->out, F_OK) != 0;
  }
  if (ts_dp_agree(bad)) {
    ts_dp_free(&dp);
    return fail_free(&r, run);
  }
  /* The buffer's first fill, before the run's clock starts (its rate and ETA are the steps'),
   * unless there is a checkpoint to resume, which holds the buffer. */
  double t0 = ts_now();
  int filled = ts_dp_agree(fill);
  if (filled)
    for (int g = 0; g < r.G; g++) refresh(&r, &dp, g);
  long step = rank0 ? ts_run_resume(run) : 0;
  if (ts_dp_agree(step < 0)) {
    ts_dp_free(&dp);
    return fail_free(&r, run);
  }
  ts_dp_sync_state(r.named, r.n_named, r.opt, &r.rng, &step); /* with the buffer */
  ts_dist_bcast(part, (int64_t)sizeof part, 0);
  res->resumed_from = (int)step;
  if (step == 0 && !filled)
    for (int g = 0; g < r.G; g++) refresh(&r, &dp, g);
  if (!o->quiet)
    fprintf(stderr, "distill: drafter of %.3f M parameters (%s) for base %s (%.2f M, hash %s); buffer %d states from %d "
            "chains (%.1f s)%s\n", (double)ts_params_count(r.net.params) / 1e6, ts_model_type_names[c->model.type], o->base,
            (double)ts_params_count(r.base.model.params) / 1e6, r.base_hash, r.N, c->distill.buffer_chains, ts_now() - t0,
            step ? " (resumed)" : "");
  ts_ctx *ctx = ts_ctx_new(64 << 20);
  float *xb = malloc((size_t)B * n * sizeof(float)), *eb = malloc((size_t)B * n * sizeof(float));
  float *cb = malloc((size_t)B * cd * sizeof(float)), *tb = malloc((size_t)B * sizeof(float));
  float *sb = malloc((size_t)B * n * sizeof(float)), *m1 = malloc((size_t)n * sizeof(float));
  float *m2 = malloc((size_t)n * sizeof(float)), *pb = malloc((size_t)B * n * sizeof(float));
  if (!xb || !eb || !cb || !tb || !sb || !m1 || !m2 || !pb) abort();
  const ts_ddpm *sch = &r.base.sched;
  double t_steps = ts_now(), io = 0;
  double *loss_acc = &part[0], *acc_acc = &part[1], *log_n = &part[2], *log_samples = &part[3];
  long start_step = step;
  int rc = 0;
  long stop_at = o->stop_after > 0 && step + o->stop_after < total ? step + o->stop_after : total;
  for (; step < stop_at && !rc; step++) {
    if (step > 0 && step % c->distill.refresh_every == 0) refresh(&r, &dp, r.G - 1 + step / c->distill.refresh_every);
    int lo, hi;
    ts_dp_my_rows(&dp, B, &lo, &hi); /* every rank draws the whole batch and uses its rows */
    for (int b = 0; b < B; b++) {
      int64_t s;
      if (c->distill.t_max > 0) { /* a specialist: a chain (base or unrolled), then a step t < t_max of it */
        const int T = r.base.sched.T, tm = c->distill.t_max < T ? c->distill.t_max : T;
        int64_t chain = (int64_t)ts_rng_below(&r.rng, (uint32_t)(r.N / T));
        s = chain * T + (T - 1 - (int64_t)ts_rng_below(&r.rng, (uint32_t)tm));
      } else {
        s = (int64_t)ts_rng_below(&r.rng, (uint32_t)r.N);
      }
      if (b < lo || b >= hi) continue;
      memcpy(xb + (size_t)b * n, r.bx->data + s * n, (size_t)n * sizeof(float));
      memcpy(pb + (size_t)b * n, r.be->data + s * n, (size_t)n * sizeof(float));
      memcpy(cb + (size_t)b * cd, r.bc->data + s * cd, (size_t)cd * sizeof(float));
      tb[b] = r.bt->data[s];
      int t = (int)tb[b];
      /* u: the elements whose x0 (from the base's eps) is not clipped, kept in sb for now; a
       * clipped one gives the same mean for any eps past the clip (the eps term still pulls
       * the drafter there) */
      double sa = sqrt(sch->alphas_cumprod[t]), sq = sqrt(1.0 - sch->alphas_cumprod[t]);
      for (int i = 0; i < n; i++) {
        float x0 = (float)((xb[(size_t)b * n + i] - sq * pb[(size_t)b * n + i]) / sa);
        sb[(size_t)b * n + i] = !sch->clip_sample || (x0 > -1 && x0 < 1);
      }
    }
    /* This rank's shards one by one, then the sum over the ranks (train/parallel.h); the
     * objective, eps MSE and acceptance sums travel the same way. */
    double m[4] = {0, 0, 0, 0};
    ts_dp_begin(&dp);
    for (int s = dp.first; s < dp.first + dp.count; s++) {
      int slo, shi;
      ts_dp_rows(&dp, s, B, &slo, &shi);
      if (slo == shi) {
        ts_zero_grad(r.net.params->t, r.net.params->n);
        ts_dp_add(&dp, 0);
        continue;
      }
      ts_rng shard_rng, *drop = &r.rng;
      if (!ts_dp_legacy(&dp)) ts_dp_shard_rng(drop = &shard_rng, (uint64_t)c->train.seed, step, s);
      double l = shard_grads(&r, ctx, drop, slo, shi, B, xb, pb, cb, tb, sb, eb, m1, m2, m);
      ts_dp_add(&dp, l);
    }
    double loss = ts_dp_reduce(&dp);
    if (!ts_dp_legacy(&dp)) ts_dist_allreduce_sum_d(m, 4);
    double obj = (m[0] + c->distill.eps_weight * m[1]) / B;
    if (!isfinite(loss) || !isfinite(obj)) {
      rc = ts_fail("distillation diverged at step %ld (loss %g)", step, obj);
      break;
    }
    r.opt->lr = ts_lr_cosine((float)c->train.lr, step, c->train.warmup_steps, total);
    ts_adamw_step(r.opt);
    ts_ema_update(r.ema, r.net.params->t, step);
    *loss_acc += obj;
    *acc_acc += m[3] > 0 ? m[2] / m[3] : NAN;
    *log_n += 1;
    *log_samples += B;
    long done = step + 1;
    int last = done == stop_at;
    if (done % c->train.log_every == 0 || done == total) { /* a slice's sums between rows: checkpointed */
      double row[NCOLS] = {*loss_acc / *log_n, *acc_acc / *log_n, r.opt->lr, *log_samples};
      if (run) ts_run_log(run, done, row);
      res->final_loss = *loss_acc / *log_n;
      res->final_accept = *acc_acc / *log_n;
      *loss_acc = *acc_acc = *log_n = *log_samples = 0;
    } else if (last) res->final_loss = *loss_acc / *log_n, res->final_accept = *acc_acc / *log_n;
    if (done % c->train.checkpoint_every == 0 || last) {
      double tc = ts_now();
      rc = ts_dp_agree(run ? ts_run_checkpoint(run, done, write_extras, &r) : 0);
      io += ts_now() - tc;
    }
  }
  res->steps = step;
  double steps_s = ts_now() - t_steps - io;
  if (!rc && step == total) { /* rank 0 alone: it writes the plot, the other ranks wait for its verdict */
    int hrc = rank0 ? heldout(&r, res) : 0;
    rc = ts_dp_agree(hrc);
    if (!rc && !o->quiet) {
      double late = 0;
      int nl = 0;
      for (int t = 1; t < 10 && t < r.base.sched.T; t++, nl++) late += res->accept_t[t];
      if (c->distill.t_max > 0)
        fprintf(stderr, "distill: held-out predicted acceptance %.3f over 1 <= t < %d (%.3f at t = 1..9); %s.accept.png\n",
                res->heldout_accept, c->distill.t_max, nl ? late / nl : 0, o->out);
      else
        fprintf(stderr, "distill: held-out predicted acceptance %.3f over t >= 1 (%.3f at t = 1..9); %s.accept.png\n",
                res->heldout_accept, nl ? late / nl : 0, o->out);
    }
  }
  res->seconds = ts_now() - t0;
  res->samples_per_s = (double)(step - start_step) * B / (steps_s > 0 ? steps_s : 1);
  if (!o->quiet && !ts_dp_legacy(&dp)) {
    char line[256];
    ts_dp_report(&dp, steps_s, step - start_step, line, sizeof line);
    fprintf(stderr, "%s\n", line);
  }
  free(xb);
  free(eb);
  free(cb);
  free(tb);
  free(sb);
  free(m1);
  free(m2);
  free(pb);
  ts_ctx_free(ctx);
  ts_dp_free(&dp);
  ts_run_close(run);
  teardown(&r);
  return rc ? -1 : 0;
}
