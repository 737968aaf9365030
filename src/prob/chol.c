/* Cholesky-factor parameter storage (strict lower raw, diagonal = log L_ii, upper never read)
 * and the argument / finiteness checks shared by the DIAG, MN and MN+DIAG code. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prob/mn_ard.h"
#include "prob/prob_internal.h"

void kvi_chol_materialize(kvi_real *L, const kvi_real *P, int n) {
  for (int i = 0; i < n; i++) {
    const kvi_real *p = P + (size_t)i * n;
    kvi_real *l = L + (size_t)i * n;
    memcpy(l, p, (size_t)i * sizeof *l);
    l[i] = KVI__EXP(p[i]);
    if (i + 1 < n) memset(l + i + 1, 0, (size_t)(n - i - 1) * sizeof *l);
  }
}

/* Prefetches the len elements at x (a triangle's next row: the rows are n apart, so each starts
 * a new stream that the hardware prefetchers only pick up after a few misses; on a 784-row
 * factor that latency made the row passes several times slower than the bandwidth allows). */
static inline void kvi__prefetch_row(const kvi_real *x, int len) {
  const int step = 64 / (int)sizeof(kvi_real);
  for (int k = 0; k < len; k += step) __builtin_prefetch(x + k, 0, 3);
}

/* The row loops below are independent per row: in parallel for large n, rows dealt out in
 * chunks of 16 (a triangle's rows grow in length). */
#define KVI__CHOL_PAR(n) ((size_t)(n) * (size_t)(n) > 2 * (size_t)KVI__OMP_MIN)

KVI__HOT void kvi__chol_rownorm2_d_rows(double *out, const kvi_real *P, int n, int i0, int i1) {
  for (int i = i0; i < i1; i++) {
    const kvi_real *p = P + (size_t)i * n;
    if (i + 1 < i1) kvi__prefetch_row(p + n, i + 2);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < i; k++) s += (double)p[k] * (double)p[k];
    out[i] = s + exp(2.0 * (double)p[i]);
  }
}

void kvi__chol_rownorm2_d(double *out, const kvi_real *P, int n) {
  const int nc = (n + 15) / 16; /* chunks of 16 rows, dealt out round-robin */
#pragma omp parallel for schedule(static, 1) if (KVI__CHOL_PAR(n))
  for (int c = 0; c < nc; c++)
    kvi__chol_rownorm2_d_rows(out, P, n, 16 * c, 16 * c + 16 < n ? 16 * c + 16 : n);
}

void kvi_chol_rownorm2(kvi_real *out, const kvi_real *P, int n) {
  for (int i = 0; i < n; i++) {
    const kvi_real *p = P + (size_t)i * n;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < i; k++) s += (double)p[k] * (double)p[k];
    out[i] = (kvi_real)(s + exp(2.0 * (double)p[i]));
  }
}

double kvi_chol_trace(const kvi_real *P, int n) {
  double t = 0;
  for (int i = 0; i < n; i++) {
    const kvi_real *p = P + (size_t)i * n;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < i; k++) s += (double)p[k] * (double)p[k];
    t += s + exp(2.0 * (double)p[i]);
  }
  return t;
}

void kvi_chol_grad_to_params(kvi_real *dP, const kvi_real *dL, const kvi_real *P, int n) {
#pragma omp parallel for schedule(static) if ((size_t)n * n > 2 * KVI__OMP_MIN)
  for (int i = 0; i < n; i++) {
    kvi_real *d = dP + (size_t)i * n;
    const kvi_real *s = dL + (size_t)i * n;
    for (int k = 0; k < i; k++) d[k] += s[k];
    d[i] += KVI__EXP(P[(size_t)i * n + i]) * s[i];
  }
}

double kvi__chol_logdet(const kvi_real *P, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += (double)P[(size_t)i * n + i];
  return s;
}

void kvi__chol_add_diag(kvi_real *dP, int n, double val) {
  for (int i = 0; i < n; i++) dP[(size_t)i * n + i] += (kvi_real)val;
}

