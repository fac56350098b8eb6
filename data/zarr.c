#include "zarr.h"
#include "core/error.h"
#include "core/sizes.h"
#include <blosc.h>
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <fcntl.h>
#include <unistd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- a minimal JSON scanner for .zarray: top-level keys of one object ---- */

typedef struct { const char *p, *end; } js;

static void ws(js *j) {
  while (j->p < j->end && isspace((unsigned char)*j->p)) j->p++;
}

/* Skip one JSON string (j->p at its opening quote); 0 on success. */
static int hex4(const char *p, const char *end, unsigned *out);
static int skip_string(js *j) {
  for (j->p++; j->p < j->end && *j->p != '"'; j->p++)
    if (*j->p == '\\') { /* only JSON's escapes */
      unsigned u;
      if (++j->p >= j->end || !*j->p || !strchr("\"\\/bfnrtu", *j->p)) return -1;
      if (*j->p == 'u' && hex4(j->p + 1, j->end, &u)) return -1;
    }
  if (j->p >= j->end) return -1;
  j->p++;
  return 0;
}

/* Skip any JSON value without recursion (an explicit stack of at most TS_ZARR_MAX_DEPTH open
 * containers); 0 on success, -1 on bad syntax, -2 when nested too deep. */
static int skip_value(js *j) {
  char stack[TS_ZARR_MAX_DEPTH];
  int depth = 0;
  for (;;) {
    /* a value */
    ws(j);
    if (j->p >= j->end) return -1;
    char c = *j->p;
    if (c == '"') {
      if (skip_string(j)) return -1;
    } else if (c == '{' || c == '[') {
      if (depth == TS_ZARR_MAX_DEPTH) return -2;
      stack[depth++] = c == '{' ? '}' : ']';
      j->p++;
      ws(j);
      if (j->p < j->end && *j->p == stack[depth - 1]) {
        j->p++;
        depth--;
      } else {
        if (c == '{') { /* first key */
          if (j->p >= j->end || *j->p != '"' || skip_string(j)) return -1;
          ws(j);
          if (j->p >= j->end || *j->p != ':') return -1;
          j->p++;
        }
        continue;
      }
    } else {
      const char *s0 = j->p;
      while (j->p < j->end && (isalnum((unsigned char)*j->p) || strchr("+-.", *j->p))) j->p++;
      if (j->p == s0) return -1;
    }
    /* after a value: close containers, or a comma and the next member */
    for (;;) {
      if (depth == 0) return 0;
      ws(j);
      if (j->p >= j->end) return -1;
      if (*j->p == stack[depth - 1]) {
        j->p++;
        depth--;
        continue;
      }
      if (*j->p != ',') return -1;
      j->p++;
      if (stack[depth - 1] == '}') {
        ws(j);
        if (j->p >= j->end || *j->p != '"' || skip_string(j)) return -1;
        ws(j);
        if (j->p >= j->end || *j->p != ':') return -1;
        j->p++;
      }
      break;
    }
  }
}

static int hex4(const char *p, const char *end, unsigned *out) {
  if (end - p < 4) return -1;
  unsigned u = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    u = u * 16 + (unsigned)d;
  }
  *out = u;
  return 0;
}

/* Decode the JSON string at v (its opening quote, within [v, end)) into out (n bytes, UTF-8,
 * NUL-terminated): the escapes \" \\ \/ \b \f \n \r \t and \uXXXX (surrogate pairs
 * included), so a key or value spelled with escapes reads as what it means. 0 on success, -1 on
 * bad syntax, a \u0000 or a lone surrogate, -2 when the decoded text does not fit in out. */
