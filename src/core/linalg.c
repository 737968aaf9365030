/* Row-major wrappers over CBLAS/LAPACKE in kvi_real, and the thread settings. */
#include <math.h>
#include <cblas.h>
#include <lapacke.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/core.h"

#ifdef KVI_DOUBLE
#define KVI_BLAS(f) cblas_d##f
#define KVI_LAPACKE(f) LAPACKE_d##f
#else
#define KVI_BLAS(f) cblas_s##f
#define KVI_LAPACKE(f) LAPACKE_s##f
#endif

#define TR(t) ((t) ? CblasTrans : CblasNoTrans)

/* Threads. OpenBLAS's pthreads pool and the OpenMP pool both spin after their work and fight
 * over the cores when used in turn (measured on 2 cores: 100 x 784 x 300 took 0.51 ms on one
 * thread and 0.81 ms on two OpenBLAS threads after an OpenMP loop). So once kvi_set_threads was
 * called, BLAS runs single-threaded and kronvi parallelizes a large call itself: the output is
 * cut into panels (rows, or columns when they are more), and the panels are independent BLAS
 * calls in an OpenMP loop, so that one pool does all the parallel work.
 * The panels depend only on the shape and on kvi_set_threads' count, never on how many threads
 * actually run them (kvi_set_active_threads, the governor): BLAS kernels may sum in another
 * order for another panel shape, and the results must not change when the governor does. */
#ifndef KVI__BLAS_SPLIT_MIN
#define KVI__BLAS_SPLIT_MIN (1.0 * (1 << 20)) /* multiply-adds */
#endif
static int kvi__threads = 0; /* kvi_set_threads; 0: not set (BLAS and OpenMP defaults) */
static int kvi__active = 0;  /* threads that run the parallel loops now, <= kvi__threads */

/* Threads never set (no kvi_set_threads): the first product sets them to OpenMP's count, so
 * that OpenBLAS runs single-threaded inside kronvi's own split as after kvi_set_threads. Left at
 * both libraries' defaults, OpenBLAS's pool and OpenMP's took turns on the same cores and the
 * MLP's training step ran 5-9x slower (bench_epoch without kvi_set_threads, 2 cores). */
static pthread_once_t kvi__threads_once = PTHREAD_ONCE_INIT;
static void kvi__threads_init(void) {
  if (kvi__threads == 0) kvi_set_threads(omp_get_max_threads());
}
static void kvi__threads_default(void) {
  if (kvi__threads == 0 && omp_get_level() == 0)
    pthread_once(&kvi__threads_once, kvi__threads_init);
}

/* Panels for a call of `macs` multiply-adds at the top level: 1 (one plain call) or the thread
 * count. */
static int kvi__panels_top(double macs, int extent) {
  if (kvi__threads <= 1 || macs < KVI__BLAS_SPLIT_MIN) return 1;
  int p = kvi__threads;
  while (p > 1 && extent / p < 16) p--; /* at least 16 rows or columns per panel */
  return p;
}

/* As kvi__panels_top, but inside a parallel region (active or not: omp_get_level) always 1. */
static int kvi__panels(double macs, int extent) {
  kvi__threads_default();
  if (omp_get_level() > 0) return 1;
  return kvi__panels_top(macs, extent);
}

/* Threads to run np panels on. */
static int kvi__run_threads(int np) {
  int a = kvi__active > 0 ? kvi__active : 1;
  return a < np ? a : np;
}

/* Start of panel t of np over [0, n): the multiple of 16 (kernel-friendly) nearest to t n / np,
 * except at the end. */
static int kvi__panel_start(int t, int np, int n) {
  if (t >= np) return n;
  long r = (long)n * t / np;
  r = (r + 8) / 16 * 16; /* the nearest multiple: e.g. 860 splits 432 | 428, not 416 | 444 */
  return (int)(r < n ? r : n);
}

