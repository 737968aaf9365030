/* Structured NGD solvers (docs/geom.md section 6): the estimators agree on a quadratic (exactly
 * for the Hessian-based ones, within Monte Carlo error for Stein and reparameterization);
 * Gaussian VI reaches the exact posterior with a dense B, the mean-field one with a diagonal B
 * and the Kronecker solution with a Kronecker B; Rosenbrock and Dixon-Price are minimized, by
 * Hessians and from function values only; the problems' gradients and Hessians match central
 * differences; a two-component mixture finds both modes of a bimodal target, and learns their
 * weights. */
#include "kvi_test.h"
#include "lie_test_util.h"

enum { Q = 4 };

static kvi_lie_group group(kvi_lie_kind kind, int p, int k) {
  kvi_lie_group g;
  memset(&g, 0, sizeof g);
  g.kind = kind, g.p = p, g.k = k;
  return g;
}

static void test_estimators(void) {
  kvi_rng r = kvi_rng_stream(5, 1);
  double A[Q * Q], c[Q], mu[Q], B[Q * Q], gm0[Q], X0[Q * Q], gm[Q], X[Q * Q];
  gt_rand_spd(&r, Q, A, 1);
  gt_randn(&r, c, Q, 1);
  gt_randn(&r, mu, Q, 1);
  gt_rand_spd(&r, Q, B, 1);
  for (int i = 0; i < Q; i++)
    for (int j = i + 1; j < Q; j++) B[i * Q + j] = 0; /* lower triangular, in every group here */
  lt_quad q = {Q, A, c};
  kvi_lie_problem pb = {Q, lt_quad_f, lt_quad_fg, lt_quad_hess, &q, 0, "quad", NULL, NULL};
  kvi_lie_group g = group(KVI_LIE_DENSE, Q, 0);
  kvi_lie_report rep = {0};
  CHECK_OK(kvi_lie_estimate(&pb, KVI_LIE_EST_MEAN, 1, 1, mu, B, &g, &r, gm0, X0, &rep));
  CHECK_OK(kvi_lie_estimate(&pb, KVI_LIE_EST_PRICE, 7, 1, mu, B, &g, &r, gm, X, &rep));
  CHECK(gt_maxdiff(X, X0, Q * Q) < 1e-12); /* a constant Hessian */
  const kvi_lie_estimator mc[2] = {KVI_LIE_EST_STEIN, KVI_LIE_EST_REPARAM};
  for (int e = 0; e < 2; e++) {
    CHECK_OK(kvi_lie_estimate(&pb, mc[e], 20000, 1, mu, B, &g, &r, gm, X, &rep));
    const double ex = gt_maxdiff(X, X0, Q * Q) / gt_maxabs(X0, Q * Q);
    const double eg = gt_maxdiff(gm, gm0, Q) / gt_maxabs(gm0, Q);
    printf("estimator %d (20000 samples): relative error of X %.3f, of g_mu %.3f\n", (int)mc[e], ex,
           eg);
    CHECK(ex < 0.08 && eg < 0.08);
  }
  kvi_lie_problem nohess = pb;
  nohess.hess = NULL;
  CHECK_FAILS(kvi_lie_estimate(&nohess, KVI_LIE_EST_MEAN, 1, 1, mu, B, &g, &r, gm, X, &rep));
}

