#include "unet_plan.h"
#include "core/kernels.h"
#include "core/pool.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define L_MAX TS_UNET_MAXLEVELS
#define TS_PLAN_MAXC 4096 /* widest GroupNorm the plan takes */

/* A convolution as a GEMM over packed weights; input windows are read as rows of k * cin
 * floats from a channels-last, time-padded activation (kd order (tap, channel)). */
typedef struct { ts_packed w; float *b; int cin, cout, k, stride, pad; } pconv;
typedef struct { pconv conv; float *gamma, *beta; } pblock;
typedef struct { pblock blk[2]; pconv res; int has_res, cout, film; } pcrb;
/* B items of (T + 2 pad) rows of C floats; pad rows stay zero. */
typedef struct { float *d; int T, C, pad; } act;

struct ts_unet_plan {
  ts_unet_cfg cfg;
  int H, L, pad, n_steps, F, E, maxB;
  long allocs;
  pcrb down[L_MAX][2], mid[2], up[L_MAX][2];
  pconv downs[L_MAX], ups[L_MAX], final1; /* ups: ConvTranspose as cin -> (tap, cout) columns */
  pblock final0;
  ts_packed s1, s2, fs, fg; /* step MLP; FiLM linears' step half (F x E) and obs half (F x Dg) */
  float *s1b, *s2b, *fb, *table, *tmp; /* tmp: 4E + E + F floats for the step path */
  ts_pool *pool;
  act xin[L_MAX], a[L_MAX], hb[L_MAX], skip[L_MAX], mida, midb;
  act cat[L_MAX], ua[L_MAX], ub[L_MAX], uhb[L_MAX], uo[L_MAX], fin;
  float *z, *r, *film, *mcond;
  const float **rin;
  float **rout;
};

static float *dup(const float *x, int64_t n) {
  float *y = malloc((size_t)n * sizeof(float));
  if (!y) abort();
  memcpy(y, x, (size_t)n * sizeof(float));
  return y;
}

/* Conv1d weight (cout, cin, k) -> rows of (tap, channel). */
static pconv make_conv(const ts_wb *wb, int stride, int pad) {
  pconv c;
  c.cout = wb->w->shape[0];
  c.cin = wb->w->shape[1];
  c.k = wb->w->shape[2];
  c.stride = stride;
  c.pad = pad;
  int K = c.k * c.cin;
  float *W = malloc((size_t)c.cout * K * sizeof(float));
  if (!W) abort();
  for (int o = 0; o < c.cout; o++)
    for (int i = 0; i < c.cin; i++)
      for (int j = 0; j < c.k; j++) W[(size_t)o * K + j * c.cin + i] = wb->w->data[((size_t)o * c.cin + i) * c.k + j];
  ts_pack(&c.w, W, c.cout, K);
  free(W);
  c.b = dup(wb->b->data, c.cout);
  return c;
}

/* ConvTranspose1d weight (cin, cout, k) -> a GEMM from cin to k * cout columns (tap, channel). */
static pconv make_convt(const ts_wb *wb) {
  pconv c;
  c.cin = wb->w->shape[0];
  c.cout = wb->w->shape[1];
  c.k = wb->w->shape[2];
  c.stride = 2;
  c.pad = 1;
  int M = c.k * c.cout;
  float *W = malloc((size_t)M * c.cin * sizeof(float));
  if (!W) abort();
  for (int i = 0; i < c.cin; i++)
    for (int o = 0; o < c.cout; o++)
      for (int j = 0; j < c.k; j++) W[((size_t)j * c.cout + o) * c.cin + i] = wb->w->data[((size_t)i * c.cout + o) * c.k + j];
  ts_pack(&c.w, W, M, c.cin);
  free(W);
  c.b = dup(wb->b->data, c.cout);
  return c;
}

static void free_conv(pconv *c) {
  ts_packed_free(&c->w);
  free(c->b);
}

