/* TransformerForDiffusion against PyTorch (tests/fixtures/transformer.h5 from
 * scripts/make_fixtures.py, reference in float64): output, input gradient and every parameter
 * gradient within relative 1e-4; the weight-decay groups and parameter counts as PyTorch's;
 * dropout only in training, and the training-mode gradient against finite differences.
 * The inference engine (nn/transformer_plan.h) against the autograd forward and the fixture,
 * and its kernels (GELU, residual + LayerNorm, attention row) against double precision. */
#include "tests.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/kernels.h"
#include "nn/transformer.h"
#include "nn/transformer_plan.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ts_transformer_cfg small_cfg(void) {
  ts_transformer_cfg c = {.input_dim = 2, .horizon = 8, .n_obs_steps = 2, .cond_dim = 5, .n_emb = 32, .n_head = 4,
                          .n_layer = 2, .causal_attn = 1, .p_drop_emb = 0.0f, .p_drop_attn = 0.01f};
  return c;
}

START_TEST(test_transformer_vs_torch) {
  ts_h5 *f = ts_h5_open(fixture_path("transformer.h5"));
  ck_assert_msg(f, "%s", ts_error());
  ts_transformer_cfg cfg = small_cfg();
  ts_transformer *m = ts_transformer_new(&cfg);
  fix_load_params(f, &m->params); /* the same state_dict keys (less the empty _dummy_variable) */
  unsigned char *decay = malloc((size_t)m->params.n);
  ts_transformer_decay_mask(m, decay);
  char name[300];
  for (int i = 0; i < m->params.n; i++) {
    snprintf(name, sizeof name, "params/%s", m->params.name[i]);
    int64_t d = -1;
    ck_assert_int_eq(ts_h5_get_attr_i64(f, name, "decay", &d), 0);
    ck_assert_msg(d == decay[i], "%s: decay %d, PyTorch's optimiser groups say %d", m->params.name[i], decay[i], (int)d);
  }
  free(decay);
  /* The masks equal the reference's buffers. */
  int64_t nm;
  float *mask = fix_floats(f, "mask", &nm), *mmask = fix_floats(f, "memory_mask", &nm);
  ck_assert_mem_eq(mask, m->mask, 8 * 8 * sizeof(float));
  ck_assert_mem_eq(mmask, m->memory_mask, 8 * 3 * sizeof(float));
  free(mask);
  free(mmask);
  ts_ctx *c = ts_ctx_new(1 << 22);
  ts_tensor *x = fix_tensor(c, f, "x"), *t = fix_tensor(c, f, "t"), *cond = fix_tensor(c, f, "cond");
  x->requires_grad = 1;
  ts_tensor *out = ts_transformer_forward(c, m, x, t, cond, NULL), *ref = fix_tensor(c, f, "out");
  double e = rel_err(out->data, ref->data, ref->n, 1e-2);
  ck_assert_msg(e <= 1e-4, "transformer output: relative error %.3g", e);
  ts_tensor *gout = fix_tensor(c, f, "gout");
  ck_assert_int_eq(ts_backward_with(c, out, gout->data), 0);
  ts_tensor *gx = fix_tensor(c, f, "gx");
  e = rel_err(x->grad, gx->data, gx->n, 1e-2);
  ck_assert_msg(e <= 1e-4, "transformer input gradient: relative error %.3g", e);
  const char *worst_name;
  double worst = fix_worst_grad(c, f, &m->params, &worst_name);
  ck_assert_msg(worst <= 1e-4, "transformer parameter gradient %s: relative error %.3g", worst_name, worst);
  /* The inference engine on the same weights and inputs (t = 0, 17, 99), with and without its
   * timestep table, with the AVX2 and the portable kernels. */
  int tb[3];
  for (int b = 0; b < 3; b++) tb[b] = (int)t->data[b];
  float eng[3 * 8 * 2];
  for (int avx = 0; avx < 2; avx++) {
    ts_kernels_set_avx2(avx);
    for (int table = 0; table < 2; table++) {
      ts_transformer_plan *p = ts_transformer_plan_new(m, table ? 100 : 0, 1);
      ts_transformer_plan_forward(p, x->data, tb, cond->data, 3, eng);
      e = rel_err(eng, ref->data, ref->n, 1e-2);
      ck_assert_msg(e <= 1e-4, "engine (avx2 %d, table %d): relative error %.3g", avx, table, e);
      if (getenv("TSDP_TEST_VERBOSE")) printf("transformer plan vs PyTorch (avx2 %d, table %d): relative error %.3g\n", avx, table, e);
      ts_transformer_plan_free(p);
    }
  }
  ts_kernels_set_avx2(1);
  ts_ctx_free(c);
  ts_transformer_free(m);
  ts_h5_close(f);
}
END_TEST

