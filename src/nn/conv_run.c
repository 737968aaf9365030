/* Forward and backward of the convolution, chunked over the batch (docs/nn-conv.md, "Execution").
 * The batch is cut into chunks of E examples (E * oh * ow rows of the unfolded input), and the
 * chunks into at most KVI__CONV_GROUPS contiguous groups; one OpenMP loop runs the groups, and a
 * group runs its chunks in order: im2col of the chunk, the dense layer on its rows (single-
 * threaded BLAS on cache-resident blocks), bias, and in the backward col2im. Rows are
 * independent, so Y and dX do not depend on the split; the parameter gradients are sums over the
 * rows: group 0 adds its chunks straight into the gradient, group g > 0 into its own buffer, and
 * the buffers are added afterwards in group order. E and the groups depend only on the layer and
 * the batch, never on the thread count: results are identical for any number of threads. */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/layer.h"

#include "core/ew.h"
#include "core/vmath.h" /* KVI__HOT */
#include "nn/conv_internal.h"

/* Rows per chunk (E = ceil(rows / (oh * ow)) examples, at most KVI__CONV_CHUNK_MAX): the chunk's
 * unfolded input, its products and its gradient stay in the L2 cache. */
#ifndef KVI__CONV_CHUNK_ROWS
#define KVI__CONV_CHUNK_ROWS 600
#endif
#ifndef KVI__CONV_CHUNK_MAX
#define KVI__CONV_CHUNK_MAX 25
#endif
/* Gradient groups: the parallelism of a pass, and the number of partial parameter gradients. */
#ifndef KVI__CONV_GROUPS
#define KVI__CONV_GROUPS 4
#endif

static size_t kvi__al64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

size_t kvi__al_reals(size_t x) {
  const size_t al = 64 / sizeof(kvi_real);
  return (x + al - 1) / al * al;
}

/* The plan for a layer (whether noise is drawn aside): on when the machine and shape allow. */
static kvi__direct_plan kvi__direct_plan_layer(const kvi_conv *l) {
  kvi__direct_plan d;
  memset(&d, 0, sizeof d);
  if (l->stride != 1 || !kvi__direct_geom_make(&d.f, l->h, l->w, l->c_in, l->c_out, l->k, l->pad))
    return d;
  d.dx = kvi__direct_geom_make(&d.t, l->oh, l->ow, l->c_out, l->c_in, l->k, l->k - 1 - l->pad);
  /* where the direct backward beats im2col + GEMM (bench_conv --paths): images of at least
   * 14 x 14 outputs, at most two vectors of output channels */
  const int vl = d.f.isa == 2 ? 64 / (int)sizeof(kvi_real) : 32 / (int)sizeof(kvi_real);
  d.bwd = kvi__conv_direct_all || (l->oh * l->ow >= 196 && d.f.mw <= 2 * vl);
  /* the scratch does not depend on that rule (the workspace is sized before a pass) */
  d.o_wt = kvi__al_reals((size_t)l->d.n * d.f.mw);
  d.o_grp = d.o_wt + (d.dx ? kvi__al_reals((size_t)l->k * l->k * l->c_out * d.t.mw) : 0);
  d.o_dyp = kvi__al_reals(d.f.xp_len);
  d.o_dyt = d.o_dyp + kvi__al_reals((size_t)(l->oh - d.f.dy_safe) * l->ow * d.f.mw);
  d.grp = d.o_dyt + (d.dx ? kvi__al_reals(d.t.xp_len) : 0);
  if (l->d.family == KVI_FAMILY_DIAG && d.dx) { /* the scratch of DIAG's sampled passes */
    const size_t nm = (size_t)l->d.n * l->c_out, pos = (size_t)l->oh * l->ow;
    d.o_var = d.o_grp;
    d.o_wv = d.o_var + kvi__al_reals(nm);
    d.o_wtv = d.o_wv + (d.o_wt - d.o_wf);
    d.o_grp = d.o_wtv + (d.o_grp - d.o_wt);
    d.o_x2 = d.grp;
    d.o_g = d.o_x2 + kvi__al_reals(d.f.xp_len);
    d.o_gp = d.o_g + kvi__al_reals(pos * l->c_out);
    d.o_gt = d.o_gp + (d.o_dyt - d.o_dyp);
    d.o_dx = d.o_gt + kvi__al_reals(d.t.xp_len);
    d.o_tv = d.o_dx + kvi__al_reals((size_t)l->h * l->w * l->c_in);
    d.grp = d.o_tv + kvi__al_reals(nm);
    d.diag = true;
  }
  /* the input gradient, a convolution with c_in outputs: at least 4 input channels (with fewer,
   * GEMM and col2im are faster); DIAG's sampled passes wherever the backward is direct (the first
   * layer, with one channel, has no input gradient) */
  const bool dx_geom = d.dx;
  d.dx = d.dx && d.bwd && (kvi__conv_direct_all || l->c_in >= 4);
  d.diag = d.diag && dx_geom && d.bwd;
  /* MN's sampled passes where the backward is direct and A's n = k k c_in columns fit the
   * kernels as output channels (the single-channel first layer: n = 9); the scratch whatever
   * the rule says, as above */
  if (l->d.family == KVI_FAMILY_MN &&
      kvi__direct_geom_make(&d.fa, l->h, l->w, l->c_in, l->d.n, l->k, l->pad)) {
    const size_t n = (size_t)l->d.n, m = (size_t)l->c_out;
    d.o_wa = d.o_grp;
    d.o_af = d.o_wa + kvi__al_reals(n * d.fa.mw);
    d.o_bt = d.o_af + kvi__al_reals(n * n);
    d.o_grp = d.o_bt + kvi__al_reals(m * m);
    d.o_dzp = d.grp;
    d.o_ta = d.o_dzp + kvi__al_reals((size_t)(l->oh - d.fa.dy_safe) * l->ow * d.fa.mw);
    d.o_tb = d.o_ta + kvi__al_reals(n * n);
    d.grp = d.o_tb + kvi__al_reals(m * m);
    d.mn = d.bwd;
  }
  d.total = d.o_grp + (size_t)KVI__CONV_GROUPS * d.grp;
  d.on = true;
  return d;
}

