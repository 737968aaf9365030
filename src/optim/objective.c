/* The objective interface (kronvi/objective.h): counted calls, and the vector helpers and the
 * cached value / gradient shared by the solvers. Vectors are summed in double. */
#include <string.h>

#include "optim/solve_internal.h"

kvi_status kvi_objective_eval(kvi_objective *o, double *f, kvi_real *g) {
  if (!o || !o->eval || !f) return kvi_fail(KVI_ERR_ARG, "objective_eval: NULL argument");
  o->nf++;
  if (g) o->ng++;
  return o->eval(o->user, f, g);
}

kvi_status kvi_objective_product(kvi_objective *o, kvi_curv_kind k, const kvi_real *v,
                                 kvi_real *out) {
  if (!o || !v || !out) return kvi_fail(KVI_ERR_ARG, "objective_product: NULL argument");
  kvi_status (*fn)(void *, const kvi_real *, kvi_real *) = k == KVI_CURV_GGN ? o->gvp : o->hvp;
  if (!fn)
    return kvi_fail(KVI_ERR_UNSUPPORTED, "the objective has no %s products",
                    k == KVI_CURV_GGN ? "Gauss-Newton" : "Hessian");
  o->nhv++;
  return fn(o->user, v, out);
}

double kvi__dot(const kvi_real *a, const kvi_real *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

double kvi__nrm2(const kvi_real *a, size_t n) { return sqrt(kvi__dot(a, a, n)); }

void kvi__axpy(kvi_real *y, double a, const kvi_real *x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = (kvi_real)(y[i] + a * x[i]);
}

int kvi__finite(const kvi_real *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

kvi_status kvi__fg_get(kvi__fg *c, kvi_objective *f) {
  if (c->valid && c->id == f->id) return KVI_OK;
  kvi_status s = kvi_objective_eval(f, &c->f, c->g);
  if (s) return s;
  if (!isfinite(c->f) || !kvi__finite(c->g, f->n))
    return kvi_fail(KVI_ERR_NONFINITE,
                    "the objective is not finite at the current point (value %g): no step can "
                    "start there",
                    c->f);
  c->valid = true, c->id = f->id;
  return KVI_OK;
}

void kvi__fg_set(kvi__fg *c, const kvi_objective *f, double fx) {
  c->f = fx, c->id = f->id, c->valid = true;
}
