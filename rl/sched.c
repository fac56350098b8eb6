/* sched.c: the scheduling problem's features, PPO training of the scheduler, loading.
 *
 * Training over MPI ranks (rl.chain_shards S, 0 = one per rank; like train.grad_shards, a
 * multiple of the rank count): the expensive part of an update is collecting its
 * chains_per_update speculative chains, and a chain's use of random numbers depends on its
 * accept / reject outcomes, so the one run stream cannot be shared out. With S = 1 on one rank
 * every chain draws from the run's stream, as always. Otherwise chain k of update u draws its
 * window, noise and actions from its own stream (ts_dp_shard_rng(seed, u, k)); the chains are
 * cut into S shards (ts_dist_split), rank r collects shards [r S/N, (r+1) S/N), and the ranks'
 * chains are gathered in chain order, so every rank holds the same rollout batch. Rank 0 then
 * runs the PPO update (small next to the chains) and ts_dp_sync_state hands the agent, its
 * AdamW state and the run stream (the update's shuffles) to every rank. Nothing depends on
 * where a chain ran: N ranks equal bit for bit one process with rl.chain_shards = N (or any
 * S > 1), and a checkpoint resumes on any rank count. The acceptance measurement at the start
 * and the plots at the end run on rank 0 (the measurement is broadcast); rank 0 alone logs
 * and writes checkpoints. */
#include "sched.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/timer.h"
#include "infer/drafter.h"
#include "infer/rollout.h"
#include "sim/pusht.h"
#include "train/parallel.h"
#include "train/plot.h"
#include "train/run.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ts_sched_features(const ts_round_state *st, float *f) {
  const ts_spec_round_info *pv = st->prev;
  f[0] = st->T > 1 ? (float)st->t / (st->T - 1) : 0;
  f[1] = (float)st->have_eps;
  f[2] = pv ? (float)pv->accepted : 0;
  f[3] = pv ? (float)pv->drafted : 0;
  f[4] = pv && pv->drafted > 0 && pv->accepted == pv->drafted;
  f[5] = pv ? (float)pv->max_delta : 0;
  f[6] = pv ? (float)pv->mean_delta : 0;
  f[7] = !pv;
  f[8] = (float)st->control_step;
  for (int i = 9; i < TS_SCHED_FEATURES; i++) f[i] = 0;
  int Od = st->obs_dim, No = Od > 0 ? st->cond_dim / Od : 0;
  if (!st->cond || Od < 2 || No < 1) return;
  const float *last = st->cond + (size_t)(No - 1) * Od;
  f[9] = last[Od - 2], f[10] = last[Od - 1];
  int pairs = (Od - 2) / 2;
  for (int k = 0; k < pairs; k++) f[11] += last[2 * k] / pairs, f[12] += last[2 * k + 1] / pairs;
  if (No >= 2) {
    const float *prev = last - Od;
    f[13] = last[Od - 2] - prev[Od - 2], f[14] = last[Od - 1] - prev[Od - 1];
  }
}

/* ---- rollouts ---- */

typedef struct {
  int n, cap, per;
  float *obs;
  int64_t *step, *ep;
} rec;

static int rec_chunk(void *user, int episode, int control_step, const float *w) {
  rec *r = user;
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 1024;
    r->obs = realloc(r->obs, (size_t)r->cap * r->per * sizeof(float));
    r->step = realloc(r->step, (size_t)r->cap * sizeof(int64_t));
    r->ep = realloc(r->ep, (size_t)r->cap * sizeof(int64_t));
    if (!r->obs || !r->step || !r->ep) abort();
  }
  memcpy(r->obs + (size_t)r->n * r->per, w, (size_t)r->per * sizeof(float));
  r->step[r->n] = control_step;
  r->ep[r->n] = episode;
  r->n++;
  return 0;
}

int ts_rollouts_record(ts_policy *p, const ts_sampler *s, const ts_eval_opts *o, const char *sampler_name,
                       const char *ckpt, const char *out, ts_eval_result *res) {
  rec r = {0, 0, p->cond_dim, NULL, NULL, NULL};
  ts_eval_opts eo = *o;
  eo.on_chunk = rec_chunk;
  eo.user = &r;
  ts_eval_result er;
  int rc = ts_eval_pusht(p, s, &eo, &er);
  if (!rc && r.n > 0) { /* episode-major order (the evaluation visits episodes in lockstep) */
    float *obs = malloc((size_t)r.n * r.per * sizeof(float));
    int64_t *st = malloc((size_t)r.n * sizeof(int64_t)), *ep = malloc((size_t)r.n * sizeof(int64_t));
    if (!obs || !st || !ep) abort();
    int k = 0;
    for (int e = 0; e < o->episodes; e++)
      for (int i = 0; i < r.n; i++)
        if (r.ep[i] == e) {
          memcpy(obs + (size_t)k * r.per, r.obs + (size_t)i * r.per, (size_t)r.per * sizeof(float));
          st[k] = r.step[i], ep[k++] = e;
        }
    free(r.obs), free(r.step), free(r.ep);
    r.obs = obs, r.step = st, r.ep = ep;
  }
  if (!rc) {
    ts_h5 *f = ts_h5_create(out);
    if (!f) rc = -1;
    else {
      int64_t *seed = malloc((size_t)(r.n ? r.n : 1) * sizeof(int64_t));
      if (!seed) abort();
      for (int i = 0; i < r.n; i++) seed[i] = o->seed_start + r.ep[i];
      rc = ts_h5_write_f32(f, "obs", r.obs, 2, (int64_t[]){r.n, r.per}) || ts_h5_write_i64(f, "control_step", r.step, 1, (int64_t[]){r.n}) ||
           ts_h5_write_i64(f, "episode", r.ep, 1, (int64_t[]){r.n}) || ts_h5_write_i64(f, "seed", seed, 1, (int64_t[]){r.n}) ||
           ts_h5_attr_str(f, "/", "ckpt", ckpt) || ts_h5_attr_str(f, "/", "sampler", sampler_name) ||
           ts_h5_attr_i64(f, "/", "seed_start", o->seed_start) || ts_h5_attr_i64(f, "/", "episodes", o->episodes) ||
           ts_h5_attr_f64(f, "/", "mean_score", er.mean_score);
      free(seed);
      if (rc) ts_h5_close(f);
      else rc = ts_h5_commit(f);
    }
  }
  if (res) *res = er;
  free(r.obs);
  free(r.step);
  free(r.ep);
  return rc ? -1 : 0;
}

