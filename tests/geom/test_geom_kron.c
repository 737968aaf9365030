/* Kronecker products U (x) V of SPD factors (docs/geom.md section 3), checked against the
 * explicit nm x nm matrices: the horizontal gauge changes nothing but the split; the inner
 * product is tr(W W'); the Riemannian gradient is horizontal and represents the Euclidean
 * derivative along retraction curves (central differences); 10^4 retraction steps keep the
 * factors triangular, positive and balanced to rounding; the frame transport keeps tangency
 * and inner products; the slides' Frobenius projection solves the normal equations. */
#include "geom_test_util.h"
#include "kvi_test.h"

#define n 3
#define m 4
#define NM (n * m)

/* f(Sigma) = tr(C Sigma) - log det Sigma, Sigma = U (x) V: a function of the product only. */
static double f_kron(const double *C, const double *LU, const double *LV) {
  double U[n * n], V[m * m], S[NM * NM];
  kvi_psd_from_chol(n, U, LU);
  kvi_psd_from_chol(m, V, LV);
  gt_kron(n, m, U, V, S);
  return gt_dot(C, S, NM * NM) - gt_logdet(NM, S);
}

/* Euclidean gradients G_U, G_V of f through Sigma: G_S = C - Sigma^-1 contracted with V, U. */
static void grads(const double *C, const double *LU, const double *LV, double *GU, double *GV) {
  double U[n * n], V[m * m], S[NM * NM], LS[NM * NM], GS[NM * NM];
  kvi_psd_from_chol(n, U, LU);
  kvi_psd_from_chol(m, V, LV);
  gt_kron(n, m, U, V, S);
  CHECK_OK(kvi_psd_chol(NM, LS, S));
  /* Sigma^-1 column by column through the factor */
  for (int c = 0; c < NM; c++) {
    double y[NM], x[NM];
    for (int i = 0; i < NM; i++) {
      double s = i == c;
      for (int k = 0; k < i; k++) s -= LS[i * NM + k] * y[k];
      y[i] = s / LS[i * NM + i];
    }
    for (int i = NM - 1; i >= 0; i--) {
      double s = y[i];
      for (int k = i + 1; k < NM; k++) s -= LS[k * NM + i] * x[k];
      x[i] = s / LS[i * NM + i];
    }
    for (int i = 0; i < NM; i++) GS[i * NM + c] = C[i * NM + c] - x[i];
  }
  memset(GU, 0, sizeof(double) * n * n);
  memset(GV, 0, sizeof(double) * m * m);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++)
      for (int k = 0; k < n; k++)
        for (int l = 0; l < m; l++) {
          const double g = GS[(i * m + j) * NM + k * m + l];
          GU[i * n + k] += g * V[j * m + l];
          GV[j * m + l] += g * U[i * n + k];
        }
}

/* Psi = L^T G L */
static void whiten_grad(int k, const double *L, const double *G, double *Psi) {
  double T[16 * 16];
  gt_mul(k, k, k, L, true, G, false, T);
  gt_mul(k, k, k, T, false, L, false, Psi);
  gt_sym(k, Psi);
}

static void setup(kvi_rng *r, double *LU, double *LV) {
  double U[n * n], V[m * m];
  gt_rand_spd(r, n, U, 0.5);
  gt_rand_spd(r, m, V, 0.5);
  CHECK_OK(kvi_psd_chol(n, LU, U));
  CHECK_OK(kvi_psd_chol(m, LV, V));
  kvi_kron_balance(n, m, LU, LV);
}

static void whole(const double *P, const double *Q, double *W) {
  double I3[n * n] = {0}, I4[m * m] = {0}, A[NM * NM], B[NM * NM];
  for (int i = 0; i < n; i++) I3[i * n + i] = 1;
  for (int i = 0; i < m; i++) I4[i * m + i] = 1;
  gt_kron(n, m, P, I4, A);
  gt_kron(n, m, I3, Q, B);
  for (int i = 0; i < NM * NM; i++) W[i] = A[i] + B[i];
}

