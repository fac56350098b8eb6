#include "kernels.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TS_X86 1
#else
#define TS_X86 0
#endif

/* ---------- packing ---------- */

void ts_pack(ts_packed *w, const float *W, int M, int K) {
  w->M = M;
  w->K = K;
  w->panels = (M + TS_MR - 1) / TS_MR;
  size_t n = (size_t)w->panels * K * TS_MR, bytes = (n * sizeof(float) + 63) / 64 * 64;
  w->data = aligned_alloc(64, bytes ? bytes : 64);
  if (!w->data) abort();
  memset(w->data, 0, bytes);
  for (int m = 0; m < M; m++) {
    float *dst = w->data + (size_t)(m / TS_MR) * K * TS_MR + m % TS_MR;
    for (int k = 0; k < K; k++) dst[(size_t)k * TS_MR] = W[(size_t)m * K + k];
  }
}

void ts_packed_free(ts_packed *w) {
  free(w->data);
  memset(w, 0, sizeof *w);
}

/* ---------- portable kernels ---------- */

/* One tile: rows r[0..nr) (nr <= 4) times one 16-channel panel a (K x 16). */
static void tile_c(int K, const float *a, const float *const *r, float *const *o, int nr, int mr,
                   const float *bias, const char *pf, int every) {
  (void)pf;
  (void)every;
  float acc[4][TS_MR] = {{0}};
  for (int j = 0; j < nr; j++) {
    const float *x = r[j];
    for (int k = 0; k < K; k++) {
      float v = x[k];
      const float *ak = a + (size_t)k * TS_MR;
      for (int i = 0; i < TS_MR; i++) acc[j][i] += ak[i] * v;
    }
  }
  for (int j = 0; j < nr; j++)
    for (int i = 0; i < mr; i++) o[j][i] = acc[j][i] + (bias ? bias[i] : 0.0f);
}

static void mish_c(float *x, int n) {
  for (int i = 0; i < n; i++) x[i] = ts_mish1(x[i]);
}

static void norm_row_c(float *d, const float *z, const float *a, const float *s, const float *sc, const float *sh,
                       const float *r, int n) {
  for (int i = 0; i < n; i++) d[i] = z[i] * a[i] + s[i];
  mish_c(d, n);
  if (sc)
    for (int i = 0; i < n; i++) d[i] = d[i] * sc[i] + sh[i];
  if (r)
    for (int i = 0; i < n; i++) d[i] += r[i];
}

static void col_sums_c(const float *z, int T, int C, const float *m, float *out) {
  memset(out, 0, (size_t)C * sizeof(float));
  for (int t = 0; t < T; t++) {
    const float *zt = z + (size_t)t * C;
    if (m)
      for (int c = 0; c < C; c++) out[c] += (zt[c] - m[c]) * (zt[c] - m[c]);
    else
      for (int c = 0; c < C; c++) out[c] += zt[c];
  }
}

