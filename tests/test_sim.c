/* Push-T: coverage, PD rule, resets, replay fidelity on the real data, rendering. */
#include "tests.h"
#include "core/error.h"
#include "data/dataset.h"
#include "sim/pusht.h"
#include "sim/render.h"
#include <gif_lib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_coverage_hand_cases) {
  double g[3] = {256, 256, M_PI / 4};
  ck_assert_double_eq_tol(ts_pusht_coverage_between(g, g), 1.0, 1e-12);
  double far[3] = {50, 50, 0};
  ck_assert_double_eq_tol(ts_pusht_coverage_between(far, g), 0.0, 1e-12);
  /* Shift by 10 along the bar: bar overlap 110 x 30, stem 20 x 90, T area 6300. */
  double a[3] = {0, 0, 0}, bx[3] = {10, 0, 0}, by[3] = {0, 10, 0}, flip[3] = {0, 0, M_PI};
  ck_assert_double_eq_tol(ts_pusht_coverage_between(a, bx), (3300.0 + 1800.0) / 6300.0, 1e-12);
  /* Shift by 10 along the stem: bars 120 x 20, stems 30 x 80, moved bar over stem 30 x 10. */
  ck_assert_double_eq_tol(ts_pusht_coverage_between(by, a), (2400.0 + 2400.0 + 300.0) / 6300.0, 1e-12);
  /* Rotated half a turn about the origin: the Ts only touch along y = 0. */
  ck_assert_double_eq_tol(ts_pusht_coverage_between(a, flip), 0.0, 1e-9);
  /* Clipping primitive: unit squares offset by half (either winding). */
  double s1[4][2] = {{0, 0}, {1, 0}, {1, 1}, {0, 1}}, s2[4][2] = {{0.5, 0.5}, {0.5, 1.5}, {1.5, 1.5}, {1.5, 0.5}};
  ck_assert_double_eq_tol(ts_convex_intersection_area((const double(*)[2])s1, 4, (const double(*)[2])s2, 4), 0.25, 1e-12);
}
END_TEST

/* The agent follows velocity += (100 (target - p) - 20 v) dt, p += v dt, 10 times per action. */
START_TEST(test_pd_rule) {
  ts_pusht_silence_banner();
  ts_pusht *e = ts_pusht_new();
  double st[5] = {100, 100, 300, 300, 0}; /* block clear of agent and walls */
  ts_pusht_set_state(e, st, 0);
  double p[2] = {100, 100}, v[2] = {0, 0}, target[2] = {160, 70};
  for (int k = 0; k < 3; k++) {
    ts_pusht_step(e, target);
    for (int i = 0; i < 10; i++)
      for (int j = 0; j < 2; j++) {
        v[j] += (100 * (target[j] - p[j]) - 20 * v[j]) * 0.01;
        p[j] += v[j] * 0.01;
      }
    double s[5], vel[2];
    ts_pusht_get_state(e, s);
    ts_pusht_agent_velocity(e, vel);
    ck_assert_double_eq_tol(s[0], p[0], 1e-9);
    ck_assert_double_eq_tol(s[1], p[1], 1e-9);
    ck_assert_double_eq_tol(vel[0], v[0], 1e-9);
    ck_assert_double_eq_tol(s[2], 300, 1e-12); /* untouched block does not move */
  }
  ck_assert_int_eq(ts_pusht_steps(e), 3);
  ts_pusht_free(e);
}
END_TEST

/* Legacy reset sets position then angle, so the block turns about its centre of gravity
 * (0, 45): origin = pos + cog - R(angle) cog. The non-legacy order puts the origin on pos. */
START_TEST(test_resets) {
  ts_pusht_silence_banner();
  ts_pusht *e = ts_pusht_new();
  int checked = 0;
  for (int i = 0; i < ts_pusht_seed_count; i++) {
    const double *s = ts_pusht_seed_states[i];
    ck_assert_int_eq(ts_pusht_reset_seed(e, ts_pusht_seed_first + i), 0);
    double st[5];
    ts_pusht_get_state(e, st);
    double ox = s[2] + 45 * sin(s[4]), oy = s[3] + 45 - 45 * cos(s[4]);
    ck_assert_double_eq(st[0], s[0]);
    if (hypot(st[0] - ox, st[1] - oy) > 60) { /* agent clear of the block: no contact in the step */
      ck_assert_double_eq_tol(st[2], ox, 1e-6);
      ck_assert_double_eq_tol(st[3], oy, 1e-6);
      checked++;
    }
    double a = fmod(s[4], 2 * M_PI);
    if (a < 0) a += 2 * M_PI;
    ck_assert_double_eq_tol(st[4], a, 1e-9);
  }
  ck_assert_int_gt(checked, 40);
  /* Seed 100000 from the reference table: (235, 124, 335, 128, -0.90493). */
  ck_assert_int_eq(ts_pusht_reset_seed(e, 100000), 0);
  ck_assert_int_ne(ts_pusht_reset_seed(e, 7), 0);
  ck_assert_msg(strstr(ts_error(), "seed 7"), "%s", ts_error());
  double s2[5] = {50, 50, 300, 200, 1.0}, got[5];
  ts_pusht_set_state(e, s2, 0);
  ts_pusht_get_state(e, got);
  ck_assert_double_eq_tol(got[2], 300, 1e-9);
  ck_assert_double_eq_tol(got[3], 200, 1e-9);
  ts_pusht_free(e);
}
END_TEST

