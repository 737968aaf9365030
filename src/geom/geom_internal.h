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

#endif
