/* Structure-aware kernels of the Lie-group solvers (docs/geom.md section 6, "Cost"): the groups'
 * sparsity patterns in CSR form, products and congruences restricted to them, and the
 * structured inverses. With a block of size k they make an iteration O(k p^2) with a dense
 * Hessian (O(k^2 p) for the update of B) instead of O(p^3). */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geom/geom_internal.h"

bool kvi__lie_sparse(const kvi__sg *g) {
  switch (g->kind) {
    case KVI_LIE_DIAG:
      return true;
    case KVI_LIE_BLOCK_UP:
    case KVI_LIE_BLOCK_LOW:
      return 2 * g->k < g->p;
    case KVI_LIE_HIER:
      return 2 * (g->k + g->kb) < g->p;
    case KVI_LIE_SPCHOL: /* B_A and B_B cover less than half of the matrix */
      return 2 * (long long)g->kb * (g->k + g->kb) < (long long)g->p * g->p;
    default:
      return false;
  }
}

bool kvi__pat_make(kvi__pat *t, const kvi__sg *g, bool with_transpose) {
  const int p = g->p;
  memset(t, 0, sizeof *t);
  t->p = p;
  size_t nnz = 0;
  bool sym;
  for (int i = 0; i < p; i++)
    for (int j = 0; j < p; j++)
      nnz += kvi__lie_free(g, i, j, &sym) || (with_transpose && kvi__lie_free(g, j, i, &sym));
  t->rp = malloc((size_t)(p + 1) * sizeof *t->rp);
  t->ci = malloc((nnz ? nnz : 1) * sizeof *t->ci);
  if (!t->rp || !t->ci) {
    kvi__pat_free(t);
    return false;
  }
  size_t c = 0;
  for (int i = 0; i < p; i++) {
    t->rp[i] = (int)c;
    for (int j = 0; j < p; j++)
      if (kvi__lie_free(g, i, j, &sym) || (with_transpose && kvi__lie_free(g, j, i, &sym)))
        t->ci[c++] = j;
  }
  t->rp[p] = (int)c;
  return true;
}

void kvi__pat_free(kvi__pat *t) {
  free(t->rp), free(t->ci);
  t->rp = NULL, t->ci = NULL;
}

void kvi__pat_mul(const kvi__pat *t, const double *A, const double *B, double *C) {
  const int p = t->p;
  memset(C, 0, (size_t)p * p * sizeof *C);
  for (int i = 0; i < p; i++)
    for (int a = t->rp[i]; a < t->rp[i + 1]; a++) {
      const int l = t->ci[a];
      const double v = A[(size_t)i * p + l];
      if (v == 0) continue;
      for (int b = t->rp[l]; b < t->rp[l + 1]; b++) {
        const int j = t->ci[b];
        C[(size_t)i * p + j] += v * B[(size_t)l * p + j];
      }
    }
}

void kvi__pat_matvec(const kvi__pat *t, const double *R, const double *x, double *y, bool trans) {
  const int p = t->p;
  if (trans) memset(y, 0, (size_t)p * sizeof *y);
  for (int i = 0; i < p; i++) {
    double s = 0;
    for (int a = t->rp[i]; a < t->rp[i + 1]; a++) {
      const int j = t->ci[a];
      if (trans)
        y[j] += R[(size_t)i * p + j] * x[i];
      else
        s += R[(size_t)i * p + j] * x[j];
    }
    if (!trans) y[i] = s;
  }
}

void kvi__pat_congruence(const kvi__pat *t, const kvi__pat *u, const double *R, const double *H,
                         double *X, double *T) {
  const int p = t->p;
  for (int i = 0; i < p; i++) { /* T = R H, row by row over R's pattern */
    double *Ti = T + (size_t)i * p;
    memset(Ti, 0, (size_t)p * sizeof *Ti);
    for (int a = t->rp[i]; a < t->rp[i + 1]; a++) {
      const int l = t->ci[a];
      const double r = R[(size_t)i * p + l];
      const double *Hl = H + (size_t)l * p;
      for (int c = 0; c < p; c++) Ti[c] += r * Hl[c];
    }
  }
  memset(X, 0, (size_t)p * p * sizeof *X);
  for (int i = 0; i < p; i++) /* X_ij = sum_b T_ib R_jb on u */
    for (int a = u->rp[i]; a < u->rp[i + 1]; a++) {
      const int j = u->ci[a];
      double s = 0;
      for (int b = t->rp[j]; b < t->rp[j + 1]; b++) {
        const int c = t->ci[b];
        s += T[(size_t)i * p + c] * R[(size_t)j * p + c];
      }
      X[(size_t)i * p + j] = s;
    }
}

/* Inverse of the leading-offset k x k block at (o, o) of the p x p matrix B into the same block of
 * R; w: k^2 doubles. */
