/* Allocation-free kernels of the encoder heads (docs/vae.md, "Head kernels"): the sample, its
 * backward and the KL to N(0, I) with its gradient, straight on the packed outputs of one image
 * (layout in kronvi/models.h: row i of a triangle starts at i(i+1)/2 and ends with its diagonal,
 * stored as a log). Temporaries live on the stack (|z| <= KVI_VAE_MAX_LATENT reals each, at
 * most 16 KB in all; MN with q > 64 goes to the generic path), the arithmetic is
 * kvi_real with the KL sums in double, the exps are the vectorizable ones of core/vmath.h; no
 * triangle is unpacked, no buffer zeroed, nothing allocated, no OpenMP region opened.
 * Costs per image: DIAG O(d), MN O(p^2 q + p q^2), MV O(d^2) flops.
 *
 * The generic path of vae_head.c (src/prob on unpacked views) is the reference: a kernel
 * declines (returns false, with dout and kl untouched) whenever that path has something to
 * decide: a non-finite input or result, or a log-diagonal outside (-87, 88), where its exp is
 * not a normal float. */
#include <string.h>

#include "core/vmath.h"
#include "models/vae_head_fast.h"

#ifdef KVI_DOUBLE
#define VHF_EXP exp
#else
#define VHF_EXP kvi__vexpf
#endif
#define VHF_MAX KVI_VAE_MAX_LATENT
#define VHF_MAX_Q 64 /* MN's q for the kernels (its triangle's gradient on the stack: 8 KB) */
/* The entry points get an AVX2 clone next to the baseline one (as KVI__HOT, but without the
 * AVX-512 clone: the loops here are a triangle's rows, mostly shorter than 16 lanes, and
 * measured slower at that width), and every function below is inlined into them, so that
 * each clone runs it at its own vector width. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && \
    !defined(KVI_NO_CLONES)
#define VHF_HOT __attribute__((target_clones("avx2", "default")))
#else
#define VHF_HOT
#endif
#if defined(__GNUC__)
#define VHF_INLINE static inline __attribute__((always_inline))
#else
#define VHF_INLINE static inline
#endif

VHF_INLINE int vhf_tri(int n) { return n * (n + 1) / 2; }

/* e[i] = exp of the diagonal of the packed triangle t (n rows); false when one of the logs is
 * outside (-87, 88) or NaN. */
VHF_INLINE bool vhf_diag_exp(kvi_real *e, const kvi_real *t, int n) {
  for (int i = 0; i < n; i++) e[i] = t[vhf_tri(i) + i];
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (int i = 0; i < n; i++) {
    const kvi_real a = e[i];
    bad |= !(a > -87 && a < 88);
    e[i] = VHF_EXP(a);
  }
  return !bad;
}

VHF_INLINE bool vhf_finite(const kvi_real *x, int n) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (int k = 0; k < n; k++) bad |= !(x[k] - x[k] == 0);
  return !bad;
}

/* y = L x for the packed lower triangle L with diagonal e: y_i = e_i x_i + sum_{k<i} L_ik x_k. */
VHF_INLINE void vhf_trmv(kvi_real *y, const kvi_real *L, const kvi_real *e, const kvi_real *x,
                         int n) {
  for (int i = 0; i < n; i++) {
    const kvi_real *l = L + vhf_tri(i);
    kvi_real acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int k = 0; k < i; k++) acc += l[k] * x[k];
    y[i] = e[i] * x[i] + acc;
  }
}

/* |L|_F^2 of the packed triangle t with diagonal e, in double; *logdet = sum log L_ii. */
VHF_INLINE double vhf_frob2(const kvi_real *t, const kvi_real *e, int n, double *logdet) {
  const int nt = vhf_tri(n);
  double s = 0, ld = 0;
#pragma omp simd reduction(+ : s)
  for (int k = 0; k < nt; k++) s += (double)t[k] * (double)t[k];
  for (int i = 0; i < n; i++) { /* swap the logs' squares for the diagonal's */
    const double a = t[vhf_tri(i) + i];
    s += (double)e[i] * (double)e[i] - a * a;
    ld += a;
  }
  *logdet = ld;
  return s;
}

