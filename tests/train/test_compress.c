/* Structured compression (kvi_net_compress): for an MLP and two small CNNs (padding 1 and 0), every
 * family and the ARD / group / scalar priors, with dead columns (constants merged into the ghost
 * unit, also in front of a padded convolution), unused channels and a dead column with zero
 * bias: the compressed network's mean predictions equal the pruned network's, the channel counts
 * shrink as expected, the kept weights keep their marginal variances, and the predictive
 * covariance of the first transformed layer (LRT moments) is unchanged. Bad input and corner
 * cases: NaN threshold, nothing to remove, every unit of a layer dead. */
#include "kronvi/train.h"
#include "kvi_test.h"

#define THR 3.0

typedef struct {
  const char *arch, *arch_after;
  int in_size;
  int keep0[4], nkeep0; /* kept channels of weight layer 0 (a ghost follows) */
  int keep1[4], nkeep1; /* kept channels of weight layer 1 (no ghost) */
} scenario;

static const scenario SCEN[] = {
    {"6-5-4-3", "6-3-3-3", 6, {0, 4}, 2, {1, 2, 3}, 3},
    {"2-4-mp-3-flatten-3", "2-2-mp-2-flatten-3", 72, {0}, 1, {1, 2}, 2},
    {"2-4k3p0-mp-3k2p0-flatten-3", "2-2k3p0-mp-2k2p0-flatten-3", 72, {0}, 1, {1, 2}, 2},
};

/* Random posterior with |M| >= 0.2 and variances ~ e^-6: nothing is pruned by chance. */
static void randomize(kvi_net *net, uint64_t seed) {
  kvi_rng r = kvi_rng_stream(seed, 3);
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    kvi_dense *l = kvi_net_dense(net, k, NULL);
    const kvi_params *p = net->params;
    size_t nm = (size_t)l->n * l->m;
    kvi_real z;
    kvi_real *M = kvi_params_data(p, l->iM);
    for (size_t i = 0; i < nm; i++) {
      kvi_rng_normal(&r, &z, 1);
      M[i] = (z >= 0 ? 1 : -1) * (0.2 + 0.3 * fabs(z));
    }
    if (l->ib >= 0)
      for (int j = 0; j < l->m; j++) {
        kvi_rng_normal(&r, &z, 1);
        kvi_params_data(p, l->ib)[j] = 0.3 * z;
      }
    if (l->iA >= 0) {
      kvi_real *P[2] = {kvi_params_data(p, l->iA), kvi_params_data(p, l->iB)};
      int sz[2] = {l->n, l->m};
      for (int f = 0; f < 2; f++)
        for (int i = 0; i < sz[f]; i++)
          for (int j = 0; j <= i; j++) {
            kvi_rng_normal(&r, &z, 1);
            P[f][(size_t)i * sz[f] + j] = i == j ? -1.5 + 0.2 * z : 0.05 * z;
          }
    }
    if (l->iS >= 0)
      for (size_t i = 0; i < nm; i++) {
        kvi_rng_normal(&r, &z, 1);
        kvi_params_data(p, l->iS)[i] = (l->family == KVI_FAMILY_DIAG ? -3.0 : -6.0) + 0.3 * z;
      }
    if (l->itau >= 0) {
      for (int i = 0; i < l->n; i++) kvi_params_data(p, l->itau)[i] = 0.01 * i;
      for (int j = 0; j < l->m; j++) kvi_params_data(p, l->igamma)[j] = -0.02 * j;
    }
  }
}

static kvi_net *make_net(const char *arch, int in_size, kvi_family fam, kvi_prior prior,
                         kvi_act act, uint64_t seed) {
  kvi_net_config cfg = kvi_net_config_default();
  cfg.family = fam, cfg.prior = prior, cfg.act = act;
  kvi_net *net = NULL;
  CHECK_OK(kvi_net_create(&net, arch, in_size, &cfg, 8, seed));
  if (net) randomize(net, seed);
  return net;
}

/* Zeroes the means of the weights with log alpha > THR in place: the pruned model. */
static void prune_in_place(kvi_net *net) {
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    kvi_dense *l = kvi_net_dense(net, k, NULL);
    size_t nm = (size_t)l->n * l->m;
    kvi_real *la = malloc(nm * sizeof *la), *M = kvi_params_data(net->params, l->iM);
    CHECK_OK(kvi_dense_log_alpha(la, net->params, l));
    for (size_t i = 0; i < nm; i++)
      if (la[i] > THR) M[i] = 0;
    free(la);
  }
}

