#include "dataset.h"
#include "data/zarr.h"
#include "core/error.h"
#include "core/sizes.h"
#include "sim/pusht.h"
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------- import ---------- */

typedef struct { ts_zarr z; float *x; int64_t rows, cols; } zcol;

/* Note the chunks of c that were missing (fill value) in rep->warning. */
static void note_missing(ts_import_report *rep, const char *name, const zcol *c) {
  if (!c->z.missing_chunks) return;
  rep->missing_chunks += c->z.missing_chunks;
  size_t l = strlen(rep->warning);
  snprintf(rep->warning + l, sizeof rep->warning - l, "%s%s: %lld of %lld chunks missing (filled with %g)",
           l ? "; " : "", name, (long long)c->z.missing_chunks, (long long)c->z.nchunks, c->z.fill);
}

/* Read root/name; 1 when optional and its folder does not exist. */
static int load_col(const char *root, const char *name, zcol *c, int required, ts_import_report *rep) {
  char dir[1200];
  snprintf(dir, sizeof dir, "%s/%s", root, name);
  memset(c, 0, sizeof *c);
  struct stat st;
  if (!required && stat(dir, &st) != 0 && errno == ENOENT) return 1;
  if (ts_zarr_open(dir, &c->z)) return -1;
  c->rows = c->z.shape[0];
  c->cols = c->rows ? ts_zarr_numel(&c->z) / c->rows : 0;
  c->x = ts_zarr_read_f32(&c->z);
  if (!c->x) return -1;
  if (c->z.nchunks && c->z.missing_chunks == c->z.nchunks)
    return ts_fail("%s: all %lld chunks are missing (the array would import as all %g)", dir, (long long)c->z.nchunks,
                   c->z.fill);
  note_missing(rep, name, c);
  return 0;
}

static int check_finite(const char *root, const char *name, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return ts_fail("%s/%s: NaN or Inf at element %lld", root, name, (long long)i);
  return 0;
}

