/* Per-kernel timings of the elementwise hot spots of the Fashion-MNIST MLP step
 * (784-300-300-300-10, batch 100, f32): the ARD KL of each family summed over the four layers, Adam
 * over the MN parameters (full buffer vs skipping the Cholesky upper triangles), the MN ARD KL
 * and Adam as two passes against the KL inside Adam's pass (kvi_optimizer_step_ard, the trainer's
 * path; the two interleaved), ELU forward / backward and the LRT noise. With one thread the clock
 * is the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so that a loaded machine disturbs the numbers
 * less than wall time; with more threads it is wall time (the other threads' work would not be
 * counted). Median of R repetitions. Last, kvi_gemm's rate on the MLP's product shapes and on a
 * large square product (the ceiling that bounds a step made of such products).
 *
 *   bench_kernels [R [THREADS]]   (defaults 30 and 1) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kronvi/nn.h"
#include "kronvi/optim.h"
#include "kronvi/prob.h"

static int g_threads = 1;

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(g_threads > 1 ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

#define NL 4
static const int dims[NL + 1] = {784, 300, 300, 300, 10};

/* median ms of R runs of the statement (variadic: it may contain commas) */
#define TIME(label, R, ...)                         \
  do {                                              \
    double ts[256];                                 \
    for (int r_ = 0; r_ < (R); r_++) {              \
      double t0_ = cpu_now();                       \
      __VA_ARGS__;                                  \
      ts[r_] = 1e3 * (cpu_now() - t0_);             \
    }                                               \
    qsort(ts, (size_t)(R), sizeof *ts, cmp);        \
    printf("%-34s %8.3f ms\n", label, ts[(R) / 2]); \
  } while (0)

/* kvi_gemm's rate in GFLOP/s on the shapes of the MLP step (batch 100) and on a large square
 * product, the machine's ceiling: the point MLP step is 204 MFLOP of such products, so an epoch
 * (600 steps) takes at least 122 GFLOP / (this rate). */
static int gemm_rates(int R) {
  static const struct {
    const char *label;
    bool ta, tb;
    int M, N, K;
  } g[] = {{"gemm X W (100x784 . 784x300)", false, false, 100, 300, 784},
           {"gemm X W (100x300 . 300x300)", false, false, 100, 300, 300},
           {"gemm X^T D (784x100 . 100x300)", true, false, 784, 300, 100},
           {"gemm D W^T (100x300 . 300x300)", false, true, 100, 300, 300},
           {"gemm 1024 x 1024 x 1024", false, false, 1024, 1024, 1024}};
  const size_t big = 1024 * 1024;
  kvi_real *a = kvi_alloc(big * sizeof(kvi_real)), *b = kvi_alloc(big * sizeof(kvi_real));
  kvi_real *c = kvi_alloc(big * sizeof(kvi_real));
  if (!a || !b || !c) return kvi_free(a), kvi_free(b), kvi_free(c), 1;
  for (size_t i = 0; i < big; i++) a[i] = (kvi_real)(i % 7) * 0.1f, b[i] = (kvi_real)(i % 5) * 0.1f;
  for (size_t k = 0; k < sizeof g / sizeof g[0]; k++) {
    const int lda = g[k].ta ? g[k].M : g[k].K, ldb = g[k].tb ? g[k].K : g[k].N;
    const int reps = g[k].M >= 1024 ? 1 : 20;
    double ts[256];
    for (int r = 0; r < R; r++) {
      double t0 = cpu_now();
      for (int q = 0; q < reps; q++)
        kvi_gemm(g[k].ta, g[k].tb, g[k].M, g[k].N, g[k].K, 1, a, lda, b, ldb, 0, c, g[k].N);
      ts[r] = (cpu_now() - t0) / reps;
    }
    qsort(ts, (size_t)R, sizeof *ts, cmp);
    printf("%-34s %8.1f GFLOP/s\n", g[k].label,
           2e-9 * g[k].M * (double)g[k].N * g[k].K / ts[R / 2]);
  }
  kvi_free(a), kvi_free(b), kvi_free(c);
  return 0;
}

