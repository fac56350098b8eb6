/* ops_nn.c: GEMM-backed ops (matmul, linear; convolutions are in ops_conv.c), normalisation,
 * activations, softmax, attention and the sinusoidal embedding. */
#include "ops_internal.h"
#include "kernels.h"
#include "pool.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

void ts_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
  if (M == 1 && alpha == 1.0f) { /* a row vector times a matrix (batch-1 linears): GEMV skips sgemm's packing */
    cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, tb ? N : K, tb ? K : N, 1.0f, B, ldb, A, ta ? lda : 1,
                beta, C, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---------- matmul ---------- */

typedef struct { int batch, M, N, K, sa, sb; } mm_dims;

static mm_dims mm_shape(const ts_tensor *a, const ts_tensor *b, int ta, int tb) {
  mm_dims d;
  int ar = a->ndim, br = b->ndim;
  TS_CHECK((ar == 2 || ar == 3) && (br == 2 || br == 3), "matmul: ranks %d, %d", ar, br);
  d.batch = ar == 3 ? a->shape[0] : (br == 3 ? b->shape[0] : 1);
  TS_CHECK(ar == 2 || br == 2 || a->shape[0] == b->shape[0], "matmul: batch %d vs %d", a->shape[0], b->shape[0]);
  int am = a->shape[ar - 2], ak = a->shape[ar - 1], bk = b->shape[br - 2], bn = b->shape[br - 1];
  d.M = ta ? ak : am;
  d.K = ta ? am : ak;
  d.N = tb ? bk : bn;
  TS_CHECK((tb ? bn : bk) == d.K, "matmul: inner dims %d vs %d", d.K, tb ? bn : bk);
  d.sa = ar == 3 ? am * ak : 0;
  d.sb = br == 3 ? bk * bn : 0;
  return d;
}

static void matmul_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *a = nd->in[0], *b = nd->in[1], *o = nd->out;
  int ta = nd->ia[0], tb = nd->ia[1];
  mm_dims d = mm_shape(a, b, ta, tb);
  float *ga = in_grad(c, nd, 0), *gb = in_grad(c, nd, 1);
  int lda = a->shape[a->ndim - 1], ldb = b->shape[b->ndim - 1];
  for (int i = 0; i < d.batch; i++) {
    const float *A = a->data + (int64_t)i * d.sa, *B = b->data + (int64_t)i * d.sb;
    const float *G = o->grad + (int64_t)i * d.M * d.N;
    /* C = op(A) op(B). dop(A) = G op(B)^T, dop(B) = op(A)^T G. */
    if (ga) {
      float *GA = ga + (int64_t)i * d.sa;
      if (!ta) ts_gemm(0, !tb, d.M, d.K, d.N, 1, G, d.N, B, ldb, 1, GA, lda);
      else ts_gemm(tb, 1, d.K, d.M, d.N, 1, B, ldb, G, d.N, 1, GA, lda);
    }
    if (gb) {
      float *GB = gb + (int64_t)i * d.sb;
      if (!tb) ts_gemm(!ta, 0, d.K, d.N, d.M, 1, A, lda, G, d.N, 1, GB, ldb);
      else ts_gemm(1, ta, d.N, d.K, d.M, 1, G, d.N, A, lda, 1, GB, ldb);
    }
  }
}

ts_tensor *ts_matmul(ts_ctx *c, ts_tensor *a, ts_tensor *b, int ta, int tb) {
  mm_dims d = mm_shape(a, b, ta, tb);
  int shape3[3] = {d.batch, d.M, d.N};
  int batched = a->ndim == 3 || b->ndim == 3;
  ts_tensor *o = batched ? ts_new(c, 3, shape3) : ts_new(c, 2, shape3 + 1);
  int lda = a->shape[a->ndim - 1], ldb = b->shape[b->ndim - 1];
  if (!batched || (d.sb == 0 && !ta)) {
    /* (B,M,K) @ (K,N): fold the batch into M for one GEMM. */
    ts_gemm(ta, tb, d.M * d.batch, d.N, d.K, 1, a->data, lda, b->data, ldb, 0, o->data, d.N);
  } else {
    for (int i = 0; i < d.batch; i++)
      ts_gemm(ta, tb, d.M, d.N, d.K, 1, a->data + (int64_t)i * d.sa, lda, b->data + (int64_t)i * d.sb, ldb, 0,
              o->data + (int64_t)i * d.M * d.N, d.N);
  }
  ts_node *n = ts_record(c, matmul_bw, o, a, b, NULL, NULL);
  if (n) {
    n->ia[0] = ta;
    n->ia[1] = tb;
  }
  return o;
}

