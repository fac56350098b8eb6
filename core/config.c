#include "config.h"
#include "error.h"
#include "sizes.h"
#include <ini.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { T_INT, T_LONG, T_DBL, T_BOOL, T_STR, T_INTLIST, T_STRLIST, T_ENUM, T_DBLLIST };

const char *const ts_model_type_names[TS_MODEL_COUNT + 1] = {"unet", "transformer", NULL};
const char *const ts_sampler_names[TS_SAMPLER_COUNT + 1] = {"ddpm", "ddim", "spec", NULL};
const char *const ts_distill_objective_names[TS_DISTILL_COUNT + 1] = {"reject", "delta2", "mse", NULL};

int ts_enum_parse(const char *const *names, const char *name, const char *what) {
  char list[256] = "";
  for (int i = 0; names[i]; i++) {
    if (!strcmp(names[i], name)) return i;
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
  }
  return ts_fail("%s '%s' unknown (%s)", what, name, list);
}

/* One row per key: where it lives, its type, its default (as the text an INI file would hold,
 * parsed by the same code as a file), its range and what it means. Numbers outside the range
 * are refused when parsed (integers as 64-bit, before narrowing) and by ts_config_validate;
 * cross-field rules are explicit code after the table checks. */
typedef struct {
  const char *section, *key;
  int type;
  size_t off, size;         /* size: string capacity or list capacity */
  size_t count_off;         /* lists: offset of the int count */
  const char *const *names; /* enums: the accepted names, NULL-terminated */
  const char *def;          /* the default, as INI text */
  double lo, hi;            /* numbers and integer-list entries: the range */
  char lo_open, hi_open;    /* doubles: 1 excludes that end */
  const char *doc;          /* one line: what the key means */
} field;

#define OFF(m) offsetof(ts_config, m)
#define SZ(m) sizeof(((ts_config *)0)->m)
/* int / long in lo..hi; an int with the whole int range (seeds); a double in [lo, hi] or with
 * an open end ('(' or ')'); a bool; a string; an enum; lists (count member, capacity). */
#define I(sec, k, m, def, lo, hi, doc) {sec, k, T_INT, OFF(m), SZ(m), 0, NULL, def, lo, hi, 0, 0, doc}
#define IANY(sec, k, m, def, doc) I(sec, k, m, def, INT_MIN, INT_MAX, doc)
#define LG(sec, k, m, def, lo, hi, doc) {sec, k, T_LONG, OFF(m), SZ(m), 0, NULL, def, lo, hi, 0, 0, doc}
#define D(sec, k, m, def, lb, lo, hi, rb, doc) {sec, k, T_DBL, OFF(m), SZ(m), 0, NULL, def, lo, hi, lb == '(', rb == ')', doc}
#define B(sec, k, m, def, doc) {sec, k, T_BOOL, OFF(m), SZ(m), 0, NULL, def, 0, 1, 0, 0, doc}
#define S(sec, k, m, def, doc) {sec, k, T_STR, OFF(m), SZ(m), 0, NULL, def, 0, 0, 0, 0, doc}
#define E(sec, k, m, tab, def, doc) {sec, k, T_ENUM, OFF(m), sizeof(int), 0, tab, def, 0, 0, 0, 0, doc}
#define IL(sec, k, m, cnt, cap, def, lo, hi, doc) {sec, k, T_INTLIST, OFF(m), cap, OFF(cnt), NULL, def, lo, hi, 0, 0, doc}
/* a list of doubles, each in [lo, hi] */
#define DL(sec, k, m, cnt, cap, def, lo, hi, doc) {sec, k, T_DBLLIST, OFF(m), cap, OFF(cnt), NULL, def, lo, hi, 0, 0, doc}
#define SL(sec, k, m, cnt, cap, def, doc) {sec, k, T_STRLIST, OFF(m), cap, OFF(cnt), NULL, def, 0, 0, 0, 0, doc}
#define G30 1073741824.0    /* 2^30 */
#define G40 1099511627776.0 /* 2^40 */