int ts_rollouts_load(ts_rollouts *r, const char *path, const ts_policy *p) {
  memset(r, 0, sizeof *r);
  ts_h5 *f = ts_h5_open(path);
  if (!f) return -1;
  int nd, nd2, nd3;
  int64_t d[TS_MAXDIM], d2[TS_MAXDIM], d3[TS_MAXDIM];
  int rc = 0;
  if (!ts_h5_exists(f, "obs") || !ts_h5_exists(f, "control_step") || !ts_h5_exists(f, "episode")) {
    ts_h5_close(f);
    return ts_fail("%s: not a rollouts file (needs obs, control_step, episode; tsdp rl record writes one)", path);
  }
  r->obs = ts_h5_read_f32(f, "obs", &nd, d);
  int64_t *cs = ts_h5_read_i64(f, "control_step", &nd2, d2), *ep = ts_h5_read_i64(f, "episode", &nd3, d3);
  ts_h5_close(f);
  if (!r->obs || !cs || !ep) rc = -1;
  else if (nd != 2 || d[1] != p->cond_dim || nd2 != 1 || d2[0] != d[0] || nd3 != 1 || d3[0] != d[0] || d[0] < 1)
    rc = ts_fail("%s: obs must be (N, %d) with N >= 1 control_step and episode entries for this checkpoint", path, p->cond_dim);
  for (int64_t i = 0; !rc && i < d[0] * d[1]; i++) /* refused now, not as a NaN loss after the work */
    if (!isfinite(r->obs[i]))
      rc = ts_fail("%s: obs holds %s (window %lld, entry %lld)", path, isnan(r->obs[i]) ? "NaN" : "Inf", (long long)(i / d[1]),
                   (long long)(i % d[1]));
  if (!rc) {
    r->n = (int)d[0];
    r->cond_raw = p->cond_dim;
    r->control_step = malloc((size_t)r->n * sizeof(int));
    r->episode = malloc((size_t)r->n * sizeof(int));
    if (!r->control_step || !r->episode) abort();
    for (int i = 0; i < r->n; i++) r->control_step[i] = (int)cs[i], r->episode[i] = (int)ep[i];
  }
  free(cs);
  free(ep);
  if (rc) ts_rollouts_free(r);
  return rc;
}

void ts_rollouts_free(ts_rollouts *r) {
  free(r->obs);
  free(r->control_step);
  free(r->episode);
  memset(r, 0, sizeof *r);
}

/* ---- the learned scheduler ---- */

static int agent_block(void *self, const ts_round_state *st) {
  ts_sched_agent *a = self;
  float f[TS_SCHED_FEATURES];
  ts_sched_features(st, f);
  int k;
  ts_ppo_act(a->ppo, f, 1, NULL, &k, NULL, NULL);
  a->tol = a->tols && a->n_tol > 0 ? a->tols[k / a->n] : 0;
  return a->blocks[k % a->n];
}

static double agent_tol(void *self) { return ((ts_sched_agent *)self)->tol; }

/* A scheduler trained with rl.lossy is labelled LOSSY whatever its tolerances (one predicate
 * for every label: the file, eval, bench spec and the pipeline all go by rl.lossy). */
static int agent_lossy(const ts_sched_agent *a) { return a->tols && a->n_tol > 0; }

ts_block_sched ts_sched_agent_sched(ts_sched_agent *a) {
  if (agent_lossy(a)) return (ts_block_sched){.name = "rl-LOSSY", .block = agent_block, .self = a, .tolerance = agent_tol};
  return (ts_block_sched){.name = "rl", .block = agent_block, .self = a};
}

static ts_ppo_cfg ppo_cfg(const ts_config *c) {
  return (ts_ppo_cfg){.obs_dim = TS_SCHED_FEATURES, .n_actions = c->rl.n_blocks * (c->rl.lossy ? c->rl.n_tolerances : 1), .hidden = c->rl.hidden,
                      .layers = c->rl.layers, .lr = c->rl.lr, .clip = c->rl.clip, .gamma = c->rl.gamma,
                      .lam = c->rl.lam, .vf_coef = c->rl.vf_coef, .ent_coef = c->rl.ent_coef,
                      .max_grad_norm = c->rl.max_grad_norm, .epochs = c->rl.epochs, .minibatch = c->rl.minibatch};
}

/* ---- training ---- */

typedef struct {
  const ts_sched_train_opts *o;
  ts_config cfg;
  ts_policy base;
  ts_drafter_model dm;
  const ts_drafter *drafter;
  char base_hash[17], drafter_id[32];
  ts_cost_model cost;
  ts_rollouts ro;
  float *conds; /* (n, cond_dim) normalised */
  ts_spec *spec;
  ts_ppo ppo;
  ts_rng rng;
  char *cfg_text;
  ts_named *named;
  int n_named;
  ts_accept_table acc;
  double rate[TS_MAX_T];
  ts_block_table table;
  double static_ms, fixed_ms[8];
  int fixed_best;
} trainer;

enum { C_COST, C_RETURN, C_ENT, C_MEANL, C_ACCEPT, C_PG, C_VL, C_KL, C_RATE, C_SCORE, C_RELAXED, NC };
static const ts_run_col cols[NC] = {
  {"cost_ms", "%.4f", "cost %.1f ms/chunk", 1, 0, 0},
  {"return", "%.4f", NULL, 1, 0, 0},
  {"entropy", "%.4f", "entropy %.3f", 1, 0, 0},
  {"mean_L", "%.3f", "L %.2f", 1, 0, 0},
  {"accept", "%.4f", "accept %.3f", 0, 0, 0},
  {"pg_loss", "%.6g", NULL, 0, 0, 0},
  {"v_loss", "%.6g", NULL, 0, 0, 0},
  {"approx_kl", "%.6g", NULL, 0, 0, 0},
  {"chains_per_s", "%.2f", "| %.1f chains/s", 0, 1, 0},
  /* LOSSY mode only (NaN, an empty cell, in exact mode): the episodes' mean Push-T score, and
   * the fraction of accepted drafts kept only by the tolerance */
  {"score", "%.4f", "LOSSY score %.3f", 3, 0, 1},
  {"relaxed", "%.4f", "relaxed %.3f", 3, 0, 1},
};

/* rl.cost_model may be spelled another way on resume: the cost model's numbers, stored in the
 * checkpoint (sched/cost_target_ms, cost_drafter_ms), are what must match (same_cost). */
static const char *const may_change[] = {"rl.updates", "rl.log_every", "rl.checkpoint_every", "rl.chain_shards",
                                         "rl.cost_model", "train.threads", "eval.*", NULL};

