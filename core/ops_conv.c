/* ops_conv.c: conv1d (im2col + one GEMM over the batch) and conv_transpose1d (GEMM, then
 * overlap-add), with their backward passes; the column copies run on the process pool. */
#include "ops_internal.h"
#include "pool.h"
#include <string.h>

/* ---------- conv1d via im2col + one GEMM over the whole batch ---------- */

/* The column ops below run over ranges of channels on the process pool (core/pool.h): each
 * channel's rows are written by one thread, in the serial order. */
typedef struct { const float *src; float *dst; int B, C, L, K, stride, pad, Lout; } col_job;

#define COL_OP(NAME, BODY)                                                                                \
  static void NAME##_range(void *arg, int64_t lo, int64_t hi) {                                          \
    const col_job *j = arg;                                                                               \
    BODY(j->src, j->B, j->C, j->L, j->K, j->stride, j->pad, j->Lout, j->dst, (int)lo, (int)hi);          \
  }                                                                                                       \
  static void NAME(const float *src, int B, int C, int L, int K, int stride, int pad, int Lout, float *dst) { \
    col_job j = {src, dst, B, C, L, K, stride, pad, Lout};                                                \
    ts_parallel_for(C, 1 + 8192 / ((int64_t)K * B * Lout + 1), NAME##_range, &j);                         \
  }

/* Output positions l in [*l0, *l1) read input l * stride - pad + k inside [0, L). */
static inline void valid_range(int L, int k, int stride, int pad, int Lout, int *l0, int *l1) {
  int a = pad - k, b = L - 1 + pad - k; /* need a <= l * stride <= b */
  *l0 = a <= 0 ? 0 : (a + stride - 1) / stride;
  *l1 = b < 0 ? 0 : b / stride + 1;
  if (*l1 > Lout) *l1 = Lout;
  if (*l0 > *l1) *l0 = *l1;
}

/* cols (Cin*K, B*Lout) from x (B, Cin, L), channels [c0, c1). */
static void im2col_part(const float *x, int B, int Cin, int L, int K, int stride, int pad, int Lout, float *cols,
                        int c0, int c1) {
  int N = B * Lout;
  for (int ci = c0; ci < c1; ci++)
    for (int k = 0; k < K; k++) {
      float *row = cols + (int64_t)(ci * K + k) * N;
      int l0, l1;
      valid_range(L, k, stride, pad, Lout, &l0, &l1);
      for (int b = 0; b < B; b++) {
        const float *xb = x + ((int64_t)b * Cin + ci) * L;
        float *rb = row + (int64_t)b * Lout;
        for (int l = 0; l < l0; l++) rb[l] = 0.0f;
        if (stride == 1 && l1 > l0) memcpy(rb + l0, xb + l0 + k - pad, (size_t)(l1 - l0) * sizeof(float));
        else
          for (int l = l0; l < l1; l++) rb[l] = xb[l * stride + k - pad];
        for (int l = l1; l < Lout; l++) rb[l] = 0.0f;
      }
    }
}

/* gx (B, Cin, L) += the columns scattered back, channels [c0, c1). */
static void col2im_part(const float *cols, int B, int Cin, int L, int K, int stride, int pad, int Lout, float *gx,
                        int c0, int c1) {
  int N = B * Lout;
  for (int ci = c0; ci < c1; ci++)
    for (int k = 0; k < K; k++) {
      const float *row = cols + (int64_t)(ci * K + k) * N;
      int l0, l1;
      valid_range(L, k, stride, pad, Lout, &l0, &l1);
      for (int b = 0; b < B; b++) {
        float *gb = gx + ((int64_t)b * Cin + ci) * L;
        const float *rb = row + (int64_t)b * Lout;
        for (int l = l0; l < l1; l++) gb[l * stride + k - pad] += rb[l];
      }
    }
}

COL_OP(im2col, im2col_part)
COL_OP(col2im, col2im_part)

/* (B, C, L) <-> (C, B*L), over ranges of (b, ch) pairs */
typedef struct { const float *src; float *dst; int B, C, L, acc; } cm_job;

static void to_cm_range(void *arg, int64_t lo, int64_t hi) {
  const cm_job *j = arg;
  for (int64_t r = lo; r < hi; r++) {
    int b = (int)(r / j->C), ch = (int)(r % j->C);
    memcpy(j->dst + ((int64_t)ch * j->B + b) * j->L, j->src + r * j->L, (size_t)j->L * sizeof(float));
  }
}

static void from_cm_range(void *arg, int64_t lo, int64_t hi) {
  const cm_job *j = arg;
  for (int64_t r = lo; r < hi; r++) {
    int b = (int)(r / j->C), ch = (int)(r % j->C);
    const float *src = j->src + ((int64_t)ch * j->B + b) * j->L;
    float *dst = j->dst + r * j->L;
    if (j->acc)
      for (int l = 0; l < j->L; l++) dst[l] += src[l];
    else memcpy(dst, src, (size_t)j->L * sizeof(float));
  }
}

static void to_cm(const float *x, int B, int C, int L, float *y) {
  cm_job j = {x, y, B, C, L, 0};
  ts_parallel_for((int64_t)B * C, 1 + 8192 / L, to_cm_range, &j);
}
static void from_cm(const float *y, int B, int C, int L, float *x, int accumulate) {
  cm_job j = {y, x, B, C, L, accumulate};
  ts_parallel_for((int64_t)B * C, 1 + 8192 / L, from_cm_range, &j);
}

static void bias_grad(const ts_tensor *o, float *gb) {
  int B = o->shape[0], C = o->shape[1], L = o->shape[2];
  for (int ch = 0; ch < C; ch++)
    for (int b = 0; b < B; b++) {
      const float *g = o->grad + ((int64_t)b * C + ch) * L;
      float s = 0;
      for (int l = 0; l < L; l++) s += g[l];
      gb[ch] += s;
    }
}

static void conv1d_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *x = nd->in[0], *w = nd->in[1], *o = nd->out;
  int B = x->shape[0], Cin = x->shape[1], L = x->shape[2], Cout = w->shape[0], K = w->shape[2];
  int stride = nd->ia[0], pad = nd->ia[1], Lout = o->shape[2], N = B * Lout, CK = Cin * K;
  float *cols = nd->aux;
  float *gy = ts_arena_alloc(&c->arena, (size_t)Cout * N * sizeof(float));
  to_cm(o->grad, B, Cout, Lout, gy);
  float *gw = in_grad(c, nd, 1), *gx = in_grad(c, nd, 0), *gbias = in_grad(c, nd, 2);
  if (gw) ts_gemm(0, 1, Cout, CK, N, 1, gy, N, cols, N, 1, gw, CK);
  if (gx) {
    float *gcols = ts_arena_alloc(&c->arena, (size_t)CK * N * sizeof(float));
    ts_gemm(1, 0, CK, N, Cout, 1, w->data, CK, gy, N, 0, gcols, N);
    col2im(gcols, B, Cin, L, K, stride, pad, Lout, gx);
  }
  if (gbias) bias_grad(o, gbias);
}