/* The gradient of c/2 |L|_F^2 + c0 sum log L_ii w.r.t. the packed triangle t, added to dt:
 * c L_ik below the diagonal, c L_ii^2 + c0 on it. */
VHF_INLINE void vhf_frob2_grad(kvi_real *dt, const kvi_real *t, const kvi_real *e, int n, double c,
                               double c0) {
  kvi_real keep[VHF_MAX];
  const kvi_real cr = (kvi_real)c;
  const int nt = vhf_tri(n);
  for (int i = 0; i < n; i++) keep[i] = dt[vhf_tri(i) + i];
#pragma omp simd
  for (int k = 0; k < nt; k++) dt[k] += cr * t[k];
  for (int i = 0; i < n; i++)
    dt[vhf_tri(i) + i] = (kvi_real)((double)keep[i] + c * (double)e[i] * (double)e[i] + c0);
}

/* ---- DIAG: z = mu + sigma eps ------------------------------------------------------------ */
VHF_INLINE bool vhf_in_range(const kvi_real *x, int n, kvi_real lo, kvi_real hi) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (int k = 0; k < n; k++) bad |= !(x[k] > lo && x[k] < hi);
  return !bad;
}

VHF_INLINE bool vhf_diag_sample(kvi_real *z, const kvi_real *out, const kvi_real *eps, int d) {
  const kvi_real *mu = out, *ls = out + d;
  if (!vhf_in_range(ls, d, -87, 88)) return false;
#pragma omp simd
  for (int i = 0; i < d; i++) z[i] = mu[i] + VHF_EXP(ls[i]) * eps[i];
  return true;
}

/* dmu += dz, dlog sigma += dz eps sigma. */
VHF_INLINE bool vhf_diag_backward(kvi_real *dout, const kvi_real *dz, const kvi_real *out,
                                  const kvi_real *eps, int d) {
  const kvi_real *ls = out + d;
  if (!vhf_in_range(ls, d, -87, 88)) return false;
  kvi_real *dls = dout + d;
#pragma omp simd
  for (int i = 0; i < d; i++) {
    dout[i] += dz[i];
    dls[i] += dz[i] * eps[i] * VHF_EXP(ls[i]);
  }
  return true;
}

/* KL = 1/2 sum [sigma^2 + mu^2 - 1 - 2 log sigma]; d/dmu = mu, d/dlog sigma = sigma^2 - 1. */
VHF_INLINE bool vhf_diag_kl(double *kl, kvi_real *dout, kvi_real gs, const kvi_real *out, int d) {
  const kvi_real *mu = out, *ls = out + d;
  kvi_real v[VHF_MAX];
  if (!vhf_in_range(ls, d, -43, 44)) return false; /* sigma^2 a normal float */
  double acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int i = 0; i < d; i++) {
    const kvi_real e = VHF_EXP(ls[i]);
    v[i] = e * e;
    acc += (double)e * (double)e + (double)mu[i] * (double)mu[i] - 1.0 - 2.0 * (double)ls[i];
  }
  if (!isfinite(acc)) return false;
  *kl = 0.5 * acc;
  if (!dout) return true;
  kvi_real *dls = dout + d;
#pragma omp simd
  for (int i = 0; i < d; i++) {
    dout[i] += gs * mu[i];
    dls[i] += gs * (v[i] - 1);
  }
  return true;
}

/* ---- MV: z = mu + L eps ------------------------------------------------------------------ */
VHF_INLINE bool vhf_mv_sample(kvi_real *z, const kvi_real *out, const kvi_real *eps, int d) {
  kvi_real e[VHF_MAX], y[VHF_MAX];
  if (!vhf_diag_exp(e, out + d, d)) return false;
  vhf_trmv(y, out + d, e, eps, d);
#pragma omp simd
  for (int i = 0; i < d; i++) y[i] += out[i];
  if (!vhf_finite(y, d)) return false;
  memcpy(z, y, (size_t)d * sizeof *z); /* z may alias eps */
  return true;
}

