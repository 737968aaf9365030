/* Epoch orders, mini-batch gathering and horizontal-flip augmentation. */
#include <string.h>

#include "data/data_internal.h"

kvi_status kvi_epoch_order_init(kvi_epoch_order *o, int64_t n) {
  if (!o) return kvi_fail(KVI_ERR_ARG, "kvi_epoch_order_init: order is NULL");
  o->n = 0;
  o->order = NULL;
  if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(int64_t))
    return kvi_fail(KVI_ERR_ARG, "kvi_epoch_order_init: expected n >= 0, got %lld", (long long)n);
  int64_t *ord = kvi_alloc((size_t)n * sizeof *ord);
  if (!ord)
    return kvi_fail(KVI_ERR_NOMEM, "kvi_epoch_order_init: out of memory for %lld indices",
                    (long long)n);
  for (int64_t i = 0; i < n; i++) ord[i] = i;
  o->n = n;
  o->order = ord;
  return KVI_OK;
}

void kvi_epoch_order_free(kvi_epoch_order *o) {
  if (!o) return;
  kvi_free(o->order);
  o->order = NULL;
  o->n = 0;
}

void kvi_epoch_order_shuffle(kvi_epoch_order *o, uint64_t seed, uint64_t epoch) {
  if (!o || !o->order) return;
  for (int64_t i = 0; i < o->n; i++) o->order[i] = i;
  kvi_rng r = kvi_rng_stream(seed, epoch);
  kvi_rng_shuffle(&r, o->order, (size_t)o->n);
}

void kvi_batch_gather(kvi_real *x_out, int32_t *y_out, kvi_real *t_out, const kvi_dataset *ds,
                      const int64_t *idx, int b) {
  size_t d = (size_t)ds->d, k = (size_t)ds->k;
  bool gy = y_out && ds->y, gt = t_out && ds->t && k > 0;
  /* rows held as bytes go through the table on both threads (a copy: any split, same bits) */
#pragma omp parallel for schedule(static) if (x_out && ds->x8 && (size_t)b * d >= (1u << 15))
  for (int i = 0; i < b; i++) {
    int64_t r = idx ? idx[i] : i;
#if defined(__GNUC__)
    if (ds->x8 && i + 1 < b) { /* the next row's cache lines, while this one converts */
      const char *nx = (const char *)(ds->x8 + (size_t)(idx ? idx[i + 1] : i + 1) * d);
      for (size_t o = 0; o < d; o += 64) __builtin_prefetch(nx + o);
    }
#endif
    if (x_out && ds->x) memcpy(x_out + (size_t)i * d, ds->x + (size_t)r * d, d * sizeof(kvi_real));
    if (x_out && ds->x8) kvi_dataset_rows(ds, r, 1, x_out + (size_t)i * d);
    if (gy) y_out[i] = ds->y[r];
    if (gt) memcpy(t_out + (size_t)i * k, ds->t + (size_t)r * k, k * sizeof(kvi_real));
  }
}

/* HWC: swaps the pixels (r, a) and (r, w-1-a), all c channels of each. */
void kvi_image_hflip(kvi_real *x, int c, int h, int w) {
  for (int r = 0; r < h; r++) {
    kvi_real *row = x + (size_t)r * (size_t)w * (size_t)c;
    for (int a = 0, z = w - 1; a < z; a++, z--)
      for (int ch = 0; ch < c; ch++) {
        kvi_real tmp = row[(size_t)a * c + ch];
        row[(size_t)a * c + ch] = row[(size_t)z * c + ch];
        row[(size_t)z * c + ch] = tmp;
      }
  }
}

void kvi_batch_hflip(kvi_real *x, int b, int c, int h, int w, kvi_rng *rng) {
  size_t d = (size_t)c * (size_t)h * (size_t)w;
  for (int i = 0; i < b; i++) {
    bool flip = rng ? (kvi_rng_u32(rng) >> 31) != 0 : true;
    if (flip) kvi_image_hflip(x + (size_t)i * d, c, h, w);
  }
}
