/* kronvi models: a sequential network built from an architecture string, with its parameters in
 * one flat buffer and its activations in one arena. */
#ifndef KRONVI_MODELS_H
#define KRONVI_MODELS_H

#include "kronvi/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { KVI_LAYER_DENSE = 0, KVI_LAYER_ACT, KVI_LAYER_CONV, KVI_LAYER_POOL } kvi_layer_kind;

typedef struct {
  kvi_layer_kind kind;
  kvi_dense dense; /* KVI_LAYER_DENSE */
  kvi_act act;     /* KVI_LAYER_ACT */
  kvi_conv conv;   /* KVI_LAYER_CONV (its weight matrix is conv.d) */
  kvi_pool pool;   /* KVI_LAYER_POOL */
  int in_size;     /* per-example input size */
  int out_size;    /* per-example output size */
} kvi_layer;

typedef struct {
  kvi_family family;
  kvi_prior prior;
  double prior_var; /* KVI_PRIOR_FIXED */
  kvi_act act;      /* between dense layers */
  bool bias;
  double init_log_sigma; /* initial log of the posterior standard deviation of every weight */
  int in_h, in_w;        /* convolutional nets: input image height and width (0: square,
                            inferred from the input size and the channel count) */
  double input_mean, input_std; /* images were normalized x <- (x - mean) / std before training
                                   (kronvi train --normalize; std 0: not normalized). Recorded
                                   for callers, which apply it to new inputs: the net does not. */
} kvi_net_config;

KVI_API kvi_net_config kvi_net_config_default(void);

typedef struct kvi_net {
  char arch[256];
  kvi_net_config cfg;
  int nlayers;
  kvi_layer *layers;
  kvi_params params;
  int in_size, out_size;
  int max_batch;
  /* per layer i: input acts[i] (B, in), output acts[i+1]; grads likewise; ws and noise */
  kvi_arena *arena;
  kvi_real **acts, **grads, **noise;
  void **ws;
  kvi_real log_beta; /* regression: log noise precision of the Gaussian likelihood */
  int noisy;         /* the last forward sampled weights (1) or used the means (0) */
} kvi_net;

/* Builds the network described by arch with parameters initialized from seed.
 * MLP: "784-300-300-10", the sizes of the dense layers' inputs and outputs (the first must equal
 * in_size when in_size > 0).
 * Convolutional: "1-10-mp-20-mp-40-mp-80-mp-flatten-10" (the paper's notation with or without
 * parentheses, "1-10-(mp)-20-...-(flatten)-10", is accepted): the first number is the input
 * channel count; before "flatten" a number C is a convolution with C filters (3x3, stride 1,
 * same padding; "Ck5s2p0" sets kernel, stride and padding), "mp" is 2x2 max-pooling; after
 * "flatten" numbers are dense layer outputs. The activation follows every convolution and
 * every dense layer but the last. Images are HWC, of cfg->in_h x cfg->in_w (or square). */
KVI_API kvi_status kvi_net_create(kvi_net **out, const char *arch, int in_size,
                                  const kvi_net_config *cfg, int max_batch, uint64_t seed);
KVI_API void kvi_net_free(kvi_net *net);
/* 1 if arch describes a convolutional net (has "mp", "flatten" or kernel options), else 0. */
KVI_API int kvi_arch_is_conv(const char *arch);
/* A max_batch for training with mini-batches of `batch`: large chunks for fast MLP evaluation,
 * the batch itself for convolutional nets (whose workspaces grow with the image size). */
KVI_API int kvi_net_pick_max_batch(const char *arch, int batch);
/* Forward of a batch X (B, in_size), B <= max_batch. rng: noise for the local
 * reparameterization (weights sampled); NULL: posterior means. *out points to (B, out_size). */
KVI_API kvi_status kvi_net_forward(kvi_net *net, const kvi_real **out, const kvi_real *X, int batch,
                                   kvi_rng *rng);
/* Backward from dOut (B, out_size) of the last forward: adds parameter gradients. */
KVI_API kvi_status kvi_net_backward(kvi_net *net, const kvi_real *dOut, int batch);
/* Sum of the layers' KL terms; adds gscale * dKL to the gradients. */
KVI_API kvi_status kvi_net_kl(kvi_net *net, double *kl, kvi_real gscale);
/* Exact updates of group-ARD precisions of all layers. */
KVI_API kvi_status kvi_net_prior_update(kvi_net *net);
KVI_API size_t kvi_net_param_count(const kvi_net *net);  /* of the variational family */
KVI_API size_t kvi_net_weight_count(const kvi_net *net); /* weights (entries of the W's) */
/* The k-th weight matrix (dense layers and the weights of convolutions, in order); *count
 * receives their number. */
KVI_API kvi_dense *kvi_net_dense(kvi_net *net, int k, int *count);
/* The layer (index into net->layers) that owns the k-th weight matrix, -1 if none. */
KVI_API int kvi_net_weight_layer(const kvi_net *net, int k);

#ifdef __cplusplus
}
#endif
#endif
