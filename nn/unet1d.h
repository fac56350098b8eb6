/* unet1d.h: Diffusion Policy's ConditionalUnet1D (docs/math.md §3), FiLM with scale.
 * Parameter names are the reference implementation's PyTorch state_dict keys
 * (diffusion_step_encoder.1.weight, down_modules.0.0.blocks.0.block.0.weight, ...). */
#ifndef TS_UNET1D_H
#define TS_UNET1D_H

#include "core/ops.h"
#include "core/params.h"
#include "core/rng.h"

#define TS_UNET_MAXLEVELS 6

typedef struct ts_unet_cfg {
  int input_dim;        /* action dim, 2 */
  int global_cond_dim;  /* n_obs_steps * obs_dim, 40 */
  int step_embed_dim;   /* 256 */
  int down_dims[TS_UNET_MAXLEVELS];
  int n_levels;
  int kernel_size;      /* 5 */
  int n_groups;         /* 8 */
} ts_unet_cfg;

typedef struct { ts_tensor *w, *b; } ts_wb;
typedef struct { ts_wb conv, norm; } ts_conv_block;
typedef struct {
  ts_conv_block blk[2];
  ts_wb cond, res; /* res.w NULL when in == out */
  int cin, cout;
} ts_crb;

typedef struct ts_unet {
  ts_unet_cfg cfg;
  ts_params params;
  ts_wb step1, step2;
  ts_crb down[TS_UNET_MAXLEVELS][2], mid[2], up[TS_UNET_MAXLEVELS][2];
  ts_wb downsample[TS_UNET_MAXLEVELS], upsample[TS_UNET_MAXLEVELS];
  ts_conv_block final0;
  ts_wb final1;
} ts_unet;

ts_unet *ts_unet_new(const ts_unet_cfg *cfg);
void ts_unet_free(ts_unet *u);
/* PyTorch's default initialisation (GroupNorm weight 1, bias 0). */
void ts_unet_init(ts_unet *u, ts_rng *rng);
/* x (B, horizon, input_dim), t (B) timesteps as floats, cond (B, global_cond_dim) ->
 * eps prediction (B, horizon, input_dim). */
ts_tensor *ts_unet_forward(ts_ctx *c, const ts_unet *u, ts_tensor *x, ts_tensor *t, ts_tensor *cond);
/* Multiply-adds * 2 of one forward at batch 1 over `horizon` steps: every convolution, transposed
 * convolution and linear (biases, GroupNorm and Mish not counted). step_path 0 leaves out what
 * depends on t alone (step MLP and the step half of every FiLM linear), which the inference
 * engine looks up from its timestep table. */
double ts_unet_flops(const ts_unet_cfg *cfg, int horizon, int step_path);

#endif
