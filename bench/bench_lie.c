/* Structured natural-gradient descent with matrix Lie groups (docs/geom.md sections 5-6).
 *
 * bench_lie opt [--dim D] [--seconds S] [--problem rosenbrock|dixon-price] [--group G]
 *     [--method ngd|search] [--monotone 1] [--no-header 1]
 *   The optimization table: iterations, function / gradient / Hessian evaluations and seconds
 *   to f - f* < 1e-6 on the chained Rosenbrock and Dixon-Price functions for structured NGD
 *   (dense, lower-triangular, block k = 5, diagonal, triangular-Toeplitz, hierarchical
 *   k = kb = 5 and sparse-Cholesky k = kb = 5 B; Hessian at the mean; --monotone 1: undoing every
 * rise of f) and the search from function values only (diagonal and block B; and in dimension 20
 * with dense and block B), each run capped at S seconds (default 20). The rows "NGD, HVP" take the
 * Hessian-vector- product path (the problem without its dense Hessian; block k = 5, diagonal,
 *   lower-triangular and sparse-Cholesky B): their Hessian column counts the HVPs and Hessian
 * diagonals.
 *
 * bench_lie logreg [--data DIR] [--iters T] [--part ref|table|long]
 *   Bayesian logistic regression on Fashion-MNIST T-shirt/top (0) against shirt (6), 2000
 *   training images average-pooled 4 x 4 to 49 standardized features plus a bias, prior
 *   N(0, I): the ELBO (Gauss-Hermite quadrature per example) of structured NGD with Price
 *   estimates for the four groups against a long dense run.
 *
 * bench_lie mixture [--out CSV] [--iters T]
 *   An 80-dimensional mixture of five Student-t densities fitted by a mixture of ten Gaussians
 *   with block upper-triangular B (k = 5); the first 8 marginals of both on a grid go to CSV
 *   (bench/lie_marginals.py plots them).
 *
 * bench_lie check
 *   The benchmark targets' gradients and Hessians against central differences
 *   (tests/cli/bench_lie_check.sh runs it).
 *
 * Single-threaded BLAS; double precision throughout. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/data.h"
#include "kronvi/geom.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static const char *arg_str(int argc, char **argv, const char *name, const char *def) {
  for (int i = 2; i + 1 < argc; i++)
    if (!strcmp(argv[i], name)) return argv[i + 1];
  return def;
}

static double arg_num(int argc, char **argv, const char *name, double def) {
  const char *s = arg_str(argc, argv, name, NULL);
  return s ? atof(s) : def;
}

static void *xalloc(size_t bytes) {
  void *p = calloc(1, bytes ? bytes : 1);
  if (!p) {
    fprintf(stderr, "bench_lie: out of memory\n");
    exit(1);
  }
  return p;
}

static kvi_lie_group group_of(const char *name, int p) {
  kvi_lie_group g;
  if (kvi_lie_group_parse(&g, name, p)) {
    fprintf(stderr, "bench_lie: %s\n", kvi_last_error());
    exit(1);
  }
  return g;
}

/* ---- opt ------------------------------------------------------------------------------------ */
static const char *opt_group = "", *opt_method = ""; /* --group, --method filters */
static bool opt_monotone; /* --monotone 1: NGD undoes any rise of f (kvi_lie_opts.monotone) */

