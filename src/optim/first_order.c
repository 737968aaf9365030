/* Adam (Kingma & Ba, 2014) with bias correction, and SGD with heavy-ball momentum. */
#include <math.h>
#include <string.h>

#include "kronvi/optim.h"
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

kvi_status kvi_optimizer_step(kvi_optimizer *o, kvi_real *x, const kvi_real *g, double lr) {
  o->t++;
  size_t n = o->n;
  kvi_real *m = o->m, *v = o->v;
  const double wd = o->cfg.weight_decay;
  if (o->cfg.kind == KVI_OPT_ADAM) {
    const kvi_real b1 = (kvi_real)o->cfg.beta1, b2 = (kvi_real)o->cfg.beta2;
    const double c1 = 1 - pow(o->cfg.beta1, (double)o->t), c2 = 1 - pow(o->cfg.beta2, (double)o->t);
    /* x -= lr * mhat / (sqrt(vhat) + eps), mhat = m / c1, vhat = v / c2 */
    const kvi_real step = (kvi_real)(lr / c1), rc2 = (kvi_real)(1 / sqrt(c2));
    const kvi_real eps = (kvi_real)o->cfg.eps, decay = (kvi_real)(1 - lr * wd);
    for (size_t i = 0; i < n; i++) {
      kvi_real gi = g[i];
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      x[i] = decay * x[i] - step * m[i] / (KVI_SQRT(v[i]) * rc2 + eps);
    }
  } else {
    const kvi_real mu = (kvi_real)o->cfg.momentum, lrr = (kvi_real)lr;
    const kvi_real decay = (kvi_real)(1 - lr * wd);
    for (size_t i = 0; i < n; i++) {
      m[i] = mu * m[i] + g[i];
      x[i] = decay * x[i] - lrr * m[i];
    }
  }
  return KVI_OK;
}
