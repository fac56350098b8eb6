#include "transformer_plan.h"
#include "core/kernels.h"
#include "core/pool.h"
#include "core/rng.h"
#include "core/timer.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOK_CHUNK 32   /* memory tokens encoded per GEMM while the timestep table is built */
#define MAX_THREADS 16 /* ts_pool's limit: one attention score row per pool thread */
#define LN_EPS 1e-5f
#define SPIN_US 50     /* pool workers spin this long between jobs, then sleep: a forward's jobs
                        * come microseconds apart, and a longer spin takes CPU from the caller when
                        * the machine is loaded */

/* A Linear packed for ts_gemm_rows: W (M x K) and bias (M). */
typedef struct { ts_packed w; float *b; } plin;

typedef struct {
  plin qkv;        /* self_attn.in_proj (3E, E): rows q | k | v */
  plin so;         /* self_attn.out_proj (E, E) */
  plin cq;         /* multihead_attn.in_proj rows 0 .. E-1, the query (E, E) */
  plin ckv;        /* multihead_attn.in_proj rows E .. 3E-1, key | value (2E, E): memory tokens only */
  plin co;         /* multihead_attn.out_proj (E, E) */
  plin l1, l2;     /* linear1 (4E, E), linear2 (E, 4E) */
  float *ln[3][2]; /* norm1, norm2, norm3: weight, bias (E) */
} player;

/* tf_activations: every buffer a forward touches (the engine's ActivationTensors), sized
 * together by size_acts for batches up to B, with N = B T trunk rows and R = max(B Tc,
 * TOK_CHUNK) memory-token rows (Tc = 1 + n_obs_steps). Shapes are row-major: (B, T, E) is N
 * rows of E floats, row b T + i for action token i of item b. */
typedef struct {
  float *h;     /* (B, T, E) the residual stream */
  float *ln;    /* (B, T, E) LayerNorm of h: the next GEMM's input */
  float *qkv;   /* (B, T, 3E) self-attention q | k | v; the cross-attention q reuses columns 0 .. E-1 */
  float *att;   /* (B, T, E) attention output, heads side by side: out_proj's input */
  float *proj;  /* (B, T, E) out_proj or linear2 output, before its residual add */
  float *ff;    /* (B, T, 4E) GELU(linear1(ln)) */
  float *tok;   /* (R, E) memory-token inputs: sinusoid(t) or cond_obs_emb(obs step), + cond_pos_emb */
  float *tokh;  /* (R, 4E) Mish(encoder.0(tok)) */
  float *mem;   /* (R, E) memory rows encoder.2(tokh) of this call's tokens (the table keeps its own) */
  float *kv;    /* (B, L, Tc, 2E) cross-attention K | V for item b, layer l, memory token s: s = 0 the
                   time token (copied from the table or computed), s >= 1 the observation steps (kept
                   across calls: the observation cache) */
  float *cond;  /* (B, No Dc) the cond row each item's observation K | V were computed from */
  unsigned char *valid; /* (B) 1 when the item's cond / observation K | V hold a computed pair */
  float *score; /* (MAX_THREADS, max(T, Tc)) attention scores, one row per pool thread */
  const float **rin; /* (max(N, R)) GEMM input rows */
  float **rout;      /* (max(N, R)) GEMM output rows */
  float **mdst;      /* (R) memory-token destinations: the memory row */
  float **kdst;      /* (R) memory-token destinations: the layer-0 K | V row */
} tf_activations;

struct ts_transformer_plan {
  ts_transformer_cfg cfg;
  int E, H, Dh, T, Tc, No, Dc, Din, L, n_steps, maxB, R;
  long allocs;
  float scale;          /* 1 / sqrt(head dim) */
  plin in_emb, obs_emb, enc0, enc2, head;
  player *layer;        /* n_layer */
  float *pos_emb;       /* (T, E) */
  float *cond_pos;      /* (Tc, E) */
  float *lnf[2];        /* ln_f weight, bias (E) */
  float *freq;          /* (E/2) sinusoid frequencies, as ts_sinusoidal computes them */
  float *table;         /* (n_steps, (1 + 2L) E): per t the time token's memory row, then K | V per layer */
  ts_pool *pool;
  tf_activations a;
};

