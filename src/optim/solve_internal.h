/* Private to src/optim: the parameter walk's variants, and helpers shared by the solvers
 * (docs/curv.md): vectors in double accumulation, the cached value and gradient of the current
 * point, CG and the line search. */
#ifndef KRONVI_OPTIM_SOLVE_INTERNAL_H
#define KRONVI_OPTIM_SOLVE_INTERNAL_H

#include <math.h>

#include "kronvi/optim.h"

#ifndef KVI__OPT_PAR_MIN
/* a parameter pass runs in parallel from this many elements */
#define KVI__OPT_PAR_MIN (1u << 18)
#endif
/* kvi_optimizer_walk without the views the ARD blocks b[0..nb) cover. */
void kvi__optimizer_walk_except(const kvi_params *p, kvi_opt_run_fn fn, void *ctx,
                                const kvi_ard_block *b, int nb);
/* The role of the view starting at element offset (KVI_ROLE_OTHER if none does). */
kvi_role kvi__optimizer_view_role(const kvi_params *p, size_t offset);

double kvi__dot(const kvi_real *a, const kvi_real *b, size_t n);
double kvi__nrm2(const kvi_real *a, size_t n);
/* y += a x */
void kvi__axpy(kvi_real *y, double a, const kvi_real *x, size_t n);
/* 1 if every entry is finite */
int kvi__finite(const kvi_real *x, size_t n);

/* The value and gradient at the current point, kept across iterations while the objective's id
 * stays the same (the last accepted point's, so the next iteration does not evaluate again). */
typedef struct {
  kvi_real *g; /* (n) */
  double f;
  uint64_t id;
  bool valid;
} kvi__fg;

/* f and g at f->x: the cached ones when valid for this id, else evaluated. Fails on a
 * non-finite value at the current point (nothing can be done from there). */
kvi_status kvi__fg_get(kvi__fg *c, kvi_objective *f);
void kvi__fg_set(kvi__fg *c, const kvi_objective *f, double fx); /* c->g already holds g(x) */

/* ---- conjugate gradient on (C + lambda I) d = -g (cg.c) ----------------------------------- */
typedef struct {
  kvi_curv_kind curv;
  double lambda;
  int max_iter;
  const kvi_real *precond; /* (n) diagonal M (CG solves with M^-1), NULL: none */
  const kvi_real *d0;      /* warm start (n), NULL: 0 */
  bool martens_stop;       /* stop on the relative progress of the quadratic (Martens 2010) */
  double rtol;             /* else: stop when ||r|| <= rtol ||g|| */
  kvi_real **keep;         /* HF backtracking: iterates saved at iterations ceil(1.3^j) */
  int nkeep_max;
} kvi__cg_opts;

typedef struct {
  int iters;
  bool neg_curv;  /* p.(C + lambda I) p <= 0 met */
  bool breakdown; /* a non-finite product */
  int nkeep;      /* iterates saved in keep[0..nkeep) (the last one is the returned d) */
  double keep_q[32], keep_dd[32]; /* their damped quadratic values and ||d||^2 */
  double q; /* damped quadratic q(d) = g.d + 1/2 d.(C + lambda I) d of the returned d */
} kvi__cg_result;

/* d (n): the CG solution, r, p, Ap, z: scratch (n each). */
kvi_status kvi__cg(kvi_objective *f, const kvi_real *g, kvi_real *d, kvi_real *const scratch[4],
                   const kvi__cg_opts *o, kvi__cg_result *res);

/* ---- strong-Wolfe line search (linesearch.c) ---------------------------------------------- */
/* From x0 (the point on entry, copied into x0) with value f0 and gradient g0 along d: finds a
 * step a with f(x0 + a d) <= f0 + c1 a g0.d and |g.d| <= c2 |g0.d|, leaves f->x = x0 + a d with
 * *fa and ga (n) there. Returns 0 on success, -1 when no such step was found within max_eval
 * evaluations (f->x is then x0 again). *evals counts the evaluations. */
int kvi__wolfe(kvi_objective *f, const kvi_real *x0, double f0, const kvi_real *g0,
               const kvi_real *d, double a0, double *a, double *fa, kvi_real *ga, int max_eval,
               int *evals, kvi_status *err);

#endif
