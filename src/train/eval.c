/* Evaluation: accuracy and NLL with the posterior-mean weights, Bayesian model averaging over K
 * sampled weight sets (by the local reparameterization, which draws exact samples of each
 * example's predictive distribution), expected calibration error, and sparsification by
 * log alpha = log(Var / M^2) > threshold. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/train.h"

#define ECE_BINS 15

static void kvi__restore_means(kvi_net *net, kvi_real *saved);

kvi_status kvi_net_zero_pruned(kvi_net *net, double thr, unsigned char *mask) {
  kvi_real *la = kvi_alloc(kvi_net_weight_count(net) * sizeof *la);
  if (!la) return KVI_ERR_NOMEM;
  size_t off = 0;
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    kvi_dense *l = kvi_net_dense(net, k, NULL);
    size_t nm = (size_t)l->n * l->m;
    kvi_real *M = kvi_params_data(net->params, l->iM);
    kvi_status s = kvi_dense_log_alpha(la, net->params, l);
    if (s) {
      kvi_free(la);
      return s;
    }
    for (size_t i = 0; i < nm; i++) {
      if (la[i] > thr) M[i] = 0;
      if (mask) mask[off + i] = la[i] > thr;
    }
    off += nm;
  }
  kvi_free(la);
  return KVI_OK;
}

/* Saves the means of all dense layers into a buffer and zeroes the pruned ones. */
static kvi_status kvi__prune_means(kvi_net *net, double thr, kvi_real **saved) {
  kvi_real *buf = kvi_alloc(kvi_net_weight_count(net) * sizeof(kvi_real));
  if (!buf) return KVI_ERR_NOMEM;
  size_t off = 0;
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    kvi_dense *l = kvi_net_dense(net, k, NULL);
    size_t nm = (size_t)l->n * l->m;
    memcpy(buf + off, kvi_params_data(net->params, l->iM), nm * sizeof(kvi_real));
    off += nm;
  }
  kvi_status s = kvi_net_zero_pruned(net, thr, NULL);
  if (s) {
    kvi__restore_means(net, buf);
    return s;
  }
  *saved = buf;
  return KVI_OK;
}

static void kvi__restore_means(kvi_net *net, kvi_real *saved) {
  size_t off = 0;
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    kvi_dense *l = kvi_net_dense(net, k, NULL);
    size_t nm = (size_t)l->n * l->m;
    memcpy(kvi_params_data(net->params, l->iM), saved + off, nm * sizeof(kvi_real));
    off += nm;
  }
  kvi_free(saved);
}

kvi_status kvi_sparsity_compute(kvi_sparsity *out, kvi_net *net, double thr) {
  memset(out, 0, sizeof *out);
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  if (nd > 64) return kvi_fail(KVI_ERR_UNSUPPORTED, "more than 64 dense layers");
  for (int k = 0; k < nd; k++) {
    kvi_dense *l = kvi_net_dense(net, k, NULL);
    size_t nm = (size_t)l->n * l->m;
    kvi_real *la = kvi_alloc(nm * sizeof(kvi_real));
    char *rowleft = calloc((size_t)l->n, 1), *colleft = calloc((size_t)l->m, 1);
    if (!la || !rowleft || !colleft) {
      kvi_free(la), free(rowleft), free(colleft);
      return kvi_fail(KVI_ERR_NOMEM, "out of memory");
    }
    kvi_status s = kvi_dense_log_alpha(la, net->params, l);
    kvi_layer_sparsity *ls = &out->layer[k];
    snprintf(ls->name, sizeof ls->name, "%s", l->name);
    ls->n = l->n, ls->m = l->m, ls->total = (int64_t)nm;
    for (int i = 0; i < l->n && !s; i++)
      for (int j = 0; j < l->m; j++)
        if (!(la[(size_t)i * l->m + j] > thr)) {
          ls->left++;
          rowleft[i] = colleft[j] = 1;
        }
    ls->rows_total = l->n, ls->cols_total = l->m;
    for (int i = 0; i < l->n; i++) ls->rows_left += rowleft[i];
    for (int j = 0; j < l->m; j++) ls->cols_left += colleft[j];
    out->total += ls->total, out->left += ls->left;
    kvi_free(la), free(rowleft), free(colleft);
    if (s) return s;
  }
  out->nlayers = nd;
  return KVI_OK;
}