/* dmu += dz; dL_ik += dz_i eps_k (k < i), dlog L_ii += dz_i eps_i L_ii. */
VHF_INLINE bool vhf_mv_backward(kvi_real *dout, const kvi_real *dz, const kvi_real *out,
                                const kvi_real *eps, int d) {
  kvi_real e[VHF_MAX];
  if (!vhf_diag_exp(e, out + d, d) || !vhf_finite(out, d + vhf_tri(d)) || !vhf_finite(eps, d) ||
      !vhf_finite(dz, d))
    return false;
  for (int i = 0; i < d; i++) {
    kvi_real *g = dout + d + vhf_tri(i);
    const kvi_real c = dz[i];
    dout[i] += c;
#pragma omp simd
    for (int k = 0; k < i; k++) g[k] += c * eps[k];
    g[i] += c * eps[i] * e[i];
  }
  return true;
}

/* KL = 1/2 [|L|_F^2 + |mu|^2 - d] - sum log L_ii; d/dmu = mu, d/dL_ik = L_ik (k < i),
 * d/dlog L_ii = L_ii^2 - 1. */
VHF_INLINE bool vhf_mv_kl(double *kl, kvi_real *dout, kvi_real gs, const kvi_real *out, int d) {
  kvi_real e[VHF_MAX];
  if (!vhf_diag_exp(e, out + d, d)) return false;
  double ld, m2 = 0;
  const double f2 = vhf_frob2(out + d, e, d, &ld);
#pragma omp simd reduction(+ : m2)
  for (int i = 0; i < d; i++) m2 += (double)out[i] * (double)out[i];
  const double v = 0.5 * (f2 + m2 - d) - ld;
  if (!isfinite(v)) return false;
  *kl = v;
  if (!dout) return true;
#pragma omp simd
  for (int i = 0; i < d; i++) dout[i] += gs * out[i];
  vhf_frob2_grad(dout + d, out + d, e, d, gs, -(double)gs);
  return true;
}

/* ---- MN: Z = M + A E B^T (p x q, row-major) ------------------------------------------------ */
/* The p x q matrices are handled by rows: q is small (2 for a 20 x 2 latent), so the loops over a
 * row are short and nothing needs a horizontal sum. */
/* T (p, q) = E B^T: T_kj = e_j E_kj + sum_{l<j} B_jl E_kl. */
VHF_INLINE void vhf_mn_t(kvi_real *T, const kvi_real *E, const kvi_real *B, const kvi_real *eB,
                         int p, int q) {
  for (int k = 0; k < p; k++) {
    const kvi_real *e = E + (size_t)k * q;
    kvi_real *t = T + (size_t)k * q;
    for (int j = 0; j < q; j++) {
      const kvi_real *b = B + vhf_tri(j);
      kvi_real acc = eB[j] * e[j];
      for (int l = 0; l < j; l++) acc += b[l] * e[l];
      t[j] = acc;
    }
  }
}

/* Y (p, q) = C + A X for the packed triangle A with diagonal e (C may be NULL: 0). */
VHF_INLINE void vhf_mn_ax(kvi_real *Y, const kvi_real *C, const kvi_real *A, const kvi_real *e,
                          const kvi_real *X, int p, int q) {
  for (int i = 0; i < p; i++) {
    const kvi_real *a = A + vhf_tri(i);
    kvi_real *y = Y + (size_t)i * q;
    const kvi_real *xi = X + (size_t)i * q;
    for (int j = 0; j < q; j++) y[j] = (C ? C[(size_t)i * q + j] : 0) + e[i] * xi[j];
    for (int k = 0; k < i; k++) {
      const kvi_real c = a[k], *x = X + (size_t)k * q;
      for (int j = 0; j < q; j++) y[j] += c * x[j];
    }
  }
}

