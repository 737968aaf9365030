/* The triangular-Toeplitz group (docs/geom.md section 5, (G35)): B = sum_j b_j N^j with N the
 * down-shift and b_0 > 0. The matrices commute and are determined by their first column, so a
 * product is a truncated convolution of first columns and the inverse a triangular recurrence:
 * O(p^2) each (the fill of the p x p storage costs as much). */
#include <math.h>
#include <string.h>

#include "geom/geom_internal.h"

static void kvi__toep_col(int p, double *c, const double *A) {
  for (int i = 0; i < p; i++) c[i] = A[(size_t)i * p];
}

static void kvi__toep_fill(int p, double *A, const double *c) {
  for (int i = 0; i < p; i++)
    for (int j = 0; j < p; j++) A[(size_t)i * p + j] = j <= i ? c[i - j] : 0;
}

void kvi__toep_mul(int p, double *c, const double *a, const double *b) {
  for (int n = 0; n < p; n++) {
    double s = 0;
    for (int j = 0; j <= n; j++) s += a[j] * b[n - j];
    c[n] = s;
  }
}

/* The Fisher matrix of the coordinates m_j is diagonal: F_00 = 2 p, F_jj = p - j; the gradient is
 * tr X for m_0 and the sum of the j-th subdiagonal for m_j (G35). */
void kvi__toep_project(int p, double *M, const double *X) {
  memset(M, 0, (size_t)p * p * sizeof *M);
  for (int j = 0; j < p; j++) {
    double s = 0;
    for (int i = j; i < p; i++) s += X[(size_t)i * p + i - j];
    const double m = j == 0 ? 0.5 * s / p : s / (p - j);
    for (int i = j; i < p; i++) M[(size_t)i * p + i - j] = m;
  }
}

void kvi__toep_apply(int p, double *Bn, const double *B, const double *M, double *w) {
  double *b = w, *m = w + p, *h = w + 2 * (size_t)p;
  kvi__toep_col(p, b, B);
  kvi__toep_col(p, m, M);
  kvi__toep_mul(p, h, m, m); /* h(M) = I + M + M^2 / 2 */
  for (int i = 0; i < p; i++) h[i] = 0.5 * h[i] + m[i] + (i == 0);
  kvi__toep_mul(p, m, b, h);
  kvi__toep_fill(p, Bn, m);
}

bool kvi__toep_inverse(int p, const double *B, double *R, double *w) {
  double *b = w, *r = w + p;
  kvi__toep_col(p, b, B);
  if (b[0] == 0) return false;
  r[0] = 1 / b[0];
  for (int n = 1; n < p; n++) { /* sum_{j<=n} b_j r_{n-j} = 0 */
    double s = 0;
    for (int j = 1; j <= n; j++) s += b[j] * r[n - j];
    r[n] = -s * r[0];
  }
  kvi__toep_fill(p, R, r);
  return kvi__dfinite(r, (size_t)p);
}

int kvi__toep_in_group(int p, const double *B, double tol) {
  if (!(B[0] > 0)) return 0;
  for (int i = 0; i < p; i++)
    for (int j = 0; j < p; j++) {
      const double want = j <= i ? B[(size_t)(i - j) * p] : 0;
      if (fabs(B[(size_t)i * p + j] - want) > tol) return 0;
    }
  return 1;
}
