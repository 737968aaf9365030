/* kronvi prob: the distributions the layers need, each with analytic gradients.
 *
 * Conventions (docs/prob.md): a weight matrix W is (n, m) row-major, a layer maps a row x (1, n)
 * to y = x W. Cholesky factors A (n, n) and B (m, m) are stored densely, row-major: entries
 * strictly below the diagonal are raw parameters, the diagonal holds log A_ii, entries above the
 * diagonal are ignored (their gradients stay zero).
 *
 * Gradients: every *_grad pointer may be NULL (not wanted); gradients are ADDED (+=), scaled
 * by the `gscale` argument where there is one, so callers can fold in the ELBO weighting.
 * Functions validate sizes and pointers and return a status; they never exit. */
#ifndef KRONVI_PROB_H
#define KRONVI_PROB_H

#include "kronvi/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- parameter views --------------------------------------------------------------------- */
typedef struct {
  int n, m;
  const kvi_real *M; /* (n, m) mean */
  const kvi_real *A; /* (n, n) row factor, U = A A^T (strict lower raw, diag = log A_ii) */
  const kvi_real *B; /* (m, m) column factor, V = B B^T */
} kvi_mn;

typedef struct {
  kvi_real *M, *A, *B; /* same shapes as kvi_mn; any may be NULL */
} kvi_mn_grad;

typedef struct {
  int n, m;
  const kvi_real *mu;        /* (n, m) */
  const kvi_real *log_sigma; /* (n, m) */
} kvi_diag;

typedef struct {
  kvi_real *mu, *log_sigma;
} kvi_diag_grad;

/* The stochastic Lanczos estimate of log det(V (x) U + diag D) (src/prob/slq.c): its state. */
typedef struct kvi_slq kvi_slq;

/* MN + diagonal: Cov(vec W) = V (x) U + diag(D), D_ij = exp(log_d_ij) (variances). */
typedef struct {
  kvi_mn mn;
  const kvi_real *log_d; /* (n, m) */
  kvi_slq *slq; /* NULL: the KL uses Minkowski's lower bound of the log det; else the stochastic
                   Lanczos estimate with this state (not owned) */
} kvi_mndiag;

typedef struct {
  kvi_mn_grad mn;
  kvi_real *log_d;
} kvi_mndiag_grad;

/* Materializes the lower-triangular factor L (n, n) from its parameter storage P: strict lower
 * copied, diagonal exp(P_ii), upper zero. */
KVI_API void kvi_chol_materialize(kvi_real *L, const kvi_real *P, int n);
/* Diagonal of L L^T: out_i = sum_k L_ik^2 (= U_ii), from parameter storage P. */
KVI_API void kvi_chol_rownorm2(kvi_real *out, const kvi_real *P, int n);
/* trace(L L^T) = sum_i (L L^T)_ii from parameter storage P, in double. */
KVI_API double kvi_chol_trace(const kvi_real *P, int n);
/* The Cholesky factor of the leading k x k block of the symmetric positive-definite n x n matrix
 * C (double, row-major), written into parameter storage dst (k, k): strict lower as is, diagonal
 * log L_ii, upper zero. KVI_ERR_LINALG if the block is not positive definite. */
KVI_API kvi_status kvi_chol_store_block_f64(kvi_real *dst, const double *C, int n, int k);
/* Converts a gradient w.r.t. the materialized L (dL, lower part) into a gradient w.r.t. the
 * parameter storage and adds it into dP: strict lower as is, diagonal times exp(P_ii). */
KVI_API void kvi_chol_grad_to_params(kvi_real *dP, const kvi_real *dL, const kvi_real *P, int n);

/* ---- DIAG Gaussian N(mu, diag sigma^2) ---------------------------------------------------- */
KVI_API kvi_status kvi_diag_check(const kvi_diag *q);
/* W = mu + sigma * eps, eps (n, m) standard normal given by the caller. */
KVI_API kvi_status kvi_diag_sample(kvi_real *W, const kvi_diag *q, const kvi_real *eps);
KVI_API kvi_status kvi_diag_log_prob(double *out, const kvi_diag *q, const kvi_real *W);
KVI_API kvi_status kvi_diag_entropy(double *out, const kvi_diag *q, kvi_diag_grad *g,
                                    kvi_real gscale);
