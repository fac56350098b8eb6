/* run.c: history, checkpoint, resume, CSV/PNG, progress and eval hook of a training run. */
#include "run.h"
#include "plot.h"
#include "core/config.h"
#include "core/error.h"
#include "core/sizes.h"
#include "core/timer.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ts_run {
  ts_run_spec s;
  int eval_col;  /* index into s.cols, or -1 */
  int w;         /* values per history row: step + n_cols */
  double *hist;  /* rows of w doubles */
  int n, cap;
  double t0, tlog, io;
  long start_step;
};

/* ---- history ---- */

static double *add_row(ts_run *r) {
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 256;
    r->hist = realloc(r->hist, (size_t)r->cap * (size_t)r->w * sizeof(double));
    if (!r->hist) abort();
  }
  double *row = r->hist + (size_t)r->n++ * (size_t)r->w;
  for (int k = 0; k < r->w; k++) row[k] = NAN;
  return row;
}

int ts_run_col_index(const ts_run *r, const char *name) {
  for (int k = 0; name && k < r->s.n_cols; k++)
    if (!strcmp(r->s.cols[k].name, name)) return k;
  return -1;
}

int ts_run_rows(const ts_run *r) { return r->n; }
const double *ts_run_row(const ts_run *r, int i) { return i >= 0 && i < r->n ? r->hist + (size_t)i * (size_t)r->w : NULL; }
double ts_run_io_seconds(const ts_run *r) { return r->io; }

static int write_log(ts_run *r, ts_h5 *f) {
  if (!r->n) return 0;
  int64_t d[1] = {r->n};
  float *tmp = malloc((size_t)r->n * sizeof(float));
  if (!tmp) abort();
  char name[128];
  int rc = 0;
  for (int k = 0; k < r->w && !rc; k++) {
    snprintf(name, sizeof name, "log/%s", k ? r->s.cols[k - 1].name : "step");
    for (int i = 0; i < r->n; i++) tmp[i] = (float)r->hist[(size_t)i * (size_t)r->w + (size_t)k];
    rc = ts_h5_write_f32(f, name, tmp, 1, d);
  }
  free(tmp);
  return rc;
}

/* The checkpoint's log/step and log/<column> vectors; a missing optional column (one added
 * after the checkpoint was written) reads as NaN. */
static int read_log(ts_run *r, ts_h5 *f, const char *out) {
  if (!ts_h5_exists(f, "log/step")) return 0;
  float **cols = calloc((size_t)r->w, sizeof *cols);
  if (!cols) abort();
  int nd, rc = 0;
  int64_t dims[TS_MAXDIM], rows = 0;
  char name[128];
  for (int k = 0; k < r->w && !rc; k++) {
    snprintf(name, sizeof name, "log/%s", k ? r->s.cols[k - 1].name : "step");
    if (k && r->s.cols[k - 1].optional && !ts_h5_exists(f, name)) continue;
    if (!(cols[k] = ts_h5_read_f32(f, name, &nd, dims))) rc = -1;
    else if (nd != 1) rc = ts_fail("%s: %s is not a vector", out, name);
    else if (k == 0) rows = dims[0];
    else if (dims[0] != rows) rc = ts_fail("%s: %s has %lld rows, log/step %lld", out, name, (long long)dims[0], (long long)rows);
  }
  for (int64_t i = 0; !rc && i < rows; i++) {
    double *row = add_row(r);
    for (int k = 0; k < r->w; k++) row[k] = cols[k] ? cols[k][i] : NAN;
  }
  for (int k = 0; k < r->w; k++) free(cols[k]);
  free(cols);
  return rc;
}

/* The log interval's sums at the checkpoint (spec.partial); zeros when an older checkpoint
 * has none. */
