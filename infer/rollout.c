#include "rollout.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/timer.h"
#include "sim/pusht.h"
#include "sim/render.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The simulator's observation keys (the importer's names) and their widths. */
enum { OBS_KEYPOINT, OBS_AGENT_POS, OBS_STATE, OBS_KINDS };
static const char *const obs_names[OBS_KINDS] = {"keypoint", "agent_pos", "state"};
static const int obs_width[OBS_KINDS] = {18, 2, 5};

/* The checkpoint's obs keys as simulator observations, in its order; refuses a key the
 * simulator cannot produce and a total width other than the policy's. */
static int obs_layout(const ts_config *c, int obs_dim, int *kind) {
  int w = 0, nk = c->data.n_obs_keys;
  for (int k = 0; k < nk; k++) {
    const char *name = c->data.obs_keys[k];
    kind[k] = -1;
    for (int j = 0; j < OBS_KINDS; j++)
      if (!strcmp(name, obs_names[j]) || (j == OBS_KEYPOINT && !strcmp(name, "keypoint_recorded"))) kind[k] = j;
    if (kind[k] < 0) return ts_fail("obs key '%s' is not a Push-T simulator observation (keypoint, agent_pos, state)", name);
    w += obs_width[kind[k]];
  }
  if (w != obs_dim) return ts_fail("the checkpoint's policy has %d obs dims; its obs keys give %d on Push-T", obs_dim, w);
  return 0;
}

/* One observation of env e, the keys in the checkpoint's order. */
static void env_obs(const ts_pusht *e, const int *kind, int nk, float *out) {
  float ka[TS_PUSHT_OBS_DIM]; /* 9 keypoints then the agent */
  double st[5];
  ts_pusht_get_obs(e, ka);
  ts_pusht_get_state(e, st);
  for (int k = 0; k < nk; k++) {
    if (kind[k] == OBS_KEYPOINT) memcpy(out, ka, 18 * sizeof(float));
    else if (kind[k] == OBS_AGENT_POS) memcpy(out, ka + 18, 2 * sizeof(float));
    else
      for (int j = 0; j < 5; j++) out[j] = (float)st[j];
    out += obs_width[kind[k]];
  }
}

int ts_pusht_policy_obs(const ts_config *c, int obs_dim, const ts_pusht *e, float *out) {
  int kind[TS_CFG_MAXKEYS];
  if (obs_layout(c, obs_dim, kind)) return -1;
  env_obs(e, kind, c->data.n_obs_keys, out);
  return 0;
}

