#include "policy.h"
#include "infer/blocks.h"
#include "infer/denoisers.h"
#include "core/error.h"
#include "core/h5io.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The model's weights from group/ of the checkpoint; its inference engine is the target, its
 * autograd forward the reference. */
static int load_model(ts_policy *p, ts_h5 *f, const char *group) {
  if (ts_model_new(&p->model, &p->cfg, p->act_dim, p->obs_dim)) return -1;
  ts_params *P = p->model.params;
  char prefix[64];
  snprintf(prefix, sizeof prefix, "%s/", group);
  ts_named *nm = ts_params_named(P, prefix, NULL);
  int rc = ts_ckpt_read(f, nm, P->n, NULL, NULL);
  ts_named_free(nm, P->n);
  if (rc) return -1;
  for (int i = 0; i < P->n; i++) P->t[i]->requires_grad = 0;
  if (ts_denoiser_engine(&p->target, &p->model, p->sched.T, 1)) return -1;
  return ts_denoiser_tape(&p->reference, &p->model);
}

int ts_policy_load(ts_policy *p, const char *path, const char *group) {
  memset(p, 0, sizeof *p);
  ts_h5 *f = ts_h5_open(path);
  if (!f) return -1;
  char *cfgtxt = ts_h5_get_attr_str(f, "/", "config");
  int rc = 0;
  ts_config_defaults(&p->cfg);
  if (!cfgtxt) /* present but unreadable (a damaged file): ts_h5_get_attr_str's message */
    rc = ts_h5_has_attr(f, "/", "config") ? -1 : ts_fail("%s: no config attribute (not a tsdp checkpoint)", path);
  else if (ts_config_parse_string(&p->cfg, cfgtxt, path)) rc = -1;
  free(cfgtxt);
  if (!rc) rc = ts_norm_load(f, "normalizer/obs", &p->nobs);
  if (!rc) rc = ts_norm_load(f, "normalizer/action", &p->nact);
  if (!rc) rc = ts_model_check_ckpt(&p->cfg, p->nact.dim, p->nobs.dim, f, group);
  if (rc) {
    ts_h5_close(f);
    return -1;
  }
  p->obs_dim = p->nobs.dim;
  p->act_dim = p->nact.dim;
  p->horizon = p->cfg.data.horizon;
  p->cond_dim = p->cfg.data.n_obs_steps * p->obs_dim;
  p->threads = 1;
  ts_ddpm_init(&p->sched, p->cfg.diffusion.num_train_timesteps, p->cfg.diffusion.clip_sample);
  rc = load_model(p, f, group);
  ts_h5_close(f);
  if (rc) ts_policy_free(p);
  return rc;
}

void ts_policy_free(ts_policy *p) {
  if (!p) return;
  ts_denoiser_free(&p->target);
  ts_denoiser_free(&p->reference);
  ts_model_free(&p->model);
  free(p->buf_x);
  free(p->buf_eps);
  free(p->buf_mean);
  free(p->buf_z);
  free(p->buf_tb);
  free(p->buf_cond);
  memset(p, 0, sizeof *p);
}

void ts_policy_reserve(ts_policy *p, int B) {
  ts_denoiser_reserve(&p->target, B);
  if (B <= p->max_batch) return;
  size_t n = (size_t)B * p->horizon * p->act_dim * sizeof(float);
  p->buf_x = realloc(p->buf_x, n);
  p->buf_eps = realloc(p->buf_eps, n);
  p->buf_mean = realloc(p->buf_mean, n);
  p->buf_z = realloc(p->buf_z, n);
  p->buf_tb = realloc(p->buf_tb, (size_t)B * sizeof(int));
  p->buf_cond = realloc(p->buf_cond, (size_t)B * p->cond_dim * sizeof(float));
  if (!p->buf_x || !p->buf_eps || !p->buf_mean || !p->buf_z || !p->buf_tb || !p->buf_cond) abort();
  p->max_batch = B;
}

void ts_policy_set_threads(ts_policy *p, int n) {
  ts_denoiser_set_threads(&p->target, n);
  p->threads = n;
}

