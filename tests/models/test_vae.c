/* The variational auto-encoder in double precision, for each latent family (DIAG, MN, MV):
 * 1. central differences of the batch loss -(1/B) sum [log p(x|z) - beta KL] with fixed noise
 *    against kvi_vae_batch's gradient, over every parameter of the encoder and the decoder (the
 *    encoder's gradients come through the head's sampling map and the KL);
 * 2. on a tiny model with |z| = 2, the importance-weighted estimate of log p(x) against the exact
 *    marginal likelihood by 2-D quadrature (trapezoid rule on a fine grid), the ELBO below it,
 *    and the mean of one-sample estimates equal to the ELBO (E_q log w = ELBO);
 * 3. the noise of image i depends on (seed, first + i) only: a subset gives the same numbers;
 * 4. the Bernoulli log-likelihood against its definition, and the binary-data check;
 * 5. a batch's sums and gradient do not depend on how many threads run its parts. */
// ctest-timeout: 120
#include "kronvi/models.h"
#include "kvi_test.h"

#define LOG_2PI 1.8378770664093454835606594728112

typedef struct {
  kvi_vae *v;
  const double *X;
  int b;
  double beta;
} fd_ctx;

static double fd_loss(const double *theta, void *vctx) {
  fd_ctx *c = vctx;
  kvi_params *p = &c->v->model->params;
  memcpy(p->data, theta, p->n * sizeof(double));
  kvi_rng rng = kvi_rng_stream(5, 77);
  kvi_vae_sums s;
  if (kvi_vae_batch(c->v, &s, c->X, c->b, &rng, c->beta, false)) return NAN;
  return -(s.rec - c->beta * s.kl) / c->b;
}

static kvi_vae *tiny_vae(kvi_vae_family f, int d, int p, int q, int D, int hidden, int layers) {
  kvi_vae_config cfg = kvi_vae_config_default();
  CHECK_OK(kvi_vae_head_init(&cfg.head, f, d, p, q));
  cfg.in_size = D, cfg.in_h = cfg.in_w = 0, cfg.hidden = hidden, cfg.layers = layers;
  kvi_vae *v = NULL;
  CHECK_OK(kvi_vae_create(&v, &cfg, 4, 3));
  return v;
}

static void check_batch_gradient(kvi_vae_family f, int d, int p, int q, const char *name) {
  kvi_vae *v = tiny_vae(f, d, p, q, 6, 5, 2);
  if (!v) return;
  kvi_params *pb = &v->model->params;
  const int b = 3, D = 6;
  double X[18];
  kvi_rng r = kvi_rng_stream(9, (uint64_t)f);
  kvi_rng_uniform(&r, X, 18);
  for (int i = 0; i < 18; i++) X[i] = X[i] < 0.5 ? 0 : 1;
  CHECK_OK(kvi_vae_check_binary(X, b, D, "X"));
  double *pert = malloc(pb->n * sizeof *pert);
  kvi_rng_normal(&r, pert, pb->n); /* biases away from 0: generic values everywhere */
  for (size_t i = 0; i < pb->n; i++) pb->data[i] += 0.3 * pert[i];
  double *theta = malloc(pb->n * sizeof *theta);
  memcpy(theta, pb->data, pb->n * sizeof *theta);
  fd_ctx c = {v, X, b, 0.6};
  kvi_params_zero_grad(pb);
  kvi_rng rng = kvi_rng_stream(5, 77);
  kvi_vae_sums s;
  CHECK_OK(kvi_vae_batch(v, &s, X, b, &rng, 0.6, true));
  double *g = malloc(pb->n * sizeof *g);
  memcpy(g, pb->grad, pb->n * sizeof *g);
  const double err = kvi_test_fd_maxerr(fd_loss, &c, theta, g, (int)pb->n, 1e-6);
  CHECK(err < 1e-6);
  double gabs = 0; /* the encoder's gradient is not zero (it flows through the head) */
  for (int i = 0; i < pb->nviews; i++)
    if (!strncmp(pb->views[i].name, "enc.", 4))
      for (size_t k = 0; k < pb->views[i].size; k++) gabs += fabs(g[pb->views[i].offset + k]);
  CHECK(gabs > 1e-3);
  printf("%-7s batch loss %.4f (rec %.4f, KL %.4f): %zu parameters, max FD error %.1e\n", name,
         fd_loss(theta, &c), s.rec / b, s.kl / b, pb->n, err);
  free(pert), free(theta), free(g);
  kvi_vae_free(v);
}

/* The batch runs in parts of rows fixed by kvi_get_threads(): the governor running them on fewer
 * threads (kvi_set_active_threads) must not change a bit of the sums or the gradient. */
