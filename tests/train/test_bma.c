/* Bayesian model averaging (kvi_bma_probs, kvi_evaluate_ex). Weight samples: the average equals a
 * direct computation (the documented noise order, W = M + A E B^T / M + sigma E / both terms
 * built by explicit loops, mean-weight forwards, softmax), for an MLP and a small CNN in every
 * family with a posterior; the means are restored bit for bit; the same seed gives the same
 * numbers, another seed others; 1 and 2 threads give identical numbers (both methods); weight
 * samples and the local reparameterization agree within Monte Carlo error; kvi_evaluate_ex's BMA
 * metrics are those of the averaged probabilities; a point network and a compressed network
 * work. Bad input: K <= 0, K above KVI_BMA_MAX_SAMPLES, NULL arguments, unknown method names. */
#include "kronvi/layer.h"
#include "kronvi/train.h"
#include "kvi_test.h"

static const kvi_family FAMILIES[] = {KVI_FAMILY_DIAG, KVI_FAMILY_MN, KVI_FAMILY_MNDIAG};

static kvi_net *make_net(const char *arch, int in_size, int h, kvi_family fam, int max_batch) {
  kvi_net_config nc = kvi_net_config_default();
  nc.family = fam;
  nc.prior = fam == KVI_FAMILY_POINT ? KVI_PRIOR_NONE : KVI_PRIOR_ARD;
  nc.init_log_sigma = -1.5; /* visible noise */
  nc.in_h = nc.in_w = h;
  kvi_net *net = NULL;
  CHECK_OK(kvi_net_create(&net, arch, in_size, &nc, max_batch, 3));
  if (!net) return NULL;
  kvi_rng r = kvi_rng_stream(17, 1); /* off-diagonal factors away from their initial values */
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    const kvi_dense *l = kvi_net_dense(net, k, NULL);
    const int idx[2] = {l->iA, l->iB}, size[2] = {l->n, l->m};
    for (int j = 0; j < 2; j++) {
      if (idx[j] < 0) continue;
      kvi_real *P = kvi_params_data(net->params, idx[j]);
      for (int a = 0; a < size[j]; a++)
        for (int b = 0; b < a; b++) {
          kvi_real z;
          kvi_rng_normal(&r, &z, 1);
          P[(size_t)a * size[j] + b] += (kvi_real)(0.1 * z);
        }
    }
  }
  return net;
}

/* Lower-triangular factor from its storage: strict lower raw, diagonal exp, upper zero. */
static double chol(const kvi_real *P, int n, int i, int j) {
  return i > j ? (double)P[(size_t)i * n + j] : i == j ? exp((double)P[(size_t)i * n + i]) : 0.0;
}

