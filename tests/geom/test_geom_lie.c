/* Matrix Lie groups and structured NGD (docs/geom.md sections 5-6): updates stay in their group;
 * C (.) kappa(X) is the natural gradient (against the inverse of a finite-difference Fisher
 * matrix and a finite-difference gradient, for every group); group invariance (acceptance 2):
 * optimizing l(R y) with R^T in the group gives the iterates of optimizing l, to rounding (and
 * a dense R with the block group does not); damping and rejection (acceptance 6). */

#include "kvi_test.h"
#include "lie_test_util.h"

enum { P = 6, K = 2 };

static kvi_lie_group group(kvi_lie_kind kind, int p, int k) {
  kvi_lie_group g;
  memset(&g, 0, sizeof g);
  g.kind = kind, g.p = p, g.k = k;
  return g;
}

/* A random well-conditioned member of the group: structure-masked noise plus 2 on the diagonal. */
static void member(kvi_rng *r, const kvi_lie_group *g, double *B) {
  const int p = g->p;
  double M[64];
  gt_randn(r, B, (size_t)p * p, 0.3);
  for (int i = 0; i < p; i++) B[i * p + i] += 2;
  for (int i = 0; i < p * p; i++) M[i] = 1;
  double Z[64];
  CHECK_OK(kvi_lie_project(g, Z, M)); /* nonzero exactly on the algebra's (= group's) pattern */
  for (int i = 0; i < p * p; i++) B[i] = Z[i] != 0 ? B[i] : 0;
}

static const kvi_lie_kind kinds[5] = {KVI_LIE_DENSE, KVI_LIE_TRIL, KVI_LIE_BLOCK_UP,
                                      KVI_LIE_BLOCK_LOW, KVI_LIE_BLOCK_DIAG};

static void test_structure(void) {
  kvi_rng r = kvi_rng_stream(4, 1);
  for (int c = 0; c < 6; c++) {
    kvi_lie_group g = c < 5 ? group(kinds[c], P, K) : group(KVI_LIE_DIAG, P, 0);
    double B[P * P], X[P * P];
    member(&r, &g, B);
    CHECK(kvi_lie_in_group(&g, B, 0));
    gt_rand_sym(&r, P, X, 2);
    kvi_lie_safety safe = {1, 0, 0};
    CHECK_OK(kvi_lie_update(&g, B, X, 0.4, &safe));
    CHECK(kvi_lie_in_group(&g, B, 0));
    char name[32];
    kvi_lie_group h;
    CHECK_OK(kvi_lie_group_parse(&h, kvi_lie_group_name(&g, name, sizeof name), P));
    CHECK(h.kind == g.kind && (h.k == g.k || g.kind == KVI_LIE_DENSE || g.kind == KVI_LIE_TRIL ||
                               g.kind == KVI_LIE_DIAG));
  }
  kvi_lie_group bad = group(KVI_LIE_BLOCK_UP, 4, 5);
  CHECK_FAILS(kvi_lie_group_check(&bad));
  kvi_lie_group h;
  CHECK_FAILS(kvi_lie_group_parse(&h, "upper", 4));
  CHECK_OK(kvi_lie_group_parse(&h, "kron:2:tril:up1", 6));
  CHECK(h.kind == KVI_LIE_KRON && h.p1 == 2 && h.p2 == 3 && h.kind2 == KVI_LIE_BLOCK_UP);
}

/* ---- the natural gradient against a finite-difference Fisher matrix -------------------------
 * L(B) = 1/2 tr(A (B B^T)^-1) + gamma log |det B|, B(eta) = B h(sum_a eta_a E_a). */
enum { Q = 4, QK = 2, NB = 16 };
typedef struct {
  const double *A, *B, *E; /* E: the basis, nb matrices */
  double gamma;
  int nb;
} fisher_ctx;

static void b_of(const fisher_ctx *c, const double *eta, double *Bt) {
  double M[Q * Q] = {0}, H[Q * Q];
  for (int a = 0; a < c->nb; a++)
    for (int i = 0; i < Q * Q; i++) M[i] += eta[a] * c->E[a * Q * Q + i];
  kvi_lie_h(Q, H, M);
  gt_mul(Q, Q, Q, c->B, false, H, false, Bt);
}

static double logdet_abs(const double *B) { /* log |det B| through B B^T */
  double S[Q * Q];
  gt_mul(Q, Q, Q, B, false, B, true, S);
  return 0.5 * gt_logdet(Q, S);
}

