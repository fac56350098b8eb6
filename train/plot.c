/* plot.c: a minimal line plot to PNG (axes, curve, min/max labels in a 3x5 pixel font). */
#include "plot.h"
#include "core/error.h"
#include "sim/render.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 3x5 glyphs for "0123456789.-e", one row per 3 bits. */
static const char *glyphs = "0123456789.-e";
static const unsigned char font[13][5] = {
  {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1}, {7, 4, 7, 1, 7},
  {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}, {0, 0, 0, 0, 2}, {0, 0, 7, 0, 0},
  {0, 7, 5, 6, 7},
};

static void put(uint8_t *img, int W, int H, int x, int y, const uint8_t c[3]) {
  if (x < 0 || y < 0 || x >= W || y >= H) return;
  memcpy(img + 3 * (y * W + x), c, 3);
}

static void text(uint8_t *img, int W, int H, int x, int y, const char *s, int scale) {
  static const uint8_t k[3] = {0, 0, 0};
  for (; *s; s++, x += 4 * scale) {
    const char *g = strchr(glyphs, *s);
    if (!g) continue;
    for (int r = 0; r < 5; r++)
      for (int b = 0; b < 3; b++)
        if (font[g - glyphs][r] & (4 >> b))
          for (int dy = 0; dy < scale; dy++)
            for (int dx = 0; dx < scale; dx++) put(img, W, H, x + b * scale + dx, y + r * scale + dy, k);
  }
}

static void line(uint8_t *img, int W, int H, int x0, int y0, int x1, int y1, const uint8_t c[3]) {
  int n = abs(x1 - x0) > abs(y1 - y0) ? abs(x1 - x0) : abs(y1 - y0);
  for (int i = 0; i <= n; i++) {
    double t = n ? (double)i / n : 0;
    int x = (int)lround(x0 + t * (x1 - x0)), y = (int)lround(y0 + t * (y1 - y0));
    put(img, W, H, x, y, c);
    put(img, W, H, x, y + 1, c);
  }
}

int ts_plot_png(const char *path, const double *x, const double *y, int n, int logy) {
  const int W = 640, H = 400, L = 70, R = 20, T = 20, Bm = 40;
  uint8_t *img = malloc((size_t)W * H * 3);
  if (!img) abort();
  memset(img, 255, (size_t)W * H * 3);
  double xmin = x[0], xmax = x[n - 1], ymin = INFINITY, ymax = -INFINITY;
  for (int i = 0; i < n; i++) {
    double v = logy ? log10(fmax(y[i], 1e-12)) : y[i];
    ymin = fmin(ymin, v);
    ymax = fmax(ymax, v);
  }
  if (ymax - ymin < 1e-9) ymax = ymin + 1;
  if (xmax <= xmin) xmax = xmin + 1;
  static const uint8_t axis[3] = {0, 0, 0}, curve[3] = {30, 90, 200};
  line(img, W, H, L, T, L, H - Bm, axis);
  line(img, W, H, L, H - Bm, W - R, H - Bm, axis);
  int px = -1, py = -1;
  for (int i = 0; i < n; i++) {
    double v = logy ? log10(fmax(y[i], 1e-12)) : y[i];
    int cx = L + (int)((x[i] - xmin) / (xmax - xmin) * (W - L - R));
    int cy = H - Bm - (int)((v - ymin) / (ymax - ymin) * (H - T - Bm));
    if (px >= 0) line(img, W, H, px, py, cx, cy, curve);
    px = cx;
    py = cy;
  }
  char buf[32];
  snprintf(buf, sizeof buf, "%.3g", logy ? pow(10, ymax) : ymax);
  text(img, W, H, 4, T, buf, 2);
  snprintf(buf, sizeof buf, "%.3g", logy ? pow(10, ymin) : ymin);
  text(img, W, H, 4, H - Bm - 10, buf, 2);
  snprintf(buf, sizeof buf, "%.0f", xmin);
  text(img, W, H, L, H - Bm + 8, buf, 2);
  snprintf(buf, sizeof buf, "%.0f", xmax);
  text(img, W, H, W - R - 4 * 2 * (int)strlen(buf), H - Bm + 8, buf, 2);
  int rc = ts_png_write(path, W, H, img);
  free(img);
  return rc;
}
