/* Reading checkpoints: the metadata is validated field by field with the command line's ranges
 * (an absent, non-numeric or out-of-range field is an error naming it), the parameters by their
 * view names, the optimizer state by its state tensors' names. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/ckpt_internal.h"

kvi_status kvi__ckpt_num(double *out, const kvi_json *obj, const char *where, const char *key,
                         double lo, double hi, const char *path) {
  const kvi_json *v = kvi_json_get(obj, key);
  if (!v)
    return kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field '%s.%s' is missing", path, where, key);
  double x = kvi_json_num(v);
  if (isnan(x))
    return kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field '%s.%s' is not a number", path, where,
                    key);
  if (!(x >= lo && x <= hi))
    return kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field '%s.%s' = %g is outside [%g, %g]", path,
                    where, key, x, lo, hi);
  *out = x;
  return KVI_OK;
}

kvi_status kvi__ckpt_int(int64_t *out, const kvi_json *obj, const char *where, const char *key,
                         int64_t lo, int64_t hi, const char *path) {
  const kvi_json *v = kvi_json_get(obj, key);
  if (!v)
    return kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field '%s.%s' is missing", path, where, key);
  int64_t x = 0;
  if (!kvi_json_int(v, &x))
    return kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field '%s.%s' is not an integer", path, where,
                    key);
  if (x < lo || x > hi)
    return kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field '%s.%s' = %lld is outside [%lld, %lld]",
                    path, where, key, (long long)x, (long long)lo, (long long)hi);
  *out = x;
  return KVI_OK;
}

kvi_status kvi__ckpt_seed(uint64_t *out, const kvi_json *obj, const char *where, const char *key,
                          const char *path) {
  const char *s = kvi_json_str(kvi_json_get(obj, key));
  char *end = NULL;
  if (s && *s >= '0' && *s <= '9') *out = strtoull(s, &end, 10);
  if (!s || !end || *end)
    return kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field '%s.%s' is not a decimal seed string",
                    path, where, key);
  return KVI_OK;
}

static kvi_status kvi__ckpt_prior(kvi_prior *pr, const char *s, const char *path) {
  for (int i = 0; i <= KVI_PRIOR_FIXED; i++)
    if (s && strcmp(s, kvi_prior_name((kvi_prior)i)) == 0) return *pr = (kvi_prior)i, KVI_OK;
  return kvi_fail(KVI_ERR_FORMAT, "%s: unknown prior '%s'", path, s ? s : "(none)");
}

kvi_status kvi__ckpt_read_net(kvi_net_config *nc, const char **arch, int *in_size,
                              const kvi_json *o, const char *where, const char *path) {
  *nc = kvi_net_config_default();
  *arch = kvi_json_str(kvi_json_get(o, "arch"));
  if (!*arch)
    return kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field '%s.arch' is missing", path, where);
  kvi_status s = kvi_family_parse(&nc->family, kvi_json_str(kvi_json_get(o, "family")));
  if (!s) s = kvi__ckpt_prior(&nc->prior, kvi_json_str(kvi_json_get(o, "prior")), path);
  if (!s) s = kvi_act_parse(&nc->act, kvi_json_str(kvi_json_get(o, "act")));
  if (s) return kvi_fail(KVI_ERR_FORMAT, "%s: %s", path, kvi_last_error());
  int64_t v = 0;
  s = kvi__ckpt_num(&nc->prior_var, o, where, "prior_var", 1e-300, 1e300, path);
  if (!s) s = kvi__ckpt_num(&nc->init_log_sigma, o, where, "init_log_sigma", -30, 5, path);
  if (!s) s = kvi__ckpt_int(&v, o, where, "in_size", 1, 1 << 30, path);
  if (s) return s;
  *in_size = (int)v;
  nc->bias = kvi_json_bool(kvi_json_get(o, "bias"));
  nc->noise_param = kvi_json_bool(kvi_json_get(o, "noise_param"));
  nc->max_memory = -1; /* it was built once */
  const kvi_json *norm = kvi_json_get(o, "input_norm");
  if (norm) {
    double mu = kvi_json_num(kvi_json_at(norm, 0)), sd = kvi_json_num(kvi_json_at(norm, 1));
    if (!(sd > 0) || !isfinite(sd) || !isfinite(mu))
      return kvi_fail(KVI_ERR_FORMAT, "%s: bad input_norm [%g, %g] in metadata", path, mu, sd);
    nc->input_mean = mu, nc->input_std = sd;
  }
  return KVI_OK;
}

