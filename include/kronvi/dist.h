/* kronvi dist: the group of processes of a data-parallel run (docs/distributed.md).
 *
 * A kvi_comm is what the trainer and the optimizers need of a group of P processes: its rank
 * and size, sums of buffers over the ranks (blocking, and non-blocking for overlapping the
 * communication with the backward pass), a broadcast and an abort. Two implementations:
 * kvi_comm_self() (one process: every sum leaves its buffer as it is), always available, and MPI
 * (kvi_comm_mpi_init), compiled only with the CMake option KRONVI_MPI. No header of the library
 * includes mpi.h; only src/dist/comm_mpi.c does.
 *
 * Sums are in a fixed order: each rank sums one slice of the buffer over the ranks 0, 1, ...,
 * P - 1 in that order (in double), then every rank gathers every slice. So every rank gets the
 * same bits, the result is reproducible for a given P, and it does not depend on how a buffer is
 * split into several sums. The volume per rank is that of a ring all-reduce,
 * 2 (P - 1) / P of the buffer. */
#ifndef KRONVI_DIST_H
#define KRONVI_DIST_H

#include "kronvi/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvi_comm kvi_comm;

typedef struct {
  const char *name; /* "self", "mpi" */
  /* x <- the sum over the ranks of x (n elements of elem_size 4: float, 8: double). */
  kvi_status (*sum_start)(kvi_comm *c, void *x, size_t n, size_t elem_size);
  kvi_status (*progress)(kvi_comm *c); /* advances started sums without waiting */
  kvi_status (*wait)(kvi_comm *c);     /* finishes every started sum */
  kvi_status (*bcast)(kvi_comm *c, void *buf, size_t bytes, int root);
  kvi_status (*barrier)(kvi_comm *c);
  void (*abort)(kvi_comm *c, int code);
  void (*free)(kvi_comm *c);
} kvi_comm_ops;

struct kvi_comm {
  const kvi_comm_ops *ops;
  int rank, size;
  int node_size;  /* processes of the group on this machine (sharing its cores) */
  double seconds; /* spent inside this group's calls (waiting included) */
  int64_t bytes;  /* bytes this rank sent for sums (both phases) */
  void *impl;
};

/* The single-process group: rank 0 of 1. */
KVI_API kvi_comm *kvi_comm_self(void);
/* true when the library was built with KRONVI_MPI. */
KVI_API bool kvi_comm_mpi_built(void);
/* true when this process was started by an MPI launcher (mpirun, mpiexec, srun with PMI/PMIx:
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK or MPI_LOCALNRANKS in the environment). */
KVI_API bool kvi_comm_mpi_launched(void);
/* The MPI library's version line ("Open MPI v4.1.4, ..."), or "none" without KRONVI_MPI. */
KVI_API const char *kvi_comm_mpi_version(void);
/* MPI_Init and a group over MPI_COMM_WORLD (errors returned, not fatal: each becomes a
 * KVI_ERR_COMM). KVI_ERR_UNSUPPORTED in a build without KRONVI_MPI. */
KVI_API kvi_status kvi_comm_mpi_init(kvi_comm **out, int *argc, char ***argv);
/* Frees the group (MPI: MPI_Finalize). kvi_comm_self() and NULL are ignored. */
KVI_API void kvi_comm_free(kvi_comm *c);

/* NULL stands for the single-process group in every function below. */
KVI_API int kvi_comm_rank(const kvi_comm *c);
KVI_API int kvi_comm_size(const kvi_comm *c);
/* x <- sum over the ranks of x, the same bits on every rank (fixed order, above). Every rank
 * must call the same sums in the same order. */
KVI_API kvi_status kvi_comm_sum(kvi_comm *c, kvi_real *x, size_t n);
KVI_API kvi_status kvi_comm_sum_f64(kvi_comm *c, double *x, size_t n);
/* The non-blocking kvi_comm_sum: x must not be read or written until kvi_comm_wait returns.
 * Several sums may be in flight (at most 128); the result is the same as the blocking sum's. */
KVI_API kvi_status kvi_comm_sum_start(kvi_comm *c, kvi_real *x, size_t n);
KVI_API kvi_status kvi_comm_sum_start_f64(kvi_comm *c, double *x, size_t n);
KVI_API kvi_status kvi_comm_progress(kvi_comm *c);
KVI_API kvi_status kvi_comm_wait(kvi_comm *c);
KVI_API kvi_status kvi_comm_bcast(kvi_comm *c, void *buf, size_t bytes, int root);
KVI_API kvi_status kvi_comm_barrier(kvi_comm *c);
/* Ends every process of the group with exit status code (MPI_Abort). For a program's fatal
 * errors, so that no rank waits forever for one that stopped; the library never calls it.
 * Returns (doing nothing) for the single-process group. */
KVI_API void kvi_comm_abort(kvi_comm *c, int code);

/* Rows [r0, r1) of a batch of b rows that rank `rank` of `size` handles: r0 = floor(b rank /
 * size), contiguous, sizes differing by at most one (a rank may get none when b < size). */
KVI_API void kvi_comm_share(int b, int rank, int size, int *r0, int *r1);

#ifdef __cplusplus
}
#endif
#endif
