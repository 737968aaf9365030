/* Classic test problems for the solvers (kronvi optimize; docs/curv.md, "Test problems"), each
 * an objective (kronvi/objective.h) with exact Hessian and Gauss-Newton products and diag(G):
 *  - chained Rosenbrock, f = sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 = sum of squared
 *    residuals r = (10 (x_{i+1} - x_i^2), 1 - x_i): G = 2 J^T J; f* = 0 at x = 1;
 *  - the quadratic 1/2 (x - x*)^T A (x - x*), A = Q diag(lambda) Q^T with lambda log-spaced in
 *    [1, cond] and Q the Gram-Schmidt orthonormalization of a Gaussian matrix: G = H = A, f* = 0;
 *  - logistic regression, f = (1/N) sum_i [log(1 + e^{z_i}) - y_i z_i] + mu/2 ||w||^2,
 *    z_i = x_i . w + bias: G = H = X^T diag(s (1 - s)) X / N + mu I; f* from Newton's method. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/objective.h"

/* The functions read the point through obj.x, which a caller may point at its own buffer (the
 * parameter block of an optimizer) after copying the starting point there. */
struct kvi_problem {
  kvi_problem_config c;
  kvi_objective obj;
  int n;
  kvi_real *x;
  double *A, *xstar; /* quadratic */
  double *z, *s;     /* logistic regression: z = X w + b, s = sigmoid(z) of the last eval */
  double fstar;
};

static const char *const kvi__problem_names[] = {"rosenbrock", "quadratic", "logreg"};

kvi_status kvi_problem_parse(kvi_problem_kind *k, const char *s) {
  for (int i = 0; i < 3; i++)
    if (s && !strcmp(s, kvi__problem_names[i])) {
      *k = (kvi_problem_kind)i;
      return KVI_OK;
    }
  return kvi_fail(KVI_ERR_ARG, "unknown problem '%s' (expected rosenbrock, quadratic or logreg)",
                  s ? s : "(null)");
}

const char *kvi_problem_name(kvi_problem_kind k) {
  return (unsigned)k < 3 ? kvi__problem_names[k] : "?";
}

/* ---- Rosenbrock ---------------------------------------------------------------------------- */
static kvi_status kvi__rosen_eval(void *u, double *f, kvi_real *g) {
  const kvi_problem *P = u;
  const kvi_real *x = P->obj.x;
  double s = 0;
  if (g) memset(g, 0, (size_t)P->n * sizeof *g);
  for (int i = 0; i + 1 < P->n; i++) {
    const double a = x[i + 1] - (double)x[i] * x[i], b = 1 - (double)x[i];
    s += 100 * a * a + b * b;
    if (g) g[i] += (kvi_real)(-400 * x[i] * a - 2 * b), g[i + 1] += (kvi_real)(200 * a);
  }
  *f = s;
  return KVI_OK;
}

static kvi_status kvi__rosen_hvp(void *u, const kvi_real *v, kvi_real *out) {
  const kvi_problem *P = u;
  const kvi_real *x = P->obj.x;
  memset(out, 0, (size_t)P->n * sizeof *out);
  for (int i = 0; i + 1 < P->n; i++) {
    const double hii = 1200.0 * x[i] * x[i] - 400.0 * x[i + 1] + 2, hij = -400.0 * x[i];
    out[i] += (kvi_real)(hii * v[i] + hij * v[i + 1]);
    out[i + 1] += (kvi_real)(hij * v[i] + 200.0 * v[i + 1]);
  }
  return KVI_OK;
}

static kvi_status kvi__rosen_gvp(void *u, const kvi_real *v, kvi_real *out) {
  const kvi_problem *P = u;
  const kvi_real *x = P->obj.x;
  memset(out, 0, (size_t)P->n * sizeof *out);
  for (int i = 0; i + 1 < P->n; i++) { /* J rows (-20 x_i, 10) and (-1, 0); G = 2 J^T J */
    const double t = -20.0 * x[i] * v[i] + 10.0 * v[i + 1];
    out[i] += (kvi_real)(2 * (-20.0 * x[i] * t) + 2.0 * v[i]);
    out[i + 1] += (kvi_real)(20 * t);
  }
  return KVI_OK;
}

