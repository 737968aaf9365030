/* The SPD manifold (affine-invariant metric) and the log-Cholesky metric (docs/geom.md sections
 * 1-2): retractions stay on the manifold to rounding over 10^4 steps; the Riemannian gradient
 * is the metric's representation of the Euclidean one (central differences along the curves of
 * every retraction); the exponential and logarithm are inverse; the parallel transport is an
 * isometry that carries a geodesic's velocity; the optimizer's kvi_real hot path matches the
 * double reference; steps that leave the manifold are damped or rejected. */
#include "geom_test_util.h"
#include "kvi_test.h"

#define N 5
#define NN (N * N)

/* f(U) = tr(C U) - log det U + |U|_F^2 / 2 and its Euclidean gradient C - U^-1 + U. */
static double f_psd(const double *C, const double *U) {
  return gt_dot(C, U, NN) - gt_logdet(N, U) + 0.5 * gt_dot(U, U, NN);
}

static void grad_psd(const double *C, const double *U, double *G) {
  double L[NN], Ui[NN], I[NN];
  CHECK_OK(kvi_psd_chol(N, L, U));
  memset(I, 0, sizeof I);
  for (int i = 0; i < N; i++) I[i * N + i] = 1;
  /* U^-1 = L^-T L^-1 by solving column by column (tiny N) */
  for (int c = 0; c < N; c++) {
    double y[N], x[N];
    for (int i = 0; i < N; i++) { /* L y = e_c */
      double s = I[i * N + c];
      for (int k = 0; k < i; k++) s -= L[i * N + k] * y[k];
      y[i] = s / L[i * N + i];
    }
    for (int i = N - 1; i >= 0; i--) { /* L^T x = y */
      double s = y[i];
      for (int k = i + 1; k < N; k++) s -= L[k * N + i] * x[k];
      x[i] = s / L[i * N + i];
    }
    for (int i = 0; i < N; i++) Ui[i * N + c] = x[i];
  }
  for (int i = 0; i < NN; i++) G[i] = C[i] - Ui[i] + U[i];
}

static void point(kvi_rng *r, double *L, double *U) {
  gt_rand_spd(r, N, U, 0.5);
  CHECK_OK(kvi_psd_chol(N, L, U));
}

/* A random tangent X = L S L^T, S symmetric of norm about 0.02 (a random walk of the
 * log-eigenvalues that stays far from overflow over 10^4 steps). */
static void whitened_step(kvi_rng *r, const double *L, double *X) {
  double S[NN], T[NN];
  gt_rand_sym(r, N, S, 0.02);
  gt_mul(N, N, N, L, false, S, false, T);
  gt_mul(N, N, N, T, false, L, true, X);
}

/* 10^4 steps of each retraction: the factor stays lower triangular with a finite positive
 * diagonal; the exponential map iterated on U itself stays symmetric positive definite. */
static void test_stays_on_manifold(void) {
  kvi_rng r = kvi_rng_stream(1, 1);
  const kvi_psd_retraction kinds[3] = {KVI_PSD_EXP, KVI_PSD_RETR2, KVI_PSD_CHOL};
  for (int k = 0; k < 3; k++) {
    double L[NN], U[NN], X[NN], t;
    point(&r, L, U);
    int fails = 0;
    for (int s = 0; s < 10000; s++) {
      whitened_step(&r, L, X);
      fails += kvi_psd_retract(N, kinds[k], L, L, X, 0, &t) != KVI_OK;
    }
    double upper = 0, dmin = 1e300;
    for (int i = 0; i < N; i++) {
      for (int j = i + 1; j < N; j++) upper = fmax(upper, fabs(L[i * N + j]));
      dmin = fmin(dmin, L[i * N + i]);
    }
    CHECK(fails == 0);
    CHECK(upper == 0 && dmin > 0 && isfinite(gt_maxabs(L, NN)));
    printf("retraction %d: 10^4 steps, min diag(L) %.3g\n", k, dmin);
  }
  /* U <- Exp_U(X) on the matrix itself (symmetrized after each step by construction) */
  double L[NN], U[NN], X[NN], lo = 1e300;
  point(&r, L, U);
  double asym = 0;
  for (int s = 0; s < 10000; s++) {
    CHECK_OK(kvi_psd_chol(N, L, U));
    whitened_step(&r, L, X);
    CHECK_OK(kvi_psd_exp(N, U, L, X));
    for (int i = 0; i < N; i++)
      for (int j = 0; j < N; j++) asym = fmax(asym, fabs(U[i * N + j] - U[j * N + i]));
  }
  double w[N], A[NN];
  memcpy(A, U, sizeof A);
  double d;
  CHECK_OK(kvi_psd_dist(&d, N, L, U)); /* U is SPD: its distance to a point is defined */
  CHECK_OK(kvi_psd_chol(N, A, U));
  for (int i = 0; i < N; i++) lo = fmin(lo, A[i * N + i]);
  (void)w;
  printf("exp map on U: 10^4 steps, max asymmetry %.2e, min diag chol %.3g\n", asym, lo);
  CHECK(asym <= 1e-14 * gt_maxabs(U, NN) && lo > 0);
}