static float *dup(const float *x, size_t n) {
  float *y = malloc((n ? n : 1) * sizeof(float));
  if (!y) abort();
  memcpy(y, x, n * sizeof(float));
  return y;
}

static plin make_lin(const float *W, const float *b, int M, int K) {
  plin l;
  ts_pack(&l.w, W, M, K);
  l.b = dup(b, (size_t)M);
  return l;
}

static plin from_wb(const ts_tf_wb *wb) {
  return make_lin(wb->w->data, wb->b->data, wb->w->shape[0], wb->w->shape[1]);
}

static void free_lin(plin *l) {
  ts_packed_free(&l->w);
  free(l->b);
}

static double lin_bytes(const plin *l) { return (double)l->w.panels * l->w.K * TS_MR * sizeof(float); }

/* ---------- threaded primitives ---------- */

enum { EPI_NONE, EPI_MISH, EPI_GELU };

typedef struct {
  const ts_packed *w;
  const float *const *in;
  float *const *out;
  int N, per; /* rows; panels per chunk */
  const float *bias;
  int epi;
} gjob;

/* Panels [p0, p1) for every row, then the activation over the columns those panels wrote. */
static void gjob_panels(const gjob *j, int p0, int p1) {
  ts_gemm_rows(j->w, j->in, j->out, j->N, j->bias, p0, p1);
  if (j->epi == EPI_NONE) return;
  int c0 = p0 * TS_MR, c1 = p1 * TS_MR < j->w->M ? p1 * TS_MR : j->w->M;
  for (int n = 0; n < j->N; n++) {
    if (j->epi == EPI_MISH) ts_vmish(j->out[n] + c0, c1 - c0);
    else ts_vgelu(j->out[n] + c0, c1 - c0);
  }
}

static void gjob_chunk(void *v, int c, int tid) {
  const gjob *j = v;
  (void)tid;
  int p0 = c * j->per, p1 = p0 + j->per < j->w->panels ? p0 + j->per : j->w->panels;
  gjob_panels(j, p0, p1);
}

/* Chunks of work handed to whichever pool thread is free (ts_pool_for): about `per_thread`
 * chunks per thread, so a thread the OS has descheduled holds up little. */
static int chunk_size(const ts_transformer_plan *p, int units, int per_thread) {
  int want = ts_pool_size(p->pool) * per_thread, per = (units + want - 1) / want;
  return per > 0 ? per : 1;
}

/* out rows rout[n] = act(W rin[n] + b) for n < N. */
static void gemm(ts_transformer_plan *p, const plin *l, int N, int epi) {
  if (N <= 0) return;
  gjob j = {&l->w, p->a.rin, p->a.rout, N, l->w.panels, l->b, epi};
  /* Below ~16k multiply-adds a second thread costs more than it saves (as the U-Net engine). */
  if (ts_pool_size(p->pool) > 1 && l->w.panels > 1 && (int64_t)N * l->w.K * l->w.panels * TS_MR > 16384) {
    j.per = chunk_size(p, l->w.panels, 4);
    ts_pool_for(p->pool, (l->w.panels + j.per - 1) / j.per, gjob_chunk, &j);
  } else {
    gjob_panels(&j, 0, l->w.panels);
  }
}

/* h += add (row n of add is add + (n % period) E; none when add is NULL), y = LayerNorm(h);
 * rows [c per, (c + 1) per) of N. */
typedef struct { float *h; const float *add; int period; const float *const *g; float *y; int N, E, per; } lnjob;

