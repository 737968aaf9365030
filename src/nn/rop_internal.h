/* Private to src/nn: the R-operator of the built-in kinds (rop.c), referenced by their ops
 * tables (kronvi/layer.h, rop_ws_size / rop_forward / rop_backward). */
#ifndef KRONVI_NN_ROP_INTERNAL_H
#define KRONVI_NN_ROP_INTERNAL_H

#include "kronvi/layer.h"

kvi_status kvi__dense_rop_fwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);
kvi_status kvi__dense_rop_bwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);
size_t kvi__conv_rop_ws(const kvi_layer *L, int batch);
kvi_status kvi__conv_rop_fwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);
kvi_status kvi__conv_rop_bwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);
kvi_status kvi__act_rop_fwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);
kvi_status kvi__act_rop_bwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);
kvi_status kvi__pool_rop_fwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);
kvi_status kvi__pool_rop_bwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);
kvi_status kvi__flatten_rop_fwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);
kvi_status kvi__flatten_rop_bwd(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);

#endif
