/* 2x2 max-pooling (double precision): forward against a naive loop on even and odd sizes, ties
 * routed to the first maximum, backward against central differences (inputs without ties),
 * a batch large enough for the OpenMP path, and bad sizes. */
#include <stdint.h>

#include "kronvi/nn.h"
#include "kvi_test.h"

typedef struct {
  kvi_pool l;
  kvi_real *Y, *R;
  void *ws;
  int B;
} pool_ctx;

static double pool_loss(const double *x, void *vctx) {
  pool_ctx *c = vctx;
  kvi_pool_forward(c->Y, c->ws, &c->l, x, c->B);
  double s = 0;
  for (size_t i = 0; i < (size_t)c->B * c->l.oh * c->l.ow * c->l.c; i++) s += c->Y[i] * c->R[i];
  return s;
}

static void check_pool(int h, int w, int c, int B) {
  pool_ctx pc;
  CHECK_OK(kvi_pool_init(&pc.l, h, w, c));
  CHECK(pc.l.oh == h / 2 && pc.l.ow == w / 2);
  pc.B = B;
  size_t nx = (size_t)B * h * w * c, ny = (size_t)B * (h / 2) * (w / 2) * c;
  CHECK(kvi_pool_ws_size(&pc.l, B) >= ny * sizeof(int32_t));
  kvi_real *X = malloc(nx * sizeof *X), *dX = malloc(nx * sizeof *dX);
  pc.Y = malloc(ny * sizeof *pc.Y), pc.R = malloc(ny * sizeof *pc.R);
  pc.ws = kvi_alloc(kvi_pool_ws_size(&pc.l, B));
  /* distinct values (a random permutation of a grid): no ties, gaps far above the FD step */
  kvi_rng r = kvi_rng_stream(4, (uint64_t)(h * 1000 + w * 10 + c));
  int64_t *perm = malloc(nx * sizeof *perm);
  for (size_t i = 0; i < nx; i++) perm[i] = (int64_t)i;
  kvi_rng_shuffle(&r, perm, nx);
  for (size_t i = 0; i < nx; i++) X[i] = 0.01 * (double)perm[i] - 0.3 * (double)nx * 0.01;
  kvi_rng_normal(&r, pc.R, ny);
  kvi_pool_forward(pc.Y, pc.ws, &pc.l, X, B);
  /* naive: max over the window rows 2oy, 2oy+1 and columns 2ox, 2ox+1 */
  double err = 0;
  for (int b = 0; b < B; b++)
    for (int oy = 0; oy < h / 2; oy++)
      for (int ox = 0; ox < w / 2; ox++)
        for (int ch = 0; ch < c; ch++) {
          double mx = -INFINITY;
          for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++)
              mx = fmax(mx, X[(((size_t)b * h + 2 * oy + dy) * w + 2 * ox + dx) * c + ch]);
          size_t o = (((size_t)b * (h / 2) + oy) * (w / 2) + ox) * c + ch;
          err = fmax(err, fabs(pc.Y[o] - mx));
        }
  CHECK(err == 0);
  kvi_pool_backward(dX, pc.R, pc.ws, &pc.l, B);
  if (nx <= 4096) {
    double fd = kvi_test_fd_maxerr(pool_loss, &pc, X, dX, (int)nx, 1e-6);
    /* a misrouted gradient is off by O(1); the central difference of the sum over up to ~600
     * outputs of size up to ~20 carries rounding of order 1e-8 */
    if (fd > 1e-6) fprintf(stderr, "pool %dx%dx%d: FD error %.3g\n", h, w, c, fd);
    CHECK(fd < 1e-6);
  } else {
    /* large case: dX is R at the argmax and 0 elsewhere, sums match */
    double sx = 0, sy = 0;
    for (size_t i = 0; i < nx; i++) sx += dX[i];
    for (size_t i = 0; i < ny; i++) sy += pc.R[i];
    CHECK_NEAR(sx, sy, 1e-9);
  }
  /* the dropped last row / column of odd sizes gets no gradient */
  bool zero = true;
  for (int b = 0; b < B; b++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        if (y >= 2 * (h / 2) || x >= 2 * (w / 2))
          for (int ch = 0; ch < c; ch++)
            if (dX[(((size_t)b * h + y) * w + x) * c + ch] != 0) zero = false;
  CHECK(zero);
  free(X), free(dX), free(pc.Y), free(pc.R), free(perm);
  kvi_free(pc.ws);
}

