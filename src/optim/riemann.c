/* Riemannian SGD, momentum and Adam for the factors of Matrix Normal posteriors (docs/geom.md
 * section 7). Each MN layer's covariance U (x) V (U = A A^T over inputs, V = B B^T over
 * outputs) is a point of the Kronecker manifold of SPD factors with the affine-invariant metric
 * of the nm x nm covariance (twice the Fisher metric of the posterior); the means, biases and
 * every other view take Adam as the adam optimizer does.
 *
 * Per step and MN layer (whitened coordinates in the Cholesky frames of A and B):
 *   PsiA = A^T dL/dU A, PsiB = B^T dL/dV B               (kvi_psd_chol_whiten, (G14))
 *   (P, Q) = 2 N rgrad = 2 N [(PsiA - tr/n)/m + s/2, (PsiB - tr/m)/n + s/2]   ((G17): the
 *            natural gradient of the whole negative ELBO, N the training size)
 *   riemann-sgd       D = (P, Q)
 *   riemann-momentum  D <- mu D + (P, Q)   (frame transport: the whitened coordinates stay)
 *   riemann-adam      m <- b1 m + (1-b1)(P, Q);  vU <- b2 vU + (1-b2)|P|^2/n^2, likewise vV;
 *                     D = (mhat_P / (sqrt(vhat_U) + eps), mhat_Q / (sqrt(vhat_V) + eps))
 *   D put back in the horizontal gauge, S = -lr D scaled to |S|_F <= 1 if larger (damped),
 *   A <- A h(tau(S_P)), B <- B h(tau(S_Q))  (the Cholesky retraction (G8)), then the balance
 *   (1/n) log det U = (1/m) log det V (G19).
 * State: "optim.m.<view>" and "optim.v.<view>" (Adam's moments; for the A and B views optim.m
 * holds the whitened momentum, full symmetric), "riemann.v.<layer>" (2: vU, vV) for
 * riemann-adam. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kronvi/geom.h"
#include "kronvi/optim.h"

typedef struct {
  const kvi_dense *w;
  int n, m;
  kvi_real *v; /* riemann.v.<layer> (adam), NULL otherwise */
} kvi__rl;

typedef struct {
  int nl;
  kvi__rl *l;
  size_t (*range)[2]; /* offset and size of every bound A and B view, skipped by Adam */
  int nrange;
  kvi_real *PA, *PB, *work, *keep; /* scratch */
  int64_t damped, rejected;
} kvi__riem;

static kvi__riem *kvi__r(const kvi_optimizer *o) { return o->impl; }

static void kvi__riem_free(void *impl) {
  kvi__riem *k = impl;
  if (!k) return;
  free(k->l), free(k->range);
  kvi_free(k->PA), kvi_free(k->PB), kvi_free(k->work), kvi_free(k->keep);
  free(k);
}

static kvi_status kvi__riem_init(kvi_optimizer *o, const kvi_params *p) {
  kvi_real *b;
  kvi__riem *k = calloc(1, sizeof *k);
  if (!k) return kvi_fail(KVI_ERR_NOMEM, "out of memory for the Riemannian optimizer");
  o->impl = k;
  o->impl_free = kvi__riem_free;
  kvi_status s = kvi_optimizer_add_buffer(o, p, "optim.m", &b);
  if (!s) s = kvi_optimizer_add_buffer(o, p, "optim.v", &b);
  return s;
}

extern const kvi_optimizer_ops kvi_riemann_adam_ops, kvi_riemann_momentum_ops;

