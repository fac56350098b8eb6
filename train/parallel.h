/* parallel.h: data-parallel training steps over the job's ranks (core/dist.h), shared by the
 * trainers.
 *
 * A global batch of bs rows is cut into S gradient shards (train.grad_shards; 0 means one per
 * rank), shard s being rows ts_dp_rows(s); rank r computes the S/N shards
 * [r S/N, (r+1) S/N) one after the other, each from zeroed gradients with its loss weighted
 * rows / bs, and their gradients are added in shard order: first on the rank, then across
 * ranks in rank order (ts_dist_allreduce_sum). Every rank then holds the gradient of the whole
 * batch's mean loss and takes the same optimiser and EMA step, so the weights stay identical
 * on every rank without being sent.
 *
 * What makes a run independent of the rank count: every rank draws the whole batch's noise and
 * timesteps from the one run stream (a few thousand numbers, cheap) and uses its rows, so the
 * stream, the weights and the checkpoint are the same on every rank and for every N; a random
 * choice inside a shard's forward (dropout) uses the per-shard stream ts_dp_shard_rng, derived
 * from the seed, the step and the shard. Hence:
 *  - a run on N ranks with one shard per rank equals, bit for bit, a one-process run with
 *    train.grad_shards = N (the same shards, added in the same order);
 *  - against a one-process run with one shard (the default) it differs only by float
 *    summation order;
 *  - a run checkpointed on N ranks resumes on any M ranks (the global batch is the same).
 * With S = 1 and one rank nothing here costs anything: the gradients stay where backward put
 * them (the single-process step is unchanged).
 *
 * Rank 0 alone logs and writes checkpoints; ts_dp_agree shares its verdict so every rank stops
 * together, and ts_dp_sync_state hands the resumed state from rank 0 to all. */
#ifndef TS_PARALLEL_H
#define TS_PARALLEL_H

#include "core/checkpoint.h"
#include "core/optim.h"
#include "core/rng.h"
#include "core/tensor.h"

typedef struct ts_dp {
  int rank, size;     /* this process in the job (core/dist.h) */
  int shards;         /* S, a multiple of size */
  int first, count;   /* this rank's shards [first, first + count) */
  ts_tensor **params; /* whose grads are summed */
  int n;
  int64_t total;      /* gradient floats */
  float *acc;         /* total + 1 floats (the loss last); NULL when S = 1 and one rank */
  int added;          /* shards added since ts_dp_begin */
  double loss;        /* S = 1, one rank: the step's loss */
  /* Wall seconds in ts_dp_reduce: waiting for the slowest rank, then the all-reduce itself. The
   * two are told apart only when TSDP_DP_PROFILE is set in the environment (a barrier before the
   * reduce; otherwise the wait counts as reduce time). */
  double wait_s, reduce_s;
  long reduces;
  int profile;
} ts_dp;

/* shards_cfg: train.grad_shards. -1 with a message naming the key when it is not a multiple of
 * the rank count. */
int ts_dp_init(ts_dp *dp, int shards_cfg, ts_tensor **params, int n);
void ts_dp_free(ts_dp *dp);
/* Rows [*lo, *hi) of a batch of bs that shard s holds. */
void ts_dp_rows(const ts_dp *dp, int s, int bs, int *lo, int *hi);
/* Rows of the batch this rank's shards hold together. */
void ts_dp_my_rows(const ts_dp *dp, int bs, int *lo, int *hi);
/* The weight of a shard of `rows` in a batch of bs: rows / bs (exactly 1 for the whole batch). */
float ts_dp_weight(int rows, int bs);
/* The dropout stream of shard s at step `step` (when S = 1 and one rank, use the run stream
 * as before instead: ts_dp_legacy). */
void ts_dp_shard_rng(ts_rng *r, uint64_t seed, long step, int s);
/* 1 when the step is the single-process one: one shard, one rank. */
int ts_dp_legacy(const ts_dp *dp);

/* Start a step: nothing added yet. */
void ts_dp_begin(ts_dp *dp);
/* After a shard's backward into zeroed gradients: add them (and its weighted loss). */
void ts_dp_add(ts_dp *dp, double weighted_loss);
/* Sum over the rank's shards and the ranks, into the params' grads on every rank. Returns the
 * batch's loss (the sum of the weighted shard losses). */
double ts_dp_reduce(ts_dp *dp);

/* One line on what the all-reduce cost, e.g. "data parallel: 2 ranks x 1 shard, all-reduce of
 * 0.26 M floats 1.9 ms/step (wait for the slowest rank 0.4 ms), 3.1% of 61.0 ms/step". */
void ts_dp_report(const ts_dp *dp, double step_seconds, long steps, char *buf, size_t n);

/* Rank 0's rc to every rank (rc of the other ranks is ignored): after rank-0-only work. */
int ts_dp_agree(int rc);
/* Rank 0's tensors, AdamW moments and step, RNG state and *step to every rank. */
void ts_dp_sync_state(const ts_named *t, int n, ts_adamw *opt, ts_rng *rng, long *step);

#endif
