/* Hostile but realistic input to the tsdp program and the loaders it shares: unknown flags,
 * missing values, files that are folders, FIFOs or devices, long INI lines, config errors
 * paired with their lines, the checkpoint's obs-key order in eval. Every refusal is one line
 * and a non-zero exit, never a hang (each command runs under timeout 20). */
#include "tests.h"
#include "core/config.h"
#include "core/error.h"
#include "core/h5io.h"
#include "core/sizes.h"
#include "data/dataset.h"
#include "infer/blocks.h"
#include "infer/rollout.h"
#include "rl/sched.h"
#include "nn/model.h"
#include "sim/pusht.h"
#include "sim/render.h"
#include "train/train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *hpath(const char *name) {
  static _Thread_local char buf[4][512];
  static _Thread_local int k = 0;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_dir(), name);
  return buf[k];
}

static void put_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

/* Run `tsdp ARGS` (under timeout 20 s); the first stderr line into line; returns the exit
 * code (124: it hung) and the number of stderr lines in *nlines. */
static int run_tsdp(const char *args, char *line, size_t cap, int *nlines) {
  const char *bin = getenv("TSDP_BIN");
  char cmd[4096], errf[600];
  snprintf(errf, sizeof errf, "%s/harden_stderr.txt", tmp_dir());
  snprintf(cmd, sizeof cmd, "timeout 20 %s %s >/dev/null 2>%s </dev/null", bin, args, errf);
  int st = system(cmd);
  FILE *e = fopen(errf, "r");
  char buf[4096];
  *nlines = 0;
  line[0] = 0;
  while (e && fgets(buf, sizeof buf, e)) {
    if (!(*nlines)++) snprintf(line, cap, "%s", buf);
  }
  if (e) fclose(e);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void refused(const char *args, const char *want) {
  char line[4096];
  int n, rc = run_tsdp(args, line, sizeof line, &n);
  ck_assert_msg(rc != 0 && rc != 124, "'%s' exited %d", args, rc);
  ck_assert_msg(n == 1, "'%s': %d stderr lines (%s)", args, n, line);
  ck_assert_msg(strstr(line, want), "'%s': %s (want '%s')", args, line, want);
}

/* The array-size limit: a process may lower it (the fuzz harnesses do), never raise it. */
START_TEST(test_array_limit) {
  int64_t dims[2] = {1024, 512}, bytes = 0, big[2] = {(int64_t)1 << 40, 1};
  int64_t dflt = ts_max_array_bytes();
  ck_assert(dflt > 0 && dflt <= TS_MAX_ARRAY_BYTES);
  ck_assert_int_eq(ts_check_array("f.zarr", "action", 2, dims, 4, &bytes), 0);
  ck_assert(bytes == (int64_t)2 << 20);
  ts_set_max_array_bytes((int64_t)1 << 20);
  ck_assert(ts_max_array_bytes() == (int64_t)1 << 20);
  ck_assert_int_ne(ts_check_array("f.zarr", "action", 2, dims, 4, &bytes), 0);
  ck_assert_msg(strstr(ts_error(), "f.zarr: action of shape (1024, 512) needs 2097152 bytes"), "%s", ts_error());
  ts_set_max_array_bytes((int64_t)1 << 62); /* above the stated limit: no effect */
  ck_assert(ts_max_array_bytes() == dflt);
  ck_assert_int_ne(ts_check_array("f.zarr", "obs", 2, big, 8, &bytes), 0);
  ts_set_max_array_bytes(0);
  ck_assert(ts_max_array_bytes() == dflt);
}
END_TEST

/* A value with a control character (found by fuzz_config: "a\rb" printed back did not read
 * the same) is refused in one line; a CRLF file still reads. */
START_TEST(test_config_control_chars) {
  ts_config c;
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_override(&c, "data.obs_keys=keypoint\rx"), 0);
  ck_assert_msg(strstr(ts_error(), "data.obs_keys: the value has a control character (byte 0x0d)"), "%s", ts_error());
  ck_assert_int_ne(ts_config_parse_string(&c, "[eval]\nsampler = dd\x01pm\n", "t.ini"), 0);
  /* an entry that would print back as a comment (found by fuzz_config too) */
  ck_assert_int_ne(ts_config_parse_string(&c, "[data]\nobs_keys = keypoint,; x\n", "t.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "bad entry '; x'"), "%s", ts_error());
  ck_assert_int_eq(ts_config_parse_string(&c, "[data]\r\nobs_keys = keypoint, agent_pos\r\n", "crlf.ini"), 0);
  ck_assert_int_eq(c.data.n_obs_keys, 2);
  ck_assert_str_eq(c.data.obs_keys[1], "agent_pos");
}
END_TEST

START_TEST(test_cli_flags_known) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  const char *cfg = "--config configs/pusht_lowdim.ini";
  char a[2048];
  snprintf(a, sizeof a, "train %s --data d.h5 --out o.h5 --max-step 3", cfg);
  refused(a, "unknown option '--max-step'; usage: tsdp train");
  snprintf(a, sizeof a, "train %s --bogus 5 --data d.h5 --out o.h5", cfg);
  refused(a, "unknown option '--bogus'");
  snprintf(a, sizeof a, "train %s --data d.h5 --out", cfg);
  refused(a, "option --out needs a value; usage:");
  snprintf(a, sizeof a, "train %s --data --out o.h5", cfg);
  refused(a, "option --data needs a value");
  snprintf(a, sizeof a, "train %s --data d.h5 --out o.h5 stray", cfg);
  refused(a, "unexpected argument 'stray'");
  refused("train --data d.h5 --out o.h5", "--config C.ini is required");
  refused("distill --config configs/pusht_drafter.ini --base b.h5 --data d.h5 --out o.h5 --max-step 2",
          "unknown option '--max-step'; usage: tsdp distill");
  /* the scheduler's and MPI's subcommands know their options too */
  refused("rl record --ckpt b.h5 --episodes 2 --out r.h5 --max-step 3", "unknown option '--max-step'; usage: tsdp rl record");
  refused("rl train --config configs/pusht_scheduler.ini --ckpt b.h5 --rollouts r.h5 --out s.h5 --updatez 3",
          "unknown option '--updatez'; usage: tsdp rl train");
  refused("bench cost --ckpt b.h5 --out c.ini --rep 3", "unknown option '--rep'; usage: tsdp bench cost");
  refused("bench allreduce --float 10", "unknown option '--float'; usage: tsdp bench allreduce");
  refused("bench spec --ckpt b.h5 --data d.h5 --plots p", "unknown option '--plots'; usage: tsdp bench spec");
  refused("distill --base b.h5 --data d.h5 --out o.h5", "--config C.ini is required");
  refused("eval --ckpt a.h5 --ckpt b.h5", "option --ckpt given twice");
  refused("eval --ckpt a.h5 --episode 3", "unknown option '--episode'; usage: tsdp eval");
  refused("sample --ckpt a.h5 --data d.h5 --out o.h5 --n", "option --n needs a value");
  refused("forward --ckpt a.h5 --in i.h5 --out o.h5 --json", "unknown option '--json'");
  refused("sim replay --data x.h5 --episodes 3", "unknown option '--episodes'");
  refused("sim reset --seed 1 --legacy --pgn x.png", "unknown option '--pgn'");
  refused("data import --zarr z --out o.h5 --force", "unknown option '--force'");
  refused("data info a.h5 b.h5", "unexpected argument 'b.h5'");
  refused("bench gemm --dims ''", "--dims: expected 1 to 8 comma-separated integers");
  refused("bench gemm --dims 64,,128", "--dims");
  refused("bench gemm --dims 99999999999999999999", "--dims");
  refused("bench gemm --batch 0", "--batch");
  refused("bench step --ckpt c.h5 --batch 4,", "--batch");
  refused("bench spec --ckpt c.h5 --data d.h5 --blocks 2,x", "--blocks");
  refused("sim reset --seed 99999999999999999999 --legacy", "--seed");
}
END_TEST

/* Files that are not regular files, where files are read or replaced: refused in one line
 * before any open (a FIFO would block, /dev/zero would never end). */
START_TEST(test_cli_non_regular_files) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  const char *dir = hpath("a_folder"), *fifo = hpath("a_fifo");
  mkdir(dir, 0755);
  ck_assert_int_eq(mkfifo(fifo, 0644), 0);
  char a[2048];
  snprintf(a, sizeof a, "train --config %s --data d.h5 --out o.h5", dir);
  refused(a, "is a directory");
  refused("train --config /dev/zero --data d.h5 --out o.h5", "/dev/zero: is not a regular file");
  snprintf(a, sizeof a, "train --config %s --data d.h5 --out o.h5", fifo);
  refused(a, "a_fifo: is not a regular file");
  snprintf(a, sizeof a, "eval --ckpt %s", fifo);
  refused(a, "a_fifo: is not a regular file");
  snprintf(a, sizeof a, "eval --ckpt %s", dir);
  refused(a, "a_folder: is a directory");
  snprintf(a, sizeof a, "data info %s", fifo);
  refused(a, "a_fifo: is not a regular file");
  /* an existing --out that is not a regular file is refused before training starts */
  const char *data = infer_tiny_data();
  snprintf(a, sizeof a, "train --config configs/pusht_lowdim.ini --data %s --out %s --max-steps 1", data, dir);
  refused(a, "a_folder: is a directory");
  snprintf(a, sizeof a, "train --config configs/pusht_lowdim.ini --data %s --out %s --max-steps 1", data, fifo);
  refused(a, "a_fifo: is not a regular file");
  struct stat st;
  ck_assert_int_eq(stat(dir, &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
  ck_assert_int_eq(stat(fifo, &st), 0);
  ck_assert(S_ISFIFO(st.st_mode));
  /* the library calls themselves */
  ck_assert_ptr_null(ts_h5_open(fifo));
  ck_assert_msg(strstr(ts_error(), "not a regular file"), "%s", ts_error());
  ck_assert_ptr_null(ts_h5_create(dir));
  ck_assert_msg(strstr(ts_error(), "is a directory"), "%s", ts_error());
  ts_config c;
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_load(&c, "/dev/null"), -2); /* an empty char device: refused, not read */
  ck_assert_msg(strstr(ts_error(), "not a regular file"), "%s", ts_error());
}
END_TEST

/* A line longer than inih's buffer is refused (it would be split and set another value), and
 * each config error is reported with its own line number. */
START_TEST(test_config_long_lines_and_error_lines) {
  ts_config c;
  ts_config_defaults(&c);
  char text[1024];
  snprintf(text, sizeof text, "[train]\nlr = 0.0001%*s batch_size = 3\n", 250, "");
  ck_assert_int_ne(ts_config_parse_string(&c, text, "long.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "long.ini:2: line of 276 characters, longer than the 198"), "%s", ts_error());
  ck_assert_int_eq(c.train.batch_size, 256); /* the default: nothing set from the pieces */
  /* 198 characters exactly is fine */
  snprintf(text, sizeof text, "[train]\nlr = 0.0001%*s\n", 187, "");
  ck_assert_int_eq((int)(strchr(text + 8, '\n') - (text + 8)), 198);
  ck_assert_msg(ts_config_parse_string(&c, text, "ok.ini") == 0, "%s", ts_error());
  /* two bad values: the first one's line with the first one's message */
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_parse_string(&c, "[train]\nlr = abc\nbatch_size = 0\n", "two.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "two.ini:2: [train] lr: 'abc' is not a number"), "%s", ts_error());
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_parse_string(&c, "[train]\n\nbatch_size = 0\nlr = abc\n", "two.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "two.ini:3: [train] batch_size = 0 must be in"), "%s", ts_error());
  /* a syntax error before a bad value: the syntax error's line, not the value's message */
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_parse_string(&c, "[train]\nnonsense\nlr = abc\n", "syn.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "syn.ini:2: syntax error"), "%s", ts_error());
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_parse_string(&c, "[train]\nlr = abc\nnonsense\n", "syn.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "syn.ini:2: [train] lr"), "%s", ts_error());
  /* a file with a long line, through the loader */
  const char *p = hpath("long.ini");
  put_text(p, text); /* the 198-character one */
  ts_config_defaults(&c);
  ck_assert_msg(ts_config_load(&c, p) == 0, "%s", ts_error());
  snprintf(text, sizeof text, "[train]\n; %*s\n", 300, "x");
  put_text(p, text);
  ck_assert_int_ne(ts_config_load(&c, p), 0);
  ck_assert_msg(strstr(ts_error(), "long.ini:2: line of 302 characters"), "%s", ts_error());
}
END_TEST

/* eval feeds the simulator's observation in the checkpoint's obs-key order. */
START_TEST(test_eval_obs_key_order) {
  ts_pusht_silence_banner();
  ts_pusht *e = ts_pusht_new();
  ck_assert_int_eq(ts_pusht_reset_seed(e, 100000), 0);
  float ka[TS_PUSHT_OBS_DIM], got[32];
  double st[5];
  ts_pusht_get_obs(e, ka);
  ts_pusht_get_state(e, st);
  ts_config c;
  ts_config_defaults(&c);
  ck_assert_int_eq(ts_config_override(&c, "data.obs_keys=agent_pos, keypoint"), 0);
  ck_assert_msg(ts_pusht_policy_obs(&c, 20, e, got) == 0, "%s", ts_error());
  ck_assert_float_eq(got[0], ka[18]);
  ck_assert_float_eq(got[1], ka[19]);
  ck_assert_mem_eq(got + 2, ka, 18 * sizeof(float));
  ck_assert_int_eq(ts_config_override(&c, "data.obs_keys=keypoint, agent_pos"), 0);
  ck_assert_int_eq(ts_pusht_policy_obs(&c, 20, e, got), 0);
  ck_assert_mem_eq(got, ka, 20 * sizeof(float));
  ck_assert_int_eq(ts_config_override(&c, "data.obs_keys=state, agent_pos"), 0);
  ck_assert_int_eq(ts_pusht_policy_obs(&c, 7, e, got), 0);
  for (int j = 0; j < 5; j++) ck_assert_float_eq(got[j], (float)st[j]);
  ck_assert_float_eq(got[5], ka[18]);
  ck_assert_int_ne(ts_pusht_policy_obs(&c, 20, e, got), 0); /* widths 7 != 20 */
  ck_assert_msg(strstr(ts_error(), "20 obs dims") && strstr(ts_error(), "give 7"), "%s", ts_error());
  ck_assert_int_eq(ts_config_override(&c, "data.obs_keys=keypoint, n_contacts"), 0);
  ck_assert_int_ne(ts_pusht_policy_obs(&c, 20, e, got), 0);
  ck_assert_msg(strstr(ts_error(), "'n_contacts'"), "%s", ts_error());
  ts_pusht_free(e);
}
END_TEST

/* A write that fails (the disk full; here the file-size limit) is one error line, leaves
 * neither the file nor its temporary, and the process exits normally (HDF5 1.10 used to crash
 * at exit after failing to write its own file). */
START_TEST(test_h5_write_failure_exits_cleanly) {
  const char *path = hpath("full.h5");
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {1 << 16, 1 << 16};
    setrlimit(RLIMIT_FSIZE, &rl);
    int64_t n = 1 << 20, d[1] = {n};
    float *x = calloc((size_t)n, sizeof(float));
    ts_h5 *f = ts_h5_create(path);
    if (!f) _exit(3);
    ts_h5_set_deflate(f, 0);
    if (ts_h5_write_f32(f, "x", x, 1, d)) _exit(4);
    if (ts_h5_commit(f) == 0) _exit(5);
    if (!strstr(ts_error(), "full.h5: write failed (File too large)")) _exit(6);
    free(x);
    exit(0); /* a normal exit: HDF5's exit handlers run */
  }
  int st = 0;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st), "the writer died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  ck_assert_msg(WEXITSTATUS(st) == 0, "the writer exited %d", WEXITSTATUS(st));
  ck_assert_int_ne(access(path, F_OK), 0);
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)pid);
  ck_assert_int_ne(access(tmp, F_OK), 0);
}
END_TEST

/* A short run of each libFuzzer harness (tests/fuzz/) from its seed corpus: `make check` builds
 * them into TSDP_FUZZ_DIR when clang can link libFuzzer, and runs TSDP_FUZZ_RUNS executions of
 * each; without clang this is a counted skip. */
START_TEST(test_fuzz_smoke) {
  const char *dir = getenv("TSDP_FUZZ_DIR"), *runs = getenv("TSDP_FUZZ_RUNS");
  SKIP_IF(!dir || !*dir, "fuzz smoke runs need clang with libFuzzer (make check builds them when it links)");
  static const char *const names[] = {"zarr", "config", "ckpt", "dataset"};
  for (int i = 0; i < 4; i++) {
    char cmd[2048], log[700], work[600];
    snprintf(work, sizeof work, "%s/fuzz_%s", tmp_dir(), names[i]);
    mkdir(work, 0755);
    snprintf(log, sizeof log, "%s/log.txt", work);
    snprintf(cmd, sizeof cmd,
             "cd %s && timeout 300 %s/%s/fuzz_%s -runs=%s -max_len=8192 -rss_limit_mb=2048 -malloc_limit_mb=1024 "
             "-timeout=10 %s %s/tests/fuzz/corpus/%s >%s 2>&1",
             work, getenv("PWD"), dir, names[i], runs && *runs ? runs : "3000", work, getenv("PWD"), names[i], log);
    int st = system(cmd);
    char text[8192] = "";
    FILE *f = fopen(log, "r");
    if (f) { /* the log's end: the findings and "Done N runs" */
      fseek(f, 0, SEEK_END);
      long len = ftell(f);
      fseek(f, len > (long)sizeof text - 1 ? len - (long)sizeof text + 1 : 0, SEEK_SET);
      size_t n = fread(text, 1, sizeof text - 1, f);
      text[n] = 0;
      fclose(f);
    }
    const char *why = strstr(text, "ERROR") ? strstr(text, "ERROR") : text;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fuzz_%s found something (log %s): %.300s", names[i], log, why);
    ck_assert_msg(strstr(text, "Done "), "fuzz_%s did not finish (log %s)", names[i], log);
    fprintf(stderr, "fuzz smoke %s: %s", names[i], strstr(text, "Done ") ? strstr(text, "Done ") : "?\n");
  }
}
END_TEST

/* Demo groups: a "demo_" name that is not demo_<number>, or two groups with one number, are
 * refused naming them (they used to be read as episode 0 / in an arbitrary order). */
START_TEST(test_dataset_demo_names) {
  const char *const bad[][3] = {{"demo_x", "demo_1", "data/demo_x is not named demo_<number>"},
                                {"demo_01", "demo_1", "data/demo_01 and data/demo_1 are the same episode number"}};
  for (int k = 0; k < 2; k++) {
    const char *path = hpath("demos.h5");
    ts_h5 *f = ts_h5_create(path);
    ck_assert_ptr_nonnull(f);
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t d[2] = {3, 2};
    char name[128];
    for (int j = 0; j < 2; j++) {
      snprintf(name, sizeof name, "data/%s/actions", bad[k][j]);
      ck_assert_int_eq(ts_h5_write_f32(f, name, x, 2, d), 0);
    }
    ck_assert_int_eq(ts_h5_commit(f), 0);
    ts_dataset ds;
    ck_assert_int_ne(ts_dataset_load(path, NULL, 0, &ds), 0);
    ck_assert_msg(strstr(ts_error(), bad[k][2]), "%s", ts_error());
  }
}
END_TEST

/* Windows never read outside their episode: an empty episode gets none, and pads of the
 * horizon or more are cut so each window holds a frame of its episode (found by fuzz_dataset:
 * a heap overflow before). */
START_TEST(test_windows_stay_in_episode) {
  ts_dataset d;
  memset(&d, 0, sizeof d);
  int64_t starts[4] = {0, 0, 3, 3}; /* episodes of 0, 3 and 0 steps */
  float act[3] = {10, 11, 12}, obs[3] = {20, 21, 22};
  d.n_episodes = 3;
  d.n_steps = 3;
  d.ep_start = starts;
  d.act_dim = d.obs_dim = 1;
  d.actions = act;
  d.obs = obs;
  ts_windows w;
  ck_assert_int_eq(ts_windows_build(&d, NULL, 2, 5, 5, &w), 0);
  ck_assert_int_eq(w.n, 4); /* starts -1, 0, 1, 2 of the 3-step episode */
  for (int64_t i = 0; i < w.n; i++) {
    float o[2], a[2];
    ts_windows_get(&d, &w, i, o, a);
    for (int h = 0; h < 2; h++) ck_assert(a[h] >= 10 && a[h] <= 12 && o[h] >= 20 && o[h] <= 22);
  }
  ts_windows_free(&w);
  d.ep_start = (int64_t[]){0, 0, 0, 0};
  d.n_steps = 0;
  ck_assert_int_ne(ts_windows_build(&d, NULL, 2, 1, 1, &w), 0);
}
END_TEST

/* The kill test, short: scripts/kill_test.sh SIGKILLs `tsdp train`, `distill` and `rl train`
 * TSDP_KILLS times each (default 3) at random moments on the two-episode fixture and checks
 * that the resumed runs end as an uninterrupted one, without stray files (`make killtest`:
 * 20 kills each on the Push-T data). */
START_TEST(test_kill_resume_short) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  SKIP_IF(system("/usr/bin/python3 -c 'import h5py, numpy' >/dev/null 2>&1") != 0,
          "the kill test compares checkpoints with python3-h5py (scripts/deps.sh --dev)");
  const char *kills = getenv("TSDP_KILLS");
  char cmd[4096], log[600], work[600];
  snprintf(work, sizeof work, "%s/killtest", tmp_dir());
  snprintf(log, sizeof log, "%s/killtest.log", tmp_dir());
  snprintf(cmd, sizeof cmd, "KILL_DATA=%s KILL_WORK=%s timeout 300 bash scripts/kill_test.sh %s %s >%s 2>&1",
           infer_tiny_data(), work, getenv("TSDP_BIN"), kills && *kills ? kills : "3", log);
  int st = system(cmd);
  char text[8192] = "";
  FILE *f = fopen(log, "r");
  if (f) {
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
  }
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "kill test failed (exit %d):\n%s", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                text);
  ck_assert_msg(strstr(text, "kill test: passed"), "%s", text);
  fprintf(stderr, "%s", text);
}
END_TEST

/* The kind of path (for "was it left alone?"). */
static int is_fifo(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* A 2-step tiny checkpoint on the two-episode fixture, for refusals that come after the
 * checkpoint is read (the sampler's options need its default sampler). */
static const char *harden_ckpt(void) {
  static char ck[512];
  if (!ck[0]) {
    ts_config c;
    infer_tiny_cfg(&c);
    ck_assert_int_eq(ts_config_override(&c, "train.eval_every=0"), 0);
    ck_assert_int_eq(ts_config_override(&c, "train.max_steps=2"), 0);
    snprintf(ck, sizeof ck, "%s/harden_base.h5", tmp_dir());
    ts_train_result r;
    ts_train_opts o = {infer_tiny_data(), ck, 1, 1, 0};
    ck_assert_msg(ts_train(&c, &o, &r) == 0, "%s", ts_error());
  }
  return ck;
}

/* Every subcommand's outputs (--out, --png, --gif, --plot's PREFIX.png, a training run's
 * OUT.csv / OUT.png / OUT.accept.png / OUT.L_t.png ...): an existing FIFO or device there is
 * refused in one line before any work and stays what it was (bench cost --out FIFO replaced
 * it with a regular file). */
START_TEST(test_outputs_never_replace_special_files) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  const char *dir = hpath("outs");
  mkdir(dir, 0755);
  char fifo[600], a[4096], side[700];
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  remove(fifo);
  ck_assert_int_eq(mkfifo(fifo, 0644), 0);
  const char *data = infer_tiny_data();
  const char *cases[] = {
    "bench cost --ckpt nothere.h5 --out %s --max-batch 3 --reps 3",
    "sample --ckpt nothere.h5 --data d.h5 --index 5 --n 2 --seed 0 --out %s",
    "forward --ckpt nothere.h5 --in i.h5 --out %s",
    "rl record --ckpt nothere.h5 --episodes 1 --out %s",
    "rl train --config configs/pusht_scheduler.ini --ckpt nothere.h5 --rollouts r.h5 --out %s",
    "train --config configs/pusht_lowdim.ini --data d.h5 --out %s",
    "distill --config configs/pusht_drafter.ini --base b.h5 --data d.h5 --out %s",
    "sim reset --seed 100000 --legacy --png %s",
    "data import --zarr nothere.zarr --out %s",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(a, sizeof a, cases[i], fifo);
    refused(a, "fifo: is not a regular file");
    ck_assert_msg(is_fifo(fifo), "'%s' replaced the FIFO", a);
  }
  snprintf(a, sizeof a, "sim replay --data %s --gif %s", data, fifo);
  refused(a, "fifo: is not a regular file");
  /* the files beside a training run's --out */
  const char *sides[][3] = {{"train --config configs/pusht_lowdim.ini --data d.h5 --out %s/t.h5", "t.h5", ".png"},
                            {"train --config configs/pusht_lowdim.ini --data d.h5 --out %s/t.h5", "t.h5", ".csv"},
                            {"distill --config configs/pusht_drafter.ini --base b.h5 --data d.h5 --out %s/d.h5", "d.h5",
                             ".accept.png"},
                            {"rl train --config configs/pusht_scheduler.ini --ckpt b.h5 --rollouts r.h5 --out %s/s.h5", "s.h5",
                             ".L_t.png"}};
  for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++) {
    snprintf(side, sizeof side, "%s/%s%s", dir, sides[i][1], sides[i][2]);
    remove(side);
    ck_assert_int_eq(mkfifo(side, 0644), 0);
    snprintf(a, sizeof a, sides[i][0], dir);
    refused(a, "is not a regular file");
    ck_assert_msg(is_fifo(side), "'%s' replaced %s", a, side);
    remove(side);
  }
  /* bench spec --plot PREFIX writes PREFIX.png */
  snprintf(side, sizeof side, "%s/plot.png", dir);
  ck_assert_int_eq(mkfifo(side, 0644), 0);
  snprintf(a, sizeof a, "bench spec --ckpt nothere.h5 --data d.h5 --plot %s/plot", dir);
  refused(a, "plot.png: is not a regular file");
  ck_assert(is_fifo(side));
  /* a device node (a private one, never a real /dev entry) */
  char dev[600];
  snprintf(dev, sizeof dev, "%s/dev", dir);
  remove(dev);
  if (mknod(dev, S_IFCHR | 0600, makedev(1, 3)) == 0) {
    snprintf(a, sizeof a, "bench cost --ckpt nothere.h5 --out %s", dev);
    refused(a, "dev: is not a regular file");
    struct stat st;
    ck_assert(stat(dev, &st) == 0 && S_ISCHR(st.st_mode));
    remove(dev);
  }
  /* eval --gif DIR: the GIFs it will write */
  const char *ck = harden_ckpt();
  char gdir[600];
  snprintf(gdir, sizeof gdir, "%s/gifs", dir);
  mkdir(gdir, 0755);
  snprintf(side, sizeof side, "%s/seed_100001.gif", gdir);
  remove(side);
  ck_assert_int_eq(mkfifo(side, 0644), 0);
  snprintf(a, sizeof a, "eval --ckpt %s --episodes 2 --seed-start 100000 --sampler ddim --steps 2 --threads 1 --gif %s", ck, gdir);
  refused(a, "seed_100001.gif: is not a regular file");
  ck_assert(is_fifo(side));
  snprintf(a, sizeof a, "eval --ckpt %s --episodes 1 --sampler ddim --steps 2 --threads 1 --gif %s", ck, data);
  refused(a, "is not a folder");
  /* the library writers refuse too */
  ts_cost_model cm = {.n = 1, .target_ms = {0, 1.0}, .drafter_ms = 0.1, .threads = 1};
  ck_assert_int_ne(ts_cost_save(&cm, fifo), 0);
  ck_assert_msg(strstr(ts_error(), "not a regular file"), "%s", ts_error());
  ck_assert(is_fifo(fifo));
}
END_TEST

/* An output that is one of the command's inputs (the same file, also through a link) is
 * refused before anything is read or written: train --out D.h5 --data D.h5 overwrote the
 * dataset. */
START_TEST(test_output_is_not_an_input) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  char f[600], cfg[600], lnk[600];
  snprintf(f, sizeof f, "%s", hpath("in_file.h5"));
  snprintf(cfg, sizeof cfg, "%s", hpath("in_cfg.ini"));
  snprintf(lnk, sizeof lnk, "%s", hpath("in_link.h5"));
  put_text(f, "not really HDF5\n");
  put_text(cfg, "[train]\nlr = 0.001\n");
  remove(lnk);
  ck_assert_int_eq(link(f, lnk), 0);
  char a[4096];
  struct {
    const char *fmt, *want;
  } cases[] = {
    {"train --config configs/pusht_lowdim.ini --data %1$s --out %1$s --fresh", "is also the input --data"},
    {"distill --config configs/pusht_drafter.ini --base %1$s --data d.h5 --out %1$s --fresh", "is also the input --base"},
    {"sample --ckpt c.h5 --data %1$s --index 0 --n 1 --out %1$s", "is also the input --data"},
    {"sample --ckpt %1$s --data d.h5 --index 0 --n 1 --out %1$s", "is also the input --ckpt"},
    {"forward --ckpt c.h5 --in %1$s --out %1$s", "is also the input --in"},
    {"forward --ckpt %1$s --in i.h5 --out %1$s", "is also the input --ckpt"},
    {"bench cost --ckpt %1$s --out %1$s", "is also the input --ckpt"},
    {"rl record --ckpt %1$s --episodes 1 --out %1$s", "is also the input --ckpt"},
    {"rl train --config configs/pusht_scheduler.ini --ckpt b.h5 --rollouts %1$s --out %1$s", "is also the input --rollouts"},
  };
  struct stat before, after;
  ck_assert_int_eq(stat(f, &before), 0);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(a, sizeof a, cases[i].fmt, f);
    refused(a, cases[i].want);
  }
  /* the same file under another name (a hard link) */
  snprintf(a, sizeof a, "train --config configs/pusht_lowdim.ini --data %s --out %s --fresh", f, lnk);
  refused(a, "in_link.h5: is also the input --data; refusing to overwrite it");
  /* --out equal to --config */
  snprintf(a, sizeof a, "train --config %1$s --data d.h5 --out %1$s --fresh", cfg);
  refused(a, "in_cfg.ini: is also the input --config");
  ck_assert_int_eq(stat(f, &after), 0);
  ck_assert(after.st_ino == before.st_ino && after.st_size == before.st_size && after.st_mtime == before.st_mtime);
}
END_TEST

