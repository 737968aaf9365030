/* The MPI process group (kronvi/dist.h), compiled only with KRONVI_MPI: the one file of the
 * library that includes mpi.h.
 *
 * A sum of n elements over P ranks, in two phases:
 *   1. MPI_Ialltoallv: rank q receives slice q (n q / P .. n (q + 1) / P) of every rank's buffer,
 *      and sums the P copies in rank order, in double;
 *   2. MPI_Iallgatherv (in place): every rank receives every reduced slice.
 * Each rank sends 2 (P - 1) / P of the buffer, as in a ring all-reduce, and every element is
 * summed in the order 0, 1, ..., P - 1 whatever P, the MPI library and the split into sums. With
 * two ranks, or a small buffer (P n at most KVI__GATHER_ALL bytes), one phase instead: every rank
 * gathers every rank's whole buffer (MPI_Iallgather) and sums the P copies in rank order itself;
 * the same arithmetic on the same numbers, so the same bits, with one exchange instead of two
 * (for P = 2 the same volume; when the processes share busy cores each exchange waits for the
 * other process to be scheduled). The phases of the sums in flight use two communicators
 * (duplicates of MPI_COMM_WORLD): phase 1 is started in the order of kvi_comm_sum_start, phase 2
 * in the same order (a sum enters phase 2 only after every earlier one did), so every rank starts
 * the collectives of each communicator in the same order, as MPI requires. Errors are returned
 * (MPI_ERRORS_RETURN), as KVI_ERR_COMM. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/dist.h"

kvi_status kvi__comm_mpi_init(kvi_comm **out, int *argc, char ***argv);
const char *kvi__comm_mpi_version(void);

#define KVI__MAX_SUMS 128
#define KVI__GATHER_ALL (256u << 10)

typedef struct {
  void *x;
  size_t es;                /* element size: 4 or 8 */
  MPI_Datatype type;        /* MPI_FLOAT or MPI_DOUBLE */
  int *cnt, *dsp;           /* (P) slice of every rank: elements and offset */
  int *rcnt, *rdsp;         /* (P) what this rank receives in phase 1 */
  void *recv;               /* (P, own slice) copies of this rank's slice */
  size_t recv_cap;          /* bytes */
  MPI_Request ra, rb;       /* phase 1, phase 2 */
  bool gathering, finished; /* phase 2 started; done */
  bool all;                 /* one phase: every rank's whole buffer gathered */
} kvi__sum;

typedef struct {
  MPI_Comm a, b; /* phase 1 (also broadcasts and barriers), phase 2 */
  kvi__sum sums[KVI__MAX_SUMS];
  int nsum;    /* sums started since the last wait */
  int ngather; /* the first ngather of them are in phase 2 */
  bool finalize;
} kvi__mpi;

static kvi_status kvi__merr(int rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
  return kvi_fail(KVI_ERR_COMM, "%s: %s (HINT: did another process of the run stop?)", what, msg);
}

static kvi__mpi *kvi__m(kvi_comm *c) { return c->impl; }

/* Phase 1 done: the rank-ordered sum of this rank's slice, then phase 2 (one phase: the sum of
 * the whole buffer, and done). */
static kvi_status kvi__gather(kvi_comm *c, kvi__sum *s) {
  kvi__mpi *m = kvi__m(c);
  const int P = c->size, lo = s->all ? 0 : s->dsp[c->rank];
  const int L = s->all ? s->dsp[P - 1] + s->cnt[P - 1] : s->cnt[c->rank];
  if (s->es == sizeof(float)) {
    const float *r = s->recv;
    float *x = (float *)s->x + lo;
    for (int i = 0; i < L; i++) {
      double acc = r[i];
      for (int q = 1; q < P; q++) acc += r[(size_t)q * L + i];
      x[i] = (float)acc;
    }
  } else {
    const double *r = s->recv;
    double *x = (double *)s->x + lo;
    for (int i = 0; i < L; i++) {
      double acc = r[i];
      for (int q = 1; q < P; q++) acc += r[(size_t)q * L + i];
      x[i] = acc;
    }
  }
  if (s->all) {
    s->gathering = s->finished = true;
    return KVI_OK;
  }
  int rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, s->x, s->cnt, s->dsp, s->type, m->b,
                           &s->rb);
  if (rc != MPI_SUCCESS) return kvi__merr(rc, "MPI_Iallgatherv");
  s->gathering = true;
  c->bytes += (int64_t)L * (P - 1) * (int64_t)s->es;
  return KVI_OK;
}

