/* Dense Bayesian layer: Y = X W + b with W ~ q (point, DIAG, MN or MN+DIAG) sampled by the local
 * reparameterization trick (docs/nn.md). Shapes: X (B, n), W (n, m), Y (B, m). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/par.h"
#include "kronvi/layer.h"
#include "nn/rop_internal.h"

static const char *const kvi__family_names[] = {"point", "diag", "mn", "mn-diag"};
static const char *const kvi__prior_names[] = {"none", "ard", "group", "scalar", "fixed"};

const char *kvi_family_name(kvi_family f) { return (unsigned)f < 4 ? kvi__family_names[f] : "?"; }

kvi_status kvi_family_parse(kvi_family *f, const char *s) {
  for (int i = 0; i < 4; i++)
    if (s && strcmp(s, kvi__family_names[i]) == 0) {
      *f = (kvi_family)i;
      return KVI_OK;
    }
  if (s && strcmp(s, "mndiag") == 0) {
    *f = KVI_FAMILY_MNDIAG;
    return KVI_OK;
  }
  return kvi_fail(KVI_ERR_ARG, "unknown family '%s' (expected point, diag, mn or mn-diag)",
                  s ? s : "(null)");
}

const char *kvi_prior_name(kvi_prior p) { return (unsigned)p < 5 ? kvi__prior_names[p] : "?"; }

static kvi_status kvi__add(kvi_params *p, const char *lname, const char *suffix, kvi_role role,
                           int ndim, int64_t d0, int64_t d1, int *idx) {
  char name[KVI_MAX_NAME];
  snprintf(name, sizeof name, "%s.%s", lname, suffix);
  int64_t shape[2] = {d0, d1};
  int have = kvi_params_find(p, name);
  if (have < 0) return kvi_params_add(p, name, role, ndim, shape, idx);
  /* a view of another net of the same model: shared when it has the same shape and role */
  const kvi_view *v = &p->views[have];
  if (v->role != role || v->ndim != ndim || v->shape[0] != d0 || (ndim > 1 && v->shape[1] != d1))
    return kvi_fail(KVI_ERR_ARG, "parameter '%s' exists with another shape or role", name);
  *idx = have;
  return KVI_OK;
}

kvi_status kvi_dense_declare(kvi_dense *l, kvi_params *p, const char *name, int n, int m,
                             kvi_family family, kvi_prior prior, double prior_var, bool bias) {
  if (!l || !p || !name) return kvi_fail(KVI_ERR_ARG, "dense_declare: NULL argument");
  if (n <= 0 || m <= 0)
    return kvi_fail(KVI_ERR_ARG, "dense layer '%s': sizes %d x %d must be positive", name, n, m);
  if ((unsigned)family > KVI_FAMILY_MNDIAG || (unsigned)prior > KVI_PRIOR_FIXED)
    return kvi_fail(KVI_ERR_ARG, "dense layer '%s': bad family or prior", name);
  if (family == KVI_FAMILY_POINT) prior = KVI_PRIOR_NONE;
  if (family != KVI_FAMILY_POINT && prior == KVI_PRIOR_NONE)
    return kvi_fail(KVI_ERR_ARG, "dense layer '%s': a %s posterior needs a prior", name,
                    kvi_family_name(family));
  if (prior == KVI_PRIOR_FIXED && !(prior_var > 0 && isfinite(prior_var)))
    return kvi_fail(KVI_ERR_ARG, "dense layer '%s': fixed prior variance %g must be positive", name,
                    prior_var);
  memset(l, 0, sizeof *l);
  snprintf(l->name, sizeof l->name, "%s", name);
  l->n = n, l->m = m, l->family = family, l->prior = prior, l->prior_var = prior_var;
  l->bias = bias;
  l->iA = l->iB = l->iS = l->ib = l->itau = l->igamma = l->ilogv = -1;
  kvi_status s = kvi__add(p, name, "M", KVI_ROLE_MEAN, 2, n, m, &l->iM);
  if (!s && (family == KVI_FAMILY_MN || family == KVI_FAMILY_MNDIAG)) {
    s = kvi__add(p, name, "A", KVI_ROLE_CHOL, 2, n, n, &l->iA);
    if (!s) s = kvi__add(p, name, "B", KVI_ROLE_CHOL, 2, m, m, &l->iB);
  }
  if (!s && family == KVI_FAMILY_DIAG)
    s = kvi__add(p, name, "log_sigma", KVI_ROLE_LOG_SIGMA, 2, n, m, &l->iS);
  if (!s && family == KVI_FAMILY_MNDIAG)
    s = kvi__add(p, name, "log_d", KVI_ROLE_LOG_DIAG, 2, n, m, &l->iS);
  if (!s && bias) s = kvi__add(p, name, "b", KVI_ROLE_BIAS, 1, m, 0, &l->ib);
  if (!s && prior == KVI_PRIOR_GROUP) {
    s = kvi__add(p, name, "log_tau", KVI_ROLE_PRIOR, 1, n, 0, &l->itau);
    if (!s) s = kvi__add(p, name, "log_gamma", KVI_ROLE_PRIOR, 1, m, 0, &l->igamma);
  }
  if (!s && prior == KVI_PRIOR_SCALAR)
    s = kvi__add(p, name, "log_prior_var", KVI_ROLE_PRIOR, 1, 1, 0, &l->ilogv);
  return s;
}