int ts_pusht_import_zarr(const char *zarr_dir, const char *out_h5, ts_import_report *rep) {
  zcol act, st, kp, nc;
  int rc = 0, has_kp = 0, has_nc = 0;
  int64_t *ends = NULL;
  ts_h5 *f = NULL;
  memset(rep, 0, sizeof *rep);
  memset(&kp, 0, sizeof kp);
  memset(&nc, 0, sizeof nc);
  memset(&st, 0, sizeof st);
  if (load_col(zarr_dir, "data/action", &act, 1, rep)) {
    free(act.x);
    return -1;
  }
  if ((rc = load_col(zarr_dir, "data/state", &st, 1, rep))) goto out;
  if ((rc = load_col(zarr_dir, "data/keypoint", &kp, 0, rep)) < 0) goto out;
  has_kp = rc == 0;
  if ((rc = load_col(zarr_dir, "data/n_contacts", &nc, 0, rep)) < 0) goto out;
  has_nc = rc == 0;
  rc = 0;
  ts_zarr ez;
  char edir[1200];
  snprintf(edir, sizeof edir, "%s/meta/episode_ends", zarr_dir);
  if ((rc = ts_zarr_open(edir, &ez))) goto out;
  if (!(ends = ts_zarr_read_i64(&ez))) {
    rc = -1;
    goto out;
  }
  if (ez.nchunks && ez.missing_chunks) { /* a filled-in episode end is never right */
    rc = ts_fail("%s: %lld of %lld chunks are missing", edir, (long long)ez.missing_chunks, (long long)ez.nchunks);
    goto out;
  }
  int64_t T = act.rows, E = ts_zarr_numel(&ez);
  if (act.cols != 2 || st.cols != 5 || st.rows != T || (has_kp && (kp.rows != T || kp.cols != 18)) ||
      (has_nc && nc.rows != T)) {
    rc = ts_fail("%s: expected action (T, 2), state (T, 5), keypoint (T, 9, 2) with equal T; got action (%lld, %lld), "
                 "state (%lld, %lld)", zarr_dir, (long long)act.rows, (long long)act.cols, (long long)st.rows,
                 (long long)st.cols);
    goto out;
  }
  for (int64_t e = 0; e < E; e++)
    if (ends[e] <= (e ? ends[e - 1] : 0) || ends[e] > T) {
      rc = ts_fail("%s: episode_ends[%lld] = %lld is not increasing within 1..%lld", edir, (long long)e,
                   (long long)ends[e], (long long)T);
      goto out;
    }
  if (E == 0 || ends[E - 1] != T) {
    rc = ts_fail("%s: the last episode ends at %lld, but the data has %lld steps", edir,
                 (long long)(E ? ends[E - 1] : 0), (long long)T);
    goto out;
  }
  if ((rc = check_finite(zarr_dir, "data/action", act.x, T * 2)) ||
      (rc = check_finite(zarr_dir, "data/state", st.x, T * 5)))
    goto out;
  /* Derive keypoints from the block pose and compare with the recorded ones. */
  float *kpd = malloc((size_t)T * 18 * sizeof(float)), *agent = malloc((size_t)T * 2 * sizeof(float));
  if (!kpd || !agent) abort();
  double maxerr = has_kp ? 0 : -1;
  for (int64_t t = 0; t < T; t++) {
    const float *s = st.x + t * 5;
    ts_pusht_keypoints(s[2], s[3], s[4], kpd + t * 18);
    agent[2 * t] = s[0];
    agent[2 * t + 1] = s[1];
    if (has_kp)
      for (int j = 0; j < 18; j++) maxerr = fmax(maxerr, fabs((double)kpd[t * 18 + j] - kp.x[t * 18 + j]));
  }
  f = ts_h5_create(out_h5);
  if (!f) {
    rc = -1;
    free(kpd);
    free(agent);
    goto out;
  }
  char name[256];
  for (int64_t e = 0; e < E && !rc; e++) {
    int64_t a = e ? ends[e - 1] : 0, n = ends[e] - a;
    int64_t d2[2] = {n, 2}, d5[2] = {n, 5}, d18[2] = {n, 18}, d1[2] = {n, nc.cols};
    snprintf(name, sizeof name, "data/demo_%lld/actions", (long long)e);
    rc = ts_h5_write_f32(f, name, act.x + a * 2, 2, d2);
    snprintf(name, sizeof name, "data/demo_%lld/obs/keypoint", (long long)e);
    if (!rc) rc = ts_h5_write_f32(f, name, kpd + a * 18, 2, d18);
    snprintf(name, sizeof name, "data/demo_%lld/obs/agent_pos", (long long)e);
    if (!rc) rc = ts_h5_write_f32(f, name, agent + a * 2, 2, d2);
    snprintf(name, sizeof name, "data/demo_%lld/obs/state", (long long)e);
    if (!rc) rc = ts_h5_write_f32(f, name, st.x + a * 5, 2, d5);
    if (has_kp) {
      snprintf(name, sizeof name, "data/demo_%lld/obs/keypoint_recorded", (long long)e);
      if (!rc) rc = ts_h5_write_f32(f, name, kp.x + a * 18, 2, d18);
    }
    if (has_nc) {
      snprintf(name, sizeof name, "data/demo_%lld/obs/n_contacts", (long long)e);
      if (!rc) rc = ts_h5_write_f32(f, name, nc.x + a * nc.cols, 2, d1);
    }
    snprintf(name, sizeof name, "data/demo_%lld", (long long)e);
    if (!rc) rc = ts_h5_attr_i64(f, name, "num_samples", n);
  }
  if (!rc) rc = ts_h5_attr_i64(f, "data", "total", T);
  if (!rc) rc = ts_h5_attr_str(f, "data", "env_args", "{\"env_name\": \"PushT\", \"type\": \"tsdp\", \"env_kwargs\": {}}");
  if (!rc) rc = ts_h5_attr_str(f, "/", "source", zarr_dir);
  free(kpd);
  free(agent);
  if (rc) ts_h5_close(f);
  else rc = ts_h5_commit(f);
  rep->episodes = (int)E;
  rep->steps = T;
  rep->keypoint_max_err = maxerr;
out:
  free(act.x);
  free(st.x);
  free(kp.x);
  free(nc.x);
  free(ends);
  return rc ? -1 : 0;
}

