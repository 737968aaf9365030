/* lie-ngd (src/optim/lie_ngd.c, docs/geom.md section 8) on one point layer fed fixed curvature
 * rows: the triangular factors converge to the fixed point K K^T (x) C C^T = A_d (x) G_d (the
 * damped K-FAC factors), stay lower triangular with positive diagonals, and the step is then
 * the Kronecker-preconditioned gradient A_d^-1 V G_d^-1; the second backward is asked for on
 * the factor-update steps only; non-point layers are refused. */
#include <string.h>

#include "kronvi/nn.h"
#include "kronvi/optim.h"
#include "kvi_test.h"

enum { n = 5, m = 3, na = n + 1, rows = 7 };

static void layer(kvi_params *p, kvi_dense *d, kvi_family fam) {
  kvi_params_init(p);
  CHECK_OK(kvi_dense_declare(d, p, "fc0", n, m, fam,
                             fam == KVI_FAMILY_POINT ? KVI_PRIOR_NONE : KVI_PRIOR_FIXED, 1, true));
  CHECK_OK(kvi_params_alloc(p));
  kvi_rng r = kvi_rng_stream(3, 3);
  kvi_dense_init(d, p, &r, 1, -3);
}

/* Solves the symmetric positive-definite k x k system S X = Y (k x c) in place of Y. */
static void spd_solve(int k, int c, const double *S, double *Y) {
  double L[64];
  memcpy(L, S, sizeof(double) * k * k);
  for (int j = 0; j < k; j++) {
    for (int q = 0; q < j; q++) L[j * k + j] -= L[j * k + q] * L[j * k + q];
    L[j * k + j] = sqrt(L[j * k + j]);
    for (int i = j + 1; i < k; i++) {
      for (int q = 0; q < j; q++) L[i * k + j] -= L[i * k + q] * L[j * k + q];
      L[i * k + j] /= L[j * k + j];
    }
  }
  for (int col = 0; col < c; col++) {
    for (int i = 0; i < k; i++) {
      double s = Y[i * c + col];
      for (int q = 0; q < i; q++) s -= L[i * k + q] * Y[q * c + col];
      Y[i * c + col] = s / L[i * k + i];
    }
    for (int i = k - 1; i >= 0; i--) {
      double s = Y[i * c + col];
      for (int q = i + 1; q < k; q++) s -= L[q * k + i] * Y[q * c + col];
      Y[i * c + col] = s / L[i * k + i];
    }
  }
}

