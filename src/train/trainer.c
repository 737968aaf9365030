/* The ELBO training loop (paper Algorithm 2). Per mini-batch of size B from N examples the loss
 * minimized is the negative ELBO divided by N:
 *   mean_b -log p(y_b | x_b, W) + beta_t KL(q || p) / N,   W drawn by local reparameterization,
 * so the likelihood term carries the paper's N/B scaling relative to the KL. beta_t is the KL
 * warm-up / annealing weight. Noise streams are keyed by (seed, step): results are identical for
 * a given seed and thread count, and a resumed run continues the same streams. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kronvi/train.h"

kvi_train_config kvi_train_config_default(void) {
  kvi_train_config c;
  memset(&c, 0, sizeof c);
  c.task = KVI_TASK_CLASSIFY;
  c.epochs = 10;
  c.batch = 100;
  c.opt = kvi_opt_config_default(KVI_OPT_ADAM);
  c.lr_decay = 1.0;
  c.kl_schedule = KVI_KL_LINEAR;
  c.kl_warmup = 0;
  c.samples = 10;
  c.eval_samples_every = 1;
  c.prior_update_every = 10;
  c.seed = 1;
  c.prune_threshold = 3.0;
  c.noise_precision = 1.0;
  c.progress = 1;
  c.save_every = 1;
  return c;
}

double kvi_kl_beta(const kvi_train_config *cfg, double epoch) {
  if (cfg->kl_warmup <= 0 || cfg->kl_schedule == KVI_KL_CONSTANT) return 1.0;
  if (cfg->kl_schedule == KVI_KL_LINEAR)
    return epoch >= cfg->kl_warmup ? 1.0 : epoch / cfg->kl_warmup;
  return 1.0 - exp(-5.0 * epoch / cfg->kl_warmup); /* exponential annealing towards 1 */
}

static double kvi__lr(const kvi_train_config *cfg, int epoch) {
  double lr = cfg->opt.lr;
  if (cfg->lr_final > 0 && cfg->epochs > 1)
    return lr * pow(cfg->lr_final / lr, (double)epoch / (double)(cfg->epochs - 1));
  return lr * pow(cfg->lr_decay, (double)epoch);
}

kvi_status kvi_trainer_init(kvi_trainer *t, kvi_net *net, const kvi_train_config *cfg) {
  memset(t, 0, sizeof *t);
  if (cfg->batch <= 0 || cfg->batch > net->max_batch)
    return kvi_fail(KVI_ERR_ARG, "batch size %d outside [1, %d]", cfg->batch, net->max_batch);
  if (cfg->epochs < 0) return kvi_fail(KVI_ERR_ARG, "epochs %d must be >= 0", cfg->epochs);
  t->net = net;
  t->cfg = *cfg;
  t->net->log_beta = (kvi_real)log(cfg->noise_precision > 0 ? cfg->noise_precision : 1.0);
  t->best_val = -1e300;
  return kvi_optimizer_init(&t->opt, &cfg->opt, net->params.n);
}

void kvi_trainer_free(kvi_trainer *t) {
  kvi_optimizer_free(&t->opt);
  kvi_free(t->ft_mask);
  t->ft_mask = NULL;
}

/* --finetune-pruned. At the start of each of the last N epochs the weights with log alpha above
 * the threshold get mask 1 and mean 0; after every optimizer step their means are set back to 0.
 * A zero mean adds nothing to the ARD KL (1/2 log(1 + M^2/Var) = 0) and the mean network is then
 * exactly the pruned one, so the remaining weights are fitted by the ELBO of the posterior with
 * those means fixed at zero. Weights already held have M = 0, log alpha = +inf: they stay held.
 * The mask is renewed again after the epoch's last step, so that the evaluation's mean network
 * is exactly the pruned one. */
