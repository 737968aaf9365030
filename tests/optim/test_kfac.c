/* K-FAC (double precision): for a small dense and a small convolutional net, one step equals
 * -lr (A (x) G + damping)^-1 g computed with the explicit Kronecker matrix, for factored damping
 * (the pi correction), exact Tikhonov damping and EKFAC; the factors from sampled targets
 * converge to the exact Fisher's on a fixed batch (Monte-Carlo bound); non-finite statistics or
 * factors never poison the parameters. */
#include <string.h>

#include "kronvi/train.h"
#include "kvi_test.h"

/* A point net with K-FAC bound to it and a fixed batch. */
typedef struct {
  kvi_net *net;
  kvi_optimizer opt;
  double X[64 * 2 * 5 * 5], dout[64 * 3];
  int batch;
} setup;

static void make(setup *S, const char *arch, int in_size, int h, kvi_opt_config oc) {
  memset(S, 0, sizeof *S);
  kvi_net_config nc = kvi_net_config_default();
  nc.family = KVI_FAMILY_POINT, nc.prior = KVI_PRIOR_NONE, nc.in_h = h, nc.in_w = h;
  S->batch = 6;
  CHECK_OK(kvi_net_create(&S->net, arch, in_size, &nc, S->batch, 3));
  CHECK_OK(kvi_optimizer_init(&S->opt, &oc, S->net->params));
  kvi_dense *w[8];
  int nw = 0;
  kvi_net_dense(S->net, 0, &nw);
  for (int k = 0; k < nw; k++) w[k] = kvi_net_dense(S->net, k, NULL);
  CHECK_OK(kvi_optimizer_bind(&S->opt, S->net->params, w, nw));
  kvi_rng r = kvi_rng_stream(4, 5);
  kvi_rng_normal(&r, S->X, (size_t)S->batch * in_size);
  kvi_rng_normal(&r, S->dout, (size_t)S->batch * S->net->out_size);
  for (int i = 0; i < S->batch * S->net->out_size; i++) S->dout[i] /= S->batch;
}

static void unmake(setup *S) {
  kvi_optimizer_free(&S->opt);
  kvi_net_free(S->net);
}

/* forward + backward with the optimizer's observer (the empirical pass) */
static void observe(setup *S) {
  const kvi_real *out;
  CHECK_OK(kvi_net_forward(S->net, &out, S->X, S->batch, NULL));
  kvi_params_zero_grad(S->net->params);
  kvi_net_set_observer(S->net, S->opt.ops->observe, &S->opt);
  CHECK_OK(kvi_net_backward(S->net, S->dout, S->batch));
  kvi_net_set_observer(S->net, NULL, NULL);
}

/* Solves (Kd) x = v for the explicit (na m) x (na m) matrix Kd, in place of v. */
static void solve(double *Kd, double *v, int n) {
  CHECK_OK(kvi_spd_inverse_f64(n, Kd, n));
  double *x = calloc((size_t)n, sizeof *x);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) x[i] += Kd[(size_t)i * n + j] * v[j];
  memcpy(v, x, (size_t)n * sizeof *x);
  free(x);
}

