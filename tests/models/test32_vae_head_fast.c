/* The encoder head's kernels (src/models/vae_head_fast.c, behind kvi_vae_head_sample,
 * kvi_vae_head_sample_backward and kvi_vae_head_kl) in single precision against the generic
 * weight-layer path of src/prob on the unpacked triangles (kvi_diag_*, kvi_mn_sample,
 * kvi_mn_sample_backward, kvi_mn_kl_gauss, kvi_mvn_*): random outputs for DIAG 40, MN 20x2,
 * 3x3, 1x5, 7x1 and MV 1, 9, 40, gradients added onto random values (+=), agreement to float
 * rounding (max error over max magnitude below 4e-6). Then the cases the kernels leave to the
 * generic path: a log-diagonal out of their range (same results), non-finite outputs (the same
 * status, nothing added), and z aliasing eps. */
#include "kronvi/models.h"
#include "kronvi/prob.h"
#include "kvi_test.h"

#define DMAX 160 /* the largest |z| of the cases */
#define MAXH (DMAX + DMAX * (DMAX + 1) / 2)

typedef struct {
  const char *name;
  kvi_vae_family f;
  int d, p, q;
} head_case;

/* The generic path: dense Cholesky storages (upper part zero) and the src/prob calls. */
typedef struct {
  kvi_vae_head h;
  kvi_real A[DMAX * DMAX], B[DMAX * DMAX], gA[DMAX * DMAX], gB[DMAX * DMAX], gmu[DMAX];
} ref_head;

static int tri(int n) { return n * (n + 1) / 2; }

static void unpack(kvi_real *P, const kvi_real *t, int n) {
  memset(P, 0, sizeof(kvi_real) * n * n);
  for (int i = 0, k = 0; i < n; i++)
    for (int j = 0; j <= i; j++) P[i * n + j] = t[k++];
}

static void pack_add(kvi_real *t, const kvi_real *P, int n) {
  for (int i = 0, k = 0; i < n; i++)
    for (int j = 0; j <= i; j++) t[k++] += P[i * n + j];
}

static void ref_open(ref_head *r, const kvi_real *out) {
  const int d = r->h.d, na = r->h.family == KVI_VAE_MN ? r->h.p : d;
  unpack(r->A, out + d, na);
  if (r->h.family == KVI_VAE_MN) unpack(r->B, out + d + tri(na), r->h.q);
  memset(r->gA, 0, sizeof r->gA), memset(r->gB, 0, sizeof r->gB), memset(r->gmu, 0, sizeof r->gmu);
}

static void ref_pack(const ref_head *r, kvi_real *dout) {
  const int d = r->h.d;
  if (r->h.family == KVI_VAE_MV) {
    for (int i = 0; i < d; i++) dout[i] += r->gmu[i];
    pack_add(dout + d, r->gA, d);
  } else if (r->h.family == KVI_VAE_MN) {
    pack_add(dout + d, r->gA, r->h.p);
    pack_add(dout + d + tri(r->h.p), r->gB, r->h.q);
  }
}

static kvi_status ref_sample(ref_head *r, kvi_real *z, const kvi_real *out, const kvi_real *eps) {
  const int d = r->h.d;
  ref_open(r, out);
  if (r->h.family == KVI_VAE_DIAG) return kvi_diag_sample(z, &(kvi_diag){1, d, out, out + d}, eps);
  if (r->h.family == KVI_VAE_MN)
    return kvi_mn_sample(z, &(kvi_mn){r->h.p, r->h.q, out, r->A, r->B}, eps, NULL);
  return kvi_mvn_sample(z, &(kvi_mvn){d, out, r->A}, eps);
}

static kvi_status ref_backward(ref_head *r, kvi_real *dout, const kvi_real *dz, const kvi_real *out,
                               const kvi_real *eps) {
  const int d = r->h.d;
  kvi_status s;
  ref_open(r, out);
  if (r->h.family == KVI_VAE_DIAG) {
    kvi_diag_grad g = {dout, dout + d};
    return kvi_diag_sample_backward(&g, dz, &(kvi_diag){1, d, out, out + d}, eps);
  } else if (r->h.family == KVI_VAE_MN) {
    kvi_mn_grad g = {dout, r->gA, r->gB};
    s = kvi_mn_sample_backward(&g, dz, &(kvi_mn){r->h.p, r->h.q, out, r->A, r->B}, eps, NULL);
  } else {
    kvi_mvn_grad g = {r->gmu, r->gA};
    s = kvi_mvn_sample_backward(&g, dz, &(kvi_mvn){d, out, r->A}, eps);
  }
  if (!s) ref_pack(r, dout);
  return s;
}

