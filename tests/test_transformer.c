/* TransformerForDiffusion against PyTorch (tests/fixtures/transformer.h5 from
 * scripts/make_fixtures.py, reference in float64): output, input gradient and every parameter
 * gradient within relative 1e-4; the weight-decay groups and parameter counts as PyTorch's;
 * dropout only in training, and the training-mode gradient against finite differences. */
#include "tests.h"
#include "core/error.h"
#include "core/h5io.h"
#include "nn/transformer.h"
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
  int nfix = 0;
  char **fixnames = ts_h5_list(f, "params", &nfix);
  ck_assert_int_eq(nfix, m->params.n); /* the same state_dict keys (less the empty _dummy_variable) */
  ts_h5_free_names(fixnames, nfix);
  unsigned char *decay = malloc((size_t)m->params.n);
  ts_transformer_decay_mask(m, decay);
  char name[300];
  for (int i = 0; i < m->params.n; i++) {
    snprintf(name, sizeof name, "params/%s", m->params.name[i]);
    ck_assert_msg(ts_h5_read_tensor(f, name, m->params.t[i]) == 0, "%s", ts_error());
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
  double worst = 0;
  const char *worst_name = "";
  for (int i = 0; i < m->params.n; i++) {
    snprintf(name, sizeof name, "grads/%s", m->params.name[i]);
    ts_tensor *g = fix_tensor(c, f, name);
    double eg = rel_err(m->params.t[i]->grad, g->data, g->n, 1e-2);
    if (eg > worst) {
      worst = eg;
      worst_name = m->params.name[i];
    }
  }
  ck_assert_msg(worst <= 1e-4, "transformer parameter gradient %s: relative error %.3g", worst_name, worst);
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

Suite *suite_transformer(void) {
  Suite *s = suite_create("transformer");
  TCase *tc = tcase_create("transformer");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_transformer_vs_torch);
  tcase_add_test(tc, test_transformer_sizes);
  tcase_add_test(tc, test_transformer_dropout);
  suite_add_tcase(s, tc);
  return s;
}
