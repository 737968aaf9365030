/* Sequential network: dense layers with activations in between. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/models.h"

kvi_net_config kvi_net_config_default(void) {
  kvi_net_config c;
  memset(&c, 0, sizeof c);
  c.family = KVI_FAMILY_MN;
  c.prior = KVI_PRIOR_ARD;
  c.prior_var = 1.0;
  c.act = KVI_ACT_ELU;
  c.bias = true;
  c.init_log_sigma = -5.0;
  return c;
}

static kvi_status kvi__parse_sizes(int *sizes, int *count, const char *arch) {
  int k = 0;
  const char *s = arch;
  while (*s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v <= 0 || v > 1000000)
      return kvi_fail(KVI_ERR_ARG,
                      "architecture '%s': expected positive sizes separated by '-' near '%s' "
                      "(HINT: e.g. 784-300-300-300-10)",
                      arch, s);
    if (k == 64) return kvi_fail(KVI_ERR_ARG, "architecture '%s': more than 63 layers", arch);
    sizes[k++] = (int)v;
    if (*end == '-')
      end++;
    else if (*end)
      return kvi_fail(KVI_ERR_ARG, "architecture '%s': unexpected '%c'", arch, *end);
    s = end;
  }
  if (k < 2)
    return kvi_fail(KVI_ERR_ARG, "architecture '%s': needs at least an input and an output size",
                    arch);
  *count = k;
  return KVI_OK;
}

kvi_status kvi_net_create(kvi_net **out, const char *arch, int in_size, const kvi_net_config *cfg,
                          int max_batch, uint64_t seed) {
  if (!out || !arch || !cfg || max_batch <= 0)
    return kvi_fail(KVI_ERR_ARG, "net_create: NULL argument or max_batch %d", max_batch);
  *out = NULL;
  if (strlen(arch) >= 256) return kvi_fail(KVI_ERR_ARG, "architecture string too long");
  int sizes[64], ns = 0;
  kvi_status s = kvi__parse_sizes(sizes, &ns, arch);
  if (s) return s;
  if (in_size > 0 && sizes[0] != in_size)
    return kvi_fail(KVI_ERR_SHAPE,
                    "architecture '%s' expects inputs of size %d but the data have %d features",
                    arch, sizes[0], in_size);
  kvi_net *net = calloc(1, sizeof *net);
  if (!net) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  snprintf(net->arch, sizeof net->arch, "%s", arch);
  net->cfg = *cfg;
  net->max_batch = max_batch;
  net->in_size = sizes[0];
  net->out_size = sizes[ns - 1];
  int ndense = ns - 1, nl = cfg->act != KVI_ACT_NONE ? 2 * ndense - 1 : ndense;
  net->layers = calloc((size_t)nl, sizeof *net->layers);
  net->acts = calloc((size_t)nl + 1, sizeof(kvi_real *));
  net->grads = calloc((size_t)nl + 1, sizeof(kvi_real *));
  net->noise = calloc((size_t)nl, sizeof(kvi_real *));
  net->ws = calloc((size_t)nl, sizeof(void *));
  net->arena = kvi_arena_create(1 << 20);
  if (!net->layers || !net->acts || !net->grads || !net->noise || !net->ws || !net->arena) {
    kvi_net_free(net);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  net->nlayers = nl;
  kvi_params_init(&net->params);
  int li = 0;
  for (int k = 0; k < ndense; k++) {
    kvi_layer *L = &net->layers[li++];
    char name[32];
    snprintf(name, sizeof name, "fc%d", k);
    L->kind = KVI_LAYER_DENSE;
    L->in_size = sizes[k], L->out_size = sizes[k + 1];
    s = kvi_dense_declare(&L->dense, &net->params, name, sizes[k], sizes[k + 1], cfg->family,
                          cfg->prior, cfg->prior_var, cfg->bias);
    if (s) break;
    if (k + 1 < ndense && cfg->act != KVI_ACT_NONE) {
      kvi_layer *A = &net->layers[li++];
      A->kind = KVI_LAYER_ACT;
      A->act = cfg->act;
      A->in_size = A->out_size = sizes[k + 1];
    }
  }
  if (!s) s = kvi_params_alloc(&net->params);
  if (s) {
    kvi_net_free(net);
    return s;
  }
  /* activations, gradients, workspaces and noise for max_batch rows, all from the arena */
  size_t B = (size_t)max_batch;
  net->acts[0] = NULL; /* the input is the caller's */
  for (int i = 0; i < nl && !s; i++) {
    kvi_layer *L = &net->layers[i];
    net->acts[i + 1] = kvi_arena_reals(net->arena, B * L->out_size);
    net->grads[i] = kvi_arena_reals(net->arena, B * L->in_size);
    if (L->kind == KVI_LAYER_DENSE) {
      net->ws[i] = kvi_arena_alloc(net->arena, kvi_dense_ws_size(&L->dense, max_batch));
      size_t nz = kvi_dense_noise_size(&L->dense, max_batch);
      net->noise[i] = nz ? kvi_arena_reals(net->arena, nz) : NULL;
      if (!net->ws[i] || (nz && !net->noise[i])) s = KVI_ERR_NOMEM;
    }
    if (!net->acts[i + 1] || !net->grads[i]) s = KVI_ERR_NOMEM;
  }
  if (s) {
    kvi_net_free(net);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for activations (batch %d)", max_batch);
  }
  kvi_rng rng = kvi_rng_stream(seed, 0x1a17);
  for (int i = 0; i < nl; i++)
    if (net->layers[i].kind == KVI_LAYER_DENSE)
      kvi_dense_init(&net->layers[i].dense, &net->params, &rng,
                     cfg->act == KVI_ACT_RELU ? 2.0 : 1.0, cfg->init_log_sigma);
  *out = net;
  return KVI_OK;
}

