#include "pool.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define POOL_MAX 16

typedef struct worker_arg { ts_pool *p; int i; } worker_arg;

struct ts_pool {
  int n, spin_us;
  pthread_t th[POOL_MAX];
  worker_arg wa[POOL_MAX];
  void (*fn)(void *, int, int);
  void *arg;
  atomic_uint gen;
  atomic_int pending, quit;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

static void *worker(void *v) {
  worker_arg *wa = v;
  ts_pool *p = wa->p;
  unsigned seen = 0;
  for (;;) {
    double t0 = p->spin_us > 0 ? now_us() : 0;
    while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) {
      if (p->spin_us > 0 && now_us() - t0 < p->spin_us) {
        for (int k = 0; k < 32; k++) cpu_relax();
        continue;
      }
      pthread_mutex_lock(&p->mu);
      while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) pthread_cond_wait(&p->cv, &p->mu);
      pthread_mutex_unlock(&p->mu);
    }
    seen = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (atomic_load_explicit(&p->quit, memory_order_relaxed)) return NULL;
    p->fn(p->arg, wa->i, p->n);
    atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
  }
}

ts_pool *ts_pool_new(int n, int spin_us) {
  if (n < 1) n = 1;
  if (n > POOL_MAX) n = POOL_MAX;
  ts_pool *p = calloc(1, sizeof *p);
  if (!p) abort();
  p->n = n;
  p->spin_us = spin_us;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  for (int i = 1; i < n; i++) {
    p->wa[i] = (worker_arg){p, i};
    if (pthread_create(&p->th[i], NULL, worker, &p->wa[i])) { /* no thread: run with fewer */
      p->n = i;
      break;
    }
  }
  return p;
}

static void wake(ts_pool *p) {
  pthread_mutex_lock(&p->mu);
  atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

void ts_pool_free(ts_pool *p) {
  if (!p) return;
  if (p->n > 1) {
    atomic_store(&p->quit, 1);
    wake(p);
    for (int i = 1; i < p->n; i++) pthread_join(p->th[i], NULL);
  }
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

int ts_pool_size(const ts_pool *p) { return p ? p->n : 1; }

void ts_pool_run(ts_pool *p, void (*fn)(void *, int, int), void *arg) {
  if (!p || p->n == 1) {
    fn(arg, 0, 1);
    return;
  }
  p->fn = fn;
  p->arg = arg;
  atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
  wake(p);
  fn(arg, 0, p->n);
  long spins = 0;
  while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
    if (++spins % 4096 == 0) sched_yield();
    else cpu_relax();
}

/* ---------- the process-wide pool for the ops ---------- */

static ts_pool *global;
static atomic_int global_busy;
static pthread_mutex_t global_mu = PTHREAD_MUTEX_INITIALIZER;

void ts_parallel_threads(int n) {
  pthread_mutex_lock(&global_mu);
  if (n != ts_pool_size(global)) {
    ts_pool_free(global);
    /* A short spin: between parallel ops the other core usually runs an OpenBLAS worker. */
    global = n > 1 ? ts_pool_new(n, 20) : NULL;
  }
  pthread_mutex_unlock(&global_mu);
}

typedef struct { int64_t n; void (*fn)(void *, int64_t, int64_t); void *arg; } pf_job;

static void pf_run(void *v, int i, int n) {
  pf_job *j = v;
  int64_t lo = j->n * i / n, hi = j->n * (i + 1) / n;
  if (lo < hi) j->fn(j->arg, lo, hi);
}

void ts_parallel_for(int64_t n, int64_t grain, void (*fn)(void *, int64_t, int64_t), void *arg) {
  if (n <= 0) return;
  int expect = 0;
  if (!global || n < 2 * grain || !atomic_compare_exchange_strong(&global_busy, &expect, 1)) {
    fn(arg, 0, n);
    return;
  }
  pf_job j = {n, fn, arg};
  ts_pool_run(global, pf_run, &j);
  atomic_store(&global_busy, 0);
}