/* The cost model (--cost, rl.cost_model) is read only when it is a regular file: a FIFO or a
 * device hung rl train forever. */
START_TEST(test_cost_model_regular_file) {
  char fifo[600], dir[600];
  snprintf(fifo, sizeof fifo, "%s", hpath("cost_fifo"));
  snprintf(dir, sizeof dir, "%s", hpath("cost_dir"));
  remove(fifo);
  ck_assert_int_eq(mkfifo(fifo, 0644), 0);
  mkdir(dir, 0755);
  ts_cost_model c;
  ck_assert_int_ne(ts_cost_load(&c, fifo), 0);
  ck_assert_msg(strstr(ts_error(), "cost_fifo: is not a regular file"), "%s", ts_error());
  ck_assert_int_ne(ts_cost_load(&c, dir), 0);
  ck_assert_msg(strstr(ts_error(), "cost_dir: is a directory"), "%s", ts_error());
  ck_assert_int_ne(ts_cost_load(&c, hpath("cost_absent.ini")), 0);
  ck_assert_msg(strstr(ts_error(), "cost_absent.ini: cannot open the cost model"), "%s", ts_error());
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  char a[2048];
  snprintf(a, sizeof a, "rl train --config configs/pusht_scheduler.ini --ckpt b.h5 --rollouts r.h5 --out %s --cost %s",
           hpath("cost_o.h5"), fifo);
  refused(a, "cost_fifo: is not a regular file");
  snprintf(a, sizeof a, "rl train --config configs/pusht_scheduler.ini --ckpt b.h5 --rollouts r.h5 --out %s rl.cost_model=%s",
           hpath("cost_o.h5"), fifo);
  refused(a, "cost_fifo: is not a regular file");
  ck_assert(is_fifo(fifo));
}
END_TEST

