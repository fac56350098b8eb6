#include "zarr.h"
#include "core/error.h"
#include <blosc.h>
#include <ctype.h>
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

/* Skip any JSON value; 0 on success. */
static int skip_value(js *j) {
  ws(j);
  if (j->p >= j->end) return -1;
  char c = *j->p;
  if (c == '"') {
    for (j->p++; j->p < j->end && *j->p != '"'; j->p++)
      if (*j->p == '\\') j->p++;
    if (j->p >= j->end) return -1;
    j->p++;
    return 0;
  }
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    j->p++;
    ws(j);
    if (j->p < j->end && *j->p == close) {
      j->p++;
      return 0;
    }
    for (;;) {
      if (c == '{') {
        if (skip_value(j)) return -1; /* key */
        ws(j);
        if (j->p >= j->end || *j->p != ':') return -1;
        j->p++;
      }
      if (skip_value(j)) return -1;
      ws(j);
      if (j->p >= j->end) return -1;
      if (*j->p == ',') {
        j->p++;
        continue;
      }
      if (*j->p == close) {
        j->p++;
        return 0;
      }
      return -1;
    }
  }
  while (j->p < j->end && (isalnum((unsigned char)*j->p) || strchr("+-.", *j->p))) j->p++;
  return 0;
}

/* Find key in the object starting at s; returns a pointer to its value or NULL. */
static const char *find_key(const char *s, const char *end, const char *key) {
  js j = {s, end};
  ws(&j);
  if (j.p >= j.end || *j.p != '{') return NULL;
  j.p++;
  for (;;) {
    ws(&j);
    if (j.p >= j.end || *j.p != '"') return NULL;
    const char *k = j.p + 1;
    if (skip_value(&j)) return NULL;
    size_t klen = (size_t)(j.p - 1 - k);
    ws(&j);
    if (j.p >= j.end || *j.p != ':') return NULL;
    j.p++;
    ws(&j);
    if (klen == strlen(key) && strncmp(k, key, klen) == 0) return j.p;
    if (skip_value(&j)) return NULL;
    ws(&j);
    if (j.p < j.end && *j.p == ',') j.p++;
    else return NULL;
  }
}

static int get_str(const char *v, char *out, size_t n) {
  if (!v || *v != '"') return -1;
  size_t i = 0;
  for (v++; *v && *v != '"' && i + 1 < n; v++) out[i++] = *v;
  out[i] = 0;
  return *v == '"' ? 0 : -1;
}

static int get_int_array(const char *v, int64_t *out, int max) {
  if (!v || *v != '[') return -1;
  int n = 0;
  v++;
  for (;;) {
    while (isspace((unsigned char)*v)) v++;
    if (*v == ']') return n;
    char *e;
    long long x = strtoll(v, &e, 10);
    if (e == v || n >= max) return -1;
    out[n++] = x;
    v = e;
    while (isspace((unsigned char)*v)) v++;
    if (*v == ',') v++;
    else if (*v != ']') return -1;
  }
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
  if (!buf) abort();
  size_t got = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
  fclose(f);
  buf[got] = 0;
  if (len) *len = got;
  return buf;
}

