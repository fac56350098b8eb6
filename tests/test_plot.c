/* The plot module: tick values and labels, and figures read back as pixels. */
#include "tests.h"
#include "core/error.h"
#include "train/plot.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

static void ticks_are(double lo, double hi, int log, int max_ticks, const double *want, int n) {
  double t[64];
  int got = ts_plot_ticks(lo, hi, log, max_ticks, t, 64);
  ck_assert_msg(got == n, "[%g, %g] log %d: %d ticks, want %d", lo, hi, log, got, n);
  for (int i = 0; i < n; i++) ck_assert_msg(t[i] == want[i], "[%g, %g] tick %d = %.17g, want %.17g", lo, hi, i, t[i], want[i]);
}

START_TEST(test_ticks) {
  /* Data spanning 0.013..0.87 get an axis padded to include 0, ticks 0.2 apart. */
  double lo, hi;
  ts_plot_range(0.013, 0.87, 0, &lo, &hi);
  ck_assert_double_eq_tol(lo, 0.013 - 0.04 * 0.857, 1e-12);
  ck_assert_double_eq_tol(hi, 0.87 + 0.04 * 0.857, 1e-12);
  ticks_are(lo, hi, 0, 6, (double[]){0, 0.2, 0.4, 0.6, 0.8}, 5);
  ticks_are(0.013, 0.87, 0, 6, (double[]){0.2, 0.4, 0.6, 0.8}, 4); /* only ticks inside the range */
  ticks_are(0, 1, 0, 6, (double[]){0, 0.2, 0.4, 0.6, 0.8, 1}, 6);
  ticks_are(0, 1, 0, 11, (double[]){0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}, 11);
  ticks_are(-3.7, 2.1, 0, 6, (double[]){-3, -2, -1, 0, 1, 2}, 6);
  ticks_are(0, 20000, 0, 5, (double[]){0, 5000, 10000, 15000, 20000}, 5);
  ticks_are(0.5, 9.5, 0, 4, (double[]){2, 4, 6, 8}, 4);
  ticks_are(1e6 + 0.01, 1e6 + 0.09, 0, 5, (double[]){1e6 + 0.02, 1e6 + 0.04, 1e6 + 0.06, 1e6 + 0.08}, 4);
  /* Log axes: decades, every k-th when too many, 1-2-5 inside one decade. */
  ticks_are(1e-3, 2, 1, 6, (double[]){1e-3, 1e-2, 1e-1, 1}, 4);
  ticks_are(1e-12, 1e3, 1, 6, (double[]){1e-12, 1e-9, 1e-6, 1e-3, 1, 1e3}, 6);
  ticks_are(0.03, 0.9, 1, 6, (double[]){0.05, 0.1, 0.2, 0.5}, 4);
  ts_plot_range(1e-3, 10, 1, &lo, &hi);
  ck_assert_double_eq_tol(log10(lo), -3 - 0.16, 1e-12);
  ck_assert_double_eq_tol(log10(hi), 1 + 0.16, 1e-12);
  ts_plot_range(5, 5, 0, &lo, &hi);
  ck_assert(lo == 4.5 && hi == 5.5);
  ts_plot_range(1, 1 + 1e-15, 0, &lo, &hi);
  ck_assert(lo == 0.9 && hi == 1 + 1e-15 + 0.1);
  ts_plot_range(0, 0, 0, &lo, &hi);
  ck_assert(lo == -0.5 && hi == 0.5);
  /* Nothing for empty, reversed, non-finite or non-positive log ranges. */
  double t[8];
  ck_assert_int_eq(ts_plot_ticks(1, 1, 0, 6, t, 8), 0);
  ck_assert_int_eq(ts_plot_ticks(2, 1, 0, 6, t, 8), 0);
  ck_assert_int_eq(ts_plot_ticks(NAN, 1, 0, 6, t, 8), 0);
  ck_assert_int_eq(ts_plot_ticks(0, INFINITY, 0, 6, t, 8), 0);
  ck_assert_int_eq(ts_plot_ticks(-1, 10, 1, 6, t, 8), 0);
  ck_assert_int_eq(ts_plot_ticks(0, 1, 0, 11, t, 3), 3); /* cap respected */
}
END_TEST

