/* kronvi train: the ELBO training loop (paper Algorithm 2), evaluation (mean-weight and
 * Bayesian-model-averaged accuracy, NLL, ECE), sparsification and checkpoints. */
#ifndef KRONVI_TRAIN_H
#define KRONVI_TRAIN_H

#include <stdio.h>

#include "kronvi/data.h"
#include "kronvi/dist.h"
#include "kronvi/models.h"
#include "kronvi/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { KVI_TASK_CLASSIFY = 0, KVI_TASK_REGRESS } kvi_task;
typedef enum { KVI_KL_CONSTANT = 0, KVI_KL_LINEAR, KVI_KL_EXP } kvi_kl_schedule;

/* How Bayesian model averaging draws its K networks (docs/train.md, "Evaluation"). Both
 * estimate the same predictive (1/K) sum_k softmax(f(x; W_k)), W_k ~ q, for every example. */
typedef enum {
  KVI_BMA_WEIGHTS = 0, /* one weight sample per layer and k, shared by every example: K passes of
                          the mean-weight network with W_k in place of M */
  KVI_BMA_LRT,         /* local reparameterization: fresh noise per example and k */
  KVI_BMA_SHARED       /* the default: when the first layer is a dense MN or DIAG layer, its output
                          per example and k is drawn from its exact marginal around a mean and
                          scale computed once (no product of the data with a sample), the later
                          layers' weights as KVI_BMA_WEIGHTS; otherwise KVI_BMA_WEIGHTS */
} kvi_bma_method;
#define KVI_BMA_MAX_SAMPLES 100000
KVI_API const char *kvi_bma_name(kvi_bma_method m); /* "weights", "lrt", "shared" */
KVI_API kvi_status kvi_bma_parse(kvi_bma_method *m, const char *s);

typedef struct {
  kvi_task task;
  int epochs;
  int batch;
  kvi_opt_config opt;
  double lr_decay; /* learning rate multiplied by this after every epoch */
  double lr_final; /* if > 0: exponential decay from opt.lr to lr_final over all epochs */
  kvi_kl_schedule kl_schedule;
  double
      kl_warmup; /* epochs: LINEAR beta = min(1, t / warmup); EXP beta = 1 - exp(-5 t / warmup) */
  int samples;   /* K weight samples for Bayesian model averaging */
  int eval_samples_every; /* test BMA also every N epochs; 0 (default): only after the epoch
                             that ends the run (the last, early stopping, stop_after) */
  uint64_t seed;
  double prune_threshold; /* drop weights with log alpha above this (3) */
  int patience;           /* early stopping on validation accuracy/NLL; 0: off */
  double noise_precision; /* regression: initial noise precision beta */
  bool learn_noise;       /* regression: learn beta */
  bool hflip;             /* images: flip each training image horizontally with probability 1/2 */
  int prior_update_every; /* group ARD: exact coordinate update of tau, gamma every N steps (0:
                             the gradient only) */
  int finetune_pruned;    /* the last N epochs hold the means of the weights with log alpha above
                             prune_threshold at zero (the mask is renewed at each of those
                             epochs' start): prune, then fine-tune the rest by the ELBO */
  int stop_after;         /* stop once this many epochs are done (0: at `epochs`); a run
                             control, not saved: --resume continues the schedule of `epochs` */
  int progress;           /* 0 silent, 1 one line per epoch, 2 progress bar (terminal) */
  int save_every;         /* kronvi train: checkpoint every N epochs (kvi_checkpoint_callback) */
  bool fixed_threads;     /* false: a governor (kvi_governor) may run steps on fewer threads
                             than kvi_get_threads() when that is faster (another process on a
                             core); results are the same either way. Not saved. */
  kvi_bma_method bma;     /* how the test BMA is drawn; evaluation only, not saved */
  bool overlap_comm;      /* data-parallel: start summing each layer's gradient over the
                             processes as soon as the backward has it, while the layers below
                             still run (the same numbers either way); not saved */
  /* MN+DIAG: the log det of the KL by stochastic Lanczos quadrature (an estimate, docs/prob.md
   * §3) instead of Minkowski's lower bound (the default, false) */
  bool mndiag_slq;
  kvi_slq_config slq; /* its probes, Lanczos steps and basis refresh (seed: the run's) */
} kvi_train_config;