/* KL(q || N(0, diag prior_var)); prior_var (n, m), or a single value if prior_var_scalar. */
KVI_API kvi_status kvi_diag_kl_gauss(double *out, const kvi_diag *q, const kvi_real *prior_var,
                                     bool prior_var_scalar, kvi_diag_grad *g, kvi_real gscale);
/* KL with the ARD-optimal prior alpha_ij = 1/(mu^2 + sigma^2): 1/2 sum log(1 + mu^2/sigma^2). */
KVI_API kvi_status kvi_diag_kl_ard(double *out, const kvi_diag *q, kvi_diag_grad *g,
                                   kvi_real gscale);
/* Whether every mu and log sigma of q lies where each term of that KL is finite (|mu| < 1e15,
 * |log sigma| < 40): then an optimizer may add its gradient in its own pass
 * (kvi_optimizer_step_ard) with the same numbers. */
KVI_API bool kvi_diag_kl_ard_fusable(const kvi_diag *q);
/* A weight block under the per-weight ARD prior whose KL gradient is added during the
 * optimizer's step (kvi_optimizer_step_ard), with the same numbers as the KL's own pass
 * followed by the step:
 * - DIAG (rows = 0; kvi_diag_kl_ard): mu and log_sigma are the element offsets of the two
 *   (n)-element views in the parameter block, and the block must be kvi_diag_kl_ard_fusable.
 *   One pass over the weights instead of two: the KL's gradient of a weight depends on that
 *   weight alone.
 * - MN (rows > 0; kvi_mn_kl_ard): mu is the offset of M (rows, cols), A and B those of its
 *   Cholesky factors' parameters (rows, rows) and (cols, cols); log_sigma and n are unused. The
 *   gradient is added block of rows by block of rows, each block updated while it is in cache:
 *   M's blocks first (they also give the gradients of the factors' row norms), then the rows of
 *   A and B. */
typedef struct kvi_ard_block {
  size_t mu, log_sigma, n;
  kvi_real gscale; /* the gradient added is gscale * dKL */
  double *kl;      /* out: the block's KL, as kvi_diag_kl_ard / kvi_mn_kl_ard computes it */
  int rows, cols;  /* MN: the shape of M; 0 for DIAG */
  size_t A, B;     /* MN: the factors' element offsets */
} kvi_ard_block;

/* ---- Matrix Normal MN(M, A A^T, B B^T) ---------------------------------------------------- */
KVI_API kvi_status kvi_mn_check(const kvi_mn *q);
/* W = M + A E B^T, E (n, m) standard normal given by the caller. scratch: arena for temporaries. */
KVI_API kvi_status kvi_mn_sample(kvi_real *W, const kvi_mn *q, const kvi_real *E,
                                 kvi_arena *scratch);
/* log density at W (double accumulation). */
KVI_API kvi_status kvi_mn_log_prob(double *out, const kvi_mn *q, const kvi_real *W,
                                   kvi_arena *scratch);
/* Entropy (nm/2)(1 + log 2pi) + m sum log A_ii + n sum log B_jj, and its gradient. */
KVI_API kvi_status kvi_mn_entropy(double *out, const kvi_mn *q, kvi_mn_grad *g, kvi_real gscale);
/* Marginal variances var (n, m): U_ii V_jj. */
KVI_API kvi_status kvi_mn_marginal_var(kvi_real *var, const kvi_mn *q);
/* KL(q || N(0, diag prior_var)), prior_var (n, m) or a scalar (prior_var_scalar). */
KVI_API kvi_status kvi_mn_kl_gauss(double *out, const kvi_mn *q, const kvi_real *prior_var,
                                   bool prior_var_scalar, kvi_mn_grad *g, kvi_real gscale);
