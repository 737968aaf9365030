/* Finite-difference check (double precision) of whole convolutional networks: conv -> act ->
 * pool -> (conv) -> flatten -> dense, for every family and prior. The loss is
 * sum(out * R) + kl_weight * KL with fixed noise (the sampling stream is re-created for every
 * evaluation); its gradient from kvi_net_backward + kvi_net_kl is compared with central
 * differences over every number of the parameter block. Also the mean path (rng NULL), and that
 * the backward never computes a gradient for the data. */
#include "kronvi/models.h"
#include "kvi_test.h"

#define FD_H 1e-6
#define FD_TOL 1e-6

typedef struct {
  kvi_net *net;
  const kvi_real *X;
  const kvi_real *R; /* loss = sum(out * R) + kl_weight * KL */
  int batch;
  double kl_weight;
  uint64_t noise_seed;
  bool sampled; /* false: the mean network (rng NULL) */
} fd_ctx;

/* The same noise for every call: a fresh stream from noise_seed. */
static kvi_status fd_forward(fd_ctx *c, const kvi_real **out) {
  kvi_rng rng = kvi_rng_stream(c->noise_seed, 3);
  return kvi_net_forward(c->net, out, c->X, c->batch, c->sampled ? &rng : NULL);
}

static double fd_loss(const double *theta, void *vctx) {
  fd_ctx *c = vctx;
  kvi_params *p = c->net->params;
  memcpy(p->data, theta, p->n * sizeof(double));
  const kvi_real *out;
  if (fd_forward(c, &out)) return NAN;
  double s = 0;
  for (int i = 0; i < c->batch * c->net->out_size; i++) s += out[i] * c->R[i];
  double kl = 0;
  kvi_params_zero_grad(p);
  if (kvi_net_kl(c->net, &kl, 0)) return NAN;
  return s + c->kl_weight * kl;
}

typedef struct {
  const char *arch;
  kvi_family family;
  kvi_prior prior;
  kvi_act act;
  bool sampled;
} fd_case;

/* Image nets on 6x6x2 inputs: same-padded conv, 2x2 pooling, strided conv, dense head. */
static void check_case(const fd_case *k) {
  kvi_net_config cfg = kvi_net_config_default();
  cfg.family = k->family, cfg.prior = k->prior, cfg.act = k->act, cfg.prior_var = 0.7;
  cfg.in_h = cfg.in_w = 6;
  cfg.init_log_sigma = -1.0; /* large posterior noise so that the variance paths matter */
  const int B = 3, in_size = 6 * 6 * 2;
  kvi_net *net = NULL;
  CHECK_OK(kvi_net_create(&net, k->arch, in_size, &cfg, 4, 21));
  if (!net) return;
  CHECK(net->in_size == in_size);
  const int out_size = net->out_size;
  kvi_real *X = malloc((size_t)B * in_size * sizeof *X);
  kvi_real *R = malloc((size_t)B * out_size * sizeof *R);
  kvi_rng r = kvi_rng_stream(17, 5);
  kvi_rng_normal(&r, X, (size_t)B * in_size); /* continuous inputs: no ties in max-pooling */
  kvi_rng_normal(&r, R, (size_t)B * out_size);
  /* perturb every parameter so that off-diagonal factors and prior parameters are generic */
  kvi_params *p = net->params;
  const size_t n = p->n;
  double *theta = malloc(n * sizeof *theta), *g = malloc(n * sizeof *g);
  kvi_real *pert = malloc(n * sizeof *pert);
  kvi_rng_normal(&r, pert, n);
  for (size_t i = 0; i < n; i++) p->data[i] += 0.2 * pert[i];
  memcpy(theta, p->data, n * sizeof *theta);

  fd_ctx c = {net, X, R, B, 0.37, 99, k->sampled};
  const kvi_real *out;
  CHECK_OK(fd_forward(&c, &out));
  CHECK(net->noisy == (k->sampled ? 1 : 0));
  /* the data's gradient buffer: the backward must leave it alone (dX of layer 0 is NULL) */
  for (int i = 0; i < B * in_size; i++) net->grads[0][i] = 12345.0;
  kvi_real *X0 = malloc((size_t)B * in_size * sizeof *X0);
  memcpy(X0, X, (size_t)B * in_size * sizeof *X0);
  kvi_params_zero_grad(p);
  CHECK_OK(kvi_net_backward(net, R, B));
  double kl = 0;
  CHECK_OK(kvi_net_kl(net, &kl, (kvi_real)c.kl_weight));
  if (k->family == KVI_FAMILY_POINT) CHECK(kl == 0);
  CHECK(isfinite(kl));
  memcpy(g, p->grad, n * sizeof *g);
  bool untouched = true;
  for (int i = 0; i < B * in_size; i++) untouched &= net->grads[0][i] == 12345.0;
  CHECK(untouched);
  CHECK(memcmp(X0, X, (size_t)B * in_size * sizeof *X0) == 0);

  /* every view got a gradient somewhere (the parameters all reach the loss) */
  for (int v = 0; v < p->nviews; v++) {
    double a = 0;
    for (size_t i = 0; i < p->views[v].size; i++) a += fabs(g[p->views[v].offset + i]);
    if (!(a > 0)) fprintf(stderr, "%s: view %s has a zero gradient\n", k->arch, p->views[v].name);
    CHECK(a > 0);
  }

  double err = kvi_test_fd_maxerr(fd_loss, &c, theta, g, (int)n, FD_H);
  if (!(err < FD_TOL))
    fprintf(stderr, "%s family %s prior %s act %s %s: max FD error %.3g\n", k->arch,
            kvi_family_name(k->family), kvi_prior_name(k->prior), kvi_act_name(k->act),
            k->sampled ? "sampled" : "mean", err);
  CHECK(err < FD_TOL);
  free(theta), free(g), free(pert), free(X), free(X0), free(R);
  kvi_net_free(net);
}