static pblock make_block(const ts_conv_block *b) {
  pblock p;
  p.conv = make_conv(&b->conv, 1, b->conv.w->shape[2] / 2);
  p.gamma = dup(b->norm.w->data, b->norm.w->n);
  p.beta = dup(b->norm.b->data, b->norm.b->n);
  return p;
}

static void free_block(pblock *b) {
  free_conv(&b->conv);
  free(b->gamma);
  free(b->beta);
}

static pcrb make_crb(const ts_crb *r, int *film) {
  pcrb p;
  memset(&p, 0, sizeof p);
  for (int i = 0; i < 2; i++) p.blk[i] = make_block(&r->blk[i]);
  p.has_res = r->res.w != NULL;
  if (p.has_res) p.res = make_conv(&r->res, 1, 0);
  p.cout = r->cout;
  p.film = *film;
  *film += 2 * r->cout;
  return p;
}

static void free_crb(pcrb *p) {
  for (int i = 0; i < 2; i++) free_block(&p->blk[i]);
  if (p->has_res) free_conv(&p->res);
}

/* ---------- threaded primitives ---------- */

/* The GEMM's output panels in chunks of `per`, each claimed by whichever pool thread is free
 * (ts_pool_for: on a loaded machine the caller never waits for a worker that has not started).
 * Every output channel is computed the same way whatever the split. */
typedef struct { const ts_packed *w; const float *const *in; float *const *out; int N; const float *bias; int per; } gjob;

static void gjob_chunk(void *v, int c, int tid) {
  const gjob *j = v;
  (void)tid;
  int p0 = c * j->per, p1 = p0 + j->per < j->w->panels ? p0 + j->per : j->w->panels;
  ts_gemm_rows(j->w, j->in, j->out, j->N, j->bias, p0, p1);
}

static void gemm(ts_unet_plan *p, const ts_packed *w, int N, const float *bias) {
  gjob j = {w, p->rin, p->rout, N, bias, 1};
  /* Below ~16k multiply-adds a second thread costs more than it saves. */
  int T = ts_pool_size(p->pool);
  if (T > 1 && w->panels > 1 && (int64_t)N * w->K * w->panels * TS_MR > 16384) {
    j.per = (w->panels + 4 * T - 1) / (4 * T); /* about 4 chunks per thread */
    ts_pool_for(p->pool, (w->panels + j.per - 1) / j.per, gjob_chunk, &j);
  } else {
    ts_gemm_rows(w, p->rin, p->rout, N, bias, 0, w->panels);
  }
}

static inline float *row(const act *a, int b, int t) {
  return a->d + ((size_t)b * (a->T + 2 * a->pad) + a->pad + t) * a->C;
}

/* out rows (b, t) for t < Tout: the conv of x (windows start at t * stride - pad). */
static void conv(ts_unet_plan *p, const pconv *c, const act *x, int B, int Tout, const act *out, float *flat) {
  int n = 0;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < Tout; t++, n++) {
      p->rin[n] = row(x, b, t * c->stride - c->pad);
      p->rout[n] = out ? row(out, b, t) : flat + (size_t)n * c->cout;
    }
  gemm(p, &c->w, n, c->b);
}

/* dst(b, t) = Mish(GroupNorm(z(b, t))), then * scale + shift (FiLM) or + res(b, t). */
typedef struct {
  const float *z, *gamma, *beta, *film;
  int T, C, G, fstride, B;
  const act *dst, *res;
} gnjob;

