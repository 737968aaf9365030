/* Central finite differences (double) for every analytic gradient of src/prob DIAG / MN /
 * MN+DIAG: KL (Gaussian, ARD, group with log_tau / log_gamma), entropy, the log-det bound and the
 * local-reparameterization backward (w.r.t. mean, strict-lower and log-diagonal factor entries,
 * log_sigma, log_d and X) for the scalar loss L = sum(Y * R) with fixed noise.
 * Also checks that gradients are accumulated (+=) and that upper-triangle entries of the factor
 * gradients are left untouched. */
#include "prob_test_util.h"

enum {
  D_ENT,
  D_KLG,
  D_KLGS,
  D_ARD,
  D_GRP,
  D_LRT,
  D_LRT0,
  M_ENT,
  M_KLG,
  M_KLGS,
  M_ARD,
  M_GRP,
  M_LRT,
  M_LRT0,
  MD_LB,
  MD_KLG,
  MD_KLGS,
  MD_ARD,
  MD_GRP,
  MD_LRT,
  MD_LRT1,
  MD_LRT2,
  NKIND
};
static const char *kind_name[NKIND] = {"diag_entropy",
                                       "diag_kl_gauss",
                                       "diag_kl_gauss_scalar",
                                       "diag_kl_ard",
                                       "diag_kl_group",
                                       "diag_lrt",
                                       "diag_lrt_mean",
                                       "mn_entropy",
                                       "mn_kl_gauss",
                                       "mn_kl_gauss_scalar",
                                       "mn_kl_ard",
                                       "mn_kl_group",
                                       "mn_lrt",
                                       "mn_lrt_mean",
                                       "mndiag_logdet_lower",
                                       "mndiag_kl_gauss",
                                       "mndiag_kl_gauss_scalar",
                                       "mndiag_kl_ard",
                                       "mndiag_kl_group",
                                       "mndiag_lrt",
                                       "mndiag_lrt_eps1",
                                       "mndiag_lrt_eps2"};

typedef struct {
  int kind, n, m, batch;
  size_t oM, oA, oB, oD, oT, oG, oX, total;
  kvi_real *pv, *eps1, *eps2, *R, *Y;
  void *ws;
  kvi_real gscale;
} gctx;

static bool is_diag(int k) { return k <= D_LRT0; }
static bool is_mn(int k) { return k >= M_ENT; }
static bool has_d(int k) { return k >= MD_LB; }
static bool is_group(int k) { return k == D_GRP || k == M_GRP || k == MD_GRP; }
static bool is_lrt(int k) {
  return k == D_LRT || k == D_LRT0 || k == M_LRT || k == M_LRT0 || k >= MD_LRT;
}

static void layout(gctx *c) {
  size_t n = c->n, m = c->m, o = 0;
  c->oM = o, o += n * m;
  if (is_mn(c->kind)) {
    c->oA = o, o += n * n;
    c->oB = o, o += m * m;
  }
  if (is_diag(c->kind) || has_d(c->kind)) c->oD = o, o += n * m;
  if (is_group(c->kind)) {
    c->oT = o, o += n;
    c->oG = o, o += m;
  }
  if (is_lrt(c->kind)) c->oX = o, o += (size_t)c->batch * n;
  c->total = o;
}

