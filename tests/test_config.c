/* core/config: one table row per key (type, default, range, description). Defaults and the
 * INI text are what they were before the table; integers are range-checked as 64-bit before
 * they are narrowed; struct-level checks name the key and value; cross-field rules hold. */
#include "tests.h"
#include "core/config.h"
#include "core/error.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ts_config_to_ini of the defaults as written before the table (checkpoints store this text
 * and the resume recipe check compares it line by line). [pipeline] came with tsdp pipeline; a
 * checkpoint written before it parses with that section's defaults, so it still resumes. */
static const char *const default_ini =
    "[data]\n"
    "obs_keys = keypoint, agent_pos\n"
    "horizon = 16\n"
    "n_obs_steps = 2\n"
    "n_action_steps = 8\n"
    "pad_before = 1\n"
    "pad_after = 7\n"
    "val_ratio = 0.02\n"
    "max_train_episodes = 90\n"
    "seed = 42\n"
    "\n"
    "[model]\n"
    "type = unet\n"
    "down_dims = 64, 128, 256\n"
    "kernel_size = 5\n"
    "n_groups = 8\n"
    "step_embed_dim = 256\n"
    "n_emb = 256\n"
    "n_head = 4\n"
    "n_layer = 8\n"
    "causal_attn = 1\n"
    "p_drop_emb = 0\n"
    "p_drop_attn = 0.01\n"
    "\n"
    "[diffusion]\n"
    "num_train_timesteps = 100\n"
    "clip_sample = 1\n"
    "beta_schedule = squaredcos_cap_v2\n"
    "prediction_type = epsilon\n"
    "\n"
    "[train]\n"
    "batch_size = 256\n"
    "lr = 0.0001\n"
    "beta1 = 0.94999999999999996\n"
    "beta2 = 0.999\n"
    "eps = 1e-08\n"
    "weight_decay = 9.9999999999999995e-07\n"
    "warmup_steps = 500\n"
    "epochs = 3000\n"
    "max_steps = 0\n"
    "ema_power = 0.75\n"
    "ema_max_decay = 0.99990000000000001\n"
    "seed = 42\n"
    "checkpoint_every = 500\n"
    "log_every = 20\n"
    "eval_every = 0\n"
    "eval_episodes = 10\n"
    "threads = 0\n"
    "grad_shards = 0\n"
    "\n"
    "[distill]\n"
    "objective = reject\n"
    "chains = 64\n"
    "buffer_chains = 256\n"
    "refresh_every = 200\n"
    "heldout_chains = 16\n"
    "eps_weight = 0.10000000000000001\n"
    "late_steps = 10\n"
    "late_weight = 1\n"
    "unroll = 0\n"
    "temporal = 0\n"
    "t_max = 0\n"
    "init = \n"
    "\n"
    "[rl]\n"
    "blocks = 1, 2, 3, 4, 6, 8, 12, 16\n"
    "cost_model = \n"
    "lossy = 0\n"
    "tolerances = 0\n"
    "score_weight = 20\n"
    "sim_episodes = 2\n"
    "sim_seed_start = 100010\n"
    "sim_seed_count = 40\n"
    "hidden = 64\n"
    "layers = 2\n"
    "lr = 0.00029999999999999997\n"
    "clip = 0.20000000000000001\n"
    "gamma = 1\n"
    "lam = 0.94999999999999996\n"
    "vf_coef = 0.5\n"
    "ent_coef = 0.01\n"
    "max_grad_norm = 0.5\n"
    "epochs = 4\n"
    "minibatch = 64\n"
    "chains_per_update = 8\n"
    "chain_shards = 0\n"
    "updates = 50\n"
    "accept_chains = 16\n"
    "accept_block = 16\n"
    "seed = 1\n"
    "log_every = 1\n"
    "checkpoint_every = 10\n"
    "\n"
    "[eval]\n"
    "sampler = ddpm\n"
    "steps = 100\n"
    "episodes = 50\n"
    "seed_start = 100000\n"
    "\n"
    "[pipeline]\n"
    "include = \n"
    "data = \n"
    "out = runs/pipeline\n"
    "base_config = configs/pusht_lowdim.ini\n"
    "drafter_config = configs/pusht_drafter.ini\n"
    "scheduler_config = configs/pusht_scheduler.ini\n"
    "base_set = \n"
    "drafter_set = \n"
    "scheduler_set = \n"
    "base_steps = 0\n"
    "drafter_steps = 0\n"
    "rl_updates = 0\n"
    "rollout_episodes = 20\n"
    "rollout_seed_start = 100010\n"
    "rollout_sampler = ddpm\n"
    "rollout_steps = 10\n"
    "cost_reps = 15\n"
    "threads = 1\n"
    "eval_episodes = 50\n"
    "eval_seed_start = 100000\n"
    "ddim_steps = 10\n"
    "spec_blocks = 4, 8\n"
    "x0_block = 0\n"
    "eval_static = 1\n"
    "bench_windows = 20\n"
    "gif_count = 2\n"
    "torch_reference = 1\n";

