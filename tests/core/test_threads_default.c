/* A program that never calls kvi_set_threads: the library's first matrix product sets the thread
 * count to OpenMP's and OpenBLAS to one thread (core.h), as an explicit kvi_set_threads would, so
 * that OpenBLAS's thread pool and OpenMP's never take turns on the same cores. */
#include <omp.h>

#include "kvi_test.h"

int openblas_get_num_threads(void); /* OpenBLAS's own, linked through the library */

int main(void) {
  omp_set_num_threads(2); /* what OMP_NUM_THREADS=2 would give, on any machine */
  const int want = omp_get_max_threads();
  CHECK(kvi_get_threads() == want); /* not set yet: OpenMP's count */
  kvi_real A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1}, C[4] = {0};
  kvi_gemm(false, false, 2, 2, 3, 1, A, 3, B, 2, 0, C, 2); /* (2x3)(3x2) */
  CHECK(C[0] == 4 && C[1] == 5 && C[2] == 10 && C[3] == 11);
  CHECK(openblas_get_num_threads() == 1);
  CHECK(kvi_get_threads() == want);
  CHECK(kvi_get_active_threads() == want);
  /* an explicit call afterwards still wins */
  kvi_set_threads(1);
  CHECK(kvi_get_threads() == 1);
  kvi_gemm(false, false, 2, 2, 3, 1, A, 3, B, 2, 0, C, 2);
  CHECK(kvi_get_threads() == 1);
  TEST_MAIN_END();
}
