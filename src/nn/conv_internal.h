/* Private to src/nn: the convolution's passes (conv_run.c) shared with its layer kind (conv.c). */
#ifndef KRONVI_NN_CONV_INTERNAL_H
#define KRONVI_NN_CONV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "kronvi/nn.h"

/* Rows of the unfolded input, batch * oh * ow, checked to fit in int (fails with a message). */
kvi_status kvi__conv_rows(int *rows, const kvi_conv *l, int batch, const char *fn);
/* Examples per chunk of the passes (l->chunk, or the automatic choice). */
int kvi__conv_chunk(const kvi_conv *l);
/* Rows of examples [e0, e1) of the unfolded input: cols ((e1 - e0) * oh * ow, n) from X. */
void kvi__conv_im2col(kvi_real *cols, const kvi_real *X, const kvi_conv *l, int e0, int e1);
/* dX of examples [e0, e1) = col2im(dcols), the adjoint of im2col (dX of those examples is
 * overwritten). */
void kvi__conv_col2im(kvi_real *dX, const kvi_real *dcols, const kvi_conv *l, int e0, int e1);
/* ---- direct kernels of stride-1 convolutions with few output channels (conv_direct.c) ---- */
typedef struct {
  int isa;                /* 2: AVX-512, 1: AVX2 (both with FMA) */
  int h, w, c, m, k, pad; /* input image (h, w, c), output channels m, kernel k, padding */
  int hp, wp, oh, ow;     /* padded input, output */
  int mw;                 /* m rounded up to whole vectors: the packed weight rows */
  size_t plane, xp_len;   /* numbers of a channel plane, of a padded image buffer (c planes) */
  int dy_safe;            /* the weight gradient reads dY rows [0, dy_safe) in place */
} kvi__direct_geom;
/* The geometry of a stride-1 convolution for the direct kernels; false when this machine has
 * none or m is too wide (more than four vectors). */
bool kvi__direct_geom_make(kvi__direct_geom *g, int h, int w, int c, int m, int k, int pad);
/* xp (g->xp_len) = the image x (h, w, c) inside its zero padding, one channel plane after the
 * other; zero: clear all of xp first (else only the interior is written: the border must still
 * be zero). */
void kvi__direct_pad(kvi_real *xp, const kvi_real *x, const kvi__direct_geom *g, bool zero);
/* Wp (k k c, mw) = W (k k c, m) with zero columns; flip: the transposed convolution's kernel
 * from the layer's W (k k m, c) (g is then the transposed geometry: c = layer c_out). */
void kvi__direct_pack(kvi_real *Wp, const kvi_real *W, const kvi__direct_geom *g, bool flip);
/* y (oh, ow, m) = the convolution of the padded image xp with the packed Wp. */
void kvi__direct_forward(kvi_real *y, const kvi_real *xp, const kvi_real *Wp,
                         const kvi__direct_geom *g);
/* dyp ((oh - dy_safe) ow, mw) = the last output rows of dy (oh ow, m), from row dy_safe, with
 * zero columns. */
void kvi__direct_pad_dy(kvi_real *dyp, const kvi_real *dy, const kvi__direct_geom *g);
/* dW (k k c, m) += the weight gradient of one image: xp as kvi__direct_pad, dy (oh ow, m) and
 * dyl its last rows padded by kvi__direct_pad_dy. */
void kvi__direct_wgrad(kvi_real *dW, const kvi_real *xp, const kvi_real *dy, const kvi_real *dyl,
                       const kvi__direct_geom *g);
/* The split of a batch and the workspace layout (offsets in bytes). */
typedef struct {
  int E, nch, ngr;                   /* examples per chunk, chunks, groups */
  size_t rows, rmax;                 /* rows of the batch, rows of the largest chunk */
  size_t dws;                        /* bytes of one chunk's dense workspace */
  size_t oM, oA, oB, oS, ob, gbytes; /* gradient buffer: offsets of the views, size */
  size_t o_slots, o_dcols, o_grad, o_direct, total;
} kvi__conv_plan;

/* The direct kernels of a pass (conv_direct.c): a stride-1 layer run with its mean weights
 * whose output channels fit them. Their scratch, at the end of the workspace: the packed kernel,
 * the packed transposed kernel (dX), and per gradient group a padded image, the padded last rows
 * of dY (the weight gradient) and a padded dY image (dX). */
