/* The Stiefel manifold (docs/geom.md section 4): 10^4 steps of the QR and polar retractions
 * keep X^T X = I to rounding; the projection is tangent and idempotent; the Riemannian gradient
 * of the Brockett cost tr(X^T A X N) represents its derivative along both retraction curves
 * (central differences); transport by projection lands in the new tangent space; rank-deficient
 * and non-finite steps are rejected. */
#include "geom_test_util.h"
#include "kvi_test.h"

#define n 7
#define p 3

static double brockett(const double *A, const double *Nd, const double *X) {
  double AX[n * p];
  gt_mul(n, p, n, A, false, X, false, AX);
  double f = 0;
  for (int k = 0; k < p; k++)
    for (int i = 0; i < n; i++) f += Nd[k] * X[i * p + k] * AX[i * p + k];
  return f;
}

static void start(kvi_rng *r, double *X) {
  double Z[n * p] = {0};
  gt_randn(r, X, n * p, 1);
  CHECK_OK(kvi_stiefel_retract_qr(n, p, X, X, Z, 0));
}

/* max |X^T Z + Z^T X| */
static double tangency(const double *X, const double *Z) {
  double C[p * p];
  gt_mul(p, p, n, X, true, Z, false, C);
  double e = 0;
  for (int i = 0; i < p; i++)
    for (int j = 0; j < p; j++) e = fmax(e, fabs(C[i * p + j] + C[j * p + i]));
  return e;
}

static void test_stays(void) {
  kvi_rng r = kvi_rng_stream(3, 1);
  for (int kind = 0; kind < 2; kind++) {
    double X[n * p], Z[n * p], worst = 0;
    start(&r, X);
    int fails = 0;
    for (int s = 0; s < 10000; s++) {
      gt_randn(&r, Z, n * p, 0.3);
      CHECK_OK(kvi_stiefel_proj(n, p, Z, X, Z));
      fails += (kind ? kvi_stiefel_retract_polar(n, p, X, X, Z, 1)
                     : kvi_stiefel_retract_qr(n, p, X, X, Z, 1)) != KVI_OK;
      worst = fmax(worst, kvi_stiefel_error(n, p, X));
    }
    printf("%s retraction: 10^4 steps, max |X^T X - I| = %.2e\n", kind ? "polar" : "QR", worst);
    CHECK(fails == 0 && worst < 1e-14);
  }
}

static void test_proj_rgrad(void) {
  kvi_rng r = kvi_rng_stream(3, 2);
  double X[n * p], A[n * n], Nd[p] = {1, 2, 3}, G[n * p], R[n * p], R2[n * p], AX[n * p];
  start(&r, X);
  gt_rand_sym(&r, n, A, 3);
  gt_mul(n, p, n, A, false, X, false, AX);
  for (int i = 0; i < n; i++)
    for (int k = 0; k < p; k++) G[i * p + k] = 2 * AX[i * p + k] * Nd[k]; /* Euclidean */
  CHECK_OK(kvi_stiefel_proj(n, p, R, X, G));
  CHECK(tangency(X, R) < 1e-13);
  CHECK_OK(kvi_stiefel_proj(n, p, R2, X, R));
  CHECK(gt_maxdiff(R, R2, n * p) < 1e-14);
  for (int trial = 0; trial < 3; trial++) {
    double Z[n * p], X1[n * p];
    gt_randn(&r, Z, n * p, 1);
    CHECK_OK(kvi_stiefel_proj(n, p, Z, X, Z));
    const double want = gt_dot(R, Z, n * p);
    CHECK_NEAR(gt_dot(G, Z, n * p), want, 1e-12); /* tangent Z: the normal part drops */
    for (int kind = 0; kind < 2; kind++) {
      const double h = 1e-5;
      double fp, fm;
      CHECK_OK(kind ? kvi_stiefel_retract_polar(n, p, X1, X, Z, h)
                    : kvi_stiefel_retract_qr(n, p, X1, X, Z, h));
      fp = brockett(A, Nd, X1);
      CHECK_OK(kind ? kvi_stiefel_retract_polar(n, p, X1, X, Z, -h)
                    : kvi_stiefel_retract_qr(n, p, X1, X, Z, -h));
      fm = brockett(A, Nd, X1);
      CHECK_NEAR((fp - fm) / (2 * h), want, 1e-7);
    }
  }
}

static void test_transport(void) {
  kvi_rng r = kvi_rng_stream(3, 3);
  double X[n * p], Z[n * p], X1[n * p], V[n * p], TV[n * p];
  start(&r, X);
  gt_randn(&r, Z, n * p, 0.5);
  CHECK_OK(kvi_stiefel_proj(n, p, Z, X, Z));
  gt_randn(&r, V, n * p, 1);
  CHECK_OK(kvi_stiefel_proj(n, p, V, X, V));
  CHECK_OK(kvi_stiefel_retract_qr(n, p, X1, X, Z, 1));
  CHECK(tangency(X1, V) > 1e-3); /* V is not tangent at the new point ... */
  CHECK_OK(kvi_stiefel_proj(n, p, TV, X1, V));
  CHECK(tangency(X1, TV) < 1e-13);            /* ... its transport is */
  CHECK_OK(kvi_stiefel_proj(n, p, TV, X, V)); /* a zero step transports to itself */
  CHECK(gt_maxdiff(TV, V, n * p) < 1e-14);
}

static void test_safety(void) {
  kvi_rng r = kvi_rng_stream(3, 4);
  double X[n * p], Z[n * p], X1[n * p], keep[n * p];
  start(&r, X);
  memcpy(keep, X, sizeof X);
  for (int i = 0; i < n * p; i++) Z[i] = -X[i]; /* X + Z = 0: rank 0 */
  memcpy(X1, X, sizeof X);
  CHECK_FAILS(kvi_stiefel_retract_qr(n, p, X1, X, Z, 1));
  CHECK_FAILS(kvi_stiefel_retract_polar(n, p, X1, X, Z, 1));
  CHECK(gt_maxdiff(X1, keep, n * p) == 0);
  Z[0] = NAN;
  CHECK_FAILS(kvi_stiefel_retract_qr(n, p, X1, X, Z, 0.1));
  CHECK_FAILS(kvi_stiefel_retract_polar(n, p, X1, X, Z, 0.1));
  CHECK(gt_maxdiff(X1, keep, n * p) == 0);
  CHECK_FAILS(kvi_stiefel_proj(2, 3, X1, X, Z)); /* p > n */
}

int main(void) {
  test_stays();
  test_proj_rgrad();
  test_transport();
  test_safety();
  TEST_MAIN_END();
}