static void gelu_c(float *x, int n) { /* as the autograd op */
  for (int i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

static void add_ln_c(float *h, const float *a, const float *g, const float *b, float eps, float *y, int n) {
  double m = 0, v = 0;
  for (int i = 0; i < n; i++) {
    if (a) h[i] += a[i];
    m += h[i];
  }
  m /= n;
  for (int i = 0; i < n; i++) v += (h[i] - m) * (h[i] - m);
  float rstd = (float)(1.0 / sqrt(v / n + eps)), mf = (float)m;
  for (int i = 0; i < n; i++) y[i] = (h[i] - mf) * rstd * g[i] + b[i];
}

/* softmax(s) over nk scores in place; returns 1 / sum of the exponentials. */
static float softmax_inplace(float *s, int nk) {
  float mx = s[0], sum = 0;
  for (int j = 1; j < nk; j++) mx = s[j] > mx ? s[j] : mx;
  for (int j = 0; j < nk; j++) {
    s[j] = expf(s[j] - mx);
    sum += s[j];
  }
  return 1.0f / sum;
}

static void attend_c(const float *q, const float *k, const float *v, int ks, int nk, int D, float scale, float *s,
                     float *o) {
  for (int j = 0; j < nk; j++) {
    const float *kj = k + (size_t)j * ks;
    float acc = 0;
    for (int d = 0; d < D; d++) acc += q[d] * kj[d];
    s[j] = acc * scale;
  }
  float inv = softmax_inplace(s, nk);
  for (int d = 0; d < D; d++) o[d] = 0;
  for (int j = 0; j < nk; j++) {
    const float *vj = v + (size_t)j * ks;
    for (int d = 0; d < D; d++) o[d] += s[j] * vj[d];
  }
  for (int d = 0; d < D; d++) o[d] *= inv;
}

/* ---------- AVX2 + FMA kernels ---------- */

#if TS_X86
#define AVX2 __attribute__((target("avx2,fma")))

/* pf: when not NULL, one cache line of weights to prefetch every `every` values of k, from pf on
 * (ts_gemm_rows spreads the next panel over the tiles of the current one). */
AVX2 static void tile_avx2(int K, const float *a, const float *const *r, float *const *o, int nr, int mr,
                           const float *bias, const char *pf, int every) {
  const float *r0 = r[0], *r1 = r[nr > 1], *r2 = r[nr > 2 ? 2 : 0], *r3 = r[nr > 3 ? 3 : 0];
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
#define ROW_FMA(rp, lo, hi)             \
  b = _mm256_broadcast_ss(rp + k);      \
  lo = _mm256_fmadd_ps(a0, b, lo);      \
  hi = _mm256_fmadd_ps(a1, b, hi)
#define STEP                                                          \
  {                                                                   \
    __m256 a0 = _mm256_load_ps(a), a1 = _mm256_load_ps(a + 8), b;     \
    ROW_FMA(r0, c00, c01);                                            \
    ROW_FMA(r1, c10, c11);                                            \
    ROW_FMA(r2, c20, c21);                                            \
    ROW_FMA(r3, c30, c31);                                            \
  }
  if (pf) {
    for (int k = 0, cnt = every; k < K; k++, a += TS_MR) {
      STEP
      if (--cnt == 0) {
        _mm_prefetch(pf, _MM_HINT_T0);
        pf += 64;
        cnt = every;
      }
    }
  } else {
    for (int k = 0; k < K; k++, a += TS_MR) STEP
  }
#undef STEP
#undef ROW_FMA
  float tb[TS_MR] = {0};
  if (bias) memcpy(tb, bias, (size_t)mr * sizeof(float));
  __m256 b0 = _mm256_loadu_ps(tb), b1 = _mm256_loadu_ps(tb + 8);
  __m256 c[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
  for (int j = 0; j < nr; j++) {
    __m256 lo = _mm256_add_ps(c[j][0], b0), hi = _mm256_add_ps(c[j][1], b1);
    if (mr == TS_MR) {
      _mm256_storeu_ps(o[j], lo);
      _mm256_storeu_ps(o[j] + 8, hi);
    } else {
      float t[TS_MR];
      _mm256_storeu_ps(t, lo);
      _mm256_storeu_ps(t + 8, hi);
      memcpy(o[j], t, (size_t)mr * sizeof(float));
    }
  }
}

/* e^x for |x| <= 88: x = n ln2 + r, e^r by a degree-6 polynomial (the classic Cephes expf
 * coefficients), 2^n through the exponent bits. Relative error ~1e-7. */
AVX2 static inline __m256 exp_avx2(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

AVX2 static inline __m256 mish8(__m256 v) {
  const __m256 two = _mm256_set1_ps(2.0f);
  __m256 e = exp_avx2(v), w = _mm256_mul_ps(e, _mm256_add_ps(e, two));
  __m256 y = _mm256_div_ps(_mm256_mul_ps(v, w), _mm256_add_ps(w, two));
  return _mm256_blendv_ps(y, v, _mm256_cmp_ps(v, _mm256_set1_ps(20.0f), _CMP_GT_OQ));
}

AVX2 static void mish_avx2(float *x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, mish8(_mm256_loadu_ps(x + i)));
  for (; i < n; i++) x[i] = ts_mish1(x[i]);
}

AVX2 static void col_sums_avx2(const float *z, int T, int C, const float *m, float *out) {
  int c = 0;
  for (; c + 8 <= C; c += 8) {
    __m256 acc = _mm256_setzero_ps(), mv = m ? _mm256_loadu_ps(m + c) : acc;
    for (int t = 0; t < T; t++) {
      __m256 v = _mm256_loadu_ps(z + (size_t)t * C + c);
      if (m) {
        v = _mm256_sub_ps(v, mv);
        acc = _mm256_fmadd_ps(v, v, acc);
      } else {
        acc = _mm256_add_ps(acc, v);
      }
    }
    _mm256_storeu_ps(out + c, acc);
  }
  for (; c < C; c++) {
    float acc = 0;
    for (int t = 0; t < T; t++) {
      float v = z[(size_t)t * C + c] - (m ? m[c] : 0.0f);
      acc += m ? v * v : v;
    }
    out[c] = acc;
  }
}

AVX2 static void norm_row_avx2(float *d, const float *z, const float *a, const float *s, const float *sc,
                               const float *sh, const float *r, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = mish8(_mm256_fmadd_ps(_mm256_loadu_ps(z + i), _mm256_loadu_ps(a + i), _mm256_loadu_ps(s + i)));
    if (sc) v = _mm256_fmadd_ps(v, _mm256_loadu_ps(sc + i), _mm256_loadu_ps(sh + i));
    if (r) v = _mm256_add_ps(v, _mm256_loadu_ps(r + i));
    _mm256_storeu_ps(d + i, v);
  }
  if (i < n) norm_row_c(d + i, z + i, a + i, s + i, sc ? sc + i : NULL, sh ? sh + i : NULL, r ? r + i : NULL, n - i);
}

/* Phi(x) = P(X <= x) for a standard normal X, with z = x / sqrt 2:
 *   |z| < 1: Phi = 0.5 + 0.5 z P(z^2), erf(z) / z = P(z^2) (degree 5, relative error 4e-8);
 *   |z| >= 1: e = erfc(|z|) = exp(Q(|z| - 2.5)) (degree 8 on [1, 4], absolute error of the
 *   logarithm 1.2e-8; e = 0 beyond 4, where erf rounds to +-1), Phi = 1 - e/2 for z > 0, e/2
 *   for z < 0 (no cancellation on the negative side).
 * Least-squares minimax fits (Lawson) to math.erf / math.erfc in double. */
AVX2 static inline __m256 gelu8(__m256 x) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
  __m256 az = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z), z2 = _mm256_mul_ps(z, z);
  __m256 p = _mm256_set1_ps(-5.631420644931495e-4f);
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(4.917551297694445e-3f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-2.671131119132042e-2f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(1.128017976880074e-1f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-3.761232495307922e-1f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(1.128379106521606f));
  __m256 phi_small = _mm256_fmadd_ps(_mm256_mul_ps(half, z), p, half);
  __m256 u = _mm256_sub_ps(_mm256_min_ps(az, _mm256_set1_ps(4.0f)), _mm256_set1_ps(2.5f));
  __m256 r = _mm256_set1_ps(1.599810843799787e-6f);
  r = _mm256_fmadd_ps(r, u, _mm256_set1_ps(-1.330170562141575e-5f));
  r = _mm256_fmadd_ps(r, u, _mm256_set1_ps(7.745495531708002e-5f));
  r = _mm256_fmadd_ps(r, u, _mm256_set1_ps(-4.201731353532523e-4f));
  r = _mm256_fmadd_ps(r, u, _mm256_set1_ps(2.165081445127726e-3f));
  r = _mm256_fmadd_ps(r, u, _mm256_set1_ps(-1.085848733782768e-2f));
  r = _mm256_fmadd_ps(r, u, _mm256_set1_ps(-9.438936114311218e-1f));
  r = _mm256_fmadd_ps(r, u, _mm256_set1_ps(-5.352680683135986f));
  r = _mm256_fmadd_ps(r, u, _mm256_set1_ps(-7.806815147399902f));
  __m256 he = _mm256_and_ps(_mm256_mul_ps(half, exp_avx2(r)), _mm256_cmp_ps(az, _mm256_set1_ps(4.0f), _CMP_LT_OQ));
  __m256 phi_big = _mm256_blendv_ps(_mm256_sub_ps(one, he), he, z); /* sign bit of z picks e/2 */
  __m256 phi = _mm256_blendv_ps(phi_big, phi_small, _mm256_cmp_ps(az, one, _CMP_LT_OQ));
  return _mm256_mul_ps(x, phi);
}

AVX2 static void gelu_avx2(float *x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    float t[8] = {0};
    memcpy(t, x + i, (size_t)(n - i) * sizeof(float));
    _mm256_storeu_ps(t, gelu8(_mm256_loadu_ps(t)));
    memcpy(x + i, t, (size_t)(n - i) * sizeof(float));
  }
}

