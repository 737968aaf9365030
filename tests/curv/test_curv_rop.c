/* The R-operator in double precision (docs/curv.md, "Checks").
 * 1. Every layer kind's rop_forward / rop_backward against central differences of its forward /
 *    backward along (V, RX, RdY), inside small networks: dense (point and the mean of an MN
 *    layer), conv (same padding and strided), max-pooling, ELU, ReLU, identity, flatten.
 * 2. Whole networks, both losses: the gradient, J v, H v, G v, the Fisher and the empirical
 *    Fisher against the dual-number network, the complex step (nets without kinks) and central
 *    differences of the gradient; G is positive semi-definite on random vectors.
 * Relative errors are max |a - b| / max |b| over the vector, all at most 1e-6. */
#include "kronvi/curv.h"
#include "kvi_test.h"

#define TOL 1e-6

static double worst_all = 0;
/* the largest error of each kind of comparison, printed at the end */
static struct {
  const char *what;
  double err;
} worst[24];
static int nworst = 0;

static double rel_err(const double *a, const double *b, size_t n) {
  double e = 0, s = 1e-300;
  for (size_t i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i])), s = fmax(s, fabs(b[i]));
  return e / s;
}

static void report(const char *what, const char *name, double err) {
  if (err > worst_all) worst_all = err;
  int k = 0;
  while (k < nworst && strcmp(worst[k].what, what)) k++;
  if (k == nworst && nworst < 24) worst[nworst++].what = what;
  if (k < 24 && err > worst[k].err) worst[k].err = err;
  if (!(err <= TOL)) fprintf(stderr, "%s %s: relative error %.3g\n", what, name, err);
  CHECK(err <= TOL);
}

static void fill(kvi_rng *r, double *x, size_t n, double sd) {
  kvi_rng_normal(r, x, n);
  for (size_t i = 0; i < n; i++) x[i] *= sd;
}

/* ---- 1. one layer: forward / backward at (theta + t V, X + t RX, dY + t RdY) ------------ */
typedef struct {
  kvi_net *net;
  int i; /* the layer */
  double *X, *RX, *dY, *RdY, *V, *theta;
  size_t nin, nout, n;
  double *Y, *dX, *g; /* outputs of one evaluation */
} layer_case;

static void layer_eval(layer_case *k, double t) {
  kvi_net *net = k->net;
  const kvi_layer *L = &net->layers[k->i];
  kvi_params *p = net->params;
  double *Xt = malloc(k->nin * sizeof *Xt), *dYt = malloc(k->nout * sizeof *dYt);
  for (size_t e = 0; e < p->n; e++) p->data[e] = k->theta[e] + t * k->V[e];
  for (size_t e = 0; e < k->nin; e++) Xt[e] = k->X[e] + (k->RX ? t * k->RX[e] : 0);
  for (size_t e = 0; e < k->nout; e++) dYt[e] = k->dY[e] + t * k->RdY[e];
  const int B = (int)(k->nin / (size_t)L->in_size);
  kvi_layer_call c = {.params = p, .ws = net->ws[k->i], .batch = B, .X = Xt, .Y = k->Y};
  CHECK_OK(L->ops->forward(L, &c));
  kvi_params_zero_grad(p);
  c.dY = dYt, c.dX = k->dX;
  CHECK_OK(L->ops->backward(L, &c));
  memcpy(k->g, p->grad, p->n * sizeof *k->g);
  memcpy(p->data, k->theta, p->n * sizeof *p->data);
  free(Xt), free(dYt);
}