static void ln_chunk(void *v, int c, int tid) {
  const lnjob *j = v;
  (void)tid;
  int r1 = (c + 1) * j->per < j->N ? (c + 1) * j->per : j->N;
  for (int r = c * j->per; r < r1; r++)
    ts_add_layer_norm_row(j->h + (size_t)r * j->E, j->add ? j->add + (size_t)(r % j->period) * j->E : NULL, j->g[0],
                          j->g[1], LN_EPS, j->y + (size_t)r * j->E, j->E);
}

static void add_ln(ts_transformer_plan *p, int N, const float *add, int period, float *const *g) {
  lnjob j = {p->a.h, add, period, (const float *const *)g, p->a.ln, N, p->E, N};
  if (ts_pool_size(p->pool) > 1 && (int64_t)N * p->E >= 16384) {
    j.per = chunk_size(p, N, 2);
    ts_pool_for(p->pool, (N + j.per - 1) / j.per, ln_chunk, &j);
  } else {
    ln_chunk(&j, 0, 0);
  }
}

/* Attention of one (item, head) pair: self (queries, keys and values in qkv, the causal mask
 * as key counts) or cross (queries in qkv's first E columns, keys and values in kv for layer
 * l); thread tid's score row as scratch. */
typedef struct { ts_transformer_plan *p; int cross, l; } ajob;

static void attn_pair(void *v, int bh, int tid) {
  const ajob *j = v;
  const ts_transformer_plan *p = j->p;
  const tf_activations *a = &p->a;
  int E = p->E, Dh = p->Dh, T = p->T, Tc = p->Tc, causal = p->cfg.causal_attn;
  int b = bh / p->H, hd = (bh % p->H) * Dh;
  float *s = a->score + (size_t)tid * (T > Tc ? T : Tc);
  const float *k;
  int ks;
  if (j->cross) {
    k = a->kv + ((size_t)b * p->L + j->l) * Tc * 2 * E + hd;
    ks = 2 * E;
  } else {
    k = a->qkv + (size_t)b * T * 3 * E + E + hd;
    ks = 3 * E;
  }
  for (int r = 0; r < T; r++) {
    int nk = j->cross ? (causal && r + 2 < Tc ? r + 2 : Tc) : (causal ? r + 1 : T);
    size_t row = (size_t)b * T + r;
    ts_attend_row(a->qkv + row * 3 * E + hd, k, k + E, ks, nk, Dh, p->scale, s, a->att + row * E + hd);
  }
}

static void attention(ts_transformer_plan *p, int B, int cross, int l) {
  ajob j = {p, cross, l};
  int pairs = B * p->H;
  int64_t work = (int64_t)B * p->T * (cross ? p->Tc : p->T) * p->E;
  if (ts_pool_size(p->pool) > 1 && pairs > 1 && work >= 32768) ts_pool_for(p->pool, pairs, attn_pair, &j);
  else
    for (int bh = 0; bh < pairs; bh++) attn_pair(&j, bh, 0);
}

/* ---------- condition memory ---------- */

/* The time token's input: sinusoid(t) + cond_pos_emb[0] (as ts_sinusoidal, t as a float). */
static void time_token(const ts_transformer_plan *p, int t, float *out) {
  int half = p->E / 2;
  for (int k = 0; k < half; k++) {
    out[k] = sinf((float)t * p->freq[k]) + p->cond_pos[k];
    out[half + k] = cosf((float)t * p->freq[k]) + p->cond_pos[half + k];
  }
  for (int k = 2 * half; k < p->E; k++) out[k] = p->cond_pos[k];
}

/* Memory tokens tok rows 0 .. n-1 -> memory rows mdst[i] (encoder MLP) -> K | V rows of layer
 * l at kdst[i] + l kvstride. */
