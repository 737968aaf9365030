/* Bayesian model averaging: the predictive p(y|x) ~ (1/K) sum_k softmax(f(x; W_k)), W_k ~ q,
 * by two estimators of the same average (docs/train.md, "Evaluation").
 *
 * Weight samples (KVI_BMA_WEIGHTS): for each k one W_k per weight layer, drawn once,
 *   MN       W = M + A E B^T                        E (n, m) standard normal
 *   DIAG     W = M + sigma * E
 *   MN+DIAG  W = M + A E B^T + sqrt(D) * E'        E, E' independent
 * is written in place of the layer's mean, and every row goes through the mean-weight (eps NULL)
 * network: K mean-weight passes plus K samples of O(n^2 m + n m^2) per layer. Each example's
 * average is over the same K networks; its marginal predictive is exact as with LRT.
 * Local reparameterization (KVI_BMA_LRT): K sampled forwards, fresh noise per example; an MN layer
 * then costs O(B (n m + n^2 + m^2)) per pass instead of O(B n m). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/train_internal.h"

const char *kvi_bma_name(kvi_bma_method m) {
  return m == KVI_BMA_LRT ? "lrt" : m == KVI_BMA_SHARED ? "shared" : "weights";
}

kvi_status kvi_bma_parse(kvi_bma_method *m, const char *s) {
  if (s && strcmp(s, "weights") == 0)
    *m = KVI_BMA_WEIGHTS;
  else if (s && strcmp(s, "lrt") == 0)
    *m = KVI_BMA_LRT;
  else if (s && strcmp(s, "shared") == 0)
    *m = KVI_BMA_SHARED;
  else
    return kvi_fail(KVI_ERR_ARG, "unknown BMA method '%s' (shared, weights, lrt)",
                    s ? s : "(null)");
  return KVI_OK;
}

/* Adds the softmax of the logits Z (b, K) to P (b, K), in double. */
static void kvi__add_softmax(double *P, const kvi_real *Z, int b, int K) {
  for (int i = 0; i < b; i++) {
    const kvi_real *z = Z + (size_t)i * K;
    double *p = P + (size_t)i * K, mx = z[0], se = 0;
    for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < K; k++) se += exp((double)z[k] - mx);
    for (int k = 0; k < K; k++) p[k] += exp((double)z[k] - mx) / se;
  }
}

/* One mean-weight (eps NULL) pass of the rows X (n, in_size), softmax added into P. */
static kvi_status kvi__pass(double *P, kvi_net *net, const kvi_real *X, int64_t n) {
  const int Bmax = net->max_batch, K = net->out_size;
  for (int64_t r0 = 0; r0 < n; r0 += Bmax) {
    const int b = (int)(n - r0 < Bmax ? n - r0 : Bmax);
    const kvi_real *y;
    kvi_status s = kvi_net_forward(net, &y, X + (size_t)r0 * net->in_size, b, NULL);
    if (s) return s;
    kvi__add_softmax(P + (size_t)r0 * K, y, b, K);
  }
  return KVI_OK;
}

/* Writes the sample W of weight layer l into its mean's storage; M0 holds the mean, Af and Bf
 * the layer's Cholesky factors as plain lower triangles (MN families; made once per BMA, as they
 * do not change between samples). E: (n, m) scratch. Draws from rng in the order documented in
 * train.h. */
static kvi_status kvi__sample_layer(kvi_net *net, const kvi_dense *l, const kvi_real *M0,
                                    const kvi_real *Af, const kvi_real *Bf, kvi_real *E,
                                    kvi_rng *rng) {
  kvi_params *p = net->params;
  const int n = l->n, m = l->m;
  const size_t nm = (size_t)n * m;
  kvi_real *W = kvi_params_data(p, l->iM);
  if (l->family == KVI_FAMILY_DIAG) { /* W = M + sigma * E, sigma (in Af) made once */
    kvi_rng_normal(rng, E, nm);
#pragma omp parallel for schedule(static) if (nm > (1u << 16))
    for (size_t i = 0; i < nm; i++) W[i] = M0[i] + Af[i] * E[i];
    return KVI_OK;
  }
  /* W = M + A E B^T, E drawn in place (the products of kvi_mn_sample) */
  kvi_rng_normal(rng, W, nm);
  kvi_trmm(false, false, false, n, m, 1, Af, n, W, m);
  kvi_trmm(true, true, false, n, m, 1, Bf, m, W, m);
#pragma omp parallel for schedule(static) if (nm > (1u << 16))
  for (size_t i = 0; i < nm; i++) W[i] += M0[i];
  if (l->family != KVI_FAMILY_MNDIAG) return KVI_OK;
  const kvi_real *log_d = kvi_params_data(p, l->iS); /* D = exp(log_d): variances */
  kvi_rng_normal(rng, E, nm);
  for (size_t i = 0; i < nm; i++) W[i] += (kvi_real)exp(0.5 * (double)log_d[i]) * E[i];
  return KVI_OK;
}

