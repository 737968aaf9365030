/* Adam (Kingma & Ba, 2014) with bias correction, and SGD with heavy-ball momentum. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kronvi/optim.h"
#include "core/vmath.h" /* KVI__HOT */
#include "internal.h"

kvi_opt_config kvi_opt_config_default(kvi_opt_kind kind) {
  kvi_opt_config c;
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.lr = kind == KVI_OPT_ADAM ? 1e-3 : 1e-2;
  c.beta1 = 0.9, c.beta2 = 0.999, c.eps = 1e-8;
  c.momentum = 0.9;
  return c;
}

kvi_status kvi_opt_parse(kvi_opt_kind *k, const char *s) {
  if (s && strcmp(s, "adam") == 0)
    *k = KVI_OPT_ADAM;
  else if (s && strcmp(s, "sgd") == 0)
    *k = KVI_OPT_SGD;
  else
    return kvi_fail(KVI_ERR_ARG, "unknown optimizer '%s' (expected adam or sgd)", s ? s : "(null)");
  return KVI_OK;
}

const char *kvi_opt_name(kvi_opt_kind k) { return k == KVI_OPT_SGD ? "sgd" : "adam"; }

kvi_status kvi_optimizer_init(kvi_optimizer *o, const kvi_opt_config *cfg, size_t n) {
  memset(o, 0, sizeof *o);
  if (!(cfg->lr > 0)) return kvi_fail(KVI_ERR_ARG, "learning rate %g must be positive", cfg->lr);
  o->cfg = *cfg;
  o->n = n;
  o->m = kvi_alloc(n * sizeof(kvi_real));
  o->v = cfg->kind == KVI_OPT_ADAM ? kvi_alloc(n * sizeof(kvi_real)) : NULL;
  if (!o->m || (cfg->kind == KVI_OPT_ADAM && !o->v)) {
    kvi_optimizer_free(o);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for optimizer state (%zu parameters)", n);
  }
  return KVI_OK;
}

void kvi_optimizer_free(kvi_optimizer *o) {
  kvi_free(o->m);
  kvi_free(o->v);
  o->m = o->v = NULL;
}

/* Constants of one step (t already incremented). */
typedef struct {
  kvi_real b1, b2, step, rc2, eps, decay, mu, lr;
} kvi__opt_consts;

static kvi__opt_consts kvi__opt_prepare(const kvi_optimizer *o, double lr) {
  kvi__opt_consts k;
  const double wd = o->cfg.weight_decay;
  k.b1 = (kvi_real)o->cfg.beta1, k.b2 = (kvi_real)o->cfg.beta2;
  const double c1 = 1 - pow(o->cfg.beta1, (double)o->t), c2 = 1 - pow(o->cfg.beta2, (double)o->t);
  /* x -= lr * mhat / (sqrt(vhat) + eps), mhat = m / c1, vhat = v / c2 */
  k.step = (kvi_real)(lr / c1), k.rc2 = (kvi_real)(1 / sqrt(c2));
  k.eps = (kvi_real)o->cfg.eps, k.decay = (kvi_real)(1 - lr * wd);
  k.mu = (kvi_real)o->cfg.momentum, k.lr = (kvi_real)lr;
  return k;
}

/* The update of elements [0, n) of x, g and the moment buffers m, v (vectorized; the same
 * arithmetic per element as a scalar loop, so the result does not depend on the split). */
KVI__HOT static void kvi__opt_range(const kvi_optimizer *o, const kvi__opt_consts *k,
                                    kvi_real *restrict x, const kvi_real *restrict g,
                                    kvi_real *restrict m, kvi_real *restrict v, size_t n) {
  if (o->cfg.kind == KVI_OPT_ADAM) {
    const kvi_real b1 = k->b1, b2 = k->b2, step = k->step, rc2 = k->rc2, eps = k->eps;
    const kvi_real decay = k->decay;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
      kvi_real gi = g[i];
      kvi_real mi = b1 * m[i] + (1 - b1) * gi;
      kvi_real vi = b2 * v[i] + (1 - b2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      x[i] = decay * x[i] - step * mi / (KVI_SQRT(vi) * rc2 + eps);
    }
  } else {
    const kvi_real mu = k->mu, lrr = k->lr, decay = k->decay;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
      kvi_real mi = mu * m[i] + g[i];
      m[i] = mi;
      x[i] = decay * x[i] - lrr * mi;
    }
  }
}