static void encode(ts_transformer_plan *p, int n, size_t kvstride) {
  tf_activations *a = &p->a;
  int E = p->E;
  for (int i = 0; i < n; i++) {
    a->rin[i] = a->tok + (size_t)i * E;
    a->rout[i] = a->tokh + (size_t)i * 4 * E;
  }
  gemm(p, &p->enc0, n, EPI_MISH);
  for (int i = 0; i < n; i++) {
    a->rin[i] = a->tokh + (size_t)i * 4 * E;
    a->rout[i] = a->mdst[i];
  }
  gemm(p, &p->enc2, n, EPI_NONE);
  for (int l = 0; l < p->L; l++) {
    for (int i = 0; i < n; i++) {
      a->rin[i] = a->mdst[i];
      a->rout[i] = a->kdst[i] + (size_t)l * kvstride;
    }
    gemm(p, &p->layer[l].ckv, n, EPI_NONE);
  }
}

/* Fill kv for this call: observation tokens of items whose cond changed, time tokens from the
 * table or computed. */
static void memory(ts_transformer_plan *p, const int *t, const float *cond, int B) {
  tf_activations *a = &p->a;
  int E = p->E, L = p->L, Tc = p->Tc, No = p->No, Dc = p->Dc, n = 0;
  size_t item = (size_t)L * Tc * 2 * E, od = (size_t)No * Dc; /* kv floats per item, cond floats per item */
  for (int b = 0; b < B && od > 0; b++) {
    float *cb = a->cond + b * od;
    if (a->valid[b] && !memcmp(cb, cond + b * od, od * sizeof(float))) continue;
    memcpy(cb, cond + b * od, od * sizeof(float));
    a->valid[b] = 1;
    for (int s = 0; s < No; s++, n++) {
      a->rin[n] = cb + (size_t)s * Dc;
      a->rout[n] = a->tok + (size_t)n * E;
      a->mdst[n] = a->mem + (size_t)n * E;
      a->kdst[n] = a->kv + b * item + (size_t)(1 + s) * 2 * E;
    }
  }
  gemm(p, &p->obs_emb, n, EPI_NONE);
  for (int i = 0; i < n; i++) { /* each changed item contributed its No steps in order */
    float *r = a->tok + (size_t)i * E;
    const float *pe = p->cond_pos + (size_t)(1 + i % No) * E;
    for (int k = 0; k < E; k++) r[k] += pe[k];
  }
  size_t S = (size_t)(1 + 2 * L) * E;
  for (int b = 0; b < B; b++) {
    float *kb = a->kv + b * item;
    if (t[b] >= 0 && t[b] < p->n_steps) {
      for (int l = 0; l < L; l++)
        memcpy(kb + (size_t)l * Tc * 2 * E, p->table + t[b] * S + E + (size_t)l * 2 * E, 2 * (size_t)E * sizeof(float));
    } else {
      time_token(p, t[b], a->tok + (size_t)n * E);
      a->mdst[n] = a->mem + (size_t)n * E;
      a->kdst[n++] = kb;
    }
  }
  encode(p, n, (size_t)Tc * 2 * E);
}

/* ---------- buffers ---------- */

static void free_acts(tf_activations *a) {
  float *f[] = {a->h, a->ln, a->qkv, a->att, a->proj, a->ff, a->tok, a->tokh, a->mem, a->kv, a->cond, a->score};
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) free(f[i]);
  free(a->valid);
  free(a->rin);
  free(a->rout);
  free(a->mdst);
  free(a->kdst);
  memset(a, 0, sizeof *a);
}

static float *fbuf(size_t n) {
  float *x = calloc(n ? n : 1, sizeof(float));
  if (!x) abort();
  return x;
}