START_TEST(test_tick_labels) {
  char b[32];
  struct {
    double v, step;
    int log;
    const char *want;
  } c[] = {
    {0.6000000000000001, 0.2, 0, "0.6"}, {-1e-17, 0.2, 0, "0"}, {-3, 1, 0, "-3"}, {0.05, 0.05, 0, "0.05"},
    {15000, 5000, 0, "15k"}, {1500000, 500000, 0, "1.5M"}, {2e-5, 1e-5, 0, "2e-05"}, {1e-3, 0, 1, "0.001"},
    {1e3, 0, 1, "1000"}, {1e-4, 0, 1, "1e-4"}, {1e6, 0, 1, "1e6"}, {0.2, 0, 1, "0.2"},
  };
  for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
    ts_plot_tick_label(c[i].v, c[i].step, c[i].log, b, sizeof b);
    ck_assert_msg(!strcmp(b, c[i].want), "label of %g (step %g, log %d) = '%s', want '%s'", c[i].v, c[i].step, c[i].log, b,
                  c[i].want);
  }
}
END_TEST

unsigned char *fix_png(const char *path, int *w, int *h) {
  int ch;
  unsigned char *img = stbi_load(path, w, h, &ch, 3);
  ck_assert_msg(img != NULL, "%s: %s", path, stbi_failure_reason());
  return img;
}

static int near(const unsigned char *p, int r, int g, int b, int tol) {
  return abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol;
}

/* Whether p is colour (r, g, b) laid over white with coverage >= 0.6 (an antialiased line's
 * pixels): every channel shows the same coverage. */
static int tint(const unsigned char *p, int r, int g, int b) {
  const int c[3] = {r, g, b};
  double lo = 2, hi = -1;
  for (int k = 0; k < 3; k++) {
    if (255 - c[k] < 40) {
      if (p[k] < 255 - 40) return 0;
      continue;
    }
    double a = (255.0 - p[k]) / (255.0 - c[k]);
    lo = fmin(lo, a);
    hi = fmax(hi, a);
  }
  return lo >= 0.6 && hi <= 1.05 && hi - lo < 0.12;
}

static int bands(const unsigned char *img, int w, int h, int r, int g, int b, int x0, int x1, double *c) {
  int n = 0, start = -1;
  for (int y = 0; y <= h; y++) {
    int hit = 0;
    for (int x = x0; y < h && x < x1 && !hit; x++) hit = tint(img + 3 * (y * w + x), r, g, b);
    if (hit && start < 0) start = y;
    if (!hit && start >= 0) {
      if (n < 8) c[n] = (start + y - 1) / 2.0;
      n++;
      start = -1;
    }
  }
  return n;
}

