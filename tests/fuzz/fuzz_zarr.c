/* libFuzzer harness: the zarr reader. Input: the .zarray text, a NUL byte, then the bytes of
 * the array's first chunk (written under the key the .zarray implies). ts_zarr_open must
 * refuse or accept without a crash; an accepted array of modest size is read as float32 and
 * int64, and a read that succeeds must count its missing chunks consistently. */
#include "fuzz.h"
#include "data/zarr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *dir = fuzz_dir();
  char arr[300], path[600];
  snprintf(arr, sizeof arr, "%s/a", dir);
  mkdir(arr, 0755);
  const uint8_t *nul = memchr(data, 0, size);
  size_t mlen = nul ? (size_t)(nul - data) : size;
  snprintf(path, sizeof path, "%s/.zarray", arr);
  fuzz_write(path, data, mlen);
  ts_zarr z;
  char key[300] = "";
  if (ts_zarr_open(arr, &z) == 0) {
    /* the first chunk, "0.0..." or "0/0/..." (folders created as needed) */
    size_t o = 0;
    snprintf(path, sizeof path, "%s", arr);
    for (int i = 0; i < z.ndim; i++) {
      if (i && z.sep == '/') mkdir(path, 0755);
      o += (size_t)snprintf(key + o, sizeof key - o, "%s0", i ? (z.sep == '/' ? "/" : ".") : "");
      snprintf(path, sizeof path, "%s/%s", arr, key);
    }
    if (nul) fuzz_write(path, nul + 1, size - mlen - 1);
    if (ts_zarr_numel(&z) <= (1 << 16)) {
      float *f = ts_zarr_read_f32(&z);
      if (f && (z.missing_chunks < 0 || z.missing_chunks > z.nchunks || (nul && z.missing_chunks == z.nchunks && z.nchunks)))
        abort(); /* the chunk written is never counted as missing */
      free(f);
      int64_t *i = ts_zarr_read_i64(&z);
      free(i);
    }
    remove(path);
    if (z.sep == '/') { /* the chunk's folders, innermost first */
      for (int i = z.ndim - 1; i > 0; i--) {
        char *s = strrchr(key, '/');
        if (s) *s = 0;
        snprintf(path, sizeof path, "%s/%s", arr, key);
        rmdir(path);
      }
    }
  }
  return 0;
}