/* The direct computation: P (n, K) averaged over `samples` weight samples. */
static void direct_bma(double *P, kvi_net *net, const kvi_real *X, int n, int samples,
                       uint64_t seed) {
  const int K = net->out_size;
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  const size_t total = kvi_net_weight_count(net);
  kvi_real *saved = malloc(total * sizeof *saved);
  size_t off = 0;
  for (int j = 0; j < nd; j++) {
    const kvi_dense *l = kvi_net_dense(net, j, NULL);
    memcpy(saved + off, kvi_params_data(net->params, l->iM), (size_t)l->n * l->m * sizeof *saved);
    off += (size_t)l->n * l->m;
  }
  memset(P, 0, (size_t)n * K * sizeof *P);
  for (int k = 0; k < samples; k++) {
    kvi_rng rng = kvi_rng_stream(seed, (uint64_t)k);
    off = 0;
    for (int j = 0; j < nd; j++) {
      const kvi_dense *l = kvi_net_dense(net, j, NULL);
      const int a = l->n, b = l->m;
      const size_t nm = (size_t)a * b;
      kvi_real *E = malloc(nm * sizeof *E), *E2 = malloc(nm * sizeof *E2);
      kvi_real *W = kvi_params_data(net->params, l->iM);
      const kvi_real *M0 = saved + off, *S = l->iS >= 0 ? kvi_params_data(net->params, l->iS) : 0;
      kvi_rng_normal(&rng, E, nm);
      if (l->family == KVI_FAMILY_MNDIAG) kvi_rng_normal(&rng, E2, nm);
      const kvi_real *A = l->iA >= 0 ? kvi_params_data(net->params, l->iA) : NULL;
      const kvi_real *B = l->iB >= 0 ? kvi_params_data(net->params, l->iB) : NULL;
      for (int r = 0; r < a; r++)
        for (int c = 0; c < b; c++) {
          double w = M0[(size_t)r * b + c];
          if (l->family == KVI_FAMILY_DIAG)
            w += exp((double)S[(size_t)r * b + c]) * E[(size_t)r * b + c];
          if (l->family == KVI_FAMILY_MN || l->family == KVI_FAMILY_MNDIAG)
            for (int p = 0; p < a; p++) /* (A E B^T)_rc = sum_pq A_rp E_pq B_cq */
              for (int q = 0; q < b; q++)
                w += chol(A, a, r, p) * E[(size_t)p * b + q] * chol(B, b, c, q);
          if (l->family == KVI_FAMILY_MNDIAG)
            w += exp(0.5 * (double)S[(size_t)r * b + c]) * E2[(size_t)r * b + c];
          W[(size_t)r * b + c] = (kvi_real)w;
        }
      free(E), free(E2);
      off += nm;
    }
    const kvi_real *y;
    CHECK_OK(kvi_net_forward(net, &y, X, n, NULL));
    for (int i = 0; i < n; i++) {
      double mx = y[(size_t)i * K], se = 0;
      for (int c = 1; c < K; c++) mx = fmax(mx, y[(size_t)i * K + c]);
      for (int c = 0; c < K; c++) se += exp(y[(size_t)i * K + c] - mx);
      for (int c = 0; c < K; c++)
        P[(size_t)i * K + c] += exp(y[(size_t)i * K + c] - mx) / se / samples;
    }
  }
  off = 0;
  for (int j = 0; j < nd; j++) {
    const kvi_dense *l = kvi_net_dense(net, j, NULL);
    memcpy(kvi_params_data(net->params, l->iM), saved + off, (size_t)l->n * l->m * sizeof *saved);
    off += (size_t)l->n * l->m;
  }
  free(saved);
}

static double max_diff(const double *a, const double *b, size_t n) {
  double d = 0;
  for (size_t i = 0; i < n; i++) d = fmax(d, fabs(a[i] - b[i]));
  return d;
}

/* Weight samples against the direct computation; the block is restored bit for bit. */
static void test_direct(const char *arch, int in_size, int h) {
  const int n = 7, S = 3;
  for (int f = 0; f < 3; f++) {
    kvi_net *net = make_net(arch, in_size, h, FAMILIES[f], 4); /* 2 chunks of 4 rows */
    if (!net) return;
    kvi_real *X = malloc((size_t)n * in_size * sizeof *X);
    kvi_rng r = kvi_rng_stream(5, 5);
    kvi_rng_normal(&r, X, (size_t)n * in_size);
    kvi_net *big = make_net(arch, in_size, h, FAMILIES[f], n); /* the direct pass in one batch */
    if (!big) return;
    const int K = net->out_size;
    CHECK(big->params->n == net->params->n &&
          !memcmp(big->params->data, net->params->data, net->params->n * sizeof(kvi_real)));
    double *P = malloc((size_t)n * K * sizeof *P), *Q = malloc((size_t)n * K * sizeof *Q);
    const size_t bytes = net->params->n * sizeof(kvi_real);
    kvi_real *before = malloc(bytes);
    memcpy(before, net->params->data, bytes);
    CHECK_OK(kvi_bma_probs(P, net, X, n, S, 9, KVI_BMA_WEIGHTS));
    CHECK(memcmp(before, net->params->data, bytes) == 0);
    direct_bma(Q, big, X, n, S, 9);
    const double d = max_diff(P, Q, (size_t)n * K);
    printf("%-24s %-8s weight-sample BMA vs direct: max |dP| = %.2e\n", arch,
           kvi_family_name(FAMILIES[f]), d);
    CHECK(d < 1e-10);
    double rowsum = 0;
    for (int c = 0; c < K; c++) rowsum += P[c];
    CHECK_NEAR(rowsum, 1.0, 1e-12);
    /* the same seed: the same numbers; another seed: others */
    CHECK_OK(kvi_bma_probs(Q, net, X, n, S, 9, KVI_BMA_WEIGHTS));
    CHECK(memcmp(P, Q, (size_t)n * K * sizeof *P) == 0);
    CHECK_OK(kvi_bma_probs(Q, net, X, n, S, 10, KVI_BMA_WEIGHTS));
    CHECK(max_diff(P, Q, (size_t)n * K) > 1e-6);
    free(P), free(Q), free(X), free(before);
    kvi_net_free(net), kvi_net_free(big);
  }
}

