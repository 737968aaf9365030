/* Adam (Kingma & Ba, 2014) with bias correction and decoupled weight decay on the means:
 *   m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
 *   x <- (1 - lr wd [role = mean]) x - lr/(1 - b1^t) m / (sqrt(v / (1 - b2^t)) + eps).
 * State: "optim.m.<view>" and "optim.v.<view>", each of its view's shape. */
#include <math.h>

#include "kronvi/optim.h"
#include "core/vmath.h" /* KVI__HOT */
#include "internal.h"
#include "optim/solve_internal.h"
#include "prob/diag_ard.h"
#include "prob/mn_ard.h"

typedef struct {
  kvi_real b1, b2, step, rc2, eps, decay;
  kvi_real *x, *m, *v, *g;
} kvi__adam;

/* One element's update with gradient gi: m, v and the returned x. */
static inline kvi_real kvi__adam_elem(kvi_real x, kvi_real gi, kvi_real *m, kvi_real *v,
                                      const kvi__adam *k, kvi_real decay) {
  kvi_real mi = k->b1 * *m + (1 - k->b1) * gi;
  kvi_real vi = k->b2 * *v + (1 - k->b2) * gi * gi;
  *m = mi;
  *v = vi;
  return decay * x - k->step * mi / (KVI_SQRT(vi) * k->rc2 + k->eps);
}

/* Also zeroes g behind it (ops.zeroes_grad): the next step's gradient accumulates into it, and
 * the cache lines are already here, so the trainer skips its own pass over the gradient. */
KVI__HOT static void kvi__adam_range(kvi_real *restrict x, kvi_real *restrict g,
                                     kvi_real *restrict m, kvi_real *restrict v, size_t n,
                                     const kvi__adam *k, kvi_real decay) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    x[i] = kvi__adam_elem(x[i], g[i], &m[i], &v[i], k, decay);
    g[i] = 0;
  }
}

/* Elements [o, o + n) of a DIAG ARD block (kvi_optimizer_step_ard): each weight's KL term and
 * gradient (prob/diag_ard.h), added to its gradient, then both views' Adam updates, in one pass
 * over the eight arrays instead of a KL pass and an update pass. Returns the sum of the terms. */
KVI__HOT static kvi_real kvi__adam_ard_span(const kvi__adam *k, const kvi_ard_block *b, size_t o,
                                            size_t n, kvi_real decay_mu) {
  kvi_real *restrict xm = k->x + b->mu + o, *restrict xs = k->x + b->log_sigma + o;
  kvi_real *restrict gm = k->g + b->mu + o, *restrict gs = k->g + b->log_sigma + o;
  kvi_real *restrict mm = k->m + b->mu + o, *restrict ms = k->m + b->log_sigma + o;
  kvi_real *restrict vm = k->v + b->mu + o, *restrict vs = k->v + b->log_sigma + o;
  const kvi_real gsr = b->gscale;
  kvi_real sum = 0;
#pragma omp simd reduction(+ : sum)
  for (size_t i = 0; i < n; i++) {
    kvi_real dm, dl;
    sum += kvi__diag_ard_term(xm[i], xs[i], gsr, &dm, &dl);
    kvi_real gmi = gm[i] + dm, gsi = gs[i] + dl;
    xm[i] = kvi__adam_elem(xm[i], gmi, &mm[i], &vm[i], k, decay_mu);
    xs[i] = kvi__adam_elem(xs[i], gsi, &ms[i], &vs[i], k, 1);
    gm[i] = 0;
    gs[i] = 0;
  }
  return sum;
}

static void kvi__adam_run(void *ctx, size_t off, size_t len, kvi_role role) {
  const kvi__adam *k = ctx;
  kvi__adam_range(k->x + off, k->g + off, k->m + off, k->v + off, len, k,
                  role == KVI_ROLE_MEAN ? k->decay : 1);
}

static kvi_status kvi__adam_init(kvi_optimizer *o, const kvi_params *p) {
  kvi_real *b;
  kvi_status s = kvi_optimizer_add_buffer(o, p, "optim.m", &b);
  if (!s) s = kvi_optimizer_add_buffer(o, p, "optim.v", &b);
  return s;
}

static kvi__adam kvi__adam_coef(const kvi_optimizer *o, kvi_params *p, double lr) {
  const kvi_opt_config *c = &o->cfg;
  const double c1 = 1 - pow(c->beta1, (double)o->t), c2 = 1 - pow(c->beta2, (double)o->t);
  kvi__adam k = {(kvi_real)c->beta1,
                 (kvi_real)c->beta2,
                 (kvi_real)(lr / c1), /* lr * mhat / (sqrt(vhat) + eps), mhat = m / c1 */
                 (kvi_real)(1 / sqrt(c2)),
                 (kvi_real)c->eps,
                 (kvi_real)(1 - lr * c->weight_decay),
                 p->data,
                 o->buffer[0],
                 o->buffer[1],
                 p->grad};
  return k;
}

