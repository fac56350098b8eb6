/* tsdp bench spec: batch-1 action-chunk latency of exact speculative DDPM (frozen-target
 * drafter) against plain DDPM, on observation windows spread through a dataset, with the
 * sequential target calls per chunk and the draft acceptance rate for each block length. */
#include "cli.h"
#include "core/error.h"
#include "infer/spec.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ts_bench_spec(int argc, char **argv) {
  const char *ck = ts_opt(argc, argv, "--ckpt"), *data = ts_opt(argc, argv, "--data"), *bl = ts_opt(argc, argv, "--blocks");
  int json = ts_has_flag(argc, argv, "--json"), blocks[16], nb = 0;
  long W;
  if (!ck || !data)
    return ts_fail("usage: tsdp bench spec --ckpt C --data D.h5 [--blocks 2,3,4,6,8] [--windows 20] [--threads T] [--json]");
  if (ts_int_opt(argc, argv, "--windows", 20, 1, 100000, &W)) return -1;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", bl ? bl : "2,3,4,6,8");
  for (char *t = strtok(buf, ","); t && nb < 16; t = strtok(NULL, ","))
    if ((blocks[nb++] = atoi(t)) < 1 || blocks[nb - 1] > TS_SPEC_MAX_BLOCK) return ts_fail("--blocks: bad block '%s'", t);
  ts_policy p;
  if (ts_cli_load_policy(argc, argv, &p)) return -1;
  int threads = p.threads;
  ts_dataset d;
  memset(&d, 0, sizeof d);
  const char *keys[TS_CFG_MAXKEYS];
  for (int i = 0; i < p.cfg.data.n_obs_keys; i++) keys[i] = p.cfg.data.obs_keys[i];
  int rc = ts_dataset_load(data, keys, p.cfg.data.n_obs_keys, &d);
  if (!rc && d.obs_dim != p.obs_dim) rc = ts_fail("%s: obs width %d, checkpoint expects %d", data, d.obs_dim, p.obs_dim);
  if (rc) {
    ts_dataset_free(&d);
    ts_policy_free(&p);
    return -1;
  }
  int per = p.cfg.data.n_obs_steps * p.obs_dim;
  float *obs = malloc((size_t)W * per * sizeof(float)), *act = malloc((size_t)p.horizon * p.act_dim * sizeof(float));
  if (!obs || !act) abort();
  for (int w = 0; w < W; w++) ts_cli_obs_history(&d, &p, (long)((double)(w + 0.5) / W * d.n_steps), obs + (size_t)w * per);
  ts_rng rng;
  ts_rng_init(&rng, 5);
  /* One work space per block length, each with its own counters. */
  ts_spec *spec[16] = {NULL};
  for (int i = 0; i < nb && !rc; i++)
    if (!(spec[i] = ts_spec_new(&p.target, &p.sched, blocks[i]))) rc = -1;
  /* Samplers interleaved window by window (DDPM, then each block), so the machine's load
   * drifts over all of them alike; one warm-up chunk each first. */
  double ms[17] = {0};
  const ts_sampler ddpm = {.kind = TS_SAMPLER_DDPM};
  for (int rep = -1; rep < W && !rc; rep++) {
    const float *ob = obs + (size_t)(rep < 0 ? 0 : rep) * per;
    double t0 = ts_now();
    ts_policy_sample(&p, ob, 1, &ddpm, &rng, act);
    if (rep >= 0) ms[0] += ts_now() - t0;
    for (int i = 0; i < nb; i++) {
      ts_sampler s = {.kind = TS_SAMPLER_SPEC, .steps = blocks[i], .spec = spec[i]};
      t0 = ts_now();
      ts_policy_sample(&p, ob, 1, &s, &rng, act);
      if (rep >= 0) ms[i + 1] += ts_now() - t0;
      else ts_spec_reset_stats(spec[i]); /* the warm-up chunk is not counted */
    }
  }
  ts_spec_stats st[16];
  for (int i = 0; i < nb; i++) {
    if (spec[i]) st[i] = *ts_spec_stats_of(spec[i]);
    ts_spec_free(spec[i]);
  }
  if (rc) {
    free(obs);
    free(act);
    ts_dataset_free(&d);
    ts_policy_free(&p);
    return -1;
  }
  double ddpm_ms = 1e3 * ms[0] / W;
  if (json) printf("{\"ckpt\": \"%s\", \"threads\": %d, \"windows\": %ld, \"ddpm_ms\": %.3f, \"spec\": [", ck, threads, W, ddpm_ms);
  else
    printf("batch-1 action chunks on %ld observation windows, %d thread%s\n%-12s %10s %12s %12s %10s\n%-12s %10.2f %12d %12s %10s\n",
           W, threads, threads > 1 ? "s" : "", "sampler", "ms/chunk", "calls/chunk", "acceptance", "speed-up", "ddpm", ddpm_ms,
           p.sched.T, "", "1.00x");
  for (int i = 0; i < nb; i++) {
    double m = 1e3 * ms[i + 1] / W, calls = (double)st[i].target_calls / W, acc = (double)st[i].accepted / st[i].drafted;
    if (json)
      printf("%s{\"block\": %d, \"ms\": %.3f, \"calls_per_chunk\": %.2f, \"acceptance\": %.4f}", i ? ", " : "", blocks[i],
             m, calls, acc);
    else {
      char name[32];
      snprintf(name, sizeof name, "spec-%d", blocks[i]);
      printf("%-12s %10.2f %12.1f %11.1f%% %9.2fx\n", name, m, calls, 100 * acc, ddpm_ms / m);
    }
  }
  if (json) printf("]}\n");
  free(obs);
  free(act);
  ts_dataset_free(&d);
  ts_policy_free(&p);
  return 0;
}