/* K-FAC's settings (written by every version-2 file, whatever the optimizer). */
static kvi_status kvi__read_kfac(kvi_opt_config *o, const kvi_json *tr, const char *path) {
  int64_t every = 0, adapt = 0;
  const char *w = "train";
  kvi_status s = kvi__ckpt_num(&o->damping, tr, w, "kfac_damping", 1e-12, 1e6, path);
  if (!s) s = kvi__ckpt_num(&o->ema, tr, w, "kfac_ema", 0, 0.999999, path);
  if (!s) s = kvi__ckpt_int(&every, tr, w, "kfac_inverse_every", 1, 1000000, path);
  if (!s) s = kvi__ckpt_num(&o->kl_clip, tr, w, "kfac_kl_clip", 0, 1e6, path);
  if (!s) s = kvi__ckpt_int(&adapt, tr, w, "kfac_adapt_every", 0, 1000000, path);
  if (s) return s;
  o->inverse_every = (int)every, o->adapt_every = (int)adapt;
  const char *f = kvi_json_str(kvi_json_get(tr, "kfac_fisher"));
  const char *d = kvi_json_str(kvi_json_get(tr, "kfac_damping_kind"));
  if (!f || (strcmp(f, "sampled") && strcmp(f, "empirical")))
    return kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field 'train.kfac_fisher' is '%s'", path,
                    f ? f : "(missing)");
  if (!d || (strcmp(d, "factored") && strcmp(d, "exact")))
    return kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field 'train.kfac_damping_kind' is '%s'", path,
                    d ? d : "(missing)");
  o->fisher = strcmp(f, "empirical") ? KVI_FISHER_SAMPLED : KVI_FISHER_EMPIRICAL;
  o->damping_kind = strcmp(d, "exact") ? KVI_DAMP_FACTORED : KVI_DAMP_EXACT;
  o->ekfac = kvi_json_bool(kvi_json_get(tr, "ekfac"));
  return KVI_OK;
}

/* The solvers' settings (docs/curv.md); files written before them keep the defaults. */
static kvi_status kvi__read_solvers(kvi_opt_config *o, const kvi_json *tr, const char *path) {
  if (!kvi_json_get(tr, "cg_max")) return KVI_OK;
  int64_t v[4];
  const char *w = "train";
  kvi_status s = kvi__ckpt_int(&v[0], tr, w, "cg_max", 1, 100000, path);
  if (!s) s = kvi__ckpt_int(&v[1], tr, w, "dense_max", 0, 100000, path);
  if (!s) s = kvi__ckpt_int(&v[2], tr, w, "lbfgs_memory", 1, 1000, path);
  if (!s) s = kvi__ckpt_int(&v[3], tr, w, "prox_steps", 1, 100000, path);
  if (!s) s = kvi__ckpt_num(&o->prox_fsd, tr, w, "prox_fsd", 0, 1e6, path);
  if (!s) s = kvi__ckpt_num(&o->prox_wsd, tr, w, "prox_wsd", 0, 1e6, path);
  if (s) return s;
  o->cg_max = (int)v[0], o->dense_max = (int)v[1], o->lbfgs_memory = (int)v[2];
  o->prox_steps = (int)v[3];
  o->hf_hessian = kvi_json_bool(kvi_json_get(tr, "hf_hessian"));
  return KVI_OK;
}

