/* kronvi geom: Riemannian manifolds (symmetric positive-definite matrices, Kronecker products of
 * two of them, the Stiefel manifold) and matrix Lie groups for structured natural-gradient
 * descent (docs/geom.md has the math; equation numbers (G1)... refer to it).
 *
 * Every matrix is row-major. The manifold and Lie-group functions work in double precision
 * whatever kvi_real is (they serve tests, benchmarks and small problems); the two operations
 * on the training hot path of the Riemannian optimizers (kvi_psd_chol_whiten,
 * kvi_psd_chol_retract) work in kvi_real on kronvi's Cholesky storage. Functions that need
 * scratch memory allocate it (KVI_ERR_NOMEM on failure) unless they take a workspace. A
 * failing call leaves its outputs as they were unless documented otherwise. */
#ifndef KRONVI_GEOM_H
#define KRONVI_GEOM_H

#include "kronvi/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- SPD matrices, the affine-invariant metric (docs/geom.md section 1) --------------------
 * A point U is held by its lower Cholesky factor L (U = L L^T, positive diagonal, zero upper
 * triangle). Tangent vectors are symmetric matrices X (ambient coordinates). The metric is
 * <X, Y>_U = tr(U^-1 X U^-1 Y) (G1). */

/* L = chol(U); KVI_ERR_LINALG when U is not (numerically) positive definite. */
KVI_API kvi_status kvi_psd_chol(int n, double *L, const double *U);
/* U = L L^T (full symmetric). */
KVI_API void kvi_psd_from_chol(int n, double *U, const double *L);
/* *out = tr(U^-1 X U^-1 Y). */
KVI_API kvi_status kvi_psd_inner(double *out, int n, const double *L, const double *X,
                                 const double *Y);
/* The tangent projection: X = (Z + Z^T) / 2 (X may alias Z). */
KVI_API void kvi_psd_proj(int n, double *X, const double *Z);
/* The Riemannian gradient of f at U from its Euclidean gradient G = df/dU: R = U sym(G) U (G3). */
KVI_API kvi_status kvi_psd_rgrad(int n, double *R, const double *L, const double *G);
/* The exponential map Exp_U(X) = L expm(L^-1 X L^-T) L^T (G4). */
KVI_API kvi_status kvi_psd_exp(int n, double *Unew, const double *L, const double *X);
/* The logarithm Log_U(V) = L logm(L^-1 V L^-T) L^T, and the distance ||logm(L^-1 V L^-T)||_F. */
KVI_API kvi_status kvi_psd_log(int n, double *X, const double *L, const double *V);
KVI_API kvi_status kvi_psd_dist(double *d, int n, const double *L, const double *V);
/* Parallel transport of Z from U along the geodesic t -> Exp_U(t X) to t = 1:
 * Y = E Z E^T, E = L expm(S/2) L^-1, S = L^-1 X L^-T (G6). */
KVI_API kvi_status kvi_psd_transport(int n, double *Y, const double *L, const double *X,
                                     const double *Z);
/* Frame transport from U0 = L0 L0^T to U1 = L1 L1^T: Y = L1 L0^-1 Z L0^-T L1^T (G7), an
 * isometry that keeps whitened coordinates; the Riemannian optimizers' transport. */
KVI_API kvi_status kvi_psd_transport_frame(int n, double *Y, const double *L0, const double *L1,
                                           const double *Z);

typedef enum {
  KVI_PSD_EXP = 0, /* the exponential map (G4) */
  KVI_PSD_RETR2,   /* U + X + X U^-1 X / 2 = L h(S) L^T (G5), a second-order retraction */
  KVI_PSD_CHOL,    /* L h(tau(S)) h(tau(S))^T L^T, tau(S) = strict lower of S + diag(S) / 2 (G8):
                      the factor stays triangular, no factorization */
  KVI_PSD_EUCLID   /* U + X: leaves the manifold for large steps (the damping's test case) */
} kvi_psd_retraction;