static int decode_string(const char *v, const char *end, char *out, size_t n) {
  if (!v || v >= end || *v != '"' || n == 0) return -1;
  size_t i = 0;
  int too_long = 0;
  for (v++; v < end && *v != '"'; v++) {
    unsigned char buf[4];
    int len = 1;
    if (*v != '\\') buf[0] = (unsigned char)*v;
    else {
      if (++v >= end) return -1;
      const char *esc = strchr("\"\\/bfnrt", *v);
      if (*v && esc) buf[0] = (unsigned char)"\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrt"];
      else if (*v == 'u') {
        unsigned u, lo;
        if (hex4(v + 1, end, &u)) return -1;
        v += 4;
        if (u >= 0xDC00 && u <= 0xDFFF) return -1;
        if (u >= 0xD800 && u <= 0xDBFF) { /* a high surrogate: its low half must follow */
          if (end - v < 7 || v[1] != '\\' || v[2] != 'u' || hex4(v + 3, end, &lo) || lo < 0xDC00 || lo > 0xDFFF) return -1;
          v += 6;
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (u == 0) return -1;
        if (u < 0x80) buf[0] = (unsigned char)u;
        else if (u < 0x800) {
          buf[0] = (unsigned char)(0xC0 | (u >> 6));
          buf[1] = (unsigned char)(0x80 | (u & 0x3F));
          len = 2;
        } else if (u < 0x10000) {
          buf[0] = (unsigned char)(0xE0 | (u >> 12));
          buf[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
          buf[2] = (unsigned char)(0x80 | (u & 0x3F));
          len = 3;
        } else {
          buf[0] = (unsigned char)(0xF0 | (u >> 18));
          buf[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
          buf[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
          buf[3] = (unsigned char)(0x80 | (u & 0x3F));
          len = 4;
        }
      } else return -1;
    }
    if (i + (size_t)len + 1 > n) too_long = 1;
    else {
      memcpy(out + i, buf, (size_t)len);
      i += (size_t)len;
    }
  }
  out[i] = 0;
  if (v >= end) return -1;
  return too_long ? -2 : 0;
}

/* Find key in the object starting at s; returns a pointer to its value or NULL. Keys are
 * compared decoded (a key spelled "\u0064type" is "dtype"). */
static const char *find_key(const char *s, const char *end, const char *key) {
  js j = {s, end};
  ws(&j);
  if (j.p >= j.end || *j.p != '{') return NULL;
  j.p++;
  for (;;) {
    ws(&j);
    if (j.p >= j.end || *j.p != '"') return NULL;
    char k[64];
    int kr = decode_string(j.p, j.end, k, sizeof k); /* -2: longer than any key looked for */
    if (kr == -1 || skip_value(&j)) return NULL;
    ws(&j);
    if (j.p >= j.end || *j.p != ':') return NULL;
    j.p++;
    ws(&j);
    if (kr == 0 && strcmp(k, key) == 0) return j.p;
    if (skip_value(&j)) return NULL;
    ws(&j);
    if (j.p < j.end && *j.p == ',') j.p++;
    else return NULL;
  }
}

/* A string value (v inside a NUL-terminated text), decoded; -1 when it is not one or does not fit. */
static int get_str(const char *v, char *out, size_t n) {
  if (!v) return -1;
  return decode_string(v, v + strlen(v), out, n) ? -1 : 0;
}

static int get_int_array(const char *v, int64_t *out, int max) {
  if (!v || *v != '[') return -1;
  int n = 0;
  v++;
  for (;;) {
    while (isspace((unsigned char)*v)) v++;
    if (*v == ']') return n;
    char *e;
    errno = 0;
    long long x = strtoll(v, &e, 10);
    if (e == v || n >= max || errno == ERANGE) return -1;
    out[n++] = x;
    v = e;
    while (isspace((unsigned char)*v)) v++;
    if (*v == ',') v++;
    else if (*v != ']') return -1;
  }
}

/* The whole of a regular file of at most max bytes (malloc'd, NUL-terminated). *missing is set
 * (and NULL returned, no message) when the path does not exist; any other failure is NULL with
 * a message naming the path: a directory, FIFO or device, a file above max, a read error. */
static char *slurp(const char *path, size_t max, size_t *len, int *missing) {
  *missing = 0;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) *missing = 1;
    else ts_fail("%s: cannot open (%s)", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  char *buf = NULL;
  if (fstat(fd, &st) != 0) ts_fail("%s: cannot stat (%s)", path, strerror(errno));
  else if (S_ISDIR(st.st_mode)) ts_fail("%s: is a directory, expected a file", path);
  else if (!S_ISREG(st.st_mode)) ts_fail("%s: is not a regular file", path);
  else if (st.st_size < 0 || (uint64_t)st.st_size > max)
    ts_fail("%s: %lld bytes, more than the %zu this file can hold", path, (long long)st.st_size, max);
  else if (!(buf = malloc((size_t)st.st_size + 1))) ts_fail("%s: out of memory for %lld bytes", path, (long long)st.st_size);
  else {
    size_t got = 0, n = (size_t)st.st_size;
    while (got < n) {
      ssize_t r = read(fd, buf + got, n - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += (size_t)r;
    }
    if (got != n) {
      ts_fail("%s: short read (%zu of %zu bytes)", path, got, n);
      free(buf);
      buf = NULL;
    } else {
      buf[got] = 0;
      if (len) *len = got;
    }
  }
  close(fd);
  return buf;
}

int ts_zarr_open(const char *dir, ts_zarr *z) {
  memset(z, 0, sizeof *z);
  if (strlen(dir) >= sizeof z->dir) return ts_fail("%.80s...: path longer than %zu characters", dir, sizeof z->dir - 1);
  snprintf(z->dir, sizeof z->dir, "%s", dir);
  char path[1100];
  snprintf(path, sizeof path, "%s/.zarray", dir);
  size_t len = 0;
  int missing;
  char *txt = slurp(path, TS_ZARR_MAX_META, &len, &missing);
  if (!txt) return missing ? ts_fail("%s: missing .zarray (not a zarr v2 array)", dir) : -1;
  const char *end = txt + len;
  int rc = 0;
  char dtype[16] = "", order[8] = "C", sep[4] = ".", cid[32] = "";
  const char *v;
  js whole = {txt, end};
  int sk = skip_value(&whole);
  if (!sk) ws(&whole);
  if (sk || whole.p != end || *txt == 0) {
    rc = sk == -2 ? ts_fail("%s: JSON nested deeper than %d levels", path, TS_ZARR_MAX_DEPTH)
                  : ts_fail("%s: not valid JSON", path);
    goto done;
  }
  int64_t fmt = 0;
  if (!(v = find_key(txt, end, "zarr_format")) || (fmt = strtoll(v, NULL, 10)) != 2) {
    rc = ts_fail("%s: zarr_format %lld is not supported (need 2)", path, (long long)fmt);
    goto done;
  }
  int nd = get_int_array(find_key(txt, end, "shape"), z->shape, TS_ZARR_MAXDIM);
  int nc = get_int_array(find_key(txt, end, "chunks"), z->chunks, TS_ZARR_MAXDIM);
  if (nd < 1 || nc != nd) {
    rc = ts_fail("%s: bad or missing shape/chunks (integer lists of equal length, at most %d axes)", path, TS_ZARR_MAXDIM);
    goto done;
  }
  z->ndim = nd;
  for (int i = 0; i < nd; i++)
    if (z->shape[i] < 0 || z->chunks[i] <= 0) {
      rc = ts_fail("%s: bad shape or chunk size on axis %d", path, i);
      goto done;
    }
  if (get_str(find_key(txt, end, "dtype"), dtype, sizeof dtype) || strlen(dtype) != 3) {
    rc = ts_fail("%s: missing or structured dtype (only simple dtypes are supported)", path);
    goto done;
  }
  z->kind = dtype[1];
  z->itemsize = atoi(dtype + 2);
  int endian_ok = dtype[0] == '<' || dtype[0] == '|' || (dtype[0] == '>' && z->itemsize == 1);
  int kind_ok = (z->kind == 'f' && (z->itemsize == 4 || z->itemsize == 8)) ||
                ((z->kind == 'i' || z->kind == 'u') && (z->itemsize == 1 || z->itemsize == 2 || z->itemsize == 4 || z->itemsize == 8)) ||
                (z->kind == 'b' && z->itemsize == 1);
  if (!endian_ok || !kind_ok) {
    rc = ts_fail("%s: unsupported dtype '%s'", path, dtype);
    goto done;
  }
  v = find_key(txt, end, "order");
  if (v && get_str(v, order, sizeof order) == 0 && strcmp(order, "C") != 0) {
    rc = ts_fail("%s: order '%s' is not supported (need C)", path, order);
    goto done;
  }
  v = find_key(txt, end, "filters");
  if (v && strncmp(v, "null", 4) != 0 && !(v[0] == '[' && v[1] == ']')) {
    rc = ts_fail("%s: filters are not supported", path);
    goto done;
  }
  v = find_key(txt, end, "dimension_separator");
  if (v && (get_str(v, sep, sizeof sep) || (strcmp(sep, ".") && strcmp(sep, "/")))) {
    rc = ts_fail("%s: bad dimension_separator", path);
    goto done;
  }
  z->sep = sep[0];
  v = find_key(txt, end, "compressor");
  if (!v) {
    rc = ts_fail("%s: missing compressor", path);
    goto done;
  }
  if (strncmp(v, "null", 4) == 0) z->blosc = 0;
  else if (get_str(find_key(v, end, "id"), cid, sizeof cid) == 0 && strcmp(cid, "blosc") == 0) z->blosc = 1;
  else {
    rc = ts_fail("%s: unsupported compressor '%s' (blosc or none)", path, cid[0] ? cid : "?");
    goto done;
  }
  v = find_key(txt, end, "fill_value");
  z->fill = 0;
  if (v && *v == '"') z->fill = strncmp(v, "\"NaN\"", 5) == 0 ? NAN : 0;
  else if (v && strncmp(v, "null", 4) != 0) z->fill = strtod(v, NULL);
  /* Sizes: the whole array as int64 (the widest read), one chunk as stored, the chunk count. */
  int64_t grid = 1, bytes;
  char what[1200];
  snprintf(what, sizeof what, "array '%s'", dir);
  if ((rc = ts_check_array(path, what, nd, z->shape, 8, &bytes))) goto done;
  snprintf(what, sizeof what, "one chunk of '%s'", dir);
  if ((rc = ts_check_array(path, what, nd, z->chunks, z->itemsize, &bytes))) goto done;
  if (z->blosc && bytes > (int64_t)BLOSC_MAX_BUFFERSIZE) {
    rc = ts_fail("%s: chunks of %lld bytes, above blosc's limit of %d", path, (long long)bytes, BLOSC_MAX_BUFFERSIZE);
    goto done;
  }
  for (int i = 0; i < nd; i++) grid *= (z->shape[i] + z->chunks[i] - 1) / z->chunks[i]; /* <= the element count */
  if (grid > TS_ZARR_MAX_CHUNKS) {
    rc = ts_fail("%s: %lld chunks, more than the %lld this reader accepts", path, (long long)grid,
                 (long long)TS_ZARR_MAX_CHUNKS);
    goto done;
  }
done:
  free(txt);
  return rc;
}

int64_t ts_zarr_numel(const ts_zarr *z) {
  int64_t n = 1;
  for (int i = 0; i < z->ndim; i++) n *= z->shape[i];
  return n;
}

static double elem_f(const ts_zarr *z, const unsigned char *p) {
  switch (z->kind) {
  case 'f': {
    if (z->itemsize == 4) {
      float f;
      memcpy(&f, p, 4);
      return f;
    }
    double d;
    memcpy(&d, p, 8);
    return d;
  }
  case 'u': {
    uint64_t u = 0;
    memcpy(&u, p, (size_t)z->itemsize); /* little-endian host */
    return (double)u;
  }
  case 'b': return *p ? 1.0 : 0.0;
  default: {
    int64_t s = 0;
    memcpy(&s, p, (size_t)z->itemsize);
    int shift = 64 - 8 * z->itemsize; /* sign-extend */
    return (double)((int64_t)((uint64_t)s << shift) >> shift);
  }
  }
}

/* Read every chunk; store element i of the array via put(out, i, value). Only the in-bounds
 * box of each chunk is visited (edge chunks are stored padded to full size). */
static int read_all(ts_zarr *z, void *out, int (*put)(void *, int64_t, const ts_zarr *, const unsigned char *),
                    int (*fill)(void *, int64_t, double)) {
  int nd = z->ndim;
  int64_t grid[TS_ZARR_MAXDIM], idx[TS_ZARR_MAXDIM] = {0}, chunk_n = 1, nchunks = 1;
  int64_t cstride[TS_ZARR_MAXDIM], gstride[TS_ZARR_MAXDIM];
  for (int i = nd - 1; i >= 0; i--) { /* sizes were checked by ts_zarr_open */
    grid[i] = (z->shape[i] + z->chunks[i] - 1) / z->chunks[i];
    cstride[i] = chunk_n;
    gstride[i] = i == nd - 1 ? 1 : gstride[i + 1] * z->shape[i + 1];
    chunk_n *= z->chunks[i];
    nchunks *= grid[i];
  }
  z->nchunks = z->missing_chunks = 0;
  if (ts_zarr_numel(z) == 0) return 0;
  z->nchunks = nchunks;
  size_t chunk_bytes = (size_t)chunk_n * (size_t)z->itemsize;
  unsigned char *buf = malloc(chunk_bytes ? chunk_bytes : 1);
  if (!buf) return ts_fail("%s: out of memory for a chunk of %zu bytes", z->dir, chunk_bytes);
  int rc = 0;
  for (int64_t c = 0; c < nchunks && !rc; c++) {
    char key[256] = "", path[1400], sep[2] = {z->sep, 0};
    size_t o = 0;
    for (int i = 0; i < nd && o < sizeof key; i++)
      o += (size_t)snprintf(key + o, sizeof key - o, "%s%lld", i ? sep : "", (long long)idx[i]);
    snprintf(path, sizeof path, "%s/%s", z->dir, key);
    size_t flen = 0;
    int missing;
    char *raw = slurp(path, chunk_bytes + (z->blosc ? BLOSC_MAX_OVERHEAD : 0), &flen, &missing);
    if (!raw && !missing) {
      rc = -1;
      break;
    }
    if (raw && z->blosc) {
      size_t nbytes = 0;
      if (blosc_cbuffer_validate(raw, flen, &nbytes) != 0 || nbytes != chunk_bytes)
        rc = ts_fail("%s: corrupt or truncated blosc chunk (expected %zu bytes decompressed)", path, chunk_bytes);
      else if (blosc_decompress_ctx(raw, buf, chunk_bytes, 1) != (int)chunk_bytes)
        rc = ts_fail("%s: blosc could not decompress the chunk (corrupt?)", path);
    } else if (raw) {
      if (flen != chunk_bytes) rc = ts_fail("%s: chunk has %zu bytes, expected %zu", path, flen, chunk_bytes);
      else memcpy(buf, raw, chunk_bytes);
    }
    free(raw);
    if (rc) break;
    z->missing_chunks += missing;
    int64_t ext[TS_ZARR_MAXDIM], loc[TS_ZARR_MAXDIM] = {0}, base = 0;
    for (int i = 0; i < nd; i++) {
      int64_t off = idx[i] * z->chunks[i];
      ext[i] = z->shape[i] - off < z->chunks[i] ? z->shape[i] - off : z->chunks[i];
      base += off * gstride[i];
    }
    for (;;) {
      int64_t e = 0, gi = base;
      for (int i = 0; i < nd; i++) {
        e += loc[i] * cstride[i];
        gi += loc[i] * gstride[i];
      }
      if (missing ? fill(out, gi, z->fill) : put(out, gi, z, buf + (size_t)e * (size_t)z->itemsize)) {
        rc = ts_fail("%s: element %lld is %s, not an integer in int64's range", missing ? z->dir : path, (long long)gi,
                     missing ? "the fill value" : "a value");
        break;
      }
      int i = nd - 1; /* next element of the box, C order */
      for (; i >= 0; i--) {
        if (++loc[i] < ext[i]) break;
        loc[i] = 0;
      }
      if (i < 0) break;
    }
    for (int i = nd - 1; i >= 0; i--) { /* next chunk */
      if (++idx[i] < grid[i]) break;
      idx[i] = 0;
    }
  }
  free(buf);
  return rc;
}

/* Element converters: 0, or -1 when the value does not fit the output type (NaN or beyond
 * int64 in an integer read: refused rather than converted with undefined behaviour). */
static float to_f32(double v) { /* beyond float's range: +-Inf, as IEEE rounding gives (a cast would be UB) */
  if (v > FLT_MAX) return INFINITY;
  if (v < -FLT_MAX) return -INFINITY;
  return (float)v;
}
static int put_f(void *o, int64_t i, const ts_zarr *z, const unsigned char *p) {
  ((float *)o)[i] = to_f32(elem_f(z, p));
  return 0;
}
static int fill_f(void *o, int64_t i, double v) {
  ((float *)o)[i] = to_f32(v);
  return 0;
}
static int to_i64(double v, int64_t *out) {
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) return -1; /* NaN fails too */
  *out = (int64_t)v;
  return 0;
}
static int put_i(void *o, int64_t i, const ts_zarr *z, const unsigned char *p) {
  if (z->kind == 'i' || z->kind == 'u') {
    int64_t s = 0;
    memcpy(&s, p, (size_t)z->itemsize);
    if (z->kind == 'i') {
      int shift = 64 - 8 * z->itemsize;
      s = (int64_t)((uint64_t)s << shift) >> shift;
    } else if (z->itemsize == 8 && s < 0) {
      return -1; /* a uint64 beyond int64 */
    }
    ((int64_t *)o)[i] = s;
    return 0;
  }
  return to_i64(elem_f(z, p), (int64_t *)o + i);
}
static int fill_i(void *o, int64_t i, double v) { return to_i64(v, (int64_t *)o + i); }

float *ts_zarr_read_f32(ts_zarr *z) {
  float *out = malloc((size_t)(ts_zarr_numel(z) ? ts_zarr_numel(z) : 1) * sizeof(float));
  if (!out) {
    ts_fail("%s: out of memory for %lld elements", z->dir, (long long)ts_zarr_numel(z));
    return NULL;
  }
  if (read_all(z, out, put_f, fill_f)) {
    free(out);
    return NULL;
  }
  return out;
}

int64_t *ts_zarr_read_i64(ts_zarr *z) {
  int64_t *out = malloc((size_t)(ts_zarr_numel(z) ? ts_zarr_numel(z) : 1) * sizeof(int64_t));
  if (!out) {
    ts_fail("%s: out of memory for %lld elements", z->dir, (long long)ts_zarr_numel(z));
    return NULL;
  }
  if (read_all(z, out, put_i, fill_i)) {
    free(out);
    return NULL;
  }
  return out;
}