static void opt_row(const kvi_lie_problem *pb, const char *method, const char *gname,
                    kvi_lie_estimator est, double seconds) {
  const int p = pb->dim;
  if (opt_group[0] && strcmp(opt_group, gname)) return;
  if (opt_method[0] && strcmp(opt_method, est == KVI_LIE_EST_VALUES ? "search" : "ngd")) return;
  kvi_lie_opts o = kvi_lie_opts_default(group_of(gname, p));
  o.est = est, o.max_iter = 100000000, o.max_seconds = seconds, o.tol = 1e-6;
  o.monotone = opt_monotone && est != KVI_LIE_EST_VALUES;
  double *mu = xalloc((size_t)p * sizeof *mu), *B = xalloc((size_t)p * p * sizeof *B);
  for (int i = 0; i < p; i++) mu[i] = !strcmp(pb->name, "rosenbrock") ? (i % 2 ? 1.0 : -1.2) : 1;
  if (kvi_lie_start(pb, &o, mu, B)) {
    fprintf(stderr, "bench_lie: %s\n", kvi_last_error());
    exit(1);
  }
  kvi_lie_report r;
  kvi_status s = kvi_lie_minimize(pb, &o, mu, B, &r);
  char hc[64];
  if (r.hvps || r.hdiags)
    snprintf(hc, sizeof hc, "%ld HVP + %ld diag", r.hvps, r.hdiags);
  else
    snprintf(hc, sizeof hc, "%ld", r.hevals);
  printf("| %s-%d | %s%s (%s) | %s%d | %ld | %ld | %s | %.2f | %.2e |\n", pb->name, p, method,
         o.monotone ? ", monotone" : "", gname, r.converged ? "" : "> ", r.iters, r.fevals,
         r.gevals, hc, r.seconds, r.f);
  if (s) printf("|   | (stopped: %s) | | | | | | |\n", kvi_last_error());
  fflush(stdout);
  free(mu), free(B);
}

static int cmd_opt(int argc, char **argv) {
  const int p = (int)arg_num(argc, argv, "--dim", 200);
  const double sec = arg_num(argc, argv, "--seconds", 20);
  const char *only = arg_str(argc, argv, "--problem", "");
  opt_group = arg_str(argc, argv, "--group", "");
  opt_method = arg_str(argc, argv, "--method", "");
  opt_monotone = arg_num(argc, argv, "--monotone", 0) != 0;
  const bool header = !arg_str(argc, argv, "--no-header", NULL);
  if (header) {
    printf(
        "structured NGD to f - f* < 1e-6 (\"> N\": not reached within the time cap, the "
        "seconds column; f: the last value)\n\n");
    printf(
        "| problem | method (B) | iterations | f evals | grad evals | Hessian evals | seconds | f "
        "|\n");
    printf("|---|---|---|---|---|---|---|---|\n");
  }
  for (int prob = 0; prob < 2; prob++) {
    kvi_lie_problem pb = prob ? kvi_lie_problem_dixon_price(p) : kvi_lie_problem_rosenbrock(p);
    if (only[0] && strcmp(only, pb.name)) continue;
    const char *groups[7] = {"dense", "tril", "up5", "diag", "toeplitz", "hier5,5", "spchol5,5"};
    for (int g = 0; g < 7; g++) opt_row(&pb, "NGD, Hessian", groups[g], KVI_LIE_EST_MEAN, sec);
    kvi_lie_problem hv = pb; /* no dense Hessian: the HVP path */
    hv.hess = NULL;
    const char *hgroups[4] = {"up5", "diag", "tril", "spchol5,5"};
    for (int g = 0; g < 4; g++) opt_row(&hv, "NGD, HVP", hgroups[g], KVI_LIE_EST_MEAN, sec);
    opt_row(&pb, "search, values", "diag", KVI_LIE_EST_VALUES, sec);
    opt_row(&pb, "search, values", "up5", KVI_LIE_EST_VALUES, sec);
    const int ps = p < 20 ? p : 20; /* the search where it reaches 1e-6 in the time */
    kvi_lie_problem small = prob ? kvi_lie_problem_dixon_price(ps) : kvi_lie_problem_rosenbrock(ps);
    opt_row(&small, "search, values", "dense", KVI_LIE_EST_VALUES, sec);
    opt_row(&small, "search, values", "up5", KVI_LIE_EST_VALUES, sec);
  }
  return 0;
}

/* ---- logistic regression ------------------------------------------------------------------ */
typedef struct {
  int n, p;
  double *X;  /* n x p, last column 1 */
  double *Xs; /* scratch n x p */
  double *y;  /* +-1 */
  double alpha;
} logreg;