/* ---------- linear ---------- */

static void linear_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *x = nd->in[0], *w = nd->in[1], *o = nd->out;
  int in = w->shape[1], out = w->shape[0], M = (int)(x->n / in);
  float *gx = in_grad(c, nd, 0), *gw = in_grad(c, nd, 1), *gb = in_grad(c, nd, 2);
  if (gx) ts_gemm(0, 0, M, in, out, 1, o->grad, out, w->data, in, 1, gx, in);
  if (gw) ts_gemm(1, 0, out, in, M, 1, o->grad, out, x->data, in, 1, gw, in);
  if (gb)
    for (int m = 0; m < M; m++)
      for (int j = 0; j < out; j++) gb[j] += o->grad[(int64_t)m * out + j];
}

ts_tensor *ts_linear(ts_ctx *c, ts_tensor *x, ts_tensor *w, ts_tensor *bias) {
  int in = w->shape[1], out = w->shape[0];
  TS_CHECK(w->ndim == 2 && x->shape[x->ndim - 1] == in, "linear: x last dim %d, weight in %d",
           x->shape[x->ndim - 1], in);
  int shape[TS_MAXDIM];
  for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
  shape[x->ndim - 1] = out;
  ts_tensor *o = ts_new(c, x->ndim, shape);
  int M = (int)(x->n / in);
  if (bias)
    for (int m = 0; m < M; m++) memcpy(o->data + (int64_t)m * out, bias->data, (size_t)out * sizeof(float));
  ts_gemm(0, 1, M, out, in, 1, x->data, in, w->data, in, bias ? 1 : 0, o->data, out);
  ts_record(c, linear_bw, o, x, w, bias, NULL);
  return o;
}

/* ---------- normalisation: shared core over rows of `len` with per-channel affine ---------- */

/* Normalise x viewed as R rows of len; the affine index of element j of row r is
 * ch(r, j) = ((r % rows_per_b) * len + j) / chan_len, i.e. channels are contiguous runs of
 * chan_len elements inside a (batch) sample of rows_per_b rows. stats[2r], stats[2r+1] =
 * mean, rstd. */
typedef struct { int R, len, rows_per_b, chan_len; } norm_geom;

static inline int norm_ch(norm_geom g, int r, int j) { return ((r % g.rows_per_b) * g.len + j) / g.chan_len; }

typedef struct { norm_geom g; const float *x, *gamma, *beta, *dy; float eps; float *y, *stats; } norm_job;

static void norm_fwd_range(void *arg, int64_t lo, int64_t hi) {
  const norm_job *j = arg;
  norm_geom g = j->g;
  const float *x = j->x, *gamma = j->gamma, *beta = j->beta;
  float eps = j->eps, *y = j->y, *stats = j->stats;
  for (int r = (int)lo; r < (int)hi; r++) {
    const float *xr = x + (int64_t)r * g.len;
    double m = 0, v = 0;
    for (int j = 0; j < g.len; j++) m += xr[j];
    m /= g.len;
    for (int j = 0; j < g.len; j++) v += (xr[j] - m) * (xr[j] - m);
    v /= g.len;
    float rstd = (float)(1.0 / sqrt(v + eps));
    stats[2 * r] = (float)m;
    stats[2 * r + 1] = rstd;
    for (int j = 0; j < g.len; j++) {
      float xh = (xr[j] - (float)m) * rstd;
      int ch = norm_ch(g, r, j);
      y[(int64_t)r * g.len + j] = gamma ? xh * gamma[ch] + (beta ? beta[ch] : 0) : xh;
    }
  }
}

