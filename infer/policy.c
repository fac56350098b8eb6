#include "policy.h"
#include "infer/spec.h"
#include "core/error.h"
#include "core/h5io.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ts_unet_cfg ts_unet_cfg_from(const ts_config *c, int act_dim, int obs_dim) {
  ts_unet_cfg u;
  memset(&u, 0, sizeof u);
  u.input_dim = act_dim;
  u.global_cond_dim = c->data.n_obs_steps * obs_dim;
  u.step_embed_dim = c->model.step_embed_dim;
  u.n_levels = c->model.n_levels;
  memcpy(u.down_dims, c->model.down_dims, sizeof u.down_dims);
  u.kernel_size = c->model.kernel_size;
  u.n_groups = c->model.n_groups;
  return u;
}

int ts_policy_load(ts_policy *p, const char *path, const char *group) {
  memset(p, 0, sizeof *p);
  ts_h5 *f = ts_h5_open(path);
  if (!f) return -1;
  char *cfgtxt = ts_h5_get_attr_str(f, "/", "config");
  int rc = 0;
  ts_config_defaults(&p->cfg);
  if (!cfgtxt) rc = ts_fail("%s: no config attribute (not a tsdp checkpoint)", path);
  else if (ts_config_parse_string(&p->cfg, cfgtxt, path)) rc = -1;
  free(cfgtxt);
  if (!rc) rc = ts_norm_load(f, "normalizer/obs", &p->nobs);
  if (!rc) rc = ts_norm_load(f, "normalizer/action", &p->nact);
  ts_h5_close(f);
  if (rc) return -1;
  p->obs_dim = p->nobs.dim;
  p->act_dim = p->nact.dim;
  p->horizon = p->cfg.data.horizon;
  p->cond_dim = p->cfg.data.n_obs_steps * p->obs_dim;
  ts_unet_cfg uc = ts_unet_cfg_from(&p->cfg, p->act_dim, p->obs_dim);
  p->net = ts_unet_new(&uc);
  char prefix[64];
  snprintf(prefix, sizeof prefix, "%s/", group);
  ts_named *nm = ts_params_named(&p->net->params, prefix, NULL);
  rc = ts_ckpt_load(path, nm, p->net->params.n, NULL, NULL);
  ts_named_free(nm, p->net->params.n);
  if (rc) {
    ts_unet_free(p->net);
    p->net = NULL;
    return -1;
  }
  for (int i = 0; i < p->net->params.n; i++) p->net->params.t[i]->requires_grad = 0;
  ts_ddpm_init(&p->sched, p->cfg.diffusion.num_train_timesteps, p->cfg.diffusion.clip_sample);
  p->plan = ts_unet_plan_new(p->net, p->horizon, p->sched.T, 1);
  return 0;
}

void ts_policy_free(ts_policy *p) {
  if (!p) return;
  ts_unet_plan_free(p->plan);
  ts_unet_free(p->net);
  ts_ctx_free(p->ctx);
  free(p->buf_x);
  free(p->buf_eps);
  free(p->buf_mean);
  free(p->buf_z);
  free(p->buf_t);
  free(p->buf_tb);
  free(p->buf_cond);
  free(p->spec_buf);
  memset(p, 0, sizeof *p);
}

void ts_policy_reserve(ts_policy *p, int B) {
  ts_unet_plan_reserve(p->plan, B);
  if (B <= p->max_batch) return;
  size_t n = (size_t)B * p->horizon * p->act_dim * sizeof(float);
  p->buf_x = realloc(p->buf_x, n);
  p->buf_eps = realloc(p->buf_eps, n);
  p->buf_mean = realloc(p->buf_mean, n);
  p->buf_z = realloc(p->buf_z, n);
  p->buf_t = realloc(p->buf_t, (size_t)B * sizeof(float));
  p->buf_tb = realloc(p->buf_tb, (size_t)B * sizeof(int));
  p->buf_cond = realloc(p->buf_cond, (size_t)B * p->cond_dim * sizeof(float));
  if (!p->buf_x || !p->buf_eps || !p->buf_mean || !p->buf_z || !p->buf_t || !p->buf_tb || !p->buf_cond) abort();
  p->max_batch = B;
}

