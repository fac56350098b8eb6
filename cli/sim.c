/* tsdp sim reset | replay */
#include "cli.h"
#include "core/error.h"
#include "data/dataset.h"
#include "sim/pusht.h"
#include "sim/render.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sim_reset(int argc, char **argv) {
  static const char *const vals[] = {"--seed", "--png", NULL}, *const flags[] = {"--legacy", "--json", NULL};
  const ts_cli_args spec = {vals, flags, 0, 0, "tsdp sim reset --seed S --legacy [--png OUT.png] [--json]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  long seed;
  if (!ts_opt(argc, argv, "--seed") || !ts_has_flag(argc, argv, "--legacy"))
    return ts_fail("usage: tsdp sim reset --seed S --legacy [--png OUT.png] [--json] (only the legacy test-set reset exists)");
  if (ts_int_opt(argc, argv, "--seed", 0, 0, 1L << 30, &seed)) return -1;
  const ts_cli_file outs[] = {{"--png", ts_opt(argc, argv, "--png")}, {NULL, NULL}};
  if (ts_cli_files(NULL, outs)) return -1;
  ts_pusht_silence_banner();
  ts_pusht *e = ts_pusht_new();
  int rc = ts_pusht_reset_seed(e, (int)seed);
  if (!rc) {
    double st[5];
    ts_pusht_get_state(e, st);
    if (ts_has_flag(argc, argv, "--json"))
      printf("{\"seed\": %ld, \"state\": [%.10g, %.10g, %.10g, %.10g, %.10g], \"coverage\": %.6f}\n", seed, st[0], st[1],
             st[2], st[3], st[4], ts_pusht_coverage(e));
    else
      printf("seed %ld: agent (%.3f, %.3f) block (%.3f, %.3f) angle %.4f rad, coverage %.4f\n", seed, st[0], st[1], st[2],
             st[3], st[4], ts_pusht_coverage(e));
    const char *png = ts_opt(argc, argv, "--png");
    if (png) {
      uint8_t *rgb = malloc(512 * 512 * 3);
      if (!rgb) abort();
      ts_pusht_render(st, NULL, 512, rgb);
      rc = ts_png_write(png, 512, 512, rgb);
      free(rgb);
    }
  }
  ts_pusht_free(e);
  return rc ? 1 : 0;
}

static double score_of(double cov) { return cov / TS_PUSHT_SUCCESS > 1 ? 1 : cov / TS_PUSHT_SUCCESS; }

static double angle_diff(double a, double b) {
  double d = fmod(a - b, 2 * M_PI);
  if (d > M_PI) d -= 2 * M_PI;
  if (d < -M_PI) d += 2 * M_PI;
  return fabs(d);
}

/* Median of the non-negative entries (negative = not measured); -1 if none. Reorders x. */
static double median(double *x, int n) {
  int m = 0;
  for (int i = 0; i < n; i++)
    if (x[i] >= 0) x[m++] = x[i];
  return m ? ts_median(x, m) : -1;
}

typedef struct {
  int episode, steps;
  double rec_cov, rep_cov, rec_score, rep_score, pos_err[3], ang_err[3], max_pos_err;
} replay_row;

static const int AT[3] = {5, 10, 20};

