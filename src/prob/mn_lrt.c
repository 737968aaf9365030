/* Batched local reparameterization for the Matrix Normal posterior (docs/prob.md §4):
 *   Y = X M + diag(s) N,  Z = X A,  s_b = ||Z_b||,  N = eps1 B^T.
 * A and B are never materialized: with A = L + diag(e^a) (L strictly lower),
 * X A = X (L + I) + X diag(e^a - 1), where X (L + I) is one unit-diagonal trmm that reads the
 * parameter storage directly (BLAS never reads the diagonal of a unit triangle nor the upper
 * part), and the diagonal correction is fused into the O(B n) loop that forms s. */
#include <string.h>

#include "core/par.h"
#include "prob/prob_internal.h"

/* Row-block size of the lower-triangular factor gradients (kvi__lower_grad_acc). */
#ifndef KVI__LOWER_BS
#define KVI__LOWER_BS 64
#endif

/* Workspace of the MN noise part, in this order (each 64-byte aligned):
 * Z (B, n)   X A in forward, dZ in backward
 * N (B, m)   eps1 B^T in forward, dN = diag(s) dY in backward
 * s (B), ea (n) = e^{a_i}, eb (m) = e^{b_j}
 * T (KVI__LOWER_BS^2 per row block of the larger factor)   diagonal blocks of the factor gradients
 * Af (n^2, only when B >= n)   A = L + diag(e^a) as a plain lower triangle, so that one non-unit
 *                              trmm applies A^T in the backward that writes dX (kvi__mn_full) */
typedef struct {
  kvi_real *Z, *N, *s, *ea, *eb, *T, *Af, *W;
} kvi__mn_ws;

/* The writing backward materializes A when the batch has at least n rows (convolutions: the n^2
 * copy is then small next to the B x n passes it saves). */
static bool kvi__mn_full(int batch, int n) { return batch >= n; }

/* T: one KVI__LOWER_BS^2 block per row block of the larger factor (kvi__lower_grad_acc). */
static size_t kvi__lower_t_size(int n, int m) {
  const size_t rows = (size_t)(n > m ? n : m), bs = KVI__LOWER_BS;
  return (rows + bs - 1) / bs * bs * bs;
}

static kvi__mn_ws kvi__mn_ws_carve(void *ws, int batch, int n, int m) {
  kvi__mn_ws w;
  char *cur = ws;
  size_t B = (size_t)batch, N = (size_t)n, M = (size_t)m;
  w.Z = kvi__ws_take(&cur, B * N);
  w.N = kvi__ws_take(&cur, B * M);
  w.s = kvi__ws_take(&cur, B);
  w.ea = kvi__ws_take(&cur, N);
  w.eb = kvi__ws_take(&cur, M);
  w.T = kvi__ws_take(&cur, kvi__lower_t_size(n, m));
  w.Af = kvi__mn_full(batch, n) ? kvi__ws_take(&cur, N * N) : NULL;
  w.W = kvi__ws_take(&cur, B * N);
  return w;
}

size_t kvi__mn_lrt_ws(int batch, int n, int m) {
  size_t B = (size_t)batch, N = (size_t)n, M = (size_t)m;
  return kvi__ws_bytes(B * N) + kvi__ws_bytes(B * M) + kvi__ws_bytes(B) + kvi__ws_bytes(N) +
         kvi__ws_bytes(M) + kvi__ws_bytes(kvi__lower_t_size(n, m)) +
         (kvi__mn_full(batch, n) ? kvi__ws_bytes(N * N) : 0) + kvi__ws_bytes(B * N);
}

/* Row b of the noise forward: Z_b += X_b diag(e^a - 1), s_b = ||Z_b||, N_b += eps1_b diag(e^b - 1),
 * Y_b += s_b N_b. */
static inline void kvi__noise_fwd_row(const kvi__mn_ws *w, kvi_real *Y, const kvi_real *X,
                                      const kvi_real *eps1, int n, int m, int b) {
  kvi_real *z = w->Z + (size_t)b * n, *nb = w->N + (size_t)b * m, *y = Y + (size_t)b * m;
  const kvi_real *x = X + (size_t)b * n, *e = eps1 + (size_t)b * m, *ea = w->ea, *eb = w->eb;
  kvi_real ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int i = 0; i < n; i++) {
    kvi_real zi = z[i] + x[i] * (ea[i] - 1);
    z[i] = zi;
    ss += zi * zi;
  }
  kvi_real sb = KVI__SQRT(ss);
  w->s[b] = sb;
#pragma omp simd
  for (int j = 0; j < m; j++) {
    kvi_real nj = nb[j] + e[j] * (eb[j] - 1);
    nb[j] = nj;
    y[j] += sb * nj;
  }
}

