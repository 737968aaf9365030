/* K-FAC Laplace (Ritter, Botev & Barber 2018; docs/kfac.md): a trained point network becomes a
 * Matrix Normal posterior around its weights. Per weight layer the Hessian of the negative
 * log-likelihood of N examples is approximated by the Fisher's Kronecker factors, N (A (x) G),
 * computed exactly on the data (every class of the softmax, or every output of the Gaussian,
 * pulled back with its probability weight), and the prior precision tau is split between them:
 *   precision (sqrt(N) A + sqrt(tau) I) (x) (sqrt(N) G + sqrt(tau) I),
 * so the posterior of the (n+1) x m matrix [W; b] is MN with row covariance
 * (sqrt(N) A + sqrt(tau) I)^-1 (its n x n weight block is U; the biases stay point estimates)
 * and column covariance V = (sqrt(N) G + sqrt(tau) I)^-1. A layer with one output has the
 * exact precision N G A + tau I (G is a number), V = 1: for a linear-Gaussian model that is the
 * exact posterior. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/train.h"

typedef struct {
  int na, n, m;
  double *A, *G;     /* sums, then the averages */
  kvi_real *scratch; /* one batch's sums */
} kvi__lf;

struct kvi_laplace {
  int nl;
  kvi__lf *l;
  int64_t N;
  int pass; /* during the capture: 0 the first backward of a batch (A too), else G only */
};

void kvi_laplace_free(kvi_laplace *lp) {
  if (!lp) return;
  for (int i = 0; i < lp->nl; i++) free(lp->l[i].A), free(lp->l[i].G), kvi_free(lp->l[i].scratch);
  free(lp->l);
  free(lp);
}

/* Observer: A += sum_rows abar abar^T (first backward of a batch), G += B^2 / T sum_rows g g^T
 * with T = rows / B positions per example (the batch's mean loss has g = ds / B). The batch's
 * sums are formed in kvi_real by BLAS and added in double. */
static kvi_status kvi__laplace_observe(void *user, const kvi_capture_rows *r) {
  kvi_laplace *lp = user;
  kvi__lf *L = &lp->l[r->weight];
  const double T = (double)r->rows / r->batch, B = r->batch;
  const size_t na2 = (size_t)L->na * L->na, m2 = (size_t)L->m * L->m;
  kvi_real *sa = L->scratch, *sg = L->scratch + na2;
  memset(L->scratch, 0, (na2 + m2) * sizeof(kvi_real));
  kvi_capture_accumulate(lp->pass == 0 ? sa : NULL, sg, r, 1);
  if (lp->pass == 0)
    for (size_t i = 0; i < na2; i++) L->A[i] += sa[i];
  for (size_t i = 0; i < m2; i++) L->G[i] += B * B / T * sg[i];
  return KVI_OK;
}

/* One batch: forward with the means, then one backward per output (class c weighted by
 * sqrt(p_c); Gaussian output k by sqrt(beta)). */
static kvi_status kvi__laplace_batch(kvi_laplace *lp, kvi_net *net, const kvi_real *x, int b,
                                     bool cls, kvi_real *d) {
  const int K = net->out_size;
  const kvi_real *out;
  kvi_status s = kvi_net_forward(net, &out, x, b, NULL);
  kvi_real *p = d + (size_t)b * K;
  if (!s && cls)
    for (int i = 0; i < b; i++) {
      double mx = out[(size_t)i * K], z = 0;
      for (int k = 1; k < K; k++) mx = fmax(mx, out[(size_t)i * K + k]);
      for (int k = 0; k < K; k++)
        z += p[(size_t)i * K + k] = (kvi_real)exp(out[(size_t)i * K + k] - mx);
      for (int k = 0; k < K; k++) p[(size_t)i * K + k] /= (kvi_real)z;
    }
  const double sb = cls ? 1 : exp(0.5 * (double)kvi_net_log_beta(net));
  for (int c = 0; c < K && !s; c++) {
    for (int i = 0; i < b; i++)
      for (int k = 0; k < K; k++) {
        const size_t j = (size_t)i * K + k;
        d[j] = cls ? (kvi_real)((p[j] - (k == c)) * sqrt(p[(size_t)i * K + c]) / b)
                   : (kvi_real)((k == c) * sb / b);
      }
    lp->pass = c;
    s = kvi_net_backward(net, d, b);
  }
  return s;
}

static kvi_status kvi__laplace_alloc(kvi_laplace **out, kvi_net *net) {
  int nw = 0;
  kvi_net_dense(net, 0, &nw);
  kvi_laplace *lp = calloc(1, sizeof *lp);
  if (lp) lp->l = calloc((size_t)(nw > 0 ? nw : 1), sizeof *lp->l);
  if (!lp || !lp->l) {
    kvi_laplace_free(lp);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for the Laplace factors");
  }
  lp->nl = nw;
  for (int k = 0; k < nw; k++) {
    const kvi_dense *w = kvi_net_dense(net, k, NULL);
    kvi__lf *L = &lp->l[k];
    L->n = w->n, L->na = w->n + (w->bias ? 1 : 0), L->m = w->m;
    L->A = calloc((size_t)L->na * L->na, sizeof *L->A);
    L->G = calloc((size_t)L->m * L->m, sizeof *L->G);
    L->scratch = kvi_alloc(((size_t)L->na * L->na + (size_t)L->m * L->m) * sizeof(kvi_real));
    if (!L->A || !L->G || !L->scratch) {
      kvi_laplace_free(lp);
      return kvi_fail(KVI_ERR_NOMEM, "out of memory for the Laplace factors");
    }
  }
  *out = lp;
  return KVI_OK;
}