static double sigm(double t) { return t >= 0 ? 1 / (1 + exp(-t)) : exp(t) / (1 + exp(t)); }
static double log1pexp(double t) { return t > 0 ? t + log1p(exp(-t)) : log1p(exp(t)); }

/* l(w) = sum log(1 + exp(-y x.w)) + alpha/2 |w|^2 */
static double lr_fg(const double *w, double *g, void *u) {
  const logreg *d = u;
  double f = 0;
  if (g)
    for (int j = 0; j < d->p; j++) g[j] = d->alpha * w[j];
  for (int i = 0; i < d->n; i++) {
    const double *x = d->X + (size_t)i * d->p;
    double t = 0;
    for (int j = 0; j < d->p; j++) t += x[j] * w[j];
    f += log1pexp(-d->y[i] * t);
    if (g) {
      const double c = -d->y[i] * sigm(-d->y[i] * t);
      for (int j = 0; j < d->p; j++) g[j] += c * x[j];
    }
  }
  for (int j = 0; j < d->p; j++) f += 0.5 * d->alpha * w[j] * w[j];
  return f;
}

static double lr_f(const double *w, void *u) { return lr_fg(w, NULL, u); }

/* H = X^T diag(s) X + alpha I, s = sigma (1 - sigma), by one syrk on the scaled rows. */
static void lr_hess(const double *w, double *H, void *u) {
  const logreg *d = u;
  const int p = d->p;
  for (int i = 0; i < d->n; i++) {
    const double *x = d->X + (size_t)i * p;
    double t = 0;
    for (int j = 0; j < p; j++) t += x[j] * w[j];
    const double s = sqrt(sigm(t) * (1 - sigm(t)));
    for (int j = 0; j < p; j++) d->Xs[(size_t)i * p + j] = s * x[j];
  }
  cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, p, d->n, 1, d->Xs, p, 0, H, p);
  for (int a = 0; a < p; a++) {
    H[(size_t)a * p + a] += d->alpha;
    for (int b = 0; b < a; b++) H[(size_t)b * p + a] = H[(size_t)a * p + b];
  }
}

/* The ELBO of N(mu, (B B^T)^-1): 20-point Gauss-Hermite quadrature of E log sigma(y x.w) per
 * example (x.w ~ N(x.mu, |B^-1 x|^2)), the prior term and the entropy in closed form. */