int ts_eval_pusht(ts_policy *p, const ts_sampler *s, const ts_eval_opts *o, ts_eval_result *r) {
  memset(r, 0, sizeof *r);
  int n_all = o->episodes, No = p->cfg.data.n_obs_steps, Na = p->cfg.data.n_action_steps, H = p->horizon;
  int Od = p->obs_dim, A = p->act_dim, kind[TS_CFG_MAXKEYS], nk = p->cfg.data.n_obs_keys;
  if (n_all <= 0 || n_all > 1024) return ts_fail("episodes must be in 1..1024");
  if (obs_layout(&p->cfg, Od, kind)) return -1;
  if (A != 2) return ts_fail("the checkpoint's policy has %d action dims; Push-T needs 2", A);
  if (ts_sampler_check(s, p)) return -1;
  ts_sampler smp = *s;
  /* This rank's episodes [lo, lo + n) of n_all (all of them unless split) */
  int split = o->split && ts_dist_size() > 1 && n_all >= ts_dist_size() && smp.kind != TS_SAMPLER_SPEC;
  int n = n_all, lo = 0;
  uint8_t *done_all = NULL;
  if (split) {
    int64_t a, b;
    ts_dist_split(n_all, ts_dist_rank(), ts_dist_size(), &a, &b);
    lo = (int)a;
    n = (int)(b - a);
    if (!(done_all = malloc((size_t)n_all))) abort();
  }
  int quiet = o->quiet || (o->split && ts_dist_rank() > 0);
  ts_spec *own = NULL;
  if (smp.kind == TS_SAMPLER_SPEC && !smp.spec &&
      !(smp.spec = own = ts_spec_new(smp.target ? smp.target : &p->target, &p->sched, smp.steps)))
    return -1;
  ts_spec_stats spec0 = {0};
  if (smp.spec) spec0 = *ts_spec_stats_of(smp.spec);
  ts_pusht_silence_banner();
  ts_pusht_vec *v = ts_pusht_vec_new(n);
  int *seeds = malloc((size_t)n * sizeof(int)), *active = malloc((size_t)n * sizeof(int));
  float *hist = malloc((size_t)n * No * Od * sizeof(float)), *obs = malloc((size_t)n * No * Od * sizeof(float));
  float *acts = malloc((size_t)n * H * A * sizeof(float)), cur[TS_CFG_MAXKEYS * 18];
  double *step_act = calloc((size_t)n * 2, sizeof(double));
  uint8_t *rgb = o->gif_dir ? malloc(256 * 256 * 3) : NULL;
  ts_gif **gifs = calloc((size_t)n, sizeof *gifs);
  if (!seeds || !active || !hist || !obs || !acts || !step_act || !gifs) abort();
  for (int i = 0; i < n; i++) seeds[i] = o->seed_start + lo + i;
  int rc = ts_pusht_vec_reset_seeds(v, seeds);
  for (int i = 0; i < n && !rc; i++) {
    env_obs(v->envs[i], kind, nk, cur);
    ts_policy_push_obs(p, hist + (size_t)i * No * Od, cur, 1);
    if (o->gif_dir && lo + i < o->gif_count) {
      char path[1024];
      snprintf(path, sizeof path, "%s/seed_%d.gif", o->gif_dir, seeds[i]);
      if (!(gifs[i] = ts_gif_open(path, 256, 256, 10))) rc = -1;
    }
  }
  ts_rng rng;
  ts_rng_init(&rng, o->seed);
  double t_start = ts_now(), t_report = t_start;
  int control_step = 0;
  while (!rc || split) { /* split: a failure is shared at the next exchange, so no rank waits alone */
    int B = 0;
    for (int i = 0; i < n; i++)
      if (!v->done[i]) {
        memcpy(obs + (size_t)B * No * Od, hist + (size_t)i * No * Od, (size_t)No * Od * sizeof(float));
        active[B++] = i;
      }
    if (split) { /* the whole batch: which episodes every rank still runs, and where this rank's rows sit */
      int failed = 0;
      for (int i = 0; i < n; i++) done_all[lo + i] = (uint8_t)(rc ? 2 : v->done[i] != 0);
      ts_dist_allgather_split(done_all, n_all, 1);
      smp.batch_rows = smp.batch_row0 = 0;
      for (int i = 0; i < n_all; i++) {
        failed |= done_all[i] == 2;
        smp.batch_rows += !done_all[i];
        smp.batch_row0 += !done_all[i] && i < lo;
      }
      if (failed && !rc) rc = ts_fail("evaluation failed on another rank");
      if (failed || smp.batch_rows == 0) break;
    } else if (B == 0) break;
    for (int b = 0; b < B && o->on_chunk && !rc; b++)
      if (o->on_chunk(o->user, active[b], control_step, obs + (size_t)b * No * Od)) rc = -1;
    if (rc) continue; /* split: the failure is shared at the next exchange; else the loop ends */
    smp.control_step = control_step;
    double t0 = ts_now();
    if ((rc = ts_policy_sample(p, obs, B, &smp, &rng, acts))) continue;
    r->sample_seconds += ts_now() - t0;
    r->chunks += B;
    r->calls++;
    for (int k = 0; k < Na; k++) {
      for (int b = 0; b < B; b++) {
        const float *a = acts + ((size_t)b * H + (No - 1 + k)) * A;
        step_act[2 * active[b]] = a[0];
        step_act[2 * active[b] + 1] = a[1];
        int i = active[b];
        if (gifs[i] && !v->done[i]) {
          double st[5];
          ts_pusht_get_state(v->envs[i], st);
          ts_pusht_render(st, step_act + 2 * i, 256, rgb);
          if (ts_gif_frame(gifs[i], rgb)) rc = -1;
        }
      }
      ts_pusht_vec_step(v, step_act);
      control_step++;
      for (int b = 0; b < B; b++) {
        int i = active[b];
        env_obs(v->envs[i], kind, nk, cur);
        ts_policy_push_obs(p, hist + (size_t)i * No * Od, cur, 0);
      }
    }
    if (!quiet && ts_now() - t_report > 10) {
      int left = 0;
      for (int i = 0; i < n; i++) left += !v->done[i];
      t_report = ts_now();
      fprintf(stderr, "eval: %ld chunks, %d/%d episodes running%s, %.0f s elapsed, %.1f chunks/s\n", r->chunks, left, n,
              split ? " on rank 0" : "",
              t_report - t_start, r->chunks / r->sample_seconds);
    }
  }
  for (int i = 0; i < n; i++) {
    r->scores[lo + i] = v->score[i];
    r->success[lo + i] = v->score[i] >= 1.0; /* reward 1 <=> coverage >= 0.95 reached */
  }
  if (split && !rc) {
    ts_dist_allgather_split(r->scores, n_all, sizeof r->scores[0]);
    ts_dist_allgather_split(r->success, n_all, sizeof r->success[0]);
    double ch = (double)r->chunks;
    ts_dist_allreduce_sum_d(&ch, 1);
    r->chunks = (long)ch;
  }
  for (int i = 0; i < n_all; i++) {
    r->mean_score += r->scores[i] / n_all;
    r->success_rate += (double)r->success[i] / n_all;
  }
  for (int i = 0; i < n; i++) {
    if (gifs[i]) {
      if (rc) ts_gif_abort(gifs[i]);
      else if (ts_gif_close(gifs[i])) rc = -1;
    }
  }
  if (smp.spec) {
    ts_spec_stats_add(&r->spec, ts_spec_stats_of(smp.spec), &spec0, -1); /* this evaluation's counters */
  }
  ts_spec_free(own);
  r->episodes = n_all;
  r->ms_per_chunk = r->chunks ? 1e3 * r->sample_seconds / r->chunks : 0;
  r->chunks_per_s = r->sample_seconds > 0 ? r->chunks / r->sample_seconds : 0;
  r->ms_per_call = r->calls ? 1e3 * r->sample_seconds / r->calls : 0;
  free(seeds);
  free(active);
  free(hist);
  free(obs);
  free(acts);
  free(step_act);
  free(rgb);
  free(gifs);
  free(done_all);
  ts_pusht_vec_free(v);
  return rc ? -1 : 0;
}
