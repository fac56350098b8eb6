#include "render.h"
#include "pusht.h"
#include "core/error.h"
#include "core/sizes.h"
#include <gif_lib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

/* The palette every frame is drawn from (a GIF needs one anyway). */
enum { C_BG, C_WALL, C_GOAL, C_BLOCK, C_AGENT, C_ACTION, C_OVERLAP, NCOLORS };
static const uint8_t palette[8][3] = {
  {255, 255, 255}, {80, 80, 80}, {144, 238, 144}, {119, 136, 153},
  {65, 105, 225}, {220, 40, 40}, {98, 160, 120}, {0, 0, 0},
};

static int in_box(const double pose[3], int k, double x, double y) {
  double c = cos(pose[2]), s = sin(pose[2]), dx = x - pose[0], dy = y - pose[1];
  double lx = c * dx + s * dy, ly = -s * dx + c * dy; /* into the body frame */
  double x0 = 1e9, x1 = -1e9, y0 = 1e9, y1 = -1e9;
  for (int i = 0; i < 4; i++) {
    x0 = fmin(x0, ts_pusht_boxes[k][i][0]);
    x1 = fmax(x1, ts_pusht_boxes[k][i][0]);
    y0 = fmin(y0, ts_pusht_boxes[k][i][1]);
    y1 = fmax(y1, ts_pusht_boxes[k][i][1]);
  }
  return lx >= x0 && lx <= x1 && ly >= y0 && ly <= y1;
}

static int color_at(const double st[5], const double *act, double x, double y, double px) {
  double block[3] = {st[2], st[3], st[4]};
  if (act && ((fabs(x - act[0]) < 1.5 * px + 1 && fabs(y - act[1]) < 8) || (fabs(y - act[1]) < 1.5 * px + 1 && fabs(x - act[0]) < 8)))
    return C_ACTION;
  if (hypot(x - st[0], y - st[1]) <= 15) return C_AGENT;
  int b = in_box(block, 0, x, y) || in_box(block, 1, x, y);
  int g = in_box(ts_pusht_goal, 0, x, y) || in_box(ts_pusht_goal, 1, x, y);
  if (b && g) return C_OVERLAP;
  if (b) return C_BLOCK;
  if (g) return C_GOAL;
  if (x < 7 || y < 7 || x > 504 || y > 504) return C_WALL;
  return C_BG;
}

static void render_idx(const double st[5], const double *act, int size, uint8_t *idx) {
  double px = 512.0 / size;
  for (int r = 0; r < size; r++)
    for (int c = 0; c < size; c++) idx[r * size + c] = (uint8_t)color_at(st, act, (c + 0.5) * px, (r + 0.5) * px, px);
}

void ts_pusht_render(const double st[5], const double *act, int size, uint8_t *rgb) {
  uint8_t *idx = malloc((size_t)size * size);
  if (!idx) abort();
  render_idx(st, act, size, idx);
  for (int i = 0; i < size * size; i++) memcpy(rgb + 3 * i, palette[idx[i]], 3);
  free(idx);
}

static void tmp_name(const char *path, char *out, size_t n) { snprintf(out, n, "%s.tmp-%ld", path, (long)getpid()); }

int ts_png_write(const char *path, int w, int h, const uint8_t *rgb) {
  if (ts_regular_file(path) < 0) return -1; /* never replace a folder, FIFO or device */
  char tmp[1100];
  tmp_name(path, tmp, sizeof tmp);
  if (!stbi_write_png(tmp, w, h, 3, rgb, w * 3)) {
    remove(tmp);
    return ts_fail("%s: cannot write PNG", path);
  }
  if (rename(tmp, path) != 0) {
    remove(tmp);
    return ts_fail("%s: cannot rename temporary file into place", path);
  }
  return 0;
}

struct ts_gif {
  GifFileType *f;
  int w, h, delay;
  char path[1024], tmp[1100];
  uint8_t *line;
};