static const field fields[] = {
  SL("data", "obs_keys", data.obs_keys, data.n_obs_keys, TS_CFG_MAXKEYS, "keypoint, agent_pos",
     "observation keys concatenated into the low-dim observation"),
  I("data", "horizon", data.horizon, "16", 1, 1024, "length of the action sequence the model denoises"),
  I("data", "n_obs_steps", data.n_obs_steps, "2", 1, 1024, "observation steps the policy conditions on"),
  I("data", "n_action_steps", data.n_action_steps, "8", 1, 1024, "actions executed per policy call"),
  I("data", "pad_before", data.pad_before, "1", 0, 1024, "window padding before an episode start, at most horizon"),
  I("data", "pad_after", data.pad_after, "7", 0, 1024, "window padding after an episode end, at most horizon"),
  D("data", "val_ratio", data.val_ratio, "0.02", '[', 0, 1, ')', "fraction of episodes held out for validation"),
  I("data", "max_train_episodes", data.max_train_episodes, "90", 0, G30, "training episodes kept after the split"),
  IANY("data", "seed", data.seed, "42", "seed of the episode split"),
  E("model", "type", model.type, ts_model_type_names, "unet", "denoiser network"),
  IL("model", "down_dims", model.down_dims, model.n_levels, 6, "64, 128, 256", 1, 4096,
     "U-Net channels per level, multiples of n_groups"),
  I("model", "kernel_size", model.kernel_size, "5", 1, 15, "U-Net convolution kernel, odd"),
  I("model", "n_groups", model.n_groups, "8", 1, 4096, "U-Net GroupNorm groups"),
  I("model", "step_embed_dim", model.step_embed_dim, "256", 4, 4096, "diffusion-step embedding width, even"),
  I("model", "n_emb", model.n_emb, "256", 1, 4096, "Transformer width, even and divisible by n_head"),
  I("model", "n_head", model.n_head, "4", 1, 256, "Transformer attention heads"),
  I("model", "n_layer", model.n_layer, "8", 1, 64, "Transformer decoder layers"),
  B("model", "causal_attn", model.causal_attn, "true", "Transformer causal self-attention and condition mask"),
  D("model", "p_drop_emb", model.p_drop_emb, "0.0", '[', 0, 1, ')', "Transformer embedding dropout"),
  D("model", "p_drop_attn", model.p_drop_attn, "0.01", '[', 0, 1, ')', "Transformer attention dropout"),
  I("diffusion", "num_train_timesteps", diffusion.num_train_timesteps, "100", 2, 1000, "diffusion steps in training"),
  B("diffusion", "clip_sample", diffusion.clip_sample, "true", "clip the predicted x0 to [-1, 1] when sampling"),
  S("diffusion", "beta_schedule", diffusion.beta_schedule, "squaredcos_cap_v2", "noise schedule: squaredcos_cap_v2"),
  S("diffusion", "prediction_type", diffusion.prediction_type, "epsilon", "what the network predicts: epsilon"),
  I("train", "batch_size", train.batch_size, "256", 1, 65536, "windows per optimiser step"),
  D("train", "lr", train.lr, "1e-4", '[', 1e-30, 1e3, ']', "peak AdamW learning rate"),
  D("train", "beta1", train.beta1, "0.95", '[', 0, 1, ')', "AdamW beta1"),
  D("train", "beta2", train.beta2, "0.999", '[', 0, 1, ')', "AdamW beta2"),
  D("train", "eps", train.eps, "1e-8", '[', 1e-30, 1, ']', "AdamW epsilon"),
  D("train", "weight_decay", train.weight_decay, "1e-6", '[', 0, 1e3, ']', "AdamW decoupled weight decay"),
  I("train", "warmup_steps", train.warmup_steps, "500", 0, G30, "linear learning-rate warm-up steps"),
  I("train", "epochs", train.epochs, "3000", 0, G30, "epochs to train when max_steps is 0"),
  LG("train", "max_steps", train.max_steps, "0", 0, G40, "steps to train; 0: epochs decide"),
  D("train", "ema_power", train.ema_power, "0.75", '[', 1e-6, 1e3, ']', "EMA warm-up power"),
  D("train", "ema_max_decay", train.ema_max_decay, "0.9999", '[', 0, 1, ']', "EMA decay cap"),
  IANY("train", "seed", train.seed, "42", "seed of initialisation, noise and shuffles"),
  I("train", "checkpoint_every", train.checkpoint_every, "500", 1, G30, "steps between checkpoints"),
  I("train", "log_every", train.log_every, "20", 1, G30, "steps per history row and progress line"),
  I("train", "eval_every", train.eval_every, "0", 0, G30, "steps between closed-loop evaluations; 0: none"),
  I("train", "eval_episodes", train.eval_episodes, "10", 1, 1024, "episodes per evaluation in training"),
  I("train", "threads", train.threads, "0", 0, 256, "compute threads per rank; 0: the CPUs / ranks on this machine"),
  I("train", "grad_shards", train.grad_shards, "0", 0, 4096,
    "gradient shards of each batch, summed in order (train/parallel.h); 0: one per MPI rank"),
  E("distill", "objective", distill.objective, ts_distill_objective_names, "reject",
    "acceptance term: reject = expected rejection 1 - 2 Phi(-|Delta|/2), delta2 = |Delta|^2, mse = none (eps MSE only)"),
  I("distill", "chains", distill.chains, "64", 1, 4096,
    "base DDPM chains run at once (one batched base call per step) to make training states"),
  I("distill", "buffer_chains", distill.buffer_chains, "256", 1, 8192,
    "chains whose every visited state (x_t, t, cond, base eps) the buffer holds; a multiple of chains"),
  I("distill", "refresh_every", distill.refresh_every, "200", 1, G30,
    "steps between replacing the oldest `chains` chains of the buffer by fresh ones"),
  I("distill", "heldout_chains", distill.heldout_chains, "16", 1, 4096,
    "fresh chains for the predicted acceptance per diffusion step at the end (<out>.accept.png)"),
  D("distill", "eps_weight", distill.eps_weight, "0.1", '[', 0, 1e6, ']',
    "weight of the plain eps MSE added to the acceptance term w_t^2 |eps_base - eps_drafter|^2"),
  I("distill", "late_steps", distill.late_steps, "10", 0, 1000, "the last diffusion steps t < late_steps get late_weight"),
  D("distill", "late_weight", distill.late_weight, "1.0", '[', 0, 1e6, ']',
    "factor on the acceptance term at t < late_steps, where w_t rises again and drafts fail most"),
  I("distill", "unroll", distill.unroll, "0", 0, 64,
    "K > 0: the buffer also holds the states the drafter reaches unrolled from the base's chain (resynced every K "
    "steps), with the base's eps there; 0: base chains only"),
  B("distill", "temporal", distill.temporal, "false",
    "the drafter also reads each observation's control step within its episode (TS-DP's temporal input; ablation)"),
  I("distill", "t_max", distill.t_max, "0", 0, 1000,
    "> 0: a late-step specialist, trained only on states with t < t_max and used only there, beside a main drafter "
    "(--drafter MAIN.h5+LATE.h5); 0: every step"),
  S("distill", "init", distill.init, "",
    "a drafter checkpoint (same [model]) whose EMA weights start this one, e.g. the main drafter for a specialist; "
    "empty: random initialisation"),
  IL("rl", "blocks", rl.blocks, rl.n_blocks, 8, "1, 2, 3, 4, 6, 8, 12, 16", 1, 128,
     "draft lengths L the block scheduler chooses from, ascending"),
  S("rl", "cost_model", rl.cost_model, "", "cost model file written by tsdp bench cost (ms per target call by batch, per drafter call)"),
  B("rl", "lossy", rl.lossy, "false",
    "LOSSY relaxed mode: the action also picks an acceptance tolerance and the reward adds the Push-T score, trained "
    "on closed-loop episodes in the simulator; samples no longer follow DDPM's law"),
  DL("rl", "tolerances", rl.tolerances, rl.n_tolerances, 8, "0", 0, 100,
     "lossy mode: acceptance tolerances tau the action chooses from, ascending (a draft with |Delta| <= tau is kept "
     "without the exact test); exact mode: must be 0"),
  D("rl", "score_weight", rl.score_weight, "20", '[', 0, 1e6, ']',
    "lossy mode: reward of an episode's Push-T score (max coverage, 0..1), in units of the static schedule's cost per chunk"),
  I("rl", "sim_episodes", rl.sim_episodes, "2", 1, 1024, "lossy mode: closed-loop Push-T episodes collected per PPO update"),
  I("rl", "sim_seed_start", rl.sim_seed_start, "100010", 0, G30,
    "lossy mode: first Push-T seed of the training episodes (the simulator knows seeds 100000..100049; 100000..100009 "
    "are the held-out ones)"),
  I("rl", "sim_seed_count", rl.sim_seed_count, "40", 1, 1024,
    "lossy mode: training seeds cycled through: episode j of the run (update u, episode k: j = u * sim_episodes + k) "
    "has seed sim_seed_start + j mod sim_seed_count, with fresh sampling noise"),
  I("rl", "hidden", rl.hidden, "64", 1, 4096, "units per hidden layer of the actor and the critic"),
  I("rl", "layers", rl.layers, "2", 1, 4, "hidden layers of the actor and the critic"),
  D("rl", "lr", rl.lr, "3e-4", '(', 0, 1, ']', "Adam learning rate of PPO"),
  D("rl", "clip", rl.clip, "0.2", '(', 0, 1, ')', "PPO ratio clip epsilon"),
  D("rl", "gamma", rl.gamma, "1.0", '[', 0, 1, ']', "discount per round (1: the chunk's total cost)"),
  D("rl", "lam", rl.lam, "0.95", '[', 0, 1, ']', "GAE lambda"),
  D("rl", "vf_coef", rl.vf_coef, "0.5", '[', 0, 1e3, ']', "weight of the value loss"),
  D("rl", "ent_coef", rl.ent_coef, "0.01", '[', 0, 1e3, ']', "weight of the entropy bonus"),
  D("rl", "max_grad_norm", rl.max_grad_norm, "0.5", '(', 0, 1e6, ']', "gradient norm clip"),
  I("rl", "epochs", rl.epochs, "4", 1, 1000, "passes over each rollout batch"),
  I("rl", "minibatch", rl.minibatch, "64", 1, 1 << 20, "rounds per minibatch"),
  I("rl", "chains_per_update", rl.chains_per_update, "8", 1, 1 << 20,
    "speculative chains (episodes of the scheduling problem) collected per PPO update"),
  I("rl", "chain_shards", rl.chain_shards, "0", 0, 4096,
    "shards the chains of an update are cut into, each chain on its own random stream (rl/sched.h); 0: one per MPI "
    "rank; 1 with one rank: every chain on the run's stream"),
  I("rl", "updates", rl.updates, "50", 1, G30, "PPO updates to train (the run's steps)"),
  I("rl", "accept_chains", rl.accept_chains, "16", 1, 1 << 20,
    "chains at block accept_block on training windows to measure per-step acceptance for the static schedule"),
  I("rl", "accept_block", rl.accept_block, "16", 1, 128, "block of the acceptance measurement"),
  IANY("rl", "seed", rl.seed, "1", "seed of the scheduler's initialisation, window picks, chains and actions"),
  I("rl", "log_every", rl.log_every, "1", 1, G30, "updates per history row"),
  I("rl", "checkpoint_every", rl.checkpoint_every, "10", 1, G30, "updates between checkpoints"),
  E("eval", "sampler", eval.sampler, ts_sampler_names, "ddpm", "sampler for eval"),
  I("eval", "steps", eval.steps, "100", 1, 1000,
    "inference steps of ddim, drafted steps per round of spec; at most num_train_timesteps"),
  I("eval", "episodes", eval.episodes, "50", 1, 1024, "evaluation episodes"),
  I("eval", "seed_start", eval.seed_start, "100000", 0, G30, "first test seed"),
  S("pipeline", "include", pipeline.include, "",
    "a pipeline config loaded first, this file's keys on top (path relative to this file); empty: none"),
  S("pipeline", "data", pipeline.data, "", "Push-T demonstrations: a zarr folder (imported into OUT/data.h5) or an imported .h5"),
  S("pipeline", "out", pipeline.out, "runs/pipeline", "output folder of every stage, the report and the figures"),
  S("pipeline", "base_config", pipeline.base_config, "configs/pusht_lowdim.ini", "config of the base policy (tsdp train)"),
  S("pipeline", "drafter_config", pipeline.drafter_config, "configs/pusht_drafter.ini", "config of the drafter (tsdp distill)"),
  S("pipeline", "scheduler_config", pipeline.scheduler_config, "configs/pusht_scheduler.ini",
    "config of the PPO block scheduler (tsdp rl train); its rl.cost_model is the pipeline's cost stage"),
  S("pipeline", "base_set", pipeline.base_set, "", "space-separated section.key=value overrides of base_config"),
  S("pipeline", "drafter_set", pipeline.drafter_set, "", "space-separated section.key=value overrides of drafter_config"),
  S("pipeline", "scheduler_set", pipeline.scheduler_set, "", "space-separated section.key=value overrides of scheduler_config"),
  LG("pipeline", "base_steps", pipeline.base_steps, "0", 0, G40, "base training steps; 0: base_config's max_steps / epochs"),
  LG("pipeline", "drafter_steps", pipeline.drafter_steps, "0", 0, G40, "distillation steps; 0: drafter_config's max_steps"),
  I("pipeline", "rl_updates", pipeline.rl_updates, "0", 0, G30, "PPO updates; 0: scheduler_config's rl.updates"),
  I("pipeline", "rollout_episodes", pipeline.rollout_episodes, "20", 1, 1024,
    "closed-loop episodes recorded for the scheduler's training windows (tsdp rl record)"),
  I("pipeline", "rollout_seed_start", pipeline.rollout_seed_start, "100010", 0, G30,
    "first seed of the recorded episodes (the test seeds start at 100000)"),
  E("pipeline", "rollout_sampler", pipeline.rollout_sampler, ts_sampler_names, "ddpm",
    "sampler of the recorded episodes: ddpm (the exact law) or ddim (faster, approximate)"),
  I("pipeline", "rollout_steps", pipeline.rollout_steps, "10", 1, 1000, "DDIM steps when rollout_sampler = ddim"),
  I("pipeline", "cost_reps", pipeline.cost_reps, "15", 3, 100000, "timed calls per batch size in the cost model (tsdp bench cost)"),
  I("pipeline", "threads", pipeline.threads, "1", 1, 256, "threads of the cost model, bench spec and every evaluation"),
  I("pipeline", "eval_episodes", pipeline.eval_episodes, "50", 1, 1024, "closed-loop test episodes per evaluated sampler"),
  I("pipeline", "eval_seed_start", pipeline.eval_seed_start, "100000", 0, G30, "first test seed of the evaluations"),
  I("pipeline", "ddim_steps", pipeline.ddim_steps, "10", 1, 1000, "steps of the DDIM row"),
  IL("pipeline", "spec_blocks", pipeline.spec_blocks, pipeline.n_spec_blocks, 8, "4, 8", 1, 128,
     "fixed draft lengths L evaluated with the drafter (one row each) and benchmarked"),
  I("pipeline", "x0_block", pipeline.x0_block, "0", 0, 128,
    "> 0: one more row, exact speculation with the training-free x0 drafter at this L (no drafter file); 0: none"),
  B("pipeline", "eval_static", pipeline.eval_static, "true", "also evaluate the scheduler file's static DP schedule"),
  I("pipeline", "bench_windows", pipeline.bench_windows, "20", 0, 100000,
    "observation windows of the tsdp bench spec stage (acceptance per step plot); 0: no bench stage"),
  I("pipeline", "gif_count", pipeline.gif_count, "2", 0, 1024, "rollout GIFs written by the DDPM-100 and TS-DP evaluations"),
  B("pipeline", "torch_reference", pipeline.torch_reference, "true",
    "time the base's DDPM chunk at batch 1 in PyTorch (scripts/bench_torch.py --quick) for the report's vs-PyTorch "
    "column; without /usr/bin/python3 or its torch the column says n/a"),
};
#define NFIELDS ((int)(sizeof fields / sizeof fields[0]))

