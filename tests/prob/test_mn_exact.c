/* Exact checks of the DIAG, MN and MN+DIAG densities, entropies and KL terms against a dense
 * nm x nm Gaussian over vec(W) (Cov(W_ij, W_kl) = U_ik V_jl), in double, to 1e-10 relative. */
#include "prob_test_util.h"

#define TOL 1e-10

typedef struct {
  int n, m;
  kvi_real *M, *A, *B, *log_d, *W, *pv, *lt, *lg;
  kvi_mn q;
  kvi_mndiag qd;
} tcase;

static void tc_init(tcase *t, int n, int m) {
  int N = n * m;
  t->n = n;
  t->m = m;
  t->M = malloc(sizeof(kvi_real) * N);
  t->A = malloc(sizeof(kvi_real) * n * n);
  t->B = malloc(sizeof(kvi_real) * m * m);
  t->log_d = malloc(sizeof(kvi_real) * N);
  t->W = malloc(sizeof(kvi_real) * N);
  t->pv = malloc(sizeof(kvi_real) * N);
  t->lt = malloc(sizeof(kvi_real) * n);
  t->lg = malloc(sizeof(kvi_real) * m);
  tu_fill(t->M, N, 0.7, 0);
  tu_chol(t->A, n, 0.4, 0.3, 0.0);
  tu_chol(t->B, m, 0.4, 0.3, -0.2);
  tu_fill(t->log_d, N, 0.5, -1.5);
  tu_fill(t->W, N, 1.0, 0);
  for (int p = 0; p < N; p++) t->pv[p] = (kvi_real)exp(0.5 * tu_normal());
  tu_fill(t->lt, n, 0.5, 0);
  tu_fill(t->lg, m, 0.5, 0);
  t->q = (kvi_mn){n, m, t->M, t->A, t->B};
  t->qd = (kvi_mndiag){t->q, t->log_d, NULL};
}

static void tc_free(tcase *t) {
  free(t->M), free(t->A), free(t->B), free(t->log_d), free(t->W), free(t->pv), free(t->lt);
  free(t->lg);
}

static void check_mn(tcase *t, kvi_arena *ar) {
  int n = t->n, m = t->m, N = n * m;
  double *S = tu_mn_cov(&t->q, NULL);
  double *L = malloc(sizeof(double) * N * N), *pv = malloc(sizeof(double) * N);
  memcpy(L, S, sizeof(double) * N * N);
  double ld = tu_chol_logdet(L, N);
  double v;
  /* log-prob */
  CHECK_OK(kvi_mn_log_prob(&v, &t->q, t->W, ar));
  CHECK_NEAR(v, tu_logpdf(L, N, t->M, t->W), TOL);
  CHECK_OK(kvi_mn_log_prob(&v, &t->q, t->W, NULL)); /* heap scratch */
  CHECK_NEAR(v, tu_logpdf(L, N, t->M, t->W), TOL);
  /* entropy */
  CHECK_OK(kvi_mn_entropy(&v, &t->q, NULL, 1));
  CHECK_NEAR(v, 0.5 * ld + 0.5 * N * (1 + log(2 * 3.14159265358979323846)), TOL);
  /* marginal variances and log alpha */
  kvi_real *var = malloc(sizeof(kvi_real) * N), *la = malloc(sizeof(kvi_real) * N);
  CHECK_OK(kvi_mn_marginal_var(var, &t->q));
  CHECK_OK(kvi_mn_log_alpha(la, &t->q));
  for (int p = 0; p < N; p++) {
    CHECK_NEAR(var[p], S[p * N + p], TOL);
    CHECK_NEAR(la[p], log(S[p * N + p] / ((double)t->M[p] * t->M[p])), TOL);
  }
  /* KL to N(0, diag pv) (array and scalar prior) */
  for (int p = 0; p < N; p++) pv[p] = t->pv[p];
  CHECK_OK(kvi_mn_kl_gauss(&v, &t->q, t->pv, false, NULL, 1));
  CHECK_NEAR(v, tu_kl_diagprior(S, ld, t->M, pv, N), TOL);
  kvi_real ps = (kvi_real)0.7;
  for (int p = 0; p < N; p++) pv[p] = ps;
  CHECK_OK(kvi_mn_kl_gauss(&v, &t->q, &ps, true, NULL, 1));
  CHECK_NEAR(v, tu_kl_diagprior(S, ld, t->M, pv, N), TOL);
  /* ARD: KL to the Gaussian prior with alpha = 1/(M^2 + Var) */
  for (int p = 0; p < N; p++) pv[p] = (double)t->M[p] * t->M[p] + S[p * N + p];
  CHECK_OK(kvi_mn_kl_ard(&v, &t->q, NULL, 1));
  CHECK_NEAR(v, tu_kl_diagprior(S, ld, t->M, pv, N), TOL);
  /* group ARD: prior variance 1/(tau_i gamma_j) */
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) pv[i * m + j] = exp(-(double)t->lt[i] - (double)t->lg[j]);
  CHECK_OK(kvi_mn_kl_group(&v, &t->q, t->lt, t->lg, NULL, NULL, NULL, 1));
  CHECK_NEAR(v, tu_kl_diagprior(S, ld, t->M, pv, N), TOL);
  free(S), free(L), free(pv), free(var), free(la);
}