static kvi_status kvi__adam_step(kvi_optimizer *o, kvi_params *p, double lr) {
  kvi__adam k = kvi__adam_coef(o, p, lr);
  kvi_optimizer_walk(p, kvi__adam_run, &k);
  return KVI_OK;
}

/* The DIAG blocks' spans (KVI__KL_SPAN elements, numbered across the blocks) in parallel, each
 * block's KL the sum of its spans' in order. */
static kvi_status kvi__adam_diag_blocks(const kvi__adam *k, kvi_params *p, const kvi_ard_block *b,
                                        int nb) {
  size_t ns = 0, total = 0;
  for (int i = 0; i < nb; i++) ns += (b[i].n + KVI__KL_SPAN - 1) / KVI__KL_SPAN, total += b[i].n;
  double *sums = kvi_alloc((ns > 0 ? ns : 1) * sizeof *sums);
  size_t *first = kvi_alloc((size_t)(nb + 1) * sizeof *first);
  if (!sums || !first) {
    kvi_free(sums), kvi_free(first);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for the KL's partial sums");
  }
  first[0] = 0;
  for (int i = 0; i < nb; i++) first[i + 1] = first[i] + (b[i].n + KVI__KL_SPAN - 1) / KVI__KL_SPAN;
#pragma omp parallel for schedule(static) if (total >= KVI__OPT_PAR_MIN)
  for (long c = 0; c < (long)ns; c++) {
    int i = 0;
    while (first[i + 1] <= (size_t)c) i++;
    const size_t o0 = ((size_t)c - first[i]) * KVI__KL_SPAN;
    const size_t len = b[i].n - o0 < KVI__KL_SPAN ? b[i].n - o0 : KVI__KL_SPAN;
    const kvi_real dm = kvi__optimizer_view_role(p, b[i].mu) == KVI_ROLE_MEAN ? k->decay : 1;
    sums[c] = kvi__adam_ard_span(k, &b[i], o0, len, dm);
  }
  for (int i = 0; i < nb; i++) {
    if (b[i].rows > 0) continue; /* MN: no spans */
    double acc = 0;
    for (size_t c = first[i]; c < first[i + 1]; c++) acc += sums[c];
    *b[i].kl = 0.5 * acc;
  }
  kvi_free(sums), kvi_free(first);
  return KVI_OK;
}

/* DIAG blocks as above; MN blocks row block by row block (prob/mn_ard.h), all begun (u, v and
 * the range test, which may fail) before any update; then the other views as kvi__adam_step. */
static kvi_status kvi__adam_step_ard(kvi_optimizer *o, kvi_params *p, double lr,
                                     const kvi_ard_block *b, int nb) {
  kvi__adam k = kvi__adam_coef(o, p, lr);
  kvi__mn_ard_fuse *mf = kvi_alloc((size_t)(nb > 0 ? nb : 1) * sizeof *mf);
  if (!mf) return kvi_fail(KVI_ERR_NOMEM, "out of memory for the MN blocks");
  int nmn = 0; /* the MN blocks, in mf[0, nmn) */
  for (int i = 0; i < nb; i++) {
    if (b[i].rows == 0) continue;
    const kvi_ard_block *bi = &b[i];
    kvi__mn_ard_fuse *f = &mf[nmn++];
    f->q = (kvi_mn){bi->rows, bi->cols, p->data + bi->mu, p->data + bi->A, p->data + bi->B};
    f->g = (kvi_mn_grad){p->grad + bi->mu, p->grad + bi->A, p->grad + bi->B};
    f->gs = bi->gscale, f->kl = bi->kl;
    f->pf[0] = k.m, f->pf[1] = k.v; /* Adam's moments, at the parameters' offsets */
    const size_t off[3] = {bi->mu, bi->A, bi->B};
    for (int v = 0; v < 3; v++)
      f->off[v] = off[v], f->role[v] = kvi__optimizer_view_role(p, off[v]);
  }
  kvi_status s = kvi__mn_ard_fuse_begin(mf, nmn);
  if (!s) s = kvi__adam_diag_blocks(&k, p, b, nb);
  if (s) {
    for (int i = 0; i < nmn; i++) kvi__mn_ard_fuse_free(&mf[i]);
    kvi_free(mf);
    return s;
  }
  kvi__mn_ard_fuse_run(mf, nmn, kvi__adam_run, &k);
  kvi_free(mf);
  kvi__optimizer_walk_except(p, kvi__adam_run, &k, b, nb);
  return KVI_OK;
}

const kvi_optimizer_ops kvi_adam_ops = {.name = "adam",
                                        .init = kvi__adam_init,
                                        .step = kvi__adam_step,
                                        .zeroes_grad = true,
                                        .step_ard = kvi__adam_step_ard};
