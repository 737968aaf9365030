/* SPD matrices with the affine-invariant metric (docs/geom.md section 1), and the log-Cholesky
 * metric of the Cholesky parameterization (section 2). Points are held by their lower Cholesky
 * factor L; tangent vectors are symmetric matrices in ambient coordinates. Most operations go
 * through the whitened coordinates S = L^-1 X L^-T, in which the metric at U is Frobenius. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geom/geom_internal.h"

#define KVI__PSD_MAX_RATIO 1e8 /* max/min Cholesky diagonal: condition number 1e16 */

static double *kvi__work(size_t n) {
  double *w = malloc((n ? n : 1) * sizeof *w);
  if (!w) kvi_fail(KVI_ERR_NOMEM, "geom: out of memory (%zu doubles)", n);
  return w;
}

static kvi_status kvi__psd_args(int n, const void *a, const void *b) {
  if (n <= 0 || !a || !b) return kvi_fail(KVI_ERR_ARG, "psd: n = %d or a NULL argument", n);
  return KVI_OK;
}

kvi_status kvi_psd_chol(int n, double *L, const double *U) {
  kvi_status s = kvi__psd_args(n, L, U);
  if (s) return s;
  double *A = kvi__work((size_t)n * n);
  if (!A) return KVI_ERR_NOMEM;
  memcpy(A, U, (size_t)n * n * sizeof *A);
  kvi__dsym(n, A);
  bool ok = kvi__dchol(n, A);
  if (ok) memcpy(L, A, (size_t)n * n * sizeof *A);
  free(A);
  return ok ? KVI_OK
            : kvi_fail(KVI_ERR_LINALG, "psd: the %d x %d matrix is not positive definite", n, n);
}

void kvi_psd_from_chol(int n, double *U, const double *L) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j <= i; j++) {
      double s = 0;
      for (int k = 0; k <= j; k++) s += L[(size_t)i * n + k] * L[(size_t)j * n + k];
      U[(size_t)i * n + j] = U[(size_t)j * n + i] = s;
    }
}

kvi_status kvi_psd_inner(double *out, int n, const double *L, const double *X, const double *Y) {
  kvi_status s = kvi__psd_args(n, L, X);
  if (s || !Y || !out) return s ? s : kvi_fail(KVI_ERR_ARG, "psd_inner: NULL argument");
  double *w = kvi__work(2 * (size_t)n * n);
  if (!w) return KVI_ERR_NOMEM;
  double *SX = w, *SY = w + (size_t)n * n;
  kvi__dwhiten(n, SX, L, X);
  kvi__dwhiten(n, SY, L, Y);
  double t = 0;
  for (size_t i = 0; i < (size_t)n * n; i++) t += SX[i] * SY[i]; /* tr(SX SY), both symmetric */
  free(w);
  *out = t;
  return KVI_OK;
}

void kvi_psd_proj(int n, double *X, const double *Z) {
  if (X != Z) memcpy(X, Z, (size_t)n * n * sizeof *X);
  kvi__dsym(n, X);
}

kvi_status kvi_psd_rgrad(int n, double *R, const double *L, const double *G) {
  kvi_status s = kvi__psd_args(n, L, G);
  if (s || !R) return s ? s : kvi_fail(KVI_ERR_ARG, "psd_rgrad: NULL argument");
  double *T = kvi__work((size_t)n * n);
  if (!T) return KVI_ERR_NOMEM;
  kvi_psd_proj(n, T, G);
  kvi__dtrmm(false, true, n, n, L, T); /* L^T G */
  kvi__dtrmm(true, false, n, n, L, T); /* L^T G L: the whitened gradient */
  kvi__dunwhiten(n, T, L, T);          /* L (L^T G L) L^T = U G U */
  memcpy(R, T, (size_t)n * n * sizeof *R);
  free(T);
  return KVI_OK;
}

static double kvi__half_exp(double x) { return exp(0.5 * x); }

/* out = L f(L^-1 X L^-T) L^T for a scalar function f. */
static kvi_status kvi__psd_funm(int n, double *out, const double *L, const double *X,
                                double (*f)(double), const char *what) {
  kvi_status s = kvi__psd_args(n, L, X);
  if (s || !out) return s ? s : kvi_fail(KVI_ERR_ARG, "%s: NULL argument", what);
  double *w = kvi__work(3 * (size_t)n * n + (size_t)n);
  if (!w) return KVI_ERR_NOMEM;
  double *S = w, *F = w + (size_t)n * n;
  kvi__dwhiten(n, S, L, X);
  bool ok = kvi__dfunm_sym(n, F, S, f, F + (size_t)n * n);
  if (ok) kvi__dunwhiten(n, F, L, F);
  ok = ok && kvi__dfinite(F, (size_t)n * n);
  if (ok) memcpy(out, F, (size_t)n * n * sizeof *out);
  free(w);
  return ok ? KVI_OK : kvi_fail(KVI_ERR_LINALG, "%s: the matrix function is not finite", what);
}