/* Elements of what a layer's samples reuse: A (n x n) and B (m x m) of an MN family, the
 * standard deviations (n x m) of DIAG. */
static size_t kvi__factor_size(const kvi_dense *l) {
  if (l->family == KVI_FAMILY_MN || l->family == KVI_FAMILY_MNDIAG)
    return (size_t)l->n * l->n + (size_t)l->m * l->m;
  return l->family == KVI_FAMILY_DIAG ? (size_t)l->n * l->m : 0;
}

/* Elements of kvi__factor_size over every weight layer. */
static size_t kvi__factor_count(kvi_net *net) {
  size_t c = 0;
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    const kvi_dense *l = kvi_net_dense(net, k, NULL);
    c += kvi__factor_size(l);
  }
  return c;
}

/* The weight layers that have a posterior; 0 for a point network. */
static int kvi__stochastic_layers(kvi_net *net, size_t *max_nm) {
  int nd = 0, ns = 0;
  kvi_net_dense(net, 0, &nd);
  *max_nm = 1;
  for (int k = 0; k < nd; k++) {
    const kvi_dense *l = kvi_net_dense(net, k, NULL);
    const size_t nm = (size_t)l->n * l->m;
    if (l->family == KVI_FAMILY_POINT) continue;
    ns++;
    if (nm > *max_nm) *max_nm = nm;
  }
  return ns;
}

/* Copies the means of every weight layer to or from buf (kvi_net_weight_count entries). */
static void kvi__copy_means(kvi_net *net, kvi_real *buf, bool save) {
  size_t off = 0;
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    const kvi_dense *l = kvi_net_dense(net, k, NULL);
    const size_t nm = (size_t)l->n * l->m;
    kvi_real *M = kvi_params_data(net->params, l->iM);
    memcpy(save ? buf + off : M, save ? M : buf + off, nm * sizeof(kvi_real));
    off += nm;
  }
}

/* ---- KVI_BMA_SHARED: the first layer's output drawn per example ---------------------------
 * For one example x, x W of a weight sample W ~ q is Gaussian with mean x M and, for MN,
 * x A E B^T = ||x A|| eps B^T, eps ~ N(0, I_m); for DIAG the variances sum_i x_i^2 sigma_ij^2.
 * Each example's output is drawn from that marginal: its mean and ||x A|| or standard deviations
 * are computed once for all samples, and a sample costs a (b, m) draw (times B^T for MN) instead
 * of the (b, n) x (n, m) product. Every example's average is still over K exact draws of its
 * predictive; only the sharing of the first layer's draw between examples differs from
 * KVI_BMA_WEIGHTS. An MN+DIAG first layer keeps weight samples: its two scales cost more to
 * prepare than 10 samples save (bench_eval: 14.0 against 11.4 mean passes at K = 10). */
#define KVI__SHARED_ROWS 1024

typedef struct {
  const kvi_dense *l;
  int64_t rows, row0; /* rows prepared; the data set's index of the first */
  kvi_real *Y0;       /* (rows, m) x M + bias */
  kvi_real *s;        /* (rows) ||x A|| (MN) */
  kvi_real *sd;       /* (rows, m) sqrt((x.x) sigma^2) (DIAG) */
  const kvi_real *Bf; /* B as a plain lower triangle (MN) */
  kvi_real *E;        /* (max_batch, m) scratch */
} kvi__shared;

/* The first layer when KVI_BMA_SHARED applies to it: a dense MN or DIAG layer. */
static const kvi_dense *kvi__shared_layer(kvi_net *net) {
  if (net->nlayers < 1 || net->layers[0].ops != &kvi_dense_ops) return NULL;
  const kvi_dense *l = net->layers[0].state;
  return l->family == KVI_FAMILY_MN || l->family == KVI_FAMILY_DIAG ? l : NULL;
}

static void kvi__shared_free(kvi__shared *sh) {
  kvi_free(sh->Y0), kvi_free(sh->s), kvi_free(sh->sd), kvi_free(sh->E);
}

