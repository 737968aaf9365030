/* kronvi curv: curvature products of a network's loss on a batch (docs/curv.md).
 *
 * Pearlmutter's R-operator through the layer kinds (kronvi/layer.h, rop_forward / rop_backward)
 * gives, at the cost of about one more forward and backward pass each, the exact Hessian-vector
 * product H v of the mean loss, the generalized Gauss-Newton product G v = J^T H_L J v, the
 * Fisher product (equal to G for softmax cross-entropy and the Gaussian likelihood, whose output
 * Fisher is their Hessian in the outputs), the empirical Fisher product and J v, J^T u. The
 * variables are the means and biases of the weight layers (a point network's weights; a
 * variational network's posterior means, with the noise off): every product and gradient is
 * zero elsewhere in the parameter block. Independent checks: the same network in first-order
 * polynomial (dual-number) arithmetic and by the complex step. The pullback sampling trick
 * estimates diag(G) for preconditioning. */
#ifndef KRONVI_CURV_H
#define KRONVI_CURV_H

#include "kronvi/models.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  KVI_LOSS_XENT = 0, /* softmax cross-entropy with integer labels */
  KVI_LOSS_SQUARED   /* Gaussian likelihood 1/2 beta ||y - t||^2 - K/2 log beta + K/2 log 2 pi */
} kvi_loss_kind;

/* A batch and its loss (a mean over the rows). The arrays are the caller's and must stay valid
 * while products refer to the batch. */
typedef struct {
  kvi_loss_kind loss;
  const kvi_real *X;     /* (B, in_size) */
  int batch;             /* B, at most the net's max_batch */
  const int32_t *labels; /* KVI_LOSS_XENT: (B) in [0, out_size) */
  const kvi_real *T;     /* KVI_LOSS_SQUARED: (B, out_size) targets */
  kvi_real log_beta;     /* KVI_LOSS_SQUARED: log precision, held fixed (0: beta = 1) */
  /* Proximal optimization (docs/curv.md, eq. P2): with fsd > 0 the loss gains fsd times the
   * function-space distance of the outputs z to anchor (B, out_size), a mean over the rows of
   * KL(softmax(anchor) || softmax(z)) (cross-entropy) or beta/2 ||z - anchor||^2 (squared). Its
   * output Hessian is the loss's own, so H_L becomes (1 + fsd) H_L in the products. The
   * reference evaluations (dual, complex step) have no such term. */
  const kvi_real *anchor;
  double fsd;
} kvi_curv_batch;

typedef struct kvi_curv kvi_curv;

/* A context for the products of net (every layer's kind needs the R-operator: the built-in
 * kinds have it; another kind fails with KVI_ERR_UNSUPPORTED). Buffers for net->max_batch rows
 * are allocated once. */
KVI_API kvi_status kvi_curv_create(kvi_curv **out, kvi_net *net);
KVI_API void kvi_curv_free(kvi_curv *c);
/* 1 for the variables of the products (elements of the means and biases of the weight layers),
 * 0 elsewhere: mask (net->params->n). */
KVI_API void kvi_curv_mask(const kvi_curv *c, kvi_real *mask);

/* The mean forward, the loss and, when g is not NULL, its gradient g (the block's layout, zero
 * outside the variables), at the current parameters. *correct (may be NULL) counts argmax hits
 * (cross-entropy). The products below are taken at the point of the last call with a gradient:
 * a call without gradient (a trial point of a line search) moves the net, and the next product
 * runs the forward and backward again at the then current parameters. */
KVI_API kvi_status kvi_curv_eval(kvi_curv *c, const kvi_curv_batch *b, double *loss, kvi_real *g,
                                 int *correct);
/* The outputs of the last forward (B, out_size). */
KVI_API const kvi_real *kvi_curv_outputs(const kvi_curv *c);

/* Products (the block's layout in and out; entries of v outside the variables are ignored). */
KVI_API kvi_status kvi_curv_jvp(kvi_curv *c, const kvi_real *v, kvi_real *Jv);  /* (B, out) */
KVI_API kvi_status kvi_curv_vjp(kvi_curv *c, const kvi_real *u, kvi_real *JTu); /* u (B, out) */
KVI_API kvi_status kvi_curv_hvp(kvi_curv *c, const kvi_real *v, kvi_real *Hv);
KVI_API kvi_status kvi_curv_gvp(kvi_curv *c, const kvi_real *v, kvi_real *Gv);
/* The Fisher product: the same as kvi_curv_gvp for both losses (their output Fisher is their
 * output Hessian). */
KVI_API kvi_status kvi_curv_fvp(kvi_curv *c, const kvi_real *v, kvi_real *Fv);
/* The empirical Fisher (1/B) sum_b grad l_b grad l_b^T v, from the labels' own gradients. */
KVI_API kvi_status kvi_curv_efvp(kvi_curv *c, const kvi_real *v, kvi_real *Fv);

/* Pullback sampling (docs/curv.md, eq. P1): S pseudo-gradients J^T u, u drawn with covariance
 * H_L (targets drawn from the model's predictive), so that their covariance is G; their mean
 * square estimates diag(G). diag <- ema * diag + (1 - ema) * estimate (ema 0: replaced). */
KVI_API kvi_status kvi_curv_diag_sample(kvi_curv *c, kvi_rng *rng, int samples, double ema,
                                        kvi_real *diag);

/* ---- independent evaluations (checks) ------------------------------------------------------
 * The network of the built-in kinds, its loss and its backward written again with plain loops
 * over first-order polynomials a + b eps (dual numbers) in double, parameters theta + eps v:
 * f, df = grad f . v, g = grad f, Hv = the eps part of the gradient, Jv = the eps part of the
 * outputs (B, out_size). Any output pointer may be NULL; v NULL means zero. */
KVI_API kvi_status kvi_curv_dual(const kvi_net *net, const kvi_curv_batch *b, const kvi_real *v,
                                 double *f, double *df, double *g, double *Hv, double *Jv);
/* J^T u by the same plain loops (u (B, out_size)). */
KVI_API kvi_status kvi_curv_dual_vjp(const kvi_net *net, const kvi_curv_batch *b, const double *u,
                                     double *JTu);
/* The complex step: the same loops in complex arithmetic at theta + i h v (h = 2^-50 when 0):
 * df = Im f / h, Hv = Im grad / h, Jv = Im outputs / h. Exact to rounding where the network is
 * analytic along the path (ELU, identity; the kinks of ReLU and max-pooling are taken at the
 * real part's branch, as the dual numbers do). */
KVI_API kvi_status kvi_curv_cstep(const kvi_net *net, const kvi_curv_batch *b, const kvi_real *v,
                                  double h, double *df, double *Hv, double *Jv);

#ifdef __cplusplus
}
#endif
#endif
