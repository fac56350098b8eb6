/* plot.h: a minimal line plot to PNG (the training curves).
 *
 * 640x400 pixels: axes, the curve, and labels for the y range and the first and last x in a
 * 3x5 pixel font. x must be ascending and n >= 1; with logy, y values at or below 1e-12 are
 * drawn at 1e-12. Written through a temporary file and renamed (ts_png_write). */
#ifndef TS_PLOT_H
#define TS_PLOT_H

/* A line plot (log-scale y when logy) of y against x into a PNG, with min/max labels. */
int ts_plot_png(const char *path, const double *x, const double *y, int n, int logy);

#endif
