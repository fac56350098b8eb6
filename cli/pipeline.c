/* tsdp pipeline --config P.ini [--out DIR] [--json] [section.key=value ...]
 * tsdp pipeline --sweep FOLDER [--out DIR] [--json] [section.key=value ...]
 *
 * The whole TS-DP pipeline in one process, stage by stage, through the library functions the
 * subcommands call (the cost model and the spec benchmark through their subcommand entry
 * points, stdout captured into the stage's file):
 *   import (zarr -> OUT/data.h5) -> train base -> distill drafter -> record rollouts ->
 *   bench cost -> rl train scheduler -> bench spec (acceptance plot) -> torch reference
 *   (scripts/bench_torch.py on the base, when [pipeline] torch_reference) -> evaluations
 *   (DDPM-T, DDIM-K, spec with the drafter at each fixed L, the static schedule, TS-DP =
 *   spec + drafter + RL scheduler) -> OUT/report.md, OUT/report.json.
 *
 * The torch reference stage times the base's DDPM-T chunk at batch 1 in PyTorch on this
 * machine (/usr/bin/python3 and its torch) -> OUT/torch_ref.json; the report's "vs PyTorch"
 * column divides that time by each row's ms per chunk. Without the interpreter, its torch,
 * h5py or numpy, or the script, the stage is "not available": one line in the log and in the
 * report, the column n/a, the pipeline goes on; the script failing otherwise is an error.
 *
 * Skip / resume rule. Every stage's output X has a sidecar X.stage (written atomically) with
 * the stage's key: the FNV-1a hash of the stage's effective config (the INI text of the
 * resolved stage config, its sizes) and its inputs' identities (the content hash of each
 * input file; for a zarr folder every file's name, size and mtime). A stage whose sidecar
 * says done, whose key equals the one computed now and whose output still has the recorded
 * content hash is skipped. Otherwise it runs; a training stage whose sidecar says "running"
 * with the same key (it was killed) resumes from its checkpoint, else it starts fresh. As
 * inputs enter the key by content, a re-run stage makes every stage that reads its output
 * run again, and only those. In a sweep, a stage whose finished twin (same key, verified
 * output) exists in another configuration's folder is hard-linked from there. */
#define _XOPEN_SOURCE 700
#include "cli.h"
#include "core/config.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/sizes.h"
#include "data/dataset.h"
#include "infer/blocks.h"
#include "infer/drafter.h"
#include "infer/rollout.h"
#include "rl/sched.h"
#include "train/distill.h"
#include "train/train.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const USAGE = "tsdp pipeline (--config P.ini | --sweep FOLDER) [--out DIR] [--json] [section.key=value ...]";

/* ---- hashing ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
  return h;
}
#define FNV0 1469598103934665603ULL

/* Content hash of a file; 0 with a message when it cannot be read. */
static int hash_file(const char *path, uint64_t *out) {
  FILE *f = fopen(path, "rb");
  if (!f) return ts_fail("%s: cannot open", path);
  static unsigned char buf[1 << 16];
  uint64_t h = FNV0;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = fnv(h, buf, n);
  int err = ferror(f);
  fclose(f);
  if (err) return ts_fail("%s: read error", path);
  *out = h;
  return 0;
}

/* A zarr folder's identity: the sum over its files of hash(relative name, size, mtime). */
static uint64_t tree_sum;
static size_t tree_root;
static int tree_visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)ftw;
  if (type != FTW_F) return 0;
  uint64_t h = fnv(FNV0, path + tree_root, strlen(path + tree_root));
  long long v[3] = {(long long)st->st_size, (long long)st->st_mtim.tv_sec, (long long)st->st_mtim.tv_nsec};
  tree_sum += fnv(h, v, sizeof v);
  return 0;
}
static uint64_t hash_tree(const char *dir) {
  tree_sum = 0;
  tree_root = strlen(dir);
  nftw(dir, tree_visit, 16, FTW_PHYS);
  return tree_sum;
}

/* ---- the run's state ---- */

typedef struct {
  char name[48];   /* "train base" */
  char file[64];   /* output, relative to the run's folder */
  int status;      /* 0 not reached, 1 skipped, 2 ran, 3 linked from a twin, 4 not available */
  double seconds;
} stage_log;

typedef struct {
  char name[32], label[64];
  int kind, steps, drafter, sched; /* drafter: 0 none, 1 drafter.h5, 2 x0; sched: 0 none, 1 static, 2 rl */
  int gifs;
  /* results */
  int episodes;
  double mean, mean_se, succ, succ_se, ms, cps, calls, dcalls, accept;
  int has;
} ev_row;

enum { MAX_STAGES = 32, MAX_ROWS = 16 };

typedef struct {
  ts_config cfg, base, drafter, sched; /* the pipeline's and the three stage configs */
  char dir[512], cfg_path[512];
  int json;
  FILE *log; /* progress lines: stdout, or stderr with --json */
  int k, total;
  double t0;
  const char *twins; /* sweep: the folder holding the other configurations' folders */
  char command[2048];
  /* inputs */
  char data_h5[1100];
  int zarr;
  uint64_t h_data, h_base, h_drafter, h_rollouts, h_cost, h_sched;
  stage_log st[MAX_STAGES];
  int nst;
  ev_row rows[MAX_ROWS];
  int nrows;
  /* the PyTorch reference (torch reference stage) */
  int torch;            /* 0 off (torch_reference = false), 1 measured, 2 not available */
  char torch_why[512];  /* not available: why */
  char torch_cmd[3600]; /* the command that reproduces it */
  char torch_version[64], torch_threads_note[256];
  double torch_ms, tsdp_ms, torch_err; /* DDPM chunk at batch 1, ms: PyTorch, tsdp in the same run */
  int torch_threads, torch_T;
} pl_run;

static void path_in(const pl_run *P, const char *rel, char *out, size_t n) { snprintf(out, n, "%s/%s", P->dir, rel); }

static int mkdirs(const char *path) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *s = buf + 1;; s++) {
    if (*s == '/' || !*s) {
      char c = *s;
      *s = 0;
      if (mkdir(buf, 0755) && errno != EEXIST) return ts_fail("%s: cannot create folder (%s)", buf, strerror(errno));
      *s = c;
      if (!c) break;
    }
  }
  struct stat sb;
  if (stat(path, &sb) || !S_ISDIR(sb.st_mode)) return ts_fail("%s: not a folder", path);
  return 0;
}

/* Text written to path through a temporary file and a rename. */
static int write_atomic(const char *path, const char *text) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) return ts_fail("%s: cannot write", tmp);
  int bad = fputs(text, f) < 0;
  bad |= fflush(f) != 0;
  bad |= fsync(fileno(f)) != 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path)) {
    unlink(tmp);
    return ts_fail("%s: write failed", path);
  }
  return 0;
}

/* ---- stages: key, sidecar, skip / resume ---- */

typedef struct {
  const char *name, *file; /* file relative to the run's folder */
  char out[1100], side[1200];
  char *text; /* what the key hashes */
  uint64_t key, out_hash;
  int resume; /* a killed run of the same key: resume its checkpoint */
  double t0;
} stage;

static void stage_init(pl_run *P, stage *s, const char *name, const char *file, char *text) {
  memset(s, 0, sizeof *s);
  s->name = name, s->file = file, s->text = text;
  path_in(P, file, s->out, sizeof s->out);
  snprintf(s->side, sizeof s->side, "%s.stage", s->out);
  s->key = fnv(FNV0, text, strlen(text));
  P->k++;
}

/* The sidecar's status ("done" / "running"), key and output hash; 0 when it reads. */
static int read_side(const char *side, char *status, uint64_t *key, uint64_t *oh) {
  FILE *f = fopen(side, "r");
  if (!f) return -1;
  char line[512];
  int got = 0;
  *oh = 0;
  while (fgets(line, sizeof line, f) && strncmp(line, "---", 3)) {
    unsigned long long v;
    if (sscanf(line, "status = %15s", status) == 1) got |= 1;
    else if (sscanf(line, "key = %llx", &v) == 1) *key = v, got |= 2;
    else if (sscanf(line, "output_hash = %llx", &v) == 1) *oh = v;
  }
  fclose(f);
  return got == 3 ? 0 : -1;
}