/* The shared method's first layer for data-set row `row` and sample k, by explicit loops:
 * x M + b plus ||x A|| eps B^T (MN) or sqrt(sum_i x_i^2 sigma_ij^2) eps (DIAG). */
static void direct_first(double *y, kvi_net *net, const kvi_real *x, int64_t row, int k,
                         uint64_t seed) {
  const kvi_dense *l = kvi_net_dense(net, 0, NULL);
  const int a = l->n, b = l->m;
  const kvi_real *M = kvi_params_data(net->params, l->iM);
  const kvi_real *bias = l->ib >= 0 ? kvi_params_data(net->params, l->ib) : NULL;
  const kvi_real *S = l->iS >= 0 ? kvi_params_data(net->params, l->iS) : NULL;
  const kvi_real *A = l->iA >= 0 ? kvi_params_data(net->params, l->iA) : NULL;
  const kvi_real *B = l->iB >= 0 ? kvi_params_data(net->params, l->iB) : NULL;
  kvi_real e1[16];
  kvi_rng r1 = kvi_rng_stream(seed, (1ull << 40) + (uint64_t)k);
  kvi_rng_normal_at(&r1, (uint64_t)row * b, e1, (size_t)b);
  double s = 0;
  if (A)
    for (int c = 0; c < a; c++) { /* (x A)_c = sum_p x_p A_pc */
      double z = 0;
      for (int p = 0; p < a; p++) z += x[p] * chol(A, a, p, c);
      s += z * z;
    }
  s = sqrt(s);
  for (int j = 0; j < b; j++) {
    y[j] = bias ? bias[j] : 0;
    double v = 0;
    for (int i = 0; i < a; i++) {
      y[j] += x[i] * M[(size_t)i * b + j];
      if (l->family == KVI_FAMILY_DIAG) v += x[i] * x[i] * exp(2.0 * S[(size_t)i * b + j]);
    }
    if (A)
      for (int q = 0; q < b; q++) y[j] += s * e1[q] * chol(B, b, j, q); /* (eps B^T)_j */
    if (l->family == KVI_FAMILY_DIAG) y[j] += sqrt(v) * e1[j];
  }
}

/* The shared method against the explicit computation: the first layer by direct_first, the
 * others' weights sampled as direct_bma samples them (its stream, without the first layer),
 * the rest of the network run by its layers. For the rows X of data-set rows from row0. */
