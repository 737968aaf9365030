/* Matrix Normal MN(M, A A^T, B B^T) over an (n, m) weight matrix: sampling, density, entropy,
 * marginal variances, KL to Gaussian / ARD / group-ARD priors and the exact group-ARD update
 * (docs/prob.md §2 and §3). */
#include <string.h>

#include "prob/mn_ard.h"
#include "prob/prob_internal.h"

/* Scratch memory from the caller's arena, or from the heap when no arena is given. */
typedef struct {
  kvi_arena *arena;
  kvi_arena_mark mark;
  void *heap;
} kvi__scratch;

static void *kvi__scratch_get(kvi__scratch *s, kvi_arena *arena, size_t bytes) {
  s->arena = arena;
  s->heap = NULL;
  if (arena) {
    s->mark = kvi_arena_get_mark(arena);
    return kvi_arena_alloc(arena, bytes);
  }
  return s->heap = kvi_alloc(bytes);
}

static void kvi__scratch_put(kvi__scratch *s) {
  if (s->arena) kvi_arena_reset(s->arena, s->mark);
  kvi_free(s->heap);
}

kvi_status kvi_mn_check(const kvi_mn *q) {
  kvi_status s = kvi__check_mn_args(q, "kvi_mn_check");
  if (s) return s;
  return kvi__check_mn_finite(q, "kvi_mn_check");
}

kvi_status kvi_mn_sample(kvi_real *W, const kvi_mn *q, const kvi_real *E, kvi_arena *scratch) {
  const char *fn = "kvi_mn_sample";
  kvi_status s = kvi__check_mn_args(q, fn);
  if (s) return s;
  if (!W || !E) return kvi_fail(KVI_ERR_ARG, "%s: W or E is NULL", fn);
  const int n = q->n, m = q->m;
  size_t nm = (size_t)n * m;
  kvi__scratch sc;
  kvi_real *L =
      kvi__scratch_get(&sc, scratch, kvi__ws_bytes((size_t)n * n) + kvi__ws_bytes((size_t)m * m));
  if (!L) return KVI_ERR_NOMEM;
  char *cur = (char *)L;
  kvi_real *A = kvi__ws_take(&cur, (size_t)n * n), *B = kvi__ws_take(&cur, (size_t)m * m);
  kvi_chol_materialize(A, q->A, n);
  kvi_chol_materialize(B, q->B, m);
  /* W = M + A E B^T */
  if (W != E) memcpy(W, E, nm * sizeof *W);
  kvi_trmm(false, false, false, n, m, 1, A, n, W, m);
  kvi_trmm(true, true, false, n, m, 1, B, m, W, m);
  for (size_t k = 0; k < nm; k++) W[k] += q->M[k];
  kvi__scratch_put(&sc);
  return KVI_OK;
}

kvi_status kvi_mn_log_prob(double *out, const kvi_mn *q, const kvi_real *W, kvi_arena *scratch) {
  const char *fn = "kvi_mn_log_prob";
  kvi_status s = kvi__check_mn_args(q, fn);
  if (s) return s;
  if (!out || !W) return kvi_fail(KVI_ERR_ARG, "%s: out or W is NULL", fn);
  if ((s = kvi__check_mn_finite(q, fn))) return s;
  const int n = q->n, m = q->m;
  size_t nm = (size_t)n * m;
  kvi__scratch sc;
  char *cur = kvi__scratch_get(
      &sc, scratch,
      kvi__ws_bytes((size_t)n * n) + kvi__ws_bytes((size_t)m * m) + kvi__ws_bytes(nm));
  if (!cur) return KVI_ERR_NOMEM;
  kvi_real *A = kvi__ws_take(&cur, (size_t)n * n), *B = kvi__ws_take(&cur, (size_t)m * m);
  kvi_real *C = kvi__ws_take(&cur, nm);
  kvi_chol_materialize(A, q->A, n);
  kvi_chol_materialize(B, q->B, m);
  /* C = A^{-1} (W - M) B^{-T}: log p = -1/2 ||C||^2 - nm/2 log 2pi - m log|A| - n log|B| */
  for (size_t k = 0; k < nm; k++) C[k] = W[k] - q->M[k];
  kvi_trsm(false, false, false, n, m, 1, A, n, C, m);
  kvi_trsm(true, true, false, n, m, 1, B, m, C, m);
  double ss = 0;
  for (size_t k = 0; k < nm; k++) ss += (double)C[k] * (double)C[k];
  kvi__scratch_put(&sc);
  *out = -0.5 * ss - 0.5 * (double)nm * KVI__LOG_2PI - (double)m * kvi__chol_logdet(q->A, n) -
         (double)n * kvi__chol_logdet(q->B, m);
  return KVI_OK;
}

