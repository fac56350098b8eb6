/* timer.h: the process-wide helpers for timing and threading that every stage shares. */
#ifndef TS_TIMER_H
#define TS_TIMER_H

double ts_now(void);                 /* monotonic seconds */
void ts_set_threads(int n);          /* OpenBLAS and op worker threads; n <= 0 keeps the default */
double ts_median(double *x, int n);  /* sorts x in place; NaN-free input */
int ts_cpu_count(void);              /* online CPUs, at least 1 */

#endif
