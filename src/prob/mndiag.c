/* MN + diagonal posterior: Cov(vec W) = V (x) U + diag(D), D = exp(log_d) (docs/prob.md §3).
 *
 * log det(V (x) U + diag D) has no closed form. As in docs/prob.md §3 ("Log-det bound") we use
 * Minkowski's determinant inequality for N x N positive-definite X, Y (N = nm):
 *   det(X + Y)^{1/N} >= det(X)^{1/N} + det(Y)^{1/N}
 *   => logdet(X + Y) >= N log(e^{ld1/N} + e^{ld2/N}) =: LB,
 * with ld1 = logdet(V (x) U) = m log|U| + n log|V| = 2m sum a_i + 2n sum b_j and
 * ld2 = sum_ij log D_ij. Equality holds iff V (x) U is proportional to diag D. Entropy and KL use
 * LB in place of the log det, so the entropy is under-estimated, the KL over-estimated and the
 * ELBO stays a lower bound. */
#include <string.h>

#include "prob/prob_internal.h"

/* LB and its partial derivatives w1 = dLB/d ld1, w2 = dLB/d ld2 (w1 + w2 = 1); ld2 = sum log_d. */
static double kvi__mndiag_lb_from(const kvi_mndiag *q, double ld2, double *w1, double *w2) {
  const int n = q->mn.n, m = q->mn.m;
  double N = (double)n * m;
  double ld1 = 2.0 * m * kvi__chol_logdet(q->mn.A, n) + 2.0 * n * kvi__chol_logdet(q->mn.B, m);
  double x1 = ld1 / N, x2 = ld2 / N, hi = fmax(x1, x2);
  double lse = hi + log(exp(x1 - hi) + exp(x2 - hi));
  *w1 = exp(x1 - lse);
  *w2 = exp(x2 - lse);
  return N * lse;
}

static double kvi__mndiag_lb(const kvi_mndiag *q, double *w1, double *w2) {
  return kvi__mndiag_lb_from(q, kvi__sum(q->log_d, (size_t)q->mn.n * q->mn.m), w1, w2);
}

/* Adds c times the gradient of LB into g. */
static void kvi__mndiag_lb_grad(kvi_mndiag_grad *g, const kvi_mndiag *q, double w1, double w2,
                                double c) {
  if (!g) return;
  const int n = q->mn.n, m = q->mn.m;
  if (g->mn.A) kvi__chol_add_diag(g->mn.A, n, c * w1 * 2.0 * m);
  if (g->mn.B) kvi__chol_add_diag(g->mn.B, m, c * w1 * 2.0 * n);
  if (g->log_d) {
    kvi_real a = (kvi_real)(c * w2), *gd = g->log_d;
    const size_t nm = (size_t)n * m;
#pragma omp simd
    for (size_t k = 0; k < nm; k++) gd[k] += a;
  }
}

/* log det Sigma as the KL uses it: the stochastic Lanczos estimate when q->slq is set, else
 * Minkowski's lower bound (sld = sum log_d); c times its gradient is added into g. */
static kvi_status kvi__mndiag_ld(double *ld, const kvi_mndiag *q, double sld, kvi_mndiag_grad *g,
                                 double c) {
  if (q->slq) return kvi_mndiag_logdet_slq(ld, NULL, q, q->slq, g, (kvi_real)c);
  double w1, w2;
  *ld = kvi__mndiag_lb_from(q, sld, &w1, &w2);
  kvi__mndiag_lb_grad(g, q, w1, w2, c);
  return KVI_OK;
}