/* ---------- load ---------- */

/* N of "demo_N" (1 to 9 digits); -1 for another name, -2 for "demo_" + anything else. */
static int demo_num(const char *name) {
  if (strncmp(name, "demo_", 5) != 0) return -1;
  const char *s = name + 5;
  size_t n = strspn(s, "0123456789");
  if (n == 0 || n > 9 || s[n]) return -2;
  return atoi(s);
}

static int cmp_demo(const void *a, const void *b) {
  int x = demo_num(*(char *const *)a), y = demo_num(*(char *const *)b);
  return (x > y) - (x < y);
}

int ts_dataset_load(const char *path, const char *const *keys, int nk, ts_dataset *d) {
  memset(d, 0, sizeof *d);
  ts_h5 *f = ts_h5_open(path);
  if (!f) return -1;
  int n = 0, rc = 0;
  char **names = ts_h5_list(f, "data", &n);
  if (!names) {
    ts_h5_close(f);
    return ts_fail("%s: no 'data' group (not a tsdp/robomimic dataset)", path);
  }
  int ne = 0;
  for (int i = 0; i < n; i++) {
    int k = demo_num(names[i]);
    if (k == -2 && !rc) rc = ts_fail("%s: data/%s is not named demo_<number>", path, names[i]);
    if (k >= 0) names[ne++] = names[i];
    else free(names[i]);
  }
  qsort(names, (size_t)ne, sizeof *names, cmp_demo);
  for (int i = 1; i < ne && !rc; i++) /* demo_1 and demo_01: which comes first would be a guess */
    if (demo_num(names[i]) == demo_num(names[i - 1]))
      rc = ts_fail("%s: data/%s and data/%s are the same episode number", path, names[i - 1], names[i]);
  if (ne == 0 && !rc) rc = ts_fail("%s: 'data' holds no demo_N groups", path);
  d->n_episodes = ne;
  d->ep_start = calloc((size_t)ne + 1, sizeof(int64_t));
  if (!d->ep_start) abort();
  /* First pass: lengths and dims. */
  char p[512];
  int64_t dims[TS_MAXDIM];
  for (int e = 0; e < ne && !rc; e++) {
    snprintf(p, sizeof p, "data/%s/actions", names[e]);
    int nd = ts_h5_shape(f, p, dims);
    if (nd < 0) {
      rc = -1;
      break;
    }
    if (ts_check_array(path, p, nd, dims, 4, NULL)) {
      rc = -1;
      break;
    }
    int64_t ad = nd == 2 ? dims[1] : (nd == 1 ? 1 : -1);
    if (ad <= 0 || ad > TS_MAX_FEATURES || (e && ad != d->act_dim)) {
      rc = ts_fail("%s: %s has an unexpected shape", path, p);
      break;
    }
    d->act_dim = (int)ad;
    int64_t T = dims[0], od = 0;
    if (T == 0) { /* no window, no statistic (min inf / max -inf) can come from it */
      rc = ts_fail("%s: %s has 0 steps (an empty episode)", path, p);
      break;
    }
    for (int k = 0; k < nk && !rc; k++) {
      snprintf(p, sizeof p, "data/%s/obs/%s", names[e], keys[k]);
      nd = ts_h5_shape(f, p, dims);
      if (nd < 0) rc = -1;
      else if (nd == 0) rc = ts_fail("%s: %s is a scalar, expected (T, ...)", path, p);
      else if (ts_check_array(path, p, nd, dims, 4, NULL)) rc = -1;
      else if (dims[0] != T) rc = ts_fail("%s: %s has %lld steps, actions have %lld", path, p, (long long)dims[0], (long long)T);
      int64_t w = 1;
      for (int j = 1; j < nd && !rc; j++) w *= dims[j]; /* bounded by the check above */
      od += w;
      if (!rc && od > TS_MAX_FEATURES) rc = ts_fail("%s: %s makes the observation %lld wide, above %d", path, p, (long long)od, TS_MAX_FEATURES);
    }
    if (!rc && e && od != d->obs_dim) rc = ts_fail("%s: obs width differs in %s", path, names[e]);
    d->obs_dim = (int)od;
    if (d->ep_start[e] > INT64_MAX / 2 - T) rc = ts_fail("%s: the episodes' lengths overflow", path);
    d->ep_start[e + 1] = d->ep_start[e] + T;
  }
  d->n_steps = ne ? d->ep_start[ne] : 0;
  if (!rc) {
    int64_t da[2] = {d->n_steps, d->act_dim}, dob[2] = {d->n_steps, d->obs_dim};
    if (ts_check_array(path, "all actions", 2, da, 4, NULL) || ts_check_array(path, "all observations", 2, dob, 4, NULL)) rc = -1;
  }
  if (!rc) {
    d->actions = malloc((size_t)(d->n_steps * d->act_dim + 1) * sizeof(float));
    d->obs = malloc((size_t)(d->n_steps * d->obs_dim + 1) * sizeof(float));
    if (!d->actions || !d->obs) abort();
  }
  for (int e = 0; e < ne && !rc; e++) {
    int64_t a = d->ep_start[e], T = d->ep_start[e + 1] - a;
    int nd;
    snprintf(p, sizeof p, "data/%s/actions", names[e]);
    float *x = ts_h5_read_f32(f, p, &nd, dims);
    if (!x) {
      rc = -1;
      break;
    }
    memcpy(d->actions + a * d->act_dim, x, (size_t)(T * d->act_dim) * sizeof(float));
    free(x);
    int col = 0;
    for (int k = 0; k < nk && !rc; k++) {
      snprintf(p, sizeof p, "data/%s/obs/%s", names[e], keys[k]);
      x = ts_h5_read_f32(f, p, &nd, dims);
      if (!x) {
        rc = -1;
        break;
      }
      int64_t ww = 1;
      for (int j = 1; j < nd; j++) ww *= dims[j];
      int w = (int)ww;
      for (int64_t t = 0; t < T; t++)
        memcpy(d->obs + (a + t) * d->obs_dim + col, x + t * w, (size_t)w * sizeof(float));
      col += w;
      free(x);
    }
  }
  for (int64_t i = 0; !rc && i < d->n_steps * d->act_dim; i++)
    if (!isfinite(d->actions[i])) rc = ts_fail("%s: NaN or Inf in actions (step %lld)", path, (long long)(i / d->act_dim));
  for (int64_t i = 0; !rc && i < d->n_steps * d->obs_dim; i++)
    if (!isfinite(d->obs[i])) rc = ts_fail("%s: NaN or Inf in observations (step %lld)", path, (long long)(i / d->obs_dim));
  ts_h5_free_names(names, ne);
  ts_h5_close(f);
  if (rc) {
    ts_dataset_free(d);
    return -1;
  }
  return 0;
}

