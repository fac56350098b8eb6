/* The block scheduler (infer/blocks.h, rl/sched.h): the cost model, the per-step acceptance
 * count, the DP's static schedule against brute force, exactness of the speculative sampler
 * with a learned scheduler (the two-sample test, with the keep-every-draft variant rejected),
 * the LOSSY relaxed rule (rejected by the same test) and its training on simulator episodes,
 * and the record / train / resume / load pipeline on the tiny fixture policy. */
#include "tests.h"
#include "core/config.h"
#include "core/error.h"
#include "infer/blocks.h"
#include "infer/loop.h"
#include "infer/policy.h"
#include "nn/unet1d.h"
#include "infer/denoisers.h"
#include "rl/sched.h"
#include "train/train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ts_cost_model lin_cost(void) {
  ts_cost_model c = {.n = 4, .drafter_ms = 0.25, .threads = 1};
  for (int b = 1; b <= 4; b++) c.target_ms[b] = 1.0 + 0.5 * (b - 1); /* 1, 1.5, 2, 2.5 */
  return c;
}

START_TEST(test_cost_model) {
  ts_cost_model c = lin_cost();
  ck_assert(fabs(ts_cost_target(&c, 3) - 2.0) < 1e-12);
  ck_assert(fabs(ts_cost_target(&c, 6) - 3.5) < 1e-12); /* extrapolated by the last slope 0.5 */
  /* A learned-drafter round of 3 drafts verified in 4 rows: 3 * 0.25 + 2.5; a frozen one with
   * its extra batch-1 call and 3 verification rows: 1 + 2. */
  ts_spec_round_info a = {.drafted = 3, .target_calls = 1, .drafter_calls = 3, .verify_rows = 4};
  ck_assert(fabs(ts_cost_round(&c, &a) - 3.25) < 1e-12);
  ts_spec_round_info f = {.drafted = 3, .target_calls = 2, .verify_rows = 3};
  ck_assert(fabs(ts_cost_round(&c, &f) - 3.0) < 1e-12);
  ts_spec_round_info last = {.target_calls = 1}; /* the t = 0 step without a known eps */
  ck_assert(fabs(ts_cost_round(&c, &last) - 1.0) < 1e-12);
  /* The file round trip, and one-line refusals. */
  char path[512];
  snprintf(path, sizeof path, "%s/cost.ini", tmp_dir());
  ck_assert_int_eq(ts_cost_save(&c, path), 0);
  ts_cost_model d;
  ck_assert_msg(ts_cost_load(&d, path) == 0, "%s", ts_error());
  ck_assert_int_eq(d.n, 4);
  ck_assert(fabs(d.target_ms[4] - 2.5) < 1e-9 && fabs(d.drafter_ms - 0.25) < 1e-9);
  FILE *fp = fopen(path, "w");
  fprintf(fp, "[cost]\ntarget_ms = 1, x\ndrafter_ms = 1\n");
  fclose(fp);
  ck_assert_int_ne(ts_cost_load(&d, path), 0);
  ck_assert_msg(strstr(ts_error(), "cost.ini") && strstr(ts_error(), "target_ms"), "%s", ts_error());
  ck_assert_int_ne(ts_cost_load(&d, "/nonexistent/cost.ini"), 0);
}
END_TEST

START_TEST(test_accept_table) {
  ts_accept_table a;
  memset(&a, 0, sizeof a);
  a.T = 10;
  /* A round from t = 7 that drafted 4 and accepted 2: steps 7, 6 accepted, 5 rejected, 4 never checked. */
  ts_accept_add(&a, &(ts_spec_round_info){.t_before = 7, .drafted = 4, .accepted = 2}, 0);
  ck_assert(a.checked[7] == 1 && a.ok[7] == 1 && a.checked[6] == 1 && a.ok[6] == 1);
  ck_assert(a.checked[5] == 1 && a.ok[5] == 0 && a.checked[4] == 0);
  /* Frozen: draft 1 is not evidence. */
  ts_accept_add(&a, &(ts_spec_round_info){.t_before = 3, .drafted = 2, .accepted = 2}, 1);
  ck_assert(a.checked[3] == 0 && a.checked[2] == 1 && a.ok[2] == 1);
  double r[10];
  ts_accept_rates(&a, r);
  ck_assert(r[7] == 1 && r[5] == 0 && r[4] == 0 /* nearest checked: 5 */ && r[9] == 1 /* nearest: 7 */);
}
END_TEST

