/* Direct kernels of the stride-1 convolution for few channels (docs/nn-conv.md, "Direct
 * kernels"). With c_out <= 4 vectors (64 channels in single precision on AVX-512, 32 on AVX2),
 * im2col + GEMM wastes most of its time: the GEMM's narrow side is c_out, and the unfolded input
 * is k*k times the image. Here the output of a block of P consecutive positions (P c_out
 * numbers) stays in vector registers while the taps stream through:
 *   y[q] = sum over taps (ky, kx) and channels ci of xp[ci][q + ky wp + kx] W[(ky k + kx) c + ci]
 * where xp holds the image with its zero padding (width wp = w + 2 pad) one channel plane after
 * the other, and q = oy wp + ox runs over the padded grid, so that every tap of a block reads P
 * consecutive numbers of a plane; the outputs at ox >= ow are computed and dropped. The same
 * kernel gives the input gradient (the transposed convolution: dY padded by k - 1 - pad, with the
 * flipped, transposed kernel). The weight gradient keeps a block of rows r = (tap, channel) of
 * dW in registers while the output positions stream through:
 *   dW[r] += sum over valid positions q of xp[ci_r][q + ky_r wp + kx_r] dY[q].
 * Each output is a sum in a fixed order (taps, then channels; or positions in order), with fused
 * multiply-adds: the result depends on the instruction set (AVX-512 and AVX2 sum the same terms
 * in the same order, but the GEMM path differs from both), never on the thread count. */
#include <stdint.h>
#include <string.h>

#include "nn/conv_internal.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && \
    !defined(KVI_NO_CLONES)
#define KVI__DIRECT 1
#endif

int kvi__conv_direct_force = -1; /* tests: -1 automatic, 0 off, 1 AVX2, 2 AVX-512 */
int kvi__conv_direct_all = 0;    /* tests: every pass direct where the kernels exist */

#ifdef KVI__DIRECT

/* One instruction set's kernels: vector type V of VB bytes (VL numbers); P1..P4 positions per
 * block of the forward for 1..4 vectors of outputs (P * MV accumulators, the weight vectors and a
 * broadcast fit the register file); as many rows of the weight gradient per block. */
