/* Private to the train module: what the sharded evaluation needs of bma.c. */
#ifndef KRONVI_TRAIN_INTERNAL_H
#define KRONVI_TRAIN_INTERNAL_H

#include "kronvi/train.h"

/* kvi_bma_probs of the rows X (n), which start at chunk chunk0 (of net->max_batch rows) of the
 * data set: the LRT estimator keys chunk j of the data set as (seed, 2^20 j + k) whichever
 * process evaluates it. kvi_bma_probs is this with chunk0 = 0. */
kvi_status kvi__bma_probs_at(double *P, kvi_net *net, const kvi_real *X, int64_t n, int samples,
                             uint64_t seed, kvi_bma_method method, int64_t chunk0);

#endif