static void check_layer(kvi_net *net, int i, const kvi_real *X0, int B, const char *label) {
  const kvi_layer *L = &net->layers[i];
  kvi_params *p = net->params;
  layer_case k = {net,
                  i,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  NULL,
                  (size_t)B * L->in_size,
                  (size_t)B * L->out_size,
                  p->n,
                  NULL,
                  NULL,
                  NULL};
  kvi_rng r = kvi_rng_stream(40 + (uint64_t)i, 1);
  k.X = malloc(k.nin * sizeof(double)), k.RX = malloc(k.nin * sizeof(double));
  k.dY = malloc(k.nout * sizeof(double)), k.RdY = malloc(k.nout * sizeof(double));
  k.V = calloc(k.n, sizeof(double)), k.theta = malloc(k.n * sizeof(double));
  k.Y = malloc(k.nout * sizeof(double)), k.dX = malloc(k.nin * sizeof(double));
  k.g = malloc(k.n * sizeof(double));
  memcpy(k.X, X0, k.nin * sizeof(double));
  memcpy(k.theta, p->data, k.n * sizeof(double));
  fill(&r, k.RX, k.nin, 1), fill(&r, k.dY, k.nout, 1), fill(&r, k.RdY, k.nout, 1);
  kvi_curv *cv = NULL;
  CHECK_OK(kvi_curv_create(&cv, net));
  kvi_real *mask = malloc(k.n * sizeof *mask);
  kvi_curv_mask(cv, mask);
  kvi_curv_free(cv);
  fill(&r, k.V, k.n, 1);
  for (size_t e = 0; e < k.n; e++) k.V[e] *= mask[e]; /* the means and biases only */
  /* central differences */
  const double h = 1e-6;
  double *Yp = malloc(k.nout * sizeof(double)), *dXp = malloc(k.nin * sizeof(double));
  double *gp = malloc(k.n * sizeof(double));
  layer_eval(&k, h);
  memcpy(Yp, k.Y, k.nout * sizeof(double)), memcpy(dXp, k.dX, k.nin * sizeof(double));
  memcpy(gp, k.g, k.n * sizeof(double));
  layer_eval(&k, -h);
  for (size_t e = 0; e < k.nout; e++) Yp[e] = (Yp[e] - k.Y[e]) / (2 * h);
  for (size_t e = 0; e < k.nin; e++) dXp[e] = (dXp[e] - k.dX[e]) / (2 * h);
  for (size_t e = 0; e < k.n; e++) gp[e] = (gp[e] - k.g[e]) / (2 * h) * mask[e];
  layer_eval(&k, 0); /* the forward and backward the R-operator differentiates */
  kvi_params dir = *p;
  double *RY = malloc(k.nout * sizeof(double)), *RdX = malloc(k.nin * sizeof(double));
  double *Rg = calloc(k.n, sizeof(double));
  void *rws = L->ops->rop_ws_size ? kvi_alloc(L->ops->rop_ws_size(L, B)) : NULL;
  dir.data = k.V, dir.grad = Rg;
  kvi_layer_call c = {.params = p, .ws = net->ws[i], .batch = B, .X = k.X, .Y = k.Y, .dY = k.dY};
  kvi_rop_call rc = {&dir, k.RX, RY, k.RdY, RdX, rws};
  CHECK_OK(L->ops->rop_forward(L, &c, &rc));
  CHECK_OK(L->ops->rop_backward(L, &c, &rc));
  char name[160];
  snprintf(name, sizeof name, "%s layer %d (%s)", label, i, L->ops->kind);
  report("R{Y} vs FD", name, rel_err(RY, Yp, k.nout));
  report("R{dX} vs FD", name, rel_err(RdX, dXp, k.nin));
  if (L->ops->weights) report("R{grad} vs FD", name, rel_err(Rg, gp, k.n));
  kvi_free(rws), free(RY), free(RdX), free(Rg), free(Yp), free(dXp), free(gp), free(mask);
  free(k.X), free(k.RX), free(k.dY), free(k.RdY), free(k.V), free(k.theta), free(k.Y), free(k.dX);
  free(k.g);
}

/* ---- 2. networks --------------------------------------------------------------------------- */
typedef struct {
  const char *arch;
  kvi_act act;
  kvi_family family;
  int in_size, h; /* images: h x h x (in_size / h^2) */
  bool analytic;  /* no ReLU, no max-pooling: the complex step applies */
} net_case;

static kvi_net *make_net(const net_case *nc) {
  kvi_net_config cfg = kvi_net_config_default();
  cfg.family = nc->family, cfg.act = nc->act, cfg.in_h = cfg.in_w = nc->h;
  if (nc->family == KVI_FAMILY_POINT) cfg.prior = KVI_PRIOR_NONE;
  kvi_net *net = NULL;
  CHECK_OK(kvi_net_create(&net, nc->arch, nc->in_size, &cfg, 4, 7));
  if (!net) return NULL;
  kvi_rng r = kvi_rng_stream(9, 9);
  kvi_real *pert = malloc(net->params->n * sizeof *pert);
  kvi_rng_normal(&r, pert, net->params->n);
  for (size_t e = 0; e < net->params->n; e++) net->params->data[e] += 0.3 * pert[e];
  free(pert);
  return net;
}