/* max |f_a(X) - f_b(X)| of the mean-weight outputs on a fixed random batch of 6. */
static double max_diff(kvi_net *a, kvi_net *b) {
  kvi_real X[6 * 72];
  kvi_rng r = kvi_rng_stream(11, 1);
  kvi_rng_normal(&r, X, (size_t)6 * a->in_size);
  const kvi_real *ya, *yb;
  CHECK_OK(kvi_net_forward(a, &ya, X, 6, NULL));
  kvi_real out[6 * 8];
  memcpy(out, ya, sizeof(kvi_real) * 6 * a->out_size);
  CHECK_OK(kvi_net_forward(b, &yb, X, 6, NULL));
  double d = 0;
  for (int i = 0; i < 6 * a->out_size; i++) d = fmax(d, fabs((double)out[i] - yb[i]));
  return d;
}

/* Cov(y) (m, m) of y = x W for one input row x (n): (x^T U x) V + diag(sum_i x_i^2 D_i.). */
static void pred_cov(double *cov, const kvi_net *net, const kvi_dense *l, const double *x) {
  const kvi_params *p = net->params;
  int n = l->n, m = l->m;
  memset(cov, 0, sizeof(double) * m * m);
  if (l->iA >= 0) {
    kvi_real *A = malloc(sizeof(kvi_real) * n * n), *B = malloc(sizeof(kvi_real) * m * m);
    kvi_chol_materialize(A, kvi_params_data(p, l->iA), n);
    kvi_chol_materialize(B, kvi_params_data(p, l->iB), m);
    double q = 0; /* x^T A A^T x = ||A^T x||^2 */
    for (int k = 0; k < n; k++) {
      double s = 0;
      for (int i = 0; i < n; i++) s += x[i] * A[i * n + k];
      q += s * s;
    }
    for (int a = 0; a < m; a++)
      for (int b = 0; b < m; b++) {
        double v = 0;
        for (int k = 0; k < m; k++) v += (double)B[a * m + k] * B[b * m + k];
        cov[a * m + b] = q * v;
      }
    free(A), free(B);
  }
  if (l->iS >= 0) {
    const kvi_real *S = kvi_params_data(p, l->iS);
    double f = l->family == KVI_FAMILY_DIAG ? 2.0 : 1.0;
    for (int c = 0; c < m; c++)
      for (int i = 0; i < n; i++) cov[c * m + c] += x[i] * x[i] * exp(f * S[i * m + c]);
  }
}

static double elu(double x) { return x > 0 ? x : expm1(x); }

