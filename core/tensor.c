#include "tensor.h"
#include "error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 64
static size_t align_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

static void *xaligned(size_t bytes, long *count) {
  void *p = NULL;
  if (posix_memalign(&p, ALIGN, bytes ? bytes : ALIGN) != 0) {
    fprintf(stderr, "tsdp: out of memory allocating %zu bytes\n", bytes);
    abort();
  }
  if (count) (*count)++;
  return p;
}

void ts_arena_init(ts_arena *a, size_t bytes) {
  memset(a, 0, sizeof *a);
  a->cap = align_up(bytes ? bytes : 1 << 20);
  a->base = xaligned(a->cap, &a->mallocs);
}

void *ts_arena_alloc(ts_arena *a, size_t bytes) {
  bytes = align_up(bytes ? bytes : 1);
  if (a->used + bytes <= a->cap) {
    void *p = a->base + a->used;
    a->used += bytes;
    if (a->used + a->overflow_used > a->peak) a->peak = a->used + a->overflow_used;
    return p;
  }
  /* Base is full: take a separate block so earlier pointers stay valid. */
  ts_block *b = xaligned(align_up(sizeof(ts_block)) + bytes, &a->mallocs);
  b->next = a->overflow;
  b->size = bytes;
  a->overflow = b;
  a->overflow_used += bytes;
  if (a->used + a->overflow_used > a->peak) a->peak = a->used + a->overflow_used;
  return (char *)b + align_up(sizeof(ts_block));
}

void ts_arena_reset(ts_arena *a) {
  if (a->overflow) { /* grow the base to the peak so the next round fits in one block */
    while (a->overflow) {
      ts_block *n = a->overflow->next;
      free(a->overflow);
      a->overflow = n;
    }
    free(a->base);
    a->cap = align_up(a->peak + a->peak / 4);
    a->base = xaligned(a->cap, &a->mallocs);
  }
  a->used = 0;
  a->overflow_used = 0;
}

void ts_arena_free(ts_arena *a) {
  while (a->overflow) {
    ts_block *n = a->overflow->next;
    free(a->overflow);
    a->overflow = n;
  }
  free(a->base);
  memset(a, 0, sizeof *a);
}

ts_ctx *ts_ctx_new(size_t arena_bytes) {
  ts_ctx *c = calloc(1, sizeof *c);
  if (!c) abort();
  ts_arena_init(&c->arena, arena_bytes);
  c->grad_enabled = 1;
  return c;
}

void ts_ctx_free(ts_ctx *c) {
  if (!c) return;
  ts_arena_free(&c->arena);
  free(c->nodes);
  free(c);
}

void ts_ctx_reset(ts_ctx *c) {
  ts_arena_reset(&c->arena);
  c->nnodes = 0;
}

int ts_set_grad(ts_ctx *c, int on) {
  int prev = c->grad_enabled;
  c->grad_enabled = on;
  return prev;
}

long ts_ctx_mallocs(const ts_ctx *c) { return c->arena.mallocs + c->node_reallocs; }