static kvi_status kvi__rosen_diag(void *u, kvi_real *d) {
  const kvi_problem *P = u;
  memset(d, 0, (size_t)P->n * sizeof *d);
  for (int i = 0; i + 1 < P->n; i++)
    d[i] += (kvi_real)(800.0 * P->obj.x[i] * P->obj.x[i] + 2), d[i + 1] += 200;
  return KVI_OK;
}

/* ---- quadratic ----------------------------------------------------------------------------- */
static kvi_status kvi__quad_eval(void *u, double *f, kvi_real *g) {
  const kvi_problem *P = u;
  const int n = P->n;
  double s = 0;
  for (int i = 0; i < n; i++) {
    double ai = 0;
    for (int j = 0; j < n; j++) ai += P->A[(size_t)i * n + j] * (P->obj.x[j] - P->xstar[j]);
    s += 0.5 * (P->obj.x[i] - P->xstar[i]) * ai;
    if (g) g[i] = (kvi_real)ai;
  }
  *f = s;
  return KVI_OK;
}

static kvi_status kvi__quad_hvp(void *u, const kvi_real *v, kvi_real *out) {
  const kvi_problem *P = u;
  for (int i = 0; i < P->n; i++) {
    double s = 0;
    for (int j = 0; j < P->n; j++) s += P->A[(size_t)i * P->n + j] * v[j];
    out[i] = (kvi_real)s;
  }
  return KVI_OK;
}

static kvi_status kvi__quad_diag(void *u, kvi_real *d) {
  const kvi_problem *P = u;
  for (int i = 0; i < P->n; i++) d[i] = (kvi_real)P->A[(size_t)i * P->n + i];
  return KVI_OK;
}

/* A = Q diag(lambda) Q^T: Q by modified Gram-Schmidt on a Gaussian matrix (columns). */
static kvi_status kvi__quad_build(kvi_problem *P) {
  const int n = P->n;
  double *Q = malloc((size_t)n * n * sizeof *Q);
  P->A = calloc((size_t)n * n, sizeof *P->A), P->xstar = malloc((size_t)n * sizeof *P->xstar);
  if (!Q || !P->A || !P->xstar) {
    free(Q);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for the quadratic (dimension %d)", n);
  }
  kvi_rng r = kvi_rng_stream(P->c.seed, 0x9ad);
  kvi_rng_normal_f64(&r, Q, (size_t)n * n);
  kvi_rng_normal_f64(&r, P->xstar, (size_t)n);
  for (int j = 0; j < n; j++) { /* column j of Q: Q[i * n + j] */
    for (int k = 0; k < j; k++) {
      double d = 0;
      for (int i = 0; i < n; i++) d += Q[(size_t)i * n + j] * Q[(size_t)i * n + k];
      for (int i = 0; i < n; i++) Q[(size_t)i * n + j] -= d * Q[(size_t)i * n + k];
    }
    double nr = 0;
    for (int i = 0; i < n; i++) nr += Q[(size_t)i * n + j] * Q[(size_t)i * n + j];
    nr = sqrt(nr);
    for (int i = 0; i < n; i++) Q[(size_t)i * n + j] /= nr;
  }
  for (int k = 0; k < n; k++) {
    const double lam = n > 1 ? pow(P->c.cond, (double)k / (n - 1)) : 1;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++)
        P->A[(size_t)i * n + j] += lam * Q[(size_t)i * n + k] * Q[(size_t)j * n + k];
  }
  free(Q);
  return KVI_OK;
}

/* ---- logistic regression ------------------------------------------------------------------- */
static double kvi__lr_value(kvi_problem *P, const double *w, double *g) {
  const int d = P->c.d, n = P->n;
  const int64_t N = P->c.rows;
  double f = 0;
  if (g) memset(g, 0, (size_t)n * sizeof *g);
  for (int64_t i = 0; i < N; i++) {
    const kvi_real *xi = P->c.X + (size_t)i * d;
    double z = w[d];
    for (int j = 0; j < d; j++) z += xi[j] * w[j];
    const double sg = z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
    f += (z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))) - P->c.y[i] * z;
    P->z[i] = z, P->s[i] = sg;
    if (!g) continue;
    const double e = (sg - P->c.y[i]) / N;
    for (int j = 0; j < d; j++) g[j] += e * xi[j];
    g[d] += e;
  }
  f /= N;
  for (int j = 0; j < n; j++) {
    f += 0.5 * P->c.l2 * w[j] * w[j];
    if (g) g[j] += P->c.l2 * w[j];
  }
  return f;
}

