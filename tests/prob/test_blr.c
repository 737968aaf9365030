/* Exact Bayesian multivariate linear regression posterior and the MN-to-MN KL divergence.
 *
 * - kvi_blr_posterior equals the posterior of the same model written as one nm-dimensional
 *   Gaussian (design matrix Phi = X (x) I_m over the row-major vec of W), computed by brute force.
 * - kvi_mn_kl_mn_f64 equals the KL between the explicit Gaussians N(vec M, U (x) V) (row-major
 *   vec); KL(q || q) = 0; the best DIAG approximation of the BLR posterior keeps a KL gap
 *   1/2 m (sum log P_ii - log |P|) > 0 while the MN one has none.
 * - bad input: N = 0, non-positive sizes, NULLs, negative alpha, non-finite data, non-SPD and
 *   non-symmetric covariances. */
#include "kronvi/prob.h"
#include "kvi_test.h"

static kvi_rng rng;

static void randn(double *x, size_t n, double scale) {
  kvi_rng_normal_f64(&rng, x, n);
  for (size_t i = 0; i < n; i++) x[i] *= scale;
}

/* C (a, c) = A (a, b) B (b, c), or with A transposed (A stored (b, a)). */
static void matmul(double *C, const double *A, const double *B, int a, int b, int c, bool ta) {
  for (int i = 0; i < a; i++)
    for (int j = 0; j < c; j++) {
      double s = 0;
      for (int k = 0; k < b; k++)
        s += (ta ? A[(size_t)k * a + i] : A[(size_t)i * b + k]) * B[(size_t)k * c + j];
      C[(size_t)i * c + j] = s;
    }
}

/* Random SPD (k, k): G G^T / k + 0.3 I. */
static void rand_spd(double *S, int k) {
  double *G = malloc((size_t)k * k * sizeof(double));
  randn(G, (size_t)k * k, 1.0);
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) {
      double s = 0;
      for (int l = 0; l < k; l++) s += G[(size_t)i * k + l] * G[(size_t)j * k + l];
      S[(size_t)i * k + j] = s / k + (i == j ? 0.3 : 0);
    }
  free(G);
}

/* kron(U, V) for the row-major vec of an (n, m) matrix: [(i m + j), (k m + l)] = U_ik V_jl. */
static void kron(double *K, const double *U, const double *V, int n, int m) {
  int nm = n * m;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++)
      for (int k = 0; k < n; k++)
        for (int l = 0; l < m; l++)
          K[(size_t)(i * m + j) * nm + (k * m + l)] = U[(size_t)i * n + k] * V[(size_t)j * m + l];
}

static double logdet_spd(const double *S, int k) {
  double *C = malloc((size_t)k * k * sizeof(double));
  memcpy(C, S, (size_t)k * k * sizeof(double));
  CHECK_OK(kvi_potrf_f64(k, C, k));
  double s = 0;
  for (int i = 0; i < k; i++) s += 2 * log(C[(size_t)i * k + i]);
  free(C);
  return s;
}

/* KL(N(mq, Sq) || N(mp, Sp)) in dimension k, explicitly. */
static double gauss_kl(const double *mq, const double *Sq, const double *mp, const double *Sp,
                       int k) {
  size_t kk = (size_t)k * k;
  double *Spi = malloc(kk * sizeof(double));
  memcpy(Spi, Sp, kk * sizeof(double));
  CHECK_OK(kvi_spd_inverse_f64(k, Spi, k));
  double tr = 0, maha = 0;
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) {
      tr += Spi[(size_t)i * k + j] * Sq[(size_t)j * k + i];
      maha += (mp[i] - mq[i]) * Spi[(size_t)i * k + j] * (mp[j] - mq[j]);
    }
  free(Spi);
  return 0.5 * (tr + maha - k + logdet_spd(Sp, k) - logdet_spd(Sq, k));
}

