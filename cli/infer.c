/* tsdp eval | sample | forward: everything that runs a trained checkpoint. */
#include "cli.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/h5io.h"
#include "data/dataset.h"
#include "infer/drafter.h"
#include "infer/policy.h"
#include "infer/rollout.h"
#include "infer/spec.h"
#include "rl/sched.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ts_cli_load_policy(int argc, char **argv, ts_policy *p) {
  const char *ck = ts_opt(argc, argv, "--ckpt");
  if (!ck) return ts_fail("--ckpt CKPT.h5 is required");
  long th;
  if (ts_int_opt(argc, argv, "--threads", ts_dist_default_threads(), 1, 256, &th)) return -1;
  ts_set_threads((int)th);
  if (ts_policy_load(p, ck, ts_has_flag(argc, argv, "--raw-weights") ? "model" : "ema")) return -1;
  ts_policy_set_threads(p, (int)th);
  return 0;
}

/* Options that only one kind of sampler reads are refused with another (they would be
 * ignored): --block, --drafter and --scheduler are the spec sampler's, --steps is not. */
static int sampler_only_opts(int argc, char **argv, int kind) {
  const char *name = ts_sampler_names[kind];
  if (kind != TS_SAMPLER_SPEC) {
    static const char *const spec_only[] = {"--block", "--drafter", "--scheduler"};
    for (int i = 0; i < 3; i++)
      if (ts_opt(argc, argv, spec_only[i]))
        return ts_fail("%s: only the spec sampler reads it (--sampler spec), not %s", spec_only[i], name);
  } else if (ts_opt(argc, argv, "--steps")) {
    return ts_fail("--steps: the spec sampler runs every diffusion step (its rounds draft --block L steps); --steps is for ddim");
  }
  return 0;
}

/* --sampler NAME (default dflt), parsed once, with --steps (ddim inference steps) or --block
 * (spec: drafted steps per round) into *s. */
static int cli_sampler(int argc, char **argv, const ts_policy *p, int dflt, ts_sampler *s) {
  const char *name = ts_opt(argc, argv, "--sampler");
  int kind = name ? ts_enum_parse(ts_sampler_names, name, "--sampler") : dflt, T = p->cfg.diffusion.num_train_timesteps;
  if (kind < 0 || sampler_only_opts(argc, argv, kind)) return -1;
  long steps;
  int rc = kind == TS_SAMPLER_SPEC ? ts_int_opt(argc, argv, "--block", 4, 1, TS_SPEC_MAX_BLOCK, &steps)
                                   : ts_int_opt(argc, argv, "--steps", kind == TS_SAMPLER_DDIM ? p->cfg.eval.steps : T,
                                                1, T, &steps);
  *s = (ts_sampler){.kind = (ts_sampler_kind)kind, .steps = (int)steps};
  return rc;
}

int ts_cli_drafter(int argc, char **argv, const ts_policy *p, ts_drafter_model *dm, ts_sampler *s) {
  memset(dm, 0, sizeof *dm);
  const char *name = ts_opt(argc, argv, "--drafter");
  if (!name || !strcmp(name, "frozen")) return 0;
  if (s->kind != TS_SAMPLER_SPEC) return ts_fail("--drafter: only the spec sampler drafts (--sampler spec)");
  if (ts_drafter_load(dm, name, ts_opt(argc, argv, "--ckpt"), p)) return -1;
  s->drafter = &dm->drafter;
  return 0;
}

/* Per chunk: rounds (target rounds), sequential target and drafter calls, drafts accepted,
 * checked and drafted; acceptance = accepted / checked (ts_spec_checked); with a LOSSY
 * scheduler, the drafts kept only by its tolerance. */
static void print_spec(const ts_spec_stats *s, const ts_policy *p, const ts_sampler *smp, int json) {
  if (!s->chunks) return;
  long checked = ts_spec_checked(s);
  double acc = checked ? (double)s->accepted / checked : 0, calls = (double)s->target_calls / s->chunks;
  double k = (double)s->chunks, dcalls = s->drafter_calls / k;
  const char *dr = ts_drafter_label(smp->drafter);
  if (json)
    printf("\"drafter\": \"%s\", \"acceptance\": %.4f, \"target_calls_per_chunk\": %.2f, \"rounds_per_chunk\": %.2f, "
           "\"drafter_calls_per_chunk\": %.2f, \"accepted_per_chunk\": %.2f, \"checked_per_chunk\": %.2f, "
           "\"drafted_per_chunk\": %.2f, ",
           dr, acc, calls, s->rounds / k, dcalls, s->accepted / k, checked / k, s->drafted / k);
  if (json && ts_block_lossy(smp->blocks)) printf("\"relaxed_per_chunk\": %.3f, ", s->relaxed / k);
  if (json) return;
  printf("speculative (%s drafter): per chunk %.1f rounds, %.1f sequential target calls (DDPM: %d), %.1f drafter calls, "
           "%.1f / %.1f checked drafts accepted (%.1f%%; %.1f drafted)\n", dr, s->rounds / k, calls, p->sched.T, dcalls,
           s->accepted / k, checked / k, 100 * acc, s->drafted / k);
  if (ts_block_lossy(smp->blocks))
    printf("LOSSY: %.2f accepted drafts per chunk were kept by the scheduler's tolerance, not by the exact test\n",
           s->relaxed / k);
}

