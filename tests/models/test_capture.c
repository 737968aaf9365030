/* Curvature capture (kvi_net_set_observer, kvi_capture_accumulate), double precision, on the
 * net "2-3k3s1p1-mp-flatten-4" over 5x5x2 images, batch 3, point and MN families:
 *  - the conv layer hands over the im2col patches (checked against a naive im2col of X) and the
 *    gradient of the loss w.r.t. its output (checked by finite differences through the rest of
 *    the net), with rows = batch*oh*ow, n = k*k*c_in, the bias flag and the sampled flag;
 *  - sum_rows in^T grad_out equals the M gradient, the column sums of grad_out the bias gradient;
 *  - the dense head gets the flatten output and dL/dout;
 *  - kvi_capture_accumulate against explicit [a 1]^T [a 1] and g^T g;
 *  - detaching stops the calls; an observer's error fails kvi_net_backward with its status. */
#include "kronvi/models.h"
#include "kvi_test.h"

#define IMG 5
#define CIN 2
#define COUT 3
#define KS 3
#define BATCH 3
#define NTAP (KS * KS * CIN)
#define ROWS (BATCH * IMG * IMG)

/* What the observer got for one weight index. */
typedef struct {
  int calls;
  char layer[48];
  int batch, rows, n, m;
  bool bias, sampled;
  kvi_real *in, *grad_out;
} seen;

typedef struct {
  seen w[2];
  int total;      /* calls over all weights */
  int order[4];   /* weight indices in call order */
  kvi_status ret; /* returned by the observer */
} spy;

static kvi_status spy_fn(void *user, const kvi_capture_rows *r) {
  spy *s = user;
  if (s->total < 4) s->order[s->total] = r->weight;
  s->total++;
  if (r->weight < 0 || r->weight > 1) return kvi_fail(KVI_ERR_STATE, "weight %d", r->weight);
  seen *e = &s->w[r->weight];
  e->calls++;
  snprintf(e->layer, sizeof e->layer, "%s", r->layer);
  e->batch = r->batch, e->rows = r->rows, e->n = r->n, e->m = r->m;
  e->bias = r->bias, e->sampled = r->sampled;
  free(e->in), free(e->grad_out);
  e->in = malloc((size_t)r->rows * r->n * sizeof *e->in);
  e->grad_out = malloc((size_t)r->rows * r->m * sizeof *e->grad_out);
  memcpy(e->in, r->in, (size_t)r->rows * r->n * sizeof *e->in);
  memcpy(e->grad_out, r->grad_out, (size_t)r->rows * r->m * sizeof *e->grad_out);
  if (s->ret) return kvi_fail(s->ret, "observer refuses layer %s", r->layer);
  return KVI_OK;
}

static void spy_free(spy *s) {
  for (int k = 0; k < 2; k++) free(s->w[k].in), free(s->w[k].grad_out);
  memset(s, 0, sizeof *s);
}

/* Naive im2col: row (b*oh + oy)*ow + ox, column (ky*k + kx)*c_in + ci, zero padding 1. */
static kvi_real patch(const kvi_real *X, int row, int col) {
  int b = row / (IMG * IMG), oy = row / IMG % IMG, ox = row % IMG;
  int ky = col / (KS * CIN), kx = col / CIN % KS, ci = col % CIN;
  int y = oy - 1 + ky, x = ox - 1 + kx;
  if (y < 0 || y >= IMG || x < 0 || x >= IMG) return 0;
  return X[(size_t)b * IMG * IMG * CIN + ((size_t)y * IMG + x) * CIN + ci];
}

/* Loss sum(out * R) as a function of the conv output Z: the rest of the net (act, pool,
 * flatten, dense) run with the noise of the last forward. */