/* ---- exact posterior vs brute force ------------------------------------------------------- */
static void test_posterior(int N, int n, int m, bool flat_rows) {
  int nm = n * m;
  double beta = 2.5;
  double *X = malloc((size_t)N * n * sizeof(double)), *Y = malloc((size_t)N * m * sizeof(double));
  double *W = malloc((size_t)nm * sizeof(double)), *alpha = malloc(n * sizeof(double));
  randn(X, (size_t)N * n, 1.0);
  randn(W, nm, 1.0);
  matmul(Y, X, W, N, n, m, false);
  double *noise = malloc((size_t)N * m * sizeof(double));
  randn(noise, (size_t)N * m, 1 / sqrt(beta));
  for (int i = 0; i < N * m; i++) Y[i] += noise[i];
  for (int i = 0; i < n; i++) {
    double u;
    kvi_rng_normal_f64(&rng, &u, 1);
    alpha[i] = flat_rows && i % 2 == 0 ? 0.0 : exp(u); /* alpha_i = 0: flat prior on that row */
  }

  double *M = malloc((size_t)nm * sizeof(double)), *U = malloc((size_t)n * n * sizeof(double));
  double *Uc = malloc((size_t)n * n * sizeof(double));
  CHECK_OK(kvi_blr_posterior(M, U, Uc, X, Y, alpha, beta, N, n, m));

  /* Brute force: Phi (N m, n m) with Phi[(k m + j), (i m + j')] = X_ki [j = j'], y = vec(Y). */
  int Nm = N * m;
  double *Phi = calloc((size_t)Nm * nm, sizeof(double));
  for (int k = 0; k < N; k++)
    for (int j = 0; j < m; j++)
      for (int i = 0; i < n; i++)
        Phi[(size_t)(k * m + j) * nm + (i * m + j)] = X[(size_t)k * n + i];
  double *Lam = malloc((size_t)nm * nm * sizeof(double)), *b = malloc(nm * sizeof(double));
  double *mean = malloc(nm * sizeof(double));
  matmul(Lam, Phi, Phi, nm, Nm, nm, true);
  for (size_t i = 0; i < (size_t)nm * nm; i++) Lam[i] *= beta;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) Lam[(size_t)(i * m + j) * nm + (i * m + j)] += alpha[i];
  matmul(b, Phi, Y, nm, Nm, 1, true);
  for (int i = 0; i < nm; i++) b[i] *= beta;
  CHECK_OK(kvi_spd_inverse_f64(nm, Lam, nm)); /* Lam now holds the posterior covariance */
  matmul(mean, Lam, b, nm, nm, 1, false);

  double *I_m = calloc((size_t)m * m, sizeof(double)),
         *K = malloc((size_t)nm * nm * sizeof(double));
  for (int j = 0; j < m; j++) I_m[(size_t)j * m + j] = 1;
  kron(K, U, I_m, n, m);
  double scale = 0, err = 0;
  for (size_t i = 0; i < (size_t)nm * nm; i++) {
    scale = fmax(scale, fabs(Lam[i]));
    err = fmax(err, fabs(K[i] - Lam[i]));
  }
  if (err > 1e-10 * scale) fprintf(stderr, "covariance error %g (scale %g)\n", err, scale);
  CHECK(err <= 1e-10 * scale);
  scale = 0, err = 0;
  for (int i = 0; i < nm; i++) {
    scale = fmax(scale, fabs(mean[i]));
    err = fmax(err, fabs(M[i] - mean[i]));
  }
  if (err > 1e-10 * scale) fprintf(stderr, "mean error %g (scale %g)\n", err, scale);
  CHECK(err <= 1e-10 * scale);

  /* U symmetric; U_chol lower with positive diagonal and U_chol U_chol^T = U. */
  bool ok = true;
  for (int i = 0; i < n; i++) {
    ok &= Uc[(size_t)i * n + i] > 0;
    for (int j = 0; j < n; j++) {
      ok &= U[(size_t)i * n + j] == U[(size_t)j * n + i];
      if (j > i) ok &= Uc[(size_t)i * n + j] == 0;
      double s = 0;
      for (int k = 0; k < n; k++) s += Uc[(size_t)i * n + k] * Uc[(size_t)j * n + k];
      ok &= fabs(s - U[(size_t)i * n + j]) <= 1e-12 * fmax(1, fabs(U[(size_t)i * n + j]));
    }
  }
  CHECK(ok);

  /* Optional outputs: M alone, U_chol alone give the same numbers. */
  double *M2 = malloc((size_t)nm * sizeof(double)), *Uc2 = malloc((size_t)n * n * sizeof(double));
  CHECK_OK(kvi_blr_posterior(M2, NULL, NULL, X, Y, alpha, beta, N, n, m));
  CHECK_OK(kvi_blr_posterior(NULL, NULL, Uc2, X, Y, alpha, beta, N, n, m));
  CHECK(memcmp(M2, M, (size_t)nm * sizeof(double)) == 0);
  CHECK(memcmp(Uc2, Uc, (size_t)n * n * sizeof(double)) == 0);

  /* The exact posterior is an MN: KL(MN || posterior) = 0 for the MN family, while the best
   * DIAG approximation, q = N(M, diag(1 / diag P)) with P = U^{-1} (as an MN with diagonal U and
   * V = I), keeps KL = 1/2 m (sum log P_ii - log |P|) > 0 when the inputs are correlated. */
  double kl = 1;
  CHECK_OK(kvi_mn_kl_mn_f64(&kl, M, U, I_m, M, U, I_m, n, m));
  CHECK(fabs(kl) < 1e-10);
  double *Pm = malloc((size_t)n * n * sizeof(double)), *Ud = calloc((size_t)n * n, sizeof(double));
  memcpy(Pm, U, (size_t)n * n * sizeof(double));
  CHECK_OK(kvi_spd_inverse_f64(n, Pm, n));
  double slog = 0;
  for (int i = 0; i < n; i++) {
    Ud[(size_t)i * n + i] = 1 / Pm[(size_t)i * n + i];
    slog += log(Pm[(size_t)i * n + i]);
  }
  double gap = 0.5 * m * (slog - logdet_spd(Pm, n));
  CHECK_OK(kvi_mn_kl_mn_f64(&kl, M, Ud, I_m, M, U, I_m, n, m));
  CHECK_NEAR(kl, gap, 1e-10);
  if (n > 1) CHECK(kl > 1e-6);

  free(M2), free(Uc2), free(Pm), free(Ud);
  free(X), free(Y), free(W), free(alpha), free(noise), free(M), free(U), free(Uc), free(Phi);
  free(Lam), free(b), free(mean), free(I_m), free(K);
}