/* --mndiag-bound slq (files written before it: the Minkowski bound). */
static kvi_status kvi__read_slq(kvi_train_config *c, const kvi_json *tr, const char *path) {
  c->mndiag_slq = kvi_json_bool(kvi_json_get(tr, "mndiag_slq"));
  if (!kvi_json_get(tr, "slq_probes")) return KVI_OK;
  int64_t v[3];
  kvi_status s = kvi__ckpt_int(&v[0], tr, "train", "slq_probes", 1, 1000, path);
  if (!s) s = kvi__ckpt_int(&v[1], tr, "train", "slq_steps", 2, 200, path);
  if (!s) s = kvi__ckpt_int(&v[2], tr, "train", "slq_refresh", 1, 1000000, path);
  if (s) return s;
  c->slq.probes = (int)v[0], c->slq.steps = (int)v[1], c->slq.refresh = (int)v[2];
  return KVI_OK;
}

/* The training configuration, each field in the command line's range. */
static kvi_status kvi__read_train(kvi_train_config *c, const kvi_json *tr, int version,
                                  const char *path) {
  int64_t v[8];
  kvi_opt_kind ok;
  if (kvi_opt_parse(&ok, kvi_json_str(kvi_json_get(tr, "optimizer"))))
    return kvi_fail(KVI_ERR_FORMAT, "%s: %s", path, kvi_last_error());
  c->opt = kvi_opt_config_default(ok);
  const char *w = "train";
  kvi_status s = kvi__ckpt_int(&v[0], tr, w, "epochs", 0, 1000000, path);
  if (!s) s = kvi__ckpt_int(&v[1], tr, w, "batch", 1, 100000, path);
  if (!s) s = kvi__ckpt_num(&c->opt.lr, tr, w, "lr", 1e-12, 1e3, path);
  if (!s) s = kvi__ckpt_num(&c->opt.beta1, tr, w, "beta1", 0, 0.999999, path);
  if (!s) s = kvi__ckpt_num(&c->opt.beta2, tr, w, "beta2", 0, 0.999999999, path);
  if (!s) s = kvi__ckpt_num(&c->opt.eps, tr, w, "adam_eps", 1e-300, 1, path);
  if (!s) s = kvi__ckpt_num(&c->opt.momentum, tr, w, "momentum", 0, 0.9999, path);
  if (!s) s = kvi__ckpt_num(&c->opt.weight_decay, tr, w, "weight_decay", 0, 1e3, path);
  if (!s) s = kvi__ckpt_num(&c->lr_decay, tr, w, "lr_decay", 1e-6, 1, path);
  if (!s) s = kvi__ckpt_num(&c->lr_final, tr, w, "lr_final", 0, 1e3, path);
  if (!s) s = kvi__ckpt_num(&c->kl_warmup, tr, w, "kl_warmup", 0, 1e6, path);
  if (!s) s = kvi__ckpt_int(&v[2], tr, w, "samples", 0, 100000, path);
  if (!s) s = kvi__ckpt_int(&v[3], tr, w, "eval_samples_every", 0, 100000, path);
  if (!s) s = kvi__ckpt_seed(&c->seed, tr, w, "seed", path);
  if (!s) s = kvi__ckpt_num(&c->prune_threshold, tr, w, "prune_threshold", -100, 100, path);
  if (!s) s = kvi__ckpt_int(&v[4], tr, w, "patience", 0, 100000, path);
  if (!s) s = kvi__ckpt_int(&v[5], tr, w, "save_every", 1, 1000000, path);
  if (!s) s = kvi__ckpt_num(&c->noise_precision, tr, w, "noise_precision", 1e-12, 1e12, path);
  v[6] = 0, v[7] = 0; /* version 1 files may predate these two */
  if (!s && (version > 1 || kvi_json_get(tr, "finetune_pruned")))
    s = kvi__ckpt_int(&v[6], tr, w, "finetune_pruned", 0, 1000000, path);
  if (!s && (version > 1 || kvi_json_get(tr, "prior_update_every")))
    s = kvi__ckpt_int(&v[7], tr, w, "prior_update_every", 0, 1000000000, path);
  if (s) return s;
  c->epochs = (int)v[0], c->batch = (int)v[1], c->samples = (int)v[2];
  c->eval_samples_every = (int)v[3], c->patience = (int)v[4], c->save_every = (int)v[5];
  c->finetune_pruned = (int)v[6], c->prior_update_every = (int)v[7];
  c->opt.nesterov = kvi_json_bool(kvi_json_get(tr, "nesterov"));
  if (version > 1 && (s = kvi__read_kfac(&c->opt, tr, path)) != KVI_OK) return s;
  if ((s = kvi__read_solvers(&c->opt, tr, path)) != KVI_OK) return s;
  if ((s = kvi__read_slq(c, tr, path)) != KVI_OK) return s;
  const char *ks = kvi_json_str(kvi_json_get(tr, "kl_schedule"));
  if (!ks || (strcmp(ks, "exp") && strcmp(ks, "linear") && strcmp(ks, "constant")))
    return kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field 'train.kl_schedule' is '%s'", path,
                    ks ? ks : "(missing)");
  c->kl_schedule = !strcmp(ks, "exp")        ? KVI_KL_EXP
                   : !strcmp(ks, "constant") ? KVI_KL_CONSTANT
                                             : KVI_KL_LINEAR;
  c->hflip = kvi_json_bool(kvi_json_get(tr, "hflip"));
  c->learn_noise = kvi_json_bool(kvi_json_get(tr, "learn_noise"));
  return KVI_OK;
}

