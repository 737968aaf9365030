/* Cost of the evaluation on the Fashion-MNIST test set (10,000 images): one mean-weight pass
 * (kvi_evaluate_ex without BMA and without the pruned pass) against Bayesian model averaging with
 * K samples (kvi_bma_probs) by the default (KVI_BMA_SHARED: a dense first layer's output drawn per
 * example, weight samples for the rest), by weight samples (KVI_BMA_WEIGHTS) and by the local
 * reparameterization (KVI_BMA_LRT), for each variational family, single precision.
 *
 * The networks have their random initialization (kvi_net_create, ARD prior, ELU; the timings do
 * not depend on the values). Repetitions are interleaved: repetition 1 of every family and
 * method, then repetition 2, ...; the table shows the median. A BMA whose time, predicted from
 * the same method at the smallest K, exceeds --budget seconds is not run: its entry is that
 * prediction (BMA costs K passes by construction), marked with '*'.
 *
 *   bench_eval [--data DIR | --synthetic] [--arch SIZES] [--families mn,diag,mn-diag]
 *              [--samples 10,100] [--methods shared,weights,lrt] [--threads N] [--reps R]
 *              [--rows N]
 *              [--budget S] */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "kronvi/train.h"

#define MAX_FAM 4
#define MAX_K 4
#define MAX_REPS 32

typedef struct {
  const char *data, *arch;
  char families[128], samples[64], methods[64];
  int synthetic, threads, reps, rows;
  double budget;
} opts;

static void usage(FILE *f, const char *argv0) {
  fprintf(
      f,
      "usage: %s [--data DIR | --synthetic] [--arch SIZES] [--families LIST]\n"
      "          [--samples LIST] [--methods LIST] [--threads N] [--reps R] [--rows N]\n"
      "          [--budget S]\n"
      "  --data DIR        Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)\n"
      "  --synthetic       random test data of the same shape (10000 x 784, 10 classes)\n"
      "  --arch SIZES      default 784-300-300-300-10; convolutional nets as kronvi train\n"
      "                    (e.g. 1-10-mp-20-mp-40-mp-80-mp-flatten-10)\n"
      "  --families LIST   comma-separated: diag,mn,mn-diag (default mn,diag,mn-diag)\n"
      "  --samples LIST    BMA sample counts K, ascending (default 10,100)\n"
      "  --methods LIST    shared,weights,lrt (default all three; one left out prints -)\n"
      "  --threads N       kvi_set_threads (default 2)\n"
      "  --reps R          interleaved repetitions, median shown (default 3)\n"
      "  --rows N          first N test rows (default all)\n"
      "  --budget S        a BMA predicted to take longer than S seconds is predicted, not\n"
      "                    run (default 60)\n",
      argv0);
}

