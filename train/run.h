/* run.h: the machinery of one training run, shared by every trainer (base training, drafter
 * distillation, PPO): the history, checkpoints, resume with the recipe check, the CSV log and
 * PNG curves, the progress line with rate and ETA, the output-folder probe and a periodic
 * evaluation hook. A trainer keeps its data, model, loss and optimiser step and drives the
 * run from one readable loop:
 *
 *   ts_run *run;
 *   if (ts_run_open(&run, &spec)) return -1;         // probe the folder, sweep stale temps
 *   long step = ts_run_resume(run);                   // 0, the step to continue from, or -1
 *   for (; step < stop; step++) {
 *     ... forward, backward, optimiser step ...
 *     if (log due)        ts_run_log(run, step + 1, values);      // a history row + progress
 *     if (checkpoint due) ts_run_checkpoint(run, step + 1, writer, user);
 *   }
 *   ts_run_close(run);
 *
 * The checkpoint is one HDF5 file at spec.out, written to <out>.tmp-<pid> and renamed into
 * place (a kill never leaves a broken file):
 *   <name>                      every spec.tensors entry under its own name (model/..., ema/...)
 *   optim/m/<name>, optim/v/<name> and attribute optim.step: AdamW moments of the first
 *                               spec.opt->n tensors
 *   root log_partial_n, log_partial_<i>: spec.partial (the log interval's sums so far)
 *   root attributes             config (spec.config), step, rng_seed, rng_counter, rng_avail
 *   what the trainer's writer adds (base training: normalizer/obs, normalizer/action)
 *   log/step, log/<column>      float32, one entry per history row
 * Beside it: <out>.csv (header "step,<columns>", a row per log, NaN cells empty) and <out>.png,
 * one figure titled with the checkpoint's file name and its last step, a panel per plotted
 * column against step (1 to 3 side by side, more in a grid; markers on sparse columns).
 *
 * Resume: when spec.out exists and spec.fresh is 0, its config must equal spec.config except
 * in the keys spec.may_change names, or the resume is refused naming the section and both
 * lines: "cannot resume from OUT (OUT [train]: 'lr = 0.001' in the checkpoint, 'lr = 0.002'
 * now); pass --fresh to start over". With spec.fresh the existing file is not read and stays
 * in place until the run's first checkpoint replaces it.
 *
 * Every pointer in the spec must stay valid until ts_run_close; the run owns none of them.
 * Functions return 0 (or the documented value) on success and -1 with ts_fail's message. */
#ifndef TS_RUN_H
#define TS_RUN_H

#include "core/checkpoint.h"
#include "core/h5io.h"
#include "core/optim.h"
#include "core/params.h"
#include "core/rng.h"
#include <stddef.h>

typedef struct ts_run ts_run;

/* The tensors a trainer's checkpoint holds for one network: model/<name> for each of P's
 * parameters, then ema/<name> for the EMA shadows, then `extra` zeroed slots the trainer fills
 * (names strdup'd, freed by ts_named_free(list, 2 P->n + extra)). */
ts_named *ts_run_model_tensors(const ts_params *P, ts_tensor **ema_shadow, int extra);

/* One history column: a double per row, saved as log/<name>. */
typedef struct ts_run_col {
  const char *name; /* dataset log/<name> and the CSV header */
  const char *csv;  /* printf format of a CSV cell (NULL: "%.6g"); NaN is written as an empty cell */
  const char *show; /* printf format in the progress line, e.g. "loss %.5f" (NULL: not shown) */
  int plot;         /* 0: no panel in <out>.png; 1: linear y; 2: log-scale y; 3: y on 0..1 (a
                       rate or score) */
  int per_s;        /* the trainer logs a count since the previous row (samples, env steps);
                       the run stores count / wall seconds since that row */
  int optional;     /* may be absent from older checkpoints: its rows then read as NaN */
} ts_run_col;

