/* DDPM/DDIM arithmetic, configuration, training resume, and the sampling paths. */
#include "tests.h"
#include "core/config.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/timer.h"
#include "infer/denoisers.h"
#include "infer/loop.h"
#include "infer/spec.h"
#include "infer/policy.h"
#include "sim/pusht.h"
#include "infer/rollout.h"
#include "infer/scheduler.h"
#include "train/train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_ddpm_vs_reference) {
  ts_h5 *f = ts_h5_open(fixture_path("sched.h5"));
  ck_assert_ptr_nonnull(f);
  ts_ddpm s;
  ts_ddpm_init(&s, 100, 1);
  float *ac = fix_floats(f, "alphas_cumprod", NULL), *x = fix_floats(f, "x", NULL), *eps = fix_floats(f, "eps", NULL), mean[64], out[64];
  for (int t = 0; t < 100; t++) ck_assert_msg(fabs(s.alphas_cumprod[t] - ac[t]) <= 1e-7 * ac[t] + 1e-12, "abar[%d]", t);
  const int ts[4] = {99, 50, 1, 0};
  for (int k = 0; k < 4; k++) {
    char name[32];
    snprintf(name, sizeof name, "mean_%d", ts[k]);
    float *ref = fix_floats(f, name, NULL), sigma = ts_ddpm_mean(&s, ts[k], x, eps, mean, 64);
    double sref;
    ts_h5_get_attr_f64(f, name, "sigma", &sref);
    ck_assert_msg(rel_err(mean, ref, 64, 1e-2) < 1e-5, "t=%d mean: %g", ts[k], rel_err(mean, ref, 64, 1e-2));
    ck_assert_msg(fabs(sigma - sref) <= 1e-6 * (sref + 1e-6), "t=%d sigma %g vs %g", ts[k], sigma, sref);
    free(ref);
  }
  float *dref = fix_floats(f, "ddim_90_80", NULL);
  ts_ddim_step(&s, 90, 80, x, eps, out, 64);
  ck_assert(rel_err(out, dref, 64, 1e-2) < 1e-5);
  int steps[10];
  ts_ddim_timesteps(100, 10, steps);
  ck_assert_int_eq(steps[0], 90);
  ck_assert_int_eq(steps[9], 0);
  free(dref);
  free(ac);
  free(x);
  free(eps);
  ts_h5_close(f);
}
END_TEST