void kvi_net_free(kvi_net *net) {
  if (!net) return;
  kvi_params_free(&net->params);
  kvi_arena_free(net->arena);
  free(net->layers);
  free(net->acts);
  free(net->grads);
  free(net->noise);
  free(net->ws);
  free(net);
}

kvi_status kvi_net_forward(kvi_net *net, const kvi_real **out, const kvi_real *X, int batch,
                           kvi_rng *rng) {
  if (!net || !out || !X || batch <= 0 || batch > net->max_batch)
    return kvi_fail(KVI_ERR_ARG, "net_forward: batch %d outside [1, %d] or NULL argument", batch,
                    net ? net->max_batch : 0);
  net->acts[0] = (kvi_real *)X;
  net->noisy = rng != NULL;
  for (int i = 0; i < net->nlayers; i++) {
    kvi_layer *L = &net->layers[i];
    kvi_status s = KVI_OK;
    if (L->kind == KVI_LAYER_DENSE) {
      const kvi_real *eps = NULL;
      size_t nz = kvi_dense_noise_size(&L->dense, batch);
      if (rng && nz) {
        kvi_rng_normal(rng, net->noise[i], nz);
        eps = net->noise[i];
      }
      s = kvi_dense_forward(net->acts[i + 1], net->ws[i], &L->dense, &net->params, net->acts[i],
                            eps, batch);
    } else {
      kvi_act_forward(net->acts[i + 1], net->acts[i], (size_t)batch * L->in_size, L->act);
    }
    if (s) return s;
  }
  *out = net->acts[net->nlayers];
  return KVI_OK;
}

kvi_status kvi_net_backward(kvi_net *net, const kvi_real *dOut, int batch) {
  if (!net || !dOut || batch <= 0 || batch > net->max_batch)
    return kvi_fail(KVI_ERR_ARG, "net_backward: bad arguments");
  const kvi_real *dy = dOut;
  for (int i = net->nlayers - 1; i >= 0; i--) {
    kvi_layer *L = &net->layers[i];
    kvi_real *dx = i > 0 ? net->grads[i] : NULL; /* no input gradient for the data */
    if (L->kind == KVI_LAYER_DENSE) {
      const kvi_real *eps = net->noisy ? net->noise[i] : NULL;
      kvi_status s =
          kvi_dense_backward(dx, &net->params, dy, net->ws[i], &L->dense, net->acts[i], eps, batch);
      if (s) return s;
    } else if (dx) {
      kvi_act_backward(dx, dy, net->acts[i], net->acts[i + 1], (size_t)batch * L->in_size, L->act);
    }
    dy = dx;
  }
  return KVI_OK;
}

kvi_status kvi_net_kl(kvi_net *net, double *kl, kvi_real gscale) {
  double total = 0;
  for (int i = 0; i < net->nlayers; i++) {
    if (net->layers[i].kind != KVI_LAYER_DENSE) continue;
    double k;
    kvi_status s = kvi_dense_kl(&k, &net->params, &net->layers[i].dense, gscale);
    if (s) return s;
    total += k;
  }
  *kl = total;
  return KVI_OK;
}

kvi_status kvi_net_prior_update(kvi_net *net) {
  for (int i = 0; i < net->nlayers; i++) {
    if (net->layers[i].kind != KVI_LAYER_DENSE) continue;
    kvi_status s = kvi_dense_prior_update(&net->params, &net->layers[i].dense, net->arena);
    if (s) return s;
  }
  return KVI_OK;
}

size_t kvi_net_param_count(const kvi_net *net) {
  size_t c = 0;
  for (int i = 0; i < net->nlayers; i++)
    if (net->layers[i].kind == KVI_LAYER_DENSE) c += kvi_dense_param_count(&net->layers[i].dense);
  return c;
}

size_t kvi_net_weight_count(const kvi_net *net) {
  size_t c = 0;
  for (int i = 0; i < net->nlayers; i++)
    if (net->layers[i].kind == KVI_LAYER_DENSE)
      c += (size_t)net->layers[i].dense.n * net->layers[i].dense.m;
  return c;
}

kvi_dense *kvi_net_dense(kvi_net *net, int k, int *count) {
  int c = 0;
  kvi_dense *found = NULL;
  for (int i = 0; i < net->nlayers; i++)
    if (net->layers[i].kind == KVI_LAYER_DENSE) {
      if (c == k) found = &net->layers[i].dense;
      c++;
    }
  if (count) *count = c;
  return found;
}
