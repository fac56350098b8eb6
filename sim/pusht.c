#include "pusht.h"
#include "core/error.h"
#include <chipmunk/chipmunk.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const double ts_pusht_boxes[2][4][2] = {
  {{-60, 30}, {60, 30}, {60, 0}, {-60, 0}},    /* bar: length 4 * scale 30, height 30 */
  {{-15, 30}, {-15, 120}, {15, 120}, {15, 30}}, /* stem */
};

/* Least-squares fit to the dataset: local = R(-angle) (keypoint - position), averaged over
 * all 25,650 recorded frames (tests/test_sim.c refits and checks the residual). */
const double ts_pusht_keypoints_local[TS_PUSHT_NKP][2] = {
  {9.269522, 90.041072},   {-60.983299, -1.186964}, {60.912926, -1.393017},
  {-0.270460, 25.543679},  {-14.065347, 122.815840}, {39.002746, 32.857646},
  {-39.966404, 32.729520}, {-16.824478, 62.863153}, {23.541634, -1.700119},
};

const double ts_pusht_goal[3] = {256.0, 256.0, M_PI / 4};

struct ts_pusht {
  cpSpace *space;
  cpBody *agent, *block;
  int steps;
};

void ts_pusht_silence_banner(void) {
  static int done = 0;
  if (done) return;
  done = 1;
  fflush(stdout);
  int saved = dup(1), null = open("/dev/null", O_WRONLY);
  if (saved < 0 || null < 0) {
    if (saved >= 0) close(saved);
    if (null >= 0) close(null);
    return;
  }
  dup2(null, 1);
  cpSpace *s = cpSpaceNew();
  cpSpaceFree(s);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  close(null);
}

static cpShape *segment(cpSpace *s, cpVect a, cpVect b) {
  return cpSpaceAddShape(s, cpSegmentShapeNew(cpSpaceGetStaticBody(s), a, b, 2.0));
}

/* Build the world exactly in the reference's order: walls, agent, block. */
static void build_world(ts_pusht *e) {
  e->space = cpSpaceNew();
  cpSpaceSetGravity(e->space, cpv(0, 0));
  cpSpaceSetDamping(e->space, 0.0);
  segment(e->space, cpv(5, 506), cpv(5, 5));
  segment(e->space, cpv(5, 5), cpv(506, 5));
  segment(e->space, cpv(506, 5), cpv(506, 506));
  segment(e->space, cpv(5, 506), cpv(506, 506));
  e->agent = cpSpaceAddBody(e->space, cpBodyNewKinematic());
  cpBodySetPosition(e->agent, cpv(256, 400));
  cpSpaceAddShape(e->space, cpCircleShapeNew(e->agent, 15.0, cpvzero));
  cpVect v[2][4];
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < 4; i++) v[k][i] = cpv(ts_pusht_boxes[k][i][0], ts_pusht_boxes[k][i][1]);
  /* The reference passes the bar's vertices for both moments. */
  double moment = 2.0 * cpMomentForPoly(1.0, 4, v[0], cpvzero, 0.0);
  e->block = cpSpaceAddBody(e->space, cpBodyNew(1.0, moment));
  cpShape *s0 = cpPolyShapeNew(e->block, 4, v[0], cpTransformIdentity, 0.0);
  cpShape *s1 = cpPolyShapeNew(e->block, 4, v[1], cpTransformIdentity, 0.0);
  cpBodySetCenterOfGravity(e->block, cpvmult(cpvadd(cpShapeGetCenterOfGravity(s0), cpShapeGetCenterOfGravity(s1)), 0.5));
  cpBodySetPosition(e->block, cpv(256, 300));
  cpBodySetAngle(e->block, 0.0);
  cpSpaceAddShape(e->space, s0);
  cpSpaceAddShape(e->space, s1);
  e->steps = 0;
}

ts_pusht *ts_pusht_new(void) {
  ts_pusht *e = calloc(1, sizeof *e);
  if (!e) abort();
  build_world(e);
  return e;
}

static void shape_free(cpBody *body, cpShape *shape, void *data) {
  (void)body;
  cpSpaceRemoveShape((cpSpace *)data, shape);
  cpShapeFree(shape);
}

static void destroy_world(ts_pusht *e) {
  if (!e->space) return;
  cpBodyEachShape(cpSpaceGetStaticBody(e->space), shape_free, e->space);
  cpBodyEachShape(e->agent, shape_free, e->space);
  cpBodyEachShape(e->block, shape_free, e->space);
  cpSpaceRemoveBody(e->space, e->agent);
  cpSpaceRemoveBody(e->space, e->block);
  cpBodyFree(e->agent);
  cpBodyFree(e->block);
  cpSpaceFree(e->space);
  e->space = NULL;
}

