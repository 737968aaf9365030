/* "flatten": ends the image part of a network. Images are stored HWC per example, so the
 * flattened vector is the image as it is: the forward copies, the backward copies back. */
#include <string.h>

#include "kronvi/layer.h"
#include "nn/rop_internal.h"

static int kvi__flatten_match(const char *token, const kvi_shape *in) {
  return !strcmp(token, "flatten") || !strcmp(token, "fl");
}

static kvi_status kvi__flatten_create(kvi_layer *L, const kvi_layer_args *a) {
  if (!a->in.image) return kvi_fail(KVI_ERR_ARG, "a second 'flatten' (or 'flatten' of a vector)");
  L->out = (kvi_shape){1, 1, kvi_shape_size(a->in), false};
  return KVI_OK;
}
static kvi_status kvi__flatten_fwd(const kvi_layer *L, const kvi_layer_call *c) {
  if (c->Y != c->X) memcpy(c->Y, c->X, (size_t)c->batch * L->in_size * sizeof(kvi_real));
  return KVI_OK;
}
static kvi_status kvi__flatten_bwd(const kvi_layer *L, const kvi_layer_call *c) {
  if (c->dX && c->dX != c->dY)
    memcpy(c->dX, c->dY, (size_t)c->batch * L->in_size * sizeof(kvi_real));
  return KVI_OK;
}

const kvi_layer_ops kvi_flatten_ops = {
    .kind = "flatten",
    .match = kvi__flatten_match,
    .create = kvi__flatten_create,
    .forward = kvi__flatten_fwd,
    .backward = kvi__flatten_bwd,
    .rop_forward = kvi__flatten_rop_fwd,
    .rop_backward = kvi__flatten_rop_bwd,
};
