/* The ELBO training loop (paper Algorithm 2). Per mini-batch of size B from N examples the loss
 * minimized is the negative ELBO divided by N:
 *   mean_b -log p(y_b | x_b, W) + beta_t KL(q || p) / N,   W drawn by local reparameterization,
 * so the likelihood term carries the paper's N/B scaling relative to the KL. beta_t is the KL
 * warm-up / annealing weight. Noise streams are keyed by (seed, step): results are identical for
 * a given seed and thread count, and a resumed run continues the same streams. Progress, logs
 * and checkpoints are callbacks (callbacks.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/train.h"
#include "train/solver_internal.h"

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
  c.eval_samples_every = 0; /* the test BMA after the epoch that ends the run only */
  c.bma = KVI_BMA_SHARED;
  c.prior_update_every = 10;
  c.seed = 1;
  c.prune_threshold = 3.0;
  c.noise_precision = 1.0;
  c.progress = 1;
  c.save_every = 1;
  c.slq = (kvi_slq_config){2, 20, 20, 0};
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

/* --mndiag-bound slq: a stochastic Lanczos state for every MN+DIAG weight layer, seeded by the
 * run (stream (seed ^ 0x51c0 + k, step) for layer k); the layers borrow them. */
static kvi_status kvi__slq_attach(kvi_trainer *t) {
  int nw = 0;
  kvi_net_dense(t->net, 0, &nw);
  if (t->net->cfg.family != KVI_FAMILY_MNDIAG)
    return kvi_fail(KVI_ERR_ARG, "--mndiag-bound slq is for --family mn-diag (the net is %s)",
                    kvi_family_name(t->net->cfg.family));
  if (!(t->slq = calloc((size_t)(nw > 0 ? nw : 1), sizeof *t->slq)))
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  t->nslq = nw;
  for (int k = 0; k < nw; k++) {
    kvi_dense *d = kvi_net_dense(t->net, k, NULL);
    kvi_slq_config c = t->cfg.slq;
    c.seed = (t->cfg.seed ^ 0x51c0) + (uint64_t)k;
    kvi_status s = kvi_slq_create(&t->slq[k], d->n, d->m, &c);
    if (s) return s;
    d->slq = t->slq[k];
  }
  return KVI_OK;
}

static void kvi__slq_detach(kvi_trainer *t) {
  for (int k = 0; k < t->nslq; k++) {
    kvi_dense *d = kvi_net_dense(t->net, k, NULL);
    if (d) d->slq = NULL;
    kvi_slq_free(t->slq[k]);
  }
  free(t->slq);
  t->slq = NULL, t->nslq = 0;
}

