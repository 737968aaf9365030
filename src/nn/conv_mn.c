/* MN's sampled passes of a convolution by the direct kernels (docs/nn-conv.md, "MN's sampled
 * passes"), for layers whose n = k k c_in taps fit the kernels as output channels (the
 * single-channel first layer: n = 9). With A = L + diag(e^a) and B = L_B + diag(e^b) materialized
 * (docs/prob.md §4), the local reparameterization of every output position r is
 *   Y_r = (x M)_r + s_r N_r,  Z = conv(x, A) (the patches times A),  s_r = ||Z_r||,
 *   N_r = eps_r B^T,
 * so Y and Z are two direct convolutions of the padded image, and the rest is O(n + m^2) per
 * position. The backward, with ds_r = <dY_r, N_r>, dN_r = s_r dY_r, dZ_r = (ds_r / s_r) Z_r
 * (0 where s_r = 0, the kink of the norm):
 *   dM += wgrad(x, dY),  dA += lower(wgrad(x, dZ)),  dB += lower(dN^T eps),  db += sum of dY,
 *   dX = col2im(dY M^T + dZ A^T)   (only if asked: the first layer never is),
 * the diagonals of dA and dB times e^a and e^b (the log-diagonal parameters). The full products
 * X^T dZ and dN^T eps are summed per gradient group and turned into the parameters' gradients at
 * its end. Z, N and s of a chunk's positions stay in its slot between the passes. Sums run in a
 * fixed order per group: the numbers do not depend on the thread count; they differ from the
 * im2col + GEMM path in the last bits. */
#include <string.h>

#include "kronvi/layer.h"

#include "core/vmath.h" /* KVI__HOT */
#include "internal.h"   /* KVI_SQRT */
#include "nn/conv_internal.h"

/* A chunk slot's Z (rmax, n), N (rmax, m) and s (rmax), as the dense MN workspace lays them. */
typedef struct {
  kvi_real *Z, *N, *s;
} kvi__mn_slot;

static kvi__mn_slot kvi__mn_slot_at(char *slots, const kvi__conv_plan *q, int c, int n, int m) {
  kvi_real *base = (kvi_real *)(slots + (size_t)c * q->dws);
  kvi__mn_slot t = {base, base + kvi__al_reals(q->rmax * n), NULL};
  t.s = t.N + kvi__al_reals(q->rmax * m);
  return t;
}

void kvi__mn_direct_pack(kvi_real *scr, const kvi__direct_plan *dp, const kvi_conv *l,
                         const kvi_params *p) {
  const int n = l->d.n, m = l->c_out;
  kvi_real *Af = scr + dp->o_af, *BT = scr + dp->o_bt;
  kvi_chol_materialize(Af, kvi_params_data(p, l->d.iA), n);
  kvi_chol_materialize(BT, kvi_params_data(p, l->d.iB), m);
  for (int j = 0; j < m; j++) /* B^T in place */
    for (int k = 0; k < j; k++) {
      const kvi_real t = BT[(size_t)j * m + k];
      BT[(size_t)j * m + k] = BT[(size_t)k * m + j];
      BT[(size_t)k * m + j] = t;
    }
  kvi__direct_pack(scr + dp->o_wa, Af, &dp->fa, false);
}

/* Positions [0, rows), N = eps B^T already formed: s_r = ||Z_r||, y_r += s_r N_r. The rows are
 * short (n = 9, m = 10 for the first layer): plain loops, vectorized across nothing. */
KVI__HOT static void kvi__mn_rows_forward(kvi_real *restrict y, const kvi_real *restrict N,
                                          kvi_real *restrict s, const kvi_real *restrict Z,
                                          size_t rows, int n, int m) {
  for (size_t r = 0; r < rows; r++) {
    const kvi_real *z = Z + r * n, *nr = N + r * m;
    kvi_real *yr = y + r * m, ss = 0;
    for (int i = 0; i < n; i++) ss += z[i] * z[i];
    const kvi_real sr = KVI_SQRT(ss);
    s[r] = sr;
    for (int j = 0; j < m; j++) yr[j] += sr * nr[j];
  }
}

void kvi__mn_direct_forward(kvi_real *Y, const kvi_real *X, const kvi_real *eps, kvi_real *scr,
                            char *slots, const kvi__direct_plan *dp, const kvi_conv *l,
                            const kvi_params *p, const kvi__conv_plan *q, int batch) {
  const size_t img = (size_t)l->h * l->w * l->c_in, pos = (size_t)l->oh * l->ow;
  const int n = l->d.n, m = l->c_out;
  const kvi_real *b = l->d.ib >= 0 ? kvi_params_data(p, l->d.ib) : NULL;
#pragma omp parallel for schedule(static) if (q->ngr > 1)
  for (int g = 0; g < q->ngr; g++) {
    kvi_real *xp = scr + dp->o_grp + (size_t)g * dp->grp + dp->o_xp;
    const int c0 = g * q->nch / q->ngr;
    for (int c = c0; c < (g + 1) * q->nch / q->ngr; c++) {
      int e0, e1;
      size_t r0;
      kvi__chunk_range(q, l, c, batch, &e0, &e1, &r0);
      const kvi__mn_slot sl = kvi__mn_slot_at(slots, q, c, n, m);
      for (int e = e0; e < e1; e++) {
        const size_t k = (size_t)(e - e0) * pos; /* the image's first position in the chunk */
        kvi_real *y = Y + (size_t)e * pos * m, *Z = sl.Z + k * n;
        kvi__direct_pad(xp, X + (size_t)e * img, &dp->f, c == c0 && e == e0);
        kvi__direct_forward(y, xp, scr + dp->o_wf, &dp->f);
        kvi__direct_forward(Z, xp, scr + dp->o_wa, &dp->fa);
        kvi_gemm(false, false, (int)pos, m, m, 1, eps + (size_t)e * pos * m, m, scr + dp->o_bt, m,
                 0, sl.N + k * m, m); /* N = eps B^T */
        kvi__mn_rows_forward(y, sl.N + k * m, sl.s + k, Z, pos, n, m);
        if (b) kvi__add_bias(y, b, pos, m);
      }
    }
  }
}