/* G v by central differences: u = (dL/dz (z + h Jv) - dL/dz (z - h Jv)) / 2h, then J^T u by the
 * dual-number network; J v itself by central differences of the outputs. */
static void gvp_fd(kvi_net *net, const kvi_curv_batch *b, const double *v, double *Gv) {
  kvi_params *p = net->params;
  const size_t n = p->n, nz = (size_t)b->batch * net->out_size;
  double *theta = malloc(n * sizeof *theta), *zp = malloc(nz * sizeof *zp);
  double *Jv = malloc(nz * sizeof *Jv), *d1 = malloc(nz * sizeof *d1),
         *d2 = malloc(nz * sizeof *d2);
  double *z = malloc(nz * sizeof *z), loss;
  memcpy(theta, p->data, n * sizeof *theta);
  const double h = 1e-6;
  const kvi_real *out;
  for (int sgn = 1; sgn >= -1; sgn -= 2) {
    for (size_t e = 0; e < n; e++) p->data[e] = theta[e] + sgn * h * v[e];
    CHECK_OK(kvi_net_forward(net, &out, b->X, b->batch, NULL));
    for (size_t e = 0; e < nz; e++) Jv[e] = sgn > 0 ? out[e] : (Jv[e] - out[e]) / (2 * h);
  }
  memcpy(p->data, theta, n * sizeof *theta);
  CHECK_OK(kvi_net_forward(net, &out, b->X, b->batch, NULL));
  memcpy(z, out, nz * sizeof *z);
  const double hz = 1e-5;
  for (int sgn = 1; sgn >= -1; sgn -= 2) {
    for (size_t e = 0; e < nz; e++) zp[e] = z[e] + sgn * hz * Jv[e];
    double *d = sgn > 0 ? d1 : d2;
    CHECK_OK(b->loss == KVI_LOSS_XENT
                 ? kvi_softmax_xent(&loss, d, NULL, NULL, zp, b->labels, b->batch, net->out_size)
                 : kvi_gauss_nll(&loss, d, NULL, zp, b->T, b->log_beta, b->batch, net->out_size));
  }
  for (size_t e = 0; e < nz; e++) d1[e] = (d1[e] - d2[e]) / (2 * hz);
  CHECK_OK(kvi_curv_dual_vjp(net, b, d1, Gv));
  free(theta), free(zp), free(Jv), free(d1), free(d2), free(z);
}

/* H v by central differences of the library's gradient. */
static void hvp_fd(kvi_curv *cv, kvi_net *net, const kvi_curv_batch *b, const double *v,
                   double *Hv) {
  kvi_params *p = net->params;
  const size_t n = p->n;
  double *theta = malloc(n * sizeof *theta), *g = malloc(n * sizeof *g), loss;
  memcpy(theta, p->data, n * sizeof *theta);
  const double h = 1e-5;
  for (size_t e = 0; e < n; e++) p->data[e] = theta[e] + h * v[e];
  CHECK_OK(kvi_curv_eval(cv, b, &loss, Hv, NULL));
  for (size_t e = 0; e < n; e++) p->data[e] = theta[e] - h * v[e];
  CHECK_OK(kvi_curv_eval(cv, b, &loss, g, NULL));
  for (size_t e = 0; e < n; e++) Hv[e] = (Hv[e] - g[e]) / (2 * h);
  memcpy(p->data, theta, n * sizeof *theta);
  free(theta), free(g);
}