kvi_status kvi_trainer_init(kvi_trainer *t, kvi_net *net, const kvi_train_config *cfg) {
  memset(t, 0, sizeof *t);
  if (!net || !cfg) return kvi_fail(KVI_ERR_ARG, "trainer_init: NULL argument");
  if (cfg->batch <= 0 || cfg->batch > net->max_batch)
    return kvi_fail(KVI_ERR_ARG, "batch size %d outside [1, %d]", cfg->batch, net->max_batch);
  if (cfg->epochs < 0) return kvi_fail(KVI_ERR_ARG, "epochs %d must be >= 0", cfg->epochs);
  if (cfg->task == KVI_TASK_REGRESS && net->inoise < 0)
    return kvi_fail(KVI_ERR_ARG,
                    "regression needs a net with a noise precision parameter "
                    "(kvi_net_config.noise_param)");
  t->net = net;
  t->cfg = *cfg;
  kvi_net_set_log_beta(net, (kvi_real)log(cfg->noise_precision > 0 ? cfg->noise_precision : 1.0));
  t->best_val = -1e300;
  kvi_status s = kvi_optimizer_init(&t->opt, &cfg->opt, net->params);
  if (s) return s;
  int nw = 0;
  kvi_net_dense(net, 0, &nw);
  kvi_dense **w = calloc((size_t)(nw > 0 ? nw : 1), sizeof *w);
  if (!w) s = kvi_fail(KVI_ERR_NOMEM, "out of memory");
  for (int k = 0; !s && k < nw; k++) w[k] = kvi_net_dense(net, k, NULL);
  if (!s) s = kvi_optimizer_bind(&t->opt, net->params, w, nw);
  free(w);
  if (!s && kvi_opt_is_solver(cfg->opt.kind)) s = kvi__solver_create(t);
  if (!s && cfg->mndiag_slq) s = kvi__slq_attach(t);
  if (!s) {
    const size_t nl = (size_t)(net->nlayers > 0 ? net->nlayers : 1);
    t->layer_kl = calloc(nl, sizeof *t->layer_kl);
    t->ard = calloc(nl, sizeof *t->ard);
    if (!t->layer_kl || !t->ard) s = kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  if (s) {
    kvi__slq_detach(t), kvi__solver_free(t), kvi_optimizer_free(&t->opt);
    free(t->layer_kl), free(t->ard);
    t->layer_kl = NULL, t->ard = NULL;
  }
  return s;
}

void kvi_trainer_free(kvi_trainer *t) {
  if (t->net) kvi__slq_detach(t);
  kvi__solver_free(t);
  kvi_optimizer_free(&t->opt);
  kvi_free(t->ft_mask);
  t->ft_mask = NULL;
  free(t->layer_kl), free(t->ard);
  t->layer_kl = NULL, t->ard = NULL;
  kvi_data_prep_free(&t->prep);
  for (int i = 0; i < t->ncb; i++)
    if (t->cb[i].release) t->cb[i].release(t->cb[i].user);
  t->ncb = 0;
}

kvi_status kvi_trainer_add_callback(kvi_trainer *t, kvi_callback cb) {
  if (t->ncb == KVI_MAX_CALLBACKS) {
    if (cb.release) cb.release(cb.user);
    return kvi_fail(KVI_ERR_ARG, "more than %d training callbacks", KVI_MAX_CALLBACKS);
  }
  t->cb[t->ncb++] = cb;
  return KVI_OK;
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
    kvi_real *M = kvi_params_data(net->params, l->iM);
    for (size_t i = 0; i < nm; i++)
      if (t->ft_mask[off + i]) M[i] = 0;
    off += nm;
  }
  return KVI_OK;
}

/* Buffers of one mini-batch, and what a data-parallel step needs to overlap the gradient's sum
 * with the backward: per layer the elements [lo, hi) of the block its parameters occupy, and
 * the ranges no layer holds (the rest, summed after the backward). */
typedef struct {
  kvi_real *x, *t, *dout, *dsample;
  int32_t *y;
  kvi_comm *comm;
  kvi_params *params;
  size_t *lo, *hi, *rest_lo, *rest_hi;
  int nrest;
  bool overlap;
} kvi__batch;

static void kvi__batch_free(kvi__batch *b) {
  kvi_free(b->x), kvi_free(b->t), kvi_free(b->dout), kvi_free(b->dsample), free(b->y);
  free(b->lo);
}

static kvi_status kvi__batch_alloc(kvi__batch *b, int B, int d, int K, bool cls) {
  memset(b, 0, sizeof *b);
  b->x = kvi_alloc((size_t)B * d * sizeof(kvi_real));
  b->dout = kvi_alloc((size_t)B * K * sizeof(kvi_real));
  b->dsample = kvi_alloc((size_t)B * K * sizeof(kvi_real));
  if (cls)
    b->y = malloc((size_t)B * sizeof(int32_t));
  else
    b->t = kvi_alloc((size_t)B * K * sizeof(kvi_real));
  if (b->x && b->dout && b->dsample && (b->y || b->t)) return KVI_OK;
  kvi__batch_free(b);
  return kvi_fail(KVI_ERR_NOMEM, "out of memory for batches");
}

static kvi_status kvi__check_data(const kvi_net *net, const kvi_dataset *train, bool cls) {
  const int K = net->out_size;
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
  return KVI_OK;
}

