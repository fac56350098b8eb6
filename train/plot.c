/* plot.c: figures drawn with cairo (see plot.h for the contract). */
#include "plot.h"
#include "core/error.h"
#include "core/sizes.h"
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SERIES 16

typedef struct {
  char *name;
  double *x, *y, *err; /* err may be NULL */
  int n, style;
} series;

typedef struct {
  char *title, *xlabel, *ylabel;
  int scale, fixx, fixy;
  double xlim[2], ylim[2];
  series s[MAX_SERIES];
  int ns;
} panel;

struct ts_fig {
  int w, h, rows, cols;
  char *title;
  panel *p;
};

/* tab10: distinct on white and for the common colour-vision deficiencies in the first few. */
static const double colors[10][3] = {
  {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
  {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

static char *dup_or_null(const char *s) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) abort();
  return d;
}

ts_fig *ts_fig_new(int w, int h, int rows, int cols) {
  if (w < 64 || h < 64 || w > 8192 || h > 8192 || rows < 1 || cols < 1 || rows > 8 || cols > 8) {
    ts_fail("figure: bad size %dx%d pixels, %dx%d panels (64..8192 pixels, 1..8 panels a side)", w, h, rows, cols);
    return NULL;
  }
  ts_fig *f = calloc(1, sizeof *f);
  if (!f) abort();
  f->p = calloc((size_t)(rows * cols), sizeof *f->p);
  if (!f->p) abort();
  f->w = w;
  f->h = h;
  f->rows = rows;
  f->cols = cols;
  return f;
}

void ts_fig_free(ts_fig *f) {
  if (!f) return;
  for (int i = 0; i < f->rows * f->cols; i++) {
    panel *p = &f->p[i];
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    for (int k = 0; k < p->ns; k++) {
      free(p->s[k].name);
      free(p->s[k].x);
      free(p->s[k].y);
      free(p->s[k].err);
    }
  }
  free(f->p);
  free(f->title);
  free(f);
}

int ts_fig_title(ts_fig *f, const char *title) {
  free(f->title);
  f->title = dup_or_null(title);
  return 0;
}

static panel *get_panel(ts_fig *f, int i) {
  if (i < 0 || i >= f->rows * f->cols) {
    ts_fail("figure: no panel %d (the figure has %d)", i, f->rows * f->cols);
    return NULL;
  }
  return &f->p[i];
}

int ts_fig_axes(ts_fig *f, int i, const char *title, const char *xlabel, const char *ylabel, int scale) {
  panel *p = get_panel(f, i);
  if (!p) return -1;
  free(p->title);
  free(p->xlabel);
  free(p->ylabel);
  p->title = dup_or_null(title);
  p->xlabel = dup_or_null(xlabel);
  p->ylabel = dup_or_null(ylabel);
  p->scale = scale & (TS_LOGX | TS_LOGY);
  return 0;
}

static int set_lim(ts_fig *f, int i, double lo, double hi, int logs, int y) {
  panel *p = get_panel(f, i);
  if (!p) return -1;
  if (!(isfinite(lo) && isfinite(hi) && lo < hi) || (logs && lo <= 0))
    return ts_fail("figure: bad %c range [%g, %g]%s", y ? 'y' : 'x', lo, hi, logs ? " on a log axis" : "");
  double *lim = y ? p->ylim : p->xlim;
  lim[0] = lo;
  lim[1] = hi;
  if (y) p->fixy = 1;
  else p->fixx = 1;
  return 0;
}

int ts_fig_xlim(ts_fig *f, int i, double lo, double hi) {
  panel *p = get_panel(f, i);
  return p ? set_lim(f, i, lo, hi, p->scale & TS_LOGX, 0) : -1;
}

int ts_fig_ylim(ts_fig *f, int i, double lo, double hi) {
  panel *p = get_panel(f, i);
  return p ? set_lim(f, i, lo, hi, p->scale & TS_LOGY, 1) : -1;
}

static double *copy(const double *a, int n) {
  double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
  if (!d) abort();
  if (n > 0) memcpy(d, a, (size_t)n * sizeof *d);
  return d;
}

int ts_fig_series(ts_fig *f, int i, const char *name, const double *x, const double *y, const double *err, int n,
                  int style) {
  panel *p = get_panel(f, i);
  if (!p) return -1;
  if (n < 0 || (n > 0 && (!x || !y))) return ts_fail("figure: series '%s' has n = %d and no data", name ? name : "", n);
  if (p->ns == MAX_SERIES) return ts_fail("figure: panel %d already has %d series", i, MAX_SERIES);
  series *s = &p->s[p->ns++];
  s->name = dup_or_null(name);
  s->x = copy(x, n);
  s->y = copy(y, n);
  s->err = err ? copy(err, n) : NULL;
  s->n = n;
  s->style = style ? style : TS_LINE;
  return 0;
}

/* --- ticks ------------------------------------------------------------------------------ */

static double pow10i(int e) { /* exact for |e| <= 22 */
  double p = 1;
  for (int i = 0; i < (e < 0 ? -e : e); i++) p *= 10;
  return p;
}

/* m * 10^e as the double nearest the decimal. */
static double dec(double m, int e) { return e >= 0 ? m * pow10i(e) : m / pow10i(-e); }

static int linear_ticks(double lo, double hi, int max_ticks, double *t, int cap) {
  static const int ms[3] = {1, 2, 5};
  double span = hi - lo, l = log10(span / max_ticks);
  if (!isfinite(l) || l < -300 || l > 300) return 0;
  int e0 = (int)floor(l);
  for (int e = e0 - 1; e <= e0 + 2; e++)
    for (int j = 0; j < 3; j++) {
      double step = dec(ms[j], e), a = lo / step, b = hi / step;
      double k0 = ceil(a - 1e-9 * fmax(1, fabs(a))), k1 = floor(b + 1e-9 * fmax(1, fabs(b)));
      if (k1 - k0 + 1 > max_ticks) continue;
      int n = 0;
      for (double k = k0; k <= k1 && n < cap; k++) t[n++] = k == 0 ? 0 : dec(k * ms[j], e);
      return n;
    }
  return 0;
}

int ts_plot_ticks(double lo, double hi, int log, int max_ticks, double *t, int cap) {
  if (!(isfinite(lo) && isfinite(hi)) || hi <= lo || cap <= 0 || (log && lo <= 0)) return 0;
  if (max_ticks < 2) max_ticks = 2;
  if (!log) return linear_ticks(lo, hi, max_ticks, t, cap);
  double a = log10(lo), b = log10(hi);
  int d0 = (int)ceil(a - 1e-9), d1 = (int)floor(b + 1e-9), nd = d1 - d0 + 1;
  int n = 0;
  if (nd >= 2) {
    int every = (nd + max_ticks - 1) / max_ticks;
    for (int d = d0; d <= d1 && n < cap; d++)
      if (((d % every) + every) % every == 0) t[n++] = dec(1, d);
    return n;
  }
  static const int ms[3] = {1, 2, 5};
  for (int e = (int)floor(a) - 1; e <= (int)ceil(b) && n < cap; e++)
    for (int j = 0; j < 3 && n < cap; j++) {
      double v = dec(ms[j], e);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) t[n++] = v;
    }
  if (n >= 2 && n <= max_ticks) return n;
  return linear_ticks(lo, hi, max_ticks, t, cap);
}