kvi_status kvi_mn_entropy(double *out, const kvi_mn *q, kvi_mn_grad *g, kvi_real gscale) {
  const char *fn = "kvi_mn_entropy";
  kvi_status s = kvi__check_mn_args(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: out is NULL", fn);
  if ((s = kvi__check_mn_finite(q, fn))) return s;
  const int n = q->n, m = q->m;
  *out = 0.5 * (double)n * m * (1.0 + KVI__LOG_2PI) + (double)m * kvi__chol_logdet(q->A, n) +
         (double)n * kvi__chol_logdet(q->B, m);
  if (g && g->A) kvi__chol_add_diag(g->A, n, (double)gscale * m);
  if (g && g->B) kvi__chol_add_diag(g->B, m, (double)gscale * n);
  return KVI_OK;
}

kvi_status kvi_mn_marginal_var(kvi_real *var, const kvi_mn *q) {
  const char *fn = "kvi_mn_marginal_var";
  kvi_status s = kvi__check_mn_args(q, fn);
  if (s) return s;
  if (!var) return kvi_fail(KVI_ERR_ARG, "%s: var is NULL", fn);
  const int n = q->n, m = q->m;
  double *u = kvi_alloc(((size_t)n + m) * sizeof *u);
  if (!u) return KVI_ERR_NOMEM;
  double *v = u + n;
  kvi__chol_rownorm2_d(u, q->A, n);
  kvi__chol_rownorm2_d(v, q->B, m);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) var[(size_t)i * m + j] = (kvi_real)(u[i] * v[j]);
  kvi_free(u);
  return KVI_OK;
}

kvi_status kvi_mn_log_alpha(kvi_real *out, const kvi_mn *q) {
  const char *fn = "kvi_mn_log_alpha";
  kvi_status s = kvi__check_mn_args(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: out is NULL", fn);
  const int n = q->n, m = q->m;
  double *u = kvi_alloc(((size_t)n + m) * sizeof *u);
  if (!u) return KVI_ERR_NOMEM;
  double *v = u + n;
  kvi__chol_rownorm2_d(u, q->A, n);
  kvi__chol_rownorm2_d(v, q->B, m);
  /* log(U_ii V_jj / M_ij^2), M^2 floored at 1e-30 (a zero mean gives a large finite value) */
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) {
      double mu = q->M[(size_t)i * m + j];
      out[(size_t)i * m + j] = (kvi_real)(log(u[i] * v[j]) - log(fmax(mu * mu, 1e-30)));
    }
  kvi_free(u);
  return KVI_OK;
}

kvi_status kvi__uv_alloc(kvi__uv *w, const kvi_mn *q) {
  const int n = q->n, m = q->m;
  size_t nb = ((size_t)n + KVI__ARD_ROWS - 1) / KVI__ARD_ROWS;
  size_t nd = 2 * ((size_t)n + m), nr = 2 * (size_t)n + (size_t)m + 2 * nb * (size_t)m;
  double *p = kvi_alloc(nd * sizeof *p + nr * sizeof(kvi_real));
  if (!p) return KVI_ERR_NOMEM;
  w->u = p;
  w->v = p + n;
  w->gu = p + n + m;
  w->gv = p + 2 * n + m;
  w->ur = (kvi_real *)(void *)(p + nd);
  w->vr = w->ur + n;
  w->rs = w->vr + m;
  w->blk = w->rs + n;
  return KVI_OK;
}

void kvi__uv_round(kvi__uv *w, const kvi_mn *q) {
  for (int i = 0; i < q->n; i++) w->ur[i] = (kvi_real)w->u[i];
  for (int j = 0; j < q->m; j++) w->vr[j] = (kvi_real)w->v[j];
}

kvi_status kvi__uv_init(kvi__uv *w, const kvi_mn *q) {
  kvi_status s = kvi__uv_alloc(w, q);
  if (s) return s;
  kvi__chol_rownorm2_d(w->u, q->A, q->n);
  kvi__chol_rownorm2_d(w->v, q->B, q->m);
  kvi__uv_round(w, q);
  return KVI_OK;
}

void kvi__uv_finish(kvi__uv *w, const kvi_mn *q, kvi_mn_grad *g, double gs, double diag_a,
                    double diag_b) {
  const int n = q->n, m = q->m;
  if (g && g->A) {
    for (int i = 0; i < n; i++) w->gu[i] *= gs;
    kvi__chol_rownorm2_backward(g->A, q->A, n, w->gu);
    kvi__chol_add_diag(g->A, n, gs * diag_a);
  }
  if (g && g->B) {
    for (int j = 0; j < m; j++) w->gv[j] *= gs;
    kvi__chol_rownorm2_backward(g->B, q->B, m, w->gv);
    kvi__chol_add_diag(g->B, m, gs * diag_b);
  }
  kvi_free(w->u);
}

kvi_status kvi__check_prior_var(const kvi_real *pv, size_t cnt, const char *fn) {
  for (size_t k = 0; k < cnt; k++)
    if (!(pv[k] > 0) || !isfinite(pv[k]))
      return kvi_fail(KVI_ERR_ARG, "%s: prior variance [%zu] = %g must be positive and finite", fn,
                      k, (double)pv[k]);
  return KVI_OK;
}

