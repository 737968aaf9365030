/* Training a variational auto-encoder (paper Algorithm 3; docs/vae.md). Step t of the run draws
 * a mini-batch of the epoch's order (stream (seed, epoch)), the latent noise from the stream
 * (seed, 2^40 + t), minimizes -(1/B) sum [log p(x|z) - beta KL] by one Adam step. After every
 * epoch the one-sample ELBO of the validation images (noise from the stream (seed ^ VAL, image),
 * the same every epoch) decides early stopping and which parameters are the best. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/train.h"

#define KVI__VAE_VAL_SEED 0x7a1e1b0ull /* xor-ed into the seed for the validation noise */

kvi_vae_train_config kvi_vae_train_config_default(void) {
  kvi_vae_train_config c;
  memset(&c, 0, sizeof c);
  c.epochs = 300;
  c.batch = 100;
  c.opt = kvi_opt_config_default(KVI_OPT_ADAM);
  c.opt.lr = 5e-4;
  c.kl_anneal = 100;
  c.patience = 0;
  c.seed = 1;
  return c;
}

double kvi_vae_kl_beta(double anneal, double epoch) {
  if (!(anneal > 0) || epoch >= anneal) return 1.0;
  return 1.0 - exp(-5.0 * epoch / anneal);
}

kvi_status kvi_vae_trainer_init(kvi_vae_trainer *t, kvi_vae *v, const kvi_vae_train_config *cfg) {
  if (!t) return kvi_fail(KVI_ERR_ARG, "vae_trainer_init: NULL argument");
  memset(t, 0, sizeof *t);
  if (!v || !cfg) return kvi_fail(KVI_ERR_ARG, "vae_trainer_init: NULL argument");
  if (cfg->batch < 1 || cfg->batch > v->max_batch)
    return kvi_fail(KVI_ERR_ARG, "batch size %d outside [1, %d]", cfg->batch, v->max_batch);
  if (cfg->epochs < 0 || cfg->patience < 0 || !(cfg->kl_anneal >= 0))
    return kvi_fail(KVI_ERR_ARG, "negative epochs, patience or annealing length");
  if (cfg->opt.kind != KVI_OPT_ADAM && cfg->opt.kind != KVI_OPT_SGD)
    return kvi_fail(KVI_ERR_UNSUPPORTED, "the VAE trains with adam or sgd, not %s",
                    kvi_opt_name(cfg->opt.kind));
  t->vae = v;
  t->cfg = *cfg;
  t->best_val = -1e300;
  return kvi_optimizer_init(&t->opt, &cfg->opt, &v->model->params);
}

void kvi_vae_trainer_free(kvi_vae_trainer *t) {
  if (!t) return;
  kvi_optimizer_free(&t->opt);
  kvi_free(t->best);
  t->best = NULL;
}

static kvi_status kvi__vae_check_data(const kvi_vae *v, const kvi_dataset *ds, const char *what) {
  if (!ds || ds->n <= 0) return kvi_fail(KVI_ERR_ARG, "the %s set is empty", what);
  if (ds->d != v->cfg.in_size)
    return kvi_fail(KVI_ERR_SHAPE, "the %s images have %d pixels but the VAE takes %d", what, ds->d,
                    v->cfg.in_size);
  return kvi_vae_check_binary(ds->x, ds->n, ds->d, what);
}

/* Mean one-sample ELBO per image of ds with the fixed validation noise. */
static kvi_status kvi__vae_val_elbo(kvi_vae_trainer *t, const kvi_dataset *ds, double *out) {
  double *e = malloc((size_t)ds->n * sizeof *e);
  if (!e) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  kvi_status s = kvi_vae_iwae(t->vae, NULL, e, ds->x, ds->n, 1, t->cfg.seed ^ KVI__VAE_VAL_SEED, 0);
  double acc = 0;
  for (int64_t i = 0; i < ds->n; i++) acc += e[i];
  free(e);
  *out = acc / (double)ds->n;
  return s;
}

typedef struct {
  double rec, kl, beta;
  int64_t seen;
} kvi__vae_sums;

