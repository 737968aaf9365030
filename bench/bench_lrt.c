/* Benchmark of one batched local-reparameterization step (forward + backward with dX) for the
 * DIAG, MN and MN+DIAG posteriors, single precision. Prints the median of --reps repetitions
 * (default 31) after --warmup repetitions (default 5), and the MN/DIAG ratio.
 *   bench_lrt [--threads N] [--reps R] [--warmup W] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/prob.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static kvi_real *rnd(kvi_rng *r, size_t cnt, double scale, double shift) {
  kvi_real *p = kvi_alloc(cnt * sizeof *p);
  if (!p) exit(1);
  kvi_rng_normal(r, p, cnt);
  for (size_t k = 0; k < cnt; k++) p[k] = (kvi_real)(scale * p[k] + shift);
  return p;
}

static kvi_real *chol(kvi_rng *r, int n) {
  kvi_real *P = rnd(r, (size_t)n * n, 0.02, 0);
  for (int i = 0; i < n; i++) P[(size_t)i * n + i] = (kvi_real)-1.0;
  return P;
}

enum { K_DIAG, K_MN, K_MNDIAG, NK };

/* One posterior of each kind with its inputs, gradients and workspace. */
typedef struct {
  int B, n, m;
  kvi_real *X, *e1, *e2, *dY, *Y, *dX, *M, *ls, *A, *Bf, *gM, *gls, *gA, *gB;
  void *ws;
} bcase;

static void bcase_init(bcase *c, int kind, int B, int n, int m) {
  kvi_rng r = kvi_rng_stream(1, (uint64_t)kind * 1000 + (uint64_t)n + m);
  size_t nm = (size_t)n * m;
  c->B = B, c->n = n, c->m = m;
  c->X = rnd(&r, (size_t)B * n, 1, 0), c->e1 = rnd(&r, (size_t)B * m, 1, 0);
  c->e2 = rnd(&r, (size_t)B * m, 1, 0), c->dY = rnd(&r, (size_t)B * m, 1, 0);
  c->Y = kvi_alloc((size_t)B * m * sizeof *c->Y);
  c->dX = kvi_alloc((size_t)B * n * sizeof *c->dX);
  c->M = rnd(&r, nm, 0.05, 0), c->ls = rnd(&r, nm, 0.1, -3);
  c->A = chol(&r, n), c->Bf = chol(&r, m);
  c->gM = kvi_alloc(nm * sizeof *c->gM), c->gls = kvi_alloc(nm * sizeof *c->gls);
  c->gA = kvi_alloc((size_t)n * n * sizeof *c->gA);
  c->gB = kvi_alloc((size_t)m * m * sizeof *c->gB);
  size_t wsz = kind == K_DIAG ? kvi_diag_lrt_ws_size(B, n, m)
               : kind == K_MN ? kvi_mn_lrt_ws_size(B, n, m)
                              : kvi_mndiag_lrt_ws_size(B, n, m);
  c->ws = kvi_alloc(wsz);
  if (!c->ws || !c->Y || !c->dX || !c->gM || !c->gls || !c->gA || !c->gB) exit(1);
}

static void bcase_free(bcase *c) {
  kvi_real *bufs[] = {c->X,  c->e1, c->e2, c->dY, c->Y,   c->dX, c->M,
                      c->ls, c->A,  c->Bf, c->gM, c->gls, c->gA, c->gB};
  for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) kvi_free(bufs[k]);
  kvi_free(c->ws);
}

