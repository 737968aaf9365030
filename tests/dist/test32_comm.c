/* The process group (kronvi/dist.h). Run alone it checks the single-process group; started by
 * mpirun (the ctest test dist_comm_mpi runs it on 3 processes) it checks the MPI group:
 * - kvi_comm_sum gives every rank the same bits: the rank-ordered sum in double of the ranks'
 *   buffers, computed here independently (values of very different magnitudes, so that another
 *   order would round differently);
 * - a buffer summed as several non-blocking pieces (with progress calls in between) gives the same
 *   bits as one blocking sum, whether a piece takes the two-phase sum or (small) the one-phase
 *   one; double sums; a broadcast from the last rank;
 * - kvi_comm_share cuts a batch into contiguous shares. */
#include "kronvi/dist.h"
#include "kvi_test.h"

/* Rank r's element i: magnitudes from 1e-4 to 1e4, signs mixed. */
static float value(int r, size_t i) {
  const float big[4] = {1e4f, -3e3f, 1.0f, 7e-4f};
  return big[(i + (size_t)r) % 4] * (1.0f + 0.013f * (float)r) + 1e-3f * (float)(i % 17) -
         0.5f * (float)(r % 2);
}

static float expected(int P, size_t i) {
  double acc = value(0, i);
  for (int q = 1; q < P; q++) acc += value(q, i);
  return (float)acc;
}

int main(int argc, char **argv) {
  kvi_comm *c = NULL;
  if (kvi_comm_mpi_launched() && kvi_comm_mpi_built()) {
    CHECK_OK(kvi_comm_mpi_init(&c, &argc, &argv));
    if (!c) return 1;
  }
  const int rank = kvi_comm_rank(c), P = kvi_comm_size(c);
  const size_t n = 30011; /* on 3 processes: two phases; its pieces below mix both ways */
  float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
  for (size_t i = 0; i < n; i++) x[i] = y[i] = value(rank, i);
  CHECK_OK(kvi_comm_sum(c, x, n));
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) bad += memcmp(&x[i], &(float){expected(P, i)}, sizeof(float)) != 0;
  CHECK(bad == 0);
  /* the same buffer as three pieces in flight at once */
  const size_t cut[4] = {0, 3, 25000, n};
  for (int k = 0; k < 3; k++) {
    CHECK_OK(kvi_comm_sum_start(c, y + cut[k], cut[k + 1] - cut[k]));
    CHECK_OK(kvi_comm_progress(c));
  }
  CHECK_OK(kvi_comm_wait(c));
  CHECK(memcmp(x, y, n * sizeof *x) == 0);
  double d[3] = {1e16, 1.0 + rank, -1e16};
  CHECK_OK(kvi_comm_sum_f64(c, d, 3));
  CHECK(d[0] == 1e16 * P && d[1] == P * (P + 1) / 2.0 && d[2] == -1e16 * P);
  int64_t token[2] = {rank == P - 1 ? 4242 : -1, rank};
  CHECK_OK(kvi_comm_bcast(c, token, sizeof token, P - 1));
  CHECK(token[0] == 4242 && token[1] == P - 1);
  CHECK_FAILS(kvi_comm_bcast(c, token, sizeof token, P));
  CHECK_OK(kvi_comm_barrier(c));
  /* shares: contiguous, in order, sizes differing by at most one */
  for (int b = 0; b < 40; b++)
    for (int p = 1; p <= 5; p++) {
      int at = 0, lo = b, hi = 0;
      for (int r = 0; r < p; r++) {
        int r0, r1;
        kvi_comm_share(b, r, p, &r0, &r1);
        CHECK(r0 == at && r1 >= r0);
        lo = r1 - r0 < lo ? r1 - r0 : lo, hi = r1 - r0 > hi ? r1 - r0 : hi;
        at = r1;
      }
      CHECK(at == b && hi - lo <= 1);
    }
  printf("rank %d of %d (%s): sums in rank order, the same bits in one sum or three pieces: %s\n",
         rank, P, kvi_comm_mpi_built() ? kvi_comm_mpi_version() : "no MPI",
         kvi_test_failures ? "FAIL" : "PASS");
  free(x), free(y);
  const int failures = kvi_test_failures;
  kvi_comm_free(c);
  return failures ? 1 : 0;
}