/* The DP's schedule is the best of all static tables (brute force over every table of a short
 * chain), for both drafters, and its value matches ts_block_eval of its own table. */
START_TEST(test_block_dp) {
  ts_cost_model c = lin_cost();
  const int T = 4, set[3] = {1, 2, 3};
  const double rate[4] = {0.5, 0.9, 0.4, 0.7};
  /* By hand for T = 2, learned drafter: V(1, 0) = d + tm(2) + (1 - a1) tm(1) = 0.25 + 1.5 + 0.1. */
  ts_block_table tab;
  double v2 = ts_block_dp(rate, 2, &c, 0, set, 3, &tab);
  ck_assert_msg(fabs(v2 - 1.85) < 1e-12, "T = 2: %g", v2);
  for (int frozen = 0; frozen < 2; frozen++) {
    double v = ts_block_dp(rate, T, &c, frozen, set, 3, &tab);
    ck_assert(fabs(ts_block_eval(rate, T, &c, frozen, &tab) - v) < 1e-12);
    double best = INFINITY;
    for (int code = 0; code < 729; code++) { /* 3^6 tables over t = 1..3, h = 0, 1 */
      ts_block_table b = {.T = T};
      int x = code;
      for (int t = 1; t < T; t++)
        for (int h = 0; h < 2; h++) b.L[h][t] = (unsigned char)set[x % 3], x /= 3;
      double e = ts_block_eval(rate, T, &c, frozen, &b);
      best = e < best ? e : best;
    }
    ck_assert_msg(fabs(best - v) < 1e-12, "frozen %d: DP %g, brute force %g", frozen, v, best);
  }
  /* Certain acceptance favours the longest block; certain rejection the shortest. */
  const double one[4] = {1, 1, 1, 1}, zero[4] = {0, 0, 0, 0};
  ts_block_dp(one, T, &c, 0, set, 3, &tab);
  ck_assert_int_eq(tab.L[0][3], 3);
  ts_block_dp(zero, T, &c, 0, set, 3, &tab);
  ck_assert_int_eq(tab.L[0][3], 1);
}
END_TEST

/* A scheduler that records the blocks it is asked for, wrapping another. */
typedef struct {
  const ts_block_sched *in;
  long seen[TS_SPEC_MAX_BLOCK + 1];
} spy;

static int spy_block(void *self, const ts_round_state *st) {
  spy *s = self;
  int L = s->in->block(s->in->self, st);
  s->seen[L < 1 ? 1 : L > st->max_block ? st->max_block : L]++;
  return L;
}

static double zero_tol(void *self) {
  (void)self;
  return 0;
}

static void tiny_policy(const char *name, char *ck, size_t n) {
  ts_config c;
  infer_tiny_cfg(&c);
  ck_assert_int_eq(ts_config_override(&c, "train.eval_every=0"), 0);
  snprintf(ck, n, "%s/%s", tmp_dir(), name);
  ts_train_result r;
  ts_train_opts o = {infer_tiny_data(), ck, 1, 1, 0};
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
}

/* Exactness with a learned scheduler: the speculative sampler whose blocks a PPO policy picks
 * (a random one, scaled so that its choice moves with the round's state) draws DDPM's
 * distribution by the energy-distance permutation test used for spec (300 chunks each), and
 * the same scheduler with every draft kept is rejected by the same test. */
