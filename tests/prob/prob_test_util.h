/* Helpers shared by the tests of src/prob (double build): random parameters and a dense
 * reference for Gaussians over vec(W), W (n, m) row-major, flat index p = i * m + j. */
#ifndef KVI_PROB_TEST_UTIL_H
#define KVI_PROB_TEST_UTIL_H

#include "kronvi/prob.h"
#include "kvi_test.h"

static kvi_rng tu_rng;

static inline double tu_normal(void) {
  double z;
  kvi_rng_normal_f64(&tu_rng, &z, 1);
  return z;
}

/* Cholesky parameter storage: strict lower ~ scale * N(0,1), diagonal (log) ~ dscale * N(0,1)
 * + dshift, upper filled with NaN (must never be read). */
static inline void tu_chol(kvi_real *P, int n, double scale, double dscale, double dshift) {
  for (int i = 0; i < n; i++)
    for (int k = 0; k < n; k++)
      P[i * n + k] = k < i    ? (kvi_real)(scale * tu_normal())
                     : k == i ? (kvi_real)(dscale * tu_normal() + dshift)
                              : (kvi_real)NAN;
}

static inline void tu_fill(kvi_real *x, size_t cnt, double scale, double shift) {
  for (size_t k = 0; k < cnt; k++) x[k] = (kvi_real)(scale * tu_normal() + shift);
}

/* L L^T from parameter storage, full (n, n) double */
static inline void tu_llt(double *U, const kvi_real *P, int n) {
  for (int i = 0; i < n; i++)
    for (int k = 0; k < n; k++) {
      double s = 0;
      for (int t = 0; t <= (i < k ? i : k); t++) {
        double li = t < i ? P[i * n + t] : exp(P[i * n + i]);
        double lk = t < k ? P[k * n + t] : exp(P[k * n + k]);
        s += li * lk;
      }
      U[i * n + k] = s;
    }
}

/* Sigma (nm, nm) of MN(M, U, V) (+ diag D if log_d): Sigma[(i,j),(k,l)] = U_ik V_jl. */
static inline double *tu_mn_cov(const kvi_mn *q, const kvi_real *log_d) {
  int n = q->n, m = q->m, N = n * m;
  double *U = malloc(sizeof(double) * n * n), *V = malloc(sizeof(double) * m * m);
  double *S = malloc(sizeof(double) * N * N);
  tu_llt(U, q->A, n);
  tu_llt(V, q->B, m);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++)
      for (int k = 0; k < n; k++)
        for (int l = 0; l < m; l++) S[(i * m + j) * N + k * m + l] = U[i * n + k] * V[j * m + l];
  if (log_d)
    for (int p = 0; p < N; p++) S[p * N + p] += exp(log_d[p]);
  free(U);
  free(V);
  return S;
}

/* In place: S -> its lower Cholesky; returns log det S. */
static inline double tu_chol_logdet(double *S, int N) {
  kvi_status s = kvi_potrf_f64(N, S, N);
  if (s) {
    fprintf(stderr, "reference Cholesky failed\n");
    exit(2);
  }
  double ld = 0;
  for (int p = 0; p < N; p++) ld += 2 * log(S[p * N + p]);
  return ld;
}

/* log N(w; mu, S) with S given by its lower Cholesky L */
static inline double tu_logpdf(const double *L, int N, const kvi_real *mu, const kvi_real *w) {
  double *y = malloc(sizeof(double) * N), q = 0, ld = 0;
  for (int p = 0; p < N; p++) {
    double r = (double)w[p] - (double)mu[p];
    for (int t = 0; t < p; t++) r -= L[p * N + t] * y[t];
    y[p] = r / L[p * N + p];
    q += y[p] * y[p];
    ld += log(L[p * N + p]);
  }
  free(y);
  return -0.5 * q - ld - 0.5 * N * log(2 * 3.14159265358979323846);
}

/* KL(N(mu, S) || N(0, diag pv)), S given as full matrix Sfull with log det ldS */
static inline double tu_kl_diagprior(const double *Sfull, double ldS, const kvi_real *mu,
                                     const double *pv, int N) {
  double acc = 0;
  for (int p = 0; p < N; p++)
    acc += (Sfull[p * N + p] + (double)mu[p] * mu[p]) / pv[p] + log(pv[p]) - 1;
  return 0.5 * (acc - ldS);
}

static inline int tu_relclose(double a, double b, double tol) {
  return fabs(a - b) <= tol * fmax(1.0, fabs(b));
}
#endif