static kvi_status kvi__riem_bind(kvi_optimizer *o, const kvi_params *p, kvi_dense *const *w,
                                 int nw) {
  kvi__riem *k = kvi__r(o);
  if (k->l) return kvi_fail(KVI_ERR_STATE, "%s: layers bound already", o->ops->name);
  k->l = calloc((size_t)(nw > 0 ? nw : 1), sizeof *k->l);
  k->range = calloc((size_t)(2 * nw + 1), sizeof *k->range);
  if (!k->l || !k->range) return kvi_fail(KVI_ERR_NOMEM, "out of memory for %s", o->ops->name);
  size_t big = 1;
  for (int i = 0; i < nw; i++) {
    const kvi_dense *d = w[i];
    if ((d->family != KVI_FAMILY_MN && d->family != KVI_FAMILY_MNDIAG) || d->iA < 0 || d->iB < 0)
      return kvi_fail(KVI_ERR_UNSUPPORTED,
                      "%s: layer '%s' is %s; the Riemannian optimizers move the factors of Matrix "
                      "Normal posteriors (--family mn or mn-diag)",
                      o->ops->name, d->name, kvi_family_name(d->family));
    kvi__rl *L = &k->l[k->nl++];
    L->w = d, L->n = d->n, L->m = d->m;
    if (o->ops == &kvi_riemann_adam_ops) {
      char name[96];
      int64_t two = 2;
      snprintf(name, sizeof name, "riemann.v.%s", d->name);
      kvi_status s = kvi_optimizer_add_state(o, name, 1, &two, &L->v);
      if (s) return s;
    }
    for (int v = 0; v < 2; v++) {
      const kvi_view *vw = &p->views[v ? d->iB : d->iA];
      k->range[k->nrange][0] = vw->offset, k->range[k->nrange++][1] = vw->size;
    }
    big = KVI_MAX(big, (size_t)KVI_MAX(d->n, d->m));
  }
  const size_t sq = big * big;
  k->PA = kvi_alloc(sq * sizeof(kvi_real));
  k->PB = kvi_alloc(sq * sizeof(kvi_real));
  k->work = kvi_alloc(3 * sq * sizeof(kvi_real));
  k->keep = kvi_alloc(sq * sizeof(kvi_real));
  if (!k->PA || !k->PB || !k->work || !k->keep)
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for %s", o->ops->name);
  return KVI_OK;
}

/* ---- Adam on everything but the bound factors ------------------------------------------- */
typedef struct {
  const kvi__riem *k;
  kvi_real b1, b2, step, rc2, eps, decay;
  kvi_real *x, *m, *v, *g;
} kvi__radam;

static void kvi__adam_run(void *ctx, size_t off, size_t len, kvi_role role) {
  const kvi__radam *a = ctx;
  for (int r = 0; r < a->k->nrange; r++) /* a run lies inside one view */
    if (off >= a->k->range[r][0] && off < a->k->range[r][0] + a->k->range[r][1]) return;
  const kvi_real decay = role == KVI_ROLE_MEAN ? a->decay : 1;
  kvi_real *x = a->x + off, *m = a->m + off, *v = a->v + off;
  const kvi_real *g = a->g + off;
  for (size_t i = 0; i < len; i++) {
    m[i] = a->b1 * m[i] + (1 - a->b1) * g[i];
    v[i] = a->b2 * v[i] + (1 - a->b2) * g[i] * g[i];
    x[i] = decay * x[i] - a->step * m[i] / (KVI_SQRT(v[i]) * a->rc2 + a->eps);
  }
}

static void kvi__adam_rest(kvi_optimizer *o, kvi_params *p, double lr) {
  const kvi_opt_config *c = &o->cfg;
  const double c1 = 1 - pow(c->beta1, (double)o->t), c2 = 1 - pow(c->beta2, (double)o->t);
  kvi__radam a = {kvi__r(o),
                  (kvi_real)c->beta1,
                  (kvi_real)c->beta2,
                  (kvi_real)(lr / c1),
                  (kvi_real)(1 / sqrt(c2)),
                  (kvi_real)c->eps,
                  (kvi_real)(1 - lr * c->weight_decay),
                  p->data,
                  o->buffer[0],
                  o->buffer[1],
                  p->grad};
  kvi_optimizer_walk(p, kvi__adam_run, &a);
}

/* ---- the factors ------------------------------------------------------------------------ */
static double kvi__trace(const kvi_real *X, int n) {
  double t = 0;
  for (int i = 0; i < n; i++) t += X[(size_t)i * n + i];
  return t;
}

