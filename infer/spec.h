/* spec.h: exact speculative sampling of the DDPM reverse chain (REFERENCE.md §4), with the
 * training-free "frozen target" drafter: the drafted steps of a round reuse the target's eps
 * from the start of the round. One round drafts up to `block` steps, evaluates the target once
 * on all drafted states (one batched call through the engine), accepts drafts in order with
 * probability min(1, q/p) and replaces the first rejected one by its reflection, which is
 * exactly a draw from the target step. The output chunk is distributed exactly as DDPM-T's.
 *
 * Cost is counted in sequential target calls: DDPM-T makes T; a round makes one, plus one more
 * when the previous round ended in a rejection (the reflected state has no target eps yet). */
#ifndef TS_SPEC_H
#define TS_SPEC_H

#include "infer/policy.h"

typedef struct ts_spec_opts {
  int block;     /* drafted steps per round, >= 1 */
  int no_verify; /* ablation: take every draft (lossy; shows what the verifier corrects) */
} ts_spec_opts;

/* The rule for one drafted step (REFERENCE.md §4): the draft is mp + sig z; with u uniform in
 * (0, 1) it is accepted when u < q/p = exp(-z.Delta - |Delta|^2 / 2), Delta = (mp - mq) / sig,
 * and out = the draft (returns 1); otherwise out = mq + sig (z - 2 (e.z) e), e = Delta / |Delta|
 * (returns 0). Either way out ~ N(mq, sig^2 I) exactly when z ~ N(0, I). */
int ts_spec_accept(const float *mp, const float *mq, float sig, const float *z, double u, float *out, int n);

#define TS_SPEC_MAX_BLOCK 128

/* The target: DDPM schedule, chunk size n (normalised values), and a batched eps call. */
typedef void (*ts_eps_fn)(void *ctx, const float *x, const int *t, const float *cond, int B, float *eps);
typedef struct ts_spec_target {
  const ts_ddpm *sched;
  int n, cond_dim;
  ts_eps_fn eps;
  void *ctx;
} ts_spec_target;

/* Work space ts_spec_chain needs, in floats. */
size_t ts_spec_work_floats(int n, int cond_dim, int block);
/* One chain: x holds x_T ~ N(0, I) on entry and the sample on exit. Counters add to *st. */
void ts_spec_chain(const ts_spec_target *tg, const float *cond, const ts_spec_opts *o, ts_rng *rng, float *x,
                   ts_spec_stats *st, float *work);

/* Size the policy's work space for B chains and this block (ts_spec_sample does it itself). */
void ts_spec_reserve(ts_policy *p, int B, int block);

/* B chunks, each sampled as its own chain, for raw obs histories (B, n_obs_steps, obs_dim);
 * actions (B, horizon, act_dim) unnormalised. Adds to *st when st is given. */
int ts_spec_sample(ts_policy *p, const float *obs_raw, int B, const ts_spec_opts *o, ts_rng *rng, float *actions,
                   ts_spec_stats *st);

#endif
