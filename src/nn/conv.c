/* 2-D convolution as im2col + the dense Bayesian layer (docs/nn-conv.md): declaration and the
 * layer kind; the passes are in conv_run.c.
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
#include "nn/rop_internal.h"
#include "nn/conv_internal.h"

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
  l->oh = (int)oh, l->ow = (int)ow, l->c_out = c_out, l->chunk = 0;
  return KVI_OK;
}

void kvi_conv_init(const kvi_conv *l, kvi_params *p, kvi_rng *rng, double gain,
                   double init_log_sigma) {
  kvi_dense_init(&l->d, p, rng, gain, init_log_sigma); /* fan-in n = k*k*c_in */
}

size_t kvi_conv_noise_size(const kvi_conv *l, int batch) {
  int64_t r = batch > 0 ? (int64_t)batch * l->oh * l->ow : 0;
  if (r <= 0 || r > INT_MAX) return 0;
  return kvi_dense_noise_size(&l->d, (int)r); /* independent noise per output position */
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
/* eps1 (B oh ow, m), then MN+DIAG's eps2 (B oh ow, m); rows (example, position) */
static int kvi__conv_noise_parts(const kvi_layer *L) {
  return ((const kvi_conv *)L->state)->d.family == KVI_FAMILY_MNDIAG ? 2 : 1;
}
static kvi_status kvi__conv_fwd(const kvi_layer *L, const kvi_layer_call *c) {
  return kvi_conv_forward(c->Y, c->ws, L->state, c->params, c->X, c->eps, c->batch);
}
/* The observer gets the forward's im2col patches (in the workspace, or unfolded again when the
 * forward ran the direct kernels) and dY, whose rows are the output positions. */
static kvi_status kvi__conv_bwd(const kvi_layer *L, const kvi_layer_call *c) {
  const kvi_conv *l = L->state;
  if (c->observer) {
    int rows = 0;
    kvi_status s = kvi__conv_rows(&rows, l, c->batch, "conv capture");
    if (!s)
      s = kvi_layer_capture(L, c, kvi__conv_cols(c->ws, l, c->X, c->eps, c->batch), c->dY, rows);
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
    .noise_parts = kvi__conv_noise_parts,
    .forward = kvi__conv_fwd,
    .backward = kvi__conv_bwd,
    .weights = kvi__conv_weights,
    .kl = kvi_layer_weights_kl,
    .rop_ws_size = kvi__conv_rop_ws,
    .rop_forward = kvi__conv_rop_fwd,
    .rop_backward = kvi__conv_rop_bwd,
};
