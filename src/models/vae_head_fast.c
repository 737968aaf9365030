/* Allocation-free kernels of the encoder heads (docs/vae.md, "Head kernels"): the sample, its
 * backward and the KL to N(0, I) with its gradient, straight on the packed outputs of one image
 * (layout in kronvi/models.h: row i of a triangle starts at i(i+1)/2 and ends with its diagonal,
 * stored as a log). Temporaries live on the stack (|z| <= KVI_VAE_MAX_LATENT), the arithmetic is
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

static inline int vhf_tri(int n) { return n * (n + 1) / 2; }

/* e[i] = exp of the diagonal of the packed triangle t (n rows); false when one of the logs is
 * outside (-87, 88) or NaN. */
static bool vhf_diag_exp(kvi_real *e, const kvi_real *t, int n) {
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

static bool vhf_finite(const kvi_real *x, int n) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (int k = 0; k < n; k++) bad |= !(x[k] - x[k] == 0);
  return !bad;
}

/* y = L x for the packed lower triangle L with diagonal e: y_i = e_i x_i + sum_{k<i} L_ik x_k. */
static void vhf_trmv(kvi_real *y, const kvi_real *L, const kvi_real *e, const kvi_real *x, int n) {
  for (int i = 0; i < n; i++) {
    const kvi_real *l = L + vhf_tri(i);
    kvi_real acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int k = 0; k < i; k++) acc += l[k] * x[k];
    y[i] = e[i] * x[i] + acc;
  }
}

