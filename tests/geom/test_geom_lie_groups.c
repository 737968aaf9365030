/* The triangular-Toeplitz, hierarchical and sparse-Cholesky groups (docs/geom.md section 5, (G35),
 * (G36), (G37)) and the
 * exactness of the natural gradient for every group: the projection C (.) kappa(X) against
 * F^-1 grad with the Fisher matrix of the local coordinates F_ab = 1/2 tr((E_a + E_a^T)
 * (E_b + E_b^T)) and the gradient grad_a = tr(X E_a), on a basis E_a of each group's algebra
 * built here independently of the library; closure of h(M) and B h(M); the structured inverses
 * against a dense one; names and bad input. */

#include "geom/geom_internal.h"
#include "kvi_test.h"
#include "lie_test_util.h"

enum { P = 7, NMAX = P * P };

static kvi_lie_group group(kvi_lie_kind kind, int p, int k, int kb) {
  kvi_lie_group g;
  memset(&g, 0, sizeof g);
  g.kind = kind, g.p = p, g.k = k, g.kb = kb;
  return g;
}

/* The algebra's entry (i, j), from the definitions of docs/geom.md: 0 not in it, 1 free, 2 in a
 * symmetric block. TOEPLITZ is handled apart (its entries are tied). */
static int alg_entry(const kvi_lie_group *g, int i, int j) {
  const int k = g->k, kb = g->kb;
  switch (g->kind) {
    case KVI_LIE_DENSE:
      return 2;
    case KVI_LIE_TRIL:
      return j <= i;
    case KVI_LIE_DIAG:
      return i == j;
    case KVI_LIE_BLOCK_DIAG:
      return i / k == j / k ? 2 : 0;
    case KVI_LIE_BLOCK_UP:
      return i < k && j < k ? 2 : (i < k || i == j);
    case KVI_LIE_BLOCK_LOW:
      return i < k && j < k ? 2 : ((i >= k && j < k) || i == j);
    case KVI_LIE_HIER:
      if (i < k && j < k) return 2;
      if (j < k) return 1;                     /* M_C */
      if (i < k) return 0;                     /* the zero block */
      if (i < k + kb && j < k + kb) return 2;  /* M_D */
      if (i >= k + kb && j < k + kb) return 1; /* M_3 */
      return i == j;                           /* M_4 */
    case KVI_LIE_SPCHOL:
      if (i < k) return i == j;                              /* D_1 */
      if (i < k + kb) return j < k ? 1 : j < k + kb ? 2 : 0; /* M_A, M_B */
      return i == j || (j < k && i - (k + kb) == j);         /* D_3, D_2 */
    default:
      return 0;
  }
}

/* The basis of the algebra (the local coordinates' directions): nb matrices of p x p. */
static int basis(const kvi_lie_group *g, double *E) {
  const int p = g->p;
  int nb = 0;
  if (g->kind == KVI_LIE_TOEPLITZ) { /* N^j */
    for (int d = 0; d < p; d++, nb++) {
      memset(E + (size_t)nb * p * p, 0, (size_t)p * p * sizeof *E);
      for (int i = d; i < p; i++) E[(size_t)nb * p * p + i * p + i - d] = 1;
    }
    return nb;
  }
  for (int i = 0; i < p; i++)
    for (int j = 0; j < p; j++) {
      const int a = alg_entry(g, i, j);
      if (!a || (a == 2 && j > i)) continue;
      double *Ea = E + (size_t)nb++ * p * p;
      memset(Ea, 0, (size_t)p * p * sizeof *Ea);
      Ea[i * p + j] = 1;
      if (a == 2) Ea[j * p + i] = 1;
    }
  return nb;
}

/* Solves F m = b (F symmetric positive definite, n x n) through its Cholesky factor. */
static void spd_solve(int n, const double *F, const double *b, double *m) {
  double *L = malloc((size_t)n * n * sizeof *L), *y = malloc((size_t)n * sizeof *y);
  CHECK_OK(kvi_psd_chol(n, L, F));
  for (int i = 0; i < n; i++) {
    double s = b[i];
    for (int k = 0; k < i; k++) s -= L[i * n + k] * y[k];
    y[i] = s / L[i * n + i];
  }
  for (int i = n - 1; i >= 0; i--) {
    double s = y[i];
    for (int k = i + 1; k < n; k++) s -= L[k * n + i] * m[k];
    m[i] = s / L[i * n + i];
  }
  free(L), free(y);
}