/* Rows [r0, r0 + b) of the scales: s_r = ||x_r A|| through Z (b, n) = X A, and
 * sd_rj = sqrt(sum_i x_ri^2 V_ij) through X2 (b, n) = X.X and V (n, m). */
static void kvi__shared_scales(kvi__shared *sh, const kvi_real *Xc, int b, const kvi_real *Af,
                               const kvi_real *V, kvi_real *Z, int64_t r0) {
  const int n = sh->l->n, m = sh->l->m;
  const size_t bn = (size_t)b * n;
  if (Af) {
    memcpy(Z, Xc, bn * sizeof *Z);
    kvi_trmm(true, false, false, b, n, 1, Af, n, Z, n); /* Z = X A */
#pragma omp parallel for schedule(static) if (bn >= (1u << 16))
    for (int r = 0; r < b; r++) {
      double ss = 0;
      for (int i = 0; i < n; i++) ss += (double)Z[(size_t)r * n + i] * Z[(size_t)r * n + i];
      sh->s[r0 + r] = (kvi_real)sqrt(ss);
    }
  }
  if (V) {
#pragma omp parallel for schedule(static) if (bn >= (1u << 16))
    for (size_t i = 0; i < bn; i++) Z[i] = Xc[i] * Xc[i];
    kvi_real *sd = sh->sd + (size_t)r0 * m;
    kvi_gemm(false, false, b, m, n, 1, Z, n, V, m, 0, sd, m);
    for (size_t i = 0; i < (size_t)b * m; i++)
      sd[i] = (kvi_real)sqrt(sd[i] > 0 ? (double)sd[i] : 0.0);
  }
}

/* The means, scales and scratch for the n rows X (the first at data-set row row0). fac: the
 * layer's factors as made for the weight samples (MN: A then B; DIAG: sigma). */
static kvi_status kvi__shared_prepare(kvi__shared *sh, kvi_net *net, const kvi_dense *l,
                                      const kvi_real *X, int64_t n, int64_t row0,
                                      const kvi_real *fac) {
  memset(sh, 0, sizeof *sh);
  sh->l = l, sh->rows = n, sh->row0 = row0;
  /* the products with the data in chunks of KVI__SHARED_ROWS rows: a triangular product of
   * 100 rows would spend much of its time packing the 784 x 784 factor */
  const int nin = l->n, m = l->m, Bmax = net->max_batch, Bc = KVI__SHARED_ROWS;
  const bool mn = l->family == KVI_FAMILY_MN, diag = !mn;
  const size_t nm = (size_t)nin * m;
  sh->Y0 = kvi_alloc((size_t)n * m * sizeof(kvi_real));
  sh->s = mn ? kvi_alloc((size_t)n * sizeof(kvi_real)) : NULL;
  sh->sd = diag ? kvi_alloc((size_t)n * m * sizeof(kvi_real)) : NULL;
  sh->E = kvi_alloc((size_t)Bmax * m * sizeof(kvi_real));
  kvi_real *Z = kvi_alloc((size_t)(n < Bc ? n : Bc) * nin * sizeof(kvi_real));
  kvi_real *V = diag ? kvi_alloc(nm * sizeof(kvi_real)) : NULL; /* sigma^2 */
  if (!sh->Y0 || (mn && !sh->s) || (diag && !sh->sd) || !sh->E || !Z || (diag && !V)) {
    kvi_free(Z), kvi_free(V), kvi__shared_free(sh);
    return kvi_fail(KVI_ERR_NOMEM, "BMA: out of memory for the first layer's %lld x %d outputs",
                    (long long)n, m);
  }
  if (mn) sh->Bf = fac + (size_t)nin * nin;
  if (diag)
    for (size_t i = 0; i < nm; i++) V[i] = fac[i] * fac[i];
  kvi_status s = KVI_OK;
  for (int64_t r0 = 0; r0 < n && !s; r0 += Bc) {
    const int b = (int)(n - r0 < Bc ? n - r0 : Bc);
    const kvi_real *Xc = X + (size_t)r0 * nin;
    s = kvi_dense_forward(sh->Y0 + (size_t)r0 * m, net->ws[0], l, net->params, Xc, NULL, b);
    if (!s) kvi__shared_scales(sh, Xc, b, mn ? fac : NULL, V, Z, r0);
  }
  kvi_free(Z), kvi_free(V);
  if (s) kvi__shared_free(sh);
  return s;
}