void kvi__mn_lrt_noise_forward(kvi_real *Y, void *ws, const kvi_mn *q, const kvi_real *X,
                               const kvi_real *eps1, int batch) {
  const int n = q->n, m = q->m;
  kvi__mn_ws w = kvi__mn_ws_carve(ws, batch, n, m);
  for (int i = 0; i < n; i++) w.ea[i] = KVI__VEXP(q->A[(size_t)i * n + i]);
  for (int j = 0; j < m; j++) w.eb[j] = KVI__VEXP(q->B[(size_t)j * m + j]);
  const size_t bn = (size_t)batch * n, bm = (size_t)batch * m;
  /* Z = X (L_A + I), then + X diag(e^a - 1); s_b = ||Z_b|| */
  kvi_trmm_right_lower(true, batch, n, q->A, n, X, n, w.Z, n);
  /* N = eps1 (L_B + I)^T, then + eps1 diag(e^b - 1); Y += s_b N_b */
  memcpy(w.N, eps1, bm * sizeof *eps1);
  kvi_trmm(true, true, true, batch, m, 1, q->B, m, w.N, m);
  if (kvi__fork(bn + bm > KVI__OMP_MIN)) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < batch; b++) kvi__noise_fwd_row(&w, Y, X, eps1, n, m, b);
  } else {
    for (int b = 0; b < batch; b++) kvi__noise_fwd_row(&w, Y, X, eps1, n, m, b);
  }
}

/* dP (Cholesky parameter storage, n x n) += the lower triangle of P1^T P2 (P1, P2 (K, n) with
 * leading dimension ld), converted to the parameters: strict lower as is, diagonal times
 * ediag_i = e^{p_ii}. Row block [r0, r0 + h) of the lower triangle splits into the panel left of
 * the diagonal block, accumulated by gemm straight into dP (beta = 1: no O(n^2) conversion pass,
 * no n x n buffer), and the diagonal block, formed in its own T block (KVI__LOWER_BS^2) and added
 * with the diagonal converted. The flops are (1/2 + KVI__LOWER_BS/(2n)) of a full gemm; entries
 * above the diagonal of dP are never written. */
typedef struct {
  kvi_real *dP, *T;
  const kvi_real *ediag, *P1, *P2;
  int n, K, ld;
} kvi__lower_acc;

static kvi_gemm_args kvi__lower_left(const kvi__lower_acc *a, int r0, int h) {
  kvi_gemm_args g = {true,       false, h,     r0,    a->K, 1,
                     a->P1 + r0, a->ld, a->P2, a->ld, 1,    a->dP + (size_t)r0 * a->n,
                     a->n};
  return g;
}

/* The diagonal block of row block r0, then the addition: its gemm as kvi_gemm would cut it at
 * the top level, panel after panel (panels: called inside the item loop's region), or by
 * kvi_gemm itself. */
static void kvi__lower_diag(const kvi__lower_acc *a, int r0, int h, bool panels) {
  const int bs = KVI__LOWER_BS;
  kvi_real *T = a->T + (size_t)(r0 / bs) * bs * bs;
  kvi_gemm_args g = {true, false, h, h, a->K, 1, a->P1 + r0, a->ld, a->P2 + r0, a->ld, 0, T, h};
  if (panels) {
    const int np = kvi_gemm_panels(&g);
    for (int t = 0; t < np; t++) kvi_gemm_panel(&g, t, np);
  } else {
    kvi_gemm(g.ta, g.tb, g.M, g.N, g.K, 1, g.A, g.lda, g.B, g.ldb, 0, g.C, g.ldc);
  }
  for (int i = 0; i < h; i++) {
    kvi_real *d = a->dP + (size_t)(r0 + i) * a->n + r0;
    const kvi_real *t = T + (size_t)i * h;
    for (int k = 0; k < i; k++) d[k] += t[k];
    d[i] += a->ediag[r0 + i] * t[i];
  }
}

/* Row blocks from the last (the widest) up; each block's items are its left panel's gemm panels
 * (kvi_gemm's own cut) and then its diagonal block. first[c] is the first item of the c-th block
 * in that order. Outside a parallel region, with several threads and enough work, all items form
 * one dynamic loop; otherwise the blocks run in turn, each product split by kvi_gemm as usual.
 * Both give the same bits. */