void ts_dataset_free(ts_dataset *d) {
  free(d->ep_start);
  free(d->actions);
  free(d->obs);
  memset(d, 0, sizeof *d);
}

/* ---------- normaliser ---------- */

int ts_norm_fit(ts_normalizer *nz, const ts_dataset *d, int which, const uint8_t *mask) {
  int dim = which ? d->obs_dim : d->act_dim;
  const float *x = which ? d->obs : d->actions;
  if (dim > 64) return ts_fail("normaliser: %d dimensions, at most 64", dim);
  memset(nz, 0, sizeof *nz);
  nz->dim = dim;
  for (int j = 0; j < dim; j++) {
    nz->min[j] = INFINITY;
    nz->max[j] = -INFINITY;
  }
  int64_t rows = 0;
  for (int e = 0; e < d->n_episodes; e++) {
    if (mask && !mask[e]) continue;
    for (int64_t t = d->ep_start[e]; t < d->ep_start[e + 1]; t++, rows++)
      for (int j = 0; j < dim; j++) {
        float v = x[t * dim + j];
        if (v < nz->min[j]) nz->min[j] = v;
        if (v > nz->max[j]) nz->max[j] = v;
      }
  }
  if (rows == 0) return ts_fail("normaliser: no rows selected");
  for (int j = 0; j < dim; j++) {
    float range = nz->max[j] - nz->min[j];
    if (range < 1e-4f) {
      nz->scale[j] = 1.0f;
      nz->offset[j] = -nz->min[j];
    } else {
      nz->scale[j] = 2.0f / range;
      nz->offset[j] = -1.0f - nz->scale[j] * nz->min[j];
    }
  }
  return 0;
}

