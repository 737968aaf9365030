/* Checkpoints in the safetensors format (docs/io.md): one tensor per parameter view (named as
 * the view), one per optimizer state tensor (named by the optimizer, e.g. "optim.m.fc0.M"), the
 * data preparation's statistics and the fine-tune mask, and a JSON document under the metadata
 * key "kronvi" with the architecture, the training configuration, the data preparation and the
 * counters needed to resume exactly. Models of several nets (kvi_model_save) list their nets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/ckpt_internal.h"

static const char *kvi__task_name(kvi_task t) {
  return t == KVI_TASK_REGRESS ? "regression" : "classification";
}
static const char *kvi__sched_name(kvi_kl_schedule s) {
  return s == KVI_KL_EXP ? "exp" : s == KVI_KL_LINEAR ? "linear" : "constant";
}

void kvi__ckpt_net_json(kvi_json_buf *jb, const kvi_net *net) {
  kvi_jb_kv_str(jb, "arch", net->arch);
  kvi_jb_kv_str(jb, "family", kvi_family_name(net->cfg.family));
  kvi_jb_kv_str(jb, "prior", kvi_prior_name(net->cfg.prior));
  kvi_jb_kv_num(jb, "prior_var", net->cfg.prior_var);
  kvi_jb_kv_str(jb, "act", kvi_act_name(net->cfg.act));
  kvi_jb_kv_bool(jb, "bias", net->cfg.bias);
  kvi_jb_kv_num(jb, "init_log_sigma", net->cfg.init_log_sigma);
  kvi_jb_kv_int(jb, "in_size", net->in_size);
  kvi_jb_kv_int(jb, "out_size", net->out_size);
  kvi_jb_kv_int(jb, "max_batch", net->max_batch);
  kvi_jb_kv_bool(jb, "noise_param", net->inoise >= 0);
  if (net->cfg.input_std > 0) {
    kvi_jb_key(jb, "input_norm"); /* [mean, std] of kronvi train --normalize */
    kvi_jb_begin_array(jb);
    kvi_jb_num(jb, net->cfg.input_mean);
    kvi_jb_num(jb, net->cfg.input_std);
    kvi_jb_end_array(jb);
  }
}

/* The first-order optimizer settings of a checkpoint's training config (shared with the VAE's). */
void kvi__ckpt_opt_json(kvi_json_buf *jb, const kvi_opt_config *o) {
  kvi_jb_kv_str(jb, "optimizer", kvi_opt_name(o->kind));
  kvi_jb_kv_num(jb, "lr", o->lr);
  kvi_jb_kv_num(jb, "beta1", o->beta1);
  kvi_jb_kv_num(jb, "beta2", o->beta2);
  kvi_jb_kv_num(jb, "adam_eps", o->eps);
  kvi_jb_kv_num(jb, "momentum", o->momentum);
  kvi_jb_kv_bool(jb, "nesterov", o->nesterov);
  kvi_jb_kv_num(jb, "weight_decay", o->weight_decay);
}

static void kvi__train_json(kvi_json_buf *jb, const kvi_train_config *c) {
  kvi_jb_kv_int(jb, "epochs", c->epochs);
  kvi_jb_kv_int(jb, "batch", c->batch);
  kvi__ckpt_opt_json(jb, &c->opt);
  kvi_jb_kv_num(jb, "kfac_damping", c->opt.damping);
  kvi_jb_kv_num(jb, "kfac_ema", c->opt.ema);
  kvi_jb_kv_int(jb, "kfac_inverse_every", c->opt.inverse_every);
  kvi_jb_kv_num(jb, "kfac_kl_clip", c->opt.kl_clip);
  kvi_jb_kv_str(jb, "kfac_fisher", c->opt.fisher == KVI_FISHER_EMPIRICAL ? "empirical" : "sampled");
  kvi_jb_kv_str(jb, "kfac_damping_kind",
                c->opt.damping_kind == KVI_DAMP_EXACT ? "exact" : "factored");
  kvi_jb_kv_bool(jb, "ekfac", c->opt.ekfac);
  kvi_jb_kv_int(jb, "kfac_adapt_every", c->opt.adapt_every);
  kvi_jb_kv_int(jb, "cg_max", c->opt.cg_max); /* the solvers (docs/curv.md) */
  kvi_jb_kv_int(jb, "dense_max", c->opt.dense_max);
  kvi_jb_kv_int(jb, "lbfgs_memory", c->opt.lbfgs_memory);
  kvi_jb_kv_int(jb, "prox_steps", c->opt.prox_steps);
  kvi_jb_kv_num(jb, "prox_fsd", c->opt.prox_fsd);
  kvi_jb_kv_num(jb, "prox_wsd", c->opt.prox_wsd);
  kvi_jb_kv_bool(jb, "hf_hessian", c->opt.hf_hessian);
  kvi_jb_kv_bool(jb, "mndiag_slq", c->mndiag_slq);
  kvi_jb_kv_int(jb, "slq_probes", c->slq.probes);
  kvi_jb_kv_int(jb, "slq_steps", c->slq.steps);
  kvi_jb_kv_int(jb, "slq_refresh", c->slq.refresh);
  kvi_jb_kv_num(jb, "lr_decay", c->lr_decay);
  kvi_jb_kv_num(jb, "lr_final", c->lr_final);
  kvi_jb_kv_str(jb, "kl_schedule", kvi__sched_name(c->kl_schedule));
  kvi_jb_kv_num(jb, "kl_warmup", c->kl_warmup);
  kvi_jb_kv_int(jb, "samples", c->samples);
  kvi_jb_kv_int(jb, "eval_samples_every", c->eval_samples_every);
  char seed[24]; /* a decimal string: JSON numbers lose 64-bit precision */
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
  kvi_jb_kv_str(jb, "seed", seed);
  kvi_jb_kv_num(jb, "prune_threshold", c->prune_threshold);
  kvi_jb_kv_int(jb, "patience", c->patience);
  kvi_jb_kv_int(jb, "save_every", c->save_every);
  kvi_jb_kv_bool(jb, "hflip", c->hflip);
  kvi_jb_kv_int(jb, "finetune_pruned", c->finetune_pruned);
  kvi_jb_kv_int(jb, "prior_update_every", c->prior_update_every);
  kvi_jb_kv_num(jb, "noise_precision", c->noise_precision);
  kvi_jb_kv_bool(jb, "learn_noise", c->learn_noise);
}

