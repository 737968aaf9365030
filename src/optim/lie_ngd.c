/* Structured natural-gradient descent with a Kronecker product of lower-triangular Lie groups
 * (Lin et al. 2021, the structured adaptive method for neural networks; docs/geom.md section 8)
 * for the weight layers of point networks.
 *
 * Per layer, the gradient V of [W; b] ((n+1) x m) is preconditioned by a precision
 * S = (K K^T) (x) (C C^T), K ((n+1) x (n+1)) and C (m x m) lower triangular:
 *   P = K^-T K^-1 V C^-T C^-1,  m <- mu m + nu P,  x <- (1 - lr wd [mean]) x - lr m,
 * nu the KL clipping of K-FAC (lr^2 P.V <= kl_clip). Every T steps (--inverse-every) the factors
 * take one structured NGD step towards the Gauss-Newton curvature A (x) G of the batch (the
 * K-FAC factors of a second backward with targets sampled from the model), damped with the pi
 * correction, A_d = A + pi sqrt(l) I, G_d = G + sqrt(l)/pi I:
 *   Ah = K^-1 A_d K^-T, Gh = C^-1 G_d C^-T,
 *   M_K = b/m C (.) tril(tr(Gh) Ah - m I),  M_C = b/(n+1) C (.) tril(tr(Ah) Gh - (n+1) I)
 * (C: 1/2 on the diagonal, 1 below), the shared scale direction split between the two
 * (G26), |M|_F <= 1, then K <- K h(M_K), C <- C h(M_C), h(M) = I + M + M^2/2: K and C stay
 * triangular with positive diagonals; (K K^T)^-1 and (C C^T)^-1 are then formed once (a
 * triangular solve and a syrk each), so a step costs two products, as K-FAC's. b = 1 - ema
 * (--kfac-ema). The first update sets K and C to the Cholesky factors of A_d and G_d. The fixed
 * point is K K^T (x) C C^T = A_d (x) G_d. Views that are not the M or b of a weight layer take
 * momentum SGD. State: "optim.m.<view>", per layer "lie.K.<layer>", "lie.C.<layer>",
 * "lie.count.<layer>". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/geom.h"
#include "kronvi/dist.h"
#include "kronvi/optim.h"
#include "optim/kron_step.h"

typedef struct {
  const kvi_dense *w;
  int n, na, m;
  kvi_real *K, *C, *count; /* state; count[0]: factor updates */
  kvi_real *A, *G;         /* scratch: this step's statistics */
  bool fresh;              /* statistics captured this step */
  kvi_real *V, *P;         /* scratch, na x m */
  kvi_real *Ki, *Ci;       /* (K K^T)^-1 and (C C^T)^-1, derived from K, C after each update */
  bool inv;                /* Ki, Ci are those of the current K, C */
} kvi__ll;

typedef struct {
  int nl;
  kvi__ll *l;
  unsigned char *bound;
  kvi_real *T1, *T2, *T3, *T4; /* scratch, max(na, m)^2 */
  int64_t skipped;
} kvi__lie;

static kvi__lie *kvi__k(const kvi_optimizer *o) { return o->impl; }

static void kvi__lie_free(void *impl) {
  kvi__lie *k = impl;
  if (!k) return;
  for (int i = 0; i < k->nl; i++) {
    kvi_free(k->l[i].A), kvi_free(k->l[i].G), kvi_free(k->l[i].V), kvi_free(k->l[i].P);
    kvi_free(k->l[i].Ki), kvi_free(k->l[i].Ci);
  }
  free(k->l), free(k->bound);
  kvi_free(k->T1), kvi_free(k->T2), kvi_free(k->T3), kvi_free(k->T4);
  free(k);
}

static kvi_status kvi__lie_init(kvi_optimizer *o, const kvi_params *p) {
  kvi_real *b;
  kvi__lie *k = calloc(1, sizeof *k);
  if (!k) return kvi_fail(KVI_ERR_NOMEM, "out of memory for lie-ngd");
  o->impl = k;
  o->impl_free = kvi__lie_free;
  return kvi_optimizer_add_buffer(o, p, "optim.m", &b);
}

static kvi_status kvi__state(kvi_optimizer *o, const char *what, const char *layer, int64_t r,
                             int64_t c, kvi_real **out) {
  char name[96];
  snprintf(name, sizeof name, "lie.%s.%s", what, layer);
  int64_t shape[2] = {r, c};
  return kvi_optimizer_add_state(o, name, c > 0 ? 2 : 1, shape, out);
}