static double kvi__norm2(const kvi_real *X, size_t n) {
  double t = 0;
  for (size_t i = 0; i < n; i++) t += (double)X[i] * X[i];
  return t;
}

static bool kvi__finite(const kvi_real *X, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(X[i])) return false;
  return true;
}

/* X <- a X + (diagonal shift d) over an n x n matrix. */
static void kvi__scale_shift(kvi_real *X, int n, double a, double d) {
  for (size_t i = 0; i < (size_t)n * n; i++) X[i] = (kvi_real)(a * X[i]);
  for (int i = 0; i < n; i++) X[(size_t)i * n + i] += (kvi_real)d;
}

/* The Riemannian gradient times c (G17) from the whitened gradients, in place. */
static void kvi__rgrad(kvi_real *PA, kvi_real *PB, int n, int m, double c) {
  const double tu = kvi__trace(PA, n), tv = kvi__trace(PB, m), nm = (double)n * m;
  const double s = 0.5 * (tu + tv) / nm;
  kvi__scale_shift(PA, n, c / m, c * (-tu / nm + 0.5 * s));
  kvi__scale_shift(PB, m, c / n, c * (-tv / nm + 0.5 * s));
}

/* The horizontal gauge tr(P)/n = tr(Q)/m (G16). */
static void kvi__horizontal(kvi_real *P, kvi_real *Q, int n, int m) {
  const double a = kvi__trace(P, n) / n, b = kvi__trace(Q, m) / m;
  kvi__scale_shift(P, n, 1, 0.5 * (a + b) - a);
  kvi__scale_shift(Q, m, 1, 0.5 * (a + b) - b);
}

/* D (the step direction) from the gradient (P, Q) by the variant, in place in (P, Q). */
static void kvi__direction(kvi_optimizer *o, kvi__rl *L, kvi_real *P, kvi_real *Q, kvi_real *mA,
                           kvi_real *mB) {
  const int n = L->n, m = L->m;
  const size_t nn = (size_t)n * n, mm = (size_t)m * m;
  const kvi_opt_config *c = &o->cfg;
  if (o->ops ==
      &kvi_riemann_momentum_ops) { /* riemann-momentum: heavy ball in whitened coordinates */
    const kvi_real mu = (kvi_real)c->momentum;
    for (size_t i = 0; i < nn; i++) P[i] = mA[i] = mu * mA[i] + P[i];
    for (size_t i = 0; i < mm; i++) Q[i] = mB[i] = mu * mB[i] + Q[i];
  } else if (L->v) { /* riemann-adam: one second moment per factor */
    const kvi_real b1 = (kvi_real)c->beta1;
    const double b2 = c->beta2;
    L->v[0] = (kvi_real)(b2 * L->v[0] + (1 - b2) * kvi__norm2(P, nn) / (double)nn);
    L->v[1] = (kvi_real)(b2 * L->v[1] + (1 - b2) * kvi__norm2(Q, mm) / (double)mm);
    const double c1 = 1 - pow(c->beta1, (double)o->t), c2 = 1 - pow(b2, (double)o->t);
    const double dA = 1 / (c1 * (sqrt(L->v[0] / c2) + c->eps));
    const double dB = 1 / (c1 * (sqrt(L->v[1] / c2) + c->eps));
    for (size_t i = 0; i < nn; i++) {
      mA[i] = b1 * mA[i] + (1 - b1) * P[i];
      P[i] = (kvi_real)(mA[i] * dA);
    }
    for (size_t i = 0; i < mm; i++) {
      mB[i] = b1 * mB[i] + (1 - b1) * Q[i];
      Q[i] = (kvi_real)(mB[i] * dB);
    }
  }
  kvi__horizontal(P, Q, n, m);
}

/* (A, B) -> (c A, B / c) with (1/n) sum log A_ii = (1/m) sum log B_jj afterwards (G19): the
 * log-diagonals shift, the strict lower triangles scale. */
