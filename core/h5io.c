#include "h5io.h"
#include "error.h"
#include "sizes.h"
#include <hdf5.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ts_h5 {
  hid_t fid;
  int writing, deflate;
  FILE *tmpf; /* writer: the temporary file, written only by ts_h5_commit */
  char path[1024];
  char tmp[1100];
};

static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

const char *ts_h5_path(const ts_h5 *f) { return f->path; }

ts_h5 *ts_h5_create(const char *path) {
  quiet();
  if (ts_regular_file(path) < 0) return NULL; /* an existing folder, FIFO or device is never replaced */
  ts_h5 *f = calloc(1, sizeof *f);
  if (!f) abort();
  snprintf(f->path, sizeof f->path, "%s", path);
  snprintf(f->tmp, sizeof f->tmp, "%s.tmp-%ld", path, (long)getpid());
  /* The file is built in memory (HDF5's core driver, no backing store) and written out by
   * ts_h5_commit with plain checked writes: HDF5 1.10 crashes at exit after it failed to write
   * a file of its own (a full disk), so it never writes to disk here. The temporary file is
   * created now, so an unwritable folder fails at once. */
  if (!(f->tmpf = fopen(f->tmp, "wb"))) {
    ts_fail("%s: cannot create file (is the folder there and writable?)", path);
    free(f);
    return NULL;
  }
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_core(fapl, 1 << 20, 0);
  f->fid = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f->fid < 0) {
    ts_fail("%s: cannot create an HDF5 file in memory", path);
    fclose(f->tmpf);
    remove(f->tmp);
    free(f);
    return NULL;
  }
  f->writing = 1;
  f->deflate = 4;
  return f;
}

void ts_h5_set_deflate(ts_h5 *f, int level) { f->deflate = level < 0 ? 0 : level > 9 ? 9 : level; }

ts_h5 *ts_h5_open(const char *path) {
  quiet();
  int reg = ts_regular_file(path); /* before any open: a FIFO would block the reader */
  if (reg < 0) return NULL;
  if (reg > 0 || access(path, R_OK) != 0) {
    ts_fail("%s: no such file or not readable", path);
    return NULL;
  }
  ts_h5 *f = calloc(1, sizeof *f);
  if (!f) abort();
  snprintf(f->path, sizeof f->path, "%s", path);
  if (H5Fis_hdf5(path) <= 0 || (f->fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
    ts_fail("%s: not an HDF5 file or corrupt", path);
    free(f);
    return NULL;
  }
  return f;
}

/* The in-memory file's bytes (malloc'd) in *img, size in *n; the file is closed either way. */
static int take_image(ts_h5 *f, void **img, size_t *n) {
  *img = NULL;
  ssize_t len = H5Fflush(f->fid, H5F_SCOPE_GLOBAL) < 0 ? -1 : H5Fget_file_image(f->fid, NULL, 0);
  if (len > 0 && (*img = malloc((size_t)len)) && H5Fget_file_image(f->fid, *img, (size_t)len) == len) *n = (size_t)len;
  else len = -1;
  H5Fclose(f->fid);
  if (len < 0) {
    free(*img);
    *img = NULL;
    return ts_fail("%s: could not build the HDF5 file in memory", f->path);
  }
  return 0;
}

int ts_h5_commit(ts_h5 *f) {
  int rc = 0;
  if (f->writing) {
    void *img;
    size_t n = 0;
    rc = take_image(f, &img, &n);
    if (!rc) {
      errno = 0;
      int ok = fwrite(img, 1, n, f->tmpf) == n;
      ok = fflush(f->tmpf) == 0 && ok;
      ok = fsync(fileno(f->tmpf)) == 0 && ok;
      int err = errno;
      ok = fclose(f->tmpf) == 0 && ok;
      f->tmpf = NULL;
      if (!ok) rc = ts_fail("%s: write failed (%s)", f->path, strerror(err ? err : errno ? errno : EIO));
      else if (rename(f->tmp, f->path) != 0) rc = ts_fail("%s: cannot rename temporary file into place", f->path);
    }
    free(img);
    if (f->tmpf) fclose(f->tmpf);
    if (rc) remove(f->tmp);
  } else {
    H5Fclose(f->fid);
  }
  free(f);
  return rc;
}

void ts_h5_close(ts_h5 *f) {
  if (!f) return;
  H5Fclose(f->fid);
  if (f->writing) {
    fclose(f->tmpf);
    remove(f->tmp);
  }
  free(f);
}

/* Does every component of a slash path exist? */
int ts_h5_exists(ts_h5 *f, const char *name) {
  char buf[1024];
  size_t len = strlen(name);
  if (len >= sizeof buf) return 0;
  for (size_t i = 1; i <= len; i++) {
    if (name[i] == '/' || name[i] == 0) {
      memcpy(buf, name, i);
      buf[i] = 0;
      if (strcmp(buf, "/") == 0) continue;
      if (H5Lexists(f->fid, buf, H5P_DEFAULT) <= 0) return 0;
    }
  }
  return 1;
}

static hid_t link_props(void) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  return lcpl;
}

