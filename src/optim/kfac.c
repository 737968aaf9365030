/* K-FAC (Martens & Grosse 2015; convolutions: Grosse & Martens 2016; EKFAC: George et al. 2018)
 * for the weight layers of point networks (docs/kfac.md).
 *
 * For a weight layer s = a W + b (a convolution: per output position, a = the im2col patch) the
 * Fisher block of the (n+1) x m matrix [W; b] is approximated by A (x) G with
 *   A = E[sum over positions of abar abar^T],  abar = [a, 1],
 *   G = E[mean over positions of ds ds^T],      ds = per-example output gradient,
 * estimated by exponential moving averages of the captured rows (kvi_capture_rows). The
 * gradient V of [W; b] is preconditioned in the factors' eigenbases A = QA dA QA^T,
 * G = QG dG QG^T (refreshed every T steps):
 *   P = QA [(QA^T V QG) / D] QG^T,
 * D_ij = (dA_i + pi sqrt(l)) (dG_j + sqrt(l) / pi) (factored damping with the pi correction),
 * dA_i dG_j + l (exact Tikhonov damping of A (x) G), or S_ij + l (EKFAC: S the moving average of
 * the per-example gradients' squared coordinates in the eigenbasis). The step is scaled so that
 * lr^2 P.V <= kl_clip, then momentum, then x <- (1 - lr wd [mean]) x - lr m. Other views (a
 * regression net's noise precision) take momentum SGD. With adapt_every, the damping l follows
 * the Levenberg-Marquardt rule on the ratio of the actual to the predicted loss reduction. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/optim.h"
#include "optim/kron_step.h"

typedef struct {
  const kvi_dense *w;
  int n, na, m;          /* inputs, inputs (+1 with a bias), outputs */
  kvi_real *A, *G;       /* moving averages (state) */
  kvi_real *QA, *dA;     /* eigenbasis of A (state) */
  kvi_real *QG, *dG;     /* eigenbasis of G (state) */
  kvi_real *S;           /* EKFAC scaling (state), NULL without EKFAC */
  kvi_real *count;       /* [0]: statistics updates, [1]: 1 once a basis exists (state) */
  kvi_real *V, *P;       /* scratch: gradient and preconditioned step, na x m */
  kvi_real *tmpA, *tmpG; /* scratch: new inverses before they replace the old ones */
} kvi__kl;

typedef struct {
  int nl;
  kvi__kl *l;
  kvi_real *damping;    /* state "kfac.damping" */
  unsigned char *bound; /* per view: 1 if it is the M or b of a bound layer */
  double *work;         /* scratch for the eigendecompositions, in double */
  kvi_real *tmp, *tmp2, *rowsA, *rowsG, *rowsBar; /* scratch */
  size_t rows_cap;
  double q_pred;   /* predicted change of the objective by the last step (LM) */
  bool noisy;      /* noisy K-FAC: the MN posterior's factors follow the curvature */
  int64_t skipped; /* updates skipped for non-finite values */
  /* data-parallel (o->comm of more than one process): the batch statistics of this process's
   * rows, per layer [A (na x na), G (m x m), S (na x m) with EKFAC], then one count per layer of
   * observations; summed over the processes before the step uses them */
  kvi_real *pend;
  size_t npend;
} kvi__kfac;

static kvi__kfac *kvi__k(const kvi_optimizer *o) { return o->impl; }

/* Exact damping and EKFAC work in the factors' eigenbases; factored damping with the damped
 * factors' inverses (A + pi sqrt(l) I)^-1, (G + sqrt(l)/pi I)^-1, two products a step. */
static bool kvi__eigen_mode(const kvi_optimizer *o) {
  return o->cfg.ekfac || o->cfg.damping_kind == KVI_DAMP_EXACT;
}

/* ---- state -------------------------------------------------------------------------------- */
static kvi_status kvi__state(kvi_optimizer *o, const char *what, const char *layer, int64_t r,
                             int64_t c, kvi_real **out) {
  char name[96];
  snprintf(name, sizeof name, "kfac.%s.%s", what, layer);
  int64_t shape[2] = {r, c};
  return kvi_optimizer_add_state(o, name, c > 0 ? 2 : 1, shape, out);
}