START_TEST(test_config_defaults_and_ini_unchanged) {
  ts_config c;
  ts_config_defaults(&c);
  ck_assert_msg(ts_config_validate(&c, "defaults") == 0, "%s", ts_error());
  char *s = ts_config_to_ini(&c);
  ck_assert_str_eq(s, default_ini);
  /* The text parses back to the same struct, byte for byte. */
  ts_config b;
  ts_config_defaults(&b);
  ck_assert_msg(ts_config_parse_string(&b, s, "ini") == 0, "%s", ts_error());
  ck_assert_mem_eq(&b, &c, sizeof c);
  free(s);
  /* The listing names every key, with its default, type and description. */
  char *h = ts_config_help();
  ck_assert_msg(strstr(h, "[train] batch_size = 256 (int, in 1..65536): ") && strstr(h, "[train] lr = 1e-4 (number, in [1e-30, 1000]): ") &&
                    strstr(h, "[data] val_ratio = 0.02 (number, in [0, 1)): ") && strstr(h, "[model] type = unet (name, one of unet transformer): ") &&
                    strstr(h, "[data] seed = 42 (int): "),
                "%s", h);
  const char *p = default_ini, *sec = "";
  char secbuf[32], line[128];
  for (; *p; p += strcspn(p, "\n") + 1) {
    int n = (int)strcspn(p, "\n");
    if (*p == '[') {
      snprintf(secbuf, sizeof secbuf, "%.*s", n, p);
      sec = secbuf;
    } else if (n) {
      snprintf(line, sizeof line, "%s %.*s=", sec, (int)strcspn(p, "="), p);
      ck_assert_msg(strstr(h, line), "help lacks '%s'", line);
    }
  }
  free(h);
}
END_TEST

/* Regression: integers were parsed as long and narrowed to int before any check, so
 * batch_size = 4294967304 became 8 and was accepted. */
