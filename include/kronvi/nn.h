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
  /* MN+DIAG: the stochastic Lanczos state of its KL's log det (not owned: set and freed by
   * the trainer with --mndiag-bound slq); NULL: Minkowski's lower bound */
  kvi_slq *slq;
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

/* ---- 2-D convolution (im2col + the dense layer, docs/nn-conv.md) -----------------------
 * Images are stored per example in HWC order: element (y, x, ci) of an h x w x c_in image is at
 * (y * w + x) * c_in + ci. The weight is a dense layer of size (k*k*c_in) x c_out whose row
 * (ky * k + kx) * c_in + ci is the input tap (ky, kx, ci) and whose column co is filter co, so
 * MN rows are input positions and columns are filters. The forward unfolds X into the matrix
 * cols (B * oh * ow, k*k*c_in) and runs the dense layer on it with B * oh * ow rows: local
 * reparameterization draws independent noise for every output position. The output is
 * (B, oh, ow, c_out) in HWC order, the dense layer's (B*oh*ow, c_out) output as it is. */
typedef struct {
  kvi_dense d;    /* the (k*k*c_in) x c_out weight and its posterior, prior and bias */
  int h, w, c_in; /* input image */
  int k, stride, pad;
  int oh, ow, c_out; /* output image: oh = (h + 2 pad - k) / stride + 1 */
  int chunk;         /* examples per chunk of the forward / backward passes; 0 (what
                        kvi_conv_declare sets): automatic, about 600 output positions */
} kvi_conv;

/* Declares "<name>.M" etc. as kvi_dense_declare with n = k*k*c_in, m = c_out. Errors (with a
 * message) when the kernel does not fit the padded input or a size is not positive. */
KVI_API kvi_status kvi_conv_declare(kvi_conv *l, kvi_params *p, const char *name, int h, int w,
                                    int c_in, int c_out, int k, int stride, int pad,
                                    kvi_family family, kvi_prior prior, double prior_var,
                                    bool bias);
/* As kvi_dense_init (fan-in k*k*c_in). */
KVI_API void kvi_conv_init(const kvi_conv *l, kvi_params *p, kvi_rng *rng, double gain,
                           double init_log_sigma);
/* Workspace for a batch: the unfolded input, the per-chunk workspaces of the dense layer, the
 * per-group input-gradient chunks and gradient accumulators (docs/nn-conv.md). */
KVI_API size_t kvi_conv_ws_size(const kvi_conv *l, int batch);
KVI_API size_t kvi_conv_noise_size(const kvi_conv *l, int batch);
/* Y (B, oh*ow*c_out); eps (kvi_conv_noise_size) standard normal, or NULL for the mean. */
KVI_API kvi_status kvi_conv_forward(kvi_real *Y, void *ws, const kvi_conv *l, const kvi_params *p,
                                    const kvi_real *X, const kvi_real *eps, int batch);
/* Adds the parameter gradients; writes dX (B, h*w*c_in) when not NULL. Needs the forward's ws,
 * X and eps. */
KVI_API kvi_status kvi_conv_backward(kvi_real *dX, kvi_params *p, const kvi_real *dY, void *ws,
                                     const kvi_conv *l, const kvi_real *X, const kvi_real *eps,
                                     int batch);

/* ---- 2x2 max-pooling with stride 2 (HWC; odd sizes drop the last row / column) ------------ */
typedef struct {
  int h, w, c, oh, ow; /* oh = h / 2, ow = w / 2 */
} kvi_pool;

KVI_API kvi_status kvi_pool_init(kvi_pool *l, int h, int w, int c); /* error if h or w < 2 */
/* Workspace: the index of each output's maximum (int32, batch * oh * ow * c). */
KVI_API size_t kvi_pool_ws_size(const kvi_pool *l, int batch);
KVI_API void kvi_pool_forward(kvi_real *Y, void *ws, const kvi_pool *l, const kvi_real *X,
                              int batch);
/* Writes dX (B, h*w*c): dY routed to the forward's maxima, zero elsewhere. */
KVI_API void kvi_pool_backward(kvi_real *dX, const kvi_real *dY, const void *ws, const kvi_pool *l,
                               int batch);

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
/* The same over the batch rows of one process of a data-parallel batch of batch_total rows
 * (docs/distributed.md): the loss and the gradients are divided by batch_total instead of
 * batch (the Gaussian's terms that do not depend on the rows weighted by batch / batch_total),
 * so that their sums over the processes are the whole batch's mean and its gradients. With
 * batch_total = batch they are the functions above, to the bit. */
KVI_API kvi_status kvi_softmax_xent_part(double *loss, kvi_real *dlogits, kvi_real *probs,
                                         int *correct, const kvi_real *logits,
                                         const int32_t *labels, int batch, int K, int batch_total);
KVI_API kvi_status kvi_gauss_nll_part(double *loss, kvi_real *dY, kvi_real *dlog_beta,
                                      const kvi_real *Y, const kvi_real *T, kvi_real log_beta,
                                      int batch, int K, int batch_total);

/* Curvature of the losses in their outputs (docs/curv.md, eq. L1-L2), for Hessian- and
 * Gauss-Newton-vector products: Rd (B, K) = H Rz row by row, with the mean over the batch.
 * Softmax cross-entropy: H = (diag(q) - q q^T) / B, q = softmax(z) of each row. */
KVI_API kvi_status kvi_softmax_xent_hvp(kvi_real *Rd, const kvi_real *logits, const kvi_real *Rz,
                                        int batch, int K);
/* Gaussian likelihood with precision beta = exp(log_beta) (log_beta held fixed): H = beta I / B. */
KVI_API kvi_status kvi_gauss_nll_hvp(kvi_real *Rd, const kvi_real *Rz, kvi_real log_beta, int batch,
                                     int K);

#ifdef __cplusplus
}
#endif
#endif