/* KL with the ARD-optimal prior, alpha_ij = 1/(M_ij^2 + U_ii V_jj) (docs/prob.md §2):
 * 1/2 sum log(1 + M^2/(U_ii V_jj)) + 1/2 [m (sum log U_ii - log|U|) + n (sum log V_jj - log|V|)].
 */
KVI_API kvi_status kvi_mn_kl_ard(double *out, const kvi_mn *q, kvi_mn_grad *g, kvi_real gscale);
/* Group ARD: prior N(0, 1/(tau_i gamma_j)) with log_tau (n), log_gamma (m) as parameters;
 * gradients w.r.t. them go to g_log_tau / g_log_gamma (may be NULL). */
KVI_API kvi_status kvi_mn_kl_group(double *out, const kvi_mn *q, const kvi_real *log_tau,
                                   const kvi_real *log_gamma, kvi_mn_grad *g, kvi_real *g_log_tau,
                                   kvi_real *g_log_gamma, kvi_real gscale);
/* Exact coordinate updates of the group-ARD precisions (`iters` alternations), scale fixed by
 * making mean(log_tau) = mean(log_gamma). S_ij = M_ij^2 + marginal variance (n, m). */
KVI_API kvi_status kvi_group_ard_update(kvi_real *log_tau, kvi_real *log_gamma, const kvi_real *S,
                                        int n, int m, int iters);
/* Group KL for DIAG (same prior). */
KVI_API kvi_status kvi_diag_kl_group(double *out, const kvi_diag *q, const kvi_real *log_tau,
                                     const kvi_real *log_gamma, kvi_diag_grad *g,
                                     kvi_real *g_log_tau, kvi_real *g_log_gamma, kvi_real gscale);
/* Backward of the reparameterized samples (src/prob/sample_backward.c): dW is the gradient of a
 * loss with respect to the sample W, eps / E the standard normals it was drawn from; the
 * parameter gradients are added. DIAG: dmu += dW, dlog_sigma += dW eps sigma. MN (W = M + A E
 * B^T): dM += dW, dA += dW B E^T, dB += dW^T A E (lower parts, log-diagonal storage); scratch
 * as in kvi_mn_sample. */
KVI_API kvi_status kvi_diag_sample_backward(kvi_diag_grad *g, const kvi_real *dW, const kvi_diag *q,
                                            const kvi_real *eps);
KVI_API kvi_status kvi_mn_sample_backward(kvi_mn_grad *g, const kvi_real *dW, const kvi_mn *q,
                                          const kvi_real *E, kvi_arena *scratch);
/* log alpha_ij = log(Var_ij / M_ij^2) for sparsification (DIAG: sigma^2/mu^2). */
KVI_API kvi_status kvi_mn_log_alpha(kvi_real *out, const kvi_mn *q);
KVI_API kvi_status kvi_diag_log_alpha(kvi_real *out, const kvi_diag *q);

/* ---- batched local reparameterization ------------------------------------------------------
 * Forward for a mini-batch X (B, n): Y (B, m) is a sample of X W, W ~ q, drawn independently per
 * row using standard-normal noise supplied by the caller (so results do not depend on threads).
 *   DIAG:    Y = X mu + sqrt(X^2 sigma^2) * eps1                                 eps1 (B, m)
 *   MN:      Y = X M + s * (eps1 B^T),  s_b = ||A^T x_b||                         eps1 (B, m)
 *   MN+DIAG: Y = X M + s * (eps1 B^T) + sqrt(X^2 D) * eps2                        eps1, eps2 (B, m)
 * eps may be NULL for a deterministic forward with the mean weights (Y = X M).
 * The workspace `ws` (kvi_*_lrt_ws_size bytes for these sizes, 64-byte aligned, from an arena)
 * carries what backward needs; it must stay untouched between forward and backward.
 * Backward takes dY (B, m), adds parameter gradients into g (scaled by nothing: gscale = 1), and
 * if dX is not NULL ADDS the input gradient into dX (B, n). Costly parts go through BLAS:
 * O(B (nm + n^2 + m^2)) per batch. */
