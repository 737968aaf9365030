/* Structured NGD solvers over a Gaussian N(mu, (B B^T)^-1) with B in a matrix Lie group
 * (docs/geom.md section 6): the estimators of g_mu and X = 2 B^-1 g_Sigma B^-T (at the mean,
 * Price, Stein, reparameterization, function values), one step, and the minimization loop. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geom/geom_internal.h"

kvi_lie_opts kvi_lie_opts_default(kvi_lie_group g) {
  kvi_lie_opts o;
  memset(&o, 0, sizeof o);
  o.group = g;
  o.est = KVI_LIE_EST_MEAN;
  o.beta = 0.5;
  o.gamma = 1;
  o.samples = 10;
  o.max_iter = 10000;
  o.tol = 1e-6;
  o.max_norm = 1;
  o.seed = 1;
  return o;
}

kvi_status kvi_lie_start(const kvi_lie_problem *pb, kvi_lie_opts *o, const double *mu, double *B) {
  if (!pb || !o || !mu || !B) return kvi_fail(KVI_ERR_ARG, "lie_start: NULL argument");
  const kvi_lie_group *g = &o->group;
  kvi_status s = kvi_lie_group_check(g);
  if (s) return s;
  const int p = g->p;
  if (p != pb->dim)
    return kvi_fail(KVI_ERR_ARG, "lie_start: group of size %d, problem of %d", p, pb->dim);
  double s0 = 1;
  if (o->est == KVI_LIE_EST_VALUES) { /* xNES: no entropy term, utilities, small B steps */
    o->gamma = 0, o->beta = 1, o->beta_b = 0.5 * (9 + 3 * log(p)) / (5 * p * sqrt(p));
    o->samples = 4 + (int)(3 * log(p));
    s0 = 4; /* initial standard deviation 1/2 */
  } else {
    o->gamma = 1, o->beta = 1, o->beta_b = 0.1;
    if (pb->hess || pb->hdiag) { /* S0 on the scale of the starting Hessian */
      double *H = malloc((pb->hess ? (size_t)p * p : (size_t)p) * sizeof *H);
      if (!H) return kvi_fail(KVI_ERR_NOMEM, "lie_start: out of memory");
      if (pb->hess) {
        pb->hess(mu, H, pb->user);
        for (int i = 0; i < p; i++) s0 = fmax(s0, fabs(H[(size_t)i * p + i]));
      } else {
        pb->hdiag(mu, H, pb->user);
        for (int i = 0; i < p; i++) s0 = fmax(s0, fabs(H[i]));
      }
      free(H);
      if (!isfinite(s0))
        return kvi_fail(KVI_ERR_NONFINITE, "lie_start: the Hessian at the start is not finite");
    }
  }
  if (g->kind == KVI_LIE_KRON) { /* B1 (x) B2 = sqrt(s0) I */
    const int p1 = g->p1, p2 = g->p2;
    memset(B, 0, ((size_t)p1 * p1 + (size_t)p2 * p2) * sizeof *B);
    for (int i = 0; i < p1; i++) B[(size_t)i * p1 + i] = pow(s0, 0.25);
    for (int i = 0; i < p2; i++) B[(size_t)p1 * p1 + (size_t)i * p2 + i] = pow(s0, 0.25);
  } else {
    memset(B, 0, (size_t)p * p * sizeof *B);
    for (int i = 0; i < p; i++) B[(size_t)i * p + i] = sqrt(s0);
  }
  return KVI_OK;
}

/* ---- B^-1 as an operator (kvi__rop, geom_internal.h) ---------------------------------------- */
static void kvi__rop_free(kvi__rop *o) {
  free(o->R);
  if (!o->pats) kvi__pat_free(&o->t), kvi__pat_free(&o->u);
}

