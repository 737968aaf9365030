/* Finite-difference checks (double precision) of every backward in nn/ and models/: the dense
 * layer for each family (parameters and input), activations inside a network, the losses, and
 * the layer KL for each prior. */
#include "kronvi/models.h"
#include "kvi_test.h"

typedef struct {
  kvi_net *net;
  const kvi_real *X;
  const kvi_real *R; /* loss = sum(out * R) + kl_weight * KL */
  int batch;
  double kl_weight;
  uint64_t noise_seed;
} net_ctx;

static double net_loss(const double *theta, void *vctx) {
  net_ctx *c = vctx;
  memcpy(c->net->params->data, theta, c->net->params->n * sizeof(double));
  kvi_rng rng = kvi_rng_stream(c->noise_seed, 3);
  const kvi_real *out;
  if (kvi_net_forward(c->net, &out, c->X, c->batch, &rng)) return NAN;
  double s = 0;
  for (int i = 0; i < c->batch * c->net->out_size; i++) s += out[i] * c->R[i];
  double kl = 0;
  kvi_params_zero_grad(c->net->params);
  if (kvi_net_kl(c->net, &kl, 0)) return NAN;
  return s + c->kl_weight * kl;
}

static void check_net(kvi_family fam, kvi_prior prior, kvi_act act) {
  kvi_net_config cfg = kvi_net_config_default();
  cfg.family = fam, cfg.prior = prior, cfg.act = act, cfg.prior_var = 0.7;
  cfg.init_log_sigma = -1.0; /* large noise so that variance paths matter */
  kvi_net *net = NULL;
  CHECK_OK(kvi_net_create(&net, "5-4-3", 5, &cfg, 8, 11));
  if (!net) return;
  int B = 3;
  kvi_real X[15], R[9];
  kvi_rng r = kvi_rng_stream(5, 5);
  kvi_rng_normal(&r, X, 15);
  kvi_rng_normal(&r, R, 9);
  /* perturb all parameters so off-diagonals and priors are generic */
  size_t n = net->params->n;
  double *theta = malloc(n * sizeof *theta), *g = malloc(n * sizeof *g);
  kvi_real *pert = malloc(n * sizeof *pert);
  kvi_rng_normal(&r, pert, n);
  for (size_t i = 0; i < n; i++) net->params->data[i] += 0.2 * pert[i];
  memcpy(theta, net->params->data, n * sizeof *theta);
  net_ctx c = {net, X, R, B, 0.37, 99};
  /* analytic gradient: forward, backward of R, plus KL gradient */
  memcpy(net->params->data, theta, n * sizeof *theta);
  kvi_rng rng = kvi_rng_stream(c.noise_seed, 3);
  const kvi_real *out;
  CHECK_OK(kvi_net_forward(net, &out, X, B, &rng));
  kvi_params_zero_grad(net->params);
  CHECK_OK(kvi_net_backward(net, R, B));
  double kl;
  CHECK_OK(kvi_net_kl(net, &kl, (kvi_real)c.kl_weight));
  memcpy(g, net->params->grad, n * sizeof *g);
  double err = kvi_test_fd_maxerr(net_loss, &c, theta, g, (int)n, 1e-6);
  if (err > 1e-6)
    fprintf(stderr, "family %s prior %s act %s: max FD error %.3g\n", kvi_family_name(fam),
            kvi_prior_name(prior), kvi_act_name(act), err);
  CHECK(err < 1e-6);
  free(theta), free(g), free(pert);
  kvi_net_free(net);
}

/* dX of a dense layer (the network never asks for the data's gradient). */
typedef struct {
  kvi_dense *l;
  kvi_params *p;
  void *ws;
  const kvi_real *eps, *R;
  int batch;
} dense_ctx;

static double dense_loss(const double *x, void *vctx) {
  dense_ctx *c = vctx;
  kvi_real Y[64];
  if (kvi_dense_forward(Y, c->ws, c->l, c->p, x, c->eps, c->batch)) return NAN;
  double s = 0;
  for (int i = 0; i < c->batch * c->l->m; i++) s += Y[i] * c->R[i];
  return s;
}

static void check_dense_dx(kvi_family fam) {
  kvi_params p;
  kvi_params_init(&p);
  kvi_dense l;
  kvi_prior prior = fam == KVI_FAMILY_POINT ? KVI_PRIOR_NONE : KVI_PRIOR_ARD;
  CHECK_OK(kvi_dense_declare(&l, &p, "d", 4, 3, fam, prior, 1.0, true));
  CHECK_OK(kvi_params_alloc(&p));
  kvi_rng r = kvi_rng_stream(8, 1);
  kvi_dense_init(&l, &p, &r, 1.0, -0.5);
  kvi_real pert[64];
  for (int i = 0; i < p.nviews; i++) {
    kvi_rng_normal(&r, pert, p.views[i].size < 64 ? p.views[i].size : 64);
    for (size_t k = 0; k < p.views[i].size && k < 64; k++)
      p.data[p.views[i].offset + k] += 0.1 * pert[k];
  }
  int B = 2;
  kvi_real X[8], R[6], eps[12], dX[8];
  kvi_rng_normal(&r, X, 8);
  kvi_rng_normal(&r, R, 6);
  kvi_rng_normal(&r, eps, 12);
  void *ws = kvi_alloc(kvi_dense_ws_size(&l, B));
  const kvi_real *e = fam == KVI_FAMILY_POINT ? NULL : eps;
  kvi_real Y[6];
  CHECK_OK(kvi_dense_forward(Y, ws, &l, &p, X, e, B));
  CHECK_OK(kvi_dense_backward(dX, &p, R, ws, &l, X, e, B));
  dense_ctx c = {&l, &p, ws, e, R, B};
  double err = kvi_test_fd_maxerr(dense_loss, &c, X, dX, 8, 1e-6);
  if (err > 1e-6) fprintf(stderr, "dense dX %s: FD error %.3g\n", kvi_family_name(fam), err);
  CHECK(err < 1e-6);
  kvi_free(ws);
  kvi_params_free(&p);
}