static void check_active_threads_invariant(kvi_vae_family f, int d, int p, int q,
                                           const char *name) {
  kvi_vae *v = tiny_vae(f, d, p, q, 6, 5, 2);
  if (!v) return;
  kvi_params *pb = &v->model->params;
  const int b = 4;
  double X[24];
  kvi_rng r = kvi_rng_stream(11, (uint64_t)f);
  kvi_rng_uniform(&r, X, 24);
  for (int i = 0; i < 24; i++) X[i] = X[i] < 0.4 ? 0 : 1;
  double *g[3], sums[3][2];
  for (int a = 0; a < 3; a++) { /* 2 active threads, 1, and called from inside a region */
    kvi_set_active_threads(a == 1 ? 1 : 2);
    kvi_params_zero_grad(pb);
    kvi_rng rng = kvi_rng_stream(5, 78);
    kvi_vae_sums s;
    kvi_status st = KVI_OK;
    if (a < 2) {
      st = kvi_vae_batch(v, &s, X, b, &rng, 0.7, true);
    } else { /* inside an active region: the batch's own region gets a team of one */
#pragma omp parallel num_threads(2)
#pragma omp single
      st = kvi_vae_batch(v, &s, X, b, &rng, 0.7, true);
    }
    CHECK_OK(st);
    sums[a][0] = s.rec, sums[a][1] = s.kl;
    g[a] = malloc(pb->n * sizeof(double));
    memcpy(g[a], pb->grad, pb->n * sizeof(double));
  }
  kvi_set_active_threads(2);
  for (int a = 1; a < 3; a++) {
    CHECK(sums[0][0] == sums[a][0] && sums[0][1] == sums[a][1]);
    CHECK(memcmp(g[0], g[a], pb->n * sizeof(double)) == 0);
  }
  printf("%-7s batch of %d on 2 and 1 active threads and nested in a region: the same bits\n", name,
         b);
  free(g[0]), free(g[1]), free(g[2]);
  kvi_vae_free(v);
}

/* log p(x) = log int p(x | z) N(z; 0, I) dz by the trapezoid rule on [-L, L]^2 (n x n points,
 * decoded in chunks of the decoder's rows). */
static double exact_log_marginal(kvi_vae *v, const double *x, double L, int n) {
  const double h = 2 * L / (n - 1);
  const int D = v->cfg.in_size, R = v->max_rows;
  const int64_t total = (int64_t)n * n;
  double m = -INFINITY, sum = 0;
  double *Z = malloc(sizeof(double) * 2 * R);
  for (int64_t t0 = 0; t0 < total; t0 += R) {
    const int rows = (int)(total - t0 < R ? total - t0 : R);
    for (int r = 0; r < rows; r++)
      Z[2 * r] = -L + (double)((t0 + r) / n) * h, Z[2 * r + 1] = -L + (double)((t0 + r) % n) * h;
    const double *logits;
    CHECK_OK(kvi_net_forward(v->dec, &logits, Z, rows, NULL));
    for (int r = 0; r < rows; r++) {
      const double z0 = Z[2 * r], z1 = Z[2 * r + 1];
      const double t = kvi_bernoulli_log_lik(x, logits + (size_t)r * D, D, NULL, 0) -
                       0.5 * (z0 * z0 + z1 * z1) - LOG_2PI;
      if (t > m)
        sum = sum * exp(m - t) + 1, m = t;
      else
        sum += exp(t - m);
    }
  }
  free(Z);
  return m + log(sum) + 2 * log(h);
}

