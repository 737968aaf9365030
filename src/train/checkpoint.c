/* Checkpoints in the safetensors format: one tensor per parameter view (named as the view),
 * the optimizer moments as "optim.m" / "optim.v", and a JSON document under the metadata key
 * "kronvi" with the architecture, the training configuration and the counters needed to resume
 * exactly (docs/io.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/io.h"
#include "kronvi/train.h"

#define KVI_CKPT_VERSION 1

static const char *kvi__task_name(kvi_task t) {
  return t == KVI_TASK_REGRESS ? "regression" : "classification";
}
static const char *kvi__sched_name(kvi_kl_schedule s) {
  return s == KVI_KL_EXP ? "exp" : s == KVI_KL_LINEAR ? "linear" : "constant";
}

static char *kvi__meta_json(const kvi_trainer *t, const kvi_dataset *shape_of) {
  const kvi_net *net = t->net;
  const kvi_train_config *c = &t->cfg;
  kvi_json_buf jb;
  kvi_jb_init(&jb, false);
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_int(&jb, "version", KVI_CKPT_VERSION);
  kvi_jb_kv_str(&jb, "precision", KVI_REAL_NAME);
  kvi_jb_key(&jb, "model");
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_str(&jb, "arch", net->arch);
  kvi_jb_kv_str(&jb, "family", kvi_family_name(net->cfg.family));
  kvi_jb_kv_str(&jb, "prior", kvi_prior_name(net->cfg.prior));
  kvi_jb_kv_num(&jb, "prior_var", net->cfg.prior_var);
  kvi_jb_kv_str(&jb, "act", kvi_act_name(net->cfg.act));
  kvi_jb_kv_bool(&jb, "bias", net->cfg.bias);
  kvi_jb_kv_num(&jb, "init_log_sigma", net->cfg.init_log_sigma);
  kvi_jb_kv_int(&jb, "in_size", net->in_size);
  kvi_jb_kv_int(&jb, "out_size", net->out_size);
  kvi_jb_key(&jb, "in_shape");
  kvi_jb_begin_array(&jb);
  kvi_jb_int(&jb, shape_of ? shape_of->c : 0);
  kvi_jb_int(&jb, shape_of ? shape_of->h : 0);
  kvi_jb_int(&jb, shape_of ? shape_of->w : 0);
  kvi_jb_end_array(&jb);
  if (net->cfg.input_std > 0) {
    kvi_jb_key(&jb, "input_norm"); /* [mean, std] of kronvi train --normalize */
    kvi_jb_begin_array(&jb);
    kvi_jb_num(&jb, net->cfg.input_mean);
    kvi_jb_num(&jb, net->cfg.input_std);
    kvi_jb_end_array(&jb);
  }
  kvi_jb_kv_str(&jb, "task", kvi__task_name(c->task));
  kvi_jb_kv_num(&jb, "log_noise_precision", (double)t->net->log_beta);
  kvi_jb_end_object(&jb);
  kvi_jb_key(&jb, "train");
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_int(&jb, "epochs", c->epochs);
  kvi_jb_kv_int(&jb, "batch", c->batch);
  kvi_jb_kv_str(&jb, "optimizer", kvi_opt_name(c->opt.kind));
  kvi_jb_kv_num(&jb, "lr", c->opt.lr);
  kvi_jb_kv_num(&jb, "beta1", c->opt.beta1);
  kvi_jb_kv_num(&jb, "beta2", c->opt.beta2);
  kvi_jb_kv_num(&jb, "adam_eps", c->opt.eps);
  kvi_jb_kv_num(&jb, "momentum", c->opt.momentum);
  kvi_jb_kv_num(&jb, "weight_decay", c->opt.weight_decay);
  kvi_jb_kv_num(&jb, "lr_decay", c->lr_decay);
  kvi_jb_kv_num(&jb, "lr_final", c->lr_final);
  kvi_jb_kv_str(&jb, "kl_schedule", kvi__sched_name(c->kl_schedule));
  kvi_jb_kv_num(&jb, "kl_warmup", c->kl_warmup);
  kvi_jb_kv_int(&jb, "samples", c->samples);
  kvi_jb_kv_int(&jb, "eval_samples_every", c->eval_samples_every);
  char seed[24]; /* a decimal string: JSON numbers lose 64-bit precision */
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
  kvi_jb_kv_str(&jb, "seed", seed);
  kvi_jb_kv_num(&jb, "prune_threshold", c->prune_threshold);
  kvi_jb_kv_int(&jb, "patience", c->patience);
  kvi_jb_kv_int(&jb, "save_every", c->save_every);
  kvi_jb_kv_bool(&jb, "hflip", c->hflip);
  kvi_jb_kv_int(&jb, "finetune_pruned", c->finetune_pruned);
  kvi_jb_kv_int(&jb, "prior_update_every", c->prior_update_every);
  kvi_jb_kv_num(&jb, "noise_precision", c->noise_precision);
  kvi_jb_kv_bool(&jb, "learn_noise", c->learn_noise);
  kvi_jb_end_object(&jb);
  kvi_jb_key(&jb, "state");
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_int(&jb, "epoch", t->epoch);
  kvi_jb_kv_int(&jb, "step", t->step);
  kvi_jb_kv_int(&jb, "optimizer_t", t->opt.t);
  kvi_jb_kv_num(&jb, "m_noise", (double)t->m_beta);
  kvi_jb_kv_num(&jb, "v_noise", (double)t->v_beta);
  kvi_jb_kv_num(&jb, "best_val", t->best_val);
  kvi_jb_kv_int(&jb, "best_epoch", t->best_epoch);
  kvi_jb_kv_int(&jb, "bad_epochs", t->bad_epochs);
  kvi_jb_kv_num(&jb, "elapsed", t->elapsed);
  kvi_jb_end_object(&jb);
  kvi_jb_end_object(&jb);
  char *s = NULL;
  size_t len = 0;
  if (kvi_jb_take(&jb, &s, &len) != KVI_OK) return NULL;
  return s;
}

