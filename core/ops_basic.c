/* ops_basic.c: broadcasting elementwise ops, reductions and shape ops. */
#include "ops_internal.h"
#include <string.h>

/* ---------- broadcasting binary ops ---------- */

enum { OP_ADD, OP_SUB, OP_MUL };

/* Right-align a's shape into 4 dims; broadcast dims get stride 0. */
static void bstrides(const ts_tensor *t, const int *oshape, int *st) {
  int off = TS_MAXDIM - t->ndim;
  for (int i = 0; i < TS_MAXDIM; i++) {
    int j = i - off;
    st[i] = (j < 0 || t->shape[j] == 1) ? 0 : t->stride[j];
    (void)oshape;
  }
}

static void bshape(const ts_tensor *a, const ts_tensor *b, int *nd, int *shape) {
  *nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int i = 0; i < *nd; i++) {
    int ia = i - (*nd - a->ndim), ib = i - (*nd - b->ndim);
    int sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
    TS_CHECK(sa == sb || sa == 1 || sb == 1, "broadcast of dim %d: %d vs %d", i, sa, sb);
    shape[i] = sa > sb ? sa : sb;
  }
}

/* Loop over the padded 4-d output index space. */
#define BLOOP(o4, sa, sb, BODY)                                                   \
  do {                                                                            \
    int64_t oi = 0;                                                               \
    for (int i0 = 0; i0 < o4[0]; i0++)                                            \
      for (int i1 = 0; i1 < o4[1]; i1++)                                          \
        for (int i2 = 0; i2 < o4[2]; i2++)                                        \
          for (int i3 = 0; i3 < o4[3]; i3++, oi++) {                              \
            int64_t ai = (int64_t)i0 * sa[0] + (int64_t)i1 * sa[1] +             \
                         (int64_t)i2 * sa[2] + (int64_t)i3 * sa[3];               \
            int64_t bi = (int64_t)i0 * sb[0] + (int64_t)i1 * sb[1] +             \
                         (int64_t)i2 * sb[2] + (int64_t)i3 * sb[3];               \
            BODY;                                                                 \
          }                                                                       \
  } while (0)

static void pad4(const ts_tensor *o, int *o4) {
  int off = TS_MAXDIM - o->ndim;
  for (int i = 0; i < TS_MAXDIM; i++) o4[i] = i < off ? 1 : o->shape[i - off];
}

static void binary_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *a = nd->in[0], *b = nd->in[1], *o = nd->out;
  float *ga = in_grad(c, nd, 0), *gb = in_grad(c, nd, 1);
  const float *g = o->grad;
  int op = nd->ia[0];
  if (ts_same_shape(a, b)) {
    for (int64_t i = 0; i < o->n; i++) {
      if (ga) ga[i] += op == OP_MUL ? g[i] * b->data[i] : g[i];
      if (gb) gb[i] += op == OP_MUL ? g[i] * a->data[i] : (op == OP_SUB ? -g[i] : g[i]);
    }
    return;
  }
  int o4[4], sa[4], sb[4];
  pad4(o, o4);
  bstrides(a, o4, sa);
  bstrides(b, o4, sb);
  BLOOP(o4, sa, sb, {
    float gv = g[oi];
    if (ga) ga[ai] += op == OP_MUL ? gv * b->data[bi] : gv;
    if (gb) gb[bi] += op == OP_MUL ? gv * a->data[ai] : (op == OP_SUB ? -gv : gv);
  });
}

static ts_tensor *binary(ts_ctx *c, ts_tensor *a, ts_tensor *b, int op) {
  int nd, shape[TS_MAXDIM];
  bshape(a, b, &nd, shape);
  ts_tensor *o = ts_new(c, nd, shape);
  const float *x = a->data, *y = b->data;
  float *z = o->data;
  if (ts_same_shape(a, b)) {
    for (int64_t i = 0; i < o->n; i++)
      z[i] = op == OP_ADD ? x[i] + y[i] : op == OP_SUB ? x[i] - y[i] : x[i] * y[i];
  } else {
    int o4[4], sa[4], sb[4];
    pad4(o, o4);
    bstrides(a, o4, sa);
    bstrides(b, o4, sb);
    BLOOP(o4, sa, sb, {
      z[oi] = op == OP_ADD ? x[ai] + y[bi] : op == OP_SUB ? x[ai] - y[bi] : x[ai] * y[bi];
    });
  }
  ts_node *n = ts_record(c, binary_bw, o, a, b, NULL, NULL);
  if (n) n->ia[0] = op;
  return o;
}

