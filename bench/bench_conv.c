/* Benchmark of the convolution layer (im2col + dense LRT), single precision: forward and backward
 * of one batch of 100 for the Fashion-MNIST CNN layer shapes (k = 3, pad = 1, stride 1), for each
 * family, sampled path (the same eps is reused: drawing it is the network's cost). The first
 * layer skips dX as the network does; "ws MB" is kvi_conv_ws_size. Prints the median of
 * --reps repetitions (default 21) after --warmup repetitions (default 3).
 * --direct-all takes the direct kernels wherever they exist (not only where the rule picks them).
 * --paths instead compares, for the mean network (point weights), the im2col + GEMM passes with
 * the direct kernels (src/nn/conv_direct.c) on the CNN's and the VGG-like network's layer shapes:
 * forward, backward without dX (the weight and bias gradients) and the extra cost of dX, both
 * paths interleaved; "pass" is what kvi_conv_forward / kvi_conv_backward choose.
 *   bench_conv [--threads N] [--reps R] [--warmup W] [--batch B] [--paths] [--direct-all] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/nn.h"
#include "nn/conv_internal.h" /* kvi__conv_direct_force */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct {
  int h, w, c_in, c_out;
} shape;

typedef struct {
  kvi_conv l;
  kvi_params p;
  void *ws;
  kvi_real *X, *eps, *Y, *dY, *dX;
} bcase;

static void die(const char *what) {
  fprintf(stderr, "bench_conv: %s: %s\n", what, kvi_last_error());
  exit(1);
}

static void bcase_init(bcase *c, const shape *s, kvi_family fam, int B) {
  kvi_params_init(&c->p);
  kvi_prior prior = fam == KVI_FAMILY_POINT ? KVI_PRIOR_NONE : KVI_PRIOR_ARD;
  if (kvi_conv_declare(&c->l, &c->p, "conv", s->h, s->w, s->c_in, s->c_out, 3, 1, 1, fam, prior,
                       1.0, true) ||
      kvi_params_alloc(&c->p))
    die("declare");
  kvi_rng r = kvi_rng_stream(1, (uint64_t)fam * 100 + (uint64_t)s->c_in);
  kvi_conv_init(&c->l, &c->p, &r, 2.0, -5.0);
  size_t nx = (size_t)B * s->h * s->w * s->c_in;
  size_t ny = (size_t)B * c->l.oh * c->l.ow * s->c_out, ne = kvi_conv_noise_size(&c->l, B);
  c->X = kvi_alloc(nx * sizeof *c->X), c->dX = kvi_alloc(nx * sizeof *c->dX);
  c->Y = kvi_alloc(ny * sizeof *c->Y), c->dY = kvi_alloc(ny * sizeof *c->dY);
  c->eps = kvi_alloc((ne + 1) * sizeof *c->eps);
  c->ws = kvi_alloc(kvi_conv_ws_size(&c->l, B));
  if (!c->X || !c->dX || !c->Y || !c->dY || !c->eps || !c->ws) die("alloc");
  kvi_rng_uniform(&r, c->X, nx); /* pixel-like, non-negative */
  kvi_rng_normal(&r, c->dY, ny);
  kvi_rng_normal(&r, c->eps, ne);
}

static void bcase_free(bcase *c) {
  kvi_free(c->X), kvi_free(c->dX), kvi_free(c->Y), kvi_free(c->dY), kvi_free(c->eps);
  kvi_free(c->ws);
  kvi_params_free(&c->p);
}

/* seconds of the forward and of the backward */
static void step(bcase *c, int B, bool need_dx, double *tf, double *tb) {
  const kvi_real *e = c->l.d.family == KVI_FAMILY_POINT ? NULL : c->eps;
  double t0 = kvi_time_now();
  if (kvi_conv_forward(c->Y, c->ws, &c->l, &c->p, c->X, e, B)) die("forward");
  double t1 = kvi_time_now();
  if (kvi_conv_backward(need_dx ? c->dX : NULL, &c->p, c->dY, c->ws, &c->l, c->X, e, B))
    die("backward");
  *tf = t1 - t0, *tb = kvi_time_now() - t1;
}

static double median(double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  return t[n / 2];
}

/* ms of the forward, the backward without dX and the extra of dX, with the direct kernels on
 * (force -1: as the passes choose) or off (0) */
static void path_times(bcase *c, int B, int force, double *t3, int rep, int reps) {
  kvi__conv_direct_force = force;
  double t0 = kvi_time_now();
  if (kvi_conv_forward(c->Y, c->ws, &c->l, &c->p, c->X, NULL, B)) die("forward");
  double t1 = kvi_time_now();
  if (kvi_conv_backward(NULL, &c->p, c->dY, c->ws, &c->l, c->X, NULL, B)) die("backward");
  double t2 = kvi_time_now();
  if (kvi_conv_backward(c->dX, &c->p, c->dY, c->ws, &c->l, c->X, NULL, B)) die("backward");
  double t3x = kvi_time_now();
  kvi__conv_direct_force = -1;
  t3[rep] = 1e3 * (t1 - t0), t3[reps + rep] = 1e3 * (t2 - t1);
  t3[2 * reps + rep] = 1e3 * ((t3x - t2) - (t2 - t1));
}