START_TEST(test_figure_pixels) {
  /* Two flat series at y = 0.25 (blue) and 0.75 (orange) on a 0..1 axis, with a legend. */
  char path[600];
  snprintf(path, sizeof path, "%s/fig.png", tmp_dir());
  ts_fig *f = ts_fig_new(480, 320, 1, 1);
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(ts_fig_title(f, "run test"), 0);
  ck_assert_int_eq(ts_fig_axes(f, 0, "two levels", "step", "value", 0), 0);
  ck_assert_int_eq(ts_fig_ylim(f, 0, 0, 1), 0);
  double x[50], lo[50], hi[50];
  for (int i = 0; i < 50; i++) {
    x[i] = i;
    lo[i] = 0.25;
    hi[i] = 0.75;
  }
  ck_assert_int_eq(ts_fig_series(f, 0, "low", x, lo, NULL, 50, TS_LINE), 0);
  ck_assert_int_eq(ts_fig_series(f, 0, "high", x, hi, NULL, 50, TS_LINE), 0);
  ck_assert_int_eq(ts_fig_save(f, path), 0);
  ts_fig_free(f);
  int w, h;
  unsigned char *img = fix_png(path, &w, &h);
  ck_assert_int_eq(w, 480);
  ck_assert_int_eq(h, 320);
  ck_assert(near(img, 255, 255, 255, 0)); /* white background in the corner */
  /* The left axis: a column with a long run of dark pixels in the left third. */
  int axis_x = -1, axis_run = 0;
  for (int xx = 0; xx < w / 3; xx++) {
    int run = 0, best = 0;
    for (int y = 0; y < h; y++) {
      const unsigned char *p = img + 3 * (y * w + xx);
      run = (p[0] < 80 && p[1] < 80 && p[2] < 80) ? run + 1 : 0;
      if (run > best) best = run;
    }
    if (best > axis_run) {
      axis_run = best;
      axis_x = xx;
    }
  }
  ck_assert_msg(axis_run > h / 2 && axis_x > 20, "left axis: longest dark run %d at x = %d", axis_run, axis_x);
  /* Each series: one long band across the plot area (the line) plus the legend's swatch,
   * with the blue line below the orange one and both about where 0.25 and 0.75 fall. */
  double cb[8], co[8];
  int nb = bands(img, w, h, 31, 119, 180, axis_x + 5, w - 20, cb), no = bands(img, w, h, 255, 127, 14, axis_x + 5, w - 20, co);
  ck_assert_msg(nb == 2 && no == 2, "blue bands %d, orange bands %d", nb, no);
  /* The legend is above both lines or between them; the lines are the bands whose rows span
   * the width: find them by counting the colour along each band's row. */
  double line_b = -1, line_o = -1;
  for (int k = 0; k < 2; k++) {
    int cntb = 0, cnto = 0;
    for (int xx = axis_x + 5; xx < w - 20; xx++) {
      cntb += tint(img + 3 * ((int)cb[k] * w + xx), 31, 119, 180);
      cnto += tint(img + 3 * ((int)co[k] * w + xx), 255, 127, 14);
    }
    if (cntb > (w - axis_x) / 2) line_b = cb[k];
    if (cnto > (w - axis_x) / 2) line_o = co[k];
  }
  ck_assert_msg(line_b > 0 && line_o > 0, "no full-width line: blue %g %g, orange %g %g", cb[0], cb[1], co[0], co[1]);
  ck_assert_msg(line_b > line_o, "blue (0.25) at row %g should be below orange (0.75) at row %g", line_b, line_o);
  /* The axis bottom is the lowest row of the dark column run; 0.25 and 0.75 sit at a quarter
   * and three quarters of the plot's height (within 3 pixels). */
  int bottom = -1, topy = -1;
  for (int y = 0; y < h; y++) {
    const unsigned char *p = img + 3 * (y * w + axis_x);
    if (p[0] < 80) {
      if (topy < 0) topy = y;
      bottom = y;
    }
  }
  double ph = bottom - topy;
  ck_assert_msg(fabs(line_b - (bottom - 0.25 * ph)) < 3 && fabs(line_o - (bottom - 0.75 * ph)) < 3,
                "lines at rows %g, %g; plot rows %d..%d", line_b, line_o, topy, bottom);
  free(img);
}
END_TEST

START_TEST(test_figure_styles_and_panels) {
  /* Bars, steps, error bars, a band, log axes and a 2x2 grid all draw; sizes are honoured. */
  char path[600];
  snprintf(path, sizeof path, "%s/grid.png", tmp_dir());
  ts_fig *f = ts_fig_new(900, 600, 2, 2);
  double t[20], L[20], m[20], se[20], loss[20];
  for (int i = 0; i < 20; i++) {
    t[i] = 19 - i; /* descending, as a sampler's timesteps */
    L[i] = 1 + i % 5;
    m[i] = 0.5 + 0.02 * i;
    se[i] = 0.05;
    loss[i] = exp(-0.3 * i);
  }
  ck_assert_int_eq(ts_fig_axes(f, 0, "chosen L", "diffusion step t", "L", 0), 0);
  ck_assert_int_eq(ts_fig_series(f, 0, "L", t, L, NULL, 20, TS_BARS), 0);
  ck_assert_int_eq(ts_fig_axes(f, 1, "chosen L (steps)", "diffusion step t", "L", 0), 0);
  ck_assert_int_eq(ts_fig_series(f, 1, "L", t, L, NULL, 20, TS_STEP), 0);
  ck_assert_int_eq(ts_fig_axes(f, 2, "score", "seed", "score", 0), 0);
  ck_assert_int_eq(ts_fig_series(f, 2, "mean +- se", t, m, se, 20, TS_LINE | TS_BAND), 0);
  ck_assert_int_eq(ts_fig_series(f, 2, "points", t, m, se, 20, TS_MARKERS | TS_ERRBARS), 0);
  ck_assert_int_eq(ts_fig_axes(f, 3, "loss", "step", "loss", TS_LOGX | TS_LOGY), 0);
  ck_assert_int_eq(ts_fig_series(f, 3, "loss", t, loss, NULL, 20, TS_LINE), 0); /* t = 0 is left out on log x */
  ck_assert_int_eq(ts_fig_save(f, path), 0);
  ts_fig_free(f);
  int w, h;
  unsigned char *img = fix_png(path, &w, &h);
  ck_assert(w == 900 && h == 600);
  /* The bars fill a large blue area in the top-left panel. */
  long blue = 0;
  for (int y = 0; y < h / 2; y++)
    for (int x = 0; x < w / 2; x++) blue += near(img + 3 * (y * w + x), 31, 119, 180, 2);
  ck_assert_msg(blue > 5000, "bar pixels %ld", blue);
  /* The band's light blue fill appears in the bottom-left panel. */
  long band = 0;
  for (int y = h / 2; y < h; y++)
    for (int x = 0; x < w / 2; x++) band += near(img + 3 * (y * w + x), 206, 225, 238, 10);
  ck_assert_msg(band > 2000, "band pixels %ld", band);
  free(img);
}
END_TEST

