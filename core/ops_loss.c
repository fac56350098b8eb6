/* ops_loss.c: regression loss and the log-probabilities PPO needs. */
#include "ops_internal.h"
#include <math.h>
#include <string.h>

static void mse_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *p = nd->in[0], *t = nd->in[1];
  float *gp = in_grad(c, nd, 0), *gt = in_grad(c, nd, 1);
  float s = 2.0f * nd->out->grad[0] / (float)p->n;
  for (int64_t i = 0; i < p->n; i++) {
    float d = s * (p->data[i] - t->data[i]);
    if (gp) gp[i] += d;
    if (gt) gt[i] -= d;
  }
}

ts_tensor *ts_mse(ts_ctx *c, ts_tensor *pred, ts_tensor *target) {
  TS_CHECK(pred->n == target->n, "mse: %lld vs %lld elements", (long long)pred->n, (long long)target->n);
  ts_tensor *o = ts_new(c, 1, (int[]){1});
  double s = 0;
  for (int64_t i = 0; i < pred->n; i++) {
    double d = (double)pred->data[i] - target->data[i];
    s += d * d;
  }
  o->data[0] = (float)(s / (double)pred->n);
  ts_record(c, mse_bw, o, pred, target, NULL, NULL);
  return o;
}

/* Row-wise log-softmax into lp (R, K). */
static void logsoftmax_rows(const float *x, float *lp, int R, int K) {
  for (int r = 0; r < R; r++) {
    const float *xr = x + (int64_t)r * K;
    float mx = -INFINITY;
    for (int j = 0; j < K; j++) mx = xr[j] > mx ? xr[j] : mx;
    double s = 0;
    for (int j = 0; j < K; j++) s += exp((double)xr[j] - mx);
    float ls = (float)log(s) + mx;
    for (int j = 0; j < K; j++) lp[(int64_t)r * K + j] = xr[j] - ls;
  }
}

static void catlp_bw(ts_ctx *c, ts_node *nd) {
  int B = nd->in[0]->shape[0], K = nd->in[0]->shape[1];
  const float *lp = nd->aux;
  const int *a = nd->aux2;
  float *gl = in_grad(c, nd, 0);
  for (int b = 0; b < B; b++) {
    float g = nd->out->grad[b];
    for (int j = 0; j < K; j++) gl[(int64_t)b * K + j] += g * ((j == a[b]) - expf(lp[(int64_t)b * K + j]));
  }
}

ts_tensor *ts_categorical_logprob(ts_ctx *c, ts_tensor *logits, const int *actions) {
  int B = logits->shape[0], K = logits->shape[1];
  float *lp = ts_arena_alloc(&c->arena, (size_t)B * K * sizeof(float));
  logsoftmax_rows(logits->data, lp, B, K);
  ts_tensor *o = ts_new(c, 1, &B);
  for (int b = 0; b < B; b++) {
    TS_CHECK(actions[b] >= 0 && actions[b] < K, "categorical_logprob: action %d of %d", actions[b], K);
    o->data[b] = lp[(int64_t)b * K + actions[b]];
  }
  ts_node *n = ts_record(c, catlp_bw, o, logits, NULL, NULL, NULL);
  if (n) {
    int *acts = ts_arena_alloc(&c->arena, (size_t)B * sizeof(int));
    memcpy(acts, actions, (size_t)B * sizeof(int));
    n->aux = lp;
    n->aux2 = acts;
  }
  return o;
}

/* H = -sum p log p; dH/dl_j = -p_j (log p_j + H). */
static void entropy_bw(ts_ctx *c, ts_node *nd) {
  int B = nd->in[0]->shape[0], K = nd->in[0]->shape[1];
  const float *lp = nd->aux;
  float *gl = in_grad(c, nd, 0);
  for (int b = 0; b < B; b++) {
    float g = nd->out->grad[b], H = nd->out->data[b];
    for (int j = 0; j < K; j++) {
      float l = lp[(int64_t)b * K + j];
      gl[(int64_t)b * K + j] += -g * expf(l) * (l + H);
    }
  }
}

ts_tensor *ts_categorical_entropy(ts_ctx *c, ts_tensor *logits) {
  int B = logits->shape[0], K = logits->shape[1];
  float *lp = ts_arena_alloc(&c->arena, (size_t)B * K * sizeof(float));
  logsoftmax_rows(logits->data, lp, B, K);
  ts_tensor *o = ts_new(c, 1, &B);
  for (int b = 0; b < B; b++) {
    double h = 0;
    for (int j = 0; j < K; j++) {
      float l = lp[(int64_t)b * K + j];
      h -= exp(l) * l;
    }
    o->data[b] = (float)h;
  }
  ts_node *n = ts_record(c, entropy_bw, o, logits, NULL, NULL, NULL);
  if (n) n->aux = lp;
  return o;
}

static void gauss_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *x = nd->in[0], *m = nd->in[1], *ls = nd->in[2];
  int B = x->shape[0], D = x->shape[1], per_row = ls->ndim == 2;
  float *gx = in_grad(c, nd, 0), *gm = in_grad(c, nd, 1), *gs = in_grad(c, nd, 2);
  for (int b = 0; b < B; b++) {
    float g = nd->out->grad[b];
    for (int d = 0; d < D; d++) {
      int64_t i = (int64_t)b * D + d, si = per_row ? i : d;
      float inv = expf(-ls->data[si]), z = (x->data[i] - m->data[i]) * inv;
      if (gx) gx[i] -= g * z * inv;
      if (gm) gm[i] += g * z * inv;
      if (gs) gs[si] += g * (z * z - 1.0f);
    }
  }
}

ts_tensor *ts_gaussian_logprob(ts_ctx *c, ts_tensor *x, ts_tensor *mean, ts_tensor *log_std) {
  TS_CHECK(x->ndim == 2 && ts_same_shape(x, mean), "gaussian_logprob: x and mean must be (B, D)");
  int B = x->shape[0], D = x->shape[1], per_row = log_std->ndim == 2;
  TS_CHECK(per_row ? ts_same_shape(log_std, x) : (log_std->ndim == 1 && log_std->shape[0] == D),
           "gaussian_logprob: log_std must be (B, D) or (D)");
  ts_tensor *o = ts_new(c, 1, &B);
  const float half_log_2pi = 0.91893853320467274f;
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (int d = 0; d < D; d++) {
      int64_t i = (int64_t)b * D + d;
      float l = log_std->data[per_row ? i : d], z = (x->data[i] - mean->data[i]) * expf(-l);
      s += -0.5 * z * z - l - half_log_2pi;
    }
    o->data[b] = (float)s;
  }
  ts_record(c, gauss_bw, o, x, mean, log_std, NULL);
  return o;
}