static void test_gauge_and_inner(void) {
  kvi_rng r = kvi_rng_stream(2, 1);
  double P[n * n], Q[m * m], P2[n * n], Q2[m * m], W[NM * NM], Wh[NM * NM], W2[NM * NM];
  gt_rand_sym(&r, n, P, 1);
  gt_rand_sym(&r, m, Q, 1);
  gt_rand_sym(&r, n, P2, 1);
  gt_rand_sym(&r, m, Q2, 1);
  whole(P, Q, W);
  whole(P2, Q2, W2);
  double ip = 0;
  for (int i = 0; i < NM; i++)
    for (int j = 0; j < NM; j++) ip += W[i * NM + j] * W2[j * NM + i];
  CHECK_NEAR(kvi_kron_inner(n, m, P, Q, P2, Q2), ip, 1e-12);
  kvi_kron_horizontal(n, m, P, Q);
  whole(P, Q, Wh);
  CHECK(gt_maxdiff(W, Wh, NM * NM) < 1e-14);
  double tp = 0, tq = 0;
  for (int i = 0; i < n; i++) tp += P[i * n + i];
  for (int i = 0; i < m; i++) tq += Q[i * m + i];
  CHECK_NEAR(tp / n, tq / m, 1e-14);
}

/* The Riemannian gradient: horizontal; <grad, eta> = d/dt f(R(t eta)) for horizontal and for
 * vertical eta (where both are 0). */
static void test_rgrad(void) {
  kvi_rng r = kvi_rng_stream(2, 2);
  double LU[n * n], LV[m * m], C[NM * NM], GU[n * n], GV[m * m], PU[n * n], PV[m * m];
  double P[n * n], Q[m * m];
  setup(&r, LU, LV);
  gt_rand_sym(&r, NM, C, 2);
  grads(C, LU, LV, GU, GV);
  whiten_grad(n, LU, GU, PU);
  whiten_grad(m, LV, GV, PV);
  double tu = 0, tv = 0;
  for (int i = 0; i < n; i++) tu += PU[i * n + i];
  for (int i = 0; i < m; i++) tv += PV[i * m + i];
  CHECK_NEAR(tu, tv, 1e-10); /* f depends on the product only */
  kvi_kron_rgrad(n, m, P, Q, PU, PV);
  double tp = 0, tq = 0;
  for (int i = 0; i < n; i++) tp += P[i * n + i];
  for (int i = 0; i < m; i++) tq += Q[i * m + i];
  CHECK_NEAR(tp / n, tq / m, 1e-13);
  for (int trial = 0; trial < 4; trial++) {
    double E[n * n], F[m * m];
    gt_rand_sym(&r, n, E, 1);
    gt_rand_sym(&r, m, F, 1);
    if (trial == 3) { /* vertical: (I, -I) */
      memset(E, 0, sizeof E), memset(F, 0, sizeof F);
      for (int i = 0; i < n; i++) E[i * n + i] = 1;
      for (int i = 0; i < m; i++) F[i * m + i] = -1;
    } else {
      kvi_kron_horizontal(n, m, E, F);
    }
    const double h = 1e-5;
    double fp, fm, a[n * n], b[m * m], Eh[n * n], Fh[m * m];
    for (int s = -1; s <= 1; s += 2) {
      memcpy(a, LU, sizeof a), memcpy(b, LV, sizeof b);
      for (int i = 0; i < n * n; i++) Eh[i] = s * h * E[i];
      for (int i = 0; i < m * m; i++) Fh[i] = s * h * F[i];
      CHECK_OK(kvi_kron_retract(n, m, a, b, Eh, Fh));
      *(s < 0 ? &fm : &fp) = f_kron(C, a, b);
    }
    const double want = trial == 3 ? 0 : kvi_kron_inner(n, m, P, Q, E, F);
    CHECK_NEAR((fp - fm) / (2 * h), want, 1e-7);
    /* and the Euclidean directional derivative through the whitened gradients */
    CHECK_NEAR(gt_dot(PU, E, n * n) + gt_dot(PV, F, m * m), want, 1e-10);
  }
}

