/* libFuzzer harness: the dataset loader (data/dataset.h) on robomimic-layout HDF5 files built
 * from the input: 0-3 demo groups with fuzzed names (demo_N, demo_x, demo_-3, demo_99999999999),
 * lengths, ranks, widths, missing arrays and values (NaN and Inf included). A load that succeeds
 * must have consistent episode offsets and finite data; its windows and normaliser must build
 * or refuse cleanly. */
#include "fuzz.h"
#include "core/error.h"
#include "core/h5io.h"
#include "data/dataset.h"
#include <math.h>

static void put_array(ts_h5 *f, const char *name, int64_t T, fuzz_bytes *b) {
  uint8_t mode = fuzz_u8(b);
  if (mode % 8 == 0) return; /* absent */
  int nd = 1 + mode % 3;
  int64_t dims[3] = {T + (mode / 8 % 5 == 0), 1 + fuzz_u8(b) % 3, 1 + fuzz_u8(b) % 2};
  if (mode / 8 % 7 == 1) dims[nd - 1] = 0; /* an empty axis */
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= dims[i];
  float x[64];
  for (int64_t i = 0; i < n && i < 64; i++) x[i] = fuzz_u8(b) % 4 ? (float)(fuzz_u8(b) - 128) : fuzz_f32(b);
  ts_h5_write_f32(f, name, x, nd, dims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_bytes b = {data, size};
  char path[300], name[300], demo[64];
  snprintf(path, sizeof path, "%s/d.h5", fuzz_dir());
  ts_h5 *f = ts_h5_create(path);
  if (!f) abort();
  ts_h5_set_deflate(f, 0);
  int ndemo = fuzz_u8(&b) % 4;
  for (int e = 0; e < ndemo; e++) {
    uint8_t k = fuzz_u8(&b);
    const char *odd[] = {"demo_x", "demo_-3", "demo_99999999999", "demo_"};
    if (k % 8 < 4) snprintf(demo, sizeof demo, "demo_%d", k / 8 % 12);
    else snprintf(demo, sizeof demo, "%s", odd[k % 4]);
    int64_t T = fuzz_u8(&b) % 7;
    snprintf(name, sizeof name, "data/%s/actions", demo);
    put_array(f, name, T, &b);
    snprintf(name, sizeof name, "data/%s/obs/a", demo);
    put_array(f, name, T, &b);
    snprintf(name, sizeof name, "data/%s/obs/b", demo);
    put_array(f, name, T, &b);
  }
  if (fuzz_u8(&b) % 2) {
    float x = 1;
    int64_t d[1] = {1};
    ts_h5_write_f32(f, "data/demo_0", &x, 1, d); /* a dataset where a group should be */
  }
  if (ts_h5_commit(f)) abort();
  static const char *const keys[] = {"a", "b", "a"};
  int kk = fuzz_u8(&b) % 4, nk = kk == 3 ? 2 : kk;
  const char *const *kp = kk == 3 ? keys + 1 : keys;
  ts_dataset d;
  if (ts_dataset_load(path, kp, nk, &d) == 0) {
    if (d.n_episodes < 1 || d.ep_start[0] != 0 || d.ep_start[d.n_episodes] != d.n_steps) abort();
    for (int e = 0; e < d.n_episodes; e++)
      if (d.ep_start[e + 1] < d.ep_start[e]) abort();
    for (int64_t i = 0; i < d.n_steps * d.act_dim; i++)
      if (!isfinite(d.actions[i])) abort();
    for (int64_t i = 0; i < d.n_steps * d.obs_dim; i++)
      if (!isfinite(d.obs[i])) abort();
    ts_windows w;
    int horizon = 1 + fuzz_u8(&b) % 8, pb = fuzz_u8(&b) % 4, pa = fuzz_u8(&b) % 8;
    if (ts_windows_build(&d, NULL, horizon, pb, pa, &w) == 0) {
      float *o = malloc((size_t)horizon * (d.obs_dim + 1) * sizeof(float)), *a = malloc((size_t)horizon * (d.act_dim + 1) * sizeof(float));
      for (int64_t i = 0; i < w.n; i++) ts_windows_get(&d, &w, i, o, a);
      free(o);
      free(a);
      ts_windows_free(&w);
    }
    ts_normalizer nz;
    if (d.n_steps && ts_norm_fit(&nz, &d, 0, NULL) == 0) ts_norm_apply(&nz, d.actions, d.n_steps);
    ts_dataset_free(&d);
  }
  remove(path);
  return 0;
}