/* One of the paper's per-layer lines: A (totals), W (left) in units of `unit`, % dropped. */
static void kvi__print_triple(FILE *f, const char *what, const int64_t *tot, const int64_t *left,
                              int n, double unit) {
  const char *fmt = unit > 1 ? "%s%.1f" : "%s%.0f";
  fprintf(f, "%-12s A ", what);
  for (int k = 0; k < n; k++) fprintf(f, fmt, k ? "-" : "", (double)tot[k] / unit);
  fprintf(f, "   W ");
  for (int k = 0; k < n; k++) fprintf(f, fmt, k ? "-" : "", (double)left[k] / unit);
  fprintf(f, "   %% ");
  for (int k = 0; k < n; k++)
    fprintf(f, "%s%.0f", k ? "-" : "",
            tot[k] ? 100.0 * (double)(tot[k] - left[k]) / (double)tot[k] : 0.0);
  fprintf(f, "\n");
}

/* Paper Table 1 form: A total weights (thousands), W left, % dropped; plus rows and columns. */
void kvi_sparsity_print(FILE *f, const kvi_sparsity *s, const char *title) {
  double drop = s->total ? 100.0 * (double)(s->total - s->left) / (double)s->total : 0;
  fprintf(f, "%s (%lld weights left of %lld, %.2f%% dropped, compression x%.1f)\n",
          title ? title : "sparsity", (long long)s->left, (long long)s->total, drop,
          s->left ? (double)s->total / (double)s->left : 0.0);
  fprintf(f, "%-8s %10s %10s %8s %12s %12s\n", "layer", "A (k)", "W (k)", "%", "rows left",
          "cols left");
  for (int k = 0; k < s->nlayers; k++) {
    const kvi_layer_sparsity *l = &s->layer[k];
    fprintf(f, "%-8s %10.1f %10.1f %8.1f %6d/%-5d %6d/%-5d\n", l->name, (double)l->total / 1e3,
            (double)l->left / 1e3,
            l->total ? 100.0 * (double)(l->total - l->left) / (double)l->total : 0.0, l->rows_left,
            l->rows_total, l->cols_left, l->cols_total);
  }
  /* the paper's three tables (Table 2): free zeroing in thousands of weights, row pruning in
   * hundreds of rows (inputs / input taps), column pruning in columns (neurons / filters) */
  int64_t tot[64], left[64];
  for (int k = 0; k < s->nlayers; k++) tot[k] = s->layer[k].total, left[k] = s->layer[k].left;
  kvi__print_triple(f, "weights (k)", tot, left, s->nlayers, 1e3);
  for (int k = 0; k < s->nlayers; k++)
    tot[k] = s->layer[k].rows_total, left[k] = s->layer[k].rows_left;
  kvi__print_triple(f, "rows (100s)", tot, left, s->nlayers, 1e2);
  for (int k = 0; k < s->nlayers; k++)
    tot[k] = s->layer[k].cols_total, left[k] = s->layer[k].cols_left;
  kvi__print_triple(f, "columns", tot, left, s->nlayers, 1);
}