static int write_side(const stage *s, const char *status, double seconds) {
  char *buf = NULL;
  size_t n = 0;
  FILE *m = open_memstream(&buf, &n);
  if (!m) abort();
  time_t now = time(NULL);
  char when[64];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  fprintf(m, "tsdp pipeline stage\nstage = %s\nstatus = %s\nkey = %016llx\noutput = %s\n", s->name, status,
          (unsigned long long)s->key, s->file);
  if (!strcmp(status, "done")) fprintf(m, "output_hash = %016llx\nseconds = %.1f\n", (unsigned long long)s->out_hash, seconds);
  fprintf(m, "written = %s\n--- the key is the FNV-1a hash of the text below\n%s", when, s->text);
  fclose(m);
  int rc = write_atomic(s->side, buf);
  free(buf);
  return rc;
}

static stage_log *log_of(pl_run *P, const stage *s) {
  stage_log *l = &P->st[P->nst < MAX_STAGES ? P->nst++ : MAX_STAGES - 1];
  snprintf(l->name, sizeof l->name, "%s", s->name);
  snprintf(l->file, sizeof l->file, "%s", s->file);
  return l;
}

/* A finished twin of this stage in another configuration's folder (sweep): link its output
 * and the files next to it named after it (OUT.csv, OUT.png, ...). 1 when linked. */
static int link_twin(pl_run *P, stage *s) {
  if (!P->twins) return 0;
  DIR *d = opendir(P->twins);
  if (!d) return 0;
  struct dirent *e;
  int done = 0;
  while (!done && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char odir[1100], oout[1300], oside[1400], status[16];
    snprintf(odir, sizeof odir, "%s/%s", P->twins, e->d_name);
    if (!strcmp(odir, P->dir)) continue;
    snprintf(oout, sizeof oout, "%s/%s", odir, s->file);
    snprintf(oside, sizeof oside, "%s.stage", oout);
    uint64_t key, oh, h;
    if (read_side(oside, status, &key, &oh) || strcmp(status, "done") || key != s->key || hash_file(oout, &h) || h != oh)
      continue;
    /* the output and its companions: same folder, names starting with the output's name + '.' */
    char sdir[1300], ddir[1300];
    const char *slash = strrchr(oout, '/');
    snprintf(sdir, sizeof sdir, "%.*s", (int)(slash - oout), oout);
    snprintf(ddir, sizeof ddir, "%.*s", (int)(strrchr(s->out, '/') - s->out), s->out);
    const char *base = slash + 1;
    size_t bl = strlen(base);
    DIR *sd = opendir(sdir);
    if (!sd) continue;
    struct dirent *f;
    int bad = 0;
    while ((f = readdir(sd))) {
      if (strncmp(f->d_name, base, bl) || (f->d_name[bl] && f->d_name[bl] != '.') || strstr(f->d_name, ".tmp-") ||
          (f->d_name[bl] && !strcmp(f->d_name + bl, ".stage")))
        continue;
      char from[1700], to[1700];
      snprintf(from, sizeof from, "%s/%s", sdir, f->d_name);
      snprintf(to, sizeof to, "%s/%s", ddir, f->d_name);
      unlink(to);
      if (link(from, to)) bad = 1;
    }
    closedir(sd);
    if (bad) continue;
    if (!strncmp(s->file, "eval/", 5)) { /* an evaluation's GIFs: gifs/NAME/ */
      char name[64], gs[1400], gd[1400];
      snprintf(name, sizeof name, "%.*s", (int)(strlen(s->file) - 10), s->file + 5); /* eval/NAME.json */
      snprintf(gs, sizeof gs, "%s/gifs/%s", odir, name);
      snprintf(gd, sizeof gd, "%s/gifs/%s", P->dir, name);
      DIR *g = opendir(gs);
      if (g && !mkdirs(gd))
        while ((f = readdir(g))) {
          if (f->d_name[0] == '.') continue;
          char from[1700], to[1700];
          snprintf(from, sizeof from, "%s/%s", gs, f->d_name);
          snprintf(to, sizeof to, "%s/%s", gd, f->d_name);
          unlink(to);
          if (link(from, to)) bad = 1;
        }
      if (g) closedir(g);
      if (bad) continue;
    }
    s->out_hash = oh;
    fprintf(P->log, "[%d/%d] %s: linked from %s (same key %016llx)\n", P->k, P->total, s->name, oout,
            (unsigned long long)s->key);
    done = 1;
  }
  closedir(d);
  return done;
}

/* 1: done already (skipped, or linked from a twin); 0: to run (s->resume set); -1 error. */
static int stage_check(pl_run *P, stage *s) {
  char status[16] = "";
  uint64_t key = 0, oh = 0, h = 0;
  const char *why;
  int have = !read_side(s->side, status, &key, &oh);
  if (!have) why = access(s->out, F_OK) ? "no output yet" : "output has no record of its config";
  else if (key != s->key) why = "its config or inputs changed";
  else if (!strcmp(status, "running")) why = "resuming a run that did not finish", s->resume = 1;
  else if (access(s->out, F_OK)) why = "output missing";
  else if (hash_file(s->out, &h) || h != oh) why = "output changed since it was recorded";
  else {
    s->out_hash = oh;
    fprintf(P->log, "[%d/%d] %s: skipped, %s matches its recorded config (key %016llx)\n", P->k, P->total, s->name, s->file,
            (unsigned long long)s->key);
    log_of(P, s)->status = 1;
    return 1;
  }
  if (link_twin(P, s)) {
    log_of(P, s)->status = 3;
    return write_side(s, "done", 0) ? -1 : 1;
  }
  fprintf(P->log, "[%d/%d] %s: running (%s) -> %s\n", P->k, P->total, s->name, why, s->file);
  fflush(P->log);
  s->t0 = ts_now();
  return write_side(s, "running", 0) ? -1 : 0;
}

static int stage_done(pl_run *P, stage *s) {
  if (hash_file(s->out, &s->out_hash)) return -1;
  double sec = ts_now() - s->t0;
  if (write_side(s, "done", sec)) return -1;
  stage_log *l = log_of(P, s);
  l->status = 2, l->seconds = sec;
  fprintf(P->log, "[%d/%d] %s: done in %.1f s (pipeline %.1f s)\n", P->k, P->total, s->name, sec, ts_now() - P->t0);
  fflush(P->log);
  return 0;
}

/* The key text of a stage: its name, its inputs' hashes and extra lines, then a config's INI. */
static char *key_text(const char *stage_name, const ts_config *c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static char *key_text(const char *stage_name, const ts_config *c, const char *fmt, ...) {
  char *buf = NULL;
  size_t n = 0;
  FILE *m = open_memstream(&buf, &n);
  if (!m) abort();
  fprintf(m, "stage %s\n", stage_name);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(m, fmt, ap);
  va_end(ap);
  if (c) {
    char *ini = ts_config_to_ini(c);
    /* the [pipeline] section is not the stage's config */
    char *p = strstr(ini, "[pipeline]");
    if (p) *p = 0;
    fprintf(m, "%s", ini);
    free(ini);
  }
  fclose(m);
  return buf;
}

/* stdout of fn(argc, argv) into path (through a temporary file and a rename). */
static int captured(int (*fn)(int, char **), int argc, char **argv, const char *path) {
  char tmp[1200];
  snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
  fflush(stdout);
  int saved = dup(1), fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (saved < 0 || fd < 0) {
    if (saved >= 0) close(saved);
    if (fd >= 0) close(fd);
    return ts_fail("%s: cannot write", tmp);
  }
  dup2(fd, 1);
  close(fd);
  int rc = fn(argc, argv);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  if (rc) {
    unlink(tmp);
    return -1;
  }
  if (rename(tmp, path)) return ts_fail("%s: cannot rename", tmp);
  return 0;
}

/* ---- configs ---- */

/* Space-separated section.key=value overrides (a pipeline key's value) applied to c. */
static int apply_set(ts_config *c, const char *list, const char *what) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  char *save = NULL;
  for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
    if (ts_config_override(c, t)) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", ts_error());
      return ts_fail("[pipeline] %s: %s", what, msg);
    }
  return 0;
}

static int stage_cfg(ts_config *c, const char *path, const char *set, const char *what_path, const char *what_set) {
  ts_config_defaults(c);
  if (!path[0]) return ts_fail("[pipeline] %s is empty", what_path);
  if (ts_config_load(c, path)) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ts_error());
    return ts_fail("[pipeline] %s: %s", what_path, msg);
  }
  ts_config d;
  ts_config_defaults(&d);
  c->pipeline = d.pipeline; /* a stage config's own [pipeline] keys mean nothing */
  return apply_set(c, set, what_set);
}