static kvi_status kvi__mndiag_prologue(const kvi_mndiag *q, const void *out, const char *fn) {
  kvi_status s = kvi__check_mndiag_args(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: output pointer is NULL", fn);
  return kvi__check_mndiag_finite(q, fn);
}

kvi_status kvi_mndiag_logdet_lower(double *out, const kvi_mndiag *q, kvi_mndiag_grad *g,
                                   kvi_real gscale) {
  kvi_status s = kvi__mndiag_prologue(q, out, "kvi_mndiag_logdet_lower");
  if (s) return s;
  double w1, w2;
  *out = kvi__mndiag_lb(q, &w1, &w2);
  kvi__mndiag_lb_grad(g, q, w1, w2, gscale);
  return KVI_OK;
}

kvi_status kvi_mndiag_marginal_var(kvi_real *var, const kvi_mndiag *q) {
  const char *fn = "kvi_mndiag_marginal_var";
  kvi_status s = kvi__check_mndiag_args(q, fn);
  if (s) return s;
  if (!var) return kvi_fail(KVI_ERR_ARG, "%s: var is NULL", fn);
  if ((s = kvi_mn_marginal_var(var, &q->mn))) return s;
  size_t nm = (size_t)q->mn.n * q->mn.m;
  for (size_t k = 0; k < nm; k++) var[k] += KVI__EXP(q->log_d[k]);
  return KVI_OK;
}

kvi_status kvi_mndiag_log_alpha(kvi_real *out, const kvi_mndiag *q) {
  const char *fn = "kvi_mndiag_log_alpha";
  kvi_status s = kvi__check_mndiag_args(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: out is NULL", fn);
  if ((s = kvi_mndiag_marginal_var(out, q))) return s;
  size_t nm = (size_t)q->mn.n * q->mn.m;
  for (size_t k = 0; k < nm; k++) {
    double mu = q->mn.M[k];
    out[k] = (kvi_real)(log((double)out[k]) - log(fmax(mu * mu, 1e-30)));
  }
  return KVI_OK;
}

kvi_status kvi_mndiag_kl_ard(double *out, const kvi_mndiag *q, kvi_mndiag_grad *g,
                             kvi_real gscale) {
  const char *fn = "kvi_mndiag_kl_ard";
  kvi_status s = kvi__check_mndiag_args(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: out is NULL", fn);
  const kvi_mn *mn = &q->mn;
  kvi__uv w;
  if ((s = kvi__uv_init(&w, mn))) return s;
  /* With alpha_ij = 1/(M^2 + Var) the trace and mean terms give exactly nm, so
   * KL = 1/2 sum log(M_ij^2 + Var_ij) - 1/2 logdet Sigma <= 1/2 sum log(M^2 + Var) - 1/2 LB.
   * One fused pass when every term is finite (see kvi_mn_kl_ard; log_d in (-80, 80)), else the
   * value first (with sum log_d for LB) and the gradients only when it is finite. */
  double gs = gscale, w1, w2;
  const size_t nm = (size_t)mn->n * mn->m;
  if (g && kvi__mn_ard_safe(mn, &w) && kvi__all_within_par(q->log_d, nm, -80, 80)) {
    double acc, sld = kvi__sum(q->log_d, nm);
    kvi__mn_ard_grad(mn, q->log_d, &w, g->mn.M, g->log_d, gs, &acc);
    double lb = 0;
    kvi__uv_finish(&w, mn, &g->mn, gs, 0.0, 0.0);
    if ((s = kvi__mndiag_ld(&lb, q, sld, g, -0.5 * gs)) != KVI_OK) return s;
    *out = 0.5 * acc - 0.5 * lb;
    return KVI_OK;
  }
  double sld = 0;
  double acc = kvi__mn_ard_logsum(mn, q->log_d, &w, &sld);
  double lb = 0;
  if (q->slq && (s = kvi__mndiag_ld(&lb, q, sld, NULL, 0)) != KVI_OK) {
    kvi__uv_finish(&w, mn, NULL, 0, 0, 0);
    return s;
  }
  if (!q->slq) lb = kvi__mndiag_lb_from(q, sld, &w1, &w2);
  double kl = 0.5 * acc - 0.5 * lb;
  /* LB stays finite when one of its two log-determinants is -inf: check them too */
  double ld1 = kvi__chol_logdet(mn->A, mn->n) + kvi__chol_logdet(mn->B, mn->m);
  if (!isfinite(kl) || !isfinite(sld) || !isfinite(ld1)) {
    kvi__uv_finish(&w, mn, NULL, 0, 0, 0);
    return kvi__kl_nonfinite(kvi__check_mndiag_finite(q, fn), kl, fn);
  }
  *out = kl;
  if (g) kvi__mn_ard_grad(mn, q->log_d, &w, g->mn.M, g->log_d, gs, NULL);
  kvi__uv_finish(&w, mn, g ? &g->mn : NULL, gs, 0.0, 0.0);
  if (!q->slq) kvi__mndiag_lb_grad(g, q, w1, w2, -0.5 * gs);
  if (q->slq && g) { /* the same probes (stream (seed, step)) give the gradient */
    double again;
    if ((s = kvi_mndiag_logdet_slq(&again, NULL, q, q->slq, g, (kvi_real)(-0.5 * gs)))) return s;
  }
  return KVI_OK;
}

kvi_status kvi_mndiag_kl_gauss(double *out, const kvi_mndiag *q, const kvi_real *prior_var,
                               bool prior_var_scalar, kvi_mndiag_grad *g, kvi_real gscale) {
  const char *fn = "kvi_mndiag_kl_gauss";
  kvi_status s = kvi__check_mndiag_args(q, fn);
  if (s) return s;
  if (!out || !prior_var) return kvi_fail(KVI_ERR_ARG, "%s: out or prior_var is NULL", fn);
  const kvi_mn *mn = &q->mn;
  const int n = mn->n, m = mn->m;
  if ((s = kvi__check_prior_var(prior_var, prior_var_scalar ? 1 : (size_t)n * m, fn))) return s;
  if ((s = kvi__check_mndiag_finite(q, fn))) return s;
  kvi__uv w;
  if ((s = kvi__uv_init(&w, mn))) return s;
  double gs = gscale;
  double acc = kvi__mn_kl_gauss_core(mn, q->log_d, prior_var, prior_var_scalar, &w,
                                     g ? g->mn.M : NULL, g ? g->log_d : NULL, gs);
  double lb = 0;
  kvi__uv_finish(&w, mn, g ? &g->mn : NULL, gs, 0.0, 0.0);
  /* KL <= 1/2 [sum (Var + M^2)/pv - nm + sum log pv - log det (LB or the Lanczos estimate)] */
  s = kvi__mndiag_ld(&lb, q, kvi__sum(q->log_d, (size_t)n * m), g, -0.5 * gs);
  *out = 0.5 * (acc - (double)n * m - lb);
  return s;
}

kvi_status kvi_mndiag_kl_group(double *out, const kvi_mndiag *q, const kvi_real *log_tau,
                               const kvi_real *log_gamma, kvi_mndiag_grad *g, kvi_real *g_log_tau,
                               kvi_real *g_log_gamma, kvi_real gscale) {
  const char *fn = "kvi_mndiag_kl_group";
  kvi_status s = kvi__check_mndiag_args(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: out is NULL", fn);
  const kvi_mn *mn = &q->mn;
  const int n = mn->n, m = mn->m;
  if ((s = kvi__check_group_args(log_tau, log_gamma, n, m, fn))) return s;
  if ((s = kvi__check_mndiag_finite(q, fn))) return s;
  kvi__uv w;
  if ((s = kvi__uv_init(&w, mn))) return s;
  double gs = gscale;
  double acc = kvi__mn_kl_group_core(mn, q->log_d, log_tau, log_gamma, &w, g ? g->mn.M : NULL,
                                     g ? g->log_d : NULL, g_log_tau, g_log_gamma, gs);
  double lb = 0;
  kvi__uv_finish(&w, mn, g ? &g->mn : NULL, gs, 0.0, 0.0);
  /* KL <= 1/2 [sum tau gamma S - nm - m sum log tau - n sum log gamma - log det (LB or the Lanczos
   * estimate)] */
  s = kvi__mndiag_ld(&lb, q, kvi__sum(q->log_d, (size_t)n * m), g, -0.5 * gs);
  *out = 0.5 * (acc - (double)n * m - lb);
  return s;
}

/* ---- MN+DIAG local reparameterization: the MN part followed by the diagonal-noise part ---- */
size_t kvi_mndiag_lrt_ws_size(int batch, int n, int m) {
  if (batch <= 0 || n <= 0 || m <= 0) return 0;
  return kvi__mn_lrt_ws(batch, n, m) + kvi__diagnoise_ws(batch, n, m);
}

static kvi_status kvi__mndiag_lrt_args(const void *Y, const void *ws, const void *X,
                                       const void *eps1, const void *eps2, int batch,
                                       const char *fn) {
  if (batch <= 0) return kvi_fail(KVI_ERR_ARG, "%s: batch size %d must be positive", fn, batch);
  if (!Y || !X) return kvi_fail(KVI_ERR_ARG, "%s: output/gradient or input X is NULL", fn);
  if ((eps1 || eps2) && !ws) return kvi_fail(KVI_ERR_ARG, "%s: workspace is NULL", fn);
  if (((uintptr_t)ws) % 64)
    return kvi_fail(KVI_ERR_ARG, "%s: workspace %p is not 64-byte aligned", fn, ws);
  return KVI_OK;
}

kvi_status kvi_mndiag_lrt_forward(kvi_real *Y, void *ws, const kvi_mndiag *q, const kvi_real *X,
                                  const kvi_real *eps1, const kvi_real *eps2, int batch) {
  const char *fn = "kvi_mndiag_lrt_forward";
  kvi_status s = kvi__check_mndiag_args(q, fn);
  if (s) return s;
  if ((s = kvi__mndiag_lrt_args(Y, ws, X, eps1, eps2, batch, fn))) return s;
  const int n = q->mn.n, m = q->mn.m;
  kvi_gemm(false, false, batch, m, n, 1, X, n, q->mn.M, m, 0, Y, m);
  if (eps1) kvi__mn_lrt_noise_forward(Y, ws, &q->mn, X, eps1, batch);
  if (eps2)
    kvi__diagnoise_forward(Y, (char *)ws + kvi__mn_lrt_ws(batch, n, m), q->log_d, 1, X, eps2, batch,
                           n, m);
  return KVI_OK;
}

kvi_status kvi_mndiag_lrt_backward(kvi_mndiag_grad *g, kvi_real *dX, const kvi_real *dY, void *ws,
                                   const kvi_mndiag *q, const kvi_real *X, const kvi_real *eps1,
                                   const kvi_real *eps2, int batch) {
  const char *fn = "kvi_mndiag_lrt_backward";
  kvi_status s = kvi__check_mndiag_args(q, fn);
  if (s) return s;
  if ((s = kvi__mndiag_lrt_args(dY, ws, X, eps1, eps2, batch, fn))) return s;
  const int n = q->mn.n, m = q->mn.m;
  if (eps2)
    kvi__diagnoise_backward(g ? g->log_d : NULL, dX, dY, (char *)ws + kvi__mn_lrt_ws(batch, n, m),
                            1, X, eps2, batch, n, m);
  if (eps1)
    kvi__mn_lrt_noise_backward(g ? &g->mn : NULL, dX, dY, ws, &q->mn, X, eps1, batch, false);
  if (g && g->mn.M) kvi_gemm(true, false, n, m, batch, 1, X, n, dY, m, 1, g->mn.M, m);
  if (dX) kvi_gemm(false, true, batch, n, m, 1, dY, m, q->mn.M, m, 1, dX, n);
  return KVI_OK;
}