/* max |C (.) kappa(X) - F^-1 grad| for a random symmetric X. */
static double natural_gradient_gap(const kvi_lie_group *g, kvi_rng *r) {
  const int p = g->p;
  double *E = malloc((size_t)NMAX * NMAX * sizeof *E), *F = malloc((size_t)NMAX * NMAX * sizeof *F);
  double X[NMAX], M[NMAX], Mref[NMAX] = {0}, grad[NMAX], m[NMAX], Sa[NMAX], Sb[NMAX];
  const int nb = basis(g, E);
  gt_rand_sym(r, p, X, 1);
  for (int a = 0; a < nb; a++) {
    const double *Ea = E + (size_t)a * p * p;
    for (int i = 0; i < p; i++)
      for (int j = 0; j < p; j++) Sa[i * p + j] = Ea[i * p + j] + Ea[j * p + i];
    grad[a] = gt_dot(X, Ea, (size_t)p * p); /* tr(X^T E_a), X symmetric */
    for (int b = 0; b < nb; b++) {
      const double *Eb = E + (size_t)b * p * p;
      for (int i = 0; i < p; i++)
        for (int j = 0; j < p; j++) Sb[i * p + j] = Eb[i * p + j] + Eb[j * p + i];
      F[a * nb + b] = 0.5 * gt_dot(Sa, Sb, (size_t)p * p); /* 1/2 tr(Sa Sb), both symmetric */
    }
  }
  spd_solve(nb, F, grad, m);
  for (int a = 0; a < nb; a++)
    for (int i = 0; i < p * p; i++) Mref[i] += m[a] * E[(size_t)a * p * p + i];
  CHECK_OK(kvi_lie_project(g, M, X));
  free(E), free(F);
  return gt_maxdiff(M, Mref, (size_t)p * p);
}

static void test_natural_gradient_exact(void) {
  kvi_rng r = kvi_rng_stream(7, 1);
  const kvi_lie_group gs[] = {group(KVI_LIE_DENSE, P, 0, 0),      group(KVI_LIE_TRIL, P, 0, 0),
                              group(KVI_LIE_BLOCK_UP, P, 3, 0),   group(KVI_LIE_BLOCK_UP, P, 0, 0),
                              group(KVI_LIE_BLOCK_LOW, P, 3, 0),  group(KVI_LIE_BLOCK_LOW, P, P, 0),
                              group(KVI_LIE_BLOCK_DIAG, P, 3, 0), group(KVI_LIE_DIAG, P, 0, 0),
                              group(KVI_LIE_TOEPLITZ, P, 0, 0),   group(KVI_LIE_HIER, P, 3, 2),
                              group(KVI_LIE_HIER, P, 0, 2),       group(KVI_LIE_HIER, P, 2, 0),
                              group(KVI_LIE_HIER, P, 1, 6),       group(KVI_LIE_SPCHOL, P, 2, 3),
                              group(KVI_LIE_SPCHOL, P, 3, 2),     group(KVI_LIE_SPCHOL, P, 1, 2),
                              group(KVI_LIE_SPCHOL, P, 3, 0),     group(KVI_LIE_SPCHOL, P, 0, 3)};
  for (size_t c = 0; c < sizeof gs / sizeof *gs; c++) {
    char name[32];
    const double gap = natural_gradient_gap(&gs[c], &r);
    printf("natural gradient, %s: max |C (.) kappa(X) - F^-1 grad| = %.2e\n",
           kvi_lie_group_name(&gs[c], name, sizeof name), gap);
    CHECK(gap < 1e-12);
  }
  /* a wrong C is caught: the Toeplitz projection with the entrywise weights (1/2 on the diagonal
   * entries, 1 below) is not the natural gradient */
  kvi_lie_group t = group(KVI_LIE_TOEPLITZ, P, 0, 0), l = group(KVI_LIE_TRIL, P, 0, 0);
  double X[NMAX], M[NMAX], Mt[NMAX];
  gt_rand_sym(&r, P, X, 1);
  CHECK_OK(kvi_lie_project(&t, Mt, X));
  CHECK_OK(kvi_lie_project(&l, M, X));
  CHECK(gt_maxdiff(M, Mt, NMAX) > 1e-3);
}

/* A random well-conditioned member: Toeplitz from a random first column with b_0 = 2; the others
 * structure-masked noise plus 2 on the diagonal. */
