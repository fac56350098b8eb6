/* ConditionalUnet1D against PyTorch (tests/fixtures/unet.h5 from scripts/make_fixtures.py,
 * reference in float64): output and every parameter gradient within relative 1e-4. */
#include "tests.h"
#include "core/error.h"
#include "core/h5io.h"
#include "nn/unet1d.h"
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
  char name[300];
  int nfix = 0;
  char **fixnames = ts_h5_list(f, "params", &nfix);
  ck_assert_int_eq(nfix, u->params.n); /* same set of state_dict keys */
  ts_h5_free_names(fixnames, nfix);
  for (int i = 0; i < u->params.n; i++) {
    snprintf(name, sizeof name, "params/%s", u->params.name[i]);
    ck_assert_msg(ts_h5_read_tensor(f, name, u->params.t[i]) == 0, "%s", ts_error());
  }
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
  double worst = 0;
  const char *worst_name = "";
  for (int i = 0; i < u->params.n; i++) {
    snprintf(name, sizeof name, "grads/%s", u->params.name[i]);
    ts_tensor *g = fix_tensor(c, f, name);
    double eg = rel_err(u->params.t[i]->grad, g->data, g->n, 1e-2);
    if (eg > worst) {
      worst = eg;
      worst_name = u->params.name[i];
    }
  }
  ck_assert_msg(worst <= 1e-4, "U-Net parameter gradient %s: relative error %.3g", worst_name, worst);
  ts_ctx_free(c);
  ts_unet_free(u);
  ts_h5_close(f);
}
END_TEST

/* Parameter counts of the Push-T configurations (obs 2 x 20, step embedding 256, kernel 5),
 * as PyTorch counts them for scripts/torch_unet.py:
 *   sum(p.numel() for p in ConditionalUnet1D(2, 40, 256, D, 5, 8).parameters()).
 * (REFERENCE.md §3 lists 4.26 M / 16.0 M / 62.3 M, which the module does not reproduce; with a
 * 10-d global condition the largest gives 65.35 M, the figure Diffusion Policy's state-based
 * notebook reports.) */
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

Suite *suite_unet(void) {
  Suite *s = suite_create("unet");
  TCase *tc = tcase_create("unet");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_unet_vs_torch);
  tcase_add_test(tc, test_unet_sizes);
  suite_add_tcase(s, tc);
  return s;
}