double kvi__mn_kl_gauss_core(const kvi_mn *q, const kvi_real *log_d, const kvi_real *pv,
                             bool scalar, kvi__uv *w, kvi_real *gM, kvi_real *glog_d, double gs) {
  const int n = q->n, m = q->m;
  double acc = 0;
  memset(w->gv, 0, (size_t)m * sizeof *w->gv);
  for (int i = 0; i < n; i++) {
    double ui = w->u[i], gui = 0;
    for (int j = 0; j < m; j++) {
      size_t k = (size_t)i * m + j;
      double p = pv[scalar ? 0 : k], ip = 1.0 / p, mu = q->M[k];
      double d = log_d ? exp((double)log_d[k]) : 0.0;
      acc += (ui * w->v[j] + d + mu * mu) * ip + (scalar ? 0.0 : log(p));
      gui += w->v[j] * ip;
      w->gv[j] += ui * ip;
      if (gM) gM[k] += (kvi_real)(gs * mu * ip);
      if (glog_d) glog_d[k] += (kvi_real)(gs * 0.5 * d * ip);
    }
    w->gu[i] = 0.5 * gui;
  }
  for (int j = 0; j < m; j++) w->gv[j] *= 0.5;
  if (scalar) acc += (double)n * m * log((double)pv[0]);
  return acc;
}

kvi_status kvi_mn_kl_gauss(double *out, const kvi_mn *q, const kvi_real *prior_var,
                           bool prior_var_scalar, kvi_mn_grad *g, kvi_real gscale) {
  const char *fn = "kvi_mn_kl_gauss";
  kvi_status s = kvi__check_mn_args(q, fn);
  if (s) return s;
  if (!out || !prior_var) return kvi_fail(KVI_ERR_ARG, "%s: out or prior_var is NULL", fn);
  const int n = q->n, m = q->m;
  if ((s = kvi__check_prior_var(prior_var, prior_var_scalar ? 1 : (size_t)n * m, fn))) return s;
  if ((s = kvi__check_mn_finite(q, fn))) return s;
  kvi__uv w;
  if ((s = kvi__uv_init(&w, q))) return s;
  double gs = gscale;
  double acc =
      kvi__mn_kl_gauss_core(q, NULL, prior_var, prior_var_scalar, &w, g ? g->M : NULL, NULL, gs);
  /* KL = 1/2 [acc - nm - m log|U| - n log|V|], log|U| = 2 sum a_i */
  *out = 0.5 * (acc - (double)n * m) - (double)m * kvi__chol_logdet(q->A, n) -
         (double)n * kvi__chol_logdet(q->B, m);
  kvi__uv_finish(&w, q, g, gs, -(double)m, -(double)n);
  return KVI_OK;
}

/* The ARD loops run in kvi_real with vectorizable log / exp and per-row partial sums (double
 * across rows); the gradient pass sums columns per block of KVI__ARD_ROWS rows in kvi_real
 * (w->blk) and adds the blocks into double. */
KVI__HOT double kvi__mn_ard_logsum(const kvi_mn *q, const kvi_real *log_d, const kvi__uv *w,
                                   double *sum_log_d) {
  const int n = q->n, m = q->m;
  const kvi_real *vr = w->vr;
  double acc = 0, sld = 0;
  for (int i = 0; i < n; i++) {
    const kvi_real *Mi = q->M + (size_t)i * m, ui = w->ur[i];
    kvi_real row = 0;
    if (log_d) {
      const kvi_real *Di = log_d + (size_t)i * m;
      kvi_real rl = 0;
#pragma omp simd reduction(+ : row, rl)
      for (int j = 0; j < m; j++) {
        kvi_real mu = Mi[j];
        row += KVI__VLOG(mu * mu + ui * vr[j] + KVI__VEXP(Di[j]));
        rl += Di[j];
      }
      sld += rl;
    } else {
#pragma omp simd reduction(+ : row)
      for (int j = 0; j < m; j++) {
        kvi_real mu = Mi[j];
        row += KVI__VLOG(mu * mu + ui * vr[j]);
      }
    }
    acc += row;
  }
  if (sum_log_d) *sum_log_d = sld;
  return acc;
}

/* Rows [i0, i1) of the gradient pass: per-row sums of log S into rs, gu, and the column sums
 * into cs (one kvi_real row per block of KVI__ARD_ROWS rows); dummy takes the unused gradient
 * writes when gM or glog_d is NULL. */