void kvi_dense_init(const kvi_dense *l, kvi_params *p, kvi_rng *rng, double gain,
                    double init_log_sigma) {
  int n = l->n, m = l->m;
  kvi_real *M = kvi_params_data(p, l->iM);
  kvi_rng_normal(rng, M, (size_t)n * m);
  kvi_real sd = (kvi_real)sqrt(gain / n);
  for (size_t i = 0; i < (size_t)n * m; i++) M[i] *= sd;
  double ls = init_log_sigma;
  if (l->family == KVI_FAMILY_MNDIAG) ls -= 0.5 * log(2.0); /* half the variance each */
  if (l->iA >= 0) {
    kvi_real *A = kvi_params_data(p, l->iA), *B = kvi_params_data(p, l->iB);
    memset(A, 0, sizeof(kvi_real) * (size_t)n * n);
    memset(B, 0, sizeof(kvi_real) * (size_t)m * m);
    for (int i = 0; i < n; i++) A[(size_t)i * n + i] = (kvi_real)(ls / 2);
    for (int j = 0; j < m; j++) B[(size_t)j * m + j] = (kvi_real)(ls / 2);
  }
  if (l->iS >= 0) {
    kvi_real *S = kvi_params_data(p, l->iS);
    /* DIAG stores log sigma; MN+DIAG stores log variance of the added diagonal */
    kvi_real v = (kvi_real)(l->family == KVI_FAMILY_DIAG ? init_log_sigma : 2 * ls);
    for (size_t i = 0; i < (size_t)n * m; i++) S[i] = v;
  }
  if (l->ib >= 0) memset(kvi_params_data(p, l->ib), 0, sizeof(kvi_real) * m);
  if (l->itau >= 0) {
    memset(kvi_params_data(p, l->itau), 0, sizeof(kvi_real) * n);
    memset(kvi_params_data(p, l->igamma), 0, sizeof(kvi_real) * m);
  }
  if (l->ilogv >= 0) kvi_params_data(p, l->ilogv)[0] = (kvi_real)log(gain / n);
}

static kvi_mn kvi__mn_view(const kvi_dense *l, const kvi_params *p) {
  kvi_mn q = {l->n, l->m, kvi_params_data(p, l->iM), kvi_params_data(p, l->iA),
              kvi_params_data(p, l->iB)};
  return q;
}
static kvi_mn_grad kvi__mn_grad(const kvi_dense *l, const kvi_params *p) {
  kvi_mn_grad g = {kvi_params_grad(p, l->iM), kvi_params_grad(p, l->iA), kvi_params_grad(p, l->iB)};
  return g;
}
static kvi_diag kvi__diag_view(const kvi_dense *l, const kvi_params *p) {
  kvi_diag q = {l->n, l->m, kvi_params_data(p, l->iM), kvi_params_data(p, l->iS)};
  return q;
}
static kvi_diag_grad kvi__diag_grad(const kvi_dense *l, const kvi_params *p) {
  kvi_diag_grad g = {kvi_params_grad(p, l->iM), kvi_params_grad(p, l->iS)};
  return g;
}
static kvi_mndiag kvi__mndiag_view(const kvi_dense *l, const kvi_params *p) {
  kvi_mndiag q = {kvi__mn_view(l, p), kvi_params_data(p, l->iS), l->slq};
  return q;
}
static kvi_mndiag_grad kvi__mndiag_grad(const kvi_dense *l, const kvi_params *p) {
  kvi_mndiag_grad g = {kvi__mn_grad(l, p), kvi_params_grad(p, l->iS)};
  return g;
}

