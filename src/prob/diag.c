/* Fully factorized Gaussian N(mu, diag sigma^2) over an (n, m) weight matrix: sampling, density,
 * entropy, KL to Gaussian / ARD / group-ARD priors, and the batched local reparameterization
 * (docs/prob.md §1 and §4). */
#include <string.h>

#include "prob/diag_ard.h"
#include "core/ew.h"
#include "prob/prob_internal.h"

kvi_status kvi_diag_check(const kvi_diag *q) {
  kvi_status s = kvi__check_diag_args(q, "kvi_diag_check");
  if (s) return s;
  return kvi__check_diag_finite(q, "kvi_diag_check");
}

kvi_status kvi_diag_sample(kvi_real *W, const kvi_diag *q, const kvi_real *eps) {
  kvi_status s = kvi__check_diag_args(q, "kvi_diag_sample");
  if (s) return s;
  if (!W || !eps) return kvi_fail(KVI_ERR_ARG, "kvi_diag_sample: W or eps is NULL");
  size_t nm = (size_t)q->n * q->m;
#pragma omp parallel for schedule(static) if (nm > KVI__OMP_MIN)
  for (size_t k = 0; k < nm; k++) W[k] = q->mu[k] + KVI__EXP(q->log_sigma[k]) * eps[k];
  return KVI_OK;
}

kvi_status kvi_diag_log_prob(double *out, const kvi_diag *q, const kvi_real *W) {
  const char *fn = "kvi_diag_log_prob";
  kvi_status s = kvi__check_diag_args(q, fn);
  if (s) return s;
  if (!out || !W) return kvi_fail(KVI_ERR_ARG, "%s: out or W is NULL", fn);
  if ((s = kvi__check_diag_finite(q, fn))) return s;
  size_t nm = (size_t)q->n * q->m;
  double acc = 0;
  for (size_t k = 0; k < nm; k++) {
    double ls = q->log_sigma[k];
    double z = ((double)W[k] - (double)q->mu[k]) * exp(-ls);
    acc += -0.5 * z * z - ls;
  }
  *out = acc - 0.5 * (double)nm * KVI__LOG_2PI;
  return KVI_OK;
}