void ts_pusht_free(ts_pusht *e) {
  if (!e) return;
  destroy_world(e);
  free(e);
}

void ts_pusht_set_state(ts_pusht *e, const double s[5], int legacy) {
  destroy_world(e);
  build_world(e);
  cpBodySetPosition(e->agent, cpv(s[0], s[1]));
  if (legacy) {
    cpBodySetPosition(e->block, cpv(s[2], s[3]));
    cpBodySetAngle(e->block, s[4]);
  } else {
    cpBodySetAngle(e->block, s[4]);
    cpBodySetPosition(e->block, cpv(s[2], s[3]));
  }
  cpSpaceStep(e->space, 0.01);
  e->steps = 0;
}

int ts_pusht_reset_seed(ts_pusht *e, int seed) {
  int i = seed - ts_pusht_seed_first;
  if (i < 0 || i >= ts_pusht_seed_count)
    return ts_fail("seed %d has no legacy reset state (the reference test set is %d..%d)", seed,
                   ts_pusht_seed_first, ts_pusht_seed_first + ts_pusht_seed_count - 1);
  ts_pusht_set_state(e, ts_pusht_seed_states[i], 1);
  return 0;
}

double ts_pusht_step(ts_pusht *e, const double action[2]) {
  const double dt = 0.01, kp = 100.0, kv = 20.0;
  for (int i = 0; i < 10; i++) {
    cpVect p = cpBodyGetPosition(e->agent), v = cpBodyGetVelocity(e->agent);
    cpVect acc = cpvadd(cpvmult(cpvsub(cpv(action[0], action[1]), p), kp), cpvmult(cpvneg(v), kv));
    cpBodySetVelocity(e->agent, cpvadd(v, cpvmult(acc, dt)));
    cpSpaceStep(e->space, dt);
  }
  e->steps++;
  double r = ts_pusht_coverage(e) / TS_PUSHT_SUCCESS;
  return r < 0 ? 0 : r > 1 ? 1 : r;
}

void ts_pusht_get_state(const ts_pusht *e, double s[5]) {
  cpVect a = cpBodyGetPosition(e->agent), b = cpBodyGetPosition(e->block);
  double ang = fmod(cpBodyGetAngle(e->block), 2 * M_PI);
  if (ang < 0) ang += 2 * M_PI;
  s[0] = a.x;
  s[1] = a.y;
  s[2] = b.x;
  s[3] = b.y;
  s[4] = ang;
}

void ts_pusht_agent_velocity(const ts_pusht *e, double v[2]) {
  cpVect w = cpBodyGetVelocity(e->agent);
  v[0] = w.x;
  v[1] = w.y;
}

int ts_pusht_steps(const ts_pusht *e) { return e->steps; }

void ts_pusht_keypoints(double x, double y, double angle, float out[TS_PUSHT_NKP * 2]) {
  double c = cos(angle), s = sin(angle);
  for (int k = 0; k < TS_PUSHT_NKP; k++) {
    double lx = ts_pusht_keypoints_local[k][0], ly = ts_pusht_keypoints_local[k][1];
    out[2 * k] = (float)(x + c * lx - s * ly);
    out[2 * k + 1] = (float)(y + s * lx + c * ly);
  }
}

void ts_pusht_get_obs(const ts_pusht *e, float obs[TS_PUSHT_OBS_DIM]) {
  cpVect a = cpBodyGetPosition(e->agent), b = cpBodyGetPosition(e->block);
  ts_pusht_keypoints(b.x, b.y, cpBodyGetAngle(e->block), obs);
  obs[18] = (float)a.x;
  obs[19] = (float)a.y;
}

/* ---- exact coverage: Sutherland-Hodgman clipping of convex polygons ---- */

static double signed_area(const double (*p)[2], int n) {
  double a = 0;
  for (int i = 0; i < n; i++) {
    int j = (i + 1) % n;
    a += p[i][0] * p[j][1] - p[j][0] * p[i][1];
  }
  return 0.5 * a;
}