START_TEST(test_sched_exact) {
  char ck[512];
  tiny_policy("sched_base.h5", ck, sizeof ck);
  ts_policy p;
  ck_assert_msg(ts_policy_load(&p, ck, "ema") == 0, "%s", ts_error());
  /* Fresh, louder weights so eps moves with x and t (as the spec test does). */
  ts_rng ri;
  ts_rng_init(&ri, 21);
  ts_unet *pu = p.model.unet;
  ts_unet_init(pu, &ri);
  for (int64_t i = 0; i < pu->final1.w->n; i++) pu->final1.w->data[i] *= 10.0f;
  ts_denoiser_free(&p.target);
  ck_assert_int_eq(ts_denoiser_unet_engine(&p.target, pu, p.horizon, p.sched.T, 1), 0);
  ts_ppo_cfg pc = {.obs_dim = TS_SCHED_FEATURES, .n_actions = 4, .hidden = 16, .layers = 1, .lr = 1e-3, .clip = 0.2,
                   .gamma = 1, .lam = 1, .vf_coef = 1, .epochs = 1, .minibatch = 8};
  ts_ppo a;
  ck_assert_int_eq(ts_ppo_new(&a, &pc, &ri), 0);
  /* A decisive choice that moves with the chain step t (feature 0) and the last round. */
  for (int j = 0; j < a.aw[0]->shape[0]; j++) a.aw[0]->data[j * TS_SCHED_FEATURES] = 4.0f * ts_rng_normal(&ri);
  for (int64_t i = 0; i < a.aw[1]->n; i++) a.aw[1]->data[i] *= 300.0f;
  const int blocks[4] = {2, 8, 25, 40};
  ts_sched_agent ag = {.ppo = &a, .blocks = blocks, .n = 4};
  ts_block_sched learned = ts_sched_agent_sched(&ag);
  spy sy = {&learned, {0}};
  ts_block_sched bs = {.name = "spy", .block = spy_block, .self = &sy};
  enum { NS = 300 };
  float *ob = malloc(NS * 40 * sizeof(float)), *ad = malloc(NS * 32 * sizeof(float));
  float *as = malloc(NS * 32 * sizeof(float)), *an = malloc(NS * 32 * sizeof(float));
  for (int i = 0; i < NS * 40; i++) ob[i] = 100.0f + (float)(i % 40);
  ts_rng r;
  ts_rng_init(&r, 11);
  ck_assert_int_eq(ts_policy_sample(&p, ob, NS, &(ts_sampler){.kind = TS_SAMPLER_DDPM}, &r, ad), 0);
  ts_spec *sp = ts_spec_new(&p.target, &p.sched, 40), *sn = ts_spec_new(&p.target, &p.sched, 40);
  ts_spec_set_verify(sn, 0);
  ts_sampler so = {.kind = TS_SAMPLER_SPEC, .steps = 40, .spec = sp, .blocks = &bs, .control_step = 40};
  ts_sampler sv = {.kind = TS_SAMPLER_SPEC, .steps = 40, .spec = sn, .blocks = &learned, .control_step = 40};
  ts_rng_init(&r, 12);
  ck_assert_int_eq(ts_policy_sample(&p, ob, NS, &so, &r, as), 0);
  ts_spec_stats st = *ts_spec_stats_of(sp);
  ts_rng_init(&r, 13);
  ck_assert_int_eq(ts_policy_sample(&p, ob, NS, &sv, &r, an), 0);
  double e1, e2, p1 = energy_pvalue(as, ad, NS, 32, 200, 7, &e1), p2 = energy_pvalue(an, ad, NS, 32, 200, 7, &e2);
  int distinct = 0;
  for (int L = 1; L <= TS_SPEC_MAX_BLOCK; L++) distinct += sy.seen[L] > 0;
  fprintf(stderr, "spec with a learned scheduler: blocks 2/8/25/40 picked %ld/%ld/%ld/%ld times, acceptance %.3f, %.1f "
          "target calls per chunk, p = %.3f; keep-every-draft p = %.3f\n", sy.seen[2], sy.seen[8], sy.seen[25], sy.seen[40],
          (double)st.accepted / st.drafted, (double)st.target_calls / NS, p1, p2);
  ck_assert_msg(distinct >= 2, "the scheduler picked only one block: the test would not exercise it");
  ck_assert(st.accepted < st.drafted && st.chunks == NS);
  ck_assert_msg(p1 > 0.01, "spec with learned scheduler vs DDPM: energy %g, p = %g", e1, p1);
  ck_assert_msg(p2 < 0.01, "keep-every-draft with the scheduler vs DDPM: energy %g, p = %g (no power)", e2, p2);
  /* LOSSY relaxed rule (rl.lossy): tolerance 0 is the exact rule bit for bit; a tolerance of
   * 3 sigma at L 40 keeps drafts the exact test rejects, and the same test rejects its law
   * (at 2 sigma, 300 chunks here do not tell it from DDPM: p = 0.20 when this was written). */
  ck_assert(!ts_block_lossy(&learned));
  const int one_block[1] = {40};
  float *a0 = malloc(NS * 32 * sizeof(float)), *a1 = malloc(NS * 32 * sizeof(float));
  ts_spec *sl = ts_spec_new(&p.target, &p.sched, 40);
  ts_sampler s8 = {.kind = TS_SAMPLER_SPEC, .steps = one_block[0], .spec = sl};
  ts_rng_init(&r, 14);
  ck_assert_int_eq(ts_policy_sample(&p, ob, 40, &s8, &r, a0), 0);
  ts_spec_set_tolerance(sl, 0);
  ts_rng_init(&r, 14);
  ck_assert_int_eq(ts_policy_sample(&p, ob, 40, &s8, &r, a1), 0);
  ck_assert_int_eq(memcmp(a0, a1, 40 * 32 * sizeof(float)), 0);
  ck_assert_int_eq(ts_spec_stats_of(sl)->relaxed, 0);
  { /* ... and through the scheduled sampler: a tolerance hook that returns 0 changes nothing */
    ts_block_sched z0 = learned;
    z0.tolerance = zero_tol;
    ck_assert(ts_block_lossy(&z0));
    ts_spec *e1 = ts_spec_new(&p.target, &p.sched, 40), *e2 = ts_spec_new(&p.target, &p.sched, 40);
    ts_sampler q1 = {.kind = TS_SAMPLER_SPEC, .steps = 40, .spec = e1, .blocks = &learned, .control_step = 40};
    ts_sampler q2 = {.kind = TS_SAMPLER_SPEC, .steps = 40, .spec = e2, .blocks = &z0, .control_step = 40};
    ts_rng_init(&r, 16);
    ck_assert_int_eq(ts_policy_sample(&p, ob, 40, &q1, &r, a0), 0);
    ts_rng_init(&r, 16);
    ck_assert_int_eq(ts_policy_sample(&p, ob, 40, &q2, &r, a1), 0);
    ck_assert_int_eq(memcmp(a0, a1, 40 * 32 * sizeof(float)), 0);
    ck_assert(ts_spec_stats_of(e2)->relaxed == 0 && ts_spec_stats_of(e2)->rounds == ts_spec_stats_of(e1)->rounds);
    ts_spec_free(e1);
    ts_spec_free(e2);
  }
  ts_spec_set_tolerance(sl, 3.0);
  ck_assert(ts_spec_tolerance(sl) == 3.0);
  ts_spec_reset_stats(sl);
  ts_rng_init(&r, 15);
  ck_assert_int_eq(ts_policy_sample(&p, ob, NS, &s8, &r, a1), 0);
  ts_spec_stats sr = *ts_spec_stats_of(sl);
  double e3, p3 = energy_pvalue(a1, ad, NS, 32, 200, 7, &e3);
  fprintf(stderr, "LOSSY tolerance %g at L 40: %.2f of %.2f accepted drafts per chunk kept by the tolerance, p = %.4f\n",
          ts_spec_tolerance(sl), (double)sr.relaxed / NS, (double)sr.accepted / NS, p3);
  ck_assert_msg(sr.relaxed > NS, "the tolerance kept only %ld drafts: the test would not exercise it", sr.relaxed);
  ck_assert_msg(p3 < 0.01, "LOSSY tolerance 3 vs DDPM: energy %g, p = %g (the relaxed rule should be detected)", e3, p3);
  /* A LOSSY agent: its name says so and it hands its tolerance to each round. */
  const double tols[2] = {0, 2.0};
  ts_ppo_cfg pc2 = pc;
  pc2.n_actions = 8;
  ts_ppo a2;
  ck_assert_int_eq(ts_ppo_new(&a2, &pc2, &ri), 0);
  ts_sched_agent ag2 = {&a2, blocks, 4, tols, 2, 0};
  ts_block_sched lossy = ts_sched_agent_sched(&ag2);
  ck_assert(ts_block_lossy(&lossy) && !strcmp(lossy.name, "rl-LOSSY"));
  ts_round_state rs = {.t = 50, .T = p.sched.T, .max_block = 40};
  int k0 = lossy.block(lossy.self, &rs);
  ck_assert(k0 == 2 || k0 == 8 || k0 == 25 || k0 == 40);
  ck_assert(lossy.tolerance(lossy.self) == 0 || lossy.tolerance(lossy.self) == 2.0);
  ts_ppo_free(&a2);
  ts_spec_free(sl);
  free(a0), free(a1);
  /* A scheduler with a non-spec sampler is refused. */
  ck_assert_int_ne(ts_policy_sample(&p, ob, 1, &(ts_sampler){.kind = TS_SAMPLER_DDIM, .steps = 4, .blocks = &learned}, &r, as), 0);
  ts_spec_free(sp);
  ts_spec_free(sn);
  ts_ppo_free(&a);
  free(ob), free(ad), free(as), free(an);
  ts_policy_free(&p);
}
END_TEST

