/* rng.h: counter-based random numbers (Philox4x32-10). A stream is (seed, counter): the n-th
 * number depends only on them, never on threads or call order elsewhere, so the same seed
 * gives the same numbers on every machine, run and thread count. The state is two 64-bit
 * words, saved in checkpoints to resume a run exactly. */
#ifndef TS_RNG_H
#define TS_RNG_H

#include <stdint.h>

typedef struct ts_rng {
  uint64_t seed;
  uint64_t counter; /* index of the next 4-word Philox block */
  uint32_t buf[4];
  int avail;        /* unused words left in buf (from the end) */
} ts_rng;

void ts_rng_init(ts_rng *r, uint64_t seed);
/* A generator for sub-stream `stream` of a seed, independent of the main stream. */
void ts_rng_init_stream(ts_rng *r, uint64_t seed, uint64_t stream);
/* Restore a saved (seed, counter, avail) so the stream continues exactly where it stopped. */
void ts_rng_set_state(ts_rng *r, uint64_t seed, uint64_t counter, int avail);
uint32_t ts_rng_u32(ts_rng *r);
float ts_rng_uniform(ts_rng *r);  /* [0, 1), 24-bit resolution */
double ts_rng_uniform_d(ts_rng *r); /* (0, 1), 53-bit resolution */
float ts_rng_normal(ts_rng *r);   /* standard normal (Box-Muller on 53-bit uniforms) */
void ts_rng_fill_normal(ts_rng *r, float *x, int64_t n);
void ts_rng_fill_uniform(ts_rng *r, float *x, int64_t n);
uint32_t ts_rng_below(ts_rng *r, uint32_t n); /* uniform integer in [0, n), unbiased */
void ts_rng_shuffle(ts_rng *r, int *a, int n); /* Fisher-Yates */

/* Philox4x32-10 block function: ctr and key in, 4 words out. */
void ts_philox(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

#endif
