/* optim.h: AdamW, gradient clipping, EMA of parameters and the cosine LR schedule. */
#ifndef TS_OPTIM_H
#define TS_OPTIM_H

#include "tensor.h"

typedef struct ts_adamw {
  ts_tensor **params;
  int n;
  float **m, **v;   /* first and second moments, one buffer per parameter */
  long step;        /* number of steps taken */
  float lr, beta1, beta2, eps, weight_decay;
  unsigned char *decay; /* per parameter: 1 = decayed, 0 = not (PyTorch's two param groups);
                           NULL = every parameter decayed */
} ts_adamw;

/* PyTorch's torch.optim.AdamW: decoupled decay p -= lr wd p, then the bias-corrected step. */
ts_adamw *ts_adamw_new(ts_tensor **params, int n, float lr, float beta1, float beta2, float eps, float wd);
/* Decay only the parameters whose flag is 1 (copied; n flags). */
void ts_adamw_set_decay(ts_adamw *o, const unsigned char *decay);
void ts_adamw_step(ts_adamw *o);
void ts_adamw_free(ts_adamw *o);

/* Scale all gradients so their global L2 norm is at most max_norm (PyTorch's
 * clip_grad_norm_: coefficient max_norm / (norm + 1e-6) when below 1). Returns the norm
 * before clipping. */
float ts_clip_grad_norm(ts_tensor **params, int n, float max_norm);

/* EMA as Diffusion Policy's EMAModel (update_after_step 0, inv_gamma 1):
 * decay(k) = 1 - (1 + s)^-power with s = k - 1, and 0 when s <= 0, clipped to
 * [min_decay, max_decay], where k is the number of EMA updates made before this one
 * (0 at the first call: DP's optimization_step). */
typedef struct ts_ema {
  ts_tensor **shadow; /* owned copies */
  int n;
  float power, min_decay, max_decay;
} ts_ema;

ts_ema *ts_ema_new(ts_tensor **params, int n, float power, float max_decay);
float ts_ema_decay(const ts_ema *e, long step);
void ts_ema_update(ts_ema *e, ts_tensor **params, long step);
void ts_ema_free(ts_ema *e);

/* diffusers' get_cosine_schedule_with_warmup (half a cosine): linear 0 -> base over `warmup`
 * steps, then base * 0.5 (1 + cos(pi progress)). */
float ts_lr_cosine(float base, long step, long warmup, long total);

#endif
