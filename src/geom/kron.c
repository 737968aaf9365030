/* Kronecker products U (x) V of two SPD factors (docs/geom.md section 3): the manifold of
 * Kronecker-structured covariances inside the SPD matrices of size nm, with the induced
 * affine-invariant metric, the scale ambiguity (c U, V / c) resolved by a horizontal gauge for
 * tangents and a balance of the factors' determinants for points; and the slides' embedded
 * (Frobenius) projection. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geom/geom_internal.h"

/* s I added to the diagonal of the n x n matrix P. */
static void kvi__add_diag(int n, double *P, double s) {
  for (int i = 0; i < n; i++) P[(size_t)i * n + i] += s;
}

void kvi_kron_horizontal(int n, int m, double *P, double *Q) {
  const double a = kvi__dtrace(n, P) / n, b = kvi__dtrace(m, Q) / m, s = a + b;
  kvi__add_diag(n, P, 0.5 * s - a);
  kvi__add_diag(m, Q, 0.5 * s - b);
}

static double kvi__dot(const double *a, const double *b, size_t n) {
  double t = 0;
  for (size_t i = 0; i < n; i++) t += a[i] * b[i];
  return t;
}

double kvi_kron_inner(int n, int m, const double *P, const double *Q, const double *P2,
                      const double *Q2) {
  /* tr((P (x) I + I (x) Q)(P2 (x) I + I (x) Q2)) for symmetric P, Q, P2, Q2 */
  return m * kvi__dot(P, P2, (size_t)n * n) + n * kvi__dot(Q, Q2, (size_t)m * m) +
         kvi__dtrace(n, P) * kvi__dtrace(m, Q2) + kvi__dtrace(m, Q) * kvi__dtrace(n, P2);
}

void kvi_kron_rgrad(int n, int m, double *P, double *Q, const double *PsiU, const double *PsiV) {
  const double tu = kvi__dtrace(n, PsiU), tv = kvi__dtrace(m, PsiV);
  const double s = 0.5 * (tu + tv) / ((double)n * m);
  for (size_t i = 0; i < (size_t)n * n; i++) P[i] = PsiU[i] / m;
  for (size_t i = 0; i < (size_t)m * m; i++) Q[i] = PsiV[i] / n;
  kvi__add_diag(n, P, -tu / ((double)n * m) + 0.5 * s);
  kvi__add_diag(m, Q, -tv / ((double)n * m) + 0.5 * s);
}

void kvi_kron_balance(int n, int m, double *LU, double *LV) {
  double a = 0, b = 0;
  for (int i = 0; i < n; i++) a += log(LU[(size_t)i * n + i]);
  for (int j = 0; j < m; j++) b += log(LV[(size_t)j * m + j]);
  a *= 2.0 / n, b *= 2.0 / m; /* mean log eigenvalue of U and of V */
  const double c = exp(0.25 * (b - a));
  for (size_t i = 0; i < (size_t)n * n; i++) LU[i] *= c;
  for (size_t i = 0; i < (size_t)m * m; i++) LV[i] /= c;
}

/* L1 = L h(tau(S)) into L1 (w: 2 n^2); false when not finite. */
static bool kvi__chol_step(int n, double *L1, const double *L, const double *S, double *w) {
  double *T = w, *H = w + (size_t)n * n;
  kvi__dtau(n, T, S);
  kvi__dh(n, H, T);
  kvi__dtrmm(false, false, n, n, L, H);
  for (int i = 0; i < n; i++) {
    const double t = T[(size_t)i * n + i];
    H[(size_t)i * n + i] = L[(size_t)i * n + i] * (1 + t + 0.5 * t * t);
    for (int j = i + 1; j < n; j++) H[(size_t)i * n + j] = 0;
  }
  if (!kvi__dfinite(H, (size_t)n * n)) return false;
  memcpy(L1, H, (size_t)n * n * sizeof *L1);
  return true;
}

