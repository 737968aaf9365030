/* Building a network from an architecture string: tokens are matched against the registered
 * layer kinds (kronvi/layer.h), each kind checks its token and input shape and declares its
 * parameters; an activation follows every weight layer but the last. Building has two phases so
 * that several nets can share one parameter block (model.c): declare (shapes, parameter views,
 * memory estimate), then finish (activations and workspaces from an arena, initial values). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/models_internal.h"

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

/* An image net has a token that only images take: "flatten", "mp", or a convolution with
 * kernel / stride / padding options ("32k5"). Activation tokens and other kinds' do not count. */
int kvi_arch_is_conv(const char *arch) {
  if (!arch) return 0;
  for (const char *s = arch; *s;) {
    const char *e = strchr(s, '-');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    char t[64];
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < sizeof t; i++)
      if (s[i] != '(' && s[i] != ')') t[j++] = s[i];
    t[j] = 0;
    if (!strcmp(t, "flatten") || !strcmp(t, "fl") || !strcmp(t, "mp") || !strcmp(t, "maxpool"))
      return 1;
    const char *q = t;
    while (*q >= '0' && *q <= '9') q++;
    if (q != t && (*q == 'k' || *q == 's' || *q == 'p')) return 1;
    if (!e) break;
    s = e + 1;
  }
  return 0;
}

int kvi_net_pick_max_batch(const char *arch, int batch) {
  if (kvi_arch_is_conv(arch)) return batch;
  return batch > 1000 ? batch : 1000;
}

/* Splits arch at '-' into tokens without parentheses. */
static kvi_status kvi__tokens(char tok[][64], int *count, const char *arch) {
  int n = 0;
  for (const char *s = arch;; n++) {
    const char *e = strchr(s, '-');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len >= 64) return kvi_fail(KVI_ERR_ARG, "architecture '%s': token too long", arch);
    if (n == KVI__MAX_TOKENS)
      return kvi_fail(KVI_ERR_ARG, "architecture '%s': more than %d layers", arch,
                      KVI__MAX_TOKENS - 1);
    size_t j = 0;
    for (size_t i = 0; i < len; i++)
      if (s[i] != '(' && s[i] != ')') tok[n][j++] = s[i];
    tok[n][j] = 0;
    if (!e) break;
    s = e + 1;
  }
  *count = n + 1;
  return KVI_OK;
}

static bool kvi__isqrt(int v, int *r) {
  int x = 0;
  while ((int64_t)(x + 1) * (x + 1) <= v) x++;
  *r = x;
  return x > 0 && x * x == v;
}

/* The input shape from the first token, in_size and the configured image size. */
static kvi_status kvi__input_shape(kvi_shape *in, const char *first, const char *arch, int in_size,
                                   const kvi_net_config *cfg) {
  const bool conv = kvi_arch_is_conv(arch);
  char *end;
  long v = strtol(first, &end, 10);
  if (end == first || *end || v <= 0 || v > 1000000)
    return kvi_fail(KVI_ERR_ARG,
                    "architecture '%s': expected the input %s first, got '%s' (HINT: e.g. "
                    "784-300-300-300-10 or 1-10-mp-20-mp-40-mp-80-mp-flatten-10)",
                    arch, conv ? "channel count" : "size", first);
  const int c = (int)v;
  if (!conv) {
    if (in_size > 0 && c != in_size)
      return kvi_fail(KVI_ERR_SHAPE,
                      "architecture '%s' expects inputs of size %d but the data have %d features",
                      arch, c, in_size);
    *in = (kvi_shape){1, 1, c, false};
    return KVI_OK;
  }
  int h = cfg->in_h, w = cfg->in_w, side = 0;
  if (h <= 0 || w <= 0) { /* square images of in_size / c pixels */
    if (in_size <= 0 || in_size % c || !kvi__isqrt(in_size / c, &side))
      return kvi_fail(KVI_ERR_SHAPE,
                      "architecture '%s': cannot infer the image size from %d inputs and %d "
                      "channels (HINT: give the image height and width)",
                      arch, in_size, c);
    h = w = side;
  }
  if (in_size > 0 && (int64_t)h * w * c != in_size)
    return kvi_fail(KVI_ERR_SHAPE,
                    "architecture '%s' expects %dx%d images with %d channels (%d values) but "
                    "the data have %d features",
                    arch, h, w, c, h * w * c, in_size);
  *in = (kvi_shape){h, w, c, true};
  return KVI_OK;
}