static double lr_elbo(const logreg *d, const double *mu, const double *B) {
  static const double gx[10] = {0.2453407083009, 0.7374737285454, 1.2340762153953, 1.7385377121166,
                                2.2549740020893, 2.7888060584281, 3.3478545673832, 3.9447640401156,
                                4.6036824495507, 5.3874808900112};
  static const double gw[10] = {4.622436696006e-1, 2.866755053628e-1, 1.090172060200e-1,
                                2.481052088746e-2, 3.243773342238e-3, 2.283386360164e-4,
                                7.802556478532e-6, 1.086069370769e-7, 4.399340992273e-10,
                                2.229393645534e-13};
  const int p = d->p;
  double *L = xalloc((size_t)p * p * sizeof *L), *v = xalloc((size_t)p * sizeof *v);
  /* Sigma = (B B^T)^-1: solve with the Cholesky factor of S = B B^T */
  for (int i = 0; i < p; i++)
    for (int j = 0; j <= i; j++) {
      double s = 0;
      for (int k = 0; k < p; k++) s += B[(size_t)i * p + k] * B[(size_t)j * p + k];
      L[(size_t)i * p + j] = s;
    }
  for (int j = 0; j < p; j++) { /* in-place Cholesky (lower) */
    double s = L[(size_t)j * p + j];
    for (int k = 0; k < j; k++) s -= L[(size_t)j * p + k] * L[(size_t)j * p + k];
    L[(size_t)j * p + j] = sqrt(s);
    for (int i = j + 1; i < p; i++) {
      double t = L[(size_t)i * p + j];
      for (int k = 0; k < j; k++) t -= L[(size_t)i * p + k] * L[(size_t)j * p + k];
      L[(size_t)i * p + j] = t / L[(size_t)j * p + j];
    }
  }
  double e = 0, tr = 0, logdetS = 0;
  for (int j = 0; j < p; j++) logdetS += 2 * log(L[(size_t)j * p + j]);
  for (int i = 0; i <= d->n; i++) { /* i = n: the trace of Sigma through the unit vectors */
    for (int c = 0; c < (i < d->n ? 1 : p); c++) {
      const double *x = i < d->n ? d->X + (size_t)i * p : NULL;
      for (int a = 0; a < p; a++) { /* v = L^-1 x: x^T S^-1 x = |v|^2 */
        double t = x ? x[a] : (a == c);
        for (int k = 0; k < a; k++) t -= L[(size_t)a * p + k] * v[k];
        v[a] = t / L[(size_t)a * p + a];
      }
      double var = 0;
      for (int a = 0; a < p; a++) var += v[a] * v[a];
      if (!x) {
        tr += var;
        continue;
      }
      double m = 0;
      for (int a = 0; a < p; a++) m += x[a] * mu[a];
      const double sd = sqrt(2 * var);
      double q = 0;
      for (int k = 0; k < 10; k++)
        for (int sgn = -1; sgn <= 1; sgn += 2)
          q += gw[k] * -log1pexp(-d->y[i] * (m + sgn * sd * gx[k]));
      e += q / sqrt(M_PI);
    }
  }
  double mm = 0;
  for (int a = 0; a < p; a++) mm += mu[a] * mu[a];
  const double prior = -0.5 * d->alpha * (mm + tr) + 0.5 * p * log(d->alpha / (2 * M_PI));
  const double entropy = 0.5 * p * (1 + log(2 * M_PI)) - 0.5 * logdetS;
  free(L), free(v);
  return e + prior + entropy;
}

static logreg lr_data(const char *dir) {
  kvi_dataset tr, te;
  kvi_dataset_init(&tr), kvi_dataset_init(&te);
  if (kvi_idx_load_dir(&tr, &te, dir, 0, 1)) {
    fprintf(stderr, "bench_lie: %s\n", kvi_last_error());
    exit(1);
  }
  logreg d = {0, 50, NULL, NULL, NULL, 1.0};
  d.X = xalloc((size_t)2000 * d.p * sizeof *d.X);
  d.Xs = xalloc((size_t)2000 * d.p * sizeof *d.Xs);
  d.y = xalloc(2000 * sizeof *d.y);
  for (int64_t r = 0; r < tr.n && d.n < 2000; r++) {
    const int lab = tr.y[r];
    if (lab != 0 && lab != 6) continue;
    double *x = d.X + (size_t)d.n * d.p;
    for (int by = 0; by < 7; by++) /* 4 x 4 average pooling of 28 x 28 pixels in [0, 1] */
      for (int bx = 0; bx < 7; bx++) {
        double s = 0;
        for (int dy = 0; dy < 4; dy++)
          for (int dx = 0; dx < 4; dx++) s += tr.x[r * 784 + (by * 4 + dy) * 28 + bx * 4 + dx];
        x[by * 7 + bx] = s / 16;
      }
    x[49] = 1;
    d.y[d.n++] = lab == 0 ? 1 : -1;
  }
  kvi_dataset_free(&tr), kvi_dataset_free(&te);
  for (int j = 0; j < 49; j++) { /* standardized features (the bias column stays 1) */
    double m = 0, v = 0;
    for (int i = 0; i < d.n; i++) m += d.X[(size_t)i * d.p + j] / d.n;
    for (int i = 0; i < d.n; i++) v += pow(d.X[(size_t)i * d.p + j] - m, 2) / d.n;
    for (int i = 0; i < d.n; i++)
      d.X[(size_t)i * d.p + j] = (d.X[(size_t)i * d.p + j] - m) / sqrt(v > 0 ? v : 1);
  }
  return d;
}