static kvi_status kvi__bind_layer(kvi_optimizer *o, kvi__ll *L, const kvi_dense *w) {
  if (w->family != KVI_FAMILY_POINT)
    return kvi_fail(KVI_ERR_UNSUPPORTED,
                    "lie-ngd: layer '%s' is %s; lie-ngd trains point networks (--family point)",
                    w->name, kvi_family_name(w->family));
  L->w = w;
  L->n = w->n, L->na = w->n + (w->bias ? 1 : 0), L->m = w->m;
  const int64_t na = L->na, m = L->m;
  kvi_status s = kvi__state(o, "K", w->name, na, na, &L->K);
  if (!s) s = kvi__state(o, "C", w->name, m, m, &L->C);
  if (!s) s = kvi__state(o, "count", w->name, 2, 0, &L->count);
  if (s) return s;
  L->A = kvi_alloc((size_t)na * na * sizeof(kvi_real));
  L->G = kvi_alloc((size_t)m * m * sizeof(kvi_real));
  L->V = kvi_alloc((size_t)na * m * sizeof(kvi_real));
  L->P = kvi_alloc((size_t)na * m * sizeof(kvi_real));
  L->Ki = kvi_alloc((size_t)na * na * sizeof(kvi_real));
  L->Ci = kvi_alloc((size_t)m * m * sizeof(kvi_real));
  return L->A && L->G && L->V && L->P && L->Ki && L->Ci
             ? KVI_OK
             : kvi_fail(KVI_ERR_NOMEM, "out of memory for lie-ngd");
}

static kvi_status kvi__lie_bind(kvi_optimizer *o, const kvi_params *p, kvi_dense *const *w,
                                int nw) {
  kvi__lie *k = kvi__k(o);
  if (k->l) return kvi_fail(KVI_ERR_STATE, "lie-ngd: layers bound already");
  k->l = calloc((size_t)(nw > 0 ? nw : 1), sizeof *k->l);
  k->bound = calloc((size_t)(p->nviews > 0 ? p->nviews : 1), 1);
  if (!k->l || !k->bound) return kvi_fail(KVI_ERR_NOMEM, "out of memory for lie-ngd");
  size_t sq = 1;
  for (int i = 0; i < nw; i++) {
    kvi_status s = kvi__bind_layer(o, &k->l[i], w[i]);
    k->nl = i + 1;
    if (s) return s;
    const size_t big = (size_t)(k->l[i].na > k->l[i].m ? k->l[i].na : k->l[i].m);
    sq = big * big > sq ? big * big : sq;
    k->bound[w[i]->iM] = 1;
    if (w[i]->ib >= 0) k->bound[w[i]->ib] = 1;
  }
  k->T1 = kvi_alloc(sq * sizeof(kvi_real));
  k->T2 = kvi_alloc(sq * sizeof(kvi_real));
  k->T3 = kvi_alloc(sq * sizeof(kvi_real));
  k->T4 = kvi_alloc(sq * sizeof(kvi_real));
  return k->T1 && k->T2 && k->T3 && k->T4 ? KVI_OK
                                          : kvi_fail(KVI_ERR_NOMEM, "out of memory for lie-ngd");
}

/* ---- statistics -------------------------------------------------------------------------- */
static bool kvi__finite(const kvi_real *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return false;
  return true;
}

/* The factor-update steps: the first, then every T. */
static bool kvi__update_step(const kvi_optimizer *o, int64_t t) {
  const int T = o->cfg.inverse_every > 0 ? o->cfg.inverse_every : 1;
  return (t - 1) % T == 0;
}

static int kvi__lie_pass(const kvi_optimizer *o) {
  return kvi__update_step(o, o->t + 1) ? 2 : 0; /* asked before the step counts itself */
}

static kvi_status kvi__lie_observe(void *user, const kvi_capture_rows *r) {
  kvi_optimizer *o = user;
  kvi__lie *k = kvi__k(o);
  if (r->weight < 0 || r->weight >= k->nl) return KVI_OK;
  kvi__ll *L = &k->l[r->weight];
  memset(L->A, 0, (size_t)L->na * L->na * sizeof(kvi_real));
  memset(L->G, 0, (size_t)L->m * L->m * sizeof(kvi_real));
  /* as K-FAC: A = (1/B) sum_rows abar abar^T, G = (B^2/rows) sum g g^T */
  kvi_capture_accumulate(L->A, NULL, r, (kvi_real)(1.0 / r->batch));
  kvi_capture_accumulate(NULL, L->G, r, (kvi_real)((double)r->batch * r->batch / r->rows));
  L->fresh = kvi__finite(L->A, (size_t)L->na * L->na) && kvi__finite(L->G, (size_t)L->m * L->m);
  if (!L->fresh) k->skipped++;
  return KVI_OK;
}

