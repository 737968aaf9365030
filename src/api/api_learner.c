/* The stable API: trainers (kvi_learner) — the configuration of kvi_train from options, the
 * progress callback, and fitting a network (src/train/trainer.c does the work). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* Options that a network trained already keeps from its own configuration. */
static bool kvi__run_option(const char *k) {
  return !strcmp(k, "epochs") || !strcmp(k, "progress") || !strcmp(k, "samples");
}

static kvi_status kvi__kl_schedule(kvi_train_config *c, const char *v) {
  if (!strcmp(v, "linear")) return c->kl_schedule = KVI_KL_LINEAR, KVI_OK;
  if (!strcmp(v, "exp")) return c->kl_schedule = KVI_KL_EXP, KVI_OK;
  if (!strcmp(v, "constant")) return c->kl_schedule = KVI_KL_CONSTANT, KVI_OK;
  return kvi_fail(KVI_ERR_ARG, "option kl_schedule=%s: expected linear, exp or constant", v);
}

static kvi_status kvi__learner_option(kvi_train_config *c, const kvi__opts *o) {
  const char *k = o->key;
  if (!strcmp(k, "epochs")) return kvi__opt_int(o, 0, 1000000, &c->epochs);
  if (!strcmp(k, "batch")) return kvi__opt_int(o, 1, 1 << 20, &c->batch);
  if (!strcmp(k, "samples")) return kvi__opt_int(o, 0, KVI_BMA_MAX_SAMPLES, &c->samples);
  if (!strcmp(k, "progress")) return kvi__opt_int(o, 0, 1, &c->progress);
  if (!strcmp(k, "seed")) return kvi__opt_u64(o, &c->seed);
  if (!strcmp(k, "patience")) return kvi__opt_int(o, 0, 1000000, &c->patience);
  if (!strcmp(k, "finetune_pruned")) return kvi__opt_int(o, 0, 1000000, &c->finetune_pruned);
  if (!strcmp(k, "prior_update_every")) return kvi__opt_int(o, 0, 1000000, &c->prior_update_every);
  if (!strcmp(k, "kl_warmup")) return kvi__opt_double(o, 0, 1e6, &c->kl_warmup);
  if (!strcmp(k, "kl_schedule")) return kvi__kl_schedule(c, o->val);
  if (!strcmp(k, "lr_decay")) return kvi__opt_double(o, 1e-6, 1, &c->lr_decay);
  if (!strcmp(k, "lr_final")) return kvi__opt_double(o, 0, 1e3, &c->lr_final);
  if (!strcmp(k, "prune_threshold")) return kvi__opt_double(o, -100, 100, &c->prune_threshold);
  if (!strcmp(k, "noise_precision")) return kvi__opt_double(o, 1e-12, 1e12, &c->noise_precision);
  if (!strcmp(k, "hflip")) return kvi__opt_bool(o, &c->hflip);
  if (!strcmp(k, "learn_noise")) return kvi__opt_bool(o, &c->learn_noise);
  return kvi__opt_unknown(o, "kvi_learner_create",
                          "epochs, batch, samples, progress, seed, patience, finetune_pruned, "
                          "prior_update_every, kl_warmup, kl_schedule, lr_decay, lr_final, "
                          "prune_threshold, noise_precision, hflip, learn_noise");
}

static bool kvi__trained(const kvi_network *n) { return n->tr.epoch > 0 || n->tr.step > 0; }

kvi_status kvi_learner_create(kvi_learner **out, kvi_network *net, const kvi_optim *opt,
                              const char *options) {
  KVI__NEED(out, "kvi_learner_create");
  *out = NULL;
  KVI__NEED(net, "kvi_learner_create");
  const bool trained = kvi__trained(net);
  kvi_train_config c = net->tr.cfg;
  if (!trained) {
    c = kvi_train_config_default();
    c.seed = net->tr.cfg.seed, c.batch = net->tr.cfg.batch, c.task = net->tr.cfg.task;
    c.progress = 0;
    if (opt) c.opt = opt->cfg;
  } else if (opt && opt->cfg.kind != net->tr.cfg.opt.kind) {
    return kvi_fail(KVI_ERR_STATE,
                    "kvi_learner_create: the network was trained with %s; it continues with it, "
                    "not %s",
                    kvi_opt_name(net->tr.cfg.opt.kind), kvi_opt_name(opt->cfg.kind));
  }
  kvi__opts o = {options, "", ""};
  int r;
  while ((r = kvi__opts_next(&o)) > 0) {
    if (trained && !kvi__run_option(o.key))
      return kvi_fail(KVI_ERR_STATE,
                      "kvi_learner_create: the network was trained already and keeps its "
                      "configuration; option '%s' cannot change (epochs, progress and samples can)",
                      o.key);
    if (kvi__learner_option(&c, &o)) return KVI_ERR_ARG;
  }
  if (r < 0) return KVI_ERR_ARG;
  if (c.batch > net->net->max_batch)
    return kvi_fail(KVI_ERR_ARG,
                    "kvi_learner_create: batch %d above the network's %d (the batch option of "
                    "kvi_network_create)",
                    c.batch, net->net->max_batch);
  kvi_learner *l = calloc(1, sizeof *l);
  if (!l) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  l->net = net, l->cfg = c;
  *out = l;
  return KVI_OK;
}

