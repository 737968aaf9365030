/* Bad input to the DIAG / MN / MN+DIAG functions: NULL pointers, zero or negative sizes,
 * NaN / Inf parameters, bad priors, misaligned workspaces -> an error status with a message,
 * never a crash. NaN in the ignored upper triangle of a Cholesky factor is NOT an error. */
#include "prob_test_util.h"

enum { n = 3, m = 2, NB = 4 };

static kvi_real M[n * m], A[n * n], B[m * m], ls[n * m], ld[n * m], lt[n], lg[m], pv[n * m];
static kvi_real W[n * m], X[NB * n], E1[NB * m], E2[NB * m], Y[NB * m], dX[NB * n];
static kvi_real gM[n * m], gA[n * n], gB[m * m], gl[n * m], S[n * m];

static void reset(void) {
  tu_rng = kvi_rng_stream(1, 1);
  tu_fill(M, n * m, 1, 0), tu_chol(A, n, .3, .2, 0), tu_chol(B, m, .3, .2, 0);
  tu_fill(ls, n * m, .2, -1), tu_fill(ld, n * m, .2, -1), tu_fill(lt, n, .3, 0);
  tu_fill(lg, m, .3, 0), tu_fill(W, n * m, 1, 0), tu_fill(X, NB * n, 1, 0);
  tu_fill(E1, NB * m, 1, 0), tu_fill(E2, NB * m, 1, 0);
  for (int k = 0; k < n * m; k++) pv[k] = 1, S[k] = 1;
}

/* every DIAG entry point on q must fail (and report) */
static void diag_all_fail(const kvi_diag *q, void *ws, int batch) {
  double v;
  kvi_diag_grad g = {gM, gl};
  CHECK_FAILS(kvi_diag_check(q));
  CHECK_FAILS(kvi_diag_log_prob(&v, q, W));
  CHECK_FAILS(kvi_diag_entropy(&v, q, &g, 1));
  CHECK_FAILS(kvi_diag_kl_gauss(&v, q, pv, false, &g, 1));
  CHECK_FAILS(kvi_diag_kl_ard(&v, q, &g, 1));
  CHECK_FAILS(kvi_diag_kl_group(&v, q, lt, lg, &g, NULL, NULL, 1));
  (void)ws, (void)batch;
}

static void mn_all_fail(const kvi_mn *q) {
  double v;
  kvi_mn_grad g = {gM, gA, gB};
  CHECK_FAILS(kvi_mn_check(q));
  CHECK_FAILS(kvi_mn_log_prob(&v, q, W, NULL));
  CHECK_FAILS(kvi_mn_entropy(&v, q, &g, 1));
  CHECK_FAILS(kvi_mn_kl_gauss(&v, q, pv, false, &g, 1));
  CHECK_FAILS(kvi_mn_kl_ard(&v, q, &g, 1));
  CHECK_FAILS(kvi_mn_kl_group(&v, q, lt, lg, &g, NULL, NULL, 1));
}

static void mndiag_all_fail(const kvi_mndiag *q) {
  double v;
  kvi_mndiag_grad g = {{gM, gA, gB}, gl};
  CHECK_FAILS(kvi_mndiag_logdet_lower(&v, q, &g, 1));
  CHECK_FAILS(kvi_mndiag_kl_gauss(&v, q, pv, false, &g, 1));
  CHECK_FAILS(kvi_mndiag_kl_ard(&v, q, &g, 1));
  CHECK_FAILS(kvi_mndiag_kl_group(&v, q, lt, lg, &g, NULL, NULL, 1));
}