/* The one place that sizes tf_activations (see its comment for the shapes). */
static void size_acts(ts_transformer_plan *p, int B) {
  tf_activations *a = &p->a;
  free_acts(a);
  size_t E = (size_t)p->E, N = (size_t)B * p->T, R = (size_t)B * p->Tc > TOK_CHUNK ? (size_t)B * p->Tc : TOK_CHUNK;
  size_t rows = N > R ? N : R, maxk = (size_t)(p->T > p->Tc ? p->T : p->Tc);
  a->h = fbuf(N * E);
  a->ln = fbuf(N * E);
  a->qkv = fbuf(N * 3 * E);
  a->att = fbuf(N * E);
  a->proj = fbuf(N * E);
  a->ff = fbuf(N * 4 * E);
  a->tok = fbuf(R * E);
  a->tokh = fbuf(R * 4 * E);
  a->mem = fbuf(R * E);
  a->kv = fbuf((size_t)B * p->L * p->Tc * 2 * E);
  a->cond = fbuf((size_t)B * p->No * p->Dc);
  a->score = fbuf(MAX_THREADS * maxk);
  a->valid = calloc((size_t)B, 1);
  a->rin = calloc(rows, sizeof *a->rin);
  a->rout = calloc(rows, sizeof *a->rout);
  a->mdst = calloc(R, sizeof *a->mdst);
  a->kdst = calloc(R, sizeof *a->kdst);
  if (!a->valid || !a->rin || !a->rout || !a->mdst || !a->kdst) abort();
  p->R = (int)R;
}

void ts_transformer_plan_reserve(ts_transformer_plan *p, int B) {
  if (B <= p->maxB) return;
  size_acts(p, B);
  p->maxB = B;
  p->allocs++;
}

/* ---------- construction ---------- */

ts_transformer_plan *ts_transformer_plan_new(const ts_transformer *m, int n_steps, int threads) {
  ts_transformer_plan *p = calloc(1, sizeof *p);
  if (!p) abort();
  const ts_transformer_cfg *c = &m->cfg;
  p->cfg = *c;
  p->E = c->n_emb;
  p->H = c->n_head;
  p->Dh = c->n_emb / c->n_head;
  p->T = c->horizon;
  p->No = c->n_obs_steps;
  p->Tc = 1 + c->n_obs_steps;
  p->Dc = c->cond_dim;
  p->Din = c->input_dim;
  p->L = c->n_layer;
  p->scale = 1.0f / sqrtf((float)p->Dh);
  int E = p->E;
  p->in_emb = from_wb(&m->input_emb);
  p->obs_emb = from_wb(&m->cond_obs_emb);
  p->enc0 = from_wb(&m->enc0);
  p->enc2 = from_wb(&m->enc2);
  p->head = from_wb(&m->head);
  p->layer = calloc((size_t)(p->L ? p->L : 1), sizeof *p->layer);
  if (!p->layer) abort();
  for (int l = 0; l < p->L; l++) {
    const ts_tf_layer *s = &m->layers[l];
    player *d = &p->layer[l];
    d->qkv = from_wb(&s->self_attn.in_proj);
    d->so = from_wb(&s->self_attn.out_proj);
    const float *W = s->cross_attn.in_proj.w->data, *b = s->cross_attn.in_proj.b->data;
    d->cq = make_lin(W, b, E, E);
    d->ckv = make_lin(W + (size_t)E * E, b + E, 2 * E, E);
    d->co = from_wb(&s->cross_attn.out_proj);
    d->l1 = from_wb(&s->linear1);
    d->l2 = from_wb(&s->linear2);
    const ts_tf_wb *nm[3] = {&s->norm1, &s->norm2, &s->norm3};
    for (int k = 0; k < 3; k++) {
      d->ln[k][0] = dup(nm[k]->w->data, (size_t)E);
      d->ln[k][1] = dup(nm[k]->b->data, (size_t)E);
    }
  }
  p->pos_emb = dup(m->pos_emb->data, (size_t)p->T * E);
  p->cond_pos = dup(m->cond_pos_emb->data, (size_t)p->Tc * E);
  p->lnf[0] = dup(m->ln_f.w->data, (size_t)E);
  p->lnf[1] = dup(m->ln_f.b->data, (size_t)E);
  int half = E / 2;
  p->freq = fbuf((size_t)(half ? half : 1));
  for (int k = 0; k < half; k++) p->freq[k] = expf(-(float)k * logf(10000.0f) / (float)(half - 1));
  p->pool = ts_pool_new(threads < MAX_THREADS ? threads : MAX_THREADS, SPIN_US);
  ts_transformer_plan_reserve(p, 1);
  /* The timestep table, TOK_CHUNK timesteps per GEMM (each row is computed as it would be alone). */
  p->n_steps = n_steps > 0 ? n_steps : 0;
  size_t S = (size_t)(1 + 2 * p->L) * E;
  p->table = fbuf((size_t)p->n_steps * S);
  for (int t0 = 0; t0 < p->n_steps; t0 += TOK_CHUNK) {
    int n = p->n_steps - t0 < TOK_CHUNK ? p->n_steps - t0 : TOK_CHUNK;
    for (int i = 0; i < n; i++) {
      time_token(p, t0 + i, p->a.tok + (size_t)i * E);
      p->a.mdst[i] = p->table + (size_t)(t0 + i) * S;
      p->a.kdst[i] = p->a.mdst[i] + E;
    }
    encode(p, n, (size_t)2 * E);
  }
  return p;
}