static int set_field(ts_config *c, const field *f, const char *value);

void ts_config_defaults(ts_config *c) {
  memset(c, 0, sizeof *c);
  for (int i = 0; i < NFIELDS; i++)
    if (set_field(c, &fields[i], fields[i].def)) abort(); /* a bad table: tests/test_config.c */
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) e--;
  *e = 0;
  return s;
}

/* A whole decimal integer as 64 bits; -1 when not one (or beyond 64 bits: *out saturates and
 * *overflow is set, so the range check names the text). */
static int parse_i64(const char *v, long long *out, int *overflow) {
  char *e;
  errno = 0;
  long long x = strtoll(v, &e, 10);
  if (e == v || *trim(e)) return -1;
  *overflow = errno == ERANGE;
  *out = x;
  return 0;
}

static int in_range(const field *f, double v) {
  return (f->lo_open ? v > f->lo : v >= f->lo) && (f->hi_open ? v < f->hi : v <= f->hi); /* NaN fails */
}

/* "[section] key = value must be in RANGE (what it is)"; value as text. */
static int range_fail(const char *o, const field *f, const char *value) {
  char prefix[256] = "";
  if (o) snprintf(prefix, sizeof prefix, "%s: ", o);
  if (f->type == T_DBL || f->type == T_DBLLIST)
    return ts_fail("%s[%s] %s = %s must be in %c%g, %g%c (%s)", prefix, f->section, f->key, value, f->lo_open ? '(' : '[', f->lo,
                   f->hi, f->hi_open ? ')' : ']', f->doc);
  return ts_fail("%s[%s] %s = %s must be in %lld..%lld (%s)", prefix, f->section, f->key, value, (long long)f->lo,
                 (long long)f->hi, f->doc);
}

