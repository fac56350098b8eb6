#include "model.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/optim.h"
#include "core/sizes.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ts_unet_cfg ts_model_unet_cfg(const ts_config *c, int act_dim, int obs_dim) {
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

ts_transformer_cfg ts_model_transformer_cfg(const ts_config *c, int act_dim, int obs_dim) {
  ts_transformer_cfg t = {act_dim,          c->data.horizon,  c->data.n_obs_steps,        obs_dim,
                          c->model.n_emb,   c->model.n_head,  c->model.n_layer,           c->model.causal_attn,
                          (float)c->model.p_drop_emb, (float)c->model.p_drop_attn};
  return t;
}

int ts_model_new(ts_model *m, const ts_config *c, int act_dim, int obs_dim) {
  memset(m, 0, sizeof *m);
  m->type = c->model.type;
  m->horizon = c->data.horizon;
  m->act_dim = act_dim;
  m->obs_dim = obs_dim;
  m->n_obs_steps = c->data.n_obs_steps;
  m->cond_dim = c->data.n_obs_steps * obs_dim;
  switch (m->type) {
  case TS_MODEL_UNET: {
    ts_unet_cfg u = ts_model_unet_cfg(c, act_dim, obs_dim);
    m->unet = ts_unet_new(&u);
    m->params = &m->unet->params;
    return 0;
  }
  case TS_MODEL_TRANSFORMER: {
    ts_transformer_cfg t = ts_model_transformer_cfg(c, act_dim, obs_dim);
    m->tf = ts_transformer_new(&t);
    m->params = &m->tf->params;
    return 0;
  }
  default: return ts_fail("model.type %d unknown", m->type);
  }
}

int ts_model_check_ckpt(const ts_config *c, int act_dim, int obs_dim, ts_h5 *f, const char *group) {
  ts_model m;
  int was = ts_params_shapes_only(1);
  int rc = ts_model_new(&m, c, act_dim, obs_dim);
  ts_params_shapes_only(was);
  if (rc) return -1;
  int64_t n = ts_params_count(m.params), bytes;
  char what[96];
  snprintf(what, sizeof what, "the %s its config describes (values and gradients)", ts_model_type_names[c->model.type]);
  rc = ts_check_array(ts_h5_path(f), what, 1, &n, 2 * (int64_t)sizeof(float), &bytes);
  for (int i = 0; i < m.params->n && !rc; i++) {
    char name[320];
    snprintf(name, sizeof name, "%s/%s", group, m.params->name[i]);
    rc = ts_h5_check_tensor(f, name, m.params->t[i]);
  }
  ts_model_free(&m);
  return rc ? -1 : 0;
}

int ts_model_check_size(const ts_config *c, int act_dim, int obs_dim, const char *origin, int copies, const char *what) {
  ts_model m;
  int was = ts_params_shapes_only(1);
  int rc = ts_model_new(&m, c, act_dim, obs_dim);
  ts_params_shapes_only(was);
  if (rc) return -1;
  int64_t n = ts_params_count(m.params), bytes = 0;
  ts_model_free(&m);
  int64_t lim = ts_max_array_bytes();
  if (ts_mul_ok(n, copies * (int64_t)sizeof(float), &bytes) || bytes > lim)
    return ts_fail("%s: the %s [model] describes has %.1f M parameters; training needs %d float32 copies of them (%s), "
                   "%.2f GiB, above the limit of %lld bytes (%.2f GiB: 16 GiB, the machine's memory or the process's limit)",
                   origin, ts_model_type_names[c->model.type], (double)n / 1e6, copies, what, (double)n * copies * sizeof(float) / (double)(1 << 30), (long long)lim,
                   (double)lim / (double)(1 << 30));
  return 0;
}

void ts_model_free(ts_model *m) {
  ts_unet_free(m->unet);
  ts_transformer_free(m->tf);
  memset(m, 0, sizeof *m);
}

void ts_model_init(ts_model *m, ts_rng *rng) {
  if (m->unet) ts_unet_init(m->unet, rng);
  else ts_transformer_init(m->tf, rng);
}

ts_tensor *ts_model_forward(ts_ctx *c, const ts_model *m, ts_tensor *x, ts_tensor *t, ts_tensor *cond, ts_rng *drop) {
  if (m->unet) return ts_unet_forward(c, m->unet, x, t, cond);
  return ts_transformer_forward(c, m->tf, x, t, cond, drop);
}

void ts_model_decay_mask(const ts_model *m, unsigned char *decay) {
  if (m->tf) ts_transformer_decay_mask(m->tf, decay);
  else memset(decay, 1, (size_t)m->params->n);
}

ts_adamw *ts_model_optimizer(const ts_model *m, const ts_config *c) {
  ts_params *P = m->params;
  ts_adamw *o = ts_adamw_new(P->t, P->n, (float)c->train.lr, (float)c->train.beta1, (float)c->train.beta2,
                             (float)c->train.eps, (float)c->train.weight_decay);
  unsigned char *decay = malloc((size_t)P->n);
  if (!decay) abort();
  ts_model_decay_mask(m, decay);
  ts_adamw_set_decay(o, decay);
  free(decay);
  return o;
}

double ts_model_flops(const ts_model *m) {
  if (m->tf) return ts_transformer_flops(&m->tf->cfg);
  return ts_unet_flops(&m->unet->cfg, m->horizon, 1);
}

int ts_model_write_buffers(struct ts_h5 *f, const ts_model *m) {
  if (!m->tf || !m->tf->mask) return 0;
  const int T = m->tf->cfg.horizon, Tc = 1 + m->tf->cfg.n_obs_steps;
  const char *groups[2] = {"model/", "ema/"};
  char name[64];
  for (int g = 0; g < 2; g++) {
    snprintf(name, sizeof name, "%smask", groups[g]);
    if (ts_h5_write_f32(f, name, m->tf->mask, 2, (int64_t[]){T, T})) return -1;
    snprintf(name, sizeof name, "%smemory_mask", groups[g]);
    if (ts_h5_write_f32(f, name, m->tf->memory_mask, 2, (int64_t[]){T, Tc})) return -1;
    snprintf(name, sizeof name, "%s_dummy_variable", groups[g]);
    if (ts_h5_write_f32(f, name, NULL, 1, (int64_t[]){0})) return -1;
  }
  return 0;
}
