/* Vectorizable single-precision elementary functions for the hot elementwise loops (private).
 *
 * glibc's logf / expf / expm1f / sincosf are scalar calls that stop GCC from vectorizing a loop
 * (libmvec is only used under -ffast-math, which kronvi does not use). These are branch-free
 * inline versions built from integer bit operations, polynomials and selects, so that a loop
 * marked `#pragma omp simd` vectorizes with the baseline instruction set. Accuracy: about 1 ulp
 * (logf, Cephes/FreeBSD polynomials), 2 ulp (expf), a few ulp (expm1f, sincos) on their domains.
 * Special values follow C: log(0) = -inf, log(x < 0) = log(NaN) = NaN, log(inf) = inf,
 * exp(x > 88.72) = inf, exp(x < -103.3) = 0, exp(NaN) = NaN.
 * The results are deterministic (no dependence on vector width: every lane does the same ops).
 * Every select (?:) picks between values computed on all paths; GCC if-converts them (and so
 * vectorizes the loops) under -fno-trapping-math, which CMakeLists.txt sets. */
#ifndef KRONVI_CORE_VMATH_H
#define KRONVI_CORE_VMATH_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* KVI__HOT marks a hot elementwise kernel: on x86-64 GCC builds it gets an AVX-512 clone
 * (x86-64-v4: 16 lanes) and an AVX2 clone (8 lanes) next to the baseline SSE2 one, picked at load
 * time (ifunc), so the `omp simd` loops run as wide as the CPU allows without -march flags
 * (kvi_simd_isa() names the clone that runs). Floating-point contraction stays off (-std=c11),
 * so an element's result is the same in every clone; only the order of a vectorized sum (4, 8
 * or 16 partial sums) differs between machines. Define KVI_NO_CLONES to build without. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && \
    !defined(KVI_NO_CLONES)
#define KVI__HOT __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define KVI__HOT
#endif

static inline uint32_t kvi__f2u(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}
static inline float kvi__u2f(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* log(x): x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)); log(1 + f) = 2 atanh(s), s = f/(2+f)
 * with the FreeBSD e_logf.c minimax polynomial. Denormal x is scaled by 2^23 first. */
static inline float kvi__vlogf(float x) {
  const float ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f;
  const float Lg1 = 0.66666662693f, Lg2 = 0.40000972152f, Lg3 = 0.28498786688f,
              Lg4 = 0.24279078841f;
  int sub = x < FLT_MIN;
  float xs = x * (sub ? 8388608.0f : 1.0f);
  uint32_t ix = kvi__f2u(xs) + (0x3f800000u - 0x3f3504f3u);
  int k = (int)(ix >> 23) - 0x7f - (sub ? 23 : 0);
  float f = kvi__u2f((ix & 0x007fffffu) + 0x3f3504f3u) - 1.0f;
  float s = f / (2.0f + f), z = s * s, w = z * z;
  float R = z * (Lg1 + w * Lg3) + w * (Lg2 + w * Lg4);
  float hfsq = 0.5f * f * f, dk = (float)k;
  float r = s * (hfsq + R) + dk * ln2_lo - hfsq + f + dk * ln2_hi;
  /* x > 0 finite: r; +inf: inf; 0: -inf; negative or NaN: NaN */
  float special = x > 0 ? x : (x == 0 ? -INFINITY : NAN);
  return (x > 0 && x <= FLT_MAX) ? r : special;
}

/* exp(x) = 2^n e^r, n = round(x / ln 2) (by adding 1.5 * 2^23), |r| <= ln2/2, Cephes expf
 * polynomial; 2^n is applied as 2^(n/2) 2^(n - n/2) so that every n in [-150, 128] works without
 * selects: x is clamped to [-104, 88.73], which gives 0 below about -103.3 (denormals above),
 * +inf above 88.72 and NaN for NaN. */
static inline float kvi__vexpf(float x) {
  const float log2e = 1.44269504088896341f, c1 = 0.693359375f, c2 = -2.12194440e-4f;
  const float magic = 12582912.0f; /* 1.5 * 2^23 */
  float xc = x < -104.0f ? -104.0f : x;
  xc = xc > 88.73f ? 88.73f : xc;
  float t = xc * log2e + magic;
  int n = (int)(kvi__f2u(t) - kvi__f2u(magic)); /* the integer in the low mantissa bits */
  float fn = t - magic;
  float r = xc - fn * c1 - fn * c2, r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  int n1 = n / 2, n2 = n - n1;
  return (p * r2 + r + 1.0f) * kvi__u2f((uint32_t)(n1 + 127) << 23) *
         kvi__u2f((uint32_t)(n2 + 127) << 23);
}

/* exp(x) - 1 without cancellation: Taylor series to x^8 for |x| < 0.5 (error < 5e-9 absolute
 * there), exp(x) - 1 elsewhere. */
static inline float kvi__vexpm1f(float x) {
  float t = 1.0f / 40320;
  t = t * x + 1.0f / 5040;
  t = t * x + 1.0f / 720;
  t = t * x + 1.0f / 120;
  t = t * x + 1.0f / 24;
  t = t * x + 1.0f / 6;
  t = t * x + 0.5f;
  float small = (t * x) * x + x;
  float big = kvi__vexpf(x) - 1.0f;
  return fabsf(x) < 0.5f ? small : big;
}

/* sin(2 pi u), cos(2 pi u) for u in [0, 1]: u = (q + f) / 4 with q = round(4u), |f| <= 1/2, so
 * the angle is q pi/2 + phi with |phi| <= pi/4 (Cephes sinf / cosf polynomials), rotated by the
 * quadrant q with selects. */
static inline void kvi__vsincos2pif(float *s_out, float *c_out, float u) {
  float t = 4.0f * u;
  int q = (int)(t + 0.5f);
  float phi = (t - (float)q) * 1.57079632679489662f, p2 = phi * phi;
  float sp = ((-1.9515295891e-4f * p2 + 8.3321608736e-3f) * p2 - 1.6666654611e-1f) * p2 * phi + phi;
  float cp = ((2.443315711809948e-5f * p2 - 1.388731625493765e-3f) * p2 + 4.166664568298827e-2f) *
                 p2 * p2 -
             0.5f * p2 + 1.0f;
  float s = (q & 1) ? cp : sp, c = (q & 1) ? sp : cp;
  *s_out = (q & 2) ? -s : s;
  *c_out = ((q + 1) & 2) ? -c : c;
}

#endif
