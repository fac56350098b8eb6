/* h5io.h: HDF5 files for checkpoints and datasets.
 * Writers build the file in memory and ts_h5_commit writes it to "<path>.tmp-<pid>" (checked
 * writes, fsync) and renames it onto <path>, so a crash or a full disk never leaves a
 * half-written file under the real name, and a failed write is one error line, not a crash. Datasets are float32 or int64,
 * chunked and deflate-compressed (level settable); intermediate groups are created on demand ("a/b/c").
 * Every failure leaves one line in ts_error() naming the file and the object. Only regular
 * files are opened, and only a regular file (or nothing) is replaced: a folder, FIFO or
 * device at the path is refused before any open (a FIFO would block). Sizes read from a
 * file are checked (core/sizes.h) before anything is allocated. */
#ifndef TS_H5IO_H
#define TS_H5IO_H

#include "tensor.h"
#include <stdint.h>

typedef struct ts_h5 ts_h5;

ts_h5 *ts_h5_create(const char *path);
ts_h5 *ts_h5_open(const char *path); /* read-only */
int ts_h5_commit(ts_h5 *f);          /* writer: flush, close, rename; reader: close */
void ts_h5_close(ts_h5 *f);          /* reader: close; writer: abandon and delete the temp file */
const char *ts_h5_path(const ts_h5 *f);
/* Deflate level for the datasets written after this call (default 4; 0 = none). Checkpoints
 * use 0: deflate shrinks weights and AdamW moments by about a quarter but costs ~4 s per save
 * of the 5 M-parameter U-Net (level 1: ~2.5 s), which frequent checkpointing cannot afford. */
void ts_h5_set_deflate(ts_h5 *f, int level);

int ts_h5_write_f32(ts_h5 *f, const char *name, const float *data, int ndim, const int64_t *dims);
int ts_h5_write_i64(ts_h5 *f, const char *name, const int64_t *data, int ndim, const int64_t *dims);
int ts_h5_write_tensor(ts_h5 *f, const char *name, const ts_tensor *t);
/* Attributes on an object ("/" for the root; the group is created if needed). */
int ts_h5_attr_str(ts_h5 *f, const char *obj, const char *key, const char *val);
int ts_h5_attr_i64(ts_h5 *f, const char *obj, const char *key, int64_t val);
int ts_h5_attr_f64(ts_h5 *f, const char *obj, const char *key, double val);

int ts_h5_exists(ts_h5 *f, const char *name);
/* Shape of a dataset; returns rank or -1. */
int ts_h5_shape(ts_h5 *f, const char *name, int64_t dims[TS_MAXDIM]);
/* Read a float32 dataset into t: rank, shape and dtype must match t exactly. */
int ts_h5_check_tensor(ts_h5 *f, const char *name, const ts_tensor *t); /* the same checks, no read */
int ts_h5_read_tensor(ts_h5 *f, const char *name, ts_tensor *t);
/* Read a dataset of any float type as float32 (malloc'd, caller frees). */
float *ts_h5_read_f32(ts_h5 *f, const char *name, int *ndim, int64_t dims[TS_MAXDIM]);
int64_t *ts_h5_read_i64(ts_h5 *f, const char *name, int *ndim, int64_t dims[TS_MAXDIM]);
/* String attribute, malloc'd (NULL + error when absent). */
char *ts_h5_get_attr_str(ts_h5 *f, const char *obj, const char *key);
/* 1 when obj (a group or dataset) exists and has attribute key, else 0 (no message). */
int ts_h5_has_attr(ts_h5 *f, const char *obj, const char *key);
int ts_h5_get_attr_i64(ts_h5 *f, const char *obj, const char *key, int64_t *val);
int ts_h5_get_attr_f64(ts_h5 *f, const char *obj, const char *key, double *val);
/* Names of the direct children of a group, in HDF5's name order; malloc'd array of malloc'd
 * strings, count in *n. Free with ts_h5_free_names. */
char **ts_h5_list(ts_h5 *f, const char *group, int *n);
void ts_h5_free_names(char **names, int n);

#endif
