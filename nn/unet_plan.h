/* unet_plan.h: the ConditionalUnet1D's inference engine. A plan copies a U-Net's weights once
 * into packed panels and runs the same function as ts_unet_forward without the tape:
 * channels-last activations with zero time padding (a kernel-5 convolution reads its input
 * windows in place), GroupNorm + Mish + FiLM / residual fused into one pass, buffers planned
 * once per batch size, and the output channels of every GEMM split over a small thread pool.
 *
 * The timestep path (sinusoid -> step MLP -> the step half of every block's FiLM linear)
 * depends on t alone; with n_steps > 0 it is computed once for t = 0 .. n_steps-1 and looked
 * up (other t are computed on the fly). Only the observation half of the FiLM linears runs
 * per call. Results equal ts_unet_forward to float rounding (summation order, FMA). */
#ifndef TS_UNET_PLAN_H
#define TS_UNET_PLAN_H

#include "nn/unet1d.h"

typedef struct ts_unet_plan ts_unet_plan;

/* horizon must be divisible by 2^(n_levels-1). threads >= 1 (1: no worker threads). */
ts_unet_plan *ts_unet_plan_new(const ts_unet *u, int horizon, int n_steps, int threads);
void ts_unet_plan_free(ts_unet_plan *p);
/* Size the buffers for batches up to B (the forward does it itself; call it ahead to keep
 * allocation out of a timed or real-time loop). */
void ts_unet_plan_reserve(ts_unet_plan *p, int B);
/* eps (B, horizon, input_dim) for x (B, horizon, input_dim), integer timesteps t (B) and
 * normalised observations cond (B, global_cond_dim). */
void ts_unet_plan_forward(ts_unet_plan *p, const float *x, const int *t, const float *cond, int B, float *eps);
int ts_unet_plan_threads(const ts_unet_plan *p);
/* Replace the thread pool (n >= 1); buffers and weights are kept. */
void ts_unet_plan_set_threads(ts_unet_plan *p, int n);
/* Buffer (re)allocations so far: constant once the largest batch has been seen. */
long ts_unet_plan_allocs(const ts_unet_plan *p);

#endif
