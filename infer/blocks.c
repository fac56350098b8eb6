#include "blocks.h"
#include "core/error.h"
#include "core/sizes.h"
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fixed_block(void *self, const ts_round_state *st) {
  (void)st;
  return *(const int *)self;
}

ts_block_sched ts_block_fixed(const int *L) { return (ts_block_sched){.name = "fixed", .block = fixed_block, .self = (void *)L}; }

static int table_block(void *self, const ts_round_state *st) {
  const ts_block_table *tab = self;
  int t = st->t < 0 ? 0 : st->t >= tab->T ? tab->T - 1 : st->t;
  return tab->L[st->have_eps ? 1 : 0][t];
}

ts_block_sched ts_block_table_sched(const ts_block_table *tab) {
  return (ts_block_sched){.name = "static", .block = table_block, .self = (void *)tab};
}

int ts_block_lossy(const ts_block_sched *bs) { return bs && bs->tolerance; }

int ts_spec_sample_sched(ts_spec *s, const float *cond, int obs_dim, const ts_drafter *d, const ts_block_sched *bs,
                         ts_rng *rng, float *x) {
  ts_spec_begin(s, cond, rng);
  ts_denoiser *tg = ts_spec_target(s);
  ts_spec_round_info prev;
  ts_round_state st = {.T = ts_spec_t(s) + 1, .max_block = ts_spec_max_block(s), .control_step = (int)ts_spec_control_step(s),
                       .cond = cond, .cond_dim = tg->cond_dim, .obs_dim = obs_dim};
  int rc;
  do {
    st.t = ts_spec_t(s);
    st.have_eps = ts_spec_have_eps(s);
    int L = bs->block(bs->self, &st);
    L = L < 1 ? 1 : L > st.max_block ? st.max_block : L;
    if (bs->tolerance) ts_spec_set_tolerance(s, bs->tolerance(bs->self));
    rc = ts_spec_round(s, d, L, rng, &prev);
    if (rc >= 0 && bs->after) bs->after(bs->self, &prev);
    st.prev = &prev;
    st.round++;
  } while (rc == 1);
  if (bs->tolerance) ts_spec_set_tolerance(s, 0);
  if (rc < 0) return -1;
  memcpy(x, ts_spec_x(s), (size_t)tg->horizon * tg->act_dim * sizeof(float));
  return 0;
}

/* ---- cost model ---- */

typedef struct {
  ts_cost_model *c;
  int have_t, have_d;
  char err[256];
} cost_parse;

static int cost_handler(void *user, const char *section, const char *name, const char *value) {
  cost_parse *p = user;
  if (strcmp(section, "cost")) {
    snprintf(p->err, sizeof p->err, "unknown section [%s] (expected [cost])", section);
    return 0;
  }
  char *e;
  if (!strcmp(name, "target_ms")) {
    const char *q = value;
    p->c->n = 0;
    for (;;) {
      double v = strtod(q, &e);
      if (e == q || !(v > 0) || !isfinite(v)) {
        snprintf(p->err, sizeof p->err, "target_ms: '%s' is not a list of positive numbers", value);
        return 0;
      }
      if (p->c->n >= TS_COST_MAX_BATCH) {
        snprintf(p->err, sizeof p->err, "target_ms: more than %d batches", TS_COST_MAX_BATCH);
        return 0;
      }
      p->c->target_ms[++p->c->n] = v;
      while (*e == ' ' || *e == '\t') e++;
      if (!*e) break;
      if (*e != ',') {
        snprintf(p->err, sizeof p->err, "target_ms: '%s' is not a comma-separated list", value);
        return 0;
      }
      q = e + 1;
    }
    p->have_t = 1;
  } else if (!strcmp(name, "drafter_ms")) {
    double v = strtod(value, &e);
    if (e == value || *e || !(v >= 0) || !isfinite(v)) {
      snprintf(p->err, sizeof p->err, "drafter_ms: '%s' is not a number >= 0", value);
      return 0;
    }
    p->c->drafter_ms = v;
    p->have_d = 1;
  } else if (!strcmp(name, "threads")) {
    p->c->threads = atoi(value);
  } else {
    snprintf(p->err, sizeof p->err, "unknown key '%s' in [cost]", name);
    return 0;
  }
  return 1;
}

int ts_cost_load(ts_cost_model *c, const char *path) {
  memset(c, 0, sizeof *c);
  int reg = ts_regular_file(path); /* before the open: a FIFO would block, /dev/zero never ends */
  if (reg < 0) return -1;
  if (reg > 0) return ts_fail("%s: cannot open the cost model (no such file; tsdp bench cost writes one)", path);
  cost_parse p = {c, 0, 0, ""};
  int rc = ini_parse(path, cost_handler, &p);
  if (rc == -1) return ts_fail("%s: cannot open the cost model", path);
  if (rc) return ts_fail("%s:%d: %s", path, rc, p.err[0] ? p.err : "syntax error");
  if (!p.have_t || !p.have_d) return ts_fail("%s: cost model needs target_ms and drafter_ms in [cost]", path);
  return 0;
}

