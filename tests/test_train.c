/* End-to-end sanity: a small MLP trained with AdamW fits a 2-D regression, and two runs with
 * the same seed are bit-identical. */
#include "tests.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/rng.h"
#include <math.h>
#include <string.h>

enum { NPTS = 256, HID = 32, STEPS = 600 };

/* Fit y = sin(2 x0) cos(2 x1) on [-1,1]^2 with a 2-32-32-1 SiLU MLP. Returns final loss and
 * writes all parameters (flattened) into params_out. */
static float fit(uint64_t seed, float *params_out, int *nparams) {
  ts_rng rng;
  ts_rng_init(&rng, seed);
  ts_tensor *w1 = ts_param_new(2, (int[]){HID, 2}), *b1 = ts_param_new(1, (int[]){HID});
  ts_tensor *w2 = ts_param_new(2, (int[]){HID, HID}), *b2 = ts_param_new(1, (int[]){HID});
  ts_tensor *w3 = ts_param_new(2, (int[]){1, HID}), *b3 = ts_param_new(1, (int[]){1});
  ts_tensor *ps[6] = {w1, b1, w2, b2, w3, b3};
  for (int i = 0; i < 6; i += 2) { /* PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    float bound = 1.0f / sqrtf((float)ps[i]->shape[1]);
    for (int64_t j = 0; j < ps[i]->n; j++) ps[i]->data[j] = bound * (2 * ts_rng_uniform(&rng) - 1);
    for (int64_t j = 0; j < ps[i + 1]->n; j++) ps[i + 1]->data[j] = bound * (2 * ts_rng_uniform(&rng) - 1);
  }
  float X[NPTS * 2], Y[NPTS];
  for (int i = 0; i < NPTS; i++) {
    X[2 * i] = 2 * ts_rng_uniform(&rng) - 1;
    X[2 * i + 1] = 2 * ts_rng_uniform(&rng) - 1;
    Y[i] = sinf(2 * X[2 * i]) * cosf(2 * X[2 * i + 1]);
  }
  ts_adamw *opt = ts_adamw_new(ps, 6, 1e-2f, 0.9f, 0.999f, 1e-8f, 1e-4f);
  ts_ctx *c = ts_ctx_new(1 << 20);
  float loss_v = 0;
  for (int s = 0; s < STEPS; s++) {
    ts_ctx_reset(c);
    ts_zero_grad(ps, 6);
    opt->lr = ts_lr_cosine(1e-2f, s, 50, STEPS);
    ts_tensor *x = ts_wrap(c, X, 2, (int[]){NPTS, 2}), *y = ts_wrap(c, Y, 2, (int[]){NPTS, 1});
    ts_tensor *h = ts_silu(c, ts_linear(c, x, w1, b1));
    h = ts_silu(c, ts_linear(c, h, w2, b2));
    ts_tensor *loss = ts_mse(c, ts_linear(c, h, w3, b3), y);
    ts_backward(c, loss);
    ts_clip_grad_norm(ps, 6, 1.0f);
    ts_adamw_step(opt);
    loss_v = loss->data[0];
  }
  int n = 0;
  for (int i = 0; i < 6; i++) {
    memcpy(params_out + n, ps[i]->data, (size_t)ps[i]->n * sizeof(float));
    n += (int)ps[i]->n;
    ts_param_free(ps[i]);
  }
  *nparams = n;
  ts_adamw_free(opt);
  ts_ctx_free(c);
  return loss_v;
}

START_TEST(test_mlp_fits_and_is_deterministic) {
  static float pa[4096], pb[4096];
  int na, nb;
  /* The target has variance ~0.2; the bound 2e-3 means the MLP explains >99% of it. */
  float la = fit(7, pa, &na), lb = fit(7, pb, &nb);
  ck_assert_msg(la < 2e-3f, "final MSE %g, expected < 2e-3", la);
  ck_assert_int_eq(na, nb);
  ck_assert_msg(memcmp(pa, pb, (size_t)na * sizeof(float)) == 0, "two runs with seed 7 differ");
  ck_assert(la == lb);
}
END_TEST

Suite *suite_train(void) {
  Suite *s = suite_create("train_sanity");
  TCase *tc = tcase_create("mlp");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_mlp_fits_and_is_deterministic);
  suite_add_tcase(s, tc);
  return s;
}
