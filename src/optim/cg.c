/* Preconditioned conjugate gradient on the damped quadratic (docs/curv.md, eq. C1):
 *   q(d) = g.d + 1/2 d.(C + lambda I) d,  minimized by (C + lambda I) d = -g,
 * C the Hessian or the GGN, M a diagonal preconditioner. Options: a warm start d0 (HF),
 * Martens' (2010) stop on the relative progress of q, iterates kept at ceil(1.3^j) for HF's
 * backtracking. Safety: a direction with p.(C + lambda I) p <= 0 (negative curvature) or a
 * non-finite product stops CG with the last good iterate (0 on the first iteration), and the
 * result says so: the solver then raises the damping. */
#include <string.h>

#include "optim/solve_internal.h"

/* Ap = (C + lambda I) p; 0 when the product was finite. */
static kvi_status kvi__cg_apply(kvi_objective *f, const kvi__cg_opts *o, const kvi_real *p,
                                kvi_real *Ap, bool *bad) {
  kvi_status s = kvi_objective_product(f, o->curv, p, Ap);
  if (s) return s;
  kvi__axpy(Ap, o->lambda, p, f->n);
  *bad = !kvi__finite(Ap, f->n);
  return KVI_OK;
}

static void kvi__cg_precond(kvi_real *z, const kvi_real *r, const kvi__cg_opts *o, size_t n) {
  for (size_t i = 0; i < n; i++) z[i] = o->precond ? (kvi_real)(r[i] / o->precond[i]) : r[i];
}

/* Saves d as a backtracking candidate at iterations ceil(1.3^j) and at the end. */
static void kvi__cg_keep(const kvi__cg_opts *o, kvi__cg_result *res, const kvi_real *d, size_t n,
                         double q, double dd, int iter, bool last, double *next) {
  if (!o->keep || res->nkeep >= o->nkeep_max || res->nkeep >= 32) return;
  if (!last && iter < (int)ceil(*next)) return;
  while (*next <= iter) *next *= 1.3;
  if (res->nkeep > 0 && last && res->keep_q[res->nkeep - 1] == q) return; /* kept already */
  memcpy(o->keep[res->nkeep], d, n * sizeof *d);
  res->keep_q[res->nkeep] = q, res->keep_dd[res->nkeep++] = dd;
}

kvi_status kvi__cg(kvi_objective *f, const kvi_real *g, kvi_real *d, kvi_real *const scratch[4],
                   const kvi__cg_opts *o, kvi__cg_result *res) {
  const size_t n = f->n;
  kvi_real *r = scratch[0], *p = scratch[1], *Ap = scratch[2], *z = scratch[3];
  memset(res, 0, sizeof *res);
  bool bad = false;
  kvi_status s = KVI_OK;
  /* r = -g - A d0 */
  if (o->d0 && kvi__nrm2(o->d0, n) > 0) {
    memcpy(d, o->d0, n * sizeof *d);
    if ((s = kvi__cg_apply(f, o, d, Ap, &bad)) != KVI_OK) return s;
    if (bad) memset(d, 0, n * sizeof *d), memset(Ap, 0, n * sizeof *Ap), res->breakdown = true;
  } else {
    memset(d, 0, n * sizeof *d), memset(Ap, 0, n * sizeof *Ap);
  }
  for (size_t i = 0; i < n; i++) r[i] = -g[i] - Ap[i];
  kvi__cg_precond(z, r, o, n);
  memcpy(p, z, n * sizeof *p);
  double rz = kvi__dot(r, z, n), gnorm = kvi__nrm2(g, n), next = 1.3;
  /* q(d) = -1/2 d.(r - g): from r = -g - A d */
  double q = 0, qhist[1024];
  for (size_t i = 0; i < n; i++) q += -0.5 * (double)d[i] * ((double)r[i] - g[i]);
  int it = 0;
  for (; it < o->max_iter; it++) {
    if (o->martens_stop ? false : kvi__nrm2(r, n) <= o->rtol * gnorm) break;
    if ((s = kvi__cg_apply(f, o, p, Ap, &bad)) != KVI_OK) return s;
    const double pAp = kvi__dot(p, Ap, n);
    if (bad || !isfinite(pAp)) {
      res->breakdown = true;
      break;
    }
    if (pAp <= 0) {
      res->neg_curv = true;
      break;
    }
    const double alpha = rz / pAp;
    kvi__axpy(d, alpha, p, n);
    kvi__axpy(r, -alpha, Ap, n);
    q = 0;
    for (size_t i = 0; i < n; i++) q += -0.5 * (double)d[i] * ((double)r[i] - g[i]);
    qhist[it % 1024] = q;
    kvi__cg_keep(o, res, d, n, q, kvi__dot(d, d, n), it + 1, false, &next);
    kvi__cg_precond(z, r, o, n);
    const double rz1 = kvi__dot(r, z, n);
    /* Martens: stop when q improved by less than k * 5e-4 relative over the last k steps */
    const int k = it + 1 > 100 ? (it + 1) / 10 : 10;
    if (o->martens_stop && it + 1 > k && q < 0 && (q - qhist[(it - k) % 1024]) / q < k * 5e-4) {
      it++;
      break;
    }
    if (rz1 == 0) {
      it++;
      break;
    }
    for (size_t i = 0; i < n; i++) p[i] = (kvi_real)(z[i] + rz1 / rz * p[i]);
    rz = rz1;
  }
  res->iters = it;
  res->q = q;
  kvi__cg_keep(o, res, d, n, q, kvi__dot(d, d, n), it, true, &next);
  return KVI_OK;
}