/* An integer (or integer-list entry) parsed as 64-bit and checked against the row's range
 * before it is narrowed. */
static int parse_int(const field *f, const char *v, long long *out) {
  int overflow = 0;
  if (parse_i64(v, out, &overflow)) return ts_fail("[%s] %s: '%s' is not an integer", f->section, f->key, v);
  if (overflow || !in_range(f, (double)*out)) return range_fail(NULL, f, v);
  return 0;
}

/* A number (or number-list entry), checked against the row's range. */
static int parse_dbl(const field *f, char *v, double *out) {
  char *e;
  double d = strtod(v, &e);
  if (e == v || *trim(e)) return ts_fail("[%s] %s: '%s' is not a number", f->section, f->key, v);
  if (!in_range(f, d)) return range_fail(NULL, f, v);
  *out = d;
  return 0;
}

static int set_field(ts_config *c, const field *f, const char *value) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", value);
  char *v = trim(buf), *base = (char *)c + f->off;
  long long l;
  switch (f->type) {
  case T_INT:
    if (parse_int(f, v, &l)) return -1;
    *(int *)base = (int)l;
    return 0;
  case T_LONG:
    if (parse_int(f, v, &l)) return -1;
    *(long *)base = (long)l;
    return 0;
  case T_DBL: {
    double d;
    if (parse_dbl(f, v, &d)) return -1;
    *(double *)base = d;
    return 0;
  }
  case T_BOOL:
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes")) *(int *)base = 1;
    else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no")) *(int *)base = 0;
    else return ts_fail("[%s] %s: '%s' is not true/false", f->section, f->key, v);
    return 0;
  case T_ENUM: {
    char what[80];
    snprintf(what, sizeof what, "[%s] %s:", f->section, f->key);
    int k = ts_enum_parse(f->names, v, what);
    if (k < 0) return -1;
    *(int *)base = k;
    return 0;
  }
  case T_STR:
    if (strlen(v) >= f->size) return ts_fail("[%s] %s: value too long", f->section, f->key);
    strcpy(base, v);
    return 0;
  default: { /* lists, comma separated; the struct changes only when every entry is good */
    int n = 0, ints[64];
    double dbls[64];
    char strs[TS_CFG_MAXKEYS][32] = {{0}}, *next = v;
    if (!*v) return ts_fail("[%s] %s: empty list", f->section, f->key);
    /* split at every comma (strtok would merge ",," and drop a trailing ","): an empty entry is an error */
    for (char *tok = v; next; tok = next) {
      char *comma = strchr(tok, ',');
      if (comma) *comma = 0;
      next = comma ? comma + 1 : NULL;
      tok = trim(tok);
      if (!*tok)
        return ts_fail("[%s] %s: entry %d of '%s' is empty (a stray comma?)", f->section, f->key, n + 1, value);
      if (n >= (int)f->size || n >= (int)(sizeof ints / sizeof ints[0]) || n >= TS_CFG_MAXKEYS)
        return ts_fail("[%s] %s: more than %zu entries", f->section, f->key, f->size);
      if (f->type == T_INTLIST) {
        if (parse_int(f, tok, &l)) return -1;
        ints[n++] = (int)l;
      } else if (f->type == T_DBLLIST) {
        if (parse_dbl(f, tok, &dbls[n])) return -1;
        n++;
      } else {
        if (strlen(tok) >= 32 || !*tok || *tok == ';' || *tok == '#') /* printed back after ", " it would be a comment */
          return ts_fail("[%s] %s: bad entry '%s'", f->section, f->key, tok);
        for (int j = 0; j < n; j++)
          if (!strcmp(strs[j], tok)) return ts_fail("[%s] %s: '%s' is listed twice", f->section, f->key, tok);
        strcpy(strs[n++], tok);
      }
    }
    if (n == 0) return ts_fail("[%s] %s: empty list", f->section, f->key);
    if (f->type == T_INTLIST) memcpy(base, ints, (size_t)n * sizeof(int));
    else if (f->type == T_DBLLIST) memcpy(base, dbls, (size_t)n * sizeof(double));
    else memcpy(base, strs, (size_t)n * 32);
    *(int *)((char *)c + f->count_off) = n;
    return 0;
  }
  }
}

