/* The encoder head of the variational auto-encoder: how the encoder's outputs for one example
 * parameterize q(z | x) (docs/vae.md). The layout of the outputs `out`:
 *   DIAG  [mu (d), log sigma (d)]
 *   MN    [M (p, q) row-major, A's lower triangle row by row (p(p+1)/2), B's (q(q+1)/2)]
 *   MV    [mu (d), L's lower triangle row by row (d(d+1)/2)]
 * with the diagonal entries of a triangle stored as logs. Sampling, density, entropy and the KL
 * to N(0, I) are those of src/prob (kvi_diag_*, kvi_mn_*, kvi_mvn_*) on views of `out`; the
 * triangles are unpacked into the dense Cholesky storage prob.h uses (upper part zero) and the
 * gradients packed back. MV is its own path over kvi_mvn (a full Cholesky factor), not MN with a
 * d x 1 shape, whose 1 x 1 column factor would only duplicate the scale of the row factor.
 * Sampling, its backward and the KL, the per-image calls of training, first try the
 * allocation-free kernels of vae_head_fast.c on the packed outputs; this generic path is their
 * reference and decides whenever they decline (non-finite or out-of-range values). */
#include <string.h>

#include "internal.h"
#include "kronvi/models.h"
#include "models/vae_head_fast.h"

#define KVI__VAE_LOG_2PI 1.8378770664093454835606594728112

const char *kvi_vae_family_name(kvi_vae_family f) {
  return f == KVI_VAE_MN ? "mn" : f == KVI_VAE_MV ? "mv" : "diag";
}

kvi_status kvi_vae_family_parse(kvi_vae_family *f, const char *s) {
  if (s && !strcmp(s, "diag"))
    *f = KVI_VAE_DIAG;
  else if (s && !strcmp(s, "mn"))
    *f = KVI_VAE_MN;
  else if (s && (!strcmp(s, "mv") || !strcmp(s, "full")))
    *f = KVI_VAE_MV;
  else
    return kvi_fail(KVI_ERR_ARG, "unknown latent family '%s' (expected diag, mn or mv)",
                    s ? s : "(null)");
  return KVI_OK;
}

kvi_status kvi_vae_head_init(kvi_vae_head *h, kvi_vae_family f, int d, int p, int q) {
  if (!h) return kvi_fail(KVI_ERR_ARG, "vae_head_init: NULL argument");
  if (d < 1 || d > KVI_VAE_MAX_LATENT)
    return kvi_fail(KVI_ERR_ARG, "latent size %d outside [1, %d]", d, KVI_VAE_MAX_LATENT);
  if (f != KVI_VAE_DIAG && f != KVI_VAE_MN && f != KVI_VAE_MV)
    return kvi_fail(KVI_ERR_ARG, "unknown latent family %d", (int)f);
  if (f == KVI_VAE_MN && (p < 1 || q < 1 || (int64_t)p * q != d))
    return kvi_fail(KVI_ERR_ARG,
                    "the MN latent shape %dx%d has %lld entries but the latent size is %d (HINT: "
                    "P*Q must equal |z|, e.g. 20x2 or 8x5 for 40, 3x3 for 9)",
                    p, q, (long long)p * q, d);
  *h = (kvi_vae_head){f, d, f == KVI_VAE_MN ? p : d, f == KVI_VAE_MN ? q : 1};
  return KVI_OK;
}

static inline int kvi__tri(int n) { return n * (n + 1) / 2; }

int kvi_vae_head_size(const kvi_vae_head *h) {
  switch (h->family) {
    case KVI_VAE_MN:
      return h->d + kvi__tri(h->p) + kvi__tri(h->q);
    case KVI_VAE_MV:
      return h->d + kvi__tri(h->d);
    default:
      return 2 * h->d;
  }
}

/* The head's distribution for one example: views into `out`, dense Cholesky storages in `buf`
 * (from the scratch arena or the heap). */
