/* The stochastic Lanczos log det of the MN+DIAG covariance (docs/prob.md §3):
 *  1. on random layers small enough for a dense Cholesky: the estimate against the exact log
 *     det (error, standard error over the probes) and against Minkowski's bound;
 *  2. with --checkpoint PATH (an mn-diag net): per weight layer Minkowski's bound, the estimate
 *     (and the exact value where nm <= 6000), the KL gap it closes, and the seconds of one call
 *     with its gradient (what a training step adds).
 * Usage: bench_slq [--checkpoint PATH] [--probes P] [--steps K] [--threads N] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/train.h"

static void small_layers(int probes, int steps) {
  printf("random layers (log_d ~ -1 + spread N(0,1)), %d probes x %d Lanczos steps\n\n", probes,
         steps);
  printf("| n x m | spread | exact | slq | error | std. error | Minkowski | gap closed |\n");
  printf("|---|---|---|---|---|---|---|---|\n");
  const int sizes[][2] = {{10, 8}, {20, 10}, {40, 20}, {60, 50}};
  const double spreads[] = {0.5, 1.0, 2.0};
  for (int k = 0; k < 4; k++)
    for (int sp = 0; sp < 3; sp++) {
      const int n = sizes[k][0], m = sizes[k][1];
      kvi_real *M = calloc((size_t)n * m, sizeof *M), *ld = malloc((size_t)n * m * sizeof *ld);
      kvi_real *A = calloc((size_t)n * n, sizeof *A), *B = calloc((size_t)m * m, sizeof *B);
      kvi_rng r = kvi_rng_stream(7, (uint64_t)(k * 3 + sp));
      kvi_rng_normal(&r, ld, (size_t)n * m);
      for (int i = 0; i < n * m; i++) ld[i] = (kvi_real)(-1 + spreads[sp] * ld[i]);
      kvi_rng_normal(&r, A, (size_t)n * n);
      kvi_rng_normal(&r, B, (size_t)m * m);
      for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) A[i * n + j] = i == j ? (kvi_real)(0.1 * A[i * n + j]) : 0;
      for (int i = 0; i < m; i++)
        for (int j = i; j < m; j++) B[i * m + j] = i == j ? (kvi_real)(0.1 * B[i * m + j]) : 0;
      for (int i = 0; i < n * n; i++) A[i] *= (kvi_real)(i % (n + 1) ? 0.3 : 1);
      kvi_mndiag q = {{n, m, M, A, B}, ld, NULL};
      kvi_slq_config c = {probes, steps, 1, 5};
      kvi_slq *s = NULL;
      double ex, est, se, lb;
      if (kvi_slq_create(&s, n, m, &c) || kvi_mndiag_logdet_exact(&ex, &q) ||
          kvi_mndiag_logdet_slq(&est, &se, &q, s, NULL, 0) ||
          kvi_mndiag_logdet_lower(&lb, &q, NULL, 0)) {
        fprintf(stderr, "bench_slq: %s\n", kvi_last_error());
        exit(1);
      }
      printf("| %d x %d | %.1f | %.3f | %.3f | %+.3f | %.3f | %.3f | %.2f%% |\n", n, m, spreads[sp],
             ex, est, est - ex, se, lb, 100 * (1 - fabs(est - ex) / (ex - lb)));
      kvi_slq_free(s);
      free(M), free(ld), free(A), free(B);
    }
}

static void checkpoint_layers(const char *path, int probes, int steps) {
  kvi_net *net = NULL;
  if (kvi_checkpoint_load(path, &net, NULL, NULL)) {
    fprintf(stderr, "bench_slq: %s\n", kvi_last_error());
    exit(1);
  }
  printf("\n%s (%s): per weight layer, %d probes x %d steps\n\n", path, net->arch, probes, steps);
  printf(
      "| layer | n x m | Minkowski | slq (std. error) | exact | KL lower by | s per call "
      "with gradient |\n|---|---|---|---|---|---|---|\n");
  double total = 0;
  int nw = 0;
  kvi_net_dense(net, 0, &nw);
  for (int k = 0; k < nw; k++) {
    kvi_dense *d = kvi_net_dense(net, k, NULL);
    if (d->family != KVI_FAMILY_MNDIAG) continue;
    const kvi_params *p = net->params;
    kvi_mndiag q = {{d->n, d->m, kvi_params_data(p, d->iM), kvi_params_data(p, d->iA),
                     kvi_params_data(p, d->iB)},
                    kvi_params_data(p, d->iS),
                    NULL};
    kvi_slq_config c = {probes, steps, 1, 9};
    kvi_slq *s = NULL;
    double lb, est, se, ex = NAN;
    if (kvi_slq_create(&s, d->n, d->m, &c) || kvi_mndiag_logdet_lower(&lb, &q, NULL, 0) ||
        kvi_mndiag_logdet_slq(&est, &se, &q, s, NULL, 0)) {
      fprintf(stderr, "bench_slq: %s\n", kvi_last_error());
      exit(1);
    }
    if ((int64_t)d->n * d->m <= 6000) kvi_mndiag_logdet_exact(&ex, &q);
    /* one training step's call: fresh basis, 2 probes, with the gradient */
    kvi_slq_config c2 = {2, steps, 1, 9};
    kvi_slq *s2 = NULL;
    size_t nn = (size_t)d->n * d->n, mm = (size_t)d->m * d->m, nm = (size_t)d->n * d->m;
    kvi_real *g = calloc(nn + mm + 2 * nm, sizeof *g);
    kvi_mndiag_grad gr = {{g, g + nm, g + nm + nn}, g + nm + nn + mm};
    double t0 = kvi_time_now(), e2;
    if (kvi_slq_create(&s2, d->n, d->m, &c2) || kvi_mndiag_logdet_slq(&e2, NULL, &q, s2, &gr, 1)) {
      fprintf(stderr, "bench_slq: %s\n", kvi_last_error());
      exit(1);
    }
    const double secs = kvi_time_now() - t0;
    char exs[32] = "-";
    if (ex == ex) snprintf(exs, sizeof exs, "%.1f", ex);
    printf("| %s | %d x %d | %.1f | %.1f (%.1f) | %s | %.1f | %.2f |\n", d->name, d->n, d->m, lb,
           est, se, exs, 0.5 * (est - lb), secs);
    total += 0.5 * (est - lb);
    kvi_slq_free(s), kvi_slq_free(s2);
    free(g);
  }
  printf(
      "\nKL(q || p) lower by %.1f nats in all: the negative ELBO per training example lower by "
      "%.3g for N = 60000 (the KL enters as KL / N)\n",
      total, total / 60000);
  kvi_net_free(net);
}

int main(int argc, char **argv) {
  const char *ckpt = NULL;
  int probes = 10, steps = 20, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--checkpoint")) ckpt = argv[i + 1];
    if (!strcmp(argv[i], "--probes")) probes = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
  }
  kvi_set_threads(threads);
  if (!ckpt) small_layers(probes, steps);
  if (ckpt) checkpoint_layers(ckpt, probes, steps);
  return 0;
}