kvi_status kvi_evaluate(kvi_metrics *out, kvi_net *net, const kvi_dataset *ds, int samples,
                        uint64_t seed, double thr, kvi_real log_beta) {
  if (!out || !net || !ds || ds->n <= 0)
    return kvi_fail(KVI_ERR_ARG, "evaluate: NULL argument or empty data set");
  if (ds->d != net->in_size)
    return kvi_fail(KVI_ERR_SHAPE, "evaluate: data have %d features, network expects %d", ds->d,
                    net->in_size);
  memset(out, 0, sizeof *out);
  out->n = ds->n;
  out->samples = samples;
  const int K = net->out_size, Bmax = net->max_batch;
  const bool cls = ds->y != NULL;
  if (cls && ds->nclasses > K)
    return kvi_fail(KVI_ERR_SHAPE, "data have %d classes but the network has %d outputs",
                    ds->nclasses, K);
  if (!cls && ds->k != K)
    return kvi_fail(KVI_ERR_SHAPE, "data have %d targets but the network has %d outputs", ds->k, K);
  kvi_real *probs = kvi_alloc((size_t)Bmax * K * sizeof(kvi_real));
  double *acc = malloc((size_t)Bmax * K * sizeof(double));
  if (!probs || !acc) {
    kvi_free(probs), free(acc);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  double ece_conf[ECE_BINS] = {0}, ece_acc[ECE_BINS] = {0}, ece_n[ECE_BINS] = {0};
  int64_t correct_mean = 0, correct_bma = 0;
  double nll_mean = 0, nll_bma = 0, sq = 0, ent_mean = 0, ent_bma = 0;
  kvi_status s = KVI_OK;
  for (int64_t r0 = 0; r0 < ds->n && !s; r0 += Bmax) {
    int b = (int)(ds->n - r0 < Bmax ? ds->n - r0 : Bmax);
    const kvi_real *x = ds->x + (size_t)r0 * ds->d;
    const kvi_real *y;
    s = kvi_net_forward(net, &y, x, b, NULL);
    if (s) break;
    if (!cls) {
      double l;
      s = kvi_gauss_nll(&l, NULL, NULL, y, ds->t + (size_t)r0 * K, log_beta, b, K);
      nll_mean += l * b;
      for (size_t i = 0; i < (size_t)b * K; i++) {
        double e = (double)y[i] - ds->t[(size_t)r0 * K + i];
        sq += e * e;
      }
      continue;
    }
    double l;
    int c = 0;
    s = kvi_softmax_xent(&l, NULL, probs, &c, y, ds->y + r0, b, K);
    if (s) break;
    nll_mean += l * b;
    correct_mean += c;
    for (size_t i = 0; i < (size_t)b * K; i++) /* predictive entropy, mean weights */
      ent_mean -= probs[i] > 0 ? (double)probs[i] * log((double)probs[i]) : 0;
    if (samples <= 0) continue;
    memset(acc, 0, (size_t)b * K * sizeof(double));
    for (int k = 0; k < samples && !s; k++) {
      kvi_rng rng = kvi_rng_stream(seed, ((uint64_t)(r0 / Bmax) << 20) + (uint64_t)k);
      s = kvi_net_forward(net, &y, x, b, &rng);
      if (!s) s = kvi_softmax_xent(&l, NULL, probs, NULL, y, ds->y + r0, b, K);
      for (size_t i = 0; !s && i < (size_t)b * K; i++) acc[i] += probs[i] / samples;
    }
    for (int i = 0; i < b && !s; i++) {
      const double *p = acc + (size_t)i * K;
      int arg = 0;
      for (int k = 1; k < K; k++)
        if (p[k] > p[arg]) arg = k;
      int lab = ds->y[r0 + i];
      for (int k = 0; k < K; k++) ent_bma -= p[k] > 0 ? p[k] * log(p[k]) : 0;
      correct_bma += arg == lab;
      nll_bma -= log(p[lab] > 1e-300 ? p[lab] : 1e-300);
      int bin = (int)(p[arg] * ECE_BINS);
      if (bin >= ECE_BINS) bin = ECE_BINS - 1;
      ece_conf[bin] += p[arg], ece_acc[bin] += arg == lab, ece_n[bin] += 1;
    }
  }
  if (!s) {
    double n = (double)ds->n;
    out->acc_mean = (double)correct_mean / n;
    out->nll_mean = nll_mean / n;
    out->rmse_mean = sqrt(sq / (n * K));
    out->entropy_mean = ent_mean / n;
    if (samples > 0 && cls) {
      out->acc_bma = (double)correct_bma / n;
      out->nll_bma = nll_bma / n;
      out->entropy_bma = ent_bma / n;
      double e = 0;
      for (int i = 0; i < ECE_BINS; i++) e += fabs(ece_acc[i] - ece_conf[i]);
      out->ece = e / n;
    }
  }
  if (!s && cls) { /* accuracy after pruning, with the mean weights */
    kvi_real *saved = NULL;
    s = kvi__prune_means(net, thr, &saved);
    int64_t cp = 0;
    for (int64_t r0 = 0; r0 < ds->n && !s; r0 += Bmax) {
      int b = (int)(ds->n - r0 < Bmax ? ds->n - r0 : Bmax);
      const kvi_real *y;
      double l;
      int c = 0;
      s = kvi_net_forward(net, &y, ds->x + (size_t)r0 * ds->d, b, NULL);
      if (!s) s = kvi_softmax_xent(&l, NULL, NULL, &c, y, ds->y + r0, b, K);
      cp += c;
    }
    if (saved) kvi__restore_means(net, saved);
    out->acc_pruned = (double)cp / (double)ds->n;
  }
  kvi_free(probs);
  free(acc);
  return s;
}
