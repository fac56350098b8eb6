#include "denoiser.h"
#include <string.h>

void ts_denoiser_eps(ts_denoiser *d, const float *x, const int *t, const float *cond, int B, float *eps) {
  d->ops->eps(d->self, x, t, cond, B, eps);
  d->calls++;
}

void ts_denoiser_reserve(ts_denoiser *d, int B) {
  if (d && d->ops && d->ops->reserve) d->ops->reserve(d->self, B);
}

void ts_denoiser_set_threads(ts_denoiser *d, int n) {
  if (d && d->ops && d->ops->set_threads) d->ops->set_threads(d->self, n);
}

void ts_denoiser_free(ts_denoiser *d) {
  if (!d) return;
  if (d->ops && d->ops->free) d->ops->free(d->self);
  memset(d, 0, sizeof *d);
}

int ts_denoiser_same_shape(const ts_denoiser *a, const ts_denoiser *b) {
  return a->horizon == b->horizon && a->act_dim == b->act_dim && a->cond_dim == b->cond_dim;
}
