/* dist.h: the job's processes (MPI ranks), and the only place tsdp calls MPI.
 *
 * Built with -DTS_HAVE_MPI (the Makefile adds it when mpicc or pkg-config ompi-c is found)
 * and started under mpirun / mpiexec / srun, the process is one rank of a job of
 * ts_dist_size() ranks. Started any other way, or built without MPI, it is a job of one:
 * rank 0 of size 1, MPI is never initialised, and every call below is a no-op that returns at
 * once (the single-process path never touches MPI at run time).
 *
 * Collectives must be called by every rank in the same order. Errors are fatal: MPI's
 * handler is MPI_ERRORS_ARE_FATAL, so a rank that dies or fails a call ends the whole job
 * (mpirun prints which rank and why; the other ranks do not hang in a collective), and
 * ts_dist_abort ends the job from a rank that found a problem the others cannot see.
 *
 * Reductions are deterministic: ts_dist_allreduce_sum adds the ranks' buffers in rank order,
 * ((b_0 + b_1) + b_2) + ..., whatever the MPI implementation's own algorithms, so a sum over
 * N ranks equals bit for bit the same N buffers added in order by one process. It moves
 * 2 n (N-1)/N floats per rank (a reduce-scatter by MPI_Alltoallv, then MPI_Allgatherv), the
 * same volume as a ring all-reduce. */
#ifndef TS_DIST_H
#define TS_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Joins the job when launched by an MPI launcher (it sets OMPI_COMM_WORLD_SIZE, PMI_SIZE or
 * PMIX_RANK), else stays a job of one. On ranks other than 0, stdout goes to /dev/null, so
 * results are printed once. Idempotent. Returns 0, or -1 with a message when the binary was
 * built without MPI but launched as one of several ranks. */
int ts_dist_init(int *argc, char ***argv);
/* Leaves the job (MPI_Finalize) after a barrier; no-op for a job of one. */
void ts_dist_finalize(void);
int ts_dist_rank(void);
int ts_dist_size(void);
/* Ranks of the job on this machine (1 for a job of one): CPUs are shared among them. */
int ts_dist_local_size(void);
/* Compute threads a rank should use by default: the CPUs over the ranks on this machine, >= 1. */
int ts_dist_default_threads(void);
/* 1 when this binary was built with MPI. */
int ts_dist_have_mpi(void);

/* Ends every rank of the job with exit code `code` (MPI_Abort), after printing `why` as one
 * line "tsdp: rank R of N: <why>" on stderr; exit(code) in a job of one. */
void ts_dist_abort(int code, const char *why);
/* A command failed on this rank of a job of several: prints "tsdp <cmd>: <ts_error()> (rank R
 * of N)" and ends the job with exit code 1. Ranks other than 0 wait a second first, so an error
 * every rank hits (a bad config, a missing file) is printed once, by rank 0. */
void ts_dist_fail(const char *cmd);
void ts_dist_barrier(void);

/* In place, on every rank: buf[i] = sum over ranks r (in rank order) of rank r's buf[i]. */
void ts_dist_allreduce_sum(float *buf, int64_t n);
void ts_dist_allreduce_sum_d(double *buf, int64_t n);
/* In place: the largest of the ranks' values (e.g. agreeing on an error code). */
int ts_dist_allreduce_max_i(int v);
/* Rank `root`'s bytes to every rank. */
void ts_dist_bcast(void *buf, int64_t bytes, int root);

/* The block of n items that rank `rank` of `size` owns: [*lo, *hi), the first n % size ranks
 * one item more. Pure arithmetic, used by both sides of a split. */
void ts_dist_split(int64_t n, int rank, int size, int64_t *lo, int64_t *hi);
/* buf holds n items of item_bytes; this rank filled its ts_dist_split block; afterwards every
 * rank holds every block. */
void ts_dist_allgather_split(void *buf, int64_t n, size_t item_bytes);

#endif
