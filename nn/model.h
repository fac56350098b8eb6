/* model.h: the noise-prediction network a config names (`model.type`): Diffusion Policy's
 * ConditionalUnet1D or its TransformerForDiffusion, behind one training-side interface, so
 * training, checkpoints and the samplers' reference path do not care which one it is.
 *
 * Both take x (B, horizon, act_dim), t (B) and the normalised observation history
 * cond (B, n_obs_steps * obs_dim) (the U-Net reads it as one flat global condition, the
 * Transformer as n_obs_steps tokens) and return eps like x. */
#ifndef TS_MODEL_H
#define TS_MODEL_H

#include "core/config.h"
#include "core/h5io.h"
#include "nn/transformer.h"
#include "nn/unet1d.h"

typedef struct ts_model {
  int type;             /* ts_model_type */
  ts_unet *unet;        /* type TS_MODEL_UNET */
  ts_transformer *tf;   /* type TS_MODEL_TRANSFORMER */
  ts_params *params;    /* the network's named parameters (its state_dict) */
  int horizon, act_dim, obs_dim, n_obs_steps, cond_dim;
} ts_model;

/* Build the network the config describes for act_dim actions and obs_dim observations
 * (parameters zero; call ts_model_init or load them). */
int ts_model_new(ts_model *m, const ts_config *c, int act_dim, int obs_dim);
void ts_model_free(ts_model *m);
/* Before a loader builds the network a checkpoint's config describes: sizes it without
 * allocating (ts_params_shapes_only), refuses one whose values and gradients would pass
 * ts_max_array_bytes, and checks every tensor group/NAME of the open file f for presence,
 * float32 and the shape the config gives. So a small hostile file cannot make the loader
 * allocate the gigabytes its config claims. 0, or -1 with one line naming the file. */
int ts_model_check_ckpt(const ts_config *c, int act_dim, int obs_dim, ts_h5 *f, const char *group);
/* Before a trainer builds the network its config describes: counts its parameters with a
 * shapes-only build (nothing allocated) and refuses, in one line naming origin (the config),
 * the parameter count and the bytes, when `copies` float32 copies of them (what: e.g.
 * "values, gradients, AdamW m and v, EMA") pass ts_max_array_bytes. 0 or -1. */
int ts_model_check_size(const ts_config *c, int act_dim, int obs_dim, const char *origin, int copies, const char *what);
/* The reference implementation's initialisation for that architecture. */
void ts_model_init(ts_model *m, ts_rng *rng);
/* drop: dropout RNG in training (the Transformer's dropout), NULL for inference. */
ts_tensor *ts_model_forward(ts_ctx *c, const ts_model *m, ts_tensor *x, ts_tensor *t, ts_tensor *cond, ts_rng *drop);
/* The reference optimiser's weight-decay groups, one flag per params->t[i]: the U-Net decays
 * every parameter, the Transformer only Linear and attention weights. */
void ts_model_decay_mask(const ts_model *m, unsigned char *decay);
/* Write the state_dict entries that are not parameters under model/ and ema/ (the
 * Transformer's `mask` and `memory_mask` buffers, 0 or -inf, and its empty `_dummy_variable`),
 * so a PyTorch user's load_state_dict(strict=True) finds every key; loaders here ignore them. */
struct ts_h5;
int ts_model_write_buffers(struct ts_h5 *f, const ts_model *m);
/* AdamW over m's parameters with the config's [train] lr, betas, eps and weight decay, applied
 * to the reference's decay groups (ts_model_decay_mask). */
struct ts_adamw *ts_model_optimizer(const ts_model *m, const ts_config *c);
/* 2 x multiply-adds of one batch-1 forward. */
double ts_model_flops(const ts_model *m);

ts_unet_cfg ts_model_unet_cfg(const ts_config *c, int act_dim, int obs_dim);
ts_transformer_cfg ts_model_transformer_cfg(const ts_config *c, int act_dim, int obs_dim);

#endif
