/* Private helpers shared by the DIAG / MN / MN+DIAG sources of src/prob (not installed). */
#ifndef KRONVI_PROB_INTERNAL_H
#define KRONVI_PROB_INTERNAL_H

#include <math.h>
#include <stdint.h>

#include "kronvi/prob.h"

#ifdef KVI_DOUBLE
#define KVI__EXP exp
#define KVI__SQRT sqrt
#define KVI__LOG log
#else
#define KVI__EXP expf
#define KVI__SQRT sqrtf
#define KVI__LOG logf
#endif

/* Vectorizable exp / log for loops marked `#pragma omp simd` (src/core/vmath.h); the double
 * build (tests) uses libm. */
#include "core/vmath.h" /* KVI__HOT */
#ifdef KVI_DOUBLE
#define KVI__VEXP exp
#define KVI__VLOG log
#else
#define KVI__VEXP kvi__vexpf
#define KVI__VLOG kvi__vlogf
#endif

#define KVI__LOG_2PI 1.8378770664093454835606594728112

/* Parallelize an elementwise loop only when it has at least this many elements: below, the
 * fork/join of the OpenMP pool (a few microseconds) costs more than the loop. The same pool runs
 * the split BLAS calls (kvi_gemm), so nothing else competes for the cores. */
#ifndef KVI__OMP_MIN
#define KVI__OMP_MIN (1 << 17)
#endif

/* Workspace carving: sub-arrays of the caller's workspace, each starting on a 64-byte boundary.
 * kvi__ws_bytes gives the padded size of an array of `count` reals. */
static inline size_t kvi__ws_bytes(size_t count) {
  return (count * sizeof(kvi_real) + 63) / 64 * 64;
}
static inline kvi_real *kvi__ws_take(char **cursor, size_t count) {
  kvi_real *p = (kvi_real *)(void *)*cursor;
  *cursor += kvi__ws_bytes(count);
  return p;
}

/* Validation of the parameter views (messages name the calling function). */
kvi_status kvi__check_mn_args(const kvi_mn *q, const char *fn);
kvi_status kvi__check_mn_finite(const kvi_mn *q, const char *fn);
kvi_status kvi__check_diag_args(const kvi_diag *q, const char *fn);
kvi_status kvi__check_diag_finite(const kvi_diag *q, const char *fn);
kvi_status kvi__check_mndiag_args(const kvi_mndiag *q, const char *fn);
kvi_status kvi__check_mndiag_finite(const kvi_mndiag *q, const char *fn);
/* Finiteness of the lower triangle (diagonal included) of a Cholesky parameter array. */
kvi_status kvi__check_chol_finite(const kvi_real *P, int n, const char *what, const char *fn);
/* Sum of the log-diagonal entries of a Cholesky parameter array (= log det L), in double. */
double kvi__chol_logdet(const kvi_real *P, int n);
/* Adds `val` to every log-diagonal gradient entry dP_ii. */
void kvi__chol_add_diag(kvi_real *dP, int n, double val);
/* Adds into dP the parameter gradient of sum_i gu_i * (L L^T)_ii, i.e. dL_ik = 2 gu_i L_ik
 * converted to the parameter storage (diagonal: 2 gu_i L_ii^2). gu in double. */
void kvi__chol_rownorm2_backward(kvi_real *dP, const kvi_real *P, int n, const double *gu);
/* rownorm2 in double precision (out_i = (L L^T)_ii). */
void kvi__chol_rownorm2_d(double *out, const kvi_real *P, int n);

/* The ARD gradient pass works in blocks of KVI__ARD_ROWS rows (in parallel above
 * KVI__KL_OMP_MIN matrix entries: its log / exp / division per entry are compute-bound). */
#define KVI__ARD_ROWS 64
#ifndef KVI__KL_OMP_MIN
#define KVI__KL_OMP_MIN (1 << 16)
#endif

/* Shared frame of the MN KL functions: u = diag U, v = diag V and the gradients gu, gv of the
 * KL w.r.t. them (all double), in one allocation; ur, vr: u, v in kvi_real; rs: per-row sums (n
 * kvi_real) and blk: two scratch rows of m kvi_real per block of KVI__ARD_ROWS rows (column sums,
 * and a sink for unused gradient writes) for the vectorized ARD loops. */
typedef struct {
  double *u, *v, *gu, *gv;
  kvi_real *ur, *vr, *rs, *blk;
} kvi__uv;
kvi_status kvi__uv_init(kvi__uv *w, const kvi_mn *q);
/* kvi__uv_init in two parts: the frame, then (after u, v are filled) their kvi_real copies. */
kvi_status kvi__uv_alloc(kvi__uv *w, const kvi_mn *q);
void kvi__uv_round(kvi__uv *w, const kvi_mn *q);
/* Rows [i0, i1) of kvi__chol_rownorm2_d. */
void kvi__chol_rownorm2_d_rows(double *out, const kvi_real *P, int n, int i0, int i1);
/* Adds the gradients collected in gu, gv (w.r.t. U_ii, V_jj) plus the direct log-diagonal terms
 * diag_a (per a_i) and diag_b (per b_j) into g, all times gs; frees the frame. */
