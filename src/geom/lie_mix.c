/* Variational inference with a mixture of structured Gaussians (docs/geom.md (G33), (G34)):
 * q(w) = sum_k w_k N(w | mu_k, (B_k B_k^T)^-1) fitted to the density exp(-l(w)) by structured
 * NGD per component, with Stein estimates of the gradient of E_q[l + log q] drawn from each
 * component, and optionally the weights by natural gradient in log(w_k / w_K) (Lin, Khan &
 * Schmidt 2019; Lin et al. 2021). */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geom/geom_internal.h"

typedef struct {
  int p, K;
  const double *mu, *B; /* K x p, K x p x p */
  const double *logw;   /* K log weights (normalized) */
  double *R, *logdet;   /* K x p x p inverses, K log |det B_k| */
  double *t, *lw;       /* scratch: p, K */
} kvi__mix;

/* grad log q(w) into gq (p): -sum_c rho_c(w) B_c B_c^T (w - mu_c); returns log q(w) + p/2 log 2 pi.
 */
static double kvi__mix_grad_log_q(const kvi__mix *m, const double *w, double *gq) {
  const int p = m->p, K = m->K;
  double mx = -INFINITY;
  for (int c = 0; c < K; c++) { /* log N_c(w) up to the shared constant */
    const double *Bc = m->B + (size_t)c * p * p, *mc = m->mu + (size_t)c * p;
    double q = 0;
    for (int j = 0; j < p; j++) { /* (B^T (w - mu))_j */
      double s = 0;
      for (int i = 0; i < p; i++) s += Bc[(size_t)i * p + j] * (w[i] - mc[i]);
      q += s * s;
    }
    m->lw[c] = m->logw[c] + m->logdet[c] - 0.5 * q;
    mx = fmax(mx, m->lw[c]);
  }
  double z = 0;
  for (int c = 0; c < K; c++) z += (m->lw[c] = exp(m->lw[c] - mx));
  memset(gq, 0, (size_t)p * sizeof *gq);
  for (int c = 0; c < K; c++) {
    const double rho = m->lw[c] / z, *Bc = m->B + (size_t)c * p * p, *mc = m->mu + (size_t)c * p;
    for (int j = 0; j < p; j++) {
      double s = 0;
      for (int i = 0; i < p; i++) s += Bc[(size_t)i * p + j] * (w[i] - mc[i]);
      m->t[j] = s;
    }
    for (int i = 0; i < p; i++) {
      double s = 0;
      for (int j = 0; j < p; j++) s += Bc[(size_t)i * p + j] * m->t[j];
      gq[i] -= rho * s;
    }
  }
  return mx + log(z);
}

/* R_k = B_k^-1 and log |det B_k| for every component. */
static bool kvi__mix_prepare(kvi__mix *m, double *lu, int *ipiv) {
  const int p = m->p;
  for (int k = 0; k < m->K; k++) {
    const double *Bk = m->B + (size_t)k * p * p;
    double *Rk = m->R + (size_t)k * p * p;
    memcpy(lu, Bk, (size_t)p * p * sizeof *lu);
    if (LAPACKE_dgetrf(LAPACK_ROW_MAJOR, p, p, lu, p, ipiv) != 0) return false;
    double ld = 0;
    for (int i = 0; i < p; i++) ld += log(fabs(lu[(size_t)i * p + i]));
    m->logdet[k] = ld;
    memcpy(Rk, lu, (size_t)p * p * sizeof *Rk);
    if (LAPACKE_dgetri(LAPACK_ROW_MAJOR, p, Rk, p, ipiv) != 0) return false;
  }
  return kvi__dfinite(m->R, (size_t)m->K * p * p);
}

/* log w <- log w - beta (v - v_K) in the natural parameters log(w_k / w_K) of the weights, then
 * normalized (G34). */
static void kvi__mix_weights(double *logw, const double *v, int K, double beta) {
  double mx = -INFINITY;
  for (int k = 0; k < K; k++) {
    logw[k] -= beta * (v[k] - v[K - 1]);
    mx = fmax(mx, logw[k]);
  }
  double z = 0;
  for (int k = 0; k < K; k++) z += exp(logw[k] - mx);
  for (int k = 0; k < K; k++) logw[k] -= mx + log(z);
}