/* A pipeline config, with its include chain (at most 4 deep, relative to the including file). */
static int load_layered(ts_config *c, const char *path, int depth) {
  ts_config t;
  ts_config_defaults(&t);
  if (ts_config_load(&t, path)) return -1;
  if (!t.pipeline.include[0]) {
    *c = t;
    return 0;
  }
  if (depth >= 4) return ts_fail("%s: [pipeline] include nested more than 4 deep", path);
  char inc[1024];
  const char *slash = strrchr(path, '/');
  if (t.pipeline.include[0] == '/' || !slash) snprintf(inc, sizeof inc, "%s", t.pipeline.include);
  else snprintf(inc, sizeof inc, "%.*s/%s", (int)(slash - path), path, t.pipeline.include);
  if (load_layered(c, inc, depth + 1)) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ts_error());
    return ts_fail("%s: include: %s", path, msg);
  }
  return ts_config_load(c, path);
}

/* The pipeline config (file, includes, command-line overrides) and the stage configs. */
static int pipe_config(pl_run *P, const char *path, int argc, char **argv, const char *out_opt) {
  ts_config *c = &P->cfg;
  if (load_layered(c, path, 0)) return -1;
  for (int i = 0; i < argc; i++) {
    if (argv[i][0] == '-') {
      if (strcmp(argv[i], "--json")) i++;
      continue;
    }
    if (ts_config_override(c, argv[i])) return -1;
  }
  /* Stage settings live in the stage configs: any other section set here is refused. */
  ts_config a = *c, d;
  ts_config_defaults(&d);
  a.pipeline = d.pipeline;
  char *x = ts_config_to_ini(&a), *y = ts_config_to_ini(&d);
  const char *p = x, *q = y, *sec = "";
  char secbuf[64] = "";
  int rc = 0;
  while (*p && *q) {
    size_t lp = strcspn(p, "\n"), lq = strcspn(q, "\n");
    if (*p == '[') snprintf(secbuf, sizeof secbuf, "%.*s", (int)(lp < 60 ? lp : 60), p), sec = secbuf;
    if (lp != lq || strncmp(p, q, lp)) {
      rc = ts_fail("%s: %s '%.*s': a pipeline config holds [pipeline] keys only; stage settings go in base_config, "
                   "drafter_config, scheduler_config or the *_set keys", path, sec, (int)lp, p);
      break;
    }
    p += lp + (p[lp] == '\n');
    q += lq + (q[lq] == '\n');
  }
  free(x), free(y);
  if (rc) return -1;
  const struct ts_pipeline_cfg *pp = &c->pipeline;
  snprintf(P->dir, sizeof P->dir, "%s", out_opt ? out_opt : pp->out);
  if (!P->dir[0]) return ts_fail("%s: [pipeline] out is empty", path);
  size_t L = strlen(P->dir);
  while (L > 1 && P->dir[L - 1] == '/') P->dir[--L] = 0;
  if (stage_cfg(&P->base, pp->base_config, pp->base_set, "base_config", "base_set") ||
      stage_cfg(&P->drafter, pp->drafter_config, pp->drafter_set, "drafter_config", "drafter_set") ||
      stage_cfg(&P->sched, pp->scheduler_config, pp->scheduler_set, "scheduler_config", "scheduler_set"))
    return -1;
  if (pp->base_steps) P->base.train.max_steps = pp->base_steps;
  if (pp->drafter_steps) P->drafter.train.max_steps = pp->drafter_steps;
  if (pp->rl_updates) P->sched.rl.updates = pp->rl_updates;
  int maxb = P->sched.rl.blocks[P->sched.rl.n_blocks - 1];
  if (maxb + 1 > TS_COST_MAX_BATCH)
    return ts_fail("[pipeline] scheduler_config: largest rl.blocks %d needs a cost model to batch %d (at most %d)", maxb,
                   maxb + 1, TS_COST_MAX_BATCH);
  if (ts_config_validate(c, path)) return -1;
  if (!pp->data[0]) return ts_fail("%s: [pipeline] data is empty (a Push-T zarr folder or an imported .h5)", path);
  struct stat sb;
  if (stat(pp->data, &sb)) return ts_fail("%s: [pipeline] data = %s: no such file or folder", path, pp->data);
  P->zarr = S_ISDIR(sb.st_mode);
  if (!P->zarr && ts_regular_file(pp->data)) return -1;
  return 0;
}

/* ---- the stages ---- */

static int st_import(pl_run *P) {
  const char *zarr = P->cfg.pipeline.data;
  if (!P->zarr) {
    snprintf(P->data_h5, sizeof P->data_h5, "%s", zarr);
    P->k++;
    fprintf(P->log, "[%d/%d] import: %s is an imported dataset, nothing to import\n", P->k, P->total, zarr);
    return hash_file(P->data_h5, &P->h_data);
  }
  char abs[4096];
  if (!realpath(zarr, abs)) snprintf(abs, sizeof abs, "%s", zarr);
  stage s;
  stage_init(P, &s, "import", "data.h5", key_text("import", NULL, "zarr %s\nfiles %016llx\n", abs,
                                                  (unsigned long long)hash_tree(zarr)));
  snprintf(P->data_h5, sizeof P->data_h5, "%s", s.out);
  int rc = stage_check(P, &s);
  if (rc == 0) {
    ts_import_report r;
    rc = ts_pusht_import_zarr(zarr, s.out, &r);
    if (!rc) fprintf(P->log, "  imported %s -> %s\n", zarr, s.out);
    if (!rc) rc = stage_done(P, &s);
  }
  P->h_data = s.out_hash;
  free(s.text);
  return rc < 0 ? -1 : 0;
}

static int st_train(pl_run *P) {
  stage s;
  stage_init(P, &s, "train base", "base.h5", key_text("train", &P->base, "input data %016llx\n", (unsigned long long)P->h_data));
  int rc = stage_check(P, &s);
  if (rc == 0) {
    ts_train_opts o = {P->data_h5, s.out, P->json, !s.resume, 0};
    ts_train_result r;
    rc = ts_train(&P->base, &o, &r);
    if (!rc)
      fprintf(P->log, "  trained to step %ld (resumed from %d): final loss %.5f, %.0f samples/s\n", r.steps, r.resumed_from,
              r.final_loss, r.samples_per_s);
    if (!rc) rc = stage_done(P, &s);
  }
  P->h_base = s.out_hash;
  free(s.text);
  return rc < 0 ? -1 : 0;
}

static int st_distill(pl_run *P) {
  stage s;
  stage_init(P, &s, "distill drafter", "drafter.h5",
             key_text("distill", &P->drafter, "input data %016llx\ninput base %016llx\n", (unsigned long long)P->h_data,
                      (unsigned long long)P->h_base));
  int rc = stage_check(P, &s);
  if (rc == 0) {
    char base[1100];
    path_in(P, "base.h5", base, sizeof base);
    ts_distill_opts o = {base, P->data_h5, s.out, P->json, !s.resume, 0};
    ts_distill_result r;
    rc = ts_distill(&P->drafter, &o, &r);
    if (!rc)
      fprintf(P->log, "  distilled to step %ld (resumed from %d): loss %.5f, predicted acceptance %.3f%s\n", r.steps,
              r.resumed_from, r.final_loss, r.heldout ? r.heldout_accept : r.final_accept, r.heldout ? " (held-out)" : "");
    if (!rc) rc = stage_done(P, &s);
  }
  P->h_drafter = s.out_hash;
  free(s.text);
  return rc < 0 ? -1 : 0;
}

static int load_base(pl_run *P, ts_policy *p) {
  char base[1100];
  path_in(P, "base.h5", base, sizeof base);
  ts_set_threads(P->cfg.pipeline.threads);
  if (ts_policy_load(p, base, "ema")) return -1;
  ts_policy_set_threads(p, P->cfg.pipeline.threads);
  return 0;
}

static int st_record(pl_run *P) {
  const struct ts_pipeline_cfg *pp = &P->cfg.pipeline;
  int ddim = pp->rollout_sampler == TS_SAMPLER_DDIM;
  stage s;
  stage_init(P, &s, "record rollouts", "rollouts.h5",
             key_text("record", NULL, "input base %016llx\nepisodes %d\nseed_start %d\nsampler %s\nsteps %d\n",
                      (unsigned long long)P->h_base, pp->rollout_episodes, pp->rollout_seed_start,
                      ts_sampler_names[pp->rollout_sampler], ddim ? pp->rollout_steps : 0));
  int rc = stage_check(P, &s);
  if (rc == 0) {
    ts_policy p;
    char base[1100], name[32];
    path_in(P, "base.h5", base, sizeof base);
    rc = load_base(P, &p);
    if (!rc) {
      ts_sampler smp = {.kind = ddim ? TS_SAMPLER_DDIM : TS_SAMPLER_DDPM, .steps = ddim ? pp->rollout_steps : 0};
      snprintf(name, sizeof name, ddim ? "ddim-%d" : "ddpm", pp->rollout_steps);
      ts_eval_opts o = {.episodes = pp->rollout_episodes, .seed_start = pp->rollout_seed_start, .seed = 0, .quiet = 1};
      ts_eval_result r;
      rc = ts_rollouts_record(&p, &smp, &o, name, base, s.out, &r);
      if (!rc)
        fprintf(P->log, "  recorded %ld chunk windows of %d episodes (sampler %s, mean score %.3f)\n", r.chunks, r.episodes,
                name, r.mean_score);
      ts_policy_free(&p);
    }
    if (!rc) rc = stage_done(P, &s);
  }
  P->h_rollouts = s.out_hash;
  free(s.text);
  return rc < 0 ? -1 : 0;
}

