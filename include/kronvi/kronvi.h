/* kronvi: the stable C API (libkronvi.so / libkronvi.a; docs/api.md).
 *
 * Everything a program needs to build, train, evaluate with uncertainty, prune, compress, save
 * and load sparse Bayesian networks, through four opaque handles:
 *   kvi_dset     a data set (features, and class labels or regression targets)
 *   kvi_network  a model: the network, its variational posterior and its training state
 *   kvi_optim    optimizer settings (kind, learning rate, ...)
 *   kvi_learner  a trainer: runs epochs of a network with an optimizer and calls back
 * Only the functions of this header are exported; the internal headers next to it are not part
 * of the API and not installed.
 *
 * Conventions:
 *   - Functions that can fail return kvi_status (KVI_OK = 0). On failure the handle is
 *     unchanged, outputs are not written (or set to NULL / 0) and kvi_error_message() returns a
 *     message for the calling thread. The library never exits or aborts on bad input.
 *   - A create/load function writes a new handle to *out; free it with the matching _free
 *     (which accepts NULL). Arrays passed in are copied; the caller keeps them.
 *   - Arrays are row-major and contiguous, of kvi_real: float in libkronvi, double in
 *     libkronvi_f64. Users of libkronvi_f64 define KVI_DOUBLE before including this header
 *     (pkg-config kronvi_f64 and the CMake target kronvi::kronvi_f64 do); its functions are
 *     then named kvid_... instead of kvi_... (the macros at the end of this file map them), so
 *     one program can link both libraries.
 *   - Options are strings of "key=value" pairs separated by spaces or commas ("" or NULL: the
 *     defaults); an unknown key or a bad value fails with KVI_ERR_ARG naming it.
 *   - Results do not depend on the thread count. A handle may be used by one thread at a time.
 */
#ifndef KRONVI_KRONVI_H
#define KRONVI_KRONVI_H

#include <stddef.h>
#include <stdint.h>

#include "kronvi/types.h"

/* ---- double precision: libkronvi_f64 names its functions kvid_... --------------------------- */
#ifdef KVI_DOUBLE
#define kvi_version kvid_version
#define kvi_error_message kvid_error_message
#define kvi_status_message kvid_status_message
#define kvi_set_num_threads kvid_set_num_threads
#define kvi_num_threads kvid_num_threads
#define kvi_dset_create kvid_dset_create
#define kvi_dset_create_regression kvid_dset_create_regression
#define kvi_dset_load_dir kvid_dset_load_dir
#define kvi_dset_set_image_shape kvid_dset_set_image_shape
#define kvi_dset_rows kvid_dset_rows
#define kvi_dset_features kvid_dset_features
#define kvi_dset_classes kvid_dset_classes
#define kvi_dset_targets kvid_dset_targets
#define kvi_dset_copy kvid_dset_copy
#define kvi_dset_free kvid_dset_free
#define kvi_optim_create kvid_optim_create
#define kvi_optim_set kvid_optim_set
#define kvi_optim_get kvid_optim_get
#define kvi_optim_kind kvid_optim_kind
#define kvi_optim_free kvid_optim_free
#define kvi_network_create kvid_network_create
#define kvi_network_load kvid_network_load
#define kvi_network_save kvid_network_save
#define kvi_network_inputs kvid_network_inputs
#define kvi_network_outputs kvid_network_outputs
#define kvi_network_arch kvid_network_arch
#define kvi_network_family kvid_network_family
#define kvi_network_param_count kvid_network_param_count
#define kvi_network_epochs kvid_network_epochs
#define kvi_network_task kvid_network_task
#define kvi_network_predict kvid_network_predict
#define kvi_network_evaluate kvid_network_evaluate
#define kvi_network_sparsity kvid_network_sparsity
#define kvi_network_prune kvid_network_prune
#define kvi_network_compress kvid_network_compress
#define kvi_network_free kvid_network_free
#define kvi_learner_create kvid_learner_create
#define kvi_learner_set_callback kvid_learner_set_callback
#define kvi_learner_fit kvid_learner_fit
#define kvi_learner_stopped kvid_learner_stopped
#define kvi_learner_free kvid_learner_free
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; kvi_version() gives the library's. */
#define KVI_VERSION_MAJOR 0
#define KVI_VERSION_MINOR 1
#define KVI_VERSION_PATCH 0

