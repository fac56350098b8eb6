/* tsdp rl record | rl train, tsdp bench cost, and the --scheduler option of eval / bench spec:
 * the PPO block scheduler's pipeline (rl/sched.h). */
#include "cli.h"
#include "core/config.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/sizes.h"
#include "infer/blocks.h"
#include "infer/drafter.h"
#include "rl/sched.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ts_cli_scheduler(int argc, char **argv, const ts_policy *p, const ts_drafter_model *dm, ts_sampler *s,
                     ts_sched_model *sm) {
  memset(sm, 0, sizeof *sm);
  const char *path = ts_opt(argc, argv, "--scheduler");
  if (!path) return 0;
  if (s->kind != TS_SAMPLER_SPEC) return ts_fail("--scheduler: only the spec sampler has rounds (--sampler spec)");
  char id[32] = "frozen";
  if (s->drafter) ts_hash_hex(ts_drafter_hash(dm), id);
  if (ts_sched_load(sm, path, p, id)) return -1;
  s->blocks = &sm->learned;
  s->steps = sm->cfg.rl.blocks[sm->cfg.rl.n_blocks - 1];
  return 0;
}

static int rl_record(int argc, char **argv) {
  static const char *const vals[] = {"--ckpt", "--episodes", "--out",   "--seed-start", "--seed",
                                     "--sampler", "--steps", "--threads", NULL},
                           *const flags[] = {"--json", "--raw-weights", NULL};
  const ts_cli_args spec = {vals, flags, 0, 0,
                            "tsdp rl record --ckpt BASE.h5 --episodes N --out R.h5 [--seed-start S] [--seed K] "
                            "[--sampler ddpm|ddim|spec] [--steps K] [--threads T]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  const char *out = ts_opt(argc, argv, "--out"), *ck = ts_opt(argc, argv, "--ckpt"), *sname = ts_opt(argc, argv, "--sampler");
  if (!out || !ck)
    return ts_fail("usage: tsdp rl record --ckpt BASE.h5 --episodes N --out R.h5 [--seed-start S] [--seed K] "
                   "[--sampler ddpm|ddim|spec] [--steps K] [--threads T]");
  long eps, start, seed, steps;
  int kind = sname ? ts_enum_parse(ts_sampler_names, sname, "--sampler") : TS_SAMPLER_DDPM;
  if (kind < 0 || ts_int_opt(argc, argv, "--episodes", 10, 1, 1024, &eps) ||
      ts_int_opt(argc, argv, "--seed-start", 100010, 0, 1L << 30, &start) ||
      ts_int_opt(argc, argv, "--seed", 0, 0, 1L << 30, &seed) || ts_int_opt(argc, argv, "--steps", 10, 1, 1000, &steps))
    return 1;
  if (kind == TS_SAMPLER_DDPM && ts_opt(argc, argv, "--steps"))
    return ts_fail("--steps: the ddpm sampler runs every diffusion step (--steps is for ddim, or the spec sampler's block)");
  const ts_cli_file ins[] = {{"--ckpt", ck}, {NULL, NULL}}, outs[] = {{"--out", out}, {NULL, NULL}};
  if (ts_cli_files(ins, outs)) return 1;
  ts_policy p;
  if (ts_cli_load_policy(argc, argv, &p)) return 1;
  ts_sampler s = {.kind = (ts_sampler_kind)kind, .steps = kind == TS_SAMPLER_DDPM ? 0 : (int)steps};
  char name[32];
  snprintf(name, sizeof name, kind == TS_SAMPLER_DDPM ? "%s" : "%s-%d", ts_sampler_names[kind], s.steps);
  ts_eval_opts o = {.episodes = (int)eps, .seed_start = (int)start, .seed = (uint64_t)seed, .quiet = 0};
  ts_eval_result r;
  int rc = ts_rollouts_record(&p, &s, &o, name, ck, out, &r);
  if (!rc)
    printf("recorded %ld chunk windows of %d episodes (seeds %ld..%ld, sampler %s, mean score %.3f) to %s\n", r.chunks,
           r.episodes, start, start + eps - 1, name, r.mean_score, out);
  ts_policy_free(&p);
  return rc ? 1 : 0;
}

/* An existing --out that rl train would resume from must be a scheduler checkpoint (a base or
 * drafter checkpoint there is a mistaken path, not a recipe mismatch). */
static int resumable(const char *out) {
  if (ts_regular_file(out) != 0) return 0; /* absent (or refused already) */
  ts_h5 *f = ts_h5_open(out);
  if (!f) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ts_error());
    return ts_fail("cannot resume from %s (%s); pass --fresh to start over", out, msg);
  }
  char *kind = ts_h5_get_attr_str(f, "/", "kind");
  ts_h5_close(f);
  int rc = 0;
  if (!kind || strcmp(kind, "block_scheduler"))
    rc = ts_fail("%s: is not a scheduler checkpoint (no kind = block_scheduler; tsdp rl train writes one): choose "
                 "another --out, or pass --fresh to replace it", out);
  free(kind);
  return rc;
}

