#include "checkpoint.h"
#include "error.h"
#include "h5io.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int write_moments(ts_h5 *f, const ts_named *tensors, const ts_adamw *o) {
  char name[512];
  for (int i = 0; i < o->n; i++) {
    ts_tensor m = *o->params[i], v = *o->params[i];
    m.data = o->m[i];
    v.data = o->v[i];
    snprintf(name, sizeof name, "optim/m/%s", tensors[i].name);
    if (ts_h5_write_tensor(f, name, &m)) return -1;
    snprintf(name, sizeof name, "optim/v/%s", tensors[i].name);
    if (ts_h5_write_tensor(f, name, &v)) return -1;
  }
  return ts_h5_attr_i64(f, "optim", "step", o->step);
}

int ts_ckpt_save(const char *path, const ts_named *tensors, int n, const ts_ckpt_state *st) {
  ts_h5 *f = ts_h5_create(path);
  if (!f) return -1;
  ts_h5_set_deflate(f, 0);
  if (ts_ckpt_write(f, tensors, n, st)) {
    ts_h5_close(f);
    return -1;
  }
  return ts_h5_commit(f);
}

int ts_ckpt_write(ts_h5 *f, const ts_named *tensors, int n, const ts_ckpt_state *st) {
  int rc = 0;
  for (int i = 0; i < n && !rc; i++) rc = ts_h5_write_tensor(f, tensors[i].name, tensors[i].t);
  if (!rc && st) {
    if (st->config) rc = ts_h5_attr_str(f, "/", "config", st->config);
    if (!rc) rc = ts_h5_attr_i64(f, "/", "step", st->step);
    if (!rc && st->rng) {
      rc = ts_h5_attr_i64(f, "/", "rng_seed", (int64_t)st->rng->seed);
      if (!rc) rc = ts_h5_attr_i64(f, "/", "rng_counter", (int64_t)st->rng->counter);
      if (!rc) rc = ts_h5_attr_i64(f, "/", "rng_avail", st->rng->avail);
    }
    if (!rc && st->opt) rc = write_moments(f, tensors, st->opt);
  }
  return rc;
}

static int check_finite(const char *path, const char *name, const ts_tensor *t) {
  for (int64_t i = 0; i < t->n; i++)
    if (!isfinite(t->data[i])) return ts_fail("%s: tensor '%s' holds NaN or Inf (element %lld)", path, name, (long long)i);
  return 0;
}

int ts_ckpt_load(const char *path, const ts_named *tensors, int n, ts_ckpt_state *st, char **config_out) {
  ts_h5 *f = ts_h5_open(path);
  if (!f) return -1;
  int rc = ts_ckpt_read(f, tensors, n, st, config_out);
  ts_h5_close(f);
  return rc;
}

int ts_ckpt_read(ts_h5 *f, const ts_named *tensors, int n, ts_ckpt_state *st, char **config_out) {
  const char *path = ts_h5_path(f);
  int rc = 0;
  for (int i = 0; i < n && !rc; i++) {
    rc = ts_h5_read_tensor(f, tensors[i].name, tensors[i].t);
    if (!rc) rc = check_finite(path, tensors[i].name, tensors[i].t);
  }
  if (config_out) *config_out = NULL;
  if (!rc && config_out) *config_out = ts_h5_get_attr_str(f, "/", "config"); /* may be absent */
  if (!rc && st) {
    int64_t v;
    if (ts_h5_get_attr_i64(f, "/", "step", &v) == 0) st->step = v;
    else rc = -1;
    if (!rc && st->rng) {
      int64_t seed, ctr, avail;
      rc = ts_h5_get_attr_i64(f, "/", "rng_seed", &seed) || ts_h5_get_attr_i64(f, "/", "rng_counter", &ctr) ||
           ts_h5_get_attr_i64(f, "/", "rng_avail", &avail);
      if (!rc) ts_rng_set_state(st->rng, (uint64_t)seed, (uint64_t)ctr, (int)avail);
    }
    if (!rc && st->opt) {
      char name[512];
      ts_adamw *o = st->opt;
      for (int i = 0; i < o->n && !rc; i++) {
        ts_tensor m = *o->params[i], vv = *o->params[i];
        m.data = o->m[i];
        vv.data = o->v[i];
        snprintf(name, sizeof name, "optim/m/%s", tensors[i].name);
        rc = ts_h5_read_tensor(f, name, &m);
        snprintf(name, sizeof name, "optim/v/%s", tensors[i].name);
        if (!rc) rc = ts_h5_read_tensor(f, name, &vv);
      }
      if (!rc && ts_h5_get_attr_i64(f, "optim", "step", &v) == 0) o->step = (long)v;
      else if (!rc) rc = -1;
    }
  }
  if (rc && config_out) {
    free(*config_out);
    *config_out = NULL;
  }
  return rc ? -1 : 0;
}
