#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
/* Aligned allocation and the scratch arena. */
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include "kronvi/core.h"

#define KVI_ALIGN 64

/* Blocks of at least KVI__HUGE bytes start on a 2 MB boundary, span whole 2 MB pages and ask
 * the kernel for transparent huge pages (madvise; a no-op where they are off). The parameters,
 * their gradients, the optimizer's moments and the evaluation's buffers are such blocks: with 4 KB
 * pages every step's passes over them miss the TLB once per page, and on virtual machines a first
 * touch costs a page fault per 4 KB (12 MB took 24-64 ms on the 2-core VM of docs/benchmarks.md).
 */
#define KVI__HUGE ((size_t)1 << 21)

static void *kvi__alloc_aligned(size_t rounded) {
  if (rounded < KVI__HUGE) return aligned_alloc(KVI_ALIGN, rounded);
  const size_t whole = (rounded + KVI__HUGE - 1) / KVI__HUGE * KVI__HUGE;
  if (whole < rounded) return NULL;
  void *p = aligned_alloc(KVI__HUGE, whole);
#ifdef MADV_HUGEPAGE
  if (p) (void)madvise(p, whole, MADV_HUGEPAGE);
#endif
  return p;
}

void *kvi_alloc(size_t bytes) {
  if (bytes == 0) bytes = KVI_ALIGN;
  size_t rounded = (bytes + KVI_ALIGN - 1) / KVI_ALIGN * KVI_ALIGN;
  if (rounded < bytes) {
    kvi_fail(KVI_ERR_NOMEM, "allocation of %zu bytes overflows", bytes);
    return NULL;
  }
  void *p = kvi__alloc_aligned(rounded);
  if (!p) {
    kvi_fail(KVI_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    return NULL;
  }
  memset(p, 0, rounded);
  return p;
}

void kvi_free(void *p) { free(p); }

/* The arena is a list of chunks; allocation bumps within the current chunk and moves to the
 * next (allocating it if needed). Reset moves back without freeing chunks. */
typedef struct {
  char *base;
  size_t size;
} kvi__chunk;

struct kvi_arena {
  kvi__chunk *chunks;
  size_t nchunks, cap;
  size_t cur;  /* current chunk index */
  size_t used; /* bytes used in the current chunk */
  size_t min_chunk;
  size_t live, peak; /* bytes handed out (approx, incl. skipped tails) */
};

kvi_arena *kvi_arena_create(size_t initial_bytes) {
  kvi_arena *a = calloc(1, sizeof *a);
  if (!a) {
    kvi_fail(KVI_ERR_NOMEM, "out of memory creating an arena");
    return NULL;
  }
  a->min_chunk = initial_bytes < (1u << 20) ? (1u << 20) : initial_bytes;
  return a;
}

void kvi_arena_free(kvi_arena *a) {
  if (!a) return;
  for (size_t i = 0; i < a->nchunks; i++) free(a->chunks[i].base);
  free(a->chunks);
  free(a);
}

static int kvi__arena_add_chunk(kvi_arena *a, size_t need) {
  if (a->nchunks == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 8;
    kvi__chunk *c = realloc(a->chunks, nc * sizeof *c);
    if (!c) return 0;
    a->chunks = c;
    a->cap = nc;
  }
  size_t size = need > a->min_chunk ? need : a->min_chunk;
  size = (size + KVI_ALIGN - 1) / KVI_ALIGN * KVI_ALIGN;
  char *b = aligned_alloc(KVI_ALIGN, size);
  if (!b) return 0;
  a->chunks[a->nchunks].base = b;
  a->chunks[a->nchunks].size = size;
  a->nchunks++;
  return 1;
}

void *kvi_arena_alloc(kvi_arena *a, size_t bytes) {
  if (!a) {
    kvi_fail(KVI_ERR_ARG, "arena is NULL");
    return NULL;
  }
  size_t need = (bytes + KVI_ALIGN - 1) / KVI_ALIGN * KVI_ALIGN;
  if (need == 0) need = KVI_ALIGN;
  for (;;) {
    if (a->cur == a->nchunks && !kvi__arena_add_chunk(a, need)) {
      kvi_fail(KVI_ERR_NOMEM, "arena: out of memory allocating %zu bytes", bytes);
      return NULL;
    }
    kvi__chunk *c = &a->chunks[a->cur];
    if (a->used + need <= c->size) {
      void *p = c->base + a->used;
      a->used += need;
      a->live += need;
      if (a->live > a->peak) a->peak = a->live;
      return p;
    }
    a->live += c->size - a->used; /* the skipped tail counts as used until reset */
    a->cur++;
    a->used = 0;
  }
}

kvi_real *kvi_arena_reals(kvi_arena *a, size_t n) {
  if (n > SIZE_MAX / sizeof(kvi_real)) {
    kvi_fail(KVI_ERR_NOMEM, "arena: %zu elements overflow", n);
    return NULL;
  }
  return kvi_arena_alloc(a, n * sizeof(kvi_real));
}

kvi_arena_mark kvi_arena_get_mark(const kvi_arena *a) {
  kvi_arena_mark m = {a->cur, a->used};
  return m;
}

void kvi_arena_reset(kvi_arena *a, kvi_arena_mark m) {
  /* recompute live bytes: full chunks before m.chunk plus m.used */
  size_t live = 0;
  for (size_t i = 0; i < m.chunk && i < a->nchunks; i++) live += a->chunks[i].size;
  a->cur = m.chunk;
  a->used = m.used;
  a->live = live + m.used;
}

size_t kvi_arena_capacity(const kvi_arena *a) {
  size_t s = 0;
  for (size_t i = 0; i < a->nchunks; i++) s += a->chunks[i].size;
  return s;
}

size_t kvi_arena_peak(const kvi_arena *a) { return a->peak; }

kvi_status kvi_check_finite(const kvi_real *x, size_t n, const char *what) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return kvi_fail(KVI_ERR_NONFINITE, "%s: non-finite value %g at index %zu", what, (double)x[i],
                      i);
  return KVI_OK;
}

double kvi_time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
