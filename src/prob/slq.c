/* log det(V (x) U + diag D) of the MN+DIAG posterior by stochastic Lanczos quadrature with
 * Kronecker matrix-vector products (docs/prob.md §3, "Stochastic Lanczos bound"; docs/curv.md).
 *
 * With W (n, m) as a matrix, Sigma vec W = vec(U W V + D .* W): two gemms, no N x N matrix
 * (N = nm). Variance reduction by an exactly solvable control: P = V (x) U + c I, c the geometric
 * mean of D, has log det P = sum_ij log(lambda_i mu_j + c) from the eigendecompositions
 * U = QU diag(lambda) QU^T, V = QV diag(mu) QV^T, and P^(-1/2) applies in that basis. Then
 *   log det Sigma = log det P + log det M,  M = P^(-1/2) Sigma P^(-1/2) = I + P^(-1/2)(D -
 * cI)P^(-1/2), and tr log M is estimated by Hutchinson probes z (Rademacher) and k Lanczos steps
 * each: z^T log(M) z ~ ||z||^2 sum_l tau_l^2 log theta_l      (eq. S1) (theta_l, tau_l: eigenvalues
 * and first eigenvector components of the Lanczos matrix). M is close to I when D is close to c, so
 * the probes' variance is small. The basis is refreshed every `refresh` calls; a stale P is still
 * an exact control (any fixed P > 0 works). Gradient: d log det Sigma = tr(Sigma^-1 dSigma) =
 * tr(P^-1 dSigma) + E[(y1 - y0)^T dSigma z] with y1 = Sigma^-1 z (CG preconditioned by P), y0 =
 * P^-1 z (eq. S2): the first term exactly in P's basis, the second with the same probes. Internally
 * in double. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "prob/prob_internal.h"

struct kvi_slq {
  int n, m, probes, steps, refresh;
  uint64_t seed, step;
  int64_t calls;
  bool have_basis;
  double *QU, *lamU, *QV, *lamV, c, ldP;       /* the control P */
  double *Lam, *dPinv;                         /* (n, m): lambda_i mu_j + c, diag(P^-1) */
  double *U, *V, *LA, *LB, *D;                 /* current U, V, their factors, D */
  double *Z, *T1, *T2, *Y0, *Y1, *R, *Pd, *AP; /* (n, m) work */
  double *basis, *tri;  /* Lanczos vectors (steps + 1, N), T (steps, steps) */
  double *GU, *GV, *GD; /* gradient accumulators */
  double *P2, *S1;      /* CG direction (n, m); square scratch n^2 + m^2 */
  double last_se;
};

void kvi_slq_free(kvi_slq *s) {
  if (!s) return;
  double *bufs[] = {s->QU, s->lamU,  s->QV,  s->lamV, s->Lam, s->dPinv, s->U,  s->V, s->LA,
                    s->LB, s->D,     s->Z,   s->T1,   s->T2,  s->Y0,    s->Y1, s->R, s->Pd,
                    s->AP, s->basis, s->tri, s->GU,   s->GV,  s->GD,    s->P2, s->S1};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
  free(s);
}

kvi_status kvi_slq_create(kvi_slq **out, int n, int m, const kvi_slq_config *c) {
  if (!out || !c || n < 1 || m < 1 || c->probes < 1 || c->probes > 1000 || c->steps < 2 ||
      c->steps > 200 || c->refresh < 1)
    return kvi_fail(KVI_ERR_ARG, "slq: sizes %d x %d, %d probes, %d steps, refresh %d", n, m,
                    c ? c->probes : 0, c ? c->steps : 0, c ? c->refresh : 0);
  kvi_slq *s = calloc(1, sizeof *s);
  if (!s) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  s->n = n, s->m = m, s->probes = c->probes, s->steps = c->steps, s->refresh = c->refresh;
  s->seed = c->seed;
  const size_t N = (size_t)n * m, nn = (size_t)n * n, mm = (size_t)m * m, d = sizeof(double);
  bool ok = (s->QU = malloc(nn * d)) && (s->lamU = malloc(n * d)) && (s->QV = malloc(mm * d)) &&
            (s->lamV = malloc(m * d)) && (s->U = malloc(nn * d)) && (s->V = malloc(mm * d)) &&
            (s->LA = malloc(nn * d)) && (s->LB = malloc(mm * d)) && (s->GU = malloc(nn * d)) &&
            (s->GV = malloc(mm * d)) && (s->tri = malloc((size_t)c->steps * c->steps * d)) &&
            (s->basis = malloc((size_t)(c->steps + 1) * N * d)) && (s->S1 = malloc((nn + mm) * d));
  double **nm[] = {&s->Lam, &s->dPinv, &s->D,  &s->Z,  &s->T1, &s->T2, &s->Y0,
                   &s->Y1,  &s->R,     &s->Pd, &s->AP, &s->GD, &s->P2};
  for (size_t i = 0; ok && i < sizeof nm / sizeof nm[0]; i++) ok = (*nm[i] = malloc(N * d)) != NULL;
  if (!ok) {
    kvi_slq_free(s);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for the stochastic Lanczos state (%d x %d)", n,
                    m);
  }
  *out = s;
  return KVI_OK;
}