static size_t kvi__direct_scratch(const kvi_conv *l) { return kvi__direct_plan_layer(l).total; }

/* The plan of a pass with noise eps (NULL: the mean network). The mean network of a
 * variational layer is only evaluated (training samples), so its forward is direct whenever the
 * kernels exist; a point layer is trained too, and where its backward would unfold the input
 * anyway, the forward does (and runs the GEMM) as before. */
static kvi__direct_plan kvi__direct_plan_make(const kvi_conv *l, const kvi_real *eps) {
  kvi__direct_plan d = kvi__direct_plan_layer(l);
  if (l->d.family == KVI_FAMILY_POINT ? !d.bwd : eps && !d.diag && !d.mn) d.on = false;
  if (!eps || l->d.family != KVI_FAMILY_DIAG) d.diag = false; /* DIAG sampled passes only */
  if (!eps) d.mn = false;                                     /* MN sampled passes only */
  return d;
}

int kvi__conv_chunk(const kvi_conv *l) {
  if (l->chunk > 0) return l->chunk;
  int ohw = l->oh * l->ow, e = (KVI__CONV_CHUNK_ROWS + ohw - 1) / ohw;
  return e < 1 ? 1 : e > KVI__CONV_CHUNK_MAX ? KVI__CONV_CHUNK_MAX : e;
}

static kvi__conv_plan kvi__conv_plan_make(const kvi_conv *l, int batch) {
  const kvi_dense *d = &l->d;
  kvi__conv_plan q;
  memset(&q, 0, sizeof q);
  const size_t ohw = (size_t)l->oh * l->ow, n = (size_t)d->n, m = (size_t)d->m;
  q.E = kvi__conv_chunk(l);
  if (q.E > batch) q.E = batch;
  q.nch = (batch + q.E - 1) / q.E;
  q.ngr = q.nch < KVI__CONV_GROUPS ? q.nch : KVI__CONV_GROUPS;
  q.rows = (size_t)batch * ohw, q.rmax = (size_t)q.E * ohw;
  q.dws = kvi__al64(kvi_dense_ws_size(d, (int)q.rmax));
  size_t r = sizeof(kvi_real), g = 0;
  q.oM = g, g += kvi__al64(n * m * r);
  if (d->iA >= 0) q.oA = g, g += kvi__al64(n * n * r), q.oB = g, g += kvi__al64(m * m * r);
  if (d->iS >= 0) q.oS = g, g += kvi__al64(n * m * r);
  if (d->ib >= 0) q.ob = g, g += kvi__al64(m * r);
  q.gbytes = g;
  q.o_slots = kvi__al64(q.rows * n * r); /* cols (rows, n) first */
  q.o_dcols = q.o_slots + (size_t)q.nch * q.dws;
  q.o_grad = q.o_dcols + (size_t)KVI__CONV_GROUPS * kvi__al64(q.rmax * n * r);
  q.o_direct = q.o_grad + (size_t)(KVI__CONV_GROUPS - 1) * q.gbytes;
  q.total = q.o_direct + kvi__al64(kvi__direct_scratch(l) * r);
  return q;
}

size_t kvi_conv_ws_size(const kvi_conv *l, int batch) {
  int64_t r = batch > 0 ? (int64_t)batch * l->oh * l->ow : 0;
  if (r <= 0 || r > INT_MAX) return 0; /* forward then fails with a message */
  return kvi__conv_plan_make(l, batch).total;
}

bool kvi__conv_direct(const kvi_conv *l, const kvi_real *eps, int batch) {
  return batch > 0 && kvi__direct_plan_make(l, eps).on;
}

/* Valid kernel columns [*kx0, *kx1) for an output column whose window starts at x0 (may be
 * negative in the left padding); empty when the window lies entirely in the padding. */
static void kvi__kx_range(int *kx0, int *kx1, int x0, int k, int w) {
  int a = x0 < 0 ? -x0 : 0, e = w - x0;
  if (a > k) a = k;
  if (e > k) e = k;
  if (e < a) e = a;
  *kx0 = a, *kx1 = e;
}