void ts_transformer_plan_free(ts_transformer_plan *p) {
  if (!p) return;
  free_acts(&p->a);
  plin *top[] = {&p->in_emb, &p->obs_emb, &p->enc0, &p->enc2, &p->head};
  for (int i = 0; i < 5; i++) free_lin(top[i]);
  for (int l = 0; l < p->L; l++) {
    player *d = &p->layer[l];
    plin *ls[] = {&d->qkv, &d->so, &d->cq, &d->ckv, &d->co, &d->l1, &d->l2};
    for (int i = 0; i < 7; i++) free_lin(ls[i]);
    for (int k = 0; k < 3; k++) {
      free(d->ln[k][0]);
      free(d->ln[k][1]);
    }
  }
  free(p->layer);
  free(p->pos_emb);
  free(p->cond_pos);
  free(p->lnf[0]);
  free(p->lnf[1]);
  free(p->freq);
  free(p->table);
  ts_pool_free(p->pool);
  free(p);
}

int ts_transformer_plan_threads(const ts_transformer_plan *p) { return ts_pool_size(p->pool); }

void ts_transformer_plan_set_threads(ts_transformer_plan *p, int n) {
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  if (n == ts_pool_size(p->pool)) return;
  ts_pool_free(p->pool);
  p->pool = ts_pool_new(n, SPIN_US);
}

long ts_transformer_plan_allocs(const ts_transformer_plan *p) { return p->allocs; }

double ts_transformer_plan_bytes_cached(const ts_transformer_plan *p) {
  double s = lin_bytes(&p->in_emb) + lin_bytes(&p->head);
  for (int l = 0; l < p->L; l++) {
    const player *d = &p->layer[l];
    s += lin_bytes(&d->qkv) + lin_bytes(&d->so) + lin_bytes(&d->cq) + lin_bytes(&d->co) + lin_bytes(&d->l1) +
         lin_bytes(&d->l2);
  }
  return s;
}

double ts_transformer_plan_bytes(const ts_transformer_plan *p) {
  double s = ts_transformer_plan_bytes_cached(p) + lin_bytes(&p->obs_emb) + lin_bytes(&p->enc0) + lin_bytes(&p->enc2);
  for (int l = 0; l < p->L; l++) s += lin_bytes(&p->layer[l].ckv);
  return s;
}

/* ---------- forward ---------- */