kvi_status kvi_lie_mixture_fit(const kvi_lie_problem *pb, const kvi_lie_group *g, int K, double *mu,
                               double *B, double *logw, int iters, int samples, double beta,
                               uint64_t seed, kvi_lie_report *r) {
  if (!pb || !pb->fg || !g || !mu || !B || !r || K < 1 || samples < 1 || iters < 0)
    return kvi_fail(KVI_ERR_ARG, "lie_mixture_fit: bad argument");
  kvi_status s = kvi_lie_group_check(g);
  if (s) return s;
  if (g->kind == KVI_LIE_KRON || g->p != pb->dim)
    return kvi_fail(KVI_ERR_ARG, "lie_mixture_fit: a non-Kronecker group of the problem's size");
  memset(r, 0, sizeof *r);
  const int p = g->p;
  const size_t pp = (size_t)p * p, Kpp = (size_t)K * pp;
  double *w =
      malloc((2 * Kpp + 3 * pp + 7 * (size_t)p + 2 * (size_t)K + (size_t)K * p) * sizeof *w);
  int *ipiv = malloc((size_t)p * sizeof *ipiv);
  if (!w || !ipiv) {
    free(w), free(ipiv);
    return kvi_fail(KVI_ERR_NOMEM, "lie_mixture_fit: out of memory");
  }
  double *lwu = malloc(2 * (size_t)K * sizeof *lwu); /* uniform log weights; the E[l + log q] */
  if (!lwu) {
    free(w), free(ipiv);
    return kvi_fail(KVI_ERR_NOMEM, "lie_mixture_fit: out of memory");
  }
  double *vk = lwu + K;
  for (int k = 0; k < K; k++) lwu[k] = -log((double)K);
  if (logw) { /* normalized */
    kvi__mix_weights(logw, lwu, K, 0);
  }
  kvi__mix m = {p, K, mu, B, logw ? logw : lwu, w, w + Kpp, NULL, NULL};
  double *Bn = w + Kpp + K, *H = Bn + Kpp, *lu = H + pp, *X = lu + pp, *eps = X + pp;
  double *x = eps + p, *gr = x + p, *gq = gr + p, *gm = gq + p, *rg = gm + p;
  double *mun = rg + p;
  m.t = mun + (size_t)K * p, m.lw = m.t + p;
  kvi_rng rng = kvi_rng_stream(seed, 0x313);
  kvi_lie_safety safe = {1, 0, 0};
  const double t0 = kvi_time_now();
  for (r->iters = 0; r->iters < iters && !s; r->iters++) {
    if (!kvi__mix_prepare(&m, lu, ipiv)) {
      s = kvi_fail(KVI_ERR_LINALG, "lie_mixture_fit: a component's B is singular");
      break;
    }
    memcpy(Bn, B, Kpp * sizeof *Bn);
    memcpy(mun, mu, (size_t)K * p * sizeof *mun);
    memset(vk, 0, (size_t)K * sizeof *vk);
    for (int k = 0; k < K; k++) {
      const double *Rk = m.R + (size_t)k * pp;
      memset(H, 0, pp * sizeof *H);
      memset(gm, 0, (size_t)p * sizeof *gm);
      for (int t = 0; t < samples; t++) {
        kvi_rng_normal_f64(&rng, eps, (size_t)p);
        memcpy(x, mu + (size_t)k * p, (size_t)p * sizeof *x);
        kvi__dgemm(true, false, p, 1, p, 1, Rk, eps, 1, x); /* w = mu_k + R_k^T eps */
        const double lx = pb->fg(x, gr, pb->user);
        r->fevals++, r->gevals++;
        vk[k] += (lx + kvi__mix_grad_log_q(&m, x, gq)) / samples;
        for (int i = 0; i < p; i++) gr[i] += gq[i]; /* grad (l + log q) */
        for (int i = 0; i < p; i++) gm[i] += gr[i] / samples;
        kvi__dgemm(false, false, p, 1, p, 1, Rk, gr, 0, rg);
        for (int i = 0; i < p; i++)
          for (int j = 0; j < p; j++) H[(size_t)i * p + j] += eps[i] * rg[j] / samples;
      }
      memcpy(X, H, pp * sizeof *X);
      kvi__dsym(p, X); /* the entropy's -gamma I is inside log q */
      kvi__dgemm(false, false, p, 1, p, 1, Rk, gm, 0, rg);
      kvi__dgemm(true, false, p, 1, p, 1, Rk, rg, 0, gr); /* S_k^-1 g_mu */
      for (int i = 0; i < p; i++) mun[(size_t)k * p + i] -= beta * gr[i];
      kvi_status us = kvi_lie_update(g, Bn + (size_t)k * pp, X, beta, &safe);
      if (us && us != KVI_ERR_LINALG) s = us; /* a rejected step keeps that B_k */
    }
    if (!s) {
      memcpy(B, Bn, Kpp * sizeof *B);
      memcpy(mu, mun, (size_t)K * p * sizeof *mu);
      if (logw) kvi__mix_weights(logw, vk, K, beta);
    }
  }
  r->seconds = kvi_time_now() - t0;
  r->damped = safe.damped, r->rejected = safe.rejected;
  free(w), free(ipiv), free(lwu);
  return s;
}