/* Batch items [b0, b1). */
static void gn_items(const gnjob *j, int b0, int b1) {
  int C = j->C, T = j->T, cg = C / j->G;
  /* per-channel sums, then scale a and shift s per channel */
  float a[TS_PLAN_MAXC], s[TS_PLAN_MAXC], m[TS_PLAN_MAXC];
  for (int b = b0; b < b1; b++) {
    const float *zb = j->z + (size_t)b * T * C;
    ts_col_sums(zb, T, C, NULL, a);
    for (int g = 0; g < j->G; g++) { /* group means (double over the group's channels) */
      double sum = 0;
      for (int c = g * cg; c < (g + 1) * cg; c++) sum += a[c];
      for (int c = g * cg; c < (g + 1) * cg; c++) m[c] = (float)(sum / ((double)T * cg));
    }
    ts_col_sums(zb, T, C, m, s);
    for (int g = 0; g < j->G; g++) {
      double ss = 0;
      for (int c = g * cg; c < (g + 1) * cg; c++) ss += s[c];
      float rstd = (float)(1.0 / sqrt(ss / ((double)T * cg) + 1e-5));
      for (int c = g * cg; c < (g + 1) * cg; c++) {
        a[c] = rstd * j->gamma[c];
        s[c] = j->beta[c] - m[c] * a[c];
      }
    }
    const float *sc = j->film ? j->film + (size_t)b * j->fstride : NULL, *sh = sc ? sc + C : NULL;
    for (int t = 0; t < T; t++)
      ts_norm_mish_row(row(j->dst, b, t), zb + (size_t)t * C, a, s, sc, sh, j->res ? row(j->res, b, t) : NULL, C);
  }
}

static void gn_item(void *v, int b, int tid) {
  (void)tid;
  gn_items(v, b, b + 1);
}

static void gn_mish(ts_unet_plan *p, const float *z, int B, int T, const pblock *blk, const act *dst,
                    const float *film, const act *res) {
  gnjob j = {z, blk->gamma, blk->beta, film, T, blk->conv.cout, p->cfg.n_groups, p->F, B, dst, res};
  if (B > 1 && ts_pool_size(p->pool) > 1) ts_pool_for(p->pool, B, gn_item, &j); /* one item a chunk */
  else gn_items(&j, 0, B);
}

/* FiLM residual block: x -> out, with h as scratch for the first conv block's output. */
static void crb(ts_unet_plan *p, const pcrb *r, const act *x, const act *out, const act *h, int B, int T) {
  conv(p, &r->blk[0].conv, x, B, T, NULL, p->z);
  gn_mish(p, p->z, B, T, &r->blk[0], h, p->film + r->film, NULL);
  conv(p, &r->blk[1].conv, h, B, T, NULL, p->z);
  act res = *x;
  if (r->has_res) {
    conv(p, &r->res, x, B, T, NULL, p->r);
    res = (act){p->r, T, r->cout, 0};
  }
  gn_mish(p, p->z, B, T, &r->blk[1], out, NULL, &res);
}

/* ConvTranspose1d (stride 2, pad 1): a GEMM to (tap, channel) columns, then overlap-add. */
static void convt(ts_unet_plan *p, const pconv *c, const act *x, const act *out, int B, int T) {
  int M = c->k * c->cout;
  conv(p, &(pconv){c->w, NULL, c->cin, M, 1, 1, 0}, x, B, T, NULL, p->z);
  for (int b = 0; b < B; b++)
    for (int to = 0; to < 2 * T; to++) {
      float *d = row(out, b, to);
      memcpy(d, c->b, (size_t)c->cout * sizeof(float));
      for (int k = 0; k < c->k; k++) {
        int u = to + c->pad - k; /* to = 2 ti - pad + k */
        if (u < 0 || u % 2 || u / 2 >= T) continue;
        const float *zr = p->z + ((size_t)b * T + u / 2) * M + (size_t)k * c->cout;
        for (int o = 0; o < c->cout; o++) d[o] += zr[o];
      }
    }
}

/* The step half of every FiLM linear plus its bias, for timestep t: F floats. */
static void step_film(ts_unet_plan *p, float t, float *out) {
  int E = p->E, half = E / 2;
  float *emb = p->tmp, *hid = emb + E;
  for (int k = 0; k < half; k++) { /* as ts_sinusoidal */
    float f = expf(-(float)k * logf(10000.0f) / (float)(half - 1));
    emb[k] = sinf(t * f);
    emb[half + k] = cosf(t * f);
  }
  p->rin[0] = emb;
  p->rout[0] = hid;
  gemm(p, &p->s1, 1, p->s1b);
  ts_vmish(hid, 4 * E);
  p->rin[0] = hid;
  p->rout[0] = emb;
  gemm(p, &p->s2, 1, p->s2b);
  ts_vmish(emb, E); /* cond_encoder = Mish -> Linear */
  p->rin[0] = emb;
  p->rout[0] = out;
  gemm(p, &p->fs, 1, p->fb);
}