static void member(kvi_rng *r, const kvi_lie_group *g, double *B) {
  const int p = g->p;
  double c[P], ones[NMAX], Z[NMAX];
  if (g->kind == KVI_LIE_TOEPLITZ) {
    gt_randn(r, c, (size_t)p, 0.3);
    c[0] = 2;
    for (int i = 0; i < p; i++)
      for (int j = 0; j < p; j++) B[i * p + j] = j <= i ? c[i - j] : 0;
    return;
  }
  gt_randn(r, B, (size_t)p * p, 0.3);
  for (int i = 0; i < p; i++) B[i * p + i] += 2;
  for (int i = 0; i < p * p; i++) ones[i] = 1;
  CHECK_OK(kvi_lie_project(g, Z, ones));
  for (int i = 0; i < p * p; i++) B[i] = Z[i] != 0 ? B[i] : 0;
}

static void test_closure(void) {
  kvi_rng r = kvi_rng_stream(7, 2);
  const kvi_lie_group gs[] = {group(KVI_LIE_TOEPLITZ, P, 0, 0), group(KVI_LIE_HIER, P, 3, 2),
                              group(KVI_LIE_HIER, P, 1, 2),     group(KVI_LIE_HIER, P, 0, 0),
                              group(KVI_LIE_HIER, P, 2, 5),     group(KVI_LIE_SPCHOL, P, 2, 3),
                              group(KVI_LIE_SPCHOL, P, 3, 1),   group(KVI_LIE_SPCHOL, P, 3, 4),
                              group(KVI_LIE_SPCHOL, P, 2, 0),   group(KVI_LIE_SPCHOL, P, 0, 0)};
  for (size_t c = 0; c < sizeof gs / sizeof *gs; c++) {
    const kvi_lie_group *g = &gs[c];
    const kvi__sg sg = kvi__sg_of(g, 0);
    double B[NMAX], X[NMAX], M[NMAX], H[NMAX], BH[NMAX], R[NMAX], I[NMAX], w[NMAX];
    int ipiv[P];
    member(&r, g, B);
    CHECK(kvi_lie_in_group(g, B, 0));
    gt_rand_sym(&r, P, X, 1);
    CHECK_OK(kvi_lie_project(g, M, X));
    CHECK(kvi_lie_in_group(g, M, 0) || g->kind == KVI_LIE_TOEPLITZ); /* (b_0 > 0 aside) */
    kvi_lie_h(P, H, M);
    gt_mul(P, P, P, B, false, H, false, BH);
    CHECK(kvi_lie_in_group(g, H, 1e-12) && kvi_lie_in_group(g, BH, 1e-12));
    CHECK(!kvi_lie_in_group(g, X, 1e-12)); /* a dense symmetric matrix is in neither */
    kvi_lie_safety safe = {1, 0, 0};
    CHECK_OK(kvi_lie_update(g, B, X, 0.3, &safe)); /* structure kept exactly */
    CHECK(kvi_lie_in_group(g, B, 0));
    CHECK(kvi__lie_inverse(&sg, B, R, w, ipiv));
    CHECK(kvi_lie_in_group(g, R, 0)); /* the inverse is in the group, its zeros exact */
    gt_mul(P, P, P, B, false, R, false, I);
    for (int i = 0; i < P; i++) I[i * P + i] -= 1;
    char name[32];
    printf("closure, %s: |B R - I| = %.2e\n", kvi_lie_group_name(g, name, sizeof name),
           gt_maxabs(I, NMAX));
    CHECK(gt_maxabs(I, NMAX) < 1e-12);
  }
}

/* The Toeplitz group commutes and its step is exactly B h(M) on the first column. */
static void test_toeplitz(void) {
  kvi_rng r = kvi_rng_stream(7, 3);
  kvi_lie_group g = group(KVI_LIE_TOEPLITZ, P, 0, 0);
  double A[NMAX], B[NMAX], AB[NMAX], BA[NMAX], X[NMAX], M[NMAX], H[NMAX], Bn[NMAX];
  member(&r, &g, A), member(&r, &g, B);
  gt_mul(P, P, P, A, false, B, false, AB);
  gt_mul(P, P, P, B, false, A, false, BA);
  CHECK(gt_maxdiff(AB, BA, NMAX) < 1e-14);
  gt_rand_sym(&r, P, X, 0.5);
  CHECK_OK(kvi_lie_project(&g, M, X));
  for (int i = 0; i < NMAX; i++) M[i] *= 0.4;
  kvi_lie_h(P, H, M);
  gt_mul(P, P, P, B, false, H, false, Bn);
  kvi_lie_safety safe = {10, 0, 0};
  CHECK_OK(kvi_lie_update(&g, B, X, 0.4, &safe));
  CHECK(gt_maxdiff(B, Bn, NMAX) < 1e-13 && safe.damped == 0);
  /* safety: b_0 <= 0 is not in the group; a non-finite step is rejected, B unchanged */
  double B0[NMAX];
  memcpy(B0, B, sizeof B);
  X[3 * P + 1] = NAN; /* below the diagonal: the part the projection reads */
  CHECK_FAILS(kvi_lie_update(&g, B, X, 0.1, &safe));
  CHECK(safe.rejected == 1 && gt_maxdiff(B, B0, NMAX) == 0);
  B0[0] = -1;
  for (int i = 1; i < P; i++) B0[i * P + i] = -1;
  CHECK(!kvi_lie_in_group(&g, B0, 0));
}

