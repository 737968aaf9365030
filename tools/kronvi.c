/* kronvi: command-line tool for sparse Bayesian networks with Matrix Normal posteriors. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define KRONVI_VERSION "0.1.0"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv); /* argv[0] is the command's name */
  const char *summary;               /* one line of the usage text */
} cli_command;

static const cli_command COMMANDS[] = {
    {"train", cmd_train, "train a Bayesian network by the ELBO (classification or regression)"},
    {"eval", cmd_eval, "evaluate a checkpoint: accuracy, BMA accuracy, NLL, ECE, pruned accuracy"},
    {"prune", cmd_prune,
     "zero the weights with log alpha above a threshold, write a new checkpoint"},
    {"report", cmd_report, "per-layer sparsity table and compression ratio of a checkpoint"},
    {"inspect", cmd_inspect,
     "posterior means and covariance factors of a checkpoint (text or --json)"},
    {"laplace", cmd_laplace,
     "K-FAC Laplace: an MN posterior around a trained point network's weights"},
    {"vae", cmd_vae,
     "variational auto-encoders with DIAG, MN and full-covariance latents (train, eval, ...)"},
    {"optimize", cmd_optimize,
     "Newton-type, quasi-Newton, proximal and first-order methods on test problems"},
};
enum { N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0] };

static void usage(FILE *f) {
  fprintf(f,
          "kronvi %s: sparse Bayesian deep learning with Matrix Normal posteriors\n"
          "\n"
          "usage: kronvi <command> [options]\n"
          "\n"
          "commands:\n",
          KRONVI_VERSION);
  for (int i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-9s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
  fprintf(f, "\n'kronvi <command> --help' documents each command's options.\n");
}

static const cli_command *find_command(const char *name) {
  for (int i = 0; i < N_COMMANDS; i++)
    if (!strcmp(COMMANDS[i].name, name)) return &COMMANDS[i];
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  cli_pick_blas_core(argv);
  const char *name = argv[1];
  if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(name, "--version")) {
    printf("kronvi %s (%s, BLAS core %s, SIMD %s)\nMPI: %s\n", KRONVI_VERSION, KVI_REAL_NAME,
           cli_blas_description(), kvi_simd_isa(),
           kvi_comm_mpi_built() ? kvi_comm_mpi_version() : "no (built without KRONVI_MPI)");
    return 0;
  }
  const cli_command *cmd = find_command(name);
  if (cmd) return cmd->run(argc - 1, argv + 1);
  fprintf(stderr, "kronvi: unknown command '%s'\n\n", name);
  usage(stderr);
  return 2;
}