/* Checks layer k's step against the explicit Kronecker solve with its factors A, G (state). */
static double check_layer(setup *S, int k, const double *before, double lr) {
  kvi_optimizer *o = &S->opt;
  const kvi_dense *w = kvi_net_dense(S->net, k, NULL);
  const int na = w->n + 1, m = w->m, N = na * m;
  char nm[96];
  snprintf(nm, sizeof nm, "kfac.A.%s", w->name);
  const double *A = kvi_optimizer_find_state(o, nm)->data;
  snprintf(nm, sizeof nm, "kfac.G.%s", w->name);
  const double *G = kvi_optimizer_find_state(o, nm)->data;
  double ta = 0, tg = 0, lambda = o->cfg.damping, gam = sqrt(lambda);
  for (int i = 0; i < na; i++) ta += A[(size_t)i * na + i];
  for (int j = 0; j < m; j++) tg += G[(size_t)j * m + j];
  const double pi = sqrt((ta / na) / (tg / m));
  double *Kd = calloc((size_t)N * N, sizeof *Kd), *v = calloc((size_t)N, sizeof *v);
  for (int i = 0; i < na; i++)
    for (int j = 0; j < m; j++)
      for (int p = 0; p < na; p++)
        for (int q = 0; q < m; q++) {
          double a = A[(size_t)i * na + p], g = G[(size_t)j * m + q];
          double kv = o->cfg.damping_kind == KVI_DAMP_EXACT
                          ? a * g + (i == p && j == q) * lambda
                          : (a + (i == p) * pi * gam) * (g + (j == q) * gam / pi);
          Kd[(size_t)(i * m + j) * N + p * m + q] = kv;
        }
  const kvi_params *P = S->net->params;
  for (int i = 0; i < N; i++) /* the gradient [dM; db], row-major */
    v[i] = i < w->n * m ? kvi_params_grad(P, w->iM)[i] : kvi_params_grad(P, w->ib)[i - w->n * m];
  solve(Kd, v, N);
  double worst = 0, scale = 0;
  for (int i = 0; i < N; i++) {
    size_t off = i < w->n * m ? P->views[w->iM].offset + (size_t)i
                              : P->views[w->ib].offset + (size_t)(i - w->n * m);
    double step = (P->data[off] - before[off]) / -lr;
    worst = fmax(worst, fabs(step - v[i]));
    scale = fmax(scale, fabs(v[i]));
  }
  free(Kd), free(v);
  return worst / scale;
}

static void test_step(const char *arch, int in_size, int h, kvi_damping_kind kind) {
  kvi_opt_config oc = kvi_opt_config_default(KVI_OPT_KFAC);
  oc.momentum = 0, oc.kl_clip = 0, oc.damping = 0.05, oc.damping_kind = kind;
  setup S;
  make(&S, arch, in_size, h, oc);
  observe(&S);
  const size_t n = S.net->params->n;
  double *before = malloc(n * sizeof *before);
  memcpy(before, S.net->params->data, n * sizeof *before);
  CHECK_OK(kvi_optimizer_step(&S.opt, S.net->params, 0.1));
  int nw = 0;
  kvi_net_dense(S.net, 0, &nw);
  for (int k = 0; k < nw; k++) {
    double e = check_layer(&S, k, before, 0.1);
    printf("%-24s %-8s layer %d: max |step - explicit| / max |explicit| = %.2e\n", arch,
           kind == KVI_DAMP_EXACT ? "exact" : "factored", k, e);
    CHECK(e < 1e-9);
  }
  free(before);
  unmake(&S);
}

/* EKFAC right after the first refresh has S = dA dG^T: the same step as exact damping. */
static void test_ekfac_first_step(void) {
  kvi_opt_config oc = kvi_opt_config_default(KVI_OPT_KFAC);
  oc.momentum = 0, oc.kl_clip = 0, oc.damping = 0.05, oc.damping_kind = KVI_DAMP_EXACT;
  setup a, b;
  make(&a, "4-5-3", 4, 0, oc);
  oc.ekfac = true;
  make(&b, "4-5-3", 4, 0, oc);
  observe(&a), observe(&b);
  CHECK_OK(kvi_optimizer_step(&a.opt, a.net->params, 0.1));
  CHECK_OK(kvi_optimizer_step(&b.opt, b.net->params, 0.1));
  double worst = 0;
  for (size_t i = 0; i < a.net->params->n; i++)
    worst = fmax(worst, fabs(a.net->params->data[i] - b.net->params->data[i]));
  printf("ekfac first step vs exact damping: max |difference| = %.2e\n", worst);
  CHECK(worst < 1e-12);
  CHECK(kvi_optimizer_find_state(&b.opt, "kfac.S.fc0") != NULL);
  unmake(&a), unmake(&b);
}

/* The factors of the dense net's layers from the batch itself: A of the first layer is
 * (1/B) [X 1]^T [X 1]; G of the last is B dout^T dout (its output gradient is dout). */