/* A tiny base (loaded into p) with `episodes` recorded DDIM-4 episodes from seed 100010 (er),
 * and paths in the test folder, named by prefix, for a cost model and two scheduler files. */
static void sched_fixture(const char *prefix, int episodes, char *ck, char *ro, char *cost, char *a, char *b, ts_policy *p,
                          ts_eval_result *er) {
  char name[64];
  snprintf(name, sizeof name, "sched_%s_base.h5", prefix);
  tiny_policy(name, ck, 512);
  snprintf(ro, 512, "%s/%s_rollouts.h5", tmp_dir(), prefix);
  snprintf(cost, 512, "%s/%s_cost.ini", tmp_dir(), prefix);
  snprintf(a, 512, "%s/%s_a.h5", tmp_dir(), prefix);
  snprintf(b, 512, "%s/%s_b.h5", tmp_dir(), prefix);
  ck_assert_msg(ts_policy_load(p, ck, "ema") == 0, "%s", ts_error());
  ts_eval_opts eo = {.episodes = episodes, .seed_start = 100010, .seed = 1, .quiet = 1};
  ck_assert_msg(ts_rollouts_record(p, &(ts_sampler){.kind = TS_SAMPLER_DDIM, .steps = 4}, &eo, "ddim-4", ck, ro, er) == 0,
                "%s", ts_error());
}