static int write_extras(ts_h5 *f, void *user) {
  trainer *r = user;
  int T = r->base.sched.T;
  int64_t bl[8];
  for (int i = 0; i < r->cfg.rl.n_blocks; i++) bl[i] = r->cfg.rl.blocks[i];
  float *tab = malloc((size_t)2 * T * sizeof(float)), *acc = malloc((size_t)T * sizeof(float));
  if (!tab || !acc) abort();
  for (int h = 0; h < 2; h++)
    for (int t = 0; t < T; t++) tab[h * T + t] = r->table.L[h][t];
  for (int t = 0; t < T; t++) acc[t] = (float)r->rate[t];
  int rc = ts_h5_attr_str(f, "/", "kind", "block_scheduler") || ts_h5_attr_i64(f, "/", "lossy", r->cfg.rl.lossy) ||
           ts_h5_attr_str(f, "/", "base_hash", r->base_hash) ||
           ts_h5_attr_str(f, "/", "base_path", r->o->base) || ts_h5_attr_str(f, "/", "drafter", r->drafter_id) ||
           ts_h5_attr_i64(f, "/", "fixed_best", r->fixed_best) || ts_h5_attr_f64(f, "/", "static_expected_ms", r->static_ms) ||
           ts_h5_attr_f64(f, "/", "fixed_best_expected_ms", r->fixed_ms[0]) ||
           ts_h5_write_i64(f, "sched/blocks", bl, 1, (int64_t[]){r->cfg.rl.n_blocks}) ||
           ts_h5_write_f32(f, "sched/static_L", tab, 2, (int64_t[]){2, T}) ||
           ts_h5_write_f32(f, "sched/accept_t", acc, 1, (int64_t[]){T}) ||
           ts_h5_attr_f64(f, "/", "cost_drafter_ms", r->cost.drafter_ms);
  float cms[TS_COST_MAX_BATCH];
  for (int b = 1; b <= r->cost.n; b++) cms[b - 1] = (float)r->cost.target_ms[b];
  if (!rc) rc = ts_h5_write_f32(f, "sched/cost_target_ms", cms, 1, (int64_t[]){r->cost.n});
  free(tab);
  free(acc);
  return rc ? -1 : 0;
}

/* On resume: the checkpoint was trained with the cost model now named (the same numbers, to
 * float precision, whatever its path is spelled); one written before the numbers were stored
 * must name it the same way. */
static int same_cost(const trainer *r, const char *out) {
  ts_h5 *f = ts_h5_open(out);
  if (!f) return -1;
  int rc = 0;
  if (ts_h5_exists(f, "sched/cost_target_ms")) {
    int nd;
    int64_t d[TS_MAXDIM];
    float *x = ts_h5_read_f32(f, "sched/cost_target_ms", &nd, d);
    double dm = 0;
    if (!x || nd != 1 || ts_h5_get_attr_f64(f, "/", "cost_drafter_ms", &dm)) rc = -1;
    else if (d[0] != r->cost.n || (float)r->cost.drafter_ms != (float)dm)
      rc = ts_fail("%s: trained with another cost model than %s (%lld batches, drafter %.4g ms; now %d, %.4g ms); pass "
                   "--fresh to start over", out, r->cfg.rl.cost_model, (long long)d[0], dm, r->cost.n, r->cost.drafter_ms);
    for (int b = 1; !rc && b <= r->cost.n; b++)
      if ((float)r->cost.target_ms[b] != x[b - 1])
        rc = ts_fail("%s: trained with another cost model than %s (batch %d: %.4g ms then, %.4g ms now); pass --fresh to "
                     "start over", out, r->cfg.rl.cost_model, b, x[b - 1], r->cost.target_ms[b]);
    free(x);
  } else {
    char *txt = ts_h5_get_attr_str(f, "/", "config");
    ts_config sc;
    ts_config_defaults(&sc);
    if (!txt || ts_config_parse_string(&sc, txt, out)) rc = -1;
    else if (strcmp(sc.rl.cost_model, r->cfg.rl.cost_model))
      rc = ts_fail("%s [rl]: 'cost_model = %s' in the checkpoint, 'cost_model = %s' now", out, sc.rl.cost_model,
                   r->cfg.rl.cost_model);
    free(txt);
  }
  ts_h5_close(f);
  return rc;
}

static void teardown(trainer *r) {
  if (r->named) ts_named_free(r->named, r->n_named);
  ts_ppo_free(&r->ppo);
  ts_spec_free(r->spec);
  ts_rollouts_free(&r->ro);
  free(r->conds);
  free(r->cfg_text);
  ts_drafter_model_free(&r->dm);
  ts_policy_free(&r->base);
}

static int setup(trainer *r, const ts_config *cfg, const ts_sched_train_opts *o) {
  r->cfg = *cfg;
  ts_config *c = &r->cfg;
  if (!c->rl.cost_model[0]) return ts_fail("config: [rl] cost_model is empty (tsdp bench cost writes one)");
  if (ts_cost_load(&r->cost, c->rl.cost_model)) return -1;
  if (ts_policy_load(&r->base, o->base, "ema")) return -1;
  ts_hash_hex(ts_model_hash(&r->base.model), r->base_hash);
  snprintf(r->drafter_id, sizeof r->drafter_id, "frozen");
  if (o->drafter && strcmp(o->drafter, "frozen")) {
    if (ts_drafter_load(&r->dm, o->drafter, o->base, &r->base)) return -1;
    r->drafter = &r->dm.drafter;
    ts_hash_hex(ts_drafter_hash(&r->dm), r->drafter_id);
    ts_denoiser_reserve(r->dm.drafter.net, 1);
  }
  { /* the largest block's round: L drafts verified in L + 1 rows (L with the frozen drafter) */
    int maxL = 1;
    for (int i = 0; i < c->rl.n_blocks; i++) maxL = c->rl.blocks[i] > maxL ? c->rl.blocks[i] : maxL;
    const int need = maxL + (r->drafter ? 1 : 0);
    char why[96];
    snprintf(why, sizeof why, "rl.blocks' largest block L = %d (%s drafter)", maxL, r->drafter ? "learned" : "frozen");
    if (ts_cost_check_batch(&r->cost, c->rl.cost_model, need, why)) return -1;
  }
  /* The checkpoint's [data], [model] and [diffusion] are the base's. */
  c->data = r->base.cfg.data;
  c->model = r->base.cfg.model;
  c->diffusion = r->base.cfg.diffusion;
  if (c->rl.lossy && (c->rl.sim_seed_start < ts_pusht_seed_first ||
                      c->rl.sim_seed_start + c->rl.sim_seed_count > ts_pusht_seed_first + ts_pusht_seed_count))
    return ts_fail("config: [rl] sim_seed_start = %d, sim_seed_count = %d: the simulator resets only the legacy seeds %d..%d",
                   c->rl.sim_seed_start, c->rl.sim_seed_count, ts_pusht_seed_first,
                   ts_pusht_seed_first + ts_pusht_seed_count - 1);
  if (ts_rollouts_load(&r->ro, o->rollouts, &r->base)) return -1;
  r->conds = malloc((size_t)r->ro.n * r->base.cond_dim * sizeof(float));
  if (!r->conds) abort();
  memcpy(r->conds, r->ro.obs, (size_t)r->ro.n * r->base.cond_dim * sizeof(float));
  ts_norm_apply(&r->base.nobs, r->conds, (int64_t)r->ro.n * r->base.cfg.data.n_obs_steps);
  int maxL = c->rl.blocks[c->rl.n_blocks - 1] > c->rl.accept_block ? c->rl.blocks[c->rl.n_blocks - 1] : c->rl.accept_block;
  if (!(r->spec = ts_spec_new(&r->base.target, &r->base.sched, maxL))) return -1;
  ts_rng init;
  ts_rng_init_stream(&init, (uint64_t)c->rl.seed, 1);
  ts_ppo_cfg pc = ppo_cfg(c);
  if (ts_ppo_new(&r->ppo, &pc, &init)) return -1;
  r->named = ts_ppo_tensors(&r->ppo, &r->n_named);
  ts_rng_init_stream(&r->rng, (uint64_t)c->rl.seed, 2);
  r->cfg_text = ts_config_to_ini(c);
  return 0;
}