static kvi_status kvi__lr_eval(void *u, double *f, kvi_real *g) {
  kvi_problem *P = u;
  double *w = calloc((size_t)P->n, sizeof *w), *gd = g ? malloc((size_t)P->n * sizeof *gd) : NULL;
  if (!w || (g && !gd)) {
    free(w), free(gd);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  for (int j = 0; j < P->n; j++) w[j] = P->obj.x[j];
  *f = kvi__lr_value(P, w, gd);
  for (int j = 0; g && j < P->n; j++) g[j] = (kvi_real)gd[j];
  free(w), free(gd);
  return KVI_OK;
}

/* H v = X^T (s (1 - s) (X v)) / N + mu v. */
static kvi_status kvi__lr_hvp(void *u, const kvi_real *v, kvi_real *out) {
  const kvi_problem *P = u;
  const int d = P->c.d, n = P->n;
  const int64_t N = P->c.rows;
  double *acc = calloc((size_t)n, sizeof *acc);
  if (!acc) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  const kvi_real *w = P->obj.x;
  for (int64_t i = 0; i < N; i++) { /* s at the current point (a trial may have moved P->s) */
    const kvi_real *xi = P->c.X + (size_t)i * d;
    double t = v[d], z = w[d];
    for (int j = 0; j < d; j++) t += xi[j] * v[j], z += xi[j] * w[j];
    const double sg = z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
    t *= sg * (1 - sg) / N;
    for (int j = 0; j < d; j++) acc[j] += t * xi[j];
    acc[d] += t;
  }
  for (int j = 0; j < n; j++) out[j] = (kvi_real)(acc[j] + P->c.l2 * v[j]);
  free(acc);
  return KVI_OK;
}

static kvi_status kvi__lr_diag(void *u, kvi_real *dg) {
  const kvi_problem *P = u;
  const int d = P->c.d;
  for (int j = 0; j <= d; j++) dg[j] = (kvi_real)P->c.l2;
  double f;
  kvi_status st = kvi__lr_eval((void *)P, &f, NULL); /* s at the current point */
  if (st) return st;
  for (int64_t i = 0; i < P->c.rows; i++) {
    const double t = P->s[i] * (1 - P->s[i]) / P->c.rows;
    for (int j = 0; j < d; j++)
      dg[j] += (kvi_real)(t * P->c.X[(size_t)i * d + j] * P->c.X[(size_t)i * d + j]);
    dg[d] += (kvi_real)t;
  }
  return KVI_OK;
}

/* f* by Newton's method in double: H = [X 1]^T S [X 1] / N + mu I by one syrk a step. */
static kvi_status kvi__lr_fstar(kvi_problem *P) {
  const int d = P->c.d, n = P->n;
  const int64_t N = P->c.rows;
  double *w = calloc((size_t)n, sizeof *w), *g = malloc((size_t)n * sizeof *g);
  double *H = malloc((size_t)n * n * sizeof *H), *Xs = malloc((size_t)N * n * sizeof *Xs);
  kvi_status s = w && g && H && Xs ? KVI_OK : kvi_fail(KVI_ERR_NOMEM, "out of memory");
  double f = 0;
  for (int it = 0; !s && it < 100; it++) {
    f = kvi__lr_value(P, w, g);
    double gn = 0;
    for (int j = 0; j < n; j++) gn += g[j] * g[j];
    if (sqrt(gn) < 1e-13) break;
    for (int64_t i = 0; i < N; i++) {
      const double r = sqrt(P->s[i] * (1 - P->s[i]) / N);
      for (int j = 0; j < d; j++) Xs[(size_t)i * n + j] = r * P->c.X[(size_t)i * d + j];
      Xs[(size_t)i * n + d] = r;
    }
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, n, (int)N, 1.0, Xs, n, 0.0, H, n);
    for (int j = 0; j < n; j++) H[(size_t)j * n + j] += P->c.l2;
    if ((s = kvi_potrf_f64(n, H, n)) != KVI_OK) break;
    cblas_dtrsv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, n, H, n, g, 1);
    cblas_dtrsv(CblasRowMajor, CblasLower, CblasTrans, CblasNonUnit, n, H, n, g, 1);
    for (int j = 0; j < n; j++) w[j] -= g[j];
  }
  P->fstar = f;
  free(w), free(g), free(H), free(Xs);
  return s;
}

