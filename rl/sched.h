/* sched.h: the speculative block-scheduling problem and its PPO scheduler (docs/math.md §8).
 *
 * One decision per speculative round (infer/spec.h): the state is what the round may know
 * (ts_sched_features: the chain step t, whether the target's eps is already known, the
 * previous round's drafted / accepted lengths and |Delta| statistics, the first-round flag,
 * the chunk's control step in its episode, and a summary of the normalised observation: the
 * last frame's final two values (Push-T: the agent's position), the centroid of its other
 * values taken as (x, y) pairs (Push-T: the block's keypoints) and the motion of the final two
 * values since the previous frame); the action is an index into [rl] blocks; the reward is
 * minus the round's cost from the cost model (infer/blocks.h) in units of the static DP
 * schedule's expected cost per chunk, so an episode's return is minus the chunk's modelled
 * wall-clock cost relative to static-best (-1: as good; above -1: better), a scale of order
 * one that keeps the critic's loss from swamping the shared gradient clip. An episode is one
 * chunk's chain on a recorded observation window.
 *
 * Exactness: the scheduler only chooses L from the past of the chain, so the chunk keeps
 * DDPM's law (infer/blocks.h) and the observation stream of closed-loop episodes does not
 * depend on it: windows recorded with DDPM (or any sampler of the same law) are valid
 * training data for any scheduler.
 *
 * LOSSY relaxed mode (rl.lossy = true, off by default): the action is a pair (L, tau) from
 * rl.blocks x rl.tolerances, and a draft the exact test rejects is still kept when its |Delta|
 * <= tau (ts_spec_set_tolerance), which saves rounds at the price of DDPM's law. Since the
 * chunks' law now depends on the scheduler, recorded windows are no longer valid training data:
 * each PPO update runs rl.sim_episodes closed-loop Push-T episodes with the scheduler in the
 * loop (seeds from rl.sim_seed_start), one PPO episode per Push-T episode; each round's reward
 * is minus its modelled cost (the unit above) and the episode's last round also gets
 * rl.score_weight x the Push-T score (max coverage, 0..1), so the return trades the chunks' cost
 * against the task. Such a scheduler's file says lossy = 1, its rows and reports are labelled
 * LOSSY, and it runs on one process (no chain shards).
 *
 * Files:
 *  - rollouts (tsdp rl record): obs (N, n_obs_steps * obs_dim) raw windows, control_step (N),
 *    episode (N), seed (N), episode by episode in control-step order; root attributes ckpt,
 *    sampler, seed_start, episodes, mean_score.
 *  - scheduler (tsdp rl train): a train/run.h checkpoint of the PPO agent (ppo/...) with root
 *    attributes kind = "block_scheduler", lossy (0 or 1), base_hash, drafter ("frozen" or its weights' hash),
 *    fixed_best, static_expected_ms, fixed_best_expected_ms, and datasets sched/blocks,
 *    sched/accept_t (T) and sched/static_L (2, T): the DP's static schedule. */
#ifndef TS_SCHED_H
#define TS_SCHED_H

#include "core/config.h"
#include "infer/blocks.h"
#include "infer/policy.h"
#include "infer/rollout.h"
#include "rl/ppo.h"

#define TS_SCHED_FEATURES 15

void ts_sched_features(const ts_round_state *st, float *out);

typedef struct ts_rollouts {
  int n, cond_raw; /* windows; floats per raw window (n_obs_steps * obs_dim) */
  float *obs;
  int *control_step, *episode;
} ts_rollouts;

/* Runs `o->episodes` closed-loop Push-T episodes from o->seed_start with sampler s and writes
 * every chunk's window to out. res (may be NULL) gets the evaluation's result. */
int ts_rollouts_record(ts_policy *p, const ts_sampler *s, const ts_eval_opts *o, const char *sampler_name,
                       const char *ckpt, const char *out, ts_eval_result *res);
/* -1 with one line on a missing file, a window width other than the policy's, or an
 * observation that is NaN or Inf (refused here, not as a NaN loss in PPO). */
int ts_rollouts_load(ts_rollouts *r, const char *path, const ts_policy *p);
void ts_rollouts_free(ts_rollouts *r);

typedef struct ts_sched_train_opts {
  const char *base, *drafter, *rollouts, *out; /* drafter NULL or "frozen": the frozen drafter */
  int fresh, quiet;
  long stop_after; /* > 0: return after this many updates in this invocation */
} ts_sched_train_opts;

typedef struct ts_sched_train_result {
  long updates;
  int resumed_from;
  double final_cost_ms, final_mean_L, final_entropy;
  double static_ms, fixed_best_ms; /* the DP's expected ms per chunk; the best fixed L's */
  double final_score;              /* LOSSY mode: mean Push-T score of the last logged slice */
  int fixed_best;
  double seconds;
} ts_sched_train_result;

/* PPO on the scheduling problem over the rollouts' windows, through train/run.h (checkpoint,
 * bit-exact resume, <out>.csv, PNG curves of cost per chunk, return, entropy and mean L).
 * Under mpirun -np N each update's chains are collected over the ranks (rl.chain_shards; how,
 * in sched.c's header): N ranks give the checkpoint of one process with rl.chain_shards = N. At
 * the end: <out>.L_t.png (the greedy scheduler's mean L by diffusion step over training windows,
 * with the static schedule, h = 0) and <out>.episode.png (for the first recorded episode, L and
 * the acceptance it met against the control step). */
int ts_sched_train(const ts_config *cfg, const ts_sched_train_opts *o, ts_sched_train_result *r);

/* The learned scheduler of a PPO agent over blocks (n values), greedy: for tests and tools.
 * LOSSY agents (rl.lossy) act over n x n_tol pairs: action k means L = blocks[k % n] and
 * tolerance tols[k / n]; tols NULL (or n_tol 0) is the exact agent over blocks alone. */
typedef struct ts_sched_agent {
  ts_ppo *ppo;
  const int *blocks;
  int n;
  const double *tols;
  int n_tol;
  double tol; /* the tolerance of the last choice */
} ts_sched_agent;
ts_block_sched ts_sched_agent_sched(ts_sched_agent *a);

/* A trained scheduler, loaded for a base. Its three schedulers: `learned` (the PPO policy's
 * most probable L; named "rl-LOSSY" with a tolerance hook when trained with rl.lossy), `stat`
 * (the static DP schedule) and `fixed` (the best fixed L by the model); the last two are exact. */
typedef struct ts_sched_model {
  ts_sched_agent agent;
  ts_config cfg;
  ts_ppo ppo;
  ts_block_table table;
  int fixed_best;
  double accept_t[TS_MAX_T];
  char drafter[32];
  int lossy; /* 1: `learned` is LOSSY */
  ts_block_sched learned, stat, fixed;
} ts_sched_model;

/* -1 with a line naming the file when it is not a scheduler, was trained for another base, or
 * (drafter_id not NULL: "frozen" or a drafter's hash) for another drafter. */
int ts_sched_load(ts_sched_model *m, const char *path, const ts_policy *base, const char *drafter_id);
void ts_sched_model_free(ts_sched_model *m);

#endif
