/* config.h: every run is driven by an INI file (configs/) plus "section.key=value"
 * overrides. One struct holds the stages' settings; all keys are validated in one place and an
 * unknown section or key is refused naming it (and the file and line). */
#ifndef TS_CONFIG_H
#define TS_CONFIG_H

#define TS_CFG_MAXKEYS 8

typedef struct ts_config {
  struct {
    char obs_keys[TS_CFG_MAXKEYS][32];
    int n_obs_keys;
    int horizon, n_obs_steps, n_action_steps, pad_before, pad_after;
    double val_ratio;
    int max_train_episodes;
    int seed;
  } data;
  struct {
    int down_dims[6], n_levels;
    int kernel_size, n_groups, step_embed_dim;
  } model;
  struct {
    int num_train_timesteps;
    int clip_sample;
    char beta_schedule[32];
    char prediction_type[16];
  } diffusion;
  struct {
    int batch_size;
    double lr, beta1, beta2, eps, weight_decay;
    int warmup_steps, epochs;
    long max_steps; /* 0: epochs decide */
    double ema_power, ema_max_decay;
    int seed, checkpoint_every, log_every, eval_every, eval_episodes, threads;
  } train;
  struct {
    char sampler[16]; /* ddpm | ddim */
    int steps;        /* inference steps for ddim */
    int episodes, seed_start;
  } eval;
} ts_config;

void ts_config_defaults(ts_config *c);
int ts_config_load(ts_config *c, const char *path);
int ts_config_parse_string(ts_config *c, const char *text, const char *origin);
/* "section.key=value" */
int ts_config_override(ts_config *c, const char *kv);
/* Cross-field checks (divisibility, ranges). */
int ts_config_validate(const ts_config *c, const char *origin);
/* The resolved configuration as INI text (malloc'd); parses back to the same struct. */
char *ts_config_to_ini(const ts_config *c);

#endif
