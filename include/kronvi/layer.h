/* kronvi layer interface: every layer kind (dense, conv, pool, act, flatten, ...) implements one
 * ops table, and a network dispatches through it (docs/architecture.md shows how to add one).
 *
 * A layer maps a mini-batch X (B, in_size) row-major to Y (B, out_size). Its state is per kind
 * (L->state: a kvi_dense for dense layers, a kvi_conv for convolutions, ...). Parameters live in
 * the model's kvi_params block; a layer keeps view indices into it. Temporaries live in a
 * workspace of ws_size bytes carved by the network from its arena: nothing is allocated in
 * forward or backward. */
#ifndef KRONVI_LAYER_H
#define KRONVI_LAYER_H

#include "kronvi/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Shape of one example's activation: an h x w x c image (HWC) or a vector of c (h = w = 1). */
typedef struct {
  int h, w, c;
  bool image; /* false for tabular inputs and after "flatten" */
} kvi_shape;

static inline int kvi_shape_size(kvi_shape s) { return s.h * s.w * s.c; }

typedef struct kvi_layer kvi_layer;

/* ---- curvature capture --------------------------------------------------------------------
 * A weight layer Y = X W + b (a convolution: cols W + b over the im2col patches) hands an
 * attached observer, in its backward pass, the two ingredients of the Kronecker factors
 * A = E[a a^T], G = E[g g^T] (Martens & Grosse 2015; Grosse & Martens 2016 for convolutions):
 * its input rows a (with an implicit trailing column of ones when the layer has a bias) and the
 * gradient rows g of the minimized loss with respect to its outputs. The pointers are the
 * layer's own buffers (no copies); they are valid only during the call. */
typedef struct {
  const char *layer; /* layer name, e.g. "conv0" */
  int weight;        /* index of the weight matrix in the network (kvi_net_dense order) */
  int batch;         /* examples in the batch (in this process) */
  int rows;          /* rows of in and grad_out: batch (dense), batch * oh * ow (conv) */
  int n, m;          /* W is n x m: in is (rows, n), grad_out is (rows, m) */
  bool bias;         /* true: each input row continues with an implicit 1 (the bias column) */
  bool sampled;      /* the forward used sampled weights (false: the means) */
  const kvi_real *in;
  const kvi_real *grad_out;
  int batch_total; /* examples in the whole batch of a data-parallel step, over every process
                      (docs/distributed.md): the grad_out rows carry 1 / batch_total; batch in a
                      single process */
} kvi_capture_rows;

typedef kvi_status (*kvi_capture_fn)(void *user, const kvi_capture_rows *rows);

/* The (n+1) x (n+1) (n x n without bias) matrix scale * [a 1]^T [a 1] summed over the rows,
 * added into A (full symmetric), and the m x m matrix scale * g^T g added into G: the raw sums
 * that K-FAC averages. A or G may be NULL. */
KVI_API void kvi_capture_accumulate(kvi_real *A, kvi_real *G, const kvi_capture_rows *r,
                                    kvi_real scale);

/* ---- one call of forward or backward ----------------------------------------------------- */
typedef struct {
  kvi_params *params;
  void *ws;                /* ws_size(batch) bytes, 64-byte aligned; backward gets the forward's */
  int batch;               /* rows of X */
  const kvi_real *X;       /* (B, in_size): forward input (backward: the same input) */
  kvi_real *Y;             /* (B, out_size): forward output (backward: the forward's output) */
  const kvi_real *eps;     /* noise_size(batch) standard normals: the sampled forward; NULL: the
                              forward with the posterior means (the mean network) */
  const kvi_real *dY;      /* backward: gradient of the output */
  kvi_real *dX;            /* backward: written when not NULL (NULL for the first layer) */
  kvi_capture_fn observer; /* backward of weight layers: NULL when nothing is attached */
  void *observer_user;
  int weight;      /* index of this layer's weight matrix (capture) */
  int batch_total; /* backward: examples of the whole data-parallel batch (capture); 0: batch */
} kvi_layer_call;

/* What a kind's create gets: the input shape, the architecture token and the network's
 * defaults. name is the parameter prefix chosen by the network ("fc0", "enc.conv1"). */
typedef struct {
  kvi_shape in;
  const char *token; /* the architecture token without parentheses ("32k5s2p0", "mp") */
  const char *name;
  kvi_params *params;
  kvi_family family;
  kvi_prior prior;
  double prior_var;
  bool bias;
  kvi_act act; /* activation kinds: which one */
} kvi_layer_args;

/* ---- one call of the R-operator ---------------------------------------------------------
 * R{z} = d/dt z(theta + t V, X + t RX) at t = 0 for every quantity z of a forward and backward
 * pass. The direction and the R-gradient share the parameter block's layout: dir->data holds V
 * and dir->grad receives R{gradient} (a kvi_params copied from the net's with the two pointers
 * replaced). Only views of role KVI_ROLE_MEAN and KVI_ROLE_BIAS of weight layers are read or
 * written: the curvature is that of the mean network in its means and biases. */