void ts_transformer_plan_forward(ts_transformer_plan *p, const float *x, const int *t, const float *cond, int B,
                                 float *eps) {
  if (B < 1) return;
  ts_transformer_plan_reserve(p, B);
  tf_activations *a = &p->a;
  const int E = p->E, N = B * p->T, L = p->L;
  memory(p, t, cond, B);
  for (int n = 0; n < N; n++) {
    a->rin[n] = x + (size_t)n * p->Din;
    a->rout[n] = a->h + (size_t)n * E;
  }
  gemm(p, &p->in_emb, N, EPI_NONE);
  add_ln(p, N, p->pos_emb, p->T, L ? p->layer[0].ln[0] : p->lnf);
  for (int l = 0; l < L; l++) {
    const player *d = &p->layer[l];
    /* x += SelfAttn(norm1(x)) */
    for (int n = 0; n < N; n++) {
      a->rin[n] = a->ln + (size_t)n * E;
      a->rout[n] = a->qkv + (size_t)n * 3 * E;
    }
    gemm(p, &d->qkv, N, EPI_NONE);
    attention(p, B, 0, l);
    for (int n = 0; n < N; n++) {
      a->rin[n] = a->att + (size_t)n * E;
      a->rout[n] = a->proj + (size_t)n * E;
    }
    gemm(p, &d->so, N, EPI_NONE);
    add_ln(p, N, a->proj, N, d->ln[1]);
    /* x += CrossAttn(norm2(x), memory) */
    for (int n = 0; n < N; n++) {
      a->rin[n] = a->ln + (size_t)n * E;
      a->rout[n] = a->qkv + (size_t)n * 3 * E;
    }
    gemm(p, &d->cq, N, EPI_NONE);
    attention(p, B, 1, l);
    for (int n = 0; n < N; n++) {
      a->rin[n] = a->att + (size_t)n * E;
      a->rout[n] = a->proj + (size_t)n * E;
    }
    gemm(p, &d->co, N, EPI_NONE);
    add_ln(p, N, a->proj, N, d->ln[2]);
    /* x += linear2(GELU(linear1(norm3(x)))), then the next layer's norm1 (or ln_f) */
    for (int n = 0; n < N; n++) {
      a->rin[n] = a->ln + (size_t)n * E;
      a->rout[n] = a->ff + (size_t)n * 4 * E;
    }
    gemm(p, &d->l1, N, EPI_GELU);
    for (int n = 0; n < N; n++) {
      a->rin[n] = a->ff + (size_t)n * 4 * E;
      a->rout[n] = a->proj + (size_t)n * E;
    }
    gemm(p, &d->l2, N, EPI_NONE);
    add_ln(p, N, a->proj, N, l + 1 < L ? p->layer[l + 1].ln[0] : p->lnf);
  }
  for (int n = 0; n < N; n++) {
    a->rin[n] = a->ln + (size_t)n * E;
    a->rout[n] = eps + (size_t)n * p->Din;
  }
  gemm(p, &p->head, N, EPI_NONE);
}

/* ---------- timing ---------- */

double ts_transformer_plan_bench(ts_transformer_plan *p, int B, int reps, int new_cond, double *min_ms) {
  if (B < 1) B = 1;
  if (reps < 1) reps = 1;
  size_t nx = (size_t)B * p->T * p->Din, nc = (size_t)B * p->No * p->Dc;
  float *x = fbuf(nx), *cond = fbuf(nc), *eps = fbuf(nx);
  int *t = calloc((size_t)B, sizeof *t);
  double *ms = malloc((size_t)reps * sizeof *ms);
  if (!t || !ms) abort();
  ts_rng rng;
  ts_rng_init(&rng, 1);
  ts_rng_fill_normal(&rng, x, (int64_t)nx);
  ts_rng_fill_normal(&rng, cond, (int64_t)nc);
  int steps = p->n_steps > 0 ? p->n_steps : 100;
  ts_transformer_plan_reserve(p, B);
  for (int r = -2; r < reps; r++) {
    for (int b = 0; b < B; b++) t[b] = (int)ts_rng_below(&rng, (uint32_t)steps);
    if (new_cond) ts_rng_fill_normal(&rng, cond, (int64_t)nc);
    double t0 = ts_now();
    ts_transformer_plan_forward(p, x, t, cond, B, eps);
    if (r >= 0) ms[r] = 1e3 * (ts_now() - t0);
  }
  double lo = ms[0];
  for (int r = 1; r < reps; r++) lo = ms[r] < lo ? ms[r] : lo;
  if (min_ms) *min_ms = lo;
  double med = ts_median(ms, reps);
  free(x);
  free(cond);
  free(eps);
  free(t);
  free(ms);
  return med;
}
