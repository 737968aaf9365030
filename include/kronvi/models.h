/* kronvi models: networks of layers (kronvi/layer.h) built from an architecture string or the
 * builder API, and models that hold several networks over one parameter block (an encoder and a
 * decoder; a point network and the posterior built around its weights). docs/models.md has the
 * grammar, docs/architecture.md the interfaces. */
#ifndef KRONVI_MODELS_H
#define KRONVI_MODELS_H

#include "kronvi/layer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  kvi_family family;
  kvi_prior prior;
  double prior_var; /* KVI_PRIOR_FIXED */
  kvi_act act;      /* inserted after every weight layer but the last */
  bool bias;
  double init_log_sigma; /* initial log of the posterior standard deviation of every weight */
  int in_h, in_w;        /* convolutional nets: input image height and width (0: square,
                            inferred from the input size and the channel count) */
  double input_mean, input_std; /* images were normalized x <- (x - mean) / std before training
                                   (kronvi train --normalize; std 0: not normalized). Recorded
                                   for callers, which apply it to new inputs: the net does not. */
  bool noise_param;  /* regression: the net owns the learnable log precision of its Gaussian
                        likelihood, the view "<name>noise.log_precision" (role KVI_ROLE_NOISE) */
  double max_memory; /* refuse a net whose estimated memory exceeds this many bytes (0: the
                        machine's physical memory; < 0: no check) */
} kvi_net_config;

KVI_API kvi_net_config kvi_net_config_default(void);

typedef struct kvi_net {
  char arch[256];
  char id[16];   /* its name in a model ("" for a single net) */
  char name[32]; /* parameter name prefix ("" for a single net, "enc." in a model) */
  kvi_net_config cfg;
  int nlayers;
  kvi_layer *layers;
  kvi_params *params; /* the parameter block: the model's, or own for a single net */
  kvi_params own;
  kvi_shape in_shape;
  int in_size, out_size;
  int max_batch;
  int inoise; /* view index of the noise log precision, -1 when none */
  /* per layer i: input acts[i] (B, in), output acts[i+1]; grads likewise; ws and noise */
  kvi_arena *arena;
  kvi_real **acts, **grads, **noise;
  void **ws;
  int noisy;               /* the last forward sampled weights (1) or used the means (0) */
  kvi_capture_fn observer; /* curvature capture (kvi_net_set_observer); NULL: none */
  void *observer_user;
  int batch_total; /* rows of the whole batch the last forward was part of (kvi_net_forward_rows) */
  kvi_status (*grad_hook)(void *user, int layer); /* kvi_net_set_grad_hook; NULL: none */
  void *grad_hook_user;
} kvi_net;

/* Builds the network described by arch with parameters initialized from seed.
 * MLP: "784-300-300-10", the sizes of the dense layers' inputs and outputs (the first must equal
 * in_size when in_size > 0).
 * Convolutional: "1-10-mp-20-mp-40-mp-80-mp-flatten-10" (the paper's notation with or without
 * parentheses, "1-10-(mp)-20-...-(flatten)-10", is accepted): the first number is the input
 * channel count; before "flatten" a number C is a convolution with C filters (3x3, stride 1,
 * same padding; "Ck5s2p0" sets kernel, stride and padding), "mp" is 2x2 max-pooling; after
 * "flatten" numbers are dense layer outputs. cfg->act follows every weight layer but the last
 * (unless an explicit "elu"/"relu" token does). Images are HWC, of cfg->in_h x cfg->in_w (or
 * square). Tokens of registered kinds (kvi_layer_register) are accepted too. */
KVI_API kvi_status kvi_net_create(kvi_net **out, const char *arch, int in_size,
                                  const kvi_net_config *cfg, int max_batch, uint64_t seed);
KVI_API void kvi_net_free(kvi_net *net);
/* 1 if arch describes a convolutional net (has "mp", "flatten" or kernel options), else 0. */
KVI_API int kvi_arch_is_conv(const char *arch);
/* A max_batch for training with mini-batches of `batch`: large chunks for fast MLP evaluation,
 * the batch itself for convolutional nets (whose workspaces grow with the image size). */
