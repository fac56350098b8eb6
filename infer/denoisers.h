/* denoisers.h: every model as a ts_denoiser (infer/denoiser.h), the constructors in one place:
 *  - each architecture's inference engine (the U-Net's nn/unet_plan.h): packed weights,
 *    timestep table, thread pool; what the samplers call;
 *  - the autograd forward of any ts_model (nn/model.h) through a no-grad arena: the reference
 *    the engines are tested against, and the "before" of their benchmarks. Its arena is made
 *    on first use.
 * None owns the model it reads: the model must outlive the denoiser (an engine copies the
 * weights once, so later changes to them need a new engine; the tape reads them at every call). */
#ifndef TS_DENOISERS_H
#define TS_DENOISERS_H

#include "infer/denoiser.h"
#include "nn/model.h"
#include "nn/unet1d.h"
#include "nn/transformer_plan.h"
#include "nn/unet_plan.h"

/* The inference engine of m, whichever architecture it is (U-Net: nn/unet_plan.h,
 * Transformer: nn/transformer_plan.h); n_steps: timestep table size (0: the timestep path
 * computed per call); threads >= 1. */
int ts_denoiser_engine(ts_denoiser *d, const ts_model *m, int n_steps, int threads);
/* The Transformer's engine alone. */
int ts_denoiser_transformer_engine(ts_denoiser *d, const ts_transformer *m, int n_steps, int threads);

/* horizon must be a positive multiple of 2^(n_levels-1); n_steps: timestep table size (0: none,
 * the step path computed per call); threads >= 1. Returns 0, or -1 with a message. */
int ts_denoiser_unet_engine(ts_denoiser *d, const ts_unet *u, int horizon, int n_steps, int threads);
/* The autograd forward of m (U-Net or Transformer) without dropout. */
int ts_denoiser_tape(ts_denoiser *d, const ts_model *m);
/* The engine behind a "unet-engine" denoiser (for its allocation counter), else NULL. */
ts_unet_plan *ts_denoiser_unet_plan(const ts_denoiser *d);
/* The engine behind a "transformer-engine" denoiser, else NULL. */
ts_transformer_plan *ts_denoiser_transformer_plan(const ts_denoiser *d);

#endif