/* Adds layer li of kind ops for token t (NULL for an implicit activation). */
static kvi_status kvi__add_layer(kvi_net *net, int *counters, const kvi_layer_ops *ops,
                                 const char *t, kvi_shape in) {
  kvi_layer *L = &net->layers[net->nlayers];
  L->ops = ops;
  L->in = in;
  L->in_size = kvi_shape_size(in);
  if (ops->prefix) {
    int k = 0; /* the k-th layer of this prefix: "fc0", "fc1", ..., "conv0", ... */
    for (int i = 0; i < net->nlayers; i++) {
      const char *q = net->layers[i].ops->prefix;
      k += q && !strcmp(q, ops->prefix);
    }
    snprintf(L->name, sizeof L->name, "%s%s%d", net->name, ops->prefix, k);
  } else {
    snprintf(L->name, sizeof L->name, "%s%s%d", net->name, ops->kind, counters[0]++);
  }
  kvi_layer_args a = {in,
                      t ? t : "",
                      L->name,
                      net->params,
                      net->cfg.family,
                      net->cfg.prior,
                      net->cfg.prior_var,
                      net->cfg.bias,
                      net->cfg.act};
  net->nlayers++; /* counted before create so that kvi_net_free frees its state */
  kvi_status s = ops->create(L, &a);
  L->out_size = kvi_shape_size(L->out);
  return s;
}

static bool kvi__is_act_token(const char *t) {
  kvi_shape any = {1, 1, 1, false};
  return kvi_act_ops.match(t, &any);
}

/* Declares the layers of arch into net (whose params, name and cfg are set). */
static kvi_status kvi__declare_layers(kvi_net *net, const char *arch, int in_size) {
  char tok[KVI__MAX_TOKENS][64];
  int nt = 0, counter = 0;
  kvi_status s = kvi__tokens(tok, &nt, arch);
  kvi_shape sh;
  if (!s) s = kvi__input_shape(&sh, tok[0], arch, in_size, &net->cfg);
  if (s) return s;
  net->in_shape = sh;
  net->in_size = kvi_shape_size(sh);
  if (!(net->layers = calloc((size_t)2 * nt, sizeof *net->layers)))
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  for (int k = 1; k < nt; k++) {
    const kvi_layer_ops *ops = kvi_layer_kind_for(tok[k], &sh);
    if (!ops)
      return kvi_fail(KVI_ERR_ARG,
                      "architecture '%s': unknown layer '%s' (expected a size, 'mp' or 'flatten')",
                      arch, tok[k]);
    s = kvi__add_layer(net, &counter, ops, tok[k], sh);
    if (s)
      return kvi_fail(s, "architecture '%s', layer %d (input %dx%dx%d): %s", arch, k, sh.h, sh.w,
                      sh.c, kvi_last_error());
    sh = net->layers[net->nlayers - 1].out;
    if (ops->weights && k + 1 < nt && net->cfg.act != KVI_ACT_NONE &&
        !kvi__is_act_token(tok[k + 1])) {
      /* max(f(x)) = f(max(x)) for an increasing f (ELU, ReLU), and the gradient goes to the same
       * argmax: a pooling right after the layer runs first, so the activation only touches a
       * quarter of the values (its input and output are then the pooled ones) */
      if (kvi_layer_kind_for(tok[k + 1], &sh) == &kvi_pool_ops &&
          (net->cfg.act == KVI_ACT_ELU || net->cfg.act == KVI_ACT_RELU)) {
        k++;
        if ((s = kvi__add_layer(net, &counter, &kvi_pool_ops, tok[k], sh)) != KVI_OK) return s;
        sh = net->layers[net->nlayers - 1].out;
      }
      if ((s = kvi__add_layer(net, &counter, &kvi_act_ops, NULL, sh)) != KVI_OK) return s;
    }
  }
  if (sh.image)
    return kvi_fail(KVI_ERR_ARG,
                    "architecture '%s': a convolutional net needs 'flatten' before its dense "
                    "layers (HINT: ...-mp-flatten-10)",
                    arch);
  const kvi_layer *last = &net->layers[net->nlayers - 1];
  if (net->nlayers == 0 || !last->ops->weights)
    return kvi_fail(KVI_ERR_ARG,
                    "architecture '%s': needs at least one dense layer at the end (the outputs)",
                    arch);
  net->out_size = sh.c;
  return KVI_OK;
}

/* Bytes of activations, gradients, workspaces and noise of net for max_batch rows. */
static double kvi__act_bytes(const kvi_net *net) {
  const double B = net->max_batch;
  double bytes = 0;
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_layer *L = &net->layers[i];
    bytes += B * (L->out_size + L->in_size) * sizeof(kvi_real) + 128;
    if (L->ops->ws_size) bytes += (double)L->ops->ws_size(L, net->max_batch) + 64;
    if (L->ops->noise_size)
      bytes += (double)L->ops->noise_size(L, net->max_batch) * sizeof(kvi_real) + 64;
  }
  return bytes;
}

