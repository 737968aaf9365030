/* Minimal test harness: each test file is one executable that returns non-zero on failure.
 * CHECK(cond) and CHECK_NEAR(a, b, tol) print both values and file:line and count failures;
 * TEST_MAIN_END returns the failure count. */
#ifndef KVI_TEST_H
#define KVI_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/core.h"

static int kvi_test_failures = 0;
static int kvi_test_checks = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    kvi_test_checks++;                                                         \
    if (!(cond)) {                                                             \
      kvi_test_failures++;                                                     \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

/* |a - b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol)                                                                      \
  do {                                                                                             \
    double kvi__a = (double)(a), kvi__b = (double)(b), kvi__t = (double)(tol);                     \
    kvi_test_checks++;                                                                             \
    double kvi__s = fabs(kvi__b) > 1.0 ? fabs(kvi__b) : 1.0;                                       \
    if (!(fabs(kvi__a - kvi__b) <= kvi__t * kvi__s)) {                                             \
      kvi_test_failures++;                                                                         \
      fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.12g vs %s = %.12g (tol %.3g)\n", __FILE__, \
              __LINE__, #a, kvi__a, #b, kvi__b, kvi__t);                                           \
    }                                                                                              \
  } while (0)

/* Expects status s == want; prints the library's message otherwise. */
#define CHECK_STATUS(s, want)                                                              \
  do {                                                                                     \
    kvi_status kvi__s = (s);                                                               \
    kvi_test_checks++;                                                                     \
    if (kvi__s != (want)) {                                                                \
      kvi_test_failures++;                                                                 \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__, __LINE__, #s, \
              kvi_status_name(kvi__s), kvi_status_name(want), kvi_last_error());           \
    }                                                                                      \
  } while (0)

#define CHECK_OK(s) CHECK_STATUS(s, KVI_OK)

/* A failure status with a non-empty message. */
#define CHECK_FAILS(s)                                                                           \
  do {                                                                                           \
    kvi_clear_error();                                                                           \
    kvi_status kvi__s = (s);                                                                     \
    kvi_test_checks++;                                                                           \
    if (kvi__s == KVI_OK || kvi_last_error()[0] == 0) {                                          \
      kvi_test_failures++;                                                                       \
      fprintf(stderr, "%s:%d: %s should fail with a message (got %s)\n", __FILE__, __LINE__, #s, \
              kvi_status_name(kvi__s));                                                          \
    }                                                                                            \
  } while (0)

#define TEST_MAIN_END()                                                                 \
  do {                                                                                  \
    printf("%s: %d checks, %d failed\n", __FILE__, kvi_test_checks, kvi_test_failures); \
    return kvi_test_failures ? 1 : 0;                                                   \
  } while (0)

/* Directory for temporary files of this test run (created by CMake), or /tmp. */
static inline const char *kvi_test_dir(void) {
  const char *d = getenv("KVI_TEST_DIR");
  return d && d[0] ? d : "/tmp";
}

/* Central-difference gradient check of f: R^n -> R (double) against an analytic gradient g.
 * Returns the max relative error max_i |g_i - fd_i| / max(1e-6 + |fd_i|, atol_scale). */
typedef double (*kvi_test_fn)(const double *x, void *ctx);
static inline double kvi_test_fd_maxerr(kvi_test_fn f, void *ctx, double *x, const double *g, int n,
                                        double h) {
  double worst = 0;
  for (int i = 0; i < n; i++) {
    double xi = x[i];
    x[i] = xi + h;
    double fp = f(x, ctx);
    x[i] = xi - h;
    double fm = f(x, ctx);
    x[i] = xi;
    double fd = (fp - fm) / (2 * h);
    double err = fabs(fd - g[i]) / (fabs(fd) > 1.0 ? fabs(fd) : 1.0);
    if (err > worst) worst = err;
  }
  return worst;
}
#endif
