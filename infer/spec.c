#include "spec.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int ts_spec_accept(const float *mp, const float *mq, float sig, const float *z, double u, float *out, int n) {
  double zd = 0, dd = 0;
  for (int i = 0; i < n; i++) {
    double d = ((double)mp[i] - mq[i]) / sig;
    zd += z[i] * d;
    dd += d * d;
  }
  double logr = -zd - 0.5 * dd; /* log q(y~) / p(y~) */
  if (logr >= 0 || log(u) < logr) {
    for (int i = 0; i < n; i++) out[i] = mp[i] + sig * z[i];
    return 1;
  }
  /* Reflect z through the hyperplane orthogonal to Delta: the maximal coupling's residual. */
  double inv = 1.0 / sqrt(dd), ez = zd * inv;
  for (int i = 0; i < n; i++) {
    double e = ((double)mp[i] - mq[i]) / sig * inv;
    out[i] = mq[i] + sig * (float)(z[i] - 2.0 * ez * e);
  }
  return 0;
}

size_t ts_spec_work_floats(int n, int cond_dim, int block) {
  size_t K = (size_t)block + 1;
  return 4 * K * n + K + K * cond_dim + 2 * (size_t)n + K;
}

void ts_spec_chain(const ts_spec_target *tg, const float *cond, const ts_spec_opts *o, ts_rng *rng, float *x,
                   ts_spec_stats *st, float *work) {
  const ts_ddpm *s = tg->sched;
  int n = tg->n, t = s->T - 1, have_eps = 0, L = o->block;
  size_t K1 = (size_t)L + 1;
  float *ys = work, *mp = ys + K1 * n, *z = mp + K1 * n, *eps = z + K1 * n, *sig = eps + K1 * n;
  float *condk = sig + K1, *e0 = condk + K1 * tg->cond_dim, *mq = e0 + n;
  int *tt = (int *)(mq + n); /* K1 ints in K1 floats */
  for (int k = 0; k < L; k++) memcpy(condk + (size_t)k * tg->cond_dim, cond, (size_t)tg->cond_dim * sizeof(float));
  while (t >= 0) {
    if (!have_eps) { /* the round's frozen eps: the target at the current state */
      tg->eps(tg->ctx, x, &t, cond, 1, e0);
      st->target_calls++;
    }
    if (t == 0) { /* sigma_0 = 0: the last step is the target's mean */
      ts_ddpm_mean(s, 0, x, e0, mq, n);
      memcpy(x, mq, (size_t)n * sizeof(float));
      break;
    }
    int K = L < t ? L : t; /* drafted steps at times t, t-1, .., t-K+1, all with sigma > 0 */
    st->rounds++;
    st->drafted += K;
    memcpy(ys, x, (size_t)n * sizeof(float));
    for (int k = 1; k <= K; k++) { /* draft k: from ys[k-1] at time t-k+1 with the frozen eps */
      float *m = mp + (size_t)(k - 1) * n, *zk = z + (size_t)(k - 1) * n, *y = ys + (size_t)k * n;
      sig[k - 1] = ts_ddpm_mean(s, t - k + 1, ys + (size_t)(k - 1) * n, e0, m, n);
      ts_rng_fill_normal(rng, zk, n);
      for (int i = 0; i < n; i++) y[i] = m[i] + sig[k - 1] * zk[i];
    }
    if (o->no_verify) { /* ablation: keep every draft */
      memcpy(x, ys + (size_t)K * n, (size_t)n * sizeof(float));
      st->accepted += K;
      t -= K;
      have_eps = 0;
      continue;
    }
    /* One target call on ys[1..K] at times t-1 .. t-K: row j verifies draft j + 1, and row K
     * is the next round's frozen eps when every draft is accepted. */
    for (int j = 1; j <= K; j++) tt[j - 1] = t - j;
    tg->eps(tg->ctx, ys + n, tt, condk, K, eps);
    st->target_calls++;
    st->accepted++; /* draft 1: the frozen drafter's mean is the target's own, Delta = 0 */
    int k;
    for (k = 2; k <= K; k++) {
      ts_ddpm_mean(s, t - k + 1, ys + (size_t)(k - 1) * n, eps + (size_t)(k - 2) * n, mq, n);
      if (!ts_spec_accept(mp + (size_t)(k - 1) * n, mq, sig[k - 1], z + (size_t)(k - 1) * n, ts_rng_uniform_d(rng), x, n))
        break;
      st->accepted++;
    }
    if (k <= K) { /* draft k rejected: x holds its reflection, at time t - k */
      t -= k;
      have_eps = 0;
    } else {
      memcpy(x, ys + (size_t)K * n, (size_t)n * sizeof(float));
      memcpy(e0, eps + (size_t)(K - 1) * n, (size_t)n * sizeof(float));
      t -= K;
      have_eps = 1;
    }
  }
}

static void policy_eps(void *ctx, const float *x, const int *t, const float *cond, int B, float *eps) {
  ts_policy_eps(ctx, x, t, cond, B, eps);
}

static size_t spec_need(const ts_policy *p, int block) {
  int n = p->horizon * p->act_dim;
  return ts_spec_work_floats(n, p->cond_dim, block) + (size_t)n;
}

void ts_spec_reserve(ts_policy *p, int B, int block) {
  size_t need = spec_need(p, block);
  if (need > p->spec_cap) { /* grown once: nothing allocated per chunk after that */
    free(p->spec_buf);
    p->spec_buf = malloc(need * sizeof(float));
    if (!p->spec_buf) abort();
    p->spec_cap = need;
  }
  ts_policy_reserve(p, B > block ? B : block);
}

int ts_spec_sample(ts_policy *p, const float *obs_raw, int B, const ts_spec_opts *o, ts_rng *rng, float *actions,
                   ts_spec_stats *st) {
  if (o->block < 1 || o->block > TS_SPEC_MAX_BLOCK)
    return ts_fail("speculative block %d: expected 1..%d", o->block, TS_SPEC_MAX_BLOCK);
  int n = p->horizon * p->act_dim;
  size_t need = spec_need(p, o->block);
  ts_spec_reserve(p, B, o->block);
  ts_spec_target tg = {&p->sched, n, p->cond_dim, policy_eps, p};
  ts_spec_stats local;
  memset(&local, 0, sizeof local);
  float *cond = p->buf_cond, *x = p->spec_buf + need - n;
  ts_policy_make_cond(p, obs_raw, B, cond);
  for (int c = 0; c < B; c++) {
    ts_rng_fill_normal(rng, x, n);
    ts_spec_chain(&tg, cond + (size_t)c * p->cond_dim, o, rng, x, &local, p->spec_buf);
    memcpy(actions + (size_t)c * n, x, (size_t)n * sizeof(float));
    local.chunks++;
  }
  ts_norm_unapply(&p->nact, actions, (int64_t)B * p->horizon);
  if (st) {
    st->chunks += local.chunks;
    st->target_calls += local.target_calls;
    st->drafted += local.drafted;
    st->accepted += local.accepted;
    st->rounds += local.rounds;
  }
  return 0;
}