/* VI on a Gaussian target (gamma = 1): the optimum of E_q[l] - H(q) over a group. */
static void test_vi_gaussian(void) {
  kvi_rng r = kvi_rng_stream(5, 2);
  double A[Q * Q], c[Q];
  gt_rand_spd(&r, Q, A, 0.5);
  gt_randn(&r, c, Q, 1);
  lt_quad q = {Q, A, c};
  kvi_lie_problem pb = {Q, lt_quad_f, lt_quad_fg, lt_quad_hess, &q, NAN, "quad", NULL, NULL};
  for (int dense = 1; dense >= 0; dense--) {
    kvi_lie_opts o = kvi_lie_opts_default(group(dense ? KVI_LIE_DENSE : KVI_LIE_DIAG, Q, 0));
    o.beta = 0.5, o.max_iter = 200;
    double mu[Q] = {0}, B[Q * Q] = {0}, S[Q * Q];
    for (int i = 0; i < Q; i++) B[i * Q + i] = 1;
    kvi_lie_report rep;
    CHECK_OK(kvi_lie_minimize(&pb, &o, mu, B, &rep));
    gt_mul(Q, Q, Q, B, false, B, true, S);
    double es = 0;
    for (int i = 0; i < Q * Q; i++)
      es = fmax(es, fabs(S[i] - (dense || i % (Q + 1) == 0 ? A[i] : 0)));
    CHECK(gt_maxdiff(mu, c, Q) < 1e-10);
    CHECK(es < 1e-10);
    printf("VI %s: |S - target| %.2e, |mu - c| %.2e after %d iterations\n",
           dense ? "dense" : "diagonal", es, gt_maxdiff(mu, c, Q), rep.iters);
  }
  /* Kronecker: A = A1 (x) A2 is reached by B1 (x) B2 with triangular factors */
  double A1[4], A2[9], AK[36], cK[6] = {1, -1, 0.5, 2, 0, -0.3};
  gt_rand_spd(&r, 2, A1, 0.5);
  gt_rand_spd(&r, 3, A2, 0.5);
  gt_kron(2, 3, A1, A2, AK);
  lt_quad qk = {6, AK, cK};
  kvi_lie_problem pk = {6, lt_quad_f, lt_quad_fg, lt_quad_hess, &qk, NAN, "kron", NULL, NULL};
  kvi_lie_group gk = group(KVI_LIE_KRON, 6, 0);
  gk.p1 = 2, gk.p2 = 3, gk.kind1 = KVI_LIE_TRIL, gk.kind2 = KVI_LIE_TRIL;
  kvi_lie_opts o = kvi_lie_opts_default(gk);
  o.beta = 0.5, o.max_iter = 300;
  double mu[6] = {0}, BK[4 + 9] = {1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1}, S1[4], S2[9], SK[36];
  kvi_lie_report rep;
  CHECK_OK(kvi_lie_minimize(&pk, &o, mu, BK, &rep));
  gt_mul(2, 2, 2, BK, false, BK, true, S1);
  gt_mul(3, 3, 3, BK + 4, false, BK + 4, true, S2);
  gt_kron(2, 3, S1, S2, SK);
  printf("VI kron(tril, tril): |S - A1 (x) A2| %.2e\n", gt_maxdiff(SK, AK, 36));
  CHECK(gt_maxdiff(SK, AK, 36) < 1e-8 && gt_maxdiff(mu, cK, 6) < 1e-8);
  CHECK(BK[1] == 0 && BK[4 + 1] == 0 && BK[4 + 2] == 0 && BK[4 + 5] == 0); /* still triangular */
}

static void test_minimize(void) {
  const kvi_lie_kind ks[4] = {KVI_LIE_DENSE, KVI_LIE_TRIL, KVI_LIE_BLOCK_UP, KVI_LIE_DIAG};
  for (int prob = 0; prob < 2; prob++)
    for (int c = 0; c < 4; c++) {
      const int p = 10;
      kvi_lie_problem pb = prob ? kvi_lie_problem_dixon_price(p) : kvi_lie_problem_rosenbrock(p);
      kvi_lie_opts o = kvi_lie_opts_default(group(ks[c], p, 3));
      o.beta = 1, o.beta_b = 0.1, o.max_iter = 30000;
      double mu[10], B[100] = {0}, H[100], s0 = 1;
      for (int i = 0; i < p; i++) mu[i] = prob ? 1 : (i % 2 ? 1.0 : -1.2);
      pb.hess(mu, H, pb.user); /* S0 = s0 I on the scale of the starting Hessian */
      for (int i = 0; i < p; i++) s0 = fmax(s0, fabs(H[i * p + i]));
      for (int i = 0; i < p; i++) B[i * p + i] = sqrt(s0);
      kvi_lie_report rep;
      CHECK_OK(kvi_lie_minimize(&pb, &o, mu, B, &rep));
      printf("%s-%d, group %d: f = %.2e after %d iterations (%s)\n", pb.name, p, (int)ks[c], rep.f,
             rep.iters, rep.converged ? "converged" : "not converged");
      CHECK(rep.converged && rep.f < 1e-6);
    }
  /* from function values only (gamma = 0): Rosenbrock-4 with a dense B */
  kvi_lie_problem pb = kvi_lie_problem_rosenbrock(4);
  kvi_lie_opts o = kvi_lie_opts_default(group(KVI_LIE_DENSE, 4, 0));
  o.est = KVI_LIE_EST_VALUES, o.gamma = 0, o.samples = 12, o.beta = 1, o.beta_b = 0.1;
  o.max_iter = 20000;
  double mu[4] = {-1.2, 1, -1.2, 1}, B[16] = {0};
  for (int i = 0; i < 4; i++) B[i * 4 + i] = 2;
  kvi_lie_report rep;
  CHECK_OK(kvi_lie_minimize(&pb, &o, mu, B, &rep));
  printf("values only, rosenbrock-4: f = %.2e after %d iterations, %ld evaluations\n", rep.f,
         rep.iters, rep.fevals);
  CHECK(rep.converged && rep.gevals == 0 && rep.hevals == 0);
}

