/* Built-in test problems for the structured NGD solvers (docs/geom.md section 6): the chained
 * Rosenbrock function and the Dixon-Price function, both non-convex and non-separable with
 * tridiagonal Hessians (given dense), minimum 0. */
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

kvi_lie_problem kvi_lie_problem_rosenbrock(int dim) {
  kvi_lie_problem p = {dim, kvi__rb_f,   kvi__rb_fg, kvi__rb_hess, (void *)(intptr_t)dim,
                       0,   "rosenbrock"};
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

kvi_lie_problem kvi_lie_problem_dixon_price(int dim) {
  kvi_lie_problem p = {dim, kvi__dp_f,    kvi__dp_fg, kvi__dp_hess, (void *)(intptr_t)dim,
                       0,   "dixon-price"};
  return p;
}