/* Per-step acceptance from accept_chains chains at accept_block on training windows (its own
 * random stream), then the DP's static schedule and each fixed L's expected cost. */
static void measure(trainer *r) {
  const ts_config *c = &r->cfg;
  int T = r->base.sched.T, frozen = !r->drafter;
  ts_rng g;
  ts_rng_init_stream(&g, (uint64_t)c->rl.seed, 3);
  memset(&r->acc, 0, sizeof r->acc);
  r->acc.T = T;
  for (int k = 0; k < c->rl.accept_chains; k++) {
    int w = (int)ts_rng_below(&g, (uint32_t)r->ro.n);
    ts_spec_begin(r->spec, r->conds + (size_t)w * r->base.cond_dim, &g);
    ts_spec_round_info in;
    while (ts_spec_round(r->spec, r->drafter, c->rl.accept_block, &g, &in) == 1) ts_accept_add(&r->acc, &in, frozen);
  }
  ts_accept_rates(&r->acc, r->rate);
  r->static_ms = ts_block_dp(r->rate, T, &r->cost, frozen, c->rl.blocks, c->rl.n_blocks, &r->table);
  double best = INFINITY;
  for (int i = 0; i < c->rl.n_blocks; i++) {
    ts_block_table ft = {.T = T};
    memset(ft.L, c->rl.blocks[i], sizeof ft.L);
    double v = ts_block_eval(r->rate, T, &r->cost, frozen, &ft);
    if (v < best) best = v, r->fixed_best = c->rl.blocks[i];
  }
  r->fixed_ms[0] = best;
}

typedef struct {
  float *obs, *logp, *val, *rew;
  int *act;
  unsigned char *done;
  int n, cap;
} batch;

static void state_of(trainer *r, int w, const ts_spec_round_info *prev, int round, ts_round_state *st) {
  *st = (ts_round_state){.t = ts_spec_t(r->spec), .T = r->base.sched.T, .have_eps = ts_spec_have_eps(r->spec),
                         .round = round, .max_block = ts_spec_max_block(r->spec),
                         .control_step = r->ro.control_step[w], .prev = prev,
                         .cond = r->conds + (size_t)w * r->base.cond_dim, .cond_dim = r->base.cond_dim,
                         .obs_dim = r->base.obs_dim};
}

/* One chain on window w with the stochastic policy drawing from g, its rounds appended to b.
 * Returns the chain's modelled cost (ms); *Lsum, *rounds, *acc, *dr for the log. */
static double episode(trainer *r, int w, ts_rng *g, batch *b, double *Lsum, long *rounds, long *acc, long *dr) {
  const ts_config *c = &r->cfg;
  double unit = r->static_ms, cost = 0;
  ts_spec_begin(r->spec, r->conds + (size_t)w * r->base.cond_dim, g);
  ts_spec_round_info prev;
  int round = 0, rc;
  do {
    ts_round_state st;
    state_of(r, w, round ? &prev : NULL, round, &st);
    int i = b->n++;
    float *f = b->obs + (size_t)i * TS_SCHED_FEATURES;
    ts_sched_features(&st, f);
    ts_ppo_act(&r->ppo, f, 0, g, &b->act[i], &b->logp[i], &b->val[i]);
    int L = c->rl.blocks[b->act[i]];
    rc = ts_spec_round(r->spec, r->drafter, L, g, &prev);
    double cr = ts_cost_round(&r->cost, &prev);
    cost += cr;
    b->rew[i] = (float)(-cr / unit);
    b->done[i] = rc != 1;
    *Lsum += L;
    (*rounds)++;
    *acc += prev.accepted;
    *dr += prev.accepted + (prev.accepted < prev.drafted); /* checked: acceptance = accepted / checked */
    round++;
  } while (rc == 1);
  return cost;
}

/* Greedy scheduler statistics for the plots: mean L by chain step over `chains` windows, and
 * per chunk of the first recorded episode its mean L and acceptance (accepted / checked).
 * OUT.L_t.png: the learned mean L and the static DP schedule by diffusion step;
 * OUT.episode.png: L (top) and the acceptance it met (bottom) along the episode. */
