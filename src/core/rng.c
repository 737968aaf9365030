/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
 * A stream is a 64-bit key and a 64-bit block counter; block k yields four 32-bit words.
 * Fills are parallel over blocks, so results never depend on the thread count. */
#include <math.h>

#include "core/vmath.h"
#include "kronvi/core.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* The 10 rounds on one block (c0..c3) under the key (k0, k1); scalar arguments so that the
 * vectorized normal fill below can inline it in a SIMD loop. */
static inline void kvi__philox10(uint32_t *o0, uint32_t *o1, uint32_t *o2, uint32_t *o3,
                                 uint64_t ctr, uint32_t k0, uint32_t k1) {
  uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = 0x6a09e667u, c3 = 0xf3bcc908u;
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  *o0 = c0, *o1 = c1, *o2 = c2, *o3 = c3;
}

static inline void kvi__philox(uint32_t out[4], uint64_t key, uint64_t ctr) {
  kvi__philox10(&out[0], &out[1], &out[2], &out[3], ctr, (uint32_t)key, (uint32_t)(key >> 32));
}

/* splitmix64 to spread (seed, id) into a key */
static uint64_t kvi__mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

kvi_rng kvi_rng_stream(uint64_t seed, uint64_t stream_id) {
  kvi_rng r;
  r.key = kvi__mix(kvi__mix(seed) ^ (stream_id * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
  r.ctr = 0;
  return r;
}

/* uniform in (0, 1) from 32 bits (never 0 or 1) */
static inline double kvi__u01(uint32_t x) { return ((double)x + 0.5) * (1.0 / 4294967296.0); }

void kvi_rng_uniform(kvi_rng *r, kvi_real *out, size_t n) {
  size_t nb = (n + 3) / 4;
  uint64_t base = r->ctr;
#pragma omp parallel for schedule(static) if (nb > (1u << 13))
  for (size_t b = 0; b < nb; b++) {
    uint32_t w[4];
    kvi__philox(w, r->key, base + b);
    for (int j = 0; j < 4 && b * 4 + j < n; j++) out[b * 4 + j] = (kvi_real)kvi__u01(w[j]);
  }
  r->ctr += nb;
}

/* Box-Muller: each block gives two pairs (u1, u2) -> four normals. */
static inline void kvi__normal4(double z[4], uint64_t key, uint64_t ctr) {
  uint32_t w[4];
  kvi__philox(w, key, ctr);
  const double two_pi = 6.283185307179586476925;
  for (int p = 0; p < 2; p++) {
    double u1 = kvi__u01(w[2 * p]), u2 = kvi__u01(w[2 * p + 1]);
    double rad = sqrt(-2.0 * log(u1));
    z[2 * p] = rad * cos(two_pi * u2);
    z[2 * p + 1] = rad * sin(two_pi * u2);
  }
}

#ifdef KVI_DOUBLE
void kvi_rng_normal(kvi_rng *r, kvi_real *out, size_t n) { kvi_rng_normal_f64(r, out, n); }
#else
/* Single precision: the same block layout (block k of the stream gives out[4k .. 4k + 3] from
 * its two word pairs), Box-Muller in float with the vectorizable log / sincos of vmath.h, over
 * chunks of KVI__NCHUNK blocks whose Philox words are generated lane-parallel (structure of
 * arrays). u1 uses the top 24 bits, (x + 1/2) 2^-24 in (0, 1), so |z| <= 5.9. */
#define KVI__NCHUNK 64

#if defined(__GNUC__) && defined(__x86_64__) && !defined(KVI_NO_CLONES)
#include <immintrin.h>
#define KVI__PHILOX_AVX2 1

/* hi, lo = the 64-bit products a_l * m per 32-bit lane l: vpmuludq multiplies the even lanes,
 * a copy shifted down by 32 bits the odd ones, and blends put the halves in place. */
__attribute__((target("avx2"))) static inline void kvi__mulhilo8(__m256i *hi, __m256i *lo,
                                                                 __m256i a, __m256i m) {
  __m256i ev = _mm256_mul_epu32(a, m), od = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(ev, 32), od, 0xAA);
  *lo = _mm256_blend_epi32(ev, _mm256_slli_epi64(od, 32), 0xAA);
}

/* kvi__philox10 on the KVI__NCHUNK blocks ctr, ctr + 1, ... eight at a time (the same words:
 * integer arithmetic only). GCC's auto-vectorized version of the scalar rounds spends most of
 * its time packing the 64-bit products; this is about 4x faster. */
__attribute__((target("avx2"))) static void kvi__philox_chunk_avx2(uint32_t *w0, uint32_t *w1,
                                                                   uint32_t *w2, uint32_t *w3,
                                                                   uint64_t ctr, uint32_t k0,
                                                                   uint32_t k1) {
  const __m256i m0 = _mm256_set1_epi32((int)PHILOX_M0), m1 = _mm256_set1_epi32((int)PHILOX_M1);
  for (size_t b = 0; b < KVI__NCHUNK; b += 8) {
    uint32_t lo32[8], hi32[8];
    for (int l = 0; l < 8; l++)
      lo32[l] = (uint32_t)(ctr + b + l), hi32[l] = (uint32_t)((ctr + b + l) >> 32);
    __m256i c0 = _mm256_loadu_si256((const __m256i *)lo32);
    __m256i c1 = _mm256_loadu_si256((const __m256i *)hi32);
    __m256i c2 = _mm256_set1_epi32((int)0x6a09e667u), c3 = _mm256_set1_epi32((int)0xf3bcc908u);
    uint32_t q0 = k0, q1 = k1;
    for (int r = 0; r < 10; r++) {
      __m256i h0, l0, h1, l1;
      kvi__mulhilo8(&h0, &l0, c0, m0);
      kvi__mulhilo8(&h1, &l1, c2, m1);
      __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(h1, c1), _mm256_set1_epi32((int)q0));
      __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(h0, c3), _mm256_set1_epi32((int)q1));
      c1 = l1, c3 = l0, c0 = n0, c2 = n2;
      q0 += PHILOX_W0, q1 += PHILOX_W1;
    }
    _mm256_storeu_si256((__m256i *)(w0 + b), c0);
    _mm256_storeu_si256((__m256i *)(w1 + b), c1);
    _mm256_storeu_si256((__m256i *)(w2 + b), c2);
    _mm256_storeu_si256((__m256i *)(w3 + b), c3);
  }
}