VHF_INLINE bool vhf_mn_sample_q(kvi_real *z, const kvi_vae_head *h, const kvi_real *out,
                                const kvi_real *eps, const int q) {
  const int p = h->p, d = h->d;
  const kvi_real *A = out + d, *B = A + vhf_tri(p);
  kvi_real eA[VHF_MAX], eB[VHF_MAX], T[VHF_MAX], w[VHF_MAX];
  if (!vhf_diag_exp(eA, A, p) || !vhf_diag_exp(eB, B, q)) return false;
  vhf_mn_t(T, eps, B, eB, p, q);
  vhf_mn_ax(w, out, A, eA, T, p, q);
  if (!vhf_finite(w, d)) return false;
  memcpy(z, w, (size_t)d * sizeof *z); /* z may alias eps */
  return true;
}

/* dM += dZ; dA = dZ T^T, dB = dZ^T S with T = E B^T, S = A E (lower parts, diagonals times
 * the factors' diagonals), as kvi_mn_sample_backward. */
VHF_INLINE bool vhf_mn_backward_q(kvi_real *dout, const kvi_vae_head *h, const kvi_real *dz,
                                  const kvi_real *out, const kvi_real *eps, const int q) {
  const int p = h->p, d = h->d;
  const kvi_real *A = out + d, *B = A + vhf_tri(p);
  kvi_real eA[VHF_MAX], eB[VHF_MAX], T[VHF_MAX], S[VHF_MAX], gB[VHF_MAX_Q * (VHF_MAX_Q + 1) / 2];
  if (q > VHF_MAX_Q) return false; /* the generic path, with its scratch arena */
  if (!vhf_diag_exp(eA, A, p) || !vhf_diag_exp(eB, B, q)) return false;
  vhf_mn_t(T, eps, B, eB, p, q);
  vhf_mn_ax(S, NULL, A, eA, eps, p, q);
  kvi_real *dA = dout + d, *dB = dA + vhf_tri(p);
  memset(gB, 0, (size_t)vhf_tri(q) * sizeof *gB);
  for (int i = 0; i < p; i++) {
    const kvi_real *g = dz + (size_t)i * q, *s = S + (size_t)i * q;
    kvi_real *da = dA + vhf_tri(i);
    for (int k = 0; k <= i; k++) { /* (dZ T^T)_ik */
      const kvi_real *t = T + (size_t)k * q;
      kvi_real acc = 0;
      for (int j = 0; j < q; j++) acc += g[j] * t[j];
      da[k] += k < i ? acc : acc * eA[i];
    }
    for (int j = 0; j < q; j++) /* (dZ^T S)_jl, summed over the rows i */
      for (int l = 0; l <= j; l++) gB[vhf_tri(j) + l] += g[j] * s[l];
    for (int j = 0; j < q; j++) dout[(size_t)i * q + j] += g[j];
  }
  for (int j = 0; j < q; j++) {
    for (int l = 0; l < j; l++) dB[vhf_tri(j) + l] += gB[vhf_tri(j) + l];
    dB[vhf_tri(j) + j] += gB[vhf_tri(j) + j] * eB[j];
  }
  return true;
}

/* The row loops run over q: with q a constant for the common small q they unroll. */
static bool vhf_mn_sample(kvi_real *z, const kvi_vae_head *h, const kvi_real *out,
                          const kvi_real *eps) {
  switch (h->q) {
    case 1:
      return vhf_mn_sample_q(z, h, out, eps, 1);
    case 2:
      return vhf_mn_sample_q(z, h, out, eps, 2);
    case 3:
      return vhf_mn_sample_q(z, h, out, eps, 3);
    case 4:
      return vhf_mn_sample_q(z, h, out, eps, 4);
    default:
      return vhf_mn_sample_q(z, h, out, eps, h->q);
  }
}