static void kvi__gemm1(bool ta, bool tb, int M, int N, int K, kvi_real alpha, const kvi_real *A,
                       int lda, const kvi_real *B, int ldb, kvi_real beta, kvi_real *C, int ldc) {
  KVI_BLAS(gemm)(CblasRowMajor, TR(ta), TR(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Panel t of np of a product: rows [r0, r1) of C and of op(A) when M >= N, else columns
 * [c0, c1) of C and of op(B). */
static void kvi__gemm_panel(const kvi_gemm_args *g, int t, int np) {
  if (g->M >= g->N) {
    int r0 = kvi__panel_start(t, np, g->M), r1 = kvi__panel_start(t + 1, np, g->M);
    const kvi_real *Ap = g->ta ? g->A + r0 : g->A + (size_t)r0 * g->lda;
    if (r1 > r0)
      kvi__gemm1(g->ta, g->tb, r1 - r0, g->N, g->K, g->alpha, Ap, g->lda, g->B, g->ldb, g->beta,
                 g->C + (size_t)r0 * g->ldc, g->ldc);
  } else {
    int c0 = kvi__panel_start(t, np, g->N), c1 = kvi__panel_start(t + 1, np, g->N);
    const kvi_real *Bp = g->tb ? g->B + (size_t)c0 * g->ldb : g->B + c0;
    if (c1 > c0)
      kvi__gemm1(g->ta, g->tb, g->M, c1 - c0, g->K, g->alpha, g->A, g->lda, Bp, g->ldb, g->beta,
                 g->C + c0, g->ldc);
  }
}

void kvi_gemm(bool ta, bool tb, int M, int N, int K, kvi_real alpha, const kvi_real *A, int lda,
              const kvi_real *B, int ldb, kvi_real beta, kvi_real *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) { /* C = beta C */
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++)
        C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
    return;
  }
  int np = kvi__panels((double)M * N * K, M >= N ? M : N);
  if (np == 1) {
    kvi__gemm1(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const kvi_gemm_args g = {ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
#pragma omp parallel for schedule(static) num_threads(kvi__run_threads(np))
  for (int t = 0; t < np; t++) kvi__gemm_panel(&g, t, np);
}

int kvi_gemm_panels(const kvi_gemm_args *g) {
  if (g->M <= 0 || g->N <= 0 || g->K <= 0) return 1;
  kvi__threads_default();
  return kvi__panels_top((double)g->M * g->N * g->K, g->M >= g->N ? g->M : g->N);
}

void kvi_gemm_panel(const kvi_gemm_args *g, int t, int np) {
  if (g->M <= 0 || g->N <= 0) return;
  if (g->K <= 0 || np <= 1) { /* kvi_gemm's own single call (or its K = 0 case) */
    if (t == 0)
      kvi_gemm(g->ta, g->tb, g->M, g->N, g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta, g->C,
               g->ldc);
    return;
  }
  kvi__gemm_panel(g, t, np);
}

static void kvi__gemm_args_run(const kvi_gemm_args *g) {
  kvi_gemm(g->ta, g->tb, g->M, g->N, g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta, g->C,
           g->ldc);
}

/* Panels of one product of a pair: its share of T panels by work, at least 1, with at least 16
 * rows or columns each. */
static int kvi__pair_panels(const kvi_gemm_args *g, double macs, double total) {
  int p = (int)(kvi__threads * macs / total + 0.5);
  if (p < 1) p = 1;
  int extent = g->M >= g->N ? g->M : g->N;
  while (p > 1 && extent / p < 16) p--;
  return p;
}

void kvi_gemm_pair(const kvi_gemm_args *g1, const kvi_gemm_args *g2) {
  kvi__threads_default();
  double w1 = (double)g1->M * g1->N * g1->K, w2 = (double)g2->M * g2->N * g2->K;
  if (kvi__threads <= 1 || omp_get_level() > 0 || g1->K <= 0 || g2->K <= 0 || w1 <= 0 || w2 <= 0 ||
      w1 + w2 < 2 * KVI__BLAS_SPLIT_MIN) {
    kvi__gemm_args_run(g1);
    kvi__gemm_args_run(g2);
    return;
  }
  const int p1 = kvi__pair_panels(g1, w1, w1 + w2), p2 = kvi__pair_panels(g2, w2, w1 + w2);
#pragma omp parallel for schedule(static) num_threads(kvi__run_threads(p1 + p2))
  for (int t = 0; t < p1 + p2; t++) {
    if (t < p1)
      kvi__gemm_panel(g1, t, p1);
    else
      kvi__gemm_panel(g2, t - p1, p2);
  }
}

/* Row block [r0, r1) of the lower triangle needs columns [0, r1): one gemm per row block. With
 * nb blocks the work is (nb + 1) / (2 nb) of a full gemm. */
void kvi_gemm_lower(bool ta, bool tb, int N, int K, kvi_real alpha, const kvi_real *A, int lda,
                    const kvi_real *B, int ldb, kvi_real beta, kvi_real *C, int ldc) {
  if (N <= 0) return;
  int nb = N >= 512 ? 8 : N >= 128 ? 4 : 1;
  for (int bi = 0; bi < nb; bi++) {
    int r0 = (int)((long)N * bi / nb), r1 = (int)((long)N * (bi + 1) / nb);
    if (r1 <= r0) continue;
    /* rows r0..r1 of op(A): op(A) is (N, K) */
    const kvi_real *Ar = ta ? A + r0 : A + (size_t)r0 * lda;
    kvi_gemm(ta, tb, r1 - r0, r1, K, alpha, Ar, lda, B, ldb, beta, C + (size_t)r0 * ldc, ldc);
  }
}

/* Triangular multiply / solve with B (M, N) in place: right-side calls split B by rows,
 * left-side ones by columns (each panel only reads its own part of B). */
typedef void (*kvi__tri_fn)(CBLAS_ORDER, CBLAS_SIDE, CBLAS_UPLO, CBLAS_TRANSPOSE, CBLAS_DIAG,
                            blasint, blasint, kvi_real, const kvi_real *, blasint, kvi_real *,
                            blasint);

static void kvi__tri(kvi__tri_fn f, bool right, bool trans, bool unit_diag, int M, int N,
                     kvi_real alpha, const kvi_real *L, int ldl, kvi_real *B, int ldb) {
  if (M <= 0 || N <= 0) return;
  int np = kvi__panels(0.5 * M * N * (right ? N : M), right ? M : N);
  const CBLAS_SIDE side = right ? CblasRight : CblasLeft;
  const CBLAS_TRANSPOSE tr = TR(trans);
  const CBLAS_DIAG dg = unit_diag ? CblasUnit : CblasNonUnit;
  if (np == 1) {
    f(CblasRowMajor, side, CblasLower, tr, dg, M, N, alpha, L, ldl, B, ldb);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(kvi__run_threads(np))
  for (int t = 0; t < np; t++) {
    int e = right ? M : N, a = kvi__panel_start(t, np, e), b = kvi__panel_start(t + 1, np, e);
    if (b <= a) continue;
    if (right)
      f(CblasRowMajor, side, CblasLower, tr, dg, b - a, N, alpha, L, ldl, B + (size_t)a * ldb, ldb);
    else
      f(CblasRowMajor, side, CblasLower, tr, dg, M, b - a, alpha, L, ldl, B + a, ldb);
  }
}

void kvi_trmm(bool right, bool trans, bool unit_diag, int M, int N, kvi_real alpha,
              const kvi_real *L, int ldl, kvi_real *B, int ldb) {
  kvi__tri(KVI_BLAS(trmm), right, trans, unit_diag, M, N, alpha, L, ldl, B, ldb);
}

/* Panels of the right triangular products: a function of the shape only (never of the thread
 * count), so that the sums, and the results, are the same on any number of threads. */
static int kvi__tri_panels(int M, int N) {
  if (N < 128 || 0.5 * M * N * N < KVI__BLAS_SPLIT_MIN) return 1;
  const int np = N / 192;
  return np < 2 ? 2 : np > 8 ? 8 : np;
}

/* Start of panel t of np over N columns of equal work, on a multiple of 16: column j of L costs
 * N - j (the work of [0, c) is c N - c^2 / 2), column j of L^T costs j + 1. */
static int kvi__tri_panel_start(int t, int np, int n, bool trans) {
  if (t <= 0) return 0;
  if (t >= np) return n;
  const double f = (double)t / np;
  long c = (long)(n * (trans ? sqrt(f) : 1 - sqrt(1 - f)));
  c = (c + 8) / 16 * 16;
  return (int)(c < n ? c : n);
}

/* Whether the panels run in a parallel region. Not a kvi__fork (core/par.h): with several panels
 * the region must be entered even when the governor runs one thread, because inside it each
 * panel's kvi_ calls are one BLAS call (omp_get_level() > 0), and outside they would split again
 * and sum in another order. */
static bool kvi__tri_par(int np) {
  kvi__threads_default();
  return np > 1 && kvi__threads > 1 && omp_get_level() == 0;
}

/* Panel t of np of kvi_trmm_right_lower: Z[:, c0:c1] = X[:, c0:c1] (L + I)[c0:c1, c0:c1]
 * + X[:, c1:N] L[c1:N, c0:c1]. Inside the panel loop the kvi_ calls are one BLAS call each
 * (omp_get_level() > 0); with one panel they are the plain whole-matrix trmm, split by rows as
 * usual (same bits). */
static void kvi__trmm_rl_panel(int t, int np, bool unit_diag, int M, int N, const kvi_real *L,
                               int ldl, const kvi_real *X, int ldx, kvi_real *Z, int ldz) {
  const int c0 = kvi__tri_panel_start(t, np, N, false);
  const int c1 = kvi__tri_panel_start(t + 1, np, N, false);
  if (c1 <= c0) return;
  for (int r = 0; r < M; r++)
    memcpy(Z + (size_t)r * ldz + c0, X + (size_t)r * ldx + c0, (size_t)(c1 - c0) * sizeof *Z);
  kvi_trmm(true, false, unit_diag, M, c1 - c0, 1, L + (size_t)c0 * ldl + c0, ldl, Z + c0, ldz);
  if (c1 < N) /* Z[:, c0:c1] += X[:, c1:N] L[c1:N, c0:c1] */
    kvi_gemm(false, false, M, c1 - c0, N - c1, 1, X + c1, ldx, L + (size_t)c1 * ldl + c0, ldl, 1,
             Z + c0, ldz);
}

void kvi_trmm_right_lower(bool unit_diag, int M, int N, const kvi_real *L, int ldl,
                          const kvi_real *X, int ldx, kvi_real *Z, int ldz) {
  if (M <= 0 || N <= 0) return;
  const int np = kvi__tri_panels(M, N);
  if (kvi__tri_par(np)) {
#pragma omp parallel for schedule(static) num_threads(kvi__run_threads(np))
    for (int t = 0; t < np; t++) kvi__trmm_rl_panel(t, np, unit_diag, M, N, L, ldl, X, ldx, Z, ldz);
  } else {
    for (int t = 0; t < np; t++) kvi__trmm_rl_panel(t, np, unit_diag, M, N, L, ldl, X, ldx, Z, ldz);
  }
}

/* Panel t of np of kvi_trmm_right_lower_t_add: D[:, c0:c1] += X[:, c0:c1] L[c0:c1, c0:c1]^T
 * (through T) + X[:, 0:c0] L[c0:c1, 0:c0]^T. */
static void kvi__trmm_rlt_panel(int t, int np, bool unit_diag, int M, int N, const kvi_real *L,
                                int ldl, const kvi_real *X, int ldx, kvi_real *D, int ldd,
                                kvi_real *T) {
  const int c0 = kvi__tri_panel_start(t, np, N, true);
  const int c1 = kvi__tri_panel_start(t + 1, np, N, true);
  if (c1 <= c0) return;
  for (int r = 0; r < M; r++) /* T[:, c0:c1] = X[:, c0:c1] L[c0:c1, c0:c1]^T */
    memcpy(T + (size_t)r * N + c0, X + (size_t)r * ldx + c0, (size_t)(c1 - c0) * sizeof *T);
  kvi_trmm(true, true, unit_diag, M, c1 - c0, 1, L + (size_t)c0 * ldl + c0, ldl, T + c0, N);
  if (c0 > 0) /* D[:, c0:c1] += X[:, 0:c0] L[c0:c1, 0:c0]^T */
    kvi_gemm(false, true, M, c1 - c0, c0, 1, X, ldx, L + (size_t)c0 * ldl, ldl, 1, D + c0, ldd);
  for (int r = 0; r < M; r++) {
    kvi_real *d = D + (size_t)r * ldd + c0;
    const kvi_real *tr = T + (size_t)r * N + c0;
    for (int j = 0; j < c1 - c0; j++) d[j] += tr[j];
  }
}

void kvi_trmm_right_lower_t_add(bool unit_diag, int M, int N, const kvi_real *L, int ldl,
                                const kvi_real *X, int ldx, kvi_real *D, int ldd, kvi_real *T) {
  if (M <= 0 || N <= 0) return;
  const int np = kvi__tri_panels(M, N);
  if (kvi__tri_par(np)) {
#pragma omp parallel for schedule(static) num_threads(kvi__run_threads(np))
    for (int t = 0; t < np; t++)
      kvi__trmm_rlt_panel(t, np, unit_diag, M, N, L, ldl, X, ldx, D, ldd, T);
  } else {
    for (int t = 0; t < np; t++)
      kvi__trmm_rlt_panel(t, np, unit_diag, M, N, L, ldl, X, ldx, D, ldd, T);
  }
}

void kvi_trsm(bool right, bool trans, bool unit_diag, int M, int N, kvi_real alpha,
              const kvi_real *L, int ldl, kvi_real *B, int ldb) {
  kvi__tri(KVI_BLAS(trsm), right, trans, unit_diag, M, N, alpha, L, ldl, B, ldb);
}

void kvi_syrk(bool trans, int N, int K, kvi_real alpha, const kvi_real *A, int lda, kvi_real beta,
              kvi_real *C, int ldc) {
  if (N <= 0) return;
  kvi__threads_default();
  KVI_BLAS(syrk)(CblasRowMajor, CblasLower, TR(trans), N, K, alpha, A, lda, beta, C, ldc);
}

void kvi_gemv(bool ta, int M, int N, kvi_real alpha, const kvi_real *A, int lda, const kvi_real *x,
              kvi_real beta, kvi_real *y) {
  if (M <= 0 || N <= 0) return;
  kvi__threads_default();
  KVI_BLAS(gemv)(CblasRowMajor, TR(ta), M, N, alpha, A, lda, x, 1, beta, y, 1);
}

kvi_status kvi_potrf(int N, kvi_real *A, int lda) {
  if (N <= 0) return kvi_fail(KVI_ERR_ARG, "potrf: size %d must be positive", N);
  kvi__threads_default();
  lapack_int info = KVI_LAPACKE(potrf)(LAPACK_ROW_MAJOR, 'L', N, A, lda);
  if (info != 0)
    return kvi_fail(KVI_ERR_LINALG, "Cholesky failed (info %d): matrix not positive definite",
                    (int)info);
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) A[(size_t)i * lda + j] = 0;
  return KVI_OK;
}

kvi_status kvi_spd_inverse(int N, kvi_real *A, int lda) {
  kvi_status s = kvi_potrf(N, A, lda);
  if (s) return s;
  lapack_int info = KVI_LAPACKE(potri)(LAPACK_ROW_MAJOR, 'L', N, A, lda);
  if (info != 0) return kvi_fail(KVI_ERR_LINALG, "SPD inverse failed (info %d)", (int)info);
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) A[(size_t)i * lda + j] = A[(size_t)j * lda + i];
  return KVI_OK;
}

kvi_status kvi_potrf_f64(int N, double *A, int lda) {
  if (N <= 0) return kvi_fail(KVI_ERR_ARG, "potrf: size %d must be positive", N);
  lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', N, A, lda);
  if (info != 0)
    return kvi_fail(KVI_ERR_LINALG, "Cholesky failed (info %d): matrix not positive definite",
                    (int)info);
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) A[(size_t)i * lda + j] = 0;
  return KVI_OK;
}

kvi_status kvi_spd_inverse_f64(int N, double *A, int lda) {
  kvi_status s = kvi_potrf_f64(N, A, lda);
  if (s) return s;
  lapack_int info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', N, A, lda);
  if (info != 0) return kvi_fail(KVI_ERR_LINALG, "SPD inverse failed (info %d)", (int)info);
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) A[(size_t)i * lda + j] = A[(size_t)j * lda + i];
  return KVI_OK;
}

kvi_status kvi_syev_f64(int N, double *A, int lda, double *w) {
  if (N <= 0) return kvi_fail(KVI_ERR_ARG, "syev: size %d must be positive", N);
  for (size_t i = 0; i < (size_t)N * lda; i++)
    if (!isfinite(A[i])) return kvi_fail(KVI_ERR_NONFINITE, "syev: non-finite matrix entry");
  lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', N, A, lda, w);
  if (info != 0)
    return kvi_fail(KVI_ERR_LINALG, "symmetric eigendecomposition failed (info %d)", (int)info);
  return KVI_OK;
}

void kvi_set_threads(int n) {
  if (n < 1) n = 1;
  kvi__threads = kvi__active = n;
  openblas_set_num_threads(1); /* kronvi splits large calls itself (kvi_gemm) */
  omp_set_num_threads(n);
}

int kvi_get_threads(void) { return kvi__threads > 0 ? kvi__threads : omp_get_max_threads(); }

void kvi_set_active_threads(int n) {
  int max = kvi_get_threads();
  if (kvi__threads <= 0) kvi_set_threads(max);
  if (n < 1) n = 1;
  if (n > max) n = max;
  kvi__active = n;
  omp_set_num_threads(n);
}

int kvi_get_active_threads(void) { return kvi__active > 0 ? kvi__active : kvi_get_threads(); }

const char *kvi_blas_core(void) { return openblas_get_corename(); }

/* The clone of the KVI__HOT kernels that runs: the resolver GCC emits for target_clones picks
 * the first of x86-64-v4, avx2, default that the CPU supports, and so does this. */
const char *kvi_simd_isa(void) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && \
    !defined(KVI_NO_CLONES)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return "avx512";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "sse2";
#else
  return "baseline";
#endif
}

/* OpenBLAS (0.3.21 in Debian 12) falls back to its Prescott (SSE3) kernels on CPUs it does not
 * know, e.g. recent Xeons behind a hypervisor that hides the model, although they have AVX-512:
 * its GEMM then runs several times slower. This names the kernel set matching the CPU's ISA in
 * that case; the choice only takes effect through OPENBLAS_CORETYPE before OpenBLAS loads. */
const char *kvi_blas_better_core(void) {
#if defined(__GNUC__) && defined(__x86_64__)
  const char *core = openblas_get_corename();
  if (!core || (strcmp(core, "Prescott") && strcmp(core, "Katmai") && strcmp(core, "Core2") &&
                strcmp(core, "Nehalem") && strcmp(core, "Penryn") && strcmp(core, "Dunnington")))
    return NULL;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return NULL;
}