/* ---- the factor step ---------------------------------------------------------------------- */
static double kvi__trace(const kvi_real *X, int n) {
  double t = 0;
  for (int i = 0; i < n; i++) t += X[(size_t)i * n + i];
  return t;
}

/* out = X + d I (n x n). */
static void kvi__damped(kvi_real *out, const kvi_real *X, int n, double d) {
  memcpy(out, X, (size_t)n * n * sizeof *out);
  for (int i = 0; i < n; i++) out[(size_t)i * n + i] += (kvi_real)d;
}

/* K = chol(X) of the damped factor in X's place; false if not positive definite. */
static bool kvi__chol_init(kvi_real *K, kvi_real *X, int n) {
  if (kvi_potrf(n, X, n) != KVI_OK) return false;
  memcpy(K, X, (size_t)n * n * sizeof *K);
  return true;
}

/* Xh = K^-1 X K^-T in place of X. */
static void kvi__whiten(kvi_real *X, const kvi_real *K, int n) {
  kvi_trsm(false, false, false, n, n, 1, K, n, X, n);
  kvi_trsm(true, true, false, n, n, 1, K, n, X, n);
}

/* M = c C (.) tril(t Xh - d I) in place of Xh (lower triangular). */
static void kvi__local(kvi_real *X, int n, double c, double t, double d) {
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < i; j++) X[(size_t)i * n + j] = (kvi_real)(c * t * X[(size_t)i * n + j]);
    X[(size_t)i * n + i] = (kvi_real)(0.5 * c * (t * X[(size_t)i * n + i] - d));
    for (int j = i + 1; j < n; j++) X[(size_t)i * n + j] = 0;
  }
}

static void kvi__shift_diag(kvi_real *X, int n, double s) {
  for (int i = 0; i < n; i++) X[(size_t)i * n + i] += (kvi_real)s;
}

static void kvi__factor_step(const kvi_optimizer *o, kvi__lie *k, kvi__ll *L, double lambda) {
  const int na = L->na, m = L->m;
  double ta = kvi__trace(L->A, na) / na, tg = kvi__trace(L->G, m) / m;
  double pi = sqrt(ta / tg);
  if (!isfinite(pi) || !(pi > 0)) pi = 1;
  const double g = sqrt(lambda);
  kvi_real *Ad = k->T1, *Gd = k->T2;
  kvi__damped(Ad, L->A, na, pi * g);
  kvi__damped(Gd, L->G, m, g / pi);
  if (L->count[0] == 0) { /* start at the damped curvature */
    if (kvi__chol_init(L->K, Ad, na) && kvi__chol_init(L->C, Gd, m))
      L->count[0] = 1;
    else
      k->skipped++;
    return;
  }
  kvi__whiten(Ad, L->K, na);
  kvi__whiten(Gd, L->C, m);
  const double tA = kvi__trace(Ad, na), tG = kvi__trace(Gd, m), b = 1 - o->cfg.ema;
  kvi__local(Ad, na, b / m, tG, m);  /* M_K */
  kvi__local(Gd, m, b / na, tA, na); /* M_C */
  const double t1 = kvi__trace(Ad, na) / na, t2 = kvi__trace(Gd, m) / m;
  kvi__shift_diag(Ad, na, 0.25 * (t1 + t2) - t1);
  kvi__shift_diag(Gd, m, 0.25 * (t1 + t2) - t2);
  double nrm = 0;
  for (size_t i = 0; i < (size_t)na * na; i++) nrm += (double)Ad[i] * Ad[i];
  for (size_t i = 0; i < (size_t)m * m; i++) nrm += (double)Gd[i] * Gd[i];
  if (!isfinite(nrm)) {
    k->skipped++;
    return;
  }
  if (nrm > 1) { /* |M|_F <= 1 */
    for (size_t i = 0; i < (size_t)na * na; i++) Ad[i] = (kvi_real)(Ad[i] / sqrt(nrm));
    for (size_t i = 0; i < (size_t)m * m; i++) Gd[i] = (kvi_real)(Gd[i] / sqrt(nrm));
  }
  memcpy(k->T4, L->C, (size_t)m * m * sizeof(kvi_real)); /* C as it was, for a rejection */
  if (kvi_lie_tril_step(na, L->K, Ad, k->T3) == KVI_OK) {
    if (kvi_lie_tril_step(m, L->C, Gd, k->T3) == KVI_OK) {
      L->count[0] += 1;
      return;
    }
  }
  k->skipped++; /* K unchanged on its own failure; C restored (in case K's step went through) */
  memcpy(L->C, k->T4, (size_t)m * m * sizeof(kvi_real));
}

