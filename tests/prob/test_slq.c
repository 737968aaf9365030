/* The stochastic Lanczos log det of the MN+DIAG covariance V (x) U + diag D (docs/prob.md §3),
 * double precision, on layers small enough for a dense Cholesky:
 *  - the estimate against the exact log det (error within 4 standard errors, and small against
 *    the gap to Minkowski's bound), exact to rounding when D is constant (the control P is then
 *    Sigma itself);
 *  - its gradient against central differences of the exact log det (exact to rounding for a
 *    constant D; within a few percent with 400 probes otherwise);
 *  - the KL with the estimate in place of the bound: below the Minkowski KL, close to the exact. */
#include "kvi_test.h"
#include "prob_test_util.h"

typedef struct {
  int n, m;
  double *M, *A, *B, *ld; /* parameter storage */
} layer;

static layer make_layer(int n, int m, double spread, uint64_t seed) {
  layer L = {n,
             m,
             malloc((size_t)n * m * 8),
             calloc((size_t)n * n, 8),
             calloc((size_t)m * m, 8),
             malloc((size_t)n * m * 8)};
  kvi_rng r = kvi_rng_stream(seed, 1);
  kvi_rng_normal(&r, L.M, (size_t)n * m);
  kvi_rng_normal(&r, L.ld, (size_t)n * m);
  for (int i = 0; i < n * m; i++) L.ld[i] = -1 + spread * L.ld[i];
  double t[64];
  for (int i = 0; i < n; i++) {
    kvi_rng_normal(&r, t, (size_t)i + 1);
    for (int k = 0; k < i; k++) L.A[i * n + k] = 0.3 * t[k];
    L.A[i * n + i] = -0.2 + 0.2 * t[i];
  }
  for (int j = 0; j < m; j++) {
    kvi_rng_normal(&r, t, (size_t)j + 1);
    for (int k = 0; k < j; k++) L.B[j * m + k] = 0.3 * t[k];
    L.B[j * m + j] = -0.1 + 0.2 * t[j];
  }
  return L;
}

static void free_layer(layer *L) { free(L->M), free(L->A), free(L->B), free(L->ld); }

static kvi_mndiag view(const layer *L, kvi_slq *s) {
  kvi_mndiag q = {{L->n, L->m, L->M, L->A, L->B}, L->ld, s};
  return q;
}

static void check_value(int n, int m, double spread) {
  layer L = make_layer(n, m, spread, (uint64_t)(n * 100 + m));
  kvi_slq_config c = {40, 20, 1, 7};
  kvi_slq *s = NULL;
  CHECK_OK(kvi_slq_create(&s, n, m, &c));
  kvi_mndiag q = view(&L, NULL);
  double exact, est, se, lb;
  CHECK_OK(kvi_mndiag_logdet_exact(&exact, &q));
  CHECK_OK(kvi_mndiag_logdet_slq(&est, &se, &q, s, NULL, 0));
  CHECK_OK(kvi_mndiag_logdet_lower(&lb, &q, NULL, 0));
  printf(
      "%2d x %-2d spread %.1f: exact %10.4f  slq %10.4f (se %.2e, error %.2e)  Minkowski "
      "%10.4f (gap %.3f)\n",
      n, m, spread, exact, est, se, est - exact, lb, exact - lb);
  CHECK(lb <= exact + 1e-9);
  if (spread == 0) {
    CHECK_NEAR(est, exact, 1e-9);
  } else {
    CHECK(fabs(est - exact) <= 4 * se + 1e-9);
    CHECK(fabs(est - exact) < 0.25 * (exact - lb) + 1e-6);
  }
  kvi_slq_free(s);
  free_layer(&L);
}

/* d log det / d (A, B, log_d) against central differences of the exact log det. */
static void check_grad(double spread, int probes, double tol) {
  const int n = 5, m = 4;
  layer L = make_layer(n, m, spread, 99);
  kvi_slq_config c = {probes, 20, 1000000, 3};
  kvi_slq *s = NULL;
  CHECK_OK(kvi_slq_create(&s, n, m, &c));
  double gA[25] = {0}, gB[16] = {0}, gd[20] = {0}, gM[20] = {0}, est;
  kvi_mndiag q = view(&L, NULL);
  kvi_mndiag_grad g = {{gM, gA, gB}, gd};
  CHECK_OK(kvi_mndiag_logdet_slq(&est, NULL, &q, s, &g, 1));
  double *ps[3] = {L.A, L.B, L.ld}, *gs[3] = {gA, gB, gd};
  const int sz[3] = {25, 16, 20}, dim[3] = {5, 4, 0};
  double err = 0, scale = 0;
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < sz[k]; i++) {
      if (dim[k] && i % dim[k] > i / dim[k]) continue; /* upper triangle: not a parameter */
      const double x0 = ps[k][i], h = 1e-6;
      double fp, fm;
      ps[k][i] = x0 + h;
      CHECK_OK(kvi_mndiag_logdet_exact(&fp, &q));
      ps[k][i] = x0 - h;
      CHECK_OK(kvi_mndiag_logdet_exact(&fm, &q));
      ps[k][i] = x0;
      const double fd = (fp - fm) / (2 * h);
      err = fmax(err, fabs(fd - gs[k][i])), scale = fmax(scale, fabs(fd));
    }
  printf("gradient, spread %.1f, %d probes: max |slq - FD| / max |FD| = %.2e\n", spread, probes,
         err / scale);
  CHECK(err / scale < tol);
  kvi_slq_free(s);
  free_layer(&L);
}

static void check_kl(void) {
  layer L = make_layer(8, 6, 1.0, 5);
  kvi_slq_config c = {20, 20, 1, 11};
  kvi_slq *s = NULL;
  CHECK_OK(kvi_slq_create(&s, 8, 6, &c));
  kvi_mndiag qm = view(&L, NULL), qs = view(&L, s);
  double kl_m, kl_s, exact, lb, se;
  CHECK_OK(kvi_mndiag_kl_ard(&kl_m, &qm, NULL, 0));
  CHECK_OK(kvi_mndiag_kl_ard(&kl_s, &qs, NULL, 0));
  se = kvi_slq_last_stderr(s);
  CHECK_OK(kvi_mndiag_logdet_exact(&exact, &qm));
  CHECK_OK(kvi_mndiag_logdet_lower(&lb, &qm, NULL, 0));
  const double kl_exact = kl_m + 0.5 * lb - 0.5 * exact; /* the KL with the exact log det */
  printf("KL ARD 8 x 6: Minkowski %.4f, slq %.4f (se %.2e), exact %.4f\n", kl_m, kl_s, 0.5 * se,
         kl_exact);
  CHECK(kl_s < kl_m);
  CHECK(fabs(kl_s - kl_exact) <= 2 * se + 1e-9);
  double kg;
  const double pv = 0.5;
  CHECK_OK(kvi_mndiag_kl_gauss(&kg, &qs, &pv, true, NULL, 0));
  CHECK(isfinite(kg));
  kvi_slq_free(s);
  free_layer(&L);
}

int main(void) {
  check_value(6, 4, 0.0);
  check_value(6, 4, 0.5);
  check_value(10, 8, 1.0);
  check_value(16, 12, 2.0);
  check_grad(0.0, 1, 1e-6);
  check_grad(1.0, 400, 0.05);
  check_kl();
  kvi_slq *s = NULL;
  kvi_slq_config bad = {0, 20, 1, 1};
  CHECK_FAILS(kvi_slq_create(&s, 4, 4, &bad));
  TEST_MAIN_END();
}
