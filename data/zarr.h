/* zarr.h: read zarr v2 arrays (Diffusion Policy's ReplayBuffer layout) into memory.
 * Supported: C order; compressor null or blosc (any internal codec blosc was built with);
 * little-endian or single-byte ints, unsigned ints, floats and bools; any chunking; chunk keys
 * separated by '.' or '/'; missing chunks take fill_value (counted in missing_chunks, so callers
 * can warn or refuse). Anything else, or a chunk whose size or checksum-free header does not
 * add up, is refused with one line naming the file.
 * Hostile input: .zarray is at most TS_ZARR_MAX_META bytes of JSON nested at most
 * TS_ZARR_MAX_DEPTH deep (checked without recursion); the array's size (as int64, the widest
 * read) and its chunk's size are multiplied out with overflow checks and must fit
 * core/sizes.h's limit (16 GiB or the machine's memory); at most TS_ZARR_MAX_CHUNKS chunks;
 * .zarray and chunks must be regular files (a directory or FIFO there is refused, only a
 * chunk that does not exist counts as missing). */
#ifndef TS_ZARR_H
#define TS_ZARR_H

#include <stdint.h>

#define TS_ZARR_MAXDIM 8
#define TS_ZARR_MAX_META (1 << 20)
#define TS_ZARR_MAX_DEPTH 32
#define TS_ZARR_MAX_CHUNKS ((int64_t)1 << 24)

typedef struct ts_zarr {
  char dir[1024];
  int ndim;
  int64_t shape[TS_ZARR_MAXDIM], chunks[TS_ZARR_MAXDIM];
  char kind;     /* 'f' float, 'i' signed int, 'u' unsigned int, 'b' bool */
  int itemsize;  /* bytes */
  int blosc;     /* 1: blosc compressor, 0: none */
  char sep;      /* chunk key separator */
  double fill;   /* fill value for missing chunks */
  int64_t nchunks, missing_chunks; /* set by the last read: chunks in the grid, chunks absent */
} ts_zarr;

/* Parse DIR/.zarray. */
int ts_zarr_open(const char *dir, ts_zarr *z);
int64_t ts_zarr_numel(const ts_zarr *z);
/* The whole array converted to float32 / int64 (malloc'd; NULL + ts_error() on failure);
 * z->nchunks and z->missing_chunks say how many chunks were absent (read as fill_value). */
float *ts_zarr_read_f32(ts_zarr *z);
int64_t *ts_zarr_read_i64(ts_zarr *z);

#endif