static int plots(trainer *r) {
  const ts_config *c = &r->cfg;
  int T = r->base.sched.T;
  ts_sched_agent ag = {&r->ppo, c->rl.blocks, c->rl.n_blocks, c->rl.lossy ? c->rl.tolerances : NULL,
                       c->rl.lossy ? c->rl.n_tolerances : 0, 0};
  const char *lossy = c->rl.lossy ? "LOSSY " : "";
  ts_rng g;
  ts_rng_init_stream(&g, (uint64_t)c->rl.seed, 4);
  double *ls = calloc((size_t)T, sizeof(double)), *ln = calloc((size_t)T, sizeof(double));
  double *tx = malloc((size_t)T * sizeof(double)), *sl = malloc((size_t)T * sizeof(double));
  int n0 = 0;
  while (n0 < r->ro.n && r->ro.episode[n0] == r->ro.episode[0]) n0++;
  double *ex = malloc((size_t)n0 * sizeof(double)), *eL = malloc((size_t)n0 * sizeof(double));
  double *eA = malloc((size_t)n0 * sizeof(double));
  if (!ls || !ln || !tx || !sl || !ex || !eL || !eA) abort();
  int chains = c->rl.accept_chains;
  for (int k = 0; k < chains + n0; k++) {
    int w = k < chains ? (int)ts_rng_below(&g, (uint32_t)r->ro.n) : k - chains;
    ts_spec_begin(r->spec, r->conds + (size_t)w * r->base.cond_dim, &g);
    ts_spec_round_info prev;
    int round = 0, rc;
    double Ls = 0, a = 0, d = 0;
    do {
      ts_round_state st;
      state_of(r, w, round ? &prev : NULL, round, &st);
      int L = agent_block(&ag, &st);
      int t = st.t;
      ts_spec_set_tolerance(r->spec, ag.tol);
      rc = ts_spec_round(r->spec, r->drafter, L, &g, &prev);
      ls[t] += L, ln[t] += 1;
      Ls += L, a += prev.accepted, d += prev.accepted + (prev.accepted < prev.drafted); /* checked */
      round++;
    } while (rc == 1);
    ts_spec_set_tolerance(r->spec, 0);
    if (k >= chains) {
      ex[k - chains] = r->ro.control_step[w];
      eL[k - chains] = Ls / round;
      eA[k - chains] = d > 0 ? a / d : 0;
    }
  }
  int m = 0;
  for (int t = 0; t < T; t++)
    if (ln[t] > 0) tx[m] = t, sl[m++] = ls[t] / ln[t];
  char path[1100], title[1200];
  const char *name = strrchr(r->o->out, '/') ? strrchr(r->o->out, '/') + 1 : r->o->out;
  int rc = 0;
  double *st = malloc((size_t)T * sizeof(double)), *sL = malloc((size_t)T * sizeof(double));
  if (!st || !sL) abort();
  for (int t = 0; t < T; t++) st[t] = t, sL[t] = r->table.L[0][t];
  ts_fig *f = ts_fig_new(900, 520, 1, 1);
  snprintf(title, sizeof title, "%sscheduler %s: draft length by diffusion step", lossy, name);
  ts_fig_title(f, title);
  ts_fig_axes(f, 0, "the chain runs from t = T-1 down to 0", "diffusion step t", "block length L (drafts per round)", 0);
  ts_fig_series(f, 0, "learned (greedy), mean over chains", tx, sl, NULL, m, TS_LINE | TS_MARKERS);
  ts_fig_series(f, 0, "static DP schedule L(t)", st, sL, NULL, T, TS_STEP);
  snprintf(path, sizeof path, "%s.L_t.png", r->o->out);
  rc |= ts_fig_save(f, path);
  ts_fig_free(f);
  if (n0 > 0) {
    f = ts_fig_new(900, 700, 2, 1);
    snprintf(title, sizeof title, "%sscheduler %s: first recorded episode (%d chunks, greedy choices)", lossy, name, n0);
    ts_fig_title(f, title);
    ts_fig_axes(f, 0, "mean block length per chunk", "control step in the episode (env steps)", "L (drafts per round)", 0);
    ts_fig_series(f, 0, "learned scheduler", ex, eL, NULL, n0, TS_LINE | TS_MARKERS);
    ts_fig_axes(f, 1, "acceptance met (accepted / checked drafts)", "control step in the episode (env steps)",
                "acceptance", 0);
    ts_fig_ylim(f, 1, 0, 1.02);
    ts_fig_series(f, 1, "learned scheduler", ex, eA, NULL, n0, TS_LINE | TS_MARKERS);
    snprintf(path, sizeof path, "%s.episode.png", r->o->out);
    rc |= ts_fig_save(f, path);
    ts_fig_free(f);
  }
  free(st), free(sL);
  free(ls), free(ln), free(tx), free(sl), free(ex), free(eL), free(eA);
  return rc ? -1 : 0;
}

static int fail_free(trainer *r, ts_run *run) {
  ts_run_close(run);
  teardown(r);
  return -1;
}

static void batch_alloc(batch *b, int cap) {
  b->obs = malloc((size_t)cap * TS_SCHED_FEATURES * sizeof(float));
  b->logp = malloc((size_t)cap * sizeof(float));
  b->val = malloc((size_t)cap * sizeof(float));
  b->rew = malloc((size_t)cap * sizeof(float));
  b->act = malloc((size_t)cap * sizeof(int));
  b->done = malloc((size_t)cap);
  if (!b->obs || !b->logp || !b->val || !b->rew || !b->act || !b->done) abort();
  b->n = 0;
  b->cap = cap;
}

/* Room for one more row (LOSSY episodes have no bound known in advance). */
static void batch_room(batch *b) {
  if (b->n < b->cap) return;
  int cap = 2 * b->cap;
  b->obs = realloc(b->obs, (size_t)cap * TS_SCHED_FEATURES * sizeof(float));
  b->logp = realloc(b->logp, (size_t)cap * sizeof(float));
  b->val = realloc(b->val, (size_t)cap * sizeof(float));
  b->rew = realloc(b->rew, (size_t)cap * sizeof(float));
  b->act = realloc(b->act, (size_t)cap * sizeof(int));
  b->done = realloc(b->done, (size_t)cap);
  if (!b->obs || !b->logp || !b->val || !b->rew || !b->act || !b->done) abort();
  b->cap = cap;
}

/* ---- LOSSY mode: closed-loop Push-T episodes with the stochastic scheduler in the loop ---- */

/* The scheduler the sampler calls during a collected episode: block() draws the action and
 * appends the round's row, after() writes the round's reward (its modelled cost). */
typedef struct {
  trainer *r;
  batch *b;
  ts_rng *g;
  int last;
  double tol, cost, Lsum;
  long rounds, acc, dr, relaxed;
} collector;

static int coll_block(void *self, const ts_round_state *st) {
  collector *c = self;
  batch *b = c->b;
  const int nb = c->r->cfg.rl.n_blocks;
  batch_room(b);
  int i = c->last = b->n++;
  float *f = b->obs + (size_t)i * TS_SCHED_FEATURES;
  ts_sched_features(st, f);
  ts_ppo_act(&c->r->ppo, f, 0, c->g, &b->act[i], &b->logp[i], &b->val[i]);
  b->rew[i] = 0, b->done[i] = 0;
  c->tol = c->r->cfg.rl.tolerances[b->act[i] / nb];
  int L = c->r->cfg.rl.blocks[b->act[i] % nb];
  c->Lsum += L, c->rounds++;
  return L;
}

static double coll_tol(void *self) { return ((collector *)self)->tol; }

static void coll_after(void *self, const ts_spec_round_info *in) {
  collector *c = self;
  double cr = ts_cost_round(&c->r->cost, in);
  c->cost += cr;
  c->b->rew[c->last] = (float)(-cr / c->r->static_ms);
  c->acc += in->accepted, c->relaxed += in->relaxed;
  c->dr += in->accepted + (in->accepted < in->drafted); /* checked */
}

