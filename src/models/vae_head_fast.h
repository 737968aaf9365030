/* Private to the models module: the two paths of the encoder head's per-image functions
 * (vae_head.c, vae_head_fast.c). The kvi_vae_head_* functions of kronvi/models.h try the fast
 * kernel first and take the generic path when it declines. */
#ifndef KRONVI_MODELS_VAE_HEAD_FAST_H
#define KRONVI_MODELS_VAE_HEAD_FAST_H

#include <stdbool.h>

#include "kronvi/models.h"

/* Allocation-free kernels on the packed head outputs (vae_head_fast.c). Each returns false,
 * having changed nothing the caller keeps (dout, kl), when the generic path has to decide:
 * a non-finite input or result, or a log-diagonal outside (-87, 88) (exp not a normal float);
 * z may then hold partial values, which the generic path overwrites. */
bool kvi__vhf_sample(const kvi_vae_head *h, kvi_real *z, const kvi_real *out, const kvi_real *eps);
bool kvi__vhf_backward(const kvi_vae_head *h, kvi_real *dout, const kvi_real *dz,
                       const kvi_real *out, const kvi_real *eps);
bool kvi__vhf_kl(const kvi_vae_head *h, double *kl, kvi_real *dout, kvi_real gscale,
                 const kvi_real *out);

/* The generic path (vae_head.c): the triangles unpacked into the dense Cholesky storage of
 * src/prob and kvi_diag_*, kvi_mn_*, kvi_mvn_* on views (the reference of the kernels above). */
kvi_status kvi__vae_head_sample_generic(const kvi_vae_head *h, kvi_real *z, const kvi_real *out,
                                        const kvi_real *eps, kvi_arena *scratch);
kvi_status kvi__vae_head_backward_generic(const kvi_vae_head *h, kvi_real *dout, const kvi_real *dz,
                                          const kvi_real *out, const kvi_real *eps,
                                          kvi_arena *scratch);
kvi_status kvi__vae_head_kl_generic(const kvi_vae_head *h, double *kl, kvi_real *dout,
                                    kvi_real gscale, const kvi_real *out, kvi_arena *scratch);

#endif