static double tail_loss(const double *Z, void *vctx) {
  kvi_net *net = ((void **)vctx)[0];
  const kvi_real *R = ((void **)vctx)[1];
  static kvi_real buf[2][BATCH * IMG * IMG * COUT];
  const kvi_real *x = Z;
  for (int i = 1; i < net->nlayers; i++) {
    const kvi_layer *L = &net->layers[i];
    kvi_layer_call c = {.params = net->params,
                        .ws = net->ws[i],
                        .batch = BATCH,
                        .X = x,
                        .Y = buf[i % 2],
                        .eps = net->noisy ? net->noise[i] : NULL};
    if (L->ops->forward(L, &c)) return NAN;
    x = buf[i % 2];
  }
  double s = 0;
  for (int i = 0; i < BATCH * net->out_size; i++) s += x[i] * R[i];
  return s;
}

static void check_family(kvi_family fam) {
  kvi_net_config cfg = kvi_net_config_default();
  cfg.family = fam;
  cfg.prior = fam == KVI_FAMILY_POINT ? KVI_PRIOR_NONE : KVI_PRIOR_ARD;
  cfg.init_log_sigma = -1.0;
  cfg.in_h = cfg.in_w = IMG;
  kvi_net *net = NULL;
  CHECK_OK(kvi_net_create(&net, "2-3k3s1p1-mp-flatten-4", IMG * IMG * CIN, &cfg, BATCH, 5));
  if (!net) return;
  const int nin = IMG * IMG * CIN, K = net->out_size;
  kvi_real X[BATCH * IMG * IMG * CIN], R[BATCH * 4];
  kvi_rng r = kvi_rng_stream(31, (uint64_t)fam);
  kvi_rng_normal(&r, X, (size_t)BATCH * nin);
  kvi_rng_normal(&r, R, (size_t)BATCH * K);
  for (size_t i = 0; i < net->params->n; i++) { /* generic biases and factors */
    kvi_real e;
    kvi_rng_normal(&r, &e, 1);
    net->params->data[i] += 0.1 * e;
  }

  spy s = {0};
  kvi_net_set_observer(net, spy_fn, &s);
  kvi_rng rng = kvi_rng_stream(7, 1);
  const kvi_real *out;
  CHECK_OK(kvi_net_forward(net, &out, X, BATCH, &rng));
  kvi_params_zero_grad(net->params);
  CHECK_OK(kvi_net_backward(net, R, BATCH));
  /* backward visits the dense head first, then the conv */
  CHECK(s.total == 2 && s.order[0] == 1 && s.order[1] == 0);
  const bool noisy = fam != KVI_FAMILY_POINT; /* the point family draws no noise */

  /* ---- the conv layer ---- */
  const seen *c = &s.w[0];
  const kvi_dense *d0 = kvi_net_dense(net, 0, NULL);
  CHECK(c->calls == 1);
  CHECK(!strcmp(c->layer, "conv0"));
  CHECK(c->batch == BATCH && c->rows == ROWS && c->n == NTAP && c->m == COUT);
  CHECK(c->bias && c->sampled == noisy);
  if (c->calls == 1 && c->rows == ROWS && c->n == NTAP && c->m == COUT) {
    int bad = 0;
    for (int i = 0; i < ROWS; i++)
      for (int j = 0; j < NTAP; j++) bad += c->in[(size_t)i * NTAP + j] != patch(X, i, j);
    CHECK(bad == 0);
    /* grad_out = dL/d(conv output): central differences through the rest of the net */
    void *ctx[2] = {net, R};
    kvi_real Z[ROWS * COUT];
    memcpy(Z, net->acts[1], sizeof Z);
    double err = kvi_test_fd_maxerr(tail_loss, ctx, Z, c->grad_out, ROWS * COUT, 1e-6);
    if (!(err < 1e-6))
      fprintf(stderr, "conv grad_out (%s): FD error %.3g\n", kvi_family_name(fam), err);
    CHECK(err < 1e-6);
    /* dL/dM = in^T grad_out (the noise does not depend on M), dL/db = column sums */
    const kvi_real *gM = kvi_params_grad(net->params, d0->iM);
    const kvi_real *gb = kvi_params_grad(net->params, d0->ib);
    double worst = 0;
    for (int i = 0; i < NTAP; i++)
      for (int j = 0; j < COUT; j++) {
        double a = 0;
        for (int q = 0; q < ROWS; q++)
          a += c->in[(size_t)q * NTAP + i] * c->grad_out[(size_t)q * COUT + j];
        worst = fmax(worst, fabs(a - gM[i * COUT + j]));
      }
    for (int j = 0; j < COUT; j++) {
      double a = 0;
      for (int q = 0; q < ROWS; q++) a += c->grad_out[(size_t)q * COUT + j];
      worst = fmax(worst, fabs(a - gb[j]));
    }
    CHECK(worst < 1e-12);
  }

  /* ---- the dense head: input = flatten output, grad_out = dL/dout = R ---- */
  const seen *h = &s.w[1];
  const int wl = kvi_net_weight_layer(net, 1);
  const int nflat = 2 * 2 * COUT; /* 5x5 pools to 2x2 */
  CHECK(h->calls == 1 && !strcmp(h->layer, "fc0"));
  CHECK(wl == 4 && !strcmp(net->layers[wl - 1].ops->kind, "flatten"));
  CHECK(h->batch == BATCH && h->rows == BATCH && h->n == nflat && h->m == K);
  CHECK(h->bias && h->sampled == noisy);
  if (h->calls == 1 && h->rows == BATCH && h->n == nflat && h->m == K) {
    CHECK(memcmp(h->in, net->acts[wl], sizeof(kvi_real) * BATCH * nflat) == 0);
    CHECK(memcmp(h->in, net->acts[wl - 1], sizeof(kvi_real) * BATCH * nflat) == 0); /* pool */
    CHECK(memcmp(h->grad_out, R, sizeof(kvi_real) * BATCH * K) == 0);
  }

  /* ---- the mean forward reports sampled = false ---- */
  CHECK_OK(kvi_net_forward(net, &out, X, BATCH, NULL));
  CHECK_OK(kvi_net_backward(net, R, BATCH));
  CHECK(s.total == 4 && !s.w[0].sampled && !s.w[1].sampled);

  /* ---- detached: no calls, same gradients ---- */
  kvi_net_set_observer(net, NULL, &s);
  CHECK(net->observer == NULL && net->observer_user == NULL);
  CHECK_OK(kvi_net_backward(net, R, BATCH));
  CHECK(s.total == 4);

  /* ---- an observer error fails the backward with its status and stops it ---- */
  kvi_net_set_observer(net, spy_fn, &s);
  s.ret = KVI_ERR_UNSUPPORTED;
  int before = s.total;
  CHECK_FAILS(kvi_net_backward(net, R, BATCH));
  kvi_clear_error();
  CHECK_STATUS(kvi_net_backward(net, R, BATCH), KVI_ERR_UNSUPPORTED);
  CHECK(strstr(kvi_last_error(), "observer refuses layer fc0") != NULL);
  CHECK(s.total == before + 2); /* one call per failed backward: the conv is not reached */
  spy_free(&s);
  kvi_net_free(net);
}