static void kvi__lower_grad_acc(kvi_real *dP, const kvi_real *ediag, int n, int K,
                                const kvi_real *P1, const kvi_real *P2, int ld, kvi_real *T) {
  const int bs = KVI__LOWER_BS, nb = (n + bs - 1) / bs;
  const kvi__lower_acc a = {dP, T, ediag, P1, P2, n, K, ld};
  int *first = NULL;
  if (kvi__fork(0.5 * n * n * K >= (double)(1 << 20)))
    first = kvi_alloc((size_t)(nb + 1) * sizeof *first);
  if (!first) { /* in turn (also when the small table cannot be had: the same bits) */
    for (int r0 = 0; r0 < n; r0 += bs) {
      const int h = n - r0 < bs ? n - r0 : bs;
      kvi_gemm_args g = kvi__lower_left(&a, r0, h);
      if (r0 > 0) kvi_gemm(g.ta, g.tb, g.M, g.N, g.K, 1, g.A, g.lda, g.B, g.ldb, 1, g.C, g.ldc);
      kvi__lower_diag(&a, r0, h, false);
    }
    return;
  }
  first[0] = 0;
  for (int c = 0; c < nb; c++) {
    const int r0 = (nb - 1 - c) * bs, h = n - r0 < bs ? n - r0 : bs;
    kvi_gemm_args g = kvi__lower_left(&a, r0, h);
    first[c + 1] = first[c] + (r0 > 0 ? kvi_gemm_panels(&g) : 0) + 1;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int it = 0; it < first[nb]; it++) {
    int c = 0;
    while (first[c + 1] <= it) c++;
    const int r0 = (nb - 1 - c) * bs, h = n - r0 < bs ? n - r0 : bs, t = it - first[c];
    const int np = first[c + 1] - first[c] - 1; /* the left panel's gemm panels */
    if (t < np) {
      kvi_gemm_args g = kvi__lower_left(&a, r0, h);
      kvi_gemm_panel(&g, t, np);
    } else {
      kvi__lower_diag(&a, r0, h, true);
    }
  }
  kvi_free(first);
}

/* Row b of the noise backward: ds_b = <dY_b, N_b>; dN = diag(s) dY; c_b = ds_b / s_b;
 * dZ = diag(c) Z, written into dX too when `full`, or dX += dZ diag(e^a - 1) (the diagonal part
 * of dZ A^T; the rest is a trmm after). s = 0 only for x_b = 0, where s is not differentiable:
 * subgradient 0. */
static inline void kvi__noise_bwd_row(const kvi__mn_ws *w, kvi_real *dX, const kvi_real *dY, int n,
                                      int m, int b, bool full) {
  kvi_real *z = w->Z + (size_t)b * n, *nb = w->N + (size_t)b * m;
  const kvi_real *dy = dY + (size_t)b * m, *ea = w->ea;
  kvi_real sb = w->s[b], ds = 0;
#pragma omp simd reduction(+ : ds)
  for (int j = 0; j < m; j++) {
    ds += dy[j] * nb[j];
    nb[j] = sb * dy[j];
  }
  kvi_real cb = sb > 0 ? ds / sb : 0;
  if (full) {
    kvi_real *dx = dX + (size_t)b * n;
#pragma omp simd
    for (int i = 0; i < n; i++) {
      kvi_real dz = cb * z[i];
      z[i] = dz;
      dx[i] = dz;
    }
  } else if (dX) {
    kvi_real *dx = dX + (size_t)b * n;
#pragma omp simd
    for (int i = 0; i < n; i++) {
      kvi_real dz = cb * z[i];
      z[i] = dz;
      dx[i] += dz * (ea[i] - 1);
    }
  } else {
    for (int i = 0; i < n; i++) z[i] *= cb;
  }
}

void kvi__mn_lrt_noise_backward(kvi_mn_grad *g, kvi_real *dX, const kvi_real *dY, void *ws,
                                const kvi_mn *q, const kvi_real *X, const kvi_real *eps1, int batch,
                                bool write_dx) {
  const int n = q->n, m = q->m;
  kvi__mn_ws w = kvi__mn_ws_carve(ws, batch, n, m);
  if (dX && write_dx && !w.Af) {
    memset(dX, 0, (size_t)batch * n * sizeof *dX); /* then add as usual */
    write_dx = false;
  }
  /* writing with A materialized: dX = dZ, then dX <- dX A^T (non-unit trmm) */
  const bool full = dX && write_dx;
  kvi_real *gA = g ? g->A : NULL, *gB = g ? g->B : NULL;
  const kvi_real *ea = w.ea;
  const size_t bn = (size_t)batch * n, bm = (size_t)batch * m;
  if (kvi__fork(bn + bm > KVI__OMP_MIN)) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < batch; b++) kvi__noise_bwd_row(&w, dX, dY, n, m, b, full);
  } else {
    for (int b = 0; b < batch; b++) kvi__noise_bwd_row(&w, dX, dY, n, m, b, full);
  }
  if (gB) {
    /* N = eps1 B^T: dB = dN^T eps1 (lower triangle only) */
    kvi__lower_grad_acc(gB, w.eb, m, batch, w.N, eps1, m, w.T);
  }
  if (gA) {
    /* Z = X A: dA = X^T dZ (lower triangle only) */
    kvi__lower_grad_acc(gA, ea, n, batch, X, w.Z, n, w.T);
  }
  if (full) {
    /* dX = dZ A^T, A = L_A + diag(e^a) copied into Af (its upper part is never read) */
    for (int i = 0; i < n; i++) {
      memcpy(w.Af + (size_t)i * n, q->A + (size_t)i * n, (size_t)i * sizeof *w.Af);
      w.Af[(size_t)i * n + i] = ea[i];
    }
    kvi_trmm(true, true, false, batch, n, 1, w.Af, n, dX, n);
  } else if (dX) {
    /* dX += dZ (L_A + I)^T */
    kvi_trmm_right_lower_t_add(true, batch, n, q->A, n, w.Z, n, dX, n, w.W);
  }
}

