/* SGD with heavy-ball or Nesterov momentum and decoupled weight decay on the means:
 *   m <- mu m + g;  x <- (1 - lr wd [role = mean]) x - lr d,  d = m (heavy ball) or g + mu m
 * (Nesterov, as in Sutskever et al. 2013 in the form of PyTorch's SGD). State: "optim.m.<view>". */
#include "kronvi/optim.h"
#include "core/vmath.h" /* KVI__HOT */

typedef struct {
  kvi_real mu, lr, decay;
  bool nesterov;
  kvi_real *x, *m, *g;
} kvi__sgd;

/* Zeroes g behind it, as Adam (ops.zeroes_grad). */
KVI__HOT static void kvi__sgd_range(kvi_real *restrict x, kvi_real *restrict g,
                                    kvi_real *restrict m, size_t n, const kvi__sgd *k,
                                    kvi_real decay) {
  const kvi_real mu = k->mu, lr = k->lr;
  if (k->nesterov) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
      kvi_real mi = mu * m[i] + g[i];
      m[i] = mi;
      x[i] = decay * x[i] - lr * (g[i] + mu * mi);
      g[i] = 0;
    }
  } else {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
      kvi_real mi = mu * m[i] + g[i];
      m[i] = mi;
      x[i] = decay * x[i] - lr * mi;
      g[i] = 0;
    }
  }
}

static void kvi__sgd_run(void *ctx, size_t off, size_t len, kvi_role role) {
  const kvi__sgd *k = ctx;
  kvi__sgd_range(k->x + off, k->g + off, k->m + off, len, k, role == KVI_ROLE_MEAN ? k->decay : 1);
}

static kvi_status kvi__sgd_init(kvi_optimizer *o, const kvi_params *p) {
  kvi_real *b;
  return kvi_optimizer_add_buffer(o, p, "optim.m", &b);
}

static kvi_status kvi__sgd_step(kvi_optimizer *o, kvi_params *p, double lr) {
  kvi__sgd k = {(kvi_real)o->cfg.momentum,
                (kvi_real)lr,
                (kvi_real)(1 - lr * o->cfg.weight_decay),
                o->cfg.nesterov,
                p->data,
                o->buffer[0],
                p->grad};
  kvi_optimizer_walk(p, kvi__sgd_run, &k);
  return KVI_OK;
}

const kvi_optimizer_ops kvi_sgd_ops = {
    .name = "sgd", .init = kvi__sgd_init, .step = kvi__sgd_step, .zeroes_grad = true};
