/* Line search for the strong Wolfe conditions (Nocedal & Wright 2006, algorithms 3.5 and 3.6;
 * docs/curv.md, eq. W1):
 *   phi(a) = f(x0 + a d) <= phi(0) + c1 a phi'(0),   |phi'(a)| <= c2 |phi'(0)|,
 * c1 = 1e-4, c2 = 0.9. The bracketing phase doubles a; the zoom phase takes the minimizer of the
 * cubic through the bracket's ends, kept at least a tenth of the bracket away from them
 * (bisection when the cubic has none). A non-finite value counts as too large: the step
 * shrinks. */
#include <string.h>

#include "optim/solve_internal.h"

typedef struct {
  double a, f, d; /* step, phi, phi' */
} kvi__pt;

typedef struct {
  kvi_objective *f;
  const kvi_real *x0, *dir;
  kvi_real *g;
  double f0, d0;
  int evals, max_eval;
} kvi__ls;

/* phi and phi' at a: f->x = x0 + a dir. 0 when evaluated, -1 out of evaluations. */
static int kvi__ls_at(kvi__ls *L, double a, kvi__pt *p, kvi_status *err) {
  if (L->evals >= L->max_eval) return -1;
  L->evals++;
  const size_t n = L->f->n;
  for (size_t i = 0; i < n; i++) L->f->x[i] = (kvi_real)(L->x0[i] + a * L->dir[i]);
  double fa = NAN;
  *err = kvi_objective_eval(L->f, &fa, L->g);
  if (*err) return -1;
  p->a = a, p->f = fa, p->d = kvi__dot(L->g, L->dir, n);
  if (!isfinite(p->f) || !isfinite(p->d)) p->f = INFINITY, p->d = NAN;
  return 0;
}

/* Minimizer of the cubic through (a, f, d) at lo and hi, safeguarded into the bracket. */
static double kvi__ls_cubic(const kvi__pt *lo, const kvi__pt *hi) {
  const double a = lo->a, b = hi->a, w = fabs(b - a);
  double t = 0.5 * (a + b);
  if (isfinite(hi->f) && isfinite(hi->d)) {
    const double d1 = lo->d + hi->d - 3 * (lo->f - hi->f) / (a - b);
    const double disc = d1 * d1 - lo->d * hi->d;
    if (disc >= 0) {
      const double d2 = (b > a ? 1 : -1) * sqrt(disc);
      const double c = b - (b - a) * (hi->d + d2 - d1) / (hi->d - lo->d + 2 * d2);
      if (isfinite(c)) t = c;
    }
  }
  const double l = fmin(a, b) + 0.1 * w, u = fmax(a, b) - 0.1 * w;
  return t < l || t > u ? 0.5 * (a + b) : t;
}

static int kvi__ls_zoom(kvi__ls *L, kvi__pt lo, kvi__pt hi, kvi__pt *out, kvi_status *err) {
  const double c1 = 1e-4, c2 = 0.9;
  for (;;) {
    kvi__pt p;
    if (fabs(hi.a - lo.a) < 1e-16 * fmax(1, fabs(lo.a))) break;
    if (kvi__ls_at(L, kvi__ls_cubic(&lo, &hi), &p, err)) break;
    if (p.f > L->f0 + c1 * p.a * L->d0 || p.f >= lo.f) {
      hi = p;
    } else {
      if (fabs(p.d) <= -c2 * L->d0) {
        *out = p;
        return 0;
      }
      if (p.d * (hi.a - lo.a) >= 0) hi = lo;
      lo = p;
    }
  }
  /* no strong-Wolfe point: the bracket's low end has sufficient decrease (one more evaluation
   * puts the point and its gradient back) */
  if (lo.a > 0 && !*err) {
    kvi__pt p;
    L->max_eval = L->evals + 1;
    if (kvi__ls_at(L, lo.a, &p, err) == 0 && p.f <= L->f0 + c1 * p.a * L->d0) {
      *out = p;
      return 0;
    }
  }
  return -1;
}

int kvi__wolfe(kvi_objective *f, const kvi_real *x0, double f0, const kvi_real *g0,
               const kvi_real *d, double a0, double *a, double *fa, kvi_real *ga, int max_eval,
               int *evals, kvi_status *err) {
  const double c1 = 1e-4, c2 = 0.9;
  kvi__ls L = {f, x0, d, ga, f0, kvi__dot(g0, d, f->n), 0, max_eval};
  *err = KVI_OK;
  int rc = -1;
  kvi__pt prev = {0, f0, L.d0}, cur, out = {0, f0, L.d0};
  if (L.d0 < 0 && isfinite(L.d0)) {
    double step = a0;
    for (int i = 0;; i++) {
      if (kvi__ls_at(&L, step, &cur, err)) break;
      if (cur.f > f0 + c1 * step * L.d0 || (i > 0 && cur.f >= prev.f)) {
        rc = kvi__ls_zoom(&L, prev, cur, &out, err);
        break;
      }
      if (fabs(cur.d) <= -c2 * L.d0) {
        out = cur, rc = 0;
        break;
      }
      if (cur.d >= 0) {
        rc = kvi__ls_zoom(&L, cur, prev, &out, err);
        break;
      }
      prev = cur, step *= 2;
    }
  }
  *evals = L.evals;
  if (rc == 0) { /* f->x and ga are at out.a already (the last evaluation) */
    *a = out.a, *fa = out.f;
    return 0;
  }
  memcpy(f->x, x0, f->n * sizeof *f->x);
  return -1;
}
