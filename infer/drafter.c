#include "drafter.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/h5io.h"
#include "infer/denoisers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t ts_model_hash(const ts_model *m) {
  uint64_t h = 1469598103934665603ULL;
  const ts_params *P = m->params;
  for (int i = 0; i < P->n; i++) {
    int64_t n = P->t[i]->n;
    const unsigned char *b = (const unsigned char *)&n;
    for (size_t k = 0; k < sizeof n; k++) h = (h ^ b[k]) * 1099511628211ULL;
    b = (const unsigned char *)P->t[i]->data;
    for (size_t k = 0; k < (size_t)n * sizeof(float); k++) h = (h ^ b[k]) * 1099511628211ULL;
  }
  return h;
}

void ts_hash_hex(uint64_t h, char out[17]) { snprintf(out, 17, "%016llx", (unsigned long long)h); }

uint64_t ts_drafter_hash(const ts_drafter_model *d) {
  uint64_t h = 1469598103934665603ULL;
  if (d->model.params) h = ts_model_hash(&d->model);
  if (d->late) h = (h * 1099511628211ULL) ^ ts_model_hash(&d->late->model);
  if (d->drafter.x0) { /* the x0 drafter, and the steps it leaves to a net */
    char tag[48];
    snprintf(tag, sizeof tag, "x0 %d %d", d->drafter.late_t, d->drafter.early_t);
    for (const char *c = tag; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ULL;
  }
  return h;
}

/* One drafter file (no '+' parsing). */
static int load_one(ts_drafter_model *d, const char *path, const char *base_file, const ts_policy *base) {
  memset(d, 0, sizeof *d);
  ts_h5 *f = ts_h5_open(path);
  if (!f) return -1;
  char *cfgtxt = ts_h5_get_attr_str(f, "/", "config"), cfgerr[1024] = "";
  if (!cfgtxt && ts_h5_has_attr(f, "/", "config")) snprintf(cfgerr, sizeof cfgerr, "%s", ts_error()); /* a damaged file */
  char *hash = ts_h5_get_attr_str(f, "/", "base_hash");
  char *bp = ts_h5_get_attr_str(f, "/", "base_path");
  int rc = 0;
  ts_config_defaults(&d->cfg);
  if (!cfgtxt) rc = cfgerr[0] ? ts_fail("%s", cfgerr) : ts_fail("%s: no config attribute (not a tsdp checkpoint)", path);
  else if (!hash || strlen(hash) != 16) rc = ts_fail("%s: no base_hash attribute (not a distilled drafter)", path);
  else if (ts_config_parse_string(&d->cfg, cfgtxt, path)) rc = -1;
  if (!rc) {
    snprintf(d->base_hash, sizeof d->base_hash, "%s", hash);
    snprintf(d->base_path, sizeof d->base_path, "%s", bp ? bp : "");
    char have[17];
    ts_hash_hex(ts_model_hash(&base->model), have);
    if (strcmp(have, d->base_hash))
      rc = ts_fail("drafter %s was distilled from base %s (hash %s), not from %s (hash %s)", path,
                   d->base_path[0] ? d->base_path : "?", d->base_hash, base_file ? base_file : "the loaded base", have);
  }
  free(cfgtxt);
  free(hash);
  free(bp);
  if (!rc && (d->cfg.data.horizon != base->horizon || d->cfg.data.n_obs_steps != base->cfg.data.n_obs_steps ||
              d->cfg.diffusion.num_train_timesteps != base->sched.T))
    rc = ts_fail("%s: drafter horizon / n_obs_steps / diffusion steps differ from the base's", path);
  int tmp = d->cfg.distill.temporal ? d->cfg.data.n_obs_steps : 0; /* one control step per observation */
  if (!rc) rc = ts_model_check_ckpt(&d->cfg, base->act_dim, base->obs_dim + (tmp ? 1 : 0), f, "ema");
  ts_h5_close(f);
  if (!rc) rc = ts_model_new(&d->model, &d->cfg, base->act_dim, base->obs_dim + (tmp ? 1 : 0));
  if (!rc) {
    ts_params *P = d->model.params;
    ts_named *nm = ts_params_named(P, "ema/", NULL);
    rc = ts_ckpt_load(path, nm, P->n, NULL, NULL);
    ts_named_free(nm, P->n);
    for (int i = 0; i < P->n; i++) P->t[i]->requires_grad = 0;
  }
  if (!rc) rc = ts_denoiser_engine(&d->net, &d->model, base->sched.T, 1);
  d->drafter = (ts_drafter){.net = &d->net, .temporal = tmp};
  if (!rc && ts_drafter_check(&d->drafter, &base->target)) {
    char why[512];
    snprintf(why, sizeof why, "%s", ts_error());
    rc = ts_fail("%s: %s", path, why);
  }
  if (rc) {
    ts_drafter_model_free(d);
    return -1;
  }
  return 0;
}

/* d->mix: a call's rows go to the specialist where t < t_max, else to the main drafter; one
 * call when they all go one way (the samplers' case: a chunk's rows share t), else one call
 * per row, which allocates nothing. */
static void mix_eps(void *self, const float *x, const int *t, const float *cond, int B, float *eps) {
  ts_drafter_model *d = self;
  const int tm = d->late->cfg.distill.t_max, n = d->net.horizon * d->net.act_dim, cd = d->net.cond_dim;
  int nl = 0;
  for (int b = 0; b < B; b++) nl += t[b] < tm;
  if (nl == 0 || nl == B) {
    ts_denoiser_eps(nl ? &d->late->net : &d->net, x, t, cond, B, eps);
    return;
  }
  for (int b = 0; b < B; b++)
    ts_denoiser_eps(t[b] < tm ? &d->late->net : &d->net, x + (size_t)b * n, t + b, cond + (size_t)b * cd, 1,
                    eps + (size_t)b * n);
}

static void mix_reserve(void *self, int B) {
  ts_drafter_model *d = self;
  ts_denoiser_reserve(&d->net, B);
  ts_denoiser_reserve(&d->late->net, B);
}

static void mix_threads(void *self, int n) {
  ts_drafter_model *d = self;
  ts_denoiser_set_threads(&d->net, n);
  ts_denoiser_set_threads(&d->late->net, n);
}

static const ts_denoiser_ops mix_ops = {"drafter+late", mix_eps, mix_reserve, mix_threads, NULL};

int ts_drafter_load(ts_drafter_model *d, const char *path, const char *base_file, const ts_policy *base) {
  memset(d, 0, sizeof *d);
  if (!strcmp(path, TS_DRAFTER_X0)) { /* training-free: nothing to load */
    d->drafter = (ts_drafter){.x0 = 1};
    return 0;
  }
  const char *plus = strrchr(path, '+');
  if (!plus || access(path, F_OK) == 0) {
    if (load_one(d, path, base_file, base)) return -1;
    if (d->cfg.distill.t_max > 0) {
      int tm = d->cfg.distill.t_max;
      ts_drafter_model_free(d);
      return ts_fail("%s: a late-step specialist (distill.t_max %d) drafts only t < %d; pass it after a main drafter, "
                     "--drafter MAIN.h5+%s", path, tm, tm, path);
    }
    return 0;
  }
  char main_path[1024];
  snprintf(main_path, sizeof main_path, "%.*s", (int)(plus - path), path);
  const char *late_path = plus + 1;
  if (!main_path[0] || !late_path[0]) return ts_fail("--drafter %s: expected MAIN.h5+LATE.h5", path);
  const size_t nx0 = strlen(TS_DRAFTER_X0);
  if (!strncmp(late_path, TS_DRAFTER_X0, nx0) && (!late_path[nx0] || late_path[nx0] == '@')) { /* MAIN.h5+x0[@LO-HI] */
    const int T = base->sched.T;
    int lo = T / 10, hi = 4 * T / 5, used = 0;
    if (late_path[nx0] && (sscanf(late_path + nx0 + 1, "%d-%d%n", &lo, &hi, &used) != 2 || late_path[nx0 + 1 + used] || lo < 0 ||
                         hi <= lo || hi > T))
      return ts_fail("--drafter %s: expected MAIN.h5+x0@LO-HI with 0 <= LO < HI <= %d (the steps the x0 drafter takes)",
                     path, T);
    if (ts_drafter_load(d, main_path, base_file, base)) return -1; /* MAIN may be a pair (its router drafts) */
    if (d->drafter.x0) {
      ts_drafter_model_free(d);
      return ts_fail("--drafter %s: the part before '+x0' must be a learned drafter (or a pair), not x0", path);
    }
    d->drafter.x0 = 1, d->drafter.late_t = lo, d->drafter.early_t = hi; /* its net outside [lo, hi) */
    return 0;
  }
  int x0main = !strcmp(main_path, TS_DRAFTER_X0);
  if (!x0main && ts_drafter_load(d, main_path, base_file, base)) return -1; /* refuses a specialist as the main drafter */
  if (d->late) {
    ts_drafter_model_free(d);
    return ts_fail("--drafter %s: one main drafter and one specialist at most (MAIN.h5+LATE.h5)", path);
  }
  ts_drafter_model *l = calloc(1, sizeof *l);
  if (!l) abort();
  int rc = load_one(l, late_path, base_file, base);
  if (rc) free(l);
  else d->late = l;
  if (!rc && l->cfg.distill.t_max <= 0)
    rc = ts_fail("%s: not a late-step specialist (distilled with distill.t_max 0); the part after '+' must be one", late_path);
  if (!rc && x0main) { /* the x0 drafter above t_max, the specialist's net below */
    d->drafter = (ts_drafter){.x0 = 1, .net = &l->net, .late_t = l->cfg.distill.t_max, .temporal = l->drafter.temporal};
    return 0;
  }
  if (!rc && l->drafter.temporal != d->drafter.temporal)
    rc = ts_fail("%s and %s: one reads the control step (distill.temporal) and the other does not", main_path, late_path);
  if (rc) {
    ts_drafter_model_free(d);
    return -1;
  }
  d->mix = (ts_denoiser){.ops = &mix_ops, .self = d, .horizon = d->net.horizon, .act_dim = d->net.act_dim,
                         .cond_dim = d->net.cond_dim, .flops = d->net.flops > l->net.flops ? d->net.flops : l->net.flops};
  d->drafter.net = &d->mix;
  return 0;
}

void ts_drafter_model_free(ts_drafter_model *d) {
  if (!d) return;
  if (d->late) {
    ts_drafter_model_free(d->late);
    free(d->late);
  }
  ts_denoiser_free(&d->net);
  if (d->model.params) ts_model_free(&d->model);
  memset(d, 0, sizeof *d);
}
