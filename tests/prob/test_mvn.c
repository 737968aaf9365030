/* Full-covariance Gaussian N(mu, L L^T): values against explicit dense formulas (covariance
 * formed, inverted and factored by LAPACK), every gradient against central finite differences in
 * double, the parameter storage conventions (upper triangle ignored, gradients added times
 * gscale), and bad input. */
#include "kronvi/prob.h"
#include "kvi_test.h"

_Static_assert(sizeof(kvi_real) == sizeof(double), "tests link the double-precision library");

#define LOG_2PI 1.8378770664093454836

static kvi_rng rng;

static void randn(double *x, size_t n, double scale) {
  kvi_rng_normal_f64(&rng, x, n);
  for (size_t i = 0; i < n; i++) x[i] *= scale;
}

/* Random parameter storage: strict lower N(0, s^2) with s = 0.4 (smaller for large d, so that
 * L stays well conditioned), diagonal logs N(0, 0.3^2), upper filled with junk (must be ignored).
 */
static void rand_chol_params(double *P, int d) {
  randn(P, (size_t)d * d, d > 16 ? 1.6 / sqrt((double)d) : 0.4);
  for (int i = 0; i < d; i++) {
    P[(size_t)i * d + i] *= d > 16 ? 0.3 / (1.6 / sqrt((double)d)) : 0.75;
    for (int j = i + 1; j < d; j++) P[(size_t)i * d + j] = 1e3 + i + j;
  }
}

static void materialize(double *L, const double *P, int d) {
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++)
      L[(size_t)i * d + j] = j < i ? P[(size_t)i * d + j] : j == i ? exp(P[(size_t)i * d + j]) : 0;
}

/* Explicit reference: Sigma = L L^T, its inverse and log-determinant. */
typedef struct {
  double *L, *S, *Sinv, logdet;
} dense_ref;

static void dense_make(dense_ref *r, const double *P, int d) {
  size_t dd = (size_t)d * d;
  r->L = malloc(dd * sizeof(double));
  r->S = malloc(dd * sizeof(double));
  r->Sinv = malloc(dd * sizeof(double));
  double *C = malloc(dd * sizeof(double));
  materialize(r->L, P, d);
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) {
      double s = 0;
      for (int k = 0; k < d; k++) s += r->L[(size_t)i * d + k] * r->L[(size_t)j * d + k];
      r->S[(size_t)i * d + j] = s;
    }
  memcpy(r->Sinv, r->S, dd * sizeof(double));
  CHECK_OK(kvi_spd_inverse_f64(d, r->Sinv, d));
  memcpy(C, r->S, dd * sizeof(double));
  CHECK_OK(kvi_potrf_f64(d, C, d));
  r->logdet = 0;
  for (int i = 0; i < d; i++) r->logdet += 2 * log(C[(size_t)i * d + i]);
  free(C);
}

static void dense_free(dense_ref *r) {
  free(r->L);
  free(r->S);
  free(r->Sinv);
}

/* ---- values against explicit formulas ------------------------------------------------------ */
static void test_values(int d) {
  size_t dd = (size_t)d * d;
  double *mu = malloc(d * sizeof(double)), *P = malloc(dd * sizeof(double));
  double *z = malloc(d * sizeof(double)), *eps = malloc(d * sizeof(double));
  double *zs = malloc(d * sizeof(double));
  randn(mu, d, 1.0);
  rand_chol_params(P, d);
  randn(z, d, 1.5);
  randn(eps, d, 1.0);
  kvi_mvn q = {d, mu, P};
  dense_ref r;
  dense_make(&r, P, d);

  /* sample = mu + L eps, also in place over eps */
  CHECK_OK(kvi_mvn_sample(zs, &q, eps));
  double worst = 0;
  for (int i = 0; i < d; i++) {
    double s = mu[i];
    for (int k = 0; k < d; k++) s += r.L[(size_t)i * d + k] * eps[k];
    worst = fmax(worst, fabs(zs[i] - s) / fmax(1, fabs(s)));
  }
  CHECK(worst < 1e-12);
  CHECK_OK(kvi_mvn_sample(eps, &q, eps));
  worst = 0;
  for (int i = 0; i < d; i++) worst = fmax(worst, fabs(eps[i] - zs[i]));
  CHECK(worst == 0);

  /* log density */
  double quad = 0;
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) quad += (z[i] - mu[i]) * r.Sinv[(size_t)i * d + j] * (z[j] - mu[j]);
  double want = -0.5 * quad - 0.5 * r.logdet - 0.5 * d * LOG_2PI, got = 0;
  CHECK_OK(kvi_mvn_log_prob(&got, &q, z, NULL, NULL, 1));
  CHECK_NEAR(got, want, 1e-10);

  /* entropy 1/2 log det(2 pi e Sigma) */
  CHECK_OK(kvi_mvn_entropy(&got, &q, NULL, 1));
  CHECK_NEAR(got, 0.5 * d * (1 + LOG_2PI) + 0.5 * r.logdet, 1e-12);

  /* KL to N(0, I) */
  double tr = 0, mu2 = 0;
  for (int i = 0; i < d; i++) tr += r.S[(size_t)i * d + i], mu2 += mu[i] * mu[i];
  CHECK_OK(kvi_mvn_kl_std(&got, &q, NULL, 1));
  CHECK_NEAR(got, 0.5 * (tr + mu2 - d - r.logdet), 1e-10);

  /* KL(N(0, I) || N(0, I)) = 0 */
  for (int i = 0; i < d; i++) mu[i] = 0;
  memset(P, 0, dd * sizeof(double));
  CHECK_OK(kvi_mvn_kl_std(&got, &q, NULL, 1));
  CHECK(fabs(got) < 1e-14);

  dense_free(&r);
  free(mu), free(P), free(z), free(eps), free(zs);
}

