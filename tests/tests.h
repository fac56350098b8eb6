/* tests.h: shared helpers for the Check suites. */
#ifndef TS_TESTS_H
#define TS_TESTS_H

#include <check.h>
#include "core/tensor.h"

Suite *suite_core(void);
Suite *suite_ops(void);
Suite *suite_grad(void);
Suite *suite_train(void);
Suite *suite_data(void);
Suite *suite_sim(void);
Suite *suite_unet(void);
Suite *suite_transformer(void);
Suite *suite_infer(void);
Suite *suite_cli(void);
Suite *suite_run(void);
Suite *suite_config(void);
Suite *suite_distill(void);
Suite *suite_plot(void);
Suite *suite_rl(void);
Suite *suite_sched(void);
Suite *suite_dist(void);
Suite *suite_harden(void);
Suite *suite_pipeline(void);

/* Path under tests/fixtures, or under $TSDP_DATA_DIR (NULL when that variable is unset). */
const char *fixture_path(const char *name);
const char *data_path(const char *rel);
/* A two-episode Push-T-shaped zarr (lengths 12 and 9) under root (test_data.c). */
void make_pusht_zarr(const char *root, int with_nan);

/* The PNG at path as w x h RGB bytes (malloc'd; fails the test when unreadable; test_plot.c). */
unsigned char *fix_png(const char *path, int *w, int *h);
/* Record that the calling test is skipped, and why (one line on stderr and in the run's skip
 * registry); the suite ends with "skipped N check(s)" naming each, and fails when
 * TSDP_FAIL_ON_SKIP=1 (CI, which has the data and the test dependencies). Use as
 * `SKIP_IF(cond, "why"); ` at the top of a test: the test returns after recording it. */
void test_skip(const char *test, const char *why);
#define SKIP_IF(cond, why)            \
  do {                                \
    if (cond) {                       \
      test_skip(__func__, (why));     \
      return;                         \
    }                                 \
  } while (0)

/* A fresh temporary folder for this process (created once). */
const char *tmp_dir(void);

/* A float32 view of dataset `name` (malloc'd; fails the test when absent); *n elements. */
struct ts_h5;
float *fix_floats(struct ts_h5 *f, const char *name, int64_t *n);
/* The same as an arena tensor of the dataset's shape. */
ts_tensor *fix_tensor(ts_ctx *c, struct ts_h5 *f, const char *name);

/* Dataset `name` of the HDF5 file at path as floats (malloc'd; fails the test when absent). */
float *fix_read_all(const char *path, const char *name, int64_t *n);
/* The datasets `names` of the files a and b are bit-identical (a resumed run's checkpoint
 * against an uninterrupted one's). */
void fix_same_datasets(const char *a, const char *b, const char *const *names, int n);

/* Load every parameter from the fixture's params/<name> (failing the test when one is missing)
 * and check that the fixture's keys are exactly the model's. */
struct ts_params;
void fix_load_params(struct ts_h5 *f, const struct ts_params *p);
/* The largest relative error (rel_err, floor 1e-2) of the parameters' gradients against the
 * fixture's grads/<name>; *worst gets that parameter's name. */
double fix_worst_grad(ts_ctx *c, struct ts_h5 *f, const struct ts_params *p, const char **worst);

/* max |a - b| / max(max |b|, floor): the relative error the fixture tests report. */
double rel_err(const float *a, const float *b, int64_t n, double floor);
/* Two-sample energy-distance test on n rows of d floats each (X vs Y): returns the permutation
 * p-value over `perms` label shuffles drawn from `seed`; *stat gets the energy distance. */
double energy_pvalue(const float *X, const float *Y, int n, int d, int perms, uint64_t seed, double *stat);

/* The tiny U-Net recipe (60 steps, batch 4) and the two-episode fixture dataset as HDF5
 * (test_infer.c). */
struct ts_config;
void infer_tiny_cfg(struct ts_config *c);
const char *infer_tiny_data(void);

#endif