KVI_API int kvi_net_pick_max_batch(const char *arch, int batch);
/* Estimated bytes of a net before it is built: parameters, gradients and two optimizer moments,
 * activations, gradients, workspaces and noise for max_batch rows. */
KVI_API kvi_status kvi_net_estimate_memory(double *bytes, const char *arch, int in_size,
                                           const kvi_net_config *cfg, int max_batch);
/* Forward of a batch X (B, in_size), B <= max_batch. rng: noise for the local
 * reparameterization (weights sampled); NULL: posterior means. *out points to (B, out_size). */
KVI_API kvi_status kvi_net_forward(kvi_net *net, const kvi_real **out, const kvi_real *X, int batch,
                                   kvi_rng *rng);
/* The forward of rows [row0, row0 + batch) of a batch of batch_total rows, as one process of a
 * data-parallel step runs it (docs/distributed.md): each layer gets exactly the normals that
 * kvi_net_forward(net, ., X_total, batch_total, rng) draws for those rows (the layers' noise is
 * example-major, kronvi/layer.h), and rng advances as it would. kvi_net_forward is this with
 * row0 = 0, batch_total = batch. */
KVI_API kvi_status kvi_net_forward_rows(kvi_net *net, const kvi_real **out, const kvi_real *X,
                                        int batch, kvi_rng *rng, int64_t row0, int batch_total);
/* The mean-weight forward of layers [first, nlayers) of `batch` rows, from the input of layer
 * `first` that the caller wrote into net->acts[first] (first > 0: the net's own buffer; e.g. a
 * first layer's output drawn otherwise). *out points to (B, out_size). */
KVI_API kvi_status kvi_net_forward_from(kvi_net *net, const kvi_real **out, int first, int batch);
/* Backward from dOut (B, out_size) of the last forward: adds parameter gradients. */
KVI_API kvi_status kvi_net_backward(kvi_net *net, const kvi_real *dOut, int batch);
/* As kvi_net_backward, and the gradient with respect to the net's input too: *dX points to
 * (B, in_size) in the net's own buffers, valid until its next pass (a decoder's dz). */
KVI_API kvi_status kvi_net_backward_input(kvi_net *net, const kvi_real *dOut, int batch,
                                          const kvi_real **dX);
/* Attaches fn (NULL detaches): every backward calls fn(user, i) once layer i's parameter
 * gradients are complete, from the last layer to the first (a data-parallel step starts
 * summing them over the processes while the layers below still run). A status other than
 * KVI_OK ends the backward with it. */
KVI_API void kvi_net_set_grad_hook(kvi_net *net, kvi_status (*fn)(void *user, int layer),
                                   void *user);
/* Sum of the layers' KL terms; adds gscale * dKL to the gradients. */
KVI_API kvi_status kvi_net_kl(kvi_net *net, double *kl, kvi_real gscale);
/* kvi_net_kl in two parts, for kvi_optimizer_step_ard: layer_kl[i] (net->nlayers entries) gets
 * layer i's KL, computed now with its gradient for every layer except those whose KL the
 * optimizer's step can take (kvi_net_ard_block), which become blocks b[0..*nb) (room for
 * net->nlayers) whose KL the optimizer step writes into layer_kl. Sum layer_kl after the step
 * for kvi_net_kl's value. */
KVI_API kvi_status kvi_net_kl_split(kvi_net *net, double *layer_kl, kvi_real gscale,
                                    kvi_ard_block *b, int *nb);
/* Whether layer i's KL and its gradient can be left to kvi_optimizer_step_ard, and then its
 * block in *b (KL output kl): DIAG layers under the per-weight ARD prior that are
 * kvi_diag_kl_ard_fusable, and MN layers under the per-weight ARD prior. */
KVI_API bool kvi_net_ard_block(kvi_net *net, int i, kvi_real gscale, double *kl, kvi_ard_block *b);
/* Exact updates of group-ARD precisions of all layers. */
KVI_API kvi_status kvi_net_prior_update(kvi_net *net);
KVI_API size_t kvi_net_param_count(const kvi_net *net);  /* of the variational family */
KVI_API size_t kvi_net_weight_count(const kvi_net *net); /* weights (entries of the W's) */
/* The k-th weight matrix (of the layers whose kind has weights, in order); *count receives their
 * number. */