AVX2 static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

AVX2 static void add_ln_avx2(float *h, const float *a, const float *g, const float *b, float eps, float *y, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(h + i);
    if (a) {
      v = _mm256_add_ps(v, _mm256_loadu_ps(a + i));
      _mm256_storeu_ps(h + i, v);
    }
    acc = _mm256_add_ps(acc, v);
  }
  float sum = hsum8(acc);
  for (; i < n; i++) {
    if (a) h[i] += a[i];
    sum += h[i];
  }
  float m = sum / (float)n;
  __m256 mv = _mm256_set1_ps(m);
  acc = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    __m256 d = _mm256_sub_ps(_mm256_loadu_ps(h + i), mv);
    acc = _mm256_fmadd_ps(d, d, acc);
  }
  float ss = hsum8(acc);
  for (; i < n; i++) ss += (h[i] - m) * (h[i] - m);
  float rstd = 1.0f / sqrtf(ss / (float)n + eps);
  __m256 rv = _mm256_set1_ps(rstd);
  for (i = 0; i + 8 <= n; i += 8) {
    __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(h + i), mv), rv);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(g + i), _mm256_loadu_ps(b + i)));
  }
  for (; i < n; i++) y[i] = (h[i] - m) * rstd * g[i] + b[i];
}

AVX2 static void attend_avx2(const float *q, const float *k, const float *v, int ks, int nk, int D, float scale,
                             float *s, float *o) {
  int D8 = D & ~7;
  for (int j = 0; j < nk; j++) {
    const float *kj = k + (size_t)j * ks;
    __m256 acc = _mm256_setzero_ps();
    for (int d = 0; d < D8; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(kj + d), acc);
    float dot = hsum8(acc);
    for (int d = D8; d < D; d++) dot += q[d] * kj[d];
    s[j] = dot * scale;
  }
  float mx = s[0], sum;
  for (int j = 1; j < nk; j++) mx = s[j] > mx ? s[j] : mx;
  __m256 mv = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
  int j = 0;
  for (; j + 8 <= nk; j += 8) {
    __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
    _mm256_storeu_ps(s + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  sum = hsum8(acc);
  if (j < nk) { /* the last nk - j < 8 scores by a masked load (a padded copy made of scalar stores
                 * stalled the vector load that read it back) */
    __m256i lane = _mm256_cmpgt_epi32(_mm256_set1_epi32(nk - j), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 e = exp_avx2(_mm256_blendv_ps(_mm256_set1_ps(-100.0f), _mm256_sub_ps(_mm256_maskload_ps(s + j, lane), mv),
                                         _mm256_castsi256_ps(lane)));
    float t[8];
    _mm256_storeu_ps(t, e);
    for (int i = 0; j + i < nk; i++) {
      s[j + i] = t[i];
      sum += t[i];
    }
  }
  float inv = 1.0f / sum;
  for (int d = 0; d < D8; d += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int j = 0; j < nk; j++) acc = _mm256_fmadd_ps(_mm256_set1_ps(s[j]), _mm256_loadu_ps(v + (size_t)j * ks + d), acc);
    _mm256_storeu_ps(o + d, _mm256_mul_ps(acc, _mm256_set1_ps(inv)));
  }
  for (int d = D8; d < D; d++) {
    float acc = 0;
    for (int j = 0; j < nk; j++) acc += s[j] * v[(size_t)j * ks + d];
    o[d] = acc * inv;
  }
}
#endif

/* ---------- dispatch ---------- */

typedef void (*tile_fn)(int, const float *, const float *const *, float *const *, int, int, const float *, const char *,
                        int);
static tile_fn tile = tile_c;
static void (*mish_fn)(float *, int) = mish_c;
typedef void (*norm_fn)(float *, const float *, const float *, const float *, const float *, const float *,
                        const float *, int);
static norm_fn norm_row = norm_row_c;
static void (*col_sums)(const float *, int, int, const float *, float *) = col_sums_c;
static void (*gelu_fn)(float *, int) = gelu_c;
typedef void (*add_ln_fn)(float *, const float *, const float *, const float *, float, float *, int);
static add_ln_fn add_ln = add_ln_c;
typedef void (*attend_fn)(const float *, const float *, const float *, int, int, int, float, float *, float *);
static attend_fn attend = attend_c;
static int cpu_avx2, have_avx2;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void use(int avx2) {
  have_avx2 = avx2 && cpu_avx2;
  tile = tile_c;
  mish_fn = mish_c;
  norm_row = norm_row_c;
  col_sums = col_sums_c;
  gelu_fn = gelu_c;
  add_ln = add_ln_c;
  attend = attend_c;
#if TS_X86
  if (have_avx2) {
    tile = tile_avx2;
    mish_fn = mish_avx2;
    norm_row = norm_row_avx2;
    col_sums = col_sums_avx2;
    gelu_fn = gelu_avx2;
    add_ln = add_ln_avx2;
    attend = attend_avx2;
  }
#endif
}

static void pick(void) {
#if TS_X86
  __builtin_cpu_init();
  cpu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  use(!getenv("TSDP_NO_AVX2"));
}

int ts_kernels_avx2(void) {
  pthread_once(&once, pick);
  return have_avx2;
}

int ts_kernels_set_avx2(int on) {
  pthread_once(&once, pick);
  use(on);
  return have_avx2;
}

void ts_gemm_rows(const ts_packed *w, const float *const *in, float *const *out, int N, const float *bias,
                  int p0, int p1) {
  pthread_once(&once, pick);
  /* While the row tiles run over panel p, the first (up to 4) of them prefetch panel p + 1 (K
   * cache lines), a line every `ev` values of k each, so that the weights stream from memory
   * at the pace of the arithmetic instead of in bursts between panels. */
  int tiles = (N + 3) / 4, ev = tiles < 4 ? tiles : 4;
  size_t seg = (size_t)(w->K / ev) * 64, panel = (size_t)w->K * TS_MR;
  for (int p = p0; p < p1; p++) {
    const float *a = w->data + (size_t)p * panel;
    int m0 = p * TS_MR, mr = w->M - m0 < TS_MR ? w->M - m0 : TS_MR;
    for (int n = 0, j = 0; n < N; n += 4, j++) {
      int nr = N - n < 4 ? N - n : 4;
      float *o[4];
      for (int i = 0; i < nr; i++) o[i] = out[n + i] + m0;
      const char *pf = j < ev && p + 1 < p1 ? (const char *)(a + panel) + j * seg : NULL;
      tile(w->K, a, in + n, o, nr, mr, bias ? bias + m0 : NULL, pf, ev);
    }
  }
}

void ts_vmish(float *x, int n) {
  pthread_once(&once, pick);
  mish_fn(x, n);
}

void ts_norm_mish_row(float *d, const float *z, const float *a, const float *s, const float *scale,
                      const float *shift, const float *res, int n) {
  pthread_once(&once, pick);
  norm_row(d, z, a, s, scale, shift, res, n);
}

void ts_col_sums(const float *z, int T, int C, const float *mean, float *out) {
  pthread_once(&once, pick);
  col_sums(z, T, C, mean, out);
}

void ts_vgelu(float *x, int n) {
  pthread_once(&once, pick);
  gelu_fn(x, n);
}

void ts_add_layer_norm_row(float *h, const float *a, const float *gamma, const float *beta, float eps, float *y,
                           int n) {
  pthread_once(&once, pick);
  add_ln(h, a, gamma, beta, eps, y, n);
}

void ts_attend_row(const float *q, const float *k, const float *v, int kstride, int nk, int D, float scale, float *s,
                   float *o) {
  pthread_once(&once, pick);
  attend(q, k, v, kstride, nk, D, scale, s, o);
}
