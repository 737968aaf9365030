/* Monte-Carlo checks of the local reparameterization and of the samplers (double precision):
 * for fixed inputs x, the sample mean and covariance of many LRT outputs y must match
 *   MN:      E y = x M,  Cov y = (x U x^T) V
 *   DIAG:    E y = x mu, Cov y = diag(sum_i x_i^2 sigma_ij^2)
 *   MN+DIAG: E y = x M,  Cov y = (x U x^T) V + diag(sum_i x_i^2 D_ij)
 * and kvi_mn_sample must give Cov(W_ij, W_kl) = U_ik V_jl. Every comparison uses a bound of
 * Z = 5 standard errors computed from the true moments: se(mean_j) = sqrt(S_jj / N),
 * se(cov_jl) = sqrt((S_jj S_ll + S_jl^2) / N) (Gaussian fourth moments), N samples. With ~10^3
 * comparisons the chance of a false alarm is below 1e-3 (and the seed is fixed). */
#include "prob_test_util.h"

#define NS 40000 /* samples per input row */
#define Z 5.0
#define NX 4 /* distinct input rows */

/* Compares the sample moments of y (N rows of dimension d, stride ld, starting at row r0 and
 * taking every `step`-th row) with mean mu (d) and covariance S (d, d). */
static int moments_bad(const kvi_real *y, int N, int d, int r0, int step, const double *mu,
                       const double *S, const char *what) {
  double *mean = calloc(d, sizeof(double)), *C = calloc((size_t)d * d, sizeof(double));
  for (int s = 0; s < N; s++) {
    const kvi_real *r = y + (size_t)(r0 + s * step) * d;
    for (int j = 0; j < d; j++) mean[j] += r[j];
  }
  for (int j = 0; j < d; j++) mean[j] /= N;
  for (int s = 0; s < N; s++) {
    const kvi_real *r = y + (size_t)(r0 + s * step) * d;
    for (int j = 0; j < d; j++)
      for (int l = 0; l < d; l++) C[j * d + l] += (r[j] - mean[j]) * (r[l] - mean[l]);
  }
  int bad = 0;
  for (int j = 0; j < d; j++) {
    double se = sqrt(S[j * d + j] / N);
    if (!(fabs(mean[j] - mu[j]) <= Z * se)) {
      if (what)
        fprintf(stderr, "%s: mean[%d] = %.6g, expected %.6g +- %.3g\n", what, j, mean[j], mu[j],
                Z * se);
      bad++;
    }
    for (int l = 0; l < d; l++) {
      double c = C[j * d + l] / (N - 1), t = S[j * d + l];
      double sec = sqrt((S[j * d + j] * S[l * d + l] + t * t) / N);
      if (!(fabs(c - t) <= Z * sec)) {
        if (what)
          fprintf(stderr, "%s: cov[%d,%d] = %.6g, expected %.6g +- %.3g\n", what, j, l, c, t,
                  Z * sec);
        bad++;
      }
    }
  }
  free(mean), free(C);
  return bad;
}

static void check_moments(const kvi_real *y, int N, int d, int r0, int step, const double *mu,
                          const double *S, const char *what) {
  CHECK(moments_bad(y, N, d, r0, step, mu, S, what) == 0);
}