static int write_any(ts_h5 *f, const char *name, hid_t ftype, hid_t mtype, const void *data, int ndim,
                     const int64_t *dims, size_t esize) {
  hsize_t d[TS_MAXDIM] = {0}, chunk[TS_MAXDIM] = {0};
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    d[i] = chunk[i] = (hsize_t)dims[i];
    n *= dims[i];
  }
  hid_t space = H5Screate_simple(ndim, d, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = link_props();
  if (ndim > 0 && n > 0) {
    /* Chunks of about 1 MiB along the first axis. */
    int64_t row = n / dims[0], rows = (int64_t)(1 << 20) / (int64_t)esize / (row ? row : 1);
    chunk[0] = (hsize_t)(rows < 1 ? 1 : rows > dims[0] ? dims[0] : rows);
    H5Pset_chunk(dcpl, ndim, chunk);
    if (f->deflate) H5Pset_deflate(dcpl, (unsigned)f->deflate);
  }
  hid_t ds = H5Dcreate2(f->fid, name, ftype, space, lcpl, dcpl, H5P_DEFAULT);
  int rc = 0;
  if (ds < 0) rc = ts_fail("%s: cannot create dataset '%s'", f->path, name);
  else if (n > 0 && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    rc = ts_fail("%s: cannot write dataset '%s'", f->path, name);
  if (ds >= 0) H5Dclose(ds);
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  H5Sclose(space);
  return rc;
}

int ts_h5_write_f32(ts_h5 *f, const char *name, const float *data, int ndim, const int64_t *dims) {
  return write_any(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, ndim, dims, 4);
}

int ts_h5_write_i64(ts_h5 *f, const char *name, const int64_t *data, int ndim, const int64_t *dims) {
  return write_any(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, data, ndim, dims, 8);
}

int ts_h5_write_tensor(ts_h5 *f, const char *name, const ts_tensor *t) {
  int64_t dims[TS_MAXDIM];
  for (int i = 0; i < t->ndim; i++) dims[i] = t->shape[i];
  return ts_h5_write_f32(f, name, t->data, t->ndim, dims);
}

/* Open (creating a group when writing and absent) the object that carries attributes. */
static hid_t attr_owner(ts_h5 *f, const char *obj, int create) {
  if (strcmp(obj, "/") != 0 && !ts_h5_exists(f, obj)) {
    if (!create) return -1;
    hid_t lcpl = link_props(), g = H5Gcreate2(f->fid, obj, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0) return -1;
    H5Gclose(g);
  }
  return H5Oopen(f->fid, obj, H5P_DEFAULT);
}

static int put_attr(ts_h5 *f, const char *obj, const char *key, hid_t ftype, hid_t mtype, const void *val) {
  hid_t o = attr_owner(f, obj, 1);
  if (o < 0) return ts_fail("%s: cannot open object '%s' for attribute '%s'", f->path, obj, key);
  if (H5Aexists(o, key) > 0) H5Adelete(o, key);
  hid_t space = H5Screate(H5S_SCALAR), a = H5Acreate2(o, key, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
  int rc = (a < 0 || H5Awrite(a, mtype, val) < 0) ? ts_fail("%s: cannot write attribute '%s' on '%s'", f->path, key, obj) : 0;
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  H5Oclose(o);
  return rc;
}

int ts_h5_attr_str(ts_h5 *f, const char *obj, const char *key, const char *val) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  int rc = put_attr(f, obj, key, t, t, &val);
  H5Tclose(t);
  return rc;
}

int ts_h5_attr_i64(ts_h5 *f, const char *obj, const char *key, int64_t val) {
  return put_attr(f, obj, key, H5T_STD_I64LE, H5T_NATIVE_INT64, &val);
}

int ts_h5_attr_f64(ts_h5 *f, const char *obj, const char *key, double val) {
  return put_attr(f, obj, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &val);
}

static hid_t open_ds(ts_h5 *f, const char *name) {
  if (!ts_h5_exists(f, name)) {
    ts_fail("%s: missing dataset '%s'", f->path, name);
    return -1;
  }
  hid_t ds = H5Dopen2(f->fid, name, H5P_DEFAULT);
  if (ds < 0) ts_fail("%s: '%s' is not a readable dataset", f->path, name);
  return ds;
}

static int ds_dims(hid_t ds, int64_t dims[TS_MAXDIM]) {
  hid_t sp = H5Dget_space(ds);
  int nd = H5Sget_simple_extent_ndims(sp);
  hsize_t d[32];
  if (nd < 0 || nd > 32) nd = -1;
  else H5Sget_simple_extent_dims(sp, d, NULL);
  H5Sclose(sp);
  if (nd > TS_MAXDIM) return -2;
  for (int i = 0; i < nd; i++) dims[i] = (int64_t)d[i];
  return nd;
}

int ts_h5_shape(ts_h5 *f, const char *name, int64_t dims[TS_MAXDIM]) {
  hid_t ds = open_ds(f, name);
  if (ds < 0) return -1;
  int nd = ds_dims(ds, dims);
  H5Dclose(ds);
  if (nd < 0) return ts_fail("%s: dataset '%s' has an unsupported rank", f->path, name);
  return nd;
}

/* dtype float32 and t's shape, or -1 with one line */
static int check_ds(ts_h5 *f, hid_t ds, const char *name, const ts_tensor *t) {
  int64_t dims[TS_MAXDIM];
  int nd = ds_dims(ds, dims), rc = 0;
  hid_t ty = H5Dget_type(ds);
  char want[64], got[64] = "(";
  ts_shape_str(t, want, sizeof want);
  for (int i = 0; i < nd && nd > 0; i++)
    snprintf(got + strlen(got), sizeof got - strlen(got), i ? ", %lld" : "%lld", (long long)dims[i]);
  strncat(got, ")", sizeof got - strlen(got) - 1);
  if (H5Tget_class(ty) != H5T_FLOAT || H5Tget_size(ty) != 4)
    rc = ts_fail("%s: tensor '%s' has dtype other than float32", f->path, name);
  else if (nd < 0 || nd != t->ndim)
    rc = ts_fail("%s: tensor '%s' has shape %s, expected %s", f->path, name, nd < 0 ? "?" : got, want);
  else {
    for (int i = 0; i < nd; i++)
      if (dims[i] != t->shape[i]) rc = ts_fail("%s: tensor '%s' has shape %s, expected %s", f->path, name, got, want);
  }
  H5Tclose(ty);
  return rc;
}

int ts_h5_check_tensor(ts_h5 *f, const char *name, const ts_tensor *t) {
  hid_t ds = open_ds(f, name);
  if (ds < 0) return -1;
  int rc = check_ds(f, ds, name, t);
  H5Dclose(ds);
  return rc;
}

int ts_h5_read_tensor(ts_h5 *f, const char *name, ts_tensor *t) {
  hid_t ds = open_ds(f, name);
  if (ds < 0) return -1;
  int rc = check_ds(f, ds, name, t);
  if (!rc && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0)
    rc = ts_fail("%s: cannot read tensor '%s' (corrupt?)", f->path, name);
  H5Dclose(ds);
  return rc;
}

static void *read_conv(ts_h5 *f, const char *name, hid_t mtype, size_t esize, int *ndim, int64_t dims[TS_MAXDIM]) {
  hid_t ds = open_ds(f, name);
  if (ds < 0) return NULL;
  int nd = ds_dims(ds, dims);
  void *buf = NULL;
  if (nd < 0) {
    ts_fail("%s: dataset '%s' has an unsupported rank", f->path, name);
  } else {
    int64_t n = 1, bytes;
    hid_t ty = H5Dget_type(ds);
    H5T_class_t cls = H5Tget_class(ty);
    H5Tclose(ty);
    if (ts_check_array(f->path, name, nd, dims, (int64_t)esize, &bytes)) {
      /* message set */
    } else if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
      ts_fail("%s: dataset '%s' is not numeric", f->path, name);
    } else {
      n = bytes / (int64_t)esize;
      buf = malloc((size_t)(n ? n : 1) * esize);
      if (!buf) {
        ts_fail("%s: out of memory reading '%s' (%lld bytes)", f->path, name, (long long)bytes);
        H5Dclose(ds);
        return NULL;
      }
      if (n > 0 && H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        ts_fail("%s: cannot read dataset '%s' (corrupt?)", f->path, name);
        free(buf);
        buf = NULL;
      }
    }
  }
  H5Dclose(ds);
  if (ndim) *ndim = nd;
  return buf;
}