ts_tensor *ts_conv1d(ts_ctx *c, ts_tensor *x, ts_tensor *w, ts_tensor *bias, int stride, int pad) {
  TS_CHECK(x->ndim == 3 && w->ndim == 3 && x->shape[1] == w->shape[1], "conv1d: x channels %d, weight in %d",
           x->shape[1], w->shape[1]);
  int B = x->shape[0], Cin = x->shape[1], L = x->shape[2], Cout = w->shape[0], K = w->shape[2];
  int Lout = (L + 2 * pad - K) / stride + 1, N = B * Lout, CK = Cin * K;
  TS_CHECK(Lout > 0, "conv1d: output length %d", Lout);
  float *cols = ts_arena_alloc(&c->arena, (size_t)CK * N * sizeof(float));
  float *y = ts_arena_alloc(&c->arena, (size_t)Cout * N * sizeof(float));
  if (K == 1 && stride == 1 && pad == 0) to_cm(x->data, B, Cin, L, cols);
  else im2col(x->data, B, Cin, L, K, stride, pad, Lout, cols);
  if (bias)
    for (int co = 0; co < Cout; co++)
      for (int j = 0; j < N; j++) y[(int64_t)co * N + j] = bias->data[co];
  ts_gemm(0, 0, Cout, N, CK, 1, w->data, CK, cols, N, bias ? 1 : 0, y, N);
  ts_tensor *o = ts_new(c, 3, (int[]){B, Cout, Lout});
  from_cm(y, B, Cout, Lout, o->data, 0);
  ts_node *n = ts_record(c, conv1d_bw, o, x, w, bias, NULL);
  if (n) {
    n->ia[0] = stride;
    n->ia[1] = pad;
    n->aux = cols;
  }
  return o;
}

