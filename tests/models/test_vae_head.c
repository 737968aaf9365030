/* The VAE's encoder heads (DIAG, MN p x q, MV) in double precision, each against an explicit
 * Gaussian built in this file: the covariance Sigma of z (diag sigma^2; U (x) V for the
 * row-major vec of an MN matrix; L L^T), the sampling map's matrix T (z = mu + T eps, read off
 * from unit eps) with T T^T = Sigma, the entropy d/2 (1 + log 2 pi) + 1/2 log det Sigma, log q(z)
 * = the explicit density at random points and at samples (also the eps shortcut), and the KL to
 * N(0, I) = 1/2 [tr Sigma + |mu|^2 - d - log det Sigma]. Then central differences of
 * <G, z(out, eps)> + c KL(out) with respect to every head output against the backward passes,
 * and the size checks (p q != d). */
#include "kronvi/models.h"
#include "kvi_test.h"

#define LOG_2PI 1.8378770664093454835606594728112

typedef struct {
  const char *name;
  kvi_vae_family f;
  int d, p, q;
} head_case;

/* The explicit Gaussian of a head: mean mu (d) and covariance S (d, d), from the layout of
 * docs/vae.md (not from the library's unpacking). */
static void explicit_gaussian(const kvi_vae_head *h, const double *out, double *mu, double *S) {
  const int d = h->d;
  for (int i = 0; i < d; i++) mu[i] = out[i];
  memset(S, 0, sizeof(double) * d * d);
  if (h->family == KVI_VAE_DIAG) {
    for (int i = 0; i < d; i++) S[i * d + i] = exp(2 * out[d + i]);
    return;
  }
  const int na = h->family == KVI_VAE_MN ? h->p : d;
  double *A = calloc((size_t)na * na, sizeof *A), *U = calloc((size_t)na * na, sizeof *U);
  for (int i = 0, k = d; i < na; i++)
    for (int j = 0; j <= i; j++, k++) A[i * na + j] = i == j ? exp(out[k]) : out[k];
  for (int i = 0; i < na; i++)
    for (int j = 0; j < na; j++)
      for (int l = 0; l < na; l++) U[i * na + j] += A[i * na + l] * A[j * na + l];
  if (h->family == KVI_VAE_MV) {
    memcpy(S, U, sizeof(double) * d * d);
  } else { /* Cov(z_ij, z_kl) = U_ik V_jl, index i q + j */
    const int p = h->p, q = h->q, off = d + p * (p + 1) / 2;
    double B[64] = {0}, V[64] = {0};
    for (int i = 0, k = off; i < q; i++)
      for (int j = 0; j <= i; j++, k++) B[i * q + j] = i == j ? exp(out[k]) : out[k];
    for (int i = 0; i < q; i++)
      for (int j = 0; j < q; j++)
        for (int l = 0; l < q; l++) V[i * q + j] += B[i * q + l] * B[j * q + l];
    for (int i = 0; i < p; i++)
      for (int j = 0; j < q; j++)
        for (int k = 0; k < p; k++)
          for (int l = 0; l < q; l++) S[(i * q + j) * d + k * q + l] = U[i * p + k] * V[j * q + l];
  }
  free(A), free(U);
}

/* log N(z; mu, S) by a Cholesky factor of S; *logdet = log det S. */
static double explicit_log_density(const double *z, const double *mu, const double *S, int d,
                                   double *logdet) {
  double *C = malloc(sizeof(double) * d * d), *v = malloc(sizeof(double) * d);
  memcpy(C, S, sizeof(double) * d * d);
  CHECK_OK(kvi_potrf_f64(d, C, d));
  double ld = 0, qf = 0;
  for (int i = 0; i < d; i++) {
    double a = z[i] - mu[i];
    for (int j = 0; j < i; j++) a -= C[i * d + j] * v[j];
    v[i] = a / C[i * d + i];
    qf += v[i] * v[i];
    ld += 2 * log(C[i * d + i]);
  }
  free(C), free(v);
  *logdet = ld;
  return -0.5 * qf - 0.5 * ld - 0.5 * d * LOG_2PI;
}

