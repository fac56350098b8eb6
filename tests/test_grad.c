/* Every op's gradient against central finite differences.
 *
 * The loss is L = sum(out * R) for a fixed random R, evaluated in double from the float32
 * outputs. With h = 1e-2 the truncation error of the central difference is O(h^2) ~ 1e-4 for
 * these smooth ops, and float32 round-off in L (~1e-7 * sum |out R|, a few hundred terms)
 * divided by 2h adds ~1e-3 at most. Hence |num - ana| <= 3e-3 + 2e-2 * max(|num|, |ana|). */
#include "tests.h"
#include "core/ops.h"
#include "core/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define H 1e-2
#define ATOL 3e-3
#define RTOL 2e-2

typedef struct { const char *name; int nin; int nd[4]; int shape[4][4]; } gcase;

static const int ACTS[5] = {2, 0, 1, 3, 1};

static ts_tensor *build(ts_ctx *c, int k, ts_tensor **in, ts_tensor *mask);

static const gcase cases[] = {
  {"add", 2, {3, 2}, {{2, 3, 4}, {3, 1}}},
  {"sub", 2, {2, 1}, {{4, 5}, {5}}},
  {"mul", 2, {3, 2}, {{2, 1, 4}, {3, 1}}},
  {"scale", 1, {2}, {{3, 4}}},
  {"sum", 1, {3}, {{2, 3, 4}}},
  {"mean", 1, {3}, {{2, 3, 4}}},
  {"reshape", 1, {3}, {{2, 3, 4}}},
  {"permute", 1, {4}, {{2, 3, 2, 3}}},
  {"concat", 2, {3, 3}, {{2, 3, 4}, {2, 2, 4}}},
  {"slice", 1, {3}, {{2, 6, 3}}},
  {"matmul", 2, {2, 2}, {{3, 4}, {4, 5}}},
  {"bmm_tt", 2, {3, 3}, {{2, 4, 3}, {2, 5, 4}}},
  {"linear", 3, {3, 2, 1}, {{2, 3, 4}, {5, 4}, {5}}},
  {"conv1d", 3, {3, 3, 1}, {{2, 3, 8}, {4, 3, 5}, {4}}},
  {"conv1d_s2", 3, {3, 3, 1}, {{2, 3, 8}, {3, 3, 3}, {3}}},
  {"convt", 3, {3, 3, 1}, {{2, 3, 4}, {3, 2, 4}, {2}}},
  {"group_norm", 3, {3, 1, 1}, {{2, 8, 4}, {8}, {8}}},
  {"layer_norm", 3, {2, 1, 1}, {{3, 6}, {6}, {6}}},
  {"mish", 1, {2}, {{3, 5}}},
  {"silu", 1, {2}, {{3, 5}}},
  {"gelu", 1, {2}, {{3, 5}}},
  {"softplus", 1, {2}, {{3, 5}}},
  {"tanh", 1, {2}, {{3, 5}}},
  {"softmax", 1, {2}, {{3, 5}}},
  {"log_softmax", 1, {2}, {{3, 5}}},
  {"attention", 3, {4, 4, 4}, {{1, 2, 3, 4}, {1, 2, 4, 4}, {1, 2, 4, 4}}},
  {"sinusoidal", 1, {1}, {{3}}},
  {"mse", 2, {2, 2}, {{3, 4}, {3, 4}}},
  {"cat_logprob", 1, {2}, {{5, 4}}},
  {"entropy", 1, {2}, {{5, 4}}},
  {"gauss", 3, {2, 2, 1}, {{4, 3}, {4, 3}, {3}}},
};
#define NG ((int)(sizeof cases / sizeof cases[0]))

static ts_tensor *build(ts_ctx *c, int k, ts_tensor **in, ts_tensor *mask) {
  const char *n = cases[k].name;
  if (!strcmp(n, "add")) return ts_add(c, in[0], in[1]);
  if (!strcmp(n, "sub")) return ts_sub(c, in[0], in[1]);
  if (!strcmp(n, "mul")) return ts_mul(c, in[0], in[1]);
  if (!strcmp(n, "scale")) return ts_scale(c, in[0], 0.7f);
  if (!strcmp(n, "sum")) return ts_sum(c, in[0], 1, 0);
  if (!strcmp(n, "mean")) return ts_mean(c, in[0], -1, 1);
  if (!strcmp(n, "reshape")) return ts_mul(c, ts_reshape(c, in[0], 2, (int[]){4, -1}), ts_reshape(c, in[0], 2, (int[]){4, 6}));
  if (!strcmp(n, "permute")) return ts_permute(c, in[0], (int[]){3, 1, 0, 2});
  if (!strcmp(n, "concat")) return ts_concat(c, in, 2, 1);
  if (!strcmp(n, "slice")) return ts_slice(c, in[0], 1, 2, 5);
  if (!strcmp(n, "matmul")) return ts_matmul(c, in[0], in[1], 0, 0);
  if (!strcmp(n, "bmm_tt")) return ts_matmul(c, in[0], in[1], 1, 1);
  if (!strcmp(n, "linear")) return ts_linear(c, in[0], in[1], in[2]);
  if (!strcmp(n, "conv1d")) return ts_conv1d(c, in[0], in[1], in[2], 1, 2);
  if (!strcmp(n, "conv1d_s2")) return ts_conv1d(c, in[0], in[1], in[2], 2, 1);
  if (!strcmp(n, "convt")) return ts_conv_transpose1d(c, in[0], in[1], in[2], 2, 1);
  if (!strcmp(n, "group_norm")) return ts_group_norm(c, in[0], 4, in[1], in[2], 1e-5f);
  if (!strcmp(n, "layer_norm")) return ts_layer_norm(c, in[0], in[1], in[2], 1e-5f);
  if (!strcmp(n, "mish")) return ts_mish(c, in[0]);
  if (!strcmp(n, "silu")) return ts_silu(c, in[0]);
  if (!strcmp(n, "gelu")) return ts_gelu(c, in[0]);
  if (!strcmp(n, "softplus")) return ts_softplus(c, in[0]);
  if (!strcmp(n, "tanh")) return ts_tanh(c, in[0]);
  if (!strcmp(n, "softmax")) return ts_softmax(c, in[0]);
  if (!strcmp(n, "log_softmax")) return ts_log_softmax(c, in[0]);
  if (!strcmp(n, "attention")) return ts_attention(c, in[0], in[1], in[2], mask);
  if (!strcmp(n, "sinusoidal")) return ts_sinusoidal(c, in[0], 8);
  if (!strcmp(n, "mse")) return ts_mse(c, in[0], in[1]);
  if (!strcmp(n, "cat_logprob")) return ts_categorical_logprob(c, in[0], ACTS);
  if (!strcmp(n, "entropy")) return ts_categorical_entropy(c, in[0]);
  if (!strcmp(n, "gauss")) return ts_gaussian_logprob(c, in[0], in[1], in[2]);
  ck_abort_msg("unknown case %s", n);
  return NULL;
}