/* Parameter counts as PyTorch counts them (scripts/torch_transformer.py, stored in the
 * fixture): the reference Push-T base (n_emb 256, 8 layers: 8.97 M) and two one-block sizes. */
START_TEST(test_transformer_sizes) {
  ts_h5 *f = ts_h5_open(fixture_path("transformer.h5"));
  ck_assert_msg(f, "%s", ts_error());
  const int E[3] = {256, 128, 64}, L[3] = {8, 1, 1};
  for (int k = 0; k < 3; k++) {
    ts_transformer_cfg cfg = {2, 16, 2, 20, E[k], 4, L[k], 1, 0.0f, 0.01f};
    ts_transformer *m = ts_transformer_new(&cfg);
    char key[64];
    snprintf(key, sizeof key, "params_%d_%d", E[k], L[k]);
    int64_t want = -1;
    ck_assert_int_eq(ts_h5_get_attr_i64(f, "/", key, &want), 0);
    ck_assert_int_eq(ts_params_count(&m->params), want);
    ts_transformer_free(m);
  }
  ck_assert(fabs(ts_transformer_flops(&(ts_transformer_cfg){2, 16, 2, 20, 256, 4, 8, 1, 0, 0}) - 0.25e9) < 0.03e9);
  ts_h5_close(f);
}
END_TEST

/* sum(o * w) over n values. */
static double wsum(const float *w, int n, const ts_tensor *o) {
  double s = 0;
  for (int i = 0; i < n; i++) s += (double)o->data[i] * w[i];
  return s;
}

/* Dropout: off without an RNG (inference equals the no-dropout model), on with one (outputs
 * differ, and the same RNG state gives the same masks); with the masks fixed, the training
 * forward's gradient w.r.t. x and a few parameters matches central finite differences. */
START_TEST(test_transformer_dropout) {
  ts_transformer_cfg cfg = {2, 6, 2, 3, 16, 2, 2, 1, 0.2f, 0.3f};
  ts_transformer *m = ts_transformer_new(&cfg);
  ts_rng rng;
  ts_rng_init(&rng, 7);
  ts_transformer_init(m, &rng);
  for (int i = 0; i < m->params.n; i++) /* larger weights: the 0.02 init makes every path tiny */
    for (int64_t k = 0; k < m->params.t[i]->n; k++) m->params.t[i]->data[k] += 0.3f * ts_rng_normal(&rng);
  const int B = 2, n = B * 6 * 2;
  float x[24], cond[12], tv[2] = {3, 61};
  ts_rng_fill_normal(&rng, x, n);
  ts_rng_fill_normal(&rng, cond, B * 6);
  ts_ctx *c = ts_ctx_new(1 << 22);
  float eval0[24], tr1[24], tr2[24];
  ts_tensor *o = ts_transformer_forward(c, m, ts_wrap(c, x, 3, (int[]){B, 6, 2}), ts_wrap(c, tv, 1, &B),
                                        ts_wrap(c, cond, 2, (int[]){B, 6}), NULL);
  memcpy(eval0, o->data, sizeof eval0);
  ts_rng d1, d2;
  ts_rng_init(&d1, 99);
  d2 = d1;
  o = ts_transformer_forward(c, m, ts_wrap(c, x, 3, (int[]){B, 6, 2}), ts_wrap(c, tv, 1, &B),
                             ts_wrap(c, cond, 2, (int[]){B, 6}), &d1);
  memcpy(tr1, o->data, sizeof tr1);
  o = ts_transformer_forward(c, m, ts_wrap(c, x, 3, (int[]){B, 6, 2}), ts_wrap(c, tv, 1, &B),
                             ts_wrap(c, cond, 2, (int[]){B, 6}), &d2);
  memcpy(tr2, o->data, sizeof tr2);
  ck_assert_mem_eq(tr1, tr2, sizeof tr1);
  ck_assert_msg(rel_err(tr1, eval0, n, 1e-2) > 1e-2, "dropout changed nothing");
  /* Finite differences of L = sum(out * w) with the masks of one fixed RNG state. */
  float w[24];
  ts_rng_fill_normal(&rng, w, n);
  ts_rng base;
  ts_rng_init(&base, 1234);
  ts_ctx_reset(c);
  ts_zero_grad(m->params.t, m->params.n);
  ts_rng dr = base;
  ts_tensor *X = ts_from(c, x, 3, (int[]){B, 6, 2});
  X->requires_grad = 1;
  o = ts_transformer_forward(c, m, X, ts_wrap(c, tv, 1, &B), ts_wrap(c, cond, 2, (int[]){B, 6}), &dr);
  ck_assert_int_eq(ts_backward_with(c, o, w), 0);
  float gx[24];
  memcpy(gx, X->grad, sizeof gx);
  const int probe[4] = {0, 5, m->params.n / 2, m->params.n - 3}; /* a few parameters, first element each */
  float gp[4];
  for (int k = 0; k < 4; k++) gp[k] = m->params.t[probe[k]]->grad[0];
  int prev = ts_set_grad(c, 0);
  const float h = 1e-2f;
  for (int i = 0; i < n + 4; i++) {
    float *v = i < n ? &x[i] : &m->params.t[probe[i - n]]->data[0], save = *v;
    double lp, lm;
    *v = save + h;
    ts_ctx_reset(c);
    dr = base;
    lp = wsum(w, n, ts_transformer_forward(c, m, ts_wrap(c, x, 3, (int[]){B, 6, 2}), ts_wrap(c, tv, 1, &B),
                                     ts_wrap(c, cond, 2, (int[]){B, 6}), &dr));
    *v = save - h;
    ts_ctx_reset(c);
    dr = base;
    lm = wsum(w, n, ts_transformer_forward(c, m, ts_wrap(c, x, 3, (int[]){B, 6, 2}), ts_wrap(c, tv, 1, &B),
                                     ts_wrap(c, cond, 2, (int[]){B, 6}), &dr));
    *v = save;
    double fd = (lp - lm) / (2 * h), an = i < n ? gx[i] : gp[i - n];
    ck_assert_msg(fabs(fd - an) <= 2e-2 * fmax(fabs(fd), 0.05), "%s %d: analytic %.6g, finite difference %.6g",
                  i < n ? "x" : m->params.name[probe[i - n]], i < n ? i : 0, an, fd);
  }
  ts_set_grad(c, prev);
  ts_ctx_free(c);
  ts_transformer_free(m);
}
END_TEST