void ts_plot_range(double dmin, double dmax, int log, double *lo, double *hi) {
  if (log) {
    double a = log10(dmin), b = log10(dmax), pad = b - a > 1e-12 ? 0.04 * (b - a) : 0.5;
    *lo = pow(10, a - pad);
    *hi = pow(10, b + pad);
    return;
  }
  double pad = dmax - dmin > 1e-12 * fmax(fabs(dmin), fabs(dmax)) ? 0.04 * (dmax - dmin) : (dmin != 0 ? 0.1 * fabs(dmin) : 0.5);
  *lo = dmin - pad;
  *hi = dmax + pad;
}

void ts_plot_tick_label(double v, double step, int log, char *buf, int n) {
  if (log) {
    double d = log10(v);
    if (fabs(d - round(d)) < 1e-9 && (d < -3.5 || d > 3.5)) snprintf(buf, (size_t)n, "1e%d", (int)round(d));
    else snprintf(buf, (size_t)n, "%g", v);
    return;
  }
  if (step > 0 && fabs(v) < 1e-6 * step) v = 0; /* no "-0" */
  const char *unit = "";
  if (step >= 1e5) {
    v /= 1e6;
    step /= 1e6;
    unit = "M";
  } else if (step >= 1e3) {
    v /= 1e3;
    step /= 1e3;
    unit = "k";
  }
  if (!(step > 0) || step < 1e-4) {
    snprintf(buf, (size_t)n, "%g%s", v, unit);
    return;
  }
  int decimals = step < 1 ? (int)ceil(-log10(step) - 1e-9) : 0;
  snprintf(buf, (size_t)n, "%.*f%s", decimals, v, unit);
  if (v == 0) snprintf(buf, (size_t)n, "0");
}

