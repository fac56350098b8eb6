/* The tsdp program: --json output is one parseable object on stdout (Chipmunk's debug banner
 * included: it must not leak), and bad input gives one error line and a non-zero exit. */
#include "tests.h"
#include "core/error.h"
#include "data/dataset.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Run `tsdp ARGS`; stdout into out, number of stderr lines into *errlines; returns exit code. */
static int run_cli(const char *args, char *out, size_t cap, int *errlines) {
  const char *bin = getenv("TSDP_BIN");
  char cmd[2048], errf[600];
  snprintf(errf, sizeof errf, "%s/cli_stderr.txt", tmp_dir());
  snprintf(cmd, sizeof cmd, "%s %s 2>%s", bin, args, errf);
  FILE *p = popen(cmd, "r");
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = 0;
  int st = pclose(p);
  FILE *e = fopen(errf, "r");
  char line[2048];
  *errlines = 0;
  while (e && fgets(line, sizeof line, e)) (*errlines)++;
  if (e) fclose(e);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void tiny_dataset(char *h5, size_t n) {
  char zarr[512];
  snprintf(zarr, sizeof zarr, "%s/cli.zarr", tmp_dir());
  snprintf(h5, n, "%s/cli.h5", tmp_dir());
  make_pusht_zarr(zarr, 0);
  ts_import_report r;
  ck_assert_msg(ts_pusht_import_zarr(zarr, h5, &r) == 0, "%s", ts_error());
}

START_TEST(test_cli_json) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  static char out[1 << 16];
  char args[1024], h5[512];
  int el;
  ck_assert_int_eq(run_cli("sim reset --seed 100000 --legacy --json", out, sizeof out, &el), 0);
  ck_assert_msg(out[0] == '{' && strstr(out, "\"state\": [235, 124, 299.61") && strchr(out, '\n') == out + strlen(out) - 1,
                "%s", out);
  tiny_dataset(h5, sizeof h5);
  snprintf(args, sizeof args, "data info %s --json", h5);
  ck_assert_int_eq(run_cli(args, out, sizeof out, &el), 0);
  ck_assert_msg(out[0] == '{' && strstr(out, "\"episodes\": 2") && strstr(out, "\"steps\": 21"), "%s", out);
  snprintf(args, sizeof args, "sim replay --data %s --json", h5);
  ck_assert_int_eq(run_cli(args, out, sizeof out, &el), 0);
  ck_assert_msg(out[0] == '{' && strstr(out, "\"summary\": {\"episodes\": 2") && strstr(out, "\"mean_max_recorded_score\"") &&
                    strstr(out, "\"mean_max_replayed_score\"") && strstr(out, "\"block_pos_err_px_at_10\""),
                "%s", out);
}
END_TEST

START_TEST(test_cli_errors_one_line) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  static char out[4096];
  int el;
  const char *cases[][2] = {
    {"train --config configs/pusht_lowdim.ini --data x.h5 --out y.h5 train.lrate=1", "lrate"},
    {"train --config configs/nope.ini --data x.h5 --out y.h5", "nope.ini"},
    {"eval --ckpt /nonexistent/c.h5", "/nonexistent/c.h5"},
    {"sim reset --seed 5 --legacy", "seed 5"},
    {"bench step --ckpt tests/fixtures/unet.h5", "not a tsdp checkpoint"},
    {"frobnicate", "unknown command"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char errf[600], line[2048] = "";
    int rc = run_cli(cases[i][0], out, sizeof out, &el);
    ck_assert_msg(rc != 0, "'%s' exited 0", cases[i][0]);
    snprintf(errf, sizeof errf, "%s/cli_stderr.txt", tmp_dir());
    FILE *e = fopen(errf, "r");
    ck_assert_ptr_nonnull(fgets(line, sizeof line, e));
    fclose(e);
    ck_assert_msg(strstr(line, cases[i][1]), "'%s': %s", cases[i][0], line);
    if (strcmp(cases[i][0], "frobnicate")) ck_assert_msg(el == 1, "'%s': %d error lines", cases[i][0], el);
  }
}
END_TEST

