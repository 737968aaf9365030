/* An objective (kronvi/objective.h) seen as a structured-NGD problem (kronvi/geom.h): the
 * double-precision callbacks of kvi_lie_problem over the objective's kvi_real point, the dense
 * curvature assembled from products with the unit vectors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/objective.h"

static void kvi__lo_fail(kvi_lie_objective *a, kvi_status s) {
  if (!a->status) a->status = s;
}

/* f (and g when given) at x; NaN on failure. Remembers x as the products' point. */
static double kvi__lo_eval(kvi_lie_objective *a, const double *x, double *g) {
  kvi_objective *o = a->obj;
  for (size_t i = 0; i < o->n; i++) o->x[i] = (kvi_real)x[i];
  double f = NAN;
  kvi_status s = kvi_objective_eval(o, &f, g ? a->g : NULL);
  if (s) {
    kvi__lo_fail(a, s);
    return NAN;
  }
  if (g) {
    for (size_t i = 0; i < o->n; i++) g[i] = a->g[i];
    memcpy(a->at, x, o->n * sizeof *x);
    a->have_at = true;
  }
  return f;
}

static double kvi__lo_f(const double *x, void *user) { return kvi__lo_eval(user, x, NULL); }

static double kvi__lo_fg(const double *x, double *g, void *user) {
  return kvi__lo_eval(user, x, g);
}

/* Makes x the point of the products (a gradient there) unless it is already. */
static bool kvi__lo_at(kvi_lie_objective *a, const double *x) {
  kvi_objective *o = a->obj;
  const size_t n = o->n;
  if (a->have_at && !memcmp(a->at, x, n * sizeof *x)) return true;
  for (size_t i = 0; i < n; i++) o->x[i] = (kvi_real)x[i];
  double f;
  kvi_status s = kvi_objective_eval(o, &f, a->g);
  if (s) kvi__lo_fail(a, s);
  memcpy(a->at, x, n * sizeof *x), a->have_at = !s;
  return !s;
}

/* a->hv = the product with a->e; false (kept in a->status) on failure. */
static bool kvi__lo_product(kvi_lie_objective *a) {
  kvi_status s = kvi_objective_product(a->obj, a->kind, a->e, a->hv);
  if (s) kvi__lo_fail(a, s);
  return !s;
}

/* Hv at x (the HVP path of the estimators); NaN when the product fails. */
static void kvi__lo_hvp(const double *x, const double *v, double *Hv, void *user) {
  kvi_lie_objective *a = user;
  const size_t n = a->obj->n;
  for (size_t i = 0; i < n; i++) a->e[i] = (kvi_real)v[i];
  const bool ok = kvi__lo_at(a, x) && kvi__lo_product(a);
  for (size_t i = 0; i < n; i++) Hv[i] = ok ? a->hv[i] : NAN;
}

/* The Gauss-Newton diagonal at x from the objective's diag. */
static void kvi__lo_gdiag(const double *x, double *d, void *user) {
  kvi_lie_objective *a = user;
  const size_t n = a->obj->n;
  bool ok = kvi__lo_at(a, x);
  if (ok) {
    kvi_status s = a->obj->diag(a->obj->user, a->hv);
    if (s) kvi__lo_fail(a, s), ok = false;
  }
  for (size_t i = 0; i < n; i++) d[i] = ok ? a->hv[i] : NAN;
}

/* H (n x n) from n products H e_j at x; NaN everywhere when a product fails. */
static void kvi__lo_hess(const double *x, double *H, void *user) {
  kvi_lie_objective *a = user;
  const size_t n = a->obj->n;
  bool ok = kvi__lo_at(a, x);
  memset(a->e, 0, n * sizeof *a->e);
  for (size_t j = 0; ok && j < n; j++) {
    a->e[j] = 1;
    ok = kvi__lo_product(a);
    a->e[j] = 0;
    for (size_t i = 0; ok && i < n; i++) H[i * n + j] = a->hv[i];
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j <= i; j++) {
      const double v = ok ? 0.5 * (H[i * n + j] + H[j * n + i]) : NAN;
      H[i * n + j] = H[j * n + i] = v;
    }
}

kvi_status kvi_lie_objective_init(kvi_lie_objective *a, kvi_objective *obj, kvi_curv_kind k,
                                  double f_star, kvi_lie_problem *pb) {
  if (!a || !obj || !pb || !obj->x || !obj->eval)
    return kvi_fail(KVI_ERR_ARG, "lie_objective_init: NULL argument");
  memset(a, 0, sizeof *a);
  if (obj->n < 1 || obj->n > 1000000)
    return kvi_fail(KVI_ERR_ARG, "lie_objective_init: %zu parameters (1..10^6)", obj->n);
  if (!(k == KVI_CURV_GGN ? obj->gvp : obj->hvp))
    return kvi_fail(KVI_ERR_UNSUPPORTED, "the objective has no %s products",
                    k == KVI_CURV_GGN ? "Gauss-Newton" : "Hessian");
  const size_t n = obj->n;
  a->obj = obj, a->kind = k;
  a->g = malloc(3 * n * sizeof *a->g);
  a->at = malloc(n * sizeof *a->at);
  if (!a->g || !a->at) {
    kvi_lie_objective_free(a);
    return kvi_fail(KVI_ERR_NOMEM, "lie_objective_init: out of memory");
  }
  a->e = a->g + n, a->hv = a->e + n;
  memset(pb, 0, sizeof *pb);
  pb->dim = (int)n, pb->f = kvi__lo_f, pb->fg = kvi__lo_fg, pb->hess = kvi__lo_hess;
  pb->hvp = kvi__lo_hvp;
  if (k == KVI_CURV_GGN && obj->diag) pb->hdiag = kvi__lo_gdiag;
  pb->user = a, pb->f_star = f_star, pb->name = "objective";
  return KVI_OK;
}

void kvi_lie_objective_free(kvi_lie_objective *a) {
  if (!a) return;
  free(a->g), free(a->at);
  a->g = a->e = a->hv = NULL, a->at = NULL;
}
