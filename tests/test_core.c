/* Arena, RNG, optimisers, schedules and HDF5 checkpoints. */
#include "tests.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/ops.h"
#include "core/ops_internal.h"
#include "core/optim.h"
#include "core/pool.h"
#include "core/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* After one warm-up step, a training step (forward, backward, reset) makes no malloc. */
START_TEST(test_arena_no_alloc_after_warmup) {
  ts_ctx *c = ts_ctx_new(1024); /* deliberately too small: the first step overflows */
  ts_tensor *w = ts_param_new(2, (int[]){16, 8}), *x = ts_param_new(2, (int[]){32, 8});
  x->requires_grad = 0;
  long after_warmup = 0;
  for (int step = 0; step < 5; step++) {
    ts_tensor *y = ts_mish(c, ts_linear(c, x, w, NULL));
    ts_tensor *loss = ts_mean_all(c, ts_mul(c, y, y));
    ck_assert_int_eq(ts_backward(c, loss), 0);
    ts_ctx_reset(c);
    if (step == 1) after_warmup = ts_ctx_mallocs(c);
  }
  ck_assert_int_eq(ts_ctx_mallocs(c), after_warmup);
  ts_param_free(w);
  ts_param_free(x);
  ts_ctx_free(c);
}
END_TEST

START_TEST(test_arena_pointers_stay_valid) {
  ts_arena a;
  ts_arena_init(&a, 128);
  float *p = ts_arena_alloc(&a, 64 * sizeof(float));
  for (int i = 0; i < 64; i++) p[i] = (float)i;
  float *q = ts_arena_alloc(&a, 1000 * sizeof(float)); /* overflow block */
  q[999] = 1;
  for (int i = 0; i < 64; i++) ck_assert_float_eq(p[i], (float)i);
  ck_assert_int_eq((uintptr_t)q % 64, 0);
  ts_arena_reset(&a);
  ck_assert_uint_ge(a.cap, 64 * sizeof(float) + 1000 * sizeof(float));
  ts_arena_free(&a);
}
END_TEST