/* Runs of one kernel row: copy, zero, add (restrict: the compiler vectorizes them). The runs are
 * short (k * c_in numbers: 3 in a first layer), so they stay inline loops: GCC would otherwise
 * turn them into memcpy / memset calls, which cost more than the copy. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif
static inline void kvi__run_copy(kvi_real *restrict d, const kvi_real *restrict s, size_t len) {
#pragma omp simd
  for (size_t i = 0; i < len; i++) d[i] = s[i];
}
static inline void kvi__run_zero(kvi_real *restrict d, size_t len) {
#pragma omp simd
  for (size_t i = 0; i < len; i++) d[i] = 0;
}
static inline void kvi__run_add(kvi_real *restrict d, const kvi_real *restrict s, size_t len) {
#pragma omp simd
  for (size_t i = 0; i < len; i++) d[i] += s[i];
}

/* cols rows of examples [e0, e1) from X (B, h*w*c_in), one output row oy and kernel row ky at a
 * time: the valid taps kx0..kx1 of a position read one contiguous run of (kx1 - kx0) * c_in
 * numbers of input row iy = oy*s - p + ky (all k * c_in of them away from the left and right
 * border); taps in the padding are zero. */
KVI__HOT void kvi__conv_im2col(kvi_real *cols, const kvi_real *X, const kvi_conv *l, int e0,
                               int e1) {
  const int h = l->h, w = l->w, c = l->c_in, k = l->k, st = l->stride, pad = l->pad;
  const int oh = l->oh, ow = l->ow;
  const size_t n = (size_t)l->d.n, img = (size_t)h * w * c, kc = (size_t)k * c;
  for (int b = e0; b < e1; b++) {
    const kvi_real *x = X + (size_t)b * img;
    for (int oy = 0; oy < oh; oy++) {
      kvi_real *orow = cols + ((size_t)(b - e0) * oh + oy) * ow * n;
      for (int ky = 0; ky < k; ky++) {
        const int iy = oy * st - pad + ky;
        kvi_real *dst = orow + (size_t)ky * kc;
        if (iy < 0 || iy >= h) {
          for (int ox = 0; ox < ow; ox++) kvi__run_zero(dst + (size_t)ox * n, kc);
          continue;
        }
        const kvi_real *src = x + (size_t)iy * w * c;
        for (int ox = 0; ox < ow; ox++) {
          const int x0 = ox * st - pad;
          kvi_real *d = dst + (size_t)ox * n;
          if (x0 >= 0 && x0 + k <= w) {
            const kvi_real *sx = src + (size_t)x0 * c;
            if (kc == 3) /* a 3x3 kernel on one channel: a loop call would cost more */
              d[0] = sx[0], d[1] = sx[1], d[2] = sx[2];
            else
              kvi__run_copy(d, sx, kc);
            continue;
          }
          int kx0, kx1;
          kvi__kx_range(&kx0, &kx1, x0, k, w);
          const size_t a = (size_t)kx0 * c, e = (size_t)kx1 * c;
          kvi__run_zero(d, a);
          if (e > a) kvi__run_copy(d + a, src + ((ptrdiff_t)x0 + kx0) * c, e - a);
          kvi__run_zero(d + (e > a ? e : a), kc - (e > a ? e : a));
        }
      }
    }
  }
}

/* dX of examples [e0, e1) = col2im(dcols): the transpose of im2col, padding taps dropped. */
KVI__HOT void kvi__conv_col2im(kvi_real *dX, const kvi_real *dcols, const kvi_conv *l, int e0,
                               int e1) {
  const int h = l->h, w = l->w, c = l->c_in, k = l->k, st = l->stride, pad = l->pad;
  const int oh = l->oh, ow = l->ow;
  const size_t n = (size_t)l->d.n, img = (size_t)h * w * c, kc = (size_t)k * c;
  memset(dX + (size_t)e0 * img, 0, (size_t)(e1 - e0) * img * sizeof *dX);
  for (int b = e0; b < e1; b++) {
    kvi_real *dx = dX + (size_t)b * img;
    for (int oy = 0; oy < oh; oy++) {
      const kvi_real *orow = dcols + ((size_t)(b - e0) * oh + oy) * ow * n;
      for (int ky = 0; ky < k; ky++) {
        const int iy = oy * st - pad + ky;
        if (iy < 0 || iy >= h) continue;
        const kvi_real *src = orow + (size_t)ky * kc;
        kvi_real *drow = dx + (size_t)iy * w * c;
        for (int ox = 0; ox < ow; ox++) {
          const int x0 = ox * st - pad;
          const kvi_real *s = src + (size_t)ox * n;
          if (x0 >= 0 && x0 + k <= w) {
            kvi__run_add(drow + (size_t)x0 * c, s, kc);
            continue;
          }
          int kx0, kx1;
          kvi__kx_range(&kx0, &kx1, x0, k, w);
          const size_t a = (size_t)kx0 * c, e = (size_t)kx1 * c;
          if (e > a) kvi__run_add(drow + ((ptrdiff_t)x0 + kx0) * c, s + a, e - a);
        }
      }
    }
  }
}