kvi_status kvi_learner_set_callback(kvi_learner *l, kvi_progress_fn fn, void *user,
                                    int every_step) {
  KVI__NEED(l, "kvi_learner_set_callback");
  l->fn = fn, l->user = user, l->every_step = every_step != 0;
  return KVI_OK;
}

int kvi_learner_stopped(const kvi_learner *l) { return l ? l->stopped : -1; }

void kvi_learner_free(kvi_learner *l) { free(l); }

/* ---- the callback ------------------------------------------------------------------------- */
static kvi_status kvi__report(kvi_learner *l, const kvi_progress *p) {
  if (!l->fn(p, l->user)) return KVI_OK;
  l->stopped = true;
  return kvi_fail(KVI_ERR_STATE, "training stopped by the progress callback");
}

static kvi_status kvi__on_step(kvi_trainer *t, const kvi_step_info *s, void *user) {
  const double nan = NAN;
  kvi_progress p = {s->epoch + 1,
                    t->cfg.epochs,
                    0,
                    s->batch,
                    s->nb,
                    t->step,
                    s->loss,
                    s->acc,
                    s->kl,
                    s->lr,
                    kvi_time_now() - s->epoch_start,
                    nan,
                    nan,
                    nan};
  return kvi__report(user, &p);
}

static kvi_status kvi__on_epoch(kvi_trainer *t, const kvi_epoch_info *e, void *user) {
  const double nan = NAN;
  const int64_t nb = ((const kvi_learner *)user)->batches;
  kvi_progress p = {e->epoch,
                    t->cfg.epochs,
                    1,
                    nb,
                    nb,
                    t->step,
                    e->train_loss,
                    e->train_acc,
                    e->kl,
                    e->lr,
                    e->seconds,
                    e->sparsity,
                    e->val ? e->val->acc_mean : nan,
                    e->test ? e->test->acc_mean : nan};
  return kvi__report(user, &p);
}

/* ---- fit ---------------------------------------------------------------------------------- */
/* A new optimizer for the network: a fresh network gets the learner's configuration; a trained
 * one without optimizer state (compressed) its own, with moments from zero and its counters. */
static kvi_status kvi__new_trainer(kvi_network *n, const kvi_train_config *config) {
  const kvi_train_config c = *config, *cfg = &c; /* config may be n->tr.cfg, cleared below */
  kvi_trainer old = n->tr;
  memset(&n->tr.prep, 0, sizeof n->tr.prep); /* moved to the new trainer */
  const kvi_real log_beta = kvi_net_log_beta(n->net);
  kvi_trainer_free(&n->tr);
  kvi_status s = kvi_trainer_init(&n->tr, n->net, cfg);
  if (s) { /* keep a valid trainer: the old configuration with no optimizer */
    kvi_status s2 = kvi_trainer_init(&n->tr, n->net, &old.cfg);
    if (!s2) kvi_optimizer_free(&n->tr.opt);
    n->has_opt = false;
    n->tr.prep = old.prep;
    return s;
  }
  n->tr.prep = old.prep;
  if (kvi__trained(&(kvi_network){.tr = old})) {
    kvi_net_set_log_beta(n->net, log_beta);
    n->tr.epoch = old.epoch, n->tr.step = old.step, n->tr.elapsed = old.elapsed;
    n->tr.best_val = old.best_val, n->tr.best_epoch = old.best_epoch;
  }
  n->has_opt = true;
  return KVI_OK;
}

/* The learner's configuration on the network's trainer. */
static kvi_status kvi__apply(kvi_learner *l) {
  kvi_network *n = l->net;
  if (!kvi__trained(n)) return kvi__new_trainer(n, &l->cfg);
  n->tr.cfg.epochs = l->cfg.epochs, n->tr.cfg.progress = l->cfg.progress;
  n->tr.cfg.samples = l->cfg.samples;
  return n->has_opt ? KVI_OK : kvi__new_trainer(n, &n->tr.cfg);
}

kvi_status kvi_learner_fit(kvi_learner *l, const kvi_dset *train, const kvi_dset *val,
                           const kvi_dset *test) {
  KVI__NEED(l, "kvi_learner_fit");
  KVI__NEED(train, "kvi_learner_fit");
  kvi_network *n = l->net;
  l->stopped = false;
  kvi_status s = kvi__apply(l);
  const int64_t B = n->tr.cfg.batch;
  l->batches = (train->ds.n + B - 1) / B;
  if (s) return s;
  const int ncb = n->tr.ncb;
  kvi_callback cb = {l->fn && l->every_step ? kvi__on_step : NULL, l->fn ? kvi__on_epoch : NULL,
                     NULL, l};
  if (l->fn) s = kvi_trainer_add_callback(&n->tr, cb);
  if (!s && l->cfg.progress) s = kvi_trainer_add_callback(&n->tr, kvi_progress_callback());
  if (!s) s = kvi_train(&n->tr, &train->ds, val ? &val->ds : NULL, test ? &test->ds : NULL);
  for (int i = ncb; i < n->tr.ncb; i++)
    if (n->tr.cb[i].release) n->tr.cb[i].release(n->tr.cb[i].user);
  n->tr.ncb = ncb;
  if (train->ds.c > 0) n->c = train->ds.c, n->h = train->ds.h, n->w = train->ds.w;
  if (s == KVI_ERR_STATE && l->stopped) {
    kvi_clear_error();
    return KVI_OK;
  }
  return s;
}
