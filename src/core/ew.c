/* Elementwise passes of the DIAG local reparameterization (core/ew.h). */
#include "core/ew.h"

#include "core/vmath.h" /* KVI__HOT */
#include "internal.h"   /* KVI_SQRT */

KVI__HOT void kvi__ew_square(kvi_real *out, const kvi_real *x, size_t k0, size_t k1) {
#pragma omp simd
  for (size_t k = k0; k < k1; k++) out[k] = x[k] * x[k];
}

KVI__HOT void kvi__ew_sd_noise(kvi_real *Y, kvi_real *sd, const kvi_real *eps, size_t k0,
                               size_t k1) {
#pragma omp simd
  for (size_t k = k0; k < k1; k++) {
    kvi_real v = sd[k] > 0 ? KVI_SQRT(sd[k]) : 0;
    sd[k] = v;
    Y[k] += v * eps[k];
  }
}

KVI__HOT void kvi__ew_dvar(kvi_real *G, const kvi_real *sd, const kvi_real *dY, const kvi_real *eps,
                           size_t k0, size_t k1) {
#pragma omp simd
  for (size_t k = k0; k < k1; k++) {
    const kvi_real sdk = sd[k];
    G[k] = sdk > 0 ? dY[k] * eps[k] / (2 * sdk) : 0;
  }
}

KVI__HOT void kvi__ew_acc_prod(kvi_real *out, kvi_real a, const kvi_real *x, const kvi_real *y,
                               size_t k0, size_t k1) {
#pragma omp simd
  for (size_t k = k0; k < k1; k++) out[k] += a * x[k] * y[k];
}
