/* kernels.h: the no-grad inference path's arithmetic: a GEMM over packed weights whose
 * operand rows are given as pointers (so a "same" convolution on a zero-padded, channels-last
 * activation reads its input windows in place, with no im2col), a vectorised Mish and the
 * GroupNorm epilogue (the U-Net engine); a vectorised GELU, the residual add + LayerNorm row
 * and one query's attention (the transformer engine). AVX2 + FMA when the CPU has them (checked once), portable C
 * otherwise; both give the same values to float rounding. */
#ifndef TS_KERNELS_H
#define TS_KERNELS_H

#include <math.h>
#include <stddef.h>

#define TS_MR 16 /* output channels per packed panel */

/* Weights W (M x K, row-major) packed as panels of TS_MR rows: panel p holds
 * W[p*16 + j][k] at data[(p*K + k)*16 + j], zero for rows >= M. 64-byte aligned. */
typedef struct ts_packed {
  float *data;
  int M, K, panels;
} ts_packed;

void ts_pack(ts_packed *w, const float *W, int M, int K);
void ts_packed_free(ts_packed *w);

/* out[n][m] = bias[m] + sum_k W[m][k] in[n][k] for rows n < N and the output channels of
 * panels [p0, p1) (m < M). in[n] points to K contiguous floats; out[n] to M floats.
 * bias may be NULL. */
void ts_gemm_rows(const ts_packed *w, const float *const *in, float *const *out, int N, const float *bias,
                  int p0, int p1);

/* Mish(x) = x tanh(softplus(x)) with one exp: tanh(softplus(x)) = w / (w + 2), w = e^x (e^x + 2).
 * The one scalar definition: the autograd op and the kernels' tails use it. */
static inline float ts_mish1(float x) {
  if (x > 20.0f) return x;
  float e = expf(x), w = e * (e + 2.0f);
  return x * w / (w + 2.0f);
}

/* x <- Mish(x), in place. */
void ts_vmish(float *x, int n);

/* One row of a normalised block: d = Mish(z a + s), then d = d scale + shift when scale is
 * given (FiLM), then d += res when res is given; all vectors of n floats. */
void ts_norm_mish_row(float *d, const float *z, const float *a, const float *s, const float *scale,
                      const float *shift, const float *res, int n);

/* Column sums of z (T rows of C floats): out[c] = sum_t z[t][c], or with mean given
 * sum_t (z[t][c] - mean[c])^2. */
void ts_col_sums(const float *z, int T, int C, const float *mean, float *out);

/* x <- GELU(x) = x Phi(x), the exact (erf) form, PyTorch's default; in place. The portable
 * path is the autograd op's 0.5 x (1 + erf(x / sqrt 2)); the AVX2 one evaluates Phi from
 * erf(z) = z P(z^2) for |z| < 1 and erfc(|z|) = exp(Q(|z|)) beyond (polynomial fits, relative
 * error ~2e-6 of GELU everywhere, absolute 0.5 ulp(x)-ish). */
void ts_vgelu(float *x, int n);

/* One row of a pre-norm residual stream: h += a when a is given, then
 * y = (h - mean(h)) / sqrt(var(h) + eps) * gamma + beta (biased variance) over n floats. */
void ts_add_layer_norm_row(float *h, const float *a, const float *gamma, const float *beta, float eps, float *y,
                           int n);

/* One query of scaled dot-product attention over nk >= 1 keys: s_j = scale q.k_j,
 * o = sum_j softmax(s)_j v_j, where key j is k + j kstride and value j is v + j kstride, D
 * floats each; s: nk floats of scratch. */
void ts_attend_row(const float *q, const float *k, const float *v, int kstride, int nk, int D, float scale, float *s,
                   float *o);

/* 1 when the AVX2 + FMA kernels are in use (TSDP_NO_AVX2 in the environment turns them off). */
int ts_kernels_avx2(void);
/* Use the AVX2 kernels (when the CPU has them) or the portable ones; returns ts_kernels_avx2().
 * For tests and comparisons; not while another thread runs a kernel. */
int ts_kernels_set_avx2(int on);

#endif
