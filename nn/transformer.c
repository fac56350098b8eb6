#include "transformer.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ts_tf_wb add_linear(ts_params *p, int in, int out, const char *name) {
  ts_tf_wb r;
  r.w = ts_params_add(p, 2, (int[]){out, in}, "%s.weight", name);
  r.b = ts_params_add(p, 1, (int[]){out}, "%s.bias", name);
  return r;
}

static ts_tf_wb add_norm(ts_params *p, int n, const char *name) {
  ts_tf_wb r;
  r.w = ts_params_add(p, 1, (int[]){n}, "%s.weight", name);
  r.b = ts_params_add(p, 1, (int[]){n}, "%s.bias", name);
  return r;
}

static ts_tf_mha add_mha(ts_params *p, int E, const char *prefix) {
  ts_tf_mha m;
  m.in_proj.w = ts_params_add(p, 2, (int[]){3 * E, E}, "%s.in_proj_weight", prefix);
  m.in_proj.b = ts_params_add(p, 1, (int[]){3 * E}, "%s.in_proj_bias", prefix);
  char n[200];
  snprintf(n, sizeof n, "%s.out_proj", prefix);
  m.out_proj = add_linear(p, E, E, n);
  return m;
}

ts_transformer *ts_transformer_new(const ts_transformer_cfg *cfg) {
  ts_transformer *m = calloc(1, sizeof *m);
  if (!m) abort();
  m->cfg = *cfg;
  const int E = cfg->n_emb, T = cfg->horizon, Tc = 1 + cfg->n_obs_steps;
  ts_params *p = &m->params;
  m->input_emb = add_linear(p, cfg->input_dim, E, "input_emb");
  m->pos_emb = ts_params_add(p, 3, (int[]){1, T, E}, "pos_emb");
  m->cond_obs_emb = add_linear(p, cfg->cond_dim, E, "cond_obs_emb");
  m->cond_pos_emb = ts_params_add(p, 3, (int[]){1, Tc, E}, "cond_pos_emb");
  m->enc0 = add_linear(p, E, 4 * E, "encoder.0");
  m->enc2 = add_linear(p, 4 * E, E, "encoder.2");
  m->layers = calloc((size_t)cfg->n_layer, sizeof *m->layers);
  if (!m->layers) abort();
  char n[200];
  for (int l = 0; l < cfg->n_layer; l++) {
    ts_tf_layer *L = &m->layers[l];
    snprintf(n, sizeof n, "decoder.layers.%d.self_attn", l);
    L->self_attn = add_mha(p, E, n);
    snprintf(n, sizeof n, "decoder.layers.%d.multihead_attn", l);
    L->cross_attn = add_mha(p, E, n);
    snprintf(n, sizeof n, "decoder.layers.%d.linear1", l);
    L->linear1 = add_linear(p, E, 4 * E, n);
    snprintf(n, sizeof n, "decoder.layers.%d.linear2", l);
    L->linear2 = add_linear(p, 4 * E, E, n);
    snprintf(n, sizeof n, "decoder.layers.%d.norm1", l);
    L->norm1 = add_norm(p, E, n);
    snprintf(n, sizeof n, "decoder.layers.%d.norm2", l);
    L->norm2 = add_norm(p, E, n);
    snprintf(n, sizeof n, "decoder.layers.%d.norm3", l);
    L->norm3 = add_norm(p, E, n);
  }
  m->ln_f = add_norm(p, E, "ln_f");
  m->head = add_linear(p, E, cfg->input_dim, "head");
  for (int l = 0; l < cfg->n_layer && m->ln_f.w->data; l++) /* LayerNorm weights start at 1, as PyTorch's */
    for (int k = 0; k < E; k++) m->layers[l].norm1.w->data[k] = m->layers[l].norm2.w->data[k] = m->layers[l].norm3.w->data[k] = 1;
  for (int k = 0; k < E && m->ln_f.w->data; k++) m->ln_f.w->data[k] = 1; /* NULL: shapes only */
  if (cfg->causal_attn) {
    m->mask = malloc((size_t)T * T * sizeof(float));
    m->memory_mask = malloc((size_t)T * Tc * sizeof(float));
    if (!m->mask || !m->memory_mask) abort();
    for (int i = 0; i < T; i++) {
      for (int j = 0; j < T; j++) m->mask[i * T + j] = j <= i ? 0.0f : -INFINITY;
      for (int s = 0; s < Tc; s++) m->memory_mask[i * Tc + s] = i >= s - 1 ? 0.0f : -INFINITY;
    }
  }
  return m;
}

