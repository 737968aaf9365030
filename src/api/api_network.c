/* The stable API: networks (kvi_network) — create, load, save, predict, evaluate, sparsity,
 * prune, compress — over the models and train modules, as the kronvi CLI uses them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

typedef struct {
  kvi_net_config nc;
  uint64_t seed;
  int batch;
  bool regress;
} kvi__net_opts;

static kvi_status kvi__net_option(kvi__net_opts *p, const kvi__opts *o) {
  const char *k = o->key;
  bool b;
  kvi_status s = KVI_OK;
  if (!strcmp(k, "family")) return kvi_family_parse(&p->nc.family, o->val);
  if (!strcmp(k, "act")) return kvi_act_parse(&p->nc.act, o->val);
  if (!strcmp(k, "init_log_sigma")) return kvi__opt_double(o, -30, 5, &p->nc.init_log_sigma);
  if (!strcmp(k, "seed")) return kvi__opt_u64(o, &p->seed);
  if (!strcmp(k, "batch")) return kvi__opt_int(o, 1, 1 << 20, &p->batch);
  if (!strcmp(k, "in_h")) return kvi__opt_int(o, 0, 1 << 16, &p->nc.in_h);
  if (!strcmp(k, "in_w")) return kvi__opt_int(o, 0, 1 << 16, &p->nc.in_w);
  if (!strcmp(k, "bias")) {
    if (!(s = kvi__opt_bool(o, &b))) p->nc.bias = b;
    return s;
  }
  if (!strcmp(k, "task")) {
    if (strcmp(o->val, "classify") && strcmp(o->val, "regress"))
      return kvi_fail(KVI_ERR_ARG, "option task=%s: expected classify or regress", o->val);
    p->regress = !strcmp(o->val, "regress");
    return KVI_OK;
  }
  if (!strcmp(k, "prior")) {
    static const char *names[] = {"ard", "group", "scalar"};
    static const kvi_prior priors[] = {KVI_PRIOR_ARD, KVI_PRIOR_GROUP, KVI_PRIOR_SCALAR};
    for (int i = 0; i < 3; i++)
      if (!strcmp(o->val, names[i])) return p->nc.prior = priors[i], KVI_OK;
    if (strncmp(o->val, "fixed:", 6))
      return kvi_fail(KVI_ERR_ARG, "option prior=%s: expected ard, group, scalar or fixed:VAR",
                      o->val);
    kvi__opts v = *o;
    memmove(v.val, o->val + 6, strlen(o->val + 6) + 1);
    p->nc.prior = KVI_PRIOR_FIXED;
    return kvi__opt_double(&v, 1e-300, 1e300, &p->nc.prior_var);
  }
  return kvi__opt_unknown(
      o, "kvi_network_create",
      "family, prior, act, bias, init_log_sigma, seed, batch, task, in_h, in_w");
}

static kvi_network *kvi__network_wrap(kvi_net *net) {
  kvi_network *n = calloc(1, sizeof *n);
  if (!n) kvi_fail(KVI_ERR_NOMEM, "out of memory");
  if (n) n->net = net;
  return n;
}

kvi_status kvi_network_create(kvi_network **out, const char *arch, int in_size,
                              const char *options) {
  KVI__NEED(out, "kvi_network_create");
  *out = NULL;
  KVI__NEED(arch, "kvi_network_create");
  if (in_size < 0) return kvi_fail(KVI_ERR_ARG, "kvi_network_create: in_size %d < 0", in_size);
  kvi__net_opts p = {kvi_net_config_default(), 1, 100, false};
  kvi__opts o = {options, "", ""};
  int r;
  while ((r = kvi__opts_next(&o)) > 0)
    if (kvi__net_option(&p, &o)) return KVI_ERR_ARG;
  if (r < 0) return KVI_ERR_ARG;
  if (p.nc.family == KVI_FAMILY_POINT) p.nc.prior = KVI_PRIOR_NONE;
  p.nc.noise_param = p.regress;
  kvi_net *net = NULL;
  kvi_status s =
      kvi_net_create(&net, arch, in_size, &p.nc, kvi_net_pick_max_batch(arch, p.batch), p.seed);
  if (s) return s;
  kvi_network *n = kvi__network_wrap(net);
  if (!n) {
    kvi_net_free(net);
    return KVI_ERR_NOMEM;
  }
  kvi_train_config cfg = kvi_train_config_default();
  cfg.seed = p.seed, cfg.batch = p.batch, cfg.progress = 0;
  cfg.task = p.regress ? KVI_TASK_REGRESS : KVI_TASK_CLASSIFY;
  s = kvi_trainer_init(&n->tr, net, &cfg);
  if (s) {
    kvi_network_free(n);
    return s;
  }
  n->has_opt = true;
  *out = n;
  return KVI_OK;
}

kvi_status kvi_network_load(kvi_network **out, const char *path) {
  KVI__NEED(out, "kvi_network_load");
  *out = NULL;
  KVI__NEED(path, "kvi_network_load");
  kvi_network *n = kvi__network_wrap(NULL);
  if (!n) return KVI_ERR_NOMEM;
  /* as kronvi eval: a checkpoint without optimizer state (a compressed model) loads too */
  n->has_opt = true;
  kvi_status s = kvi_checkpoint_load_ex(path, &n->net, &n->tr, NULL, false);
  if (s == KVI_ERR_STATE) {
    n->has_opt = false;
    s = kvi_checkpoint_load_ex(path, &n->net, &n->tr, NULL, true);
    if (!s) kvi_optimizer_free(&n->tr.opt);
  }
  if (s) {
    free(n);
    return s;
  }
  n->tr.cfg.progress = 0;
  *out = n;
  return KVI_OK;
}

