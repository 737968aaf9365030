/* kronvi eval / prune / report / inspect: commands that read a checkpoint. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
  M_DATA = 300,
  M_SAMPLES,
  M_JSON,
  M_THREADS,
  M_THR,
  M_OUT,
  M_LTEST,
  M_SEED,
  M_STRUCT,
  M_TRANSFORM,
  M_BMA,
  M_PNG
};
static const struct option model_opts[] = {{"data", 1, 0, M_DATA},
                                           {"samples", 1, 0, M_SAMPLES},
                                           {"json", 0, 0, M_JSON},
                                           {"threads", 1, 0, M_THREADS},
                                           {"threshold", 1, 0, M_THR},
                                           {"out", 1, 0, M_OUT},
                                           {"limit-test", 1, 0, M_LTEST},
                                           {"seed", 1, 0, M_SEED},
                                           {"structured", 0, 0, M_STRUCT},
                                           {"transform", 1, 0, M_TRANSFORM},
                                           {"bma", 1, 0, M_BMA},
                                           {"png", 1, 0, M_PNG},
                                           {"help", 0, 0, 'h'},
                                           {0, 0, 0, 0}};

typedef struct {
  const char *model, *data, *out, *transform, *png;
  long samples, threads, limit_test, seed;
  double threshold;
  bool json, help, structured;
  kvi_bma_method bma;
} model_args;

/* Parses the shared options; returns 0 ok, 2 on a usage error. */
static int parse_model_args(model_args *a, int argc, char **argv, const char *usage) {
  memset(a, 0, sizeof *a);
  a->samples = 10, a->threads = kvi_threads_available(), a->threshold = 3.0, a->seed = 1;
  a->bma = KVI_BMA_SHARED;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "h", model_opts, NULL)) != -1) {
    bool ok = true;
    switch (c) {
      case 'h':
        a->help = true;
        break;
      case M_DATA:
        a->data = optarg;
        break;
      case M_SAMPLES:
        ok = cli_int("--samples", optarg, 0, 100000, &a->samples);
        break;
      case M_JSON:
        a->json = true;
        break;
      case M_THREADS:
        ok = cli_int("--threads", optarg, 1, 256, &a->threads);
        break;
      case M_THR:
        ok = cli_double("--threshold", optarg, -100, 100, &a->threshold);
        break;
      case M_OUT:
        a->out = optarg;
        break;
      case M_LTEST:
        ok = cli_int("--limit-test", optarg, 1, 1000000000, &a->limit_test);
        break;
      case M_SEED:
        ok = cli_int("--seed", optarg, 0, 2147483647, &a->seed);
        break;
      case M_TRANSFORM: /* eval only */
        a->transform = optarg;
        ok =
            strstr(usage, "--transform") && (!strcmp(optarg, "invert") || !strcmp(optarg, "rot90"));
        if (!ok)
          fprintf(stderr, "kronvi: --transform is an option of 'kronvi eval': invert or rot90\n");
        break;
      case M_BMA: /* eval only */
        ok = strstr(usage, "--bma") && !kvi_bma_parse(&a->bma, optarg);
        if (!ok)
          fprintf(stderr, "kronvi: --bma is an option of 'kronvi eval': shared, weights or lrt\n");
        break;
      case M_PNG: /* report only */
        a->png = optarg;
        ok = strstr(usage, "--png") != NULL;
        if (!ok) fprintf(stderr, "kronvi: --png is an option of 'kronvi report'\n");
        break;
      case M_STRUCT: /* prune only: its usage text names the flag */
        a->structured = true;
        ok = strstr(usage, "--structured") != NULL;
        if (!ok) fprintf(stderr, "kronvi: --structured is an option of 'kronvi prune'\n");
        break;
      default:
        ok = false;
    }
    if (!ok) {
      fprintf(stderr, "%s", usage);
      return 2;
    }
  }
  if (a->help) {
    printf("%s", usage);
    return 0;
  }
  if (optind != argc - 1) {
    fprintf(stderr, "kronvi: expected exactly one MODEL argument\n%s", usage);
    return 2;
  }
  a->model = argv[optind];
  kvi_set_threads((int)a->threads);
  return -1;
}