/* Random head outputs: means ~ N(0, 1), log-diagonals ~ N(0, 0.3^2), off-diagonals ~ N(0, 0.5^2) */
static void random_head(const kvi_vae_head *h, double *out, kvi_rng *r) {
  const int H = kvi_vae_head_size(h);
  kvi_rng_normal(r, out, (size_t)H);
  for (int k = h->d; k < H; k++) out[k] *= 0.4;
}

static void check_densities(const head_case *c) {
  kvi_vae_head h;
  CHECK_OK(kvi_vae_head_init(&h, c->f, c->d, c->p, c->q));
  const int d = h.d, H = kvi_vae_head_size(&h);
  kvi_rng r = kvi_rng_stream(11, (uint64_t)c->f * 100 + (uint64_t)c->d);
  double *out = malloc(sizeof(double) * H), *mu = malloc(sizeof(double) * d);
  double *S = malloc(sizeof(double) * d * d), *T = malloc(sizeof(double) * d * d);
  double *e = calloc((size_t)d, sizeof(double)), *z = malloc(sizeof(double) * d);
  random_head(&h, out, &r);
  explicit_gaussian(&h, out, mu, S);
  kvi_arena *ar = kvi_arena_create(1 << 12);
  /* T: column k is sample(e_k) - mu; T T^T must be S */
  for (int k = 0; k < d; k++) {
    memset(e, 0, sizeof(double) * d);
    e[k] = 1;
    CHECK_OK(kvi_vae_head_sample(&h, z, out, e, k % 2 ? ar : NULL));
    for (int i = 0; i < d; i++) T[i * d + k] = z[i] - mu[i];
  }
  double err = 0;
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) {
      double a = 0;
      for (int k = 0; k < d; k++) a += T[i * d + k] * T[j * d + k];
      err = fmax(err, fabs(a - S[i * d + j]));
    }
  CHECK(err < 1e-12);
  double logdet = 0, lq = 0, ent = 0, kl = 0;
  explicit_log_density(mu, mu, S, d, &logdet);
  CHECK_OK(kvi_vae_head_entropy(&h, &ent, out, ar));
  CHECK_NEAR(ent, 0.5 * d * (1 + LOG_2PI) + 0.5 * logdet, 1e-12);
  CHECK_NEAR(kvi_vae_head_logdet(&h, out), 0.5 * logdet, 1e-12);
  double tr = 0, mm = 0;
  for (int i = 0; i < d; i++) tr += S[i * d + i], mm += mu[i] * mu[i];
  CHECK_OK(kvi_vae_head_kl(&h, &kl, NULL, 0, out, NULL));
  CHECK_NEAR(kl, 0.5 * (tr + mm - d - logdet), 1e-12);
  for (int t = 0; t < 5; t++) { /* random points, then samples with the eps shortcut */
    double ld;
    kvi_rng_normal(&r, e, (size_t)d);
    for (int i = 0; i < d; i++) z[i] = mu[i] + 1.5 * e[i];
    CHECK_OK(kvi_vae_head_log_q(&h, &lq, z, out, ar));
    CHECK_NEAR(lq, explicit_log_density(z, mu, S, d, &ld), 1e-10);
    CHECK_OK(kvi_vae_head_sample(&h, z, out, e, ar));
    const double want = explicit_log_density(z, mu, S, d, &ld);
    CHECK_NEAR(kvi_vae_head_log_q_eps(&h, out, e), want, 1e-10);
    CHECK_OK(kvi_vae_head_log_q(&h, &lq, z, out, NULL));
    CHECK_NEAR(lq, want, 1e-10);
  }
  kvi_vae_head_mean(&h, z, out);
  for (int i = 0; i < d; i++) CHECK(z[i] == mu[i]);
  printf("%-10s d=%2d H=%3d: T T^T = Sigma (%.1e), entropy %.6f, KL %.6f, log q matches\n", c->name,
         d, H, err, ent, kl);
  kvi_arena_free(ar);
  free(out), free(mu), free(S), free(T), free(e), free(z);
}

/* <G, z(out, eps)> + c KL(out) and its gradient from the backward passes. */
typedef struct {
  const kvi_vae_head *h;
  const double *eps, *G;
  double c;
} fd_ctx;