START_TEST(test_figure_bad_input) {
  char path[600];
  snprintf(path, sizeof path, "%s/bad.png", tmp_dir());
  ck_assert_ptr_null(ts_fig_new(10, 10, 1, 1));
  ck_assert_ptr_null(ts_fig_new(400, 300, 0, 1));
  ts_fig *f = ts_fig_new(400, 300, 1, 2);
  double x[4] = {3, 1, 2, 0}, y[4] = {NAN, 1, INFINITY, -2}, e[4] = {NAN, 0.1, 0.1, 0.1};
  ck_assert_int_eq(ts_fig_axes(f, 2, "no such panel", NULL, NULL, 0), -1);
  ck_assert_msg(strstr(ts_error(), "no panel 2"), "%s", ts_error());
  ck_assert_int_eq(ts_fig_series(f, 0, "neg", x, y, NULL, -1, TS_LINE), -1);
  ck_assert_int_eq(ts_fig_series(f, 0, "null", NULL, y, NULL, 4, TS_LINE), -1);
  ck_assert_int_eq(ts_fig_ylim(f, 0, 1, 0), -1);
  ck_assert_int_eq(ts_fig_ylim(f, 0, NAN, 1), -1);
  /* Empty, all-invalid, NaN-riddled and non-ascending series draw without complaint. */
  ck_assert_int_eq(ts_fig_series(f, 0, "empty", NULL, NULL, NULL, 0, TS_LINE), 0);
  ck_assert_int_eq(ts_fig_series(f, 0, "mixed", x, y, e, 4, TS_LINE | TS_STEP | TS_BARS | TS_BAND | TS_ERRBARS | TS_MARKERS), 0);
  ck_assert_int_eq(ts_fig_axes(f, 1, "log of negatives", "x", "y", TS_LOGX | TS_LOGY), 0);
  ck_assert_int_eq(ts_fig_ylim(f, 1, -1, 1), -1);
  double ny[4] = {-1, -2, 0, NAN};
  ck_assert_int_eq(ts_fig_series(f, 1, NULL, x, ny, NULL, 4, TS_LINE), 0);
  ck_assert_int_eq(ts_fig_save(f, path), 0);
  int w, h;
  free(fix_png(path, &w, &h));
  ck_assert(w == 400 && h == 300);
  /* Values too large or too close to scale draw as an empty unit axis. */
  ts_fig *g = ts_fig_new(300, 200, 1, 1);
  double hx[3] = {-1e308, 0, 1e308}, hy[3] = {1e308, -1e308, 1e300}, tiny[3] = {1, 1 + 1e-16, 1 + 2e-16};
  ck_assert_int_eq(ts_fig_series(g, 0, "huge", hx, hy, hy, 3, TS_LINE | TS_BARS | TS_BAND), 0);
  ck_assert_int_eq(ts_fig_series(g, 0, "close", tiny, tiny, NULL, 3, TS_STEP | TS_MARKERS), 0);
  char huge[600];
  snprintf(huge, sizeof huge, "%s/huge.png", tmp_dir());
  ck_assert_msg(ts_fig_save(g, huge) == 0, "%s", ts_error());
  ts_fig_free(g);
  free(fix_png(huge, &w, &h));
  ck_assert(w == 300 && h == 200);
  /* An unwritable path fails with a message naming it. */
  ck_assert_int_eq(ts_fig_save(f, "/nonexistent-dir/x.png"), -1);
  ck_assert_msg(strstr(ts_error(), "/nonexistent-dir/x.png"), "%s", ts_error());
  ts_fig_free(f);
  /* The compatibility call: 640 x 400, also for n = 0. */
  ck_assert_int_eq(ts_plot_png(path, x, y, 0, 1), 0);
  free(fix_png(path, &w, &h));
  ck_assert(w == 640 && h == 400);
}
END_TEST

