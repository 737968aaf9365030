/* Private to the models module: the two phases of building a net. */
#ifndef KRONVI_MODELS_INTERNAL_H
#define KRONVI_MODELS_INTERNAL_H

#include "kronvi/models.h"

#define KVI__MAX_TOKENS 65 /* the input and 64 layers */

/* Declares the net's layers and parameter views into p (NULL: the net's own block), checks
 * the memory estimate. Parameter names get the prefix name. */
kvi_status kvi__net_declare(kvi_net **out, kvi_params *p, const char *name, const char *arch,
                            int in_size, const kvi_net_config *cfg, int max_batch);
/* After the block is allocated: activations, workspaces, noise; initial values from the stream
 * (seed, 0x1a17 + stream). */
kvi_status kvi__net_finish(kvi_net *net, uint64_t seed, uint64_t stream);

/* Row slices of a net's passes (net_rows.c), for data-parallel steps inside one parallel region:
 * the forward and the input-gradient backward of rows [r0, r0 + nr) of a batch, then, after a
 * barrier, each weight layer's gradient over the whole batch. Only for nets of point dense layers
 * and activations without observer or hook (kvi__net_rows_ok). */
bool kvi__net_rows_ok(const kvi_net *net);
/* Before the region: the whole batch's input X (batch, in_size). */
void kvi__net_rows_begin(kvi_net *net, const kvi_real *X, int batch);
kvi_status kvi__net_rows_forward(kvi_net *net, int r0, int nr);
/* dOut: the whole batch's output gradient; input: also the first layer's input gradient. */
kvi_status kvi__net_rows_backward_input(kvi_net *net, const kvi_real *dOut, int r0, int nr,
                                        bool input);
/* The dense layers' indices (layer may be NULL) and multiply-adds per row (cost, may be NULL);
 * returns their count. */
int kvi__net_rows_weight_layers(const kvi_net *net, int *layer, double *cost);
/* dM += X^T dY and db += the column sums of dY of dense layer i over the whole batch
 * (kvi_dense_backward without an input gradient). */
void kvi__net_rows_weight_grad(kvi_net *net, int i, const kvi_real *dOut, int batch);

#endif