ts_denoiser *ts_policy_reference(ts_policy *p) {
  if (!p->reference.ops) {
    ts_fail("model.type %s has no autograd reference path", ts_model_type_names[p->cfg.model.type]);
    return NULL;
  }
  return &p->reference;
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

void ts_policy_eps(ts_policy *p, const float *x, const int *t, const float *cond, int B, float *eps) {
  ts_denoiser_eps(&p->target, x, t, cond, B, eps);
}

int ts_sampler_check(const ts_sampler *s, const ts_policy *p) {
  if ((int)s->kind < 0 || s->kind >= TS_SAMPLER_COUNT) return ts_fail("sampler kind %d unknown", (int)s->kind);
  const ts_denoiser *tg = s->target ? s->target : &p->target;
  if (!tg->ops) return ts_fail("sampler: the target denoiser is empty");
  if (tg->horizon != p->horizon || tg->act_dim != p->act_dim || tg->cond_dim != p->cond_dim)
    return ts_fail("sampler: target denoiser (%d, %d | %d) does not fit the policy (%d, %d | %d)", tg->horizon,
                   tg->act_dim, tg->cond_dim, p->horizon, p->act_dim, p->cond_dim);
  if (s->blocks && (s->kind != TS_SAMPLER_SPEC || !s->blocks->block))
    return ts_fail("sampler: a block scheduler needs the spec sampler");
  if (s->kind != TS_SAMPLER_SPEC) return 0;
  if (s->steps < 1 || s->steps > TS_SPEC_MAX_BLOCK)
    return ts_fail("speculative block %d: expected 1..%d", s->steps, TS_SPEC_MAX_BLOCK);
  if (ts_drafter_check(s->drafter, tg)) return -1;
  if (s->spec && ts_spec_target(s->spec) != tg)
    return ts_fail("speculative sampler: its work space was made for another target");
  if (s->spec && ts_spec_max_block(s->spec) < s->steps)
    return ts_fail("speculative block %d: the work space holds up to %d", s->steps, ts_spec_max_block(s->spec));
  return 0;
}

/* Each chunk its own speculative chain, in the work space of s (or one made for the call). */
static int sample_spec(ts_policy *p, ts_denoiser *tg, const float *cond, int B, const ts_sampler *s, ts_rng *rng,
                       float *x) {
  ts_spec *sp = s->spec ? s->spec : ts_spec_new(tg, &p->sched, s->steps);
  if (!sp) return -1;
  int rc = 0, n = p->horizon * p->act_dim;
  ts_spec_set_control_step(sp, s->control_step);
  if (ts_spec_overlap(sp) != (s->overlap != 0)) ts_spec_set_overlap(sp, s->overlap);
  for (int c = 0; c < B && !rc; c++) {
    const float *cd = cond + (size_t)c * p->cond_dim;
    rc = s->blocks ? ts_spec_sample_sched(sp, cd, p->obs_dim, s->drafter, s->blocks, rng, x + (size_t)c * n)
                   : ts_spec_sample(sp, cd, s->drafter, s->steps, rng, x + (size_t)c * n);
  }
  if (sp != s->spec) ts_spec_free(sp);
  return rc;
}

/* n = B rows of noise into x, or rows [batch_row0, +B) of a batch of batch_rows (ts_sampler). */
static void draw_noise(const ts_sampler *s, ts_rng *rng, float *x, int B, int64_t n) {
  if (s->batch_rows <= 0) {
    ts_rng_fill_normal(rng, x, n);
    return;
  }
  int64_t row = B ? n / B : 0, all = (int64_t)s->batch_rows * row;
  float *tmp = malloc((size_t)(all ? all : 1) * sizeof(float));
  if (!tmp) abort();
  ts_rng_fill_normal(rng, tmp, all);
  if (n) memcpy(x, tmp + (int64_t)s->batch_row0 * row, (size_t)n * sizeof(float));
  free(tmp);
}

/* A call with no rows of its own in a split batch: advance rng past the batch's noise. */
static void skip_noise(const ts_policy *p, const ts_sampler *s, ts_rng *rng) {
  int64_t all = (int64_t)s->batch_rows * p->horizon * p->act_dim, draws = 1;
  if (s->kind == TS_SAMPLER_DDPM) draws = p->sched.T; /* x_T, then z for t = T-1 .. 1 */
  float *tmp = malloc((size_t)(all ? all : 1) * sizeof(float));
  if (!tmp) abort();
  for (int64_t k = 0; k < draws; k++) ts_rng_fill_normal(rng, tmp, all);
  free(tmp);
}

int ts_policy_sample(ts_policy *p, const float *obs_raw, int B, const ts_sampler *s, ts_rng *rng, float *actions) {
  if (ts_sampler_check(s, p)) return -1;
  if (s->batch_rows > 0 && (s->kind == TS_SAMPLER_SPEC || s->batch_row0 < 0 || B < 0 || s->batch_row0 + B > s->batch_rows))
    return ts_fail("sampling rows %d..%d of a batch of %d: not a part of it%s", s->batch_row0, s->batch_row0 + B,
                   s->batch_rows, s->kind == TS_SAMPLER_SPEC ? " (or a speculative sampler, which cannot split)" : "");
  if (B == 0 && s->batch_rows > 0) {
    skip_noise(p, s, rng);
    return 0;
  }
  ts_denoiser *tg = s->target ? s->target : &p->target;
  ts_policy_reserve(p, B);
  ts_denoiser_reserve(tg, B);
  int n = B * p->horizon * p->act_dim, T = p->sched.T, steps = s->steps;
  float *cond = p->buf_cond, *x = p->buf_x, *eps = p->buf_eps;
  int *tb = p->buf_tb;
  ts_policy_make_cond(p, obs_raw, B, cond);
  switch (s->kind) {
  case TS_SAMPLER_SPEC:
    if (sample_spec(p, tg, cond, B, s, rng, x)) return -1;
    break;
  case TS_SAMPLER_DDIM: {
    int ts[TS_MAX_T];
    if (steps <= 0 || steps > T) steps = T;
    ts_ddim_timesteps(T, steps, ts);
    draw_noise(s, rng, x, B, n);
    for (int i = 0; i < steps; i++) {
      for (int b = 0; b < B; b++) tb[b] = ts[i];
      ts_denoiser_eps(tg, x, tb, cond, B, eps);
      ts_ddim_step(&p->sched, ts[i], ts[i] - T / steps, x, eps, x, n);
    }
    break;
  }
  default: /* TS_SAMPLER_DDPM */
    draw_noise(s, rng, x, B, n);
    for (int t = T - 1; t >= 0; t--) {
      for (int b = 0; b < B; b++) tb[b] = t;
      ts_denoiser_eps(tg, x, tb, cond, B, eps);
      float sigma = ts_ddpm_mean(&p->sched, t, x, eps, p->buf_mean, n);
      if (t > 0) {
        draw_noise(s, rng, p->buf_z, B, n);
        for (int i = 0; i < n; i++) x[i] = p->buf_mean[i] + sigma * p->buf_z[i];
      } else {
        memcpy(x, p->buf_mean, (size_t)n * sizeof(float));
      }
    }
  }
  memcpy(actions, x, (size_t)n * sizeof(float));
  ts_norm_unapply(&p->nact, actions, (int64_t)B * p->horizon);
  return 0;
}
