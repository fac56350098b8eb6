/* scheduler.h: DDPM as Diffusion Policy uses it (diffusers DDPMScheduler: squaredcos_cap_v2,
 * epsilon prediction, clip_sample, fixed_small variance; docs/math.md §2) and the
 * deterministic DDIM update (eta = 0) on a subsequence of the train steps. */
#ifndef TS_SCHEDULER_H
#define TS_SCHEDULER_H

#define TS_MAX_T 1000

typedef struct ts_ddpm {
  int T;
  int clip_sample;
  double betas[TS_MAX_T], alphas_cumprod[TS_MAX_T];
} ts_ddpm;

void ts_ddpm_init(ts_ddpm *s, int T, int clip_sample);
/* x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, elementwise over n values. */
void ts_ddpm_add_noise(const ts_ddpm *s, int t, const float *x0, const float *eps, float *xt, int n);
/* Mean of the reverse step from x_t given the predicted eps; returns sigma_t (0 at t = 0). */
float ts_ddpm_mean(const ts_ddpm *s, int t, const float *xt, const float *eps, float *mean, int n);
/* The weight w_t with |Delta_t| = w_t |eps_p - eps_q| for two eps predictions at one DDPM step
 * when x0 clipping is inactive: the means differ by -c1 sqrt((1 - abar_t) / abar_t) (eps_p -
 * eps_q), c1 = sqrt(abar_prev) beta_t / (1 - abar_t), and Delta = (m_p - m_q) / sigma_t, so
 * w_t = c1 sqrt((1 - abar_t) / abar_t) / sigma_t. 0 at t = 0 (sigma 0: no draw to accept). */
double ts_ddpm_delta_weight(const ts_ddpm *s, int t);
/* diffusers DDIMScheduler.set_timesteps: (i * T / steps) for i = steps-1 .. 0. */
void ts_ddim_timesteps(int T, int steps, int *out);
/* One eta = 0 step from t to prev_t (prev_t < 0: final, alphabar_prev = 1). */
void ts_ddim_step(const ts_ddpm *s, int t, int prev_t, const float *xt, const float *eps, float *out, int n);

#endif
