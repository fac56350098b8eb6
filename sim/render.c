#include "render.h"
#include "pusht.h"
#include "core/error.h"
#include <cairo.h>
#include "core/sizes.h"
#include <gif_lib.h>
#include <errno.h>
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

/* The colours every frame is drawn in; the GIF palette starts with them (exact), then holds a
 * 6x6x6 colour cube for the antialiased edges between them. */
enum { C_BG, C_WALL, C_GOAL, C_BLOCK, C_AGENT, C_ACTION, C_OVERLAP, C_GOAL_EDGE, NCOLORS };
static const uint8_t palette[NCOLORS][3] = {
  {255, 255, 255}, {80, 80, 80}, {144, 238, 144}, {119, 136, 153},
  {65, 105, 225}, {220, 40, 40}, {98, 160, 120}, {46, 139, 87},
};

static void rgb(cairo_t *cr, int k) { cairo_set_source_rgb(cr, palette[k][0] / 255.0, palette[k][1] / 255.0, palette[k][2] / 255.0); }

/* The T at pose (x, y, angle) as the path of its two boxes (world units). */
static void t_path(cairo_t *cr, const double pose[3]) {
  cairo_save(cr);
  cairo_translate(cr, pose[0], pose[1]);
  cairo_rotate(cr, pose[2]);
  for (int k = 0; k < 2; k++) {
    cairo_move_to(cr, ts_pusht_boxes[k][0][0], ts_pusht_boxes[k][0][1]);
    for (int i = 1; i < 4; i++) cairo_line_to(cr, ts_pusht_boxes[k][i][0], ts_pusht_boxes[k][i][1]);
    cairo_close_path(cr);
  }
  cairo_restore(cr);
}

void ts_pusht_render(const double st[5], const double *act, int size, uint8_t *out) {
  cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, size, size);
  cairo_t *cr = cairo_create(sf);
  cairo_scale(cr, size / 512.0, size / 512.0); /* world units (512 a side, y down) */
  double px = 512.0 / size;                    /* world units per pixel */
  rgb(cr, C_WALL);
  cairo_paint(cr);
  rgb(cr, C_BG);
  cairo_rectangle(cr, 7, 7, 504 - 7, 504 - 7);
  cairo_fill(cr);
  /* The goal: light green with a darker outline (a stroke of both boxes, its inner half and
   * the seam between the boxes covered by the fill). */
  const double block[3] = {st[2], st[3], st[4]};
  cairo_set_fill_rule(cr, CAIRO_FILL_RULE_WINDING);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_MITER);
  t_path(cr, ts_pusht_goal);
  cairo_set_line_width(cr, 2 * fmax(1.5 * px, 3));
  rgb(cr, C_GOAL_EDGE);
  cairo_stroke(cr);
  t_path(cr, ts_pusht_goal);
  rgb(cr, C_GOAL);
  cairo_fill(cr);
  /* The block, in a blend colour where it covers the goal. */
  t_path(cr, block);
  rgb(cr, C_BLOCK);
  cairo_fill(cr);
  cairo_save(cr);
  t_path(cr, ts_pusht_goal);
  cairo_clip(cr);
  t_path(cr, block);
  rgb(cr, C_OVERLAP);
  cairo_fill(cr);
  cairo_restore(cr);
  cairo_arc(cr, st[0], st[1], 15, 0, 2 * M_PI);
  rgb(cr, C_AGENT);
  cairo_fill(cr);
  if (act) { /* a red cross at the commanded target */
    double w = 3 * px + 2;
    cairo_rectangle(cr, act[0] - w / 2, act[1] - 8, w, 16);
    cairo_rectangle(cr, act[0] - 8, act[1] - w / 2, 16, w);
    rgb(cr, C_ACTION);
    cairo_fill(cr);
  }
  cairo_destroy(cr);
  cairo_surface_flush(sf);
  const unsigned char *d = cairo_image_surface_get_data(sf);
  int stride = cairo_image_surface_get_stride(sf);
  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++) {
      uint32_t v;
      memcpy(&v, d + (size_t)y * stride + 4 * x, 4); /* RGB24: 0x00RRGGBB in native order */
      uint8_t *o = out + 3 * ((size_t)y * size + x);
      o[0] = (uint8_t)(v >> 16);
      o[1] = (uint8_t)(v >> 8);
      o[2] = (uint8_t)v;
    }
  cairo_surface_destroy(sf);
}

static void tmp_name(const char *path, char *out, size_t n) { snprintf(out, n, "%s.tmp-%ld", path, (long)getpid()); }

int ts_png_write(const char *path, int w, int h, const uint8_t *rgb) {
  if (ts_regular_file(path) < 0) return -1; /* never replace a folder, FIFO or device */
  char tmp[1100];
  tmp_name(path, tmp, sizeof tmp);
  /* encode in memory, then checked writes and fsync (stbi_write_png ignores write errors: a
   * full disk left a 0-byte file and success) */
  int len = 0;
  unsigned char *png = stbi_write_png_to_mem(rgb, w * 3, w, h, 3, &len);
  if (!png) return ts_fail("%s: cannot encode PNG", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    int e = errno;
    free(png);
    return ts_fail("%s: cannot write PNG (%s)", path, strerror(e));
  }
  size_t put = fwrite(png, 1, (size_t)len, f);
  free(png);
  int e = put == (size_t)len && fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : errno;
  if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
  if (e) {
    remove(tmp);
    return ts_fail("%s: write failed (%s)", path, strerror(e));
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
  GifColorType colors[256] = {{0, 0, 0}};
  for (int i = 0; i < NCOLORS; i++) {
    colors[i].Red = palette[i][0];
    colors[i].Green = palette[i][1];
    colors[i].Blue = palette[i][2];
  }
  for (int i = 0; i < 216; i++) {
    colors[NCOLORS + i].Red = (GifByteType)(51 * (i / 36));
    colors[NCOLORS + i].Green = (GifByteType)(51 * (i / 6 % 6));
    colors[NCOLORS + i].Blue = (GifByteType)(51 * (i % 6));
  }
  ColorMapObject *map = GifMakeMapObject(256, colors);
  EGifSetGifVersion(g->f, true);
  int ok = EGifPutScreenDesc(g->f, w, h, 256, 0, map) == GIF_OK;
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
  for (int i = 0; i < g->w * g->h; i++) { /* a frame colour exactly, else the cube's nearest */
    const uint8_t *p = rgb + 3 * i;
    int k = 0;
    while (k < NCOLORS && memcmp(p, palette[k], 3)) k++;
    if (k == NCOLORS) k = NCOLORS + 36 * ((p[0] + 25) / 51) + 6 * ((p[1] + 25) / 51) + (p[2] + 25) / 51;
    g->line[i] = (uint8_t)k;
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