ts_gif *ts_gif_open(const char *path, int w, int h, int delay_cs) {
  if (ts_regular_file(path) < 0) return NULL; /* never replace a folder, FIFO or device */
  ts_gif *g = calloc(1, sizeof *g);
  if (!g) abort();
  snprintf(g->path, sizeof g->path, "%s", path);
  tmp_name(path, g->tmp, sizeof g->tmp);
  int err = 0;
  g->f = EGifOpenFileName(g->tmp, false, &err);
  if (!g->f) {
    ts_fail("%s: cannot create GIF (%s)", path, GifErrorString(err));
    free(g);
    return NULL;
  }
  g->w = w;
  g->h = h;
  GifColorType colors[8];
  for (int i = 0; i < 8; i++) {
    colors[i].Red = palette[i][0];
    colors[i].Green = palette[i][1];
    colors[i].Blue = palette[i][2];
  }
  ColorMapObject *map = GifMakeMapObject(8, colors);
  EGifSetGifVersion(g->f, true);
  int ok = EGifPutScreenDesc(g->f, w, h, 8, 0, map) == GIF_OK;
  GifFreeMapObject(map);
  unsigned char loop[3] = {1, 0, 0};
  ok = ok && EGifPutExtensionLeader(g->f, APPLICATION_EXT_FUNC_CODE) == GIF_OK &&
       EGifPutExtensionBlock(g->f, 11, "NETSCAPE2.0") == GIF_OK && EGifPutExtensionBlock(g->f, 3, loop) == GIF_OK &&
       EGifPutExtensionTrailer(g->f) == GIF_OK;
  if (!ok) {
    ts_fail("%s: cannot write GIF header", path);
    ts_gif_abort(g);
    return NULL;
  }
  g->line = malloc((size_t)w * h);
  if (!g->line) abort();
  g->delay = delay_cs;
  return g;
}

int ts_gif_frame(ts_gif *g, const uint8_t *rgb) {
  int delay = g->delay;
  unsigned char gce[4] = {0, (unsigned char)(delay & 255), (unsigned char)(delay >> 8), 0};
  for (int i = 0; i < g->w * g->h; i++) { /* nearest palette entry (frames use it exactly) */
    int best = 0, bd = 1 << 30;
    for (int k = 0; k < NCOLORS; k++) {
      int d = 0;
      for (int ch = 0; ch < 3; ch++) d += (rgb[3 * i + ch] - palette[k][ch]) * (rgb[3 * i + ch] - palette[k][ch]);
      if (d < bd) {
        bd = d;
        best = k;
      }
    }
    g->line[i] = (uint8_t)best;
  }
  if (EGifPutExtension(g->f, GRAPHICS_EXT_FUNC_CODE, 4, gce) != GIF_OK ||
      EGifPutImageDesc(g->f, 0, 0, g->w, g->h, false, NULL) != GIF_OK)
    return ts_fail("%s: cannot write GIF frame", g->path);
  for (int r = 0; r < g->h; r++)
    if (EGifPutLine(g->f, g->line + (size_t)r * g->w, g->w) != GIF_OK) return ts_fail("%s: cannot write GIF frame", g->path);
  return 0;
}

int ts_gif_close(ts_gif *g) {
  int err = 0, rc = 0;
  if (EGifCloseFile(g->f, &err) != GIF_OK) rc = ts_fail("%s: cannot finish GIF (%s)", g->path, GifErrorString(err));
  else if (rename(g->tmp, g->path) != 0) rc = ts_fail("%s: cannot rename temporary file into place", g->path);
  if (rc) remove(g->tmp);
  free(g->line);
  free(g);
  return rc;
}

void ts_gif_abort(ts_gif *g) {
  if (!g) return;
  int err;
  if (g->f) EGifCloseFile(g->f, &err);
  remove(g->tmp);
  free(g->line);
  free(g);
}
