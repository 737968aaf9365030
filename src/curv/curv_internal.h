/* Private to src/curv: the product context (curv.c) shared with pullback sampling. */
#ifndef KRONVI_CURV_INTERNAL_H
#define KRONVI_CURV_INTERNAL_H

#include "kronvi/curv.h"

struct kvi_curv {
  kvi_net *net;
  kvi_curv_batch b;    /* the batch of the last evaluation */
  const kvi_real *out; /* its outputs (the net's last activation) */
  bool ready;          /* the net holds the forward and the gradient's backward of the current
                          parameters on b: products may run */
  kvi_real *mask;      /* 1 on the variables */
  kvi_arena *arena;
  kvi_real **racts, **rgrads, **jgrads; /* per layer, see curv.c */
  void **rws;
  kvi_real *dout, *rdout, *u; /* (B, out_size): dz of the loss, R{dz}, J^T's input */
  kvi_real *gtmp, *dw;        /* (n): a gradient re-run by kvi__curv_ensure; a pseudo-gradient */
};

/* Makes the net hold the forward and the gradient's backward at the current parameters (runs
 * them again after an evaluation without gradient); a and b: the caller's pointers, checked
 * for NULL. */
kvi_status kvi__curv_ensure(kvi_curv *c, const void *a, const void *b);

#endif
