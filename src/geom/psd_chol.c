/* The Riemannian optimizers' hot path on kronvi's Cholesky storage, in kvi_real (docs/geom.md
 * (G14) and (G8)): the whitened Euclidean gradient L^T G L from the storage gradient, and the
 * Cholesky retraction L <- L h(tau(S)). Three triangular products per factor and step, BLAS. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "kronvi/geom.h"

/* L from the storage: strict lower as is, diagonal exp, upper zero. */
static void kvi__materialize(kvi_real *L, const kvi_real *P, int n) {
  for (int i = 0; i < n; i++) {
    const kvi_real *p = P + (size_t)i * n;
    kvi_real *l = L + (size_t)i * n;
    memcpy(l, p, (size_t)i * sizeof *l);
    l[i] = KVI_EXP(p[i]);
    if (i + 1 < n) memset(l + i + 1, 0, (size_t)(n - i - 1) * sizeof *l);
  }
}

void kvi_psd_chol_whiten(int n, kvi_real *Psi, const kvi_real *P, const kvi_real *dP,
                         kvi_real *work) {
  kvi_real *L = work;
  kvi__materialize(L, P, n);
  /* Lbar: the gradient with respect to L (lower); d/da_i = L_ii d/dL_ii */
  for (int i = 0; i < n; i++) {
    kvi_real *r = Psi + (size_t)i * n;
    memcpy(r, dP + (size_t)i * n, (size_t)i * sizeof *r);
    r[i] = dP[(size_t)i * n + i] / L[(size_t)i * n + i];
    if (i + 1 < n) memset(r + i + 1, 0, (size_t)(n - i - 1) * sizeof *r);
  }
  kvi_trmm(false, true, false, n, n, 1, L, n, Psi, n); /* Z = L^T Lbar */
  /* the lower triangle of Z is that of 2 L^T G L: halve it and mirror */
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < i; j++) {
      const kvi_real v = (kvi_real)0.5 * Psi[(size_t)i * n + j];
      Psi[(size_t)i * n + j] = Psi[(size_t)j * n + i] = v;
    }
    Psi[(size_t)i * n + i] *= (kvi_real)0.5;
  }
}

kvi_status kvi_psd_chol_retract(int n, kvi_real *P, const kvi_real *S, kvi_real *work) {
  const size_t nn = (size_t)n * n;
  kvi_real *L = work, *M = work + nn, *H = M + nn;
  kvi__materialize(L, P, n);
  for (int i = 0; i < n; i++) { /* M = tau(S), lower triangular */
    kvi_real *r = M + (size_t)i * n;
    memcpy(r, S + (size_t)i * n, (size_t)i * sizeof *r);
    r[i] = (kvi_real)0.5 * S[(size_t)i * n + i];
    if (i + 1 < n) memset(r + i + 1, 0, (size_t)(n - i - 1) * sizeof *r);
  }
  memcpy(H, M, nn * sizeof *H);
  kvi_trmm(false, false, false, n, n, (kvi_real)0.5, M, n, H, n); /* M^2 / 2 */
  for (size_t i = 0; i < nn; i++) H[i] += M[i];
  for (int i = 0; i < n; i++) H[(size_t)i * n + i] += 1; /* h(M) */
  kvi_trmm(false, false, false, n, n, 1, L, n, H, n);    /* L h(M) */
  for (size_t i = 0; i < nn; i++)
    if (!isfinite(H[i])) return kvi_fail(KVI_ERR_NONFINITE, "psd_chol_retract: step not finite");
  for (int i = 0; i < n; i++) {
    const double m = M[(size_t)i * n + i], g = 1 + m + 0.5 * m * m; /* >= 1/2 */
    memcpy(P + (size_t)i * n, H + (size_t)i * n, (size_t)i * sizeof *P);
    P[(size_t)i * n + i] = (kvi_real)((double)P[(size_t)i * n + i] + log(g));
  }
  return KVI_OK;
}

kvi_status kvi_lie_tril_step(int n, kvi_real *K, const kvi_real *M, kvi_real *work) {
  const size_t nn = (size_t)n * n;
  kvi_real *H = work;
  memcpy(H, M, nn * sizeof *H);
  kvi_trmm(false, false, false, n, n, (kvi_real)0.5, M, n, H, n); /* M^2 / 2 */
  for (size_t i = 0; i < nn; i++) H[i] += M[i];
  for (int i = 0; i < n; i++) H[(size_t)i * n + i] += 1;
  kvi_trmm(false, false, false, n, n, 1, K, n, H, n); /* K h(M) */
  for (size_t i = 0; i < nn; i++)
    if (!isfinite(H[i])) return kvi_fail(KVI_ERR_NONFINITE, "lie_tril_step: step not finite");
  for (int i = 0; i < n; i++) /* zero above the diagonal, whatever BLAS left there */
    for (int j = i + 1; j < n; j++) H[(size_t)i * n + j] = 0;
  memcpy(K, H, nn * sizeof *K);
  return KVI_OK;
}