void ts_policy_push_obs(const ts_policy *p, float *hist, const float *obs, int first) {
  int No = p->cfg.data.n_obs_steps, Od = p->obs_dim;
  if (first) {
    for (int k = 0; k < No; k++) memcpy(hist + (size_t)k * Od, obs, (size_t)Od * sizeof(float));
    return;
  }
  memmove(hist, hist + Od, (size_t)(No - 1) * Od * sizeof(float));
  memcpy(hist + (size_t)(No - 1) * Od, obs, (size_t)Od * sizeof(float));
}

void ts_policy_make_cond(const ts_policy *p, const float *obs_raw, int B, float *cond) {
  memcpy(cond, obs_raw, (size_t)B * p->cond_dim * sizeof(float));
  ts_norm_apply(&p->nobs, cond, (int64_t)B * p->cfg.data.n_obs_steps);
}

void ts_policy_set_threads(ts_policy *p, int n) { ts_unet_plan_set_threads(p->plan, n); }

void ts_policy_eps(ts_policy *p, const float *x, const int *t, const float *cond, int B, float *eps) {
  if (p->use_tape) {
    ts_policy_eps_tape(p, x, t, cond, B, eps);
    return;
  }
  ts_unet_plan_forward(p->plan, x, t, cond, B, eps);
  p->nfe++;
}

void ts_policy_eps_tape(ts_policy *p, const float *x, const int *t, const float *cond, int B, float *eps) {
  ts_policy_reserve(p, B);
  if (!p->ctx) { /* the reference path: its arena only exists once someone uses it */
    p->ctx = ts_ctx_new(8 << 20);
    ts_set_grad(p->ctx, 0);
  }
  ts_ctx_reset(p->ctx);
  for (int b = 0; b < B; b++) p->buf_t[b] = (float)t[b];
  ts_tensor *tx = ts_wrap(p->ctx, (float *)x, 3, (int[]){B, p->horizon, p->act_dim});
  ts_tensor *tt = ts_wrap(p->ctx, p->buf_t, 1, &B);
  ts_tensor *tc = ts_wrap(p->ctx, (float *)cond, 2, (int[]){B, p->cond_dim});
  ts_tensor *out = ts_unet_forward(p->ctx, p->net, tx, tt, tc);
  memcpy(eps, out->data, (size_t)out->n * sizeof(float));
  p->nfe++;
}

int ts_policy_sample(ts_policy *p, const float *obs_raw, int B, const char *sampler, int steps, ts_rng *rng,
                     float *actions) {
  if (strcmp(sampler, "spec") == 0) {
    ts_spec_opts so = {steps, 0};
    return ts_spec_sample(p, obs_raw, B, &so, rng, actions, &p->spec);
  }
  ts_policy_reserve(p, B);
  int n = B * p->horizon * p->act_dim, T = p->sched.T;
  float *cond = p->buf_cond;
  int *tb = p->buf_tb;
  ts_policy_make_cond(p, obs_raw, B, cond);
  float *x = p->buf_x, *eps = p->buf_eps;
  ts_rng_fill_normal(rng, x, n);
  if (strcmp(sampler, "ddim") == 0) {
    int ts[TS_MAX_T];
    if (steps <= 0 || steps > T) steps = T;
    ts_ddim_timesteps(T, steps, ts);
    for (int i = 0; i < steps; i++) {
      for (int b = 0; b < B; b++) tb[b] = ts[i];
      ts_policy_eps(p, x, tb, cond, B, eps);
      ts_ddim_step(&p->sched, ts[i], ts[i] - T / steps, x, eps, x, n);
    }
  } else if (strcmp(sampler, "ddpm") == 0) {
    for (int t = T - 1; t >= 0; t--) {
      for (int b = 0; b < B; b++) tb[b] = t;
      ts_policy_eps(p, x, tb, cond, B, eps);
      float sigma = ts_ddpm_mean(&p->sched, t, x, eps, p->buf_mean, n);
      if (t > 0) {
        ts_rng_fill_normal(rng, p->buf_z, n);
        for (int i = 0; i < n; i++) x[i] = p->buf_mean[i] + sigma * p->buf_z[i];
      } else {
        memcpy(x, p->buf_mean, (size_t)n * sizeof(float));
      }
    }
  } else {
    return ts_fail("unknown sampler '%s' (ddpm, ddim, spec)", sampler);
  }
  memcpy(actions, x, (size_t)n * sizeof(float));
  ts_norm_unapply(&p->nact, actions, (int64_t)B * p->horizon);
  return 0;
}