/* 10^4 retraction steps: triangular factors with positive diagonals, balanced to rounding; the
 * retraction curve's velocity at 0 is L (P (x) I + I (x) Q) L^T. */
static void test_retraction(void) {
  kvi_rng r = kvi_rng_stream(2, 3);
  double LU[n * n], LV[m * m], P[n * n], Q[m * m];
  setup(&r, LU, LV);
  int fails = 0;
  double worst_balance = 0;
  for (int s = 0; s < 10000; s++) {
    gt_rand_sym(&r, n, P, 0.05);
    gt_rand_sym(&r, m, Q, 0.05);
    fails += kvi_kron_retract(n, m, LU, LV, P, Q) != KVI_OK;
    double a = 0, b = 0;
    for (int i = 0; i < n; i++) a += 2 * log(LU[i * n + i]) / n;
    for (int i = 0; i < m; i++) b += 2 * log(LV[i * m + i]) / m;
    worst_balance = fmax(worst_balance, fabs(a - b));
  }
  double upper = 0, dmin = 1e300;
  for (int i = 0; i < n; i++) {
    for (int j = i + 1; j < n; j++) upper = fmax(upper, fabs(LU[i * n + j]));
    dmin = fmin(dmin, LU[i * n + i]);
  }
  for (int i = 0; i < m; i++) {
    for (int j = i + 1; j < m; j++) upper = fmax(upper, fabs(LV[i * m + j]));
    dmin = fmin(dmin, LV[i * m + i]);
  }
  printf("kron: 10^4 retractions, balance error %.2e, min diag %.3g\n", worst_balance, dmin);
  CHECK(fails == 0 && upper == 0 && dmin > 0 && worst_balance < 1e-12);
  /* velocity */
  gt_rand_sym(&r, n, P, 1);
  gt_rand_sym(&r, m, Q, 1);
  const double h = 1e-6;
  double Sp[NM * NM], Sm[NM * NM], U[n * n], V[m * m];
  for (int s = -1; s <= 1; s += 2) {
    double a[n * n], b[m * m], Ph[n * n], Qh[m * m];
    memcpy(a, LU, sizeof a), memcpy(b, LV, sizeof b);
    for (int i = 0; i < n * n; i++) Ph[i] = s * h * P[i];
    for (int i = 0; i < m * m; i++) Qh[i] = s * h * Q[i];
    CHECK_OK(kvi_kron_retract(n, m, a, b, Ph, Qh));
    kvi_psd_from_chol(n, U, a);
    kvi_psd_from_chol(m, V, b);
    gt_kron(n, m, U, V, s < 0 ? Sm : Sp);
  }
  double W[NM * NM], L[NM * NM], T[NM * NM], X[NM * NM];
  whole(P, Q, W);
  gt_kron(n, m, LU, LV, L);
  gt_mul(NM, NM, NM, L, false, W, false, T);
  gt_mul(NM, NM, NM, T, false, L, true, X);
  double worst = 0;
  for (int i = 0; i < NM * NM; i++) worst = fmax(worst, fabs((Sp[i] - Sm[i]) / (2 * h) - X[i]));
  CHECK(worst < 1e-7 * (1 + gt_maxabs(X, NM * NM)));
}

/* Frame transport to the new point: an isometry, and horizontal (tangent) at the new point when
 * checked in ambient coordinates there. */
