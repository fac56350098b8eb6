/* pool.h: worker threads for data-parallel loops. A pool has n - 1 workers plus the calling
 * thread; ts_pool_run calls fn(arg, i, n) for i = 0 .. n-1 (i = 0 on the caller) and returns
 * when all are done; ts_pool_for hands out chunks of work to whichever thread is free. Between
 * jobs a worker spins for spin_us microseconds, then sleeps.
 *
 * ts_parallel_for splits [0, n) into contiguous, statically assigned ranges over the
 * process-wide pool sized by ts_set_threads (core/timer.h); the ops use it. Every element is
 * computed the same way whatever the split, so results do not depend on the thread count. */
#ifndef TS_POOL_H
#define TS_POOL_H

#include <stdint.h>

typedef struct ts_pool ts_pool;
ts_pool *ts_pool_new(int n, int spin_us);
void ts_pool_free(ts_pool *p);
int ts_pool_size(const ts_pool *p);
void ts_pool_run(ts_pool *p, void (*fn)(void *arg, int i, int n), void *arg);
/* fn(arg, chunk, thread) for chunk = 0 .. chunks-1, each chunk claimed by whichever thread is
 * free: the caller and the workers that are awake. thread (< ts_pool_size) names the thread
 * that runs the chunk, for per-thread scratch; no two chunks run on one thread at once.
 * Returns when every chunk has run. Unlike ts_pool_run it never waits for a worker that has
 * not started (on a loaded machine the caller may run every chunk itself), only for chunks in
 * progress. One caller at a time, as ts_pool_run. */
void ts_pool_for(ts_pool *p, int chunks, void (*fn)(void *arg, int chunk, int thread), void *arg);

/* fn(arg, lo, hi) over ranges covering [0, n); inline when n < 2 grain, when the process pool
 * has one thread, or when it is busy (a call from a worker or from a second user thread). */
void ts_parallel_for(int64_t n, int64_t grain, void (*fn)(void *arg, int64_t lo, int64_t hi), void *arg);
/* Size of the process-wide pool (ts_set_threads calls this); 1 = no workers. */
void ts_parallel_threads(int n);

#endif