static kvi_status kvi__ft_mask(kvi_trainer *t, bool renew) {
  kvi_net *net = t->net;
  if (net->cfg.family == KVI_FAMILY_POINT) return KVI_OK; /* no variances, no log alpha */
  if (!t->ft_mask && !(t->ft_mask = kvi_alloc(kvi_net_weight_count(net))))
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for the --finetune-pruned mask");
  if (renew) return kvi_net_zero_pruned(net, t->cfg.prune_threshold, t->ft_mask);
  size_t off = 0;
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    kvi_dense *l = kvi_net_dense(net, k, NULL);
    size_t nm = (size_t)l->n * l->m;
    kvi_real *M = kvi_params_data(&net->params, l->iM);
    for (size_t i = 0; i < nm; i++)
      if (t->ft_mask[off + i]) M[i] = 0;
    off += nm;
  }
  return KVI_OK;
}

/* Progress bar on a terminal; redrawn at most five times a second, so the sparsity it shows
 * (recomputed from log alpha at each redraw) costs nothing noticeable. */
static void kvi__progress(kvi_trainer *t, int epoch, int64_t i, int64_t nb, double loss, double acc,
                          double t0) {
  int width = 30, fill = (int)(width * (double)i / (double)nb);
  char bar[64];
  for (int k = 0; k < width; k++) bar[k] = k < fill ? '#' : '.';
  bar[width] = 0;
  double el = kvi_time_now() - t0, sparsity = 0;
  kvi_sparsity sp;
  if (kvi_sparsity_compute(&sp, t->net, t->cfg.prune_threshold) == KVI_OK && sp.total > 0)
    sparsity = 100.0 * (double)(sp.total - sp.left) / (double)sp.total;
  fprintf(stderr, "\repoch %d/%d [%s] %3d%% loss %.4f acc %.4f sparsity %.1f%% %.1fs ", epoch + 1,
          t->cfg.epochs, bar, (int)(100.0 * (double)i / (double)nb), loss, acc, sparsity, el);
  fflush(stderr);
}

static FILE *kvi__open_log(const kvi_trainer *t) {
  if (!t->cfg.log_path) return NULL;
  bool fresh = t->epoch == 0 || access(t->cfg.log_path, F_OK) != 0;
  FILE *f = fopen(t->cfg.log_path, fresh ? "w" : "a");
  if (f && fresh)
    fprintf(f,
            "epoch,step,seconds,lr,kl_beta,train_loss,train_acc,kl,val_acc,val_nll,test_acc_mean,"
            "test_nll_mean,test_acc_bma,test_nll_bma,test_ece,test_acc_pruned,sparsity,"
            "test_rmse\n");
  return f;
}