static void inverse_spd(const double *S, double *Si) {
  double L[Q * Q];
  CHECK_OK(kvi_psd_chol(Q, L, S));
  for (int c = 0; c < Q; c++) {
    double y[Q], x[Q];
    for (int i = 0; i < Q; i++) {
      double s = i == c;
      for (int k = 0; k < i; k++) s -= L[i * Q + k] * y[k];
      y[i] = s / L[i * Q + i];
    }
    for (int i = Q - 1; i >= 0; i--) {
      double s = y[i];
      for (int k = i + 1; k < Q; k++) s -= L[k * Q + i] * x[k];
      x[i] = s / L[i * Q + i];
    }
    for (int i = 0; i < Q; i++) Si[i * Q + c] = x[i];
  }
}

static double objective(const double *eta, void *ctx) {
  const fisher_ctx *c = ctx;
  double Bt[Q * Q], S[Q * Q], Si[Q * Q];
  b_of(c, eta, Bt);
  gt_mul(Q, Q, Q, Bt, false, Bt, true, S);
  inverse_spd(S, Si);
  return 0.5 * gt_dot(c->A, Si, Q * Q) + c->gamma * logdet_abs(Bt);
}

/* KL(N(0, S0^-1) || N(0, S(eta)^-1)) */
static double kl_of(const fisher_ctx *c, const double *eta) {
  double zero[NB] = {0}, B0[Q * Q], Bt[Q * Q], S[Q * Q], S0[Q * Q], S0i[Q * Q];
  b_of(c, zero, B0);
  b_of(c, eta, Bt);
  gt_mul(Q, Q, Q, Bt, false, Bt, true, S);
  gt_mul(Q, Q, Q, B0, false, B0, true, S0);
  inverse_spd(S0, S0i);
  return 0.5 * (gt_dot(S, S0i, Q * Q) - Q - gt_logdet(Q, S) + gt_logdet(Q, S0));
}

/* Solves F x = g (nb x nb) by Gaussian elimination with partial pivoting. */
static void solve(int nb, double *F, double *g) {
  for (int c = 0; c < nb; c++) {
    int piv = c;
    for (int i = c + 1; i < nb; i++)
      if (fabs(F[i * nb + c]) > fabs(F[piv * nb + c])) piv = i;
    for (int j = 0; j < nb; j++) {
      double t = F[c * nb + j];
      F[c * nb + j] = F[piv * nb + j], F[piv * nb + j] = t;
    }
    double t = g[c];
    g[c] = g[piv], g[piv] = t;
    for (int i = c + 1; i < nb; i++) {
      const double f = F[i * nb + c] / F[c * nb + c];
      for (int j = c; j < nb; j++) F[i * nb + j] -= f * F[c * nb + j];
      g[i] -= f * g[c];
    }
  }
  for (int i = nb - 1; i >= 0; i--) {
    double s = g[i];
    for (int j = i + 1; j < nb; j++) s -= F[i * nb + j] * g[j];
    g[i] = s / F[i * nb + i];
  }
}