/* bias: the head outputs the encoder's last layer starts from. */
static void check_iwae(kvi_vae_family f, int p, int q, const double *bias, const char *name) {
  const int D = 5;
  kvi_vae *v = tiny_vae(f, 2, p, q, D, 4, 1);
  if (!v) return;
  kvi_params *pb = &v->model->params;
  for (int i = 0; i < pb->nviews; i++) /* a sharper decoder: a posterior far from the prior */
    if (!strncmp(pb->views[i].name, "dec.", 4))
      for (size_t k = 0; k < pb->views[i].size; k++) pb->data[pb->views[i].offset + k] *= 1.5;
  /* a proposal wider than the prior (Sigma_q - I positive definite), so that the importance
   * weights are bounded, which depends on x only a little */
  const int iw = kvi_params_find(pb, "enc.fc1.M"), ib = kvi_params_find(pb, "enc.fc1.b");
  CHECK(iw >= 0 && ib >= 0);
  for (size_t k = 0; k < pb->views[iw].size; k++) kvi_params_data(pb, iw)[k] *= 0.05;
  for (size_t k = 0; k < pb->views[ib].size; k++) kvi_params_data(pb, ib)[k] = bias[k];
  const double X[15] = {1, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0};
  double ll[3], elbo[3], ll1[3], el1[3];
  const int k = 200000;
  const uint64_t seed = 21 + 7 * (uint64_t)f + (uint64_t)p;
  CHECK_OK(kvi_vae_iwae(v, ll, elbo, X, 3, k, seed, 0));
  for (int i = 0; i < 3; i++) {
    const double exact = exact_log_marginal(v, X + i * D, 9, 901);
    CHECK(fabs(ll[i] - exact) < 0.01); /* Monte Carlo error of this k: a few 1e-3 */
    CHECK(elbo[i] < exact - 0.5);
    printf("%-7s image %d: exact log p(x) %.5f, IWAE (k=%d) %.5f, ELBO %.5f\n", name, i, exact, k,
           ll[i], elbo[i]);
  }
  /* the same numbers for a subset (the streams are per image) */
  CHECK_OK(kvi_vae_iwae(v, ll1, el1, X + D, 2, k, seed, 1));
  CHECK_NEAR(ll1[0], ll[1], 1e-12);
  CHECK_NEAR(el1[1], elbo[2], 1e-12);
  /* E_q[log w] = ELBO: the mean of one-sample estimates over many copies of image 0 */
  const int nrep = 20000;
  double *Xr = malloc(sizeof(double) * nrep * D), *one = malloc(sizeof(double) * nrep);
  for (int r = 0; r < nrep; r++) memcpy(Xr + r * D, X, sizeof(double) * D);
  CHECK_OK(kvi_vae_iwae(v, one, NULL, Xr, nrep, 1, 99, 0));
  double mean = 0, var = 0;
  for (int r = 0; r < nrep; r++) mean += one[r] / nrep;
  for (int r = 0; r < nrep; r++) var += (one[r] - mean) * (one[r] - mean) / (nrep - 1);
  const double se = sqrt(var / nrep);
  CHECK(fabs(mean - elbo[0]) < 4 * se + 1e-3);
  printf("%-7s mean of %d one-sample log weights %.4f +- %.4f vs ELBO %.4f\n", name, nrep, mean, se,
         elbo[0]);
  free(Xr), free(one);
  kvi_vae_free(v);
}

int main(void) {
  kvi_set_threads(2);
  check_batch_gradient(KVI_VAE_DIAG, 4, 0, 0, "diag");
  check_batch_gradient(KVI_VAE_MN, 4, 2, 2, "mn 2x2");
  check_batch_gradient(KVI_VAE_MN, 6, 3, 2, "mn 3x2");
  check_batch_gradient(KVI_VAE_MV, 4, 0, 0, "mv");
  check_active_threads_invariant(KVI_VAE_DIAG, 4, 0, 0, "diag");
  check_active_threads_invariant(KVI_VAE_MN, 4, 2, 2, "mn 2x2");
  /* head outputs: means 0.1, -0.2; log-diagonals 0.3 (or 0); off-diagonals 0.2 */
  const double b_diag[4] = {0.1, -0.2, 0.3, 0.3}, b_mn21[6] = {0.1, -0.2, 0.3, 0.2, 0.3, 0},
               b_mn12[6] = {0.1, -0.2, 0.3, 0, 0.2, 0}, b_mv[5] = {0.1, -0.2, 0.3, 0.2, 0.3};
  check_iwae(KVI_VAE_DIAG, 0, 0, b_diag, "diag");
  check_iwae(KVI_VAE_MN, 2, 1, b_mn21, "mn 2x1");
  check_iwae(KVI_VAE_MN, 1, 2, b_mn12, "mn 1x2");
  check_iwae(KVI_VAE_MV, 0, 0, b_mv, "mv");

  /* Bernoulli log-likelihood and its gradient against the definition */
  const double x[4] = {0, 1, 1, 0}, l[4] = {-30, 2.5, -0.7, 40};
  double dl[4], want = 0;
  for (int i = 0; i < 4; i++) {
    const double s = 1 / (1 + exp(-l[i]));
    want += x[i] ? log(s) : log1p(-s);
  }
  CHECK_NEAR(kvi_bernoulli_log_lik(x, l, 4, dl, -0.5), want, 1e-12);
  CHECK_NEAR(dl[1], -0.5 * (1 - 1 / (1 + exp(-2.5))), 1e-15);
  CHECK_NEAR(dl[3], 0.5, 1e-15);
  const double gray[3] = {0, 1, 0.5};
  CHECK_FAILS(kvi_vae_check_binary(gray, 1, 3, "test images"));
  CHECK(strstr(kvi_last_error(), "binary") && strstr(kvi_last_error(), "pixel 2"));
  /* bad arguments */
  kvi_vae *v = tiny_vae(KVI_VAE_DIAG, 2, 0, 0, 5, 4, 1);
  double ll;
  CHECK_FAILS(kvi_vae_iwae(v, &ll, NULL, x, 1, 0, 1, 0));
  kvi_vae_free(v);
  kvi_vae_config cfg = kvi_vae_config_default();
  cfg.head.family = KVI_VAE_MN, cfg.head.p = 8, cfg.head.q = 4;
  CHECK_FAILS(kvi_vae_create(&v, &cfg, 100, 1));
  CHECK(v == NULL);
  TEST_MAIN_END();
}