static void kvi__balance(kvi_real *A, kvi_real *B, int n, int m) {
  double a = 0, b = 0;
  for (int i = 0; i < n; i++) a += A[(size_t)i * n + i];
  for (int j = 0; j < m; j++) b += B[(size_t)j * m + j];
  const double d = 0.5 * (b / m - a / n), ea = exp(d), eb = exp(-d); /* A e^d, B e^-d */
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < i; j++) A[(size_t)i * n + j] = (kvi_real)(A[(size_t)i * n + j] * ea);
    A[(size_t)i * n + i] = (kvi_real)(A[(size_t)i * n + i] + d);
  }
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < i; j++) B[(size_t)i * m + j] = (kvi_real)(B[(size_t)i * m + j] * eb);
    B[(size_t)i * m + i] = (kvi_real)(B[(size_t)i * m + i] - d);
  }
}

static void kvi__layer_step(kvi_optimizer *o, kvi__riem *k, kvi__rl *L, kvi_params *p, double lr) {
  const int n = L->n, m = L->m;
  const size_t nn = (size_t)n * n, mm = (size_t)m * m;
  kvi_real *A = kvi_params_data(p, L->w->iA), *B = kvi_params_data(p, L->w->iB);
  kvi_real *mA = o->buffer[0] + p->views[L->w->iA].offset;
  kvi_real *mB = o->buffer[0] + p->views[L->w->iB].offset;
  kvi_psd_chol_whiten(n, k->PA, A, kvi_params_grad(p, L->w->iA), k->work);
  kvi_psd_chol_whiten(m, k->PB, B, kvi_params_grad(p, L->w->iB), k->work);
  if (!kvi__finite(k->PA, nn) || !kvi__finite(k->PB, mm)) {
    k->rejected++; /* a non-finite gradient never enters the state */
    return;
  }
  const double N = o->cfg.data_size > 0 ? o->cfg.data_size : 1;
  kvi__rgrad(k->PA, k->PB, n, m, 2 * N);
  kvi__direction(o, L, k->PA, k->PB, mA, mB);
  double scale = -lr, nrm = sqrt(kvi__norm2(k->PA, nn) + kvi__norm2(k->PB, mm)) * lr;
  if (nrm > 1) scale /= nrm, k->damped++; /* whitened step of norm at most 1 */
  kvi__scale_shift(k->PA, n, scale, 0);
  kvi__scale_shift(k->PB, m, scale, 0);
  memcpy(k->keep, A, nn * sizeof *A);
  kvi_status s = kvi_psd_chol_retract(n, A, k->PA, k->work);
  if (!s) s = kvi_psd_chol_retract(m, B, k->PB, k->work);
  if (s) { /* rejected: A as it was (B is untouched when its own retraction fails) */
    memcpy(A, k->keep, nn * sizeof *A);
    k->rejected++;
    return;
  }
  kvi__balance(A, B, n, m);
}

static kvi_status kvi__riem_step(kvi_optimizer *o, kvi_params *p, double lr) {
  kvi__riem *k = kvi__r(o);
  if (!k->l)
    return kvi_fail(KVI_ERR_STATE, "%s: no layers bound (kvi_optimizer_bind)", o->ops->name);
  for (int l = 0; l < k->nl; l++) kvi__layer_step(o, k, &k->l[l], p, lr);
  kvi__adam_rest(o, p, lr);
  return KVI_OK;
}

#define KVI__RIEM_OPS(NAME) \
  { .name = NAME, .init = kvi__riem_init, .step = kvi__riem_step, .bind = kvi__riem_bind }

const kvi_optimizer_ops kvi_riemann_sgd_ops = KVI__RIEM_OPS("riemann-sgd");
const kvi_optimizer_ops kvi_riemann_momentum_ops = KVI__RIEM_OPS("riemann-momentum");
const kvi_optimizer_ops kvi_riemann_adam_ops = KVI__RIEM_OPS("riemann-adam");

int64_t kvi_riemann_damped(const kvi_optimizer *o) {
  return o && o->impl && o->impl_free == kvi__riem_free ? kvi__r(o)->damped : 0;
}

int64_t kvi_riemann_rejected(const kvi_optimizer *o) {
  return o && o->impl && o->impl_free == kvi__riem_free ? kvi__r(o)->rejected : 0;
}
