#include "ppo.h"
#include "core/error.h"
#include "core/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OBS_CLIP 5.0f

int ts_ppo_new(ts_ppo *a, const ts_ppo_cfg *cfg, ts_rng *rng) {
  memset(a, 0, sizeof *a);
  if (cfg->obs_dim < 1 || cfg->n_actions < 2 || cfg->hidden < 1 || cfg->layers < 1 || cfg->layers > TS_PPO_MAX_LAYERS)
    return ts_fail("ppo: obs_dim %d, actions %d, hidden %d, layers %d: need >= 1, >= 2, >= 1, 1..%d", cfg->obs_dim,
                   cfg->n_actions, cfg->hidden, cfg->layers, TS_PPO_MAX_LAYERS);
  if (cfg->epochs < 1 || cfg->minibatch < 1) return ts_fail("ppo: epochs and minibatch must be >= 1");
  a->cfg = *cfg;
  int L = cfg->layers, H = cfg->hidden;
  for (int net = 0; net < 2; net++) {
    ts_tensor **W = net ? a->cw : a->aw, **Bi = net ? a->cb : a->ab;
    const char *nm = net ? "critic" : "actor";
    for (int l = 0; l <= L; l++) {
      int in = l ? H : cfg->obs_dim, out = l < L ? H : (net ? 1 : cfg->n_actions);
      W[l] = ts_params_add(&a->params, 2, (int[]){out, in}, "%s.%d.weight", nm, l);
      Bi[l] = ts_params_add(&a->params, 1, &out, "%s.%d.bias", nm, l);
      ts_init_uniform_fan_in(W[l], Bi[l], in, rng);
    }
  }
  for (int64_t i = 0; i < a->aw[L]->n; i++) a->aw[L]->data[i] *= 0.01f; /* near-uniform first policy */
  for (int64_t i = 0; i < a->ab[L]->n; i++) a->ab[L]->data[i] = 0;
  a->obs_mean = ts_param_new(1, &a->cfg.obs_dim);
  a->obs_var = ts_param_new(1, &a->cfg.obs_dim);
  a->obs_count = ts_param_new(1, (int[]){1});
  a->obs_mean->requires_grad = a->obs_var->requires_grad = a->obs_count->requires_grad = 0;
  for (int i = 0; i < cfg->obs_dim; i++) a->obs_var->data[i] = 1;
  a->opt = ts_adamw_new(a->params.t, a->params.n, (float)cfg->lr, 0.9f, 0.999f, 1e-5f, 0.0f);
  a->ctx = ts_ctx_new(1 << 20);
  return 0;
}

void ts_ppo_free(ts_ppo *a) {
  if (!a) return;
  ts_params_free(&a->params);
  ts_param_free(a->obs_mean);
  ts_param_free(a->obs_var);
  ts_param_free(a->obs_count);
  ts_adamw_free(a->opt);
  if (a->ctx) ts_ctx_free(a->ctx);
  free(a->nbuf);
  memset(a, 0, sizeof *a);
}

ts_named *ts_ppo_tensors(const ts_ppo *a, int *n) {
  int np = a->params.n;
  ts_named *nm = ts_params_named(&a->params, "ppo/", NULL);
  nm = realloc(nm, (size_t)(np + 3) * sizeof *nm);
  if (!nm) abort();
  const char *ex[3] = {"ppo/obs_mean", "ppo/obs_var", "ppo/obs_count"};
  ts_tensor *et[3] = {a->obs_mean, a->obs_var, a->obs_count};
  for (int k = 0; k < 3; k++) {
    nm[np + k].name = strdup(ex[k]);
    nm[np + k].t = et[k];
  }
  *n = np + 3;
  return nm;
}

void ts_ppo_norm_update(ts_ppo *a, const float *obs, int n) {
  int D = a->cfg.obs_dim;
  if (n <= 0) return;
  double nb = n, na = a->obs_count->data[0];
  for (int d = 0; d < D; d++) {
    double m = 0, q = 0;
    for (int i = 0; i < n; i++) m += obs[(size_t)i * D + d];
    m /= nb;
    for (int i = 0; i < n; i++) {
      double e = obs[(size_t)i * D + d] - m;
      q += e * e;
    }
    q /= nb;
    double ma = a->obs_mean->data[d], va = a->obs_var->data[d], tot = na + nb, dl = m - ma;
    double mn = ma + dl * nb / tot;
    double m2 = va * na + q * nb + dl * dl * na * nb / tot;
    a->obs_mean->data[d] = (float)mn;
    a->obs_var->data[d] = (float)(m2 / tot);
  }
  a->obs_count->data[0] = (float)(na + nb);
}