static const char *EVAL_USAGE =
    "usage: kronvi eval MODEL --data PATH [--samples K] [--json] [--threshold T] [--threads N]\n"
    "                  [--transform invert|rot90] [--bma shared|weights|lrt]\n"
    "  Evaluates a checkpoint on the test split of PATH (IDX/CIFAR-10 directory, or a regression\n"
    "  CSV): accuracy with the mean weights, Bayesian model averaging over K weight samples\n"
    "  (default 10), NLL, expected calibration error, accuracy after pruning log alpha > T\n"
    "  (default 3), mean predictive entropy. --limit-test N uses the first N rows; --seed S\n"
    "  seeds the samples. --transform invert|rot90 evaluates on inverted (1 - x) or rotated\n"
    "  (90 degrees) test images: out-of-distribution inputs, whose predictive entropy a\n"
    "  calibrated model raises. --bma: shared (default) draws a dense first layer's output per\n"
    "  example around its mean and scale computed once, and one weight sample per later layer\n"
    "  for each of the K networks (less than K mean-weight passes); weights draws one weight\n"
    "  sample per layer (K mean-weight passes); lrt draws fresh noise per example by the local\n"
    "  reparameterization. --threads N: at most N threads (default: the CPUs this process may\n"
    "  use).\n";

/* --transform: pixels inverted (x -> 1 - x, in [0, 1] before any normalization) or each image
 * rotated by 90 degrees (HWC, square images). */
static kvi_status transform_images(kvi_dataset *ds, const char *how) {
  if (ds->h <= 0 || ds->c <= 0) return kvi_fail(KVI_ERR_ARG, "--transform needs images");
  kvi_status s = kvi_dataset_expand(ds); /* the pixels as numbers, to change them */
  if (s) return s;
  if (!strcmp(how, "invert")) {
    for (size_t i = 0; i < (size_t)ds->n * ds->d; i++) ds->x[i] = 1 - ds->x[i];
    return KVI_OK;
  }
  if (ds->h != ds->w) return kvi_fail(KVI_ERR_ARG, "--transform rot90 needs square images");
  const int h = ds->h, c = ds->c;
  kvi_real *tmp = kvi_alloc((size_t)ds->d * sizeof *tmp);
  if (!tmp) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  for (int64_t e = 0; e < ds->n; e++) {
    kvi_real *x = ds->x + (size_t)e * ds->d;
    for (int yy = 0; yy < h; yy++) /* new (y, x) = old (x, h - 1 - y) */
      for (int xx = 0; xx < h; xx++)
        for (int ch = 0; ch < c; ch++)
          tmp[((size_t)yy * h + xx) * c + ch] = x[((size_t)xx * h + (h - 1 - yy)) * c + ch];
    memcpy(x, tmp, (size_t)ds->d * sizeof *tmp);
  }
  kvi_free(tmp);
  return KVI_OK;
}

/* The test set of --data for a model (regression: the CSV itself), prepared as the model's
 * training data were: images normalized (--normalize) then padded (--pad), regression features
 * standardized with the stored statistics (--standardize). On failure both sets are freed. */
static kvi_status load_test_set(kvi_dataset *train, kvi_dataset *test, const kvi_net *net,
                                const kvi_data_prep *prep, const model_args *a, bool reg) {
  kvi_status s =
      reg ? cli_load_data(test, train, a->data, true, net->out_size, NULL, a->limit_test, 0)
          : cli_load_data(train, test, a->data, false, 0, NULL, 1, a->limit_test);
  if (s) return s;
  if (!reg && a->transform) s = transform_images(test, a->transform);
  if (!s && !reg && net->cfg.input_std > 0)
    s = kvi_dataset_normalize_scalar(test, (kvi_real)net->cfg.input_mean,
                                     (kvi_real)net->cfg.input_std);
  if (!s && reg && prep && prep->d > 0)
    s = prep->d == test->d
            ? kvi_dataset_apply_standardize(test, prep->feature_mean, prep->feature_std)
            : kvi_fail(KVI_ERR_SHAPE, "the data have %d features, the stored standardization %d",
                       test->d, prep->d);
  int pad = net->cfg.in_h > 0 && test->h > 0 ? (net->cfg.in_h - test->h) / 2 : 0;
  if (!s && pad > 0) s = kvi_dataset_pad(test, pad);
  if (s != KVI_OK) {
    kvi_dataset_free(train);
    kvi_dataset_free(test);
  }
  return s;
}