float *ts_h5_read_f32(ts_h5 *f, const char *name, int *ndim, int64_t dims[TS_MAXDIM]) {
  return read_conv(f, name, H5T_NATIVE_FLOAT, 4, ndim, dims);
}

int64_t *ts_h5_read_i64(ts_h5 *f, const char *name, int *ndim, int64_t dims[TS_MAXDIM]) {
  return read_conv(f, name, H5T_NATIVE_INT64, 8, ndim, dims);
}

static hid_t get_attr(ts_h5 *f, const char *obj, const char *key, hid_t *owner) {
  *owner = attr_owner(f, obj, 0);
  if (*owner < 0 || H5Aexists(*owner, key) <= 0) {
    if (*owner >= 0) H5Oclose(*owner);
    ts_fail("%s: missing attribute '%s' on '%s'", f->path, key, obj);
    return -1;
  }
  return H5Aopen(*owner, key, H5P_DEFAULT);
}

int ts_h5_has_attr(ts_h5 *f, const char *obj, const char *key) {
  if (strcmp(obj, "/") && !ts_h5_exists(f, obj)) return 0;
  hid_t o = attr_owner(f, obj, 0);
  if (o < 0) return 0;
  int has = H5Aexists(o, key) > 0;
  H5Oclose(o);
  return has;
}

