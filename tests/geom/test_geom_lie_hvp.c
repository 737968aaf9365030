/* The Hessian-vector-product path of the structured NGD estimators (docs/geom.md section 6,
 * "Hessian-vector products"): the problems' hvp and hdiag match their dense Hessians and central
 * differences of the gradient; for every group the projection kappa of X from HVPs equals that
 * of the dense congruence (at the mean and for Price), 20 iterations of kvi_lie_minimize give
 * the same iterates by both paths on Rosenbrock, Dixon-Price and a random quadratic, with the
 * expected number of HVPs per estimate; a problem without hess and hvp fails cleanly. */
#include "kvi_test.h"
#include "lie_test_util.h"

enum { P = 12 };

/* The groups under test with their HVPs per estimate at p = 12 (k = 3; kron 3 x 4; spcholK,KB:
 * KB rows of B_B and one per entry of D_2, min(K, p - K - KB); spchol3,2 runs on the pattern,
 * spchol2,8 on full matrices) and whether the Hessian's diagonal is used. */
typedef struct {
  const char *name;
  int hvps;
  bool hdiag;
} gcase;

enum { NCASE = 9 };
static const gcase cases[NCASE] = {{"dense", P, false},
                                   {"tril", P - 1, true},
                                   {"up3", 3, true},
                                   {"low3", P, false},
                                   {"bdiag3", P, false},
                                   {"diag", 0, true},
                                   {"kron:3:tril:up1", P, false},
                                   {"spchol3,2", 2 + 3, true},
                                   {"spchol2,8", 8 + 2, true}};

static kvi_lie_group group_of(const char *name) {
  kvi_lie_group g;
  CHECK_OK(kvi_lie_group_parse(&g, name, P));
  return g;
}

static size_t b_size(const kvi_lie_group *g) {
  return g->kind == KVI_LIE_KRON ? (size_t)g->p1 * g->p1 + (size_t)g->p2 * g->p2 : (size_t)P * P;
}

typedef struct {
  const kvi_lie_problem *pb;
  int i;
} gi_ctx;

static double fd_gi(const double *x, void *u) { /* component i of the gradient */
  const gi_ctx *c = u;
  double g[P];
  c->pb->fg(x, g, c->pb->user);
  return g[c->i];
}

/* hvp and hdiag against the dense Hessian (to rounding) and H v against central differences of
 * the gradient along v. */
static void test_problems_hvp(void) {
  kvi_rng r = kvi_rng_stream(7, 1);
  for (int prob = 0; prob < 2; prob++) {
    const int p = 9;
    kvi_lie_problem pb = prob ? kvi_lie_problem_dixon_price(p) : kvi_lie_problem_rosenbrock(p);
    double x[P], v[P], H[P * P], Hv[P], ref[P], d[P], gp[P], gm[P], xs[P];
    gt_randn(&r, x, p, 1);
    gt_randn(&r, v, p, 1);
    pb.hess(x, H, pb.user);
    pb.hvp(x, v, Hv, pb.user);
    pb.hdiag(x, d, pb.user);
    gt_mul(p, 1, p, H, false, v, false, ref);
    double ediag = 0, efd = 0;
    for (int i = 0; i < p; i++) ediag = fmax(ediag, fabs(d[i] - H[i * p + i]));
    const double h = 1e-6;
    for (int i = 0; i < p; i++) xs[i] = x[i] + h * v[i];
    pb.fg(xs, gp, pb.user);
    for (int i = 0; i < p; i++) xs[i] = x[i] - h * v[i];
    pb.fg(xs, gm, pb.user);
    for (int i = 0; i < p; i++)
      efd = fmax(efd, fabs((gp[i] - gm[i]) / (2 * h) - Hv[i]) / fmax(1, fabs(Hv[i])));
    printf("%s-%d: |hvp - H v| %.1e, |hdiag - diag H| %.1e, hvp against differences %.1e\n",
           pb.name, p, gt_maxdiff(Hv, ref, p), ediag, efd);
    CHECK(gt_maxdiff(Hv, ref, p) <= 1e-12 * gt_maxabs(ref, p) && ediag <= 1e-13 * gt_maxabs(d, p) &&
          efd < 1e-6);
    double worst = 0; /* the dense Hessian's columns against differences, as in lie_solve */
    for (int i = 0; i < p; i++) {
      gi_ctx c = {&pb, i};
      worst = fmax(worst, kvi_test_fd_maxerr(fd_gi, &c, x, H + i * p, p, 1e-6));
    }
    CHECK(worst < 1e-6);
  }
}