kvi_status kvi_psd_exp(int n, double *Unew, const double *L, const double *X) {
  return kvi__psd_funm(n, Unew, L, X, exp, "psd_exp");
}

static double kvi__log_pos(double x) { return x > 0 ? log(x) : NAN; }

kvi_status kvi_psd_log(int n, double *X, const double *L, const double *V) {
  return kvi__psd_funm(n, X, L, V, kvi__log_pos, "psd_log");
}

kvi_status kvi_psd_dist(double *d, int n, const double *L, const double *V) {
  kvi_status s = kvi__psd_args(n, L, V);
  if (s || !d) return s ? s : kvi_fail(KVI_ERR_ARG, "psd_dist: NULL argument");
  double *w = kvi__work((size_t)n * n + (size_t)n);
  if (!w) return KVI_ERR_NOMEM;
  kvi__dwhiten(n, w, L, V);
  bool ok = kvi__dsyev(n, w, w + (size_t)n * n);
  double t = 0;
  for (int i = 0; ok && i < n; i++) {
    double e = w[(size_t)n * n + i];
    ok = e > 0;
    t += log(e) * log(e);
  }
  free(w);
  if (!ok) return kvi_fail(KVI_ERR_LINALG, "psd_dist: V is not positive definite");
  *d = sqrt(t);
  return KVI_OK;
}

kvi_status kvi_psd_transport(int n, double *Y, const double *L, const double *X, const double *Z) {
  kvi_status s = kvi__psd_args(n, L, X);
  if (s || !Z || !Y) return s ? s : kvi_fail(KVI_ERR_ARG, "psd_transport: NULL argument");
  double *w = kvi__work(4 * (size_t)n * n + (size_t)n);
  if (!w) return KVI_ERR_NOMEM;
  double *S = w, *E = w + (size_t)n * n, *SZ = E + (size_t)n * n, *T = SZ + (size_t)n * n;
  kvi__dwhiten(n, S, L, X);
  bool ok = kvi__dfunm_sym(n, E, S, kvi__half_exp, T); /* expm(S/2) */
  if (ok) {
    kvi__dwhiten(n, SZ, L, Z);
    kvi__dgemm(false, false, n, n, n, 1, E, SZ, 0, T); /* E SZ E: whitened transport */
    kvi__dgemm(false, false, n, n, n, 1, T, E, 0, SZ);
    kvi__dunwhiten(n, SZ, L, SZ);
    ok = kvi__dfinite(SZ, (size_t)n * n);
    if (ok) memcpy(Y, SZ, (size_t)n * n * sizeof *Y);
  }
  free(w);
  return ok ? KVI_OK : kvi_fail(KVI_ERR_LINALG, "psd_transport: not finite");
}

kvi_status kvi_psd_transport_frame(int n, double *Y, const double *L0, const double *L1,
                                   const double *Z) {
  kvi_status s = kvi__psd_args(n, L0, L1);
  if (s || !Z || !Y) return s ? s : kvi_fail(KVI_ERR_ARG, "psd_transport_frame: NULL argument");
  double *S = kvi__work((size_t)n * n);
  if (!S) return KVI_ERR_NOMEM;
  kvi__dwhiten(n, S, L0, Z);
  kvi__dunwhiten(n, Y, L1, S);
  free(S);
  return KVI_OK;
}

/* The candidate factor L1 of R_U(t X); false when it is not finite, not positive definite or
 * too ill-conditioned. w: 3 n^2 + n doubles. */