static kvi_status kvi__read_data(kvi_data_prep *d, const kvi_json *o, const char *path) {
  int64_t v[5];
  const char *w = "data";
  kvi_status s = kvi__ckpt_int(&v[0], o, w, "limit_train", 0, 1000000000, path);
  if (!s) s = kvi__ckpt_int(&v[1], o, w, "limit_test", 0, 1000000000, path);
  if (!s) s = kvi__ckpt_int(&v[2], o, w, "val", 0, 100000000, path);
  if (!s) s = kvi__ckpt_int(&v[3], o, w, "pad", 0, 64, path);
  if (!s) s = kvi__ckpt_int(&v[4], o, w, "standardize", 0, 1 << 30, path);
  if (!s) s = kvi__ckpt_seed(&d->val_seed, o, w, "val_seed", path);
  if (s) return s;
  d->limit_train = v[0], d->limit_test = v[1], d->val = v[2], d->pad = (int)v[3], d->d = (int)v[4];
  return KVI_OK;
}

/* The counters of the "state" object; epoch and step within the run's own limits. */
static kvi_status kvi__read_state(kvi_trainer *t, const kvi_json *st, const char *path) {
  int64_t v[5];
  const char *w = "state";
  kvi_status s = kvi__ckpt_int(&v[0], st, w, "epoch", 0, 1000000, path);
  if (!s) s = kvi__ckpt_int(&v[1], st, w, "step", 0, (int64_t)1 << 50, path);
  if (!s) s = kvi__ckpt_int(&v[2], st, w, "optimizer_t", 0, (int64_t)1 << 50, path);
  if (!s) s = kvi__ckpt_int(&v[3], st, w, "best_epoch", 0, 1000000, path);
  if (!s) s = kvi__ckpt_int(&v[4], st, w, "bad_epochs", 0, 1000000, path);
  if (!s) s = kvi__ckpt_num(&t->best_val, st, w, "best_val", -1e300, 1e300, path);
  if (!s) s = kvi__ckpt_num(&t->elapsed, st, w, "elapsed", 0, 1e12, path);
  if (s) return s;
  if (v[2] > v[1])
    return kvi_fail(KVI_ERR_FORMAT,
                    "%s: checkpoint field 'state.optimizer_t' = %lld exceeds "
                    "'state.step' = %lld",
                    path, (long long)v[2], (long long)v[1]);
  t->epoch = (int)v[0], t->step = v[1], t->opt.t = v[2];
  t->best_epoch = (int)v[3], t->bad_epochs = (int)v[4];
  return KVI_OK;
}