/* R = B^-1; c: the run's patterns (kvi__pats_make) or NULL to build them. */
static kvi_status kvi__rop_init(kvi__rop *o, const kvi_lie_group *g, const double *B,
                                const kvi__pats *c) {
  memset(o, 0, sizeof *o);
  const int p = g->p;
  o->p = p, o->g = *g, o->pats = c;
  const kvi__sg sg = kvi__sg_of(g, 0), s1 = kvi__sg_of(g, 1), s2 = kvi__sg_of(g, 2);
  o->dense = g->kind == KVI_LIE_KRON || !kvi__lie_sparse(&sg);
  const int q = g->kind == KVI_LIE_KRON ? (g->p1 > g->p2 ? g->p1 : g->p2) : p;
  o->R = malloc(((size_t)p * p + 3 * (size_t)q * q) * sizeof *o->R);
  int *ipiv = malloc((size_t)q * sizeof *ipiv);
  bool ok = o->R && ipiv;
  if (ok && !o->dense && c)
    o->t = c->t, o->u = c->u;
  else if (ok && !o->dense)
    ok = kvi__pat_make(&o->t, &sg, false) && kvi__pat_make(&o->u, &sg, true);
  double *w = ok ? o->R + (size_t)p * p : NULL;
  if (ok && g->kind != KVI_LIE_KRON) ok = kvi__lie_inverse(&sg, B, o->R, w, ipiv);
  if (ok && g->kind == KVI_LIE_KRON) { /* R = R1 (x) R2 */
    const int p1 = g->p1, p2 = g->p2;
    double *R1 = w + (size_t)q * q, *R2 = R1 + (size_t)q * q;
    ok = kvi__lie_inverse(&s1, B, R1, w, ipiv) &&
         kvi__lie_inverse(&s2, B + (size_t)p1 * p1, R2, w, ipiv);
    for (int i = 0; ok && i < p1; i++)
      for (int j = 0; j < p2; j++)
        for (int k = 0; k < p1; k++)
          for (int l = 0; l < p2; l++)
            o->R[((size_t)i * p2 + j) * p + (size_t)k * p2 + l] =
                R1[(size_t)i * p1 + k] * R2[(size_t)j * p2 + l];
  }
  free(ipiv);
  if (ok) return KVI_OK;
  kvi__rop_free(o);
  return kvi_fail(KVI_ERR_LINALG, "lie: B is singular or not finite (or out of memory)");
}

void kvi__rop_mv(const kvi__rop *o, const double *x, double *y, bool trans) {
  if (o->dense)
    kvi__dgemm(trans, false, o->p, 1, o->p, 1, o->R, x, 0, y);
  else
    kvi__pat_matvec(&o->t, o->R, x, y, trans);
}

/* X = R H R^T (where it matters); T: p^2 */
static void kvi__rop_congruence(const kvi__rop *o, const double *H, double *X, double *T) {
  const int p = o->p;
  if (!o->dense) {
    kvi__pat_congruence(&o->t, &o->u, o->R, H, X, T);
    return;
  }
  kvi__dgemm(false, false, p, p, p, 1, o->R, H, 0, T);
  kvi__dgemm(false, true, p, p, p, 1, T, o->R, 0, X);
  kvi__dsym(p, X);
}

/* X += c a b^T (where it matters) */
static void kvi__rop_outer(const kvi__rop *o, double *X, double c, const double *a,
                           const double *b) {
  const int p = o->p;
  for (int i = 0; i < p; i++) {
    const double ca = c * a[i];
    if (o->dense)
      for (int j = 0; j < p; j++) X[(size_t)i * p + j] += ca * b[j];
    else
      for (int e = o->u.rp[i]; e < o->u.rp[i + 1]; e++)
        X[(size_t)i * p + o->u.ci[e]] += ca * b[o->u.ci[e]];
  }
}

/* Rank-based utilities for minimization (best first gets the most negative weight): the xNES
 * weights u_i = max(0, log(n/2 + 1) - log(i)) / sum - 1/n, negated. */
static void kvi__utilities(int n, const double *fv, double *u) {
  int *idx = malloc((size_t)n * sizeof *idx);
  if (!idx) return;
  for (int i = 0; i < n; i++) idx[i] = i;
  for (int i = 1; i < n; i++) /* insertion sort by value: n is small */
    for (int j = i; j > 0 && fv[idx[j]] < fv[idx[j - 1]]; j--) {
      int t = idx[j];
      idx[j] = idx[j - 1], idx[j - 1] = t;
    }
  double sum = 0;
  for (int r = 0; r < n; r++) sum += fmax(0, log(0.5 * n + 1) - log(r + 1.0));
  for (int r = 0; r < n; r++)
    u[idx[r]] = -(fmax(0, log(0.5 * n + 1) - log(r + 1.0)) / sum - 1.0 / n);
  free(idx);
}