static bool kvi__block_inverse(int p, int o, int k, const double *B, double *R, double *w,
                               int *ipiv) {
  if (k == 0) return true;
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) w[(size_t)i * k + j] = B[(size_t)(o + i) * p + o + j];
  if (LAPACKE_dgetrf(LAPACK_ROW_MAJOR, k, k, w, k, ipiv) != 0) return false;
  if (LAPACKE_dgetri(LAPACK_ROW_MAJOR, k, w, k, ipiv) != 0) return false;
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) R[(size_t)(o + i) * p + o + j] = w[(size_t)i * k + j];
  return true;
}

/* B_L^-1 C B_A^-1 for the block-lower part below the k x k block at (0, 0) (rows k.., columns
 * < k), with R's blocks on and below the diagonal at k.. already inverted and sparse in the
 * pattern of g (the rows of R's lower-right part have their nonzeros in columns [lo, hi) and on
 * the diagonal); written negated into R; T: (p - k) k doubles. */
static void kvi__lower_left(int p, int k, int lo, int hi, const double *B, double *R, double *T) {
  for (int i = k; i < p; i++) /* T = C A^-1 */
    for (int j = 0; j < k; j++) {
      double s = 0;
      for (int l = 0; l < k; l++) s += B[(size_t)i * p + l] * R[(size_t)l * p + j];
      T[(size_t)(i - k) * k + j] = s;
    }
  for (int i = k; i < p; i++)
    for (int j = 0; j < k; j++) {
      double s = i >= hi ? R[(size_t)i * p + i] * T[(size_t)(i - k) * k + j] : 0;
      for (int l = lo; l < hi; l++) s += R[(size_t)i * p + l] * T[(size_t)(l - k) * k + j];
      R[(size_t)i * p + j] = -s;
    }
}

/* HIER: [[A^-1, 0], [-L^-1 C A^-1, L^-1]], L^-1 the block-lower inverse of [[D, 0], [B3, B4]]. */
static bool kvi__hier_inverse(int p, int k, int kb, const double *B, double *R, double *w,
                              int *ipiv) {
  if (!kvi__block_inverse(p, 0, k, B, R, w, ipiv) || !kvi__block_inverse(p, k, kb, B, R, w, ipiv))
    return false;
  const int e = k + kb;
  for (int j = e; j < p; j++) R[(size_t)j * p + j] = 1 / B[(size_t)j * p + j];
  for (int i = e; i < p; i++) /* -B4^-1 B3 D^-1 */
    for (int j = k; j < e; j++) {
      double s = 0;
      for (int l = k; l < e; l++) s += B[(size_t)i * p + l] * R[(size_t)l * p + j];
      R[(size_t)i * p + j] = -s * R[(size_t)i * p + i];
    }
  kvi__lower_left(p, k, k, e, B, R, w);
  return true;
}

/* SPCHOL: [[D_1^-1, 0, 0], [-B_B^-1 B_A D_1^-1, B_B^-1, 0], [-D_3^-1 D_2 D_1^-1, 0, D_3^-1]],
 * O(kb^3 + kb^2 k + p). */
static bool kvi__spchol_inverse(int p, int k, int kb, const double *B, double *R, double *w,
                                int *ipiv) {
  const int e = k + kb;
  if (!kvi__block_inverse(p, k, kb, B, R, w, ipiv)) return false;
  for (int i = 0; i < p; i++)
    if (i < k || i >= e) R[(size_t)i * p + i] = 1 / B[(size_t)i * p + i];
  for (int i = k; i < e; i++)
    for (int j = 0; j < k; j++) {
      double s = 0;
      for (int l = k; l < e; l++) s += R[(size_t)i * p + l] * B[(size_t)l * p + j];
      R[(size_t)i * p + j] = -s * R[(size_t)j * p + j];
    }
  for (int i = e; i < p && i - e < k; i++)
    R[(size_t)i * p + i - e] =
        -R[(size_t)i * p + i] * B[(size_t)i * p + i - e] * R[(size_t)(i - e) * p + i - e];
  return true;
}