/* A checkpoint with its trainer state; one without optimizer state (a compressed model) loads
 * with the moments at zero, and *had_state says which. */
static kvi_status load_with_state(const char *path, kvi_net **net, kvi_trainer *tr,
                                  bool *had_state) {
  *had_state = true;
  kvi_status s = kvi_checkpoint_load_ex(path, net, tr, NULL, false);
  if (s != KVI_ERR_STATE) return s;
  *had_state = false;
  return kvi_checkpoint_load_ex(path, net, tr, NULL, true);
}

/* One BMA metric of the JSON line: null when no weights were sampled (--samples 0). */
static void print_json_bma(const char *key, double x, bool computed) {
  if (computed)
    printf(", \"%s\": %.6f", key, x);
  else
    printf(", \"%s\": null", key);
}

static void print_eval_json(const kvi_metrics *m) {
  bool bma = m->samples > 0;
  printf("{\"rows\": %lld, \"accuracy\": %.6f, \"nll\": %.6f", (long long)m->n, m->acc_mean,
         m->nll_mean);
  print_json_bma("accuracy_bma", m->acc_bma, bma);
  print_json_bma("nll_bma", m->nll_bma, bma);
  print_json_bma("ece", m->ece, bma);
  print_json_bma("entropy_bma", m->entropy_bma, bma);
  printf(", \"entropy\": %.6f, \"accuracy_pruned\": %.6f, \"rmse\": %.6g, \"samples\": %d}\n",
         m->entropy_mean, m->acc_pruned, m->rmse_mean, m->samples);
}

/* One BMA metric of the text report: "not computed" when no weights were sampled. */
static void print_text_bma(const char *label, double x, bool computed) {
  if (computed)
    printf("  %s %.4f\n", label, x);
  else
    printf("  %s not computed\n", label);
}

static void print_eval_text(const kvi_metrics *m, const char *model, double threshold) {
  bool bma = m->samples > 0;
  char label[48];
  snprintf(label, sizeof label, "accuracy (BMA, %d samples)", m->samples);
  printf("%s on %lld rows:\n  accuracy (mean weights) %.4f\n", model, (long long)m->n, m->acc_mean);
  print_text_bma(label, m->acc_bma, bma);
  print_text_bma("NLL (BMA)", m->nll_bma, bma);
  print_text_bma("ECE (BMA)", m->ece, bma);
  print_text_bma("predictive entropy (BMA)", m->entropy_bma, bma);
  printf("  predictive entropy (mean weights) %.4f\n", m->entropy_mean);
  printf("  accuracy after pruning (log alpha > %g) %.4f\n", threshold, m->acc_pruned);
}

int cmd_eval(int argc, char **argv) {
  model_args a;
  int r = parse_model_args(&a, argc, argv, EVAL_USAGE);
  if (r >= 0) return r;
  if (!a.data) {
    fprintf(stderr, "kronvi: --data is required\n%s", EVAL_USAGE);
    return 2;
  }
  kvi_net *net = NULL;
  kvi_trainer tr;
  bool had_state;
  if (load_with_state(a.model, &net, &tr, &had_state)) return cli_error("cannot load model");
  bool reg = tr.cfg.task == KVI_TASK_REGRESS;
  kvi_dataset train, test;
  kvi_status s = load_test_set(&train, &test, net, &tr.prep, &a, reg);
  if (s) {
    kvi_trainer_free(&tr);
    kvi_net_free(net);
    return cli_error("cannot load data");
  }
  kvi_metrics m;
  kvi_eval_config ec = kvi_eval_config_default();
  ec.samples = reg ? 0 : (int)a.samples, ec.seed = (uint64_t)a.seed, ec.bma = a.bma;
  ec.prune_threshold = a.threshold, ec.log_beta = kvi_net_log_beta(net);
  s = kvi_evaluate_ex(&m, net, &test, &ec);
  int rc = 0;
  if (s)
    rc = cli_error("evaluation failed");
  else if (a.json)
    print_eval_json(&m);
  else if (reg)
    printf("%s on %lld rows: RMSE %.6f, NLL %.6f\n", a.model, (long long)m.n, m.rmse_mean,
           m.nll_mean);
  else
    print_eval_text(&m, a.model, a.threshold);
  kvi_dataset_free(&train);
  kvi_dataset_free(&test);
  kvi_trainer_free(&tr);
  kvi_net_free(net);
  return rc;
}