static int set_kv(ts_config *c, const char *section, const char *key, const char *value) {
  int known_section = 0;
  for (int i = 0; i < NFIELDS; i++) {
    if (strcmp(fields[i].section, section)) continue;
    known_section = 1;
    if (strcmp(fields[i].key, key)) continue;
    for (const unsigned char *q = (const unsigned char *)value; *q; q++) /* printed back, they would not read the same */
      if (*q < 0x20 || *q == 0x7f) return ts_fail("%s.%s: the value has a control character (byte 0x%02x)", section, key, *q);
    return set_field(c, &fields[i], value);
  }
  if (!known_section) return ts_fail("unknown section [%s]", section);
  return ts_fail("unknown key '%s' in [%s]", key, section);
}

/* The parse: our own line reader over the text, so the handler knows the line it is on and
 * the first error's line is paired with that error's message (inih goes on after an error and
 * returns the first error's line). */
typedef struct {
  ts_config *c;
  const char *p; /* reader position */
  int line;      /* lines read so far = the line the handler is called for */
  int err_line;  /* the handler's first failure: its line and message */
  char msg[1024];
  int set_line[NFIELDS]; /* the line each key was set on in this text (0: not yet) */
} parse_state;

static char *reader(char *str, int num, void *stream) {
  parse_state *s = stream;
  if (!*s->p) return NULL;
  int n = 0;
  while (s->p[n] && s->p[n] != '\n' && n < num - 2) n++;
  if (s->p[n] == '\n') n++;
  memcpy(str, s->p, (size_t)n);
  str[n] = 0;
  s->p += n;
  s->line++;
  return str;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
  parse_state *s = user;
  int rc = 0;
  for (int i = 0; i < NFIELDS; i++) /* a key given twice in one file: refused, not the last one taken */
    if (!strcmp(fields[i].section, section) && !strcmp(fields[i].key, name)) {
      if (s->set_line[i]) rc = ts_fail("key '%s' in [%s] is already set on line %d", name, section, s->set_line[i]);
      else s->set_line[i] = s->line;
      break;
    }
  if (!rc && set_kv(s->c, section, name, value) == 0) return 1; /* inih: nonzero = ok */
  if (!s->err_line) {
    s->err_line = s->line;
    snprintf(s->msg, sizeof s->msg, "%s", ts_error());
  }
  return 0;
}