static void direct_shared(double *P, kvi_net *net, const kvi_real *X, int n, int samples,
                          uint64_t seed, int64_t row0) {
  const int K = net->out_size;
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  const size_t total = kvi_net_weight_count(net);
  kvi_real *saved = malloc(total * sizeof *saved);
  kvi_params *p = net->params;
  size_t off = 0;
  for (int j = 0; j < nd; j++) {
    const kvi_dense *l = kvi_net_dense(net, j, NULL);
    memcpy(saved + off, kvi_params_data(p, l->iM), (size_t)l->n * l->m * sizeof *saved);
    off += (size_t)l->n * l->m;
  }
  memset(P, 0, (size_t)n * K * sizeof *P);
  const kvi_dense *l0 = kvi_net_dense(net, 0, NULL);
  for (int k = 0; k < samples; k++) {
    kvi_rng rng = kvi_rng_stream(seed, (uint64_t)k);
    off = (size_t)l0->n * l0->m;
    for (int j = 1; j < nd; j++) { /* MN layers only in this test */
      const kvi_dense *l = kvi_net_dense(net, j, NULL);
      const int a = l->n, b = l->m;
      kvi_real *E = malloc((size_t)a * b * sizeof *E), *W = kvi_params_data(p, l->iM);
      const kvi_real *A = kvi_params_data(p, l->iA), *B = kvi_params_data(p, l->iB);
      kvi_rng_normal(&rng, E, (size_t)a * b);
      for (int r = 0; r < a; r++)
        for (int c = 0; c < b; c++) {
          double w = saved[off + (size_t)r * b + c];
          for (int q1 = 0; q1 < a; q1++)
            for (int q2 = 0; q2 < b; q2++)
              w += chol(A, a, r, q1) * E[(size_t)q1 * b + q2] * chol(B, b, c, q2);
          W[(size_t)r * b + c] = (kvi_real)w;
        }
      free(E);
      off += (size_t)a * b;
    }
    for (int r = 0; r < n; r++) {
      double y0[16];
      direct_first(y0, net, X + (size_t)r * l0->n, row0 + r, k, seed);
      for (int j = 0; j < l0->m; j++) net->acts[1][j] = (kvi_real)y0[j];
      for (int i = 1; i < net->nlayers; i++) {
        kvi_layer_call c = {
            .params = p, .ws = net->ws[i], .batch = 1, .X = net->acts[i], .Y = net->acts[i + 1]};
        CHECK_OK(net->layers[i].ops->forward(&net->layers[i], &c));
      }
      const kvi_real *y = net->acts[net->nlayers];
      double mx = y[0], se = 0;
      for (int c = 1; c < K; c++) mx = fmax(mx, y[c]);
      for (int c = 0; c < K; c++) se += exp(y[c] - mx);
      for (int c = 0; c < K; c++) P[(size_t)r * K + c] += exp(y[c] - mx) / se / samples;
    }
  }
  off = 0;
  for (int j = 0; j < nd; j++) {
    const kvi_dense *l = kvi_net_dense(net, j, NULL);
    memcpy(kvi_params_data(p, l->iM), saved + off, (size_t)l->n * l->m * sizeof *saved);
    off += (size_t)l->n * l->m;
  }
  free(saved);
}

/* KVI_BMA_SHARED: against the explicit computation (an MN network; a DIAG and an MN first layer
 * alone); the means restored; the numbers do not depend on the batch size (2 chunks of 4 rows
 * or one of 7). A network whose first layer is MN+DIAG or a convolution gets KVI_BMA_WEIGHTS'
 * numbers. */
