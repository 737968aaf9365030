/* Convolution layer (double precision): central-difference gradients of kvi_conv_backward for
 * every family w.r.t. X and every parameter view, sampled (fixed eps) and mean (eps NULL) paths,
 * on several geometries; the mean forward against a naive direct convolution; the exact
 * (Monte-Carlo-free) output covariance over eps against the LRT formulas; a batch large enough
 * with several chunks run by two threads against naive loops; chunked passes (batch 1, uneven
 * chunks, more chunks than gradient groups) against FD and the single-chunk result; bad input. */
// ctest-timeout: 900
#include <limits.h>

#include "kronvi/nn.h"
#include "kvi_test.h"

typedef struct {
  int h, w, cin, cout, k, stride, pad;
} geom;

/* A declared, initialized and perturbed conv layer with inputs and buffers. */
typedef struct {
  kvi_conv l;
  kvi_params p;
  void *ws;
  kvi_real *X, *R, *eps, *Y, *dX;
  const kvi_real *e; /* eps or NULL (mean path) */
  int B;
  size_t nx, ny, ne;
} cfix;

static int fix_chunk = 0; /* examples per chunk of the layers made by fix_make (0: automatic) */

static bool fix_make(cfix *f, const geom *g, kvi_family fam, int B, uint64_t seed) {
  memset(f, 0, sizeof *f);
  kvi_params_init(&f->p);
  kvi_prior prior = fam == KVI_FAMILY_POINT ? KVI_PRIOR_NONE : KVI_PRIOR_ARD;
  kvi_status s = kvi_conv_declare(&f->l, &f->p, "c0", g->h, g->w, g->cin, g->cout, g->k, g->stride,
                                  g->pad, fam, prior, 1.0, true);
  CHECK_OK(s);
  f->l.chunk = fix_chunk;
  if (s || kvi_params_alloc(&f->p)) return false;
  kvi_rng r = kvi_rng_stream(seed, 1);
  kvi_conv_init(&f->l, &f->p, &r, 1.0, -1.0); /* large noise: variance paths matter */
  kvi_real *pert = malloc(f->p.n * sizeof *pert);
  kvi_rng_normal(&r, pert, f->p.n);
  for (size_t i = 0; i < f->p.n; i++) f->p.data[i] += 0.2 * pert[i];
  free(pert);
  f->B = B;
  f->nx = (size_t)B * g->h * g->w * g->cin;
  f->ny = (size_t)B * f->l.oh * f->l.ow * g->cout;
  f->ne = kvi_conv_noise_size(&f->l, B);
  f->X = malloc(f->nx * sizeof *f->X), f->dX = malloc(f->nx * sizeof *f->dX);
  f->R = malloc(f->ny * sizeof *f->R), f->Y = malloc(f->ny * sizeof *f->Y);
  f->eps = malloc((f->ne + 1) * sizeof *f->eps);
  kvi_rng_normal(&r, f->X, f->nx);
  kvi_rng_normal(&r, f->R, f->ny);
  kvi_rng_normal(&r, f->eps, f->ne + 1);
  f->e = f->ne ? f->eps : NULL;
  f->ws = kvi_alloc(kvi_conv_ws_size(&f->l, B));
  return f->ws != NULL;
}

static void fix_free(cfix *f) {
  free(f->X), free(f->dX), free(f->R), free(f->Y), free(f->eps);
  kvi_free(f->ws);
  kvi_params_free(&f->p);
}

/* sum(Y * R) with the current X and parameters (the FD routine perturbs them in place). */
static double conv_loss(const double *unused, void *vctx) {
  (void)unused;
  cfix *f = vctx;
  if (kvi_conv_forward(f->Y, f->ws, &f->l, &f->p, f->X, f->e, f->B)) return NAN;
  double s = 0;
  for (size_t i = 0; i < f->ny; i++) s += f->Y[i] * f->R[i];
  return s;
}