/* ---- gradients against central finite differences ---------------------------------------- */
enum { F_LOGPROB, F_ENTROPY, F_KL, F_SAMPLE };
typedef struct {
  int d, which;
  const double *eps, *c; /* F_SAMPLE: f = c . sample(eps) */
} fd_ctx;

/* x = [mu (d), P (d*d), z (d)] */
static double fd_eval(const double *x, void *vctx) {
  fd_ctx *c = vctx;
  int d = c->d;
  kvi_mvn q = {d, x, x + d};
  const double *z = x + d + (size_t)d * d;
  double out = 0;
  switch (c->which) {
    case F_LOGPROB:
      kvi_mvn_log_prob(&out, &q, z, NULL, NULL, 1);
      break;
    case F_ENTROPY:
      kvi_mvn_entropy(&out, &q, NULL, 1);
      break;
    case F_KL:
      kvi_mvn_kl_std(&out, &q, NULL, 1);
      break;
    case F_SAMPLE: {
      double *zs = malloc(d * sizeof(double));
      kvi_mvn_sample(zs, &q, c->eps);
      for (int i = 0; i < d; i++) out += c->c[i] * zs[i];
      free(zs);
    } break;
  }
  return out;
}

static void test_grads(int d) {
  size_t dd = (size_t)d * d, nx = d + dd + d;
  double *x = malloc(nx * sizeof(double)), *g = malloc(nx * sizeof(double));
  double *pre = malloc(nx * sizeof(double));
  double *eps = malloc(d * sizeof(double)), *c = malloc(d * sizeof(double));
  randn(x, d, 1.0);
  rand_chol_params(x + d, d);
  randn(x + d + dd, d, 1.5);
  randn(eps, d, 1.0);
  randn(c, d, 1.0);
  const double gscale = 0.7;
  static const char *names[] = {"log_prob", "entropy", "kl_std", "sample_backward"};
  for (int which = F_LOGPROB; which <= F_SAMPLE; which++) {
    kvi_mvn q = {d, x, x + d};
    /* gradients are added: start from a random buffer and subtract it afterwards */
    randn(pre, nx, 1.0);
    memcpy(g, pre, nx * sizeof(double));
    kvi_mvn_grad gr = {g, g + d};
    double *gz = g + d + dd, out = 0, s = gscale;
    switch (which) {
      case F_LOGPROB:
        CHECK_OK(kvi_mvn_log_prob(&out, &q, x + d + dd, &gr, gz, gscale));
        break;
      case F_ENTROPY:
        CHECK_OK(kvi_mvn_entropy(&out, &q, &gr, gscale));
        break;
      case F_KL:
        CHECK_OK(kvi_mvn_kl_std(&out, &q, &gr, gscale));
        break;
      case F_SAMPLE:
        CHECK_OK(kvi_mvn_sample_backward(&gr, c, &q, eps));
        s = 1; /* no gscale in the sample backward */
        break;
    }
    for (size_t i = 0; i < nx; i++) g[i] = (g[i] - pre[i]) / s;
    /* upper-triangle entries must receive nothing */
    bool upper_zero = true;
    for (int i = 0; i < d; i++)
      for (int j = i + 1; j < d; j++) upper_zero &= g[d + (size_t)i * d + j] == 0;
    CHECK(upper_zero);
    fd_ctx ctx = {d, which, eps, c};
    double err = kvi_test_fd_maxerr(fd_eval, &ctx, x, g, (int)nx, 1e-6);
    if (err > 1e-6) fprintf(stderr, "d = %d, %s: max FD error %.3g\n", d, names[which], err);
    CHECK(err < 1e-6);
  }
  /* z gradient only, and mu only: partial requests work */
  kvi_mvn q = {d, x, x + d};
  double *gmu = calloc(d, sizeof(double)), *gz = calloc(d, sizeof(double)), out;
  kvi_mvn_grad gonly = {gmu, NULL};
  CHECK_OK(kvi_mvn_log_prob(&out, &q, x + d + dd, &gonly, gz, 1));
  double worst = 0;
  for (int i = 0; i < d; i++) worst = fmax(worst, fabs(gmu[i] + gz[i])); /* d/dmu = -d/dz */
  CHECK(worst < 1e-12);
  free(gmu), free(gz);
  free(x), free(g), free(pre), free(eps), free(c);
}