kvi_status kvi_checkpoint_save(const char *path, const kvi_trainer *t,
                               const kvi_dataset *shape_of) {
  if (!path || !t || !t->net) return kvi_fail(KVI_ERR_ARG, "checkpoint_save: NULL argument");
  const kvi_params *p = &t->net->params;
  int nt = p->nviews + 2;
  kvi_st_tensor *ts = calloc((size_t)nt, sizeof *ts);
  char *meta = kvi__meta_json(t, shape_of);
  if (!ts || !meta) {
    free(ts), free(meta);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory writing checkpoint");
  }
  const char *dt = sizeof(kvi_real) == 8 ? "F64" : "F32";
  int k = 0;
  for (int i = 0; i < p->nviews; i++, k++) {
    ts[k].name = p->views[i].name;
    ts[k].dtype = dt;
    ts[k].ndim = p->views[i].ndim;
    for (int d = 0; d < p->views[i].ndim; d++) ts[k].shape[d] = p->views[i].shape[d];
    ts[k].data = p->data + p->views[i].offset;
  }
  if (t->opt.m) {
    ts[k] = (kvi_st_tensor){.name = "optim.m", .dtype = dt, .ndim = 1, .data = t->opt.m};
    ts[k++].shape[0] = (int64_t)p->n;
  }
  if (t->opt.v) {
    ts[k] = (kvi_st_tensor){.name = "optim.v", .dtype = dt, .ndim = 1, .data = t->opt.v};
    ts[k++].shape[0] = (int64_t)p->n;
  }
  const char *keys[2] = {"format", "kronvi"};
  const char *vals[2] = {"kronvi", meta};
  kvi_status s = kvi_safetensors_write(path, ts, k, keys, vals, 2);
  free(ts);
  free(meta);
  return s;
}

static kvi_status kvi__need(const kvi_json *v, const char *key, const char *path) {
  return v ? KVI_OK
           : kvi_fail(KVI_ERR_FORMAT,
                      "%s: checkpoint metadata lacks '%s' (not a kronvi checkpoint?)", path, key);
}