/* Replays the view offsets a version-1 writer of element size `esize` used (views 64-byte
 * aligned); writes off[i] and returns the total. */
static size_t kvi__v1_offsets(size_t *off, const kvi_params *p, size_t esize) {
  size_t n = 0, align = 64 / esize;
  for (int i = 0; i < p->nviews; i++) {
    n = (n + align - 1) / align * align;
    off[i] = n;
    n += p->views[i].size;
  }
  return n;
}

/* Version 1: the flat "optim.m" / "optim.v" buffers with the writer's gaps, scattered to the
 * views' state tensors. */
static kvi_status kvi__read_opt_v1(kvi_optimizer *o, const kvi_params *p, const kvi_st_file *f,
                                   const char *path) {
  for (int b = 0; b < 2; b++) {
    const char *flat = b ? "optim.v" : "optim.m";
    const kvi_st_tensor *ft = kvi_st_get(f, flat);
    bool wanted = false;
    for (int i = 0; i < o->nstate; i++) wanted |= !strncmp(o->state[i].name, flat, 7);
    if (!wanted) continue;
    if (!ft) return kvi_fail(KVI_ERR_FORMAT, "%s: no optimizer state '%s'", path, flat);
    size_t *off = malloc((size_t)(p->nviews + 1) * sizeof *off);
    size_t numel = (size_t)kvi_st_numel(ft);
    kvi_real *tmp = kvi_alloc((numel ? numel : 1) * sizeof(kvi_real));
    kvi_status s = off && tmp ? kvi_st_read_reals(tmp, numel, f, flat) : KVI_ERR_NOMEM;
    if (!s) kvi__v1_offsets(off, p, kvi_st_dtype_size(ft->dtype));
    for (int i = 0; !s && i < o->nstate; i++) {
      const kvi_opt_state *st = &o->state[i];
      if (st->view < 0 || strncmp(st->name, flat, 7) || st->name[7] != '.') continue;
      if (off[st->view] + st->size > numel)
        s = kvi_fail(KVI_ERR_FORMAT, "%s: '%s' does not match the network", path, flat);
      else
        memcpy(st->data, tmp + off[st->view], st->size * sizeof(kvi_real));
    }
    free(off);
    kvi_free(tmp);
    if (s) return s;
  }
  return KVI_OK;
}

static kvi_status kvi__read_opt(kvi_trainer *t, const kvi_st_file *f, int version, bool reset,
                                const char *path) {
  kvi_optimizer *o = &t->opt;
  bool have = version == 1 ? kvi_st_get(f, "optim.m") != NULL
                           : o->nstate > 0 && kvi_st_get(f, o->state[0].name) != NULL;
  if (reset) {
    kvi_optimizer_reset(o);
    return KVI_OK;
  }
  if (!have)
    return kvi_fail(KVI_ERR_STATE,
                    "%s: the checkpoint has no optimizer state to resume from (HINT: "
                    "--reset-optimizer starts the optimizer's moments from zero)",
                    path);
  if (version == 1) return kvi__read_opt_v1(o, t->net->params, f, path);
  for (int i = 0; i < o->nstate; i++) {
    kvi_status s = kvi_st_read_reals(o->state[i].data, o->state[i].size, f, o->state[i].name);
    if (s) return kvi_fail(s, "%s: optimizer state: %s", path, kvi_last_error());
  }
  return KVI_OK;
}

