/* spec.h: exact speculative sampling of the DDPM reverse chain (docs/math.md §4), one round at
 * a time. The caller drives a chain as Chipmunk's cpSpaceStep is driven: ts_spec_begin draws
 * x_T, then each ts_spec_round drafts up to `block` steps (the caller may pick a different block
 * before every round, e.g. from the last round's ts_spec_round_info), verifies them against the
 * target with one batched call, accepts drafts in order with probability min(1, q/p) and
 * replaces the first rejected one by its reflection, an exact draw from the target step. The
 * finished chain is distributed exactly as DDPM-T's with the target, whatever the drafter and
 * the block lengths (they only change the cost).
 *
 * Drafters (ts_drafter):
 *  - frozen (training-free): the drafted steps of a round reuse the target's eps at the round's
 *    start, which costs a target call when the last round did not leave it (a rejection);
 *    draft 1 is always accepted since its mean is the target's.
 *  - x0 (training-free, x0 = 1): the target's latest estimate of the clean chunk, x0_ref =
 *    clip((y - sqrt(1 - abar_t) eps) / sqrt(abar_t)) from its latest eps (at the round's start
 *    when known, so draft 1 is then the target's own step; after a rejection, at the last
 *    verified state, one step earlier), is held for the round: draft k uses the eps that gives
 *    x0_ref at (y_{k-1}, t-k+1). No drafter calls; one target call per round (and one at the
 *    chain's start). With net, net drafts the steps t < late_t (and t >= early_t when
 *    early_t > 0): where the estimate moves fastest, the last steps and the first.
 *  - learned (frozen = 0, net): each drafted step k calls net at (y_{k-1}, t-k+1), batch 1,
 *    one sequential drafter call per step; the verification is one batched target call over
 *    y_0 (only when its target eps is not known from the last round), y_1, ..., y_K (row y_K is
 *    the next round's target eps when every draft is accepted); draft 1 can be rejected.
 * Each drafted step draws a fresh z; each checked step a fresh uniform (drawn only when it is
 * checked: a rejected step ends the round and the drafts after it are discarded). At t = 0
 * (sigma 0) the last step is the target's mean.
 *
 * Cost is counted in sequential calls: DDPM-T makes T target calls; a round makes one target
 * call (two with the frozen drafter after a rejection) plus K drafter calls (learned).
 * All work space is sized by ts_spec_new; begin and round allocate nothing. */
#ifndef TS_SPEC_H
#define TS_SPEC_H

#include "core/rng.h"
#include "infer/denoiser.h"
#include "infer/scheduler.h"

/* The rule for one drafted step (docs/math.md §4): the draft is mp + sig z; with u uniform in
 * (0, 1) it is accepted when u < q/p = exp(-z.Delta - |Delta|^2 / 2), Delta = (mp - mq) / sig,
 * and out = the draft (returns 1); otherwise out = mq + sig (z - 2 (e.z) e), e = Delta / |Delta|
 * (returns 0). Either way out ~ N(mq, sig^2 I) exactly when z ~ N(0, I). */
int ts_spec_accept(const float *mp, const float *mq, float sig, const float *z, double u, float *out, int n);

#define TS_SPEC_MAX_BLOCK 128

typedef struct ts_drafter {
  int frozen;       /* 1: reuse the target's eps from the round's start (net unused) */
  ts_denoiser *net; /* frozen = 0: proposes eps, same x / t / cond shapes as the target */
  int temporal;     /* n_obs_steps > 0: net's cond is the target's with each observation step's
                       control step appended (ts_drafter_cond); 0: the target's cond */
  int x0;           /* 1: the x0 drafter (training-free): each draft's eps is the one that
                       gives the target's latest clean-chunk estimate x0; with net set, net
                       drafts the steps t < late_t and, when early_t > 0, t >= early_t */
  int late_t, early_t;
} ts_drafter;

