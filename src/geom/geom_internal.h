/* Private double-precision helpers of the geom module (row-major, over CBLAS/LAPACKE). */
#ifndef KRONVI_GEOM_INTERNAL_H
#define KRONVI_GEOM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "kronvi/geom.h"

/* C (M,N) = alpha op(A) op(B) + beta C */
void kvi__dgemm(bool ta, bool tb, int M, int N, int K, double alpha, const double *A,
                const double *B, double beta, double *C);
/* B (n x n2) <- op(L) B (left) or B op(L) (right), L lower triangular n x n (or n2 x n2). */
void kvi__dtrmm(bool right, bool trans, int M, int N, const double *L, double *B);
/* Solves op(L) X = B (left) or X op(L) = B (right) in place of B. */
void kvi__dtrsm(bool right, bool trans, int M, int N, const double *L, double *B);
/* In-place lower Cholesky (upper zeroed); false if not positive definite or not finite. */
bool kvi__dchol(int n, double *A);
/* Eigendecomposition of the symmetric A (lower read): A <- eigenvectors (columns), w ascending. */
bool kvi__dsyev(int n, double *A, double *w);
/* F = Q diag(f(w)) Q^T for the symmetric X (n x n); work: n*n + n doubles. */
bool kvi__dfunm_sym(int n, double *F, const double *X, double (*f)(double), double *work);
/* X <- (X + X^T) / 2 */
void kvi__dsym(int n, double *X);
bool kvi__dfinite(const double *x, size_t n);
double kvi__dtrace(int n, const double *X);
double kvi__dnorm2(const double *x, size_t n); /* sum of squares */
void kvi__deye(int n, double *X);
/* H = I + M + M^2 / 2 (any M). */
void kvi__dh(int n, double *H, const double *M);
/* whitening S = L^-1 X L^-T (X symmetric) in place-safe form: S may alias X. */
void kvi__dwhiten(int n, double *S, const double *L, const double *X);
/* X = L S L^T */
void kvi__dunwhiten(int n, double *X, const double *L, const double *S);
/* tau(S) = strict lower of S + diag(S) / 2 (lower triangular), may alias. */
void kvi__dtau(int n, double *T, const double *S);

/* ---- Lie groups (lie.c, lie_struct.c, lie_toep.c) ---- */
/* One non-Kronecker group (a group itself or a Kronecker group's factor): kind, size and block
 * parameters (k; kb: HIER's inner block). */
typedef struct {
  kvi_lie_kind kind;
  int p, k, kb;
} kvi__sg;
/* which = 0: g itself (not KRON); 1, 2: the factors of a KRON group. */
kvi__sg kvi__sg_of(const kvi_lie_group *g, int which);
/* Is (i, j) a free entry of the group's matrices; *sym: is it in a symmetric block of the
 * algebra (dense, block-diagonal, the k x k block of the block-triangular groups, HIER's two
 * dense diagonal blocks, SPCHOL's B_B). TOEPLITZ: its lower triangle (the entries are tied, not
 * free). */
bool kvi__lie_free(const kvi__sg *g, int i, int j, bool *sym);
/* Does the group use the sparse (CSR) kernels rather than BLAS on full matrices: diagonal,
 * block-triangular with 2 k < p, HIER with 2 (k + kb) < p, SPCHOL with 2 kb (k + kb) < p^2. */
bool kvi__lie_sparse(const kvi__sg *g);
/* A simple group's pattern in CSR form (with_transpose: its union with the transpose). */
typedef struct {
  int p;
  int *rp, *ci;
} kvi__pat;
bool kvi__pat_make(kvi__pat *t, const kvi__sg *g, bool with_transpose);
void kvi__pat_free(kvi__pat *t);
/* C = A B for A, B with the pattern t (C gets the same pattern; C must not alias). */
void kvi__pat_mul(const kvi__pat *t, const double *A, const double *B, double *C);
/* y = R x, or R^T x with trans, R with the pattern t. */
void kvi__pat_matvec(const kvi__pat *t, const double *R, const double *x, double *y, bool trans);
/* X = R H R^T on the entries of u, zero elsewhere (R with pattern t, H dense); T: p^2. */
void kvi__pat_congruence(const kvi__pat *t, const kvi__pat *u, const double *R, const double *H,
                         double *X, double *T);