/* Adds trainer-specific objects (e.g. normalisers) to the checkpoint being written. */
typedef int (*ts_run_writer)(ts_h5 *f, void *user);
/* Evaluates the checkpoint of `step` steps committed at `path` (a copy beside spec.out,
 * <out>.eval.tmp-PID, removed afterwards); *score lands in the spec's eval column of the latest
 * history row, and then the checkpoint is written to spec.out, so a kill during the evaluation
 * resumes from the previous checkpoint and evaluates again. */
typedef int (*ts_run_eval)(void *user, const char *path, long step, double *score);

typedef struct ts_run_spec {
  const char *out;                /* the checkpoint path */
  const char *config;             /* ts_config_to_ini text: the root `config` attribute */
  const char *const *may_change;  /* NULL-terminated "section.key" or "section.*" entries a
                                     resume may change (NULL: none) */
  const ts_named *tensors;        /* what a checkpoint holds */
  int n_tensors;
  ts_rng *rng;                    /* the run's RNG stream, checkpointed (NULL: none) */
  ts_adamw *opt;                  /* its moments match tensors[0..opt->n) (NULL: none) */
  const ts_run_col *cols;         /* the history columns after step */
  int n_cols;
  long total_steps;               /* for "step S/T" and the ETA */
  long steps_per_epoch;           /* > 0: the progress line names the epoch */
  int eval_every;                 /* > 0 with eval set: evaluate at checkpoints on its multiples */
  ts_run_eval eval;
  void *eval_user;
  const char *eval_col;           /* the column the score lands in */
  double *partial;                /* the trainer's sums over the current log interval (loss sums,
                                     step and sample counts since its last ts_run_log), saved with
                                     every checkpoint as the root attributes log_partial_n and
                                     log_partial_<i> (float64) and restored by ts_run_resume, so a
                                     checkpoint between two log rows resumes to the same next row
                                     (NULL: none; absent from an older checkpoint: zeros) */
  int n_partial;
  const char *title_prefix;       /* put before the curves' title, e.g. "LOSSY " (NULL: none) */
  int fresh;                      /* do not resume; replace the old file at the first checkpoint */
  int quiet;                      /* no progress lines */
} ts_run_spec;

/* Checks the spec, removes stale temporaries next to spec.out left by processes that are no
 * longer alive (<out>.tmp-PID, <out>.csv.tmp-PID, <out>[.<name>].png.tmp-PID, the evaluated
 * copy <out>.eval.tmp-PID and its own temporary <out>.eval.tmp-PID.tmp-PID) and fails
 * now, not at the first checkpoint, if the folder is not writable. */
int ts_run_open(ts_run **run, const ts_run_spec *spec);
/* Restores tensors, RNG, AdamW state and history from spec.out after the recipe check, and
 * writes <out>.csv and the curves from that history (a kill after the checkpoint's rename may
 * have left them a checkpoint behind). History values are held as float32, as the checkpoint
 * stores them, so a resumed run's CSV and curves equal an uninterrupted one's.
 * Returns the step to continue from (0 when there is nothing to resume, or spec.fresh), or -1.
 * Starts the clock of the rate and the ETA. */
long ts_run_resume(ts_run *run);
/* Appends a history row (step, then one value per column) and prints the progress line
 * "step S/T [epoch E] <shown columns> | ETA 1h02m" to stderr unless quiet. */
int ts_run_log(ts_run *run, long step, const double *values);
/* Writes the checkpoint after `step` steps (tensors, state, writer's objects, history),
 * runs the evaluation when due and writes <out>.csv and the PNG curves. */
int ts_run_checkpoint(ts_run *run, long step, ts_run_writer writer, void *user);
void ts_run_close(ts_run *run);

/* Index of the named column, or -1. */
int ts_run_col_index(const ts_run *run, const char *name);
/* History rows, and row i as (step, value of each column). */
int ts_run_rows(const ts_run *run);
const double *ts_run_row(const ts_run *run, int i);
/* Wall seconds spent in ts_run_checkpoint (writing, evaluating, CSV/PNG). */
double ts_run_io_seconds(const ts_run *run);

/* "1h02m" or "3m07s" ("?" when negative or absurd). */
void ts_fmt_duration(double seconds, char *buf, size_t n);

#endif