KVI_API size_t kvi_diag_lrt_ws_size(int batch, int n, int m);
KVI_API kvi_status kvi_diag_lrt_forward(kvi_real *Y, void *ws, const kvi_diag *q, const kvi_real *X,
                                        const kvi_real *eps1, int batch);
KVI_API kvi_status kvi_diag_lrt_backward(kvi_diag_grad *g, kvi_real *dX, const kvi_real *dY,
                                         void *ws, const kvi_diag *q, const kvi_real *X,
                                         const kvi_real *eps1, int batch);

KVI_API size_t kvi_mn_lrt_ws_size(int batch, int n, int m);
KVI_API kvi_status kvi_mn_lrt_forward(kvi_real *Y, void *ws, const kvi_mn *q, const kvi_real *X,
                                      const kvi_real *eps1, int batch);
KVI_API kvi_status kvi_mn_lrt_backward(kvi_mn_grad *g, kvi_real *dX, const kvi_real *dY, void *ws,
                                       const kvi_mn *q, const kvi_real *X, const kvi_real *eps1,
                                       int batch);
/* As kvi_mn_lrt_backward, but WRITES the input gradient into dX (its contents are not read):
 * saves the zeroing and two passes over (B, n) arrays in convolutions (B >= n). */
KVI_API kvi_status kvi_mn_lrt_backward_set(kvi_mn_grad *g, kvi_real *dX, const kvi_real *dY,
                                           void *ws, const kvi_mn *q, const kvi_real *X,
                                           const kvi_real *eps1, int batch);

KVI_API size_t kvi_mndiag_lrt_ws_size(int batch, int n, int m);
KVI_API kvi_status kvi_mndiag_lrt_forward(kvi_real *Y, void *ws, const kvi_mndiag *q,
                                          const kvi_real *X, const kvi_real *eps1,
                                          const kvi_real *eps2, int batch);
KVI_API kvi_status kvi_mndiag_lrt_backward(kvi_mndiag_grad *g, kvi_real *dX, const kvi_real *dY,
                                           void *ws, const kvi_mndiag *q, const kvi_real *X,
                                           const kvi_real *eps1, const kvi_real *eps2, int batch);
KVI_API kvi_status kvi_mndiag_marginal_var(kvi_real *var, const kvi_mndiag *q);
KVI_API kvi_status kvi_mndiag_log_alpha(kvi_real *out, const kvi_mndiag *q);
/* Lower bound on log det(V (x) U + diag D) (Minkowski: N log(e^{ld1/N} + e^{ld2/N}), N = nm),
 * used in the entropy of MN+DIAG, with its gradient. */
KVI_API kvi_status kvi_mndiag_logdet_lower(double *out, const kvi_mndiag *q, kvi_mndiag_grad *g,
                                           kvi_real gscale);
/* KL(q || ARD-optimal prior alpha_ij = 1/(M_ij^2 + Var_ij)) with the log-det lower bound, an
 * upper bound on the exact KL (the ELBO stays a bound):
 *   1/2 sum_ij log(M_ij^2 + Var_ij) - 1/2 logdet_lower
 * (the trace and mean terms give exactly nm and cancel the -nm); see docs/prob.md. */
/* ---- stochastic Lanczos quadrature of log det(V (x) U + diag D) (docs/prob.md §3) ----- */
typedef struct {
  int probes;  /* Hutchinson probes (Rademacher) per call (2) */
  int steps;   /* Lanczos steps per probe (20) */
  int refresh; /* the control variate's eigenbases are recomputed every `refresh` calls (20) */
  uint64_t seed;
} kvi_slq_config;
KVI_API kvi_status kvi_slq_create(kvi_slq **out, int n, int m, const kvi_slq_config *c);
KVI_API void kvi_slq_free(kvi_slq *s);
/* The probes of the next call come from the stream (seed, step). */
KVI_API void kvi_slq_set_step(kvi_slq *s, uint64_t step);
/* The standard error of the last estimate over its probes (NaN with one probe). */
KVI_API double kvi_slq_last_stderr(const kvi_slq *s);
/* The estimate of log det Sigma (and its standard error over the probes, may be NULL); with g,
 * adds gscale times the estimated gradient w.r.t. A, B (their parameter storage) and log_d. */
