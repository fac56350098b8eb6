#include "config.h"
#include "error.h"
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { T_INT, T_LONG, T_DBL, T_BOOL, T_STR, T_INTLIST, T_STRLIST, T_ENUM };

const char *const ts_model_type_names[TS_MODEL_COUNT + 1] = {"unet", "transformer", NULL};
const char *const ts_sampler_names[TS_SAMPLER_COUNT + 1] = {"ddpm", "ddim", "spec", NULL};

int ts_enum_parse(const char *const *names, const char *name, const char *what) {
  char list[256] = "";
  for (int i = 0; names[i]; i++) {
    if (!strcmp(names[i], name)) return i;
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
  }
  return ts_fail("%s '%s' unknown (%s)", what, name, list);
}

typedef struct {
  const char *section, *key;
  int type;
  size_t off, size;  /* size: string capacity or list capacity */
  size_t count_off;  /* lists: offset of the int count */
  const char *const *names; /* enums: the accepted names, NULL-terminated */
} field;

#define F(sec, k, ty, member) {sec, k, ty, offsetof(ts_config, member), sizeof(((ts_config *)0)->member), 0, NULL}
#define L(sec, k, ty, member, cnt, cap) {sec, k, ty, offsetof(ts_config, member), cap, offsetof(ts_config, cnt), NULL}
#define E(sec, k, member, tab) {sec, k, T_ENUM, offsetof(ts_config, member), sizeof(int), 0, tab}

static const field fields[] = {
  L("data", "obs_keys", T_STRLIST, data.obs_keys, data.n_obs_keys, TS_CFG_MAXKEYS),
  F("data", "horizon", T_INT, data.horizon),
  F("data", "n_obs_steps", T_INT, data.n_obs_steps),
  F("data", "n_action_steps", T_INT, data.n_action_steps),
  F("data", "pad_before", T_INT, data.pad_before),
  F("data", "pad_after", T_INT, data.pad_after),
  F("data", "val_ratio", T_DBL, data.val_ratio),
  F("data", "max_train_episodes", T_INT, data.max_train_episodes),
  F("data", "seed", T_INT, data.seed),
  E("model", "type", model.type, ts_model_type_names),
  L("model", "down_dims", T_INTLIST, model.down_dims, model.n_levels, 6),
  F("model", "kernel_size", T_INT, model.kernel_size),
  F("model", "n_groups", T_INT, model.n_groups),
  F("model", "step_embed_dim", T_INT, model.step_embed_dim),
  F("model", "n_emb", T_INT, model.n_emb),
  F("model", "n_head", T_INT, model.n_head),
  F("model", "n_layer", T_INT, model.n_layer),
  F("model", "causal_attn", T_BOOL, model.causal_attn),
  F("model", "p_drop_emb", T_DBL, model.p_drop_emb),
  F("model", "p_drop_attn", T_DBL, model.p_drop_attn),
  F("diffusion", "num_train_timesteps", T_INT, diffusion.num_train_timesteps),
  F("diffusion", "clip_sample", T_BOOL, diffusion.clip_sample),
  F("diffusion", "beta_schedule", T_STR, diffusion.beta_schedule),
  F("diffusion", "prediction_type", T_STR, diffusion.prediction_type),
  F("train", "batch_size", T_INT, train.batch_size),
  F("train", "lr", T_DBL, train.lr),
  F("train", "beta1", T_DBL, train.beta1),
  F("train", "beta2", T_DBL, train.beta2),
  F("train", "eps", T_DBL, train.eps),
  F("train", "weight_decay", T_DBL, train.weight_decay),
  F("train", "warmup_steps", T_INT, train.warmup_steps),
  F("train", "epochs", T_INT, train.epochs),
  F("train", "max_steps", T_LONG, train.max_steps),
  F("train", "ema_power", T_DBL, train.ema_power),
  F("train", "ema_max_decay", T_DBL, train.ema_max_decay),
  F("train", "seed", T_INT, train.seed),
  F("train", "checkpoint_every", T_INT, train.checkpoint_every),
  F("train", "log_every", T_INT, train.log_every),
  F("train", "eval_every", T_INT, train.eval_every),
  F("train", "eval_episodes", T_INT, train.eval_episodes),
  F("train", "threads", T_INT, train.threads),
  E("eval", "sampler", eval.sampler, ts_sampler_names),
  F("eval", "steps", T_INT, eval.steps),
  F("eval", "episodes", T_INT, eval.episodes),
  F("eval", "seed_start", T_INT, eval.seed_start),
};
#define NFIELDS ((int)(sizeof fields / sizeof fields[0]))

