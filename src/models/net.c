/* Sequential network: dense and convolutional layers, activations, max-pooling. */
#include <math.h>
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

/* ---- architecture strings ----------------------------------------------------------------- */

typedef enum { KVI__SPEC_DENSE, KVI__SPEC_CONV, KVI__SPEC_POOL } kvi__spec_kind;

typedef struct {
  kvi__spec_kind kind;
  int size;           /* dense outputs or conv filters */
  int k, stride, pad; /* conv */
} kvi__spec;

#define KVI__MAX_SPECS 64

/* Reads a positive integer at *s (at most 1e6), advancing *s. */
static bool kvi__read_int(const char **s, int *v) {
  char *end;
  long x = strtol(*s, &end, 10);
  if (end == *s || x <= 0 || x > 1000000) return false;
  *v = (int)x;
  *s = end;
  return true;
}

/* Copies token t (without parentheses) into buf. */
static void kvi__token(char *buf, size_t cap, const char *t, size_t len) {
  size_t j = 0;
  for (size_t i = 0; i < len && j + 1 < cap; i++)
    if (t[i] != '(' && t[i] != ')') buf[j++] = t[i];
  buf[j] = 0;
}

static bool kvi__is_pool(const char *t) { return !strcmp(t, "mp") || !strcmp(t, "maxpool"); }
static bool kvi__is_flatten(const char *t) { return !strcmp(t, "flatten") || !strcmp(t, "fl"); }

int kvi_arch_is_conv(const char *arch) {
  if (!arch) return 0;
  for (const char *s = arch; *s; s++)
    if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == ' ')) return 1;
  return 0;
}

int kvi_net_pick_max_batch(const char *arch, int batch) {
  if (kvi_arch_is_conv(arch)) return batch;
  return batch > 1000 ? batch : 1000;
}

/* Parses arch into *in_c (conv: input channels; MLP: input size) and specs. */
static kvi_status kvi__parse_arch(kvi__spec *sp, int *count, int *in_c, const char *arch) {
  const bool conv = kvi_arch_is_conv(arch);
  int k = 0, ntok = 0;
  bool flat = !conv;
  const char *s = arch;
  while (true) {
    const char *e = strchr(s, '-');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    char t[64];
    if (len >= sizeof t) return kvi_fail(KVI_ERR_ARG, "architecture '%s': token too long", arch);
    kvi__token(t, sizeof t, s, len);
    const char *q = t;
    int v = 0;
    if (ntok == 0) {
      if (!kvi__read_int(&q, &v) || *q)
        return kvi_fail(KVI_ERR_ARG,
                        "architecture '%s': expected the input %s first, got '%s' (HINT: e.g. "
                        "784-300-300-300-10 or 1-10-mp-20-mp-40-mp-80-mp-flatten-10)",
                        arch, conv ? "channel count" : "size", t);
      *in_c = v;
    } else if (k == KVI__MAX_SPECS) {
      return kvi_fail(KVI_ERR_ARG, "architecture '%s': more than %d layers", arch, KVI__MAX_SPECS);
    } else if (kvi__is_pool(t)) {
      if (flat)
        return kvi_fail(KVI_ERR_ARG,
                        "architecture '%s': 'mp' after 'flatten' (pooling needs "
                        "images)",
                        arch);
      sp[k++] = (kvi__spec){KVI__SPEC_POOL, 0, 0, 0, 0};
    } else if (kvi__is_flatten(t)) {
      if (flat) return kvi_fail(KVI_ERR_ARG, "architecture '%s': a second 'flatten'", arch);
      flat = true;
    } else if (kvi__read_int(&q, &v)) {
      kvi__spec c = {flat ? KVI__SPEC_DENSE : KVI__SPEC_CONV, v, 3, 1, -1};
      while (*q && !flat) { /* kernel / stride / padding options of a convolution */
        char opt = *q++;
        int x = 0;
        if (opt == 'p' && *q == '0' && !(q[1] >= '0' && q[1] <= '9'))
          x = 0, q++;
        else if (!kvi__read_int(&q, &x))
          return kvi_fail(KVI_ERR_ARG, "architecture '%s': bad option in '%s'", arch, t);
        if (opt == 'k')
          c.k = x;
        else if (opt == 's')
          c.stride = x;
        else if (opt == 'p')
          c.pad = x;
        else
          return kvi_fail(KVI_ERR_ARG,
                          "architecture '%s': unknown option '%c' in '%s' (expected k, s or p)",
                          arch, opt, t);
      }
      if (*q)
        return kvi_fail(KVI_ERR_ARG, "architecture '%s': unexpected '%s' in '%s'", arch, q, t);
      if (c.pad < 0) c.pad = (c.k - 1) / 2; /* same padding for odd kernels */
      sp[k++] = c;
    } else {
      return kvi_fail(KVI_ERR_ARG,
                      "architecture '%s': unknown layer '%s' (expected a size, 'mp' or 'flatten')",
                      arch, t);
    }
    ntok++;
    if (!e) break;
    s = e + 1;
  }
  if (conv && !flat)
    return kvi_fail(KVI_ERR_ARG,
                    "architecture '%s': a convolutional net needs 'flatten' before its dense "
                    "layers (HINT: ...-mp-flatten-10)",
                    arch);
  if (k == 0 || sp[k - 1].kind != KVI__SPEC_DENSE)
    return kvi_fail(KVI_ERR_ARG,
                    "architecture '%s': needs at least one dense layer at the end (the outputs)",
                    arch);
  *count = k;
  return KVI_OK;
}

