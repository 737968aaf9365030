/* Evaluation: accuracy and NLL with the posterior-mean weights, Bayesian model averaging over K
 * sampled networks (bma.c), expected calibration error, and sparsification by
 * log alpha = log(Var / M^2) > threshold. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/train_internal.h"

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

kvi_eval_config kvi_eval_config_default(void) {
  kvi_eval_config c = {0, 1, KVI_BMA_SHARED, true, 3.0, 0, NULL};
  return c;
}

kvi_status kvi_evaluate(kvi_metrics *out, kvi_net *net, const kvi_dataset *ds, int samples,
                        uint64_t seed, double thr, kvi_real log_beta) {
  kvi_eval_config c = kvi_eval_config_default();
  c.samples = samples, c.seed = seed, c.prune_threshold = thr, c.log_beta = log_beta;
  return kvi_evaluate_ex(out, net, ds, &c);
}

/* The sums behind the metrics, over the rows one process evaluates; a data-parallel run adds
 * them over the processes (in rank order, kronvi/dist.h) before the division by n. */
enum {
  KVI__E_CORRECT,     /* mean weights: correct rows */
  KVI__E_NLL,         /* sum over chunks of the chunk's mean NLL times its rows */
  KVI__E_SQ,          /* regression: squared errors */
  KVI__E_ENT,         /* predictive entropy */
  KVI__E_BMA_CORRECT, /* BMA: correct rows, NLL, entropy */
  KVI__E_BMA_NLL,
  KVI__E_BMA_ENT,
  KVI__E_CONF,                           /* ECE: confidence per bin */
  KVI__E_ACC = KVI__E_CONF + ECE_BINS,   /* ECE: correct rows per bin */
  KVI__E_PRUNED = KVI__E_ACC + ECE_BINS, /* correct rows after pruning */
  KVI__E_COUNT
};

/* Accuracy, NLL, entropy and ECE sums of the averaged probabilities P (hi - lo, K) of the rows
 * [lo, hi). */
static void kvi__bma_sums(double *e, const double *P, const kvi_dataset *ds, int64_t lo, int64_t hi,
                          int K) {
  double *ece_conf = e + KVI__E_CONF, *ece_acc = e + KVI__E_ACC;
  int64_t correct = 0;
  double nll = 0, ent = 0;
  for (int64_t i = lo; i < hi; i++) {
    const double *p = P + (size_t)(i - lo) * K;
    int arg = 0;
    for (int k = 1; k < K; k++)
      if (p[k] > p[arg]) arg = k;
    const int lab = ds->y[i];
    for (int k = 0; k < K; k++) ent -= p[k] > 0 ? p[k] * log(p[k]) : 0;
    correct += arg == lab;
    nll -= log(p[lab] > 1e-300 ? p[lab] : 1e-300);
    int bin = (int)(p[arg] * ECE_BINS);
    if (bin >= ECE_BINS) bin = ECE_BINS - 1;
    ece_conf[bin] += p[arg], ece_acc[bin] += arg == lab;
  }
  e[KVI__E_BMA_CORRECT] = (double)correct;
  e[KVI__E_BMA_NLL] = nll;
  e[KVI__E_BMA_ENT] = ent;
}

/* Mean-weight pass over the rows [lo, hi): accuracy, NLL, entropy (classification) or squared
 * errors, NLL (regression). */
static kvi_status kvi__mean_pass(double *e, kvi_net *net, const kvi_dataset *ds, int64_t lo,
                                 int64_t hi, kvi_real log_beta, kvi_real *probs, kvi_real *xb) {
  const int K = net->out_size, Bmax = net->max_batch;
  const bool cls = ds->y != NULL;
  int64_t correct = 0;
  double nll = 0, sq = 0, ent = 0;
  kvi_status s = KVI_OK;
  for (int64_t r0 = lo; r0 < hi && !s; r0 += Bmax) {
    const int b = (int)(hi - r0 < Bmax ? hi - r0 : Bmax);
    const kvi_real *y;
    double l = 0;
    int c = 0;
    s = kvi_net_forward(net, &y, kvi_dataset_rows(ds, r0, b, xb), b, NULL);
    if (!s && !cls) {
      s = kvi_gauss_nll(&l, NULL, NULL, y, ds->t + (size_t)r0 * K, log_beta, b, K);
      for (size_t i = 0; i < (size_t)b * K; i++) {
        double d = (double)y[i] - ds->t[(size_t)r0 * K + i];
        sq += d * d;
      }
    } else if (!s) {
      s = kvi_softmax_xent(&l, NULL, probs, &c, y, ds->y + r0, b, K);
      for (size_t i = 0; !s && i < (size_t)b * K; i++) /* predictive entropy */
        ent -= probs[i] > 0 ? (double)probs[i] * log((double)probs[i]) : 0;
    }
    nll += l * b;
    correct += c;
  }
  e[KVI__E_CORRECT] = (double)correct;
  e[KVI__E_NLL] = nll;
  e[KVI__E_SQ] = sq;
  e[KVI__E_ENT] = ent;
  return s;
}

/* Correct rows of [lo, hi) with the means of the weights with log alpha > thr set to zero. */
static kvi_status kvi__pruned_pass(double *e, kvi_net *net, const kvi_dataset *ds, int64_t lo,
                                   int64_t hi, double thr, kvi_real *xb) {
  const int K = net->out_size, Bmax = net->max_batch;
  kvi_real *saved = NULL;
  kvi_status s = kvi__prune_means(net, thr, &saved);
  int64_t cp = 0;
  for (int64_t r0 = lo; r0 < hi && !s; r0 += Bmax) {
    const int b = (int)(hi - r0 < Bmax ? hi - r0 : Bmax);
    const kvi_real *y;
    double l;
    int c = 0;
    s = kvi_net_forward(net, &y, kvi_dataset_rows(ds, r0, b, xb), b, NULL);
    if (!s) s = kvi_softmax_xent(&l, NULL, NULL, &c, y, ds->y + r0, b, K);
    cp += c;
  }
  if (saved) kvi__restore_means(net, saved);
  e[KVI__E_PRUNED] = (double)cp;
  return s;
}

