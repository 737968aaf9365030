/* The single-precision fast paths: the vectorizable exp / log / expm1 / sincos of
 * src/core/vmath.h against libm in double (relative error bounds, special values), and the
 * float Box-Muller normals of kvi_rng_normal: identical with 1 and 2 threads (a fill large enough
 * for the parallel path), identical when a stream is drawn in pieces of multiples of 4, a partial
 * last block, finite values and the first moments. */
#include <string.h>

#include "core/vmath.h"
#include "kvi_test.h"

static double rel(double got, double want) {
  return fabs(got - want) / (fabs(want) > 1e-30 ? fabs(want) : 1e-30);
}

static void test_functions(void) {
  double e_exp = 0, e_log = 0, e_em1 = 0, e_sc = 0;
  for (int i = 0; i <= 200000; i++) {
    float x = -87.0f + 175.0f * (float)i / 200000.0f;
    double ex = exp((double)x);
    if (ex < 3.0e38) e_exp = fmax(e_exp, rel(kvi__vexpf(x), ex));
    float y = ldexpf(1.0f + (float)i / 200000.0f, (i % 250) - 125);
    e_log = fmax(e_log, fabs(kvi__vlogf(y) - log((double)y)) / fmax(1.0, fabs(log((double)y))));
    float z = -20.0f + 40.0f * (float)i / 200000.0f;
    if (z != 0) e_em1 = fmax(e_em1, rel(kvi__vexpm1f(z), expm1((double)z)));
    float u = (float)i / 200000.0f, s, c;
    kvi__vsincos2pif(&s, &c, u);
    double a = 6.283185307179586 * (double)u;
    e_sc = fmax(e_sc, fmax(fabs(s - sin(a)), fabs(c - cos(a))));
  }
  printf("max errors: exp %.2g (rel), log %.2g, expm1 %.2g (rel), sincos %.2g (abs)\n", e_exp,
         e_log, e_em1, e_sc);
  CHECK(e_exp < 4e-7);
  CHECK(e_log < 3e-7);
  CHECK(e_em1 < 4e-7);
  CHECK(e_sc < 5e-7);
  /* small arguments of expm1 keep their relative accuracy */
  CHECK(rel(kvi__vexpm1f(1e-6f), expm1(1e-6)) < 1e-6);
  CHECK(rel(kvi__vexpm1f(-3e-4f), expm1(-3e-4)) < 1e-6);
  /* special values */
  CHECK(kvi__vlogf(0.0f) == -INFINITY);
  CHECK(isnan(kvi__vlogf(-1.0f)) && isnan(kvi__vlogf(NAN)) && isnan(kvi__vlogf(-INFINITY)));
  CHECK(kvi__vlogf(INFINITY) == INFINITY);
  CHECK(rel(kvi__vlogf(1e-40f), log(1e-40f)) < 1e-6); /* denormal */
  CHECK(kvi__vexpf(INFINITY) == INFINITY && kvi__vexpf(100.0f) == INFINITY);
  CHECK(kvi__vexpf(-INFINITY) == 0 && kvi__vexpf(-200.0f) == 0);
  CHECK(isnan(kvi__vexpf(NAN)) && isnan(kvi__vexpm1f(NAN)));
  CHECK(kvi__vexpm1f(-INFINITY) == -1.0f);
  CHECK(rel(kvi__vexpf(-95.0f), exp(-95.0)) < 1e-2); /* denormal result */
}

static void test_normals(void) {
  const size_t N = (size_t)5 << 20; /* > 4 * 2^18: the parallel path with 2 threads */
  float *a = kvi_alloc(N * sizeof *a), *b = kvi_alloc(N * sizeof *b);
  kvi_set_threads(1);
  kvi_rng r1 = kvi_rng_stream(11, 3);
  kvi_rng_normal(&r1, a, N);
  kvi_set_threads(2);
  kvi_rng r2 = kvi_rng_stream(11, 3);
  kvi_rng_normal(&r2, b, N);
  kvi_set_threads(1);
  CHECK(memcmp(a, b, N * sizeof *a) == 0);
  CHECK(r1.ctr == r2.ctr && r1.ctr == N / 4);
  double s1 = 0, s2 = 0, tail = 0;
  int finite = 1;
  for (size_t k = 0; k < N; k++) {
    finite &= isfinite(a[k]) != 0;
    s1 += a[k], s2 += (double)a[k] * a[k], tail += fabs(a[k]) > 3;
  }
  double mean = s1 / N, var = s2 / N - mean * mean, pt = tail / N;
  printf("normals: mean %.2e var %.5f P(|z| > 3) %.5f\n", mean, var, pt);
  CHECK(finite);
  CHECK(fabs(mean) < 2e-3);
  CHECK(fabs(var - 1) < 3e-3);
  CHECK(fabs(pt - 0.0026998) < 3e-4);
  /* pieces of multiples of 4 continue the stream; a partial block takes its block's first values */
  float c[300], d[300], e[10];
  kvi_rng r3 = kvi_rng_stream(4, 4), r4 = kvi_rng_stream(4, 4), r5 = kvi_rng_stream(4, 4);
  kvi_rng_normal(&r3, c, 300);
  kvi_rng_normal(&r4, d, 8);
  kvi_rng_normal(&r4, d + 8, 256);
  kvi_rng_normal(&r4, d + 264, 36);
  kvi_rng_normal(&r5, e, 10);
  CHECK(memcmp(c, d, sizeof c) == 0);
  CHECK(memcmp(c, e, sizeof e) == 0);
  CHECK(r5.ctr == 3);
  kvi_free(a);
  kvi_free(b);
}

int main(void) {
  test_functions();
  test_normals();
  TEST_MAIN_END();
}
