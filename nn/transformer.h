/* transformer.h: Diffusion Policy's TransformerForDiffusion (the "obs as cond, time as cond"
 * variant with an MLP condition encoder, n_cond_layers = 0), on the autograd core.
 *
 * Condition memory (T_cond = 1 + n_obs_steps tokens): the sinusoidal embedding of t (dim
 * n_emb), then Linear(cond_dim, n_emb) of each observation step; plus cond_pos_emb; then
 * encoder = Linear(n_emb, 4 n_emb) -> Mish -> Linear(4 n_emb, n_emb) per token.
 * Trunk: Linear(input_dim, n_emb) per action token plus pos_emb, then n_layer pre-norm
 * decoder layers (PyTorch nn.TransformerDecoderLayer with norm_first, GELU, feed-forward
 * 4 n_emb):  x += SelfAttn(norm1(x), causal mask); x += CrossAttn(norm2(x), memory, memory
 * mask); x += linear2(GELU(linear1(norm3(x)))). Then ln_f and head = Linear(n_emb, output_dim).
 * Masks (causal_attn): action token i attends to action tokens j <= i, and to condition token
 * s when i >= s - 1 (the time token and the first observation always).
 * Dropout (training only, when a dropout RNG is passed): p_drop_emb on both embedding sums,
 * p_drop_attn on the attention weights, after each attention's output projection, inside
 * the feed-forward (after GELU) and after it, as PyTorch's layer places it.
 *
 * Parameter names are the reference's state_dict keys (input_emb.weight, pos_emb,
 * decoder.layers.3.self_attn.in_proj_weight, ...). */
#ifndef TS_TRANSFORMER_H
#define TS_TRANSFORMER_H

#include "core/ops.h"
#include "core/params.h"
#include "core/rng.h"

typedef struct ts_transformer_cfg {
  int input_dim;   /* action dim (2); also the output dim */
  int horizon;     /* action tokens T (16) */
  int n_obs_steps; /* observation tokens in the memory (2) */
  int cond_dim;    /* observation dim per step (20) */
  int n_emb, n_head, n_layer;
  int causal_attn; /* 1: the masks above; 0: no masks */
  float p_drop_emb, p_drop_attn;
} ts_transformer_cfg;

typedef struct { ts_tensor *w, *b; } ts_tf_wb;

/* PyTorch nn.MultiheadAttention's parameters: in_proj (3E, E) with q, k, v stacked. */
typedef struct { ts_tf_wb in_proj, out_proj; } ts_tf_mha;

typedef struct {
  ts_tf_mha self_attn, cross_attn;
  ts_tf_wb linear1, linear2, norm1, norm2, norm3;
} ts_tf_layer;

typedef struct ts_transformer {
  ts_transformer_cfg cfg;
  ts_params params;
  ts_tf_wb input_emb, cond_obs_emb, enc0, enc2, ln_f, head;
  ts_tensor *pos_emb;      /* (1, T, E) */
  ts_tensor *cond_pos_emb; /* (1, T_cond, E) */
  ts_tf_layer *layers;     /* n_layer */
  float *mask;             /* (T, T) additive: 0 or -inf (NULL without causal_attn) */
  float *memory_mask;      /* (T, T_cond) additive (NULL without causal_attn) */
} ts_transformer;

ts_transformer *ts_transformer_new(const ts_transformer_cfg *cfg);
void ts_transformer_free(ts_transformer *m);
/* The reference's initialisation: Linear and attention weights N(0, 0.02), biases 0,
 * LayerNorm 1 / 0, pos_emb and cond_pos_emb N(0, 0.02). */
void ts_transformer_init(ts_transformer *m, ts_rng *rng);
/* 1 for parameters the reference's optimiser decays (Linear and attention weights), 0 for
 * biases, LayerNorm weights, pos_emb and cond_pos_emb; one flag per params.t[i]. */
void ts_transformer_decay_mask(const ts_transformer *m, unsigned char *decay);
/* x (B, T, input_dim), t (B) timesteps as floats, cond (B, n_obs_steps * cond_dim) (the
 * observation steps back to back) -> eps (B, T, input_dim). drop: NULL for inference (no
 * dropout); otherwise the dropout masks are drawn from it. */
ts_tensor *ts_transformer_forward(ts_ctx *c, const ts_transformer *m, ts_tensor *x, ts_tensor *t, ts_tensor *cond,
                                  ts_rng *drop);
/* Multiply-adds * 2 of one forward at batch 1 (for cost reports). */
double ts_transformer_flops(const ts_transformer_cfg *cfg);

#endif
