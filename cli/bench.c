/* tsdp bench gemm: achieved GFLOP/s for the GEMM shapes the ConditionalUnet1D runs (im2col
 * convolutions and FiLM/step-encoder linears), through the tensor library's ts_matmul and
 * through cblas_sgemm directly on the same buffers, side by side. */
#include "cli.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/timer.h"
#include "core/ops.h"
#include "core/kernels.h"
#include "core/rng.h"
#include "infer/denoisers.h"
#include "infer/policy.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int M, N, K; const char *what; } shape;

/* Median seconds per call of fn over 5 repetitions of an adaptive inner loop. */
static double time_call(void (*fn)(void *), void *arg) {
  double per[5];
  int iters = 1;
  for (;;) { /* find an iteration count that takes >= 20 ms */
    double t0 = ts_now();
    for (int i = 0; i < iters; i++) fn(arg);
    if (ts_now() - t0 > 0.02 || iters > (1 << 20)) break;
    iters *= 2;
  }
  for (int r = 0; r < 5; r++) {
    double t0 = ts_now();
    for (int i = 0; i < iters; i++) fn(arg);
    per[r] = (ts_now() - t0) / iters;
  }
  return ts_median(per, 5);
}

typedef struct { ts_ctx *c; ts_tensor *a, *b; float *C; shape s; } job;

static void run_lib(void *p) {
  job *j = p;
  ts_ctx_reset(j->c);
  ts_matmul(j->c, j->a, j->b, 0, 0);
}

static void run_blas(void *p) {
  job *j = p;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->s.M, j->s.N, j->s.K, 1.0f, j->a->data, j->s.K,
              j->b->data, j->s.N, 0.0f, j->C, j->s.N);
}

/* The U-Net's GEMMs for down_dims D at batch B, horizon 16, cond dim 256 + 40. */
static int unet_shapes(const int *D, int nd, int B, shape *out) {
  int n = 0, L = 16, in = 2, cond = 256 + 40;
  out[n++] = (shape){B, 1024, 256, "step-encoder linear 256->1024"};
  out[n++] = (shape){B, 256, 1024, "step-encoder linear 1024->256"};
  for (int l = 0; l < nd; l++, L = L > 1 ? L / 2 : 1) {
    out[n++] = (shape){D[l], B * L, in * 5, "down conv k5 (in->out)"};
    out[n++] = (shape){D[l], B * L, D[l] * 5, "down conv k5 (out->out)"};
    out[n++] = (shape){B, 2 * D[l], cond, "FiLM linear"};
    in = D[l];
  }
  out[n++] = (shape){D[nd - 1], B * (L * 2), D[nd - 1] * 5, "mid conv k5"};
  for (int l = nd - 1; l >= 1; l--) {
    out[n++] = (shape){D[l - 1], B * (16 >> l), 2 * D[l] * 5, "up conv k5 (2*out->in)"};
    out[n++] = (shape){D[l - 1], B * (16 >> l), D[l - 1] * 5, "up conv k5 (in->in)"};
  }
  out[n++] = (shape){D[0], B * 16, D[0] * 5, "final conv k5"};
  return n;
}

/* The inference engine's GEMM (core/kernels.h) on the same shape: packed weights, N input rows
 * of K floats. With ncopy > 1, successive calls cycle through copies of the weights that
 * together exceed the cache, as a whole U-Net forward does. */
typedef struct { ts_packed *w; int ncopy, next, N; const float **in; float **out; } ejob;

static void run_engine(void *p) {
  ejob *j = p;
  ts_gemm_rows(&j->w[j->next], j->in, j->out, j->N, NULL, 0, j->w[0].panels);
  j->next = (j->next + 1) % j->ncopy;
}

static double time_engine(const shape *s, const float *A, int cold) {
  int ncopy = 1;
  if (cold) { /* about 64 MB of weight copies, at most 4096 */
    double per = (double)s->M * s->K * sizeof(float);
    ncopy = (int)(64e6 / per) + 1;
    ncopy = ncopy > 4096 ? 4096 : ncopy;
  }
  ejob j = {malloc((size_t)ncopy * sizeof(ts_packed)), ncopy, 0, s->N, malloc((size_t)s->N * sizeof(float *)),
            malloc((size_t)s->N * sizeof(float *))};
  float *X = calloc((size_t)s->N * s->K, sizeof(float)), *Y = malloc((size_t)s->N * s->M * sizeof(float));
  if (!j.w || !j.in || !j.out || !X || !Y) abort();
  for (int i = 0; i < ncopy; i++) ts_pack(&j.w[i], A, s->M, s->K);
  for (int n = 0; n < s->N; n++) {
    j.in[n] = X + (size_t)n * s->K;
    j.out[n] = Y + (size_t)n * s->M;
    for (int k = 0; k < s->K; k++) X[(size_t)n * s->K + k] = 0.01f * (float)((n + k) % 17);
  }
  double t = time_call(run_engine, &j);
  for (int i = 0; i < ncopy; i++) ts_packed_free(&j.w[i]);
  free(j.w);
  free(j.in);
  free(j.out);
  free(X);
  free(Y);
  return t;
}

