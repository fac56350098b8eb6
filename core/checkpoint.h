/* checkpoint.h: a named set of tensors plus the state that resumes a run, in one HDF5 file.
 *
 * Layout: each tensor at its name (e.g. "model/final_conv.1.bias", "ema/..."), optimiser
 * moments at "optim/m/<name>" and "optim/v/<name>" with attribute optim.step, and root
 * attributes `config` (the INI text), `step` and `rng_seed`/`rng_counter`. The file is
 * written to a temporary name and renamed, so a kill never leaves a broken checkpoint. */
#ifndef TS_CHECKPOINT_H
#define TS_CHECKPOINT_H

#include "h5io.h"
#include "optim.h"
#include "rng.h"
#include "tensor.h"

typedef struct ts_named {
  const char *name;
  ts_tensor *t;
} ts_named;

typedef struct ts_ckpt_state {
  const char *config;  /* INI text (save); NULL to skip */
  int64_t step;
  ts_rng *rng;         /* NULL to skip */
  ts_adamw *opt;       /* NULL to skip; moments are matched to tensors[0..opt->n) by index */
} ts_ckpt_state;

int ts_ckpt_save(const char *path, const ts_named *tensors, int n, const ts_ckpt_state *st);
/* Load every named tensor (shape and dtype must match; NaN/Inf refused) and, where the
 * pointers in st are set, the step, RNG and optimiser state. *config_out (if non-NULL)
 * receives a malloc'd copy of the config text or NULL. */
int ts_ckpt_load(const char *path, const ts_named *tensors, int n, ts_ckpt_state *st, char **config_out);

/* The same on an open HDF5 writer/reader, so callers can add their own objects (normalisers,
 * logs) to the one atomically committed file. */
int ts_ckpt_write(ts_h5 *f, const ts_named *tensors, int n, const ts_ckpt_state *st);
int ts_ckpt_read(ts_h5 *f, const ts_named *tensors, int n, ts_ckpt_state *st, char **config_out);

#endif
