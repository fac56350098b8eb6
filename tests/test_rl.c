/* PPO (rl/ppo.h): GAE and the clipped surrogate against hand values and finite differences,
 * and whole PPO runs that must solve a bandit and a chain MDP. */
#include "tests.h"
#include "core/error.h"
#include "core/ops.h"
#include "rl/ppo.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_gae_hand) {
  /* Two episodes in one buffer: steps 0..2 end with done at step 2, step 3 is cut off and
   * bootstraps from last_value 0.7. gamma 0.9, lambda 0.8 (gamma lambda = 0.72):
   *   3: delta = 1 + 0.9 * 0.7 - 0.2 = 1.43                  adv 1.43
   *   2: delta = 2 - 0.3 = 1.7 (done: no next value)         adv 1.7
   *   1: delta = 0 + 0.9 * 0.3 - 0.4 = -0.13                 adv -0.13 + 0.72 * 1.7 = 1.094
   *   0: delta = 1 + 0.9 * 0.4 - 0.5 = 0.86                  adv 0.86 + 0.72 * 1.094 = 1.64768 */
  const float rew[4] = {1, 0, 2, 1}, val[4] = {0.5f, 0.4f, 0.3f, 0.2f};
  const unsigned char done[4] = {0, 0, 1, 0};
  float adv[4], ret[4];
  ts_gae(rew, val, done, 4, 0.7f, 0.9, 0.8, adv, ret);
  const double ea[4] = {1.64768, 1.094, 1.7, 1.43};
  for (int i = 0; i < 4; i++) {
    ck_assert_msg(fabs(adv[i] - ea[i]) < 1e-5, "adv[%d] = %g, expected %g", i, adv[i], ea[i]);
    ck_assert_msg(fabs(ret[i] - (ea[i] + val[i])) < 1e-5, "ret[%d] = %g", i, ret[i]);
  }
  /* lambda 0 is the one-step TD error; lambda 1, gamma 1 the Monte-Carlo return minus value. */
  ts_gae(rew, val, done, 4, 0.7f, 1.0, 1.0, adv, ret);
  ck_assert(fabs(ret[0] - 3.0) < 1e-6 && fabs(ret[3] - 1.7) < 1e-6);
}
END_TEST

START_TEST(test_clip_loss) {
  /* eps 0.2, old log-probs 0, so r = exp(logp):
   *   r 1.1, A +1: inside the range              term  1.1   grad -1.1 / 5
   *   r 1.5, A +1: above, clipped to 1.2 (min)   term  1.2   grad 0
   *   r 1.5, A -1: above, unclipped is the min   term -1.5   grad -(1.5 * -1) / 5 = 0.3
   *   r 0.5, A +1: below, unclipped is the min   term  0.5   grad -0.5 / 5 = -0.1
   *   r 0.5, A -1: below, clipped to 0.8 (min)   term -0.8   grad 0
   * L = -(1.1 + 1.2 - 1.5 + 0.5 - 0.8) / 5 = -0.1. */
  ts_ctx *c = ts_ctx_new(1 << 16);
  float r[5] = {1.1f, 1.5f, 1.5f, 0.5f, 0.5f}, A[5] = {1, 1, -1, 1, -1}, old[5] = {0};
  ts_tensor *lp = ts_param_new(1, (int[]){5});
  for (int i = 0; i < 5; i++) lp->data[i] = logf(r[i]);
  ts_zero_grad(&lp, 1);
  ts_tensor *L = ts_ppo_clip_loss(c, lp, old, A, 0.2f);
  ck_assert_msg(fabs(L->data[0] + 0.1) < 1e-6, "loss %g", L->data[0]);
  ts_backward(c, L);
  const double eg[5] = {-1.1 / 5, 0, 0.3, -0.1, 0};
  for (int i = 0; i < 5; i++) ck_assert_msg(fabs(lp->grad[i] - eg[i]) < 1e-6, "grad[%d] = %g, expected %g", i, lp->grad[i], eg[i]);
  /* Finite differences at random points away from the kinks (r = 1 +- eps). */
  ts_rng rng;
  ts_rng_init(&rng, 3);
  for (int trial = 0; trial < 20; trial++) {
    float o2[5], a2[5];
    for (int i = 0; i < 5; i++) {
      do lp->data[i] = 0.8f * (ts_rng_uniform(&rng) - 0.5f);
      while (fabs(expf(lp->data[i]) - 1.2f) < 0.02 || fabs(expf(lp->data[i]) - 0.8f) < 0.02);
      o2[i] = 0, a2[i] = ts_rng_normal(&rng);
    }
    ts_ctx_reset(c);
    ts_zero_grad(&lp, 1);
    ts_backward(c, ts_ppo_clip_loss(c, lp, o2, a2, 0.2f));
    for (int i = 0; i < 5; i++) {
      const double h = 1e-3;
      float x0 = lp->data[i];
      ts_ctx_reset(c);
      int g = ts_set_grad(c, 0);
      lp->data[i] = (float)(x0 + h);
      double up = ts_ppo_clip_loss(c, lp, o2, a2, 0.2f)->data[0];
      lp->data[i] = (float)(x0 - h);
      double dn = ts_ppo_clip_loss(c, lp, o2, a2, 0.2f)->data[0];
      lp->data[i] = x0;
      ts_set_grad(c, g);
      double fd = (up - dn) / (2 * h);
      ck_assert_msg(fabs(fd - lp->grad[i]) < 2e-3 * (1 + fabs(fd)), "trial %d, row %d: fd %g vs grad %g", trial, i, fd,
                    lp->grad[i]);
    }
  }
  ts_param_free(lp);
  ts_ctx_free(c);
}
END_TEST