static kvi_status kvi__conv_args(const void *out, const void *ws, const kvi_conv *l, const void *p,
                                 const void *X, const char *fn) {
  if (!out || !ws || !l || !p || !X)
    return kvi_fail(KVI_ERR_ARG, "%s: NULL argument (output, workspace, layer, params or X)", fn);
  if (((uintptr_t)ws) % 64)
    return kvi_fail(KVI_ERR_ARG, "%s: workspace %p is not 64-byte aligned", fn, ws);
  return KVI_OK;
}

/* Rows of the unfolded input, B*oh*ow, which the dense layer takes as an int. */
kvi_status kvi__conv_rows(int *rows, const kvi_conv *l, int batch, const char *fn) {
  if (batch <= 0) return kvi_fail(KVI_ERR_ARG, "%s: batch size %d must be positive", fn, batch);
  if (l->oh <= 0 || l->ow <= 0 || l->d.n != (int64_t)l->k * l->k * l->c_in)
    return kvi_fail(KVI_ERR_STATE, "%s: layer '%s' was not declared with kvi_conv_declare", fn,
                    l->d.name);
  int64_t r = (int64_t)batch * l->oh * l->ow;
  if (r > INT_MAX)
    return kvi_fail(KVI_ERR_ARG,
                    "%s: layer '%s': batch %d x %d x %d output positions = %lld rows does not "
                    "fit in int; use a smaller batch",
                    fn, l->d.name, batch, l->oh, l->ow, (long long)r);
  *rows = (int)r;
  return KVI_OK;
}

/* Chunk c of the plan: examples [*e0, *e1), first row *r0. */
void kvi__chunk_range(const kvi__conv_plan *q, const kvi_conv *l, int c, int batch, int *e0,
                      int *e1, size_t *r0) {
  *e0 = c * q->E;
  *e1 = *e0 + q->E < batch ? *e0 + q->E : batch;
  *r0 = (size_t)*e0 * l->oh * l->ow;
}

/* Adds the bias to rows (rows, m). */
void kvi__add_bias(kvi_real *Y, const kvi_real *b, size_t rows, int m) {
  for (size_t r = 0; r < rows; r++) {
    kvi_real *y = Y + r * m;
#pragma omp simd
    for (int j = 0; j < m; j++) y[j] += b[j];
  }
}

/* db += the column sums of dY (rows, m), rows in order. */
void kvi__bias_grad(kvi_real *db, const kvi_real *dY, size_t rows, int m) {
  for (size_t r = 0; r < rows; r++) {
    const kvi_real *dy = dY + r * m;
#pragma omp simd
    for (int j = 0; j < m; j++) db[j] += dy[j];
  }
}

/* Y (rows, m) = the dense forward of the chunk C (rows, n) with noise e1 (and e2 for MN+DIAG). */
static kvi_status kvi__chunk_forward(kvi_real *Y, void *ws, const kvi_dense *d, const kvi_params *p,
                                     const kvi_real *C, const kvi_real *e1, const kvi_real *e2,
                                     int rows) {
  const int n = d->n, m = d->m;
  const kvi_real *M = kvi_params_data(p, d->iM);
  kvi_status s = KVI_OK;
  if (!e1 || d->family == KVI_FAMILY_POINT) {
    kvi_gemm(false, false, rows, m, n, 1, C, n, M, m, 0, Y, m);
  } else if (d->family == KVI_FAMILY_DIAG) {
    kvi_diag q = {n, m, M, kvi_params_data(p, d->iS)};
    s = kvi_diag_lrt_forward(Y, ws, &q, C, e1, rows);
  } else {
    kvi_mn q = {n, m, M, kvi_params_data(p, d->iA), kvi_params_data(p, d->iB)};
    if (d->family == KVI_FAMILY_MN) {
      s = kvi_mn_lrt_forward(Y, ws, &q, C, e1, rows);
    } else {
      kvi_mndiag qd = {q, kvi_params_data(p, d->iS), d->slq};
      s = kvi_mndiag_lrt_forward(Y, ws, &qd, C, e1, e2, rows);
    }
  }
  if (s || d->ib < 0) return s;
  kvi__add_bias(Y, kvi_params_data(p, d->ib), (size_t)rows, m);
  return KVI_OK;
}

/* Noise of chunk rows starting at r0: eps1 (rows, m) for every family, eps2 after all eps1. */
static void kvi__chunk_eps(const kvi_real **e1, const kvi_real **e2, const kvi_real *eps,
                           const kvi_dense *d, size_t rows, size_t r0) {
  const size_t m = (size_t)d->m;
  *e1 = eps ? eps + r0 * m : NULL;
  *e2 = eps && d->family == KVI_FAMILY_MNDIAG ? eps + rows * m + r0 * m : NULL;
}

