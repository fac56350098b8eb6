/* plot.h: figures to PNG through cairo (training curves, acceptance per step, the scheduler's
 * choices, the report's plots).
 *
 * A figure is a grid of panels (rows x cols, one panel by default); each panel has a title,
 * x and y axis labels (say the unit in them: "step", "ms per chunk"), linear or log axes, and
 * any number of series drawn in distinct colours (tab10 order: blue, orange, green, red,
 * purple, ...) with a legend naming them. Axis ranges follow the data padded by 4% (a bar
 * series also reaches y = 0) unless fixed with ts_fig_xlim / ts_fig_ylim; ticks are 1-2-5
 * steps (ts_plot_ticks) with light grid lines, decades on log axes.
 *
 *   ts_fig *f = ts_fig_new(800, 500, 1, 1);
 *   ts_fig_title(f, "run pusht_d64.h5");
 *   ts_fig_axes(f, 0, "training loss", "step", "loss", TS_LOGY);
 *   ts_fig_series(f, 0, "EMA", step, loss, NULL, n, TS_LINE);
 *   int rc = ts_fig_save(f, "loss.png");   // frees nothing; PNG via a temp file + rename
 *   ts_fig_free(f);
 *
 * Data are copied when a series is added. Points whose x or y is not finite (or not positive
 * on a log axis) are left out and break the line there; points are joined in the order given,
 * so x need not be ascending. A panel with no drawable point says "no data". Errors (a bad
 * panel index, n < 0, missing arrays, an unwritable path) return -1 with ts_fail's message;
 * bad data never does. Text is drawn in DejaVu Sans (fonts-dejavu-core) when present. */
#ifndef TS_PLOT_H
#define TS_PLOT_H

typedef struct ts_fig ts_fig;

/* Axis scales for ts_fig_axes (OR them). */
enum { TS_LOGX = 1, TS_LOGY = 2 };

/* Series styles (OR them; 0 means TS_LINE).
 *   TS_LINE     a polyline through the points
 *   TS_MARKERS  a filled circle at each point
 *   TS_STEP     a staircase: y[i] held over the half-way points to its neighbours (for a
 *               value chosen per timestep, like the scheduler's L)
 *   TS_BARS     a bar from 0 (the axis bottom on a log axis) to y[i], 0.8 of the spacing wide
 *   TS_ERRBARS  with err: a vertical bar y[i] +- err[i] with caps
 *   TS_BAND     with err: the band y +- err shaded in the series colour (mean +- se) */
enum { TS_LINE = 1, TS_MARKERS = 2, TS_STEP = 4, TS_BARS = 8, TS_ERRBARS = 16, TS_BAND = 32 };

/* A w x h pixel figure (each 64..8192) of rows x cols panels (each 1..8), numbered row by row
 * from 0. Aborts on out-of-memory; returns NULL with ts_fail's message on bad sizes. */
ts_fig *ts_fig_new(int w, int h, int rows, int cols);
void ts_fig_free(ts_fig *f);
/* The figure's title, centred above the panels (say which run). */
int ts_fig_title(ts_fig *f, const char *title);
/* A panel's title, axis labels (any may be NULL) and scale (TS_LOGX | TS_LOGY or 0). */
int ts_fig_axes(ts_fig *f, int panel, const char *title, const char *xlabel, const char *ylabel, int scale);
/* Fixed axis ranges (lo < hi, positive on a log axis); points outside are clipped. */
int ts_fig_xlim(ts_fig *f, int panel, double lo, double hi);
int ts_fig_ylim(ts_fig *f, int panel, double lo, double hi);
/* Adds n points (x[i], y[i]) to a panel; err (may be NULL) is the half-width drawn by
 * TS_ERRBARS or TS_BAND. name (NULL: no legend entry) appears in the panel's legend, placed in
 * the corner with the fewest points. At most 16 series per panel. */
int ts_fig_series(ts_fig *f, int panel, const char *name, const double *x, const double *y, const double *err, int n,
                  int style);
/* Draws the figure and writes it as an RGB PNG to path (through path.tmp-<pid>, renamed). */
int ts_fig_save(const ts_fig *f, const char *path);

/* Nice tick values for an axis showing [lo, hi]: multiples of 1, 2 or 5 x 10^k, the finest
 * giving at most max_ticks inside the range; on a log axis (log != 0, 0 < lo) the decades
 * inside it (every 2nd, 3rd, ... when more than max_ticks), or 1-2-5 x 10^k when fewer than
 * two decades fall inside. Values are exact decimals (0.6, not 0.6000000000000001). Writes at
 * most cap values to ticks and returns how many; 0 for an empty or non-finite range. */
int ts_plot_ticks(double lo, double hi, int log, int max_ticks, double *ticks, int cap);
/* The padded axis range ts_fig_save uses for data spanning [dmin, dmax]: 4% of the span on
 * each side (of the log span on a log axis); when dmin and dmax agree to 12 digits, +-10% of
 * the value (+-0.5 at 0; a factor of 10^0.5 on a log axis). */
void ts_plot_range(double dmin, double dmax, int log, double *lo, double *hi);
/* The label of tick value v among ticks `step` apart (linear) or on a log axis: "0.2", "-3",
 * "250k", "1.5M", "1e-05"; on log axes "0.001".."1000" and "1e-4", "1e6" beyond. */
void ts_plot_tick_label(double v, double step, int log, char *buf, int n);

/* Compatibility: one line plot of y against x (log-scale y when logy), 640 x 400, no labels. */
int ts_plot_png(const char *path, const double *x, const double *y, int n, int logy);

#endif
