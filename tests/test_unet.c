/* ConditionalUnet1D against PyTorch (tests/fixtures/unet.h5 from scripts/make_fixtures.py,
 * reference in float64): output and every parameter gradient within relative 1e-4. */
#include "tests.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/kernels.h"
#include "nn/unet1d.h"
#include "nn/unet_plan.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ts_unet *small_unet(void) {
  ts_unet_cfg cfg = {.input_dim = 2, .global_cond_dim = 6, .step_embed_dim = 16, .down_dims = {16, 24, 32},
                     .n_levels = 3, .kernel_size = 5, .n_groups = 8};
  return ts_unet_new(&cfg);
}

START_TEST(test_unet_vs_torch) {
  ts_h5 *f = ts_h5_open(fixture_path("unet.h5"));
  ck_assert_msg(f, "%s", ts_error());
  ts_unet *u = small_unet();
  fix_load_params(f, &u->params);
  ts_ctx *c = ts_ctx_new(1 << 22);
  ts_tensor *x = fix_tensor(c, f, "x"), *t = fix_tensor(c, f, "t"), *cond = fix_tensor(c, f, "cond");
  x->requires_grad = 1;
  ts_tensor *out = ts_unet_forward(c, u, x, t, cond), *ref = fix_tensor(c, f, "out");
  double e = rel_err(out->data, ref->data, ref->n, 1e-2);
  ck_assert_msg(e <= 1e-4, "U-Net output: relative error %.3g", e);
  ts_tensor *gout = fix_tensor(c, f, "gout");
  ck_assert_int_eq(ts_backward_with(c, out, gout->data), 0);
  ts_tensor *gx = fix_tensor(c, f, "gx");
  e = rel_err(x->grad, gx->data, gx->n, 1e-2);
  ck_assert_msg(e <= 1e-4, "U-Net input gradient: relative error %.3g", e);
  const char *worst_name;
  double worst = fix_worst_grad(c, f, &u->params, &worst_name);
  ck_assert_msg(worst <= 1e-4, "U-Net parameter gradient %s: relative error %.3g", worst_name, worst);
  /* The inference engine on the same weights and inputs, with and without its timestep table,
   * with the AVX2 and the portable kernels. */
  int tb[3];
  for (int b = 0; b < 3; b++) tb[b] = (int)t->data[b];
  float eng[3 * 16 * 2];
  for (int avx = 0; avx < 2; avx++) {
    ts_kernels_set_avx2(avx);
    for (int table = 0; table < 2; table++) {
      ts_unet_plan *p = ts_unet_plan_new(u, 16, table ? 100 : 0, 1);
      ts_unet_plan_forward(p, x->data, tb, cond->data, 3, eng);
      e = rel_err(eng, ref->data, ref->n, 1e-2);
      ck_assert_msg(e <= 1e-4, "engine (avx2 %d, table %d): relative error %.3g", avx, table, e);
      ts_unet_plan_free(p);
    }
  }
  ts_kernels_set_avx2(1);
  ts_ctx_free(c);
  ts_unet_free(u);
  ts_h5_close(f);
}
END_TEST

/* Parameter counts of the Push-T configurations (obs 2 x 20, step embedding 256, kernel 5),
 * as PyTorch counts them for scripts/torch_unet.py:
 *   sum(p.numel() for p in ConditionalUnet1D(2, 40, 256, D, 5, 8).parameters()).
 * (docs/math.md §3. Figures of 4.26 M / 16.0 M / 62.3 M sometimes quoted for these widths are
 * not what the module gives; with a 10-d global condition the largest gives 65.35 M, the figure
 * Diffusion Policy's state-based notebook reports.) */
START_TEST(test_unet_sizes) {
  const int dims[4][3] = {{64, 128, 256}, {128, 256, 512}, {256, 512, 1024}, {256, 512, 1024}};
  const int cond[4] = {40, 40, 40, 10};
  const int64_t expect[4] = {5412162, 17917314, 65783298, 65353218};
  for (int k = 0; k < 4; k++) {
    ts_unet_cfg cfg = {2, cond[k], 256, {dims[k][0], dims[k][1], dims[k][2]}, 3, 5, 8};
    ts_unet *u = ts_unet_new(&cfg);
    ck_assert_int_eq(ts_params_count(&u->params), expect[k]);
    ts_unet_free(u);
  }
}
END_TEST

/* The inference engine computes the tape's function: random weights and inputs over level
 * counts, batch sizes that leave partial 4-row tiles, timesteps inside and outside the table,
 * no global condition, 1 and 2 threads, both kernel sets; and it allocates only when the
 * batch grows. */