/* Random weights at a scale where every path matters: Linear and attention weights
 * N(0, 1/fan_in), biases, LayerNorm affine and both position embeddings well away from their
 * init. */
static void randomize(ts_transformer *m, ts_rng *rng) {
  for (int i = 0; i < m->params.n; i++) {
    ts_tensor *p = m->params.t[i];
    if (p->ndim == 2) {
      float s = 1.0f / sqrtf((float)p->shape[1]);
      for (int64_t k = 0; k < p->n; k++) p->data[k] = s * ts_rng_normal(rng);
    } else {
      for (int64_t k = 0; k < p->n; k++) p->data[k] += 0.3f * ts_rng_normal(rng);
    }
  }
}

/* The engine against the autograd forward (no grad, no dropout) on random weights: widths 32,
 * 64 and 128, 1 and 8 layers, causal masks on and off, horizons 16 and 10, batches 1, 3 and 7
 * (partial 4-row tiles), timesteps inside and outside the table, 1 and 2 threads, both kernel
 * sets. Each batch runs three times: fresh observations, the same observations (the cache) with
 * new x and t, and one item's observations changed in place. Nothing is allocated after
 * reserve; growing the batch allocates once. */
START_TEST(test_transformer_plan_matches_tape) {
  const ts_transformer_cfg cfgs[4] = {
      {.input_dim = 2, .horizon = 16, .n_obs_steps = 2, .cond_dim = 5, .n_emb = 32, .n_head = 4, .n_layer = 1, .causal_attn = 1},
      {.input_dim = 3, .horizon = 10, .n_obs_steps = 2, .cond_dim = 7, .n_emb = 64, .n_head = 2, .n_layer = 8, .causal_attn = 0},
      {.input_dim = 2, .horizon = 16, .n_obs_steps = 3, .cond_dim = 20, .n_emb = 128, .n_head = 4, .n_layer = 1, .causal_attn = 0},
      {.input_dim = 2, .horizon = 10, .n_obs_steps = 2, .cond_dim = 20, .n_emb = 64, .n_head = 2, .n_layer = 8, .causal_attn = 1},
  };
  const int Bs[3] = {1, 3, 7};
  ts_rng rng;
  ts_rng_init(&rng, 23);
  for (int k = 0; k < 4; k++) {
    const ts_transformer_cfg *cf = &cfgs[k];
    ts_transformer *m = ts_transformer_new(cf);
    ts_transformer_init(m, &rng);
    randomize(m, &rng);
    const int T = cf->horizon, D = cf->input_dim, G = cf->n_obs_steps * cf->cond_dim;
    double worst = 0;
    for (int avx = 0; avx < 2; avx++)
      for (int th = 1; th <= 2; th++) {
        ts_kernels_set_avx2(avx);
        ts_transformer_plan *p = ts_transformer_plan_new(m, 50, th);
        ck_assert_int_eq(ts_transformer_plan_threads(p), th);
        ts_transformer_plan_reserve(p, 7);
        long a0 = ts_transformer_plan_allocs(p);
        for (int bi = 0; bi < 3; bi++) {
          int B = Bs[bi], tb[7];
          float x[7 * 16 * 3], cond[7 * 60], tf[7], eng[7 * 16 * 3];
          ts_rng_fill_normal(&rng, cond, B * G);
          for (int pass = 0; pass < 3; pass++) {
            ts_rng_fill_normal(&rng, x, B * T * D);
            for (int b = 0; b < B; b++) {
              /* 77 and -1: outside the 50-step table; 49: its last row */
              tb[b] = b == 1 ? 77 : b == 2 ? 49 : b == 4 ? -1 : (int)ts_rng_below(&rng, 50);
              tf[b] = (float)tb[b];
            }
            if (pass == 2) /* one item's observations change in place */
              for (int i = 0; i < G; i++) cond[(B - 1) * G + i] += 0.5f;
            ts_ctx *c = ts_ctx_new(1 << 22);
            ts_set_grad(c, 0);
            ts_tensor *ref = ts_transformer_forward(c, m, ts_wrap(c, x, 3, (int[]){B, T, D}), ts_wrap(c, tf, 1, &B),
                                                    ts_wrap(c, cond, 2, (int[]){B, G}), NULL);
            ts_transformer_plan_forward(p, x, tb, cond, B, eng);
            double e = rel_err(eng, ref->data, ref->n, 1e-2);
            worst = e > worst ? e : worst;
            ck_assert_msg(e <= 1e-5, "config %d, B %d, pass %d, avx2 %d, threads %d: relative error %.3g", k, B, pass,
                          avx, th, e);
            ts_ctx_free(c);
          }
        }
        ck_assert_int_eq(ts_transformer_plan_allocs(p), a0);
        float big[8 * 16 * 3] = {0}, bc[8 * 60] = {0}, bo[8 * 16 * 3];
        ts_transformer_plan_forward(p, big, (int[8]){0}, bc, 8, bo);
        ck_assert_int_eq(ts_transformer_plan_allocs(p), a0 + 1);
        ts_transformer_plan_free(p);
      }
    ts_kernels_set_avx2(1);
    if (getenv("TSDP_TEST_VERBOSE")) printf("transformer plan vs tape, config %d: worst relative error %.3g\n", k, worst);
    ts_transformer_free(m);
  }
}
END_TEST

