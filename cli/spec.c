/* tsdp bench spec: batch-1 action-chunk latency of exact speculative DDPM against DDPM-T and
 * DDIM-10, on observation windows spread through a dataset: the frozen-target drafter at each
 * block length and, with --drafter, a distilled drafter at each block length too. Samplers are
 * interleaved window by window so the machine's load drifts over all of them alike; the
 * target's cost of one batched call at every batch size a verification uses (1 .. max block
 * + 1) is timed in the same interleaving, which gives the bound speculation can reach here:
 *   bound = DDPM time / min_L (T / L) verify(L + 1)
 * (a free drafter whose every draft is accepted; the issue this answers defines it so), and
 * the same with the drafter's measured cost added (T drafter calls per chunk at best).
 * Each row: ms per chunk split into drafting, verification and the rest, sequential target
 * and drafter calls, acceptance (accepted / checked drafts), speed-up over DDPM-T. With a list
 * of thread counts the whole table is measured once per count, in the same process. --plot
 * PREFIX writes PREFIX.png: measured acceptance per diffusion step of each drafter, and the
 * verify-cost curve (the first thread count's run; every count draws from the same seeds). */
#include "cli.h"
#include "core/error.h"
#include "core/timer.h"
#include "infer/drafter.h"
#include "infer/spec.h"
#include "rl/sched.h"
#include "train/plot.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { MAX_BLOCKS = 16, MAX_ROWS = 5 + 4 * MAX_BLOCKS, MAX_THREADS = 8 };

typedef struct {
  char name[32];
  ts_sampler s;
  double seconds, sq; /* sum of per-window seconds and of their squares */
} row;

/* A JSON number, null for NaN (no such value for this row). */
static void jnum(FILE *f, double v) {
  if (isnan(v)) fprintf(f, "null");
  else fprintf(f, "%.4f", v);
}

/* Measured acceptance per diffusion step of one drafter ("frozen", "x0", "learned", "x0late"), summed over its
 * rows, into x / y; returns the number of points. */
static int acceptance_of(const char *drafter, row *rows, int nr, int T, double *x, double *y) {
  int m = 0;
  size_t len = strlen(drafter);
  for (int t = 1; t < T; t++) {
    long dr = 0, ac = 0;
    for (int i = 0; i < nr; i++)
      if (rows[i].s.spec && !strncmp(rows[i].name + 5, drafter, len) && rows[i].name[5 + len] == '-') {
        const ts_spec_stats *st = ts_spec_stats_of(rows[i].s.spec);
        dr += st->drafted_t[t], ac += st->accepted_t[t];
      }
    if (dr) x[m] = t, y[m++] = (double)ac / dr;
  }
  return m;
}

/* PREFIX.png: acceptance per diffusion step for each drafter (left) and the target's cost of a
 * verification call against its batch (right), from this run. */
static int plot_spec(const char *prefix, const char *ck, int threads, row *rows, int nr, int T, const double *vms,
                     int maxb, const char *learned) {
  double x[TS_MAX_T], y[TS_MAX_T], bx[TS_SPEC_MAX_BLOCK + 2], per[TS_SPEC_MAX_BLOCK + 2];
  ts_fig *f = ts_fig_new(1200, 480, 1, 2);
  char title[1024], path[1024];
  snprintf(title, sizeof title, "exact speculative DDPM-%d on %s", T, ck);
  ts_fig_title(f, title);
  ts_fig_axes(f, 0, "acceptance of checked drafts per diffusion step", "diffusion step t", "acceptance", 0);
  ts_fig_ylim(f, 0, 0, 1.02);
  const char *kind[3] = {"frozen", "x0", learned}, *label[3] = {"frozen-target drafter", "x0 drafter (training-free)",
                                                                 !learned                      ? ""
                                                                 : !strcmp(learned, "x0late") ? "x0 drafter + late-step specialist"
                                                                 : !strcmp(learned, "hybrid") ? "learned drafter + x0 in the middle steps"
                                                                                              : "learned drafter"};
  for (int k = 0; k < (learned ? 3 : 2); k++) {
    int m = acceptance_of(kind[k], rows, nr, T, x, y);
    ts_fig_series(f, 0, label[k], x, y, NULL, m, TS_LINE);
  }
  snprintf(title, sizeof title, "target call cost, %d thread%s", threads, threads > 1 ? "s" : "");
  ts_fig_axes(f, 1, title, "rows in the call (batch)", "ms", 0);
  for (int b = 1; b <= maxb + 1; b++) bx[b - 1] = b, per[b - 1] = vms[b] / b;
  ts_fig_series(f, 1, "ms per call", bx, vms + 1, NULL, maxb + 1, TS_LINE | TS_MARKERS);
  ts_fig_series(f, 1, "ms per row", bx, per, NULL, maxb + 1, TS_LINE | TS_MARKERS);
  snprintf(path, sizeof path, "%s.png", prefix);
  int rc = ts_fig_save(f, path);
  ts_fig_free(f);
  return rc;
}