static kvi_status kvi__bind_layer(kvi_optimizer *o, kvi__kl *L, const kvi_dense *w) {
  L->w = w;
  L->n = w->n, L->na = w->n + (w->bias ? 1 : 0), L->m = w->m;
  const int64_t na = L->na, m = L->m;
  const bool eig = kvi__eigen_mode(o);
  kvi_status s = kvi__state(o, "A", w->name, na, na, &L->A);
  if (!s) s = kvi__state(o, "G", w->name, m, m, &L->G);
  if (!s) s = kvi__state(o, eig ? "QA" : "Ainv", w->name, na, na, &L->QA);
  if (!s && eig) s = kvi__state(o, "dA", w->name, na, 0, &L->dA);
  if (!s) s = kvi__state(o, eig ? "QG" : "Ginv", w->name, m, m, &L->QG);
  if (!s && eig) s = kvi__state(o, "dG", w->name, m, 0, &L->dG);
  if (!s) s = kvi__state(o, "count", w->name, 2, 0, &L->count);
  if (!s && o->cfg.ekfac) s = kvi__state(o, "S", w->name, na, m, &L->S);
  if (s) return s;
  L->V = kvi_alloc((size_t)na * m * sizeof(kvi_real));
  L->P = kvi_alloc((size_t)na * m * sizeof(kvi_real));
  if (!eig) {
    L->tmpA = kvi_alloc((size_t)na * na * sizeof(kvi_real));
    L->tmpG = kvi_alloc((size_t)m * m * sizeof(kvi_real));
  }
  return L->V && L->P && (eig || (L->tmpA && L->tmpG))
             ? KVI_OK
             : kvi_fail(KVI_ERR_NOMEM, "out of memory for K-FAC");
}

static void kvi__kfac_free(void *impl) {
  kvi__kfac *k = impl;
  if (!k) return;
  for (int i = 0; i < k->nl; i++) {
    kvi_free(k->l[i].V), kvi_free(k->l[i].P);
    kvi_free(k->l[i].tmpA), kvi_free(k->l[i].tmpG);
  }
  free(k->l), free(k->bound), free(k->work);
  kvi_free(k->tmp), kvi_free(k->tmp2), kvi_free(k->rowsA), kvi_free(k->rowsG);
  kvi_free(k->rowsBar);
  kvi_free(k->pend);
  free(k);
}

static kvi_status kvi__kfac_init(kvi_optimizer *o, const kvi_params *p) {
  kvi_real *b;
  kvi__kfac *k = calloc(1, sizeof *k);
  if (!k) return kvi_fail(KVI_ERR_NOMEM, "out of memory for K-FAC");
  o->impl = k;
  o->impl_free = kvi__kfac_free;
  int64_t one = 1;
  kvi_status s = kvi_optimizer_add_buffer(o, p, "optim.m", &b);
  if (!s) s = kvi_optimizer_add_state(o, "kfac.damping", 1, &one, &k->damping);
  if (!s) k->damping[0] = (kvi_real)o->cfg.damping;
  return s;
}

extern const kvi_optimizer_ops kvi_noisy_kfac_ops;

/* K-FAC trains point layers; noisy K-FAC Matrix Normal layers with a Gaussian prior of one
 * variance (fixed or learnt), in factored damping. */
static kvi_status kvi__check_layer(const kvi_optimizer *o, const kvi__kfac *k, const kvi_dense *w) {
  if (!k->noisy && w->family != KVI_FAMILY_POINT)
    return kvi_fail(KVI_ERR_UNSUPPORTED,
                    "kfac: layer '%s' is %s; K-FAC trains point networks (--family point; "
                    "noisy-kfac fits an mn posterior)",
                    w->name, kvi_family_name(w->family));
  if (!k->noisy) return KVI_OK;
  if (w->family != KVI_FAMILY_MN)
    return kvi_fail(KVI_ERR_UNSUPPORTED, "noisy-kfac: layer '%s' is %s; it fits --family mn",
                    w->name, kvi_family_name(w->family));
  if (w->prior != KVI_PRIOR_FIXED && w->prior != KVI_PRIOR_SCALAR)
    return kvi_fail(KVI_ERR_UNSUPPORTED,
                    "noisy-kfac: layer '%s' has the %s prior; it needs one prior variance per "
                    "layer (--prior fixed:VAR or scalar)",
                    w->name, kvi_prior_name(w->prior));
  if (o->cfg.ekfac || o->cfg.damping_kind != KVI_DAMP_FACTORED)
    return kvi_fail(KVI_ERR_UNSUPPORTED, "noisy-kfac works with factored damping only");
  return KVI_OK;
}

