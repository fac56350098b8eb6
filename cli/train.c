/* tsdp train --config C --data D --out CKPT [--max-steps N] [--fresh] [--json] [key=value ...] */
#include "cli.h"
#include "core/config.h"
#include "core/error.h"
#include "train/train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Load --config and apply every bare section.key=value argument. */
int ts_cli_config(int argc, char **argv, ts_config *cfg) {
  ts_config_defaults(cfg);
  const char *path = ts_opt(argc, argv, "--config");
  if (path && ts_config_load(cfg, path)) return -1;
  for (int i = 0; i < argc; i++) {
    if (argv[i][0] == '-') {
      i++; /* skip the option's value */
      continue;
    }
    if (strchr(argv[i], '=')) {
      if (ts_config_override(cfg, argv[i])) return -1;
    } else {
      return ts_fail("unexpected argument '%s'", argv[i]);
    }
  }
  return 0;
}

int ts_cli_train_flags(int argc, char **argv, int *fresh, int *json, char **args, int cap) {
  int n = 0;
  *fresh = *json = 0;
  for (int i = 0; i < argc && n < cap; i++) {
    if (!strcmp(argv[i], "--fresh")) *fresh = 1;
    else if (!strcmp(argv[i], "--json")) *json = 1;
    else args[n++] = argv[i];
  }
  return n;
}

static const char *const TRAIN_FLAGS[] = {"--fresh", "--json", NULL};
static const char *const TRAIN_USAGE =
  "tsdp train --config C.ini --data D.h5 --out CKPT.h5 [--max-steps N] [--stop-after N] [--fresh] [--json] [key=value ...]";

int ts_cmd_train(int argc, char **argv) {
  static const char *const vals[] = {"--config", "--data", "--out", "--max-steps", "--stop-after", NULL};
  const ts_cli_args spec = {vals, TRAIN_FLAGS, 1, 0, TRAIN_USAGE};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  if (!ts_opt(argc, argv, "--config")) return ts_fail("--config C.ini is required; usage: %s", TRAIN_USAGE);
  /* flags without values first, so ts_cli_config's option skipping stays simple */
  int fresh, json;
  char *args[256];
  int n = ts_cli_train_flags(argc, argv, &fresh, &json, args, 256);
  ts_config cfg;
  if (ts_cli_config(n, args, &cfg)) return 1;
  const char *data = ts_opt(n, args, "--data"), *out = ts_opt(n, args, "--out");
  if (!data || !out) return ts_fail("usage: %s", TRAIN_USAGE);
  const ts_cli_file ins[] = {{"--config", ts_opt(n, args, "--config")}, {"--data", data}, {NULL, NULL}};
  if (ts_cli_run_files(ins, "--out", out, NULL)) return 1;
  ts_train_opts o = {data, out, json, fresh, 0};
  if (ts_int_opt(n, args, "--max-steps", cfg.train.max_steps, 1, 1L << 40, &cfg.train.max_steps) ||
      ts_int_opt(n, args, "--stop-after", 0, 1, 1L << 40, &o.stop_after))
    return 1;
  ts_train_result r;
  if (ts_train(&cfg, &o, &r)) return 1;
  if (json)
    printf("{\"steps\": %ld, \"final_loss\": %.6g, \"seconds\": %.1f, \"samples_per_s\": %.1f, \"io_seconds\": %.2f, "
           "\"step_samples_per_s\": %.1f, \"resumed_from\": %d}\n",
           r.steps, r.final_loss, r.seconds, r.samples_per_s, r.io_seconds, r.step_samples_per_s, r.resumed_from);
  else
    printf("trained to step %ld (resumed from %d): final loss %.5f, %.1f s, %.0f samples/s; checkpoint %s\n", r.steps,
           r.resumed_from, r.final_loss, r.seconds, r.samples_per_s, out);
  return 0;
}