static const char *const BENCH_FLAGS[] = {"--json", "--raw-weights", NULL};

static int bench_gemm(int argc, char **argv) {
  static const char *const vals[] = {"--dims", "--batch", NULL}, *const flags[] = {"--json", NULL};
  const ts_cli_args spec = {vals, flags, 0, 0, "tsdp bench gemm [--dims 64,128,256] [--batch B] [--json]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  int D[8] = {64, 128, 256}, nd = 3, B = 1, json = ts_has_flag(argc, argv, "--json");
  const char *ds = ts_opt(argc, argv, "--dims"), *bs = ts_opt(argc, argv, "--batch");
  if (ds) {
    if ((nd = ts_int_list("--dims", ds, 1, 4096, D, 8)) < 0) return 1;
  }
  long lb;
  if (bs && ts_int_opt(argc, argv, "--batch", 1, 1, 4096, &lb)) return 1;
  if (bs) B = (int)lb;
  shape sh[64];
  int n = unet_shapes(D, nd, B, sh);
  ts_ctx *c = ts_ctx_new(64 << 20);
  ts_set_grad(c, 0);
  ts_rng rng;
  ts_rng_init(&rng, 1);
  if (json) printf("{\"batch\": %d, \"avx2\": %d, \"shapes\": [", B, ts_kernels_avx2());
  else
    printf("GFLOP/s, 1 thread. ts: the autograd path (ts_matmul); BLAS: cblas_sgemm on the same buffers;\n"
           "engine: the inference kernel (%s), weights in cache / cycling through 64 MB of copies.\n"
           "%-32s %6s %6s %6s %8s %8s %7s %8s %8s\n",
           ts_kernels_avx2() ? "AVX2+FMA" : "portable", "GEMM (U-Net, im2col)", "M", "N", "K", "ts", "BLAS",
           "ratio", "engine", "cold");
  for (int i = 0; i < n; i++) {
    shape s = sh[i];
    ts_tensor *a = ts_param_new(2, (int[]){s.M, s.K}), *b = ts_param_new(2, (int[]){s.K, s.N});
    a->requires_grad = b->requires_grad = 0;
    ts_rng_fill_normal(&rng, a->data, a->n);
    ts_rng_fill_normal(&rng, b->data, b->n);
    float *C = malloc((size_t)s.M * s.N * sizeof(float));
    job j = {c, a, b, C, s};
    double flop = 2.0 * s.M * s.N * s.K, tl = time_call(run_lib, &j), tb = time_call(run_blas, &j);
    /* A linear here is (batch M) x (outputs N): for the engine the weights are N x K and the
     * rows M; a convolution's weights are M x K and its rows N. */
    shape se = strstr(s.what, "linear") ? (shape){s.N, s.M, s.K, s.what} : s;
    float *W = malloc((size_t)se.M * se.K * sizeof(float));
    ts_rng_fill_normal(&rng, W, (int64_t)se.M * se.K);
    double te = time_engine(&se, W, 0), tc = time_engine(&se, W, 1);
    free(W);
    if (json)
      printf("%s{\"what\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"ts_gflops\": %.3f, \"blas_gflops\": %.3f, "
             "\"engine_gflops\": %.3f, \"engine_cold_gflops\": %.3f}",
             i ? ", " : "", s.what, s.M, s.N, s.K, flop / tl * 1e-9, flop / tb * 1e-9, flop / te * 1e-9,
             flop / tc * 1e-9);
    else
      printf("%-32s %6d %6d %6d %8.2f %8.2f %7.2f %8.2f %8.2f\n", s.what, s.M, s.N, s.K, flop / tl * 1e-9,
             flop / tb * 1e-9, tb / tl, flop / te * 1e-9, flop / tc * 1e-9);
    free(C);
    ts_param_free(a);
    ts_param_free(b);
  }
  if (json) printf("]}\n");
  ts_ctx_free(c);
  return 0;
}

typedef struct { ts_denoiser *net; float *x, *cond, *eps; int *t; int B; } step_job;

static void run_step(void *arg) {
  step_job *j = arg;
  ts_denoiser_eps(j->net, j->x, j->t, j->cond, j->B, j->eps);
}

static void print_list(const char *key, const double *v, int n) {
  printf("\"%s\": [", key);
  for (int i = 0; i < n; i++) printf("%s%.4f", i ? ", " : "", v[i]);
  printf("], ");
}

/* One whole DDPM chunk at batch 1 (all train steps plus the scheduler), median ms of 5. */
static double ddpm_chunk_ms(ts_policy *p, ts_rng *rng) {
  double chunk[5];
  float *obs = malloc((size_t)p->cond_dim * sizeof(float)), *acts = malloc((size_t)p->horizon * p->act_dim * sizeof(float));
  if (!obs || !acts) abort();
  for (int i = 0; i < p->cond_dim; i++) obs[i] = 0.5f * (p->nobs.min[i % p->obs_dim] + p->nobs.max[i % p->obs_dim]);
  for (int r = 0; r < 5; r++) {
    double t0 = ts_now();
    ts_policy_sample(p, obs, 1, &(ts_sampler){.kind = TS_SAMPLER_DDPM}, rng, acts);
    chunk[r] = 1e3 * (ts_now() - t0);
  }
  free(obs);
  free(acts);
  return ts_median(chunk, 5);
}

/* ms per batched U-Net forward (EMA weights, no grad) for each batch size: the inference
 * engine (what every sampler calls), the engine with the timestep path computed per call
 * instead of looked up, and the autograd tape's forward; then one DDPM chunk at batch 1. */
static int bench_step(int argc, char **argv) {
  static const char *const vals[] = {"--ckpt", "--batch", "--threads", NULL};
  const ts_cli_args spec = {vals, BENCH_FLAGS, 0, 0,
                            "tsdp bench step --ckpt C [--batch 1,2,4,8,16] [--threads T] [--raw-weights] [--json]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  const char *ck = ts_opt(argc, argv, "--ckpt"), *bl = ts_opt(argc, argv, "--batch");
  int json = ts_has_flag(argc, argv, "--json");
  if (!ck) return ts_fail("usage: tsdp bench step --ckpt C [--batch 1,2,4,8,16] [--threads T] [--json]");
  int bs[32], nb = 0;
  if ((nb = ts_int_list("--batch", bl ? bl : "1,2,4,8,16", 1, 4096, bs, 32)) < 0) return -1;
  ts_policy p;
  if (ts_cli_load_policy(argc, argv, &p)) return -1;
  int threads = p.threads;
  ts_denoiser plain; /* the engine without its timestep table */
  if (ts_denoiser_engine(&plain, &p.model, 0, threads)) {
    ts_policy_free(&p);
    return -1;
  }
  int maxb = 1;
  for (int i = 0; i < nb; i++) maxb = bs[i] > maxb ? bs[i] : maxb;
  size_t nx = (size_t)maxb * p.horizon * p.act_dim;
  float *x = malloc(nx * sizeof(float)), *eps = malloc(nx * sizeof(float)), *cond = malloc((size_t)maxb * p.cond_dim * sizeof(float));
  int *t = malloc((size_t)maxb * sizeof(int));
  ts_rng rng;
  ts_rng_init(&rng, 3);
  ts_rng_fill_normal(&rng, x, (int64_t)nx);
  ts_rng_fill_uniform(&rng, cond, (int64_t)maxb * p.cond_dim);
  for (int b = 0; b < maxb; b++) t[b] = (int)ts_rng_below(&rng, (uint32_t)p.sched.T);
  double ms[32], ms_plain[32], ms_tape[32];
  /* One variant at a time over all batch sizes, the tape (OpenBLAS, whose idle workers keep
   * yielding for a while and would share the cores with the engine's) last. */
  double chunk_ms = 0;
  for (int v = 0; v < 3; v++) {
    if (v == 2) chunk_ms = ddpm_chunk_ms(&p, &rng);
    for (int i = 0; i < nb; i++) {
      step_job j = {v == 0 ? &p.target : v == 1 ? &plain : &p.reference, x, cond, eps, t, bs[i]};
      run_step(&j); /* warm-up: buffers grow to this batch size */
      double r = 1e3 * time_call(run_step, &j);
      (v == 0 ? ms : v == 1 ? ms_plain : ms_tape)[i] = r;
    }
  }
  if (json) {
    printf("{\"ckpt\": \"%s\", \"threads\": %d, \"batch\": [", ck, threads);
    for (int i = 0; i < nb; i++) printf("%s%d", i ? ", " : "", bs[i]);
    printf("], ");
    print_list("ms", ms, nb);
    print_list("ms_no_step_table", ms_plain, nb);
    print_list("ms_tape", ms_tape, nb);
    printf("\"ddpm_chunk_ms\": %.3f}\n", chunk_ms);
  } else {
    printf("%s forward (%.2f M parameters, %.1f MFLOP at batch 1; EMA weights, no grad), %d thread%s, median of 5 "
           "timed runs, ms per call:\n", p.model.unet ? "U-Net" : "Transformer",
           (double)ts_params_count(p.model.params) / 1e6, ts_model_flops(&p.model) / 1e6, threads, threads > 1 ? "s" : "");
    printf("%8s %12s %16s %12s %14s\n", "batch", "engine", "no step table", "tape", "engine/sample");
    for (int i = 0; i < nb; i++)
      printf("%8d %12.3f %16.3f %12.3f %14.4f\n", bs[i], ms[i], ms_plain[i], ms_tape[i], ms[i] / bs[i]);
    printf("DDPM-%d chunk at batch 1: %.1f ms\n", p.sched.T, chunk_ms);
  }
  free(x);
  free(eps);
  free(cond);
  free(t);
  ts_denoiser_free(&plain);
  ts_policy_free(&p);
  return 0;
}

/* tsdp bench allreduce [--floats 262144,...] [--reps R] [--json], under mpirun -np N: the
 * gradient all-reduce of train/parallel.h (core/dist.h) timed on float buffers of those sizes;
 * the median of R after a warm-up, measured on rank 0 after a barrier. */
static int bench_allreduce(int argc, char **argv) {
  static const char *const vals[] = {"--floats", "--reps", NULL}, *const flags[] = {"--json", NULL};
  const ts_cli_args spec = {vals, flags, 0, 0, "tsdp bench allreduce [--floats 262144,...] [--reps R] [--json]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  const char *fl = ts_opt(argc, argv, "--floats");
  long reps;
  if (ts_int_opt(argc, argv, "--reps", 20, 1, 100000, &reps)) return 1;
  int json = ts_has_flag(argc, argv, "--json");
  int counts[16], nc = ts_int_list("--floats", fl ? fl : "262144,4194304,67108864", 1, 1L << 30, counts, 16);
  if (nc < 0) return 1; /* the whole list is checked before anything runs */
  if (json) printf("{\"ranks\": %d, \"floats\": [", ts_dist_size());
  int first = 1;
  for (int k = 0; k < nc; k++) {
    long n = counts[k];
    float *buf = malloc((size_t)n * sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double));
    if (!buf || !t) abort();
    for (long i = 0; i < n; i++) buf[i] = (float)(i % 7);
    ts_dist_allreduce_sum(buf, n); /* warm-up: connections, pages */
    for (long r = 0; r < reps; r++) {
      ts_dist_barrier();
      double t0 = ts_now();
      ts_dist_allreduce_sum(buf, n);
      t[r] = ts_now() - t0;
    }
    for (long i = 1; i < reps; i++) /* insertion sort for the median */
      for (long j = i; j > 0 && t[j] < t[j - 1]; j--) {
        double x = t[j];
        t[j] = t[j - 1];
        t[j - 1] = x;
      }
    double med = t[reps / 2], gbs = (double)n * 4 * 2 * (ts_dist_size() - 1) / ts_dist_size() / med / 1e9;
    if (json) printf("%s{\"n\": %ld, \"ms\": %.3f, \"bus_gb_s\": %.2f}", first ? "" : ", ", n, 1e3 * med, gbs);
    else
      printf("all-reduce of %ld floats (%.1f MB) over %d rank%s: %.3f ms (median of %ld), %.2f GB/s moved per rank\n", n,
             n * 4 / 1e6, ts_dist_size(), ts_dist_size() > 1 ? "s" : "", 1e3 * med, reps, gbs);
    first = 0;
    free(buf);
    free(t);
  }
  if (json) printf("]}\n");
  return 0;
}

int ts_cmd_bench(int argc, char **argv) {
  if (argc >= 1 && strcmp(argv[0], "allreduce") == 0) return bench_allreduce(argc - 1, argv + 1);
  if (argc >= 1 && strcmp(argv[0], "gemm") == 0) return bench_gemm(argc - 1, argv + 1);
  if (argc >= 1 && strcmp(argv[0], "step") == 0) return bench_step(argc - 1, argv + 1);
  if (argc >= 1 && strcmp(argv[0], "spec") == 0) return ts_bench_spec(argc - 1, argv + 1);
  if (argc >= 1 && strcmp(argv[0], "cost") == 0) return ts_bench_cost(argc - 1, argv + 1);
  return ts_fail("usage: tsdp bench gemm [--dims 64,128,256] [--batch B] [--json] | tsdp bench step --ckpt C ... | "
                 "tsdp bench spec --ckpt C --data D.h5 ... | mpirun -np N tsdp bench allreduce [--floats N,...]");
}