kvi_status kvi_diag_entropy(double *out, const kvi_diag *q, kvi_diag_grad *g, kvi_real gscale) {
  const char *fn = "kvi_diag_entropy";
  kvi_status s = kvi__check_diag_args(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: out is NULL", fn);
  if ((s = kvi__check_diag_finite(q, fn))) return s;
  size_t nm = (size_t)q->n * q->m;
  double acc = 0;
  for (size_t k = 0; k < nm; k++) acc += q->log_sigma[k];
  *out = 0.5 * (double)nm * (1.0 + KVI__LOG_2PI) + acc;
  if (g && g->log_sigma)
    for (size_t k = 0; k < nm; k++) g->log_sigma[k] += gscale;
  return KVI_OK;
}

kvi_status kvi_diag_kl_gauss(double *out, const kvi_diag *q, const kvi_real *prior_var,
                             bool prior_var_scalar, kvi_diag_grad *g, kvi_real gscale) {
  const char *fn = "kvi_diag_kl_gauss";
  kvi_status s = kvi__check_diag_args(q, fn);
  if (s) return s;
  if (!out || !prior_var) return kvi_fail(KVI_ERR_ARG, "%s: out or prior_var is NULL", fn);
  if ((s = kvi__check_diag_finite(q, fn))) return s;
  size_t nm = (size_t)q->n * q->m, npv = prior_var_scalar ? 1 : nm;
  for (size_t k = 0; k < npv; k++)
    if (!(prior_var[k] > 0) || !isfinite(prior_var[k]))
      return kvi_fail(KVI_ERR_ARG, "%s: prior variance [%zu] = %g must be positive and finite", fn,
                      k, (double)prior_var[k]);
  kvi_real *gmu = g ? g->mu : NULL, *gls = g ? g->log_sigma : NULL;
  double acc = 0, gs = gscale;
  for (size_t k = 0; k < nm; k++) {
    double pv = prior_var[prior_var_scalar ? 0 : k], mu = q->mu[k], ls = q->log_sigma[k];
    double var = exp(2.0 * ls);
    acc += (var + mu * mu) / pv - 1.0 + log(pv) - 2.0 * ls;
    if (gmu) gmu[k] += (kvi_real)(gs * mu / pv);
    if (gls) gls[k] += (kvi_real)(gs * (var / pv - 1.0));
  }
  *out = 0.5 * acc;
  return KVI_OK;
}

/* Value and gradients of the DIAG ARD KL in one pass over the flat elements [k0, k1) (parameters
 * known to be in range), returning their sum. The matrix runs as one flat array, so only its
 * very end leaves a partial vector (row by row, a 300-wide row left 12 scalar elements that cost
 * a quarter of the time). */
KVI__HOT static kvi_real kvi__diag_ard_fused_span(const kvi_diag *q, kvi_real *gmu, kvi_real *gls,
                                                  kvi_real gsr, size_t k0, size_t k1) {
  const kvi_real *mu = q->mu + k0, *ls = q->log_sigma + k0;
  kvi_real *gm = gmu + k0, *gl = gls + k0, sum = 0;
  const long len = (long)(k1 - k0);
#pragma omp simd reduction(+ : sum)
  for (long k = 0; k < len; k++) {
    kvi_real dm, dl;
    sum += kvi__diag_ard_term(mu[k], ls[k], gsr, &dm, &dl);
    gm[k] += dm;
    gl[k] += dl;
  }
  return sum;
}

/* Fixed spans (KVI__KL_SPAN) in parallel, their sums added in order: the same result on any
 * thread count. sums holds one double per span. */
static size_t kvi__diag_spans(size_t nm) { return (nm + KVI__KL_SPAN - 1) / KVI__KL_SPAN; }

static double kvi__diag_ard_fused(const kvi_diag *q, kvi_real *gmu, kvi_real *gls, kvi_real gsr,
                                  double *sums) {
  const size_t nm = (size_t)q->n * q->m, ns = kvi__diag_spans(nm);
#pragma omp parallel for schedule(static) if (nm >= KVI__KL_OMP_MIN)
  for (long c = 0; c < (long)ns; c++) {
    size_t k0 = (size_t)c * KVI__KL_SPAN, k1 = k0 + KVI__KL_SPAN < nm ? k0 + KVI__KL_SPAN : nm;
    sums[c] = kvi__diag_ard_fused_span(q, gmu, gls, gsr, k0, k1);
  }
  double acc = 0;
  for (size_t c = 0; c < ns; c++) acc += sums[c];
  return acc;
}

bool kvi_diag_kl_ard_fusable(const kvi_diag *q) {
  if (!q || !q->mu || !q->log_sigma || q->n <= 0 || q->m <= 0) return false;
  const size_t nm = (size_t)q->n * q->m;
  return kvi__all_within_par(q->mu, nm, (kvi_real)-1e15, (kvi_real)1e15) &&
         kvi__all_within_par(q->log_sigma, nm, -40, 40);
}

kvi_status kvi_diag_kl_ard(double *out, const kvi_diag *q, kvi_diag_grad *g, kvi_real gscale) {
  const char *fn = "kvi_diag_kl_ard";
  kvi_status s = kvi__check_diag_args(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: out is NULL", fn);
  const int n = q->n, m = q->m;
  /* KL = 1/2 sum log(1 + mu^2/sigma^2) = 1/2 sum [log(mu^2 + sigma^2) - 2 log sigma], in
   * kvi_real with vectorizable exp / log, per-row sums in double. With |mu| < 1e15 and
   * |log sigma| < 40 every term is finite: value and gradients in one fused pass. Otherwise the
   * value first and the gradients only when it is finite (a failed call leaves g untouched): a
   * non-finite mu or log sigma always makes it non-finite (log sigma = -inf: +inf; +inf:
   * inf - inf), so the full finiteness check only runs then, to name the culprit. */
  kvi_real *gmu = g ? g->mu : NULL, *gls = g ? g->log_sigma : NULL;
  const kvi_real gsr = gscale;
  double *sums = NULL;
  if (gmu && gls && kvi_diag_kl_ard_fusable(q) &&
      (sums = kvi_alloc(kvi__diag_spans((size_t)n * m) * sizeof *sums))) {
    double acc = kvi__diag_ard_fused(q, gmu, gls, gsr, sums);
    kvi_free(sums);
    *out = 0.5 * acc;
    return KVI_OK;
  }
  double acc = 0;
  for (int i = 0; i < n; i++) {
    const kvi_real *mu = q->mu + (size_t)i * m, *ls = q->log_sigma + (size_t)i * m;
    kvi_real row = 0;
#pragma omp simd reduction(+ : row)
    for (int j = 0; j < m; j++) row += KVI__VLOG(mu[j] * mu[j] + KVI__VEXP(2 * ls[j])) - 2 * ls[j];
    acc += row;
  }
  double kl = 0.5 * acc;
  if (!isfinite(kl)) return kvi__kl_nonfinite(kvi__check_diag_finite(q, fn), kl, fn);
  *out = kl;
  if (!gmu && !gls) return KVI_OK;
  const size_t nm = (size_t)n * m;
  const kvi_real *mu = q->mu, *ls = q->log_sigma;
  if (gmu && gls) {
#pragma omp simd
    for (size_t k = 0; k < nm; k++) {
      kvi_real var = KVI__VEXP(2 * ls[k]), iS = 1 / (mu[k] * mu[k] + var);
      gmu[k] += gsr * mu[k] * iS;
      gls[k] += gsr * (var * iS - 1);
    }
  } else {
    for (size_t k = 0; k < nm; k++) {
      kvi_real var = KVI__EXP(2 * ls[k]), iS = 1 / (mu[k] * mu[k] + var);
      if (gmu) gmu[k] += gsr * mu[k] * iS;
      if (gls) gls[k] += gsr * (var * iS - 1);
    }
  }
  return KVI_OK;
}

kvi_status kvi_diag_kl_group(double *out, const kvi_diag *q, const kvi_real *log_tau,
                             const kvi_real *log_gamma, kvi_diag_grad *g, kvi_real *g_log_tau,
                             kvi_real *g_log_gamma, kvi_real gscale) {
  const char *fn = "kvi_diag_kl_group";
  kvi_status s = kvi__check_diag_args(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: out is NULL", fn);
  if ((s = kvi__check_group_args(log_tau, log_gamma, q->n, q->m, fn))) return s;
  if ((s = kvi__check_diag_finite(q, fn))) return s;
  const int n = q->n, m = q->m;
  kvi_real *gmu = g ? g->mu : NULL, *gls = g ? g->log_sigma : NULL;
  double *col = NULL; /* column sums sum_i tau_i S_ij for the log_gamma gradient */
  if (g_log_gamma && !(col = kvi_alloc((size_t)m * sizeof *col))) return KVI_ERR_NOMEM;
  double gs = gscale, acc = 0, slt = 0, slg = 0;
  for (int i = 0; i < n; i++) slt += log_tau[i];
  for (int j = 0; j < m; j++) slg += log_gamma[j];
  /* KL = 1/2 [sum tau_i gamma_j S_ij - nm - m sum log tau - n sum log gamma - sum log sigma^2],
   * S_ij = mu_ij^2 + sigma_ij^2 */
  for (int i = 0; i < n; i++) {
    double tau = exp((double)log_tau[i]), row = 0;
    for (int j = 0; j < m; j++) {
      size_t k = (size_t)i * m + j;
      double mu = q->mu[k], ls = q->log_sigma[k], var = exp(2.0 * ls);
      double a = tau * exp((double)log_gamma[j]);
      double t = a * (mu * mu + var);
      row += t;
      acc += t - 2.0 * ls;
      if (gmu) gmu[k] += (kvi_real)(gs * a * mu);
      if (gls) gls[k] += (kvi_real)(gs * (a * var - 1.0));
      if (col) col[j] += t;
    }
    if (g_log_tau) g_log_tau[i] += (kvi_real)(gs * 0.5 * (row - m));
  }
  if (col) {
    for (int j = 0; j < m; j++) g_log_gamma[j] += (kvi_real)(gs * 0.5 * (col[j] - n));
    kvi_free(col);
  }
  *out = 0.5 * (acc - (double)n * m - (double)m * slt - (double)n * slg);
  return KVI_OK;
}

kvi_status kvi_diag_log_alpha(kvi_real *out, const kvi_diag *q) {
  kvi_status s = kvi__check_diag_args(q, "kvi_diag_log_alpha");
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "kvi_diag_log_alpha: out is NULL");
  size_t nm = (size_t)q->n * q->m;
  /* log(sigma^2 / mu^2); mu^2 floored at 1e-30 so that a zero mean gives a large finite value */
  for (size_t k = 0; k < nm; k++) {
    double mu = q->mu[k];
    out[k] = (kvi_real)(2.0 * (double)q->log_sigma[k] - log(fmax(mu * mu, 1e-30)));
  }
  return KVI_OK;
}

/* ---- diagonal-noise part of the local reparameterization ------------------------------------
 * Workspace: X2 (B, n) = X^2, var (n, m), sd (B, m) = sqrt(X2 var) (then G), T (n, m). */
size_t kvi__diagnoise_ws(int batch, int n, int m) {
  size_t B = (size_t)batch, N = (size_t)n, M = (size_t)m;
  return kvi__ws_bytes(B * N) + 2 * kvi__ws_bytes(N * M) + kvi__ws_bytes(B * M);
}

/* The elementwise parts, over [k0, k1): chunks of KVI__EW_CHUNK run in parallel. */
#define KVI__EW_CHUNK 16384
KVI__HOT static void kvi__ew_exp(kvi_real *out, const kvi_real *x, kvi_real a, size_t k0,
                                 size_t k1) {
#pragma omp simd
  for (size_t k = k0; k < k1; k++) out[k] = KVI__VEXP(a * x[k]);
}

/* formatted by hand: clang-format would put the loop on the _Pragma line */
// clang-format off
#define KVI__EW_FOR(total, call)                                                    \
  do {                                                                              \
    const size_t ew_n_ = (total), ew_nc_ = (ew_n_ + KVI__EW_CHUNK - 1) / KVI__EW_CHUNK; \
    _Pragma("omp parallel for schedule(static) if (ew_n_ > KVI__OMP_MIN / 4)")     \
    for (size_t c_ = 0; c_ < ew_nc_; c_++) {                                        \
      const size_t k0 = c_ * KVI__EW_CHUNK;                                         \
      const size_t k1 = k0 + KVI__EW_CHUNK < ew_n_ ? k0 + KVI__EW_CHUNK : ew_n_;    \
      call;                                                                         \
    }                                                                               \
  } while (0)
// clang-format on

void kvi__diagnoise_forward(kvi_real *Y, void *ws, const kvi_real *logp, kvi_real vscale,
                            const kvi_real *X, const kvi_real *eps, int batch, int n, int m) {
  char *cur = ws;
  size_t bn = (size_t)batch * n, nm = (size_t)n * m, bm = (size_t)batch * m;
  kvi_real *X2 = kvi__ws_take(&cur, bn), *var = kvi__ws_take(&cur, nm);
  kvi_real *sd = kvi__ws_take(&cur, bm);
  KVI__EW_FOR(nm, kvi__ew_exp(var, logp, vscale, k0, k1));
  KVI__EW_FOR(bn, kvi__ew_square(X2, X, k0, k1));
  kvi_gemm(false, false, batch, m, n, 1, X2, n, var, m, 0, sd, m);
  KVI__EW_FOR(bm, kvi__ew_sd_noise(Y, sd, eps, k0, k1));
}

void kvi__diagnoise_backward(kvi_real *g_log, kvi_real *dX, const kvi_real *dY, void *ws,
                             kvi_real vscale, const kvi_real *X, const kvi_real *eps, int batch,
                             int n, int m) {
  if (!g_log && !dX) return;
  char *cur = ws;
  size_t bn = (size_t)batch * n, nm = (size_t)n * m, bm = (size_t)batch * m;
  kvi_real *X2 = kvi__ws_take(&cur, bn), *var = kvi__ws_take(&cur, nm);
  kvi_real *G = kvi__ws_take(&cur, bm), *T = kvi__ws_take(&cur, nm);
  /* y = sd * eps, sd = sqrt(v): dv = dY eps / (2 sd); sd = 0 (x = 0) is a kink: subgradient 0 */
  KVI__EW_FOR(bm, kvi__ew_dvar(G, G, dY, eps, k0, k1)); /* G holds sd */
  if (g_log) {
    /* v = X2 var: dvar = X2^T G; d log p = vscale * var * dvar */
    kvi_gemm(true, false, n, m, batch, 1, X2, n, G, m, 0, T, m);
    KVI__EW_FOR(nm, kvi__ew_acc_prod(g_log, vscale, var, T, k0, k1));
  }
  if (dX) {
    /* dX2 = G var^T (into the X2 buffer, no longer needed); dX += 2 X dX2 */
    kvi_gemm(false, true, batch, n, m, 1, G, m, var, m, 0, X2, n);
    KVI__EW_FOR(bn, kvi__ew_acc_prod(dX, 2, X, X2, k0, k1));
  }
}

/* ---- DIAG local reparameterization ---------------------------------------------------------- */
static kvi_status kvi__lrt_args(const void *Y, const void *ws, const void *X, const void *eps,
                                int batch, const char *fn) {
  if (batch <= 0) return kvi_fail(KVI_ERR_ARG, "%s: batch size %d must be positive", fn, batch);
  if (!Y || !X) return kvi_fail(KVI_ERR_ARG, "%s: output or input X is NULL", fn);
  if (eps && !ws) return kvi_fail(KVI_ERR_ARG, "%s: workspace is NULL", fn);
  if (((uintptr_t)ws) % 64)
    return kvi_fail(KVI_ERR_ARG, "%s: workspace %p is not 64-byte aligned", fn, ws);
  return KVI_OK;
}

size_t kvi_diag_lrt_ws_size(int batch, int n, int m) {
  if (batch <= 0 || n <= 0 || m <= 0) return 0;
  return kvi__diagnoise_ws(batch, n, m);
}

kvi_status kvi_diag_lrt_forward(kvi_real *Y, void *ws, const kvi_diag *q, const kvi_real *X,
                                const kvi_real *eps1, int batch) {
  const char *fn = "kvi_diag_lrt_forward";
  kvi_status s = kvi__check_diag_args(q, fn);
  if (s) return s;
  if ((s = kvi__lrt_args(Y, ws, X, eps1, batch, fn))) return s;
  const int n = q->n, m = q->m;
  kvi_gemm(false, false, batch, m, n, 1, X, n, q->mu, m, 0, Y, m);
  if (eps1) kvi__diagnoise_forward(Y, ws, q->log_sigma, 2, X, eps1, batch, n, m);
  return KVI_OK;
}

kvi_status kvi_diag_lrt_backward(kvi_diag_grad *g, kvi_real *dX, const kvi_real *dY, void *ws,
                                 const kvi_diag *q, const kvi_real *X, const kvi_real *eps1,
                                 int batch) {
  const char *fn = "kvi_diag_lrt_backward";
  kvi_status s = kvi__check_diag_args(q, fn);
  if (s) return s;
  if ((s = kvi__lrt_args(dY, ws, X, eps1, batch, fn))) return s;
  const int n = q->n, m = q->m;
  if (eps1) kvi__diagnoise_backward(g ? g->log_sigma : NULL, dX, dY, ws, 2, X, eps1, batch, n, m);
  if (g && g->mu) kvi_gemm(true, false, n, m, batch, 1, X, n, dY, m, 1, g->mu, m);
  if (dX) kvi_gemm(false, true, batch, n, m, 1, dY, m, q->mu, m, 1, dX, n);
  return KVI_OK;
}