KVI_API kvi_dense *kvi_net_dense(kvi_net *net, int k, int *count);
/* The layer (index into net->layers) that owns the k-th weight matrix, -1 if none. */
KVI_API int kvi_net_weight_layer(const kvi_net *net, int k);
/* Attaches fn (NULL detaches): every backward hands it each weight layer's input rows and output
 * gradient rows (kvi_capture_rows). Nothing is done or copied when none is attached. */
KVI_API void kvi_net_set_observer(kvi_net *net, kvi_capture_fn fn, void *user);
/* Regression: the log precision of the Gaussian likelihood (0 when the net has none). */
KVI_API kvi_real kvi_net_log_beta(const kvi_net *net);
KVI_API void kvi_net_set_log_beta(kvi_net *net, kvi_real log_beta);

/* ---- builder: the architecture grammar from C ------------------------------------------- */
typedef struct {
  char arch[256];
  kvi_status status; /* the first error (the calls after it do nothing) */
  char message[200]; /* its message, repeated by kvi_builder_arch */
} kvi_net_builder;

/* in_channels: input channels of an image net, or the input size of a vector net. */
KVI_API void kvi_builder_begin(kvi_net_builder *b, int in_channels);
KVI_API void kvi_builder_dense(kvi_net_builder *b, int outputs);
KVI_API void kvi_builder_conv(kvi_net_builder *b, int filters, int kernel, int stride, int pad);
KVI_API void kvi_builder_pool(kvi_net_builder *b);
KVI_API void kvi_builder_flatten(kvi_net_builder *b);
KVI_API void kvi_builder_act(kvi_net_builder *b, kvi_act act);
/* Any token of the grammar, e.g. a registered kind's. */
KVI_API void kvi_builder_token(kvi_net_builder *b, const char *token);
/* The architecture string (for kvi_net_create or kvi_model_add_net), or the first error. */
KVI_API kvi_status kvi_builder_arch(const kvi_net_builder *b, const char **arch);

/* ---- models: several networks over one parameter block --------------------------------- */
#define KVI_MODEL_MAX_NETS 8

typedef struct kvi_model {
  kvi_params params;
  int nnets;
  kvi_net *nets[KVI_MODEL_MAX_NETS];
  bool ready; /* kvi_model_finish done */
} kvi_model;

KVI_API kvi_status kvi_model_create(kvi_model **out);
/* Declares a network named name (at most 15 characters, no '.') whose parameters are named
 * "<name>.<layer>.<param>" (name "" gives plain layer names). If the declaration fails, the
 * views it added are dropped. */
KVI_API kvi_status kvi_model_add_net(kvi_model *m, kvi_net **net, const char *name,
                                     const char *arch, int in_size, const kvi_net_config *cfg,
                                     int max_batch);
/* As kvi_model_add_net, but the parameters are named as those of the net params_of (already
 * added): views of equal name, shape and role are shared, the others are added. E.g. net "mn"
 * over the point net "point" with the same dense layers shares its means and biases. */
KVI_API kvi_status kvi_model_add_net_over(kvi_model *m, kvi_net **net, const char *name,
                                          const char *params_of, const char *arch, int in_size,
                                          const kvi_net_config *cfg, int max_batch);
/* Allocates the block, every net's activations, and initializes the parameters from seed
 * (net k draws from its own stream; shared views get the last net's values). */
KVI_API kvi_status kvi_model_finish(kvi_model *m, uint64_t seed);
KVI_API kvi_net *kvi_model_net(const kvi_model *m, const char *name); /* NULL: absent */
KVI_API void kvi_model_free(kvi_model *m);

/* ---- variational auto-encoder (src/models/vae*.c, docs/vae.md) ---------------------------
 * A model of two point-estimated nets over one block: the encoder "enc" maps an image x (D
 * pixels in {0, 1}) to the parameters of q(z | x), the decoder "dec" maps a latent code z (|z| =
 * d) to the logits of a Bernoulli likelihood p(x | z); the prior is N(0, I). */
typedef enum { KVI_VAE_DIAG = 0, KVI_VAE_MN, KVI_VAE_MV } kvi_vae_family;
#define KVI_VAE_MAX_LATENT 512
#define KVI_VAE_MAX_SAMPLES 10000000 /* importance samples per image */