kvi_status kvi_checkpoint_load(const char *path, kvi_net **net_out, kvi_trainer *t,
                               kvi_train_config *cfg_out) {
  if (!path || !net_out) return kvi_fail(KVI_ERR_ARG, "checkpoint_load: NULL argument");
  *net_out = NULL;
  kvi_st_file *f = NULL;
  kvi_status s = kvi_safetensors_open(&f, path);
  if (s) return s;
  const char *meta = kvi_st_meta(f, "kronvi");
  if (!meta) {
    kvi_safetensors_close(f);
    return kvi_fail(KVI_ERR_FORMAT,
                    "%s: a safetensors file but not a kronvi checkpoint (no 'kronvi' metadata)",
                    path);
  }
  kvi_json *root = NULL;
  s = kvi_json_parse(&root, meta, strlen(meta));
  if (s) {
    kvi_safetensors_close(f);
    return kvi_fail(s, "%s: bad kronvi metadata: %s", path, kvi_last_error());
  }
  const kvi_json *model = kvi_json_get(root, "model"), *tr = kvi_json_get(root, "train"),
                 *st = kvi_json_get(root, "state");
  kvi_net *net = NULL;
  kvi_train_config cfg = kvi_train_config_default();
  kvi_net_config nc = kvi_net_config_default();
  s = kvi__need(model, "model", path);
  if (!s) s = kvi__need(tr, "train", path);
  if (!s) s = kvi__need(st, "state", path);
  const char *arch = kvi_json_str(kvi_json_get(model, "arch"));
  if (!s) s = kvi__need(arch ? model : NULL, "model.arch", path);
  if (!s) s = kvi_family_parse(&nc.family, kvi_json_str(kvi_json_get(model, "family")));
  if (!s) {
    const char *pr = kvi_json_str(kvi_json_get(model, "prior"));
    bool found = false;
    for (int i = 0; i <= KVI_PRIOR_FIXED; i++)
      if (pr && strcmp(pr, kvi_prior_name((kvi_prior)i)) == 0)
        nc.prior = (kvi_prior)i, found = true;
    if (!found) s = kvi_fail(KVI_ERR_FORMAT, "%s: unknown prior '%s'", path, pr ? pr : "(none)");
  }
  if (!s) s = kvi_act_parse(&nc.act, kvi_json_str(kvi_json_get(model, "act")));
  if (!s) {
    nc.prior_var = kvi_json_num(kvi_json_get(model, "prior_var"));
    nc.bias = kvi_json_bool(kvi_json_get(model, "bias"));
    nc.init_log_sigma = kvi_json_num(kvi_json_get(model, "init_log_sigma"));
    const char *task = kvi_json_str(kvi_json_get(model, "task"));
    cfg.task = task && strcmp(task, "regression") == 0 ? KVI_TASK_REGRESS : KVI_TASK_CLASSIFY;
    int64_t v;
    if (kvi_json_int(kvi_json_get(tr, "epochs"), &v)) cfg.epochs = (int)v;
    if (kvi_json_int(kvi_json_get(tr, "batch"), &v)) cfg.batch = (int)v;
    kvi_opt_kind ok = KVI_OPT_ADAM;
    if (kvi_opt_parse(&ok, kvi_json_str(kvi_json_get(tr, "optimizer"))) == KVI_OK)
      cfg.opt = kvi_opt_config_default(ok);
    cfg.opt.lr = kvi_json_num(kvi_json_get(tr, "lr"));
    cfg.opt.beta1 = kvi_json_num(kvi_json_get(tr, "beta1"));
    cfg.opt.beta2 = kvi_json_num(kvi_json_get(tr, "beta2"));
    cfg.opt.eps = kvi_json_num(kvi_json_get(tr, "adam_eps"));
    cfg.opt.momentum = kvi_json_num(kvi_json_get(tr, "momentum"));
    cfg.opt.weight_decay = kvi_json_num(kvi_json_get(tr, "weight_decay"));
    cfg.lr_decay = kvi_json_num(kvi_json_get(tr, "lr_decay"));
    cfg.lr_final = kvi_json_num(kvi_json_get(tr, "lr_final"));
    const char *ks = kvi_json_str(kvi_json_get(tr, "kl_schedule"));
    cfg.kl_schedule = ks && !strcmp(ks, "exp")        ? KVI_KL_EXP
                      : ks && !strcmp(ks, "constant") ? KVI_KL_CONSTANT
                                                      : KVI_KL_LINEAR;
    cfg.kl_warmup = kvi_json_num(kvi_json_get(tr, "kl_warmup"));
    if (kvi_json_int(kvi_json_get(tr, "samples"), &v)) cfg.samples = (int)v;
    if (kvi_json_int(kvi_json_get(tr, "eval_samples_every"), &v)) cfg.eval_samples_every = (int)v;
    const char *seed = kvi_json_str(kvi_json_get(tr, "seed"));
    cfg.seed = seed ? strtoull(seed, NULL, 10) : 1;
    cfg.prune_threshold = kvi_json_num(kvi_json_get(tr, "prune_threshold"));
    if (kvi_json_int(kvi_json_get(tr, "patience"), &v)) cfg.patience = (int)v;
    if (kvi_json_int(kvi_json_get(tr, "save_every"), &v)) cfg.save_every = (int)v;
    cfg.hflip = kvi_json_bool(kvi_json_get(tr, "hflip"));
    cfg.finetune_pruned = 0;
    if (kvi_json_int(kvi_json_get(tr, "finetune_pruned"), &v) && v >= 0 && v <= 1000000)
      cfg.finetune_pruned = (int)v;
    cfg.prior_update_every = 0; /* older checkpoints: gradient only */
    if (kvi_json_int(kvi_json_get(tr, "prior_update_every"), &v)) cfg.prior_update_every = (int)v;
    cfg.noise_precision = kvi_json_num(kvi_json_get(tr, "noise_precision"));
    cfg.learn_noise = kvi_json_bool(kvi_json_get(tr, "learn_noise"));
    if (!(cfg.opt.lr > 0) || cfg.batch <= 0)
      s = kvi_fail(KVI_ERR_FORMAT, "%s: bad training configuration in metadata", path);
  }
  if (!s) {
    const kvi_json *shape = kvi_json_get(model, "in_shape");
    int64_t hw[2] = {0, 0};
    for (int i = 0; i < 2; i++)
      if (!kvi_json_int(kvi_json_at(shape, (size_t)i + 1), &hw[i]) || hw[i] < 0 || hw[i] > 65536)
        hw[i] = 0;
    nc.in_h = (int)hw[0], nc.in_w = (int)hw[1];
    const kvi_json *norm = kvi_json_get(model, "input_norm");
    if (norm) {
      double mu = kvi_json_num(kvi_json_at(norm, 0)), sd = kvi_json_num(kvi_json_at(norm, 1));
      if (!(sd > 0) || !isfinite(sd) || !isfinite(mu))
        s = kvi_fail(KVI_ERR_FORMAT, "%s: bad input_norm [%g, %g] in metadata", path, mu, sd);
      nc.input_mean = mu, nc.input_std = sd;
    }
  }
  if (!s) {
    int maxb = kvi_net_pick_max_batch(arch, cfg.batch);
    s = kvi_net_create(&net, arch, 0, &nc, maxb, cfg.seed);
    if (s) s = kvi_fail(s, "%s: %s", path, kvi_last_error());
  }
  for (int i = 0; !s && i < net->params.nviews; i++) {
    const kvi_view *v = &net->params.views[i];
    s = kvi_st_read_reals(net->params.data + v->offset, v->size, f, v->name);
    if (s) s = kvi_fail(s, "%s: %s", path, kvi_last_error());
  }
  if (!s) s = kvi_check_finite(net->params.data, net->params.n, path);
  if (!s && t) {
    s = kvi_trainer_init(t, net, &cfg);
    int64_t v;
    if (!s && t->opt.m && kvi_st_get(f, "optim.m"))
      s = kvi_st_read_reals(t->opt.m, net->params.n, f, "optim.m");
    if (!s && t->opt.v && kvi_st_get(f, "optim.v"))
      s = kvi_st_read_reals(t->opt.v, net->params.n, f, "optim.v");
    if (!s) {
      if (kvi_json_int(kvi_json_get(st, "epoch"), &v)) t->epoch = (int)v;
      if (kvi_json_int(kvi_json_get(st, "step"), &v)) t->step = v;
      if (kvi_json_int(kvi_json_get(st, "optimizer_t"), &v)) t->opt.t = v;
      if (kvi_json_int(kvi_json_get(st, "best_epoch"), &v)) t->best_epoch = (int)v;
      if (kvi_json_int(kvi_json_get(st, "bad_epochs"), &v)) t->bad_epochs = (int)v;
      t->m_beta = (kvi_real)kvi_json_num(kvi_json_get(st, "m_noise"));
      t->v_beta = (kvi_real)kvi_json_num(kvi_json_get(st, "v_noise"));
      t->best_val = kvi_json_num(kvi_json_get(st, "best_val"));
      t->elapsed = kvi_json_num(kvi_json_get(st, "elapsed"));
    }
  }
  if (!s) {
    double lb = kvi_json_num(kvi_json_get(model, "log_noise_precision"));
    if (isfinite(lb)) net->log_beta = (kvi_real)lb;
    if (cfg_out) *cfg_out = cfg;
  }
  kvi_json_free(root);
  kvi_safetensors_close(f);
  if (s) {
    if (t && t->net) kvi_trainer_free(t);
    kvi_net_free(net);
    return s;
  }
  *net_out = net;
  return KVI_OK;
}