static void run_scenario(const scenario *sc, kvi_family fam, kvi_prior prior, kvi_act act) {
  kvi_net *net = make_net(sc->arch, sc->in_size, fam, prior, act, 5);
  if (!net) return;
  kvi_params *p = net->params;
  kvi_dense *w0 = kvi_net_dense(net, 0, NULL), *w1 = kvi_net_dense(net, 1, NULL);
  int C = w0->m;
  kvi_real *M0 = kvi_params_data(p, w0->iM), *M1 = kvi_params_data(p, w1->iM);
  kvi_real *b0 = kvi_params_data(p, w0->ib), *b1 = kvi_params_data(p, w1->ib);
  /* layer 0: channels 1 and 2 dead with nonzero bias (ghost), channel 3 unused by layer 1 */
  for (int i = 0; i < w0->n; i++) M0[i * C + 1] = M0[i * C + 2] = 0;
  b0[1] = 0.7, b0[2] = -0.4;
  for (int r = 3; r < w1->n; r += C)
    for (int c = 0; c < w1->m; c++) M1[r * w1->m + c] = 0;
  /* layer 1: channel 0 dead with zero bias (outputs act(0) = 0: removed, no ghost) */
  for (int i = 0; i < w1->n; i++) M1[i * w1->m + 0] = 0;
  b1[0] = 0;
  double v[8] = {0, act == KVI_ACT_ELU ? elu(0.7) : 0.7, /* ghost coefficients per channel */
                 act == KVI_ACT_ELU    ? elu(-0.4)
                 : act == KVI_ACT_RELU ? 0
                                       : -0.4};
  int merged = (v[1] != 0) + (v[2] != 0);

  kvi_compress_info info;
  kvi_net *small = NULL;
  CHECK_OK(kvi_net_compress(&small, &info, net, THR));
  if (!small) {
    kvi_net_free(net);
    return;
  }
  CHECK(strcmp(small->arch, sc->arch_after) == 0);
  if (strcmp(small->arch, sc->arch_after))
    fprintf(stderr, "  arch %s, expected %s\n", small->arch, sc->arch_after);
  CHECK(info.nlayers == 3 && info.layer[0].ghost == 1 && info.layer[0].merged == merged);
  CHECK(info.layer[0].units_after == sc->nkeep0 + 1 && info.layer[1].units_after == sc->nkeep1);
  CHECK(info.layer[2].units_after == 3 && info.note[0] == 0);
  CHECK(info.params_after < info.params_before && info.params_after == kvi_net_param_count(small));
  CHECK(info.weights_after == (int64_t)kvi_net_weight_count(small));

  /* the marginal variances of the kept weights (and DIAG: of the combined ghost rows) */
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  const int *keepc[3] = {sc->keep0, sc->keep1, NULL}, nkc[3] = {sc->nkeep0, sc->nkeep1, 3};
  int id3[3] = {0, 1, 2};
  keepc[2] = id3;
  for (int k = 0; k < nd; k++) {
    kvi_dense *lo = kvi_net_dense(net, k, NULL), *ln = kvi_net_dense(small, k, NULL);
    kvi_real *vo = malloc(sizeof(kvi_real) * lo->n * lo->m);
    kvi_real *vn = malloc(sizeof(kvi_real) * ln->n * ln->m);
    CHECK_OK(kvi_dense_marginal_var(vo, p, lo));
    CHECK_OK(kvi_dense_marginal_var(vn, small->params, ln));
    int Co = k ? kvi_net_dense(net, k - 1, NULL)->m : 1;
    int Cn = k ? kvi_net_dense(small, k - 1, NULL)->m : 1;
    int nkp = k ? nkc[k - 1] : 1;
    for (int t = 0; t < lo->n / Co; t++)
      for (int jn = 0; jn < Cn; jn++)
        for (int c = 0; c < nkc[k]; c++) {
          int oc = keepc[k][c];
          double want = 0;
          if (jn < nkp) {
            want = vo[(size_t)(t * Co + (k ? keepc[k - 1][jn] : 0)) * lo->m + oc];
          } else if (fam == KVI_FAMILY_DIAG) { /* the ghost row: sum v_j^2 var_j */
            for (int j = 0; j < Co; j++)
              want += v[j] * v[j] * vo[(size_t)(t * Co + j) * lo->m + oc];
          } else {
            continue;
          }
          CHECK_NEAR(vn[(size_t)(t * Cn + jn) * ln->m + c], want, 1e-10);
        }
    if (k == 0 && fam != KVI_FAMILY_POINT) /* the ghost column: tiny variance */
      for (int i = 0; i < ln->n; i++) CHECK(vn[(size_t)i * ln->m + ln->m - 1] < 1e-11);
    free(vo), free(vn);
  }
  if (prior == KVI_PRIOR_GROUP) {
    kvi_dense *ln = kvi_net_dense(small, 0, NULL);
    const kvi_real *lg = kvi_params_data(p, w0->igamma),
                   *lgn = kvi_params_data(small->params, ln->igamma);
    for (int c = 0; c < sc->nkeep0; c++) CHECK(lgn[c] == lg[sc->keep0[c]]);
    CHECK(lgn[sc->nkeep0] == 0);
  }

  /* predictive covariance of layer 1 (LRT moments) for x = T^T x' */
  if (fam != KVI_FAMILY_POINT) {
    kvi_dense *ln = kvi_net_dense(small, 1, NULL);
    int Cn = sc->nkeep0 + 1, P = w1->n / C;
    double *xo = calloc((size_t)w1->n, sizeof *xo), *xn = calloc((size_t)ln->n, sizeof *xn);
    kvi_rng r = kvi_rng_stream(21, 0);
    kvi_rng_normal_f64(&r, xn, (size_t)ln->n);
    for (int t = 0; t < P; t++) {
      for (int j = 0; j < sc->nkeep0; j++) xo[t * C + sc->keep0[j]] = xn[t * Cn + j];
      for (int j = 0; j < C; j++)
        if (v[j] != 0) xo[t * C + j] = v[j] * xn[t * Cn + sc->nkeep0];
    }
    double co[16], cn[16];
    pred_cov(co, net, w1, xo);
    pred_cov(cn, small, ln, xn);
    for (int a = 0; a < sc->nkeep1; a++)
      for (int b = 0; b < sc->nkeep1; b++)
        CHECK_NEAR(cn[a * ln->m + b], co[sc->keep1[a] * w1->m + sc->keep1[b]], 1e-10);
    free(xo), free(xn);
    /* sampled forward of the compressed net runs */
    kvi_real X[4 * 72];
    for (int i = 0; i < 4 * small->in_size; i++) X[i] = (kvi_real)(0.01 * (i % 17));
    const kvi_real *y;
    kvi_rng rs = kvi_rng_stream(3, 3);
    CHECK_OK(kvi_net_forward(small, &y, X, 4, &rs));
    CHECK_OK(kvi_check_finite(y, 4 * 3, "sampled output"));
  }

  prune_in_place(net);
  double d = max_diff(net, small);
  CHECK(d < 1e-10);
  if (!(d < 1e-10))
    fprintf(stderr, "  %s %s %s: max |logit diff| %g\n", sc->arch, kvi_family_name(fam),
            kvi_prior_name(prior), d);
  kvi_net_free(small);
  kvi_net_free(net);
}