/* A retraction step from L along X with numerical safety (G9): the step t X is tried for
 * t = 1, 1/2, 1/4, ... (at most max_halvings halvings) until the new point is finite, positive
 * definite and its Cholesky diagonal ratio max/min stays below 1e8 (condition number 1e16);
 * L1 receives its Cholesky factor and *t_used (may be NULL) the t taken. When no t works the
 * step is rejected: KVI_ERR_LINALG, L1 = L, *t_used = 0. L1 may alias L. */
KVI_API kvi_status kvi_psd_retract(int n, kvi_psd_retraction r, double *L1, const double *L,
                                   const double *X, int max_halvings, double *t_used);

/* ---- the Cholesky parameterization's metric (log-Cholesky, section 2) ---------------------
 * The manifold of lower-triangular matrices with positive diagonal, kronvi's storage of MN
 * factors (strict lower raw, diagonal as logs). With the metric (G10)
 *   <X, Y>_L = sum_{i>j} X_ij Y_ij + sum_i X_ii Y_ii / L_ii^2
 * the storage coordinates are Euclidean: the exponential map, parallel transport and the
 * Riemannian gradient below are the plain Euclidean ones in storage (Euclidean Adam on the
 * Cholesky factors is Riemannian Adam under this metric). X, Y, G are lower triangular. */
KVI_API double kvi_logchol_inner(int n, const double *L, const double *X, const double *Y);
/* R = strict lower of G + diag(L_ii^2 G_ii) (G11). */
KVI_API void kvi_logchol_rgrad(int n, double *R, const double *L, const double *G);
/* L1 = strict lower of (L + X) + diag(L_ii exp(X_ii / L_ii)) (G12). */
KVI_API void kvi_logchol_exp(int n, double *L1, const double *L, const double *X);
/* Parallel transport from L0 to L1: strict lower of X + diag(X_ii L1_ii / L0_ii) (G13). */
KVI_API void kvi_logchol_transport(int n, double *Y, const double *L0, const double *L1,
                                   const double *X);

/* ---- the optimizer's hot path on kronvi's Cholesky storage (kvi_real) -----------------------
 * P (n, n): strict lower raw, diagonal log L_ii, upper never read. */
/* The whitened Euclidean gradient Psi = L^T G L (full symmetric, n x n) of f(U), U = L L^T,
 * from the gradient dP of f with respect to the storage (G14): Psi = 1/2 of the lower triangle
 * of L^T Lbar mirrored, Lbar the gradient with respect to L. work: n * n reals. */
KVI_API void kvi_psd_chol_whiten(int n, kvi_real *Psi, const kvi_real *P, const kvi_real *dP,
                                 kvi_real *work);
/* The Cholesky retraction (G8) in storage: L <- L h(tau(S)), S symmetric (whitened step).
 * KVI_ERR_NONFINITE (P unchanged) when the result is not finite. work: 3 n^2 reals. */
KVI_API kvi_status kvi_psd_chol_retract(int n, kvi_real *P, const kvi_real *S, kvi_real *work);

/* ---- Kronecker products U (x) V of two SPD factors (section 3) -----------------------------
 * A point is a pair (LU (n x n), LV (m x m)); (c U, V / c) is the same point (the scale
 * ambiguity). The metric is the affine-invariant metric of the nm x nm matrix U (x) V restricted
 * to Kronecker tangents, i.e. twice the Fisher metric of N(0, U (x) V). A tangent vector is held
 * in whitened coordinates (P, Q), P = LU^-1 X LU^-T, Q = LV^-1 Y LV^-T, representing
 * P (x) I + I (x) Q, in the horizontal gauge tr(P)/n = tr(Q)/m (G16). */
/* Puts (P, Q) in the horizontal gauge without changing P (x) I + I (x) Q. */
KVI_API void kvi_kron_horizontal(int n, int m, double *P, double *Q);
/* The inner product of two tangent vectors (any gauge): tr(W W') with W = P (x) I + I (x) Q
 * (G15). */
KVI_API double kvi_kron_inner(int n, int m, const double *P, const double *Q, const double *P2,
                              const double *Q2);