/* A generic B in the group: a few updates of I with random symmetric X. */
static void random_b(const kvi_lie_group *g, kvi_rng *r, double *B) {
  kvi_lie_problem none = {P, lt_quad_f, lt_quad_fg, NULL, NULL, NAN, "none", NULL, NULL};
  kvi_lie_opts o = kvi_lie_opts_default(*g);
  double mu[P] = {0}, X[P * P], Xk[P * P];
  CHECK_OK(kvi_lie_start(&none, &o, mu, B));
  for (int t = 0; t < 3; t++) {
    gt_rand_sym(r, g->kind == KVI_LIE_KRON ? g->p1 : P, X, 3);
    if (g->kind != KVI_LIE_KRON) {
      CHECK_OK(kvi_lie_update(g, B, X, 0.5, NULL));
      continue;
    }
    gt_rand_sym(r, g->p2, Xk, 3);
    CHECK_OK(kvi_lie_update_kron(g, B, B + g->p1 * g->p1, X, Xk, 0.5, NULL));
  }
}

/* kappa's entries of X (kvi_lie_project; KRON: all of X) from HVPs and from the dense Hessian. */
static double kappa_diff(const kvi_lie_group *g, const double *Xa, const double *Xb) {
  if (g->kind == KVI_LIE_KRON) return gt_maxdiff(Xa, Xb, P * P) / gt_maxabs(Xb, P * P);
  double Ma[P * P], Mb[P * P];
  CHECK_OK(kvi_lie_project(g, Ma, Xa));
  CHECK_OK(kvi_lie_project(g, Mb, Xb));
  return gt_maxdiff(Ma, Mb, P * P) / gt_maxabs(Mb, P * P);
}

static void test_estimate_entries(void) {
  kvi_rng r = kvi_rng_stream(7, 2);
  kvi_lie_problem rb = kvi_lie_problem_rosenbrock(P), dense = rb, hvp = rb, nodiag = rb;
  hvp.hess = NULL, nodiag.hess = NULL, nodiag.hdiag = NULL;
  double mu[P], B[P * P], gm[P], gh[P], Xd[P * P], Xh[P * P];
  gt_randn(&r, mu, P, 0.5);
  for (int c = 0; c < NCASE; c++) {
    kvi_lie_group g = group_of(cases[c].name);
    random_b(&g, &r, B);
    for (int est = 0; est < 2; est++) { /* MEAN, PRICE (5 samples from the same stream) */
      const kvi_lie_estimator e = est ? KVI_LIE_EST_PRICE : KVI_LIE_EST_MEAN;
      kvi_lie_report rd = {0}, rh = {0}, rn = {0};
      kvi_rng sd = kvi_rng_stream(9, c), sh = kvi_rng_stream(9, c), sn = kvi_rng_stream(9, c);
      CHECK_OK(kvi_lie_estimate(&dense, e, 5, 1, mu, B, &g, &sd, gm, Xd, &rd));
      CHECK_OK(kvi_lie_estimate(&hvp, e, 5, 1, mu, B, &g, &sh, gh, Xh, &rh));
      const double dx = kappa_diff(&g, Xh, Xd), dg = gt_maxdiff(gh, gm, P) / gt_maxabs(gm, P);
      const int S = est ? 5 : 1;
      CHECK(dx < 1e-12 && dg == 0);
      CHECK(rh.hevals == 0 && rh.hvps == (long)S * cases[c].hvps &&
            rh.hdiags == (cases[c].hdiag ? S : 0) && rd.hvps == 0 && rd.hevals == S);
      CHECK_OK(kvi_lie_estimate(&nodiag, e, 5, 1, mu, B, &g, &sn, gh, Xh, &rn));
      CHECK(kappa_diff(&g, Xh, Xd) < 1e-12 && rn.hvps == (long)S * P && rn.hdiags == 0);
      if (!est)
        printf("estimate %-16s: kappa(X) from %2d HVPs%s, relative difference %.1e\n",
               cases[c].name, cases[c].hvps, cases[c].hdiag ? " + hdiag" : "", dx);
    }
  }
}

