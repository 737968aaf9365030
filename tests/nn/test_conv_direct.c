/* Direct convolution kernels (src/nn/conv_direct.c, double precision): for each instruction set
 * this machine has (AVX-512, AVX2), the mean-network passes of kvi_conv_forward and
 * kvi_conv_backward (Y, the gradients of M and b, dX) with every pass direct against the im2col
 * path, and the same for DIAG's and MN's sampled passes (local reparameterization, fixed noise;
 * also the gradients of log sigma, A and B), over kernel sizes, paddings, channel counts up to the
 * widest the kernels take, image sizes, batches (one example, chunks and gradient groups), with and
 * without dX; which passes the automatic rule makes direct (and the declines: stride 2, too many
 * output channels, sampled passes); finite differences of the direct passes (point, DIAG and MN, dX
 * and every parameter view); and the K-FAC observer's patches when the forward ran the direct
 * kernels (unfolded again from X). */
// ctest-timeout: 300
#include "kronvi/nn.h"
#include "kvi_test.h"
#include "nn/conv_internal.h"

typedef struct {
  int h, w, cin, cout, k, pad, stride;
} geom;

static kvi_family run_family = KVI_FAMILY_POINT; /* DIAG, MN: the sampled passes */

/* Y, dX and the gradient of every parameter (M, b; DIAG: log sigma; MN: A and B) of one layer
 * (batch B) with the path chosen by kvi__conv_direct_force. */
static bool run(const geom *g, int B, int force, bool want_dx, kvi_real **out, size_t *len) {
  kvi_conv l;
  kvi_params p;
  kvi_params_init(&p);
  const bool sampled = run_family != KVI_FAMILY_POINT;
  CHECK_OK(kvi_conv_declare(&l, &p, "c", g->h, g->w, g->cin, g->cout, g->k, g->stride, g->pad,
                            run_family, sampled ? KVI_PRIOR_ARD : KVI_PRIOR_NONE, 1.0, true));
  CHECK_OK(kvi_params_alloc(&p));
  kvi_rng r = kvi_rng_stream(7, 1);
  kvi_conv_init(&l, &p, &r, 1.0, -1.0);
  kvi_rng_normal(&r, p.data, p.n); /* bias, log sigma and the factors too */
  const size_t nx = (size_t)B * g->h * g->w * g->cin, ny = (size_t)B * l.oh * l.ow * g->cout;
  const size_t ne = kvi_conv_noise_size(&l, B);
  kvi_real *X = malloc(nx * sizeof *X), *dY = malloc(ny * sizeof *dY);
  kvi_real *eps = malloc((ne + 1) * sizeof *eps);
  kvi_rng_normal(&r, X, nx);
  kvi_rng_normal(&r, dY, ny);
  kvi_rng_normal(&r, eps, ne + 1);
  for (size_t i = 0; i < nx; i += 3) X[i] = 0; /* exact zeros as in images */
  const kvi_real *e = sampled ? eps : NULL;
  void *ws = kvi_alloc(kvi_conv_ws_size(&l, B));
  *len = ny + nx + p.n;
  *out = calloc(*len, sizeof **out);
  kvi__conv_direct_force = force;
  kvi__conv_direct_all = force > 0;
  const bool direct = kvi__conv_direct(&l, e, B);
  kvi_params_zero_grad(&p);
  CHECK_OK(kvi_conv_forward(*out, ws, &l, &p, X, e, B));
  CHECK_OK(kvi_conv_backward(want_dx ? *out + ny : NULL, &p, dY, ws, &l, X, e, B));
  memcpy(*out + ny + nx, p.grad, p.n * sizeof **out);
  kvi__conv_direct_force = -1;
  kvi__conv_direct_all = 0;
  kvi_free(ws);
  free(X), free(dY), free(eps);
  kvi_params_free(&p);
  return direct;
}

/* Widest output the kernels take for isa, in doubles: four vectors. */
static int widest(int isa) { return isa == 2 ? 32 : 16; }