int main(int argc, char **argv) {
  int R = argc > 1 ? atoi(argv[1]) : 30;
  if (R < 1 || R > 256) R = 30;
  g_threads = argc > 2 ? atoi(argv[2]) : 1;
  if (g_threads < 1 || g_threads > 256) g_threads = 1;
  kvi_set_threads(g_threads);
  printf("bench_kernels: f32, %d thread%s, %s clock\n", g_threads, g_threads > 1 ? "s" : "",
         g_threads > 1 ? "wall" : "thread CPU");
  kvi_rng rng = kvi_rng_stream(1, 2);
  kvi_real *M[NL], *A[NL], *B[NL], *S[NL], *gM[NL], *gA[NL], *gB[NL], *gS[NL];
  size_t ntot = 0;
  for (int l = 0; l < NL; l++) {
    int n = dims[l], m = dims[l + 1];
    size_t nm = (size_t)n * m;
    M[l] = kvi_alloc(nm * sizeof(kvi_real)), gM[l] = kvi_alloc(nm * sizeof(kvi_real));
    S[l] = kvi_alloc(nm * sizeof(kvi_real)), gS[l] = kvi_alloc(nm * sizeof(kvi_real));
    A[l] = kvi_alloc((size_t)n * n * sizeof(kvi_real));
    gA[l] = kvi_alloc((size_t)n * n * sizeof(kvi_real));
    B[l] = kvi_alloc((size_t)m * m * sizeof(kvi_real));
    gB[l] = kvi_alloc((size_t)m * m * sizeof(kvi_real));
    kvi_rng_normal(&rng, M[l], nm);
    for (size_t k = 0; k < nm; k++) M[l][k] *= 0.05f, S[l][k] = -4.0f, gM[l][k] = gS[l][k] = 0;
    memset(A[l], 0, (size_t)n * n * sizeof(kvi_real));
    memset(B[l], 0, (size_t)m * m * sizeof(kvi_real));
    memset(gA[l], 0, (size_t)n * n * sizeof(kvi_real));
    memset(gB[l], 0, (size_t)m * m * sizeof(kvi_real));
    for (int i = 0; i < n; i++) A[l][(size_t)i * n + i] = -2;
    for (int j = 0; j < m; j++) B[l][(size_t)j * m + j] = -2;
    ntot += nm + (size_t)n * n + (size_t)m * m;
  }
  double v;
  TIME(
      "KL ARD diag (4 layers)", R, for (int l = 0; l < NL; l++) {
        kvi_diag q = {dims[l], dims[l + 1], M[l], S[l]};
        kvi_diag_grad g = {gM[l], gS[l]};
        if (kvi_diag_kl_ard(&v, &q, &g, 1e-5f)) return 1;
      });
  TIME(
      "KL ARD mn (4 layers)", R, for (int l = 0; l < NL; l++) {
        kvi_mn q = {dims[l], dims[l + 1], M[l], A[l], B[l]};
        kvi_mn_grad g = {gM[l], gA[l], gB[l]};
        if (kvi_mn_kl_ard(&v, &q, &g, 1e-5f)) return 1;
      });
  TIME(
      "KL ARD mn-diag (4 layers)", R, for (int l = 0; l < NL; l++) {
        kvi_mndiag q = {{dims[l], dims[l + 1], M[l], A[l], B[l]}, S[l], NULL};
        kvi_mndiag_grad g = {{gM[l], gA[l], gB[l]}, gS[l]};
        if (kvi_mndiag_kl_ard(&v, &q, &g, 1e-5f)) return 1;
      });

  /* Adam over an MN model's parameter buffer (M, A, B per layer) */
  kvi_params p;
  kvi_params_init(&p);
  for (int l = 0; l < NL; l++) {
    int idx;
    char nm[32];
    int64_t sh[3][2] = {{dims[l], dims[l + 1]}, {dims[l], dims[l]}, {dims[l + 1], dims[l + 1]}};
    snprintf(nm, sizeof nm, "fc%d.M", l);
    if (kvi_params_add(&p, nm, KVI_ROLE_MEAN, 2, sh[0], &idx)) return 1;
    snprintf(nm, sizeof nm, "fc%d.A", l);
    if (kvi_params_add(&p, nm, KVI_ROLE_CHOL, 2, sh[1], &idx)) return 1;
    snprintf(nm, sizeof nm, "fc%d.B", l);
    if (kvi_params_add(&p, nm, KVI_ROLE_CHOL, 2, sh[2], &idx)) return 1;
  }
  if (kvi_params_alloc(&p)) return 1;
  kvi_optimizer opt;
  kvi_opt_config oc = kvi_opt_config_default(KVI_OPT_ADAM);
  if (kvi_optimizer_init(&opt, &oc, &p)) return 1;
  kvi_rng_normal(&rng, p.grad, p.n);
  char lab[64];
  snprintf(lab, sizeof lab, "Adam (%.2f M, Cholesky upper skipped)", (double)p.n / 1e6);
  TIME(lab, R, kvi_optimizer_step(&opt, &p, 1e-3));

  /* the MN ARD KL of the four layers and Adam: two passes, or fused (interleaved) */
  for (int l = 0; l < NL; l++) {
    const kvi_view *w = &p.views[3 * l];
    for (size_t k = 0; k < w->size; k++) p.data[w->offset + k] = M[l][k];
    for (int f = 1; f <= 2; f++) {
      const kvi_view *c = &p.views[3 * l + f];
      memset(p.data + c->offset, 0, c->size * sizeof(kvi_real));
      for (int64_t i = 0; i < c->shape[0]; i++)
        p.data[c->offset + (size_t)(i * c->shape[0] + i)] = -2;
    }
  }
  kvi_ard_block blk[NL];
  double kls[NL];
  for (int l = 0; l < NL; l++)
    blk[l] = (kvi_ard_block){.mu = p.views[3 * l].offset,
                             .gscale = 1e-5f,
                             .kl = &kls[l],
                             .rows = dims[l],
                             .cols = dims[l + 1],
                             .A = p.views[3 * l + 1].offset,
                             .B = p.views[3 * l + 2].offset};
  double t2[2][256];
  for (int r = 0; r < R; r++) {
    double t0 = cpu_now();
    for (int l = 0; l < NL; l++) {
      kvi_mn q = {dims[l], dims[l + 1], p.data + blk[l].mu, p.data + blk[l].A, p.data + blk[l].B};
      kvi_mn_grad g = {p.grad + blk[l].mu, p.grad + blk[l].A, p.grad + blk[l].B};
      if (kvi_mn_kl_ard(&v, &q, &g, 1e-5f)) return 1;
    }
    if (kvi_optimizer_step(&opt, &p, 1e-3)) return 1;
    double t1 = cpu_now();
    if (kvi_optimizer_step_ard(&opt, &p, 1e-3, blk, NL)) return 1;
    t2[0][r] = 1e3 * (t1 - t0), t2[1][r] = 1e3 * (cpu_now() - t1);
  }
  for (int k = 0; k < 2; k++) {
    qsort(t2[k], (size_t)R, sizeof(double), cmp);
    printf("%-34s %8.3f ms\n", k ? "MN KL inside Adam (step_ard)" : "MN KL, then Adam",
           t2[k][R / 2]);
  }

  size_t na = 100 * (300 + 300 + 300);
  kvi_real *x = kvi_alloc(na * sizeof(kvi_real)), *y = kvi_alloc(na * sizeof(kvi_real));
  kvi_real *dx = kvi_alloc(na * sizeof(kvi_real));
  kvi_rng_normal(&rng, x, na);
  TIME("ELU forward (3 x 100 x 300)", R, kvi_act_forward(y, x, na, KVI_ACT_ELU));
  TIME("ELU backward (3 x 100 x 300)", R, kvi_act_backward(dx, x, x, y, na, KVI_ACT_ELU));
  size_t nz = 100 * (300 + 300 + 300 + 10);
  kvi_real *z = kvi_alloc(nz * sizeof(kvi_real));
  TIME("normals (91000)", R, kvi_rng_normal(&rng, z, nz));
  double s = 0;
  for (size_t k = 0; k < nz; k++) s += (double)z[k] * z[k];
  printf("(mean square of the last normals %.4f)\n", s / (double)nz);
  return gemm_rates(R) ? 1 : 0;
}