KVI__HOT static void kvi__mn_ard_grad_rows(const kvi_mn *q, const kvi_real *log_d, kvi__uv *w,
                                           kvi_real *gM, kvi_real *glog_d, double gs, bool logsum,
                                           int i0, int i1, kvi_real *cs, kvi_real *dummy) {
  const int m = q->m;
  const kvi_real *vr = w->vr, gsr = (kvi_real)gs, gsh = (kvi_real)(0.5 * gs);
  memset(cs, 0, (size_t)m * sizeof *cs);
  for (int i = i0; i < i1; i++) {
    const kvi_real *Mi = q->M + (size_t)i * m, ui = w->ur[i];
    kvi_real *gMi = gM ? gM + (size_t)i * m : dummy, gui = 0, row = 0;
    if (log_d) {
      const kvi_real *Di = log_d + (size_t)i * m;
      kvi_real *gDi = glog_d ? glog_d + (size_t)i * m : dummy;
      if (logsum) {
#pragma omp simd reduction(+ : gui, row)
        for (int j = 0; j < m; j++) {
          kvi_real mu = Mi[j], d = KVI__VEXP(Di[j]), S = mu * mu + ui * vr[j] + d, iS = 1 / S;
          row += KVI__VLOG(S);
          gui += vr[j] * iS;
          cs[j] += ui * iS;
          gMi[j] += gsr * mu * iS;
          gDi[j] += gsh * d * iS;
        }
      } else {
#pragma omp simd reduction(+ : gui)
        for (int j = 0; j < m; j++) {
          kvi_real mu = Mi[j], d = KVI__VEXP(Di[j]), iS = 1 / (mu * mu + ui * vr[j] + d);
          gui += vr[j] * iS;
          cs[j] += ui * iS;
          gMi[j] += gsr * mu * iS;
          gDi[j] += gsh * d * iS;
        }
      }
    } else if (logsum) {
#pragma omp simd reduction(+ : gui, row)
      for (int j = 0; j < m; j++) {
        kvi_real mu = Mi[j], S = mu * mu + ui * vr[j], iS = 1 / S;
        row += KVI__VLOG(S);
        gui += vr[j] * iS;
        cs[j] += ui * iS;
        gMi[j] += gsr * mu * iS;
      }
    } else {
#pragma omp simd reduction(+ : gui)
      for (int j = 0; j < m; j++) {
        kvi_real mu = Mi[j], iS = 1 / (mu * mu + ui * vr[j]);
        gui += vr[j] * iS;
        cs[j] += ui * iS;
        gMi[j] += gsr * mu * iS;
      }
    }
    w->rs[i] = row;
    w->gu[i] = 0.5 * (double)gui;
  }
}

/* The blocks' column sums into gv, and the row sums of log S into *logsum if not NULL, in
 * order. */
static void kvi__mn_ard_reduce(const kvi_mn *q, kvi__uv *w, double *logsum) {
  const int n = q->n, m = q->m, nb = (n + KVI__ARD_ROWS - 1) / KVI__ARD_ROWS;
  memset(w->gv, 0, (size_t)m * sizeof *w->gv);
  for (int b = 0; b < nb; b++) {
    const kvi_real *cs = w->blk + (size_t)2 * b * m;
    for (int j = 0; j < m; j++) w->gv[j] += cs[j];
  }
  for (int j = 0; j < m; j++) w->gv[j] *= 0.5;
  if (logsum) {
    double acc = 0;
    for (int i = 0; i < n; i++) acc += w->rs[i];
    *logsum = acc;
  }
}

/* Row blocks run in parallel; their column sums and the row sums are then added in order, so
 * the result does not depend on the thread count. */
void kvi__mn_ard_grad(const kvi_mn *q, const kvi_real *log_d, kvi__uv *w, kvi_real *gM,
                      kvi_real *glog_d, double gs, double *logsum) {
  const int n = q->n, m = q->m, nb = (n + KVI__ARD_ROWS - 1) / KVI__ARD_ROWS;
#pragma omp parallel for schedule(static) if ((size_t)n * m >= KVI__KL_OMP_MIN)
  for (int b = 0; b < nb; b++) {
    int i0 = b * KVI__ARD_ROWS, i1 = i0 + KVI__ARD_ROWS < n ? i0 + KVI__ARD_ROWS : n;
    kvi_real *cs = w->blk + (size_t)2 * b * m;
    kvi__mn_ard_grad_rows(q, log_d, w, gM, glog_d, gs, logsum != NULL, i0, i1, cs, cs + m);
  }
  kvi__mn_ard_reduce(q, w, logsum);
}

/* kvi__mn_ard_safe but for the range of M. */
static bool kvi__mn_ard_safe_factors(const kvi_mn *q, const kvi__uv *w) {
  const int n = q->n, m = q->m;
  if (!isfinite(kvi__chol_logdet(q->A, n) + kvi__chol_logdet(q->B, m))) return false;
  /* u_i v_j within [1e-36, 1e36]: a normal float product */
  for (int i = 0; i < n; i++)
    if (!(w->u[i] >= 1e-18 && w->u[i] <= 1e18)) return false;
  for (int j = 0; j < m; j++)
    if (!(w->v[j] >= 1e-18 && w->v[j] <= 1e18)) return false;
  return true;
}

#define KVI__M_LIMIT ((kvi_real)1e15) /* |M| below it: M^2 + u v stays a finite float */

bool kvi__mn_ard_safe(const kvi_mn *q, const kvi__uv *w) {
  return kvi__mn_ard_safe_factors(q, w) &&
         kvi__all_within_par(q->M, (size_t)q->n * q->m, -KVI__M_LIMIT, KVI__M_LIMIT);
}

KVI__HOT double kvi__sum(const kvi_real *x, size_t cnt) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (size_t k = 0; k < cnt; k++) s += (double)x[k];
  return s;
}

KVI__HOT bool kvi__all_within(const kvi_real *x, size_t cnt, kvi_real lo, kvi_real hi) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (size_t k = 0; k < cnt; k++) bad |= !(x[k] > lo && x[k] < hi);
  return !bad;
}

