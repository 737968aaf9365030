/* L-BFGS (Nocedal 1980; Liu & Nocedal 1989) with a strong-Wolfe line search (docs/curv.md,
 * eq. Q1-Q2). The inverse Hessian is the two-loop recursion over the last m pairs
 * s = x_{k+1} - x_k, y = g_{k+1} - g_k, with H0 = (s.y / y.y) I; a pair is kept only when
 * s.y > 1e-10 ||s|| ||y|| (curvature condition). Both gradients of a pair are taken on the same
 * objective (the same batch: in training, the line search of one step never leaves its batch).
 * A failed line search drops the memory and retries along -g; a second failure rejects the step.
 * State: "lbfgs.s" and "lbfgs.y" (m, n), "lbfgs.meta" (pairs kept, next slot). */
#include <stdlib.h>
#include <string.h>

#include "optim/solve_internal.h"

typedef struct {
  kvi__fg fg;
  kvi_real *S, *Y, *meta; /* state */
  kvi_real *x0, *d, *gn;  /* scratch (n) */
  double *alpha;          /* (m) */
} kvi__lbfgs;

static void kvi__lbfgs_free(void *p) {
  kvi__lbfgs *L = p;
  if (!L) return;
  kvi_free(L->fg.g), kvi_free(L->x0), kvi_free(L->d), kvi_free(L->gn), free(L->alpha);
  free(L);
}

static kvi_status kvi__lbfgs_init(kvi_optimizer *o, const kvi_params *p) {
  const int m = o->cfg.lbfgs_memory;
  if (m < 1 || m > 1000) return kvi_fail(KVI_ERR_ARG, "lbfgs memory %d outside [1, 1000]", m);
  kvi__lbfgs *L = calloc(1, sizeof *L);
  if (!L) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  o->impl = L, o->impl_free = kvi__lbfgs_free;
  const size_t n = p->n ? p->n : 1;
  int64_t shape[2] = {m, (int64_t)n}, two = 2;
  kvi_status s = kvi_optimizer_add_state(o, "lbfgs.s", 2, shape, &L->S);
  if (!s) s = kvi_optimizer_add_state(o, "lbfgs.y", 2, shape, &L->Y);
  if (!s) s = kvi_optimizer_add_state(o, "lbfgs.meta", 1, &two, &L->meta);
  if (s) return s;
  L->fg.g = kvi_alloc(n * sizeof(kvi_real)), L->x0 = kvi_alloc(n * sizeof(kvi_real));
  L->d = kvi_alloc(n * sizeof(kvi_real)), L->gn = kvi_alloc(n * sizeof(kvi_real));
  L->alpha = malloc((size_t)m * sizeof *L->alpha);
  if (!L->fg.g || !L->x0 || !L->d || !L->gn || !L->alpha)
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for L-BFGS (%zu parameters)", n);
  return KVI_OK;
}

/* d = -H g by the two-loop recursion over the kept pairs, newest first. */
static void kvi__lbfgs_direction(kvi__lbfgs *L, int m, const kvi_real *g, size_t n) {
  const int count = (int)L->meta[0], head = (int)L->meta[1];
  for (size_t i = 0; i < n; i++) L->d[i] = -g[i];
  double gamma = 1;
  for (int k = 0; k < count; k++) {
    const int j = ((head - 1 - k) % m + m) % m;
    const kvi_real *s = L->S + (size_t)j * n, *y = L->Y + (size_t)j * n;
    const double rho = 1 / kvi__dot(y, s, n);
    L->alpha[j] = rho * kvi__dot(s, L->d, n);
    kvi__axpy(L->d, -L->alpha[j], y, n);
    if (k == 0) gamma = kvi__dot(s, y, n) / kvi__dot(y, y, n);
  }
  for (size_t i = 0; i < n; i++) L->d[i] = (kvi_real)(gamma * L->d[i]);
  for (int k = count - 1; k >= 0; k--) {
    const int j = ((head - 1 - k) % m + m) % m;
    const kvi_real *s = L->S + (size_t)j * n, *y = L->Y + (size_t)j * n;
    const double beta = kvi__dot(y, L->d, n) / kvi__dot(y, s, n);
    kvi__axpy(L->d, L->alpha[j] - beta, s, n);
  }
}

/* Keeps the pair (x - x0, gn - g) when it has positive curvature. */
static void kvi__lbfgs_push(kvi__lbfgs *L, int m, const kvi_real *x, const kvi_real *g, size_t n) {
  const int head = (int)L->meta[1];
  kvi_real *s = L->S + (size_t)head * n, *y = L->Y + (size_t)head * n;
  for (size_t i = 0; i < n; i++) s[i] = x[i] - L->x0[i], y[i] = L->gn[i] - g[i];
  const double sy = kvi__dot(s, y, n);
  if (!(sy > 1e-10 * kvi__nrm2(s, n) * kvi__nrm2(y, n))) return;
  L->meta[1] = (kvi_real)((head + 1) % m);
  if (L->meta[0] < m) L->meta[0]++;
}

static kvi_status kvi__lbfgs_solve(kvi_optimizer *o, kvi_params *p, double lr, kvi_objective *f) {
  kvi__lbfgs *L = o->impl;
  const size_t n = f->n;
  const int m = o->cfg.lbfgs_memory;
  kvi_solve_info *info = &o->info;
  memset(info, 0, sizeof *info);
  info->rho = NAN;
  kvi_status s = kvi__fg_get(&L->fg, f);
  if (s) return s;
  info->f0 = info->f = L->fg.f, info->gnorm = kvi__nrm2(L->fg.g, n);
  if (info->gnorm == 0) return KVI_OK;
  memcpy(L->x0, f->x, n * sizeof *f->x);
  for (int attempt = 0; attempt < 2; attempt++) {
    double a0 = 1;
    if (attempt == 0 && L->meta[0] > 0) {
      kvi__lbfgs_direction(L, m, L->fg.g, n);
    } else { /* no memory (or it failed): steepest descent, a first step of length 1 */
      for (size_t i = 0; i < n; i++) L->d[i] = -L->fg.g[i];
      a0 = fmin(1, 1 / info->gnorm) * (attempt ? 1e-2 : 1);
    }
    if (!(kvi__dot(L->d, L->fg.g, n) < 0)) { /* not a descent direction: drop the memory */
      L->meta[0] = L->meta[1] = 0;
      info->rejected++;
      continue;
    }
    double a = 0, fa = 0;
    int evals = 0;
    int rc = kvi__wolfe(f, L->x0, L->fg.f, L->fg.g, L->d, a0, &a, &fa, L->gn, 25, &evals, &s);
    info->inner += evals;
    if (s) return s;
    if (rc == 0) {
      kvi__lbfgs_push(L, m, f->x, L->fg.g, n);
      memcpy(L->fg.g, L->gn, n * sizeof *L->gn);
      kvi__fg_set(&L->fg, f, fa);
      info->f = fa, info->moved = true;
      info->step = a * kvi__nrm2(L->d, n);
      return KVI_OK;
    }
    info->rejected++; /* the line search failed: drop the memory, then try -g */
    L->meta[0] = L->meta[1] = 0;
  }
  return KVI_OK; /* rejected: f->x is x0 again */
}

const kvi_optimizer_ops kvi_lbfgs_ops = {
    .name = "lbfgs", .init = kvi__lbfgs_init, .solve = kvi__lbfgs_solve};