/* Output gradients of the batch's loss with targets drawn from the model's own predictive
 * (the pullback sampling trick): softmax, y ~ p: (p - onehot(y)) / B; Gaussian, y ~ N(out,
 * 1/beta): beta (out - y) / B = -sqrt(beta) eps / B. Row i of the whole batch uses block i of
 * the stream (softmax) or its normals K i .. K i + K - 1 (Gaussian). */
void kvi_sampled_output_grad(kvi_real *d, const kvi_real *out, int b, int K, bool cls,
                             kvi_real log_beta, kvi_rng *rng) {
  kvi_sampled_output_grad_rows(d, out, b, K, cls, log_beta, rng, 0, b);
}

void kvi_sampled_output_grad_rows(kvi_real *d, const kvi_real *out, int b, int K, bool cls,
                                  kvi_real log_beta, kvi_rng *rng, int64_t row0, int batch_total) {
  if (cls) {
    kvi_real u;
    kvi_rng q = *rng;
    q.ctr += (uint64_t)row0; /* one block per row */
    rng->ctr += (uint64_t)batch_total;
    rng = &q;
    for (int i = 0; i < b; i++) {
      const kvi_real *z = out + (size_t)i * K;
      kvi_real *di = d + (size_t)i * K, mx = z[0];
      double sum = 0;
      for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
      for (int k = 0; k < K; k++) sum += di[k] = (kvi_real)exp((double)(z[k] - mx));
      kvi_rng_uniform(rng, &u, 1);
      double c = 0, pick = u * sum;
      int y = K - 1;
      for (int k = 0; k < K; k++)
        if ((c += di[k]) >= pick) {
          y = k;
          break;
        }
      for (int k = 0; k < K; k++) di[k] = (kvi_real)((di[k] / sum - (k == y)) / batch_total);
    }
  } else {
    kvi_rng_normal_at(rng, (uint64_t)row0 * (uint64_t)K, d, (size_t)b * K);
    rng->ctr += ((uint64_t)batch_total * (uint64_t)K + 3) / 4;
    const kvi_real sc = (kvi_real)(-exp(0.5 * (double)log_beta) / batch_total);
    for (size_t i = 0; i < (size_t)b * K; i++) d[i] *= sc;
  }
}

/* The curvature pass of a second-order optimizer: the observer gets the layers' rows during a
 * backward with sampled targets (pass 2, before the gradient's), or during the gradient's own
 * backward (pass 1, kvi__backward). */
static kvi_status kvi__curvature_pass(kvi_trainer *t, kvi_real *dsample, const kvi_real *out, int b,
                                      int row0, int batch_total) {
  kvi_net *net = t->net;
  const kvi_optimizer_ops *ops = t->opt.ops;
  if (!ops->curvature_pass || ops->curvature_pass(&t->opt) != 2) return KVI_OK;
  kvi_rng rng = kvi_rng_stream(t->cfg.seed, (3ull << 40) + (uint64_t)t->step);
  kvi_sampled_output_grad_rows(dsample, out, b, net->out_size, t->cfg.task == KVI_TASK_CLASSIFY,
                               kvi_net_log_beta(net), &rng, row0, batch_total);
  kvi_net_set_observer(net, ops->observe, &t->opt);
  t->grad_zero = false;
  kvi_status s = kvi_net_backward(net, dsample, b); /* its parameter gradients are discarded */
  kvi_net_set_observer(net, NULL, NULL);
  return s;
}

/* Data-parallel, overlapped: layer i's gradient is complete, its sum over the processes starts. */
static kvi_status kvi__grad_ready(void *user, int i) {
  kvi__batch *bt = user;
  kvi_status s = KVI_OK;
  if (bt->hi[i] > bt->lo[i])
    s = kvi_comm_sum_start(bt->comm, bt->params->grad + bt->lo[i], bt->hi[i] - bt->lo[i]);
  return s ? s : kvi_comm_progress(bt->comm);
}

/* The gradient's backward (with the observer for an empirical-Fisher optimizer) over this
 * process's b rows (none: a zero gradient). Overlapped, the layers' sums start during it. */
