/* The variational auto-encoder (paper §3.3, §4.3, Algorithm 3; docs/vae.md): an encoder net and a
 * decoder net of point weights over one parameter block, the encoder head of vae_head.c between
 * them, a Bernoulli likelihood and a standard normal prior. One training batch runs
 *   H = enc(X),  z_b = sample(H_b, eps_b),  logits = dec(z),
 *   loss = -(1/B) sum_b [log p(x_b | z_b) - beta KL(q(z | x_b) || N(0, I))]
 * and the backward goes the same way back: dlogits = (sigmoid(logits) - x) / B through the
 * decoder to dz (its input gradient), through the head's sampling map to dH, plus beta/B times
 * the KL's gradient, then through the encoder. A batch runs data-parallel, in parts of rows
 * (kvi__vae_parts, net_rows.c). Evaluation estimates log p(x) by importance
 * sampling with the encoder as the proposal (kvi_vae_iwae). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vmath.h"
#include "internal.h"
#include "kronvi/models.h"
#include "models/models_internal.h"

#define KVI__VAE_LOG_2PI 1.8378770664093454835606594728112
#define KVI__VAE_ROWS 1000 /* rows the nets hold at least (evaluation chunks) */
#define KVI__VAE_ACC 5     /* accumulators per image in kvi_vae_iwae */

kvi_vae_config kvi_vae_config_default(void) {
  kvi_vae_config c;
  memset(&c, 0, sizeof c);
  kvi_vae_head_init(&c.head, KVI_VAE_DIAG, 40, 0, 0);
  c.in_size = 784, c.in_h = 28, c.in_w = 28;
  c.hidden = 300, c.layers = 3;
  c.act = KVI_ACT_ELU;
  return c;
}

static kvi_status kvi__vae_check_config(const kvi_vae_config *c, int max_batch) {
  kvi_vae_head h;
  kvi_status s = kvi_vae_head_init(&h, c->head.family, c->head.d, c->head.p, c->head.q);
  if (s) return s;
  if (c->in_size < 1 || c->in_size > 1000000)
    return kvi_fail(KVI_ERR_ARG, "VAE input size %d outside [1, 1000000]", c->in_size);
  if (c->in_h < 0 || c->in_w < 0 || (c->in_h > 0 && (int64_t)c->in_h * c->in_w != c->in_size))
    return kvi_fail(KVI_ERR_ARG, "VAE image shape %dx%d does not hold %d pixels", c->in_h, c->in_w,
                    c->in_size);
  if (c->hidden < 1 || c->hidden > 100000 || c->layers < 0 || c->layers > 16)
    return kvi_fail(KVI_ERR_ARG, "VAE hidden layers: %d of %d units (expected 0..16 of 1..100000)",
                    c->layers, c->hidden);
  if (max_batch < 1 || max_batch > 100000)
    return kvi_fail(KVI_ERR_ARG, "VAE batch %d outside [1, 100000]", max_batch);
  return KVI_OK;
}

/* "in-h-...-h-out" with `layers` hidden sizes. */
static kvi_status kvi__vae_arch(kvi_net_builder *b, const char **arch, int in, int h, int layers,
                                int out) {
  kvi_builder_begin(b, in);
  for (int i = 0; i < layers; i++) kvi_builder_dense(b, h);
  kvi_builder_dense(b, out);
  return kvi_builder_arch(b, arch);
}

