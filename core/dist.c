/* dist.c: MPI ranks (see dist.h); without TS_HAVE_MPI a job of one. */
#include "dist.h"
#include "error.h"
#include "timer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef TS_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_local = 1;

int ts_dist_rank(void) { return g_rank; }
int ts_dist_size(void) { return g_size; }
int ts_dist_local_size(void) { return g_local; }
int ts_dist_default_threads(void) {
  int n = ts_cpu_count() / g_local;
  return n > 0 ? n : 1;
}

void ts_dist_split(int64_t n, int rank, int size, int64_t *lo, int64_t *hi) {
  int64_t q = n / size, m = n % size;
  *lo = rank * q + (rank < m ? rank : m);
  *hi = *lo + q + (rank < m);
}

#ifndef TS_HAVE_MPI

int ts_dist_have_mpi(void) { return 0; }

int ts_dist_init(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *s = getenv("OMPI_COMM_WORLD_SIZE");
  if (!s) s = getenv("PMI_SIZE");
  if (s && atoi(s) > 1)
    return ts_fail("this tsdp was built without MPI, so it cannot run as one of %s ranks (install MPI: "
                   "scripts/deps.sh --mpi, then rebuild)", s);
  return 0;
}
void ts_dist_finalize(void) {}
void ts_dist_abort(int code, const char *why) {
  if (why && *why) fprintf(stderr, "tsdp: %s\n", why);
  exit(code);
}
void ts_dist_fail(const char *cmd) {
  if (ts_error()[0]) fprintf(stderr, "tsdp %s: %s\n", cmd, ts_error());
  exit(1);
}
void ts_dist_barrier(void) {}
void ts_dist_allreduce_sum(float *buf, int64_t n) { (void)buf, (void)n; }
void ts_dist_allreduce_sum_d(double *buf, int64_t n) { (void)buf, (void)n; }
int ts_dist_allreduce_max_i(int v) { return v; }
void ts_dist_bcast(void *buf, int64_t bytes, int root) { (void)buf, (void)bytes, (void)root; }
void ts_dist_allgather_split(void *buf, int64_t n, size_t item_bytes) { (void)buf, (void)n, (void)item_bytes; }

#else

int ts_dist_have_mpi(void) { return 1; }

static int g_init = 0;

static int launched_by_mpi(void) {
  const char *v[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"};
  for (size_t i = 0; i < sizeof v / sizeof *v; i++)
    if (getenv(v[i])) return 1;
  return 0;
}

int ts_dist_init(int *argc, char ***argv) {
  if (g_init || !launched_by_mpi()) return 0;
  int provided;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return ts_fail("MPI_Init failed");
  g_init = 1;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &g_local);
  MPI_Comm_free(&node);
  if (g_rank > 0 && !freopen("/dev/null", "w", stdout)) return ts_fail("rank %d: cannot silence stdout", g_rank);
  return 0;
}

void ts_dist_finalize(void) {
  if (!g_init) return;
  fflush(stdout);
  fflush(stderr);
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
  g_init = 0;
}

void ts_dist_abort(int code, const char *why) {
  if (why && *why) {
    if (g_size > 1) fprintf(stderr, "tsdp: rank %d of %d: %s\n", g_rank, g_size, why);
    else fprintf(stderr, "tsdp: %s\n", why);
  }
  fflush(stderr);
  if (g_init) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}

void ts_dist_fail(const char *cmd) {
  if (g_rank > 0) sleep(1);
  if (ts_error()[0]) fprintf(stderr, "tsdp %s: %s (rank %d of %d)\n", cmd, ts_error(), g_rank, g_size);
  fflush(stderr);
  if (g_init) MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1);
}

void ts_dist_barrier(void) {
  if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
}

/* Counts above INT_MAX elements would need derived types; a gradient that large is 8 GiB. */
static int icount(int64_t n) {
  if (n > 0x7fffffff) ts_dist_abort(3, "a collective of more than 2^31 elements");
  return (int)n;
}

/* Reduce-scatter by all-to-all (rank j receives block j of every rank and adds them in rank
 * order), then all-gather of the summed blocks. */
#define DEFINE_ALLREDUCE(NAME, T, MT)                                                          \
  void NAME(T *buf, int64_t n) {                                                               \
    if (g_size <= 1 || n <= 0) return;                                                         \
    int N = g_size;                                                                            \
    int *sc = malloc((size_t)N * sizeof(int)), *sd = malloc((size_t)N * sizeof(int));         \
    int *rc = malloc((size_t)N * sizeof(int)), *rd = malloc((size_t)N * sizeof(int));         \
    int64_t lo, hi;                                                                            \
    ts_dist_split(n, g_rank, N, &lo, &hi);                                                     \
    int mine = icount(hi - lo);                                                                \
    T *recv = malloc(((size_t)mine * N + 1) * sizeof(T));                                      \
    if (!sc || !sd || !rc || !rd || !recv) abort();                                            \
    for (int r = 0; r < N; r++) {                                                              \
      int64_t a, b;                                                                            \
      ts_dist_split(n, r, N, &a, &b);                                                          \
      sc[r] = icount(b - a);                                                                   \
      sd[r] = icount(a);                                                                       \
      rc[r] = mine;                                                                            \
      rd[r] = r * mine;                                                                        \
    }                                                                                          \
    MPI_Alltoallv(buf, sc, sd, MT, recv, rc, rd, MT, MPI_COMM_WORLD);                          \
    T *out = buf + lo;                                                                         \
    for (int i = 0; i < mine; i++) out[i] = recv[i];                                           \
    for (int r = 1; r < N; r++) {                                                              \
      const T *src = recv + (size_t)r * mine;                                                  \
      for (int i = 0; i < mine; i++) out[i] += src[i];                                         \
    }                                                                                          \
    MPI_Allgatherv(MPI_IN_PLACE, 0, MT, buf, sc, sd, MT, MPI_COMM_WORLD);                      \
    free(sc), free(sd), free(rc), free(rd), free(recv);                                        \
  }
DEFINE_ALLREDUCE(ts_dist_allreduce_sum, float, MPI_FLOAT)
DEFINE_ALLREDUCE(ts_dist_allreduce_sum_d, double, MPI_DOUBLE)

int ts_dist_allreduce_max_i(int v) {
  if (g_size <= 1) return v;
  int out;
  MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

void ts_dist_bcast(void *buf, int64_t bytes, int root) {
  if (g_size <= 1) return;
  char *p = buf;
  while (bytes > 0) { /* in pieces under INT_MAX bytes */
    int k = bytes > (1 << 30) ? 1 << 30 : (int)bytes;
    MPI_Bcast(p, k, MPI_BYTE, root, MPI_COMM_WORLD);
    p += k;
    bytes -= k;
  }
}

void ts_dist_allgather_split(void *buf, int64_t n, size_t item_bytes) {
  if (g_size <= 1) return;
  int N = g_size, *cnt = malloc((size_t)N * sizeof(int)), *dsp = malloc((size_t)N * sizeof(int));
  if (!cnt || !dsp) abort();
  for (int r = 0; r < N; r++) {
    int64_t a, b;
    ts_dist_split(n, r, N, &a, &b);
    cnt[r] = icount((b - a) * (int64_t)item_bytes);
    dsp[r] = icount(a * (int64_t)item_bytes);
  }
  MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_BYTE, buf, cnt, dsp, MPI_BYTE, MPI_COMM_WORLD);
  free(cnt);
  free(dsp);
}

#endif