/* bench allreduce --floats is parsed as every other list flag: empty entries, a trailing or
 * leading comma, an empty list and an over-long list are refused (strtok skipped them). */
START_TEST(test_allreduce_floats_list) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  refused("bench allreduce --reps 1 --floats 1,,2", "--floats: expected 1 to 16 comma-separated integers");
  refused("bench allreduce --reps 1 --floats 1,", "--floats");
  refused("bench allreduce --reps 1 --floats ,1", "--floats");
  refused("bench allreduce --reps 1 --floats ''", "--floats");
  refused("bench allreduce --reps 1 --floats 0", "--floats");
  char a[4096] = "bench allreduce --reps 1 --floats 16";
  for (int i = 0; i < 200; i++) strcat(a, ",16");
  refused(a, "--floats");
  char line[512];
  int n;
  ck_assert_int_eq(run_tsdp("bench allreduce --reps 1 --floats 16,32", line, sizeof line, &n), 0);
  ck_assert_int_eq(n, 0);
}
END_TEST

/* Options that the chosen sampler would ignore are refused: --block, --drafter and
 * --scheduler without spec, --steps with spec, --gif-count without --gif, rl record --steps
 * with ddpm. */
START_TEST(test_sampler_options_that_do_nothing) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  refused("rl record --ckpt b.h5 --episodes 1 --sampler ddpm --steps 2 --out r.h5", "--steps: the ddpm sampler");
  const char *ck = harden_ckpt(), *data = infer_tiny_data();
  char a[2048];
  const char *eval_cases[][2] = {{"--sampler ddpm --block 4", "--block: only the spec sampler reads it"},
                                 {"--sampler ddim --block 4", "--block: only the spec sampler"},
                                 {"--sampler spec --steps 5", "--steps: the spec sampler"},
                                 {"--sampler ddim --steps 2 --gif-count 3", "--gif-count: only with --gif"},
                                 {"--sampler ddim --steps 2 --drafter frozen", "--drafter: only the spec sampler"},
                                 {"--sampler ddpm --scheduler s.h5", "--scheduler: only the spec sampler"}};
  for (size_t i = 0; i < sizeof eval_cases / sizeof eval_cases[0]; i++) {
    snprintf(a, sizeof a, "eval --ckpt %s --episodes 1 --threads 1 %s", ck, eval_cases[i][0]);
    refused(a, eval_cases[i][1]);
  }
  snprintf(a, sizeof a, "sample --ckpt %s --data %s --index 5 --n 2 --seed 0 --out %s --sampler ddpm --block 3", ck, data,
           hpath("s_out.h5"));
  refused(a, "--block: only the spec sampler");
  snprintf(a, sizeof a, "sample --ckpt %s --data %s --index 5 --n 2 --seed 0 --out %s --sampler spec --steps 3", ck, data,
           hpath("s_out.h5"));
  refused(a, "--steps: the spec sampler");
  ck_assert_int_ne(access(hpath("s_out.h5"), F_OK), 0);
}
END_TEST