/* The sparse-Cholesky pivots are D_1's and D_3's diagonals and B_B's LU pivots (D_2 and B_A are
 * off the diagonal blocks); a step that halves a tiny pivot of either diagonal part is rejected,
 * B unchanged. */
static void test_spchol_pivots(void) {
  const kvi_lie_group g = group(KVI_LIE_SPCHOL, P, 2, 3);
  const kvi__sg sg = kvi__sg_of(&g, 0);
  double B[NMAX] = {0}, X[NMAX] = {0}, B0[NMAX], w[NMAX];
  int ipiv[P];
  for (int i = 0; i < P; i++) B[i * P + i] = 1;
  for (int i = 2; i < 5; i++) B[i * P + i] = 4; /* B_B = 4 I, |pivots| 4 */
  B[2 * P + 0] = B[5 * P + 0] = B[6 * P + 1] = 100;
  CHECK(kvi_lie_in_group(&g, B, 0) && kvi__lie_pivot_ratio(&sg, B, w, ipiv) == 0.25);
  for (int c = 0; c < 2; c++) {
    const int i = c ? 6 : 0; /* D_3, D_1 */
    memcpy(B0, B, sizeof B);
    B0[i * P + i] = 1.5e-12;
    memcpy(X, (double[NMAX]){0}, sizeof X);
    X[i * P + i] = -2; /* M_ii = -1: h(M)_ii = 1/2 */
    kvi_lie_safety safe = {1, 0, 0};
    double Bs[NMAX];
    memcpy(Bs, B0, sizeof B0);
    CHECK_STATUS(kvi_lie_update(&g, B0, X, 1, &safe), KVI_ERR_LINALG);
    CHECK(safe.rejected == 1 && safe.damped == 0 && gt_maxdiff(B0, Bs, NMAX) == 0);
  }
}