static kvi_status ref_kl(ref_head *r, double *kl, kvi_real *dout, kvi_real gs,
                         const kvi_real *out) {
  const int d = r->h.d;
  const kvi_real one = 1;
  kvi_status s;
  ref_open(r, out);
  if (r->h.family == KVI_VAE_DIAG) {
    kvi_diag_grad g = {dout, dout + d};
    return kvi_diag_kl_gauss(kl, &(kvi_diag){1, d, out, out + d}, &one, true, &g, gs);
  } else if (r->h.family == KVI_VAE_MN) {
    kvi_mn_grad g = {dout, r->gA, r->gB};
    s = kvi_mn_kl_gauss(kl, &(kvi_mn){r->h.p, r->h.q, out, r->A, r->B}, &one, true, &g, gs);
  } else {
    kvi_mvn_grad g = {r->gmu, r->gA};
    s = kvi_mvn_kl_std(kl, &(kvi_mvn){d, out, r->A}, &g, gs);
  }
  if (!s) ref_pack(r, dout);
  return s;
}

/* max |a - b| / max |b| */
static double rel_err(const kvi_real *a, const kvi_real *b, int n) {
  double e = 0, m = 1e-30;
  for (int k = 0; k < n; k++) e = fmax(e, fabs((double)a[k] - b[k])), m = fmax(m, fabs(b[k]));
  return e / m;
}

/* Random outputs: means ~ N(0, 1), log-diagonals ~ N(0, 0.4^2), off-diagonals ~ N(0, 0.4^2). */
static void random_head(const kvi_vae_head *h, kvi_real *out, kvi_rng *r) {
  const int H = kvi_vae_head_size(h);
  kvi_rng_normal(r, out, (size_t)H);
  for (int k = h->d; k < H; k++) out[k] *= (kvi_real)0.4;
}

/* One draw: sample, backward, KL by both paths; returns the largest relative error. */
static double compare_once(ref_head *ref, const kvi_real *out, kvi_rng *r) {
  const kvi_vae_head *h = &ref->h;
  const int d = h->d, H = kvi_vae_head_size(h);
  kvi_real eps[DMAX], dz[DMAX], z1[DMAX], z2[DMAX], g1[MAXH], g2[MAXH];
  kvi_rng_normal(r, eps, (size_t)d);
  kvi_rng_normal(r, dz, (size_t)d);
  CHECK_OK(kvi_vae_head_sample(h, z1, out, eps, NULL));
  CHECK_OK(ref_sample(ref, z2, out, eps));
  double err = rel_err(z1, z2, d);
  kvi_rng_normal(r, g1, (size_t)H);
  memcpy(g2, g1, sizeof(kvi_real) * H);
  CHECK_OK(kvi_vae_head_sample_backward(h, g1, dz, out, eps, NULL));
  CHECK_OK(ref_backward(ref, g2, dz, out, eps));
  err = fmax(err, rel_err(g1, g2, H));
  double k1 = 0, k2 = 0, k3 = 0;
  kvi_rng_normal(r, g1, (size_t)H);
  memcpy(g2, g1, sizeof(kvi_real) * H);
  CHECK_OK(kvi_vae_head_kl(h, &k1, g1, (kvi_real)0.37, out, NULL));
  CHECK_OK(ref_kl(ref, &k2, g2, (kvi_real)0.37, out));
  CHECK_OK(kvi_vae_head_kl(h, &k3, NULL, 0, out, NULL));
  CHECK(k1 == k3);
  err = fmax(err, rel_err(g1, g2, H));
  return fmax(err, fabs(k1 - k2) / fmax(1, fabs(k2)));
}

