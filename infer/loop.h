/* loop.h: the policy loop for one robot (or one environment), the piece to embed in a
 * control program: feed it each new observation, get back the action to execute.
 *
 * It keeps the last n_obs_steps observations (filled with the first one after a reset) and a
 * queue of actions; when the queue is empty it samples a chunk from the observation history
 * and queues actions [n_obs_steps - 1, n_obs_steps - 1 + n_action_steps) of it (docs/math.md §3).
 * ts_eval_pusht runs the same rule for many environments in lockstep. No allocation after
 * ts_loop_init: it reserves the policy's buffers, and for the speculative sampler holds its own
 * work space (unless the sampler brings one). A speculative sampler may carry a block scheduler
 * (ts_sampler.blocks, infer/blocks.h): the loop tells it each chunk's control step. A LOSSY
 * scheduler (ts_block_lossy, rl.lossy) relaxes the exact rule: the loop's actions then no longer
 * follow the base policy's law (check ts_block_lossy before deploying one). The drafter can be
 * any of infer/spec.h's: `static const ts_drafter x0 = {.x0 = 1};` is the training-free x0
 * drafter, and ts_drafter_load (infer/drafter.h) loads a learned one, a pair or a hybrid by
 * name, as the CLI's --drafter does. */
#ifndef TS_LOOP_H
#define TS_LOOP_H

#include "infer/policy.h"

typedef struct ts_loop {
  ts_policy *p;
  ts_sampler sampler; /* a copy; its drafter / target / spec must outlive the loop */
  ts_spec *spec;      /* spec work space the loop made (NULL when the sampler brought one) */
  ts_rng rng;
  float *hist;  /* (n_obs_steps, obs_dim) raw */
  float *chunk; /* (horizon, act_dim) */
  int queued, next, have_obs;
  int step;     /* control steps since the reset (the sampler's control_step for a new chunk) */
  long chunks;  /* chunks sampled since init */
} ts_loop;

/* Checks the sampler (ts_sampler_check) and sizes everything the loop will use. */
int ts_loop_init(ts_loop *l, ts_policy *p, const ts_sampler *s, uint64_t seed);
void ts_loop_free(ts_loop *l);
void ts_loop_reset(ts_loop *l); /* new episode: forget the history and the queue */
/* Push observation obs (obs_dim raw values) and write the action to execute now. */
int ts_loop_act(ts_loop *l, const float *obs, float *action);

#endif