static void norm_fwd(norm_geom g, const float *x, const float *gamma, const float *beta, float eps, float *y,
                     float *stats) {
  norm_job j = {g, x, gamma, beta, NULL, eps, y, stats};
  ts_parallel_for(g.R, 1 + 4096 / g.len, norm_fwd_range, &j);
}

/* Input gradient rows [lo, hi) (row-local, so any split gives the same values). */
static void norm_gx_range(void *arg, int64_t lo, int64_t hi) {
  const norm_job *jb = arg;
  norm_geom g = jb->g;
  const float *gam = jb->gamma;
  for (int r = (int)lo; r < (int)hi; r++) {
    const float *xr = jb->x + (int64_t)r * g.len, *dy = jb->dy + (int64_t)r * g.len;
    float m = jb->stats[2 * r], rstd = jb->stats[2 * r + 1];
    double s1 = 0, s2 = 0;
    for (int j = 0; j < g.len; j++) {
      int ch = norm_ch(g, r, j);
      float xh = (xr[j] - m) * rstd, dxh = dy[j] * (gam ? gam[ch] : 1.0f);
      s1 += dxh;
      s2 += dxh * xh;
    }
    float a = (float)(s1 / g.len), b = (float)(s2 / g.len);
    for (int j = 0; j < g.len; j++) {
      int ch = norm_ch(g, r, j);
      float xh = (xr[j] - m) * rstd, dxh = dy[j] * (gam ? gam[ch] : 1.0f);
      jb->y[(int64_t)r * g.len + j] += rstd * (dxh - a - xh * b);
    }
  }
}

static void norm_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *x = nd->in[0], *gam = nd->in[1], *o = nd->out;
  norm_geom g = {nd->ia[0], nd->ia[1], nd->ia[2], nd->ia[3]};
  const float *stats = nd->aux;
  float *gx = in_grad(c, nd, 0), *gg = in_grad(c, nd, 1), *gbeta = in_grad(c, nd, 2);
  if (gx) {
    norm_job j = {g, x->data, gam ? gam->data : NULL, NULL, o->grad, 0, gx, (float *)stats};
    ts_parallel_for(g.R, 1 + 4096 / g.len, norm_gx_range, &j);
  }
  if (!gg && !gbeta) return;
  for (int r = 0; r < g.R; r++) { /* affine gradients accumulate across rows: one thread, fixed order */
    const float *xr = x->data + (int64_t)r * g.len, *dy = o->grad + (int64_t)r * g.len;
    float m = stats[2 * r], rstd = stats[2 * r + 1];
    for (int j = 0; j < g.len; j++) {
      int ch = norm_ch(g, r, j);
      float xh = (xr[j] - m) * rstd;
      if (gg) gg[ch] += dy[j] * xh;
      if (gbeta) gbeta[ch] += dy[j];
    }
  }
}

static ts_tensor *norm_common(ts_ctx *c, ts_tensor *x, norm_geom g, ts_tensor *gamma, ts_tensor *beta, float eps) {
  ts_tensor *o = ts_new(c, x->ndim, x->shape);
  float *stats = ts_arena_alloc(&c->arena, (size_t)g.R * 2 * sizeof(float));
  norm_fwd(g, x->data, gamma ? gamma->data : NULL, beta ? beta->data : NULL, eps, o->data, stats);
  ts_node *n = ts_record(c, norm_bw, o, x, gamma, beta, NULL);
  if (n) {
    n->ia[0] = g.R;
    n->ia[1] = g.len;
    n->ia[2] = g.rows_per_b;
    n->ia[3] = g.chan_len;
    n->aux = stats;
  }
  return o;
}

ts_tensor *ts_group_norm(ts_ctx *c, ts_tensor *x, int groups, ts_tensor *gamma, ts_tensor *beta, float eps) {
  int B = x->shape[0], C = x->shape[1];
  TS_CHECK(C % groups == 0, "group_norm: %d channels in %d groups", C, groups);
  int spatial = (int)(x->n / ((int64_t)B * C));
  norm_geom g = {B * groups, (C / groups) * spatial, groups, spatial};
  return norm_common(c, x, g, gamma, beta, eps);
}

