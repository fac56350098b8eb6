/* transformer_plan.h: TransformerForDiffusion's inference engine. A plan copies a model's
 * weights once into packed panels (core/kernels.h) and runs the same function as
 * ts_transformer_forward(..., drop = NULL) without the tape: every Linear is a GEMM over
 * pointer-addressed rows with its output channels split over a small thread pool, GELU and
 * Mish are applied by the GEMM's threads to the columns they just wrote, each residual add is
 * fused with the following LayerNorm in one pass over the rows, and attention (16 queries
 * against 16 or 1 + n_obs_steps keys) runs one query row at a time over the heads. All
 * buffers live in one struct sized per batch size, so a forward allocates nothing once the
 * batch has been reserved.
 *
 * Condition memory. The time token's memory row depends on t alone: with n_steps > 0 the plan
 * computes, for t = 0 .. n_steps-1, that row and its cross-attention keys and values in every
 * layer (a table); other t are computed on the fly. The observation tokens' rows and K/V are
 * computed per batch item and kept: an item whose cond row is bitwise the one the previous
 * call had at the same batch position reuses them (a sampling loop calls the model many times
 * on one observation), any other is recomputed. The cache holds copies, never the caller's
 * pointers, so changing cond in place is safe.
 *
 * Results equal ts_transformer_forward to float rounding (summation order, FMA, the AVX2 GELU
 * and exp). A plan is not safe to call from two threads at once. The model's weights are
 * copied: later changes to the model need a new plan. */
#ifndef TS_TRANSFORMER_PLAN_H
#define TS_TRANSFORMER_PLAN_H

#include "nn/transformer.h"

typedef struct ts_transformer_plan ts_transformer_plan;

/* n_steps: size of the timestep table (0 = none); threads >= 1 (1: no worker threads). */
ts_transformer_plan *ts_transformer_plan_new(const ts_transformer *m, int n_steps, int threads);
void ts_transformer_plan_free(ts_transformer_plan *p);
/* Size the buffers for batches up to B (the forward does it itself; call it ahead to keep
 * allocation out of a timed or real-time loop). Growing the batch drops the observation cache. */
void ts_transformer_plan_reserve(ts_transformer_plan *p, int B);
/* eps (B, horizon, input_dim) for x (B, horizon, input_dim), integer timesteps t (B) and cond
 * (B, n_obs_steps * cond_dim), the observation steps back to back. B >= 1; eps must not alias
 * the inputs. */
void ts_transformer_plan_forward(ts_transformer_plan *p, const float *x, const int *t, const float *cond, int B,
                                 float *eps);
int ts_transformer_plan_threads(const ts_transformer_plan *p);
/* Replace the thread pool (n >= 1); buffers, weights and caches are kept. */
void ts_transformer_plan_set_threads(ts_transformer_plan *p, int n);
/* Buffer (re)allocations so far: constant once the largest batch has been seen. */
long ts_transformer_plan_allocs(const ts_transformer_plan *p);
/* Packed weight bytes one forward reads when it computes its observation tokens (a call
 * whose items all hit the observation cache reads ts_transformer_plan_bytes_cached). */
double ts_transformer_plan_bytes(const ts_transformer_plan *p);
double ts_transformer_plan_bytes_cached(const ts_transformer_plan *p);

/* Timing for cost reports (cli/bench.c may call it): `reps` timed forwards at batch B after
 * two warm-up calls, on random inputs with timesteps inside the table when it has one. With
 * new_cond != 0 each call gets a fresh cond (the observation tokens are recomputed); otherwise
 * one cond throughout (the cache's case). Returns the median ms per forward; *min_ms, when
 * given, gets the fastest. Allocates its inputs outside the timed calls. */
double ts_transformer_plan_bench(ts_transformer_plan *p, int B, int reps, int new_cond, double *min_ms);

#endif