static kvi_status kvi__backward(kvi_trainer *t, kvi__batch *bt, int b) {
  const kvi_optimizer_ops *ops = t->opt.ops;
  const bool observe = ops->curvature_pass && ops->curvature_pass(&t->opt) == 1;
  if (!t->grad_zero) kvi_params_zero_grad(t->net->params); /* else the last step zeroed it */
  t->grad_zero = false;
  if (b == 0) { /* the sums every process starts, in the same order */
    kvi_status s = KVI_OK;
    for (int i = t->net->nlayers - 1; i >= 0 && bt->overlap && !s; i--) s = kvi__grad_ready(bt, i);
    return s;
  }
  if (observe) kvi_net_set_observer(t->net, ops->observe, &t->opt);
  if (bt->overlap) kvi_net_set_grad_hook(t->net, kvi__grad_ready, bt);
  kvi_status s = kvi_net_backward(t->net, bt->dout, b);
  if (observe) kvi_net_set_observer(t->net, NULL, NULL);
  if (bt->overlap) kvi_net_set_grad_hook(t->net, NULL, NULL);
  return s;
}

/* The gradient summed over the processes: the ranges no layer holds (overlapped) or all of it. */
static kvi_status kvi__grad_sum(kvi__batch *bt) {
  kvi_params *p = bt->params;
  if (!bt->overlap) return kvi_comm_sum(bt->comm, p->grad, p->n); /* waits for all */
  kvi_status s = KVI_OK;
  for (int r = 0; r < bt->nrest && !s; r++)
    s = kvi_comm_sum_start(bt->comm, p->grad + bt->rest_lo[r], bt->rest_hi[r] - bt->rest_lo[r]);
  return s ? s : kvi_comm_wait(bt->comm);
}

/* The block's elements per layer, from the views' names ("<layer>.<param>"), and the rest. The
 * overlap is off when two layers' ranges interleave (views declared out of order). */
static kvi_status kvi__layer_ranges(kvi__batch *bt, const kvi_net *net) {
  const kvi_params *p = net->params;
  const int nl = net->nlayers;
  if (!(bt->lo = malloc((size_t)(4 * nl + 2) * sizeof(size_t))))
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  bt->hi = bt->lo + nl, bt->rest_lo = bt->hi + nl, bt->rest_hi = bt->rest_lo + nl + 1;
  for (int i = 0; i < nl; i++) {
    char pre[64];
    const int len = snprintf(pre, sizeof pre, "%s.", net->layers[i].name);
    bt->lo[i] = p->n, bt->hi[i] = 0;
    for (int v = 0; v < p->nviews; v++)
      if (!strncmp(p->views[v].name, pre, (size_t)len)) {
        const size_t a = p->views[v].offset, b = a + p->views[v].size;
        bt->lo[i] = a < bt->lo[i] ? a : bt->lo[i];
        bt->hi[i] = b > bt->hi[i] ? b : bt->hi[i];
      }
    if (bt->hi[i] <= bt->lo[i]) bt->lo[i] = bt->hi[i] = 0;
  }
  size_t at = 0; /* layers in order hold increasing ranges; the gaps are the rest */
  bt->nrest = 0;
  for (int i = 0; i < nl && bt->overlap; i++) {
    if (bt->hi[i] == 0) continue;
    if (bt->lo[i] < at) bt->overlap = false;
    if (bt->lo[i] > at) bt->rest_lo[bt->nrest] = at, bt->rest_hi[bt->nrest++] = bt->lo[i];
    at = bt->hi[i];
  }
  if (at < p->n) bt->rest_lo[bt->nrest] = at, bt->rest_hi[bt->nrest++] = p->n;
  return KVI_OK;
}

/* Running sums of an epoch. */
typedef struct {
  double loss_sum, kl_last, beta;
  int64_t correct, seen;
} kvi__epoch_sums;

/* The objective on the gathered rows [r0, r0 + b) of a batch of B at the current parameters
 * (no gradients), summed over the processes: for the Levenberg-Marquardt rule of second-order
 * optimizers. */