static int replay_episode(const ts_dataset *d, int e, ts_pusht *env, ts_gif *gif, replay_row *row) {
  int64_t a = d->ep_start[e], T = d->ep_start[e + 1] - a;
  const float *S = d->obs + a * 5, *A = d->actions + a * 2;
  memset(row, 0, sizeof *row);
  row->episode = e;
  row->steps = (int)T;
  for (int k = 0; k < 3; k++) row->pos_err[k] = row->ang_err[k] = -1;
  double st[5] = {S[0], S[1], S[2], S[3], S[4]}, cov_rec = 0, cov_rep = 0;
  for (int64_t t = 0; t < T; t++) {
    double pose[3] = {S[t * 5 + 2], S[t * 5 + 3], S[t * 5 + 4]};
    cov_rec = fmax(cov_rec, ts_pusht_coverage_between(pose, ts_pusht_goal));
  }
  ts_pusht_set_state(env, st, 0);
  uint8_t *rgb = gif ? malloc(256 * 256 * 3) : NULL;
  for (int64_t t = 0; t < T; t++) {
    double act[2] = {A[t * 2], A[t * 2 + 1]};
    if (gif) {
      ts_pusht_get_state(env, st);
      ts_pusht_render(st, act, 256, rgb);
      if (ts_gif_frame(gif, rgb)) {
        free(rgb);
        return -1;
      }
    }
    ts_pusht_step(env, act);
    cov_rep = fmax(cov_rep, ts_pusht_coverage(env));
    if (t + 1 < T) {
      ts_pusht_get_state(env, st);
      const float *r = S + (t + 1) * 5;
      double pe = hypot(st[2] - r[2], st[3] - r[3]);
      row->max_pos_err = fmax(row->max_pos_err, pe);
      for (int k = 0; k < 3; k++)
        if (t + 1 == AT[k]) {
          row->pos_err[k] = pe;
          row->ang_err[k] = angle_diff(st[4], r[4]);
        }
    }
  }
  free(rgb);
  row->rec_cov = cov_rec;
  row->rep_cov = cov_rep;
  row->rec_score = score_of(cov_rec);
  row->rep_score = score_of(cov_rep);
  return 0;
}