static kvi_status kvi__kfac_bind(kvi_optimizer *o, const kvi_params *p, kvi_dense *const *w,
                                 int nw) {
  kvi__kfac *k = kvi__k(o);
  if (k->l) return kvi_fail(KVI_ERR_STATE, "kfac: layers bound already");
  k->l = calloc((size_t)(nw > 0 ? nw : 1), sizeof *k->l);
  k->bound = calloc((size_t)(p->nviews > 0 ? p->nviews : 1), 1);
  if (!k->l || !k->bound) return kvi_fail(KVI_ERR_NOMEM, "out of memory for K-FAC");
  size_t big = 1, sq = 1;
  k->noisy = o->ops == &kvi_noisy_kfac_ops;
  for (int i = 0; i < nw; i++) {
    kvi_status s = kvi__check_layer(o, k, w[i]);
    if (!s) s = kvi__bind_layer(o, &k->l[i], w[i]);
    k->nl = i + 1;
    if (s) return s;
    const size_t na = (size_t)k->l[i].na, m = (size_t)k->l[i].m;
    big = na * m > big ? na * m : big;
    sq = na * na > sq ? na * na : sq;
    sq = m * m > sq ? m * m : sq;
    k->bound[w[i]->iM] = 1;
    if (w[i]->ib >= 0) k->bound[w[i]->ib] = 1;
    if (k->noisy) k->bound[w[i]->iA] = k->bound[w[i]->iB] = 1; /* set, not stepped */
  }
  size_t sqa = sq > big ? sq : big;
  k->work = malloc((sq + (size_t)sqrt((double)sq) + 8) * sizeof(double));
  k->tmp = kvi_alloc(sqa * sizeof(kvi_real));
  k->tmp2 = kvi_alloc(sqa * sizeof(kvi_real));
  if (!k->work || !k->tmp || !k->tmp2) return kvi_fail(KVI_ERR_NOMEM, "out of memory for K-FAC");
  return KVI_OK;
}

/* ---- statistics (the capture observer) ---------------------------------------------------- */
static bool kvi__finite(const kvi_real *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return false;
  return true;
}

/* x <- e x + (1 - e) y, or x <- y on the first update. */
static void kvi__ema(kvi_real *x, const kvi_real *y, size_t n, double e, bool first) {
  if (first) {
    memcpy(x, y, n * sizeof *x);
    return;
  }
  const kvi_real a = (kvi_real)e, c = (kvi_real)(1 - e);
  for (size_t i = 0; i < n; i++) x[i] = a * x[i] + c * y[i];
}

/* Rows of in with the bias column and of B * grad_out (B: the whole batch's examples, whose mean
 * the gradient rows carry), rotated into the eigenbases:
 * rowsA = abar QA (rows x na), rowsG = (B g) QG (rows x m). */
static kvi_status kvi__rotated_rows(kvi__kfac *k, const kvi__kl *L, const kvi_capture_rows *r) {
  const size_t need_a = (size_t)r->rows * L->na, need_g = (size_t)r->rows * L->m;
  const size_t need = need_a > need_g ? need_a : need_g;
  if (need > k->rows_cap) {
    kvi_free(k->rowsA), kvi_free(k->rowsG), kvi_free(k->rowsBar);
    k->rowsA = kvi_alloc(need * sizeof(kvi_real));
    k->rowsG = kvi_alloc(need * sizeof(kvi_real));
    k->rowsBar = kvi_alloc(need * sizeof(kvi_real));
    k->rows_cap = k->rowsA && k->rowsG && k->rowsBar ? need : 0;
    if (!k->rows_cap) return kvi_fail(KVI_ERR_NOMEM, "out of memory for EKFAC");
  }
  kvi_real *bar = k->rowsBar;
  for (int i = 0; i < r->rows; i++) {
    memcpy(bar + (size_t)i * L->na, r->in + (size_t)i * L->n, (size_t)L->n * sizeof(kvi_real));
    if (L->na > L->n) bar[(size_t)i * L->na + L->n] = 1;
  }
  kvi_gemm(false, false, r->rows, L->na, L->na, 1, bar, L->na, L->QA, L->na, 0, k->rowsA, L->na);
  kvi_gemm(false, false, r->rows, L->m, L->m, (kvi_real)r->batch_total, r->grad_out, L->m, L->QG,
           L->m, 0, k->rowsG, L->m);
  return KVI_OK;
}

/* EKFAC: the batch mean over examples of the squared per-example gradient in the eigenbasis,
 * sum over an example's positions of (abar QA)^T (B g QG), squared elementwise (this process's
 * examples' share of the mean over the whole batch). */
static kvi_status kvi__ekfac_batch(kvi__kfac *k, const kvi__kl *L, const kvi_capture_rows *r,
                                   kvi_real *Sb) {
  kvi_status s = kvi__rotated_rows(k, L, r);
  if (s) return s;
  const int T = r->rows / r->batch, na = L->na, m = L->m;
  memset(Sb, 0, (size_t)na * m * sizeof(kvi_real));
  if (T == 1) { /* one row per example: its gradient is the outer product a~ g~^T, so the mean
                   of the squares is (a~ o a~)^T (g~ o g~) / B */
    for (size_t i = 0; i < (size_t)r->rows * na; i++) k->rowsA[i] *= k->rowsA[i];
    for (size_t i = 0; i < (size_t)r->rows * m; i++) k->rowsG[i] *= k->rowsG[i];
    kvi_gemm(true, false, na, m, r->rows, (kvi_real)(1.0 / r->batch_total), k->rowsA, na, k->rowsG,
             m, 0, Sb, m);
    return KVI_OK;
  }
  for (int e = 0; e < r->batch; e++) {
    kvi_gemm(true, false, na, m, T, 1, k->rowsA + (size_t)e * T * na, na,
             k->rowsG + (size_t)e * T * m, m, 0, k->tmp, m);
    for (size_t i = 0; i < (size_t)na * m; i++) Sb[i] += k->tmp[i] * k->tmp[i] / r->batch_total;
  }
  return KVI_OK;
}