/* The direct forward: groups of chunks as the im2col path, image by image. */
static void kvi__direct_run_forward(kvi_real *Y, const kvi_real *X, kvi_real *scr,
                                    const kvi__direct_plan *dp, const kvi_conv *l,
                                    const kvi_params *p, const kvi__conv_plan *q, int batch) {
  const size_t img = (size_t)l->h * l->w * l->c_in, pos = (size_t)l->oh * l->ow, m = l->c_out;
  const kvi_real *b = l->d.ib >= 0 ? kvi_params_data(p, l->d.ib) : NULL;
#pragma omp parallel for schedule(static) if (q->ngr > 1)
  for (int g = 0; g < q->ngr; g++) {
    kvi_real *xp = scr + dp->o_grp + (size_t)g * dp->grp + dp->o_xp;
    const int e0 = (g * q->nch / q->ngr) * q->E;
    int e1 = ((g + 1) * q->nch / q->ngr) * q->E;
    if (e1 > batch) e1 = batch;
    for (int e = e0; e < e1; e++) {
      kvi__direct_pad(xp, X + (size_t)e * img, &dp->f, e == e0);
      kvi__direct_forward(Y + (size_t)e * pos * m, xp, scr + dp->o_wf, &dp->f);
      if (b) kvi__add_bias(Y + (size_t)e * pos * m, b, pos, (int)m);
    }
  }
}

/* DIAG's variances sigma^2 = exp(2 log sigma) into the scratch, packed for the direct kernels
 * (flip: also the transposed kernels of the backward, of M and of sigma^2). */
static void kvi__direct_diag_pack(kvi_real *scr, const kvi__direct_plan *dp, const kvi_conv *l,
                                  const kvi_params *p, bool flip) {
  const size_t nm = (size_t)l->d.n * l->c_out;
  const kvi_real *ls = kvi_params_data(p, l->d.iS);
  kvi_real *var = scr + dp->o_var;
  for (size_t k = 0; k < nm; k++) var[k] = exp(2 * ls[k]);
  kvi__direct_pack(scr + dp->o_wv, var, &dp->f, false);
  if (!flip) return;
  kvi__direct_pack(scr + dp->o_wt, kvi_params_data(p, l->d.iM), &dp->t, true);
  kvi__direct_pack(scr + dp->o_wtv, var, &dp->t, true);
}

/* The padded image of example e and its square (the padding stays zero). */
static void kvi__direct_pad2(kvi_real *xp, kvi_real *x2, const kvi_real *x,
                             const kvi__direct_geom *g, bool first) {
  kvi__direct_pad(xp, x, g, first);
  kvi__ew_square(x2, xp, 0, g->xp_len);
}

/* DIAG's sampled forward (local reparameterization per output position) by the direct kernels:
 * Y = conv(x, M) + sqrt(conv(x o x, sigma^2)) o eps + b; the standard deviations stay in the
 * chunk's slot for the backward. */
static void kvi__direct_diag_forward(kvi_real *Y, const kvi_real *X, const kvi_real *eps,
                                     kvi_real *scr, char *slots, const kvi__direct_plan *dp,
                                     const kvi_conv *l, const kvi_params *p,
                                     const kvi__conv_plan *q, int batch) {
  const size_t img = (size_t)l->h * l->w * l->c_in, pm = (size_t)l->oh * l->ow * l->c_out;
  const int m = l->c_out;
  const kvi_real *b = l->d.ib >= 0 ? kvi_params_data(p, l->d.ib) : NULL;
#pragma omp parallel for schedule(static) if (q->ngr > 1)
  for (int g = 0; g < q->ngr; g++) {
    kvi_real *sg = scr + dp->o_grp + (size_t)g * dp->grp;
    const int c0 = g * q->nch / q->ngr;
    for (int c = c0; c < (g + 1) * q->nch / q->ngr; c++) {
      int e0, e1;
      size_t r0;
      kvi__chunk_range(q, l, c, batch, &e0, &e1, &r0);
      for (int e = e0; e < e1; e++) {
        kvi_real *y = Y + (size_t)e * pm, *sd = (kvi_real *)(slots + (size_t)c * q->dws);
        const kvi_real *ep = eps + (size_t)e * pm;
        sd += (size_t)(e - e0) * pm;
        kvi__direct_pad2(sg + dp->o_xp, sg + dp->o_x2, X + (size_t)e * img, &dp->f,
                         c == c0 && e == e0);
        kvi__direct_forward(y, sg + dp->o_xp, scr + dp->o_wf, &dp->f);
        kvi__direct_forward(sd, sg + dp->o_x2, scr + dp->o_wv, &dp->f);
        kvi__ew_sd_noise(y, sd, ep, 0, pm);
        if (b) kvi__add_bias(y, b, pm / m, m);
      }
    }
  }
}