/* kvi_capture_accumulate against explicit sums, with and without the bias column. */
static void check_accumulate(void) {
  enum { Rn = 7, N = 4, M = 3 };
  kvi_real a[Rn * N], g[Rn * M];
  kvi_rng r = kvi_rng_stream(3, 3);
  kvi_rng_normal(&r, a, Rn * N);
  kvi_rng_normal(&r, g, Rn * M);
  const kvi_real scale = 0.25;
  for (int bias = 0; bias < 2; bias++) {
    const int na = N + bias;
    kvi_capture_rows cr = {"x", 0, Rn, Rn, N, M, bias != 0, true, a, g, Rn};
    kvi_real A[(N + 1) * (N + 1)], G[M * M], A0[(N + 1) * (N + 1)] = {0}, G0[M * M] = {0};
    /* start from a symmetric matrix: the sums are added to it */
    for (int i = 0; i < na; i++)
      for (int j = 0; j <= i; j++) A0[i * na + j] = A0[j * na + i] = (kvi_real)(i + 2 * j + 1);
    for (int i = 0; i < M; i++)
      for (int j = 0; j <= i; j++) G0[i * M + j] = G0[j * M + i] = (kvi_real)(i - j);
    memcpy(A, A0, sizeof A), memcpy(G, G0, sizeof G);
    kvi_capture_accumulate(A, G, &cr, scale);
    double ea = 0, eg = 0;
    for (int i = 0; i < na; i++)
      for (int j = 0; j < na; j++) {
        double s = 0;
        for (int q = 0; q < Rn; q++)
          s += (i < N ? a[q * N + i] : 1.0) * (j < N ? a[q * N + j] : 1.0);
        ea = fmax(ea, fabs(A0[i * na + j] + scale * s - A[i * na + j]));
      }
    for (int i = 0; i < M; i++)
      for (int j = 0; j < M; j++) {
        double s = 0;
        for (int q = 0; q < Rn; q++) s += g[q * M + i] * g[q * M + j];
        eg = fmax(eg, fabs(G0[i * M + j] + scale * s - G[i * M + j]));
      }
    CHECK(ea < 1e-12);
    CHECK(eg < 1e-12);
    /* either factor alone */
    memcpy(A, A0, sizeof A), memcpy(G, G0, sizeof G);
    kvi_capture_accumulate(NULL, G, &cr, scale);
    CHECK(memcmp(A, A0, sizeof A) == 0);
    CHECK(memcmp(G, G0, sizeof G) != 0);
    kvi_real G1[M * M];
    memcpy(G1, G, sizeof G);
    kvi_capture_accumulate(A, NULL, &cr, scale);
    CHECK(memcmp(G, G1, sizeof G) == 0);
    CHECK(memcmp(A, A0, sizeof A) != 0);
  }
}