/* The empirical Fisher product from per-example gradients of the dual-number network. */
static void efvp_ref(kvi_net *net, const kvi_curv_batch *b, const double *v, double *Fv) {
  const size_t n = net->params->n;
  double *gb = malloc(n * sizeof *gb);
  memset(Fv, 0, n * sizeof *Fv);
  for (int r = 0; r < b->batch; r++) {
    kvi_curv_batch one = *b;
    one.batch = 1, one.X = b->X + (size_t)r * net->in_size;
    if (b->labels) one.labels = b->labels + r;
    if (b->T) one.T = b->T + (size_t)r * net->out_size;
    CHECK_OK(kvi_curv_dual(net, &one, NULL, NULL, NULL, gb, NULL, NULL));
    double dot = 0;
    for (size_t e = 0; e < n; e++) dot += gb[e] * v[e];
    for (size_t e = 0; e < n; e++) Fv[e] += gb[e] * dot / b->batch;
  }
  free(gb);
}

static void check_net(const net_case *nc, kvi_loss_kind loss) {
  kvi_net *net = make_net(nc);
  if (!net) return;
  const int B = 3, K = net->out_size;
  const size_t n = net->params->n, nz = (size_t)B * K;
  kvi_rng r = kvi_rng_stream(31, (uint64_t)loss);
  double *X = malloc((size_t)B * net->in_size * sizeof *X), *T = malloc(nz * sizeof *T);
  int32_t labels[3] = {0, 2 % K, 1 % K};
  fill(&r, X, (size_t)B * net->in_size, 1), fill(&r, T, nz, 1);
  kvi_curv_batch b = {loss, X, B, labels, T, (kvi_real)0.3, NULL, 0};
  kvi_curv *cv = NULL;
  CHECK_OK(kvi_curv_create(&cv, net));
  if (!cv) return;
  double *v = malloc(n * sizeof *v), *mask = malloc(n * sizeof *mask);
  double *a = malloc(n * sizeof *a), *ref = malloc(n * sizeof *ref),
         *ref2 = malloc(n * sizeof *ref2);
  double *Jv = malloc(nz * sizeof *Jv), *Jr = malloc(nz * sizeof *Jr), *u = malloc(nz * sizeof *u);
  double f, f2, df;
  kvi_curv_mask(cv, mask);
  fill(&r, v, n, 1);
  for (size_t e = 0; e < n; e++) v[e] *= mask[e];
  char name[96];
  snprintf(name, sizeof name, "%s %s %s %s", nc->arch, kvi_act_name(nc->act),
           kvi_family_name(nc->family), loss == KVI_LOSS_XENT ? "xent" : "squared");
  /* gradient and J v */
  CHECK_OK(kvi_curv_eval(cv, &b, &f, a, NULL));
  CHECK_OK(kvi_curv_dual(net, &b, v, &f2, &df, ref, ref2, Jr));
  CHECK_NEAR(f, f2, 1e-12);
  report("gradient vs dual", name, rel_err(a, ref, n));
  CHECK_OK(kvi_curv_jvp(cv, v, Jv));
  report("Jv vs dual", name, rel_err(Jv, Jr, nz));
  double gv = 0;
  for (size_t e = 0; e < n; e++) gv += a[e] * v[e];
  CHECK_NEAR(gv, df, 1e-10);
  /* H v: dual, complex step, central differences */
  CHECK_OK(kvi_curv_hvp(cv, v, a));
  report("Hv vs dual", name, rel_err(a, ref2, n));
  if (nc->analytic) {
    CHECK_OK(kvi_curv_cstep(net, &b, v, 0, &df, ref, Jr));
    report("Hv vs complex step", name, rel_err(a, ref, n));
    report("Jv vs complex step", name, rel_err(Jv, Jr, nz));
  }
  hvp_fd(cv, net, &b, v, ref);
  report("Hv vs FD", name, rel_err(a, ref, n));
  CHECK_OK(kvi_curv_eval(cv, &b, &f, ref, NULL)); /* the products' point is theta again */
  /* G v: dual (J^T H_L J v from the dual J v and J^T), central differences; F v = G v */
  CHECK_OK(kvi_curv_gvp(cv, v, a));
  CHECK_OK(kvi_curv_dual(net, &b, v, NULL, NULL, NULL, NULL, Jr));
  CHECK_OK(b.loss == KVI_LOSS_XENT ? kvi_softmax_xent_hvp(u, kvi_curv_outputs(cv), Jr, B, K)
                                   : kvi_gauss_nll_hvp(u, Jr, b.log_beta, B, K));
  CHECK_OK(kvi_curv_dual_vjp(net, &b, u, ref));
  report("Gv vs dual", name, rel_err(a, ref, n));
  gvp_fd(net, &b, v, ref);
  report("Gv vs FD", name, rel_err(a, ref, n));
  CHECK_OK(kvi_curv_eval(cv, &b, &f, ref, NULL));
  CHECK_OK(kvi_curv_fvp(cv, v, ref));
  report("Fv vs Gv", name, rel_err(ref, a, n));
  CHECK_OK(kvi_curv_efvp(cv, v, a));
  efvp_ref(net, &b, v, ref);
  report("empirical Fv vs per-example dual", name, rel_err(a, ref, n));
  /* G is PSD on random vectors (H need not be) */
  double min_g = INFINITY, min_h = INFINITY;
  for (int t = 0; t < 20; t++) {
    fill(&r, v, n, 1);
    for (size_t e = 0; e < n; e++) v[e] *= mask[e];
    double vg = 0, vh = 0, vv = 0;
    CHECK_OK(kvi_curv_gvp(cv, v, a));
    CHECK_OK(kvi_curv_hvp(cv, v, ref));
    for (size_t e = 0; e < n; e++) vg += v[e] * a[e], vh += v[e] * ref[e], vv += v[e] * v[e];
    min_g = fmin(min_g, vg / vv), min_h = fmin(min_h, vh / vv);
  }
  CHECK(min_g >= -1e-12);
  printf("%-44s min v.Gv/v.v %+.3e  min v.Hv/v.v %+.3e\n", name, min_g, min_h);
  /* every layer's R-operator against central differences, at this network's activations */
  for (int i = 0; i < net->nlayers && loss == KVI_LOSS_XENT; i++) {
    double *Xi = malloc((size_t)B * net->layers[i].in_size * sizeof *Xi);
    CHECK_OK(kvi_curv_eval(cv, &b, &f, NULL, NULL));
    memcpy(Xi, net->acts[i], (size_t)B * net->layers[i].in_size * sizeof *Xi);
    check_layer(net, i, Xi, B, name);
    free(Xi);
  }
  kvi_curv_free(cv);
  free(X), free(T), free(v), free(mask), free(a), free(ref), free(ref2), free(Jv), free(Jr),
      free(u);
  kvi_net_free(net);
}

