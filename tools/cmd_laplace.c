/* kronvi laplace: K-FAC Laplace posterior of a trained point network (docs/kfac.md). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *LAPLACE_USAGE =
    "usage: kronvi laplace MODEL --data DIR --out POST [--prior-precision T] [--val N]\n"
    "                      [--samples K] [--limit-train N] [--threads N]\n"
    "  Turns a trained point network into a Matrix Normal posterior around its weights: the\n"
    "  Kronecker factors of each layer's Fisher on the training data (exact over the classes)\n"
    "  and the prior precision T give the row and column covariances (docs/kfac.md). Without\n"
    "  --prior-precision, T is chosen on a 10^-2 .. 10^8 grid by the BMA negative log-likelihood\n"
    "  (K samples, default 10) on the validation rows: the checkpoint's own --val split when it\n"
    "  was trained with one, else N rows (default 5000) of the training set, which the network\n"
    "  has seen (a warning says so); the factors use the other rows. POST is an mn checkpoint\n"
    "  for eval, prune and report.\n";

typedef struct {
  const char *model, *data, *out;
  double tau;
  long val, samples, threads, limit;
} laplace_args;

static int parse(laplace_args *a, int argc, char **argv) {
  static const struct option opts[] = {
      {"data", 1, 0, 'd'},        {"out", 1, 0, 'o'},     {"prior-precision", 1, 0, 'p'},
      {"val", 1, 0, 'v'},         {"samples", 1, 0, 's'}, {"threads", 1, 0, 't'},
      {"limit-train", 1, 0, 'l'}, {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  a->val = 5000, a->samples = 10, a->threads = kvi_threads_available();
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    bool ok = true;
    if (c == 'h') return printf("%s", LAPLACE_USAGE), 0;
    if (c == 'd')
      a->data = optarg;
    else if (c == 'o')
      a->out = optarg;
    else if (c == 'p')
      ok = cli_double("--prior-precision", optarg, 1e-12, 1e12, &a->tau);
    else if (c == 'v')
      ok = cli_int("--val", optarg, 1, 100000000, &a->val);
    else if (c == 's')
      ok = cli_int("--samples", optarg, 1, 100000, &a->samples);
    else if (c == 't')
      ok = cli_int("--threads", optarg, 1, 256, &a->threads);
    else if (c == 'l')
      ok = cli_int("--limit-train", optarg, 1, 1000000000, &a->limit);
    else
      ok = false;
    if (!ok) return fprintf(stderr, "%s", LAPLACE_USAGE), 2;
  }
  if (optind != argc - 1 || !a->data || !a->out) {
    fprintf(stderr, "kronvi: laplace needs MODEL, --data and --out\n%s", LAPLACE_USAGE);
    return 2;
  }
  a->model = argv[optind];
  return -1;
}

/* The training rows as the model saw them (normalized, padded), split into fit and val. */
static int load_rows(kvi_dataset *fit, kvi_dataset *val, const kvi_net *net, const kvi_trainer *tr,
                     const laplace_args *a, bool *seen) {
  kvi_dataset test;
  const bool reg = tr->cfg.task == KVI_TASK_REGRESS;
  int64_t lt = a->limit ? a->limit : tr->prep.limit_train;
  if (cli_load_data(fit, &test, a->data, reg, net->out_size, NULL, lt, 1))
    return cli_error("cannot load data");
  kvi_dataset_free(&test);
  kvi_status s = KVI_OK;
  if (net->cfg.input_std > 0)
    s = kvi_dataset_normalize_scalar(fit, (kvi_real)net->cfg.input_mean,
                                     (kvi_real)net->cfg.input_std);
  if (!s && reg && tr->prep.d > 0)
    s = kvi_dataset_apply_standardize(fit, tr->prep.feature_mean, tr->prep.feature_std);
  if (!s && tr->prep.pad > 0) s = kvi_dataset_pad(fit, tr->prep.pad);
  /* the model's own validation split when it has one; else rows it has seen */
  *seen = tr->prep.val == 0;
  int64_t nval = *seen ? (a->val < fit->n ? a->val : fit->n / 10) : tr->prep.val;
  uint64_t seed = *seen ? tr->cfg.seed : tr->prep.val_seed;
  if (!s) s = kvi_dataset_split(fit, val, nval, seed);
  return s ? cli_error("preparing the data") : 0;
}