typedef struct {
  kvi_diag diag;
  kvi_mn mn;
  kvi_mvn mvn;
  kvi_real *A, *B;       /* dense storages: MN (p, p), (q, q); MV: A (d, d) */
  kvi_real *gA, *gB, *g; /* their gradients and a d-vector (MV: dmu) */
  kvi_arena *arena;
  kvi_arena_mark mark;
  void *heap;
} kvi__hq;

/* Lower triangle (row by row, tri(n) numbers) -> dense storage (n, n), upper part zero. */
static void kvi__unpack(kvi_real *P, const kvi_real *t, int n) {
  memset(P, 0, (size_t)n * n * sizeof *P);
  for (int i = 0, k = 0; i < n; i++)
    for (int j = 0; j <= i; j++) P[(size_t)i * n + j] = t[k++];
}

/* dt (triangle) += dP's lower part. */
static void kvi__pack_add(kvi_real *dt, const kvi_real *dP, int n) {
  for (int i = 0, k = 0; i < n; i++)
    for (int j = 0; j <= i; j++) dt[k++] += dP[(size_t)i * n + j];
}

static kvi_status kvi__hq_open(kvi__hq *hq, const kvi_vae_head *h, const kvi_real *out,
                               kvi_arena *scratch) {
  memset(hq, 0, sizeof *hq);
  if (!h || !out) return kvi_fail(KVI_ERR_ARG, "vae head: NULL argument");
  const int d = h->d, p = h->p, q = h->q;
  if (h->family == KVI_VAE_DIAG) {
    hq->diag = (kvi_diag){1, d, out, out + d};
    return KVI_OK;
  }
  const size_t na = h->family == KVI_VAE_MN ? (size_t)p * p : (size_t)d * d;
  const size_t nb = h->family == KVI_VAE_MN ? (size_t)q * q : 0;
  const size_t bytes = (2 * (na + nb) + (size_t)d) * sizeof(kvi_real);
  hq->arena = scratch;
  if (scratch) {
    hq->mark = kvi_arena_get_mark(scratch);
    hq->A = kvi_arena_alloc(scratch, bytes);
  } else {
    hq->A = hq->heap = kvi_alloc(bytes);
  }
  if (!hq->A) return kvi_fail(KVI_ERR_NOMEM, "vae head: out of memory");
  hq->B = hq->A + na, hq->gA = hq->B + nb, hq->gB = hq->gA + na, hq->g = hq->gB + nb;
  if (h->family == KVI_VAE_MN) {
    kvi__unpack(hq->A, out + d, p);
    kvi__unpack(hq->B, out + d + kvi__tri(p), q);
    hq->mn = (kvi_mn){p, q, out, hq->A, hq->B};
  } else {
    kvi__unpack(hq->A, out + d, d);
    hq->mvn = (kvi_mvn){d, out, hq->A};
  }
  return KVI_OK;
}

static void kvi__hq_close(kvi__hq *hq) {
  if (hq->arena) kvi_arena_reset(hq->arena, hq->mark);
  kvi_free(hq->heap);
}

/* Zeroes the dense gradient buffers (MN, MV). */
static void kvi__hq_zero_grad(kvi__hq *hq, const kvi_vae_head *h) {
  const size_t na = h->family == KVI_VAE_MN ? (size_t)h->p * h->p : (size_t)h->d * h->d;
  const size_t nb = h->family == KVI_VAE_MN ? (size_t)h->q * h->q : 0;
  memset(hq->gA, 0, (na + nb + (size_t)h->d) * sizeof(kvi_real));
}

/* dout += the dense gradients (the mean's went straight into dout, except MV's g). */
static void kvi__hq_pack(const kvi__hq *hq, const kvi_vae_head *h, kvi_real *dout) {
  const int d = h->d;
  if (h->family == KVI_VAE_MN) {
    kvi__pack_add(dout + d, hq->gA, h->p);
    kvi__pack_add(dout + d + kvi__tri(h->p), hq->gB, h->q);
  } else if (h->family == KVI_VAE_MV) {
    for (int i = 0; i < d; i++) dout[i] += hq->g[i];
    kvi__pack_add(dout + d, hq->gA, d);
  }
}