/* ---------- conv_transpose1d: cols = W^T X, then scatter (col2im) ----------
 * Its column ops are conv1d's with the lengths swapped: output j = i s - p + k of the
 * transposed conv is input position j of a conv whose output i reads it, so the scatter is
 * col2im(cols, .., L = Lout, .., Lout = L) and the gradient gather is the matching im2col. */

static void convt_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *x = nd->in[0], *w = nd->in[1], *o = nd->out;
  int B = x->shape[0], Cin = x->shape[1], L = x->shape[2], Cout = w->shape[1], K = w->shape[2];
  int s = nd->ia[0], p = nd->ia[1], Lout = o->shape[2], N = B * L, CK = Cout * K;
  float *xcm = nd->aux;
  float *gcols = ts_arena_alloc(&c->arena, (size_t)CK * N * sizeof(float));
  im2col(o->grad, B, Cout, Lout, K, s, p, L, gcols);
  float *gx = in_grad(c, nd, 0), *gw = in_grad(c, nd, 1), *gbias = in_grad(c, nd, 2);
  if (gw) ts_gemm(0, 1, Cin, CK, N, 1, xcm, N, gcols, N, 1, gw, CK);
  if (gx) {
    float *gxcm = ts_arena_alloc(&c->arena, (size_t)Cin * N * sizeof(float));
    ts_gemm(0, 0, Cin, N, CK, 1, w->data, CK, gcols, N, 0, gxcm, N);
    from_cm(gxcm, B, Cin, L, gx, 1);
  }
  if (gbias) bias_grad(o, gbias);
}

ts_tensor *ts_conv_transpose1d(ts_ctx *c, ts_tensor *x, ts_tensor *w, ts_tensor *bias, int stride, int pad) {
  TS_CHECK(x->ndim == 3 && w->ndim == 3 && x->shape[1] == w->shape[0],
           "conv_transpose1d: x channels %d, weight in %d", x->shape[1], w->shape[0]);
  int B = x->shape[0], Cin = x->shape[1], L = x->shape[2], Cout = w->shape[1], K = w->shape[2];
  int Lout = (L - 1) * stride - 2 * pad + K, N = B * L, CK = Cout * K;
  float *xcm = ts_arena_alloc(&c->arena, (size_t)Cin * N * sizeof(float));
  float *cols = ts_arena_alloc(&c->arena, (size_t)CK * N * sizeof(float));
  to_cm(x->data, B, Cin, L, xcm);
  ts_gemm(1, 0, CK, N, Cin, 1, w->data, CK, xcm, N, 0, cols, N);
  ts_tensor *o = ts_new(c, 3, (int[]){B, Cout, Lout});
  for (int b = 0; b < B; b++)
    for (int co = 0; co < Cout; co++)
      for (int j = 0; j < Lout; j++) o->data[((int64_t)b * Cout + co) * Lout + j] = bias ? bias->data[co] : 0.0f;
  col2im(cols, B, Cout, Lout, K, stride, pad, L, o->data);
  ts_node *n = ts_record(c, convt_bw, o, x, w, bias, NULL);
  if (n) {
    n->ia[0] = stride;
    n->ia[1] = pad;
    n->aux = xcm;
  }
  return o;
}