/* The pipeline on the tiny policy: record 2 episodes, train the scheduler 4 updates straight
 * and 2 + 2 resumed (bit-identical), load it, run the control loop with it; refusals. */
START_TEST(test_sched_pipeline) {
  char ck[512], ro[512], cost[512], a[512], b[512];
  ts_policy p;
  ts_eval_result er;
  sched_fixture("pipe", 2, ck, ro, cost, a, b, &p, &er);
  ts_rollouts rr;
  ck_assert_msg(ts_rollouts_load(&rr, ro, &p) == 0, "%s", ts_error());
  ck_assert_int_eq(rr.n, er.chunks);
  ck_assert(rr.control_step[0] == 0 && rr.episode[0] == 0 && rr.episode[rr.n - 1] == 1);
  ck_assert_int_eq(rr.control_step[1], p.cfg.data.n_action_steps);
  ts_rollouts_free(&rr);
  ts_cost_model cm = lin_cost();
  ck_assert_int_eq(ts_cost_save(&cm, cost), 0);
  ts_config c;
  {
    /* Regression (probe): blocks beyond the measured batches trained on extrapolated costs;
     * the frozen drafter's L = 8 needs batch 8, the cost model has 4: refused in one line. */
    ts_config_defaults(&c);
    ck_assert_int_eq(ts_config_override(&c, "rl.blocks=1,2,8"), 0);
    memcpy(c.rl.cost_model, cost, strlen(cost) + 1);
    ts_sched_train_result r0;
    ts_sched_train_opts o0 = {ck, "frozen", ro, a, 1, 1, 0};
    ck_assert_int_ne(ts_sched_train(&c, &o0, &r0), 0);
    ck_assert_msg(strstr(ts_error(), "the cost model measured target calls up to batch 4, but rl.blocks' largest block L = 8 "
                                     "(frozen drafter) needs batch 8") && strstr(ts_error(), cost),
                  "%s", ts_error());
    ck_assert_ptr_null(strchr(ts_error(), '\n'));
    ck_assert_int_ne(access(a, F_OK), 0); /* nothing written */
    /* a cost model that is not a regular file is refused, not read forever */
    memcpy(c.rl.cost_model, "/dev/zero", 10);
    ck_assert_int_ne(ts_sched_train(&c, &o0, &r0), 0);
    ck_assert_msg(strstr(ts_error(), "/dev/zero: is not a regular file"), "%s", ts_error());
  }
  cm.n = 9; /* batches 1..9 measured: blocks up to 8, frozen or learned */
  for (int b = 5; b <= 9; b++) cm.target_ms[b] = 1.0 + 0.5 * (b - 1);
  ck_assert_int_eq(ts_cost_save(&cm, cost), 0);
  ts_config_defaults(&c);
  const char *ov[] = {"rl.blocks=1,2,4,8", "rl.hidden=8", "rl.layers=1", "rl.chains_per_update=2", "rl.updates=4",
                      "rl.minibatch=16", "rl.accept_chains=2", "rl.accept_block=8", "rl.checkpoint_every=2"};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) ck_assert_msg(ts_config_override(&c, ov[i]) == 0, "%s", ts_error());
  ck_assert(strlen(cost) < sizeof c.rl.cost_model);
  memcpy(c.rl.cost_model, cost, strlen(cost) + 1);
  ts_sched_train_result r;
  ts_sched_train_opts oa = {ck, "frozen", ro, a, 1, 1, 0};
  ck_assert_msg(ts_sched_train(&c, &oa, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.updates, 4);
  ck_assert(r.final_cost_ms > 0 && r.static_ms > 0 && r.static_ms <= r.fixed_best_ms + 1e-9);
  ts_sched_train_opts ob = {ck, "frozen", ro, b, 1, 1, 2};
  ck_assert_msg(ts_sched_train(&c, &ob, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.updates, 2);
  ob.fresh = 0, ob.stop_after = 0;
  ck_assert_msg(ts_sched_train(&c, &ob, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.resumed_from, 2);
  const char *names[] = {"ppo/actor.0.weight", "ppo/actor.1.weight", "ppo/critic.1.bias", "ppo/obs_mean", "ppo/obs_var",
                         "log/cost_ms", "log/entropy", "sched/static_L"};
  fix_same_datasets(a, b, names, 8);
  /* A different recipe is refused on resume. */
  ts_config c2 = c;
  ck_assert_int_eq(ts_config_override(&c2, "rl.clip=0.3"), 0);
  ck_assert_int_ne(ts_sched_train(&c2, &ob, &r), 0);
  ck_assert_msg(strstr(ts_error(), "clip"), "%s", ts_error());
  /* The cost model is matched by its numbers, not by how its path is spelled (the probe's case
   * 1175: 'cost.ini' then '/abs/cost.ini' was refused as another recipe); other numbers are
   * refused. */
  c2 = c;
  snprintf(c2.rl.cost_model, sizeof c2.rl.cost_model, "%s/./pipe_cost.ini", tmp_dir());
  ck_assert_msg(ts_sched_train(&c2, &ob, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.resumed_from, 4);
  ts_cost_model cm2 = cm;
  cm2.target_ms[3] *= 1.5;
  char cost2[512];
  snprintf(cost2, sizeof cost2, "%s/pipe_cost2.ini", tmp_dir());
  ck_assert_int_eq(ts_cost_save(&cm2, cost2), 0);
  memcpy(c2.rl.cost_model, cost2, strlen(cost2) + 1);
  ck_assert_int_ne(ts_sched_train(&c2, &ob, &r), 0);
  ck_assert_msg(strstr(ts_error(), "another cost model") && strstr(ts_error(), "batch 3"), "%s", ts_error());
  /* Load it; the control loop with its learned scheduler runs and tells it the control step. */
  ts_sched_model sm;
  ck_assert_msg(ts_sched_load(&sm, a, &p, "frozen") == 0, "%s", ts_error());
  ck_assert(sm.fixed_best >= 1 && sm.table.T == p.sched.T);
  ts_loop lp;
  ck_assert_int_eq(ts_loop_init(&lp, &p, &(ts_sampler){.kind = TS_SAMPLER_SPEC, .steps = 8, .blocks = &sm.learned}, 3), 0);
  float obs[20], act[2];
  for (int i = 0; i < 20; i++) obs[i] = 200.0f + i;
  for (int s = 0; s < 12; s++) ck_assert_int_eq(ts_loop_act(&lp, obs, act), 0);
  ck_assert_int_eq(lp.step, 12);
  ck_assert(lp.chunks == 2 && isfinite(act[0]));
  ts_loop_free(&lp);
  /* Refusals: another drafter, a file that is not a scheduler, lossy mode. */
  ts_sched_model_free(&sm);
  ck_assert_int_ne(ts_sched_load(&sm, a, &p, "0123456789abcdef"), 0);
  ck_assert_msg(strstr(ts_error(), "drafter"), "%s", ts_error());
  ck_assert_int_ne(ts_sched_load(&sm, ck, &p, NULL), 0);
  ck_assert_msg(strstr(ts_error(), "not a block scheduler"), "%s", ts_error());
  c2 = c;
  ck_assert_int_ne(ts_config_override(&c2, "rl.tolerances=0,1"), 0); /* tolerances without rl.lossy */
  ck_assert_msg(strstr(ts_error(), "rl.lossy = true"), "%s", ts_error());
  c2 = c;
  ck_assert_int_eq(ts_config_override(&c2, "rl.lossy=true"), 0);
  ck_assert_int_ne(ts_config_override(&c2, "rl.tolerances=1,0.5"), 0);
  ck_assert_msg(strstr(ts_error(), "ascending"), "%s", ts_error());
  ck_assert_int_ne(ts_config_override(&c2, "rl.tolerances=0,x"), 0);
  ck_assert_msg(strstr(ts_error(), "not a number"), "%s", ts_error());
  ck_assert_int_ne(ts_rollouts_load(&rr, ck, &p), 0);
  ck_assert_msg(strstr(ts_error(), "not a rollouts file"), "%s", ts_error());
  ts_policy_free(&p);
}
END_TEST

/* LOSSY mode on the tiny policy: PPO over (L, tolerance) pairs on closed-loop simulator
 * episodes, the score in the reward; 2 updates straight and 1 + 1 resumed are bit-identical,
 * the file says lossy, and the loaded scheduler is named and behaves LOSSY. */
START_TEST(test_sched_lossy_train) {
  char ck[512], ro[512], cost[512], a[512], b[512];
  ts_policy p;
  ts_eval_result er;
  sched_fixture("lossy", 1, ck, ro, cost, a, b, &p, &er);
  ts_cost_model cm = lin_cost();
  cm.n = 9;
  for (int k = 5; k <= 9; k++) cm.target_ms[k] = 1.0 + 0.5 * (k - 1);
  ck_assert_int_eq(ts_cost_save(&cm, cost), 0);
  ts_config c;
  ts_config_defaults(&c);
  const char *ov[] = {"rl.lossy=true", "rl.tolerances=0,1.5", "rl.blocks=1,4,8", "rl.hidden=8", "rl.layers=1",
                      "rl.sim_episodes=1", "rl.updates=2", "rl.minibatch=64", "rl.accept_chains=2", "rl.accept_block=8",
                      "rl.checkpoint_every=1", "rl.score_weight=5"};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) ck_assert_msg(ts_config_override(&c, ov[i]) == 0, "%s", ts_error());
  memcpy(c.rl.cost_model, cost, strlen(cost) + 1);
  ts_sched_train_result r;
  ts_sched_train_opts oa = {ck, "frozen", ro, a, 1, 1, 0};
  ck_assert_msg(ts_sched_train(&c, &oa, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.updates, 2);
  ck_assert_msg(r.final_cost_ms > 0 && isfinite(r.final_score) && r.final_score >= 0 && r.final_score <= 1,
                "cost %g, score %g", r.final_cost_ms, r.final_score);
  ts_sched_train_opts ob = {ck, "frozen", ro, b, 1, 1, 1};
  ck_assert_msg(ts_sched_train(&c, &ob, &r) == 0, "%s", ts_error());
  ob.fresh = 0, ob.stop_after = 0;
  ck_assert_msg(ts_sched_train(&c, &ob, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.resumed_from, 1);
  const char *names[] = {"ppo/actor.0.weight", "ppo/actor.1.weight", "ppo/critic.1.bias", "log/cost_ms", "log/score",
                         "log/relaxed", "log/return"};
  fix_same_datasets(a, b, names, 7);
  ts_sched_model sm;
  ck_assert_msg(ts_sched_load(&sm, a, &p, "frozen") == 0, "%s", ts_error());
  ck_assert_int_eq(sm.lossy, 1);
  ck_assert_int_eq(sm.ppo.cfg.n_actions, 6); /* 3 blocks x 2 tolerances */
  ck_assert(ts_block_lossy(&sm.learned) && !strcmp(sm.learned.name, "rl-LOSSY"));
  ck_assert(!ts_block_lossy(&sm.stat) && !ts_block_lossy(&sm.fixed));
  /* The LOSSY scheduler in the closed loop: the tolerance is reset when each chain ends. */
  ts_sampler smp = {.kind = TS_SAMPLER_SPEC, .steps = 8, .blocks = &sm.learned};
  ts_eval_opts e1 = {.episodes = 1, .seed_start = 100000, .seed = 3, .quiet = 1};
  ck_assert_msg(ts_eval_pusht(&p, &smp, &e1, &er) == 0, "%s", ts_error());
  ck_assert(er.chunks > 0 && er.spec.chunks == er.chunks);
  ts_sched_model_free(&sm);
  /* Training seeds the simulator cannot reset are refused before any work, in one line. */
  ts_config c4 = c;
  ck_assert_int_eq(ts_config_override(&c4, "rl.sim_seed_count=41"), 0);
  ts_sched_train_opts od = {ck, "frozen", ro, b, 1, 1, 0};
  ck_assert_int_ne(ts_sched_train(&c4, &od, &r), 0);
  ck_assert_msg(strstr(ts_error(), "sim_seed_count = 41") && strstr(ts_error(), "100000..100049") && !strchr(ts_error(), '\n'),
                "%s", ts_error());
  /* The LOSSY mode runs on one process: chain shards are refused. */
  ts_config c3 = c;
  ck_assert_int_eq(ts_config_override(&c3, "rl.chain_shards=2"), 0);
  ts_sched_train_opts oc = {ck, "frozen", ro, a, 1, 1, 0};
  ck_assert_int_ne(ts_sched_train(&c3, &oc, &r), 0);
  ck_assert_msg(strstr(ts_error(), "one process"), "%s", ts_error());
  ts_policy_free(&p);
}
END_TEST

Suite *suite_sched(void) {
  Suite *s = suite_create("sched");
  TCase *tc = tcase_create("sched");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_cost_model);
  tcase_add_test(tc, test_accept_table);
  tcase_add_test(tc, test_block_dp);
  tcase_add_test(tc, test_sched_exact);
  tcase_add_test(tc, test_sched_pipeline);
  tcase_add_test(tc, test_sched_lossy_train);
  suite_add_tcase(s, tc);
  return s;
}
