/* 2-D convolution as im2col + the dense Bayesian layer (docs/nn-conv.md).
 * Images are HWC per example. With n = k*k*c_in taps and P = B*oh*ow output positions:
 *   cols (P, n)   row (b*oh + oy)*ow + ox, column (ky*k + kx)*c_in + ci
 *                 = X[b][(oy*stride - pad + ky, ox*stride - pad + kx, ci)], 0 in the padding
 *   Y (P, c_out)  = dense forward of cols: every family, local reparameterization per position.
 * Backward: dcols = dense backward of cols; dX = col2im(dcols), the adjoint of im2col (each
 * input pixel sums the gradients of every (position, tap) that read it). */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/layer.h"

/* im2col / col2im go parallel over the batch above this many copied elements, as the other
 * elementwise loops of the library (KVI__OMP_MIN in prob/): they are memory-bound, and below it
 * the fork/join costs more than the copy, worse on a loaded machine. */
#ifndef KVI__CONV_OMP_MIN
#define KVI__CONV_OMP_MIN (1u << 17)
#endif

static size_t kvi__al64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

kvi_status kvi_conv_declare(kvi_conv *l, kvi_params *p, const char *name, int h, int w, int c_in,
                            int c_out, int k, int stride, int pad, kvi_family family,
                            kvi_prior prior, double prior_var, bool bias) {
  if (!l || !p || !name) return kvi_fail(KVI_ERR_ARG, "conv_declare: NULL argument");
  if (h <= 0 || w <= 0 || c_in <= 0 || c_out <= 0)
    return kvi_fail(KVI_ERR_ARG,
                    "conv layer '%s': input %dx%dx%d and output channels %d must be positive", name,
                    h, w, c_in, c_out);
  if (k <= 0)
    return kvi_fail(KVI_ERR_ARG, "conv layer '%s': kernel size %d must be positive", name, k);
  if (stride < 1)
    return kvi_fail(KVI_ERR_ARG, "conv layer '%s': stride %d must be at least 1", name, stride);
  if (pad < 0)
    return kvi_fail(KVI_ERR_ARG, "conv layer '%s': padding %d must not be negative", name, pad);
  int64_t ph = (int64_t)h + 2 * (int64_t)pad, pw = (int64_t)w + 2 * (int64_t)pad;
  if (k > ph || k > pw)
    return kvi_fail(KVI_ERR_ARG,
                    "conv layer '%s': kernel %dx%d does not fit the padded input %lldx%lld "
                    "(%dx%d with padding %d)",
                    name, k, k, (long long)ph, (long long)pw, h, w, pad);
  int64_t oh = (ph - k) / stride + 1, ow = (pw - k) / stride + 1;
  int64_t taps = (int64_t)k * k * c_in, in_sz = (int64_t)h * w * c_in;
  int64_t out_sz = oh * ow * (int64_t)c_out;
  if (taps > INT_MAX || in_sz > INT_MAX || out_sz > INT_MAX)
    return kvi_fail(KVI_ERR_ARG,
                    "conv layer '%s': sizes too large (k*k*c_in = %lld, h*w*c_in = %lld, "
                    "oh*ow*c_out = %lld; each must fit in int)",
                    name, (long long)taps, (long long)in_sz, (long long)out_sz);
  kvi_status s =
      kvi_dense_declare(&l->d, p, name, (int)taps, c_out, family, prior, prior_var, bias);
  if (s) return s;
  l->h = h, l->w = w, l->c_in = c_in, l->k = k, l->stride = stride, l->pad = pad;
  l->oh = (int)oh, l->ow = (int)ow, l->c_out = c_out;
  return KVI_OK;
}

void kvi_conv_init(const kvi_conv *l, kvi_params *p, kvi_rng *rng, double gain,
                   double init_log_sigma) {
  kvi_dense_init(&l->d, p, rng, gain, init_log_sigma); /* fan-in n = k*k*c_in */
}

