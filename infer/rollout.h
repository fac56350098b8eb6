/* rollout.h: closed-loop evaluation of a policy on Push-T's legacy test seeds.
 * All episodes run in lockstep; every replanning point samples one action chunk per active
 * episode in a single batched call. The observation queue starts filled with the first
 * observation; each chunk's actions [n_obs_steps-1, n_obs_steps-1+n_action_steps) are executed.
 * An episode ends at success (coverage > 0.95) or after 300 steps; its score is its max
 * reward. The policy sees the simulator's observation in its checkpoint's obs-key order
 * (keypoint / keypoint_recorded: 18, agent_pos: 2, state: 5 = agent x, y, block x, y, angle);
 * another key, or widths that do not add up to the policy's obs_dim, is refused. Under mpirun
 * the episodes can be split over the ranks (ts_eval_opts.split). */
#ifndef TS_ROLLOUT_H
#define TS_ROLLOUT_H

#include "infer/policy.h"

/* The observation of Push-T env e for a policy of obs_dim trained on c's obs keys, in their
 * order (obs_dim floats into out); -1 with a message for a key the simulator does not produce
 * or widths that do not add up to obs_dim. */
struct ts_pusht;
int ts_pusht_policy_obs(const ts_config *c, int obs_dim, const struct ts_pusht *e, float *out);

typedef struct ts_eval_opts {
  int episodes, seed_start;
  uint64_t seed;       /* sampling noise */
  const char *gif_dir; /* NULL: no GIFs; else the first gif_count episodes as DIR/seed_S.gif */
  int gif_count;
  int quiet;
  /* Called (when set) for each chunk before it is sampled: its episode index, control step and
   * raw observation window (n_obs_steps * obs_dim); non-zero stops the evaluation. */
  int (*on_chunk)(void *user, int episode, int control_step, const float *obs_window);
  void *user;
  int split;           /* 1: every rank of the job (core/dist.h) calls this and runs its ts_dist_split
                          block of the episodes, drawing the noise of the whole lockstep batch, so
                          the results (gathered on every rank) equal a one-process evaluation's;
                          the speculative sampler, whose chains share one stream, is not split
                          (every rank runs every episode) */
} ts_eval_opts;

typedef struct ts_eval_result {
  int episodes;
  double mean_score, success_rate;
  long chunks, calls;
  double sample_seconds, ms_per_chunk, chunks_per_s, ms_per_call;
  ts_spec_stats spec; /* the speculative sampler's counters over this evaluation */
  double scores[1024];
  int success[1024];
} ts_eval_result;

/* Evaluate with sampler s. A speculative sampler without a work space gets one for the
 * evaluation; its control_step is set to each replanning point's step (all running episodes
 * replan at the same steps). */
int ts_eval_pusht(ts_policy *p, const ts_sampler *s, const ts_eval_opts *o, ts_eval_result *r);

#endif