void ts_transformer_free(ts_transformer *m) {
  if (!m) return;
  ts_params_free(&m->params);
  free(m->layers);
  free(m->mask);
  free(m->memory_mask);
  free(m);
}

static int is_norm(const char *name) {
  return strstr(name, ".norm") || !strncmp(name, "ln_f.", 5);
}

void ts_transformer_decay_mask(const ts_transformer *m, unsigned char *decay) {
  for (int i = 0; i < m->params.n; i++) {
    const char *nm = m->params.name[i];
    size_t L = strlen(nm);
    int weight = (L >= 6 && !strcmp(nm + L - 6, "weight")); /* weight, in_proj_weight */
    decay[i] = (unsigned char)(weight && !is_norm(nm));
  }
}

void ts_transformer_init(ts_transformer *m, ts_rng *rng) {
  for (int i = 0; i < m->params.n; i++) {
    ts_tensor *t = m->params.t[i];
    const char *nm = m->params.name[i];
    size_t L = strlen(nm);
    int weight = L >= 6 && !strcmp(nm + L - 6, "weight");
    if (is_norm(nm)) {
      for (int64_t k = 0; k < t->n; k++) t->data[k] = weight ? 1.0f : 0.0f;
    } else if (weight || strstr(nm, "pos_emb")) {
      for (int64_t k = 0; k < t->n; k++) t->data[k] = 0.02f * ts_rng_normal(rng);
    } else { /* biases */
      memset(t->data, 0, (size_t)t->n * sizeof(float));
    }
  }
}

double ts_transformer_flops(const ts_transformer_cfg *c) {
  double E = c->n_emb, T = c->horizon, Tc = 1 + c->n_obs_steps;
  double layer = 2 * T * E * 3 * E + 2 * 2 * T * T * E + 2 * T * E * E      /* self-attention */
                 + 2 * T * E * E + 2 * Tc * E * 2 * E + 2 * 2 * T * Tc * E + 2 * T * E * E /* cross */
                 + 2 * 2 * T * E * 4 * E;                                    /* feed-forward */
  double mem = 2 * c->n_obs_steps * (double)c->cond_dim * E + 2 * Tc * E * 4 * E * 2;
  return c->n_layer * layer + mem + 2 * T * c->input_dim * E * 2;
}

/* Inverted dropout: x * mask / (1 - p), the mask drawn from drop; identity when drop is NULL. */
static ts_tensor *dropout(ts_ctx *c, ts_tensor *x, float p, ts_rng *drop) {
  if (!drop || p <= 0) return x;
  ts_tensor *m = ts_new(c, x->ndim, x->shape);
  float keep = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < m->n; i++) m->data[i] = ts_rng_uniform(drop) < p ? 0.0f : keep;
  return ts_mul(c, x, m);
}

/* (B, T, E) -> (B*H, T, E/H) */
static ts_tensor *split_heads(ts_ctx *c, ts_tensor *x, int H) {
  int B = x->shape[0], T = x->shape[1], D = x->shape[2] / H;
  ts_tensor *h = ts_permute(c, ts_reshape(c, x, 4, (int[]){B, T, H, D}), (int[]){0, 2, 1, 3});
  return ts_reshape(c, h, 3, (int[]){B * H, T, D});
}

/* nn.MultiheadAttention: query from xq (B, Tq, E), keys and values from xkv (B, Tk, E) (the
 * same tensor for self-attention), additive mask (Tq, Tk) or NULL. */
