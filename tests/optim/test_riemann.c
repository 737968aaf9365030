/* The Riemannian optimizers on the factors of an MN layer (src/optim/riemann.c, docs/geom.md
 * section 7): one riemann-sgd step equals the reference built from the geom module in double
 * (Kronecker-manifold gradient from the closed-form Euclidean gradient of the Gaussian-prior
 * KL, Cholesky retraction, balance); the three variants drive the KL's covariance part to its
 * minimum U (x) V = prior variance I; non-MN layers are refused, non-finite gradients rejected
 * with the factors kept, and the state tensors are named as documented. */
#include <string.h>

#include "kronvi/geom.h"
#include "kronvi/nn.h"
#include "kronvi/optim.h"
#include "kvi_test.h"

enum { n = 4, m = 3 };
static const double prior_var = 0.5;

static void layer(kvi_params *p, kvi_dense *d, kvi_family fam) {
  kvi_params_init(p);
  CHECK_OK(kvi_dense_declare(d, p, "fc0", n, m, fam, KVI_PRIOR_FIXED, prior_var, true));
  CHECK_OK(kvi_params_alloc(p));
  kvi_rng r = kvi_rng_stream(7, 1);
  kvi_dense_init(d, p, &r, 1, -1);
  if (fam != KVI_FAMILY_MN) return;
  kvi_real *A = kvi_params_data(p, d->iA), *B = kvi_params_data(p, d->iB);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++) A[i * n + j] = (kvi_real)(0.3 * sin(i + 2.0 * j));
  for (int i = 0; i < m; i++)
    for (int j = 0; j < i; j++) B[i * m + j] = (kvi_real)(0.2 * cos(i - 3.0 * j));
  A[0] += (kvi_real)0.4, B[m + 1] -= (kvi_real)0.3;
}

static double kl_grad(kvi_params *p, const kvi_dense *d) {
  double kl = 0;
  kvi_params_zero_grad(p);
  CHECK_OK(kvi_dense_kl(&kl, p, d, 1));
  return kl;
}

static void chol(const kvi_real *P, int k, double *L) {
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++)
      L[i * k + j] = j < i ? P[i * k + j] : j == i ? exp(P[i * k + i]) : 0;
}

/* Psi = 1/2 (tr(V)/p L^T L - m I) for U, likewise for V: the whitened gradient of the KL. */
static void psi(const double *L, int k, double trace_other, int other, double *Psi) {
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) {
      double s = 0;
      for (int r = 0; r < k; r++) s += L[r * k + i] * L[r * k + j];
      Psi[i * k + j] = 0.5 * (trace_other / prior_var * s - (i == j ? other : 0));
    }
}

static double trace_u(const double *L, int k) {
  double t = 0;
  for (int i = 0; i < k * k; i++) t += L[i] * L[i];
  return t;
}

static void test_reference_step(void) {
  kvi_params p;
  kvi_dense d;
  layer(&p, &d, KVI_FAMILY_MN);
  double LA[n * n], LB[m * m], PA[n * n], PB[m * m], P[n * n], Q[m * m];
  chol(kvi_params_data(&p, d.iA), n, LA);
  chol(kvi_params_data(&p, d.iB), m, LB);
  psi(LA, n, trace_u(LB, m), m, PA);
  psi(LB, m, trace_u(LA, n), n, PB);
  const double lr = 0.05, N = 3;
  kvi_kron_rgrad(n, m, P, Q, PA, PB);
  for (int i = 0; i < n * n; i++) P[i] *= -lr * 2 * N;
  for (int i = 0; i < m * m; i++) Q[i] *= -lr * 2 * N;
  CHECK_OK(kvi_kron_retract(n, m, LA, LB, P, Q));
  kvi_opt_config c = kvi_opt_config_default(KVI_OPT_RIEMANN_SGD);
  c.data_size = N;
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  kvi_dense *w[1] = {&d};
  CHECK_OK(kvi_optimizer_bind(&o, &p, w, 1));
  kl_grad(&p, &d);
  CHECK_OK(kvi_optimizer_step(&o, &p, lr));
  double LA1[n * n], LB1[m * m];
  chol(kvi_params_data(&p, d.iA), n, LA1);
  chol(kvi_params_data(&p, d.iB), m, LB1);
  double worst = 0;
  for (int i = 0; i < n * n; i++) worst = fmax(worst, fabs(LA1[i] - LA[i]));
  for (int i = 0; i < m * m; i++) worst = fmax(worst, fabs(LB1[i] - LB[i]));
  printf("riemann-sgd step vs the double reference: max difference %.2e\n", worst);
  CHECK(worst < (sizeof(kvi_real) == 8 ? 1e-12 : 1e-5));
  CHECK(kvi_riemann_damped(&o) == 0 && kvi_riemann_rejected(&o) == 0);
  CHECK(kvi_optimizer_find_state(&o, "optim.m.fc0.A") &&
        kvi_optimizer_find_state(&o, "optim.v.fc0.M"));
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
}