/* NGD on the ELBO with Price estimates; ELBO at the listed iterations into out. */
static double lr_run(const logreg *d, const char *gname, int iters, int samples, double beta,
                     const int *marks, int nmarks, double *out) {
  const int p = d->p;
  kvi_lie_problem pb = {p, lr_f, lr_fg, lr_hess, (void *)d, NAN, "logreg", NULL, NULL};
  kvi_lie_group g = group_of(gname, p);
  double *mu = xalloc((size_t)p * sizeof *mu), *B = xalloc((size_t)p * p * sizeof *B);
  double *gm = xalloc((size_t)p * sizeof *gm), *X = xalloc((size_t)p * p * sizeof *X);
  for (int i = 0; i < p; i++) B[(size_t)i * p + i] = sqrt(d->alpha); /* q = the prior */
  kvi_rng rng = kvi_rng_stream(11, 0x10);
  kvi_lie_report rep = {0};
  const double t0 = kvi_time_now();
  double sec = 0;
  int m = 0;
  for (int t = 1; t <= iters; t++) {
    if (kvi_lie_estimate(&pb, KVI_LIE_EST_PRICE, samples, 1, mu, B, &g, &rng, gm, X, &rep) ||
        kvi_lie_step(&g, mu, B, gm, X, beta, beta, NULL)) {
      fprintf(stderr, "bench_lie: %s at iteration %d (%s)\n", kvi_last_error(), t, gname);
      break;
    }
    if (m < nmarks && t == marks[m]) {
      sec = kvi_time_now() - t0; /* the ELBO's quadrature is not timed */
      out[m++] = lr_elbo(d, mu, B);
    }
  }
  free(mu), free(B), free(gm), free(X);
  return sec;
}

/* --part ref (the long dense run), table (the four groups at three step sizes), long (a long
 * DIAG run), or all; each part stays under three minutes. */
static int cmd_logreg(int argc, char **argv) {
  const char *dir = arg_str(argc, argv, "--data", "/usr/share/datasets/fashion-mnist");
  const char *part = arg_str(argc, argv, "--part", "all");
  const int iters = (int)arg_num(argc, argv, "--iters", 800);
  const bool all = !strcmp(part, "all");
  logreg d = lr_data(dir);
  printf("Bayesian logistic regression, Fashion-MNIST 0 vs 6, n = %d, p = %d, prior N(0, I)\n", d.n,
         d.p);
  double ref = NAN;
  if (all || !strcmp(part, "ref")) {
    const int rmarks[1] = {1000};
    const double rsec = lr_run(&d, "dense", 1000, 32, 0.05, rmarks, 1, &ref);
    printf(
        "reference: dense B, 1000 iterations of 32 Price samples, beta 0.05: ELBO %.3f (%.0f s)\n",
        ref, rsec);
  }
  if (all || !strcmp(part, "table")) {
    const int marks[4] = {iters / 16, iters / 4, iters / 2, iters};
    printf("\n| B | beta | ELBO after %d | after %d | after %d | after %d | seconds |\n", marks[0],
           marks[1], marks[2], marks[3]);
    printf("|---|---|---|---|---|---|---|\n");
    const char *groups[4] = {"dense", "tril", "up5", "diag"};
    const double betas[3] = {0.2, 0.05, 0.02};
    for (int g = 0; g < 4; g++)
      for (int b = 0; b < 3; b++) {
        double e[4] = {NAN, NAN, NAN, NAN};
        const double sec = lr_run(&d, groups[g], iters, 4, betas[b], marks, 4, e);
        printf("| %s | %.2f | %.3f | %.3f | %.3f | %.3f | %.1f |\n", groups[g], betas[b], e[0],
               e[1], e[2], e[3], sec);
        fflush(stdout);
      }
  }
  if (all || !strcmp(part, "long")) { /* how far the mean-field family itself is */
    const int lmarks[3] = {2 * iters, 5 * iters, 10 * iters};
    double le[3] = {NAN, NAN, NAN};
    const double lsec = lr_run(&d, "diag", 10 * iters, 4, 0.05, lmarks, 3, le);
    printf(
        "\nlong DIAG run (beta 0.05, 4 samples): ELBO %.3f after %d, %.3f after %d, %.3f after "
        "%d iterations (%.0f s)\n",
        le[0], lmarks[0], le[1], lmarks[1], le[2], lmarks[2], lsec);
  }
  free(d.X), free(d.Xs), free(d.y);
  return 0;
}