/* Fine-tune mask and standardization statistics. */
static kvi_status kvi__read_extras(kvi_trainer *t, const kvi_st_file *f, const char *path) {
  const kvi_st_tensor *m = kvi_st_get(f, "train.ft_mask");
  if (m) {
    size_t nw = kvi_net_weight_count(t->net);
    if (strcmp(m->dtype, "U8") || (size_t)kvi_st_numel(m) != nw)
      return kvi_fail(KVI_ERR_FORMAT, "%s: 'train.ft_mask' is not %zu bytes", path, nw);
    if (!(t->ft_mask = kvi_alloc(nw))) return KVI_ERR_NOMEM;
    memcpy(t->ft_mask, m->data, nw);
  }
  int d = t->prep.d;
  t->prep.d = 0;
  if (d == 0) return KVI_OK;
  kvi_real *mu = kvi_alloc((size_t)d * sizeof *mu), *sd = kvi_alloc((size_t)d * sizeof *sd);
  kvi_status s =
      mu && sd ? kvi_st_read_reals(mu, (size_t)d, f, "data.feature_mean") : KVI_ERR_NOMEM;
  if (!s) s = kvi_st_read_reals(sd, (size_t)d, f, "data.feature_std");
  for (int i = 0; !s && i < d; i++)
    if (!(sd[i] > 0) || !isfinite(sd[i]) || !isfinite(mu[i]))
      s = kvi_fail(KVI_ERR_FORMAT, "%s: bad standardization statistics of feature %d", path, i);
  if (!s) s = kvi_data_prep_set_standardize(&t->prep, mu, sd, d);
  kvi_free(mu), kvi_free(sd);
  return s;
}

/* The parameters by view name; a version-1 regression file has its noise precision in the
 * metadata. */
static kvi_status kvi__read_params(kvi_net *net, const kvi_st_file *f, const kvi_json *model,
                                   const char *path) {
  const kvi_params *p = net->params;
  for (int i = 0; i < p->nviews; i++) {
    const kvi_view *v = &p->views[i];
    if (i == net->inoise && !kvi_st_get(f, v->name)) {
      double lb = kvi_json_num(kvi_json_get(model, "log_noise_precision"));
      if (!isfinite(lb))
        return kvi_fail(KVI_ERR_FORMAT, "%s: no noise precision ('%s')", path, v->name);
      kvi_net_set_log_beta(net, (kvi_real)lb);
      continue;
    }
    kvi_status s = kvi_st_read_reals(p->data + v->offset, v->size, f, v->name);
    if (s) return kvi_fail(s, "%s: %s", path, kvi_last_error());
  }
  return kvi_check_finite(p->data, p->n, path);
}

void kvi__ckpt_close(kvi__ckpt_file *c) {
  kvi_json_free(c->root);
  kvi_safetensors_close(c->f);
}

/* Opens path, parses the "kronvi" metadata and checks the version. */
kvi_status kvi__ckpt_open(kvi__ckpt_file *c, const char *path) {
  memset(c, 0, sizeof *c);
  kvi_status s = kvi_safetensors_open(&c->f, path);
  if (s) return s;
  const char *meta = kvi_st_meta(c->f, "kronvi");
  if (!meta)
    s = kvi_fail(KVI_ERR_FORMAT,
                 "%s: a safetensors file but not a kronvi checkpoint (no 'kronvi' metadata)", path);
  if (!s && (s = kvi_json_parse(&c->root, meta, strlen(meta))) != KVI_OK)
    s = kvi_fail(s, "%s: bad kronvi metadata: %s", path, kvi_last_error());
  int64_t v = 0;
  if (!s && !kvi_json_int(kvi_json_get(c->root, "version"), &v))
    s = kvi_fail(KVI_ERR_FORMAT, "%s: checkpoint field 'version' is missing", path);
  if (!s && (v < 1 || v > KVI_CKPT_VERSION))
    s = kvi_fail(KVI_ERR_FORMAT,
                 "%s: checkpoint format version %lld is not supported (this build reads 1 to %d)",
                 path, (long long)v, KVI_CKPT_VERSION);
  c->version = (int)v;
  if (s) kvi__ckpt_close(c);
  return s;
}