/* A stage's captured output into the pipeline's log, indented. */
static void log_lines(pl_run *P, const char *path) {
  FILE *f = fopen(path, "r");
  char line[4096];
  while (f && fgets(line, sizeof line, f)) fprintf(P->log, "  %s", line);
  if (f) fclose(f);
}

static int st_cost(pl_run *P) {
  const struct ts_pipeline_cfg *pp = &P->cfg.pipeline;
  int maxb = P->sched.rl.blocks[P->sched.rl.n_blocks - 1] + 1;
  stage s;
  stage_init(P, &s, "bench cost", "cost.ini",
             key_text("cost", NULL, "input base %016llx\ninput drafter %016llx\nmax_batch %d\nreps %d\nthreads %d\n",
                      (unsigned long long)P->h_base, (unsigned long long)P->h_drafter, maxb, pp->cost_reps, pp->threads));
  int rc = stage_check(P, &s);
  if (rc == 0) {
    char base[1100], dr[1100], mb[16], reps[16], th[16], txt[1100];
    path_in(P, "base.h5", base, sizeof base);
    path_in(P, "drafter.h5", dr, sizeof dr);
    path_in(P, "cost.txt", txt, sizeof txt);
    snprintf(mb, sizeof mb, "%d", maxb), snprintf(reps, sizeof reps, "%d", pp->cost_reps);
    snprintf(th, sizeof th, "%d", pp->threads);
    char *av[] = {"--ckpt", base, "--drafter", dr, "--out", s.out, "--max-batch", mb, "--reps", reps, "--threads", th, NULL};
    rc = captured(ts_bench_cost, 12, av, txt);
    if (!rc) {
      log_lines(P, txt);
      rc = stage_done(P, &s);
    }
  }
  P->h_cost = s.out_hash;
  free(s.text);
  return rc < 0 ? -1 : 0;
}

static int st_sched(pl_run *P) {
  ts_config c = P->sched;
  c.rl.cost_model[0] = 0; /* enters the key by content, not by path */
  stage s;
  stage_init(P, &s, "rl train scheduler", "sched.h5",
             key_text("rl", &c, "input base %016llx\ninput drafter %016llx\ninput rollouts %016llx\ninput cost %016llx\n",
                      (unsigned long long)P->h_base, (unsigned long long)P->h_drafter, (unsigned long long)P->h_rollouts,
                      (unsigned long long)P->h_cost));
  int rc = stage_check(P, &s);
  if (rc == 0) {
    char base[1100], dr[1100], ro[1100];
    path_in(P, "base.h5", base, sizeof base);
    path_in(P, "drafter.h5", dr, sizeof dr);
    path_in(P, "rollouts.h5", ro, sizeof ro);
    c = P->sched;
    if (strlen(P->dir) + 10 >= sizeof c.rl.cost_model) rc = ts_fail("%s: folder name too long for rl.cost_model", P->dir);
    snprintf(c.rl.cost_model, sizeof c.rl.cost_model, "%.240s/cost.ini", P->dir);
    ts_sched_train_opts o = {base, dr, ro, s.out, !s.resume, P->json, 0};
    ts_sched_train_result r;
    ts_set_threads(1);
    if (!rc) rc = ts_sched_train(&c, &o, &r);
    if (!rc)
      fprintf(P->log, "  %ld updates (resumed from %d): %.2f ms/chunk by the cost model at mean L %.2f; static schedule "
              "%.2f, best fixed L = %d %.2f\n", r.updates, r.resumed_from, r.final_cost_ms, r.final_mean_L, r.static_ms,
              r.fixed_best, r.fixed_best_ms);
    if (!rc) rc = stage_done(P, &s);
  }
  P->h_sched = s.out_hash;
  free(s.text);
  return rc < 0 ? -1 : 0;
}

static int st_bench(pl_run *P) {
  const struct ts_pipeline_cfg *pp = &P->cfg.pipeline;
  char blocks[128] = "";
  for (int i = 0; i < pp->n_spec_blocks; i++)
    snprintf(blocks + strlen(blocks), sizeof blocks - strlen(blocks), "%s%d", i ? "," : "", pp->spec_blocks[i]);
  stage s;
  stage_init(P, &s, "bench spec", "bench_spec.json",
             key_text("bench", NULL, "input data %016llx\ninput base %016llx\ninput drafter %016llx\ninput sched %016llx\n"
                      "blocks %s\nwindows %d\nthreads %d\n", (unsigned long long)P->h_data, (unsigned long long)P->h_base,
                      (unsigned long long)P->h_drafter, (unsigned long long)P->h_sched, blocks, pp->bench_windows,
                      pp->threads));
  int rc = stage_check(P, &s);
  if (rc == 0) {
    char base[1100], dr[1100], sc[1100], plot[1100], win[16], th[16];
    path_in(P, "base.h5", base, sizeof base);
    path_in(P, "drafter.h5", dr, sizeof dr);
    path_in(P, "sched.h5", sc, sizeof sc);
    path_in(P, "bench_spec", plot, sizeof plot);
    snprintf(win, sizeof win, "%d", pp->bench_windows), snprintf(th, sizeof th, "%d", pp->threads);
    char *av[] = {"--ckpt", base, "--data", P->data_h5, "--drafter", dr, "--scheduler", sc, "--blocks", blocks,
                  "--windows", win, "--threads", th, "--plot", plot, "--json", NULL};
    rc = captured(ts_bench_spec, 17, av, s.out);
    if (!rc) fprintf(P->log, "  %d windows, blocks %s: %s, acceptance per step in bench_spec.png\n", pp->bench_windows, blocks, s.file);
    if (!rc) rc = stage_done(P, &s);
  }
  free(s.text);
  return rc < 0 ? -1 : 0;
}

/* ---- evaluations ---- */

static double jget(const char *text, const char *key) {
  char pat[80];
  snprintf(pat, sizeof pat, "\"%s\": ", key);
  const char *p = strstr(text, pat);
  if (!p) return NAN;
  char *e;
  double v = strtod(p + strlen(pat), &e);
  return e == p + strlen(pat) ? NAN : v;
}

static void jnum(FILE *f, const char *key, double v, const char *sep) {
  if (isfinite(v)) fprintf(f, "  \"%s\": %.6g%s\n", key, v, sep);
  else fprintf(f, "  \"%s\": null%s\n", key, sep);
}

static int read_row(const char *path, ev_row *w) {
  FILE *f = fopen(path, "r");
  if (!f) return ts_fail("%s: cannot open", path);
  char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  w->episodes = (int)jget(buf, "episodes");
  w->mean = jget(buf, "mean_score"), w->mean_se = jget(buf, "mean_score_se");
  w->succ = jget(buf, "success_rate"), w->succ_se = jget(buf, "success_rate_se");
  w->ms = jget(buf, "ms_per_chunk"), w->cps = jget(buf, "chunks_per_s");
  w->calls = jget(buf, "target_calls_per_chunk"), w->dcalls = jget(buf, "drafter_calls_per_chunk");
  w->accept = jget(buf, "acceptance");
  w->has = isfinite(w->mean);
  return w->has ? 0 : ts_fail("%s: no mean_score", path);
}

/* ---- the PyTorch reference ---- */

/* A string value of "key": "..." in text (no escapes inside), or "" when absent. */
static void jstr(const char *text, const char *key, char *out, size_t n) {
  char pat[80];
  snprintf(pat, sizeof pat, "\"%s\": \"", key);
  const char *p = strstr(text, pat);
  out[0] = 0;
  if (!p) return;
  p += strlen(pat);
  snprintf(out, n, "%.*s", (int)strcspn(p, "\"\n"), p);
}

