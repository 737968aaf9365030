/* Proximal optimization (docs/curv.md, eq. P2): for each batch, K steps of Adam on
 *   Q(w) = loss(w) + lambda_FSD rho(f(x, w), f(x, w_k)) + lambda_WSD / 2 ||w - w_k||^2,
 * w_k the iterate at the batch's start, rho the function-space distance of the outputs on the
 * batch (the objective's fsd: the KL of the softmax outputs at w_k to those at w, or 1/2 beta
 * times the squared distance for the Gaussian likelihood) and the squared Euclidean distance in
 * weight space. The generic proximal objective of the lecture notes: lambda_FSD = lambda_WSD = 0
 * is K Adam steps on one batch. Objectives without a function space (fsd NULL) get the WSD term
 * only. State: "optim.m.<view>", "optim.v.<view>" (Adam's moments, kept across batches) and
 * "prox.t" (Adam's step count). */
#include <stdlib.h>
#include <string.h>

#include "optim/solve_internal.h"

typedef struct {
  kvi_real *m, *v, *t;  /* state */
  kvi_real *anchor, *g; /* scratch (n) */
} kvi__prox;

static void kvi__prox_free(void *p) {
  kvi__prox *P = p;
  if (!P) return;
  kvi_free(P->anchor), kvi_free(P->g);
  free(P);
}

static kvi_status kvi__prox_init(kvi_optimizer *o, const kvi_params *p) {
  const kvi_opt_config *c = &o->cfg;
  if (c->prox_steps < 1 || c->prox_steps > 100000 || !(c->prox_fsd >= 0) || !(c->prox_wsd >= 0))
    return kvi_fail(KVI_ERR_ARG, "proximal: K = %d steps, lambda_FSD %g, lambda_WSD %g",
                    c->prox_steps, c->prox_fsd, c->prox_wsd);
  kvi__prox *P = calloc(1, sizeof *P);
  if (!P) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  o->impl = P, o->impl_free = kvi__prox_free;
  int64_t one = 1;
  kvi_status s = kvi_optimizer_add_buffer(o, p, "optim.m", &P->m);
  if (!s) s = kvi_optimizer_add_buffer(o, p, "optim.v", &P->v);
  if (!s) s = kvi_optimizer_add_state(o, "prox.t", 1, &one, &P->t);
  if (s) return s;
  const size_t b = (p->n ? p->n : 1) * sizeof(kvi_real);
  P->anchor = kvi_alloc(b), P->g = kvi_alloc(b);
  return P->anchor && P->g ? KVI_OK : kvi_fail(KVI_ERR_NOMEM, "out of memory for proximal");
}

static kvi_status kvi__prox_solve(kvi_optimizer *o, kvi_params *p, double lr, kvi_objective *f) {
  kvi__prox *P = o->impl;
  const kvi_opt_config *c = &o->cfg;
  const size_t n = f->n;
  kvi_solve_info *info = &o->info;
  memset(info, 0, sizeof *info);
  info->rho = NAN;
  memcpy(P->anchor, f->x, n * sizeof *f->x);
  const bool fsd = f->fsd && c->prox_fsd > 0;
  kvi_status s = fsd ? f->fsd(f->user, c->prox_fsd) : KVI_OK;
  for (int k = 0; k < c->prox_steps && !s; k++) {
    double q;
    if ((s = kvi_objective_eval(f, &q, P->g)) != KVI_OK) break;
    double wsd = 0;
    for (size_t i = 0; i < n; i++) {
      const double dw = (double)f->x[i] - P->anchor[i];
      wsd += dw * dw;
      P->g[i] = (kvi_real)(P->g[i] + c->prox_wsd * dw);
    }
    q += 0.5 * c->prox_wsd * wsd;
    if (k == 0) info->f0 = q, info->gnorm = kvi__nrm2(P->g, n);
    info->f = q;
    if (!isfinite(q) || !kvi__finite(P->g, n)) { /* back to the batch's start */
      memcpy(f->x, P->anchor, n * sizeof *f->x);
      info->breakdown = true, info->rejected++;
      break;
    }
    const double t = ++P->t[0], c1 = 1 - pow(c->beta1, t), c2 = 1 - pow(c->beta2, t);
    for (size_t i = 0; i < n; i++) {
      const double g = P->g[i];
      P->m[i] = (kvi_real)(c->beta1 * P->m[i] + (1 - c->beta1) * g);
      P->v[i] = (kvi_real)(c->beta2 * P->v[i] + (1 - c->beta2) * g * g);
      f->x[i] = (kvi_real)(f->x[i] - lr / c1 * P->m[i] / (sqrt(P->v[i] / c2) + c->eps));
    }
    info->inner++;
  }
  kvi_status s2 = fsd ? f->fsd(f->user, 0) : KVI_OK;
  if (!s) s = s2;
  double dd = 0;
  for (size_t i = 0; i < n; i++) dd += ((double)f->x[i] - P->anchor[i]) * (f->x[i] - P->anchor[i]);
  info->step = sqrt(dd), info->moved = dd > 0;
  return s;
}

const kvi_optimizer_ops kvi_proximal_ops = {
    .name = "proximal", .init = kvi__prox_init, .solve = kvi__prox_solve};
