/* Built-in test problems for the structured NGD solvers (docs/geom.md section 6): the chained
 * Rosenbrock function and the Dixon-Price function, both non-convex and non-separable with
 * tridiagonal Hessians (given dense, and as O(dim) Hessian-vector products and diagonals),
 * minimum 0. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kronvi/geom.h"

/* The dimension rides in the user pointer as an integer: no allocation, nothing to free. */
static int kvi__dim(void *user) { return (int)(intptr_t)user; }

static double kvi__rb_fg(const double *x, double *g, void *user) {
  const int d = kvi__dim(user);
  double f = 0;
  if (g) memset(g, 0, (size_t)d * sizeof *g);
  for (int i = 0; i + 1 < d; i++) {
    const double a = x[i + 1] - x[i] * x[i], b = 1 - x[i];
    f += 100 * a * a + b * b;
    if (g) {
      g[i] += -400 * x[i] * a - 2 * b;
      g[i + 1] += 200 * a;
    }
  }
  return f;
}

static double kvi__rb_f(const double *x, void *user) { return kvi__rb_fg(x, NULL, user); }

static void kvi__rb_hess(const double *x, double *H, void *user) {
  const int d = kvi__dim(user);
  memset(H, 0, (size_t)d * d * sizeof *H);
  for (int i = 0; i + 1 < d; i++) {
    H[(size_t)i * d + i] += 1200 * x[i] * x[i] - 400 * x[i + 1] + 2;
    H[(size_t)i * d + i + 1] += -400 * x[i];
    H[(size_t)(i + 1) * d + i] += -400 * x[i];
    H[(size_t)(i + 1) * d + i + 1] += 200;
  }
}

/* Hv = H v and d = diag H over the same terms as kvi__rb_hess (either may be NULL). */
static void kvi__rb_terms(const double *x, const double *v, double *Hv, double *d, int n) {
  if (Hv) memset(Hv, 0, (size_t)n * sizeof *Hv);
  if (d) memset(d, 0, (size_t)n * sizeof *d);
  for (int i = 0; i + 1 < n; i++) {
    const double a = 1200 * x[i] * x[i] - 400 * x[i + 1] + 2, b = -400 * x[i];
    if (Hv) {
      Hv[i] += a * v[i] + b * v[i + 1];
      Hv[i + 1] += b * v[i] + 200 * v[i + 1];
    }
    if (d) d[i] += a, d[i + 1] += 200;
  }
}

static void kvi__rb_hvp(const double *x, const double *v, double *Hv, void *user) {
  kvi__rb_terms(x, v, Hv, NULL, kvi__dim(user));
}

static void kvi__rb_hdiag(const double *x, double *d, void *user) {
  kvi__rb_terms(x, NULL, NULL, d, kvi__dim(user));
}

kvi_lie_problem kvi_lie_problem_rosenbrock(int dim) {
  kvi_lie_problem p = {dim, kvi__rb_f,    kvi__rb_fg,  kvi__rb_hess, (void *)(intptr_t)dim,
                       0,   "rosenbrock", kvi__rb_hvp, kvi__rb_hdiag};
  return p;
}

/* (x_0 - 1)^2 + sum_{i>=1} (i + 1) (2 x_i^2 - x_{i-1})^2 (0-based i). */
static double kvi__dp_fg(const double *x, double *g, void *user) {
  const int d = kvi__dim(user);
  double f = (x[0] - 1) * (x[0] - 1);
  if (g) {
    memset(g, 0, (size_t)d * sizeof *g);
    g[0] = 2 * (x[0] - 1);
  }
  for (int i = 1; i < d; i++) {
    const double c = i + 1, r = 2 * x[i] * x[i] - x[i - 1];
    f += c * r * r;
    if (g) {
      g[i] += 8 * c * r * x[i];
      g[i - 1] += -2 * c * r;
    }
  }
  return f;
}

static double kvi__dp_f(const double *x, void *user) { return kvi__dp_fg(x, NULL, user); }

static void kvi__dp_hess(const double *x, double *H, void *user) {
  const int d = kvi__dim(user);
  memset(H, 0, (size_t)d * d * sizeof *H);
  H[0] = 2;
  for (int i = 1; i < d; i++) {
    const double c = i + 1, r = 2 * x[i] * x[i] - x[i - 1];
    H[(size_t)i * d + i] += c * (32 * x[i] * x[i] + 8 * r);
    H[(size_t)(i - 1) * d + i - 1] += 2 * c;
    H[(size_t)i * d + i - 1] += -8 * c * x[i];
    H[(size_t)(i - 1) * d + i] += -8 * c * x[i];
  }
}

/* Hv = H v and d = diag H over the same terms as kvi__dp_hess (either may be NULL). */
static void kvi__dp_terms(const double *x, const double *v, double *Hv, double *d, int n) {
  if (Hv) memset(Hv, 0, (size_t)n * sizeof *Hv), Hv[0] = 2 * v[0];
  if (d) memset(d, 0, (size_t)n * sizeof *d), d[0] = 2;
  for (int i = 1; i < n; i++) {
    const double c = i + 1, r = 2 * x[i] * x[i] - x[i - 1];
    const double a = c * (32 * x[i] * x[i] + 8 * r), b = -8 * c * x[i];
    if (Hv) {
      Hv[i] += a * v[i] + b * v[i - 1];
      Hv[i - 1] += 2 * c * v[i - 1] + b * v[i];
    }
    if (d) d[i] += a, d[i - 1] += 2 * c;
  }
}

static void kvi__dp_hvp(const double *x, const double *v, double *Hv, void *user) {
  kvi__dp_terms(x, v, Hv, NULL, kvi__dim(user));
}

static void kvi__dp_hdiag(const double *x, double *d, void *user) {
  kvi__dp_terms(x, NULL, NULL, d, kvi__dim(user));
}

kvi_lie_problem kvi_lie_problem_dixon_price(int dim) {
  kvi_lie_problem p = {dim, kvi__dp_f,     kvi__dp_fg,  kvi__dp_hess, (void *)(intptr_t)dim,
                       0,   "dixon-price", kvi__dp_hvp, kvi__dp_hdiag};
  return p;
}