static void compute_film(ts_unet_plan *p, const int *t, const float *cond, int B) {
  int Dg = p->cfg.global_cond_dim, F = p->F;
  if (Dg > 0) {
    memcpy(p->mcond, cond, (size_t)B * Dg * sizeof(float));
    ts_vmish(p->mcond, B * Dg);
    for (int b = 0; b < B; b++) {
      p->rin[b] = p->mcond + (size_t)b * Dg;
      p->rout[b] = p->film + (size_t)b * F;
    }
    gemm(p, &p->fg, B, NULL);
  } else {
    memset(p->film, 0, (size_t)B * F * sizeof(float));
  }
  float *st = p->tmp + 5 * p->E;
  for (int b = 0; b < B; b++) {
    const float *s = st;
    if (t[b] >= 0 && t[b] < p->n_steps) s = p->table + (size_t)t[b] * F;
    else step_film(p, (float)t[b], st);
    float *f = p->film + (size_t)b * F;
    for (int i = 0; i < F; i++) f[i] += s[i];
  }
}

/* ---------- construction ---------- */

ts_unet_plan *ts_unet_plan_new(const ts_unet *u, int horizon, int n_steps, int threads) {
  ts_unet_plan *p = calloc(1, sizeof *p);
  if (!p) abort();
  const ts_unet_cfg *c = &u->cfg;
  p->cfg = *c;
  p->H = horizon;
  p->L = c->n_levels;
  p->E = c->step_embed_dim;
  p->pad = c->kernel_size / 2 > 1 ? c->kernel_size / 2 : 1;
  int L = p->L, F = 0, ns = 0;
  for (int l = 0; l < L; l++)
    if (c->down_dims[l] > TS_PLAN_MAXC) abort(); /* ts_config_validate refuses wider configs */
  const ts_crb *src[3 * L_MAX * 2]; /* the blocks in FiLM order, as make_crb numbers them */
#define CRB(dst, r) (src[ns++] = (r), (dst) = make_crb((r), &F))
  for (int l = 0; l < L; l++) {
    for (int i = 0; i < 2; i++) CRB(p->down[l][i], &u->down[l][i]);
    if (l < L - 1) p->downs[l] = make_conv(&u->downsample[l], 2, 1);
  }
  for (int i = 0; i < 2; i++) CRB(p->mid[i], &u->mid[i]);
  for (int j = 0; j < L - 1; j++) {
    for (int i = 0; i < 2; i++) CRB(p->up[j][i], &u->up[j][i]);
    p->ups[j] = make_convt(&u->upsample[j]);
  }
#undef CRB
  p->final0 = make_block(&u->final0);
  p->final1 = make_conv(&u->final1, 1, 0);
  p->F = F;
  /* Stack every block's FiLM linear (2 cout x (E + Dg)) and split it into step and obs halves. */
  int E = p->E, Dg = c->global_cond_dim, In = E + Dg;
  float *Ws = malloc((size_t)F * E * sizeof(float)), *Wg = malloc((size_t)F * (Dg ? Dg : 1) * sizeof(float));
  p->fb = malloc((size_t)F * sizeof(float));
  if (!Ws || !Wg || !p->fb) abort();
  for (int s = 0, off = 0; s < ns; s++) {
    const ts_wb *w = &src[s]->cond;
    for (int o = 0; o < 2 * src[s]->cout; o++, off++) {
      memcpy(Ws + (size_t)off * E, w->w->data + (size_t)o * In, (size_t)E * sizeof(float));
      if (Dg) memcpy(Wg + (size_t)off * Dg, w->w->data + (size_t)o * In + E, (size_t)Dg * sizeof(float));
      p->fb[off] = w->b->data[o];
    }
  }
  ts_pack(&p->fs, Ws, F, E);
  if (Dg) ts_pack(&p->fg, Wg, F, Dg);
  free(Ws);
  free(Wg);
  ts_pack(&p->s1, u->step1.w->data, 4 * E, E);
  ts_pack(&p->s2, u->step2.w->data, E, 4 * E);
  p->s1b = dup(u->step1.b->data, 4 * E);
  p->s2b = dup(u->step2.b->data, E);
  p->tmp = malloc((size_t)(5 * E + F) * sizeof(float));
  p->rin = malloc(sizeof *p->rin);
  p->rout = malloc(sizeof *p->rout);
  if (!p->tmp || !p->rin || !p->rout) abort();
  p->pool = ts_pool_new(threads, 200); /* workers spin 200 us between calls */
  p->n_steps = n_steps > 0 ? n_steps : 0;
  p->table = malloc((size_t)(p->n_steps ? p->n_steps : 1) * F * sizeof(float));
  if (!p->table) abort();
  for (int t = 0; t < p->n_steps; t++) step_film(p, (float)t, p->table + (size_t)t * F);
  return p;
}