/* Nothing to remove: same architecture and bit-identical parameters. */
static void test_nothing_to_remove(kvi_family fam) {
  kvi_net *net = make_net("2-4-mp-3-flatten-3", 72, fam, KVI_PRIOR_GROUP, KVI_ACT_ELU, 9);
  kvi_compress_info info;
  kvi_net *small = NULL;
  CHECK_OK(kvi_net_compress(&small, &info, net, THR));
  if (small) {
    CHECK(strcmp(small->arch, net->arch) == 0 && info.params_after == info.params_before);
    CHECK(small->params->n == net->params->n &&
          memcmp(small->params->data, net->params->data, net->params->n * sizeof(kvi_real)) == 0);
    CHECK(max_diff(net, small) == 0);
  }
  kvi_net_free(small);
  kvi_net_free(net);
}

/* Every unit of layer 0 dead: with zero biases one unit is kept (and reported), with nonzero
 * biases the ghost unit alone carries the constants. */
static void test_all_dead(kvi_family fam, bool with_bias) {
  kvi_net *net = make_net("6-5-4-3", 6, fam, KVI_PRIOR_ARD, KVI_ACT_ELU, 4);
  kvi_dense *w0 = kvi_net_dense(net, 0, NULL);
  kvi_real *M0 = kvi_params_data(net->params, w0->iM), *b0 = kvi_params_data(net->params, w0->ib);
  for (int i = 0; i < w0->n * w0->m; i++) M0[i] = 0;
  for (int j = 0; j < w0->m; j++) b0[j] = with_bias ? 0.1 * (j + 1) : 0;
  kvi_compress_info info;
  kvi_net *small = NULL;
  CHECK_OK(kvi_net_compress(&small, &info, net, THR));
  if (small) {
    CHECK(info.layer[0].units_after == 1);
    CHECK(with_bias ? info.layer[0].ghost == 1 && info.layer[0].merged == 5 && !info.note[0]
                    : info.layer[0].forced == 1 && strstr(info.note, "fc0") != NULL);
    prune_in_place(net);
    CHECK(max_diff(net, small) < 1e-10);
  }
  kvi_net_free(small);
  kvi_net_free(net);
}

static void test_bad_input(void) {
  kvi_net *net = make_net("6-5-4-3", 6, KVI_FAMILY_MN, KVI_PRIOR_ARD, KVI_ACT_ELU, 2);
  kvi_compress_info info;
  kvi_net *small = (kvi_net *)1;
  CHECK_FAILS(kvi_net_compress(&small, &info, net, NAN));
  CHECK(small == NULL);
  CHECK_FAILS(kvi_net_compress(NULL, &info, net, THR));
  CHECK_FAILS(kvi_net_compress(&small, NULL, net, THR));
  CHECK_FAILS(kvi_net_compress(&small, &info, NULL, THR));
  /* threshold -inf: every weight pruned, every hidden layer reduced to one unit */
  CHECK_OK(kvi_net_compress(&small, &info, net, -INFINITY));
  if (small) {
    CHECK(strcmp(small->arch, "6-1-1-3") == 0 && info.note[0] != 0);
    kvi_net_free(small);
  }
  kvi_net_free(net);
  /* a single weight layer: nothing to compress */
  net = make_net("6-3", 6, KVI_FAMILY_DIAG, KVI_PRIOR_ARD, KVI_ACT_ELU, 2);
  CHECK_OK(kvi_net_compress(&small, &info, net, THR));
  if (small) CHECK(strcmp(small->arch, "6-3") == 0 && info.params_after == info.params_before);
  kvi_net_free(small);
  kvi_net_free(net);
}

int main(void) {
  const kvi_family fams[] = {KVI_FAMILY_POINT, KVI_FAMILY_DIAG, KVI_FAMILY_MN, KVI_FAMILY_MNDIAG};
  for (size_t s = 0; s < sizeof SCEN / sizeof *SCEN; s++)
    for (int f = 0; f < 4; f++) {
      run_scenario(&SCEN[s], fams[f], KVI_PRIOR_ARD, KVI_ACT_ELU);
      if (f > 0) run_scenario(&SCEN[s], fams[f], KVI_PRIOR_GROUP, KVI_ACT_ELU);
    }
  run_scenario(&SCEN[1], KVI_FAMILY_MN, KVI_PRIOR_SCALAR, KVI_ACT_RELU);
  run_scenario(&SCEN[0], KVI_FAMILY_MNDIAG, KVI_PRIOR_GROUP, KVI_ACT_NONE);
  for (int f = 0; f < 4; f++) {
    test_nothing_to_remove(fams[f]);
    test_all_dead(fams[f], false);
    test_all_dead(fams[f], true);
  }
  test_bad_input();
  TEST_MAIN_END();
}