static int parse_text(ts_config *c, const char *text, const char *origin) {
  ts_error_clear();
  /* inih splits a line longer than its buffer (INI_MAX_LINE, 200 in Debian's build) into
   * pieces, which can set a different value: such lines are refused instead. */
  int line = 1;
  for (const char *q = text, *bol = text;; q++) {
    if (*q == '\n' || !*q) {
      if (q - bol > TS_CONFIG_MAX_LINE)
        return ts_fail("%s:%d: line of %lld characters, longer than the %d a config line may have", origin, line,
                       (long long)(q - bol), TS_CONFIG_MAX_LINE);
      if (!*q) break;
      bol = q + 1;
      line++;
    }
  }
  parse_state s = {.c = c, .p = text};
  int rc = ini_parse_stream(reader, &s, handler, &s);
  if (rc == -2) return ts_fail("%s: out of memory", origin);
  if (rc > 0) {
    if (rc == s.err_line) return ts_fail("%s:%d: %s", origin, rc, s.msg);
    return ts_fail("%s:%d: syntax error (expected [section], key = value or a ; comment)", origin, rc);
  }
  return ts_config_validate(c, origin);
}

int ts_config_load(ts_config *c, const char *path) {
  /* Regular files only, checked before opening (a FIFO would block, /dev/zero never ends). */
  int reg = ts_regular_file(path);
  if (reg < 0) return -1;
  if (reg > 0) return ts_fail("%s: cannot open config file (no such file)", path);
  FILE *f = fopen(path, "rb");
  if (!f) return ts_fail("%s: cannot open config file", path);
  char *text = malloc(TS_CONFIG_MAX_BYTES + 2);
  if (!text) abort();
  size_t n = fread(text, 1, TS_CONFIG_MAX_BYTES + 1, f);
  int err = ferror(f);
  fclose(f);
  int rc;
  if (err) rc = ts_fail("%s: read error", path);
  else if (n > TS_CONFIG_MAX_BYTES) rc = ts_fail("%s: larger than %d bytes (not a config file?)", path, TS_CONFIG_MAX_BYTES);
  else if (memchr(text, 0, n)) rc = ts_fail("%s: holds a NUL byte (not a text file)", path);
  else {
    text[n] = 0;
    rc = parse_text(c, text, path);
  }
  free(text);
  return rc;
}