/* Update `step`'s rl.sim_episodes episodes into b (one PPO episode each, its last round done
 * and rewarded with score_weight x score). Episode k is the run's j = step * sim_episodes + k:
 * Push-T seed sim_seed_start + j mod sim_seed_count; its actions and sampling noise from the stream ts_dp_shard_rng(seed, step,
 * k), so an update's batch depends on nothing but the agent and the step (bit-exact resume). */
static int collect_sim(trainer *r, long step, batch *b, collector *tot, double *score, long *chunks) {
  const ts_config *c = &r->cfg;
  int maxL = c->rl.blocks[c->rl.n_blocks - 1];
  b->n = 0;
  memset(tot, 0, sizeof *tot);
  *score = 0, *chunks = 0;
  for (int k = 0; k < c->rl.sim_episodes; k++) {
    ts_rng g;
    ts_dp_shard_rng(&g, (uint64_t)c->rl.seed, step, k);
    collector cl = {.r = r, .b = b, .g = &g};
    ts_block_sched bs = {.name = "rl-LOSSY (training)", .block = coll_block, .self = &cl, .tolerance = coll_tol,
                         .after = coll_after};
    ts_sampler smp = {.kind = TS_SAMPLER_SPEC, .steps = maxL, .drafter = r->drafter, .spec = r->spec, .blocks = &bs};
    uint64_t hi = ts_rng_u32(&g), lo = ts_rng_u32(&g);
    long j = step * c->rl.sim_episodes + k;
    ts_eval_opts eo = {.episodes = 1, .seed_start = c->rl.sim_seed_start + (int)(j % c->rl.sim_seed_count),
                       .seed = hi << 32 | lo, .quiet = 1};
    ts_eval_result er;
    int n0 = b->n;
    if (ts_eval_pusht(&r->base, &smp, &eo, &er)) return -1;
    if (b->n > n0) {
      b->done[b->n - 1] = 1;
      b->rew[b->n - 1] += (float)(c->rl.score_weight * er.scores[0]);
    }
    *score += er.scores[0], *chunks += er.chunks;
    tot->cost += cl.cost, tot->Lsum += cl.Lsum, tot->rounds += cl.rounds, tot->acc += cl.acc, tot->dr += cl.dr;
    tot->relaxed += cl.relaxed;
  }
  return 0;
}

static void batch_free(batch *b) { free(b->obs), free(b->logp), free(b->val), free(b->rew), free(b->act), free(b->done); }

/* One chain's log figures. */
typedef struct {
  double cost, Lsum;
  long rounds, acc, dr;
  int n; /* its rounds */
} chain_stat;

/* Rows [k0, k1) * per of each array of pb (chain k's rows start at k * per), sent by `root`. */
static void bcast_rows(batch *pb, int64_t k0, int64_t k1, int per, int root) {
  int64_t r0 = k0 * per, rows = (k1 - k0) * per;
  if (rows <= 0) return;
  ts_dist_bcast(pb->obs + r0 * TS_SCHED_FEATURES, rows * TS_SCHED_FEATURES * (int64_t)sizeof(float), root);
  ts_dist_bcast(pb->logp + r0, rows * (int64_t)sizeof(float), root);
  ts_dist_bcast(pb->val + r0, rows * (int64_t)sizeof(float), root);
  ts_dist_bcast(pb->rew + r0, rows * (int64_t)sizeof(float), root);
  ts_dist_bcast(pb->act + r0, rows * (int64_t)sizeof(int), root);
  ts_dist_bcast(pb->done + r0, rows, root);
}

/* Update `step`'s chains on their own streams (sched.c's header): this rank's shards of chains
 * into pb (chain k's rounds at rows k * per, per = T + 1) and st[k], the other ranks' chains
 * received, then every chain's rounds in chain order into b. */
static void collect_sharded(trainer *r, const ts_dp *dp, long step, int per, batch *pb, chain_stat *st, batch *b) {
  const int K = r->cfg.rl.chains_per_update;
  for (int q = 0; q < dp->size; q++) { /* rank q's chains: its shards' */
    int64_t k0, k1, a, e;
    ts_dist_split(K, q * dp->count, dp->shards, &k0, &e);
    ts_dist_split(K, q * dp->count + dp->count - 1, dp->shards, &a, &k1);
    if (q == dp->rank)
      for (int64_t k = k0; k < k1; k++) {
        ts_rng g;
        ts_dp_shard_rng(&g, (uint64_t)r->cfg.rl.seed, step, (int)k);
        chain_stat *cs = &st[k];
        memset(cs, 0, sizeof *cs);
        pb->n = (int)(k * per);
        int w = (int)ts_rng_below(&g, (uint32_t)r->ro.n);
        cs->cost = episode(r, w, &g, pb, &cs->Lsum, &cs->rounds, &cs->acc, &cs->dr);
        cs->n = pb->n - (int)(k * per);
      }
    if (dp->size > 1 && k1 > k0) {
      ts_dist_bcast(st + k0, (k1 - k0) * (int64_t)sizeof *st, q);
      bcast_rows(pb, k0, k1, per, q);
    }
  }
  b->n = 0;
  for (int k = 0; k < K; k++) {
    size_t src = (size_t)k * per, dst = (size_t)b->n, m = (size_t)st[k].n;
    memcpy(b->obs + dst * TS_SCHED_FEATURES, pb->obs + src * TS_SCHED_FEATURES, m * TS_SCHED_FEATURES * sizeof(float));
    memcpy(b->logp + dst, pb->logp + src, m * sizeof(float));
    memcpy(b->val + dst, pb->val + src, m * sizeof(float));
    memcpy(b->rew + dst, pb->rew + src, m * sizeof(float));
    memcpy(b->act + dst, pb->act + src, m * sizeof(int));
    memcpy(b->done + dst, pb->done + src, m);
    b->n += (int)m;
  }
}