kvi_status kvi_network_save(const kvi_network *n, const char *path) {
  KVI__NEED(n, "kvi_network_save");
  KVI__NEED(path, "kvi_network_save");
  kvi_dataset shape; /* the image shape recorded (what kronvi prune writes for a loaded net) */
  kvi_dataset_init(&shape);
  if (n->c > 0) {
    shape.c = n->c, shape.h = n->h, shape.w = n->w;
  } else if (n->net->cfg.in_h > 0 && n->net->cfg.in_w > 0) {
    shape.h = n->net->cfg.in_h, shape.w = n->net->cfg.in_w;
    shape.c = n->net->in_size / (shape.h * shape.w);
  }
  shape.d = shape.c > 0 ? n->net->in_size : 0;
  return kvi_checkpoint_save(path, &n->tr, &shape);
}

int kvi_network_inputs(const kvi_network *n) { return n ? n->net->in_size : -1; }
int kvi_network_outputs(const kvi_network *n) { return n ? n->net->out_size : -1; }
const char *kvi_network_arch(const kvi_network *n) { return n ? n->net->arch : ""; }
const char *kvi_network_family(const kvi_network *n) {
  return n ? kvi_family_name(n->net->cfg.family) : "";
}
int64_t kvi_network_param_count(const kvi_network *n) {
  return n ? (int64_t)kvi_net_param_count(n->net) : -1;
}
int kvi_network_epochs(const kvi_network *n) { return n ? n->tr.epoch : -1; }
const char *kvi_network_task(const kvi_network *n) {
  return !n ? "" : n->tr.cfg.task == KVI_TASK_REGRESS ? "regress" : "classify";
}

/* Softmax of the mean-weight logits, in double, rows [r0, r0 + b). */
static void kvi__softmax(double *P, const kvi_real *y, int b, int K) {
  for (int i = 0; i < b; i++) {
    const kvi_real *z = y + (size_t)i * K;
    double *p = P + (size_t)i * K, mx = z[0], sum = 0;
    for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < K; k++) sum += p[k] = exp((double)z[k] - mx);
    for (int k = 0; k < K; k++) p[k] /= sum;
  }
}

/* The mean-weight pass over x: softmax probabilities (classification) or outputs. */
static kvi_status kvi__mean_pass(kvi_net *net, const kvi_real *x, int64_t n, double *out,
                                 bool cls) {
  const int K = net->out_size, d = net->in_size;
  for (int64_t r0 = 0; r0 < n; r0 += net->max_batch) {
    int b = (int)(n - r0 < net->max_batch ? n - r0 : net->max_batch);
    const kvi_real *y;
    kvi_status s = kvi_net_forward(net, &y, x + (size_t)r0 * d, b, NULL);
    if (s) return s;
    if (cls)
      kvi__softmax(out + (size_t)r0 * K, y, b, K);
    else
      for (size_t i = 0; i < (size_t)b * K; i++) out[(size_t)r0 * K + i] = y[i];
  }
  return KVI_OK;
}

kvi_status kvi_network_predict(kvi_network *n, const kvi_real *x, int64_t rows, int d, int samples,
                               uint64_t seed, double *probs, double *entropy) {
  const char *fn = "kvi_network_predict";
  KVI__NEED(n, "kvi_network_predict");
  KVI__NEED(x, "kvi_network_predict");
  KVI__NEED(probs, "kvi_network_predict");
  kvi_net *net = n->net;
  const bool cls = n->tr.cfg.task == KVI_TASK_CLASSIFY;
  if (rows <= 0) return kvi_fail(KVI_ERR_SHAPE, "%s: %lld rows", fn, (long long)rows);
  if (d != net->in_size)
    return kvi_fail(KVI_ERR_SHAPE, "%s: %d features, the network expects %d", fn, d, net->in_size);
  if (samples < 0 || samples > KVI_BMA_MAX_SAMPLES || (!cls && samples > 0))
    return kvi_fail(KVI_ERR_ARG, "%s: samples %d (expected 0 to %d; regression: 0)", fn, samples,
                    cls ? KVI_BMA_MAX_SAMPLES : 0);
  if (entropy && !cls) return kvi_fail(KVI_ERR_ARG, "%s: entropy is for classification", fn);
  for (size_t i = 0; i < (size_t)rows * (size_t)d; i++)
    if (!isfinite(x[i])) return kvi_fail(KVI_ERR_NONFINITE, "%s: x has a non-finite value", fn);
  kvi_status s = samples > 0 ? kvi_bma_probs(probs, net, x, rows, samples, seed, KVI_BMA_SHARED)
                             : kvi__mean_pass(net, x, rows, probs, cls);
  if (s || !entropy) return s;
  const int K = net->out_size;
  for (int64_t i = 0; i < rows; i++) {
    double h = 0;
    for (int k = 0; k < K; k++) {
      double p = probs[(size_t)i * K + k];
      if (p > 0) h -= p * log(p);
    }
    entropy[i] = h;
  }
  return KVI_OK;
}