static double kvi__phys_memory(void) {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}

/* "12.3 GB" or "45.6 MB". */
static const char *kvi__size(char *buf, size_t cap, double bytes) {
  if (bytes >= 1e9)
    snprintf(buf, cap, "%.1f GB", bytes * 1e-9);
  else
    snprintf(buf, cap, "%.1f MB", bytes * 1e-6);
  return buf;
}

/* Refuses a net that would not fit: the parameter block's new part counts four times (values,
 * gradients, two optimizer moments). */
static kvi_status kvi__check_memory(const kvi_net *net, size_t params_before) {
  double limit = net->cfg.max_memory > 0 ? net->cfg.max_memory : kvi__phys_memory();
  if (net->cfg.max_memory < 0 || limit <= 0) return KVI_OK;
  double pb = 4.0 * (double)(net->params->n - params_before) * sizeof(kvi_real);
  double ab = kvi__act_bytes(net);
  if (pb + ab <= limit) return KVI_OK;
  char t[32], p[32], a[32], l[32];
  return kvi_fail(KVI_ERR_NOMEM,
                  "architecture '%s' needs about %s (%s for parameters with their gradients and "
                  "optimizer moments, %s for activations at batch %d) but only %s are "
                  "available (HINT: a smaller network or batch; --max-memory to raise the limit)",
                  net->arch, kvi__size(t, sizeof t, pb + ab), kvi__size(p, sizeof p, pb),
                  kvi__size(a, sizeof a, ab), net->max_batch, kvi__size(l, sizeof l, limit));
}

kvi_status kvi__net_declare(kvi_net **out, kvi_params *p, const char *name, const char *arch,
                            int in_size, const kvi_net_config *cfg, int max_batch) {
  *out = NULL;
  if (!arch || !cfg || max_batch <= 0)
    return kvi_fail(KVI_ERR_ARG, "net_create: NULL argument or max_batch %d", max_batch);
  if (strlen(arch) >= 256) return kvi_fail(KVI_ERR_ARG, "architecture string too long");
  if (strlen(name) >= 16) return kvi_fail(KVI_ERR_ARG, "net name '%s' too long", name);
  kvi_net *net = calloc(1, sizeof *net);
  if (!net) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  snprintf(net->arch, sizeof net->arch, "%s", arch);
  snprintf(net->name, sizeof net->name, "%s", name);
  net->cfg = *cfg;
  net->params = p ? p : &net->own;
  net->max_batch = max_batch;
  net->inoise = -1;
  size_t before = net->params->n;
  kvi_status s = kvi__declare_layers(net, arch, in_size);
  if (!s && cfg->noise_param) {
    char nm[KVI_MAX_NAME];
    int64_t one = 1;
    snprintf(nm, sizeof nm, "%snoise.log_precision", name);
    s = kvi_params_add(net->params, nm, KVI_ROLE_NOISE, 1, &one, &net->inoise);
  }
  if (!s) s = kvi__check_memory(net, before);
  net->cfg.in_h = net->in_shape.image ? net->in_shape.h : 0;
  net->cfg.in_w = net->in_shape.image ? net->in_shape.w : 0;
  if (s) {
    kvi_net_free(net);
    return s;
  }
  *out = net;
  return KVI_OK;
}

kvi_status kvi__net_finish(kvi_net *net, uint64_t seed, uint64_t stream) {
  const int nl = net->nlayers;
  net->acts = calloc((size_t)nl + 1, sizeof(kvi_real *));
  net->grads = calloc((size_t)nl + 1, sizeof(kvi_real *));
  net->noise = calloc((size_t)nl, sizeof(kvi_real *));
  net->ws = calloc((size_t)nl, sizeof(void *));
  net->arena = kvi_arena_create(1 << 20);
  if (!net->acts || !net->grads || !net->noise || !net->ws || !net->arena)
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  const size_t B = (size_t)net->max_batch;
  bool ok = true;
  for (int i = 0; i < nl && ok; i++) { /* acts[0] is the caller's input */
    const kvi_layer *L = &net->layers[i];
    size_t wsz = L->ops->ws_size ? L->ops->ws_size(L, net->max_batch) : 0;
    size_t nz = L->ops->noise_size ? L->ops->noise_size(L, net->max_batch) : 0;
    net->acts[i + 1] = kvi_arena_reals(net->arena, B * L->out_size);
    net->grads[i] = kvi_arena_reals(net->arena, B * L->in_size);
    ok = net->acts[i + 1] && net->grads[i];
    if (wsz && !(net->ws[i] = kvi_arena_alloc(net->arena, wsz))) ok = false;
    if (nz && !(net->noise[i] = kvi_arena_reals(net->arena, nz))) ok = false;
  }
  if (!ok)
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for activations (batch %d)", net->max_batch);
  kvi_rng rng = kvi_rng_stream(seed, 0x1a17 + stream);
  const double gain = net->cfg.act == KVI_ACT_RELU ? 2.0 : 1.0;
  for (int i = 0; i < nl; i++) {
    const kvi_layer *L = &net->layers[i];
    if (L->ops->init) L->ops->init(L, net->params, &rng, gain, net->cfg.init_log_sigma);
  }
  return KVI_OK;
}

