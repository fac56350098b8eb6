/* sizes.h: sizes computed from files, checked before anything is allocated.
 * A size read from a file (a zarr shape, an HDF5 dataset's dims) is multiplied out with
 * overflow checks and compared with a stated limit: TS_MAX_ARRAY_BYTES, or the machine's
 * physical memory when that is smaller. A refusal is one line in ts_error() naming the file,
 * the array and the size. Regular-file checks for paths the tools read or replace live here
 * too, so a FIFO or a device never blocks or feeds a reader forever. */
#ifndef TS_SIZES_H
#define TS_SIZES_H

#include <stdint.h>

/* The largest single array any reader allocates: 16 GiB. */
#define TS_MAX_ARRAY_BYTES ((int64_t)1 << 34)

/* *out = a * b for non-negative a, b; -1 (no message) when it would overflow int64. */
int ts_mul_ok(int64_t a, int64_t b, int64_t *out);
/* The byte limit in force: min(TS_MAX_ARRAY_BYTES, physical memory, the process's own limit). */
int64_t ts_max_array_bytes(void);
/* A tighter limit for this process (an embedding with little memory, the fuzz harnesses);
 * <= 0 removes it. Only lowers the limit, never raises it above TS_MAX_ARRAY_BYTES. */
void ts_set_max_array_bytes(int64_t bytes);
/* The product of dims[0..nd) times esize, in *bytes, within ts_max_array_bytes(); otherwise
 * -1 with "FILE: ARRAY of shape (a, b, ...) needs N bytes, above the limit of L bytes (...)". */
int ts_check_array(const char *file, const char *array, int nd, const int64_t *dims, int64_t esize, int64_t *bytes);
/* 0 when path is a regular file; 1 when it does not exist; -1 with "PATH: is a directory /
 * is not a regular file" (or another stat error) otherwise. */
int ts_regular_file(const char *path);

#endif