int ts_bench_spec(int argc, char **argv) {
  static const char *const vals[] = {"--ckpt",    "--data",  "--rollouts", "--drafter", "--blocks",
                                     "--windows", "--threads", "--plot",   "--scheduler", NULL},
                           *const flags[] = {"--json", "--raw-weights", "--overlap", NULL};
  const ts_cli_args spec = {vals, flags, 0, 0,
                            "tsdp bench spec --ckpt C (--data D.h5 | --rollouts R.h5) [--drafter DRAFTER.h5|frozen|x0] "
                            "[--blocks 2,3,4,6,8] [--windows 20] [--scheduler SCHED.h5] [--threads 1,2] [--plot PREFIX] "
                            "[--overlap] [--raw-weights] [--json]"};
  if (ts_cli_check(argc, argv, &spec)) return -1;
  const char *ck = ts_opt(argc, argv, "--ckpt"), *data = ts_opt(argc, argv, "--data"), *bl = ts_opt(argc, argv, "--blocks");
  const char *ths = ts_opt(argc, argv, "--threads"), *plot = ts_opt(argc, argv, "--plot");
  int json = ts_has_flag(argc, argv, "--json"), blocks[MAX_BLOCKS], nb = 0, thr[MAX_THREADS], nt = 0;
  long W;
  const char *rollouts = ts_opt(argc, argv, "--rollouts");
  if (!ck || (!data && !rollouts))
    return ts_fail("usage: tsdp bench spec --ckpt C (--data D.h5 | --rollouts R.h5) [--drafter DRAFTER.h5|frozen|x0] "
                   "[--blocks 2,3,4,6,8] [--windows 20] [--scheduler SCHED.h5] [--threads 1,2] [--plot PREFIX] [--json]");
  if (ts_int_opt(argc, argv, "--windows", 20, 1, 100000, &W)) return -1;
  char plot_png[1100] = "";
  if (plot) { /* PREFIX.png: a prefix that is empty or names a folder would write ".png" or "..png" */
    const char *base = strrchr(plot, '/') ? strrchr(plot, '/') + 1 : plot;
    struct stat pst;
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..") || (stat(plot, &pst) == 0 && S_ISDIR(pst.st_mode)))
      return ts_fail("--plot '%s': expected a file-name prefix (it writes PREFIX.png), not %s", plot,
                     *plot ? "a folder" : "an empty one");
    if (strlen(plot) > 1000) return ts_fail("--plot: prefix too long");
    snprintf(plot_png, sizeof plot_png, "%s.png", plot);
  }
  const ts_cli_file ins[] = {{"--ckpt", ck}, {"--data", data}, {"--rollouts", rollouts}, {"--drafter", ts_opt(argc, argv, "--drafter")},
                             {"--scheduler", ts_opt(argc, argv, "--scheduler")}, {NULL, NULL}},
                    outs[] = {{"--plot", plot ? plot_png : NULL}, {NULL, NULL}};
  if (ts_cli_files(ins, outs)) return -1;
  if ((nb = ts_int_list("--blocks", bl ? bl : "2,3,4,6,8", 1, TS_SPEC_MAX_BLOCK, blocks, MAX_BLOCKS)) < 0) return -1;
  char dflt[16];
  snprintf(dflt, sizeof dflt, "%d", ts_cpu_count());
  if ((nt = ts_int_list("--threads", ths ? ths : dflt, 1, 256, thr, MAX_THREADS)) < 0) return -1;
  int maxb = 0;
  for (int i = 0; i < nb; i++) maxb = blocks[i] > maxb ? blocks[i] : maxb;
  ts_policy p;
  ts_set_threads(thr[0]);
  if (ts_policy_load(&p, ck, ts_has_flag(argc, argv, "--raw-weights") ? "model" : "ema")) return -1;
  ts_drafter_model dm;
  ts_sampler probe = {.kind = TS_SAMPLER_SPEC, .steps = 1};
  ts_dataset d;
  memset(&d, 0, sizeof d);
  ts_rollouts ro;
  memset(&ro, 0, sizeof ro);
  ts_sched_model sm;
  ts_sampler sprobe = {.kind = TS_SAMPLER_SPEC, .steps = 1};
  int rc = ts_cli_drafter(argc, argv, &p, &dm, &probe);
  const ts_drafter *learned = probe.drafter;
  sprobe.drafter = learned;
  if (learned && learned->x0 && !learned->net) learned = NULL; /* --drafter x0: its rows are always there */
  const char *lname = !learned || !learned->x0 ? "learned" : learned->early_t > 0 ? "hybrid" : "x0late";
  static const ts_drafter x0d = {.x0 = 1};
  if (!rc) rc = ts_cli_scheduler(argc, argv, &p, &dm, &sprobe, &sm);
  else memset(&sm, 0, sizeof sm);
  const char *keys[TS_CFG_MAXKEYS];
  for (int i = 0; i < p.cfg.data.n_obs_keys; i++) keys[i] = p.cfg.data.obs_keys[i];
  if (!rc && rollouts) rc = ts_rollouts_load(&ro, rollouts, &p);
  else if (!rc) rc = ts_dataset_load(data, keys, p.cfg.data.n_obs_keys, &d);
  if (!rc && !rollouts && d.obs_dim != p.obs_dim)
    rc = ts_fail("%s: obs width %d, checkpoint expects %d", data, d.obs_dim, p.obs_dim);
  if (rc) {
    ts_sched_model_free(&sm);
    ts_rollouts_free(&ro);
    ts_drafter_model_free(&dm);
    ts_dataset_free(&d);
    ts_policy_free(&p);
    return -1;
  }
  int per = p.cfg.data.n_obs_steps * p.obs_dim, T = p.sched.T, n = p.horizon * p.act_dim, C = p.cond_dim;
  float *obs = malloc((size_t)W * per * sizeof(float)), *act = malloc((size_t)n * sizeof(float));
  float *vx = malloc((size_t)(maxb + 1) * n * sizeof(float)), *ve = malloc((size_t)(maxb + 1) * n * sizeof(float));
  float *vc = malloc((size_t)(maxb + 1) * C * sizeof(float));
  int vt[TS_SPEC_MAX_BLOCK + 1];
  double vsec[TS_SPEC_MAX_BLOCK + 2], dsec = 0;
  if (!obs || !act || !vx || !ve || !vc) abort();
  long *wstep = malloc((size_t)W * sizeof(long)); /* each window's control step (temporal drafters) */
  if (!wstep) abort();
  /* Windows spread evenly through the dataset, or through the recorded rollouts, with their
   * control steps (which a scheduler or a temporal drafter may read). */
  for (int w = 0; w < W; w++)
    if (rollouts) {
      long i = (long)((double)(w + 0.5) / W * ro.n);
      memcpy(obs + (size_t)w * per, ro.obs + (size_t)i * per, (size_t)per * sizeof(float));
      wstep[w] = ro.control_step[i];
    } else {
      wstep[w] = ts_cli_obs_history(&d, &p, (long)((double)(w + 0.5) / W * d.n_steps), obs + (size_t)w * per);
    }
  /* The rows: DDPM-T, DDIM-10, then each block with the frozen drafter, with the x0 drafter,
   * then with --drafter's (and with --overlap, a learned one drafting on a second thread during
   * verification). */
  row rows[MAX_ROWS];
  int nr = 0;
  memset(rows, 0, sizeof rows);
  snprintf(rows[nr].name, sizeof rows[nr].name, "ddpm-%d", T);
  rows[nr++].s = (ts_sampler){.kind = TS_SAMPLER_DDPM};
  snprintf(rows[nr].name, sizeof rows[nr].name, "ddim-10");
  rows[nr++].s = (ts_sampler){.kind = TS_SAMPLER_DDIM, .steps = 10};
  /* --overlap: the learned drafter's blocks again with overlapped drafting (ts_spec_set_overlap) */
  int ov = ts_has_flag(argc, argv, "--overlap");
  int kinds = learned ? (ov ? 4 : 3) : 2;
  if (ov && (!learned || learned->x0))
    rc = ts_fail("--overlap: overlapped drafting needs a learned --drafter (not frozen or x0)");
  for (int k = 0; k < kinds && !rc; k++)
    for (int i = 0; i < nb && !rc; i++) {
      const char *kn[4] = {"frozen", "x0", lname, "overlap"};
      snprintf(rows[nr].name, sizeof rows[nr].name, "spec-%s-%d", kn[k], blocks[i]);
      rows[nr].s = (ts_sampler){.kind = TS_SAMPLER_SPEC, .steps = blocks[i], .drafter = k == 0 ? NULL : k == 1 ? &x0d : learned,
                                .overlap = k == 3};
      if (!(rows[nr].s.spec = ts_spec_new(&p.target, &p.sched, blocks[i]))) rc = -1;
      nr++;
    }
  /* With a scheduler: its best fixed L, its static schedule and the learned policy, all with the
   * scheduler's drafter, in work spaces of its largest block. */
  if (sprobe.blocks && !rc) {
    const ts_block_sched *bs[3] = {&sm.fixed, &sm.stat, &sm.learned};
    const char *nm[3] = {"fixed-best", "static-best", sm.lossy ? "rl-LOSSY" : "rl"};
    for (int k = 0; k < 3 && !rc; k++) {
      snprintf(rows[nr].name, sizeof rows[nr].name, "%s", nm[k]);
      rows[nr].s = (ts_sampler){.kind = TS_SAMPLER_SPEC, .steps = sprobe.steps, .drafter = sprobe.drafter, .blocks = bs[k]};
      if (!(rows[nr].s.spec = ts_spec_new(&p.target, &p.sched, sprobe.steps))) rc = -1;
      nr++;
    }
  }
  /* JSON: {"ckpt", "windows", "rows": [every row of every thread count], "threads": [per count: the
   * verify-cost curve, the drafter call, the bound]}, collected in memory and printed at the end. */
  char *jrows = NULL, *jth = NULL;
  size_t njr = 0, njt = 0;
  FILE *fr = json ? open_memstream(&jrows, &njr) : NULL, *ft = json ? open_memstream(&jth, &njt) : NULL;
  if (json && (!fr || !ft)) abort();
  ts_rng rng, vr;
  for (int ti = 0; ti < nt && !rc; ti++) {
    int threads = thr[ti];
    ts_set_threads(threads);
    ts_policy_set_threads(&p, threads);
    ts_rng_init(&rng, 5);
    ts_rng_init(&vr, 6);
    for (int i = 0; i < nr; i++) rows[i].seconds = rows[i].sq = 0;
    memset(vsec, 0, sizeof vsec);
    dsec = 0;
    /* One warm-up chunk each first (not counted). */
    for (int rep = -1; rep < W && !rc; rep++) {
      const float *ob = obs + (size_t)(rep < 0 ? 0 : rep) * per;
      for (int i = 0; i < nr && !rc; i++) {
        rows[i].s.control_step = wstep[rep < 0 ? 0 : rep];
        double t0 = ts_now();
        rc = ts_policy_sample(&p, ob, 1, &rows[i].s, &rng, act);
        double dt = ts_now() - t0;
        if (rep >= 0) rows[i].seconds += dt, rows[i].sq += dt * dt;
        else if (rows[i].s.spec) ts_spec_reset_stats(rows[i].s.spec);
      }
      /* The verification cost curve: one target call at each batch size 1 .. maxb + 1 on this
       * window's cond (every row the same observation, as in a round), and one drafter call. */
      ts_policy_make_cond(&p, ob, 1, vc);
      for (int b = 1; b <= maxb; b++) memcpy(vc + (size_t)b * C, vc, (size_t)C * sizeof(float));
      for (int b = 1; b <= maxb + 1 && !rc; b++) {
        ts_rng_fill_normal(&vr, vx, b * n);
        for (int j = 0; j < b; j++) vt[j] = T - 1 - (rep + 1 + j) % T;
        double t0 = ts_now();
        ts_policy_eps(&p, vx, vt, vc, b, ve);
        if (rep >= 0) vsec[b] += ts_now() - t0;
      }
      if (learned) {
        double t0 = ts_now();
        ts_denoiser_eps(learned->net, vx, vt, vc, 1, ve);
        if (rep >= 0) dsec += ts_now() - t0;
      }
    }
    if (rc) break;
    double ddpm_ms = 1e3 * rows[0].seconds / W, draft_ms = learned ? 1e3 * dsec / W : 0;
    /* The bound at perfect acceptance: best over the measured blocks of (T / L) verify(L + 1). */
    double best = INFINITY, best_d = INFINITY;
    int bestL = 0;
    for (int i = 0; i < nb; i++) {
      double v = (double)T / blocks[i] * 1e3 * vsec[blocks[i] + 1] / W;
      if (v < best) best = v, bestL = blocks[i];
      if (v + T * draft_ms < best_d) best_d = v + T * draft_ms;
    }
    double best_spec = INFINITY;
    for (int i = 2; i < nr; i++) best_spec = fmin(best_spec, 1e3 * rows[i].seconds / W);
    if (json) {
      fprintf(ft, "%s{\"threads\": %d, \"verify_ms\": [", ti ? ", " : "", threads);
      for (int b = 1; b <= maxb + 1; b++) fprintf(ft, "%s%.4f", b > 1 ? ", " : "", 1e3 * vsec[b] / W);
      fprintf(ft, "], \"drafter_ms\": %.4f, \"bound\": {\"block\": %d, \"ms_per_chunk\": %.3f, \"speedup\": %.3f, "
             "\"speedup_with_drafter\": ", draft_ms, bestL, best, ddpm_ms / best);
      jnum(ft, learned ? ddpm_ms / best_d : NAN);
      fprintf(ft, ", \"best_spec_fraction\": %.3f}}", best / best_spec);
    } else {
      printf("batch-1 action chunks on %ld observation windows of %s, %d thread%s\n", W, rollouts ? rollouts : data, threads,
             threads > 1 ? "s" : "");
      printf("target call, ms at batch 1..%d:", maxb + 1);
      for (int b = 1; b <= maxb + 1; b++) printf(" %.3f", 1e3 * vsec[b] / W);
      if (learned) printf("; drafter call %.4f ms", draft_ms);
      printf("\nbound (free drafter, every draft accepted): (%d/%d) x verify(%d) = %.2f ms per chunk, %.2fx DDPM",
             T, bestL, bestL + 1, best, ddpm_ms / best);
      if (learned) printf("; with this drafter's calls %.2fx", ddpm_ms / best_d);
      printf("\n%-18s %9s %6s %7s %7s %7s %8s %8s %10s %8s\n", "sampler", "ms/chunk", "+-se", "draft", "verify", "other",
             "target", "drafter", "accepted", "speed-up");
    }
    for (int i = 0; i < nr; i++) {
      double m = 1e3 * rows[i].seconds / W, calls = i == 0 ? T : 10, dcalls = 0, acc = NAN, dms = NAN, vms = NAN, oms = NAN;
      double var = W > 1 ? (rows[i].sq - rows[i].seconds * rows[i].seconds / W) / (W - 1) : 0;
      double se = 1e3 * sqrt(var > 0 ? var / W : 0); /* standard error of the mean over windows */
      if (rows[i].s.spec) {
        const ts_spec_stats *st = ts_spec_stats_of(rows[i].s.spec);
        long checked = ts_spec_checked(st);
        calls = (double)st->target_calls / W;
        dcalls = (double)st->drafter_calls / W;
        acc = checked ? (double)st->accepted / checked : 0;
        dms = 1e3 * st->draft_s / W, vms = 1e3 * st->verify_s / W, oms = m - dms - vms;
      }
      if (json) {
        fprintf(fr, "%s{\"name\": \"%s\", \"threads\": %d, \"ms_per_chunk\": %.3f, \"ms_se\": %.3f, \"draft_ms\": ",
                i || ti ? ", " : "", rows[i].name, threads, m, se);
        jnum(fr, dms);
        fprintf(fr, ", \"verify_ms\": ");
        jnum(fr, vms);
        fprintf(fr, ", \"other_ms\": ");
        jnum(fr, oms);
        fprintf(fr, ", \"target_calls_per_chunk\": %.2f, \"drafter_calls_per_chunk\": %.2f, \"acceptance\": ", calls, dcalls);
        jnum(fr, acc);
        fprintf(fr, ", \"speedup_vs_ddpm\": %.3f", ddpm_ms / m);
        if (ts_block_lossy(rows[i].s.blocks)) /* the rule was relaxed: say so, with how often it mattered */
          fprintf(fr, ", \"lossy\": true, \"relaxed_per_chunk\": %.3f", rows[i].s.spec ? (double)ts_spec_stats_of(rows[i].s.spec)->relaxed / W : 0);
        fprintf(fr, "}");
      } else {
        char a[16] = "", sp[3][16] = {"-", "-", "-"};
        if (rows[i].s.spec) {
          snprintf(a, sizeof a, "%.1f%%", 100 * acc);
          snprintf(sp[0], 16, "%.2f", dms), snprintf(sp[1], 16, "%.2f", vms), snprintf(sp[2], 16, "%.2f", oms);
        }
        printf("%-18s %9.2f %6.2f %7s %7s %7s %8.1f %8.1f %10s %7.2fx\n", rows[i].name, m, se, sp[0], sp[1], sp[2], calls,
               dcalls, a, ddpm_ms / m);
      }
    }
    if (!json) printf("best speculative row: %.2fx DDPM, %.0f%% of the bound\n", ddpm_ms / best_spec, 100 * best / best_spec);
    if (plot && ti == 0) { /* the acceptance does not depend on the thread count (same seeds) */
      double vms[TS_SPEC_MAX_BLOCK + 2];
      for (int b = 1; b <= maxb + 1; b++) vms[b] = 1e3 * vsec[b] / W;
      if (plot_spec(plot, ck, threads, rows, nr, T, vms, maxb, learned ? lname : NULL)) rc = -1;
    }
    for (int i = 2; i < nr; i++) ts_spec_reset_stats(rows[i].s.spec);
  }
  if (json) {
    fclose(fr), fclose(ft);
    if (!rc)
      printf("{\"ckpt\": \"%s\", \"source\": \"%s\", \"windows\": %ld, \"rows\": [%s], \"threads\": [%s]}\n", ck,
             rollouts ? rollouts : data, W, jrows, jth);
    free(jrows), free(jth);
  }
  for (int i = 0; i < nr; i++) ts_spec_free(rows[i].s.spec);
  free(obs), free(act), free(vx), free(ve), free(vc), free(wstep);
  ts_sched_model_free(&sm);
  ts_rollouts_free(&ro);
  ts_drafter_model_free(&dm);
  ts_dataset_free(&d);
  ts_policy_free(&p);
  return rc ? -1 : 0;
}
