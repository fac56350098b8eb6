#include "timer.h"
#include "pool.h"
#include <cblas.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

double ts_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ts_set_threads(int n) {
  if (n <= 0) return;
  openblas_set_num_threads(n);
  ts_parallel_threads(n);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double ts_median(double *x, int n) {
  if (n <= 0) return 0;
  qsort(x, (size_t)n, sizeof *x, cmp_d);
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

int ts_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}