void ts_config_defaults(ts_config *c) {
  memset(c, 0, sizeof *c);
  strcpy(c->data.obs_keys[0], "keypoint");
  strcpy(c->data.obs_keys[1], "agent_pos");
  c->data.n_obs_keys = 2;
  c->data.horizon = 16;
  c->data.n_obs_steps = 2;
  c->data.n_action_steps = 8;
  c->data.pad_before = 1;
  c->data.pad_after = 7;
  c->data.val_ratio = 0.02;
  c->data.max_train_episodes = 90;
  c->data.seed = 42;
  int dd[3] = {64, 128, 256};
  memcpy(c->model.down_dims, dd, sizeof dd);
  c->model.n_levels = 3;
  c->model.kernel_size = 5;
  c->model.n_groups = 8;
  c->model.step_embed_dim = 256;
  c->model.type = TS_MODEL_UNET;
  c->model.n_emb = 256;
  c->model.n_head = 4;
  c->model.n_layer = 8;
  c->model.causal_attn = 1;
  c->model.p_drop_emb = 0.0;
  c->model.p_drop_attn = 0.01;
  c->diffusion.num_train_timesteps = 100;
  c->diffusion.clip_sample = 1;
  strcpy(c->diffusion.beta_schedule, "squaredcos_cap_v2");
  strcpy(c->diffusion.prediction_type, "epsilon");
  c->train.batch_size = 256;
  c->train.lr = 1e-4;
  c->train.beta1 = 0.95;
  c->train.beta2 = 0.999;
  c->train.eps = 1e-8;
  c->train.weight_decay = 1e-6;
  c->train.warmup_steps = 500;
  c->train.epochs = 3000;
  c->train.ema_power = 0.75;
  c->train.ema_max_decay = 0.9999;
  c->train.seed = 42;
  c->train.checkpoint_every = 500;
  c->train.log_every = 20;
  c->train.eval_episodes = 10;
  c->eval.sampler = TS_SAMPLER_DDPM;
  c->eval.steps = 100;
  c->eval.episodes = 50;
  c->eval.seed_start = 100000;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) e--;
  *e = 0;
  return s;
}

static int parse_long(const char *v, long *out) {
  char *e;
  long x = strtol(v, &e, 10);
  if (e == v || *trim(e)) return -1;
  *out = x;
  return 0;
}