static void compare(const geom *g, int B, int isa, bool want_dx) {
  kvi_real *ref, *got;
  size_t n1, n2;
  CHECK(!run(g, B, 0, want_dx, &ref, &n1));
  const bool direct = run(g, B, isa, want_dx, &got, &n2);
  CHECK(n1 == n2);
  double err = 0;
  for (size_t i = 0; i < n1; i++) err = fmax(err, fabs(got[i] - ref[i]) / (1 + fabs(ref[i])));
  if (err > 1e-12)
    fprintf(stderr, "isa %d %dx%dx%d -> %d k%d p%d B%d dX %d: direct %d, max error %.3g\n", isa,
            g->h, g->w, g->cin, g->cout, g->k, g->pad, B, want_dx, direct, err);
  /* DIAG's direct passes need the transposed kernel too: c_in within four vectors; MN's the
   * n = k k c_in columns of A as output channels */
  CHECK(direct == (run_family == KVI_FAMILY_POINT  ? true
                   : run_family == KVI_FAMILY_DIAG ? g->cin <= widest(isa)
                                                   : g->k * g->k * g->cin <= widest(isa)));
  CHECK(err < 1e-12);
  free(ref), free(got);
}

static void test_isa(int isa) {
  const int W = widest(isa);
  const geom gs[] = {
      {28, 28, 1, 10, 3, 1, 1},  {14, 14, 10, W < 20 ? W : 20, 3, 1, 1},
      {7, 7, 20, W, 3, 1, 1},    {8, 6, 3, 5, 3, 0, 1},
      {9, 11, 2, 7, 5, 2, 1},    {6, 7, 4, 3, 5, 4, 1},
      {5, 5, W, 9, 1, 0, 1},     {12, 4, 17, W - 1, 3, 2, 1},
      {3, 3, 5, 1, 3, 1, 1},     {32, 32, 1, 10, 3, 1, 1},
      {4, 4, W + 3, 6, 3, 1, 1},
  };
  for (size_t i = 0; i < sizeof gs / sizeof *gs; i++)
    for (int B = 1; B <= 41; B += 40) {
      compare(&gs[i], B, isa, true);
      compare(&gs[i], B, isa, false);
    }
}

/* Stride 2 and more output channels than four vectors stay on the im2col path. */
static void test_declines(int isa) {
  kvi_conv l;
  kvi_params p;
  kvi_params_init(&p);
  CHECK_OK(kvi_conv_declare(&l, &p, "c", 8, 8, 2, 4, 3, 2, 1, KVI_FAMILY_POINT, KVI_PRIOR_NONE, 1.0,
                            true));
  kvi__conv_direct_force = isa;
  CHECK(!kvi__conv_direct(&l, NULL, 50));
  kvi_params_free(&p);
  kvi_params_init(&p);
  CHECK_OK(kvi_conv_declare(&l, &p, "c", 8, 8, 2, widest(isa) + 1, 3, 1, 1, KVI_FAMILY_POINT,
                            KVI_PRIOR_NONE, 1.0, true));
  CHECK(!kvi__conv_direct(&l, NULL, 50));
  kvi_params_free(&p);
  kvi_params_init(&p);
  CHECK_OK(
      kvi_conv_declare(&l, &p, "c", 8, 8, 2, 4, 3, 1, 1, KVI_FAMILY_MN, KVI_PRIOR_ARD, 1.0, true));
  kvi_real eps = 0;
  CHECK(kvi__conv_direct(&l, NULL, 50));  /* the mean network */
  CHECK(!kvi__conv_direct(&l, &eps, 50)); /* sampled: the LRT needs the unfolded input */
  kvi_params_free(&p);
  /* point layers: direct where the backward is (14 x 14 outputs, two vectors of outputs) */
  const int rule[][4] = {
      {28, 1, 10, isa == 2}, {14, 10, 8, 1}, {7, 20, 8, 0}, {32, 10, 10, isa == 2}};
  for (int i = 0; i < 4; i++) {
    kvi_params_init(&p);
    CHECK_OK(kvi_conv_declare(&l, &p, "c", rule[i][0], rule[i][0], rule[i][1], rule[i][2], 3, 1, 1,
                              KVI_FAMILY_POINT, KVI_PRIOR_NONE, 1.0, true));
    CHECK(kvi__conv_direct(&l, NULL, 50) == (rule[i][3] == 1));
    kvi_params_free(&p);
    /* DIAG's sampled passes follow the same rule, the first layer's single channel included */
    kvi_params_init(&p);
    CHECK_OK(kvi_conv_declare(&l, &p, "c", rule[i][0], rule[i][0], rule[i][1], rule[i][2], 3, 1, 1,
                              KVI_FAMILY_DIAG, KVI_PRIOR_ARD, 1.0, true));
    CHECK(kvi__conv_direct(&l, &eps, 50) == (rule[i][3] == 1));
    kvi_params_free(&p);
  }
  kvi__conv_direct_force = -1;
}

