/* bench_lie mixture: an 80-dimensional mixture of five multivariate Student-t densities (nu = 5,
 * means N(0, 2^2 I), correlated scales) fitted by a mixture of ten Gaussians whose precision
 * factors B_k are block upper-triangular (k = 5), by structured NGD with Stein estimates and
 * learned weights (kvi_lie_mixture_fit). Writes the first 8 marginals of target and fit on a grid
 * to CSV and prints their L1 distances. Part of bench_lie.c. */
#include <lapacke.h>

enum { MIX_P = 80, MIX_T = 5, MIX_K = 10 };

typedef struct {
  double m[MIX_T][MIX_P];
  double L[MIX_T][MIX_P * MIX_P]; /* Sigma_c = L L^T, L lower triangular */
  double logdetL[MIX_T], nu, c0;
} tmix;

/* v = L^-1 x */
static void tm_solve(const double *L, const double *x, double *v) {
  for (int a = 0; a < MIX_P; a++) {
    double t = x[a];
    for (int k = 0; k < a; k++) t -= L[a * MIX_P + k] * v[k];
    v[a] = t / L[a * MIX_P + a];
  }
}

/* -log p(w) and its gradient */
static double tm_fg(const double *w, double *g, void *u) {
  const tmix *t = u;
  double lw[MIX_T], r[MIX_T][MIX_P], v[MIX_P], d[MIX_P], mx = -INFINITY;
  for (int c = 0; c < MIX_T; c++) {
    for (int a = 0; a < MIX_P; a++) d[a] = w[a] - t->m[c][a];
    tm_solve(t->L[c], d, v);
    double delta = 0;
    for (int a = 0; a < MIX_P; a++) delta += v[a] * v[a];
    lw[c] = t->c0 - t->logdetL[c] - 0.5 * (t->nu + MIX_P) * log1p(delta / t->nu);
    mx = fmax(mx, lw[c]);
    if (!g) continue;
    for (int a = MIX_P - 1; a >= 0; a--) { /* r = L^-T v = Sigma^-1 (w - m) */
      double s = v[a];
      for (int k = a + 1; k < MIX_P; k++) s -= t->L[c][k * MIX_P + a] * r[c][k];
      r[c][a] = s / t->L[c][a * MIX_P + a];
    }
    const double f = (t->nu + MIX_P) / (t->nu + delta);
    for (int a = 0; a < MIX_P; a++) r[c][a] *= f; /* -grad log t_c */
  }
  double z = 0;
  for (int c = 0; c < MIX_T; c++) z += exp(lw[c] - mx);
  if (g) {
    memset(g, 0, MIX_P * sizeof *g);
    for (int c = 0; c < MIX_T; c++)
      for (int a = 0; a < MIX_P; a++) g[a] += exp(lw[c] - mx) / z * r[c][a];
  }
  return -(mx + log(z / MIX_T));
}

static double tm_f(const double *w, void *u) { return tm_fg(w, NULL, u); }

static void tm_make(tmix *t, uint64_t seed) {
  kvi_rng r = kvi_rng_stream(seed, 0x7);
  t->nu = 5;
  t->c0 = lgamma(0.5 * (t->nu + MIX_P)) - lgamma(0.5 * t->nu) - 0.5 * MIX_P * log(t->nu * M_PI);
  for (int c = 0; c < MIX_T; c++) {
    kvi_rng_normal_f64(&r, t->m[c], MIX_P);
    for (int a = 0; a < MIX_P; a++) t->m[c][a] *= 2;
    double u[MIX_P];
    kvi_rng_normal_f64(&r, t->L[c], MIX_P * MIX_P);
    kvi_rng_normal_f64(&r, u, MIX_P);
    t->logdetL[c] = 0;
    for (int a = 0; a < MIX_P; a++)
      for (int b = 0; b < MIX_P; b++) {
        double *e = &t->L[c][a * MIX_P + b];
        if (b > a)
          *e = 0;
        else if (b == a)
          *e = 0.4 + 0.3 * fabs(u[a]), t->logdetL[c] += log(*e);
        else
          *e *= b >= a - 3 ? 0.15 : 0; /* correlations between neighbouring coordinates */
      }
  }
}

/* Student-t marginal of coordinate a of component c at x, and the Gaussian marginal. */
static double tm_marginal(const tmix *t, int a, double x) {
  double s = 0;
  for (int c = 0; c < MIX_T; c++) {
    double var = 0;
    for (int k = 0; k <= a; k++) var += t->L[c][a * MIX_P + k] * t->L[c][a * MIX_P + k];
    const double z = (x - t->m[c][a]) / sqrt(var), nu = t->nu;
    s += exp(lgamma(0.5 * (nu + 1)) - lgamma(0.5 * nu) - 0.5 * log(nu * M_PI * var) -
             0.5 * (nu + 1) * log1p(z * z / nu)) /
         MIX_T;
  }
  return s;
}