KVI_API kvi_train_config kvi_train_config_default(void);

/* Metrics on one data set. */
typedef struct {
  int64_t n;
  double acc_mean;   /* accuracy with the posterior-mean weights */
  double nll_mean;   /* NLL with the mean weights */
  double acc_bma;    /* accuracy of the average of K sampled predictive distributions */
  double nll_bma;    /* NLL of that average */
  double ece;        /* expected calibration error of the BMA probabilities (15 bins) */
  double acc_pruned; /* accuracy with the mean weights after dropping log alpha > threshold */
  double rmse_mean;  /* regression: RMSE with the mean weights */
  double entropy_mean, entropy_bma; /* mean predictive entropy (nats) of the mean-weight and
                                       the BMA class probabilities */
  int samples;
} kvi_metrics;

/* Per-layer sparsity (paper Table 1 form). */
typedef struct {
  char name[32];
  int n, m;
  int64_t total, left;                              /* weights */
  int rows_total, rows_left, cols_total, cols_left; /* groups with any weight left */
} kvi_layer_sparsity;

typedef struct {
  int nlayers;
  kvi_layer_sparsity layer[64];
  int64_t total, left;
} kvi_sparsity;

KVI_API kvi_status kvi_sparsity_compute(kvi_sparsity *out, kvi_net *net, double threshold);
/* Sets to zero the posterior mean of every weight with log alpha > threshold (every weight layer
 * of a family with variances); mask, if not NULL, gets kvi_net_weight_count(net) entries in the
 * layers' order, 1 for each such weight. */
KVI_API kvi_status kvi_net_zero_pruned(kvi_net *net, double threshold, unsigned char *mask);
KVI_API void kvi_sparsity_print(FILE *f, const kvi_sparsity *s, const char *title);

/* Averaged predictive probabilities P (n, net->out_size) of the n rows X (n, net->in_size),
 * samples in [1, KVI_BMA_MAX_SAMPLES]. KVI_BMA_WEIGHTS: sample k draws each weight layer's W
 * (in order: MN E (n, m), then MN+DIAG's diagonal noise (n, m); DIAG its E) from the stream
 * (seed, k) and runs every row through it; the means are restored before returning. LRT:
 * batch j of net->max_batch rows draws sample k from the stream (seed, 2^20 j + k). SHARED:
 * sample k draws the weight layers after the first as WEIGHTS (stream (seed, k), in order); the
 * first layer's output for row r (counted from the data set's first row) takes the m normals
 * from element r m of the stream (seed, 2^40 + k) (MN: its N(0, I) factor, times B^T; DIAG: times
 * the standard deviations); the draws do not depend on the batch size. Results do not depend on
 * the thread count. */
KVI_API kvi_status kvi_bma_probs(double *P, kvi_net *net, const kvi_real *X, int64_t n, int samples,
                                 uint64_t seed, kvi_bma_method method);

/* What kvi_evaluate_ex computes. */
typedef struct {
  int samples;            /* K of the BMA (0: no BMA; classification only) */
  uint64_t seed;          /* of the BMA samples */
  kvi_bma_method bma;     /* KVI_BMA_SHARED */
  bool pruned;            /* also the accuracy after pruning (one more mean pass); true */
  double prune_threshold; /* 3 */
  kvi_real log_beta;      /* regression: the noise precision's log */
  kvi_comm *comm;         /* NULL: one process. A group: each process evaluates a share of the
                             rows (whole chunks of max_batch rows) and the sums behind the
                             metrics are added over the processes: every process gets them */
} kvi_eval_config;