/* kvi__all_within in parallel chunks (an OR of the chunks: the same answer on any thread
 * count). */
bool kvi__all_within_par(const kvi_real *x, size_t cnt, kvi_real lo, kvi_real hi) {
  const size_t ch = (size_t)1 << 15, nc = (cnt + ch - 1) / ch;
  int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (cnt >= KVI__KL_OMP_MIN)
  for (size_t c = 0; c < nc; c++)
    bad |= !kvi__all_within(x + c * ch, cnt - c * ch < ch ? cnt - c * ch : ch, lo, hi);
  return !bad;
}

kvi_status kvi__kl_nonfinite(kvi_status detail, double value, const char *fn) {
  if (detail) return detail;
  return kvi_fail(KVI_ERR_NONFINITE, "%s: the KL is not finite (%g)", fn, value);
}

/* kvi_mn_kl_ard outside the fused pass's safe range: the value first, the gradients only if it
 * is finite (a failed call leaves g untouched); a non-finite parameter always makes the value
 * non-finite, so the full finiteness check only runs then, to name the culprit. Frees w. */
static kvi_status kvi__mn_ard_checked(double *out, const kvi_mn *q, kvi_mn_grad *g, double gs,
                                      kvi__uv *w, double ld) {
  const char *fn = "kvi_mn_kl_ard";
  const int n = q->n, m = q->m;
  double kl = 0.5 * kvi__mn_ard_logsum(q, NULL, w, NULL) - ld;
  if (!isfinite(kl)) {
    kvi__uv_finish(w, q, NULL, 0, 0, 0);
    return kvi__kl_nonfinite(kvi__check_mn_finite(q, fn), kl, fn);
  }
  *out = kl;
  if (g) kvi__mn_ard_grad(q, NULL, w, g->M, NULL, gs, NULL);
  kvi__uv_finish(w, q, g, gs, -(double)m, -(double)n);
  return KVI_OK;
}