static int set_field(ts_config *c, const field *f, const char *value) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", value);
  char *v = trim(buf), *base = (char *)c + f->off;
  long l;
  switch (f->type) {
  case T_INT:
    if (parse_long(v, &l)) return ts_fail("[%s] %s: '%s' is not an integer", f->section, f->key, v);
    *(int *)base = (int)l;
    return 0;
  case T_LONG:
    if (parse_long(v, &l)) return ts_fail("[%s] %s: '%s' is not an integer", f->section, f->key, v);
    *(long *)base = l;
    return 0;
  case T_DBL: {
    char *e;
    double d = strtod(v, &e);
    if (e == v || *trim(e)) return ts_fail("[%s] %s: '%s' is not a number", f->section, f->key, v);
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
  default: { /* lists, comma separated */
    int n = 0;
    for (char *tok = strtok(v, ","); tok; tok = strtok(NULL, ",")) {
      tok = trim(tok);
      if (n >= (int)f->size) return ts_fail("[%s] %s: more than %zu entries", f->section, f->key, f->size);
      if (f->type == T_INTLIST) {
        if (parse_long(tok, &l)) return ts_fail("[%s] %s: '%s' is not an integer", f->section, f->key, tok);
        ((int *)base)[n++] = (int)l;
      } else {
        if (strlen(tok) >= 32 || !*tok) return ts_fail("[%s] %s: bad entry '%s'", f->section, f->key, tok);
        strcpy(base + 32 * n++, tok);
      }
    }
    if (n == 0) return ts_fail("[%s] %s: empty list", f->section, f->key);
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
    if (!strcmp(fields[i].key, key)) return set_field(c, &fields[i], value);
  }
  if (!known_section) return ts_fail("unknown section [%s]", section);
  return ts_fail("unknown key '%s' in [%s]", key, section);
}

static int handler(void *user, const char *section, const char *name, const char *value) {
  return set_kv((ts_config *)user, section, name, value) == 0; /* inih: nonzero = ok */
}

static int finish(int rc, const char *origin, ts_config *c) {
  if (rc == -1) return ts_fail("%s: cannot open config file", origin);
  if (rc == -2) return ts_fail("%s: out of memory", origin);
  if (rc > 0) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ts_error()[0] ? ts_error() : "syntax error");
    return ts_fail("%s:%d: %s", origin, rc, msg);
  }
  return ts_config_validate(c, origin);
}

int ts_config_load(ts_config *c, const char *path) {
  ts_error_clear();
  return finish(ini_parse(path, handler, c), path, c);
}

int ts_config_parse_string(ts_config *c, const char *text, const char *origin) {
  ts_error_clear();
  return finish(ini_parse_string(text, handler, c), origin, c);
}

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

/* Range checks that name the key and its value. */
static int bad_i(const char *o, const char *sec, const char *key, long v, long lo, long hi) {
  if (v >= lo && v <= hi) return 0;
  return ts_fail("%s: [%s] %s = %ld must be in %ld..%ld", o, sec, key, v, lo, hi);
}

/* lo <= v < hi (hi_open) or lo <= v <= hi; NaN fails. */
static int bad_d(const char *o, const char *sec, const char *key, double v, double lo, double hi, int hi_open) {
  if (v >= lo && (hi_open ? v < hi : v <= hi)) return 0;
  return ts_fail("%s: [%s] %s = %g must be in [%g, %g%s", o, sec, key, v, lo, hi, hi_open ? ")" : "]");
}

