/* kronvi vae: the subcommands (cmd_vae.c: dispatch and train; vae_cmds.c: eval, sample,
 * reconstruct; vae_data.c: binarize and the data helpers). */
#ifndef KRONVI_VAE_CLI_H
#define KRONVI_VAE_CLI_H

#include "cli.h"

int vae_train(int argc, char **argv);
int vae_eval(int argc, char **argv);
int vae_sample(int argc, char **argv);
int vae_reconstruct(int argc, char **argv);
int vae_binarize(int argc, char **argv);

/* Loads the IDX images of dir (train and test splits, first limit_* rows, 0: all) and checks
 * that the split(s) the command uses are binary; messages name the directory. want_train /
 * want_test: which split is used (the other is loaded with one row only). */
kvi_status vae_load_data(kvi_dataset *train, kvi_dataset *test, const char *dir, bool want_train,
                         int64_t limit_train, bool want_test, int64_t limit_test);
/* Moves the last nval rows of ds into val (the validation split of kronvi vae train). */
kvi_status vae_split_tail(kvi_dataset *ds, kvi_dataset *val, int64_t nval);
/* "PxQ" -> p, q (positive); false with a message otherwise. */
bool vae_parse_shape(const char *s, int *p, int *q);
/* "diag", "mn 20x2", "mv" */
const char *vae_family_label(const kvi_vae_config *c);

#endif
