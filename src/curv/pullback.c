/* Diagonal Gauss-Newton curvature by the pullback sampling trick (docs/curv.md, eq. P1):
 * G = (1/B) sum_b J_b^T H_b J_b. A pseudo-gradient Dw = J^T u with u_b = e_b / sqrt(B) and
 * E[e_b e_b^T] = H_b has covariance G: for the softmax, e_b = q_b - onehot(y_b) with y_b ~ q_b
 * (targets drawn from the model, E[e e^T] = diag(q) - q q^T); for the Gaussian likelihood
 * e_b = sqrt(beta) eps_b. The mean of Dw^2 over S draws estimates diag(G). */
#include <math.h>
#include <string.h>

#include "curv/curv_internal.h"

/* u (B, K): one draw of the output pseudo-gradients. */
static void kvi__pullback_outputs(kvi_real *u, const kvi_curv *c, kvi_rng *rng) {
  const int B = c->b.batch, K = c->net->out_size;
  const double rs = 1 / sqrt((double)B);
  if (c->b.loss == KVI_LOSS_SQUARED) {
    kvi_rng_normal(rng, u, (size_t)B * K);
    const double sc = exp(0.5 * (double)c->b.log_beta) * rs;
    for (size_t i = 0; i < (size_t)B * K; i++) u[i] = (kvi_real)(u[i] * sc);
    return;
  }
  for (int b = 0; b < B; b++) {
    const kvi_real *z = c->out + (size_t)b * K;
    kvi_real *ub = u + (size_t)b * K, pick;
    double mx = z[0], sum = 0, acc = 0;
    for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < K; k++) sum += exp(z[k] - mx);
    kvi_rng_uniform(rng, &pick, 1);
    int y = K - 1;
    for (int k = 0; k < K; k++)
      if ((acc += exp(z[k] - mx) / sum) >= (double)pick) {
        y = k;
        break;
      }
    for (int k = 0; k < K; k++) ub[k] = (kvi_real)((exp(z[k] - mx) / sum - (k == y)) * rs);
  }
}

kvi_status kvi_curv_diag_sample(kvi_curv *c, kvi_rng *rng, int samples, double ema,
                                kvi_real *diag) {
  if (!c || !rng || !diag || samples < 1 || !(ema >= 0 && ema < 1))
    return kvi_fail(KVI_ERR_ARG, "curv_diag_sample: NULL argument, %d samples or ema %g", samples,
                    ema);
  const size_t n = c->net->params->n;
  kvi_status s = kvi__curv_ensure(c, rng, diag);
  if (s) return s;
  kvi_real *dw = c->dw;
  const double w = (1 - ema) / samples;
  for (size_t i = 0; i < n; i++) diag[i] = (kvi_real)(ema * diag[i]);
  for (int k = 0; k < samples && !s; k++) {
    kvi__pullback_outputs(c->u, c, rng);
    if ((s = kvi_curv_vjp(c, c->u, dw)) != KVI_OK) break;
    for (size_t i = 0; i < n; i++) diag[i] += (kvi_real)(w * dw[i] * dw[i]);
  }
  return s;
}