kvi_status kvi_vae_create(kvi_vae **out, const kvi_vae_config *cfg, int max_batch, uint64_t seed) {
  if (!out || !cfg) return kvi_fail(KVI_ERR_ARG, "vae_create: NULL argument");
  *out = NULL;
  kvi_status s = kvi__vae_check_config(cfg, max_batch);
  if (s) return s;
  kvi_vae *v = calloc(1, sizeof *v);
  if (!v) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  v->cfg = *cfg;
  const int d = cfg->head.d, D = cfg->in_size;
  v->hsize = kvi_vae_head_size(&cfg->head);
  v->dpad = (d + 3) / 4 * 4;
  v->max_batch = max_batch > KVI__VAE_ROWS ? max_batch : KVI__VAE_ROWS;
  v->max_rows = v->max_batch;
  kvi_net_config nc = kvi_net_config_default();
  nc.family = KVI_FAMILY_POINT, nc.prior = KVI_PRIOR_NONE, nc.act = cfg->act;
  kvi_net_builder be, bd;
  const char *ae = NULL, *ad = NULL;
  s = kvi__vae_arch(&be, &ae, D, cfg->hidden, cfg->layers, v->hsize);
  if (!s) s = kvi__vae_arch(&bd, &ad, d, cfg->hidden, cfg->layers, D);
  if (!s) s = kvi_model_create(&v->model);
  if (!s) s = kvi_model_add_net(v->model, &v->enc, "enc", ae, D, &nc, v->max_batch);
  if (!s) s = kvi_model_add_net(v->model, &v->dec, "dec", ad, d, &nc, v->max_rows);
  if (!s) s = kvi_model_finish(v->model, seed);
  if (!s && !(kvi__net_rows_ok(v->enc) && kvi__net_rows_ok(v->dec)))
    s = kvi_fail(KVI_ERR_ARG, "VAE nets must be point dense layers and activations");
  if (!s) {
    const size_t R = (size_t)v->max_rows, Bm = (size_t)v->max_batch;
    v->scratch = kvi_arena_create(1 << 16);
    v->eps = kvi_alloc(R * (size_t)v->dpad * sizeof(kvi_real));
    v->z = kvi_alloc(R * (size_t)d * sizeof(kvi_real));
    v->dout = kvi_alloc(R * (size_t)D * sizeof(kvi_real));
    v->dhead = kvi_alloc(Bm * (size_t)v->hsize * sizeof(kvi_real));
    v->acc = kvi_alloc(KVI__VAE_ACC * Bm * sizeof(double));
    if (!v->scratch || !v->eps || !v->z || !v->dout || !v->dhead || !v->acc)
      s = kvi_fail(KVI_ERR_NOMEM, "out of memory for the VAE's buffers");
  }
  if (s) {
    kvi_vae_free(v);
    return s;
  }
  *out = v;
  return KVI_OK;
}

void kvi_vae_free(kvi_vae *v) {
  if (!v) return;
  kvi_model_free(v->model);
  kvi_arena_free(v->scratch);
  for (int t = 0; t < KVI_VAE_MAX_THREADS; t++) kvi_arena_free(v->tscratch[t]);
  kvi_free(v->eps), kvi_free(v->z), kvi_free(v->dout), kvi_free(v->dhead), kvi_free(v->acc);
  free(v);
}

kvi_status kvi_vae_check_binary(const kvi_real *X, int64_t n, int d, const char *what) {
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < d; j++) {
      const kvi_real x = X[(size_t)i * d + j];
      if (x != 0 && x != 1)
        return kvi_fail(KVI_ERR_ARG,
                        "%s: image %lld, pixel %d is %g: the Bernoulli decoder needs binary data "
                        "(every pixel 0 or 1) (HINT: kronvi vae binarize writes a binarized copy)",
                        what ? what : "data", (long long)i, j, (double)x);
    }
  return KVI_OK;
}

#ifdef KVI_DOUBLE
#define KVI__BEXP exp
#define KVI__BLOG log
#else
#define KVI__BEXP kvi__vexpf
#define KVI__BLOG kvi__vlogf
#endif

/* x l - softplus(l), softplus(l) = max(l, 0) + log(1 + e^{-|l|}); per-term in kvi_real, the sum
 * in double. The gradient x - sigmoid(l), sigmoid(l) = 1/(1 + e^{-l}) or e^{l}/(1 + e^{l}). */
KVI__HOT static double kvi__bern(const kvi_real *x, const kvi_real *l, int n) {
  double acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int i = 0; i < n; i++) {
    const kvi_real li = l[i], e = KVI__BEXP(-(li < 0 ? -li : li));
    acc += (double)(x[i] * li - (li > 0 ? li : 0) - KVI__BLOG(1 + e));
  }
  return acc;
}

