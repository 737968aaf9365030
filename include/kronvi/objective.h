/* kronvi objective (part of optim): a differentiable objective with curvature products, the
 * interface through which the Newton-type, quasi-Newton and proximal optimizers (docs/curv.md)
 * see a problem: a network's loss on a batch (the trainer builds one over the curvature module)
 * or a classic test problem (kronvi optimize). The solvers change the point x in place and call
 * back for values, gradients and products. */
#ifndef KRONVI_OBJECTIVE_H
#define KRONVI_OBJECTIVE_H

#include "kronvi/core.h"
#include "kronvi/geom.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which curvature a product or a solver uses. */
typedef enum {
  KVI_CURV_HESSIAN = 0, /* the exact Hessian */
  KVI_CURV_GGN /* the generalized Gauss-Newton matrix (PSD; = Fisher for the losses here) */
} kvi_curv_kind;

typedef struct kvi_objective {
  size_t n;    /* parameters */
  kvi_real *x; /* the point (n): the solvers write trial points into it, then evaluate */
  void *user;
  /* f(x) and, when g is not NULL, its gradient (n, overwritten). Sets the point of the
   * products: they are taken where the last call with a gradient was. */
  kvi_status (*eval)(void *user, double *f, kvi_real *g);
  /* out = H v and out = G v at that point; NULL when the problem has none. */
  kvi_status (*hvp)(void *user, const kvi_real *v, kvi_real *out);
  kvi_status (*gvp)(void *user, const kvi_real *v, kvi_real *out);
  /* An estimate of diag(G) at that point (n), for a preconditioner; NULL: none. */
  kvi_status (*diag)(void *user, kvi_real *d);
  /* Proximal optimization: from now on eval adds lambda times the function-space distance of
   * the outputs to those at the current x (lambda 0 ends it); NULL: no function space. */
  kvi_status (*fsd)(void *user, double lambda);
  uint64_t id;         /* changes whenever the function changes (a new batch): solvers keep the
                          last value and gradient only while it stays the same */
  int64_t nf, ng, nhv; /* evaluations, gradients, curvature products (counted below) */
} kvi_objective;

/* Counted calls; non-finite values are returned as they are (the solvers reject them). */
KVI_API kvi_status kvi_objective_eval(kvi_objective *o, double *f, kvi_real *g);
KVI_API kvi_status kvi_objective_product(kvi_objective *o, kvi_curv_kind k, const kvi_real *v,
                                         kvi_real *out);

/* What one iteration of a solver did (kvi_optimizer::info). */
typedef struct {
  double f0, f;   /* objective before and after (f = f0: rejected) */
  double gnorm;   /* ||gradient|| at the start */
  double damping; /* lambda after the iteration */
  double rho;     /* reduction ratio actual / predicted of the accepted step (NaN: none) */
  double step;    /* ||x_after - x_before|| */
  int inner;      /* CG iterations, line-search evaluations or inner steps */
  int rejected;   /* trial steps rejected (each raised the damping or shortened the step) */
  bool neg_curv;  /* negative curvature met (Cholesky failed, CG saw p.Ap <= 0) */
  bool breakdown; /* a non-finite product or value stopped CG or a trial */
  bool moved;     /* a step was accepted */
} kvi_solve_info;

/* ---- classic test problems (kronvi optimize) ---------------------------------------------- */
typedef enum {
  KVI_PROBLEM_ROSENBROCK = 0, /* chained: sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2, f* = 0 */
  KVI_PROBLEM_QUADRATIC,      /* 1/2 (x - x*)^T Q diag(lambda) Q^T (x - x*), lambda log-spaced
                                 in [1, cond], Q a random rotation: non-separable, f* = 0 */
  KVI_PROBLEM_LOGREG          /* L2-regularized binary logistic regression on given data; f* by
                                 Newton's method to machine precision at creation */
} kvi_problem_kind;

typedef struct kvi_problem kvi_problem;

typedef struct {
  kvi_problem_kind kind;
  int dim;     /* Rosenbrock, quadratic: the dimension */
  double cond; /* quadratic: condition number (1e4) */
  uint64_t seed;
  /* logistic regression: rows (rows, d) and labels in {0, 1}; dim = d + 1 (a bias) */
  const kvi_real *X;
  const int32_t *y;
  int64_t rows;
  int d;
  double l2; /* mu/2 ||w||^2 (1e-3) */
} kvi_problem_config;

KVI_API kvi_status kvi_problem_parse(kvi_problem_kind *k, const char *s);
KVI_API const char *kvi_problem_name(kvi_problem_kind k);
KVI_API kvi_status kvi_problem_create(kvi_problem **out, const kvi_problem_config *c);
KVI_API void kvi_problem_free(kvi_problem *p);
/* The objective, its x at the standard starting point (Rosenbrock (-1.2, 1, -1.2, 1, ...),
 * quadratic 0, logistic regression 0). Both products exist; diag is the exact diag(G). */
KVI_API kvi_objective *kvi_problem_objective(kvi_problem *p);
KVI_API double kvi_problem_fstar(const kvi_problem *p);

/* ---- an objective as a structured-NGD problem (kronvi/geom.h, kvi_lie_minimize) -------------
 * f and fg evaluate the objective at the double point rounded to kvi_real (counted in nf, ng);
 * hvp is the objective's product of kind k (Hessian or Gauss-Newton; counted in nhv), and hess
 * assembles the dense matrix from the n products with the unit vectors, symmetrized; hdiag (for
 * the Gauss-Newton kind, when the objective has diag) is the objective's diag(G); all at a
 * point whose gradient they reuse when fg was just called there. The callbacks cannot return a
 * status: a failing call yields NaN (which the solver rejects) and is kept in `status`. */
typedef struct {
  kvi_objective *obj;
  kvi_curv_kind kind;
  kvi_real *g, *e, *hv; /* n each: a gradient, a unit vector, a product */
  double *at;           /* n: the point of the last gradient (its products are taken there) */
  bool have_at;
  kvi_status status; /* the first failure of a callback (KVI_OK: none) */
} kvi_lie_objective;

/* Fills *pb (dim = obj->n, f_star as given, name "objective") over a; KVI_ERR_UNSUPPORTED when
 * the objective has no products of kind k. kvi_lie_objective_free releases a. */
KVI_API kvi_status kvi_lie_objective_init(kvi_lie_objective *a, kvi_objective *obj, kvi_curv_kind k,
                                          double f_star, kvi_lie_problem *pb);
KVI_API void kvi_lie_objective_free(kvi_lie_objective *a);

#ifdef __cplusplus
}
#endif
#endif
