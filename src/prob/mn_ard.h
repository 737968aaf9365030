/* The MN KL under the per-weight ARD prior (kvi_mn_kl_ard) fused into an optimizer's step
 * (kvi_optimizer_step_ard), private to the library.
 *
 * The KL's gradient is added block of rows by block of rows, and each block's rows are updated
 * (`update`, e.g. Adam on that range) right after, while the gradient rows are still in cache:
 * M's blocks first, which also yield the gradients w.r.t. u_i = U_ii and v_j = V_jj, then the
 * rows of the Cholesky factors A and B. The additions are those of kvi_mn_kl_ard, in its order,
 * so the numbers are the same as the KL pass followed by the optimizer's pass. */
#ifndef KRONVI_PROB_MN_ARD_H
#define KRONVI_PROB_MN_ARD_H

#include "prob/prob_internal.h"

/* The update of elements [off, off + len) of the parameter block (kvi_opt_run_fn's shape). */
typedef void (*kvi__rows_fn)(void *ctx, size_t off, size_t len, kvi_role role);

typedef struct {
  kvi_mn q;
  kvi_mn_grad g;
  kvi__uv w;
  double gs, ld;    /* gscale; m log|A| + n log|B| */
  double *kl;       /* out */
  bool fused;       /* false: the KL and its gradient are already in (outside the safe range) */
  size_t off[3];    /* set by the caller before kvi__mn_ard_fuse_run: element offsets of M, A, B */
  kvi_role role[3]; /* and their roles */
  double acc;       /* sum log S (kvi__mn_ard_fuse_run's own) */
  int m_bad;        /* M's range test failed (kvi__mn_ard_fuse_begin's own) */
  /* set by the caller: two more arrays that update() reads and writes at the same element
   * offsets (e.g. an optimizer's moments), prefetched a row ahead of the factors' rows; or NULL */
  const kvi_real *pf[2];
} kvi__mn_ard_fuse;

/* Begins nf blocks, whose q, g, gs and kl the caller set: checks them and takes each frame;
 * then u, v and the safety test of kvi_mn_kl_ard (no update yet), every block's in one parallel
 * loop. A block outside the range where every term is finite gets its KL and gradient as
 * kvi_mn_kl_ard computes them (failing, with nothing added for it, on a non-finite KL);
 * kvi__mn_ard_fuse_run then only runs its updates. On failure no frame is held. */
kvi_status kvi__mn_ard_fuse_begin(kvi__mn_ard_fuse *f, int nf);
/* The fused passes of nf begun blocks, in one parallel region: the KL's gradient of each block
 * of rows of every M, then update() on those rows; after a barrier the column sums; after
 * another, the rows of the lower triangles of every A and B (their u, v terms), each then
 * updated. Elements off[k] + ... of each block's M, A, B with role[k]. Blocks not fused (the
 * gradient is in already) only run their updates. Writes each *kl and frees the frames. Every
 * item's arithmetic is that of one block alone, so the results do not depend on the threads. */
void kvi__mn_ard_fuse_run(kvi__mn_ard_fuse *f, int nf, kvi__rows_fn update, void *ctx);
/* Frees the frame of a begun block that will not run. */
void kvi__mn_ard_fuse_free(kvi__mn_ard_fuse *f);

/* Rows [i0, i1) of kvi__chol_rownorm2_backward followed by kvi__chol_add_diag(dP, n, diag), each
 * row then given to update() (element offset off + i n, its i + 1 lower-triangle entries). gu is
 * scaled by gs first (kvi__uv_finish's order). pf (NULL, or entries NULL): the arrays that
 * update() also touches at element offset off + i n, prefetched a row ahead with P and dP. */
void kvi__chol_rownorm2_backward_update_rows(kvi_real *dP, const kvi_real *P, int n, double *gu,
                                             double gs, double diag, kvi__rows_fn update, void *ctx,
                                             size_t off, kvi_role role, int i0, int i1,
                                             const kvi_real *const pf[2]);

#endif
