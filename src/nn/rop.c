/* Pearlmutter's R-operator for the built-in layer kinds (docs/curv.md, "The R-operator").
 * R{z} = d/dt z(theta + t V, X + t RX) at t = 0, through the mean forward and its backward.
 * A weight layer Y = X M + b (a convolution: the same on the im2col rows) with backward
 * dX = dY M^T, gM = X^T dY, gb = sum_rows dY gives, differentiating every product,
 *   R{Y}  = RX M + X VM + Vb                       (eq. R1)
 *   R{gM} = RX^T dY + X^T R{dY},  R{gb} = sum R{dY}   (eq. R2)
 *   R{dX} = R{dY} M^T + dY VM^T                    (eq. R3)
 * An elementwise activation y = phi(x), dx = phi'(x) dy:
 *   R{y} = phi'(x) RX,  R{dx} = phi'(x) R{dy} + phi''(x) RX dy   (eq. R4)
 * (ELU: phi' = 1, phi'' = 0 for x > 0, phi' = phi'' = y + 1 otherwise; ReLU: phi'' = 0).
 * Max-pooling and flatten are linear for fixed maxima: R{y} = pool(RX) at the forward's argmax,
 * R{dx} = the pooling backward of R{dy} (eq. R5). Shapes: X, RX, R{dX} (B, in_size); Y, R{Y},
 * dY, R{dY} (B, out_size). */
#include <string.h>

#include "kronvi/layer.h"
#include "nn/conv_internal.h"
#include "nn/rop_internal.h"

static kvi_status kvi__rop_mean_only(const kvi_layer *L, const kvi_layer_call *c) {
  if (c->eps)
    return kvi_fail(KVI_ERR_UNSUPPORTED,
                    "layer '%s': the R-operator differentiates the mean forward (noise off); "
                    "this forward sampled the weights",
                    L->name);
  return KVI_OK;
}

/* ---- dense rows: Y (rows, m) = X (rows, n) M (n, m) + b ---------------------------------- */
/* eq. R1 */
static void kvi__rows_rop_fwd(kvi_real *RY, const kvi_dense *d, const kvi_params *p,
                              const kvi_params *dir, const kvi_real *X, const kvi_real *RX,
                              int rows) {
  const int n = d->n, m = d->m;
  kvi_gemm(false, false, rows, m, n, 1, X, n, kvi_params_data(dir, d->iM), m, 0, RY, m);
  if (RX) kvi_gemm(false, false, rows, m, n, 1, RX, n, kvi_params_data(p, d->iM), m, 1, RY, m);
  if (d->ib < 0) return;
  const kvi_real *vb = kvi_params_data(dir, d->ib);
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < m; j++) RY[(size_t)r * m + j] += vb[j];
}

/* eq. R2 and R3; RdX (rows, n) written when not NULL. */
static void kvi__rows_rop_bwd(kvi_real *RdX, const kvi_dense *d, const kvi_params *p,
                              const kvi_params *dir, const kvi_real *X, const kvi_real *RX,
                              const kvi_real *dY, const kvi_real *RdY, int rows) {
  const int n = d->n, m = d->m;
  kvi_real *RgM = kvi_params_grad(dir, d->iM);
  kvi_gemm(true, false, n, m, rows, 1, X, n, RdY, m, 1, RgM, m);
  if (RX) kvi_gemm(true, false, n, m, rows, 1, RX, n, dY, m, 1, RgM, m);
  if (d->ib >= 0) {
    kvi_real *Rgb = kvi_params_grad(dir, d->ib);
    for (int r = 0; r < rows; r++)
      for (int j = 0; j < m; j++) Rgb[j] += RdY[(size_t)r * m + j];
  }
  if (!RdX) return;
  kvi_gemm(false, true, rows, n, m, 1, RdY, m, kvi_params_data(p, d->iM), m, 0, RdX, n);
  kvi_gemm(false, true, rows, n, m, 1, dY, m, kvi_params_data(dir, d->iM), m, 1, RdX, n);
}

kvi_status kvi__dense_rop_fwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r) {
  kvi_status s = kvi__rop_mean_only(L, c);
  if (!s) kvi__rows_rop_fwd(r->RY, L->state, c->params, r->dir, c->X, r->RX, c->batch);
  return s;
}

kvi_status kvi__dense_rop_bwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r) {
  kvi_status s = kvi__rop_mean_only(L, c);
  if (!s)
    kvi__rows_rop_bwd(r->RdX, L->state, c->params, r->dir, c->X, r->RX, c->dY, r->RdY, c->batch);
  return s;
}

/* ---- convolution: eq. R1-R3 on the im2col rows; R{dX} = col2im(R{dcols}) ------------------ */
/* rws: R{cols} (rows, n), then R{dcols} (rows, n). */
size_t kvi__conv_rop_ws(const kvi_layer *L, int batch) {
  const kvi_conv *l = L->state;
  const size_t rows = (size_t)batch * l->oh * l->ow;
  return 2 * ((rows * (size_t)l->d.n * sizeof(kvi_real) + 63) & ~(size_t)63);
}

