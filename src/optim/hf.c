/* Hessian-free optimization (Martens 2010; docs/curv.md, eq. HF1-HF3). Each iteration:
 *  1. the preconditioner M = (diag(G) + lambda)^0.75, diag(G) from the objective (for networks
 *     the pullback-sampling estimate, kept as a moving average with decay cfg.ema);
 *  2. preconditioned CG on (G + lambda I) d = -g (or the Hessian with hf_hessian), warm-started
 *     at 0.95 times the last step, stopped by Martens' relative-progress rule or cg_max;
 *  3. CG backtracking: of the iterates kept at ceil(1.3^j), the one with the lowest f, searching
 *     back from the last while f keeps decreasing;
 *  4. lambda by the reduction ratio rho = (f(x + d) - f(x)) / (g.d + 1/2 d.G d): x 3/2 when
 *     rho < 1/4, x 2/3 when rho > 3/4;
 *  5. a backtracking line search on a d (a <- 0.8 a) until f(x + a d) <= f(x) + 1e-2 a g.d;
 *     when none is found the step is rejected, lambda multiplied by 3/2 twice and the warm start
 *     dropped. Negative curvature (possible with the Hessian) or a non-finite product stop CG
 *     early and raise lambda tenfold.
 * State: "solver.damping" (lambda), "hf.prev" (the last step, n), "hf.diag" (n). */
#include <stdlib.h>
#include <string.h>

#include "optim/solve_internal.h"

#define KVI__HF_KEEP 24

typedef struct {
  kvi__fg fg;
  kvi_real *lam, *prev, *diag;         /* state */
  kvi_real *x0, *M, *d0, *cgs[4], *gt; /* scratch (n) */
  kvi_real *keep[KVI__HF_KEEP];        /* CG iterates (n each) */
} kvi__hf;

static void kvi__hf_free(void *p) {
  kvi__hf *H = p;
  if (!H) return;
  kvi_free(H->fg.g), kvi_free(H->x0), kvi_free(H->M), kvi_free(H->d0), kvi_free(H->gt);
  for (int i = 0; i < 4; i++) kvi_free(H->cgs[i]);
  for (int i = 0; i < KVI__HF_KEEP; i++) kvi_free(H->keep[i]);
  free(H);
}

static kvi_status kvi__hf_init(kvi_optimizer *o, const kvi_params *p) {
  kvi__hf *H = calloc(1, sizeof *H);
  if (!H) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  o->impl = H, o->impl_free = kvi__hf_free;
  if (!(o->cfg.damping > 0))
    return kvi_fail(KVI_ERR_ARG, "damping %g must be positive", o->cfg.damping);
  const size_t n = p->n ? p->n : 1, b = n * sizeof(kvi_real);
  int64_t one = 1, nn = (int64_t)n;
  kvi_status s = kvi_optimizer_add_state(o, "solver.damping", 1, &one, &H->lam);
  if (!s) s = kvi_optimizer_add_state(o, "hf.prev", 1, &nn, &H->prev);
  if (!s) s = kvi_optimizer_add_state(o, "hf.diag", 1, &nn, &H->diag);
  if (s) return s;
  H->lam[0] = (kvi_real)o->cfg.damping;
  H->fg.g = kvi_alloc(b), H->x0 = kvi_alloc(b), H->M = kvi_alloc(b), H->d0 = kvi_alloc(b);
  H->gt = kvi_alloc(b);
  bool ok = H->fg.g && H->x0 && H->M && H->d0 && H->gt;
  for (int i = 0; i < 4; i++) ok = ok && (H->cgs[i] = kvi_alloc(b)) != NULL;
  for (int i = 0; i < KVI__HF_KEEP; i++) ok = ok && (H->keep[i] = kvi_alloc(b)) != NULL;
  return ok ? KVI_OK : kvi_fail(KVI_ERR_NOMEM, "out of memory for HF (%zu parameters)", n);
}

/* M = (diag + lambda)^0.75 from the objective's diagonal estimate (none: no preconditioner). */
static kvi_status kvi__hf_precond(kvi__hf *H, kvi_objective *f, double ema, bool *have) {
  const size_t n = f->n;
  *have = false;
  if (!f->diag) return KVI_OK;
  kvi_status s = f->diag(f->user, H->M);
  if (s) return s;
  if (!kvi__finite(H->M, n)) return KVI_OK; /* a bad estimate: no preconditioner this time */
  const bool first = kvi__nrm2(H->diag, n) == 0;
  for (size_t i = 0; i < n; i++) {
    H->diag[i] = (kvi_real)(first ? H->M[i] : ema * H->diag[i] + (1 - ema) * H->M[i]);
    H->M[i] = (kvi_real)pow(fmax(H->diag[i], 0) + H->lam[0], 0.75);
  }
  *have = true;
  return KVI_OK;
}

