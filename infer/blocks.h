/* blocks.h: who picks the draft length L of each speculative round (infer/spec.h), and what a
 * round costs. The exact rule never sees the choice's reasons: a scheduler only reads what
 * earlier rounds of the chain did (and the chunk's observation and control step), so whatever
 * it picks the chunk is still distributed as DDPM's (docs/math.md §4, §8); it changes the cost.
 *
 * Schedulers behind one interface (ts_block_sched), picked per round:
 *  - fixed L (ts_block_fixed),
 *  - a static table L(t, h) over the chain step t and h = ts_spec_have_eps (ts_block_table),
 *    the best one computed by dynamic programming from measured per-step acceptance and a cost
 *    model (ts_block_dp),
 *  - a learned policy (rl/sched.h).
 * ts_sampler.blocks hands one to ts_policy_sample, ts_loop and ts_eval_pusht.
 *
 * The cost model (ts_cost_model) is what `tsdp bench cost` measured on a machine: the median ms
 * of one target call at each batch 1..n and of one batch-1 drafter call, in a small INI file:
 *   [cost]
 *   target_ms = 8.7, 9.1, ...    (batch 1, 2, ...)
 *   drafter_ms = 2.9
 *   threads = 1                  (informative: the threads it was measured with)
 * A round's cost is its drafter calls times drafter_ms, plus target_ms at its verification
 * rows, plus target_ms[batch 1] for each other target call (ts_cost_round). */
#ifndef TS_BLOCKS_H
#define TS_BLOCKS_H

#include "infer/scheduler.h"
#include "infer/spec.h"

/* What a scheduler may look at before a round. */
typedef struct ts_round_state {
  int t, T;             /* the chain's step before the round; the schedule's length */
  int have_eps;         /* ts_spec_have_eps before the round */
  int round;            /* rounds already made in this chain */
  int max_block;        /* the largest L the work space allows */
  int control_step;     /* the chunk's control step in its episode (ts_sampler.control_step) */
  const ts_spec_round_info *prev; /* the chain's previous round; NULL at its first */
  const float *cond;    /* the normalised observation window (cond_dim values) */
  int cond_dim, obs_dim;
} ts_round_state;

typedef struct ts_block_sched {
  const char *name;
  /* The next round's L (clamped to 1..max_block by the caller). */
  int (*block)(void *self, const ts_round_state *st);
  void *self;
  /* Optional, NULL for every exact scheduler: the acceptance tolerance of the round block() just
   * chose (ts_spec_set_tolerance). A scheduler that has it is LOSSY (rl.lossy): its chunks no
   * longer follow DDPM's law, and every report that uses it says so. */
  double (*tolerance)(void *self);
  /* Optional: what each round did, right after it (a trainer collecting rewards). */
  void (*after)(void *self, const ts_spec_round_info *in);
} ts_block_sched;

/* 1 when bs picks acceptance tolerances (LOSSY), 0 for an exact scheduler or NULL. */
int ts_block_lossy(const ts_block_sched *bs);

/* fixed L: self points at an int. */
ts_block_sched ts_block_fixed(const int *L);

/* A static schedule: L[h][t] for the round that starts at step t with have_eps h. */
typedef struct ts_block_table {
  int T;
  unsigned char L[2][TS_MAX_T];
} ts_block_table;
ts_block_sched ts_block_table_sched(const ts_block_table *tab);

/* One chain with a scheduler: begin, then rounds of the block it picks until finished, the
 * sample copied to x (horizon * act_dim). The scheduler sees the control step set on s
 * (ts_spec_set_control_step), the one place it comes from. A LOSSY scheduler's tolerance is
 * set on s before each round and reset to 0 (exact) when the chain ends. */
int ts_spec_sample_sched(ts_spec *s, const float *cond, int obs_dim, const ts_drafter *d, const ts_block_sched *bs,
                         ts_rng *rng, float *x);

#define TS_COST_MAX_BATCH 129

typedef struct ts_cost_model {
  int n;                                 /* batches 1..n measured */
  double target_ms[TS_COST_MAX_BATCH + 1]; /* [b] for batch b (index 0 unused) */
  double drafter_ms;
  int threads;
} ts_cost_model;

/* -1 with a line naming the file on a missing file, key, bad number or non-increasing batches;
 * a path that is not a regular file (a folder, FIFO or device) is refused before it is opened. */
int ts_cost_load(ts_cost_model *c, const char *path);
/* Written to PATH.tmp-PID and renamed into place; an existing PATH that is not a regular file
 * is refused. */
int ts_cost_save(const ts_cost_model *c, const char *path);
/* 0 when batch `need` was measured; otherwise -1 with one line naming path, the largest
 * measured batch and `why` (what needs it), so a schedule is never costed by extrapolation
 * beyond what bench cost measured. */
int ts_cost_check_batch(const ts_cost_model *c, const char *path, int need, const char *why);
/* Target call of batch b (b > n: linear extrapolation from the last two batches). */
double ts_cost_target(const ts_cost_model *c, int b);
double ts_cost_round(const ts_cost_model *c, const ts_spec_round_info *in);

/* Per-step acceptance accumulated from rounds: draft k of a round that starts at t is the step
 * at time t - k + 1; rounds' accepted drafts count as successes and the rejected one as a
 * failure. The frozen drafter's draft 1 (always accepted) is not counted. */
typedef struct ts_accept_table {
  int T;
  double ok[TS_MAX_T], checked[TS_MAX_T];
} ts_accept_table;
void ts_accept_add(ts_accept_table *a, const ts_spec_round_info *in, int frozen);
/* ok / checked, with steps never checked taking the nearest checked neighbour's rate. */
void ts_accept_rates(const ts_accept_table *a, double *rate);

/* The static schedule with the least expected cost per chain over L in set (n values), under
 * the model where the draft at step t is accepted independently with probability rate[t]:
 *   V(t, h) = min_L [ cost(L, t, h) + sum_k P(first rejection at draft k) V(t - k, 0)
 *                     + P(all K accepted) V(t - K, 1) ],   K = min(L, t),
 * with cost = K drafter_ms + target_ms[K + 1 - h] (learned drafter) or target_ms[K] plus
 * target_ms[1] when h = 0 (frozen: draft 1 always accepted), and the t = 0 round costing
 * target_ms[1] when h = 0. Fills tab, returns V(T-1, 0) in ms. */
double ts_block_dp(const double *rate, int T, const ts_cost_model *c, int frozen, const int *set, int n,
                   ts_block_table *tab);
/* Expected cost per chain (ms) of a given static table under the same model. */
double ts_block_eval(const double *rate, int T, const ts_cost_model *c, int frozen, const ts_block_table *tab);

#endif