ts_tensor *ts_layer_norm(ts_ctx *c, ts_tensor *x, ts_tensor *gamma, ts_tensor *beta, float eps) {
  int D = x->shape[x->ndim - 1];
  norm_geom g = {(int)(x->n / D), D, 1, 1};
  return norm_common(c, x, g, gamma, beta, eps);
}

/* ---------- elementwise activations ---------- */

enum { ACT_MISH, ACT_SILU, ACT_GELU, ACT_SOFTPLUS, ACT_TANH };

static inline float softplus1(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
static inline float sigmoid1(float x) { return 1.0f / (1.0f + expf(-x)); }

static inline float act_f(int k, float x) {
  switch (k) {
  case ACT_MISH: return ts_mish1(x);
  case ACT_SILU: return x * sigmoid1(x);
  case ACT_GELU: return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
  case ACT_SOFTPLUS: return softplus1(x);
  default: return tanhf(x);
  }
}

static inline float act_df(int k, float x, float y) {
  switch (k) {
  case ACT_MISH: { /* d/dx: t + x 4 n (n + 1) / (w + 2)^2 */
    if (x > 20.0f) return 1.0f;
    float n = expf(x), w = n * (n + 2.0f), d = w + 2.0f;
    return w / d + x * 4.0f * n * (n + 1.0f) / (d * d);
  }
  case ACT_SILU: {
    float s = sigmoid1(x);
    return s * (1.0f + x * (1.0f - s));
  }
  case ACT_GELU:
    return 0.5f * (1.0f + erff(x * (float)M_SQRT1_2)) + x * expf(-0.5f * x * x) * 0.3989422804014327f;
  case ACT_SOFTPLUS: return x > 20.0f ? 1.0f : sigmoid1(x);
  default: return 1.0f - y * y;
  }
}

typedef struct { const float *x, *y, *g; float *out; int k; } act_job;

static void act_fw_range(void *arg, int64_t lo, int64_t hi) {
  const act_job *j = arg;
  for (int64_t i = lo; i < hi; i++) j->out[i] = act_f(j->k, j->x[i]);
}

static void act_bw_range(void *arg, int64_t lo, int64_t hi) {
  const act_job *j = arg;
  for (int64_t i = lo; i < hi; i++) j->out[i] += j->g[i] * act_df(j->k, j->x[i], j->y[i]);
}

static void act_bw(ts_ctx *c, ts_node *nd) {
  act_job j = {nd->in[0]->data, nd->out->data, nd->out->grad, in_grad(c, nd, 0), nd->ia[0]};
  ts_parallel_for(nd->out->n, 4096, act_bw_range, &j);
}

static ts_tensor *act(ts_ctx *c, ts_tensor *x, int k) {
  ts_tensor *o = ts_new(c, x->ndim, x->shape);
  act_job j = {x->data, NULL, NULL, o->data, k};
  ts_parallel_for(x->n, 4096, act_fw_range, &j);
  ts_node *n = ts_record(c, act_bw, o, x, NULL, NULL, NULL);
  if (n) n->ia[0] = k;
  return o;
}

ts_tensor *ts_mish(ts_ctx *c, ts_tensor *x) { return act(c, x, ACT_MISH); }
ts_tensor *ts_silu(ts_ctx *c, ts_tensor *x) { return act(c, x, ACT_SILU); }
ts_tensor *ts_gelu(ts_ctx *c, ts_tensor *x) { return act(c, x, ACT_GELU); }
ts_tensor *ts_softplus(ts_ctx *c, ts_tensor *x) { return act(c, x, ACT_SOFTPLUS); }
ts_tensor *ts_tanh(ts_ctx *c, ts_tensor *x) { return act(c, x, ACT_TANH); }

/* ---------- softmax / log-softmax over the last dim ---------- */

static void softmax_rows(const float *x, float *y, int R, int D, int logp) {
  for (int r = 0; r < R; r++) {
    const float *xr = x + (int64_t)r * D;
    float *yr = y + (int64_t)r * D;
    float mx = -INFINITY;
    for (int j = 0; j < D; j++) mx = xr[j] > mx ? xr[j] : mx;
    double s = 0;
    for (int j = 0; j < D; j++) s += exp((double)xr[j] - mx);
    float ls = (float)log(s);
    for (int j = 0; j < D; j++) yr[j] = logp ? xr[j] - mx - ls : (float)(exp((double)xr[j] - mx) / s);
  }
}

static void softmax_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *o = nd->out;
  int D = o->shape[o->ndim - 1], R = (int)(o->n / D), logp = nd->ia[0];
  float *gx = in_grad(c, nd, 0);
  for (int r = 0; r < R; r++) {
    const float *y = o->data + (int64_t)r * D, *g = o->grad + (int64_t)r * D;
    float *gr = gx + (int64_t)r * D;
    double s = 0;
    for (int j = 0; j < D; j++) s += logp ? g[j] : g[j] * y[j];
    for (int j = 0; j < D; j++) gr[j] += logp ? g[j] - expf(y[j]) * (float)s : y[j] * (g[j] - (float)s);
  }
}

