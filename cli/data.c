/* tsdp data import | info */
#include "cli.h"
#include "core/error.h"
#include "core/h5io.h"
#include "data/dataset.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const JSON[] = {"--json", NULL};

static int data_import(int argc, char **argv) {
  static const char *const vals[] = {"--zarr", "--out", NULL};
  const ts_cli_args spec = {vals, JSON, 0, 0, "tsdp data import --zarr PATH --out FILE.h5 [--json]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  const char *zarr = ts_opt(argc, argv, "--zarr"), *out = ts_opt(argc, argv, "--out");
  if (!zarr || !out) return ts_fail("usage: tsdp data import --zarr PATH --out FILE.h5 [--json]");
  const ts_cli_file outs[] = {{"--out", out}, {NULL, NULL}};
  if (ts_cli_files(NULL, outs)) return 1;
  double t0 = ts_now();
  ts_import_report r;
  if (ts_pusht_import_zarr(zarr, out, &r)) return 1;
  double dt = ts_now() - t0;
  if (r.warning[0]) fprintf(stderr, "tsdp data import: warning: %s\n", r.warning);
  if (ts_has_flag(argc, argv, "--json"))
    printf("{\"out\": \"%s\", \"episodes\": %d, \"steps\": %lld, \"keypoint_max_err_px\": %.6g, \"missing_chunks\": %lld, "
           "\"seconds\": %.2f}\n", out, r.episodes, (long long)r.steps, r.keypoint_max_err, (long long)r.missing_chunks, dt);
  else {
    printf("imported %d episodes, %lld steps into %s in %.1f s\n", r.episodes, (long long)r.steps, out, dt);
    if (r.keypoint_max_err >= 0)
      printf("keypoints derived from the block pose vs recorded: max error %.4f px\n", r.keypoint_max_err);
  }
  return 0;
}

static int key_stats(const char *path, const char *key, int json, int first) {
  ts_dataset d;
  const char *keys[1] = {key};
  int is_act = strcmp(key, "actions") == 0;
  if (ts_dataset_load(path, is_act ? NULL : keys, is_act ? 0 : 1, &d)) return -1;
  int dim = is_act ? d.act_dim : d.obs_dim;
  const float *x = is_act ? d.actions : d.obs;
  double mn[64], mx[64];
  int nd = dim < 64 ? dim : 64;
  for (int j = 0; j < nd; j++) {
    mn[j] = INFINITY;
    mx[j] = -INFINITY;
  }
  for (int64_t t = 0; t < d.n_steps; t++)
    for (int j = 0; j < nd; j++) {
      mn[j] = fmin(mn[j], x[t * dim + j]);
      mx[j] = fmax(mx[j], x[t * dim + j]);
    }
  if (json) {
    printf("%s\"%s\": {\"dim\": %d, \"min\": [", first ? "" : ", ", key, dim);
    for (int j = 0; j < nd; j++) printf("%s%.6g", j ? ", " : "", mn[j]);
    printf("], \"max\": [");
    for (int j = 0; j < nd; j++) printf("%s%.6g", j ? ", " : "", mx[j]);
    printf("]}");
  } else {
    double lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < nd; j++) {
      lo = fmin(lo, mn[j]);
      hi = fmax(hi, mx[j]);
    }
    printf("  %-22s (T, %d)   min %10.4f   max %10.4f\n", is_act ? "actions" : key, dim, lo, hi);
  }
  ts_dataset_free(&d);
  return 0;
}

static int data_info(int argc, char **argv) {
  const ts_cli_args spec = {NULL, JSON, 0, 1, "tsdp data info FILE.h5 [--json]"};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  if (argc < 1 || argv[0][0] == '-') return ts_fail("usage: tsdp data info FILE.h5 [--json]");
  const char *path = argv[0];
  int json = ts_has_flag(argc, argv, "--json");
  ts_dataset d;
  if (ts_dataset_load(path, NULL, 0, &d)) return 1;
  int64_t minlen = INT64_MAX, maxlen = 0;
  for (int e = 0; e < d.n_episodes; e++) {
    int64_t L = d.ep_start[e + 1] - d.ep_start[e];
    minlen = L < minlen ? L : minlen;
    maxlen = L > maxlen ? L : maxlen;
  }
  /* The obs keys of the first demo group (robomimic numbering need not start at 0). */
  ts_h5 *f = ts_h5_open(path);
  int nk = 0, nd = 0;
  char **keys = NULL, **demos = f ? ts_h5_list(f, "data", &nd) : NULL;
  for (int i = 0; i < nd && !keys; i++)
    if (strncmp(demos[i], "demo_", 5) == 0) {
      char grp[300];
      snprintf(grp, sizeof grp, "data/%s/obs", demos[i]);
      keys = ts_h5_list(f, grp, &nk);
    }
  ts_h5_free_names(demos, nd);
  if (f) ts_h5_close(f);
  if (json)
    printf("{\"path\": \"%s\", \"episodes\": %d, \"steps\": %lld, \"episode_len_min\": %lld, \"episode_len_max\": %lld, \"keys\": {",
           path, d.n_episodes, (long long)d.n_steps, (long long)minlen, (long long)maxlen);
  else
    printf("%s: %d episodes, %lld steps (episode length %lld..%lld)\n", path, d.n_episodes, (long long)d.n_steps,
           (long long)minlen, (long long)maxlen);
  ts_dataset_free(&d);
  int rc = key_stats(path, "actions", json, 1);
  char name[256];
  for (int k = 0; k < nk && !rc; k++) {
    snprintf(name, sizeof name, "%s", keys[k]);
    rc = key_stats(path, name, json, 0);
  }
  ts_h5_free_names(keys, nk);
  if (json) printf("}}\n");
  return rc ? 1 : 0;
}

int ts_cmd_data(int argc, char **argv) {
  if (argc >= 1 && strcmp(argv[0], "import") == 0) return data_import(argc - 1, argv + 1);
  if (argc >= 1 && strcmp(argv[0], "info") == 0) return data_info(argc - 1, argv + 1);
  return ts_fail("usage: tsdp data import --zarr PATH --out FILE.h5 | tsdp data info FILE.h5 [--json]");
}