static kvi_status kvi__need(const kvi_json *v, const char *key, const char *path) {
  return v ? KVI_OK
           : kvi_fail(KVI_ERR_FORMAT,
                      "%s: checkpoint metadata lacks '%s' (not a kronvi checkpoint?)", path, key);
}

/* Builds the net of the "model" object. */
static kvi_status kvi__load_net(kvi_net **net, kvi_train_config *cfg, const kvi_json *model,
                                const char *path) {
  kvi_net_config nc;
  const char *arch = NULL;
  int in_size = 0;
  kvi_status s = kvi__ckpt_read_net(&nc, &arch, &in_size, model, "model", path);
  if (s) return s;
  const char *task = kvi_json_str(kvi_json_get(model, "task"));
  cfg->task = task && strcmp(task, "regression") == 0 ? KVI_TASK_REGRESS : KVI_TASK_CLASSIFY;
  nc.noise_param = cfg->task == KVI_TASK_REGRESS;
  const kvi_json *shape = kvi_json_get(model, "in_shape");
  int64_t hw[2] = {0, 0};
  for (int i = 0; i < 2; i++)
    if (!kvi_json_int(kvi_json_at(shape, (size_t)i + 1), &hw[i]) || hw[i] < 0 || hw[i] > 65536)
      hw[i] = 0;
  nc.in_h = (int)hw[0], nc.in_w = (int)hw[1];
  s = kvi_net_create(net, arch, kvi_arch_is_conv(arch) && !hw[0] ? in_size : 0, &nc,
                     kvi_net_pick_max_batch(arch, cfg->batch), cfg->seed);
  return s ? kvi_fail(s, "%s: %s", path, kvi_last_error()) : KVI_OK;
}

kvi_status kvi_checkpoint_load_ex(const char *path, kvi_net **net_out, kvi_trainer *t,
                                  kvi_train_config *cfg_out, bool reset_optimizer) {
  if (!path || !net_out) return kvi_fail(KVI_ERR_ARG, "checkpoint_load: NULL argument");
  *net_out = NULL;
  if (t) memset(t, 0, sizeof *t); /* a failure before kvi_trainer_init frees nothing of it */
  kvi__ckpt_file c;
  kvi_status s = kvi__ckpt_open(&c, path);
  if (s) return s;
  const kvi_json *model = kvi_json_get(c.root, "model"), *tr = kvi_json_get(c.root, "train"),
                 *st = kvi_json_get(c.root, "state"), *data = kvi_json_get(c.root, "data");
  if (!model && kvi_json_get(c.root, "nets"))
    s = kvi_fail(KVI_ERR_FORMAT, "%s: a model of several nets (HINT: kvi_model_load)", path);
  if (!model && kvi_json_get(c.root, "vae"))
    s = kvi_fail(KVI_ERR_FORMAT,
                 "%s: a variational auto-encoder checkpoint, not a classifier (HINT: kronvi vae "
                 "eval, sample or reconstruct)",
                 path);
  if (!s) s = kvi__need(model, "model", path);
  if (!s) s = kvi__need(tr, "train", path);
  if (!s) s = kvi__need(st, "state", path);
  if (!s && c.version > 1) s = kvi__need(data, "data", path);
  kvi_train_config cfg = kvi_train_config_default();
  kvi_data_prep prep = {0};
  if (!s) s = kvi__read_train(&cfg, tr, c.version, path);
  if (!s && data) s = kvi__read_data(&prep, data, path);
  kvi_net *net = NULL;
  if (!s) s = kvi__load_net(&net, &cfg, model, path);
  if (!s) s = kvi__read_params(net, c.f, model, path);
  if (!s && t) {
    const kvi_real log_beta = kvi_net_log_beta(net); /* kvi_trainer_init sets the initial one */
    s = kvi_trainer_init(t, net, &cfg);
    if (!s) {
      kvi_net_set_log_beta(net, log_beta);
      t->prep = prep;
      s = kvi__read_state(t, st, path);
    }
    if (!s) s = kvi__read_opt(t, c.f, c.version, reset_optimizer, path);
    if (!s) s = kvi__read_extras(t, c.f, path);
  }
  if (!s && cfg_out) *cfg_out = cfg;
  kvi__ckpt_close(&c);
  if (s) {
    if (t && t->net) kvi_trainer_free(t);
    kvi_net_free(net);
    return s;
  }
  *net_out = net;
  return KVI_OK;
}