/* A sample figure for a person to look at: `make plot-demo` writes it to build/plot_demo.png
 * (TSDP_PLOT_DEMO names the path; otherwise it goes to the test folder). */
START_TEST(test_demo_figure) {
  const char *env = getenv("TSDP_PLOT_DEMO");
  char path[600];
  snprintf(path, sizeof path, "%s", env && *env ? env : "");
  if (!path[0]) snprintf(path, sizeof path, "%s/demo.png", tmp_dir());
  ts_fig *f = ts_fig_new(1000, 660, 2, 2);
  ts_fig_title(f, "demo run: base policy training and speculative sampling");
  enum { N = 200, T = 100 };
  double step[N], loss[N], ema[N], acc[T], tt[T], L[T], ms[4] = {95.1, 12.3, 31.0, 22.4}, mse[4] = {2.1, 0.9, 1.4, 1.2};
  double k[4] = {1, 2, 3, 4};
  for (int i = 0; i < N; i++) {
    step[i] = 100.0 * (i + 1);
    loss[i] = 0.8 * exp(-i / 40.0) + 0.02 + 0.01 * sin(i * 1.7);
    ema[i] = 0.8 * exp(-i / 40.0) + 0.02;
  }
  for (int t = 0; t < T; t++) {
    tt[t] = t;
    acc[t] = 0.95 - 0.5 * exp(-t / 12.0);
    L[t] = t < 10 ? 2 : t < 40 ? 5 : 10;
  }
  ts_fig_axes(f, 0, "training loss", "step", "loss (MSE)", TS_LOGY);
  ts_fig_series(f, 0, "loss", step, loss, NULL, N, TS_LINE);
  ts_fig_series(f, 0, "smoothed", step, ema, NULL, N, TS_LINE);
  ts_fig_axes(f, 1, "drafter: predicted acceptance", "diffusion step t", "predicted acceptance", 0);
  ts_fig_ylim(f, 1, 0, 1);
  ts_fig_series(f, 1, "EMA drafter", tt, acc, NULL, T, TS_LINE);
  ts_fig_axes(f, 2, "scheduler: chosen draft length", "diffusion step t", "L (drafts)", 0);
  ts_fig_series(f, 2, "RL scheduler", tt, L, NULL, T, TS_STEP);
  ts_fig_axes(f, 3, "time per chunk (mean +- se)", "sampler (1 DDPM-100, 2 DDIM-10, 3 fixed-L, 4 TS-DP)", "ms per chunk", 0);
  ts_fig_series(f, 3, "ms per chunk", k, ms, mse, 4, TS_BARS | TS_ERRBARS);
  ck_assert_msg(ts_fig_save(f, path) == 0, "%s", ts_error());
  ts_fig_free(f);
  if (env && *env) fprintf(stderr, "plot demo: %s\n", path);
}
END_TEST

Suite *suite_plot(void) {
  Suite *s = suite_create("plot");
  TCase *tc = tcase_create("plot");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_ticks);
  tcase_add_test(tc, test_tick_labels);
  tcase_add_test(tc, test_figure_pixels);
  tcase_add_test(tc, test_figure_styles_and_panels);
  tcase_add_test(tc, test_figure_bad_input);
  tcase_add_test(tc, test_demo_figure);
  suite_add_tcase(s, tc);
  return s;
}