kvi_status kvi_kron_retract(int n, int m, double *LU, double *LV, const double *P,
                            const double *Q) {
  if (n <= 0 || m <= 0 || !LU || !LV || !P || !Q)
    return kvi_fail(KVI_ERR_ARG, "kron_retract: bad sizes or NULL argument");
  const int k = n > m ? n : m;
  double *w = malloc((4 * (size_t)k * k + (size_t)n * n + (size_t)m * m) * sizeof *w);
  if (!w) return kvi_fail(KVI_ERR_NOMEM, "kron_retract: out of memory");
  double *U1 = w + 2 * (size_t)k * k, *V1 = U1 + (size_t)n * n;
  bool ok = kvi__chol_step(n, U1, LU, P, w) && kvi__chol_step(m, V1, LV, Q, w);
  if (ok) {
    kvi_kron_balance(n, m, U1, V1);
    ok = kvi__dfinite(U1, (size_t)n * n) && kvi__dfinite(V1, (size_t)m * m);
  }
  if (ok) {
    memcpy(LU, U1, (size_t)n * n * sizeof *LU);
    memcpy(LV, V1, (size_t)m * m * sizeof *LV);
  }
  free(w);
  return ok ? KVI_OK : kvi_fail(KVI_ERR_LINALG, "kron_retract: the step is not finite (rejected)");
}

void kvi_kron_to_ambient(int n, int m, double *X, double *Y, const double *LU, const double *LV,
                         const double *P, const double *Q) {
  kvi__dunwhiten(n, X, LU, P);
  kvi__dunwhiten(m, Y, LV, Q);
}

kvi_status kvi_kron_from_ambient(int n, int m, double *P, double *Q, const double *LU,
                                 const double *LV, const double *X, const double *Y) {
  if (n <= 0 || m <= 0 || !P || !Q || !LU || !LV || !X || !Y)
    return kvi_fail(KVI_ERR_ARG, "kron_from_ambient: bad sizes or NULL argument");
  kvi__dwhiten(n, P, LU, X);
  kvi__dwhiten(m, Q, LV, Y);
  return KVI_OK;
}

kvi_status kvi_kron_proj_frobenius(int n, int m, double *dX, double *dY, const double *X,
                                   const double *Y, const double *Z) {
  if (n <= 0 || m <= 0 || !dX || !dY || !X || !Y || !Z)
    return kvi_fail(KVI_ERR_ARG, "kron_proj_frobenius: bad sizes or NULL argument");
  const double xx = kvi__dot(X, X, (size_t)n * n), yy = kvi__dot(Y, Y, (size_t)m * m);
  if (!(xx > 0) || !(yy > 0)) return kvi_fail(KVI_ERR_ARG, "kron_proj_frobenius: X or Y is zero");
  const size_t N = (size_t)n * m;
  /* Z1_ik = sum_jl Z_(ij),(kl) Y_jl = d<Z, X (x) Y>/dX; Z2_jl = sum_ik Z_(ij),(kl) X_ik */
  memset(dX, 0, (size_t)n * n * sizeof *dX);
  memset(dY, 0, (size_t)m * m * sizeof *dY);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++)
      for (int k = 0; k < n; k++)
        for (int l = 0; l < m; l++) {
          const double z = Z[((size_t)i * m + j) * N + (size_t)k * m + l];
          dX[(size_t)i * n + k] += z * Y[(size_t)j * m + l];
          dY[(size_t)j * m + l] += z * X[(size_t)i * n + k];
        }
  /* the slides' solution: dY = Z2 / <X, X>, dX = (Z1 - X <Y, dY>) / <Y, Y> */
  for (size_t i = 0; i < (size_t)m * m; i++) dY[i] /= xx;
  const double ydy = kvi__dot(Y, dY, (size_t)m * m);
  for (size_t i = 0; i < (size_t)n * n; i++) dX[i] = (dX[i] - X[i] * ydy) / yy;
  return KVI_OK;
}