int ts_cost_save(const ts_cost_model *c, const char *path) {
  if (ts_regular_file(path) < 0) return -1; /* an existing folder, FIFO or device is never replaced */
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) return ts_fail("%s: cannot write", path);
  fprintf(f, "# measured by tsdp bench cost: median ms per call on this machine\n[cost]\ntarget_ms = ");
  for (int b = 1; b <= c->n; b++) fprintf(f, "%s%.4f", b > 1 ? ", " : "", c->target_ms[b]);
  fprintf(f, "\ndrafter_ms = %.4f\nthreads = %d\n", c->drafter_ms, c->threads);
  int bad = ferror(f);
  if (fclose(f) || bad || rename(tmp, path)) {
    remove(tmp);
    return ts_fail("%s: cannot write", path);
  }
  return 0;
}

int ts_cost_check_batch(const ts_cost_model *c, const char *path, int need, const char *why) {
  if (need <= c->n) return 0;
  return ts_fail("%s: the cost model measured target calls up to batch %d, but %s needs batch %d; measure it with tsdp "
                 "bench cost --max-batch %d (or use smaller blocks)",
                 path, c->n, why, need, need);
}

double ts_cost_target(const ts_cost_model *c, int b) {
  if (b < 1) return 0;
  if (b <= c->n) return c->target_ms[b];
  if (c->n < 2) return c->target_ms[1] * b;
  double slope = c->target_ms[c->n] - c->target_ms[c->n - 1];
  return c->target_ms[c->n] + (slope > 0 ? slope : 0) * (b - c->n);
}

double ts_cost_round(const ts_cost_model *c, const ts_spec_round_info *in) {
  int others = in->target_calls - (in->verify_rows > 0);
  return in->drafter_calls * c->drafter_ms + ts_cost_target(c, in->verify_rows) + others * ts_cost_target(c, 1);
}

/* ---- acceptance per step and the static schedule ---- */

void ts_accept_add(ts_accept_table *a, const ts_spec_round_info *in, int frozen) {
  if (in->drafted <= 0) return;
  int t = in->t_before;
  for (int k = 1; k <= in->drafted && k <= in->accepted + 1; k++) {
    int tk = t - k + 1;
    if (tk < 0 || tk >= TS_MAX_T || (frozen && k == 1)) continue;
    a->checked[tk] += 1;
    a->ok[tk] += k <= in->accepted;
  }
}

void ts_accept_rates(const ts_accept_table *a, double *rate) {
  int T = a->T;
  for (int t = 0; t < T; t++) rate[t] = a->checked[t] > 0 ? a->ok[t] / a->checked[t] : -1;
  for (int t = 0; t < T; t++) {
    if (rate[t] >= 0) continue;
    double v = 0.5;
    for (int d = 1; d < T; d++) {
      if (t - d >= 0 && a->checked[t - d] > 0) {
        v = a->ok[t - d] / a->checked[t - d];
        break;
      }
      if (t + d < T && a->checked[t + d] > 0) {
        v = a->ok[t + d] / a->checked[t + d];
        break;
      }
    }
    rate[t] = v;
  }
}

/* Expected cost of a round of L at (t, h) plus the expected cost-to-go from V. */
static double q_value(const double *rate, int t, int h, int L, const ts_cost_model *c, int frozen, double V[][2]) {
  int K = L < t ? L : t;
  double cost = frozen ? (h ? 0 : ts_cost_target(c, 1)) + ts_cost_target(c, K)
                       : K * c->drafter_ms + ts_cost_target(c, K + 1 - h);
  double surv = 1, e = 0;
  for (int k = 1; k <= K; k++) {
    double a = frozen && k == 1 ? 1.0 : rate[t - k + 1];
    e += surv * (1 - a) * V[t - k][0];
    surv *= a;
  }
  return cost + e + surv * V[t - K][1];
}

static double solve(const double *rate, int T, const ts_cost_model *c, int frozen, const int *set, int n,
                    ts_block_table *tab, int fill) {
  double V[TS_MAX_T][2];
  V[0][0] = ts_cost_target(c, 1);
  V[0][1] = 0;
  tab->T = T;
  tab->L[0][0] = tab->L[1][0] = 1;
  for (int t = 1; t < T; t++)
    for (int h = 0; h < 2; h++) {
      if (fill) {
        double best = INFINITY;
        for (int i = 0; i < n; i++) {
          double q = q_value(rate, t, h, set[i], c, frozen, V);
          if (q < best - 1e-12) best = q, tab->L[h][t] = (unsigned char)set[i];
        }
        V[t][h] = best;
      } else {
        V[t][h] = q_value(rate, t, h, tab->L[h][t], c, frozen, V);
      }
    }
  return V[T - 1][0];
}

double ts_block_dp(const double *rate, int T, const ts_cost_model *c, int frozen, const int *set, int n,
                   ts_block_table *tab) {
  return solve(rate, T, c, frozen, set, n, tab, 1);
}

double ts_block_eval(const double *rate, int T, const ts_cost_model *c, int frozen, const ts_block_table *tab) {
  ts_block_table t = *tab;
  return solve(rate, T, c, frozen, NULL, 0, &t, 0);
}