static act mk(int B, int T, int C, int pad) {
  act a = {calloc((size_t)B * (T + 2 * pad) * C, sizeof(float)), T, C, pad};
  if (!a.d) abort();
  return a;
}

static void free_bufs(ts_unet_plan *p) {
  act *all[] = {&p->mida, &p->midb, &p->fin};
  for (int i = 0; i < 3; i++) free(all[i]->d);
  for (int l = 0; l < L_MAX; l++) {
    act *lv[] = {&p->xin[l], &p->a[l], &p->hb[l], &p->skip[l], &p->cat[l], &p->ua[l], &p->ub[l], &p->uhb[l], &p->uo[l]};
    for (int i = 0; i < 9; i++) free(lv[i]->d);
  }
  free(p->z);
  free(p->r);
  free(p->film);
  free(p->mcond);
}

void ts_unet_plan_reserve(ts_unet_plan *p, int B) {
  if (B <= p->maxB) return;
  free_bufs(p);
  const int *D = p->cfg.down_dims;
  int L = p->L, H = p->H, pd = p->pad, maxc = p->cfg.input_dim;
  for (int l = 0; l < L; l++) {
    int T = H >> l;
    maxc = D[l] > maxc ? D[l] : maxc;
    p->xin[l] = mk(B, T, l ? D[l - 1] : p->cfg.input_dim, pd);
    p->a[l] = mk(B, T, D[l], pd);
    p->hb[l] = mk(B, T, D[l], pd);
    p->skip[l] = mk(B, T, D[l], pd);
  }
  p->mida = mk(B, H >> (L - 1), D[L - 1], pd);
  p->midb = mk(B, H >> (L - 1), D[L - 1], pd);
  for (int j = 0; j < L - 1; j++) {
    int lv = L - 1 - j, T = H >> lv;
    p->cat[j] = mk(B, T, 2 * D[lv], pd);
    p->ua[j] = mk(B, T, D[lv - 1], pd);
    p->ub[j] = mk(B, T, D[lv - 1], pd);
    p->uhb[j] = mk(B, T, D[lv - 1], pd);
    p->uo[j] = mk(B, 2 * T, D[lv - 1], pd);
  }
  p->fin = mk(B, H, D[0], pd);
  size_t rows = (size_t)B * H;
  p->z = malloc(rows * 4 * maxc * sizeof(float));
  p->r = malloc(rows * maxc * sizeof(float));
  p->film = malloc((size_t)B * p->F * sizeof(float));
  p->mcond = malloc((size_t)B * (p->cfg.global_cond_dim + 1) * sizeof(float));
  p->rin = realloc(p->rin, rows * sizeof *p->rin);
  p->rout = realloc(p->rout, rows * sizeof *p->rout);
  if (!p->z || !p->r || !p->film || !p->mcond || !p->rin || !p->rout) abort();
  p->maxB = B;
  p->allocs++;
}

