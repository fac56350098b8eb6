/* Drafter distillation: the |Delta| identity its loss rests on, a distilled drafter against the
 * tiny U-Net and Transformer bases, bit-exact resume, the base pairing check, and exact
 * (lossless) speculation with the barely trained learned drafter. */
#include "tests.h"
#include "core/config.h"
#include "core/error.h"
#include "core/h5io.h"
#include "infer/denoisers.h"
#include "infer/drafter.h"
#include "infer/policy.h"
#include "infer/scheduler.h"
#include "infer/spec.h"
#include "train/distill.h"
#include "train/train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* For one DDPM step without clipping, (m_p - m_q) / sigma_t = w_t |eps_p - eps_q| in norm:
 * ts_ddpm_mean of two eps against ts_ddpm_delta_weight, at every t >= 1; w_t is finite and
 * larger at the last steps than in the middle; w_0 = 0. */
START_TEST(test_delta_identity) {
  ts_ddpm s;
  ts_ddpm_init(&s, 100, 0);
  ts_rng r;
  ts_rng_init(&r, 3);
  enum { N = 32 };
  float x[N], ep[N], eq[N], mp[N], mq[N];
  for (int t = 1; t < 100; t++) {
    ts_rng_fill_normal(&r, x, N);
    ts_rng_fill_normal(&r, ep, N);
    for (int i = 0; i < N; i++) eq[i] = ep[i] + 0.1f * ts_rng_normal(&r);
    float sig = ts_ddpm_mean(&s, t, x, ep, mp, N);
    ts_ddpm_mean(&s, t, x, eq, mq, N);
    double dm = 0, de = 0;
    for (int i = 0; i < N; i++) {
      dm += (double)(mp[i] - mq[i]) * (mp[i] - mq[i]);
      de += (double)(ep[i] - eq[i]) * (ep[i] - eq[i]);
    }
    double delta = sqrt(dm) / sig, w = ts_ddpm_delta_weight(&s, t);
    ck_assert_msg(isfinite(w) && w > 0, "w_%d = %g", t, w);
    ck_assert_msg(fabs(delta - w * sqrt(de)) <= 2e-3 * delta, "t=%d: |Delta| %g vs w |d eps| %g", t, delta, w * sqrt(de));
  }
  ck_assert(ts_ddpm_delta_weight(&s, 0) == 0);
  ck_assert_msg(ts_ddpm_delta_weight(&s, 1) > ts_ddpm_delta_weight(&s, 50), "w_1 %g, w_50 %g", ts_ddpm_delta_weight(&s, 1),
                ts_ddpm_delta_weight(&s, 50));
  fprintf(stderr, "delta weights: w_1 %.3f, w_10 %.3f, w_50 %.3f, w_99 %.3f\n", ts_ddpm_delta_weight(&s, 1),
          ts_ddpm_delta_weight(&s, 10), ts_ddpm_delta_weight(&s, 50), ts_ddpm_delta_weight(&s, 99));
}
END_TEST

static void override(ts_config *c, const char *const *ov, size_t n) {
  for (size_t i = 0; i < n; i++) ck_assert_msg(ts_config_override(c, ov[i]) == 0, "%s: %s", ov[i], ts_error());
}

/* A one-block Transformer drafter, tiny, with a small buffer refreshed often. */
static void drafter_cfg(ts_config *c, long steps) {
  ts_config_defaults(c);
  const char *ov[] = {"model.type=transformer", "model.n_emb=32", "model.n_head=4", "model.n_layer=1",
                      "model.p_drop_attn=0", "train.batch_size=32", "train.lr=3e-3", "train.warmup_steps=5",
                      "train.checkpoint_every=20", "train.log_every=10", "train.weight_decay=1e-3",
                      "distill.chains=4", "distill.buffer_chains=8", "distill.refresh_every=10",
                      "distill.heldout_chains=4", "distill.late_weight=2", "distill.unroll=3"};
  override(c, ov, sizeof ov / sizeof ov[0]);
  c->train.max_steps = steps;
}

static void train_base(const char *path, const char *const *ov, size_t n) {
  ts_config c;
  infer_tiny_cfg(&c);
  const char *common[] = {"train.eval_every=0"};
  override(&c, common, 1);
  override(&c, ov, n);
  ts_train_result r;
  ts_train_opts o = {infer_tiny_data(), path, 1, 1, 0};
  ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
}


static int file_exists(const char *path) { return access(path, F_OK) == 0; }

/* out = the test folder's file `name`. */
static void tpath(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmp_dir(), name); }

