/* The step shared by the Kronecker-preconditioned optimizers (K-FAC, lie-ngd; private): each
 * bound layer's gradient block V = [dM; db], its preconditioned direction P going through
 * momentum, KL clipping (Ba et al. 2017: lr^2 <P, V> <= kl_clip) and decoupled weight decay of
 * the means, and momentum SGD on every view no layer holds. */
#ifndef KRONVI_OPTIM_KRON_STEP_H
#define KRONVI_OPTIM_KRON_STEP_H

#include "kronvi/optim.h"

/* V (na x m) = [dM; db] of weight layer w (the bias row when w->bias). */
void kvi__kron_gather(kvi_real *V, const kvi_params *p, const kvi_dense *w);
/* The KL-clipping factor nu of a step whose directions have sum <P, V> = vp. */
double kvi__kron_clip(const kvi_opt_config *c, double vp, double lr);
/* x <- decay x - lr m, m <- mu m + nu d over n elements. */
void kvi__kron_momentum(kvi_real *x, kvi_real *mom, const kvi_real *d, size_t n, kvi_real mu,
                        kvi_real nu, kvi_real lr, kvi_real decay);
/* Layer w's means (and bias) moved along P (na x m) with momentum mom (the block's layout). */
void kvi__kron_apply_layer(const kvi_optimizer *o, kvi_params *p, kvi_real *mom, const kvi_dense *w,
                           const kvi_real *P, double nu, double lr);
/* Momentum SGD on the views with bound[v] == 0. */
void kvi__kron_apply_rest(const kvi_optimizer *o, kvi_params *p, kvi_real *mom,
                          const unsigned char *bound, double lr);

#endif
