/* Private to src/nn: the convolution's passes (conv_run.c) shared with its layer kind (conv.c). */
#ifndef KRONVI_NN_CONV_INTERNAL_H
#define KRONVI_NN_CONV_INTERNAL_H

#include "kronvi/nn.h"

/* Rows of the unfolded input, batch * oh * ow, checked to fit in int (fails with a message). */
kvi_status kvi__conv_rows(int *rows, const kvi_conv *l, int batch, const char *fn);
/* Examples per chunk of the passes (l->chunk, or the automatic choice). */
int kvi__conv_chunk(const kvi_conv *l);
/* Rows of examples [e0, e1) of the unfolded input: cols ((e1 - e0) * oh * ow, n) from X. */
void kvi__conv_im2col(kvi_real *cols, const kvi_real *X, const kvi_conv *l, int e0, int e1);
/* dX of examples [e0, e1) = col2im(dcols), the adjoint of im2col (dX of those examples is
 * overwritten). */
void kvi__conv_col2im(kvi_real *dX, const kvi_real *dcols, const kvi_conv *l, int e0, int e1);
/* The forward's unfolded input (rows, n) is at the start of the workspace. */
static inline const kvi_real *kvi__conv_cols(const void *ws) { return (const kvi_real *)ws; }

#endif