static int read_partial(ts_run *r, ts_h5 *f, const char *out) {
  for (int i = 0; i < r->s.n_partial; i++) r->s.partial[i] = 0;
  if (!r->s.n_partial || !ts_h5_has_attr(f, "/", "log_partial_n")) return 0;
  int64_t n = -1;
  if (ts_h5_get_attr_i64(f, "/", "log_partial_n", &n)) return -1;
  if (n < 0 || n > r->s.n_partial) /* fewer: written before the trainer kept more sums, the rest start at 0 */
    return ts_fail("%s: log_partial_n = %lld, this trainer keeps %d log sums", out, (long long)n, r->s.n_partial);
  for (int i = 0; i < n; i++) {
    char key[32];
    snprintf(key, sizeof key, "log_partial_%d", i);
    if (ts_h5_get_attr_f64(f, "/", key, &r->s.partial[i])) return -1;
    if (!isfinite(r->s.partial[i]) && !isnan(r->s.partial[i])) return ts_fail("%s: %s is not finite", out, key);
  }
  return 0;
}

/* ---- the recipe check ---- */

/* Does `line` of section `sec` ("[train]") hold a key the spec lets a resume change? */
static int may_change(const ts_run *r, const char *sec, const char *line) {
  if (!r->s.may_change) return 0;
  size_t sl = strlen(sec) >= 2 ? strlen(sec) - 2 : 0;
  for (const char *const *m = r->s.may_change; *m; m++) {
    const char *dot = strchr(*m, '.');
    if (!dot || (size_t)(dot - *m) != sl || strncmp(*m, sec + 1, sl)) continue;
    if (!strcmp(dot + 1, "*")) return 1;
    size_t kl = strlen(dot + 1);
    if (!strncmp(line, dot + 1, kl) && !strncmp(line + kl, " =", 2)) return 1;
  }
  return 0;
}

/* 0 when the config the checkpoint was trained with (INI text) equals the run's, line by line,
 * except in may_change keys. The saved text goes through ts_config first, so keys added since
 * it was written compare at their defaults. */
static int same_recipe(const ts_run *r, const char *saved) {
  const char *out = r->s.out;
  ts_config sc;
  ts_config_defaults(&sc);
  if (ts_config_parse_string(&sc, saved, out)) return -1;
  char *a = ts_config_to_ini(&sc);
  const char *p = a, *q = r->s.config;
  char sec[64] = "";
  int rc = 0;
  while (*p && *q && !rc) {
    size_t lp = strcspn(p, "\n"), lq = strcspn(q, "\n");
    if (*p == '[') snprintf(sec, sizeof sec, "%.*s", (int)(lp < 60 ? lp : 60), p);
    if ((lp != lq || strncmp(p, q, lp)) && !may_change(r, sec, p))
      rc = ts_fail("%s %s: '%.*s' in the checkpoint, '%.*s' now", out, sec, (int)lp, p, (int)lq, q);
    p += lp + (p[lp] == '\n');
    q += lq + (q[lq] == '\n');
  }
  free(a);
  return rc;
}

/* ---- open, resume, close ---- */

static int write_csv(const ts_run *r);
static int write_curves(const ts_run *r);

/* Removes <base><mid>.tmp-<pid> next to out, for mid "", ".csv", ".eval" (the copy an
 * evaluation reads, and its own temporary .eval.tmp-<pid>) or ".<...>.png", when no
 * process <pid> is alive: what a killed run leaves behind. */
static void sweep_stale(const ts_run_spec *s) {
  char dir[1024] = ""; /* with its trailing slash; "" for the current folder */
  const char *slash = strrchr(s->out, '/'), *base = slash ? slash + 1 : s->out;
  if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - s->out) + 1, s->out);
  size_t bl = strlen(base);
  DIR *d = opendir(*dir ? dir : ".");
  if (!d || !bl) {
    if (d) closedir(d);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *nm = e->d_name, *t;
    if (strncmp(nm, base, bl) || !(t = strstr(nm + bl, ".tmp-"))) continue;
    while (strstr(t + 1, ".tmp-")) t = strstr(t + 1, ".tmp-"); /* the last one */
    size_t ml = (size_t)(t - (nm + bl));
    const char *mid = nm + bl;
    /* <out>.eval.tmp-PID.tmp-PID: the temporary of the evaluated copy; judged as .eval */
    for (const char *u = mid; u < t; u++)
      if (!strncmp(u, ".tmp-", 5) && u + 5 < t && strspn(u + 5, "0123456789") == (size_t)(t - u - 5)) {
        ml = (size_t)(u - mid);
        break;
      }
    int ok_mid = (ml == 5 && !strncmp(mid, ".eval", 5)) || ml == 0 || (ml == 4 && !strncmp(mid, ".csv", 4)) || (ml >= 4 && !strncmp(mid + ml - 4, ".png", 4) && mid[0] == '.');
    const char *digits = t + 5;
    if (!ok_mid || !*digits || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 9) continue;
    long pid = atol(digits);
    if (pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
    char path[2048];
    snprintf(path, sizeof path, "%s%s", dir, nm);
    if (remove(path) == 0 && !s->quiet) fprintf(stderr, "removed %s (left by process %ld, no longer running)\n", path, pid);
  }
  closedir(d);
}