KVI_API const char *kvi_vae_family_name(kvi_vae_family f); /* "diag", "mn", "mv" */
KVI_API kvi_status kvi_vae_family_parse(kvi_vae_family *f, const char *s);

/* The encoder head: how the encoder's outputs for one example (kvi_vae_head_size of them)
 * parameterize q(z | x). Triangles are stored row by row with their diagonal as logs:
 *   DIAG  N(mu, diag sigma^2):   [mu (d), log sigma (d)]
 *   MN    z a p x q matrix (row-major), MN(M, A A^T, B B^T):
 *                                [M (p q), A's lower triangle (p(p+1)/2), B's (q(q+1)/2)]
 *   MV    N(mu, L L^T):          [mu (d), L's lower triangle (d(d+1)/2)]
 * The per-example functions below take a scratch arena for temporaries (reset before they
 * return; NULL: the heap); gradients are added into dout (the gradient w.r.t. out). */
typedef struct {
  kvi_vae_family family;
  int d;    /* |z| */
  int p, q; /* MN: z is p x q, p q = d; DIAG and MV: d x 1 */
} kvi_vae_head;

/* Checks the sizes (MN: p q must equal d). */
KVI_API kvi_status kvi_vae_head_init(kvi_vae_head *h, kvi_vae_family f, int d, int p, int q);
KVI_API int kvi_vae_head_size(const kvi_vae_head *h);
/* z = the reparameterized sample for the standard normals eps (d): mu + sigma eps,
 * M + A E B^T, mu + L eps. */
KVI_API kvi_status kvi_vae_head_sample(const kvi_vae_head *h, kvi_real *z, const kvi_real *out,
                                       const kvi_real *eps, kvi_arena *scratch);
/* dout += the gradient w.r.t. out of <dz, z(out, eps)>. */
KVI_API kvi_status kvi_vae_head_sample_backward(const kvi_vae_head *h, kvi_real *dout,
                                                const kvi_real *dz, const kvi_real *out,
                                                const kvi_real *eps, kvi_arena *scratch);
/* KL(q(z | x) || N(0, I)); dout (may be NULL) += gscale * dKL/dout. */
KVI_API kvi_status kvi_vae_head_kl(const kvi_vae_head *h, double *kl, kvi_real *dout,
                                   kvi_real gscale, const kvi_real *out, kvi_arena *scratch);
/* Entropy of q(z | x): d/2 (1 + log 2 pi) + log|det| of the sampling map (kvi_vae_head_logdet). */
KVI_API kvi_status kvi_vae_head_entropy(const kvi_vae_head *h, double *ent, const kvi_real *out,
                                        kvi_arena *scratch);
/* log q(z | x) at any z, by the family's density in src/prob. */
KVI_API kvi_status kvi_vae_head_log_q(const kvi_vae_head *h, double *lq, const kvi_real *z,
                                      const kvi_real *out, kvi_arena *scratch);
/* log|det| of the sampling map eps -> z: sum log sigma; q sum log A_ii + p sum log B_jj;
 * sum log L_ii. */
KVI_API double kvi_vae_head_logdet(const kvi_vae_head *h, const kvi_real *out);
/* log q(z | x) of the sample z drawn from eps: log N(eps; 0, I) - logdet (no solve needed). */
KVI_API double kvi_vae_head_log_q_eps(const kvi_vae_head *h, const kvi_real *out,
                                      const kvi_real *eps);
/* The mean of q(z | x) (mu or M). */
KVI_API void kvi_vae_head_mean(const kvi_vae_head *h, kvi_real *z, const kvi_real *out);

typedef struct {
  kvi_vae_head head;
  int in_size;        /* D, pixels per image (784) */
  int in_h, in_w;     /* the images' shape, for pictures (28 x 28; 0: unknown) */
  int hidden, layers; /* hidden layers of each net and their width (3 of 300) */
  kvi_act act;        /* activation after every hidden layer (ELU) */
} kvi_vae_config;

/* DIAG, |z| = 40, 784 = 28 x 28 inputs, 3 hidden layers of 300 ELU units. */
KVI_API kvi_vae_config kvi_vae_config_default(void);

