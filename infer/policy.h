/* policy.h: the inference side every sampler shares: a trained checkpoint (EMA weights,
 * normalisers, config), batched noise-prediction calls, DDPM / DDIM chunk sampling, and the
 * observation / action queues of the policy loop (REFERENCE.md §3). After the first call
 * of a given batch size, sampling allocates nothing (the engine's buffers are reused). */
#ifndef TS_POLICY_H
#define TS_POLICY_H

#include "core/config.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "infer/scheduler.h"
#include "nn/unet1d.h"
#include "nn/unet_plan.h"

/* Speculative sampling counters (infer/spec.h): sequential target calls, drafts, acceptances. */
typedef struct ts_spec_stats {
  long chunks, target_calls, drafted, accepted, rounds;
} ts_spec_stats;

typedef struct ts_policy {
  ts_config cfg;
  ts_unet *net;
  ts_unet_plan *plan; /* the inference engine every sampler calls (packed copy of net) */
  ts_normalizer nobs, nact;
  ts_ddpm sched;
  ts_ctx *ctx;        /* arena of the autograd reference path, made on first use */
  int obs_dim, act_dim, cond_dim, horizon;
  long nfe; /* network evaluations (batched calls) made so far */
  int use_tape; /* 1: ts_policy_eps goes through the autograd forward (reference, slow) */
  float *buf_x, *buf_eps, *buf_mean, *buf_z; /* (max_batch, horizon, act_dim) work buffers */
  float *buf_t, *buf_cond;
  int *buf_tb;
  int max_batch;
  float *spec_buf; /* speculative sampler's work space (infer/spec.c) */
  size_t spec_cap;
  ts_spec_stats spec; /* accumulated over every "spec" sampling call */
} ts_policy;

ts_unet_cfg ts_unet_cfg_from(const ts_config *c, int act_dim, int obs_dim);

/* Load a tsdp checkpoint; group "ema" (default for inference) or "model". */
int ts_policy_load(ts_policy *p, const char *path, const char *group);
void ts_policy_free(ts_policy *p);
/* Reserve work buffers for batches up to B (called automatically). */
void ts_policy_reserve(ts_policy *p, int B);
/* Worker threads of the inference engine (default 1). */
void ts_policy_set_threads(ts_policy *p, int n);
/* The observation queue of the policy loop: append obs (obs_dim raw values) to hist
 * (n_obs_steps, obs_dim), dropping the oldest; first = 1 fills every slot with obs (a reset). */
void ts_policy_push_obs(const ts_policy *p, float *hist, const float *obs, int first);
/* Normalised obs history (B, n_obs_steps, obs_dim) raw -> cond (B, cond_dim). */
void ts_policy_make_cond(const ts_policy *p, const float *obs_raw, int B, float *cond);
/* One batched network call: x (B, horizon, act_dim), t (B) integer steps, cond (B, cond_dim)
 * -> eps (B, horizon, act_dim). */
void ts_policy_eps(ts_policy *p, const float *x, const int *t, const float *cond, int B, float *eps);
/* The same call through the autograd tape (ts_unet_forward): the reference the engine is
 * tested against, and the "before" of its benchmark. */
void ts_policy_eps_tape(ts_policy *p, const float *x, const int *t, const float *cond, int B, float *eps);
/* Draw B action chunks (unnormalised, (B, horizon, act_dim)) for raw obs histories.
 * sampler "ddpm" (all train steps), "ddim" with `steps` inference steps, or "spec": exact
 * speculative DDPM with the frozen-target drafter and `steps` drafted steps per round
 * (infer/spec.h; counters in p->spec). */
int ts_policy_sample(ts_policy *p, const float *obs_raw, int B, const char *sampler, int steps, ts_rng *rng,
                     float *actions);

#endif