int64_t ts_numel(int ndim, const int *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

void ts_set_shape(ts_tensor *t, int ndim, const int *shape) {
  t->ndim = ndim;
  int64_t s = 1;
  for (int i = TS_MAXDIM - 1; i >= 0; i--) {
    t->shape[i] = i < ndim ? shape[i] : 1;
    t->stride[i] = i < ndim ? (int)s : 0;
    if (i < ndim) s *= shape[i];
  }
  t->n = s;
}

int ts_same_shape(const ts_tensor *a, const ts_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

const char *ts_shape_str(const ts_tensor *t, char *buf, size_t len) {
  size_t o = (size_t)snprintf(buf, len, "(");
  for (int i = 0; i < t->ndim && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, i ? ", %d" : "%d", t->shape[i]);
  if (o < len) snprintf(buf + o, len - o, ")");
  return buf;
}

static ts_tensor *header(ts_ctx *c, int ndim, const int *shape) {
  if (ndim < 0 || ndim > TS_MAXDIM) {
    fprintf(stderr, "tsdp: tensor rank %d unsupported\n", ndim);
    abort();
  }
  ts_tensor *t = ts_arena_alloc(&c->arena, sizeof *t);
  memset(t, 0, sizeof *t);
  ts_set_shape(t, ndim, shape);
  return t;
}

ts_tensor *ts_new(ts_ctx *c, int ndim, const int *shape) {
  ts_tensor *t = header(c, ndim, shape);
  t->data = ts_arena_alloc(&c->arena, (size_t)t->n * sizeof(float));
  return t;
}

ts_tensor *ts_zeros(ts_ctx *c, int ndim, const int *shape) {
  ts_tensor *t = ts_new(c, ndim, shape);
  memset(t->data, 0, (size_t)t->n * sizeof(float));
  return t;
}

ts_tensor *ts_wrap(ts_ctx *c, float *data, int ndim, const int *shape) {
  ts_tensor *t = header(c, ndim, shape);
  t->data = data;
  return t;
}

ts_tensor *ts_from(ts_ctx *c, const float *data, int ndim, const int *shape) {
  ts_tensor *t = ts_new(c, ndim, shape);
  memcpy(t->data, data, (size_t)t->n * sizeof(float));
  return t;
}

ts_tensor *ts_param_new(int ndim, const int *shape) {
  ts_tensor *t = calloc(1, sizeof *t);
  if (!t) abort();
  ts_set_shape(t, ndim, shape);
  t->data = xaligned((size_t)t->n * sizeof(float), NULL);
  t->grad = xaligned((size_t)t->n * sizeof(float), NULL);
  memset(t->data, 0, (size_t)t->n * sizeof(float));
  memset(t->grad, 0, (size_t)t->n * sizeof(float));
  t->requires_grad = 1;
  t->is_param = 1;
  return t;
}

void ts_param_free(ts_tensor *t) {
  if (!t) return;
  free(t->data);
  free(t->grad);
  free(t);
}

float *ts_grad(ts_ctx *c, ts_tensor *t) {
  if (!t->grad) {
    t->grad = ts_arena_alloc(&c->arena, (size_t)t->n * sizeof(float));
    memset(t->grad, 0, (size_t)t->n * sizeof(float));
  }
  return t->grad;
}

ts_node *ts_record(ts_ctx *c, ts_backward_fn bw, ts_tensor *out, ts_tensor *a, ts_tensor *b,
                   ts_tensor *d, ts_tensor *e) {
  if (!c->grad_enabled) return NULL;
  int need = (a && a->requires_grad) || (b && b->requires_grad) || (d && d->requires_grad) ||
             (e && e->requires_grad);
  if (!need) return NULL;
  if (c->nnodes == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 256;
    ts_node *nn = realloc(c->nodes, (size_t)c->cap * sizeof *nn);
    if (!nn) abort();
    c->nodes = nn;
    c->node_reallocs++;
  }
  ts_node *nd = &c->nodes[c->nnodes++];
  memset(nd, 0, sizeof *nd);
  nd->bw = bw;
  nd->out = out;
  nd->in[0] = a;
  nd->in[1] = b;
  nd->in[2] = d;
  nd->in[3] = e;
  out->requires_grad = 1;
  return nd;
}

int ts_backward_with(ts_ctx *c, ts_tensor *t, const float *seed) {
  if (!t->requires_grad) return ts_fail("backward: tensor does not require grad");
  float *g = ts_grad(c, t);
  for (int64_t i = 0; i < t->n; i++) g[i] += seed ? seed[i] : 1.0f;
  int prev = ts_set_grad(c, 0);
  for (int i = c->nnodes - 1; i >= 0; i--) {
    ts_node *nd = &c->nodes[i];
    if (nd->out->grad) nd->bw(c, nd);
  }
  ts_set_grad(c, prev);
  return 0;
}

int ts_backward(ts_ctx *c, ts_tensor *loss) {
  if (loss->n != 1) return ts_fail("backward: loss must have one element, has %lld", (long long)loss->n);
  return ts_backward_with(c, loss, NULL);
}

void ts_zero_grad(ts_tensor **params, int n) {
  for (int i = 0; i < n; i++)
    if (params[i]->grad) memset(params[i]->grad, 0, (size_t)params[i]->n * sizeof(float));
}