static const char *PRUNE_USAGE =
    "usage: kronvi prune MODEL --out PRUNED [--threshold T]\n"
    "       kronvi prune MODEL --structured --out SMALL [--threshold T] [--data PATH\n"
    "                    [--limit-test N]] [--threads N]\n"
    "  Zeroes the posterior means of the weights with log alpha = log(Var/M^2) > T (default 3)\n"
    "  and writes the result as a new checkpoint (written atomically; MODEL is not changed).\n"
    "  --structured writes a smaller network instead: neurons / filters whose outgoing weights\n"
    "  are all pruned are removed, those whose incoming weights are all pruned output a constant\n"
    "  and are merged into one constant 'ghost' unit; its mean-weight predictions equal the\n"
    "  pruned model's. Prints units and weights per layer, the variational parameter count and\n"
    "  the compression ratio. With --data (as 'kronvi eval' loads it) both models are evaluated\n"
    "  on the test split: accuracies, the largest logit difference and the time of a mean-weight\n"
    "  pass over the test set (best of 5, the two alternating, same batch and threads) with the\n"
    "  speed-up.\n";

/* The image shape a checkpoint records (conv nets: the input size; MLPs: none). */
static kvi_dataset shape_of(const kvi_net *net) {
  kvi_dataset d;
  kvi_dataset_init(&d);
  if (net->cfg.in_h > 0 && net->cfg.in_w > 0) {
    d.h = net->cfg.in_h, d.w = net->cfg.in_w;
    d.c = net->in_size / (d.h * d.w);
    d.d = net->in_size;
  }
  return d;
}

/* A mean-weight pass over ds: logits (n, K) into out if not NULL, correct argmax predictions
 * (classification) into *correct if not NULL. */
static kvi_status mean_pass(kvi_net *net, const kvi_dataset *ds, kvi_real *out, int64_t *correct) {
  const int K = net->out_size, Bm = net->max_batch;
  int64_t c = 0;
  /* a data set held as bytes: a batch of rows as numbers at a time */
  kvi_real *xb = ds->x8 ? kvi_alloc((size_t)Bm * ds->d * sizeof *xb) : NULL;
  if (ds->x8 && !xb) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  for (int64_t r0 = 0; r0 < ds->n; r0 += Bm) {
    int b = (int)(ds->n - r0 < Bm ? ds->n - r0 : Bm);
    const kvi_real *y;
    kvi_status s = kvi_net_forward(net, &y, kvi_dataset_rows(ds, r0, b, xb), b, NULL);
    if (s) {
      kvi_free(xb);
      return s;
    }
    if (out) memcpy(out + (size_t)r0 * K, y, (size_t)b * K * sizeof *y);
    for (int i = 0; ds->y && i < b; i++) {
      int arg = 0;
      for (int k = 1; k < K; k++)
        if (y[(size_t)i * K + k] > y[(size_t)i * K + arg]) arg = k;
      c += arg == ds->y[r0 + i];
    }
  }
  kvi_free(xb);
  if (correct) *correct = c;
  return KVI_OK;
}

/* Best of 3 wall-clock times of a mean-weight pass over ds. */
/* The best of KVI__TIME_REPS mean-weight passes of each of two networks, the two alternating, so
 * that a slow phase of a shared machine hits both. Fails (-1) if a pass fails. */
#define KVI__TIME_REPS 5
static int time_passes(kvi_net *a, kvi_net *b, const kvi_dataset *ds, double *ta, double *tb) {
  *ta = *tb = 1e300;
  for (int r = 0; r < KVI__TIME_REPS; r++)
    for (int k = 0; k < 2; k++) {
      double t0 = kvi_time_now();
      if (mean_pass(k ? b : a, ds, NULL, NULL)) return -1;
      double t = kvi_time_now() - t0, *best = k ? tb : ta;
      if (t < *best) *best = t;
    }
  return 0;
}

