/* parallel.c: gradient shards and their sum over the ranks (see parallel.h). */
#include "parallel.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/timer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ts_dp_init(ts_dp *dp, int shards_cfg, ts_tensor **params, int n) {
  memset(dp, 0, sizeof *dp);
  dp->rank = ts_dist_rank();
  dp->size = ts_dist_size();
  dp->shards = shards_cfg > 0 ? shards_cfg : dp->size;
  if (dp->shards % dp->size)
    return ts_fail("train.grad_shards = %d is not a multiple of the %d ranks", dp->shards, dp->size);
  dp->count = dp->shards / dp->size;
  dp->first = dp->rank * dp->count;
  dp->profile = getenv("TSDP_DP_PROFILE") != NULL;
  dp->params = params;
  dp->n = n;
  for (int i = 0; i < n; i++) dp->total += params[i]->n;
  if (!ts_dp_legacy(dp) && !(dp->acc = malloc((size_t)(dp->total + 1) * sizeof(float)))) abort();
  return 0;
}

void ts_dp_free(ts_dp *dp) {
  free(dp->acc);
  dp->acc = NULL;
}

int ts_dp_legacy(const ts_dp *dp) { return dp->shards == 1 && dp->size == 1; }

void ts_dp_rows(const ts_dp *dp, int s, int bs, int *lo, int *hi) {
  int64_t a, b;
  ts_dist_split(bs, s, dp->shards, &a, &b);
  *lo = (int)a;
  *hi = (int)b;
}

void ts_dp_my_rows(const ts_dp *dp, int bs, int *lo, int *hi) {
  int a, b;
  ts_dp_rows(dp, dp->first, bs, lo, &b);
  ts_dp_rows(dp, dp->first + dp->count - 1, bs, &a, hi);
}

float ts_dp_weight(int rows, int bs) { return rows == bs ? 1.0f : (float)rows / (float)bs; }

void ts_dp_shard_rng(ts_rng *r, uint64_t seed, long step, int s) {
  ts_rng_init_stream(r, seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(step + 1)), ((uint64_t)1 << 23) + (uint64_t)s);
}

void ts_dp_begin(ts_dp *dp) {
  dp->added = 0;
  dp->loss = 0;
}

void ts_dp_add(ts_dp *dp, double weighted_loss) {
  if (ts_dp_legacy(dp)) {
    dp->loss = weighted_loss;
    dp->added = 1;
    return;
  }
  float *a = dp->acc;
  int first = dp->added++ == 0;
  for (int i = 0; i < dp->n; i++) {
    const float *g = dp->params[i]->grad;
    int64_t m = dp->params[i]->n;
    if (first) memcpy(a, g, (size_t)m * sizeof(float));
    else
      for (int64_t k = 0; k < m; k++) a[k] += g[k];
    a += m;
  }
  /* the loss travels with the gradient, as a float like the shard's own loss value */
  if (first) *a = (float)weighted_loss;
  else *a += (float)weighted_loss;
}

double ts_dp_reduce(ts_dp *dp) {
  if (ts_dp_legacy(dp)) return dp->loss;
  if (!dp->added) memset(dp->acc, 0, (size_t)(dp->total + 1) * sizeof(float));
  double t0 = ts_now();
  if (dp->profile) {
    ts_dist_barrier();
    dp->wait_s += ts_now() - t0;
    t0 = ts_now();
  }
  ts_dist_allreduce_sum(dp->acc, dp->total + 1);
  dp->reduce_s += ts_now() - t0;
  dp->reduces++;
  const float *a = dp->acc;
  for (int i = 0; i < dp->n; i++) {
    memcpy(dp->params[i]->grad, a, (size_t)dp->params[i]->n * sizeof(float));
    a += dp->params[i]->n;
  }
  return *a;
}

void ts_dp_report(const ts_dp *dp, double step_seconds, long steps, char *buf, size_t n) {
  double per = steps > 0 ? step_seconds / steps : 0, k = dp->reduces > 0 ? (double)dp->reduces : 1;
  int o = snprintf(buf, n, "data parallel: %d rank%s x %d shard%s, all-reduce of %.2f M floats %.2f ms/step", dp->size,
                   dp->size > 1 ? "s" : "", dp->count, dp->count > 1 ? "s" : "", (double)dp->total / 1e6,
                   1e3 * dp->reduce_s / k);
  if (o > 0 && (size_t)o < n && dp->profile)
    o += snprintf(buf + o, n - (size_t)o, " (+ %.2f ms/step waiting for the slowest rank)", 1e3 * dp->wait_s / k);
  if (o > 0 && (size_t)o < n)
    snprintf(buf + o, n - (size_t)o, ", %.1f%% of %.1f ms/step", per > 0 ? 100 * (dp->reduce_s + dp->wait_s) / k / per : 0,
             1e3 * per);
}

int ts_dp_agree(int rc) {
  int v = rc;
  ts_dist_bcast(&v, sizeof v, 0);
  return v;
}

void ts_dp_sync_state(const ts_named *t, int n, ts_adamw *opt, ts_rng *rng, long *step) {
  if (ts_dist_size() <= 1) return;
  for (int i = 0; i < n; i++) ts_dist_bcast(t[i].t->data, t[i].t->n * (int64_t)sizeof(float), 0);
  if (opt) {
    for (int i = 0; i < opt->n; i++) {
      ts_dist_bcast(opt->m[i], opt->params[i]->n * (int64_t)sizeof(float), 0);
      ts_dist_bcast(opt->v[i], opt->params[i]->n * (int64_t)sizeof(float), 0);
    }
    ts_dist_bcast(&opt->step, sizeof opt->step, 0);
  }
  if (rng) ts_dist_bcast(rng, sizeof *rng, 0);
  ts_dist_bcast(step, sizeof *step, 0);
}