void kvi_slq_set_step(kvi_slq *s, uint64_t step) {
  if (s) s->step = step;
}
double kvi_slq_last_stderr(const kvi_slq *s) { return s ? s->last_se : NAN; }

/* C (r, c) = op(A) op(B) + beta C, row-major doubles. */
static void kvi__dgemm(bool ta, bool tb, int r, int c, int k, const double *A, const double *B,
                       double beta, double *C) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, r, c,
              k, 1.0, A, ta ? r : k, B, tb ? k : c, beta, C, c);
}

/* L (materialized factor, double) and L L^T from parameter storage P (n, n). */
static void kvi__slq_factor(double *L, double *UU, const kvi_real *P, int n) {
  for (int i = 0; i < n; i++)
    for (int k = 0; k < n; k++)
      L[(size_t)i * n + k] = k < i    ? (double)P[(size_t)i * n + k]
                             : k == i ? exp((double)P[(size_t)i * n + k])
                                      : 0;
  kvi__dgemm(false, true, n, n, n, L, L, 0, UU);
}

/* out = Sigma z = U Z V + D .* Z */
static void kvi__slq_sigma(kvi_slq *s, const double *z, double *out) {
  const int n = s->n, m = s->m;
  kvi__dgemm(false, false, n, m, n, s->U, z, 0, s->T1);
  kvi__dgemm(false, false, n, m, m, s->T1, s->V, 0, out);
  for (size_t i = 0; i < (size_t)n * m; i++) out[i] += s->D[i] * z[i];
}

/* out = P^p z (p = -1/2 or -1) in P's basis: QU [(QU^T Z QV) .* Lam^p] QV^T. */
static void kvi__slq_ppow(kvi_slq *s, const double *z, double *out, double p) {
  const int n = s->n, m = s->m;
  kvi__dgemm(true, false, n, m, n, s->QU, z, 0, s->T1);
  kvi__dgemm(false, false, n, m, m, s->T1, s->QV, 0, s->T2);
  for (size_t i = 0; i < (size_t)n * m; i++)
    s->T2[i] *= p == -1 ? 1 / s->Lam[i] : 1 / sqrt(s->Lam[i]);
  kvi__dgemm(false, false, n, m, n, s->QU, s->T2, 0, s->T1);
  kvi__dgemm(false, true, n, m, m, s->T1, s->QV, 0, out);
}

/* The control P: eigendecompositions of the current U, V; c = geometric mean of D. */
static kvi_status kvi__slq_basis(kvi_slq *s) {
  const int n = s->n, m = s->m;
  const size_t N = (size_t)n * m;
  memcpy(s->QU, s->U, (size_t)n * n * sizeof(double));
  memcpy(s->QV, s->V, (size_t)m * m * sizeof(double));
  kvi_status st = kvi_syev_f64(n, s->QU, n, s->lamU);
  if (!st) st = kvi_syev_f64(m, s->QV, m, s->lamV);
  if (st) return st;
  double sl = 0;
  for (size_t i = 0; i < N; i++) sl += log(s->D[i]);
  s->c = exp(sl / (double)N), s->ldP = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) {
      const double l = fmax(s->lamU[i], 0) * fmax(s->lamV[j], 0) + s->c;
      s->Lam[(size_t)i * m + j] = l, s->ldP += log(l);
    }
  /* diag(P^-1)_kl = sum_ij QU_ki^2 QV_lj^2 / Lam_ij */
  double *QU2 = s->S1, *QV2 = s->S1 + (size_t)n * n;
  for (size_t i = 0; i < (size_t)n * n; i++) QU2[i] = s->QU[i] * s->QU[i];
  for (size_t i = 0; i < (size_t)m * m; i++) QV2[i] = s->QV[i] * s->QV[i];
  for (size_t i = 0; i < N; i++) s->T2[i] = 1 / s->Lam[i];
  kvi__dgemm(false, false, n, m, n, QU2, s->T2, 0, s->T1);
  kvi__dgemm(false, true, n, m, m, s->T1, QV2, 0, s->dPinv);
  s->have_basis = true;
  return KVI_OK;
}