/* Philox4x32-10 known-answer vectors from Random123 (kat_vectors). */
START_TEST(test_philox_kat) {
  uint32_t out[4];
  ts_philox((uint32_t[]){0, 0, 0, 0}, (uint32_t[]){0, 0}, out);
  ck_assert_uint_eq(out[0], 0x6627e8d5u);
  ck_assert_uint_eq(out[1], 0xe169c58du);
  ck_assert_uint_eq(out[2], 0xbc57ac4cu);
  ck_assert_uint_eq(out[3], 0x9b00dbd8u);
  ts_philox((uint32_t[]){0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, (uint32_t[]){0xffffffffu, 0xffffffffu}, out);
  ck_assert_uint_eq(out[0], 0x408f276du);
  ck_assert_uint_eq(out[1], 0x41c83b0eu);
  ck_assert_uint_eq(out[2], 0xa20bc7c6u);
  ck_assert_uint_eq(out[3], 0x6d5451fdu);
}
END_TEST

START_TEST(test_rng_moments_and_repeatability) {
  ts_rng a, b;
  ts_rng_init(&a, 42);
  ts_rng_init(&b, 42);
  enum { N = 200000 };
  double s = 0, s2 = 0, s4 = 0, us = 0;
  for (int i = 0; i < N; i++) {
    float z = ts_rng_normal(&a);
    ck_assert(z == ts_rng_normal(&b));
    s += z;
    s2 += (double)z * z;
    s4 += (double)z * z * z * z;
    float u = ts_rng_uniform(&a);
    ts_rng_uniform(&b);
    ck_assert(u >= 0 && u < 1);
    us += u;
  }
  /* Standard errors: mean 1/sqrt(N) = 0.0022, var sqrt(2/N) = 0.0032, E z^4 = 3 (se ~0.02);
   * bounds at ~5 standard errors. */
  ck_assert_msg(fabs(s / N) < 0.012, "normal mean %g", s / N);
  ck_assert_msg(fabs(s2 / N - 1) < 0.016, "normal var %g", s2 / N);
  ck_assert_msg(fabs(s4 / N - 3) < 0.1, "normal 4th moment %g", s4 / N);
  ck_assert_msg(fabs(us / N - 0.5) < 0.004, "uniform mean %g", us / N);
  ts_rng c;
  ts_rng_init(&c, 43);
  ck_assert(ts_rng_u32(&c) != (ts_rng_init(&a, 42), ts_rng_u32(&a)));
}
END_TEST

START_TEST(test_rng_state_resume) {
  ts_rng a, b;
  ts_rng_init(&a, 9);
  for (int i = 0; i < 7; i++) ts_rng_u32(&a); /* mid-block */
  ts_rng_set_state(&b, a.seed, a.counter, a.avail);
  for (int i = 0; i < 20; i++) ck_assert_uint_eq(ts_rng_u32(&a), ts_rng_u32(&b));
}
END_TEST

START_TEST(test_rng_below_and_shuffle) {
  ts_rng r;
  ts_rng_init(&r, 5);
  int hist[7] = {0}, perm[50];
  for (int i = 0; i < 70000; i++) hist[ts_rng_below(&r, 7)]++;
  for (int k = 0; k < 7; k++) ck_assert_msg(abs(hist[k] - 10000) < 500, "bin %d: %d", k, hist[k]);
  for (int i = 0; i < 50; i++) perm[i] = i;
  ts_rng_shuffle(&r, perm, 50);
  int seen[50] = {0}, moved = 0;
  for (int i = 0; i < 50; i++) {
    seen[perm[i]]++;
    moved += perm[i] != i;
  }
  for (int i = 0; i < 50; i++) ck_assert_int_eq(seen[i], 1);
  ck_assert_int_gt(moved, 40);
}
END_TEST

START_TEST(test_adamw_vs_torch) {
  ts_h5 *f = ts_h5_open(fixture_path("ops.h5"));
  ck_assert_ptr_nonnull(f);
  int64_t n, ng;
  float *p0 = fix_floats(f, "adamw/p0", &n), *grads = fix_floats(f, "adamw/grads", &ng), *p3 = fix_floats(f, "adamw/p3", &n);
  double lr, b1, b2, eps, wd;
  ts_h5_get_attr_f64(f, "adamw", "lr", &lr);
  ts_h5_get_attr_f64(f, "adamw", "beta1", &b1);
  ts_h5_get_attr_f64(f, "adamw", "beta2", &b2);
  ts_h5_get_attr_f64(f, "adamw", "eps", &eps);
  ts_h5_get_attr_f64(f, "adamw", "wd", &wd);
  ts_tensor *p = ts_param_new(2, (int[]){4, 5});
  memcpy(p->data, p0, (size_t)n * sizeof(float));
  ts_adamw *o = ts_adamw_new(&p, 1, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd);
  for (int s = 0; s < 3; s++) {
    memcpy(p->grad, grads + s * n, (size_t)n * sizeof(float));
    ts_adamw_step(o);
  }
  double e = rel_err(p->data, p3, n, 1.0);
  ck_assert_msg(e < 1e-6, "AdamW after 3 steps: relative error %g", e);
  ts_adamw_free(o);
  /* Two parameter groups (the Transformer's recipe): the decayed copy follows the fixture,
   * the undecayed one equals a run with weight decay 0, bit for bit. */
  ts_tensor *pp[3] = {ts_param_new(2, (int[]){4, 5}), ts_param_new(2, (int[]){4, 5}), ts_param_new(2, (int[]){4, 5})};
  for (int k = 0; k < 3; k++) memcpy(pp[k]->data, p0, (size_t)n * sizeof(float));
  ts_adamw *og = ts_adamw_new(pp, 2, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd);
  ts_adamw *o0 = ts_adamw_new(pp + 2, 1, (float)lr, (float)b1, (float)b2, (float)eps, 0.0f);
  ts_adamw_set_decay(og, (const unsigned char[]){1, 0});
  for (int s = 0; s < 3; s++) {
    for (int k = 0; k < 3; k++) memcpy(pp[k]->grad, grads + s * n, (size_t)n * sizeof(float));
    ts_adamw_step(og);
    ts_adamw_step(o0);
  }
  ck_assert_msg(rel_err(pp[0]->data, p3, n, 1.0) < 1e-6, "decayed group");
  ck_assert_mem_eq(pp[1]->data, pp[2]->data, (size_t)n * sizeof(float));
  ck_assert_msg(rel_err(pp[1]->data, p3, n, 1.0) > 1e-7, "weight decay had no effect in the fixture");
  ts_adamw_free(og);
  ts_adamw_free(o0);
  for (int k = 0; k < 3; k++) ts_param_free(pp[k]);
  ts_param_free(p);
  free(p0);
  free(grads);
  free(p3);
  /* Gradient clipping. */
  int64_t na, nb;
  float *ga = fix_floats(f, "clip/ga", &na), *gb = fix_floats(f, "clip/gb", &nb);
  float *ca = fix_floats(f, "clip/ga_clipped", &na), *cb = fix_floats(f, "clip/gb_clipped", &nb);
  double norm;
  ts_h5_get_attr_f64(f, "clip", "norm", &norm);
  ts_tensor *ps[2] = {ts_param_new(2, (int[]){3, 4}), ts_param_new(1, (int[]){7})};
  memcpy(ps[0]->grad, ga, sizeof(float) * 12);
  memcpy(ps[1]->grad, gb, sizeof(float) * 7);
  float got = ts_clip_grad_norm(ps, 2, 1.0f);
  ck_assert_msg(fabs(got - norm) < 1e-5 * norm, "norm %g vs torch %g", got, norm);
  ck_assert(rel_err(ps[0]->grad, ca, 12, 1e-3) < 1e-6 && rel_err(ps[1]->grad, cb, 7, 1e-3) < 1e-6);
  ts_param_free(ps[0]);
  ts_param_free(ps[1]);
  free(ga);
  free(gb);
  free(ca);
  free(cb);
  ts_h5_close(f);
}
END_TEST

START_TEST(test_ema_and_cosine) {
  ts_tensor *p = ts_param_new(1, (int[]){1});
  ts_ema *e = ts_ema_new(&p, 1, 0.75f, 0.9999f);
  /* Diffusion Policy's EMAModel: decay 0 for the first two updates, then 1 - (1+s)^-0.75. */
  ck_assert_float_eq(ts_ema_decay(e, 0), 0.0f);
  ck_assert_float_eq(ts_ema_decay(e, 1), 0.0f);
  ck_assert_float_eq_tol(ts_ema_decay(e, 2), 1.0f - powf(2.0f, -0.75f), 1e-7f);
  ck_assert_float_eq_tol(ts_ema_decay(e, 100), 1.0f - powf(100.0f, -0.75f), 1e-7f);
  ck_assert_float_eq(ts_ema_decay(e, 100000000), 0.9999f);
  p->data[0] = 2.0f;
  ts_ema_update(e, &p, 0); /* decay 0: shadow = param */
  ck_assert_float_eq(e->shadow[0]->data[0], 2.0f);
  p->data[0] = 4.0f;
  ts_ema_update(e, &p, 2); /* d = 1 - 2^-0.75 */
  float d = 1.0f - powf(2.0f, -0.75f);
  ck_assert_float_eq_tol(e->shadow[0]->data[0], d * 2.0f + (1 - d) * 4.0f, 1e-6f);
  ts_ema_free(e);
  ts_param_free(p);
  /* Cosine with warm-up: linear ramp, then half cosine to zero. */
  ck_assert_float_eq(ts_lr_cosine(1e-4f, 0, 500, 10500), 0.0f);
  ck_assert_float_eq_tol(ts_lr_cosine(1e-4f, 250, 500, 10500), 0.5e-4f, 1e-10f);
  ck_assert_float_eq_tol(ts_lr_cosine(1e-4f, 500, 500, 10500), 1e-4f, 1e-10f);
  ck_assert_float_eq_tol(ts_lr_cosine(1e-4f, 5500, 500, 10500), 0.5e-4f, 1e-9f);
  ck_assert_float_eq_tol(ts_lr_cosine(1e-4f, 10500, 500, 10500), 0.0f, 1e-10f);
}
END_TEST

static char *tmpf(const char *name) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%s/%s", tmp_dir(), name);
  return buf;
}