/* The layer structure the two architectures must produce (shapes through the network). */
static void check_shapes(void) {
  kvi_net_config cfg = kvi_net_config_default();
  cfg.in_h = cfg.in_w = 6;
  kvi_net *net = NULL;
  CHECK_OK(kvi_net_create(&net, "2-3-mp-flatten-4", 72, &cfg, 2, 1));
  if (net) {
    /* conv0, pool, act (pooling first: it commutes with ELU), flatten, fc0 */
    CHECK(net->nlayers == 5);
    CHECK(!strcmp(net->layers[0].ops->kind, "conv") && net->layers[0].out_size == 6 * 6 * 3);
    CHECK(!strcmp(net->layers[1].ops->kind, "pool") && net->layers[1].out_size == 3 * 3 * 3);
    CHECK(!strcmp(net->layers[2].ops->kind, "act") && net->layers[2].out_size == 3 * 3 * 3);
    CHECK(!strcmp(net->layers[3].ops->kind, "flatten") && net->layers[3].out_size == 27);
    CHECK(!strcmp(net->layers[4].ops->kind, "dense") && net->out_size == 4);
    kvi_net_free(net);
  }
  CHECK_OK(kvi_net_create(&net, "2-3-mp-3k3s2p1-flatten-4", 72, &cfg, 2, 1));
  if (net) {
    int nd = 0;
    kvi_net_dense(net, 0, &nd);
    CHECK(nd == 3);
    const kvi_conv *c1 = net->layers[kvi_net_weight_layer(net, 1)].state;
    CHECK(c1->h == 3 && c1->w == 3 && c1->oh == 2 && c1->ow == 2 && c1->stride == 2);
    CHECK(c1->d.n == 3 * 3 * 3 && c1->d.m == 3);
    CHECK(kvi_net_dense(net, 2, NULL)->n == 2 * 2 * 3);
    kvi_net_free(net);
  }
  /* strided conv right at the input; the odd 3x3 map pools to 1x1 */
  CHECK_OK(kvi_net_create(&net, "2-3k3s2p1-mp-flatten-4", 72, &cfg, 2, 1));
  if (net) {
    CHECK(net->layers[0].out_size == 3 * 3 * 3);
    CHECK(kvi_net_dense(net, 1, NULL)->n == 3);
    kvi_net_free(net);
  }
}

int main(void) {
  const char *archs[3] = {"2-3-mp-flatten-4", "2-3-mp-3k3s2p1-flatten-4", "2-3k3s2p1-mp-flatten-4"};
  const kvi_family fams[4] = {KVI_FAMILY_POINT, KVI_FAMILY_DIAG, KVI_FAMILY_MN, KVI_FAMILY_MNDIAG};
  check_shapes();
  for (int a = 0; a < 3; a++)
    for (int f = 0; f < 4; f++) {
      if (fams[f] == KVI_FAMILY_POINT) {
        fd_case k = {archs[a], fams[f], KVI_PRIOR_NONE, KVI_ACT_ELU, true};
        check_case(&k);
        continue;
      }
      fd_case ard = {archs[a], fams[f], KVI_PRIOR_ARD, KVI_ACT_ELU, true};
      fd_case grp = {archs[a], fams[f], KVI_PRIOR_GROUP, KVI_ACT_ELU, true};
      check_case(&ard);
      check_case(&grp);
    }
  /* the remaining priors and ReLU on the two-conv net */
  const kvi_prior more[2] = {KVI_PRIOR_SCALAR, KVI_PRIOR_FIXED};
  for (int f = 1; f < 4; f++)
    for (int q = 0; q < 2; q++) {
      fd_case k = {archs[1], fams[f], more[q], KVI_ACT_ELU, true};
      check_case(&k);
    }
  fd_case relu = {archs[1], KVI_FAMILY_MN, KVI_PRIOR_ARD, KVI_ACT_RELU, true};
  check_case(&relu);
  /* the mean network: no noise, the KL still counts */
  fd_case mean_mn = {archs[1], KVI_FAMILY_MN, KVI_PRIOR_GROUP, KVI_ACT_ELU, false};
  fd_case mean_diag = {archs[0], KVI_FAMILY_DIAG, KVI_PRIOR_ARD, KVI_ACT_ELU, false};
  check_case(&mean_mn);
  check_case(&mean_diag);
  TEST_MAIN_END();
}