/* <rgrad f, X>_U equals d/dt f(R_U(t X)) at 0 for every retraction, and equals the Euclidean
 * directional derivative <G, X>_F (the defining property of the Riemannian gradient). */
static void test_rgrad_fd(void) {
  kvi_rng r = kvi_rng_stream(1, 2);
  double L[NN], U[NN], C[NN], G[NN], R[NN], X[NN], L1[NN], U1[NN];
  point(&r, L, U);
  gt_rand_sym(&r, N, C, 1);
  grad_psd(C, U, G);
  CHECK_OK(kvi_psd_rgrad(N, R, L, G));
  for (int trial = 0; trial < 3; trial++) {
    gt_rand_sym(&r, N, X, 1);
    double ip;
    CHECK_OK(kvi_psd_inner(&ip, N, L, R, X));
    CHECK_NEAR(ip, gt_dot(G, X, NN), 1e-10);
    const kvi_psd_retraction kinds[4] = {KVI_PSD_EXP, KVI_PSD_RETR2, KVI_PSD_CHOL, KVI_PSD_EUCLID};
    for (int k = 0; k < 4; k++) {
      const double h = 1e-5;
      double fp, fm, Xh[NN];
      for (int i = 0; i < NN; i++) Xh[i] = h * X[i];
      CHECK_OK(kvi_psd_retract(N, kinds[k], L1, L, Xh, 0, NULL));
      kvi_psd_from_chol(N, U1, L1);
      fp = f_psd(C, U1);
      for (int i = 0; i < NN; i++) Xh[i] = -h * X[i];
      CHECK_OK(kvi_psd_retract(N, kinds[k], L1, L, Xh, 0, NULL));
      kvi_psd_from_chol(N, U1, L1);
      fm = f_psd(C, U1);
      CHECK_NEAR((fp - fm) / (2 * h), ip, 1e-7);
    }
  }
}

/* Exp and Log are inverse; the distance of Exp_U(X) is |L^-1 X L^-T|_F; the parallel transport
 * keeps inner products and carries the geodesic's velocity to its end. */