typedef struct {
  bool on;                       /* direct forward */
  bool bwd;                      /* direct weight gradient (else im2col and GEMM per chunk) */
  bool dx;                       /* direct dX too (else dY W^T and col2im) */
  kvi__direct_geom f, t;         /* the convolution; the transposed one (dX) */
  size_t o_wf, o_wt, o_grp, grp; /* offsets (numbers) in the scratch; one group's share */
  size_t o_xp, o_dyp, o_dyt;     /* offsets within a group's share */
  /* DIAG's sampled passes: the variances sigma^2 (plain, packed, packed transposed); per group
   * the squared image, G = dL/dvariance (an image, its padded last rows, its padded planes),
   * a dX image and the variance gradient (k k c_in, c_out) */
  bool diag;
  size_t o_var, o_wv, o_wtv, o_x2, o_g, o_gp, o_gt, o_dx, o_tv;
  /* MN's sampled passes (conv_mn.c): Z = conv(x, A), A = L + diag(e^a) materialized (Af) and
   * packed (wa), B^T materialized; per group the padded last rows of dZ and the full products
   * X^T dZ (n x n) and dN^T eps (m x m) before they become the factors' gradients */
  bool mn;
  kvi__direct_geom fa;
  size_t o_wa, o_af, o_bt, o_dzp, o_ta, o_tb;
  size_t total; /* numbers of the scratch */
} kvi__direct_plan;

/* Where a group's parameter gradients go: group 0 into the parameter block, others into their
 * buffer (zeroed first). */
typedef struct {
  kvi_real *M, *A, *B, *S, *b;
} kvi__conv_grads;

/* Shared by the passes (conv_run.c) and MN's direct passes (conv_mn.c). */
size_t kvi__al_reals(size_t x); /* x rounded up to whole 64-byte lines of numbers */
/* Chunk c of the plan: examples [*e0, *e1), first row *r0. */
void kvi__chunk_range(const kvi__conv_plan *q, const kvi_conv *l, int c, int batch, int *e0,
                      int *e1, size_t *r0);
void kvi__add_bias(kvi_real *Y, const kvi_real *b, size_t rows, int m);    /* rows (rows, m) += b */
void kvi__bias_grad(kvi_real *db, const kvi_real *dY, size_t rows, int m); /* db += col sums */
/* MN's sampled passes by the direct kernels (conv_mn.c): the shared scratch (Af, its packing,
 * B^T) from the parameters; the forward of the batch (Z, N and s of each chunk kept in
 * its slot); the backward of gradient group g (dC: a chunk's (rows, n) buffer for dX). */
void kvi__mn_direct_pack(kvi_real *scr, const kvi__direct_plan *dp, const kvi_conv *l,
                         const kvi_params *p);
void kvi__mn_direct_forward(kvi_real *Y, const kvi_real *X, const kvi_real *eps, kvi_real *scr,
                            char *slots, const kvi__direct_plan *dp, const kvi_conv *l,
                            const kvi_params *p, const kvi__conv_plan *q, int batch);
void kvi__mn_direct_group_backward(const kvi__conv_grads *gr, kvi_real *dX, kvi_real *dC,
                                   const kvi_real *dY, const kvi_real *X, const kvi_real *eps,
                                   kvi_real *scr, char *slots, const kvi__direct_plan *dp,
                                   const kvi_conv *l, const kvi_params *p, const kvi__conv_plan *q,
                                   int g, int batch);

extern int kvi__conv_direct_force; /* tests: -1 automatic, 0 none, 1 AVX2, 2 AVX-512 */
extern int kvi__conv_direct_all;   /* tests: 1 = every pass direct where the kernels exist */

/* Whether the passes of this layer with this noise (NULL: the mean network) run the direct
 * kernels: then the forward leaves no unfolded input in the workspace. */
bool kvi__conv_direct(const kvi_conv *l, const kvi_real *eps, int batch);
/* The forward's unfolded input (rows, n), at the start of the workspace: unfolded now from X
 * when the forward ran the direct kernels (which do not need it). */
static inline const kvi_real *kvi__conv_cols(void *ws, const kvi_conv *l, const kvi_real *X,
                                             const kvi_real *eps, int batch) {
  if (kvi__conv_direct(l, eps, batch)) kvi__conv_im2col(ws, X, l, 0, batch);
  return (const kvi_real *)ws;
}

#endif