kvi_status kvi_checkpoint_load(const char *path, kvi_net **net, kvi_trainer *t,
                               kvi_train_config *cfg_out) {
  return kvi_checkpoint_load_ex(path, net, t, cfg_out, false);
}

/* One net of a model file. */
static kvi_status kvi__model_net(kvi_model *m, const kvi_json *o, const char *path) {
  kvi_net_config nc;
  const char *arch = NULL, *name = kvi_json_str(kvi_json_get(o, "name"));
  const char *over = kvi_json_str(kvi_json_get(o, "params_of"));
  int in_size = 0;
  int64_t mb = 0, hw[2] = {0, 0};
  kvi_status s = name ? kvi__ckpt_read_net(&nc, &arch, &in_size, o, "nets[]", path)
                      : kvi_fail(KVI_ERR_FORMAT, "%s: a net without a name", path);
  if (!s) s = kvi__ckpt_int(&mb, o, "nets[]", "max_batch", 1, 1 << 24, path);
  const kvi_json *inhw = kvi_json_get(o, "in_hw");
  for (int i = 0; !s && i < 2; i++)
    if (!kvi_json_int(kvi_json_at(inhw, (size_t)i), &hw[i]) || hw[i] < 0 || hw[i] > 65536)
      s = kvi_fail(KVI_ERR_FORMAT, "%s: bad 'in_hw' of net '%s'", path, name);
  if (s) return s;
  nc.in_h = (int)hw[0], nc.in_w = (int)hw[1];
  s = kvi_model_add_net_over(m, NULL, name, over ? over : name, arch, in_size, &nc, (int)mb);
  return s ? kvi_fail(s, "%s: %s", path, kvi_last_error()) : KVI_OK;
}

kvi_status kvi_model_load(kvi_model **out, const char *path) {
  if (!out || !path) return kvi_fail(KVI_ERR_ARG, "model_load: NULL argument");
  *out = NULL;
  kvi__ckpt_file c;
  kvi_status s = kvi__ckpt_open(&c, path);
  if (s) return s;
  const kvi_json *nets = kvi_json_get(c.root, "nets");
  size_t nn = kvi_json_len(nets);
  if (kvi_json_kind(nets) != KVI_JSON_ARRAY || nn == 0 || nn > KVI_MODEL_MAX_NETS)
    s = kvi_fail(KVI_ERR_FORMAT, "%s: no 'nets' list of 1 to %d nets", path, KVI_MODEL_MAX_NETS);
  kvi_model *m = NULL;
  if (!s) s = kvi_model_create(&m);
  for (size_t i = 0; !s && i < nn; i++) s = kvi__model_net(m, kvi_json_at(nets, i), path);
  if (!s) s = kvi_model_finish(m, 0);
  for (int i = 0; !s && i < m->params.nviews; i++) {
    const kvi_view *v = &m->params.views[i];
    s = kvi_st_read_reals(m->params.data + v->offset, v->size, c.f, v->name);
    if (s) s = kvi_fail(s, "%s: %s", path, kvi_last_error());
  }
  if (!s) s = kvi_check_finite(m->params.data, m->params.n, path);
  kvi__ckpt_close(&c);
  if (s) {
    kvi_model_free(m);
    return s;
  }
  *out = m;
  return KVI_OK;
}