static void check_diag(tcase *t) {
  int n = t->n, m = t->m, N = n * m;
  /* sigma = exp(log_d): a diagonal covariance diag(sigma^2) */
  kvi_diag q = {n, m, t->M, t->log_d};
  double *S = calloc((size_t)N * N, sizeof(double)), *pv = malloc(sizeof(double) * N);
  for (int p = 0; p < N; p++) S[p * N + p] = exp(2.0 * t->log_d[p]);
  double *L = malloc(sizeof(double) * N * N);
  memcpy(L, S, sizeof(double) * N * N);
  double ld = tu_chol_logdet(L, N), v;
  CHECK_OK(kvi_diag_log_prob(&v, &q, t->W));
  CHECK_NEAR(v, tu_logpdf(L, N, t->M, t->W), TOL);
  CHECK_OK(kvi_diag_entropy(&v, &q, NULL, 1));
  CHECK_NEAR(v, 0.5 * ld + 0.5 * N * (1 + log(2 * 3.14159265358979323846)), TOL);
  for (int p = 0; p < N; p++) pv[p] = t->pv[p];
  CHECK_OK(kvi_diag_kl_gauss(&v, &q, t->pv, false, NULL, 1));
  CHECK_NEAR(v, tu_kl_diagprior(S, ld, t->M, pv, N), TOL);
  kvi_real ps = 2;
  for (int p = 0; p < N; p++) pv[p] = 2;
  CHECK_OK(kvi_diag_kl_gauss(&v, &q, &ps, true, NULL, 1));
  CHECK_NEAR(v, tu_kl_diagprior(S, ld, t->M, pv, N), TOL);
  for (int p = 0; p < N; p++) pv[p] = (double)t->M[p] * t->M[p] + S[p * N + p];
  CHECK_OK(kvi_diag_kl_ard(&v, &q, NULL, 1));
  CHECK_NEAR(v, tu_kl_diagprior(S, ld, t->M, pv, N), TOL);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) pv[i * m + j] = exp(-(double)t->lt[i] - (double)t->lg[j]);
  CHECK_OK(kvi_diag_kl_group(&v, &q, t->lt, t->lg, NULL, NULL, NULL, 1));
  CHECK_NEAR(v, tu_kl_diagprior(S, ld, t->M, pv, N), TOL);
  kvi_real *la = malloc(sizeof(kvi_real) * N), *W = malloc(sizeof(kvi_real) * N);
  CHECK_OK(kvi_diag_log_alpha(la, &q));
  CHECK_OK(kvi_diag_sample(W, &q, t->W));
  for (int p = 0; p < N; p++) {
    CHECK_NEAR(la[p], log(S[p * N + p] / ((double)t->M[p] * t->M[p])), TOL);
    CHECK_NEAR(W[p], t->M[p] + exp(t->log_d[p]) * t->W[p], TOL);
  }
  free(S), free(L), free(pv), free(la), free(W);
}

/* MN+DIAG: the Minkowski bound LB <= exact log det; KL functions = exact KL + (ld - LB)/2. */
static void check_mndiag(tcase *t) {
  int n = t->n, m = t->m, N = n * m;
  double *S = tu_mn_cov(&t->q, t->log_d), *pv = malloc(sizeof(double) * N);
  double *L = malloc(sizeof(double) * N * N);
  memcpy(L, S, sizeof(double) * N * N);
  double ld = tu_chol_logdet(L, N), lb, v;
  CHECK_OK(kvi_mndiag_logdet_lower(&lb, &t->qd, NULL, 1));
  CHECK(lb <= ld + 1e-12);
  CHECK(lb > ld - 0.5 * N); /* not absurdly loose for these well-conditioned cases */
  double gap = 0.5 * (ld - lb);
  kvi_real *var = malloc(sizeof(kvi_real) * N);
  CHECK_OK(kvi_mndiag_marginal_var(var, &t->qd));
  for (int p = 0; p < N; p++) CHECK_NEAR(var[p], S[p * N + p], TOL);
  for (int p = 0; p < N; p++) pv[p] = t->pv[p];
  CHECK_OK(kvi_mndiag_kl_gauss(&v, &t->qd, t->pv, false, NULL, 1));
  CHECK_NEAR(v, tu_kl_diagprior(S, ld, t->M, pv, N) + gap, TOL);
  for (int p = 0; p < N; p++) pv[p] = (double)t->M[p] * t->M[p] + S[p * N + p];
  CHECK_OK(kvi_mndiag_kl_ard(&v, &t->qd, NULL, 1));
  CHECK_NEAR(v, tu_kl_diagprior(S, ld, t->M, pv, N) + gap, TOL);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) pv[i * m + j] = exp(-(double)t->lt[i] - (double)t->lg[j]);
  CHECK_OK(kvi_mndiag_kl_group(&v, &t->qd, t->lt, t->lg, NULL, NULL, NULL, 1));
  CHECK_NEAR(v, tu_kl_diagprior(S, ld, t->M, pv, N) + gap, TOL);
  free(S), free(L), free(pv), free(var);
}