/* The table holds what the forward would compute: a plan without a table and one with it give
 * the same output bits for timesteps inside it, and the cache gives the bits of a fresh plan. */
START_TEST(test_transformer_plan_table_cache) {
  ts_transformer_cfg cf = {.input_dim = 2, .horizon = 16, .n_obs_steps = 2, .cond_dim = 20, .n_emb = 64, .n_head = 4,
                           .n_layer = 2, .causal_attn = 1};
  ts_rng rng;
  ts_rng_init(&rng, 5);
  ts_transformer *m = ts_transformer_new(&cf);
  ts_transformer_init(m, &rng);
  randomize(m, &rng);
  ts_transformer_plan *with = ts_transformer_plan_new(m, 100, 1), *without = ts_transformer_plan_new(m, 0, 1);
  float x[4 * 16 * 2], cond[4 * 40], o1[4 * 16 * 2], o2[4 * 16 * 2], o3[4 * 16 * 2];
  int t[4] = {0, 99, 42, 7};
  ts_rng_fill_normal(&rng, x, 4 * 16 * 2);
  ts_rng_fill_normal(&rng, cond, 4 * 40);
  ts_transformer_plan_forward(with, x, t, cond, 4, o1);
  ts_transformer_plan_forward(without, x, t, cond, 4, o2);
  ck_assert_mem_eq(o1, o2, sizeof o1);
  ts_transformer_plan_forward(with, x, t, cond, 4, o3); /* every item from the cache */
  ck_assert_mem_eq(o1, o3, sizeof o1);
  ts_transformer_plan_forward(with, x, t, cond + 40, 3, o3); /* items shifted: all recomputed */
  ts_transformer_plan_forward(without, x, t, cond + 40, 3, o2);
  ck_assert_mem_eq(o2, o3, 3 * 16 * 2 * sizeof(float));
  ts_transformer_plan_free(with);
  ts_transformer_plan_free(without);
  ts_transformer_free(m);
}
END_TEST