int ts_config_validate(const ts_config *c, const char *o) {
  if (bad_i(o, "data", "horizon", c->data.horizon, 1, 1024) || bad_i(o, "data", "n_obs_steps", c->data.n_obs_steps, 1, 1024) ||
      bad_i(o, "data", "n_action_steps", c->data.n_action_steps, 1, 1024) ||
      bad_i(o, "data", "pad_before", c->data.pad_before, 0, c->data.horizon) ||
      bad_i(o, "data", "pad_after", c->data.pad_after, 0, c->data.horizon) ||
      bad_d(o, "data", "val_ratio", c->data.val_ratio, 0, 1, 1) ||
      bad_i(o, "data", "max_train_episodes", c->data.max_train_episodes, 0, 1L << 30) ||
      bad_i(o, "model", "n_groups", c->model.n_groups, 1, 4096) || bad_i(o, "model", "kernel_size", c->model.kernel_size, 1, 15) ||
      bad_i(o, "model", "step_embed_dim", c->model.step_embed_dim, 4, 4096) ||
      bad_i(o, "diffusion", "num_train_timesteps", c->diffusion.num_train_timesteps, 2, 1000) ||
      bad_i(o, "train", "batch_size", c->train.batch_size, 1, 65536) || bad_d(o, "train", "lr", c->train.lr, 1e-30, 1e3, 0) ||
      bad_d(o, "train", "beta1", c->train.beta1, 0, 1, 1) || bad_d(o, "train", "beta2", c->train.beta2, 0, 1, 1) ||
      bad_d(o, "train", "eps", c->train.eps, 1e-30, 1, 0) || bad_d(o, "train", "weight_decay", c->train.weight_decay, 0, 1e3, 0) ||
      bad_i(o, "train", "warmup_steps", c->train.warmup_steps, 0, 1L << 30) ||
      bad_i(o, "train", "epochs", c->train.epochs, 0, 1L << 30) || bad_i(o, "train", "max_steps", c->train.max_steps, 0, 1L << 40) ||
      bad_d(o, "train", "ema_power", c->train.ema_power, 1e-6, 1e3, 0) ||
      bad_d(o, "train", "ema_max_decay", c->train.ema_max_decay, 0, 1, 0) ||
      bad_i(o, "train", "checkpoint_every", c->train.checkpoint_every, 1, 1L << 30) ||
      bad_i(o, "train", "log_every", c->train.log_every, 1, 1L << 30) ||
      bad_i(o, "train", "eval_every", c->train.eval_every, 0, 1L << 30) ||
      bad_i(o, "train", "eval_episodes", c->train.eval_episodes, 1, 1024) || bad_i(o, "train", "threads", c->train.threads, 0, 256) ||
      bad_i(o, "eval", "episodes", c->eval.episodes, 1, 1024) || bad_i(o, "eval", "seed_start", c->eval.seed_start, 0, 1L << 30))
    return -1;
  if (c->data.n_obs_steps - 1 + c->data.n_action_steps > c->data.horizon)
    return ts_fail("%s: need n_obs_steps - 1 + n_action_steps <= horizon", o);
  int L = c->model.n_levels;
  if (L < 1) return ts_fail("%s: [model] down_dims needs at least one level", o);
  if (c->model.type == TS_MODEL_UNET && c->data.horizon % (1 << (L - 1)))
    return ts_fail("%s: horizon %d must be divisible by 2^(levels-1) = %d", o, c->data.horizon, 1 << (L - 1));
  for (int i = 0; i < L; i++)
    if (c->model.down_dims[i] <= 0 || c->model.down_dims[i] > 4096 || c->model.down_dims[i] % c->model.n_groups)
      return ts_fail("%s: down_dims[%d] = %d must be a multiple of n_groups %d in 1..4096", o, i, c->model.down_dims[i],
                     c->model.n_groups);
  if (c->model.kernel_size % 2 == 0 || c->model.step_embed_dim % 2)
    return ts_fail("%s: kernel_size must be odd and step_embed_dim even", o);
  if (strcmp(c->diffusion.beta_schedule, "squaredcos_cap_v2"))
    return ts_fail("%s: beta_schedule '%s' unsupported (squaredcos_cap_v2)", o, c->diffusion.beta_schedule);
  if (strcmp(c->diffusion.prediction_type, "epsilon"))
    return ts_fail("%s: prediction_type '%s' unsupported (epsilon)", o, c->diffusion.prediction_type);
  if (c->eval.steps <= 0 || c->eval.steps > c->diffusion.num_train_timesteps)
    return ts_fail("%s: eval steps must be in 1..num_train_timesteps", o);
  if (bad_i(o, "model", "n_emb", c->model.n_emb, 1, 4096) || bad_i(o, "model", "n_head", c->model.n_head, 1, 256) ||
      bad_i(o, "model", "n_layer", c->model.n_layer, 1, 64) ||
      bad_d(o, "model", "p_drop_emb", c->model.p_drop_emb, 0, 1, 1) ||
      bad_d(o, "model", "p_drop_attn", c->model.p_drop_attn, 0, 1, 1))
    return -1;
  if (c->model.n_emb % c->model.n_head || c->model.n_emb % 2)
    return ts_fail("%s: [model] n_emb = %d must be even and divisible by n_head = %d", o, c->model.n_emb, c->model.n_head);
  return 0;
}

char *ts_config_to_ini(const ts_config *c) {
  size_t cap = 8192, o = 0;
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
        else o += (size_t)snprintf(s + o, cap - o, "%s%s", k ? ", " : "", base + 32 * k);
      }
    }
    }
    o += (size_t)snprintf(s + o, cap - o, "\n");
  }
  return s;
}