static void test_factors(void) {
  kvi_opt_config oc = kvi_opt_config_default(KVI_OPT_KFAC);
  setup S;
  make(&S, "4-5-3", 4, 0, oc);
  observe(&S);
  const double *A = kvi_optimizer_find_state(&S.opt, "kfac.A.fc0")->data;
  const double *G = kvi_optimizer_find_state(&S.opt, "kfac.G.fc1")->data;
  const int B = S.batch;
  double ea = 0, eg = 0;
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 5; j++) {
      double a = 0;
      for (int b = 0; b < B; b++)
        a += (i < 4 ? S.X[b * 4 + i] : 1) * (j < 4 ? S.X[b * 4 + j] : 1) / B;
      ea = fmax(ea, fabs(a - A[i * 5 + j]));
    }
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      double g = 0;
      for (int b = 0; b < B; b++) g += B * S.dout[b * 3 + i] * S.dout[b * 3 + j];
      eg = fmax(eg, fabs(g - G[i * 3 + j]));
    }
  printf("factors from the batch: max |A - explicit| = %.2e, max |G - explicit| = %.2e\n", ea, eg);
  CHECK(ea < 1e-12 && eg < 1e-12);
  unmake(&S);
}

/* The sampled-target G of the first layer, averaged over many draws on a fixed batch, against
 * the exact Fisher's: sum over the classes c of p_c times the rows of a backward with target c. */
static void test_sampled_fisher(void) {
  kvi_opt_config oc = kvi_opt_config_default(KVI_OPT_KFAC);
  oc.ema = 0; /* each observation replaces the factor: G is that draw's */
  setup S;
  make(&S, "4-5-3", 4, 0, oc);
  const int B = S.batch, K = 3, m = 5;
  const kvi_real *out;
  CHECK_OK(kvi_net_forward(S.net, &out, S.X, B, NULL));
  double logits[64 * 3], d[64 * 3], exact[25] = {0}, mc[25] = {0};
  memcpy(logits, out, sizeof(double) * B * K);
  const double *G = kvi_optimizer_find_state(&S.opt, "kfac.G.fc0")->data;
  for (int c = 0; c < K; c++) { /* every example labelled c, its rows weighted by p_c */
    for (int b = 0; b < B; b++) {
      double mx = fmax(logits[b * K], fmax(logits[b * K + 1], logits[b * K + 2])), z = 0, p[3];
      for (int k = 0; k < K; k++) z += p[k] = exp(logits[b * K + k] - mx);
      for (int k = 0; k < K; k++) d[b * K + k] = (p[k] / z - (k == c)) * sqrt(p[c] / z) / B;
    }
    CHECK_OK(kvi_net_forward(S.net, &out, S.X, B, NULL));
    memcpy(S.dout, d, sizeof(double) * B * K);
    observe(&S);
    for (int i = 0; i < 25; i++) exact[i] += G[i];
  }
  const int draws = 4000;
  double err[2] = {0, 0};
  for (int t = 0; t < draws; t++) {
    kvi_rng r = kvi_rng_stream(9, (uint64_t)t);
    kvi_sampled_output_grad(S.dout, logits, B, K, true, 0, &r);
    observe(&S);
    for (int i = 0; i < 25; i++) mc[i] += G[i] / draws;
    if (t + 1 == draws / 16 || t + 1 == draws) { /* error of the running mean, rescaled */
      double e = 0, n = 0, f = (double)draws / (t + 1);
      for (int i = 0; i < 25; i++) e += pow(mc[i] * f - exact[i], 2), n += exact[i] * exact[i];
      err[t + 1 == draws] = sqrt(e / n);
    }
  }
  (void)m;
  printf(
      "sampled-target G vs the exact Fisher's: relative error %.4f after %d draws, %.4f "
      "after %d\n",
      err[0], draws / 16, err[1], draws);
  CHECK(err[1] < 0.05);         /* Monte-Carlo error ~ 1/sqrt(draws) */
  CHECK(err[1] < 0.5 * err[0]); /* and it shrinks with the draws (about 4x for 16x) */
  unmake(&S);
}