typedef struct {
  int calls, stop_at;
  double last_f;
} progress_ctx;

static int on_progress(const kvi_lie_report *r, const double *mu, const double *B, void *u) {
  progress_ctx *c = u;
  CHECK(r->iters == c->calls && mu && B);
  c->calls++, c->last_f = r->f;
  return c->calls == c->stop_at;
}

/* kvi_lie_start's steps and S0, and the progress callback: one call per iteration, and a
 * non-zero return stops the run where it is. */
static void test_start_progress(void) {
  const int p = 6;
  kvi_lie_problem pb = kvi_lie_problem_rosenbrock(p);
  double mu[6] = {-1.2, 1, -1.2, 1, -1.2, 1}, B[36], H[36];
  kvi_lie_opts o = kvi_lie_opts_default(group(KVI_LIE_TRIL, p, 0));
  CHECK_OK(kvi_lie_start(&pb, &o, mu, B));
  pb.hess(mu, H, pb.user);
  double s0 = 1;
  for (int i = 0; i < p; i++) s0 = fmax(s0, fabs(H[i * p + i]));
  CHECK(o.beta == 1 && o.beta_b == 0.1 && o.gamma == 1);
  for (int i = 0; i < p; i++)
    for (int j = 0; j < p; j++) CHECK(B[i * p + j] == (i == j ? sqrt(s0) : 0));
  progress_ctx c = {0, 0, NAN};
  o.progress = on_progress, o.progress_user = &c;
  kvi_lie_report rep;
  CHECK_OK(kvi_lie_minimize(&pb, &o, mu, B, &rep));
  CHECK(rep.converged && c.calls == rep.iters + 1 && c.last_f == rep.f);
  printf("start + progress: rosenbrock-6 tril, %d iterations, %d callbacks\n", rep.iters, c.calls);
  for (int i = 0; i < p; i++) mu[i] = i % 2 ? 1 : -1.2;
  CHECK_OK(kvi_lie_start(&pb, &o, mu, B));
  c = (progress_ctx){0, 5, NAN};
  CHECK_OK(kvi_lie_minimize(&pb, &o, mu, B, &rep));
  CHECK(!rep.converged && rep.iters == 4 && c.calls == 5);
  kvi_lie_opts v = kvi_lie_opts_default(group(KVI_LIE_KRON, p, 0));
  v.group.kind1 = v.group.kind2 = KVI_LIE_TRIL, v.group.p1 = 2, v.group.p2 = 3;
  v.est = KVI_LIE_EST_VALUES;
  CHECK_OK(kvi_lie_start(&pb, &v, mu, B));
  CHECK(v.gamma == 0 && v.samples == 4 + (int)(3 * log(p)));
  CHECK(fabs(B[0] * B[4] - 2) < 1e-12 && B[1] == 0); /* B1 (x) B2 = 2 I */
  kvi_lie_opts bad = kvi_lie_opts_default(group(KVI_LIE_DIAG, p + 1, 0));
  CHECK_FAILS(kvi_lie_start(&pb, &bad, mu, B));
}

typedef struct {
  double f_first, f_max, f_last;
  int rises;
} track_ctx;

