/* kronvi train: the parsed command line (cmd_train.c) and the run (train_run.c). */
#ifndef KRONVI_TRAIN_CLI_H
#define KRONVI_TRAIN_CLI_H

#include "cli.h"

#define TRAIN_NOPTS 96 /* >= the number of long options of kronvi train */

typedef struct {
  kvi_train_config cfg;
  kvi_net_config nc;
  const char *data, *test_path, *arch, *resume, *progress, *save, *log;
  long targets, nval, threads, lt, lte, pad;
  bool regression, standardize, normalize, epochs_given, reset_optimizer;
  bool given[TRAIN_NOPTS]; /* given[O_X - O_DATA]: the option appeared */
  kvi_comm *comm;          /* the processes of a data-parallel run (mpirun); NULL: one */
} train_args;

/* Option codes (getopt_long values), in cmd_train.c's table order. */
enum {
  O_DATA = 256,
  O_TASK,
  O_TARGETS,
  O_TEST,
  O_VAL,
  O_LTRAIN,
  O_LTEST,
  O_STD,
  O_NORM,
  O_FINETUNE,
  O_PAD,
  O_HFLIP,
  O_PRIORUPD,
  O_ARCH,
  O_ACT,
  O_FAMILY,
  O_PRIOR,
  O_NOBIAS,
  O_INITLS,
  O_NOISE,
  O_LEARNNOISE,
  O_EPOCHS,
  O_BATCH,
  O_OPT,
  O_LR,
  O_LRDECAY,
  O_LRFINAL,
  O_MOM,
  O_WARMUP,
  O_SCHED,
  O_PATIENCE,
  O_SAMPLES,
  O_EVALEVERY,
  O_THR,
  O_SAVE,
  O_SAVEEVERY,
  O_RESUME,
  O_LOG,
  O_SEED,
  O_THREADS,
  O_PROGRESS,
  O_RESETOPT,
  O_MAXMEM,
  O_NESTEROV,
  O_WD,
  O_STOPAFTER,
  O_FIXEDTHREADS,
  O_DAMPING,
  O_KFACEMA,
  O_INVEVERY,
  O_KLCLIP,
  O_FISHER,
  O_DAMPKIND,
  O_EKFAC,
  O_ADAPT,
  O_BMA,
  O_OVERLAP,
  O_CGMAX,
  O_DENSEMAX,
  O_LBFGSMEM,
  O_PROXSTEPS,
  O_PROXFSD,
  O_PROXWSD,
  O_HFHESS,
  O_MNDBOUND,
  O_SLQPROBES,
  O_SLQSTEPS,
  O_SLQREFRESH,
  O_LAST
};

static inline bool train_given(const train_args *a, int opt) { return a->given[opt - O_DATA]; }

/* Loads and prepares the data, builds or resumes the net, trains, prints the summary. */
int train_run(train_args *a);

#endif