static bool vhf_mn_backward(kvi_real *dout, const kvi_vae_head *h, const kvi_real *dz,
                            const kvi_real *out, const kvi_real *eps) {
  switch (h->q) {
    case 1:
      return vhf_mn_backward_q(dout, h, dz, out, eps, 1);
    case 2:
      return vhf_mn_backward_q(dout, h, dz, out, eps, 2);
    case 3:
      return vhf_mn_backward_q(dout, h, dz, out, eps, 3);
    case 4:
      return vhf_mn_backward_q(dout, h, dz, out, eps, 4);
    default:
      return vhf_mn_backward_q(dout, h, dz, out, eps, h->q);
  }
}

/* KL = 1/2 [tr(U) tr(V) + |M|^2 - p q] - q sum log A_ii - p sum log B_jj with U = A A^T,
 * V = B B^T (tr U = |A|_F^2); d/dM = M, d/dA = tr(V) A (log diagonal: tr(V) A_ii^2 - q), and
 * d/dB likewise with tr(U) and p. */
VHF_INLINE bool vhf_mn_kl(double *kl, kvi_real *dout, kvi_real gs, const kvi_vae_head *h,
                          const kvi_real *out) {
  const int p = h->p, q = h->q, d = h->d;
  const kvi_real *A = out + d, *B = A + vhf_tri(p);
  kvi_real eA[VHF_MAX], eB[VHF_MAX];
  if (!vhf_diag_exp(eA, A, p) || !vhf_diag_exp(eB, B, q)) return false;
  double la, lb, m2 = 0;
  const double U = vhf_frob2(A, eA, p, &la), V = vhf_frob2(B, eB, q, &lb);
#pragma omp simd reduction(+ : m2)
  for (int k = 0; k < d; k++) m2 += (double)out[k] * (double)out[k];
  const double v = 0.5 * (U * V + m2 - d) - q * la - p * lb;
  if (!isfinite(v)) return false;
  *kl = v;
  if (!dout) return true;
#pragma omp simd
  for (int k = 0; k < d; k++) dout[k] += gs * out[k];
  vhf_frob2_grad(dout + d, A, eA, p, gs * V, -(double)gs * q);
  vhf_frob2_grad(dout + d + vhf_tri(p), B, eB, q, gs * U, -(double)gs * p);
  return true;
}

/* ---- entry points ------------------------------------------------------------------------- */
VHF_HOT bool kvi__vhf_sample(const kvi_vae_head *h, kvi_real *z, const kvi_real *out,
                             const kvi_real *eps) {
  switch (h->family) {
    case KVI_VAE_DIAG:
      return vhf_diag_sample(z, out, eps, h->d);
    case KVI_VAE_MN:
      return vhf_mn_sample(z, h, out, eps);
    default:
      return vhf_mv_sample(z, out, eps, h->d);
  }
}

VHF_HOT bool kvi__vhf_backward(const kvi_vae_head *h, kvi_real *dout, const kvi_real *dz,
                               const kvi_real *out, const kvi_real *eps) {
  switch (h->family) {
    case KVI_VAE_DIAG:
      return vhf_diag_backward(dout, dz, out, eps, h->d);
    case KVI_VAE_MN:
      return vhf_mn_backward(dout, h, dz, out, eps);
    default:
      return vhf_mv_backward(dout, dz, out, eps, h->d);
  }
}

VHF_HOT bool kvi__vhf_kl(const kvi_vae_head *h, double *kl, kvi_real *dout, kvi_real gscale,
                         const kvi_real *out) {
  if (!isfinite(gscale)) return false;
  switch (h->family) {
    case KVI_VAE_DIAG:
      return vhf_diag_kl(kl, dout, gscale, out, h->d);
    case KVI_VAE_MN:
      return vhf_mn_kl(kl, dout, gscale, h, out);
    default:
      return vhf_mv_kl(kl, dout, gscale, out, h->d);
  }
}