void ts_norm_apply(const ts_normalizer *nz, float *x, int64_t rows) {
  for (int64_t r = 0; r < rows; r++)
    for (int j = 0; j < nz->dim; j++) x[r * nz->dim + j] = x[r * nz->dim + j] * nz->scale[j] + nz->offset[j];
}

void ts_norm_unapply(const ts_normalizer *nz, float *x, int64_t rows) {
  for (int64_t r = 0; r < rows; r++)
    for (int j = 0; j < nz->dim; j++) x[r * nz->dim + j] = (x[r * nz->dim + j] - nz->offset[j]) / nz->scale[j];
}

static const char *norm_fields[4] = {"scale", "offset", "input_min", "input_max"};

int ts_norm_save(ts_h5 *f, const char *group, const ts_normalizer *nz) {
  const float *src[4] = {nz->scale, nz->offset, nz->min, nz->max};
  char name[256];
  int64_t d[1] = {nz->dim};
  for (int i = 0; i < 4; i++) {
    snprintf(name, sizeof name, "%s/%s", group, norm_fields[i]);
    if (ts_h5_write_f32(f, name, src[i], 1, d)) return -1;
  }
  return 0;
}

int ts_norm_load(ts_h5 *f, const char *group, ts_normalizer *nz) {
  float *dst[4] = {nz->scale, nz->offset, nz->min, nz->max};
  char name[256];
  memset(nz, 0, sizeof *nz);
  for (int i = 0; i < 4; i++) {
    snprintf(name, sizeof name, "%s/%s", group, norm_fields[i]);
    int nd;
    int64_t d[TS_MAXDIM];
    float *x = ts_h5_read_f32(f, name, &nd, d);
    if (!x) return -1;
    if (nd != 1 || d[0] > 64 || (i && d[0] != nz->dim)) {
      free(x);
      return ts_fail("%s: %s has a bad shape", ts_h5_path(f), name);
    }
    nz->dim = (int)d[0];
    memcpy(dst[i], x, (size_t)d[0] * sizeof(float));
    free(x);
  }
  for (int j = 0; j < nz->dim; j++)
    if (!isfinite(nz->scale[j]) || nz->scale[j] == 0 || !isfinite(nz->offset[j]))
      return ts_fail("%s: %s holds a zero, NaN or Inf scale/offset", ts_h5_path(f), group);
  return 0;
}

/* ---------- split and windows ---------- */

void ts_episode_split(int n, double val_ratio, int max_train, uint64_t seed, uint8_t *train, uint8_t *val) {
  int n_val = (int)lround(n * val_ratio);
  if (n_val < 1) n_val = 1;
  if (n_val > n - 1) n_val = n - 1;
  if (val_ratio <= 0) n_val = 0;
  int *perm = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
  if (!perm) abort();
  for (int i = 0; i < n; i++) perm[i] = i;
  ts_rng r;
  ts_rng_init(&r, seed);
  ts_rng_shuffle(&r, perm, n);
  for (int i = 0; i < n; i++) val[i] = train[i] = 0;
  for (int i = 0; i < n_val; i++) val[perm[i]] = 1;
  int kept = 0;
  for (int e = 0; e < n; e++)
    if (!val[e] && (max_train <= 0 || kept < max_train)) {
      train[e] = 1;
      kept++;
    }
  free(perm);
}

