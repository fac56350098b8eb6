/* params.h: a named, ordered set of parameter tensors (a model's state_dict). Models add
 * their parameters here once, at build time, under PyTorch-style dotted names; optimisers,
 * EMA and checkpoints iterate over the set. */
#ifndef TS_PARAMS_H
#define TS_PARAMS_H

#include "checkpoint.h"
#include "rng.h"
#include "tensor.h"

typedef struct ts_params {
  int n, cap;
  ts_tensor **t;
  char **name;
} ts_params;

/* Allocate a zero parameter named printf-style. */
ts_tensor *ts_params_add(ts_params *p, int ndim, const int *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Shapes only: while on (this thread), ts_params_add records names and shapes but allocates no
 * values (data and grad stay NULL), so a model can be sized from a config, and a file checked
 * against it, before anything its config claims is allocated. Model constructors write no
 * parameter values while it is on. Returns the previous setting. */
int ts_params_shapes_only(int on);
ts_tensor *ts_params_find(const ts_params *p, const char *name);
int64_t ts_params_count(const ts_params *p); /* total scalars */
void ts_params_free(ts_params *p);
/* Named view with a group prefix ("model/", "ema/") for checkpoints; tensors may be replaced
 * (EMA shadows). Free the returned array and its names with ts_named_free. */
ts_named *ts_params_named(const ts_params *p, const char *prefix, ts_tensor **override);
void ts_named_free(ts_named *n, int count);
/* Copy all parameter values from src to dst (same structure). */
void ts_params_copy(ts_params *dst, ts_tensor **src);
/* PyTorch's default init for Linear/Conv: U(-b, b), b = 1/sqrt(fan_in), for weight and bias. */
void ts_init_uniform_fan_in(ts_tensor *w, ts_tensor *b, int fan_in, ts_rng *rng);

#endif
