/* kronvi optim: optimizers as implementations of one interface (kvi_optimizer_ops) over a
 * parameter block. An optimizer keeps named state tensors of any number and shape; checkpoints
 * save and restore them by name without knowing the optimizer. docs/architecture.md shows how
 * to add one. */
#ifndef KRONVI_OPTIM_H
#define KRONVI_OPTIM_H

#include "kronvi/dist.h"
#include "kronvi/layer.h"
#include "kronvi/objective.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  KVI_OPT_ADAM = 0,
  KVI_OPT_SGD,
  KVI_OPT_KFAC,
  KVI_OPT_NOISY_KFAC,
  /* solvers on an objective (kronvi/objective.h, docs/curv.md): each step evaluates the batch
   * objective and its curvature products itself (kvi_optimizer_solve) */
  KVI_OPT_LBFGS,       /* L-BFGS, strong-Wolfe line search */
  KVI_OPT_NEWTON,      /* damped Newton (exact Hessian), Levenberg-Marquardt damping */
  KVI_OPT_LM,          /* Levenberg-Marquardt: damped Gauss-Newton */
  KVI_OPT_HF,          /* Hessian-free: preconditioned CG on the damped GGN */
  KVI_OPT_PROXIMAL,    /* K inner steps on loss + function- and weight-space distances */
  KVI_OPT_RIEMANN_SGD, /* Riemannian steps on the MN factors (src/optim/riemann.c, docs/geom.md) */
  KVI_OPT_RIEMANN_MOMENTUM,
  KVI_OPT_RIEMANN_ADAM,
  KVI_OPT_LIE_NGD /* Kronecker-of-triangular Lie-group NGD (src/optim/lie_ngd.c, docs/geom.md) */
} kvi_opt_kind;

/* K-FAC: where the G factor's output gradients come from. */
typedef enum {
  KVI_FISHER_SAMPLED = 0, /* targets sampled from the model's predictive, a second backward
                             (the pullback sampling trick): the true Fisher / Gauss-Newton */
  KVI_FISHER_EMPIRICAL    /* the training labels' gradients (no extra pass) */
} kvi_fisher_kind;

/* K-FAC: how the damping lambda enters (A (x) G + lambda I)^-1. */
typedef enum {
  KVI_DAMP_FACTORED = 0, /* (A + pi sqrt(lambda) I) (x) (G + sqrt(lambda)/pi I), the pi
                            correction of Martens & Grosse 2015, section 6.3 */
  KVI_DAMP_EXACT         /* A (x) G + lambda I exactly, in the factors' eigenbases */
} kvi_damping_kind;

typedef struct {
  kvi_opt_kind kind;
  double lr;
  double beta1, beta2, eps; /* Adam */
  double momentum;          /* SGD: heavy ball (0: plain SGD) */
  bool nesterov;            /* SGD: Nesterov's momentum */
  double weight_decay;      /* decoupled, x <- (1 - lr wd) x, applied to the views of role
                               KVI_ROLE_MEAN only (never to variances, Cholesky factors, biases,
                               prior or noise hyper-parameters) */
  /* K-FAC (src/optim/kfac.c, docs/kfac.md); momentum above applies to its step too */
  double damping;         /* lambda, the initial Tikhonov damping (1e-3) */
  double ema;             /* decay of the factors' moving averages (0.95) */
  int inverse_every;      /* inverses / eigenbases refreshed every T steps (20) */
  double kl_clip;         /* bound on lr^2 v^T F v of a step (1e-3; 0: off) */
  kvi_fisher_kind fisher; /* sampled targets (default) or empirical */
  kvi_damping_kind damping_kind;
  bool ekfac;       /* re-scaling in the Kronecker eigenbasis (George et al. 2018) */
  int adapt_every;  /* Levenberg-Marquardt adaptation of lambda every N steps (0: off) */
  double data_size; /* noisy-kfac: N, the training examples (set by the trainer, not saved) */
  /* solvers (docs/curv.md); damping above is their initial lambda, ema HF's diagonal EMA */
  int cg_max;       /* hf, and newton / lm above dense_max: CG iterations per step (250) */
  int dense_max;    /* newton / lm: dense Cholesky up to this many parameters (2000), CG above */
  int lbfgs_memory; /* lbfgs: (s, y) pairs kept (10) */
  int prox_steps;   /* proximal: K inner Adam steps per batch (5) */
  double prox_fsd;  /* proximal: lambda_FSD, weight of the outputs' KL to the last iterate (1) */
  double prox_wsd;  /* proximal: lambda_WSD of lambda_WSD / 2 ||w - w_k||^2 (1e-4) */
  bool hf_hessian;  /* hf: CG on the damped Hessian instead of the GGN */
} kvi_opt_config;