START_TEST(test_config_ints_checked_before_narrowing) {
  const char *bad[] = {"train.batch_size=4294967304", "data.seed=4294967338",   "data.seed=-4294967254",
                       "train.max_steps=99999999999999999999", "train.max_steps=2000000000000",
                       "model.down_dims=4294967304,16", "eval.seed_start=-1", "train.threads=4294967297"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ts_config c;
    ts_config_defaults(&c);
    ck_assert_msg(ts_config_override(&c, bad[i]) != 0, "%s accepted", bad[i]);
    char key[64];
    snprintf(key, sizeof key, "%s", strchr(bad[i], '.') + 1);
    const char *val = strchr(key, '=') + 1;
    *strchr(key, '=') = 0;
    char want[160];
    snprintf(want, sizeof want, "%s = %.*s", key, (int)strcspn(val, ","), val);
    ck_assert_msg(strstr(ts_error(), want) && strstr(ts_error(), "must be in"), "%s: %s", bad[i], ts_error());
    /* nothing was written */
    ts_config d;
    ts_config_defaults(&d);
    ck_assert_mem_eq(&c, &d, sizeof c);
  }
  /* In a file, with its line. */
  ts_config c;
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_parse_string(&c, "[train]\nbatch_size = 4294967304\n", "big.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "big.ini:2") && strstr(ts_error(), "batch_size = 4294967304"), "%s", ts_error());
  /* The edges themselves are fine. */
  ts_config_defaults(&c);
  ck_assert_msg(ts_config_override(&c, "data.seed=-2147483648") == 0, "%s", ts_error());
  ck_assert_msg(ts_config_override(&c, "train.max_steps=1099511627776") == 0, "%s", ts_error());
  ck_assert_int_eq(c.data.seed, -2147483647 - 1);
  ck_assert(c.train.max_steps == 1099511627776L);
}
END_TEST

/* Regression (hostile-input probe): "8,,16" was read as 8, 16, a repeated obs key was kept
 * twice, and a key set twice in one file silently took the last value. All are refused; an
 * override may still replace a file's value. */
START_TEST(test_config_empty_entries_duplicates) {
  const char *bad[] = {"model.down_dims=8,,16", "model.down_dims=8,16,", "model.down_dims=,8", "data.obs_keys=keypoint,,agent_pos",
                       "data.obs_keys=keypoint,", "rl.blocks=1, ,2", "pipeline.spec_blocks=4,8,,"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ts_config c;
    ts_config_defaults(&c);
    ck_assert_msg(ts_config_override(&c, bad[i]) != 0, "%s accepted", bad[i]);
    ck_assert_msg(strstr(ts_error(), "is empty (a stray comma?)"), "%s: %s", bad[i], ts_error());
  }
  ts_config c;
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_parse_string(&c, "[model]\ndown_dims = 8,,16\n", "t.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "t.ini:2: [model] down_dims: entry 2 of '8,,16' is empty"), "%s", ts_error());
  ck_assert_int_ne(ts_config_override(&c, "data.obs_keys=keypoint, keypoint"), 0);
  ck_assert_msg(strstr(ts_error(), "[data] obs_keys: 'keypoint' is listed twice"), "%s", ts_error());
  ck_assert_int_ne(ts_config_parse_string(&c, "[data]\nhorizon = 16\n; again\nhorizon = 32\n", "d.ini"), 0);
  ck_assert_msg(strstr(ts_error(), "d.ini:4: key 'horizon' in [data] is already set on line 2"), "%s", ts_error());
  /* the same key in two sections is two keys; a file then an override is fine */
  ts_config_defaults(&c);
  ck_assert_msg(ts_config_parse_string(&c, "[train]\nseed = 3\n[data]\nseed = 4\nhorizon = 16\n", "ok.ini") == 0, "%s",
                ts_error());
  ck_assert_msg(ts_config_override(&c, "data.horizon=32") == 0, "%s", ts_error());
  ck_assert_int_eq(c.data.horizon, 32);
  ck_assert_msg(ts_config_override(&c, "model.down_dims= 8 , 16 ") == 0, "%s", ts_error());
  ck_assert_int_eq(c.model.n_levels, 2);
}
END_TEST

/* A struct filled in code (as ts_train receives it) is checked against the same table. */
START_TEST(test_config_validate_struct) {
  ts_config c;
  ts_config_defaults(&c);
  c.train.lr = -1;
  ck_assert_int_ne(ts_config_validate(&c, "o"), 0);
  ck_assert_msg(strstr(ts_error(), "o: [train] lr = -1 must be in [1e-30, 1000]"), "%s", ts_error());
  ts_config_defaults(&c);
  c.data.val_ratio = 1;
  ck_assert_int_ne(ts_config_validate(&c, "o"), 0);
  ck_assert_msg(strstr(ts_error(), "val_ratio = 1 must be in [0, 1)"), "%s", ts_error());
  ts_config_defaults(&c);
  c.train.log_every = 0;
  ck_assert_int_ne(ts_config_validate(&c, "o"), 0);
  ck_assert_msg(strstr(ts_error(), "[train] log_every = 0 must be in 1..1073741824"), "%s", ts_error());
  ts_config_defaults(&c);
  c.train.max_steps = -3;
  ck_assert_int_ne(ts_config_validate(&c, "o"), 0);
  ck_assert_msg(strstr(ts_error(), "max_steps = -3"), "%s", ts_error());
  ts_config_defaults(&c);
  c.model.causal_attn = 2;
  ck_assert_int_ne(ts_config_validate(&c, "o"), 0);
  ck_assert_msg(strstr(ts_error(), "causal_attn"), "%s", ts_error());
  ts_config_defaults(&c);
  c.eval.sampler = 9;
  ck_assert_int_ne(ts_config_validate(&c, "o"), 0);
  ck_assert_msg(strstr(ts_error(), "sampler"), "%s", ts_error());
  ts_config_defaults(&c);
  c.model.n_levels = 0;
  ck_assert_int_ne(ts_config_validate(&c, "o"), 0);
  ck_assert_msg(strstr(ts_error(), "down_dims"), "%s", ts_error());
  ts_config_defaults(&c);
  c.model.down_dims[1] = 5000;
  ck_assert_int_ne(ts_config_validate(&c, "o"), 0);
  ck_assert_msg(strstr(ts_error(), "down_dims = 5000"), "%s", ts_error());
  ts_config_defaults(&c);
  c.data.obs_keys[1][0] = 0;
  ck_assert_int_ne(ts_config_validate(&c, "o"), 0);
  ck_assert_msg(strstr(ts_error(), "obs_keys"), "%s", ts_error());
}
END_TEST

/* Rules between keys stay explicit code after the table. */
START_TEST(test_config_cross_field_rules) {
  ts_config c;
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_override(&c, "data.pad_before=17"), 0); /* > horizon 16 */
  ck_assert_msg(strstr(ts_error(), "pad_before = 17 must be in 0..16"), "%s", ts_error());
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_override(&c, "data.horizon=8"), 0); /* 2 - 1 + 8 > 8 */
  ck_assert_msg(strstr(ts_error(), "n_obs_steps - 1 + n_action_steps <= horizon"), "%s", ts_error());
  ts_config_defaults(&c);
  ck_assert_int_eq(ts_config_override(&c, "data.n_action_steps=4"), 0);
  ck_assert_int_ne(ts_config_override(&c, "data.horizon=10"), 0); /* U-Net: 10 % 4 */
  ck_assert_msg(strstr(ts_error(), "divisible by 2^(levels-1)"), "%s", ts_error());
  ck_assert_int_eq(ts_config_override(&c, "model.type=transformer"), 0);
  ck_assert_msg(ts_config_override(&c, "data.horizon=10") == 0, "transformer: %s", ts_error());
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_override(&c, "model.n_head=3"), 0);
  ck_assert_msg(strstr(ts_error(), "n_emb = 256 must be even and divisible by n_head = 3"), "%s", ts_error());
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_override(&c, "eval.steps=101"), 0);
  ck_assert_msg(strstr(ts_error(), "eval steps must be in 1..num_train_timesteps"), "%s", ts_error());
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_override(&c, "model.kernel_size=4"), 0);
  ck_assert_msg(strstr(ts_error(), "kernel_size must be odd"), "%s", ts_error());
  ts_config_defaults(&c);
  ck_assert_int_ne(ts_config_override(&c, "diffusion.beta_schedule=linear"), 0);
  ck_assert_msg(strstr(ts_error(), "beta_schedule 'linear' unsupported"), "%s", ts_error());
}
END_TEST

