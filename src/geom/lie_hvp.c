/* The Hessian-vector-product path of the estimators at the mean and Price (docs/geom.md section
 * 6, "Hessian-vector products"). The B update reads X = R H R^T (R = B^-1) only where the
 * group's projection kappa does: the diagonal and the free off-diagonal entries (i, j). Column j
 * of X is R H r_j, r_j^T row j of R: one HVP. X being symmetric, a set of columns that covers
 * every free off-diagonal pair {i, j} (a vertex cover of the pattern's graph, chosen greedily)
 * gives all of them; a diagonal entry outside it is R_ii^2 H_ii from the Hessian's diagonal when
 * row i of R is a multiple of e_i (no free off-diagonal entry in row i of the group), else one
 * more HVP. Generic over the groups: only kvi__lie_free's pattern is used. */
#include <stdlib.h>
#include <string.h>

#include "geom/geom_internal.h"

void kvi__hvp_plan_free(kvi__hvp_plan *pl) {
  free(pl->cols), free(pl->col);
  pl->cols = NULL, pl->col = NULL;
}

/* Number of off-diagonal entries of row i of the pattern t. */
static int kvi__offdiag(const kvi__pat *t, int i) {
  int n = 0;
  for (int a = t->rp[i]; a < t->rp[i + 1]; a++) n += t->ci[a] != i;
  return n;
}

/* Greedy vertex cover of the graph of free off-diagonal pairs (u: the pattern with its
 * transpose): the vertex with the most uncovered pairs first; among equals, one whose diagonal
 * would otherwise need an HVP (cheap[i] false). Sets col[i] for the cover. deg: p ints. */
static void kvi__cover(const kvi__pat *u, const bool *cheap, unsigned char *col, int *deg) {
  const int p = u->p;
  for (int i = 0; i < p; i++) deg[i] = kvi__offdiag(u, i);
  for (;;) {
    int best = -1;
    for (int i = 0; i < p; i++)
      if (!col[i] && deg[i] > 0 &&
          (best < 0 || deg[i] > deg[best] || (deg[i] == deg[best] && cheap[best] && !cheap[i])))
        best = i;
    if (best < 0) return;
    col[best] = 1, deg[best] = 0;
    for (int a = u->rp[best]; a < u->rp[best + 1]; a++)
      if (!col[u->ci[a]] && u->ci[a] != best) deg[u->ci[a]]--;
  }
}

/* The flags of the columns for a non-Kronecker group. */
static bool kvi__plan_simple(kvi__hvp_plan *pl, const kvi__rop *R, bool have_hdiag) {
  const int p = pl->p;
  kvi__pat t, u;
  const kvi__pat *pt = &R->t, *pu = &R->u;
  if (R->dense && R->pats && R->pats->t.rp) { /* the run's */
    pt = &R->pats->t, pu = &R->pats->u;
  } else if (R->dense) { /* the operator keeps no pattern: build it */
    const kvi__sg sg = kvi__sg_of(&R->g, 0);
    if (!kvi__pat_make(&t, &sg, false)) return false;
    if (!kvi__pat_make(&u, &sg, true)) {
      kvi__pat_free(&t);
      return false;
    }
    pt = &t, pu = &u;
  }
  bool *cheap = malloc((size_t)p * sizeof *cheap);
  int *deg = malloc((size_t)p * sizeof *deg);
  const bool ok = cheap && deg;
  if (ok) {
    for (int i = 0; i < p; i++) cheap[i] = have_hdiag && kvi__offdiag(pt, i) == 0;
    kvi__cover(pu, cheap, pl->col, deg);
    for (int i = 0; i < p; i++) /* the diagonal outside the cover: hdiag, or an HVP */
      if (!pl->col[i]) {
        if (cheap[i])
          pl->need_hdiag = true;
        else
          pl->col[i] = 1;
      }
  }
  free(cheap), free(deg);
  if (pt == &t) kvi__pat_free(&t), kvi__pat_free(&u);
  return ok;
}

bool kvi__hvp_plan_make(kvi__hvp_plan *pl, const kvi__rop *R, bool have_hdiag) {
  memset(pl, 0, sizeof *pl);
  const int p = R->p;
  pl->p = p;
  pl->col = calloc((size_t)p, sizeof *pl->col);
  pl->cols = malloc((size_t)p * sizeof *pl->cols);
  bool ok = pl->col && pl->cols;
  if (ok && R->g.kind == KVI_LIE_KRON) /* the partial traces read all of X */
    memset(pl->col, 1, (size_t)p);
  else if (ok)
    ok = kvi__plan_simple(pl, R, have_hdiag);
  if (!ok) {
    kvi__hvp_plan_free(pl);
    return false;
  }
  for (int j = 0; j < p; j++)
    if (pl->col[j]) pl->cols[pl->ncol++] = j;
  return true;
}

void kvi__hvp_add(const kvi_lie_problem *pb, const kvi__hvp_plan *pl, const kvi__rop *R,
                  const double *x, double c, double *X, double *w, kvi_lie_report *r) {
  const int p = pl->p;
  double *h = w, *y = w + p;
  for (int a = 0; a < pl->ncol; a++) { /* X[:, j] += c R H r_j */
    const int j = pl->cols[a];
    pb->hvp(x, R->R + (size_t)j * p, h, pb->user), r->hvps++;
    kvi__rop_mv(R, h, y, false);
    for (int i = 0; i < p; i++) X[(size_t)i * p + j] += c * y[i];
  }
  if (!pl->need_hdiag) return;
  pb->hdiag(x, h, pb->user), r->hdiags++;
  for (int i = 0; i < p; i++) /* X_ii = R_ii^2 H_ii */
    if (!pl->col[i]) {
      const double rii = R->R[(size_t)i * p + i];
      X[(size_t)i * p + i] += c * rii * rii * h[i];
    }
}

void kvi__hvp_finish(const kvi__hvp_plan *pl, double *X) {
  const int p = pl->p;
  for (int a = 0; a < pl->ncol; a++) { /* column j: X_ji = X_ij, averaged with column i */
    const int j = pl->cols[a];
    for (int i = 0; i < p; i++) {
      double *x = X + (size_t)i * p + j, *y = X + (size_t)j * p + i;
      if (!pl->col[i])
        *y = *x;
      else if (i < j)
        *x = *y = 0.5 * (*x + *y);
    }
  }
}
