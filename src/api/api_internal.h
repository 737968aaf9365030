/* The stable API's handles (include/kronvi/kronvi.h) over the internal modules, and the
 * "key=value" option parser they share. Not installed. */
#ifndef KRONVI_API_INTERNAL_H
#define KRONVI_API_INTERNAL_H

#include <stdbool.h>

#include "kronvi/kronvi.h"
#include "kronvi/train.h"

/* A data set: the internal dataset it owns. */
struct kvi_dset {
  kvi_dataset ds;
};

/* Optimizer settings. */
struct kvi_optim {
  kvi_opt_config cfg;
};

/* A network with its training state: tr is always initialized (tr.net == net), so that a
 * network saves as a checkpoint the CLI reads; has_opt says whether tr.opt holds an optimizer
 * (a compressed network has none). */
struct kvi_network {
  kvi_net *net;
  kvi_trainer tr;
  bool has_opt;
  int c, h, w; /* image shape recorded in checkpoints (0: none) */
};

/* A trainer: the configuration it applies to its network and the progress callback. */
struct kvi_learner {
  kvi_network *net; /* not owned */
  kvi_train_config cfg;
  kvi_progress_fn fn;
  void *user;
  bool every_step, stopped;
  int64_t batches; /* per epoch of the current fit */
};

/* ---- options: "key=value" pairs separated by spaces or commas ----------------------------- */
typedef struct {
  const char *s; /* what is left to read */
  char key[64], val[192];
} kvi__opts;

/* Reads the next pair into o->key / o->val: 1 if one was read, 0 at the end, -1 (with a
 * message) for a malformed pair. */
int kvi__opts_next(kvi__opts *o);
/* Values of o->val with range checks; messages name the key. */
kvi_status kvi__opt_int(const kvi__opts *o, long lo, long hi, int *out);
kvi_status kvi__opt_u64(const kvi__opts *o, uint64_t *out);
kvi_status kvi__opt_double(const kvi__opts *o, double lo, double hi, double *out);
kvi_status kvi__opt_bool(const kvi__opts *o, bool *out);
kvi_status kvi__opt_unknown(const kvi__opts *o, const char *what, const char *known);

/* Fails with KVI_ERR_ARG naming the function when p is NULL. */
#define KVI__NEED(p, fn) \
  if (!(p)) return kvi_fail(KVI_ERR_ARG, "%s: %s is NULL", fn, #p)

#endif
