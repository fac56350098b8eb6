/* tsdp bench spec: batch-1 action-chunk latency of exact speculative DDPM against DDPM-T and
 * DDIM-10, on observation windows spread through a dataset: the frozen-target drafter at each
 * block length and, with --drafter, a distilled drafter at each block length too. Samplers are
 * interleaved window by window so the machine's load drifts over all of them alike. Each row:
 * ms per chunk, sequential target (and drafter) calls per chunk, acceptance, speed-up. */
#include "cli.h"
#include "core/error.h"
#include "infer/drafter.h"
#include "infer/spec.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_BLOCKS = 16, MAX_ROWS = 2 + 2 * MAX_BLOCKS };

typedef struct {
  char name[32];
  ts_sampler s;
  double seconds;
} row;

int ts_bench_spec(int argc, char **argv) {
  static const char *const vals[] = {"--ckpt", "--data", "--drafter", "--blocks", "--windows", "--threads", NULL},
                           *const flags[] = {"--json", "--raw-weights", NULL};
  const ts_cli_args spec = {vals, flags, 0, 0,
                            "tsdp bench spec --ckpt C --data D.h5 [--drafter DRAFTER.h5|frozen] [--blocks 2,3,4,6,8] "
                            "[--windows 20] [--threads T] [--raw-weights] [--json]"};
  if (ts_cli_check(argc, argv, &spec)) return -1;
  const char *ck = ts_opt(argc, argv, "--ckpt"), *data = ts_opt(argc, argv, "--data"), *bl = ts_opt(argc, argv, "--blocks");
  int json = ts_has_flag(argc, argv, "--json"), blocks[MAX_BLOCKS], nb = 0;
  long W;
  if (!ck || !data)
    return ts_fail("usage: tsdp bench spec --ckpt C --data D.h5 [--drafter DRAFTER.h5|frozen] [--blocks 2,3,4,6,8] "
                   "[--windows 20] [--threads T] [--json]");
  if (ts_int_opt(argc, argv, "--windows", 20, 1, 100000, &W)) return -1;
  if ((nb = ts_int_list("--blocks", bl ? bl : "2,3,4,6,8", 1, TS_SPEC_MAX_BLOCK, blocks, MAX_BLOCKS)) < 0) return -1;
  ts_policy p;
  if (ts_cli_load_policy(argc, argv, &p)) return -1;
  int threads = p.threads;
  ts_drafter_model dm;
  ts_sampler probe = {.kind = TS_SAMPLER_SPEC, .steps = 1};
  ts_dataset d;
  memset(&d, 0, sizeof d);
  int rc = ts_cli_drafter(argc, argv, &p, &dm, &probe);
  const ts_drafter *learned = probe.drafter;
  const char *keys[TS_CFG_MAXKEYS];
  for (int i = 0; i < p.cfg.data.n_obs_keys; i++) keys[i] = p.cfg.data.obs_keys[i];
  if (!rc) rc = ts_dataset_load(data, keys, p.cfg.data.n_obs_keys, &d);
  if (!rc && d.obs_dim != p.obs_dim) rc = ts_fail("%s: obs width %d, checkpoint expects %d", data, d.obs_dim, p.obs_dim);
  if (rc) {
    ts_drafter_model_free(&dm);
    ts_dataset_free(&d);
    ts_policy_free(&p);
    return -1;
  }
  int per = p.cfg.data.n_obs_steps * p.obs_dim;
  float *obs = malloc((size_t)W * per * sizeof(float)), *act = malloc((size_t)p.horizon * p.act_dim * sizeof(float));
  if (!obs || !act) abort();
  for (int w = 0; w < W; w++) ts_cli_obs_history(&d, &p, (long)((double)(w + 0.5) / W * d.n_steps), obs + (size_t)w * per);
  /* The rows: DDPM-T, DDIM-10, then each block with the frozen drafter, then with the learned one. */
  row rows[MAX_ROWS];
  int nr = 0;
  memset(rows, 0, sizeof rows);
  snprintf(rows[nr].name, sizeof rows[nr].name, "ddpm-%d", p.sched.T);
  rows[nr++].s = (ts_sampler){.kind = TS_SAMPLER_DDPM};
  snprintf(rows[nr].name, sizeof rows[nr].name, "ddim-10");
  rows[nr++].s = (ts_sampler){.kind = TS_SAMPLER_DDIM, .steps = 10};
  for (int k = 0; k < (learned ? 2 : 1); k++)
    for (int i = 0; i < nb && !rc; i++) {
      snprintf(rows[nr].name, sizeof rows[nr].name, "spec-%s-%d", k ? "learned" : "frozen", blocks[i]);
      rows[nr].s = (ts_sampler){.kind = TS_SAMPLER_SPEC, .steps = blocks[i], .drafter = k ? learned : NULL};
      if (!(rows[nr].s.spec = ts_spec_new(&p.target, &p.sched, blocks[i]))) rc = -1;
      nr++;
    }
  ts_rng rng;
  ts_rng_init(&rng, 5);
  /* One warm-up chunk each first (not counted). */
  for (int rep = -1; rep < W && !rc; rep++) {
    const float *ob = obs + (size_t)(rep < 0 ? 0 : rep) * per;
    for (int i = 0; i < nr && !rc; i++) {
      double t0 = ts_now();
      rc = ts_policy_sample(&p, ob, 1, &rows[i].s, &rng, act);
      if (rep >= 0) rows[i].seconds += ts_now() - t0;
      else if (rows[i].s.spec) ts_spec_reset_stats(rows[i].s.spec);
    }
  }
  double ddpm_ms = 1e3 * rows[0].seconds / W;
  if (!rc) {
    if (json) printf("{\"ckpt\": \"%s\", \"threads\": %d, \"windows\": %ld, \"rows\": [", ck, threads, W);
    else
      printf("batch-1 action chunks on %ld observation windows, %d thread%s\n%-18s %10s %13s %14s %11s %9s\n", W, threads,
             threads > 1 ? "s" : "", "sampler", "ms/chunk", "target calls", "drafter calls", "acceptance", "speed-up");
    for (int i = 0; i < nr; i++) {
      double m = 1e3 * rows[i].seconds / W, calls = i == 0 ? p.sched.T : 10, dcalls = 0, acc = NAN;
      if (rows[i].s.spec) {
        const ts_spec_stats *st = ts_spec_stats_of(rows[i].s.spec);
        calls = (double)st->target_calls / W;
        dcalls = (double)st->drafter_calls / W;
        acc = st->drafted ? (double)st->accepted / st->drafted : 0;
      }
      if (json) {
        printf("%s{\"name\": \"%s\", \"ms_per_chunk\": %.3f, \"target_calls_per_chunk\": %.2f, "
               "\"drafter_calls_per_chunk\": %.2f, \"acceptance\": ", i ? ", " : "", rows[i].name, m, calls, dcalls);
        if (rows[i].s.spec) printf("%.4f", acc);
        else printf("null");
        printf(", \"speedup_vs_ddpm\": %.3f}", ddpm_ms / m);
      } else {
        char a[16] = "";
        if (rows[i].s.spec) snprintf(a, sizeof a, "%.1f%%", 100 * acc);
        printf("%-18s %10.2f %13.1f %14.1f %11s %8.2fx\n", rows[i].name, m, calls, dcalls, a, ddpm_ms / m);
      }
    }
    if (json) printf("]}\n");
  }
  for (int i = 0; i < nr; i++) ts_spec_free(rows[i].s.spec);
  free(obs);
  free(act);
  ts_drafter_model_free(&dm);
  ts_dataset_free(&d);
  ts_policy_free(&p);
  return rc ? -1 : 0;
}