static void check_case(const head_case *c) {
  ref_head ref;
  CHECK_OK(kvi_vae_head_init(&ref.h, c->f, c->d, c->p, c->q));
  kvi_rng r = kvi_rng_stream(21, (uint64_t)c->f * 1000 + (uint64_t)c->d * 10 + (uint64_t)c->p);
  kvi_real out[MAXH];
  double err = 0;
  for (int t = 0; t < 20; t++) {
    random_head(&ref.h, out, &r);
    err = fmax(err, compare_once(&ref, out, &r));
  }
  CHECK(err < 4e-6);
  /* a log-diagonal past the kernels' range: the generic path, the same results */
  const int ld = c->f == KVI_VAE_DIAG ? c->d : c->d + (c->f == KVI_VAE_MN ? tri(c->p) : 0);
  out[ld] = c->f == KVI_VAE_DIAG ? -47 : -90; /* DIAG: sigma^2 still a (denormal) float */
  const double big = compare_once(&ref, out, &r);
  CHECK(big < 4e-6);
  printf("%-8s d=%2d: kernels vs src/prob, max relative error %.1e (%.1e past the range)\n",
         c->name, c->d, err, big);
}

/* A NaN output: both paths give the same status, and a failed call adds nothing. */
static void check_nonfinite(const head_case *c) {
  ref_head ref;
  CHECK_OK(kvi_vae_head_init(&ref.h, c->f, c->d, c->p, c->q));
  const int d = c->d, H = kvi_vae_head_size(&ref.h);
  kvi_rng r = kvi_rng_stream(22, (uint64_t)d);
  kvi_real out[MAXH], eps[DMAX], dz[DMAX], z[DMAX], g[MAXH], g0[MAXH];
  random_head(&ref.h, out, &r);
  kvi_rng_normal(&r, eps, (size_t)d);
  kvi_rng_normal(&r, dz, (size_t)d);
  kvi_rng_normal(&r, g0, (size_t)H);
  out[H - 2] = NAN;
  double kl = 0;
  memcpy(g, g0, sizeof(kvi_real) * H);
  const kvi_status s1 = kvi_vae_head_kl(&ref.h, &kl, g, 1, out, NULL);
  CHECK(s1 == ref_kl(&ref, &kl, g0, 1, out));
  if (s1) CHECK(!memcmp(g, g0, sizeof(kvi_real) * H));
  CHECK(kvi_vae_head_sample(&ref.h, z, out, eps, NULL) == ref_sample(&ref, z, out, eps));
  CHECK(kvi_vae_head_sample_backward(&ref.h, g, dz, out, eps, NULL) ==
        ref_backward(&ref, g0, dz, out, eps));
}

/* z = eps (in place) gives the same sample. */
static void check_alias(const head_case *c) {
  kvi_vae_head h;
  CHECK_OK(kvi_vae_head_init(&h, c->f, c->d, c->p, c->q));
  kvi_rng r = kvi_rng_stream(23, (uint64_t)c->d);
  kvi_real out[MAXH], eps[DMAX], z[DMAX];
  random_head(&h, out, &r);
  kvi_rng_normal(&r, eps, (size_t)c->d);
  CHECK_OK(kvi_vae_head_sample(&h, z, out, eps, NULL));
  CHECK_OK(kvi_vae_head_sample(&h, eps, out, eps, NULL));
  CHECK(!memcmp(z, eps, sizeof(kvi_real) * c->d));
}

int main(void) {
  const head_case cases[] = {
      {"diag", KVI_VAE_DIAG, 40, 0, 0},    {"mn 20x2", KVI_VAE_MN, 40, 20, 2},
      {"mn 3x3", KVI_VAE_MN, 9, 3, 3},     {"mn 1x5", KVI_VAE_MN, 5, 1, 5},
      {"mn 7x1", KVI_VAE_MN, 7, 7, 1},     {"mv 1", KVI_VAE_MV, 1, 0, 0},
      {"mv 9", KVI_VAE_MV, 9, 0, 0},       {"mv 40", KVI_VAE_MV, 40, 0, 0},
      {"mn 2x80", KVI_VAE_MN, 160, 2, 80}, /* q > 64: the backward takes the generic path */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    check_case(&cases[i]);
    check_nonfinite(&cases[i]);
    check_alias(&cases[i]);
  }
  TEST_MAIN_END();
}
