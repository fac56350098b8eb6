/* tensor.h: float32 tensors, the arena they live in, and the autograd tape.
 *
 * A ts_ctx owns an arena and a tape. Every op allocates its output (and anything it saves
 * for backward) from the arena and, when grad mode is on and an input requires grad,
 * appends a node to the tape. ts_backward walks the tape in reverse. ts_ctx_reset drops
 * both in O(1); after the first step (warm-up) the arena has grown to its peak and a
 * training step performs no malloc at all (see ts_ctx_mallocs).
 *
 * Parameters live outside the arena (ts_param_new) and keep their data and grad
 * across resets. */
#ifndef TS_TENSOR_H
#define TS_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define TS_MAXDIM 4

typedef struct ts_tensor {
  float *data;
  float *grad;           /* NULL until needed; same size as data */
  int64_t n;             /* number of elements */
  int ndim;
  int shape[TS_MAXDIM];
  int stride[TS_MAXDIM]; /* in elements; tensors are always contiguous (row-major) */
  int requires_grad;
  int is_param;          /* data and grad are owned by the tensor (malloc), not the arena */
} ts_tensor;

typedef struct ts_ctx ts_ctx;
typedef struct ts_node ts_node;
typedef void (*ts_backward_fn)(ts_ctx *c, ts_node *nd);

/* One recorded op: the backward function, its output, up to four inputs, and a few
 * saved integers, floats and an arena buffer. */
struct ts_node {
  ts_backward_fn bw;
  ts_tensor *out;
  ts_tensor *in[4];
  int ia[8];
  float fa[4];
  void *aux;
  void *aux2;
};

typedef struct ts_block { struct ts_block *next; size_t size; } ts_block;

typedef struct ts_arena {
  char *base;
  size_t cap, used, peak;
  ts_block *overflow;  /* blocks taken when base was full; merged into base on reset */
  size_t overflow_used;
  long mallocs;        /* count of malloc calls made by this arena (for no-alloc tests) */
} ts_arena;

struct ts_ctx {
  ts_arena arena;
  ts_node *nodes;
  int nnodes, cap;
  int grad_enabled;
  long node_reallocs;
};

/* ---- arena ---- */
void ts_arena_init(ts_arena *a, size_t bytes);
void *ts_arena_alloc(ts_arena *a, size_t bytes); /* 64-byte aligned, never NULL (aborts on OOM) */
void ts_arena_reset(ts_arena *a);
void ts_arena_free(ts_arena *a);

/* ---- context ---- */
ts_ctx *ts_ctx_new(size_t arena_bytes);
void ts_ctx_free(ts_ctx *c);
void ts_ctx_reset(ts_ctx *c);          /* forget all arena tensors and the tape */
int ts_set_grad(ts_ctx *c, int on);    /* returns the previous mode; off = no-grad, records nothing */
long ts_ctx_mallocs(const ts_ctx *c);  /* mallocs made so far by arena + tape */

/* ---- tensors ---- */
int64_t ts_numel(int ndim, const int *shape);
/* New arena tensor, uninitialised / zero-filled. */
ts_tensor *ts_new(ts_ctx *c, int ndim, const int *shape);
ts_tensor *ts_zeros(ts_ctx *c, int ndim, const int *shape);
/* Arena tensor header over caller-owned memory (no copy, no grad). */
ts_tensor *ts_wrap(ts_ctx *c, float *data, int ndim, const int *shape);
/* Arena tensor that is a copy of `data`. */
ts_tensor *ts_from(ts_ctx *c, const float *data, int ndim, const int *shape);
/* Persistent parameter (malloc'd data + zeroed grad, requires_grad = 1). */
ts_tensor *ts_param_new(int ndim, const int *shape);
void ts_param_free(ts_tensor *t);
/* Fill header fields (shape, strides, n) of t. */
void ts_set_shape(ts_tensor *t, int ndim, const int *shape);
int ts_same_shape(const ts_tensor *a, const ts_tensor *b);
/* "(2, 3, 4)" into buf */
const char *ts_shape_str(const ts_tensor *t, char *buf, size_t len);

/* ---- autograd ---- */
/* Gradient buffer of t, allocated zeroed from the arena on first use. */
float *ts_grad(ts_ctx *c, ts_tensor *t);
/* Record a node if grad mode is on and any input requires grad; marks out->requires_grad.
 * Returns the node (to fill saved values) or NULL when nothing is recorded. */
ts_node *ts_record(ts_ctx *c, ts_backward_fn bw, ts_tensor *out, ts_tensor *a, ts_tensor *b,
                   ts_tensor *d, ts_tensor *e);
/* Seed d(loss)/d(loss) = 1 for a one-element tensor and run the tape backwards. */
int ts_backward(ts_ctx *c, ts_tensor *loss);
/* Seed an arbitrary upstream gradient (same size as t) and run the tape backwards. */
int ts_backward_with(ts_ctx *c, ts_tensor *t, const float *seed);
void ts_zero_grad(ts_tensor **params, int n);

#define TS_SHAPE(...) (sizeof((int[]){__VA_ARGS__}) / sizeof(int)), ((int[]){__VA_ARGS__})

#endif