/* --- drawing ---------------------------------------------------------------------------- */

typedef struct {
  double px, py, pw, ph; /* plot area */
  double x0, x1, y0, y1; /* axis ranges, log10 of them on log axes */
  int logx, logy;
} frame;

static int valid(const frame *fr, double x, double y) {
  return isfinite(x) && isfinite(y) && (!fr->logx || x > 0) && (!fr->logy || y > 0);
}
static double tx(const frame *fr, double x) { return fr->logx ? log10(x) : x; }
static double ty(const frame *fr, double y) { return fr->logy ? log10(y) : y; }
static double X(const frame *fr, double x) { return fr->px + (tx(fr, x) - fr->x0) / (fr->x1 - fr->x0) * fr->pw; }
/* y on the axis, with values at or below 0 on a log axis at the bottom edge (and a bit past). */
static double Y(const frame *fr, double y) {
  if (fr->logy && !(y > 0)) return fr->py + fr->ph + 2;
  return fr->py + fr->ph - (ty(fr, y) - fr->y0) / (fr->y1 - fr->y0) * fr->ph;
}

static void set_rgb(cairo_t *cr, const double c[3], double alpha) {
  cairo_set_source_rgba(cr, c[0] / 255, c[1] / 255, c[2] / 255, alpha);
}

/* Text with its left edge at x times ax (0 left, 0.5 centred, 1 right-aligned) and its
 * ascent-to-descent box at y times ay (0 top, 0.5 middle, 1 bottom). Returns its width. */
static double text(cairo_t *cr, double x, double y, const char *s, double ax, double ay) {
  cairo_text_extents_t te;
  cairo_font_extents_t fe;
  cairo_text_extents(cr, s, &te);
  cairo_font_extents(cr, &fe);
  double h = fe.ascent + fe.descent;
  cairo_move_to(cr, x - ax * te.x_advance, y - ay * h + fe.ascent);
  cairo_show_text(cr, s);
  return te.x_advance;
}

static double text_width(cairo_t *cr, const char *s) {
  cairo_text_extents_t te;
  cairo_text_extents(cr, s, &te);
  return te.x_advance;
}

/* Font size fs, shrunk so that s fits in width w. */
static void fit_font(cairo_t *cr, const char *s, double fs, double w) {
  cairo_set_font_size(cr, fs);
  double tw = text_width(cr, s);
  if (tw > w && w > 0) cairo_set_font_size(cr, fmax(6, fs * w / tw));
}