static void test_shared(void) {
  const int n = 7, S = 3, d = 6;
  for (int f = 0; f < 3; f++) {
    kvi_net *net = make_net("6-5-4-3", d, 0, FAMILIES[f], 4);
    kvi_net *big = make_net("6-5-4-3", d, 0, FAMILIES[f], n);
    if (!net || !big) return;
    /* the later layers MN, with the same parameters in both */
    int nd = 0;
    kvi_net_dense(net, 0, &nd);
    kvi_real *X = malloc((size_t)n * d * sizeof *X);
    kvi_rng r = kvi_rng_stream(5, 6);
    kvi_rng_normal(&r, X, (size_t)n * d);
    const int K = net->out_size;
    double *P = malloc((size_t)n * K * sizeof *P), *Q = malloc((size_t)n * K * sizeof *Q);
    const size_t bytes = net->params->n * sizeof(kvi_real);
    kvi_real *before = malloc(bytes);
    memcpy(before, net->params->data, bytes);
    if (f == 1) { /* MN throughout: against the explicit computation */
      CHECK_OK(kvi_bma_probs(P, net, X, n, S, 9, KVI_BMA_SHARED));
      CHECK(memcmp(before, net->params->data, bytes) == 0);
      direct_shared(Q, net, X, n, S, 9, 0);
      const double dd = max_diff(P, Q, (size_t)n * K);
      printf("shared BMA vs direct (mn): max |dP| = %.2e\n", dd);
      CHECK(dd < 1e-10);
    }
    /* the batch size changes nothing */
    CHECK_OK(kvi_bma_probs(P, net, X, n, S, 9, KVI_BMA_SHARED));
    CHECK_OK(kvi_bma_probs(Q, big, X, n, S, 9, KVI_BMA_SHARED));
    CHECK(memcmp(P, Q, (size_t)n * K * sizeof *P) == 0);
    /* not the weights method's numbers, but the same predictive (test_methods_agree); an
     * MN+DIAG first layer keeps the weights method */
    CHECK_OK(kvi_bma_probs(Q, net, X, n, S, 9, KVI_BMA_WEIGHTS));
    if (FAMILIES[f] == KVI_FAMILY_MNDIAG)
      CHECK(memcmp(P, Q, (size_t)n * K * sizeof *P) == 0);
    else
      CHECK(max_diff(P, Q, (size_t)n * K) > 1e-6);
    free(P), free(Q), free(X), free(before);
    kvi_net_free(net), kvi_net_free(big);
  }
  for (int f = 0; f < 2; f++) { /* DIAG and MN first layers against direct_first */
    kvi_net *net = make_net("6-5", d, 0, FAMILIES[f], 4);
    if (!net) return;
    kvi_real X[2 * 6];
    kvi_rng r = kvi_rng_stream(5, 7);
    kvi_rng_normal(&r, X, 12);
    double P[10];
    /* one output layer: P is the softmax of the drawn outputs, with one sample */
    CHECK_OK(kvi_bma_probs(P, net, X, 2, 1, 4, KVI_BMA_SHARED));
    double err = 0;
    for (int i = 0; i < 2; i++) {
      double y[5], mx = -1e300, se = 0;
      direct_first(y, net, X + i * 6, i, 0, 4);
      for (int c = 0; c < 5; c++) mx = fmax(mx, y[c]);
      for (int c = 0; c < 5; c++) se += exp(y[c] - mx);
      for (int c = 0; c < 5; c++) err = fmax(err, fabs(P[i * 5 + c] - exp(y[c] - mx) / se));
    }
    printf("shared first layer (%s) vs direct: max |dP| = %.2e\n", kvi_family_name(FAMILIES[f]),
           err);
    CHECK(err < 1e-6);
    kvi_net_free(net);
  }
  { /* kvi_net_forward_from: bad layers and batches */
    kvi_net *net = make_net("6-5-3", d, 0, KVI_FAMILY_MN, 4);
    const kvi_real *y;
    if (net) {
      CHECK_FAILS(kvi_net_forward_from(net, &y, -1, 2));
      CHECK_FAILS(kvi_net_forward_from(net, &y, net->nlayers + 1, 2));
      CHECK_FAILS(kvi_net_forward_from(net, &y, 1, 5));
      CHECK_FAILS(kvi_net_forward_from(net, NULL, 1, 2));
      CHECK_OK(kvi_net_forward_from(net, &y, net->nlayers, 2)); /* nothing to run */
      kvi_net_free(net);
    }
  }
  /* a convolution first: the weights method's numbers */
  kvi_net *cnn = make_net("1-2-mp-flatten-3", 16, 4, KVI_FAMILY_MN, 4);
  if (cnn) {
    kvi_real X[3 * 16];
    kvi_rng r = kvi_rng_stream(5, 8);
    kvi_rng_normal(&r, X, 48);
    double P[9], Q[9];
    CHECK_OK(kvi_bma_probs(P, cnn, X, 3, 2, 4, KVI_BMA_SHARED));
    CHECK_OK(kvi_bma_probs(Q, cnn, X, 3, 2, 4, KVI_BMA_WEIGHTS));
    CHECK(memcmp(P, Q, sizeof P) == 0);
    kvi_net_free(cnn);
  }
}