int ts_config_parse_string(ts_config *c, const char *text, const char *origin) { return parse_text(c, text, origin); }

int ts_config_override(ts_config *c, const char *kv) {
  const char *eq = strchr(kv, '='), *dot = strchr(kv, '.');
  if (!eq || !dot || dot > eq) return ts_fail("override '%s': expected section.key=value", kv);
  char sec[64], key[64];
  snprintf(sec, sizeof sec, "%.*s", (int)(dot - kv), kv);
  snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
  if (set_kv(c, sec, key, eq + 1)) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ts_error());
    return ts_fail("override '%s': %s", kv, msg);
  }
  return ts_config_validate(c, "overrides");
}

/* A cross-field range check that names the key and its value. */
static int bad_i(const char *o, const char *sec, const char *key, long v, long lo, long hi) {
  if (v >= lo && v <= hi) return 0;
  return ts_fail("%s: [%s] %s = %ld must be in %ld..%ld", o, sec, key, v, lo, hi);
}

/* The table's range of every number in the struct (for structs filled in code, not parsed). */
static int check_field(const ts_config *c, const field *f, const char *o) {
  const char *base = (const char *)c + f->off;
  char v[64];
  switch (f->type) {
  case T_INT:
  case T_LONG: {
    long x = f->type == T_INT ? *(const int *)base : *(const long *)base;
    snprintf(v, sizeof v, "%ld", x);
    return in_range(f, (double)x) ? 0 : range_fail(o, f, v);
  }
  case T_DBL:
    snprintf(v, sizeof v, "%g", *(const double *)base);
    return in_range(f, *(const double *)base) ? 0 : range_fail(o, f, v);
  case T_BOOL: {
    int x = *(const int *)base;
    return x == 0 || x == 1 ? 0 : ts_fail("%s: [%s] %s = %d is not 0 or 1", o, f->section, f->key, x);
  }
  case T_ENUM: {
    int x = *(const int *)base, n = 0;
    while (f->names[n]) n++;
    return x >= 0 && x < n ? 0 : ts_fail("%s: [%s] %s = %d is not a known value", o, f->section, f->key, x);
  }
  case T_STR:
    return memchr(base, 0, f->size) ? 0 : ts_fail("%s: [%s] %s is not terminated", o, f->section, f->key);
  default: {
    int n = *(const int *)((const char *)c + f->count_off);
    if (n < 1 || n > (int)f->size) return ts_fail("%s: [%s] %s has %d entries (1..%zu)", o, f->section, f->key, n, f->size);
    for (int k = 0; k < n; k++) {
      if (f->type == T_STRLIST) {
        const char *e = base + 32 * k;
        if (!memchr(e, 0, 32) || !*e) return ts_fail("%s: [%s] %s: entry %d is empty or too long", o, f->section, f->key, k);
      } else if (f->type == T_DBLLIST) {
        if (!in_range(f, ((const double *)base)[k])) {
          snprintf(v, sizeof v, "%g", ((const double *)base)[k]);
          return range_fail(o, f, v);
        }
      } else if (!in_range(f, ((const int *)base)[k])) {
        snprintf(v, sizeof v, "%d", ((const int *)base)[k]);
        return range_fail(o, f, v);
      }
    }
    return 0;
  }
  }
}

