#include "drafter.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/h5io.h"
#include "infer/denoisers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int ts_drafter_load(ts_drafter_model *d, const char *path, const char *base_file, const ts_policy *base) {
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

void ts_drafter_model_free(ts_drafter_model *d) {
  if (!d) return;
  ts_denoiser_free(&d->net);
  if (d->model.params) ts_model_free(&d->model);
  memset(d, 0, sizeof *d);
}