kvi_status kvi_laplace_factors(kvi_laplace **out, kvi_net *net, const kvi_dataset *ds,
                               kvi_task task) {
  if (!out || !net || !ds) return kvi_fail(KVI_ERR_ARG, "laplace_factors: NULL argument");
  *out = NULL;
  if (net->cfg.family != KVI_FAMILY_POINT)
    return kvi_fail(KVI_ERR_ARG, "laplace: the network is %s; Laplace starts from point weights",
                    kvi_family_name(net->cfg.family));
  if (ds->d != net->in_size || ds->n <= 0)
    return kvi_fail(KVI_ERR_SHAPE, "laplace: the data have %d features, the network %d", ds->d,
                    net->in_size);
  const bool cls = task == KVI_TASK_CLASSIFY;
  if (cls ? !ds->y : (!ds->t || ds->k != net->out_size))
    return kvi_fail(KVI_ERR_ARG, "laplace: the data do not match the %s network",
                    cls ? "classification" : "regression");
  kvi_laplace *lp = NULL;
  kvi_status s = kvi__laplace_alloc(&lp, net);
  if (s) return s;
  const int B = net->max_batch, K = net->out_size;
  kvi_real *d = kvi_alloc((size_t)2 * B * K * sizeof(kvi_real));
  /* a data set held as bytes: a batch of rows as numbers at a time */
  kvi_real *xb = ds->x8 ? kvi_alloc((size_t)B * ds->d * sizeof(kvi_real)) : NULL;
  if (!d || (ds->x8 && !xb)) s = kvi_fail(KVI_ERR_NOMEM, "out of memory");
  kvi_net_set_observer(net, kvi__laplace_observe, lp);
  for (int64_t r0 = 0; r0 < ds->n && !s; r0 += B) {
    int b = (int)(ds->n - r0 < B ? ds->n - r0 : B);
    s = kvi__laplace_batch(lp, net, kvi_dataset_rows(ds, r0, b, xb), b, cls, d);
  }
  kvi_net_set_observer(net, NULL, NULL);
  kvi_free(d);
  kvi_free(xb);
  lp->N = ds->n;
  for (int k = 0; k < lp->nl && !s; k++) { /* averages over the examples */
    kvi__lf *L = &lp->l[k];
    for (size_t i = 0; i < (size_t)L->na * L->na; i++) L->A[i] /= (double)ds->n;
    for (size_t i = 0; i < (size_t)L->m * L->m; i++) L->G[i] /= (double)ds->n;
  }
  if (s) {
    kvi_laplace_free(lp);
    return s;
  }
  *out = lp;
  return KVI_OK;
}

/* chol((c X + d I)^-1), its leading k x k block, into the MN storage (strict lower raw, log
 * diagonal). */
static kvi_status kvi__factor(kvi_real *dst, const double *X, int n, int k, double c, double d) {
  double *a = malloc((size_t)n * n * sizeof *a);
  if (!a) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < (size_t)n * n; i++) a[i] = c * X[i];
  for (int i = 0; i < n; i++) a[(size_t)i * n + i] += d;
  kvi_status s = kvi_spd_inverse_f64(n, a, n);
  if (!s) s = kvi_chol_store_block_f64(dst, a, n, k);
  free(a);
  return s;
}

kvi_status kvi_laplace_posterior(kvi_net **out, const kvi_laplace *lp, const kvi_net *point,
                                 double prior_precision) {
  if (!out || !lp || !point) return kvi_fail(KVI_ERR_ARG, "laplace_posterior: NULL argument");
  *out = NULL;
  if (!(prior_precision > 0) || !isfinite(prior_precision))
    return kvi_fail(KVI_ERR_ARG, "laplace: prior precision %g must be positive", prior_precision);
  kvi_net_config nc = point->cfg;
  nc.family = KVI_FAMILY_MN, nc.prior = KVI_PRIOR_ARD, nc.max_memory = -1;
  kvi_net *post = NULL;
  kvi_status s = kvi_net_create(&post, point->arch, point->in_size, &nc, point->max_batch, 1);
  if (s) return s;
  const double sN = sqrt((double)lp->N), st = sqrt(prior_precision);
  for (int k = 0; k < lp->nl && !s; k++) {
    const kvi_dense *w = kvi_net_dense((kvi_net *)point, k, NULL);
    const kvi_dense *v = kvi_net_dense(post, k, NULL);
    const kvi__lf *L = &lp->l[k];
    memcpy(kvi_params_data(post->params, v->iM), kvi_params_data(point->params, w->iM),
           (size_t)w->n * w->m * sizeof(kvi_real));
    if (w->ib >= 0)
      memcpy(kvi_params_data(post->params, v->ib), kvi_params_data(point->params, w->ib),
             (size_t)w->m * sizeof(kvi_real));
    if (L->m == 1) { /* one output: N A G + tau I is itself a matrix, taken exactly */
      s = kvi__factor(kvi_params_data(post->params, v->iA), L->A, L->na, L->n,
                      (double)lp->N * L->G[0], prior_precision);
      kvi_params_data(post->params, v->iB)[0] = 0; /* V = 1 */
    } else {
      s = kvi__factor(kvi_params_data(post->params, v->iA), L->A, L->na, L->n, sN, st);
      if (!s) s = kvi__factor(kvi_params_data(post->params, v->iB), L->G, L->m, L->m, sN, st);
    }
  }
  if (!s) kvi_net_set_log_beta(post, kvi_net_log_beta(point));
  if (s) {
    kvi_net_free(post);
    return kvi_fail(s, "laplace: %s", kvi_last_error());
  }
  *out = post;
  return KVI_OK;
}
