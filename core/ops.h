/* ops.h: differentiable ops on ts_tensor. Every op allocates its output in the context's
 * arena and records a backward node when grad mode is on and an input requires grad.
 * Shapes are the caller's contract: a mismatch is a programming error and aborts with the
 * op's name and both shapes (bad *input data* is checked before it reaches an op). */
#ifndef TS_OPS_H
#define TS_OPS_H

#include "tensor.h"

/* ---- elementwise, broadcasting (numpy rules, aligned on the right) ---- */
ts_tensor *ts_add(ts_ctx *c, ts_tensor *a, ts_tensor *b);
ts_tensor *ts_sub(ts_ctx *c, ts_tensor *a, ts_tensor *b);
ts_tensor *ts_mul(ts_ctx *c, ts_tensor *a, ts_tensor *b);
ts_tensor *ts_scale(ts_ctx *c, ts_tensor *a, float s);

/* ---- reductions ---- */
ts_tensor *ts_sum(ts_ctx *c, ts_tensor *x, int axis, int keepdim);
ts_tensor *ts_mean(ts_ctx *c, ts_tensor *x, int axis, int keepdim);
ts_tensor *ts_sum_all(ts_ctx *c, ts_tensor *x);  /* shape (1) */
ts_tensor *ts_mean_all(ts_ctx *c, ts_tensor *x); /* shape (1) */

/* ---- shape ---- */
ts_tensor *ts_reshape(ts_ctx *c, ts_tensor *x, int ndim, const int *shape); /* view, -1 allowed once */
ts_tensor *ts_permute(ts_ctx *c, ts_tensor *x, const int *perm);
ts_tensor *ts_transpose(ts_ctx *c, ts_tensor *x, int d0, int d1);
ts_tensor *ts_concat(ts_ctx *c, ts_tensor **xs, int n, int axis);
ts_tensor *ts_slice(ts_ctx *c, ts_tensor *x, int axis, int start, int end);

/* ---- linear algebra (OpenBLAS sgemm) ---- */
/* a (M,K) or (B,M,K), b (K,N) or (B,K,N); ta/tb transpose the last two dims of a/b. */
ts_tensor *ts_matmul(ts_ctx *c, ts_tensor *a, ts_tensor *b, int ta, int tb);
/* x (..., in) @ w^T + bias; w (out, in) as PyTorch's nn.Linear; bias (out) or NULL. */
ts_tensor *ts_linear(ts_ctx *c, ts_tensor *x, ts_tensor *w, ts_tensor *bias);

/* ---- convolutions, channels-first (B, C, L), weights in PyTorch layout ---- */
/* w (Cout, Cin, K); out length (L + 2 pad - K) / stride + 1. */
ts_tensor *ts_conv1d(ts_ctx *c, ts_tensor *x, ts_tensor *w, ts_tensor *bias, int stride, int pad);
/* w (Cin, Cout, K); out length (L - 1) stride - 2 pad + K. */
ts_tensor *ts_conv_transpose1d(ts_ctx *c, ts_tensor *x, ts_tensor *w, ts_tensor *bias, int stride,
                               int pad);

/* ---- normalisation ---- */
/* x (B, C, ...) with C divisible by groups; gamma, beta (C). */
ts_tensor *ts_group_norm(ts_ctx *c, ts_tensor *x, int groups, ts_tensor *gamma, ts_tensor *beta,
                         float eps);
/* over the last dim; gamma, beta (D) or NULL. */
ts_tensor *ts_layer_norm(ts_ctx *c, ts_tensor *x, ts_tensor *gamma, ts_tensor *beta, float eps);

/* ---- activations ---- */
ts_tensor *ts_mish(ts_ctx *c, ts_tensor *x);
ts_tensor *ts_silu(ts_ctx *c, ts_tensor *x);
ts_tensor *ts_gelu(ts_ctx *c, ts_tensor *x); /* exact (erf), PyTorch's default */
ts_tensor *ts_softplus(ts_ctx *c, ts_tensor *x); /* beta 1, threshold 20, as PyTorch */
ts_tensor *ts_tanh(ts_ctx *c, ts_tensor *x);
ts_tensor *ts_softmax(ts_ctx *c, ts_tensor *x);     /* over the last dim */
ts_tensor *ts_log_softmax(ts_ctx *c, ts_tensor *x); /* over the last dim */

/* ---- attention ---- */
/* q (B,H,Tq,D), k and v (B,H,Tk,D), mask (Tq,Tk) added to the scores (use -INFINITY to
 * block) or NULL. softmax(q k^T / sqrt(D) + mask) v -> (B,H,Tq,D). */
ts_tensor *ts_attention(ts_ctx *c, ts_tensor *q, ts_tensor *k, ts_tensor *v, ts_tensor *mask);

/* ---- embeddings ---- */
/* t (B) -> (B, dim): [sin(t f_k), cos(t f_k)], f_k = exp(-k ln(10000) / (dim/2 - 1)). */
ts_tensor *ts_sinusoidal(ts_ctx *c, ts_tensor *t, int dim);

/* ---- losses and log-probabilities ---- */
ts_tensor *ts_mse(ts_ctx *c, ts_tensor *pred, ts_tensor *target); /* mean over all, shape (1) */
/* logits (B, K), actions (B) class indices -> log p(action) (B). */
ts_tensor *ts_categorical_logprob(ts_ctx *c, ts_tensor *logits, const int *actions);
ts_tensor *ts_categorical_entropy(ts_ctx *c, ts_tensor *logits); /* (B) */
/* x, mean (B, D); log_std (B, D) or (D) -> sum_d log N(x | mean, exp(log_std)^2)  (B). */
ts_tensor *ts_gaussian_logprob(ts_ctx *c, ts_tensor *x, ts_tensor *mean, ts_tensor *log_std);

#endif