/* ---- the stored length of a variable-length string attribute, read from the file ----
 * HDF5 1.10 converts a variable-length string by allocating and zeroing the length its
 * descriptor states before it reads the (much shorter) heap object, and offers no call that
 * returns that length first: a flipped bit in it made H5Aread allocate and memset gigabytes.
 * So the descriptor is read here from the object header (version 1, as this library writes
 * them; a version-2 header carries checksums, so HDF5 refuses a damaged one itself): the
 * attribute message named key, its datatype a variable-length string, its dataspace scalar,
 * its data (length u32, heap address, heap index). 1 with *len set, 0 when not found that way. */
static uint64_t le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static int vlen_attr_len(FILE *fp, int64_t fsize, uint64_t addr, const char *key, uint64_t *len) {
  unsigned char h[16];
  if (addr + 16 > (uint64_t)fsize || fseeko(fp, (off_t)addr, SEEK_SET) || fread(h, 1, 16, fp) != 16 || h[0] != 1) return 0;
  uint64_t nmsg = le(h + 2, 2), size = le(h + 8, 4);
  uint64_t blocks[16][2] = {{addr + 16, size}};
  int nb = 1, found = 0;
  uint64_t seen = 0;
  for (int b = 0; b < nb && !found; b++) {
    uint64_t at = blocks[b][0], n = blocks[b][1];
    if (n > (1u << 20) || at + n > (uint64_t)fsize) return 0;
    unsigned char *buf = malloc(n + 1);
    if (!buf) return 0;
    if (fseeko(fp, (off_t)at, SEEK_SET) || fread(buf, 1, n, fp) != n) {
      free(buf);
      return 0;
    }
    for (uint64_t o = 0; o + 8 <= n && seen < nmsg && !found; seen++) {
      uint64_t type = le(buf + o, 2), ms = le(buf + o + 2, 2);
      const unsigned char *m = buf + o + 8;
      if (o + 8 + ms > n) break;
      if (type == 0x10 && ms >= 16 && nb < 16) { /* continuation: address, length */
        blocks[nb][0] = le(m, 8), blocks[nb][1] = le(m + 8, 8);
        nb++;
      } else if (type == 0x0C && ms >= 8 && m[0] >= 1 && m[0] <= 3) { /* attribute */
        uint64_t ns = le(m + 2, 2), ts = le(m + 4, 2), ss = le(m + 6, 2), p = m[0] == 3 ? 9 : 8;
        int pad = m[0] == 1;
        uint64_t nsp = pad ? (ns + 7) / 8 * 8 : ns, tsp = pad ? (ts + 7) / 8 * 8 : ts, ssp = pad ? (ss + 7) / 8 * 8 : ss;
        if (p + nsp + tsp + ssp + 16 <= ms && ns == strlen(key) + 1 && !memcmp(m + p, key, ns)) {
          const unsigned char *t = m + p + nsp, *s = t + tsp, *d = s + ssp;
          int vlen_str = ts >= 8 && (t[0] & 0x0F) == 9 && (t[1] & 0x0F) == 1;
          int scalar = ss >= 2 && s[1] == 0;
          if (vlen_str && scalar) {
            *len = le(d, 4);
            found = 1;
          } else found = -1;
        }
      }
      o += 8 + ms;
    }
    free(buf);
  }
  return found == 1;
}

