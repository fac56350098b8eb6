/* tsdp distill --config C --base BASE.h5 --data D.h5 --out DRAFTER.h5 [--max-steps N]
 *              [--stop-after N] [--fresh] [--json] [section.key=value ...] */
#include "cli.h"
#include "core/config.h"
#include "core/error.h"
#include "train/distill.h"
#include <stdio.h>
#include <string.h>

static const char *const USAGE = "tsdp distill --config C.ini --base BASE.h5 --data D.h5 --out DRAFTER.h5 [--max-steps N] "
                                  "[--stop-after N] [--fresh] [--json] [key=value ...]";

int ts_cmd_distill(int argc, char **argv) {
  static const char *const vals[] = {"--config", "--base", "--data", "--out", "--max-steps", "--stop-after", NULL},
                           *const flags[] = {"--fresh", "--json", NULL};
  const ts_cli_args spec = {vals, flags, 1, 0, USAGE};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  if (!ts_opt(argc, argv, "--config")) return ts_fail("--config C.ini is required; usage: %s", USAGE);
  int fresh, json;
  char *args[256];
  int n = ts_cli_train_flags(argc, argv, &fresh, &json, args, 256);
  ts_config cfg;
  if (ts_cli_config(n, args, &cfg)) return 1;
  ts_distill_opts o = {ts_opt(n, args, "--base"), ts_opt(n, args, "--data"), ts_opt(n, args, "--out"), json, fresh, 0};
  if (!o.base || !o.data || !o.out)
    return ts_fail("usage: %s", USAGE);
  static const char *const extra[] = {".accept.png", NULL};
  const ts_cli_file ins[] = {{"--config", ts_opt(n, args, "--config")}, {"--base", o.base}, {"--data", o.data}, {NULL, NULL}};
  if (ts_cli_run_files(ins, "--out", o.out, extra)) return 1;
  if (ts_int_opt(n, args, "--max-steps", cfg.train.max_steps, 1, 1L << 40, &cfg.train.max_steps) ||
      ts_int_opt(n, args, "--stop-after", 0, 1, 1L << 40, &o.stop_after))
    return 1;
  ts_distill_result r;
  if (ts_distill(&cfg, &o, &r)) return 1;
  if (json) {
    printf("{\"steps\": %ld, \"resumed_from\": %d, \"final_loss\": %.6g, \"final_accept\": %.4f, \"seconds\": %.1f, "
           "\"samples_per_s\": %.1f", r.steps, r.resumed_from, r.final_loss, r.final_accept, r.seconds, r.samples_per_s);
    if (r.heldout) printf(", \"heldout_accept\": %.4f", r.heldout_accept);
    printf("}\n");
  } else {
    printf("distilled to step %ld (resumed from %d): final loss %.5f, predicted acceptance %.3f (batch)", r.steps,
           r.resumed_from, r.final_loss, r.final_accept);
    if (r.heldout) printf(", %.3f (held-out)", r.heldout_accept);
    printf(", %.1f s; drafter %s\n", r.seconds, o.out);
  }
  return 0;
}