int ts_run_open(ts_run **out, const ts_run_spec *spec) {
  *out = NULL;
  if (!spec->out || !*spec->out || !spec->config) return ts_fail("training run: no output path or config");
  if (strlen(spec->out) > 900) return ts_fail("%.60s...: output path too long", spec->out);
  if (spec->n_tensors < 0 || (spec->n_tensors && !spec->tensors) || spec->n_cols < 0 || (spec->n_cols && !spec->cols))
    return ts_fail("%s: bad run spec", spec->out);
  if (spec->opt && spec->opt->n > spec->n_tensors) return ts_fail("%s: optimiser has more tensors than the checkpoint", spec->out);
  for (int k = 0; k < spec->n_cols; k++)
    if (!spec->cols[k].name || !*spec->cols[k].name || strlen(spec->cols[k].name) > 100 || strchr(spec->cols[k].name, '/'))
      return ts_fail("%s: bad history column name", spec->out);
  ts_run *r = calloc(1, sizeof *r);
  if (!r) abort();
  r->s = *spec;
  r->w = 1 + spec->n_cols;
  r->eval_col = ts_run_col_index(r, spec->eval_col);
  if (spec->eval && spec->eval_every > 0 && r->eval_col < 0) {
    free(r);
    return ts_fail("%s: evaluation needs an eval column", spec->out);
  }
  if (ts_regular_file(spec->out) < 0) { /* an existing --out that is a folder, FIFO or device */
    free(r);
    return -1;
  }
  sweep_stale(spec);
  /* fail now, not after the first checkpoint interval, if the output folder is not writable */
  char probe[1100];
  snprintf(probe, sizeof probe, "%s.tmp-%ld", spec->out, (long)getpid());
  FILE *pf = fopen(probe, "w");
  if (!pf) {
    free(r);
    return ts_fail("%s: cannot write here (does the folder exist?)", spec->out);
  }
  fclose(pf);
  remove(probe);
  r->t0 = r->tlog = ts_now();
  *out = r;
  return 0;
}

long ts_run_resume(ts_run *r) {
  const char *out = r->s.out;
  long step = 0;
  if (!r->s.fresh && access(out, F_OK) == 0) {
    ts_ckpt_state st = {NULL, 0, r->s.rng, r->s.opt};
    ts_h5 *f = ts_h5_open(out);
    int rc = f ? 0 : -1;
    if (f) {
      char *saved = ts_h5_get_attr_str(f, "/", "config");
      rc = saved ? same_recipe(r, saved) : ts_h5_has_attr(f, "/", "config") ? -1 : ts_fail("%s: no config attribute", out);
      free(saved);
    }
    if (!rc) rc = ts_ckpt_read(f, r->s.tensors, r->s.n_tensors, &st, NULL);
    r->n = 0;
    if (!rc) rc = read_log(r, f, out);
    if (!rc) rc = read_partial(r, f, out);
    if (f) ts_h5_close(f);
    if (rc) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", ts_error());
      ts_fail("cannot resume from %s (%s); pass --fresh to start over", out, msg);
      return -1;
    }
    step = (long)st.step;
    /* A kill between the checkpoint's rename and the CSV or figure left those behind it, and a
     * run resumed at its last step writes no checkpoint: write them from the history now. */
    if (write_csv(r) || write_curves(r)) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", ts_error());
      ts_fail("resuming from %s: %s", out, msg);
      return -1;
    }
  }
  r->start_step = step;
  r->t0 = r->tlog = ts_now();
  return step;
}

void ts_run_close(ts_run *r) {
  if (!r) return;
  free(r->hist);
  free(r);
}

/* ---- logging ---- */

