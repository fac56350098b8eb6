#include "tests.h"
#include "core/error.h"
#include "core/h5io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

const char *fixture_path(const char *name) {
  static _Thread_local char buf[1024];
  snprintf(buf, sizeof buf, "tests/fixtures/%s", name);
  return buf;
}

const char *data_path(const char *rel) {
  static _Thread_local char buf[1024];
  const char *d = getenv("TSDP_DATA_DIR");
  if (!d || !*d) return NULL;
  snprintf(buf, sizeof buf, "%s/%s", d, rel);
  return access(buf, R_OK) == 0 ? buf : NULL;
}

const char *tmp_dir(void) {
  static char dir[256];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "/tmp/tsdp-test-XXXXXX");
    if (!mkdtemp(dir)) {
      perror("mkdtemp");
      abort();
    }
  }
  return dir;
}

float *fix_floats(ts_h5 *f, const char *name, int64_t *n) {
  int nd;
  int64_t d[TS_MAXDIM];
  float *x = ts_h5_read_f32(f, name, &nd, d);
  ck_assert_msg(x, "%s", ts_error());
  int64_t count = 1;
  for (int i = 0; i < nd; i++) count *= d[i];
  if (n) *n = count;
  return x;
}

ts_tensor *fix_tensor(ts_ctx *c, ts_h5 *f, const char *name) {
  int nd;
  int64_t d[TS_MAXDIM];
  float *x = ts_h5_read_f32(f, name, &nd, d);
  ck_assert_msg(x, "%s", ts_error());
  int s[TS_MAXDIM];
  for (int i = 0; i < nd; i++) s[i] = (int)d[i];
  ts_tensor *t = ts_from(c, x, nd, s);
  free(x);
  return t;
}

double rel_err(const float *a, const float *b, int64_t n, double floor) {
  double mx = 0, ref = floor;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (d > mx || isnan(d)) mx = isnan(d) ? INFINITY : d;
    if (fabs(b[i]) > ref) ref = fabs(b[i]);
  }
  return mx / ref;
}

int main(void) {
  SRunner *sr = srunner_create(suite_core());
  srunner_add_suite(sr, suite_ops());
  srunner_add_suite(sr, suite_grad());
  srunner_add_suite(sr, suite_train());
  srunner_add_suite(sr, suite_data());
  srunner_add_suite(sr, suite_sim());
  srunner_add_suite(sr, suite_unet());
  srunner_add_suite(sr, suite_infer());
  srunner_add_suite(sr, suite_cli());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir());
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir());
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
