/* The solvers (docs/curv.md) in double precision:
 *  - L-BFGS, damped Newton, Levenberg-Marquardt and HF reach f - f* < 1e-10 on chained
 *    Rosenbrock-10 and a non-separable quadratic (cond 1e3); proximal and L-BFGS on logistic
 *    regression; the test problems' gradients and products against central differences;
 *  - numerical safety: negative curvature (Newton at a saddle region of Rosenbrock: Cholesky
 *    fails, the damping grows, the step still descends), a CG breakdown and a non-finite product
 *    (products returning NaN: the step is rejected, the damping raised, x unchanged), a failed
 *    line search (a gradient that points uphill: the step is rejected, x unchanged), a non-finite
 *    value at a trial point (rejected, damping raised). */
#include "kronvi/optim.h"
#include "kvi_test.h"

/* Runs a solver on the objective until f - fstar < tol; returns the iterations (-1: not). */
static double last_f;
static int run_solver(kvi_opt_kind kind, kvi_objective *f, double fstar, double tol, int max_it,
                      bool hessian) {
  kvi_params p;
  kvi_params_init(&p);
  int64_t shape[1] = {(int64_t)f->n};
  int vi;
  CHECK_OK(kvi_params_add(&p, "x", KVI_ROLE_OTHER, 1, shape, &vi));
  CHECK_OK(kvi_params_alloc(&p));
  memcpy(p.data, f->x, f->n * sizeof *f->x);
  kvi_real *x_orig = f->x;
  f->x = p.data;
  kvi_opt_config c = kvi_opt_config_default(kind);
  c.hf_hessian = hessian, c.lr = 1e-2;
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  int it = 0, done = -1;
  double fx = INFINITY;
  for (it = 1; it <= max_it; it++) {
    CHECK_OK(kvi_optimizer_solve(&o, &p, c.lr, f));
    fx = o.info.f;
    if (fx - fstar < tol) {
      done = it;
      break;
    }
  }
  last_f = fx;
  if (done < 0)
    fprintf(stderr, "%s: f - f* = %g after %d iterations\n", kvi_opt_name(kind), fx - fstar,
            max_it);
  memcpy(x_orig, p.data, f->n * sizeof *f->x);
  f->x = x_orig;
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
  return done;
}

static kvi_problem *make(kvi_problem_kind k, int dim, double cond) {
  kvi_problem_config c = {k, dim, cond, 3, NULL, NULL, 0, 0, 1e-3};
  kvi_problem *P = NULL;
  CHECK_OK(kvi_problem_create(&P, &c));
  return P;
}

/* The problems' gradients, Hessian and GGN products against central differences. */
static void check_problem_derivatives(kvi_problem *P, const char *name) {
  kvi_objective *f = kvi_problem_objective(P);
  const size_t n = f->n;
  double *g = malloc(n * sizeof *g), *gp = malloc(n * sizeof *gp), *gm = malloc(n * sizeof *gm);
  double *v = malloc(n * sizeof *v), *hv = malloc(n * sizeof *hv), *x0 = malloc(n * sizeof *x0);
  kvi_rng r = kvi_rng_stream(5, 5);
  kvi_rng_normal(&r, v, n);
  for (size_t i = 0; i < n; i++) f->x[i] += 0.1 * v[i]; /* a generic point */
  memcpy(x0, f->x, n * sizeof *x0);
  double fx, fp, fm, h = 1e-6, err = 0, scale = 1e-300;
  CHECK_OK(f->eval(f->user, &fx, g));
  for (size_t i = 0; i < n; i++) {
    f->x[i] = x0[i] + h;
    CHECK_OK(f->eval(f->user, &fp, NULL));
    f->x[i] = x0[i] - h;
    CHECK_OK(f->eval(f->user, &fm, NULL));
    f->x[i] = x0[i];
    err = fmax(err, fabs((fp - fm) / (2 * h) - g[i])), scale = fmax(scale, fabs(g[i]));
  }
  printf("%-12s gradient vs FD %.2e\n", name, err / scale);
  CHECK(err / scale < 1e-6);
  for (size_t i = 0; i < n; i++) f->x[i] = x0[i] + h * v[i];
  CHECK_OK(f->eval(f->user, &fp, gp));
  for (size_t i = 0; i < n; i++) f->x[i] = x0[i] - h * v[i];
  CHECK_OK(f->eval(f->user, &fm, gm));
  memcpy(f->x, x0, n * sizeof *x0);
  CHECK_OK(f->eval(f->user, &fx, g));
  CHECK_OK(f->hvp(f->user, v, hv));
  err = 0, scale = 1e-300;
  for (size_t i = 0; i < n; i++)
    err = fmax(err, fabs((gp[i] - gm[i]) / (2 * h) - hv[i])), scale = fmax(scale, fabs(hv[i]));
  printf("%-12s Hv vs FD %.2e\n", name, err / scale);
  CHECK(err / scale < 1e-6);
  CHECK_OK(f->gvp(f->user, v, hv)); /* G is PSD */
  double vgv = 0;
  for (size_t i = 0; i < n; i++) vgv += v[i] * hv[i];
  CHECK(vgv >= 0);
  free(g), free(gp), free(gm), free(v), free(hv), free(x0);
}