/* "frozen" (NULL or frozen), "x0", "x0+late" (x0 with a specialist net below late_t),
 * "learned+x0" (a learned drafter outside [late_t, early_t), x0 inside) or "learned": what
 * reports call the drafter. */
const char *ts_drafter_label(const ts_drafter *d);

/* The temporal drafter's input (TS-DP's time signal): the target's cond holds n_obs_steps
 * observations of obs_dim = cond_dim / n_obs_steps values, oldest first, the last one at
 * control step `step` of its episode; out gets each observation followed by its own control
 * step, max(0, step - (n_obs_steps - 1 - j)) / TS_TEMPORAL_SCALE (the history repeats the
 * first observation at an episode's start), cond_dim + n_obs_steps values. */
#define TS_TEMPORAL_SCALE 100.0f
void ts_drafter_cond(const float *cond, int cond_dim, int n_obs_steps, long step, float *out);

/* Counters, accumulated over a ts_spec's life (ts_spec_stats_of, ts_spec_reset_stats).
 * drafted_t / accepted_t count by the diffusion step a draft was made at (the draft of step t
 * proposes x_{t-1}); a draft after the first rejected one of its round is discarded unchecked
 * and counted in neither. Seconds are wall-clock inside ts_spec_round: draft_s in drafter calls
 * (and the frozen drafter's target call for the round's eps), verify_s in the batched target
 * calls, round_s the whole round; round_s - draft_s - verify_s is the rule's own overhead
 * (means, noise, acceptance tests, copies). */
typedef struct ts_spec_stats {
  long chunks;        /* finished chains */
  long target_calls;  /* sequential (batched) target calls */
  long drafter_calls; /* sequential batch-1 drafter calls */
  long drafted, accepted, rounds;
  long relaxed;       /* LOSSY: accepted drafts the exact test rejected, kept by the tolerance */
  long pre_drafted, pre_used; /* overlap: drafts made on the worker during verification; of them,
                                 used by the next round (the others were dropped after a rejection) */
  double pre_s;       /* overlap: the worker's drafter seconds (hidden behind verify_s) */
  long verify_rows;   /* rows over all verification calls */
  double draft_s, verify_s, round_s;
  long drafted_t[TS_MAX_T], accepted_t[TS_MAX_T];
} ts_spec_stats;

/* out = a + sign * b, every counter and time (sign +1 to accumulate, -1 for the difference
 * between two readings of one ts_spec's stats); out may be a. */
void ts_spec_stats_add(ts_spec_stats *out, const ts_spec_stats *a, const ts_spec_stats *b, int sign);

/* Drafts checked by the rule (accepted, plus the rejected one of each round that had one):
 * the sum of drafted_t. Acceptance everywhere in tsdp is accepted / checked; drafted also
 * counts the drafts discarded unchecked after a rejection. */
long ts_spec_checked(const ts_spec_stats *s);

/* What one round did, for a block-length scheduler. Delta = (m_p - m_q) / sigma of each
 * checked step (the accepted ones and the rejected one; the frozen drafter's draft 1 counts
 * with Delta = 0); both statistics are 0 when nothing was checked. */
typedef struct ts_spec_round_info {
  int t_before, t_after; /* the chain's step before and after the round (-1: finished) */
  int drafted, accepted, target_calls, drafter_calls;
  int relaxed; /* LOSSY: of the accepted, those kept only by the tolerance (0 in exact mode) */
  double max_delta, mean_delta; /* of |Delta| over the checked steps */
  int verify_rows; /* rows of the round's batched verification call (0: none); its other target
                      calls, if any, are batch 1 (what a cost model needs) */
} ts_spec_round_info;

/* 0 when d (NULL or frozen: always) fits target: same x shape, and cond_dim the target's (plus
 * one control step per observation for a temporal drafter); else -1 with a message. */
int ts_drafter_check(const ts_drafter *d, const ts_denoiser *target);

