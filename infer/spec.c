#include "spec.h"
#include "core/error.h"
#include "core/pool.h"
#include "core/timer.h"
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

const char *ts_drafter_label(const ts_drafter *d) {
  if (!d || d->frozen) return "frozen";
  if (d->x0) return !d->net ? "x0" : d->early_t > 0 ? "learned+x0" : "x0+late";
  return "learned";
}

void ts_drafter_cond(const float *cond, int cond_dim, int n_obs_steps, long step, float *out) {
  int od = cond_dim / n_obs_steps;
  for (int j = 0; j < n_obs_steps; j++) {
    memcpy(out + (size_t)j * (od + 1), cond + (size_t)j * od, (size_t)od * sizeof(float));
    long k = step - (n_obs_steps - 1 - j);
    out[(size_t)j * (od + 1) + od] = (float)(k > 0 ? k : 0) / TS_TEMPORAL_SCALE;
  }
}

struct ts_spec {
  ts_denoiser *target;
  const ts_ddpm *sched;
  int n, cond_dim, max_block, verify;
  int t, have_eps; /* have_eps: e0 holds the target's eps at (x, t) */
  int have_x0;     /* the x0 drafter: x0r holds the target's latest x0 estimate (after a rejection) */
  double tol;      /* LOSSY tolerance on |Delta| (0: exact) */
  long step;       /* control step of the cond's latest observation (temporal drafters) */
  float *dcond;    /* a temporal drafter's cond (cond_dim + n_obs_steps <= 2 cond_dim) */
  float *x, *cond, *condk, *ys, *mp, *z, *sig, *et, *e0, *eq, *mq, *x0r;
  int *tt;
  float *buf;
  ts_spec_stats st;
  /* Overlapped drafting (ts_spec_set_overlap): while the target verifies a round on the calling
   * thread, a second thread drafts the next round's first steps from the round's last draft,
   * with noise from prng; they are used when every draft of the round is accepted (the next
   * round then starts exactly there), else dropped. */
  int overlap;
  ts_pool *pool;                           /* 2 threads: the caller verifies, the worker pre-drafts */
  ts_rng prng;                             /* the pre-drafts' noise, seeded from the chain's rng each round */
  int pre_n, pre_t;                        /* pre-drafts ready for a round starting at step pre_t (0: none) */
  float *pre_ys, *pre_mp, *pre_z, *pre_sig, *pre_eq; /* (L+1) n, L n, L n, L, n */
  double pre_s;                            /* the worker's drafter seconds in the last round */
};

ts_spec *ts_spec_new(ts_denoiser *target, const ts_ddpm *sched, int max_block) {
  if (!target || !target->ops || !sched) {
    ts_fail("speculative sampler: no target or schedule");
    return NULL;
  }
  if (max_block < 1 || max_block > TS_SPEC_MAX_BLOCK) {
    ts_fail("speculative block %d: expected 1..%d", max_block, TS_SPEC_MAX_BLOCK);
    return NULL;
  }
  ts_spec *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->target = target;
  s->sched = sched;
  s->n = target->horizon * target->act_dim;
  s->cond_dim = target->cond_dim;
  s->max_block = max_block;
  s->verify = 1;
  s->t = -1;
  size_t n = (size_t)s->n, L = (size_t)max_block, K1 = L + 1, C = (size_t)s->cond_dim;
  size_t total = n + C + 2 * C + K1 * C + K1 * n + 2 * L * n + L + K1 * n + 4 * n;
  s->buf = malloc(total * sizeof(float));
  s->tt = malloc(K1 * sizeof(int));
  if (!s->buf || !s->tt) abort();
  float *q = s->buf;
  s->x = q, q += n;
  s->cond = q, q += C;
  s->dcond = q, q += 2 * C;
  s->condk = q, q += K1 * C; /* cond repeated for the verification rows */
  s->ys = q, q += K1 * n;    /* y_0 (the round's start) .. y_K */
  s->mp = q, q += L * n;     /* draft means */
  s->z = q, q += L * n;
  s->sig = q, q += L;
  s->et = q, q += K1 * n; /* target eps at y_0 .. y_K */
  s->e0 = q, q += n;
  s->eq = q, q += n;
  s->mq = q, q += n;
  s->x0r = q; /* the x0 drafter's reference clean chunk */
  ts_denoiser_reserve(target, max_block + 1);
  return s;
}