/* The proximal term: lambda KL(softmax(anchor) || softmax(z)) or lambda beta/2 ||z - anchor||^2
 * (eq. P3): its gradient against central differences, zero at the anchor, and the products'
 * (1 + lambda) H_L against central differences of the gradient. */
static void check_fsd(kvi_loss_kind loss) {
  net_case nc = {"6-5-4", KVI_ACT_ELU, KVI_FAMILY_POINT, 6, 0, true};
  kvi_net *net = make_net(&nc);
  const int B = 3, K = net->out_size;
  const size_t n = net->params->n;
  double X[18], T[12], anchor[12], f0, f1, fp, fm;
  int32_t y[3] = {0, 1, 3};
  kvi_rng r = kvi_rng_stream(77, (uint64_t)loss);
  fill(&r, X, 18, 1), fill(&r, T, 12, 1);
  kvi_curv_batch b = {loss, X, B, y, T, 0, NULL, 0};
  kvi_curv *cv = NULL;
  CHECK_OK(kvi_curv_create(&cv, net));
  double *g = malloc(n * sizeof *g), *g0 = malloc(n * sizeof *g0),
         *theta = malloc(n * sizeof *theta);
  double *v = malloc(n * sizeof *v), *hv = malloc(n * sizeof *hv), *gp = malloc(n * sizeof *gp);
  memcpy(theta, net->params->data, n * sizeof *theta);
  CHECK_OK(kvi_curv_eval(cv, &b, &f0, g0, NULL));
  memcpy(anchor, kvi_curv_outputs(cv), sizeof anchor);
  b.anchor = anchor, b.fsd = 0.7;
  CHECK_OK(kvi_curv_eval(cv, &b, &f1, g, NULL)); /* at the anchor: the same value and gradient */
  CHECK_NEAR(f1, f0, 1e-14);
  CHECK(rel_err(g, g0, n) < 1e-14);
  fill(&r, v, n, 0.3);
  for (size_t e = 0; e < n; e++) net->params->data[e] = theta[e] + v[e]; /* away from it */
  CHECK_OK(kvi_curv_eval(cv, &b, &f1, g, NULL));
  double err = 0, sc = 1e-300;
  const double h = 1e-6;
  for (size_t e = 0; e < n; e++) {
    const double x0 = net->params->data[e];
    net->params->data[e] = x0 + h;
    CHECK_OK(kvi_curv_eval(cv, &b, &fp, NULL, NULL));
    net->params->data[e] = x0 - h;
    CHECK_OK(kvi_curv_eval(cv, &b, &fm, NULL, NULL));
    net->params->data[e] = x0;
    err = fmax(err, fabs((fp - fm) / (2 * h) - g[e])), sc = fmax(sc, fabs(g[e]));
  }
  report("gradient with FSD vs FD", loss == KVI_LOSS_XENT ? "xent" : "squared", err / sc);
  /* G v with the term against J^T ((1 + lambda) H_L) J v from the dual network */
  CHECK_OK(kvi_curv_eval(cv, &b, &f1, g, NULL));
  CHECK_OK(kvi_curv_gvp(cv, v, hv));
  double Jv[12], u[12];
  CHECK_OK(kvi_curv_dual(net, &b, v, NULL, NULL, NULL, NULL, Jv));
  CHECK_OK(loss == KVI_LOSS_XENT ? kvi_softmax_xent_hvp(u, kvi_curv_outputs(cv), Jv, B, K)
                                 : kvi_gauss_nll_hvp(u, Jv, 0, B, K));
  for (int k = 0; k < 12; k++) u[k] *= 1.7;
  CHECK_OK(kvi_curv_dual_vjp(net, &b, u, gp));
  report("Gv with FSD vs dual", loss == KVI_LOSS_XENT ? "xent" : "squared", rel_err(hv, gp, n));
  free(g), free(g0), free(theta), free(v), free(hv), free(gp);
  kvi_curv_free(cv);
  kvi_net_free(net);
}