/* The same with AVX-512: sixteen blocks at a time. */
__attribute__((target("avx512f"))) static inline void kvi__mulhilo16(__m512i *hi, __m512i *lo,
                                                                     __m512i a, __m512i m) {
  __m512i ev = _mm512_mul_epu32(a, m), od = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(ev, 32), od);
  *lo = _mm512_mask_blend_epi32(0xAAAA, ev, _mm512_slli_epi64(od, 32));
}

__attribute__((target("avx512f"))) static void kvi__philox_chunk_avx512(uint32_t *w0, uint32_t *w1,
                                                                        uint32_t *w2, uint32_t *w3,
                                                                        uint64_t ctr, uint32_t k0,
                                                                        uint32_t k1) {
  const __m512i m0 = _mm512_set1_epi32((int)PHILOX_M0), m1 = _mm512_set1_epi32((int)PHILOX_M1);
  for (size_t b = 0; b < KVI__NCHUNK; b += 16) {
    uint32_t lo32[16], hi32[16];
    for (int l = 0; l < 16; l++)
      lo32[l] = (uint32_t)(ctr + b + l), hi32[l] = (uint32_t)((ctr + b + l) >> 32);
    __m512i c0 = _mm512_loadu_si512(lo32), c1 = _mm512_loadu_si512(hi32);
    __m512i c2 = _mm512_set1_epi32((int)0x6a09e667u), c3 = _mm512_set1_epi32((int)0xf3bcc908u);
    uint32_t q0 = k0, q1 = k1;
    for (int r = 0; r < 10; r++) {
      __m512i h0, l0, h1, l1;
      kvi__mulhilo16(&h0, &l0, c0, m0);
      kvi__mulhilo16(&h1, &l1, c2, m1);
      __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(h1, c1), _mm512_set1_epi32((int)q0));
      __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(h0, c3), _mm512_set1_epi32((int)q1));
      c1 = l1, c3 = l0, c0 = n0, c2 = n2;
      q0 += PHILOX_W0, q1 += PHILOX_W1;
    }
    _mm512_storeu_si512(w0 + b, c0);
    _mm512_storeu_si512(w1 + b, c1);
    _mm512_storeu_si512(w2 + b, c2);
    _mm512_storeu_si512(w3 + b, c3);
  }
}
#endif

