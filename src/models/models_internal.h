/* Private to the models module: the two phases of building a net. */
#ifndef KRONVI_MODELS_INTERNAL_H
#define KRONVI_MODELS_INTERNAL_H

#include "kronvi/models.h"

#define KVI__MAX_TOKENS 65 /* the input and 64 layers */

/* Declares the net's layers and parameter views into p (NULL: the net's own block), checks
 * the memory estimate. Parameter names get the prefix name. */
kvi_status kvi__net_declare(kvi_net **out, kvi_params *p, const char *name, const char *arch,
                            int in_size, const kvi_net_config *cfg, int max_batch);
/* After the block is allocated: activations, workspaces, noise; initial values from the stream
 * (seed, 0x1a17 + stream). */
kvi_status kvi__net_finish(kvi_net *net, uint64_t seed, uint64_t stream);

#endif