ts_tensor *ts_add(ts_ctx *c, ts_tensor *a, ts_tensor *b) { return binary(c, a, b, OP_ADD); }
ts_tensor *ts_sub(ts_ctx *c, ts_tensor *a, ts_tensor *b) { return binary(c, a, b, OP_SUB); }
ts_tensor *ts_mul(ts_ctx *c, ts_tensor *a, ts_tensor *b) { return binary(c, a, b, OP_MUL); }

static void scale_bw(ts_ctx *c, ts_node *nd) {
  float *ga = in_grad(c, nd, 0), s = nd->fa[0];
  for (int64_t i = 0; i < nd->out->n; i++) ga[i] += s * nd->out->grad[i];
}

ts_tensor *ts_scale(ts_ctx *c, ts_tensor *a, float s) {
  ts_tensor *o = ts_new(c, a->ndim, a->shape);
  for (int64_t i = 0; i < a->n; i++) o->data[i] = s * a->data[i];
  ts_node *n = ts_record(c, scale_bw, o, a, NULL, NULL, NULL);
  if (n) n->fa[0] = s;
  return o;
}

/* ---------- reductions ---------- */

static void sum_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *x = nd->in[0];
  float *gx = in_grad(c, nd, 0), s = nd->fa[0];
  int axis = nd->ia[0];
  int64_t outer = prod_dims(x, 0, axis), len = x->shape[axis], inner = prod_dims(x, axis + 1, x->ndim);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t k = 0; k < len; k++)
      for (int64_t i = 0; i < inner; i++)
        gx[(o * len + k) * inner + i] += s * nd->out->grad[o * inner + i];
}

static ts_tensor *reduce(ts_ctx *c, ts_tensor *x, int axis, int keepdim, int mean) {
  if (axis < 0) axis += x->ndim;
  TS_CHECK(axis >= 0 && axis < x->ndim, "sum: axis %d of rank %d", axis, x->ndim);
  int shape[TS_MAXDIM], nd = 0;
  for (int i = 0; i < x->ndim; i++) {
    if (i != axis) shape[nd++] = x->shape[i];
    else if (keepdim) shape[nd++] = 1;
  }
  if (nd == 0) shape[nd++] = 1;
  ts_tensor *o = ts_zeros(c, nd, shape);
  int64_t outer = prod_dims(x, 0, axis), len = x->shape[axis], inner = prod_dims(x, axis + 1, x->ndim);
  float s = mean ? 1.0f / (float)len : 1.0f;
  for (int64_t oo = 0; oo < outer; oo++)
    for (int64_t k = 0; k < len; k++)
      for (int64_t i = 0; i < inner; i++) o->data[oo * inner + i] += x->data[(oo * len + k) * inner + i];
  if (mean)
    for (int64_t i = 0; i < o->n; i++) o->data[i] *= s;
  ts_node *n = ts_record(c, sum_bw, o, x, NULL, NULL, NULL);
  if (n) {
    n->ia[0] = axis;
    n->fa[0] = s;
  }
  return o;
}

ts_tensor *ts_sum(ts_ctx *c, ts_tensor *x, int axis, int keepdim) { return reduce(c, x, axis, keepdim, 0); }
ts_tensor *ts_mean(ts_ctx *c, ts_tensor *x, int axis, int keepdim) { return reduce(c, x, axis, keepdim, 1); }

