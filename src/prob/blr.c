/* Exact posterior of Bayesian multivariate linear regression (paper §4.1, eq. 5, in kronvi's
 * orientation) and the KL divergence between two matrix normal distributions, both in double
 * precision with LAPACKE/CBLAS d-routines whatever kvi_real is.
 *
 * Model: y = x W + noise, x (1, n), W (n, m), noise ~ N(0, beta^{-1} I_m); prior: row i of W is
 * N(0, alpha_i^{-1} I_m). The columns w_j of W are independent a posteriori with the same
 * precision beta X^T X + diag(alpha) and means U beta X^T y_j, hence
 *     W | X, Y ~ MN(M, U, I_m),  U = (beta X^T X + diag alpha)^{-1},  M = beta U X^T Y.
 *
 * MN(M, U, V) is N(vec M, V (x) U) for the column-wise vec (= N(M flattened row-major, U (x) V)),
 * so for q = MN(Mq, Uq, Vq) and p = MN(Mp, Up, Vp), with D = Mp - Mq:
 *   KL(q || p) = 1/2 [ tr(Vp^{-1} Vq) tr(Up^{-1} Uq) + tr(Vp^{-1} D^T Up^{-1} D) - n m
 *                      + m log(|Up| / |Uq|) + n log(|Vp| / |Vq|) ]
 * using tr(X (x) Y) = tr X tr Y, (X (x) Y)^{-1} = X^{-1} (x) Y^{-1} and |V (x) U| = |V|^n |U|^m.
 * With Cholesky factors Up = Lu Lu^T etc. the traces are squared Frobenius norms of triangular
 * solves: tr(Up^{-1} Uq) = |Lup^{-1} Luq|_F^2, tr(Vp^{-1} D^T Up^{-1} D) = |Lup^{-1} D
 * Lvp^{-T}|_F^2. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "kronvi/prob.h"

static kvi_status blr_finite(const double *x, size_t n, const char *what, const char *fn) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return kvi_fail(KVI_ERR_NONFINITE, "%s: %s has a non-finite value %g at index %zu", fn, what,
                      x[i], i);
  return KVI_OK;
}

/* Lower Cholesky of a (k, k) SPD matrix in place (upper part zeroed), with a message naming it. */
static kvi_status blr_chol(double *A, int k, const char *what, const char *fn) {
  lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', k, A, k);
  if (info != 0)
    return kvi_fail(KVI_ERR_LINALG, "%s: %s is not positive definite (Cholesky info %d)", fn, what,
                    (int)info);
  for (int i = 0; i < k; i++)
    for (int j = i + 1; j < k; j++) A[(size_t)i * k + j] = 0;
  return KVI_OK;
}

kvi_status kvi_blr_posterior(double *M, double *U, double *U_chol, const double *X, const double *Y,
                             const double *alpha, double beta, int N, int n, int m) {
  static const char fn[] = "kvi_blr_posterior";
  if (N <= 0 || n <= 0 || m <= 0)
    return kvi_fail(KVI_ERR_SHAPE, "%s: sizes N = %d, n = %d, m = %d must all be positive", fn, N,
                    n, m);
  if (!X || !Y || !alpha) return kvi_fail(KVI_ERR_ARG, "%s: X, Y or alpha is NULL", fn);
  if (!M && !U && !U_chol) return kvi_fail(KVI_ERR_ARG, "%s: no output requested", fn);
  if (!isfinite(beta) || !(beta > 0))
    return kvi_fail(KVI_ERR_ARG, "%s: noise precision beta = %g must be positive and finite", fn,
                    beta);
  kvi_status s;
  if ((s = blr_finite(X, (size_t)N * n, "X", fn))) return s;
  if ((s = blr_finite(Y, (size_t)N * m, "Y", fn))) return s;
  if ((s = blr_finite(alpha, (size_t)n, "alpha", fn))) return s;
  for (int i = 0; i < n; i++)
    if (alpha[i] < 0)
      return kvi_fail(KVI_ERR_ARG, "%s: prior precision alpha[%d] = %g is negative", fn, i,
                      alpha[i]);

  size_t nn = (size_t)n * n, nm = (size_t)n * m;
  double *P = kvi_alloc((2 * nn + nm) * sizeof(double));
  if (!P) return KVI_ERR_NOMEM;
  double *Ui = P + nn, *XtY = Ui + nn;

  /* P = beta X^T X + diag(alpha) (lower triangle), then its Cholesky. */
  cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, n, N, beta, X, n, 0.0, P, n);
  for (int i = 0; i < n; i++) P[(size_t)i * n + i] += alpha[i];
  s = blr_chol(P, n, "the posterior precision beta X^T X + diag(alpha)", fn);
  if (s) goto done;

  if (M) {
    /* M = P^{-1} (beta X^T Y) by two triangular solves with the Cholesky factor. */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, m, N, beta, X, n, Y, m, 0.0, XtY, m);
    lapack_int info = LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', n, m, P, n, XtY, m);
    if (info != 0) {
      s = kvi_fail(KVI_ERR_LINALG, "%s: solve for the posterior mean failed (info %d)", fn,
                   (int)info);
      goto done;
    }
    memcpy(M, XtY, nm * sizeof(double));
  }
  if (U || U_chol) {
    memcpy(Ui, P, nn * sizeof(double));
    lapack_int info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', n, Ui, n);
    if (info != 0) {
      s = kvi_fail(KVI_ERR_LINALG, "%s: inverting the posterior precision failed (info %d)", fn,
                   (int)info);
      goto done;
    }
    for (int i = 0; i < n; i++)
      for (int j = i + 1; j < n; j++) Ui[(size_t)i * n + j] = Ui[(size_t)j * n + i];
    if (U) memcpy(U, Ui, nn * sizeof(double));
    if (U_chol) {
      memcpy(U_chol, Ui, nn * sizeof(double));
      s = blr_chol(U_chol, n, "the posterior row covariance U", fn);
      if (s) goto done;
    }
  }
