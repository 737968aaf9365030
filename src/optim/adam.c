/* Adam (Kingma & Ba, 2014) with bias correction and decoupled weight decay on the means:
 *   m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
 *   x <- (1 - lr wd [role = mean]) x - lr/(1 - b1^t) m / (sqrt(v / (1 - b2^t)) + eps).
 * State: "optim.m.<view>" and "optim.v.<view>", each of its view's shape. */
#include <math.h>

#include "kronvi/optim.h"
#include "core/vmath.h" /* KVI__HOT */
#include "internal.h"

typedef struct {
  kvi_real b1, b2, step, rc2, eps, decay;
  kvi_real *x, *m, *v, *g;
} kvi__adam;

/* Also zeroes g behind it (ops.zeroes_grad): the next step's gradient accumulates into it, and
 * the cache lines are already here, so the trainer skips its own pass over the gradient. */
KVI__HOT static void kvi__adam_range(kvi_real *restrict x, kvi_real *restrict g,
                                     kvi_real *restrict m, kvi_real *restrict v, size_t n,
                                     const kvi__adam *k, kvi_real decay) {
  const kvi_real b1 = k->b1, b2 = k->b2, step = k->step, rc2 = k->rc2, eps = k->eps;
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    kvi_real gi = g[i];
    kvi_real mi = b1 * m[i] + (1 - b1) * gi;
    kvi_real vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    x[i] = decay * x[i] - step * mi / (KVI_SQRT(vi) * rc2 + eps);
    g[i] = 0;
  }
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

static kvi_status kvi__adam_step(kvi_optimizer *o, kvi_params *p, double lr) {
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
  kvi_optimizer_walk(p, kvi__adam_run, &k);
  return KVI_OK;
}

const kvi_optimizer_ops kvi_adam_ops = {
    .name = "adam", .init = kvi__adam_init, .step = kvi__adam_step, .zeroes_grad = true};