kvi_status kvi_network_evaluate(kvi_network *n, const kvi_dset *ds, int samples, uint64_t seed,
                                double threshold, kvi_scores *out) {
  KVI__NEED(n, "kvi_network_evaluate");
  KVI__NEED(ds, "kvi_network_evaluate");
  KVI__NEED(out, "kvi_network_evaluate");
  if (isnan(threshold)) return kvi_fail(KVI_ERR_ARG, "kvi_network_evaluate: threshold is NaN");
  const bool reg = n->tr.cfg.task == KVI_TASK_REGRESS;
  kvi_eval_config ec = kvi_eval_config_default(); /* as kronvi eval */
  ec.samples = reg ? 0 : samples, ec.seed = seed, ec.bma = KVI_BMA_SHARED;
  ec.prune_threshold = threshold, ec.log_beta = kvi_net_log_beta(n->net);
  kvi_metrics m;
  kvi_status s = kvi_evaluate_ex(&m, n->net, &ds->ds, &ec);
  if (s) return s;
  const double nan = NAN;
  const bool bma = m.samples > 0;
  *out = (kvi_scores){m.n,
                      reg ? nan : m.acc_mean,
                      m.nll_mean,
                      bma ? m.acc_bma : nan,
                      bma ? m.nll_bma : nan,
                      bma ? m.ece : nan,
                      reg ? nan : m.entropy_mean,
                      bma ? m.entropy_bma : nan,
                      reg ? nan : m.acc_pruned,
                      reg ? m.rmse_mean : nan,
                      m.samples};
  return KVI_OK;
}

kvi_status kvi_network_sparsity(kvi_network *n, double threshold, int64_t *total, int64_t *kept) {
  KVI__NEED(n, "kvi_network_sparsity");
  if (isnan(threshold)) return kvi_fail(KVI_ERR_ARG, "kvi_network_sparsity: threshold is NaN");
  kvi_sparsity sp;
  kvi_status s = kvi_sparsity_compute(&sp, n->net, threshold);
  if (s) return s;
  if (total) *total = sp.total;
  if (kept) *kept = sp.left;
  return KVI_OK;
}

kvi_status kvi_network_prune(kvi_network *n, double threshold, int64_t *pruned) {
  KVI__NEED(n, "kvi_network_prune");
  int64_t total, kept;
  kvi_status s = kvi_network_sparsity(n, threshold, &total, &kept);
  if (!s) s = kvi_net_zero_pruned(n->net, threshold, NULL);
  if (!s && pruned) *pruned = total - kept;
  return s;
}

/* The training state of a compressed network: the configuration, counters and data
 * preparation of the original, no optimizer (as kronvi prune --structured writes it). */
static kvi_status kvi__compressed_state(kvi_network *dst, const kvi_network *src) {
  kvi_status s = kvi_trainer_init(&dst->tr, dst->net, &src->tr.cfg);
  if (s) return s;
  kvi_optimizer_free(&dst->tr.opt);
  kvi_net_set_log_beta(dst->net, kvi_net_log_beta(src->net)); /* kvi_trainer_init resets it */
  const kvi_data_prep *p = &src->tr.prep;
  dst->tr.prep = *p;
  dst->tr.prep.feature_mean = dst->tr.prep.feature_std = NULL, dst->tr.prep.d = 0;
  if (p->d > 0)
    s = kvi_data_prep_set_standardize(&dst->tr.prep, p->feature_mean, p->feature_std, p->d);
  dst->tr.epoch = src->tr.epoch, dst->tr.step = src->tr.step, dst->tr.elapsed = src->tr.elapsed;
  dst->tr.best_val = src->tr.best_val, dst->tr.best_epoch = src->tr.best_epoch;
  dst->c = src->c, dst->h = src->h, dst->w = src->w;
  return s;
}

kvi_status kvi_network_compress(kvi_network **out, const kvi_network *n, double threshold) {
  KVI__NEED(out, "kvi_network_compress");
  *out = NULL;
  KVI__NEED(n, "kvi_network_compress");
  kvi_net *small = NULL;
  kvi_compress_info info;
  kvi_status s = kvi_net_compress(&small, &info, n->net, threshold);
  if (s) return s;
  kvi_network *c = kvi__network_wrap(small);
  if (!c) {
    kvi_net_free(small);
    return KVI_ERR_NOMEM;
  }
  s = kvi__compressed_state(c, n);
  if (s) {
    kvi_network_free(c);
    return s;
  }
  *out = c;
  return KVI_OK;
}

void kvi_network_free(kvi_network *n) {
  if (!n) return;
  if (n->tr.net) kvi_trainer_free(&n->tr);
  kvi_net_free(n->net);
  free(n);
}