KVI_API kvi_eval_config kvi_eval_config_default(void);
/* Evaluates net on ds in chunks of net->max_batch rows: the mean-weight pass, the BMA of
 * c->samples networks, the pruned mean-weight pass. Cost: 1 + K (+1 pruned) mean-weight passes
 * with KVI_BMA_WEIGHTS (plus K weight samples); less with KVI_BMA_SHARED when the first layer is
 * dense (its product with the data once instead of K times). */
KVI_API kvi_status kvi_evaluate_ex(kvi_metrics *out, kvi_net *net, const kvi_dataset *ds,
                                   const kvi_eval_config *c);
/* kvi_evaluate_ex with the default method and the pruned pass. samples = 0 skips BMA. */
KVI_API kvi_status kvi_evaluate(kvi_metrics *out, kvi_net *net, const kvi_dataset *ds, int samples,
                                uint64_t seed, double prune_threshold, kvi_real log_beta);

/* How the data were prepared for training, recorded in checkpoints so that a resumed run and
 * the evaluation see the same examples (kronvi train fills it; the trainer only carries it). */
typedef struct {
  int64_t limit_train, limit_test;      /* first rows used (0: all) */
  int64_t val;                          /* validation rows split off the training set (seeded) */
  uint64_t val_seed;                    /* the split's seed */
  int pad;                              /* zero padding added around images */
  int d;                                /* regression --standardize: feature count (0: off) */
  kvi_real *feature_mean, *feature_std; /* (d) each, kvi_alloc'd, owned */
} kvi_data_prep;

typedef struct kvi_trainer kvi_trainer;

/* Passed to on_step after every optimizer step. */
typedef struct {
  int epoch;         /* 0-based epoch of the step */
  int64_t batch, nb; /* batches done in the epoch, batches per epoch */
  double loss, acc;  /* running means over the epoch (acc: classification) */
  double kl, kl_beta, lr;
  double epoch_start; /* kvi_time_now() at the epoch's start */
} kvi_step_info;

/* Passed to on_epoch after every epoch (t->epoch counts it already). */
typedef struct {
  int epoch; /* 1-based */
  double seconds, lr, kl_beta, train_loss, train_acc, kl, sparsity;
  const kvi_metrics *val, *test; /* NULL when that set is absent */
  int bma_samples;               /* samples of the test BMA this epoch (0: not computed) */
  bool last, stopping;           /* the last epoch; early stopping ends the run */
  bool paused;                   /* cfg.stop_after ends the run here (it resumes later) */
} kvi_epoch_info;

/* Hooks of the training loop. A status other than KVI_OK ends training with it. */
typedef struct {
  kvi_status (*on_step)(kvi_trainer *t, const kvi_step_info *s, void *user);
  kvi_status (*on_epoch)(kvi_trainer *t, const kvi_epoch_info *e, void *user);
  void (*release)(void *user); /* kvi_trainer_free: frees user */
  void *user;
} kvi_callback;

#define KVI_MAX_CALLBACKS 8

/* The training state: network, optimizer, counters; enough to resume exactly. */
struct kvi_trainer {
  kvi_net *net;
  kvi_optimizer opt;
  kvi_train_config cfg;
  kvi_data_prep prep;
  int epoch;    /* epochs completed */
  int64_t step; /* optimizer steps completed */
  double best_val;
  int best_epoch, bad_epochs;
  double elapsed;         /* seconds of training so far */
  unsigned char *ft_mask; /* finetune_pruned: 1 for each weight whose mean is held at zero */
  kvi_callback cb[KVI_MAX_CALLBACKS];
  int ncb;
  kvi_governor gov;    /* thread count of the steps (kvi_train) */
  bool grad_zero;      /* the gradient is all zero (the last optimizer step cleared it) */
  kvi_comm *comm;      /* data-parallel training (docs/distributed.md): the process group whose
                          processes share every batch; NULL: one process. Not owned, not saved */
  bool overlapped;     /* the last kvi_train overlapped communication with the backward */
  double comm_seconds; /* of the training steps' time (elapsed), spent in the group's calls,
                          waiting for the other processes included */
  kvi_slq **slq;       /* mndiag_slq: one state per weight layer (NULL for other families) */
  int nslq;
  void *solver;       /* solvers (kvi_opt_is_solver): the batch objective over the curvature
                         module (src/train/solver_step.c) */
  double *layer_kl;   /* (net->nlayers) the layers' KL terms of the last step */
  kvi_ard_block *ard; /* (net->nlayers) DIAG ARD blocks whose KL gradient the step fuses */
};

