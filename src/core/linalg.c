/* Row-major wrappers over CBLAS/LAPACKE in kvi_real, and the thread settings. */
#include <cblas.h>
#include <lapacke.h>
#include <omp.h>
#include <stdlib.h>

#include "kronvi/core.h"

#ifdef KVI_DOUBLE
#define KVI_BLAS(f) cblas_d##f
#define KVI_LAPACKE(f) LAPACKE_d##f
#else
#define KVI_BLAS(f) cblas_s##f
#define KVI_LAPACKE(f) LAPACKE_s##f
#endif

#define TR(t) ((t) ? CblasTrans : CblasNoTrans)

/* BLAS threads per call. OpenBLAS's pthreads pool and the OpenMP pool spin after each call and
 * fight over the cores; for the MLP's gemms (at most 100 x 784 x 300 multiply-adds at batch
 * 100) a second thread never pays for the handoff (measured on 2 cores: 0.51 ms on one thread,
 * 0.81 ms on two for 100 x 784 x 300). So a call runs on the calling thread unless it has at
 * least KVI__BLAS_PAR_MIN multiply-adds, and the pool is only resized when the choice changes. */
#ifndef KVI__BLAS_PAR_MIN
#define KVI__BLAS_PAR_MIN (1.0 * (1 << 26))
#endif
static int kvi__threads = 0;  /* kvi_set_threads; 0: not set (BLAS and OpenMP defaults) */
static int kvi__blas_cur = 0; /* what openblas_set_num_threads was last given */

static void kvi__blas_threads_for(double macs) {
  if (kvi__threads <= 0 || omp_in_parallel()) return; /* not from inside a parallel region */
  int want = macs >= KVI__BLAS_PAR_MIN ? kvi__threads : 1;
  if (want != kvi__blas_cur) {
    openblas_set_num_threads(want);
    kvi__blas_cur = want;
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
  kvi__blas_threads_for((double)M * N * K);
  KVI_BLAS(gemm)(CblasRowMajor, TR(ta), TR(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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

void kvi_trmm(bool right, bool trans, bool unit_diag, int M, int N, kvi_real alpha,
              const kvi_real *L, int ldl, kvi_real *B, int ldb) {
  if (M <= 0 || N <= 0) return;
  kvi__blas_threads_for(0.5 * M * N * (right ? N : M));
  KVI_BLAS(trmm)
  (CblasRowMajor, right ? CblasRight : CblasLeft, CblasLower, TR(trans),
   unit_diag ? CblasUnit : CblasNonUnit, M, N, alpha, L, ldl, B, ldb);
}

void kvi_trsm(bool right, bool trans, bool unit_diag, int M, int N, kvi_real alpha,
              const kvi_real *L, int ldl, kvi_real *B, int ldb) {
  if (M <= 0 || N <= 0) return;
  kvi__blas_threads_for(0.5 * M * N * (right ? N : M));
  KVI_BLAS(trsm)
  (CblasRowMajor, right ? CblasRight : CblasLeft, CblasLower, TR(trans),
   unit_diag ? CblasUnit : CblasNonUnit, M, N, alpha, L, ldl, B, ldb);
}

void kvi_syrk(bool trans, int N, int K, kvi_real alpha, const kvi_real *A, int lda, kvi_real beta,
              kvi_real *C, int ldc) {
  if (N <= 0) return;
  kvi__blas_threads_for(0.5 * N * N * K);
  KVI_BLAS(syrk)(CblasRowMajor, CblasLower, TR(trans), N, K, alpha, A, lda, beta, C, ldc);
}

void kvi_gemv(bool ta, int M, int N, kvi_real alpha, const kvi_real *A, int lda, const kvi_real *x,
              kvi_real beta, kvi_real *y) {
  if (M <= 0 || N <= 0) return;
  KVI_BLAS(gemv)(CblasRowMajor, TR(ta), M, N, alpha, A, lda, x, 1, beta, y, 1);
}

kvi_status kvi_potrf(int N, kvi_real *A, int lda) {
  if (N <= 0) return kvi_fail(KVI_ERR_ARG, "potrf: size %d must be positive", N);
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

void kvi_set_threads(int n) {
  if (n < 1) n = 1;
  kvi__threads = n;
  kvi__blas_cur = 1;
  openblas_set_num_threads(1); /* raised per call by kvi__blas_threads_for */
  omp_set_num_threads(n);
}

int kvi_get_threads(void) { return kvi__threads > 0 ? kvi__threads : omp_get_max_threads(); }

const char *kvi_blas_core(void) { return openblas_get_corename(); }
