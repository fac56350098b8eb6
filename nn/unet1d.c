#include "unet1d.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ts_wb add_conv(ts_params *p, int cin, int cout, int k, const char *name) {
  ts_wb r;
  r.w = ts_params_add(p, 3, (int[]){cout, cin, k}, "%s.weight", name);
  r.b = ts_params_add(p, 1, (int[]){cout}, "%s.bias", name);
  return r;
}

static ts_wb add_convt(ts_params *p, int cin, int cout, int k, const char *name) {
  ts_wb r;
  r.w = ts_params_add(p, 3, (int[]){cin, cout, k}, "%s.weight", name);
  r.b = ts_params_add(p, 1, (int[]){cout}, "%s.bias", name);
  return r;
}

static ts_wb add_linear(ts_params *p, int in, int out, const char *name) {
  ts_wb r;
  r.w = ts_params_add(p, 2, (int[]){out, in}, "%s.weight", name);
  r.b = ts_params_add(p, 1, (int[]){out}, "%s.bias", name);
  return r;
}

static ts_wb add_norm(ts_params *p, int c, const char *name) {
  ts_wb r;
  r.w = ts_params_add(p, 1, (int[]){c}, "%s.weight", name);
  r.b = ts_params_add(p, 1, (int[]){c}, "%s.bias", name);
  return r;
}

static ts_conv_block add_block(ts_params *p, int cin, int cout, int k, const char *prefix) {
  char n[200];
  ts_conv_block b;
  snprintf(n, sizeof n, "%s.block.0", prefix);
  b.conv = add_conv(p, cin, cout, k, n);
  snprintf(n, sizeof n, "%s.block.1", prefix);
  b.norm = add_norm(p, cout, n);
  return b;
}

static ts_crb add_crb(ts_params *p, int cin, int cout, int cond_dim, int k, const char *prefix) {
  char n[200];
  ts_crb r;
  memset(&r, 0, sizeof r);
  r.cin = cin;
  r.cout = cout;
  for (int i = 0; i < 2; i++) {
    snprintf(n, sizeof n, "%s.blocks.%d", prefix, i);
    r.blk[i] = add_block(p, i ? cout : cin, cout, k, n);
  }
  snprintf(n, sizeof n, "%s.cond_encoder.1", prefix);
  r.cond = add_linear(p, cond_dim, 2 * cout, n);
  if (cin != cout) {
    snprintf(n, sizeof n, "%s.residual_conv", prefix);
    r.res = add_conv(p, cin, cout, 1, n);
  }
  return r;
}

ts_unet *ts_unet_new(const ts_unet_cfg *cfg) {
  ts_unet *u = calloc(1, sizeof *u);
  if (!u) abort();
  u->cfg = *cfg;
  ts_params *p = &u->params;
  int d = cfg->step_embed_dim, cond = d + cfg->global_cond_dim, k = cfg->kernel_size, L = cfg->n_levels;
  const int *D = cfg->down_dims;
  u->step1 = add_linear(p, d, 4 * d, "diffusion_step_encoder.1");
  u->step2 = add_linear(p, 4 * d, d, "diffusion_step_encoder.3");
  char n[200];
  /* Registration order follows the reference module order: step encoder, mid, down, up, final
   * (order only matters for readability of listings; loading goes by name). */
  for (int i = 0; i < 2; i++) {
    snprintf(n, sizeof n, "mid_modules.%d", i);
    u->mid[i] = add_crb(p, D[L - 1], D[L - 1], cond, k, n);
  }
  for (int l = 0; l < L; l++) {
    int cin = l ? D[l - 1] : cfg->input_dim;
    for (int i = 0; i < 2; i++) {
      snprintf(n, sizeof n, "down_modules.%d.%d", l, i);
      u->down[l][i] = add_crb(p, i ? D[l] : cin, D[l], cond, k, n);
    }
    if (l < L - 1) {
      snprintf(n, sizeof n, "down_modules.%d.2.conv", l);
      u->downsample[l] = add_conv(p, D[l], D[l], 3, n);
    }
  }
  /* Up level j pairs with (in, out) = (D[L-2-j], D[L-1-j]). */
  for (int j = 0; j < L - 1; j++) {
    int din = D[L - 2 - j], dout = D[L - 1 - j];
    for (int i = 0; i < 2; i++) {
      snprintf(n, sizeof n, "up_modules.%d.%d", j, i);
      u->up[j][i] = add_crb(p, i ? din : 2 * dout, din, cond, k, n);
    }
    snprintf(n, sizeof n, "up_modules.%d.2.conv", j);
    u->upsample[j] = add_convt(p, din, din, 4, n);
  }
  u->final0 = add_block(p, D[0], D[0], k, "final_conv.0");
  u->final1 = add_conv(p, D[0], cfg->input_dim, 1, "final_conv.1");
  return u;
}

void ts_unet_free(ts_unet *u) {
  if (!u) return;
  ts_params_free(&u->params);
  free(u);
}

void ts_unet_init(ts_unet *u, ts_rng *rng) {
  ts_params *p = &u->params;
  for (int i = 0; i < p->n; i++) {
    const char *nm = p->name[i];
    size_t len = strlen(nm);
    ts_tensor *t = p->t[i];
    int is_w = len > 7 && strcmp(nm + len - 7, ".weight") == 0;
    if (!is_w) continue;
    ts_tensor *b = (i + 1 < p->n) ? p->t[i + 1] : NULL;
    if (t->ndim == 1) { /* GroupNorm */
      for (int64_t j = 0; j < t->n; j++) t->data[j] = 1.0f;
      memset(b->data, 0, (size_t)b->n * sizeof(float));
      continue;
    }
    /* fan_in: Linear in, Conv1d in*k, ConvTranspose1d weight (in, out, k): PyTorch uses
     * dim 1 * k as fan_in for it. */
    int fan_in = t->ndim == 2 ? t->shape[1] : t->shape[1] * t->shape[2];
    ts_init_uniform_fan_in(t, b, fan_in, rng);
  }
}