/* Rows of the unfolded input, B*oh*ow, which the dense layer takes as an int. */
static kvi_status kvi__conv_rows(int *rows, const kvi_conv *l, int batch, const char *fn) {
  if (batch <= 0) return kvi_fail(KVI_ERR_ARG, "%s: batch size %d must be positive", fn, batch);
  if (l->oh <= 0 || l->ow <= 0 || l->d.n != (int64_t)l->k * l->k * l->c_in)
    return kvi_fail(KVI_ERR_STATE, "%s: layer '%s' was not declared with kvi_conv_declare", fn,
                    l->d.name);
  int64_t r = (int64_t)batch * l->oh * l->ow;
  if (r > INT_MAX)
    return kvi_fail(KVI_ERR_ARG,
                    "%s: layer '%s': batch %d x %d x %d output positions = %lld rows does not "
                    "fit in int; use a smaller batch",
                    fn, l->d.name, batch, l->oh, l->ow, (long long)r);
  *rows = (int)r;
  return KVI_OK;
}

/* Workspace, each part 64-byte aligned: cols (P, n), dcols (P, n), the dense workspace. */
typedef struct {
  kvi_real *cols, *dcols;
  void *dense;
} kvi__conv_ws;

static kvi__conv_ws kvi__conv_ws_carve(void *ws, const kvi_conv *l, int rows) {
  size_t cb = kvi__al64((size_t)rows * (size_t)l->d.n * sizeof(kvi_real));
  kvi__conv_ws c = {(kvi_real *)ws, (kvi_real *)((char *)ws + cb), (char *)ws + 2 * cb};
  return c;
}

size_t kvi_conv_ws_size(const kvi_conv *l, int batch) {
  int64_t r = batch > 0 ? (int64_t)batch * l->oh * l->ow : 0;
  if (r <= 0 || r > INT_MAX) return 0; /* forward then fails with a message */
  size_t cb = kvi__al64((size_t)r * (size_t)l->d.n * sizeof(kvi_real));
  return 2 * cb + kvi_dense_ws_size(&l->d, (int)r);
}

size_t kvi_conv_noise_size(const kvi_conv *l, int batch) {
  int64_t r = batch > 0 ? (int64_t)batch * l->oh * l->ow : 0;
  if (r <= 0 || r > INT_MAX) return 0;
  return kvi_dense_noise_size(&l->d, (int)r); /* independent noise per output position */
}

/* Valid kernel columns [*kx0, *kx1) for an output column whose window starts at x0 (may be
 * negative in the left padding); empty when the window lies entirely in the padding. */
static void kvi__kx_range(int *kx0, int *kx1, int x0, int k, int w) {
  int a = x0 < 0 ? -x0 : 0, e = w - x0;
  if (a > k) a = k;
  if (e > k) e = k;
  if (e < a) e = a;
  *kx0 = a, *kx1 = e;
}

/* cols (B*oh*ow, n) from X (B, h*w*c_in): for each position and kernel row ky, the valid taps
 * (kx0..kx1) read one contiguous run of (kx1 - kx0) * c_in floats of the HWC image. */
static void kvi__im2col(kvi_real *cols, const kvi_real *X, const kvi_conv *l, int batch) {
  const int h = l->h, w = l->w, c = l->c_in, k = l->k, st = l->stride, pad = l->pad;
  const int oh = l->oh, ow = l->ow;
  const size_t n = (size_t)l->d.n, img = (size_t)h * w * c, kc = (size_t)k * c;
  const size_t work = (size_t)batch * oh * ow * n;
#pragma omp parallel for schedule(static) if (batch > 1 && work > KVI__CONV_OMP_MIN)
  for (int b = 0; b < batch; b++) {
    const kvi_real *x = X + (size_t)b * img;
    kvi_real *row = cols + (size_t)b * oh * ow * n;
    for (int oy = 0; oy < oh; oy++) {
      const int y0 = oy * st - pad;
      for (int ox = 0; ox < ow; ox++, row += n) {
        const int x0 = ox * st - pad;
        int kx0, kx1;
        kvi__kx_range(&kx0, &kx1, x0, k, w);
        for (int ky = 0; ky < k; ky++) {
          kvi_real *dst = row + (size_t)ky * kc;
          const int iy = y0 + ky;
          if (iy < 0 || iy >= h || kx1 == kx0) {
            memset(dst, 0, kc * sizeof *dst);
            continue;
          }
          if (kx0 > 0) memset(dst, 0, (size_t)kx0 * c * sizeof *dst);
          memcpy(dst + (size_t)kx0 * c, x + ((size_t)iy * w + (size_t)(x0 + kx0)) * c,
                 (size_t)(kx1 - kx0) * c * sizeof *dst);
          if (kx1 < k) memset(dst + (size_t)kx1 * c, 0, (size_t)(k - kx1) * c * sizeof *dst);
        }
      }
    }
  }
}

