/* Losses: softmax cross-entropy and the Gaussian likelihood, means over the batch (or, for one
 * process of a data-parallel batch, its rows' share of the whole batch's mean). */
#include <math.h>

#include "kronvi/nn.h"

kvi_status kvi_softmax_xent_part(double *loss, kvi_real *dlogits, kvi_real *probs, int *correct,
                                 const kvi_real *logits, const int32_t *labels, int batch, int K,
                                 int batch_total) {
  if (!loss || !logits || !labels || batch <= 0 || K <= 0 || batch_total < batch)
    return kvi_fail(KVI_ERR_ARG, "softmax_xent: NULL argument or bad size (%d of %d, %d)", batch,
                    batch_total, K);
  for (int b = 0; b < batch; b++)
    if (labels[b] < 0 || labels[b] >= K)
      return kvi_fail(KVI_ERR_ARG, "label %d of row %d outside [0, %d)", labels[b], b, K);
  double total = 0;
  int ok = 0;
  for (int b = 0; b < batch; b++) {
    const kvi_real *z = logits + (size_t)b * K;
    int arg = 0;
    double mx = z[0];
    for (int k = 1; k < K; k++)
      if (z[k] > mx) mx = z[k], arg = k;
    double se = 0;
    for (int k = 0; k < K; k++) se += exp(z[k] - mx);
    double lse = mx + log(se);
    total += lse - z[labels[b]];
    ok += arg == labels[b];
    for (int k = 0; k < K; k++) {
      double pk = exp(z[k] - lse);
      if (probs) probs[(size_t)b * K + k] = (kvi_real)pk;
      if (dlogits) dlogits[(size_t)b * K + k] = (kvi_real)((pk - (k == labels[b])) / batch_total);
    }
  }
  *loss = total / batch_total;
  if (correct) *correct += ok;
  return KVI_OK;
}

kvi_status kvi_softmax_xent(double *loss, kvi_real *dlogits, kvi_real *probs, int *correct,
                            const kvi_real *logits, const int32_t *labels, int batch, int K) {
  return kvi_softmax_xent_part(loss, dlogits, probs, correct, logits, labels, batch, K, batch);
}

kvi_status kvi_gauss_nll_part(double *loss, kvi_real *dY, kvi_real *dlog_beta, const kvi_real *Y,
                              const kvi_real *T, kvi_real log_beta, int batch, int K,
                              int batch_total) {
  if (!loss || !Y || !T || batch <= 0 || K <= 0 || batch_total < batch)
    return kvi_fail(KVI_ERR_ARG, "gauss_nll: NULL argument or bad size (%d of %d, %d)", batch,
                    batch_total, K);
  double beta = exp((double)log_beta), sq = 0;
  const double w = (double)batch / batch_total; /* 1 in one process */
  for (size_t i = 0; i < (size_t)batch * K; i++) {
    double r = (double)Y[i] - T[i];
    sq += r * r;
    if (dY) dY[i] = (kvi_real)(beta * r / batch_total);
  }
  /* per row: 1/2 beta ||r||^2 - K/2 log beta + K/2 log 2 pi */
  *loss = 0.5 * beta * sq / batch_total - w * (0.5 * K * log_beta) +
          w * (0.5 * K * log(6.283185307179586));
  if (dlog_beta) *dlog_beta += (kvi_real)(0.5 * beta * sq / batch_total - w * (0.5 * K));
  return KVI_OK;
}

kvi_status kvi_gauss_nll(double *loss, kvi_real *dY, kvi_real *dlog_beta, const kvi_real *Y,
                         const kvi_real *T, kvi_real log_beta, int batch, int K) {
  return kvi_gauss_nll_part(loss, dY, dlog_beta, Y, T, log_beta, batch, K, batch);
}

/* eq. L1: for one row, q = softmax(z), the Hessian of lse(z) - z_y is diag(q) - q q^T. */
kvi_status kvi_softmax_xent_hvp(kvi_real *Rd, const kvi_real *logits, const kvi_real *Rz, int batch,
                                int K) {
  if (!Rd || !logits || !Rz || batch <= 0 || K <= 0)
    return kvi_fail(KVI_ERR_ARG, "softmax_xent_hvp: NULL argument or bad size (%d, %d)", batch, K);
  for (int b = 0; b < batch; b++) {
    const kvi_real *z = logits + (size_t)b * K, *rz = Rz + (size_t)b * K;
    kvi_real *rd = Rd + (size_t)b * K;
    double mx = z[0], se = 0, qr = 0;
    for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < K; k++) se += exp(z[k] - mx);
    for (int k = 0; k < K; k++) qr += exp(z[k] - mx) / se * rz[k];
    for (int k = 0; k < K; k++) {
      double q = exp(z[k] - mx) / se;
      rd[k] = (kvi_real)(q * (rz[k] - qr) / batch);
    }
  }
  return KVI_OK;
}

/* eq. L2: 1/2 beta ||z - t||^2 has Hessian beta I. */
kvi_status kvi_gauss_nll_hvp(kvi_real *Rd, const kvi_real *Rz, kvi_real log_beta, int batch,
                             int K) {
  if (!Rd || !Rz || batch <= 0 || K <= 0)
    return kvi_fail(KVI_ERR_ARG, "gauss_nll_hvp: NULL argument or bad size (%d, %d)", batch, K);
  const double beta = exp((double)log_beta);
  for (size_t i = 0; i < (size_t)batch * K; i++) Rd[i] = (kvi_real)(beta * Rz[i] / batch);
  return KVI_OK;
}