/* argv[0] (a path; execv, no shell) run with stdin from /dev/null, stdout and stderr into
 * path; its exit status, 128 + the signal that killed it, or -1 when it could not start
 * (errno set). */
static int spawn_to(char *const argv[], const char *path) {
  fflush(stdout), fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int in = open("/dev/null", O_RDONLY), out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0) _exit(126);
    dup2(in, 0), dup2(out, 1), dup2(out, 2);
    close(in), close(out);
    execv(argv[0], argv);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* The last non-empty line of a file (at most n - 1 characters), "" when none. */
static void last_line(const char *path, char *out, size_t n) {
  FILE *f = fopen(path, "r");
  char line[1024];
  out[0] = 0;
  while (f && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    size_t L = strlen(line);
    if (!L) continue;
    if (L >= n) L = n - 1;
    memcpy(out, line, L), out[L] = 0;
  }
  if (f) fclose(f);
}

/* The stage cannot run here: one line in the log and in the report (P->torch_why). */
static int torch_unavailable(pl_run *P, double t0, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int torch_unavailable(pl_run *P, double t0, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(P->torch_why, sizeof P->torch_why, fmt, ap);
  va_end(ap);
  for (char *c = P->torch_why; *c; c++)
    if (*c == '"' || *c == '\\' || *c == '|' || (unsigned char)*c < 32) *c = '\''; /* one line, safe in JSON and a table */
  P->torch = 2;
  stage_log *l = &P->st[P->nst < MAX_STAGES ? P->nst++ : MAX_STAGES - 1];
  snprintf(l->name, sizeof l->name, "torch reference");
  snprintf(l->file, sizeof l->file, "torch_ref.json");
  l->status = 4, l->seconds = ts_now() - t0;
  fprintf(P->log, "[%d/%d] torch reference: not available (%s); the report's vs-PyTorch column says n/a\n", P->k, P->total,
          P->torch_why);
  fflush(P->log);
  return 0;
}

/* PyTorch's DDPM chunk at batch 1 on the base, against this tsdp's, measured in one run of
 * scripts/bench_torch.py --quick -> torch_ref.json (its printed lines in torch_ref.txt).
 * The interpreter is /usr/bin/python3, or $TSDP_PYTHON (a test hook: the tests point it at a
 * missing file and at a stub); the script is $TSDP_TORCH_SCRIPT, else scripts/bench_torch.py
 * under the working folder, else ../scripts/bench_torch.py next to this binary. A missing
 * interpreter, script, or module (torch, h5py, numpy: probed with `python -c import ...`)
 * makes the stage "not available", which is not an error; the script failing is. */
static int st_torch(pl_run *P) {
  double t0 = ts_now();
  const char *py = getenv("TSDP_PYTHON");
  if (!py || !*py) py = "/usr/bin/python3";
  char exe[1024] = "", script[1200] = "";
  ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[el > 0 ? el : 0] = 0;
  const char *env = getenv("TSDP_TORCH_SCRIPT");
  if (env && *env) snprintf(script, sizeof script, "%s", env);
  else if (!access("scripts/bench_torch.py", R_OK)) snprintf(script, sizeof script, "scripts/bench_torch.py");
  else if (exe[0]) {
    snprintf(script, sizeof script, "%s", exe);
    char *sl = strrchr(script, '/');
    snprintf(sl ? sl : script, sizeof script - (size_t)(sl ? sl - script : 0), "/../scripts/bench_torch.py");
  }
  P->k++;
  if (access(py, X_OK)) return torch_unavailable(P, t0, "%s: %s", py, strerror(errno));
  if (!exe[0]) return torch_unavailable(P, t0, "cannot find this tsdp binary (/proc/self/exe) for the script to time");
  if (!script[0] || access(script, R_OK)) return torch_unavailable(P, t0, "%s: not found", script[0] ? script : "scripts/bench_torch.py");
  char probe[1200];
  path_in(P, "torch_ref.probe.txt", probe, sizeof probe);
  char *pv[] = {(char *)py, "-c", "import torch, h5py, numpy", NULL};
  int pr = spawn_to(pv, probe);
  if (pr) {
    char why[512];
    last_line(probe, why, sizeof why);
    unlink(probe);
    if (pr < 0) return torch_unavailable(P, t0, "%s cannot run (%s)", py, strerror(errno));
    return torch_unavailable(P, t0, "%s cannot import torch, h5py and numpy: %s", py, why[0] ? why : "no message");
  }
  unlink(probe);
  P->k--; /* stage_init counts it */
  uint64_t h_script;
  if (hash_file(script, &h_script)) return -1;
  stage s;
  stage_init(P, &s, "torch reference", "torch_ref.json",
             key_text("torch", NULL, "input base %016llx\nscript %016llx\npython %s\n", (unsigned long long)P->h_base,
                      (unsigned long long)h_script, py));
  char base[1100];
  path_in(P, "base.h5", base, sizeof base);
  snprintf(P->torch_cmd, sizeof P->torch_cmd, "%s %s --ckpt %s --tsdp %s --quick", py, script, base, exe);
  int rc = stage_check(P, &s);
  if (rc == 0) {
    char txt[1100], tmp[1200];
    path_in(P, "torch_ref.txt", txt, sizeof txt);
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", txt, (int)getpid());
    char *av[] = {(char *)py, script, "--ckpt", base, "--tsdp", exe, "--quick", "--json-out", s.out, NULL};
    int x = spawn_to(av, tmp);
    if (x) {
      char why[512];
      last_line(tmp, why, sizeof why);
      rc = ts_fail("torch reference: %s %s exited %d (output in %s): %s", py, script, x, tmp, why[0] ? why : "no message");
    } else if (rename(tmp, txt)) rc = ts_fail("%s: cannot rename", tmp);
    if (!rc) {
      log_lines(P, txt);
      rc = stage_done(P, &s);
    }
  }
  if (rc == 1 || rc == 0) { /* skipped or ran: read it back */
    FILE *f = fopen(s.out, "r");
    char buf[8192];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    P->torch_ms = jget(buf, "torch_ddpm_chunk_ms"), P->tsdp_ms = jget(buf, "tsdp_ddpm_chunk_ms");
    P->torch_err = jget(buf, "agreement_error");
    P->torch_threads = (int)jget(buf, "torch_threads"), P->torch_T = (int)jget(buf, "ddpm_steps");
    jstr(buf, "torch_version", P->torch_version, sizeof P->torch_version);
    jstr(buf, "torch_threads_note", P->torch_threads_note, sizeof P->torch_threads_note);
    if (!P->torch_threads_note[0]) snprintf(P->torch_threads_note, sizeof P->torch_threads_note, "%d threads", P->torch_threads);
    if (!(P->torch_ms > 0) || !(P->tsdp_ms > 0) || !P->torch_version[0])
      rc = ts_fail("torch reference: %s lacks torch_ddpm_chunk_ms, tsdp_ddpm_chunk_ms or torch_version", s.out);
    else P->torch = 1;
  }
  free(s.text);
  return rc < 0 ? -1 : 0;
}

/* One row: its episodes one at a time (batch 1, as a control loop runs), noise seed = episode. */
static int eval_row(pl_run *P, ev_row *w, const char *out) {
  const struct ts_pipeline_cfg *pp = &P->cfg.pipeline;
  ts_policy p;
  if (load_base(P, &p)) return -1;
  char base[1100], dr[1100], sc[1100], gif[1100];
  path_in(P, "base.h5", base, sizeof base);
  path_in(P, "drafter.h5", dr, sizeof dr);
  path_in(P, "sched.h5", sc, sizeof sc);
  snprintf(gif, sizeof gif, "%s/gifs/%s", P->dir, w->name);
  ts_sampler smp = {.kind = (ts_sampler_kind)w->kind, .steps = w->steps};
  ts_drafter_model dm;
  ts_sched_model sm;
  memset(&dm, 0, sizeof dm);
  memset(&sm, 0, sizeof sm);
  int rc = 0;
  if (w->drafter) { /* 1: the distilled drafter.h5; 2: the x0 drafter */
    rc = ts_drafter_load(&dm, w->drafter == 2 ? TS_DRAFTER_X0 : dr, base, &p);
    if (!rc) smp.drafter = &dm.drafter;
  }
  if (!rc && w->sched) {
    char id[32];
    ts_hash_hex(ts_drafter_hash(&dm), id);
    rc = ts_sched_load(&sm, sc, &p, id);
    if (!rc) {
      smp.blocks = w->sched == 2 ? &sm.learned : &sm.stat;
      smp.steps = sm.cfg.rl.blocks[sm.cfg.rl.n_blocks - 1];
    }
  }
  if (!rc && w->gifs && pp->gif_count) rc = mkdirs(gif);
  int E = pp->eval_episodes;
  double *score = calloc((size_t)E, sizeof(double)), *succ = calloc((size_t)E, sizeof(double)), sec = 0;
  if (!score || !succ) abort();
  long chunks = 0;
  ts_spec_stats sp = {0};
  for (int e = 0; e < E && !rc; e++) {
    ts_eval_opts o = {.episodes = 1, .seed_start = pp->eval_seed_start + e, .seed = (uint64_t)e, .quiet = 1,
                      .gif_dir = w->gifs && e < pp->gif_count ? gif : NULL, .gif_count = 1};
    ts_eval_result r;
    rc = ts_eval_pusht(&p, &smp, &o, &r);
    if (rc) break;
    score[e] = r.scores[0], succ[e] = r.success[0];
    chunks += r.chunks, sec += r.sample_seconds;
    ts_spec_stats_add(&sp, &sp, &r.spec, 1);
    if (!P->json && E >= 10 && (e + 1) % (E / 5) == 0)
      fprintf(P->log, "  %s: %d / %d episodes (%.1f s)\n", w->label, e + 1, E, ts_now() - P->t0), fflush(P->log);
  }
  if (!rc) {
    double m = 0, sr = 0, vm = 0, vs = 0;
    for (int e = 0; e < E; e++) m += score[e] / E, sr += succ[e] / E;
    for (int e = 0; e < E; e++) vm += (score[e] - m) * (score[e] - m), vs += (succ[e] - sr) * (succ[e] - sr);
    w->episodes = E;
    w->mean = m, w->succ = sr;
    w->mean_se = E > 1 ? sqrt(vm / (E - 1) / E) : NAN, w->succ_se = E > 1 ? sqrt(vs / (E - 1) / E) : NAN;
    w->ms = chunks ? 1e3 * sec / chunks : NAN, w->cps = sec > 0 ? chunks / sec : NAN;
    int T = p.sched.T;
    w->calls = w->kind == TS_SAMPLER_DDPM ? T : w->kind == TS_SAMPLER_DDIM ? w->steps
                                                : (sp.chunks ? (double)sp.target_calls / sp.chunks : NAN);
    w->dcalls = w->kind == TS_SAMPLER_SPEC && sp.chunks ? (double)sp.drafter_calls / sp.chunks : 0;
    w->accept = w->kind == TS_SAMPLER_SPEC && ts_spec_checked(&sp) ? (double)sp.accepted / ts_spec_checked(&sp) : NAN;
    w->has = 1;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) abort();
    fprintf(f, "{\n  \"name\": \"%s\",\n  \"label\": \"%s\",\n  \"episodes\": %d,\n  \"seed_start\": %d,\n  \"threads\": %d,\n",
            w->name, w->label, E, pp->eval_seed_start, pp->threads);
    jnum(f, "mean_score", w->mean, ","), jnum(f, "mean_score_se", w->mean_se, ",");
    jnum(f, "success_rate", w->succ, ","), jnum(f, "success_rate_se", w->succ_se, ",");
    fprintf(f, "  \"chunks\": %ld,\n", chunks);
    jnum(f, "ms_per_chunk", w->ms, ","), jnum(f, "chunks_per_s", w->cps, ",");
    jnum(f, "target_calls_per_chunk", w->calls, ","), jnum(f, "drafter_calls_per_chunk", w->dcalls, ",");
    jnum(f, "acceptance", w->accept, ",");
    fprintf(f, "  \"scores\": [");
    for (int e = 0; e < E; e++) fprintf(f, "%s%.4f", e ? ", " : "", score[e]);
    fprintf(f, "]\n}\n");
    fclose(f);
    rc = write_atomic(out, buf);
    free(buf);
    if (!rc)
      fprintf(P->log, "  %s: mean score %.3f +- %.3f, success %.2f +- %.2f, %.2f ms/chunk, %.1f target calls/chunk\n", w->label,
              w->mean, w->mean_se, w->succ, w->succ_se, w->ms, w->calls);
  }
  free(score), free(succ);
  ts_sched_model_free(&sm);
  ts_drafter_model_free(&dm);
  ts_policy_free(&p);
  return rc;
}