KVI__HOT static void kvi__normal_chunk(float *out, uint64_t key, uint64_t ctr, size_t nb) {
  uint32_t w0[KVI__NCHUNK], w1[KVI__NCHUNK], w2[KVI__NCHUNK], w3[KVI__NCHUNK];
  float z0[KVI__NCHUNK], z1[KVI__NCHUNK], z2[KVI__NCHUNK], z3[KVI__NCHUNK];
  const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
#ifdef KVI__PHILOX_AVX2
  if (__builtin_cpu_supports("avx512f")) {
    kvi__philox_chunk_avx512(w0, w1, w2, w3, ctr, k0, k1);
  } else if (__builtin_cpu_supports("avx2")) {
    kvi__philox_chunk_avx2(w0, w1, w2, w3, ctr, k0, k1);
  } else
#endif
  {
#pragma omp simd
    for (size_t b = 0; b < KVI__NCHUNK; b++)
      kvi__philox10(&w0[b], &w1[b], &w2[b], &w3[b], ctr + b, k0, k1);
  }
  const float s24 = 1.0f / 16777216.0f;
#pragma omp simd
  for (size_t b = 0; b < KVI__NCHUNK; b++) {
    float u1 = ((float)(int32_t)(w0[b] >> 8) + 0.5f) * s24;
    float u2 = ((float)(int32_t)(w1[b] >> 8) + 0.5f) * s24;
    float u3 = ((float)(int32_t)(w2[b] >> 8) + 0.5f) * s24;
    float u4 = ((float)(int32_t)(w3[b] >> 8) + 0.5f) * s24;
    float ra = sqrtf(-2.0f * kvi__vlogf(u1)), rb = sqrtf(-2.0f * kvi__vlogf(u3));
    float sa, ca, sb, cb;
    kvi__vsincos2pif(&sa, &ca, u2);
    kvi__vsincos2pif(&sb, &cb, u4);
    z0[b] = ra * ca, z1[b] = ra * sa, z2[b] = rb * cb, z3[b] = rb * sb;
  }
  for (size_t b = 0; b < nb; b++) {
    out[4 * b] = z0[b];
    out[4 * b + 1] = z1[b];
    out[4 * b + 2] = z2[b];
    out[4 * b + 3] = z3[b];
  }
}

void kvi_rng_normal(kvi_rng *r, kvi_real *out, size_t n) {
  size_t nb = (n + 3) / 4, nfull = n / 4, nch = (nfull + KVI__NCHUNK - 1) / KVI__NCHUNK;
  uint64_t base = r->ctr;
#pragma omp parallel for schedule(static) if (nb > (1u << 13))
  for (size_t c = 0; c < nch; c++) {
    size_t b0 = c * KVI__NCHUNK, cnt = nfull - b0 < KVI__NCHUNK ? nfull - b0 : KVI__NCHUNK;
    kvi__normal_chunk(out + 4 * b0, r->key, base + b0, cnt);
  }
  if (nb > nfull) { /* a last, partial block */
    float t[4 * KVI__NCHUNK];
    kvi__normal_chunk(t, r->key, base + nfull, 1);
    for (size_t j = 0; 4 * nfull + j < n; j++) out[4 * nfull + j] = t[j];
  }
  r->ctr += nb;
}
#endif

void kvi_rng_normal_f64(kvi_rng *r, double *out, size_t n) {
  size_t nb = (n + 3) / 4;
  uint64_t base = r->ctr;
#pragma omp parallel for schedule(static) if (nb > (1u << 13))
  for (size_t b = 0; b < nb; b++) {
    double z[4];
    kvi__normal4(z, r->key, base + b);
    for (int j = 0; j < 4 && b * 4 + j < n; j++) out[b * 4 + j] = z[j];
  }
  r->ctr += nb;
}

void kvi_rng_normal_at(const kvi_rng *r, uint64_t offset, kvi_real *out, size_t n) {
  kvi_rng q = {r->key, r->ctr + offset / 4};
  const size_t skip = (size_t)(offset % 4);
  if (n == 0) return;
  if (skip) { /* the first, partial block */
    kvi_real t[4];
    kvi_rng_normal(&q, t, 4);
    const size_t k = n < 4 - skip ? n : 4 - skip;
    for (size_t j = 0; j < k; j++) out[j] = t[skip + j];
    out += k, n -= k;
  }
  kvi_rng_normal(&q, out, n);
}

uint32_t kvi_rng_u32(kvi_rng *r) {
  uint32_t w[4];
  kvi__philox(w, r->key, r->ctr++);
  return w[0];
}

uint64_t kvi_rng_below(kvi_rng *r, uint64_t bound) {
  if (bound <= 1) return 0;
  /* rejection sampling on 64 bits for exact uniformity */
  uint64_t lim = UINT64_MAX - UINT64_MAX % bound;
  for (;;) {
    uint32_t w[4];
    kvi__philox(w, r->key, r->ctr++);
    uint64_t x = ((uint64_t)w[0] << 32) | w[1];
    if (x < lim) return x % bound;
  }
}

void kvi_rng_shuffle(kvi_rng *r, int64_t *idx, size_t n) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)kvi_rng_below(r, i);
    int64_t t = idx[i - 1];
    idx[i - 1] = idx[j];
    idx[j] = t;
  }
}