void kvi__uv_finish(kvi__uv *w, const kvi_mn *q, kvi_mn_grad *g, double gs, double diag_a,
                    double diag_b);
/* Core of KL(q || N(0, diag pv)) for MN with extra marginal variance D = exp(log_d) (NULL for
 * plain MN): returns sum_ij [(U_ii V_jj + D_ij + M_ij^2)/pv_ij + log pv_ij] and adds gs times the
 * gradients of half of it into gM, glog_d (may be NULL); sets w->gu, w->gv (unscaled). */
double kvi__mn_kl_gauss_core(const kvi_mn *q, const kvi_real *log_d, const kvi_real *pv,
                             bool scalar, kvi__uv *w, kvi_real *gM, kvi_real *glog_d, double gs);
/* Core of the group-ARD KL (same conventions): returns sum_ij tau_i gamma_j S_ij
 * - m sum log tau - n sum log gamma, S = M^2 + U_ii V_jj + D_ij. */
double kvi__mn_kl_group_core(const kvi_mn *q, const kvi_real *log_d, const kvi_real *log_tau,
                             const kvi_real *log_gamma, kvi__uv *w, kvi_real *gM, kvi_real *glog_d,
                             kvi_real *g_log_tau, kvi_real *g_log_gamma, double gs);
/* The MN / MN+DIAG ARD KL, S_ij = M_ij^2 + u_i v_j + D_ij (D = exp(log_d); log_d NULL: D = 0).
 * Value pass: returns sum_ij log S_ij and, with log_d, sets *sum_log_d = sum log_d. Gradient pass:
 * adds gs M/S into gM and gs/2 D/S into glog_d (either may be NULL) and sets w->gu, w->gv to the
 * gradients of 1/2 sum log S w.r.t. u, v. */
double kvi__mn_ard_logsum(const kvi_mn *q, const kvi_real *log_d, const kvi__uv *w,
                          double *sum_log_d);
void kvi__mn_ard_grad(const kvi_mn *q, const kvi_real *log_d, kvi__uv *w, kvi_real *gM,
                      kvi_real *glog_d, double gs, double *logsum);
/* The gradient pass may also return sum log S (logsum not NULL), fused, when this holds: finite
 * log-determinants, u_i, v_j in [1e-18, 1e18] and |M| < 1e15, so that every term is finite. */
bool kvi__mn_ard_safe(const kvi_mn *q, const kvi__uv *w);
/* sum of x[0..cnt) in double (vectorized: the order of the additions is not sequential) */
double kvi__sum(const kvi_real *x, size_t cnt);
/* true if every x[k] lies in the open interval (lo, hi); NaN does not. */
bool kvi__all_within(const kvi_real *x, size_t cnt, kvi_real lo, kvi_real hi);
bool kvi__all_within_par(const kvi_real *x, size_t cnt, kvi_real lo, kvi_real hi);
/* The error of a KL whose value came out non-finite: the first non-finite parameter (from the
 * full check, which the hot path skips) or else a generic message. */
kvi_status kvi__kl_nonfinite(kvi_status detail, double value, const char *fn);
kvi_status kvi__check_prior_var(const kvi_real *pv, size_t cnt, const char *fn);
kvi_status kvi__check_group_args(const kvi_real *log_tau, const kvi_real *log_gamma, int n, int m,
                                 const char *fn);

/* Workspace layout sizes of the MN and DIAG parts of the local reparameterization, shared by
 * MN+DIAG (which uses the MN layout followed by the DIAG-noise layout). */
size_t kvi__mn_lrt_ws(int batch, int n, int m);
size_t kvi__diagnoise_ws(int batch, int n, int m);

/* The MN part of the LRT: forward ADDS s * (eps1 B^T) into Y (Y must already hold X M); backward
 * adds the gradients of A and B and dZ A^T into dX (not dY M^T, not dM); with write_dx it writes
 * dZ A^T into dX instead (dX's contents are not read). */
void kvi__mn_lrt_noise_forward(kvi_real *Y, void *ws, const kvi_mn *q, const kvi_real *X,
                               const kvi_real *eps1, int batch);
void kvi__mn_lrt_noise_backward(kvi_mn_grad *g, kvi_real *dX, const kvi_real *dY, void *ws,
                                const kvi_mn *q, const kvi_real *X, const kvi_real *eps1, int batch,
                                bool write_dx);
/* The diagonal-noise part: Y += sqrt(X^2 var) * eps, var = exp(2 * log_sd * half) where
 * var_from_log(l) = exp(l * vscale): DIAG uses log_sigma with vscale 2, MN+DIAG log_d with 1.
 * Backward adds d(log param) = vscale * var * dvar into g_log (if not NULL) and the input gradient
 * into dX (if not NULL). */
void kvi__diagnoise_forward(kvi_real *Y, void *ws, const kvi_real *logp, kvi_real vscale,
                            const kvi_real *X, const kvi_real *eps, int batch, int n, int m);
void kvi__diagnoise_backward(kvi_real *g_log, kvi_real *dX, const kvi_real *dY, void *ws,
                             kvi_real vscale, const kvi_real *X, const kvi_real *eps, int batch,
                             int n, int m);

#endif