static void check_grad_b(const geom *g, kvi_family fam, bool sampled, int B) {
  cfix f;
  if (!fix_make(&f, g, fam, B, 7 + (uint64_t)fam)) {
    fix_free(&f);
    return;
  }
  if (!sampled) f.e = NULL;
  CHECK_OK(kvi_conv_forward(f.Y, f.ws, &f.l, &f.p, f.X, f.e, f.B));
  kvi_params_zero_grad(&f.p);
  CHECK_OK(kvi_conv_backward(f.dX, &f.p, f.R, f.ws, &f.l, f.X, f.e, f.B));
  double *g0 = malloc(f.p.n * sizeof *g0);
  memcpy(g0, f.p.grad, f.p.n * sizeof *g0);
  const char *tag = sampled ? "sampled" : "mean";
  double err = kvi_test_fd_maxerr(conv_loss, &f, f.X, f.dX, (int)f.nx, 1e-6);
  if (err > 1e-6)
    fprintf(stderr, "conv %s %s k%d s%d p%d: dX FD error %.3g\n", kvi_family_name(fam), tag, g->k,
            g->stride, g->pad, err);
  CHECK(err < 1e-6);
  for (int v = 0; v < f.p.nviews; v++) {
    kvi_view *vw = &f.p.views[v];
    err = kvi_test_fd_maxerr(conv_loss, &f, f.p.data + vw->offset, g0 + vw->offset, (int)vw->size,
                             1e-6);
    if (err > 1e-6)
      fprintf(stderr, "conv %s %s k%d s%d p%d: %s FD error %.3g\n", kvi_family_name(fam), tag, g->k,
              g->stride, g->pad, vw->name, err);
    CHECK(err < 1e-6);
  }
  /* dX = NULL (first layer) gives the same parameter gradients */
  CHECK_OK(kvi_conv_forward(f.Y, f.ws, &f.l, &f.p, f.X, f.e, f.B));
  kvi_params_zero_grad(&f.p);
  CHECK_OK(kvi_conv_backward(NULL, &f.p, f.R, f.ws, &f.l, f.X, f.e, f.B));
  double d = 0;
  for (size_t i = 0; i < f.p.n; i++) d = fmax(d, fabs(f.p.grad[i] - g0[i]));
  CHECK(d < 1e-12);
  free(g0);
  fix_free(&f);
}

static void check_grad(const geom *g, kvi_family fam, bool sampled) {
  check_grad_b(g, fam, sampled, 2);
}

/* Chunked passes: E examples per chunk, so that batches of 1, 5 and 9 give one chunk, uneven
 * chunks, and more chunks than gradient groups (partial gradients reduced across groups).
 * Results must not depend on the chunking: the parameter gradients and dX of every split equal
 * the single-chunk ones up to rounding, and the FD check holds for each. */
static void check_chunks(const geom *g, kvi_family fam) {
  const int batches[] = {1, 5, 9}, chunks[] = {1, 2};
  for (int bi = 0; bi < 3; bi++)
    for (int ci = 0; ci < 2; ci++) {
      fix_chunk = chunks[ci];
      check_grad_b(g, fam, true, batches[bi]);
      if (bi == 2) check_grad_b(g, fam, false, batches[bi]);
      /* the same batch in one chunk gives the same gradients */
      cfix a, b;
      fix_chunk = chunks[ci];
      bool ok = fix_make(&a, g, fam, batches[bi], 3);
      fix_chunk = batches[bi];
      ok = fix_make(&b, g, fam, batches[bi], 3) && ok;
      if (ok) {
        CHECK_OK(kvi_conv_forward(a.Y, a.ws, &a.l, &a.p, a.X, a.e, a.B));
        CHECK_OK(kvi_conv_forward(b.Y, b.ws, &b.l, &b.p, b.X, b.e, b.B));
        kvi_params_zero_grad(&a.p), kvi_params_zero_grad(&b.p);
        CHECK_OK(kvi_conv_backward(a.dX, &a.p, a.R, a.ws, &a.l, a.X, a.e, a.B));
        CHECK_OK(kvi_conv_backward(b.dX, &b.p, b.R, b.ws, &b.l, b.X, b.e, b.B));
        double d = 0;
        for (size_t i = 0; i < a.ny; i++) d = fmax(d, fabs(a.Y[i] - b.Y[i]));
        for (size_t i = 0; i < a.nx; i++) d = fmax(d, fabs(a.dX[i] - b.dX[i]));
        for (size_t i = 0; i < a.p.n; i++) d = fmax(d, fabs(a.p.grad[i] - b.p.grad[i]));
        CHECK(d < 1e-12);
      }
      fix_free(&a), fix_free(&b);
    }
  fix_chunk = 0;
}