static void font(cairo_t *cr, double size, int bold) {
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

/* Smallest gap between consecutive drawable points in transformed x (0 if none). */
static double min_gap(const frame *fr, const series *s) {
  double g = 0, prev = NAN;
  for (int i = 0; i < s->n; i++) {
    if (!valid(fr, s->x[i], s->y[i])) continue;
    double v = tx(fr, s->x[i]);
    if (isfinite(prev) && fabs(v - prev) > 0 && (g == 0 || fabs(v - prev) < g)) g = fabs(v - prev);
    prev = v;
  }
  return g;
}

/* The data's extent in transformed coordinates; returns the number of drawable points. */
static int extent(const panel *p, const frame *fr, double *xa, double *xb, double *ya, double *yb) {
  int n = 0;
  *xa = *ya = INFINITY;
  *xb = *yb = -INFINITY;
  for (int k = 0; k < p->ns; k++) {
    const series *s = &p->s[k];
    double half = (s->style & (TS_STEP | TS_BARS)) ? min_gap(fr, s) / 2 : 0;
    for (int i = 0; i < s->n; i++) {
      if (!valid(fr, s->x[i], s->y[i])) continue;
      n++;
      double x = tx(fr, s->x[i]), y = ty(fr, s->y[i]);
      *xa = fmin(*xa, x - half);
      *xb = fmax(*xb, x + half);
      *ya = fmin(*ya, y);
      *yb = fmax(*yb, y);
      if (s->err && (s->style & (TS_ERRBARS | TS_BAND)) && isfinite(s->err[i])) {
        double e = fabs(s->err[i]);
        if (!fr->logy) {
          *ya = fmin(*ya, y - e);
          *yb = fmax(*yb, y + e);
        } else {
          *yb = fmax(*yb, log10(s->y[i] + e));
          if (s->y[i] - e > 0) *ya = fmin(*ya, log10(s->y[i] - e));
        }
      }
      if ((s->style & TS_BARS) && !fr->logy) {
        *ya = fmin(*ya, 0);
        *yb = fmax(*yb, 0);
      }
    }
  }
  return n;
}

static void axis_range(int fixed, const double lim[2], int log, double a, double b, int have, double *lo, double *hi) {
  double l, h;
  if (fixed) {
    l = lim[0];
    h = lim[1];
  } else if (!have) {
    l = log ? 1 : 0;
    h = log ? 10 : 1;
  } else {
    ts_plot_range(log ? pow(10, a) : a, log ? pow(10, b) : b, log, &l, &h);
  }
  *lo = log ? log10(l) : l;
  *hi = log ? log10(h) : h;
  if (!(isfinite(*lo) && isfinite(*hi) && *hi - *lo > 1e-300 * fmax(1, fabs(*lo)) && isfinite(*hi - *lo))) {
    *lo = 0; /* data too extreme to scale: an empty unit axis */
    *hi = 1;
  }
}

static void draw_series(cairo_t *cr, const frame *fr, const series *s, const double c[3], double lw) {
  int *ok = malloc((size_t)(s->n > 0 ? s->n : 1) * sizeof *ok);
  if (!ok) abort();
  for (int i = 0; i < s->n; i++) ok[i] = valid(fr, s->x[i], s->y[i]);
  int has_err = s->err != NULL;
  /* The shaded band, one polygon per unbroken run of points. */
  if (has_err && (s->style & TS_BAND))
    for (int i = 0; i < s->n;) {
      if (!ok[i] || !isfinite(s->err[i])) {
        i++;
        continue;
      }
      int j = i;
      while (j < s->n && ok[j] && isfinite(s->err[j])) j++;
      for (int k = i; k < j; k++) {
        double yy = Y(fr, s->y[k] + fabs(s->err[k]));
        if (k == i) cairo_move_to(cr, X(fr, s->x[k]), yy);
        else cairo_line_to(cr, X(fr, s->x[k]), yy);
      }
      for (int k = j - 1; k >= i; k--) cairo_line_to(cr, X(fr, s->x[k]), Y(fr, s->y[k] - fabs(s->err[k])));
      cairo_close_path(cr);
      set_rgb(cr, c, 0.22);
      cairo_fill(cr);
      i = j;
    }
  double gap = min_gap(fr, s) / (fr->x1 - fr->x0) * fr->pw; /* pixels */
  if (s->style & TS_BARS) {
    double bw = gap > 0 ? 0.8 * gap : 0.05 * fr->pw, base = fr->logy ? fr->py + fr->ph : Y(fr, 0);
    base = fmin(fmax(base, fr->py), fr->py + fr->ph);
    for (int i = 0; i < s->n; i++) {
      if (!ok[i]) continue;
      double x = X(fr, s->x[i]), y = Y(fr, s->y[i]);
      cairo_rectangle(cr, x - bw / 2, fmin(y, base), bw, fabs(base - y));
    }
    set_rgb(cr, c, 1);
    cairo_fill(cr);
  }
  cairo_set_line_width(cr, lw);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  if (s->style & (TS_LINE | TS_STEP)) {
    double half = gap > 0 ? gap / 2 : 5;
    int pen = 0;
    double prev_x = 0;
    for (int i = 0; i < s->n; i++) {
      if (!ok[i]) {
        pen = 0;
        continue;
      }
      double x = X(fr, s->x[i]), y = Y(fr, s->y[i]);
      if (!(s->style & TS_STEP)) {
        if (pen) cairo_line_to(cr, x, y);
        else cairo_move_to(cr, x, y);
      } else {
        /* y held from half-way to the previous point to half-way to the next (x either way). */
        int next = i + 1 < s->n && ok[i + 1];
        double xn = next ? X(fr, s->x[i + 1]) : 0, dir = next ? (xn >= x ? 1 : -1) : (pen && x < prev_x ? -1 : 1);
        double left = pen ? (prev_x + x) / 2 : x - dir * half, right = next ? (x + xn) / 2 : x + dir * half;
        if (pen) cairo_line_to(cr, left, y);
        else cairo_move_to(cr, left, y);
        cairo_line_to(cr, right, y);
      }
      prev_x = x;
      pen = 1;
    }
    set_rgb(cr, c, 1);
    cairo_stroke(cr);
  }
  if (has_err && (s->style & TS_ERRBARS)) {
    cairo_set_line_width(cr, fmax(1, lw * 0.6));
    double cap = 3 * lw / 2;
    for (int i = 0; i < s->n; i++) {
      if (!ok[i] || !isfinite(s->err[i])) continue;
      double x = X(fr, s->x[i]), e = fabs(s->err[i]), a = Y(fr, s->y[i] - e), b = Y(fr, s->y[i] + e);
      cairo_move_to(cr, x, a);
      cairo_line_to(cr, x, b);
      cairo_move_to(cr, x - cap, a);
      cairo_line_to(cr, x + cap, a);
      cairo_move_to(cr, x - cap, b);
      cairo_line_to(cr, x + cap, b);
    }
    const double dark[3] = {0.5 * c[0], 0.5 * c[1], 0.5 * c[2]};
    set_rgb(cr, s->style & TS_BARS ? dark : c, 1);
    cairo_stroke(cr);
  }
  if (s->style & TS_MARKERS) {
    for (int i = 0; i < s->n; i++) {
      if (!ok[i]) continue;
      cairo_new_sub_path(cr);
      cairo_arc(cr, X(fr, s->x[i]), Y(fr, s->y[i]), 1.6 * lw, 0, 2 * M_PI);
    }
    set_rgb(cr, c, 1);
    cairo_fill(cr);
  }
  free(ok);
}

/* How many samples of the panel's curves fall inside the box (for the legend's corner). */
static long crowd(const panel *p, const frame *fr, double bx, double by, double bw, double bh) {
  long n = 0;
  for (int k = 0; k < p->ns; k++) {
    const series *s = &p->s[k];
    double px = NAN, py = NAN;
    for (int i = 0; i < s->n; i++) {
      if (!valid(fr, s->x[i], s->y[i])) {
        px = NAN;
        continue;
      }
      double x = X(fr, s->x[i]), y = Y(fr, s->y[i]);
      if (s->style & TS_BARS) { /* the bar from its base up to y */
        double base = fr->logy ? fr->py + fr->ph : Y(fr, 0);
        for (int j = 0; j <= 20; j++) {
          double sy = base + (y - base) * j / 20;
          n += x >= bx && x <= bx + bw && sy >= by && sy <= by + bh;
        }
      }
      int steps = 1;
      if (isfinite(px) && (s->style & (TS_LINE | TS_STEP))) steps = 1 + (int)fmin(200, hypot(x - px, y - py) / 6);
      for (int j = 0; j < steps; j++) {
        double t = steps > 1 ? (double)(j + 1) / steps : 1;
        double sx = isfinite(px) && steps > 1 ? px + t * (x - px) : x, sy = isfinite(py) && steps > 1 ? py + t * (y - py) : y;
        if (sx >= bx && sx <= bx + bw && sy >= by && sy <= by + bh) n++;
      }
      px = x;
      py = y;
    }
  }
  return n;
}

static void legend(cairo_t *cr, const panel *p, const frame *fr, double fs, double lw) {
  int n = 0;
  double tw = 0;
  font(cr, fs, 0);
  for (int k = 0; k < p->ns; k++)
    if (p->s[k].name) {
      n++;
      tw = fmax(tw, text_width(cr, p->s[k].name));
    }
  if (!n) return;
  double row = fs * 1.45, sw = 2.2 * fs, bw = 8 + sw + 6 + tw + 8, bh = n * row + 8, m = 8;
  bw = fmin(bw, fr->pw - 2 * m);
  double cx[4] = {fr->px + fr->pw - m - bw, fr->px + m, fr->px + fr->pw - m - bw, fr->px + m};
  double cy[4] = {fr->py + m, fr->py + m, fr->py + fr->ph - m - bh, fr->py + fr->ph - m - bh};
  int best = 0;
  long bc = -1;
  for (int c = 0; c < 4; c++) {
    long v = crowd(p, fr, cx[c], cy[c], bw, bh);
    if (bc < 0 || v < bc) {
      bc = v;
      best = c;
    }
  }
  double x = cx[best], y = cy[best];
  cairo_rectangle(cr, x, y, bw, bh);
  cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
  cairo_fill_preserve(cr);
  cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
  cairo_set_line_width(cr, 1);
  cairo_stroke(cr);
  int r = 0;
  for (int k = 0; k < p->ns; k++) {
    const series *s = &p->s[k];
    if (!s->name) continue;
    const double *c = colors[k % 10];
    double my = y + 4 + (r + 0.5) * row, sx = x + 8;
    if (s->style & (TS_BARS | TS_BAND) && !(s->style & (TS_LINE | TS_STEP))) {
      cairo_rectangle(cr, sx, my - fs * 0.4, sw, fs * 0.8);
      set_rgb(cr, c, s->style & TS_BARS ? 1 : 0.4);
      cairo_fill(cr);
    }
    if (s->style & (TS_LINE | TS_STEP)) {
      cairo_move_to(cr, sx, my);
      cairo_line_to(cr, sx + sw, my);
      cairo_set_line_width(cr, lw);
      set_rgb(cr, c, 1);
      cairo_stroke(cr);
    }
    if (s->style & TS_MARKERS) {
      cairo_arc(cr, sx + sw / 2, my, 1.6 * lw, 0, 2 * M_PI);
      set_rgb(cr, c, 1);
      cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_save(cr);
    cairo_rectangle(cr, x, y, bw - 4, bh);
    cairo_clip(cr);
    text(cr, sx + sw + 6, my, s->name, 0, 0.5);
    cairo_restore(cr);
    r++;
  }
}

static void draw_panel(cairo_t *cr, const panel *p, double cx, double cy, double cw, double ch) {
  double sc = fmax(0.75, fmin(1.25, fmin(cw / 520, ch / 340)));
  double fs_tick = 11 * sc, fs_label = 12 * sc, fs_title = 13 * sc, lw = 1.8 * sc;
  frame fr = {.logx = p->scale & TS_LOGX, .logy = (p->scale & TS_LOGY) != 0};
  double xa, xb, ya, yb;
  int have = extent(p, &fr, &xa, &xb, &ya, &yb);
  axis_range(p->fixx, p->xlim, fr.logx, xa, xb, have, &fr.x0, &fr.x1);
  axis_range(p->fixy, p->ylim, fr.logy, ya, yb, have, &fr.y0, &fr.y1);
  double lo_x = fr.logx ? pow(10, fr.x0) : fr.x0, hi_x = fr.logx ? pow(10, fr.x1) : fr.x1;
  double lo_y = fr.logy ? pow(10, fr.y0) : fr.y0, hi_y = fr.logy ? pow(10, fr.y1) : fr.y1;

  /* Margins: title above, tick labels and axis labels left and below. */
  double top = p->title ? fs_title * 2.0 : 10, bottom = 6 + fs_tick * 1.3 + 4 + (p->xlabel ? fs_label * 1.4 : 0) + 4;
  double yt[64], xt[64];
  int nyt = ts_plot_ticks(lo_y, hi_y, fr.logy, (int)fmax(2, (ch - top - bottom) / (3.6 * fs_tick)), yt, 64);
  char lab[64];
  font(cr, fs_tick, 0);
  double ystep = nyt > 1 ? yt[1] - yt[0] : 0, ylw = 0;
  for (int i = 0; i < nyt; i++) {
    ts_plot_tick_label(yt[i], ystep, fr.logy, lab, sizeof lab);
    ylw = fmax(ylw, text_width(cr, lab));
  }
  double left = 8 + (p->ylabel ? fs_label * 1.5 : 0) + ylw + 8, right = 8 + 1.2 * fs_tick; /* room for half a label */
  fr.px = cx + left;
  fr.py = cy + top;
  fr.pw = fmax(10, cw - left - right);
  fr.ph = fmax(10, ch - top - bottom);
  /* x ticks: as many as fit with their labels a label-width apart. */
  int nxt = 0, want = (int)fmax(2, fr.pw / (6 * fs_tick));
  double xstep = 0;
  for (; want >= 2; want--) {
    nxt = ts_plot_ticks(lo_x, hi_x, fr.logx, want, xt, 64);
    xstep = nxt > 1 ? xt[1] - xt[0] : 0;
    double w = 0, spacing = fr.pw;
    for (int i = 0; i < nxt; i++) {
      ts_plot_tick_label(xt[i], xstep, fr.logx, lab, sizeof lab);
      w = fmax(w, text_width(cr, lab));
      if (i) spacing = fmin(spacing, fabs(X(&fr, xt[i]) - X(&fr, xt[i - 1])));
    }
    if (nxt < 2 || spacing >= 1.6 * w) break;
  }

  /* Grid, the series (clipped to the plot area), then axes on top. */
  cairo_set_line_width(cr, 1);
  cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
  for (int i = 0; i < nyt; i++) {
    double y = floor(Y(&fr, yt[i])) + 0.5;
    cairo_move_to(cr, fr.px, y);
    cairo_line_to(cr, fr.px + fr.pw, y);
  }
  for (int i = 0; i < nxt; i++) {
    double x = floor(X(&fr, xt[i])) + 0.5;
    cairo_move_to(cr, x, fr.py);
    cairo_line_to(cr, x, fr.py + fr.ph);
  }
  cairo_stroke(cr);
  cairo_save(cr);
  cairo_rectangle(cr, fr.px, fr.py, fr.pw, fr.ph);
  cairo_clip(cr);
  for (int k = 0; k < p->ns; k++) draw_series(cr, &fr, &p->s[k], colors[k % 10], lw);
  cairo_restore(cr);
  if (!have) {
    font(cr, fs_label, 0);
    cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
    text(cr, fr.px + fr.pw / 2, fr.py + fr.ph / 2, "no data", 0.5, 0.5);
  }
  /* Frame: light on the top and right, dark axes on the left and bottom with tick marks. */
  double x0 = floor(fr.px) + 0.5, y0 = floor(fr.py) + 0.5, x1 = floor(fr.px + fr.pw) + 0.5, y1 = floor(fr.py + fr.ph) + 0.5;
  cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
  cairo_move_to(cr, x0, y0);
  cairo_line_to(cr, x1, y0);
  cairo_line_to(cr, x1, y1);
  cairo_stroke(cr);
  cairo_set_source_rgb(cr, 0.13, 0.13, 0.13);
  cairo_set_line_width(cr, 1.2);
  cairo_move_to(cr, x0, y0);
  cairo_line_to(cr, x0, y1);
  cairo_line_to(cr, x1, y1);
  for (int i = 0; i < nyt; i++) {
    double y = floor(Y(&fr, yt[i])) + 0.5;
    cairo_move_to(cr, x0 - 4, y);
    cairo_line_to(cr, x0, y);
  }
  for (int i = 0; i < nxt; i++) {
    double x = floor(X(&fr, xt[i])) + 0.5;
    cairo_move_to(cr, x, y1);
    cairo_line_to(cr, x, y1 + 4);
  }
  cairo_stroke(cr);
  font(cr, fs_tick, 0);
  for (int i = 0; i < nyt; i++) {
    ts_plot_tick_label(yt[i], ystep, fr.logy, lab, sizeof lab);
    text(cr, x0 - 7, Y(&fr, yt[i]), lab, 1, 0.5);
  }
  for (int i = 0; i < nxt; i++) {
    ts_plot_tick_label(xt[i], xstep, fr.logx, lab, sizeof lab);
    text(cr, X(&fr, xt[i]), y1 + 6, lab, 0.5, 0);
  }
  if (p->xlabel) {
    font(cr, fs_label, 0);
    fit_font(cr, p->xlabel, fs_label, fr.pw);
    text(cr, fr.px + fr.pw / 2, cy + ch - 4, p->xlabel, 0.5, 1);
  }
  if (p->ylabel) {
    cairo_save(cr);
    cairo_translate(cr, cx + 6, fr.py + fr.ph / 2);
    cairo_rotate(cr, -M_PI / 2);
    font(cr, fs_label, 0);
    fit_font(cr, p->ylabel, fs_label, fr.ph);
    text(cr, 0, 0, p->ylabel, 0.5, 0);
    cairo_restore(cr);
  }
  if (p->title) {
    font(cr, fs_title, 1);
    fit_font(cr, p->title, fs_title, cw - 8);
    text(cr, fr.px + fr.pw / 2, cy + 4, p->title, 0.5, 0);
  }
  legend(cr, p, &fr, fs_tick, lw);
}

int ts_fig_save(const ts_fig *f, const char *path) {
  if (ts_regular_file(path) < 0) return -1; /* the rename would replace a folder, FIFO or device */
  cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, f->w, f->h);
  cairo_t *cr = cairo_create(sf);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  double top = 0;
  if (f->title) {
    double fs = 16 * fmax(0.75, fmin(1.25, f->w / 800.0));
    font(cr, fs, 1);
    fit_font(cr, f->title, fs, f->w - 16);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, f->w / 2.0, 6, f->title, 0.5, 0);
    top = fs * 1.9;
  }
  double cw = (double)f->w / f->cols, ch = (f->h - top) / f->rows;
  for (int r = 0; r < f->rows; r++)
    for (int c = 0; c < f->cols; c++) {
      cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
      draw_panel(cr, &f->p[r * f->cols + c], c * cw, top + r * ch, cw, ch);
    }
  cairo_surface_flush(sf);
  cairo_status_t st = cairo_status(cr);
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
  if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_write_to_png(sf, tmp);
  cairo_destroy(cr);
  cairo_surface_destroy(sf);
  if (st != CAIRO_STATUS_SUCCESS) {
    remove(tmp);
    return ts_fail("%s: cannot write PNG (%s)", path, cairo_status_to_string(st));
  }
  if (rename(tmp, path) != 0) {
    remove(tmp);
    return ts_fail("%s: cannot rename temporary file into place", path);
  }
  return 0;
}

int ts_plot_png(const char *path, const double *x, const double *y, int n, int logy) {
  ts_fig *f = ts_fig_new(640, 400, 1, 1);
  int rc = ts_fig_axes(f, 0, NULL, NULL, NULL, logy ? TS_LOGY : 0);
  if (!rc) rc = ts_fig_series(f, 0, NULL, x, y, NULL, n, TS_LINE);
  if (!rc) rc = ts_fig_save(f, path);
  ts_fig_free(f);
  return rc;
}