kvi_status kvi__vae_head_sample_generic(const kvi_vae_head *h, kvi_real *z, const kvi_real *out,
                                        const kvi_real *eps, kvi_arena *scratch) {
  if (!z || !eps) return kvi_fail(KVI_ERR_ARG, "vae head sample: NULL argument");
  kvi__hq hq;
  kvi_status s = kvi__hq_open(&hq, h, out, scratch);
  if (s) return s;
  switch (h->family) {
    case KVI_VAE_DIAG:
      s = kvi_diag_sample(z, &hq.diag, eps);
      break;
    case KVI_VAE_MN:
      s = kvi_mn_sample(z, &hq.mn, eps, scratch);
      break;
    default:
      s = kvi_mvn_sample(z, &hq.mvn, eps);
  }
  kvi__hq_close(&hq);
  return s;
}

kvi_status kvi__vae_head_backward_generic(const kvi_vae_head *h, kvi_real *dout, const kvi_real *dz,
                                          const kvi_real *out, const kvi_real *eps,
                                          kvi_arena *scratch) {
  if (!dout || !dz || !eps) return kvi_fail(KVI_ERR_ARG, "vae head backward: NULL argument");
  kvi__hq hq;
  kvi_status s = kvi__hq_open(&hq, h, out, scratch);
  if (s) return s;
  if (h->family == KVI_VAE_DIAG) {
    kvi_diag_grad g = {dout, dout + h->d};
    s = kvi_diag_sample_backward(&g, dz, &hq.diag, eps);
  } else if (h->family == KVI_VAE_MN) {
    kvi__hq_zero_grad(&hq, h);
    kvi_mn_grad g = {dout, hq.gA, hq.gB};
    s = kvi_mn_sample_backward(&g, dz, &hq.mn, eps, scratch);
  } else {
    kvi__hq_zero_grad(&hq, h);
    kvi_mvn_grad g = {hq.g, hq.gA};
    s = kvi_mvn_sample_backward(&g, dz, &hq.mvn, eps);
  }
  if (!s) kvi__hq_pack(&hq, h, dout);
  kvi__hq_close(&hq);
  return s;
}

kvi_status kvi__vae_head_kl_generic(const kvi_vae_head *h, double *kl, kvi_real *dout,
                                    kvi_real gscale, const kvi_real *out, kvi_arena *scratch) {
  if (!kl) return kvi_fail(KVI_ERR_ARG, "vae head KL: NULL argument");
  kvi__hq hq;
  kvi_status s = kvi__hq_open(&hq, h, out, scratch);
  if (s) return s;
  const kvi_real one = 1;
  if (h->family == KVI_VAE_DIAG) {
    kvi_diag_grad g = {dout, dout ? dout + h->d : NULL};
    s = kvi_diag_kl_gauss(kl, &hq.diag, &one, true, dout ? &g : NULL, gscale);
  } else if (h->family == KVI_VAE_MN) {
    kvi__hq_zero_grad(&hq, h);
    kvi_mn_grad g = {dout, hq.gA, hq.gB};
    s = kvi_mn_kl_gauss(kl, &hq.mn, &one, true, dout ? &g : NULL, gscale);
  } else {
    kvi__hq_zero_grad(&hq, h);
    kvi_mvn_grad g = {hq.g, hq.gA};
    s = kvi_mvn_kl_std(kl, &hq.mvn, dout ? &g : NULL, gscale);
  }
  if (!s && dout) kvi__hq_pack(&hq, h, dout);
  kvi__hq_close(&hq);
  return s;
}

/* ---- the per-image calls of training: the kernels of vae_head_fast.c, else the generic path */
kvi_status kvi_vae_head_sample(const kvi_vae_head *h, kvi_real *z, const kvi_real *out,
                               const kvi_real *eps, kvi_arena *scratch) {
  if (!h || !out || !z || !eps) return kvi_fail(KVI_ERR_ARG, "vae head sample: NULL argument");
  if (kvi__vhf_sample(h, z, out, eps)) return KVI_OK;
  return kvi__vae_head_sample_generic(h, z, out, eps, scratch);
}