static const char *const POLICY_FLAGS[] = {"--json", "--raw-weights", "--overlap", NULL};

/* --overlap: the spec sampler's learned drafter drafts the next round on a second thread while
 * the target verifies (ts_spec_set_overlap); refused where it would do nothing. */
static int cli_overlap(int argc, char **argv, ts_sampler *s) {
  if (!ts_has_flag(argc, argv, "--overlap")) return 0;
  if (s->kind != TS_SAMPLER_SPEC || !s->drafter || s->drafter->frozen || s->drafter->x0)
    return ts_fail("--overlap: overlapped drafting needs the spec sampler with a learned --drafter (the frozen and x0 "
                   "drafters make no drafter calls to overlap)");
  s->overlap = 1;
  return 0;
}

int ts_cmd_eval(int argc, char **argv) {
  static const char *const vals[] = {"--ckpt", "--threads", "--episodes", "--seed-start", "--sampler", "--steps", "--block",
                                     "--seed", "--gif", "--gif-count", "--drafter", "--scheduler", NULL};
  const ts_cli_args spec = {vals, POLICY_FLAGS, 0, 0,
                            "tsdp eval --ckpt CKPT.h5 [--episodes 50] [--sampler ddpm|ddim|spec] [--steps N | --block L] "
                            "[--seed-start S] [--seed S] [--drafter DRAFTER.h5|frozen|x0] [--scheduler SCHED.h5] [--gif DIR] [--gif-count N] "
                            "[--threads T] [--overlap] [--raw-weights] [--json]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  ts_policy p;
  if (ts_cli_load_policy(argc, argv, &p)) return 1;
  long eps, start, seed, ngif;
  ts_sampler smp = {.kind = TS_SAMPLER_DDPM};
  int rc = ts_int_opt(argc, argv, "--episodes", p.cfg.eval.episodes, 1, 1024, &eps) ||
           ts_int_opt(argc, argv, "--seed-start", p.cfg.eval.seed_start, 0, 1L << 30, &start) ||
           cli_sampler(argc, argv, &p, p.cfg.eval.sampler, &smp) ||
           ts_int_opt(argc, argv, "--seed", 0, 0, 1L << 30, &seed) || ts_int_opt(argc, argv, "--gif-count", 4, 0, 1024, &ngif);
  ts_drafter_model dm;
  ts_sched_model sm;
  memset(&sm, 0, sizeof sm);
  if (!rc) rc = ts_cli_drafter(argc, argv, &p, &dm, &smp); /* dm is empty unless it succeeded */
  else memset(&dm, 0, sizeof dm);
  if (!rc) rc = cli_overlap(argc, argv, &smp);
  if (!rc) rc = ts_cli_scheduler(argc, argv, &p, &dm, &smp, &sm);
  const char *gif = ts_opt(argc, argv, "--gif");
  if (!rc && !gif && ts_opt(argc, argv, "--gif-count")) rc = ts_fail("--gif-count: only with --gif DIR (it counts the GIFs written there)");
  struct stat gst;
  if (!rc && gif && stat(gif, &gst) == 0 && !S_ISDIR(gst.st_mode)) rc = ts_fail("--gif %s: is not a folder", gif);
  if (!rc && gif && mkdir(gif, 0755) != 0 && access(gif, W_OK) != 0) rc = ts_fail("%s: cannot create folder", gif);
  for (long i = 0; !rc && gif && i < eps && i < ngif; i++) { /* the GIFs it will write: regular files, not an input */
    char path[1100];
    snprintf(path, sizeof path, "%s/seed_%ld.gif", gif, start + i);
    const ts_cli_file ins[] = {{"--ckpt", ts_opt(argc, argv, "--ckpt")}, {"--drafter", ts_opt(argc, argv, "--drafter")},
                               {"--scheduler", ts_opt(argc, argv, "--scheduler")}, {NULL, NULL}},
                      outs[] = {{"--gif", path}, {NULL, NULL}};
    rc = ts_cli_files(ins, outs);
  }
  int json = ts_has_flag(argc, argv, "--json");
  ts_eval_result r;
  if (!rc) {
    ts_eval_opts o = {.episodes = (int)eps, .seed_start = (int)start, .seed = (uint64_t)seed, .gif_dir = gif,
                      .gif_count = (int)ngif, .quiet = json, .split = 1};
    rc = ts_eval_pusht(&p, &smp, &o, &r);
  }
  if (!rc) {
    if (json) {
      printf("{\"episodes\": %d, \"seed_start\": %ld, \"sampler\": \"%s\", \"steps\": %ld, \"scheduler\": \"%s\", "
             "\"lossy\": %s, \"mean_score\": %.6f, \"success_rate\": %.6f, \"ms_per_chunk\": %.3f, \"chunks_per_s\": %.3f, "
             "\"ms_per_call\": %.3f, ", r.episodes, start, ts_sampler_names[smp.kind], (long)smp.steps,
             smp.blocks ? smp.blocks->name : "none", ts_block_lossy(smp.blocks) ? "true" : "false", r.mean_score,
             r.success_rate, r.ms_per_chunk, r.chunks_per_s, r.ms_per_call);
      print_spec(&r.spec, &p, &smp, 1);
      printf("\"chunks\": %ld, \"scores\": [", r.chunks);
      for (int i = 0; i < r.episodes; i++) printf("%s%.4f", i ? ", " : "", r.scores[i]);
      printf("]}\n");
    } else {
      printf("%s-%d%s on %d legacy seeds from %ld: mean score %.4f, success rate %.3f\n", ts_sampler_names[smp.kind],
             smp.steps, !smp.blocks ? "" : ts_block_lossy(smp.blocks)
                 ? " (LOSSY rl block scheduler with acceptance tolerances: not DDPM's law)" : " (rl block scheduler, L up to the block)",
             r.episodes, start, r.mean_score, r.success_rate);
      printf("sampling: %ld chunks in %ld batched calls, %.2f ms per chunk (amortised), %.1f chunks/s, %.1f ms per call\n",
             r.chunks, r.calls, r.ms_per_chunk, r.chunks_per_s, r.ms_per_call);
      print_spec(&r.spec, &p, &smp, 0);
      if (gif) printf("GIFs of the first %ld episodes in %s/\n", ngif < eps ? ngif : eps, gif);
    }
  }
  ts_sched_model_free(&sm);
  ts_drafter_model_free(&dm);
  ts_policy_free(&p);
  return rc ? 1 : 0;
}

/* The raw observation history (n_obs_steps frames ending at global step idx, edge-padded at
 * the start of its episode); returns idx's control step within its episode. */
long ts_cli_obs_history(const ts_dataset *d, const ts_policy *p, long idx, float *out) {
  int e = ts_dataset_episode_of(d, idx);
  int No = p->cfg.data.n_obs_steps;
  for (int k = 0; k < No; k++) {
    long t = idx - (No - 1 - k);
    if (t < d->ep_start[e]) t = d->ep_start[e];
    memcpy(out + (size_t)k * d->obs_dim, d->obs + (size_t)t * d->obs_dim, (size_t)d->obs_dim * sizeof(float));
  }
  return idx - (long)d->ep_start[e];
}

int ts_cmd_sample(int argc, char **argv) {
  static const char *const vals[] = {"--ckpt", "--threads", "--data", "--index", "--n", "--sampler", "--steps", "--block",
                                     "--seed", "--drafter", "--out", NULL};
  const ts_cli_args spec = {vals, POLICY_FLAGS, 0, 0,
                            "tsdp sample --ckpt C --data D.h5 --index I --n N --sampler ddpm|ddim|spec [--steps K | --block L] "
                            "[--drafter DRAFTER.h5|frozen|x0] [--overlap] --seed S --out OUT.h5 [--threads T] [--raw-weights] [--json]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  const char *data = ts_opt(argc, argv, "--data"), *out = ts_opt(argc, argv, "--out");
  if (!data || !out)
    return ts_fail("usage: tsdp sample --ckpt C --data D.h5 --index I --n N --sampler ddpm|ddim|spec [--steps K | --block L] "
                   "[--drafter DRAFTER.h5|frozen|x0] --seed S --out OUT.h5 [--json]");
  const ts_cli_file ins[] = {{"--ckpt", ts_opt(argc, argv, "--ckpt")}, {"--data", data}, {"--drafter", ts_opt(argc, argv, "--drafter")},
                             {NULL, NULL}},
                    outs[] = {{"--out", out}, {NULL, NULL}};
  if (ts_cli_files(ins, outs)) return 1;
  ts_policy p;
  if (ts_cli_load_policy(argc, argv, &p)) return 1;
  long idx, n, seed;
  ts_sampler smp = {.kind = TS_SAMPLER_DDPM};
  int rc = ts_int_opt(argc, argv, "--index", 0, 0, 1L << 40, &idx) || ts_int_opt(argc, argv, "--n", 100, 1, 1L << 24, &n) ||
           cli_sampler(argc, argv, &p, TS_SAMPLER_DDPM, &smp) ||
           ts_int_opt(argc, argv, "--seed", 0, 0, 1L << 40, &seed);
  ts_drafter_model dm;
  if (!rc) rc = ts_cli_drafter(argc, argv, &p, &dm, &smp); /* dm is empty unless it succeeded */
  else memset(&dm, 0, sizeof dm);
  if (!rc) rc = cli_overlap(argc, argv, &smp);
  /* The speculative sampler's work space, kept over all chunks for its counters. */
  if (!rc && smp.kind == TS_SAMPLER_SPEC && !(smp.spec = ts_spec_new(&p.target, &p.sched, smp.steps))) rc = -1;
  ts_dataset d;
  memset(&d, 0, sizeof d);
  const char *keys[TS_CFG_MAXKEYS];
  for (int i = 0; i < p.cfg.data.n_obs_keys; i++) keys[i] = p.cfg.data.obs_keys[i];
  if (!rc) rc = ts_dataset_load(data, keys, p.cfg.data.n_obs_keys, &d);
  if (!rc && d.obs_dim != p.obs_dim) rc = ts_fail("%s: obs width %d, checkpoint expects %d", data, d.obs_dim, p.obs_dim);
  if (!rc && idx >= d.n_steps) rc = ts_fail("--index %ld: the dataset has %lld steps", idx, (long long)d.n_steps);
  float *acts = NULL, *cond = malloc((size_t)p.cond_dim * sizeof(float)), *raw = malloc((size_t)p.cond_dim * sizeof(float));
  if (!cond || !raw) abort();
  if (!rc) {
    const int CH = 256;
    int No = p.cfg.data.n_obs_steps, per = p.horizon * p.act_dim;
    float *hist = malloc((size_t)CH * No * p.obs_dim * sizeof(float));
    acts = malloc((size_t)n * per * sizeof(float));
    if (!hist || !acts) abort();
    smp.control_step = ts_cli_obs_history(&d, &p, idx, hist);
    memcpy(raw, hist, (size_t)p.cond_dim * sizeof(float));
    ts_policy_make_cond(&p, raw, 1, cond);
    for (int b = 1; b < CH; b++) memcpy(hist + (size_t)b * No * p.obs_dim, hist, (size_t)No * p.obs_dim * sizeof(float));
    ts_rng rng;
    ts_rng_init(&rng, (uint64_t)seed);
    for (long done = 0; done < n && !rc; done += CH) {
      int B = (int)(n - done < CH ? n - done : CH);
      rc = ts_policy_sample(&p, hist, B, &smp, &rng, acts + (size_t)done * per);
    }
    free(hist);
  }
  if (!rc) {
    ts_h5 *f = ts_h5_create(out);
    int64_t dims[3] = {n, p.horizon, p.act_dim};
    int64_t od[2] = {p.cfg.data.n_obs_steps, p.obs_dim}, cd[1] = {p.cond_dim};
    rc = !f || ts_h5_write_f32(f, "actions", acts, 3, dims) || ts_h5_write_f32(f, "obs", raw, 2, od) ||
         ts_h5_write_f32(f, "cond", cond, 1, cd) || ts_h5_attr_i64(f, "/", "index", idx) ||
         ts_h5_attr_str(f, "/", "sampler", ts_sampler_names[smp.kind]) || ts_h5_attr_i64(f, "/", "steps", smp.steps) ||
         ts_h5_attr_i64(f, "/", "seed", seed) ||
         ts_h5_attr_str(f, "/", "drafter", smp.drafter ? ts_opt(argc, argv, "--drafter") : "frozen");
    if (f) {
      if (rc) ts_h5_close(f);
      else rc = ts_h5_commit(f);
    }
    int json = ts_has_flag(argc, argv, "--json");
    if (!rc && json) {
      printf("{\"chunks\": %ld, \"index\": %ld, \"sampler\": \"%s\", \"steps\": %d, ", n, idx, ts_sampler_names[smp.kind],
             smp.steps);
      if (smp.spec) print_spec(ts_spec_stats_of(smp.spec), &p, &smp, 1);
      printf("\"out\": \"%s\"}\n", out);
    } else if (!rc) {
      printf("wrote %ld chunks (%d, %d) for index %ld to %s\n", n, p.horizon, p.act_dim, idx, out);
      if (smp.spec) print_spec(ts_spec_stats_of(smp.spec), &p, &smp, 0);
    }
  }
  ts_spec_free(smp.spec);
  ts_drafter_model_free(&dm);
  free(acts);
  free(cond);
  free(raw);
  ts_dataset_free(&d);
  ts_policy_free(&p);
  return rc ? 1 : 0;
}

int ts_cmd_forward(int argc, char **argv) {
  static const char *const vals[] = {"--ckpt", "--threads", "--in", "--out", NULL}, *const flags[] = {"--raw-weights", NULL};
  const ts_cli_args spec = {vals, flags, 0, 0, "tsdp forward --ckpt C --in IN.h5 --out OUT.h5 [--threads T] [--raw-weights]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  const char *in = ts_opt(argc, argv, "--in"), *out = ts_opt(argc, argv, "--out");
  if (!in || !out) return ts_fail("usage: tsdp forward --ckpt C --in IN.h5 --out OUT.h5");
  const ts_cli_file ins[] = {{"--ckpt", ts_opt(argc, argv, "--ckpt")}, {"--in", in}, {NULL, NULL}},
                    outs[] = {{"--out", out}, {NULL, NULL}};
  if (ts_cli_files(ins, outs)) return 1;
  ts_policy p;
  if (ts_cli_load_policy(argc, argv, &p)) return 1;
  ts_h5 *f = ts_h5_open(in);
  int rc = f ? 0 : -1, ndx = 0, ndt = 0, ndc = 0;
  int64_t dx[TS_MAXDIM], dt[TS_MAXDIM], dc[TS_MAXDIM];
  float *x = NULL, *t = NULL, *c = NULL, *eps = NULL;
  if (!rc) {
    x = ts_h5_read_f32(f, "x", &ndx, dx);
    t = x ? ts_h5_read_f32(f, "t", &ndt, dt) : NULL;
    c = t ? ts_h5_read_f32(f, "cond", &ndc, dc) : NULL;
    if (!c) rc = -1;
    ts_h5_close(f);
  }
  if (!rc) {
    long B = dx[0];
    if (ndx != 3 || dx[1] != p.horizon || dx[2] != p.act_dim || ndt != 1 || dt[0] != B || ndc != 2 || dc[0] != B ||
        dc[1] != p.cond_dim)
      rc = ts_fail("%s: expected x (B, %d, %d), t (B), cond (B, %d)", in, p.horizon, p.act_dim, p.cond_dim);
    for (long b = 0; !rc && b < B; b++)
      if (!(t[b] >= 0 && t[b] < p.sched.T) || t[b] != floorf(t[b]))
        rc = ts_fail("%s: t[%ld] = %g is not an integer step in 0..%d", in, b, t[b], p.sched.T - 1);
    for (long i = 0; !rc && i < B * p.horizon * p.act_dim; i++)
      if (!isfinite(x[i])) rc = ts_fail("%s: x holds NaN or Inf", in);
    for (long i = 0; !rc && i < B * p.cond_dim; i++)
      if (!isfinite(c[i])) rc = ts_fail("%s: cond holds NaN or Inf", in);
    if (!rc) {
      int *ti = malloc((size_t)B * sizeof(int));
      eps = malloc((size_t)B * p.horizon * p.act_dim * sizeof(float));
      for (long b = 0; b < B; b++) ti[b] = (int)t[b];
      for (long b0 = 0; b0 < B; b0 += 256) { /* bounded engine buffers for any B */
        long nb = B - b0 < 256 ? B - b0 : 256, sx = (long)p.horizon * p.act_dim;
        ts_policy_eps(&p, x + b0 * sx, ti + b0, c + b0 * p.cond_dim, (int)nb, eps + b0 * sx);
      }
      free(ti);
      ts_h5 *o = ts_h5_create(out);
      rc = !o || ts_h5_write_f32(o, "eps", eps, 3, dx);
      if (o) {
        if (rc) ts_h5_close(o);
        else rc = ts_h5_commit(o);
      }
    }
  }
  free(x);
  free(t);
  free(c);
  free(eps);
  ts_policy_free(&p);
  return rc ? 1 : 0;
}