done:
  kvi_free(P);
  return s;
}

/* Checks that a (k, k) matrix is finite and symmetric to a relative 1e-10 of its largest entry. */
static kvi_status blr_check_sym(const double *S, int k, const char *what, const char *fn) {
  if (!S) return kvi_fail(KVI_ERR_ARG, "%s: %s is NULL", fn, what);
  kvi_status s = blr_finite(S, (size_t)k * k, what, fn);
  if (s) return s;
  double big = 0;
  for (size_t i = 0; i < (size_t)k * k; i++) big = fmax(big, fabs(S[i]));
  for (int i = 0; i < k; i++)
    for (int j = 0; j < i; j++) {
      double a = S[(size_t)i * k + j], b = S[(size_t)j * k + i];
      if (fabs(a - b) > 1e-10 * big)
        return kvi_fail(KVI_ERR_ARG, "%s: %s is not symmetric ([%d,%d] = %g, [%d,%d] = %g)", fn,
                        what, i, j, a, j, i, b);
    }
  return KVI_OK;
}

static double blr_logdet_chol(const double *L, int k) {
  double s = 0;
  for (int i = 0; i < k; i++) s += log(L[(size_t)i * k + i]);
  return 2 * s;
}

static double blr_frob2(const double *A, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += A[i] * A[i];
  return s;
}

kvi_status kvi_mn_kl_mn_f64(double *out, const double *Mq, const double *Uq, const double *Vq,
                            const double *Mp, const double *Up, const double *Vp, int n, int m) {
  static const char fn[] = "kvi_mn_kl_mn_f64";
  if (n <= 0 || m <= 0)
    return kvi_fail(KVI_ERR_SHAPE, "%s: sizes n = %d, m = %d must be positive", fn, n, m);
  if (!out || !Mq || !Mp) return kvi_fail(KVI_ERR_ARG, "%s: out, Mq or Mp is NULL", fn);
  size_t nn = (size_t)n * n, mm = (size_t)m * m, nm = (size_t)n * m;
  kvi_status s;
  if ((s = blr_finite(Mq, nm, "Mq", fn)) || (s = blr_finite(Mp, nm, "Mp", fn)) ||
      (s = blr_check_sym(Uq, n, "Uq", fn)) || (s = blr_check_sym(Vq, m, "Vq", fn)) ||
      (s = blr_check_sym(Up, n, "Up", fn)) || (s = blr_check_sym(Vp, m, "Vp", fn)))
    return s;

  double *Lup = kvi_alloc((2 * nn + 2 * mm + nm) * sizeof(double));
  if (!Lup) return KVI_ERR_NOMEM;
  double *Luq = Lup + nn, *Lvp = Luq + nn, *Lvq = Lvp + mm, *D = Lvq + mm;
  memcpy(Lup, Up, nn * sizeof(double));
  memcpy(Luq, Uq, nn * sizeof(double));
  memcpy(Lvp, Vp, mm * sizeof(double));
  memcpy(Lvq, Vq, mm * sizeof(double));
  if ((s = blr_chol(Lup, n, "Up", fn)) || (s = blr_chol(Luq, n, "Uq", fn)) ||
      (s = blr_chol(Lvp, m, "Vp", fn)) || (s = blr_chol(Lvq, m, "Vq", fn)))
    goto done;

  double ld_up = blr_logdet_chol(Lup, n), ld_uq = blr_logdet_chol(Luq, n);
  double ld_vp = blr_logdet_chol(Lvp, m), ld_vq = blr_logdet_chol(Lvq, m);

  /* Mahalanobis term: D = Mp - Mq, D <- Lup^{-1} D Lvp^{-T}. */
  for (size_t i = 0; i < nm; i++) D[i] = Mp[i] - Mq[i];
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n, m, 1.0, Lup, n,
              D, m);
  cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, n, m, 1.0, Lvp, m, D,
              m);
  double maha = blr_frob2(D, nm);

  /* Traces: Luq <- Lup^{-1} Luq, Lvq <- Lvp^{-1} Lvq. */
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n, n, 1.0, Lup, n,
              Luq, n);
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, m, m, 1.0, Lvp, m,
              Lvq, m);
  double tr_u = blr_frob2(Luq, nn), tr_v = blr_frob2(Lvq, mm);

  *out = 0.5 * (tr_u * tr_v + maha - (double)nm + m * (ld_up - ld_uq) + n * (ld_vp - ld_vq));
done:
  kvi_free(Lup);
  return s;
}