/* 1 and 2 threads: identical numbers. Sizes that reach the parallel paths (BLAS panels of
 * >= 2^20 multiply-adds, normal fills of > 2^13 blocks). */
static void test_threads(void) {
  const int n = 256, d = 200;
  kvi_net *net = make_net("200-300-10", d, 0, KVI_FAMILY_MNDIAG, n);
  if (!net) return;
  kvi_real *X = malloc((size_t)n * d * sizeof *X);
  kvi_rng r = kvi_rng_stream(6, 6);
  kvi_rng_normal(&r, X, (size_t)n * d);
  double *P1 = malloc((size_t)n * 10 * sizeof *P1), *P2 = malloc((size_t)n * 10 * sizeof *P2);
  for (int m = 0; m < 3; m++) {
    const kvi_bma_method meth = m == 2 ? KVI_BMA_SHARED : m ? KVI_BMA_LRT : KVI_BMA_WEIGHTS;
    kvi_set_threads(1);
    CHECK_OK(kvi_bma_probs(P1, net, X, n, 2, 4, meth));
    kvi_set_threads(2);
    CHECK_OK(kvi_bma_probs(P2, net, X, n, 2, 4, meth));
    CHECK(memcmp(P1, P2, (size_t)n * 10 * sizeof *P1) == 0);
    printf("%s: 1 and 2 threads %s\n", kvi_bma_name(meth),
           memcmp(P1, P2, (size_t)n * 10 * sizeof *P1) ? "differ" : "identical");
  }
  free(P1), free(P2), free(X);
  kvi_net_free(net);
}

/* Both methods estimate the same predictive: with many samples they agree within Monte Carlo
 * error; kvi_evaluate_ex reports the averaged probabilities' metrics. */