int ts_sched_train(const ts_config *cfg, const ts_sched_train_opts *o, ts_sched_train_result *res) {
  trainer r;
  memset(&r, 0, sizeof r);
  memset(res, 0, sizeof *res);
  ts_sched_train_opts o_rank = *o; /* under MPI only rank 0 talks */
  o_rank.quiet |= ts_dist_rank() > 0;
  o = &o_rank;
  r.o = o;
  const int rank0 = ts_dist_rank() == 0;
  if (!o->base || !o->rollouts || !o->out) return ts_fail("rl train: no --ckpt, --rollouts or --out");
  if (ts_config_validate(cfg, "config")) return -1;
  if (setup(&r, cfg, o)) return fail_free(&r, NULL);
  const ts_config *c = &r.cfg;
  /* the chain shards, as train.grad_shards' (no gradient is summed: ts_dp is only their split) */
  ts_dp dp;
  if (ts_dp_init(&dp, c->rl.chain_shards, NULL, 0)) {
    ts_fail("rl.chain_shards = %d is not a multiple of the %d ranks", dp.shards, dp.size);
    return fail_free(&r, NULL);
  }
  if (c->rl.lossy && !ts_dp_legacy(&dp)) {
    ts_dp_free(&dp);
    ts_fail("rl.lossy: the LOSSY mode's simulator episodes run on one process (rl.chain_shards = 1, no mpirun)");
    return fail_free(&r, NULL);
  }
  double t0 = ts_now();
  if (rank0) measure(&r);
  if (ts_dist_size() > 1) { /* rank 0's measurement to every rank */
    ts_dist_bcast(r.rate, sizeof r.rate, 0);
    ts_dist_bcast(&r.table, sizeof r.table, 0);
    ts_dist_bcast(&r.static_ms, sizeof r.static_ms, 0);
    ts_dist_bcast(r.fixed_ms, sizeof r.fixed_ms, 0);
    ts_dist_bcast(&r.fixed_best, sizeof r.fixed_best, 0);
  }
  res->static_ms = r.static_ms;
  res->fixed_best_ms = r.fixed_ms[0];
  res->fixed_best = r.fixed_best;
  if (!o->quiet && c->rl.lossy) {
    char tl[200] = "";
    for (int i = 0; i < c->rl.n_tolerances; i++)
      snprintf(tl + strlen(tl), sizeof tl - strlen(tl), "%s%g", i ? ", " : "", c->rl.tolerances[i]);
    fprintf(stderr, "rl train: LOSSY relaxed mode: tolerances {%s} in the action, %g x the Push-T score in the reward, "
            "%d closed-loop episode(s) per update from seed %d; its samples do not follow DDPM's law\n", tl,
            c->rl.score_weight, c->rl.sim_episodes, c->rl.sim_seed_start);
  }
  if (!o->quiet)
    fprintf(stderr, "rl train: %d windows from %d episodes, drafter %s; per-step acceptance from %d chains at L = %d "
            "(%.1f s): static schedule %.1f ms/chunk expected, best fixed L = %d %.1f ms/chunk\n", r.ro.n,
            r.ro.episode[r.ro.n - 1] + 1, r.drafter_id, c->rl.accept_chains, c->rl.accept_block, ts_now() - t0,
            r.static_ms, r.fixed_best, r.fixed_ms[0]);
  /* the current log interval's sums and counts (train/run.h): checkpointed with the run */
  double part[12] = {0};
  ts_run_col colv[NC]; /* the LOSSY columns are shown and plotted in lossy mode only */
  memcpy(colv, cols, sizeof colv);
  if (!c->rl.lossy) colv[C_SCORE].show = colv[C_RELAXED].show = NULL, colv[C_SCORE].plot = colv[C_RELAXED].plot = 0;
  ts_run_spec spec = {.out = o->out, .config = r.cfg_text, .partial = part, .n_partial = 12, .may_change = may_change, .tensors = r.named,
                      .n_tensors = r.n_named, .rng = &r.rng, .opt = r.ppo.opt, .cols = colv, .n_cols = NC,
                      .total_steps = c->rl.updates, .fresh = o->fresh, .quiet = o->quiet,
                      .title_prefix = c->rl.lossy ? "LOSSY " : NULL};
  ts_run *run = NULL; /* rank 0's */
  long step = rank0 ? (ts_run_open(&run, &spec) ? -1 : ts_run_resume(run)) : 0;
  if (rank0 && step > 0 && same_cost(&r, o->out)) step = -1;
  if (ts_dp_agree(step < 0)) {
    ts_dp_free(&dp);
    return fail_free(&r, run);
  }
  ts_dp_sync_state(r.named, r.n_named, r.ppo.opt, &r.rng, &step);
  ts_dist_bcast(part, (int64_t)sizeof part, 0);
  res->resumed_from = (int)step;
  int T = r.base.sched.T, per = T + 1, K = c->rl.chains_per_update, cap = K * per;
  batch b, pb = {0};
  batch_alloc(&b, cap);
  chain_stat *st = NULL;
  if (!ts_dp_legacy(&dp)) {
    batch_alloc(&pb, cap); /* zeroed: the unused rows of a chain's slot travel too */
    memset(pb.obs, 0, (size_t)cap * TS_SCHED_FEATURES * sizeof(float));
    memset(pb.logp, 0, (size_t)cap * sizeof(float)), memset(pb.val, 0, (size_t)cap * sizeof(float));
    memset(pb.rew, 0, (size_t)cap * sizeof(float)), memset(pb.act, 0, (size_t)cap * sizeof(int)), memset(pb.done, 0, (size_t)cap);
    if (!(st = calloc((size_t)K, sizeof *st))) abort();
  }
  double *lc = &part[0], *lret = &part[1], *lent = &part[2], *lL = &part[3], *lacc = &part[4], *lpg = &part[5],
         *lvl = &part[6], *lkl = &part[7], *ln = &part[8], *lch = &part[9], *lsc = &part[10], *lrx = &part[11];
  int rc = 0;
  long stop_at = o->stop_after > 0 && step + o->stop_after < c->rl.updates ? step + o->stop_after : c->rl.updates;
  for (; step < stop_at && !rc; step++) {
    b.n = 0;
    double cost = 0, Lsum = 0, score = 0;
    long rounds = 0, acc = 0, dr = 0, relaxed = 0, chunks = K;
    if (c->rl.lossy) { /* closed-loop episodes: cost per chunk over their chunks, return per episode */
      collector tot;
      if ((rc = collect_sim(&r, step, &b, &tot, &score, &chunks))) break;
      cost = tot.cost, Lsum = tot.Lsum, rounds = tot.rounds, acc = tot.acc, dr = tot.dr, relaxed = tot.relaxed;
    } else if (ts_dp_legacy(&dp)) {
      for (int k = 0; k < K; k++)
        cost += episode(&r, (int)ts_rng_below(&r.rng, (uint32_t)r.ro.n), &r.rng, &b, &Lsum, &rounds, &acc, &dr);
    } else {
      collect_sharded(&r, &dp, step, per, &pb, st, &b);
      for (int k = 0; k < K; k++)
        cost += st[k].cost, Lsum += st[k].Lsum, rounds += st[k].rounds, acc += st[k].acc, dr += st[k].dr;
    }
    double ret = 0;
    const int eps = c->rl.lossy ? c->rl.sim_episodes : K; /* PPO episodes in the batch */
    for (int i = 0; i < b.n; i++) ret += b.rew[i];
    /* The update on rank 0 (every rank holds the batch), its result sent to every rank. */
    ts_ppo_stats ps = {0};
    int urc = rank0 ? ts_ppo_update(&r.ppo, b.obs, b.act, b.logp, b.val, b.rew, b.done, b.n, 0, &r.rng, &ps) : 0;
    if ((rc = ts_dp_agree(urc))) break;
    ts_dp_sync_state(r.named, r.n_named, r.ppo.opt, &r.rng, &step);
    *lc += cost / (chunks > 0 ? chunks : 1), *lret += ret / eps, *lent += ps.entropy, *lL += Lsum / rounds;
    *lacc += dr ? (double)acc / dr : 0;
    *lpg += ps.pg_loss, *lvl += ps.v_loss, *lkl += ps.approx_kl;
    *ln += 1, *lch += chunks;
    *lsc += score / eps, *lrx += acc ? (double)relaxed / acc : 0;
    long done = step + 1;
    int last = done == stop_at;
    if (done % c->rl.log_every == 0 || done == c->rl.updates || last) {
      res->final_cost_ms = *lc / *ln, res->final_mean_L = *lL / *ln, res->final_entropy = *lent / *ln;
      res->final_score = c->rl.lossy ? *lsc / *ln : NAN;
    }
    if (done % c->rl.log_every == 0 || done == c->rl.updates) { /* a slice's sums between rows: checkpointed */
      double row[NC] = {*lc / *ln, *lret / *ln, *lent / *ln, *lL / *ln, *lacc / *ln, *lpg / *ln, *lvl / *ln, *lkl / *ln, *lch,
                        c->rl.lossy ? *lsc / *ln : NAN, c->rl.lossy ? *lrx / *ln : NAN};
      if (run) ts_run_log(run, done, row);
      for (int i = 0; i < 12; i++) part[i] = 0;
    }
    if (done % c->rl.checkpoint_every == 0 || last) rc = ts_dp_agree(run ? ts_run_checkpoint(run, done, write_extras, &r) : 0);
  }
  res->updates = step;
  if (run && step == res->resumed_from && ts_run_rows(run) > 0) { /* nothing left to do: the last logged row */
    const double *row = ts_run_row(run, ts_run_rows(run) - 1);
    res->final_cost_ms = row[1 + C_COST], res->final_mean_L = row[1 + C_MEANL], res->final_entropy = row[1 + C_ENT];
    res->final_score = row[1 + C_SCORE];
  }
  if (!rc && step == c->rl.updates) rc = ts_dp_agree(rank0 ? plots(&r) : 0);
  res->seconds = ts_now() - t0;
  batch_free(&b);
  if (st) batch_free(&pb);
  free(st);
  ts_dp_free(&dp);
  ts_run_close(run);
  teardown(&r);
  return rc ? -1 : 0;
}