/* seconds of one forward + backward (with dX) */
static double step(int kind, bcase *c) {
  const int B = c->B, n = c->n, m = c->m;
  kvi_diag qd = {n, m, c->M, c->ls};
  kvi_diag_grad gd = {c->gM, c->gls};
  kvi_mndiag q = {{n, m, c->M, c->A, c->Bf}, c->ls, NULL};
  kvi_mndiag_grad g = {{c->gM, c->gA, c->gB}, c->gls};
  double t0 = kvi_time_now();
  kvi_status s;
  if (kind == K_DIAG) {
    s = kvi_diag_lrt_forward(c->Y, c->ws, &qd, c->X, c->e1, B);
    if (!s) s = kvi_diag_lrt_backward(&gd, c->dX, c->dY, c->ws, &qd, c->X, c->e1, B);
  } else if (kind == K_MN) {
    s = kvi_mn_lrt_forward(c->Y, c->ws, &q.mn, c->X, c->e1, B);
    if (!s) s = kvi_mn_lrt_backward(&g.mn, c->dX, c->dY, c->ws, &q.mn, c->X, c->e1, B);
  } else {
    s = kvi_mndiag_lrt_forward(c->Y, c->ws, &q, c->X, c->e1, c->e2, B);
    if (!s) s = kvi_mndiag_lrt_backward(&g, c->dX, c->dY, c->ws, &q, c->X, c->e1, c->e2, B);
  }
  double t = kvi_time_now() - t0;
  if (s) {
    fprintf(stderr, "bench_lrt: %s: %s\n", kvi_status_name(s), kvi_last_error());
    exit(1);
  }
  return t;
}

int main(int argc, char **argv) {
  int threads = 2, reps = 31, warmup = 5;
  for (int a = 1; a < argc; a++) {
    if (!strcmp(argv[a], "--threads") && a + 1 < argc)
      threads = atoi(argv[++a]);
    else if (!strcmp(argv[a], "--reps") && a + 1 < argc)
      reps = atoi(argv[++a]);
    else if (!strcmp(argv[a], "--warmup") && a + 1 < argc)
      warmup = atoi(argv[++a]);
    else {
      fprintf(stderr, "usage: %s [--threads N] [--reps R] [--warmup W]\n", argv[0]);
      return 2;
    }
  }
  if (threads < 1 || reps < 1 || warmup < 0) {
    fprintf(stderr, "bench_lrt: threads and reps must be positive\n");
    return 2;
  }
  kvi_set_threads(threads);
  const char *ct = getenv("OPENBLAS_CORETYPE");
  printf(
      "bench_lrt: precision %s, threads %d, BLAS core %s, OPENBLAS_CORETYPE=%s, median of %d "
      "reps after %d warm-up; time of one forward + backward (with dX)\n",
      KVI_REAL_NAME, threads, kvi_blas_core(), ct ? ct : "(unset)", reps, warmup);
  printf("%5s %5s %5s | %9s %9s %11s | %8s %11s | %9s %9s %8s\n", "B", "n", "m", "DIAG ms", "MN ms",
         "MN+DIAG ms", "MN/DIAG", "MNDIAG/DIAG", "DIAG min", "MN min", "min ratio");
  const int shapes[][3] = {{100, 784, 300}, {100, 300, 300}, {100, 300, 10}};
  double *t = malloc(sizeof(double) * NK * (size_t)reps);
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    bcase c[NK];
    for (int k = 0; k < NK; k++) bcase_init(&c[k], k, shapes[s][0], shapes[s][1], shapes[s][2]);
    /* the kinds are interleaved so that they see the same background load */
    for (int it = -warmup; it < reps; it++)
      for (int k = 0; k < NK; k++) {
        double tk = step(k, &c[k]);
        if (it >= 0) t[(size_t)k * reps + it] = tk;
      }
    double med[NK], mn[NK];
    for (int k = 0; k < NK; k++) {
      qsort(t + (size_t)k * reps, (size_t)reps, sizeof *t, cmp_double);
      med[k] = t[(size_t)k * reps + reps / 2] * 1e3;
      mn[k] = t[(size_t)k * reps] * 1e3;
      bcase_free(&c[k]);
    }
    printf("%5d %5d %5d | %9.3f %9.3f %11.3f | %8.2f %11.2f | %9.3f %9.3f %8.2f\n", shapes[s][0],
           shapes[s][1], shapes[s][2], med[K_DIAG], med[K_MN], med[K_MNDIAG],
           med[K_MN] / med[K_DIAG], med[K_MNDIAG] / med[K_DIAG], mn[K_DIAG], mn[K_MN],
           mn[K_MN] / mn[K_DIAG]);
  }
  free(t);
  return 0;
}