kvi_status kvi_vae_head_sample_backward(const kvi_vae_head *h, kvi_real *dout, const kvi_real *dz,
                                        const kvi_real *out, const kvi_real *eps,
                                        kvi_arena *scratch) {
  if (!h || !out || !dout || !dz || !eps)
    return kvi_fail(KVI_ERR_ARG, "vae head backward: NULL argument");
  if (kvi__vhf_backward(h, dout, dz, out, eps)) return KVI_OK;
  return kvi__vae_head_backward_generic(h, dout, dz, out, eps, scratch);
}

kvi_status kvi_vae_head_kl(const kvi_vae_head *h, double *kl, kvi_real *dout, kvi_real gscale,
                           const kvi_real *out, kvi_arena *scratch) {
  if (!h || !out || !kl) return kvi_fail(KVI_ERR_ARG, "vae head KL: NULL argument");
  if (kvi__vhf_kl(h, kl, dout, gscale, out)) return KVI_OK;
  return kvi__vae_head_kl_generic(h, kl, dout, gscale, out, scratch);
}

kvi_status kvi_vae_head_entropy(const kvi_vae_head *h, double *ent, const kvi_real *out,
                                kvi_arena *scratch) {
  if (!ent) return kvi_fail(KVI_ERR_ARG, "vae head entropy: NULL argument");
  kvi__hq hq;
  kvi_status s = kvi__hq_open(&hq, h, out, scratch);
  if (s) return s;
  if (h->family == KVI_VAE_DIAG)
    s = kvi_diag_entropy(ent, &hq.diag, NULL, 0);
  else if (h->family == KVI_VAE_MN)
    s = kvi_mn_entropy(ent, &hq.mn, NULL, 0);
  else
    s = kvi_mvn_entropy(ent, &hq.mvn, NULL, 0);
  kvi__hq_close(&hq);
  return s;
}

kvi_status kvi_vae_head_log_q(const kvi_vae_head *h, double *lq, const kvi_real *z,
                              const kvi_real *out, kvi_arena *scratch) {
  if (!lq || !z) return kvi_fail(KVI_ERR_ARG, "vae head log q: NULL argument");
  kvi__hq hq;
  kvi_status s = kvi__hq_open(&hq, h, out, scratch);
  if (s) return s;
  if (h->family == KVI_VAE_DIAG)
    s = kvi_diag_log_prob(lq, &hq.diag, z);
  else if (h->family == KVI_VAE_MN)
    s = kvi_mn_log_prob(lq, &hq.mn, z, scratch);
  else
    s = kvi_mvn_log_prob(lq, &hq.mvn, z, NULL, NULL, 0);
  kvi__hq_close(&hq);
  return s;
}

double kvi_vae_head_logdet(const kvi_vae_head *h, const kvi_real *out) {
  const int d = h->d;
  double a = 0, b = 0;
  switch (h->family) {
    case KVI_VAE_DIAG:
      for (int i = 0; i < d; i++) a += (double)out[d + i];
      return a;
    case KVI_VAE_MN:
      for (int i = 0; i < h->p; i++) a += (double)out[d + kvi__tri(i) + i];
      for (int j = 0; j < h->q; j++) b += (double)out[d + kvi__tri(h->p) + kvi__tri(j) + j];
      return (double)h->q * a + (double)h->p * b;
    default:
      for (int i = 0; i < d; i++) a += (double)out[d + kvi__tri(i) + i];
      return a;
  }
}

double kvi_vae_head_log_q_eps(const kvi_vae_head *h, const kvi_real *out, const kvi_real *eps) {
  double ss = 0;
  for (int i = 0; i < h->d; i++) ss += (double)eps[i] * (double)eps[i];
  return -0.5 * ss - 0.5 * h->d * KVI__VAE_LOG_2PI - kvi_vae_head_logdet(h, out);
}

void kvi_vae_head_mean(const kvi_vae_head *h, kvi_real *z, const kvi_real *out) {
  memcpy(z, out, (size_t)h->d * sizeof *z); /* mu, M and mu all come first */
}