static int sim_replay(int argc, char **argv) {
  static const char *const vals[] = {"--data", "--episode", "--gif", NULL}, *const flags[] = {"--json", NULL};
  const ts_cli_args spec = {vals, flags, 0, 0, "tsdp sim replay --data FILE.h5 [--episode N] [--gif OUT.gif] [--json]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  const char *path = ts_opt(argc, argv, "--data"), *ep = ts_opt(argc, argv, "--episode"), *gifp = ts_opt(argc, argv, "--gif");
  int json = ts_has_flag(argc, argv, "--json");
  if (!path) return ts_fail("usage: tsdp sim replay --data FILE.h5 [--episode N] [--gif OUT.gif] [--json]");
  const ts_cli_file ins[] = {{"--data", path}, {NULL, NULL}}, outs[] = {{"--gif", gifp}, {NULL, NULL}};
  if (ts_cli_files(ins, outs)) return 1;
  ts_dataset d;
  const char *keys[1] = {"state"};
  if (ts_dataset_load(path, keys, 1, &d)) return 1;
  if (d.obs_dim != 5 || d.act_dim != 2) {
    ts_dataset_free(&d);
    return ts_fail("%s: expected obs/state (T, 5) and actions (T, 2)", path);
  }
  int first = 0, last = d.n_episodes - 1;
  if (ep) {
    long e;
    if (ts_int_opt(argc, argv, "--episode", 0, 0, d.n_episodes - 1, &e)) {
      ts_dataset_free(&d);
      return -1;
    }
    first = last = (int)e;
  }
  ts_pusht_silence_banner();
  ts_pusht *env = ts_pusht_new();
  ts_gif *gif = gifp ? ts_gif_open(gifp, 256, 256, 10) : NULL;
  int n = last - first + 1, rc = gifp && !gif ? -1 : 0;
  replay_row *rows = calloc((size_t)n, sizeof *rows);
  double t0 = ts_now();
  for (int e = first; e <= last && !rc; e++) {
    rc = replay_episode(&d, e, env, e == first ? gif : NULL, &rows[e - first]);
    if (!json && n > 20 && ((e - first + 1) % 50 == 0 || e == last)) {
      double el = ts_now() - t0, rate = (e - first + 1) / el;
      fprintf(stderr, "replay %d/%d episodes, %.1f ep/s, ETA %.0f s\n", e - first + 1, n, rate, (last - e) / rate);
    }
  }
  if (gif) {
    if (rc) ts_gif_abort(gif);
    else rc = ts_gif_close(gif);
  }
  if (!rc) {
    double *tmp = malloc((size_t)n * sizeof(double)), rec = 0, rep = 0, med[3], maxe[3] = {0}, med_full, max_full = 0;
    double rec_cov = 0, rep_cov = 0, med_ang10;
    for (int i = 0; i < n; i++) {
      rec += rows[i].rec_score / n;
      rep += rows[i].rep_score / n;
      rec_cov += rows[i].rec_cov / n;
      rep_cov += rows[i].rep_cov / n;
      tmp[i] = rows[i].ang_err[1];
    }
    med_ang10 = median(tmp, n);
    for (int k = 0; k < 3; k++) {
      for (int i = 0; i < n; i++) {
        tmp[i] = rows[i].pos_err[k];
        maxe[k] = fmax(maxe[k], tmp[i]);
      }
      med[k] = median(tmp, n);
    }
    for (int i = 0; i < n; i++) {
      tmp[i] = rows[i].max_pos_err;
      max_full = fmax(max_full, tmp[i]);
    }
    med_full = median(tmp, n);
    free(tmp);
    if (json) {
      printf("{\"summary\": {\"episodes\": %d, \"mean_max_recorded_score\": %.6f, \"mean_max_replayed_score\": %.6f, "
             "\"mean_max_recorded_coverage\": %.6f, \"mean_max_replayed_coverage\": %.6f, "
             "\"block_pos_err_px_at_5\": %.6g, \"block_pos_err_px_at_10\": %.6g, \"block_pos_err_px_at_20\": %.6g, "
             "\"block_angle_err_rad_at_10\": %.6g, "
             "\"max_block_pos_err_px_at_20\": %.6g, \"median_episode_max_pos_err_px\": %.6g, \"max_episode_max_pos_err_px\": %.6g}, "
             "\"episodes\": [",
             n, rec, rep, rec_cov, rep_cov, med[0], med[1], med[2], med_ang10, maxe[2], med_full, max_full);
      for (int i = 0; i < n; i++) {
        replay_row *r = &rows[i];
        printf("%s{\"episode\": %d, \"steps\": %d, \"max_recorded_coverage\": %.6f, \"max_replayed_coverage\": %.6f, "
               "\"max_recorded_score\": %.6f, \"max_replayed_score\": %.6f, "
               "\"pos_err_px\": [%.6g, %.6g, %.6g], \"angle_err_rad\": [%.6g, %.6g, %.6g], \"max_pos_err_px\": %.6g}",
               i ? ", " : "", r->episode, r->steps, r->rec_cov, r->rep_cov, r->rec_score, r->rep_score, r->pos_err[0], r->pos_err[1], r->pos_err[2],
               r->ang_err[0], r->ang_err[1], r->ang_err[2], r->max_pos_err);
      }
      printf("]}\n");
    } else {
      if (n <= 20)
        for (int i = 0; i < n; i++)
          printf("episode %3d (%3d steps): max score recorded %.4f replayed %.4f; block pos err after 5/10/20 steps "
                 "%.4g / %.4g / %.4g px, max over episode %.4g px\n",
                 rows[i].episode, rows[i].steps, rows[i].rec_score, rows[i].rep_score, rows[i].pos_err[0],
                 rows[i].pos_err[1], rows[i].pos_err[2], rows[i].max_pos_err);
      printf("%d episodes: mean max score recorded %.4f, replayed %.4f (mean max coverage %.4f / %.4f)\n", n, rec, rep,
             rec_cov, rep_cov);
      printf("block position error, median over episodes: %.4g px after 5 steps, %.4g after 10, %.4g after 20 "
             "(worst episode at 20: %.4g px)\n", med[0], med[1], med[2], maxe[2]);
      printf("max error over whole episodes: median %.4g px, worst %.4g px\n", med_full, max_full);
      if (gifp) printf("wrote %s (episode %d)\n", gifp, first);
    }
  }
  free(rows);
  ts_pusht_free(env);
  ts_dataset_free(&d);
  return rc ? 1 : 0;
}

int ts_cmd_sim(int argc, char **argv) {
  if (argc >= 1 && strcmp(argv[0], "reset") == 0) return sim_reset(argc - 1, argv + 1);
  if (argc >= 1 && strcmp(argv[0], "replay") == 0) return sim_replay(argc - 1, argv + 1);
  return ts_fail("usage: tsdp sim reset --seed S --legacy [--json] | tsdp sim replay --data FILE.h5 [...]");
}