START_TEST(test_checkpoint_roundtrip) {
  char path[512];
  snprintf(path, sizeof path, "%s", tmpf("ck.h5"));
  ts_tensor *a = ts_param_new(2, (int[]){3, 4}), *b = ts_param_new(1, (int[]){5});
  for (int i = 0; i < 12; i++) a->data[i] = (float)i * 0.5f;
  for (int i = 0; i < 5; i++) b->data[i] = -(float)i;
  ts_tensor *ps[2] = {a, b};
  ts_adamw *o = ts_adamw_new(ps, 2, 1e-3f, 0.9f, 0.999f, 1e-8f, 0);
  for (int i = 0; i < 12; i++) a->grad[i] = 1.0f;
  ts_adamw_step(o);
  ts_rng r;
  ts_rng_init(&r, 99);
  ts_rng_u32(&r);
  ts_named names[2] = {{"model/a.weight", a}, {"model/sub/b", b}};
  ts_ckpt_state st = {"[train]\nlr = 1e-4\n", 1234, &r, o};
  ck_assert_msg(ts_ckpt_save(path, names, 2, &st) == 0, "%s", ts_error());
  ck_assert(access(path, R_OK) == 0);

  ts_tensor *a2 = ts_param_new(2, (int[]){3, 4}), *b2 = ts_param_new(1, (int[]){5});
  ts_tensor *ps2[2] = {a2, b2};
  ts_adamw *o2 = ts_adamw_new(ps2, 2, 1e-3f, 0.9f, 0.999f, 1e-8f, 0);
  ts_rng r2;
  ts_rng_init(&r2, 0);
  ts_named names2[2] = {{"model/a.weight", a2}, {"model/sub/b", b2}};
  ts_ckpt_state st2 = {NULL, 0, &r2, o2};
  char *cfg = NULL;
  ck_assert_msg(ts_ckpt_load(path, names2, 2, &st2, &cfg) == 0, "%s", ts_error());
  ck_assert_mem_eq(a->data, a2->data, 12 * sizeof(float));
  ck_assert_mem_eq(b->data, b2->data, 5 * sizeof(float));
  ck_assert_mem_eq(o->m[0], o2->m[0], 12 * sizeof(float));
  ck_assert_mem_eq(o->v[0], o2->v[0], 12 * sizeof(float));
  ck_assert_int_eq(o2->step, 1);
  ck_assert_int_eq(st2.step, 1234);
  ck_assert_str_eq(cfg, "[train]\nlr = 1e-4\n");
  for (int i = 0; i < 10; i++) ck_assert_uint_eq(ts_rng_u32(&r), ts_rng_u32(&r2));
  free(cfg);

  /* Wrong shape: one line naming the tensor and both shapes. */
  ts_tensor *bad = ts_param_new(2, (int[]){4, 3});
  ts_named nb[1] = {{"model/a.weight", bad}};
  ck_assert_int_ne(ts_ckpt_load(path, nb, 1, NULL, NULL), 0);
  ck_assert_msg(strstr(ts_error(), "model/a.weight") && strstr(ts_error(), "(3, 4)") && strstr(ts_error(), "(4, 3)"),
                "message: %s", ts_error());
  ck_assert_ptr_null(strchr(ts_error(), '\n'));
  /* Missing tensor. */
  ts_named nm[1] = {{"model/nope", b2}};
  ck_assert_int_ne(ts_ckpt_load(path, nm, 1, NULL, NULL), 0);
  ck_assert_msg(strstr(ts_error(), "missing") && strstr(ts_error(), "model/nope"), "message: %s", ts_error());
  /* Missing file. */
  ck_assert_int_ne(ts_ckpt_load(tmpf("absent.h5"), nm, 1, NULL, NULL), 0);
  ck_assert_msg(strstr(ts_error(), "absent.h5"), "message: %s", ts_error());
  ts_param_free(bad);
  ts_adamw_free(o);
  ts_adamw_free(o2);
  ts_param_free(a);
  ts_param_free(b);
  ts_param_free(a2);
  ts_param_free(b2);
}
END_TEST