static void check_convergence(void) {
  const kvi_opt_kind kinds[] = {KVI_OPT_LBFGS, KVI_OPT_NEWTON, KVI_OPT_LM, KVI_OPT_HF};
  for (int k = 0; k < 4; k++) {
    kvi_problem *P = make(KVI_PROBLEM_ROSENBROCK, 10, 0);
    /* damped Newton follows the exact Hessian into the chained Rosenbrock's local minimum
     * near (-1, 1, ..., 1), f = 3.98658 (the Gauss-Newton methods reach the global one) */
    const bool local = kinds[k] == KVI_OPT_NEWTON;
    int it = run_solver(kinds[k], kvi_problem_objective(P), local ? 3.986579 : 0,
                        local ? 1e-5 : 1e-10, local ? 200 : 3000, false);
    printf("rosenbrock-10 %-7s f = %.6g after %d iterations\n", kvi_opt_name(kinds[k]), last_f, it);
    CHECK(it > 0);
    kvi_problem_free(P);
    P = make(KVI_PROBLEM_QUADRATIC, 20, 1e3);
    it = run_solver(kinds[k], kvi_problem_objective(P), 0, 1e-10, 3000, false);
    printf("quadratic-20  %-7s f < 1e-10 after %d iterations\n", kvi_opt_name(kinds[k]), it);
    CHECK(it > 0);
    if (kinds[k] == KVI_OPT_NEWTON || kinds[k] == KVI_OPT_LM) CHECK(it <= 5); /* one solve */
    kvi_problem_free(P);
  }
  /* HF on the damped Hessian */
  kvi_problem *P = make(KVI_PROBLEM_QUADRATIC, 20, 1e3);
  CHECK(run_solver(KVI_OPT_HF, kvi_problem_objective(P), 0, 1e-10, 100, true) > 0);
  kvi_problem_free(P);
  /* logistic regression on separable-ish random data: L-BFGS, HF and proximal (WSD only) */
  enum { N = 200, D = 5 };
  double X[N * D];
  int32_t y[N];
  kvi_rng r = kvi_rng_stream(8, 8);
  kvi_rng_normal(&r, X, N * D);
  for (int i = 0; i < N; i++) y[i] = X[i * D] + 0.5 * X[i * D + 1] + 0.3 * X[i * D + 4] > 0.1;
  kvi_problem_config c = {KVI_PROBLEM_LOGREG, 0, 0, 1, X, y, N, D, 1e-2};
  CHECK_OK(kvi_problem_create(&P, &c));
  const double fstar = kvi_problem_fstar(P);
  CHECK(isfinite(fstar) && fstar > 0);
  check_problem_derivatives(P, "logreg");
  kvi_problem_free(P);
  const kvi_opt_kind lk[] = {KVI_OPT_LBFGS, KVI_OPT_HF, KVI_OPT_LM, KVI_OPT_PROXIMAL};
  for (int k = 0; k < 4; k++) {
    CHECK_OK(kvi_problem_create(&P, &c));
    int it = run_solver(lk[k], kvi_problem_objective(P), fstar, 1e-8, 2000, false);
    printf("logreg        %-8s f - f* < 1e-8 after %d iterations\n", kvi_opt_name(lk[k]), it);
    CHECK(it > 0);
    kvi_problem_free(P);
  }
}

/* ---- numerical safety --------------------------------------------------------------------- */
typedef struct {
  kvi_problem *P;
  int mode; /* 1: products NaN, 2: gradient reversed, 3: value NaN away from the start */
  kvi_real x0[2];
} bad_obj;

static kvi_status bad_eval(void *u, double *f, kvi_real *g) {
  bad_obj *b = u;
  kvi_objective *o = kvi_problem_objective(b->P);
  kvi_status s = o->eval(o->user, f, g);
  if (b->mode == 2 && g)
    for (size_t i = 0; i < o->n; i++) g[i] = -g[i];
  if (b->mode == 3 && (o->x[0] != b->x0[0] || o->x[1] != b->x0[1])) *f = NAN;
  return s;
}
static kvi_status bad_hvp(void *u, const kvi_real *v, kvi_real *out) {
  bad_obj *b = u;
  kvi_objective *o = kvi_problem_objective(b->P);
  kvi_status s = o->hvp(o->user, v, out);
  if (b->mode == 1) out[0] = NAN;
  return s;
}