START_TEST(test_config_validation) {
  ts_config c;
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_parse_string(&c, "[train]\nlr = 1e-4\nlrr = 3\n", "x.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "x.ini:3") && strstr(ts_error(), "'lrr'") && strstr(ts_error(), "[train]"), "%s",
                ts_error());
  ck_assert_int_ne(ts_config_parse_string(&c, "[trian]\nlr = 1\n", "y.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "[trian]"), "%s", ts_error());
  ck_assert_int_ne(ts_config_parse_string(&c, "[train]\nbatch_size = lots\n", "z.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "batch_size") && strstr(ts_error(), "lots"), "%s", ts_error());
  ck_assert_int_ne(ts_config_override(&c, "train.nope=1"), 0);
  ck_assert_msg(strstr(ts_error(), "'nope'"), "%s", ts_error());
  ck_assert_int_ne(ts_config_override(&c, "model.down_dims=60,128"), 0); /* not a multiple of 8 */
  /* Values that would crash or silently misbehave later are refused, naming the key. */
  const char *bad[] = {"model.n_groups=0",    "model.kernel_size=-1", "train.checkpoint_every=0", "train.log_every=0",
                       "data.val_ratio=2",    "train.lr=nan",         "train.beta1=1.5",          "data.pad_before=-5",
                       "data.horizon=100000", "model.step_embed_dim=100000000"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ts_config_defaults(&c);
    ck_assert_msg(ts_config_override(&c, bad[i]) != 0, "%s accepted", bad[i]);
    char key[64];
    snprintf(key, sizeof key, "%s", strchr(bad[i], '.') + 1);
    *strchr(key, '=') = 0;
    ck_assert_msg(strstr(ts_error(), key), "%s: %s", bad[i], ts_error());
  }
  ts_config_defaults(&c);
  ck_assert_int_eq(ts_config_override(&c, "model.down_dims=32,64"), 0);
  ck_assert_int_eq(c.model.n_levels, 2);
  ck_assert_int_ne(ts_config_load(&c, "configs/absent.ini"), 0);
  /* The committed config parses, and to_ini round-trips. */
  ts_config a, b;
  ts_config_defaults(&a);
  ck_assert_msg(ts_config_load(&a, "configs/pusht_lowdim.ini") == 0, "%s", ts_error());
  char *txt = ts_config_to_ini(&a);
  ts_config_defaults(&b);
  ck_assert_msg(ts_config_parse_string(&b, txt, "roundtrip") == 0, "%s", ts_error());
  ck_assert_mem_eq(&a, &b, sizeof a);
  free(txt);
}
END_TEST

/* A tiny model on the two-episode fixture: 60 steps straight, or 30 steps, "killed", and
 * resumed with the same command, end bit-identical. */
static void tiny_cfg(ts_config *c) {
  ts_config_defaults(c);
  const char *ov[] = {"model.down_dims=8,16", "model.step_embed_dim=16", "train.batch_size=4", "train.warmup_steps=2",
                      "train.max_steps=60", "train.checkpoint_every=30", "train.log_every=15", "data.val_ratio=0",
                      "train.lr=1e-3", "train.eval_every=30", "train.eval_episodes=2"};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) ck_assert_msg(ts_config_override(c, ov[i]) == 0, "%s", ts_error());
}

static const char *tiny_data(void) {
  static char h5[512];
  if (!h5[0]) {
    char zarr[512];
    snprintf(zarr, sizeof zarr, "%s/tiny.zarr", tmp_dir());
    snprintf(h5, sizeof h5, "%s/tiny.h5", tmp_dir());
    make_pusht_zarr(zarr, 0);
    ts_import_report r;
    ck_assert_msg(ts_pusht_import_zarr(zarr, h5, &r) == 0, "%s", ts_error());
  }
  return h5;
}

/* For the other suites (tests.h). */
void infer_tiny_cfg(ts_config *c) { tiny_cfg(c); }
const char *infer_tiny_data(void) { return tiny_data(); }


START_TEST(test_train_resume_is_exact) {
  ts_config c;
  tiny_cfg(&c);
  char a[512], b[512];
  snprintf(a, sizeof a, "%s/straight.h5", tmp_dir());
  snprintf(b, sizeof b, "%s/resumed.h5", tmp_dir());
  ts_train_result r;
  ts_train_opts oa = {tiny_data(), a, 1, 1, 0};
  ck_assert_msg(ts_train(&c, &oa, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.steps, 60);
  ts_train_opts ob = {tiny_data(), b, 1, 1, 30};
  ck_assert_msg(ts_train(&c, &ob, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.steps, 30);
  ob.fresh = 0;
  ob.stop_after = 0;
  /* Resuming with a different recipe is refused, naming the key; schedule-only keys may change. */
  ts_config c2 = c;
  ck_assert_int_eq(ts_config_override(&c2, "train.lr=0.002"), 0);
  ck_assert_int_ne(ts_train(&c2, &ob, &r), 0);
  ck_assert_msg(strstr(ts_error(), "lr = ") && strstr(ts_error(), "--fresh"), "%s", ts_error());
  c2 = c;
  ck_assert_int_eq(ts_config_override(&c2, "model.down_dims=16,16"), 0);
  ck_assert_int_ne(ts_train(&c2, &ob, &r), 0);
  ck_assert_msg(strstr(ts_error(), "down_dims"), "%s", ts_error());
  c2 = c;
  ck_assert_int_eq(ts_config_override(&c2, "train.eval_episodes=3"), 0);
  ck_assert_msg(ts_train(&c2, &ob, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.resumed_from, 30);
  ck_assert_int_eq(r.steps, 60);
  const char *names[] = {"model/final_conv.1.weight", "ema/down_modules.0.0.blocks.0.block.0.weight",
                         "optim/m/model/mid_modules.1.cond_encoder.1.weight", "log/loss"};
  fix_same_datasets(a, b, names, 4);
  /* The run also wrote its CSV log and loss curve. */
  char p[600];
  snprintf(p, sizeof p, "%s.csv", a);
  FILE *f = fopen(p, "r");
  ck_assert_ptr_nonnull(f);
  fclose(f);
  snprintf(p, sizeof p, "%s.png", a);
  f = fopen(p, "r");
  ck_assert_ptr_nonnull(f);
  fclose(f);
  /* The periodic evaluation at step 30 (row 2 of the log) left its score. */
  int64_t ns;
  float *score = fix_read_all(a, "log/eval_score", &ns);
  ck_assert_int_eq(ns, 4);
  ck_assert(isnan(score[0]) && score[1] >= 0 && score[1] <= 1 && score[3] >= 0);
  free(score);
  /* The loss went down over 60 steps at lr 1e-3 on 7 windows (means of 15 steps). */
  int64_t n;
  float *loss = fix_read_all(a, "log/loss", &n);
  ck_assert_int_eq(n, 4);
  ck_assert_msg(loss[3] < loss[0], "loss %g -> %g", loss[0], loss[3]);
  free(loss);
}
END_TEST

/* The Transformer base trains and resumes bit-exactly too, with dropout on (its masks come
 * from the run's checkpointed RNG stream). */
START_TEST(test_train_transformer_resume_is_exact) {
  ts_config c;
  tiny_cfg(&c);
  const char *ov[] = {"model.type=transformer", "model.n_emb=16", "model.n_head=2", "model.n_layer=2",
                      "model.p_drop_emb=0.1", "model.p_drop_attn=0.1", "train.eval_every=0", "train.weight_decay=0.1"};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) ck_assert_msg(ts_config_override(&c, ov[i]) == 0, "%s", ts_error());
  char a[512], b[512];
  snprintf(a, sizeof a, "%s/tf_straight.h5", tmp_dir());
  snprintf(b, sizeof b, "%s/tf_resumed.h5", tmp_dir());
  ts_train_result r;
  ts_train_opts oa = {tiny_data(), a, 1, 1, 0};
  ck_assert_msg(ts_train(&c, &oa, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.steps, 60);
  ck_assert_msg(r.final_loss < 1.5 && r.final_loss > 0, "final loss %g", r.final_loss);
  ts_train_opts ob = {tiny_data(), b, 1, 1, 30};
  ck_assert_msg(ts_train(&c, &ob, &r) == 0, "%s", ts_error());
  ob.fresh = 0;
  ob.stop_after = 0;
  ck_assert_msg(ts_train(&c, &ob, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.resumed_from, 30);
  const char *names[] = {"model/decoder.layers.1.self_attn.in_proj_weight", "ema/head.weight",
                         "optim/v/model/decoder.layers.0.linear1.weight", "model/pos_emb", "log/loss"};
  fix_same_datasets(a, b, names, 5);
}


/* The accept / reflect rule on its own: for a fixed pair of means the output is N(mq, sig^2)
 * whatever mp is, and drafts are accepted with probability 2 Phi(-|Delta| / 2). */
START_TEST(test_spec_rule) {
  const float mp[2] = {0.5f, -0.3f}, mq[2] = {0.0f, 0.1f}, sig = 0.8f;
  ts_rng r;
  ts_rng_init(&r, 3);
  enum { N = 40000 };
  double m[2] = {0}, v[2] = {0}, c = 0;
  long acc = 0;
  for (int i = 0; i < N; i++) {
    float z[2] = {ts_rng_normal(&r), ts_rng_normal(&r)}, y[2];
    acc += ts_spec_accept(mp, mq, sig, z, ts_rng_uniform_d(&r), y, 2);
    for (int k = 0; k < 2; k++) {
      double d = y[k] - mq[k];
      m[k] += d;
      v[k] += d * d;
    }
    c += (y[0] - mq[0]) * (y[1] - mq[1]);
  }
  double s2 = (double)sig * sig, se = sqrt(s2 / N);
  for (int k = 0; k < 2; k++) {
    ck_assert_msg(fabs(m[k] / N) < 4 * se, "mean offset %g (4 se = %g)", m[k] / N, 4 * se);
    ck_assert_msg(fabs(v[k] / N / s2 - 1) < 4 * sqrt(2.0 / N), "variance ratio %g", v[k] / N / s2);
  }
  ck_assert_msg(fabs(c / N / s2) < 4 / sqrt((double)N), "covariance %g", c / N / s2);
  double dn = sqrt((0.5 * 0.5 + 0.4 * 0.4) / s2), pacc = erfc(dn / 2 / sqrt(2.0)); /* 2 Phi(-|D|/2) */
  ck_assert_msg(fabs((double)acc / N - pacc) < 4 * sqrt(pacc * (1 - pacc) / N), "acceptance %g, expected %g",
                (double)acc / N, pacc);
}
END_TEST

/* A target whose DDPM chain is Gaussian in closed form: eps(x, t) = k_t x with k_t moving a
 * lot between steps (so frozen drafts are often rejected), clip_sample off. Then
 * x_{t-1} = A_t x_t + sigma_t z and Var x_{-1} follows a scalar recursion; the speculative
 * chain must reproduce it to sampling error, for several block lengths. */
static double lin_k(int t) { return 0.5 + 0.45 * sin(0.7 * t); }

static void lin_eps(void *ctx, const float *x, const int *t, const float *cond, int B, float *eps) {
  (void)ctx;
  (void)cond;
  for (int b = 0; b < B; b++)
    for (int i = 0; i < 4; i++) eps[b * 4 + i] = (float)lin_k(t[b]) * x[b * 4 + i];
}

static const ts_denoiser_ops lin_ops = {"linear-test", lin_eps, NULL, NULL, NULL};

/* A target whose clean-chunk estimate is the same at every (x, t): eps = (x - sqrt(abar_t) c)
 * / sqrt(1 - abar_t), so x0 = c (|c| < 1, inside the clip). The x0 drafter's drafts are then
 * the target's own steps. */
static void constx0_eps(void *ctx, const float *x, const int *t, const float *cond, int B, float *eps) {
  const ts_ddpm *s = ctx;
  (void)cond;
  for (int b = 0; b < B; b++) {
    double a = s->alphas_cumprod[t[b]];
    for (int i = 0; i < 4; i++) eps[b * 4 + i] = (float)((x[b * 4 + i] - sqrt(a) * (0.1 * i - 0.15)) / sqrt(1 - a));
  }
}

static const ts_denoiser_ops constx0_ops = {"constant-x0-test", constx0_eps, NULL, NULL, NULL};

/* A stand-in for a learned drafter: the base denoiser's eps plus c * f(x, t) with the fixed
 * smooth f = tanh(x) (1 + sin(t / 2) / 2), so its drafts are often rejected, draft 1 included
 * (an f along x makes Delta grow with |x|, which the closed-form chain's variance sees). It calls the base through its
 * ops, leaving the base's call counter to the sampler's own calls. */
typedef struct { ts_denoiser *base; float c; } perturbed;

static void perturbed_eps(void *self, const float *x, const int *t, const float *cond, int B, float *eps) {
  perturbed *q = self;
  q->base->ops->eps(q->base->self, x, t, cond, B, eps);
  int n = q->base->horizon * q->base->act_dim;
  for (int b = 0; b < B; b++)
    for (int i = 0; i < n; i++)
      eps[b * n + i] += q->c * (float)(tanh(x[b * n + i]) * (1 + 0.5 * sin(0.5 * t[b])));
}

static const ts_denoiser_ops perturbed_ops = {"perturbed-test", perturbed_eps, NULL, NULL, NULL};

static ts_denoiser perturbed_of(ts_denoiser *base, perturbed *q, float c) {
  q->base = base;
  q->c = c;
  return (ts_denoiser){&perturbed_ops, q, base->horizon, base->act_dim, base->cond_dim, 0, 0};
}

/* Var x_{-1} of the linear target's DDPM-100 chain, by the exact recursion. */
static double lin_exact_var(const ts_ddpm *s) {
  double v = 1; /* Var x_T */
  for (int t = s->T - 1; t >= 0; t--) {
    double ab = s->alphas_cumprod[t], abp = t ? s->alphas_cumprod[t - 1] : 1.0, beta = 1 - ab / abp;
    double c0 = sqrt(abp) * beta / (1 - ab), ct = sqrt(ab / abp) * (1 - abp) / (1 - ab);
    double A = c0 * (1 - sqrt(1 - ab) * lin_k(t)) / sqrt(ab) + ct, var = t ? (1 - abp) / (1 - ab) * beta : 0;
    v = A * A * v + var;
  }
  return v;
}

/* N chains of the linear target driven round by round; block 0 picks it per round as a crude
 * scheduler would (double after a fully accepted round, halve after a rejection). Returns the
 * sample mean and variance over all coordinates; *st the counters, *r1 the rounds whose draft 1
 * was rejected. The per-round info must add up to the counters. */
static void lin_chains(ts_spec *sp, const ts_drafter *d, int block, int N, uint64_t seed, double *mean, double *var,
                       ts_spec_stats *st, long *r1) {
  ts_rng r;
  ts_rng_init(&r, seed);
  ts_spec_reset_stats(sp);
  double m = 0, q = 0;
  long drafted = 0, accepted = 0, calls = 0, dcalls = 0, rounds = 0, checked = 0;
  float cond[1] = {0};
  *r1 = 0;
  int bad = 0; /* per-round checks, asserted once (a Check assertion per round costs a syscall) */
  for (int c = 0; c < N; c++) {
    ts_spec_begin(sp, cond, &r);
    int rc, L = block ? block : 4;
    ts_spec_round_info in;
    do {
      int t0 = ts_spec_t(sp);
      rc = ts_spec_round(sp, d, L, &r, &in);
      bad |= rc < 0 || in.t_before != t0 || in.t_after != ts_spec_t(sp) || in.accepted > in.drafted ||
             in.max_delta < in.mean_delta || in.mean_delta < 0;
      drafted += in.drafted, accepted += in.accepted, calls += in.target_calls, dcalls += in.drafter_calls;
      rounds += in.drafted > 0;
      checked += in.accepted + (in.accepted < in.drafted); /* a rejected draft is checked; those after it are not */
      *r1 += in.drafted > 0 && in.accepted == 0;
      if (!block) L = in.accepted == in.drafted ? (2 * L > 12 ? 12 : 2 * L) : (L / 2 > 1 ? L / 2 : 1);
    } while (rc == 1);
    bad |= ts_spec_t(sp) != -1;
    const float *x = ts_spec_x(sp);
    for (int i = 0; i < 4; i++) m += x[i], q += (double)x[i] * x[i];
  }
  ck_assert_msg(!bad, "a round's info or return value is inconsistent");
  *st = *ts_spec_stats_of(sp);
  ck_assert(st->chunks == N && st->drafted == drafted && st->accepted == accepted && st->target_calls == calls &&
            st->drafter_calls == dcalls && st->rounds == rounds);
  /* Per diffusion step: the checked and accepted drafts add up to the totals; the time split
   * is inside the rounds' time. */
  long sum_d = 0, sum_a = 0;
  for (int t = 0; t < TS_MAX_T; t++) {
    ck_assert(st->accepted_t[t] <= st->drafted_t[t]);
    sum_d += st->drafted_t[t], sum_a += st->accepted_t[t];
  }
  ck_assert_int_eq(sum_d, checked);
  ck_assert_int_eq(sum_a, accepted);
  ck_assert(st->drafted_t[0] == 0 && st->draft_s >= 0 && st->verify_s > 0 && st->draft_s + st->verify_s <= st->round_s);
  /* a round verifies its K drafts plus, when its start's eps is not known, the start; t = 0 one row */
  ck_assert(st->verify_rows >= st->chunks && st->verify_rows <= st->drafted + st->rounds + st->chunks);
  double M = 4.0 * N;
  *mean = m / M;
  *var = q / M - *mean * *mean;
}

START_TEST(test_spec_exact_gaussian) {
  ts_ddpm s;
  ts_ddpm_init(&s, 100, 0);
  double v = lin_exact_var(&s);
  ts_denoiser lin = {&lin_ops, NULL, 1, 4, 1, 0, 0};
  ts_spec *sp = ts_spec_new(&lin, &s, 12);
  ck_assert_ptr_nonnull(sp);
  const int blocks[3] = {2, 5, 12};
  enum { N = 15000 };
  double M = 4.0 * N;
  for (int bi = 0; bi < 3; bi++) {
    ts_spec_stats st;
    long r1;
    double mean, var;
    lin_chains(sp, NULL, blocks[bi], N, 100 + bi, &mean, &var, &st, &r1);
    double acc = (double)st.accepted / st.drafted;
    ck_assert_msg(fabs(mean) < 4 * sqrt(v / M), "block %d: mean %g", blocks[bi], mean);
    ck_assert_msg(fabs(var / v - 1) < 4 * sqrt(2.0 / M), "block %d: variance %g, exact %g (acceptance %.3f)", blocks[bi],
                  var, v, acc);
    ck_assert_msg(acc < 0.97 && st.target_calls < 100L * N, "block %d: acceptance %.3f, %ld calls", blocks[bi], acc,
                  st.target_calls);
    ck_assert_int_eq(r1, 0); /* the frozen drafter's first draft is the target's own step */
    ck_assert_int_eq(st.drafter_calls, 0);
  }
  /* Bad arguments fail with a message, they do not crash. */
  ck_assert_ptr_null(ts_spec_new(&lin, &s, 0));
  ts_rng r0;
  ts_rng_init(&r0, 1);
  ts_spec_begin(sp, (float[]){0}, &r0);
  ck_assert_int_eq(ts_spec_round(sp, NULL, 13, &r0, NULL), -1);
  ck_assert_msg(strstr(ts_error(), "block 13"), "%s", ts_error());
  ts_spec_free(sp);
}
END_TEST

/* The same closed-form chain with a learned-style drafter (the target's eps plus c * f(x, t)):
 * drafts come from the drafter's own steps, draft 1 is verified and can be rejected, and the
 * output must still be the target's law, for several block lengths and a per-round scheduled
 * block. The keep-every-draft ablation samples the drafter's chain instead and must be caught. */
START_TEST(test_spec_learned_gaussian) {
  ts_ddpm s;
  ts_ddpm_init(&s, 100, 0);
  double v = lin_exact_var(&s);
  ts_denoiser lin = {&lin_ops, NULL, 1, 4, 1, 0, 0};
  perturbed q;
  ts_denoiser dn = perturbed_of(&lin, &q, 0.6f);
  ts_drafter d = {.net = &dn};
  ts_spec *sp = ts_spec_new(&lin, &s, 12);
  const int blocks[4] = {1, 3, 6, 0}; /* 0: scheduled per round */
  enum { N = 15000 };
  double M = 4.0 * N;
  for (int bi = 0; bi < 4; bi++) {
    ts_spec_stats st;
    long r1;
    double mean, var;
    lin_chains(sp, &d, blocks[bi], N, 200 + bi, &mean, &var, &st, &r1);
    double acc = (double)st.accepted / st.drafted;
    fprintf(stderr, "learned-drafter Gaussian chain, block %d: acceptance %.3f, draft 1 rejected in %.1f%% of rounds, "
            "%.1f target + %.1f drafter calls per chain, variance ratio %.4f (4 se = %.4f)\n", blocks[bi], acc,
            100.0 * r1 / st.rounds, (double)st.target_calls / N, (double)st.drafter_calls / N, var / v,
            4 * sqrt(2.0 / M));
    ck_assert_msg(fabs(mean) < 4 * sqrt(v / M), "block %d: mean %g", blocks[bi], mean);
    ck_assert_msg(fabs(var / v - 1) < 4 * sqrt(2.0 / M), "block %d: variance %g, exact %g (acceptance %.3f)", blocks[bi],
                  var, v, acc);
    ck_assert_msg(acc > 0.3 && acc < 0.95, "block %d: acceptance %.3f", blocks[bi], acc);
    ck_assert_msg(r1 > st.rounds / 50, "block %d: draft 1 rejected in %ld of %ld rounds", blocks[bi], r1, st.rounds);
    ck_assert_int_eq(st.drafter_calls, st.drafted);
    ck_assert(st.target_calls <= st.rounds + N); /* one per round, plus the last step's at most */
    ck_assert(st.verify_rows >= st.drafted);       /* every draft is a row of its round's verification */
  }
  /* The x0 drafter (training-free: each round holds the target's latest clean estimate), alone
   * and with the perturbed drafter for the steps t < 30: the target's law, no drafter calls
   * alone, one target call per round plus at most the chain's first and last. */
  ts_drafter dx = {.x0 = 1}, dxl = {.x0 = 1, .net = &dn, .late_t = 30}, dxh = {.x0 = 1, .net = &dn, .late_t = 10, .early_t = 70};
  ck_assert_str_eq(ts_drafter_label(&dx), "x0");
  ck_assert_str_eq(ts_drafter_label(&dxl), "x0+late");
  ck_assert_str_eq(ts_drafter_label(&dxh), "learned+x0");
  ck_assert_str_eq(ts_drafter_label(&d), "learned");
  ck_assert_str_eq(ts_drafter_label(NULL), "frozen");
  for (int k = 0; k < 3; k++)
    for (int bi = 0; bi < 2; bi++) {
      const int L = bi ? 8 : 3;
      ts_spec_stats st;
      long r1;
      double mean, var;
      lin_chains(sp, k == 2 ? &dxh : k ? &dxl : &dx, L, N, 400 + 2 * k + bi, &mean, &var, &st, &r1);
      double acc = (double)st.accepted / st.drafted;
      fprintf(stderr, "x0 drafter%s, Gaussian chain, block %d: acceptance %.3f, %.1f target + %.1f drafter calls per "
              "chain, variance ratio %.4f\n", k == 2 ? " between two perturbed-net ranges" : k ? " + late perturbed net" : "",
              L, acc, (double)st.target_calls / N,
              (double)st.drafter_calls / N, var / v);
      ck_assert_msg(fabs(mean) < 4 * sqrt(v / M), "x0 %d, block %d: mean %g", k, L, mean);
      ck_assert_msg(fabs(var / v - 1) < 4 * sqrt(2.0 / M), "x0 %d, block %d: variance %g, exact %g (acceptance %.3f)", k, L,
                    var, v, acc);
      ck_assert_msg(acc > 0.01 && acc < 1, "x0 %d, block %d: acceptance %.3f", k, L, acc); /* a hard case here */
      if (k) ck_assert(st.drafter_calls > 0 && st.drafter_calls < st.drafted);
      else ck_assert_int_eq(st.drafter_calls, 0);
      ck_assert(st.target_calls <= st.rounds + 2L * N);
    }
  /* A target with a constant clean estimate: the x0 drafter's every draft is accepted, a chain
   * costs as many target calls as rounds, and it ends at the estimate. */
  {
    ts_ddpm sc;
    ts_ddpm_init(&sc, 100, 1);
    ts_denoiser cx = {&constx0_ops, &sc, 1, 4, 1, 0, 0};
    ts_spec *sx = ts_spec_new(&cx, &sc, 12);
    ts_rng rx;
    ts_rng_init(&rx, 9);
    long rounds = 0, calls = 0, bad = 0;
    for (int c = 0; c < 50; c++) {
      ts_spec_begin(sx, (float[]){0}, &rx);
      ts_spec_round_info in;
      int rc;
      do {
        rc = ts_spec_round(sx, &dx, 1 + c % 12, &rx, &in);
        bad += rc < 0 || in.accepted != in.drafted || in.drafter_calls != 0;
        rounds++, calls += in.target_calls;
      } while (rc == 1);
      for (int i = 0; i < 4; i++) bad += fabs(ts_spec_x(sx)[i] - (0.1 * i - 0.15)) > 1e-4;
    }
    ck_assert_msg(bad == 0, "constant-x0 target: %ld rounds rejected a draft, called the drafter or ended elsewhere", bad);
    /* the first round of a chain makes two (its reference estimate, then its verification), the
     * last (t = 0, whose eps the round before left) none, every other one */
    ck_assert_msg(calls == rounds, "constant-x0 target: %ld target calls for %ld rounds", calls, rounds);
    ts_spec_free(sx);
  }
  /* Without verification the chain is the drafter's: its variance is off by many se. */
  ts_spec_set_verify(sp, 0);
  ts_spec_stats st;
  long r1;
  double mean, var;
  enum { NA = 2000 };
  lin_chains(sp, &d, 4, NA, 300, &mean, &var, &st, &r1);
  fprintf(stderr, "learned-drafter Gaussian chain, keep every draft: variance ratio %.4f\n", var / v);
  ck_assert_msg(fabs(var / v - 1) > 8 * sqrt(2.0 / (4.0 * NA)), "keep-every-draft variance %g vs %g: the test has no power",
                var, v);
  /* A drafter of another shape is refused. */
  ts_denoiser wrong = {&lin_ops, NULL, 2, 2, 1, 0, 0};
  ts_drafter dw = {.net = &wrong};
  ts_rng r0;
  ts_rng_init(&r0, 1);
  ts_spec_begin(sp, (float[]){0}, &r0);
  ck_assert_int_eq(ts_spec_round(sp, &dw, 2, &r0, NULL), -1);
  ts_spec_free(sp);
}
END_TEST

/* The U-Net's two denoisers behind the one interface: the same function, their costs, their
 * counters, and refusals. */
START_TEST(test_unet_denoisers) {
  ts_config c;
  ts_config_defaults(&c);
  ck_assert_int_eq(ts_config_override(&c, "model.down_dims=8,16"), 0);
  ck_assert_int_eq(ts_config_override(&c, "model.step_embed_dim=16"), 0);
  ts_unet_cfg uc = ts_model_unet_cfg(&c, 2, 20);
  ck_assert_int_eq(uc.global_cond_dim, 40);
  /* Multiply-adds at horizon 16 (kernel 5, FiLM input 16 + 40), by hand:
   *   step MLP 16x64 + 64x16                                                        2,048
   *   down 0 (length 16): 2->8 block 1280 + 5120 + res 256 + FiLM 56x16 = 7552;
   *     8->8 block 5120 + 5120 + 896 = 11136; downsample 8 x 8x8x3 = 1536         20,224
   *   down 1 (length 8): 8->16 block 5120 + 10240 + res 1024 + FiLM 56x32 = 18176;
   *     16->16 block 10240 + 10240 + 1792 = 22272                                   40,448
   *   mid (length 8): two 16->16 blocks                                             44,544
   *   up 0 (length 8): 32->8 block 10240 + 2560 + res 2048 + 896 = 15744;
   *     8->8 block 2560 + 2560 + 896 = 6016; upsample 8 x 8x8x4 = 2048             23,808
   *   final: 16 x 8x8x5 + 16 x 2x8                                                  5,376
   * total 136,448; without the step path (MLP and the 16 x 2 cout step half of the 8 FiLM
   * linears, 32 x 96 = 3,072): 131,328. */
  ck_assert_double_eq(ts_unet_flops(&uc, 16, 1), 2 * 136448.0);
  ck_assert_double_eq(ts_unet_flops(&uc, 16, 0), 2 * 131328.0);
  ts_model m;
  ck_assert_int_eq(ts_model_new(&m, &c, 2, 20), 0);
  ts_unet *u = m.unet;
  ck_assert_double_eq(ts_model_flops(&m), 2 * 136448.0);
  ts_rng r;
  ts_rng_init(&r, 4);
  ts_model_init(&m, &r);
  ts_denoiser eng, plain, tape;
  ck_assert_int_eq(ts_denoiser_unet_engine(&eng, u, 16, 100, 1), 0);
  ck_assert_int_eq(ts_denoiser_unet_engine(&plain, u, 16, 0, 2), 0);
  ck_assert_int_eq(ts_denoiser_tape(&tape, &m), 0);
  ck_assert_str_eq(eng.ops->kind, "unet-engine");
  ck_assert_str_eq(tape.ops->kind, "tape");
  ck_assert(eng.horizon == 16 && eng.act_dim == 2 && eng.cond_dim == 40 && ts_denoiser_same_shape(&eng, &tape));
  ck_assert_double_eq(eng.flops, 2 * 131328.0); /* the step path is looked up */
  ck_assert_double_eq(plain.flops, 2 * 136448.0);
  ck_assert_double_eq(tape.flops, 2 * 136448.0);
  ck_assert_ptr_nonnull(ts_denoiser_unet_plan(&eng));
  ck_assert_ptr_null(ts_denoiser_unet_plan(&tape));
  enum { B = 3, NX = B * 16 * 2 };
  float x[NX], cond[B * 40], e1[NX], e2[NX], e3[NX];
  int t[B] = {0, 57, 99};
  ts_rng_fill_normal(&r, x, NX);
  ts_rng_fill_normal(&r, cond, B * 40);
  ts_denoiser_set_threads(&tape, 2); /* no threads of its own: ignored */
  ts_denoiser_reserve(&tape, B);
  ts_denoiser_eps(&eng, x, t, cond, B, e1);
  ts_denoiser_eps(&plain, x, t, cond, B, e2);
  ts_denoiser_eps(&tape, x, t, cond, B, e3);
  ts_denoiser_eps(&tape, x, t, cond, 1, e3); /* row 0 again, batch 1 */
  ck_assert_msg(rel_err(e1, e3, NX, 1e-2) < 1e-5, "engine vs tape %g", rel_err(e1, e3, NX, 1e-2));
  ck_assert_msg(rel_err(e2, e3, NX, 1e-2) < 1e-5, "engine without table vs tape %g", rel_err(e2, e3, NX, 1e-2));
  ck_assert(eng.calls == 1 && plain.calls == 1 && tape.calls == 2);
  /* The engine allocates nothing for batches it was reserved for. */
  long a0 = ts_unet_plan_allocs(ts_denoiser_unet_plan(&eng));
  ts_denoiser_eps(&eng, x, t, cond, 2, e1);
  ck_assert_int_eq(ts_unet_plan_allocs(ts_denoiser_unet_plan(&eng)), a0);
  /* A horizon the U-Net cannot halve is refused with a message. */
  ts_denoiser bad;
  ck_assert_int_ne(ts_denoiser_unet_engine(&bad, u, 15, 100, 1), 0);
  ck_assert_msg(strstr(ts_error(), "horizon 15"), "%s", ts_error());
  ts_model mb = m;
  mb.horizon = 0;
  ck_assert_int_ne(ts_denoiser_tape(&bad, &mb), 0);
  ts_denoiser_free(&bad); /* zeroed by the failed constructor: a no-op */
  ts_denoiser_free(&eng);
  ts_denoiser_free(&eng); /* twice is safe */
  ts_denoiser_free(&plain);
  ts_denoiser_free(&tape);
  ts_model_free(&m);
}
END_TEST

/* A checkpoint of config c with p's normalisers and no weights (the loader's refusals). */
static void config_only_ckpt(const char *path, const ts_config *c, const ts_policy *p) {
  char *ini = ts_config_to_ini(c);
  ts_h5 *f = ts_h5_create(path);
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(ts_h5_attr_str(f, "/", "config", ini), 0);
  ck_assert_int_eq(ts_norm_save(f, "normalizer/obs", &p->nobs), 0);
  ck_assert_int_eq(ts_norm_save(f, "normalizer/action", &p->nact), 0);
  ck_assert_int_eq(ts_h5_commit(f), 0);
  free(ini);
}

/* The perturbed drafter's strength on the policy's U-Net (test_policy_sampling). */
#define SPEC_DRAFT_C 1.0f

/* One speculative sampler's law on NS chunks of the observations ob against the DDPM chunks
 * ad (NS x 32): `ok` (rng seed) must pass the energy test, and `broken`, its keep-every-draft
 * variant (seed + 1), must fail it, so the test is seen to have the power. as, an: NS x 32 work
 * space. Prints what, ok's acceptance and calls per chunk, and both p-values. */
static void spec_law(ts_policy *p, const float *ob, int NS, ts_sampler *ok, ts_sampler *broken, uint64_t seed,
                     const float *ad, float *as, float *an, const char *what) {
  ts_rng r;
  ts_spec_reset_stats(ok->spec);
  ts_rng_init(&r, seed);
  ck_assert_int_eq(ts_policy_sample(p, ob, NS, ok, &r, as), 0);
  ts_rng_init(&r, seed + 1);
  ck_assert_int_eq(ts_policy_sample(p, ob, NS, broken, &r, an), 0);
  const ts_spec_stats *st = ts_spec_stats_of(ok->spec);
  double e1, e2, p1 = energy_pvalue(as, ad, NS, 32, 200, 7, &e1), p2 = energy_pvalue(an, ad, NS, 32, 200, 7, &e2);
  fprintf(stderr, "spec test, %s: acceptance %.3f, %.1f target + %.1f drafter calls per chunk, p = %.3f; "
          "keep-every-draft p = %.3f\n", what, (double)st->accepted / ts_spec_checked(st), (double)st->target_calls / NS,
          (double)st->drafter_calls / NS, p1, p2);
  ck_assert_msg(p1 > 0.01, "%s vs DDPM: energy %g, p = %g", what, e1, p1);
  ck_assert_msg(p2 < 0.01, "%s, keep-every-draft vs DDPM: energy %g, p = %g (the test has no power)", what, e2, p2);
}

START_TEST(test_policy_sampling) {
  ts_config c;
  tiny_cfg(&c);
  char ck[512];
  snprintf(ck, sizeof ck, "%s/policy.h5", tmp_dir());
  ts_train_result r;
  ts_train_opts o = {tiny_data(), ck, 1, 1, 0};
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
  ts_policy p;
  ck_assert_msg(ts_policy_load(&p, ck, "ema") == 0, "%s", ts_error());
  ck_assert_int_eq(p.obs_dim, 20);
  ck_assert_int_eq(p.cond_dim, 40);
  float obs[3 * 40], a1[3 * 32], a2[3 * 32];
  for (int i = 0; i < 120; i++) obs[i] = 100.0f + (float)(i % 40);
  ts_rng r1, r2;
  /* Same seed, same chunks; the inference path allocates nothing after the first call. */
  const ts_sampler ddpm = {.kind = TS_SAMPLER_DDPM}, ddim10 = {.kind = TS_SAMPLER_DDIM, .steps = 10};
  ts_rng_init(&r1, 5);
  ck_assert_int_eq(ts_policy_sample(&p, obs, 3, &ddpm, &r1, a1), 0);
  long m0 = ts_unet_plan_allocs(ts_denoiser_unet_plan(&p.target)), c0 = p.target.calls;
  ts_rng_init(&r2, 5);
  ck_assert_int_eq(ts_policy_sample(&p, obs, 3, &ddpm, &r2, a2), 0);
  ck_assert_int_eq(ts_unet_plan_allocs(ts_denoiser_unet_plan(&p.target)), m0);
  ck_assert_int_eq(p.target.calls - c0, 100);
  ck_assert_mem_eq(a1, a2, sizeof a1);
  /* Actions come back unnormalised: inside the training range (clip_sample bounds x0). */
  for (int i = 0; i < 96; i += 2) {
    ck_assert(a1[i] >= p.nact.min[0] - 1e-3f && a1[i] <= p.nact.max[0] + 1e-3f);
  }
  /* The engine and the autograd forward give the same chunks from the same seed (the whole
     100-step chain, clipping included), to float rounding. */
  ts_sampler ddpm_ref = {.kind = TS_SAMPLER_DDPM, .target = ts_policy_reference(&p)};
  ck_assert_ptr_nonnull(ddpm_ref.target);
  ck_assert_str_eq(ddpm_ref.target->ops->kind, "tape");
  ts_rng_init(&r2, 5);
  ck_assert_int_eq(ts_policy_sample(&p, obs, 3, &ddpm_ref, &r2, a2), 0);
  ck_assert_int_eq(p.reference.calls, 100);
  double worst = 0, range = p.nact.max[0] - p.nact.min[0];
  for (int i = 0; i < 96; i++) worst = fmax(worst, fabs(a1[i] - a2[i]));
  ck_assert_msg(worst <= 1e-4 * range, "engine vs tape DDPM chunk: max difference %g (range %g)", worst, range);
  ck_assert_int_eq(ts_policy_sample(&p, obs, 3, &ddim10, &r1, a1), 0);
  ck_assert_int_lt(ts_enum_parse(ts_sampler_names, "euler", "sampler"), 0);
  ck_assert_int_ne(ts_policy_sample(&p, obs, 3, &(ts_sampler){.kind = TS_SAMPLER_COUNT, .steps = 10}, &r1, a1), 0);
  ck_assert_int_ne(ts_policy_sample(&p, obs, 3, &(ts_sampler){.kind = TS_SAMPLER_SPEC, .steps = 0}, &r1, a1), 0);
  /* Speculative sampling (frozen-target drafter) draws DDPM's distribution: 300 chunks each,
   * energy-distance permutation test at fixed seeds. The same test rejects the lossy variant
   * that keeps every draft, so it can see a difference of that size. The briefly trained
   * network predicts nearly the same eps everywhere (drafts would almost never be wrong), so
   * the check runs on freshly initialised weights, whose eps moves with x and t. */
  {
    enum { NS = 300 };
    const float SPEC_GAIN = 10.0f;
    ts_rng ri;
    ts_rng_init(&ri, 21);
    ts_unet *pu = p.model.unet;
    ts_unet_init(pu, &ri);
    for (int64_t i = 0; i < pu->final1.w->n; i++) pu->final1.w->data[i] *= SPEC_GAIN; /* louder eps */
    ts_denoiser_free(&p.target);
    ck_assert_int_eq(ts_denoiser_unet_engine(&p.target, pu, p.horizon, p.sched.T, 1), 0);
    float *ob3 = malloc(NS * 40 * sizeof(float)), *ad = malloc(NS * 32 * sizeof(float));
    float *as = malloc(NS * 32 * sizeof(float)), *an = malloc(NS * 32 * sizeof(float));
    for (int i = 0; i < NS * 40; i++) ob3[i] = obs[i % 40];
    ts_rng_init(&r1, 11);
    ck_assert_int_eq(ts_policy_sample(&p, ob3, NS, &ddpm, &r1, ad), 0);
    ts_spec *sp = ts_spec_new(&p.target, &p.sched, 25), *sn = ts_spec_new(&p.target, &p.sched, 25);
    ts_spec_set_verify(sn, 0);
    ts_sampler so = {.kind = TS_SAMPLER_SPEC, .steps = 4, .spec = sp}, sv = {.kind = TS_SAMPLER_SPEC, .steps = 25, .spec = sn};
    spec_law(&p, ob3, NS, &so, &sv, 12, ad, as, an, "frozen drafter");
    ts_spec_stats st = *ts_spec_stats_of(sp);
    /* Every chunk took fewer sequential target calls than DDPM's 100, and the counters add up. */
    ck_assert_int_eq(st.chunks, NS);
    ck_assert(st.target_calls < 100L * NS && st.accepted <= st.drafted && st.accepted >= st.rounds);
    /* The x0 drafter (training-free) on the same network: the same law by the same test, while
     * keeping its every draft is caught. */
    {
      static const ts_drafter x0d = {.x0 = 1};
      ts_spec *sx = ts_spec_new(&p.target, &p.sched, 8);
      ts_sampler sxs = {.kind = TS_SAMPLER_SPEC, .steps = 8, .drafter = &x0d, .spec = sx};
      ts_sampler sxn = {.kind = TS_SAMPLER_SPEC, .steps = 25, .drafter = &x0d, .spec = sn};
      spec_law(&p, ob3, NS, &sxs, &sxn, 16, ad, as, an, "x0 drafter");
      ts_spec_stats sx_st = *ts_spec_stats_of(sx);
      ck_assert(sx_st.chunks == NS && sx_st.drafter_calls == 0 && sx_st.target_calls < 100L * NS);
      ck_assert(sx_st.accepted < ts_spec_checked(&sx_st)); /* some drafts were rejected: the rule was exercised */
      ts_spec_free(sx);
    }
    /* A learned-style drafter (the target's eps plus a smooth perturbation, so that draft 1 is
     * often rejected): still DDPM's distribution, while keeping its every draft is not. */
    perturbed q;
    ts_denoiser dn = perturbed_of(&p.target, &q, SPEC_DRAFT_C);
    ts_drafter d = {.net = &dn};
    ts_sampler sl = {.kind = TS_SAMPLER_SPEC, .steps = 4, .drafter = &d, .spec = sp};
    ts_sampler sln = {.kind = TS_SAMPLER_SPEC, .steps = 4, .drafter = &d, .spec = sn};
    spec_law(&p, ob3, NS, &sl, &sln, 14, ad, as, an, "perturbed drafter");
    st = *ts_spec_stats_of(sp);
    ck_assert(st.chunks == NS && st.drafter_calls == st.drafted && st.accepted < st.drafted);
    ts_spec_free(sp);
    ts_spec_free(sn);
    free(ob3);
    free(ad);
    free(as);
    free(an);
  }
  /* A two-episode closed-loop evaluation runs and reports sane numbers. */
  const ts_sampler ddim4 = {.kind = TS_SAMPLER_DDIM, .steps = 4};
  ts_eval_opts eo = {.episodes = 2, .seed_start = 100000, .seed = 1, .quiet = 1};
  ts_eval_result er;
  ck_assert_msg(ts_eval_pusht(&p, &ddim4, &eo, &er) == 0, "%s", ts_error());
  ck_assert(er.mean_score >= 0 && er.mean_score <= 1 && er.chunks > 0);
  /* The single-robot loop (ts_loop) and the lockstep evaluation apply the same rule: one
   * episode of each, same sampler seed, give the same score. */
  ts_eval_opts e1 = {.episodes = 1, .seed_start = 100003, .seed = 9, .quiet = 1};
  ck_assert_int_eq(ts_eval_pusht(&p, &ddim4, &e1, &er), 0);
  ts_loop lp;
  ck_assert_int_eq(ts_loop_init(&lp, &p, &ddim4, 9), 0);
  ts_pusht *env = ts_pusht_new();
  ts_pusht_reset_seed(env, 100003);
  double best = 0;
  for (int step = 0; step < TS_PUSHT_MAX_STEPS; step++) {
    float ob[TS_PUSHT_OBS_DIM], act[2];
    ts_pusht_get_obs(env, ob);
    ck_assert_int_eq(ts_loop_act(&lp, ob, act), 0);
    double a[2] = {act[0], act[1]}, rwd = ts_pusht_step(env, a);
    best = rwd > best ? rwd : best;
    if (ts_pusht_coverage(env) > TS_PUSHT_SUCCESS) break;
  }
  ck_assert_double_eq_tol(best, er.scores[0], 1e-9);
  ck_assert_int_eq(lp.chunks, er.chunks);
  ts_pusht_free(env);
  ts_loop_free(&lp);
  /* A freshly loaded policy: after ts_loop_init the loop allocates nothing. */
  ts_policy p2;
  ck_assert_int_eq(ts_policy_load(&p2, ck, "ema"), 0);
  ck_assert_int_eq(ts_loop_init(&lp, &p2, &ddim4, 9), 0);
  ts_unet_plan *plan2 = ts_denoiser_unet_plan(&p2.target);
  long a0 = ts_unet_plan_allocs(plan2);
  float ob2[TS_PUSHT_OBS_DIM] = {0}, act2[2];
  for (int step = 0; step < 20; step++) ck_assert_int_eq(ts_loop_act(&lp, ob2, act2), 0);
  ck_assert_int_eq(ts_unet_plan_allocs(plan2), a0);
  ts_loop_free(&lp);
  /* The same with the speculative sampler. */
  ck_assert_int_eq(ts_loop_init(&lp, &p2, &(ts_sampler){.kind = TS_SAMPLER_SPEC, .steps = 4}, 9), 0);
  a0 = ts_unet_plan_allocs(plan2);
  ts_spec *sp0 = lp.sampler.spec;
  ck_assert(sp0 && lp.spec == sp0);
  for (int step = 0; step < 20; step++) ck_assert_int_eq(ts_loop_act(&lp, ob2, act2), 0);
  ck_assert_int_eq(ts_unet_plan_allocs(plan2), a0);
  ck_assert(lp.sampler.spec == sp0 && ts_spec_stats_of(sp0)->chunks == lp.chunks && lp.chunks > 0);
  ts_loop_free(&lp);
  /* And with a learned-style drafter, which the loop reserves too. */
  perturbed q2;
  ts_denoiser dn2 = perturbed_of(&p2.target, &q2, SPEC_DRAFT_C);
  ts_drafter d2 = {.net = &dn2};
  ck_assert_int_eq(ts_loop_init(&lp, &p2, &(ts_sampler){.kind = TS_SAMPLER_SPEC, .steps = 3, .drafter = &d2}, 9), 0);
  a0 = ts_unet_plan_allocs(plan2);
  for (int step = 0; step < 20; step++) ck_assert_int_eq(ts_loop_act(&lp, ob2, act2), 0);
  ck_assert_int_eq(ts_unet_plan_allocs(plan2), a0);
  ck_assert(ts_spec_stats_of(lp.spec)->drafter_calls > 0);
  ts_loop_free(&lp);
  /* A Transformer checkpoint without its weights: refused in one line naming the tensor,
   * nothing leaked. */
  {
    ts_config ct = p2.cfg;
    ck_assert_int_eq(ts_config_override(&ct, "model.type=transformer"), 0);
    char tf[600];
    snprintf(tf, sizeof tf, "%s/transformer.h5", tmp_dir());
    config_only_ckpt(tf, &ct, &p2);
    ts_policy pt;
    ck_assert_int_ne(ts_policy_load(&pt, tf, "ema"), 0);
    ck_assert_msg(strstr(ts_error(), "ema/input_emb.weight") && strstr(ts_error(), tf) && !strchr(ts_error(), '\n'),
                  "%s", ts_error());
    /* Regression: the loader built the network a file's config claims before looking at the
     * file, so a 1 KB file naming four levels of 4096 channels (kernel 15) made it allocate ~60 GB. Now the
     * size is checked first, and the shapes before anything is built. */
    ts_config cu = p2.cfg;
    ck_assert_int_eq(ts_config_override(&cu, "model.down_dims=4096,4096,4096,4096"), 0);
    ck_assert_int_eq(ts_config_override(&cu, "model.kernel_size=15"), 0);
    ck_assert_int_eq(ts_config_override(&cu, "model.n_groups=8"), 0);
    config_only_ckpt(tf, &cu, &p2);
    double t0 = ts_now();
    ck_assert_int_ne(ts_policy_load(&pt, tf, "ema"), 0);
    ck_assert_msg(strstr(ts_error(), "above the limit") && strstr(ts_error(), "unet its config describes") &&
                      strstr(ts_error(), tf) && !strchr(ts_error(), '\n'),
                  "%s", ts_error());
    ck_assert_msg(ts_now() - t0 < 1.0, "refusal took %.2f s", ts_now() - t0);
    /* within the limit but not what the file holds: refused naming the first tensor, before
     * the network is built */
    cu = p2.cfg;
    ck_assert_int_eq(ts_config_override(&cu, "model.down_dims=64,128"), 0);
    config_only_ckpt(tf, &cu, &p2);
    ck_assert_int_ne(ts_policy_load(&pt, tf, "ema"), 0);
    ck_assert_msg(strstr(ts_error(), tf) && strstr(ts_error(), "ema/"), "%s", ts_error());
  }
  ts_policy_free(&p2);
  ts_policy_free(&p);
  /* A checkpoint from a different architecture is refused naming the tensor. */
  ts_config c2;
  tiny_cfg(&c2);
  ck_assert_int_eq(ts_config_override(&c2, "model.down_dims=16,32"), 0);
  ts_unet_cfg uc = ts_model_unet_cfg(&c2, 2, 20);
  ts_unet *other = ts_unet_new(&uc);
  ts_named *nm = ts_params_named(&other->params, "ema/", NULL);
  ck_assert_int_ne(ts_ckpt_load(ck, nm, other->params.n, NULL, NULL), 0);
  ck_assert_msg(strstr(ts_error(), "ema/") && strstr(ts_error(), "shape") && strstr(ts_error(), ck), "%s", ts_error());
  ts_named_free(nm, other->params.n);
  ts_unet_free(other);
  /* A file that is not a checkpoint: one clear line. */
  ck_assert_int_ne(ts_policy_load(&p, fixture_path("sched.h5"), "ema"), 0);
  ck_assert_msg(strstr(ts_error(), "not a tsdp checkpoint"), "%s", ts_error());
}
END_TEST

/* The Transformer base through the policy: trained briefly on the fixture, its engine and its
 * autograd forward give the same DDPM chunks from one seed; exact speculative sampling (the
 * frozen-target drafter, and a perturbed learned-style drafter) draws DDPM's distribution
 * while the variants that keep every draft are rejected by the same test; the control loop
 * allocates nothing after init. */
START_TEST(test_transformer_policy) {
  ts_config c;
  tiny_cfg(&c);
  const char *ov[] = {"model.type=transformer", "model.n_emb=32", "model.n_head=4", "model.n_layer=2",
                      "train.eval_every=0", "train.max_steps=30"};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) ck_assert_msg(ts_config_override(&c, ov[i]) == 0, "%s", ts_error());
  char ck[512];
  snprintf(ck, sizeof ck, "%s/tf_policy.h5", tmp_dir());
  ts_train_result r;
  ts_train_opts o = {tiny_data(), ck, 1, 1, 0};
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
  ts_policy p;
  ck_assert_msg(ts_policy_load(&p, ck, "ema") == 0, "%s", ts_error());
  ck_assert_ptr_nonnull(p.model.tf);
  ck_assert_str_eq(p.target.ops->kind, "transformer-engine");
  enum { NS = 300 };
  float obs[NS * 40];
  for (int i = 0; i < NS * 40; i++) obs[i] = 100.0f + (float)(i % 40);
  /* Larger weights than 30 steps give, so eps moves with x and t and drafts get rejected. */
  ts_rng ri;
  ts_rng_init(&ri, 21);
  ts_model_init(&p.model, &ri);
  ts_params *P = p.model.params;
  for (int i = 0; i < P->n; i++)
    for (int64_t k = 0; k < P->t[i]->n; k++) P->t[i]->data[k] += 0.3f * ts_rng_normal(&ri);
  ts_denoiser_free(&p.target);
  ck_assert_int_eq(ts_denoiser_engine(&p.target, &p.model, p.sched.T, 1), 0);
  float a1[3 * 32], a2[3 * 32];
  ts_rng r1;
  const ts_sampler ddpm = {.kind = TS_SAMPLER_DDPM};
  ts_rng_init(&r1, 5);
  ck_assert_int_eq(ts_policy_sample(&p, obs, 3, &ddpm, &r1, a1), 0);
  ts_sampler ddpm_ref = {.kind = TS_SAMPLER_DDPM, .target = ts_policy_reference(&p)};
  ts_rng_init(&r1, 5);
  ck_assert_int_eq(ts_policy_sample(&p, obs, 3, &ddpm_ref, &r1, a2), 0);
  double worst = 0, range = p.nact.max[0] - p.nact.min[0];
  for (int i = 0; i < 96; i++) worst = fmax(worst, fabs(a1[i] - a2[i]));
  ck_assert_msg(worst <= 1e-4 * range, "engine vs tape DDPM chunk: max difference %g (range %g)", worst, range);
  float *ad = malloc(NS * 32 * sizeof(float)), *as = malloc(NS * 32 * sizeof(float)), *an = malloc(NS * 32 * sizeof(float));
  ts_rng_init(&r1, 11);
  ck_assert_int_eq(ts_policy_sample(&p, obs, NS, &ddpm, &r1, ad), 0);
  ts_spec *sp = ts_spec_new(&p.target, &p.sched, 25), *sn = ts_spec_new(&p.target, &p.sched, 25);
  ts_spec_set_verify(sn, 0);
  perturbed q;
  ts_denoiser dn = perturbed_of(&p.target, &q, SPEC_DRAFT_C);
  ts_drafter learned = {.net = &dn};
  for (int k = 0; k < 2; k++) {
    const ts_drafter *d = k ? &learned : NULL;
    ts_spec_reset_stats(sp);
    ts_sampler so = {.kind = TS_SAMPLER_SPEC, .steps = 4, .drafter = d, .spec = sp};
    ts_sampler sv = {.kind = TS_SAMPLER_SPEC, .steps = k ? 4 : 25, .drafter = d, .spec = sn};
    ts_rng_init(&r1, 12 + 2 * k);
    ck_assert_int_eq(ts_policy_sample(&p, obs, NS, &so, &r1, as), 0);
    ts_spec_stats st = *ts_spec_stats_of(sp);
    ts_rng_init(&r1, 13 + 2 * k);
    ck_assert_int_eq(ts_policy_sample(&p, obs, NS, &sv, &r1, an), 0);
    double e1, e2, p1 = energy_pvalue(as, ad, NS, 32, 200, 7, &e1), p2 = energy_pvalue(an, ad, NS, 32, 200, 7, &e2);
    fprintf(stderr, "transformer spec test, %s drafter: acceptance %.3f, %.1f target calls per chunk, p = %.3f; "
            "keep-every-draft p = %.3f\n", k ? "perturbed" : "frozen", (double)st.accepted / st.drafted,
            (double)st.target_calls / NS, p1, p2);
    ck_assert_msg(p1 > 0.01, "transformer speculative vs DDPM: energy %g, p = %g", e1, p1);
    ck_assert_msg(p2 < 0.01, "transformer keep-every-draft vs DDPM: energy %g, p = %g (no power)", e2, p2);
    ck_assert(st.chunks == NS && st.accepted < st.drafted);
  }
  ts_spec_free(sp);
  ts_spec_free(sn);
  free(ad);
  free(as);
  free(an);
  /* The control loop with the Transformer: nothing allocated after init. */
  ts_loop lp;
  ck_assert_int_eq(ts_loop_init(&lp, &p, &(ts_sampler){.kind = TS_SAMPLER_SPEC, .steps = 3}, 9), 0);
  ts_transformer_plan *plan = ts_denoiser_transformer_plan(&p.target);
  ck_assert_ptr_nonnull(plan);
  long a0 = ts_transformer_plan_allocs(plan);
  float act[2];
  for (int step = 0; step < 20; step++) ck_assert_int_eq(ts_loop_act(&lp, obs + (step % 5) * 20, act), 0);
  ck_assert_int_eq(ts_transformer_plan_allocs(plan), a0);
  ts_loop_free(&lp);
  ts_policy_free(&p);
}
END_TEST

Suite *suite_infer(void) {
  Suite *s = suite_create("infer_train");
  TCase *tc = tcase_create("infer");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_ddpm_vs_reference);
  tcase_add_test(tc, test_config_validation);
  tcase_add_test(tc, test_train_resume_is_exact);
  tcase_add_test(tc, test_train_transformer_resume_is_exact);
  tcase_add_test(tc, test_unet_denoisers);
  tcase_add_test(tc, test_policy_sampling);
  tcase_add_test(tc, test_transformer_policy);
  tcase_add_test(tc, test_spec_rule);
  tcase_add_test(tc, test_spec_exact_gaussian);
  tcase_add_test(tc, test_spec_learned_gaussian);
  suite_add_tcase(s, tc);
  return s;
}