/* out = B v (p), B of the group (a Kronecker group: (B1 (x) B2) v). */
static void kvi__b_apply(const kvi_lie_group *g, const double *B, const double *v, double *out) {
  const int p = g->p;
  if (g->kind != KVI_LIE_KRON) {
    kvi__dgemm(false, false, p, 1, p, 1, B, v, 0, out);
    return;
  }
  const int p1 = g->p1, p2 = g->p2;
  const double *B1 = B, *B2 = B + (size_t)p1 * p1;
  for (int i = 0; i < p1; i++) /* (B1 (x) B2) vec(V) = vec(B1 V B2^T), V (p1 x p2) row-major */
    for (int j = 0; j < p2; j++) {
      double t = 0;
      for (int k = 0; k < p1; k++)
        for (int l = 0; l < p2; l++)
          t += B1[(size_t)i * p1 + k] * v[(size_t)k * p2 + l] * B2[(size_t)j * p2 + l];
      out[(size_t)i * p2 + j] = t;
    }
}

/* The sampling loop of kvi__estimate: E (S x p) gets the draws eps, w + 2p the mean gradient,
 * and the Hessian term H (dense path, T: p^2 scratch), X (the HVP path with the plan pl; Stein,
 * reparameterization) or fv (values). w: 5p. */
static void kvi__estimate_loop(const kvi_lie_problem *pb, kvi_lie_estimator est, int S,
                               const double *mu, const kvi__rop *R, const kvi__hvp_plan *pl,
                               kvi_rng *rng, double *X, double *H, double *T, double *w, double *fv,
                               double *E, kvi_lie_report *r, double *f_mu) {
  const int p = pb->dim;
  const size_t pp = (size_t)p * p;
  double *x = w, *gr = x + p, *g = gr + p, *rg = g + p;
  for (int s = 0; s < S; s++) {
    double *eps = E + (size_t)s * p;
    if (est != KVI_LIE_EST_MEAN) {
      kvi_rng_normal_f64(rng, eps, (size_t)p);
      kvi__rop_mv(R, eps, x, true); /* w = mu + R^T eps */
      for (int i = 0; i < p; i++) x[i] += mu[i];
    } else {
      memcpy(x, mu, (size_t)p * sizeof *x);
    }
    if (est == KVI_LIE_EST_VALUES) {
      fv[s] = pb->f(x, pb->user), r->fevals++;
      continue;
    }
    const double fx = pb->fg(x, gr, pb->user);
    r->fevals++, r->gevals++;
    if (est == KVI_LIE_EST_MEAN) *f_mu = fx;
    for (int i = 0; i < p; i++) g[i] += gr[i] / S;
    if (pl) {
      kvi__hvp_add(pb, pl, R, x, 1.0 / S, X, rg, r);
    } else if (H) {
      pb->hess(x, T, pb->user), r->hevals++;
      for (size_t i = 0; i < pp; i++) H[i] += T[i] / S;
    } else { /* eps (R grad)^T: an estimate of R E[hessian] R^T (Stein's lemma) */
      kvi__rop_mv(R, gr, rg, false);
      kvi__rop_outer(R, X, 1.0 / S, eps, rg);
    }
  }
}

/* The estimates (G28-G31) with R = B^-1 given. Writes Rg = R g_mu (the whitened gradient) and X
 * (where it matters: the group's pattern and its transpose; the HVP path: what kappa reads);
 * *f_mu gets f(mu) when the estimator evaluated it (at the mean), else NAN. use_hvp: MEAN and
 * PRICE from pb->hvp even with pb->hess (without pb->hess they take it anyway). */