static ts_tensor *flat(ts_ctx *c, ts_tensor *x) {
  int n = (int)x->n;
  return ts_reshape(c, x, 1, &n);
}
ts_tensor *ts_sum_all(ts_ctx *c, ts_tensor *x) { return reduce(c, flat(c, x), 0, 1, 0); }
ts_tensor *ts_mean_all(ts_ctx *c, ts_tensor *x) { return reduce(c, flat(c, x), 0, 1, 1); }

/* ---------- shape ops ---------- */

static void reshape_bw(ts_ctx *c, ts_node *nd) {
  float *gx = in_grad(c, nd, 0);
  for (int64_t i = 0; i < nd->out->n; i++) gx[i] += nd->out->grad[i];
}

ts_tensor *ts_reshape(ts_ctx *c, ts_tensor *x, int ndim, const int *shape) {
  int s[TS_MAXDIM], neg = -1;
  int64_t known = 1;
  for (int i = 0; i < ndim; i++) {
    s[i] = shape[i];
    if (s[i] == -1) neg = i;
    else known *= s[i];
  }
  if (neg >= 0) s[neg] = (int)(x->n / (known ? known : 1));
  TS_CHECK(ts_numel(ndim, s) == x->n, "reshape: %lld elements into %lld", (long long)x->n,
           (long long)ts_numel(ndim, s));
  ts_tensor *o = ts_wrap(c, x->data, ndim, s); /* shares data: tensors are contiguous */
  ts_record(c, reshape_bw, o, x, NULL, NULL, NULL);
  return o;
}

/* out[idx] = x[perm-mapped idx]; dir=+1 forward copy, backward accumulates. */
static void permute_copy(const ts_tensor *x, const int *perm, float *dst, const float *src, int back) {
  int nd = x->ndim, os[4] = {1, 1, 1, 1}, xs[4] = {0, 0, 0, 0};
  for (int i = 0; i < nd; i++) {
    os[4 - nd + i] = x->shape[perm[i]];
    xs[4 - nd + i] = x->stride[perm[i]];
  }
  int64_t oi = 0;
  for (int i0 = 0; i0 < os[0]; i0++)
    for (int i1 = 0; i1 < os[1]; i1++)
      for (int i2 = 0; i2 < os[2]; i2++)
        for (int i3 = 0; i3 < os[3]; i3++, oi++) {
          int64_t xi = (int64_t)i0 * xs[0] + (int64_t)i1 * xs[1] + (int64_t)i2 * xs[2] + (int64_t)i3 * xs[3];
          if (back) dst[xi] += src[oi];
          else dst[oi] = src[xi];
        }
}

static void permute_bw(ts_ctx *c, ts_node *nd) {
  permute_copy(nd->in[0], nd->ia, in_grad(c, nd, 0), nd->out->grad, 1);
}

ts_tensor *ts_permute(ts_ctx *c, ts_tensor *x, const int *perm) {
  int shape[TS_MAXDIM];
  for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[perm[i]];
  ts_tensor *o = ts_new(c, x->ndim, shape);
  permute_copy(x, perm, o->data, x->data, 0);
  ts_node *n = ts_record(c, permute_bw, o, x, NULL, NULL, NULL);
  if (n)
    for (int i = 0; i < x->ndim; i++) n->ia[i] = perm[i];
  return o;
}

ts_tensor *ts_transpose(ts_ctx *c, ts_tensor *x, int d0, int d1) {
  int perm[TS_MAXDIM];
  for (int i = 0; i < x->ndim; i++) perm[i] = i;
  perm[d0] = d1;
  perm[d1] = d0;
  return ts_permute(c, x, perm);
}

/* concat: inputs stored in aux (array of tensor pointers) since there can be more than 4. */
static void concat_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor **xs = nd->aux, *o = nd->out;
  int n = nd->ia[0], axis = nd->ia[1];
  int64_t outer = prod_dims(o, 0, axis), inner = prod_dims(o, axis + 1, o->ndim), olen = o->shape[axis];
  int64_t off = 0;
  for (int k = 0; k < n; k++) {
    int64_t len = xs[k]->shape[axis];
    if (xs[k]->requires_grad) {
      float *g = ts_grad(c, xs[k]);
      for (int64_t oo = 0; oo < outer; oo++)
        for (int64_t j = 0; j < len * inner; j++) g[oo * len * inner + j] += o->grad[(oo * olen + off) * inner + j];
    }
    off += len;
  }
}

