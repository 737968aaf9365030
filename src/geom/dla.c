/* Double-precision dense linear algebra for the geom module: thin row-major wrappers over CBLAS
 * and LAPACKE, and the small matrix functions the manifolds need. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geom/geom_internal.h"

#define TR(t) ((t) ? CblasTrans : CblasNoTrans)

void kvi__dgemm(bool ta, bool tb, int M, int N, int K, double alpha, const double *A,
                const double *B, double beta, double *C) {
  if (M <= 0 || N <= 0) return;
  cblas_dgemm(CblasRowMajor, TR(ta), TR(tb), M, N, K, alpha, A, ta ? M : K, B, tb ? K : N, beta, C,
              N);
}

void kvi__dtrmm(bool right, bool trans, int M, int N, const double *L, double *B) {
  cblas_dtrmm(CblasRowMajor, right ? CblasRight : CblasLeft, CblasLower, TR(trans), CblasNonUnit, M,
              N, 1.0, L, right ? N : M, B, N);
}

void kvi__dtrsm(bool right, bool trans, int M, int N, const double *L, double *B) {
  cblas_dtrsm(CblasRowMajor, right ? CblasRight : CblasLeft, CblasLower, TR(trans), CblasNonUnit, M,
              N, 1.0, L, right ? N : M, B, N);
}

bool kvi__dchol(int n, double *A) {
  if (!kvi__dfinite(A, (size_t)n * n)) return false;
  if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', n, A, n) != 0) return false;
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) A[(size_t)i * n + j] = 0;
  for (int i = 0; i < n; i++)
    if (!(A[(size_t)i * n + i] > 0)) return false;
  return true;
}

bool kvi__dsyev(int n, double *A, double *w) {
  if (!kvi__dfinite(A, (size_t)n * n)) return false;
  return LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'L', n, A, n, w) == 0;
}

bool kvi__dfunm_sym(int n, double *F, const double *X, double (*f)(double), double *work) {
  double *Q = work, *w = work + (size_t)n * n;
  memcpy(Q, X, (size_t)n * n * sizeof *Q);
  if (!kvi__dsyev(n, Q, w)) return false;
  /* F = Q diag(f(w)) Q^T, symmetric by construction */
  for (int i = 0; i < n; i++)
    for (int j = 0; j <= i; j++) {
      double s = 0;
      for (int k = 0; k < n; k++) s += Q[(size_t)i * n + k] * f(w[k]) * Q[(size_t)j * n + k];
      F[(size_t)i * n + j] = F[(size_t)j * n + i] = s;
    }
  return kvi__dfinite(F, (size_t)n * n);
}

void kvi__dsym(int n, double *X) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++) {
      double a = 0.5 * (X[(size_t)i * n + j] + X[(size_t)j * n + i]);
      X[(size_t)i * n + j] = X[(size_t)j * n + i] = a;
    }
}

bool kvi__dfinite(const double *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return false;
  return true;
}

double kvi__dtrace(int n, const double *X) {
  double t = 0;
  for (int i = 0; i < n; i++) t += X[(size_t)i * n + i];
  return t;
}

double kvi__dnorm2(const double *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += x[i] * x[i];
  return s;
}

void kvi__deye(int n, double *X) {
  memset(X, 0, (size_t)n * n * sizeof *X);
  for (int i = 0; i < n; i++) X[(size_t)i * n + i] = 1;
}

void kvi__dh(int n, double *H, const double *M) {
  kvi__dgemm(false, false, n, n, n, 0.5, M, M, 0.0, H);
  for (size_t i = 0; i < (size_t)n * n; i++) H[i] += M[i];
  for (int i = 0; i < n; i++) H[(size_t)i * n + i] += 1;
}

void kvi__dwhiten(int n, double *S, const double *L, const double *X) {
  if (S != X) memcpy(S, X, (size_t)n * n * sizeof *S);
  kvi__dtrsm(false, false, n, n, L, S); /* L^-1 X */
  kvi__dtrsm(true, true, n, n, L, S);   /* (L^-1 X) L^-T */
  kvi__dsym(n, S);
}

void kvi__dunwhiten(int n, double *X, const double *L, const double *S) {
  if (X != S) memcpy(X, S, (size_t)n * n * sizeof *X);
  kvi__dtrmm(false, false, n, n, L, X); /* L S */
  kvi__dtrmm(true, true, n, n, L, X);   /* L S L^T */
  kvi__dsym(n, X);
}

void kvi__dtau(int n, double *T, const double *S) {
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < i; j++) T[(size_t)i * n + j] = S[(size_t)i * n + j];
    T[(size_t)i * n + i] = 0.5 * S[(size_t)i * n + i];
    for (int j = i + 1; j < n; j++) T[(size_t)i * n + j] = 0;
  }
}