/* The Riemannian gradient (horizontal) from the whitened Euclidean gradients PsiU = LU^T GU LU,
 * PsiV = LV^T GV LV of a scale-invariant f (G17): P = (PsiU - tr(PsiU)/n I)/m + s/2 I, likewise
 * Q, s = (tr PsiU + tr PsiV) / (2 n m). */
KVI_API void kvi_kron_rgrad(int n, int m, double *P, double *Q, const double *PsiU,
                            const double *PsiV);
/* The retraction (G18): each factor by the Cholesky retraction with its whitened part, then the
 * balance (G19) (1/n) log det U = (1/m) log det V. LU, LV updated in place; KVI_ERR_LINALG
 * (unchanged) when a factor would not be finite. */
KVI_API kvi_status kvi_kron_retract(int n, int m, double *LU, double *LV, const double *P,
                                    const double *Q);
/* Rescales (LU, LV) -> (c LU, LV / c) so that (1/n) log det U = (1/m) log det V. */
KVI_API void kvi_kron_balance(int n, int m, double *LU, double *LV);
/* Ambient coordinates (X, Y) = (LU P LU^T, LV Q LV^T) of a whitened tangent, and back. */
KVI_API void kvi_kron_to_ambient(int n, int m, double *X, double *Y, const double *LU,
                                 const double *LV, const double *P, const double *Q);
KVI_API kvi_status kvi_kron_from_ambient(int n, int m, double *P, double *Q, const double *LU,
                                         const double *LV, const double *X, const double *Y);
/* The embedded (Frobenius) projection of the slides for X (x) Y, X (n x n), Y (m x m): the
 * tangent dX (x) Y + X (x) dY nearest to Z (nm x nm, row index i*m + j) in the Frobenius norm,
 * in the slides' gauge <X, dX> = 0 (G20). */
KVI_API kvi_status kvi_kron_proj_frobenius(int n, int m, double *dX, double *dY, const double *X,
                                           const double *Y, const double *Z);

/* ---- the Stiefel manifold St(n, p) = {X in R^{n x p} : X^T X = I} (section 4) --------------
 * The embedded metric <A, B> = tr(A^T B). */
/* The tangent projection P_X(Z) = Z - X sym(X^T Z) (G21); also the Riemannian gradient from the
 * Euclidean one, and the vector transport to X (transport by projection). Y may alias Z. */
KVI_API kvi_status kvi_stiefel_proj(int n, int p, double *Y, const double *X, const double *Z);
/* The QR retraction qf(X + t Z) (R with positive diagonal) and the polar retraction
 * (X + t Z)((X + t Z)^T (X + t Z))^{-1/2} (G22). Rejected (KVI_ERR_LINALG, X1 untouched) when
 * X + t Z is not finite or numerically rank-deficient (smallest singular value below
 * 1e-10 of the largest). X1 may alias X. */
KVI_API kvi_status kvi_stiefel_retract_qr(int n, int p, double *X1, const double *X,
                                          const double *Z, double t);
KVI_API kvi_status kvi_stiefel_retract_polar(int n, int p, double *X1, const double *X,
                                             const double *Z, double t);
/* max |X^T X - I|. */
KVI_API double kvi_stiefel_error(int n, int p, const double *X);

/* ---- matrix Lie groups for structured NGD (section 5) --------------------------------------
 * A Gaussian N(mu, S^-1) with precision S = B B^T and B in a group; the local coordinates M
 * live in the group's Lie sub-algebra, and B <- B h(M), h(M) = I + M + M^2 / 2 (G23). */
