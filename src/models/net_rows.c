/* Row slices of a point network's passes, for data-parallel steps (the VAE's, vae.c): each
 * thread runs the forward and the input-gradient backward of its own rows of the batch through
 * every layer, with one-thread matrix products, and the weight gradients X^T dY of the whole
 * batch come after one barrier, a whole product per layer on one thread. Only layers whose
 * passes are row-local qualify: point dense layers and elementwise activations (no noise, no
 * workspace); kvi__net_rows_ok says whether a net has only those. */
#include "kronvi/layer.h"
#include "models/models_internal.h"

bool kvi__net_rows_ok(const kvi_net *net) {
  if (!net || net->observer || net->grad_hook) return false;
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_layer *L = &net->layers[i];
    if (L->ops == &kvi_act_ops) continue;
    if (L->ops != &kvi_dense_ops || ((const kvi_dense *)L->state)->family != KVI_FAMILY_POINT)
      return false;
  }
  return true;
}

void kvi__net_rows_begin(kvi_net *net, const kvi_real *X, int batch) {
  net->acts[0] = (kvi_real *)X;
  net->noisy = 0;
  net->batch_total = batch;
}

/* The call of layer i on rows [r0, r0 + nr): pointers into the whole batch's buffers. */
static kvi_layer_call kvi__slice_call(const kvi_net *net, int i, int r0, int nr) {
  const kvi_layer *L = &net->layers[i];
  const size_t ri = (size_t)r0 * L->in_size, ro = (size_t)r0 * L->out_size;
  kvi_layer_call c = {.params = net->params,
                      .ws = net->ws[i],
                      .batch = nr,
                      .X = net->acts[i] + ri,
                      .Y = net->acts[i + 1] + ro,
                      .weight = 0,
                      .batch_total = net->batch_total};
  return c;
}

kvi_status kvi__net_rows_forward(kvi_net *net, int r0, int nr) {
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_layer *L = &net->layers[i];
    kvi_layer_call c = kvi__slice_call(net, i, r0, nr);
    kvi_status s = L->ops->forward(L, &c);
    if (s) return s;
  }
  return KVI_OK;
}

kvi_status kvi__net_rows_backward_input(kvi_net *net, const kvi_real *dOut, int r0, int nr,
                                        bool input) {
  for (int i = net->nlayers - 1; i >= 0; i--) {
    const kvi_layer *L = &net->layers[i];
    if (i == 0 && !input) break;
    kvi_layer_call c = kvi__slice_call(net, i, r0, nr);
    const kvi_real *dY = i == net->nlayers - 1 ? dOut : net->grads[i + 1];
    c.dY = dY + (size_t)r0 * L->out_size;
    c.dX = net->grads[i] + (size_t)r0 * L->in_size;
    if (L->ops == &kvi_dense_ops) { /* dX = dY M^T; the weight gradient waits for every row */
      const kvi_dense *d = L->state;
      kvi_gemm(false, true, nr, d->n, d->m, 1, c.dY, d->m, kvi_params_data(net->params, d->iM),
               d->m, 0, c.dX, d->n);
      continue;
    }
    kvi_status s = L->ops->backward(L, &c);
    if (s) return s;
  }
  return KVI_OK;
}

int kvi__net_rows_weight_layers(const kvi_net *net, int *layer, double *cost) {
  int k = 0;
  for (int i = 0; i < net->nlayers; i++)
    if (net->layers[i].ops == &kvi_dense_ops) {
      const kvi_dense *d = net->layers[i].state;
      if (layer) layer[k] = i;
      if (cost) cost[k] = (double)d->n * d->m;
      k++;
    }
  return k;
}

void kvi__net_rows_weight_grad(kvi_net *net, int i, const kvi_real *dOut, int batch) {
  const kvi_dense *d = net->layers[i].state;
  const kvi_real *dY = i == net->nlayers - 1 ? dOut : net->grads[i + 1];
  /* the point layer's backward without dX: dM += X^T dY, db += the rows of dY in order */
  kvi_status s =
      kvi_dense_backward(NULL, net->params, dY, net->ws[i], d, net->acts[i], NULL, batch);
  (void)s; /* its arguments are the net's own buffers: it cannot fail here */
}