KVI_API kvi_status kvi_mndiag_logdet_slq(double *est, double *se, const kvi_mndiag *q, kvi_slq *s,
                                         kvi_mndiag_grad *g, kvi_real gscale);
/* The exact log det by a dense Cholesky of the nm x nm covariance (nm <= 6000; tests). */
KVI_API kvi_status kvi_mndiag_logdet_exact(double *out, const kvi_mndiag *q);
KVI_API kvi_status kvi_mndiag_kl_ard(double *out, const kvi_mndiag *q, kvi_mndiag_grad *g,
                                     kvi_real gscale);
KVI_API kvi_status kvi_mndiag_kl_gauss(double *out, const kvi_mndiag *q, const kvi_real *prior_var,
                                       bool prior_var_scalar, kvi_mndiag_grad *g, kvi_real gscale);
KVI_API kvi_status kvi_mndiag_kl_group(double *out, const kvi_mndiag *q, const kvi_real *log_tau,
                                       const kvi_real *log_gamma, kvi_mndiag_grad *g,
                                       kvi_real *g_log_tau, kvi_real *g_log_gamma, kvi_real gscale);

/* ---- full-covariance Gaussian N(mu, L L^T), L (d, d) in the Cholesky parameter storage ------ */
typedef struct {
  int d;
  const kvi_real *mu; /* (d) */
  const kvi_real *L;  /* (d, d) strict lower raw, diag log */
} kvi_mvn;
typedef struct {
  kvi_real *mu, *L;
} kvi_mvn_grad;
KVI_API kvi_status kvi_mvn_sample(kvi_real *z, const kvi_mvn *q,
                                  const kvi_real *eps); /* mu+L eps */
/* Backward of the sample: dz -> dmu, dL (added). */
KVI_API kvi_status kvi_mvn_sample_backward(kvi_mvn_grad *g, const kvi_real *dz, const kvi_mvn *q,
                                           const kvi_real *eps);
KVI_API kvi_status kvi_mvn_log_prob(double *out, const kvi_mvn *q, const kvi_real *z,
                                    kvi_mvn_grad *g, kvi_real *dz, kvi_real gscale);
KVI_API kvi_status kvi_mvn_entropy(double *out, const kvi_mvn *q, kvi_mvn_grad *g, kvi_real gscale);
KVI_API kvi_status kvi_mvn_kl_std(double *out, const kvi_mvn *q, kvi_mvn_grad *g,
                                  kvi_real gscale); /* KL(q || N(0, I)) */

/* ---- exact posterior of Bayesian multivariate linear regression (paper §4.1, eq. 5) ---------
 * Model y = x W + noise, x (1, n), W (n, m), noise N(0, beta^{-1} I_m), prior on W with
 * independent rows W_i ~ N(0, alpha_i^{-1} I) (alpha (n)). Posterior is MN(M, U, V) with
 * U = (beta X^T X + diag alpha)^{-1} (n, n), V = I_m, M = beta U X^T Y (n, m). Computed in double.
 * U is returned as a full symmetric matrix; Ucol_chol (optional) receives its lower Cholesky. */
KVI_API kvi_status kvi_blr_posterior(double *M, double *U, double *U_chol, const double *X,
                                     const double *Y, const double *alpha, double beta, int N,
                                     int n, int m);
/* KL( MN(Mq, Uq, Vq) || MN(Mp, Up, Vp) ) in double, all covariances given as full SPD matrices. */
KVI_API kvi_status kvi_mn_kl_mn_f64(double *out, const double *Mq, const double *Uq,
                                    const double *Vq, const double *Mp, const double *Up,
                                    const double *Vp, int n, int m);

#ifdef __cplusplus
}
#endif
#endif