/* A state tensor: a name, a shape and data, e.g. Adam's first moment of view "fc0.M" is
 * "optim.m.fc0.M" of the view's shape. */
typedef struct {
  char name[96];
  int ndim;
  int64_t shape[KVI_MAX_DIMS];
  size_t size;    /* elements */
  kvi_real *data; /* owned by the optimizer */
  int view;       /* the parameter view it follows, or -1 */
} kvi_opt_state;

typedef struct kvi_optimizer kvi_optimizer;

typedef struct {
  const char *name; /* "adam", "sgd", "kfac" */
  /* Declares the state tensors for the parameter block p (kvi_optimizer_add_state...). */
  kvi_status (*init)(kvi_optimizer *o, const kvi_params *p);
  /* One step on p->data with gradient p->grad and learning rate lr (o->t already counts it). */
  kvi_status (*step)(kvi_optimizer *o, kvi_params *p, double lr);
  /* Optional, for optimizers that precondition per weight layer (NULL for the others). */
  /* The network's weight layers (kvi_net_dense order), after init: declares per-layer state. */
  kvi_status (*bind)(kvi_optimizer *o, const kvi_params *p, kvi_dense *const *w, int nw);
  /* The curvature pass this step needs: 0 none, 1 capture during the gradient's backward
   * (empirical Fisher), 2 a separate backward with targets sampled from the model. */
  int (*curvature_pass)(const kvi_optimizer *o);
  /* The capture observer (user: the optimizer) of that pass. */
  kvi_capture_fn observe;
  /* Levenberg-Marquardt: true when this step wants the batch loss after the step, then given
   * the loss before and after it. */
  bool (*wants_reduction)(const kvi_optimizer *o);
  void (*reduction)(kvi_optimizer *o, double before, double after);
  /* Solvers: one iteration on the objective f (f->x == p->data, f->n == p->n) instead of step;
   * the caller does not compute a gradient for them. Fills o->info. */
  kvi_status (*solve)(kvi_optimizer *o, kvi_params *p, double lr, kvi_objective *f);
  /* true: step leaves p->grad zero (every entry kvi_optimizer_walk visits; gradients never
   * write the upper triangle of a Cholesky view), fused into its pass over the block, so the
   * caller need not zero it before the next backward. */
  bool zeroes_grad;
  /* Optional: step with the KL gradients of DIAG ARD blocks added inside the update's own pass
   * (kvi_optimizer_step_ard); NULL: that call adds them in a pass of its own, then steps. */
  kvi_status (*step_ard)(kvi_optimizer *o, kvi_params *p, double lr, const kvi_ard_block *b,
                         int nb);
} kvi_optimizer_ops;

struct kvi_optimizer {
  const kvi_optimizer_ops *ops;
  kvi_opt_config cfg;
  int64_t t; /* steps taken */
  int nstate;
  kvi_opt_state *state;
  kvi_real *buffer[4]; /* per-parameter buffers of the block's layout (kvi_optimizer_buffer) */
  int nbuffer;
  size_t n;            /* elements of the block it was made for */
  kvi_solve_info info; /* solvers: what the last iteration did */
  void *impl;          /* an implementation's private data, freed by impl_free */
  void (*impl_free)(void *impl);
  kvi_comm *comm; /* the process group of a data-parallel run (NULL: one process; not owned).
                     K-FAC sums its statistics over it and spreads the factors' refresh */
};