static void print_compression(const kvi_compress_info *in, const kvi_net *net, double thr) {
  printf("structured compression (log alpha > %g): %s -> %s\n", thr, in->arch_before,
         in->arch_after);
  printf("%-8s %17s %19s %21s\n", "layer", "inputs", "units", "weights");
  for (int k = 0; k < in->nlayers; k++) {
    const kvi_compress_layer *l = &in->layer[k];
    char ghost[24] = "";
    if (l->ghost) snprintf(ghost, sizeof ghost, " (ghost: %d)", l->merged);
    printf("%-8s %7d -> %-7d %7d -> %-7d %9lld -> %-9lld%s\n", l->name, l->n_before, l->n_after,
           l->units_before, l->units_after, (long long)l->weights_before,
           (long long)l->weights_after, ghost);
  }
  printf("weights: %lld -> %lld (x%.2f)\n", (long long)in->weights_before,
         (long long)in->weights_after,
         in->weights_after ? (double)in->weights_before / (double)in->weights_after : 0.0);
  printf("variational parameters (%s): %zu -> %zu, compression ratio x%.2f\n",
         kvi_family_name(net->cfg.family), in->params_before, in->params_after,
         in->params_after ? (double)in->params_before / (double)in->params_after : 0.0);
  if (in->note[0]) printf("note: %s\n", in->note);
}

/* --data: accuracies, max |logit difference| and timing of the pruned and compressed models. */
static int compare_on_data(kvi_net *pruned, kvi_net *small, const kvi_data_prep *prep,
                           const model_args *a, bool reg) {
  kvi_dataset train, test;
  kvi_status s = load_test_set(&train, &test, pruned, prep, a, reg);
  if (!s && test.d != pruned->in_size)
    s = kvi_fail(KVI_ERR_SHAPE, "the data have %d features, the model expects %d", test.d,
                 pruned->in_size);
  size_t nk = (size_t)test.n * pruned->out_size;
  kvi_real *la = NULL, *lb = NULL;
  if (!s && (!(la = kvi_alloc(nk * sizeof *la)) || !(lb = kvi_alloc(nk * sizeof *lb))))
    s = kvi_fail(KVI_ERR_NOMEM, "out of memory");
  int64_t ca = 0, cb = 0;
  if (!s) s = mean_pass(pruned, &test, la, &ca);
  if (!s) s = mean_pass(small, &test, lb, &cb);
  int rc = 0;
  if (s) {
    rc = cli_error("cannot evaluate on the data");
  } else {
    const int K = pruned->out_size;
    double d = 0;
    int64_t differ = 0;
    for (int64_t i = 0; i < test.n; i++) {
      int aa = 0, ab = 0;
      for (int k = 0; k < K; k++) {
        size_t j = (size_t)i * K + k;
        d = fmax(d, fabs((double)la[j] - (double)lb[j]));
        if (la[j] > la[(size_t)i * K + aa]) aa = k;
        if (lb[j] > lb[(size_t)i * K + ab]) ab = k;
      }
      differ += aa != ab;
    }
    printf("test set: %lld rows\n", (long long)test.n);
    if (!reg)
      printf("accuracy (mean weights): pruned %.4f, compressed %.4f (%s)\n",
             (double)ca / (double)test.n, (double)cb / (double)test.n,
             differ ? "predictions differ" : "equal");
    if (differ) printf("  %lld predictions differ\n", (long long)differ);
    printf("max |logit difference|: %.3g\n", d);
    double ta, tb;
    if (time_passes(pruned, small, &test, &ta, &tb)) {
      rc = cli_error("cannot time the inference passes");
    } else {
      printf(
          "mean-weight inference over the test set (batch %d, %d threads, best of %d, the two "
          "alternating): pruned %.4f s, compressed %.4f s, speed-up x%.2f\n",
          pruned->max_batch, kvi_get_threads(), KVI__TIME_REPS, ta, tb, ta / tb);
    }
  }
  kvi_free(la), kvi_free(lb);
  kvi_dataset_free(&train);
  kvi_dataset_free(&test);
  return rc;
}