/* One probe's quadrature z^T log(M) z (eq. S1); z has ||z||^2 = N. */
static kvi_status kvi__slq_lanczos(kvi_slq *s, const double *z, double *quad) {
  const size_t N = (size_t)s->n * s->m;
  const int k = s->steps;
  double *a = s->tri, beta[201], alpha[200];
  double nz = sqrt(cblas_ddot((int)N, z, 1, z, 1));
  for (size_t i = 0; i < N; i++) s->basis[i] = z[i] / nz;
  int used = 0;
  for (int j = 0; j < k; j++) {
    double *v = s->basis + (size_t)j * N, *w = s->basis + (size_t)(j + 1) * N;
    kvi__slq_ppow(s, v, s->AP, -0.5); /* w = M v */
    kvi__slq_sigma(s, s->AP, s->R);
    kvi__slq_ppow(s, s->R, w, -0.5);
    alpha[j] = cblas_ddot((int)N, w, 1, v, 1);
    for (int r = 0; r <= j; r++) { /* full reorthogonalization, twice */
      const double *q = s->basis + (size_t)r * N;
      cblas_daxpy((int)N, -cblas_ddot((int)N, w, 1, q, 1), q, 1, w, 1);
    }
    for (int r = 0; r <= j; r++) {
      const double *q = s->basis + (size_t)r * N;
      cblas_daxpy((int)N, -cblas_ddot((int)N, w, 1, q, 1), q, 1, w, 1);
    }
    used = j + 1;
    beta[j] = sqrt(cblas_ddot((int)N, w, 1, w, 1));
    if (!isfinite(alpha[j]) || !isfinite(beta[j]))
      return kvi_fail(KVI_ERR_NONFINITE, "stochastic Lanczos: non-finite product");
    if (beta[j] < 1e-12 * fabs(alpha[j])) break; /* invariant subspace: exact */
    cblas_dscal((int)N, 1 / beta[j], w, 1);
  }
  memset(a, 0, (size_t)used * used * sizeof *a);
  for (int j = 0; j < used; j++) {
    a[(size_t)j * used + j] = alpha[j];
    if (j + 1 < used) a[(size_t)(j + 1) * used + j] = a[(size_t)j * used + j + 1] = beta[j];
  }
  double theta[200];
  kvi_status st = kvi_syev_f64(used, a, used, theta);
  if (st) return st;
  double q = 0;
  for (int l = 0; l < used; l++) q += a[l] * a[l] * log(fmax(theta[l], 1e-300)); /* row 0 */
  *quad = nz * nz * q;
  return KVI_OK;
}

/* y = Sigma^-1 z by CG preconditioned with P^-1 (relative residual 1e-8, at most 200 steps). */
static kvi_status kvi__slq_solve(kvi_slq *s, const double *z, double *y) {
  const int N = s->n * s->m;
  memset(y, 0, (size_t)N * sizeof *y);
  memcpy(s->R, z, (size_t)N * sizeof *z);
  kvi__slq_ppow(s, s->R, s->Pd, -1);
  double rz = cblas_ddot(N, s->R, 1, s->Pd, 1), r0 = sqrt(cblas_ddot(N, z, 1, z, 1));
  double *p = s->P2;
  memcpy(p, s->Pd, (size_t)N * sizeof *p);
  for (int it = 0; it < 200; it++) {
    if (sqrt(cblas_ddot(N, s->R, 1, s->R, 1)) <= 1e-8 * r0) return KVI_OK;
    kvi__slq_sigma(s, p, s->AP);
    const double pAp = cblas_ddot(N, p, 1, s->AP, 1);
    if (!(pAp > 0) || !isfinite(pAp))
      return kvi_fail(KVI_ERR_NONFINITE, "stochastic Lanczos: CG breakdown (p.Sigma p = %g)", pAp);
    const double al = rz / pAp;
    cblas_daxpy(N, al, p, 1, y, 1);
    cblas_daxpy(N, -al, s->AP, 1, s->R, 1);
    kvi__slq_ppow(s, s->R, s->Pd, -1);
    const double rz1 = cblas_ddot(N, s->R, 1, s->Pd, 1);
    for (int i = 0; i < N; i++) p[i] = s->Pd[i] + rz1 / rz * p[i];
    rz = rz1;
  }
  return KVI_OK; /* 200 steps: the best iterate (P is a close preconditioner; rarely reached) */
}