/* Pullback sampling (eq. P1): the mean square of pseudo-gradients J^T u, u of covariance H_L,
 * against the exact diag(G) from products with the unit vectors; and the moving average. */
static void check_pullback(kvi_loss_kind loss) {
  net_case nc = {"6-5-4", KVI_ACT_ELU, KVI_FAMILY_POINT, 6, 0, true};
  kvi_net *net = make_net(&nc);
  const size_t n = net->params->n;
  double X[18], T[12], f;
  int32_t y[3] = {0, 1, 3};
  kvi_rng r = kvi_rng_stream(78, (uint64_t)loss);
  fill(&r, X, 18, 1), fill(&r, T, 12, 1);
  kvi_curv_batch b = {loss, X, 3, y, T, (kvi_real)0.2, NULL, 0};
  kvi_curv *cv = NULL;
  CHECK_OK(kvi_curv_create(&cv, net));
  CHECK_OK(kvi_curv_eval(cv, &b, &f, NULL, NULL));
  double *e = calloc(n, sizeof *e), *col = malloc(n * sizeof *col),
         *exact = malloc(n * sizeof *exact);
  double *est = calloc(n, sizeof *est), *mask = malloc(n * sizeof *mask);
  kvi_curv_mask(cv, mask);
  for (size_t i = 0; i < n; i++) {
    e[i] = 1;
    CHECK_OK(kvi_curv_gvp(cv, e, col));
    exact[i] = col[i];
    e[i] = 0;
  }
  kvi_rng pr = kvi_rng_stream(5, 5);
  CHECK_OK(kvi_curv_diag_sample(cv, &pr, 20000, 0, est));
  double err = 0, sc = 0;
  for (size_t i = 0; i < n; i++) err = fmax(err, fabs(est[i] - exact[i])), sc = fmax(sc, exact[i]);
  printf("pullback diag(G), 20000 draws, %s: max error / max diag %.3f\n",
         loss == KVI_LOSS_XENT ? "xent" : "squared", err / sc);
  CHECK(err / sc < 0.05);
  for (size_t i = 0; i < n; i++) CHECK(mask[i] > 0 || est[i] == 0);
  for (size_t i = 0; i < n; i++) col[i] = est[i]; /* ema 0.9: 0.9 old + 0.1 new */
  CHECK_OK(kvi_curv_diag_sample(cv, &pr, 1, 0.9, est));
  double lo = INFINITY;
  for (size_t i = 0; i < n; i++) lo = fmin(lo, est[i] - 0.9 * col[i]);
  CHECK(lo >= -1e-12);
  CHECK_FAILS(kvi_curv_diag_sample(cv, &pr, 0, 0.5, est));
  free(e), free(col), free(exact), free(est), free(mask);
  kvi_curv_free(cv);
  kvi_net_free(net);
}