static kvi_status kvi__objective(kvi_trainer *t, kvi__batch *bt, int b, int r0, int B, kvi_rng *rng,
                                 double kl_weight, double *value) {
  kvi_net *net = t->net;
  const int K = net->out_size;
  const kvi_real *out;
  double nll = 0, kl = 0;
  kvi_status s = KVI_OK;
  if (b > 0) {
    s = kvi_net_forward_rows(net, &out, bt->x, b, rng, r0, B);
    if (!s)
      s = t->cfg.task == KVI_TASK_CLASSIFY
              ? kvi_softmax_xent_part(&nll, NULL, NULL, NULL, out, bt->y, b, K, B)
              : kvi_gauss_nll_part(&nll, NULL, NULL, out, bt->t, kvi_net_log_beta(net), b, K, B);
  }
  if (!s) s = kvi_comm_sum_f64(t->comm, &nll, 1);
  if (!s && kl_weight > 0) s = kvi_net_kl(net, &kl, 0);
  *value = nll + kl_weight * kl;
  return s;
}

static kvi_status kvi__diverged(const kvi_trainer *t, double nll) {
  return kvi_fail(KVI_ERR_NONFINITE,
                  "training diverged at epoch %d step %lld (loss %g) (HINT: lower --lr)",
                  t->epoch + 1, (long long)t->step, nll);
}

/* The KL term with its gradient, then the optimizer step. Under Adam the DIAG ARD layers'
 * KL gradients are added inside the update's pass (kvi_optimizer_step_ard: one pass over their
 * weights instead of two, the same numbers); Levenberg-Marquardt, which evaluates the objective
 * after its step, takes the plain path. The KL is the sum of the layers' in layer order. */
static kvi_status kvi__kl_and_step(kvi_trainer *t, kvi_real gscale, double lr, double *kl) {
  kvi_net *net = t->net;
  const kvi_optimizer_ops *ops = t->opt.ops;
  kvi_status s;
  if (!ops->step_ard || ops->wants_reduction) {
    if ((s = kvi_net_kl(net, kl, gscale)) != KVI_OK) return s;
    return kvi_optimizer_step(&t->opt, net->params, lr);
  }
  int nb = 0;
  if ((s = kvi_net_kl_split(net, t->layer_kl, gscale, t->ard, &nb)) != KVI_OK) return s;
  if ((s = kvi_optimizer_step_ard(&t->opt, net->params, lr, t->ard, nb)) != KVI_OK) return s;
  double total = 0;
  for (int i = 0; i < net->nlayers; i++) total += t->layer_kl[i];
  *kl = total;
  return KVI_OK;
}

/* One optimizer step on rows [i*B, i*B + b) of the epoch's order. In a data-parallel run this
 * process takes the rows [r0, r1) of them (kvi_comm_share) with their noise: the loss of its
 * rows divided by b, their gradient, summed over the processes; the KL and its gradient are
 * added once, after the sum, by every process alike (the parameters are the same everywhere). */