/* Non-finite statistics are skipped, non-finite factors keep the previous preconditioner or
 * fall back to the gradient: the parameters stay finite. */
static void test_nonfinite(void) {
  kvi_opt_config oc = kvi_opt_config_default(KVI_OPT_KFAC);
  setup S;
  make(&S, "4-5-3", 4, 0, oc);
  observe(&S);
  CHECK_OK(kvi_optimizer_step(&S.opt, S.net->params, 0.1));
  double *A = kvi_optimizer_find_state(&S.opt, "kfac.A.fc0")->data;
  double keep = A[0];
  S.dout[0] = NAN; /* a non-finite output gradient: the batch's statistics are not used */
  observe(&S);
  CHECK(A[0] == keep && kvi_kfac_skipped(&S.opt) > 0);
  S.dout[0] = 0.01;
  A[3] = NAN; /* a poisoned factor: the refresh fails, the previous inverses stay */
  S.opt.cfg.inverse_every = 1;
  observe(&S);
  CHECK_OK(kvi_optimizer_step(&S.opt, S.net->params, 0.1));
  CHECK_OK(kvi_check_finite(S.net->params->data, S.net->params->n, "parameters"));
  observe(&S); /* the corrupted average is replaced by the next statistics */
  CHECK(isfinite(A[3]));
  CHECK_OK(kvi_optimizer_step(&S.opt, S.net->params, 0.1));
  CHECK_OK(kvi_check_finite(S.net->params->data, S.net->params->n, "parameters"));
  int64_t skipped = kvi_kfac_skipped(&S.opt);
  printf("non-finite statistics and factors: %lld updates skipped, parameters finite\n",
         (long long)skipped);
  CHECK(skipped >= 2);
  unmake(&S);
}

/* Noisy K-FAC: after a refresh the MN posterior of each layer has the stated covariance
 * [N^-1/2 (A + pi g I)^-1]_weights (x) N^-1/2 (G + g/pi I)^-1, g = sqrt(eta/N), and weight
 * samples drawn from it (kvi_mn_sample) have that covariance. */
