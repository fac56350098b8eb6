/* denoiser.h: the one interface every noise-prediction model implements, as each of ggml's
 * backends implements one backend interface. A denoiser maps noisy action chunks x
 * (B, horizon, act_dim), integer diffusion steps t (B) and normalised observation conditions
 * cond (B, cond_dim) to the predicted noise eps (B, horizon, act_dim). Samplers (infer/policy.h,
 * infer/spec.h) only ever see this interface, so a new model type is one constructor that
 * fills a ts_denoiser (infer/denoisers.h holds the U-Net's two) plus one branch in
 * ts_policy_load.
 *
 * Contract for implementations: eps must be deterministic for given inputs (no hidden RNG);
 * after reserve(B) a call with batch <= B allocates nothing; a denoiser does not own the model
 * it reads, only what it built from it (packed weights, buffers), which free releases. */
#ifndef TS_DENOISER_H
#define TS_DENOISER_H

typedef struct ts_denoiser_ops {
  const char *kind; /* "unet-engine", "unet-tape", ... */
  void (*eps)(void *self, const float *x, const int *t, const float *cond, int B, float *eps);
  void (*reserve)(void *self, int B);     /* size buffers for batches up to B; no allocation after */
  void (*set_threads)(void *self, int n); /* may be NULL (the model has no threads of its own) */
  void (*free)(void *self);               /* may be NULL */
} ts_denoiser_ops;

typedef struct ts_denoiser {
  const ts_denoiser_ops *ops; /* NULL: an empty denoiser (all calls below are no-ops on it except eps) */
  void *self;
  int horizon, act_dim, cond_dim; /* x is (B, horizon, act_dim), cond (B, cond_dim), eps like x */
  double flops;                   /* cost of one batch-1 call (2 x multiply-adds), 0 if unknown */
  long calls;                     /* batched calls made so far */
} ts_denoiser;

/* One batched call; counts it in d->calls. */
void ts_denoiser_eps(ts_denoiser *d, const float *x, const int *t, const float *cond, int B, float *eps);
void ts_denoiser_reserve(ts_denoiser *d, int B);        /* d may be NULL (nothing to do) */
void ts_denoiser_set_threads(ts_denoiser *d, int n); /* ignored by denoisers without threads; d may be NULL */
/* Release what the denoiser built and zero *d; safe on a zeroed or already freed denoiser. */
void ts_denoiser_free(ts_denoiser *d);
/* 1 when x, t, cond and eps of a and b have the same shapes (a drafter must match its target). */
int ts_denoiser_same_shape(const ts_denoiser *a, const ts_denoiser *b);

#endif