typedef struct kvi_vae {
  kvi_vae_config cfg;
  kvi_model *model;   /* the nets "enc" (D -> head) and "dec" (d -> D) over one block */
  kvi_net *enc, *dec; /* (the model's) */
  int hsize;          /* head outputs per example */
  int dpad;           /* d rounded up to a multiple of 4: the stride of the noise rows */
  int max_batch;      /* images per encoder pass */
  int max_rows;       /* latent codes per decoder pass (>= max_batch) */
  kvi_arena *scratch; /* head temporaries */
  /* a training batch runs in parts of rows on the threads, each on its own arena (created on
   * first use) */
#define KVI_VAE_MAX_THREADS 64
  kvi_arena *tscratch[KVI_VAE_MAX_THREADS];
  kvi_real *eps, *z; /* (max_rows, dpad), (max_rows, d) */
  kvi_real *dout;    /* (max_rows, D): gradient of the logits; (max_batch, hsize) of the head */
  kvi_real *dhead;
  double *acc; /* per-image accumulators (5 max_batch): kvi_vae_iwae's, a batch's terms */
} kvi_vae;

/* Sums over the images of a batch (one z per image). ELBO = rec - kl. */
typedef struct {
  double rec; /* sum of log p(x | z), z ~ q(z | x) */
  double kl;  /* sum of KL(q(z | x) || N(0, I)) */
} kvi_vae_sums;

/* Builds the nets "enc" (D-h-...-h-head) and "dec" (d-h-...-h-D) of point weights and
 * initializes them from seed. max_batch: images per training step (the nets hold activations
 * for max(max_batch, 1000) rows, which evaluation uses). */
KVI_API kvi_status kvi_vae_create(kvi_vae **out, const kvi_vae_config *cfg, int max_batch,
                                  uint64_t seed);
KVI_API void kvi_vae_free(kvi_vae *v);
/* KVI_ERR_ARG, naming the row, column and value, unless every x is exactly 0 or 1. */
KVI_API kvi_status kvi_vae_check_binary(const kvi_real *X, int64_t n, int d, const char *what);
/* sum_i x_i l_i - log(1 + e^{l_i}) (double accumulation, stable for any l); dlogits (may be
 * NULL) += gscale * (x - sigmoid(l)). */
KVI_API double kvi_bernoulli_log_lik(const kvi_real *x, const kvi_real *logits, int n,
                                     kvi_real *dlogits, kvi_real gscale);
/* One mini-batch X (b, D), b <= max_batch: encoder, z = sample(eps), eps ~ rng (b dpad normals),
 * decoder, sums of log p(x | z) and KL. grad: adds to the block's gradient the gradient of
 * loss = -(1/b) sum_images [log p(x | z) - kl_weight KL] (the backward runs through the decoder,
 * the head and the encoder). */
KVI_API kvi_status kvi_vae_batch(kvi_vae *v, kvi_vae_sums *out, const kvi_real *X, int b,
                                 kvi_rng *rng, double kl_weight, bool grad);
/* Per image i of X (n, D): the importance-weighted estimate of log p(x) with k samples,
 *   ll[i] = log (1/k) sum_r p(x | z_r) p(z_r) / q(z_r | x),  z_r ~ q(z | x),
 * and elbo[i] = (1/k) sum_r log p(x | z_r) - KL(q(z | x) || N(0, I)) from the same samples
 * (either output may be NULL). The noise of sample r of image i is block r ceil(d/4) onwards
 * of the stream (seed, first + i): the results depend on neither the chunking nor the thread
 * count, and a subset of the images (first > 0) gets the same numbers. k = 1 gives the
 * one-sample ELBO in both. */
KVI_API kvi_status kvi_vae_iwae(kvi_vae *v, double *ll, double *elbo, const kvi_real *X, int64_t n,
                                int k, uint64_t seed, int64_t first);
/* Z (n, d) = the means of q(z | x) of the images X (n, D). */
KVI_API kvi_status kvi_vae_encode_mean(kvi_vae *v, kvi_real *Z, const kvi_real *X, int64_t n);
/* P (n, D) = sigmoid(decoder(Z)): the Bernoulli means of the codes Z (n, d). */
KVI_API kvi_status kvi_vae_decode(kvi_vae *v, kvi_real *P, const kvi_real *Z, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
