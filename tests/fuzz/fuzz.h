/* fuzz.h: helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c): a scratch folder
 * per process (under /dev/shm when it exists), writing a file, and a byte reader over the
 * input. Each harness defines LLVMFuzzerTestOneInput; a property violation calls abort(). */
#ifndef TS_FUZZ_H
#define TS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each harness runs under libFuzzer's -malloc_limit_mb (1024 in scripts/fuzz.sh): a file may
 * claim an array as large as the readers' limit allows, so the harnesses lower that limit to
 * 256 MiB first (LLVMFuzzerInitialize below); a claim above it must be refused, not allocated. */
#include "core/sizes.h"
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  ts_set_max_array_bytes((int64_t)256 << 20);
  return 0;
}

static inline const char *fuzz_dir(void) {
  static char dir[256];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "%s/tsdp-fuzz-%ld", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
    mkdir(dir, 0755);
  }
  return dir;
}

static inline void fuzz_write(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (n && fwrite(data, 1, n, f) != n) abort();
  fclose(f);
}

typedef struct { const uint8_t *p; size_t n; } fuzz_bytes;

static inline uint8_t fuzz_u8(fuzz_bytes *b) {
  if (!b->n) return 0;
  b->n--;
  return *b->p++;
}

static inline float fuzz_f32(fuzz_bytes *b) {
  uint32_t u = 0;
  for (int i = 0; i < 4; i++) u = u << 8 | fuzz_u8(b);
  float f;
  memcpy(&f, &u, 4);
  return f;
}

#endif