static kvi_status kvi__step(kvi_trainer *t, kvi__batch *bt, const kvi_dataset *train,
                            const int64_t *rows, int b, double frac_epoch, double lr,
                            kvi__epoch_sums *es) {
  kvi_net *net = t->net;
  const kvi_train_config *cfg = &t->cfg;
  const bool cls = cfg->task == KVI_TASK_CLASSIFY;
  const int K = net->out_size;
  int r0, r1;
  kvi_comm_share(b, kvi_comm_rank(t->comm), kvi_comm_size(t->comm), &r0, &r1);
  const int bl = r1 - r0;
  kvi_batch_gather(bt->x, bt->y, bt->t, train, rows + r0, bl);
  kvi_rng rng = kvi_rng_stream(cfg->seed, (1ull << 40) + (uint64_t)t->step);
  if (cfg->hflip && train->c > 0) {
    kvi_rng flip = kvi_rng_stream(cfg->seed, (2ull << 40) + (uint64_t)t->step);
    flip.ctr += (uint64_t)r0; /* one block per image */
    kvi_batch_hflip(bt->x, bl, train->c, train->h, train->w, &flip);
  }
  if (t->solver) { /* a solver: one iteration on the batch's objective (solver_step.c) */
    if (kvi_comm_size(t->comm) > 1)
      return kvi_fail(KVI_ERR_UNSUPPORTED,
                      "train: the solver optimizers (lbfgs, newton, lm, hf, proximal) run in one "
                      "process; data-parallel training supports adam, sgd and the K-FAC ones");
    double loss = 0;
    int c = 0;
    kvi_status s = kvi__solver_step(t, bt->x, bt->y, bt->t, b, lr, &loss, &c);
    if (s) return s;
    es->correct += c, es->loss_sum += loss * b, es->seen += b;
    es->beta = kvi_kl_beta(cfg, t->epoch + frac_epoch), es->kl_last = 0;
    t->grad_zero = false;
    return KVI_OK;
  }
  const kvi_real *out = NULL;
  double part[2] = {0, 0}; /* this process's share of the batch loss, its correct rows */
  kvi_real dlb = 0;
  kvi_status s = KVI_OK;
  if (bl > 0) {
    int c = 0;
    s = kvi_net_forward_rows(net, &out, bt->x, bl, &rng, r0, b);
    if (!s)
      s = cls ? kvi_softmax_xent_part(&part[0], bt->dout, NULL, &c, out, bt->y, bl, K, b)
              : kvi_gauss_nll_part(&part[0], bt->dout, &dlb, out, bt->t, kvi_net_log_beta(net), bl,
                                   K, b);
    part[1] = c;
  }
  /* the loss and count travel with the gradient: one wait a step (a process whose loss is not
   * finite still runs its backward; the step fails on every process after the wait) */
  if (!s) s = kvi_comm_sum_start_f64(t->comm, part, 2);
  if (s) return s;
  const bool alone = kvi_comm_size(t->comm) == 1;
  if (alone && !isfinite(part[0])) return kvi__diverged(t, part[0]);
  if (bl > 0 && (s = kvi__curvature_pass(t, bt->dsample, out, bl, r0, b)) != KVI_OK) return s;
  if ((s = kvi__backward(t, bt, bl)) != KVI_OK) return s;
  if (!cls && cfg->learn_noise) kvi_params_grad(net->params, net->inoise)[0] += dlb;
  if ((s = kvi__grad_sum(bt)) != KVI_OK) return s;
  const double nll = part[0];
  if (!alone && !isfinite(nll)) return kvi__diverged(t, nll);
  es->correct += (int64_t)part[1];
  es->beta = kvi_kl_beta(cfg, t->epoch + frac_epoch);
  double kl = 0;
  const double N = (double)train->n;
  const kvi_optimizer_ops *ops = t->opt.ops;
  for (int k = 0; k < t->nslq; k++) kvi_slq_set_step(t->slq[k], (uint64_t)t->step);
  if ((s = kvi__kl_and_step(t, (kvi_real)(es->beta / N), lr, &kl)) != KVI_OK) return s;
  es->kl_last = kl;
  const double objective = nll + es->beta * kl / N;
  es->loss_sum += objective * b;
  es->seen += b;
  t->grad_zero = ops->zeroes_grad;
  if (ops->wants_reduction && ops->wants_reduction(&t->opt)) {
    double after = 0;
    rng = kvi_rng_stream(cfg->seed, (1ull << 40) + (uint64_t)t->step); /* the same noise */
    s = kvi__objective(t, bt, bl, r0, b, &rng, es->beta / N, &after);
    if (!s) ops->reduction(&t->opt, objective, after);
  }
  return s;
}

/* After the optimizer step: the fine-tune mask and the group-ARD coordinate updates. */
static kvi_status kvi__after_step(kvi_trainer *t, bool ft) {
  kvi_status s = ft ? kvi__ft_mask(t, false) : KVI_OK;
  /* group ARD: the precisions tau_i, gamma_j jump to the ELBO's maximizer given q (the
   * closed-form coordinate updates of docs/prob.md) instead of crawling by Adam steps */
  const int every = t->cfg.prior_update_every;
  if (!s && every > 0 && (t->step + 1) % every == 0) s = kvi_net_prior_update(t->net);
  t->step++;
  return s;
}

