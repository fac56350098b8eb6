/* libFuzzer harness: the checkpoint loader (ts_policy_load). A valid tiny U-Net checkpoint (one
 * level: every tensor costs the loader an HDF5 dataset open, the bulk of each run's time) is
 * written once and kept in memory; each input copies it to a scratch file and patches that
 * copy through the HDF5 library (rewriting every tensor per input made the harness 3x slower):
 * op 0 replaces the config text, op 1 appends a line to it, op 2 overwrites one tensor's values
 * (NaN and Inf included), op 3 gives one tensor another shape, op 4 drops one tensor, op 5
 * replaces the observation normaliser. The loader must load or refuse in one line; a loaded
 * policy must have the base's dims. */
#include "fuzz.h"
#include "core/config.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/params.h"
#include "data/dataset.h"
#include "infer/policy.h"
#include "nn/model.h"
#include <hdf5.h>

static ts_config cfg;
static ts_model model;
static ts_named *named;
static char *cfgtxt, *image;
static size_t image_len;

static int norm(ts_h5 *f, const char *group, int dim) {
  ts_normalizer nz;
  memset(&nz, 0, sizeof nz);
  nz.dim = dim;
  for (int j = 0; j < dim; j++) nz.scale[j] = 1, nz.max[j] = 1;
  return ts_norm_save(f, group, &nz);
}

static void setup(void) {
  ts_config_defaults(&cfg);
  const char *ov[] = {"model.down_dims=8", "model.step_embed_dim=16", "model.n_groups=4", "eval.steps=10",
                      "diffusion.num_train_timesteps=10"};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++)
    if (ts_config_override(&cfg, ov[i])) abort();
  if (ts_model_new(&model, &cfg, 2, 20)) abort();
  named = ts_params_named(model.params, "ema/", NULL);
  cfgtxt = ts_config_to_ini(&cfg);
  char path[300];
  snprintf(path, sizeof path, "%s/base.h5", fuzz_dir());
  ts_h5 *f = ts_h5_create(path);
  if (!f) abort();
  ts_h5_set_deflate(f, 0);
  if (ts_h5_attr_str(f, "/", "config", cfgtxt) || norm(f, "normalizer/obs", 20) || norm(f, "normalizer/action", 2))
    abort();
  for (int i = 0; i < model.params->n; i++)
    if (ts_h5_write_tensor(f, named[i].name, named[i].t)) abort();
  if (ts_h5_commit(f)) abort();
  FILE *in = fopen(path, "rb");
  if (!in || fseek(in, 0, SEEK_END)) abort();
  image_len = (size_t)ftell(in);
  image = malloc(image_len);
  rewind(in);
  if (!image || fread(image, 1, image_len, in) != image_len) abort();
  fclose(in);
  remove(path);
}

/* a contiguous float32 dataset name (groups made as needed) */
static void put_f32(hid_t fid, const char *name, const float *x, int nd, const int64_t *d) {
  hsize_t hd[4];
  for (int i = 0; i < nd; i++) hd[i] = (hsize_t)d[i];
  hid_t sp = H5Screate_simple(nd, hd, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t ds = H5Dcreate2(fid, name, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (ds < 0) abort();
  if (H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0) abort();
  H5Dclose(ds);
  H5Pclose(lcpl);
  H5Sclose(sp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!named) setup();
  fuzz_bytes b = {data, size};
  int op = fuzz_u8(&b) % 6, n = model.params->n, k = fuzz_u8(&b) % n;
  char path[300];
  snprintf(path, sizeof path, "%s/c.h5", fuzz_dir());
  FILE *out = fopen(path, "wb");
  if (!out || fwrite(image, 1, image_len, out) != image_len || fclose(out)) abort();
  hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  if (fid < 0) abort();
  if (op == 0 || op == 1) {
    size_t l0 = op ? strlen(cfgtxt) + 1 : 0;
    char *text = malloc(l0 + b.n + 1);
    if (op) sprintf(text, "%s\n", cfgtxt);
    memcpy(text + l0, b.p, b.n);
    text[l0 + b.n] = 0;
    if (H5Adelete(fid, "config") < 0) abort();
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t a = H5Acreate2(fid, "config", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, t, &text) < 0) abort();
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    free(text);
  } else if (op == 5) {
    ts_normalizer nz;
    memset(&nz, 0, sizeof nz);
    nz.dim = fuzz_u8(&b) % 70;
    int nd = nz.dim > 64 ? 64 : nz.dim;
    for (int j = 0; j < nd; j++) nz.scale[j] = fuzz_f32(&b), nz.offset[j] = fuzz_f32(&b);
    if (H5Ldelete(fid, "normalizer/obs", H5P_DEFAULT) < 0) abort();
    int64_t d[1] = {nz.dim};
    if (nz.dim > 64) { /* a normaliser wider than any the loader accepts */
      float big[70] = {0};
      put_f32(fid, "normalizer/obs/scale", big, 1, d);
    } else {
      const float *src[4] = {nz.scale, nz.offset, nz.min, nz.max};
      const char *field[4] = {"scale", "offset", "input_min", "input_max"};
      for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "normalizer/obs/%s", field[i]);
        put_f32(fid, name, src[i], 1, d);
      }
    }
  } else if (op >= 2) {
    ts_tensor *t = named[k].t;
    if (H5Ldelete(fid, named[k].name, H5P_DEFAULT) < 0) abort();
    if (op == 2) {
      float *x = malloc((size_t)t->n * sizeof(float));
      for (int64_t i = 0; i < t->n; i++) x[i] = b.n ? fuzz_f32(&b) : t->data[i];
      int64_t dims[TS_MAXDIM];
      for (int i = 0; i < t->ndim; i++) dims[i] = t->shape[i];
      put_f32(fid, named[k].name, x, t->ndim, dims);
      free(x);
    } else if (op == 3) {
      int nd = 1 + fuzz_u8(&b) % 3;
      int64_t dims[3], m = 1;
      for (int i = 0; i < nd; i++) m *= dims[i] = fuzz_u8(&b) % 40;
      float *x = calloc((size_t)(m ? m : 1), sizeof(float));
      put_f32(fid, named[k].name, x, nd, dims);
      free(x);
    }
  }
  if (H5Fclose(fid) < 0) abort();
  ts_policy p;
  if (ts_policy_load(&p, path, "ema") == 0) {
    if (p.obs_dim != 20 || p.act_dim != 2) abort();
    ts_policy_free(&p);
  } else if (!ts_error()[0] || strchr(ts_error(), '\n')) {
    abort(); /* a refusal is one line */
  }
  remove(path);
  return 0;
}