typedef enum {
  KVI_LIE_DENSE = 0,  /* GL(p); M symmetric */
  KVI_LIE_TRIL,       /* lower triangular; M lower triangular */
  KVI_LIE_BLOCK_UP,   /* [[B_A, B_B], [0, D]], B_A in GL(k), D diagonal (k = 0: diagonal,
                         k = p: dense) */
  KVI_LIE_BLOCK_LOW,  /* [[B_A, 0], [B_C, D]], B_A in GL(k), D diagonal */
  KVI_LIE_BLOCK_DIAG, /* diagonal blocks of size k (the last one smaller), each in GL(k) */
  KVI_LIE_DIAG,       /* diagonal */
  KVI_LIE_KRON,       /* B1 (x) B2 of two groups (p = p1 p2, kind1 and kind2 not KRON) */
  KVI_LIE_TOEPLITZ,   /* lower-triangular Toeplitz sum_j b_j N^j (N the down-shift), b_0 > 0:
                         commutative; M lower-triangular Toeplitz, not entrywise (G35) */
  KVI_LIE_HIER,       /* hierarchical [[B_A, 0], [B_C, [[B_D, 0], [B_3, B_4]]]]: B_A in GL(k),
                         B_D in GL(kb), B_4 diagonal (G36) */
  KVI_LIE_SPCHOL      /* sparse Cholesky [[D_1, 0, 0], [B_A, B_B, 0], [D_2, 0, D_3]]: D_1 (k x k)
                         and D_3 diagonal, B_B in GL(kb), D_2 rectangular diagonal (G37) */
} kvi_lie_kind;

typedef struct {
  kvi_lie_kind kind;
  int p; /* dimension */
  int k; /* BLOCK_UP / BLOCK_LOW: 0..p; BLOCK_DIAG: 1..p; HIER: the outer block k1; SPCHOL: D_1 */
  /* KRON only: the factors' kinds, sizes and block parameters */
  kvi_lie_kind kind1, kind2;
  int p1, p2, k1, k2;
  /* HIER: the inner block k2 = kb; SPCHOL: the dense block B_B (k, kb >= 0, k + kb <= p); KRON
   * with a HIER or SPCHOL factor: kb1, kb2 the factors'. Zero for every other group. */
  int kb, kb1, kb2;
} kvi_lie_group;

KVI_API kvi_status kvi_lie_group_check(const kvi_lie_group *g);
/* "dense", "tril", "up5", "low5", "bdiag5", "diag", "toeplitz", "hier5,3" (k = 5, kb = 3),
 * "spchol5,3" (k = 5, kb = 3), "kron2x3(tril,toeplitz)" into buf. */
KVI_API const char *kvi_lie_group_name(const kvi_lie_group *g, char *buf, size_t size);
/* Parses the names above (p from the caller; KRON: "kron:P1:KIND1:KIND2" with p2 = p / P1). */
KVI_API kvi_status kvi_lie_group_parse(kvi_lie_group *g, const char *s, int p);
/* 1 if the p x p matrix B lies in the group (zeros where the structure has them, to tol). */
KVI_API int kvi_lie_in_group(const kvi_lie_group *g, const double *B, double tol);
/* M = C (.) kappa(X) (G24) for a non-Kronecker group: kappa keeps the sub-algebra's entries of X
 * (its symmetric blocks symmetrized), C weighs them 1/2 on symmetric blocks and on the
 * diagonal, 1 on the off-diagonal blocks. TOEPLITZ is not entrywise (G35): M = sum_j m_j N^j
 * with m_0 half the mean of X's diagonal and m_j the mean of its j-th subdiagonal. In every
 * case M = F^-1 grad, the exact natural gradient of the local coordinates (G24a). */
KVI_API kvi_status kvi_lie_project(const kvi_lie_group *g, double *M, const double *X);
/* h(M) = I + M + M^2 / 2. */
KVI_API void kvi_lie_h(int p, double *H, const double *M);

/* Numerical safety of a B update (G27): the local step M is scaled down to Frobenius norm
 * max_norm when larger (counted as damped); a result that is not finite or whose smallest
 * singular value falls below 1e-12 of its largest (estimated from an LU factorization for
 * non-triangular groups) is rejected (B unchanged, KVI_ERR_LINALG, counted). */
typedef struct {
  double max_norm; /* 0: 1 */
  int damped, rejected;
} kvi_lie_safety;

/* B <- B h(beta C (.) kappa(X)) for a non-Kronecker group (G25). X: the p x p matrix
 * 2 B^-1 g_Sigma B^-T. */
KVI_API kvi_status kvi_lie_update(const kvi_lie_group *g, double *B, const double *X, double beta,
                                  kvi_lie_safety *safe);