int cmd_prune(int argc, char **argv) {
  model_args a;
  int r = parse_model_args(&a, argc, argv, PRUNE_USAGE);
  if (r >= 0) return r;
  if (!a.out) {
    fprintf(stderr, "kronvi: --out is required\n%s", PRUNE_USAGE);
    return 2;
  }
  if (a.data && !a.structured) {
    fprintf(stderr, "kronvi: --data needs --structured\n%s", PRUNE_USAGE);
    return 2;
  }
  if (!cli_check_writable("--out", a.out)) return 1;
  kvi_net *net = NULL, *small = NULL;
  kvi_trainer tr, ts;
  memset(&ts, 0, sizeof ts);
  bool had_state;
  if (load_with_state(a.model, &net, &tr, &had_state)) return cli_error("cannot load model");
  if (!had_state) kvi_optimizer_free(&tr.opt); /* the output has none either */
  int nd = 0, rc = 0;
  kvi_compress_info info;
  if (a.structured && kvi_net_compress(&small, &info, net, a.threshold))
    rc = cli_error("structured compression failed");
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd && !rc; k++) {
    kvi_dense *l = kvi_net_dense(net, k, NULL);
    size_t nm = (size_t)l->n * l->m;
    kvi_real *la = kvi_alloc(nm * sizeof(kvi_real));
    if (!la || kvi_dense_log_alpha(la, net->params, l)) {
      rc = cli_error("prune");
      kvi_free(la);
      break;
    }
    kvi_real *M = kvi_params_data(net->params, l->iM);
    for (size_t i = 0; i < nm; i++)
      if (la[i] > a.threshold) M[i] = 0;
    kvi_free(la);
  }
  kvi_dataset shape = shape_of(net);
  if (!rc && a.structured) {
    if (kvi_trainer_init(&ts, small, &tr.cfg)) {
      rc = cli_error("structured compression failed");
    } else {
      /* the smaller net's optimizer state cannot come from the old one: none is written, and
       * resuming it needs --reset-optimizer */
      kvi_optimizer_free(&ts.opt);
      kvi_net_set_log_beta(small, kvi_net_log_beta(net)); /* kvi_trainer_init resets it */
      ts.prep = tr.prep;
      memset(&tr.prep, 0, sizeof tr.prep);
      ts.epoch = tr.epoch, ts.step = tr.step, ts.elapsed = tr.elapsed;
      ts.best_val = tr.best_val, ts.best_epoch = tr.best_epoch;
      if (kvi_checkpoint_save(a.out, &ts, &shape)) rc = cli_error("cannot write compressed model");
    }
    if (!rc) {
      print_compression(&info, net, a.threshold);
      printf("wrote %s\n", a.out);
      fflush(stdout);
      if (a.data) rc = compare_on_data(net, small, &ts.prep, &a, tr.cfg.task == KVI_TASK_REGRESS);
    }
  } else if (!rc) {
    kvi_sparsity sp;
    if (kvi_sparsity_compute(&sp, net, a.threshold)) rc = cli_error("prune");
    if (!rc && kvi_checkpoint_save(a.out, &tr, &shape)) rc = cli_error("cannot write pruned model");
    if (!rc) {
      kvi_sparsity_print(stdout, &sp, "pruned");
      printf("wrote %s\n", a.out);
    }
  }
  if (ts.net) kvi_trainer_free(&ts);
  kvi_trainer_free(&tr);
  kvi_net_free(small);
  kvi_net_free(net);
  return rc;
}

static const char *REPORT_USAGE =
    "usage: kronvi report MODEL [--threshold T] [--png PREFIX]\n"
    "  Per-layer sparsity in the paper's Table 1 form (A: weights, W: left, %%: dropped; and rows\n"
    "  and columns that keep a weight) for log alpha > T (default 3), and the compression ratio.\n"
    "  --png PREFIX also draws each weight layer's pruning mask as PREFIX<layer>.png (a directory\n"
    "  as PREFIX: DIR/<layer>.png): a pixel per weight, rows = inputs, columns = outputs; white:\n"
    "  kept, black: pruned, dark red: a row with no weight left, dark blue: such a column.\n";