START_TEST(test_vec_matches_single) {
  ts_pusht_silence_banner();
  int seeds[3] = {100000, 100001, 100002};
  ts_pusht_vec *v = ts_pusht_vec_new(3);
  ck_assert_int_eq(ts_pusht_vec_reset_seeds(v, seeds), 0);
  ts_pusht *e = ts_pusht_new();
  ts_pusht_reset_seed(e, 100001);
  double acts[6] = {200, 200, 300, 250, 100, 400};
  for (int k = 0; k < 20; k++) {
    ts_pusht_vec_step(v, acts);
    ts_pusht_step(e, acts + 2);
  }
  float o1[60], o2[20];
  ts_pusht_vec_obs(v, o1);
  ts_pusht_get_obs(e, o2);
  ck_assert_mem_eq(o1 + 20, o2, sizeof o2);
  ts_pusht_vec_free(v);
  ts_pusht_free(e);
}
END_TEST

/* Replaying the recorded actions reproduces the recorded block poses (docs/math.md §5). */
START_TEST(test_replay_fidelity) {
  const char *zarr = data_path("pusht/pusht_cchi_v7_replay.zarr");
  SKIP_IF(!zarr, "the real Push-T dataset is not under TSDP_DATA_DIR (pusht/pusht_cchi_v7_replay.zarr)");
  char out[512];
  snprintf(out, sizeof out, "%s/replay.h5", tmp_dir());
  ts_import_report r;
  ck_assert_msg(ts_pusht_import_zarr(zarr, out, &r) == 0, "%s", ts_error());
  const char *keys[1] = {"state"};
  ts_dataset d;
  ck_assert_int_eq(ts_dataset_load(out, keys, 1, &d), 0);
  ts_pusht_silence_banner();
  ts_pusht *e = ts_pusht_new();
  double worst = 0;
  for (int ep = 0; ep < d.n_episodes; ep++) {
    const float *S = d.obs + d.ep_start[ep] * 5, *A = d.actions + d.ep_start[ep] * 2;
    double st[5] = {S[0], S[1], S[2], S[3], S[4]};
    ts_pusht_set_state(e, st, 0);
    for (int t = 0; t < 20 && t + 1 < d.ep_start[ep + 1] - d.ep_start[ep]; t++) {
      double a[2] = {A[2 * t], A[2 * t + 1]};
      ts_pusht_step(e, a);
      ts_pusht_get_state(e, st);
      worst = fmax(worst, hypot(st[2] - S[5 * (t + 1) + 2], st[3] - S[5 * (t + 1) + 3]));
    }
  }
  ck_assert_msg(worst < 0.01, "block position error within 20 steps: %g px", worst);
  ts_pusht_free(e);
  ts_dataset_free(&d);
}
END_TEST

/* The keypoint constants are the least-squares fit to the recorded keypoints. */
START_TEST(test_keypoint_fit) {
  const char *zarr = data_path("pusht/pusht_cchi_v7_replay.zarr");
  SKIP_IF(!zarr, "the real Push-T dataset is not under TSDP_DATA_DIR (pusht/pusht_cchi_v7_replay.zarr)");
  char out[512];
  snprintf(out, sizeof out, "%s/kp.h5", tmp_dir());
  ts_import_report r;
  ck_assert_int_eq(ts_pusht_import_zarr(zarr, out, &r), 0);
  const char *keys[2] = {"state", "keypoint_recorded"};
  ts_dataset d;
  ck_assert_int_eq(ts_dataset_load(out, keys, 2, &d), 0);
  double loc[9][2] = {{0}};
  for (int64_t t = 0; t < d.n_steps; t++) {
    const float *o = d.obs + t * 23;
    double c = cos(o[4]), s = sin(o[4]);
    for (int k = 0; k < 9; k++) {
      double dx = o[5 + 2 * k] - o[2], dy = o[6 + 2 * k] - o[3];
      loc[k][0] += (c * dx + s * dy) / d.n_steps;
      loc[k][1] += (-s * dx + c * dy) / d.n_steps;
    }
  }
  for (int k = 0; k < 9; k++) {
    ck_assert_double_eq_tol(loc[k][0], ts_pusht_keypoints_local[k][0], 1e-4);
    ck_assert_double_eq_tol(loc[k][1], ts_pusht_keypoints_local[k][1], 1e-4);
  }
  ts_dataset_free(&d);
}
END_TEST