static void test_natural_gradient(void) {
  kvi_rng r = kvi_rng_stream(4, 2);
  for (int c = 0; c < 6; c++) {
    kvi_lie_group g = c < 5 ? group(kinds[c], Q, QK) : group(KVI_LIE_DIAG, Q, 0);
    double B[Q * Q], A[Q * Q], ones[Q * Q], pat[Q * Q], E[NB * Q * Q];
    member(&r, &g, B);
    gt_rand_spd(&r, Q, A, 0.5);
    for (int i = 0; i < Q * Q; i++) ones[i] = 1;
    CHECK_OK(kvi_lie_project(&g, pat, ones));
    int nb = 0, bi[NB], bj[NB];
    memset(E, 0, sizeof E);
    for (int i = 0; i < Q; i++)
      for (int j = 0; j < Q; j++) {
        if (pat[i * Q + j] == 0) continue;
        const bool sym = pat[j * Q + i] != 0 && i != j; /* a symmetric block: one coordinate */
        if (sym && j > i) continue;
        E[nb * Q * Q + i * Q + j] = 1;
        if (sym) E[nb * Q * Q + j * Q + i] = 1;
        bi[nb] = i, bj[nb++] = j;
      }
    fisher_ctx fc = {A, B, E, 1.0, nb};
    double eta[NB] = {0}, grad[NB], F[NB * NB];
    const double h = 1e-5;
    for (int a = 0; a < nb; a++) { /* gradient */
      eta[a] = h;
      const double fp = objective(eta, &fc);
      eta[a] = -h;
      const double fm = objective(eta, &fc);
      eta[a] = 0;
      grad[a] = (fp - fm) / (2 * h);
    }
    const double hh = 1e-4;
    for (int a = 0; a < nb; a++) /* Fisher: the Hessian of the KL at 0 */
      for (int b = 0; b < nb; b++) {
        double v[4];
        for (int s = 0; s < 4; s++) {
          memset(eta, 0, sizeof eta);
          eta[a] += (s & 1 ? -hh : hh);
          eta[b] += (s & 2 ? -hh : hh);
          v[s] = kl_of(&fc, eta);
        }
        F[a * nb + b] = (v[0] - v[1] - v[2] + v[3]) / (4 * hh * hh);
      }
    solve(nb, F, grad); /* grad <- F^-1 grad */
    /* the claim: M = C (.) kappa(X), X = B^-1 A B^-T - gamma I, is minus the natural gradient */
    double Bi[Q * Q], T[Q * Q], X[Q * Q], M[Q * Q], S[Q * Q];
    gt_mul(Q, Q, Q, B, false, B, true, S);
    inverse_spd(S, T);                      /* S^-1 = B^-T B^-1 */
    gt_mul(Q, Q, Q, B, true, T, false, Bi); /* B^T S^-1 = B^-1 */
    gt_mul(Q, Q, Q, Bi, false, A, false, T);
    gt_mul(Q, Q, Q, T, false, Bi, true, X);
    for (int i = 0; i < Q; i++) X[i * Q + i] -= 1;
    CHECK_OK(kvi_lie_project(&g, M, X));
    double worst = 0, size = 0;
    for (int a = 0; a < nb; a++) {
      worst = fmax(worst, fabs(M[bi[a] * Q + bj[a]] + grad[a]));
      size = fmax(size, fabs(grad[a]));
    }
    printf("group %d: |C (.) kappa(X) + F^-1 g| = %.2e (|F^-1 g| = %.2f, %d coordinates)\n", c,
           worst, size, nb);
    CHECK(worst < 1e-5 * (1 + size));
  }
}

/* ---- group invariance ----------------------------------------------------------------------- */
/* Runs iters structured NGD steps on l and on l(R .) from the corresponding starts, B'0 = R^T B0
 * (or, with chol_start, the Cholesky factor of R^T B0 B0^T R: the same precision, in the
 * lower-triangular group whatever R is); returns the largest relative difference of
 * R y_t - mu_t and B'_t - R^T B_t over the iterations. */
static double invariance_gap(const kvi_lie_group *g, const double *Rt, int iters, bool chol_start) {
  const int p = g->p;
  double R[P * P], mu[P], y[P], B[P * P], Bp[P * P], Ry[P];
  for (int i = 0; i < p; i++)
    for (int j = 0; j < p; j++) R[i * p + j] = Rt[j * p + i];
  kvi_rng r = kvi_rng_stream(4, 3);
  member(&r, g, B);
  for (int i = 0; i < p * p; i++) B[i] *= 20; /* S0 of the Hessian's scale: no wild first steps */
  for (int i = 0; i < p; i++) mu[i] = i % 2 ? 1.0 : -1.2;
  /* y0 = R^-1 mu0: solve by the normal equations through Cholesky (R well conditioned) */
  double RtR[P * P], Rtmu[P], L[P * P];
  gt_mul(p, p, p, R, true, R, false, RtR);
  gt_mul(p, 1, p, R, true, mu, false, Rtmu);
  CHECK_OK(kvi_psd_chol(p, L, RtR));
  for (int i = 0; i < p; i++) {
    double s = Rtmu[i];
    for (int k = 0; k < i; k++) s -= L[i * p + k] * Ry[k];
    Ry[i] = s / L[i * p + i];
  }
  for (int i = p - 1; i >= 0; i--) {
    double s = Ry[i];
    for (int k = i + 1; k < p; k++) s -= L[k * p + i] * y[k];
    y[i] = s / L[i * p + i];
  }
  gt_mul(p, p, p, R, true, B, false, Bp); /* B'0 = R^T B0 */
  if (chol_start) {
    double S[P * P];
    gt_mul(p, p, p, Bp, false, Bp, true, S);
    CHECK_OK(kvi_psd_chol(p, Bp, S));
  }
  CHECK(kvi_lie_in_group(g, Bp, 0)); /* a valid start of the structured method */
  kvi_lie_problem base = kvi_lie_problem_rosenbrock(p);
  const double gap = lt_invariance_run(g, &base, R, mu, B, y, Bp, iters);
  double f = base.f(mu, base.user);
  printf("  (f(mu) = %.3g after %d iterations)\n", f, iters);
  return gap;
}

