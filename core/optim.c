#include "optim.h"
#include "pool.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *zbuf(int64_t n) {
  float *p = calloc((size_t)n, sizeof(float));
  if (!p) abort();
  return p;
}

ts_adamw *ts_adamw_new(ts_tensor **params, int n, float lr, float beta1, float beta2, float eps, float wd) {
  ts_adamw *o = calloc(1, sizeof *o);
  if (!o) abort();
  o->params = params;
  o->n = n;
  o->m = calloc((size_t)n, sizeof(float *));
  o->v = calloc((size_t)n, sizeof(float *));
  if (!o->m || !o->v) abort();
  for (int i = 0; i < n; i++) {
    o->m[i] = zbuf(params[i]->n);
    o->v[i] = zbuf(params[i]->n);
  }
  o->lr = lr;
  o->beta1 = beta1;
  o->beta2 = beta2;
  o->eps = eps;
  o->weight_decay = wd;
  return o;
}

typedef struct { float *w, *m, *v; const float *g; float b1, b2, step_size, bc2_sqrt, decay, eps; } adamw_job;

static void adamw_range(void *arg, int64_t lo, int64_t hi) {
  const adamw_job *j = arg;
  float *w = j->w, *m = j->m, *v = j->v, b1 = j->b1, b2 = j->b2;
  const float *g = j->g;
  for (int64_t i = lo; i < hi; i++) {
    w[i] *= j->decay;
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    w[i] -= j->step_size * m[i] / (sqrtf(v[i]) / j->bc2_sqrt + j->eps);
  }
}

void ts_adamw_set_decay(ts_adamw *o, const unsigned char *decay) {
  free(o->decay);
  o->decay = malloc((size_t)o->n);
  if (!o->decay) abort();
  memcpy(o->decay, decay, (size_t)o->n);
}

void ts_adamw_step(ts_adamw *o) {
  o->step++;
  float b1 = o->beta1, b2 = o->beta2;
  float bc1 = 1.0f - powf(b1, (float)o->step), bc2 = 1.0f - powf(b2, (float)o->step);
  for (int k = 0; k < o->n; k++) {
    ts_tensor *p = o->params[k];
    adamw_job j = {p->data, o->m[k], o->v[k], p->grad, b1, b2, o->lr / bc1, sqrtf(bc2),
                   (!o->decay || o->decay[k]) ? 1.0f - o->lr * o->weight_decay : 1.0f, o->eps};
    ts_parallel_for(p->n, 1 << 14, adamw_range, &j);
  }
}

void ts_adamw_free(ts_adamw *o) {
  if (!o) return;
  for (int i = 0; i < o->n; i++) {
    free(o->m[i]);
    free(o->v[i]);
  }
  free(o->m);
  free(o->v);
  free(o->decay);
  free(o);
}

float ts_clip_grad_norm(ts_tensor **params, int n, float max_norm) {
  double s = 0;
  for (int k = 0; k < n; k++)
    for (int64_t i = 0; i < params[k]->n; i++) s += (double)params[k]->grad[i] * params[k]->grad[i];
  float norm = (float)sqrt(s), coef = max_norm / (norm + 1e-6f);
  if (coef < 1.0f)
    for (int k = 0; k < n; k++)
      for (int64_t i = 0; i < params[k]->n; i++) params[k]->grad[i] *= coef;
  return norm;
}

ts_ema *ts_ema_new(ts_tensor **params, int n, float power, float max_decay) {
  ts_ema *e = calloc(1, sizeof *e);
  if (!e) abort();
  e->shadow = calloc((size_t)n, sizeof(ts_tensor *));
  if (!e->shadow) abort();
  e->n = n;
  for (int i = 0; i < n; i++) {
    e->shadow[i] = ts_param_new(params[i]->ndim, params[i]->shape);
    e->shadow[i]->requires_grad = 0;
    memcpy(e->shadow[i]->data, params[i]->data, (size_t)params[i]->n * sizeof(float));
  }
  e->power = power;
  e->min_decay = 0.0f;
  e->max_decay = max_decay;
  return e;
}

float ts_ema_decay(const ts_ema *e, long step) {
  long s = step - 1;
  if (s <= 0) return 0.0f;
  double d = 1.0 - pow(1.0 + (double)s, -(double)e->power);
  if (d < e->min_decay) d = e->min_decay;
  if (d > e->max_decay) d = e->max_decay;
  return (float)d;
}

typedef struct { float *s; const float *p; float d; } ema_job;

static void ema_range(void *arg, int64_t lo, int64_t hi) {
  const ema_job *j = arg;
  for (int64_t i = lo; i < hi; i++) j->s[i] = j->d * j->s[i] + (1.0f - j->d) * j->p[i];
}

void ts_ema_update(ts_ema *e, ts_tensor **params, long step) {
  float d = ts_ema_decay(e, step);
  for (int k = 0; k < e->n; k++) {
    ema_job j = {e->shadow[k]->data, params[k]->data, d};
    ts_parallel_for(params[k]->n, 1 << 14, ema_range, &j);
  }
}

void ts_ema_free(ts_ema *e) {
  if (!e) return;
  for (int i = 0; i < e->n; i++) ts_param_free(e->shadow[i]);
  free(e->shadow);
  free(e);
}

float ts_lr_cosine(float base, long step, long warmup, long total) {
  if (step < warmup) return base * (float)step / (float)(warmup > 1 ? warmup : 1);
  double progress = (double)(step - warmup) / (double)((total - warmup) > 1 ? (total - warmup) : 1);
  double f = 0.5 * (1.0 + cos(M_PI * progress));
  return base * (float)(f > 0 ? f : 0);
}