START_TEST(test_distill_unet_base) {
  char base[512], other[512], da[512], db[512], p[700];
  tpath(base, sizeof base, "d_base.h5");
  tpath(other, sizeof other, "d_other.h5");
  tpath(da, sizeof da, "d_straight.h5");
  tpath(db, sizeof db, "d_resumed.h5");
  train_base(base, NULL, 0);
  const char *ov2[] = {"train.seed=7"};
  train_base(other, ov2, 1);
  ts_config c;
  drafter_cfg(&c, 40);
  ts_distill_result r;
  ts_distill_opts oa = {base, infer_tiny_data(), da, 1, 1, 0};
  ck_assert_msg(ts_distill(&c, &oa, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.steps, 40);
  ck_assert(r.heldout && r.heldout_accept > 0 && r.heldout_accept <= 1);
  /* Killed after 20 steps, resumed by the same call: bit-identical to the straight run. */
  ts_distill_opts ob = {base, infer_tiny_data(), db, 1, 1, 20};
  ck_assert_msg(ts_distill(&c, &ob, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.steps, 20);
  ck_assert(!r.heldout);
  ob.fresh = 0;
  ob.stop_after = 0;
  /* Resuming against another base is refused, naming both. */
  ts_distill_opts oc = ob;
  oc.base = other;
  ck_assert_int_ne(ts_distill(&c, &oc, &r), 0);
  ck_assert_msg(strstr(ts_error(), base) && strstr(ts_error(), other) && strstr(ts_error(), "--fresh") &&
                !strchr(ts_error(), '\n'), "%s", ts_error());
  ck_assert_msg(ts_distill(&c, &ob, &r) == 0, "%s", ts_error());
  ck_assert_int_eq(r.resumed_from, 20);
  ck_assert_int_eq(r.steps, 40);
  const char *names[] = {"model/decoder.layers.0.self_attn.in_proj_weight", "ema/head.weight",
                         "optim/m/model/decoder.layers.0.linear1.weight", "distill/x", "distill/eps", "log/loss",
                         "log/accept"};
  fix_same_datasets(da, db, names, 7);
  /* The log: predicted acceptance in (0, 1]; the CSV, curves and the per-step plot exist. */
  int64_t n;
  float *acc = fix_read_all(da, "log/accept", &n), *loss = fix_read_all(da, "log/loss", &n);
  ck_assert_int_eq(n, 4);
  for (int i = 0; i < n; i++) ck_assert_msg(acc[i] > 0 && acc[i] <= 1, "accept[%d] = %g", i, acc[i]);
  fprintf(stderr, "distill (U-Net base): loss %.4f -> %.4f, predicted acceptance %.3f -> %.3f, held-out %.3f\n", loss[0],
          loss[3], acc[0], acc[3], r.heldout_accept);
  ck_assert_msg(acc[3] > acc[0], "predicted acceptance %g -> %g", acc[0], acc[3]);
  ck_assert_msg(loss[3] < 0.95 * loss[0], "loss %g -> %g", loss[0], loss[3]);
  free(acc);
  free(loss);
  const char *ext[] = {".csv", ".png", ".accept.png"};
  for (int k = 0; k < 3; k++) {
    snprintf(p, sizeof p, "%s%s", da, ext[k]);
    ck_assert_msg(file_exists(p), "%s missing", p);
  }
  /* The curves are two panels (loss, accept); the per-step plot is one 800 x 480 figure. */
  int pw, ph;
  snprintf(p, sizeof p, "%s.png", da);
  free(fix_png(p, &pw, &ph));
  ck_assert_msg(pw == 2 * 560 && ph == 420, "%s is %dx%d", p, pw, ph);
  snprintf(p, sizeof p, "%s.accept.png", da);
  free(fix_png(p, &pw, &ph));
  ck_assert_msg(pw == 800 && ph == 480, "%s is %dx%d", p, pw, ph);
  /* The drafter loads for its base, and is refused for another, in one line naming both. */
  ts_policy pa, pb;
  ck_assert_msg(ts_policy_load(&pa, base, "ema") == 0, "%s", ts_error());
  ck_assert_msg(ts_policy_load(&pb, other, "ema") == 0, "%s", ts_error());
  ts_drafter_model dm;
  ck_assert_int_ne(ts_drafter_load(&dm, da, other, &pb), 0);
  ck_assert_msg(strstr(ts_error(), da) && strstr(ts_error(), other) && strstr(ts_error(), base) && !strchr(ts_error(), '\n'),
                "%s", ts_error());
  ck_assert_int_ne(ts_drafter_load(&dm, base, base, &pa), 0); /* a base is not a drafter */
  ck_assert_msg(strstr(ts_error(), "base_hash"), "%s", ts_error());
  ck_assert_msg(ts_drafter_load(&dm, da, base, &pa) == 0, "%s", ts_error());
  ck_assert_str_eq(dm.net.ops->kind, "transformer-engine");
  ck_assert_str_eq(dm.base_path, base);
  /* Lossless with the barely trained drafter: the base's weights are then made louder (fresh
   * initialisation, final layer x10, as test_policy_sampling), so the drafter is far off and
   * many drafts are rejected; the speculative chunks still pass the energy test against DDPM,
   * while keeping every draft on the same drafter is rejected by it. */
  {
    enum { NS = 300 };
    ts_rng ri;
    ts_rng_init(&ri, 21);
    ts_unet *pu = pa.model.unet;
    ts_unet_init(pu, &ri);
    for (int64_t i = 0; i < pu->final1.w->n; i++) pu->final1.w->data[i] *= 10.0f;
    ts_denoiser_free(&pa.target);
    ck_assert_int_eq(ts_denoiser_unet_engine(&pa.target, pu, pa.horizon, pa.sched.T, 1), 0);
    float *ob = malloc(NS * 40 * sizeof(float)), *ad = malloc(NS * 32 * sizeof(float));
    float *as = malloc(NS * 32 * sizeof(float)), *an = malloc(NS * 32 * sizeof(float));
    for (int i = 0; i < NS * 40; i++) ob[i] = 100.0f + (float)(i % 40);
    ts_rng r1;
    ts_rng_init(&r1, 11);
    ck_assert_int_eq(ts_policy_sample(&pa, ob, NS, &(ts_sampler){.kind = TS_SAMPLER_DDPM}, &r1, ad), 0);
    ts_spec *sp = ts_spec_new(&pa.target, &pa.sched, 8), *sn = ts_spec_new(&pa.target, &pa.sched, 8);
    ts_spec_set_verify(sn, 0);
    ts_sampler so = {.kind = TS_SAMPLER_SPEC, .steps = 4, .drafter = &dm.drafter, .spec = sp};
    ts_sampler sv = {.kind = TS_SAMPLER_SPEC, .steps = 4, .drafter = &dm.drafter, .spec = sn};
    ts_rng_init(&r1, 12);
    ck_assert_int_eq(ts_policy_sample(&pa, ob, NS, &so, &r1, as), 0);
    ts_rng_init(&r1, 13);
    ck_assert_int_eq(ts_policy_sample(&pa, ob, NS, &sv, &r1, an), 0);
    ts_spec_stats st = *ts_spec_stats_of(sp);
    double e1, e2, p1 = energy_pvalue(as, ad, NS, 32, 200, 7, &e1), p2 = energy_pvalue(an, ad, NS, 32, 200, 7, &e2);
    fprintf(stderr, "distilled drafter, exactness: acceptance %.3f, %.1f target + %.1f drafter calls per chunk, p = %.3f; "
            "keep-every-draft p = %.4f\n", (double)st.accepted / st.drafted, (double)st.target_calls / NS,
            (double)st.drafter_calls / NS, p1, p2);
    ck_assert_msg(p1 > 0.01, "speculative (distilled drafter) vs DDPM: energy %g, p = %g", e1, p1);
    ck_assert_msg(p2 < 0.01, "keep-every-draft (distilled drafter) vs DDPM: energy %g, p = %g (no power)", e2, p2);
    ck_assert(st.chunks == NS && st.drafter_calls == st.drafted && st.accepted < st.drafted);
    /* Overlapped drafting (the next round drafted on a second thread during verification): the
     * same law by the same test, with the worker's drafts really used. */
    ts_spec *sov = ts_spec_new(&pa.target, &pa.sched, 8);
    ts_sampler sw = {.kind = TS_SAMPLER_SPEC, .steps = 4, .drafter = &dm.drafter, .spec = sov, .overlap = 1};
    ts_rng_init(&r1, 14);
    ck_assert_int_eq(ts_policy_sample(&pa, ob, NS, &sw, &r1, an), 0);
    ts_spec_stats so2 = *ts_spec_stats_of(sov);
    double e3, p3 = energy_pvalue(an, ad, NS, 32, 200, 7, &e3);
    fprintf(stderr, "overlapped drafting: %ld drafts made on the worker, %ld used; %.1f sequential drafter calls per "
            "chunk (%.1f without overlap), p = %.3f\n", so2.pre_drafted, so2.pre_used, (double)so2.drafter_calls / NS,
            (double)st.drafter_calls / NS, p3);
    ck_assert_msg(p3 > 0.01, "overlapped spec vs DDPM: energy %g, p = %g", e3, p3);
    ck_assert(so2.pre_used > 0 && so2.pre_used <= so2.pre_drafted && so2.chunks == NS);
    ck_assert(so2.drafter_calls + so2.pre_used == so2.drafted); /* each draft made once, on one thread or the other */
    ts_spec_free(sov);
    ts_spec_free(sp);
    ts_spec_free(sn);
    free(ob);
    free(ad);
    free(as);
    free(an);
  }
  ts_drafter_model_free(&dm);
  ts_drafter_model_free(&dm); /* safe twice */
  ts_policy_free(&pa);
  ts_policy_free(&pb);
}
END_TEST

/* A late-step specialist (distill.t_max) beside a main drafter: distill.init starts it from the
 * main drafter's EMA weights (checked with a learning rate too small to move them), its
 * held-out mean covers only t < t_max, "MAIN+LATE" loads both and routes each row by its t
 * (bit for bit the specialist's eps below t_max and the main drafter's above, a mixed batch
 * as row by row), and the wrong pairings are refused in one line. */
START_TEST(test_distill_specialist) {
  char base[512], dmain[512], dlate[512], dfrozen[512], dbad[512], pair[1700];
  tpath(base, sizeof base, "sp_base.h5");
  tpath(dmain, sizeof dmain, "sp_main.h5");
  tpath(dlate, sizeof dlate, "sp_late.h5");
  tpath(dfrozen, sizeof dfrozen, "sp_still.h5");
  tpath(dbad, sizeof dbad, "sp_bad.h5");
  train_base(base, NULL, 0);
  ts_config c;
  drafter_cfg(&c, 20);
  ts_distill_result r;
  ts_distill_opts o = {base, infer_tiny_data(), dmain, 1, 1, 0};
  ck_assert_msg(ts_distill(&c, &o, &r) == 0, "%s", ts_error());
  enum { TM = 20 };
  ck_assert_int_eq(ts_config_override(&c, "distill.t_max=20"), 0);
  char ov[600];
  snprintf(ov, sizeof ov, "distill.init=%s", dmain);
  ck_assert_msg(ts_config_override(&c, ov) == 0, "%s", ts_error());
  o.out = dlate;
  ck_assert_msg(ts_distill(&c, &o, &r) == 0, "%s", ts_error());
  double m = 0;
  for (int t = 1; t < TM; t++) m += r.accept_t[t];
  ck_assert_msg(fabs(r.heldout_accept - m / (TM - 1)) < 1e-12, "held-out %g, mean over t < %d %g", r.heldout_accept, TM,
                m / (TM - 1));
  /* init: with a learning rate of 1e-30 the weights stay the main drafter's */
  ts_config cs = c;
  ck_assert_int_eq(ts_config_override(&cs, "train.lr=1e-30"), 0);
  o.out = dfrozen;
  ck_assert_msg(ts_distill(&cs, &o, &r) == 0, "%s", ts_error());
  int64_t na, nb;
  float *wa = fix_read_all(dmain, "ema/head.weight", &na), *wb = fix_read_all(dfrozen, "ema/head.weight", &nb);
  ck_assert_int_eq(na, nb);
  double dmax = 0, wmax = 0;
  for (int64_t i = 0; i < na; i++) {
    dmax = fmax(dmax, fabs((double)wa[i] - wb[i]));
    wmax = fmax(wmax, fabs((double)wa[i]));
  }
  ck_assert_msg(wmax > 1e-3 && dmax <= 1e-6 * wmax, "init: |w| %g, max change %g", wmax, dmax);
  free(wa);
  free(wb);
  /* init from a drafter of another shape: one line naming distill.init */
  ts_config cb = c;
  ck_assert_int_eq(ts_config_override(&cb, "model.n_emb=16"), 0);
  o.out = dbad;
  ck_assert_int_ne(ts_distill(&cb, &o, &r), 0);
  ck_assert_msg(strstr(ts_error(), "distill.init") && strstr(ts_error(), dmain) && !strchr(ts_error(), '\n'), "%s",
                ts_error());
  ck_assert_int_eq(ts_config_override(&cb, "model.n_emb=32"), 0);
  ck_assert_int_eq(ts_config_override(&cb, "distill.t_max=101"), 0);
  ck_assert_int_ne(ts_distill(&cb, &o, &r), 0);
  ck_assert_msg(strstr(ts_error(), "t_max"), "%s", ts_error());
  ck_assert_int_eq(ts_config_override(&cb, "distill.t_max=1"), 0);
  ck_assert_int_ne(ts_distill(&cb, &o, &r), 0);
  ck_assert_msg(strstr(ts_error(), "t_max 1"), "%s", ts_error());
  /* the pair */
  ts_policy p;
  ck_assert_msg(ts_policy_load(&p, base, "ema") == 0, "%s", ts_error());
  ts_drafter_model dm, dl, dd;
  snprintf(pair, sizeof pair, "%s+%s", dmain, dlate);
  ck_assert_msg(ts_drafter_load(&dm, pair, base, &p) == 0, "%s", ts_error());
  ck_assert(dm.late && dm.drafter.net == &dm.mix);
  ck_assert_str_eq(dm.mix.ops->kind, "drafter+late");
  ck_assert_msg(ts_drafter_load(&dd, dmain, base, &p) == 0, "%s", ts_error());
  ck_assert(!dd.late && dd.drafter.net == &dd.net);
  char h1[17], h2[17];
  ts_hash_hex(ts_drafter_hash(&dm), h1);
  ts_hash_hex(ts_drafter_hash(&dd), h2);
  ck_assert_str_ne(h1, h2); /* a scheduler trained with one is told apart from the other */
  /* the specialist alone, for comparison: loaded as a pair's late part */
  snprintf(pair, sizeof pair, "%s+%s", dmain, dlate);
  ck_assert_msg(ts_drafter_load(&dl, pair, base, &p) == 0, "%s", ts_error());
  enum { B = 4 };
  const int n = dm.mix.horizon * dm.mix.act_dim, cd = dm.mix.cond_dim;
  float x[B * 64], cond[B * 64], e_mix[B * 64], e_ref[B * 64];
  ck_assert(n <= 64 && cd <= 64);
  ts_rng g;
  ts_rng_init(&g, 5);
  ts_rng_fill_normal(&g, x, B * n);
  ts_rng_fill_normal(&g, cond, B * cd);
  ts_denoiser_reserve(dm.drafter.net, B);
  ts_denoiser_reserve(&dd.net, B);
  ts_denoiser_reserve(&dl.late->net, B);
  int tl[B] = {0, 5, 19, 19}, th[B] = {20, 50, 99, 21}, tx[B] = {3, 60, 19, 20};
  ts_denoiser_eps(dm.drafter.net, x, tl, cond, B, e_mix);
  ts_denoiser_eps(&dl.late->net, x, tl, cond, B, e_ref);
  ck_assert(!memcmp(e_mix, e_ref, sizeof(float) * B * n)); /* all below t_max: the specialist */
  ts_denoiser_eps(dm.drafter.net, x, th, cond, B, e_mix);
  ts_denoiser_eps(&dd.net, x, th, cond, B, e_ref);
  ck_assert(!memcmp(e_mix, e_ref, sizeof(float) * B * n)); /* all at or above: the main drafter */
  ts_denoiser_eps(dm.drafter.net, x, tx, cond, B, e_mix);
  for (int b = 0; b < B; b++)
    ts_denoiser_eps(tx[b] < TM ? &dl.late->net : &dd.net, x + b * n, tx + b, cond + b * cd, 1, e_ref + b * n);
  ck_assert(!memcmp(e_mix, e_ref, sizeof(float) * B * n)); /* mixed: row by row */
  ck_assert(memcmp(e_mix, e_mix + 2 * n, sizeof(float) * n)); /* not trivially equal rows */
  ts_drafter_model_free(&dd);
  /* the x0 drafter's forms: alone; with the specialist below its t_max; a learned drafter
   * outside [LO, HI) with x0 inside (default T/10, 4T/5) */
  ck_assert_msg(ts_drafter_load(&dd, "x0", base, &p) == 0, "%s", ts_error());
  ck_assert(dd.drafter.x0 && !dd.drafter.net);
  ts_hash_hex(ts_drafter_hash(&dd), h2);
  ck_assert_str_ne(h1, h2);
  ts_drafter_model_free(&dd);
  snprintf(pair, sizeof pair, "x0+%s", dlate);
  ck_assert_msg(ts_drafter_load(&dd, pair, base, &p) == 0, "%s", ts_error());
  ck_assert(dd.drafter.x0 && dd.drafter.net == &dd.late->net && dd.drafter.late_t == TM && dd.drafter.early_t == 0);
  ts_drafter_model_free(&dd);
  char h3[17], h4[17], h5[17];
  ck_assert_msg(ts_drafter_load(&dd, dmain, base, &p) == 0, "%s", ts_error());
  ts_hash_hex(ts_drafter_hash(&dd), h3);
  ts_drafter_model_free(&dd);
  snprintf(pair, sizeof pair, "%s+x0", dmain);
  ck_assert_msg(ts_drafter_load(&dd, pair, base, &p) == 0, "%s", ts_error());
  ck_assert(dd.drafter.x0 && dd.drafter.net == &dd.net && dd.drafter.late_t == 10 && dd.drafter.early_t == 80);
  ts_hash_hex(ts_drafter_hash(&dd), h4);
  ts_drafter_model_free(&dd);
  snprintf(pair, sizeof pair, "%s+x0@5-50", dmain);
  ck_assert_msg(ts_drafter_load(&dd, pair, base, &p) == 0, "%s", ts_error());
  ck_assert(dd.drafter.late_t == 5 && dd.drafter.early_t == 50);
  ts_hash_hex(ts_drafter_hash(&dd), h5);
  ts_drafter_model_free(&dd);
  ck_assert(strcmp(h3, h4) && strcmp(h4, h5) && strcmp(h3, h5)); /* a scheduler tells the three apart */
  snprintf(pair, sizeof pair, "x0+%s+x0", dlate);
  ck_assert_int_ne(ts_drafter_load(&dd, pair, base, &p), 0);
  ck_assert_msg(strstr(ts_error(), "not x0") && !strchr(ts_error(), '\n'), "%s", ts_error());
  const char *badr[] = {"x0@50-5", "x0@5-", "x0@5-101", "x0@-1-5", "x0@5-50x"};
  for (int i = 0; i < 5; i++) {
    snprintf(pair, sizeof pair, "%s+%s", dmain, badr[i]);
    ck_assert_int_ne(ts_drafter_load(&dd, pair, base, &p), 0);
    ck_assert_msg(strstr(ts_error(), "LO-HI") && !strchr(ts_error(), '\n'), "%s: %s", badr[i], ts_error());
  }
  /* refusals, one line each */
  ck_assert_int_ne(ts_drafter_load(&dd, dlate, base, &p), 0);
  ck_assert_msg(strstr(ts_error(), "specialist") && strstr(ts_error(), dlate) && !strchr(ts_error(), '\n'), "%s",
                ts_error());
  snprintf(pair, sizeof pair, "%s+%s", dmain, dmain);
  ck_assert_int_ne(ts_drafter_load(&dd, pair, base, &p), 0);
  ck_assert_msg(strstr(ts_error(), "not a late-step specialist") && !strchr(ts_error(), '\n'), "%s", ts_error());
  snprintf(pair, sizeof pair, "%s+%s", dlate, dlate);
  ck_assert_int_ne(ts_drafter_load(&dd, pair, base, &p), 0);
  ck_assert_msg(strstr(ts_error(), "after a main drafter"), "%s", ts_error());
  snprintf(pair, sizeof pair, "%s+%s+%s", dmain, dlate, dlate);
  ck_assert_int_ne(ts_drafter_load(&dd, pair, base, &p), 0);
  ck_assert_msg(strstr(ts_error(), "at most") && !strchr(ts_error(), '\n'), "%s", ts_error());
  snprintf(pair, sizeof pair, "%s/none.h5+%s", tmp_dir(), dlate);
  ck_assert_int_ne(ts_drafter_load(&dd, pair, base, &p), 0);
  ck_assert_msg(strstr(ts_error(), "none.h5") && !strchr(ts_error(), '\n'), "%s", ts_error());
  ts_drafter_model_free(&dm);
  ts_drafter_model_free(&dl);
  ts_policy_free(&p);
}
END_TEST

/* Against a tiny Transformer base: distils, predicted acceptance rises, the drafter samples. */
START_TEST(test_distill_transformer_base) {
  char base[512], dr[512];
  snprintf(base, sizeof base, "%s/dt_base.h5", tmp_dir());
  snprintf(dr, sizeof dr, "%s/dt_drafter.h5", tmp_dir());
  const char *ov[] = {"model.type=transformer", "model.n_emb=16", "model.n_head=2", "model.n_layer=2", "train.max_steps=30"};
  train_base(base, ov, sizeof ov / sizeof ov[0]);
  ts_config c;
  drafter_cfg(&c, 30);
  ts_distill_result r;
  ts_distill_opts o = {base, infer_tiny_data(), dr, 1, 1, 0};
  ck_assert_msg(ts_distill(&c, &o, &r) == 0, "%s", ts_error());
  ck_assert(r.heldout && r.heldout_accept > 0 && r.heldout_accept <= 1);
  fprintf(stderr, "distill (Transformer base): final loss %.4f, predicted acceptance %.3f, held-out %.3f\n", r.final_loss,
          r.final_accept, r.heldout_accept);
  ts_policy p;
  ck_assert_msg(ts_policy_load(&p, base, "ema") == 0, "%s", ts_error());
  ts_drafter_model dm;
  ck_assert_msg(ts_drafter_load(&dm, dr, base, &p) == 0, "%s", ts_error());
  float ob[2 * 40], act[2 * 32];
  for (int i = 0; i < 80; i++) ob[i] = 100.0f + (float)(i % 40);
  ts_spec *sp = ts_spec_new(&p.target, &p.sched, 4);
  ts_rng rng;
  ts_rng_init(&rng, 1);
  ts_sampler s = {.kind = TS_SAMPLER_SPEC, .steps = 4, .drafter = &dm.drafter, .spec = sp};
  ck_assert_int_eq(ts_policy_sample(&p, ob, 2, &s, &rng, act), 0);
  const ts_spec_stats *st = ts_spec_stats_of(sp);
  ck_assert(st->chunks == 2 && st->drafter_calls > 0 && st->target_calls < 200);
  /* A drafter file also loads as a policy of its own (config, EMA weights, normalisers). */
  ts_policy q;
  ck_assert_msg(ts_policy_load(&q, dr, "ema") == 0, "%s", ts_error());
  ck_assert_int_eq(q.cfg.model.n_layer, 1);
  ts_policy_free(&q);
  ts_spec_free(sp);
  ts_drafter_model_free(&dm);
  ts_policy_free(&p);
}
END_TEST

/* The temporal drafter (distill.temporal): its input layout, the control step of dataset
 * windows, a distillation with it, and the sampler feeding it each chunk's control step. */
START_TEST(test_distill_temporal) {
  /* Layout: each observation followed by its own control step / TS_TEMPORAL_SCALE, clamped at 0. */
  const float cond[6] = {1, 2, 3, 4, 5, 6};
  float out[8];
  ts_drafter_cond(cond, 6, 2, 37, out);
  const float want[8] = {1, 2, 3, 36 / TS_TEMPORAL_SCALE, 4, 5, 6, 37 / TS_TEMPORAL_SCALE};
  ck_assert_mem_eq(out, want, sizeof want);
  ts_drafter_cond(cond, 6, 2, 0, out);
  ck_assert(out[3] == 0 && out[7] == 0);
  /* Windows: with pad_before 1, window 0's frame 0 repeats step 0, frame 1 is step 0, frame 2
   * step 1; every window's frames are consecutive steps of one episode, edge-padded. */
  ts_config c;
  infer_tiny_cfg(&c);
  const char *keys[TS_CFG_MAXKEYS];
  for (int i = 0; i < c.data.n_obs_keys; i++) keys[i] = c.data.obs_keys[i];
  ts_dataset d;
  ck_assert_msg(ts_dataset_load(infer_tiny_data(), keys, c.data.n_obs_keys, &d) == 0, "%s", ts_error());
  ts_windows w;
  ck_assert_int_eq(ts_windows_build(&d, NULL, 16, 1, 7, &w), 0);
  ck_assert(ts_windows_step(&d, &w, 0, 0) == 0 && ts_windows_step(&d, &w, 0, 1) == 0 && ts_windows_step(&d, &w, 0, 2) == 1);
  int second = 0;
  for (int64_t i = 0; i < w.n; i++) {
    int64_t s0 = ts_windows_step(&d, &w, i, 1), s1 = ts_windows_step(&d, &w, i, 2);
    int e = ts_dataset_episode_of(&d, w.idx[i][0]);
    ck_assert(s0 >= 0 && s1 >= s0 && s1 - s0 <= 1 && s1 < d.ep_start[e + 1] - d.ep_start[e]);
    second += e == 1 && s0 == 0;
  }
  ck_assert_msg(second >= 1, "no window at the start of episode 1");
  ck_assert_int_eq(ts_dataset_episode_of(&d, d.ep_start[1]), 1);
  ck_assert_int_eq(ts_dataset_episode_of(&d, d.ep_start[1] - 1), 0);
  ts_windows_free(&w);
  ts_dataset_free(&d);
  /* Distil with the switch on; the drafter reads 2 x (20 + 1) values and its eps moves with
   * the control step; a drafter with the wrong flag is refused by the sampler. */
  char base[512], dr[512];
  snprintf(base, sizeof base, "%s/tmp_base.h5", tmp_dir());
  snprintf(dr, sizeof dr, "%s/tmp_drafter.h5", tmp_dir());
  const char *ov[] = {"train.max_steps=10"};
  train_base(base, ov, 1);
  drafter_cfg(&c, 20);
  c.distill.temporal = 1;
  ts_distill_result r;
  ts_distill_opts o = {base, infer_tiny_data(), dr, 1, 1, 0};
  ck_assert_msg(ts_distill(&c, &o, &r) == 0, "%s", ts_error());
  ts_policy p;
  ck_assert_msg(ts_policy_load(&p, base, "ema") == 0, "%s", ts_error());
  ts_drafter_model dm;
  ck_assert_msg(ts_drafter_load(&dm, dr, base, &p) == 0, "%s", ts_error());
  ck_assert_int_eq(dm.drafter.temporal, 2);
  ck_assert_int_eq(dm.net.cond_dim, 42);
  float x[32], dc[2][42], e0[32], e1[32];
  for (int i = 0; i < 32; i++) x[i] = 0.1f * (float)(i % 7) - 0.3f;
  float pc[40];
  for (int i = 0; i < 40; i++) pc[i] = 0.05f * (float)(i % 9) - 0.2f;
  ts_drafter_cond(pc, 40, 2, 3, dc[0]);
  ts_drafter_cond(pc, 40, 2, 150, dc[1]);
  int t = 40;
  ts_denoiser_eps(&dm.net, x, &t, dc[0], 1, e0);
  ts_denoiser_eps(&dm.net, x, &t, dc[1], 1, e1);
  double diff = 0;
  for (int i = 0; i < 32; i++) diff += fabs(e0[i] - e1[i]);
  ck_assert_msg(diff > 1e-4, "the temporal drafter ignores the control step (sum |d eps| = %g)", diff);
  float ob[2 * 40], act[2 * 32];
  for (int i = 0; i < 80; i++) ob[i] = 100.0f + (float)(i % 40);
  ts_spec *sp = ts_spec_new(&p.target, &p.sched, 4);
  ts_rng rng;
  ts_rng_init(&rng, 1);
  ts_sampler s = {.kind = TS_SAMPLER_SPEC, .steps = 4, .drafter = &dm.drafter, .spec = sp, .control_step = 55};
  ck_assert_int_eq(ts_policy_sample(&p, ob, 2, &s, &rng, act), 0);
  ck_assert(ts_spec_stats_of(sp)->chunks == 2 && ts_spec_stats_of(sp)->drafter_calls > 0);
  ts_drafter wrong = dm.drafter;
  wrong.temporal = 0;
  s.drafter = &wrong;
  ck_assert_int_ne(ts_policy_sample(&p, ob, 1, &s, &rng, act), 0);
  ck_assert_msg(strstr(ts_error(), "cond of 42 values, expected 40"), "%s", ts_error());
  ts_spec_free(sp);
  ts_drafter_model_free(&dm);
  ts_policy_free(&p);
}
END_TEST

/* `tsdp ARGS`: stdout into out, stderr lines counted; the exit code. */
static int run_cli(const char *args, char *out, size_t cap, int *errlines) {
  char cmd[4096], errf[600], line[2048];
  snprintf(errf, sizeof errf, "%s/distill_stderr.txt", tmp_dir());
  snprintf(cmd, sizeof cmd, "%s %s 2>%s", getenv("TSDP_BIN"), args, errf);
  FILE *p = popen(cmd, "r");
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = 0;
  int st = pclose(p);
  FILE *e = fopen(errf, "r");
  *errlines = 0;
  while (e && fgets(line, sizeof line, e)) (*errlines)++;
  if (e) fclose(e);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The command line: distill, bench spec rows with the drafter, and sample refusing a drafter
 * of another base (one line, non-zero exit). */
START_TEST(test_distill_cli) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  static char out[1 << 16];
  char a[512], b[512], dr[512], args[3000];
  snprintf(a, sizeof a, "%s/cli_base_a.h5", tmp_dir());
  snprintf(b, sizeof b, "%s/cli_base_b.h5", tmp_dir());
  snprintf(dr, sizeof dr, "%s/cli_drafter.h5", tmp_dir());
  const char *ov[] = {"train.max_steps=10"}, *ovb[] = {"train.max_steps=10", "train.seed=3"};
  train_base(a, ov, 1);
  train_base(b, ovb, 2);
  int el;
  snprintf(args, sizeof args,
           "distill --config configs/pusht_drafter.ini --base %s --data %s --out %s --max-steps 10 --json "
           "model.n_emb=32 train.batch_size=16 train.threads=1 distill.chains=4 distill.buffer_chains=8 "
           "distill.heldout_chains=2", a, infer_tiny_data(), dr);
  ck_assert_int_eq(run_cli(args, out, sizeof out, &el), 0);
  ck_assert_msg(out[0] == '{' && strstr(out, "\"steps\": 10") && strstr(out, "\"heldout_accept\""), "%s", out);
  snprintf(args, sizeof args, "bench spec --ckpt %s --data %s --drafter %s --blocks 2,3 --windows 2 --threads 1 --json", a,
           infer_tiny_data(), dr);
  ck_assert_int_eq(run_cli(args, out, sizeof out, &el), 0);
  ck_assert_msg(out[0] == '{' && strstr(out, "\"rows\": [{\"name\": \"ddpm-100\"") && strstr(out, "\"ddim-10\"") &&
                strstr(out, "\"spec-frozen-3\"") && strstr(out, "\"spec-learned-2\"") && strstr(out, "\"speedup_vs_ddpm\"") &&
                strstr(out, "\"threads\": [{\"threads\": 1, \"verify_ms\": [") && strstr(out, "\"speedup_with_drafter\"") &&
                strstr(out, "\"draft_ms\": null"),
                "%s", out);
  snprintf(args, sizeof args, "sample --ckpt %s --data %s --index 3 --n 2 --sampler spec --drafter %s --seed 1 --out %s/s.h5",
           b, infer_tiny_data(), dr, tmp_dir());
  ck_assert_int_ne(run_cli(args, out, sizeof out, &el), 0);
  ck_assert_int_eq(el, 1);
  snprintf(args, sizeof args, "sample --ckpt %s --data %s --index 3 --n 2 --sampler spec --drafter %s --seed 1 --out %s/s.h5",
           a, infer_tiny_data(), dr, tmp_dir());
  ck_assert_int_eq(run_cli(args, out, sizeof out, &el), 0);
  ck_assert_msg(strstr(out, "learned drafter") && strstr(out, "drafter calls"), "%s", out);
  strcat(args, " --json");
  ck_assert_int_eq(run_cli(args, out, sizeof out, &el), 0);
  ck_assert_msg(out[0] == '{' && strstr(out, "\"drafter\": \"learned\"") && strstr(out, "\"rounds_per_chunk\"") &&
                strstr(out, "\"drafter_calls_per_chunk\"") && strchr(out, '\n') == out + strlen(out) - 1, "%s", out);
}
END_TEST

Suite *suite_distill(void) {
  Suite *s = suite_create("distill");
  TCase *tc = tcase_create("distill");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_delta_identity);
  tcase_add_test(tc, test_distill_unet_base);
  tcase_add_test(tc, test_distill_transformer_base);
  tcase_add_test(tc, test_distill_temporal);
  tcase_add_test(tc, test_distill_specialist);
  tcase_add_test(tc, test_distill_cli);
  suite_add_tcase(s, tc);
  return s;
}
