/* Shared pieces of the Lie-group tests (include after kvi_test.h and geom_test_util.h): a
 * quadratic target with all of kvi_lie_problem's callbacks, a target seen through a linear change
 * of variables x = R y, and the group-invariance run that compares the two. */
#ifndef KVI_LIE_TEST_UTIL_H
#define KVI_LIE_TEST_UTIL_H

#include "geom_test_util.h"
#include "kvi_test.h"

enum { LT_MAXP = 16 }; /* the largest dimension the helpers below take */

/* l(w) = 1/2 (w - c)^T A (w - c) */
typedef struct {
  int p;
  const double *A, *c;
} lt_quad;

static double lt_quad_fg(const double *w, double *g, void *u) {
  const lt_quad *q = u;
  double f = 0;
  for (int i = 0; i < q->p; i++) {
    double s = 0;
    for (int j = 0; j < q->p; j++) s += q->A[i * q->p + j] * (w[j] - q->c[j]);
    if (g) g[i] = s;
    f += 0.5 * (w[i] - q->c[i]) * s;
  }
  return f;
}

static double lt_quad_f(const double *w, void *u) { return lt_quad_fg(w, NULL, u); }

static void lt_quad_hess(const double *w, double *H, void *u) {
  const lt_quad *q = u;
  (void)w;
  memcpy(H, q->A, sizeof(double) * q->p * q->p);
}

static void lt_quad_hvp(const double *w, const double *v, double *Hv, void *u) {
  const lt_quad *q = u;
  (void)w;
  gt_mul(q->p, 1, q->p, q->A, false, v, false, Hv);
}

static void lt_quad_hdiag(const double *w, double *d, void *u) {
  const lt_quad *q = u;
  (void)w;
  for (int i = 0; i < q->p; i++) d[i] = q->A[i * q->p + i];
}

/* The problem over q (dense Hessian only; hvp: also the products and the diagonal). */
static inline kvi_lie_problem lt_quad_problem(lt_quad *q, double f_star, const char *name,
                                              bool hvp) {
  kvi_lie_problem pb = {q->p, lt_quad_f, lt_quad_fg, lt_quad_hess, q, f_star, name, NULL, NULL};
  if (hvp) pb.hvp = lt_quad_hvp, pb.hdiag = lt_quad_hdiag;
  return pb;
}

/* l'(y) = l(R y): gradient R^T grad l, Hessian R^T H R. */
typedef struct {
  kvi_lie_problem base;
  const double *R; /* p x p */
} lt_transformed;

static double lt_tr_fg(const double *y, double *g, void *u) {
  const lt_transformed *t = u;
  const int p = t->base.dim;
  double x[LT_MAXP] = {0}, gx[LT_MAXP];
  gt_mul(p, 1, p, t->R, false, y, false, x);
  const double f = t->base.fg(x, g ? gx : NULL, t->base.user);
  if (g) gt_mul(p, 1, p, t->R, true, gx, false, g);
  return f;
}

static double lt_tr_f(const double *y, void *u) { return lt_tr_fg(y, NULL, u); }

static void lt_tr_hess(const double *y, double *H, void *u) {
  const lt_transformed *t = u;
  const int p = t->base.dim;
  double x[LT_MAXP] = {0}, Hx[LT_MAXP * LT_MAXP], T[LT_MAXP * LT_MAXP];
  gt_mul(p, 1, p, t->R, false, y, false, x);
  t->base.hess(x, Hx, t->base.user);
  gt_mul(p, p, p, t->R, true, Hx, false, T);
  gt_mul(p, p, p, T, false, t->R, false, H);
}

/* Runs iters steps (Hessian at the mean, beta = beta_B = 0.2) of structured NGD on base from
 * (mu, B) and on base(R .) from (y, Bp) (the caller's R^-1 mu and R^T B, or another factor of
 * the same precision); returns the largest relative difference of R y_t - mu_t and
 * Bp_t - R^T B_t, INFINITY when an iterate is not finite. mu, B, y, Bp are updated. */
static inline double lt_invariance_run(const kvi_lie_group *g, const kvi_lie_problem *base,
                                       const double *R, double *mu, double *B, double *y,
                                       double *Bp, int iters) {
  const int p = g->p;
  CHECK(p <= LT_MAXP && base->dim == p);
  lt_transformed t = {*base, R};
  kvi_lie_problem tp = {p, lt_tr_f, lt_tr_fg, lt_tr_hess, &t, 0, "transformed", NULL, NULL};
  double gm[LT_MAXP], X[LT_MAXP * LT_MAXP], Ry[LT_MAXP], RtB[LT_MAXP * LT_MAXP];
  kvi_rng rng = kvi_rng_stream(1, 1);
  kvi_lie_report rep = {0};
  double gap = 0;
  for (int it = 0; it < iters; it++) {
    CHECK_OK(kvi_lie_estimate(base, KVI_LIE_EST_MEAN, 1, 1, mu, B, g, &rng, gm, X, &rep));
    CHECK_OK(kvi_lie_step(g, mu, B, gm, X, 0.2, 0.2, NULL));
    CHECK_OK(kvi_lie_estimate(&tp, KVI_LIE_EST_MEAN, 1, 1, y, Bp, g, &rng, gm, X, &rep));
    CHECK_OK(kvi_lie_step(g, y, Bp, gm, X, 0.2, 0.2, NULL));
    gt_mul(p, 1, p, R, false, y, false, Ry);
    gt_mul(p, p, p, R, true, B, false, RtB);
    gap = fmax(gap, gt_maxdiff(Ry, mu, p) / (1 + gt_maxabs(mu, p)));
    gap = fmax(gap, gt_maxdiff(RtB, Bp, (size_t)p * p) / (1 + gt_maxabs(RtB, (size_t)p * p)));
    if (!isfinite(gt_maxabs(mu, p)) || !isfinite(gt_maxabs(y, p))) return INFINITY;
  }
  return gap;
}

#endif