/* Finite differences of the direct passes themselves (every pass forced direct): dX and the
 * gradient of every parameter view of sum(Y * R), point weights and DIAG's sampled passes
 * (fixed noise), for a 3 x 3 and a 5 x 5 kernel. */
typedef struct {
  kvi_conv l;
  kvi_params p;
  void *ws;
  kvi_real *X, *R, *Y, *eps;
  const kvi_real *e;
  size_t ny;
  int B;
} fdfix;

static double fd_loss(const double *unused, void *vctx) {
  (void)unused;
  fdfix *f = vctx;
  if (kvi_conv_forward(f->Y, f->ws, &f->l, &f->p, f->X, f->e, f->B)) return NAN;
  double s = 0;
  for (size_t i = 0; i < f->ny; i++) s += f->Y[i] * f->R[i];
  return s;
}

static void test_fd(int isa, kvi_family fam, const geom *g) {
  fdfix f;
  memset(&f, 0, sizeof f);
  kvi_params_init(&f.p);
  const bool sampled = fam != KVI_FAMILY_POINT;
  CHECK_OK(kvi_conv_declare(&f.l, &f.p, "c", g->h, g->w, g->cin, g->cout, g->k, 1, g->pad, fam,
                            sampled ? KVI_PRIOR_ARD : KVI_PRIOR_NONE, 1.0, true));
  CHECK_OK(kvi_params_alloc(&f.p));
  kvi_rng r = kvi_rng_stream(5, (uint64_t)fam);
  kvi_conv_init(&f.l, &f.p, &r, 1.0, -1.0);
  f.B = 3;
  const size_t nx = (size_t)f.B * g->h * g->w * g->cin, ne = kvi_conv_noise_size(&f.l, f.B);
  f.ny = (size_t)f.B * f.l.oh * f.l.ow * g->cout;
  f.X = malloc(nx * sizeof *f.X), f.R = malloc(f.ny * sizeof *f.R);
  f.Y = malloc(f.ny * sizeof *f.Y), f.eps = malloc((ne + 1) * sizeof *f.eps);
  kvi_real *dX = malloc(nx * sizeof *dX);
  kvi_rng_normal(&r, f.X, nx);
  kvi_rng_normal(&r, f.R, f.ny);
  kvi_rng_normal(&r, f.eps, ne + 1);
  f.e = sampled ? f.eps : NULL;
  f.ws = kvi_alloc(kvi_conv_ws_size(&f.l, f.B));
  kvi__conv_direct_force = isa;
  kvi__conv_direct_all = 1;
  CHECK(kvi__conv_direct(&f.l, f.e, f.B));
  CHECK_OK(kvi_conv_forward(f.Y, f.ws, &f.l, &f.p, f.X, f.e, f.B));
  kvi_params_zero_grad(&f.p);
  CHECK_OK(kvi_conv_backward(dX, &f.p, f.R, f.ws, &f.l, f.X, f.e, f.B));
  double *g0 = malloc(f.p.n * sizeof *g0);
  memcpy(g0, f.p.grad, f.p.n * sizeof *g0);
  double err = kvi_test_fd_maxerr(fd_loss, &f, f.X, dX, (int)nx, 1e-6);
  for (int v = 0; v < f.p.nviews; v++) {
    const kvi_view *vw = &f.p.views[v];
    err = fmax(err, kvi_test_fd_maxerr(fd_loss, &f, f.p.data + vw->offset, g0 + vw->offset,
                                       (int)vw->size, 1e-6));
  }
  if (err > 1e-6)
    fprintf(stderr, "isa %d %s k%d: direct passes FD error %.3g\n", isa, kvi_family_name(fam), g->k,
            err);
  CHECK(err < 1e-6);
  kvi__conv_direct_force = -1;
  kvi__conv_direct_all = 0;
  free(g0), free(dX), free(f.X), free(f.R), free(f.Y), free(f.eps);
  kvi_free(f.ws);
  kvi_params_free(&f.p);
}