void ts_spec_free(ts_spec *s) {
  if (!s) return;
  ts_pool_free(s->pool);
  free(s->pre_ys);
  free(s->buf);
  free(s->tt);
  free(s);
}

ts_denoiser *ts_spec_target(const ts_spec *s) { return s->target; }
int ts_spec_max_block(const ts_spec *s) { return s->max_block; }
void ts_spec_set_verify(ts_spec *s, int verify) { s->verify = verify != 0; }
void ts_spec_set_tolerance(ts_spec *s, double tol) { s->tol = tol > 0 ? tol : 0; }

void ts_spec_set_overlap(ts_spec *s, int on) {
  s->overlap = on != 0;
  s->pre_n = 0;
  if (!s->overlap || s->pool) return;
  size_t n = (size_t)s->n, L = (size_t)s->max_block;
  s->pool = ts_pool_new(2, 200); /* one worker, spinning 200 us between rounds */
  s->pre_ys = malloc(((L + 1) * n + 2 * L * n + L + n) * sizeof(float));
  if (!s->pool || !s->pre_ys) abort();
  if (ts_pool_size(s->pool) < 2) s->overlap = 0; /* no worker thread could start: draft in turn */
  s->pre_mp = s->pre_ys + (L + 1) * n;
  s->pre_z = s->pre_mp + L * n;
  s->pre_sig = s->pre_z + L * n;
  s->pre_eq = s->pre_sig + L;
}
int ts_spec_overlap(const ts_spec *s) { return s->overlap; }
double ts_spec_tolerance(const ts_spec *s) { return s->tol; }
const float *ts_spec_x(const ts_spec *s) { return s->x; }
int ts_spec_t(const ts_spec *s) { return s->t; }
int ts_spec_have_eps(const ts_spec *s) { return s->have_eps; }
const ts_spec_stats *ts_spec_stats_of(const ts_spec *s) { return &s->st; }
void ts_spec_reset_stats(ts_spec *s) { memset(&s->st, 0, sizeof s->st); }

void ts_spec_set_control_step(ts_spec *s, long step) { s->step = step; }
long ts_spec_control_step(const ts_spec *s) { return s->step; }

void ts_spec_begin(ts_spec *s, const float *cond, ts_rng *rng) {
  size_t C = (size_t)s->cond_dim;
  memcpy(s->cond, cond, C * sizeof(float));
  for (int k = 0; k <= s->max_block; k++) memcpy(s->condk + k * C, cond, C * sizeof(float));
  ts_rng_fill_normal(rng, s->x, s->n);
  s->t = s->sched->T - 1;
  s->have_eps = 0;
  s->have_x0 = 0;
  s->pre_n = 0;
}

/* The target's clean-chunk estimate at (y, t) from its eps there, clipped as in the mean. */
static void x0_of(const ts_ddpm *sc, int t, const float *y, const float *eps, float *x0, int n) {
  double a = sc->alphas_cumprod[t], sa = sqrt(a), sq = sqrt(1.0 - a);
  for (int i = 0; i < n; i++) {
    float v = (float)((y[i] - sq * eps[i]) / sa);
    x0[i] = sc->clip_sample ? (v < -1 ? -1 : v > 1 ? 1 : v) : v;
  }
}

/* The eps whose clean-chunk estimate at (y, t) is x0. */
static void eps_for_x0(const ts_ddpm *sc, int t, const float *y, const float *x0, float *eps, int n) {
  double a = sc->alphas_cumprod[t], sa = sqrt(a), sq = sqrt(1.0 - a);
  for (int i = 0; i < n; i++) eps[i] = (float)((y[i] - sa * x0[i]) / sq);
}