/* Sample k of the first layer for rows [r0, r0 + b) into Y (b, m). */
static void kvi__shared_draw(kvi__shared *sh, kvi_real *Y, int64_t r0, int b, int k,
                             uint64_t seed) {
  const int m = sh->l->m;
  const size_t bm = (size_t)b * m;
  kvi_rng rng = kvi_rng_stream(seed, (1ull << 40) + (uint64_t)k);
  kvi_rng_normal_at(&rng, (uint64_t)(sh->row0 + r0) * (uint64_t)m, sh->E, bm);
  if (sh->s) kvi_trmm(true, true, false, b, m, 1, sh->Bf, m, sh->E, m); /* eps B^T */
  const kvi_real *Y0 = sh->Y0 + (size_t)r0 * m, *E = sh->E;
  const kvi_real *s = sh->s ? sh->s + r0 : NULL, *sd = sh->sd ? sh->sd + (size_t)r0 * m : NULL;
#pragma omp parallel for schedule(static) if (bm >= (1u << 16))
  for (int r = 0; r < b; r++) { /* Y = Y0 + s_r (eps B^T) (MN), Y0 + sd . eps (DIAG) */
    const size_t o = (size_t)r * m;
    if (s)
      for (int j = 0; j < m; j++) Y[o + j] = Y0[o + j] + s[r] * E[o + j];
    else
      for (int j = 0; j < m; j++) Y[o + j] = Y0[o + j] + sd[o + j] * E[o + j];
  }
}

/* Sample k over every row: the first layer drawn, the rest of the network with the weights in
 * its storage (eps NULL), softmax added into P. */
static kvi_status kvi__shared_pass(double *P, kvi__shared *sh, kvi_net *net, int k, uint64_t seed) {
  const int Bmax = net->max_batch, K = net->out_size;
  for (int64_t r0 = 0; r0 < sh->rows; r0 += Bmax) {
    const int b = (int)(sh->rows - r0 < Bmax ? sh->rows - r0 : Bmax);
    kvi__shared_draw(sh, net->acts[1], r0, b, k, seed);
    const kvi_real *y;
    kvi_status s = kvi_net_forward_from(net, &y, 1, b);
    if (s) return s;
    kvi__add_softmax(P + (size_t)r0 * K, y, b, K);
  }
  return KVI_OK;
}

/* KVI_BMA_WEIGHTS, or with first (the first layer, not NULL) KVI_BMA_SHARED for the rows X
 * whose first is data-set row row0. */
static kvi_status kvi__bma_weights(double *P, kvi_net *net, const kvi_real *X, int64_t n,
                                   int samples, uint64_t seed, const kvi_dense *first,
                                   int64_t row0) {
  size_t max_nm;
  kvi__stochastic_layers(net, &max_nm);
  kvi_real *saved = kvi_alloc(kvi_net_weight_count(net) * sizeof(kvi_real));
  kvi_real *E = kvi_alloc(max_nm * sizeof(kvi_real));
  const size_t nf = kvi__factor_count(net);
  kvi_real *fac = kvi_alloc((nf ? nf : 1) * sizeof(kvi_real));
  kvi_status s = saved && E && fac ? KVI_OK : kvi_fail(KVI_ERR_NOMEM, "BMA: out of memory");
  if (!s) kvi__copy_means(net, saved, true);
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  size_t fo = 0, mo = 0; /* the factors, once: A = L + diag(e^a) from the parameter storage */
  for (int j = 0; j < nd && !s; j++) {
    const kvi_dense *l = kvi_net_dense(net, j, NULL);
    mo += (size_t)l->n * l->m;
    if (l->family == KVI_FAMILY_DIAG) {
      /* sigma = 0 + exp(log sigma) * 1 by kvi_diag_sample itself (fac is zero-filled), so that
       * M + sigma * E below is the same number as kvi_diag_sample's */
      const size_t lnm = (size_t)l->n * l->m;
      kvi_diag q = {l->n, l->m, fac + fo, kvi_params_data(net->params, l->iS)};
      for (size_t i = 0; i < lnm; i++) E[i] = 1;
      if ((s = kvi_diag_sample(fac + fo, &q, E)) != KVI_OK) break;
      fo += lnm;
      continue;
    }
    if (l->family != KVI_FAMILY_MN && l->family != KVI_FAMILY_MNDIAG) continue;
    kvi_mn q = {l->n, l->m, saved + mo - (size_t)l->n * l->m, kvi_params_data(net->params, l->iA),
                kvi_params_data(net->params, l->iB)};
    if ((s = kvi_mn_check(&q)) != KVI_OK) break;
    kvi_chol_materialize(fac + fo, q.A, l->n);
    kvi_chol_materialize(fac + fo + (size_t)l->n * l->n, q.B, l->m);
    fo += (size_t)l->n * l->n + (size_t)l->m * l->m;
  }
  kvi__shared sh = {0}; /* the first layer's means and scales (fac begins with its factors) */
  if (!s && first) s = kvi__shared_prepare(&sh, net, first, X, n, row0, fac);
  const bool shared = !s && first;
  for (int k = 0; k < samples && !s; k++) {
    kvi_rng rng = kvi_rng_stream(seed, (uint64_t)k);
    size_t off = 0;
    fo = 0;
    for (int j = 0; j < nd && !s; j++) {
      const kvi_dense *l = kvi_net_dense(net, j, NULL);
      if (l->family != KVI_FAMILY_POINT && !(shared && l == first))
        s = kvi__sample_layer(net, l, saved + off, fac + fo, fac + fo + (size_t)l->n * l->n, E,
                              &rng);
      off += (size_t)l->n * l->m;
      fo += kvi__factor_size(l);
    }
    if (!s) s = shared ? kvi__shared_pass(P, &sh, net, k, seed) : kvi__pass(P, net, X, n);
  }
  if (shared) kvi__shared_free(&sh);
  if (saved) kvi__copy_means(net, saved, false);
  kvi_free(fac), kvi_free(saved), kvi_free(E);
  return s;
}

