/* 2x2 max-pooling with stride 2 over HWC images (docs/nn-conv.md):
 *   Y[b](oy, ox, ch) = max over dy, dx in {0, 1} of X[b](2 oy + dy, 2 ox + dx, ch),
 * odd sizes drop the last row / column (oh = h / 2, ow = w / 2). The forward records the offset
 * (within the example) of each maximum, the first one in the order (0,0), (0,1), (1,0), (1,1)
 * on ties; the backward routes dY there: dX = sum over outputs of dY * [x is the argmax]. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/layer.h"
#include "nn/rop_internal.h"

#include "core/vmath.h" /* KVI__HOT */

#ifndef KVI__POOL_OMP_MIN
#define KVI__POOL_OMP_MIN (1u << 17)
#endif

kvi_status kvi_pool_init(kvi_pool *l, int h, int w, int c) {
  if (!l) return kvi_fail(KVI_ERR_ARG, "pool_init: NULL layer");
  if (h < 2 || w < 2 || c < 1)
    return kvi_fail(KVI_ERR_ARG,
                    "max-pool 2x2: input %dx%dx%d too small (height and width need at least 2, "
                    "channels at least 1)",
                    h, w, c);
  if ((int64_t)h * w * c > INT_MAX)
    return kvi_fail(KVI_ERR_ARG, "max-pool 2x2: input %dx%dx%d has more than INT_MAX elements", h,
                    w, c);
  l->h = h, l->w = w, l->c = c, l->oh = h / 2, l->ow = w / 2;
  return KVI_OK;
}

size_t kvi_pool_ws_size(const kvi_pool *l, int batch) {
  if (batch <= 0) return 0;
  return (size_t)batch * l->oh * l->ow * l->c * sizeof(int32_t);
}

/* Channel lanes per vector step. A window of c channels is handled in ceil(c / LANES) steps of
 * LANES (a constant trip count, so each step is whole vectors): the lanes past c belong to the
 * next window(s) of the same output row, which are written later and overwrite them. The last
 * windows of a row, where the extra lanes would leave the row, take the exact loop. */
#define KVI__POOL_LANES 16

/* Lanes [0, n) of one window whose top-left input is at offset o0 (within the example, w c the
 * input row length): the four inputs compared with selects (strict >: the first maximum wins),
 * the offset of the winner stored. Inlined with n = KVI__POOL_LANES: whole vectors. */
static inline void kvi__pool_lanes(kvi_real *restrict y, int32_t *restrict id,
                                   const kvi_real *restrict x, int32_t o0, int32_t c, int32_t wc,
                                   int n) {
  const kvi_real *x0 = x + o0, *x1 = x0 + c, *x2 = x0 + wc, *x3 = x2 + c;
#pragma omp simd
  for (int k = 0; k < n; k++) {
    kvi_real v = x0[k];
    int32_t best = o0 + k;
    if (x1[k] > v) v = x1[k], best = o0 + c + k;
    if (x2[k] > v) v = x2[k], best = o0 + wc + k;
    if (x3[k] > v) v = x3[k], best = o0 + wc + c + k;
    y[k] = v;
    id[k] = best;
  }
}

/* Windows [ox0, ox1) of output row oy of one example, lanes [0, lanes) of each. */
KVI__HOT static void kvi__pool_windows(kvi_real *restrict y, int32_t *restrict id,
                                       const kvi_real *restrict x, int oy, int ox0, int ox1,
                                       int lanes, const kvi_pool *l) {
  const int32_t c = l->c, wc = l->w * c;
  for (int ox = ox0; ox < ox1; ox++) {
    const int32_t o0 = 2 * oy * wc + 2 * ox * c;
    for (int c0 = 0; c0 < lanes; c0 += KVI__POOL_LANES) {
      const size_t q = (size_t)ox * c + c0;
      if (lanes - c0 >= KVI__POOL_LANES)
        kvi__pool_lanes(y + q, id + q, x, o0 + c0, c, wc, KVI__POOL_LANES);
      else
        kvi__pool_lanes(y + q, id + q, x, o0 + c0, c, wc, lanes - c0);
    }
  }
}