size_t kvi_dense_ws_size(const kvi_dense *l, int batch) {
  switch (l->family) {
    case KVI_FAMILY_DIAG:
      return kvi_diag_lrt_ws_size(batch, l->n, l->m);
    case KVI_FAMILY_MN:
      return kvi_mn_lrt_ws_size(batch, l->n, l->m);
    case KVI_FAMILY_MNDIAG:
      return kvi_mndiag_lrt_ws_size(batch, l->n, l->m);
    default:
      return 64;
  }
}

size_t kvi_dense_noise_size(const kvi_dense *l, int batch) {
  size_t bm = (size_t)batch * l->m;
  switch (l->family) {
    case KVI_FAMILY_POINT:
      return 0;
    case KVI_FAMILY_MNDIAG:
      return 2 * bm;
    default:
      return bm;
  }
}

/* y += x over n elements (a bias row, a row of a column sum): vectorized, the same sums. */
static inline void kvi__add_row(kvi_real *restrict y, const kvi_real *restrict x, int n) {
#pragma omp simd
  for (int j = 0; j < n; j++) y[j] += x[j];
}

kvi_status kvi_dense_forward(kvi_real *Y, void *ws, const kvi_dense *l, const kvi_params *p,
                             const kvi_real *X, const kvi_real *eps, int batch) {
  if (!Y || !l || !p || !X || batch <= 0)
    return kvi_fail(KVI_ERR_ARG, "dense_forward: NULL argument or batch %d", batch);
  int n = l->n, m = l->m;
  kvi_status s = KVI_OK;
  if (!eps || l->family == KVI_FAMILY_POINT) {
    kvi_gemm(false, false, batch, m, n, 1, X, n, kvi_params_data(p, l->iM), m, 0, Y, m);
  } else if (l->family == KVI_FAMILY_DIAG) {
    kvi_diag q = kvi__diag_view(l, p);
    s = kvi_diag_lrt_forward(Y, ws, &q, X, eps, batch);
  } else if (l->family == KVI_FAMILY_MN) {
    kvi_mn q = kvi__mn_view(l, p);
    s = kvi_mn_lrt_forward(Y, ws, &q, X, eps, batch);
  } else {
    kvi_mndiag q = kvi__mndiag_view(l, p);
    s = kvi_mndiag_lrt_forward(Y, ws, &q, X, eps, eps + (size_t)batch * m, batch);
  }
  if (s) return s;
  if (l->ib >= 0) {
    const kvi_real *b = kvi_params_data(p, l->ib);
    if (kvi__fork((size_t)batch * m > (1u << 14))) {
#pragma omp parallel for schedule(static)
      for (int r = 0; r < batch; r++) kvi__add_row(Y + (size_t)r * m, b, m);
    } else {
      for (int r = 0; r < batch; r++) kvi__add_row(Y + (size_t)r * m, b, m);
    }
  }
  return KVI_OK;
}

