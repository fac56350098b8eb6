#include "loop.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ts_loop_init(ts_loop *l, ts_policy *p, const ts_sampler *s, uint64_t seed) {
  memset(l, 0, sizeof *l);
  if (ts_sampler_check(s, p)) return -1;
  l->p = p;
  l->sampler = *s;
  ts_rng_init(&l->rng, seed);
  ts_denoiser *tg = s->target ? s->target : &p->target;
  if (s->kind == TS_SAMPLER_SPEC) {
    if (!s->spec && !(l->spec = l->sampler.spec = ts_spec_new(tg, &p->sched, s->steps))) return -1;
    if (s->drafter && !s->drafter->frozen) ts_denoiser_reserve(s->drafter->net, 1);
  }
  l->hist = malloc((size_t)p->cfg.data.n_obs_steps * p->obs_dim * sizeof(float));
  l->chunk = malloc((size_t)p->horizon * p->act_dim * sizeof(float));
  if (!l->hist || !l->chunk) abort();
  ts_policy_reserve(p, 1);
  ts_denoiser_reserve(tg, 1);
  return 0;
}

void ts_loop_free(ts_loop *l) {
  free(l->hist);
  free(l->chunk);
  ts_spec_free(l->spec);
  memset(l, 0, sizeof *l);
}

void ts_loop_reset(ts_loop *l) {
  l->have_obs = 0;
  l->queued = l->next = l->step = 0;
}

int ts_loop_act(ts_loop *l, const float *obs, float *action) {
  const ts_policy *p = l->p;
  int No = p->cfg.data.n_obs_steps, A = p->act_dim;
  ts_policy_push_obs(p, l->hist, obs, !l->have_obs);
  l->have_obs = 1;
  if (l->next == l->queued) {
    l->sampler.control_step = l->step;
    if (ts_policy_sample(l->p, l->hist, 1, &l->sampler, &l->rng, l->chunk)) return -1;
    l->queued = p->cfg.data.n_action_steps;
    l->next = 0;
    l->chunks++;
  }
  memcpy(action, l->chunk + (size_t)(No - 1 + l->next) * A, (size_t)A * sizeof(float));
  l->next++;
  l->step++;
  return 0;
}