/* Value (times gscale for KL kinds) and, if g != NULL, gradients added into g (same layout). */
static double eval(double *x, gctx *c, double *g) {
  const int n = c->n, m = c->m, B = c->batch, k = c->kind;
  kvi_diag qd = {n, m, x + c->oM, x + c->oD};
  kvi_diag_grad gd = {g ? g + c->oM : NULL, g ? g + c->oD : NULL};
  kvi_mn q = {n, m, x + c->oM, x + c->oA, x + c->oB};
  kvi_mn_grad gm = {g ? g + c->oM : NULL, g ? g + c->oA : NULL, g ? g + c->oB : NULL};
  kvi_mndiag qm = {q, x + c->oD, NULL};
  kvi_mndiag_grad gmd = {gm, g ? g + c->oD : NULL};
  double *lt = x + c->oT, *lg = x + c->oG, *glt = g ? g + c->oT : NULL, *glg = g ? g + c->oG : NULL;
  double *X = x + c->oX, *dX = g ? g + c->oX : NULL;
  kvi_real gs = c->gscale;
  double v = 0;
  kvi_status s = KVI_OK;
  switch (k) {
    case D_ENT:
      s = kvi_diag_entropy(&v, &qd, g ? &gd : NULL, gs);
      break;
    case D_KLG:
      s = kvi_diag_kl_gauss(&v, &qd, c->pv, false, g ? &gd : NULL, gs);
      break;
    case D_KLGS:
      s = kvi_diag_kl_gauss(&v, &qd, c->pv, true, g ? &gd : NULL, gs);
      break;
    case D_ARD:
      s = kvi_diag_kl_ard(&v, &qd, g ? &gd : NULL, gs);
      break;
    case D_GRP:
      s = kvi_diag_kl_group(&v, &qd, lt, lg, g ? &gd : NULL, glt, glg, gs);
      break;
    case M_ENT:
      s = kvi_mn_entropy(&v, &q, g ? &gm : NULL, gs);
      break;
    case M_KLG:
      s = kvi_mn_kl_gauss(&v, &q, c->pv, false, g ? &gm : NULL, gs);
      break;
    case M_KLGS:
      s = kvi_mn_kl_gauss(&v, &q, c->pv, true, g ? &gm : NULL, gs);
      break;
    case M_ARD:
      s = kvi_mn_kl_ard(&v, &q, g ? &gm : NULL, gs);
      break;
    case M_GRP:
      s = kvi_mn_kl_group(&v, &q, lt, lg, g ? &gm : NULL, glt, glg, gs);
      break;
    case MD_LB:
      s = kvi_mndiag_logdet_lower(&v, &qm, g ? &gmd : NULL, gs);
      break;
    case MD_KLG:
      s = kvi_mndiag_kl_gauss(&v, &qm, c->pv, false, g ? &gmd : NULL, gs);
      break;
    case MD_KLGS:
      s = kvi_mndiag_kl_gauss(&v, &qm, c->pv, true, g ? &gmd : NULL, gs);
      break;
    case MD_ARD:
      s = kvi_mndiag_kl_ard(&v, &qm, g ? &gmd : NULL, gs);
      break;
    case MD_GRP:
      s = kvi_mndiag_kl_group(&v, &qm, lt, lg, g ? &gmd : NULL, glt, glg, gs);
      break;
    default: {
      const kvi_real *e1 = (k == D_LRT0 || k == M_LRT0 || k == MD_LRT2) ? NULL : c->eps1;
      const kvi_real *e2 = k == MD_LRT1 ? NULL : c->eps2;
      if (is_diag(k))
        s = kvi_diag_lrt_forward(c->Y, c->ws, &qd, X, e1, B);
      else if (!has_d(k))
        s = kvi_mn_lrt_forward(c->Y, c->ws, &q, X, e1, B);
      else
        s = kvi_mndiag_lrt_forward(c->Y, c->ws, &qm, X, e1, e2, B);
      for (int t = 0; t < B * m; t++) v += c->Y[t] * c->R[t];
      if (g && !s) {
        if (is_diag(k))
          s = kvi_diag_lrt_backward(&gd, dX, c->R, c->ws, &qd, X, e1, B);
        else if (!has_d(k))
          s = kvi_mn_lrt_backward(&gm, dX, c->R, c->ws, &q, X, e1, B);
        else
          s = kvi_mndiag_lrt_backward(&gmd, dX, c->R, c->ws, &qm, X, e1, e2, B);
      }
      return s ? NAN : v;
    }
  }
  return s ? NAN : gs * v;
}

static double fval(const double *x, void *ctx) { return eval((double *)x, ctx, NULL); }

static int is_upper(const gctx *c, size_t p) {
  if (!is_mn(c->kind)) return 0;
  if (p >= c->oA && p < c->oA + (size_t)c->n * c->n) {
    size_t r = (p - c->oA) / c->n, col = (p - c->oA) % c->n;
    return col > r;
  }
  if (p >= c->oB && p < c->oB + (size_t)c->m * c->m) {
    size_t r = (p - c->oB) / c->m, col = (p - c->oB) % c->m;
    return col > r;
  }
  return 0;
}