typedef struct kvi_dset kvi_dset;
typedef struct kvi_network kvi_network;
typedef struct kvi_optim kvi_optim;
typedef struct kvi_learner kvi_learner;

/* ---- library ------------------------------------------------------------------------------ */
/* "0.1.0 f32" (version and precision); major, minor, patch may be NULL. */
KVI_EXPORT const char *kvi_version(int *major, int *minor, int *patch);
/* The message of the last failure on the calling thread ("" if none). */
KVI_EXPORT const char *kvi_error_message(void);
/* The short meaning of a status code ("invalid argument"). */
KVI_EXPORT const char *kvi_status_message(kvi_status s);
/* Threads of the parallel loops and BLAS calls (n >= 1; default: the CPUs available). */
KVI_EXPORT kvi_status kvi_set_num_threads(int n);
KVI_EXPORT int kvi_num_threads(void);

/* ---- data sets ---------------------------------------------------------------------------- */
/* Classification data: n rows of d features x (n, d) and labels (n) in [0, nclasses);
 * nclasses 0: max label + 1. Copies the arrays. */
KVI_EXPORT kvi_status kvi_dset_create(kvi_dset **out, const kvi_real *x, int64_t n, int d,
                                      const int32_t *labels, int nclasses);
/* Regression data: x (n, d) and k targets per row t (n, k). Copies the arrays. */
KVI_EXPORT kvi_status kvi_dset_create_regression(kvi_dset **out, const kvi_real *x, int64_t n,
                                                 int d, const kvi_real *targets, int k);
/* Loads the train and test splits of a directory of IDX files (MNIST, Fashion-MNIST) or CIFAR-10
 * batches, pixels scaled to [0, 1]; limit_train / limit_test keep the first rows (0: all).
 * test may be NULL. */
KVI_EXPORT kvi_status kvi_dset_load_dir(kvi_dset **train, kvi_dset **test, const char *dir,
                                        int64_t limit_train, int64_t limit_test);
/* Declares the rows images of c channels, h x w pixels, stored HWC (c*h*w must equal d); a
 * convolutional network needs it, and checkpoints record it. */
KVI_EXPORT kvi_status kvi_dset_set_image_shape(kvi_dset *ds, int c, int h, int w);
KVI_EXPORT int64_t kvi_dset_rows(const kvi_dset *ds); /* -1 for NULL */
KVI_EXPORT int kvi_dset_features(const kvi_dset *ds); /* d; -1 for NULL */
KVI_EXPORT int kvi_dset_classes(const kvi_dset *ds);  /* 0 for regression; -1 for NULL */
KVI_EXPORT int kvi_dset_targets(const kvi_dset *ds);  /* k; 0 for classification */
/* Copies the features (n, d) into x and the labels (n) into labels (classification) or the
 * targets (n, k) into targets (regression); any output may be NULL. */
KVI_EXPORT kvi_status kvi_dset_copy(const kvi_dset *ds, kvi_real *x, int32_t *labels,
                                    kvi_real *targets);
KVI_EXPORT void kvi_dset_free(kvi_dset *ds);

/* ---- optimizers --------------------------------------------------------------------------- */
/* Settings of an optimizer of a kind: "adam" (the default for NULL), "sgd", "kfac", "noisy-kfac",
 * ... (kronvi train --help lists them), with that kind's defaults. */
KVI_EXPORT kvi_status kvi_optim_create(kvi_optim **out, const char *kind);
/* Sets one setting: lr, momentum, weight_decay, nesterov (0/1), damping, ema, kl_clip,
 * inverse_every, ekfac (0/1). */