/* The weight matrix of a layer, NULL for activations and pooling. */
static kvi_dense *kvi__weights(kvi_layer *L) {
  return L->kind == KVI_LAYER_DENSE ? &L->dense : L->kind == KVI_LAYER_CONV ? &L->conv.d : NULL;
}

static bool kvi__isqrt(int v, int *r) {
  int x = (int)(sqrt((double)v) + 0.5);
  *r = x;
  return x > 0 && x * x == v;
}

kvi_status kvi_net_create(kvi_net **out, const char *arch, int in_size, const kvi_net_config *cfg,
                          int max_batch, uint64_t seed) {
  if (!out || !arch || !cfg || max_batch <= 0)
    return kvi_fail(KVI_ERR_ARG, "net_create: NULL argument or max_batch %d", max_batch);
  *out = NULL;
  if (strlen(arch) >= 256) return kvi_fail(KVI_ERR_ARG, "architecture string too long");
  kvi__spec sp[KVI__MAX_SPECS];
  int ns = 0, in_c = 0;
  kvi_status s = kvi__parse_arch(sp, &ns, &in_c, arch);
  if (s) return s;
  const bool conv = kvi_arch_is_conv(arch);
  int h = 1, w = 1, c = in_c; /* the current activation shape (HWC); MLP: 1 x 1 x size */
  if (conv) {
    h = cfg->in_h, w = cfg->in_w;
    if (h <= 0 || w <= 0) { /* square images of in_size / c pixels */
      int side = 0;
      if (in_size <= 0 || in_size % in_c || !kvi__isqrt(in_size / in_c, &side))
        return kvi_fail(KVI_ERR_SHAPE,
                        "architecture '%s': cannot infer the image size from %d inputs and %d "
                        "channels (HINT: give the image height and width)",
                        arch, in_size, in_c);
      h = w = side;
    }
    if (in_size > 0 && (int64_t)h * w * in_c != in_size)
      return kvi_fail(KVI_ERR_SHAPE,
                      "architecture '%s' expects %dx%d images with %d channels (%d values) but "
                      "the data have %d features",
                      arch, h, w, in_c, h * w * in_c, in_size);
  } else if (in_size > 0 && in_c != in_size) {
    return kvi_fail(KVI_ERR_SHAPE,
                    "architecture '%s' expects inputs of size %d but the data have %d features",
                    arch, in_c, in_size);
  }
  kvi_net *net = calloc(1, sizeof *net);
  if (!net) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  snprintf(net->arch, sizeof net->arch, "%s", arch);
  net->cfg = *cfg;
  net->cfg.in_h = conv ? h : 0, net->cfg.in_w = conv ? w : 0;
  net->max_batch = max_batch;
  net->in_size = h * w * c;
  int nl = 2 * ns; /* upper bound: every spec and its activation */
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
  kvi_params_init(&net->params);
  int li = 0, nconv = 0, ndense = 0;
  for (int k = 0; k < ns && !s; k++) {
    kvi_layer *L = &net->layers[li++];
    char name[32];
    L->in_size = h * w * c;
    if (sp[k].kind == KVI__SPEC_POOL) {
      L->kind = KVI_LAYER_POOL;
      s = kvi_pool_init(&L->pool, h, w, c);
      if (!s) h = L->pool.oh, w = L->pool.ow;
    } else if (sp[k].kind == KVI__SPEC_CONV) {
      snprintf(name, sizeof name, "conv%d", nconv++);
      L->kind = KVI_LAYER_CONV;
      s = kvi_conv_declare(&L->conv, &net->params, name, h, w, c, sp[k].size, sp[k].k, sp[k].stride,
                           sp[k].pad, cfg->family, cfg->prior, cfg->prior_var, cfg->bias);
      if (!s) h = L->conv.oh, w = L->conv.ow, c = sp[k].size;
    } else {
      snprintf(name, sizeof name, "fc%d", ndense++);
      L->kind = KVI_LAYER_DENSE;
      s = kvi_dense_declare(&L->dense, &net->params, name, h * w * c, sp[k].size, cfg->family,
                            cfg->prior, cfg->prior_var, cfg->bias);
      if (!s) h = w = 1, c = sp[k].size;
    }
    if (s) {
      s = kvi_fail(s, "architecture '%s', layer %d (input %dx%dx%d): %s", arch, k + 1, h, w, c,
                   kvi_last_error());
      break;
    }
    L->out_size = h * w * c;
    if (L->kind != KVI_LAYER_POOL && k + 1 < ns && cfg->act != KVI_ACT_NONE) {
      kvi_layer *A = &net->layers[li++];
      A->kind = KVI_LAYER_ACT;
      A->act = cfg->act;
      A->in_size = A->out_size = L->out_size;
    }
  }
  net->nlayers = li;
  net->out_size = h * w * c;
  if (!s) s = kvi_params_alloc(&net->params);
  if (s) {
    kvi_net_free(net);
    return s;
  }
  /* activations, gradients, workspaces and noise for max_batch rows, all from the arena */
  size_t B = (size_t)max_batch;
  net->acts[0] = NULL; /* the input is the caller's */
  for (int i = 0; i < li && !s; i++) {
    kvi_layer *L = &net->layers[i];
    net->acts[i + 1] = kvi_arena_reals(net->arena, B * L->out_size);
    net->grads[i] = kvi_arena_reals(net->arena, B * L->in_size);
    size_t wsz = 0, nz = 0;
    if (L->kind == KVI_LAYER_DENSE)
      wsz = kvi_dense_ws_size(&L->dense, max_batch),
      nz = kvi_dense_noise_size(&L->dense, max_batch);
    else if (L->kind == KVI_LAYER_CONV)
      wsz = kvi_conv_ws_size(&L->conv, max_batch), nz = kvi_conv_noise_size(&L->conv, max_batch);
    else if (L->kind == KVI_LAYER_POOL)
      wsz = kvi_pool_ws_size(&L->pool, max_batch);
    if (wsz && !(net->ws[i] = kvi_arena_alloc(net->arena, wsz))) s = KVI_ERR_NOMEM;
    if (nz && !(net->noise[i] = kvi_arena_reals(net->arena, nz))) s = KVI_ERR_NOMEM;
    if (!net->acts[i + 1] || !net->grads[i]) s = KVI_ERR_NOMEM;
  }
  if (s) {
    kvi_net_free(net);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for activations (batch %d)", max_batch);
  }
  kvi_rng rng = kvi_rng_stream(seed, 0x1a17);
  const double gain = cfg->act == KVI_ACT_RELU ? 2.0 : 1.0;
  for (int i = 0; i < li; i++) {
    kvi_layer *L = &net->layers[i];
    if (L->kind == KVI_LAYER_DENSE)
      kvi_dense_init(&L->dense, &net->params, &rng, gain, cfg->init_log_sigma);
    else if (L->kind == KVI_LAYER_CONV)
      kvi_conv_init(&L->conv, &net->params, &rng, gain, cfg->init_log_sigma);
  }
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
    if (L->kind == KVI_LAYER_DENSE || L->kind == KVI_LAYER_CONV) {
      const bool dense = L->kind == KVI_LAYER_DENSE;
      const kvi_real *eps = NULL;
      size_t nz =
          dense ? kvi_dense_noise_size(&L->dense, batch) : kvi_conv_noise_size(&L->conv, batch);
      if (rng && nz) {
        kvi_rng_normal(rng, net->noise[i], nz);
        eps = net->noise[i];
      }
      s = dense ? kvi_dense_forward(net->acts[i + 1], net->ws[i], &L->dense, &net->params,
                                    net->acts[i], eps, batch)
                : kvi_conv_forward(net->acts[i + 1], net->ws[i], &L->conv, &net->params,
                                   net->acts[i], eps, batch);
    } else if (L->kind == KVI_LAYER_POOL) {
      kvi_pool_forward(net->acts[i + 1], net->ws[i], &L->pool, net->acts[i], batch);
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
    if (L->kind == KVI_LAYER_DENSE || L->kind == KVI_LAYER_CONV) {
      const kvi_real *eps = net->noisy ? net->noise[i] : NULL;
      kvi_status s = L->kind == KVI_LAYER_DENSE
                         ? kvi_dense_backward(dx, &net->params, dy, net->ws[i], &L->dense,
                                              net->acts[i], eps, batch)
                         : kvi_conv_backward(dx, &net->params, dy, net->ws[i], &L->conv,
                                             net->acts[i], eps, batch);
      if (s) return s;
    } else if (L->kind == KVI_LAYER_POOL) {
      if (dx) kvi_pool_backward(dx, dy, net->ws[i], &L->pool, batch);
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
    kvi_dense *d = kvi__weights(&net->layers[i]);
    if (!d) continue;
    double k;
    kvi_status s = kvi_dense_kl(&k, &net->params, d, gscale);
    if (s) return s;
    total += k;
  }
  *kl = total;
  return KVI_OK;
}

kvi_status kvi_net_prior_update(kvi_net *net) {
  for (int i = 0; i < net->nlayers; i++) {
    kvi_dense *d = kvi__weights(&net->layers[i]);
    if (!d) continue;
    kvi_status s = kvi_dense_prior_update(&net->params, d, net->arena);
    if (s) return s;
  }
  return KVI_OK;
}

size_t kvi_net_param_count(const kvi_net *net) {
  size_t c = 0;
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_dense *d = kvi__weights(&net->layers[i]);
    if (d) c += kvi_dense_param_count(d);
  }
  return c;
}

size_t kvi_net_weight_count(const kvi_net *net) {
  size_t c = 0;
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_dense *d = kvi__weights(&net->layers[i]);
    if (d) c += (size_t)d->n * d->m;
  }
  return c;
}

kvi_dense *kvi_net_dense(kvi_net *net, int k, int *count) {
  int c = 0;
  kvi_dense *found = NULL;
  for (int i = 0; i < net->nlayers; i++) {
    kvi_dense *d = kvi__weights(&net->layers[i]);
    if (!d) continue;
    if (c == k) found = d;
    c++;
  }
  if (count) *count = c;
  return found;
}

int kvi_net_weight_layer(const kvi_net *net, int k) {
  int c = 0;
  for (int i = 0; i < net->nlayers; i++)
    if (kvi__weights(&net->layers[i]) && c++ == k) return i;
  return -1;
}