static void make_rows(pl_run *P) {
  const struct ts_pipeline_cfg *pp = &P->cfg.pipeline;
  int T = P->base.diffusion.num_train_timesteps;
  ev_row *r = P->rows;
  int n = 0;
  memset(P->rows, 0, sizeof P->rows);
  snprintf(r[n].name, 32, "ddpm-%d", T), snprintf(r[n].label, 64, "DDPM-%d", T);
  r[n].kind = TS_SAMPLER_DDPM, r[n].steps = T, r[n++].gifs = 1;
  snprintf(r[n].name, 32, "ddim-%d", pp->ddim_steps), snprintf(r[n].label, 64, "DDIM-%d", pp->ddim_steps);
  r[n].kind = TS_SAMPLER_DDIM, r[n++].steps = pp->ddim_steps;
  for (int i = 0; i < pp->n_spec_blocks && n < MAX_ROWS - 2; i++) {
    snprintf(r[n].name, 32, "spec-L%d", pp->spec_blocks[i]);
    snprintf(r[n].label, 64, "spec, drafter, fixed L = %d", pp->spec_blocks[i]);
    r[n].kind = TS_SAMPLER_SPEC, r[n].steps = pp->spec_blocks[i], r[n++].drafter = 1;
  }
  if (pp->x0_block > 0) { /* the training-free x0 drafter (drafter 2): nothing distilled */
    snprintf(r[n].name, 32, "spec-x0-L%d", pp->x0_block);
    snprintf(r[n].label, 64, "spec, x0 drafter (training-free), L = %d", pp->x0_block);
    r[n].kind = TS_SAMPLER_SPEC, r[n].steps = pp->x0_block, r[n++].drafter = 2;
  }
  if (pp->eval_static) {
    snprintf(r[n].name, 32, "spec-static"), snprintf(r[n].label, 64, "spec, drafter, static DP schedule");
    r[n].kind = TS_SAMPLER_SPEC, r[n].drafter = 1, r[n++].sched = 1;
  }
  if (P->sched.rl.lossy) /* the relaxed rule: not DDPM's law, and the table says so */
    snprintf(r[n].name, 32, "tsdp-LOSSY"), snprintf(r[n].label, 64, "TS-DP LOSSY (RL scheduler with tolerances)");
  else snprintf(r[n].name, 32, "tsdp"), snprintf(r[n].label, 64, "TS-DP (drafter + RL scheduler)");
  r[n].kind = TS_SAMPLER_SPEC, r[n].drafter = 1, r[n].sched = 2, r[n++].gifs = 1;
  P->nrows = n;
}

static int st_eval(pl_run *P, ev_row *w) {
  const struct ts_pipeline_cfg *pp = &P->cfg.pipeline;
  char file[64], name[64];
  snprintf(file, sizeof file, "eval/%s.json", w->name);
  snprintf(name, sizeof name, "eval %s", w->name);
  stage s;
  stage_init(P, &s, name, file,
             key_text("eval", NULL, "input base %016llx\ninput drafter %016llx\ninput sched %016llx\nsampler %s\nsteps %d\n"
                      "schedule %d\nepisodes %d\nseed_start %d\nthreads %d\ngifs %d\n", (unsigned long long)P->h_base,
                      w->drafter == 2 ? 0x7830ULL /* "x0" */ : w->drafter ? (unsigned long long)P->h_drafter : 0ULL, w->sched ? (unsigned long long)P->h_sched : 0ULL,
                      ts_sampler_names[w->kind], w->steps, w->sched, pp->eval_episodes, pp->eval_seed_start, pp->threads,
                      w->gifs ? pp->gif_count : 0));
  int rc = stage_check(P, &s);
  if (rc == 1) rc = read_row(s.out, w);
  else if (rc == 0) {
    rc = eval_row(P, w, s.out);
    if (!rc) rc = stage_done(P, &s);
  }
  free(s.text);
  return rc < 0 ? -1 : 0;
}

/* ---- the report ---- */

static void fmt_pm(char *b, size_t n, double v, double se) {
  if (!isfinite(v)) snprintf(b, n, "-");
  else if (isfinite(se)) snprintf(b, n, "%.3f ± %.3f", v, se);
  else snprintf(b, n, "%.3f", v);
}

/* A row's speedup over the PyTorch reference's DDPM chunk (NAN: no reference). */
static double vs_torch(const pl_run *P, const ev_row *w) { return P->torch == 1 ? P->torch_ms / w->ms : NAN; }