static ts_tensor *conv_block(ts_ctx *c, const ts_conv_block *b, ts_tensor *x, int groups) {
  int k = b->conv.w->shape[2];
  ts_tensor *h = ts_conv1d(c, x, b->conv.w, b->conv.b, 1, k / 2);
  h = ts_group_norm(c, h, groups, b->norm.w, b->norm.b, 1e-5f);
  return ts_mish(c, h);
}

/* FiLM residual block; cond_act = Mish(global feature), shared by every block. */
static ts_tensor *crb(ts_ctx *c, const ts_crb *r, ts_tensor *x, ts_tensor *cond_act, int groups) {
  int B = x->shape[0];
  ts_tensor *h = conv_block(c, &r->blk[0], x, groups);
  ts_tensor *e = ts_linear(c, cond_act, r->cond.w, r->cond.b); /* (B, 2 cout) */
  e = ts_reshape(c, e, 3, (int[]){B, 2 * r->cout, 1});
  ts_tensor *scale = ts_slice(c, e, 1, 0, r->cout), *bias = ts_slice(c, e, 1, r->cout, 2 * r->cout);
  h = ts_add(c, ts_mul(c, h, scale), bias);
  h = conv_block(c, &r->blk[1], h, groups);
  ts_tensor *res = r->res.w ? ts_conv1d(c, x, r->res.w, r->res.b, 1, 0) : x;
  return ts_add(c, h, res);
}

ts_tensor *ts_unet_forward(ts_ctx *c, const ts_unet *u, ts_tensor *x, ts_tensor *t, ts_tensor *cond) {
  const ts_unet_cfg *cf = &u->cfg;
  int G = cf->n_groups, L = cf->n_levels;
  ts_tensor *emb = ts_sinusoidal(c, t, cf->step_embed_dim);
  emb = ts_linear(c, ts_mish(c, ts_linear(c, emb, u->step1.w, u->step1.b)), u->step2.w, u->step2.b);
  ts_tensor *gf = cond ? ts_concat(c, (ts_tensor *[]){emb, cond}, 2, 1) : emb;
  ts_tensor *ga = ts_mish(c, gf); /* cond_encoder = Mish -> Linear */
  ts_tensor *h = ts_transpose(c, x, 1, 2); /* (B, input_dim, horizon) */
  ts_tensor *skip[TS_UNET_MAXLEVELS];
  for (int l = 0; l < L; l++) {
    h = crb(c, &u->down[l][0], h, ga, G);
    h = crb(c, &u->down[l][1], h, ga, G);
    skip[l] = h;
    if (l < L - 1) h = ts_conv1d(c, h, u->downsample[l].w, u->downsample[l].b, 2, 1);
  }
  h = crb(c, &u->mid[0], h, ga, G);
  h = crb(c, &u->mid[1], h, ga, G);
  for (int j = 0; j < L - 1; j++) {
    h = ts_concat(c, (ts_tensor *[]){h, skip[L - 1 - j]}, 2, 1);
    h = crb(c, &u->up[j][0], h, ga, G);
    h = crb(c, &u->up[j][1], h, ga, G);
    h = ts_conv_transpose1d(c, h, u->upsample[j].w, u->upsample[j].b, 2, 1);
  }
  h = conv_block(c, &u->final0, h, G);
  h = ts_conv1d(c, h, u->final1.w, u->final1.b, 1, 0);
  return ts_transpose(c, h, 1, 2);
}

/* Multiply-adds of one residual block at length len: two kernel-k convolutions, the 1x1
 * residual convolution when the widths differ, and the obs (and optionally step) inputs of the
 * FiLM linear. */
static double crb_macs(const ts_unet_cfg *c, int cin, int cout, int len, int step_path) {
  int k = c->kernel_size, film_in = c->global_cond_dim + (step_path ? c->step_embed_dim : 0);
  double m = (double)len * cout * cin * k + (double)len * cout * cout * k + (double)film_in * 2 * cout;
  if (cin != cout) m += (double)len * cout * cin;
  return m;
}

double ts_unet_flops(const ts_unet_cfg *c, int horizon, int step_path) {
  const int *D = c->down_dims, L = c->n_levels, d = c->step_embed_dim;
  double m = step_path ? 8.0 * d * d : 0; /* step MLP: d -> 4d -> d */
  for (int l = 0; l < L; l++) {
    int len = horizon >> l, cin = l ? D[l - 1] : c->input_dim;
    m += crb_macs(c, cin, D[l], len, step_path) + crb_macs(c, D[l], D[l], len, step_path);
    if (l < L - 1) m += (double)(len / 2) * D[l] * D[l] * 3; /* stride-2 kernel-3 downsampling */
  }
  m += 2 * crb_macs(c, D[L - 1], D[L - 1], horizon >> (L - 1), step_path);
  for (int j = 0; j < L - 1; j++) {
    int din = D[L - 2 - j], dout = D[L - 1 - j], len = horizon >> (L - 1 - j);
    m += crb_macs(c, 2 * dout, din, len, step_path) + crb_macs(c, din, din, len, step_path);
    m += (double)len * din * din * 4; /* kernel-4 stride-2 transposed convolution: 4 taps per input step */
  }
  m += (double)horizon * D[0] * D[0] * c->kernel_size + (double)horizon * c->input_dim * D[0];
  return 2 * m;
}