int cmd_report(int argc, char **argv) {
  model_args a;
  int r = parse_model_args(&a, argc, argv, REPORT_USAGE);
  if (r >= 0) return r;
  kvi_net *net = NULL;
  kvi_train_config cfg;
  if (kvi_checkpoint_load(a.model, &net, NULL, &cfg)) return cli_error("cannot load model");
  kvi_sparsity sp;
  int rc = 0;
  if (kvi_sparsity_compute(&sp, net, a.threshold))
    rc = cli_error("report");
  else {
    printf("%s: %s, family %s, prior %s, %zu variational parameters\n", a.model, net->arch,
           kvi_family_name(net->cfg.family), kvi_prior_name(net->cfg.prior),
           kvi_net_param_count(net));
    kvi_sparsity_print(stdout, &sp, "weights with log alpha <= threshold");
    if (a.png) rc = cli_report_png(net, a.threshold, a.png);
  }
  kvi_net_free(net);
  return rc;
}

static const char *INSPECT_USAGE =
    "usage: kronvi inspect MODEL [--json]\n"
    "  Prints, per dense layer, the family, sizes and posterior: W is (n inputs x m outputs),\n"
    "  y = x W + b. With --json: \"M\" (n x m) mean; MN and MN+DIAG: \"U\" = A A^T (n x n, row\n"
    "  covariance over inputs) and \"V\" = B B^T (m x m, column covariance over outputs), so that\n"
    "  Cov(W_ij, W_kl) = U_ik V_jl (+ D_ij if i=k, j=l for MN+DIAG: \"D\" (n x m)); DIAG: \"var\"\n"
    "  (n x m) variances; \"b\" bias; group priors: \"log_tau\", \"log_gamma\".\n";

static void jb_matrix(kvi_json_buf *jb, const char *key, const kvi_real *x, int r, int c) {
  kvi_jb_key(jb, key);
  kvi_jb_begin_array(jb);
  for (int i = 0; i < r; i++) {
    kvi_jb_begin_array(jb);
    for (int j = 0; j < c; j++) kvi_jb_num(jb, (double)x[(size_t)i * c + j]);
    kvi_jb_end_array(jb);
  }
  kvi_jb_end_array(jb);
}

/* C (k, k) = L L^T from the Cholesky parameter storage P (k, k). */
static void gram(kvi_real *C, kvi_real *L, const kvi_real *P, int k) {
  kvi_chol_materialize(L, P, k);
  kvi_gemm(false, true, k, k, k, 1, L, k, L, k, 0, C, k);
}