kvi_status kvi_conv_forward(kvi_real *Y, void *ws, const kvi_conv *l, const kvi_params *p,
                            const kvi_real *X, const kvi_real *eps, int batch) {
  const char *fn = "conv_forward";
  kvi_status s = kvi__conv_args(Y, ws, l, p, X, fn);
  int rows = 0;
  if (!s) s = kvi__conv_rows(&rows, l, batch, fn);
  if (s) return s;
  const kvi__conv_plan q = kvi__conv_plan_make(l, batch);
  const kvi_dense *d = &l->d;
  const size_t n = (size_t)d->n, m = (size_t)d->m;
  kvi_real *cols = ws;
  char *slots = (char *)ws + q.o_slots;
  const kvi__direct_plan dp = kvi__direct_plan_make(l, eps);
  if (dp.on) {
    kvi_real *scr = (kvi_real *)((char *)ws + q.o_direct);
    kvi__direct_pack(scr + dp.o_wf, kvi_params_data(p, d->iM), &dp.f, false);
    if (dp.diag) {
      kvi__direct_diag_pack(scr, &dp, l, p, false);
      kvi__direct_diag_forward(Y, X, eps, scr, slots, &dp, l, p, &q, batch);
    } else if (dp.mn) {
      kvi__mn_direct_pack(scr, &dp, l, p);
      kvi__mn_direct_forward(Y, X, eps, scr, slots, &dp, l, p, &q, batch);
    } else {
      kvi__direct_run_forward(Y, X, scr, &dp, l, p, &q, batch);
    }
    return KVI_OK;
  }
  kvi_status st[KVI__CONV_GROUPS] = {KVI_OK};
#pragma omp parallel for schedule(static) if (q.ngr > 1)
  for (int g = 0; g < q.ngr; g++) {
    for (int c = g * q.nch / q.ngr; c < (g + 1) * q.nch / q.ngr && !st[g]; c++) {
      int e0, e1;
      size_t r0;
      kvi__chunk_range(&q, l, c, batch, &e0, &e1, &r0);
      const int cr = (e1 - e0) * l->oh * l->ow;
      const kvi_real *n1, *n2;
      kvi__chunk_eps(&n1, &n2, eps, d, q.rows, r0);
      kvi__conv_im2col(cols + r0 * n, X, l, e0, e1);
      st[g] = kvi__chunk_forward(Y + r0 * m, slots + (size_t)c * q.dws, d, p, cols + r0 * n, n1, n2,
                                 cr);
    }
  }
  for (int g = 0; g < q.ngr; g++)
    if (st[g]) return st[g];
  return KVI_OK;
}

static kvi__conv_grads kvi__group_grads(const kvi__conv_plan *q, const kvi_dense *d, kvi_params *p,
                                        char *buf) {
  kvi__conv_grads g = {NULL, NULL, NULL, NULL, NULL};
  if (!buf) {
    g.M = kvi_params_grad(p, d->iM);
    if (d->iA >= 0) g.A = kvi_params_grad(p, d->iA), g.B = kvi_params_grad(p, d->iB);
    if (d->iS >= 0) g.S = kvi_params_grad(p, d->iS);
    if (d->ib >= 0) g.b = kvi_params_grad(p, d->ib);
    return g;
  }
  memset(buf, 0, q->gbytes);
  g.M = (kvi_real *)(buf + q->oM);
  if (d->iA >= 0) g.A = (kvi_real *)(buf + q->oA), g.B = (kvi_real *)(buf + q->oB);
  if (d->iS >= 0) g.S = (kvi_real *)(buf + q->oS);
  if (d->ib >= 0) g.b = (kvi_real *)(buf + q->ob);
  return g;
}

/* Backward of one chunk: adds the parameter gradients into g, writes dC (rows, n) if not NULL. */
static kvi_status kvi__chunk_backward(const kvi__conv_grads *g, kvi_real *dC, const kvi_real *dY,
                                      void *ws, const kvi_dense *d, const kvi_params *p,
                                      const kvi_real *C, const kvi_real *e1, const kvi_real *e2,
                                      int rows) {
  const int n = d->n, m = d->m;
  const kvi_real *M = kvi_params_data(p, d->iM);
  kvi_status s = KVI_OK;
  if (!e1 || d->family == KVI_FAMILY_POINT) {
    kvi_gemm(true, false, n, m, rows, 1, C, n, dY, m, 1, g->M, m);
    if (dC) kvi_gemm(false, true, rows, n, m, 1, dY, m, M, m, 0, dC, n);
  } else if (d->family == KVI_FAMILY_DIAG) {
    kvi_diag q = {n, m, M, kvi_params_data(p, d->iS)};
    kvi_diag_grad gd = {g->M, g->S};
    if (dC) memset(dC, 0, (size_t)rows * n * sizeof *dC);
    s = kvi_diag_lrt_backward(&gd, dC, dY, ws, &q, C, e1, rows);
  } else {
    kvi_mn q = {n, m, M, kvi_params_data(p, d->iA), kvi_params_data(p, d->iB)};
    kvi_mn_grad gm = {g->M, g->A, g->B};
    if (d->family == KVI_FAMILY_MN) {
      s = kvi_mn_lrt_backward_set(&gm, dC, dY, ws, &q, C, e1, rows);
    } else {
      kvi_mndiag qd = {q, kvi_params_data(p, d->iS), d->slq};
      kvi_mndiag_grad gmd = {gm, g->S};
      if (dC) memset(dC, 0, (size_t)rows * n * sizeof *dC);
      s = kvi_mndiag_lrt_backward(&gmd, dC, dY, ws, &qd, C, e1, e2, rows);
    }
  }
  if (s || !g->b) return s;
  kvi__bias_grad(g->b, dY, (size_t)rows, m);
  return KVI_OK;
}