/* Ties go to the first maximum in the order (0,0), (0,1), (1,0), (1,1). */
static void check_ties(void) {
  kvi_pool l;
  CHECK_OK(kvi_pool_init(&l, 2, 2, 2));
  /* channel 0: all equal -> (0,0); channel 1: max 5 at (0,1) and (1,1) -> (0,1) */
  kvi_real X[8] = {1, 0, 1, 5, 1, 2, 1, 5}, Y[2], dY[2] = {3, 7}, dX[8];
  int32_t idx[2];
  kvi_pool_forward(Y, idx, &l, X, 1);
  CHECK(Y[0] == 1 && Y[1] == 5);
  kvi_pool_backward(dX, dY, idx, &l, 1);
  kvi_real want[8] = {3, 0, 0, 7, 0, 0, 0, 0};
  for (int i = 0; i < 8; i++) CHECK(dX[i] == want[i]);
}

/* Many ties (inputs in {0, 1, 2}): dX against a naive routing to the first maximum, for widths
 * where whole-vector lane steps cover several windows (c < 16), part of one (c = 17), or one. */
static void check_ties_naive(int h, int w, int c, int B) {
  kvi_pool l;
  CHECK_OK(kvi_pool_init(&l, h, w, c));
  size_t nx = (size_t)B * h * w * c, ny = (size_t)B * l.oh * l.ow * c;
  kvi_real *X = malloc(nx * sizeof *X), *dX = malloc(nx * sizeof *dX),
           *want = calloc(nx, sizeof *want);
  kvi_real *Y = malloc(ny * sizeof *Y), *dY = malloc(ny * sizeof *dY);
  void *ws = kvi_alloc(kvi_pool_ws_size(&l, B));
  kvi_rng r = kvi_rng_stream(5, (uint64_t)(h * 1000 + w * 10 + c));
  for (size_t i = 0; i < nx; i++) X[i] = (kvi_real)(kvi_rng_u32(&r) % 3);
  for (size_t i = 0; i < ny; i++) dY[i] = 1 + (kvi_real)i;
  for (size_t i = 0; i < nx; i++) dX[i] = NAN; /* every entry must be written */
  kvi_pool_forward(Y, ws, &l, X, B);
  kvi_pool_backward(dX, dY, ws, &l, B);
  bool ok = true;
  for (int b = 0; b < B; b++)
    for (int oy = 0; oy < l.oh; oy++)
      for (int ox = 0; ox < l.ow; ox++)
        for (int ch = 0; ch < c; ch++) {
          size_t best = 0, o = (((size_t)b * l.oh + oy) * l.ow + ox) * c + ch;
          for (int k = 0; k < 4; k++) {
            size_t i = (((size_t)b * h + 2 * oy + k / 2) * w + 2 * ox + k % 2) * c + ch;
            if (k == 0 || X[i] > X[best]) best = i;
          }
          ok = ok && Y[o] == X[best];
          want[best] = dY[o];
        }
  for (size_t i = 0; i < nx; i++) ok = ok && dX[i] == want[i];
  if (!ok) fprintf(stderr, "pool ties %dx%dx%d (B %d): wrong routing\n", h, w, c, B);
  CHECK(ok);
  free(X), free(dX), free(want), free(Y), free(dY);
  kvi_free(ws);
}

static void check_bad(void) {
  kvi_pool l;
  CHECK_FAILS(kvi_pool_init(&l, 1, 4, 3));
  CHECK_FAILS(kvi_pool_init(&l, 4, 1, 3));
  CHECK_FAILS(kvi_pool_init(&l, 0, 4, 3));
  CHECK_FAILS(kvi_pool_init(&l, 4, 4, 0));
  CHECK_FAILS(kvi_pool_init(&l, 1 << 16, 1 << 16, 1));
  CHECK_FAILS(kvi_pool_init(NULL, 4, 4, 1));
  CHECK_OK(kvi_pool_init(&l, 2, 3, 1));
  CHECK(l.oh == 1 && l.ow == 1);
  CHECK(kvi_pool_ws_size(&l, 0) == 0);
}

int main(void) {
  check_pool(4, 6, 3, 2);
  check_pool(5, 7, 2, 3); /* odd: last row and column dropped */
  check_pool(3, 2, 1, 1);
  check_pool(2, 2, 5, 4);
  kvi_set_threads(2);
  check_pool(28, 28, 20, 100); /* above the parallel threshold (2^20 inputs) */
  check_ties();
  check_ties_naive(6, 20, 3, 2);
  check_ties_naive(7, 13, 5, 3); /* odd */
  check_ties_naive(8, 8, 17, 2);
  check_ties_naive(9, 9, 16, 2);
  check_ties_naive(28, 28, 10, 100); /* the OpenMP path */
  check_pool(6, 20, 3, 2);
  check_pool(7, 13, 5, 3);
  check_pool(8, 8, 17, 2);
  check_bad();
  TEST_MAIN_END();
}