static kvi_status kvi__estimate(const kvi_lie_problem *pb, kvi_lie_estimator est, int samples,
                                bool use_hvp, double gamma, const double *mu, const kvi__rop *R,
                                kvi_rng *rng, double *Rg, double *X, kvi_lie_report *r,
                                double *f_mu) {
  const int p = pb->dim, S = est == KVI_LIE_EST_MEAN ? 1 : samples;
  const size_t pp = (size_t)p * p;
  const bool hess = est == KVI_LIE_EST_MEAN || est == KVI_LIE_EST_PRICE;
  const bool hvp = hess && (use_hvp || !pb->hess);
  if (S < 1) return kvi_fail(KVI_ERR_ARG, "lie_estimate: %d samples", S);
  if (hvp && !pb->hvp)
    return kvi_fail(KVI_ERR_ARG, "lie_estimate: this estimator needs pb->hess or pb->hvp");
  if (est != KVI_LIE_EST_VALUES && !pb->fg)
    return kvi_fail(KVI_ERR_UNSUPPORTED, "lie_estimate: this estimator needs the gradient");
  const size_t hp = hess && !hvp ? pp : 0; /* the dense Hessian and a product */
  double *w = malloc((2 * hp + (size_t)S * p + 5 * (size_t)p + 2 * (size_t)S) * sizeof *w);
  kvi__hvp_plan pl;
  const bool planned = hvp && kvi__hvp_plan_make(&pl, R, pb->hdiag != NULL);
  if (!w || (hvp && !planned)) {
    free(w);
    if (planned) kvi__hvp_plan_free(&pl);
    return kvi_fail(KVI_ERR_NOMEM, "lie_estimate: out of memory");
  }
  double *H = w, *T = H + hp, *E = T + hp, *v = E + (size_t)S * p, *fv = v + 5 * (size_t)p;
  double *u = fv + S, *g = v + 2 * (size_t)p;
  memset(hp ? H : X, 0, pp * sizeof *H);
  memset(g, 0, (size_t)p * sizeof *g);
  *f_mu = NAN;
  kvi__estimate_loop(pb, est, S, mu, R, hvp ? &pl : NULL, rng, X, hp ? H : NULL, T, v, fv, E, r,
                     f_mu);
  if (est == KVI_LIE_EST_VALUES) { /* Rg = sum u eps, X = sum u eps eps^T (sum u = 0) */
    kvi__utilities(S, fv, u);
    memset(Rg, 0, (size_t)p * sizeof *Rg);
    for (int s = 0; s < S; s++) {
      const double *eps = E + (size_t)s * p;
      for (int i = 0; i < p; i++) Rg[i] += u[s] * eps[i];
      kvi__rop_outer(R, X, u[s], eps, eps);
    }
  } else {
    kvi__rop_mv(R, g, Rg, false);
    if (hvp)
      kvi__hvp_finish(&pl, X);
    else if (hess)
      kvi__rop_congruence(R, H, X, T);
    else if (est == KVI_LIE_EST_STEIN)
      kvi__dsym(p, X);
  }
  for (int i = 0; i < p; i++) X[(size_t)i * p + i] -= gamma;
  if (planned) kvi__hvp_plan_free(&pl);
  free(w);
  return KVI_OK;
}

kvi_status kvi_lie_estimate(const kvi_lie_problem *pb, kvi_lie_estimator est, int samples,
                            double gamma, const double *mu, const double *B, const kvi_lie_group *g,
                            kvi_rng *rng, double *g_mu, double *X, kvi_lie_report *r) {
  if (!pb || !mu || !B || !g || !rng || !g_mu || !X || !r)
    return kvi_fail(KVI_ERR_ARG, "lie_estimate: NULL argument");
  kvi_status s = kvi_lie_group_check(g);
  if (s) return s;
  if (g->p != pb->dim)
    return kvi_fail(KVI_ERR_SHAPE, "lie_estimate: group %d, problem %d", g->p, pb->dim);
  const int p = g->p;
  double *Rg = malloc(2 * (size_t)p * sizeof *Rg), fmu;
  if (!Rg) return kvi_fail(KVI_ERR_NOMEM, "lie_estimate: out of memory");
  kvi__rop R;
  s = kvi__rop_init(&R, g, B, NULL);
  if (!s) {
    s = kvi__estimate(pb, est, samples, false, gamma, mu, &R, rng, Rg, X, r, &fmu);
    kvi__rop_free(&R);
  }
  if (!s) { /* g_mu = B (R g_mu) */
    memcpy(Rg + p, Rg, (size_t)p * sizeof *Rg);
    kvi__b_apply(g, B, Rg + p, g_mu);
  }
  free(Rg);
  return s;
}

/* Partial traces of the p x p matrix X, p = p1 p2: X1 = tr_2 X (p1 x p1), X2 = tr_1 X. */
static void kvi__partial_traces(int p1, int p2, const double *X, double *X1, double *X2) {
  const int p = p1 * p2;
  memset(X1, 0, (size_t)p1 * p1 * sizeof *X1);
  memset(X2, 0, (size_t)p2 * p2 * sizeof *X2);
  for (int i = 0; i < p1; i++)
    for (int k = 0; k < p1; k++)
      for (int j = 0; j < p2; j++)
        X1[(size_t)i * p1 + k] += X[((size_t)i * p2 + j) * p + (size_t)k * p2 + j];
  for (int j = 0; j < p2; j++)
    for (int l = 0; l < p2; l++)
      for (int i = 0; i < p1; i++)
        X2[(size_t)j * p2 + l] += X[((size_t)i * p2 + j) * p + (size_t)i * p2 + l];
}