/* The gradient accumulators: the exact part tr(P^-1 dSigma) (eq. S2) in P's basis. */
static void kvi__slq_exact_grad(kvi_slq *s) {
  const int n = s->n, m = s->m;
  double *nu = s->T1, *ka = s->T2, *w = s->S1;
  /* nu_j = (QV^T V QV)_jj, ka_i = (QU^T U QU)_ii for the current U, V */
  kvi__dgemm(true, false, m, m, m, s->QV, s->V, 0, s->GV);
  for (int j = 0; j < m; j++) nu[j] = cblas_ddot(m, s->GV + (size_t)j * m, 1, s->QV + j, m);
  kvi__dgemm(true, false, n, n, n, s->QU, s->U, 0, s->GU);
  for (int i = 0; i < n; i++) ka[i] = cblas_ddot(n, s->GU + (size_t)i * n, 1, s->QU + i, n);
  /* dlogdet/dU = QU diag(a) QU^T, a_i = sum_j nu_j / Lam_ij; likewise V with b_j */
  for (int i = 0; i < n; i++) {
    double ai = 0;
    for (int j = 0; j < m; j++) ai += nu[j] / s->Lam[(size_t)i * m + j];
    for (int r = 0; r < n; r++) w[(size_t)r * n + i] = s->QU[(size_t)r * n + i] * ai;
  }
  kvi__dgemm(false, true, n, n, n, w, s->QU, 0, s->GU);
  for (int j = 0; j < m; j++) {
    double bj = 0;
    for (int i = 0; i < n; i++) bj += ka[i] / s->Lam[(size_t)i * m + j];
    for (int r = 0; r < m; r++) w[(size_t)r * m + j] = s->QV[(size_t)r * m + j] * bj;
  }
  kvi__dgemm(false, true, m, m, m, w, s->QV, 0, s->GV);
  memcpy(s->GD, s->dPinv, (size_t)n * m * sizeof(double));
}

/* The probes' share of the gradient: Y = Sigma^-1 z - P^-1 z (in Y1), then
 * GU += sym(Y V Z^T) / p, GV += sym(Z^T U Y) / p, GD += Y .* Z / p (eq. S2). */
static kvi_status kvi__slq_probe_grad(kvi_slq *s, const double *z) {
  const int n = s->n, m = s->m;
  const size_t N = (size_t)n * m;
  kvi_status st = kvi__slq_solve(s, z, s->Y1);
  if (st) return st;
  kvi__slq_ppow(s, z, s->Y0, -1);
  for (size_t i = 0; i < N; i++) s->Y1[i] -= s->Y0[i];
  const double w = 0.5 / s->probes;
  double *Wn = s->S1, *Wm = s->S1 + (size_t)n * n;
  kvi__dgemm(false, false, n, m, m, s->Y1, s->V, 0, s->T1); /* Y V */
  kvi__dgemm(false, true, n, n, m, s->T1, z, 0, Wn);        /* Y V Z^T */
  for (int i = 0; i < n; i++)
    for (int k = 0; k < n; k++)
      s->GU[(size_t)i * n + k] += w * (Wn[(size_t)i * n + k] + Wn[(size_t)k * n + i]);
  kvi__dgemm(false, false, n, m, n, s->U, s->Y1, 0, s->T1); /* U Y */
  kvi__dgemm(true, false, m, m, n, z, s->T1, 0, Wm);        /* Z^T U Y */
  for (int i = 0; i < m; i++)
    for (int k = 0; k < m; k++)
      s->GV[(size_t)i * m + k] += w * (Wm[(size_t)i * m + k] + Wm[(size_t)k * m + i]);
  for (size_t i = 0; i < N; i++) s->GD[i] += 2 * w * s->Y1[i] * z[i];
  return KVI_OK;
}

/* dP += gscale * d/dP of <G, L L^T>: 2 G L on the lower triangle, the diagonal times L_ii
 * (it is stored as a log). */
static void kvi__slq_chain(kvi_real *dP, const double *G, const double *L, int n, double gscale,
                           double *W) {
  kvi__dgemm(false, false, n, n, n, G, L, 0, W);
  for (int i = 0; i < n; i++)
    for (int k = 0; k <= i; k++) {
      double v = 2 * W[(size_t)i * n + k];
      if (k == i) v *= L[(size_t)i * n + i];
      dP[(size_t)i * n + k] += (kvi_real)(gscale * v);
    }
}