static bool kvi__retract_try(int n, kvi_psd_retraction r, double *L1, const double *L,
                             const double *S, const double *X, double t, double *w) {
  const size_t nn = (size_t)n * n;
  double *tS = w, *F = w + nn, *T = F + nn; /* T: n^2 + n (the eigen-solver's work) */
  for (size_t i = 0; i < nn; i++) tS[i] = t * S[i];
  switch (r) {
    case KVI_PSD_EXP:
      if (!kvi__dfunm_sym(n, F, tS, exp, T)) return false;
      kvi__dunwhiten(n, L1, L, F);
      if (!kvi__dchol(n, L1)) return false;
      break;
    case KVI_PSD_RETR2:
      kvi__dh(n, F, tS); /* symmetric, >= I/2 */
      kvi__dsym(n, F);
      kvi__dunwhiten(n, L1, L, F);
      if (!kvi__dchol(n, L1)) return false;
      break;
    case KVI_PSD_CHOL:
      kvi__dtau(n, T, tS);
      kvi__dh(n, F, T); /* lower triangular */
      memcpy(L1, F, nn * sizeof *L1);
      kvi__dtrmm(false, false, n, n, L, L1); /* L h(tau(tS)) */
      for (int i = 0; i < n; i++)            /* the diagonal exactly: L_ii (1 + m + m^2/2) > 0 */
        L1[(size_t)i * n + i] =
            L[(size_t)i * n + i] *
            (1 + T[(size_t)i * n + i] + 0.5 * T[(size_t)i * n + i] * T[(size_t)i * n + i]);
      break;
    case KVI_PSD_EUCLID:
      kvi_psd_from_chol(n, L1, L);
      for (size_t i = 0; i < nn; i++) L1[i] += t * X[i];
      kvi__dsym(n, L1);
      if (!kvi__dchol(n, L1)) return false;
      break;
  }
  if (!kvi__dfinite(L1, nn)) return false;
  double lo = INFINITY, hi = 0;
  for (int i = 0; i < n; i++) {
    double d = L1[(size_t)i * n + i];
    if (!(d > 0)) return false;
    lo = fmin(lo, d), hi = fmax(hi, d);
  }
  return hi <= KVI__PSD_MAX_RATIO * lo;
}

kvi_status kvi_psd_retract(int n, kvi_psd_retraction r, double *L1, const double *L,
                           const double *X, int max_halvings, double *t_used) {
  kvi_status s = kvi__psd_args(n, L, X);
  if (s || !L1) return s ? s : kvi_fail(KVI_ERR_ARG, "psd_retract: NULL argument");
  if (r < KVI_PSD_EXP || r > KVI_PSD_EUCLID || max_halvings < 0)
    return kvi_fail(KVI_ERR_ARG, "psd_retract: retraction %d, max_halvings %d", (int)r,
                    max_halvings);
  const size_t nn = (size_t)n * n;
  double *w = kvi__work(5 * nn + (size_t)n);
  if (!w) return KVI_ERR_NOMEM;
  double *S = w, *C = w + nn, *tw = C + nn;
  kvi__dwhiten(n, S, L, X);
  double t = 1;
  bool ok = kvi__dfinite(S, nn);
  for (int h = 0; ok && h <= max_halvings; h++, t *= 0.5)
    if (kvi__retract_try(n, r, C, L, S, X, t, tw)) break;
  ok = ok && t >= ldexp(1.0, -max_halvings);
  if (ok)
    memcpy(L1, C, nn * sizeof *L1);
  else if (L1 != L)
    memcpy(L1, L, nn * sizeof *L1);
  free(w);
  if (t_used) *t_used = ok ? t : 0;
  return ok ? KVI_OK
            : kvi_fail(KVI_ERR_LINALG,
                       "psd_retract: the step leaves the manifold after %d halvings (rejected)",
                       max_halvings);
}

/* ---- log-Cholesky ------------------------------------------------------------------------- */
double kvi_logchol_inner(int n, const double *L, const double *X, const double *Y) {
  double t = 0;
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < i; j++) t += X[(size_t)i * n + j] * Y[(size_t)i * n + j];
    const double d = L[(size_t)i * n + i];
    t += X[(size_t)i * n + i] * Y[(size_t)i * n + i] / (d * d);
  }
  return t;
}

void kvi_logchol_rgrad(int n, double *R, const double *L, const double *G) {
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < n; j++) R[(size_t)i * n + j] = j < i ? G[(size_t)i * n + j] : 0;
    const double d = L[(size_t)i * n + i];
    R[(size_t)i * n + i] = d * d * G[(size_t)i * n + i];
  }
}

void kvi_logchol_exp(int n, double *L1, const double *L, const double *X) {
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < n; j++)
      L1[(size_t)i * n + j] = j < i ? L[(size_t)i * n + j] + X[(size_t)i * n + j] : 0;
    const double d = L[(size_t)i * n + i];
    L1[(size_t)i * n + i] = d * exp(X[(size_t)i * n + i] / d);
  }
}

void kvi_logchol_transport(int n, double *Y, const double *L0, const double *L1, const double *X) {
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < n; j++) Y[(size_t)i * n + j] = j < i ? X[(size_t)i * n + j] : 0;
    Y[(size_t)i * n + i] = X[(size_t)i * n + i] * L1[(size_t)i * n + i] / L0[(size_t)i * n + i];
  }
}