/* kvi__conv_cols after a direct forward unfolds X: the im2col path's patches. */
static void test_cols(int isa) {
  const geom g = {10, 10, 3, 6, 3, 1, 1};
  const int B = 20;
  kvi_conv l;
  kvi_params p;
  kvi_params_init(&p);
  CHECK_OK(kvi_conv_declare(&l, &p, "c", g.h, g.w, g.cin, g.cout, g.k, 1, g.pad, KVI_FAMILY_POINT,
                            KVI_PRIOR_NONE, 1.0, true));
  CHECK_OK(kvi_params_alloc(&p));
  kvi_rng r = kvi_rng_stream(3, 1);
  kvi_conv_init(&l, &p, &r, 1.0, -5.0);
  const size_t nx = (size_t)B * g.h * g.w * g.cin, ny = (size_t)B * l.oh * l.ow * g.cout;
  const size_t nc = (size_t)B * l.oh * l.ow * l.d.n;
  kvi_real *X = malloc(nx * sizeof *X), *Y = malloc(ny * sizeof *Y), *c0 = malloc(nc * sizeof *c0);
  kvi_rng_normal(&r, X, nx);
  void *ws = kvi_alloc(kvi_conv_ws_size(&l, B));
  kvi__conv_direct_force = 0;
  CHECK_OK(kvi_conv_forward(Y, ws, &l, &p, X, NULL, B));
  memcpy(c0, kvi__conv_cols(ws, &l, X, NULL, B), nc * sizeof *c0);
  kvi__conv_direct_force = isa;
  kvi__conv_direct_all = 1;
  CHECK(kvi__conv_direct(&l, NULL, B));
  memset(ws, 0, kvi_conv_ws_size(&l, B));
  CHECK_OK(kvi_conv_forward(Y, ws, &l, &p, X, NULL, B));
  CHECK(!memcmp(kvi__conv_cols(ws, &l, X, NULL, B), c0, nc * sizeof *c0));
  kvi__conv_direct_force = -1;
  kvi__conv_direct_all = 0;
  kvi_free(ws);
  free(X), free(Y), free(c0);
  kvi_params_free(&p);
}

int main(void) {
  __builtin_cpu_init();
  const bool has[3] = {true, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
                       __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")};
  for (int isa = 1; isa <= 2; isa++) {
    if (!has[isa]) {
      printf("instruction set %s not on this machine: skipped\n", isa == 2 ? "AVX-512" : "AVX2");
      continue;
    }
    test_isa(isa);
    run_family = KVI_FAMILY_DIAG; /* the sampled passes of DIAG */
    test_isa(isa);
    run_family = KVI_FAMILY_POINT;
    const geom g3 = {6, 5, 3, 4, 3, 1, 1}, g5 = {7, 6, 2, 3, 5, 2, 1};
    test_fd(isa, KVI_FAMILY_POINT, &g3);
    test_fd(isa, KVI_FAMILY_POINT, &g5);
    test_fd(isa, KVI_FAMILY_DIAG, &g3);
    test_fd(isa, KVI_FAMILY_DIAG, &g5);
    run_family = KVI_FAMILY_MN; /* MN's sampled passes (A's columns as output channels) */
    test_isa(isa);
    run_family = KVI_FAMILY_POINT;
    const geom m3 = {6, 5, 1, 4, 3, 1, 1}, m3b = {7, 6, 1, 3, 3, 0, 1};
    test_fd(isa, KVI_FAMILY_MN, &m3);
    test_fd(isa, KVI_FAMILY_MN, &m3b);
    test_declines(isa);
    test_cols(isa);
  }
  TEST_MAIN_END();
}