/* -1 (with a message) when key's stored length passes the file's size; 0 otherwise. */
static int check_vlen_len(ts_h5 *f, hid_t owner, const char *obj, const char *key) {
  H5O_info_t info;
  if (H5Oget_info2(owner, &info, H5O_INFO_BASIC) < 0) return 0;
  FILE *fp = fopen(f->path, "rb");
  if (!fp) return 0;
  int64_t fsize = -1;
  unsigned char sig[8];
  if (fread(sig, 1, 8, fp) == 8 && !memcmp(sig, "\x89HDF\r\n\x1a\n", 8) && !fseeko(fp, 0, SEEK_END)) fsize = (int64_t)ftello(fp);
  uint64_t len = 0;
  int rc = 0;
  if (fsize > 0 && vlen_attr_len(fp, fsize, (uint64_t)info.addr, key, &len) && len > (uint64_t)fsize)
    rc = ts_fail("%s: attribute '%s' on '%s' claims a string of %llu bytes, longer than the file (%lld bytes): a damaged "
                 "file", f->path, key, obj, (unsigned long long)len, (long long)fsize);
  fclose(fp);
  return rc;
}

char *ts_h5_get_attr_str(ts_h5 *f, const char *obj, const char *key) {
  hid_t o, a = get_attr(f, obj, key, &o);
  if (a < 0) return NULL;
  hid_t ft = H5Aget_type(a);
  char *out = NULL;
  if (H5Tget_class(ft) != H5T_STRING) {
    ts_fail("%s: attribute '%s' on '%s' is not a string", f->path, key, obj);
  } else if (H5Tis_variable_str(ft) > 0 && !f->writing && check_vlen_len(f, o, obj, key)) {
    /* refused: its length passes the file's size */
  } else if (H5Tis_variable_str(ft) > 0) {
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(ft));
    char *s = NULL;
    if (H5Aread(a, mt, &s) >= 0 && s) {
      out = strdup(s);
      H5free_memory(s);
    }
    H5Tclose(mt);
  } else {
    size_t n = H5Tget_size(ft);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n + 1);
    out = calloc(n + 2, 1);
    if (H5Aread(a, mt, out) < 0) {
      free(out);
      out = NULL;
    }
    H5Tclose(mt);
  }
  if (!out && !ts_error()[0]) ts_fail("%s: cannot read attribute '%s' on '%s'", f->path, key, obj);
  H5Tclose(ft);
  H5Aclose(a);
  H5Oclose(o);
  return out;
}

static int get_num_attr(ts_h5 *f, const char *obj, const char *key, hid_t mtype, void *val) {
  hid_t o, a = get_attr(f, obj, key, &o);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a);
  H5T_class_t cls = H5Tget_class(ft);
  hid_t sp = H5Aget_space(a);
  hssize_t npts = H5Sget_simple_extent_npoints(sp);
  int rc = 0;
  if ((cls != H5T_INTEGER && cls != H5T_FLOAT) || npts != 1 || H5Aread(a, mtype, val) < 0)
    rc = ts_fail("%s: attribute '%s' on '%s' is not a number", f->path, key, obj);
  H5Sclose(sp);
  H5Tclose(ft);
  H5Aclose(a);
  H5Oclose(o);
  return rc;
}

int ts_h5_get_attr_i64(ts_h5 *f, const char *obj, const char *key, int64_t *val) {
  return get_num_attr(f, obj, key, H5T_NATIVE_INT64, val);
}

int ts_h5_get_attr_f64(ts_h5 *f, const char *obj, const char *key, double *val) {
  return get_num_attr(f, obj, key, H5T_NATIVE_DOUBLE, val);
}

char **ts_h5_list(ts_h5 *f, const char *group, int *n) {
  *n = 0;
  if (strcmp(group, "/") != 0 && !ts_h5_exists(f, group)) {
    ts_fail("%s: missing group '%s'", f->path, group);
    return NULL;
  }
  hid_t g = H5Gopen2(f->fid, group, H5P_DEFAULT);
  if (g < 0) {
    ts_fail("%s: '%s' is not a group", f->path, group);
    return NULL;
  }
  H5G_info_t info;
  H5Gget_info(g, &info);
  char **names = calloc(info.nlinks + 1, sizeof(char *));
  if (!names) abort();
  for (hsize_t i = 0; i < info.nlinks; i++) {
    ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
    names[i] = calloc((size_t)(len > 0 ? len : 0) + 1, 1);
    if (!names[i]) abort();
    if (len > 0) H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, names[i], (size_t)len + 1, H5P_DEFAULT);
  }
  H5Gclose(g);
  *n = (int)info.nlinks;
  return names;
}

void ts_h5_free_names(char **names, int n) {
  if (!names) return;
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
}