ts_tensor *ts_concat(ts_ctx *c, ts_tensor **xs, int n, int axis) {
  ts_tensor *x0 = xs[0];
  if (axis < 0) axis += x0->ndim;
  int shape[TS_MAXDIM];
  for (int i = 0; i < x0->ndim; i++) shape[i] = x0->shape[i];
  shape[axis] = 0;
  int any_grad = 0;
  for (int k = 0; k < n; k++) {
    TS_CHECK(xs[k]->ndim == x0->ndim, "concat: rank %d vs %d", xs[k]->ndim, x0->ndim);
    for (int i = 0; i < x0->ndim; i++)
      TS_CHECK(i == axis || xs[k]->shape[i] == x0->shape[i], "concat: dim %d differs", i);
    shape[axis] += xs[k]->shape[axis];
    any_grad |= xs[k]->requires_grad;
  }
  ts_tensor *o = ts_new(c, x0->ndim, shape);
  int64_t outer = prod_dims(o, 0, axis), inner = prod_dims(o, axis + 1, o->ndim), olen = shape[axis];
  int64_t off = 0;
  for (int k = 0; k < n; k++) {
    int64_t len = xs[k]->shape[axis];
    for (int64_t oo = 0; oo < outer; oo++)
      memcpy(o->data + (oo * olen + off) * inner, xs[k]->data + oo * len * inner,
             (size_t)(len * inner) * sizeof(float));
    off += len;
  }
  ts_tensor *first = NULL;
  for (int k = 0; k < n && !first; k++)
    if (xs[k]->requires_grad) first = xs[k];
  ts_node *nd = any_grad ? ts_record(c, concat_bw, o, first, NULL, NULL, NULL) : NULL;
  if (nd) {
    nd->in[0] = NULL; /* all inputs are in aux */
    ts_tensor **saved = ts_arena_alloc(&c->arena, (size_t)n * sizeof *saved);
    memcpy(saved, xs, (size_t)n * sizeof *saved);
    nd->aux = saved;
    nd->ia[0] = n;
    nd->ia[1] = axis;
  }
  return o;
}

static void slice_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *x = nd->in[0], *o = nd->out;
  float *g = in_grad(c, nd, 0);
  int axis = nd->ia[0], start = nd->ia[1];
  int64_t outer = prod_dims(x, 0, axis), inner = prod_dims(x, axis + 1, x->ndim);
  int64_t xl = x->shape[axis], ol = o->shape[axis];
  for (int64_t oo = 0; oo < outer; oo++)
    for (int64_t j = 0; j < ol * inner; j++) g[(oo * xl + start) * inner + j] += o->grad[oo * ol * inner + j];
}

ts_tensor *ts_slice(ts_ctx *c, ts_tensor *x, int axis, int start, int end) {
  if (axis < 0) axis += x->ndim;
  TS_CHECK(0 <= start && start <= end && end <= x->shape[axis], "slice [%d, %d) of %d", start, end,
           x->shape[axis]);
  int shape[TS_MAXDIM];
  for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
  shape[axis] = end - start;
  ts_tensor *o = ts_new(c, x->ndim, shape);
  int64_t outer = prod_dims(x, 0, axis), inner = prod_dims(x, axis + 1, x->ndim), xl = x->shape[axis];
  int64_t ol = end - start;
  for (int64_t oo = 0; oo < outer; oo++)
    memcpy(o->data + oo * ol * inner, x->data + (oo * xl + start) * inner, (size_t)(ol * inner) * sizeof(float));
  ts_node *n = ts_record(c, slice_bw, o, x, NULL, NULL, NULL);
  if (n) {
    n->ia[0] = axis;
    n->ia[1] = start;
  }
  return o;
}
