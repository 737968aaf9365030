/* When to enter an OpenMP parallel region (private to the library).
 *
 * A region entered with an `if` clause that is false, or nested inside another region, still runs
 * libgomp's team set-up for a team of one; with GCC's libgomp that wakes and re-docks the idle
 * pool threads, a futex call each way, and inside the convolutions' example groups that happened
 * hundreds of times per training step. The loops reached from inside those groups (the MN noise
 * rows, the triangular panel loops) therefore branch around the region instead; top-level loops
 * with an `if` clause keep it (a few such regions per step, no measurable cost):
 *
 *   if (kvi__fork(n > KVI__OMP_MIN)) {
 *   #pragma omp parallel for schedule(static)
 *     for (...) body(i);
 *   } else {
 *     for (...) body(i);
 *   }
 *
 * Both arms do the same arithmetic per index, so the results do not depend on the branch, as long
 * as the body makes no kvi_gemm / kvi_trmm call: those split into panels at level 0 but not inside
 * a region, so a body with them must keep its region (see kvi__tri_par in linalg.c). */
#ifndef KRONVI_CORE_PAR_H
#define KRONVI_CORE_PAR_H

#include <omp.h>
#include <stdbool.h>

/* cond, and not already inside a region, and more than one thread to run it */
static inline bool kvi__fork(bool cond) {
  return cond && omp_get_level() == 0 && omp_get_max_threads() > 1;
}

#endif