static void die(const char *what) {
  fprintf(stderr, "bench_eval: %s: %s\n", what, kvi_last_error());
  exit(1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(const double *v, int n) {
  double t[MAX_REPS];
  memcpy(t, v, sizeof(double) * (size_t)n);
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* Splits "a,b,c" into at most max tokens of buf; returns the count. */
static int split(char *buf, char **tok, int max) {
  int n = 0;
  for (char *s = strtok(buf, ","); s && n < max; s = strtok(NULL, ",")) tok[n++] = s;
  return n;
}

static void load_test(kvi_dataset *test, const opts *o) {
  kvi_dataset train;
  kvi_dataset_init(&train);
  kvi_dataset_init(test);
  if (o->synthetic) {
    if (kvi_dataset_alloc(test, 10000, 784, 1, 28, 28, 10, 0)) die("synthetic data");
    kvi_rng r = kvi_rng_stream(7, 0xda7a);
    kvi_rng_uniform(&r, test->x, (size_t)test->n * test->d);
    for (int64_t i = 0; i < test->n; i++) test->y[i] = (int32_t)kvi_rng_below(&r, 10);
  } else if (kvi_idx_load_dir(&train, test, o->data, 1, o->rows)) {
    die("cannot load data (HINT: --synthetic)");
  }
  kvi_dataset_free(&train);
  if (o->rows > 0 && test->n > o->rows) test->n = o->rows;
}

int main(int argc, char **argv) {
  /* the BLAS kernels `kronvi` picks (kvi_blas_better_core): set, then run again */
  const char *better = getenv("OPENBLAS_CORETYPE") ? NULL : kvi_blas_better_core();
  if (better && !setenv("OPENBLAS_CORETYPE", better, 1)) execv("/proc/self/exe", argv);
  opts o = {"/usr/share/datasets/fashion-mnist",
            "784-300-300-300-10",
            "mn,diag,mn-diag",
            "10,100",
            "shared,weights,lrt",
            0,
            2,
            3,
            0,
            60};
  for (int a = 1; a < argc; a++) {
    const char *s = argv[a];
    const int more = a + 1 < argc;
    if (!strcmp(s, "--data") && more)
      o.data = argv[++a];
    else if (!strcmp(s, "--synthetic"))
      o.synthetic = 1;
    else if (!strcmp(s, "--arch") && more)
      o.arch = argv[++a];
    else if (!strcmp(s, "--families") && more)
      snprintf(o.families, sizeof o.families, "%s", argv[++a]);
    else if (!strcmp(s, "--methods") && more)
      snprintf(o.methods, sizeof o.methods, "%s", argv[++a]);
    else if (!strcmp(s, "--samples") && more)
      snprintf(o.samples, sizeof o.samples, "%s", argv[++a]);
    else if (!strcmp(s, "--threads") && more)
      o.threads = atoi(argv[++a]);
    else if (!strcmp(s, "--reps") && more)
      o.reps = atoi(argv[++a]);
    else if (!strcmp(s, "--rows") && more)
      o.rows = atoi(argv[++a]);
    else if (!strcmp(s, "--budget") && more)
      o.budget = atof(argv[++a]);
    else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
      usage(stdout, argv[0]);
      return 0;
    } else {
      usage(stderr, argv[0]);
      return 2;
    }
  }
  char *fam[MAX_FAM], *ks[MAX_K];
  const int nf = split(o.families, fam, MAX_FAM), nk = split(o.samples, ks, MAX_K);
  int K[MAX_K];
  /* the methods in the table's order */
  enum { NMETH = 3 };
  const kvi_bma_method meths[NMETH] = {KVI_BMA_SHARED, KVI_BMA_WEIGHTS, KVI_BMA_LRT};
  int use[NMETH];
  for (int i = 0; i < NMETH; i++) use[i] = strstr(o.methods, kvi_bma_name(meths[i])) != NULL;
  for (int k = 0; k < nk; k++) K[k] = atoi(ks[k]);
  if (o.threads < 1 || o.reps < 1 || o.reps > MAX_REPS || o.rows < 0 || nf < 1 || nk < 1) {
    fprintf(stderr, "bench_eval: threads, reps (<= %d), families and samples needed\n", MAX_REPS);
    return 2;
  }
  kvi_set_threads(o.threads);
  kvi_dataset test;
  load_test(&test, &o);
  kvi_net *net[MAX_FAM];
  for (int f = 0; f < nf; f++) {
    kvi_net_config nc = kvi_net_config_default();
    if (kvi_family_parse(&nc.family, fam[f])) die("--families");
    nc.in_h = test.h, nc.in_w = test.w;
    if (kvi_net_create(&net[f], o.arch, test.d, &nc, kvi_net_pick_max_batch(o.arch, 100), 1))
      die("kvi_net_create");
  }
  double *P = malloc((size_t)test.n * net[0]->out_size * sizeof(double));
  if (!P) die("allocation");
  /* t[f][0]: mean pass; t[f][1 + NMETH k + i]: K[k] samples by method meths[i] */
  static double t[MAX_FAM][1 + NMETH * MAX_K][MAX_REPS];
  static double tk[MAX_FAM][MAX_K][MAX_REPS]; /* K mean passes back to back */
  static int predicted[MAX_FAM][1 + NMETH * MAX_K];
  kvi_eval_config mean = kvi_eval_config_default();
  mean.pruned = false;
  kvi_metrics m;
  for (int f = 0; f < nf; f++) /* warm-up: page in the data and the BLAS buffers */
    if (kvi_evaluate_ex(&m, net[f], &test, &mean)) die("mean pass");
  for (int r = 0; r < o.reps; r++)
    for (int f = 0; f < nf; f++) {
      /* the mean pass is short next to a BMA: the median of 5 per repetition */
      double tm[5], t0;
      for (int i = 0; i < 5; i++) {
        t0 = kvi_time_now();
        if (kvi_evaluate_ex(&m, net[f], &test, &mean)) die("mean pass");
        tm[i] = kvi_time_now() - t0;
      }
      t[f][0][r] = median(tm, 5);
      for (int k = 0; k < nk; k++) {
        /* K mean passes in a row: the same sustained run as a BMA of K samples (a short pass
         * alone can run at a higher clock); predicted like the BMA beyond the budget */
        if (k > 0 && median(tm, 5) * K[k] > o.budget) {
          tk[f][k][r] = median(tm, 5) * K[k];
        } else {
          t0 = kvi_time_now();
          for (int i = 0; i < K[k]; i++)
            if (kvi_evaluate_ex(&m, net[f], &test, &mean)) die("mean pass");
          tk[f][k][r] = kvi_time_now() - t0;
        }
        for (int meth = 0; meth < NMETH; meth++) {
          const int c = 1 + NMETH * k + meth;
          if (!use[meth]) continue;
          if (k > 0) { /* predicted from the smallest K of the same method */
            const double guess = median(t[f][1 + meth], r + 1) * K[k] / K[0];
            if (predicted[f][c] || (r == 0 && guess > o.budget)) {
              predicted[f][c] = 1;
              t[f][c][r] = guess;
              continue;
            }
          }
          t0 = kvi_time_now();
          if (kvi_bma_probs(P, net[f], test.x, test.n, K[k], 1, meths[meth])) die("BMA");
          t[f][c][r] = kvi_time_now() - t0;
        }
      }
    }
  printf(
      "bench_eval: %s, %lld test rows, %d threads, %s, BLAS core %s, median of %d interleaved "
      "repetitions\n",
      o.arch, (long long)test.n, o.threads, KVI_REAL_NAME, kvi_blas_core(), o.reps);
  printf(
      "seconds (x: ratio to one mean-weight pass; [=]: in mean passes, against K of them run "
      "back to back)\n%-8s | %8s",
      "family", "mean");
  for (int k = 0; k < nk; k++)
    printf(" | K=%-4d K means   shared  (x)  [=]  weights  (x)  [=]      lrt    (x)", K[k]);
  printf("\n");
  bool any = false;
  for (int f = 0; f < nf; f++) {
    const double mp = median(t[f][0], o.reps);
    printf("%-8s | %8.3f", fam[f], mp);
    for (int k = 0; k < nk; k++) {
      const double km = median(tk[f][k], o.reps);
      printf(" | %7.3f ", km);
      for (int meth = 0; meth < NMETH; meth++) {
        const int c = 1 + NMETH * k + meth;
        if (!use[meth]) {
          printf(" %8s %7s%s", "-", "", meths[meth] == KVI_BMA_LRT ? "" : "        ");
          continue;
        }
        const double v = median(t[f][c], o.reps);
        any |= predicted[f][c] != 0;
        printf(" %8.3f%s(%5.1f)", v, predicted[f][c] ? "*" : " ", v / mp);
        if (meths[meth] != KVI_BMA_LRT) printf(" [%5.1f]", v / km * K[k]);
      }
    }
    printf("\n");
  }
  if (any) printf("* predicted from the smallest K (over --budget %g s), not run\n", o.budget);
  for (int f = 0; f < nf; f++) kvi_net_free(net[f]);
  free(P);
  kvi_dataset_free(&test);
  return 0;
}