/* Moves the sums whose phase 1 is done into phase 2, in order; block: wait for each. */
static kvi_status kvi__advance(kvi_comm *c, bool block) {
  kvi__mpi *m = kvi__m(c);
  while (m->ngather < m->nsum) {
    kvi__sum *s = &m->sums[m->ngather];
    int done = 0, rc;
    if (block)
      rc = MPI_Wait(&s->ra, MPI_STATUS_IGNORE), done = 1;
    else
      rc = MPI_Test(&s->ra, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return kvi__merr(rc, block ? "MPI_Wait" : "MPI_Test");
    if (!done) break;
    kvi_status st = kvi__gather(c, s);
    if (st) return st;
    m->ngather++;
  }
  for (int i = 0; i < m->ngather; i++) { /* lets the library progress phase 2 */
    kvi__sum *s = &m->sums[i];
    if (s->finished) continue;
    int done = 0, rc = block ? MPI_Wait(&s->rb, MPI_STATUS_IGNORE)
                             : MPI_Test(&s->rb, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return kvi__merr(rc, block ? "MPI_Wait" : "MPI_Test");
    s->finished = block || done;
  }
  return KVI_OK;
}

static kvi_status kvi__mpi_progress(kvi_comm *c) {
  const double t0 = MPI_Wtime();
  kvi_status s = kvi__advance(c, false);
  c->seconds += MPI_Wtime() - t0;
  return s;
}

static kvi_status kvi__mpi_wait(kvi_comm *c) {
  const double t0 = MPI_Wtime();
  kvi_status s = kvi__advance(c, true);
  kvi__m(c)->nsum = kvi__m(c)->ngather = 0;
  c->seconds += MPI_Wtime() - t0;
  return s;
}

static kvi_status kvi__mpi_sum_start(kvi_comm *c, void *x, size_t n, size_t es) {
  kvi__mpi *m = kvi__m(c);
  const int P = c->size;
  if (n > (size_t)INT32_MAX)
    return kvi_fail(KVI_ERR_UNSUPPORTED, "comm_sum: %zu elements (at most 2^31 - 1)", n);
  if (m->nsum == KVI__MAX_SUMS) {
    kvi_status st = kvi__mpi_wait(c); /* all slots in flight: finish them first */
    if (st) return st;
  }
  const double t0 = MPI_Wtime();
  kvi__sum *s = &m->sums[m->nsum];
  for (int q = 0; q < P; q++) {
    s->dsp[q] = (int)(n * (size_t)q / (size_t)P);
    s->cnt[q] = (int)(n * (size_t)(q + 1) / (size_t)P) - s->dsp[q];
  }
  s->all = P == 2 || (size_t)P * n * es <= KVI__GATHER_ALL;
  const int L = s->all ? (int)n : s->cnt[c->rank];
  for (int q = 0; q < P; q++) s->rcnt[q] = L, s->rdsp[q] = q * L;
  const size_t need = (size_t)P * (size_t)(L > 0 ? L : 1) * es;
  if (need > s->recv_cap) {
    void *r = realloc(s->recv, need);
    if (!r) return kvi_fail(KVI_ERR_NOMEM, "comm_sum: out of memory for %zu bytes", need);
    s->recv = r, s->recv_cap = need;
  }
  s->x = x, s->es = es, s->type = es == sizeof(float) ? MPI_FLOAT : MPI_DOUBLE;
  s->gathering = s->finished = false;
  int rc = s->all ? MPI_Iallgather(x, L, s->type, s->recv, L, s->type, m->a, &s->ra)
                  : MPI_Ialltoallv(x, s->cnt, s->dsp, s->type, s->recv, s->rcnt, s->rdsp, s->type,
                                   m->a, &s->ra);
  if (rc != MPI_SUCCESS) return kvi__merr(rc, s->all ? "MPI_Iallgather" : "MPI_Ialltoallv");
  m->nsum++;
  c->bytes += (int64_t)(s->all ? (size_t)(P - 1) * n : n - (size_t)L) * (int64_t)es;
  c->seconds += MPI_Wtime() - t0;
  return KVI_OK;
}

static kvi_status kvi__mpi_bcast(kvi_comm *c, void *buf, size_t bytes, int root) {
  const double t0 = MPI_Wtime();
  kvi_status st = KVI_OK;
  for (size_t off = 0; off < bytes && !st; off += 1u << 30) { /* int counts */
    const size_t len = bytes - off < (1u << 30) ? bytes - off : (1u << 30);
    int rc = MPI_Bcast((char *)buf + off, (int)len, MPI_BYTE, root, kvi__m(c)->a);
    if (rc != MPI_SUCCESS) st = kvi__merr(rc, "MPI_Bcast");
  }
  c->seconds += MPI_Wtime() - t0;
  return st;
}

static kvi_status kvi__mpi_barrier(kvi_comm *c) {
  int rc = MPI_Barrier(kvi__m(c)->a);
  return rc == MPI_SUCCESS ? KVI_OK : kvi__merr(rc, "MPI_Barrier");
}

static void kvi__mpi_abort(kvi_comm *c, int code) {
  fflush(stdout), fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
}

static void kvi__mpi_free(kvi_comm *c) {
  kvi__mpi *m = kvi__m(c);
  if (m) {
    if (m->nsum) kvi__mpi_wait(c);
    for (int i = 0; i < KVI__MAX_SUMS; i++) {
      free(m->sums[i].cnt);
      free(m->sums[i].recv);
    }
    if (m->a != MPI_COMM_NULL) MPI_Comm_free(&m->a);
    if (m->b != MPI_COMM_NULL) MPI_Comm_free(&m->b);
    if (m->finalize) MPI_Finalize();
    free(m);
  }
  free(c);
}

static const kvi_comm_ops kvi__mpi_ops = {"mpi",          kvi__mpi_sum_start, kvi__mpi_progress,
                                          kvi__mpi_wait,  kvi__mpi_bcast,     kvi__mpi_barrier,
                                          kvi__mpi_abort, kvi__mpi_free};

kvi_status kvi__comm_mpi_init(kvi_comm **out, int *argc, char ***argv) {
  int inited = 0, provided = 0, rc;
  MPI_Initialized(&inited);
  if (!inited && (rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS)
    return kvi__merr(rc, "MPI_Init_thread");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  kvi_comm *c = calloc(1, sizeof *c);
  kvi__mpi *m = calloc(1, sizeof *m);
  if (!c || !m) {
    free(c), free(m);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  c->ops = &kvi__mpi_ops, c->impl = m;
  m->a = m->b = MPI_COMM_NULL;
  m->finalize = !inited;
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c->size);
  kvi_status st = KVI_OK;
  if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->a)) != MPI_SUCCESS ||
      (rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->b)) != MPI_SUCCESS)
    st = kvi__merr(rc, "MPI_Comm_dup");
  MPI_Comm node;
  c->node_size = 1;
  if (!st && MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL,
                                 &node) == MPI_SUCCESS) {
    MPI_Comm_size(node, &c->node_size);
    MPI_Comm_free(&node);
  }
  for (int i = 0; i < KVI__MAX_SUMS && !st; i++) {
    kvi__sum *s = &m->sums[i];
    if (!(s->cnt = malloc(4 * (size_t)c->size * sizeof(int))))
      st = kvi_fail(KVI_ERR_NOMEM, "out of memory");
    else
      s->dsp = s->cnt + c->size, s->rcnt = s->dsp + c->size, s->rdsp = s->rcnt + c->size;
  }
  if (st) {
    kvi__mpi_free(c);
    return st;
  }
  *out = c;
  return KVI_OK;
}

const char *kvi__comm_mpi_version(void) {
  static char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(v, &len) != MPI_SUCCESS) return "MPI (version unknown)";
  v[strcspn(v, "\n,")] = 0; /* the first part of the first line */
  return v;
}
