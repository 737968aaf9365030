/* kronvi eval / prune / report / inspect: commands that read a checkpoint. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { M_DATA = 300, M_SAMPLES, M_JSON, M_THREADS, M_THR, M_OUT, M_LTEST, M_SEED };
static const struct option model_opts[] = {
    {"data", 1, 0, M_DATA},        {"samples", 1, 0, M_SAMPLES},
    {"json", 0, 0, M_JSON},        {"threads", 1, 0, M_THREADS},
    {"threshold", 1, 0, M_THR},    {"out", 1, 0, M_OUT},
    {"limit-test", 1, 0, M_LTEST}, {"seed", 1, 0, M_SEED},
    {"help", 0, 0, 'h'},           {0, 0, 0, 0}};

typedef struct {
  const char *model, *data, *out;
  long samples, threads, limit_test, seed;
  double threshold;
  bool json, help;
} model_args;

/* Parses the shared options; returns 0 ok, 2 on a usage error. */
static int parse_model_args(model_args *a, int argc, char **argv, const char *usage) {
  memset(a, 0, sizeof *a);
  a->samples = 10, a->threads = 2, a->threshold = 3.0, a->seed = 1;
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
    "  Evaluates a checkpoint on the test split of PATH (IDX/CIFAR-10 directory, or a regression\n"
    "  CSV): accuracy with the mean weights, Bayesian model averaging over K weight samples\n"
    "  (default 10), NLL, expected calibration error, accuracy after pruning log alpha > T\n"
    "  (default 3). --limit-test N uses the first N rows; --seed S seeds the samples.\n";

int cmd_eval(int argc, char **argv) {
  model_args a;
  int r = parse_model_args(&a, argc, argv, EVAL_USAGE);
  if (r >= 0) return r;
  if (!a.data) {
    fprintf(stderr, "kronvi: --data is required\n%s", EVAL_USAGE);
    return 2;
  }
  kvi_net *net = NULL;
  kvi_train_config cfg;
  if (kvi_checkpoint_load(a.model, &net, NULL, &cfg)) return cli_error("cannot load model");
  bool reg = cfg.task == KVI_TASK_REGRESS;
  kvi_dataset train, test;
  kvi_status s;
  if (reg)
    s = cli_load_data(&test, &train, a.data, true, net->out_size, NULL, a.limit_test, 0);
  else
    s = cli_load_data(&train, &test, a.data, false, 0, NULL, 1, a.limit_test);
  /* a convolutional model trained on padded images (--pad) gets the same padding */
  int pad = net->cfg.in_h > 0 && test.h > 0 ? (net->cfg.in_h - test.h) / 2 : 0;
  if (!s && pad > 0 && (s = kvi_dataset_pad(&test, pad)) != KVI_OK) {
    kvi_dataset_free(&train);
    kvi_dataset_free(&test);
  }
  if (s) {
    kvi_net_free(net);
    return cli_error("cannot load data");
  }
  kvi_metrics m;
  s = kvi_evaluate(&m, net, &test, reg ? 0 : (int)a.samples, (uint64_t)a.seed, a.threshold,
                   net->log_beta);
  int rc = 0;
  if (s)
    rc = cli_error("evaluation failed");
  else if (a.json)
    printf(
        "{\"rows\": %lld, \"accuracy\": %.6f, \"nll\": %.6f, \"accuracy_bma\": %.6f, "
        "\"nll_bma\": %.6f, \"ece\": %.6f, \"accuracy_pruned\": %.6f, \"rmse\": %.6g, "
        "\"samples\": %d}\n",
        (long long)m.n, m.acc_mean, m.nll_mean, m.acc_bma, m.nll_bma, m.ece, m.acc_pruned,
        m.rmse_mean, m.samples);
  else if (reg)
    printf("%s on %lld rows: RMSE %.6f, NLL %.6f\n", a.model, (long long)m.n, m.rmse_mean,
           m.nll_mean);
  else
    printf(
        "%s on %lld rows:\n  accuracy (mean weights) %.4f\n  accuracy (BMA, %d samples) %.4f\n"
        "  NLL (BMA) %.4f\n  ECE (BMA) %.4f\n  accuracy after pruning (log alpha > %g) %.4f\n",
        a.model, (long long)m.n, m.acc_mean, m.samples, m.acc_bma, m.nll_bma, m.ece, a.threshold,
        m.acc_pruned);
  kvi_dataset_free(&train);
  kvi_dataset_free(&test);
  kvi_net_free(net);
  return rc;
}

static const char *PRUNE_USAGE =
    "usage: kronvi prune MODEL --out PRUNED [--threshold T]\n"
    "  Zeroes the posterior means of the weights with log alpha = log(Var/M^2) > T (default 3)\n"
    "  and writes the result as a new checkpoint (written atomically; MODEL is not changed).\n";

int cmd_prune(int argc, char **argv) {
  model_args a;
  int r = parse_model_args(&a, argc, argv, PRUNE_USAGE);
  if (r >= 0) return r;
  if (!a.out) {
    fprintf(stderr, "kronvi: --out is required\n%s", PRUNE_USAGE);
    return 2;
  }
  kvi_net *net = NULL;
  kvi_trainer tr;
  if (kvi_checkpoint_load(a.model, &net, &tr, NULL)) return cli_error("cannot load model");
  int nd = 0, rc = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd && !rc; k++) {
    kvi_dense *l = kvi_net_dense(net, k, NULL);
    size_t nm = (size_t)l->n * l->m;
    kvi_real *la = kvi_alloc(nm * sizeof(kvi_real));
    if (!la || kvi_dense_log_alpha(la, &net->params, l)) {
      rc = cli_error("prune");
      kvi_free(la);
      break;
    }
    kvi_real *M = kvi_params_data(&net->params, l->iM);
    for (size_t i = 0; i < nm; i++)
      if (la[i] > a.threshold) M[i] = 0;
    kvi_free(la);
  }
  kvi_sparsity sp;
  if (!rc && kvi_sparsity_compute(&sp, net, a.threshold)) rc = cli_error("prune");
  if (!rc && kvi_checkpoint_save(a.out, &tr, NULL)) rc = cli_error("cannot write pruned model");
  if (!rc) {
    kvi_sparsity_print(stdout, &sp, "pruned");
    printf("wrote %s\n", a.out);
  }
  kvi_trainer_free(&tr);
  kvi_net_free(net);
  return rc;
}

static const char *REPORT_USAGE =
    "usage: kronvi report MODEL [--threshold T]\n"
    "  Per-layer sparsity in the paper's Table 1 form (A: weights, W: left, %%: dropped; and rows\n"
    "  and columns that keep a weight) for log alpha > T (default 3), and the compression ratio.\n";

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
  kvi_jb_kv_num(&jb, "log_noise_precision", (double)net->log_beta);
  kvi_jb_key(&jb, "layers");
  kvi_jb_begin_array(&jb);
  if (!a.json)
    printf("%s: %s, family %s, prior %s\n", a.model, net->arch, kvi_family_name(net->cfg.family),
           kvi_prior_name(net->cfg.prior));
  for (int k = 0; k < nd && !rc; k++) {
    kvi_dense *l = kvi_net_dense(net, k, NULL);
    const kvi_params *p = &net->params;
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