#include "bench_lie_mixture.h"

/* ---- check: the benchmark targets' gradients and Hessians against central differences ------ */
static double fd_worst(double (*fg)(const double *, double *, void *), void *u, int p, double *x,
                       const double *g) {
  double worst = 0;
  for (int i = 0; i < p; i++) {
    const double xi = x[i], h = 1e-6 * (1 + fabs(xi));
    x[i] = xi + h;
    const double fp = fg(x, NULL, u);
    x[i] = xi - h;
    const double fm = fg(x, NULL, u);
    x[i] = xi;
    worst = fmax(worst, fabs((fp - fm) / (2 * h) - g[i]) / (1 + fabs(g[i])));
  }
  return worst;
}

static int cmd_check(void) {
  kvi_rng r = kvi_rng_stream(2, 2);
  logreg d = {60, 6, NULL, NULL, NULL, 0.7};
  d.X = xalloc(360 * sizeof *d.X), d.Xs = xalloc(360 * sizeof *d.Xs),
  d.y = xalloc(60 * sizeof *d.y);
  kvi_rng_normal_f64(&r, d.X, 360);
  for (int i = 0; i < 60; i++) d.y[i] = i % 3 ? 1 : -1;
  double w[80], g[80], H[36], gp[6], gm[6], hw = 0, gw;
  kvi_rng_normal_f64(&r, w, 6);
  lr_fg(w, g, &d);
  gw = fd_worst(lr_fg, &d, 6, w, g);
  lr_hess(w, H, &d);
  for (int j = 0; j < 6; j++) { /* the Hessian's column j against differences of the gradient */
    const double wj = w[j], h = 1e-6;
    w[j] = wj + h, lr_fg(w, gp, &d);
    w[j] = wj - h, lr_fg(w, gm, &d);
    w[j] = wj;
    for (int i = 0; i < 6; i++)
      hw = fmax(hw, fabs((gp[i] - gm[i]) / (2 * h) - H[i * 6 + j]) / (1 + fabs(H[i * 6 + j])));
  }
  printf("logistic regression: gradient %.1e, Hessian %.1e (max relative error)\n", gw, hw);
  tmix *t = xalloc(sizeof *t);
  tm_make(t, 3);
  double tw = 0;
  for (int trial = 0; trial < 3; trial++) {
    kvi_rng_normal_f64(&r, w, MIX_P);
    for (int a = 0; a < MIX_P; a++) w[a] = t->m[trial][a] + 0.5 * w[a]; /* near a mode */
    tm_fg(w, g, t);
    tw = fmax(tw, fd_worst(tm_fg, t, MIX_P, w, g));
  }
  printf("80-d Student-t mixture: gradient %.1e\n", tw);
  free(d.X), free(d.Xs), free(d.y), free(t);
  const bool ok = gw < 1e-6 && hw < 1e-5 && tw < 1e-5;
  printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  kvi_set_threads(1);
  if (argc > 1 && !strcmp(argv[1], "check")) return cmd_check();
  if (argc > 1 && !strcmp(argv[1], "opt")) return cmd_opt(argc, argv);
  if (argc > 1 && !strcmp(argv[1], "logreg")) return cmd_logreg(argc, argv);
  if (argc > 1 && !strcmp(argv[1], "mixture")) return cmd_mixture(argc, argv);
  fprintf(stderr, "usage: bench_lie opt|logreg|mixture [options] (see the source's header)\n");
  return 2;
}