/* The passes give bit-identical outputs and gradients on 1 and 2 threads (9 examples in chunks of
 * 1: four gradient groups). */
static void check_threads(const geom *g, kvi_family fam) {
  cfix f;
  fix_chunk = 1;
  bool ok = fix_make(&f, g, fam, 9, 5);
  fix_chunk = 0;
  double *out[2] = {malloc((f.ny + f.nx + f.p.n) * sizeof(double)),
                    malloc((f.ny + f.nx + f.p.n) * sizeof(double))};
  for (int t = 0; ok && t < 2; t++) {
    kvi_set_threads(t + 1);
    CHECK_OK(kvi_conv_forward(f.Y, f.ws, &f.l, &f.p, f.X, f.e, f.B));
    kvi_params_zero_grad(&f.p);
    CHECK_OK(kvi_conv_backward(f.dX, &f.p, f.R, f.ws, &f.l, f.X, f.e, f.B));
    memcpy(out[t], f.Y, f.ny * sizeof(double));
    memcpy(out[t] + f.ny, f.dX, f.nx * sizeof(double));
    memcpy(out[t] + f.ny + f.nx, f.p.grad, f.p.n * sizeof(double));
  }
  if (ok) CHECK(!memcmp(out[0], out[1], (f.ny + f.nx + f.p.n) * sizeof(double)));
  free(out[0]), free(out[1]);
  fix_free(&f);
  kvi_set_threads(1);
}

/* Naive direct convolution with the mean weights: Y[b,oy,ox,co] = b_co +
 * sum_{ky,kx,ci} X[b, oy*s-p+ky, ox*s-p+kx, ci] M[(ky*k+kx)*c_in+ci, co]. */
static void naive_conv(double *Y, const kvi_conv *l, const kvi_real *M, const kvi_real *bias,
                       const kvi_real *X, int B) {
  int h = l->h, w = l->w, c = l->c_in, k = l->k, m = l->c_out;
  for (int b = 0; b < B; b++)
    for (int oy = 0; oy < l->oh; oy++)
      for (int ox = 0; ox < l->ow; ox++)
        for (int co = 0; co < m; co++) {
          double s = bias ? bias[co] : 0;
          for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
              int iy = oy * l->stride - l->pad + ky, ix = ox * l->stride - l->pad + kx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              for (int ci = 0; ci < c; ci++)
                s += X[(((size_t)b * h + iy) * w + ix) * c + ci] *
                     M[((size_t)(ky * k + kx) * c + ci) * m + co];
            }
          Y[(((size_t)b * l->oh + oy) * l->ow + ox) * m + co] = s;
        }
}

/* Naive input gradient of the mean path: dX[b,iy,ix,ci] = sum dY[b,oy,ox,co] M[tap,co]. */
static void naive_conv_dx(double *dX, const kvi_conv *l, const kvi_real *M, const kvi_real *dY,
                          int B) {
  int h = l->h, w = l->w, c = l->c_in, k = l->k, m = l->c_out;
  memset(dX, 0, (size_t)B * h * w * c * sizeof *dX);
  for (int b = 0; b < B; b++)
    for (int oy = 0; oy < l->oh; oy++)
      for (int ox = 0; ox < l->ow; ox++)
        for (int ky = 0; ky < k; ky++)
          for (int kx = 0; kx < k; kx++) {
            int iy = oy * l->stride - l->pad + ky, ix = ox * l->stride - l->pad + kx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            for (int ci = 0; ci < c; ci++) {
              double s = 0;
              for (int co = 0; co < m; co++)
                s += dY[(((size_t)b * l->oh + oy) * l->ow + ox) * m + co] *
                     M[((size_t)(ky * k + kx) * c + ci) * m + co];
              dX[(((size_t)b * h + iy) * w + ix) * c + ci] += s;
            }
          }
}

/* Mean forward (eps NULL) of every family = naive convolution with M (+ b); for the point family
 * also the input gradient against the naive transposed convolution. */