/* The moving averages of A and G take one batch's statistics Ab, Gb; false (nothing changed)
 * when they are not finite: a non-finite batch never enters the averages. */
static bool kvi__ema_factors(const kvi_optimizer *o, kvi__kfac *k, kvi__kl *L, const kvi_real *Ab,
                             const kvi_real *Gb) {
  const size_t na2 = (size_t)L->na * L->na, m2 = (size_t)L->m * L->m;
  if (!kvi__finite(Ab, na2) || !kvi__finite(Gb, m2)) {
    k->skipped++;
    return false;
  }
  const bool first = L->count[0] == 0;
  kvi__ema(L->A, Ab, na2, o->cfg.ema, first);
  kvi__ema(L->G, Gb, m2, o->cfg.ema, first);
  L->count[0] += 1;
  return true;
}

/* EKFAC's scaling takes the batch's Sb (after its factors entered theirs). */
static void kvi__ema_scaling(const kvi_optimizer *o, kvi__kfac *k, kvi__kl *L, const kvi_real *Sb) {
  if (kvi__finite(Sb, (size_t)L->na * L->m))
    kvi__ema(L->S, Sb, (size_t)L->na * L->m, o->cfg.ema, false);
  else
    k->skipped++;
}

static bool kvi__grouped(const kvi_optimizer *o) { return kvi_comm_size(o->comm) > 1; }

/* The pending statistics of a data-parallel run, zeroed (allocated on first use). */
static kvi_status kvi__pending(kvi__kfac *k) {
  if (k->pend) return KVI_OK;
  size_t n = (size_t)k->nl;
  for (int i = 0; i < k->nl; i++) {
    const kvi__kl *L = &k->l[i];
    n += (size_t)L->na * L->na + (size_t)L->m * L->m + (L->S ? (size_t)L->na * L->m : 0);
  }
  if (!(k->pend = kvi_alloc(n * sizeof(kvi_real))))
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for K-FAC statistics");
  k->npend = n;
  return KVI_OK;
}

/* Layer i's [A, G, S] in the pending buffer. */
static kvi_real *kvi__pending_at(const kvi__kfac *k, int i) {
  kvi_real *p = k->pend;
  for (int j = 0; j < i; j++) {
    const kvi__kl *L = &k->l[j];
    p += (size_t)L->na * L->na + (size_t)L->m * L->m + (L->S ? (size_t)L->na * L->m : 0);
  }
  return p;
}

/* One process: the batch's statistics enter the averages at once. Data-parallel: they are added
 * to the pending ones of this process, which kvi__commit sums over the processes. */
static kvi_status kvi__kfac_observe(void *user, const kvi_capture_rows *r) {
  kvi_optimizer *o = user;
  kvi__kfac *k = kvi__k(o);
  if (r->weight < 0 || r->weight >= k->nl) return KVI_OK;
  kvi__kl *L = &k->l[r->weight];
  const size_t na2 = (size_t)L->na * L->na, m2 = (size_t)L->m * L->m;
  const bool grouped = kvi__grouped(o);
  kvi_status s = grouped ? kvi__pending(k) : KVI_OK;
  if (s) return s;
  kvi_real *Ab = grouped ? kvi__pending_at(k, r->weight) : k->tmp,
           *Gb = grouped ? Ab + na2 : k->tmp2;
  if (!grouped) {
    memset(Ab, 0, na2 * sizeof(kvi_real));
    memset(Gb, 0, m2 * sizeof(kvi_real));
  }
  /* A = (1/B) sum_rows abar abar^T; G = (1/(B T)) sum_rows (B g)(B g)^T = (B^2/rows) sum g g^T,
   * B the whole batch's examples (batch_total), T = rows / batch positions per example */
  const double Bt = r->batch_total;
  kvi_capture_accumulate(Ab, NULL, r, (kvi_real)(1.0 / Bt));
  kvi_capture_accumulate(NULL, Gb, r, (kvi_real)(Bt * r->batch / r->rows));
  if (grouped) {
    if (L->S && L->count[1] > 0) {
      s = kvi__ekfac_batch(k, L, r, L->P); /* L->P is free until the step */
      kvi_real *Sp = Gb + m2;
      for (size_t i = 0; !s && i < (size_t)L->na * L->m; i++) Sp[i] += L->P[i];
    }
    k->pend[k->npend - (size_t)k->nl + (size_t)r->weight] += 1;
    return s;
  }
  if (!kvi__ema_factors(o, k, L, Ab, Gb) || !L->S || L->count[1] == 0) return KVI_OK;
  kvi_real *Sb = L->P; /* free until the step */
  if ((s = kvi__ekfac_batch(k, L, r, Sb)) != KVI_OK) return s;
  kvi__ema_scaling(o, k, L, Sb);
  return KVI_OK;
}