START_TEST(test_checkpoint_refuses_bad_files) {
  ts_tensor *a = ts_param_new(1, (int[]){4});
  ts_named na[1] = {{"w", a}};
  /* NaN weights. */
  a->data[2] = NAN;
  char path[512];
  snprintf(path, sizeof path, "%s", tmpf("nan.h5"));
  ck_assert_int_eq(ts_ckpt_save(path, na, 1, NULL), 0);
  ck_assert_int_ne(ts_ckpt_load(path, na, 1, NULL, NULL), 0);
  ck_assert_msg(strstr(ts_error(), "NaN") && strstr(ts_error(), "'w'"), "message: %s", ts_error());
  /* Wrong dtype: an int64 dataset where a float32 tensor is expected. */
  snprintf(path, sizeof path, "%s", tmpf("dtype.h5"));
  ts_h5 *f = ts_h5_create(path);
  int64_t v[4] = {1, 2, 3, 4}, d[1] = {4};
  ck_assert_int_eq(ts_h5_write_i64(f, "w", v, 1, d), 0);
  ck_assert_int_eq(ts_h5_commit(f), 0);
  ck_assert_int_ne(ts_ckpt_load(path, na, 1, NULL, NULL), 0);
  ck_assert_msg(strstr(ts_error(), "dtype"), "message: %s", ts_error());
  /* Truncated / garbage file. */
  snprintf(path, sizeof path, "%s", tmpf("garbage.h5"));
  FILE *g = fopen(path, "wb");
  fputs("this is not hdf5", g);
  fclose(g);
  ck_assert_int_ne(ts_ckpt_load(path, na, 1, NULL, NULL), 0);
  ck_assert_msg(strstr(ts_error(), "not an HDF5 file"), "message: %s", ts_error());
  ts_param_free(a);
}
END_TEST