static ts_tensor *mha(ts_ctx *c, const ts_tf_mha *m, ts_tensor *xq, ts_tensor *xkv, const float *mask, int H, float p,
                      ts_rng *drop) {
  int B = xq->shape[0], Tq = xq->shape[1], Tk = xkv->shape[1], E = xq->shape[2], D = E / H;
  ts_tensor *q, *k, *v;
  if (xq == xkv) {
    ts_tensor *qkv = ts_linear(c, xq, m->in_proj.w, m->in_proj.b);
    q = ts_slice(c, qkv, 2, 0, E);
    k = ts_slice(c, qkv, 2, E, 2 * E);
    v = ts_slice(c, qkv, 2, 2 * E, 3 * E);
  } else {
    q = ts_linear(c, xq, ts_slice(c, m->in_proj.w, 0, 0, E), ts_slice(c, m->in_proj.b, 0, 0, E));
    ts_tensor *kv = ts_linear(c, xkv, ts_slice(c, m->in_proj.w, 0, E, 3 * E), ts_slice(c, m->in_proj.b, 0, E, 3 * E));
    k = ts_slice(c, kv, 2, 0, E);
    v = ts_slice(c, kv, 2, E, 2 * E);
  }
  ts_tensor *s = ts_scale(c, ts_matmul(c, split_heads(c, q, H), split_heads(c, k, H), 0, 1), 1.0f / sqrtf((float)D));
  if (mask) s = ts_add(c, s, ts_wrap(c, (float *)mask, 2, (int[]){Tq, Tk}));
  ts_tensor *a = dropout(c, ts_softmax(c, s), p, drop);
  ts_tensor *o = ts_matmul(c, a, split_heads(c, v, H), 0, 0); /* (B*H, Tq, D) */
  o = ts_permute(c, ts_reshape(c, o, 4, (int[]){B, H, Tq, D}), (int[]){0, 2, 1, 3});
  return ts_linear(c, ts_reshape(c, o, 3, (int[]){B, Tq, E}), m->out_proj.w, m->out_proj.b);
}

ts_tensor *ts_transformer_forward(ts_ctx *c, const ts_transformer *m, ts_tensor *x, ts_tensor *t, ts_tensor *cond,
                                  ts_rng *drop) {
  const ts_transformer_cfg *cf = &m->cfg;
  const int B = x->shape[0], E = cf->n_emb, H = cf->n_head, No = cf->n_obs_steps;
  const float pe = cf->p_drop_emb, pa = cf->p_drop_attn, eps = 1e-5f;
  /* Condition memory: [time token, one token per observation step] + cond_pos_emb -> MLP. */
  ts_tensor *parts[2] = {ts_reshape(c, ts_sinusoidal(c, t, E), 3, (int[]){B, 1, E}),
                         ts_linear(c, ts_reshape(c, cond, 3, (int[]){B, No, cf->cond_dim}), m->cond_obs_emb.w,
                                   m->cond_obs_emb.b)};
  ts_tensor *mem = dropout(c, ts_add(c, ts_concat(c, parts, 2, 1), m->cond_pos_emb), pe, drop);
  mem = ts_linear(c, ts_mish(c, ts_linear(c, mem, m->enc0.w, m->enc0.b)), m->enc2.w, m->enc2.b);
  /* Trunk. */
  ts_tensor *h = dropout(c, ts_add(c, ts_linear(c, x, m->input_emb.w, m->input_emb.b), m->pos_emb), pe, drop);
  for (int l = 0; l < cf->n_layer; l++) {
    const ts_tf_layer *L = &m->layers[l];
    ts_tensor *n1 = ts_layer_norm(c, h, L->norm1.w, L->norm1.b, eps);
    h = ts_add(c, h, dropout(c, mha(c, &L->self_attn, n1, n1, m->mask, H, pa, drop), pa, drop));
    ts_tensor *n2 = ts_layer_norm(c, h, L->norm2.w, L->norm2.b, eps);
    h = ts_add(c, h, dropout(c, mha(c, &L->cross_attn, n2, mem, m->memory_mask, H, pa, drop), pa, drop));
    ts_tensor *n3 = ts_layer_norm(c, h, L->norm3.w, L->norm3.b, eps);
    ts_tensor *ff = dropout(c, ts_gelu(c, ts_linear(c, n3, L->linear1.w, L->linear1.b)), pa, drop);
    h = ts_add(c, h, dropout(c, ts_linear(c, ff, L->linear2.w, L->linear2.b), pa, drop));
  }
  h = ts_layer_norm(c, h, m->ln_f.w, m->ln_f.b, eps);
  return ts_linear(c, h, m->head.w, m->head.b);
}