static int on_track(const kvi_lie_report *r, const double *mu, const double *B, void *u) {
  (void)mu, (void)B;
  track_ctx *c = u;
  if (r->iters == 0) c->f_first = c->f_max = r->f;
  if (r->iters > 0 && r->f > c->f_last) c->rises++;
  c->f_max = fmax(c->f_max, r->f), c->f_last = r->f;
  return 0;
}

/* --monotone: on A = 0.1 I + 0.9 11^T (p = 8) a diagonal precision makes the mean's step
 * Jacobi's, which diverges at beta = 1; undoing every rise makes f non-increasing and converge. */
static void test_monotone(void) {
  enum { P = 8 };
  double A[P * P], c[P];
  for (int i = 0; i < P; i++) {
    c[i] = 1 + 0.1 * i;
    for (int j = 0; j < P; j++) A[i * P + j] = 0.9 + (i == j ? 0.1 : 0);
  }
  lt_quad q = {P, A, c};
  kvi_lie_problem pb = {P, lt_quad_f, lt_quad_fg, lt_quad_hess, &q, 0, "coupled", NULL, NULL};
  for (int mono = 0; mono < 2; mono++) {
    kvi_lie_opts o = kvi_lie_opts_default(group(KVI_LIE_DIAG, P, 0));
    double mu[P] = {0}, B[P * P];
    CHECK_OK(kvi_lie_start(&pb, &o, mu, B));
    track_ctx t = {0, 0, 0, 0};
    o.monotone = mono, o.max_iter = mono ? 20000 : 300, o.tol = 1e-8;
    o.progress = on_track, o.progress_user = &t;
    kvi_lie_report rep;
    CHECK_OK(kvi_lie_minimize(&pb, &o, mu, B, &rep));
    printf("coupled quadratic, diag, %s: f %.2e -> %.2e (max %.2e, %d rises), %d iterations\n",
           mono ? "monotone" : "default", t.f_first, rep.f, t.f_max, t.rises, rep.iters);
    if (mono)
      CHECK(rep.converged && t.rises == 0 && t.f_max == t.f_first);
    else
      CHECK(!rep.converged && t.f_max > 1e3 * t.f_first);
  }
}

static double fd_f(const double *x, void *u) {
  const kvi_lie_problem *pb = u;
  return pb->f(x, pb->user);
}

typedef struct {
  const kvi_lie_problem *pb;
  int k;
} gk_ctx;

static double fd_gk(const double *x, void *u) { /* component k of the gradient */
  const gk_ctx *c = u;
  double g[16];
  c->pb->fg(x, g, c->pb->user);
  return g[c->k];
}

static void test_problems_fd(void) {
  kvi_rng r = kvi_rng_stream(5, 3);
  for (int prob = 0; prob < 2; prob++) {
    const int p = 7;
    kvi_lie_problem pb = prob ? kvi_lie_problem_dixon_price(p) : kvi_lie_problem_rosenbrock(p);
    double x[16], g[16], H[16 * 16];
    gt_randn(&r, x, p, 1);
    const double f = pb.fg(x, g, pb.user);
    CHECK_NEAR(f, pb.f(x, pb.user), 1e-14);
    CHECK(kvi_test_fd_maxerr(fd_f, &pb, x, g, p, 1e-6) < 1e-7);
    pb.hess(x, H, pb.user);
    double worst = 0;
    for (int k = 0; k < p; k++) {
      gk_ctx c = {&pb, k};
      worst = fmax(worst, kvi_test_fd_maxerr(fd_gk, &c, x, H + k * p, p, 1e-6));
    }
    CHECK(worst < 1e-6);
    for (int i = 0; i < p; i++) x[i] = 1;
    if (!prob) CHECK(pb.f(x, pb.user) == 0);
  }
  double xs[3] = {1, pow(2, -0.5), pow(2, -0.75)}; /* Dixon-Price's minimizer */
  kvi_lie_problem dp = kvi_lie_problem_dixon_price(3);
  CHECK(fabs(dp.f(xs, dp.user)) < 1e-30);
}