/* max |U_ii V_jj - prior_var| and max |off-diagonal| of U (x) V. */
static double cov_error(const kvi_params *p, const kvi_dense *d) {
  double LA[n * n], LB[m * m], U[n * n], V[m * m];
  chol(kvi_params_data(p, d->iA), n, LA);
  chol(kvi_params_data(p, d->iB), m, LB);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      U[i * n + j] = 0;
      for (int r = 0; r < n; r++) U[i * n + j] += LA[i * n + r] * LA[j * n + r];
    }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      V[i * m + j] = 0;
      for (int r = 0; r < m; r++) V[i * m + j] += LB[i * m + r] * LB[j * m + r];
    }
  double e = 0;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < n; k++)
      for (int j = 0; j < m; j++)
        for (int l = 0; l < m; l++)
          e = fmax(e, fabs(U[i * n + k] * V[j * m + l] - (i == k && j == l ? prior_var : 0)));
  return e;
}

static void test_converges(kvi_opt_kind kind, double lr, int steps, double tol) {
  kvi_params p;
  kvi_dense d;
  layer(&p, &d, KVI_FAMILY_MN);
  kvi_opt_config c = kvi_opt_config_default(kind);
  c.momentum = 0.5;
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  kvi_dense *w[1] = {&d};
  CHECK_OK(kvi_optimizer_bind(&o, &p, w, 1));
  const double e0 = cov_error(&p, &d);
  for (int t = 0; t < steps; t++) {
    kl_grad(&p, &d);
    CHECK_OK(kvi_optimizer_step(&o, &p, lr));
  }
  const double e1 = cov_error(&p, &d);
  printf("%s: max |U (x) V - %g I| from %.3g to %.3g in %d steps\n", kvi_opt_name(kind), prior_var,
         e0, e1, steps);
  CHECK(e1 < tol);
  /* the balance holds: mean log-diagonals of A and B equal */
  double a = 0, b = 0;
  for (int i = 0; i < n; i++) a += kvi_params_data(&p, d.iA)[i * n + i] / n;
  for (int i = 0; i < m; i++) b += kvi_params_data(&p, d.iB)[i * m + i] / m;
  CHECK_NEAR(a, b, 1e-5);
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
}

static void test_refusals(void) {
  kvi_params p;
  kvi_dense d;
  layer(&p, &d, KVI_FAMILY_DIAG);
  kvi_opt_config c = kvi_opt_config_default(KVI_OPT_RIEMANN_ADAM);
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  kvi_dense *w[1] = {&d};
  CHECK_FAILS(kvi_optimizer_step(&o, &p, 1e-3)); /* not bound */
  CHECK_FAILS(kvi_optimizer_bind(&o, &p, w, 1)); /* a DIAG layer */
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
  layer(&p, &d, KVI_FAMILY_MN);
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  CHECK_OK(kvi_optimizer_bind(&o, &p, w, 1));
  CHECK(kvi_optimizer_find_state(&o, "riemann.v.fc0") != NULL);
  kvi_real A0[n * n], B0[m * m];
  memcpy(A0, kvi_params_data(&p, d.iA), sizeof A0);
  memcpy(B0, kvi_params_data(&p, d.iB), sizeof B0);
  kl_grad(&p, &d);
  kvi_params_grad(&p, d.iB)[m] = (kvi_real)NAN;
  CHECK_OK(kvi_optimizer_step(&o, &p, 1e-2));
  CHECK(kvi_riemann_rejected(&o) == 1);
  CHECK(memcmp(A0, kvi_params_data(&p, d.iA), sizeof A0) == 0);
  CHECK(memcmp(B0, kvi_params_data(&p, d.iB), sizeof B0) == 0);
  /* a huge step is damped to the trust bound */
  kl_grad(&p, &d);
  CHECK_OK(kvi_optimizer_step(&o, &p, 100));
  CHECK(kvi_riemann_damped(&o) == 1);
  kvi_opt_kind k;
  CHECK_OK(kvi_opt_parse(&k, "riemann-momentum"));
  CHECK(k == KVI_OPT_RIEMANN_MOMENTUM && !strcmp(kvi_opt_name(k), "riemann-momentum"));
  CHECK_FAILS(kvi_opt_parse(&k, "riemann"));
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
}

int main(void) {
  test_reference_step();
  test_converges(KVI_OPT_RIEMANN_SGD, 0.2, 150, 1e-6);
  test_converges(KVI_OPT_RIEMANN_MOMENTUM, 0.1, 150, 1e-6);
  test_converges(KVI_OPT_RIEMANN_ADAM, 0.02, 600, 1e-4);
  test_refusals();
  TEST_MAIN_END();
}
