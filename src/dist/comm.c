/* The process group interface (kronvi/dist.h) and its single-process implementation. The MPI
 * implementation is src/dist/comm_mpi.c, compiled only with KRONVI_MPI (KVI_HAVE_MPI). */
#include <stdlib.h>

#include "kronvi/dist.h"

#ifdef KVI_HAVE_MPI
/* src/dist/comm_mpi.c */
kvi_status kvi__comm_mpi_init(kvi_comm **out, int *argc, char ***argv);
const char *kvi__comm_mpi_version(void);
#endif

/* ---- one process -------------------------------------------------------------------------- */
static kvi_status kvi__self_sum(kvi_comm *c, void *x, size_t n, size_t es) { return KVI_OK; }
static kvi_status kvi__self_nop(kvi_comm *c) { return KVI_OK; }
static kvi_status kvi__self_bcast(kvi_comm *c, void *b, size_t n, int root) {
  return root == 0 ? KVI_OK : kvi_fail(KVI_ERR_ARG, "broadcast from rank %d of 1", root);
}
static void kvi__self_abort(kvi_comm *c, int code) {}
static void kvi__self_free(kvi_comm *c) {}

static const kvi_comm_ops kvi__self_ops = {"self",          kvi__self_sum,   kvi__self_nop,
                                           kvi__self_nop,   kvi__self_bcast, kvi__self_nop,
                                           kvi__self_abort, kvi__self_free};

kvi_comm *kvi_comm_self(void) {
  /* read-only in practice: its sums do nothing, so its counters stay zero */
  static kvi_comm self = {&kvi__self_ops, 0, 1, 1, 0, 0, NULL};
  return &self;
}

/* ---- MPI ---------------------------------------------------------------------------------- */
bool kvi_comm_mpi_built(void) {
#ifdef KVI_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool kvi_comm_mpi_launched(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                     "MPI_LOCALNRANKS"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    if (getenv(vars[i])) return true;
  return false;
}

const char *kvi_comm_mpi_version(void) {
#ifdef KVI_HAVE_MPI
  return kvi__comm_mpi_version();
#else
  return "none";
#endif
}

kvi_status kvi_comm_mpi_init(kvi_comm **out, int *argc, char ***argv) {
  if (!out) return kvi_fail(KVI_ERR_ARG, "comm_mpi_init: out is NULL");
  *out = NULL;
#ifdef KVI_HAVE_MPI
  return kvi__comm_mpi_init(out, argc, argv);
#else
  return kvi_fail(KVI_ERR_UNSUPPORTED,
                  "this kronvi was built without MPI (HINT: cmake -DKRONVI_MPI=ON, with "
                  "libopenmpi-dev installed)");
#endif
}

void kvi_comm_free(kvi_comm *c) {
  if (c && c != kvi_comm_self()) c->ops->free(c);
}

/* ---- dispatch ----------------------------------------------------------------------------- */
static kvi_comm *kvi__c(kvi_comm *c) { return c ? c : kvi_comm_self(); }

int kvi_comm_rank(const kvi_comm *c) { return c ? c->rank : 0; }
int kvi_comm_size(const kvi_comm *c) { return c ? c->size : 1; }

kvi_status kvi_comm_sum_start(kvi_comm *c, kvi_real *x, size_t n) {
  c = kvi__c(c);
  if (c->size == 1 || n == 0) return KVI_OK;
  if (!x) return kvi_fail(KVI_ERR_ARG, "comm_sum: buffer is NULL");
  return c->ops->sum_start(c, x, n, sizeof(kvi_real));
}

kvi_status kvi_comm_progress(kvi_comm *c) {
  c = kvi__c(c);
  return c->size == 1 ? KVI_OK : c->ops->progress(c);
}

kvi_status kvi_comm_wait(kvi_comm *c) {
  c = kvi__c(c);
  return c->size == 1 ? KVI_OK : c->ops->wait(c);
}

kvi_status kvi_comm_sum(kvi_comm *c, kvi_real *x, size_t n) {
  kvi_status s = kvi_comm_sum_start(c, x, n);
  return s ? s : kvi_comm_wait(c);
}

kvi_status kvi_comm_sum_start_f64(kvi_comm *c, double *x, size_t n) {
  c = kvi__c(c);
  if (c->size == 1 || n == 0) return KVI_OK;
  if (!x) return kvi_fail(KVI_ERR_ARG, "comm_sum: buffer is NULL");
  return c->ops->sum_start(c, x, n, sizeof(double));
}

kvi_status kvi_comm_sum_f64(kvi_comm *c, double *x, size_t n) {
  kvi_status s = kvi_comm_sum_start_f64(c, x, n);
  return s ? s : kvi_comm_wait(c);
}

kvi_status kvi_comm_bcast(kvi_comm *c, void *buf, size_t bytes, int root) {
  c = kvi__c(c);
  if (root < 0 || root >= c->size)
    return kvi_fail(KVI_ERR_ARG, "broadcast from rank %d of %d", root, c->size);
  if (c->size == 1 || bytes == 0) return KVI_OK;
  return c->ops->bcast(c, buf, bytes, root);
}

kvi_status kvi_comm_barrier(kvi_comm *c) {
  c = kvi__c(c);
  return c->size == 1 ? KVI_OK : c->ops->barrier(c);
}

void kvi_comm_abort(kvi_comm *c, int code) {
  c = kvi__c(c);
  if (c->size > 1) c->ops->abort(c, code);
}

void kvi_comm_share(int b, int rank, int size, int *r0, int *r1) {
  if (size < 1) size = 1;
  *r0 = (int)((int64_t)b * rank / size);
  *r1 = (int)((int64_t)b * (rank + 1) / size);
}