typedef struct ts_spec ts_spec;

/* Work space for chains of target (x (horizon, act_dim), cond (cond_dim)) under schedule sched,
 * rounds of up to max_block drafts (1..TS_SPEC_MAX_BLOCK); reserves the target for max_block + 1
 * rows. target and sched must outlive the ts_spec. NULL with a message on bad arguments. */
ts_spec *ts_spec_new(ts_denoiser *target, const ts_ddpm *sched, int max_block);
void ts_spec_free(ts_spec *s);
ts_denoiser *ts_spec_target(const ts_spec *s);
int ts_spec_max_block(const ts_spec *s);
/* verify 0: the lossy ablation that keeps every draft (shows what the verifier corrects). */
void ts_spec_set_verify(ts_spec *s, int verify);
/* LOSSY relaxed rule (rl.lossy, rl/sched.h), for the rounds that follow: a draft the exact test
 * rejects is still kept when its |Delta| <= tol (the step's mean gap in units of sigma), so the
 * chain no longer follows DDPM's law; such drafts count in `relaxed`. tol = 0 (the default,
 * and after ts_spec_new) is the exact rule, bit for bit: the same random draws either way. */
void ts_spec_set_tolerance(ts_spec *s, double tol);
double ts_spec_tolerance(const ts_spec *s);
/* Overlapped drafting (learned drafters; off after ts_spec_new): during each round's batched
 * verification on the calling thread, a second thread (started here, kept until ts_spec_free)
 * drafts the next round's first `block` steps on from the round's last draft; when every
 * draft of the round is accepted the next round starts exactly there and takes them instead of
 * drafting them one call at a time; after a rejection they are dropped. Their noise comes from
 * a stream seeded from the chain's rng each round, so the law is unchanged (docs/math.md §4);
 * the samples differ from the sequential sampler's bit for bit. It pays when a core is idle
 * during verification (a 1-thread target on a 2-core machine). The drafter calls made on the
 * worker are not counted in drafter_calls (which counts the sequential ones): see pre_drafted. */
void ts_spec_set_overlap(ts_spec *s, int on); /* stays off when no thread can be started */
int ts_spec_overlap(const ts_spec *s);

/* Start a chain for one normalised cond (cond_dim values, copied): x_T ~ N(0, I) from rng. */
void ts_spec_begin(ts_spec *s, const float *cond, ts_rng *rng);
/* The control step (within its episode) of the latest observation in the chains' cond, for
 * temporal drafters; kept until changed (0 after ts_spec_new). */
void ts_spec_set_control_step(ts_spec *s, long step);
long ts_spec_control_step(const ts_spec *s);
/* One round with drafter d (NULL: frozen) and up to `block` drafts (1..max_block). Returns 1
 * while the chain is not finished, 0 once it is (the round that takes the last step, or any
 * call after it), -1 with a message on bad arguments. info (may be NULL) gets what it did. */
int ts_spec_round(ts_spec *s, const ts_drafter *d, int block, ts_rng *rng, ts_spec_round_info *info);
/* The chain's current state (horizon, act_dim), normalised; the sample once finished. */
const float *ts_spec_x(const ts_spec *s);
/* The step the current state is at (T-1 after begin, -1 once finished). */
int ts_spec_t(const ts_spec *s);
/* 1 when the target's eps at the current state is already known (the last round accepted every
 * draft), so the next round's target call has one row fewer (learned drafter) or no extra
 * batch-1 call (frozen); 0 after begin and after a rejection. */
int ts_spec_have_eps(const ts_spec *s);

/* One chunk: begin, rounds of the same block until finished, the sample copied to x. */
int ts_spec_sample(ts_spec *s, const float *cond, const ts_drafter *d, int block, ts_rng *rng, float *x);

const ts_spec_stats *ts_spec_stats_of(const ts_spec *s);
void ts_spec_reset_stats(ts_spec *s);

#endif
