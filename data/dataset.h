/* dataset.h: demonstration datasets in robomimic's low-dim HDF5 layout, the min-max
 * normaliser, the episode split and the padded window sampler (Diffusion Policy's
 * SequenceSampler).
 *
 * File layout (robomimic low-dim, so robomimic files load with no conversion):
 *   data/                       attrs: total (steps), env_args (JSON text)
 *   data/demo_N/                attrs: num_samples
 *   data/demo_N/actions         (T, action_dim) float32
 *   data/demo_N/obs/<key>       (T, ...) float32, e.g. keypoint (T, 18), agent_pos (T, 2)
 * Episodes are ordered by N. */
#ifndef TS_DATASET_H
#define TS_DATASET_H

#include "core/h5io.h"
#include "core/rng.h"
#include <stdint.h>

/* The widest action or observation row a dataset may have (a file's dims are checked against
 * it and against core/sizes.h's byte limit before anything is allocated). */
#define TS_MAX_FEATURES (1 << 16)

typedef struct ts_dataset {
  int n_episodes;
  int64_t n_steps;
  int64_t *ep_start; /* n_episodes + 1 offsets into the step arrays */
  int act_dim, obs_dim;
  float *actions;    /* (n_steps, act_dim) */
  float *obs;        /* (n_steps, obs_dim): the requested obs keys concatenated in order */
} ts_dataset;

/* What the Push-T importer did. */
typedef struct ts_import_report {
  int episodes;
  int64_t steps;
  double keypoint_max_err; /* max |derived - recorded| over all keypoint coordinates, px; -1 if
                              the zarr has no keypoint array */
  int64_t missing_chunks;  /* chunks absent from the zarr, read as their arrays' fill value */
  char warning[512];       /* "" or one line naming each array with missing chunks and how many */
} ts_import_report;

/* Convert Diffusion Policy's Push-T zarr ReplayBuffer to the layout above. Keypoints are
 * derived from the block pose (sim/pusht.h) and compared with the recorded ones. Refuses NaN
 * or Inf in actions or states, inconsistent lengths and bad episode_ends. An optional array
 * (keypoint, n_contacts) is absent only when its folder does not exist: a folder with a bad
 * .zarray is an error. An array whose chunks are all missing is refused (it would import as
 * all fill value); some missing chunks are legal zarr and reported in rep->warning. */
int ts_pusht_import_zarr(const char *zarr_dir, const char *out_h5, ts_import_report *rep);

/* Load actions and the named obs keys (each flattened past the time axis). */
int ts_dataset_load(const char *path, const char *const *obs_keys, int n_keys, ts_dataset *d);
void ts_dataset_free(ts_dataset *d);

/* ---- normaliser: per dimension, min-max to [-1, 1]; a range below 1e-4 gets scale 1 and
 * maps the min to 0 (Diffusion Policy's SingleFieldLinearNormalizer, mode "limits") ---- */
typedef struct ts_normalizer {
  int dim;
  float scale[64], offset[64], min[64], max[64];
} ts_normalizer;

/* Fit on the rows of x (n, dim) whose episode is selected by mask (NULL = all). */
int ts_norm_fit(ts_normalizer *nz, const ts_dataset *d, int which /* 0 actions, 1 obs */,
                const uint8_t *episode_mask);
void ts_norm_apply(const ts_normalizer *nz, float *x, int64_t rows);
void ts_norm_unapply(const ts_normalizer *nz, float *x, int64_t rows);
int ts_norm_save(ts_h5 *f, const char *group, const ts_normalizer *nz);
int ts_norm_load(ts_h5 *f, const char *group, ts_normalizer *nz);

/* ---- episode split: val_ratio of the episodes (at least 1, at most n-1) drawn with the
 * project RNG; train = the first max_train (0 = all) of the rest, in episode order ---- */
void ts_episode_split(int n_episodes, double val_ratio, int max_train, uint64_t seed, uint8_t *train_mask,
                      uint8_t *val_mask);

/* ---- windows: every start from -pad_before to T - horizon + pad_after of each selected
 * episode; out-of-episode frames repeat the first/last frame (edge padding) ---- */
typedef struct ts_windows {
  int64_t n;
  int horizon;
  int64_t (*idx)[4]; /* buffer_start, buffer_end, sample_start, sample_end */
} ts_windows;

int ts_windows_build(const ts_dataset *d, const uint8_t *episode_mask, int horizon, int pad_before, int pad_after,
                     ts_windows *w);
void ts_windows_free(ts_windows *w);
/* Window i: obs (horizon, obs_dim) and actions (horizon, act_dim); either may be NULL. */
void ts_windows_get(const ts_dataset *d, const ts_windows *w, int64_t i, float *obs, float *act);
/* The step within its episode of frame h (0 .. horizon-1) of window i, as ts_windows_get fills
 * it (a padded frame is the episode's first or last step). */
int64_t ts_windows_step(const ts_dataset *d, const ts_windows *w, int64_t i, int h);
/* The episode holding global step idx (0 .. n_steps-1), by bisection of ep_start. */
int ts_dataset_episode_of(const ts_dataset *d, int64_t idx);

#endif