void ts_fmt_duration(double s, char *buf, size_t n) {
  if (!(s >= 0) || s > 1e8) snprintf(buf, n, "?");
  else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
  else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

int ts_run_log(ts_run *r, long step, const double *values) {
  double tn = ts_now(), dt = tn - r->tlog;
  double *row = add_row(r);
  row[0] = (double)step;
  /* Held at the checkpoint's precision (log/<column> is float32), so the CSV and curves of a
   * resumed run, whose earlier rows come back from the checkpoint, equal an uninterrupted one's. */
  for (int k = 0; k < r->s.n_cols; k++) row[k + 1] = (float)(r->s.cols[k].per_s ? values[k] / dt : values[k]);
  r->tlog = tn;
  if (r->s.quiet) return 0;
  char line[1024], eta[32];
  size_t o = 0;
  double done = (double)(step - r->start_step);
  ts_fmt_duration(done > 0 ? (double)(r->s.total_steps - step) * (tn - r->t0) / done : -1, eta, sizeof eta);
  o += (size_t)snprintf(line + o, sizeof line - o, "step %ld/%ld", step, r->s.total_steps);
  if (r->s.steps_per_epoch > 0 && o < sizeof line)
    o += (size_t)snprintf(line + o, sizeof line - o, " epoch %ld", step > 0 ? (step - 1) / r->s.steps_per_epoch : 0);
  for (int k = 0; k < r->s.n_cols && o < sizeof line; k++) {
    if (!r->s.cols[k].show) continue;
    o += (size_t)snprintf(line + o, sizeof line - o, " ");
    if (o < sizeof line) o += (size_t)snprintf(line + o, sizeof line - o, r->s.cols[k].show, row[k + 1]);
  }
  fprintf(stderr, "%s | ETA %s\n", line, eta);
  return 0;
}

/* ---- checkpoint, CSV, curves ---- */

static int save(ts_run *r, const char *path, long step, ts_run_writer writer, void *user) {
  ts_ckpt_state st = {r->s.config, step, r->s.rng, r->s.opt};
  ts_h5 *f = ts_h5_create(path);
  if (!f) return -1;
  ts_h5_set_deflate(f, 0);
  int rc = ts_ckpt_write(f, r->s.tensors, r->s.n_tensors, &st);
  if (!rc && r->s.n_partial) rc = ts_h5_attr_i64(f, "/", "log_partial_n", r->s.n_partial);
  for (int i = 0; i < r->s.n_partial && !rc; i++) {
    char key[32];
    snprintf(key, sizeof key, "log_partial_%d", i);
    rc = ts_h5_attr_f64(f, "/", key, r->s.partial[i]);
  }
  if (!rc && writer) rc = writer(f, user);
  if (!rc) rc = write_log(r, f);
  if (rc) {
    ts_h5_close(f);
    return -1;
  }
  return ts_h5_commit(f);
}

static int write_csv(const ts_run *r) {
  char path[1100], tmp[1200];
  snprintf(path, sizeof path, "%s.csv", r->s.out);
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) return ts_fail("%s: cannot write log", path);
  fprintf(f, "step");
  for (int k = 0; k < r->s.n_cols; k++) fprintf(f, ",%s", r->s.cols[k].name);
  fprintf(f, "\n");
  for (int i = 0; i < r->n; i++) {
    const double *row = r->hist + (size_t)i * (size_t)r->w;
    fprintf(f, "%.0f", row[0]);
    for (int k = 0; k < r->s.n_cols; k++) {
      fputc(',', f);
      if (!isnan(row[k + 1])) fprintf(f, r->s.cols[k].csv ? r->s.cols[k].csv : "%.6g", row[k + 1]);
    }
    fprintf(f, "\n");
  }
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    remove(tmp);
    return ts_fail("%s: cannot write log", path);
  }
  return 0;
}

/* "samples_per_s" -> "samples/s", "eval_score" -> "eval score": a column's axis label. */
static void axis_label(const char *name, char *buf, size_t n) {
  size_t j = 0;
  for (const char *p = name; *p && j + 1 < n; p++) {
    if (!strncmp(p, "_per_", 5) && p[5]) {
      buf[j++] = '/';
      p += 4;
    } else buf[j++] = *p == '_' ? ' ' : *p;
  }
  buf[j] = 0;
}

