/* render.h: pictures of Push-T states, PNG frames and animated GIFs.
 * Files are written to a temporary name and renamed into place. */
#ifndef TS_RENDER_H
#define TS_RENDER_H

#include <stdint.h>

/* Draw a state (agent x, y, block x, y, angle) into rgb (size x size x 3) with cairo,
 * antialiased: grey walls, goal T in light green (144, 238, 144) outlined in sea green
 * (46, 139, 87), block T in slate grey (119, 136, 153) and (98, 160, 120) where it covers the
 * goal, agent a blue (65, 105, 225) disc of radius 15, and, if action is non-NULL, a red
 * (220, 40, 40) cross at the commanded target. World coordinates (0..512, y down) map to
 * pixels as in the reference: pixel (c, r) covers world [c, c+1) x [r, r+1) times 512/size. */
void ts_pusht_render(const double state[5], const double *action, int size, uint8_t *rgb);

int ts_png_write(const char *path, int w, int h, const uint8_t *rgb);

typedef struct ts_gif ts_gif;
/* An animated GIF of frames drawn by ts_pusht_render: its colours map to themselves, edge
 * blends to the nearest of a 6x6x6 colour cube. delay_cs: frame delay in hundredths of a
 * second (10 = the task's 10 Hz). */
ts_gif *ts_gif_open(const char *path, int w, int h, int delay_cs);
int ts_gif_frame(ts_gif *g, const uint8_t *rgb);
int ts_gif_close(ts_gif *g); /* finish and rename into place; 0 on success */
void ts_gif_abort(ts_gif *g);

#endif