static kvi_status kvi__update_b(const kvi_lie_group *g, double *B, const double *X, double beta_b,
                                kvi_lie_safety *safe, const kvi__pats *c) {
  if (g->kind != KVI_LIE_KRON) return kvi__lie_update(g, B, X, beta_b, safe, c);
  const int p1 = g->p1, p2 = g->p2;
  double *X1 = malloc(((size_t)p1 * p1 + (size_t)p2 * p2) * sizeof *X1);
  if (!X1) return kvi_fail(KVI_ERR_NOMEM, "lie: out of memory");
  kvi__partial_traces(p1, p2, X, X1, X1 + (size_t)p1 * p1);
  kvi_status s =
      kvi_lie_update_kron(g, B, B + (size_t)p1 * p1, X1, X1 + (size_t)p1 * p1, beta_b, safe);
  free(X1);
  return s;
}

/* mu <- mu - beta R^T Rg; B <- B h(beta_b C (.) kappa(X)) (with R's patterns, if any). */
static kvi_status kvi__step(const kvi_lie_group *g, double *mu, double *B, const kvi__rop *R,
                            const double *Rg, const double *X, double beta, double beta_b,
                            kvi_lie_safety *safe) {
  const int p = g->p;
  double *d = malloc((size_t)p * sizeof *d);
  if (!d) return kvi_fail(KVI_ERR_NOMEM, "lie: out of memory");
  kvi__rop_mv(R, Rg, d, true);
  bool ok = kvi__dfinite(d, (size_t)p);
  if (ok)
    for (int i = 0; i < p; i++) mu[i] -= beta * d[i];
  free(d);
  if (!ok) {
    if (safe) safe->rejected++;
    return kvi_fail(KVI_ERR_NONFINITE, "lie: the mean's step is not finite (rejected)");
  }
  return kvi__update_b(g, B, X, beta_b, safe, R->pats);
}

kvi_status kvi_lie_step(const kvi_lie_group *g, double *mu, double *B, const double *g_mu,
                        const double *X, double beta, double beta_b, kvi_lie_safety *safe) {
  if (!g || !mu || !B || !g_mu || !X) return kvi_fail(KVI_ERR_ARG, "lie_step: NULL argument");
  kvi_status s = kvi_lie_group_check(g);
  if (s) return s;
  double *Rg = malloc((size_t)g->p * sizeof *Rg);
  if (!Rg) return kvi_fail(KVI_ERR_NOMEM, "lie_step: out of memory");
  kvi__rop R;
  s = kvi__rop_init(&R, g, B, NULL);
  if (!s) {
    kvi__rop_mv(&R, g_mu, Rg, false);
    s = kvi__step(g, mu, B, &R, Rg, X, beta, beta_b > 0 ? beta_b : beta, safe);
    kvi__rop_free(&R);
  }
  free(Rg);
  return s;
}

/* The B^-1 operator R at B (with the run's patterns c) and the estimates at (mu, B); *fmu = f(mu)
 * (evaluated when the estimator did not). R is released on failure. */
static kvi_status kvi__estimate_at(const kvi_lie_problem *pb, const kvi_lie_opts *o,
                                   const double *B, const double *mu, kvi__rop *R, kvi_rng *rng,
                                   double *Rg, double *X, kvi_lie_report *r, double *fmu,
                                   const kvi__pats *c) {
  kvi_status s = kvi__rop_init(R, &o->group, B, c);
  if (s) return s;
  s = kvi__estimate(pb, o->est, o->samples, o->use_hvp, o->gamma, mu, R, rng, Rg, X, r, fmu);
  if (s) {
    kvi__rop_free(R);
    return s;
  }
  if (isnan(*fmu)) *fmu = pb->f(mu, pb->user), r->fevals++; /* the stopping test */
  return KVI_OK;
}