static void check_naive(const geom *g, kvi_family fam, int B) {
  cfix f;
  if (!fix_make(&f, g, fam, B, 3)) {
    fix_free(&f);
    return;
  }
  const kvi_real *M = kvi_params_data(&f.p, f.l.d.iM), *bias = kvi_params_data(&f.p, f.l.d.ib);
  double *ref = malloc((f.ny > f.nx ? f.ny : f.nx) * sizeof *ref);
  naive_conv(ref, &f.l, M, bias, f.X, B);
  CHECK_OK(kvi_conv_forward(f.Y, f.ws, &f.l, &f.p, f.X, NULL, B));
  double err = 0;
  for (size_t i = 0; i < f.ny; i++) err = fmax(err, fabs(f.Y[i] - ref[i]) / (1 + fabs(ref[i])));
  if (err > 1e-12)
    fprintf(stderr, "conv %s B%d k%d s%d p%d: naive forward error %.3g\n", kvi_family_name(fam), B,
            g->k, g->stride, g->pad, err);
  CHECK(err < 1e-12);
  if (fam == KVI_FAMILY_POINT) {
    CHECK_OK(kvi_conv_backward(f.dX, &f.p, f.R, f.ws, &f.l, f.X, NULL, B));
    naive_conv_dx(ref, &f.l, M, f.R, B);
    err = 0;
    for (size_t i = 0; i < f.nx; i++) err = fmax(err, fabs(f.dX[i] - ref[i]) / (1 + fabs(ref[i])));
    if (err > 1e-12) fprintf(stderr, "conv point B%d: naive dX error %.3g\n", B, err);
    CHECK(err < 1e-12);
  }
  free(ref);
  fix_free(&f);
}

/* The output is affine in eps: Y(eps) = Y(0) + J eps with J exact from one-hot eps, so
 * Cov(Y) = J J^T with no sampling. Per output position p (input patch x_p) the LRT gives
 *   Cov(y_pj, y_pj') = (x_p^T U x_p) V_jj' + [j = j'] sum_i x_pi^2 Var_ij (diagonal part)
 * and zero covariance between different positions (independent noise per position). */