static void test_names(void) {
  kvi_lie_group g, h;
  char name[40];
  CHECK_OK(kvi_lie_group_parse(&g, "toeplitz", 10));
  CHECK(g.kind == KVI_LIE_TOEPLITZ &&
        !strcmp(kvi_lie_group_name(&g, name, sizeof name), "toeplitz"));
  CHECK_OK(kvi_lie_group_parse(&g, "hier5,3", 10));
  CHECK(g.kind == KVI_LIE_HIER && g.k == 5 && g.kb == 3);
  CHECK_OK(kvi_lie_group_parse(&h, kvi_lie_group_name(&g, name, sizeof name), 10));
  CHECK(!strcmp(name, "hier5,3") && h.kind == g.kind && h.k == 5 && h.kb == 3);
  CHECK_OK(kvi_lie_group_parse(&g, "hier0,10", 10));
  CHECK_OK(kvi_lie_group_parse(&g, "kron:2:toeplitz:hier2,1", 10));
  CHECK(g.kind2 == KVI_LIE_HIER && g.k2 == 2 && g.kb2 == 1 && g.kind1 == KVI_LIE_TOEPLITZ);
  CHECK(!strcmp(kvi_lie_group_name(&g, name, sizeof name), "kron2x5(toeplitz,hier2,1)"));
  CHECK_OK(kvi_lie_group_parse(&g, "spchol5,3", 10));
  CHECK(g.kind == KVI_LIE_SPCHOL && g.k == 5 && g.kb == 3);
  CHECK_OK(kvi_lie_group_parse(&h, kvi_lie_group_name(&g, name, sizeof name), 10));
  CHECK(!strcmp(name, "spchol5,3") && h.kind == g.kind && h.k == 5 && h.kb == 3);
  CHECK_OK(kvi_lie_group_parse(&g, "spchol0,10", 10));
  CHECK_OK(kvi_lie_group_parse(&g, "spchol10,0", 10));
  CHECK_OK(kvi_lie_group_parse(&g, "kron:5:spchol1,2:tril", 10));
  CHECK(g.kind1 == KVI_LIE_SPCHOL && g.k1 == 1 && g.kb1 == 2 && g.p2 == 2);
  CHECK(!strcmp(kvi_lie_group_name(&g, name, sizeof name), "kron5x2(spchol1,2,tril)"));
  kvi_clear_error();
  CHECK_STATUS(kvi_lie_group_parse(&g, "cholesky", 10), KVI_ERR_ARG);
  CHECK(strstr(kvi_last_error(), "spcholK,KB") != NULL);
  const char *bad[] = {"hier",
                       "hier5",
                       "hier300,3",
                       "hier5,6",
                       "hier-1,2",
                       "hier2,-1",
                       "hier5,3x",
                       "hier5,",
                       "toeplitz3",
                       "toep",
                       "Toeplitz",
                       "kron:2:hier9,1:tril",
                       "spchol",
                       "spchol5",
                       "spchol8,3",
                       "spchol-1,2",
                       "spchol2,-1",
                       "spchol5,3x",
                       "spchol5,",
                       "spchol 5,3",
                       "SPCHOL5,3",
                       "kron:2:tril:spchol3,3",
                       "kron:3:toeplitz:tril",
                       ""};
  for (size_t c = 0; c < sizeof bad / sizeof *bad; c++) {
    CHECK_STATUS(kvi_lie_group_parse(&g, bad[c], 10), KVI_ERR_ARG);
    CHECK(strlen(kvi_last_error()) > 0);
  }
  kvi_lie_group k = group(KVI_LIE_HIER, 10, 4, 7);
  CHECK_STATUS(kvi_lie_group_check(&k), KVI_ERR_ARG);
  k = group(KVI_LIE_SPCHOL, 10, 6, 5);
  CHECK_STATUS(kvi_lie_group_check(&k), KVI_ERR_ARG);
  k = group(KVI_LIE_TOEPLITZ, 10, 0, 2); /* kb only for HIER and SPCHOL */
  CHECK_STATUS(kvi_lie_group_check(&k), KVI_ERR_ARG);
  k = group(KVI_LIE_TOEPLITZ, 0, 0, 0);
  CHECK_STATUS(kvi_lie_group_check(&k), KVI_ERR_ARG);
  double X[4] = {0}, M[4];
  CHECK_STATUS(kvi_lie_project(&k, M, X), KVI_ERR_ARG);
  CHECK_STATUS(kvi_lie_update(&k, M, X, 1, NULL), KVI_ERR_ARG);
}

/* ---- group invariance: optimizing l(R y) with R^T in the group gives the iterates of l ---- */
/* The largest relative gap of R y_t - mu_t and B'_t - R^T B_t over iters steps. */
static double invariance_gap(const kvi_lie_group *g, int iters) {
  kvi_rng r = kvi_rng_stream(7, 4);
  const kvi__sg sg = kvi__sg_of(g, 0);
  double Rt[NMAX], R[NMAX], Rti[NMAX], w[NMAX], mu[P], y[P], B[NMAX], Bp[NMAX];
  int ipiv[P];
  member(&r, g, Rt);
  member(&r, g, B);
  for (int i = 0; i < NMAX; i++) B[i] *= 20; /* S0 on the Hessian's scale */
  for (int i = 0; i < P; i++)
    for (int j = 0; j < P; j++) R[i * P + j] = Rt[j * P + i];
  CHECK(kvi__lie_inverse(&sg, Rt, Rti, w, ipiv));
  for (int i = 0; i < P; i++) mu[i] = i % 2 ? 1.0 : -1.2;
  gt_mul(P, 1, P, Rti, true, mu, false, y); /* y0 = R^-1 mu0 = (R^T)^-T mu0 */
  gt_mul(P, P, P, R, true, B, false, Bp);   /* B'0 = R^T B0 */
  CHECK(kvi_lie_in_group(g, Bp, 1e-12));
  kvi_lie_problem base = kvi_lie_problem_rosenbrock(P);
  return lt_invariance_run(g, &base, R, mu, B, y, Bp, iters);
}