/* Positions [0, rows): ds_r = <dY_r, N_r>; N_r <- dN_r = s_r dY_r; Z_r <- dZ_r = (ds_r / s_r) Z_r
 * (0 where s_r = 0). */
KVI__HOT static void kvi__mn_rows_backward(kvi_real *restrict Z, kvi_real *restrict N,
                                           const kvi_real *restrict s, const kvi_real *restrict dY,
                                           size_t rows, int n, int m) {
  for (size_t r = 0; r < rows; r++) {
    const kvi_real *dy = dY + r * m, sr = s[r];
    kvi_real ds = 0, *nr = N + r * m, *z = Z + r * n;
    for (int j = 0; j < m; j++) {
      ds += dy[j] * nr[j];
      nr[j] = sr * dy[j];
    }
    const kvi_real cr = sr > 0 ? ds / sr : 0;
    for (int i = 0; i < n; i++) z[i] *= cr;
  }
}

/* dP (Cholesky parameter storage, d x d) += the lower triangle of T, its diagonal times the
 * factor's e^{p_ii}, the diagonal of its materialized form L (or of L^T). */
static void kvi__lower_add(kvi_real *dP, const kvi_real *T, const kvi_real *L, int d) {
  for (int i = 0; i < d; i++) {
    kvi_real *row = dP + (size_t)i * d;
    const kvi_real *t = T + (size_t)i * d;
    for (int k = 0; k < i; k++) row[k] += t[k];
    row[i] += L[(size_t)i * d + i] * t[i];
  }
}

/* dX of examples [e0, e1) = col2im(dY M^T + dZ A^T) over the chunk's rows. */
static void kvi__mn_direct_dx(kvi_real *dX, kvi_real *dC, const kvi_real *dY, const kvi_real *dZ,
                              const kvi_real *Af, const kvi_conv *l, const kvi_params *p, int e0,
                              int e1) {
  const int n = l->d.n, m = l->c_out, rows = (e1 - e0) * l->oh * l->ow;
  kvi_gemm(false, true, rows, n, m, 1, dY, m, kvi_params_data(p, l->d.iM), m, 0, dC, n);
  kvi_gemm(false, true, rows, n, n, 1, dZ, n, Af, n, 1, dC, n);
  kvi__conv_col2im(dX, dC, l, e0, e1);
}

void kvi__mn_direct_group_backward(const kvi__conv_grads *gr, kvi_real *dX, kvi_real *dC,
                                   const kvi_real *dY, const kvi_real *X, const kvi_real *eps,
                                   kvi_real *scr, char *slots, const kvi__direct_plan *dp,
                                   const kvi_conv *l, const kvi_params *p, const kvi__conv_plan *q,
                                   int g, int batch) {
  const size_t img = (size_t)l->h * l->w * l->c_in, pos = (size_t)l->oh * l->ow;
  const int n = l->d.n, m = l->c_out, c0 = g * q->nch / q->ngr;
  kvi_real *sg = scr + dp->o_grp + (size_t)g * dp->grp, *tA = sg + dp->o_ta, *tB = sg + dp->o_tb;
  memset(tA, 0, (size_t)n * n * sizeof *tA);
  memset(tB, 0, (size_t)m * m * sizeof *tB);
  for (int c = c0; c < (g + 1) * q->nch / q->ngr; c++) {
    int e0, e1;
    size_t r0;
    kvi__chunk_range(q, l, c, batch, &e0, &e1, &r0);
    const kvi__mn_slot sl = kvi__mn_slot_at(slots, q, c, n, m);
    for (int e = e0; e < e1; e++) {
      const size_t k = (size_t)(e - e0) * pos;
      const kvi_real *dy = dY + (size_t)e * pos * m;
      kvi_real *dZ = sl.Z + k * n;
      kvi__direct_pad(sg + dp->o_xp, X + (size_t)e * img, &dp->f, c == c0 && e == e0);
      kvi__direct_pad_dy(sg + dp->o_dyp, dy, &dp->f);
      kvi__direct_wgrad(gr->M, sg + dp->o_xp, dy, sg + dp->o_dyp, &dp->f);
      if (gr->b) kvi__bias_grad(gr->b, dy, pos, m);
      kvi__mn_rows_backward(dZ, sl.N + k * m, sl.s + k, dy, pos, n, m);
      kvi_gemm(true, false, m, m, (int)pos, 1, sl.N + k * m, m, eps + (size_t)e * pos * m, m, 1, tB,
               m); /* += dN^T eps */
      kvi__direct_pad_dy(sg + dp->o_dzp, dZ, &dp->fa);
      kvi__direct_wgrad(tA, sg + dp->o_xp, dZ, sg + dp->o_dzp, &dp->fa);
    }
    if (dX) kvi__mn_direct_dx(dX, dC, dY + r0 * m, sl.Z, scr + dp->o_af, l, p, e0, e1);
  }
  kvi__lower_add(gr->A, tA, scr + dp->o_af, n);
  kvi__lower_add(gr->B, tB, scr + dp->o_bt, m);
}
