/* kronvi optim: first-order optimizers over the flat parameter buffer. */
#ifndef KRONVI_OPTIM_H
#define KRONVI_OPTIM_H

#include "kronvi/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { KVI_OPT_ADAM = 0, KVI_OPT_SGD } kvi_opt_kind;

typedef struct {
  kvi_opt_kind kind;
  double lr;
  double beta1, beta2, eps; /* Adam */
  double momentum;          /* SGD (heavy ball) */
  double weight_decay;      /* decoupled, applied to every parameter (default 0) */
} kvi_opt_config;

/* Optimizer state: two moment buffers of the same layout as the parameters. */
typedef struct {
  kvi_opt_config cfg;
  size_t n;
  int64_t t; /* steps taken */
  kvi_real *m, *v;
} kvi_optimizer;

KVI_API kvi_opt_config kvi_opt_config_default(kvi_opt_kind kind);
KVI_API kvi_status kvi_opt_parse(kvi_opt_kind *k, const char *s);
KVI_API const char *kvi_opt_name(kvi_opt_kind k);
KVI_API kvi_status kvi_optimizer_init(kvi_optimizer *o, const kvi_opt_config *cfg, size_t n);
KVI_API void kvi_optimizer_free(kvi_optimizer *o);
/* One step on x (n) with gradient g (n) and learning rate lr (overrides cfg.lr, for schedules). */
KVI_API kvi_status kvi_optimizer_step(kvi_optimizer *o, kvi_real *x, const kvi_real *g, double lr);
/* The same step on p->data with gradient p->grad (p->n must equal the optimizer's n), skipping
 * the strict upper triangles of the Cholesky views (role KVI_ROLE_CHOL): they are never read,
 * stay zero and have zero gradient, so the result equals kvi_optimizer_step's, in less time. */
KVI_API kvi_status kvi_optimizer_step_params(kvi_optimizer *o, kvi_params *p, double lr);

#ifdef __cplusplus
}
#endif
#endif