/* One iteration of kind on Rosenbrock-2 at x with the given misbehaviour. */
static kvi_solve_info one_step(kvi_opt_kind kind, int mode, double x0, double x1, double *fafter) {
  kvi_problem *P = make(KVI_PROBLEM_ROSENBROCK, 2, 0);
  kvi_objective *po = kvi_problem_objective(P);
  po->x[0] = x0, po->x[1] = x1;
  bad_obj b = {P, mode, {x0, x1}};
  kvi_objective f = {2, po->x, &b, bad_eval, bad_hvp, bad_hvp, NULL, NULL, 1, 0, 0, 0};
  kvi_params p;
  kvi_params_init(&p);
  int64_t shape[1] = {2};
  int vi;
  CHECK_OK(kvi_params_add(&p, "x", KVI_ROLE_OTHER, 1, shape, &vi));
  CHECK_OK(kvi_params_alloc(&p));
  p.data[0] = x0, p.data[1] = x1;
  po->x = f.x = p.data;
  kvi_opt_config c = kvi_opt_config_default(kind);
  c.hf_hessian = true;
  kvi_optimizer o;
  CHECK_OK(kvi_optimizer_init(&o, &c, &p));
  CHECK_OK(kvi_optimizer_solve(&o, &p, 1, &f));
  kvi_solve_info info = o.info;
  CHECK(isfinite(p.data[0]) && isfinite(p.data[1]));
  if (!info.moved) CHECK(p.data[0] == x0 && p.data[1] == x1); /* a rejected step leaves x */
  double fa;
  po->x = p.data;
  CHECK_OK(po->eval(po->user, &fa, NULL));
  *fafter = fa;
  kvi_optimizer_free(&o);
  kvi_params_free(&p);
  kvi_problem_free(P);
  return info;
}

static void check_safety(void) {
  double fa, f0 = 100 * 1.0 + 1.0; /* Rosenbrock-2 at (0, 1) */
  /* negative curvature: at (0, 1) the Hessian is diag(-398, 200) */
  kvi_solve_info in = one_step(KVI_OPT_NEWTON, 0, 0, 1, &fa);
  printf("negative curvature: newton neg_curv %d, damping %.3g, f %.4g -> %.4g\n", in.neg_curv,
         in.damping, f0, fa);
  CHECK(in.neg_curv && in.moved && fa < f0 && in.damping >= 1e-8);
  in = one_step(KVI_OPT_HF, 0, 0, 1, &fa); /* CG on the Hessian meets p.Hp < 0 */
  printf("negative curvature: hf (Hessian) neg_curv %d, moved %d\n", in.neg_curv, in.moved);
  CHECK(in.neg_curv);
  CHECK(!in.moved || fa < f0);
  /* a non-finite product: the dense matrix (newton) and CG (hf) break down; rejected */
  in = one_step(KVI_OPT_NEWTON, 1, -1.2, 1, &fa);
  CHECK(in.breakdown && !in.moved && in.rejected > 0 && in.damping > 1e-3);
  in = one_step(KVI_OPT_HF, 1, -1.2, 1, &fa);
  printf("CG breakdown: hf breakdown %d, moved %d, rejected %d, damping %.3g\n", in.breakdown,
         in.moved, in.rejected, in.damping);
  CHECK(in.breakdown && !in.moved && in.damping > 1e-3);
  /* a failed line search: the gradient points uphill */
  in = one_step(KVI_OPT_LBFGS, 2, -1.2, 1, &fa);
  printf("failed line search: lbfgs moved %d, rejected %d\n", in.moved, in.rejected);
  CHECK(!in.moved && in.rejected >= 1);
  /* a non-finite value at every trial point: LM rejects and raises the damping */
  in = one_step(KVI_OPT_LM, 3, -1.2, 1, &fa);
  printf("non-finite trial value: lm moved %d, rejected %d, damping %.3g\n", in.moved, in.rejected,
         in.damping);
  CHECK(!in.moved && in.rejected > 0 && in.damping > 1e3 && in.breakdown);
  in = one_step(KVI_OPT_PROXIMAL, 3, -1.2, 1, &fa);
  CHECK(isfinite(fa));
}

int main(void) {
  const char *names[] = {"rosenbrock", "quadratic"};
  for (int k = 0; k < 2; k++) {
    kvi_problem *P = make((kvi_problem_kind)k, 12, 1e3);
    check_problem_derivatives(P, names[k]);
    kvi_problem_free(P);
  }
  check_convergence();
  check_safety();
  kvi_opt_kind k;
  CHECK_FAILS(kvi_opt_parse(&k, "bfgs"));
  kvi_problem *P = NULL;
  kvi_problem_config bad = {KVI_PROBLEM_QUADRATIC, 1, 10, 1, NULL, NULL, 0, 0, 0};
  CHECK_FAILS(kvi_problem_create(&P, &bad));
  TEST_MAIN_END();
}