typedef struct kvi_rop_call {
  const kvi_params *dir; /* V (dir->data) and R{gradient} (dir->grad, added) */
  const kvi_real *RX;    /* (B, in_size): R{X}; NULL: zero (the data) */
  kvi_real *RY;          /* (B, out_size): written by rop_forward, read by rop_backward */
  const kvi_real *RdY;   /* backward: R{dY} (B, out_size) */
  kvi_real *RdX;         /* backward: R{dX} (B, in_size), written when not NULL */
  void *rws;             /* rop_ws_size(batch) bytes, 64-byte aligned; the backward gets the
                            forward's */
} kvi_rop_call;

typedef struct kvi_layer_ops {
  const char *kind;   /* "dense", "conv", "pool", "act", "flatten" */
  const char *prefix; /* parameter names "<prefix><k>" of weight layers ("fc", "conv"); NULL */
  /* Architecture grammar: 1 if token names this kind for an input of shape in. */
  int (*match)(const char *token, const kvi_shape *in);
  /* Checks the token and the input shape (an error names both), declares parameters, sets
   * L->state (allocated with calloc; freed with free) and L->out. */
  kvi_status (*create)(kvi_layer *L, const kvi_layer_args *a);
  /* Initial parameter values (NULL: no parameters). */
  void (*init)(const kvi_layer *L, kvi_params *p, kvi_rng *rng, double gain, double init_log_sigma);
  size_t (*ws_size)(const kvi_layer *L, int batch);    /* NULL: none */
  size_t (*noise_size)(const kvi_layer *L, int batch); /* NULL: deterministic */
  /* The layout of the noise, which a data-parallel step relies on: noise_size(batch) is
   * batch * noise_size(1), in noise_parts (NULL: 1) consecutive parts of batch * noise_size(1) /
   * noise_parts normals each, every part example-major (the rows of example e together, after
   * those of example e - 1). */
  int (*noise_parts)(const kvi_layer *L);
  kvi_status (*forward)(const kvi_layer *L, const kvi_layer_call *c);
  /* Adds parameter gradients (of the forward's kind: sampled or mean), writes dX if wanted. */
  kvi_status (*backward)(const kvi_layer *L, const kvi_layer_call *c);
  /* The weight matrix with its posterior and prior: parameter views (M, A, B, log_sigma, b,
   * prior precisions), log alpha, pruning. NULL for kinds without weights. */
  kvi_dense *(*weights)(const kvi_layer *L);
  /* KL(q || prior) of the layer's weights; adds gscale * dKL to the gradients. NULL: no KL. */
  kvi_status (*kl)(const kvi_layer *L, kvi_params *p, double *kl, kvi_real gscale);
  /* Pearlmutter's R-operator (docs/curv.md), NULL for a kind without it. It differentiates the
   * mean forward (c->eps NULL; a sampled forward is refused) along a parameter direction V of
   * the means and biases (r->dir) and an input direction RX: rop_ws_size bytes of temporaries,
   * rop_forward writes R{Y}, rop_backward (after a backward of the same forward, c->dY its
   * output gradient) writes R{dX} and adds R{gradient} of the means and biases. */
  size_t (*rop_ws_size)(const kvi_layer *L, int batch); /* NULL: none */
  kvi_status (*rop_forward)(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);
  kvi_status (*rop_backward)(const kvi_layer *L, const kvi_layer_call *c, const kvi_rop_call *r);
} kvi_layer_ops;

struct kvi_layer {
  const kvi_layer_ops *ops;
  void *state;
  char name[48];
  kvi_shape in, out;
  int in_size, out_size;
};

/* The kinds every network knows (src/nn/layer.c holds the registry). */
KVI_API extern const kvi_layer_ops kvi_dense_ops, kvi_conv_ops, kvi_pool_ops, kvi_act_ops,
    kvi_flatten_ops;
/* Registered kinds in match order; *count receives their number. */
KVI_API const kvi_layer_ops *const *kvi_layer_kinds(int *count);
/* The first registered kind whose match accepts token for input in, or NULL. */
KVI_API const kvi_layer_ops *kvi_layer_kind_for(const char *token, const kvi_shape *in);
/* Registers an extra kind (a program's own layer) ahead of the built-in ones; at most 16. */
KVI_API kvi_status kvi_layer_register(const kvi_layer_ops *ops);

/* Helpers for weight layers built on kvi_dense. */
KVI_API kvi_status kvi_layer_weights_kl(const kvi_layer *L, kvi_params *p, double *kl,
                                        kvi_real gscale);
/* Hands the observer the rows of a weight layer (no-op when c->observer is NULL). */
KVI_API kvi_status kvi_layer_capture(const kvi_layer *L, const kvi_layer_call *c,
                                     const kvi_real *in, const kvi_real *grad_out, int rows);

#ifdef __cplusplus
}
#endif
#endif