KVI_API kvi_status kvi_trainer_init(kvi_trainer *t, kvi_net *net, const kvi_train_config *cfg);
KVI_API void kvi_trainer_free(kvi_trainer *t);
KVI_API kvi_status kvi_trainer_add_callback(kvi_trainer *t, kvi_callback cb);
/* Trains until cfg.epochs (continuing from t->epoch). val may be NULL (no early stopping),
 * test may be NULL. */
KVI_API kvi_status kvi_train(kvi_trainer *t, const kvi_dataset *train, const kvi_dataset *val,
                             const kvi_dataset *test);

/* Built-in callbacks (src/train/callbacks.c). Progress: one line per epoch (cfg.progress >= 1)
 * and a progress bar on a terminal (cfg.progress 2). */
KVI_API kvi_callback kvi_progress_callback(void);
/* CSV metrics per epoch; appends when the file exists and training resumes (t->epoch > 0). */
KVI_API kvi_status kvi_csv_log_callback(kvi_callback *cb, const kvi_trainer *t, const char *path);
/* A checkpoint every `every` epochs, after the last one and when early stopping ends the run;
 * shape_of: the data whose image shape is recorded. */
KVI_API kvi_status kvi_checkpoint_callback(kvi_callback *cb, const char *path, int every,
                                           const kvi_dataset *shape_of);
/* Copies the standardization statistics into prep (d features). */
KVI_API kvi_status kvi_data_prep_set_standardize(kvi_data_prep *prep, const kvi_real *mean,
                                                 const kvi_real *std, int d);
KVI_API void kvi_data_prep_free(kvi_data_prep *prep);
/* The pullback sampling trick's output gradients d (b, K) of the mean loss for targets drawn
 * from the model's predictive at out: softmax (cls): (p - onehot(y)) / b, y ~ p; Gaussian:
 * -sqrt(beta) eps / b. Their covariance is the Fisher (= Gauss-Newton) matrix of the outputs. */
KVI_API void kvi_sampled_output_grad(kvi_real *d, const kvi_real *out, int b, int K, bool cls,
                                     kvi_real log_beta, kvi_rng *rng);
/* The same for rows [row0, row0 + b) of a batch of batch_total rows (one process of a
 * data-parallel step): the draws of those rows (softmax: one Philox block per row; Gaussian:
 * K normals per row) and the divisor batch_total; rng advances as for the whole batch. */
KVI_API void kvi_sampled_output_grad_rows(kvi_real *d, const kvi_real *out, int b, int K, bool cls,
                                          kvi_real log_beta, kvi_rng *rng, int64_t row0,
                                          int batch_total);
/* KL weight beta at a (fractional) epoch. */
KVI_API double kvi_kl_beta(const kvi_train_config *cfg, double epoch);

/* Structured compression (docs/train.md, "Structured compression"). Per weight layer: */
typedef struct {
  char name[32];
  int n_before, n_after;                 /* inputs (rows of W) */
  int units_before, units_after;         /* output neurons / filters (after: ghost included) */
  int ghost;                             /* 1: a constant "ghost" unit was added */
  int merged;                            /* units folded into the ghost unit */
  int forced;                            /* 1: every unit was removable, one was kept */
  int64_t weights_before, weights_after; /* n * m */
  size_t params_before, params_after;    /* kvi_dense_param_count */
  double jitter; /* relative jitter the new Cholesky factors needed (0: none) */
} kvi_compress_layer;