/* Kronecker groups B = B1 (x) B2 (G26): X1 (p1 x p1) and X2 (p2 x p2) are the partial traces
 * tr_2 and tr_1 of 2 B^-1 g_Sigma B^-T; M1 = beta/p2 C1 (.) kappa1(X1), M2 likewise. */
KVI_API kvi_status kvi_lie_update_kron(const kvi_lie_group *g, double *B1, double *B2,
                                       const double *X1, const double *X2, double beta,
                                       kvi_lie_safety *safe);
/* The kvi_real version of the Kronecker-of-triangular factor step used by the lie-ngd
 * optimizer: K <- K h(M), K and M lower triangular (n x n), in place. KVI_ERR_NONFINITE (K
 * unchanged) when not finite. work: n^2 reals. */
KVI_API kvi_status kvi_lie_tril_step(int n, kvi_real *K, const kvi_real *M, kvi_real *work);

/* ---- structured NGD solvers (section 6) ------------------------------------------------------
 * A problem: minimize l(x), x in R^dim. f and fg are required; hess (dense dim x dim) or hvp
 * (with hdiag, optional) enable the second-order estimators (at the mean, Price). */
typedef struct {
  int dim;
  double (*f)(const double *x, void *user);
  double (*fg)(const double *x, double *g, void *user); /* returns f, writes the gradient */
  void (*hess)(const double *x, double *H, void *user); /* NULL: not available */
  void *user;
  double f_star; /* the known minimum (benchmarks), or NAN */
  const char *name;
  /* The Hessian-vector-product path (docs/geom.md section 6, "Hessian-vector products"); NULL:
   * not available. hvp: Hv = H(x) v (dim); hdiag: d = the diagonal of H(x) (dim). */
  void (*hvp)(const double *x, const double *v, double *Hv, void *user);
  void (*hdiag)(const double *x, double *d, void *user);
} kvi_lie_problem;

/* How g_mu and g_Sigma are estimated (G28-G31). */
typedef enum {
  KVI_LIE_EST_MEAN = 0, /* gradient and Hessian at the mean (G28), deterministic */
  KVI_LIE_EST_PRICE,    /* Monte Carlo: E[grad], E[Hessian] (Bonnet / Price) */
  KVI_LIE_EST_STEIN,    /* Monte Carlo from gradients: E[S (w - mu) grad^T], symmetrized */
  KVI_LIE_EST_REPARAM,  /* Monte Carlo reparameterization: E[eps (B^-1 grad)^T] */
  KVI_LIE_EST_VALUES    /* from function values only: rank-based utilities (xNES-like) */
} kvi_lie_estimator;

typedef struct {
  int iters;
  long fevals, gevals, hevals; /* function, gradient and Hessian evaluations */
  double f, seconds;
  bool converged;
  int damped, rejected;
  long hvps, hdiags; /* Hessian-vector products and Hessian diagonals (the HVP path) */
} kvi_lie_report;

typedef struct {
  kvi_lie_group group;
  kvi_lie_estimator est;
  double beta;   /* step of the mean */
  double beta_b; /* step of B (0: beta) */
  double gamma;  /* weight of the entropy term: 1 for optimization and VI, 0 for search */
  int samples;   /* Monte Carlo samples per iteration (MEAN: unused) */
  int max_iter;
  double tol;         /* stop when f(mu) - f_star < tol (f_star finite) */
  double max_norm;    /* safety bound of ||M||_F per step (0: 1) */
  double max_seconds; /* stop after this long (0: no limit) */
  uint64_t seed;
  /* Called once per iteration with the report so far (r->f: f at the mean before the step,
   * r->iters: the iterations done before this one) and the current mu and B; a non-zero return
   * stops the run (KVI_OK, not converged). NULL: none. */
  int (*progress)(const kvi_lie_report *r, const double *mu, const double *B, void *user);
  void *progress_user;
  /* A step that raises f at the mean at all (not only more than tenfold) is undone and retried
   * with half the steps, as a backtracking line search would (for the deterministic estimator
   * at the mean; the Monte Carlo estimates' noise would stall it). false: the source's update. */
  bool monotone;
  /* MEAN and PRICE: X from pb->hvp (and pb->hdiag) even when pb->hess is set. Without pb->hess
   * the HVP path is taken anyway. */
  bool use_hvp;
} kvi_lie_opts;