static void test_transport(void) {
  kvi_rng r = kvi_rng_stream(2, 4);
  double LU[n * n], LV[m * m], P[n * n], Q[m * m], P2[n * n], Q2[m * m], D[n * n], E[m * m];
  setup(&r, LU, LV);
  gt_rand_sym(&r, n, P, 1), gt_rand_sym(&r, m, Q, 1);
  gt_rand_sym(&r, n, P2, 1), gt_rand_sym(&r, m, Q2, 1);
  kvi_kron_horizontal(n, m, P, Q);
  kvi_kron_horizontal(n, m, P2, Q2);
  const double before = kvi_kron_inner(n, m, P, Q, P2, Q2);
  gt_rand_sym(&r, n, D, 0.5), gt_rand_sym(&r, m, E, 0.5);
  double LU1[n * n], LV1[m * m], X[n * n], Y[m * m], P1[n * n], Q1[m * m];
  memcpy(LU1, LU, sizeof LU), memcpy(LV1, LV, sizeof LV);
  CHECK_OK(kvi_kron_retract(n, m, LU1, LV1, D, E));
  /* the transported vector in ambient coordinates at the new point */
  kvi_kron_to_ambient(n, m, X, Y, LU1, LV1, P, Q);
  CHECK_OK(kvi_kron_from_ambient(n, m, P1, Q1, LU1, LV1, X, Y));
  double tp = 0, tq = 0;
  for (int i = 0; i < n; i++) tp += P1[i * n + i];
  for (int i = 0; i < m; i++) tq += Q1[i * m + i];
  CHECK_NEAR(tp / n, tq / m, 1e-10);
  CHECK_NEAR(kvi_kron_inner(n, m, P1, Q1, P2, Q2), before, 1e-10);
}

/* The slides' projection: the residual is orthogonal to every tangent E (x) Y + X (x) F, and
 * <X, dX> = 0. */
static void test_frobenius(void) {
  kvi_rng r = kvi_rng_stream(2, 5);
  double X[n * n], Y[m * m], Z[NM * NM], dX[n * n], dY[m * m], T1[NM * NM], T2[NM * NM];
  gt_rand_sym(&r, n, X, 2), gt_rand_sym(&r, m, Y, 2);
  gt_randn(&r, Z, NM * NM, 1);
  CHECK_OK(kvi_kron_proj_frobenius(n, m, dX, dY, X, Y, Z));
  gt_kron(n, m, dX, Y, T1);
  gt_kron(n, m, X, dY, T2);
  double Res[NM * NM];
  for (int i = 0; i < NM * NM; i++) Res[i] = Z[i] - T1[i] - T2[i];
  for (int trial = 0; trial < 3; trial++) {
    double E[n * n], F[m * m];
    gt_randn(&r, E, n * n, 1), gt_randn(&r, F, m * m, 1);
    gt_kron(n, m, E, Y, T1);
    gt_kron(n, m, X, F, T2);
    for (int i = 0; i < NM * NM; i++) T1[i] += T2[i];
    CHECK(fabs(gt_dot(Res, T1, NM * NM)) < 1e-12 * (1 + gt_maxabs(Z, NM * NM)));
  }
  CHECK(fabs(gt_dot(X, dX, n * n)) < 1e-12);
  double zero[n * n] = {0};
  CHECK_FAILS(kvi_kron_proj_frobenius(n, m, dX, dY, zero, Y, Z));
}

/* A non-finite step is rejected and leaves the factors. */
static void test_safety(void) {
  kvi_rng r = kvi_rng_stream(2, 6);
  double LU[n * n], LV[m * m], P[n * n] = {0}, Q[m * m] = {0}, a[n * n], b[m * m];
  setup(&r, LU, LV);
  memcpy(a, LU, sizeof a), memcpy(b, LV, sizeof b);
  P[4] = NAN;
  CHECK_FAILS(kvi_kron_retract(n, m, a, b, P, Q));
  CHECK(gt_maxdiff(a, LU, n * n) == 0 && gt_maxdiff(b, LV, m * m) == 0);
}

int main(void) {
  test_gauge_and_inner();
  test_rgrad();
  test_retraction();
  test_transport();
  test_frobenius();
  test_safety();
  TEST_MAIN_END();
}