int ts_windows_build(const ts_dataset *d, const uint8_t *mask, int horizon, int pad_before, int pad_after,
                     ts_windows *w) {
  memset(w, 0, sizeof *w);
  w->horizon = horizon;
  /* Starts from -pad_before to L - horizon + pad_after, but every window holds at least one
   * frame of its episode (pads of horizon or more, or an empty episode, would make windows of
   * padding only, read from outside the episode). */
  int64_t cap = 0;
  for (int e = 0; e < d->n_episodes; e++)
    if (!mask || mask[e]) {
      int64_t L = d->ep_start[e + 1] - d->ep_start[e], lo = -pad_before, hi = L - horizon + pad_after;
      if (lo < 1 - horizon) lo = 1 - horizon;
      if (hi > L - 1) hi = L - 1;
      cap += L > 0 && hi >= lo ? hi - lo + 1 : 0;
    }
  w->idx = malloc((size_t)(cap ? cap : 1) * sizeof *w->idx);
  if (!w->idx) abort();
  for (int e = 0; e < d->n_episodes; e++) {
    if (mask && !mask[e]) continue;
    int64_t start = d->ep_start[e], L = d->ep_start[e + 1] - start, lo = -pad_before, hi = L - horizon + pad_after;
    if (lo < 1 - horizon) lo = 1 - horizon;
    if (hi > L - 1) hi = L - 1;
    for (int64_t i = lo; L > 0 && i <= hi; i++) {
      int64_t bs = (i > 0 ? i : 0) + start, be = (i + horizon < L ? i + horizon : L) + start;
      int64_t so = bs - (i + start), eo = (i + horizon + start) - be;
      w->idx[w->n][0] = bs;
      w->idx[w->n][1] = be;
      w->idx[w->n][2] = so;
      w->idx[w->n][3] = horizon - eo;
      w->n++;
    }
  }
  if (w->n > 0) return 0;
  ts_windows_free(w); /* nothing for the caller to free on failure */
  return ts_fail("windows: no episode is long enough for horizon %d", horizon);
}

void ts_windows_free(ts_windows *w) {
  free(w->idx);
  memset(w, 0, sizeof *w);
}

static void fill_window(const float *src, int dim, const int64_t ix[4], int horizon, float *out) {
  int64_t bs = ix[0], be = ix[1], ss = ix[2], se = ix[3];
  for (int64_t h = 0; h < horizon; h++) {
    int64_t t = h < ss ? bs : h >= se ? be - 1 : bs + (h - ss);
    memcpy(out + h * dim, src + t * dim, (size_t)dim * sizeof(float));
  }
}

void ts_windows_get(const ts_dataset *d, const ts_windows *w, int64_t i, float *obs, float *act) {
  if (obs) fill_window(d->obs, d->obs_dim, w->idx[i], w->horizon, obs);
  if (act) fill_window(d->actions, d->act_dim, w->idx[i], w->horizon, act);
}

int ts_dataset_episode_of(const ts_dataset *d, int64_t idx) {
  int lo = 0, hi = d->n_episodes; /* ep_start[lo] <= idx < ep_start[hi] */
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (d->ep_start[mid] <= idx) lo = mid;
    else hi = mid;
  }
  return lo;
}

int64_t ts_windows_step(const ts_dataset *d, const ts_windows *w, int64_t i, int h) {
  const int64_t *ix = w->idx[i];
  int64_t t = h < ix[2] ? ix[0] : h >= ix[3] ? ix[1] - 1 : ix[0] + (h - ix[2]);
  return t - d->ep_start[ts_dataset_episode_of(d, ix[0])];
}
