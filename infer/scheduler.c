#include "scheduler.h"
#include <math.h>
#include <string.h>

static double abar_fn(double s) {
  double v = cos((s + 0.008) / 1.008 * M_PI / 2);
  return v * v;
}

void ts_ddpm_init(ts_ddpm *s, int T, int clip_sample) {
  memset(s, 0, sizeof *s);
  s->T = T;
  s->clip_sample = clip_sample;
  /* diffusers computes the betas in float64 and stores them as float32; alphas_cumprod is a
   * float32 cumprod. Reproduce that rounding so coefficients agree to the last bit. */
  float cum = 1.0f;
  for (int i = 0; i < T; i++) {
    double b = 1.0 - abar_fn((double)(i + 1) / T) / abar_fn((double)i / T);
    float bf = (float)(b < 0.999 ? b : 0.999);
    s->betas[i] = bf;
    cum *= 1.0f - bf;
    s->alphas_cumprod[i] = cum;
  }
}

void ts_ddpm_add_noise(const ts_ddpm *s, int t, const float *x0, const float *eps, float *xt, int n) {
  float a = (float)sqrt(s->alphas_cumprod[t]), b = (float)sqrt(1.0 - s->alphas_cumprod[t]);
  for (int i = 0; i < n; i++) xt[i] = a * x0[i] + b * eps[i];
}

float ts_ddpm_mean(const ts_ddpm *s, int t, const float *xt, const float *eps, float *mean, int n) {
  double ab = s->alphas_cumprod[t], abp = t > 0 ? s->alphas_cumprod[t - 1] : 1.0;
  double beta = 1.0 - ab / abp, alpha = ab / abp;
  float sa = (float)sqrt(ab), sb = (float)sqrt(1.0 - ab);
  float c0 = (float)(sqrt(abp) * beta / (1.0 - ab)), ct = (float)(sqrt(alpha) * (1.0 - abp) / (1.0 - ab));
  for (int i = 0; i < n; i++) {
    float x0 = (xt[i] - sb * eps[i]) / sa;
    if (s->clip_sample) x0 = x0 < -1 ? -1 : x0 > 1 ? 1 : x0;
    mean[i] = c0 * x0 + ct * xt[i];
  }
  if (t == 0) return 0.0f;
  double var = (1.0 - abp) / (1.0 - ab) * beta;
  return (float)sqrt(var > 1e-20 ? var : 1e-20);
}

double ts_ddpm_delta_weight(const ts_ddpm *s, int t) {
  if (t <= 0 || t >= s->T) return 0.0;
  double ab = s->alphas_cumprod[t], abp = s->alphas_cumprod[t - 1], beta = 1.0 - ab / abp;
  double c1 = sqrt(abp) * beta / (1.0 - ab), var = (1.0 - abp) / (1.0 - ab) * beta;
  /* the same float rounding of the coefficients as ts_ddpm_mean */
  double sig = (float)sqrt(var > 1e-20 ? var : 1e-20);
  return (double)(float)c1 * ((double)(float)sqrt(1.0 - ab) / (double)(float)sqrt(ab)) / sig;
}

void ts_ddim_timesteps(int T, int steps, int *out) {
  int ratio = T / steps;
  for (int i = 0; i < steps; i++) out[i] = (steps - 1 - i) * ratio;
}

void ts_ddim_step(const ts_ddpm *s, int t, int prev_t, const float *xt, const float *eps, float *out, int n) {
  double ab = s->alphas_cumprod[t], abp = prev_t >= 0 ? s->alphas_cumprod[prev_t] : 1.0;
  float sa = (float)sqrt(ab), sb = (float)sqrt(1.0 - ab), sap = (float)sqrt(abp), dir = (float)sqrt(1.0 - abp);
  for (int i = 0; i < n; i++) {
    float x0 = (xt[i] - sb * eps[i]) / sa;
    if (s->clip_sample) x0 = x0 < -1 ? -1 : x0 > 1 ? 1 : x0;
    out[i] = sap * x0 + dir * eps[i];
  }
}