#define KVI__DIRECT_ISA(SFX, TARGET, VB, P1, P2, P3, P4)                                          \
  typedef kvi_real V_##SFX __attribute__((vector_size(VB), aligned(sizeof(kvi_real))));           \
  enum { VL_##SFX = VB / (int)sizeof(kvi_real) };                                                 \
  __attribute__((target(TARGET), always_inline)) static inline V_##SFX ld_##SFX(                  \
      const kvi_real *p) {                                                                        \
    V_##SFX v;                                                                                    \
    memcpy(&v, p, sizeof v);                                                                      \
    return v;                                                                                     \
  }                                                                                               \
  __attribute__((target(TARGET), always_inline)) static inline void st_##SFX(kvi_real *p,         \
                                                                             V_##SFX v) {         \
    memcpy(p, &v, sizeof v);                                                                      \
  }                                                                                               \
  /* P grid positions from q0 of one planar padded image: the sums over taps and channels;        \
   * stores the valid ones (HWC) */                                                               \
  __attribute__((target(TARGET), optimize("fp-contract=fast"),                                    \
                 always_inline)) static inline void blk_##SFX(kvi_real *y, const kvi_real *xp,    \
                                                              const kvi_real *Wp,                 \
                                                              const kvi__direct_geom *g, int q0,  \
                                                              const int P, const int MV) {        \
    V_##SFX a[16][4];                                                                             \
    for (int p = 0; p < P; p++)                                                                   \
      for (int v = 0; v < MV; v++) a[p][v] = (V_##SFX){0};                                        \
    const int c = g->c, mw = MV * VL_##SFX;                                                       \
    const kvi_real *w = Wp;                                                                       \
    /* tap t = (ky, kx) counted along: no division by the runtime k in the loop */                \
    for (int t = 0, ky = 0, kx = 0; t < g->k * g->k; t++, kx = kx + 1 == g->k ? 0 : kx + 1) {     \
      if (t > 0 && kx == 0) ky++;                                                                 \
      const kvi_real *x = xp + q0 + (size_t)ky * g->wp + kx;                                      \
      for (int ci = 0; ci < c; ci++, w += mw, x += g->plane) {                                    \
        V_##SFX wv[4];                                                                            \
        _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++) wv[v] = ld_##SFX(w + v * VL_##SFX);  \
        _Pragma("GCC unroll 16") for (int p = 0; p < P; p++) {                                    \
          const kvi_real s = x[p];                                                                \
          _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++) a[p][v] += s * wv[v];              \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
    int oy = q0 / g->wp, ox = q0 - oy * g->wp;                                                    \
    for (int p = 0; p < P; p++, ox++) {                                                           \
      if (ox == g->wp) ox = 0, oy++;                                                              \
      if (ox >= g->ow || oy >= g->oh) continue;                                                   \
      kvi_real *o = y + ((size_t)oy * g->ow + ox) * g->m;                                         \
      if (((size_t)oy * g->ow + ox) * g->m + mw <= (size_t)g->oh * g->ow * g->m) {                \
        /* the lanes past c_out land on later outputs of the image, stored after this one */      \
        for (int v = 0; v < MV; v++) st_##SFX(o + v * VL_##SFX, a[p][v]);                         \
      } else {                                                                                    \
        kvi_real t[4 * VL_##SFX];                                                                 \
        for (int v = 0; v < MV; v++) st_##SFX(t + v * VL_##SFX, a[p][v]);                         \
        memcpy(o, t, sizeof(kvi_real) * (size_t)g->m);                                            \
      }                                                                                           \
    }                                                                                             \
  }                                                                                               \
  __attribute__((target(TARGET), optimize("fp-contract=fast"))) static void img_##SFX(            \
      kvi_real *y, const kvi_real *xp, const kvi_real *Wp, const kvi__direct_geom *g) {           \
    const int last = (g->oh - 1) * g->wp + g->ow, MV = (g->m + VL_##SFX - 1) / VL_##SFX;          \
    const int P = MV == 1 ? P1 : MV == 2 ? P2 : MV == 3 ? P3 : P4;                                \
    for (int q0 = 0; q0 < last; q0 += P) {                                                        \
      if (MV == 1)                                                                                \
        blk_##SFX(y, xp, Wp, g, q0, P1, 1);                                                       \
      else if (MV == 2)                                                                           \
        blk_##SFX(y, xp, Wp, g, q0, P2, 2);                                                       \
      else if (MV == 3)                                                                           \
        blk_##SFX(y, xp, Wp, g, q0, P3, 3);                                                       \
      else                                                                                        \
        blk_##SFX(y, xp, Wp, g, q0, P4, 4);                                                       \
    }                                                                                             \
  }                                                                                               \
  /* rows [r0, r0 + R) of dW += sum over valid positions of xp[ci_r][pos + toff_r] dy[pos]        \
   * (rows past n repeat row r0; not stored) */                                                   \
  __attribute__((target(TARGET), optimize("fp-contract=fast"),                                    \
                 always_inline)) static inline void wrow_##SFX(kvi_real *dW, const kvi_real *xp,  \
                                                               const kvi_real *dy,                \
                                                               const kvi_real *dyl,               \
                                                               const kvi__direct_geom *g, int r0, \
                                                               const int R, const int MV) {       \
    V_##SFX a[16][4];                                                                             \
    size_t off[16];                                                                               \
    const int mw = MV * VL_##SFX, n = g->k * g->k * g->c;                                         \
    const int R_ = r0 + R <= n ? R : n - r0;                                                      \
    for (int r = 0; r < R; r++) {                                                                 \
      const int rr = r0 + (r < R_ ? r : 0), t = rr / g->c, ci = rr % g->c;                        \
      off[r] = (size_t)ci * g->plane + (size_t)(t / g->k) * g->wp + t % g->k;                     \
      for (int v = 0; v < MV; v++) a[r][v] = (V_##SFX){0};                                        \
    }                                                                                             \
    for (int oy = 0; oy < g->oh; oy++) {                                                          \
      /* rows of dY read in place (the lanes past c_out read later numbers of the image, whose    \
       * products are dropped); the last rows, where that would pass its end, from dyl */         \
      const bool tail = oy >= g->dy_safe;                                                         \
      const kvi_real *x = xp + (size_t)oy * g->wp;                                                \
      const kvi_real *d =                                                                         \
          tail ? dyl + (size_t)(oy - g->dy_safe) * g->ow * mw : dy + (size_t)oy * g->ow * g->m;   \
      const int ds = tail ? mw : g->m;                                                            \
      for (int ox = 0; ox < g->ow; ox++, x++, d += ds) {                                          \
        V_##SFX dv[4];                                                                            \
        _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++) dv[v] = ld_##SFX(d + v * VL_##SFX);  \
        _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) {                                    \
          const kvi_real s = x[off[r]];                                                           \
          _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++) a[r][v] += s * dv[v];              \
        }                                                                                         \
      }                                                                                           \
    }                                                                                             \
    for (int r = 0; r < R_; r++) {                                                                \
      kvi_real t[4 * VL_##SFX], *o = dW + (size_t)(r0 + r) * g->m;                                \
      for (int v = 0; v < MV; v++) st_##SFX(t + v * VL_##SFX, a[r][v]);                           \
      for (int j = 0; j < g->m; j++) o[j] += t[j];                                                \
    }                                                                                             \
  }                                                                                               \
  __attribute__((target(TARGET), optimize("fp-contract=fast"))) static void wimg_##SFX(           \
      kvi_real *dW, const kvi_real *xp, const kvi_real *dy, const kvi_real *dyl,                  \
      const kvi__direct_geom *g) {                                                                \
    const int n = g->k * g->k * g->c, MV = (g->m + VL_##SFX - 1) / VL_##SFX;                      \
    const int R = MV == 1 ? P1 : MV == 2 ? P2 : MV == 3 ? P3 : P4;                                \
    for (int r0 = 0; r0 < n; r0 += R) {                                                           \
      if (MV == 1)                                                                                \
        wrow_##SFX(dW, xp, dy, dyl, g, r0, P1, 1);                                                \
      else if (MV == 2)                                                                           \
        wrow_##SFX(dW, xp, dy, dyl, g, r0, P2, 2);                                                \
      else if (MV == 3)                                                                           \
        wrow_##SFX(dW, xp, dy, dyl, g, r0, P3, 3);                                                \
      else                                                                                        \
        wrow_##SFX(dW, xp, dy, dyl, g, r0, P4, 4);                                                \
    }                                                                                             \
  }

/* AVX-512: 32 registers; AVX2 with FMA: 16 (accumulators + weight vectors + one broadcast) */
KVI__DIRECT_ISA(512, "avx512f,fma", 64, 16, 12, 8, 6)
KVI__DIRECT_ISA(256, "avx2,fma", 32, 12, 6, 4, 2)

/* Vectors of VL numbers per output channel row for the chosen instruction set, 0 if none. */
static int kvi__direct_isa(void) {
  if (kvi__conv_direct_force >= 0) return kvi__conv_direct_force;
  static int isa = -1;
  if (isa < 0) {
    __builtin_cpu_init();
    isa = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") ? 2
          : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")  ? 1
                                                                             : 0;
  }
  return isa;
}
#else
static int kvi__direct_isa(void) { return 0; }
#endif

/* Numbers per vector of instruction set isa (0: none). */
static int kvi__direct_vl(int isa) {
  return isa == 2 ? 64 / (int)sizeof(kvi_real) : isa == 1 ? 32 / (int)sizeof(kvi_real) : 0;
}

bool kvi__direct_geom_make(kvi__direct_geom *g, int h, int w, int c, int m, int k, int pad) {
  const int isa = kvi__direct_isa(), vl = kvi__direct_vl(isa);
  if (!vl || m > 4 * vl || k < 1 || pad < 0 || pad >= k) return false;
  g->isa = isa, g->h = h, g->w = w, g->c = c, g->m = m, g->k = k, g->pad = pad;
  g->wp = w + 2 * pad, g->hp = h + 2 * pad;
  g->oh = g->hp - k + 1, g->ow = g->wp - k + 1;
  g->mw = (m + vl - 1) / vl * vl;
  if (g->oh < 1 || g->ow < 1) return false;
  /* a channel plane: the padded image and room for a block of positions read past its end */
  g->plane = (size_t)g->hp * g->wp + 16 + (size_t)k;
  /* output rows of dY whose vectors (mw numbers from each position) stay inside the image */
  g->dy_safe = 0;
  while (g->dy_safe < g->oh &&
         ((size_t)(g->dy_safe + 1) * g->ow - 1) * m + g->mw <= (size_t)g->oh * g->ow * m)
    g->dy_safe++;
  g->xp_len = g->plane * c;
  return true;
}

void kvi__direct_pad(kvi_real *xp, const kvi_real *x, const kvi__direct_geom *g, bool zero) {
  if (zero) memset(xp, 0, g->xp_len * sizeof *xp);
  const int c = g->c;
  for (int iy = 0; iy < g->h; iy++) {
    const kvi_real *xr = x + (size_t)iy * g->w * c;
    kvi_real *d = xp + (size_t)(iy + g->pad) * g->wp + g->pad;
    for (int ci = 0; ci < c; ci++, d += g->plane)
      for (int ix = 0; ix < g->w; ix++) d[ix] = xr[(size_t)ix * c + ci];
  }
}

void kvi__direct_pack(kvi_real *Wp, const kvi_real *W, const kvi__direct_geom *g, bool flip) {
  const int n = g->k * g->k * g->c;
  memset(Wp, 0, (size_t)n * g->mw * sizeof *Wp);
  if (!flip) {
    for (int r = 0; r < n; r++)
      memcpy(Wp + (size_t)r * g->mw, W + (size_t)r * g->m, (size_t)g->m * sizeof *Wp);
    return;
  }
  /* the transposed convolution: input channels are the layer's c_out (g->c), outputs its
   * c_in (g->m); tap (ky, kx) reads the layer's tap (k-1-ky, k-1-kx); W is (k k m, c) */
  const int k = g->k, co = g->c, ci = g->m;
  for (int t = 0; t < k * k; t++)
    for (int o = 0; o < co; o++)
      for (int i = 0; i < ci; i++)
        Wp[((size_t)t * co + o) * g->mw + i] = W[((size_t)(k * k - 1 - t) * ci + i) * co + o];
}

void kvi__direct_forward(kvi_real *y, const kvi_real *xp, const kvi_real *Wp,
                         const kvi__direct_geom *g) {
#ifdef KVI__DIRECT
  if (g->isa == 2)
    img_512(y, xp, Wp, g);
  else
    img_256(y, xp, Wp, g);
#endif
}

void kvi__direct_wgrad(kvi_real *dW, const kvi_real *xp, const kvi_real *dy, const kvi_real *dyl,
                       const kvi__direct_geom *g) {
#ifdef KVI__DIRECT
  if (g->isa == 2)
    wimg_512(dW, xp, dy, dyl, g);
  else
    wimg_256(dW, xp, dy, dyl, g);
#endif
}

void kvi__direct_pad_dy(kvi_real *dyp, const kvi_real *dy, const kvi__direct_geom *g) {
  dy += (size_t)g->dy_safe * g->ow * g->m;
  for (int q = 0; q < (g->oh - g->dy_safe) * g->ow; q++) {
    memcpy(dyp + (size_t)q * g->mw, dy + (size_t)q * g->m, (size_t)g->m * sizeof *dyp);
    memset(dyp + (size_t)q * g->mw + g->m, 0, (size_t)(g->mw - g->m) * sizeof *dyp);
  }
}
