/* Full-covariance Gaussian N(mu, L L^T) with L (d, d) in the Cholesky parameter storage of
 * prob.h: entries strictly below the diagonal are raw, the diagonal holds log L_ii, entries above
 * the diagonal are ignored (never read for values, never given gradients).
 *
 * Every quantity is accumulated in double whatever kvi_real is. The cost is O(d^2) per call
 * (triangular solves and products done by loops over the parameter storage, so nothing has to
 * be materialized); gradients are added (+=), times gscale where the function takes one.
 *
 * Gradients w.r.t. the storage: for a function f of the materialized L, df/dP_ij = df/dL_ij
 * below the diagonal and df/dP_ii = L_ii df/dL_ii on it (L_ii = exp P_ii). */
#include <math.h>
#include <stdlib.h>

#include "kronvi/prob.h"

#define MVN_LOG_2PI 1.8378770664093454836
#define MVN_STACK 256 /* vectors up to this many doubles live on the stack */

/* L_ij of the materialized factor, j <= i. */
static inline double mvn_l(const kvi_real *P, int d, int i, int j) {
  double p = (double)P[(size_t)i * d + j];
  return i == j ? exp(p) : p;
}

/* Validates the distribution: sizes, pointers, finite mean and lower triangle, and a diagonal
 * exp(log L_ii) that is a finite positive number. */
static kvi_status mvn_check(const kvi_mvn *q, const char *fn) {
  if (!q) return kvi_fail(KVI_ERR_ARG, "%s: distribution is NULL", fn);
  if (q->d <= 0) return kvi_fail(KVI_ERR_ARG, "%s: dimension d = %d must be positive", fn, q->d);
  if (!q->mu || !q->L) return kvi_fail(KVI_ERR_ARG, "%s: mu or L is NULL", fn);
  int d = q->d;
  for (int i = 0; i < d; i++) {
    if (!isfinite((double)q->mu[i]))
      return kvi_fail(KVI_ERR_NONFINITE, "%s: mu[%d] = %g is not finite", fn, i, (double)q->mu[i]);
    for (int j = 0; j <= i; j++) {
      double p = (double)q->L[(size_t)i * d + j];
      if (!isfinite(p))
        return kvi_fail(KVI_ERR_NONFINITE, "%s: L[%d,%d] = %g is not finite", fn, i, j, p);
    }
    double lii = exp((double)q->L[(size_t)i * d + i]);
    if (!isfinite(lii) || !(lii > 0))
      return kvi_fail(KVI_ERR_NONFINITE,
                      "%s: diagonal log L[%d,%d] = %g gives L_ii = %g (overflow/underflow)", fn, i,
                      i, (double)q->L[(size_t)i * d + i], lii);
  }
  return KVI_OK;
}

static kvi_status mvn_check_vec(const kvi_real *x, int d, const char *what, const char *fn) {
  if (!x) return kvi_fail(KVI_ERR_ARG, "%s: %s is NULL", fn, what);
  for (int i = 0; i < d; i++)
    if (!isfinite((double)x[i]))
      return kvi_fail(KVI_ERR_NONFINITE, "%s: %s[%d] = %g is not finite", fn, what, i,
                      (double)x[i]);
  return KVI_OK;
}

static kvi_status mvn_check_gscale(kvi_real gscale, const char *fn) {
  if (!isfinite((double)gscale))
    return kvi_fail(KVI_ERR_NONFINITE, "%s: gscale = %g is not finite", fn, (double)gscale);
  return KVI_OK;
}

/* z = mu + L eps. Rows are formed from the last to the first, so z may alias eps. */
kvi_status kvi_mvn_sample(kvi_real *z, const kvi_mvn *q, const kvi_real *eps) {
  static const char fn[] = "kvi_mvn_sample";
  kvi_status s = mvn_check(q, fn);
  if (s) return s;
  if (!z) return kvi_fail(KVI_ERR_ARG, "%s: output z is NULL", fn);
  if ((s = mvn_check_vec(eps, q->d, "eps", fn))) return s;
  int d = q->d;
  for (int i = d - 1; i >= 0; i--) {
    const kvi_real *row = q->L + (size_t)i * d;
    double acc = (double)q->mu[i] + exp((double)row[i]) * (double)eps[i];
    for (int j = 0; j < i; j++) acc += (double)row[j] * (double)eps[j];
    z[i] = (kvi_real)acc;
  }
  return KVI_OK;
}

/* dmu += dz; dL_ij += dz_i eps_j (j < i); dlogL_ii += dz_i eps_i L_ii. */
kvi_status kvi_mvn_sample_backward(kvi_mvn_grad *g, const kvi_real *dz, const kvi_mvn *q,
                                   const kvi_real *eps) {
  static const char fn[] = "kvi_mvn_sample_backward";
  kvi_status s = mvn_check(q, fn);
  if (s) return s;
  if ((s = mvn_check_vec(eps, q->d, "eps", fn))) return s;
  if ((s = mvn_check_vec(dz, q->d, "dz", fn))) return s;
  if (!g) return KVI_OK; /* nothing wanted */
  int d = q->d;
  if (g->mu)
    for (int i = 0; i < d; i++) g->mu[i] = (kvi_real)((double)g->mu[i] + (double)dz[i]);
  if (g->L)
    for (int i = 0; i < d; i++) {
      const kvi_real *row = q->L + (size_t)i * d;
      kvi_real *grow = g->L + (size_t)i * d;
      double dzi = (double)dz[i];
      for (int j = 0; j < i; j++) grow[j] = (kvi_real)((double)grow[j] + dzi * (double)eps[j]);
      grow[i] = (kvi_real)((double)grow[i] + dzi * (double)eps[i] * exp((double)row[i]));
    }
  return KVI_OK;
}

