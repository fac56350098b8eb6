/* policy.h: the inference side every sampler shares: a trained checkpoint (EMA weights,
 * normalisers, config), its denoisers (infer/denoiser.h), DDPM / DDIM / speculative chunk
 * sampling, and the observation / action queues of the policy loop (docs/math.md §3).
 *
 * The policy owns the model it loaded (cfg.model.type picks the ConditionalUnet1D or the
 * TransformerForDiffusion, nn/model.h) and two denoisers reading it: `target`, the fast inference path every sampler calls by
 * default, and `reference`, the same function through the autograd forward (tests and
 * benchmarks; its arena is made on first use). A new model type is one denoiser constructor and
 * one branch in ts_policy_load. After ts_policy_reserve(B) (or the first call of batch B),
 * DDPM / DDIM sampling allocates nothing. */
#ifndef TS_POLICY_H
#define TS_POLICY_H

#include "core/config.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "infer/denoiser.h"
#include "infer/scheduler.h"
#include "infer/spec.h"
#include "nn/model.h"

typedef struct ts_policy {
  ts_config cfg;
  ts_denoiser target;    /* what the samplers call: the model's inference engine */
  ts_denoiser reference; /* the autograd forward of the same model (its arena made on first use) */
  ts_model model;        /* the network cfg.model.type names, owned */
  ts_normalizer nobs, nact;
  ts_ddpm sched;
  int obs_dim, act_dim, cond_dim, horizon;
  int threads; /* the target's worker threads (ts_policy_set_threads; 1 after load) */
  float *buf_x, *buf_eps, *buf_mean, *buf_z, *buf_cond; /* (max_batch, ...) sampler work buffers */
  int *buf_tb;
  int max_batch;
} ts_policy;

/* How to draw a chunk: parsed once (ts_enum_parse on ts_sampler_names) by whoever reads the
 * user's choice, then passed down. Designated initialisers keep it short:
 * (ts_sampler){.kind = TS_SAMPLER_DDIM, .steps = 10}, (ts_sampler){.kind = TS_SAMPLER_SPEC, .steps = 4}. */
typedef struct ts_sampler {
  ts_sampler_kind kind;
  int steps;                 /* ddim: inference steps (<= 0 or > T: T); spec: drafts per round; ddpm: unused */
  const ts_drafter *drafter; /* spec: NULL = the frozen-target drafter */
  ts_denoiser *target;       /* the denoiser sampled: NULL = the policy's target (e.g. &p->reference) */
  ts_spec *spec;             /* spec: work space and counters (ts_spec_new for the same target, max block
                                >= steps); NULL = one made and freed inside each ts_policy_sample call */
  const struct ts_block_sched *blocks; /* spec: picks each round's draft length (infer/blocks.h); steps is
                                then the largest it may pick. NULL = steps every round */
  int overlap;               /* spec with a learned drafter: draft the next round on a second thread
                                during verification (ts_spec_set_overlap); the same law. Bring a
                                `spec` work space: one made per call would start its thread per call */
  long control_step;         /* the chunks' control step within their episode (of the latest
                                observation): read by schedulers and temporal drafters; ts_loop and
                                ts_eval_pusht set it */
  int batch_row0, batch_rows; /* ddpm, ddim: batch_rows > 0 makes a call of B rows draw its noise as rows
                                 [batch_row0, batch_row0 + B) of a batch of batch_rows (every row's
                                 noise is drawn, these rows' used), so a batch split over ranks samples
                                 what the whole batch would; B may then be 0. 0: the batch is whole */
} ts_sampler;

/* Load a tsdp checkpoint; group "ema" (default for inference) or "model". */
int ts_policy_load(ts_policy *p, const char *path, const char *group);
void ts_policy_free(ts_policy *p);
/* Reserve the target and the work buffers for batches up to B (sampling does it itself). */
void ts_policy_reserve(ts_policy *p, int B);
/* Worker threads of the target (default 1). */
void ts_policy_set_threads(ts_policy *p, int n);
/* &p->reference, or NULL with a message when the model type has no reference path. */
ts_denoiser *ts_policy_reference(ts_policy *p);
/* The observation queue of the policy loop: append obs (obs_dim raw values) to hist
 * (n_obs_steps, obs_dim), dropping the oldest; first = 1 fills every slot with obs (a reset). */
void ts_policy_push_obs(const ts_policy *p, float *hist, const float *obs, int first);
/* Normalised obs history (B, n_obs_steps, obs_dim) raw -> cond (B, cond_dim). */
void ts_policy_make_cond(const ts_policy *p, const float *obs_raw, int B, float *cond);
/* One batched target call: x (B, horizon, act_dim), t (B) integer steps, cond (B, cond_dim)
 * -> eps (B, horizon, act_dim). */
void ts_policy_eps(ts_policy *p, const float *x, const int *t, const float *cond, int B, float *eps);
/* 0 when s can sample from p (kind known, steps / block in range, drafter and work space fit
 * the target), else -1 with a message naming what is wrong. */
int ts_sampler_check(const ts_sampler *s, const ts_policy *p);
/* Draw B action chunks (unnormalised, (B, horizon, act_dim)) for raw obs histories
 * (B, n_obs_steps, obs_dim): DDPM (all train steps), DDIM, or exact speculative DDPM (each chunk
 * its own chain, infer/spec.h; counters in s->spec when given). */
int ts_policy_sample(ts_policy *p, const float *obs_raw, int B, const ts_sampler *s, ts_rng *rng, float *actions);

#endif