static void test_invariance(void) {
  const kvi_lie_group gs[] = {group(KVI_LIE_TOEPLITZ, P, 0, 0), group(KVI_LIE_HIER, P, 3, 2),
                              group(KVI_LIE_HIER, P, 1, 3), group(KVI_LIE_SPCHOL, P, 2, 3),
                              group(KVI_LIE_SPCHOL, P, 3, 1)};
  for (size_t c = 0; c < sizeof gs / sizeof *gs; c++) {
    char name[32];
    const double gap = invariance_gap(&gs[c], 40);
    printf("invariance, %s, R^T in the group: max relative gap %.2e over 40 iterations\n",
           kvi_lie_group_name(&gs[c], name, sizeof name), gap);
    CHECK(gap < 1e-9);
  }
}

/* ---- convergence: Dixon-Price and a quadratic, with kvi_lie_start's steps and start ---- */
static void test_minimize(void) {
  kvi_rng r = kvi_rng_stream(7, 5);
  double A[NMAX], center[P];
  gt_rand_spd(&r, P, A, 1);
  gt_randn(&r, center, P, 1);
  lt_quad q = {P, A, center};
  const kvi_lie_problem probs[2] = {kvi_lie_problem_dixon_price(P),
                                    lt_quad_problem(&q, 0, "quadratic", false)};
  const char *names[] = {"toeplitz",  "hier3,2",   "hier2,0",
                         "spchol2,3", "spchol3,1", "kron:1:toeplitz:hier2,3"};
  for (int pb = 0; pb < 2; pb++)
    for (size_t c = 0; c < sizeof names / sizeof *names; c++) {
      kvi_lie_group g;
      CHECK_OK(kvi_lie_group_parse(&g, names[c], P));
      kvi_lie_opts o = kvi_lie_opts_default(g);
      o.max_iter = 30000;
      double mu[P], B[NMAX + 1];
      for (int i = 0; i < P; i++) mu[i] = 1;
      CHECK_OK(kvi_lie_start(&probs[pb], &o, mu, B));
      kvi_lie_report rep;
      CHECK_OK(kvi_lie_minimize(&probs[pb], &o, mu, B, &rep));
      printf("%s-%d, %s: f = %.2e after %d iterations (%s, %d damped, %d rejected)\n",
             probs[pb].name, P, names[c], rep.f, rep.iters,
             rep.converged ? "converged" : "not converged", rep.damped, rep.rejected);
      CHECK(rep.converged && rep.f < 1e-6);
    }
  /* both new groups as Kronecker factors of a 6-dimensional problem */
  kvi_lie_problem dp = kvi_lie_problem_dixon_price(6);
  kvi_lie_group g;
  CHECK_OK(kvi_lie_group_parse(&g, "kron:2:toeplitz:hier1,1", 6));
  kvi_lie_opts o = kvi_lie_opts_default(g);
  double mu[6] = {1, 1, 1, 1, 1, 1}, B[13];
  CHECK_OK(kvi_lie_start(&dp, &o, mu, B));
  kvi_lie_report rep;
  CHECK_OK(kvi_lie_minimize(&dp, &o, mu, B, &rep));
  printf("dixon-price-6, kron:2:toeplitz:hier1,1: f = %.2e after %d iterations (%s)\n", rep.f,
         rep.iters, rep.converged ? "converged" : "not converged");
  CHECK(rep.converged && rep.f < 1e-6);
  CHECK(B[0] == B[3] && B[1] == 0 && B[4 + 2] == 0); /* Toeplitz B1; B2's zero block */
  /* a sparse-Cholesky factor [[d1, 0, 0], [a, b, 0], [d2, 0, d3]] next to a triangular one */
  CHECK_OK(kvi_lie_group_parse(&g, "kron:3:spchol1,1:tril", 6));
  o = kvi_lie_opts_default(g);
  for (int i = 0; i < 6; i++) mu[i] = 1;
  CHECK_OK(kvi_lie_start(&dp, &o, mu, B));
  CHECK_OK(kvi_lie_minimize(&dp, &o, mu, B, &rep));
  printf("dixon-price-6, kron:3:spchol1,1:tril: f = %.2e after %d iterations (%s)\n", rep.f,
         rep.iters, rep.converged ? "converged" : "not converged");
  CHECK(rep.converged && rep.f < 1e-6);
  CHECK(B[1] == 0 && B[2] == 0 && B[5] == 0 && B[7] == 0 && B[9 + 1] == 0);
}

int main(void) {
  test_natural_gradient_exact();
  test_closure();
  test_toeplitz();
  test_spchol_pivots();
  test_names();
  test_invariance();
  test_minimize();
  TEST_MAIN_END();
}