static void test_fixed_point(void) {
  kvi_params p;
  kvi_dense d;
  layer(&p, &d, KVI_FAMILY_POINT);
  kvi_opt_config c = kvi_opt_config_default(KVI_OPT_LIE_NGD);
  c.inverse_every = 1, c.ema = 0.7, c.momentum = 0, c.kl_clip = 0, c.damping = 1e-2;
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  kvi_dense *w[1] = {&d};
  CHECK_OK(kvi_optimizer_bind(&o, &p, w, 1));
  kvi_real in[rows * n], go[rows * m];
  kvi_rng r = kvi_rng_stream(3, 4);
  kvi_rng_normal(&r, in, rows * n);
  kvi_rng_normal(&r, go, rows * m);
  for (int i = 0; i < rows * n; i++) in[i] = (kvi_real)(in[i] + (i % n == 0 ? 1.0 : 0.0));
  kvi_capture_rows cr = {"fc0", 0, rows, rows, n, m, true, false, in, go, rows};
  /* the damped factors, as the optimizer builds them (pi correction from the traces) */
  double A[na * na] = {0}, G[m * m] = {0};
  for (int q = 0; q < rows; q++) {
    double a[na];
    for (int i = 0; i < n; i++) a[i] = in[q * n + i];
    a[n] = 1;
    for (int i = 0; i < na; i++)
      for (int j = 0; j < na; j++) A[i * na + j] += a[i] * a[j] / rows;
    for (int i = 0; i < m; i++)
      for (int j = 0; j < m; j++) G[i * m + j] += (double)rows * go[q * m + i] * go[q * m + j];
  }
  double ta = 0, tg = 0;
  for (int i = 0; i < na; i++) ta += A[i * na + i] / na;
  for (int i = 0; i < m; i++) tg += G[i * m + i] / m;
  const double pi = sqrt(ta / tg), gd = sqrt(c.damping);
  for (int i = 0; i < na; i++) A[i * na + i] += pi * gd;
  for (int i = 0; i < m; i++) G[i * m + i] += gd / pi;
  for (int t = 0; t < 300; t++) {
    CHECK(o.ops->curvature_pass(&o) == 2);
    CHECK_OK(o.ops->observe(&o, &cr));
    kvi_params_zero_grad(&p);
    for (size_t i = 0; i < p.n; i++) p.grad[i] = (kvi_real)(0.01 * sin(3.0 * i + t));
    CHECK_OK(kvi_optimizer_step(&o, &p, 0));
  }
  const kvi_opt_state *K = kvi_optimizer_find_state(&o, "lie.K.fc0");
  const kvi_opt_state *C = kvi_optimizer_find_state(&o, "lie.C.fc0");
  CHECK(K && C && kvi_optimizer_find_state(&o, "lie.count.fc0"));
  if (!K || !C) return;
  double KK[na * na], CC[m * m], worst = 0, upper = 0, dmin = 1;
  for (int i = 0; i < na; i++)
    for (int j = 0; j < na; j++) {
      double s = 0;
      for (int q = 0; q < na; q++) s += K->data[i * na + q] * K->data[j * na + q];
      KK[i * na + j] = s;
      if (j > i) upper = fmax(upper, fabs(K->data[i * na + j]));
    }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      double s = 0;
      for (int q = 0; q < m; q++) s += C->data[i * m + q] * C->data[j * m + q];
      CC[i * m + j] = s;
      if (j > i) upper = fmax(upper, fabs(C->data[i * m + j]));
    }
  for (int i = 0; i < na; i++) dmin = fmin(dmin, K->data[i * na + i]);
  for (int i = 0; i < m; i++) dmin = fmin(dmin, C->data[i * m + i]);
  for (int i = 0; i < na; i++)
    for (int j = 0; j < na; j++)
      for (int k = 0; k < m; k++)
        for (int l = 0; l < m; l++)
          worst = fmax(worst, fabs(KK[i * na + j] * CC[k * m + l] - A[i * na + j] * G[k * m + l]));
  printf("lie-ngd factors after 300 updates: max |KK^T (x) CC^T - A_d (x) G_d| = %.2e\n", worst);
  const double tol = sizeof(kvi_real) == 8 ? 1e-9 : 1e-3;
  CHECK(worst < tol && upper == 0 && dmin > 0);
  /* the step: x <- x - lr A_d^-1 V G_d^-1 */
  kvi_real *M = kvi_params_data(&p, d.iM), *b = kvi_params_data(&p, d.ib);
  double x0[na * m], V[na * m];
  for (int i = 0; i < n * m; i++) x0[i] = M[i];
  for (int j = 0; j < m; j++) x0[n * m + j] = b[j];
  for (size_t i = 0; i < p.n; i++) p.grad[i] = (kvi_real)(0.1 * cos(1.0 + i));
  for (int i = 0; i < n * m; i++) V[i] = kvi_params_grad(&p, d.iM)[i];
  for (int j = 0; j < m; j++) V[n * m + j] = kvi_params_grad(&p, d.ib)[j];
  CHECK_OK(o.ops->observe(&o, &cr));
  CHECK_OK(kvi_optimizer_step(&o, &p, 0.5));
  spd_solve(na, m, A, V); /* A_d^-1 V */
  double VT[m * na];      /* (A_d^-1 V) G_d^-1 = (G_d^-1 (A_d^-1 V)^T)^T */
  for (int i = 0; i < na; i++)
    for (int j = 0; j < m; j++) VT[j * na + i] = V[i * m + j];
  spd_solve(m, na, G, VT);
  double e = 0;
  for (int i = 0; i < na; i++)
    for (int j = 0; j < m; j++) {
      const double x1 = i < n ? M[i * m + j] : b[j];
      e = fmax(e, fabs((x0[i * m + j] - x1) / 0.5 - VT[j * na + i]) / (1 + fabs(VT[j * na + i])));
    }
  printf("lie-ngd step vs A_d^-1 V G_d^-1: max relative difference %.2e\n", e);
  CHECK(e < (sizeof(kvi_real) == 8 ? 1e-6 : 1e-2));
  CHECK(kvi_lie_ngd_skipped(&o) == 0);
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
}

static void test_schedule_and_refusals(void) {
  kvi_params p;
  kvi_dense d;
  layer(&p, &d, KVI_FAMILY_POINT);
  kvi_opt_config c = kvi_opt_config_default(KVI_OPT_LIE_NGD);
  c.inverse_every = 3;
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  kvi_dense *w[1] = {&d};
  CHECK_OK(kvi_optimizer_bind(&o, &p, w, 1));
  int passes[7];
  for (int t = 0; t < 7; t++) {
    passes[t] = o.ops->curvature_pass(&o);
    kvi_params_zero_grad(&p);
    CHECK_OK(kvi_optimizer_step(&o, &p, 1e-2));
  }
  CHECK(passes[0] == 2 && passes[1] == 0 && passes[2] == 0 && passes[3] == 2 && passes[6] == 2);
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
  layer(&p, &d, KVI_FAMILY_MN);
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  CHECK_FAILS(kvi_optimizer_bind(&o, &p, w, 1));
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
}

int main(void) {
  test_fixed_point();
  test_schedule_and_refusals();
  TEST_MAIN_END();
}