/* log N(z; mu, L L^T) = -1/2 |v|^2 - sum log L_ii - d/2 log 2 pi, v = L^{-1}(z - mu).
 * With w = L^{-T} v: d/dz = -w, d/dmu = w, d/dL = w v^T - diag(1/L_ii) (lower part). */
kvi_status kvi_mvn_log_prob(double *out, const kvi_mvn *q, const kvi_real *z, kvi_mvn_grad *g,
                            kvi_real *dz, kvi_real gscale) {
  static const char fn[] = "kvi_mvn_log_prob";
  kvi_status s = mvn_check(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: output is NULL", fn);
  if ((s = mvn_check_vec(z, q->d, "z", fn))) return s;
  if ((s = mvn_check_gscale(gscale, fn))) return s;
  int d = q->d;
  const kvi_real *P = q->L;
  bool want_grad = dz || (g && (g->mu || g->L));

  double stack[2 * MVN_STACK];
  double *v = stack;
  if (d > MVN_STACK) {
    v = kvi_alloc(2 * (size_t)d * sizeof(double));
    if (!v) return KVI_ERR_NOMEM;
  }
  double *w = v + d;

  /* forward substitution L v = z - mu */
  double quad = 0, logdet = 0;
  for (int i = 0; i < d; i++) {
    const kvi_real *row = P + (size_t)i * d;
    double acc = (double)z[i] - (double)q->mu[i];
    for (int j = 0; j < i; j++) acc -= (double)row[j] * v[j];
    v[i] = acc / exp((double)row[i]);
    quad += v[i] * v[i];
    logdet += (double)row[i];
  }
  *out = -0.5 * quad - logdet - 0.5 * d * MVN_LOG_2PI;

  if (want_grad) {
    /* backward substitution L^T w = v */
    for (int i = d - 1; i >= 0; i--) {
      double acc = v[i];
      for (int k = i + 1; k < d; k++) acc -= (double)P[(size_t)k * d + i] * w[k];
      w[i] = acc / exp((double)P[(size_t)i * d + i]);
    }
    double gs = (double)gscale;
    if (dz)
      for (int i = 0; i < d; i++) dz[i] = (kvi_real)((double)dz[i] - gs * w[i]);
    if (g && g->mu)
      for (int i = 0; i < d; i++) g->mu[i] = (kvi_real)((double)g->mu[i] + gs * w[i]);
    if (g && g->L)
      for (int i = 0; i < d; i++) {
        kvi_real *grow = g->L + (size_t)i * d;
        double gwi = gs * w[i];
        for (int j = 0; j < i; j++) grow[j] = (kvi_real)((double)grow[j] + gwi * v[j]);
        double lii = exp((double)P[(size_t)i * d + i]);
        grow[i] = (kvi_real)((double)grow[i] + gs * (lii * w[i] * v[i] - 1.0));
      }
  }
  if (v != stack) kvi_free(v);
  return KVI_OK;
}

/* H = d/2 (1 + log 2 pi) + sum log L_ii; dH/dlogL_ii = 1. */
kvi_status kvi_mvn_entropy(double *out, const kvi_mvn *q, kvi_mvn_grad *g, kvi_real gscale) {
  static const char fn[] = "kvi_mvn_entropy";
  kvi_status s = mvn_check(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: output is NULL", fn);
  if ((s = mvn_check_gscale(gscale, fn))) return s;
  int d = q->d;
  double logdet = 0;
  for (int i = 0; i < d; i++) logdet += (double)q->L[(size_t)i * d + i];
  *out = 0.5 * d * (1.0 + MVN_LOG_2PI) + logdet;
  if (g && g->L)
    for (int i = 0; i < d; i++) {
      kvi_real *gii = g->L + (size_t)i * d + i;
      *gii = (kvi_real)((double)*gii + (double)gscale);
    }
  return KVI_OK;
}

/* KL(N(mu, L L^T) || N(0, I)) = 1/2 [|L|_F^2 + |mu|^2 - d - 2 sum log L_ii].
 * d/dmu = mu, d/dL_ij = L_ij (j < i), d/dlogL_ii = L_ii^2 - 1. */
kvi_status kvi_mvn_kl_std(double *out, const kvi_mvn *q, kvi_mvn_grad *g, kvi_real gscale) {
  static const char fn[] = "kvi_mvn_kl_std";
  kvi_status s = mvn_check(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: output is NULL", fn);
  if ((s = mvn_check_gscale(gscale, fn))) return s;
  int d = q->d;
  double gs = (double)gscale;
  double tr = 0, mu2 = 0, logdet = 0;
  for (int i = 0; i < d; i++) {
    const kvi_real *row = q->L + (size_t)i * d;
    for (int j = 0; j < i; j++) tr += (double)row[j] * (double)row[j];
    double lii = mvn_l(q->L, d, i, i);
    tr += lii * lii;
    logdet += (double)row[i];
    mu2 += (double)q->mu[i] * (double)q->mu[i];
  }
  *out = 0.5 * (tr + mu2 - d) - logdet;
  if (g && g->mu)
    for (int i = 0; i < d; i++) g->mu[i] = (kvi_real)((double)g->mu[i] + gs * (double)q->mu[i]);
  if (g && g->L)
    for (int i = 0; i < d; i++) {
      const kvi_real *row = q->L + (size_t)i * d;
      kvi_real *grow = g->L + (size_t)i * d;
      for (int j = 0; j < i; j++) grow[j] = (kvi_real)((double)grow[j] + gs * (double)row[j]);
      double lii = exp((double)row[i]);
      grow[i] = (kvi_real)((double)grow[i] + gs * (lii * lii - 1.0));
    }
  return KVI_OK;
}
