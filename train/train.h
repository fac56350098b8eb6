/* train.h: base Diffusion Policy training (the reference recipe: AdamW, cosine LR with
 * warm-up, EMA, epsilon-prediction MSE on random timesteps).
 *
 * The run checkpoints to `out` every checkpoint_every steps and at the end (model, EMA,
 * AdamW moments, RNG, step, normalisers, config, loss history); rerunning the same command
 * after a kill resumes from the last checkpoint and continues bit-for-bit as if never
 * stopped. Beside the checkpoint it writes <out>.csv (the log) and <out>.png (loss and
 * evaluation score against step).
 * The checkpoint, resume and log machinery is train/run.h, shared with the other trainers;
 * this file's trainer keeps the data, the model, the loss and the optimiser step. */
#ifndef TS_TRAIN_H
#define TS_TRAIN_H

#include "core/config.h"
#include "train/plot.h" /* ts_plot_png, declared here before train/run.c */

typedef struct ts_train_opts {
  const char *data;      /* dataset .h5 */
  const char *out;       /* checkpoint .h5 */
  int quiet;             /* no progress lines */
  int fresh;             /* ignore an existing checkpoint at out; it stays until this run
                            writes its first checkpoint over it */
  long stop_after;       /* > 0: return after this many steps in this invocation (train in
                            slices; the tests use it to simulate a kill after a checkpoint) */
} ts_train_opts;

typedef struct ts_train_result {
  long steps;
  double final_loss, seconds, samples_per_s;
  double io_seconds;         /* of seconds: checkpoints, evaluations, CSV/PNG */
  double step_samples_per_s; /* samples / (seconds - io_seconds): the training steps alone */
  int resumed_from;
} ts_train_result;

int ts_train(const ts_config *cfg, const ts_train_opts *o, ts_train_result *res);


#endif