/* GELU against 0.5 x erfc(-x / sqrt 2) in double, including the far tails; the residual +
 * LayerNorm row and one attention query against double sums, with lengths that leave vector
 * tails. Both kernel sets. */
START_TEST(test_transformer_kernels) {
  float x[401];
  for (int i = 0; i < 401; i++) x[i] = -20.0f + 0.1f * (float)i + (i % 3) * 0.0071f;
  ts_rng rng;
  ts_rng_init(&rng, 3);
  for (int avx = 0; avx < 2; avx++) {
    ts_kernels_set_avx2(avx);
    float y[401];
    memcpy(y, x, sizeof x);
    ts_vgelu(y, 401);
    for (int i = 0; i < 401; i++) {
      double v = x[i], ref = 0.5 * v * erfc(-v * M_SQRT1_2);
      ck_assert_msg(fabs(y[i] - ref) <= 3e-6 * fabs(ref) + 1e-7 * fmax(1.0, fabs(v)), "gelu(%g) = %.9g, want %.9g (avx2 %d)",
                    v, y[i], ref, avx);
    }
    for (int n = 1; n <= 37; n += 9) { /* residual + LayerNorm */
      float h[37], a[37], g[37], b[37], out[37];
      ts_rng_fill_normal(&rng, h, n);
      ts_rng_fill_normal(&rng, a, n);
      ts_rng_fill_normal(&rng, g, n);
      ts_rng_fill_normal(&rng, b, n);
      for (int i = 0; i < n; i++) h[i] += 3.0f;
      double hs[37], m = 0, v = 0;
      for (int i = 0; i < n; i++) m += hs[i] = (double)h[i] + a[i];
      m /= n;
      for (int i = 0; i < n; i++) v += (hs[i] - m) * (hs[i] - m);
      v /= n;
      ts_add_layer_norm_row(h, a, g, b, 1e-5f, out, n);
      for (int i = 0; i < n; i++) {
        double ref = (hs[i] - m) / sqrt(v + 1e-5) * g[i] + b[i];
        ck_assert_msg(fabs(h[i] - hs[i]) <= 1e-6 * fabs(hs[i]), "residual n %d", n);
        ck_assert_msg(fabs(out[i] - ref) <= 2e-5 * (fabs(g[i]) + fabs(b[i]) + 1), "layer norm n %d, %d: %.9g, want %.9g",
                      n, i, out[i], ref);
      }
    }
    const int nks[6] = {1, 3, 5, 8, 13, 16}; /* blocks of 8 keys and the rest */
    for (int D = 3; D <= 21; D += 9) /* one attention query, keys 24 floats apart */
      for (int ki = 0; ki < 6; ki++) {
        int nk = nks[ki];
        float q[21], kv[16 * 24], s[16], o[21];
        ts_rng_fill_normal(&rng, q, D);
        ts_rng_fill_normal(&rng, kv, 16 * 24);
        ts_attend_row(q, kv, kv + 2, 24, nk, D, 0.7f, s, o);
        double w[16], mx = -1e300, sum = 0;
        for (int j = 0; j < nk; j++) {
          w[j] = 0;
          for (int d = 0; d < D; d++) w[j] += (double)q[d] * kv[j * 24 + d];
          w[j] *= 0.7;
          mx = fmax(mx, w[j]);
        }
        for (int j = 0; j < nk; j++) sum += w[j] = exp(w[j] - mx);
        for (int d = 0; d < D; d++) {
          double ref = 0;
          for (int j = 0; j < nk; j++) ref += w[j] / sum * kv[j * 24 + 2 + d];
          ck_assert_msg(fabs(o[d] - ref) <= 1e-5 * (1 + fabs(ref)), "attention D %d, nk %d: %.9g, want %.9g", D, nk, o[d],
                        ref);
        }
      }
  }
  ts_kernels_set_avx2(1);
}
END_TEST

Suite *suite_transformer(void) {
  Suite *s = suite_create("transformer");
  TCase *tc = tcase_create("transformer");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_transformer_vs_torch);
  tcase_add_test(tc, test_transformer_sizes);
  tcase_add_test(tc, test_transformer_dropout);
  tcase_add_test(tc, test_transformer_plan_matches_tape);
  tcase_add_test(tc, test_transformer_plan_table_cache);
  tcase_add_test(tc, test_transformer_kernels);
  suite_add_tcase(s, tc);
  return s;
}