static int rl_train(int argc, char **argv) {
  static const char *const vals[] = {"--config", "--ckpt", "--drafter", "--rollouts", "--out",
                                     "--cost", "--updates", "--stop-after", "--threads", NULL},
                           *const flags[] = {"--fresh", "--json", NULL};
  const ts_cli_args spec = {vals, flags, 1, 0,
                            "tsdp rl train --config C.ini --ckpt BASE.h5 [--drafter D.h5|frozen] --rollouts R.h5 --out "
                            "SCHED.h5 [--cost COST.ini] [--updates N] [--stop-after N] [--fresh] [--json] [key=value ...]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  int fresh, json;
  char *args[256];
  int n = ts_cli_train_flags(argc, argv, &fresh, &json, args, 256);
  ts_config cfg;
  if (ts_cli_config(n, args, &cfg)) return 1;
  ts_sched_train_opts o = {ts_opt(n, args, "--ckpt"), ts_opt(n, args, "--drafter"), ts_opt(n, args, "--rollouts"),
                           ts_opt(n, args, "--out"), fresh, json, 0};
  const char *cost = ts_opt(n, args, "--cost");
  if (!o.base || !o.rollouts || !o.out)
    return ts_fail("usage: tsdp rl train --config C.ini --ckpt BASE.h5 [--drafter DRAFTER.h5|frozen|x0] --rollouts R.h5 "
                   "--out SCHED.h5 [--cost COST.ini] [--updates N] [--stop-after N] [--fresh] [--json] [key=value ...]");
  if (cost) {
    if (strlen(cost) >= sizeof cfg.rl.cost_model) return ts_fail("--cost: path too long");
    snprintf(cfg.rl.cost_model, sizeof cfg.rl.cost_model, "%s", cost);
  }
  long upd;
  if (ts_int_opt(n, args, "--updates", cfg.rl.updates, 1, 1L << 30, &upd) ||
      ts_int_opt(n, args, "--stop-after", 0, 1, 1L << 40, &o.stop_after))
    return 1;
  cfg.rl.updates = (int)upd;
  static const char *const extra[] = {".L_t.png", ".episode.png", NULL};
  const char *drafter = o.drafter && strcmp(o.drafter, "frozen") ? o.drafter : NULL;
  const ts_cli_file ins[] = {{"--config", ts_opt(n, args, "--config")}, {"--ckpt", o.base}, {"--drafter", drafter},
                             {"--rollouts", o.rollouts}, {cost ? "--cost" : "rl.cost_model", cfg.rl.cost_model},
                             {NULL, NULL}};
  if (ts_cli_run_files(ins, "--out", o.out, extra) || (!fresh && resumable(o.out))) return 1;
  long th;
  if (ts_int_opt(n, args, "--threads", 1, 1, 256, &th)) return 1;
  ts_set_threads((int)th);
  ts_sched_train_result r;
  if (ts_sched_train(&cfg, &o, &r)) return 1;
  char sc[32] = "null";
  if (cfg.rl.lossy && isfinite(r.final_score)) snprintf(sc, sizeof sc, "%.4f", r.final_score);
  if (json)
    printf("{\"updates\": %ld, \"resumed_from\": %d, \"cost_ms\": %.3f, \"mean_L\": %.3f, \"entropy\": %.4f, "
           "\"static_expected_ms\": %.3f, \"fixed_best\": %d, \"fixed_best_expected_ms\": %.3f, \"seconds\": %.1f, "
           "\"lossy\": %s, \"score\": %s}\n",
           r.updates, r.resumed_from, r.final_cost_ms, r.final_mean_L, r.final_entropy, r.static_ms, r.fixed_best,
           r.fixed_best_ms, r.seconds, cfg.rl.lossy ? "true" : "false", sc);
  else
    printf("scheduler trained to update %ld (resumed from %d): %.1f ms/chunk (cost model) at mean L %.2f, entropy %.3f; "
           "expected: static schedule %.1f, best fixed L = %d %.1f ms/chunk; %.1f s; %s\n", r.updates, r.resumed_from,
           r.final_cost_ms, r.final_mean_L, r.final_entropy, r.static_ms, r.fixed_best, r.fixed_best_ms, r.seconds, o.out);
  if (!json && cfg.rl.lossy)
    printf("LOSSY scheduler: mean Push-T score %s on the last logged training episodes (tolerances kept drafts the exact "
           "test rejected; the samples do not follow DDPM's law)\n", sc);
  return 0;
}

int ts_cmd_rl(int argc, char **argv) {
  if (argc >= 1 && !strcmp(argv[0], "record")) return rl_record(argc - 1, argv + 1);
  if (argc >= 1 && !strcmp(argv[0], "train")) return rl_train(argc - 1, argv + 1);
  return ts_fail("usage: tsdp rl record|train ... (tsdp --help)");
}

/* Median ms of `reps` calls of the denoiser at batch B (x, t, cond of the base's shapes). */
static double time_eps(ts_denoiser *d, int B, int T, int reps, float *x, float *cond, float *eps, int *tt) {
  double *ms = malloc((size_t)reps * sizeof(double));
  if (!ms) abort();
  for (int b = 0; b < B; b++) tt[b] = (T - 1) - b % T;
  ts_denoiser_eps(d, x, tt, cond, B, eps); /* warm-up */
  for (int r = 0; r < reps; r++) {
    double t0 = ts_now();
    ts_denoiser_eps(d, x, tt, cond, B, eps);
    ms[r] = 1e3 * (ts_now() - t0);
  }
  double m = ts_median(ms, reps);
  free(ms);
  return m;
}

int ts_bench_cost(int argc, char **argv) {
  static const char *const vals[] = {"--ckpt", "--drafter", "--out", "--max-batch", "--reps", "--threads", NULL},
                           *const flags[] = {"--json", "--raw-weights", NULL};
  const ts_cli_args spec = {vals, flags, 0, 0,
                            "tsdp bench cost --ckpt BASE.h5 [--drafter DRAFTER.h5] --out COST.ini [--max-batch 17] "
                            "[--reps 15] [--threads 1]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  const char *out = ts_opt(argc, argv, "--out");
  long maxb, reps;
  if (!out || !ts_opt(argc, argv, "--ckpt"))
    return ts_fail("usage: tsdp bench cost --ckpt BASE.h5 [--drafter DRAFTER.h5] --out COST.ini [--max-batch 17] "
                   "[--reps 15] [--threads 1]");
  if (ts_int_opt(argc, argv, "--max-batch", 17, 1, TS_COST_MAX_BATCH, &maxb) || ts_int_opt(argc, argv, "--reps", 15, 3, 100000, &reps))
    return 1;
  const char *dr = ts_opt(argc, argv, "--drafter");
  const ts_cli_file ins[] = {{"--ckpt", ts_opt(argc, argv, "--ckpt")}, {"--drafter", dr && strcmp(dr, "frozen") ? dr : NULL},
                             {NULL, NULL}},
                    outs[] = {{"--out", out}, {NULL, NULL}};
  if (ts_cli_files(ins, outs)) return 1;
  if (!ts_opt(argc, argv, "--threads")) { /* the samplers run batch-1 chunks on one thread by default here */
    static char *a2[260];
    int n = argc < 256 ? argc : 256;
    for (int i = 0; i < n; i++) a2[i] = argv[i];
    a2[n] = "--threads", a2[n + 1] = "1";
    argv = a2, argc = n + 2;
  }
  ts_policy p;
  if (ts_cli_load_policy(argc, argv, &p)) return 1;
  ts_sampler probe = {.kind = TS_SAMPLER_SPEC, .steps = 1};
  ts_drafter_model dm;
  int rc = ts_cli_drafter(argc, argv, &p, &dm, &probe);
  ts_cost_model c;
  memset(&c, 0, sizeof c);
  if (!rc) {
    int n = p.horizon * p.act_dim, B = (int)maxb;
    float *x = malloc((size_t)B * n * sizeof(float)), *eps = malloc((size_t)B * n * sizeof(float));
    float *cond = malloc((size_t)B * p.cond_dim * sizeof(float));
    int *tt = malloc((size_t)B * sizeof(int));
    if (!x || !eps || !cond || !tt) abort();
    ts_rng r;
    ts_rng_init(&r, 1);
    ts_rng_fill_normal(&r, x, (int64_t)B * n);
    ts_rng_fill_normal(&r, cond, (int64_t)B * p.cond_dim);
    ts_denoiser_reserve(&p.target, B);
    c.n = B;
    c.threads = p.threads;
    for (int b = 1; b <= B; b++) c.target_ms[b] = time_eps(&p.target, b, p.sched.T, (int)reps, x, cond, eps, tt);
    if (probe.drafter && dm.drafter.net) { /* the x0 drafter alone makes no calls: 0 ms */
      ts_denoiser_reserve(dm.drafter.net, 1);
      c.drafter_ms = time_eps(dm.drafter.net, 1, p.sched.T, (int)reps * 3, x, cond, eps, tt);
    }
    free(x), free(eps), free(cond), free(tt);
    rc = ts_cost_save(&c, out);
  }
  if (!rc) {
    printf("cost model (%d thread%s, median of %ld calls): target ms by batch", c.threads, c.threads > 1 ? "s" : "", reps);
    for (int b = 1; b <= c.n; b++) printf(" %d:%.2f", b, c.target_ms[b]);
    printf("; drafter %.3f ms%s -> %s\n", c.drafter_ms, probe.drafter ? "" : " (frozen: none)", out);
  }
  ts_drafter_model_free(&dm);
  ts_policy_free(&p);
  return rc ? 1 : 0;
}