double ts_convex_intersection_area(const double (*p)[2], int np, const double (*q)[2], int nq) {
  double buf_a[32][2], buf_b[32][2], clip[16][2];
  int n = np;
  memcpy(buf_a, p, (size_t)np * sizeof *buf_a);
  /* Orient the clipping polygon counter-clockwise. */
  int ccw = signed_area(q, nq) > 0;
  for (int i = 0; i < nq; i++) {
    int k = ccw ? i : nq - 1 - i;
    clip[i][0] = q[k][0];
    clip[i][1] = q[k][1];
  }
  double (*in)[2] = buf_a, (*out)[2] = buf_b;
  for (int e = 0; e < nq && n > 0; e++) {
    const double *A = clip[e], *B = clip[(e + 1) % nq];
    int m = 0;
    for (int i = 0; i < n; i++) {
      const double *P = in[i], *Q = in[(i + 1) % n];
      double sp = (B[0] - A[0]) * (P[1] - A[1]) - (B[1] - A[1]) * (P[0] - A[0]);
      double sq = (B[0] - A[0]) * (Q[1] - A[1]) - (B[1] - A[1]) * (Q[0] - A[0]);
      if (sp >= 0) {
        out[m][0] = P[0];
        out[m][1] = P[1];
        m++;
      }
      if ((sp >= 0) != (sq >= 0)) {
        double t = sp / (sp - sq);
        out[m][0] = P[0] + t * (Q[0] - P[0]);
        out[m][1] = P[1] + t * (Q[1] - P[1]);
        m++;
      }
    }
    double (*tmp)[2] = in;
    in = out;
    out = tmp;
    n = m;
  }
  return n >= 3 ? fabs(signed_area((const double (*)[2])in, n)) : 0.0;
}

static void box_world(const double pose[3], int k, double out[4][2]) {
  double c = cos(pose[2]), s = sin(pose[2]);
  for (int i = 0; i < 4; i++) {
    double x = ts_pusht_boxes[k][i][0], y = ts_pusht_boxes[k][i][1];
    out[i][0] = pose[0] + c * x - s * y;
    out[i][1] = pose[1] + s * x + c * y;
  }
}

double ts_pusht_coverage_between(const double a[3], const double b[3]) {
  /* The two boxes of a T share only an edge, so the T-T intersection area is the sum over
   * box pairs. */
  double pa[2][4][2], pb[2][4][2], inter = 0, area = 0;
  for (int k = 0; k < 2; k++) {
    box_world(a, k, pa[k]);
    box_world(b, k, pb[k]);
    area += fabs(signed_area((const double (*)[2])pb[k], 4));
  }
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      inter += ts_convex_intersection_area((const double (*)[2])pa[i], 4, (const double (*)[2])pb[j], 4);
  return inter / area;
}

double ts_pusht_coverage(const ts_pusht *e) {
  cpVect b = cpBodyGetPosition(e->block);
  double pose[3] = {b.x, b.y, cpBodyGetAngle(e->block)};
  return ts_pusht_coverage_between(pose, ts_pusht_goal);
}

/* ---- vectorised runner ---- */

ts_pusht_vec *ts_pusht_vec_new(int n) {
  ts_pusht_vec *v = calloc(1, sizeof *v);
  if (!v) abort();
  v->n = n;
  v->envs = calloc((size_t)n, sizeof *v->envs);
  v->done = calloc((size_t)n, sizeof *v->done);
  v->score = calloc((size_t)n, sizeof *v->score);
  if (!v->envs || !v->done || !v->score) abort();
  for (int i = 0; i < n; i++) v->envs[i] = ts_pusht_new();
  return v;
}

void ts_pusht_vec_free(ts_pusht_vec *v) {
  if (!v) return;
  for (int i = 0; i < v->n; i++) ts_pusht_free(v->envs[i]);
  free(v->envs);
  free(v->done);
  free(v->score);
  free(v);
}

int ts_pusht_vec_reset_seeds(ts_pusht_vec *v, const int *seeds) {
  for (int i = 0; i < v->n; i++) {
    if (ts_pusht_reset_seed(v->envs[i], seeds[i])) return -1;
    v->done[i] = 0;
    v->score[i] = 0;
  }
  return 0;
}

int ts_pusht_vec_step(ts_pusht_vec *v, const double *actions) {
  int left = 0;
  for (int i = 0; i < v->n; i++) {
    if (v->done[i]) continue;
    double r = ts_pusht_step(v->envs[i], actions + 2 * i);
    if (r > v->score[i]) v->score[i] = r;
    if (ts_pusht_coverage(v->envs[i]) > TS_PUSHT_SUCCESS || ts_pusht_steps(v->envs[i]) >= TS_PUSHT_MAX_STEPS)
      v->done[i] = 1;
    else left++;
  }
  return left;
}

void ts_pusht_vec_obs(const ts_pusht_vec *v, float *obs) {
  for (int i = 0; i < v->n; i++) ts_pusht_get_obs(v->envs[i], obs + (int64_t)i * TS_PUSHT_OBS_DIM);
}
