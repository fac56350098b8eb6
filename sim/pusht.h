/* pusht.h: the Push-T task (Chi et al.'s environment, docs/math.md §5) on Chipmunk2D.
 *
 * A kinematic circular agent pushes a T-shaped block towards a fixed goal pose in a
 * 512 x 512 walled workspace with no gravity. An action is a target position for the agent;
 * each action runs 10 physics substeps of 0.01 s under a PD rule. State is
 * (agent x, agent y, block x, block y, block angle) with the block position at the body
 * origin (not its centre of gravity). */
#ifndef TS_PUSHT_H
#define TS_PUSHT_H

#define TS_PUSHT_MAX_STEPS 300
#define TS_PUSHT_SUCCESS 0.95
#define TS_PUSHT_NKP 9
#define TS_PUSHT_OBS_DIM 20 /* 9 keypoints (x, y) then agent (x, y) */

typedef struct ts_pusht ts_pusht;

/* Call once before any other Chipmunk use if stdout must stay clean: Debian's debug build
 * prints a banner on the first cpSpaceNew of a process; this swallows it. */
void ts_pusht_silence_banner(void);

ts_pusht *ts_pusht_new(void);
void ts_pusht_free(ts_pusht *e);
/* Rebuild the world and set the state. legacy = 1: block position then angle (the reference's
 * test-set reset; the angle turns the block about its centre of gravity), legacy = 0: angle
 * then position, so the body origin lands on (block x, block y). Then one physics step. */
void ts_pusht_set_state(ts_pusht *e, const double state[5], int legacy);
/* Legacy reset of a reference test seed (100000..100049); -1 and an error otherwise. */
int ts_pusht_reset_seed(ts_pusht *e, int seed);
/* Apply one action (target x, y): 10 PD substeps. Returns the reward, clip(coverage/0.95,0,1). */
double ts_pusht_step(ts_pusht *e, const double action[2]);
void ts_pusht_get_state(const ts_pusht *e, double state[5]); /* angle wrapped to [0, 2 pi) */
void ts_pusht_get_obs(const ts_pusht *e, float obs[TS_PUSHT_OBS_DIM]);
void ts_pusht_agent_velocity(const ts_pusht *e, double v[2]);
double ts_pusht_coverage(const ts_pusht *e);
int ts_pusht_steps(const ts_pusht *e); /* actions applied since the last reset */

/* ---- geometry shared with rendering, the importer and tests ---- */
/* The T's two boxes in the body frame, 4 vertices each (x, y). */
extern const double ts_pusht_boxes[2][4][2];
/* Keypoints in the block frame, fitted to the dataset (see tests/test_sim.c for the fit). */
extern const double ts_pusht_keypoints_local[TS_PUSHT_NKP][2];
extern const double ts_pusht_goal[3]; /* (256, 256, pi/4) */
/* World keypoints of a block pose (x, y, angle) -> out[9][2]. */
void ts_pusht_keypoints(double x, double y, double angle, float out[TS_PUSHT_NKP * 2]);
/* Area of (T at pose a) intersect (T at pose b) over the area of T, by exact convex clipping. */
double ts_pusht_coverage_between(const double a[3], const double b[3]);
/* Area of the intersection of two convex polygons (any winding). */
double ts_convex_intersection_area(const double (*p)[2], int np, const double (*q)[2], int nq);

/* ---- the reference test set ---- */
extern const int ts_pusht_seed_first, ts_pusht_seed_count;
extern const double ts_pusht_seed_states[][5];

/* ---- vectorised runner: n independent environments stepped together ---- */
typedef struct ts_pusht_vec {
  int n;
  ts_pusht **envs;
  int *done;       /* reached success or the step limit */
  double *score;   /* max reward so far */
} ts_pusht_vec;

ts_pusht_vec *ts_pusht_vec_new(int n);
void ts_pusht_vec_free(ts_pusht_vec *v);
/* Legacy-reset env i to seed seeds[i]. */
int ts_pusht_vec_reset_seeds(ts_pusht_vec *v, const int *seeds);
/* Step every env that is not done with actions[2 i .. 2 i + 1]; returns how many remain. */
int ts_pusht_vec_step(ts_pusht_vec *v, const double *actions);
void ts_pusht_vec_obs(const ts_pusht_vec *v, float *obs); /* (n, 20) */

#endif