kvi_status kvi_mndiag_logdet_slq(double *est, double *se, const kvi_mndiag *q, kvi_slq *s,
                                 kvi_mndiag_grad *g, kvi_real gscale) {
  const char *fn = "kvi_mndiag_logdet_slq";
  kvi_status st = kvi__check_mndiag_args(q, fn);
  if (st) return st;
  if (!est || !s) return kvi_fail(KVI_ERR_ARG, "%s: NULL output or state", fn);
  if (q->mn.n != s->n || q->mn.m != s->m)
    return kvi_fail(KVI_ERR_SHAPE, "%s: the state is for %d x %d, the posterior %d x %d", fn, s->n,
                    s->m, q->mn.n, q->mn.m);
  if ((st = kvi__check_mndiag_finite(q, fn))) return st;
  const int n = s->n, m = s->m;
  const size_t N = (size_t)n * m;
  kvi__slq_factor(s->LA, s->U, q->mn.A, n);
  kvi__slq_factor(s->LB, s->V, q->mn.B, m);
  for (size_t i = 0; i < N; i++) s->D[i] = exp((double)q->log_d[i]);
  if ((!s->have_basis || s->calls % s->refresh == 0) && (st = kvi__slq_basis(s))) return st;
  s->calls++;
  if (g) kvi__slq_exact_grad(s);
  kvi_rng rng = kvi_rng_stream(s->seed, s->step);
  double sum = 0, sum2 = 0;
  for (int p = 0; p < s->probes; p++) {
    for (size_t i = 0; i < N; i += 32) { /* Rademacher probe */
      uint32_t bits = kvi_rng_u32(&rng);
      for (size_t b = 0; b < 32 && i + b < N; b++) s->Z[i + b] = (bits >> b) & 1 ? 1.0 : -1.0;
    }
    double quad = 0;
    if ((st = kvi__slq_lanczos(s, s->Z, &quad))) return st;
    sum += quad, sum2 += quad * quad;
    if (g && (st = kvi__slq_probe_grad(s, s->Z))) return st;
  }
  const double mean = sum / s->probes;
  *est = s->ldP + mean;
  s->last_se =
      s->probes > 1 ? sqrt(fmax(sum2 / s->probes - mean * mean, 0) / (s->probes - 1)) : NAN;
  if (se) *se = s->last_se;
  if (!g) return KVI_OK;
  if (g->mn.A) kvi__slq_chain(g->mn.A, s->GU, s->LA, n, gscale, s->S1);
  if (g->mn.B) kvi__slq_chain(g->mn.B, s->GV, s->LB, m, gscale, s->S1);
  if (g->log_d)
    for (size_t i = 0; i < N; i++) g->log_d[i] += (kvi_real)(gscale * s->D[i] * s->GD[i]);
  return KVI_OK;
}

kvi_status kvi_mndiag_logdet_exact(double *out, const kvi_mndiag *q) {
  const char *fn = "kvi_mndiag_logdet_exact";
  kvi_status st = kvi__check_mndiag_args(q, fn);
  if (st) return st;
  const int n = q->mn.n, m = q->mn.m, N = n * m;
  if (!out || N > 6000)
    return kvi_fail(KVI_ERR_ARG, "%s: NULL output or nm = %d above 6000 (a dense Cholesky)", fn, N);
  double *L = malloc(((size_t)n * n + (size_t)m * m) * 2 * sizeof *L);
  double *S = malloc((size_t)N * N * sizeof *S);
  if (!L || !S) {
    free(L), free(S);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  double *U = L + (size_t)n * n, *V = U + (size_t)n * n + (size_t)m * m, *LB = U + (size_t)n * n;
  kvi__slq_factor(L, U, q->mn.A, n);
  kvi__slq_factor(LB, V, q->mn.B, m);
  for (int i = 0; i < n; i++) /* Sigma_(ij),(kl) = U_ik V_jl + [ij = kl] D_ij */
    for (int j = 0; j < m; j++)
      for (int k = 0; k < n; k++)
        for (int l = 0; l < m; l++)
          S[(size_t)(i * m + j) * N + k * m + l] =
              U[(size_t)i * n + k] * V[(size_t)j * m + l] +
              (i == k && j == l ? exp((double)q->log_d[i * m + j]) : 0);
  st = kvi_potrf_f64(N, S, N);
  double ld = 0;
  for (int i = 0; !st && i < N; i++) ld += 2 * log(S[(size_t)i * N + i]);
  free(L), free(S);
  if (!st) *out = ld;
  return st;
}