static double loss_of(ts_ctx *c, int k, ts_tensor **in, ts_tensor *mask, const float *R) {
  ts_ctx_reset(c);
  int prev = ts_set_grad(c, 0);
  ts_tensor *o = build(c, k, in, mask);
  ts_set_grad(c, prev);
  double s = 0;
  for (int64_t i = 0; i < o->n; i++) s += (double)o->data[i] * R[i];
  return s;
}

START_TEST(test_gradcheck) {
  const gcase *g = &cases[_i];
  ts_rng rng;
  ts_rng_init(&rng, 77 + (uint64_t)_i);
  ts_tensor *in[4];
  for (int i = 0; i < g->nin; i++) {
    in[i] = ts_param_new(g->nd[i], g->shape[i]);
    ts_rng_fill_normal(&rng, in[i]->data, in[i]->n);
  }
  if (!strcmp(g->name, "sinusoidal")) /* timesteps: keep t * f small enough to be smooth in h */
    for (int i = 0; i < 3; i++) in[0]->data[i] = 0.3f * (float)i + 0.1f;
  ts_ctx *c = ts_ctx_new(1 << 16);
  /* A causal-style mask for attention (row i sees keys 0..i+1). */
  ts_tensor *mask = ts_param_new(2, (int[]){3, 4});
  mask->requires_grad = 0;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++) mask->data[i * 4 + j] = j > i + 1 ? -INFINITY : 0.0f;
  ts_tensor *o = build(c, _i, in, mask);
  float R[4096];
  ck_assert(o->n <= 4096);
  ts_rng_fill_normal(&rng, R, o->n);
  ck_assert_int_eq(ts_backward_with(c, o, R), 0);
  for (int i = 0; i < g->nin; i++) {
    ts_tensor *x = in[i];
    float *ana = malloc((size_t)x->n * sizeof(float));
    memcpy(ana, x->grad, (size_t)x->n * sizeof(float));
    for (int64_t j = 0; j < x->n; j++) {
      float keep = x->data[j];
      x->data[j] = keep + (float)H;
      double lp = loss_of(c, _i, in, mask, R);
      x->data[j] = keep - (float)H;
      double lm = loss_of(c, _i, in, mask, R);
      x->data[j] = keep;
      double num = (lp - lm) / (2 * H), a = ana[j];
      double tol = ATOL + RTOL * fmax(fabs(num), fabs(a));
      ck_assert_msg(fabs(num - a) <= tol, "%s: d/d in%d[%lld]: analytic %.6g, numeric %.6g", g->name, i,
                    (long long)j, a, num);
    }
    free(ana);
  }
  for (int i = 0; i < g->nin; i++) ts_param_free(in[i]);
  ts_param_free(mask);
  ts_ctx_free(c);
}
END_TEST

/* No-grad mode records nothing and still computes the same values. */
START_TEST(test_no_grad_records_nothing) {
  ts_ctx *c = ts_ctx_new(1 << 16);
  ts_tensor *w = ts_param_new(2, (int[]){3, 3});
  for (int i = 0; i < 9; i++) w->data[i] = (float)i;
  ts_tensor *a = ts_mish(c, ts_matmul(c, w, w, 0, 0));
  ck_assert_int_eq(c->nnodes, 2);
  ts_set_grad(c, 0);
  ts_tensor *b = ts_mish(c, ts_matmul(c, w, w, 0, 0));
  ck_assert_int_eq(c->nnodes, 2);
  ck_assert(!b->requires_grad);
  ck_assert_mem_eq(a->data, b->data, 9 * sizeof(float));
  ts_param_free(w);
  ts_ctx_free(c);
}
END_TEST

Suite *suite_grad(void) {
  Suite *s = suite_create("gradcheck");
  TCase *tc = tcase_create("finite_differences");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_gradcheck, 0, NG);
  tcase_add_test(tc, test_no_grad_records_nothing);
  suite_add_tcase(s, tc);
  return s;
}
