/* The Stiefel manifold St(n, p) = {X : X^T X = I_p} with the embedded metric (docs/geom.md
 * section 4): tangent projection (also the Riemannian gradient and the transport by projection)
 * and the QR and polar retractions, each rejecting a rank-deficient or non-finite X + t Z. */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geom/geom_internal.h"

#define KVI__ST_MIN_SV 1e-10 /* smallest / largest singular value of X + t Z */

static kvi_status kvi__st_args(int n, int p, const void *a, const void *b, const void *c) {
  if (p <= 0 || n < p || !a || !b || !c)
    return kvi_fail(KVI_ERR_ARG, "stiefel: n = %d, p = %d (need 0 < p <= n) or NULL argument", n,
                    p);
  return KVI_OK;
}

kvi_status kvi_stiefel_proj(int n, int p, double *Y, const double *X, const double *Z) {
  kvi_status s = kvi__st_args(n, p, Y, X, Z);
  if (s) return s;
  double *C = malloc((size_t)p * p * sizeof *C);
  if (!C) return kvi_fail(KVI_ERR_NOMEM, "stiefel_proj: out of memory");
  kvi__dgemm(true, false, p, p, n, 1, X, Z, 0, C); /* X^T Z */
  kvi__dsym(p, C);
  if (Y != Z) memcpy(Y, Z, (size_t)n * p * sizeof *Y);
  kvi__dgemm(false, false, n, p, p, -1, X, C, 1, Y); /* Z - X sym(X^T Z) */
  free(C);
  return KVI_OK;
}

double kvi_stiefel_error(int n, int p, const double *X) {
  double e = 0;
  for (int i = 0; i < p; i++)
    for (int j = 0; j < p; j++) {
      double s = 0;
      for (int k = 0; k < n; k++) s += X[(size_t)k * p + i] * X[(size_t)k * p + j];
      e = fmax(e, fabs(s - (i == j)));
    }
  return e;
}

/* A = X + t Z into a fresh buffer (NULL on failure with a message). */
static double *kvi__st_sum(int n, int p, const double *X, const double *Z, double t) {
  double *A = malloc(((size_t)n * p + (size_t)p * p + 2 * (size_t)p) * sizeof *A);
  if (!A) {
    kvi_fail(KVI_ERR_NOMEM, "stiefel: out of memory");
    return NULL;
  }
  for (size_t i = 0; i < (size_t)n * p; i++) A[i] = X[i] + t * Z[i];
  return A;
}

kvi_status kvi_stiefel_retract_qr(int n, int p, double *X1, const double *X, const double *Z,
                                  double t) {
  kvi_status s = kvi__st_args(n, p, X1, X, Z);
  if (s) return s;
  double *A = kvi__st_sum(n, p, X, Z, t);
  if (!A) return KVI_ERR_NOMEM;
  double *tau = A + (size_t)n * p, *r = tau + p;
  bool ok =
      kvi__dfinite(A, (size_t)n * p) && LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, n, p, A, p, tau) == 0;
  double lo = INFINITY, hi = 0;
  for (int j = 0; ok && j < p; j++) {
    r[j] = A[(size_t)j * p + j];
    lo = fmin(lo, fabs(r[j])), hi = fmax(hi, fabs(r[j]));
  }
  ok = ok && lo > KVI__ST_MIN_SV * hi && LAPACKE_dorgqr(LAPACK_ROW_MAJOR, n, p, p, A, p, tau) == 0;
  if (ok) { /* qf with R's diagonal positive: flip the columns of Q where R_jj < 0 */
    for (int i = 0; i < n; i++)
      for (int j = 0; j < p; j++) A[(size_t)i * p + j] *= r[j] < 0 ? -1 : 1;
    ok = kvi__dfinite(A, (size_t)n * p);
  }
  if (ok) memcpy(X1, A, (size_t)n * p * sizeof *X1);
  free(A);
  return ok ? KVI_OK
            : kvi_fail(KVI_ERR_LINALG,
                       "stiefel_retract_qr: X + tZ is not finite or rank-deficient (rejected)");
}

static double kvi__inv_sqrt(double x) { return 1 / sqrt(x); }

kvi_status kvi_stiefel_retract_polar(int n, int p, double *X1, const double *X, const double *Z,
                                     double t) {
  kvi_status s = kvi__st_args(n, p, X1, X, Z);
  if (s) return s;
  double *A = kvi__st_sum(n, p, X, Z, t);
  double *w = malloc((3 * (size_t)p * p + (size_t)p) * sizeof *w);
  if (!A || !w) {
    free(A), free(w);
    return kvi_fail(KVI_ERR_NOMEM, "stiefel: out of memory");
  }
  double *C = w, *E = w + (size_t)p * p, *ev = E + 2 * (size_t)p * p;
  bool ok = kvi__dfinite(A, (size_t)n * p);
  if (ok) {
    kvi__dgemm(true, false, p, p, n, 1, A, A, 0, C); /* A^T A */
    memcpy(E, C, (size_t)p * p * sizeof *E);
    ok = kvi__dsyev(p, E, ev) && ev[0] > KVI__ST_MIN_SV * KVI__ST_MIN_SV * ev[p - 1];
  }
  if (ok) ok = kvi__dfunm_sym(p, C, C, kvi__inv_sqrt, E); /* (A^T A)^{-1/2} */
  if (ok) {
    double *Y = malloc((size_t)n * p * sizeof *Y);
    if (!Y)
      ok = false;
    else {
      kvi__dgemm(false, false, n, p, p, 1, A, C, 0, Y);
      ok = kvi__dfinite(Y, (size_t)n * p);
      if (ok) memcpy(X1, Y, (size_t)n * p * sizeof *X1);
      free(Y);
    }
  }
  free(A), free(w);
  return ok ? KVI_OK
            : kvi_fail(KVI_ERR_LINALG,
                       "stiefel_retract_polar: X + tZ is not finite or rank-deficient (rejected)");
}