KVI__HOT static void kvi__bern_grad(kvi_real *dl, const kvi_real *x, const kvi_real *l, int n,
                                    kvi_real gscale) {
#pragma omp simd
  for (int i = 0; i < n; i++) {
    const kvi_real li = l[i], e = KVI__BEXP(-(li < 0 ? -li : li)), r = 1 / (1 + e);
    dl[i] = gscale * (x[i] - (li >= 0 ? r : e * r));
  }
}

double kvi_bernoulli_log_lik(const kvi_real *x, const kvi_real *logits, int n, kvi_real *dlogits,
                             kvi_real gscale) {
  if (dlogits) kvi__bern_grad(dlogits, x, logits, n, gscale);
  return kvi__bern(x, logits, n);
}

/* The arenas of threads [0, n) (n <= KVI_VAE_MAX_THREADS), created on first use. */
static kvi_status kvi__vae_arenas(kvi_vae *v, int n) {
  for (int t = 0; t < n; t++)
    if (!v->tscratch[t] && !(v->tscratch[t] = kvi_arena_create(1 << 16)))
      return kvi_fail(KVI_ERR_NOMEM, "out of memory for the VAE's scratch");
  return KVI_OK;
}

/* A head call's failure s on image i of the batch, with its message. */
static kvi_status kvi__vae_image_fail(kvi_status s, int i) {
  return kvi_fail(s, "image %d of the batch: %s", i, kvi_last_error());
}

/* Rows [r0, r0 + nr) of a batch of b (one thread's part): the encoder, z from the head outputs
 * and the noise rows, the decoder, per image log p(x | z) into acc[i] and the KL into acc[b + i];
 * when grad, their gradients (dout rows scaled by gl, dhead rows by gk) and the backward of the
 * rows through the decoder, the head's sampling map and the encoder's layers above the first. */
static kvi_status kvi__vae_rows(kvi_vae *v, const kvi_real *X, int b, int r0, int nr, bool grad,
                                kvi_real gl, kvi_real gk, kvi_arena *scratch) {
  const kvi_vae_head *h = &v->cfg.head;
  const int D = v->cfg.in_size, hs = v->hsize, d = h->d, r1 = r0 + nr;
  const kvi_real *H = v->enc->acts[v->enc->nlayers], *L = v->dec->acts[v->dec->nlayers];
  kvi_status s = kvi__net_rows_forward(v->enc, r0, nr);
  int i = r0; /* the image a head call failed on */
  for (; i < r1 && !s; i++)
    s = kvi_vae_head_sample(h, v->z + (size_t)i * d, H + (size_t)i * hs,
                            v->eps + (size_t)i * v->dpad, scratch);
  if (s) return i > r0 ? kvi__vae_image_fail(s, i - 1) : s;
  if ((s = kvi__net_rows_forward(v->dec, r0, nr)) != KVI_OK) return s;
  for (i = r0; i < r1 && !s; i++) {
    const size_t o = (size_t)i * D;
    kvi_real *dh = grad ? v->dhead + (size_t)i * hs : NULL;
    if (dh) memset(dh, 0, (size_t)hs * sizeof *dh);
    v->acc[i] = kvi_bernoulli_log_lik(X + o, L + o, D, grad ? v->dout + o : NULL, gl);
    v->acc[b + i] = 0;
    s = kvi_vae_head_kl(h, &v->acc[b + i], dh, gk, H + (size_t)i * hs, scratch);
  }
  if (s) return kvi__vae_image_fail(s, i - 1);
  if (!grad) return KVI_OK;
  if ((s = kvi__net_rows_backward_input(v->dec, v->dout, r0, nr, true)) != KVI_OK) return s;
  const kvi_real *dz = v->dec->grads[0];
  for (i = r0; i < r1 && !s; i++)
    s = kvi_vae_head_sample_backward(h, v->dhead + (size_t)i * hs, dz + (size_t)i * d,
                                     H + (size_t)i * hs, v->eps + (size_t)i * v->dpad, scratch);
  if (s) return kvi__vae_image_fail(s, i - 1);
  return kvi__net_rows_backward_input(v->enc, v->dhead, r0, nr, false);
}