/* Data-parallel: the pending statistics summed over the processes (every process calls this at
 * every step, also one that had no rows) enter the averages as one batch's. */
static kvi_status kvi__commit(const kvi_optimizer *o, kvi__kfac *k) {
  kvi_status s = kvi__pending(k);
  if (!s) s = kvi_comm_sum(o->comm, k->pend, k->npend);
  if (s) return s;
  kvi_real *p = k->pend;
  for (int i = 0; i < k->nl; i++) {
    kvi__kl *L = &k->l[i];
    const size_t na2 = (size_t)L->na * L->na, m2 = (size_t)L->m * L->m;
    const bool S = L->S && L->count[1] > 0; /* as at observe time: no refresh in between */
    if (k->pend[k->npend - (size_t)k->nl + (size_t)i] > 0 &&
        kvi__ema_factors(o, k, L, p, p + na2) && S)
      kvi__ema_scaling(o, k, L, p + na2 + m2);
    p += na2 + m2 + (L->S ? (size_t)L->na * L->m : 0);
  }
  memset(k->pend, 0, k->npend * sizeof(kvi_real));
  return KVI_OK;
}

/* ---- eigenbases --------------------------------------------------------------------------- */
/* Q, d of the symmetric n x n matrix X, computed in double; negative rounding clipped to 0.
 * On failure the previous basis stays. */
static bool kvi__eig(kvi__kfac *k, const kvi_real *X, int n, kvi_real *Q, kvi_real *d) {
  double *a = k->work, *w = k->work + (size_t)n * n;
  for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (double)X[i];
  if (kvi_syev_f64(n, a, n, w) != KVI_OK) return false;
  for (size_t i = 0; i < (size_t)n * n; i++) Q[i] = (kvi_real)a[i];
  for (int i = 0; i < n; i++) d[i] = (kvi_real)(w[i] > 0 ? w[i] : 0);
  return true;
}

/* (X + c I)^-1 of the symmetric n x n matrix X into Xinv, in double; false on failure. */
static bool kvi__damped_inverse(kvi__kfac *k, const kvi_real *X, int n, double c, kvi_real *Xinv) {
  double *a = k->work;
  for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (double)X[i];
  for (int i = 0; i < n; i++) a[(size_t)i * n + i] += c;
  for (size_t i = 0; i < (size_t)n * n; i++)
    if (!isfinite(a[i])) return false;
  if (kvi_spd_inverse_f64(n, a, n) != KVI_OK) return false;
  for (size_t i = 0; i < (size_t)n * n; i++) Xinv[i] = (kvi_real)a[i];
  return true;
}

/* The pi correction from the factors' traces: sqrt((tr A / na) / (tr G / m)), 1 if undefined. */
static double kvi__pi_traces(const kvi__kl *L) {
  double ta = 0, tg = 0;
  for (int i = 0; i < L->na; i++) ta += L->A[(size_t)i * L->na + i];
  for (int j = 0; j < L->m; j++) tg += L->G[(size_t)j * L->m + j];
  double pi = sqrt((ta / L->na) / (tg / L->m));
  return isfinite(pi) && pi > 0 ? pi : 1;
}

/* Factored damping: the damped factors' inverses. A failure (a factor not positive definite
 * after damping, or not finite) raises the damping added for this refresh tenfold, up to three
 * times; then the previous inverses stay. */
static void kvi__refresh_inverse(kvi__kfac *k, kvi__kl *L, double lambda) {
  const double pi = kvi__pi_traces(L);
  for (int attempt = 0; attempt < 4; attempt++, lambda *= 10) {
    const double gam = sqrt(lambda);
    if (kvi__damped_inverse(k, L->A, L->na, pi * gam, L->tmpA) &&
        kvi__damped_inverse(k, L->G, L->m, gam / pi, L->tmpG)) {
      memcpy(L->QA, L->tmpA, (size_t)L->na * L->na * sizeof(kvi_real));
      memcpy(L->QG, L->tmpG, (size_t)L->m * L->m * sizeof(kvi_real));
      L->count[1] = 1;
      return;
    }
    k->skipped++;
  }
}