/* |L|_F^2 of the packed triangle t with diagonal e, in double; *logdet = sum log L_ii. */
static double vhf_frob2(const kvi_real *t, const kvi_real *e, int n, double *logdet) {
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
static void vhf_frob2_grad(kvi_real *dt, const kvi_real *t, const kvi_real *e, int n, double c,
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
static bool vhf_in_range(const kvi_real *x, int n, kvi_real lo, kvi_real hi) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (int k = 0; k < n; k++) bad |= !(x[k] > lo && x[k] < hi);
  return !bad;
}

static bool vhf_diag_sample(kvi_real *z, const kvi_real *out, const kvi_real *eps, int d) {
  const kvi_real *mu = out, *ls = out + d;
  if (!vhf_in_range(ls, d, -87, 88)) return false;
#pragma omp simd
  for (int i = 0; i < d; i++) z[i] = mu[i] + VHF_EXP(ls[i]) * eps[i];
  return true;
}

/* dmu += dz, dlog sigma += dz eps sigma. */
static bool vhf_diag_backward(kvi_real *dout, const kvi_real *dz, const kvi_real *out,
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
static bool vhf_diag_kl(double *kl, kvi_real *dout, kvi_real gs, const kvi_real *out, int d) {
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
static bool vhf_mv_sample(kvi_real *z, const kvi_real *out, const kvi_real *eps, int d) {
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
static bool vhf_mv_backward(kvi_real *dout, const kvi_real *dz, const kvi_real *out,
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
static bool vhf_mv_kl(double *kl, kvi_real *dout, kvi_real gs, const kvi_real *out, int d) {
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
/* xt (q, p) = x^T for x (p, q). */
static void vhf_transpose(kvi_real *xt, const kvi_real *x, int p, int q) {
  for (int i = 0; i < p; i++)
    for (int j = 0; j < q; j++) xt[(size_t)j * p + i] = x[(size_t)i * q + j];
}

/* Tt (q, p) = (E B^T)^T = B E^T from Et = E^T: row j is e_j Et_j + sum_{l<j} B_jl Et_l. */
static void vhf_mn_t(kvi_real *Tt, const kvi_real *Et, const kvi_real *B, const kvi_real *eB, int p,
                     int q) {
  for (int j = 0; j < q; j++) {
    kvi_real *t = Tt + (size_t)j * p;
    const kvi_real *b = B + vhf_tri(j), *ej = Et + (size_t)j * p;
#pragma omp simd
    for (int k = 0; k < p; k++) t[k] = eB[j] * ej[k];
    for (int l = 0; l < j; l++) {
      const kvi_real c = b[l], *el = Et + (size_t)l * p;
#pragma omp simd
      for (int k = 0; k < p; k++) t[k] += c * el[k];
    }
  }
}

/* Z = M + A T with T = E B^T: column j of A T is A times row j of Tt. */
static bool vhf_mn_sample(kvi_real *z, const kvi_vae_head *h, const kvi_real *out,
                          const kvi_real *eps) {
  const int p = h->p, q = h->q, d = h->d;
  const kvi_real *A = out + d, *B = A + vhf_tri(p);
  kvi_real eA[VHF_MAX], eB[VHF_MAX], Et[VHF_MAX], Tt[VHF_MAX], y[VHF_MAX], w[VHF_MAX];
  if (!vhf_diag_exp(eA, A, p) || !vhf_diag_exp(eB, B, q)) return false;
  vhf_transpose(Et, eps, p, q);
  vhf_mn_t(Tt, Et, B, eB, p, q);
  for (int j = 0; j < q; j++) {
    vhf_trmv(y, A, eA, Tt + (size_t)j * p, p);
    for (int i = 0; i < p; i++) w[i * q + j] = out[i * q + j] + y[i];
  }
  if (!vhf_finite(w, d)) return false;
  memcpy(z, w, (size_t)d * sizeof *z);
  return true;
}

/* dA += the lower part of dZ T^T (row i: sum_j dZ_ij Tt_j, up to its diagonal, which takes a
 * factor A_ii for the log storage). */
static void vhf_mn_grad_a(kvi_real *dA, const kvi_real *dZt, const kvi_real *Tt, const kvi_real *eA,
                          int p, int q) {
  kvi_real g[VHF_MAX];
  for (int i = 0; i < p; i++) {
    kvi_real *da = dA + vhf_tri(i);
#pragma omp simd
    for (int k = 0; k <= i; k++) g[k] = 0;
    for (int j = 0; j < q; j++) {
      const kvi_real c = dZt[(size_t)j * p + i], *t = Tt + (size_t)j * p;
#pragma omp simd
      for (int k = 0; k <= i; k++) g[k] += c * t[k];
    }
#pragma omp simd
    for (int k = 0; k < i; k++) da[k] += g[k];
    da[i] += g[i] * eA[i];
  }
}

/* dM += dZ; dA = dZ T^T, dB = dZ^T S with T = E B^T, S = A E (lower parts, diagonals times
 * the factors' diagonals), as kvi_mn_sample_backward. */
static bool vhf_mn_backward(kvi_real *dout, const kvi_vae_head *h, const kvi_real *dz,
                            const kvi_real *out, const kvi_real *eps) {
  const int p = h->p, q = h->q, d = h->d;
  const kvi_real *A = out + d, *B = A + vhf_tri(p);
  kvi_real eA[VHF_MAX], eB[VHF_MAX], Et[VHF_MAX], Tt[VHF_MAX], St[VHF_MAX], dZt[VHF_MAX];
  if (!vhf_diag_exp(eA, A, p) || !vhf_diag_exp(eB, B, q)) return false;
  vhf_transpose(Et, eps, p, q);
  vhf_transpose(dZt, dz, p, q);
  vhf_mn_t(Tt, Et, B, eB, p, q);
  for (int l = 0; l < q; l++) vhf_trmv(St + (size_t)l * p, A, eA, Et + (size_t)l * p, p);
#pragma omp simd
  for (int k = 0; k < d; k++) dout[k] += dz[k];
  vhf_mn_grad_a(dout + d, dZt, Tt, eA, p, q);
  kvi_real *dB = dout + d + vhf_tri(p);
  for (int j = 0; j < q; j++)
    for (int l = 0; l <= j; l++) {
      const kvi_real *a = dZt + (size_t)j * p, *s = St + (size_t)l * p;
      kvi_real g = 0;
#pragma omp simd reduction(+ : g)
      for (int i = 0; i < p; i++) g += a[i] * s[i];
      dB[vhf_tri(j) + l] += l < j ? g : g * eB[j];
    }
  return true;
}

/* KL = 1/2 [tr(U) tr(V) + |M|^2 - p q] - q sum log A_ii - p sum log B_jj with U = A A^T,
 * V = B B^T (tr U = |A|_F^2); d/dM = M, d/dA = tr(V) A (log diagonal: tr(V) A_ii^2 - q), and
 * d/dB likewise with tr(U) and p. */
static bool vhf_mn_kl(double *kl, kvi_real *dout, kvi_real gs, const kvi_vae_head *h,
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
KVI__HOT bool kvi__vhf_sample(const kvi_vae_head *h, kvi_real *z, const kvi_real *out,
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

KVI__HOT bool kvi__vhf_backward(const kvi_vae_head *h, kvi_real *dout, const kvi_real *dz,
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

KVI__HOT bool kvi__vhf_kl(const kvi_vae_head *h, double *kl, kvi_real *dout, kvi_real gscale,
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