/* dst[k] += buffer_1[k] + ... + buffer_{ngr-1}[k], in group order, for one view. */
static void kvi__reduce(kvi_real *dst, const char *bufs, size_t off, size_t count,
                        const kvi__conv_plan *q) {
#pragma omp parallel for schedule(static) if (count * (size_t)q->ngr > (1u << 16))
  for (size_t k = 0; k < count; k++) {
    kvi_real v = dst[k];
    for (int g = 1; g < q->ngr; g++)
      v += ((const kvi_real *)(bufs + (size_t)(g - 1) * q->gbytes + off))[k];
    dst[k] = v;
  }
}

/* The direct backward of group g's images: the weight gradient image by image into gr, the
 * bias gradient, and dX by the transposed convolution (or dY W^T and col2im per chunk when c_in
 * is too wide for the direct kernels). */
static void kvi__direct_group_backward(const kvi__conv_grads *gr, kvi_real *dX, kvi_real *dC,
                                       const kvi_real *dY, const kvi_real *X, kvi_real *scr,
                                       const kvi__direct_plan *dp, const kvi_conv *l,
                                       const kvi_params *p, const kvi__conv_plan *q, int g,
                                       int batch) {
  const size_t img = (size_t)l->h * l->w * l->c_in, pos = (size_t)l->oh * l->ow;
  const int m = l->c_out, n = l->d.n;
  kvi_real *sg = scr + dp->o_grp + (size_t)g * dp->grp;
  for (int c = g * q->nch / q->ngr; c < (g + 1) * q->nch / q->ngr; c++) {
    int e0, e1;
    size_t r0;
    kvi__chunk_range(q, l, c, batch, &e0, &e1, &r0);
    for (int e = e0; e < e1; e++) {
      const kvi_real *dy = dY + (size_t)e * pos * m;
      const bool first = c == g * q->nch / q->ngr && e == e0;
      kvi__direct_pad(sg + dp->o_xp, X + (size_t)e * img, &dp->f, first);
      kvi__direct_pad_dy(sg + dp->o_dyp, dy, &dp->f);
      kvi__direct_wgrad(gr->M, sg + dp->o_xp, dy, sg + dp->o_dyp, &dp->f);
      if (gr->b) kvi__bias_grad(gr->b, dy, pos, m);
      if (dX && dp->dx) {
        kvi__direct_pad(sg + dp->o_dyt, dy, &dp->t, first);
        kvi__direct_forward(dX + (size_t)e * img, sg + dp->o_dyt, scr + dp->o_wt, &dp->t);
      }
    }
    if (dX && !dp->dx) {
      const int cr = (e1 - e0) * l->oh * l->ow;
      kvi_gemm(false, true, cr, n, m, 1, dY + r0 * m, m, kvi_params_data(p, l->d.iM), m, 0, dC, n);
      kvi__conv_col2im(dX, dC, l, e0, e1);
    }
  }
}

/* DIAG's sampled backward of group g by the direct kernels, with G = dL/d(variance) =
 * dY o eps / (2 sd) (0 where sd = 0):
 *   dM += wgrad(x, dY),  d log sigma += 2 sigma^2 o wgrad(x o x, G),  db += sum of dY,
 *   dX = convT(dY, M) + 2 x o convT(G, sigma^2). */
static void kvi__direct_diag_group_backward(const kvi__conv_grads *gr, kvi_real *dX,
                                            const kvi_real *dY, const kvi_real *X,
                                            const kvi_real *eps, kvi_real *scr, char *slots,
                                            const kvi__direct_plan *dp, const kvi_conv *l,
                                            const kvi__conv_plan *q, int g, int batch) {
  const size_t img = (size_t)l->h * l->w * l->c_in, pm = (size_t)l->oh * l->ow * l->c_out;
  const size_t nm = (size_t)l->d.n * l->c_out;
  const int m = l->c_out, c0 = g * q->nch / q->ngr;
  kvi_real *sg = scr + dp->o_grp + (size_t)g * dp->grp, *G = sg + dp->o_g, *tv = sg + dp->o_tv;
  memset(tv, 0, nm * sizeof *tv);
  for (int c = c0; c < (g + 1) * q->nch / q->ngr; c++) {
    int e0, e1;
    size_t r0;
    kvi__chunk_range(q, l, c, batch, &e0, &e1, &r0);
    for (int e = e0; e < e1; e++) {
      const kvi_real *dy = dY + (size_t)e * pm, *ep = eps + (size_t)e * pm;
      const kvi_real *sd = (const kvi_real *)(slots + (size_t)c * q->dws) + (size_t)(e - e0) * pm;
      const bool first = c == c0 && e == e0;
      kvi__ew_dvar(G, sd, dy, ep, 0, pm);
      kvi__direct_pad2(sg + dp->o_xp, sg + dp->o_x2, X + (size_t)e * img, &dp->f, first);
      kvi__direct_pad_dy(sg + dp->o_dyp, dy, &dp->f);
      kvi__direct_wgrad(gr->M, sg + dp->o_xp, dy, sg + dp->o_dyp, &dp->f);
      kvi__direct_pad_dy(sg + dp->o_gp, G, &dp->f);
      kvi__direct_wgrad(tv, sg + dp->o_x2, G, sg + dp->o_gp, &dp->f);
      if (gr->b) kvi__bias_grad(gr->b, dy, pm / m, m);
      if (!dX) continue;
      kvi_real *dx = dX + (size_t)e * img, *t = sg + dp->o_dx;
      const kvi_real *x = X + (size_t)e * img;
      kvi__direct_pad(sg + dp->o_dyt, dy, &dp->t, first);
      kvi__direct_forward(dx, sg + dp->o_dyt, scr + dp->o_wt, &dp->t);
      kvi__direct_pad(sg + dp->o_gt, G, &dp->t, first);
      kvi__direct_forward(t, sg + dp->o_gt, scr + dp->o_wtv, &dp->t);
      kvi__ew_acc_prod(dx, 2, x, t, 0, img);
    }
  }
  const kvi_real *var = scr + dp->o_var;
  for (size_t k = 0; k < nm; k++) gr->S[k] += 2 * var[k] * tv[k];
}