static void test_exp_log_transport(void) {
  kvi_rng r = kvi_rng_stream(1, 3);
  double L[NN], U[NN], X[NN], V[NN], Y[NN], Z[NN], Z2[NN], LV[NN];
  point(&r, L, U);
  gt_rand_sym(&r, N, X, 0.7);
  CHECK_OK(kvi_psd_exp(N, V, L, X));
  CHECK_OK(kvi_psd_log(N, Y, L, V));
  CHECK(gt_maxdiff(X, Y, NN) < 1e-11);
  double d, nx;
  CHECK_OK(kvi_psd_dist(&d, N, L, V));
  CHECK_OK(kvi_psd_inner(&nx, N, L, X, X));
  CHECK_NEAR(d, sqrt(nx), 1e-11);
  /* isometry */
  CHECK_OK(kvi_psd_chol(N, LV, V));
  gt_rand_sym(&r, N, Z, 1);
  gt_rand_sym(&r, N, Z2, 1);
  double TZ[NN], TZ2[NN], a, b;
  CHECK_OK(kvi_psd_transport(N, TZ, L, X, Z));
  CHECK_OK(kvi_psd_transport(N, TZ2, L, X, Z2));
  CHECK_OK(kvi_psd_inner(&a, N, L, Z, Z2));
  CHECK_OK(kvi_psd_inner(&b, N, LV, TZ, TZ2));
  CHECK_NEAR(a, b, 1e-10);
  double asym = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) asym = fmax(asym, fabs(TZ[i * N + j] - TZ[j * N + i]));
  CHECK(asym == 0); /* tangent: symmetric */
  /* the velocity d/dt Exp_U(t X) at t = 1 is the transport of X */
  const double h = 1e-5;
  double Xp[NN], Xm[NN], Vp[NN], Vm[NN], TX[NN], vel[NN];
  for (int i = 0; i < NN; i++) Xp[i] = (1 + h) * X[i], Xm[i] = (1 - h) * X[i];
  CHECK_OK(kvi_psd_exp(N, Vp, L, Xp));
  CHECK_OK(kvi_psd_exp(N, Vm, L, Xm));
  for (int i = 0; i < NN; i++) vel[i] = (Vp[i] - Vm[i]) / (2 * h);
  CHECK_OK(kvi_psd_transport(N, TX, L, X, X));
  CHECK(gt_maxdiff(vel, TX, NN) < 1e-7 * (1 + gt_maxabs(TX, NN)));
  /* the frame transport is an isometry too, and the identity for L1 = L */
  double F1[NN], F2[NN];
  CHECK_OK(kvi_psd_transport_frame(N, F1, L, LV, Z));
  CHECK_OK(kvi_psd_transport_frame(N, F2, L, LV, Z2));
  CHECK_OK(kvi_psd_inner(&b, N, LV, F1, F2));
  CHECK_NEAR(a, b, 1e-10);
  CHECK_OK(kvi_psd_transport_frame(N, F1, L, L, Z));
  CHECK(gt_maxdiff(F1, Z, NN) < 1e-12);
}

/* The log-Cholesky metric: the Riemannian gradient against central differences along its
 * exponential map; the exponential map stays on the manifold; transport preserves the metric. */
static void test_logchol(void) {
  kvi_rng r = kvi_rng_stream(1, 4);
  double L[NN], U[NN], C[NN], G[NN], GL[NN], R[NN], X[NN], L1[NN];
  point(&r, L, U);
  gt_rand_sym(&r, N, C, 1);
  grad_psd(C, U, G);
  gt_mul(N, N, N, G, false, L, false, GL); /* d f(L L^T)/dL = 2 G L, lower part */
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) GL[i * N + j] = j <= i ? 2 * GL[i * N + j] : 0;
  kvi_logchol_rgrad(N, R, L, GL);
  gt_randn(&r, X, NN, 1);
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) X[i * N + j] = 0;
  const double h = 1e-5;
  double Xh[NN], Uh[NN], fp, fm;
  for (int i = 0; i < NN; i++) Xh[i] = h * X[i];
  kvi_logchol_exp(N, L1, L, Xh);
  kvi_psd_from_chol(N, Uh, L1);
  fp = f_psd(C, Uh);
  for (int i = 0; i < NN; i++) Xh[i] = -h * X[i];
  kvi_logchol_exp(N, L1, L, Xh);
  kvi_psd_from_chol(N, Uh, L1);
  fm = f_psd(C, Uh);
  CHECK_NEAR((fp - fm) / (2 * h), kvi_logchol_inner(N, L, R, X), 1e-7);
  double Y[NN], Y2[NN], X2[NN];
  kvi_logchol_exp(N, L1, L, X);
  CHECK(L1[0] > 0 && L1[N + 1] > 0);
  gt_randn(&r, X2, NN, 1);
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) X2[i * N + j] = 0;
  kvi_logchol_transport(N, Y, L, L1, X);
  kvi_logchol_transport(N, Y2, L, L1, X2);
  CHECK_NEAR(kvi_logchol_inner(N, L1, Y, Y2), kvi_logchol_inner(N, L, X, X2), 1e-12);
}

/* kvi_psd_chol_whiten / kvi_psd_chol_retract on the storage match L^T G L and the double
 * Cholesky retraction. */
