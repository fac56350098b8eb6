#include "rng.h"
#include <math.h>

void ts_philox(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
  for (int i = 0; i < 10; i++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

void ts_rng_init_stream(ts_rng *r, uint64_t seed, uint64_t stream) {
  r->seed = seed;
  r->counter = stream << 40; /* 2^40 blocks per stream */
  r->avail = 0;
}

void ts_rng_init(ts_rng *r, uint64_t seed) { ts_rng_init_stream(r, seed, 0); }

static void refill(ts_rng *r) {
  uint32_t ctr[4] = {(uint32_t)r->counter, (uint32_t)(r->counter >> 32), 0x7473u, 0x6470u};
  uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
  ts_philox(ctr, key, r->buf);
  r->counter++;
  r->avail = 4;
}

void ts_rng_set_state(ts_rng *r, uint64_t seed, uint64_t counter, int avail) {
  r->seed = seed;
  r->avail = 0;
  r->counter = counter;
  if (avail > 0 && avail <= 4 && counter > 0) {
    r->counter = counter - 1;
    refill(r);
    r->avail = avail;
  }
}

uint32_t ts_rng_u32(ts_rng *r) {
  if (r->avail == 0) refill(r);
  return r->buf[--r->avail];
}

float ts_rng_uniform(ts_rng *r) { return (float)(ts_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double ts_rng_uniform_d(ts_rng *r) {
  uint64_t a = ts_rng_u32(r) >> 5, b = ts_rng_u32(r) >> 6; /* 27 + 26 bits */
  return ((double)(a * 67108864u + b) + 0.5) * (1.0 / 9007199254740992.0);
}

float ts_rng_normal(ts_rng *r) {
  double u1 = ts_rng_uniform_d(r), u2 = ts_rng_uniform_d(r);
  return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void ts_rng_fill_normal(ts_rng *r, float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = ts_rng_normal(r);
}

void ts_rng_fill_uniform(ts_rng *r, float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = ts_rng_uniform(r);
}

uint32_t ts_rng_below(ts_rng *r, uint32_t n) {
  uint32_t lim = (uint32_t)(-n) % n; /* reject the low 2^32 mod n values */
  for (;;) {
    uint32_t v = ts_rng_u32(r);
    if (v >= lim) return v % n;
  }
}

void ts_rng_shuffle(ts_rng *r, int *a, int n) {
  for (int i = n - 1; i > 0; i--) {
    int j = (int)ts_rng_below(r, (uint32_t)i + 1), t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}
