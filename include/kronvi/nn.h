/* kronvi nn: layers with explicit forward and backward passes.
 *
 * A layer maps a mini-batch X (B, n) row-major to Y (B, m). Backward ADDS parameter gradients
 * into the model's flat gradient buffer and WRITES (overwrites) the input gradient dX when it is
 * requested. Per-call temporaries live in a workspace carved from an arena by the caller;
 * nothing is allocated inside forward or backward. */
#ifndef KRONVI_NN_H
#define KRONVI_NN_H

#include "kronvi/core.h"
#include "kronvi/prob.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Variational family of a weight matrix. */
typedef enum {
  KVI_FAMILY_POINT = 0, /* point estimate (no posterior, no KL) */
  KVI_FAMILY_DIAG,      /* fully factorized Gaussian */
  KVI_FAMILY_MN,        /* Matrix Normal with Cholesky factors */
  KVI_FAMILY_MNDIAG     /* Matrix Normal plus a diagonal */
} kvi_family;

/* Prior on a weight matrix. */
typedef enum {
  KVI_PRIOR_NONE = 0, /* no KL term (point family) */
  KVI_PRIOR_ARD,      /* per-weight precision at its closed-form optimum */
  KVI_PRIOR_GROUP,    /* group ARD: precision tau_i * gamma_j (rows = inputs, columns = outputs) */
  KVI_PRIOR_SCALAR,   /* one learnable prior variance for the whole matrix */
  KVI_PRIOR_FIXED     /* fixed prior variance */
} kvi_prior;

KVI_API const char *kvi_family_name(kvi_family f);
KVI_API kvi_status kvi_family_parse(kvi_family *f, const char *s);
KVI_API const char *kvi_prior_name(kvi_prior p);

typedef struct {
  char name[32]; /* e.g. "fc0" */
  int n, m;      /* input and output sizes: W (n, m) */
  kvi_family family;
  kvi_prior prior;
  double prior_var; /* KVI_PRIOR_FIXED */
  bool bias;
  /* view indices into the model's kvi_params (-1 when absent) */
  int iM, iA, iB, iS, ib, itau, igamma, ilogv;
} kvi_dense;

/* Declares the layer's parameters in p: "<name>.M" (n,m), "<name>.A" (n,n), "<name>.B" (m,m),
 * "<name>.log_sigma" / "<name>.log_d" (n,m), "<name>.b" (m), "<name>.log_tau" (n),
 * "<name>.log_gamma" (m), "<name>.log_prior_var" (1). */
KVI_API kvi_status kvi_dense_declare(kvi_dense *l, kvi_params *p, const char *name, int n, int m,
                                     kvi_family family, kvi_prior prior, double prior_var,
                                     bool bias);
/* Initial values: M ~ N(0, 1/n) (He-like for ELU/ReLU when gain = 2), marginal posterior
 * standard deviation exp(init_log_sigma) for every weight, group precisions 1. */
KVI_API void kvi_dense_init(const kvi_dense *l, kvi_params *p, kvi_rng *rng, double gain,
                            double init_log_sigma);
KVI_API size_t kvi_dense_ws_size(const kvi_dense *l, int batch);
/* Number of standard-normal numbers the layer consumes per forward: eps1 then eps2. */
KVI_API size_t kvi_dense_noise_size(const kvi_dense *l, int batch);
/* Y (B, m) = sample of X W + b; eps (kvi_dense_noise_size) standard normal or NULL for the mean
 * weights (also NULL for the point family). */
KVI_API kvi_status kvi_dense_forward(kvi_real *Y, void *ws, const kvi_dense *l, const kvi_params *p,
                                     const kvi_real *X, const kvi_real *eps, int batch);
/* dX (B, n) may be NULL (first layer). Needs the same ws, X and eps as the forward. */
KVI_API kvi_status kvi_dense_backward(kvi_real *dX, kvi_params *p, const kvi_real *dY, void *ws,
                                      const kvi_dense *l, const kvi_real *X, const kvi_real *eps,
                                      int batch);
/* KL(q || prior) of the layer; adds gscale * dKL into the gradients. */
KVI_API kvi_status kvi_dense_kl(double *kl, kvi_params *p, const kvi_dense *l, kvi_real gscale);
/* Exact coordinate update of group-ARD precisions (no-op for other priors). */
KVI_API kvi_status kvi_dense_prior_update(kvi_params *p, const kvi_dense *l, kvi_arena *scratch);
/* Per-weight log alpha = log(Var / M^2) (n, m); point family: -inf-like (-1e30). */
KVI_API kvi_status kvi_dense_log_alpha(kvi_real *out, const kvi_params *p, const kvi_dense *l);
/* Marginal variances (n, m) of the posterior (0 for point). */
KVI_API kvi_status kvi_dense_marginal_var(kvi_real *out, const kvi_params *p, const kvi_dense *l);
/* Parameter count of the variational family (triangular factors counted as n(n+1)/2). */
KVI_API size_t kvi_dense_param_count(const kvi_dense *l);

/* ---- activations (elementwise, in place allowed for forward) ---------------------------- */
typedef enum { KVI_ACT_NONE = 0, KVI_ACT_ELU, KVI_ACT_RELU } kvi_act;
KVI_API const char *kvi_act_name(kvi_act a);
KVI_API kvi_status kvi_act_parse(kvi_act *a, const char *s);
KVI_API void kvi_act_forward(kvi_real *y, const kvi_real *x, size_t n, kvi_act a);
/* dx = dy * act'(x), computed from the forward input x and output y. */
KVI_API void kvi_act_backward(kvi_real *dx, const kvi_real *dy, const kvi_real *x,
                              const kvi_real *y, size_t n, kvi_act a);

/* ---- losses ---------------------------------------------------------------------------- */
/* Softmax cross-entropy, mean over the batch. logits (B, K), labels (B). Writes dlogits
 * (mean-scaled) if not NULL and probabilities if probs not NULL. Returns the mean loss; counts
 * correct argmax predictions into *correct if not NULL. Labels outside [0, K) -> KVI_ERR_ARG. */
KVI_API kvi_status kvi_softmax_xent(double *loss, kvi_real *dlogits, kvi_real *probs, int *correct,
                                    const kvi_real *logits, const int32_t *labels, int batch,
                                    int K);
/* Gaussian likelihood with precision beta = exp(log_beta): mean over the batch of
 * 1/2 beta ||y - t||^2 - K/2 log beta + K/2 log 2pi. dY (mean-scaled) and d log_beta added
 * if not NULL. */
KVI_API kvi_status kvi_gauss_nll(double *loss, kvi_real *dY, kvi_real *dlog_beta, const kvi_real *Y,
                                 const kvi_real *T, kvi_real log_beta, int batch, int K);

#ifdef __cplusplus
}
#endif
#endif
