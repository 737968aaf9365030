/* Cost of curvature products against the gradient (single precision): the median time of
 * kvi_curv_eval with gradient, kvi_curv_hvp, kvi_curv_gvp and kvi_curv_jvp on random data,
 * for an MLP and a small CNN. Usage: bench_curv [--threads N] [--reps R] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/curv.h"

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef enum { B_GRAD, B_HVP, B_GVP, B_JVP } bench_kind;

static double median_time(kvi_curv *cv, const kvi_curv_batch *b, bench_kind k, const kvi_real *v,
                          kvi_real *out, kvi_real *jv, int reps) {
  double t[64], f;
  if (reps > 64) reps = 64;
  for (int r = -1; r < reps; r++) { /* one warm-up */
    kvi_status s = kvi_curv_eval(cv, b, &f, out, NULL);
    double t0 = kvi_time_now();
    if (!s && k == B_GRAD) s = kvi_curv_eval(cv, b, &f, out, NULL);
    if (!s && k == B_HVP) s = kvi_curv_hvp(cv, v, out);
    if (!s && k == B_GVP) s = kvi_curv_gvp(cv, v, out);
    if (!s && k == B_JVP) s = kvi_curv_jvp(cv, v, jv);
    if (s) {
      fprintf(stderr, "bench_curv: %s\n", kvi_last_error());
      exit(1);
    }
    if (r >= 0) t[r] = kvi_time_now() - t0;
  }
  qsort(t, (size_t)reps, sizeof t[0], cmp);
  return t[reps / 2];
}

static void run(const char *arch, int in_size, int h, int batch, int reps) {
  kvi_net_config cfg = kvi_net_config_default();
  cfg.family = KVI_FAMILY_POINT, cfg.prior = KVI_PRIOR_NONE, cfg.in_h = cfg.in_w = h;
  kvi_net *net = NULL;
  kvi_curv *cv = NULL;
  if (kvi_net_create(&net, arch, in_size, &cfg, batch, 1) || kvi_curv_create(&cv, net)) {
    fprintf(stderr, "bench_curv: %s\n", kvi_last_error());
    exit(1);
  }
  const size_t n = net->params->n, nx = (size_t)batch * in_size;
  kvi_real *X = kvi_alloc(nx * sizeof *X), *v = kvi_alloc(n * sizeof *v);
  kvi_real *out = kvi_alloc(n * sizeof *out), *jv = kvi_alloc((size_t)batch * 10 * sizeof *jv);
  int32_t *y = malloc((size_t)batch * sizeof *y);
  kvi_rng r = kvi_rng_stream(3, 1);
  kvi_rng_uniform(&r, X, nx);
  kvi_rng_normal(&r, v, n);
  for (int i = 0; i < batch; i++) y[i] = i % 10;
  kvi_curv_batch b = {KVI_LOSS_XENT, X, batch, y, NULL, 0, NULL, 0};
  double tg = median_time(cv, &b, B_GRAD, v, out, jv, reps);
  double th = median_time(cv, &b, B_HVP, v, out, jv, reps);
  double tG = median_time(cv, &b, B_GVP, v, out, jv, reps);
  double tj = median_time(cv, &b, B_JVP, v, out, jv, reps);
  printf("| %-28s | %5d | %8.2f | %8.2f | %8.2f | %8.2f | %5.2f | %5.2f |\n", arch, batch, tg * 1e3,
         th * 1e3, tG * 1e3, tj * 1e3, th / tg, tG / tg);
  kvi_free(X), kvi_free(v), kvi_free(out), kvi_free(jv), free(y);
  kvi_curv_free(cv);
  kvi_net_free(net);
}

int main(int argc, char **argv) {
  int threads = 1, reps = 11;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
  }
  kvi_set_threads(threads > 0 ? threads : 1);
  printf(
      "curvature products, %s, %d threads, median of %d (milliseconds; gradient = forward, "
      "loss and backward)\n\n",
      KVI_REAL_NAME, kvi_get_threads(), reps);
  printf(
      "| network                      | batch | gradient |      H v |      G v |      J v | "
      "Hv/g  | Gv/g  |\n|---|---|---|---|---|---|---|---|\n");
  run("784-300-10", 784, 0, 1000, reps);
  run("784-300-300-10", 784, 0, 500, reps);
  run("1-10-mp-20-mp-flatten-10", 784, 28, 100, reps);
  return 0;
}
