/* config.h: every run is driven by an INI file (configs/) plus "section.key=value"
 * overrides. One struct holds the stages' settings; each key is one row of a table (type,
 * default, range, description), all keys are validated in one place and an unknown section or
 * key is refused naming it (and the file and line). */
#ifndef TS_CONFIG_H
#define TS_CONFIG_H

#define TS_CFG_MAXKEYS 8

/* Enumerated settings: parsed once from their names (ts_enum_parse), compared as ints. */
typedef enum { TS_MODEL_UNET, TS_MODEL_TRANSFORMER, TS_MODEL_COUNT } ts_model_type;
typedef enum { TS_DISTILL_REJECT, TS_DISTILL_DELTA2, TS_DISTILL_MSE, TS_DISTILL_COUNT } ts_distill_objective;
typedef enum { TS_SAMPLER_DDPM, TS_SAMPLER_DDIM, TS_SAMPLER_SPEC, TS_SAMPLER_COUNT } ts_sampler_kind;
extern const char *const ts_model_type_names[TS_MODEL_COUNT + 1];     /* NULL-terminated */
extern const char *const ts_sampler_names[TS_SAMPLER_COUNT + 1];      /* NULL-terminated */
extern const char *const ts_distill_objective_names[TS_DISTILL_COUNT + 1];
/* Index of name in the NULL-terminated table, or -1 (with a message naming `what` and the
 * accepted names). */
int ts_enum_parse(const char *const *names, const char *name, const char *what);

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
    int type; /* ts_model_type */
    /* ConditionalUnet1D */
    int down_dims[6], n_levels;
    int kernel_size, n_groups, step_embed_dim;
    /* TransformerForDiffusion */
    int n_emb, n_head, n_layer, causal_attn;
    double p_drop_emb, p_drop_attn;
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
    int grad_shards; /* 0: one per rank (train/parallel.h) */
  } train;
  struct { /* drafter distillation (train/distill.h); the drafter's optimiser is [train]'s */
    int objective; /* ts_distill_objective */
    int chains, buffer_chains, refresh_every, heldout_chains, late_steps, unroll;
    int temporal; /* the drafter also sees each observation's control step (infer/spec.h) */
    int t_max;    /* > 0: a late-step specialist, trained on states t < t_max only (infer/drafter.h) */
    double eps_weight, late_weight;
    char init[256]; /* a drafter checkpoint whose EMA weights start this one; empty: random */
  } distill;
  struct { /* the PPO block scheduler (rl/sched.h) */
    int blocks[8], n_blocks;  /* the draft lengths it chooses from */
    char cost_model[256];     /* the cost model file (infer/blocks.h), written by tsdp bench cost */
    int lossy;                /* the relaxed LOSSY mode (rl/sched.h): tolerances in the action, score in the reward */
    double tolerances[8];     /* lossy: acceptance tolerances tau the action picks from; exact: {0} */
    int n_tolerances;
    double score_weight;      /* lossy: reward per unit of an episode's Push-T score */
    int sim_episodes, sim_seed_start, sim_seed_count; /* lossy: episodes per update, their seeds */
    int hidden, layers, epochs, minibatch, chains_per_update, updates, accept_chains, accept_block;
    int chain_shards;         /* 0: one per rank (rl/sched.h) */
    int seed, log_every, checkpoint_every;
    double lr, clip, gamma, lam, vf_coef, ent_coef, max_grad_norm;
  } rl;
  struct {
    int sampler; /* ts_sampler_kind */
    int steps;   /* inference steps for ddim, drafted steps per round for spec */
    int episodes, seed_start;
  } eval;
  struct ts_pipeline_cfg { /* tsdp pipeline (cli/pipeline.c): the stages, their config files and sizes */
    char include[256];    /* a pipeline config this one is layered on (relative to this file) */
    char data[256];       /* Push-T zarr folder (imported) or an imported .h5 */
    char out[256];        /* output folder */
    char base_config[256], drafter_config[256], scheduler_config[256];
    char base_set[200], drafter_set[200], scheduler_set[200]; /* space-separated section.key=value */
    long base_steps, drafter_steps; /* 0: the stage config's max_steps */
    int rl_updates;                 /* 0: the scheduler config's */
    int rollout_episodes, rollout_seed_start, rollout_sampler, rollout_steps;
    int cost_reps, threads;
    int eval_episodes, eval_seed_start, ddim_steps;
    int spec_blocks[8], n_spec_blocks;
    int x0_block; /* > 0: a row with the training-free x0 drafter at this L */
    int eval_static, bench_windows, gif_count;
    int torch_reference; /* time a DDPM chunk in PyTorch on the base (scripts/bench_torch.py) */
  } pipeline;
} ts_config;

/* Config text: lines of at most TS_CONFIG_MAX_LINE characters (a longer line is refused, not
 * split), files of at most TS_CONFIG_MAX_BYTES; a file must be a regular file (a folder, FIFO or
 * device is refused before it is opened). Errors are "ORIGIN:LINE: message", the line and
 * message of the same (first) error. */
#define TS_CONFIG_MAX_LINE 198
#define TS_CONFIG_MAX_BYTES (1 << 20)

void ts_config_defaults(ts_config *c);
int ts_config_load(ts_config *c, const char *path);
int ts_config_parse_string(ts_config *c, const char *text, const char *origin);
/* "section.key=value" */
int ts_config_override(ts_config *c, const char *kv);
/* Every key's range (one table row per key in config.c, which also holds its default and
 * description), then the rules between keys (divisibility, horizon vs n_obs_steps +
 * n_action_steps, U-Net-only checks when model.type is unet, n_emb % n_head). Messages name
 * the key and its value. Parsing refuses out-of-range values already (integers as 64-bit,
 * before narrowing); this also covers a struct filled in code. */
int ts_config_validate(const ts_config *c, const char *origin);
/* One line per key, "[section] key = default (type, range): description" (malloc'd). */
char *ts_config_help(void);
/* The resolved configuration as INI text (malloc'd); parses back to the same struct. */
char *ts_config_to_ini(const ts_config *c);

#endif