/* dX (B, h*w*c_in) = col2im(dcols): the transpose of im2col, padding taps dropped. Examples are
 * disjoint in dX, so the batch loop is race-free. */
static void kvi__col2im(kvi_real *dX, const kvi_real *dcols, const kvi_conv *l, int batch) {
  const int h = l->h, w = l->w, c = l->c_in, k = l->k, st = l->stride, pad = l->pad;
  const int oh = l->oh, ow = l->ow;
  const size_t n = (size_t)l->d.n, img = (size_t)h * w * c, kc = (size_t)k * c;
  const size_t work = (size_t)batch * oh * ow * n;
#pragma omp parallel for schedule(static) if (batch > 1 && work > KVI__CONV_OMP_MIN)
  for (int b = 0; b < batch; b++) {
    kvi_real *dx = dX + (size_t)b * img;
    const kvi_real *row = dcols + (size_t)b * oh * ow * n;
    memset(dx, 0, img * sizeof *dx);
    for (int oy = 0; oy < oh; oy++) {
      const int y0 = oy * st - pad;
      for (int ox = 0; ox < ow; ox++, row += n) {
        const int x0 = ox * st - pad;
        int kx0, kx1;
        kvi__kx_range(&kx0, &kx1, x0, k, w);
        const size_t len = (size_t)(kx1 - kx0) * c;
        for (int ky = 0; ky < k; ky++) {
          const int iy = y0 + ky;
          if (iy < 0 || iy >= h) continue;
          const kvi_real *src = row + (size_t)ky * kc + (size_t)kx0 * c;
          kvi_real *dst = dx + ((size_t)iy * w + (size_t)(x0 + kx0)) * c;
          for (size_t i = 0; i < len; i++) dst[i] += src[i];
        }
      }
    }
  }
}

static kvi_status kvi__conv_args(const void *out, const void *ws, const kvi_conv *l, const void *p,
                                 const void *X, const char *fn) {
  if (!out || !ws || !l || !p || !X)
    return kvi_fail(KVI_ERR_ARG, "%s: NULL argument (output, workspace, layer, params or X)", fn);
  if (((uintptr_t)ws) % 64)
    return kvi_fail(KVI_ERR_ARG, "%s: workspace %p is not 64-byte aligned", fn, ws);
  return KVI_OK;
}

kvi_status kvi_conv_forward(kvi_real *Y, void *ws, const kvi_conv *l, const kvi_params *p,
                            const kvi_real *X, const kvi_real *eps, int batch) {
  const char *fn = "conv_forward";
  kvi_status s = kvi__conv_args(Y, ws, l, p, X, fn);
  int rows = 0;
  if (!s) s = kvi__conv_rows(&rows, l, batch, fn);
  if (s) return s;
  kvi__conv_ws c = kvi__conv_ws_carve(ws, l, rows);
  kvi__im2col(c.cols, X, l, batch);
  /* Y (P, c_out) = cols W + b, W ~ q: LRT with one noise row per output position */
  return kvi_dense_forward(Y, c.dense, &l->d, p, c.cols, eps, rows);
}

kvi_status kvi_conv_backward(kvi_real *dX, kvi_params *p, const kvi_real *dY, void *ws,
                             const kvi_conv *l, const kvi_real *X, const kvi_real *eps, int batch) {
  const char *fn = "conv_backward";
  kvi_status s = kvi__conv_args(dY, ws, l, p, X, fn);
  int rows = 0;
  if (!s) s = kvi__conv_rows(&rows, l, batch, fn);
  if (s) return s;
  /* cols still hold the forward's unfolded X (X itself is only used for the checks above) */
  kvi__conv_ws c = kvi__conv_ws_carve(ws, l, rows);
  s = kvi_dense_backward(dX ? c.dcols : NULL, p, dY, c.dense, &l->d, c.cols, eps, rows);
  if (s) return s;
  if (dX) kvi__col2im(dX, c.dcols, l, batch);
  return KVI_OK;
}

/* ---- the conv kind of the layer interface (kronvi/layer.h) -------------------------------- */
static int kvi__conv_match(const char *token, const kvi_shape *in) {
  return in->image && token[0] >= '0' && token[0] <= '9';
}