/* One epoch of steps. */
static kvi_status kvi__vae_epoch(kvi_vae_trainer *t, const kvi_dataset *train, kvi_real *X,
                                 kvi_epoch_order *order, kvi__vae_sums *es) {
  const kvi_vae_train_config *c = &t->cfg;
  kvi_params *p = &t->vae->model->params;
  const int B = c->batch;
  const int64_t nb = (train->n + B - 1) / B;
  kvi_epoch_order_shuffle(order, c->seed, (uint64_t)t->epoch);
  kvi_status s = KVI_OK;
  for (int64_t i = 0; i < nb && !s; i++) {
    const int b = (int)(train->n - i * B < B ? train->n - i * B : B);
    kvi_governor_begin(&t->gov);
    kvi_batch_gather(X, NULL, NULL, train, order->order + i * B, b);
    kvi_rng rng = kvi_rng_stream(c->seed, (1ull << 40) + (uint64_t)t->step);
    es->beta = kvi_vae_kl_beta(c->kl_anneal, t->epoch + (double)i / (double)nb);
    if (!t->grad_zero) kvi_params_zero_grad(p);
    t->grad_zero = false;
    kvi_vae_sums bs;
    s = kvi_vae_batch(t->vae, &bs, X, b, &rng, es->beta, true);
    if (s)
      s = kvi_fail(s, "training diverged at epoch %d step %lld: %s (HINT: lower --lr)",
                   t->epoch + 1, (long long)t->step, kvi_last_error());
    if (!s) s = kvi_optimizer_step(&t->opt, p, c->opt.lr);
    t->grad_zero = !s && t->opt.ops->zeroes_grad;
    kvi_governor_end(&t->gov);
    if (s) break;
    t->step++;
    es->rec += bs.rec, es->kl += bs.kl, es->seen += b;
    if (t->on_step) s = t->on_step(t, i + 1, nb, (es->rec - es->kl) / (double)es->seen, t->user);
  }
  return s;
}

/* Validation, early stopping, the best parameters, then on_epoch. */
static kvi_status kvi__vae_end_epoch(kvi_vae_trainer *t, const kvi_dataset *val,
                                     const kvi__vae_sums *es, double secs, bool *stop) {
  const kvi_params *p = &t->vae->model->params;
  const int e = t->epoch;
  kvi_vae_epoch_info info = {e, secs, es->beta, 0, 0, 0, NAN, false, false, false, false};
  const double n = es->seen > 0 ? (double)es->seen : 1;
  info.train_rec = es->rec / n, info.train_kl = es->kl / n;
  info.train_elbo = info.train_rec - info.train_kl;
  kvi_status s = KVI_OK;
  if (val && val->n > 0) {
    if ((s = kvi__vae_val_elbo(t, val, &info.val_elbo)) != KVI_OK) return s;
    if (!isfinite(info.val_elbo))
      return kvi_fail(KVI_ERR_NONFINITE, "validation ELBO is %g after epoch %d", info.val_elbo, e);
    if (info.val_elbo > t->best_val) {
      if (!t->best && !(t->best = kvi_alloc(p->n * sizeof(kvi_real))))
        return kvi_fail(KVI_ERR_NOMEM, "out of memory for the best parameters");
      memcpy(t->best, p->data, p->n * sizeof(kvi_real));
      t->best_val = info.val_elbo, t->best_epoch = e, t->bad_epochs = 0;
      info.improved = true;
    } else {
      t->bad_epochs++;
    }
  }
  *stop = t->cfg.patience > 0 && t->bad_epochs >= t->cfg.patience;
  info.last = e == t->cfg.epochs;
  info.stopping = *stop;
  info.paused = !info.last && t->cfg.stop_after > 0 && e >= t->cfg.stop_after;
  return t->on_epoch ? t->on_epoch(t, &info, t->user) : KVI_OK;
}

kvi_status kvi_vae_train(kvi_vae_trainer *t, const kvi_dataset *train, const kvi_dataset *val) {
  if (!t || !t->vae || !train) return kvi_fail(KVI_ERR_ARG, "vae_train: NULL argument");
  kvi_status s = kvi__vae_check_data(t->vae, train, "training");
  if (!s && val && val->n > 0) s = kvi__vae_check_data(t->vae, val, "validation");
  if (s) return s;
  const kvi_vae_train_config *c = &t->cfg;
  kvi_epoch_order order;
  if ((s = kvi_epoch_order_init(&order, train->n)) != KVI_OK) return s;
  kvi_real *X = kvi_alloc((size_t)c->batch * train->d * sizeof *X);
  if (!X) {
    kvi_epoch_order_free(&order);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for batches");
  }
  const int threads = kvi_get_threads();
  kvi_governor_init(&t->gov, threads, !c->fixed_threads);
  const int end = c->stop_after > 0 && c->stop_after < c->epochs ? c->stop_after : c->epochs;
  bool stop = false;
  while (t->epoch < end && !s && !stop) {
    const double t0 = kvi_time_now();
    kvi__vae_sums es = {0, 0, kvi_vae_kl_beta(c->kl_anneal, t->epoch), 0};
    s = kvi__vae_epoch(t, train, X, &order, &es);
    if (s) break;
    const double secs = kvi_time_now() - t0;
    t->elapsed += secs;
    t->epoch++;
    s = kvi__vae_end_epoch(t, val, &es, secs, &stop);
  }
  kvi_epoch_order_free(&order);
  kvi_free(X);
  if (kvi_get_active_threads() != threads) kvi_set_active_threads(threads);
  return s;
}