/* A bimodal target: two Gaussians N(c_k, A^-1) six standard deviations apart, weights 1/2;
 * l = -log p, grad l = sum_k rho_k(w) A (w - c_k). */
typedef struct {
  const double *A, *c1, *c2;
  double w1; /* weight of the first mode */
} bimodal;

enum { D = 3 };

static double bi_fg(const double *w, double *g, void *u) {
  const bimodal *b = u;
  double e[2], Ad[2][D];
  for (int k = 0; k < 2; k++) {
    const double *c = k ? b->c2 : b->c1;
    e[k] = 0;
    for (int i = 0; i < D; i++) {
      Ad[k][i] = 0;
      for (int j = 0; j < D; j++) Ad[k][i] += b->A[i * D + j] * (w[j] - c[j]);
      e[k] += 0.5 * (w[i] - c[i]) * Ad[k][i];
    }
  }
  const double mn = fmin(e[0], e[1]);
  const double a = b->w1 * exp(mn - e[0]), c = (1 - b->w1) * exp(mn - e[1]), z = a + c;
  if (g)
    for (int i = 0; i < D; i++) g[i] = (a * Ad[0][i] + c * Ad[1][i]) / z;
  return mn - log(z);
}

static double bi_f(const double *w, void *u) { return bi_fg(w, NULL, u); }

/* K = 2 structured components on the bimodal target: one per mode, each the mode's Gaussian
 * (within Monte Carlo noise). */
static void test_mixture(void) {
  double A[D * D] = {2, 0.5, 0, 0.5, 1.5, 0.2, 0, 0.2, 1}, c1[D] = {-3, 0, 0}, c2[D] = {3, 0, 0};
  bimodal bm = {A, c1, c2, 0.5};
  kvi_lie_problem pb = {D, bi_f, bi_fg, NULL, &bm, NAN, "bimodal", NULL, NULL};
  kvi_lie_group g = group(KVI_LIE_DENSE, D, 0);
  double mu[2 * D] = {-1, 1, 0.5, 1, -1, 0}, B[2 * D * D] = {0};
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < D; i++) B[k * D * D + i * D + i] = 1;
  kvi_lie_report rep;
  CHECK_OK(kvi_lie_mixture_fit(&pb, &g, 2, mu, B, NULL, 300, 10, 0.2, 3, &rep));
  double worst_mu = 0, worst_s = 0;
  for (int k = 0; k < 2; k++) {
    double S[D * D];
    gt_mul(D, D, D, B + k * D * D, false, B + k * D * D, true, S);
    worst_mu = fmax(worst_mu, gt_maxdiff(mu + k * D, k ? c2 : c1, D));
    worst_s = fmax(worst_s, gt_maxdiff(S, A, D * D) / gt_maxabs(A, D * D));
  }
  printf(
      "mixture of 2 on a bimodal target: |mu_k - c_k| %.3f, relative |S_k - A| %.3f "
      "(%d iterations, %.2f s)\n",
      worst_mu, worst_s, rep.iters, rep.seconds);
  CHECK(worst_mu < 0.05 && worst_s < 0.1);
  CHECK(kvi_lie_in_group(&g, B, 0) && kvi_lie_in_group(&g, B + D * D, 0));
  kvi_lie_group gk = group(KVI_LIE_KRON, D, 0);
  CHECK_FAILS(kvi_lie_mixture_fit(&pb, &gk, 2, mu, B, NULL, 1, 1, 0.1, 1, &rep));
  /* unequal modes, 3/4 and 1/4: the learned weights follow them */
  bm.w1 = 0.75;
  double logw[2] = {0, 0};
  CHECK_OK(kvi_lie_mixture_fit(&pb, &g, 2, mu, B, logw, 400, 10, 0.2, 4, &rep));
  printf("learned weights %.3f %.3f (target 0.75 0.25)\n", exp(logw[0]), exp(logw[1]));
  CHECK(fabs(exp(logw[0]) - 0.75) < 0.03 && fabs(exp(logw[0]) + exp(logw[1]) - 1) < 1e-12);
}

int main(void) {
  test_estimators();
  test_vi_gaussian();
  test_minimize();
  test_start_progress();
  test_monotone();
  test_problems_fd();
  test_mixture();
  TEST_MAIN_END();
}
