/* denoiser_unet.h: the ConditionalUnet1D as a ts_denoiser (infer/denoiser.h), two ways:
 *  - the inference engine (nn/unet_plan.h): packed weights, timestep table, thread pool; what
 *    the samplers call;
 *  - the autograd forward (ts_unet_forward through a no-grad arena): the reference the engine
 *    is tested against, and the "before" of its benchmark. Its 8 MB arena is made on first use.
 * Neither owns the ts_unet: it must outlive the denoiser (the engine copies the weights once,
 * so later changes to them need a new engine; the tape reads them at every call). */
#ifndef TS_DENOISER_UNET_H
#define TS_DENOISER_UNET_H

#include "infer/denoiser.h"
#include "nn/unet1d.h"
#include "nn/unet_plan.h"

/* horizon must be a positive multiple of 2^(n_levels-1); n_steps: timestep table size (0: none,
 * the step path computed per call); threads >= 1. Returns 0, or -1 with a message. */
int ts_denoiser_unet_engine(ts_denoiser *d, const ts_unet *u, int horizon, int n_steps, int threads);
int ts_denoiser_unet_tape(ts_denoiser *d, const ts_unet *u, int horizon);
/* The engine behind a "unet-engine" denoiser (for its allocation counter), else NULL. */
ts_unet_plan *ts_denoiser_unet_plan(const ts_denoiser *d);

#endif