kvi_status kvi_mn_kl_ard(double *out, const kvi_mn *q, kvi_mn_grad *g, kvi_real gscale) {
  const char *fn = "kvi_mn_kl_ard";
  kvi_status s = kvi__check_mn_args(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: out is NULL", fn);
  const int n = q->n, m = q->m;
  kvi__uv w;
  if ((s = kvi__uv_init(&w, q))) return s;
  /* KL = 1/2 sum log(1 + M^2/(u_i v_j)) + 1/2 [m (sum log u - log|U|) + n (sum log v - log|V|)]
   *    = 1/2 sum log(M^2 + u_i v_j) - m sum a_i - n sum b_j  (log|U| = 2 sum a_i).
   * When the parameters are in a range where every term is finite (kvi__mn_ard_safe: one cheap
   * pass over M, none over the factors), value and gradients come from one fused pass;
   * otherwise from kvi__mn_ard_checked. */
  const double ld = (double)m * kvi__chol_logdet(q->A, n) + (double)n * kvi__chol_logdet(q->B, m);
  double gs = gscale;
  if (g && kvi__mn_ard_safe(q, &w)) {
    double acc;
    kvi__mn_ard_grad(q, NULL, &w, g->M, NULL, gs, &acc);
    *out = 0.5 * acc - ld;
    kvi__uv_finish(&w, q, g, gs, -(double)m, -(double)n);
    return KVI_OK;
  }
  return kvi__mn_ard_checked(out, q, g, gs, &w, ld);
}

/* ---- the ARD KL fused into an optimizer's step (prob/mn_ard.h) ---------------------------- */
/* Rows of a factor per item of the factor passes (a triangle's rows grow in length: items are
 * dealt out longest first), and elements of M per item of its range test. */
#define KVI__TRI_ROWS 16
#define KVI__M_CHUNK ((size_t)1 << 15)

static int kvi__row_blocks(int n, int rows) { return (n + rows - 1) / rows; }

static long kvi__m_chunks(const kvi_mn *q) {
  return (long)(((size_t)q->n * q->m + KVI__M_CHUNK - 1) / KVI__M_CHUNK);
}

/* A block's factor items are KVI__TRI_ROWS rows of A, then of B, each from the last rows up.
 * If item *t is one of them: its factor k (1: A, 2: B) and rows [i0, i1); else false, with the
 * block's items taken off *t. */
static bool kvi__factor_item(const kvi_mn *q, long *t, int *k, int *i0, int *i1) {
  for (*k = 1; *k <= 2; (*k)++) {
    const int n = *k == 1 ? q->n : q->m, nc = kvi__row_blocks(n, KVI__TRI_ROWS);
    if (*t >= nc) {
      *t -= nc;
      continue;
    }
    *i0 = (nc - 1 - (int)*t) * KVI__TRI_ROWS;
    *i1 = *i0 + KVI__TRI_ROWS < n ? *i0 + KVI__TRI_ROWS : n;
    return true;
  }
  return false;
}

/* Item t of the measuring pass over the blocks: rows of A (u) or of B (v), or a chunk of M's
 * range test (a failure sets m_bad). */
static void kvi__fuse_measure_item(kvi__mn_ard_fuse *f, int nf, long t) {
  for (int l = 0; l < nf; l++) {
    const kvi_mn *q = &f[l].q;
    int k, i0, i1;
    if (kvi__factor_item(q, &t, &k, &i0, &i1)) {
      kvi__chol_rownorm2_d_rows(k == 1 ? f[l].w.u : f[l].w.v, k == 1 ? q->A : q->B,
                                k == 1 ? q->n : q->m, i0, i1);
      return;
    }
    if (t >= kvi__m_chunks(q)) {
      t -= kvi__m_chunks(q);
      continue;
    }
    const size_t k0 = (size_t)t * KVI__M_CHUNK, nm = (size_t)q->n * q->m;
    if (!kvi__all_within(q->M + k0, nm - k0 < KVI__M_CHUNK ? nm - k0 : KVI__M_CHUNK, -KVI__M_LIMIT,
                         KVI__M_LIMIT)) {
#pragma omp atomic write
      f[l].m_bad = 1;
    }
    return;
  }
}

/* Frees the frames held by f[0, nf) but f[skip]. */
static void kvi__fuse_free_all(kvi__mn_ard_fuse *f, int nf, int skip) {
  for (int l = 0; l < nf; l++)
    if (l != skip) kvi__mn_ard_fuse_free(&f[l]);
}

kvi_status kvi__mn_ard_fuse_begin(kvi__mn_ard_fuse *f, int nf) {
  const char *fn = "kvi_mn_kl_ard";
  kvi_status s = KVI_OK;
  long items = 0;
  size_t work = 0;
  for (int l = 0; l < nf; l++) f[l].fused = false;
  for (int l = 0; l < nf && !s; l++) {
    const kvi_mn *q = &f[l].q;
    const kvi_mn_grad *g = &f[l].g;
    s = kvi__check_mn_args(q, fn);
    if (!s && (!g->M || !g->A || !g->B || !f[l].kl))
      s = kvi_fail(KVI_ERR_ARG, "%s: a fused step needs the gradients of M, A and B", fn);
    if (!s) s = kvi__uv_alloc(&f[l].w, q);
    if (s) break;
    f[l].fused = true; /* holds its frame from here */
    f[l].m_bad = 0;
    items += kvi__row_blocks(q->n, KVI__TRI_ROWS) + kvi__row_blocks(q->m, KVI__TRI_ROWS) +
             kvi__m_chunks(q);
    work += (size_t)q->n * q->n / 2 + (size_t)q->m * q->m / 2 + (size_t)q->n * q->m;
  }
  if (s) {
    kvi__fuse_free_all(f, nf, -1);
    return s;
  }
  /* u, v and M's range test of every block in one parallel loop */
#pragma omp parallel for schedule(dynamic, 1) if (work >= KVI__KL_OMP_MIN)
  for (long t = 0; t < items; t++) kvi__fuse_measure_item(f, nf, t);
  for (int l = 0; l < nf; l++) {
    const kvi_mn *q = &f[l].q;
    kvi__uv_round(&f[l].w, q);
    f[l].ld =
        (double)q->m * kvi__chol_logdet(q->A, q->n) + (double)q->n * kvi__chol_logdet(q->B, q->m);
    if (!f[l].m_bad && kvi__mn_ard_safe_factors(q, &f[l].w)) continue;
    /* outside the safe range: the KL and its gradient now (frees the frame) */
    f[l].fused = false;
    s = kvi__mn_ard_checked(f[l].kl, q, &f[l].g, f[l].gs, &f[l].w, f[l].ld);
    if (s) {
      kvi__fuse_free_all(f, nf, l);
      return s;
    }
  }
  return KVI_OK;
}

void kvi__mn_ard_fuse_free(kvi__mn_ard_fuse *f) {
  if (f && f->fused) kvi_free(f->w.u);
  if (f) f->fused = false;
}

/* The rows of a factor's lower triangle, each given to update(). */
static void kvi__chol_update_rows(int n, kvi__rows_fn update, void *ctx, size_t off,
                                  kvi_role role) {
  for (int i = 0; i < n; i++) update(ctx, off + (size_t)i * n, (size_t)i + 1, role);
}

/* Item t of the M pass: row block b of block l (counting fused blocks only). */
static void kvi__fuse_m_item(kvi__mn_ard_fuse *f, int t, kvi__rows_fn update, void *ctx) {
  int l = 0;
  for (;; l++) {
    if (!f[l].fused) continue;
    const int nb = kvi__row_blocks(f[l].q.n, KVI__ARD_ROWS);
    if (t < nb) break;
    t -= nb;
  }
  kvi__mn_ard_fuse *fl = &f[l];
  const kvi_mn *q = &fl->q;
  const int m = q->m, i0 = t * KVI__ARD_ROWS;
  const int i1 = i0 + KVI__ARD_ROWS < q->n ? i0 + KVI__ARD_ROWS : q->n;
  kvi_real *cs = fl->w.blk + (size_t)2 * t * m;
  kvi__mn_ard_grad_rows(q, NULL, &fl->w, fl->g.M, NULL, fl->gs, true, i0, i1, cs, cs + m);
  update(ctx, fl->off[0] + (size_t)i0 * m, (size_t)(i1 - i0) * m, fl->role[0]);
}

/* Item t of the factor pass: KVI__TRI_ROWS rows of A, then of B, of a fused block, from the
 * last rows up. */
static void kvi__fuse_ab_item(kvi__mn_ard_fuse *f, long t, kvi__rows_fn update, void *ctx) {
  for (int l = 0;; l++) {
    if (!f[l].fused) continue;
    const kvi_mn *q = &f[l].q;
    int k, i0, i1;
    if (!kvi__factor_item(q, &t, &k, &i0, &i1)) continue;
    const double gs = f[l].gs, diag = gs * -(double)(k == 1 ? q->m : q->n);
    kvi__chol_rownorm2_backward_update_rows(k == 1 ? f[l].g.A : f[l].g.B, k == 1 ? q->A : q->B,
                                            k == 1 ? q->n : q->m, k == 1 ? f[l].w.gu : f[l].w.gv,
                                            gs, diag, update, ctx, f[l].off[k], f[l].role[k], i0,
                                            i1, f[l].pf);
    return;
  }
}

void kvi__mn_ard_fuse_run(kvi__mn_ard_fuse *f, int nf, kvi__rows_fn update, void *ctx) {
  int nm = 0, nab = 0;
  size_t work = 0;
  for (int l = 0; l < nf; l++) {
    const kvi_mn *q = &f[l].q;
    if (!f[l].fused) { /* the gradient is in already: only the updates */
      update(ctx, f[l].off[0], (size_t)q->n * q->m, f[l].role[0]);
      kvi__chol_update_rows(q->n, update, ctx, f[l].off[1], f[l].role[1]);
      kvi__chol_update_rows(q->m, update, ctx, f[l].off[2], f[l].role[2]);
      continue;
    }
    nm += kvi__row_blocks(q->n, KVI__ARD_ROWS);
    nab += kvi__row_blocks(q->n, KVI__TRI_ROWS) + kvi__row_blocks(q->m, KVI__TRI_ROWS);
    work += (size_t)q->n * q->m;
  }
#pragma omp parallel if (work >= KVI__KL_OMP_MIN)
  {
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < nm; t++) kvi__fuse_m_item(f, t, update, ctx);
#pragma omp for schedule(dynamic, 1)
    for (int l = 0; l < nf; l++)
      if (f[l].fused) kvi__mn_ard_reduce(&f[l].q, &f[l].w, &f[l].acc);
#pragma omp for schedule(dynamic, 1)
    for (long t = 0; t < nab; t++) kvi__fuse_ab_item(f, t, update, ctx);
  }
  for (int l = 0; l < nf; l++) {
    if (!f[l].fused) continue;
    *f[l].kl = 0.5 * f[l].acc - f[l].ld;
    kvi_free(f[l].w.u);
    f[l].fused = false;
  }
}