/* Reads a positive integer at *s (at most 1e6), advancing *s. */
static bool kvi__conv_int(const char **s, int *v) {
  char *end;
  long x = strtol(*s, &end, 10);
  if (end == *s || x <= 0 || x > 1000000) return false;
  *v = (int)x;
  *s = end;
  return true;
}

/* "C" or "CkKsSpP": C filters, kernel K (3), stride S (1), padding P (same: (K - 1) / 2). */
static kvi_status kvi__conv_token(const char *t, int *c_out, int *k, int *stride, int *pad) {
  const char *q = t;
  if (!kvi__conv_int(&q, c_out)) return kvi_fail(KVI_ERR_ARG, "bad filter count in '%s'", t);
  *k = 3, *stride = 1, *pad = -1;
  while (*q) {
    char opt = *q++;
    int x = 0;
    if (opt == 'p' && *q == '0' && !(q[1] >= '0' && q[1] <= '9'))
      x = 0, q++;
    else if (!kvi__conv_int(&q, &x))
      return kvi_fail(KVI_ERR_ARG, "bad option in '%s'", t);
    if (opt == 'k')
      *k = x;
    else if (opt == 's')
      *stride = x;
    else if (opt == 'p')
      *pad = x;
    else
      return kvi_fail(KVI_ERR_ARG, "unknown option '%c' in '%s' (expected k, s or p)", opt, t);
  }
  if (*pad < 0) *pad = (*k - 1) / 2; /* same padding for odd kernels */
  return KVI_OK;
}

static kvi_status kvi__conv_create(kvi_layer *L, const kvi_layer_args *a) {
  int c_out = 0, k = 3, stride = 1, pad = 0;
  kvi_status s = kvi__conv_token(a->token, &c_out, &k, &stride, &pad);
  if (s) return s;
  kvi_conv *l = calloc(1, sizeof *l);
  if (!l) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  L->state = l;
  s = kvi_conv_declare(l, a->params, a->name, a->in.h, a->in.w, a->in.c, c_out, k, stride, pad,
                       a->family, a->prior, a->prior_var, a->bias);
  L->out = (kvi_shape){l->oh, l->ow, c_out, true};
  return s;
}

static void kvi__conv_init(const kvi_layer *L, kvi_params *p, kvi_rng *rng, double gain,
                           double init_log_sigma) {
  kvi_conv_init(L->state, p, rng, gain, init_log_sigma);
}
static size_t kvi__conv_wsize(const kvi_layer *L, int batch) {
  return kvi_conv_ws_size(L->state, batch);
}
static size_t kvi__conv_noise(const kvi_layer *L, int batch) {
  return kvi_conv_noise_size(L->state, batch);
}
static kvi_status kvi__conv_fwd(const kvi_layer *L, const kvi_layer_call *c) {
  return kvi_conv_forward(c->Y, c->ws, L->state, c->params, c->X, c->eps, c->batch);
}
/* The observer gets the forward's im2col patches (still in the workspace) and dY, whose rows
 * are the output positions. */
static kvi_status kvi__conv_bwd(const kvi_layer *L, const kvi_layer_call *c) {
  const kvi_conv *l = L->state;
  if (c->observer) {
    int rows = 0;
    kvi_status s = kvi__conv_rows(&rows, l, c->batch, "conv capture");
    if (!s) s = kvi_layer_capture(L, c, kvi__conv_ws_carve(c->ws, l, rows).cols, c->dY, rows);
    if (s) return s;
  }
  return kvi_conv_backward(c->dX, c->params, c->dY, c->ws, l, c->X, c->eps, c->batch);
}
static kvi_dense *kvi__conv_weights(const kvi_layer *L) { return &((kvi_conv *)L->state)->d; }

const kvi_layer_ops kvi_conv_ops = {
    .kind = "conv",
    .prefix = "conv",
    .match = kvi__conv_match,
    .create = kvi__conv_create,
    .init = kvi__conv_init,
    .ws_size = kvi__conv_wsize,
    .noise_size = kvi__conv_noise,
    .forward = kvi__conv_fwd,
    .backward = kvi__conv_bwd,
    .weights = kvi__conv_weights,
    .kl = kvi_layer_weights_kl,
};