static kvi_real *kvi__conv_rdcols(const kvi_layer *L, const kvi_rop_call *r, int batch) {
  return (kvi_real *)((char *)r->rws + kvi__conv_rop_ws(L, batch) / 2);
}

kvi_status kvi__conv_rop_fwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r) {
  const kvi_conv *l = L->state;
  int rows = 0;
  kvi_status s = kvi__rop_mean_only(L, c);
  if (!s) s = kvi__conv_rows(&rows, l, c->batch, "conv R-operator");
  if (s) return s;
  kvi_real *Rcols = r->RX ? r->rws : NULL;
  if (Rcols) kvi__conv_im2col(Rcols, r->RX, l, 0, c->batch);
  kvi__rows_rop_fwd(r->RY, &l->d, c->params, r->dir,
                    kvi__conv_cols(c->ws, l, c->X, c->eps, c->batch), Rcols, rows);
  return KVI_OK;
}

kvi_status kvi__conv_rop_bwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r) {
  const kvi_conv *l = L->state;
  int rows = 0;
  kvi_status s = kvi__rop_mean_only(L, c);
  if (!s) s = kvi__conv_rows(&rows, l, c->batch, "conv R-operator");
  if (s) return s;
  kvi_real *RdC = r->RdX ? kvi__conv_rdcols(L, r, c->batch) : NULL;
  kvi__rows_rop_bwd(RdC, &l->d, c->params, r->dir, kvi__conv_cols(c->ws, l, c->X, c->eps, c->batch),
                    r->RX ? r->rws : NULL, c->dY, r->RdY, rows);
  if (RdC) kvi__conv_col2im(r->RdX, RdC, l, 0, c->batch);
  return KVI_OK;
}

/* ---- activations: eq. R4 ------------------------------------------------------------------ */
kvi_status kvi__act_rop_fwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r) {
  const kvi_act a = *(const kvi_act *)L->state;
  const size_t n = (size_t)c->batch * L->in_size;
  const kvi_real *x = c->X, *y = c->Y, *rx = r->RX;
  if (!rx) {
    memset(r->RY, 0, n * sizeof(kvi_real));
    return KVI_OK;
  }
  for (size_t i = 0; i < n; i++) {
    const kvi_real d1 = a == KVI_ACT_NONE ? 1 : x[i] > 0 ? 1 : a == KVI_ACT_ELU ? y[i] + 1 : 0;
    r->RY[i] = d1 * rx[i];
  }
  return KVI_OK;
}

kvi_status kvi__act_rop_bwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r) {
  if (!r->RdX) return KVI_OK;
  const kvi_act a = *(const kvi_act *)L->state;
  const size_t n = (size_t)c->batch * L->in_size;
  const kvi_real *x = c->X, *y = c->Y, *rx = r->RX, *dy = c->dY, *rdy = r->RdY;
  for (size_t i = 0; i < n; i++) {
    kvi_real d1 = 1, d2 = 0;
    if (a != KVI_ACT_NONE && !(x[i] > 0)) d1 = a == KVI_ACT_ELU ? y[i] + 1 : 0, d2 = d1;
    r->RdX[i] = d1 * rdy[i] + (rx ? d2 * rx[i] * dy[i] : 0);
  }
  return KVI_OK;
}

/* ---- max-pooling and flatten: eq. R5 ------------------------------------------------------ */
kvi_status kvi__pool_rop_fwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r) {
  const kvi_pool *l = L->state;
  const size_t img = (size_t)l->h * l->w * l->c, oimg = (size_t)l->oh * l->ow * l->c;
  const int32_t *idx = c->ws; /* offsets of the maxima within their example */
  for (int b = 0; b < c->batch; b++)
    for (size_t o = 0; o < oimg; o++) {
      const size_t k = (size_t)b * oimg + o;
      r->RY[k] = r->RX ? r->RX[(size_t)b * img + (size_t)idx[k]] : 0;
    }
  return KVI_OK;
}

kvi_status kvi__pool_rop_bwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r) {
  if (r->RdX) kvi_pool_backward(r->RdX, r->RdY, c->ws, L->state, c->batch);
  return KVI_OK;
}

kvi_status kvi__flatten_rop_fwd(const kvi_layer *L, const kvi_layer_call *c,
                                const kvi_rop_call *r) {
  const size_t n = (size_t)c->batch * L->in_size;
  if (r->RX)
    memcpy(r->RY, r->RX, n * sizeof(kvi_real));
  else
    memset(r->RY, 0, n * sizeof(kvi_real));
  return KVI_OK;
}

kvi_status kvi__flatten_rop_bwd(const kvi_layer *L, const kvi_layer_call *c,
                                const kvi_rop_call *r) {
  if (r->RdX) memcpy(r->RdX, r->RdY, (size_t)c->batch * L->in_size * sizeof(kvi_real));
  return KVI_OK;
}