static void test_noisy(void) {
  kvi_opt_config oc = kvi_opt_config_default(KVI_OPT_NOISY_KFAC);
  oc.momentum = 0, oc.kl_clip = 0;
  setup S;
  memset(&S, 0, sizeof S);
  kvi_net_config nc = kvi_net_config_default();
  nc.family = KVI_FAMILY_MN, nc.prior = KVI_PRIOR_FIXED, nc.prior_var = 0.5;
  S.batch = 6;
  CHECK_OK(kvi_net_create(&S.net, "4-5-3", 4, &nc, S.batch, 3));
  CHECK_OK(kvi_optimizer_init(&S.opt, &oc, S.net->params));
  kvi_dense *w[2] = {kvi_net_dense(S.net, 0, NULL), kvi_net_dense(S.net, 1, NULL)};
  CHECK_OK(kvi_optimizer_bind(&S.opt, S.net->params, w, 2));
  S.opt.cfg.data_size = 300;
  kvi_rng r = kvi_rng_stream(4, 5);
  kvi_rng_normal(&r, S.X, (size_t)S.batch * 4);
  kvi_rng_normal(&r, S.dout, (size_t)S.batch * 3);
  observe(&S);
  CHECK_OK(kvi_optimizer_step(&S.opt, S.net->params, 0.1));
  const kvi_dense *l = w[0];
  const int n = 4, na = 5, m = 5;
  const double N = 300, eta = 2, g = sqrt(eta / N);
  const double *A = kvi_optimizer_find_state(&S.opt, "kfac.A.fc0")->data;
  const double *G = kvi_optimizer_find_state(&S.opt, "kfac.G.fc0")->data;
  double ta = 0, tg = 0;
  for (int i = 0; i < na; i++) ta += A[i * na + i];
  for (int j = 0; j < m; j++) tg += G[j * m + j];
  const double pi = sqrt((ta / na) / (tg / m));
  double Ui[25], Vi[25];
  for (int i = 0; i < 25; i++)
    Ui[i] = A[i] + (i % 6 == 0) * pi * g, Vi[i] = G[i] + (i % 6 == 0) * g / pi;
  CHECK_OK(kvi_spd_inverse_f64(na, Ui, na));
  CHECK_OK(kvi_spd_inverse_f64(m, Vi, m));
  kvi_mn q = {n, m, kvi_params_data(S.net->params, l->iM), kvi_params_data(S.net->params, l->iA),
              kvi_params_data(S.net->params, l->iB)};
  /* U = L L^T from the stored factor (log diagonal) */
  double e_u = 0, e_v = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      double u = 0;
      for (int k = 0; k <= (i < j ? i : j); k++) {
        double li = k == i ? exp(q.A[i * n + i]) : q.A[i * n + k];
        double lj = k == j ? exp(q.A[j * n + j]) : q.A[j * n + k];
        u += li * lj;
      }
      e_u = fmax(e_u, fabs(u - Ui[i * na + j] / sqrt(N)) / (Ui[i * na + i] / sqrt(N)));
    }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      double v = 0;
      for (int k = 0; k <= (i < j ? i : j); k++) {
        double li = k == i ? exp(q.B[i * m + i]) : q.B[i * m + k];
        double lj = k == j ? exp(q.B[j * m + j]) : q.B[j * m + k];
        v += li * lj;
      }
      e_v = fmax(e_v, fabs(v - Vi[i * m + j] / sqrt(N)) / (Vi[i * m + i] / sqrt(N)));
    }
  /* Monte-Carlo: the covariance of vec(W) samples against V (x) U */
  const int draws = 20000, d = n * m;
  double *cov = calloc((size_t)d * d, sizeof *cov), W[20], E[20];
  kvi_arena *ar = kvi_arena_create(1 << 16);
  for (int t = 0; t < draws; t++) {
    kvi_rng rt = kvi_rng_stream(11, (uint64_t)t);
    kvi_rng_normal(&rt, E, (size_t)d);
    CHECK_OK(kvi_mn_sample(W, &q, E, ar));
    for (int i = 0; i < d; i++)
      for (int j = 0; j < d; j++) cov[i * d + j] += (W[i] - q.M[i]) * (W[j] - q.M[j]) / draws;
  }
  double e_mc = 0, scale = 0;
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) { /* element (i1, i2) x (j1, j2): U[i1][j1] V[i2][j2] */
      int i1 = i / m, i2 = i % m, j1 = j / m, j2 = j % m;
      double want = Ui[i1 * na + j1] / sqrt(N) * Vi[i2 * m + j2] / sqrt(N);
      e_mc = fmax(e_mc, fabs(cov[i * d + j] - want));
      scale = fmax(scale, fabs(want));
    }
  printf(
      "noisy K-FAC posterior: U max rel. error %.1e, V %.1e; %d weight samples' covariance "
      "vs V (x) U: max error %.3f of the largest entry\n",
      e_u, e_v, draws, e_mc / scale);
  CHECK(e_u < 1e-9 && e_v < 1e-9);
  CHECK(e_mc / scale < 0.05);
  free(cov);
  kvi_arena_free(ar);
  unmake(&S);
}

int main(void) {
  kvi_set_threads(1);
  test_step("4-5-3", 4, 0, KVI_DAMP_FACTORED);
  test_step("4-5-3", 4, 0, KVI_DAMP_EXACT);
  test_step("2-2k3s1p1-mp-flatten-3", 2 * 4 * 4, 4, KVI_DAMP_FACTORED);
  test_step("2-2k3s1p1-mp-flatten-3", 2 * 4 * 4, 4, KVI_DAMP_EXACT);
  test_ekfac_first_step();
  test_factors();
  test_sampled_fisher();
  test_nonfinite();
  test_noisy();
  TEST_MAIN_END();
}