/* ---- the step ----------------------------------------------------------------------------- */
/* Xi = (X X^T)^-1 = X^-T X^-1 of the lower-triangular X (n x n): X^-1 by a triangular solve of
 * the identity, then one syrk; false if not finite. w: n^2. */
static bool kvi__gram_inverse(kvi_real *Xi, const kvi_real *X, int n, kvi_real *w) {
  memset(w, 0, (size_t)n * n * sizeof *w);
  for (int i = 0; i < n; i++) w[(size_t)i * n + i] = 1;
  kvi_trsm(false, false, false, n, n, 1, X, n, w, n); /* X^-1 */
  kvi_syrk(true, n, n, 1, w, n, 0, Xi, n);            /* lower of X^-T X^-1 */
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++) Xi[(size_t)j * n + i] = Xi[(size_t)i * n + j];
  return kvi__finite(Xi, (size_t)n * n);
}

/* P = (K K^T)^-1 V (C C^T)^-1 by two products with the inverses formed after each factor
 * update (or V before the first update). */
static void kvi__precondition(kvi__lie *k, kvi__ll *L) {
  const int na = L->na, m = L->m;
  memcpy(L->P, L->V, (size_t)na * m * sizeof(kvi_real));
  if (L->count[0] == 0) return;
  if (!L->inv) {
    L->inv = kvi__gram_inverse(L->Ki, L->K, na, k->T1) && kvi__gram_inverse(L->Ci, L->C, m, k->T1);
    if (!L->inv) {
      k->skipped++;
      return;
    }
  }
  kvi_gemm(false, false, na, m, na, 1, L->Ki, na, L->V, m, 0, k->T2, m);
  kvi_gemm(false, false, na, m, m, 1, k->T2, m, L->Ci, m, 0, L->P, m);
  if (!kvi__finite(L->P, (size_t)na * m)) {
    k->skipped++;
    memcpy(L->P, L->V, (size_t)na * m * sizeof(kvi_real));
  }
}

static kvi_status kvi__lie_step(kvi_optimizer *o, kvi_params *p, double lr) {
  if (kvi_comm_size(o->comm) > 1) /* its factor statistics are this process's rows only */
    return kvi_fail(KVI_ERR_UNSUPPORTED,
                    "lie-ngd runs in one process; data-parallel training supports adam, sgd, "
                    "riemann-*, kfac and noisy-kfac");
  kvi__lie *k = kvi__k(o);
  if (!k->bound) return kvi_fail(KVI_ERR_STATE, "lie-ngd: no layers bound (kvi_optimizer_bind)");
  double vp = 0;
  for (int l = 0; l < k->nl; l++) {
    kvi__ll *L = &k->l[l];
    if (L->fresh) kvi__factor_step(o, k, L, o->cfg.damping), L->inv = false;
    L->fresh = false;
    kvi__kron_gather(L->V, p, L->w);
    kvi__precondition(k, L);
    for (size_t i = 0; i < (size_t)L->na * L->m; i++) vp += (double)L->P[i] * L->V[i];
  }
  const double nu = kvi__kron_clip(&o->cfg, vp, lr);
  kvi_real *mom = o->buffer[0];
  for (int l = 0; l < k->nl; l++) kvi__kron_apply_layer(o, p, mom, k->l[l].w, k->l[l].P, nu, lr);
  kvi__kron_apply_rest(o, p, mom, k->bound, lr);
  return KVI_OK;
}

const kvi_optimizer_ops kvi_lie_ngd_ops = {.name = "lie-ngd",
                                           .init = kvi__lie_init,
                                           .step = kvi__lie_step,
                                           .bind = kvi__lie_bind,
                                           .curvature_pass = kvi__lie_pass,
                                           .observe = kvi__lie_observe};

int64_t kvi_lie_ngd_skipped(const kvi_optimizer *o) {
  return o && o->ops == &kvi_lie_ngd_ops && o->impl ? kvi__k(o)->skipped : 0;
}