typedef struct {
  int nlayers; /* weight layers */
  kvi_compress_layer layer[64];
  int64_t weights_before, weights_after;
  size_t params_before, params_after; /* kvi_net_param_count */
  char arch_before[256], arch_after[256];
  char note[512]; /* warnings ("" when none): layers with every unit removable, jitter */
} kvi_compress_info;

/* Builds in *out a smaller network without the neurons / filters that the pruned network
 * (means of the weights with log alpha > threshold set to zero) does not need: a unit whose
 * outgoing weights are all pruned is removed; a unit whose incoming weights are all pruned
 * outputs a constant and is merged with the others into one constant "ghost" unit. The data's
 * inputs and the outputs are kept. The mean-weight predictions of *out equal the pruned
 * network's up to rounding; the posterior of the kept weights is the exact marginal of the
 * original (MN: U' = T U T^T, V' = V[J,J]). Threshold NaN: KVI_ERR_ARG. */
KVI_API kvi_status kvi_net_compress(kvi_net **out, kvi_compress_info *info, const kvi_net *net,
                                    double threshold);

/* K-FAC Laplace (docs/kfac.md): the Kronecker factors A, G of every weight layer's Fisher of a
 * point network on ds, exactly (every class of the softmax, or every Gaussian output, weighted by
 * its probability), and the MN posterior they give with prior precision tau: row covariance
 * (sqrt(N) A + sqrt(tau) I)^-1 (its weight block), column covariance (sqrt(N) G + sqrt(tau) I)^-1,
 * means the point weights. The posterior is an ordinary mn net (eval, prune, checkpoints). */
typedef struct kvi_laplace kvi_laplace;
KVI_API kvi_status kvi_laplace_factors(kvi_laplace **out, kvi_net *point, const kvi_dataset *ds,
                                       kvi_task task);
KVI_API kvi_status kvi_laplace_posterior(kvi_net **post, const kvi_laplace *lp,
                                         const kvi_net *point, double prior_precision);
KVI_API void kvi_laplace_free(kvi_laplace *lp);

/* Checkpoints (safetensors; docs/io.md). Saving is atomic. Loading creates the network and,
 * if t is given, restores the optimizer state (every state tensor by name), the counters and
 * the data preparation so that training resumes exactly; a checkpoint without optimizer state
 * fails then unless reset_optimizer (the moments start from zero). Every field of the metadata
 * is checked against the ranges of the command line. */
KVI_API kvi_status kvi_checkpoint_save(const char *path, const kvi_trainer *t,
                                       const kvi_dataset *shape_of);
KVI_API kvi_status kvi_checkpoint_load(const char *path, kvi_net **net, kvi_trainer *t,
                                       kvi_train_config *cfg_out);
KVI_API kvi_status kvi_checkpoint_load_ex(const char *path, kvi_net **net, kvi_trainer *t,
                                          kvi_train_config *cfg_out, bool reset_optimizer);
/* Any model (several nets over one block): every view, and each net's architecture and
 * configuration in the metadata. */
KVI_API kvi_status kvi_model_save(const char *path, const kvi_model *m);
KVI_API kvi_status kvi_model_load(kvi_model **out, const char *path);

/* ---- VAE training (paper Algorithm 3; src/train/vae_train.c, vae_ckpt.c, docs/vae.md) -----
 * Adam on mini-batches of binary images, loss -(1/B) sum [log p(x|z) - beta_t KL] with the
 * exponential KL annealing beta_t of kvi_vae_kl_beta, the one-sample validation ELBO after every
 * epoch (the same noise every epoch), early stopping on it, and the parameters of the best
 * validation ELBO kept for evaluation. Noise streams are keyed by (seed, step), so a resumed run
 * continues bit-identically. */