/* ---- creation ------------------------------------------------------------------------------ */
void kvi_problem_free(kvi_problem *p) {
  if (!p) return;
  kvi_free(p->x);
  free(p->A), free(p->xstar), free(p->z), free(p->s);
  free(p);
}

static kvi_status kvi__problem_check(const kvi_problem_config *c) {
  if (c->kind == KVI_PROBLEM_LOGREG) {
    if (!c->X || !c->y || c->rows < 1 || c->d < 1 || !(c->l2 >= 0))
      return kvi_fail(KVI_ERR_ARG, "logreg: needs data (rows %lld, features %d) and l2 >= 0",
                      (long long)c->rows, c->d);
    for (int64_t i = 0; i < c->rows; i++)
      if (c->y[i] != 0 && c->y[i] != 1)
        return kvi_fail(KVI_ERR_ARG, "logreg: label %d of row %lld is not 0 or 1", c->y[i],
                        (long long)i);
    return KVI_OK;
  }
  if ((unsigned)c->kind > KVI_PROBLEM_LOGREG) return kvi_fail(KVI_ERR_ARG, "unknown problem");
  if (c->dim < 2 || c->dim > 20000)
    return kvi_fail(KVI_ERR_ARG, "%s: dimension %d outside [2, 20000]", kvi_problem_name(c->kind),
                    c->dim);
  if (c->kind == KVI_PROBLEM_QUADRATIC && !(c->cond >= 1 && c->cond <= 1e12))
    return kvi_fail(KVI_ERR_ARG, "quadratic: condition number %g outside [1, 1e12]", c->cond);
  return KVI_OK;
}

kvi_status kvi_problem_create(kvi_problem **out, const kvi_problem_config *c) {
  if (!out || !c) return kvi_fail(KVI_ERR_ARG, "problem_create: NULL argument");
  *out = NULL;
  kvi_status s = kvi__problem_check(c);
  if (s) return s;
  kvi_problem *P = calloc(1, sizeof *P);
  if (!P) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  P->c = *c;
  P->n = c->kind == KVI_PROBLEM_LOGREG ? c->d + 1 : c->dim;
  P->x = kvi_alloc((size_t)P->n * sizeof *P->x);
  if (!P->x) s = kvi_fail(KVI_ERR_NOMEM, "out of memory");
  kvi_objective *o = &P->obj;
  o->n = (size_t)P->n, o->x = P->x, o->user = P;
  if (!s && c->kind == KVI_PROBLEM_ROSENBROCK) {
    for (int i = 0; i < P->n; i++) P->x[i] = (kvi_real)(i % 2 ? 1.0 : -1.2);
    o->eval = kvi__rosen_eval, o->hvp = kvi__rosen_hvp, o->gvp = kvi__rosen_gvp;
    o->diag = kvi__rosen_diag;
  } else if (!s && c->kind == KVI_PROBLEM_QUADRATIC) {
    s = kvi__quad_build(P);
    o->eval = kvi__quad_eval, o->hvp = o->gvp = kvi__quad_hvp, o->diag = kvi__quad_diag;
  } else if (!s) {
    P->z = malloc((size_t)c->rows * sizeof *P->z), P->s = malloc((size_t)c->rows * sizeof *P->s);
    s = P->z && P->s ? kvi__lr_fstar(P) : kvi_fail(KVI_ERR_NOMEM, "out of memory");
    o->eval = kvi__lr_eval, o->hvp = o->gvp = kvi__lr_hvp, o->diag = kvi__lr_diag;
  }
  if (s) {
    kvi_problem_free(P);
    return s;
  }
  o->id = 1;
  *out = P;
  return KVI_OK;
}

kvi_objective *kvi_problem_objective(kvi_problem *p) { return p ? &p->obj : NULL; }

double kvi_problem_fstar(const kvi_problem *p) {
  return !p ? NAN : p->c.kind == KVI_PROBLEM_LOGREG ? p->fstar : 0;
}