int main(void) {
  tu_rng = kvi_rng_stream(99, 5);
  const int n = 3, m = 4, N = NS * NX;
  kvi_real M[12], A[9], B[16], ls[12], ld[12], xs[NX * 3];
  tu_fill(M, 12, 1, 0);
  tu_chol(A, n, 0.5, 0.3, 0);
  tu_chol(B, m, 0.5, 0.3, 0);
  tu_fill(ls, 12, 0.3, -0.5);
  tu_fill(ld, 12, 0.3, -1.0);
  tu_fill(xs, NX * 3, 1, 0);
  for (int i = 0; i < n; i++) xs[i] = (kvi_real)(i == 1); /* a unit input row */
  kvi_mn q = {n, m, M, A, B};
  kvi_diag qd = {n, m, M, ls};
  kvi_mndiag qm = {q, ld, NULL};
  double U[9], V[16];
  tu_llt(U, A, n);
  tu_llt(V, B, m);
  /* replicated inputs: row r is xs[r % NX] */
  kvi_real *X = malloc(sizeof(kvi_real) * N * n), *e1 = malloc(sizeof(kvi_real) * N * m);
  kvi_real *e2 = malloc(sizeof(kvi_real) * N * m), *Y = malloc(sizeof(kvi_real) * N * m);
  for (int r = 0; r < N; r++) memcpy(X + r * n, xs + (r % NX) * n, sizeof(kvi_real) * n);
  kvi_rng rng = kvi_rng_stream(12345, 1);
  kvi_rng_normal(&rng, e1, (size_t)N * m);
  kvi_rng_normal(&rng, e2, (size_t)N * m);
  void *ws = kvi_alloc(kvi_mndiag_lrt_ws_size(N, n, m) + kvi_diag_lrt_ws_size(N, n, m));
  double mu[4], S[16];
  char what[64];
  for (int kind = 0; kind < 3; kind++) {
    if (kind == 0) CHECK_OK(kvi_mn_lrt_forward(Y, ws, &q, X, e1, N));
    if (kind == 1) CHECK_OK(kvi_diag_lrt_forward(Y, ws, &qd, X, e1, N));
    if (kind == 2) CHECK_OK(kvi_mndiag_lrt_forward(Y, ws, &qm, X, e1, e2, N));
    for (int r = 0; r < NX; r++) {
      const kvi_real *x = xs + r * n;
      double xux = 0;
      for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) xux += x[i] * U[i * n + k] * x[k];
      for (int j = 0; j < m; j++) {
        mu[j] = 0;
        for (int i = 0; i < n; i++) mu[j] += x[i] * M[i * m + j];
        for (int l = 0; l < m; l++) S[j * m + l] = kind == 1 ? 0 : xux * V[j * m + l];
        double dv = 0;
        for (int i = 0; i < n; i++)
          dv += x[i] * x[i] * (kind == 1 ? exp(2.0 * ls[i * m + j]) : exp(ld[i * m + j]));
        if (kind != 0) S[j * m + j] += dv;
      }
      snprintf(what, sizeof what, "%s LRT row %d",
               kind == 0   ? "MN"
               : kind == 1 ? "DIAG"
                           : "MN+DIAG",
               r);
      check_moments(Y, NS, m, r, NX, mu, S, what);
    }
  }
  /* deterministic forward: Y = X M exactly (same as the mean) */
  CHECK_OK(kvi_mn_lrt_forward(Y, ws, &q, X, NULL, NX));
  for (int j = 0; j < m; j++) {
    double t = 0;
    for (int i = 0; i < n; i++) t += xs[n + i] * M[i * m + j];
    CHECK_NEAR(Y[m + j], t, 1e-12);
  }
  /* kvi_mn_sample and kvi_diag_sample: Cov(W_ij, W_kl) = U_ik V_jl, resp. diag sigma^2 */
  {
    const int NW = 20000, d = n * m;
    kvi_real *Ws = malloc(sizeof(kvi_real) * NW * d), *E = malloc(sizeof(kvi_real) * d);
    kvi_arena *ar = kvi_arena_create(4096);
    double muW[12], SW[144];
    int nfail = 0;
    for (int s = 0; s < NW; s++) {
      kvi_rng_normal(&rng, E, d);
      nfail += kvi_mn_sample(Ws + (size_t)s * d, &q, E, ar) != KVI_OK;
    }
    for (int p = 0; p < d; p++) {
      muW[p] = M[p];
      for (int t = 0; t < d; t++) SW[p * d + t] = U[(p / m) * n + t / m] * V[(p % m) * m + t % m];
    }
    check_moments(Ws, NW, d, 0, 1, muW, SW, "kvi_mn_sample");
    for (int s = 0; s < NW; s++) {
      kvi_rng_normal(&rng, E, d);
      nfail += kvi_diag_sample(Ws + (size_t)s * d, &qd, E) != KVI_OK;
    }
    for (int p = 0; p < d; p++)
      for (int t = 0; t < d; t++) SW[p * d + t] = p == t ? exp(2.0 * ls[p]) : 0;
    check_moments(Ws, NW, d, 0, 1, muW, SW, "kvi_diag_sample");
    /* the check has power: a sampler with V replaced by I is rejected */
    kvi_real Bid[16];
    for (int j = 0; j < m; j++)
      for (int l = 0; l < m; l++) Bid[j * m + l] = j == l ? 0 : (j > l ? 0 : (kvi_real)NAN);
    kvi_mn qi = {n, m, M, A, Bid};
    for (int s = 0; s < NW; s++) {
      kvi_rng_normal(&rng, E, d);
      nfail += kvi_mn_sample(Ws + (size_t)s * d, &qi, E, ar) != KVI_OK;
    }
    CHECK(nfail == 0);
    for (int p = 0; p < d; p++)
      for (int t = 0; t < d; t++) SW[p * d + t] = U[(p / m) * n + t / m] * V[(p % m) * m + t % m];
    CHECK(moments_bad(Ws, NW, d, 0, 1, muW, SW, NULL) > 10);
    kvi_arena_free(ar);
    free(Ws), free(E);
  }
  kvi_free(ws);
  free(X), free(e1), free(e2), free(Y);
  TEST_MAIN_END();
}
