/* Backward passes of the reparameterized samples of DIAG and MN (the full-covariance Gaussian's
 * is kvi_mvn_sample_backward in mvn.c): given dW, the gradient of some loss with respect to a
 * sample W drawn from the caller's standard normals, the gradients with respect to the
 * distribution's parameters are added (+=). Used where W itself is the quantity of interest,
 * e.g. the latent code of a variational auto-encoder (docs/vae.md).
 *
 *   DIAG: W = mu + sigma * eps:   dmu += dW,  dlog_sigma += dW * eps * sigma.
 *   MN:   W = M + A E B^T:        dM += dW,  dA = dW B E^T,  dB = dW^T A E  (lower parts), then
 *         the diagonal of each factor times L_ii (log-diagonal storage, kvi_chol_grad_to_params).
 * The MN products are O(n^2 m + n m^2), by loops in double: the matrices this serves are small
 * (a latent code of tens of numbers); weight-sized ones go through the local reparameterization.
 * Temporaries come from the scratch arena (reset before returning), or the heap when it is NULL. */
#include <string.h>

#include "prob/prob_internal.h"

kvi_status kvi_diag_sample_backward(kvi_diag_grad *g, const kvi_real *dW, const kvi_diag *q,
                                    const kvi_real *eps) {
  const char *fn = "kvi_diag_sample_backward";
  kvi_status s = kvi__check_diag_args(q, fn);
  if (s) return s;
  if (!dW || !eps) return kvi_fail(KVI_ERR_ARG, "%s: dW or eps is NULL", fn);
  if (!g) return KVI_OK;
  const size_t nm = (size_t)q->n * q->m;
  for (size_t k = 0; k < nm; k++) {
    if (g->mu) g->mu[k] += dW[k];
    if (g->log_sigma)
      g->log_sigma[k] = (kvi_real)((double)g->log_sigma[k] +
                                   (double)dW[k] * (double)eps[k] * exp((double)q->log_sigma[k]));
  }
  return KVI_OK;
}

/* L_ij of the materialized factor from its storage P (n, n), j <= i. */
static inline double kvi__lij(const kvi_real *P, int n, int i, int j) {
  const double p = (double)P[(size_t)i * n + j];
  return i == j ? exp(p) : p;
}

/* dP (n, n) += storage gradient of sum_ij G_ij L_ij, G (n, n) lower part, in double. */
static void kvi__chol_add_grad(kvi_real *dP, const double *G, const kvi_real *P, int n) {
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < i; j++) dP[(size_t)i * n + j] += (kvi_real)G[(size_t)i * n + j];
    dP[(size_t)i * n + i] += (kvi_real)(G[(size_t)i * n + i] * exp((double)P[(size_t)i * n + i]));
  }
}

kvi_status kvi_mn_sample_backward(kvi_mn_grad *g, const kvi_real *dW, const kvi_mn *q,
                                  const kvi_real *E, kvi_arena *scratch) {
  const char *fn = "kvi_mn_sample_backward";
  kvi_status s = kvi__check_mn_args(q, fn);
  if (s) return s;
  if (!dW || !E) return kvi_fail(KVI_ERR_ARG, "%s: dW or E is NULL", fn);
  if (!g) return KVI_OK;
  const int n = q->n, m = q->m;
  if (g->M)
    for (size_t k = 0; k < (size_t)n * m; k++) g->M[k] += dW[k];
  if (!g->A && !g->B) return KVI_OK;
  /* T (n, m) = E B^T, S (n, m) = A E; GA (n, n) = dW T^T, GB (m, m) = dW^T S */
  const size_t bytes = (2 * (size_t)n * m + (size_t)n * n + (size_t)m * m) * sizeof(double);
  const kvi_arena_mark mark = scratch ? kvi_arena_get_mark(scratch) : (kvi_arena_mark){0, 0};
  double *T = scratch ? kvi_arena_alloc(scratch, bytes) : kvi_alloc(bytes);
  if (!T) return kvi_fail(KVI_ERR_NOMEM, "%s: out of memory", fn);
  double *S = T + (size_t)n * m, *GA = S + (size_t)n * m, *GB = GA + (size_t)n * n;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) {
      double t = 0, u = 0;
      for (int l = 0; l <= j; l++) t += (double)E[(size_t)i * m + l] * kvi__lij(q->B, m, j, l);
      for (int k = 0; k <= i; k++) u += kvi__lij(q->A, n, i, k) * (double)E[(size_t)k * m + j];
      T[(size_t)i * m + j] = t;
      S[(size_t)i * m + j] = u;
    }
  for (int i = 0; i < n; i++)
    for (int k = 0; k <= i; k++) {
      double a = 0;
      for (int j = 0; j < m; j++) a += (double)dW[(size_t)i * m + j] * T[(size_t)k * m + j];
      GA[(size_t)i * n + k] = a;
    }
  for (int j = 0; j < m; j++)
    for (int l = 0; l <= j; l++) {
      double b = 0;
      for (int i = 0; i < n; i++) b += (double)dW[(size_t)i * m + j] * S[(size_t)i * m + l];
      GB[(size_t)j * m + l] = b;
    }
  if (g->A) kvi__chol_add_grad(g->A, GA, q->A, n);
  if (g->B) kvi__chol_add_grad(g->B, GB, q->B, m);
  if (scratch)
    kvi_arena_reset(scratch, mark);
  else
    kvi_free(T);
  return KVI_OK;
}