kvi_status kvi_optimizer_step(kvi_optimizer *o, kvi_real *x, const kvi_real *g, double lr) {
  if (!o || !x || !g) return kvi_fail(KVI_ERR_ARG, "kvi_optimizer_step: NULL argument");
  o->t++;
  kvi__opt_consts k = kvi__opt_prepare(o, lr);
  kvi__opt_range(o, &k, x, g, o->m, o->v, o->n);
  return KVI_OK;
}

/* The step over the parameter buffer runs over contiguous runs: elements outside the views,
 * whole views, and a square Cholesky view row by row over its lower triangle only (its strict
 * upper triangle is never read, stays zero and has zero gradient, so its update would leave it
 * unchanged). Runs are cut into chunks of KVI__OPT_CHUNK elements, numbered in order, and thread
 * t of nt steps the chunks c with c % nt == t: the update is elementwise, so the result does not
 * depend on the thread count. */
#ifndef KVI__OPT_CHUNK
#define KVI__OPT_CHUNK 16384
#endif
/* Parallel above this many parameters (below, the fork/join costs more than the update). */
#ifndef KVI__OPT_PAR_MIN
#define KVI__OPT_PAR_MIN (1u << 18)
#endif

typedef struct {
  size_t chunk; /* running chunk number */
  int tid, nt;
} kvi__opt_walk;

static void kvi__opt_run(kvi__opt_walk *wk, const kvi_optimizer *o, const kvi__opt_consts *k,
                         kvi_params *p, size_t off, size_t len) {
  kvi_real *x = p->data, *m = o->m, *v = o->v;
  const kvi_real *g = p->grad;
  for (size_t c0 = 0; c0 < len; c0 += KVI__OPT_CHUNK, wk->chunk++) {
    if (wk->chunk % (size_t)wk->nt != (size_t)wk->tid) continue;
    size_t a = off + c0, cnt = len - c0 < KVI__OPT_CHUNK ? len - c0 : KVI__OPT_CHUNK;
    kvi__opt_range(o, k, x + a, g + a, m + a, v ? v + a : NULL, cnt);
  }
}

static void kvi__opt_walk_params(kvi__opt_walk *wk, const kvi_optimizer *o,
                                 const kvi__opt_consts *k, kvi_params *p) {
  size_t done = 0;
  for (int vi = 0; vi < p->nviews; vi++) {
    const kvi_view *w = &p->views[vi];
    int64_t r = w->shape[0];
    bool tri = w->role == KVI_ROLE_CHOL && w->ndim == 2 && w->shape[1] == r &&
               (size_t)(r * r) == w->size && w->offset >= done;
    if (!tri) continue;
    if (w->offset > done) kvi__opt_run(wk, o, k, p, done, w->offset - done);
    for (int64_t i = 0; i < r; i++)
      kvi__opt_run(wk, o, k, p, w->offset + (size_t)(i * r), (size_t)i + 1);
    done = w->offset + w->size;
  }
  if (p->n > done) kvi__opt_run(wk, o, k, p, done, p->n - done);
}

kvi_status kvi_optimizer_step_params(kvi_optimizer *o, kvi_params *p, double lr) {
  if (!o || !p || !p->data || !p->grad)
    return kvi_fail(KVI_ERR_ARG, "kvi_optimizer_step_params: NULL argument");
  if (p->n != o->n)
    return kvi_fail(KVI_ERR_ARG,
                    "kvi_optimizer_step_params: %zu parameters, but the optimizer has %zu", p->n,
                    o->n);
  o->t++;
  const kvi__opt_consts k = kvi__opt_prepare(o, lr);
#pragma omp parallel if (p->n >= KVI__OPT_PAR_MIN)
  {
    kvi__opt_walk wk = {0, omp_get_thread_num(), omp_get_num_threads()};
    kvi__opt_walk_params(&wk, o, &k, p);
  }
  return KVI_OK;
}