kvi_status kvi_dense_backward(kvi_real *dX, kvi_params *p, const kvi_real *dY, void *ws,
                              const kvi_dense *l, const kvi_real *X, const kvi_real *eps,
                              int batch) {
  if (!p || !dY || !l || !X || batch <= 0)
    return kvi_fail(KVI_ERR_ARG, "dense_backward: NULL argument or batch %d", batch);
  int n = l->n, m = l->m;
  kvi_status s = KVI_OK;
  /* the point path and MN write dX; DIAG and MN+DIAG add into it */
  bool writes = !eps || l->family == KVI_FAMILY_POINT || l->family == KVI_FAMILY_MN;
  if (dX && !writes) memset(dX, 0, sizeof(kvi_real) * (size_t)batch * n);
  if (!eps || l->family == KVI_FAMILY_POINT) {
    const kvi_real *M = kvi_params_data(p, l->iM);
    kvi_real *dM = kvi_params_grad(p, l->iM);
    /* dM += X^T dY and dX = dY M^T: the same work, run side by side */
    const kvi_gemm_args gM = {true, false, n, m, batch, 1, X, n, dY, m, 1, dM, m},
                        gX = {false, true, batch, n, m, 1, dY, m, M, m, 0, dX, n};
    if (dX) {
      kvi_gemm_pair(&gM, &gX);
    } else {
      kvi_gemm(true, false, n, m, batch, 1, X, n, dY, m, 1, dM, m);
    }
  } else if (l->family == KVI_FAMILY_DIAG) {
    kvi_diag q = kvi__diag_view(l, p);
    kvi_diag_grad g = kvi__diag_grad(l, p);
    s = kvi_diag_lrt_backward(&g, dX, dY, ws, &q, X, eps, batch);
  } else if (l->family == KVI_FAMILY_MN) {
    kvi_mn q = kvi__mn_view(l, p);
    kvi_mn_grad g = kvi__mn_grad(l, p);
    s = kvi_mn_lrt_backward_set(&g, dX, dY, ws, &q, X, eps, batch);
  } else {
    kvi_mndiag q = kvi__mndiag_view(l, p);
    kvi_mndiag_grad g = kvi__mndiag_grad(l, p);
    s = kvi_mndiag_lrt_backward(&g, dX, dY, ws, &q, X, eps, eps + (size_t)batch * m, batch);
  }
  if (s) return s;
  if (l->ib >= 0) {
    kvi_real *db = kvi_params_grad(p, l->ib);
    /* columns split over the threads, each summed over the rows in order as on one thread */
    if (kvi__fork((size_t)batch * m > (1u << 14))) {
#pragma omp parallel
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int j0 = (int)((long)m * t / nt) & ~15,
                  j1 = t + 1 == nt ? m : (int)((long)m * (t + 1) / nt) & ~15;
        for (int r = 0; r < batch; r++) kvi__add_row(db + j0, dY + (size_t)r * m + j0, j1 - j0);
      }
    } else {
      for (int r = 0; r < batch; r++) kvi__add_row(db, dY + (size_t)r * m, m);
    }
  }
  return KVI_OK;
}

/* Sum over the matrix of S_ij = M_ij^2 + Var_ij, used for the scalar-prior gradient. */
static double kvi__second_moment_sum(const kvi_params *p, const kvi_dense *l) {
  int n = l->n, m = l->m;
  const kvi_real *M = kvi_params_data(p, l->iM);
  double s = 0;
  for (size_t i = 0; i < (size_t)n * m; i++) s += (double)M[i] * M[i];
  if (l->iA >= 0) {
    /* sum_ij U_ii V_jj = trace(U) trace(V) */
    double su = kvi_chol_trace(kvi_params_data(p, l->iA), n);
    double sv = kvi_chol_trace(kvi_params_data(p, l->iB), m);
    s += su * sv;
  }
  if (l->iS >= 0) {
    const kvi_real *S = kvi_params_data(p, l->iS);
    double f = l->family == KVI_FAMILY_DIAG ? 2.0 : 1.0; /* log sigma vs log variance */
    for (size_t i = 0; i < (size_t)n * m; i++) s += exp(f * S[i]);
  }
  return s;
}