/* One figure, <out>.png: a panel per plotted column against step, titled with the run. */
static int write_curves(const ts_run *r) {
  int np = 0;
  for (int k = 0; k < r->s.n_cols; k++) np += r->s.cols[k].plot != 0;
  if (!np || !r->n) return 0;
  int cols = np <= 3 ? np : (int)ceil(sqrt((double)np)), rows = (np + cols - 1) / cols;
  ts_fig *f = ts_fig_new(cols == 1 ? 800 : 560 * cols, 380 * rows + 40, rows, cols);
  if (!f) return -1;
  const char *base = strrchr(r->s.out, '/');
  char title[1200], label[128], path[1200];
  snprintf(title, sizeof title, "%s%s: training log to step %.0f", r->s.title_prefix ? r->s.title_prefix : "",
           base ? base + 1 : r->s.out,
           r->hist[(size_t)(r->n - 1) * (size_t)r->w]);
  ts_fig_title(f, title);
  double *x = malloc((size_t)r->n * sizeof(double)), *y = malloc((size_t)r->n * sizeof(double));
  if (!x || !y) abort();
  int rc = 0, panel = 0;
  for (int k = 0; k < r->s.n_cols && !rc; k++) {
    const ts_run_col *c = &r->s.cols[k];
    if (!c->plot) continue;
    int m = 0;
    for (int i = 0; i < r->n; i++) {
      const double *row = r->hist + (size_t)i * (size_t)r->w;
      if (isnan(row[k + 1])) continue;
      x[m] = row[0];
      y[m++] = row[k + 1];
    }
    axis_label(c->name, label, sizeof label);
    snprintf(title, sizeof title, "%s%s", label, c->plot == 2 ? " (log scale)" : "");
    rc = ts_fig_axes(f, panel, title, "step", label, c->plot == 2 ? TS_LOGY : 0);
    if (!rc && c->plot == 3) rc = ts_fig_ylim(f, panel, 0, 1);
    /* Sparse columns (the periodic evaluation) get a marker at each value. */
    if (!rc) rc = ts_fig_series(f, panel, NULL, x, y, NULL, m, m <= 40 ? TS_LINE | TS_MARKERS : TS_LINE);
    panel++;
  }
  free(x);
  free(y);
  snprintf(path, sizeof path, "%s.png", r->s.out);
  if (!rc) rc = ts_fig_save(f, path);
  ts_fig_free(f);
  return rc;
}

int ts_run_checkpoint(ts_run *r, long step, ts_run_writer writer, void *user) {
  double t = ts_now();
  int rc;
  if (r->s.eval && r->s.eval_every > 0 && step % r->s.eval_every == 0 && r->n) {
    /* The evaluation reads a copy, <out>.eval.tmp-PID: the checkpoint of this step reaches
     * <out> only with its score, so a run killed while evaluating resumes from the previous
     * one and evaluates again (with <out> first, that resume skipped the evaluation). */
    char pre[1100];
    snprintf(pre, sizeof pre, "%s.eval.tmp-%ld", r->s.out, (long)getpid());
    double score = NAN;
    rc = save(r, pre, step, writer, user);
    if (!rc) rc = r->s.eval(r->s.eval_user, pre, step, &score);
    remove(pre);
    if (!rc) {
      r->hist[(size_t)(r->n - 1) * (size_t)r->w + (size_t)r->eval_col + 1] = (float)score;
      rc = save(r, r->s.out, step, writer, user);
    }
  } else {
    rc = save(r, r->s.out, step, writer, user);
  }
  if (!rc) rc = write_csv(r);
  if (!rc) rc = write_curves(r);
  r->io += ts_now() - t;
  return rc;
}

ts_named *ts_run_model_tensors(const ts_params *P, ts_tensor **ema_shadow, int extra) {
  int n = P->n;
  ts_named *all = calloc((size_t)(2 * n + extra), sizeof *all);
  ts_named *m = ts_params_named(P, "model/", NULL), *e = ts_params_named(P, "ema/", ema_shadow);
  if (!all) abort();
  memcpy(all, m, (size_t)n * sizeof *m);
  memcpy(all + n, e, (size_t)n * sizeof *e);
  free(m); /* the names now belong to all */
  free(e);
  return all;
}
