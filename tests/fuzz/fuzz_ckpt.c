/* libFuzzer harness: the checkpoint loader (ts_policy_load). A valid tiny U-Net checkpoint is
 * built once (base.h5); each input makes a variant whose tensors are HDF5 external links into
 * it except where the input changes them: op 0 replaces the config text, op 1 appends a line to
 * it, op 2 overwrites one tensor's values (NaN and Inf included), op 3 gives one tensor another
 * shape, op 4 drops one tensor, op 5 replaces a normaliser. The loader must load or refuse in
 * one line; a loaded policy must have the base's dims. */
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
static char base[300], *cfgtxt;

static int norm(ts_h5 *f, const char *group, int dim) {
  ts_normalizer nz;
  memset(&nz, 0, sizeof nz);
  nz.dim = dim;
  for (int j = 0; j < dim; j++) nz.scale[j] = 1, nz.max[j] = 1;
  return ts_norm_save(f, group, &nz);
}

static void setup(void) {
  ts_config_defaults(&cfg);
  const char *ov[] = {"model.down_dims=8,16", "model.step_embed_dim=16", "model.n_groups=4", "eval.steps=10",
                      "diffusion.num_train_timesteps=10"};
  for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++)
    if (ts_config_override(&cfg, ov[i])) abort();
  if (ts_model_new(&model, &cfg, 2, 20)) abort();
  named = ts_params_named(model.params, "ema/", NULL);
  cfgtxt = ts_config_to_ini(&cfg);
  snprintf(base, sizeof base, "%s/base.h5", fuzz_dir());
  ts_h5 *f = ts_h5_create(base);
  ts_h5_set_deflate(f, 0);
  for (int i = 0; i < model.params->n; i++)
    if (ts_h5_write_tensor(f, named[i].name, named[i].t)) abort();
  if (ts_h5_commit(f)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!named) setup();
  fuzz_bytes b = {data, size};
  int op = fuzz_u8(&b) % 6, n = model.params->n, k = fuzz_u8(&b) % n;
  char path[300], *text = NULL;
  snprintf(path, sizeof path, "%s/c.h5", fuzz_dir());
  ts_h5 *f = ts_h5_create(path);
  if (!f) abort();
  ts_h5_set_deflate(f, 0);
  if (op == 0 || op == 1) {
    size_t l0 = op ? strlen(cfgtxt) + 1 : 0;
    text = malloc(l0 + b.n + 1);
    if (op) sprintf(text, "%s\n", cfgtxt);
    memcpy(text + l0, b.p, b.n);
    text[l0 + b.n] = 0;
  }
  ts_h5_attr_str(f, "/", "config", text ? text : cfgtxt);
  free(text);
  if (op == 5) {
    ts_normalizer nz;
    memset(&nz, 0, sizeof nz);
    nz.dim = fuzz_u8(&b) % 70;
    int nd = nz.dim > 64 ? 64 : nz.dim;
    for (int j = 0; j < nd; j++) nz.scale[j] = fuzz_f32(&b), nz.offset[j] = fuzz_f32(&b);
    if (nz.dim > 64) { /* a normaliser wider than any the loader accepts */
      float big[70] = {0};
      int64_t d[1] = {nz.dim};
      ts_h5_write_f32(f, "normalizer/obs/scale", big, 1, d);
    } else {
      ts_norm_save(f, "normalizer/obs", &nz);
    }
  } else {
    norm(f, "normalizer/obs", 20);
  }
  norm(f, "normalizer/action", 2);
  ts_tensor *t = named[k].t;
  if (op == 2) {
    float *x = malloc((size_t)t->n * sizeof(float));
    for (int64_t i = 0; i < t->n; i++) x[i] = b.n ? fuzz_f32(&b) : t->data[i];
    int64_t dims[TS_MAXDIM];
    for (int i = 0; i < t->ndim; i++) dims[i] = t->shape[i];
    ts_h5_write_f32(f, named[k].name, x, t->ndim, dims);
    free(x);
  } else if (op == 3) {
    int nd = 1 + fuzz_u8(&b) % 3;
    int64_t dims[3], m = 1;
    for (int i = 0; i < nd; i++) m *= dims[i] = fuzz_u8(&b) % 40;
    float *x = calloc((size_t)(m ? m : 1), sizeof(float));
    ts_h5_write_f32(f, named[k].name, x, nd, dims);
    free(x);
  }
  if (ts_h5_commit(f)) abort();
  /* the other tensors: external links into base.h5 */
  hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  if (fid < 0) abort();
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  for (int i = 0; i < n; i++)
    if (!((op == 2 || op == 3 || op == 4) && i == k))
      if (H5Lcreate_external(base, named[i].name, fid, named[i].name, lcpl, H5P_DEFAULT) < 0) abort();
  H5Pclose(lcpl);
  H5Fclose(fid);
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
