/* Private to src/nn: the convolution's passes (conv_run.c) shared with its layer kind (conv.c). */
#ifndef KRONVI_NN_CONV_INTERNAL_H
#define KRONVI_NN_CONV_INTERNAL_H

#include "kronvi/nn.h"

/* Rows of the unfolded input, batch * oh * ow, checked to fit in int (fails with a message). */
kvi_status kvi__conv_rows(int *rows, const kvi_conv *l, int batch, const char *fn);
/* Examples per chunk of the passes (l->chunk, or the automatic choice). */
int kvi__conv_chunk(const kvi_conv *l);
/* The forward's unfolded input (rows, n) is at the start of the workspace. */
static inline const kvi_real *kvi__conv_cols(const void *ws) { return (const kvi_real *)ws; }

#endif
