#include "denoisers.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

static int check_horizon(const ts_unet *u, int horizon) {
  int f = 1 << (u->cfg.n_levels - 1);
  if (horizon <= 0 || horizon % f) return ts_fail("U-Net denoiser: horizon %d is not a positive multiple of %d", horizon, f);
  return 0;
}

static void fill(ts_denoiser *d, const ts_denoiser_ops *ops, void *self, const ts_unet *u, int horizon, double flops) {
  memset(d, 0, sizeof *d);
  d->ops = ops;
  d->self = self;
  d->horizon = horizon;
  d->act_dim = u->cfg.input_dim;
  d->cond_dim = u->cfg.global_cond_dim;
  d->flops = flops;
}

/* ---- the inference engine: self is the ts_unet_plan ---- */

static void engine_eps(void *self, const float *x, const int *t, const float *cond, int B, float *eps) {
  ts_unet_plan_forward(self, x, t, cond, B, eps);
}
static void engine_reserve(void *self, int B) { ts_unet_plan_reserve(self, B); }
static void engine_threads(void *self, int n) { ts_unet_plan_set_threads(self, n); }
static void engine_free(void *self) { ts_unet_plan_free(self); }

static const ts_denoiser_ops engine_ops = {"unet-engine", engine_eps, engine_reserve, engine_threads, engine_free};

int ts_denoiser_unet_engine(ts_denoiser *d, const ts_unet *u, int horizon, int n_steps, int threads) {
  memset(d, 0, sizeof *d);
  if (check_horizon(u, horizon)) return -1;
  if (threads < 1) return ts_fail("U-Net engine: threads %d, expected >= 1", threads);
  /* With the table every sampler's t is looked up, so a call costs no step path. */
  fill(d, &engine_ops, ts_unet_plan_new(u, horizon, n_steps, threads), u, horizon,
       ts_unet_flops(&u->cfg, horizon, n_steps <= 0));
  return 0;
}

ts_unet_plan *ts_denoiser_unet_plan(const ts_denoiser *d) { return d->ops == &engine_ops ? d->self : NULL; }

/* ---- the Transformer's engine: self is the ts_transformer_plan ---- */

static void tf_eps(void *self, const float *x, const int *t, const float *cond, int B, float *eps) {
  ts_transformer_plan_forward(self, x, t, cond, B, eps);
}
static void tf_reserve(void *self, int B) { ts_transformer_plan_reserve(self, B); }
static void tf_threads(void *self, int n) { ts_transformer_plan_set_threads(self, n); }
static void tf_free(void *self) { ts_transformer_plan_free(self); }

static const ts_denoiser_ops tf_ops = {"transformer-engine", tf_eps, tf_reserve, tf_threads, tf_free};

int ts_denoiser_transformer_engine(ts_denoiser *d, const ts_transformer *m, int n_steps, int threads) {
  memset(d, 0, sizeof *d);
  if (threads < 1) return ts_fail("Transformer engine: threads %d, expected >= 1", threads);
  const ts_transformer_cfg *c = &m->cfg;
  d->ops = &tf_ops;
  d->self = ts_transformer_plan_new(m, n_steps, threads);
  d->horizon = c->horizon;
  d->act_dim = c->input_dim;
  d->cond_dim = c->n_obs_steps * c->cond_dim;
  d->flops = ts_transformer_flops(c);
  return 0;
}

ts_transformer_plan *ts_denoiser_transformer_plan(const ts_denoiser *d) { return d->ops == &tf_ops ? d->self : NULL; }

int ts_denoiser_engine(ts_denoiser *d, const ts_model *m, int n_steps, int threads) {
  if (m->unet) return ts_denoiser_unet_engine(d, m->unet, m->horizon, n_steps, threads);
  return ts_denoiser_transformer_engine(d, m->tf, n_steps, threads);
}

/* ---- the autograd forward of any model ---- */

typedef struct {
  const ts_model *m;
  int cap;
  ts_ctx *ctx; /* no-grad arena, made on first use */
  float *tf;   /* (cap) timesteps as floats, as the autograd models take them */
} tape;

static void tape_reserve(void *self, int B) {
  tape *s = self;
  if (!s->ctx) {
    s->ctx = ts_ctx_new(8 << 20);
    ts_set_grad(s->ctx, 0);
  }
  if (B <= s->cap) return;
  s->tf = realloc(s->tf, (size_t)B * sizeof(float));
  if (!s->tf) abort();
  s->cap = B;
}

static void tape_eps(void *self, const float *x, const int *t, const float *cond, int B, float *eps) {
  tape *s = self;
  const ts_model *m = s->m;
  tape_reserve(s, B);
  ts_ctx_reset(s->ctx);
  for (int b = 0; b < B; b++) s->tf[b] = (float)t[b];
  ts_tensor *tx = ts_wrap(s->ctx, (float *)x, 3, (int[]){B, m->horizon, m->act_dim});
  ts_tensor *tt = ts_wrap(s->ctx, s->tf, 1, &B);
  ts_tensor *tc = ts_wrap(s->ctx, (float *)cond, 2, (int[]){B, m->cond_dim});
  ts_tensor *out = ts_model_forward(s->ctx, m, tx, tt, tc, NULL);
  memcpy(eps, out->data, (size_t)out->n * sizeof(float));
}

static void tape_free(void *self) {
  tape *s = self;
  ts_ctx_free(s->ctx);
  free(s->tf);
  free(s);
}

static const ts_denoiser_ops tape_ops = {"tape", tape_eps, tape_reserve, NULL, tape_free};

int ts_denoiser_tape(ts_denoiser *d, const ts_model *m) {
  memset(d, 0, sizeof *d);
  if (m->unet && check_horizon(m->unet, m->horizon)) return -1;
  tape *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->m = m;
  d->ops = &tape_ops;
  d->self = s;
  d->horizon = m->horizon;
  d->act_dim = m->act_dim;
  d->cond_dim = m->cond_dim;
  d->flops = ts_model_flops(m);
  return 0;
}