static void test_hot_path(void) {
  kvi_rng r = kvi_rng_stream(1, 5);
  double L[NN], U[NN], C[NN], G[NN], GL[NN], Psi[NN], T[NN];
  point(&r, L, U);
  gt_rand_sym(&r, N, C, 1);
  grad_psd(C, U, G);
  gt_mul(N, N, N, G, false, L, false, GL);
  kvi_real P[NN], dP[NN], Pr[NN], work[3 * NN];
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      P[i * N + j] = (kvi_real)(j < i ? L[i * N + j] : j == i ? log(L[i * N + i]) : 0);
      dP[i * N + j] = (kvi_real)(j < i    ? 2 * GL[i * N + j]
                                 : j == i ? 2 * GL[i * N + i] * L[i * N + i]
                                          : 0);
    }
  kvi_psd_chol_whiten(N, Pr, P, dP, work);
  gt_mul(N, N, N, L, true, GL, false, T); /* L^T G L */
  for (int i = 0; i < NN; i++) Psi[i] = Pr[i];
  const double tol = sizeof(kvi_real) == 8 ? 1e-12 : 1e-4;
  CHECK(gt_maxdiff(Psi, T, NN) < tol * (1 + gt_maxabs(T, NN)));
  double S[NN], X[NN], L1[NN];
  gt_rand_sym(&r, N, S, 0.5);
  kvi_real Sr[NN];
  for (int i = 0; i < NN; i++) Sr[i] = (kvi_real)S[i];
  CHECK_OK(kvi_psd_chol_retract(N, P, Sr, work));
  gt_mul(N, N, N, L, false, S, false, T);
  gt_mul(N, N, N, T, false, L, true, X); /* X = L S L^T */
  CHECK_OK(kvi_psd_retract(N, KVI_PSD_CHOL, L1, L, X, 0, NULL));
  double worst = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j <= i; j++) {
      double v = j < i ? P[i * N + j] : exp(P[i * N + i]);
      worst = fmax(worst, fabs(v - L1[i * N + j]));
    }
  CHECK(worst < tol * (1 + gt_maxabs(L1, NN)));
  kvi_real nan[NN], Pkeep[NN];
  memcpy(Pkeep, P, sizeof P);
  for (int i = 0; i < NN; i++) nan[i] = i == 2 * N + 1 ? (kvi_real)NAN : 0;
  CHECK_FAILS(kvi_psd_chol_retract(N, P, nan, work));
  CHECK(memcmp(P, Pkeep, sizeof P) == 0);
}

/* Acceptance 6: an indefinite Euclidean step is halved until positive definite; with no
 * halving allowed it is rejected and the point kept; a non-finite step is rejected; an
 * exponential that overflows is damped. */
static void test_safety(void) {
  kvi_rng r = kvi_rng_stream(1, 6);
  double L[NN], U[NN], X[NN], L1[NN], t;
  point(&r, L, U);
  for (int i = 0; i < NN; i++) X[i] = -1.5 * U[i]; /* U + X = -U/2: indefinite */
  CHECK_OK(kvi_psd_retract(N, KVI_PSD_EUCLID, L1, L, X, 10, &t));
  CHECK(t == 0.5);
  CHECK_FAILS(kvi_psd_retract(N, KVI_PSD_EUCLID, L1, L, X, 0, &t));
  CHECK(t == 0 && gt_maxdiff(L1, L, NN) == 0);
  X[3] = X[N * 3] = NAN;
  CHECK_FAILS(kvi_psd_retract(N, KVI_PSD_EXP, L1, L, X, 20, &t));
  CHECK(gt_maxdiff(L1, L, NN) == 0);
  gt_rand_sym(&r, N, X, 1);
  for (int i = 0; i < NN; i++) X[i] *= 1e5; /* expm overflows or is hopelessly conditioned */
  CHECK_OK(kvi_psd_retract(N, KVI_PSD_EXP, L1, L, X, 60, &t));
  CHECK(t < 1 && t > 0);
  printf("safety: huge exp step damped to t = %.3g\n", t);
  CHECK_FAILS(kvi_psd_retract(0, KVI_PSD_EXP, L1, L, X, 0, &t));
  CHECK_FAILS(kvi_psd_chol(N, L1, X)); /* indefinite */
}

int main(void) {
  test_stays_on_manifold();
  test_rgrad_fd();
  test_exp_log_transport();
  test_logchol();
  test_hot_path();
  test_safety();
  TEST_MAIN_END();
}
