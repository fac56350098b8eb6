#include "sizes.h"
#include "error.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ts_mul_ok(int64_t a, int64_t b, int64_t *out) {
  if (a < 0 || b < 0) return -1;
  if (a != 0 && b > INT64_MAX / a) return -1;
  *out = a * b;
  return 0;
}

static int64_t user_limit; /* ts_set_max_array_bytes; 0: none */

void ts_set_max_array_bytes(int64_t bytes) { user_limit = bytes > 0 ? bytes : 0; }

int64_t ts_max_array_bytes(void) {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  int64_t lim = user_limit && user_limit < TS_MAX_ARRAY_BYTES ? user_limit : TS_MAX_ARRAY_BYTES, mem;
  if (pages > 0 && size > 0 && ts_mul_ok(pages, size, &mem) == 0 && mem < lim) lim = mem;
  return lim;
}

int ts_check_array(const char *file, const char *array, int nd, const int64_t *dims, int64_t esize, int64_t *bytes) {
  char shape[256] = "(";
  int64_t n = esize, ok = 1;
  for (int i = 0; i < nd; i++) {
    size_t l = strlen(shape);
    snprintf(shape + l, sizeof shape - l, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (ok && ts_mul_ok(n, dims[i], &n)) ok = 0;
  }
  size_t l = strlen(shape);
  snprintf(shape + l, sizeof shape - l, ")");
  int64_t lim = ts_max_array_bytes();
  if (!ok)
    return ts_fail("%s: %s of shape %s has a size that overflows 64 bits (limit %lld bytes)", file, array, shape,
                   (long long)lim);
  if (n > lim)
    return ts_fail("%s: %s of shape %s needs %lld bytes, above the limit of %lld bytes (16 GiB, the machine's memory or the "
                   "process's limit)",
                   file, array, shape, (long long)n, (long long)lim);
  if (bytes) *bytes = n;
  return 0;
}

int ts_regular_file(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT) return 1;
    return ts_fail("%s: %s", path, strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return ts_fail("%s: is a directory, not a file", path);
  if (!S_ISREG(st.st_mode)) return ts_fail("%s: is not a regular file (a FIFO, socket or device)", path);
  return 0;
}