/* bench spec --plot PREFIX: an empty prefix or one naming a folder wrote ".png" / "..png". */
START_TEST(test_plot_prefix) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  refused("bench spec --ckpt c.h5 --data d.h5 --plot ''", "--plot '': expected a file-name prefix");
  refused("bench spec --ckpt c.h5 --data d.h5 --plot .", "--plot '.': expected a file-name prefix");
  refused("bench spec --ckpt c.h5 --data d.h5 --plot ..", "--plot '..'");
  refused("bench spec --ckpt c.h5 --data d.h5 --plot some/folder/", "--plot 'some/folder/'");
  char a[1024];
  snprintf(a, sizeof a, "bench spec --ckpt c.h5 --data d.h5 --plot %s", tmp_dir());
  refused(a, "not a folder");
}
END_TEST

/* A PNG whose write fails (a full disk; here the file-size limit) is one error line and a
 * failure, leaving neither the file nor its temporary (stbi_write_png ignored write errors:
 * exit 0 and a 0-byte file). */
START_TEST(test_png_write_failure) {
  const char *path = hpath("full.png");
  remove(path);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {4096, 4096};
    setrlimit(RLIMIT_FSIZE, &rl);
    uint8_t *rgb = malloc(256 * 256 * 3);
    for (int i = 0; i < 256 * 256 * 3; i++) rgb[i] = (uint8_t)(i * 2654435761u >> 24); /* incompressible */
    if (ts_png_write(path, 256, 256, rgb) == 0) _exit(3);
    if (!strstr(ts_error(), "full.png: write failed (File too large)")) _exit(4);
    free(rgb);
    _exit(0);
  }
  int st = 0;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the writer exited %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  ck_assert_int_ne(access(path, F_OK), 0);
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)pid);
  ck_assert_int_ne(access(tmp, F_OK), 0);
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  /* through the CLI: sim reset --png under a 4 KB file-size limit */
  char a[1024];
  snprintf(a, sizeof a, "sim reset --seed 100000 --legacy --png %s", path);
  char cmd[2048], errf[600], line[1024] = "";
  snprintf(errf, sizeof errf, "%s/png_stderr.txt", tmp_dir());
  snprintf(cmd, sizeof cmd, "bash -c \"trap '' XFSZ; ulimit -f 4; exec timeout 20 %s %s\" >/dev/null 2>%s </dev/null",
           getenv("TSDP_BIN"), a, errf);
  int rc = system(cmd), n = 0;
  FILE *e = fopen(errf, "r");
  char buf[1024];
  while (e && fgets(buf, sizeof buf, e))
    if (!n++) snprintf(line, sizeof line, "%s", buf);
  if (e) fclose(e);
  ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "sim reset --png on a full disk exited %d", WEXITSTATUS(rc));
  ck_assert_msg(n == 1 && strstr(line, "full.png: write failed"), "%d lines: %s", n, line);
  ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* The program's own usage: an unknown command is one stderr line; `tsdp help` prints the usage
 * on stdout and exits 0; `tsdp` alone prints it on stdout with one error line; --version. */