static kvi_status kvi__notify_step(kvi_trainer *t, const kvi_step_info *si) {
  for (int k = 0; k < t->ncb; k++)
    if (t->cb[k].on_step) {
      kvi_status s = t->cb[k].on_step(t, si, t->cb[k].user);
      if (s) return s;
    }
  return KVI_OK;
}

/* Trains epoch t->epoch. */
static kvi_status kvi__epoch(kvi_trainer *t, kvi__batch *bt, const kvi_dataset *train,
                             kvi_epoch_order *order, double lr, kvi__epoch_sums *es) {
  const kvi_train_config *cfg = &t->cfg;
  const int B = cfg->batch, e = t->epoch;
  const int64_t nb = (train->n + B - 1) / B;
  const double t0 = kvi_time_now();
  kvi_epoch_order_shuffle(order, cfg->seed, (uint64_t)e);
  const bool ft = cfg->finetune_pruned > 0 && e >= cfg->epochs - cfg->finetune_pruned;
  const double c0 = t->comm ? t->comm->seconds : 0;
  kvi_status s = ft ? kvi__ft_mask(t, true) : KVI_OK;
  for (int64_t i = 0; i < nb && !s; i++) {
    int b = (int)(train->n - i * B < B ? train->n - i * B : B);
    kvi_governor_begin(&t->gov);
    s = kvi__step(t, bt, train, order->order + i * B, b, (double)i / (double)nb, lr, es);
    kvi_governor_end(&t->gov);
    if (!s) s = kvi__after_step(t, ft);
    if (!s && t->ncb) {
      kvi_step_info si = {
          e,
          i + 1,
          nb,
          es->loss_sum / (double)es->seen,
          cfg->task == KVI_TASK_CLASSIFY ? (double)es->correct / (double)es->seen : 0,
          es->kl_last,
          es->beta,
          lr,
          t0};
      s = kvi__notify_step(t, &si);
    }
  }
  /* weights that crossed the threshold during the epoch join the mask before evaluation:
   * the mean network is then exactly the pruned network */
  if (!s && ft) s = kvi__ft_mask(t, true);
  if (t->comm) t->comm_seconds += t->comm->seconds - c0;
  return s;
}

/* End of an epoch: validation, early stopping, test, sparsity, then the callbacks. The per-epoch
 * evaluation is the cheap one (mean weights, accuracy after pruning: two mean-weight passes);
 * the test BMA (K more) runs after the epoch that ends the run (the last, early stopping,
 * stop_after) and every eval_samples_every epochs. Validation: the mean weights only. */