static void kvi__refresh(const kvi_optimizer *o, kvi__kfac *k, kvi__kl *L, double lambda) {
  if (L->count[0] == 0) return;
  if (!kvi__finite(L->A, (size_t)L->na * L->na) || !kvi__finite(L->G, (size_t)L->m * L->m)) {
    k->skipped++; /* a corrupted average: the next statistics replace it; the old preconditioner
                     (or the gradient, before the first) serves until then */
    L->count[0] = 0;
    return;
  }
  if (!kvi__eigen_mode(o)) {
    kvi__refresh_inverse(k, L, lambda);
    return;
  }
  if (!kvi__eig(k, L->A, L->na, L->QA, L->dA) || !kvi__eig(k, L->G, L->m, L->QG, L->dG)) {
    k->skipped++;
    return;
  }
  if (L->S) /* EKFAC starts in the new basis from K-FAC's own diagonal, dA_i dG_j */
    for (int i = 0; i < L->na; i++)
      for (int j = 0; j < L->m; j++) L->S[(size_t)i * L->m + j] = L->dA[i] * L->dG[j];
  L->count[1] = 1;
}

/* ---- noisy K-FAC: the posterior's covariance ------------------------------------------------
 * Zhang, Sun, Duvenaud & Grosse 2018: with the ELBO's natural gradient the MN posterior's
 * precision follows N F + eta I, F ~ A (x) G, eta the prior precision; split between the factors
 * with the pi correction, Sigma = [N^-1/2 (A + pi g I)^-1] (x) [N^-1/2 (G + g/pi I)^-1],
 * g = sqrt(eta / N). U is the weight block of the first factor (biases are point estimates). */
static double kvi__prior_precision(const kvi_dense *w, const kvi_params *p) {
  if (w->prior == KVI_PRIOR_SCALAR) return exp(-(double)kvi_params_data(p, w->ilogv)[0]);
  return 1.0 / w->prior_var;
}

/* (c X + d I)^-1 / sqrt(N) of the n x n factor X into k->work. */
static bool kvi__scaled_inverse(kvi__kfac *k, const kvi_real *X, int n, double d, double N) {
  double *a = k->work;
  for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (double)X[i];
  for (int i = 0; i < n; i++) a[(size_t)i * n + i] += d;
  if (kvi_spd_inverse_f64(n, a, n) != KVI_OK) return false;
  for (size_t i = 0; i < (size_t)n * n; i++) a[i] /= sqrt(N);
  return true;
}

static void kvi__set_posterior(kvi__kfac *k, const kvi__kl *L, kvi_params *p, double N) {
  const double eta = kvi__prior_precision(L->w, p), g = sqrt(eta / N), pi = kvi__pi_traces(L);
  if (!(N > 0) || !isfinite(g) || L->count[0] == 0) return;
  bool ok = kvi__scaled_inverse(k, L->A, L->na, pi * g, N) &&
            kvi_chol_store_block_f64(kvi_params_data(p, L->w->iA), k->work, L->na, L->n) == KVI_OK;
  ok = ok && kvi__scaled_inverse(k, L->G, L->m, g / pi, N) &&
       kvi_chol_store_block_f64(kvi_params_data(p, L->w->iB), k->work, L->m, L->m) == KVI_OK;
  if (!ok) k->skipped++; /* the previous covariance stays */
}

/* ---- the refresh, spread over the processes ---------------------------------------------- */
/* noisy K-FAC: the prior's precision eta / N joins the damping of the mean's step */
static double kvi__layer_damping(const kvi_optimizer *o, const kvi__kfac *k, const kvi__kl *L,
                                 const kvi_params *p, double lambda) {
  return k->noisy ? lambda + kvi__prior_precision(L->w, p) / o->cfg.data_size : lambda;
}

/* What a refresh of layer L writes: its bases or inverses, EKFAC's scaling, the counts, and
 * noisy K-FAC's posterior factors in the block; rank root sends them to the others. */
static kvi_status kvi__bcast_layer(const kvi_optimizer *o, kvi__kl *L, kvi_params *p, int root,
                                   bool noisy) {
  const size_t na = (size_t)L->na, m = (size_t)L->m, es = sizeof(kvi_real);
  const bool eig = kvi__eigen_mode(o);
  kvi_status s = kvi_comm_bcast(o->comm, L->QA, na * na * es, root);
  if (!s && eig) s = kvi_comm_bcast(o->comm, L->dA, na * es, root);
  if (!s) s = kvi_comm_bcast(o->comm, L->QG, m * m * es, root);
  if (!s && eig) s = kvi_comm_bcast(o->comm, L->dG, m * es, root);
  if (!s && L->S) s = kvi_comm_bcast(o->comm, L->S, na * m * es, root);
  if (!s) s = kvi_comm_bcast(o->comm, L->count, 2 * es, root);
  if (!s && noisy)
    s = kvi_comm_bcast(o->comm, kvi_params_data(p, L->w->iA), p->views[L->w->iA].size * es, root);
  if (!s && noisy)
    s = kvi_comm_bcast(o->comm, kvi_params_data(p, L->w->iB), p->views[L->w->iB].size * es, root);
  return s;
}