static int is_rgb(const uint8_t *p, int r, int g, int b) { return p[0] == r && p[1] == g && p[2] == b; }

START_TEST(test_render_png_gif) {
  double st[5] = {100, 100, 256, 256, M_PI / 4}, act[2] = {300, 400};
  uint8_t *rgb = malloc(128 * 128 * 3);
  ts_pusht_render(st, act, 128, rgb);
  const uint8_t *agent = rgb + 3 * (25 * 128 + 25); /* (100, 100) world -> pixel (25, 25) */
  ck_assert(is_rgb(agent, 65, 105, 225));
  const uint8_t *blank = rgb + 3 * (120 * 128 + 10);
  ck_assert(is_rgb(blank, 255, 255, 255));
  ck_assert(is_rgb(rgb, 80, 80, 80));                           /* the wall in the corner */
  ck_assert(is_rgb(rgb + 3 * (100 * 128 + 75), 220, 40, 40));   /* the cross at (300, 400) */
  ck_assert(is_rgb(rgb + 3 * (74 * 128 + 53), 98, 160, 120));   /* block on goal: the blend */
  /* Antialiased: the agent's edge along its row has a pixel between blue and white. */
  int blended = 0;
  for (int c = 25; c < 32; c++) {
    const uint8_t *p = rgb + 3 * (25 * 128 + c);
    blended += p[0] > 65 && p[0] < 255 && p[2] > 225 && p[2] < 255;
  }
  ck_assert_msg(blended >= 1, "no blended pixel on the agent's edge");
  /* The block away from the goal: goal green inside the goal's stem, its outline around it,
   * the block's grey at its own stem. */
  double away[5] = {60, 450, 400, 120, 0};
  uint8_t *big = malloc(512 * 512 * 3);
  ts_pusht_render(away, NULL, 512, big);
  ck_assert(is_rgb(big + 3 * (298 * 512 + 213), 144, 238, 144)); /* goal local (0, 60) */
  ck_assert(is_rgb(big + 3 * (180 * 512 + 400), 119, 136, 153)); /* block local (0, 60) */
  long edge = 0;
  for (int i = 0; i < 512 * 512; i++) edge += is_rgb(big + 3 * i, 46, 139, 87);
  ck_assert_msg(edge > 500 && edge < 4000, "goal outline pixels %ld", edge);
  free(big);
  char png[512], gif[512];
  snprintf(png, sizeof png, "%s/f.png", tmp_dir());
  snprintf(gif, sizeof gif, "%s/f.gif", tmp_dir());
  ck_assert_int_eq(ts_png_write(png, 128, 128, rgb), 0);
  ts_gif *g = ts_gif_open(gif, 128, 128, 10);
  ck_assert_ptr_nonnull(g);
  ck_assert_int_eq(ts_gif_frame(g, rgb), 0);
  ck_assert_int_eq(ts_gif_frame(g, rgb), 0);
  ck_assert_int_eq(ts_gif_close(g), 0);
  unsigned char head[8];
  FILE *f = fopen(png, "rb");
  ck_assert(fread(head, 1, 8, f) == 8 && memcmp(head, "\x89PNG", 4) == 0);
  fclose(f);
  /* The GIF reads back: two frames, every pixel within a cube step of the frame's colour and
   * the frame's own colours exact. */
  int err = 0;
  GifFileType *gf = DGifOpenFileName(gif, &err);
  ck_assert_ptr_nonnull(gf);
  ck_assert_int_eq(DGifSlurp(gf), GIF_OK);
  ck_assert_int_eq(gf->ImageCount, 2);
  const ColorMapObject *map = gf->SColorMap;
  const GifByteType *px = gf->SavedImages[1].RasterBits;
  int worst = 0;
  for (int i = 0; i < 128 * 128; i++) {
    const GifColorType *c = &map->Colors[px[i]];
    const int d[3] = {abs(c->Red - rgb[3 * i]), abs(c->Green - rgb[3 * i + 1]), abs(c->Blue - rgb[3 * i + 2])};
    for (int k = 0; k < 3; k++) worst = d[k] > worst ? d[k] : worst;
  }
  ck_assert_msg(worst <= 26, "GIF colour off by %d", worst);
  const GifColorType *ca = &map->Colors[px[25 * 128 + 25]];
  ck_assert(ca->Red == 65 && ca->Green == 105 && ca->Blue == 225);
  DGifCloseFile(gf, &err);
  free(rgb);
}
END_TEST

Suite *suite_sim(void) {
  Suite *s = suite_create("sim");
  TCase *tc = tcase_create("pusht");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_coverage_hand_cases);
  tcase_add_test(tc, test_pd_rule);
  tcase_add_test(tc, test_resets);
  tcase_add_test(tc, test_vec_matches_single);
  tcase_add_test(tc, test_replay_fidelity);
  tcase_add_test(tc, test_keypoint_fit);
  tcase_add_test(tc, test_render_png_gif);
  suite_add_tcase(s, tc);
  return s;
}