KVI_EXPORT kvi_status kvi_optim_set(kvi_optim *o, const char *key, double value);
KVI_EXPORT kvi_status kvi_optim_get(const kvi_optim *o, const char *key, double *value);
KVI_EXPORT const char *kvi_optim_kind(const kvi_optim *o); /* "adam"; "" for NULL */
KVI_EXPORT void kvi_optim_free(kvi_optim *o);

/* ---- networks ----------------------------------------------------------------------------- */
/* A new network of architecture arch ("784-100-10"; convolutional: "1-32-mp-64-mp-flatten-10",
 * docs/models.md) for in_size inputs (0: from arch). Options (defaults of kronvi train):
 *   family=mn|mn-diag|diag|point  prior=ard|group|scalar|fixed:VAR  act=elu|relu|none
 *   bias=1  init_log_sigma=-5  seed=1  batch=100 (the largest batch trained or evaluated at
 *   once, at least 1000 for an MLP)  task=classify|regress  in_h=0 in_w=0 (image size of a
 *   convolutional net; 0: square) */
KVI_EXPORT kvi_status kvi_network_create(kvi_network **out, const char *arch, int in_size,
                                         const char *options);
/* Loads a checkpoint (kronvi train --save, kvi_network_save): network, posterior and training
 * state (optimizer moments when the file has them, counters, configuration). */
KVI_EXPORT kvi_status kvi_network_load(kvi_network **out, const char *path);
/* Writes a checkpoint (safetensors, atomically) that kvi_network_load and the kronvi CLI read. */
KVI_EXPORT kvi_status kvi_network_save(const kvi_network *net, const char *path);
KVI_EXPORT int kvi_network_inputs(const kvi_network *net);  /* -1 for NULL */
KVI_EXPORT int kvi_network_outputs(const kvi_network *net); /* classes or targets; -1 for NULL */
KVI_EXPORT const char *kvi_network_arch(const kvi_network *net);    /* "" for NULL */
KVI_EXPORT const char *kvi_network_family(const kvi_network *net);  /* "mn"; "" for NULL */
KVI_EXPORT int64_t kvi_network_param_count(const kvi_network *net); /* of the posterior */
KVI_EXPORT int kvi_network_epochs(const kvi_network *net); /* epochs trained; -1 for NULL */
/* "classify" or "regress" ("" for NULL). */
KVI_EXPORT const char *kvi_network_task(const kvi_network *net);

/* Predictions for n rows x (n, d), d = kvi_network_inputs. Classification: probs (n, K) gets
 * the predictive probabilities: with samples = 0 those of the posterior-mean weights, with
 * samples = S > 0 the Bayesian model average of S weight samples drawn from seed; entropy (n),
 * if not NULL, the predictive entropy (nats) of each row: its uncertainty. Regression: samples
 * must be 0 and probs (n, K) gets the mean-weight outputs. */
KVI_EXPORT kvi_status kvi_network_predict(kvi_network *net, const kvi_real *x, int64_t n, int d,
                                          int samples, uint64_t seed, double *probs,
                                          double *entropy);

/* Metrics of kvi_network_evaluate (NaN where not computed). */
typedef struct {
  int64_t rows;
  double accuracy;        /* posterior-mean weights */
  double nll;             /* mean negative log likelihood with the mean weights */
  double accuracy_bma;    /* Bayesian model average of `samples` weight samples */
  double nll_bma;         /* its NLL */
  double ece;             /* expected calibration error of the BMA (15 bins) */
  double entropy;         /* mean predictive entropy (nats), mean weights */
  double entropy_bma;     /* mean predictive entropy of the BMA */
  double accuracy_pruned; /* mean weights after pruning log alpha > threshold */
  double rmse;            /* regression: RMSE of the mean weights */
  int samples;
} kvi_scores;

/* Evaluates on ds what `kronvi eval` prints: samples (kronvi eval: 10; 0 skips the BMA) weight
 * samples drawn from seed (1), pruning threshold on log alpha (3). The numbers equal the CLI's
 * for the same checkpoint, data and arguments. */
KVI_EXPORT kvi_status kvi_network_evaluate(kvi_network *net, const kvi_dset *ds, int samples,
                                           uint64_t seed, double threshold, kvi_scores *out);