/* An abandoned writer leaves neither the target nor its temporary file behind. */
START_TEST(test_writer_is_atomic) {
  char path[512];
  snprintf(path, sizeof path, "%s", tmpf("atomic.h5"));
  ts_h5 *f = ts_h5_create(path);
  ck_assert_ptr_nonnull(f);
  float x[3] = {1, 2, 3};
  int64_t d[1] = {3};
  ts_h5_write_f32(f, "x", x, 1, d);
  ck_assert(access(path, F_OK) != 0); /* nothing under the real name until commit */
  ts_h5_close(f);
  ck_assert(access(path, F_OK) != 0);
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
  ck_assert(access(tmp, F_OK) != 0);
}
END_TEST

/* ts_gemm's narrow path (N = 4 or 8, used by batch-1 inference) and its BLAS path agree with a
 * plain triple loop in double, for both layouts of A, beta 0 and 1, and M not a multiple of 8. */
START_TEST(test_gemm_paths) {
  ts_rng r;
  ts_rng_init(&r, 11);
  const int Ns[3] = {4, 8, 12}, Ms[2] = {8, 21}, K = 37;
  for (int ni = 0; ni < 3; ni++)
    for (int mi = 0; mi < 2; mi++)
      for (int ta = 0; ta < 2; ta++)
        for (int beta = 0; beta < 2; beta++) {
          int M = Ms[mi], N = Ns[ni];
          float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N), *C = malloc(sizeof(float) * M * N);
          ts_rng_fill_normal(&r, A, M * K);
          ts_rng_fill_normal(&r, B, K * N);
          ts_rng_fill_normal(&r, C, M * N);
          double *ref = malloc(sizeof(double) * M * N);
          for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
              double acc = beta ? C[m * N + n] : 0;
              for (int k = 0; k < K; k++) acc += (double)(ta ? A[k * M + m] : A[m * K + k]) * B[k * N + n];
              ref[m * N + n] = acc;
            }
          ts_gemm(ta, 0, M, N, K, 1.0f, A, ta ? M : K, B, N, (float)beta, C, N);
          for (int i = 0; i < M * N; i++)
            ck_assert_msg(fabs(C[i] - ref[i]) < 1e-4 * (1 + fabs(ref[i])), "N=%d M=%d ta=%d beta=%d: %g vs %g", N, M, ta,
                          beta, C[i], ref[i]);
          free(A);
          free(B);
          free(C);
          free(ref);
        }
}
END_TEST

