/* kronvi: command-line tool for sparse Bayesian networks with Matrix Normal posteriors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void usage(FILE *f) {
  fprintf(f,
          "kronvi %s: sparse Bayesian deep learning with Matrix Normal posteriors\n"
          "\n"
          "usage: kronvi <command> [options]\n"
          "\n"
          "commands:\n"
          "  train     train a Bayesian network by the ELBO (classification or regression)\n"
          "  eval      evaluate a checkpoint: accuracy, BMA accuracy, NLL, ECE, pruned accuracy\n"
          "  prune     zero the weights with log alpha above a threshold, write a new checkpoint\n"
          "  report    per-layer sparsity table and compression ratio of a checkpoint\n"
          "  inspect   posterior means and covariance factors of a checkpoint (text or --json)\n"
          "\n"
          "'kronvi <command> --help' documents each command's options.\n",
          "0.1.0");
}

int cli_error(const char *what) {
  const char *m = kvi_last_error();
  fprintf(stderr, "kronvi: %s%s%s\n", what, m[0] ? ": " : "", m);
  return 1;
}

bool cli_int(const char *flag, const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s ? s : "", &end, 10);
  if (!s || !*s || *end || errno || v < lo || v > hi) {
    fprintf(stderr, "kronvi: %s expects an integer in [%ld, %ld], got '%s'\n", flag, lo, hi,
            s ? s : "");
    return false;
  }
  *out = v;
  return true;
}

bool cli_double(const char *flag, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s ? s : "", &end);
  if (!s || !*s || *end || errno || !(v >= lo && v <= hi)) {
    fprintf(stderr, "kronvi: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi,
            s ? s : "");
    return false;
  }
  *out = v;
  return true;
}

kvi_status cli_load_data(kvi_dataset *train, kvi_dataset *test, const char *path, bool regression,
                         int targets, const char *test_path, int64_t limit_train,
                         int64_t limit_test) {
  kvi_dataset_init(train);
  kvi_dataset_init(test);
  if (!path) return kvi_fail(KVI_ERR_ARG, "--data is required");
  if (regression) {
    kvi_status s = kvi_csv_load(train, path, targets);
    if (!s && limit_train > 0 && limit_train < train->n)
      s = kvi_dataset_truncate(train, limit_train);
    if (!s && test_path) s = kvi_csv_load(test, test_path, targets);
    if (s) kvi_dataset_free(train);
    return s;
  }
  struct stat st;
  if (stat(path, &st) != 0)
    return kvi_fail(KVI_ERR_IO,
                    "%s: %s (HINT: --data names a directory with the IDX or CIFAR-10 files)", path,
                    strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return kvi_fail(KVI_ERR_ARG, "%s: --data must be a directory for classification", path);
  return kvi_data_load_dir(train, test, path, limit_train, limit_test);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf("kronvi 0.1.0 (%s, BLAS core %s)\n", KVI_REAL_NAME, kvi_blas_core());
    return 0;
  }
  if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
  if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
  if (!strcmp(cmd, "prune")) return cmd_prune(argc - 1, argv + 1);
  if (!strcmp(cmd, "report")) return cmd_report(argc - 1, argv + 1);
  if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 1, argv + 1);
  fprintf(stderr, "kronvi: unknown command '%s'\n\n", cmd);
  usage(stderr);
  return 2;
}
