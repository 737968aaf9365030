/* Damped Newton and Levenberg-Marquardt (docs/curv.md, eq. N1-N3): the step minimizes the
 * quadratic model with a Euclidean proximity term,
 *   d = argmin g.d + 1/2 d.C d + lambda/2 ||d||^2 = -(C + lambda I)^-1 g,
 * C the exact Hessian (newton) or the Gauss-Newton matrix (lm; for the squared error it is J^T J,
 * for the log loss J^T (diag(q) - q q^T) J). The damping follows the reduction ratio
 *   rho = (f(x + d) - f(x)) / (g.d + 1/2 d.C d)
 * by Nielsen's rule: an accepted step (rho > 0) multiplies lambda by max(1/3, 1 - (2 rho - 1)^3),
 * a rejected one (rho <= 0, a non-finite value) by nu, nu doubling at each rejection in a row.
 * Up to dense_max parameters C is formed by n products and factored by Cholesky in double; when
 * C + lambda I is not positive definite (negative curvature) lambda grows tenfold until it is.
 * Above dense_max, d comes from CG (cg.c); CG stopping on negative curvature also raises lambda.
 * State: "solver.damping" (lambda, nu). */
#include <stdlib.h>
#include <string.h>

#include "optim/solve_internal.h"

typedef struct {
  kvi__fg fg;
  kvi_real *lam;                  /* state: lambda, nu */
  kvi_real *x0, *d, *gt, *cgs[4]; /* scratch (n) */
  double *C, *A, *e;              /* dense: n x n twice, and a column (n) */
  kvi_real *col, *v;              /* dense: a product and its vector (n) */
  bool dense;
  kvi_curv_kind curv;
} kvi__newton;

static void kvi__newton_free(void *p) {
  kvi__newton *N = p;
  if (!N) return;
  kvi_free(N->fg.g), kvi_free(N->x0), kvi_free(N->d), kvi_free(N->gt), kvi_free(N->col);
  kvi_free(N->v);
  for (int i = 0; i < 4; i++) kvi_free(N->cgs[i]);
  free(N->C), free(N->A), free(N->e);
  free(N);
}

static kvi_status kvi__newton_setup(kvi_optimizer *o, const kvi_params *p, kvi_curv_kind k) {
  kvi__newton *N = calloc(1, sizeof *N);
  if (!N) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  o->impl = N, o->impl_free = kvi__newton_free;
  const size_t n = p->n ? p->n : 1, b = n * sizeof(kvi_real);
  int64_t two = 2;
  kvi_status s = kvi_optimizer_add_state(o, "solver.damping", 1, &two, &N->lam);
  if (s) return s;
  N->lam[0] = (kvi_real)o->cfg.damping, N->lam[1] = 2;
  N->curv = k;
  N->dense = (int64_t)p->n <= (int64_t)o->cfg.dense_max;
  N->fg.g = kvi_alloc(b), N->x0 = kvi_alloc(b), N->d = kvi_alloc(b), N->gt = kvi_alloc(b);
  bool ok = N->fg.g && N->x0 && N->d && N->gt;
  if (N->dense) {
    N->C = malloc(n * n * sizeof(double)), N->A = malloc(n * n * sizeof(double));
    N->e = malloc(n * sizeof(double)), N->col = kvi_alloc(b), N->v = kvi_alloc(b);
    ok = ok && N->C && N->A && N->e && N->col && N->v;
  } else {
    for (int i = 0; i < 4; i++) ok = ok && (N->cgs[i] = kvi_alloc(b)) != NULL;
  }
  if (!ok)
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for the %s solver (%zu parameters)", o->ops->name,
                    n);
  if (!(o->cfg.damping > 0))
    return kvi_fail(KVI_ERR_ARG, "damping %g must be positive", o->cfg.damping);
  return KVI_OK;
}

static kvi_status kvi__newton_init(kvi_optimizer *o, const kvi_params *p) {
  return kvi__newton_setup(o, p, KVI_CURV_HESSIAN);
}
static kvi_status kvi__lm_init(kvi_optimizer *o, const kvi_params *p) {
  return kvi__newton_setup(o, p, KVI_CURV_GGN);
}

/* C (n x n, double, symmetrized) from n products with the unit vectors. */
static kvi_status kvi__newton_matrix(kvi__newton *N, kvi_objective *f, kvi_solve_info *info) {
  const size_t n = f->n;
  memset(N->v, 0, n * sizeof *N->v);
  for (size_t j = 0; j < n; j++) {
    N->v[j] = 1;
    kvi_status s = kvi_objective_product(f, N->curv, N->v, N->col);
    N->v[j] = 0;
    if (s) return s;
    for (size_t i = 0; i < n; i++) N->C[i * n + j] = N->col[i];
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++) {
      const double a = 0.5 * (N->C[i * n + j] + N->C[j * n + i]);
      N->C[i * n + j] = N->C[j * n + i] = a;
    }
  for (size_t i = 0; i < n * n; i++)
    if (!isfinite(N->C[i])) info->breakdown = true;
  return KVI_OK;
}

/* d = -(C + lambda I)^-1 g by Cholesky; raises lambda tenfold while the factorization fails.
 * *q: the undamped model g.d + 1/2 d.C d. */
