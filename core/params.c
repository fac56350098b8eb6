#include "params.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local int shapes_only;

int ts_params_shapes_only(int on) {
  int was = shapes_only;
  shapes_only = on;
  return was;
}

ts_tensor *ts_params_add(ts_params *p, int ndim, const int *shape, const char *fmt, ...) {
  if (p->n == p->cap) {
    p->cap = p->cap ? 2 * p->cap : 64;
    p->t = realloc(p->t, (size_t)p->cap * sizeof *p->t);
    p->name = realloc(p->name, (size_t)p->cap * sizeof *p->name);
    if (!p->t || !p->name) abort();
  }
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  p->name[p->n] = strdup(buf);
  if (shapes_only) {
    ts_tensor *t = calloc(1, sizeof *t);
    if (!t) abort();
    ts_set_shape(t, ndim, shape);
    t->is_param = 1;
    p->t[p->n] = t;
  } else {
    p->t[p->n] = ts_param_new(ndim, shape);
  }
  return p->t[p->n++];
}

ts_tensor *ts_params_find(const ts_params *p, const char *name) {
  for (int i = 0; i < p->n; i++)
    if (strcmp(p->name[i], name) == 0) return p->t[i];
  return NULL;
}

int64_t ts_params_count(const ts_params *p) {
  int64_t s = 0;
  for (int i = 0; i < p->n; i++) s += p->t[i]->n;
  return s;
}

void ts_params_free(ts_params *p) {
  for (int i = 0; i < p->n; i++) {
    ts_param_free(p->t[i]);
    free(p->name[i]);
  }
  free(p->t);
  free(p->name);
  memset(p, 0, sizeof *p);
}

ts_named *ts_params_named(const ts_params *p, const char *prefix, ts_tensor **override) {
  ts_named *n = calloc((size_t)p->n, sizeof *n);
  if (!n) abort();
  for (int i = 0; i < p->n; i++) {
    size_t len = strlen(prefix) + strlen(p->name[i]) + 1;
    char *s = malloc(len);
    if (!s) abort();
    snprintf(s, len, "%s%s", prefix, p->name[i]);
    n[i].name = s;
    n[i].t = override ? override[i] : p->t[i];
  }
  return n;
}

void ts_named_free(ts_named *n, int count) {
  if (!n) return;
  for (int i = 0; i < count; i++) free((char *)n[i].name);
  free(n);
}

void ts_params_copy(ts_params *dst, ts_tensor **src) {
  for (int i = 0; i < dst->n; i++) memcpy(dst->t[i]->data, src[i]->data, (size_t)dst->t[i]->n * sizeof(float));
}

void ts_init_uniform_fan_in(ts_tensor *w, ts_tensor *b, int fan_in, ts_rng *rng) {
  float bound = 1.0f / sqrtf((float)fan_in);
  for (int64_t i = 0; i < w->n; i++) w->data[i] = bound * (2.0f * ts_rng_uniform(rng) - 1.0f);
  if (b)
    for (int64_t i = 0; i < b->n; i++) b->data[i] = bound * (2.0f * ts_rng_uniform(rng) - 1.0f);
}