/* A buffer of n steps collected by the caller's environment. */
typedef struct {
  float *obs, *logp, *val, *rew;
  int *act;
  unsigned char *done;
  int n, cap, D;
} buf;

static void buf_init(buf *b, int cap, int D) {
  b->obs = malloc((size_t)cap * D * sizeof(float));
  b->logp = malloc((size_t)cap * sizeof(float));
  b->val = malloc((size_t)cap * sizeof(float));
  b->rew = malloc((size_t)cap * sizeof(float));
  b->act = malloc((size_t)cap * sizeof(int));
  b->done = malloc((size_t)cap);
  b->n = 0, b->cap = cap, b->D = D;
}

static void buf_free(buf *b) {
  free(b->obs), free(b->logp), free(b->val), free(b->rew), free(b->act), free(b->done);
}

static int buf_step(buf *b, ts_ppo *a, const float *obs, ts_rng *r) {
  int i = b->n++;
  memcpy(b->obs + (size_t)i * b->D, obs, (size_t)b->D * sizeof(float));
  ts_ppo_act(a, obs, 0, r, &b->act[i], &b->logp[i], &b->val[i]);
  b->done[i] = 0;
  return b->act[i];
}

START_TEST(test_ppo_bandit) {
  /* One state, four arms with mean rewards 0.1, 0.5, 1.0, 0.2 plus N(0, 0.5) noise: the policy
   * must put > 0.9 of its mass on arm 2. */
  ts_ppo_cfg cf = {.obs_dim = 1, .n_actions = 4, .hidden = 16, .layers = 1, .lr = 3e-3, .clip = 0.2, .gamma = 1,
                   .lam = 1, .vf_coef = 0.5, .ent_coef = 0.0, .max_grad_norm = 1.0, .epochs = 4, .minibatch = 32};
  ts_rng r;
  ts_rng_init(&r, 1);
  ts_ppo a;
  ck_assert_int_eq(ts_ppo_new(&a, &cf, &r), 0);
  const float mean[4] = {0.1f, 0.5f, 1.0f, 0.2f}, one[1] = {1};
  float p[4];
  ts_ppo_probs(&a, one, p);
  for (int k = 0; k < 4; k++) ck_assert_msg(fabs(p[k] - 0.25) < 0.02, "first policy not near uniform: p[%d] = %g", k, p[k]);
  buf b;
  buf_init(&b, 128, 1);
  for (int it = 0; it < 60; it++) {
    b.n = 0;
    for (int s = 0; s < 128; s++) {
      int k = buf_step(&b, &a, one, &r);
      b.rew[b.n - 1] = mean[k] + 0.5f * ts_rng_normal(&r);
      b.done[b.n - 1] = 1;
    }
    ck_assert_int_eq(ts_ppo_update(&a, b.obs, b.act, b.logp, b.val, b.rew, b.done, b.n, 0, &r, NULL), 0);
  }
  ts_ppo_probs(&a, one, p);
  fprintf(stderr, "ppo bandit: p = %.3f %.3f %.3f %.3f\n", p[0], p[1], p[2], p[3]);
  ck_assert_msg(p[2] > 0.9, "p(best arm) = %g", p[2]);
  buf_free(&b);
  ts_ppo_free(&a);
}
END_TEST