static int run_paths(int B, int reps, int warmup) {
  const shape shapes[] = {{28, 28, 1, 10},  {14, 14, 10, 20}, {7, 7, 20, 40},   {32, 32, 1, 10},
                          {32, 32, 10, 10}, {16, 16, 10, 20}, {16, 16, 20, 20}, {8, 8, 20, 40},
                          {8, 8, 40, 40},   {4, 4, 40, 20},   {4, 4, 20, 20}};
  double *t = malloc(sizeof(double) * 6 * (size_t)reps);
  if (!t) return 1;
  printf("%-13s | %-9s | %9s %9s | %9s %9s | %9s %9s\n", "layer", "pass", "fwd gemm", "direct",
         "bwd gemm", "direct", "dX gemm", "direct");
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    bcase c;
    bcase_init(&c, &shapes[s], KVI_FAMILY_POINT, B);
    for (int it = -warmup; it < reps; it++)
      for (int f = 0; f < 2; f++)
        path_times(&c, B, f ? -1 : 0, t + (size_t)f * 3 * reps, it < 0 ? 0 : it, reps);
    double m[6];
    for (int k = 0; k < 6; k++) m[k] = median(t + (size_t)k * reps, reps);
    char name[32];
    snprintf(name, sizeof name, "%dx%dx%d->%d", shapes[s].h, shapes[s].w, shapes[s].c_in,
             shapes[s].c_out);
    printf("%-13s | %-9s | %9.3f %9.3f | %9.3f %9.3f | %9.3f %9.3f\n", name,
           kvi__conv_direct(&c.l, NULL, B) ? "direct" : "im2col", m[0], m[3], m[1], m[4], m[2],
           m[5]);
    bcase_free(&c);
  }
  free(t);
  return 0;
}

int main(int argc, char **argv) {
  int threads = 2, reps = 21, warmup = 3, B = 100, paths = 0;
  for (int a = 1; a < argc; a++) {
    if (!strcmp(argv[a], "--threads") && a + 1 < argc)
      threads = atoi(argv[++a]);
    else if (!strcmp(argv[a], "--reps") && a + 1 < argc)
      reps = atoi(argv[++a]);
    else if (!strcmp(argv[a], "--warmup") && a + 1 < argc)
      warmup = atoi(argv[++a]);
    else if (!strcmp(argv[a], "--batch") && a + 1 < argc)
      B = atoi(argv[++a]);
    else if (!strcmp(argv[a], "--paths"))
      paths = 1;
    else if (!strcmp(argv[a], "--direct-all"))
      kvi__conv_direct_all = 1;
    else {
      fprintf(stderr,
              "usage: %s [--threads N] [--reps R] [--warmup W] [--batch B] [--paths] "
              "[--direct-all]\n",
              argv[0]);
      return 2;
    }
  }
  if (threads < 1 || reps < 1 || warmup < 0 || B < 1) {
    fprintf(stderr, "bench_conv: threads, reps and batch must be positive\n");
    return 2;
  }
  kvi_set_threads(threads);
  const char *ct = getenv("OPENBLAS_CORETYPE");
  printf(
      "bench_conv: precision %s, threads %d, BLAS core %s, OPENBLAS_CORETYPE=%s, batch %d, "
      "k=3 pad=1 stride=1, median of %d reps after %d warm-up (sampled path; first layer "
      "without dX)\n",
      KVI_REAL_NAME, threads, kvi_blas_core(), ct ? ct : "(unset)", B, reps, warmup);
  if (paths) {
    printf("mean network (point weights), ms per batch; SIMD %s\n", kvi_simd_isa());
    return run_paths(B, reps, warmup);
  }
  printf("%-13s %8s %-8s | %9s %9s %9s | %8s | %7s\n", "layer", "rows", "family", "fwd ms",
         "bwd ms", "total ms", "/point", "ws MB");
  const shape shapes[] = {{28, 28, 1, 10}, {14, 14, 10, 20}, {7, 7, 20, 40}, {3, 3, 40, 80}};
  const kvi_family fams[] = {KVI_FAMILY_POINT, KVI_FAMILY_DIAG, KVI_FAMILY_MN, KVI_FAMILY_MNDIAG};
  enum { NF = 4 };
  double *tf = malloc(sizeof(double) * NF * (size_t)reps);
  double *tb = malloc(sizeof(double) * NF * (size_t)reps);
  double *tt = malloc(sizeof(double) * (size_t)reps);
  if (!tf || !tb || !tt) return 1;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    bcase c[NF];
    for (int f = 0; f < NF; f++) bcase_init(&c[f], &shapes[s], fams[f], B);
    /* the families are interleaved so that they see the same background load */
    for (int it = -warmup; it < reps; it++)
      for (int f = 0; f < NF; f++) {
        double a, b;
        step(&c[f], B, s > 0, &a, &b);
        if (it >= 0) tf[(size_t)f * reps + it] = a, tb[(size_t)f * reps + it] = b;
      }
    char name[32];
    snprintf(name, sizeof name, "%dx%dx%d->%d", shapes[s].h, shapes[s].w, shapes[s].c_in,
             shapes[s].c_out);
    double point_total = 0;
    for (int f = 0; f < NF; f++) {
      double *a = tf + (size_t)f * reps, *b = tb + (size_t)f * reps;
      for (int i = 0; i < reps; i++) tt[i] = a[i] + b[i];
      qsort(a, (size_t)reps, sizeof *a, cmp_double);
      qsort(b, (size_t)reps, sizeof *b, cmp_double);
      qsort(tt, (size_t)reps, sizeof *tt, cmp_double);
      double total = tt[reps / 2] * 1e3;
      if (f == 0) point_total = total;
      printf("%-13s %8d %-8s | %9.3f %9.3f %9.3f | %8.2f | %7.1f\n", name,
             B * c[f].l.oh * c[f].l.ow, kvi_family_name(fams[f]), a[reps / 2] * 1e3,
             b[reps / 2] * 1e3, total, total / point_total,
             (double)kvi_conv_ws_size(&c[f].l, B) / 1e6);
      bcase_free(&c[f]);
    }
  }
  free(tf), free(tb), free(tt);
  return 0;
}