static void check_cov(const geom *g, kvi_family fam) {
  cfix f;
  if (!fix_make(&f, g, fam, 2, 21 + (uint64_t)fam)) {
    fix_free(&f);
    return;
  }
  const kvi_dense *d = &f.l.d;
  int n = d->n, m = d->m, P = (int)(f.ny / (size_t)m);
  size_t ny = f.ny, ne = f.ne;
  /* the patches, from the naive index map */
  double *Xp = calloc((size_t)P * n, sizeof *Xp);
  int h = g->h, w = g->w, c = g->cin, k = g->k;
  for (int pr = 0; pr < P; pr++) {
    int b = pr / (f.l.oh * f.l.ow), oy = pr / f.l.ow % f.l.oh, ox = pr % f.l.ow;
    for (int ky = 0; ky < k; ky++)
      for (int kx = 0; kx < k; kx++) {
        int iy = oy * g->stride - g->pad + ky, ix = ox * g->stride - g->pad + kx;
        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
        for (int ci = 0; ci < c; ci++)
          Xp[(size_t)pr * n + (ky * k + kx) * c + ci] =
              f.X[(((size_t)b * h + iy) * w + ix) * c + ci];
      }
  }
  /* U = L_A L_A^T, V = L_B L_B^T (diagonals stored as logs), diagonal variances */
  double *U = calloc((size_t)n * n, sizeof *U), *V = calloc((size_t)m * m, sizeof *V);
  double *Dv = calloc((size_t)n * m, sizeof *Dv);
  if (d->iA >= 0) {
    const kvi_real *A = kvi_params_data(&f.p, d->iA), *Bf = kvi_params_data(&f.p, d->iB);
#define LOWER(P, N, i, t) \
  ((t) < (i) ? (P)[(size_t)(i) * (N) + (t)] : exp((P)[(size_t)(i) * (N) + (i)]))
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++)
        for (int t = 0; t <= (i < j ? i : j); t++)
          U[(size_t)i * n + j] += LOWER(A, n, i, t) * LOWER(A, n, j, t);
    for (int i = 0; i < m; i++)
      for (int j = 0; j < m; j++)
        for (int t = 0; t <= (i < j ? i : j); t++)
          V[(size_t)i * m + j] += LOWER(Bf, m, i, t) * LOWER(Bf, m, j, t);
#undef LOWER
  }
  if (d->iS >= 0) {
    const kvi_real *S = kvi_params_data(&f.p, d->iS);
    double fs = fam == KVI_FAMILY_DIAG ? 2 : 1; /* log sigma vs log variance */
    for (size_t i = 0; i < (size_t)n * m; i++) Dv[i] = exp(fs * S[i]);
  }
  /* J column by column */
  double *J = calloc(ny * ne, sizeof *J);
  kvi_real *Y0 = malloc(ny * sizeof *Y0);
  memset(f.eps, 0, ne * sizeof *f.eps);
  CHECK_OK(kvi_conv_forward(Y0, f.ws, &f.l, &f.p, f.X, f.eps, f.B));
  for (size_t e = 0; e < ne; e++) {
    f.eps[e] = 1;
    CHECK_OK(kvi_conv_forward(f.Y, f.ws, &f.l, &f.p, f.X, f.eps, f.B));
    f.eps[e] = 0;
    for (size_t o = 0; o < ny; o++) J[o * ne + e] = f.Y[o] - Y0[o];
  }
  double err = 0, cross = 0;
  for (size_t o1 = 0; o1 < ny; o1++)
    for (size_t o2 = 0; o2 < ny; o2++) {
      double cv = 0;
      for (size_t e = 0; e < ne; e++) cv += J[o1 * ne + e] * J[o2 * ne + e];
      int p1 = (int)(o1 / m), j1 = (int)(o1 % m), p2 = (int)(o2 / m), j2 = (int)(o2 % m);
      if (p1 != p2) {
        cross = fmax(cross, fabs(cv));
        continue;
      }
      const double *x = Xp + (size_t)p1 * n;
      double ref = 0, xux = 0;
      for (int i = 0; i < n; i++)
        for (int t = 0; t < n; t++) xux += x[i] * U[(size_t)i * n + t] * x[t];
      ref = xux * V[(size_t)j1 * m + j2];
      if (j1 == j2)
        for (int i = 0; i < n; i++) ref += x[i] * x[i] * Dv[(size_t)i * m + j1];
      err = fmax(err, fabs(cv - ref) / (1e-3 + fabs(ref)));
    }
  if (err > 1e-9 || cross > 1e-12)
    fprintf(stderr, "conv %s: covariance error %.3g, cross-position %.3g\n", kvi_family_name(fam),
            err, cross);
  CHECK(err < 1e-9);
  CHECK(cross < 1e-12);
  /* the mean of the sampled path is the mean path: Y(0) = Y(eps NULL) */
  CHECK_OK(kvi_conv_forward(f.Y, f.ws, &f.l, &f.p, f.X, NULL, f.B));
  double dm = 0;
  for (size_t o = 0; o < ny; o++) dm = fmax(dm, fabs(f.Y[o] - Y0[o]));
  CHECK(dm < 1e-12);
  free(Xp), free(U), free(V), free(Dv), free(J), free(Y0);
  fix_free(&f);
}