START_TEST(test_ppo_chain) {
  /* A chain of 6 states (one-hot observation), start 0; right moves up, left moves down (not
   * below 0); reaching state 5 pays 1 and ends the episode; each step costs 0.02; episodes are
   * cut at 20 steps (bootstrapped). Optimal: right 5 times, return 1 - 5 * 0.02 = 0.9. From a
   * near-uniform start a random walk reaches the goal rarely, so the value must propagate back. */
  enum { S = 6, N = 256 };
  ts_ppo_cfg cf = {.obs_dim = S, .n_actions = 2, .hidden = 32, .layers = 2, .lr = 3e-3, .clip = 0.2, .gamma = 0.99,
                   .lam = 0.95, .vf_coef = 0.5, .ent_coef = 0.01, .max_grad_norm = 0.5, .epochs = 4, .minibatch = 64};
  ts_rng r;
  ts_rng_init(&r, 2);
  ts_ppo a;
  ck_assert_int_eq(ts_ppo_new(&a, &cf, &r), 0);
  buf b;
  buf_init(&b, N, S);
  int s = 0, len = 0;
  float obs[S];
  for (int it = 0; it < 80; it++) {
    b.n = 0;
    while (b.n < N) {
      memset(obs, 0, sizeof obs);
      obs[s] = 1;
      int k = buf_step(&b, &a, obs, &r);
      s = k ? s + 1 : (s > 0 ? s - 1 : 0);
      len++;
      b.rew[b.n - 1] = s == S - 1 ? 1.0f - 0.02f : -0.02f;
      if (s == S - 1 || len == 20) { /* the cut-off is treated as an end too (a small bias) */
        b.done[b.n - 1] = 1;
        s = 0, len = 0;
      }
    }
    float lv;
    int ak;
    memset(obs, 0, sizeof obs);
    obs[s] = 1;
    ts_ppo_act(&a, obs, 1, &r, &ak, NULL, &lv);
    ck_assert_int_eq(ts_ppo_update(&a, b.obs, b.act, b.logp, b.val, b.rew, b.done, b.n, lv, &r, NULL), 0);
  }
  /* Greedy from 0: reaches the goal in 5 steps; p(right) > 0.9 in every non-terminal state. */
  double ret = 0;
  s = 0;
  for (int step = 0; step < 20 && s != S - 1; step++) {
    memset(obs, 0, sizeof obs);
    obs[s] = 1;
    int k;
    ts_ppo_act(&a, obs, 1, &r, &k, NULL, NULL);
    s = k ? s + 1 : (s > 0 ? s - 1 : 0);
    ret += s == S - 1 ? 0.98 : -0.02;
  }
  for (int st = 0; st < S - 1; st++) {
    float p[2];
    memset(obs, 0, sizeof obs);
    obs[st] = 1;
    ts_ppo_probs(&a, obs, p);
    fprintf(stderr, "ppo chain: state %d p(right) %.3f\n", st, p[1]);
    ck_assert_msg(p[1] > 0.9, "state %d: p(right) = %g", st, p[1]);
  }
  ck_assert_msg(fabs(ret - 0.9) < 1e-6, "greedy return %g, optimal 0.9", ret);
  /* The normaliser saw the visited states: mean of the one-hot features is their visit rate. */
  ck_assert(a.obs_count->data[0] == 80.0f * N);
  ck_assert(a.obs_mean->data[0] > 0.1 && a.obs_mean->data[0] < 0.5);
  buf_free(&b);
  ts_ppo_free(&a);
}
END_TEST

START_TEST(test_ppo_norm_and_bad) {
  ts_ppo_cfg cf = {.obs_dim = 2, .n_actions = 3, .hidden = 4, .layers = 1, .lr = 1e-3, .clip = 0.2, .gamma = 1, .lam = 1,
                   .vf_coef = 1, .epochs = 1, .minibatch = 4};
  ts_rng r;
  ts_rng_init(&r, 1);
  ts_ppo a;
  ck_assert_int_eq(ts_ppo_new(&a, &cf, &r), 0);
  /* Two merges equal one pass: values 1, 2, 3 | 4, 5 in column 0 -> mean 3, var 2. */
  ts_ppo_norm_update(&a, (float[]){1, 0, 2, 0, 3, 0}, 3);
  ts_ppo_norm_update(&a, (float[]){4, 10, 5, 10}, 2);
  ck_assert(fabs(a.obs_mean->data[0] - 3) < 1e-6 && fabs(a.obs_var->data[0] - 2) < 1e-6);
  ck_assert(fabs(a.obs_mean->data[1] - 4) < 1e-6 && fabs(a.obs_var->data[1] - 24) < 1e-5);
  float out[2];
  ts_ppo_normalize(&a, (float[]){3 + 2 * sqrtf(2), 1000}, 1, out);
  ck_assert(fabs(out[0] - 2) < 1e-4 && out[1] == 5.0f); /* clipped at 5 */
  int n;
  ts_named *nm = ts_ppo_tensors(&a, &n);
  ck_assert_int_eq(n, a.params.n + 3);
  ck_assert_str_eq(nm[0].name, "ppo/actor.0.weight");
  ck_assert_str_eq(nm[n - 1].name, "ppo/obs_count");
  ts_named_free(nm, n);
  ts_ppo_free(&a);
  ts_ppo_cfg bad = cf;
  bad.n_actions = 1;
  ck_assert_int_ne(ts_ppo_new(&a, &bad, &r), 0);
  ck_assert_msg(strstr(ts_error(), "actions 1"), "%s", ts_error());
}
END_TEST

Suite *suite_rl(void) {
  Suite *s = suite_create("rl");
  TCase *tc = tcase_create("ppo");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_gae_hand);
  tcase_add_test(tc, test_clip_loss);
  tcase_add_test(tc, test_ppo_norm_and_bad);
  tcase_add_test(tc, test_ppo_bandit);
  tcase_add_test(tc, test_ppo_chain);
  suite_add_tcase(s, tc);
  return s;
}