/* The prior precision with the lowest validation BMA NLL on the grid 10^-2 .. 10^8. */
static int choose_tau(double *tau, const kvi_laplace *lp, const kvi_net *net,
                      const kvi_dataset *val, const laplace_args *a) {
  double best = INFINITY;
  printf("prior precision   val NLL (BMA, %ld samples)   val accuracy\n", a->samples);
  for (int e = -4; e <= 16; e++) {
    double t = pow(10, e / 2.0);
    kvi_net *post = NULL;
    kvi_metrics m;
    if (kvi_laplace_posterior(&post, lp, net, t) ||
        kvi_evaluate(&m, post, val, (int)a->samples, 7, 3, kvi_net_log_beta(post))) {
      kvi_net_free(post);
      return cli_error("laplace");
    }
    printf("%15.3g   %26.4f   %12.4f\n", t, m.samples ? m.nll_bma : m.nll_mean, m.acc_bma);
    double nll = m.samples ? m.nll_bma : m.nll_mean;
    if (nll < best) best = nll, *tau = t;
    kvi_net_free(post);
  }
  if (*tau >= 1e8)
    fprintf(stderr,
            "kronvi laplace: the best prior precision is the grid's largest: the "
            "posterior adds little to the point network (give --prior-precision)\n");
  return 0;
}

/* Writes the posterior as a checkpoint without optimizer state. */
static int save(const char *path, kvi_net *post, kvi_trainer *tr, const kvi_net *point) {
  kvi_train_config cfg = tr->cfg;
  cfg.opt = kvi_opt_config_default(KVI_OPT_ADAM);
  kvi_trainer tp;
  if (kvi_trainer_init(&tp, post, &cfg)) return cli_error("laplace");
  kvi_optimizer_free(&tp.opt);
  kvi_net_set_log_beta(post, kvi_net_log_beta(point));
  tp.prep = tr->prep;
  memset(&tr->prep, 0, sizeof tr->prep);
  tp.epoch = tr->epoch, tp.step = tr->step, tp.elapsed = tr->elapsed;
  kvi_dataset shape;
  kvi_dataset_init(&shape);
  shape.h = post->cfg.in_h, shape.w = post->cfg.in_w;
  shape.c = post->cfg.in_h > 0 ? post->in_size / (post->cfg.in_h * post->cfg.in_w) : 0;
  int rc = kvi_checkpoint_save(path, &tp, &shape) ? cli_error("cannot write the posterior") : 0;
  kvi_trainer_free(&tp);
  return rc;
}

int cmd_laplace(int argc, char **argv) {
  laplace_args a;
  int rc = parse(&a, argc, argv);
  if (rc >= 0) return rc;
  if (!cli_check_writable("--out", a.out)) return 1;
  kvi_set_threads((int)a.threads);
  kvi_net *net = NULL, *post = NULL;
  kvi_trainer tr;
  if (kvi_checkpoint_load_ex(a.model, &net, &tr, NULL, true)) return cli_error("cannot load model");
  kvi_dataset fit, val;
  kvi_dataset_init(&fit), kvi_dataset_init(&val);
  bool seen = false;
  kvi_laplace *lp = NULL;
  rc = load_rows(&fit, &val, net, &tr, &a, &seen);
  if (!rc && seen && a.tau == 0)
    fprintf(stderr,
            "kronvi laplace: the model has no held-out split; the prior precision is "
            "chosen on %lld training rows it has seen\n",
            (long long)val.n);
  double t0 = kvi_time_now();
  if (!rc && kvi_laplace_factors(&lp, net, &fit, tr.cfg.task)) rc = cli_error("laplace");
  if (!rc)
    fprintf(stderr, "kronvi laplace: Kronecker factors on %lld rows in %.1f s\n", (long long)fit.n,
            kvi_time_now() - t0);
  double tau = a.tau;
  if (!rc && tau == 0) rc = choose_tau(&tau, lp, net, &val, &a);
  if (!rc && kvi_laplace_posterior(&post, lp, net, tau)) rc = cli_error("laplace");
  if (!rc) rc = save(a.out, post, &tr, net);
  if (!rc) printf("prior precision %g; wrote %s (family mn)\n", tau, a.out);
  kvi_laplace_free(lp);
  kvi_dataset_free(&fit), kvi_dataset_free(&val);
  kvi_trainer_free(&tr);
  kvi_net_free(post), kvi_net_free(net);
  return rc;
}
