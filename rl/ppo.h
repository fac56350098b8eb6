/* ppo.h: proximal policy optimisation (docs/math.md §7) on the autograd core, for small
 * discrete-action problems such as the speculative block scheduler (rl/sched.h).
 *
 * The agent is one parameter set (so one AdamW, and one checkpoint list, fit train/run.h):
 *   actor.<l>.weight/bias   MLP obs -> hidden (tanh) x layers -> n_actions logits
 *   critic.<l>.weight/bias  MLP obs -> hidden (tanh) x layers -> 1 value
 * Both read the observation normalised by a running mean / variance (obs_mean, obs_var,
 * obs_count) and clipped to [-5, 5]; the statistics stay fixed while a batch is collected and
 * its update runs (so the update sees the inputs the actions were drawn from), and the batch
 * is merged into them after the update. Those three are tensors outside the parameter set,
 * saved beside it (ts_ppo_tensors).
 *
 * A rollout batch is a flat buffer of N steps from any number of episodes in order: obs, the
 * action taken, its log-probability and the critic's value when it was taken, the reward, and
 * done = 1 when the episode ended after the step (its next value is 0; a batch that stops in
 * the middle of an episode bootstraps from last_value). ts_ppo_update computes GAE, normalises
 * the advantages over the batch, and runs `epochs` passes of shuffled minibatches of
 *   loss = clipped surrogate + vf_coef * MSE(value, return) - ent_coef * mean entropy
 * with gradient-norm clipping. All randomness (initialisation, action sampling, shuffles)
 * comes from the caller's ts_rng, so a run with the same seed is the same run. */
#ifndef TS_PPO_H
#define TS_PPO_H

#include "core/checkpoint.h"
#include "core/optim.h"
#include "core/params.h"
#include "core/rng.h"
#include "core/tensor.h"

#define TS_PPO_MAX_LAYERS 4

typedef struct ts_ppo_cfg {
  int obs_dim, n_actions, hidden, layers; /* layers: hidden layers per network, 1..TS_PPO_MAX_LAYERS */
  double lr, clip, gamma, lam, vf_coef, ent_coef, max_grad_norm;
  int epochs, minibatch;
} ts_ppo_cfg;

typedef struct ts_ppo {
  ts_ppo_cfg cfg;
  ts_params params;   /* actor then critic */
  ts_tensor *aw[TS_PPO_MAX_LAYERS + 1], *ab[TS_PPO_MAX_LAYERS + 1];
  ts_tensor *cw[TS_PPO_MAX_LAYERS + 1], *cb[TS_PPO_MAX_LAYERS + 1];
  ts_tensor *obs_mean, *obs_var, *obs_count; /* (obs_dim), (obs_dim), (1) */
  ts_adamw *opt;
  ts_ctx *ctx;        /* forward / backward arena */
  float *nbuf;        /* normalised observations, work space */
  int nbuf_rows;
} ts_ppo;

/* What one update did (means over its minibatch steps). */
typedef struct ts_ppo_stats {
  double pg_loss, v_loss, entropy, approx_kl, clip_frac, grad_norm;
} ts_ppo_stats;

/* Builds the networks (PyTorch's default Linear init, the policy's last layer scaled by 0.01
 * so the first policy is near uniform) from rng. -1 with a message on bad sizes. */
int ts_ppo_new(ts_ppo *a, const ts_ppo_cfg *cfg, ts_rng *rng);
void ts_ppo_free(ts_ppo *a);
/* The checkpoint list: ppo/<param> for each parameter (in order, matching a->opt), then
 * ppo/obs_mean, ppo/obs_var, ppo/obs_count. Free with ts_named_free(list, *n). */
ts_named *ts_ppo_tensors(const ts_ppo *a, int *n);

/* Merge n raw observations into the running mean / variance (parallel-variance update). */
void ts_ppo_norm_update(ts_ppo *a, const float *obs, int n);
/* Raw obs (n, obs_dim) -> normalised and clipped, into out. */
void ts_ppo_normalize(const ts_ppo *a, const float *obs, int n, float *out);

/* One observation: *action sampled from the policy (greedy: its most probable action), with
 * its log-probability and the critic's value. No gradient recorded. */
void ts_ppo_act(ts_ppo *a, const float *obs, int greedy, ts_rng *rng, int *action, float *logp, float *value);
/* The policy's probabilities (n_actions) at one observation. */
void ts_ppo_probs(ts_ppo *a, const float *obs, float *probs);

/* GAE(gamma, lambda) over a flat buffer of n steps: delta_i = r_i + gamma (1 - done_i) v_{i+1}
 * - v_i with v_n = last_value, adv_i = delta_i + gamma lambda (1 - done_i) adv_{i+1}, and
 * ret_i = adv_i + v_i. */
void ts_gae(const float *rew, const float *val, const unsigned char *done, int n, float last_value, double gamma,
            double lam, float *adv, float *ret);

/* The clipped surrogate as a differentiable op on logp (B): with r_b = exp(logp_b - old_b),
 *   L = -mean_b min(r_b A_b, clamp(r_b, 1 - eps, 1 + eps) A_b),
 * dL/dlogp_b = -r_b A_b / B where the unclipped term is the minimum (strictly inside the clip
 * range, or outside it on the side that lowers the objective), else 0. Shape (1). */
ts_tensor *ts_ppo_clip_loss(ts_ctx *c, ts_tensor *logp, const float *old_logp, const float *adv, float eps);

/* One PPO update on a rollout batch (obs raw, (n, obs_dim)); the batch's observations are
 * merged into the running normaliser afterwards. stats may be NULL. */
int ts_ppo_update(ts_ppo *a, const float *obs, const int *act, const float *logp, const float *val, const float *rew,
                  const unsigned char *done, int n, float last_value, ts_rng *rng, ts_ppo_stats *stats);

#endif
