/* zarr.h: read zarr v2 arrays (Diffusion Policy's ReplayBuffer layout) into memory.
 * Supported: C order; compressor null or blosc (any internal codec blosc was built with);
 * little-endian or single-byte ints, unsigned ints, floats and bools; any chunking; chunk keys
 * separated by '.' or '/'; missing chunks take fill_value. Anything else, or a chunk whose
 * size or checksum-free header does not add up, is refused with one line naming the file. */
#ifndef TS_ZARR_H
#define TS_ZARR_H

#include <stdint.h>

#define TS_ZARR_MAXDIM 8

typedef struct ts_zarr {
  char dir[1024];
  int ndim;
  int64_t shape[TS_ZARR_MAXDIM], chunks[TS_ZARR_MAXDIM];
  char kind;     /* 'f' float, 'i' signed int, 'u' unsigned int, 'b' bool */
  int itemsize;  /* bytes */
  int blosc;     /* 1: blosc compressor, 0: none */
  char sep;      /* chunk key separator */
  double fill;   /* fill value for missing chunks */
} ts_zarr;

/* Parse DIR/.zarray. */
int ts_zarr_open(const char *dir, ts_zarr *z);
int64_t ts_zarr_numel(const ts_zarr *z);
/* The whole array converted to float32 / int64 (malloc'd; NULL + ts_error() on failure). */
float *ts_zarr_read_f32(const ts_zarr *z);
int64_t *ts_zarr_read_i64(const ts_zarr *z);

#endif