/* ---- storage conventions and bad input ------------------------------------------------------ */
static void test_bad_input(void) {
  const int d = 3;
  double mu[3] = {0.1, -0.2, 0.3}, z[3] = {1, 2, 3}, eps[3] = {0.5, -0.5, 1}, out = 0;
  double P[9] = {0.1, NAN, INFINITY, 0.3, -0.2, NAN, -0.4, 0.2, 0.05}; /* junk above diagonal */
  kvi_mvn q = {d, mu, P};
  double zs[3];
  /* junk above the diagonal is ignored */
  CHECK_OK(kvi_mvn_log_prob(&out, &q, z, NULL, NULL, 1));
  CHECK(isfinite(out));
  CHECK_OK(kvi_mvn_sample(zs, &q, eps));
  CHECK(isfinite(zs[0]) && isfinite(zs[1]) && isfinite(zs[2]));

  kvi_mvn bad = q;
  bad.d = 0;
  CHECK_FAILS(kvi_mvn_log_prob(&out, &bad, z, NULL, NULL, 1));
  CHECK_FAILS(kvi_mvn_entropy(&out, &bad, NULL, 1));
  CHECK_FAILS(kvi_mvn_kl_std(&out, &bad, NULL, 1));
  CHECK_FAILS(kvi_mvn_sample(zs, &bad, eps));
  bad.d = -2;
  CHECK_FAILS(kvi_mvn_sample_backward(NULL, z, &bad, eps));
  CHECK_STATUS(kvi_mvn_kl_std(&out, &bad, NULL, 1), KVI_ERR_ARG);
  CHECK_FAILS(kvi_mvn_log_prob(&out, NULL, z, NULL, NULL, 1));
  CHECK_FAILS(kvi_mvn_entropy(NULL, &q, NULL, 1));
  CHECK_FAILS(kvi_mvn_kl_std(NULL, &q, NULL, 1));
  CHECK_FAILS(kvi_mvn_log_prob(NULL, &q, z, NULL, NULL, 1));
  CHECK_FAILS(kvi_mvn_log_prob(&out, &q, NULL, NULL, NULL, 1));
  CHECK_FAILS(kvi_mvn_sample(NULL, &q, eps));
  CHECK_FAILS(kvi_mvn_sample(zs, &q, NULL));
  CHECK_FAILS(kvi_mvn_sample_backward(NULL, NULL, &q, eps));
  CHECK_FAILS(kvi_mvn_sample_backward(NULL, z, &q, NULL));
  bad = q;
  bad.mu = NULL;
  CHECK_FAILS(kvi_mvn_entropy(&out, &bad, NULL, 1));
  bad = q;
  bad.L = NULL;
  CHECK_FAILS(kvi_mvn_kl_std(&out, &bad, NULL, 1));

  /* non-finite values */
  double mu_nan[3] = {0, NAN, 0};
  bad = q;
  bad.mu = mu_nan;
  CHECK_STATUS(kvi_mvn_log_prob(&out, &bad, z, NULL, NULL, 1), KVI_ERR_NONFINITE);
  double P_nan[9] = {0, 0, 0, 0, 0, 0, INFINITY, 0, 0}; /* lower entry */
  bad = q;
  bad.L = P_nan;
  CHECK_STATUS(kvi_mvn_kl_std(&out, &bad, NULL, 1), KVI_ERR_NONFINITE);
  double P_big[9] = {0, 0, 0, 0, 800, 0, 0, 0, 0}; /* exp overflows */
  bad.L = P_big;
  CHECK_STATUS(kvi_mvn_entropy(&out, &bad, NULL, 1), KVI_ERR_NONFINITE);
  double z_nan[3] = {0, 0, NAN};
  CHECK_STATUS(kvi_mvn_log_prob(&out, &q, z_nan, NULL, NULL, 1), KVI_ERR_NONFINITE);
  CHECK_STATUS(kvi_mvn_sample(zs, &q, z_nan), KVI_ERR_NONFINITE);
  CHECK_STATUS(kvi_mvn_sample_backward(NULL, z_nan, &q, eps), KVI_ERR_NONFINITE);
  CHECK_STATUS(kvi_mvn_log_prob(&out, &q, z, NULL, NULL, NAN), KVI_ERR_NONFINITE);
}

int main(void) {
  rng = kvi_rng_stream(20240611, 7);
  int dims[] = {1, 2, 3, 6, 300}; /* 300 > the on-stack vector size of log_prob */
  for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) test_values(dims[k]);
  int gdims[] = {1, 2, 4, 7};
  for (size_t k = 0; k < sizeof gdims / sizeof gdims[0]; k++) test_grads(gdims[k]);
  test_bad_input();
  TEST_MAIN_END();
}