/* The results table (markdown) of rows; prefix: a first column's value for every row (sweep). */
static void table(FILE *f, const pl_run *P, const char *prefix) {
  double ddpm = P->rows[0].ms;
  for (int i = 0; i < P->nrows; i++) {
    const ev_row *w = &P->rows[i];
    char a[64], b[64], acc[32], sp[32], spt[32];
    fmt_pm(a, sizeof a, w->mean, w->mean_se), fmt_pm(b, sizeof b, w->succ, w->succ_se);
    if (isfinite(w->accept)) snprintf(acc, sizeof acc, "%.1f%%", 100 * w->accept);
    else snprintf(acc, sizeof acc, "-");
    snprintf(sp, sizeof sp, "%.2fx", ddpm / w->ms);
    double vt = vs_torch(P, w);
    if (isfinite(vt)) snprintf(spt, sizeof spt, "%.2fx", vt);
    else snprintf(spt, sizeof spt, "n/a");
    if (prefix) fprintf(f, "| %s ", prefix);
    fprintf(f, "| %s | %s | %s | %.2f | %.1f | %.1f | %s | %s | %s |\n", w->label, a, b, w->ms, w->cps, w->calls, acc, sp, spt);
  }
}

/* The table's header: the speedups over this engine's DDPM row and over PyTorch's DDPM chunk. */
static void head(FILE *f, const pl_run *P) {
  fprintf(f, "| sampler | mean score ± se | success rate ± se | ms per chunk | chunks/s | target calls per chunk | acceptance | "
          "speedup vs %s | speedup vs PyTorch DDPM-%d (batch 1) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
          P->rows[0].label, P->base.diffusion.num_train_timesteps);
}

/* One line on what the vs-PyTorch column divides, or why it says n/a. */
static void torch_note(FILE *f, const pl_run *P) {
  if (P->torch == 1)
    fprintf(f, "Speedup vs PyTorch: %.1f ms, one DDPM-%d action chunk at batch 1 of this base in PyTorch %s on this machine "
            "(%s), divided by the row's ms per chunk; tsdp's DDPM chunk in the same run: %.1f ms "
            "(%.2fx), tsdp and PyTorch eps agree to %.1e. Reproduce: `%s`.\n", P->torch_ms, P->torch_T, P->torch_version,
            P->torch_threads_note, P->tsdp_ms, P->torch_ms / P->tsdp_ms, P->torch_err, P->torch_cmd);
  else if (P->torch == 2) fprintf(f, "Speedup vs PyTorch: n/a, the PyTorch reference was not available (%s).\n", P->torch_why);
  else fprintf(f, "Speedup vs PyTorch: n/a, the PyTorch reference is off ([pipeline] torch_reference = false).\n");
}

/* s as a JSON string's contents (quotes, backslashes and control characters escaped). */
static void jesc(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 32) fprintf(f, "\\u%04x", *s);
    else fputc(*s, f);
  }
}

static void commit_of(char *out, size_t n) {
  snprintf(out, n, "unknown");
  FILE *g = popen("git rev-parse HEAD 2>/dev/null", "r");
  if (!g) return;
  char line[128];
  if (fgets(line, sizeof line, g) && strlen(line) >= 40) snprintf(out, n, "%.40s", line);
  pclose(g);
}

static void link_if(FILE *f, const pl_run *P, const char *rel, const char *what, int image) {
  char path[1200];
  path_in(P, rel, path, sizeof path);
  if (access(path, F_OK)) return;
  if (image) fprintf(f, "- %s: [%s](%s)\n\n  ![%s](%s)\n\n", what, rel, rel, what, rel);
  else fprintf(f, "- %s: [%s](%s)\n", what, rel, rel);
}

static int report(pl_run *P) {
  const struct ts_pipeline_cfg *pp = &P->cfg.pipeline;
  char commit[64], path[1200];
  commit_of(commit, sizeof commit);
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) abort();
  fprintf(f, "# TS-DP pipeline report\n\n- config: `%s`\n- command: `%s`\n- commit: %s\n- output folder: `%s`\n\n",
          P->cfg_path, P->command, commit, P->dir);
  fprintf(f, "## Results\n\nClosed loop on the Push-T test seeds %d..%d (%d episodes per row; each episode on its own, "
          "batch 1, as a control loop runs it, %d thread%s). Score: the episode's best coverage; success: coverage > 0.95. "
          "ms per chunk: sampling time per action chunk; target calls: sequential base calls per chunk; acceptance: "
          "accepted / checked drafts (a draft after a rejection is discarded unchecked). Every spec row%s samples DDPM-%d's "
          "distribution exactly.\n\n",
          pp->eval_seed_start, pp->eval_seed_start + pp->eval_episodes - 1, pp->eval_episodes, pp->threads,
          pp->threads > 1 ? "s" : "", P->sched.rl.lossy ? " except tsdp-LOSSY" : "", P->base.diffusion.num_train_timesteps);
  if (P->sched.rl.lossy) { /* the relaxed scheduler: what it is, and where its score comes from */
    int a = P->sched.rl.sim_seed_start, b = a + P->sched.rl.sim_seed_count - 1;
    int e0 = pp->eval_seed_start, e1 = pp->eval_seed_start + pp->eval_episodes - 1;
    int lo = a > e0 ? a : e0, hi = b < e1 ? b : e1;
    fprintf(f, "**tsdp-LOSSY is not exact**: its scheduler keeps some drafts the exact test rejects (rl.lossy, acceptance "
            "tolerances), so its chunks do not follow DDPM's law. It was trained with the Push-T score in its reward on seeds "
            "%d..%d; %d of this table's evaluation seeds are among them, so its score there is partly a training score.\n\n",
            a, b, hi >= lo ? hi - lo + 1 : 0);
  }
  head(f, P);
  table(f, P, NULL);
  fprintf(f, "\n");
  torch_note(f, P);
  fprintf(f, "\n## Stages\n\n| stage | output | this run | seconds |\n| --- | --- | --- | --- |\n");
  static const char *const how[] = {"-", "skipped (recorded config matches)", "ran", "linked from a twin", "not available"};
  for (int i = 0; i < P->nst; i++)
    fprintf(f, "| %s | [%s](%s) | %s | %.1f |\n", P->st[i].name, P->st[i].file, P->st[i].file, how[P->st[i].status],
            P->st[i].seconds);
  fprintf(f, "\n## Figures\n\n");
  link_if(f, P, "base.h5.png", "base training curves", 1);
  link_if(f, P, "drafter.h5.png", "drafter distillation curves", 1);
  link_if(f, P, "drafter.h5.accept.png", "drafter's predicted acceptance per diffusion step (held-out)", 1);
  link_if(f, P, "bench_spec.png", "measured acceptance per diffusion step and verification cost (tsdp bench spec)", 1);
  link_if(f, P, "sched.h5.png", "scheduler training curves", 1);
  link_if(f, P, "sched.h5.L_t.png", "scheduler's L by diffusion step: learned and the static DP schedule", 1);
  link_if(f, P, "sched.h5.episode.png", "L along a recorded episode, and the acceptance it met", 1);
  link_if(f, P, "bench_spec.json", "bench spec rows (batch-1 interleaved timing, JSON)", 0);
  fprintf(f, "\n## Rollouts\n\n");
  for (int i = 0; i < P->nrows; i++) {
    if (!P->rows[i].gifs) continue;
    for (int e = 0; e < pp->gif_count && e < pp->eval_episodes; e++) {
      char rel[200];
      snprintf(rel, sizeof rel, "gifs/%s/seed_%d.gif", P->rows[i].name, pp->eval_seed_start + e);
      char what[128];
      snprintf(what, sizeof what, "%s, seed %d", P->rows[i].label, pp->eval_seed_start + e);
      link_if(f, P, rel, what, 0);
    }
  }
  fclose(f);
  path_in(P, "report.md", path, sizeof path);
  int rc = write_atomic(path, buf);
  free(buf);
  if (rc) return -1;
  /* report.json */
  buf = NULL, n = 0;
  f = open_memstream(&buf, &n);
  if (!f) abort();
  fprintf(f, "{\"config\": \"%s\", \"out\": \"%s\", \"commit\": \"%s\", \"rows\": [", P->cfg_path, P->dir, commit);
  for (int i = 0; i < P->nrows; i++) {
    const ev_row *w = &P->rows[i];
    fprintf(f, "%s{\"name\": \"%s\", \"label\": \"%s\", \"episodes\": %d", i ? ", " : "", w->name, w->label, w->episodes);
    double v[] = {w->mean, w->mean_se, w->succ, w->succ_se, w->ms, w->cps, w->calls, w->dcalls, w->accept, P->rows[0].ms / w->ms,
                  vs_torch(P, w)};
    const char *k[] = {"mean_score", "mean_score_se", "success_rate", "success_rate_se", "ms_per_chunk", "chunks_per_s",
                       "target_calls_per_chunk", "drafter_calls_per_chunk", "acceptance", "speedup_vs_ddpm",
                       "speedup_vs_pytorch"};
    for (int j = 0; j < 11; j++) {
      if (isfinite(v[j])) fprintf(f, ", \"%s\": %.6g", k[j], v[j]);
      else fprintf(f, ", \"%s\": null", k[j]);
    }
    fprintf(f, "}");
  }
  /* the PyTorch reference: status measured / not available / off, and its numbers */
  static const char *const ts[] = {"off", "measured", "not available"};
  fprintf(f, "], \"pytorch_reference\": {\"status\": \"%s\"", ts[P->torch]);
  if (P->torch == 2) fprintf(f, ", \"reason\": \""), jesc(f, P->torch_why), fprintf(f, "\"");
  if (P->torch == 1) {
    fprintf(f, ", \"torch_ddpm_chunk_ms\": %.6g, \"torch_threads\": %d, \"ddpm_steps\": %d, \"batch\": 1, "
            "\"torch_threads_note\": \"", P->torch_ms, P->torch_threads, P->torch_T);
    jesc(f, P->torch_threads_note);
    fprintf(f, "\", \"torch_version\": \"");
    jesc(f, P->torch_version);
    fprintf(f, "\", \"tsdp_ddpm_chunk_ms\": %.6g, \"agreement_error\": %.3g, \"file\": \"torch_ref.json\", \"command\": \"",
            P->tsdp_ms, P->torch_err);
    jesc(f, P->torch_cmd);
    fprintf(f, "\"");
  }
  fprintf(f, "}, \"stages\": [");
  static const char *const st[] = {"none", "skipped", "ran", "linked", "not available"};
  for (int i = 0; i < P->nst; i++)
    fprintf(f, "%s{\"stage\": \"%s\", \"output\": \"%s\", \"status\": \"%s\", \"seconds\": %.1f}", i ? ", " : "",
            P->st[i].name, P->st[i].file, st[P->st[i].status], P->st[i].seconds);
  fprintf(f, "]}\n");
  fclose(f);
  path_in(P, "report.json", path, sizeof path);
  rc = write_atomic(path, buf);
  if (!rc && P->json) fputs(buf, stdout);
  free(buf);
  return rc;
}