typedef struct {
  int epochs;         /* 300 */
  int batch;          /* 100 */
  kvi_opt_config opt; /* Adam, lr 5e-4 */
  double kl_anneal;   /* epochs of KL annealing (100): beta = 1 - exp(-5 t / T) for t < T, then 1;
                         0: beta = 1 throughout */
  int patience;       /* stop after N epochs without a better validation ELBO (0: never) */
  uint64_t seed;
  int stop_after;     /* stop once this many epochs are done (a run control, not saved) */
  bool fixed_threads; /* see kvi_train_config */
} kvi_vae_train_config;

KVI_API kvi_vae_train_config kvi_vae_train_config_default(void);
/* beta at a (fractional) epoch t for T = anneal epochs. */
KVI_API double kvi_vae_kl_beta(double anneal, double epoch);

/* Passed to on_epoch after every epoch (per-image values in nats). */
typedef struct {
  int epoch; /* 1-based */
  double seconds, kl_beta;
  double train_elbo, train_rec, train_kl; /* means over the epoch's batches (beta = 1 in the
                                             ELBO; the step minimized the annealed one) */
  double val_elbo;                        /* NAN without a validation set */
  bool improved;                          /* the best validation ELBO so far */
  bool last, stopping, paused;            /* as kvi_epoch_info */
} kvi_vae_epoch_info;

typedef struct kvi_vae_trainer kvi_vae_trainer;
struct kvi_vae_trainer {
  kvi_vae *vae; /* not owned */
  kvi_optimizer opt;
  kvi_vae_train_config cfg;
  int64_t limit_train, limit_test, val; /* data preparation (kronvi vae train records it) */
  int epoch;                            /* epochs completed */
  int64_t step;                         /* optimizer steps completed */
  double best_val;                      /* best validation ELBO per image (-1e300: none) */
  int best_epoch, bad_epochs;
  double elapsed;
  kvi_real *best; /* (params n) the parameters after the best epoch; NULL until there is one */
  /* hooks (may be NULL): a status other than KVI_OK ends training with it */
  kvi_status (*on_epoch)(kvi_vae_trainer *t, const kvi_vae_epoch_info *e, void *user);
  kvi_status (*on_step)(kvi_vae_trainer *t, int64_t batch, int64_t nb, double elbo, void *user);
  void *user;
  kvi_governor gov;
  bool grad_zero;
};

KVI_API kvi_status kvi_vae_trainer_init(kvi_vae_trainer *t, kvi_vae *v,
                                        const kvi_vae_train_config *cfg);
KVI_API void kvi_vae_trainer_free(kvi_vae_trainer *t); /* not the vae */
/* Trains until cfg.epochs (from t->epoch) or early stopping; val may be NULL (no early
 * stopping, no best parameters). Both sets must be binary images of the VAE's input size. */
KVI_API kvi_status kvi_vae_train(kvi_vae_trainer *t, const kvi_dataset *train,
                                 const kvi_dataset *val);
/* Checkpoint of a VAE (safetensors, written atomically): every view, the optimizer state, the
 * best parameters as "best.<view>", the configuration, the data preparation and the counters. */
KVI_API kvi_status kvi_vae_checkpoint_save(const char *path, const kvi_vae_trainer *t);
/* Rebuilds the VAE (for the checkpoint's batch size). With t, restores the trainer so that
 * training resumes exactly. best: then load the best parameters into the VAE when the file has
 * them (*had_best, may be NULL, says whether it had): for evaluation, not for resuming. A
 * classifier checkpoint or any other file fails with a message naming what it is. */
KVI_API kvi_status kvi_vae_checkpoint_load(const char *path, kvi_vae **vae, kvi_vae_trainer *t,
                                           bool best, bool *had_best);

#ifdef __cplusplus
}
#endif
#endif