kvi_status kvi__check_group_args(const kvi_real *log_tau, const kvi_real *log_gamma, int n, int m,
                                 const char *fn) {
  if (!log_tau || !log_gamma) return kvi_fail(KVI_ERR_ARG, "%s: log_tau or log_gamma is NULL", fn);
  for (int i = 0; i < n; i++)
    if (!isfinite(log_tau[i]))
      return kvi_fail(KVI_ERR_NONFINITE, "%s: log_tau[%d] is not finite (%g)", fn, i,
                      (double)log_tau[i]);
  for (int j = 0; j < m; j++)
    if (!isfinite(log_gamma[j]))
      return kvi_fail(KVI_ERR_NONFINITE, "%s: log_gamma[%d] is not finite (%g)", fn, j,
                      (double)log_gamma[j]);
  return KVI_OK;
}

double kvi__mn_kl_group_core(const kvi_mn *q, const kvi_real *log_d, const kvi_real *log_tau,
                             const kvi_real *log_gamma, kvi__uv *w, kvi_real *gM, kvi_real *glog_d,
                             kvi_real *g_log_tau, kvi_real *g_log_gamma, double gs) {
  const int n = q->n, m = q->m;
  double slt = 0, slg = 0, Tu = 0, Gv = 0, acc = 0;
  /* gv doubles as the column sums sum_i tau_i S_ij until the end */
  memset(w->gv, 0, (size_t)m * sizeof *w->gv);
  for (int i = 0; i < n; i++) {
    double lt = log_tau[i], tau = exp(lt), row = 0;
    slt += lt;
    Tu += tau * w->u[i];
    for (int j = 0; j < m; j++) {
      size_t k = (size_t)i * m + j;
      double gam = exp((double)log_gamma[j]), a = tau * gam, mu = q->M[k];
      double d = log_d ? exp((double)log_d[k]) : 0.0;
      double S = mu * mu + w->u[i] * w->v[j] + d;
      row += gam * S;
      w->gv[j] += tau * S;
      if (gM) gM[k] += (kvi_real)(gs * a * mu);
      if (glog_d) glog_d[k] += (kvi_real)(gs * 0.5 * a * d);
    }
    acc += tau * row;
    if (g_log_tau) g_log_tau[i] += (kvi_real)(gs * 0.5 * (tau * row - m));
  }
  for (int j = 0; j < m; j++) {
    double lg = log_gamma[j], gam = exp(lg);
    slg += lg;
    Gv += gam * w->v[j];
    if (g_log_gamma) g_log_gamma[j] += (kvi_real)(gs * 0.5 * (gam * w->gv[j] - n));
  }
  /* sum_ij tau_i gamma_j u_i v_j = (sum tau u)(sum gamma v): d/du_i = tau_i Gv, d/dv_j = gam_j Tu
   */
  for (int i = 0; i < n; i++) w->gu[i] = 0.5 * exp((double)log_tau[i]) * Gv;
  for (int j = 0; j < m; j++) w->gv[j] = 0.5 * exp((double)log_gamma[j]) * Tu;
  return acc - (double)m * slt - (double)n * slg;
}