/* f at x0 + d (*fd, gradient into gt when want_g). */
static kvi_status kvi__hf_try(kvi_objective *f, const kvi_real *x0, const kvi_real *d, double a,
                              double *fd, kvi_real *gt) {
  for (size_t i = 0; i < f->n; i++) f->x[i] = (kvi_real)(x0[i] + a * d[i]);
  kvi_status s = kvi_objective_eval(f, fd, gt);
  if (!s && !isfinite(*fd)) *fd = INFINITY;
  return s;
}

/* Step 3: the kept iterate with the lowest f, searching back from the last. */
static kvi_status kvi__hf_backtrack(kvi__hf *H, kvi_objective *f, const kvi__cg_result *r,
                                    int *best, double *fbest, kvi_solve_info *info) {
  int j = r->nkeep - 1;
  kvi_status s = kvi__hf_try(f, H->x0, H->keep[j], 1, fbest, NULL);
  info->inner++;
  for (; !s && j > 0; j--) {
    double fj;
    if ((s = kvi__hf_try(f, H->x0, H->keep[j - 1], 1, &fj, NULL)) != KVI_OK) break;
    info->inner++;
    if (!(fj < *fbest)) break;
    *fbest = fj;
  }
  *best = j;
  return s;
}

static kvi_status kvi__hf_solve(kvi_optimizer *o, kvi_params *p, double lr, kvi_objective *f) {
  kvi__hf *H = o->impl;
  const size_t n = f->n;
  kvi_solve_info *info = &o->info;
  memset(info, 0, sizeof *info);
  info->rho = NAN;
  kvi_status s = kvi__fg_get(&H->fg, f);
  if (s) return s;
  info->f0 = info->f = H->fg.f, info->gnorm = kvi__nrm2(H->fg.g, n), info->damping = H->lam[0];
  if (info->gnorm == 0) return KVI_OK;
  memcpy(H->x0, f->x, n * sizeof *f->x);
  bool pre = false;
  if ((s = kvi__hf_precond(H, f, o->cfg.ema, &pre)) != KVI_OK) return s;
  for (size_t i = 0; i < n; i++) H->d0[i] = (kvi_real)(0.95 * H->prev[i]);
  const kvi_curv_kind k = o->cfg.hf_hessian || !f->gvp ? KVI_CURV_HESSIAN : KVI_CURV_GGN;
  kvi__cg_opts co = {k,    H->lam[0], o->cfg.cg_max, pre ? H->M : NULL, H->d0,
                     true, 0,         H->keep,       KVI__HF_KEEP - 1};
  kvi__cg_result r;
  if ((s = kvi__cg(f, H->fg.g, H->keep[KVI__HF_KEEP - 1], H->cgs, &co, &r)) != KVI_OK) return s;
  info->inner = r.iters, info->neg_curv = r.neg_curv, info->breakdown = r.breakdown;
  if (r.neg_curv || r.breakdown) H->lam[0] = (kvi_real)(10 * H->lam[0]);
  int best = 0;
  double fd = INFINITY;
  if (r.nkeep > 0 && (s = kvi__hf_backtrack(H, f, &r, &best, &fd, info)) != KVI_OK) return s;
  const kvi_real *d = r.nkeep > 0 ? H->keep[best] : H->cgs[0];
  const double q = r.nkeep > 0 ? r.keep_q[best] - 0.5 * H->lam[0] * r.keep_dd[best] : 0;
  const double rho = (fd - H->fg.f) / q, gd = kvi__dot(H->fg.g, d, n);
  if (r.nkeep > 0 && q < 0 && isfinite(rho)) {
    info->rho = rho;
    if (rho < 0.25) H->lam[0] = (kvi_real)(H->lam[0] * 1.5);
    if (rho > 0.75) H->lam[0] = (kvi_real)fmax(H->lam[0] * (2.0 / 3), 1e-12);
  }
  /* step 5: backtracking on a */
  double a = 1, fa = fd;
  for (int t = 0; r.nkeep > 0 && gd < 0 && t < 40; t++, a *= 0.8) {
    if ((s = kvi__hf_try(f, H->x0, d, a, &fa, H->gt)) != KVI_OK) return s;
    info->inner++;
    if (fa <= H->fg.f + 1e-2 * a * gd && kvi__finite(H->gt, n)) break;
    info->rejected++;
    fa = INFINITY;
  }
  if (!(fa < INFINITY) || r.nkeep == 0 || !(gd < 0)) { /* rejected */
    memcpy(f->x, H->x0, n * sizeof *f->x);
    memset(H->prev, 0, n * sizeof *H->prev);
    H->lam[0] = (kvi_real)(H->lam[0] * 2.25);
    info->damping = H->lam[0];
    info->rejected++;
    return KVI_OK;
  }
  for (size_t i = 0; i < n; i++) H->prev[i] = (kvi_real)(a * d[i]);
  memcpy(H->fg.g, H->gt, n * sizeof *H->gt);
  kvi__fg_set(&H->fg, f, fa);
  info->f = fa, info->moved = true, info->step = a * kvi__nrm2(d, n), info->damping = H->lam[0];
  return KVI_OK;
}

const kvi_optimizer_ops kvi_hf_ops = {.name = "hf", .init = kvi__hf_init, .solve = kvi__hf_solve};