void ts_ppo_normalize(const ts_ppo *a, const float *obs, int n, float *out) {
  int D = a->cfg.obs_dim;
  for (int i = 0; i < n; i++)
    for (int d = 0; d < D; d++) {
      float v = (obs[(size_t)i * D + d] - a->obs_mean->data[d]) / sqrtf(a->obs_var->data[d] + 1e-8f);
      out[(size_t)i * D + d] = v > OBS_CLIP ? OBS_CLIP : v < -OBS_CLIP ? -OBS_CLIP : v;
    }
}

static ts_tensor *mlp(ts_ctx *c, ts_tensor *x, ts_tensor **W, ts_tensor **B, int L) {
  for (int l = 0; l < L; l++) x = ts_tanh(c, ts_linear(c, x, W[l], B[l]));
  return ts_linear(c, x, W[L], B[L]);
}

/* Normalised rows into the work buffer, wrapped as an arena tensor (n, obs_dim). */
static ts_tensor *norm_input(ts_ppo *a, const float *obs, int n) {
  if (n > a->nbuf_rows) {
    a->nbuf = realloc(a->nbuf, (size_t)n * a->cfg.obs_dim * sizeof(float));
    if (!a->nbuf) abort();
    a->nbuf_rows = n;
  }
  ts_ppo_normalize(a, obs, n, a->nbuf);
  return ts_from(a->ctx, a->nbuf, 2, (int[]){n, a->cfg.obs_dim});
}

void ts_ppo_probs(ts_ppo *a, const float *obs, float *probs) {
  ts_ctx_reset(a->ctx);
  int g = ts_set_grad(a->ctx, 0);
  ts_tensor *lg = ts_softmax(a->ctx, mlp(a->ctx, norm_input(a, obs, 1), a->aw, a->ab, a->cfg.layers));
  memcpy(probs, lg->data, (size_t)a->cfg.n_actions * sizeof(float));
  ts_set_grad(a->ctx, g);
}

void ts_ppo_act(ts_ppo *a, const float *obs, int greedy, ts_rng *rng, int *action, float *logp, float *value) {
  ts_ctx_reset(a->ctx);
  int g = ts_set_grad(a->ctx, 0), K = a->cfg.n_actions;
  ts_tensor *x = norm_input(a, obs, 1);
  ts_tensor *lp = ts_log_softmax(a->ctx, mlp(a->ctx, x, a->aw, a->ab, a->cfg.layers));
  int k = 0;
  if (greedy) {
    for (int j = 1; j < K; j++)
      if (lp->data[j] > lp->data[k]) k = j;
  } else {
    double u = ts_rng_uniform_d(rng), cum = 0;
    for (k = 0; k < K - 1; k++) {
      cum += exp(lp->data[k]);
      if (u < cum) break;
    }
  }
  *action = k;
  if (logp) *logp = lp->data[k];
  if (value) *value = mlp(a->ctx, x, a->cw, a->cb, a->cfg.layers)->data[0];
  ts_set_grad(a->ctx, g);
}

void ts_gae(const float *rew, const float *val, const unsigned char *done, int n, float last_value, double gamma,
            double lam, float *adv, float *ret) {
  double next_v = last_value, next_a = 0;
  for (int i = n - 1; i >= 0; i--) {
    double nd = done[i] ? 0.0 : 1.0;
    double delta = rew[i] + gamma * nd * next_v - val[i];
    next_a = delta + gamma * lam * nd * next_a;
    adv[i] = (float)next_a;
    ret[i] = (float)(next_a + val[i]);
    next_v = val[i];
  }
}

/* Saved: the per-row gradient factor -r A / B where the unclipped term is active. */
static void clip_bw(ts_ctx *c, ts_node *nd) {
  ts_tensor *lp = nd->in[0];
  const float *k = nd->aux;
  float *g = ts_grad(c, lp), up = nd->out->grad[0];
  for (int b = 0; b < lp->shape[0]; b++) g[b] += up * k[b];
}

ts_tensor *ts_ppo_clip_loss(ts_ctx *c, ts_tensor *logp, const float *old_logp, const float *adv, float eps) {
  int B = logp->shape[0];
  float *k = ts_arena_alloc(&c->arena, (size_t)B * sizeof(float));
  double s = 0;
  for (int b = 0; b < B; b++) {
    double r = exp((double)logp->data[b] - old_logp[b]), A = adv[b];
    double rc = r < 1 - eps ? 1 - eps : r > 1 + eps ? 1 + eps : r;
    double u = r * A, cl = rc * A;
    /* The unclipped term is the minimum (ties: inside the range, where both are equal). */
    int active = u < cl || (u == cl && r >= 1 - eps && r <= 1 + eps);
    s += u < cl ? u : cl;
    k[b] = active ? (float)(-r * A / B) : 0.0f;
  }
  ts_tensor *o = ts_new(c, 1, (int[]){1});
  o->data[0] = (float)(-s / B);
  ts_node *n = ts_record(c, clip_bw, o, logp, NULL, NULL, NULL);
  if (n) n->aux = k;
  return o;
}

