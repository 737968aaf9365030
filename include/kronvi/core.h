/* kronvi core: scalar type, status codes, matrices over BLAS/LAPACKE, arena, counter-based RNG,
 * flat parameter buffers with named views, threads.
 *
 * Precision: the library is compiled either in single precision (default, libkronvi) or in
 * double precision (-DKVI_DOUBLE, libkronvi_f64). kvi_real is the element type of every array. */
#ifndef KRONVI_CORE_H
#define KRONVI_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kronvi/types.h" /* kvi_real, kvi_status, KVI_EXPORT */

#ifdef __cplusplus
extern "C" {
#endif

/* KVI_API marks the internal interface of the modules: not exported from libkronvi.so (the
 * stable API is kronvi/kronvi.h). */
#define KVI_API

/* ---- status (the codes: kronvi/types.h) ------------------------------------------------ */
KVI_API const char *kvi_status_str(kvi_status s);  /* short meaning of a code */
KVI_API const char *kvi_status_name(kvi_status s); /* "KVI_ERR_ARG" */
/* Detail message of the last failure on this thread ("" if none). */
KVI_API const char *kvi_last_error(void);
KVI_API void kvi_clear_error(void);
/* Records a detail message for this thread and returns s (for `return kvi_fail(...)`). */
KVI_API kvi_status kvi_fail(kvi_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Internal invariants (programmer errors, never bad input): when cond is false, prints
 * "kronvi: internal error: <cond> at <file>:<line>" to stderr and calls abort(). Always on. */
#define KVI_ASSERT(cond) ((cond) ? (void)0 : kvi_assert_fail(#cond, __FILE__, __LINE__))
KVI_API void kvi_assert_fail(const char *cond, const char *file, int line)
#if defined(__GNUC__)
    __attribute__((noreturn, cold))
#endif
    ;

/* ---- memory ---------------------------------------------------------------------------- */
/* 64-byte aligned allocation, zero-filled; NULL (with a kvi_fail message) on failure. */
KVI_API void *kvi_alloc(size_t bytes);
KVI_API void kvi_free(void *p);

/* Arena: bump allocator for scratch memory. It grows by whole chunks on first use and keeps
 * them across kvi_arena_reset, so after a warm-up pass a training loop allocates nothing. */
typedef struct kvi_arena kvi_arena;
KVI_API kvi_arena *kvi_arena_create(size_t initial_bytes);
KVI_API void kvi_arena_free(kvi_arena *a);
/* 64-byte aligned, NOT zeroed; NULL with a message when memory runs out. */
KVI_API void *kvi_arena_alloc(kvi_arena *a, size_t bytes);
/* kvi_real array of n elements (NULL on failure). */
KVI_API kvi_real *kvi_arena_reals(kvi_arena *a, size_t n);
typedef struct {
  size_t chunk;
  size_t used;
} kvi_arena_mark;
KVI_API kvi_arena_mark kvi_arena_get_mark(const kvi_arena *a);
KVI_API void kvi_arena_reset(kvi_arena *a, kvi_arena_mark m); /* frees all allocs after m */
KVI_API size_t kvi_arena_capacity(const kvi_arena *a);        /* bytes held in chunks */
KVI_API size_t kvi_arena_peak(const kvi_arena *a);            /* high-water mark, bytes */

/* ---- random numbers -------------------------------------------------------------------- */
/* Philox4x32-10 counter-based generator. A stream is (key, counter); element i of a fill uses
 * counter block ctr + i/4, so results are identical whatever the thread count or schedule.
 * Derive independent streams with kvi_rng_stream(seed, id) (e.g. id = layer*2^32 + step). */
typedef struct {
  uint64_t key;
  uint64_t ctr; /* next unused 128-bit block */
} kvi_rng;

KVI_API kvi_rng kvi_rng_stream(uint64_t seed, uint64_t stream_id);
KVI_API void kvi_rng_uniform(kvi_rng *r, kvi_real *out, size_t n); /* U(0,1), open interval */
KVI_API void kvi_rng_normal(kvi_rng *r, kvi_real *out, size_t n);  /* N(0,1), Box-Muller */
KVI_API void kvi_rng_normal_f64(kvi_rng *r, double *out, size_t n);
/* Elements [offset, offset + n) of what kvi_rng_normal(r, ., offset + n) would write, without
 * advancing r: every normal is a function of its block (r->ctr + i/4) and its word (i mod 4),
 * so a process that handles rows [r0, r1) of an example-major draw gets exactly the numbers a
 * single process draws for those rows. */
KVI_API void kvi_rng_normal_at(const kvi_rng *r, uint64_t offset, kvi_real *out, size_t n);
KVI_API uint32_t kvi_rng_u32(kvi_rng *r);
KVI_API uint64_t kvi_rng_below(kvi_rng *r, uint64_t bound); /* uniform in [0, bound) */
/* Fisher-Yates shuffle of idx[0..n). */
KVI_API void kvi_rng_shuffle(kvi_rng *r, int64_t *idx, size_t n);

/* ---- dense linear algebra (row-major) ------------------------------------------------- */
/* Thin wrappers over CBLAS/LAPACKE in kvi_real. ta/tb: use the transpose of A/B. */
/* C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C */
KVI_API void kvi_gemm(bool ta, bool tb, int M, int N, int K, kvi_real alpha, const kvi_real *A,
                      int lda, const kvi_real *B, int ldb, kvi_real beta, kvi_real *C, int ldc);
/* Two independent products, e.g. a layer's weight gradient and input gradient, run side by
 * side: with T threads each is cut into about T * (its share of the work) panels, and all the
 * panels form one parallel loop (one pass over both operands, no thread waits for the slower
 * half of a split). The panels depend only on the shapes and kvi_set_threads' count. */
typedef struct {
  bool ta, tb;
  int M, N, K;
  kvi_real alpha;
  const kvi_real *A;
  int lda;
  const kvi_real *B;
  int ldb;
  kvi_real beta;
  kvi_real *C;
  int ldc;
} kvi_gemm_args;
KVI_API void kvi_gemm_pair(const kvi_gemm_args *g1, const kvi_gemm_args *g2);
/* The panels kvi_gemm cuts this product into when called outside a parallel region (1: one BLAS
 * call), and panel t of np of it as one BLAS call. Running the np panels of a product, in any
 * order and on any threads, gives kvi_gemm's bits: loops over several products' panels can share
 * one parallel region. */
KVI_API int kvi_gemm_panels(const kvi_gemm_args *g);
KVI_API void kvi_gemm_panel(const kvi_gemm_args *g, int t, int np);
/* Lower triangle (diagonal included) only of C (N,N) = alpha * op(A) * op(B) + beta * C, by a
 * blocked gemm that skips the blocks strictly above the diagonal (~(1/2 + 1/(2*nb)) of the work).
 * Entries above the diagonal are left unspecified. */
KVI_API void kvi_gemm_lower(bool ta, bool tb, int N, int K, kvi_real alpha, const kvi_real *A,
                            int lda, const kvi_real *B, int ldb, kvi_real beta, kvi_real *C,
                            int ldc);
/* B (M,N) = alpha * B * op(L) (right) or alpha * op(L) * B (left), L lower-triangular. */
KVI_API void kvi_trmm(bool right, bool trans, bool unit_diag, int M, int N, kvi_real alpha,
                      const kvi_real *L, int ldl, kvi_real *B, int ldb);
/* Right products with a lower-triangular L (unit_diag: its diagonal read as 1) that do not
 * work in place: Z (M,N) = X L, or D (M,N) += X L^T with T (M,N) scratch. For N >= 128 the
 * columns of the result are cut into 2..8 panels of equal work, each a trmm on L's diagonal
 * block and a gemm on the rest of its rows or columns, so that no thread packs all of L. The
 * panels depend on the shape only: the result does not depend on the thread count. */
KVI_API void kvi_trmm_right_lower(bool unit_diag, int M, int N, const kvi_real *L, int ldl,
                                  const kvi_real *X, int ldx, kvi_real *Z, int ldz);
KVI_API void kvi_trmm_right_lower_t_add(bool unit_diag, int M, int N, const kvi_real *L, int ldl,
                                        const kvi_real *X, int ldx, kvi_real *D, int ldd,
                                        kvi_real *T);
/* Solve X*op(L) = alpha*B (right) or op(L)*X = alpha*B (left) in place of B. */
KVI_API void kvi_trsm(bool right, bool trans, bool unit_diag, int M, int N, kvi_real alpha,
                      const kvi_real *L, int ldl, kvi_real *B, int ldb);
/* Lower triangle of C (N,N) = alpha * A A^T + beta C (trans=false, A (N,K)) or A^T A (A (K,N)). */
KVI_API void kvi_syrk(bool trans, int N, int K, kvi_real alpha, const kvi_real *A, int lda,
                      kvi_real beta, kvi_real *C, int ldc);
/* y = alpha * op(A) x + beta y, A (M,N). */
KVI_API void kvi_gemv(bool ta, int M, int N, kvi_real alpha, const kvi_real *A, int lda,
                      const kvi_real *x, kvi_real beta, kvi_real *y);
/* In-place lower Cholesky of a symmetric positive-definite (N,N) matrix (upper part zeroed).
 * KVI_ERR_LINALG if not positive definite. */
KVI_API kvi_status kvi_potrf(int N, kvi_real *A, int lda);
/* Inverse of an SPD matrix in place (full symmetric result). */
KVI_API kvi_status kvi_spd_inverse(int N, kvi_real *A, int lda);
/* Double-precision Cholesky and SPD inverse, available in both builds (exact checks). */
KVI_API kvi_status kvi_potrf_f64(int N, double *A, int lda);
KVI_API kvi_status kvi_spd_inverse_f64(int N, double *A, int lda);
/* Eigendecomposition of a symmetric (N,N) matrix (lower triangle read): A is overwritten by the
 * eigenvectors (column j belongs to w[j]), w gets the eigenvalues in ascending order. */
KVI_API kvi_status kvi_syev_f64(int N, double *A, int lda, double *w);

/* ---- threads --------------------------------------------------------------------------- */
/* Sets the BLAS and OpenMP thread counts together so that they never oversubscribe:
 * OpenMP loops and BLAS calls are never nested, so both may use all n threads. A program that
 * never calls it gets kvi_set_threads(omp_get_max_threads()) from the library's first matrix
 * product (OpenBLAS is then single-threaded for the whole process, as after an explicit call). */
KVI_API void kvi_set_threads(int n);
KVI_API int kvi_get_threads(void);
/* Runs the parallel loops on n <= kvi_get_threads() threads from now on, without changing how
 * work is split (so without changing any result): what the governor below switches. */
KVI_API void kvi_set_active_threads(int n);
KVI_API int kvi_get_active_threads(void);
/* CPUs this process may run on (its affinity mask): the default thread count. */
KVI_API int kvi_threads_available(void);

/* Thread-count governor (src/core/threads.c): around each step of a loop of similar steps,
 * kvi_governor_begin sets the thread count and kvi_governor_end times the step; the governor
 * tries other counts in [1, max] now and then and keeps the fastest, e.g. one thread while
 * another process holds one of two cores. The work is split by kvi_set_threads' count, not by
 * the threads that run it, so the switches never change a result. adapt = false: always max. */
#define KVI__GOV_WIN 16
typedef struct {
  int max, cur;   /* threads asked for / in use */
  bool adapt;     /* false: always max */
  bool probing;   /* the current step runs at probe_threads */
  bool trace;     /* KRONVI_THREADS_TRACE set: decisions on stderr */
  bool alternate; /* KRONVI_THREADS_ALTERNATE set: max and 1 on alternate steps */
  int probe_threads, nprobe, next_dir;
  double probe_base; /* the step time the probe must beat */
  double probe_t[8]; /* step seconds of the current probe */
  double win[KVI__GOV_WIN];
  int nwin, win_pos; /* last step seconds at cur (ring) */
  double ref;        /* median at the last decision */
  double wait_s;     /* step seconds to run before the next probe */
  double since_s;    /* step seconds since the last decision */
  double t0;
  long steps, decisions;
  long steps_reduced; /* steps run on fewer than max threads */
} kvi_governor;
KVI_API void kvi_governor_init(kvi_governor *g, int max_threads, bool adapt);
KVI_API void kvi_governor_begin(kvi_governor *g);
KVI_API void kvi_governor_end(kvi_governor *g);
/* The decision logic without clocks or thread changes (what kvi_governor_end does with the
 * measured seconds; for tests and simulations): the thread count the next step runs on, and the
 * step's seconds. */
KVI_API int kvi_governor_step_threads(const kvi_governor *g);
KVI_API void kvi_governor_record(kvi_governor *g, double seconds);
KVI_API int kvi_governor_threads(const kvi_governor *g);

/* BLAS core name reported by OpenBLAS ("Haswell", "SkylakeX", ...). */
KVI_API const char *kvi_blas_core(void);
/* The instruction set of the SIMD kernels that run: "avx512", "avx2", "sse2" (x86-64), or
 * "baseline" (other compilers and machines). */
KVI_API const char *kvi_simd_isa(void);
/* When OpenBLAS fell back to old kernels (Prescott, ...) on a CPU with AVX2 or AVX-512, the
 * OPENBLAS_CORETYPE value that matches the CPU ("Haswell", "SkylakeX"); NULL otherwise. Only
 * takes effect if set in the environment before OpenBLAS is loaded (the CLI re-executes). */
KVI_API const char *kvi_blas_better_core(void);

/* ---- flat parameter buffers with named views ------------------------------------------- */
typedef enum {
  KVI_ROLE_MEAN = 0,  /* posterior mean or point weight */
  KVI_ROLE_BIAS,      /* point-estimated bias */
  KVI_ROLE_CHOL,      /* Cholesky factor: strict-lower entries raw, diagonal holds logs */
  KVI_ROLE_LOG_SIGMA, /* log standard deviations (DIAG family) */
  KVI_ROLE_LOG_DIAG,  /* log of an added diagonal variance (MN+DIAG) */
  KVI_ROLE_PRIOR,     /* prior hyper-parameters (log precisions / log variances) */
  KVI_ROLE_OTHER,
  KVI_ROLE_NOISE /* log precision of a Gaussian likelihood (regression) */
} kvi_role;

#define KVI_MAX_NAME 64
#define KVI_MAX_DIMS 4
typedef struct {
  char name[KVI_MAX_NAME];
  int ndim;
  int64_t shape[KVI_MAX_DIMS];
  size_t offset; /* in elements, into data/grad */
  size_t size;   /* elements */
  kvi_role role;
} kvi_view;

/* All trainable numbers of a model in one buffer, gradients in another of the same layout.
 * Optimizers, checkpoints and all-reduce work on data/grad; layers keep view indices. */
typedef struct {
  kvi_real *data;
  kvi_real *grad;
  size_t n; /* total elements */
  kvi_view *views;
  int nviews;
  int cap;
} kvi_params;

KVI_API void kvi_params_init(kvi_params *p);
/* Declares a view (before kvi_params_alloc); its index is written to *index. */
KVI_API kvi_status kvi_params_add(kvi_params *p, const char *name, kvi_role role, int ndim,
                                  const int64_t *shape, int *index);
KVI_API kvi_status kvi_params_alloc(kvi_params *p); /* allocates zeroed data and grad */
KVI_API void kvi_params_free(kvi_params *p);
KVI_API kvi_real *kvi_params_data(const kvi_params *p, int index);
KVI_API kvi_real *kvi_params_grad(const kvi_params *p, int index);
KVI_API int kvi_params_find(const kvi_params *p, const char *name); /* -1 if absent */
KVI_API void kvi_params_zero_grad(kvi_params *p);

/* ---- small numeric helpers ------------------------------------------------------------- */
/* KVI_ERR_NONFINITE (with `what` in the message) if any of x[0..n) is NaN or infinite. */
KVI_API kvi_status kvi_check_finite(const kvi_real *x, size_t n, const char *what);
KVI_API double kvi_time_now(void); /* monotonic seconds */

#ifdef __cplusplus
}
#endif
#endif
