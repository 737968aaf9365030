/* Speed of one training epoch of the Fashion-MNIST MLP (784-300-300-300-10, ELU, ARD prior, Adam,
 * batch 100) for each variational family, single precision; --arch also takes the convolutional
 * grammar of kvi_net_create, e.g. the paper's CNN 1-10-mp-20-mp-40-mp-80-mp-flatten-10.
 *
 * Each measurement runs in its own process (this program re-executes itself with --child), so the
 * peak resident memory (getrusage ru_maxrss) is per family, and the families are interleaved:
 * repetition 1 of every family, then repetition 2, ... A child loads the data, builds the network
 * with kvi_net_create, runs --warmup steps and then times --steps training steps exactly as
 * src/train/trainer.c does them (kvi_batch_gather, kvi_net_forward with a noise stream,
 * kvi_softmax_xent, kvi_params_zero_grad, kvi_net_backward, kvi_net_kl_split with gscale beta/N
 * and kvi_optimizer_step_ard: the KL gradients of DIAG and MN layers under the ARD prior are added
 * inside Adam's pass, so their time is in the "adam" column); seconds per epoch = seconds per step
 * x (N / batch) = x 600. After the timed steps a child runs the same steps once more with a clock
 * around every phase and every layer (the "where the time goes" tables); that pass does not enter
 * the main timing.
 *
 *   bench_epoch [--data DIR | --synthetic] [--families point,diag,mn,mn-diag] [--threads N]
 *               [--steps S] [--warmup W] [--reps R] [--profile-steps P] [--arch SIZES]
 *               [--batch B] [--raw] [--no-profile]
 *
 * The output of --raw (one "RESULT ..." line per child) is what bench/run_speed.sh parses. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kronvi/data.h"
#include "kronvi/models.h"
#include "kronvi/optim.h"

#define MAX_FAM 8
#define MAX_REPS 64
#define MAX_DENSE 16

typedef struct {
  const char *data;
  int synthetic;
  char families[256];
  int threads, steps, warmup, reps, profile_steps, batch, raw, profile, fixed_threads;
  const char *arch;
} opts;

static void usage(FILE *f, const char *argv0) {
  fprintf(
      f,
      "usage: %s [--data DIR | --synthetic] [--families LIST] [--threads N] [--steps S]\n"
      "          [--warmup W] [--reps R] [--profile-steps P] [--arch SIZES] [--batch B]\n"
      "          [--raw] [--no-profile] [--fixed-threads]\n"
      "  --data DIR          Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)\n"
      "  --synthetic         random data of the same shape (60000 x 784, 10 classes)\n"
      "  --families LIST     comma-separated: point,diag,mn,mn-diag (default all four)\n"
      "  --threads N         kvi_set_threads (default 2)\n"
      "  --steps S           timed steps per repetition (default 100)\n"
      "  --warmup W          untimed steps before them (default 10)\n"
      "  --reps R            repetitions (processes) per family, interleaved (default 3)\n"
      "  --profile-steps P   steps of the per-phase pass (default 30; 0 = none)\n"
      "  --arch SIZES        default 784-300-300-300-10; convolutional nets as kronvi train\n"
      "                      (e.g. 1-10-mp-20-mp-40-mp-80-mp-flatten-10)\n"
      "  --batch B           default 100\n"
      "  --raw               also print the children's RESULT lines\n"
      "  --fixed-threads     no thread governor: every step on --threads threads\n",
      argv0);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  double *t = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
  memcpy(t, v, sizeof(double) * (size_t)n);
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  double m = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  free(t);
  return m;
}

static void die(const char *what) {
  fprintf(stderr, "bench_epoch: %s: %s\n", what, kvi_last_error());
  exit(1);
}

/* ---- child: one family, one process --------------------------------------------------------- */

enum {
  PH_GATHER,
  PH_NOISE,
  PH_FWD,
  PH_ACTF,
  PH_LOSS,
  PH_ZERO,
  PH_BWD,
  PH_ACTB,
  PH_POOL,
  PH_KL,
  PH_ADAM,
  PH_N
};
static const char *const ph_name[PH_N] = {"gather", "noise", "fwd",  "act_f", "xent", "zero",
                                          "bwd",    "act_b", "pool", "kl",    "adam"};

/* The trainer's KL and optimizer step (src/train/trainer.c, kvi__kl_and_step): the DIAG and MN
 * ARD layers' KL gradients inside Adam's pass. */