/* scripts/convert_dp_ckpt.py round trip: a Diffusion Policy-style PyTorch state_dict of each
 * architecture -> tsdp checkpoint -> `tsdp forward` gives PyTorch's eps (relative 1e-4).
 * Needs Debian's python3-torch and python3-h5py (scripts/deps.sh --dev); without them it says
 * so and is skipped. */
START_TEST(test_cli_convert_round_trip) {
  const char *bin = getenv("TSDP_BIN");
  ck_assert_msg(bin, "TSDP_BIN is not set");
  SKIP_IF(system("/usr/bin/python3 -c 'import torch, h5py' >/dev/null 2>&1") != 0,
          "converter round trip needs python3-torch and python3-h5py (scripts/deps.sh --dev)");
  char cmd[1200], log[600];
  snprintf(log, sizeof log, "%s/convert.log", tmp_dir());
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 scripts/check_convert.py --tsdp %s >%s 2>&1", bin, log);
  int st = system(cmd);
  char text[4096] = "";
  FILE *f = fopen(log, "r");
  if (f) {
    text[fread(text, 1, sizeof text - 1, f)] = 0;
    fclose(f);
  }
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "check_convert.py failed:\n%s", text);
  ck_assert_msg(strstr(text, "transformer:") && strstr(text, "unet:") && strstr(text, "passed"), "%s", text);
}
END_TEST

/* Bring your own task (scripts/byo.sh at test size): a robomimic-layout dataset that is not
 * Push-T (scripts/make_robomimic_toy.py, 6 demos) trains and distils with only
 * configs/byo_robomimic.ini naming its obs keys, and `bench spec` runs on its windows with the
 * drafter (no simulator). Needs python3-h5py and numpy for the generator; skipped without. */
START_TEST(test_cli_byo_toy) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  SKIP_IF(system("/usr/bin/python3 -c 'import h5py, numpy' >/dev/null 2>&1") != 0,
          "the toy dataset generator needs python3-h5py and numpy (scripts/deps.sh --dev)");
  static char out[1 << 16];
  char args[2048], cmd[1024], h5[512], base[512], dr[512];
  const char *d = tmp_dir();
  int el;
  snprintf(h5, sizeof h5, "%s/byo_toy.h5", d);
  snprintf(base, sizeof base, "%s/byo_base.h5", d);
  snprintf(dr, sizeof dr, "%s/byo_drafter.h5", d);
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 scripts/make_robomimic_toy.py %s --demos 6 --seed 3 >/dev/null", h5);
  ck_assert_int_eq(system(cmd), 0);
  snprintf(args, sizeof args, "data info %s --json", h5);
  ck_assert_int_eq(run_cli(args, out, sizeof out, &el), 0);
  ck_assert_msg(out[0] == '{' && strstr(out, "\"episodes\": 6") && strstr(out, "robot0_eef_pos") && strstr(out, "goal_pos"),
                "%s", out);
  snprintf(args, sizeof args,
           "train --config configs/byo_robomimic.ini --data %s --out %s train.max_steps=5 train.batch_size=8 "
           "train.threads=1 train.log_every=5", h5, base);
  ck_assert_msg(run_cli(args, out, sizeof out, &el) == 0, "train: %s", out);
  snprintf(args, sizeof args,
           "distill --config configs/byo_drafter.ini --base %s --data %s --out %s train.max_steps=5 train.batch_size=8 "
           "train.threads=1 train.log_every=5 distill.chains=4 distill.buffer_chains=8 distill.heldout_chains=2",
           base, h5, dr);
  ck_assert_msg(run_cli(args, out, sizeof out, &el) == 0, "distill: %s", out);
  snprintf(args, sizeof args, "bench spec --ckpt %s --data %s --drafter %s --blocks 2 --windows 2 --threads 1 --json",
           base, h5, dr);
  ck_assert_msg(run_cli(args, out, sizeof out, &el) == 0, "bench spec: %s", out);
  ck_assert_msg(out[0] == '{' && strstr(out, "spec-learned-2"), "%s", out);
}
END_TEST

Suite *suite_cli(void) {
  Suite *s = suite_create("cli");
  TCase *tc = tcase_create("cli");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_cli_json);
  tcase_add_test(tc, test_cli_errors_one_line);
  tcase_add_test(tc, test_cli_convert_round_trip);
  tcase_add_test(tc, test_cli_byo_toy);
  suite_add_tcase(s, tc);
  return s;
}
