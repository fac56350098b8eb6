/* render.h: pictures of Push-T states, PNG frames and animated GIFs.
 * Files are written to a temporary name and renamed into place. */
#ifndef TS_RENDER_H
#define TS_RENDER_H

#include <stdint.h>

/* Draw a state (agent x, y, block x, y, angle) into rgb (size x size x 3): goal T in light
 * green, block T in slate grey, agent in blue, and, if action is non-NULL, a red cross at the
 * commanded target. World coordinates map to pixels as in the reference (y down). */
void ts_pusht_render(const double state[5], const double *action, int size, uint8_t *rgb);

int ts_png_write(const char *path, int w, int h, const uint8_t *rgb);

typedef struct ts_gif ts_gif;
/* delay_cs: frame delay in hundredths of a second (10 = the task's 10 Hz). */
ts_gif *ts_gif_open(const char *path, int w, int h, int delay_cs);
int ts_gif_frame(ts_gif *g, const uint8_t *rgb);
int ts_gif_close(ts_gif *g); /* finish and rename into place; 0 on success */
void ts_gif_abort(ts_gif *g);

#endif