int ts_ppo_update(ts_ppo *a, const float *obs, const int *act, const float *logp, const float *val, const float *rew,
                  const unsigned char *done, int n, float last_value, ts_rng *rng, ts_ppo_stats *stats) {
  if (n < 1) return ts_fail("ppo: empty rollout batch");
  const ts_ppo_cfg *cf = &a->cfg;
  int D = cf->obs_dim, M = cf->minibatch < n ? cf->minibatch : n;
  float *adv = malloc((size_t)n * sizeof(float)), *ret = malloc((size_t)n * sizeof(float));
  float *mo = malloc((size_t)M * D * sizeof(float)), *ma = malloc((size_t)M * sizeof(float));
  float *ml = malloc((size_t)M * sizeof(float)), *mr = malloc((size_t)M * sizeof(float));
  int *idx = malloc((size_t)n * sizeof(int)), *mact = malloc((size_t)M * sizeof(int));
  if (!adv || !ret || !mo || !ma || !ml || !mr || !idx || !mact) abort();
  ts_gae(rew, val, done, n, last_value, cf->gamma, cf->lam, adv, ret);
  double mu = 0, sd = 0;
  for (int i = 0; i < n; i++) mu += adv[i];
  mu /= n;
  for (int i = 0; i < n; i++) sd += (adv[i] - mu) * (adv[i] - mu);
  sd = sqrt(sd / n);
  for (int i = 0; i < n; i++) adv[i] = (float)((adv[i] - mu) / (sd + 1e-8));
  for (int i = 0; i < n; i++) idx[i] = i;
  ts_ppo_stats st = {0};
  int steps = 0, rc = 0;
  a->opt->lr = (float)cf->lr;
  for (int e = 0; e < cf->epochs && !rc; e++) {
    ts_rng_shuffle(rng, idx, n);
    for (int s0 = 0; s0 + M <= n; s0 += M) { /* whole minibatches; the remainder waits for the next shuffle */
      for (int j = 0; j < M; j++) {
        int i = idx[s0 + j];
        memcpy(mo + (size_t)j * D, obs + (size_t)i * D, (size_t)D * sizeof(float));
        mact[j] = act[i];
        ma[j] = adv[i];
        ml[j] = logp[i];
        mr[j] = ret[i];
      }
      ts_ctx_reset(a->ctx);
      ts_zero_grad(a->params.t, a->params.n);
      ts_tensor *x = norm_input(a, mo, M);
      ts_tensor *logits = mlp(a->ctx, x, a->aw, a->ab, cf->layers);
      ts_tensor *lp = ts_categorical_logprob(a->ctx, logits, mact);
      ts_tensor *pg = ts_ppo_clip_loss(a->ctx, lp, ml, ma, (float)cf->clip);
      ts_tensor *v = ts_reshape(a->ctx, mlp(a->ctx, x, a->cw, a->cb, cf->layers), 1, &M);
      ts_tensor *vl = ts_mse(a->ctx, v, ts_wrap(a->ctx, mr, 1, &M));
      ts_tensor *ent = ts_mean_all(a->ctx, ts_categorical_entropy(a->ctx, logits));
      ts_tensor *loss = ts_add(a->ctx, ts_add(a->ctx, pg, ts_scale(a->ctx, vl, (float)cf->vf_coef)),
                               ts_scale(a->ctx, ent, (float)-cf->ent_coef));
      if (!isfinite(loss->data[0])) {
        rc = ts_fail("ppo: the loss is not finite (%g)", loss->data[0]);
        break;
      }
      ts_backward(a->ctx, loss);
      float gn = ts_clip_grad_norm(a->params.t, a->params.n, (float)cf->max_grad_norm);
      ts_adamw_step(a->opt);
      double kl = 0, cf_n = 0;
      for (int j = 0; j < M; j++) {
        double d = (double)ml[j] - lp->data[j], r = exp(-d);
        kl += (r - 1) + d; /* the low-variance estimator of KL(old || new) */
        cf_n += fabs(r - 1) > cf->clip;
      }
      st.pg_loss += pg->data[0];
      st.v_loss += vl->data[0];
      st.entropy += ent->data[0];
      st.approx_kl += kl / M;
      st.clip_frac += cf_n / M;
      st.grad_norm += gn;
      steps++;
    }
  }
  if (steps) {
    st.pg_loss /= steps, st.v_loss /= steps, st.entropy /= steps;
    st.approx_kl /= steps, st.clip_frac /= steps, st.grad_norm /= steps;
  }
  if (stats) *stats = st;
  ts_ppo_norm_update(a, obs, n);
  free(adv);
  free(ret);
  free(mo);
  free(ma);
  free(ml);
  free(mr);
  free(idx);
  free(mact);
  return rc;
}