/* The channel width rounded up to whole lane steps (cw), and how many windows of a row may use
 * them: window ox writes outputs [ox c, ox c + cw) and reads inputs up to column 2 ox + 1 plus
 * cw lanes, all inside the row while ox c + cw <= ow c. */
static int kvi__pool_fast_windows(const kvi_pool *l, int *cw) {
  const int c = l->c, ow = l->ow;
  *cw = (c + KVI__POOL_LANES - 1) / KVI__POOL_LANES * KVI__POOL_LANES;
  const int64_t nf = ((int64_t)ow * c - *cw) / c + 1;
  return nf < 0 ? 0 : nf > ow ? ow : (int)nf;
}

void kvi_pool_forward(kvi_real *Y, void *ws, const kvi_pool *l, const kvi_real *X, int batch) {
  const int oh = l->oh, ow = l->ow;
  const size_t img = (size_t)l->h * l->w * l->c, oimg = (size_t)oh * ow * l->c;
  const size_t orow = (size_t)ow * l->c;
  int cw;
  const int nf = kvi__pool_fast_windows(l, &cw);
  int32_t *idx = ws;
#pragma omp parallel for schedule(static) if (batch > 1 && (size_t)batch * img > KVI__POOL_OMP_MIN)
  for (int b = 0; b < batch; b++)
    for (int oy = 0; oy < oh; oy++) {
      kvi_real *y = Y + (size_t)b * oimg + oy * orow;
      int32_t *id = idx + (size_t)b * oimg + oy * orow;
      kvi__pool_windows(y, id, X + (size_t)b * img, oy, 0, nf, cw, l);
      kvi__pool_windows(y, id, X + (size_t)b * img, oy, nf, ow, l->c, l);
    }
}

void kvi_pool_backward(kvi_real *dX, const kvi_real *dY, const void *ws, const kvi_pool *l,
                       int batch) {
  const size_t img = (size_t)l->h * l->w * l->c, oimg = (size_t)l->oh * l->ow * l->c;
  const int32_t *idx = ws;
#pragma omp parallel for schedule(static) if (batch > 1 && (size_t)batch * img > KVI__POOL_OMP_MIN)
  for (int b = 0; b < batch; b++) {
    kvi_real *dx = dX + (size_t)b * img;
    const kvi_real *dy = dY + (size_t)b * oimg;
    const int32_t *id = idx + (size_t)b * oimg;
    memset(dx, 0, img * sizeof *dx);
    for (size_t o = 0; o < oimg; o++) dx[id[o]] += dy[o]; /* windows are disjoint */
  }
}

/* ---- the pool kind of the layer interface (kronvi/layer.h) -------------------------------- */
static int kvi__pool_match(const char *token, const kvi_shape *in) {
  return !strcmp(token, "mp") || !strcmp(token, "maxpool");
}

static kvi_status kvi__pool_create(kvi_layer *L, const kvi_layer_args *a) {
  if (!a->in.image) return kvi_fail(KVI_ERR_ARG, "'mp' after 'flatten' (pooling needs images)");
  kvi_pool *l = calloc(1, sizeof *l);
  if (!l) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  L->state = l;
  kvi_status s = kvi_pool_init(l, a->in.h, a->in.w, a->in.c);
  L->out = (kvi_shape){l->oh, l->ow, a->in.c, true};
  return s;
}
static size_t kvi__pool_ws(const kvi_layer *L, int batch) {
  return kvi_pool_ws_size(L->state, batch);
}
static kvi_status kvi__pool_fwd(const kvi_layer *L, const kvi_layer_call *c) {
  kvi_pool_forward(c->Y, c->ws, L->state, c->X, c->batch);
  return KVI_OK;
}
static kvi_status kvi__pool_bwd(const kvi_layer *L, const kvi_layer_call *c) {
  if (c->dX) kvi_pool_backward(c->dX, c->dY, c->ws, L->state, c->batch);
  return KVI_OK;
}

const kvi_layer_ops kvi_pool_ops = {
    .kind = "pool",
    .match = kvi__pool_match,
    .create = kvi__pool_create,
    .ws_size = kvi__pool_ws,
    .forward = kvi__pool_fwd,
    .backward = kvi__pool_bwd,
    .rop_forward = kvi__pool_rop_fwd,
    .rop_backward = kvi__pool_rop_bwd,
};
