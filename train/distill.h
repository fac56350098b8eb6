/* distill.h: distil a small drafter (a ts_model, by default a one-block Transformer) from a
 * trained base for exact speculative sampling (infer/spec.h, infer/drafter.h).
 *
 * Training states are those the sampler visits: the base's own DDPM chains (its inference
 * engine, `distill.chains` chains per batched call) on observation windows drawn from the
 * dataset's training episodes (the base's split and normalisers). Every visited (x_t, t,
 * cond, base eps) goes into a buffer of `distill.buffer_chains` chains; every
 * `distill.refresh_every` steps the oldest `chains` chains are replaced by fresh ones.
 * With `distill.unroll` K > 0 the buffer has a second half: along each base chain, a chain
 * of the drafter being trained (its own DDPM steps with its own noise, resynced to the base's
 * state every K steps, as the drafts of a K-step round), each of its states with the base's
 * eps there. Those states are the ones a speculative round verifies; the gradient does not go
 * through the unroll (the states are data, stop-gradient).
 *
 * Loss, for a batch of buffer states, with eps_p the base's and eps_q the drafter's eps and
 * |Delta_b| = w_t |u_b (eps_p - eps_q)|:
 *   mean_b [ f(t_b) g(|Delta_b|) ] + eps_weight * mean (eps_p - eps_q)^2
 * where w_t = ts_ddpm_delta_weight: w_t |eps_p - eps_q| is |Delta_t| = |m_p - m_q| / sigma_t
 * of one DDPM step without x0 clipping, and a draft is accepted with probability
 * 2 Phi(-|Delta| / 2); u_b masks the elements whose x0 (from the base's eps) is clipped
 * (there the mean does not move with eps; the eps term still pulls the drafter there);
 * f = late_weight at t < late_steps, else 1; t = 0 (sigma 0) has w = 0. g by
 * `distill.objective`: reject, the rejection probability 1 - 2 Phi(-|Delta|/2) (its gradient
 * through a squared loss weighted by its derivative in |Delta|^2 at the current prediction);
 * delta2, |Delta|^2; mse, 0 (regression only). The logged `loss` is that objective; the
 * logged `accept` column is the exact one-step acceptance 2 Phi(-|Delta| / 2) of the drafter's
 * eps (means from ts_ddpm_mean, clipping included), averaged over the batch's t >= 1 states.
 * At the end, the EMA drafter's predicted acceptance per diffusion step over
 * `heldout_chains` fresh base chains is plotted to <out>.accept.png.
 *
 * A late-step specialist (`distill.t_max` > 0) is the same run with every batch state drawn
 * from steps t < t_max only (a uniform chain of the buffer, then a uniform such step of it),
 * all of its capacity spent where the main drafter accepts least; its held-out mean is over
 * 1 <= t < t_max. `distill.init` starts the weights from another drafter's EMA weights (for a
 * specialist, the main drafter it will sit beside). infer/drafter.h pairs the two.
 *
 * The run goes through train/run.h: AdamW with cosine LR and warm-up and EMA from [train],
 * checkpoints (model/, ema/, the buffer under distill/, the base's normalisers, root
 * attributes base_hash and base_path), bit-exact resume after a kill, <out>.csv and PNG
 * curves. Resuming with a different base (another base_hash) is refused. The checkpoint's
 * [data] and [diffusion] sections are the base's, whatever the config says.
 *
 * Under mpirun -np N each batch (train.grad_shards shards) and each buffer refresh are split
 * over the ranks, as in base training (train/parallel.h; how, in distill.c's header): N ranks
 * give the checkpoint of one process with train.grad_shards = N, bit for bit. */
#ifndef TS_DISTILL_H
#define TS_DISTILL_H

#include "core/config.h"
#include "infer/scheduler.h"

typedef struct ts_distill_opts {
  const char *base; /* base checkpoint (EMA weights are distilled) */
  const char *data; /* dataset .h5 the base was trained on */
  const char *out;  /* drafter checkpoint .h5 */
  int quiet, fresh;
  long stop_after;  /* > 0: return after this many steps in this invocation */
} ts_distill_opts;

typedef struct ts_distill_result {
  long steps;
  int resumed_from;
  double final_loss, final_accept, seconds;
  double samples_per_s;        /* of the steps of this invocation (buffer refreshes included, checkpoints not) */
  int heldout;                 /* 1 when the held-out evaluation ran (the run reached its last step) */
  double heldout_accept;       /* predicted acceptance over held-out states with t >= 1 (< t_max) */
  double accept_t[TS_MAX_T];   /* per diffusion step t (0 at t = 0) */
} ts_distill_result;

int ts_distill(const ts_config *cfg, const ts_distill_opts *o, ts_distill_result *res);

#endif