kvi_status kvi_dense_kl(double *kl, kvi_params *p, const kvi_dense *l, kvi_real gscale) {
  if (!kl || !p || !l) return kvi_fail(KVI_ERR_ARG, "dense_kl: NULL argument");
  *kl = 0;
  if (l->family == KVI_FAMILY_POINT) return KVI_OK;
  kvi_real pv = 0;
  bool scalar = l->prior == KVI_PRIOR_FIXED || l->prior == KVI_PRIOR_SCALAR;
  if (l->prior == KVI_PRIOR_FIXED) pv = (kvi_real)l->prior_var;
  if (l->prior == KVI_PRIOR_SCALAR) pv = (kvi_real)exp(kvi_params_data(p, l->ilogv)[0]);
  const kvi_real *lt = l->itau >= 0 ? kvi_params_data(p, l->itau) : NULL;
  const kvi_real *lg = l->igamma >= 0 ? kvi_params_data(p, l->igamma) : NULL;
  kvi_real *glt = l->itau >= 0 ? kvi_params_grad(p, l->itau) : NULL;
  kvi_real *glg = l->igamma >= 0 ? kvi_params_grad(p, l->igamma) : NULL;
  kvi_status s;
  if (l->family == KVI_FAMILY_DIAG) {
    kvi_diag q = kvi__diag_view(l, p);
    kvi_diag_grad g = kvi__diag_grad(l, p);
    if (l->prior == KVI_PRIOR_ARD)
      s = kvi_diag_kl_ard(kl, &q, &g, gscale);
    else if (l->prior == KVI_PRIOR_GROUP)
      s = kvi_diag_kl_group(kl, &q, lt, lg, &g, glt, glg, gscale);
    else
      s = kvi_diag_kl_gauss(kl, &q, &pv, true, &g, gscale);
  } else if (l->family == KVI_FAMILY_MN) {
    kvi_mn q = kvi__mn_view(l, p);
    kvi_mn_grad g = kvi__mn_grad(l, p);
    if (l->prior == KVI_PRIOR_ARD)
      s = kvi_mn_kl_ard(kl, &q, &g, gscale);
    else if (l->prior == KVI_PRIOR_GROUP)
      s = kvi_mn_kl_group(kl, &q, lt, lg, &g, glt, glg, gscale);
    else
      s = kvi_mn_kl_gauss(kl, &q, &pv, true, &g, gscale);
  } else {
    kvi_mndiag q = kvi__mndiag_view(l, p);
    kvi_mndiag_grad g = kvi__mndiag_grad(l, p);
    if (l->prior == KVI_PRIOR_ARD)
      s = kvi_mndiag_kl_ard(kl, &q, &g, gscale);
    else if (l->prior == KVI_PRIOR_GROUP)
      s = kvi_mndiag_kl_group(kl, &q, lt, lg, &g, glt, glg, gscale);
    else
      s = kvi_mndiag_kl_gauss(kl, &q, &pv, true, &g, gscale);
  }
  if (s) return s;
  (void)scalar;
  if (l->prior == KVI_PRIOR_SCALAR) {
    /* KL = 1/2 [sum S / v - nm + nm log v - logdet q]  =>  dKL/dlog v = 1/2 [nm - sum S / v] */
    double nm = (double)l->n * l->m;
    double S = kvi__second_moment_sum(p, l);
    kvi_params_grad(p, l->ilogv)[0] += (kvi_real)(gscale * 0.5 * (nm - S / pv));
  }
  return KVI_OK;
}

kvi_status kvi_dense_prior_update(kvi_params *p, const kvi_dense *l, kvi_arena *scratch) {
  if (l->prior != KVI_PRIOR_GROUP) return KVI_OK;
  size_t nm = (size_t)l->n * l->m;
  kvi_arena_mark mk = kvi_arena_get_mark(scratch);
  kvi_real *S = kvi_arena_reals(scratch, nm);
  if (!S) return KVI_ERR_NOMEM;
  kvi_status s = kvi_dense_marginal_var(S, p, l);
  const kvi_real *M = kvi_params_data(p, l->iM);
  for (size_t i = 0; i < nm; i++) S[i] += M[i] * M[i];
  if (!s)
    s = kvi_group_ard_update(kvi_params_data(p, l->itau), kvi_params_data(p, l->igamma), S, l->n,
                             l->m, 3);
  kvi_arena_reset(scratch, mk);
  return s;
}

kvi_status kvi_dense_marginal_var(kvi_real *out, const kvi_params *p, const kvi_dense *l) {
  size_t nm = (size_t)l->n * l->m;
  switch (l->family) {
    case KVI_FAMILY_POINT:
      memset(out, 0, nm * sizeof *out);
      return KVI_OK;
    case KVI_FAMILY_DIAG: {
      const kvi_real *S = kvi_params_data(p, l->iS);
      for (size_t i = 0; i < nm; i++) out[i] = (kvi_real)exp(2.0 * S[i]);
      return KVI_OK;
    }
    case KVI_FAMILY_MN: {
      kvi_mn q = kvi__mn_view(l, p);
      return kvi_mn_marginal_var(out, &q);
    }
    default: {
      kvi_mndiag q = kvi__mndiag_view(l, p);
      return kvi_mndiag_marginal_var(out, &q);
    }
  }
}