/* The accumulated factors of a captured conv layer: the corner of A counts the rows. */
static void check_accumulate_conv(void) {
  kvi_net_config cfg = kvi_net_config_default();
  cfg.family = KVI_FAMILY_MN;
  kvi_net *net = NULL;
  CHECK_OK(kvi_net_create(&net, "2-3k3s1p1-mp-flatten-4", IMG * IMG * CIN, &cfg, BATCH, 9));
  if (!net) return;
  kvi_real X[BATCH * IMG * IMG * CIN], R[BATCH * 4];
  kvi_rng r = kvi_rng_stream(4, 4);
  kvi_rng_normal(&r, X, sizeof X / sizeof X[0]);
  kvi_rng_normal(&r, R, sizeof R / sizeof R[0]);
  spy s = {0};
  kvi_net_set_observer(net, spy_fn, &s);
  const kvi_real *out;
  CHECK_OK(kvi_net_forward(net, &out, X, BATCH, NULL));
  CHECK_OK(kvi_net_backward(net, R, BATCH));
  const seen *c = &s.w[0];
  if (c->calls == 1) {
    kvi_capture_rows cr = {c->layer, 0,          c->batch, c->rows,     c->n,    c->m,
                           c->bias,  c->sampled, c->in,    c->grad_out, c->batch};
    const int na = NTAP + 1;
    kvi_real A[(NTAP + 1) * (NTAP + 1)] = {0}, G[COUT * COUT] = {0};
    kvi_capture_accumulate(A, G, &cr, 1);
    CHECK(A[NTAP * na + NTAP] == ROWS);
    double col = 0;
    for (int q = 0; q < ROWS; q++) col += c->in[(size_t)q * NTAP + 2];
    CHECK_NEAR(A[NTAP * na + 2], col, 1e-12);
    CHECK_NEAR(A[2 * na + NTAP], col, 1e-12);
  }
  spy_free(&s);
  kvi_net_free(net);
}

int main(void) {
  check_family(KVI_FAMILY_POINT);
  check_family(KVI_FAMILY_MN);
  check_accumulate();
  check_accumulate_conv();
  TEST_MAIN_END();
}
