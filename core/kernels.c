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
                   const float *bias) {
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

/* ---------- AVX2 + FMA kernels ---------- */

#if TS_X86
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static void tile_avx2(int K, const float *a, const float *const *r, float *const *o, int nr, int mr,
                           const float *bias) {
  const float *r0 = r[0], *r1 = r[nr > 1], *r2 = r[nr > 2 ? 2 : 0], *r3 = r[nr > 3 ? 3 : 0];
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int k = 0; k < K; k++, a += TS_MR) {
    __m256 a0 = _mm256_load_ps(a), a1 = _mm256_load_ps(a + 8), b;
#define ROW_FMA(rp, lo, hi)             \
  b = _mm256_broadcast_ss(rp + k);      \
  lo = _mm256_fmadd_ps(a0, b, lo);      \
  hi = _mm256_fmadd_ps(a1, b, hi)
    ROW_FMA(r0, c00, c01);
    ROW_FMA(r1, c10, c11);
    ROW_FMA(r2, c20, c21);
    ROW_FMA(r3, c30, c31);
#undef ROW_FMA
  }
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
#endif

/* ---------- dispatch ---------- */

typedef void (*tile_fn)(int, const float *, const float *const *, float *const *, int, int, const float *);
static tile_fn tile = tile_c;
static void (*mish_fn)(float *, int) = mish_c;
typedef void (*norm_fn)(float *, const float *, const float *, const float *, const float *, const float *,
                        const float *, int);
static norm_fn norm_row = norm_row_c;
static void (*col_sums)(const float *, int, int, const float *, float *) = col_sums_c;
static int cpu_avx2, have_avx2;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void use(int avx2) {
  have_avx2 = avx2 && cpu_avx2;
  tile = tile_c;
  mish_fn = mish_c;
  norm_row = norm_row_c;
  col_sums = col_sums_c;
#if TS_X86
  if (have_avx2) {
    tile = tile_avx2;
    mish_fn = mish_avx2;
    norm_row = norm_row_avx2;
    col_sums = col_sums_avx2;
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
  for (int p = p0; p < p1; p++) {
    const float *a = w->data + (size_t)p * w->K * TS_MR;
    int m0 = p * TS_MR, mr = w->M - m0 < TS_MR ? w->M - m0 : TS_MR;
    for (int n = 0; n < N; n += 4) {
      int nr = N - n < 4 ? N - n : 4;
      float *o[4];
      for (int j = 0; j < nr; j++) o[j] = out[n + j] + m0;
      tile(w->K, a, in + n, o, nr, mr, bias ? bias + m0 : NULL);
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