/* Every T steps: the bases or inverses (noisy K-FAC: and the posterior) of every layer. In a
 * data-parallel run layer l is refreshed by process l mod P alone and sent to the others (the
 * same numbers: every process holds the same averages). */
static kvi_status kvi__refresh_all(const kvi_optimizer *o, kvi__kfac *k, kvi_params *p,
                                   double lambda) {
  const int P = kvi_comm_size(o->comm), rank = kvi_comm_rank(o->comm);
  const int64_t skipped = k->skipped;
  for (int l = 0; l < k->nl; l++) {
    if (l % P != rank) continue;
    kvi__kl *L = &k->l[l];
    kvi__refresh(o, k, L, kvi__layer_damping(o, k, L, p, lambda));
    if (k->noisy) kvi__set_posterior(k, L, p, o->cfg.data_size);
  }
  if (P == 1) return KVI_OK;
  kvi_status s = KVI_OK;
  for (int l = 0; l < k->nl && !s; l++) s = kvi__bcast_layer(o, &k->l[l], p, l % P, k->noisy);
  double d = (double)(k->skipped - skipped); /* every process counts every skipped refresh */
  if (!s) s = kvi_comm_sum_f64(o->comm, &d, 1);
  if (!s) k->skipped = skipped + (int64_t)d;
  return s;
}

/* ---- the step ----------------------------------------------------------------------------- */
/* The divisor D_ij of the eigenbasis coordinates: S_ij + l (EKFAC) or dA_i dG_j + l (exact). */
static kvi_real kvi__divisor(const kvi__kl *L, int i, int j, double lambda) {
  if (L->S) return (kvi_real)(L->S[(size_t)i * L->m + j] + lambda);
  return (kvi_real)((double)L->dA[i] * L->dG[j] + lambda);
}

/* P = QA [(QA^T V QG) / D] QG^T, or P = V when there is no basis yet or P is not finite. */
static void kvi__precondition(kvi_optimizer *o, kvi__kfac *k, kvi__kl *L, double lambda) {
  const int na = L->na, m = L->m;
  const size_t nm = (size_t)na * m;
  if (L->count[1] == 0) {
    memcpy(L->P, L->V, nm * sizeof(kvi_real));
    return;
  }
  if (!kvi__eigen_mode(o)) { /* P = (A + pi g I)^-1 V (G + g/pi I)^-1 */
    kvi_gemm(false, false, na, m, na, 1, L->QA, na, L->V, m, 0, k->tmp, m);
    kvi_gemm(false, false, na, m, m, 1, k->tmp, m, L->QG, m, 0, L->P, m);
    if (!kvi__finite(L->P, nm)) {
      k->skipped++;
      memcpy(L->P, L->V, nm * sizeof(kvi_real));
    }
    return;
  }
  kvi_gemm(true, false, na, m, na, 1, L->QA, na, L->V, m, 0, k->tmp, m);
  kvi_gemm(false, false, na, m, m, 1, k->tmp, m, L->QG, m, 0, k->tmp2, m);
  for (int i = 0; i < na; i++)
    for (int j = 0; j < m; j++) k->tmp2[(size_t)i * m + j] /= kvi__divisor(L, i, j, lambda);
  kvi_gemm(false, false, na, m, na, 1, L->QA, na, k->tmp2, m, 0, k->tmp, m);
  kvi_gemm(false, true, na, m, m, 1, k->tmp, m, L->QG, m, 0, L->P, m);
  if (!kvi__finite(L->P, nm)) {
    k->skipped++; /* a gradient step for this layer instead */
    memcpy(L->P, L->V, nm * sizeof(kvi_real));
  }
}

/* The K-FAC model's change of the objective by the step delta = -lr m of every layer:
 * <V, delta> + 1/2 <delta, A delta G> + lambda/2 |delta|^2. */
static double kvi__predicted(kvi__kfac *k, const kvi_params *p, const kvi_real *mom, double lr,
                             double lambda) {
  double q = 0;
  for (int l = 0; l < k->nl; l++) {
    kvi__kl *L = &k->l[l];
    const int na = L->na, m = L->m;
    kvi_real *D = k->tmp2; /* delta, na x m */
    memcpy(D, mom + p->views[L->w->iM].offset, (size_t)L->n * m * sizeof(kvi_real));
    if (na > L->n)
      memcpy(D + (size_t)L->n * m, mom + p->views[L->w->ib].offset, (size_t)m * sizeof(kvi_real));
    for (size_t i = 0; i < (size_t)na * m; i++) D[i] *= (kvi_real)-lr;
    kvi_gemm(false, false, na, m, na, 1, L->A, na, D, m, 0, L->P, m);
    kvi_gemm(false, false, na, m, m, 1, L->P, m, L->G, m, 0, k->tmp, m);
    for (size_t i = 0; i < (size_t)na * m; i++)
      q += (double)L->V[i] * D[i] + 0.5 * (double)D[i] * k->tmp[i] + 0.5 * lambda * D[i] * D[i];
  }
  return q;
}