/* Row i of kvi__chol_rownorm2_backward. */
static inline void kvi__rownorm2_backward_row(kvi_real *restrict d, const kvi_real *restrict p,
                                              int i, double gu_i) {
  double two_g = 2.0 * gu_i;
  const kvi_real tg = (kvi_real)two_g;
#pragma omp simd
  for (int k = 0; k < i; k++) d[k] += tg * p[k];
  d[i] += (kvi_real)(two_g * exp(2.0 * (double)p[i]));
}

KVI__HOT void kvi__chol_rownorm2_backward(kvi_real *dP, const kvi_real *P, int n,
                                          const double *gu) {
#pragma omp parallel for schedule(static, 16) if (KVI__CHOL_PAR(n))
  for (int i = 0; i < n; i++)
    kvi__rownorm2_backward_row(dP + (size_t)i * n, P + (size_t)i * n, i, gu[i]);
}

KVI__HOT void kvi__chol_rownorm2_backward_update_rows(kvi_real *dP, const kvi_real *P, int n,
                                                      double *gu, double gs, double diag,
                                                      kvi__rows_fn update, void *ctx, size_t off,
                                                      kvi_role role, int i0, int i1,
                                                      const kvi_real *const pf[2]) {
  const kvi_real dv = (kvi_real)diag;
  for (int i = i0; i < i1; i++) {
    if (i + 1 < i1) { /* the next row of everything the row's work and update touch */
      const size_t next = (size_t)(i + 1) * n;
      kvi__prefetch_row(P + next, i + 2);
      kvi__prefetch_row(dP + next, i + 2);
      for (int s = 0; s < 2; s++)
        if (pf && pf[s]) kvi__prefetch_row(pf[s] + off + next, i + 2);
    }
    gu[i] *= gs;
    kvi__rownorm2_backward_row(dP + (size_t)i * n, P + (size_t)i * n, i, gu[i]);
    dP[(size_t)i * n + i] += dv; /* kvi__chol_add_diag */
    update(ctx, off + (size_t)i * n, (size_t)i + 1, role);
  }
}

/* ---- checks ------------------------------------------------------------------------------ */
kvi_status kvi__check_chol_finite(const kvi_real *P, int n, const char *what, const char *fn) {
  for (int i = 0; i < n; i++) {
    const kvi_real *p = P + (size_t)i * n;
    for (int k = 0; k <= i; k++)
      if (!isfinite(p[k]))
        return kvi_fail(KVI_ERR_NONFINITE, "%s: %s[%d,%d] is not finite (%g)", fn, what, i, k,
                        (double)p[k]);
    /* exp of the log-diagonal must stay a positive finite number */
    double d = exp((double)p[i]);
    if (!(d > 0) || !isfinite(d) || !isfinite(KVI__EXP(p[i])) || KVI__EXP(p[i]) <= 0)
      return kvi_fail(KVI_ERR_NONFINITE,
                      "%s: log-diagonal %s[%d,%d] = %g gives a zero or infinite factor", fn, what,
                      i, i, (double)p[i]);
  }
  return KVI_OK;
}

static kvi_status kvi__check_array_finite(const kvi_real *x, size_t cnt, int m, const char *what,
                                          const char *fn) {
  for (size_t k = 0; k < cnt; k++)
    if (!isfinite(x[k]))
      return kvi_fail(KVI_ERR_NONFINITE, "%s: %s[%zu,%zu] is not finite (%g)", fn, what,
                      k / (size_t)m, k % (size_t)m, (double)x[k]);
  return KVI_OK;
}

kvi_status kvi__check_mn_args(const kvi_mn *q, const char *fn) {
  if (!q) return kvi_fail(KVI_ERR_ARG, "%s: distribution is NULL", fn);
  if (q->n <= 0 || q->m <= 0)
    return kvi_fail(KVI_ERR_ARG, "%s: sizes n=%d, m=%d must be positive", fn, q->n, q->m);
  if (!q->M || !q->A || !q->B)
    return kvi_fail(KVI_ERR_ARG, "%s: MN parameter pointer is NULL (M=%p A=%p B=%p)", fn,
                    (const void *)q->M, (const void *)q->A, (const void *)q->B);
  return KVI_OK;
}