/* The weight layers of both nets, largest first: the threads take them one at a time as they
 * finish (a layer's gradient is one product, the same on any thread), so a slower core takes
 * fewer of them. */
typedef struct {
  kvi_net *net;
  int layer;
  const kvi_real *dOut;
} kvi__vae_wgrad;

static int kvi__vae_wgrads(kvi_vae *v, kvi__vae_wgrad *w) {
  int layer[2 * KVI__MAX_TOKENS], n = 0;
  double cost[2 * KVI__MAX_TOKENS];
  kvi_net *nets[2] = {v->dec, v->enc};
  const kvi_real *douts[2] = {v->dout, v->dhead};
  for (int k = 0; k < 2; k++) {
    int c = kvi__net_rows_weight_layers(nets[k], layer + n, cost + n);
    for (int j = n; j < n + c; j++) w[j] = (kvi__vae_wgrad){nets[k], layer[j], douts[k]};
    n += c;
  }
  for (int a = 1; a < n; a++) /* insertion sort by cost, descending (a few layers) */
    for (int j = a; j > 0 && cost[j] > cost[j - 1]; j--) {
      const kvi__vae_wgrad tw = w[j];
      const double tc = cost[j];
      w[j] = w[j - 1], cost[j] = cost[j - 1];
      w[j - 1] = tw, cost[j - 1] = tc;
    }
  return n;
}

/* The batch in parts of rows, part p = rows [b p / P, b (p + 1) / P) with P = kvi_get_threads()
 * (at most b): each part runs through both nets on one thread (kvi__vae_rows), then, after a
 * barrier, each weight layer's gradient over the whole batch. The parts depend on the thread
 * count set, not on how many threads the governor runs them on, so neither do the results. */
static kvi_status kvi__vae_parts(kvi_vae *v, const kvi_real *X, int b, bool grad, kvi_real gl,
                                 kvi_real gk) {
  int P = kvi_get_threads();
  if (P > b) P = b;
  if (P > KVI_VAE_MAX_THREADS) P = KVI_VAE_MAX_THREADS;
  int nt = kvi_get_active_threads();
  if (nt > P) nt = P;
  if (nt < 1) nt = 1;
  kvi_status s = kvi__vae_arenas(v, nt);
  if (s) return s;
  kvi__vae_wgrad w[2 * KVI__MAX_TOKENS];
  const int nw = grad ? kvi__vae_wgrads(v, w) : 0;
  kvi__net_rows_begin(v->enc, X, b);
  kvi__net_rows_begin(v->dec, v->z, b);
  int bad = P;
  char msg[512] = "";
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads(); /* team <= nt */
    for (int p = t; p < P; p += team) {
      const int r0 = (int)((int64_t)b * p / P), r1 = (int)((int64_t)b * (p + 1) / P);
      kvi_status sp = kvi__vae_rows(v, X, b, r0, r1 - r0, grad, gl, gk, v->tscratch[t]);
      if (sp) {
#pragma omp critical
        if (p < bad) bad = p, s = sp, snprintf(msg, sizeof msg, "%s", kvi_last_error());
      }
    }
    if (nw > 0) {
#pragma omp barrier
#pragma omp for schedule(dynamic, 1)
      for (int j = 0; j < nw; j++)
        if (bad == P) kvi__net_rows_weight_grad(w[j].net, w[j].layer, w[j].dOut, b);
    }
  }
  return s ? kvi_fail(s, "%s", msg) : KVI_OK;
}