/* The pool's two kinds of job interleaved: ts_pool_run calls every index once per job;
 * ts_pool_for runs every chunk exactly once, never two chunks on one thread at a time, with the
 * thread index in range; chunks that stall (as a descheduled thread would) only delay the job. */
typedef struct { atomic_int hits[64], busy[4], bad; int n; } pool_probe;

static void probe_run(void *v, int i, int n) {
  pool_probe *p = v;
  if (n != p->n || i < 0 || i >= n) atomic_fetch_add(&p->bad, 1);
  else atomic_fetch_add(&p->hits[i], 1);
}

static void probe_chunk(void *v, int c, int tid) {
  pool_probe *p = v;
  if (tid < 0 || tid >= p->n || atomic_fetch_add(&p->busy[tid], 1) != 0) atomic_fetch_add(&p->bad, 1);
  if (c % 13 == 5) usleep(200);
  atomic_fetch_add(&p->hits[c], 1);
  atomic_fetch_sub(&p->busy[tid], 1);
}

START_TEST(test_pool_jobs) {
  ts_pool *pool = ts_pool_new(3, 50);
  ck_assert_int_eq(ts_pool_size(pool), 3);
  for (int it = 0; it < 3000; it++) {
    pool_probe pr;
    memset(&pr, 0, sizeof pr);
    pr.n = 3;
    int chunks = it % 3 == 2 ? 0 : 1 + it % 64;
    if (chunks) ts_pool_for(pool, chunks, probe_chunk, &pr);
    else ts_pool_run(pool, probe_run, &pr);
    ck_assert_int_eq(atomic_load(&pr.bad), 0);
    for (int c = 0; c < 64; c++)
      ck_assert_int_eq(atomic_load(&pr.hits[c]), chunks ? c < chunks : c < 3);
  }
  ts_pool_free(pool);
}
END_TEST

Suite *suite_core(void) {
  Suite *s = suite_create("core");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120); /* the pool test's 3000 jobs take ~10 s under ASan on a loaded machine */
  tcase_add_test(tc, test_arena_no_alloc_after_warmup);
  tcase_add_test(tc, test_arena_pointers_stay_valid);
  tcase_add_test(tc, test_philox_kat);
  tcase_add_test(tc, test_rng_moments_and_repeatability);
  tcase_add_test(tc, test_rng_state_resume);
  tcase_add_test(tc, test_rng_below_and_shuffle);
  tcase_add_test(tc, test_adamw_vs_torch);
  tcase_add_test(tc, test_ema_and_cosine);
  tcase_add_test(tc, test_checkpoint_roundtrip);
  tcase_add_test(tc, test_checkpoint_refuses_bad_files);
  tcase_add_test(tc, test_writer_is_atomic);
  tcase_add_test(tc, test_gemm_paths);
  tcase_add_test(tc, test_pool_jobs);
  suite_add_tcase(s, tc);
  return s;
}
