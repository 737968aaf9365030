/* Small dense helpers for the geom tests (double, row-major). */
#ifndef KVI_GEOM_TEST_UTIL_H
#define KVI_GEOM_TEST_UTIL_H

#include <math.h>
#include <string.h>

#include "kronvi/geom.h"

static inline void gt_randn(kvi_rng *r, double *x, size_t n, double scale) {
  kvi_rng_normal_f64(r, x, n);
  for (size_t i = 0; i < n; i++) x[i] *= scale;
}

/* C = op(A) op(B), A (M x K), B (K x N) */
static inline void gt_mul(int M, int N, int K, const double *A, bool ta, const double *B, bool tb,
                          double *C) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++)
        s += (ta ? A[(size_t)k * M + i] : A[(size_t)i * K + k]) *
             (tb ? B[(size_t)j * K + k] : B[(size_t)k * N + j]);
      C[(size_t)i * N + j] = s;
    }
}

static inline void gt_sym(int n, double *X) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++) {
      double a = 0.5 * (X[(size_t)i * n + j] + X[(size_t)j * n + i]);
      X[(size_t)i * n + j] = X[(size_t)j * n + i] = a;
    }
}

/* A random symmetric matrix of Frobenius norm about scale. */
static inline void gt_rand_sym(kvi_rng *r, int n, double *X, double scale) {
  gt_randn(r, X, (size_t)n * n, scale / n);
  gt_sym(n, X);
}

/* A random SPD matrix: G G^T / n + shift I. */
static inline void gt_rand_spd(kvi_rng *r, int n, double *U, double shift) {
  double G[64 * 64];
  gt_randn(r, G, (size_t)n * n, 1);
  gt_mul(n, n, n, G, false, G, true, U);
  for (size_t i = 0; i < (size_t)n * n; i++) U[i] /= n;
  for (int i = 0; i < n; i++) U[(size_t)i * n + i] += shift;
}

/* K = A (x) B, A (n x n), B (m x m), row index i*m + j. */
static inline void gt_kron(int n, int m, const double *A, const double *B, double *K) {
  const int N = n * m;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++)
      for (int k = 0; k < n; k++)
        for (int l = 0; l < m; l++)
          K[((size_t)i * m + j) * N + (size_t)k * m + l] =
              A[(size_t)i * n + k] * B[(size_t)j * m + l];
}

static inline double gt_dot(const double *a, const double *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

static inline double gt_maxabs(const double *a, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s = fmax(s, fabs(a[i]));
  return s;
}

static inline double gt_maxdiff(const double *a, const double *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s = fmax(s, fabs(a[i] - b[i]));
  return s;
}

/* log det of an SPD matrix through kvi_psd_chol (NAN if not SPD). */
static inline double gt_logdet(int n, const double *U) {
  double L[64 * 64];
  if (kvi_psd_chol(n, L, U) != KVI_OK) return NAN;
  double s = 0;
  for (int i = 0; i < n; i++) s += 2 * log(L[(size_t)i * n + i]);
  return s;
}

#endif