int ts_drafter_check(const ts_drafter *d, const ts_denoiser *target) {
  if (!d || d->frozen || (d->x0 && !d->net)) return 0;
  if (!d->net || !d->net->ops || d->net->horizon != target->horizon || d->net->act_dim != target->act_dim)
    return ts_fail("speculative sampler: the drafter's x shape differs from the target's");
  if (d->temporal < 0 || (d->temporal && target->cond_dim % d->temporal))
    return ts_fail("speculative sampler: temporal drafter with %d observation steps for a cond of %d", d->temporal,
                   target->cond_dim);
  int want = target->cond_dim + d->temporal;
  if (d->net->cond_dim != want)
    return ts_fail("speculative sampler: the drafter reads a cond of %d values, expected %d%s", d->net->cond_dim, want,
                   d->temporal ? " (the target's plus each observation's control step)" : " (the target's)");
  return 0;
}

/* The x0 drafter with a net: does the net draft step t (the x0 estimate drafts the rest)? */
static int net_drafts(const ts_drafter *d, int t) {
  return d->net && (t < d->late_t || (d->early_t > 0 && t >= d->early_t));
}

/* |Delta| = |mp - mq| / sig */
static double delta_norm(const float *mp, const float *mq, float sig, int n) {
  double dd = 0;
  for (int i = 0; i < n; i++) {
    double d = ((double)mp[i] - mq[i]) / sig;
    dd += d * d;
  }
  return sqrt(dd);
}

/* A target call; its time goes to verify_s (a batched verification) or draft_s (the frozen
 * drafter's eps at the round's start). */
static void target_eps(ts_spec *s, const float *x, const int *t, int rows, float *eps, ts_spec_round_info *in,
                       int verify) {
  double t0 = ts_now();
  ts_denoiser_eps(s->target, x, t, s->condk, rows, eps);
  double dt = ts_now() - t0;
  if (verify) s->st.verify_s += dt, s->st.verify_rows += rows;
  else s->st.draft_s += dt;
  in->target_calls++;
}

/* The overlapped verification: job 0 (the caller) is the round's batched target call, job 1
 * (the worker) drafts P steps on from y_K at step t0 = t - K into the pre_* buffers. */
typedef struct {
  ts_spec *s;
  const ts_drafter *d;
  const float *dc;
  int t0, P, r0, K;
  ts_spec_round_info *in;
} ovl_job;

static void ovl_fn(void *arg, int i, int n) {
  (void)n;
  ovl_job *j = arg;
  ts_spec *s = j->s;
  size_t N = (size_t)s->n;
  if (i == 0) {
    target_eps(s, s->ys + j->r0 * N, s->tt, j->K + 1 - j->r0, s->et + j->r0 * N, j->in, 1);
    return;
  }
  double t0 = ts_now();
  memcpy(s->pre_ys, s->ys + (size_t)j->K * N, N * sizeof(float));
  for (int k = 1; k <= j->P; k++) {
    int tk = j->t0 - k + 1;
    const float *yp = s->pre_ys + (k - 1) * N;
    float *m = s->pre_mp + (k - 1) * N, *zk = s->pre_z + (k - 1) * N, *y = s->pre_ys + k * N;
    ts_denoiser_eps(j->d->net, yp, &tk, j->dc, 1, s->pre_eq);
    float sg = s->pre_sig[k - 1] = ts_ddpm_mean(s->sched, tk, yp, s->pre_eq, m, s->n);
    ts_rng_fill_normal(&s->prng, zk, s->n);
    for (int q = 0; q < s->n; q++) y[q] = m[q] + sg * zk[q];
  }
  s->pre_s = ts_now() - t0;
}