/* 20 iterations from the same start by the dense Hessian and by HVPs. */
static void same_iterates(const kvi_lie_problem *pb, const gcase *gc) {
  kvi_lie_opts o = kvi_lie_opts_default(group_of(gc->name));
  double mu[P], B[P * P], mu2[P], B2[P * P];
  for (int i = 0; i < P; i++) mu[i] = !strcmp(pb->name, "rosenbrock") ? (i % 2 ? 1 : -1.2) : 1.5;
  CHECK_OK(kvi_lie_start(pb, &o, mu, B));
  o.max_iter = 20, o.tol = 0;
  memcpy(mu2, mu, sizeof mu), memcpy(B2, B, sizeof B);
  kvi_lie_report rd, rh;
  CHECK_OK(kvi_lie_minimize(pb, &o, mu, B, &rd));
  o.use_hvp = true;
  CHECK_OK(kvi_lie_minimize(pb, &o, mu2, B2, &rh));
  const size_t nb = b_size(&o.group);
  const double dm = gt_maxdiff(mu2, mu, P) / fmax(1, gt_maxabs(mu, P));
  const double db = gt_maxdiff(B2, B, nb) / gt_maxabs(B, nb);
  /* one estimate per iteration, and one more after each backtrack: rd.hevals of them */
  const long n = rd.hevals;
  printf(
      "%-11s %-16s: 20 iterations, f %.3e vs %.3e, |dmu| %.1e, |dB| %.1e, %ld HVPs and %ld "
      "diagonals in %ld estimates\n",
      pb->name, gc->name, rh.f, rd.f, dm, db, rh.hvps, rh.hdiags, n);
  CHECK(rd.iters == 20 && rh.iters == 20 && dm < 1e-10 && db < 1e-10);
  CHECK(rh.hevals == 0 && rh.hvps == gc->hvps * n && rh.hdiags == (gc->hdiag ? n : 0));
  CHECK(rd.hvps == 0 && rd.hdiags == 0 && rd.gevals == rh.gevals);
}

static void test_minimize_same(void) {
  kvi_rng r = kvi_rng_stream(7, 3);
  double A[P * P], center[P];
  gt_rand_spd(&r, P, A, 0.5);
  gt_randn(&r, center, P, 1);
  lt_quad q = {P, A, center};
  kvi_lie_problem pq = lt_quad_problem(&q, NAN, "quadratic", true);
  kvi_lie_problem probs[3] = {kvi_lie_problem_rosenbrock(P), kvi_lie_problem_dixon_price(P), pq};
  for (int p = 0; p < 3; p++)
    for (int c = 0; c < NCASE; c++) same_iterates(&probs[p], &cases[c]);
}

/* Neither hess nor hvp: KVI_ERR_ARG with a message, for the estimate and the loop; use_hvp
 * without hvp likewise. The estimators from gradients still run. */
static void test_missing(void) {
  kvi_lie_problem pb = kvi_lie_problem_dixon_price(P), bare = pb, nohvp = pb;
  bare.hess = NULL, bare.hvp = NULL, bare.hdiag = NULL;
  nohvp.hvp = NULL;
  kvi_lie_opts o = kvi_lie_opts_default(group_of("up3"));
  double mu[P], B[P * P], gm[P], X[P * P];
  for (int i = 0; i < P; i++) mu[i] = 1;
  CHECK_OK(kvi_lie_start(&bare, &o, mu, B));
  kvi_lie_report rep = {0};
  kvi_rng r = kvi_rng_stream(7, 4);
  for (int e = 0; e < 2; e++) {
    kvi_clear_error();
    CHECK_STATUS(kvi_lie_estimate(&bare, e ? KVI_LIE_EST_PRICE : KVI_LIE_EST_MEAN, 3, 1, mu, B,
                                  &o.group, &r, gm, X, &rep),
                 KVI_ERR_ARG);
    CHECK(strstr(kvi_last_error(), "hvp") != NULL);
  }
  o.max_iter = 5;
  kvi_clear_error();
  CHECK_STATUS(kvi_lie_minimize(&bare, &o, mu, B, &rep), KVI_ERR_ARG);
  CHECK(kvi_last_error()[0] != 0 && rep.iters == 0);
  printf("no Hessian and no HVP: \"%s\"\n", kvi_last_error());
  o.use_hvp = true;
  CHECK_STATUS(kvi_lie_minimize(&nohvp, &o, mu, B, &rep), KVI_ERR_ARG);
  o.use_hvp = false, o.est = KVI_LIE_EST_STEIN;
  CHECK_OK(kvi_lie_minimize(&bare, &o, mu, B, &rep));
}

int main(void) {
  test_problems_hvp();
  test_estimate_entries();
  test_minimize_same();
  test_missing();
  TEST_MAIN_END();
}