void ts_unet_plan_free(ts_unet_plan *p) {
  if (!p) return;
  free_bufs(p);
  for (int l = 0; l < p->L; l++) {
    for (int i = 0; i < 2; i++) free_crb(&p->down[l][i]);
    if (l < p->L - 1) {
      free_conv(&p->downs[l]);
      for (int i = 0; i < 2; i++) free_crb(&p->up[l][i]);
      free_conv(&p->ups[l]);
    }
  }
  for (int i = 0; i < 2; i++) free_crb(&p->mid[i]);
  free_block(&p->final0);
  free_conv(&p->final1);
  ts_packed *pk[] = {&p->s1, &p->s2, &p->fs, &p->fg};
  for (int i = 0; i < 4; i++) ts_packed_free(pk[i]);
  free(p->s1b);
  free(p->s2b);
  free(p->fb);
  free(p->table);
  free(p->tmp);
  free(p->rin);
  free(p->rout);
  ts_pool_free(p->pool);
  free(p);
}

int ts_unet_plan_threads(const ts_unet_plan *p) { return ts_pool_size(p->pool); }

void ts_unet_plan_set_threads(ts_unet_plan *p, int n) {
  if (n < 1) n = 1;
  if (n == ts_pool_size(p->pool)) return;
  ts_pool_free(p->pool);
  p->pool = ts_pool_new(n, 200);
}

long ts_unet_plan_allocs(const ts_unet_plan *p) { return p->allocs; }

/* ---------- forward ---------- */

void ts_unet_plan_forward(ts_unet_plan *p, const float *x, const int *t, const float *cond, int B, float *eps) {
  ts_unet_plan_reserve(p, B);
  int L = p->L, H = p->H, Din = p->cfg.input_dim;
  compute_film(p, t, cond, B);
  for (int b = 0; b < B; b++)
    for (int s = 0; s < H; s++) memcpy(row(&p->xin[0], b, s), x + ((size_t)b * H + s) * Din, (size_t)Din * sizeof(float));
  const act *h = &p->xin[0];
  for (int l = 0; l < L; l++) {
    int T = H >> l;
    crb(p, &p->down[l][0], h, &p->a[l], &p->hb[l], B, T);
    crb(p, &p->down[l][1], &p->a[l], &p->skip[l], &p->hb[l], B, T);
    h = &p->skip[l];
    if (l < L - 1) {
      conv(p, &p->downs[l], h, B, T / 2, &p->xin[l + 1], NULL);
      h = &p->xin[l + 1];
    }
  }
  int T = H >> (L - 1);
  crb(p, &p->mid[0], h, &p->mida, &p->hb[L - 1], B, T);
  crb(p, &p->mid[1], &p->mida, &p->midb, &p->hb[L - 1], B, T);
  h = &p->midb;
  for (int j = 0; j < L - 1; j++) {
    int lv = L - 1 - j, C1 = h->C, C2 = p->skip[lv].C;
    T = H >> lv;
    for (int b = 0; b < B; b++)
      for (int s = 0; s < T; s++) {
        float *d = row(&p->cat[j], b, s);
        memcpy(d, row(h, b, s), (size_t)C1 * sizeof(float));
        memcpy(d + C1, row(&p->skip[lv], b, s), (size_t)C2 * sizeof(float));
      }
    crb(p, &p->up[j][0], &p->cat[j], &p->ua[j], &p->uhb[j], B, T);
    crb(p, &p->up[j][1], &p->ua[j], &p->ub[j], &p->uhb[j], B, T);
    convt(p, &p->ups[j], &p->ub[j], &p->uo[j], B, T);
    h = &p->uo[j];
  }
  conv(p, &p->final0.conv, h, B, H, NULL, p->z);
  gn_mish(p, p->z, B, H, &p->final0, &p->fin, NULL, NULL);
  int n = 0;
  for (int b = 0; b < B; b++)
    for (int s = 0; s < H; s++, n++) {
      p->rin[n] = row(&p->fin, b, s);
      p->rout[n] = eps + (size_t)n * Din;
    }
  gemm(p, &p->final1.w, n, p->final1.b);
}