int ts_zarr_open(const char *dir, ts_zarr *z) {
  memset(z, 0, sizeof *z);
  snprintf(z->dir, sizeof z->dir, "%s", dir);
  char path[1100];
  snprintf(path, sizeof path, "%s/.zarray", dir);
  size_t len;
  char *txt = slurp(path, &len);
  if (!txt) return ts_fail("%s: missing .zarray (not a zarr v2 array)", dir);
  const char *end = txt + len;
  int rc = 0;
  char dtype[16] = "", order[8] = "C", sep[4] = ".", cid[32] = "";
  const char *v;
  int64_t fmt = 0;
  if (!(v = find_key(txt, end, "zarr_format")) || (fmt = strtoll(v, NULL, 10)) != 2) {
    rc = ts_fail("%s: zarr_format %lld is not supported (need 2)", path, (long long)fmt);
    goto done;
  }
  int nd = get_int_array(find_key(txt, end, "shape"), z->shape, TS_ZARR_MAXDIM);
  int nc = get_int_array(find_key(txt, end, "chunks"), z->chunks, TS_ZARR_MAXDIM);
  if (nd < 1 || nc != nd) {
    rc = ts_fail("%s: bad or missing shape/chunks", path);
    goto done;
  }
  z->ndim = nd;
  for (int i = 0; i < nd; i++)
    if (z->shape[i] < 0 || z->chunks[i] <= 0) {
      rc = ts_fail("%s: bad shape or chunk size on axis %d", path, i);
      goto done;
    }
  if (get_str(find_key(txt, end, "dtype"), dtype, sizeof dtype) || strlen(dtype) < 3) {
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

/* Read every chunk; store element i of the array via put(out, i, value). */
static int read_all(const ts_zarr *z, void *out, void (*put)(void *, int64_t, const ts_zarr *, const unsigned char *),
                    void (*fill)(void *, int64_t, double)) {
  int nd = z->ndim;
  int64_t grid[TS_ZARR_MAXDIM], idx[TS_ZARR_MAXDIM] = {0}, chunk_n = 1, nchunks = 1;
  for (int i = 0; i < nd; i++) {
    grid[i] = (z->shape[i] + z->chunks[i] - 1) / z->chunks[i];
    chunk_n *= z->chunks[i];
    nchunks *= grid[i];
  }
  if (ts_zarr_numel(z) == 0) return 0;
  size_t chunk_bytes = (size_t)chunk_n * (size_t)z->itemsize;
  unsigned char *buf = malloc(chunk_bytes ? chunk_bytes : 1);
  if (!buf) abort();
  int rc = 0;
  for (int64_t c = 0; c < nchunks && !rc; c++) {
    char key[256] = "", path[1400], sep[2] = {z->sep, 0};
    size_t o = 0;
    for (int i = 0; i < nd && o < sizeof key; i++)
      o += (size_t)snprintf(key + o, sizeof key - o, "%s%lld", i ? sep : "", (long long)idx[i]);
    snprintf(path, sizeof path, "%s/%s", z->dir, key);
    size_t flen;
    char *raw = slurp(path, &flen);
    int missing = raw == NULL;
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
    /* Copy the in-bounds part of the chunk (edge chunks are stored padded to full size). */
    int64_t off[TS_ZARR_MAXDIM], loc[TS_ZARR_MAXDIM] = {0};
    for (int i = 0; i < nd; i++) off[i] = idx[i] * z->chunks[i];
    for (int64_t e = 0; e < chunk_n; e++) {
      int inside = 1;
      int64_t gi = 0;
      for (int i = 0; i < nd; i++) {
        int64_t g = off[i] + loc[i];
        if (g >= z->shape[i]) inside = 0;
        gi = gi * z->shape[i] + g;
      }
      if (inside) {
        if (missing) fill(out, gi, z->fill);
        else put(out, gi, z, buf + (size_t)e * (size_t)z->itemsize);
      }
      for (int i = nd - 1; i >= 0; i--) { /* next element in the chunk, C order */
        if (++loc[i] < z->chunks[i]) break;
        loc[i] = 0;
      }
    }
    for (int i = nd - 1; i >= 0; i--) { /* next chunk */
      if (++idx[i] < grid[i]) break;
      idx[i] = 0;
    }
  }
  free(buf);
  return rc;
}

static void put_f(void *o, int64_t i, const ts_zarr *z, const unsigned char *p) { ((float *)o)[i] = (float)elem_f(z, p); }
static void fill_f(void *o, int64_t i, double v) { ((float *)o)[i] = (float)v; }
static void put_i(void *o, int64_t i, const ts_zarr *z, const unsigned char *p) {
  if (z->kind == 'i' || z->kind == 'u') {
    int64_t s = 0;
    memcpy(&s, p, (size_t)z->itemsize);
    if (z->kind == 'i') {
      int shift = 64 - 8 * z->itemsize;
      s = (int64_t)((uint64_t)s << shift) >> shift;
    }
    ((int64_t *)o)[i] = s;
  } else {
    ((int64_t *)o)[i] = (int64_t)elem_f(z, p);
  }
}
static void fill_i(void *o, int64_t i, double v) { ((int64_t *)o)[i] = isnan(v) ? 0 : (int64_t)v; }

float *ts_zarr_read_f32(const ts_zarr *z) {
  float *out = malloc((size_t)(ts_zarr_numel(z) ? ts_zarr_numel(z) : 1) * sizeof(float));
  if (!out) abort();
  if (read_all(z, out, put_f, fill_f)) {
    free(out);
    return NULL;
  }
  return out;
}

int64_t *ts_zarr_read_i64(const ts_zarr *z) {
  int64_t *out = malloc((size_t)(ts_zarr_numel(z) ? ts_zarr_numel(z) : 1) * sizeof(int64_t));
  if (!out) abort();
  if (read_all(z, out, put_i, fill_i)) {
    free(out);
    return NULL;
  }
  return out;
}