kvi_status kvi_vae_batch(kvi_vae *v, kvi_vae_sums *out, const kvi_real *X, int b, kvi_rng *rng,
                         double kl_weight, bool grad) {
  if (!v || !out || !X || !rng || b < 1 || b > v->max_batch)
    return kvi_fail(KVI_ERR_ARG, "vae_batch: batch %d outside [1, %d] or NULL argument", b,
                    v ? v->max_batch : 0);
  kvi_rng_normal(rng, v->eps, (size_t)b * v->dpad);
  const kvi_real gl = (kvi_real)(-1.0 / b), gk = (kvi_real)(kl_weight / b);
  kvi_status s = kvi__vae_parts(v, X, b, grad, gl, gk);
  if (s) return s;
  double rec = 0, kl = 0; /* in image order: the same sums on any thread count */
  for (int i = 0; i < b; i++) rec += v->acc[i], kl += v->acc[b + i];
  if (!(isfinite(rec) && isfinite(kl)))
    return kvi_fail(KVI_ERR_NONFINITE, "non-finite ELBO (log p(x|z) sum %g, KL sum %g)", rec, kl);
  out->rec = rec, out->kl = kl;
  return KVI_OK;
}

/* ---- importance-weighted evaluation ----------------------------------------------------- */
/* Noise rows for the work items [pos, pos + rows) of a chunk of images (item t: image t / k,
 * sample t % k): runs of one image come from one fill of its stream at block r ceil(d/4). */
static void kvi__vae_iwae_noise(kvi_vae *v, int64_t pos, int rows, int k, uint64_t seed,
                                int64_t img0) {
  const int nblk = v->dpad / 4;
  for (int t = 0; t < rows;) {
    const int64_t j = (pos + t) / k, r = (pos + t) % k;
    const int run = (int)(k - r < rows - t ? k - r : rows - t);
    kvi_rng rng = kvi_rng_stream(seed, (uint64_t)(img0 + j));
    rng.ctr = (uint64_t)r * (uint64_t)nblk;
    kvi_rng_normal(&rng, v->eps + (size_t)t * v->dpad, (size_t)run * v->dpad);
    t += run;
  }
}

/* Adds log weight lw and log p(x | z) rec of one sample to image j's accumulators (running
 * maximum, sum of exp(lw - max), sum of rec). */
static inline void kvi__vae_acc(double *a, double lw, double rec) {
  if (lw > a[0]) {
    a[1] = a[1] * exp(a[0] - lw) + 1, a[0] = lw;
  } else {
    a[1] += exp(lw - a[0]);
  }
  a[2] += rec;
}

/* The decoder pass over work items [pos, pos + rows) of the chunk with head outputs H. */
static kvi_status kvi__vae_iwae_rows(kvi_vae *v, const kvi_real *H, const kvi_real *X, int64_t pos,
                                     int rows, int k) {
  const kvi_vae_head *h = &v->cfg.head;
  const int D = v->cfg.in_size, d = h->d;
  for (int t = 0; t < rows; t++) {
    const int64_t j = (pos + t) / k;
    kvi_status s = kvi_vae_head_sample(h, v->z + (size_t)t * d, H + (size_t)j * v->hsize,
                                       v->eps + (size_t)t * v->dpad, v->scratch);
    if (s) return kvi_fail(s, "image %lld: %s", (long long)j, kvi_last_error());
  }
  const kvi_real *L;
  kvi_status s = kvi_net_forward(v->dec, &L, v->z, rows, NULL);
  if (s) return s;
  for (int t = 0; t < rows; t++) {
    const int64_t j = (pos + t) / k;
    const kvi_real *z = v->z + (size_t)t * d, *e = v->eps + (size_t)t * v->dpad;
    double zz = 0, ee = 0;
    for (int i = 0; i < d; i++) zz += (double)z[i] * z[i], ee += (double)e[i] * e[i];
    const double rec = kvi__bern(X + (size_t)j * D, L + (size_t)t * D, D);
    /* log w = log p(x|z) + log N(z; 0, I) - [log N(eps; 0, I) - logdet]: the 2 pi terms cancel */
    double *a = v->acc + KVI__VAE_ACC * j;
    const double lw = rec - 0.5 * zz + 0.5 * ee + a[3];
    kvi__vae_acc(a, lw, rec);
  }
  return KVI_OK;
}

