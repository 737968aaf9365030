/* Private to src/train: the solvers' batch objective (solver_step.c), used by the trainer. */
#ifndef KRONVI_TRAIN_SOLVER_INTERNAL_H
#define KRONVI_TRAIN_SOLVER_INTERNAL_H

#include "kronvi/train.h"

/* Sets t->solver when t's optimizer is a solver: a curvature context for the net and the
 * objective of a batch. Point networks only (KVI_ERR_UNSUPPORTED otherwise). */
kvi_status kvi__solver_create(kvi_trainer *t);
void kvi__solver_free(kvi_trainer *t);
/* One solver iteration on the gathered batch (x, and labels y or targets T, of b rows): *loss
 * and *correct are those of the batch at the step's start. */
kvi_status kvi__solver_step(kvi_trainer *t, const kvi_real *x, const int32_t *y, const kvi_real *T,
                            int b, double lr, double *loss, int *correct);

#endif