KVI_API kvi_opt_config kvi_opt_config_default(kvi_opt_kind kind);
KVI_API kvi_status kvi_opt_parse(kvi_opt_kind *k, const char *s);
KVI_API const char *kvi_opt_name(kvi_opt_kind k);
/* The implementation of a kind (NULL if unknown). */
KVI_API const kvi_optimizer_ops *kvi_opt_ops(kvi_opt_kind k);

/* Creates the optimizer of cfg->kind for the block p. */
KVI_API kvi_status kvi_optimizer_init(kvi_optimizer *o, const kvi_opt_config *cfg,
                                      const kvi_params *p);
KVI_API void kvi_optimizer_free(kvi_optimizer *o);
/* One iteration of a solver (ops->solve) on f, whose point is p->data. KVI_ERR_ARG for an
 * optimizer without solve. */
KVI_API kvi_status kvi_optimizer_solve(kvi_optimizer *o, kvi_params *p, double lr,
                                       kvi_objective *f);
/* 1 if the kind is a solver (it needs kvi_optimizer_solve and an objective). */
KVI_API int kvi_opt_is_solver(kvi_opt_kind k);
/* Hands the optimizer the network's weight layers (a no-op for optimizers without bind). */
KVI_API kvi_status kvi_optimizer_bind(kvi_optimizer *o, const kvi_params *p, kvi_dense *const *w,
                                      int nw);
/* One step on the block (must be the block it was made for). */
KVI_API kvi_status kvi_optimizer_step(kvi_optimizer *o, kvi_params *p, double lr);
/* K-FAC: how many statistics, bases or steps were skipped for non-finite values. */
KVI_API int64_t kvi_kfac_skipped(const kvi_optimizer *o);
/* Riemannian optimizers: steps damped to the trust bound and factor steps rejected (non-finite
 * gradients or results); 0 for other optimizers. */
KVI_API int64_t kvi_riemann_damped(const kvi_optimizer *o);
KVI_API int64_t kvi_riemann_rejected(const kvi_optimizer *o);
/* lie-ngd: factor updates and preconditioned steps skipped for non-finite values. */
KVI_API int64_t kvi_lie_ngd_skipped(const kvi_optimizer *o);
/* The state tensor of that name, NULL if absent. */
KVI_API kvi_opt_state *kvi_optimizer_find_state(kvi_optimizer *o, const char *name);
/* Zeroes every state tensor and the step count (training restarts its moments). */
KVI_API void kvi_optimizer_reset(kvi_optimizer *o);

/* For implementations: a zeroed buffer of p->n elements laid out as the block, with one state
 * tensor "<prefix>.<view name>" per view pointing into it (the alignment gaps between views are
 * not part of any tensor). *buf receives the buffer. */
KVI_API kvi_status kvi_optimizer_add_buffer(kvi_optimizer *o, const kvi_params *p,
                                            const char *prefix, kvi_real **buf);
/* A free-form state tensor of any shape (e.g. a Kronecker factor), zeroed. */
KVI_API kvi_status kvi_optimizer_add_state(kvi_optimizer *o, const char *name, int ndim,
                                           const int64_t *shape, kvi_real **data);

/* kvi_optimizer_step, with the KL gradients of the blocks b[0..nb) added to the gradient before
 * it is used (and their KLs written), for any optimizer; fused into the update where the
 * optimizer implements step_ard (Adam). The result is the same as adding the gradient by
 * kvi_diag_kl_ard and then stepping. */
KVI_API kvi_status kvi_optimizer_step_ard(kvi_optimizer *o, kvi_params *p, double lr,
                                          const kvi_ard_block *b, int nb);

/* Walks the block in chunks for an elementwise update: fn(ctx, off, len, role) for runs of
 * elements of one view (a Cholesky view only over its lower triangle, row by row: its strict
 * upper triangle is never read, stays zero and has zero gradient). Chunks of 16384 elements are
 * numbered in order and thread t of nt runs the chunks c with c % nt == t, so the result does
 * not depend on the thread count. Parallel above 2^18 elements. */
typedef void (*kvi_opt_run_fn)(void *ctx, size_t off, size_t len, kvi_role role);
KVI_API void kvi_optimizer_walk(const kvi_params *p, kvi_opt_run_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
