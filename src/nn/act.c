/* Elementwise activations. ELU: y = x (x > 0), e^x - 1 (x <= 0); dy/dx = 1 or y + 1.
 * The loops are vectorized (`omp simd`, branch-free expm1 in single precision); above
 * KVI__ACT_PAR elements (a batch of 100 rows of 300 units is 30000) they run on the OpenMP
 * threads in chunks: those threads are the ones that just ran the layer's matrix product
 * (kvi_gemm keeps OpenBLAS single-threaded), so they are awake, and an element does the same
 * arithmetic on any thread. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/par.h"
#include "kronvi/layer.h"
#include "nn/rop_internal.h"

#include "core/vmath.h" /* KVI__HOT, vectorizable expm1f */

#ifndef KVI__ACT_PAR
#define KVI__ACT_PAR (1u << 14)
#endif
#ifdef KVI_DOUBLE
#define KVI__EXPM1 expm1
#else
#define KVI__EXPM1 kvi__vexpm1f
#endif

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

static inline kvi_real kvi__elu(kvi_real x) {
  kvi_real e = KVI__EXPM1(x);
  return x > 0 ? x : e;
}

KVI__HOT static void kvi__elu_forward(kvi_real *y, const kvi_real *x, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) y[i] = kvi__elu(x[i]);
}

KVI__HOT static void kvi__elu_backward(kvi_real *dx, const kvi_real *dy, const kvi_real *x,
                                       const kvi_real *y, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    kvi_real d = dy[i], t = d * (y[i] + 1); /* both arms computed: a select, not a branch */
    dx[i] = x[i] > 0 ? d : t;
  }
}

static void kvi__relu_forward(kvi_real *y, const kvi_real *x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

static void kvi__relu_backward(kvi_real *dx, const kvi_real *dy, const kvi_real *x, size_t n) {
  for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : 0;
}

/* [c0, c1) of n for thread t of nt: contiguous parts, boundaries on multiples of 16. */
static void kvi__act_part(size_t n, int t, int nt, size_t *c0, size_t *c1) {
  *c0 = t == 0 ? 0 : (n * t / nt) & ~(size_t)15;
  *c1 = t + 1 == nt ? n : (n * (t + 1) / nt) & ~(size_t)15;
}

void kvi_act_forward(kvi_real *y, const kvi_real *x, size_t n, kvi_act a) {
  const bool par = kvi__fork(n > KVI__ACT_PAR); /* not from inside a region (core/par.h) */
  if (a == KVI_ACT_ELU && !par) {
    kvi__elu_forward(y, x, n);
  } else if (a == KVI_ACT_ELU) {
#pragma omp parallel
    {
      size_t c0, c1;
      kvi__act_part(n, omp_get_thread_num(), omp_get_num_threads(), &c0, &c1);
      if (c1 > c0) kvi__elu_forward(y + c0, x + c0, c1 - c0);
    }
  } else if (a == KVI_ACT_RELU && !par) {
    kvi__relu_forward(y, x, n);
  } else if (a == KVI_ACT_RELU) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
  } else if (y != x) {
    memcpy(y, x, n * sizeof *y);
  }
}

void kvi_act_backward(kvi_real *dx, const kvi_real *dy, const kvi_real *x, const kvi_real *y,
                      size_t n, kvi_act a) {
  const bool par = kvi__fork(n > KVI__ACT_PAR);
  if (a == KVI_ACT_ELU && !par) {
    kvi__elu_backward(dx, dy, x, y, n);
  } else if (a == KVI_ACT_ELU) {
#pragma omp parallel
    {
      size_t c0, c1;
      kvi__act_part(n, omp_get_thread_num(), omp_get_num_threads(), &c0, &c1);
      if (c1 > c0) kvi__elu_backward(dx + c0, dy + c0, x + c0, y + c0, c1 - c0);
    }
  } else if (a == KVI_ACT_RELU && !par) {
    kvi__relu_backward(dx, dy, x, n);
  } else if (a == KVI_ACT_RELU) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : 0;
  } else if (dx != dy) {
    memcpy(dx, dy, n * sizeof *dx);
  }
}

/* ---- the act kind of the layer interface (kronvi/layer.h): the network inserts one after
 * every weight layer but the last; "elu", "relu" tokens add one explicitly. ---------------- */
static int kvi__act_match(const char *token, const kvi_shape *in) {
  return !strcmp(token, "elu") || !strcmp(token, "relu");
}

static kvi_status kvi__act_create(kvi_layer *L, const kvi_layer_args *a) {
  kvi_act *act = calloc(1, sizeof *act);
  if (!act) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  L->state = act;
  *act = a->act;
  if (a->token && kvi__act_match(a->token, &a->in)) kvi_act_parse(act, a->token);
  L->out = a->in;
  return KVI_OK;
}
static kvi_status kvi__act_fwd(const kvi_layer *L, const kvi_layer_call *c) {
  kvi_act_forward(c->Y, c->X, (size_t)c->batch * L->in_size, *(const kvi_act *)L->state);
  return KVI_OK;
}
static kvi_status kvi__act_bwd(const kvi_layer *L, const kvi_layer_call *c) {
  if (c->dX)
    kvi_act_backward(c->dX, c->dY, c->X, c->Y, (size_t)c->batch * L->in_size,
                     *(const kvi_act *)L->state);
  return KVI_OK;
}

const kvi_layer_ops kvi_act_ops = {
    .kind = "act",
    .match = kvi__act_match,
    .create = kvi__act_create,
    .forward = kvi__act_fwd,
    .backward = kvi__act_bwd,
    .rop_forward = kvi__act_rop_fwd,
    .rop_backward = kvi__act_rop_bwd,
};