kvi_status kvi_mn_kl_group(double *out, const kvi_mn *q, const kvi_real *log_tau,
                           const kvi_real *log_gamma, kvi_mn_grad *g, kvi_real *g_log_tau,
                           kvi_real *g_log_gamma, kvi_real gscale) {
  const char *fn = "kvi_mn_kl_group";
  kvi_status s = kvi__check_mn_args(q, fn);
  if (s) return s;
  if (!out) return kvi_fail(KVI_ERR_ARG, "%s: out is NULL", fn);
  const int n = q->n, m = q->m;
  if ((s = kvi__check_group_args(log_tau, log_gamma, n, m, fn))) return s;
  if ((s = kvi__check_mn_finite(q, fn))) return s;
  kvi__uv w;
  if ((s = kvi__uv_init(&w, q))) return s;
  double gs = gscale;
  double acc = kvi__mn_kl_group_core(q, NULL, log_tau, log_gamma, &w, g ? g->M : NULL, NULL,
                                     g_log_tau, g_log_gamma, gs);
  /* KL = 1/2 [acc - nm - m log|U| - n log|V|] */
  *out = 0.5 * (acc - (double)n * m) - (double)m * kvi__chol_logdet(q->A, n) -
         (double)n * kvi__chol_logdet(q->B, m);
  kvi__uv_finish(&w, q, g, gs, -(double)m, -(double)n);
  return KVI_OK;
}

kvi_status kvi_group_ard_update(kvi_real *log_tau, kvi_real *log_gamma, const kvi_real *S, int n,
                                int m, int iters) {
  const char *fn = "kvi_group_ard_update";
  if (n <= 0 || m <= 0)
    return kvi_fail(KVI_ERR_ARG, "%s: sizes n=%d, m=%d must be positive", fn, n, m);
  if (!S) return kvi_fail(KVI_ERR_ARG, "%s: S is NULL", fn);
  if (iters < 0) return kvi_fail(KVI_ERR_ARG, "%s: iters = %d must be >= 0", fn, iters);
  kvi_status s = kvi__check_group_args(log_tau, log_gamma, n, m, fn);
  if (s) return s;
  size_t nm = (size_t)n * m;
  for (size_t k = 0; k < nm; k++)
    if (!(S[k] > 0) || !isfinite(S[k]))
      return kvi_fail(isfinite(S[k]) ? KVI_ERR_ARG : KVI_ERR_NONFINITE,
                      "%s: S[%zu,%zu] = %g must be positive and finite", fn, k / (size_t)m,
                      k % (size_t)m, (double)S[k]);
  double *tau = kvi_alloc(((size_t)n + m) * sizeof *tau);
  if (!tau) return KVI_ERR_NOMEM;
  double *gam = tau + n;
  for (int i = 0; i < n; i++) tau[i] = exp((double)log_tau[i]);
  for (int j = 0; j < m; j++) gam[j] = exp((double)log_gamma[j]);
  for (int it = 0; it < iters; it++) {
    /* tau_i = m / sum_j gamma_j S_ij (exact minimizer of the group KL in tau given gamma) */
    for (int i = 0; i < n; i++) {
      double r = 0;
      for (int j = 0; j < m; j++) r += gam[j] * (double)S[(size_t)i * m + j];
      tau[i] = m / r;
    }
    /* gamma_j = n / sum_i tau_i S_ij */
    memset(gam, 0, (size_t)m * sizeof *gam);
    for (int i = 0; i < n; i++)
      for (int j = 0; j < m; j++) gam[j] += tau[i] * (double)S[(size_t)i * m + j];
    for (int j = 0; j < m; j++) gam[j] = n / gam[j];
  }
  /* fix the scale (tau c, gamma / c leaves the KL unchanged): mean log tau = mean log gamma */
  double mt = 0, mg = 0;
  for (int i = 0; i < n; i++) mt += log(tau[i]);
  for (int j = 0; j < m; j++) mg += log(gam[j]);
  double shift = 0.5 * (mt / n - mg / m);
  for (int i = 0; i < n; i++) log_tau[i] = (kvi_real)(log(tau[i]) - shift);
  for (int j = 0; j < m; j++) log_gamma[j] = (kvi_real)(log(gam[j]) + shift);
  kvi_free(tau);
  return KVI_OK;
}