kvi_status kvi_lie_minimize(const kvi_lie_problem *pb, const kvi_lie_opts *o, double *mu, double *B,
                            kvi_lie_report *r) {
  if (!pb || !o || !mu || !B || !r) return kvi_fail(KVI_ERR_ARG, "lie_minimize: NULL argument");
  const kvi_lie_group *g = &o->group;
  kvi_status s = kvi_lie_group_check(g);
  if (s) return s;
  if (g->p != pb->dim || !pb->f)
    return kvi_fail(KVI_ERR_ARG, "lie_minimize: group of size %d, problem of %d (or no f)", g->p,
                    pb->dim);
  memset(r, 0, sizeof *r);
  const int p = g->p;
  const size_t pp = (size_t)p * p,
               nb = g->kind == KVI_LIE_KRON ? (size_t)g->p1 * g->p1 + (size_t)g->p2 * g->p2 : pp;
  double *w = malloc((pp + 2 * (size_t)p + nb) * sizeof *w);
  const bool hvp =
      (o->est == KVI_LIE_EST_MEAN || o->est == KVI_LIE_EST_PRICE) && (o->use_hvp || !pb->hess);
  kvi__pats pats; /* the group's patterns and the update's scratch, once per run */
  if (!kvi__pats_make(&pats, g, hvp) || !w) {
    free(w), kvi__pats_free(&pats);
    return kvi_fail(KVI_ERR_NOMEM, "lie_minimize: out of memory");
  }
  double *X = w, *Rg = X + pp, *mu0 = Rg + p, *B0 = mu0 + p;
  kvi__rop R;
  kvi_rng rng = kvi_rng_stream(o->seed, 0x11e);
  kvi_lie_safety safe = {o->max_norm, 0, 0};
  const double t0 = kvi_time_now(), beta_b = o->beta_b > 0 ? o->beta_b : o->beta;
  const bool check = isfinite(pb->f_star);
  double shrink = 1; /* backtracking factor of the steps after a non-finite point */
  bool have_prev = false;
  double f_prev = NAN;
  r->f = NAN;
  for (r->iters = 0; r->iters < o->max_iter; r->iters++) {
    if (o->max_seconds > 0 && kvi_time_now() - t0 > o->max_seconds) break;
    double fmu;
    if ((s = kvi__estimate_at(pb, o, B, mu, &R, &rng, Rg, X, r, &fmu, &pats)) != KVI_OK) break;
    /* a blow-up: not finite, or more than ten times worse than the last point (monotone: worse
     * at all); the steps shrink down to 1e-12 of their size, then a worse point is kept */
    const bool nonfinite = !isfinite(fmu) || !kvi__dfinite(X, pp) || !kvi__dfinite(Rg, (size_t)p);
    const bool worse = have_prev && fmu > f_prev + (o->monotone ? 0 : 10 * (fabs(f_prev) + 1));
    if ((nonfinite || worse) && have_prev && shrink > 1e-12) { /* back, half the step */
      memcpy(mu, mu0, (size_t)p * sizeof *mu);
      memcpy(B, B0, nb * sizeof *B);
      shrink *= 0.5, safe.damped++;
      kvi__rop_free(&R);
      if ((s = kvi__estimate_at(pb, o, B, mu, &R, &rng, Rg, X, r, &fmu, &pats)) != KVI_OK) break;
    } else if (nonfinite) {
      kvi__rop_free(&R);
      s = kvi_fail(KVI_ERR_NONFINITE,
                   "lie_minimize: f or its estimates are not finite at the mean");
      break;
    } else {
      shrink = fmin(1, 1.25 * shrink);
    }
    r->f = fmu;
    if (o->progress && o->progress(r, mu, B, o->progress_user)) {
      kvi__rop_free(&R);
      break;
    }
    if (check && fmu - pb->f_star < o->tol) {
      r->converged = true;
      kvi__rop_free(&R);
      break;
    }
    memcpy(mu0, mu, (size_t)p * sizeof *mu);
    memcpy(B0, B, nb * sizeof *B);
    have_prev = true, f_prev = fmu;
    s = kvi__step(g, mu, B, &R, Rg, X, shrink * o->beta, shrink * beta_b, &safe);
    kvi__rop_free(&R);
    if (s == KVI_ERR_NONFINITE) shrink *= 0.5; /* the mean's step was rejected */
    if (s == KVI_ERR_LINALG || s == KVI_ERR_NONFINITE) s = KVI_OK; /* B's step was rejected */
    if (s) break;
  }
  r->seconds = kvi_time_now() - t0;
  r->damped = safe.damped, r->rejected = safe.rejected;
  free(w), kvi__pats_free(&pats);
  return s;
}