bool kvi__lie_inverse(const kvi__sg *g, const double *B, double *R, double *w, int *ipiv) {
  const kvi_lie_kind kind = g->kind;
  const int p = g->p, k = g->k;
  memset(R, 0, (size_t)p * p * sizeof *R);
  switch (kind) {
    case KVI_LIE_DENSE:
      if (!kvi__block_inverse(p, 0, p, B, R, w, ipiv)) return false;
      break;
    case KVI_LIE_DIAG:
      for (int i = 0; i < p; i++) R[(size_t)i * p + i] = 1 / B[(size_t)i * p + i];
      break;
    case KVI_LIE_TRIL:
      for (int i = 0; i < p; i++)
        for (int j = 0; j <= i; j++) R[(size_t)i * p + j] = B[(size_t)i * p + j];
      if (LAPACKE_dtrtri(LAPACK_ROW_MAJOR, 'L', 'N', p, R, p) != 0) return false;
      break;
    case KVI_LIE_TOEPLITZ:
      if (!kvi__toep_inverse(p, B, R, w)) return false;
      break;
    case KVI_LIE_HIER:
      if (!kvi__hier_inverse(p, k, g->kb, B, R, w, ipiv)) return false;
      break;
    case KVI_LIE_SPCHOL:
      if (!kvi__spchol_inverse(p, k, g->kb, B, R, w, ipiv)) return false;
      break;
    case KVI_LIE_BLOCK_DIAG:
      for (int o = 0; o < p; o += k)
        if (!kvi__block_inverse(p, o, k < p - o ? k : p - o, B, R, w, ipiv)) return false;
      break;
    case KVI_LIE_BLOCK_UP:  /* [[A^-1, -A^-1 Bb D^-1], [0, D^-1]] */
    case KVI_LIE_BLOCK_LOW: /* [[A^-1, 0], [-D^-1 C A^-1, D^-1]] */
      if (!kvi__block_inverse(p, 0, k, B, R, w, ipiv)) return false;
      for (int j = k; j < p; j++) R[(size_t)j * p + j] = 1 / B[(size_t)j * p + j];
      for (int i = 0; i < k; i++)
        for (int j = k; j < p; j++) {
          double s = 0;
          if (kind == KVI_LIE_BLOCK_UP) {
            for (int l = 0; l < k; l++) s += R[(size_t)i * p + l] * B[(size_t)l * p + j];
            R[(size_t)i * p + j] = -s * R[(size_t)j * p + j];
          } else {
            for (int l = 0; l < k; l++) s += B[(size_t)j * p + l] * R[(size_t)l * p + i];
            R[(size_t)j * p + i] = -s * R[(size_t)j * p + j];
          }
        }
      break;
    default:
      return false;
  }
  return kvi__dfinite(R, (size_t)p * p);
}

/* min / max of |pivots| of an LU of the k x k block at (o, o), folded into lo, hi. */
static void kvi__block_pivots(int p, int o, int k, const double *B, double *w, int *ipiv,
                              double *lo, double *hi) {
  if (k == 0) return;
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) w[(size_t)i * k + j] = B[(size_t)(o + i) * p + o + j];
  if (LAPACKE_dgetrf(LAPACK_ROW_MAJOR, k, k, w, k, ipiv) < 0) {
    *lo = 0;
    return;
  }
  for (int i = 0; i < k; i++) {
    const double d = fabs(w[(size_t)i * k + i]);
    *lo = fmin(*lo, d), *hi = fmax(*hi, d);
  }
}

double kvi__lie_pivot_ratio(const kvi__sg *g, const double *B, double *w, int *ipiv) {
  const kvi_lie_kind kind = g->kind;
  const int p = g->p, k = g->k;
  double lo = INFINITY, hi = 0;
  int dense_lo = 0, dense_end = 0; /* B's diagonal entries outside [lo, end) are its pivots */
  if (kind == KVI_LIE_TOEPLITZ && !(B[0] > 0)) return 0;
  if (kind == KVI_LIE_DENSE) kvi__block_pivots(p, 0, p, B, w, ipiv, &lo, &hi), dense_end = p;
  if (kind == KVI_LIE_BLOCK_UP || kind == KVI_LIE_BLOCK_LOW)
    kvi__block_pivots(p, 0, k, B, w, ipiv, &lo, &hi), dense_end = k;
  if (kind == KVI_LIE_HIER) {
    kvi__block_pivots(p, 0, k, B, w, ipiv, &lo, &hi);
    kvi__block_pivots(p, k, g->kb, B, w, ipiv, &lo, &hi), dense_end = k + g->kb;
  }
  if (kind == KVI_LIE_SPCHOL) /* D_1, B_B, D_3 */
    kvi__block_pivots(p, k, g->kb, B, w, ipiv, &lo, &hi), dense_lo = k, dense_end = k + g->kb;
  if (kind == KVI_LIE_BLOCK_DIAG) {
    for (int o = 0; o < p; o += k)
      kvi__block_pivots(p, o, k < p - o ? k : p - o, B, w, ipiv, &lo, &hi);
    dense_end = p;
  }
  for (int i = 0; i < p; i++) {
    if (i >= dense_lo && i < dense_end) continue;
    const double d = fabs(B[(size_t)i * p + i]);
    lo = fmin(lo, d), hi = fmax(hi, d);
  }
  return hi > 0 ? lo / hi : 0;
}