kvi_status kvi_conv_backward(kvi_real *dX, kvi_params *p, const kvi_real *dY, void *ws,
                             const kvi_conv *l, const kvi_real *X, const kvi_real *eps, int batch) {
  const char *fn = "conv_backward";
  kvi_status s = kvi__conv_args(dY, ws, l, p, X, fn);
  int rows = 0;
  if (!s) s = kvi__conv_rows(&rows, l, batch, fn);
  if (s) return s;
  /* cols still hold the forward's unfolded X (unless the direct kernels ran: they read X) */
  const kvi__conv_plan q = kvi__conv_plan_make(l, batch);
  const kvi_dense *d = &l->d;
  const size_t n = (size_t)d->n, m = (size_t)d->m;
  kvi_real *cols = ws;
  char *slots = (char *)ws + q.o_slots, *gbuf = (char *)ws + q.o_grad;
  const size_t dcb = kvi__al64(q.rmax * n * sizeof(kvi_real));
  kvi_status st[KVI__CONV_GROUPS] = {KVI_OK};
  const kvi__direct_plan dp = kvi__direct_plan_make(l, eps);
  kvi_real *scr = (kvi_real *)((char *)ws + q.o_direct);
  if (dp.diag)
    kvi__direct_diag_pack(scr, &dp, l, p, true);
  else if (dp.mn)
    kvi__mn_direct_pack(scr, &dp, l, p);
  else if (dp.on && dp.dx && dX)
    kvi__direct_pack(scr + dp.o_wt, kvi_params_data(p, d->iM), &dp.t, true);
#pragma omp parallel for schedule(static) if (q.ngr > 1)
  for (int g = 0; g < q.ngr; g++) {
    kvi__conv_grads gr = kvi__group_grads(&q, d, p, g ? gbuf + (size_t)(g - 1) * q.gbytes : NULL);
    kvi_real *dC = dX ? (kvi_real *)((char *)ws + q.o_dcols + (size_t)g * dcb) : NULL;
    if (dp.diag) {
      kvi__direct_diag_group_backward(&gr, dX, dY, X, eps, scr, slots, &dp, l, &q, g, batch);
      continue;
    }
    if (dp.mn) {
      kvi__mn_direct_group_backward(&gr, dX, dC, dY, X, eps, scr, slots, &dp, l, p, &q, g, batch);
      continue;
    }
    if (dp.on && dp.bwd) {
      kvi__direct_group_backward(&gr, dX, dC, dY, X, scr, &dp, l, p, &q, g, batch);
      continue;
    }
    for (int c = g * q.nch / q.ngr; c < (g + 1) * q.nch / q.ngr && !st[g]; c++) {
      int e0, e1;
      size_t r0;
      kvi__chunk_range(&q, l, c, batch, &e0, &e1, &r0);
      const int cr = (e1 - e0) * l->oh * l->ow;
      const kvi_real *n1, *n2;
      kvi__chunk_eps(&n1, &n2, eps, d, q.rows, r0);
      if (dp.on) kvi__conv_im2col(cols + r0 * n, X, l, e0, e1); /* the forward did not */
      st[g] = kvi__chunk_backward(&gr, dC, dY + r0 * m, slots + (size_t)c * q.dws, d, p,
                                  cols + r0 * n, n1, n2, cr);
      if (dX && !st[g]) kvi__conv_col2im(dX, dC, l, e0, e1);
    }
  }
  for (int g = 0; g < q.ngr; g++)
    if (st[g]) return st[g];
  if (q.ngr < 2) return KVI_OK;
  kvi__reduce(kvi_params_grad(p, d->iM), gbuf, q.oM, n * m, &q);
  if (d->iA >= 0) {
    kvi__reduce(kvi_params_grad(p, d->iA), gbuf, q.oA, n * n, &q);
    kvi__reduce(kvi_params_grad(p, d->iB), gbuf, q.oB, m * m, &q);
  }
  if (d->iS >= 0) kvi__reduce(kvi_params_grad(p, d->iS), gbuf, q.oS, n * m, &q);
  if (d->ib >= 0) kvi__reduce(kvi_params_grad(p, d->ib), gbuf, q.ob, m, &q);
  return KVI_OK;
}
