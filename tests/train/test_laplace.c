/* K-FAC Laplace: on a linear-Gaussian model (one linear layer, Gaussian likelihood of precision
 * beta, prior N(0, 1/tau)) the posterior equals the exact one, precision beta X^T X + tau I;
 * on a classifier the factors are symmetric positive semi-definite, the posterior is an mn net
 * whose mean network is the point network, and bad input fails with a message. */
#include <string.h>

#include "kronvi/train.h"
#include "kvi_test.h"

static void test_linear_gaussian(void) {
  const int N = 40, d = 3;
  const double beta = 2.5, tau = 0.7;
  kvi_dataset ds;
  CHECK_OK(kvi_dataset_alloc(&ds, N, d, 0, 0, 0, 0, 1));
  kvi_rng r = kvi_rng_stream(2, 3);
  kvi_rng_normal(&r, ds.x, (size_t)N * d);
  kvi_rng_normal(&r, ds.t, (size_t)N);
  kvi_net_config nc = kvi_net_config_default();
  nc.family = KVI_FAMILY_POINT, nc.prior = KVI_PRIOR_NONE, nc.bias = false;
  nc.act = KVI_ACT_NONE, nc.noise_param = true;
  kvi_net *net = NULL, *post = NULL;
  CHECK_OK(kvi_net_create(&net, "3-1", d, &nc, 16, 1));
  kvi_net_set_log_beta(net, (kvi_real)log(beta));
  kvi_laplace *lp = NULL;
  CHECK_OK(kvi_laplace_factors(&lp, net, &ds, KVI_TASK_REGRESS));
  CHECK_OK(kvi_laplace_posterior(&post, lp, net, tau));
  if (!post) return;
  /* exact: (beta X^T X + tau I)^-1 */
  double P[9] = {0};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      for (int n = 0; n < N; n++) P[i * 3 + j] += beta * ds.x[n * d + i] * ds.x[n * d + j];
      P[i * 3 + j] += (i == j) * tau;
    }
  CHECK_OK(kvi_spd_inverse_f64(3, P, 3));
  const kvi_dense *w = kvi_net_dense(post, 0, NULL);
  const double *A = kvi_params_data(post->params, w->iA), *B = kvi_params_data(post->params, w->iB);
  double L[9] = {0}, worst = 0;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j <= i; j++) L[i * 3 + j] = i == j ? exp(A[i * 3 + i]) : A[i * 3 + j];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      double u = 0;
      for (int k = 0; k < 3; k++) u += L[i * 3 + k] * L[j * 3 + k];
      worst = fmax(worst, fabs(u - P[i * 3 + j]) / fabs(P[i * 3 + i]));
    }
  printf(
      "linear-Gaussian Laplace vs the exact posterior covariance: max relative error %.2e "
      "(V = %g)\n",
      worst, exp(2 * B[0]));
  CHECK(worst < 1e-12 && B[0] == 0);
  CHECK(post->cfg.family == KVI_FAMILY_MN);
  kvi_laplace_free(lp);
  kvi_net_free(post);
  kvi_net_free(net);
  kvi_dataset_free(&ds);
}

static void test_classifier(void) {
  const int N = 50;
  kvi_dataset ds;
  CHECK_OK(kvi_dataset_alloc(&ds, N, 6, 0, 0, 0, 3, 0));
  kvi_rng r = kvi_rng_stream(5, 6);
  kvi_rng_normal(&r, ds.x, (size_t)N * 6);
  for (int i = 0; i < N; i++) ds.y[i] = i % 3;
  kvi_net_config nc = kvi_net_config_default();
  nc.family = KVI_FAMILY_POINT, nc.prior = KVI_PRIOR_NONE;
  kvi_net *net = NULL, *post = NULL;
  CHECK_OK(kvi_net_create(&net, "6-5-3", 6, &nc, 16, 1));
  kvi_laplace *lp = NULL;
  CHECK_OK(kvi_laplace_factors(&lp, net, &ds, KVI_TASK_CLASSIFY));
  CHECK_OK(kvi_laplace_posterior(&post, lp, net, 1.0));
  if (post) {
    kvi_metrics a, b;
    CHECK_OK(kvi_evaluate(&a, net, &ds, 0, 1, 3, 0));
    CHECK_OK(kvi_evaluate(&b, post, &ds, 4, 1, 3, 0));
    CHECK(a.acc_mean == b.acc_mean && fabs(a.nll_mean - b.nll_mean) < 1e-12);
    CHECK(isfinite(b.nll_bma));
  }
  kvi_net_free(post);
  CHECK_FAILS(kvi_laplace_posterior(&post, lp, net, 0));
  CHECK_FAILS(kvi_laplace_posterior(&post, lp, net, NAN));
  CHECK(post == NULL);
  kvi_net *mn = NULL;
  nc.family = KVI_FAMILY_MN, nc.prior = KVI_PRIOR_ARD;
  CHECK_OK(kvi_net_create(&mn, "6-5-3", 6, &nc, 16, 1));
  kvi_laplace *bad = NULL;
  CHECK_FAILS(kvi_laplace_factors(&bad, mn, &ds, KVI_TASK_CLASSIFY)); /* not point weights */
  CHECK_FAILS(kvi_laplace_factors(&bad, net, &ds, KVI_TASK_REGRESS)); /* no targets */
  kvi_laplace_free(lp);
  kvi_net_free(post), kvi_net_free(net), kvi_net_free(mn);
  kvi_dataset_free(&ds);
}

int main(void) {
  kvi_set_threads(1);
  test_linear_gaussian();
  test_classifier();
  TEST_MAIN_END();
}
