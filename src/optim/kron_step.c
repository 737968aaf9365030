/* The step shared by K-FAC and lie-ngd (src/optim/kron_step.h). */
#include <math.h>
#include <string.h>

#include "optim/kron_step.h"

void kvi__kron_gather(kvi_real *V, const kvi_params *p, const kvi_dense *w) {
  const size_t nm = (size_t)w->n * w->m;
  memcpy(V, kvi_params_grad(p, w->iM), nm * sizeof(kvi_real));
  if (w->bias) memcpy(V + nm, kvi_params_grad(p, w->ib), (size_t)w->m * sizeof(kvi_real));
}

double kvi__kron_clip(const kvi_opt_config *c, double vp, double lr) {
  return c->kl_clip > 0 && vp > 0 ? fmin(1.0, sqrt(c->kl_clip / (lr * lr * vp))) : 1;
}

void kvi__kron_momentum(kvi_real *x, kvi_real *mom, const kvi_real *d, size_t n, kvi_real mu,
                        kvi_real nu, kvi_real lr, kvi_real decay) {
  for (size_t i = 0; i < n; i++) {
    mom[i] = mu * mom[i] + nu * d[i];
    x[i] = decay * x[i] - lr * mom[i];
  }
}

void kvi__kron_apply_layer(const kvi_optimizer *o, kvi_params *p, kvi_real *mom, const kvi_dense *w,
                           const kvi_real *P, double nu, double lr) {
  const kvi_real mu = (kvi_real)o->cfg.momentum, lr_r = (kvi_real)lr;
  const kvi_real decay = (kvi_real)(1 - lr * o->cfg.weight_decay);
  const kvi_view *vm = &p->views[w->iM];
  kvi__kron_momentum(p->data + vm->offset, mom + vm->offset, P, vm->size, mu, (kvi_real)nu, lr_r,
                     decay);
  if (w->bias) {
    const kvi_view *vb = &p->views[w->ib];
    kvi__kron_momentum(p->data + vb->offset, mom + vb->offset, P + vm->size, vb->size, mu,
                       (kvi_real)nu, lr_r, 1);
  }
}

void kvi__kron_apply_rest(const kvi_optimizer *o, kvi_params *p, kvi_real *mom,
                          const unsigned char *bound, double lr) {
  const kvi_real mu = (kvi_real)o->cfg.momentum, lr_r = (kvi_real)lr;
  const kvi_real decay = (kvi_real)(1 - lr * o->cfg.weight_decay);
  for (int v = 0; v < p->nviews; v++) {
    if (bound[v]) continue;
    const kvi_view *w = &p->views[v];
    kvi__kron_momentum(p->data + w->offset, mom + w->offset, p->grad + w->offset, w->size, mu, 1,
                       lr_r, w->role == KVI_ROLE_MEAN ? decay : 1);
  }
}