START_TEST(test_plan_matches_tape) {
  const ts_unet_cfg cfgs[3] = {
      {2, 6, 16, {16, 24, 32}, 3, 5, 8},
      {3, 0, 32, {32, 48}, 2, 5, 8},
      {2, 10, 16, {16, 16, 32, 48}, 4, 3, 4},
  };
  const int Bs[3] = {1, 3, 6};
  ts_rng rng;
  ts_rng_init(&rng, 17);
  for (int k = 0; k < 3; k++) {
    const ts_unet_cfg *cf = &cfgs[k];
    ts_unet *u = ts_unet_new(cf);
    ts_unet_init(u, &rng);
    for (int i = 0; i < u->params.n; i++) /* GroupNorm affine away from 1 / 0 */
      if (u->params.t[i]->ndim == 1)
        for (int64_t j = 0; j < u->params.t[i]->n; j++) u->params.t[i]->data[j] += 0.3f * ts_rng_normal(&rng);
    int H = 16, D = cf->input_dim, G = cf->global_cond_dim;
    for (int avx = 0; avx < 2; avx++)
      for (int th = 1; th <= 2; th++) {
        ts_kernels_set_avx2(avx);
        ts_unet_plan *p = ts_unet_plan_new(u, H, 50, th);
        ts_unet_plan_reserve(p, 6);
        long a0 = ts_unet_plan_allocs(p);
        for (int bi = 0; bi < 3; bi++) {
          int B = Bs[bi], tb[6];
          float x[6 * 16 * 3], cond[6 * 10], tf[6], eng[6 * 16 * 3];
          ts_rng_fill_normal(&rng, x, B * H * D);
          if (G) ts_rng_fill_normal(&rng, cond, B * G);
          for (int b = 0; b < B; b++) {
            tb[b] = b == 1 ? 77 : (int)ts_rng_below(&rng, 50); /* 77: outside the 50-step table */
            tf[b] = (float)tb[b];
          }
          ts_ctx *c = ts_ctx_new(1 << 20);
          ts_set_grad(c, 0);
          ts_tensor *tx = ts_wrap(c, x, 3, (int[]){B, H, D}), *tt = ts_wrap(c, tf, 1, &B);
          ts_tensor *tc = G ? ts_wrap(c, cond, 2, (int[]){B, G}) : NULL;
          ts_tensor *ref = ts_unet_forward(c, u, tx, tt, tc);
          ts_unet_plan_forward(p, x, tb, cond, B, eng);
          double e = rel_err(eng, ref->data, ref->n, 1e-2);
          ck_assert_msg(e <= 1e-5, "config %d, B %d, avx2 %d, threads %d: relative error %.3g", k, B, avx, th, e);
          ts_ctx_free(c);
        }
        ck_assert_int_eq(ts_unet_plan_allocs(p), a0);
        ts_unet_plan_forward(p, (float[7 * 16 * 3]){0}, (int[7]){0}, (float[7 * 10]){0}, 7, (float[7 * 16 * 3]){0});
        ck_assert_int_eq(ts_unet_plan_allocs(p), a0 + 1);
        ts_unet_plan_free(p);
      }
    ts_kernels_set_avx2(1);
    ts_unet_free(u);
  }
}
END_TEST

/* Mish through the vector kernel against the closed form in double precision, including
 * the far tails and the x > 20 branch. */
START_TEST(test_vmish) {
  float x[203];
  for (int i = 0; i < 203; i++) x[i] = -100.0f + 0.62f * (float)i + (i % 3) * 0.013f;
  for (int avx = 0; avx < 2; avx++) {
    ts_kernels_set_avx2(avx);
    float y[203];
    memcpy(y, x, sizeof x);
    ts_vmish(y, 203);
    for (int i = 0; i < 203; i++) {
      double v = x[i], ref = v * tanh(log1p(exp(v)));
      ck_assert_msg(fabs(y[i] - ref) <= 2e-6 * fmax(fabs(ref), 1e-3), "mish(%g) = %.9g, want %.9g (avx2 %d)", v, y[i],
                    ref, avx);
    }
  }
  ts_kernels_set_avx2(1);
}
END_TEST

Suite *suite_unet(void) {
  Suite *s = suite_create("unet");
  TCase *tc = tcase_create("unet");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_unet_vs_torch);
  tcase_add_test(tc, test_unet_sizes);
  tcase_add_test(tc, test_plan_matches_tape);
  tcase_add_test(tc, test_vmish);
  suite_add_tcase(s, tc);
  return s;
}