int ts_spec_round(ts_spec *s, const ts_drafter *d, int block, ts_rng *rng, ts_spec_round_info *info) {
  double t_round = ts_now();
  ts_spec_round_info in;
  memset(&in, 0, sizeof in);
  in.t_before = in.t_after = s->t;
  if (s->t < 0) {
    if (info) *info = in;
    return 0;
  }
  if (block < 1 || block > s->max_block)
    return ts_fail("speculative block %d: expected 1..%d for this sampler", block, s->max_block);
  int frozen = !d || d->frozen, x0m = !frozen && d->x0; /* x0m: the x0 drafter (its net, if any, for t < late_t) */
  if (!frozen && ts_drafter_check(d, s->target)) return -1;
  const float *dc = s->cond;
  if (!frozen && d->net && d->temporal) {
    ts_drafter_cond(s->cond, s->cond_dim, d->temporal, s->step, s->dcond);
    dc = s->dcond;
  }
  const ts_ddpm *sc = s->sched;
  int n = s->n, t = s->t;
  size_t N = (size_t)n;
  /* x0m: does this round draft any step from the x0 estimate (else its net drafts them all)? */
  int x0use = 0;
  for (int k = 1; x0m && k <= block && k <= t && !x0use; k++) x0use = !net_drafts(d, t - k + 1);
  if ((frozen || (x0use && !s->have_x0)) && !s->have_eps) { /* the round's frozen eps (or the x0 drafter's first
                                                              reference): the target at the current state */
    target_eps(s, s->x, &t, 1, s->e0, &in, 0);
    s->have_eps = 1;
  }
  if (x0use && s->have_eps) x0_of(sc, t, s->x, s->e0, s->x0r, n); /* the freshest estimate, when x0 drafts */
  if (t == 0) { /* sigma_0 = 0: the last step is the target's mean */
    if (!s->have_eps) target_eps(s, s->x, &t, 1, s->e0, &in, 1);
    ts_ddpm_mean(sc, 0, s->x, s->e0, s->mq, n);
    memcpy(s->x, s->mq, N * sizeof(float));
    s->t = -1;
    s->have_eps = 0;
    s->st.chunks++;
  } else {
    int K = block < t ? block : t; /* drafted steps at times t, t-1, .., t-K+1, all with sigma > 0 */
    in.drafted = K;
    memcpy(s->ys, s->x, N * sizeof(float));
    int k1 = 1;
    if (!frozen && !x0m && s->overlap && s->pre_n > 0 && s->pre_t == t) { /* the worker's drafts from this very state */
      int u = s->pre_n < K ? s->pre_n : K;
      memcpy(s->ys + N, s->pre_ys + N, (size_t)u * N * sizeof(float));
      memcpy(s->mp, s->pre_mp, (size_t)u * N * sizeof(float));
      memcpy(s->z, s->pre_z, (size_t)u * N * sizeof(float));
      memcpy(s->sig, s->pre_sig, (size_t)u * sizeof(float));
      s->st.pre_used += u;
      k1 = u + 1;
    }
    s->pre_n = 0;
    int P = 0; /* steps the worker pre-drafts during this round's verification */
    for (int k = k1; k <= K; k++) { /* draft k: from y_{k-1} at time t-k+1 */
      const float *yp = s->ys + (k - 1) * N, *e = s->e0;
      float *m = s->mp + (k - 1) * N, *zk = s->z + (k - 1) * N, *y = s->ys + k * N;
      int tk = t - k + 1;
      if (x0m && !net_drafts(d, tk)) { /* the eps that gives x0_ref: arithmetic, no call */
        eps_for_x0(sc, tk, yp, s->x0r, s->eq, n);
        e = s->eq;
      } else if (!frozen) {
        double t0 = ts_now();
        ts_denoiser_eps(d->net, yp, &tk, dc, 1, s->eq);
        s->st.draft_s += ts_now() - t0;
        in.drafter_calls++;
        e = s->eq;
      }
      float sg = s->sig[k - 1] = ts_ddpm_mean(sc, t - k + 1, yp, e, m, n);
      ts_rng_fill_normal(rng, zk, n);
      for (int i = 0; i < n; i++) y[i] = m[i] + sg * zk[i];
    }
    if (!s->verify) { /* ablation: keep every draft */
      memcpy(s->x, s->ys + K * N, N * sizeof(float));
      in.accepted = K;
      for (int k = 1; k <= K; k++) s->st.drafted_t[t - k + 1]++, s->st.accepted_t[t - k + 1]++;
      t -= K;
      s->have_eps = 0;
    } else {
      /* One target call on the drafted states y_1..y_K at times t-1..t-K, and on y_0 at t when
       * its eps is not known yet (learned drafter after a rejection). Row j of et is the
       * target's eps at y_j: it verifies draft j + 1, and row K is the next round's eps when
       * every draft is accepted. */
      int r0 = s->have_eps ? 1 : 0;
      for (int j = r0; j <= K; j++) s->tt[j - r0] = t - j;
      if (!frozen && !x0m && s->overlap && t - K >= 1) {
        P = block < t - K ? block : t - K;
        uint64_t hi = ts_rng_u32(rng), lo = ts_rng_u32(rng);
        ts_rng_init_stream(&s->prng, hi << 32 | lo, 7);
        ovl_job j = {s, d, dc, t - K, P, r0, K, &in};
        ts_pool_run(s->pool, ovl_fn, &j);
        s->st.pre_drafted += P;
        s->st.pre_s += s->pre_s;
      } else
        target_eps(s, s->ys + r0 * N, s->tt, K + 1 - r0, s->et + r0 * N, &in, 1);
      in.verify_rows = K + 1 - r0;
      const float *e_start = r0 ? s->e0 : s->et;
      double dsum = 0;
      int k;
      for (k = 1; k <= K; k++) {
        const float *m = s->mp + (k - 1) * N;
        s->st.drafted_t[t - k + 1]++;
        if (frozen && k == 1) { /* the frozen drafter's mean is the target's own: Delta = 0 */
          in.accepted++;
          s->st.accepted_t[t - k + 1]++;
          continue;
        }
        ts_ddpm_mean(sc, t - k + 1, s->ys + (k - 1) * N, k == 1 ? e_start : s->et + (k - 1) * N, s->mq, n);
        double dn = delta_norm(m, s->mq, s->sig[k - 1], n);
        dsum += dn;
        in.max_delta = dn > in.max_delta ? dn : in.max_delta;
        if (!ts_spec_accept(m, s->mq, s->sig[k - 1], s->z + (k - 1) * N, ts_rng_uniform_d(rng), s->x, n)) {
          if (!(s->tol > 0 && dn <= s->tol)) break;
          in.relaxed++; /* LOSSY: kept by the tolerance, the draft instead of the reflection */
        }
        in.accepted++;
        s->st.accepted_t[t - k + 1]++;
      }
      int checked = k <= K ? k : K;
      in.mean_delta = dsum / checked;
      if (k <= K) { /* draft k rejected: x holds its reflection, at time t - k */
        if (x0m) { /* the next round's reference: the estimate at y_{k-1}, the last verified state */
          x0_of(sc, t - k + 1, s->ys + (k - 1) * N, k == 1 ? e_start : s->et + (k - 1) * N, s->x0r, n);
          s->have_x0 = 1;
        }
        t -= k;
        s->have_eps = 0;
      } else {
        memcpy(s->x, s->ys + K * N, N * sizeof(float));
        memcpy(s->e0, s->et + K * N, N * sizeof(float));
        t -= K;
        s->have_eps = 1;
        s->pre_n = P, s->pre_t = t; /* the next round starts where the worker did */
      }
    }
    s->t = t;
    s->st.rounds++;
  }
  in.t_after = s->t;
  s->st.target_calls += in.target_calls;
  s->st.drafter_calls += in.drafter_calls;
  s->st.drafted += in.drafted;
  s->st.accepted += in.accepted;
  s->st.relaxed += in.relaxed;
  s->st.round_s += ts_now() - t_round;
  if (info) *info = in;
  return s->t >= 0;
}