kvi_status kvi_net_create(kvi_net **out, const char *arch, int in_size, const kvi_net_config *cfg,
                          int max_batch, uint64_t seed) {
  if (!out) return kvi_fail(KVI_ERR_ARG, "net_create: NULL argument");
  kvi_net *net = NULL;
  kvi_status s = kvi__net_declare(&net, NULL, "", arch, in_size, cfg, max_batch);
  if (s) return *out = NULL, s;
  s = kvi_params_alloc(net->params);
  if (!s) s = kvi__net_finish(net, seed, 0);
  if (s) {
    kvi_net_free(net);
    return *out = NULL, s;
  }
  *out = net;
  return KVI_OK;
}

kvi_status kvi_net_estimate_memory(double *bytes, const char *arch, int in_size,
                                   const kvi_net_config *cfg, int max_batch) {
  if (!bytes || !cfg) return kvi_fail(KVI_ERR_ARG, "net_estimate_memory: NULL argument");
  kvi_net_config c = *cfg;
  c.max_memory = -1;
  kvi_net *net = NULL;
  kvi_status s = kvi__net_declare(&net, NULL, "", arch, in_size, &c, max_batch);
  if (s) return s;
  *bytes = 4.0 * (double)net->params->n * sizeof(kvi_real) + kvi__act_bytes(net);
  kvi_net_free(net);
  return KVI_OK;
}

void kvi_net_free(kvi_net *net) {
  if (!net) return;
  kvi_params_free(&net->own);
  for (int i = 0; i < net->nlayers; i++) free(net->layers[i].state);
  free(net->layers);
  kvi_arena_free(net->arena);
  free(net->acts);
  free(net->grads);
  free(net->noise);
  free(net->ws);
  free(net);
}

/* ---- builder ----------------------------------------------------------------------------- */
static void kvi__bappend(kvi_net_builder *b, const char *tok) {
  if (b->status) return;
  size_t len = strlen(b->arch);
  int w = snprintf(b->arch + len, sizeof b->arch - len, "%s%s", len ? "-" : "", tok);
  if (w < 0 || (size_t)w >= sizeof b->arch - len) {
    b->status = kvi_fail(KVI_ERR_ARG, "builder: architecture longer than %zu characters",
                         sizeof b->arch - 1);
    snprintf(b->message, sizeof b->message, "%s", kvi_last_error());
  }
}

void kvi_builder_begin(kvi_net_builder *b, int in_channels) {
  memset(b, 0, sizeof *b);
  char t[16];
  snprintf(t, sizeof t, "%d", in_channels);
  kvi__bappend(b, t);
}
void kvi_builder_dense(kvi_net_builder *b, int outputs) {
  char t[16];
  snprintf(t, sizeof t, "%d", outputs);
  kvi__bappend(b, t);
}
void kvi_builder_conv(kvi_net_builder *b, int filters, int kernel, int stride, int pad) {
  char t[64];
  snprintf(t, sizeof t, "%dk%ds%dp%d", filters, kernel, stride, pad);
  kvi__bappend(b, t);
}
void kvi_builder_pool(kvi_net_builder *b) { kvi__bappend(b, "mp"); }
void kvi_builder_flatten(kvi_net_builder *b) { kvi__bappend(b, "flatten"); }
void kvi_builder_act(kvi_net_builder *b, kvi_act act) { kvi__bappend(b, kvi_act_name(act)); }
void kvi_builder_token(kvi_net_builder *b, const char *token) {
  if (!token || !*token || strchr(token, '-')) {
    if (!b->status) {
      b->status = kvi_fail(KVI_ERR_ARG, "builder: bad token '%s'", token ? token : "");
      snprintf(b->message, sizeof b->message, "%s", kvi_last_error());
    }
    return;
  }
  kvi__bappend(b, token);
}
kvi_status kvi_builder_arch(const kvi_net_builder *b, const char **arch) {
  if (b->status) return kvi_fail(b->status, "%s", b->message);
  *arch = b->arch;
  return KVI_OK;
}
