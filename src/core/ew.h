/* Elementwise passes of the DIAG local reparameterization over [k0, k1), in whole vectors
 * (KVI__HOT clones): shared by the dense layer's passes (prob/diag.c) and the convolution's
 * direct ones (nn/conv_run.c). Every element is computed alone: the same numbers in every clone.
 * Private to the library. */
#ifndef KRONVI_CORE_EW_H
#define KRONVI_CORE_EW_H

#include <stddef.h>

#include "kronvi/core.h"

/* out = x . x */
void kvi__ew_square(kvi_real *out, const kvi_real *x, size_t k0, size_t k1);
/* sd = sqrt(v) in place (rounding can leave a tiny negative v: 0), Y += sd . eps */
void kvi__ew_sd_noise(kvi_real *Y, kvi_real *sd, const kvi_real *eps, size_t k0, size_t k1);
/* G = dY . eps / (2 sd), 0 where sd = 0 (G may be sd itself) */
void kvi__ew_dvar(kvi_real *G, const kvi_real *sd, const kvi_real *dY, const kvi_real *eps,
                  size_t k0, size_t k1);
/* out += a x . y */
void kvi__ew_acc_prod(kvi_real *out, kvi_real a, const kvi_real *x, const kvi_real *y, size_t k0,
                      size_t k1);

#endif