START_TEST(test_top_level_usage) {
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  refused("bogus", "tsdp: unknown command 'bogus' (tsdp help lists them)");
  refused("TRAIN", "unknown command 'TRAIN'");
  refused("''", "unknown command ''");
  refused("'bo\ngus'", "unknown command 'bo\\ngus'");
  refused("help me", "tsdp help: takes no arguments");
  refused("", "tsdp: no command given");
  char line[1024];
  int n;
  ck_assert_int_eq(run_tsdp("help", line, sizeof line, &n), 0);
  ck_assert_int_eq(n, 0);
  ck_assert_int_eq(run_tsdp("--version", line, sizeof line, &n), 0);
  ck_assert_int_eq(n, 0);
  char cmd[1024], outf[600];
  snprintf(outf, sizeof outf, "%s/usage.txt", tmp_dir());
  snprintf(cmd, sizeof cmd, "%s help >%s 2>/dev/null", getenv("TSDP_BIN"), outf);
  ck_assert_int_eq(system(cmd), 0);
  FILE *f = fopen(outf, "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  fclose(f);
  ck_assert_msg(strstr(line, "usage: tsdp <command>"), "%s", line);
  snprintf(cmd, sizeof cmd, "%s --version >%s 2>/dev/null", getenv("TSDP_BIN"), outf);
  ck_assert_int_eq(system(cmd), 0);
  f = fopen(outf, "r");
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  fclose(f);
  ck_assert_msg(!strncmp(line, "tsdp ", 5), "%s", line);
}
END_TEST

/* Error messages are one line: a control character from the user's text (an override holding
 * a newline) is escaped, not printed raw. */
START_TEST(test_error_line_escapes_controls) {
  ts_fail("override '%s': x", "a=5\n[train]\r\x01\t");
  ck_assert_str_eq(ts_error(), "override 'a=5\\n[train]\\r\\x01\\t': x");
  ts_fail("%s (again)", ts_error()); /* an argument may be the message itself */
  ck_assert_str_eq(ts_error(), "override 'a=5\\n[train]\\r\\x01\\t': x (again)");
  char big[3000];
  memset(big, '\n', sizeof big - 1);
  big[sizeof big - 1] = 0;
  ts_fail("%s", big); /* truncated at an escape's boundary, within the buffer */
  ck_assert(strlen(ts_error()) <= 1023 && strlen(ts_error()) % 2 == 0);
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  refused("train --config configs/pusht_lowdim.ini --data d.h5 --out o.h5 'model.kernel_size=5\n[train]'",
          "override 'model.kernel_size=5\\n[train]': model.kernel_size: the value has a control character");
}
END_TEST

/* rl train checks before the work: its --out (missing folder, FIFO, folder), an --out that is
 * a base checkpoint (not a scheduler's, when resuming), and rollouts with NaN observations. */
START_TEST(test_rl_train_checks_first) {
  const char *ro = hpath("ro_nan.h5");
  ts_h5 *f = ts_h5_create(ro);
  ck_assert_ptr_nonnull(f);
  float obs[3 * 4] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  obs[6] = 0.0f / 0.0f;
  int64_t cs[3] = {0, 8, 16}, ep[3] = {0, 0, 0}, d2[2] = {3, 4}, d1[1] = {3};
  ck_assert_int_eq(ts_h5_write_f32(f, "obs", obs, 2, d2), 0);
  ck_assert_int_eq(ts_h5_write_i64(f, "control_step", cs, 1, d1), 0);
  ck_assert_int_eq(ts_h5_write_i64(f, "episode", ep, 1, d1), 0);
  ck_assert_int_eq(ts_h5_commit(f), 0);
  ts_policy p;
  memset(&p, 0, sizeof p);
  p.cond_dim = 4;
  ts_rollouts r;
  ck_assert_int_ne(ts_rollouts_load(&r, ro, &p), 0);
  ck_assert_msg(strstr(ts_error(), "ro_nan.h5: obs holds NaN (window 1, entry 2)"), "%s", ts_error());
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  char fifo[600], base[600];
  snprintf(fifo, sizeof fifo, "%s", hpath("rl_fifo"));
  snprintf(base, sizeof base, "%s", hpath("rl_base.h5"));
  remove(fifo);
  ck_assert_int_eq(mkfifo(fifo, 0644), 0);
  f = ts_h5_create(base); /* an HDF5 file without kind = block_scheduler, as a base checkpoint */
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(ts_h5_write_f32(f, "model/w", obs, 2, d2), 0);
  ck_assert_int_eq(ts_h5_commit(f), 0);
  char a[2048];
  const char *rl = "rl train --config configs/pusht_scheduler.ini --ckpt b.h5 --rollouts r.h5";
  snprintf(a, sizeof a, "%s --out %s/nodir/o.h5", rl, tmp_dir());
  refused(a, "nodir/o.h5: cannot write here (the folder does not exist)");
  snprintf(a, sizeof a, "%s --out %s", rl, fifo);
  refused(a, "rl_fifo: is not a regular file");
  snprintf(a, sizeof a, "%s --out %s", rl, tmp_dir());
  refused(a, "is a directory");
  snprintf(a, sizeof a, "%s --out %s", rl, base);
  refused(a, "rl_base.h5: is not a scheduler checkpoint");
  /* --fresh replaces it on purpose: that check is passed (it fails later, on the missing base) */
  snprintf(a, sizeof a, "%s --out %s --fresh --cost %s", rl, base, hpath("no_cost.ini"));
  refused(a, "no_cost.ini: cannot open the cost model");
  ck_assert(is_fifo(fifo));
}
END_TEST

/* A training config too large to train (values, gradients, AdamW moments, EMA) is refused in
 * one line naming the config and the size, before anything is allocated (it used to allocate
 * until the machine ran out of memory). */
START_TEST(test_model_too_large_to_train) {
  ts_config c;
  ts_config_defaults(&c);
  ck_assert_int_eq(ts_config_override(&c, "model.down_dims=4096,4096,4096,4096"), 0);
  ck_assert_int_eq(ts_config_override(&c, "model.kernel_size=15"), 0);
  ck_assert_int_ne(ts_model_check_size(&c, 2, 20, "big.ini", 5, "values, gradients, AdamW m and v, EMA"), 0);
  ck_assert_msg(strstr(ts_error(), "big.ini: the unet [model] describes has ") && strstr(ts_error(), "M parameters") &&
                    strstr(ts_error(), "GiB, above the limit of"),
                "%s", ts_error());
  ts_config_defaults(&c);
  ck_assert_int_eq(ts_config_override(&c, "model.type=transformer"), 0);
  ck_assert_int_eq(ts_config_override(&c, "model.n_emb=4096"), 0);
  ck_assert_int_eq(ts_config_override(&c, "model.n_layer=64"), 0);
  ck_assert_int_eq(ts_config_override(&c, "model.n_head=4"), 0);
  ck_assert_int_ne(ts_model_check_size(&c, 2, 20, "distill config", 6, "x"), 0);
  ck_assert_msg(strstr(ts_error(), "distill config: the transformer [model] describes"), "%s", ts_error());
  ts_config_defaults(&c);
  ck_assert_int_eq(ts_model_check_size(&c, 2, 20, "config", 5, "x"), 0);
  /* a lowered limit refuses the default model too */
  ts_set_max_array_bytes(1 << 20);
  ck_assert_int_ne(ts_model_check_size(&c, 2, 20, "config", 5, "x"), 0);
  ts_set_max_array_bytes(0);
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  char a[2048];
  snprintf(a, sizeof a,
           "train --config configs/pusht_lowdim.ini --data %s --out %s --max-steps 1 model.down_dims=4096,4096,4096,4096 "
           "model.kernel_size=15",
           infer_tiny_data(), hpath("big.h5"));
  refused(a, "config: the unet [model] describes has ");
}
END_TEST

/* Regression (probe): a checkpoint with flipped bytes made `tsdp eval` spin: HDF5 1.10 zeroes
 * the length a variable-length string's descriptor states before reading it, and a flipped
 * high byte stated 4 GB. The stored length is read from the object header first and one longer
 * than the file is refused in one line. */
START_TEST(test_h5_damaged_string_length) {
  const char *path = hpath("vlen_flip.h5");
  enum { LEN = 54321 }; /* 0x0000D431: its descriptor's bytes 31 D4 00 00 */
  char *text = malloc(LEN + 1);
  memset(text, 'x', LEN);
  text[LEN] = 0;
  ts_h5 *f = ts_h5_create(path);
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(ts_h5_attr_str(f, "/", "config", text), 0);
  ck_assert_int_eq(ts_h5_attr_str(f, "/", "short", "abc"), 0);
  ck_assert_int_eq(ts_h5_commit(f), 0);
  f = ts_h5_open(path);
  char *back = ts_h5_get_attr_str(f, "/", "config");
  ck_assert_msg(back && strlen(back) == LEN, "%s", ts_error());
  free(back);
  ts_h5_close(f);
  /* flip the descriptor's length's top byte: 0xF000D431 bytes */
  FILE *fp = fopen(path, "r+b");
  ck_assert_ptr_nonnull(fp);
  static unsigned char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, fp), hits = 0, at = 0;
  for (size_t i = 0; i + 4 <= n; i++)
    if (buf[i] == 0x31 && buf[i + 1] == 0xD4 && buf[i + 2] == 0 && buf[i + 3] == 0 && i + 8 <= n &&
        (buf[i + 4] | buf[i + 5] | buf[i + 6] | buf[i + 7])) /* followed by the heap's address, not the heap
                                                                 object's own 8-byte size */
      hits++, at = i;
  ck_assert_msg(hits == 1, "%zu candidate descriptors", hits);
  ck_assert_int_eq(fseek(fp, (long)at + 3, SEEK_SET), 0);
  ck_assert_int_eq(fputc(0xF0, fp), 0xF0);
  fclose(fp);
  f = ts_h5_open(path);
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_null(ts_h5_get_attr_str(f, "/", "config"));
  ck_assert_msg(strstr(ts_error(), "vlen_flip.h5: attribute 'config' on '/' claims a string of 4026586161 bytes, longer than "
                                   "the file"),
                "%s", ts_error());
  back = ts_h5_get_attr_str(f, "/", "short"); /* the others still read */
  ck_assert_msg(back && !strcmp(back, "abc"), "%s", ts_error());
  free(back);
  ts_h5_close(f);
  free(text);
  SKIP_IF(!getenv("TSDP_BIN"), "TSDP_BIN (the tsdp binary) is not set");
  char a[1024];
  snprintf(a, sizeof a, "eval --ckpt %s --episodes 1", path);
  refused(a, "claims a string of 4026586161 bytes");
}
END_TEST