KVI_API kvi_lie_opts kvi_lie_opts_default(kvi_lie_group g);
/* The starting steps and precision of the optimization tables (docs/geom.md, "Steps and
 * start"): for the estimators from gradients and Hessians beta = 1, beta_b = 0.1 and
 * S0 = s0 I with s0 = max(1, max_i |H_ii(mu)|) (pb->hess at mu, else pb->hdiag; 1 without
 * either); for the search from values (o->est = KVI_LIE_EST_VALUES) the xNES settings
 * gamma = 0, beta = 1, beta_b = (9 + 3 ln p) / (10 p^1.5), 4 + 3 ln p samples and s0 = 4.
 * Sets those fields of o
 * (group and est as given) and writes B = sqrt(s0) I in the group's storage (KRON:
 * B1 = B2 = s0^(1/4) I). */
KVI_API kvi_status kvi_lie_start(const kvi_lie_problem *pb, kvi_lie_opts *o, const double *mu,
                                 double *B);
/* Structured NGD on the Gaussian N(mu, (B B^T)^-1) for min E_q[l] - gamma H(q) (G32): mu (dim)
 * and B (dim x dim, in the group; for KRON only B1 (p1 x p1) and B2 (p2 x p2) stored back to
 * back) are updated in place. The report counts evaluations and time. */
KVI_API kvi_status kvi_lie_minimize(const kvi_lie_problem *pb, const kvi_lie_opts *o, double *mu,
                                    double *B, kvi_lie_report *r);
/* One iteration of the same update with caller-given estimates: g_mu (dim) and X = 2 B^-1
 * g_Sigma B^-T (dim x dim). For tests (group invariance) and custom estimators. */
KVI_API kvi_status kvi_lie_step(const kvi_lie_group *g, double *mu, double *B, const double *g_mu,
                                const double *X, double beta, double beta_b, kvi_lie_safety *safe);

/* The estimates of one iteration (G28-G31) at (mu, B): g_mu and X = 2 B^-1 g_Sigma B^-T, for a
 * target l and entropy weight gamma. rng: the samples' stream. MEAN and PRICE use pb->hess when
 * set, else the HVP path (pb->hvp, pb->hdiag): then only the entries of X that the group's
 * projection kappa reads are computed (all of them for KRON), the others are 0; to force that
 * path with a Hessian present, pass a copy of the problem with hess = NULL. Neither hess nor
 * hvp: KVI_ERR_ARG. */
KVI_API kvi_status kvi_lie_estimate(const kvi_lie_problem *pb, kvi_lie_estimator est, int samples,
                                    double gamma, const double *mu, const double *B,
                                    const kvi_lie_group *g, kvi_rng *rng, double *g_mu, double *X,
                                    kvi_lie_report *r);

/* Mixture of K structured Gaussians q(w) = sum_k w_k N(w | mu_k, (B_k B_k^T)^-1) fitted to
 * exp(-l) by structured NGD with Stein estimates (G33): mu (K x dim), B (K x dim x dim) updated in
 * place, iters iterations of samples draws per component. logw (K): the log weights, learned
 * (G34) and normalized in place; NULL: uniform weights 1/K, fixed. */
KVI_API kvi_status kvi_lie_mixture_fit(const kvi_lie_problem *pb, const kvi_lie_group *g, int K,
                                       double *mu, double *B, double *logw, int iters, int samples,
                                       double beta, uint64_t seed, kvi_lie_report *r);

/* Built-in test problems (dim x dim dense Hessians, and O(dim) hvp and hdiag): chained Rosenbrock
 * sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 and Dixon-Price
 * (x_1 - 1)^2 + sum_{i>=2} i (2 x_i^2 - x_{i-1})^2, both with minimum 0. */
KVI_API kvi_lie_problem kvi_lie_problem_rosenbrock(int dim);
KVI_API kvi_lie_problem kvi_lie_problem_dixon_price(int dim);

#ifdef __cplusplus
}
#endif
#endif