static int cmd_mixture(int argc, char **argv) {
  const char *out = arg_str(argc, argv, "--out", "bench/results/geom/mixture80.csv");
  const int iters = (int)arg_num(argc, argv, "--iters", 1500);
  const double beta = arg_num(argc, argv, "--beta", 0.1);
  tmix *t = xalloc(sizeof *t);
  tm_make(t, 3);
  kvi_lie_problem pb = {MIX_P, tm_f, tm_fg, NULL, t, NAN, "tmix80", NULL, NULL};
  kvi_lie_group g = group_of("up5", MIX_P);
  double *mu = xalloc((size_t)MIX_K * MIX_P * sizeof *mu);
  double *B = xalloc((size_t)MIX_K * MIX_P * MIX_P * sizeof *B);
  kvi_rng r = kvi_rng_stream(5, 0x9);
  kvi_rng_normal_f64(&r, mu, (size_t)MIX_K * MIX_P);
  for (int i = 0; i < MIX_K * MIX_P; i++) mu[i] *= 2; /* spread as the target's means */
  for (int k = 0; k < MIX_K; k++)
    for (int a = 0; a < MIX_P; a++) B[(size_t)k * MIX_P * MIX_P + a * MIX_P + a] = 1;
  kvi_lie_report rep;
  double logw[MIX_K] = {0};
  if (kvi_lie_mixture_fit(&pb, &g, MIX_K, mu, B, logw, iters, 10, beta, 9, &rep)) {
    fprintf(stderr, "bench_lie: %s\n", kvi_last_error());
    return 1;
  }
  /* marginal variances of q's components: diag of (B B^T)^-1 = column sums of squares of B^-1 */
  double *var = xalloc((size_t)MIX_K * MIX_P * sizeof *var),
         *Ri = xalloc(MIX_P * MIX_P * sizeof *Ri);
  int ipiv[MIX_P];
  for (int k = 0; k < MIX_K; k++) {
    memcpy(Ri, B + (size_t)k * MIX_P * MIX_P, MIX_P * MIX_P * sizeof *Ri);
    if (LAPACKE_dgetrf(LAPACK_ROW_MAJOR, MIX_P, MIX_P, Ri, MIX_P, ipiv) ||
        LAPACKE_dgetri(LAPACK_ROW_MAJOR, MIX_P, Ri, MIX_P, ipiv))
      return 1;
    for (int a = 0; a < MIX_P; a++) {
      double s = 0;
      for (int i = 0; i < MIX_P; i++) s += Ri[i * MIX_P + a] * Ri[i * MIX_P + a];
      var[k * MIX_P + a] = s;
    }
  }
  FILE *f = fopen(out, "w");
  if (!f) {
    fprintf(stderr, "bench_lie: cannot write %s\n", out);
    return 1;
  }
  fprintf(f, "dim,x,target,fit\n");
  printf(
      "80-d Student-t mixture (5 components) fitted by 10 Gaussians, B block upper-triangular "
      "k = 5, beta %g: %d iterations, %ld gradient evaluations, %.1f s\n\n",
      beta, rep.iters, rep.gevals, rep.seconds);
  printf("| coordinate | L1 distance of the marginals |\n|---|---|\n");
  double mean_l1 = 0;
  for (int a = 0; a < 8; a++) {
    double lo = INFINITY, hi = -INFINITY;
    for (int c = 0; c < MIX_T; c++) lo = fmin(lo, t->m[c][a] - 5), hi = fmax(hi, t->m[c][a] + 5);
    const int G = 400;
    double l1 = 0;
    for (int i = 0; i < G; i++) {
      const double x = lo + (hi - lo) * i / (G - 1), pt = tm_marginal(t, a, x);
      double q = 0;
      for (int k = 0; k < MIX_K; k++) {
        const double v = var[k * MIX_P + a], z = x - mu[k * MIX_P + a];
        q += exp(logw[k] - 0.5 * z * z / v) / sqrt(2 * M_PI * v);
      }
      l1 += fabs(pt - q) * (hi - lo) / (G - 1);
      fprintf(f, "%d,%.6f,%.6e,%.6e\n", a, x, pt, q);
    }
    mean_l1 += l1 / 8;
    printf("| %d | %.3f |\n", a, l1);
  }
  printf("| mean | %.3f |\n", mean_l1);
  fclose(f);
  printf("\nmarginals written to %s (python3 bench/lie_marginals.py %s plots them)\n", out, out);
  free(t), free(mu), free(B), free(var), free(Ri);
  return 0;
}