static double run_case(int kind, int n, int m, int batch, int nsub) {
  gctx c = {.kind = kind, .n = n, .m = m, .batch = batch, .gscale = (kvi_real)0.7};
  if (is_lrt(kind)) c.gscale = 1;
  layout(&c);
  double *x = malloc(sizeof(double) * c.total), *g = malloc(sizeof(double) * c.total);
  double *g0 = malloc(sizeof(double) * c.total);
  tu_fill(x, c.total, 0.6, 0);
  if (is_mn(kind)) {
    tu_chol(x + c.oA, n, 0.4, 0.3, 0.1);
    tu_chol(x + c.oB, m, 0.4, 0.3, -0.1);
  }
  if (is_diag(kind)) tu_fill(x + c.oD, (size_t)n * m, 0.3, -0.7);
  if (has_d(kind)) tu_fill(x + c.oD, (size_t)n * m, 0.3, -1.5);
  c.pv = malloc(sizeof(kvi_real) * n * m);
  for (int p = 0; p < n * m; p++) c.pv[p] = (kvi_real)exp(0.4 * tu_normal());
  c.eps1 = malloc(sizeof(kvi_real) * batch * m);
  c.eps2 = malloc(sizeof(kvi_real) * batch * m);
  c.R = malloc(sizeof(kvi_real) * batch * m);
  c.Y = malloc(sizeof(kvi_real) * batch * m);
  tu_fill(c.eps1, (size_t)batch * m, 1, 0);
  tu_fill(c.eps2, (size_t)batch * m, 1, 0);
  tu_fill(c.R, (size_t)batch * m, 1, 0);
  size_t wsz = kvi_mndiag_lrt_ws_size(batch, n, m);
  if (kvi_diag_lrt_ws_size(batch, n, m) > wsz) wsz = kvi_diag_lrt_ws_size(batch, n, m);
  c.ws = kvi_alloc(wsz);
  /* accumulate onto a random prior content: gradient = g - g0; NaN would poison the upper */
  tu_fill(g0, c.total, 1, 0);
  memcpy(g, g0, sizeof(double) * c.total);
  double v = eval(x, &c, g);
  CHECK(isfinite(v));
  for (size_t p = 0; p < c.total; p++) {
    if (is_upper(&c, p)) {
      CHECK(g[p] == g0[p]); /* upper entries untouched */
      g[p] = 0;
    } else {
      g[p] -= g0[p];
    }
  }
  double err = 0;
  if (nsub <= 0) {
    err = kvi_test_fd_maxerr(fval, &c, x, g, (int)c.total, 1e-6);
  } else {
    /* large case: central differences at nsub random coordinates (incl. every diagonal of A, B
     * in the first and last row blocks) */
    for (int t = 0; t < nsub; t++) {
      size_t p = (size_t)kvi_rng_below(&tu_rng, c.total);
      if (t < 8 && is_mn(kind)) {
        int i = t < 4 ? t * 37 % n : n - 1 - t;
        p = t % 2 ? c.oA + (size_t)i * n + i : c.oB + (size_t)(i % m) * m + i % m;
      }
      double xp = x[p], h = 1e-4; /* f is O(10^2-10^3) here: a larger step keeps rounding small */
      x[p] = xp + h;
      double fp = fval(x, &c);
      x[p] = xp - h;
      double fm = fval(x, &c);
      x[p] = xp;
      double fd = (fp - fm) / (2 * h), e = fabs(fd - g[p]) / fmax(1.0, fabs(fd));
      if (e > err) err = e;
    }
  }
  double gmax = 0;
  for (size_t p = 0; p < c.total; p++) gmax = fmax(gmax, fabs(g[p]));
  if (!(err < 1e-6))
    fprintf(stderr, "%s (n=%d m=%d B=%d): max FD error %.3g\n", kind_name[kind], n, m, batch, err);
  CHECK(err < 1e-6);
  CHECK(gmax > 1e-3); /* the check is not vacuous */
  free(x), free(g), free(g0), free(c.pv), free(c.eps1), free(c.eps2), free(c.R), free(c.Y);
  kvi_free(c.ws);
  return err;
}

/* A zero input row (s = 0, sd = 0: a kink) must give finite outputs and gradients. */
static void zero_row(void) {
  int n = 4, m = 3, B = 3;
  kvi_real M[12], A[16], Bf[9], ld[12], X[12], e1[9], e2[9], Y[9], dX[12] = {0};
  kvi_real gM[12] = {0}, gA[16] = {0}, gB[9] = {0}, gd[12] = {0};
  tu_fill(M, 12, 1, 0), tu_chol(A, 4, .3, .2, 0), tu_chol(Bf, 3, .3, .2, 0);
  tu_fill(ld, 12, .2, -1), tu_fill(X, 12, 1, 0), tu_fill(e1, 9, 1, 0), tu_fill(e2, 9, 1, 0);
  for (int i = 0; i < n; i++) X[n + i] = 0;
  kvi_mndiag q = {{n, m, M, A, Bf}, ld, NULL};
  kvi_mndiag_grad g = {{gM, gA, gB}, gd};
  void *ws = kvi_alloc(kvi_mndiag_lrt_ws_size(B, n, m));
  CHECK_OK(kvi_mndiag_lrt_forward(Y, ws, &q, X, e1, e2, B));
  CHECK_OK(kvi_mndiag_lrt_backward(&g, dX, e1, ws, &q, X, e1, e2, B));
  int fin = 1;
  for (int t = 0; t < 9; t++) fin &= isfinite(Y[t]) && isfinite(gB[t]);
  for (int t = 0; t < 12; t++) fin &= isfinite(dX[t]) && isfinite(gM[t]) && isfinite(gd[t]);
  for (int i = 0; i < 4; i++)
    for (int k = 0; k <= i; k++) fin &= isfinite(gA[i * 4 + k]);
  CHECK(fin);
  for (int j = 0; j < m; j++) CHECK(Y[m + j] == 0); /* x = 0: y = 0 exactly */
  kvi_free(ws);
}