/* A number list (rl.tolerances): parsed, range-checked entry by entry, printed back to the
 * same struct; a bad entry names itself. */
START_TEST(test_config_number_list) {
  ts_config c;
  ts_config_defaults(&c);
  ck_assert_msg(ts_config_override(&c, "rl.lossy=true") == 0, "%s", ts_error());
  ck_assert_msg(ts_config_override(&c, "rl.tolerances=0, 0.001 ,0.25,3") == 0, "%s", ts_error());
  ck_assert_int_eq(c.rl.n_tolerances, 4);
  ck_assert(c.rl.tolerances[1] == 0.001 && c.rl.tolerances[3] == 3);
  char *s = ts_config_to_ini(&c);
  ck_assert_msg(strstr(s, "tolerances = 0, 0.001, 0.25, 3\n"), "%s", s);
  ts_config b;
  ts_config_defaults(&b);
  ck_assert_msg(ts_config_parse_string(&b, s, "ini") == 0, "%s", ts_error());
  ck_assert_mem_eq(&b, &c, sizeof c);
  free(s);
  ck_assert_int_ne(ts_config_override(&c, "rl.tolerances=0,-1"), 0);
  ck_assert_msg(strstr(ts_error(), "-1") && strstr(ts_error(), "[0, 100]"), "%s", ts_error());
  ck_assert_int_ne(ts_config_override(&c, "rl.tolerances=0,,1"), 0);
  ck_assert_msg(strstr(ts_error(), "empty"), "%s", ts_error());
  ck_assert_int_ne(ts_config_override(&c, "rl.tolerances=nan"), 0);
  ck_assert_int_eq(c.rl.n_tolerances, 4); /* unchanged by the refused values */
}
END_TEST

Suite *suite_config(void) {
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("config");
  tcase_add_test(tc, test_config_defaults_and_ini_unchanged);
  tcase_add_test(tc, test_config_number_list);
  tcase_add_test(tc, test_config_ints_checked_before_narrowing);
  tcase_add_test(tc, test_config_validate_struct);
  tcase_add_test(tc, test_config_empty_entries_duplicates);
  tcase_add_test(tc, test_config_cross_field_rules);
  suite_add_tcase(s, tc);
  return s;
}