static void kvi__data_json(kvi_json_buf *jb, const kvi_data_prep *d) {
  kvi_jb_kv_int(jb, "limit_train", d->limit_train);
  kvi_jb_kv_int(jb, "limit_test", d->limit_test);
  kvi_jb_kv_int(jb, "val", d->val);
  char seed[24];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)d->val_seed);
  kvi_jb_kv_str(jb, "val_seed", seed);
  kvi_jb_kv_int(jb, "pad", d->pad);
  kvi_jb_kv_int(jb, "standardize", d->d);
}

static void kvi__state_json(kvi_json_buf *jb, const kvi_trainer *t) {
  kvi_jb_kv_int(jb, "epoch", t->epoch);
  kvi_jb_kv_int(jb, "step", t->step);
  kvi_jb_kv_int(jb, "optimizer_t", t->opt.t);
  kvi_jb_kv_bool(jb, "optimizer_state", t->opt.nstate > 0);
  kvi_jb_kv_num(jb, "best_val", t->best_val);
  kvi_jb_kv_int(jb, "best_epoch", t->best_epoch);
  kvi_jb_kv_int(jb, "bad_epochs", t->bad_epochs);
  kvi_jb_kv_num(jb, "elapsed", t->elapsed);
}

static char *kvi__meta_json(const kvi_trainer *t, const kvi_dataset *shape_of) {
  const kvi_net *net = t->net;
  kvi_json_buf jb;
  kvi_jb_init(&jb, false);
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_int(&jb, "version", KVI_CKPT_VERSION);
  kvi_jb_kv_str(&jb, "precision", KVI_REAL_NAME);
  kvi_jb_key(&jb, "model");
  kvi_jb_begin_object(&jb);
  kvi__ckpt_net_json(&jb, net);
  kvi_jb_key(&jb, "in_shape");
  kvi_jb_begin_array(&jb);
  kvi_jb_int(&jb, shape_of ? shape_of->c : 0);
  kvi_jb_int(&jb, shape_of ? shape_of->h : 0);
  kvi_jb_int(&jb, shape_of ? shape_of->w : 0);
  kvi_jb_end_array(&jb);
  kvi_jb_kv_str(&jb, "task", kvi__task_name(t->cfg.task));
  kvi_jb_end_object(&jb);
  kvi_jb_key(&jb, "data");
  kvi_jb_begin_object(&jb);
  kvi__data_json(&jb, &t->prep);
  kvi_jb_end_object(&jb);
  kvi_jb_key(&jb, "train");
  kvi_jb_begin_object(&jb);
  kvi__train_json(&jb, &t->cfg);
  kvi_jb_end_object(&jb);
  kvi_jb_key(&jb, "state");
  kvi_jb_begin_object(&jb);
  kvi__state_json(&jb, t);
  kvi_jb_end_object(&jb);
  kvi_jb_end_object(&jb);
  char *s = NULL;
  size_t len = 0;
  if (kvi_jb_take(&jb, &s, &len) != KVI_OK) return NULL;
  return s;
}