static double fd_f(const double *out, void *vctx) {
  const fd_ctx *x = vctx;
  const int d = x->h->d;
  double z[64], kl = 0, f = 0;
  if (kvi_vae_head_sample(x->h, z, out, x->eps, NULL) ||
      kvi_vae_head_kl(x->h, &kl, NULL, 0, out, NULL))
    return NAN;
  for (int i = 0; i < d; i++) f += x->G[i] * z[i];
  return f + x->c * kl;
}

static void check_gradients(const head_case *c) {
  kvi_vae_head h;
  CHECK_OK(kvi_vae_head_init(&h, c->f, c->d, c->p, c->q));
  const int d = h.d, H = kvi_vae_head_size(&h);
  kvi_rng r = kvi_rng_stream(12, (uint64_t)c->f * 100 + (uint64_t)c->d);
  double *out = malloc(sizeof(double) * H), *g = calloc((size_t)H, sizeof(double));
  double eps[64], G[64];
  random_head(&h, out, &r);
  kvi_rng_normal(&r, eps, (size_t)d);
  kvi_rng_normal(&r, G, (size_t)d);
  fd_ctx x = {&h, eps, G, 0.7};
  kvi_arena *ar = kvi_arena_create(1 << 12);
  CHECK_OK(kvi_vae_head_sample_backward(&h, g, G, out, eps, ar));
  double kl;
  CHECK_OK(kvi_vae_head_kl(&h, &kl, g, 0.7, out, ar));
  const double err = kvi_test_fd_maxerr(fd_f, &x, out, g, H, 1e-6);
  CHECK(err < 1e-7);
  printf("%-10s gradients of <G, z> + 0.7 KL w.r.t. the %d head outputs: max error %.1e\n", c->name,
         H, err);
  kvi_arena_free(ar);
  free(out), free(g);
}

int main(void) {
  const head_case cases[] = {
      {"diag", KVI_VAE_DIAG, 5, 0, 0}, {"mn 3x2", KVI_VAE_MN, 6, 3, 2},
      {"mn 2x3", KVI_VAE_MN, 6, 2, 3}, {"mn 3x3", KVI_VAE_MN, 9, 3, 3},
      {"mn 4x1", KVI_VAE_MN, 4, 4, 1}, {"mv", KVI_VAE_MV, 6, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    check_densities(&cases[i]);
    check_gradients(&cases[i]);
  }
  /* sizes: p q must be |z|; the head layouts' sizes */
  kvi_vae_head h;
  CHECK_FAILS(kvi_vae_head_init(&h, KVI_VAE_MN, 40, 8, 4));
  CHECK(strstr(kvi_last_error(), "P*Q must equal |z|") != NULL);
  CHECK_FAILS(kvi_vae_head_init(&h, KVI_VAE_MN, 9, 0, 9));
  CHECK_FAILS(kvi_vae_head_init(&h, KVI_VAE_DIAG, 0, 0, 0));
  CHECK_FAILS(kvi_vae_head_init(&h, KVI_VAE_MV, KVI_VAE_MAX_LATENT + 1, 0, 0));
  CHECK_OK(kvi_vae_head_init(&h, KVI_VAE_MN, 40, 20, 2));
  CHECK(kvi_vae_head_size(&h) == 40 + 210 + 3);
  CHECK_OK(kvi_vae_head_init(&h, KVI_VAE_MV, 9, 0, 0));
  CHECK(kvi_vae_head_size(&h) == 9 + 45 && h.p == 9 && h.q == 1);
  CHECK_OK(kvi_vae_head_init(&h, KVI_VAE_DIAG, 9, 3, 3));
  CHECK(kvi_vae_head_size(&h) == 18 && h.p == 9 && h.q == 1);
  kvi_vae_family f;
  CHECK_OK(kvi_vae_family_parse(&f, "mv"));
  CHECK(f == KVI_VAE_MV && !strcmp(kvi_vae_family_name(f), "mv"));
  CHECK_FAILS(kvi_vae_family_parse(&f, "flow"));
  TEST_MAIN_END();
}