static void kl_and_step(kvi_net *net, kvi_optimizer *opt, double *kl, kvi_real gscale, double lr,
                        double *layer_kl, kvi_ard_block *ard) {
  int nab = 0;
  if (kvi_net_kl_split(net, layer_kl, gscale, ard, &nab)) die("kl");
  if (kvi_optimizer_step_ard(opt, net->params, lr, ard, nab)) die("adam");
  double total = 0;
  for (int i = 0; i < net->nlayers; i++) total += layer_kl[i];
  *kl = total;
}

static int child(const opts *o, const char *family) {
  kvi_set_threads(o->threads);
  kvi_dataset train, test;
  kvi_dataset_init(&train);
  kvi_dataset_init(&test);
  double t_load = kvi_time_now();
  if (o->synthetic) {
    /* same shapes as Fashion-MNIST: 60000 + 10000 rows of 784 pixels in [0, 1], 10 classes */
    if (kvi_dataset_alloc(&train, 60000, 784, 1, 28, 28, 10, 0) ||
        kvi_dataset_alloc(&test, 10000, 784, 1, 28, 28, 10, 0))
      die("synthetic data");
    kvi_rng r = kvi_rng_stream(7, 0xda7a);
    kvi_rng_uniform(&r, train.x, (size_t)train.n * train.d);
    kvi_rng_uniform(&r, test.x, (size_t)test.n * test.d);
    for (int64_t i = 0; i < train.n; i++) train.y[i] = (int32_t)kvi_rng_below(&r, 10);
    for (int64_t i = 0; i < test.n; i++) test.y[i] = (int32_t)kvi_rng_below(&r, 10);
  } else if (kvi_data_load_dir_bytes(&train, &test, o->data, 0, 0)) { /* as kronvi train */
    die("cannot load data (HINT: --synthetic)");
  }
  t_load = kvi_time_now() - t_load;

  kvi_net_config nc = kvi_net_config_default();
  if (kvi_family_parse(&nc.family, family)) die("--families");
  nc.prior = nc.family == KVI_FAMILY_POINT ? KVI_PRIOR_NONE : KVI_PRIOR_ARD;
  nc.act = KVI_ACT_ELU;
  const int B = o->batch;
  const int maxb = kvi_net_pick_max_batch(o->arch, B); /* as `kronvi train` sizes its network */
  kvi_net *net = NULL;
  if (kvi_net_create(&net, o->arch, train.d, &nc, maxb, 1)) die("kvi_net_create");
  kvi_opt_config oc = kvi_opt_config_default(KVI_OPT_ADAM);
  kvi_optimizer opt;
  if (kvi_optimizer_init(&opt, &oc, net->params)) die("optimizer");
  const int K = net->out_size;
  kvi_real *xb = kvi_alloc((size_t)B * train.d * sizeof(kvi_real));
  kvi_real *dout = kvi_alloc((size_t)B * K * sizeof(kvi_real));
  int32_t *yb = malloc((size_t)B * sizeof(int32_t));
  kvi_epoch_order order;
  if (!xb || !dout || !yb || kvi_epoch_order_init(&order, train.n)) die("allocation");
  kvi_epoch_order_shuffle(&order, 1, 0);
  const double N = (double)train.n, beta = 1.0, lr = oc.lr;
  const int64_t nb = train.n / B;
  int64_t step = 0;
  double kl = 0, nll = 0;
  double *layer_kl = calloc((size_t)net->nlayers, sizeof *layer_kl);
  kvi_ard_block *ard = calloc((size_t)net->nlayers, sizeof *ard);
  if (!layer_kl || !ard) die("allocation");

    /* the trainer's step, verbatim */
#define TRAIN_STEP()                                                           \
  do {                                                                         \
    int64_t i_ = step % nb;                                                    \
    kvi_governor_begin(&gov);                                                  \
    kvi_batch_gather(xb, yb, NULL, &train, order.order + i_ * B, B);           \
    kvi_rng rng = kvi_rng_stream(1, (1ull << 40) + (uint64_t)step);            \
    const kvi_real *out;                                                       \
    if (kvi_net_forward(net, &out, xb, B, &rng)) die("forward");               \
    int c = 0;                                                                 \
    if (kvi_softmax_xent(&nll, dout, NULL, &c, out, yb, B, K)) die("loss");    \
    if (!opt.ops->zeroes_grad || step == 0) kvi_params_zero_grad(net->params); \
    if (kvi_net_backward(net, dout, B)) die("backward");                       \
    kl_and_step(net, &opt, &kl, (kvi_real)(beta / N), lr, layer_kl, ard);      \
    kvi_governor_end(&gov);                                                    \
    step++;                                                                    \
  } while (0)

  kvi_governor gov; /* as the trainer: steps may run on fewer threads (--fixed-threads: not) */
  kvi_governor_init(&gov, o->threads, !o->fixed_threads);
  double kl0 = 0; /* KL at initialization: a cross-check of torch_mlp.py's formulas */
  if (kvi_net_kl(net, &kl0, 0)) die("kl");
  for (int w = 0; w < o->warmup; w++) TRAIN_STEP();
  double t0 = kvi_time_now();
  for (int s = 0; s < o->steps; s++) TRAIN_STEP();
  double s_step = (kvi_time_now() - t0) / o->steps;
  if (!isfinite(nll)) fprintf(stderr, "bench_epoch: %s: loss is not finite\n", family);

  /* per-phase pass: kvi_net_forward / kvi_net_backward unrolled layer by layer (the same calls
   * in the same order, with a clock around each) */
  double ph[PH_N] = {0};
  int ndense = 0;
  double lf[MAX_DENSE] = {0}, lb[MAX_DENSE] = {0}, lk[MAX_DENSE] = {0};
  int lconv[MAX_DENSE] = {0}; /* 1: convolution, 0: dense */
  const int P = o->profile ? o->profile_steps : 0;
  for (int s = 0; s < P; s++) {
    double t = kvi_time_now(), u;
#define LAP(slot) (u = kvi_time_now(), (slot) += u - t, t = u)
    int64_t i_ = step % nb;
    kvi_batch_gather(xb, yb, NULL, &train, order.order + i_ * B, B);
    LAP(ph[PH_GATHER]);
    kvi_rng rng = kvi_rng_stream(1, (1ull << 40) + (uint64_t)step);
    net->acts[0] = xb;
    net->noisy = 1;
    int d = 0;
    for (int i = 0; i < net->nlayers; i++) {
      const kvi_layer *L = &net->layers[i];
      size_t nz = L->ops->noise_size ? L->ops->noise_size(L, B) : 0;
      if (nz) {
        kvi_rng_normal(&rng, net->noise[i], nz);
        LAP(ph[PH_NOISE]);
      }
      kvi_layer_call lc = {.params = net->params,
                           .ws = net->ws[i],
                           .batch = B,
                           .X = net->acts[i],
                           .Y = net->acts[i + 1],
                           .eps = nz ? net->noise[i] : NULL};
      if (L->ops->forward(L, &lc)) die("layer forward");
      if (L->ops->weights) {
        if (d < MAX_DENSE) lconv[d] = L->ops == &kvi_conv_ops;
        LAP(lf[d < MAX_DENSE ? d : MAX_DENSE - 1]);
        d++;
      } else {
        LAP(ph[L->ops == &kvi_act_ops ? PH_ACTF : PH_POOL]);
      }
    }
    ndense = d;
    int c = 0;
    if (kvi_softmax_xent(&nll, dout, NULL, &c, net->acts[net->nlayers], yb, B, K)) die("loss");
    LAP(ph[PH_LOSS]);
    if (!opt.ops->zeroes_grad) kvi_params_zero_grad(net->params); /* else Adam cleared it */
    LAP(ph[PH_ZERO]);
    const kvi_real *dy = dout;
    for (int i = net->nlayers - 1; i >= 0; i--) {
      const kvi_layer *L = &net->layers[i];
      kvi_layer_call lc = {.params = net->params,
                           .ws = net->ws[i],
                           .batch = B,
                           .X = net->acts[i],
                           .Y = net->acts[i + 1],
                           .eps = net->noise[i],
                           .dY = dy,
                           .dX = i > 0 ? net->grads[i] : NULL};
      if (L->ops->backward(L, &lc)) die("layer backward");
      if (L->ops->weights) {
        d--;
        LAP(lb[d < MAX_DENSE ? d : MAX_DENSE - 1]);
      } else {
        LAP(ph[L->ops == &kvi_act_ops ? PH_ACTB : PH_POOL]);
      }
      dy = lc.dX;
    }
    /* the KL of the layers not fused into Adam, per layer, then Adam with the DIAG and MN ARD
     * layers' KL gradients inside its pass (kvi_optimizer_step_ard, as the trainer) */
    int nab = 0;
    for (int i = 0; i < net->nlayers; i++) {
      const kvi_layer *L = &net->layers[i];
      if (!L->ops->kl) continue;
      if (kvi_net_ard_block(net, i, (kvi_real)(beta / N), &layer_kl[i], &ard[nab]))
        nab++;
      else if (L->ops->kl(L, net->params, &layer_kl[i], (kvi_real)(beta / N)))
        die("kl");
      LAP(lk[d < MAX_DENSE ? d : MAX_DENSE - 1]);
      d++;
    }
    if (kvi_optimizer_step_ard(&opt, net->params, lr, ard, nab)) die("adam");
    LAP(ph[PH_ADAM]);
    step++;
#undef LAP
  }
  if (ndense > MAX_DENSE) ndense = MAX_DENSE; /* the last slot holds the rest */
  for (int k = 0; k < ndense; k++) {
    ph[PH_FWD] += lf[k];
    ph[PH_BWD] += lb[k];
    ph[PH_KL] += lk[k];
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const char *ct = getenv("OPENBLAS_CORETYPE");
  printf(
      "RESULT family=%s s_step=%.6e maxrss_kb=%ld params=%zu blas_core=%s coretype=%s "
      "simd=%s threads=%d steps=%d load_s=%.2f kl_init=%.6e train_loss=%.4f",
      family, s_step, ru.ru_maxrss, net->params->n, kvi_blas_core(), ct ? ct : "(unset)",
      kvi_simd_isa(), o->threads, o->steps, t_load, kl0, nll + beta * kl / N);
  for (int k = 0; k < PH_N; k++) printf(" %s=%.4e", ph_name[k], P ? ph[k] / P : 0.0);
  printf(" gov_steps=%ld gov_reduced=%ld ndense=%d", gov.steps, gov.steps_reduced, ndense);
  for (int k = 0; k < ndense; k++)
    printf(" fwd%d=%.4e bwd%d=%.4e kl%d=%.4e conv%d=%d", k, P ? lf[k] / P : 0.0, k,
           P ? lb[k] / P : 0.0, k, P ? lk[k] / P : 0.0, k, lconv[k]);
  printf("\n");
  fflush(stdout);
  kvi_epoch_order_free(&order);
  kvi_free(xb), kvi_free(dout), free(yb), free(layer_kl), free(ard);
  kvi_optimizer_free(&opt);
  kvi_net_free(net);
  kvi_dataset_free(&train);
  kvi_dataset_free(&test);
  return 0;
}

/* ---- parent: spawn the children, interleaved, and tabulate --------------------------------- */

typedef struct {
  char name[32];
  int nrep;
  double s_step[MAX_REPS];
  double rss_mb[MAX_REPS];
  double ph[MAX_REPS][PH_N];
  int ndense;
  double lf[MAX_REPS][MAX_DENSE], lb[MAX_REPS][MAX_DENSE], lk[MAX_REPS][MAX_DENSE];
  int lconv[MAX_DENSE];
  char core[64];
} fam_res;

static double field(const char *line, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, " %s=", key);
  const char *p = strstr(line, pat);
  return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static int parent(const opts *o, char **argv) {
  char exe[4096];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) {
    fprintf(stderr, "bench_epoch: cannot find my own executable: %s\n", strerror(errno));
    return 1;
  }
  exe[len] = 0;
  fam_res fr[MAX_FAM];
  int nf = 0;
  char list[256];
  snprintf(list, sizeof list, "%s", o->families);
  for (char *tok = strtok(list, ","); tok && nf < MAX_FAM; tok = strtok(NULL, ",")) {
    kvi_family f;
    if (kvi_family_parse(&f, tok)) {
      fprintf(stderr, "bench_epoch: %s\n", kvi_last_error());
      return 2;
    }
    memset(&fr[nf], 0, sizeof fr[nf]);
    snprintf(fr[nf].name, sizeof fr[nf].name, "%s", kvi_family_name(f));
    nf++;
  }
  /* the children run with the BLAS kernels `kronvi train` picks (kvi_blas_better_core) */
  const char *better = getenv("OPENBLAS_CORETYPE") ? NULL : kvi_blas_better_core();
  if (better) setenv("OPENBLAS_CORETYPE", better, 1);
  const char *ct = getenv("OPENBLAS_CORETYPE"), *wp = getenv("OMP_WAIT_POLICY");
  double la[3] = {0, 0, 0};
  FILE *lf = fopen("/proc/loadavg", "r");
  if (lf) {
    if (fscanf(lf, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = la[1] = la[2] = 0;
    fclose(lf);
  }
  kvi_set_threads(o->threads);
  printf("bench_epoch: kronvi %s %s %s, ELU, ARD prior, Adam lr 1e-3, batch %d, %s\n",
         KVI_REAL_NAME, kvi_arch_is_conv(o->arch) ? "CNN" : "MLP", o->arch, o->batch,
         o->synthetic ? "synthetic data (60000 x 784, 10 classes)" : o->data);
  printf(
      "precision %s | threads %d | BLAS core %s%s | SIMD %s | OPENBLAS_CORETYPE=%s | "
      "OMP_WAIT_POLICY=%s | %ld CPUs online | load average %.2f %.2f %.2f (shared machine)\n",
      KVI_REAL_NAME, o->threads, better ? better : kvi_blas_core(),
      better ? " (set by bench_epoch as kronvi does)" : "", kvi_simd_isa(), ct ? ct : "(unset)",
      wp ? wp : "(unset)", sysconf(_SC_NPROCESSORS_ONLN), la[0], la[1], la[2]);
  printf(
      "%d timed steps after %d warm-up steps per process; %d processes per family, "
      "interleaved; s/epoch = s/step x 600; peak RSS includes the data set (%s)\n",
      o->steps, o->warmup, o->reps,
      o->synthetic ? "~220 MB of numbers" : "images as bytes, ~55 MB");
  fflush(stdout);
  (void)argv;
  for (int r = 0; r < o->reps; r++) {
    for (int f = 0; f < nf; f++) {
      char cmd[8192];
      snprintf(cmd, sizeof cmd,
               "'%s' --child %s %s%s%s --threads %d --steps %d --warmup %d --profile-steps %d "
               "--arch %s --batch %d%s%s",
               exe, fr[f].name, o->synthetic ? "--synthetic" : "--data '",
               o->synthetic ? "" : o->data, o->synthetic ? "" : "'", o->threads, o->steps,
               o->warmup, o->profile_steps, o->arch, o->batch, o->profile ? "" : " --no-profile",
               o->fixed_threads ? " --fixed-threads" : "");
      FILE *p = popen(cmd, "r");
      if (!p) {
        fprintf(stderr, "bench_epoch: cannot run a child: %s\n", strerror(errno));
        return 1;
      }
      char line[8192];
      int got = 0;
      while (fgets(line, sizeof line, p)) {
        if (strncmp(line, "RESULT ", 7)) continue;
        got = 1;
        if (o->raw) {
          printf("%s", line);
          fflush(stdout);
        }
        fam_res *R = &fr[f];
        int k = R->nrep++;
        R->s_step[k] = field(line, "s_step");
        R->rss_mb[k] = field(line, "maxrss_kb") / 1024.0;
        for (int q = 0; q < PH_N; q++) R->ph[k][q] = field(line, ph_name[q]);
        R->ndense = (int)field(line, "ndense");
        for (int d = 0; d < R->ndense && d < MAX_DENSE; d++) {
          char key[16];
          snprintf(key, sizeof key, "fwd%d", d);
          R->lf[k][d] = field(line, key);
          snprintf(key, sizeof key, "bwd%d", d);
          R->lb[k][d] = field(line, key);
          snprintf(key, sizeof key, "kl%d", d);
          R->lk[k][d] = field(line, key);
          snprintf(key, sizeof key, "conv%d", d);
          R->lconv[d] = field(line, key) == 1;
        }
        const char *c = strstr(line, " blas_core=");
        if (c) sscanf(c + 11, "%63s", R->core);
      }
      int rc = pclose(p);
      if (!got || rc != 0) {
        fprintf(stderr, "bench_epoch: child for %s failed (status %d)\n", fr[f].name, rc);
        return 1;
      }
    }
  }
  double diag = NAN;
  for (int f = 0; f < nf; f++)
    if (!strcmp(fr[f].name, "diag")) diag = median(fr[f].s_step, fr[f].nrep);
  printf("\n%-8s | %10s %10s %10s | %10s %10s | %9s\n", "family", "s/step", "min", "max", "s/epoch",
         "vs diag", "peak MB");
  for (int f = 0; f < nf; f++) {
    fam_res *R = &fr[f];
    double med = median(R->s_step, R->nrep), lo = R->s_step[0], hi = R->s_step[0], rss = 0;
    for (int k = 0; k < R->nrep; k++) {
      lo = fmin(lo, R->s_step[k]);
      hi = fmax(hi, R->s_step[k]);
      rss = fmax(rss, R->rss_mb[k]);
    }
    printf("%-8s | %10.5f %10.5f %10.5f | %10.2f %10.2f | %9.1f\n", R->name, med, lo, hi, med * 600,
           isnan(diag) ? NAN : med / diag, rss);
  }
  if (o->profile && o->profile_steps > 0) {
    printf(
        "\nwhere the time goes (ms/step, median over processes of the mean of %d clocked steps;"
        " fwd/bwd/kl: dense and convolutional layers, noise: kvi_rng_normal of the LRT noise,"
        " pool: max-pooling forward + backward)\n",
        o->profile_steps);
    printf("%-8s |", "family");
    for (int q = 0; q < PH_N; q++) printf(" %7s", ph_name[q]);
    printf(" | %7s\n", "sum");
    for (int f = 0; f < nf; f++) {
      fam_res *R = &fr[f];
      printf("%-8s |", R->name);
      double sum = 0;
      for (int q = 0; q < PH_N; q++) {
        double v[MAX_REPS];
        for (int k = 0; k < R->nrep; k++) v[k] = R->ph[k][q];
        double m = median(v, R->nrep);
        sum += m;
        printf(" %7.3f", m * 1e3);
      }
      printf(" | %7.3f\n", sum * 1e3);
    }
    printf("\nper weight layer (ms/step; fc: dense, conv: convolution): forward / backward / KL\n");
    for (int f = 0; f < nf; f++) {
      fam_res *R = &fr[f];
      printf("%-8s |", R->name);
      for (int d = 0; d < R->ndense && d < MAX_DENSE; d++) {
        double a[MAX_REPS], b[MAX_REPS], c[MAX_REPS];
        for (int k = 0; k < R->nrep; k++)
          a[k] = R->lf[k][d], b[k] = R->lb[k][d], c[k] = R->lk[k][d];
        printf(" %s%d %6.3f/%6.3f/%6.3f |", R->lconv[d] ? "conv" : "fc", d,
               median(a, R->nrep) * 1e3, median(b, R->nrep) * 1e3, median(c, R->nrep) * 1e3);
      }
      printf("\n");
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  opts o;
  memset(&o, 0, sizeof o);
  o.data = "/usr/share/datasets/fashion-mnist";
  snprintf(o.families, sizeof o.families, "point,diag,mn,mn-diag");
  o.threads = 2, o.steps = 100, o.warmup = 10, o.reps = 3, o.profile_steps = 30, o.batch = 100;
  o.profile = 1;
  o.arch = "784-300-300-300-10";
  const char *child_family = NULL;
  for (int a = 1; a < argc; a++) {
    const char *s = argv[a];
    int more = a + 1 < argc;
    if (!strcmp(s, "--data") && more)
      o.data = argv[++a];
    else if (!strcmp(s, "--synthetic"))
      o.synthetic = 1;
    else if (!strcmp(s, "--families") && more)
      snprintf(o.families, sizeof o.families, "%s", argv[++a]);
    else if (!strcmp(s, "--threads") && more)
      o.threads = atoi(argv[++a]);
    else if (!strcmp(s, "--steps") && more)
      o.steps = atoi(argv[++a]);
    else if (!strcmp(s, "--warmup") && more)
      o.warmup = atoi(argv[++a]);
    else if (!strcmp(s, "--reps") && more)
      o.reps = atoi(argv[++a]);
    else if (!strcmp(s, "--profile-steps") && more)
      o.profile_steps = atoi(argv[++a]);
    else if (!strcmp(s, "--arch") && more)
      o.arch = argv[++a];
    else if (!strcmp(s, "--batch") && more)
      o.batch = atoi(argv[++a]);
    else if (!strcmp(s, "--raw"))
      o.raw = 1;
    else if (!strcmp(s, "--no-profile"))
      o.profile = 0;
    else if (!strcmp(s, "--fixed-threads"))
      o.fixed_threads = 1;
    else if (!strcmp(s, "--child") && more)
      child_family = argv[++a];
    else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
      usage(stdout, argv[0]);
      return 0;
    } else {
      usage(stderr, argv[0]);
      return 2;
    }
  }
  if (o.threads < 1 || o.steps < 1 || o.warmup < 0 || o.reps < 1 || o.reps > MAX_REPS ||
      o.batch < 1 || o.profile_steps < 0) {
    fprintf(stderr, "bench_epoch: threads, steps, reps (<= %d) and batch must be positive\n",
            MAX_REPS);
    return 2;
  }
  if (child_family) return child(&o, child_family);
  return parent(&o, argv);
}