static void test_methods_agree(void) {
  const int n = 12, S = 4000;
  kvi_net *net = make_net("6-5-3", 6, 0, KVI_FAMILY_MN, 16);
  if (!net) return;
  kvi_dataset ds;
  CHECK_OK(kvi_dataset_alloc(&ds, n, 6, 0, 0, 0, 3, 0));
  kvi_rng r = kvi_rng_stream(8, 8);
  kvi_rng_normal(&r, ds.x, (size_t)n * 6);
  for (int i = 0; i < n; i++) ds.y[i] = i % 3;
  double *P = malloc((size_t)n * 3 * sizeof *P), *Q = malloc((size_t)n * 3 * sizeof *Q);
  CHECK_OK(kvi_bma_probs(P, net, ds.x, n, S, 1, KVI_BMA_WEIGHTS));
  CHECK_OK(kvi_bma_probs(Q, net, ds.x, n, S, 2, KVI_BMA_LRT));
  const double d = max_diff(P, Q, (size_t)n * 3);
  printf("weights vs lrt, %d samples each: max |dP| = %.4f\n", S, d);
  CHECK(d < 0.03);
  CHECK_OK(kvi_bma_probs(Q, net, ds.x, n, S, 3, KVI_BMA_SHARED));
  const double d2 = max_diff(P, Q, (size_t)n * 3);
  printf("weights vs shared, %d samples each: max |dP| = %.4f\n", S, d2);
  CHECK(d2 < 0.03);
  kvi_eval_config c = kvi_eval_config_default();
  c.samples = 5, c.seed = 3;
  kvi_metrics m;
  CHECK_OK(kvi_evaluate_ex(&m, net, &ds, &c));
  CHECK_OK(kvi_bma_probs(P, net, ds.x, n, 5, 3, c.bma));
  double nll = 0;
  for (int i = 0; i < n; i++) nll -= log(P[(size_t)i * 3 + ds.y[i]]);
  CHECK_NEAR(m.nll_bma, nll / n, 1e-12);
  CHECK(m.samples == 5 && m.acc_pruned >= 0);
  c.samples = 0; /* no BMA */
  CHECK_OK(kvi_evaluate_ex(&m, net, &ds, &c));
  CHECK(m.samples == 0 && m.nll_bma == 0);
  /* bad input */
  CHECK_FAILS(kvi_bma_probs(P, net, ds.x, n, 0, 1, KVI_BMA_WEIGHTS));
  CHECK_FAILS(kvi_bma_probs(P, net, ds.x, n, -3, 1, KVI_BMA_LRT));
  CHECK_FAILS(kvi_bma_probs(P, net, ds.x, n, KVI_BMA_MAX_SAMPLES + 1, 1, KVI_BMA_WEIGHTS));
  CHECK(strstr(kvi_last_error(), "samples") != NULL);
  CHECK_FAILS(kvi_bma_probs(NULL, net, ds.x, n, 2, 1, KVI_BMA_WEIGHTS));
  CHECK_FAILS(kvi_bma_probs(P, net, ds.x, 0, 2, 1, KVI_BMA_WEIGHTS));
  CHECK_FAILS(kvi_bma_probs(P, net, ds.x, n, 2, 1, (kvi_bma_method)7));
  c.samples = -1;
  CHECK_FAILS(kvi_evaluate_ex(&m, net, &ds, &c));
  c.samples = 1 << 30;
  CHECK_FAILS(kvi_evaluate_ex(&m, net, &ds, &c));
  kvi_bma_method bm;
  CHECK_OK(kvi_bma_parse(&bm, "lrt"));
  CHECK(bm == KVI_BMA_LRT && !strcmp(kvi_bma_name(bm), "lrt"));
  CHECK_OK(kvi_bma_parse(&bm, "shared"));
  CHECK(bm == KVI_BMA_SHARED && !strcmp(kvi_bma_name(bm), "shared"));
  CHECK(kvi_eval_config_default().bma == KVI_BMA_SHARED);
  CHECK_FAILS(kvi_bma_parse(&bm, "mc"));
  CHECK_FAILS(kvi_bma_parse(&bm, NULL));
  free(P), free(Q);
  kvi_dataset_free(&ds);
  kvi_net_free(net);
}

/* A point network: every sample is the mean network. A compressed network samples as any. */
static void test_point_and_compressed(void) {
  const int n = 5;
  kvi_real X[5 * 6];
  kvi_rng r = kvi_rng_stream(2, 2);
  kvi_rng_normal(&r, X, sizeof X / sizeof *X);
  kvi_net *pt = make_net("6-5-3", 6, 0, KVI_FAMILY_POINT, 8);
  double P[15], Q[15];
  if (pt) {
    CHECK_OK(kvi_bma_probs(P, pt, X, n, 7, 1, KVI_BMA_WEIGHTS));
    CHECK_OK(kvi_bma_probs(Q, pt, X, n, 1, 5, KVI_BMA_LRT));
    CHECK(max_diff(P, Q, 15) < 1e-15);
  }
  kvi_net *net = make_net("6-5-4-3", 6, 0, KVI_FAMILY_MN, 8), *small = NULL;
  if (net) {
    kvi_compress_info info;
    CHECK_OK(kvi_net_compress(&small, &info, net, 3.0));
    if (small) {
      CHECK_OK(kvi_bma_probs(P, small, X, n, 3, 1, KVI_BMA_WEIGHTS));
      double s = 0;
      for (int i = 0; i < 15; i++) s += P[i];
      CHECK_NEAR(s, (double)n, 1e-12);
    }
  }
  kvi_net_free(pt), kvi_net_free(net), kvi_net_free(small);
}

int main(void) {
  test_direct("6-5-3", 6, 0);
  test_direct("1-2-mp-flatten-3", 16, 4); /* convolution: the same weights over im2col patches */
  test_threads();
  test_methods_agree();
  test_shared();
  test_point_and_compressed();
  TEST_MAIN_END();
}