/* kvi_mn_lrt_backward_set writes what kvi_mn_lrt_backward adds into a zeroed dX, whatever dX
 * held before: with A materialized (B >= n) and without (B < n). */
static void set_vs_add(int B, int n, int m) {
  size_t bn = (size_t)B * n, bm = (size_t)B * m, nm = (size_t)n * m;
  kvi_real *M = kvi_alloc(nm * sizeof *M), *A = kvi_alloc((size_t)n * n * sizeof *A);
  kvi_real *Bf = kvi_alloc((size_t)m * m * sizeof *Bf), *X = kvi_alloc(bn * sizeof *X);
  kvi_real *e1 = kvi_alloc(bm * sizeof *e1), *dY = kvi_alloc(bm * sizeof *dY);
  kvi_real *Y = kvi_alloc(bm * sizeof *Y), *dX1 = kvi_alloc(bn * sizeof *dX1);
  kvi_real *dX2 = kvi_alloc(bn * sizeof *dX2);
  kvi_real *g1 = kvi_alloc(2 * (nm + (size_t)n * n + (size_t)m * m) * sizeof *g1);
  size_t gl = nm + (size_t)n * n + (size_t)m * m;
  kvi_real *g2 = g1 + gl;
  tu_fill(M, nm, .3, 0), tu_chol(A, n, .3, .2, 0), tu_chol(Bf, m, .3, .2, 0);
  tu_fill(X, bn, 1, 0), tu_fill(e1, bm, 1, 0), tu_fill(dY, bm, 1, 0), tu_fill(dX2, bn, 5, 3);
  kvi_mn q = {n, m, M, A, Bf};
  kvi_mn_grad ga = {g1, g1 + nm, g1 + nm + (size_t)n * n};
  kvi_mn_grad gs = {g2, g2 + nm, g2 + nm + (size_t)n * n};
  void *ws = kvi_alloc(kvi_mn_lrt_ws_size(B, n, m));
  CHECK_OK(kvi_mn_lrt_forward(Y, ws, &q, X, e1, B));
  CHECK_OK(kvi_mn_lrt_backward(&ga, dX1, dY, ws, &q, X, e1, B));
  CHECK_OK(kvi_mn_lrt_forward(Y, ws, &q, X, e1, B));
  CHECK_OK(kvi_mn_lrt_backward_set(&gs, dX2, dY, ws, &q, X, e1, B));
  double worst = 0;
  for (size_t k = 0; k < bn; k++) worst = fmax(worst, fabs((double)dX1[k] - dX2[k]));
  for (size_t k = 0; k < gl; k++) worst = fmax(worst, fabs((double)g1[k] - g2[k]));
  printf("backward_set vs backward (B=%d n=%d m=%d): max |diff| %.3g\n", B, n, m, worst);
  CHECK(worst < 1e-12);
  kvi_real *bufs[] = {M, A, Bf, X, e1, dY, Y, dX1, dX2, g1};
  for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) kvi_free(bufs[k]);
  kvi_free(ws);
}

int main(void) {
  tu_rng = kvi_rng_stream(77, 3);
  set_vs_add(12, 5, 4); /* A materialized */
  set_vs_add(3, 7, 2);  /* B < n: zeroing, then the adding path */
  const int shapes[][3] = {{4, 3, 5}, {3, 6, 4}, {1, 2, 3}, {7, 1, 2}};
  double worst = 0;
  for (int k = 0; k < NKIND; k++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      double e = run_case(k, shapes[s][0], shapes[s][1], shapes[s][2], 0);
      if (e > worst) worst = e;
    }
  /* factors larger than the row-block size of the blocked triangular gradients */
  const int big[] = {M_LRT, MD_LRT, D_LRT};
  for (int k = 0; k < 3; k++) {
    double e = run_case(big[k], 230, 110, 5, 400);
    if (e > worst) worst = e;
  }
  printf("worst relative FD error over %d functions x %zu shapes + 3 large LRT cases: %.3g\n",
         NKIND, sizeof shapes / sizeof shapes[0], worst);
  zero_row();
  TEST_MAIN_END();
}