kvi_status kvi_dense_log_alpha(kvi_real *out, const kvi_params *p, const kvi_dense *l) {
  switch (l->family) {
    case KVI_FAMILY_POINT:
      for (size_t i = 0; i < (size_t)l->n * l->m; i++) out[i] = (kvi_real)-1e30;
      return KVI_OK;
    case KVI_FAMILY_DIAG: {
      kvi_diag q = kvi__diag_view(l, p);
      return kvi_diag_log_alpha(out, &q);
    }
    case KVI_FAMILY_MN: {
      kvi_mn q = kvi__mn_view(l, p);
      return kvi_mn_log_alpha(out, &q);
    }
    default: {
      kvi_mndiag q = kvi__mndiag_view(l, p);
      return kvi_mndiag_log_alpha(out, &q);
    }
  }
}

size_t kvi_dense_param_count(const kvi_dense *l) {
  size_t n = (size_t)l->n, m = (size_t)l->m, c = n * m;
  if (l->family == KVI_FAMILY_DIAG) c += n * m;
  if (l->family == KVI_FAMILY_MN || l->family == KVI_FAMILY_MNDIAG)
    c += n * (n + 1) / 2 + m * (m + 1) / 2;
  if (l->family == KVI_FAMILY_MNDIAG) c += n * m;
  if (l->bias) c += m;
  return c;
}

/* ---- the dense kind of the layer interface (kronvi/layer.h) ------------------------------- */
static int kvi__dense_match(const char *token, const kvi_shape *in) {
  return !in->image && token[0] >= '0' && token[0] <= '9';
}

static kvi_status kvi__dense_create(kvi_layer *L, const kvi_layer_args *a) {
  char *end;
  long m = strtol(a->token, &end, 10);
  if (*end)
    return kvi_fail(KVI_ERR_ARG, "unexpected '%s' in '%s' (a dense layer is just its size)", end,
                    a->token);
  if (m <= 0 || m > 1000000)
    return kvi_fail(KVI_ERR_ARG, "dense size '%s' outside [1, 1000000]", a->token);
  kvi_dense *d = calloc(1, sizeof *d);
  if (!d) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  L->state = d;
  kvi_status s = kvi_dense_declare(d, a->params, a->name, kvi_shape_size(a->in), (int)m, a->family,
                                   a->prior, a->prior_var, a->bias);
  L->out = (kvi_shape){1, 1, (int)m, false};
  return s;
}

static void kvi__dense_init(const kvi_layer *L, kvi_params *p, kvi_rng *rng, double gain,
                            double init_log_sigma) {
  kvi_dense_init(L->state, p, rng, gain, init_log_sigma);
}
static size_t kvi__dense_ws(const kvi_layer *L, int batch) {
  return kvi_dense_ws_size(L->state, batch);
}
static size_t kvi__dense_noise(const kvi_layer *L, int batch) {
  return kvi_dense_noise_size(L->state, batch);
}
/* eps1 (B, m), then MN+DIAG's eps2 (B, m) */
static int kvi__dense_noise_parts(const kvi_layer *L) {
  return ((const kvi_dense *)L->state)->family == KVI_FAMILY_MNDIAG ? 2 : 1;
}
static kvi_status kvi__dense_fwd(const kvi_layer *L, const kvi_layer_call *c) {
  return kvi_dense_forward(c->Y, c->ws, L->state, c->params, c->X, c->eps, c->batch);
}
static kvi_status kvi__dense_bwd(const kvi_layer *L, const kvi_layer_call *c) {
  kvi_status s = kvi_layer_capture(L, c, c->X, c->dY, c->batch);
  if (!s) s = kvi_dense_backward(c->dX, c->params, c->dY, c->ws, L->state, c->X, c->eps, c->batch);
  return s;
}
static kvi_dense *kvi__dense_weights(const kvi_layer *L) { return L->state; }

const kvi_layer_ops kvi_dense_ops = {
    .kind = "dense",
    .prefix = "fc",
    .match = kvi__dense_match,
    .create = kvi__dense_create,
    .init = kvi__dense_init,
    .ws_size = kvi__dense_ws,
    .noise_size = kvi__dense_noise,
    .noise_parts = kvi__dense_noise_parts,
    .forward = kvi__dense_fwd,
    .backward = kvi__dense_bwd,
    .weights = kvi__dense_weights,
    .kl = kvi_layer_weights_kl,
    .rop_forward = kvi__dense_rop_fwd,
    .rop_backward = kvi__dense_rop_bwd,
};