int cmd_inspect(int argc, char **argv) {
  model_args a;
  int r = parse_model_args(&a, argc, argv, INSPECT_USAGE);
  if (r >= 0) return r;
  kvi_net *net = NULL;
  kvi_train_config cfg;
  if (kvi_checkpoint_load(a.model, &net, NULL, &cfg)) return cli_error("cannot load model");
  int nd = 0, rc = 0;
  kvi_net_dense(net, 0, &nd);
  kvi_json_buf jb;
  kvi_jb_init(&jb, false);
  kvi_jb_begin_object(&jb);
  kvi_jb_kv_str(&jb, "arch", net->arch);
  kvi_jb_kv_str(&jb, "family", kvi_family_name(net->cfg.family));
  kvi_jb_kv_str(&jb, "prior", kvi_prior_name(net->cfg.prior));
  kvi_jb_kv_str(&jb, "orientation",
                "W is (n inputs, m outputs), y = x W + b, Cov(W_ij, W_kl) = U_ik V_jl");
  kvi_jb_kv_num(&jb, "log_noise_precision", (double)kvi_net_log_beta(net));
  if (net->cfg.input_std > 0) { /* kronvi train --normalize: x -> (x - mean) / std first */
    kvi_jb_key(&jb, "input_norm");
    kvi_jb_begin_array(&jb);
    kvi_jb_num(&jb, net->cfg.input_mean);
    kvi_jb_num(&jb, net->cfg.input_std);
    kvi_jb_end_array(&jb);
  }
  kvi_jb_key(&jb, "layers");
  kvi_jb_begin_array(&jb);
  if (!a.json) {
    printf("%s: %s, family %s, prior %s\n", a.model, net->arch, kvi_family_name(net->cfg.family),
           kvi_prior_name(net->cfg.prior));
    if (net->cfg.input_std > 0)
      printf("  inputs normalized: (x - %.6g) / %.6g\n", net->cfg.input_mean, net->cfg.input_std);
  }
  for (int k = 0; k < nd && !rc; k++) {
    kvi_dense *l = kvi_net_dense(net, k, NULL);
    const kvi_params *p = net->params;
    int n = l->n, m = l->m;
    size_t big = (size_t)(n > m ? n : m);
    kvi_real *buf = kvi_alloc(2 * (big * big + (size_t)n * m) * sizeof(kvi_real));
    if (!buf) {
      rc = cli_error("inspect");
      break;
    }
    kvi_real *C = buf, *L = buf + big * big, *V = L + big * big;
    kvi_dense_marginal_var(V, p, l);
    double vmean = 0, mabs = 0;
    const kvi_real *M = kvi_params_data(p, l->iM);
    for (size_t i = 0; i < (size_t)n * m; i++) vmean += V[i], mabs += fabs((double)M[i]);
    if (!a.json)
      printf("  %s: %d x %d, %s, mean |M| %.4g, mean variance %.4g\n", l->name, n, m,
             kvi_family_name(l->family), mabs / ((double)n * m), vmean / ((double)n * m));
    kvi_jb_begin_object(&jb);
    kvi_jb_kv_str(&jb, "name", l->name);
    kvi_jb_kv_str(&jb, "family", kvi_family_name(l->family));
    kvi_jb_kv_int(&jb, "n", n);
    kvi_jb_kv_int(&jb, "m", m);
    const kvi_layer *owner = &net->layers[kvi_net_weight_layer(net, k)];
    if (owner->ops == &kvi_conv_ops) { /* rows are input taps (ky, kx, ci), columns filters */
      const kvi_conv *cv = owner->state;
      kvi_jb_kv_str(&jb, "kind", "conv");
      kvi_jb_kv_str(&jb, "rows", "(ky * kernel + kx) * in_shape[2] + ci");
      kvi_jb_kv_int(&jb, "kernel", cv->k);
      kvi_jb_kv_int(&jb, "stride", cv->stride);
      kvi_jb_kv_int(&jb, "pad", cv->pad);
      int64_t shp[6] = {cv->h, cv->w, cv->c_in, cv->oh, cv->ow, cv->c_out};
      for (int q = 0; q < 2; q++) {
        kvi_jb_key(&jb, q ? "out_shape" : "in_shape");
        kvi_jb_begin_array(&jb);
        for (int z = 0; z < 3; z++) kvi_jb_int(&jb, shp[3 * q + z]);
        kvi_jb_end_array(&jb);
      }
      if (!a.json)
        printf("  %s: %dx%d conv, stride %d, pad %d, %dx%dx%d -> %dx%dx%d\n", l->name, cv->k, cv->k,
               cv->stride, cv->pad, cv->h, cv->w, cv->c_in, cv->oh, cv->ow, cv->c_out);
    } else {
      kvi_jb_kv_str(&jb, "kind", "dense");
    }
    if (a.json) {
      jb_matrix(&jb, "M", M, n, m);
      if (l->iA >= 0) {
        gram(C, L, kvi_params_data(p, l->iA), n);
        jb_matrix(&jb, "U", C, n, n);
        gram(C, L, kvi_params_data(p, l->iB), m);
        jb_matrix(&jb, "V", C, m, m);
      }
      if (l->family == KVI_FAMILY_DIAG) jb_matrix(&jb, "var", V, n, m);
      if (l->family == KVI_FAMILY_MNDIAG) {
        const kvi_real *ld = kvi_params_data(p, l->iS);
        for (size_t i = 0; i < (size_t)n * m; i++) V[i] = (kvi_real)exp((double)ld[i]);
        jb_matrix(&jb, "D", V, n, m);
      }
      if (l->ib >= 0) jb_matrix(&jb, "b", kvi_params_data(p, l->ib), 1, m);
      if (l->itau >= 0) {
        jb_matrix(&jb, "log_tau", kvi_params_data(p, l->itau), 1, n);
        jb_matrix(&jb, "log_gamma", kvi_params_data(p, l->igamma), 1, m);
      }
    }
    kvi_jb_end_object(&jb);
    kvi_free(buf);
  }
  kvi_jb_end_array(&jb);
  kvi_jb_end_object(&jb);
  char *s = NULL;
  size_t len = 0;
  if (kvi_jb_take(&jb, &s, &len) != KVI_OK)
    rc = cli_error("inspect");
  else if (a.json && !rc) {
    fwrite(s, 1, len, stdout);
    printf("\n");
  }
  free(s);
  kvi_net_free(net);
  return rc;
}
