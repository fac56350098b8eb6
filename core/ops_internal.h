/* ops_internal.h: helpers shared by the op implementation files (not a public header). */
#ifndef TS_OPS_INTERNAL_H
#define TS_OPS_INTERNAL_H

#include "ops.h"
#include <stdio.h>
#include <stdlib.h>

/* Abort on a shape contract violation: a bug in the caller, not bad user data. */
#define TS_CHECK(cond, ...)                                   \
  do {                                                        \
    if (!(cond)) {                                            \
      fprintf(stderr, "tsdp: internal shape error: ");        \
      fprintf(stderr, __VA_ARGS__);                           \
      fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);      \
      abort();                                                \
    }                                                         \
  } while (0)

/* Grad buffer of input i of a node, or NULL when that input needs none. */
static inline float *in_grad(ts_ctx *c, ts_node *nd, int i) {
  ts_tensor *t = nd->in[i];
  return (t && t->requires_grad) ? ts_grad(c, t) : NULL;
}

/* Product of shape[lo..hi). */
static inline int64_t prod_dims(const ts_tensor *t, int lo, int hi) {
  int64_t p = 1;
  for (int i = lo; i < hi; i++) p *= t->shape[i];
  return p;
}

/* C (M,N) = alpha op(A) op(B) + beta C, row-major, on raw pointers. */
void ts_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

#endif