/* The sums of this process's rows [lo, hi) (whole chunks of max_batch rows; BMA chunk keys
 * counted from the data set's first row). */
static kvi_status kvi__eval_sums(double *e, kvi_net *net, const kvi_dataset *ds, int64_t lo,
                                 int64_t hi, const kvi_eval_config *c) {
  const int K = net->out_size;
  const bool cls = ds->y != NULL;
  if (hi <= lo) return KVI_OK;
  kvi_real *probs = kvi_alloc((size_t)net->max_batch * K * sizeof(kvi_real));
  /* a data set held as bytes: a batch of rows as numbers at a time */
  kvi_real *xb = ds->x8 ? kvi_alloc((size_t)net->max_batch * ds->d * sizeof(kvi_real)) : NULL;
  kvi_status s = !probs || (ds->x8 && !xb) ? kvi_fail(KVI_ERR_NOMEM, "out of memory") : KVI_OK;
  if (!s) s = kvi__mean_pass(e, net, ds, lo, hi, c->log_beta, probs, xb);
  kvi_free(probs);
  if (!s && cls && c->samples > 0) { /* P (rows, K): the averaged predictive of every row */
    const int64_t n = hi - lo;
    double *P = malloc((size_t)n * K * sizeof(double));
    /* the BMA passes read all n rows K times: as numbers for a byte data set */
    kvi_real *xa = ds->x8 ? kvi_alloc((size_t)n * ds->d * sizeof(kvi_real)) : NULL;
    s = P && (!ds->x8 || xa)
            ? kvi__bma_probs_at(P, net, kvi_dataset_rows(ds, lo, n, xa), n, c->samples, c->seed,
                                c->bma, lo / net->max_batch)
            : kvi_fail(KVI_ERR_NOMEM, "evaluate: out of memory for %lld x %d BMA probabilities",
                       (long long)n, K);
    if (!s) kvi__bma_sums(e, P, ds, lo, hi, K);
    free(P);
    kvi_free(xa);
  }
  if (!s && cls && c->pruned) s = kvi__pruned_pass(e, net, ds, lo, hi, c->prune_threshold, xb);
  kvi_free(xb);
  return s;
}

kvi_status kvi_evaluate_ex(kvi_metrics *out, kvi_net *net, const kvi_dataset *ds,
                           const kvi_eval_config *c) {
  if (!out || !net || !ds || !c || ds->n <= 0)
    return kvi_fail(KVI_ERR_ARG, "evaluate: NULL argument or empty data set");
  if (ds->d != net->in_size)
    return kvi_fail(KVI_ERR_SHAPE, "evaluate: data have %d features, network expects %d", ds->d,
                    net->in_size);
  if (c->samples < 0 || c->samples > KVI_BMA_MAX_SAMPLES)
    return kvi_fail(KVI_ERR_ARG, "evaluate: %d BMA samples, expected 0 (none) to %d", c->samples,
                    KVI_BMA_MAX_SAMPLES);
  memset(out, 0, sizeof *out);
  out->n = ds->n;
  const int K = net->out_size;
  const bool cls = ds->y != NULL;
  if (cls && ds->nclasses > K)
    return kvi_fail(KVI_ERR_SHAPE, "data have %d classes but the network has %d outputs",
                    ds->nclasses, K);
  if (!cls && ds->k != K)
    return kvi_fail(KVI_ERR_SHAPE, "data have %d targets but the network has %d outputs", ds->k, K);
  /* this process's share: whole chunks of max_batch rows */
  const int64_t Bmax = net->max_batch, chunks = (ds->n + Bmax - 1) / Bmax;
  const int rank = kvi_comm_rank(c->comm), P = kvi_comm_size(c->comm);
  const int64_t c0 = chunks * rank / P, c1 = chunks * (rank + 1) / P;
  const int64_t lo = c0 * Bmax, hi = c1 * Bmax < ds->n ? c1 * Bmax : ds->n;
  double e[KVI__E_COUNT] = {0};
  kvi_status s = kvi__eval_sums(e, net, ds, lo, hi, c);
  if (!s) s = kvi_comm_sum_f64(c->comm, e, KVI__E_COUNT);
  if (s) return s;
  const double n = (double)ds->n;
  out->acc_mean = e[KVI__E_CORRECT] / n;
  out->nll_mean = e[KVI__E_NLL] / n;
  out->rmse_mean = sqrt(e[KVI__E_SQ] / (n * K));
  out->entropy_mean = e[KVI__E_ENT] / n;
  if (cls && c->samples > 0) {
    out->acc_bma = e[KVI__E_BMA_CORRECT] / n;
    out->nll_bma = e[KVI__E_BMA_NLL] / n;
    out->entropy_bma = e[KVI__E_BMA_ENT] / n;
    double ece = 0; /* sum over bins of (n_bin / N) |accuracy_bin - confidence_bin| */
    for (int i = 0; i < ECE_BINS; i++) ece += fabs(e[KVI__E_ACC + i] - e[KVI__E_CONF + i]);
    out->ece = ece / n;
    out->samples = c->samples;
  }
  if (cls && c->pruned) out->acc_pruned = e[KVI__E_PRUNED] / n;
  return KVI_OK;
}