/* The context refuses what it cannot differentiate. */
static void check_refusals(void) {
  net_case mc = {"5-4-3", KVI_ACT_ELU, KVI_FAMILY_MN, 5, 0, true};
  kvi_net *net = make_net(&mc);
  kvi_curv *cv = NULL;
  CHECK_OK(kvi_curv_create(&cv, net));
  double X[5 * 5] = {0}, v[4096] = {0}, out[4096];
  int32_t y[5] = {0};
  kvi_curv_batch b = {KVI_LOSS_XENT, X, 5, y, NULL, 0, NULL, 0};
  double f;
  CHECK_FAILS(kvi_curv_eval(cv, &b, &f, NULL, NULL)); /* 5 rows > max_batch 4 */
  CHECK_FAILS(kvi_curv_hvp(cv, v, out));              /* no evaluation yet */
  b.batch = 2, b.labels = NULL;
  CHECK_FAILS(kvi_curv_eval(cv, &b, &f, NULL, NULL)); /* no labels */
  /* a sampled forward is refused by the layers' R-operator */
  kvi_rng rng = kvi_rng_stream(1, 1);
  const kvi_real *o;
  CHECK_OK(kvi_net_forward(net, &o, X, 2, &rng));
  const kvi_layer *L = &net->layers[0];
  kvi_layer_call c = {.params = net->params,
                      .ws = net->ws[0],
                      .batch = 2,
                      .X = X,
                      .Y = net->acts[1],
                      .eps = net->noise[0]};
  kvi_params dir = *net->params;
  dir.data = v, dir.grad = out;
  kvi_rop_call rc = {&dir, NULL, out, NULL, NULL, NULL};
  CHECK_STATUS(L->ops->rop_forward(L, &c, &rc), KVI_ERR_UNSUPPORTED);
  kvi_curv_free(cv);
  kvi_net_free(net);
}

int main(void) {
  const net_case cases[] = {
      {"6-5-4", KVI_ACT_ELU, KVI_FAMILY_POINT, 6, 0, true},
      {"6-5-4", KVI_ACT_RELU, KVI_FAMILY_POINT, 6, 0, false},
      {"6-5-5-3", KVI_ACT_NONE, KVI_FAMILY_POINT, 6, 0, true},
      {"6-5-4", KVI_ACT_ELU, KVI_FAMILY_MN, 6, 0, true}, /* the posterior means, noise off */
      {"2-3-flatten-4", KVI_ACT_ELU, KVI_FAMILY_POINT, 72, 6, true},
      {"2-3-mp-3k3s2p1-flatten-4", KVI_ACT_ELU, KVI_FAMILY_POINT, 72, 6, false},
      {"2-3-mp-flatten-4", KVI_ACT_RELU, KVI_FAMILY_DIAG, 72, 6, false},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    check_net(&cases[k], KVI_LOSS_XENT);
    check_net(&cases[k], KVI_LOSS_SQUARED);
  }
  check_pullback(KVI_LOSS_XENT);
  check_pullback(KVI_LOSS_SQUARED);
  check_fsd(KVI_LOSS_XENT);
  check_fsd(KVI_LOSS_SQUARED);
  check_refusals();
  for (int k = 0; k < nworst; k++)
    printf("%-36s max relative error %.2e\n", worst[k].what, worst[k].err);
  printf("largest relative error of all comparisons: %.3g (tolerance %.0e)\n", worst_all, TOL);
  TEST_MAIN_END();
}