typedef struct {
  const int32_t *lab;
  const kvi_real *T;
  int B, K, which;
} loss_ctx;

static double loss_fn(const double *z, void *vctx) {
  loss_ctx *c = vctx;
  double l = 0;
  if (c->which == 0)
    kvi_softmax_xent(&l, NULL, NULL, NULL, z, c->lab, c->B, c->K);
  else
    kvi_gauss_nll(&l, NULL, NULL, z, c->T, (kvi_real)z[c->B * c->K], c->B, c->K);
  return l;
}

static void check_losses(void) {
  int B = 3, K = 4;
  kvi_real z[13], dz[13], T[12];
  int32_t lab[3] = {0, 3, 2};
  kvi_rng r = kvi_rng_stream(2, 2);
  kvi_rng_normal(&r, z, 13);
  kvi_rng_normal(&r, T, 12);
  double l;
  int correct = 0;
  CHECK_OK(kvi_softmax_xent(&l, dz, NULL, &correct, z, lab, B, K));
  loss_ctx c = {lab, T, B, K, 0};
  CHECK(kvi_test_fd_maxerr(loss_fn, &c, z, dz, B * K, 1e-6) < 1e-7);
  dz[12] = 0;
  CHECK_OK(kvi_gauss_nll(&l, dz, &dz[12], z, T, z[12], B, K));
  c.which = 1;
  CHECK(kvi_test_fd_maxerr(loss_fn, &c, z, dz, B * K + 1, 1e-6) < 1e-7);
  /* gaussian NLL value: 1/2 beta r^2 - 1/2 log beta + 1/2 log 2pi for one number */
  kvi_real y1 = 1.5, t1 = 0.5;
  CHECK_OK(kvi_gauss_nll(&l, NULL, NULL, &y1, &t1, (kvi_real)log(2.0), 1, 1));
  CHECK_NEAR(l, 0.5 * 2 * 1 - 0.5 * log(2.0) + 0.5 * log(6.283185307179586), 1e-12);
  int32_t badlab[3] = {0, 4, 1};
  CHECK_FAILS(kvi_softmax_xent(&l, dz, NULL, NULL, z, badlab, B, K));
  CHECK_FAILS(kvi_softmax_xent(&l, dz, NULL, NULL, z, lab, 0, K));
}

static void check_bad_input(void) {
  kvi_net_config cfg = kvi_net_config_default();
  kvi_net *net = NULL;
  CHECK_FAILS(kvi_net_create(&net, "784-x-10", 784, &cfg, 10, 1));
  CHECK_FAILS(kvi_net_create(&net, "784", 784, &cfg, 10, 1));
  CHECK_FAILS(kvi_net_create(&net, "784-0-10", 784, &cfg, 10, 1));
  CHECK_FAILS(kvi_net_create(&net, "100-10", 784, &cfg, 10, 1)); /* input size mismatch */
  CHECK_FAILS(kvi_net_create(&net, "784-10", 784, &cfg, 0, 1));
  cfg.prior = KVI_PRIOR_FIXED, cfg.prior_var = -1;
  CHECK_FAILS(kvi_net_create(&net, "4-2", 4, &cfg, 10, 1));
  CHECK(net == NULL);
  kvi_family f;
  CHECK_FAILS(kvi_family_parse(&f, "gaussian"));
  kvi_act a;
  CHECK_FAILS(kvi_act_parse(&a, "tanh"));
  cfg = kvi_net_config_default();
  CHECK_OK(kvi_net_create(&net, "4-2", 4, &cfg, 10, 1));
  kvi_real X[44] = {0};
  const kvi_real *out;
  CHECK_FAILS(kvi_net_forward(net, &out, X, 11, NULL)); /* batch above max_batch */
  net->params->data[0] = NAN;
  double kl;
  CHECK_FAILS(kvi_net_kl(net, &kl, 1));
  kvi_net_free(net);
}

int main(void) {
  kvi_family fams[4] = {KVI_FAMILY_POINT, KVI_FAMILY_DIAG, KVI_FAMILY_MN, KVI_FAMILY_MNDIAG};
  kvi_prior priors[4] = {KVI_PRIOR_ARD, KVI_PRIOR_GROUP, KVI_PRIOR_SCALAR, KVI_PRIOR_FIXED};
  for (int f = 0; f < 4; f++) {
    check_dense_dx(fams[f]);
    check_net(fams[f], KVI_PRIOR_ARD, KVI_ACT_ELU);
    check_net(fams[f], KVI_PRIOR_ARD, KVI_ACT_RELU);
    if (f > 0)
      for (int p = 1; p < 4; p++) check_net(fams[f], priors[p], KVI_ACT_ELU);
  }
  check_losses();
  check_bad_input();
  TEST_MAIN_END();
}