static void check_bad_input(void) {
  kvi_params p;
  kvi_params_init(&p);
  kvi_conv l;
  kvi_family fd = KVI_FAMILY_DIAG;
  kvi_prior pa = KVI_PRIOR_ARD;
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 2, 2, 1, 4, 5, 1, 1, fd, pa, 1, true)); /* 5 > 4 */
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 8, 2, 1, 4, 3, 1, 0, fd, pa, 1, true)); /* w */
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 0, 4, 1, 4, 3, 1, 1, fd, pa, 1, true));
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 4, -4, 1, 4, 3, 1, 1, fd, pa, 1, true));
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 4, 4, 0, 4, 3, 1, 1, fd, pa, 1, true));
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 4, 4, 1, -2, 3, 1, 1, fd, pa, 1, true));
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 4, 4, 1, 4, 0, 1, 1, fd, pa, 1, true));
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 4, 4, 1, 4, 3, 0, 1, fd, pa, 1, true)); /* stride */
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 4, 4, 1, 4, 3, -1, 1, fd, pa, 1, true));
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 4, 4, 1, 4, 3, 1, -1, fd, pa, 1, true)); /* pad */
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 4, 4, 1, 4, 3, 1, 1, fd, KVI_PRIOR_NONE, 1, true));
  CHECK_FAILS(kvi_conv_declare(&l, &p, "c", 1 << 16, 1 << 16, 1, 4, 3, 1, 1, fd, pa, 1, true));
  CHECK_FAILS(kvi_conv_declare(NULL, &p, "c", 4, 4, 1, 4, 3, 1, 1, fd, pa, 1, true));
  CHECK(p.nviews == 0); /* nothing declared by the failures */
  /* the output size formula oh = (h + 2 pad - k) / stride + 1 */
  CHECK_OK(kvi_conv_declare(&l, &p, "c", 7, 6, 2, 4, 3, 2, 1, fd, pa, 1, true));
  CHECK(l.oh == 4 && l.ow == 3 && l.d.n == 18 && l.d.m == 4);
  CHECK(kvi_conv_noise_size(&l, 5) == kvi_dense_noise_size(&l.d, 5 * 12));
  CHECK_OK(kvi_params_alloc(&p));
  int B = 2;
  void *ws = kvi_alloc(kvi_conv_ws_size(&l, B) + 64);
  kvi_real X[2 * 7 * 6 * 2] = {0}, Y[2 * 12 * 4], eps[2 * 12 * 4] = {0};
  CHECK_FAILS(kvi_conv_forward(Y, ws, &l, &p, X, eps, 0));
  CHECK_FAILS(kvi_conv_forward(Y, NULL, &l, &p, X, eps, B));
  CHECK_FAILS(kvi_conv_forward(Y, (char *)ws + 8, &l, &p, X, eps, B)); /* misaligned */
  CHECK_FAILS(kvi_conv_forward(NULL, ws, &l, &p, X, eps, B));
  CHECK_FAILS(kvi_conv_backward(X, &p, NULL, ws, &l, X, eps, B));
  /* B * oh * ow rows must fit the dense layer's int batch */
  int big = INT_MAX / 12 + 1;
  CHECK(kvi_conv_ws_size(&l, big) == 0);
  CHECK_FAILS(kvi_conv_forward(Y, ws, &l, &p, X, eps, big));
  CHECK_FAILS(kvi_conv_backward(X, &p, Y, ws, &l, X, eps, big));
  kvi_conv z;
  memset(&z, 0, sizeof z);
  CHECK_FAILS(kvi_conv_forward(Y, ws, &z, &p, X, eps, B)); /* never declared */
  CHECK_OK(kvi_conv_forward(Y, ws, &l, &p, X, eps, B));
  CHECK_OK(kvi_conv_backward(X, &p, Y, ws, &l, X, eps, B));
  kvi_free(ws);
  kvi_params_free(&p);
}

int main(void) {
  kvi_family fams[4] = {KVI_FAMILY_POINT, KVI_FAMILY_DIAG, KVI_FAMILY_MN, KVI_FAMILY_MNDIAG};
  const geom geoms[] = {
      {5, 4, 2, 3, 3, 1, 1}, /* same padding */
      {7, 6, 2, 3, 3, 2, 0}, /* stride 2, no padding */
      {5, 4, 2, 2, 3, 2, 1}, /* stride 2 with padding: uneven coverage of the border */
      {3, 4, 3, 2, 1, 1, 0}, /* 1x1 */
      {4, 5, 1, 2, 2, 1, 1}, /* even kernel, one input channel */
  };
  const int ngeom = (int)(sizeof geoms / sizeof geoms[0]);
  for (int f = 0; f < 4; f++)
    for (int gi = 0; gi < ngeom; gi++) {
      check_grad(&geoms[gi], fams[f], true);
      check_grad(&geoms[gi], fams[f], false);
      check_naive(&geoms[gi], fams[f], 3);
    }
  for (int f = 0; f < 4; f++) {
    check_chunks(&geoms[0], fams[f]); /* same padding */
    check_chunks(&geoms[2], fams[f]); /* stride 2 with padding */
  }
  for (int f = 1; f < 4; f++) {
    check_cov(&geoms[0], fams[f]);
    check_cov(&geoms[2], fams[f]);
  }
  for (int f = 0; f < 4; f++) check_threads(&geoms[2], fams[f]);
  /* several chunks and groups run by two threads */
  kvi_set_threads(2);
  const geom big = {16, 16, 4, 8, 3, 1, 1};
  check_naive(&big, KVI_FAMILY_POINT, 128);
  check_naive(&big, KVI_FAMILY_MN, 128);
  check_bad_input();
  TEST_MAIN_END();
}