/* ---- loading ---- */

int ts_sched_load(ts_sched_model *m, const char *path, const ts_policy *base, const char *drafter_id) {
  memset(m, 0, sizeof *m);
  ts_h5 *f = ts_h5_open(path);
  if (!f) return -1;
  char *kind = ts_h5_get_attr_str(f, "/", "kind"), *cfgtxt = NULL, *bh = NULL, *dr = NULL;
  int rc = 0;
  if (!kind || strcmp(kind, "block_scheduler")) rc = ts_fail("%s: not a block scheduler (tsdp rl train writes one)", path);
  if (!rc) {
    cfgtxt = ts_h5_get_attr_str(f, "/", "config");
    bh = ts_h5_get_attr_str(f, "/", "base_hash");
    dr = ts_h5_get_attr_str(f, "/", "drafter");
    ts_config_defaults(&m->cfg);
    if (!cfgtxt || !bh || !dr) rc = ts_fail("%s: a scheduler without config, base_hash or drafter", path);
    else if (ts_config_parse_string(&m->cfg, cfgtxt, path)) rc = -1;
  }
  if (!rc) {
    char have[17];
    ts_hash_hex(ts_model_hash(&base->model), have);
    snprintf(m->drafter, sizeof m->drafter, "%s", dr);
    if (strcmp(have, bh)) rc = ts_fail("%s: trained for base hash %s, the loaded base is %s", path, bh, have);
    else if (drafter_id && strcmp(drafter_id, dr))
      rc = ts_fail("%s: trained with drafter %s, not with %s", path, dr, drafter_id);
  }
  int64_t fb = 0;
  if (!rc) {
    ts_rng init;
    ts_rng_init(&init, 0);
    ts_ppo_cfg pc = ppo_cfg(&m->cfg);
    rc = ts_ppo_new(&m->ppo, &pc, &init);
  }
  if (!rc) {
    int n;
    ts_named *nm = ts_ppo_tensors(&m->ppo, &n);
    rc = ts_ckpt_read(f, nm, n, NULL, NULL);
    ts_named_free(nm, n);
  }
  int T = base->sched.T;
  if (!rc) {
    int nd;
    int64_t d[TS_MAXDIM];
    float *tab = ts_h5_read_f32(f, "sched/static_L", &nd, d);
    float *acc = ts_h5_read_f32(f, "sched/accept_t", &nd, d);
    if (!tab || !acc || ts_h5_get_attr_i64(f, "/", "fixed_best", &fb)) rc = -1;
    else if (d[0] != T) rc = ts_fail("%s: accept_t has %lld steps, the base %d", path, (long long)d[0], T);
    else {
      m->table.T = T;
      for (int t = 0; t < T; t++) {
        m->table.L[0][t] = (unsigned char)tab[t];
        m->table.L[1][t] = (unsigned char)tab[T + t];
        m->accept_t[t] = acc[t];
      }
    }
    free(tab);
    free(acc);
  }
  ts_h5_close(f);
  free(kind), free(cfgtxt), free(bh), free(dr);
  if (rc) {
    ts_sched_model_free(m);
    return -1;
  }
  m->fixed_best = (int)fb;
  m->lossy = m->cfg.rl.lossy;
  m->agent = (ts_sched_agent){&m->ppo, m->cfg.rl.blocks, m->cfg.rl.n_blocks, m->lossy ? m->cfg.rl.tolerances : NULL,
                              m->lossy ? m->cfg.rl.n_tolerances : 0, 0};
  m->learned = ts_sched_agent_sched(&m->agent);
  m->stat = ts_block_table_sched(&m->table);
  m->fixed = ts_block_fixed(&m->fixed_best);
  return 0;
}

void ts_sched_model_free(ts_sched_model *m) {
  ts_ppo_free(&m->ppo);
  memset(m, 0, sizeof *m);
}