static ts_tensor *softmax_op(ts_ctx *c, ts_tensor *x, int logp) {
  ts_tensor *o = ts_new(c, x->ndim, x->shape);
  int D = x->shape[x->ndim - 1];
  softmax_rows(x->data, o->data, (int)(x->n / D), D, logp);
  ts_node *n = ts_record(c, softmax_bw, o, x, NULL, NULL, NULL);
  if (n) n->ia[0] = logp;
  return o;
}

ts_tensor *ts_softmax(ts_ctx *c, ts_tensor *x) { return softmax_op(c, x, 0); }
ts_tensor *ts_log_softmax(ts_ctx *c, ts_tensor *x) { return softmax_op(c, x, 1); }

/* ---------- attention, composed from batched matmul, scale, mask and softmax ---------- */

ts_tensor *ts_attention(ts_ctx *c, ts_tensor *q, ts_tensor *k, ts_tensor *v, ts_tensor *mask) {
  TS_CHECK(q->ndim == 4 && k->ndim == 4 && v->ndim == 4, "attention: expects (B,H,T,D)");
  int B = q->shape[0], H = q->shape[1], Tq = q->shape[2], D = q->shape[3], Tk = k->shape[2];
  TS_CHECK(k->shape[3] == D && v->shape[2] == Tk, "attention: k/v shapes");
  ts_tensor *q3 = ts_reshape(c, q, 3, (int[]){B * H, Tq, D});
  ts_tensor *k3 = ts_reshape(c, k, 3, (int[]){B * H, Tk, D});
  ts_tensor *v3 = ts_reshape(c, v, 3, (int[]){B * H, Tk, v->shape[3]});
  ts_tensor *s = ts_scale(c, ts_matmul(c, q3, k3, 0, 1), 1.0f / sqrtf((float)D));
  if (mask) s = ts_add(c, s, mask);
  ts_tensor *o = ts_matmul(c, ts_softmax(c, s), v3, 0, 0);
  return ts_reshape(c, o, 4, (int[]){B, H, Tq, v->shape[3]});
}

/* ---------- sinusoidal embedding ---------- */

static void sinus_bw(ts_ctx *c, ts_node *nd) {
  float *gt = in_grad(c, nd, 0);
  int B = nd->out->shape[0], dim = nd->out->shape[1], half = dim / 2;
  for (int b = 0; b < B; b++) {
    float t = nd->in[0]->data[b];
    const float *g = nd->out->grad + (int64_t)b * dim;
    for (int k = 0; k < half; k++) {
      float f = expf(-(float)k * logf(10000.0f) / (float)(half - 1));
      gt[b] += g[k] * f * cosf(t * f) - g[half + k] * f * sinf(t * f);
    }
  }
}

ts_tensor *ts_sinusoidal(ts_ctx *c, ts_tensor *t, int dim) {
  int B = (int)t->n, half = dim / 2;
  ts_tensor *o = ts_new(c, 2, (int[]){B, dim});
  for (int b = 0; b < B; b++)
    for (int k = 0; k < half; k++) {
      float f = expf(-(float)k * logf(10000.0f) / (float)(half - 1));
      o->data[(int64_t)b * dim + k] = sinf(t->data[b] * f);
      o->data[(int64_t)b * dim + half + k] = cosf(t->data[b] * f);
    }
  ts_record(c, sinus_bw, o, t, NULL, NULL, NULL);
  return o;
}