/* ---- public MN LRT ------------------------------------------------------------------------ */
static kvi_status kvi__mn_lrt_args(const void *Y, const void *ws, const void *X, const void *eps,
                                   int batch, const char *fn) {
  if (batch <= 0) return kvi_fail(KVI_ERR_ARG, "%s: batch size %d must be positive", fn, batch);
  if (!Y || !X) return kvi_fail(KVI_ERR_ARG, "%s: output/gradient or input X is NULL", fn);
  if (eps && !ws) return kvi_fail(KVI_ERR_ARG, "%s: workspace is NULL", fn);
  if (((uintptr_t)ws) % 64)
    return kvi_fail(KVI_ERR_ARG, "%s: workspace %p is not 64-byte aligned", fn, ws);
  return KVI_OK;
}

size_t kvi_mn_lrt_ws_size(int batch, int n, int m) {
  if (batch <= 0 || n <= 0 || m <= 0) return 0;
  return kvi__mn_lrt_ws(batch, n, m);
}

kvi_status kvi_mn_lrt_forward(kvi_real *Y, void *ws, const kvi_mn *q, const kvi_real *X,
                              const kvi_real *eps1, int batch) {
  const char *fn = "kvi_mn_lrt_forward";
  kvi_status s = kvi__check_mn_args(q, fn);
  if (s) return s;
  if ((s = kvi__mn_lrt_args(Y, ws, X, eps1, batch, fn))) return s;
  kvi_gemm(false, false, batch, q->m, q->n, 1, X, q->n, q->M, q->m, 0, Y, q->m);
  if (eps1) kvi__mn_lrt_noise_forward(Y, ws, q, X, eps1, batch);
  return KVI_OK;
}

static kvi_status kvi__mn_lrt_backward(kvi_mn_grad *g, kvi_real *dX, const kvi_real *dY, void *ws,
                                       const kvi_mn *q, const kvi_real *X, const kvi_real *eps1,
                                       int batch, bool write_dx, const char *fn) {
  kvi_status s = kvi__check_mn_args(q, fn);
  if (s) return s;
  if ((s = kvi__mn_lrt_args(dY, ws, X, eps1, batch, fn))) return s;
  const int n = q->n, m = q->m;
  if (eps1) kvi__mn_lrt_noise_backward(g, dX, dY, ws, q, X, eps1, batch, write_dx);
  if (g && g->M) kvi_gemm(true, false, n, m, batch, 1, X, n, dY, m, 1, g->M, m);
  /* with noise the input gradient's noise part is already in dX */
  if (dX) kvi_gemm(false, true, batch, n, m, 1, dY, m, q->M, m, eps1 || !write_dx ? 1 : 0, dX, n);
  return KVI_OK;
}

kvi_status kvi_mn_lrt_backward(kvi_mn_grad *g, kvi_real *dX, const kvi_real *dY, void *ws,
                               const kvi_mn *q, const kvi_real *X, const kvi_real *eps1,
                               int batch) {
  return kvi__mn_lrt_backward(g, dX, dY, ws, q, X, eps1, batch, false, "kvi_mn_lrt_backward");
}

kvi_status kvi_mn_lrt_backward_set(kvi_mn_grad *g, kvi_real *dX, const kvi_real *dY, void *ws,
                                   const kvi_mn *q, const kvi_real *X, const kvi_real *eps1,
                                   int batch) {
  return kvi__mn_lrt_backward(g, dX, dY, ws, q, X, eps1, batch, true, "kvi_mn_lrt_backward_set");
}
