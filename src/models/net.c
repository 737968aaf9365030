/* A network's passes: forward, backward, KL and the queries over its weight layers, all
 * dispatched through the layer kinds' ops tables (kronvi/layer.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/models_internal.h"

/* Layer L's noise for rows [row0, row0 + batch) of batch_total: part p of the whole draw is
 * (batch_total, per) example-major at element p * batch_total * per. */
static void kvi__draw_rows(const kvi_layer *L, kvi_real *eps, const kvi_rng *rng, int64_t row0,
                           int batch, int batch_total) {
  const int parts = L->ops->noise_parts ? L->ops->noise_parts(L) : 1;
  const size_t per = L->ops->noise_size(L, 1) / (size_t)parts; /* per example and part */
  for (int p = 0; p < parts; p++)
    kvi_rng_normal_at(rng, ((uint64_t)p * (uint64_t)batch_total + (uint64_t)row0) * per,
                      eps + (size_t)p * batch * per, (size_t)batch * per);
}

/* Layer i's forward from acts[i] into acts[i + 1] (eps NULL: the means). */
static kvi_status kvi__layer_forward(kvi_net *net, int i, int batch, const kvi_real *eps) {
  const kvi_layer *L = &net->layers[i];
  kvi_layer_call c = {.params = net->params,
                      .ws = net->ws[i],
                      .batch = batch,
                      .X = net->acts[i],
                      .Y = net->acts[i + 1],
                      .eps = eps};
  return L->ops->forward(L, &c);
}

kvi_status kvi_net_forward_rows(kvi_net *net, const kvi_real **out, const kvi_real *X, int batch,
                                kvi_rng *rng, int64_t row0, int batch_total) {
  if (!net || !out || !X || batch <= 0 || batch > net->max_batch)
    return kvi_fail(KVI_ERR_ARG, "net_forward: batch %d outside [1, %d] or NULL argument", batch,
                    net ? net->max_batch : 0);
  if (row0 < 0 || row0 + batch > batch_total)
    return kvi_fail(KVI_ERR_ARG, "net_forward: rows [%lld, %lld) outside a batch of %d",
                    (long long)row0, (long long)row0 + batch, batch_total);
  const bool whole = row0 == 0 && batch == batch_total;
  net->acts[0] = (kvi_real *)X;
  net->noisy = rng != NULL;
  net->batch_total = batch_total;
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_layer *L = &net->layers[i];
    size_t nz = rng && L->ops->noise_size ? L->ops->noise_size(L, batch) : 0;
    if (nz && whole) {
      kvi_rng_normal(rng, net->noise[i], nz);
    } else if (nz) {
      kvi__draw_rows(L, net->noise[i], rng, row0, batch, batch_total);
      rng->ctr += (L->ops->noise_size(L, batch_total) + 3) / 4; /* as the whole draw */
    }
    kvi_status s = kvi__layer_forward(net, i, batch, nz ? net->noise[i] : NULL);
    if (s) return s;
  }
  *out = net->acts[net->nlayers];
  return KVI_OK;
}

kvi_status kvi_net_forward_from(kvi_net *net, const kvi_real **out, int first, int batch) {
  if (!net || !out || batch <= 0 || batch > net->max_batch || first < 0 || first > net->nlayers)
    return kvi_fail(KVI_ERR_ARG, "net_forward_from: layer %d or batch %d out of range", first,
                    batch);
  net->noisy = 0;
  net->batch_total = batch;
  for (int i = first; i < net->nlayers; i++) {
    kvi_status s = kvi__layer_forward(net, i, batch, NULL);
    if (s) return s;
  }
  *out = net->acts[net->nlayers];
  return KVI_OK;
}

kvi_status kvi_net_forward(kvi_net *net, const kvi_real **out, const kvi_real *X, int batch,
                           kvi_rng *rng) {
  return kvi_net_forward_rows(net, out, X, batch, rng, 0, batch);
}

/* The layers in reverse; the first writes the input gradient into grads[0] only if `input`. */
static kvi_status kvi__net_backward(kvi_net *net, const kvi_real *dOut, int batch, bool input) {
  if (!net || !dOut || batch <= 0 || batch > net->max_batch)
    return kvi_fail(KVI_ERR_ARG, "net_backward: bad arguments");
  int weight = 0;
  kvi_net_dense(net, 0, &weight);
  const kvi_real *dy = dOut;
  for (int i = net->nlayers - 1; i >= 0; i--) {
    const kvi_layer *L = &net->layers[i];
    if (L->ops->weights) weight--;
    kvi_layer_call c = {.params = net->params,
                        .ws = net->ws[i],
                        .batch = batch,
                        .X = net->acts[i],
                        .Y = net->acts[i + 1],
                        .eps = net->noisy ? net->noise[i] : NULL,
                        .dY = dy,
                        .dX = i > 0 || input ? net->grads[i] : NULL, /* the data: if asked */
                        .observer = net->observer,
                        .observer_user = net->observer_user,
                        .weight = weight,
                        .batch_total = net->batch_total};
    kvi_status s = L->ops->backward(L, &c);
    if (!s && net->grad_hook) s = net->grad_hook(net->grad_hook_user, i);
    if (s) return s;
    dy = c.dX;
  }
  return KVI_OK;
}