kvi_status kvi_train(kvi_trainer *t, const kvi_dataset *train, const kvi_dataset *val,
                     const kvi_dataset *test) {
  kvi_net *net = t->net;
  const kvi_train_config *cfg = &t->cfg;
  const int B = cfg->batch, K = net->out_size;
  const bool cls = cfg->task == KVI_TASK_CLASSIFY;
  if (train->d != net->in_size)
    return kvi_fail(KVI_ERR_SHAPE,
                    "the network expects %d inputs but the training data have %d features "
                    "(HINT: the first size of --arch must be %d)",
                    net->in_size, train->d, train->d);
  if (cls && !train->y) return kvi_fail(KVI_ERR_ARG, "classification needs labelled data");
  if (cls && train->nclasses > K)
    return kvi_fail(KVI_ERR_SHAPE, "the data have %d classes but the network has %d outputs",
                    train->nclasses, K);
  if (!cls && (!train->t || train->k != K))
    return kvi_fail(KVI_ERR_SHAPE, "regression data have %d targets but the network has %d outputs",
                    train->k, K);
  kvi_epoch_order order;
  kvi_status s = kvi_epoch_order_init(&order, train->n);
  if (s) return s;
  kvi_real *xb = kvi_alloc((size_t)B * train->d * sizeof(kvi_real));
  kvi_real *tb = cls ? NULL : kvi_alloc((size_t)B * K * sizeof(kvi_real));
  int32_t *yb = cls ? malloc((size_t)B * sizeof(int32_t)) : NULL;
  kvi_real *dout = kvi_alloc((size_t)B * K * sizeof(kvi_real));
  if (!xb || !dout || (cls && !yb) || (!cls && !tb)) {
    s = kvi_fail(KVI_ERR_NOMEM, "out of memory for batches");
    goto done;
  }
  FILE *log = kvi__open_log(t);
  if (cfg->log_path && !log) {
    s = kvi_fail(KVI_ERR_IO, "cannot open log file '%s' for writing", cfg->log_path);
    goto done;
  }
  const double N = (double)train->n;
  const int64_t nb = (train->n + B - 1) / B;
  bool tty = cfg->progress >= 2 && isatty(fileno(stderr));
  for (; t->epoch < cfg->epochs && !s; t->epoch++) {
    const int e = t->epoch;
    const double t0 = kvi_time_now();
    const double lr = kvi__lr(cfg, e);
    kvi_epoch_order_shuffle(&order, cfg->seed, (uint64_t)e);
    const bool ft = cfg->finetune_pruned > 0 && e >= cfg->epochs - cfg->finetune_pruned;
    if (ft && (s = kvi__ft_mask(t, true)) != KVI_OK) break;
    double loss_sum = 0, kl_last = 0, beta = 0, last_draw = 0;
    int64_t correct = 0, seen = 0;
    for (int64_t i = 0; i < nb && !s; i++) {
      int b = (int)(train->n - i * B < B ? train->n - i * B : B);
      kvi_batch_gather(xb, yb, tb, train, order.order + i * B, b);
      kvi_rng rng = kvi_rng_stream(cfg->seed, (1ull << 40) + (uint64_t)t->step);
      if (cfg->hflip && train->c > 0) {
        kvi_rng flip = kvi_rng_stream(cfg->seed, (2ull << 40) + (uint64_t)t->step);
        kvi_batch_hflip(xb, b, train->c, train->h, train->w, &flip);
      }
      const kvi_real *out;
      s = kvi_net_forward(net, &out, xb, b, &rng);
      if (s) break;
      double nll;
      kvi_real dlb = 0;
      if (cls) {
        int c = 0;
        s = kvi_softmax_xent(&nll, dout, NULL, &c, out, yb, b, K);
        correct += c;
      } else {
        s = kvi_gauss_nll(&nll, dout, &dlb, out, tb, t->net->log_beta, b, K);
      }
      if (s) break;
      if (!isfinite(nll)) {
        s = kvi_fail(KVI_ERR_NONFINITE,
                     "training diverged at epoch %d step %lld (loss %g) (HINT: lower --lr)", e + 1,
                     (long long)t->step, nll);
        break;
      }
      kvi_params_zero_grad(&net->params);
      s = kvi_net_backward(net, dout, b);
      if (s) break;
      beta = kvi_kl_beta(cfg, e + (double)i / (double)nb);
      double kl = 0;
      s = kvi_net_kl(net, &kl, (kvi_real)(beta / N));
      if (s) break;
      kl_last = kl;
      loss_sum += (nll + beta * kl / N) * b;
      seen += b;
      s = kvi_optimizer_step_params(&t->opt, &net->params, lr);
      if (s) break;
      if (ft && (s = kvi__ft_mask(t, false)) != KVI_OK) break;
      /* group ARD: the precisions tau_i, gamma_j jump to the ELBO's maximizer given q (the
       * closed-form coordinate updates of docs/prob.md) instead of crawling by Adam steps */
      if (cfg->prior_update_every > 0 && (t->step + 1) % cfg->prior_update_every == 0 &&
          (s = kvi_net_prior_update(net)) != KVI_OK)
        break;
      if (!cls && cfg->learn_noise) { /* Adam on the noise log-precision */
        t->m_beta = 0.9f * t->m_beta + 0.1f * dlb;
        t->v_beta = 0.999f * t->v_beta + 0.001f * dlb * dlb;
        double st = (double)t->opt.t;
        double mh = t->m_beta / (1 - pow(0.9, st)), vh = t->v_beta / (1 - pow(0.999, st));
        t->net->log_beta -= (kvi_real)(lr * mh / (sqrt(vh) + 1e-8));
      }
      t->step++;
      if (tty && (kvi_time_now() - last_draw > 0.2 || i + 1 == nb)) {
        last_draw = kvi_time_now();
        kvi__progress(t, e, i + 1, nb, loss_sum / (double)seen,
                      cls ? (double)correct / (double)seen : 0, t0);
      }
    }
    if (s) break;
    /* weights that crossed the threshold during the epoch join the mask before evaluation:
     * the mean network is then exactly the pruned network */
    if (ft && (s = kvi__ft_mask(t, true)) != KVI_OK) break;
    double train_time = kvi_time_now() - t0;
    t->elapsed += train_time;
    /* end of epoch: validation, test, sparsity */
    bool last = t->epoch + 1 == cfg->epochs;
    int ks = (last || (cfg->eval_samples_every > 0 && (e + 1) % cfg->eval_samples_every == 0))
                 ? cfg->samples
                 : 0;
    kvi_metrics mv, mt;
    memset(&mv, 0, sizeof mv);
    memset(&mt, 0, sizeof mt);
    if (val && val->n > 0)
      s = kvi_evaluate(&mv, net, val, 0, cfg->seed ^ 0x7a1, cfg->prune_threshold, t->net->log_beta);
    if (!s && test && test->n > 0)
      s = kvi_evaluate(&mt, net, test, cls ? ks : 0, cfg->seed ^ 0x7e57, cfg->prune_threshold,
                       t->net->log_beta);
    kvi_sparsity sp;
    if (!s) s = kvi_sparsity_compute(&sp, net, cfg->prune_threshold);
    if (s) break;
    double sparsity = sp.total ? (double)(sp.total - sp.left) / (double)sp.total : 0;
    double train_loss = loss_sum / (double)seen,
           train_acc = cls ? (double)correct / (double)seen : 0;
    if (tty) fprintf(stderr, "\n");
    if (cfg->progress >= 1) {
      if (cls) {
        char vs[32] = "";
        if (val && val->n > 0) snprintf(vs, sizeof vs, "  val %.4f", mv.acc_mean);
        fprintf(stderr,
                "epoch %3d  loss %.4f  train %.4f%s  test %.4f  pruned %.4f  sparsity %.1f%%  "
                "kl-beta %.2f  lr %.2e  %.1fs%s",
                e + 1, train_loss, train_acc, vs, mt.acc_mean, mt.acc_pruned, 100 * sparsity, beta,
                lr, train_time, ks ? "" : "\n");
      } else
        fprintf(stderr, "epoch %3d  loss %.5f  val rmse %.5f  test rmse %.5f  beta %.3g  %.2fs\n",
                e + 1, train_loss, mv.rmse_mean, mt.rmse_mean, exp((double)t->net->log_beta),
                train_time);
      if (cls && ks)
        fprintf(stderr, "  BMA(%d) %.4f  nll %.4f  ece %.4f\n", ks, mt.acc_bma, mt.nll_bma, mt.ece);
    }
    if (log) {
      fprintf(log,
              "%d,%lld,%.3f,%.6g,%.4f,%.6f,%.5f,%.2f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%"
              ".6g\n",
              e + 1, (long long)t->step, train_time, lr, beta, train_loss, train_acc, kl_last,
              mv.acc_mean, mv.nll_mean, mt.acc_mean, mt.nll_mean, mt.acc_bma, mt.nll_bma, mt.ece,
              mt.acc_pruned, sparsity, mt.rmse_mean);
      fflush(log);
    }
    /* early stopping on validation (accuracy for classification, -RMSE for regression) */
    if (val && val->n > 0) {
      double score = cls ? mv.acc_mean : -mv.rmse_mean;
      if (score > t->best_val) {
        t->best_val = score;
        t->best_epoch = e + 1;
        t->bad_epochs = 0;
      } else {
        t->bad_epochs++;
      }
    }
    bool stopping = cfg->patience > 0 && t->bad_epochs >= cfg->patience;
    int every = cfg->save_every > 0 ? cfg->save_every : 1;
    if (cfg->save_path && (last || stopping || (e + 1) % every == 0)) {
      t->epoch++; /* the checkpoint records completed epochs */
      s = kvi_checkpoint_save(cfg->save_path, t, train);
      t->epoch--;
      if (s) break;
    }
    if (stopping) {
      if (cfg->progress >= 1)
        fprintf(stderr, "early stopping: validation has not improved for %d epochs (best %d)\n",
                cfg->patience, t->best_epoch);
      t->epoch++;
      break;
    }
  }
  if (log) fclose(log);
done:
  kvi_epoch_order_free(&order);
  kvi_free(xb), kvi_free(tb), kvi_free(dout), free(yb);
  return s;
}
