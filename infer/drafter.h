/* drafter.h: a learned drafter for exact speculative sampling (infer/spec.h), stored as an
 * ordinary tsdp checkpoint (config with its [model] section, model/ and ema/ weights, the
 * base's normalisers) plus two root attributes naming the base it was distilled from:
 *   base_hash  16 hex digits: ts_model_hash of the base's weights as loaded (EMA by default)
 *   base_path  the base checkpoint's path when it was distilled (informative only)
 * Its data and diffusion sections are the base's, so x / t / cond have the base's shapes.
 *
 * ts_drafter_load builds the drafter's inference engine (ts_denoiser_engine, the same path
 * the base's target uses) and refuses, in one line naming both files, a drafter whose
 * base_hash is not the hash of the loaded base: speculation stays exact with any drafter,
 * but a drafter distilled for another base only wastes target calls. The loaded drafter is
 * passed to the samplers as &d->drafter (ts_sampler.drafter).
 *
 * A late-step specialist (a drafter distilled with distill.t_max > 0, train/distill.h) sits
 * beside a main drafter: the path "MAIN.h5+LATE.h5" loads both (each checked against the
 * base as above) and d->drafter then drafts through d->mix, which sends each row of a call to
 * the specialist when its t < t_max and to the main drafter otherwise. A path that names an
 * existing file is always one file, '+' or not (except the name "x0" itself).
 *
 * The name "x0" (TS_DRAFTER_X0) is the training-free x0 drafter of infer/spec.h: nothing is
 * loaded, and "x0+LATE.h5" drafts t < t_max with the specialist and the rest with x0.
 * "MAIN.h5+x0@LO-HI" drafts LO <= t < HI with x0 and the other steps (the last and the first,
 * where the target's clean estimate moves fastest) with the learned drafter MAIN; "MAIN.h5+x0"
 * takes LO = T/10, HI = 4T/5 (10 and 80 for T = 100, where the x0 drafter's measured
 * acceptance on Push-T passes the learned drafter's). */
#ifndef TS_DRAFTER_H
#define TS_DRAFTER_H

#define TS_DRAFTER_X0 "x0" /* the training-free x0 drafter's name (see above) */

#include "core/config.h"
#include "infer/policy.h"
#include "infer/spec.h"
#include "nn/model.h"
#include <stdint.h>

typedef struct ts_drafter_model {
  ts_config cfg;       /* the drafter's config (its [model]; [data] and [diffusion] are the base's) */
  ts_model model;      /* owned, EMA weights */
  ts_denoiser net;     /* the model's inference engine */
  ts_drafter drafter;  /* {frozen 0, &net}: what ts_sampler.drafter points at */
  char base_hash[17];  /* as recorded in the file */
  char base_path[512];
  struct ts_drafter_model *late; /* NULL, or the late-step specialist (owned), used for t < late->cfg.distill.t_max */
  ts_denoiser mix;               /* with late: routes each row of a call to net or late->net by its t */
} ts_drafter_model;

/* FNV-1a (64-bit) over every parameter of m in parameter order: its element count, then its
 * float32 bytes. Any change of any weight changes it (with overwhelming probability). */
uint64_t ts_model_hash(const ts_model *m);
/* The drafter's identity for records that name it (a scheduler's drafter_id): ts_model_hash
 * of its weights, mixed with the specialist's when it has one, and with the x0 drafter's
 * range when it is one (so MAIN.h5, MAIN.h5+x0 and MAIN.h5+x0@LO-HI all differ). */
uint64_t ts_drafter_hash(const ts_drafter_model *d);
/* 16 lower-case hex digits and a terminating zero. */
void ts_hash_hex(uint64_t h, char out[17]);

/* Load the drafter checkpoint at path ("MAIN.h5+LATE.h5": with its specialist) for base
 * (loaded with ts_policy_load): its EMA weights, its engine (threads 1, timestep table of the
 * base's T). -1 with one line on a file that is not a drafter, shapes that differ from the
 * base, a base_hash that is not the base's, a specialist named as the main drafter or a main
 * drafter named as the specialist, or the two disagreeing on the temporal input. */
int ts_drafter_load(ts_drafter_model *d, const char *path, const char *base_file, const ts_policy *base);
void ts_drafter_model_free(ts_drafter_model *d);

#endif