static kvi_status kvi__bma_lrt(double *P, kvi_net *net, const kvi_real *X, int64_t n, int samples,
                               uint64_t seed, int64_t chunk0) {
  const int Bmax = net->max_batch, K = net->out_size;
  for (int64_t r0 = 0; r0 < n; r0 += Bmax) {
    const int b = (int)(n - r0 < Bmax ? n - r0 : Bmax);
    for (int k = 0; k < samples; k++) {
      kvi_rng rng = kvi_rng_stream(seed, ((uint64_t)(chunk0 + r0 / Bmax) << 20) + (uint64_t)k);
      const kvi_real *y;
      kvi_status s = kvi_net_forward(net, &y, X + (size_t)r0 * net->in_size, b, &rng);
      if (s) return s;
      kvi__add_softmax(P + (size_t)r0 * K, y, b, K);
    }
  }
  return KVI_OK;
}

kvi_status kvi_bma_probs(double *P, kvi_net *net, const kvi_real *X, int64_t n, int samples,
                         uint64_t seed, kvi_bma_method method) {
  return kvi__bma_probs_at(P, net, X, n, samples, seed, method, 0);
}

kvi_status kvi__bma_probs_at(double *P, kvi_net *net, const kvi_real *X, int64_t n, int samples,
                             uint64_t seed, kvi_bma_method method, int64_t chunk0) {
  if (!P || !net || !X || n <= 0)
    return kvi_fail(KVI_ERR_ARG, "BMA: NULL argument or %lld rows", (long long)n);
  if (samples < 1 || samples > KVI_BMA_MAX_SAMPLES)
    return kvi_fail(KVI_ERR_ARG, "BMA: %d samples, expected 1 to %d", samples, KVI_BMA_MAX_SAMPLES);
  if (method != KVI_BMA_WEIGHTS && method != KVI_BMA_LRT && method != KVI_BMA_SHARED)
    return kvi_fail(KVI_ERR_ARG, "BMA: unknown method %d", (int)method);
  const size_t len = (size_t)n * net->out_size;
  memset(P, 0, len * sizeof *P);
  size_t max_nm;
  kvi_status s;
  if (kvi__stochastic_layers(net, &max_nm) == 0) /* a point network: every sample is the mean */
    s = kvi__pass(P, net, X, n), samples = 1;
  else if (method == KVI_BMA_WEIGHTS)
    s = kvi__bma_weights(P, net, X, n, samples, seed, NULL, 0);
  else if (method == KVI_BMA_SHARED)
    s = kvi__bma_weights(P, net, X, n, samples, seed, kvi__shared_layer(net),
                         chunk0 * net->max_batch);
  else
    s = kvi__bma_lrt(P, net, X, n, samples, seed, chunk0);
  const double inv = 1.0 / samples;
  for (size_t i = 0; !s && i < len; i++) P[i] *= inv;
  return s;
}