static kvi_status kvi__end_epoch(kvi_trainer *t, const kvi_dataset *val, const kvi_dataset *test,
                                 const kvi__epoch_sums *es, double lr, double secs, bool *stop) {
  kvi_net *net = t->net;
  const kvi_train_config *cfg = &t->cfg;
  const bool cls = cfg->task == KVI_TASK_CLASSIFY;
  const int e = t->epoch; /* completed epochs, this one included */
  const bool last = e == cfg->epochs;
  const bool paused = !last && cfg->stop_after > 0 && e >= cfg->stop_after;
  kvi_metrics mv, mt;
  memset(&mv, 0, sizeof mv);
  memset(&mt, 0, sizeof mt);
  kvi_eval_config ec = kvi_eval_config_default();
  ec.prune_threshold = cfg->prune_threshold;
  ec.log_beta = kvi_net_log_beta(net);
  ec.bma = cfg->bma;
  kvi_status s = KVI_OK;
  ec.comm = t->comm; /* each process evaluates a share of the rows */
  if (val && val->n > 0) {
    kvi_eval_config vc = ec;
    vc.pruned = false; /* nothing reads the validation set's pruned accuracy */
    s = kvi_evaluate_ex(&mv, net, val, &vc);
  }
  if (s) return s;
  if (val && val->n > 0) { /* early stopping: accuracy (classification), -RMSE (regression) */
    double score = cls ? mv.acc_mean : -mv.rmse_mean;
    if (score > t->best_val)
      t->best_val = score, t->best_epoch = e, t->bad_epochs = 0;
    else
      t->bad_epochs++;
  }
  *stop = cfg->patience > 0 && t->bad_epochs >= cfg->patience;
  const bool ends = last || *stop || paused;
  const int ks = cls && (ends || (cfg->eval_samples_every > 0 && e % cfg->eval_samples_every == 0))
                     ? cfg->samples
                     : 0;
  ec.samples = ks;
  ec.seed = cfg->seed ^ 0x7e57;
  if (test && test->n > 0) s = kvi_evaluate_ex(&mt, net, test, &ec);
  kvi_sparsity sp;
  if (!s) s = kvi_sparsity_compute(&sp, net, cfg->prune_threshold);
  if (s) return s;
  kvi_epoch_info info = {e,
                         secs,
                         lr,
                         es->beta,
                         es->loss_sum / (double)es->seen,
                         cls ? (double)es->correct / (double)es->seen : 0,
                         es->kl_last,
                         sp.total ? (double)(sp.total - sp.left) / (double)sp.total : 0,
                         val && val->n > 0 ? &mv : NULL,
                         test && test->n > 0 ? &mt : NULL,
                         test && test->n > 0 ? ks : 0,
                         last,
                         *stop,
                         paused};
  for (int k = 0; k < t->ncb && !s; k++)
    if (t->cb[k].on_epoch) s = t->cb[k].on_epoch(t, &info, t->cb[k].user);
  return s;
}

kvi_status kvi_train(kvi_trainer *t, const kvi_dataset *train, const kvi_dataset *val,
                     const kvi_dataset *test) {
  kvi_net *net = t->net;
  const kvi_train_config *cfg = &t->cfg;
  const bool cls = cfg->task == KVI_TASK_CLASSIFY;
  kvi_status s = kvi__check_data(net, train, cls);
  if (s) return s;
  t->opt.cfg.data_size = (double)train->n; /* noisy K-FAC's N */
  kvi_epoch_order order;
  if ((s = kvi_epoch_order_init(&order, train->n)) != KVI_OK) return s;
  kvi__batch bt;
  if ((s = kvi__batch_alloc(&bt, cfg->batch, train->d, net->out_size, cls)) != KVI_OK) {
    kvi_epoch_order_free(&order);
    return s;
  }
  t->opt.comm = bt.comm = t->comm; /* K-FAC sums its statistics over the group */
  bt.params = net->params;
  bt.overlap = cfg->overlap_comm && kvi_comm_size(t->comm) > 1;
  if ((s = kvi__layer_ranges(&bt, net)) != KVI_OK) {
    kvi_epoch_order_free(&order);
    kvi__batch_free(&bt);
    return s;
  }
  t->overlapped = bt.overlap;
  /* the governor keeps its last choice for the evaluations between epochs */
  const int threads = kvi_get_threads();
  kvi_governor_init(&t->gov, threads, !cfg->fixed_threads);
  bool stop = false;
  const int end =
      cfg->stop_after > 0 && cfg->stop_after < cfg->epochs ? cfg->stop_after : cfg->epochs;
  while (t->epoch < end && !s && !stop) {
    const double t0 = kvi_time_now(), lr = kvi__lr(cfg, t->epoch);
    kvi__epoch_sums es = {0, 0, 0, 0, 0};
    s = kvi__epoch(t, &bt, train, &order, lr, &es);
    if (s) break;
    const double secs = kvi_time_now() - t0;
    t->elapsed += secs;
    t->epoch++;
    s = kvi__end_epoch(t, val, test, &es, lr, secs, &stop);
  }
  kvi_epoch_order_free(&order);
  kvi__batch_free(&bt);
  if (kvi_get_active_threads() != threads) kvi_set_active_threads(threads);
  return s;
}