int ts_spec_sample(ts_spec *s, const float *cond, const ts_drafter *d, int block, ts_rng *rng, float *x) {
  ts_spec_begin(s, cond, rng);
  int rc;
  while ((rc = ts_spec_round(s, d, block, rng, NULL)) == 1) {
  }
  if (rc < 0) return -1;
  memcpy(x, s->x, (size_t)s->n * sizeof(float));
  return 0;
}

void ts_spec_stats_add(ts_spec_stats *out, const ts_spec_stats *a, const ts_spec_stats *b, int sign) {
  ts_spec_stats r = *a;
#define ADD(f) r.f = a->f + sign * b->f
  ADD(chunks), ADD(target_calls), ADD(drafter_calls), ADD(drafted), ADD(accepted), ADD(rounds), ADD(relaxed);
  ADD(pre_drafted), ADD(pre_used), ADD(verify_rows), ADD(draft_s), ADD(verify_s), ADD(round_s), ADD(pre_s);
  for (int t = 0; t < TS_MAX_T; t++) ADD(drafted_t[t]), ADD(accepted_t[t]);
#undef ADD
  *out = r;
}

long ts_spec_checked(const ts_spec_stats *s) {
  long n = 0;
  for (int t = 0; t < TS_MAX_T; t++) n += s->drafted_t[t];
  return n;
}