static void test_invariance(void) {
  kvi_rng r = kvi_rng_stream(4, 4);
  const kvi_lie_kind ks[3] = {KVI_LIE_BLOCK_UP, KVI_LIE_TRIL, KVI_LIE_DENSE};
  for (int c = 0; c < 3; c++) {
    kvi_lie_group g = group(ks[c], P, K);
    double Rt[P * P];
    member(&r, &g, Rt); /* R^T in the group */
    const double gap = invariance_gap(&g, Rt, 40, false);
    printf("invariance, group %d, R^T in the group: max relative gap %.2e over 40 iterations\n",
           (int)ks[c], gap);
    CHECK(gap < 1e-9);
  }
  /* control: with R^T outside the lower-triangular group, the run from the same precision in the
   * group (its Cholesky factor) follows other iterates */
  kvi_lie_group g = group(KVI_LIE_TRIL, P, 0), d = group(KVI_LIE_DENSE, P, 0);
  double Rt[P * P];
  member(&r, &d, Rt);
  const double gap = invariance_gap(&g, Rt, 40, true);
  printf("invariance control, dense R^T with the triangular group: gap %.2e\n", gap);
  CHECK(gap > 1e-3 && isfinite(gap));
}

/* Acceptance 6: a huge step is damped to |M|_F = 1; a non-finite one is rejected; a step that
 * would make B numerically singular is rejected; B is unchanged by a rejection. */
static void test_safety(void) {
  kvi_rng r = kvi_rng_stream(4, 5);
  kvi_lie_group g = group(KVI_LIE_BLOCK_UP, P, K);
  double B[P * P], B0[P * P], X[P * P], M[P * P];
  member(&r, &g, B);
  memcpy(B0, B, sizeof B);
  gt_rand_sym(&r, P, X, 1e6);
  kvi_lie_safety safe = {1, 0, 0};
  CHECK_OK(kvi_lie_update(&g, B, X, 1, &safe));
  CHECK(safe.damped == 1 && safe.rejected == 0 && kvi_lie_in_group(&g, B, 0));
  CHECK(isfinite(gt_maxabs(B, P * P)) && gt_maxabs(B, P * P) < 10 * gt_maxabs(B0, P * P));
  memcpy(B0, B, sizeof B);
  X[7] = NAN;
  CHECK_FAILS(kvi_lie_update(&g, B, X, 0.1, &safe));
  CHECK(safe.rejected == 1 && gt_maxdiff(B, B0, P * P) == 0);
  /* singular: B = diag(1, 1.5e-12, 1, ...) and a step that halves the small entry */
  const kvi_lie_kind ks[2] = {KVI_LIE_DIAG, KVI_LIE_DENSE};
  for (int c = 0; c < 2; c++) {
    kvi_lie_group h = group(ks[c], 4, 0);
    double D[16] = {0}, D0[16];
    for (int i = 0; i < 4; i++) D[i * 4 + i] = i == 1 ? 1.5e-12 : 1;
    memcpy(D0, D, sizeof D);
    memset(X, 0, sizeof X);
    X[1 * 4 + 1] = -2; /* M_11 = -1: h = 1/2 */
    CHECK_OK(kvi_lie_project(&h, M, X));
    CHECK(M[5] == -1);
    kvi_lie_safety s2 = {1, 0, 0};
    CHECK_FAILS(kvi_lie_update(&h, D, X, 1, &s2));
    CHECK(s2.rejected == 1 && gt_maxdiff(D, D0, 16) == 0);
  }
  CHECK_FAILS(kvi_lie_update(&g, NULL, X, 1, NULL));
}

int main(void) {
  test_structure();
  test_natural_gradient();
  test_invariance();
  test_safety();
  TEST_MAIN_END();
}