int ts_config_validate(const ts_config *c, const char *o) {
  for (int i = 0; i < NFIELDS; i++)
    if (check_field(c, &fields[i], o)) return -1;
  /* Rules between keys. */
  if (bad_i(o, "data", "pad_before", c->data.pad_before, 0, c->data.horizon) ||
      bad_i(o, "data", "pad_after", c->data.pad_after, 0, c->data.horizon))
    return -1;
  if (c->data.n_obs_steps - 1 + c->data.n_action_steps > c->data.horizon)
    return ts_fail("%s: need n_obs_steps - 1 + n_action_steps <= horizon", o);
  int L = c->model.n_levels;
  if (c->model.type == TS_MODEL_UNET && c->data.horizon % (1 << (L - 1)))
    return ts_fail("%s: horizon %d must be divisible by 2^(levels-1) = %d", o, c->data.horizon, 1 << (L - 1));
  for (int i = 0; i < L; i++)
    if (c->model.down_dims[i] % c->model.n_groups)
      return ts_fail("%s: down_dims[%d] = %d must be a multiple of n_groups %d in 1..4096", o, i, c->model.down_dims[i],
                     c->model.n_groups);
  if (c->model.kernel_size % 2 == 0 || c->model.step_embed_dim % 2)
    return ts_fail("%s: kernel_size must be odd and step_embed_dim even", o);
  if (strcmp(c->diffusion.beta_schedule, "squaredcos_cap_v2"))
    return ts_fail("%s: beta_schedule '%s' unsupported (squaredcos_cap_v2)", o, c->diffusion.beta_schedule);
  if (strcmp(c->diffusion.prediction_type, "epsilon"))
    return ts_fail("%s: prediction_type '%s' unsupported (epsilon)", o, c->diffusion.prediction_type);
  if (c->eval.steps > c->diffusion.num_train_timesteps)
    return ts_fail("%s: eval steps must be in 1..num_train_timesteps", o);
  if (c->distill.buffer_chains % c->distill.chains)
    return ts_fail("%s: [distill] buffer_chains = %d must be a multiple of chains = %d", o, c->distill.buffer_chains,
                   c->distill.chains);
  for (int i = 1; i < c->rl.n_blocks; i++)
    if (c->rl.blocks[i] <= c->rl.blocks[i - 1])
      return ts_fail("%s: [rl] blocks must be ascending (%d after %d)", o, c->rl.blocks[i], c->rl.blocks[i - 1]);
  for (int i = 1; i < c->rl.n_tolerances; i++)
    if (c->rl.tolerances[i] <= c->rl.tolerances[i - 1])
      return ts_fail("%s: [rl] tolerances must be ascending (%g after %g)", o, c->rl.tolerances[i], c->rl.tolerances[i - 1]);
  if (!c->rl.lossy && (c->rl.n_tolerances != 1 || c->rl.tolerances[0] != 0))
    return ts_fail("%s: [rl] tolerances other than 0 make the scheduler lossy: set rl.lossy = true to study that", o);
  if (c->pipeline.rollout_sampler == TS_SAMPLER_SPEC)
    return ts_fail("%s: [pipeline] rollout_sampler = spec: record with ddpm (the same law) or ddim", o);
  if (c->model.n_emb % c->model.n_head || c->model.n_emb % 2)
    return ts_fail("%s: [model] n_emb = %d must be even and divisible by n_head = %d", o, c->model.n_emb, c->model.n_head);
  return 0;
}

char *ts_config_help(void) {
  size_t cap = 65536, o = 0;
  char *s = malloc(cap);
  if (!s) abort();
  s[0] = 0;
  for (int i = 0; i < NFIELDS && o < cap; i++) {
    const field *f = &fields[i];
    char range[96] = "";
    if (f->type == T_DBL || f->type == T_DBLLIST)
      snprintf(range, sizeof range, ", in %c%g, %g%c", f->lo_open ? '(' : '[', f->lo, f->hi, f->hi_open ? ')' : ']');
    else if ((f->type == T_INT || f->type == T_LONG || f->type == T_INTLIST) && !(f->lo == INT_MIN && f->hi == INT_MAX))
      snprintf(range, sizeof range, ", in %lld..%lld", (long long)f->lo, (long long)f->hi);
    else if (f->type == T_ENUM) {
      snprintf(range, sizeof range, ", one of");
      for (int k = 0; f->names[k]; k++) snprintf(range + strlen(range), sizeof range - strlen(range), " %s", f->names[k]);
    }
    static const char *tn[] = {"int", "int", "number", "bool", "text", "int list", "text list", "name", "number list"};
    o += (size_t)snprintf(s + o, cap - o, "[%s] %s = %s (%s%s): %s\n", f->section, f->key, f->def, tn[f->type], range, f->doc);
  }
  return s;
}

char *ts_config_to_ini(const ts_config *c) {
  size_t cap = 32768, o = 0;
  char *s = malloc(cap);
  if (!s) abort();
  const char *sec = "";
  for (int i = 0; i < NFIELDS; i++) {
    const field *f = &fields[i];
    const char *base = (const char *)c + f->off;
    if (strcmp(sec, f->section)) {
      sec = f->section;
      o += (size_t)snprintf(s + o, cap - o, "%s[%s]\n", o ? "\n" : "", sec);
    }
    o += (size_t)snprintf(s + o, cap - o, "%s = ", f->key);
    switch (f->type) {
    case T_INT:
    case T_BOOL: o += (size_t)snprintf(s + o, cap - o, "%d", *(const int *)base); break;
    case T_LONG: o += (size_t)snprintf(s + o, cap - o, "%ld", *(const long *)base); break;
    case T_DBL: o += (size_t)snprintf(s + o, cap - o, "%.17g", *(const double *)base); break;
    case T_STR: o += (size_t)snprintf(s + o, cap - o, "%s", base); break;
    case T_ENUM: o += (size_t)snprintf(s + o, cap - o, "%s", f->names[*(const int *)base]); break;
    default: {
      int n = *(const int *)((const char *)c + f->count_off);
      for (int k = 0; k < n; k++) {
        if (f->type == T_INTLIST) o += (size_t)snprintf(s + o, cap - o, "%s%d", k ? ", " : "", ((const int *)base)[k]);
        else if (f->type == T_DBLLIST) o += (size_t)snprintf(s + o, cap - o, "%s%.17g", k ? ", " : "", ((const double *)base)[k]);
        else o += (size_t)snprintf(s + o, cap - o, "%s%s", k ? ", " : "", base + 32 * k);
      }
    }
    }
    o += (size_t)snprintf(s + o, cap - o, "\n");
  }
  return s;
}