kvi_status kvi__check_mn_finite(const kvi_mn *q, const char *fn) {
  kvi_status s = kvi__check_array_finite(q->M, (size_t)q->n * q->m, q->m, "M", fn);
  if (s) return s;
  if ((s = kvi__check_chol_finite(q->A, q->n, "A", fn))) return s;
  return kvi__check_chol_finite(q->B, q->m, "B", fn);
}

kvi_status kvi__check_diag_args(const kvi_diag *q, const char *fn) {
  if (!q) return kvi_fail(KVI_ERR_ARG, "%s: distribution is NULL", fn);
  if (q->n <= 0 || q->m <= 0)
    return kvi_fail(KVI_ERR_ARG, "%s: sizes n=%d, m=%d must be positive", fn, q->n, q->m);
  if (!q->mu || !q->log_sigma)
    return kvi_fail(KVI_ERR_ARG, "%s: DIAG parameter pointer is NULL (mu=%p log_sigma=%p)", fn,
                    (const void *)q->mu, (const void *)q->log_sigma);
  return KVI_OK;
}

kvi_status kvi__check_diag_finite(const kvi_diag *q, const char *fn) {
  size_t nm = (size_t)q->n * q->m;
  kvi_status s = kvi__check_array_finite(q->mu, nm, q->m, "mu", fn);
  if (s) return s;
  if ((s = kvi__check_array_finite(q->log_sigma, nm, q->m, "log_sigma", fn))) return s;
  for (size_t k = 0; k < nm; k++) {
    kvi_real v = KVI__EXP(2 * q->log_sigma[k]);
    if (!(v > 0) || !isfinite(v))
      return kvi_fail(KVI_ERR_NONFINITE,
                      "%s: log_sigma[%zu,%zu] = %g gives a zero or infinite "
                      "variance",
                      fn, k / (size_t)q->m, k % (size_t)q->m, (double)q->log_sigma[k]);
  }
  return KVI_OK;
}

kvi_status kvi__check_mndiag_args(const kvi_mndiag *q, const char *fn) {
  if (!q) return kvi_fail(KVI_ERR_ARG, "%s: distribution is NULL", fn);
  kvi_status s = kvi__check_mn_args(&q->mn, fn);
  if (s) return s;
  if (!q->log_d) return kvi_fail(KVI_ERR_ARG, "%s: MN+DIAG log_d pointer is NULL", fn);
  return KVI_OK;
}

kvi_status kvi__check_mndiag_finite(const kvi_mndiag *q, const char *fn) {
  kvi_status s = kvi__check_mn_finite(&q->mn, fn);
  if (s) return s;
  size_t nm = (size_t)q->mn.n * q->mn.m;
  if ((s = kvi__check_array_finite(q->log_d, nm, q->mn.m, "log_d", fn))) return s;
  for (size_t k = 0; k < nm; k++) {
    kvi_real v = KVI__EXP(q->log_d[k]);
    if (!(v > 0) || !isfinite(v))
      return kvi_fail(KVI_ERR_NONFINITE,
                      "%s: log_d[%zu,%zu] = %g gives a zero or infinite "
                      "variance",
                      fn, k / (size_t)q->mn.m, k % (size_t)q->mn.m, (double)q->log_d[k]);
  }
  return KVI_OK;
}

kvi_status kvi_chol_store_block_f64(kvi_real *dst, const double *C, int n, int k) {
  if (!dst || !C || k <= 0 || k > n)
    return kvi_fail(KVI_ERR_ARG, "chol_store_block: bad arguments (n %d, k %d)", n, k);
  double *u = malloc((size_t)k * k * sizeof *u);
  if (!u) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  for (int i = 0; i < k; i++) memcpy(u + (size_t)i * k, C + (size_t)i * n, (size_t)k * sizeof *u);
  kvi_status s = kvi_potrf_f64(k, u, k);
  for (int i = 0; !s && i < k; i++)
    for (int j = 0; j < k; j++) {
      const double l = u[(size_t)i * k + j];
      dst[(size_t)i * k + j] = (kvi_real)(j < i ? l : j == i ? log(l) : 0);
    }
  free(u);
  return s;
}