/* The tensors of a parameter block, one per view. */
static int kvi__view_tensors(kvi_st_tensor *ts, const kvi_params *p) {
  const char *dt = sizeof(kvi_real) == 8 ? "F64" : "F32";
  for (int i = 0; i < p->nviews; i++) {
    ts[i] = (kvi_st_tensor){.name = p->views[i].name, .dtype = dt, .ndim = p->views[i].ndim};
    for (int d = 0; d < p->views[i].ndim; d++) ts[i].shape[d] = p->views[i].shape[d];
    ts[i].data = p->data + p->views[i].offset;
  }
  return p->nviews;
}

/* The trainer's own tensors: optimizer state, standardization, the fine-tune mask. */
static int kvi__trainer_tensors(kvi_st_tensor *ts, const kvi_trainer *t) {
  const char *dt = sizeof(kvi_real) == 8 ? "F64" : "F32";
  int k = 0;
  for (int i = 0; i < t->opt.nstate; i++, k++) {
    const kvi_opt_state *st = &t->opt.state[i];
    ts[k] = (kvi_st_tensor){.name = st->name, .dtype = dt, .ndim = st->ndim, .data = st->data};
    for (int d = 0; d < st->ndim; d++) ts[k].shape[d] = st->shape[d];
  }
  if (t->prep.d > 0) {
    ts[k] = (kvi_st_tensor){
        .name = "data.feature_mean", .dtype = dt, .ndim = 1, .data = t->prep.feature_mean};
    ts[k++].shape[0] = t->prep.d;
    ts[k] = (kvi_st_tensor){
        .name = "data.feature_std", .dtype = dt, .ndim = 1, .data = t->prep.feature_std};
    ts[k++].shape[0] = t->prep.d;
  }
  if (t->ft_mask) {
    ts[k] = (kvi_st_tensor){.name = "train.ft_mask", .dtype = "U8", .ndim = 1, .data = t->ft_mask};
    ts[k++].shape[0] = (int64_t)kvi_net_weight_count(t->net);
  }
  return k;
}

kvi_status kvi_checkpoint_save(const char *path, const kvi_trainer *t,
                               const kvi_dataset *shape_of) {
  if (!path || !t || !t->net) return kvi_fail(KVI_ERR_ARG, "checkpoint_save: NULL argument");
  const kvi_params *p = t->net->params;
  kvi_st_tensor *ts = calloc((size_t)(p->nviews + t->opt.nstate + 3), sizeof *ts);
  char *meta = kvi__meta_json(t, shape_of);
  if (!ts || !meta) {
    free(ts), free(meta);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory writing checkpoint");
  }
  int k = kvi__view_tensors(ts, p);
  k += kvi__trainer_tensors(ts + k, t);
  const char *keys[2] = {"format", "kronvi"};
  const char *vals[2] = {"kronvi", meta};
  kvi_status s = kvi_safetensors_write(path, ts, k, keys, vals, 2);
  free(ts);
  free(meta);
  return s;
}

kvi_status kvi_model_save(const char *path, const kvi_model *m) {
  if (!path || !m || !m->ready)
    return kvi_fail(KVI_ERR_ARG, "model_save: NULL or unfinished model");
  kvi_json_buf jb;
  kvi_jb_init(&jb, false);
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_int(&jb, "version", KVI_CKPT_VERSION);
  kvi_jb_kv_str(&jb, "precision", KVI_REAL_NAME);
  kvi_jb_key(&jb, "nets");
  kvi_jb_begin_array(&jb);
  for (int k = 0; k < m->nnets; k++) {
    const kvi_net *net = m->nets[k];
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s", net->name);
    size_t len = strlen(prefix);
    if (len && prefix[len - 1] == '.') prefix[len - 1] = 0; /* without its dot */
    kvi_jb_begin_object(&jb);
    kvi_jb_kv_str(&jb, "name", net->id);
    kvi_jb_kv_str(&jb, "params_of", prefix);
    kvi__ckpt_net_json(&jb, net);
    kvi_jb_key(&jb, "in_hw");
    kvi_jb_begin_array(&jb);
    kvi_jb_int(&jb, net->cfg.in_h);
    kvi_jb_int(&jb, net->cfg.in_w);
    kvi_jb_end_array(&jb);
    kvi_jb_end_object(&jb);
  }
  kvi_jb_end_array(&jb);
  kvi_jb_end_object(&jb);
  char *meta = NULL;
  size_t len = 0;
  kvi_status s = kvi_jb_take(&jb, &meta, &len);
  kvi_st_tensor *ts = s ? NULL : calloc((size_t)m->params.nviews + 1, sizeof *ts);
  if (!ts) {
    free(meta);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory writing model");
  }
  int k = kvi__view_tensors(ts, &m->params);
  const char *keys[2] = {"format", "kronvi"};
  const char *vals[2] = {"kronvi-model", meta};
  s = kvi_safetensors_write(path, ts, k, keys, vals, 2);
  free(ts);
  free(meta);
  return s;
}