static kvi_status kvi__newton_dense_step(kvi__newton *N, size_t n, kvi_solve_info *info,
                                         double *q) {
  for (int tries = 0; tries < 60; tries++) {
    const double lam = N->lam[0];
    memcpy(N->A, N->C, n * n * sizeof(double));
    for (size_t i = 0; i < n; i++) N->A[i * n + i] += lam;
    if (kvi_potrf_f64((int)n, N->A, (int)n) == KVI_OK) {
      for (size_t i = 0; i < n; i++) N->e[i] = -(double)N->fg.g[i]; /* L L^T d = -g */
      for (size_t i = 0; i < n; i++) {
        double s = N->e[i];
        for (size_t k = 0; k < i; k++) s -= N->A[i * n + k] * N->e[k];
        N->e[i] = s / N->A[i * n + i];
      }
      for (size_t i = n; i-- > 0;) {
        double s = N->e[i];
        for (size_t k = i + 1; k < n; k++) s -= N->A[k * n + i] * N->e[k];
        N->e[i] = s / N->A[i * n + i];
      }
      double gd = 0, dCd = 0;
      for (size_t i = 0; i < n; i++) {
        double ci = 0;
        for (size_t k = 0; k < n; k++) ci += N->C[i * n + k] * N->e[k];
        gd += N->fg.g[i] * N->e[i], dCd += N->e[i] * ci;
        N->d[i] = (kvi_real)N->e[i];
      }
      *q = gd + 0.5 * dCd;
      return KVI_OK;
    }
    info->neg_curv = true; /* not positive definite: negative (or zero) curvature */
    N->lam[0] = (kvi_real)fmax(10 * lam, 1e-8);
  }
  return kvi_fail(KVI_ERR_LINALG, "C + lambda I not positive definite up to lambda %g",
                  (double)N->lam[0]);
}

/* d from CG on (C + lambda I) d = -g; *q the undamped model of d. */
static kvi_status kvi__newton_cg_step(kvi__newton *N, kvi_objective *f, const kvi_opt_config *c,
                                      kvi_solve_info *info, double *q) {
  const double lam = N->lam[0];
  kvi__cg_opts co = {N->curv, lam, c->cg_max, NULL, NULL, false, 1e-4, NULL, 0};
  kvi__cg_result r;
  kvi_status s = kvi__cg(f, N->fg.g, N->d, N->cgs, &co, &r);
  if (s) return s;
  info->inner += r.iters;
  info->neg_curv |= r.neg_curv, info->breakdown |= r.breakdown;
  if (r.neg_curv || r.breakdown) N->lam[0] = (kvi_real)fmax(10 * N->lam[0], 1e-8);
  if (r.iters == 0) { /* nothing usable: a gradient step of the damped model's scale */
    for (size_t i = 0; i < f->n; i++) N->d[i] = (kvi_real)(-N->fg.g[i] / N->lam[0]);
    *q = -kvi__dot(N->fg.g, N->fg.g, f->n) / (2 * N->lam[0]); /* the damped model's value */
    return KVI_OK;
  }
  *q = r.q - 0.5 * lam * kvi__dot(N->d, N->d, f->n);
  return KVI_OK;
}

static kvi_status kvi__newton_solve(kvi_optimizer *o, kvi_params *p, double lr, kvi_objective *f) {
  kvi__newton *N = o->impl;
  const size_t n = f->n;
  kvi_solve_info *info = &o->info;
  memset(info, 0, sizeof *info);
  info->rho = NAN;
  kvi_status s = kvi__fg_get(&N->fg, f);
  if (s) return s;
  info->f0 = info->f = N->fg.f, info->gnorm = kvi__nrm2(N->fg.g, n);
  info->damping = N->lam[0];
  if (info->gnorm == 0) return KVI_OK;
  memcpy(N->x0, f->x, n * sizeof *f->x);
  if (N->dense && (s = kvi__newton_matrix(N, f, info)) != KVI_OK) return s;
  if (info->breakdown) { /* a non-finite product: no model to trust here; reject, damp more */
    N->lam[0] = (kvi_real)fmin(10 * N->lam[0], 1e30);
    info->damping = N->lam[0], info->rejected = 1;
    return KVI_OK;
  }
  for (int tries = 0; tries < 30; tries++) {
    double q = 0, fn = NAN;
    s = N->dense ? kvi__newton_dense_step(N, n, info, &q)
                 : kvi__newton_cg_step(N, f, &o->cfg, info, &q);
    if (s) return s;
    for (size_t i = 0; i < n; i++) f->x[i] = N->x0[i] + N->d[i];
    if ((s = kvi_objective_eval(f, &fn, N->gt)) != KVI_OK) return s;
    const double rho = (fn - N->fg.f) / q;
    if (isfinite(fn) && kvi__finite(N->gt, n) && q < 0 && rho > 0) { /* accepted */
      const double t = 2 * rho - 1;
      N->lam[0] = (kvi_real)fmax(N->lam[0] * fmax(1.0 / 3, 1 - t * t * t), 1e-12);
      N->lam[1] = 2;
      info->f = fn, info->rho = rho, info->moved = true, info->step = kvi__nrm2(N->d, n);
      info->damping = N->lam[0];
      memcpy(N->fg.g, N->gt, n * sizeof *N->gt); /* the next iteration starts here */
      kvi__fg_set(&N->fg, f, fn);
      return KVI_OK;
    }
    info->rejected++;
    info->breakdown |= !isfinite(fn);
    memcpy(f->x, N->x0, n * sizeof *f->x);
    N->lam[0] = (kvi_real)fmin(N->lam[0] * N->lam[1], 1e30);
    N->lam[1] = (kvi_real)fmin(2 * N->lam[1], 1e6);
    info->damping = N->lam[0];
  }
  return KVI_OK; /* every trial rejected: f->x is x0, lambda raised */
}

const kvi_optimizer_ops kvi_newton_ops = {
    .name = "newton", .init = kvi__newton_init, .solve = kvi__newton_solve};
const kvi_optimizer_ops kvi_lm_ops = {
    .name = "lm", .init = kvi__lm_init, .solve = kvi__newton_solve};