/* ---- MN KL vs explicit Kronecker Gaussians ----------------------------------------------------
 */
static void test_kl(int n, int m) {
  int nm = n * m;
  double *Mq = malloc(nm * sizeof(double)), *Mp = malloc(nm * sizeof(double));
  double *Uq = malloc((size_t)n * n * sizeof(double)), *Up = malloc((size_t)n * n * sizeof(double));
  double *Vq = malloc((size_t)m * m * sizeof(double)), *Vp = malloc((size_t)m * m * sizeof(double));
  double *Sq = malloc((size_t)nm * nm * sizeof(double)),
         *Sp = malloc((size_t)nm * nm * sizeof(double));
  randn(Mq, nm, 1.0);
  randn(Mp, nm, 1.0);
  rand_spd(Uq, n);
  rand_spd(Up, n);
  rand_spd(Vq, m);
  rand_spd(Vp, m);
  kron(Sq, Uq, Vq, n, m);
  kron(Sp, Up, Vp, n, m);
  double kl = 0;
  CHECK_OK(kvi_mn_kl_mn_f64(&kl, Mq, Uq, Vq, Mp, Up, Vp, n, m));
  CHECK_NEAR(kl, gauss_kl(Mq, Sq, Mp, Sp, nm), 1e-10);
  CHECK(kl > 0);
  /* and the other direction */
  CHECK_OK(kvi_mn_kl_mn_f64(&kl, Mp, Up, Vp, Mq, Uq, Vq, n, m));
  CHECK_NEAR(kl, gauss_kl(Mp, Sp, Mq, Sq, nm), 1e-10);
  /* KL(q || q) = 0 */
  CHECK_OK(kvi_mn_kl_mn_f64(&kl, Mq, Uq, Vq, Mq, Uq, Vq, n, m));
  CHECK(fabs(kl) < 1e-11);
  /* the Kronecker scale ambiguity (c U, V / c) is the same distribution */
  for (int i = 0; i < n * n; i++) Sq[i] = 3 * Uq[i];
  for (int i = 0; i < m * m; i++) Sp[i] = Vq[i] / 3;
  CHECK_OK(kvi_mn_kl_mn_f64(&kl, Mq, Uq, Vq, Mq, Sq, Sp, n, m));
  CHECK(fabs(kl) < 1e-11);
  free(Mq), free(Mp), free(Uq), free(Up), free(Vq), free(Vp), free(Sq), free(Sp);
}

/* ---- bad input --------------------------------------------------------------------------------
 */