/* Equality cases of the bound: U, V diagonal with D proportional to U_ii V_jj (exact), and
 * D -> 0 (the bound tends to the MN log det). */
static void check_bound_limits(int n, int m) {
  tcase t;
  tc_init(&t, n, m);
  int N = n * m;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < i; k++) t.A[i * n + k] = 0;
  for (int j = 0; j < m; j++)
    for (int l = 0; l < j; l++) t.B[j * m + l] = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++)
      t.log_d[i * m + j] = (kvi_real)(log(0.3) + 2.0 * t.A[i * n + i] + 2.0 * t.B[j * m + j]);
  double *S = tu_mn_cov(&t.q, t.log_d), lb;
  double ld = tu_chol_logdet(S, N);
  CHECK_OK(kvi_mndiag_logdet_lower(&lb, &t.qd, NULL, 1));
  CHECK_NEAR(lb, ld, TOL);
  free(S);
  /* D -> 0 with a general MN: LB -> m log|U| + n log|V| */
  tc_free(&t);
  tc_init(&t, n, m);
  for (int p = 0; p < N; p++) t.log_d[p] = -40;
  double ldmn = 0;
  for (int i = 0; i < n; i++) ldmn += 2.0 * m * t.A[i * n + i];
  for (int j = 0; j < m; j++) ldmn += 2.0 * n * t.B[j * m + j];
  CHECK_OK(kvi_mndiag_logdet_lower(&lb, &t.qd, NULL, 1));
  CHECK_NEAR(lb, ldmn, TOL);
  S = tu_mn_cov(&t.q, t.log_d);
  ld = tu_chol_logdet(S, N);
  CHECK_NEAR(lb, ld, 1e-8);
  free(S);
  tc_free(&t);
}

/* The exact group update reaches a stationary point of the group KL in (log tau, log gamma)
 * with the scale fixed by mean log tau = mean log gamma, and lowers the KL. */
static void check_group_update(tcase *t) {
  int n = t->n, m = t->m, N = n * m;
  kvi_real *S = malloc(sizeof(kvi_real) * N), *gt = calloc(n, sizeof(kvi_real));
  kvi_real *gg = calloc(m, sizeof(kvi_real));
  CHECK_OK(kvi_mn_marginal_var(S, &t->q));
  for (int p = 0; p < N; p++) S[p] += t->M[p] * t->M[p];
  double kl0, kl1;
  CHECK_OK(kvi_mn_kl_group(&kl0, &t->q, t->lt, t->lg, NULL, NULL, NULL, 1));
  CHECK_OK(kvi_group_ard_update(t->lt, t->lg, S, n, m, 500));
  CHECK_OK(kvi_mn_kl_group(&kl1, &t->q, t->lt, t->lg, NULL, gt, gg, 1));
  CHECK(kl1 <= kl0 + 1e-12);
  for (int i = 0; i < n; i++) CHECK(fabs(gt[i]) < 1e-8);
  for (int j = 0; j < m; j++) CHECK(fabs(gg[j]) < 1e-8);
  double mt = 0, mg = 0;
  for (int i = 0; i < n; i++) mt += t->lt[i] / n;
  for (int j = 0; j < m; j++) mg += t->lg[j] / m;
  CHECK_NEAR(mt, mg, 1e-12);
  /* a rank-one S = r_i c_j is fitted exactly: tau_i gamma_j S_ij = 1 */
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) S[i * m + j] = (kvi_real)((1.0 + i) * (0.5 + j * j));
  CHECK_OK(kvi_group_ard_update(t->lt, t->lg, S, n, m, 3));
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++)
      CHECK_NEAR(exp((double)t->lt[i] + t->lg[j]) * S[i * m + j], 1.0, 1e-12);
  free(S), free(gt), free(gg);
}

int main(void) {
  tu_rng = kvi_rng_stream(2024, 1);
  kvi_arena *ar = kvi_arena_create(1 << 16);
  const int sizes[][2] = {{3, 4}, {5, 2}, {1, 3}, {4, 1}, {6, 5}};
  for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
    tcase t;
    tc_init(&t, sizes[c][0], sizes[c][1]);
    check_mn(&t, ar);
    check_diag(&t);
    check_mndiag(&t);
    check_group_update(&t);
    tc_free(&t);
    check_bound_limits(sizes[c][0], sizes[c][1]);
  }
  kvi_arena_free(ar);
  TEST_MAIN_END();
}
