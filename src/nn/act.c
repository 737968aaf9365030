/* Elementwise activations. ELU: y = x (x > 0), e^x - 1 (x <= 0); dy/dx = 1 or y + 1.
 * OpenMP loops in the hot path only run in parallel above ~1M elements: below that, waking a
 * second thread pool next to OpenBLAS's spinning threads costs more than the loop. */
#include <math.h>
#include <string.h>

#include "kronvi/nn.h"

const char *kvi_act_name(kvi_act a) {
  return a == KVI_ACT_ELU ? "elu" : a == KVI_ACT_RELU ? "relu" : "none";
}

kvi_status kvi_act_parse(kvi_act *a, const char *s) {
  if (s && strcmp(s, "elu") == 0)
    *a = KVI_ACT_ELU;
  else if (s && strcmp(s, "relu") == 0)
    *a = KVI_ACT_RELU;
  else if (s && strcmp(s, "none") == 0)
    *a = KVI_ACT_NONE;
  else
    return kvi_fail(KVI_ERR_ARG, "unknown activation '%s' (expected elu, relu or none)",
                    s ? s : "(null)");
  return KVI_OK;
}

void kvi_act_forward(kvi_real *y, const kvi_real *x, size_t n, kvi_act a) {
  if (a == KVI_ACT_ELU) {
#pragma omp parallel for schedule(static) if (n > (1u << 20))
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : (kvi_real)expm1(x[i]);
  } else if (a == KVI_ACT_RELU) {
#pragma omp parallel for schedule(static) if (n > (1u << 20))
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
  } else if (y != x) {
    memcpy(y, x, n * sizeof *y);
  }
}

void kvi_act_backward(kvi_real *dx, const kvi_real *dy, const kvi_real *x, const kvi_real *y,
                      size_t n, kvi_act a) {
  if (a == KVI_ACT_ELU) {
#pragma omp parallel for schedule(static) if (n > (1u << 20))
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : dy[i] * (y[i] + 1);
  } else if (a == KVI_ACT_RELU) {
#pragma omp parallel for schedule(static) if (n > (1u << 20))
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : 0;
  } else if (dx != dy) {
    memcpy(dx, dy, n * sizeof *dx);
  }
}
