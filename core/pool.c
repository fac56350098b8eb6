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

/* A published job. Static (ts_pool_run): every thread runs fn(arg, i, n) once and the caller
 * waits for all. Claimed (ts_pool_for): cfn(arg, chunk, thread) for chunks claimed from the
 * pool's claim word; the caller waits only for claimed chunks. Fields are atomics (relaxed):
 * a worker that wakes late for a claimed job may read them while the caller already writes
 * the slot's next job, and then discards what it read (see worker). */
typedef struct {
  _Atomic(void (*)(void *, int, int)) fn;
  _Atomic(void (*)(void *, int, int)) cfn;
  _Atomic(void *) arg;
  atomic_int chunks; /* 0 for a static job */
} job;

struct ts_pool {
  int n, spin_us;
  pthread_t th[POOL_MAX];
  worker_arg wa[POOL_MAX];
  job slot[2];           /* job g in slot[g & 1] */
  atomic_uint gen;       /* jobs published so far */
  atomic_int pending, quit;
  _Atomic uint64_t claim; /* claimed job: (gen << 32) | chunks handed out */
  atomic_int done;        /* claimed job: chunks finished */
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

/* Run chunks of claimed job g (chunks of them) until none is left or the job is over. */
static void claim_chunks(ts_pool *p, unsigned g, int chunks, void (*fn)(void *, int, int), void *arg, int tid) {
  for (;;) {
    uint64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
    if ((unsigned)(c >> 32) != g || (int)(uint32_t)c >= chunks) return;
    if (!atomic_compare_exchange_weak_explicit(&p->claim, &c, c + 1, memory_order_acq_rel, memory_order_relaxed))
      continue;
    fn(arg, (int)(uint32_t)c, tid);
    atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
  }
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
    unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (atomic_load_explicit(&p->quit, memory_order_relaxed)) return NULL;
    job *j = &p->slot[g & 1];
    void (*fn)(void *, int, int) = atomic_load_explicit(&j->fn, memory_order_relaxed);
    void (*cfn)(void *, int, int) = atomic_load_explicit(&j->cfn, memory_order_relaxed);
    void *arg = atomic_load_explicit(&j->arg, memory_order_relaxed);
    int chunks = atomic_load_explicit(&j->chunks, memory_order_relaxed);
    /* A static job waits for this worker, so its slot cannot change under us; a claimed one may
     * be over, and its slot rewritten, by now: then a newer job is published and we take that. */
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&p->gen, memory_order_relaxed) != g) continue;
    seen = g;
    if (chunks > 0) {
      claim_chunks(p, g, chunks, cfn, arg, wa->i);
    } else {
      fn(arg, wa->i, p->n);
      atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
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

/* Publish job gen + 1 (the caller is the only writer) and wake the sleepers. */
static unsigned publish(ts_pool *p, void (*fn)(void *, int, int), void (*cfn)(void *, int, int), void *arg,
                        int chunks) {
  unsigned g = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
  job *j = &p->slot[g & 1];
  /* Orders the previous publication before these writes: a worker that reads one of them
   * then sees gen moved on (the seqlock pattern), and drops the slot. */
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&j->fn, fn, memory_order_relaxed);
  atomic_store_explicit(&j->cfn, cfn, memory_order_relaxed);
  atomic_store_explicit(&j->arg, arg, memory_order_relaxed);
  atomic_store_explicit(&j->chunks, chunks, memory_order_relaxed);
  if (chunks > 0) {
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->claim, (uint64_t)g << 32, memory_order_relaxed);
  }
  pthread_mutex_lock(&p->mu);
  atomic_store_explicit(&p->gen, g, memory_order_release);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return g;
}

void ts_pool_free(ts_pool *p) {
  if (!p) return;
  if (p->n > 1) {
    atomic_store(&p->quit, 1);
    publish(p, NULL, NULL, NULL, 0);
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
  atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
  publish(p, fn, NULL, arg, 0);
  fn(arg, 0, p->n);
  long spins = 0;
  while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
    if (++spins % 4096 == 0) sched_yield();
    else cpu_relax();
}

void ts_pool_for(ts_pool *p, int chunks, void (*fn)(void *, int, int), void *arg) {
  if (chunks <= 0) return;
  if (!p || p->n == 1 || chunks == 1) {
    for (int i = 0; i < chunks; i++) fn(arg, i, 0);
    return;
  }
  unsigned g = publish(p, NULL, fn, arg, chunks);
  claim_chunks(p, g, chunks, fn, arg, 0);
  /* Only chunks a worker has claimed are waited for; yield soon, in case that worker shares
   * this core (a loaded machine). */
  long spins = 0;
  while (atomic_load_explicit(&p->done, memory_order_acquire) < chunks)
    if (++spins % 256 == 0) sched_yield();
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