Suite *suite_harden(void) {
  Suite *s = suite_create("harden");
  TCase *tc = tcase_create("harden");
  tcase_set_timeout(tc, 1500); /* the fuzz smoke runs; each command has its own timeout */
  tcase_add_test(tc, test_array_limit);
  tcase_add_test(tc, test_config_control_chars);
  tcase_add_test(tc, test_cli_flags_known);
  tcase_add_test(tc, test_cli_non_regular_files);
  tcase_add_test(tc, test_config_long_lines_and_error_lines);
  tcase_add_test(tc, test_eval_obs_key_order);
  tcase_add_test(tc, test_h5_write_failure_exits_cleanly);
  tcase_add_test(tc, test_dataset_demo_names);
  tcase_add_test(tc, test_windows_stay_in_episode);
  tcase_add_test(tc, test_fuzz_smoke);
  tcase_add_test(tc, test_kill_resume_short);
  tcase_add_test(tc, test_outputs_never_replace_special_files);
  tcase_add_test(tc, test_output_is_not_an_input);
  tcase_add_test(tc, test_cost_model_regular_file);
  tcase_add_test(tc, test_allreduce_floats_list);
  tcase_add_test(tc, test_sampler_options_that_do_nothing);
  tcase_add_test(tc, test_plot_prefix);
  tcase_add_test(tc, test_png_write_failure);
  tcase_add_test(tc, test_top_level_usage);
  tcase_add_test(tc, test_error_line_escapes_controls);
  tcase_add_test(tc, test_rl_train_checks_first);
  tcase_add_test(tc, test_model_too_large_to_train);
  tcase_add_test(tc, test_h5_damaged_string_length);
  suite_add_tcase(s, tc);
  return s;
}