static void test_bad_input(void) {
  enum { N = 4, n = 2, m = 3 };
  double X[N * n] = {1, 0, 0, 1, 1, 1, 2, -1}, Y[N * m] = {0}, alpha[n] = {1, 2};
  double M[n * m], U[n * n], Uc[n * n];
  CHECK_OK(kvi_blr_posterior(M, U, Uc, X, Y, alpha, 1.0, N, n, m));
  CHECK_STATUS(kvi_blr_posterior(M, U, Uc, X, Y, alpha, 1.0, 0, n, m), KVI_ERR_SHAPE);
  CHECK_FAILS(kvi_blr_posterior(M, U, Uc, X, Y, alpha, 1.0, N, 0, m));
  CHECK_FAILS(kvi_blr_posterior(M, U, Uc, X, Y, alpha, 1.0, N, n, -1));
  CHECK_FAILS(kvi_blr_posterior(M, U, Uc, NULL, Y, alpha, 1.0, N, n, m));
  CHECK_FAILS(kvi_blr_posterior(M, U, Uc, X, NULL, alpha, 1.0, N, n, m));
  CHECK_FAILS(kvi_blr_posterior(M, U, Uc, X, Y, NULL, 1.0, N, n, m));
  CHECK_FAILS(kvi_blr_posterior(NULL, NULL, NULL, X, Y, alpha, 1.0, N, n, m));
  CHECK_FAILS(kvi_blr_posterior(M, U, Uc, X, Y, alpha, 0.0, N, n, m));
  CHECK_FAILS(kvi_blr_posterior(M, U, Uc, X, Y, alpha, NAN, N, n, m));
  double alpha_neg[n] = {1, -1};
  CHECK_STATUS(kvi_blr_posterior(M, U, Uc, X, Y, alpha_neg, 1.0, N, n, m), KVI_ERR_ARG);
  double X_nan[N * n] = {1, 0, 0, NAN, 1, 1, 2, -1};
  CHECK_STATUS(kvi_blr_posterior(M, U, Uc, X_nan, Y, alpha, 1.0, N, n, m), KVI_ERR_NONFINITE);
  /* flat prior (alpha = 0) with a single observation: precision singular, not SPD */
  double alpha0[n] = {0, 0};
  CHECK_STATUS(kvi_blr_posterior(M, U, Uc, X, Y, alpha0, 1.0, 1, n, m), KVI_ERR_LINALG);
  /* ... but fine with enough independent observations */
  CHECK_OK(kvi_blr_posterior(M, U, Uc, X, Y, alpha0, 1.0, N, n, m));

  double Mq[4] = {0}, I2[4] = {1, 0, 0, 1}, I1[1] = {1}, kl = 0;
  double notpd[4] = {1, 2, 2, 1}, nonsym[4] = {2, 0.5, 0, 2}, nanm[4] = {1, 0, 0, NAN};
  CHECK_OK(kvi_mn_kl_mn_f64(&kl, Mq, I2, I1, Mq, I2, I1, 2, 1));
  CHECK(kl == 0);
  CHECK_STATUS(kvi_mn_kl_mn_f64(&kl, Mq, I2, I1, Mq, notpd, I1, 2, 1), KVI_ERR_LINALG);
  CHECK_STATUS(kvi_mn_kl_mn_f64(&kl, Mq, notpd, I1, Mq, I2, I1, 2, 1), KVI_ERR_LINALG);
  CHECK_STATUS(kvi_mn_kl_mn_f64(&kl, Mq, I1, I2, Mq, I1, notpd, 1, 2), KVI_ERR_LINALG);
  CHECK_STATUS(kvi_mn_kl_mn_f64(&kl, Mq, I2, I1, Mq, nonsym, I1, 2, 1), KVI_ERR_ARG);
  CHECK_STATUS(kvi_mn_kl_mn_f64(&kl, Mq, nanm, I1, Mq, I2, I1, 2, 1), KVI_ERR_NONFINITE);
  double I1neg[1] = {-1};
  CHECK_STATUS(kvi_mn_kl_mn_f64(&kl, Mq, I2, I1neg, Mq, I2, I1, 2, 1), KVI_ERR_LINALG);
  CHECK_STATUS(kvi_mn_kl_mn_f64(&kl, Mq, I2, I1, Mq, I2, I1, 0, 1), KVI_ERR_SHAPE);
  CHECK_FAILS(kvi_mn_kl_mn_f64(&kl, Mq, I2, I1, Mq, I2, I1, 2, -3));
  CHECK_FAILS(kvi_mn_kl_mn_f64(NULL, Mq, I2, I1, Mq, I2, I1, 2, 1));
  CHECK_FAILS(kvi_mn_kl_mn_f64(&kl, NULL, I2, I1, Mq, I2, I1, 2, 1));
  CHECK_FAILS(kvi_mn_kl_mn_f64(&kl, Mq, I2, NULL, Mq, I2, I1, 2, 1));
  CHECK_FAILS(kvi_mn_kl_mn_f64(&kl, Mq, I2, I1, Mq, NULL, I1, 2, 1));
}

int main(void) {
  rng = kvi_rng_stream(99, 3);
  test_posterior(20, 3, 2, false);
  test_posterior(5, 4, 3, false);
  test_posterior(2, 5, 2, false); /* fewer observations than inputs: the prior makes it SPD */
  test_posterior(50, 1, 4, false);
  test_posterior(30, 4, 3, true); /* some rows with a flat prior */
  int sizes[][2] = {{1, 1}, {2, 3}, {3, 2}, {4, 4}, {1, 5}, {5, 1}};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) test_kl(sizes[k][0], sizes[k][1]);
  test_bad_input();
  TEST_MAIN_END();
}