/* What one run of kvi_lie_minimize keeps across iterations for a non-Kronecker group (the pattern
 * is a function of the group alone): sparse: the group uses the CSR kernels; t, u: its pattern
 * and with its transpose (built for sparse groups, and for the others when the HVP plan needs
 * them; else empty); w: the update's scratch, 2 p^2 doubles (M and h(M)), and B h(M) in the
 * next p^2. NULL in the functions' arguments below: each call builds what it needs. */
typedef struct {
  bool sparse;
  kvi__pat t, u;
  double *w;
} kvi__pats;
/* For g (KRON: nothing kept, sparse false); with_pat: build t and u for a dense group too.
 * false: out of memory. */
bool kvi__pats_make(kvi__pats *c, const kvi_lie_group *g, bool with_pat);
void kvi__pats_free(kvi__pats *c);
/* kvi_lie_update without the argument checks, with the patterns c (or NULL). */
kvi_status kvi__lie_update(const kvi_lie_group *g, double *B, const double *X, double beta,
                           kvi_lie_safety *safe, const kvi__pats *c);
/* R = B^-1 by the group's structure (w: p^2, ipiv: p); false if singular or not finite. */
bool kvi__lie_inverse(const kvi__sg *g, const double *B, double *R, double *w, int *ipiv);
/* min / max |pivot| of B (its dense blocks' LU pivots and its diagonal elsewhere; TOEPLITZ: 0
 * unless b_0 > 0). */
double kvi__lie_pivot_ratio(const kvi__sg *g, const double *B, double *w, int *ipiv);

/* Lower-triangular Toeplitz matrices (lie_toep.c), held by their first column c (c_j the
 * coefficient of N^j) and filled into full p x p storage. */
/* c = first column of the product of the matrices with first columns a and b (c may not alias). */
void kvi__toep_mul(int p, double *c, const double *a, const double *b);
/* M = sum_j m_j N^j with m_0 = mean(diag X) / 2, m_j = mean of X's j-th subdiagonal (G35). */
void kvi__toep_project(int p, double *M, const double *X);
/* Bn = B h(M) from the first columns of B and M; w: 3 p doubles. */
void kvi__toep_apply(int p, double *Bn, const double *B, const double *M, double *w);
/* R = B^-1 (lower-triangular Toeplitz, O(p^2)); false if b_0 = 0 or not finite; w: 2 p. */
bool kvi__toep_inverse(int p, const double *B, double *R, double *w);
/* 1 if B is lower-triangular Toeplitz to tol with b_0 > 0. */
int kvi__toep_in_group(int p, const double *B, double tol);

/* ---- structured NGD solvers (lie_solve.c, lie_hvp.c) ---- */
/* R = B^-1 explicit. Groups with a sparse pattern (diagonal, block-triangular with k < p/2): R has
 * B's pattern and every product touches it only (its union with the transpose for X); the
 * others (dense, triangular, block-diagonal, Kronecker): BLAS on full matrices, whose zeros stay
 * exact zeros. */
typedef struct {
  int p;
  bool dense;
  kvi_lie_group g;
  double *R;             /* B^-1, p x p */
  kvi__pat t, u;         /* the pattern, and with its transpose (non-dense groups) */
  const kvi__pats *pats; /* the run's patterns (t and u are then theirs), or NULL */
} kvi__rop;
/* y = R x, or R^T x */
void kvi__rop_mv(const kvi__rop *o, const double *x, double *y, bool trans);

/* Which entries of X = R H R^T the HVP path computes (lie_hvp.c): the columns j with col[j]
 * (one HVP with v = r_j, row j of R, each), and the diagonal entries X_ii of the others from the
 * Hessian's diagonal (their rows of R are multiples of e_i). */
typedef struct {
  int p, ncol;
  int *cols;          /* the ncol columns computed */
  unsigned char *col; /* p flags */
  bool need_hdiag;
} kvi__hvp_plan;
/* The plan for R's group; have_hdiag: the problem has an hdiag. false: out of memory. */
bool kvi__hvp_plan_make(kvi__hvp_plan *pl, const kvi__rop *R, bool have_hdiag);
void kvi__hvp_plan_free(kvi__hvp_plan *pl);
/* X += c (R H(x) R^T on the plan's columns and diagonal); w: 2 p. Counts in r. */
void kvi__hvp_add(const kvi_lie_problem *pb, const kvi__hvp_plan *pl, const kvi__rop *R,
                  const double *x, double c, double *X, double *w, kvi_lie_report *r);
/* Fills the symmetric counterparts of the computed columns (averaging where both were). */
void kvi__hvp_finish(const kvi__hvp_plan *pl, double *X);

#endif