/* Weights in all and those with log alpha = log(Var / M^2) <= threshold (kept by pruning);
 * either pointer may be NULL. */
KVI_EXPORT kvi_status kvi_network_sparsity(kvi_network *net, double threshold, int64_t *total,
                                           int64_t *kept);
/* Prunes: sets to zero the posterior mean of every weight with log alpha > threshold (what
 * kronvi prune writes); *pruned (may be NULL) gets the number of such weights. */
KVI_EXPORT kvi_status kvi_network_prune(kvi_network *net, double threshold, int64_t *pruned);
/* Structured compression (kronvi prune --structured): a new, smaller network without the units
 * that the network pruned at threshold does not need; its mean-weight predictions equal the
 * pruned network's up to rounding. The new network has no optimizer state. */
KVI_EXPORT kvi_status kvi_network_compress(kvi_network **out, const kvi_network *net,
                                           double threshold);
KVI_EXPORT void kvi_network_free(kvi_network *net);

/* ---- training ----------------------------------------------------------------------------- */
/* What a progress callback gets. */
typedef struct {
  int epoch;            /* 1-based epoch (the epoch the step belongs to for a step) */
  int epochs;           /* the run's last epoch */
  int end_of_epoch;     /* 1: after an epoch; 0: after an optimizer step */
  int64_t batch;        /* batches done in the epoch */
  int64_t batches;      /* batches per epoch */
  int64_t step;         /* optimizer steps done in all */
  double loss;          /* running mean of the epoch's loss (negative ELBO per example) */
  double accuracy;      /* running training accuracy of the epoch (classification) */
  double kl;            /* KL term */
  double lr;            /* learning rate */
  double seconds;       /* of the epoch so far */
  double sparsity;      /* end of epoch: fraction of weights with log alpha > threshold */
  double val_accuracy;  /* end of epoch: validation accuracy, NaN without one */
  double test_accuracy; /* end of epoch: test accuracy (mean weights), NaN without test data */
} kvi_progress;

/* Called after every epoch (and after every step when asked); a non-zero return stops
 * training: kvi_learner_fit then returns KVI_OK and kvi_learner_stopped() is 1. */
typedef int (*kvi_progress_fn)(const kvi_progress *p, void *user);

/* A trainer of net with the optimizer settings opt (NULL: Adam with its defaults), copied.
 * Options (defaults of kronvi train): epochs=10 batch=100 kl_warmup=0 kl_schedule=linear|exp|
 * constant samples=10 (BMA samples of the test evaluation) seed=(the network's) lr_decay=1
 * lr_final=0 patience=0 prune_threshold=3 hflip=0 progress=0 (1: a line per epoch on stderr)
 * prior_update_every=10 finetune_pruned=0 noise_precision=1 learn_noise=0. net must outlive the
 * learner. A network that was trained already (loaded, or fitted before) keeps its optimizer
 * state and configuration: only epochs, progress and samples apply then. */
KVI_EXPORT kvi_status kvi_learner_create(kvi_learner **out, kvi_network *net, const kvi_optim *opt,
                                         const char *options);
/* The progress callback (NULL: none); every_step 1 calls it after every optimizer step too. */
KVI_EXPORT kvi_status kvi_learner_set_callback(kvi_learner *l, kvi_progress_fn fn, void *user,
                                               int every_step);
/* Trains until the epochs option (counting the epochs the network has done). val (may be NULL)
 * enables early stopping (patience); test (may be NULL) is evaluated after every epoch. */
KVI_EXPORT kvi_status kvi_learner_fit(kvi_learner *l, const kvi_dset *train, const kvi_dset *val,
                                      const kvi_dset *test);
/* 1 when the callback stopped the last kvi_learner_fit; 0 otherwise; -1 for NULL. */
KVI_EXPORT int kvi_learner_stopped(const kvi_learner *l);
KVI_EXPORT void kvi_learner_free(kvi_learner *l);

#ifdef __cplusplus
}
#endif

#endif