static kvi_status kvi__kfac_step(kvi_optimizer *o, kvi_params *p, double lr) {
  kvi__kfac *k = kvi__k(o);
  if (!k->bound) return kvi_fail(KVI_ERR_STATE, "kfac: no layers bound (kvi_optimizer_bind)");
  if (!(k->damping[0] > 0)) k->damping[0] = (kvi_real)o->cfg.damping; /* after a reset */
  kvi_status s = kvi__grouped(o) ? kvi__commit(o, k) : KVI_OK;
  if (s) return s;
  const double lambda = k->damping[0];
  const int T = o->cfg.inverse_every > 0 ? o->cfg.inverse_every : 1;
  if ((o->t - 1) % T == 0 && (s = kvi__refresh_all(o, k, p, lambda)) != KVI_OK) return s;
  double vp = 0;
  for (int l = 0; l < k->nl; l++) {
    kvi__kl *L = &k->l[l];
    const double lam = kvi__layer_damping(o, k, L, p, lambda);
    kvi__kron_gather(L->V, p, L->w);
    kvi__precondition(o, k, L, lam);
    for (size_t i = 0; i < (size_t)L->na * L->m; i++) vp += (double)L->P[i] * L->V[i];
  }
  const double nu = kvi__kron_clip(&o->cfg, vp, lr); /* KL clipping: lr^2 P.V <= kl_clip */
  kvi_real *mom = o->buffer[0];
  for (int l = 0; l < k->nl; l++) kvi__kron_apply_layer(o, p, mom, k->l[l].w, k->l[l].P, nu, lr);
  kvi__kron_apply_rest(o, p, mom, k->bound, lr); /* the rest: momentum SGD */
  if (o->cfg.adapt_every > 0 && o->t % o->cfg.adapt_every == 0)
    k->q_pred = kvi__predicted(k, p, mom, lr, lambda);
  return KVI_OK;
}

/* ---- the trainer's questions -------------------------------------------------------------- */
static int kvi__kfac_pass(const kvi_optimizer *o) {
  return o->cfg.fisher == KVI_FISHER_EMPIRICAL ? 1 : 2;
}

static bool kvi__kfac_wants(const kvi_optimizer *o) {
  return o->cfg.adapt_every > 0 && o->t > 0 && o->t % o->cfg.adapt_every == 0;
}

/* Levenberg-Marquardt (Martens & Grosse 2015, section 6.5): rho = actual / predicted change;
 * lambda <- omega lambda when rho > 3/4, lambda / omega when rho < 1/4, omega = (19/20)^N. */
static void kvi__kfac_reduction(kvi_optimizer *o, double before, double after) {
  kvi__kfac *k = kvi__k(o);
  if (!(k->q_pred < 0) || !isfinite(after) || !isfinite(before)) {
    k->damping[0] = (kvi_real)fmin(1e4, k->damping[0] * 1.5); /* no progress: more damping */
    return;
  }
  const double rho = (after - before) / k->q_pred, omega = pow(19.0 / 20.0, o->cfg.adapt_every);
  double lambda = k->damping[0];
  if (rho > 0.75) lambda *= omega;
  if (rho < 0.25) lambda /= omega;
  k->damping[0] = (kvi_real)fmin(1e4, fmax(1e-8, lambda));
}

/* K-FAC and noisy K-FAC share every operation; bind tells them apart by the table. */
#define KVI__KFAC_OPS(NAME)                                                               \
  {                                                                                       \
    .name = NAME, .init = kvi__kfac_init, .step = kvi__kfac_step, .bind = kvi__kfac_bind, \
    .curvature_pass = kvi__kfac_pass, .observe = kvi__kfac_observe,                       \
    .wants_reduction = kvi__kfac_wants, .reduction = kvi__kfac_reduction                  \
  }

const kvi_optimizer_ops kvi_kfac_ops = KVI__KFAC_OPS("kfac");
/* bind accepts mn layers, and step sets their covariance */
const kvi_optimizer_ops kvi_noisy_kfac_ops = KVI__KFAC_OPS("noisy-kfac");

int64_t kvi_kfac_skipped(const kvi_optimizer *o) {
  return o && (o->ops == &kvi_kfac_ops || o->ops == &kvi_noisy_kfac_ops) && o->impl
             ? kvi__k(o)->skipped
             : 0;
}