int main(void) {
  reset();
  void *ws = kvi_alloc(kvi_mndiag_lrt_ws_size(NB, n, m) + kvi_diag_lrt_ws_size(NB, n, m) + 64);
  double v;
  kvi_diag qd = {n, m, M, ls};
  kvi_mn q = {n, m, M, A, B};
  kvi_mndiag qm = {q, ld, NULL};
  kvi_diag_grad gd = {gM, gl};
  kvi_mn_grad gm = {gM, gA, gB};
  kvi_mndiag_grad gmd = {gm, gl};

  /* sanity: the good inputs pass (the upper triangles of A, B hold NaN: never read) */
  CHECK_OK(kvi_diag_check(&qd));
  CHECK_OK(kvi_mn_check(&q));
  CHECK_OK(kvi_mn_kl_ard(&v, &q, &gm, 1));
  CHECK_OK(kvi_mndiag_kl_ard(&v, &qm, &gmd, 1));
  CHECK_OK(kvi_mn_lrt_forward(Y, ws, &q, X, E1, NB));
  CHECK_OK(kvi_mn_lrt_backward(&gm, dX, Y, ws, &q, X, E1, NB));
  CHECK(isfinite(gA[0]) && isfinite(gB[m + 1]) && isnan(gA[1]) == 0);

  /* NULL distribution / outputs */
  CHECK_STATUS(kvi_diag_check(NULL), KVI_ERR_ARG);
  CHECK_STATUS(kvi_mn_check(NULL), KVI_ERR_ARG);
  CHECK_FAILS(kvi_mn_entropy(NULL, &q, NULL, 1));
  CHECK_FAILS(kvi_mn_kl_ard(NULL, &q, NULL, 1));
  CHECK_FAILS(kvi_mn_kl_gauss(&v, &q, NULL, true, NULL, 1));
  CHECK_FAILS(kvi_mn_kl_group(&v, &q, NULL, lg, NULL, NULL, NULL, 1));
  CHECK_FAILS(kvi_diag_kl_group(&v, &qd, lt, NULL, NULL, NULL, NULL, 1));
  CHECK_FAILS(kvi_mndiag_kl_group(&v, &qm, NULL, NULL, NULL, NULL, NULL, 1));
  CHECK_FAILS(kvi_mn_sample(NULL, &q, W, NULL));
  CHECK_FAILS(kvi_mn_sample(W, &q, NULL, NULL));
  CHECK_FAILS(kvi_diag_sample(W, &qd, NULL));
  CHECK_FAILS(kvi_mn_log_prob(&v, &q, NULL, NULL));
  CHECK_FAILS(kvi_diag_log_prob(&v, &qd, NULL));
  CHECK_FAILS(kvi_mn_marginal_var(NULL, &q));
  CHECK_FAILS(kvi_mndiag_marginal_var(NULL, &qm));
  CHECK_FAILS(kvi_mn_log_alpha(NULL, &q));
  CHECK_FAILS(kvi_diag_log_alpha(NULL, &qd));
  CHECK_FAILS(kvi_mndiag_log_alpha(NULL, &qm));
  CHECK_FAILS(kvi_mndiag_logdet_lower(NULL, &qm, NULL, 1));
  {
    kvi_mn q0 = {n, m, NULL, A, B};
    mn_all_fail(&q0);
    q0 = (kvi_mn){n, m, M, NULL, B};
    mn_all_fail(&q0);
    q0 = (kvi_mn){n, m, M, A, NULL};
    mn_all_fail(&q0);
    kvi_diag d0 = {n, m, M, NULL};
    diag_all_fail(&d0, ws, NB);
    kvi_mndiag md0 = {q, NULL, NULL};
    mndiag_all_fail(&md0);
    CHECK_FAILS(kvi_mndiag_lrt_forward(Y, ws, &md0, X, E1, E2, NB));
  }
  /* sizes */
  {
    kvi_mn q0 = {0, m, M, A, B};
    mn_all_fail(&q0);
    q0 = (kvi_mn){n, -2, M, A, B};
    mn_all_fail(&q0);
    kvi_diag d0 = {-1, m, M, ls};
    diag_all_fail(&d0, ws, NB);
    kvi_mndiag md0 = {{n, 0, M, A, B}, ld, NULL};
    mndiag_all_fail(&md0);
    CHECK_FAILS(kvi_mn_lrt_forward(Y, ws, &q0, X, E1, NB));
    CHECK_FAILS(kvi_diag_lrt_backward(&gd, dX, Y, ws, &d0, X, E1, NB));
  }
  CHECK_STATUS(kvi_mn_lrt_forward(Y, ws, &q, X, E1, 0), KVI_ERR_ARG);
  CHECK_FAILS(kvi_mn_lrt_backward(&gm, dX, Y, ws, &q, X, E1, -3));
  CHECK_FAILS(kvi_diag_lrt_forward(Y, ws, &qd, X, E1, 0));
  CHECK_FAILS(kvi_mndiag_lrt_forward(Y, ws, &qm, X, E1, E2, 0));
  CHECK_FAILS(kvi_mndiag_lrt_backward(&gmd, dX, Y, ws, &qm, X, E1, E2, -1));
  CHECK(kvi_mn_lrt_ws_size(0, n, m) == 0 && kvi_diag_lrt_ws_size(NB, -1, m) == 0);
  /* NULL / misaligned workspace and NULL arrays in the LRT */
  CHECK_FAILS(kvi_mn_lrt_forward(Y, NULL, &q, X, E1, NB));
  CHECK_FAILS(kvi_diag_lrt_forward(Y, NULL, &qd, X, E1, NB));
  CHECK_FAILS(kvi_mndiag_lrt_forward(Y, NULL, &qm, X, NULL, E2, NB));
  CHECK_FAILS(kvi_mn_lrt_forward(Y, (char *)ws + 4, &q, X, E1, NB));
  CHECK_FAILS(kvi_mn_lrt_forward(NULL, ws, &q, X, E1, NB));
  CHECK_FAILS(kvi_mn_lrt_forward(Y, ws, &q, NULL, E1, NB));
  CHECK_FAILS(kvi_mn_lrt_backward(&gm, dX, NULL, ws, &q, X, E1, NB));
  CHECK_FAILS(kvi_diag_lrt_backward(&gd, dX, Y, ws, NULL, X, E1, NB));
  CHECK_OK(kvi_mn_lrt_forward(Y, NULL, &q, X, NULL, NB)); /* mean forward needs no workspace */

  /* non-finite parameters */
  const double bad[] = {NAN, INFINITY, -INFINITY};
  for (int b = 0; b < 3; b++) {
    kvi_real x = (kvi_real)bad[b], keep;
    keep = M[4], M[4] = x;
    mn_all_fail(&q), diag_all_fail(&qd, ws, NB), mndiag_all_fail(&qm);
    M[4] = keep;
    keep = A[n + 0], A[n + 0] = x; /* strict lower of A */
    mn_all_fail(&q), mndiag_all_fail(&qm);
    A[n + 0] = keep;
    keep = A[2 * n + 2], A[2 * n + 2] = x; /* log-diagonal of A */
    mn_all_fail(&q), mndiag_all_fail(&qm);
    A[2 * n + 2] = keep;
    keep = B[m + 1], B[m + 1] = x;
    mn_all_fail(&q), mndiag_all_fail(&qm);
    B[m + 1] = keep;
    keep = ls[1], ls[1] = x;
    diag_all_fail(&qd, ws, NB);
    ls[1] = keep;
    keep = ld[5], ld[5] = x;
    mndiag_all_fail(&qm);
    ld[5] = keep;
    keep = lt[0], lt[0] = x;
    CHECK_STATUS(kvi_mn_kl_group(&v, &q, lt, lg, NULL, NULL, NULL, 1), KVI_ERR_NONFINITE);
    CHECK_FAILS(kvi_diag_kl_group(&v, &qd, lt, lg, NULL, NULL, NULL, 1));
    CHECK_FAILS(kvi_group_ard_update(lt, lg, S, n, m, 3));
    lt[0] = keep;
    keep = S[2], S[2] = x;
    CHECK_STATUS(kvi_group_ard_update(lt, lg, S, n, m, 3), KVI_ERR_NONFINITE);
    S[2] = keep;
  }
  CHECK_STATUS(kvi_mn_check(&q), KVI_OK); /* restored */
  /* a log-diagonal so large that exp overflows, or so small that it underflows to 0 */
  A[0] = 1e5;
  CHECK_STATUS(kvi_mn_check(&q), KVI_ERR_NONFINITE);
  A[0] = -1e5;
  CHECK_STATUS(kvi_mn_check(&q), KVI_ERR_NONFINITE);
  A[0] = 0;
  ls[0] = 1e5;
  CHECK_STATUS(kvi_diag_check(&qd), KVI_ERR_NONFINITE);
  ls[0] = 0;
  /* bad priors and group-update arguments */
  pv[3] = 0;
  CHECK_STATUS(kvi_mn_kl_gauss(&v, &q, pv, false, NULL, 1), KVI_ERR_ARG);
  CHECK_FAILS(kvi_diag_kl_gauss(&v, &qd, pv, false, NULL, 1));
  CHECK_FAILS(kvi_mndiag_kl_gauss(&v, &qm, pv, false, NULL, 1));
  pv[3] = -1;
  CHECK_FAILS(kvi_mn_kl_gauss(&v, &q, pv + 3, true, NULL, 1));
  pv[3] = (kvi_real)NAN;
  CHECK_FAILS(kvi_mn_kl_gauss(&v, &q, pv, false, NULL, 1));
  pv[3] = 1;
  S[1] = -2;
  CHECK_STATUS(kvi_group_ard_update(lt, lg, S, n, m, 3), KVI_ERR_ARG);
  S[1] = 1;
  CHECK_FAILS(kvi_group_ard_update(lt, lg, S, n, m, -1));
  CHECK_FAILS(kvi_group_ard_update(lt, lg, S, 0, m, 1));
  CHECK_FAILS(kvi_group_ard_update(lt, lg, NULL, n, m, 1));
  CHECK_FAILS(kvi_group_ard_update(NULL, lg, S, n, m, 1));
  CHECK_OK(kvi_group_ard_update(lt, lg, S, n, m, 2));
  /* a failed call leaves the gradients untouched */
  memset(gM, 0, sizeof gM);
  M[0] = (kvi_real)NAN;
  CHECK_FAILS(kvi_mn_kl_ard(&v, &q, &gm, 1));
  M[0] = 0;
  int untouched = 1;
  for (int k = 0; k < n * m; k++) untouched &= gM[k] == 0;
  CHECK(untouched);
  kvi_free(ws);
  TEST_MAIN_END();
}