kvi_status kvi_vae_iwae(kvi_vae *v, double *ll, double *elbo, const kvi_real *X, int64_t n, int k,
                        uint64_t seed, int64_t first) {
  if (!v || !X || n < 0 || first < 0)
    return kvi_fail(KVI_ERR_ARG, "vae_iwae: NULL argument or negative count");
  if (k < 1 || k > KVI_VAE_MAX_SAMPLES)
    return kvi_fail(KVI_ERR_ARG, "importance samples k = %d outside [1, %d]", k,
                    KVI_VAE_MAX_SAMPLES);
  const kvi_vae_head *h = &v->cfg.head;
  const int D = v->cfg.in_size, hs = v->hsize;
  for (int64_t i0 = 0; i0 < n; i0 += v->max_batch) {
    const int nb = (int)(n - i0 < v->max_batch ? n - i0 : v->max_batch);
    const kvi_real *H, *Xc = X + (size_t)i0 * D;
    kvi_status s = kvi_net_forward(v->enc, &H, Xc, nb, NULL);
    for (int j = 0; j < nb && !s; j++) { /* accumulators: max, sum, rec, logdet, KL */
      double *a = v->acc + KVI__VAE_ACC * j;
      const kvi_real *Hj = H + (size_t)j * hs;
      a[0] = -INFINITY, a[1] = 0, a[2] = 0, a[3] = kvi_vae_head_logdet(h, Hj);
      s = kvi_vae_head_kl(h, &a[4], NULL, 0, Hj, v->scratch);
      if (s) s = kvi_fail(s, "image %lld: %s", (long long)(first + i0 + j), kvi_last_error());
    }
    if (s) return s;
    const int64_t total = (int64_t)nb * k;
    for (int64_t pos = 0; pos < total && !s; pos += v->max_rows) {
      const int rows = (int)(total - pos < v->max_rows ? total - pos : v->max_rows);
      kvi__vae_iwae_noise(v, pos, rows, k, seed, first + i0);
      s = kvi__vae_iwae_rows(v, H, Xc, pos, rows, k);
    }
    if (s) return s;
    for (int j = 0; j < nb; j++) {
      const double *a = v->acc + KVI__VAE_ACC * j;
      if (ll) ll[i0 + j] = a[0] + log(a[1]) - log((double)k);
      if (elbo) elbo[i0 + j] = a[2] / k - a[4];
    }
  }
  return KVI_OK;
}

kvi_status kvi_vae_encode_mean(kvi_vae *v, kvi_real *Z, const kvi_real *X, int64_t n) {
  if (!v || !Z || !X || n < 0) return kvi_fail(KVI_ERR_ARG, "vae_encode_mean: bad arguments");
  const int D = v->cfg.in_size, d = v->cfg.head.d;
  for (int64_t i0 = 0; i0 < n; i0 += v->max_batch) {
    const int nb = (int)(n - i0 < v->max_batch ? n - i0 : v->max_batch);
    const kvi_real *H;
    kvi_status s = kvi_net_forward(v->enc, &H, X + (size_t)i0 * D, nb, NULL);
    if (s) return s;
    for (int j = 0; j < nb; j++)
      kvi_vae_head_mean(&v->cfg.head, Z + (size_t)(i0 + j) * d, H + (size_t)j * v->hsize);
  }
  return KVI_OK;
}

kvi_status kvi_vae_decode(kvi_vae *v, kvi_real *P, const kvi_real *Z, int64_t n) {
  if (!v || !P || !Z || n < 0) return kvi_fail(KVI_ERR_ARG, "vae_decode: bad arguments");
  const int D = v->cfg.in_size, d = v->cfg.head.d;
  for (int64_t i0 = 0; i0 < n; i0 += v->max_rows) {
    const int nb = (int)(n - i0 < v->max_rows ? n - i0 : v->max_rows);
    const kvi_real *L;
    kvi_status s = kvi_net_forward(v->dec, &L, Z + (size_t)i0 * d, nb, NULL);
    if (s) return s;
    for (size_t t = 0; t < (size_t)nb * D; t++)
      P[(size_t)i0 * D + t] = (kvi_real)(1 / (1 + exp(-(double)L[t])));
  }
  return KVI_OK;
}