/* ---- driver ---- */

static int run_one(pl_run *P) {
  const struct ts_pipeline_cfg *pp = &P->cfg.pipeline;
  if (mkdirs(P->dir)) return -1;
  char ev[1100];
  path_in(P, "eval", ev, sizeof ev);
  if (mkdirs(ev)) return -1;
  make_rows(P);
  P->total = 6 + (pp->bench_windows > 0) + !!pp->torch_reference + P->nrows + 1;
  P->t0 = ts_now();
  fprintf(P->log, "tsdp pipeline %s -> %s: %d stages\n", P->cfg_path, P->dir, P->total);
  if (st_import(P) || st_train(P) || st_distill(P) || st_record(P) || st_cost(P) || st_sched(P)) return -1;
  if (pp->bench_windows > 0 && st_bench(P)) return -1;
  if (pp->torch_reference && st_torch(P)) return -1;
  for (int i = 0; i < P->nrows; i++)
    if (st_eval(P, &P->rows[i])) return -1;
  P->k++;
  if (report(P)) return -1;
  fprintf(P->log, "[%d/%d] report: %s/report.md, %s/report.json (%.1f s in all)\n", P->k, P->total, P->dir, P->dir,
          ts_now() - P->t0);
  if (!P->json) {
    printf("\n");
    head(stdout, P);
    table(stdout, P, NULL);
    printf("\n");
    torch_note(stdout, P);
  }
  fflush(stdout);
  return 0;
}

static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int ts_cmd_pipeline(int argc, char **argv) {
  static const char *const vals[] = {"--config", "--sweep", "--out", NULL}, *const flags[] = {"--json", NULL};
  const ts_cli_args spec = {vals, flags, 1, 0, USAGE};
  if (ts_cli_check(argc, argv, &spec)) return 1;
  const char *cfg = ts_opt(argc, argv, "--config"), *sweep = ts_opt(argc, argv, "--sweep"), *out = ts_opt(argc, argv, "--out");
  if (!!cfg == !!sweep) return ts_fail("give one of --config or --sweep; usage: %s", USAGE);
  if (ts_dist_size() > 1) return ts_fail("pipeline runs in one process (not under mpirun)");
  int json = ts_has_flag(argc, argv, "--json");
  static pl_run P; /* large: rows and configs */
  char command[2048] = "tsdp pipeline";
  for (int i = 0; i < argc; i++) snprintf(command + strlen(command), sizeof command - strlen(command), " %s", argv[i]);
  if (cfg) {
    memset(&P, 0, sizeof P);
    P.json = json, P.log = json ? stderr : stdout;
    snprintf(P.cfg_path, sizeof P.cfg_path, "%s", cfg);
    snprintf(P.command, sizeof P.command, "%s", command);
    if (pipe_config(&P, cfg, argc, argv, out)) return 1;
    return run_one(&P) ? 1 : 0;
  }
  /* --sweep: every *.ini of the folder, sorted, each into OUT/<name>/, and OUT/sweep.md. */
  DIR *d = opendir(sweep);
  if (!d) return ts_fail("--sweep %s: cannot open folder", sweep);
  char *names[256];
  int nn = 0;
  struct dirent *e;
  while ((e = readdir(d)) && nn < 256) {
    size_t l = strlen(e->d_name);
    if (l > 4 && !strcmp(e->d_name + l - 4, ".ini") && e->d_name[0] != '.') names[nn++] = strdup(e->d_name);
  }
  closedir(d);
  if (!nn) return ts_fail("--sweep %s: no .ini files", sweep);
  qsort(names, (size_t)nn, sizeof *names, cmpstr);
  char root[512];
  snprintf(root, sizeof root, "%s", out ? out : "runs/sweep");
  if (mkdirs(root)) return 1;
  /* every configuration first, so that a bad one is refused before anything runs */
  static pl_run all[1];
  char *sbuf = NULL;
  size_t sn = 0;
  FILE *sw = open_memstream(&sbuf, &sn);
  if (!sw) abort();
  fprintf(sw, "# TS-DP ablation sweep\n\n- folder: `%s`\n- command: `%s`\n\n", sweep, command);
  int rc = 0;
  for (int pass = 0; pass < 2 && !rc; pass++)
    for (int i = 0; i < nn && !rc; i++) {
      pl_run *Q = &all[0];
      memset(Q, 0, sizeof *Q);
      Q->json = json, Q->log = json ? stderr : stdout, Q->twins = root;
      snprintf(Q->cfg_path, sizeof Q->cfg_path, "%s/%s", sweep, names[i]);
      snprintf(Q->command, sizeof Q->command, "%s", command);
      char sub[1024];
      snprintf(sub, sizeof sub, "%s/%.*s", root, (int)(strlen(names[i]) - 4), names[i]);
      if (pipe_config(Q, Q->cfg_path, argc, argv, sub)) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", ts_error());
        rc = ts_fail("--sweep: %s", msg);
        break;
      }
      if (!pass) continue;
      if (run_one(Q)) {
        rc = -1;
        break;
      }
      if (i == 0) fprintf(sw, "| config | sampler | mean score ± se | success rate ± se | ms per chunk | chunks/s | target "
                          "calls per chunk | acceptance | speedup vs DDPM | speedup vs PyTorch DDPM (batch 1) |\n"
                          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
      char pre[300];
      snprintf(pre, sizeof pre, "[%.*s](%.*s/report.md)", (int)(strlen(names[i]) - 4), names[i], (int)(strlen(names[i]) - 4),
               names[i]);
      table(sw, Q, pre);
    }
  fclose(sw);
  if (!rc) {
    char path[1024];
    snprintf(path, sizeof path, "%s/sweep.md", root);
    rc = write_atomic(path, sbuf);
    if (!rc) fprintf(json ? stderr : stdout, "sweep: %d configurations, combined table %s\n", nn, path);
    if (!rc && !json) fputs(strstr(sbuf, "| config"), stdout);
  }
  free(sbuf);
  for (int i = 0; i < nn; i++) free(names[i]);
  return rc ? 1 : 0;
}