kvi_status kvi_net_backward(kvi_net *net, const kvi_real *dOut, int batch) {
  return kvi__net_backward(net, dOut, batch, false);
}

kvi_status kvi_net_backward_input(kvi_net *net, const kvi_real *dOut, int batch,
                                  const kvi_real **dX) {
  if (!dX) return kvi_fail(KVI_ERR_ARG, "net_backward_input: NULL argument");
  kvi_status s = kvi__net_backward(net, dOut, batch, true);
  *dX = s ? NULL : net->grads[0];
  return s;
}

kvi_status kvi_net_kl(kvi_net *net, double *kl, kvi_real gscale) {
  double total = 0;
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_layer *L = &net->layers[i];
    if (!L->ops->kl) continue;
    double k;
    kvi_status s = L->ops->kl(L, net->params, &k, gscale);
    if (s) return s;
    total += k;
  }
  *kl = total;
  return KVI_OK;
}

bool kvi_net_ard_block(kvi_net *net, int i, kvi_real gscale, double *kl, kvi_ard_block *b) {
  if (!net || !b || i < 0 || i >= net->nlayers) return false;
  const kvi_layer *L = &net->layers[i];
  const kvi_dense *d = L->ops->kl && L->ops->weights ? L->ops->weights(L) : NULL;
  if (!d || d->prior != KVI_PRIOR_ARD) return false;
  kvi_params *p = net->params;
  const size_t oM = (size_t)(kvi_params_data(p, d->iM) - p->data);
  if (d->family == KVI_FAMILY_DIAG) {
    kvi_diag q = {d->n, d->m, kvi_params_data(p, d->iM), kvi_params_data(p, d->iS)};
    if (!kvi_diag_kl_ard_fusable(&q)) return false;
    *b = (kvi_ard_block){.mu = oM,
                         .log_sigma = (size_t)(q.log_sigma - p->data),
                         .n = (size_t)d->n * d->m,
                         .gscale = gscale,
                         .kl = kl};
    return true;
  }
  if (d->family == KVI_FAMILY_MN) {
    *b = (kvi_ard_block){.mu = oM,
                         .gscale = gscale,
                         .kl = kl,
                         .rows = d->n,
                         .cols = d->m,
                         .A = (size_t)(kvi_params_data(p, d->iA) - p->data),
                         .B = (size_t)(kvi_params_data(p, d->iB) - p->data)};
    return true;
  }
  return false;
}

kvi_status kvi_net_kl_split(kvi_net *net, double *layer_kl, kvi_real gscale, kvi_ard_block *b,
                            int *nb) {
  if (!net || !layer_kl || !b || !nb) return kvi_fail(KVI_ERR_ARG, "net_kl_split: NULL argument");
  *nb = 0;
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_layer *L = &net->layers[i];
    layer_kl[i] = 0;
    if (!L->ops->kl) continue;
    if (kvi_net_ard_block(net, i, gscale, &layer_kl[i], &b[*nb])) {
      (*nb)++;
      continue;
    }
    kvi_status s = L->ops->kl(L, net->params, &layer_kl[i], gscale);
    if (s) return s;
  }
  return KVI_OK;
}

kvi_status kvi_net_prior_update(kvi_net *net) {
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    kvi_status s = kvi_dense_prior_update(net->params, kvi_net_dense(net, k, NULL), net->arena);
    if (s) return s;
  }
  return KVI_OK;
}

size_t kvi_net_param_count(const kvi_net *net) {
  size_t c = 0;
  for (int k = 0, nd = 1; k < nd; k++) {
    const kvi_dense *d = kvi_net_dense((kvi_net *)net, k, &nd);
    if (d) c += kvi_dense_param_count(d);
  }
  return c;
}

size_t kvi_net_weight_count(const kvi_net *net) {
  size_t c = 0;
  for (int k = 0, nd = 1; k < nd; k++) {
    const kvi_dense *d = kvi_net_dense((kvi_net *)net, k, &nd);
    if (d) c += (size_t)d->n * d->m;
  }
  return c;
}

kvi_dense *kvi_net_dense(kvi_net *net, int k, int *count) {
  int c = 0;
  kvi_dense *found = NULL;
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_layer *L = &net->layers[i];
    if (!L->ops->weights) continue;
    if (c == k) found = L->ops->weights(L);
    c++;
  }
  if (count) *count = c;
  return found;
}

int kvi_net_weight_layer(const kvi_net *net, int k) {
  int c = 0;
  for (int i = 0; i < net->nlayers; i++)
    if (net->layers[i].ops->weights && c++ == k) return i;
  return -1;
}

void kvi_net_set_grad_hook(kvi_net *net, kvi_status (*fn)(void *user, int layer), void *user) {
  net->grad_hook = fn;
  net->grad_hook_user = fn ? user : NULL;
}

void kvi_net_set_observer(kvi_net *net, kvi_capture_fn fn, void *user) {
  net->observer = fn;
  net->observer_user = fn ? user : NULL;
}

kvi_real kvi_net_log_beta(const kvi_net *net) {
  return net->inoise >= 0 ? kvi_params_data(net->params, net->inoise)[0] : 0;
}

void kvi_net_set_log_beta(kvi_net *net, kvi_real log_beta) {
  if (net->inoise >= 0) kvi_params_data(net->params, net->inoise)[0] = log_beta;
}
